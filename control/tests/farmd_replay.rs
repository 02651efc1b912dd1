//! Invariant I5 with real farmd processes on loopback addresses (no data plane, `--table-only`):
//! a recording of a peer's heartbeats, replayed after that peer died and this node restarted,
//! never makes the dead peer alive; the rejections are counted by reason.
//!
//! The recorder is a man in the middle, as an attacker on the LAN would be: n2's
//! configuration places n1 at a proxy address and n1's configuration places n2 at another
//! one; the test relays between them (so the two nodes form a farm through it) and keeps what
//! n2 sends to n1. Then n2 is killed, n1 restarted, and the recording replayed to n1 from
//! n2's address as n1 knows it (passes the source check: stopped by the incarnation echo) and
//! from an address that is not n2's (stopped by the source check).

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{free_ports, private, quoted, Farmd, FarmToml};
use farm_control::api::Status;
use farm_control::lifecycle::State;

const TOKEN: &str = "farmd-replay-test-token";
const BUCKETS: usize = 256;

/// Host part of each address in the test's /16 of 127/8.
const N1: u8 = 1; // n1, where it really is
const N2: u8 = 2; // n2, where it really is
const N1_PROXY: u8 = 11; // n1 as n2 knows it
const N2_PROXY: u8 = 12; // n2 as n1 knows it
const STRANGER: u8 = 13; // nobody's address

struct Farm {
    /// n1 and n2, each started with `--table-only` (killed before the directory goes).
    nodes: Vec<Farmd>,
    _dir: tempfile::TempDir,
    net: [u8; 2],
    hb_port: u16,
}

impl Farm {
    fn new() -> Farm {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // A /16 of its own (farmd_cluster.rs uses 100..=199 as first byte).
        let net = common::net(201 + (std::process::id() % 50) as u8);
        let ip = |host| common::ip(net, host);
        // The UDP port free on every address of the test, the TCP port on the nodes'.
        let (hb_port, api_port) = free_ports(&[N1, N2, N1_PROXY, N2_PROXY, STRANGER].map(ip), &[N1, N2].map(ip));
        private(&root.join("secret"), "the-cluster-secret-0123456789abcdef");
        private(&root.join("token"), TOKEN);
        let mut nodes = Vec::new();
        // Each node's own file: itself where it is, the other at the proxy.
        for (k, (me, other)) in [(N1, N2_PROXY), (N2, N1_PROXY)].into_iter().enumerate() {
            let (a1, a2) = if k == 0 { (me, other) } else { (other, me) };
            let name = format!("n{}", k + 1);
            let api = SocketAddr::from((ip(me), api_port));
            FarmToml::new(42)
                .module("hash_seed", quoted("0x5eed"))
                .module("buckets", BUCKETS)
                .node_files(root, "secret")
                .node("n1", ip(a1))
                .node("n2", ip(a2))
                .heartbeat("port", hb_port)
                .heartbeat("pulse", quoted("100ms"))
                .heartbeat("dead_after", quoted("1s"))
                .api("listen", quoted(api))
                .api("token_file", quoted(root.join("token").display()))
                .write(&root.join(format!("{name}.toml")));
            nodes.push(Farmd::new(root, &name, api, Some(TOKEN)));
        }
        Farm { nodes, _dir: dir, net, hb_port }
    }

    fn hb(&self, host: u8) -> SocketAddr {
        SocketAddr::from((common::ip(self.net, host), self.hb_port))
    }

    fn start(&mut self, k: usize) {
        self.nodes[k].start(&["--table-only", "--start", "--log", "debug"]);
    }

    fn table_owners(&self, k: usize) -> Option<Vec<u8>> {
        self.nodes[k].table().map(|t| t.iter().map(|e| e.owner).collect())
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                let err = n.stderr();
                let tail: Vec<&str> = err.lines().rev().take(60).collect();
                format!("--- {} (last lines) ---\n{}\n", n.node, tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
            })
            .collect()
    }

    /// Waits until `pred` holds on node k's status.
    fn wait_status(&self, k: usize, within: Duration, what: &str, pred: impl Fn(&Status) -> bool) -> Status {
        self.nodes[k].wait_status_or(within, pred, || format!("{what}\n{}", self.logs()))
    }
}

/// The man in the middle: relays both ways between the two nodes and records what n2 sends
/// to n1 while `recording` is set.
struct Relay {
    stop: Arc<AtomicBool>,
    recording: Arc<AtomicBool>,
    recorded: Arc<Mutex<Vec<Vec<u8>>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Relay {
    /// `as_n1` receives what n2 sends to n1, `as_n2` what n1 sends to n2.
    fn start(as_n1: &UdpSocket, as_n2: &UdpSocket, n1: SocketAddr, n2: SocketAddr) -> Relay {
        let stop = Arc::new(AtomicBool::new(false));
        let recording = Arc::new(AtomicBool::new(false));
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        // (receive on, expected source, send from, to, record)
        let legs = [(as_n1, n2, as_n2, n1, true), (as_n2, n1, as_n1, n2, false)];
        for (rx, src, tx, to, record) in legs {
            let (rx, tx) = (rx.try_clone().unwrap(), tx.try_clone().unwrap());
            rx.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            let (stop, recording, recorded) = (stop.clone(), recording.clone(), recorded.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = rx.recv_from(&mut buf) else { continue };
                    if from != src {
                        continue;
                    }
                    if record && recording.load(Ordering::Relaxed) {
                        recorded.lock().unwrap().push(buf[..n].to_vec());
                    }
                    let _ = tx.send_to(&buf[..n], to);
                }
            }));
        }
        Relay { stop, recording, recorded, threads }
    }

    fn finish(self) -> Vec<Vec<u8>> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        let v = self.recorded.lock().unwrap().clone();
        v
    }
}

