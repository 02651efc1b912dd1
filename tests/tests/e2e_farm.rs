//! End to end, steady state: the real farmd + farm-dataplane + Apache on 3 nodes of one lab
//! (farm mode), clients in the client namespace. Every node UP with its health URL, the VIP's
//! clients spread evenly by address (tcp 80, on_addr) and by connection (tcp 8080, on_port),
//! exactly as the published table says, with client affinity; a capture on the client side
//! shows no SYN answered twice, no RST, and the VIP bound only to the virtual MAC. Needs root.
//!
//! One lab (prefix `e2ef`) is shared by the cases (`common::run_suite`); each case starts with
//! every node UP and the tables settled.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::ExitCode;
use std::time::Duration;

use farm_tests::lab::capture::{mac_str, virtual_mac};
use farm_tests::lab::client::{http_get, parallel};
use farm_tests::lab::{max_deviation, Capture, Health, Lab, ON_PORT_TCP};

const PREFIX: &str = "e2ef";

fn main() -> ExitCode {
    let bins = common::build_bins();
    common::run_suite(PREFIX, || common::farm_options(PREFIX, bins.clone()), &[
        ("every_node_is_up_with_its_health_url_and_buckets", every_node_is_up),
        ("on_addr_spread_is_even_and_follows_the_table", on_addr_spread),
        ("on_port_spread_is_even_over_the_ports_of_one_address", on_port_spread),
        ("on_addr_keeps_every_connection_of_a_client_on_one_node", on_addr_affinity),
        ("steady_state_capture_no_duplicate_syn_ack_no_rst_vip_only_on_virtual_mac", steady_capture),
    ])
}

fn all_nodes(lab: &Lab) -> Vec<usize> {
    lab.layout().node_numbers().collect()
}

fn every_node_is_up(lab: &mut Lab) {
    let total = lab.config().unwrap().buckets() as u64;
    let mut owned = 0;
    for i in all_nodes(lab) {
        assert_eq!(lab.health(i), Health::Up, "health URL of n{i}");
        let r = lab.api(i, "GET", "/var/modules/lab/ready.txt", false).unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "OK\n"));
        let st = lab.status_json(i).unwrap();
        assert_eq!(st["state"], "UP", "n{i}: {st}");
        assert_eq!(st["node"], format!("n{i}"));
        let view: Vec<u64> = st["view"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        assert_eq!(view.len(), 3, "n{i} sees every member: {st}");
        let mine = st["buckets_owned"].as_u64().unwrap();
        assert!(mine > 0, "n{i} owns no bucket");
        owned += mine;
        // farmctl state: prints UP, exit code 2.
        let out = lab.farmctl(i, &["state"]).unwrap();
        assert_eq!(out.status.code(), Some(2), "farmctl state on n{i}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "UP");
        // A node-local metrics page.
        let m = lab.api(i, "GET", "/metrics", false).unwrap();
        assert_eq!(m.status, 200);
        assert!(!m.body.is_empty());
    }
    assert_eq!(owned, total, "every bucket owned by exactly one node");
    // The VIP answers from the client.
    let body = lab.client_curl(lab.client_addr(0), &format!("http://{}/", lab.vip())).unwrap();
    assert!(body.starts_with("node n"), "{body:?}");
}

fn on_addr_spread(lab: &mut Lab) {
    let clients = lab.client_addrs();
    assert!(clients.len() >= 256);
    let table = lab.assignment(1).unwrap();
    let spread = lab.curl_spread(&clients, 80).unwrap();
    println!("  on_addr, {} client addresses: {}", clients.len(), spread.summary(3));
    assert!(spread.failures().is_empty(), "failed requests: {:?}", spread.failures());
    for (c, r) in &spread.results {
        let b = lab.bucket(*c, 80, 0).unwrap();
        assert_eq!(r.as_ref().ok().copied(), table.owners[b as usize], "client {c} (bucket {b})");
    }
    // Every lab has its own random hash seed: 508 clients over 256 buckets give each node a
    // share with a standard deviation of about 11% of a third (bucket counts and clients), so
    // 25% catches a skewed assignment without failing on an unlucky seed.
    let dev = spread.max_deviation(&all_nodes(lab));
    assert!(dev <= 0.25, "shares {:?} deviate {:.1}% from even", spread.counts(), dev * 100.0);
}

fn on_port_spread(lab: &mut Lab) {
    // One client address, 768 connections from explicit source ports: each port is a bucket
    // draw of its own under the on_port rule.
    let src = lab.client_addr(3);
    let ports: Vec<u16> = (21000..21768).collect();
    let dst = SocketAddrV4::new(lab.vip(), ON_PORT_TCP);
    let table = lab.assignment(2).unwrap();
    let replies = parallel(&lab.client_ns(), &ports, 16, |p| {
        http_get(SocketAddrV4::new(src, *p), dst, "/", Duration::from_secs(3))
    })
    .unwrap();
    let mut counts = BTreeMap::new();
    for (p, r) in ports.iter().zip(&replies) {
        let r = r.as_ref().unwrap_or_else(|e| panic!("{src}:{p}: {e}"));
        assert_eq!(r.status, 200);
        let node = r.node().unwrap();
        let b = lab.bucket(src, ON_PORT_TCP, *p).unwrap();
        assert_eq!(Some(node), table.owners[b as usize], "{src}:{p} (bucket {b})");
        *counts.entry(node).or_insert(0usize) += 1;
    }
    println!("  on_port, {} connections from {src}: {counts:?}", ports.len());
    // As above: a random seed per lab, 768 connections over 256 buckets.
    let dev = max_deviation(&counts, &all_nodes(lab));
    assert!(dev <= 0.25, "shares {counts:?} deviate {:.1}% from even", dev * 100.0);
}

