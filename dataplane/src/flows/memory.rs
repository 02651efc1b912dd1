//! A worker's short-term memory of the SYNs it accepted, aged by time.
//!
//! Between a SYN the node accepts and the next refresh of the kernel's socket table, only the
//! worker knows the new connection. It remembers the SYN with the time it saw it; the entry
//! counts until either
//! - a snapshot of the kernel's table *taken* at least [`SUPERSEDE_MARGIN`] after the SYN has
//!   been published (the kernel had the SYN by then: its answer is authoritative, whether it
//!   holds the connection or not), or
//! - the entry is older than its time to live (two refresh periods and a margin: the bound when
//!   the refresher is late),
//!
//! whichever comes first, with no new SYN needed for anything to age. So a 4-tuple the kernel no
//! longer holds is claimed for at most one refresh (plus the dump's own duration) after the
//! kernel let it go, and a client that reuses its address and port after its bucket moved
//! reaches the new owner only.
//!
//! The memory is a fixed set-associative table (`sets` × [`WAYS`], allocated once): remembering
//! a SYN and asking about a flow never allocate, never lock; under a SYN flood the oldest entry
//! of a set gives way.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use farm_pipeline::FlowKey;

/// Entries per set.
pub const WAYS: usize = 4;
/// How long after a SYN a snapshot must have been taken to supersede the memory of it: the time
/// for the SYN to go from the worker through the local port into the kernel's socket table.
pub const SUPERSEDE_MARGIN: Duration = Duration::from_millis(20);

/// The time source of the SYN memory: CLOCK_MONOTONIC in nanoseconds, as the snapshots' stamps.
pub trait Clock {
    /// Now, in nanoseconds.
    fn now_ns(&self) -> u64;
}

/// CLOCK_MONOTONIC (vDSO, no syscall).
#[derive(Debug, Clone, Copy, Default)]
pub struct Monotonic;

impl Clock for Monotonic {
    #[inline]
    fn now_ns(&self) -> u64 {
        crate::run::now_ns()
    }
}

/// A clock that moves only when told (tests, benchmarks).
#[derive(Debug, Clone, Default)]
pub struct ManualClock(pub Arc<AtomicU64>);

impl ManualClock {
    /// A clock reading `ns`.
    pub fn at(ns: u64) -> ManualClock {
        ManualClock(Arc::new(AtomicU64::new(ns)))
    }
    /// Moves the clock forward.
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    key: FlowKey,
    /// When the SYN was accepted.
    at_ns: u64,
}

/// The SYNs one worker accepted recently.
#[derive(Debug)]
pub struct SynMemory {
    entries: Box<[Option<Entry>]>,
    set_mask: usize,
    ttl_ns: u64,
    margin_ns: u64,
}

impl SynMemory {
    /// Room for `capacity` SYNs (rounded up to a power of two sets of [`WAYS`]), each forgotten
    /// after `ttl` at the latest.
    pub fn new(capacity: usize, ttl: Duration) -> SynMemory {
        let sets = capacity.div_ceil(WAYS).next_power_of_two().max(1);
        SynMemory {
            entries: vec![None; sets * WAYS].into_boxed_slice(),
            set_mask: sets - 1,
            ttl_ns: ttl.as_nanos() as u64,
            margin_ns: SUPERSEDE_MARGIN.as_nanos() as u64,
        }
    }

    /// The time to live.
    pub fn ttl(&self) -> Duration {
        Duration::from_nanos(self.ttl_ns)
    }

    #[inline]
    fn set(&self, fp: u64) -> &[Option<Entry>] {
        let s = (fp as usize) & self.set_mask;
        &self.entries[s * WAYS..s * WAYS + WAYS]
    }

    /// True when the entry of a SYN seen at `at_ns` still counts at `now_ns`, given the newest
    /// snapshot's `taken_ns`.
    #[inline]
    fn counts(&self, at_ns: u64, now_ns: u64, taken_ns: u64) -> bool {
        self.counts_for(at_ns, now_ns, taken_ns, self.ttl())
    }

    /// [`counts`](Self::counts) with the time to live `ttl` (the one the newest snapshot's
    /// period implies) instead of the memory's own.
    #[inline]
    pub fn counts_for(&self, at_ns: u64, now_ns: u64, taken_ns: u64, ttl: Duration) -> bool {
        now_ns.saturating_sub(at_ns) < ttl.as_nanos() as u64 && at_ns.saturating_add(self.margin_ns) > taken_ns
    }

