//! Table-driven tests of steps 2 and 3 of the packet path (VIP traffic),
//! in both families, untagged, 802.1Q and QinQ.

mod common;

use std::net::IpAddr;

use common::*;
use farm_pipeline::*;
use farm_wire::gen::{l4_header, Invoking};
use farm_wire::{IpPayload, IpProtocol, TcpFlags};

const SPORT: u16 = 40123;

fn for_all(mut f: impl FnMut(&PipelineConfig, &Fam, farm_wire::VlanTags, String)) {
    let cfg = config();
    for fam in families() {
        for (i, tags) in tag_sets().into_iter().enumerate() {
            f(&cfg, &fam, tags, format!("{} tags={i}", fam.name));
        }
    }
}

#[test]
fn tcp_and_udp_rules_hash_on_the_configured_tuple() {
    for_all(|cfg, fam, tags, ctx| {
        let b = from_client(cfg, fam, tags);
        // (what, frame, on_port?)
        let cases: Vec<(&str, Vec<u8>, bool)> = vec![
            (
                "tcp/80 on_addr SYN",
                b.tcp(fam.client, fam.vip_a, SPORT, 80, TcpFlags::SYN)
                    .unwrap(),
                false,
            ),
            (
                "tcp/80 on_addr ACK",
                b.tcp(fam.client, fam.vip_a, SPORT, 80, TcpFlags::ACK)
                    .unwrap(),
                false,
            ),
            (
                "tcp/443 on_port",
                b.tcp(fam.client, fam.vip_a, SPORT, 443, TcpFlags::SYN)
                    .unwrap(),
                true,
            ),
            (
                "udp/53 on_addr",
                b.udp(fam.client, fam.vip_a, SPORT, 53, b"query").unwrap(),
                false,
            ),
            (
                "udp/5050 on_port",
                b.udp(fam.client, fam.vip_a, SPORT, 5050, b"x").unwrap(),
                true,
            ),
            (
                "vip b tcp/80",
                b.tcp(fam.client, fam.vip_b, SPORT, 80, TcpFlags::SYN)
                    .unwrap(),
                false,
            ),
        ];
        for (what, frame, on_port) in cases {
            let what = format!("{ctx} {what}");
            let bk = bucket(cfg, fam.client, on_port.then_some(SPORT));
            let got = run(
                cfg,
                &only(bk, mine(), theirs()),
                &mut Flows::default(),
                &frame,
            );
            assert_accepted(&what, &got, &frame, Delivery::Vip);
            let got = run(
                cfg,
                &only(bk, theirs(), mine()),
                &mut Flows::default(),
                &frame,
            );
            assert_dropped(&what, &got, &frame, DropReason::NotMine);
            let got = run(
                cfg,
                &only(bk, unowned(), mine()),
                &mut Flows::default(),
                &frame,
            );
            assert_dropped(&what, &got, &frame, DropReason::NoOwner);
            // The same frame to the node's MAC (a stale neighbour cache) is still VIP traffic.
            let mut to_node = frame.clone();
            to_node[..6].copy_from_slice(&NODE_MAC.0);
            let got = run(
                cfg,
                &only(bk, theirs(), mine()),
                &mut Flows::default(),
                &to_node,
            );
            assert_dropped(&what, &got, &to_node, DropReason::NotMine);
        }
    });
}

#[test]
fn vip_traffic_without_a_rule_is_dropped() {
    for_all(|cfg, fam, tags, ctx| {
        let b = from_client(cfg, fam, tags);
        let all_mine = StaticTable::all_owned_by(ME, ME, cfg.n_buckets);
        let gre = IpPayload::Raw {
            protocol: IpProtocol::Unknown(47),
            data: &[0; 8],
        };
        let cases = [
            (
                "tcp/22",
                b.tcp(fam.client, fam.vip_a, SPORT, 22, TcpFlags::SYN)
                    .unwrap(),
            ),
            (
                "udp/54",
                b.udp(fam.client, fam.vip_a, SPORT, 54, b"").unwrap(),
            ),
            (
                "udp/5101",
                b.udp(fam.client, fam.vip_a, SPORT, 5101, b"").unwrap(),
            ),
            (
                "tcp/443 on vip b",
                b.tcp(fam.client, fam.vip_b, SPORT, 443, TcpFlags::SYN)
                    .unwrap(),
            ),
            ("gre", b.ip(fam.client, fam.vip_a, gre).unwrap()),
            (
                "echo to vip b (no icmp rule)",
                b.echo_request(fam.client, fam.vip_b, 1, 1).unwrap(),
            ),
        ];
        for (what, frame) in cases {
            let got = run(cfg, &all_mine, &mut Flows::default(), &frame);
            assert_dropped(&format!("{ctx} {what}"), &got, &frame, DropReason::NoRule);
        }
    });
}

