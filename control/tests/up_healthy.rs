//! UP means healthy, with a real farmd in control-only mode: after each run of `start_both`
//! the health URL answers 200, `farmctl state` says UP and the node owns buckets only once
//! every checker has passed `ok_after` times in a row since that start.
//!
//! Observers poll the health URL every 20 ms, `farmctl state` and the status API in the
//! background and record everything they saw.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{free_port, script, Farmd};
use farm_control::api::{ApiClient, Status};
use farm_control::lifecycle::State;

const INTERVAL: Duration = Duration::from_millis(100);

/// One control-only node on 127.0.0.1 (no API token) whose `start_both` exits 0 without
/// starting anything, with a `tcp` checker (action `restart`) on `app_port`; started with
/// `--start`.
fn start(app_port: u16, fail_after: u32, ok_after: u32, maxloop: u32) -> Farmd {
    let mut f = Farmd::one_node(None, |t, root| {
        script(root, "start_both", &format!("echo start >> {}/trace", root.display()));
        script(root, "stop_both", &format!("echo \"stop $*\" >> {}/trace", root.display()));
        t.extra(&format!(
            r#"[scripts]
dir = "{root}"
start_both = "start_both"
stop_both = "stop_both"
timeout = "5s"

[[checker]]
name = "app"
kind = "tcp"
port = {app_port}
interval = "{interval}ms"
timeout = "100ms"
fail_after = {fail_after}
ok_after = {ok_after}
action = "restart"

[restart]
maxloop = {maxloop}
loop_interval = "1h"
"#,
            root = root.display(),
            interval = INTERVAL.as_millis(),
        ))
    });
    f.start(&["--start"]);
    f
}

fn trace(f: &Farmd) -> String {
    fs::read_to_string(f.root.join("trace")).unwrap_or_default()
}

fn diagnostics(f: &Farmd) -> String {
    format!("module log:\n{}\nstderr:\n{}", f.module_log(), f.stderr())
}

/// Polls the status every 20 ms until `pred` holds.
fn wait_status(f: &Farmd, within: Duration, pred: impl Fn(&Status) -> bool) -> Status {
    f.wait_status_or(within, pred, || diagnostics(f))
}

/// The status code of `GET /var/modules/web/ready.txt`, `None` when nothing answers.
fn health(api: SocketAddr) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&api, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /var/modules/web/ready.txt HTTP/1.1\r\nHost: farm\r\nConnection: close\r\n\r\n").ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    answer.split_whitespace().nth(1)?.parse().ok()
}

/// When a request was sent and when its answer arrived.
#[derive(Clone, Copy, Debug)]
struct Span {
    sent: Instant,
    answered: Instant,
}

impl Span {
    fn since(sent: Instant) -> Span {
        Span { sent, answered: Instant::now() }
    }

    /// Sent and answered within `[from, to]`.
    fn within(&self, from: Instant, to: Instant) -> bool {
        self.sent >= from && self.answered <= to
    }
}

/// What the observers saw.
#[derive(Debug, Default)]
struct Seen {
    /// Health URL status codes.
    health: Vec<(Span, u16)>,
    /// `farmctl state` exit codes and output.
    farmctl: Vec<(Span, i32, String)>,
    /// (state, buckets owned) from the status API.
    status: Vec<(Span, State, u32)>,
}

impl Seen {
    /// When the first 200 sent after `after` was answered.
    fn first_200(&self, after: Instant) -> Option<Instant> {
        self.health.iter().find(|&&(s, c)| s.sent >= after && c == 200).map(|&(s, _)| s.answered)
    }

    /// Whether `farmctl state` exited 2 for a run started after `after`.
    fn farmctl_up(&self, after: Instant) -> bool {
        self.farmctl.iter().any(|(s, c, _)| s.sent >= after && *c == 2)
    }
}

