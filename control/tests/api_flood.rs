//! farmd's API under load, and farmctl's view of a farmd that runs but does not answer: a real
//! farmd (control-only) on 127.0.0.1, floods of 1,000 idle or slowloris connections from one
//! loopback address or from many (127.0.0.x), the health URL polled meanwhile; farmctl over
//! the Unix socket (no token) and over TCP (token); SIGSTOP, SIGCONT, SIGKILL.

mod common;

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::Farmd;
use farm_control::api::ApiClient;
use farm_control::lifecycle::{Command as LcCommand, State};
use nix::sys::signal::Signal;

const TOKEN: &str = "api-flood-test-token";
/// How long one poll may take to count as answered (cloud load balancers default to 5 s).
const POLL_TIMEOUT: Duration = Duration::from_secs(2);
const POLLS: usize = 100;
const FLOOD: usize = 1000;
/// The flood's pace: every round, each of its connections the server closed is opened again
/// and each slowloris connection sends one more byte.
const ROUND: Duration = Duration::from_millis(250);

/// A control-only farmd on 127.0.0.1, started with `args`; `max_connections` is set in its
/// `[api]` section if given.
fn start(args: &[&str], max_connections: Option<u32>) -> Farmd {
    let mut f = Farmd::one_node(Some(TOKEN), |t, _| {
        let t = t.module("hash_seed", "\"0x5eed\"");
        match max_connections {
            Some(n) => t.api("max_connections", n),
            None => t,
        }
    });
    f.start(args);
    f
}

fn socket(f: &Farmd) -> PathBuf {
    f.root.join("run/farmd.sock")
}

/// Polls `POLLS` times (a fresh connection each, from 127.0.0.1): the health URL, and every
/// fifth time the metrics; returns how many got 200 within [`POLL_TIMEOUT`], the mean and the
/// slowest time.
fn poll(f: &Farmd) -> (usize, Duration, Duration) {
    let mut ok = 0;
    let mut slowest = Duration::ZERO;
    let t0 = Instant::now();
    for i in 0..POLLS {
        let t = Instant::now();
        let answered = if i % 5 == 4 {
            get_once(f.api_addr, "/metrics", b"# HELP farm_")
        } else {
            get_once(f.api_addr, "/var/modules/web/ready.txt", b"OK\n")
        };
        if answered {
            ok += 1;
        }
        slowest = slowest.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(10));
    }
    (ok, t0.elapsed() / POLLS as u32, slowest)
}

/// One GET over a fresh connection: 200 with a body starting with `body` within
/// [`POLL_TIMEOUT`].
fn get_once(api: SocketAddr, path: &str, body: &[u8]) -> bool {
    let t0 = Instant::now();
    let Ok(mut s) = TcpStream::connect_timeout(&api, POLL_TIMEOUT) else { return false };
    let left = POLL_TIMEOUT.saturating_sub(t0.elapsed()).max(Duration::from_millis(1));
    let _ = s.set_read_timeout(Some(left));
    if s.write_all(format!("GET {path} HTTP/1.1\r\nHost: farmd\r\n\r\n").as_bytes()).is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let body_at = answer.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    t0.elapsed() <= POLL_TIMEOUT && answer.starts_with(b"HTTP/1.1 200 ") && body_at.is_some_and(|i| answer[i..].starts_with(body))
}

/// What the flood's connections do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Connect and send nothing.
    Idle,
    /// Send a request head one byte at a time, never finishing it.
    Slowloris,
}

/// `FLOOD` connections kept open to `api` by one thread: a connection the server closes is
/// opened again at the next round (every [`ROUND`]), so the flood is continuous.
struct Flood {
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

const SLOW_HEAD: &[u8] = b"GET /var/modules/web/ready.txt HTTP/1.1\r\nHost: farmd\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn open(src: Ipv4Addr, api: SocketAddr, kind: Kind) -> Option<(TcpStream, usize)> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    s.bind(&SocketAddr::new(src.into(), 0).into()).ok()?;
    s.connect_timeout(&api.into(), Duration::from_millis(500)).ok()?;
    let mut s: TcpStream = s.into();
    s.set_nonblocking(true).ok()?;
    let sent = if kind == Kind::Slowloris { s.write(&SLOW_HEAD[..1]).ok()? } else { 0 };
    Some((s, sent))
}