#[test]
fn echo_hashes_on_the_source_address() {
    for_all(|cfg, fam, tags, ctx| {
        let frame = from_client(cfg, fam, tags)
            .echo_request(fam.client, fam.vip_a, 77, 1)
            .unwrap();
        let bk = bucket(cfg, fam.client, None);
        let got = run(
            cfg,
            &only(bk, mine(), theirs()),
            &mut Flows::default(),
            &frame,
        );
        assert_accepted(&ctx, &got, &frame, Delivery::Vip);
        let got = run(
            cfg,
            &only(bk, theirs(), mine()),
            &mut Flows::default(),
            &frame,
        );
        assert_dropped(&ctx, &got, &frame, DropReason::NotMine);
        // Echo is stateless: the new owner answers during a handover, the previous one does not.
        let got = run(
            cfg,
            &only(bk, taking_over(), theirs()),
            &mut Flows::default(),
            &frame,
        );
        assert_accepted(&ctx, &got, &frame, Delivery::Vip);
        let got = run(
            cfg,
            &only(bk, handing_over(), theirs()),
            &mut Flows::default(),
            &frame,
        );
        assert_dropped(&ctx, &got, &frame, DropReason::NotMine);
    });
}

fn icmp_error(
    cfg: &PipelineConfig,
    fam: &Fam,
    tags: farm_wire::VlanTags,
    inv: &Invoking,
) -> Vec<u8> {
    let b = farm_wire::gen::FrameBuilder::new(ROUTER_MAC, cfg.vip(fam.vip_a).unwrap().vmac)
        .with_tags(tags);
    match (fam.router, fam.vip_a) {
        (IpAddr::V4(r), IpAddr::V4(v)) => b.frag_needed(r, v, 1400, inv).unwrap(),
        (IpAddr::V6(r), IpAddr::V6(v)) => b.packet_too_big(r, v, 1280, inv).unwrap(),
        _ => unreachable!(),
    }
}

#[test]
fn icmp_errors_follow_the_embedded_flow() {
    for_all(|cfg, fam, tags, ctx| {
        // The VIP answered client:SPORT from port 443 (on_port) / 80 (on_addr); a router says "too big".
        for (vip_port, on_port) in [(443u16, true), (80, false)] {
            let inv = Invoking {
                src: fam.vip_a,
                dst: fam.client,
                protocol: IpProtocol::Tcp,
                src_port: vip_port,
                dst_port: SPORT,
            };
            let frame = icmp_error(cfg, fam, tags, &inv);
            let what = format!("{ctx} error about :{vip_port}");
            let bk = bucket(cfg, fam.client, on_port.then_some(SPORT));
            let mut flows = Flows::default();
            let got = run(cfg, &only(bk, mine(), theirs()), &mut flows, &frame);
            assert_accepted(&what, &got, &frame, Delivery::Vip);
            let key = FlowKey {
                protocol: IpProtocol::Tcp,
                client: fam.client,
                client_port: SPORT,
                vip: fam.vip_a,
                vip_port,
            };
            assert_eq!(flows.accepted, vec![(key, bk, None)], "{what}");
            let got = run(
                cfg,
                &only(bk, theirs(), mine()),
                &mut Flows::default(),
                &frame,
            );
            assert_dropped(&what, &got, &frame, DropReason::NotMine);
            // During a handover the error follows the flow to the node that knows it.
            let mut knows = Flows::default();
            knows.known.insert(key);
            let got = run(cfg, &only(bk, handing_over(), theirs()), &mut knows, &frame);
            assert_accepted(&what, &got, &frame, Delivery::VipHandoverKept);
            let got = run(
                cfg,
                &only(bk, taking_over(), theirs()),
                &mut Flows::default(),
                &frame,
            );
            assert_dropped(&what, &got, &frame, DropReason::HandoverPassed);
        }
        let all_mine = StaticTable::all_owned_by(ME, ME, cfg.n_buckets);
        // About a packet the VIP did not send, or a port with no rule: no rule.
        let not_from_vip = Invoking {
            src: fam.vip_b,
            dst: fam.client,
            protocol: IpProtocol::Tcp,
            src_port: 80,
            dst_port: SPORT,
        };
        let no_rule = Invoking {
            src: fam.vip_a,
            dst: fam.client,
            protocol: IpProtocol::Tcp,
            src_port: 22,
            dst_port: SPORT,
        };
        for inv in [not_from_vip, no_rule] {
            let frame = icmp_error(cfg, fam, tags, &inv);
            let got = run(cfg, &all_mine, &mut Flows::default(), &frame);
            assert_dropped(&format!("{ctx} {inv:?}"), &got, &frame, DropReason::NoRule);
        }
    });
}

