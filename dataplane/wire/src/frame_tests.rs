use super::*;
use crate::gen::FrameBuilder;
use crate::ndisc::NeighborFlags;
use crate::{ArpOperation, TcpFlags, VlanTag, VlanTags};
use core::net::{Ipv4Addr, Ipv6Addr};

const NODE: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
const CLIENT: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x64]);
const VMAC: EthernetAddress = EthernetAddress([0x5a, 0xfe, 198, 18, 0, 10]);

fn tags() -> VlanTags {
    VlanTags::from_slice(&[VlanTag::new(EtherType::Vlan, 0, false, 42)]).unwrap()
}

#[test]
fn tcp_frame_parses_back() {
    let b = FrameBuilder::new(CLIENT, VMAC).with_tags(tags());
    let f = b
        .tcp(
            "198.18.0.100".parse().unwrap(),
            "198.18.0.10".parse().unwrap(),
            40000,
            80,
            TcpFlags::SYN,
        )
        .unwrap();
    assert_eq!(f.len(), 60, "58 bytes padded to the minimum");
    let r = FrameRepr::parse(&f).unwrap();
    assert_eq!(r.ethernet.tags, tags());
    assert_eq!(r.ethernet.ethertype, EtherType::Ipv4);
    let PacketRepr::Ipv4 {
        header,
        payload: IpPayload::Tcp { repr, payload },
    } = r.packet
    else {
        panic!("{r:?}")
    };
    assert_eq!(header.next_header, IpProtocol::Tcp);
    assert_eq!(header.payload_len, 20);
    assert_eq!(
        (repr.src_port, repr.dst_port, repr.flags),
        (40000, 80, TcpFlags::SYN)
    );
    assert!(payload.is_empty());
}

#[test]
fn short_frames_are_padded_and_padding_ignored() {
    let f = FrameBuilder::new(CLIENT, EthernetAddress::BROADCAST)
        .arp_request(
            Ipv4Addr::new(198, 18, 0, 100),
            Ipv4Addr::new(198, 18, 0, 10),
        )
        .unwrap();
    assert_eq!(f.len(), MIN_FRAME_LEN);
    assert!(f[42..].iter().all(|&b| b == 0));
    let r = FrameRepr::parse(&f).unwrap();
    assert!(matches!(r.packet, PacketRepr::Arp(a) if a.operation == ArpOperation::Request));
}

#[test]
fn arp_reply_builder_frame() {
    let req = ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: CLIENT,
        source_protocol_addr: Ipv4Addr::new(198, 18, 0, 100),
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: Ipv4Addr::new(198, 18, 0, 10),
    };
    let mut out = [0u8; 128];
    let n = arp_reply_frame(&req, CLIENT, tags(), NODE, VMAC, &mut out)
        .unwrap()
        .unwrap();
    assert_eq!(n, 60);
    let r = FrameRepr::parse(&out[..n]).unwrap();
    assert_eq!(
        r.ethernet.src_addr, NODE,
        "never the virtual MAC as Ethernet source"
    );
    assert_eq!(r.ethernet.dst_addr, CLIENT);
    assert_eq!(r.ethernet.tags, tags());
    assert_eq!(r.packet, PacketRepr::Arp(req.reply(VMAC).unwrap()));
    let not_req = ArpRepr {
        operation: ArpOperation::Reply,
        ..req
    };
    assert!(arp_reply_frame(&not_req, CLIENT, tags(), NODE, VMAC, &mut out).is_none());
    assert_eq!(
        arp_reply_frame(&req, CLIENT, tags(), NODE, VMAC, &mut [0u8; 59]),
        Some(Err(Error::Truncated))
    );
}

#[test]
fn ndisc_advert_builder_frame() {
    let vip: Ipv6Addr = "2001:db8::a".parse().unwrap();
    let client: Ipv6Addr = "2001:db8::64".parse().unwrap();
    let ns = NdiscRepr::NeighborSolicit {
        target_addr: vip,
        lladdr: Some(CLIENT),
    };
    let mut out = [0u8; 128];
    let n = ndisc_advert_frame(&ns, client, CLIENT, VlanTags::new(), NODE, VMAC, &mut out)
        .unwrap()
        .unwrap();
    assert_eq!(n, 14 + 40 + 32);
    let r = FrameRepr::parse(&out[..n]).unwrap();
    assert_eq!((r.ethernet.src_addr, r.ethernet.dst_addr), (NODE, CLIENT));
    let PacketRepr::Ipv6 {
        header,
        payload: IpPayload::Icmpv6(Icmpv6Repr::Ndisc(na)),
    } = r.packet
    else {
        panic!("{r:?}")
    };
    assert_eq!(
        (header.src_addr, header.dst_addr, header.hop_limit),
        (vip, client, 255)
    );
    assert_eq!(
        na,
        NdiscRepr::NeighborAdvert {
            flags: NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE,
            target_addr: vip,
            lladdr: Some(VMAC)
        }
    );
    // DAD probe: multicast reply to all nodes.
    let n = ndisc_advert_frame(
        &ns,
        Ipv6Addr::UNSPECIFIED,
        CLIENT,
        VlanTags::new(),
        NODE,
        VMAC,
        &mut out,
    )
    .unwrap()
    .unwrap();
    let r = FrameRepr::parse(&out[..n]).unwrap();
    assert_eq!(r.ethernet.dst_addr.0, [0x33, 0x33, 0, 0, 0, 1]);
}

#[test]
fn fragments_and_extension_headers_are_raw() {
    let b = FrameBuilder::new(CLIENT, VMAC);
    let f = b
        .ipv4_fragment(
            Ipv4Addr::new(1, 1, 1, 1),
            Ipv4Addr::new(2, 2, 2, 2),
            IpProtocol::Udp,
            8,
            false,
            &[1; 16],
        )
        .unwrap();
    let r = FrameRepr::parse(&f).unwrap();
    assert!(
        matches!(r.packet, PacketRepr::Ipv4 { header, payload: IpPayload::Raw { protocol: IpProtocol::Udp, data } }
        if header.frag_offset == 8 && data == [1; 16])
    );
    let f = b
        .ipv6_fragment(
            "::1".parse().unwrap(),
            "::2".parse().unwrap(),
            IpProtocol::Tcp,
            0,
            true,
            &[2; 20],
        )
        .unwrap();
    let r = FrameRepr::parse(&f).unwrap();
    assert!(matches!(
        r.packet,
        PacketRepr::Ipv6 {
            payload: IpPayload::Raw {
                protocol: IpProtocol::Ipv6Frag,
                ..
            },
            ..
        }
    ));
}

#[test]
fn mixed_families_are_rejected() {
    let b = FrameBuilder::new(CLIENT, VMAC);
    assert_eq!(
        b.tcp(
            "1.2.3.4".parse().unwrap(),
            "::1".parse().unwrap(),
            1,
            2,
            TcpFlags::SYN
        ),
        Err(Error::Malformed)
    );
    let icmp6 = IpPayload::Icmpv6(Icmpv6Repr::EchoRequest {
        ident: 1,
        seq_no: 1,
        data: &[],
    });
    assert_eq!(
        b.ip(
            "1.2.3.4".parse().unwrap(),
            "1.2.3.5".parse().unwrap(),
            icmp6
        ),
        Err(Error::Malformed)
    );
}
