//! Long-lived clients for planned changes (issue 11, DESIGN.md I2): from the client namespace,
//! connections that live longer than any change of the farm, and a record of every request and
//! every connection with the node that served it, so that a test can say which connection
//! broke, on which node, and when.
//!
//! - [`Sessions`]: keep-alive HTTP/1.1 sessions, one connection each with a `GET /` every
//!   period. Between requests a session watches its connection: a server that closes it (a FIN,
//!   e.g. Apache's graceful-stop closing idle keep-alive connections) ends it cleanly and the
//!   next request opens a new one; a reset, a timeout or a wrong answer is a failure. A request
//!   whose reused connection the server closed before sending any byte of an answer is sent
//!   again once on a new connection (what HTTP/1.1 clients do with idempotent requests: the
//!   server never read it) and counted apart ([`Request::retried`]), if the close came within
//!   [`RETRY_WINDOW`] of the request; a later close without an answer is a failure (the request
//!   was lost and the server closed an idle connection).
//! - [`Downloads`]: slow downloads of a [`TestFile`] (pseudo-random bytes, the same on every
//!   node) with a small receive buffer and rate-limited reads, so the transfer on the wire lasts
//!   as long as the reads; each one's size and checksum are checked at its end. One download per
//!   client address, or one after the other until stopped.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::client::{node_of_body, spawn_in};
use super::error::LabError;
use super::probes::read_response;
use super::Lab;

/// FNV-1a, 64 bits: the checksum of a download.
#[derive(Clone, Copy, Debug)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    /// Adds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// The checksum so far.
    pub fn value(&self) -> u64 {
        self.0
    }
}

/// `size` pseudo-random bytes from `seed` (xorshift64*).
pub fn file_bytes(seed: u64, size: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(size);
    out
}

/// A file of pseudo-random bytes served by every node's Apache at `/<name>`.
#[derive(Clone, Debug)]
pub struct TestFile {
    /// File name (the URL path without its `/`).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// FNV-1a 64 of its bytes.
    pub checksum: u64,
}

impl TestFile {
    /// Writes `R/<name>` (`size` bytes from `seed`, mode 0644) and links it into every node's
    /// document root.
    pub fn install(lab: &Lab, name: &str, size: usize, seed: u64) -> Result<TestFile, LabError> {
        use std::os::unix::fs::PermissionsExt;
        let bytes = file_bytes(seed, size);
        let mut sum = Fnv::default();
        sum.update(&bytes);
        let path: PathBuf = lab.run_dir().join(name);
        std::fs::write(&path, &bytes).map_err(|e| LabError::io(&path, e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).map_err(|e| LabError::io(&path, e))?;
        for i in lab.layout().node_numbers() {
            let link = lab.httpd(i).htdocs().join(name);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&path, &link).map_err(|e| LabError::io(&link, e))?;
        }
        Ok(TestFile { name: name.to_owned(), size: size as u64, checksum: sum.value() })
    }

    /// The URL path.
    pub fn url_path(&self) -> String {
        format!("/{}", self.name)
    }
}

/// An I/O error as a failure message (a socket timeout says so, not "would block").
fn io_msg(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => "timed out".to_owned(),
        _ => e.to_string(),
    }
}

fn local_port(s: &TcpStream) -> u16 {
    s.local_addr().map(|a| a.port()).unwrap_or(0)
}

/// Opens a connection from `src` (any port) to `dst`, with a receive buffer of `rcvbuf` bytes
/// if given (set before the connect, so the window stays that small).
fn open(src: Ipv4Addr, dst: SocketAddrV4, rcvbuf: Option<usize>, timeout: Duration) -> std::io::Result<TcpStream> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    if let Some(b) = rcvbuf {
        s.set_recv_buffer_size(b)?;
    }
    s.bind(&SockAddr::from(SocketAddrV4::new(src, 0)))?;
    s.connect_timeout(&SockAddr::from(dst), timeout)?;
    let s: TcpStream = s.into();
    s.set_nodelay(true)?;
    Ok(s)
}

/// Counts the bytes read through it.
struct Counting<'a> {
    s: &'a mut TcpStream,
    n: usize,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.s.read(buf)?;
        self.n += n;
        Ok(n)
    }
}

