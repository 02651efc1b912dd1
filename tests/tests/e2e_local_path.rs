//! End to end with the data-plane paths that are not the lab's default: uplink `net_af_packet`
//! and the local port `net_tap` (the defaults, `net_af_xdp` on both, run in every other lab
//! suite), so both stay working. A 3-node farm (real farmd + farm-dataplane + Apache): every
//! node UP, every client served by the node the table names, then a crash (kill -9, link down)
//! taken over within 1.5 s, and the node's return. Needs root.

mod common;

use std::process::ExitCode;
use std::time::Duration;

use farm_config::LocalPort;
use farm_tests::lab::{DataplaneChoice, Health, Lab, LabOptions, LabUplink};

const PREFIX: &str = "e2elp";
/// The takeover bound at default timers (as e2e_failover).
const FAILOVER_BOUND: Duration = Duration::from_millis(1500);

fn main() -> ExitCode {
    let bins = common::build_bins();
    let opts = move || LabOptions {
        dataplane: DataplaneChoice { uplink: Some(LabUplink::AfPacket), local_port: Some(LocalPort::Tap) },
        ..common::farm_options(PREFIX, bins.clone())
    };
    common::run_suite(PREFIX, opts, &[
        ("af_packet_uplink_and_tap_serve_every_client_where_the_table_says", basic_traffic),
        ("af_packet_uplink_and_tap_crash_is_taken_over_within_1500ms_then_rejoins", failover),
    ])
}

fn basic_traffic(lab: &mut Lab) {
    let cfg = lab.config().unwrap();
    assert_eq!(cfg.dataplane.local_port, LocalPort::Tap);
    assert!(cfg.dataplane.uplink.as_ref().unwrap().device_name().starts_with("net_af_packet"));
    let nodes: Vec<usize> = lab.layout().node_numbers().collect();
    for &i in &nodes {
        assert_eq!(lab.health(i), Health::Up, "n{i}");
        // A TAP, not a veth: the data plane's end of the af_xdp pair does not exist.
        let links = lab.exec(&lab.layout().node_ns(i), &["ip", "-o", "-d", "link", "show", "dev", "farm0"]).unwrap();
        let links = String::from_utf8_lossy(&links.stdout).into_owned();
        assert!(links.contains("tun type tap"), "n{i}: {links}");
    }
    let table = lab.assignment(1).unwrap();
    let clients: Vec<_> = lab.client_addrs().into_iter().step_by(4).collect();
    let spread = lab.curl_spread(&clients, 80).unwrap();
    println!("  {} clients: {}", clients.len(), spread.summary(3));
    assert!(spread.failures().is_empty(), "{:?}", spread.failures());
    for (c, r) in &spread.results {
        let b = lab.bucket(*c, 80, 0).unwrap();
        assert_eq!(r.as_ref().ok().copied(), table.owners[b as usize], "client {c} (bucket {b})");
    }
    // A big download: checksums and segmentation right on both ports.
    let out = lab
        .exec(&lab.client_ns(), &["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", &format!("http://{}/big.bin", lab.vip())])
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.starts_with("200 "), "{out}");
}

fn failover(lab: &mut Lab) {
    let all: Vec<usize> = lab.layout().node_numbers().collect();
    let before = lab.wait_settled(&all, Duration::from_secs(5)).unwrap();
    let r = lab.fail_node(2, true, 8, Duration::from_secs(5)).unwrap();
    println!("  {r}");
    assert!(r.failed_after.is_empty(), "{:?}", r.failed_after);
    for (c, d, n) in &r.served {
        let d = d.unwrap_or_else(|| panic!("client {c} of n2 never served again"));
        assert!(d <= FAILOVER_BOUND, "client {c} of n2 served again after {d:?} (bound {FAILOVER_BOUND:?})");
        assert!(matches!(n, Some(1 | 3)), "client {c} served by {n:?}");
    }
    let rj = lab.rejoin_node(2, Duration::from_secs(30)).unwrap();
    println!("  {rj}");
    assert_eq!(rj.assignment.owners, before.owners, "the table after the rejoin differs from before the crash");
    let spread = lab.curl_spread(&lab.client_addrs().into_iter().step_by(8).collect::<Vec<_>>(), 80).unwrap();
    assert!(spread.failures().is_empty(), "{:?}", spread.failures());
    assert!(spread.counts().contains_key(&2), "n2 serves again: {}", spread.summary(3));
}
