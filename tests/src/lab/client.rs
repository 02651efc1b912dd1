//! HTTP clients inside a lab namespace without a process per request: threads enter the
//! namespace (`setns`), then use plain sockets bound to a chosen source address (and port).
//! Sockets keep the namespace they were created in; threads spawned by a thread that entered a
//! namespace start in it too.
//!
//! - [`http_get`]: one `GET` over a new connection (HTTP/1.0, the server closes);
//! - [`parallel`]: a batch of calls spread over worker threads in a namespace;
//! - [`Probe`]: a new connection every period from each of a few clients (failover timing);
//! - [`Load`]: back-to-back requests from many clients (zero-failure checks).

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::error::LabError;

/// Opens `/run/netns/<ns>` (what `ip netns add` mounts).
fn open_ns(ns: &str) -> Result<File, LabError> {
    let p = Path::new("/run/netns").join(ns);
    File::open(&p).map_err(|e| LabError::io(p, e))
}

/// Moves the calling thread into namespace `ns` for good.
pub fn enter(ns: &str) -> Result<(), LabError> {
    let f = open_ns(ns)?;
    setns(&f, CloneFlags::CLONE_NEWNET).map_err(|e| LabError::io(format!("/run/netns/{ns}"), e.into()))
}

/// Spawns a thread that runs `f` inside namespace `ns`.
pub fn spawn_in<R, F>(ns: &str, f: F) -> Result<JoinHandle<R>, LabError>
where
    R: Send + 'static,
    F: FnOnce() -> R + Send + 'static,
{
    let fd = open_ns(ns)?;
    let name = ns.to_owned();
    Ok(std::thread::spawn(move || {
        if let Err(e) = setns(&fd, CloneFlags::CLONE_NEWNET) {
            panic!("setns into {name}: {e}");
        }
        drop(fd);
        f()
    }))
}

/// Runs `f` on every item from `workers` threads inside namespace `ns`; results in item order.
pub fn parallel<T, R, F>(ns: &str, items: &[T], workers: usize, f: F) -> Result<Vec<R>, LabError>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<R>>> = Mutex::new(items.iter().map(|_| None).collect());
    let fds = (0..workers.clamp(1, items.len().max(1))).map(|_| open_ns(ns)).collect::<Result<Vec<_>, _>>()?;
    std::thread::scope(|s| {
        for fd in fds {
            let (next, out, f) = (&next, &out, &f);
            s.spawn(move || {
                setns(&fd, CloneFlags::CLONE_NEWNET).expect("setns into a lab namespace");
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(k) else { break };
                    let r = f(item);
                    out.lock().expect("results lock")[k] = Some(r);
                }
            });
        }
    });
    Ok(out.into_inner().expect("results lock").into_iter().map(|r| r.expect("every item ran")).collect())
}

/// An HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The connection's source address and port.
    pub local: SocketAddrV4,
    /// Status code.
    pub status: u16,
    /// Body.
    pub body: String,
}

impl Reply {
    /// The lab's Apache answers `/` with `node n<i>\n`: `i`.
    pub fn node(&self) -> Option<usize> {
        node_of_body(&self.body)
    }
}

/// `node n<i>\n` (the lab's index page) → `i`.
pub fn node_of_body(body: &str) -> Option<usize> {
    body.trim().strip_prefix("node n")?.parse().ok()
}

fn io_err(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

/// Opens a TCP connection from `src` (port 0: any) to `dst` within `timeout`.
pub fn connect(src: SocketAddrV4, dst: SocketAddrV4, timeout: Duration) -> std::io::Result<TcpStream> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.bind(&SockAddr::from(src))?;
    s.connect_timeout(&SockAddr::from(dst), timeout)?;
    Ok(s.into())
}