/// How a session's connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The server closed it between requests (a FIN, or `Connection: close`).
    ServerClosed,
    /// An error (reset, timeout, wrong answer): a failure.
    Failed(String),
    /// The sessions were stopped.
    Stopped,
}

/// One connection of a session.
#[derive(Clone, Debug)]
pub struct Conn {
    /// The session (index in the addresses given to [`Sessions::start`]).
    pub session: usize,
    /// Its source address and port.
    pub local: SocketAddrV4,
    /// The node that answered its first request.
    pub node: Option<usize>,
    /// When it was opened.
    pub opened: Instant,
    /// When and how it ended (None: still open).
    pub ended: Option<(Instant, Ending)>,
    /// Requests answered on it.
    pub answered: usize,
}

/// One request of a session.
#[derive(Clone, Debug)]
pub struct Request {
    /// The session.
    pub session: usize,
    /// The connection it was (last) sent on (index in [`SessionLog::conns`]; None: no
    /// connection could be opened).
    pub conn: Option<usize>,
    /// Started.
    pub start: Instant,
    /// Ended.
    pub end: Instant,
    /// The node that answered 200 `node n<i>`, or what went wrong.
    pub result: Result<usize, String>,
    /// Sent again on a new connection: the server had closed the reused one before any byte of
    /// an answer.
    pub retried: bool,
}

/// Everything the sessions did.
#[derive(Clone, Debug, Default)]
pub struct SessionLog {
    /// Every connection, in order of opening.
    pub conns: Vec<Conn>,
    /// Every request, in order of completion.
    pub requests: Vec<Request>,
}

impl SessionLog {
    /// The failed requests.
    pub fn failures(&self) -> Vec<&Request> {
        self.requests.iter().filter(|r| r.result.is_err()).collect()
    }
}

type Log = Arc<Mutex<SessionLog>>;

/// Keep-alive sessions (see the module documentation).
#[derive(Debug)]
pub struct Sessions {
    stop: Arc<AtomicBool>,
    log: Log,
    workers: Vec<JoinHandle<()>>,
    /// The session addresses.
    pub srcs: Vec<Ipv4Addr>,
}

/// A request on a reused connection that the server closes within this time without a byte of
/// an answer is sent again (the close crossed it); later, it is a failure.
pub const RETRY_WINDOW: Duration = Duration::from_millis(500);

/// What a session's idle wait saw.
enum Idle {
    /// Time for the next request.
    Due,
    /// The server closed the connection.
    Closed,
}

impl Sessions {
    /// Starts one session per address of `srcs` in namespace `ns`: a `GET /` on `dst` every
    /// `period`, each bounded by `timeout`.
    pub fn start(ns: &str, srcs: &[Ipv4Addr], dst: SocketAddrV4, period: Duration, timeout: Duration) -> Result<Sessions, LabError> {
        let stop = Arc::new(AtomicBool::new(false));
        let log: Log = Arc::default();
        let mut workers = Vec::new();
        for (k, &src) in srcs.iter().enumerate() {
            let (stop, log) = (Arc::clone(&stop), Arc::clone(&log));
            // Spread the sessions' requests over the period.
            let offset = period.mul_f64(k as f64 / srcs.len().max(1) as f64);
            workers.push(spawn_in(ns, move || Session { k, src, dst, timeout, log, conn: None }.run(&stop, period, offset))?);
        }
        Ok(Sessions { stop, log, workers, srcs: srcs.to_vec() })
    }

    /// What the sessions did so far.
    pub fn snapshot(&self) -> SessionLog {
        self.log.lock().expect("session log").clone()
    }

