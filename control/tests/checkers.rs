//! Each checker against real local targets, and the checker threads feeding the hysteresis.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{quoted, script, FarmToml};
use crossbeam::channel;
use farm_config::Action;
use farm_control::checkers::health::CheckerInfo;
use farm_control::checkers::{
    CheckerSpec, CheckerThreads, DataplaneView, Health, Probe, ProbeContext, ProcMatcher, Verdict,
};
use regex::Regex;

const T: Duration = Duration::from_secs(2);

fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[test]
fn tcp_connects_to_a_listener_and_fails_on_a_closed_port() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let r = Probe::Tcp { addr: l.local_addr().unwrap() }.run(T);
    assert!(r.ok, "{r:?}");
    let r = Probe::Tcp { addr: free_port() }.run(T);
    assert!(!r.ok);
    assert!(r.detail.contains("cannot connect"), "{r:?}");
}

/// A tiny HTTP server: `/ok` 200 "hello farm", `/bad` 500, anything else 404.
fn http_server() -> (SocketAddr, Arc<AtomicBool>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    thread::spawn(move || {
        for conn in l.incoming() {
            if stop2.load(Ordering::Relaxed) {
                break;
            }
            let Ok(mut s) = conn else { continue };
            let mut line = String::new();
            let mut r = BufReader::new(s.try_clone().unwrap());
            if r.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
            }
            let (status, body) = match line.split_whitespace().nth(1) {
                Some("/ok") => ("200 OK", "hello farm"),
                Some("/bad") => ("500 Internal Server Error", "hello farm"),
                _ => ("404 Not Found", "no"),
            };
            let _ = write!(s, "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    (addr, stop)
}

#[test]
fn http_checks_status_and_text() {
    let (addr, _stop) = http_server();
    let probe = |path: &str, status: u16, text: Option<&str>| {
        Probe::Http { url: format!("http://{addr}{path}"), expect_status: status, expect_text: text.map(str::to_string) }.run(T)
    };
    assert!(probe("/ok", 200, None).ok);
    assert!(probe("/ok", 200, Some("lo fa")).ok);
    let r = probe("/ok", 200, Some("goodbye"));
    assert!(!r.ok && r.detail.contains("does not contain"), "{r:?}");
    let r = probe("/bad", 200, Some("hello"));
    assert!(!r.ok && r.detail.contains("status 500"), "{r:?}");
    assert!(probe("/bad", 500, Some("hello")).ok, "an expected error status is a success");
    assert!(!probe("/missing", 200, None).ok);
    let r = Probe::Http { url: format!("http://{}/ok", free_port()), expect_status: 200, expect_text: None }.run(T);
    assert!(!r.ok, "{r:?}");
}

#[test]
fn http_times_out_on_a_silent_server() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap(); // accepts (backlog) but never answers
    let start = Instant::now();
    let r = Probe::Http { url: format!("http://{}/", l.local_addr().unwrap()), expect_status: 200, expect_text: None }
        .run(Duration::from_millis(300));
    assert!(!r.ok);
    assert!(start.elapsed() < Duration::from_secs(3), "{:?}", start.elapsed());
}

fn own_comm() -> String {
    std::fs::read_to_string("/proc/self/comm").unwrap().trim().to_string()
}

#[test]
fn process_finds_the_test_process_itself() {
    let proc_root = PathBuf::from("/proc");
    let name = own_comm();
    let r = Probe::Process { matcher: ProcMatcher::Name(name.clone()), at_least: 1, proc_root: proc_root.clone() }.run(T);
    assert!(r.ok, "{r:?}");
    let r = Probe::Process { matcher: ProcMatcher::Name(name), at_least: 100_000, proc_root: proc_root.clone() }.run(T);
    assert!(!r.ok && r.detail.contains("expected at least 100000"), "{r:?}");
    let exe = std::env::args().next().unwrap();
    let file = Path::new(&exe).file_name().unwrap().to_string_lossy().into_owned();
    let re = Regex::new(&regex::escape(&file)).unwrap();
    let r = Probe::Process { matcher: ProcMatcher::Pattern(re), at_least: 1, proc_root: proc_root.clone() }.run(T);
    assert!(r.ok, "{r:?}");
    let re = Regex::new("^no-such-process-[0-9]{40}$").unwrap();
    assert!(!Probe::Process { matcher: ProcMatcher::Pattern(re), at_least: 1, proc_root }.run(T).ok);
}

#[test]
fn custom_script_exit_code_decides() {
    let dir = tempfile::tempdir().unwrap();
    let custom = |body: &str, name: &str| Probe::Custom {
        script: script(dir.path(), name, body),
        env: vec![("FARM_CHECKER".into(), "c1".into())],
        cwd: None,
    };
    assert!(custom("exit 0", "ok.sh").run(T).ok);
    let r = custom("echo \"broken $FARM_CHECKER\"; exit 3", "ko.sh").run(T);
    assert!(!r.ok);
    assert!(r.detail.contains("exit code 3") && r.detail.contains("broken c1"), "{r:?}");
    let start = Instant::now();
    let r = custom("sleep 30", "hang.sh").run(Duration::from_millis(300));
    assert!(!r.ok && r.detail.contains("timed out"), "{r:?}");
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
    let r = Probe::Custom { script: dir.path().join("missing.sh"), env: vec![], cwd: None }.run(T);
    assert!(!r.ok && r.detail.contains("cannot start"), "{r:?}");
}

#[test]
fn ping_loopback_with_icmp_sockets() {
    let r = Probe::Ping { addr: IpAddr::V4(Ipv4Addr::LOCALHOST) }.run(T);
    assert!(r.ok, "{r:?} (needs root, CAP_NET_RAW or net.ipv4.ping_group_range)");
    assert!(r.detail.contains("echo reply from 127.0.0.1"));
    // 203.0.113.0/24 (TEST-NET-3, documentation only) is not answered. (Not TEST-NET-1: some
    // VMs use 192.0.2.1 as their real gateway.)
    let start = Instant::now();
    let r = Probe::Ping { addr: "203.0.113.7".parse().unwrap() }.run(Duration::from_millis(300));
    assert!(!r.ok, "{r:?}");
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[test]
fn kernel_interface_link() {
    let sys = PathBuf::from("/sys/class/net");
    let r = Probe::KernelLink { name: "lo".into(), sys_net: sys.clone() }.run(T);
    assert!(r.ok, "{r:?}");
    let r = Probe::KernelLink { name: "nosuchif0".into(), sys_net: sys }.run(T);
    assert!(!r.ok);
}

#[derive(Debug)]
struct FakeDp {
    link: Option<bool>,
    age: Option<Duration>,
}

impl DataplaneView for FakeDp {
    fn link_up(&self) -> Option<bool> {
        self.link
    }
    fn liveness_age(&self) -> Option<Duration> {
        self.age
    }
}

#[test]
fn uplink_and_dataplane_liveness_from_the_table_view() {
    let dp = |link, age| -> Arc<dyn DataplaneView> { Arc::new(FakeDp { link, age }) };
    assert!(Probe::Uplink(dp(Some(true), None)).run(T).ok);
    assert!(!Probe::Uplink(dp(Some(false), None)).run(T).ok);
    assert!(!Probe::Uplink(dp(None, None)).run(T).ok);
    let live = |age| Probe::Dataplane { view: dp(Some(true), age), max_age: Duration::from_millis(500) }.run(T);
    assert!(live(Some(Duration::from_millis(10))).ok);
    let r = live(Some(Duration::from_millis(800)));
    assert!(!r.ok && r.detail.contains("800 ms old"), "{r:?}");
    assert!(!live(None).ok);
}

#[test]
fn checkers_built_from_a_configuration() {
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "check.sh", "exit 0");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let text = FarmToml::new(7)
        .module("secret_file", quoted("/etc/farm/web.secret"))
        .node("n1", "198.18.0.1")
        .extra(&format!(
            r#"[scripts]
dir = "{dir}"

[[checker]]
name = "app"
kind = "tcp"
port = {port}

[[checker]]
name = "me"
kind = "process"
process = "{comm}"

[[checker]]
name = "script"
kind = "custom"
script = "check.sh"

[[checker]]
name = "lo"
kind = "interface"
interface = "lo"
"#,
            dir = dir.path().display(),
            comm = own_comm(),
        ))
        .render();
    let cfg = farm_config::Config::from_str(&text, "test.toml").unwrap();
    let specs = CheckerSpec::all_from_config(&cfg, &ProbeContext::new()).unwrap();
    assert_eq!(specs.iter().map(|s| s.kind).collect::<Vec<_>>(), ["tcp", "process", "custom", "interface"]);
    assert_eq!(specs[3].action, Action::Wait, "interface checkers wait by default");
    for s in &specs {
        let r = s.probe.run(s.timeout);
        assert!(r.ok, "{}: {r:?}", s.name);
    }
    // A data-plane checker needs a data-plane view.
    let dp_check = farm_config::Check::Dataplane;
    assert!(Probe::from_check("dp", &dp_check, &ProbeContext::new()).is_err());
}

#[test]
fn threads_feed_observations_into_the_hysteresis() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let spec = CheckerSpec {
        name: "app".into(),
        kind: "tcp",
        probe: Probe::Tcp { addr },
        interval: Duration::from_millis(20),
        timeout: Duration::from_millis(200),
        fail_after: 3,
        ok_after: 2,
        action: Action::Restart,
        start_delay: Duration::from_millis(50),
    };
    let mut health = Health::new([CheckerInfo::from(&spec)]);
    let epoch = health.reset();
    let (tx, rx) = channel::unbounded();
    let started = Instant::now();
    let threads = CheckerThreads::spawn(Arc::new([spec]), epoch, tx).unwrap();
    let first = rx.recv_timeout(Duration::from_secs(2)).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(50), "start_delay honoured");
    assert!(first.result.ok);
    assert_eq!(health.observe(&first), None);
    drop(l); // the service dies
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut failures = 0;
    let event = loop {
        assert!(Instant::now() < deadline, "no Failed verdict");
        let obs = rx.recv_timeout(Duration::from_secs(2)).unwrap();
        failures += u32::from(!obs.result.ok);
        if let Some(ev) = health.observe(&obs) {
            break ev;
        }
    };
    assert_eq!((event.name.as_str(), event.verdict, event.action), ("app", Verdict::Failed, Action::Restart));
    assert_eq!(failures, 3, "fail_after = 3 consecutive failures");
    threads.stop_and_join();
    // Nothing arrives once stopped.
    while rx.try_recv().is_ok() {}
    thread::sleep(Duration::from_millis(60));
    assert!(rx.try_recv().is_err());
}
