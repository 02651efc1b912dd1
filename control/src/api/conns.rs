//! The API's connection table: who is connected, in which phase, and which connection gives
//! way when a limit is reached.
//!
//! Two limits hold at every accept: at most `per_origin` connections per client address (the
//! Unix socket counts as one origin with its own small limit), and at most `global` TCP
//! connections. A new connection past a limit takes the place of the oldest *idle* connection
//! of that origin (resp. of all TCP connections); it is refused only when every connection in
//! its way is busy answering. Idle means: lingering after its answer ([`Phase::Closing`], given
//! up first), or still waiting for a complete request ([`Phase::Head`], [`Phase::Body`]) —
//! what slowloris and idle-connection floods hold. A connection that is being answered
//! ([`Phase::Answering`]) is never evicted: its time is bounded by the connection deadline.
//!
//! The table is only touched by the API's one thread; the mutex is never contended.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Where a connection comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Origin {
    /// A TCP client address (see [`Origin::tcp`]).
    Tcp(IpAddr),
    /// The root-only Unix socket.
    Unix,
}

impl Origin {
    /// The origin of a TCP client: its IPv4 address (also when it comes IPv4-mapped on a
    /// dual-stack listener), or its IPv6 /64 (one host commonly holds a whole /64).
    pub(crate) fn tcp(ip: IpAddr) -> Origin {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Origin::Tcp(IpAddr::V4(v4)),
                None => Origin::Tcp(IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into())),
            },
            v4 => Origin::Tcp(v4),
        }
    }
}

/// The phase of a connection (one request per connection).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(crate) enum Phase {
    /// Waiting for the request head (idle; header timeout running).
    Head = 0,
    /// Head received, waiting for the body (idle; body timeout running).
    Body = 1,
    /// The request is being answered (busy: never evicted).
    Answering = 2,
    /// Answered; draining what the client still sends before closing (idle, evicted first).
    Closing = 3,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Head,
            1 => Phase::Body,
            2 => Phase::Answering,
            _ => Phase::Closing,
        }
    }

    /// Eviction rank: lower goes first; `None` is never evicted.
    fn rank(self) -> Option<u8> {
        match self {
            Phase::Closing => Some(0),
            Phase::Head | Phase::Body => Some(1),
            Phase::Answering => None,
        }
    }
}

/// A connection's view of itself: its phase (set by its task) and the signal that it has
/// been evicted (its task then closes it with a reset).
#[derive(Debug, Default)]
pub(crate) struct ConnState {
    phase: AtomicU8,
    evicted: Notify,
}

impl ConnState {
    pub(crate) fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Relaxed))
    }

    pub(crate) fn set_phase(&self, p: Phase) {
        self.phase.store(p as u8, Ordering::Relaxed);
    }

    /// Completes when the connection has been evicted.
    pub(crate) async fn evicted(&self) {
        self.evicted.notified().await;
    }
}

#[derive(Debug)]
struct Entry {
    origin: Origin,
    state: Arc<ConnState>,
}

/// The limits of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TableLimits {
    /// TCP connections at once.
    pub global: usize,
    /// Connections at once from one TCP client address.
    pub per_address: usize,
    /// Connections at once over the Unix socket.
    pub unix: usize,
}

/// Counters, for the logs and the tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TableStats {
    /// Connections admitted.
    pub admitted: u64,
    /// Idle connections evicted for a new one.
    pub evicted: u64,
    /// New connections refused (everything in the way was busy).
    pub refused: u64,
}

#[derive(Debug)]
struct Inner {
    limits: TableLimits,
    /// By id; ids grow with accept order, so iteration is oldest first.
    entries: BTreeMap<u64, Entry>,
    per_origin: HashMap<Origin, usize>,
    tcp: usize,
    next_id: u64,
    stats: TableStats,
}

/// The shared table.
#[derive(Clone, Debug)]
pub(crate) struct ConnTable {
    inner: Arc<Mutex<Inner>>,
}

/// A place in the table; dropping it (the connection's task ended, or was dropped) frees it.
#[derive(Debug)]
pub(crate) struct Slot {
    table: ConnTable,
    id: u64,
    pub state: Arc<ConnState>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.table.lock().remove(self.id);
    }
}