    /// Stops the sessions (each finishes its request); everything they did.
    pub fn stop(mut self) -> SessionLog {
        self.finish();
        self.snapshot()
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for Sessions {
    fn drop(&mut self) {
        self.finish();
    }
}

struct Session {
    k: usize,
    src: Ipv4Addr,
    dst: SocketAddrV4,
    timeout: Duration,
    log: Log,
    /// The open connection and its index in the log.
    conn: Option<(TcpStream, usize)>,
}

impl Session {
    fn run(mut self, stop: &AtomicBool, period: Duration, offset: Duration) {
        let mut next = Instant::now() + offset;
        while !stop.load(Ordering::Relaxed) {
            match self.idle_until(next, stop) {
                Ok(Idle::Due) => {}
                Ok(Idle::Closed) => self.end(Ending::ServerClosed),
                Err(e) => {
                    // A reset (or junk) on an idle connection: it broke between requests.
                    let at = Instant::now();
                    let conn = self.conn.as_ref().map(|c| c.1);
                    let msg = format!("idle kept connection: {}", io_msg(&e));
                    self.end(Ending::Failed(msg.clone()));
                    self.push(Request { session: self.k, conn, start: at, end: at, result: Err(msg), retried: false });
                }
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if Instant::now() >= next {
                let r = self.request();
                self.push(r);
                next += period;
                next = next.max(Instant::now());
            }
        }
        self.end(Ending::Stopped);
    }

    fn push(&self, r: Request) {
        self.log.lock().expect("session log").requests.push(r);
    }

    /// Ends the open connection (if any) as `how`.
    fn end(&mut self, how: Ending) {
        if let Some((_, id)) = self.conn.take() {
            if let Some(c) = self.log.lock().expect("session log").conns.get_mut(id) {
                c.ended = Some((Instant::now(), how));
            }
        }
    }

    /// Waits until `until` (or the stop), watching the open connection for a close.
    fn idle_until(&mut self, until: Instant, stop: &AtomicBool) -> std::io::Result<Idle> {
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || stop.load(Ordering::Relaxed) {
                return Ok(Idle::Due);
            }
            let slice = left.min(Duration::from_millis(100));
            let Some((s, _)) = &self.conn else {
                std::thread::sleep(slice);
                continue;
            };
            s.set_read_timeout(Some(slice))?;
            match s.peek(&mut [0u8; 1]) {
                Ok(0) => return Ok(Idle::Closed),
                Ok(_) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "bytes from the server between requests")),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn connect(&mut self) -> Result<(), String> {
        let s = open(self.src, self.dst, None, self.timeout).map_err(|e| format!("connect: {}", io_msg(&e)))?;
        let local = SocketAddrV4::new(self.src, local_port(&s));
        let mut log = self.log.lock().expect("session log");
        log.conns.push(Conn { session: self.k, local, node: None, opened: Instant::now(), ended: None, answered: 0 });
        self.conn = Some((s, log.conns.len() - 1));
        Ok(())
    }

    fn request(&mut self) -> Request {
        let start = Instant::now();
        let mut retried = false;
        loop {
            let reused = self.conn.is_some();
            let r = self.attempt(start);
            let conn = self.conn.as_ref().map(|c| c.1);
            match r {
                Ok((node, close)) => {
                    if let Some(k) = conn {
                        if let Some(c) = self.log.lock().expect("session log").conns.get_mut(k) {
                            c.node.get_or_insert(node);
                            c.answered += 1;
                        }
                    }
                    if close {
                        self.end(Ending::ServerClosed);
                    }
                    return Request { session: self.k, conn, start, end: Instant::now(), result: Ok(node), retried };
                }
                Err((_, nothing_read)) if reused && nothing_read && !retried => {
                    // Closed by the server before it read the request: send it again.
                    self.end(Ending::ServerClosed);
                    retried = true;
                }
                Err((msg, _)) => {
                    self.end(Ending::Failed(msg.clone()));
                    return Request { session: self.k, conn, start, end: Instant::now(), result: Err(msg), retried };
                }
            }
        }
    }

    /// One `GET /` on the open connection (a new one if none): the node and whether the server
    /// closes after it; on failure the error and whether the server closed the connection
    /// without sending a byte.
    fn attempt(&mut self, start: Instant) -> Result<(usize, bool), (String, bool)> {
        if self.conn.is_none() {
            self.connect().map_err(|e| (e, false))?;
        }
        let timeout = self.timeout;
        let dst = self.dst;
        let (s, _) = self.conn.as_mut().expect("connected");
        let left = timeout.saturating_sub(start.elapsed()).max(Duration::from_millis(1));
        let io = |e: std::io::Error| (io_msg(&e), false);
        s.set_write_timeout(Some(left)).map_err(io)?;
        s.set_read_timeout(Some(left)).map_err(io)?;
        s.write_all(format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", dst.ip()).as_bytes()).map_err(|e| (format!("write: {}", io_msg(&e)), false))?;
        let sent = Instant::now();
        let mut c = Counting { s, n: 0 };
        match read_response(&mut c) {
            Ok((200, body, close)) => match node_of_body(&body) {
                Some(n) => Ok((n, close)),
                None => Err((format!("unexpected body {body:?}"), false)),
            },
            Ok((status, _, _)) => Err((format!("HTTP {status}"), false)),
            Err(e) if c.n == 0 && e.kind() == std::io::ErrorKind::UnexpectedEof => {
                // A close that crossed the request is the server's idle close; a later one
                // means the request was lost (e.g. Apache's KeepAliveTimeout after the
                // request never reached it).
                let after = sent.elapsed();
                if after <= RETRY_WINDOW {
                    Err((format!("read: {e}"), true))
                } else {
                    Err((format!("the server closed the connection {} ms after the request without answering", after.as_millis()), false))
                }
            }
            Err(e) => Err((format!("read: {}", io_msg(&e)), false)),
        }
    }
}

/// One download.
#[derive(Clone, Debug)]
pub struct Download {
    /// The client address.
    pub src: Ipv4Addr,
    /// Its port.
    pub port: u16,
    /// The node that served it (asked with a `GET /` on the same connection first).
    pub node: Option<usize>,
    /// Started (connect).
    pub start: Instant,
    /// Ended (the last byte read, or the failure).
    pub end: Instant,
    /// Body bytes read.
    pub bytes: u64,
    /// Complete with the right size and checksum, or what went wrong.
    pub result: Result<(), String>,
}

/// Slow downloads (see the module documentation).
#[derive(Debug)]
pub struct Downloads {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Download>>>,
    workers: Vec<JoinHandle<()>>,
}

/// Receive buffer of a download: small, so the server sends as fast as the client reads.
pub const DOWNLOAD_RCVBUF: usize = 64 << 10;

impl Downloads {
    /// From each address of `srcs` in namespace `ns`: download `file` from `dst` reading
    /// `rate` bytes per second; again and again until stopped if `repeat`, else once. A read
    /// that waits longer than `stall` fails the download.
    pub fn start(
        ns: &str,
        srcs: &[Ipv4Addr],
        dst: SocketAddrV4,
        file: &TestFile,
        rate: u64,
        repeat: bool,
        stall: Duration,
    ) -> Result<Downloads, LabError> {
        let stop = Arc::new(AtomicBool::new(false));
        let log: Arc<Mutex<Vec<Download>>> = Arc::default();
        let mut workers = Vec::new();
        for &src in srcs {
            let (stop, log, file) = (Arc::clone(&stop), Arc::clone(&log), file.clone());
            workers.push(spawn_in(ns, move || loop {
                let d = download(src, dst, &file, rate, stall);
                log.lock().expect("download log").push(d);
                if !repeat || stop.load(Ordering::Relaxed) {
                    break;
                }
            })?);
        }
        Ok(Downloads { stop, log, workers })
    }

    /// The downloads finished so far.
    pub fn finished(&self) -> Vec<Download> {
        self.log.lock().expect("download log").clone()
    }

    /// Whether every download has ended (only once-downloads end by themselves).
    pub fn all_done(&self) -> bool {
        self.workers.iter().all(JoinHandle::is_finished)
    }

    /// Starts no new download and waits for those in flight; every download.
    pub fn finish(mut self) -> Vec<Download> {
        self.join();
        self.finished()
    }

    fn join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for Downloads {
    fn drop(&mut self) {
        self.join();
    }
}

fn download(src: Ipv4Addr, dst: SocketAddrV4, file: &TestFile, rate: u64, stall: Duration) -> Download {
    let start = Instant::now();
    let mut d = Download { src, port: 0, node: None, start, end: start, bytes: 0, result: Ok(()) };
    d.result = download_into(&mut d, dst, file, rate, stall);
    d.end = Instant::now();
    d
}

fn download_into(d: &mut Download, dst: SocketAddrV4, file: &TestFile, rate: u64, stall: Duration) -> Result<(), String> {
    let mut s = open(d.src, dst, Some(DOWNLOAD_RCVBUF), stall).map_err(|e| format!("connect: {}", io_msg(&e)))?;
    d.port = local_port(&s);
    s.set_read_timeout(Some(stall)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(stall)).map_err(|e| e.to_string())?;
    let host = dst.ip();
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes()).map_err(|e| format!("write: {e}"))?;
    let (status, body, _) = read_response(&mut s).map_err(|e| format!("GET /: {}", io_msg(&e)))?;
    if status != 200 {
        return Err(format!("GET /: HTTP {status}"));
    }
    d.node = node_of_body(&body);
    let req = format!("GET {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n", file.url_path());
    s.write_all(req.as_bytes()).map_err(|e| format!("write: {e}"))?;
    // The head, byte by byte (it is short), then the body at `rate`.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        match s.read(&mut b) {
            Ok(0) => return Err(format!("closed in the head after {} bytes", head.len())),
            Ok(_) => head.push(b[0]),
            Err(e) => return Err(format!("head: {}", io_msg(&e))),
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let status = head.split_whitespace().nth(1).unwrap_or("?");
    if status != "200" {
        return Err(format!("GET {}: HTTP {status}", file.url_path()));
    }
    let len = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<u64>().ok())?
    });
    if len != Some(file.size) {
        return Err(format!("Content-Length {len:?}, expected {}", file.size));
    }
    let mut sum = Fnv::default();
    let body_start = Instant::now();
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let due = body_start + Duration::from_secs_f64(d.bytes as f64 / rate as f64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let want = buf.len().min((file.size - d.bytes) as usize).max(1);
        match s.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => {
                sum.update(&buf[..n]);
                d.bytes += n as u64;
            }
            Err(e) => return Err(format!("after {} of {} bytes: {}", d.bytes, file.size, io_msg(&e))),
        }
        if d.bytes > file.size {
            return Err(format!("more than {} bytes", file.size));
        }
    }
    if d.bytes != file.size {
        return Err(format!("closed after {} of {} bytes", d.bytes, file.size));
    }
    if sum.value() != file.checksum {
        return Err(format!("checksum {:016x}, expected {:016x}", sum.value(), file.checksum));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_bytes_are_deterministic_and_not_constant() {
        let a = file_bytes(7, 1000);
        assert_eq!(a.len(), 1000);
        assert_eq!(a, file_bytes(7, 1000));
        assert_ne!(a, file_bytes(8, 1000));
        assert!(a.iter().filter(|b| **b == 0).count() < 50);
        let mut x = Fnv::default();
        x.update(b"a");
        assert_eq!(x.value(), 0xaf63_dc4c_8601_ec8c, "FNV-1a 64 of \"a\"");
    }

    #[test]
    fn a_session_reconnects_after_a_server_close_and_counts_nothing_failed() {
        // A server that answers two requests per connection, then closes (FIN) while idle.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dst = match l.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
        let srv = std::thread::spawn(move || {
            for _ in 0..3 {
                let (mut c, _) = l.accept().unwrap();
                for _ in 0..2 {
                    let mut req = Vec::new();
                    while !req.ends_with(b"\r\n\r\n") {
                        let mut b = [0u8; 1];
                        if c.read(&mut b).unwrap() == 0 {
                            return;
                        }
                        req.push(b[0]);
                    }
                    c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nnode n2\n").unwrap();
                }
            }
        });
        let stop = AtomicBool::new(false);
        let log: Log = Arc::default();
        let mut s = Session { k: 0, src: Ipv4Addr::LOCALHOST, dst, timeout: Duration::from_secs(2), log: Arc::clone(&log), conn: None };
        for _ in 0..5 {
            let next = Instant::now() + Duration::from_millis(30);
            if let Ok(Idle::Closed) = s.idle_until(next, &stop) {
                s.end(Ending::ServerClosed);
            }
            let r = s.request();
            s.push(r);
        }
        drop(s);
        srv.join().unwrap();
        let log = log.lock().unwrap().clone();
        assert!(log.failures().is_empty(), "{:?}", log.requests);
        assert_eq!(log.requests.len(), 5);
        assert!(log.requests.iter().all(|r| r.result == Ok(2)));
        assert_eq!(log.conns.len(), 3, "{:?}", log.conns);
        assert_eq!(log.conns[0].ended.as_ref().map(|e| &e.1), Some(&Ending::ServerClosed));
        assert_eq!(log.conns[0].answered, 2);
    }
}
