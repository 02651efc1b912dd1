//! A small, bounded HTTP/1.1 server: `std::net` sockets, the `httparse` request parser, a fixed
//! pool of worker threads, one request per connection (`Connection: close`).
//!
//! Why not `tiny_http`: its 0.12 release (the latest) drains an unread request body by
//! allocating a buffer of the declared `Content-Length`, so one unauthenticated request with
//! `Content-Length: 99999999999` aborts the whole daemon (tiny-http/tiny-http#290, closed
//! unmerged). Here every size and time is bounded before anything is allocated or awaited:
//! request head [`MAX_HEAD`] bytes and [`MAX_HEADERS`] headers, body [`MAX_BODY`] bytes (larger
//! declared lengths are refused with 413 without reading them), [`IO_TIMEOUT`] per read or
//! write and [`REQUEST_DEADLINE`] for the whole request, and at most [`QUEUE`] accepted
//! connections waiting for a worker (more are closed at once).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam::channel::{self, TrySendError};

/// Largest request head (request line and headers).
pub const MAX_HEAD: usize = 16 * 1024;
/// Most headers in a request.
pub const MAX_HEADERS: usize = 48;
/// Largest request body.
pub const MAX_BODY: usize = 64 * 1024;
/// Time limit of each read or write.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Time limit of a whole request (slow clients are cut off).
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// Accepted connections waiting for a worker.
pub const QUEUE: usize = 64;

/// A parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    /// Method, e.g. `GET`.
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Headers in order (names as sent).
    pub headers: Vec<(String, String)>,
    /// Body (at most [`MAX_BODY`] bytes).
    pub body: Vec<u8>,
    /// The client.
    pub peer: Option<SocketAddr>,
}

impl HttpRequest {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers (`Content-Length` and `Connection` are added when sent).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response with a content type.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> HttpResponse {
        HttpResponse { status, headers: vec![("Content-Type".into(), content_type.into())], body: body.into() }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> HttpResponse {
        self.headers.push((name.into(), value.into()));
        self
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Serialises a response (no body for `HEAD`).
pub fn encode(resp: &HttpResponse, head_only: bool) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status)).into_bytes();
    for (k, v) in &resp.headers {
        // Header values are generated here; refuse line breaks anyway.
        if !k.contains(['\r', '\n']) && !v.contains(['\r', '\n']) {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
    }
    out.extend_from_slice(format!("Content-Length: {}\r\nConnection: close\r\n\r\n", resp.body.len()).as_bytes());
    if !head_only {
        out.extend_from_slice(&resp.body);
    }
    out
}

fn json_error(status: u16, msg: &str) -> HttpResponse {
    HttpResponse::new(status, "application/json", serde_json::json!({ "error": msg }).to_string())
}

/// Why a request could not be read: answered with this status (or not at all).
#[derive(Debug)]
enum ReadFail {
    Reply(u16, String),
    Gone,
}

fn read_request(stream: &mut TcpStream, peer: Option<SocketAddr>) -> Result<HttpRequest, ReadFail> {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut buf = vec![0u8; MAX_HEAD];
    let mut len = 0;
    let read_more = |stream: &mut TcpStream, buf: &mut [u8]| -> Result<usize, ReadFail> {
        if Instant::now() >= deadline {
            return Err(ReadFail::Reply(408, "request too slow".into()));
        }
        match stream.read(buf) {
            Ok(0) => Err(ReadFail::Gone),
            Ok(n) => Ok(n),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                Err(ReadFail::Reply(408, "request too slow".into()))
            }
            Err(_) => Err(ReadFail::Gone),
        }
    };
    loop {
        if len == buf.len() {
            return Err(ReadFail::Reply(431, format!("request head larger than {MAX_HEAD} bytes")));
        }
        len += read_more(stream, &mut buf[len..])?;
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Partial) => continue,
            Err(httparse::Error::TooManyHeaders) => {
                return Err(ReadFail::Reply(431, format!("more than {MAX_HEADERS} headers")));
            }
            Err(e) => return Err(ReadFail::Reply(400, format!("malformed request: {e}"))),
            Ok(httparse::Status::Complete(head_len)) => {
                let method = req.method.unwrap_or("").to_string();
                let target = req.path.unwrap_or("");
                let path = target.split(['?', '#']).next().unwrap_or("").to_string();
                let headers: Vec<(String, String)> = req
                    .headers
                    .iter()
                    .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).trim().to_string()))
                    .collect();
                let mut r = HttpRequest { method, path, headers, body: Vec::new(), peer };
                if r.header("Transfer-Encoding").is_some() {
                    return Err(ReadFail::Reply(501, "chunked request bodies are not supported; send Content-Length".into()));
                }
                let body_len = match r.header("Content-Length") {
                    None => 0,
                    Some(v) => match v.parse::<u64>() {
                        Ok(n) if n > MAX_BODY as u64 => {
                            return Err(ReadFail::Reply(413, format!("body larger than {MAX_BODY} bytes")))
                        }
                        Ok(n) => n as usize,
                        Err(_) => return Err(ReadFail::Reply(400, format!("bad Content-Length {v:?}"))),
                    },
                };
                if body_len > len - head_len && r.header("Expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue")) {
                    // The size is acceptable: tell the client to send the body.
                    if stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err() {
                        return Err(ReadFail::Gone);
                    }
                }
                let mut body = buf[head_len..len].to_vec();
                body.truncate(body_len);
                let mut chunk = [0u8; 4096];
                while body.len() < body_len {
                    let want = (body_len - body.len()).min(chunk.len());
                    let n = read_more(stream, &mut chunk[..want])?;
                    body.extend_from_slice(&chunk[..n]);
                }
                r.body = body;
                return Ok(r);
            }
        }
    }
}

