//! Which flows this node holds, for bucket handover (DESIGN.md invariant I2).
//!
//! The kernel behind the local port is the authority on which connections this node serves:
//! its TCP socket table. A background refresher (the data plane's main thread) asks the kernel
//! of the node's network namespace through sock_diag netlink ([`diag`]: `INET_DIAG`, TCP, IPv4
//! and IPv6, only sockets in a held state, filtered on the VIPs by a bytecode program in the
//! kernel), keeps the connections whose local address is a VIP, publishes them to the workers
//! as an immutable set (swapped atomically, never locked), and writes the number of live
//! connections per bucket into the table file, where farmd reads which buckets it still drains.
//! Where sock_diag is unavailable it reads `/proc/net/tcp{,6}` instead ([`procfs`]).
//!
//! A new owner must also recognise connections it accepted since the last refresh: each worker
//! remembers the SYNs it accepted, with the time ([`memory`]); an entry counts until a snapshot
//! taken after the kernel had the SYN is published, or its time to live runs out (two refresh
//! periods and a margin), whichever is first — time alone ages it, no new SYN is needed. Nothing
//! of this costs anything on the hot path outside a handover: the pipeline asks
//! [`FlowTracker::is_known`] only for buckets being handed over, and `on_accept` looks at TCP
//! SYNs only (a clock read and a write into a preallocated table, no lock, no allocation).

pub mod diag;
pub mod known;
pub mod memory;
pub mod procfs;
mod refresh;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use farm_pipeline::{FlowKey, FlowTracker, PipelineConfig, Protocol};
use farm_table::{bucket_of, Affinity, BucketEntry, NO_NODE};
use farm_wire::{IpProtocol, TcpFlags};

pub use self::diag::SockDiag;
pub use self::known::KnownFlows;
pub use self::memory::{Clock, ManualClock, Monotonic, SynMemory};
pub use self::procfs::parse_proc_net_tcp;
pub use self::refresh::{Cadence, Refresher, Source};

/// SYNs a worker remembers (bounds memory under a SYN flood; about 3 MiB per worker).
pub const SYN_MEMORY: usize = 65536;

/// How often the main thread refreshes the flow knowledge at most; [`Cadence`] stretches it so
/// that refreshing costs at most about a tenth of a CPU in a handover, a fiftieth otherwise
/// (perf/README.md has the figures: a filtered sock_diag refresh costs 1-6 ms of CPU at 1k
/// connections, 0.2 s at 100k, on the shared VM).
pub const REFRESH_PERIOD: Duration = Duration::from_millis(25);
/// The longest the cadence stretches the period to (a node with ~100k connections).
pub const REFRESH_MAX_PERIOD: Duration = Duration::from_secs(1);

/// The SYN memory's time to live for a refresh `period`: two periods (the refresh that may have
/// started just before the SYN reached the kernel, and the next one) and the margin.
pub fn syn_ttl(period: Duration) -> Duration {
    2 * period + memory::SUPERSEDE_MARGIN
}

/// A TCP socket of the kernel's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Socket {
    /// Local address and port.
    pub local: (IpAddr, u16),
    /// Remote address and port.
    pub remote: (IpAddr, u16),
    /// Kernel TCP state (1 = ESTABLISHED ... 10 = LISTEN, 11 = CLOSING).
    pub state: u8,
}

pub(crate) const TCP_TIME_WAIT: u8 = 6;
pub(crate) const TCP_CLOSE: u8 = 7;
pub(crate) const TCP_LISTEN: u8 = 10;

/// The kernel's VIP connections at one refresh.
#[derive(Debug, Default)]
pub struct FlowSnapshot {
    /// Incremented at every refresh.
    pub epoch: u64,
    /// CLOCK_MONOTONIC (ns) when the kernel was asked: SYNs remembered more than
    /// [`memory::SUPERSEDE_MARGIN`] before it are this snapshot's business.
    pub taken_ns: u64,
    /// The refresh period when it was published (0: unknown): the workers forget a SYN after
    /// [`syn_ttl`] of it.
    pub period_ns: u64,
    /// The connections.
    pub known: KnownFlows,
}

