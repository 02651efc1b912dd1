//! End to end, nodes leaving and coming back: the real farmd + farm-dataplane + Apache on 3
//! nodes of one lab (farm mode). A crash (kill -9, link down) is taken over within 1.5 s at
//! default timers, without disturbing the other nodes' clients; the node's return restores the
//! same table without a failed request; an application failure (HTTP checker) holds a node in
//! WAIT until Apache answers again; a graceful `farmctl stop` / `start` loses no request. A
//! capture on the client side checks each phase: no SYN answered by two nodes, no RST from a
//! node that does not hold the connection, the VIP bound only to the virtual MAC. Needs root.
//!
//! One lab (prefix `e2ex`) is shared by the cases (`common::run_suite`); each case starts with
//! every node UP and the tables settled.

mod common;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use farm_tests::lab::capture::{mac_str, parse_mac, virtual_mac};
use farm_tests::lab::client::{Attempt, Load};
use farm_tests::lab::{Capture, Health, Lab, Spread};

const PREFIX: &str = "e2ex";
/// The bound for a takeover at default timers (pulse 100 ms, dead_after 1 s).
const FAILOVER_BOUND: Duration = Duration::from_millis(1500);

fn main() -> ExitCode {
    let bins = common::build_bins();
    common::run_suite(PREFIX, || common::farm_options(PREFIX, bins.clone()), &[
        ("crash_with_link_down_is_taken_over_within_1500ms_then_rejoins_losing_nothing", crash_and_rejoin),
        ("crash_of_the_processes_only_is_taken_over_within_1500ms", crash_processes_only),
        ("http_checker_holds_a_node_in_wait_until_apache_answers", checker_leave_and_return),
        ("graceful_stop_and_start_lose_no_request", graceful_stop_and_start),
    ])
}

fn all_nodes(lab: &Lab) -> Vec<usize> {
    lab.layout().node_numbers().collect()
}

fn mac(lab: &Lab, i: usize) -> [u8; 6] {
    parse_mac(&lab.layout().node_mac(i)).unwrap()
}

/// Every 8th client address: 64 clients over the whole range.
fn sample(lab: &Lab) -> Vec<Ipv4Addr> {
    lab.client_addrs().into_iter().step_by(8).collect()
}

fn failures(attempts: &[Attempt]) -> Vec<String> {
    attempts.iter().filter_map(|a| a.result.as_ref().err().map(|e| format!("{}: {e}", a.src))).collect()
}

fn assert_vip_neighbour_is_virtual(lab: &Lab) {
    let neigh = lab.client_vip_neighbour().unwrap();
    assert!(neigh.contains(&format!("lladdr {}", mac_str(&virtual_mac(lab.vip())))), "client's VIP neighbour: {neigh}");
    for i in all_nodes(lab) {
        assert!(!neigh.contains(&lab.layout().node_mac(i)), "VIP bound to n{i}'s MAC: {neigh}");
    }
}

/// The same client answered by the same node in both spreads, except clients of `moved`.
fn assert_same_nodes(a: &Spread, b: &Spread, moved: Option<usize>) {
    for ((c, x), (_, y)) in a.results.iter().zip(&b.results) {
        if moved.is_some() && x.as_ref().ok() == moved.as_ref() {
            continue;
        }
        assert_eq!(x, y, "client {c} changed node");
    }
}

