//! Table-driven tests of step 1 (ARP / ND for VIPs), step 4 (the node's own
//! frames), malformed input, and the TAP -> uplink direction.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::*;
use farm_pipeline::*;
use farm_wire::gen::FrameBuilder;
use farm_wire::icmpv6::Icmpv6Repr;
use farm_wire::ndisc::NeighborFlags;
use farm_wire::{
    ArpOperation, EthernetAddress, FrameRepr, IpPayload, NdiscRepr, PacketRepr, TcpFlags, VlanTags,
};

fn v4a(ip: IpAddr) -> Ipv4Addr {
    match ip {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => unreachable!(),
    }
}

fn v6a(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V6(a) => a,
        IpAddr::V4(_) => unreachable!(),
    }
}

/// A request for `target` from `sender`: ARP for IPv4, NS for IPv6.
fn solicit(b: &FrameBuilder, sender: IpAddr, target: IpAddr) -> Vec<u8> {
    match (sender, target) {
        (IpAddr::V4(s), IpAddr::V4(t)) => b
            .to_mac(EthernetAddress::BROADCAST)
            .arp_request(s, t)
            .unwrap(),
        (IpAddr::V6(s), IpAddr::V6(t)) => b
            .to_mac(farm_wire::ipv6::multicast_mac(
                farm_wire::ipv6::solicited_node(t),
            ))
            .neighbor_solicit(s, t)
            .unwrap(),
        _ => unreachable!(),
    }
}

/// An answer "`target` is at `mac`" from `sender` to `to`: ARP reply or NA.
fn advertise(
    b: &FrameBuilder,
    sender: IpAddr,
    to: IpAddr,
    target: IpAddr,
    mac: EthernetAddress,
) -> Vec<u8> {
    match (sender, to) {
        (IpAddr::V4(s), IpAddr::V4(d)) => b.arp_reply(mac, s, b.dst_mac, d).unwrap(),
        (IpAddr::V6(s), IpAddr::V6(d)) => b
            .neighbor_advert(
                s,
                d,
                v6a(target),
                NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE,
                Some(mac),
            )
            .unwrap(),
        _ => unreachable!(),
    }
}

#[test]
fn a_vip_is_resolved_by_the_owner_of_the_requester_only() {
    let cfg = config();
    for fam in families() {
        for tags in tag_sets() {
            let ctx = format!("{} {} tags", fam.name, tags.len());
            let b = FrameBuilder::new(CLIENT_MAC, EthernetAddress::BROADCAST).with_tags(tags);
            let req = solicit(&b, fam.client, fam.vip_a);
            let bk = bucket(&cfg, fam.client, None);
            let (v, frame, reply) = run(
                &cfg,
                &only(bk, mine(), theirs()),
                &mut Flows::default(),
                &req,
            );
            let kind = if fam.client.is_ipv4() {
                ReplyKind::Arp
            } else {
                ReplyKind::Nd
            };
            assert_eq!(
                v,
                Verdict::Reply {
                    len: reply.len(),
                    kind
                },
                "{ctx}"
            );
            assert_eq!(frame, req, "{ctx}: the request itself is untouched");
            check_reply(&cfg, &fam, tags, &reply, &ctx);

            // Nobody else answers; the previous owner answers while the bucket is unowned.
            for (entry, answers) in [
                (theirs(), false),
                (taking_over(), true),
                (handing_over(), false),
                (unowned(), false),
                (
                    farm_table::BucketEntry {
                        owner: NONE,
                        prev_owner: ME,
                    },
                    true,
                ),
            ] {
                let (v, _, _) = run(&cfg, &only(bk, entry, mine()), &mut Flows::default(), &req);
                assert_eq!(
                    matches!(v, Verdict::Reply { .. }),
                    answers,
                    "{ctx} {entry:?}: {v:?}"
                );
                if !answers {
                    assert_eq!(v, Verdict::Drop(DropReason::NeighNotMine), "{ctx}");
                }
            }

            // Probes / DAD (unspecified sender) and claims from a VIP are never answered nor given to the kernel.
            let all_mine = StaticTable::all_owned_by(ME, ME, cfg.n_buckets);
            for (what, frame) in [
                ("probe", solicit(&b, fam.unspecified, fam.vip_a)),
                ("from a vip", solicit(&b, fam.vip_b, fam.vip_a)),
                (
                    "another node's kernel resolving a client",
                    solicit(&b, fam.vip_a, fam.client),
                ),
                (
                    "an announcement of the vip",
                    advertise(&b, fam.vip_a, fam.client, fam.vip_a, PEER_MAC),
                ),
            ] {
                let got = run(&cfg, &all_mine, &mut Flows::default(), &frame);
                assert_dropped(
                    &format!("{ctx} {what}"),
                    &got,
                    &frame,
                    DropReason::NeighNotMine,
                );
            }

            // The answer to a solicitation a node's kernel sent from the VIP reaches every kernel.
            let vmac = cfg.vip(fam.vip_a).unwrap().vmac;
            let ans = advertise(
                &FrameBuilder::new(CLIENT_MAC, vmac).with_tags(tags),
                fam.client,
                fam.vip_a,
                fam.client,
                CLIENT_MAC,
            );
            let got = run(
                &cfg,
                &StaticTable::all_owned_by(ME, OTHER, cfg.n_buckets),
                &mut Flows::default(),
                &ans,
            );
            assert_accepted(&ctx, &got, &ans, Delivery::VipNeighbor);

            // Solicitations for the node's own address are the kernel's business.
            let own = solicit(&b, fam.client, fam.node);
            let got = run(&cfg, &all_mine, &mut Flows::default(), &own);
            assert_eq!(got.0, Verdict::ToTap(Delivery::Host), "{ctx}");
            assert_eq!(got.1, own, "{ctx}: unchanged");
        }
    }
}