#[test]
fn fragment_policy() {
    for_all(|cfg, fam, tags, ctx| {
        let b = from_client(cfg, fam, tags);
        let frag = |dst: IpAddr, proto: IpProtocol, offset: u16, more: bool, data: &[u8]| match (
            fam.client, dst,
        ) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                b.ipv4_fragment(s, d, proto, offset, more, data).unwrap()
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                b.ipv6_fragment(s, d, proto, offset, more, data).unwrap()
            }
            _ => unreachable!(),
        };
        let first = |port: u16| {
            let mut d = l4_header(IpProtocol::Udp, SPORT, port, 3000);
            d.resize(1024, 0);
            d
        };
        let by_addr = bucket(cfg, fam.client, None);
        let rest = [0xab; 512];
        // (what, frame, expected with my bucket = by_addr)
        let cases: Vec<(&str, Vec<u8>, Result<Delivery, DropReason>)> = vec![
            (
                "first, udp/53 on_addr",
                frag(fam.vip_a, IpProtocol::Udp, 0, true, &first(53)),
                Ok(Delivery::Vip),
            ),
            (
                "first, udp/5050 on_port",
                frag(fam.vip_a, IpProtocol::Udp, 0, true, &first(5050)),
                Err(DropReason::Fragment),
            ),
            (
                "first, udp/99 no rule",
                frag(fam.vip_b, IpProtocol::Udp, 0, true, &first(99)),
                Err(DropReason::NoRule),
            ),
            (
                "later, vip a udp (mixed affinities)",
                frag(fam.vip_a, IpProtocol::Udp, 1024, false, &rest),
                Err(DropReason::Fragment),
            ),
            (
                "later, vip a tcp (mixed affinities)",
                frag(fam.vip_a, IpProtocol::Tcp, 1024, false, &rest),
                Err(DropReason::Fragment),
            ),
            (
                "later, vip b udp (all on_addr)",
                frag(fam.vip_b, IpProtocol::Udp, 1024, false, &rest),
                Ok(Delivery::Vip),
            ),
            (
                "later, vip b gre",
                frag(fam.vip_b, IpProtocol::Unknown(47), 1024, false, &rest),
                Err(DropReason::NoRule),
            ),
        ];
        for (what, frame, want) in cases {
            let what = format!("{ctx} {what}");
            let got = run(
                cfg,
                &only(by_addr, mine(), theirs()),
                &mut Flows::default(),
                &frame,
            );
            match want {
                Ok(d) => {
                    assert_accepted(&what, &got, &frame, d);
                    let got = run(
                        cfg,
                        &only(by_addr, theirs(), mine()),
                        &mut Flows::default(),
                        &frame,
                    );
                    assert_dropped(&what, &got, &frame, DropReason::NotMine);
                    // Handover: the previous owner keeps fragments, the new owner passes them.
                    let got = run(
                        cfg,
                        &only(by_addr, handing_over(), theirs()),
                        &mut Flows::default(),
                        &frame,
                    );
                    assert_accepted(&what, &got, &frame, Delivery::VipHandoverKept);
                    let got = run(
                        cfg,
                        &only(by_addr, taking_over(), theirs()),
                        &mut Flows::default(),
                        &frame,
                    );
                    assert_dropped(&what, &got, &frame, DropReason::HandoverPassed);
                }
                Err(r) => assert_dropped(&what, &got, &frame, r),
            }
        }
        // Fragments of a large ping: placed like the echo (by source address), with an ICMP rule only.
        let icmp = if fam.client.is_ipv4() {
            IpProtocol::Icmp
        } else {
            IpProtocol::Icmpv6
        };
        let later = frag(fam.vip_a, icmp, 1480, false, &rest);
        let got = run(
            cfg,
            &only(by_addr, mine(), theirs()),
            &mut Flows::default(),
            &later,
        );
        assert_accepted(&ctx, &got, &later, Delivery::Vip);
        let later_b = frag(fam.vip_b, icmp, 1480, false, &rest);
        let got = run(
            cfg,
            &only(by_addr, mine(), theirs()),
            &mut Flows::default(),
            &later_b,
        );
        assert_dropped(&ctx, &got, &later_b, DropReason::NoRule);
    });
}

