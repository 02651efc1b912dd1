//! Which flows this node holds, for bucket handover (DESIGN.md invariant I2).
//!
//! The kernel behind the TAP is the authority on which connections this node serves: its TCP
//! socket table. A background refresher (the data plane's main thread) reads
//! `/proc/net/tcp{,6}` of the node's network namespace, keeps the connections whose local
//! address is a VIP, publishes them to the workers as an immutable set (swapped atomically,
//! never locked), and writes the number of live connections per bucket into the table file,
//! where farmd reads which buckets it still drains.
//!
//! A new owner must also recognise connections it accepted since the handover began, before
//! the next refresh: each worker remembers the SYNs it accepted over the last two refresh
//! periods. Nothing of this costs anything on the hot path outside a handover: the pipeline
//! asks [`FlowTracker::is_known`] only for buckets being handed over, and `on_accept` looks at
//! TCP SYNs only.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use arc_swap::ArcSwap;
use farm_pipeline::{FlowKey, FlowTracker, PipelineConfig, Protocol};
use farm_table::{bucket_of, Affinity, BucketEntry, TableReader, NO_NODE};
use farm_wire::{IpProtocol, TcpFlags};

/// SYNs a worker remembers per refresh period (bounds memory under a SYN flood).
const SYN_MEMORY: usize = 65536;

/// The kernel's VIP connections at one refresh.
#[derive(Debug, Default)]
pub struct FlowSnapshot {
    /// Incremented at every refresh.
    pub epoch: u64,
    /// The connections.
    pub known: HashSet<FlowKey>,
}

/// Shared between the refresher and the workers.
pub type SharedFlows = Arc<ArcSwap<FlowSnapshot>>;

/// A worker's [`FlowTracker`].
#[derive(Debug)]
pub struct LcoreFlows {
    shared: SharedFlows,
    syns: [HashSet<FlowKey>; 2],
    cur: usize,
    epoch: u64,
}

impl LcoreFlows {
    /// A tracker reading `shared`.
    pub fn new(shared: SharedFlows) -> LcoreFlows {
        LcoreFlows { shared, syns: [HashSet::new(), HashSet::new()], cur: 0, epoch: 0 }
    }
}

impl FlowTracker for LcoreFlows {
    fn is_known(&self, flow: &FlowKey) -> bool {
        self.syns.iter().any(|s| s.contains(flow)) || self.shared.load().known.contains(flow)
    }

    #[inline]
    fn on_accept(&mut self, flow: &FlowKey, _bucket: u32, tcp_flags: Option<TcpFlags>) {
        let Some(f) = tcp_flags else { return };
        if !f.is_syn_only() {
            return;
        }
        let epoch = self.shared.load().epoch;
        if epoch != self.epoch {
            // A refresh happened: SYNs older than two periods are in the kernel's table now.
            self.epoch = epoch;
            self.cur ^= 1;
            self.syns[self.cur].clear();
        }
        if self.syns[self.cur].len() < SYN_MEMORY {
            self.syns[self.cur].insert(*flow);
        }
    }
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

const TCP_TIME_WAIT: u8 = 6;
const TCP_CLOSE: u8 = 7;
const TCP_LISTEN: u8 = 10;

fn parse_addr(s: &str) -> Option<(IpAddr, u16)> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    // The kernel prints each 32-bit word of the address as a native-endian integer.
    let word = |i: usize| u32::from_str_radix(a.get(8 * i..8 * i + 8)?, 16).ok().map(u32::to_ne_bytes);
    let ip = match a.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[4 * i..4 * i + 4].copy_from_slice(&word(i)?);
            }
            let v6 = Ipv6Addr::from(b);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some((ip, port))
}

/// Parses the text of `/proc/net/tcp` or `/proc/net/tcp6`; malformed lines are skipped.
pub fn parse_proc_net_tcp(text: &str) -> Vec<Socket> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace().skip(1);
            let local = parse_addr(f.next()?)?;
            let remote = parse_addr(f.next()?)?;
            let state = u8::from_str_radix(f.next()?, 16).ok()?;
            Some(Socket { local, remote, state })
        })
        .collect()
}

/// The kernel's connections to a VIP, and their count per bucket.
pub fn vip_flows(cfg: &PipelineConfig, sockets: &[Socket]) -> (HashSet<FlowKey>, Vec<u32>) {
    let mut known = HashSet::new();
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
        known.insert(flow);
    }
    (known, per_bucket)
}

/// True when a bucket is being handed over to or from node `me`.
pub fn handover_involves(entries: &[BucketEntry], me: u8) -> bool {
    entries.iter().any(|e| e.prev_owner != NO_NODE && e.prev_owner != e.owner && (e.owner == me || e.prev_owner == me))
}

/// Reads the kernel's tables, publishes the snapshot and the per-bucket counts.
#[derive(Debug)]
pub struct Refresher {
    shared: SharedFlows,
    epoch: u64,
}

impl Refresher {
    /// A refresher and the handle workers read.
    pub fn new() -> (Refresher, SharedFlows) {
        let shared: SharedFlows = Arc::new(ArcSwap::from_pointee(FlowSnapshot::default()));
        (Refresher { shared: shared.clone(), epoch: 0 }, shared)
    }