/// Shared between the refresher and the workers.
pub type SharedFlows = Arc<ArcSwap<FlowSnapshot>>;

/// A worker's [`FlowTracker`]: the shared snapshot and the worker's own SYN memory.
#[derive(Debug)]
pub struct LcoreFlows<C: Clock = Monotonic> {
    shared: SharedFlows,
    syns: SynMemory,
    clock: C,
}

impl LcoreFlows {
    /// A tracker reading `shared`, its SYN memory sized [`SYN_MEMORY`]; a SYN is forgotten
    /// after [`syn_ttl`] of the period the newest snapshot announces (of [`REFRESH_MAX_PERIOD`]
    /// before any).
    pub fn new(shared: SharedFlows) -> LcoreFlows {
        LcoreFlows::with_clock(shared, syn_ttl(REFRESH_MAX_PERIOD), Monotonic)
    }
}

impl<C: Clock> LcoreFlows<C> {
    /// A tracker on `clock` whose SYN memory forgets after `ttl` until a snapshot announces its
    /// refresh period (and reuses the room of entries older than `ttl` first).
    pub fn with_clock(shared: SharedFlows, ttl: Duration, clock: C) -> LcoreFlows<C> {
        LcoreFlows { shared, syns: SynMemory::new(SYN_MEMORY, ttl), clock }
    }

    /// The worker's SYN memory (tests, diagnostics).
    pub fn syn_memory(&self) -> &SynMemory {
        &self.syns
    }
}

impl<C: Clock> FlowTracker for LcoreFlows<C> {
    #[inline]
    fn is_known(&self, flow: &FlowKey) -> bool {
        let snap = self.shared.load();
        let fp = known::fingerprint(flow);
        if snap.known.contains_fingerprint(fp) {
            return true;
        }
        // The clock is read only when the memory has the flow at all.
        self.syns.seen_at_fingerprint(flow, fp).is_some_and(|at| {
            let ttl = if snap.period_ns == 0 { self.syns.ttl() } else { syn_ttl(Duration::from_nanos(snap.period_ns)) };
            self.syns.counts_for(at, self.clock.now_ns(), snap.taken_ns, ttl)
        })
    }

    #[inline]
    fn on_accept(&mut self, flow: &FlowKey, _bucket: u32, tcp_flags: Option<TcpFlags>) {
        if tcp_flags.is_some_and(|f| f.is_syn_only()) {
            self.syns.remember(flow, self.clock.now_ns());
        }
    }
}

/// The kernel's connections to a VIP, and their count per bucket.
pub fn vip_flows(cfg: &PipelineConfig, sockets: &[Socket]) -> (KnownFlows, Vec<u32>) {
    let mut known = KnownFlows::with_capacity(sockets.len());
    let mut per_bucket = vec![0u32; cfg.n_buckets as usize];
    for s in sockets {
        if matches!(s.state, TCP_TIME_WAIT | TCP_CLOSE | TCP_LISTEN) {
            continue;
        }
        let Some(vip) = cfg.vip(s.local.0) else { continue };
        let flow = FlowKey {
            protocol: IpProtocol::Tcp,
            client: s.remote.0,
            client_port: s.remote.1,
            vip: s.local.0,
            vip_port: s.local.1,
        };
        if let Some(rule) = vip.rule_for(Protocol::Tcp, s.local.1) {
            let port = (rule.effective_affinity() == Affinity::OnPort).then_some(s.remote.1);
            per_bucket[bucket_of(&cfg.hash_key, s.remote.0, port, cfg.n_buckets) as usize] += 1;
        }
        known.insert(&flow);
    }
    (known, per_bucket)
}

/// True when a bucket is being handed over to or from node `me`.
pub fn handover_involves(entries: &[BucketEntry], me: u8) -> bool {
    entries.iter().any(|e| e.prev_owner != NO_NODE && e.prev_owner != e.owner && (e.owner == me || e.prev_owner == me))
}