#[test]
fn handover_keeps_established_flows_where_they_are() {
    for_all(|cfg, fam, tags, ctx| {
        let b = from_client(cfg, fam, tags);
        let bk = bucket(cfg, fam.client, None);
        let key = FlowKey {
            protocol: IpProtocol::Tcp,
            client: fam.client,
            client_port: SPORT,
            vip: fam.vip_a,
            vip_port: 80,
        };
        let syn = b
            .tcp(fam.client, fam.vip_a, SPORT, 80, TcpFlags::SYN)
            .unwrap();
        let ack = b
            .tcp(fam.client, fam.vip_a, SPORT, 80, TcpFlags::ACK)
            .unwrap();
        let udp = b.udp(fam.client, fam.vip_a, SPORT, 53, b"q").unwrap();
        let mut knows = Flows::default();
        knows.known.insert(key);

        // New owner: SYN yes; unknown ACK and UDP no; known ACK yes.
        let t = only(bk, taking_over(), theirs());
        let mut flows = Flows::default();
        assert_accepted(&ctx, &run(cfg, &t, &mut flows, &syn), &syn, Delivery::Vip);
        assert_eq!(
            flows.accepted,
            vec![(key, bk, Some(TcpFlags::SYN))],
            "{ctx}"
        );
        assert_dropped(
            &ctx,
            &run(cfg, &t, &mut Flows::default(), &ack),
            &ack,
            DropReason::HandoverPassed,
        );
        assert_dropped(
            &ctx,
            &run(cfg, &t, &mut Flows::default(), &udp),
            &udp,
            DropReason::HandoverPassed,
        );
        assert_accepted(&ctx, &run(cfg, &t, &mut knows, &ack), &ack, Delivery::Vip);

        // Previous owner: known ACK kept; SYN and unknown ACK not.
        let t = only(bk, handing_over(), theirs());
        assert_accepted(
            &ctx,
            &run(cfg, &t, &mut knows, &ack),
            &ack,
            Delivery::VipHandoverKept,
        );
        assert_dropped(
            &ctx,
            &run(cfg, &t, &mut knows, &syn),
            &syn,
            DropReason::NotMine,
        );
        assert_dropped(
            &ctx,
            &run(cfg, &t, &mut Flows::default(), &ack),
            &ack,
            DropReason::NotMine,
        );

        // Handover over (prev_owner cleared): the owner takes everything.
        let t = only(bk, mine(), theirs());
        assert_accepted(
            &ctx,
            &run(cfg, &t, &mut Flows::default(), &ack),
            &ack,
            Delivery::Vip,
        );
    });
}