impl ConnTable {
    pub(crate) fn new(limits: TableLimits) -> ConnTable {
        let limits = TableLimits { global: limits.global.max(1), per_address: limits.per_address.max(1), unix: limits.unix.max(1) };
        let inner = Inner { limits, entries: BTreeMap::new(), per_origin: HashMap::new(), tcp: 0, next_id: 0, stats: TableStats::default() };
        ConnTable { inner: Arc::new(Mutex::new(inner)) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes room for a connection from `origin` (evicting idle connections if needed) and
    /// takes a slot; `None`: refused, everything in the way is busy.
    pub(crate) fn admit(&self, origin: Origin) -> Option<Slot> {
        let mut t = self.lock();
        let per_limit = match origin {
            Origin::Tcp(_) => t.limits.per_address,
            Origin::Unix => t.limits.unix,
        };
        if t.per_origin.get(&origin).copied().unwrap_or(0) >= per_limit && !t.evict_one(|e| e.origin == origin) {
            t.stats.refused += 1;
            return None;
        }
        if matches!(origin, Origin::Tcp(_)) && t.tcp >= t.limits.global && !t.evict_one(|e| matches!(e.origin, Origin::Tcp(_))) {
            t.stats.refused += 1;
            return None;
        }
        let id = t.next_id;
        t.next_id += 1;
        let state = Arc::new(ConnState::default());
        t.entries.insert(id, Entry { origin, state: state.clone() });
        *t.per_origin.entry(origin).or_insert(0) += 1;
        if matches!(origin, Origin::Tcp(_)) {
            t.tcp += 1;
        }
        t.stats.admitted += 1;
        drop(t);
        Some(Slot { table: self.clone(), id, state })
    }

    /// Evicts the oldest idle TCP connection (e.g. to free a file descriptor); false if none.
    pub(crate) fn evict_idle_tcp(&self) -> bool {
        self.lock().evict_one(|e| matches!(e.origin, Origin::Tcp(_)))
    }

    /// Connections in the table.
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub(crate) fn stats(&self) -> TableStats {
        self.lock().stats
    }
}

impl Inner {
    /// Evicts the best candidate among the entries matching `filter`: the oldest of the
    /// lowest [`Phase::rank`]. Returns false when every match is busy.
    fn evict_one(&mut self, filter: impl Fn(&Entry) -> bool) -> bool {
        let mut best: Option<(u8, u64)> = None;
        for (&id, e) in &self.entries {
            if !filter(e) {
                continue;
            }
            let Some(rank) = e.state.phase().rank() else { continue };
            if best.is_none_or(|(r, _)| rank < r) {
                best = Some((rank, id));
                if rank == 0 {
                    break;
                }
            }
        }
        let Some((_, id)) = best else { return false };
        if let Some(e) = self.remove(id) {
            // A stored permit: the task sees it even if it has not been polled yet.
            e.state.evicted.notify_one();
            self.stats.evicted += 1;
        }
        true
    }

    fn remove(&mut self, id: u64) -> Option<Entry> {
        let e = self.entries.remove(&id)?;
        if let Some(n) = self.per_origin.get_mut(&e.origin) {
            *n -= 1;
            if *n == 0 {
                self.per_origin.remove(&e.origin);
            }
        }
        if matches!(e.origin, Origin::Tcp(_)) {
            self.tcp -= 1;
        }
        Some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(last: u8) -> Origin {
        Origin::Tcp(IpAddr::from([127, 0, 0, last]))
    }

    fn table(global: usize, per_address: usize) -> ConnTable {
        ConnTable::new(TableLimits { global, per_address, unix: 2 })
    }

    fn is_evicted(s: &Slot) -> bool {
        let t = s.table.lock();
        !t.entries.contains_key(&s.id)
    }

    #[test]
    fn per_address_limit_evicts_the_oldest_idle_of_that_address() {
        let t = table(100, 2);
        let a1 = t.admit(tcp(1)).unwrap();
        let b1 = t.admit(tcp(2)).unwrap();
        let a2 = t.admit(tcp(1)).unwrap();
        let a3 = t.admit(tcp(1)).unwrap();
        assert!(is_evicted(&a1) && !is_evicted(&a2) && !is_evicted(&a3) && !is_evicted(&b1));
        assert_eq!(t.len(), 3);
        // Busy connections stay; the idle one goes, then nothing is left to evict.
        a2.state.set_phase(Phase::Answering);
        let a4 = t.admit(tcp(1)).unwrap();
        assert!(is_evicted(&a3) && !is_evicted(&a2));
        a4.state.set_phase(Phase::Answering);
        assert!(t.admit(tcp(1)).is_none());
        assert_eq!(t.stats(), TableStats { admitted: 5, evicted: 2, refused: 1 });
        // A slot dropped is free again.
        drop(a2);
        assert!(t.admit(tcp(1)).is_some());
    }

    #[test]
    fn global_limit_prefers_closing_then_oldest_waiting() {
        let t = table(3, 10);
        let s1 = t.admit(tcp(1)).unwrap();
        let s2 = t.admit(tcp(2)).unwrap();
        let s3 = t.admit(tcp(3)).unwrap();
        s1.state.set_phase(Phase::Body);
        s3.state.set_phase(Phase::Closing);
        let s4 = t.admit(tcp(4)).unwrap();
        assert!(is_evicted(&s3) && !is_evicted(&s1) && !is_evicted(&s2));
        let _s5 = t.admit(tcp(5)).unwrap();
        assert!(is_evicted(&s1) && !is_evicted(&s2) && !is_evicted(&s4));
        // Unix connections do not count against the TCP limit, and have their own.
        let u1 = t.admit(Origin::Unix).unwrap();
        let _u2 = t.admit(Origin::Unix).unwrap();
        let _u3 = t.admit(Origin::Unix).unwrap();
        assert!(is_evicted(&u1) && !is_evicted(&s2));
        assert!(t.evict_idle_tcp());
        assert!(is_evicted(&s2));
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let o = |s: &str| Origin::tcp(s.parse().unwrap());
        assert_eq!(o("2001:db8:1:2::7"), o("2001:db8:1:2:ffff::9"));
        assert_ne!(o("2001:db8:1:2::7"), o("2001:db8:1:3::7"));
        assert_eq!(o("::ffff:198.51.100.7"), o("198.51.100.7"));
        assert_eq!(o("198.51.100.7"), Origin::Tcp("198.51.100.7".parse().unwrap()));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_evicted_connection_is_told_even_before_it_waits() {
        let t = table(1, 1);
        let s1 = t.admit(tcp(1)).unwrap();
        let _s2 = t.admit(tcp(1)).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(1), s1.state.evicted()).await.unwrap();
        // Its slot's drop does not touch the new connection's counts.
        drop(s1);
        assert_eq!(t.len(), 1);
    }
}