/// What answers requests.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request (must not panic; a panic is answered with 500).
    fn handle(&self, req: &HttpRequest) -> HttpResponse;
}

fn serve_connection(mut stream: TcpStream, handler: &dyn Handler) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok();
    let (resp, head_only) = match read_request(&mut stream, peer) {
        Ok(req) => {
            let resp = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler.handle(&req)))
                .unwrap_or_else(|_| json_error(500, "internal error"));
            (resp, req.method == "HEAD")
        }
        Err(ReadFail::Reply(code, msg)) => (json_error(code, &msg), false),
        Err(ReadFail::Gone) => return,
    };
    let _ = stream.write_all(&encode(&resp, head_only));
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
    // Let the client read the answer before the socket closes (a close with unread input
    // would reset the connection); bounded by the read timeout.
    let mut sink = [0u8; 1024];
    let drain_end = Instant::now() + Duration::from_millis(200);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    while Instant::now() < drain_end {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

/// A running server.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `addr` and serves with `workers` threads.
    pub fn start(addr: SocketAddr, workers: usize, handler: Arc<dyn Handler>) -> io::Result<HttpServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = channel::bounded::<TcpStream>(QUEUE);
        let mut threads = Vec::new();
        for i in 0..workers.max(1) {
            let (rx, handler) = (rx.clone(), handler.clone());
            threads.push(thread::Builder::new().name(format!("farm-api-{i}")).spawn(move || {
                for stream in rx.iter() {
                    serve_connection(stream, handler.as_ref());
                }
            })?);
        }
        let stop2 = stop.clone();
        threads.push(thread::Builder::new().name("farm-api-accept".into()).spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                match conn {
                    Ok(s) => match tx.try_send(s) {
                        Ok(()) => {}
                        Err(TrySendError::Full(s)) => {
                            tracing::warn!("API: too many pending connections, closing one");
                            drop(s);
                        }
                        Err(TrySendError::Disconnected(_)) => break,
                    },
                    Err(e) => {
                        tracing::debug!(error = %e, "API accept error");
                        // EMFILE and friends: do not spin.
                        thread::sleep(Duration::from_millis(10));
                    }
                }
            }
            // Dropping `tx` ends the workers once the queue is served.
        })?);
        Ok(HttpServer { addr, stop, threads })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, serves what was queued, and waits for the threads.
    pub fn shutdown(mut self) {
        self.stop_accepting();
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }

    fn stop_accepting(&self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept thread with a connection of our own.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop_accepting();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_adds_length_and_close() {
        let r = HttpResponse::new(200, "text/plain", "OK\n").with_header("X-A", "1").with_header("Bad", "a\r\nb");
        let text = String::from_utf8(encode(&r, false)).unwrap();
        assert_eq!(text, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A: 1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nOK\n");
        let head = String::from_utf8(encode(&r, true)).unwrap();
        assert!(head.ends_with("Content-Length: 3\r\nConnection: close\r\n\r\n"));
    }
}
