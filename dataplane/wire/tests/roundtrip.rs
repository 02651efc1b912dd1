//! Property tests: `parse(emit(x)) == x` for whole frames, and `summarize`
//! agrees with the reprs and never panics on arbitrary or mutated input.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use farm_wire::icmpv4::{Icmpv4DstUnreachable, Icmpv4TimeExceeded};
use farm_wire::icmpv6::Icmpv6DstUnreachable;
use farm_wire::ndisc::NeighborFlags;
use farm_wire::*;
use proptest::prelude::*;

fn mac() -> impl Strategy<Value = EthernetAddress> {
    any::<[u8; 6]>().prop_map(EthernetAddress)
}

fn tags() -> impl Strategy<Value = VlanTags> {
    let tag = (
        prop_oneof![
            Just(EtherType::Vlan),
            Just(EtherType::QinQ),
            Just(EtherType::QinQLegacy)
        ],
        any::<u16>(),
    )
        .prop_map(|(tpid, tci)| VlanTag { tpid, tci });
    prop::collection::vec(tag, 0..=2).prop_map(|v| VlanTags::from_slice(&v).unwrap())
}

fn v4() -> impl Strategy<Value = Ipv4Addr> {
    any::<[u8; 4]>().prop_map(Ipv4Addr::from)
}

fn v6() -> impl Strategy<Value = Ipv6Addr> {
    any::<[u8; 16]>().prop_map(Ipv6Addr::from)
}

fn ipv4_header() -> impl Strategy<Value = Ipv4Repr> {
    (
        v4(),
        v4(),
        any::<u8>(),
        any::<u8>(),
        any::<u16>(),
        any::<bool>(),
    )
        .prop_map(|(s, d, ttl, tos, id, df)| Ipv4Repr {
            hop_limit: ttl,
            dscp_ecn: tos,
            ident: id,
            dont_frag: df,
            ..Ipv4Repr::new(s, d, IpProtocol::Udp, 0)
        })
}

fn ipv6_header() -> impl Strategy<Value = Ipv6Repr> {
    (v6(), v6(), any::<u8>(), any::<u8>(), 0u32..(1 << 20)).prop_map(|(s, d, hl, tc, fl)| {
        Ipv6Repr {
            hop_limit: hl,
            traffic_class: tc,
            flow_label: fl,
            ..Ipv6Repr::new(s, d, IpProtocol::Udp, 0)
        }
    })
}

/// Owned payload description (the reprs borrow their data).
#[derive(Debug, Clone)]
enum Body {
    Udp(UdpRepr, Vec<u8>),
    Tcp(TcpRepr, Vec<u8>),
    EchoReq(u16, u16, Vec<u8>),
    EchoRep(u16, u16, Vec<u8>),
    Unreach4(u8, u16, Ipv4Repr, Vec<u8>),
    TimeEx4(u8, Ipv4Repr, Vec<u8>),
    Unreach6(u8, Ipv6Repr, Vec<u8>),
    TooBig6(u32, Ipv6Repr, Vec<u8>),
    TimeEx6(u8, Ipv6Repr, Vec<u8>),
    Ns(Ipv6Addr, Option<EthernetAddress>),
    Na(u8, Ipv6Addr, Option<EthernetAddress>),
    Raw(IpProtocol, Vec<u8>),
}

fn data() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..64)
}

fn common_body() -> impl Strategy<Value = Body> {
    prop_oneof![
        (1u16.., 1u16.., data()).prop_map(|(s, d, p)| Body::Udp(
            UdpRepr {
                src_port: s,
                dst_port: d
            },
            p
        )),
        (
            1u16..,
            1u16..,
            any::<u32>(),
            any::<u32>(),
            any::<u8>(),
            any::<u16>(),
            data()
        )
            .prop_map(|(s, d, seq, ack, fl, w, p)| Body::Tcp(
                TcpRepr {
                    src_port: s,
                    dst_port: d,
                    seq_number: seq,
                    ack_number: ack,
                    flags: TcpFlags(fl),
                    window_len: w
                },
                p
            )),
        (any::<u16>(), any::<u16>(), data()).prop_map(|(i, s, d)| Body::EchoReq(i, s, d)),
        (any::<u16>(), any::<u16>(), data()).prop_map(|(i, s, d)| Body::EchoRep(i, s, d)),
    ]
}

fn raw_protocol() -> impl Strategy<Value = IpProtocol> {
    any::<u8>()
        .prop_map(IpProtocol::from)
        .prop_filter("parsed protocols", |p| {
            !matches!(
                p,
                IpProtocol::Tcp | IpProtocol::Udp | IpProtocol::Icmp | IpProtocol::Icmpv6
            )
        })
}

