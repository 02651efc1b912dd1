use super::*;
use crate::gen::{l4_header, FrameBuilder, Invoking};
use crate::ndisc::NeighborFlags;
use crate::{VlanTag, VlanTags};

const CLIENT_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x64]);
const VMAC: EthernetAddress = EthernetAddress([0x5a, 0xfe, 198, 18, 0, 10]);

fn v4(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn b() -> FrameBuilder {
    FrameBuilder::new(CLIENT_MAC, VMAC)
}

fn qinq() -> VlanTags {
    VlanTags::from_slice(&[
        VlanTag::new(EtherType::QinQ, 1, false, 100),
        VlanTag::new(EtherType::Vlan, 0, false, 10),
    ])
    .unwrap()
}

fn ip(s: &FrameSummary) -> IpSummary {
    *s.ip().expect("ip")
}

/// Every prefix shorter than the meaningful bytes (padding excluded) is an
/// error, never a panic.
fn assert_prefixes_fail(frame: &[u8]) {
    let s = summarize(frame).unwrap();
    let end = match s.l3 {
        L3::Ip(i) => i.l4_offset + i.l4_len,
        L3::Arp(_) => s.l3_offset + 28,
        L3::Other => frame.len(),
    };
    for n in 0..end {
        assert!(
            summarize(&frame[..n]).is_err(),
            "prefix {n} of {} parsed",
            frame.len()
        );
    }
}

#[test]
fn tcp_syn_v4_untagged() {
    let f = b()
        .tcp(
            v4("198.18.0.100"),
            v4("198.18.0.10"),
            40000,
            80,
            TcpFlags::SYN,
        )
        .unwrap();
    let s = summarize(&f).unwrap();
    assert_eq!((s.dst_mac, s.src_mac), (VMAC, CLIENT_MAC));
    assert!(s.tags.is_empty());
    assert_eq!((s.ethertype, s.l3_offset), (EtherType::Ipv4, 14));
    let i = ip(&s);
    assert_eq!(
        (i.src, i.dst, i.protocol),
        (v4("198.18.0.100"), v4("198.18.0.10"), IpProtocol::Tcp)
    );
    assert_eq!(
        (i.l4_offset, i.l4_len, i.fragment, i.hop_limit),
        (34, 20, Fragment::None, 64)
    );
    assert_eq!(
        i.l4,
        L4::Tcp {
            ports: Ports {
                src: 40000,
                dst: 80
            },
            flags: TcpFlags::SYN
        }
    );
    assert_prefixes_fail(&f);
}

#[test]
fn udp_v6_qinq() {
    let f = b()
        .with_tags(qinq())
        .udp(v4("2001:db8::64"), v4("2001:db8::a"), 5353, 53, &[0; 20])
        .unwrap();
    let s = summarize(&f).unwrap();
    assert_eq!(s.tags, qinq());
    assert_eq!((s.ethertype, s.l3_offset), (EtherType::Ipv6, 22));
    let i = ip(&s);
    assert_eq!(i.dst, v4("2001:db8::a"));
    assert_eq!(
        i.l4,
        L4::Udp {
            ports: Ports { src: 5353, dst: 53 }
        }
    );
    assert_eq!(i.l4_offset, 62);
    assert_prefixes_fail(&f);
}

#[test]
fn arp_request_tagged() {
    let tags = VlanTags::from_slice(&[VlanTag::new(EtherType::Vlan, 0, false, 7)]).unwrap();
    let f = b()
        .to_mac(EthernetAddress::BROADCAST)
        .with_tags(tags)
        .arp_request(
            Ipv4Addr::new(198, 18, 0, 100),
            Ipv4Addr::new(198, 18, 0, 10),
        )
        .unwrap();
    let s = summarize(&f).unwrap();
    assert_eq!(s.tags, tags);
    assert_eq!(
        s.l3,
        L3::Arp(ArpSummary {
            op: ArpOperation::Request,
            sender_mac: CLIENT_MAC,
            sender_ip: Ipv4Addr::new(198, 18, 0, 100),
            target_mac: EthernetAddress([0; 6]),
            target_ip: Ipv4Addr::new(198, 18, 0, 10),
        })
    );
    // Cut inside the ARP body (the frame is padded, so cut the 46 meaningful bytes).
    for n in 0..18 + 28 {
        assert!(summarize(&f[..n]).is_err());
    }
}

#[test]
fn ipv4_fragments() {
    let (c, v) = (
        Ipv4Addr::new(198, 18, 0, 100),
        Ipv4Addr::new(198, 18, 0, 10),
    );
    // First fragment: UDP header whose length covers the whole datagram.
    let mut data = l4_header(IpProtocol::Udp, 5000, 53, 3000);
    data.resize(1480, 0xab);
    let f = b()
        .ipv4_fragment(c, v, IpProtocol::Udp, 0, true, &data)
        .unwrap();
    let i = ip(&summarize(&f).unwrap());
    assert_eq!(i.fragment, Fragment::First);
    assert_eq!(
        i.l4,
        L4::Udp {
            ports: Ports { src: 5000, dst: 53 }
        }
    );
    // Non-first fragment: no ports even if the bytes look like a header.
    let f = b()
        .ipv4_fragment(c, v, IpProtocol::Udp, 1480, false, &data[..100])
        .unwrap();
    let i = ip(&summarize(&f).unwrap());
    assert_eq!(
        (i.fragment, i.l4, i.protocol),
        (Fragment::NonFirst, L4::None, IpProtocol::Udp)
    );
    // A tiny first fragment that cuts the TCP header is malformed.
    let f = b()
        .ipv4_fragment(c, v, IpProtocol::Tcp, 0, true, &[0; 8])
        .unwrap();
    assert_eq!(summarize(&f).unwrap_err().layer, Layer::Tcp);
}

#[test]
fn ipv6_fragments_and_extension_chain() {
    let (c, v) = (
        "2001:db8::64".parse().unwrap(),
        "2001:db8::a".parse().unwrap(),
    );
    let hdr = l4_header(IpProtocol::Tcp, 40000, 443, 0);
    let f = b()
        .ipv6_fragment(c, v, IpProtocol::Tcp, 0, true, &hdr)
        .unwrap();
    let i = ip(&summarize(&f).unwrap());
    assert_eq!(i.fragment, Fragment::First);
    assert!(matches!(
        i.l4,
        L4::Tcp {
            ports: Ports {
                src: 40000,
                dst: 443
            },
            ..
        }
    ));
    assert_eq!(i.l4_offset, 14 + 40 + 8);
    let f = b()
        .ipv6_fragment(c, v, IpProtocol::Tcp, 1232, false, &hdr)
        .unwrap();
    let i = ip(&summarize(&f).unwrap());
    assert_eq!(
        (i.fragment, i.l4, i.protocol),
        (Fragment::NonFirst, L4::None, IpProtocol::Tcp)
    );

    // hop-by-hop -> destination options -> UDP, built by hand.
    let mut body = vec![60, 0, 1, 4, 0, 0, 0, 0, 17, 0, 1, 4, 0, 0, 0, 0];
    body.extend_from_slice(&[0x13, 0x88, 0x00, 0x35, 0, 8, 0, 0]);
    let f = b()
        .ip(
            c.into(),
            v.into(),
            crate::IpPayload::Raw {
                protocol: IpProtocol::HopByHop,
                data: &body,
            },
        )
        .unwrap();
    let i = ip(&summarize(&f).unwrap());
    assert_eq!(i.protocol, IpProtocol::Udp);
    assert_eq!(
        i.l4,
        L4::Udp {
            ports: Ports { src: 5000, dst: 53 }
        }
    );
    // hop-by-hop after destination options is malformed.
    body[0] = 0;
    let f = b()
        .ip(
            c.into(),
            v.into(),
            crate::IpPayload::Raw {
                protocol: IpProtocol::Ipv6Opts,
                data: &body,
            },
        )
        .unwrap();
    assert_eq!(
        summarize(&f).unwrap_err(),
        ParseError {
            layer: Layer::Ipv6Ext,
            error: Error::Malformed
        }
    );
    // No next header.
    let f = b()
        .ip(
            c.into(),
            v.into(),
            crate::IpPayload::Raw {
                protocol: IpProtocol::Ipv6NoNxt,
                data: &[],
            },
        )
        .unwrap();
    assert_eq!(ip(&summarize(&f).unwrap()).l4, L4::None);
}

#[test]
fn icmpv4_frag_needed_carries_inner_tuple() {
    let inv = Invoking {
        src: v4("198.18.0.10"),
        dst: v4("203.0.113.7"),
        protocol: IpProtocol::Tcp,
        src_port: 80,
        dst_port: 40000,
    };
    let f = b()
        .frag_needed(
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(198, 18, 0, 10),
            1400,
            &inv,
        )
        .unwrap();
    let i = ip(&summarize(&f).unwrap());
    let L4::Icmp(icmp) = i.l4 else {
        panic!("{i:?}")
    };
    assert_eq!((icmp.ty, icmp.code), (3, 4));
    assert_eq!(
        icmp.kind,
        IcmpKind::Error {
            mtu: 1400,
            inner: Some(InnerTuple {
                src: inv.src,
                dst: inv.dst,
                protocol: IpProtocol::Tcp,
                ports: Some(Ports {
                    src: 80,
                    dst: 40000
                })
            })
        }
    );
    assert_prefixes_fail(&f);
}

#[test]
fn icmpv4_error_with_unreadable_inner() {
    // Destination unreachable whose body is not an IPv4 header.
    let body = [3u8, 1, 0, 0, 0, 0, 0, 0, 0x99, 0x99];
    let f = b()
        .ip(
            v4("1.1.1.1"),
            v4("2.2.2.2"),
            crate::IpPayload::Raw {
                protocol: IpProtocol::Icmp,
                data: &body,
            },
        )
        .unwrap();
    let L4::Icmp(icmp) = ip(&summarize(&f).unwrap()).l4 else {
        panic!()
    };
    assert_eq!(
        icmp.kind,
        IcmpKind::Error {
            mtu: 0,
            inner: None
        }
    );
}

#[test]
fn icmpv6_packet_too_big_carries_inner_tuple() {
    let inv = Invoking {
        src: v4("2001:db8::a"),
        dst: v4("2001:db8:1::7"),
        protocol: IpProtocol::Udp,
        src_port: 443,
        dst_port: 50000,
    };
    let f = b()
        .packet_too_big(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::a".parse().unwrap(),
            1280,
            &inv,
        )
        .unwrap();
    let L4::Icmp(icmp) = ip(&summarize(&f).unwrap()).l4 else {
        panic!()
    };
    assert_eq!((icmp.ty, icmp.code), (2, 0));
    let IcmpKind::Error {
        mtu,
        inner: Some(inner),
    } = icmp.kind
    else {
        panic!("{icmp:?}")
    };
    assert_eq!(mtu, 1280);
    assert_eq!(
        (inner.src, inner.dst, inner.protocol),
        (inv.src, inv.dst, IpProtocol::Udp)
    );
    assert_eq!(
        inner.ports,
        Some(Ports {
            src: 443,
            dst: 50000
        })
    );
}

#[test]
fn echo_v4_v6() {
    let f = b()
        .echo_request(v4("198.18.0.100"), v4("198.18.0.10"), 77, 1)
        .unwrap();
    let L4::Icmp(icmp) = ip(&summarize(&f).unwrap()).l4 else {
        panic!()
    };
    assert_eq!(
        (icmp.ty, icmp.kind),
        (8, IcmpKind::EchoRequest { ident: 77 })
    );
    let f = b()
        .echo_request(v4("2001:db8::64"), v4("2001:db8::a"), 78, 1)
        .unwrap();
    let L4::Icmp(icmp) = ip(&summarize(&f).unwrap()).l4 else {
        panic!()
    };
    assert_eq!(
        (icmp.ty, icmp.kind),
        (128, IcmpKind::EchoRequest { ident: 78 })
    );
}

#[test]
fn ndisc_ns_na() {
    let (c, v): (Ipv6Addr, Ipv6Addr) = (
        "2001:db8::64".parse().unwrap(),
        "2001:db8::a".parse().unwrap(),
    );
    let f = b()
        .to_mac(EthernetAddress([0x33, 0x33, 0xff, 0, 0, 0x0a]))
        .neighbor_solicit(c, v)
        .unwrap();
    let s = summarize(&f).unwrap();
    let i = ip(&s);
    assert_eq!(
        (i.dst, i.hop_limit),
        (IpAddr::V6(crate::ipv6::solicited_node(v)), 255)
    );
    let L4::Icmp(icmp) = i.l4 else { panic!() };
    assert_eq!(
        icmp.kind,
        IcmpKind::NeighborSolicit {
            target: v,
            source_mac: Some(CLIENT_MAC)
        }
    );
    assert_prefixes_fail(&f);

    let f = b()
        .neighbor_advert(v, c, v, NeighborFlags::SOLICITED, Some(VMAC))
        .unwrap();
    let L4::Icmp(icmp) = ip(&summarize(&f).unwrap()).l4 else {
        panic!()
    };
    assert_eq!(
        icmp.kind,
        IcmpKind::NeighborAdvert {
            target: v,
            flags: 0x40,
            target_mac: Some(VMAC)
        }
    );

    // A zero-length option makes the NS malformed (RFC 4861 7.1.1).
    let mut bad = f.clone();
    let opt = 14 + 40 + 24;
    bad[opt + 1] = 0;
    assert_eq!(
        summarize(&bad).unwrap_err(),
        ParseError {
            layer: Layer::Ndisc,
            error: Error::Malformed
        }
    );
}

#[test]
fn other_ethertypes_and_length_frames() {
    let mut f = b().udp(v4("1.1.1.1"), v4("2.2.2.2"), 1, 2, &[]).unwrap();
    f[12..14].copy_from_slice(&[0x88, 0xcc]); // LLDP
    assert_eq!(summarize(&f).unwrap().l3, L3::Other);
    f[12..14].copy_from_slice(&[0x00, 0x2e]); // 802.3 length
    assert_eq!(summarize(&f).unwrap().l3, L3::Other);
}

#[test]
fn malformed_headers() {
    let good = b()
        .tcp(v4("1.1.1.1"), v4("2.2.2.2"), 1, 2, TcpFlags::SYN)
        .unwrap();
    let cases: [(usize, u8, Layer, Error); 4] = [
        (14, 0x65, Layer::Ipv4, Error::Malformed), // version 6 in an IPv4 ethertype
        (14, 0x44, Layer::Ipv4, Error::Malformed), // IHL 4
        (34 + 12, 0x40, Layer::Tcp, Error::Malformed), // data offset 4
        (34 + 12, 0xf0, Layer::Tcp, Error::Truncated), // options beyond the packet
    ];
    for (off, val, layer, error) in cases {
        let mut f = good.clone();
        f[off] = val;
        assert_eq!(
            summarize(&f).unwrap_err(),
            ParseError { layer, error },
            "byte {off} = {val:#x}"
        );
    }
    let good = b()
        .udp(v4("1.1.1.1"), v4("2.2.2.2"), 1, 2, &[0; 4])
        .unwrap();
    let mut f = good.clone();
    f[34 + 5] = 4; // UDP length < 8
    assert_eq!(
        summarize(&f).unwrap_err(),
        ParseError {
            layer: Layer::Udp,
            error: Error::Malformed
        }
    );
    // Three VLAN tags.
    let mut f = vec![0xffu8; 12];
    for _ in 0..3 {
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x01]);
    }
    f.extend_from_slice(&[0x08, 0x00]);
    f.resize(80, 0);
    assert_eq!(
        summarize(&f).unwrap_err(),
        ParseError {
            layer: Layer::Vlan,
            error: Error::Unsupported
        }
    );
    // Non-Ethernet ARP.
    let mut f = b()
        .arp_request(Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(2, 2, 2, 2))
        .unwrap();
    f[14 + 1] = 6; // hardware type 6 (IEEE 802)
    assert_eq!(
        summarize(&f).unwrap_err(),
        ParseError {
            layer: Layer::Arp,
            error: Error::Unsupported
        }
    );
}