/// Background observers: the health URL every 20 ms, `farmctl state` and the status API in
/// a loop.
struct Observers {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    threads: Vec<JoinHandle<()>>,
}

impl Observers {
    fn start(f: &Farmd) -> Observers {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mut threads = Vec::new();
        let (api, config) = (f.api_addr, f.config.clone());
        let (s, w) = (stop.clone(), seen.clone());
        threads.push(thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let sent = Instant::now();
                if let Some(code) = health(api) {
                    w.lock().unwrap().health.push((Span::since(sent), code));
                }
                thread::sleep(Duration::from_millis(20));
            }
        }));
        let (s, w) = (stop.clone(), seen.clone());
        threads.push(thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let o = common::farmctl(&config, "n1", &["state"]);
                let out = String::from_utf8_lossy(&o.stdout).trim().to_string();
                w.lock().unwrap().farmctl.push((Span::since(sent), o.status.code().unwrap_or(-1), out));
                thread::sleep(Duration::from_millis(30));
            }
        }));
        let (s, w) = (stop.clone(), seen.clone());
        threads.push(thread::spawn(move || {
            let client = ApiClient::new(&format!("http://{api}"), None, Duration::from_secs(2));
            while !s.load(Ordering::Relaxed) {
                let sent = Instant::now();
                if let Ok(st) = client.status() {
                    w.lock().unwrap().status.push((Span::since(sent), st.state, st.buckets_owned));
                }
                thread::sleep(Duration::from_millis(20));
            }
        }));
        Observers { stop, seen, threads }
    }

    /// Everything seen so far.
    fn snapshot(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap()
    }

    fn finish(mut self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// Asserts that nothing sent and answered within `[from, to]` reported the node healthy or
/// owning buckets.
fn assert_never_up(seen: &Seen, from: Instant, to: Instant, f: &Farmd) {
    let health: Vec<u16> = seen.health.iter().filter(|(s, _)| s.within(from, to)).map(|&(_, c)| c).collect();
    let farmctl: Vec<(i32, &str)> =
        seen.farmctl.iter().filter(|(s, ..)| s.within(from, to)).map(|(_, c, o)| (*c, o.as_str())).collect();
    let status: Vec<(State, u32)> = seen.status.iter().filter(|(s, ..)| s.within(from, to)).map(|&(_, s, b)| (s, b)).collect();
    assert!(health.iter().all(|&c| c == 404), "health URL answered {health:?}\n{}", diagnostics(f));
    assert!(farmctl.iter().all(|&(c, o)| c != 2 && o != "UP"), "farmctl state: {farmctl:?}\n{}", diagnostics(f));
    assert!(farmctl.iter().all(|&(c, _)| c == 1 || c == 0), "farmctl state errors: {farmctl:?}");
    assert!(status.iter().all(|&(s, b)| s != State::Up && b == 0), "status: {status:?}\n{}", diagnostics(f));
}

#[test]
fn an_application_that_never_comes_up_is_never_reported_healthy_and_ends_in_stop() {
    // start_both exits 0 but nothing ever listens on the checked port. Each start leaves the
    // node in WAIT for fail_after x interval (~400 ms) before the restart action; the third
    // failure exceeds maxloop 2 and stops the module.
    let f = start(free_port(), 4, 2, 2);
    let t0 = Instant::now();
    let obs = Observers::start(&f);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f.module_log().contains("exceed maxloop 2") {
        assert!(Instant::now() < deadline, "the policy never gave up\n{}", diagnostics(&f));
        thread::sleep(Duration::from_millis(20));
    }
    wait_status(&f, Duration::from_secs(10), |s| s.state == State::Stop);
    // Keep watching a little: it stays down.
    thread::sleep(Duration::from_millis(300));
    let seen = obs.finish();
    assert_never_up(&seen, t0, Instant::now(), &f);
    // Enough observations to have caught every restart window (each ~400 ms in WAIT).
    assert!(seen.health.len() >= 40, "{} health polls", seen.health.len());
    assert!(seen.farmctl.len() >= 10, "{} farmctl runs", seen.farmctl.len());
    assert!(seen.status.iter().any(|&(_, s, _)| s == State::Wait), "never saw WAIT");
    assert_eq!(seen.farmctl.last().map(|(_, c, o)| (*c, o.as_str())), Some((0, "STOP")));
    assert_eq!(health(f.api_addr), Some(404));

    let log = f.module_log();
    assert_eq!(trace(&f).matches("start\n").count(), 3, "started, restarted twice (maxloop 2)\n{log}");
    assert_eq!(log.matches("STARTING -> WAIT (started; waiting for checkers to pass: app)").count(), 3, "{log}");
    assert!(!log.contains("-> UP"), "{log}");
    assert!(!log.contains("joining the farm"), "{log}");
    assert!(log.contains("action restart (1/2") && log.contains("action restart (2/2"), "{log}");
}

#[test]
fn a_late_application_makes_the_node_up_only_after_ok_after_passes_and_again_after_a_restart() {
    let port = free_port();
    // ok_after 3 at 100 ms: at least 200 ms between the first success and UP.
    let f = start(port, 5, 3, 10);
    let t0 = Instant::now();
    let obs = Observers::start(&f);
    wait_status(&f, Duration::from_secs(10), |s| s.state == State::Wait);
    thread::sleep(Duration::from_millis(700));

    // The application comes up.
    let app_up = Instant::now();
    let app = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let st = wait_status(&f, Duration::from_secs(10), |s| s.state == State::Up && s.buckets_owned == 256);
    assert!(st.waiting_on.is_empty(), "{st:?}");
    let c = &st.checkers[0];
    assert!(c.healthy && c.consecutive_successes >= 3, "{c:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen = obs.snapshot();
        if seen.first_200(app_up).is_some() && seen.farmctl_up(app_up) {
            break;
        }
        drop(seen);
        assert!(Instant::now() < deadline, "the observers never saw UP\n{}", diagnostics(&f));
        thread::sleep(Duration::from_millis(20));
    }
    let first_up = obs.snapshot().first_200(app_up).unwrap();
    assert_never_up(&obs.snapshot(), t0, app_up, &f);
    // Three passes 100 ms apart, the first one no earlier than the bind.
    assert!(first_up.duration_since(app_up) >= 2 * INTERVAL, "UP {:?} after the application", first_up.duration_since(app_up));
    let log = f.module_log();
    let passed = log.find("checker app passed").unwrap_or_else(|| panic!("{log}"));
    let up = log.find("state WAIT -> UP (checker app passed)").unwrap_or_else(|| panic!("{log}"));
    assert!(passed < up, "{log}");

    // The application dies: restart action; while it stays dead the node is never UP again.
    drop(app);
    wait_status(&f, Duration::from_secs(10), |s| s.state != State::Up);
    let down = Instant::now();
    let deadline = down + Duration::from_secs(10);
    while f.module_log().matches("STARTING -> WAIT").count() < 3 {
        assert!(Instant::now() < deadline, "no restart cycle\n{}", diagnostics(&f));
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_millis(300));
    let back = Instant::now();
    assert_never_up(&obs.snapshot(), down, back, &f);

    // It comes back: UP again, after its passes.
    let _app = TcpListener::bind(("127.0.0.1", port)).unwrap();
    wait_status(&f, Duration::from_secs(10), |s| s.state == State::Up && s.buckets_owned == 256);
    thread::sleep(Duration::from_millis(100));
    let seen = obs.finish();
    let first_up = seen.first_200(back).unwrap_or_else(|| panic!("no 200 after the restart: {:?}", seen.health));
    assert!(first_up.duration_since(back) >= 2 * INTERVAL, "UP {:?} after the application", first_up.duration_since(back));
    assert!(f.module_log().contains("action restart (1/10"), "{}", f.module_log());
}
