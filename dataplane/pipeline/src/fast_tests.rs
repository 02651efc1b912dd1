//! The fast path against the full path: same verdict, same frame rewrite,
//! same flow-tracker calls, on realistic frames and random edits of them.

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};

use farm_table::{Affinity, BucketEntry, HashKey, DEFAULT_BUCKETS, NO_NODE};
use farm_wire::gen::FrameBuilder;
use farm_wire::{EtherType, EthernetAddress, IpProtocol, TcpFlags, VlanTag, VlanTags};
use proptest::prelude::*;

use crate::classify::{classify, classify_full, REPLY_BUF_LEN};
use crate::config::{virtual_mac, PipelineConfig, PortRange, Protocol, Rule, Vip};
use crate::flows::{FlowKey, FlowTracker};
use crate::neigh::{classify_from_tap, from_tap_full};
use crate::table::StaticTable;
use crate::verdict::Verdict;

const ME: u8 = 1;
const NODE_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
const CLIENT_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x64]);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn config() -> PipelineConfig {
    let rule = |p, first, last, a| Rule::new(p, PortRange { first, last }, a);
    let rules = || {
        vec![
            rule(Protocol::Tcp, 80, 80, Affinity::OnAddr),
            rule(Protocol::Tcp, 443, 443, Affinity::OnPort),
            rule(Protocol::Udp, 53, 53, Affinity::OnAddr),
            rule(Protocol::Udp, 5000, 5100, Affinity::OnPort),
            rule(Protocol::Icmp, 0, 0, Affinity::OnAddr),
        ]
    };
    let vips = vec![
        Vip::new(ip("198.18.0.10"), rules()),
        Vip::new(
            ip("198.18.0.11"),
            vec![Rule::new(Protocol::Udp, PortRange::ALL, Affinity::OnAddr)],
        ),
        Vip::new(ip("2001:db8::a"), rules()),
    ];
    PipelineConfig::new(NODE_MAC, vips, DEFAULT_BUCKETS, HashKey::from_seed(0x5eed)).unwrap()
}

/// Every handover state of a bucket, and a mixed table.
fn tables() -> Vec<StaticTable> {
    let n = DEFAULT_BUCKETS as usize;
    let states = [
        BucketEntry::owned(ME),
        BucketEntry::owned(2),
        BucketEntry::UNOWNED,
        BucketEntry {
            owner: ME,
            prev_owner: 2,
        },
        BucketEntry {
            owner: 2,
            prev_owner: ME,
        },
        BucketEntry {
            owner: NO_NODE,
            prev_owner: ME,
        },
    ];
    let mut v: Vec<StaticTable> = states
        .iter()
        .map(|&e| StaticTable {
            node_id: ME,
            entries: vec![e; n],
        })
        .collect();
    v.push(StaticTable {
        node_id: ME,
        entries: (0..n).map(|i| BucketEntry::owned((i % 3) as u8)).collect(),
    });
    v
}

/// Answers `known` and records every call.
#[derive(Debug, Default)]
struct Recorder {
    known: bool,
    asked: Cell<u32>,
    accepted: Vec<(FlowKey, u32, Option<TcpFlags>)>,
}

impl FlowTracker for Recorder {
    fn is_known(&self, _: &FlowKey) -> bool {
        self.asked.set(self.asked.get() + 1);
        self.known
    }
    fn on_accept(&mut self, flow: &FlowKey, bucket: u32, tcp_flags: Option<TcpFlags>) {
        self.accepted.push((*flow, bucket, tcp_flags));
    }
}

fn tag_sets() -> [VlanTags; 3] {
    [
        VlanTags::new(),
        VlanTags::from_slice(&[VlanTag::new(EtherType::Vlan, 0, false, 42)]).unwrap(),
        VlanTags::from_slice(&[
            VlanTag::new(EtherType::QinQ, 3, false, 100),
            VlanTag::new(EtherType::Vlan, 0, false, 10),
        ])
        .unwrap(),
    ]
}