#[cfg(test)]
mod tests {
    use super::*;
    use farm_pipeline::{PortRange, Rule, Vip};
    use farm_table::HashKey;
    use farm_wire::EthernetAddress;
    use procfs::tests::{TCP, TCP6};

    const MS: Duration = Duration::from_millis(1);

    fn cfg() -> PipelineConfig {
        let vips = vec![
            Vip::new("198.18.0.100".parse().unwrap(), vec![Rule::new(Protocol::Tcp, PortRange::single(80), Affinity::OnAddr)]),
            Vip::new("2001:db8::1".parse().unwrap(), vec![Rule::new(Protocol::Tcp, PortRange::single(443), Affinity::OnPort)]),
        ];
        PipelineConfig::new(EthernetAddress([2, 0, 0, 0, 0, 1]), vips, 256, HashKey::from_seed(5)).unwrap()
    }

    fn key(port: u16) -> FlowKey {
        FlowKey {
            protocol: IpProtocol::Tcp,
            client: "198.18.1.9".parse().unwrap(),
            client_port: port,
            vip: "198.18.0.100".parse().unwrap(),
            vip_port: 80,
        }
    }

    fn ns(c: &ManualClock) -> u64 {
        c.now_ns()
    }

    fn publish(shared: &SharedFlows, taken_ns: u64, known: &[FlowKey]) {
        let epoch = shared.load().epoch + 1;
        shared.store(Arc::new(FlowSnapshot { epoch, taken_ns, period_ns: REFRESH_PERIOD.as_nanos() as u64, known: known.iter().copied().collect() }));
    }

    #[test]
    fn keeps_live_vip_connections_and_counts_them_per_bucket() {
        let c = cfg();
        let mut sockets = parse_proc_net_tcp(TCP);
        sockets.extend(parse_proc_net_tcp(TCP6));
        let (known, per_bucket) = vip_flows(&c, &sockets);
        // listen, time-wait and the non-VIP socket are left out
        assert_eq!(known.len(), 3, "{known:?}");
        assert!(known.contains(&FlowKey { client: "198.18.1.1".parse().unwrap(), client_port: 40000, ..key(0) }));
        assert_eq!(per_bucket.iter().sum::<u32>(), 3);
        let b = bucket_of(&c.hash_key, "198.18.1.1".parse().unwrap(), None, 256) as usize;
        assert!(per_bucket[b] >= 1);
        let b6 = bucket_of(&c.hash_key, "2001:db8::2".parse().unwrap(), Some(0xd431), 256) as usize;
        assert!(per_bucket[b6] >= 1, "on_port rule hashes the port");
    }

    #[test]
    fn workers_remember_their_syns_until_the_kernel_has_them() {
        let (_r, shared) = Refresher::with_source(Source::Proc);
        let clock = ManualClock::at(10_000_000_000);
        let mut f = LcoreFlows::with_clock(shared.clone(), syn_ttl(REFRESH_PERIOD), clock.clone());
        let k = key(1);
        assert!(!f.is_known(&k));
        f.on_accept(&k, 0, Some(TcpFlags::ACK));
        assert!(!f.is_known(&k), "only SYNs open a flow");
        f.on_accept(&k, 0, Some(TcpFlags::SYN));
        assert!(f.is_known(&k));
        // A refresh that began 5 ms after the SYN may not have seen it: still remembered.
        clock.advance(5 * MS);
        publish(&shared, ns(&clock), &[]);
        clock.advance(20 * MS);
        assert!(f.is_known(&k), "remembered across a refresh taken too early");
        // The next refresh, 30 ms after the SYN, has the kernel's answer.
        publish(&shared, ns(&clock) + 5 * 1_000_000, &[k]);
        assert!(f.is_known(&k), "from the kernel's table");
        clock.advance(25 * MS);
        publish(&shared, ns(&clock), &[]);
        assert!(!f.is_known(&k), "the kernel let it go: not claimed, although the memory had it");
    }

