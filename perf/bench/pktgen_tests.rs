//! The pktgen-dpdk command files in perf/pktgen cannot run here (no pktgen, no
//! NICs); these checks keep them consistent with the farm: the destination MAC
//! is the VIP's virtual MAC, clients stay in 198.18.0.0/15 (or documentation
//! IPv6 space), TCP streams set their flags, and every file enables range mode.

use std::collections::HashMap;
use std::net::IpAddr;

const FILES: [(&str, &str); 3] = [
    ("farm-syn-ack.pkt", include_str!("../pktgen/farm-syn-ack.pkt")),
    ("farm-udp.pkt", include_str!("../pktgen/farm-udp.pkt")),
    ("farm-ipv6.pkt", include_str!("../pktgen/farm-ipv6.pkt")),
];

fn in_bench_space(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.octets()[0] == 198 && (a.octets()[1] & 0xfe) == 18,
        IpAddr::V6(a) => a.segments()[0] == 0x2001 && a.segments()[1] == 0x0db8,
    }
}

#[test]
fn pktgen_files_match_the_farm() {
    for (name, text) in FILES {
        let mut vip: HashMap<&str, IpAddr> = HashMap::new();
        let mut dst_mac: HashMap<&str, Vec<String>> = HashMap::new();
        let mut proto: HashMap<&str, &str> = HashMap::new();
        let mut flags: HashMap<&str, Vec<&str>> = HashMap::new();
        let mut enabled = false;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let w: Vec<&str> = line.split_whitespace().collect();
            match w.as_slice() {
                ["range", p, "dst", "ip", start, min, max, _inc] => {
                    assert_eq!((start, min), (max, max), "{name}: one VIP per port: {line}");
                    vip.insert(p, start.parse().unwrap());
                }
                ["range", _, "src", "ip", start, min, max, _inc] => {
                    assert_eq!(start, min, "{name}: {line}");
                    for a in [start, max] {
                        assert!(in_bench_space(a.parse().unwrap()), "{name}: client {a} outside the benchmark ranges");
                    }
                }
                ["range", p, "dst", "mac", kind, mac] if *kind != "inc" => {
                    dst_mac.entry(p).or_default().push(mac.to_string());
                }
                ["range", p, "proto", pr] => {
                    proto.insert(p, pr);
                }
                ["range", p, "tcp", "flag", "set", f] => flags.entry(p).or_default().push(f),
                ["enable", _, "range"] => enabled = true,
                _ => {}
            }
        }
        assert!(enabled, "{name}: range mode never enabled");
        assert!(!vip.is_empty(), "{name}: no VIP");
        for (port, v) in &vip {
            assert!(in_bench_space(*v), "{name}: VIP {v}");
            let want = farm_pipeline::virtual_mac(*v).to_string();
            let macs = &dst_mac[port];
            assert_eq!(macs.len(), 3, "{name}: port {port} start/min/max dst mac");
            assert!(macs.iter().all(|m| *m == want), "{name}: port {port} dst mac {macs:?}, VIP {v} has {want}");
            if proto[port] == "tcp" {
                assert!(flags.get(port).is_some_and(|f| !f.is_empty()), "{name}: port {port} sets no TCP flag");
            }
        }
    }
}
