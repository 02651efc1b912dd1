//! Shared fixtures for the classifier tests: a two-VIP configuration in
//! both families, tables that make exactly one bucket ours, a recording
//! flow tracker, and frame builders with or without VLAN tags.
#![allow(dead_code)]

use std::collections::HashSet;
use std::net::IpAddr;

use farm_pipeline::*;
use farm_table::{bucket_of, Affinity, BucketEntry, HashKey, DEFAULT_BUCKETS, NO_NODE};
use farm_wire::gen::FrameBuilder;
use farm_wire::{EtherType, EthernetAddress, TcpFlags, VlanTag, VlanTags};

pub const ME: u8 = 1;
pub const OTHER: u8 = 2;
pub const NODE_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
pub const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
pub const CLIENT_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x64]);
pub const ROUTER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0xfe]);

/// Addresses of one family.
#[derive(Debug, Clone, Copy)]
pub struct Fam {
    pub name: &'static str,
    /// VIP A: tcp 80 on_addr, tcp 443 on_port, udp 53 on_addr, udp 5000-5100 on_port, icmp.
    pub vip_a: IpAddr,
    /// VIP B: tcp 80 on_addr, udp 53 on_addr (no icmp, no on_port).
    pub vip_b: IpAddr,
    pub client: IpAddr,
    pub node: IpAddr,
    pub router: IpAddr,
    pub unspecified: IpAddr,
}

pub fn v4() -> Fam {
    Fam {
        name: "v4",
        vip_a: "198.18.0.10".parse().unwrap(),
        vip_b: "198.18.0.11".parse().unwrap(),
        client: "198.19.7.100".parse().unwrap(),
        node: "198.18.0.1".parse().unwrap(),
        router: "198.18.255.254".parse().unwrap(),
        unspecified: "0.0.0.0".parse().unwrap(),
    }
}

pub fn v6() -> Fam {
    Fam {
        name: "v6",
        vip_a: "2001:db8::a".parse().unwrap(),
        vip_b: "2001:db8::b".parse().unwrap(),
        client: "2001:db8:7::100".parse().unwrap(),
        node: "2001:db8::1".parse().unwrap(),
        router: "2001:db8::fffe".parse().unwrap(),
        unspecified: "::".parse().unwrap(),
    }
}

pub fn families() -> [Fam; 2] {
    [v4(), v6()]
}

/// No tags, one C-tag, QinQ.
pub fn tag_sets() -> [VlanTags; 3] {
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

pub const KEY_SEED: u64 = 0x5eed;

fn rule(p: Protocol, first: u16, last: u16, a: Affinity) -> Rule {
    Rule::new(p, PortRange { first, last }, a)
}

fn vips(f: &Fam) -> Vec<Vip> {
    vec![
        Vip::new(
            f.vip_a,
            vec![
                rule(Protocol::Tcp, 80, 80, Affinity::OnAddr),
                rule(Protocol::Tcp, 443, 443, Affinity::OnPort),
                rule(Protocol::Udp, 53, 53, Affinity::OnAddr),
                rule(Protocol::Udp, 5000, 5100, Affinity::OnPort),
                rule(Protocol::Icmp, 0, 0, Affinity::OnAddr),
            ],
        ),
        Vip::new(
            f.vip_b,
            vec![
                rule(Protocol::Tcp, 80, 80, Affinity::OnAddr),
                rule(Protocol::Udp, 53, 53, Affinity::OnAddr),
            ],
        ),
    ]
}

/// Both families' VIPs in one configuration.
pub fn config() -> PipelineConfig {
    let mut all = vips(&v4());
    all.extend(vips(&v6()));
    PipelineConfig::new(NODE_MAC, all, DEFAULT_BUCKETS, HashKey::from_seed(KEY_SEED)).unwrap()
}

pub fn bucket(cfg: &PipelineConfig, ip: IpAddr, port: Option<u16>) -> u32 {
    bucket_of(&cfg.hash_key, ip, port, cfg.n_buckets)
}

/// `hit` for bucket `b`, `rest` elsewhere; the classifier only accepts what
/// hashes exactly to `b`.
pub fn only(b: u32, hit: BucketEntry, rest: BucketEntry) -> StaticTable {
    let mut t = StaticTable {
        node_id: ME,
        entries: vec![rest; DEFAULT_BUCKETS as usize],
    };
    t.entries[b as usize] = hit;
    t
}

pub fn mine() -> BucketEntry {
    BucketEntry::owned(ME)
}
pub fn theirs() -> BucketEntry {
    BucketEntry::owned(OTHER)
}
pub fn unowned() -> BucketEntry {
    BucketEntry::UNOWNED
}
/// Handover: I am the new owner.
pub fn taking_over() -> BucketEntry {
    BucketEntry {
        owner: ME,
        prev_owner: OTHER,
    }
}
/// Handover: I am the previous owner.
pub fn handing_over() -> BucketEntry {
    BucketEntry {
        owner: OTHER,
        prev_owner: ME,
    }
}
pub const NONE: u8 = NO_NODE;

/// Records accepted flows; knows what it was told.
#[derive(Debug, Default)]
pub struct Flows {
    pub known: HashSet<FlowKey>,
    pub accepted: Vec<(FlowKey, u32, Option<TcpFlags>)>,
}

impl FlowTracker for Flows {
    fn is_known(&self, f: &FlowKey) -> bool {
        self.known.contains(f)
    }
    fn on_accept(&mut self, f: &FlowKey, bucket: u32, flags: Option<TcpFlags>) {
        self.accepted.push((*f, bucket, flags));
    }
}

/// A client frame to the VIP's virtual MAC with `tags`.
pub fn from_client(cfg: &PipelineConfig, f: &Fam, tags: VlanTags) -> FrameBuilder {
    FrameBuilder::new(CLIENT_MAC, cfg.vip(f.vip_a).unwrap().vmac).with_tags(tags)
}

/// Classifies a frame from the uplink; returns the verdict, the frame as
/// left by the classifier and the reply bytes.
pub fn run(
    cfg: &PipelineConfig,
    t: &StaticTable,
    flows: &mut Flows,
    frame: &[u8],
) -> (Verdict, Vec<u8>, Vec<u8>) {
    let mut f = frame.to_vec();
    let mut reply = [0u8; REPLY_BUF_LEN];
    let v = classify(cfg, t, flows, &mut f, &mut reply);
    let r = match v {
        Verdict::Reply { len, .. } => reply[..len].to_vec(),
        _ => Vec::new(),
    };
    (v, f, r)
}

/// Asserts an accepted VIP frame: verdict, destination MAC rewritten, the rest unchanged.
pub fn assert_accepted(
    what: &str,
    got: &(Verdict, Vec<u8>, Vec<u8>),
    original: &[u8],
    d: Delivery,
) {
    assert_eq!(got.0, Verdict::ToTap(d), "{what}");
    assert_eq!(
        &got.1[..6],
        &NODE_MAC.0,
        "{what}: destination MAC rewritten"
    );
    assert_eq!(&got.1[6..], &original[6..], "{what}: nothing else changed");
}

pub fn assert_dropped(
    what: &str,
    got: &(Verdict, Vec<u8>, Vec<u8>),
    original: &[u8],
    r: DropReason,
) {
    assert_eq!(got.0, Verdict::Drop(r), "{what}");
    assert_eq!(got.1, original, "{what}: dropped frames are not modified");
}