/// One request over a new connection: `method path` (HTTP/1.0, `headers` added verbatim, each
/// ending in `\r\n`), whole exchange bounded by `timeout`.
pub fn http_request(
    src: SocketAddrV4,
    dst: SocketAddrV4,
    method: &str,
    path: &str,
    headers: &str,
    timeout: Duration,
) -> std::io::Result<Reply> {
    let start = Instant::now();
    let mut s = connect(src, dst, timeout)?;
    let local = match s.local_addr()? {
        std::net::SocketAddr::V4(a) => a,
        other => return Err(io_err(format!("unexpected local address {other}"))),
    };
    let left = |start: Instant| timeout.saturating_sub(start.elapsed()).max(Duration::from_millis(1));
    s.set_write_timeout(Some(left(start)))?;
    let req = format!("{method} {path} HTTP/1.0\r\nHost: {}\r\n{headers}Content-Length: 0\r\n\r\n", dst.ip());
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    loop {
        s.set_read_timeout(Some(left(start)))?;
        let mut buf = [0u8; 4096];
        match s.read(&mut buf)? {
            0 => break,
            n => raw.extend_from_slice(&buf[..n]),
        }
        if start.elapsed() >= timeout {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "reply not complete in time"));
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| io_err(format!("no HTTP header end in {text:?}")))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io_err(format!("no status in {head:?}")))?;
    Ok(Reply { local, status, body: body.to_owned() })
}

/// `GET path` from `src` to `dst`.
pub fn http_get(src: SocketAddrV4, dst: SocketAddrV4, path: &str, timeout: Duration) -> std::io::Result<Reply> {
    http_request(src, dst, "GET", path, "", timeout)
}

/// One attempt of a [`Probe`] or a [`Load`].
#[derive(Clone, Debug)]
pub struct Attempt {
    /// The client address.
    pub src: Ipv4Addr,
    /// When the attempt started (connect).
    pub start: Instant,
    /// When it ended.
    pub end: Instant,
    /// The node that answered `/` with 200, or what went wrong.
    pub result: Result<usize, String>,
}

impl Attempt {
    fn run(src: Ipv4Addr, dst: SocketAddrV4, timeout: Duration) -> Attempt {
        let start = Instant::now();
        let result = match http_get(SocketAddrV4::new(src, 0), dst, "/", timeout) {
            Ok(r) if r.status == 200 => r.node().ok_or_else(|| format!("unexpected body {:?}", r.body)),
            Ok(r) => Err(format!("HTTP {}", r.status)),
            Err(e) => Err(e.to_string()),
        };
        Attempt { src, start, end: Instant::now(), result }
    }
}

type Attempts = Arc<Mutex<Vec<Attempt>>>;

/// From each of a few clients, a new connection and `GET /` every `period` (each attempt in
/// its own thread, bounded by `timeout`), until stopped: when did a client get served again?
#[derive(Debug)]
pub struct Probe {
    stop: Arc<AtomicBool>,
    attempts: Attempts,
    ticker: Option<JoinHandle<()>>,
}

impl Probe {
    /// Starts probing `dst` from every address of `srcs` in namespace `ns`.
    pub fn start(ns: &str, srcs: &[Ipv4Addr], dst: SocketAddrV4, period: Duration, timeout: Duration) -> Result<Probe, LabError> {
        let stop = Arc::new(AtomicBool::new(false));
        let attempts: Attempts = Arc::default();
        let (stop2, attempts2, srcs) = (Arc::clone(&stop), Arc::clone(&attempts), srcs.to_vec());
        let ticker = spawn_in(ns, move || {
            let mut running: Vec<JoinHandle<()>> = Vec::new();
            let mut next = Instant::now();
            while !stop2.load(Ordering::Relaxed) {
                for &src in &srcs {
                    let a = Arc::clone(&attempts2);
                    // Spawned from a thread inside the namespace: starts inside it too.
                    running.push(std::thread::spawn(move || {
                        let r = Attempt::run(src, dst, timeout);
                        a.lock().expect("attempts lock").push(r);
                    }));
                }
                running.retain(|h| !h.is_finished());
                next += period;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            for h in running {
                let _ = h.join();
            }
        })?;
        Ok(Probe { stop, attempts, ticker: Some(ticker) })
    }

    /// The attempts finished so far, in order of completion.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.attempts.lock().expect("attempts lock").clone()
    }

