//! What the fault matrix watches while it breaks something (`matrix.rs`): clients of every node
//! and a capture, from the client namespace.
//!
//! - new-connection clients ([`Probe`]): from each watched client address, a new connection and
//!   `GET /` every period;
//! - keep-alive clients ([`KeepAlive`]): from each watched address, one HTTP/1.1 connection kept
//!   open, a `GET /` on it every period (a failed request closes it; the next period opens a new
//!   one);
//! - a capture on the client's side ([`Capture`]): every SYN-ACK of the VIP with the MAC of the
//!   node that sent it (nodes answer from the VIP with their uplink's MAC, 02:fa:00:00:00:<i>), so
//!   a SYN answered by two nodes (invariant I1 broken) is seen whatever the clients got.
//!
//! [`Watch`] runs all three over clients of every node (each in another bucket of its node,
//! under the VIP's `tcp 80 on_addr` rule), and [`WatchReport`] says which clients failed when,
//! and the settle time: from the fault until every client is served again for good.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::capture::Capture;
use super::client::{connect, node_of_body, spawn_in, Attempt, Probe};
use super::error::LabError;
use super::{CaptureReport, Lab};

/// Period of the watch's clients (each client, each kind).
pub const WATCH_PERIOD: Duration = Duration::from_millis(100);
/// Limit of one request (a SYN lost is resent by the kernel only after 1 s: such an attempt
/// fails rather than waiting for it).
pub const WATCH_TIMEOUT: Duration = Duration::from_millis(900);

