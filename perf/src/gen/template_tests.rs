use std::collections::HashMap;

use farm_pipeline::{classify, Delivery, DropReason, NoFlowTracking, PipelineConfig, PortRange, Protocol, Rule, StaticTable, Verdict, Vip, REPLY_BUF_LEN};
use farm_table::BucketEntry;
use farm_wire::{summarize, IpProtocol, L3, L4};

use super::*;

const BUCKETS: u32 = 1024;
const NODE_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);

fn spec() -> TrafficSpec {
    TrafficSpec {
        src_mac: EthernetAddress([2, 0, 0, 0, 0, 0xc1]),
        dst_mac: None,
        vip4: Some("198.18.0.100".parse().unwrap()),
        vip6: Some("2001:db8::100".parse().unwrap()),
        tcp_port: 80,
        udp_port: 5000,
        clients: vec!["198.18.128.0/17".parse().unwrap(), "2001:db8:c::/96".parse().unwrap()],
        sports: "1024-65535".parse().unwrap(),
        sizes: vec![64, 512, 1518],
        mix: "syn=1,ack=6,fin=1,udp=4".parse().unwrap(),
        templates: 1296,
        seed: 42,
    }
}

fn hashing(affinity: Affinity, owned: Owned) -> Hashing {
    Hashing { key: HashKey::from_seed(0xfa7), n_buckets: BUCKETS, affinity, owned }
}

/// The data plane's own classifier, configured like the device under test.
fn classifier(h: &Hashing) -> (PipelineConfig, StaticTable) {
    let rules = |_| {
        vec![
            Rule::new(Protocol::Tcp, PortRange { first: 80, last: 80 }, h.affinity),
            Rule::new(Protocol::Udp, PortRange { first: 5000, last: 5000 }, h.affinity),
        ]
    };
    let vips = vec![
        Vip::new("198.18.0.100".parse().unwrap(), rules(4)),
        Vip::new("2001:db8::100".parse().unwrap(), rules(6)),
    ];
    let cfg = PipelineConfig::new(NODE_MAC, vips, BUCKETS, h.key).unwrap();
    let entries = (0..BUCKETS)
        .map(|b| BucketEntry::owned(if h.owned.owns(b) { 0 } else { 1 }))
        .collect();
    (cfg, StaticTable { node_id: 0, entries })
}

fn check(h: Hashing) {
    let s = spec();
    let t = build(&s, &h).unwrap();
    assert_eq!(t.len(), 1296);
    let (cfg, table) = classifier(&h);
    let mut kinds: HashMap<Kind, usize> = HashMap::new();
    let mut sizes: HashMap<usize, usize> = HashMap::new();
    let mut accepted = 0;
    for (i, tpl) in t.iter().enumerate() {
        *kinds.entry(tpl.kind).or_default() += 1;
        let fs = summarize(&tpl.frame).unwrap_or_else(|e| panic!("template {i} does not parse: {e}"));
        let L3::Ip(ip) = fs.l3 else { panic!("template {i} is not IP") };
        assert_eq!(ip.src, tpl.client);
        let vip: IpAddr = if ip.src.is_ipv4() { s.vip4.unwrap().into() } else { s.vip6.unwrap().into() };
        assert_eq!(ip.dst, vip);
        assert_eq!(fs.dst_mac, farm_pipeline::virtual_mac(vip));
        assert!(s.clients.iter().any(|c| {
            let (first, x) = match (c.first, ip.src) {
                (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b))),
                (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b)),
                _ => return false,
            };
            x >= first && x - first < c.count
        }));
        let (ports, proto) = match (ip.l4, tpl.kind) {
            (L4::Tcp { ports, flags }, Kind::Syn) => {
                assert!(flags.is_syn_only());
                (ports, IpProtocol::Tcp)
            }
            (L4::Tcp { ports, flags }, Kind::Ack) => {
                assert_eq!(flags, TcpFlags::ACK);
                (ports, IpProtocol::Tcp)
            }
            (L4::Tcp { ports, flags }, Kind::Fin) => {
                assert_eq!(flags, TcpFlags::FIN | TcpFlags::ACK);
                (ports, IpProtocol::Tcp)
            }
            (L4::Udp { ports }, Kind::Udp) => (ports, IpProtocol::Udp),
            (l4, k) => panic!("template {i}: {k:?} parsed as {l4:?}"),
        };
        assert_eq!(ip.protocol, proto);
        assert_eq!(ports.src, tpl.sport);
        assert!((1024..=65535).contains(&ports.src));
        assert_eq!(ports.dst, if proto == IpProtocol::Udp { 5000 } else { 80 });
        // The bucket, recomputed from what was parsed (not from the template's fields).
        let port = (h.affinity == Affinity::OnPort).then_some(ports.src);
        assert_eq!(tpl.bucket, bucket_of(&h.key, ip.src, port, BUCKETS), "template {i} bucket");
        assert_eq!(tpl.accepted, h.owned.owns(tpl.bucket));
        // Frame size: as asked (minus FCS), or the smallest frame for the headers.
        let want = usize::from(s.sizes[i % 3]) - 4;
        let min = super::min_frame_len(ip.src.is_ipv6(), tpl.kind);
        assert_eq!(tpl.frame.len(), want.max(min), "template {i} length");
        *sizes.entry(tpl.frame.len()).or_default() += 1;
        // Stamped, it still parses the same, and the data plane decides as expected.
        let mut f = tpl.frame.clone();
        stamp::write(&mut f, tpl.place, 0xdead_beef_0bad_cafe ^ i as u64);
        assert_eq!(summarize(&f).unwrap(), fs);
        let mut reply = [0u8; REPLY_BUF_LEN];
        let v = classify(&cfg, &table, &mut NoFlowTracking, &mut f, &mut reply);
        if tpl.accepted {
            accepted += 1;
            assert_eq!(v, Verdict::ToTap(Delivery::Vip), "template {i}");
            assert_eq!(&f[..6], NODE_MAC.as_bytes(), "destination MAC rewritten to the node's");
            assert_eq!(stamp::read(&f), Some(0xdead_beef_0bad_cafe ^ i as u64));
        } else {
            assert_eq!(v, Verdict::Drop(DropReason::NotMine), "template {i}");
        }
    }
    // 1296 templates = 36 rounds of 12 mix slots x 3 sizes: exact proportions.
    assert_eq!(kinds[&Kind::Syn], 108);
    assert_eq!(kinds[&Kind::Ack], 648);
    assert_eq!(kinds[&Kind::Fin], 108);
    assert_eq!(kinds[&Kind::Udp], 432);
    assert_eq!(sizes[&1514], 432);
    match h.owned {
        Owned::All => assert_eq!(accepted, t.len()),
        Owned::None => assert_eq!(accepted, 0),
        Owned::Modulo { modulus, .. } => {
            // Pseudo-random clients spread evenly over the buckets.
            let expect = t.len() / modulus as usize;
            assert!(accepted.abs_diff(expect) < expect / 4, "{accepted} accepted, ~{expect} expected");
        }
    }
}