    #[test]
    fn the_syn_memory_ages_by_time_without_new_syns_nor_refreshes() {
        let (_r, shared) = Refresher::with_source(Source::Proc);
        let clock = ManualClock::at(10_000_000_000);
        let ttl = syn_ttl(REFRESH_PERIOD);
        assert_eq!(ttl, 70 * MS);
        let mut f = LcoreFlows::with_clock(shared.clone(), ttl, clock.clone());
        f.on_accept(&key(1), 0, Some(TcpFlags::SYN));
        clock.advance(69 * MS);
        assert!(f.is_known(&key(1)), "no refresh happened: the memory covers it");
        clock.advance(MS);
        assert!(!f.is_known(&key(1)), "forgotten after the time to live, with no SYN nor refresh in between");
        assert_eq!(f.syn_memory().live(ns(&clock), 0), 0);
        // A snapshot (taken before the SYN) announcing a 1 s period: the memory lasts 2 s + margin.
        let before = ns(&clock);
        clock.advance(MS);
        f.on_accept(&key(2), 0, Some(TcpFlags::SYN));
        shared.store(Arc::new(FlowSnapshot { epoch: 9, taken_ns: before, period_ns: 1_000_000_000, known: KnownFlows::default() }));
        clock.advance(2 * REFRESH_MAX_PERIOD);
        assert!(f.is_known(&key(2)), "the announced period sets the time to live");
        clock.advance(memory::SUPERSEDE_MARGIN);
        assert!(!f.is_known(&key(2)));
    }

    /// The measured failback bug: the old owner remembered a client's SYN and never aged it
    /// because it accepted no new SYN; the client came back from the same address and port after
    /// its bucket moved and the old owner took its packets.
    #[test]
    fn a_client_reusing_its_port_after_a_move_reaches_the_new_owner_only() {
        let clock = ManualClock::at(10_000_000_000);
        let ttl = syn_ttl(REFRESH_PERIOD);
        let (_ra, shared_a) = Refresher::with_source(Source::Proc);
        let (_rb, shared_b) = Refresher::with_source(Source::Proc);
        let mut a = LcoreFlows::with_clock(shared_a.clone(), ttl, clock.clone());
        let mut b = LcoreFlows::with_clock(shared_b.clone(), ttl, clock.clone());
        let k = key(40000);
        // A owns the bucket: the connection opens and lives in A's kernel.
        a.on_accept(&k, 7, Some(TcpFlags::SYN));
        clock.advance(30 * MS);
        publish(&shared_a, ns(&clock), &[k]);
        assert!(a.is_known(&k));
        // The bucket moves to B (A is the previous owner); the client closes; A's kernel drops the
        // socket; A's next refreshes no longer have it. A accepts no SYN from now on.
        for _ in 0..4 {
            clock.advance(REFRESH_PERIOD);
            publish(&shared_a, ns(&clock), &[]);
            publish(&shared_b, ns(&clock), &[]);
        }
        assert!(!a.is_known(&k), "the old owner no longer claims the tuple");
        // The client reconnects from the same address and port: B accepts the SYN and knows
        // the flow at once, and still after its kernel reports it.
        b.on_accept(&k, 7, Some(TcpFlags::SYN));
        assert!(b.is_known(&k) && !a.is_known(&k));
        clock.advance(REFRESH_PERIOD);
        publish(&shared_b, ns(&clock), &[k]);
        publish(&shared_a, ns(&clock), &[]);
        for _ in 0..100 {
            clock.advance(REFRESH_PERIOD);
            publish(&shared_a, ns(&clock), &[]);
            assert!(!a.is_known(&k), "never claimed by the old owner");
        }
        assert!(b.is_known(&k));
    }