    /// One refresh.
    pub fn refresh(&mut self, cfg: &PipelineConfig, table: &TableReader) {
        let mut sockets = Vec::new();
        for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
            match std::fs::read_to_string(f) {
                Ok(t) => sockets.extend(parse_proc_net_tcp(&t)),
                Err(e) => tracing::debug!(file = f, error = %e, "cannot read the socket table"),
            }
        }
        let (known, per_bucket) = vip_flows(cfg, &sockets);
        for (cell, n) in table.flows().iter().zip(per_bucket) {
            cell.store(n, Ordering::Relaxed);
        }
        self.epoch += 1;
        self.shared.store(Arc::new(FlowSnapshot { epoch: self.epoch, known }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use farm_pipeline::{PortRange, Rule, Vip};
    use farm_table::HashKey;
    use farm_wire::EthernetAddress;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 640012C6:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 640012C6:0050 010112C6:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   2: 640012C6:0050 020112C6:9C41 06 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
   3: 010012C6:0016 030112C6:9C42 01 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 20 4 30 10 -1
   4: garbage
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st
   0: 0000000000000000FFFF0000640012C6:0050 0000000000000000FFFF0000040112C6:9C43 03 00000000:00000000
   1: B80D0120000000000000000001000000:01BB B80D0120000000000000000002000000:D431 01 00000000:00000000
";

    fn cfg() -> PipelineConfig {
        let vips = vec![
            Vip::new("198.18.0.100".parse().unwrap(), vec![Rule::new(Protocol::Tcp, PortRange::single(80), Affinity::OnAddr)]),
            Vip::new("2001:db8::1".parse().unwrap(), vec![Rule::new(Protocol::Tcp, PortRange::single(443), Affinity::OnPort)]),
        ];
        PipelineConfig::new(EthernetAddress([2, 0, 0, 0, 0, 1]), vips, 256, HashKey::from_seed(5)).unwrap()
    }

    #[test]
    fn parses_the_kernels_tables() {
        let s = parse_proc_net_tcp(TCP);
        assert_eq!(s.len(), 4, "the garbage line is skipped");
        assert_eq!(s[1].local, ("198.18.0.100".parse().unwrap(), 80));
        assert_eq!(s[1].remote, ("198.18.1.1".parse().unwrap(), 40000));
        assert_eq!(s[0].state, TCP_LISTEN);
        let s6 = parse_proc_net_tcp(TCP6);
        assert_eq!(s6[0].remote, ("198.18.1.4".parse().unwrap(), 40003), "v4-mapped becomes v4");
        assert_eq!(s6[1].local, ("2001:db8::1".parse().unwrap(), 443));
        assert_eq!(s6[1].remote, ("2001:db8::2".parse().unwrap(), 0xd431));
    }

    #[test]
    fn keeps_live_vip_connections_and_counts_them_per_bucket() {
        let c = cfg();
        let mut sockets = parse_proc_net_tcp(TCP);
        sockets.extend(parse_proc_net_tcp(TCP6));
        let (known, per_bucket) = vip_flows(&c, &sockets);
        // listen, time-wait and the non-VIP socket are left out
        assert_eq!(known.len(), 3, "{known:?}");
        assert!(known.contains(&FlowKey {
            protocol: IpProtocol::Tcp,
            client: "198.18.1.1".parse().unwrap(),
            client_port: 40000,
            vip: "198.18.0.100".parse().unwrap(),
            vip_port: 80,
        }));
        assert_eq!(per_bucket.iter().sum::<u32>(), 3);
        let b = bucket_of(&c.hash_key, "198.18.1.1".parse().unwrap(), None, 256) as usize;
        assert!(per_bucket[b] >= 1);
        let b6 = bucket_of(&c.hash_key, "2001:db8::2".parse().unwrap(), Some(0xd431), 256) as usize;
        assert!(per_bucket[b6] >= 1, "on_port rule hashes the port");
    }

    #[test]
    fn workers_remember_their_syns_across_one_refresh() {
        let (_r, shared) = Refresher::new();
        let mut f = LcoreFlows::new(shared.clone());
        let k = FlowKey {
            protocol: IpProtocol::Tcp,
            client: "198.18.1.9".parse().unwrap(),
            client_port: 1,
            vip: "198.18.0.100".parse().unwrap(),
            vip_port: 80,
        };
        assert!(!f.is_known(&k));
        f.on_accept(&k, 0, Some(TcpFlags::ACK));
        assert!(!f.is_known(&k), "only SYNs open a flow");
        f.on_accept(&k, 0, Some(TcpFlags::SYN));
        assert!(f.is_known(&k));
        let bump = |e: u64| shared.store(Arc::new(FlowSnapshot { epoch: e, known: HashSet::new() }));
        let k2 = FlowKey { client_port: 2, ..k };
        bump(1);
        f.on_accept(&k2, 0, Some(TcpFlags::SYN));
        assert!(f.is_known(&k), "kept for one more period");
        bump(2);
        f.on_accept(&FlowKey { client_port: 3, ..k }, 0, Some(TcpFlags::SYN));
        assert!(!f.is_known(&k), "forgotten after two periods (the kernel table has it by then)");
        assert!(f.is_known(&k2));
        shared.store(Arc::new(FlowSnapshot { epoch: 3, known: [k].into_iter().collect() }));
        assert!(f.is_known(&k), "from the kernel's table");
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
