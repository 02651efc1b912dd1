//! Arbitrary bytes through the whole receive path: `summarize`,
//! `FrameRepr::parse`, `classify` (uplink) and `classify_from_tap`.
//!
//! The first input byte picks the table state and the flow tracker's
//! answer; the rest is the frame. Besides "never panics", it checks the
//! invariants the farm relies on:
//! - a reply parses, leaves from the node's MAC (never a virtual MAC) and
//!   fits the reply buffer;
//! - accepted VIP traffic is rewritten to the TAP's MAC, nothing else changes;
//! - drops and replies leave the frame untouched;
//! - the TAP direction never emits a frame whose source is a virtual MAC.

#![no_main]

use std::sync::OnceLock;

use farm_pipeline::*;
use farm_table::{Affinity, BucketEntry, HashKey, DEFAULT_BUCKETS, NO_NODE};
use farm_wire::{summarize, EthernetAddress, FrameRepr};
use libfuzzer_sys::fuzz_target;

const ME: u8 = 1;
const NODE_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);

fn config() -> &'static PipelineConfig {
    static CFG: OnceLock<PipelineConfig> = OnceLock::new();
    CFG.get_or_init(|| {
        let rules = || {
            vec![
                Rule::new(Protocol::Tcp, PortRange::single(80), Affinity::OnAddr),
                Rule::new(Protocol::Tcp, PortRange::single(443), Affinity::OnPort),
                Rule::new(
                    Protocol::Udp,
                    PortRange {
                        first: 53,
                        last: 53,
                    },
                    Affinity::OnAddr,
                ),
                Rule::new(
                    Protocol::Udp,
                    PortRange {
                        first: 5000,
                        last: 5100,
                    },
                    Affinity::OnPort,
                ),
                Rule::new(Protocol::Icmp, PortRange::ALL, Affinity::OnAddr),
            ]
        };
        let vips = vec![
            Vip::new("198.18.0.10".parse().unwrap(), rules()),
            Vip::new(
                "198.18.0.11".parse().unwrap(),
                vec![Rule::new(Protocol::Udp, PortRange::ALL, Affinity::OnAddr)],
            ),
            Vip::new("2001:db8::a".parse().unwrap(), rules()),
        ];
        PipelineConfig::new(NODE_MAC, vips, DEFAULT_BUCKETS, HashKey::from_seed(0x5eed)).unwrap()
    })
}

fn tables() -> &'static [StaticTable] {
    static T: OnceLock<Vec<StaticTable>> = OnceLock::new();
    T.get_or_init(|| {
        let n = DEFAULT_BUCKETS as usize;
        let entries = [
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
        let mut v: Vec<StaticTable> = entries
            .iter()
            .map(|&e| StaticTable {
                node_id: ME,
                entries: vec![e; n],
            })
            .collect();
        // A mixed table: bucket i owned by i % 3.
        v.push(StaticTable {
            node_id: ME,
            entries: (0..n).map(|i| BucketEntry::owned((i % 3) as u8)).collect(),
        });
        v
    })
}

struct Knows(bool);

impl FlowTracker for Knows {
    fn is_known(&self, _: &FlowKey) -> bool {
        self.0
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, frame)) = data.split_first() else {
        return;
    };
    let cfg = config();
    let tables = tables();
    let table = &tables[usize::from(sel & 0x7f) % tables.len()];
    let mut flows = Knows(sel & 0x80 != 0);

    let summary = summarize(frame);
    let _ = FrameRepr::parse(frame);

    let mut f = frame.to_vec();
    let mut reply = [0u8; REPLY_BUF_LEN];
    let v = classify(cfg, table, &mut flows, &mut f, &mut reply);
    match v {
        Verdict::Reply { len, .. } => {
            assert!(len <= REPLY_BUF_LEN);
            let r = summarize(&reply[..len]).expect("replies parse");
            assert_eq!(r.src_mac, NODE_MAC, "replies leave from the node MAC");
            assert!(
                FrameRepr::parse(&reply[..len]).is_ok(),
                "reply checksums are valid"
            );
            assert_eq!(f, frame);
        }
        Verdict::ToTap(Delivery::Vip | Delivery::VipHandoverKept | Delivery::VipNeighbor) => {
            assert_eq!(&f[..6], &NODE_MAC.0);
            assert_eq!(&f[6..], &frame[6..]);
        }
        Verdict::ToTap(_) => assert_eq!(f, frame),
        Verdict::Drop(r) => {
            assert_eq!(f, frame);
            if summary.is_err() {
                assert_eq!(r, DropReason::Malformed);
            }
        }
        Verdict::ToWire => panic!("uplink frames never go back to the wire unchanged"),
    }

    let mut t = frame.to_vec();
    let v = classify_from_tap(cfg, &mut t);
    match v {
        Verdict::ToWire => {
            if let Ok(s) = summarize(&t) {
                assert!(
                    cfg.vip_by_vmac(s.src_mac).is_none(),
                    "virtual MAC as source"
                );
            }
            assert_eq!(t.len(), frame.len());
        }
        Verdict::Drop(_) => assert_eq!(t, frame),
        other => panic!("unexpected TAP verdict {other:?}"),
    }
});