fn check_reply(cfg: &PipelineConfig, fam: &Fam, tags: VlanTags, reply: &[u8], ctx: &str) {
    let vmac = cfg.vip(fam.vip_a).unwrap().vmac;
    assert!(reply.len() >= 60, "{ctx}: padded");
    let r = FrameRepr::parse(reply).unwrap_or_else(|e| panic!("{ctx}: reply does not parse: {e}"));
    assert_eq!(
        r.ethernet.src_addr, NODE_MAC,
        "{ctx}: never the virtual MAC as Ethernet source"
    );
    assert_eq!(r.ethernet.dst_addr, CLIENT_MAC, "{ctx}");
    assert_eq!(r.ethernet.tags, tags, "{ctx}: same VLAN");
    match r.packet {
        PacketRepr::Arp(a) => {
            assert_eq!(a.operation, ArpOperation::Reply);
            assert_eq!(
                (a.source_hardware_addr, a.source_protocol_addr),
                (vmac, v4a(fam.vip_a)),
                "{ctx}"
            );
            assert_eq!(
                (a.target_hardware_addr, a.target_protocol_addr),
                (CLIENT_MAC, v4a(fam.client)),
                "{ctx}"
            );
        }
        PacketRepr::Ipv6 {
            header,
            payload: IpPayload::Icmpv6(Icmpv6Repr::Ndisc(na)),
        } => {
            assert_eq!(
                (header.src_addr, header.dst_addr, header.hop_limit),
                (v6a(fam.vip_a), v6a(fam.client), 255)
            );
            assert_eq!(
                na,
                NdiscRepr::NeighborAdvert {
                    flags: NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE,
                    target_addr: v6a(fam.vip_a),
                    lladdr: Some(vmac)
                },
                "{ctx}"
            );
        }
        other => panic!("{ctx}: {other:?}"),
    }
}

#[test]
fn ns_with_a_bad_hop_limit_is_malformed() {
    let cfg = config();
    let fam = v6();
    let mut ns = solicit(
        &FrameBuilder::new(CLIENT_MAC, EthernetAddress::BROADCAST),
        fam.client,
        fam.vip_a,
    );
    ns[14 + 7] = 64;
    let got = run(
        &cfg,
        &StaticTable::all_owned_by(ME, ME, cfg.n_buckets),
        &mut Flows::default(),
        &ns,
    );
    assert_dropped("hop limit 64", &got, &ns, DropReason::Malformed);
}