fn on_addr_affinity(lab: &mut Lab) {
    // 48 clients spread over the range, 12 connections each (kernel-chosen source ports).
    let clients: Vec<Ipv4Addr> = lab.client_addrs().into_iter().step_by(10).take(48).collect();
    let table = lab.assignment(3).unwrap();
    let vip80 = SocketAddrV4::new(lab.vip(), 80);
    let vip8080 = SocketAddrV4::new(lab.vip(), ON_PORT_TCP);
    let per_client = parallel(&lab.client_ns(), &clients, 12, |c| {
        let get = |dst| {
            (0..12)
                .map(|_| {
                    let r = http_get(SocketAddrV4::new(*c, 0), dst, "/", Duration::from_secs(3)).unwrap();
                    (r.local.port(), r.node().unwrap())
                })
                .collect::<Vec<_>>()
        };
        (get(vip80), get(vip8080))
    })
    .unwrap();
    let mut spread_nodes = 0;
    for (c, (on_addr, on_port)) in clients.iter().zip(&per_client) {
        let nodes: BTreeSet<usize> = on_addr.iter().map(|(_, n)| *n).collect();
        let ports: BTreeSet<u16> = on_addr.iter().map(|(p, _)| *p).collect();
        assert!(ports.len() > 1, "{c}: one source port only: {ports:?}");
        assert_eq!(nodes.len(), 1, "{c}: port 80 (on_addr) connections on several nodes: {on_addr:?}");
        let b = lab.bucket(*c, 80, 0).unwrap();
        assert_eq!(nodes.into_iter().next(), table.owners[b as usize], "{c} (bucket {b})");
        // The same client under the on_port rule: each connection follows its own bucket.
        for (p, n) in on_port {
            let b = lab.bucket(*c, ON_PORT_TCP, *p).unwrap();
            assert_eq!(Some(*n), table.owners[b as usize], "{c}:{p} on port 8080");
        }
        spread_nodes += usize::from(on_port.iter().map(|(_, n)| n).collect::<BTreeSet<_>>().len() > 1);
    }
    assert!(spread_nodes > clients.len() / 2, "on_port spread only {spread_nodes} of {} clients", clients.len());
}

fn steady_capture(lab: &mut Lab) {
    let vmac = mac_str(&virtual_mac(lab.vip()));
    let file = lab.run_dir().join("steady.pcap");
    let cap = Capture::start(&lab.client_ns(), lab.vip(), &file).unwrap();
    // The client forgets the VIP's MAC: its next requests resolve it again (ARP), answered by
    // the node owning the requester's bucket, with the virtual MAC.
    lab.exec(&lab.client_ns(), &["ip", "neigh", "flush", "to", &lab.vip().to_string()]).unwrap();
    let clients = lab.client_addrs();
    let a = lab.curl_spread(&clients, 80).unwrap();
    let b = lab.curl_spread(&clients, ON_PORT_TCP).unwrap();
    assert!(a.failures().is_empty() && b.failures().is_empty(), "{:?} {:?}", a.failures(), b.failures());
    let rep = cap.finish(&lab.node_macs(), lab.vip(), &[]).unwrap();
    println!("  capture: {rep}");
    assert_eq!(rep.dropped, 0, "the capture is incomplete");
    assert!(rep.violations.is_empty(), "{:#?}", rep.violations);
    for port in [80, ON_PORT_TCP] {
        let missing: Vec<&Ipv4Addr> = clients.iter().filter(|c| !rep.syn_acks_to.contains_key(&(**c, port))).collect();
        let some = &missing[..missing.len().min(8)];
        assert!(missing.is_empty(), "no SYN-ACK seen to {} clients on port {port}, e.g. {some:?}; {rep}", missing.len());
    }
    let extra: Vec<_> = rep.syn_acks_to.iter().filter(|(_, n)| **n > 1).collect();
    println!("  clients with a SYN-ACK sent again: {extra:?}");
    assert_eq!(rep.syn_acks.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3], "{rep}");
    assert!(rep.rsts.is_empty(), "RSTs in steady state: {rep}");
    assert!(rep.vip_arp_replies >= 1, "the client resolved the VIP again: {rep}");
    let neigh = lab.client_vip_neighbour().unwrap();
    assert!(neigh.contains(&format!("lladdr {vmac}")), "{neigh}");
    for i in all_nodes(lab) {
        assert!(!neigh.contains(&lab.layout().node_mac(i)), "{neigh}");
    }
}