fn crash_and_rejoin(lab: &mut Lab) {
    let all = all_nodes(lab);
    let before = lab.wait_settled(&all, Duration::from_secs(5)).unwrap();
    let spread0 = lab.curl_spread(&lab.client_addrs(), 80).unwrap();
    assert!(spread0.failures().is_empty(), "{:?}", spread0.failures());
    assert_vip_neighbour_is_virtual(lab);

    // Crash n2 under load from clients of every node, capturing on the client side.
    let vip80 = SocketAddrV4::new(lab.vip(), 80);
    let cap = Capture::start(&lab.client_ns(), lab.vip(), &lab.run_dir().join("crash.pcap")).unwrap();
    let load = Load::start(&lab.client_ns(), &sample(lab), vip80, 4, Duration::from_secs(2)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let r = lab.fail_node(2, true, 8, Duration::from_secs(5)).unwrap();
    println!("  {r}");
    let attempts = load.stop();
    assert!(r.failed_after.is_empty(), "{:?}", r.failed_after);
    for (c, d, n) in &r.served {
        let d = d.unwrap_or_else(|| panic!("client {c} of n2 never served again"));
        assert!(d <= FAILOVER_BOUND, "client {c} of n2 served again after {d:?} (bound {FAILOVER_BOUND:?})");
        assert!(matches!(n, Some(1 | 3)), "client {c} served by {n:?}");
    }
    // Only n2's buckets moved; the survivors' clients never failed.
    let after = lab.wait_settled(&[1, 3], Duration::from_secs(5)).unwrap();
    for (b, (x, y)) in before.owners.iter().zip(&after.owners).enumerate() {
        if *x != Some(2) {
            assert_eq!(x, y, "bucket {b} of a survivor moved");
        }
    }
    let survivors_failed: Vec<String> = attempts
        .iter()
        .filter(|a| a.result.is_err() && spread0.node_of(a.src) != Some(2))
        .map(|a| format!("{}: {:?}", a.src, a.result))
        .collect();
    assert!(survivors_failed.is_empty(), "clients of n1/n3 failed during the crash: {survivors_failed:?}");
    // The client resolves the VIP again while n2 is dead: still the virtual MAC.
    lab.exec(&lab.client_ns(), &["ip", "neigh", "flush", "to", &lab.vip().to_string()]).unwrap();
    let spread1 = lab.curl_spread(&lab.client_addrs(), 80).unwrap();
    println!("  after the crash: {}", spread1.summary(3));
    assert!(spread1.failures().is_empty(), "{:?}", spread1.failures());
    assert!(!spread1.counts().contains_key(&2));
    assert_same_nodes(&spread0, &spread1, Some(2));
    assert_vip_neighbour_is_virtual(lab);
    let rep = cap.finish(&lab.node_macs(), lab.vip(), &[mac(lab, 2)]).unwrap();
    println!("  capture (crash): {rep}");
    assert_eq!(rep.dropped, 0);
    assert!(rep.violations.is_empty(), "{:#?}", rep.violations);
    assert!(rep.vip_arp_replies >= 1, "the client resolved the VIP during the crash: {rep}");

    // n2 comes back under load: same table as before the crash, no failed request.
    let cap = Capture::start(&lab.client_ns(), lab.vip(), &lab.run_dir().join("rejoin.pcap")).unwrap();
    let load = Load::start(&lab.client_ns(), &sample(lab), vip80, 4, Duration::from_secs(3)).unwrap();
    let rj = lab.rejoin_node(2, Duration::from_secs(30)).unwrap();
    println!("  {rj}");
    std::thread::sleep(Duration::from_millis(300));
    let attempts = load.stop();
    assert!(attempts.len() > 20, "the load ran: {} requests", attempts.len());
    assert_eq!(failures(&attempts), Vec::<String>::new(), "requests failed during the rejoin");
    assert_eq!(rj.assignment.owners, before.owners, "the table after the rejoin differs from before the crash");
    lab.exec(&lab.client_ns(), &["ip", "neigh", "flush", "to", &lab.vip().to_string()]).unwrap();
    let spread2 = lab.curl_spread(&lab.client_addrs(), 80).unwrap();
    assert!(spread2.failures().is_empty(), "{:?}", spread2.failures());
    assert_same_nodes(&spread0, &spread2, None);
    let rep = cap.finish(&lab.node_macs(), lab.vip(), &[]).unwrap();
    println!("  capture (rejoin): {rep}");
    assert_eq!(rep.dropped, 0);
    assert!(rep.violations.is_empty(), "{:#?}", rep.violations);
    assert!(rep.vip_arp_replies >= 1, "the client resolved the VIP after the rejoin: {rep}");
    assert!(rep.syn_acks.contains_key(&2), "n2 answers again: {rep}");
    assert_vip_neighbour_is_virtual(lab);
}

fn crash_processes_only(lab: &mut Lab) {
    let cap = Capture::start(&lab.client_ns(), lab.vip(), &lab.run_dir().join("crash3.pcap")).unwrap();
    let r = lab.fail_node(3, false, 8, Duration::from_secs(5)).unwrap();
    println!("  {r}");
    assert!(r.failed_after.is_empty(), "{:?}", r.failed_after);
    let all = r.all().expect("every probed client of n3 served again");
    assert!(all <= FAILOVER_BOUND, "n3's clients served again after {all:?} (bound {FAILOVER_BOUND:?})");
    assert!(r.served.iter().all(|(_, _, n)| matches!(n, Some(1 | 2))), "{:?}", r.served);
    let rj = lab.rejoin_node(3, Duration::from_secs(30)).unwrap();
    println!("  {rj}");
    let rep = cap.finish(&lab.node_macs(), lab.vip(), &[mac(lab, 3)]).unwrap();
    assert_eq!(rep.dropped, 0);
    assert!(rep.violations.is_empty(), "{:#?}", rep.violations);
}

fn checker_leave_and_return(lab: &mut Lab) {
    let all = all_nodes(lab);
    let before = lab.wait_settled(&all, Duration::from_secs(5)).unwrap();
    let spread0 = lab.curl_spread(&lab.client_addrs(), 80).unwrap();
    let cap = Capture::start(&lab.client_ns(), lab.vip(), &lab.run_dir().join("checker.pcap")).unwrap();

    // Apache of n1 stops: its HTTP checker fails, n1 goes WAIT and leaves the farm.
    assert!(lab.stop_app(1), "Apache of n1 was not running");
    let t0 = Instant::now();
    lab.wait_for("n1 in WAIT", Duration::from_secs(15), || lab.node_state(1).is_ok_and(|s| s == "WAIT")).unwrap();
    println!("  n1 WAIT {} ms after its Apache stopped", t0.elapsed().as_millis());
    assert_eq!(lab.health(1), Health::NotUp(404), "health URL of a node in WAIT");
    let r = lab.api(1, "GET", "/var/modules/lab/ready.txt", false).unwrap();
    assert_eq!(r.body.trim(), "WAIT");
    assert_eq!(lab.farmctl(1, &["state"]).unwrap().status.code(), Some(1), "farmctl state exit code in WAIT");
    assert_eq!((lab.health(2), lab.health(3)), (Health::Up, Health::Up));
    let waiting = lab.status_json(1).unwrap();
    assert!(waiting["waiting_on"].to_string().contains("http"), "{waiting}");
    lab.wait_settled(&[2, 3], Duration::from_secs(5)).unwrap();
    let spread1 = lab.curl_spread(&lab.client_addrs(), 80).unwrap();
    println!("  n1 in WAIT: {}", spread1.summary(3));
    assert!(spread1.failures().is_empty(), "{:?}", spread1.failures());
    assert!(!spread1.counts().contains_key(&1), "n1 in WAIT still serves: {:?}", spread1.counts());
    assert_same_nodes(&spread0, &spread1, Some(1));

    // Apache answers again: n1 is UP and owns its buckets again.
    lab.start_app(1).unwrap();
    let t1 = Instant::now();
    lab.wait_health(&[1], Health::Up, Duration::from_secs(15)).unwrap();
    println!("  n1 UP {} ms after its Apache started", t1.elapsed().as_millis());
    let back = lab.wait_settled(&all, Duration::from_secs(10)).unwrap();
    assert_eq!(back.owners, before.owners);
    let spread2 = lab.curl_spread(&lab.client_addrs(), 80).unwrap();
    assert_same_nodes(&spread0, &spread2, None);
    let rep = cap.finish(&lab.node_macs(), lab.vip(), &[]).unwrap();
    println!("  capture: {rep}");
    assert_eq!(rep.dropped, 0);
    assert!(rep.violations.is_empty(), "{:#?}", rep.violations);
}

fn graceful_stop_and_start(lab: &mut Lab) {
    let all = all_nodes(lab);
    let before = lab.wait_settled(&all, Duration::from_secs(5)).unwrap();
    let cap = Capture::start(&lab.client_ns(), lab.vip(), &lab.run_dir().join("graceful.pcap")).unwrap();
    let vip80 = SocketAddrV4::new(lab.vip(), 80);
    let load = Load::start(&lab.client_ns(), &sample(lab), vip80, 4, Duration::from_secs(5)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(load.done() > 0, "the load runs");

    let t_stop = Instant::now();
    let out = lab.farmctl(2, &["stop", "--reason", "e2e graceful stop"]).unwrap();
    assert!(out.status.success(), "farmctl stop: {out:?}");
    lab.wait_for("n2 in STOP", Duration::from_secs(20), || lab.node_state(2).is_ok_and(|s| s == "STOP")).unwrap();
    println!("  n2 STOP {} ms after farmctl stop", t_stop.elapsed().as_millis());
    assert_eq!(lab.health(2), Health::NotUp(404), "health URL of a stopped node");
    assert_eq!(lab.farmctl(2, &["state"]).unwrap().status.code(), Some(0));
    assert!(!lab.httpd(2).running(), "stop_both left n2's Apache running");
    lab.wait_settled(&[1, 3], Duration::from_secs(5)).unwrap();
    std::thread::sleep(Duration::from_millis(500));

    let t_start = Instant::now();
    let out = lab.farmctl(2, &["start"]).unwrap();
    assert!(out.status.success(), "farmctl start: {out:?}");
    lab.wait_health(&[2], Health::Up, Duration::from_secs(20)).unwrap();
    let t_up = Instant::now();
    println!("  n2 UP {} ms after farmctl start", t_start.elapsed().as_millis());
    let back = lab.wait_settled(&all, Duration::from_secs(10)).unwrap();
    assert_eq!(back.owners, before.owners);
    std::thread::sleep(Duration::from_millis(500));
    let attempts = load.stop();

    let mut by_node: BTreeMap<(&str, usize), usize> = BTreeMap::new();
    for a in &attempts {
        if let Ok(n) = a.result {
            let phase = if a.end < t_stop { "before" } else if a.start > t_up { "after" } else { "during" };
            *by_node.entry((phase, n)).or_default() += 1;
        }
    }
    println!("  {} requests, served per (phase, node): {by_node:?}", attempts.len());
    assert_eq!(failures(&attempts), Vec::<String>::new(), "requests failed across a graceful stop and start");
    assert!(by_node.contains_key(&("before", 2)) && by_node.contains_key(&("after", 2)), "{by_node:?}");
    let rep = cap.finish(&lab.node_macs(), lab.vip(), &[]).unwrap();
    println!("  capture: {rep}");
    assert_eq!(rep.dropped, 0);
    assert!(rep.violations.is_empty(), "{:#?}", rep.violations);
}