#[test]
fn a_small_reply_buffer_is_a_counted_drop() {
    let cfg = config();
    let fam = v4();
    let req = solicit(
        &FrameBuilder::new(CLIENT_MAC, EthernetAddress::BROADCAST),
        fam.client,
        fam.vip_a,
    );
    let mut f = req.clone();
    let v = classify(
        &cfg,
        &StaticTable::all_owned_by(ME, ME, cfg.n_buckets),
        &mut Flows::default(),
        &mut f,
        &mut [0u8; 59],
    );
    assert_eq!(v, Verdict::Drop(DropReason::NoBuffer));
}

#[test]
fn frames_for_the_node_and_flooded_frames() {
    let cfg = config();
    let all_mine = StaticTable::all_owned_by(ME, ME, cfg.n_buckets);
    for fam in families() {
        for tags in tag_sets() {
            let ctx = format!("{} {} tags", fam.name, tags.len());
            let to = |mac| FrameBuilder::new(CLIENT_MAC, mac).with_tags(tags);
            let mcast = if fam.client.is_ipv4() {
                EthernetAddress([0x01, 0, 0x5e, 0, 0, 0x12])
            } else {
                EthernetAddress([0x33, 0x33, 0, 0, 0, 0x12])
            };
            let mut lldp = to(EthernetAddress([0x01, 0x80, 0xc2, 0, 0, 0x0e]))
                .udp(fam.client, fam.node, 1, 2, b"")
                .unwrap();
            let et = 12 + tags.wire_len();
            lldp[et..et + 2].copy_from_slice(&[0x88, 0xcc]);
            let cases: Vec<(&str, Vec<u8>, Verdict)> = vec![
                (
                    "unicast to the node",
                    to(NODE_MAC)
                        .tcp(fam.client, fam.node, 5000, 22, TcpFlags::SYN)
                        .unwrap(),
                    Verdict::ToTap(Delivery::Host),
                ),
                (
                    "broadcast",
                    to(EthernetAddress::BROADCAST)
                        .udp(fam.client, fam.node, 68, 67, b"")
                        .unwrap(),
                    Verdict::ToTap(Delivery::Host),
                ),
                (
                    "multicast",
                    to(mcast)
                        .udp(fam.client, fam.node, 5353, 5353, b"")
                        .unwrap(),
                    Verdict::ToTap(Delivery::Host),
                ),
                ("lldp", lldp, Verdict::ToTap(Delivery::HostNonIp)),
                (
                    "flooded unicast",
                    to(PEER_MAC)
                        .tcp(fam.client, fam.router, 5000, 22, TcpFlags::SYN)
                        .unwrap(),
                    Verdict::Drop(DropReason::Flooded),
                ),
                (
                    "vmac but not a vip",
                    to(cfg.vip(fam.vip_a).unwrap().vmac)
                        .tcp(fam.client, fam.router, 1, 2, TcpFlags::SYN)
                        .unwrap(),
                    Verdict::Drop(DropReason::Flooded),
                ),
            ];
            for (what, frame, want) in cases {
                let got = run(&cfg, &all_mine, &mut Flows::default(), &frame);
                assert_eq!(got.0, want, "{ctx} {what}");
                assert_eq!(got.1, frame, "{ctx} {what}: unchanged");
            }
        }
    }
}

#[test]
fn malformed_frames_are_dropped() {
    let cfg = config();
    let all_mine = StaticTable::all_owned_by(ME, ME, cfg.n_buckets);
    let fam = v4();
    let good = from_client(&cfg, &fam, VlanTags::new())
        .tcp(fam.client, fam.vip_a, 1, 80, TcpFlags::SYN)
        .unwrap();
    for n in [0, 13, 20, 33, 40, 53] {
        let got = run(&cfg, &all_mine, &mut Flows::default(), &good[..n]);
        assert_eq!(got.0, Verdict::Drop(DropReason::Malformed), "cut at {n}");
    }
}