fn io_err(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

/// Reads one HTTP/1.1 response (head, then `Content-Length` bytes of body) from `s`; returns
/// the status, the body and whether the server closes the connection after it.
pub fn read_response(s: &mut impl Read) -> std::io::Result<(u16, String, bool)> {
    let mut raw = Vec::new();
    let head_end = loop {
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let mut buf = [0u8; 2048];
        match s.read(&mut buf)? {
            0 => return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed before a response")),
            n => raw.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| io_err(format!("no status in {head:?}")))?;
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    let len: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| io_err(format!("no Content-Length in {head:?}")))?;
    let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
    let mut body = raw[head_end..].to_vec();
    while body.len() < len {
        let mut buf = [0u8; 4096];
        match s.read(&mut buf)? {
            0 => return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed in the body")),
            n => body.extend_from_slice(&buf[..n]),
        }
    }
    body.truncate(len);
    Ok((status, String::from_utf8_lossy(&body).into_owned(), close))
}

type Attempts = Arc<Mutex<Vec<Attempt>>>;

/// From each client address, one keep-alive HTTP/1.1 connection to `dst` with a `GET /` every
/// period (see the module documentation), until stopped.
#[derive(Debug)]
pub struct KeepAlive {
    stop: Arc<AtomicBool>,
    attempts: Attempts,
    workers: Vec<JoinHandle<()>>,
}

impl KeepAlive {
    /// Starts one thread per address of `srcs` in namespace `ns`.
    pub fn start(ns: &str, srcs: &[Ipv4Addr], dst: SocketAddrV4, period: Duration, timeout: Duration) -> Result<KeepAlive, LabError> {
        let stop = Arc::new(AtomicBool::new(false));
        let attempts: Attempts = Arc::default();
        let mut workers = Vec::new();
        for &src in srcs {
            let (stop, attempts) = (Arc::clone(&stop), Arc::clone(&attempts));
            workers.push(spawn_in(ns, move || {
                let mut conn: Option<TcpStream> = None;
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let start = Instant::now();
                    let r = Self::request(&mut conn, src, dst, timeout);
                    if r.is_err() {
                        conn = None;
                    }
                    attempts.lock().expect("attempts lock").push(Attempt { src, start, end: Instant::now(), result: r });
                    next += period;
                    if next < Instant::now() {
                        next = Instant::now();
                    }
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
            })?);
        }
        Ok(KeepAlive { stop, attempts, workers })
    }

    fn request(conn: &mut Option<TcpStream>, src: Ipv4Addr, dst: SocketAddrV4, timeout: Duration) -> Result<usize, String> {
        let start = Instant::now();
        let fresh = conn.is_none();
        if fresh {
            let s = connect(SocketAddrV4::new(src, 0), dst, timeout).map_err(|e| format!("connect: {e}"))?;
            *conn = Some(s);
        }
        let s = conn.as_mut().expect("connected");
        let left = timeout.saturating_sub(start.elapsed()).max(Duration::from_millis(1));
        let what = if fresh { "new connection" } else { "kept connection" };
        s.set_write_timeout(Some(left)).and_then(|_| s.set_read_timeout(Some(left))).map_err(|e| e.to_string())?;
        s.write_all(format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", dst.ip()).as_bytes())
            .map_err(|e| format!("{what}: write: {e}"))?;
        let (status, body, close) = read_response(s).map_err(|e| format!("{what}: {e}"))?;
        if close {
            *conn = None;
        }
        match status {
            200 => node_of_body(&body).ok_or_else(|| format!("unexpected body {body:?}")),
            s => Err(format!("HTTP {s}")),
        }
    }

    /// Stops (each thread finishes its request); every request in order of completion.
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

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.finish();
    }
}

/// When every client was served again for good: per client, the end of its first success that
/// started after its last failure that ended at or after `since` (no such failure: served
/// throughout, `Some(ZERO)`; no success after it: `None`), measured from `since`.
pub fn settle_times(attempts: &[Attempt], clients: &[Ipv4Addr], since: Instant) -> BTreeMap<Ipv4Addr, Option<Duration>> {
    clients
        .iter()
        .map(|c| {
            let mine = attempts.iter().filter(|a| a.src == *c);
            let last_fail = mine.clone().filter(|a| a.result.is_err() && a.end >= since).map(|a| a.start).max();
            let t = match last_fail {
                None => Some(Duration::ZERO),
                Some(f) => mine
                    .filter(|a| a.result.is_ok() && a.start > f)
                    .map(|a| a.end)
                    .min()
                    .map(|e| e.saturating_duration_since(since)),
            };
            (*c, t)
        })
        .collect()
}

/// The largest of [`settle_times`] (None if a client was never served again).
pub fn settle_time(times: &BTreeMap<Ipv4Addr, Option<Duration>>) -> Option<Duration> {
    times.values().copied().collect::<Option<Vec<_>>>().map(|v| v.into_iter().max().unwrap_or_default())
}

/// `t - origin` in milliseconds, negative before it.
pub fn signed_ms(t: Instant, origin: Instant) -> i128 {
    t.saturating_duration_since(origin).as_millis() as i128 - origin.saturating_duration_since(t).as_millis() as i128
}

/// Clients, probes and capture of a fault (see the module documentation).
#[derive(Debug)]
pub struct Watch {
    /// Watched client addresses with the node that served their bucket before the fault.
    pub clients: Vec<(Ipv4Addr, usize)>,
    probe: Probe,
    keep: KeepAlive,
    capture: Capture,
    /// When the watch started.
    pub started: Instant,
}

impl Watch {
    /// Starts watching `per_node` clients of every node (per each node's table), capturing into
    /// `R/<name>.pcap`; returns once every client was served by its node at least once on a new
    /// connection and on its kept connection.
    pub fn start(lab: &Lab, per_node: usize, name: &str) -> Result<Watch, LabError> {
        let mut clients = Vec::new();
        for i in lab.layout().node_numbers() {
            let mine = lab.clients_of(i, per_node)?;
            if mine.is_empty() {
                return Err(LabError::Check(format!("watch: n{i} owns no client's bucket")));
            }
            clients.extend(mine.into_iter().map(|c| (c, i)));
        }
        let srcs: Vec<Ipv4Addr> = clients.iter().map(|(c, _)| *c).collect();
        let dst = SocketAddrV4::new(lab.vip(), 80);
        let capture = Capture::start(&lab.client_ns(), lab.vip(), &lab.run_dir().join(format!("{name}.pcap")))?;
        let started = Instant::now();
        let probe = Probe::start(&lab.client_ns(), &srcs, dst, WATCH_PERIOD, WATCH_TIMEOUT)?;
        let keep = KeepAlive::start(&lab.client_ns(), &srcs, dst, WATCH_PERIOD, WATCH_TIMEOUT)?;
        let w = Watch { clients, probe, keep, capture, started };
        // Every client served by its own node on both kinds before anything breaks.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let seen_new = w.probe.attempts();
            let seen_kept = w.keep.attempts.lock().expect("attempts lock").clone();
            let served = |all: &[Attempt], c: Ipv4Addr, n: usize| all.iter().any(|a| a.src == c && a.result == Ok(n));
            let missing: Vec<String> = w
                .clients
                .iter()
                .filter(|(c, n)| !served(&seen_new, *c, *n) || !served(&seen_kept, *c, *n))
                .map(|(c, n)| format!("{c} (n{n})"))
                .collect();
            if missing.is_empty() {
                return Ok(w);
            }
            if Instant::now() >= deadline {
                return Err(LabError::Check(format!(
                    "watch: before the fault, clients not served by their node: {}",
                    missing.join(", ")
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the clients and the capture; the report, with settle times measured from `fault`.
    pub fn finish(self, lab: &Lab, fault: Instant) -> Result<WatchReport, LabError> {
        let new_conn = self.probe.stop();
        let kept = self.keep.stop();
        let capture = self.capture.finish(&lab.node_macs(), lab.vip(), &[])?;
        let srcs: Vec<Ipv4Addr> = self.clients.iter().map(|(c, _)| *c).collect();
        let mut all = new_conn.clone();
        all.extend(kept.iter().cloned());
        let settle = settle_times(&all, &srcs, fault);
        Ok(WatchReport { clients: self.clients, new_conn, kept, capture, settle, fault })
    }
}

/// What a [`Watch`] saw.
#[derive(Clone, Debug)]
pub struct WatchReport {
    /// Watched clients and their node before the fault.
    pub clients: Vec<(Ipv4Addr, usize)>,
    /// Every new-connection attempt.
    pub new_conn: Vec<Attempt>,
    /// Every keep-alive request.
    pub kept: Vec<Attempt>,
    /// The capture.
    pub capture: CaptureReport,
    /// Per client, from the fault until it was served again for good.
    pub settle: BTreeMap<Ipv4Addr, Option<Duration>>,
    /// The fault's start.
    pub fault: Instant,
}

impl WatchReport {
    /// The node of client `c` before the fault.
    pub fn node_of(&self, c: Ipv4Addr) -> Option<usize> {
        self.clients.iter().find(|(x, _)| *x == c).map(|(_, n)| *n)
    }

    /// Failed attempts (new connections, then keep-alive requests) of clients whose node is not
    /// in `affected`, as `client (n<i>) kind +ms: error`.
    pub fn failures_outside(&self, affected: &[usize]) -> Vec<String> {
        let mut out = Vec::new();
        for (kind, list) in [("new", &self.new_conn), ("kept", &self.kept)] {
            for a in list {
                let n = self.node_of(a.src).unwrap_or(0);
                if affected.contains(&n) {
                    continue;
                }
                if let Err(e) = &a.result {
                    let at = signed_ms(a.start, self.fault);
                    out.push(format!("{} (n{n}) {kind} {at:+} ms: {e}", a.src));
                }
            }
        }
        out
    }

    /// Failed attempts per kind (new, kept) of clients of node `n`.
    pub fn failed_of(&self, n: usize) -> (usize, usize) {
        let count = |list: &[Attempt]| list.iter().filter(|a| a.result.is_err() && self.node_of(a.src) == Some(n)).count();
        (count(&self.new_conn), count(&self.kept))
    }

    /// The settle time of every client (None: one was never served again).
    pub fn settle_time(&self) -> Option<Duration> {
        settle_time(&self.settle)
    }
}

impl fmt::Display for WatchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Option<Duration>| d.map_or_else(|| "never".to_owned(), |d| format!("{} ms", d.as_millis()));
        let mut nodes: Vec<usize> = self.clients.iter().map(|(_, n)| *n).collect();
        nodes.dedup();
        let failed: Vec<String> = nodes
            .iter()
            .map(|n| {
                let (a, b) = self.failed_of(*n);
                format!("n{n} {a}/{b}")
            })
            .collect();
        write!(
            f,
            "{} clients, {} new connections, {} keep-alive requests; failed (new/kept) per client node: {}; settled after {}",
            self.clients.len(),
            self.new_conn.len(),
            self.kept.len(),
            failed.join(", "),
            ms(self.settle_time())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(src: u8, t0: Instant, ms: u64, result: Result<usize, String>) -> Attempt {
        let s = t0 + Duration::from_millis(ms);
        Attempt { src: Ipv4Addr::new(198, 18, 1, src), start: s, end: s + Duration::from_millis(10), result }
    }

    #[test]
    fn settle_is_the_first_success_after_the_last_failure() {
        let t0 = Instant::now();
        let fault = t0 + Duration::from_millis(1000);
        let attempts = vec![
            at(1, t0, 500, Err("before the fault, ignored".into())),
            at(1, t0, 900, Ok(1)),
            at(1, t0, 1100, Err("timed out".into())),
            at(1, t0, 1200, Ok(2)), // served, then failing again
            at(1, t0, 1300, Err("reset".into())),
            at(1, t0, 1400, Ok(2)),
            at(1, t0, 1500, Ok(2)),
            at(2, t0, 1100, Ok(3)),
            at(3, t0, 1100, Err("timed out".into())),
        ];
        let c = |x| Ipv4Addr::new(198, 18, 1, x);
        let t = settle_times(&attempts, &[c(1), c(2), c(3)], fault);
        assert_eq!(t[&c(1)], Some(Duration::from_millis(410)));
        assert_eq!(t[&c(2)], Some(Duration::ZERO));
        assert_eq!(t[&c(3)], None);
        assert_eq!(settle_time(&t), None);
        let t = settle_times(&attempts, &[c(1), c(2)], fault);
        assert_eq!(settle_time(&t), Some(Duration::from_millis(410)));
    }

    #[test]
    fn responses_are_read_by_length_and_close_is_seen() {
        let mut r: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: Keep-Alive\r\n\r\nnode n2\nHTTP/1.1";
        assert_eq!(read_response(&mut r).unwrap(), (200, "node n2\n".to_owned(), false));
        let mut r: &[u8] = b"HTTP/1.1 503 x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
        assert_eq!(read_response(&mut r).unwrap(), (503, String::new(), true));
        let mut r: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nnode";
        assert!(read_response(&mut r).is_err());
        let mut r: &[u8] = b"";
        assert_eq!(read_response(&mut r).unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