fn rejected(st: &Status, reason: &str) -> u64 {
    st.heartbeat.rejected.get(reason).copied().unwrap_or(0)
}

fn metric(metrics: &str, reason: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with("farm_heartbeat_rejected_total") && l.contains(&format!("reason=\"{reason}\"")))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no farm_heartbeat_rejected_total for {reason}:\n{metrics}"))
}

#[test]
fn replayed_heartbeats_of_a_dead_peer_are_rejected_after_a_restart() {
    let mut farm = Farm::new();
    let as_n1 = UdpSocket::bind(farm.hb(N1_PROXY)).unwrap();
    let as_n2 = UdpSocket::bind(farm.hb(N2_PROXY)).unwrap();
    let stranger = UdpSocket::bind(farm.hb(STRANGER)).unwrap();
    let relay = Relay::start(&as_n1, &as_n2, farm.hb(N1), farm.hb(N2));
    farm.start(0);
    farm.start(1);

    // 1. Through the relay, the two form a farm (the echo handshake works across it).
    let both = |st: &Status| st.state == State::Up && st.view == vec![0, 1] && st.buckets_owned > 0;
    farm.wait_status(0, Duration::from_secs(15), "a farm of two", both);
    farm.wait_status(1, Duration::from_secs(15), "a farm of two", both);
    let st = farm.nodes[0].status();
    assert_eq!(rejected(&st, "wrong_source"), 0, "{:?}", st.heartbeat);

    // 2. Record n2's heartbeats to n1 for 2 s, then kill n2.
    relay.recording.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(2));
    relay.recording.store(false, Ordering::Relaxed);
    farm.nodes[1].kill();
    let recording = relay.finish();
    assert!(recording.len() >= 10, "{} heartbeats recorded", recording.len());

    // 3. Restart n1 (new incarnation) and replay the recording while it starts and after its
    //    startup grace: from n2's address as n1 knows it, and from a stranger's address.
    farm.nodes[0].kill();
    let log_before = farm.nodes[0].module_log().len();
    farm.start(0);
    let started = Instant::now();
    farm.wait_status(0, Duration::from_secs(10), "API", |_| true);
    let check = |farm: &Farm| {
        let st = farm.nodes[0].status();
        let n2 = st.members.iter().find(|m| m.name == "n2").unwrap();
        assert!(!n2.live && n2.state.is_none() && !st.view.contains(&1), "I5: dead n2 alive for restarted n1: {st:?}\n{}", farm.logs());
    };
    let (mut polls, mut sent) = (0, 0);
    for pass in 0..2 {
        for bytes in &recording {
            as_n2.send_to(bytes, farm.hb(N1)).unwrap();
            stranger.send_to(bytes, farm.hb(N1)).unwrap();
            sent += 1;
            // The first pass at the pulse, the second as a burst.
            if pass == 0 {
                for _ in 0..4 {
                    std::thread::sleep(Duration::from_millis(25));
                    check(&farm);
                    polls += 1;
                }
            }
        }
        check(&farm);
    }
    eprintln!("replayed {sent} heartbeats (x2 sources) over {:?} after the restart, {polls} status checks", started.elapsed());
    assert!(started.elapsed() > Duration::from_secs(1), "the replay covered the startup grace");

    // 4. n1 alone serves every bucket; n2 is dead to it; the rejections are counted by reason.
    // (The status is refreshed every pulse: the burst may not show yet.)
    let n = recording.len() as u64;
    let st = farm.wait_status(0, Duration::from_secs(5), "all buckets, every replay counted", |st| {
        st.buckets_owned as usize == BUCKETS && rejected(st, "wrong_source") >= 2 * n && rejected(st, "stale") + rejected(st, "duplicate") >= n
    });
    assert_eq!(st.view, vec![0]);
    check(&farm);
    let owners = farm.table_owners(0).unwrap();
    assert!(owners.iter().all(|&o| o == 0), "n1's table: every bucket its own");
    let (no_echo, wrong_source) = (rejected(&st, "no_echo"), rejected(&st, "wrong_source"));
    assert_eq!(no_echo, n, "{:?}", st.heartbeat);
    assert_eq!(wrong_source, 2 * n, "{:?}", st.heartbeat);
    assert_eq!(rejected(&st, "stale") + rejected(&st, "duplicate"), n, "{:?}", st.heartbeat);
    assert_eq!(st.heartbeat.rx, 0, "no heartbeat accepted: {:?}", st.heartbeat);
    let metrics = farm.nodes[0].metrics();
    assert_eq!(metric(&metrics, "no_echo"), no_echo);
    assert_eq!(metric(&metrics, "wrong_source"), wrong_source);
    let log = farm.nodes[0].module_log();
    let since_restart = &log[log_before..];
    assert!(!since_restart.contains("node n2 is alive"), "{since_restart}");
    assert!(since_restart.contains("node n2 is dead"), "{since_restart}");
}
