//! The lab in data-plane mode: the real farm-dataplane on every node (net_af_packet uplink,
//! TAP farm0), a static table published by the lab, no farmd. Checks the farm-mode network
//! (raw uplink, node address on farm0, VIP on lo, kernel kept out of VIP ARP) end to end: every
//! client reaches the VIP on the node the table names, and only there. Needs root.
//!
//! farm-dataplane is built by this test with cargo (`common::build_bins`), in its own target
//! directory next to the workspace's (so it never waits on the lock of the `cargo test` that runs
//! it, and it is never a stale binary).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use farm_tests::lab::{self, Lab, LabOptions, Mode};

/// Clients that reached `local` (the VIP), from an Apache access log of the lab
/// (`client local status bytes usecs "request"`).
fn clients_in_log(path: &std::path::Path, local: Ipv4Addr) -> BTreeSet<Ipv4Addr> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let client: Ipv4Addr = f.next()?.parse().ok()?;
            (f.next()?.parse::<Ipv4Addr>().ok()? == local).then_some(client)
        })
        .collect()
}

#[test]
fn vip_traffic_reaches_exactly_the_node_the_table_names() {
    let bin_dir = common::build_bins();
    lab::down("tdpl").unwrap(); // what a killed earlier run may have left
    let opts = LabOptions {
        prefix: "tdpl".into(),
        nodes: 3,
        mode: Mode::Dataplane,
        bin_dir,
        ..LabOptions::default()
    };
    let mut l = Lab::up(&opts).expect("lab up (dataplane mode)");
    let vip_url = format!("http://{}/", l.vip());

    // Every node's own address works through its data plane.
    for i in 1..=3 {
        let body = l.client_curl(l.client_addr(5), &format!("http://{}/", l.node_addr(i))).unwrap();
        assert_eq!(body, format!("node n{i}\n"));
    }

    // A spread of clients over both /24s: each lands on its owner.
    let mut per_node: BTreeMap<usize, Vec<Ipv4Addr>> = BTreeMap::new();
    for k in (0..l.client_addrs().len()).step_by(9) {
        let src = l.client_addr(k);
        let owner = l.vip_owner(src, 80, 0).expect("VIP rule for TCP 80");
        let body = l.client_curl(src, &vip_url).unwrap_or_else(|e| panic!("VIP from {src}: {e}"));
        assert_eq!(body, format!("node n{owner}\n"), "client {src}");
        per_node.entry(owner).or_default().push(src);
    }
    assert_eq!(per_node.len(), 3, "every node owns some of the clients: {per_node:?}");

    // Only the owner saw each client: the other data planes dropped its VIP traffic.
    for i in 1..=3 {
        let seen = clients_in_log(&l.httpd(i).access_log(), l.vip());
        assert!(!seen.is_empty());
        for src in &seen {
            assert_eq!(l.vip_owner(*src, 80, 0), Some(i), "node {i} served VIP client {src}");
        }
        for src in per_node.values().flatten() {
            let owner = l.vip_owner(*src, 80, 0).unwrap();
            assert_eq!(seen.contains(src), owner == i, "node {i}, client {src}");
        }
    }

    // Node 2 crashes: its clients get no answer from anyone (the table is static: no
    // failover without farmd); the others' clients are unaffected. Then it comes back.
    let lost = per_node[&2][0];
    let kept = per_node[&1][0];
    l.kill_node(2).unwrap();
    let out = l.client_curl_args(lost, &["-sf", "--max-time", "1", &vip_url]).unwrap();
    assert!(!out.status.success(), "a client of the dead node got {:?}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(l.client_curl(kept, &vip_url).unwrap(), "node n1\n");
    l.restart_node(2).unwrap();
    assert_eq!(l.client_curl(lost, &vip_url).unwrap(), "node n2\n");

    // The start_both / stop_both scripts that farmd will run (FARM_NODE set by farmd) drive
    // the node's Apache: graceful stop, start, start again (no-op), forced stop, start.
    let files = l.farm_files();
    let script = |path: &std::path::Path, arg: &str| {
        let p = path.to_string_lossy().to_string();
        let mut args = vec!["env", "FARM_NODE=n2", p.as_str()];
        if !arg.is_empty() {
            args.push(arg);
        }
        let out = l.exec(&l.node_ns(2), &args).unwrap();
        assert!(out.status.success(), "{p} {arg}: {}", String::from_utf8_lossy(&out.stderr));
    };
    script(&files.stop_both, "");
    assert!(l.client_curl(lost, &vip_url).is_err(), "Apache of n2 still answers after stop_both");
    script(&files.start_both, "");
    assert_eq!(l.client_curl(lost, &vip_url).unwrap(), "node n2\n");
    script(&files.start_both, "");
    script(&files.stop_both, "force");
    assert!(l.client_curl(lost, &vip_url).is_err(), "Apache of n2 still answers after stop_both force");
    script(&files.start_both, "");
    assert_eq!(l.client_curl(lost, &vip_url).unwrap(), "node n2\n");

    // The kernel of a node never answers ARP for the VIP: the client learnt the virtual MAC.
    let neigh = l.exec(&l.client_ns(), &["ip", "neigh", "show", &l.vip().to_string()]).unwrap();
    let neigh = String::from_utf8_lossy(&neigh.stdout).to_string();
    assert!(neigh.contains("5a:fe:c6:12:00:64"), "{neigh}");

    l.teardown().unwrap();
    let left = lab::leftovers("tdpl").unwrap();
    assert!(left.is_empty(), "{left:?}");
    let shm: Vec<_> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("tdpl-lab-"))
        .collect();
    assert!(shm.is_empty(), "{shm:?}");
}
