use core::net::IpAddr;

use proptest::prelude::*;

use super::*;
use crate::gen::FrameBuilder;
use crate::summary::{summarize, Fragment, L3};
use crate::{EtherType, IpProtocol, VlanTag, VlanTags};

const CLIENT_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x64]);
const VMAC: EthernetAddress = EthernetAddress([0x5a, 0xfe, 198, 18, 0, 10]);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tags(n: usize) -> VlanTags {
    let all = [
        VlanTag::new(EtherType::QinQ, 1, false, 100),
        VlanTag::new(EtherType::Vlan, 0, false, 10),
    ];
    VlanTags::from_slice(&all[2 - n..]).unwrap()
}

fn b(n_tags: usize) -> FrameBuilder {
    FrameBuilder::new(CLIENT_MAC, VMAC).with_tags(tags(n_tags))
}

/// The frames the fast path is for, and neighbours it must leave to the
/// summarizer.
fn base_frames() -> Vec<Vec<u8>> {
    let (c4, v4) = (ip("198.18.0.100"), ip("198.18.0.10"));
    let (c6, v6) = (ip("2001:db8::100"), ip("2001:db8::a"));
    let mut out = Vec::new();
    for n in 0..=2 {
        let b = b(n);
        out.push(b.tcp(c4, v4, 40000, 80, TcpFlags::SYN).unwrap());
        out.push(b.tcp(c4, v4, 40001, 80, TcpFlags::ACK).unwrap());
        out.push(b.udp(c4, v4, 1024, 53, b"query").unwrap());
        out.push(b.udp(c4, v4, 1024, 53, &[]).unwrap());
        out.push(b.tcp(c6, v6, 40000, 80, TcpFlags::SYN).unwrap());
        out.push(b.udp(c6, v6, 1024, 53, b"x").unwrap());
        out.push(b.echo_request(c4, v4, 7, 1).unwrap());
        out.push(b.arp_request(c4_v4(c4), c4_v4(v4)).unwrap());
        out.push(
            b.ipv4_fragment(c4_v4(c4), c4_v4(v4), IpProtocol::Udp, 0, true, &[0; 64])
                .unwrap(),
        );
        out.push(
            b.ipv4_fragment(c4_v4(c4), c4_v4(v4), IpProtocol::Udp, 64, false, &[0; 64])
                .unwrap(),
        );
    }
    out
}

fn c4_v4(a: IpAddr) -> core::net::Ipv4Addr {
    match a {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => unreachable!(),
    }
}

/// When the fast path answers, the summarizer agrees on every field.
fn agrees(frame: &[u8]) -> Result<bool, TestCaseError> {
    let Some(f) = ipv4_l4(frame) else {
        return Ok(false);
    };
    let s = summarize(frame);
    prop_assert!(s.is_ok(), "fast path took a frame summarize rejects: {s:?}");
    let s = s.unwrap();
    prop_assert_eq!(s.dst_mac, f.dst_mac);
    prop_assert!(s.tags.len() <= 1);
    let L3::Ip(i) = s.l3 else {
        return Err(TestCaseError::fail(format!("not IP: {:?}", s.l3)));
    };
    prop_assert_eq!(i.src, IpAddr::V4(f.src));
    prop_assert_eq!(i.dst, IpAddr::V4(f.dst));
    prop_assert_eq!(i.fragment, Fragment::None);
    prop_assert_eq!(i.l4, f.l4());
    Ok(true)
}

#[test]
fn takes_ipv4_tcp_udp_with_at_most_one_tag() {
    let (c4, v4) = (ip("198.18.0.100"), ip("198.18.0.10"));
    for n in 0..=1 {
        let f = b(n).tcp(c4, v4, 40000, 80, TcpFlags::SYN).unwrap();
        let got = ipv4_l4(&f).unwrap();
        assert_eq!(got.dst_mac, VMAC);
        assert_eq!((IpAddr::V4(got.src), IpAddr::V4(got.dst)), (c4, v4));
        assert_eq!(
            got.l4(),
            L4::Tcp {
                ports: Ports {
                    src: 40000,
                    dst: 80
                },
                flags: TcpFlags::SYN
            }
        );
        let f = b(n).udp(c4, v4, 1024, 53, b"q").unwrap();
        assert_eq!(
            ipv4_l4(&f).unwrap().l4(),
            L4::Udp {
                ports: Ports { src: 1024, dst: 53 }
            }
        );
    }
}

#[test]
fn leaves_everything_else_to_the_summarizer() {
    let fast: Vec<bool> = base_frames().iter().map(|f| agrees(f).unwrap()).collect();
    // Per tag count: TCP SYN, TCP ACK, UDP, empty UDP are fast; IPv6, ICMP,
    // ARP and fragments are not; nothing with two tags is.
    let per_tags = |n: usize| &fast[n * 10..n * 10 + 10];
    let want = [
        true, true, true, true, false, false, false, false, false, false,
    ];
    assert_eq!(per_tags(0), want);
    assert_eq!(per_tags(1), want);
    assert_eq!(per_tags(2), [false; 10]);
}

#[test]
fn rejects_what_the_views_reject() {
    let f = b(0)
        .tcp(ip("198.18.0.100"), ip("198.18.0.10"), 1, 80, TcpFlags::ACK)
        .unwrap();
    let l3 = 14;
    let l4 = l3 + 20;
    let mutate = |i: usize, v: u8| {
        let mut g = f.clone();
        g[i] = v;
        g
    };
    // Version, IHL < 5, total length beyond the buffer or below the header,
    // MF set, an offset, another protocol, TCP data offset < 5 or too long.
    for g in [
        mutate(l3, 0x65),
        mutate(l3, 0x44),
        mutate(l3 + 2, 0xff),
        mutate(l3 + 3, 19),
        mutate(l3 + 6, 0x20),
        mutate(l3 + 7, 0x01),
        mutate(l3 + 9, 1),
        mutate(l4 + 12, 0x40),
        mutate(l4 + 12, 0xf0),
    ] {
        assert!(ipv4_l4(&g).is_none(), "{g:02x?}");
    }
    // DF is no fragment.
    assert!(agrees(&mutate(l3 + 6, 0x40)).unwrap());
    // Cut anywhere before the end of the TCP header (the rest is padding).
    for n in 0..l4 + 20 {
        assert!(ipv4_l4(&f[..n]).is_none(), "prefix {n}");
    }
    assert!(agrees(&f[..l4 + 20]).unwrap());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random edits of the base frames: the fast path never accepts a frame
    /// the summarizer reads differently (or rejects).
    #[test]
    fn agrees_with_summarize_on_mutations(
        pick in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
        pad in 0usize..8,
    ) {
        let frames = base_frames();
        let mut f = frames[pick.index(frames.len())].clone();
        f.extend(std::iter::repeat_n(0u8, pad));
        for (i, v) in flips {
            let i = i.index(f.len());
            f[i] = v;
        }
        let cut = cut.index(f.len() + 1).max(f.len() / 2);
        agrees(&f[..cut])?;
    }

    #[test]
    fn agrees_with_summarize_on_noise(bytes in prop::collection::vec(any::<u8>(), 0..120)) {
        let mut f = bytes;
        // Make IPv4 over Ethernet likely enough to go deep.
        if f.len() > 24 {
            f[12] = 0x08;
            f[13] = 0x00;
            f[14] = 0x45;
        }
        agrees(&f)?;
    }
}