    /// Remembers a SYN of `key` accepted at `now_ns`.
    #[inline]
    pub fn remember(&mut self, key: &FlowKey, now_ns: u64) {
        let s = (super::known::fingerprint(key) as usize) & self.set_mask;
        let ways = &mut self.entries[s * WAYS..s * WAYS + WAYS];
        // The same flow, else a free or expired way, else the oldest.
        let mut pick = 0;
        let mut pick_rank = (u8::MAX, u64::MAX);
        for (i, w) in ways.iter().enumerate() {
            let rank = match w {
                Some(e) if e.key == *key => (0, 0),
                None => (1, 0),
                Some(e) if now_ns.saturating_sub(e.at_ns) >= self.ttl_ns => (1, 0),
                Some(e) => (2, e.at_ns),
            };
            if rank < pick_rank {
                (pick, pick_rank) = (i, rank);
            }
        }
        ways[pick] = Some(Entry { key: *key, at_ns: now_ns });
    }

    /// When the SYN of `key` was accepted, if it is remembered at all (fresh or not).
    #[inline]
    pub fn seen_at(&self, key: &FlowKey) -> Option<u64> {
        self.seen_at_fingerprint(key, super::known::fingerprint(key))
    }

    /// [`seen_at`](Self::seen_at) with the flow's fingerprint already computed.
    #[inline]
    pub fn seen_at_fingerprint(&self, key: &FlowKey, fp: u64) -> Option<u64> {
        self.set(fp).iter().flatten().find(|e| e.key == *key).map(|e| e.at_ns)
    }

    /// True when a SYN of `key` is remembered and still counts at `now_ns`, the newest snapshot
    /// having been taken at `taken_ns`.
    #[inline]
    pub fn knows(&self, key: &FlowKey, now_ns: u64, taken_ns: u64) -> bool {
        self.seen_at(key).is_some_and(|at| self.counts(at, now_ns, taken_ns))
    }

    /// How many entries still count (tests, diagnostics; walks the whole table).
    pub fn live(&self, now_ns: u64, taken_ns: u64) -> usize {
        self.entries.iter().flatten().filter(|e| self.counts(e.at_ns, now_ns, taken_ns)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use farm_wire::IpProtocol;

    const MS: u64 = 1_000_000;

    fn key(port: u16) -> FlowKey {
        FlowKey {
            protocol: IpProtocol::Tcp,
            client: "198.18.1.9".parse().unwrap(),
            client_port: port,
            vip: "198.18.0.100".parse().unwrap(),
            vip_port: 80,
        }
    }

    #[test]
    fn entries_age_by_time_without_new_syns() {
        let mut m = SynMemory::new(64, Duration::from_millis(70));
        let t0 = 1_000 * MS;
        m.remember(&key(1), t0);
        assert!(m.knows(&key(1), t0, 0));
        assert!(m.knows(&key(1), t0 + 69 * MS, 0), "within the time to live");
        assert!(!m.knows(&key(1), t0 + 70 * MS, 0), "forgotten at the time to live, no new SYN needed");
        assert!(!m.knows(&key(2), t0, 0));
        assert_eq!(m.live(t0 + 70 * MS, 0), 0);
    }

    #[test]
    fn a_snapshot_taken_after_the_margin_supersedes_the_memory() {
        let mut m = SynMemory::new(64, Duration::from_secs(10));
        let t0 = 1_000 * MS;
        m.remember(&key(1), t0);
        assert!(m.knows(&key(1), t0 + 30 * MS, t0 + 19 * MS), "a snapshot taken too soon after the SYN may miss it");
        assert!(!m.knows(&key(1), t0 + 30 * MS, t0 + 20 * MS), "the kernel had it: its answer counts");
        m.remember(&key(1), t0 + 40 * MS);
        assert!(m.knows(&key(1), t0 + 41 * MS, t0 + 20 * MS), "a new SYN of the same tuple is remembered anew");
    }

    #[test]
    fn bounded_under_a_flood_oldest_give_way() {
        let mut m = SynMemory::new(8, Duration::from_secs(10));
        let t0 = 1_000 * MS;
        for p in 0..10_000u16 {
            m.remember(&key(p), t0 + u64::from(p));
        }
        assert_eq!(m.entries.len(), 8);
        assert!(m.live(t0 + 20_000, 0) <= 8);
        assert!(m.knows(&key(9_999), t0 + 20_000, 0), "the newest is kept");
        assert!(!m.knows(&key(0), t0 + 20_000, 0));
    }

    #[test]
    fn expired_ways_are_reused_before_live_ones() {
        let mut m = SynMemory::new(4, Duration::from_millis(10));
        assert_eq!(m.entries.len(), 4, "one set");
        let t0 = 1_000 * MS;
        m.remember(&key(1), t0);
        for p in 2..5 {
            m.remember(&key(p), t0 + 20 * MS);
        }
        m.remember(&key(5), t0 + 21 * MS);
        for p in 2..6 {
            assert!(m.knows(&key(p), t0 + 22 * MS, 0), "{p}: the expired entry made room");
        }
    }
}