fn inner4() -> impl Strategy<Value = Ipv4Repr> {
    (ipv4_header(), 0usize..65000, any::<bool>(), 0u16..8192).prop_map(|(h, len, mf, off)| {
        Ipv4Repr {
            payload_len: len,
            more_frags: mf,
            frag_offset: off << 3,
            ..h
        }
    })
}

fn inner6() -> impl Strategy<Value = Ipv6Repr> {
    (ipv6_header(), any::<u16>()).prop_map(|(h, len)| Ipv6Repr {
        payload_len: usize::from(len),
        ..h
    })
}

fn v4_body() -> impl Strategy<Value = Body> {
    prop_oneof![
        common_body(),
        (any::<u8>(), any::<u16>(), inner4(), data()).prop_map(|(c, mtu, h, d)| {
            let mtu = if Icmpv4DstUnreachable::from(c) == Icmpv4DstUnreachable::FragRequired {
                mtu
            } else {
                0
            };
            Body::Unreach4(c, mtu, h, d)
        }),
        (any::<u8>(), inner4(), data()).prop_map(|(c, h, d)| Body::TimeEx4(c, h, d)),
        (raw_protocol(), data()).prop_map(|(p, d)| Body::Raw(p, d)),
    ]
}

fn v6_body() -> impl Strategy<Value = Body> {
    prop_oneof![
        common_body(),
        (any::<u8>(), inner6(), data()).prop_map(|(c, h, d)| Body::Unreach6(c, h, d)),
        (any::<u32>(), inner6(), data()).prop_map(|(m, h, d)| Body::TooBig6(m, h, d)),
        (any::<u8>(), inner6(), data()).prop_map(|(c, h, d)| Body::TimeEx6(c, h, d)),
        (v6(), prop::option::of(mac())).prop_map(|(t, m)| Body::Ns(t, m)),
        (any::<u8>(), v6(), prop::option::of(mac())).prop_map(|(f, t, m)| Body::Na(f & 0xe0, t, m)),
        (raw_protocol(), data()).prop_map(|(p, d)| Body::Raw(p, d)),
    ]
}

fn payload(b: &Body, v6: bool) -> IpPayload<'_> {
    match b {
        Body::Udp(r, p) => IpPayload::Udp {
            repr: *r,
            payload: p,
        },
        Body::Tcp(r, p) => IpPayload::Tcp {
            repr: *r,
            payload: p,
        },
        Body::EchoReq(i, s, d) if v6 => IpPayload::Icmpv6(Icmpv6Repr::EchoRequest {
            ident: *i,
            seq_no: *s,
            data: d,
        }),
        Body::EchoRep(i, s, d) if v6 => IpPayload::Icmpv6(Icmpv6Repr::EchoReply {
            ident: *i,
            seq_no: *s,
            data: d,
        }),
        Body::EchoReq(i, s, d) => IpPayload::Icmpv4(Icmpv4Repr::EchoRequest {
            ident: *i,
            seq_no: *s,
            data: d,
        }),
        Body::EchoRep(i, s, d) => IpPayload::Icmpv4(Icmpv4Repr::EchoReply {
            ident: *i,
            seq_no: *s,
            data: d,
        }),
        Body::Unreach4(c, mtu, h, d) => IpPayload::Icmpv4(Icmpv4Repr::DstUnreachable {
            reason: Icmpv4DstUnreachable::from(*c),
            mtu: *mtu,
            header: *h,
            data: d,
        }),
        Body::TimeEx4(c, h, d) => IpPayload::Icmpv4(Icmpv4Repr::TimeExceeded {
            reason: Icmpv4TimeExceeded::from(*c),
            header: *h,
            data: d,
        }),
        Body::Unreach6(c, h, d) => IpPayload::Icmpv6(Icmpv6Repr::DstUnreachable {
            reason: Icmpv6DstUnreachable::from(*c),
            header: *h,
            data: d,
        }),
        Body::TooBig6(m, h, d) => IpPayload::Icmpv6(Icmpv6Repr::PacketTooBig {
            mtu: *m,
            header: *h,
            data: d,
        }),
        Body::TimeEx6(c, h, d) => IpPayload::Icmpv6(Icmpv6Repr::TimeExceeded {
            code: *c,
            header: *h,
            data: d,
        }),
        Body::Ns(t, m) => IpPayload::Icmpv6(Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
            target_addr: *t,
            lladdr: *m,
        })),
        Body::Na(f, t, m) => IpPayload::Icmpv6(Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
            flags: NeighborFlags(*f),
            target_addr: *t,
            lladdr: *m,
        })),
        Body::Raw(p, d) => IpPayload::Raw {
            protocol: *p,
            data: d,
        },
    }
}

