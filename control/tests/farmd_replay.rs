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

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use farm_control::api::{ApiClient, Status};
use farm_control::lifecycle::State;
use farm_table::TableReader;

const TOKEN: &str = "farmd-replay-test-token";
const BUCKETS: usize = 256;

/// Host part of each address in the test's /16 of 127/8.
const N1: u8 = 1; // n1, where it really is
const N2: u8 = 2; // n2, where it really is
const N1_PROXY: u8 = 11; // n1 as n2 knows it
const N2_PROXY: u8 = 12; // n2 as n1 knows it
const STRANGER: u8 = 13; // nobody's address

struct Farm {
    _dir: tempfile::TempDir,
    root: PathBuf,
    net: [u8; 2],
    hb_port: u16,
    api_port: u16,
    procs: [Option<Child>; 2],
}

fn ip(net: [u8; 2], host: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, net[0], net[1], host)
}

fn private(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

/// A UDP port free on every address of the test and a TCP port free on the nodes' addresses.
fn free_ports(net: [u8; 2]) -> (u16, u16) {
    for _ in 0..50 {
        let u = UdpSocket::bind((ip(net, N1), 0)).unwrap();
        let t = TcpListener::bind((ip(net, N1), 0)).unwrap();
        let (up, tp) = (u.local_addr().unwrap().port(), t.local_addr().unwrap().port());
        let udp_ok = [N2, N1_PROXY, N2_PROXY, STRANGER].iter().all(|&h| UdpSocket::bind((ip(net, h), up)).is_ok());
        if udp_ok && TcpListener::bind((ip(net, N2), tp)).is_ok() {
            return (up, tp);
        }
    }
    panic!("no free ports");
}

impl Farm {
    fn new() -> Farm {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        // A /16 of its own (farmd_cluster.rs uses 100..=199 as first byte).
        let net = [201 + (std::process::id() % 50) as u8, (std::process::id() / 100 % 250) as u8];
        let (hb_port, api_port) = free_ports(net);
        private(&root.join("secret"), "the-cluster-secret-0123456789abcdef");
        private(&root.join("token"), TOKEN);
        // Each node's own file: itself where it is, the other at the proxy.
        for (k, (me, other)) in [(N1, N2_PROXY), (N2, N1_PROXY)].into_iter().enumerate() {
            let (a1, a2) = if k == 0 { (me, other) } else { (other, me) };
            let text = format!(
                r#"
[module]
name = "web"
cluster_id = 42
hash_seed = "0x5eed"
buckets = {BUCKETS}
secret_file = "{root}/secret"
log_dir = "{root}/{{node}}/log"
run_dir = "{root}/{{node}}/run"
table_file = "{root}/{{node}}/table"

[[node]]
name = "n1"
addrs = ["{a1}"]

[[node]]
name = "n2"
addrs = ["{a2}"]

[heartbeat]
port = {hb_port}
pulse = "100ms"
dead_after = "1s"

[[vip]]
addr = "198.18.0.100"
[[vip.rule]]
proto = "tcp"
ports = "80"

[dataplane]
enabled = false

[api]
listen = "{api}:{api_port}"
token_file = "{root}/token"
"#,
                root = root.display(),
                a1 = ip(net, a1),
                a2 = ip(net, a2),
                api = ip(net, me),
            );
            fs::write(root.join(format!("n{}.toml", k + 1)), text).unwrap();
        }
        Farm { _dir: dir, root, net, hb_port, api_port, procs: [None, None] }
    }

    fn hb(&self, host: u8) -> SocketAddr {
        SocketAddr::from((ip(self.net, host), self.hb_port))
    }

    fn start(&mut self, k: usize) {
        let name = format!("n{}", k + 1);
        let stderr = fs::File::options().create(true).append(true).open(self.root.join(format!("{name}.stderr"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_farmd"))
            .arg("--config")
            .arg(self.root.join(format!("{name}.toml")))
            .args(["--node", &name, "--table-only", "--start", "--log", "debug"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        self.procs[k] = Some(child);
    }

    fn kill(&mut self, k: usize) {
        let mut c = self.procs[k].take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }

    fn api(&self, k: usize) -> ApiClient {
        let host = [N1, N2][k];
        ApiClient::new(&format!("http://{}:{}", ip(self.net, host), self.api_port), Some(TOKEN.into()), Duration::from_secs(2))
    }

    fn status(&self, k: usize) -> Status {
        self.api(k).status().unwrap_or_else(|e| panic!("n{} status: {e}\n{}", k + 1, self.logs()))
    }

    fn table_owners(&self, k: usize) -> Option<Vec<u8>> {
        let path = self.root.join(format!("n{}", k + 1)).join("table");
        TableReader::open(&path).ok().map(|r| r.peek().2.iter().map(|e| e.owner).collect())
    }

    fn module_log(&self, k: usize) -> String {
        fs::read_to_string(self.root.join(format!("n{}/log/module.log", k + 1))).unwrap_or_default()
    }

    fn logs(&self) -> String {
        (0..2)
            .map(|k| {
                let err = fs::read_to_string(self.root.join(format!("n{}.stderr", k + 1))).unwrap_or_default();
                let tail: Vec<&str> = err.lines().rev().take(60).collect();
                format!("--- n{} (last lines) ---\n{}\n", k + 1, tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
            })
            .collect()
    }

    /// Waits until `pred` holds on node k's status.
    fn wait_status(&self, k: usize, within: Duration, what: &str, pred: impl Fn(&Status) -> bool) -> Status {
        let t0 = Instant::now();
        loop {
            if let Ok(st) = self.api(k).status() {
                if pred(&st) {
                    return st;
                }
                assert!(t0.elapsed() < within, "n{}: {what} not within {within:?}: {st:?}\n{}", k + 1, self.logs());
            } else {
                assert!(t0.elapsed() < within, "n{}: no API within {within:?}\n{}", k + 1, self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Farm {
    fn drop(&mut self) {
        for c in self.procs.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
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
    let st = farm.status(0);
    assert_eq!(rejected(&st, "wrong_source"), 0, "{:?}", st.heartbeat);

    // 2. Record n2's heartbeats to n1 for 2 s, then kill n2.
    relay.recording.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(2));
    relay.recording.store(false, Ordering::Relaxed);
    farm.kill(1);
    let recording = relay.finish();
    assert!(recording.len() >= 10, "{} heartbeats recorded", recording.len());

    // 3. Restart n1 (new incarnation) and replay the recording while it starts and after its
    //    startup grace: from n2's address as n1 knows it, and from a stranger's address.
    farm.kill(0);
    let log_before = farm.module_log(0).len();
    farm.start(0);
    let started = Instant::now();
    farm.wait_status(0, Duration::from_secs(10), "API", |_| true);
    let check = |farm: &Farm| {
        let st = farm.status(0);
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
    let metrics = farm.api(0).metrics().unwrap();
    assert_eq!(metric(&metrics, "no_echo"), no_echo);
    assert_eq!(metric(&metrics, "wrong_source"), wrong_source);
    let log = farm.module_log(0);
    let since_restart = &log[log_before..];
    assert!(!since_restart.contains("node n2 is alive"), "{since_restart}");
    assert!(since_restart.contains("node n2 is dead"), "{since_restart}");
}