    /// The same with a real kernel: connections on loopback to a "VIP" 127.0.0.1 from client
    /// address 127.0.0.2; once closed, the refreshed snapshot drops them (both sources agree).
    #[test]
    fn the_refresher_follows_the_kernel() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let vip: IpAddr = "127.0.0.1".parse().unwrap();
        let c = PipelineConfig::new(
            EthernetAddress([2, 0, 0, 0, 0, 1]),
            vec![Vip::new(vip, vec![Rule::new(Protocol::Tcp, PortRange::single(port), Affinity::OnPort)])],
            256,
            HashKey::from_seed(5),
        )
        .unwrap();
        let connect = || {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            s.bind(&"127.0.0.2:0".parse::<std::net::SocketAddr>().unwrap().into()).unwrap();
            s.connect(&l.local_addr().unwrap().into()).unwrap();
            let s: std::net::TcpStream = s.into();
            let srv = l.accept().unwrap().0;
            let k = FlowKey { protocol: IpProtocol::Tcp, client: "127.0.0.2".parse().unwrap(), client_port: s.local_addr().unwrap().port(), vip, vip_port: port };
            (s, srv, k)
        };
        let conns: Vec<_> = (0..5).map(|_| connect()).collect();
        let (mut diag, shared) = Refresher::new();
        assert_eq!(diag.source(), Source::SockDiag);
        let (mut proc_, _) = Refresher::with_source(Source::Proc);
        let (known, per_bucket) = diag.collect(&c);
        assert_eq!(known, proc_.collect(&c).0, "sock_diag and /proc agree");
        for (_, _, k) in &conns {
            assert!(known.contains(k), "{k:?} in {known:?}");
            assert!(per_bucket[bucket_of(&c.hash_key, k.client, Some(k.client_port), 256) as usize] >= 1);
        }
        assert_eq!(known.len(), 5, "the listener and the clients' own sockets are not VIP flows: {known:?}");
        diag.publish(known, crate::run::now_ns(), REFRESH_PERIOD);
        let f = LcoreFlows::new(shared.clone());
        assert!(conns.iter().all(|(_, _, k)| f.is_known(k)));
        let mut conns = conns;
        let (cl, srv, gone) = conns.remove(0);
        drop(srv);
        drop(cl);
        std::thread::sleep(Duration::from_millis(20));
        let (known, _) = diag.collect(&c);
        assert_eq!(known, proc_.collect(&c).0);
        diag.publish(known, crate::run::now_ns(), REFRESH_PERIOD);
        assert!(!f.is_known(&gone), "closed: the kernel let it go, so does the snapshot");
        assert!(conns.iter().all(|(_, _, k)| f.is_known(k)));
    }

    #[test]
    fn the_cadence_stretches_on_costly_refreshes_only() {
        let mut c = Cadence::default();
        assert_eq!(c.period(), REFRESH_PERIOD);
        assert!(c.set_handover(true), "a handover begins: refresh now");
        assert!(!c.set_handover(true));
        assert_eq!(c.after(Duration::from_micros(300)), REFRESH_PERIOD);
        assert_eq!(c.after(Duration::from_millis(5)), Duration::from_millis(50), "a tenth of a CPU in a handover");
        assert_eq!(c.bound(), Duration::from_millis(255), "announces the idle period: may be put off that long");
        assert!(!c.set_handover(false));
        assert_eq!(c.period(), Duration::from_millis(250), "a fiftieth otherwise");
        assert_eq!(c.after(Duration::from_millis(200)), REFRESH_MAX_PERIOD);
        assert!(syn_ttl(REFRESH_MAX_PERIOD) > 2 * REFRESH_MAX_PERIOD);
    }

    #[test]
    fn handover_detection() {
        let e = |o, p| BucketEntry { owner: o, prev_owner: p };
        assert!(!handover_involves(&[e(1, NO_NODE), e(2, NO_NODE)], 1));
        assert!(handover_involves(&[e(1, 2)], 1));
        assert!(handover_involves(&[e(2, 1)], 1));
        assert!(!handover_involves(&[e(2, 3)], 1));
        assert!(!handover_involves(&[e(1, 1)], 1));
    }
}