#[derive(Debug, Clone)]
enum Packet {
    Arp(ArpRepr),
    V4(Ipv4Repr, Body),
    V4Frag(Ipv4Repr, IpProtocol, Vec<u8>),
    V6(Ipv6Repr, Body),
}

fn packet() -> impl Strategy<Value = Packet> {
    let arp = (any::<u16>(), mac(), v4(), mac(), v4()).prop_map(|(op, sm, si, tm, ti)| {
        Packet::Arp(ArpRepr {
            operation: op.into(),
            source_hardware_addr: sm,
            source_protocol_addr: si,
            target_hardware_addr: tm,
            target_protocol_addr: ti,
        })
    });
    let frag = (
        ipv4_header(),
        any::<u8>(),
        any::<bool>(),
        0u16..8192,
        data(),
    )
        .prop_filter_map("a fragment", |(h, p, mf, off, d)| {
            (mf || off != 0).then(|| {
                Packet::V4Frag(
                    Ipv4Repr {
                        more_frags: mf,
                        frag_offset: off << 3,
                        dont_frag: false,
                        ..h
                    },
                    p.into(),
                    d,
                )
            })
        });
    prop_oneof![
        arp,
        (ipv4_header(), v4_body()).prop_map(|(h, b)| Packet::V4(h, b)),
        frag,
        (ipv6_header(), v6_body()).prop_map(|(h, b)| Packet::V6(h, b)),
    ]
}

fn frame<'a>(eth: EthernetRepr, p: &'a Packet) -> FrameRepr<'a> {
    let packet = match p {
        Packet::Arp(a) => PacketRepr::Arp(*a),
        Packet::V4(h, b) => PacketRepr::Ipv4 {
            header: *h,
            payload: payload(b, false),
        },
        Packet::V4Frag(h, proto, d) => PacketRepr::Ipv4 {
            header: *h,
            payload: IpPayload::Raw {
                protocol: *proto,
                data: d,
            },
        },
        Packet::V6(h, b) => PacketRepr::Ipv6 {
            header: *h,
            payload: payload(b, true),
        },
    };
    FrameRepr {
        ethernet: eth,
        packet,
    }
}

/// What `emit` derives: EtherType, next header, payload length.
fn normalized<'a>(f: &FrameRepr<'a>, emitted: &[u8]) -> FrameRepr<'a> {
    let mut n = *f;
    match &mut n.packet {
        PacketRepr::Arp(_) => n.ethernet.ethertype = EtherType::Arp,
        PacketRepr::Ipv4 { header, .. } => {
            n.ethernet.ethertype = EtherType::Ipv4;
            let p =
                farm_wire::ipv4::Packet::new_checked(&emitted[n.ethernet.header_len()..]).unwrap();
            header.next_header = p.next_header();
            header.payload_len = usize::from(p.total_len()) - 20;
        }
        PacketRepr::Ipv6 { header, .. } => {
            n.ethernet.ethertype = EtherType::Ipv6;
            let p =
                farm_wire::ipv6::Packet::new_checked(&emitted[n.ethernet.header_len()..]).unwrap();
            header.next_header = p.next_header();
            header.payload_len = usize::from(p.payload_len());
        }
        PacketRepr::Other(_) => {}
    }
    n
}