/// Uplink frames: VIP traffic on and off the rules, in every TCP state,
/// host and flooded traffic, and the neighbours of the fast path (IPv6,
/// ICMP, ARP, fragments).
fn frames() -> Vec<Vec<u8>> {
    let (va, vb, v6) = (ip("198.18.0.10"), ip("198.18.0.11"), ip("2001:db8::a"));
    let (c, c6, other) = (ip("198.19.7.100"), ip("2001:db8:7::100"), ip("198.18.0.9"));
    let flags = [
        TcpFlags::SYN,
        TcpFlags::ACK,
        TcpFlags::SYN | TcpFlags::ACK,
        TcpFlags::RST,
        TcpFlags::FIN | TcpFlags::ACK,
    ];
    let mut out = Vec::new();
    for tags in tag_sets() {
        for dst_mac in [
            virtual_mac(va),
            NODE_MAC,
            EthernetAddress::BROADCAST,
            CLIENT_MAC,
        ] {
            let b = FrameBuilder::new(CLIENT_MAC, dst_mac).with_tags(tags);
            for f in flags {
                for port in [80, 443, 81] {
                    out.push(b.tcp(c, va, 40000, port, f).unwrap());
                }
                out.push(b.tcp(c, vb, 40000, 80, f).unwrap());
                out.push(b.tcp(c6, v6, 40000, 80, f).unwrap());
            }
            for port in [53, 5000, 5100, 5101] {
                out.push(b.udp(c, va, 1024, port, b"q").unwrap());
            }
            out.push(b.udp(c, vb, 7, 9, b"").unwrap());
            out.push(b.udp(c, other, 7, 9, b"x").unwrap());
            out.push(b.tcp(c, other, 7, 80, TcpFlags::SYN).unwrap());
            out.push(b.udp(c6, v6, 1024, 5000, b"q").unwrap());
            out.push(b.echo_request(c, va, 1, 1).unwrap());
            let (c4, va4) = (
                Ipv4Addr::new(198, 19, 7, 100),
                Ipv4Addr::new(198, 18, 0, 10),
            );
            let (node4, other4) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 9));
            out.push(b.arp_request(c4, va4).unwrap());
            out.push(b.arp_request(Ipv4Addr::UNSPECIFIED, va4).unwrap());
            out.push(b.arp_request(va4, c4).unwrap());
            out.push(b.arp_request(va4, va4).unwrap());
            out.push(b.arp_request(c4, other4).unwrap());
            out.push(b.arp_reply(CLIENT_MAC, c4, virtual_mac(va), va4).unwrap());
            out.push(b.arp_reply(CLIENT_MAC, c4, NODE_MAC, node4).unwrap());
            out.push(
                b.ipv4_fragment(c4, va4, IpProtocol::Udp, 0, true, &[0; 32])
                    .unwrap(),
            );
        }
    }
    out
}

/// Uplink: the fast path and the full path agree on `frame` for every table
/// and flow answer. Returns whether the fast path took it.
fn same_uplink(cfg: &PipelineConfig, frame: &[u8]) -> Result<bool, TestCaseError> {
    let fast_taken = farm_wire::fast::ipv4_l4(frame).is_some();
    for table in &tables() {
        for known in [false, true] {
            let run = |full: bool| {
                let mut flows = Recorder {
                    known,
                    ..Recorder::default()
                };
                let mut f = frame.to_vec();
                let mut reply = [0u8; REPLY_BUF_LEN];
                let v = if full {
                    classify_full(cfg, table, &mut flows, &mut f, &mut reply)
                } else {
                    classify(cfg, table, &mut flows, &mut f, &mut reply)
                };
                let reply_bytes = match v {
                    Verdict::Reply { len, .. } => reply[..len].to_vec(),
                    _ => Vec::new(),
                };
                (v, f, reply_bytes, flows.asked.get(), flows.accepted)
            };
            prop_assert_eq!(run(false), run(true), "frame {:02x?}", frame);
        }
    }
    Ok(fast_taken)
}

/// TAP: the fast path and the full path agree. Returns whether the fast
/// path took it.
fn same_tap(cfg: &PipelineConfig, frame: &[u8]) -> Result<bool, TestCaseError> {
    let fast_taken = crate::fast::tap_frame_passes(cfg, frame);
    let (mut a, mut b) = (frame.to_vec(), frame.to_vec());
    let va = classify_from_tap(cfg, &mut a);
    let vb = from_tap_full(cfg, &mut b);
    prop_assert_eq!((va, a), (vb, b), "frame {:02x?}", frame);
    Ok(fast_taken)
}

#[test]
fn uplink_fast_path_matches_full_path() {
    let cfg = config();
    let frames = frames();
    let mut taken = 0;
    for f in &frames {
        taken += usize::from(same_uplink(&cfg, f).unwrap());
    }
    // Per tag set and destination MAC: 25 TCP to VIPs and 4 UDP to VIP A,
    // 1 UDP to VIP B, 2 to another address (IPv4) are fast; the 5 IPv6 TCP,
    // the IPv6 UDP, ICMP, ARP and the fragment are not. QinQ is never fast.
    assert_eq!(taken, 2 * 4 * (20 + 4 + 1 + 2));
}