#[test]
fn templates_parse_and_hash_to_expected_buckets_on_addr() {
    check(hashing(Affinity::OnAddr, "2:1".parse().unwrap()));
}

#[test]
fn templates_parse_and_hash_to_expected_buckets_on_port() {
    check(hashing(Affinity::OnPort, "4:3".parse().unwrap()));
}

#[test]
fn templates_all_and_none_owned() {
    check(hashing(Affinity::OnAddr, Owned::All));
    check(hashing(Affinity::OnPort, Owned::None));
}

#[test]
fn build_is_deterministic_and_capped_by_combinations() {
    let h = hashing(Affinity::OnAddr, Owned::All);
    let a = build(&spec(), &h).unwrap();
    let b = build(&spec(), &h).unwrap();
    assert!(a.iter().zip(&b).all(|(x, y)| x.frame == y.frame));
    let other = build(&TrafficSpec { seed: 43, ..spec() }, &h).unwrap();
    assert!(a.iter().zip(&other).any(|(x, y)| x.frame != y.frame));
    // 2 clients x 1 port x 1 size x 1 kind = 2 combinations.
    let tiny = TrafficSpec {
        clients: vec!["198.18.1.1-198.18.1.2".parse().unwrap()],
        sports: "1000".parse().unwrap(),
        sizes: vec![64],
        mix: "syn=1".parse().unwrap(),
        ..spec()
    };
    let t = build(&tiny, &h).unwrap();
    assert_eq!(t.len(), 2);
    assert!(t.iter().all(|t| t.frame.len() == 60 && t.kind == Kind::Syn));
}

#[test]
fn bad_specs_are_refused() {
    let h = hashing(Affinity::OnAddr, Owned::All);
    assert!(matches!(build(&TrafficSpec { vip6: None, ..spec() }, &h), Err(TemplateError::NoVip { family: 6, .. })));
    assert!(matches!(build(&TrafficSpec { sizes: vec![63], ..spec() }, &h), Err(TemplateError::BadSize(63))));
    assert!(matches!(build(&TrafficSpec { sizes: vec![1519], ..spec() }, &h), Err(TemplateError::BadSize(1519))));
    assert!(matches!(build(&TrafficSpec { clients: vec![], ..spec() }, &h), Err(TemplateError::NoClients)));
    assert!(matches!(build(&TrafficSpec { templates: 0, ..spec() }, &h), Err(TemplateError::Empty(_))));
}