fn eth() -> impl Strategy<Value = EthernetRepr> {
    (mac(), mac(), tags()).prop_map(|(s, d, t)| EthernetRepr {
        src_addr: s,
        dst_addr: d,
        tags: t,
        ethertype: EtherType::Ipv4,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn parse_emit_round_trip(e in eth(), p in packet()) {
        let f = frame(e, &p);
        let mut buf = vec![0u8; f.buffer_len() + 60];
        let n = f.emit_padded(&mut buf).unwrap();
        let bytes = &buf[..n];
        let back = FrameRepr::parse(bytes).unwrap();
        prop_assert_eq!(back, normalized(&f, bytes));
    }

    #[test]
    fn summary_agrees_with_repr(e in eth(), p in packet()) {
        // Random bytes behind an extension-header number need not parse.
        prop_assume!(!matches!(&p, Packet::V6(_, Body::Raw(proto, _)) if proto.is_ipv6_ext()));
        let f = frame(e, &p);
        let mut buf = vec![0u8; f.buffer_len() + 60];
        let n = f.emit_padded(&mut buf).unwrap();
        let s = summarize(&buf[..n]).unwrap();
        prop_assert_eq!(s.src_mac, e.src_addr);
        prop_assert_eq!(s.dst_mac, e.dst_addr);
        prop_assert_eq!(s.tags, e.tags);
        match (&f.packet, s.l3) {
            (PacketRepr::Arp(a), L3::Arp(sa)) => {
                prop_assert_eq!((sa.op, sa.sender_ip, sa.target_ip), (a.operation, a.source_protocol_addr, a.target_protocol_addr));
            }
            (PacketRepr::Ipv4 { header, payload } , L3::Ip(ip)) => {
                prop_assert_eq!((ip.src, ip.dst), (IpAddr::V4(header.src_addr), IpAddr::V4(header.dst_addr)));
                check_l4(payload, &ip)?;
            }
            (PacketRepr::Ipv6 { header, payload } , L3::Ip(ip)) => {
                prop_assert_eq!((ip.src, ip.dst), (IpAddr::V6(header.src_addr), IpAddr::V6(header.dst_addr)));
                check_l4(payload, &ip)?;
            }
            (p, l3) => prop_assert!(false, "{:?} summarized as {:?}", p, l3),
        }
    }

    #[test]
    fn summarize_never_panics_on_noise(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = summarize(&bytes);
        let _ = FrameRepr::parse(&bytes);
    }

    #[test]
    fn summarize_never_panics_on_mutations(e in eth(), p in packet(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), cut in any::<prop::sample::Index>()) {
        let f = frame(e, &p);
        let mut buf = vec![0u8; f.buffer_len() + 60];
        let n = f.emit_padded(&mut buf).unwrap();
        let bytes = &mut buf[..n];
        for (i, v) in flips {
            let i = i.index(bytes.len());
            bytes[i] = v;
        }
        let cut = cut.index(bytes.len() + 1);
        let _ = summarize(&bytes[..cut]);
        let _ = FrameRepr::parse(&bytes[..cut]);
    }
}

fn check_l4(payload: &IpPayload<'_>, ip: &IpSummary) -> core::result::Result<(), TestCaseError> {
    match (payload, ip.l4) {
        (IpPayload::Udp { repr, .. }, L4::Udp { ports }) => {
            prop_assert_eq!((ports.src, ports.dst), (repr.src_port, repr.dst_port))
        }
        (IpPayload::Tcp { repr, .. }, L4::Tcp { ports, flags }) => {
            prop_assert_eq!(
                (ports.src, ports.dst, flags),
                (repr.src_port, repr.dst_port, repr.flags)
            )
        }
        (
            IpPayload::Icmpv4(Icmpv4Repr::EchoRequest { ident, .. })
            | IpPayload::Icmpv6(Icmpv6Repr::EchoRequest { ident, .. }),
            L4::Icmp(i),
        ) => {
            prop_assert_eq!(i.kind, IcmpKind::EchoRequest { ident: *ident })
        }
        (
            IpPayload::Icmpv4(
                Icmpv4Repr::DstUnreachable { header, data, .. }
                | Icmpv4Repr::TimeExceeded { header, data, .. },
            ),
            L4::Icmp(i),
        ) => {
            let IcmpKind::Error {
                inner: Some(inner), ..
            } = i.kind
            else {
                return Err(TestCaseError::fail(format!("{i:?}")));
            };
            prop_assert_eq!(
                (inner.src, inner.dst),
                (IpAddr::V4(header.src_addr), IpAddr::V4(header.dst_addr))
            );
            let has_ports = header.frag_offset == 0
                && data.len() >= 4
                && matches!(header.next_header, IpProtocol::Tcp | IpProtocol::Udp);
            prop_assert_eq!(inner.ports.is_some(), has_ports);
        }
        (
            IpPayload::Icmpv6(Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
                target_addr,
                lladdr,
            })),
            L4::Icmp(i),
        ) => {
            prop_assert_eq!(
                i.kind,
                IcmpKind::NeighborSolicit {
                    target: *target_addr,
                    source_mac: *lladdr
                }
            )
        }
        (IpPayload::Raw { .. }, _) | (IpPayload::Icmpv4(_) | IpPayload::Icmpv6(_), L4::Icmp(_)) => {
        }
        (p, l4) => prop_assert!(false, "{:?} summarized as {:?}", p, l4),
    }
    Ok(())
}