#[test]
fn tap_fast_path_matches_full_path() {
    let cfg = config();
    let vmac = virtual_mac(ip("198.18.0.10"));
    let mut taken = 0;
    let mut total = 0;
    for f in frames() {
        // As the kernel sends them: from the node, or (misconfigured) from a virtual MAC.
        for src in [NODE_MAC, vmac] {
            let mut f = f.clone();
            f[6..12].copy_from_slice(&src.0);
            taken += usize::from(same_tap(&cfg, &f).unwrap());
            total += 1;
        }
    }
    // Untagged IPv4 and IPv6 TCP/UDP from the node MAC: fast.
    assert_eq!(taken, 4 * (20 + 4 + 1 + 2 + 5 + 1 + 2));
    assert!(total > taken);
}

/// `Pipeline::run_once` (fast paths) must equal the
/// full classifier applied frame by frame (verdicts, rewrites, flow tracker
/// calls, counters), flow answers included.
#[test]
fn run_once_matches_full_classifier_frame_by_frame() {
    use crate::poll::{Pipeline, Tally};
    use crate::port::{LoopbackPort, VecFrame};
    let cfg = config();
    let frames = frames();
    for table in &tables() {
        for known in [false, true] {
            let mut p = Pipeline::<VecFrame>::new(cfg.clone(), 2 * frames.len());
            let (mut up, mut tap) = (LoopbackPort::new(), LoopbackPort::new());
            for f in &frames {
                up.inject(f.clone());
            }
            // From the kernel: the same frames, some from a virtual MAC (dropped
            // or not), so that runs of forwarded frames are cut in various places.
            let vmac = virtual_mac(ip("198.18.0.10"));
            let from_kernel: Vec<Vec<u8>> = frames
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let mut f = f.clone();
                    if i % 7 == 3 || i % 11 == 0 {
                        f[6..12].copy_from_slice(&vmac.0);
                    }
                    f
                })
                .collect();
            for f in &from_kernel {
                tap.inject(f.clone());
            }
            let mut flows = Recorder {
                known,
                ..Recorder::default()
            };
            let mut tally = Tally::new();
            p.run_once(&mut up, &mut tap, table, &mut flows, &mut tally);

            let mut want_flows = Recorder {
                known,
                ..Recorder::default()
            };
            let mut want_tally = Tally::new();
            want_tally.add(farm_table::Counter::Rx, frames.len() as u64);
            let (mut want_tap, mut want_wire) = (Vec::new(), Vec::new());
            for f in &frames {
                let mut f = f.clone();
                let mut reply = [0u8; REPLY_BUF_LEN];
                let v = classify_full(&cfg, table, &mut want_flows, &mut f, &mut reply);
                want_tally.count(v);
                match v {
                    Verdict::ToTap(_) => want_tap.push(f),
                    Verdict::Reply { len, .. } => want_wire.push(reply[..len].to_vec()),
                    Verdict::ToWire => want_wire.push(f),
                    Verdict::Drop(_) => {}
                }
            }
            want_tally.add(farm_table::Counter::TapRx, from_kernel.len() as u64);
            for f in &from_kernel {
                let mut f = f.clone();
                let v = from_tap_full(&cfg, &mut f);
                want_tally.count(v);
                if v == Verdict::ToWire {
                    want_wire.push(f);
                }
            }
            assert!(want_wire.len() > frames.len() / 2 && want_wire.len() < 2 * frames.len());
            assert_eq!(tap.take_sent(), want_tap);
            assert_eq!(up.take_sent(), want_wire);
            assert_eq!(tally, want_tally);
            assert_eq!(flows.accepted, want_flows.accepted);
            assert_eq!(flows.asked.get(), want_flows.asked.get());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn fast_paths_match_full_paths_on_mutations(
        pick in any::<prop::sample::Index>(),
        flips in prop::collection::vec((0usize..80, any::<u8>()), 0..3),
        cut in any::<prop::sample::Index>(),
        vmac_src in any::<bool>(),
    ) {
        let cfg = config();
        let frames = frames();
        let mut f = frames[pick.index(frames.len())].clone();
        if vmac_src {
            f[6..12].copy_from_slice(&virtual_mac(ip("198.18.0.11")).0);
        }
        for (i, v) in flips {
            if let Some(b) = f.get_mut(i) {
                *b = v;
            }
        }
        let cut = cut.index(f.len() + 1).max(f.len() * 3 / 4);
        same_uplink(&cfg, &f[..cut])?;
        same_tap(&cfg, &f[..cut])?;
    }
}