    /// Waits until every client had an attempt started at or after `since` succeed, served by
    /// another node than `not_by` (or `deadline` passes); returns, per client, the first such
    /// success (None: none in time).
    pub fn wait_served(
        &self,
        srcs: &[Ipv4Addr],
        since: Instant,
        not_by: Option<usize>,
        deadline: Duration,
    ) -> Vec<Option<Attempt>> {
        let end = Instant::now() + deadline;
        loop {
            let all = self.attempts();
            let firsts: Vec<Option<Attempt>> = srcs
                .iter()
                .map(|s| {
                    all.iter()
                        .filter(|a| {
                            a.src == *s && a.start >= since && a.result.as_ref().is_ok_and(|n| Some(*n) != not_by)
                        })
                        .min_by_key(|a| a.end)
                        .cloned()
                })
                .collect();
            if firsts.iter().all(Option::is_some) || Instant::now() >= end {
                return firsts;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops probing; every attempt, in order of completion.
    pub fn stop(mut self) -> Vec<Attempt> {
        self.finish();
        self.attempts()
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `workers` threads sending `GET /` back to back, each over a new connection, cycling over
/// `srcs`, until stopped.
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    attempts: Attempts,
    workers: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts the load on `dst` from namespace `ns`.
    pub fn start(ns: &str, srcs: &[Ipv4Addr], dst: SocketAddrV4, workers: usize, timeout: Duration) -> Result<Load, LabError> {
        let stop = Arc::new(AtomicBool::new(false));
        let attempts: Attempts = Arc::default();
        let srcs: Arc<Vec<Ipv4Addr>> = Arc::new(srcs.to_vec());
        let next = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        for _ in 0..workers.max(1) {
            let (stop, attempts, srcs, next) = (Arc::clone(&stop), Arc::clone(&attempts), Arc::clone(&srcs), Arc::clone(&next));
            handles.push(spawn_in(ns, move || {
                while !stop.load(Ordering::Relaxed) {
                    let src = srcs[next.fetch_add(1, Ordering::Relaxed) % srcs.len()];
                    let a = Attempt::run(src, dst, timeout);
                    attempts.lock().expect("attempts lock").push(a);
                }
            })?);
        }
        Ok(Load { stop, attempts, workers: handles })
    }

    /// Number of requests finished so far.
    pub fn done(&self) -> usize {
        self.attempts.lock().expect("attempts lock").len()
    }

    /// Stops (waits for the requests in flight); every attempt in order of completion.
    pub fn stop(mut self) -> Vec<Attempt> {
        self.finish();
        self.attempts.lock().expect("attempts lock").clone()
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_bodies_parse() {
        assert_eq!(node_of_body("node n3\n"), Some(3));
        assert_eq!(node_of_body("node n12"), Some(12));
        assert_eq!(node_of_body("hello"), None);
    }

    #[test]
    fn http_get_against_a_local_server() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let srv = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut req = Vec::new();
            while !req.ends_with(b"\r\n\r\n") {
                let mut buf = [0u8; 1024];
                let n = c.read(&mut buf).unwrap();
                assert!(n > 0, "request cut short: {req:?}");
                req.extend_from_slice(&buf[..n]);
            }
            let req = String::from_utf8_lossy(&req).to_string();
            c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nnode n2\n").unwrap();
            req
        });
        let r = http_get(
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
            "/x",
            Duration::from_secs(2),
        )
        .unwrap();
        assert_eq!((r.status, r.node()), (200, Some(2)));
        assert_eq!(*r.local.ip(), Ipv4Addr::LOCALHOST);
        assert!(srv.join().unwrap().starts_with("GET /x HTTP/1.0\r\n"));
        let closed = http_get(
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
            "/",
            Duration::from_secs(1),
        );
        assert!(closed.is_err());
    }
}