// ---- TAP -> uplink ----

fn from_tap(cfg: &PipelineConfig, frame: &[u8]) -> (Verdict, Vec<u8>) {
    let mut f = frame.to_vec();
    (classify_from_tap(cfg, &mut f), f)
}

#[test]
fn tap_forwards_the_kernels_frames() {
    let cfg = config();
    for fam in families() {
        for tags in tag_sets() {
            let b = FrameBuilder::new(NODE_MAC, CLIENT_MAC).with_tags(tags);
            for frame in [
                b.tcp(
                    fam.vip_a,
                    fam.client,
                    80,
                    40000,
                    TcpFlags::SYN | TcpFlags::ACK,
                )
                .unwrap(),
                b.udp(fam.node, fam.client, 5000, 53, b"q").unwrap(),
                solicit(&b, fam.node, fam.client),
                solicit(&b, fam.unspecified, fam.vip_a), // the kernel's own DAD for the VIP
                advertise(&b, fam.node, fam.client, fam.node, NODE_MAC),
                vec![0u8; 10], // unreadable: the kernel's business
            ] {
                assert_eq!(
                    from_tap(&cfg, &frame),
                    (Verdict::ToWire, frame.clone()),
                    "{} {tags:?}",
                    fam.name
                );
            }
        }
    }
}

#[test]
fn tap_never_binds_a_vip_to_the_node() {
    let cfg = config();
    for fam in families() {
        for tags in tag_sets() {
            let ctx = format!("{} {} tags", fam.name, tags.len());
            let b = FrameBuilder::new(NODE_MAC, EthernetAddress::BROADCAST).with_tags(tags);
            let vmac = cfg.vip(fam.vip_a).unwrap().vmac;
            let mut drops = vec![
                (
                    "announcement",
                    advertise(&b, fam.vip_a, fam.client, fam.vip_a, NODE_MAC),
                ),
                (
                    "virtual MAC as source",
                    FrameBuilder::new(vmac, CLIENT_MAC)
                        .udp(fam.vip_a, fam.client, 1, 2, b"")
                        .unwrap(),
                ),
            ];
            if fam.client.is_ipv4() {
                drops.push((
                    "gratuitous arp",
                    b.arp_request(v4a(fam.vip_a), v4a(fam.vip_a)).unwrap(),
                ));
            }
            for (what, frame) in drops {
                assert_eq!(
                    from_tap(&cfg, &frame),
                    (Verdict::Drop(DropReason::VipNeighFromTap), frame.clone()),
                    "{ctx} {what}"
                );
            }

            // The kernel resolving a client from the VIP: rewritten to teach the virtual MAC.
            let req = solicit(&b, fam.vip_a, fam.client);
            let (v, out) = from_tap(&cfg, &req);
            assert_eq!(v, Verdict::ToWire, "{ctx}");
            assert_eq!(
                &out[..12],
                &req[..12],
                "{ctx}: Ethernet addresses unchanged"
            );
            let r = FrameRepr::parse(&out)
                .unwrap_or_else(|e| panic!("{ctx}: checksum or format broken: {e}"));
            match r.packet {
                PacketRepr::Arp(a) => {
                    assert_eq!(
                        (a.source_hardware_addr, a.source_protocol_addr),
                        (vmac, v4a(fam.vip_a)),
                        "{ctx}"
                    );
                    assert_eq!(a.target_protocol_addr, v4a(fam.client), "{ctx}");
                }
                PacketRepr::Ipv6 {
                    payload: IpPayload::Icmpv6(Icmpv6Repr::Ndisc(ns)),
                    ..
                } => {
                    assert_eq!(
                        ns,
                        NdiscRepr::NeighborSolicit {
                            target_addr: v6a(fam.client),
                            lladdr: Some(vmac)
                        },
                        "{ctx}"
                    );
                }
                other => panic!("{ctx}: {other:?}"),
            }
        }
    }
}