/// The server has closed (or reset) the connection.
fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 512];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    }
}

impl Flood {
    /// Connections from `sources` in turn.
    fn start(api: SocketAddr, sources: Vec<Ipv4Addr>, kind: Kind) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicU64::new(0));
        let (stop2, opened2) = (stop.clone(), opened.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut conns: Vec<Option<(TcpStream, usize)>> = (0..FLOOD).map(|_| None).collect();
            let mut first = true;
            while !stop2.load(Ordering::Relaxed) {
                for (i, c) in conns.iter_mut().enumerate() {
                    let alive = match c {
                        Some((s, sent)) if kind == Kind::Slowloris => {
                            // One more byte, never the end of the head.
                            let next = SLOW_HEAD[*sent % SLOW_HEAD.len()..].first().copied().unwrap_or(b'a');
                            let ok = !closed(s) && s.write(&[next]).is_ok();
                            *sent += 1;
                            ok
                        }
                        Some((s, _)) => !closed(s),
                        None => false,
                    };
                    if !alive {
                        *c = open(sources[i % sources.len()], api, kind);
                        if c.is_some() {
                            opened2.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                if first {
                    first = false;
                    let _ = ready_tx.send(());
                }
                std::thread::sleep(ROUND);
            }
        });
        ready_rx.recv_timeout(Duration::from_secs(20)).expect("the flood never got its connections open");
        Flood { stop, opened, thread: Some(thread) }
    }

    fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn many_sources() -> Vec<Ipv4Addr> {
    (2..=201).map(|x| Ipv4Addr::new(127, 0, 0, x)).collect()
}

/// Starts farmd (UP), floods it, polls the health URL and the metrics, checks ≥ 99%.
fn health_under_flood(sources: Vec<Ipv4Addr>, kind: Kind, max_connections: Option<u32>) {
    let t0 = Instant::now();
    let f = start(&["--start"], max_connections);
    f.wait_status(Duration::from_secs(10), |s| s.state == State::Up);
    let n_sources = sources.len();
    let flood = Flood::start(f.api_addr, sources, kind);
    let (ok, mean, slowest) = poll(&f);
    // farmctl goes over the Unix socket: the TCP flood is not in its way.
    let (code, out, err, _) = state(&f);
    let opened = flood.opened();
    drop(flood);
    eprintln!(
        "{kind:?} flood of {FLOOD} connections from {n_sources} address(es), {opened} opened: health and metrics answered {ok}/{POLLS} within {POLL_TIMEOUT:?} (mean {mean:?} incl. 10 ms pause, slowest {slowest:?}); test took {:?}",
        t0.elapsed()
    );
    assert!(ok * 100 >= POLLS * 99, "health URL and metrics answered {ok}/{POLLS} under the flood\n{}", f.stderr());
    assert!(opened >= FLOOD as u64, "the flood opened only {opened} connections");
    assert_eq!((code, out.as_str()), (Some(2), "UP"), "farmctl state under the flood: {err}");
}

#[test]
fn health_answers_under_1000_idle_connections_from_one_address() {
    health_under_flood(vec![Ipv4Addr::LOCALHOST], Kind::Idle, None);
}

#[test]
fn health_answers_under_1000_idle_connections_from_many_addresses() {
    health_under_flood(many_sources(), Kind::Idle, None);
}

#[test]
fn health_answers_under_slowloris_from_one_address() {
    health_under_flood(vec![Ipv4Addr::LOCALHOST], Kind::Slowloris, None);
}

#[test]
fn health_answers_under_slowloris_from_many_addresses_past_the_global_limit() {
    // Fewer slots than flood connections: the global limit evicts the oldest idle ones.
    health_under_flood(many_sources(), Kind::Slowloris, Some(300));
}

/// `farmctl state` and its exit code.
fn state(f: &Farmd) -> (Option<i32>, String, String, Duration) {
    let t = Instant::now();
    let o = f.farmctl(&["state"]);
    (o.status.code(), String::from_utf8_lossy(&o.stdout).trim().to_string(), String::from_utf8_lossy(&o.stderr).into_owned(), t.elapsed())
}

#[test]
fn farmctl_state_tells_a_stopped_farmd_from_no_farmd() {
    let mut f = start(&["--start"], None);
    f.wait_status(Duration::from_secs(10), |s| s.state == State::Up);
    assert_eq!(state(&f).0, Some(2));

    // Running but not answering: exit 3, never STOP.
    f.signal(Signal::SIGSTOP);
    let (code, out, err, took) = state(&f);
    assert_eq!(code, Some(3), "stdout {out:?}, stderr {err}");
    assert!(!out.contains("STOP"), "{out:?}");
    assert!(err.contains("does not answer"), "{err}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    f.signal(Signal::SIGCONT);
    let (code, out, err, _) = state(&f);
    assert_eq!((code, out.as_str()), (Some(2), "UP"), "{err}");

    // Killed without a chance to clean up: its socket file stays, nobody listens: STOP.
    f.kill();
    assert!(socket(&f).exists(), "the socket file of a killed farmd is left behind");
    let (code, out, err, _) = state(&f);
    assert_eq!((code, out.as_str()), (Some(0), "STOP"), "{err}");
    assert!(err.contains("not running"), "{err}");

    // No farmd ever (no socket file either): STOP.
    fs::remove_file(socket(&f)).unwrap();
    let (code, out, _, _) = state(&f);
    assert_eq!((code, out.as_str()), (Some(0), "STOP"));
}

#[test]
fn a_stopped_farmd_behind_a_flood_is_not_reported_as_stop() {
    // Its TCP API flooded and the process stopped: the Unix socket's connect succeeds (or
    // its queue is full), and nothing answers: 3.
    let f = start(&[], None);
    f.wait_status(Duration::from_secs(10), |s| s.state == State::Stop);
    f.signal(Signal::SIGSTOP);
    let flood = Flood::start(f.api_addr, vec![Ipv4Addr::LOCALHOST], Kind::Idle);
    let (code, out, err, _) = state(&f);
    drop(flood);
    f.signal(Signal::SIGCONT);
    assert_eq!(code, Some(3), "stdout {out:?}, stderr {err}");
}

#[test]
fn commands_over_the_unix_socket_need_no_token_and_tcp_needs_it() {
    let mut f = start(&[], None);
    f.wait_status(Duration::from_secs(10), |s| s.state == State::Stop);
    // The socket: root's, mode 0600.
    let m = fs::symlink_metadata(socket(&f)).unwrap();
    assert!(m.file_type().is_socket());
    assert_eq!(m.mode() & 0o777, 0o600);
    assert_eq!(m.uid(), nix::unistd::geteuid().as_raw());

    // Over TCP without the token, or with a wrong one: refused, nothing happens.
    for token in [None, Some("wrong")] {
        match f.api_as(token).command(LcCommand::Start, None) {
            Err(farm_control::api::ClientError::Http { status: 401, .. }) => {}
            other => panic!("expected 401, got {other:?}"),
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(f.api_as(None).status().unwrap().state, State::Stop);

    // farmctl over the socket: a token file that farmctl would refuse to read (mode 0644)
    // does not matter, it is not read.
    fs::set_permissions(f.root.join("token"), fs::Permissions::from_mode(0o644)).unwrap();
    let o = f.farmctl(&["start", "--reason", "over the socket"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    f.wait_status(Duration::from_secs(10), |s| s.state == State::Up);
    let log = fs::read_to_string(f.root.join("log/module.log")).unwrap_or_default();
    assert!(log.contains("admin start from the Unix socket: over the socket"), "{log}");

    // The library's Unix client, without a token.
    ApiClient::unix(&socket(&f), Duration::from_secs(2)).command(LcCommand::Stop, Some("unix client")).unwrap();
    f.wait_status(Duration::from_secs(10), |s| s.state == State::Stop);

    // TCP with the token still works; farmctl falls back to it without the socket (here:
    // --api), and reads the (again private) token.
    fs::set_permissions(f.root.join("token"), fs::Permissions::from_mode(0o600)).unwrap();
    f.api_as(Some(TOKEN)).command(LcCommand::Start, None).unwrap();
    f.wait_status(Duration::from_secs(10), |s| s.state == State::Up);
    let o = f.farmctl(&["--api", &format!("http://{}", f.api_addr), "stop"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    f.wait_status(Duration::from_secs(10), |s| s.state == State::Stop);

    // SIGTERM: farmd removes its socket.
    f.terminate(Duration::from_secs(10));
    assert!(!socket(&f).exists(), "socket left after a clean exit");
}
