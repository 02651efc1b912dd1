//! The API's HTTP/1.1 transport: [`hyper`] 1.x on a current-thread tokio runtime that runs in
//! one dedicated thread (no worker pool, no blocking pool: farmd stays small).
//!
//! Every size and time is bounded before anything is allocated or awaited:
//! - request head at most [`MAX_HEAD`] bytes and [`MAX_HEADERS`] headers (hyper answers 431),
//!   read within [`HEADER_TIMEOUT`] (hyper closes the connection);
//! - request body at most [`MAX_BODY`] bytes: a larger `Content-Length` is refused with 413
//!   before anything is read, and the body is read through [`Limited`] (413 past the limit)
//!   within [`BODY_TIMEOUT`] (408); chunked bodies are refused with 501;
//! - at most [`MAX_CONNECTIONS`] connections at once (more are closed at once), each cut off
//!   after [`CONNECTION_DEADLINE`] (the times and the connection count are the defaults of
//!   [`Limits`]);
//! - one request per connection (`Connection: close`).
//!
//! Why not `tiny_http`: its 0.12 release (the latest) drains an unread request body by
//! allocating a buffer of the declared `Content-Length`, so one unauthenticated request with
//! `Content-Length: 99999999999` aborts the whole daemon (tiny-http/tiny-http#290).
//!
//! Requests are handed to a synchronous [`Handler`] as an [`HttpRequest`]; its
//! [`HttpResponse`] is sent with `Content-Length` and `Connection: close` as the last headers.

use std::convert::Infallible;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::time::{timeout, timeout_at, Instant};

/// Largest request head (request line and headers).
pub const MAX_HEAD: usize = 16 * 1024;
/// Most headers in a request.
pub const MAX_HEADERS: usize = 48;
/// Largest request body.
pub const MAX_BODY: usize = 64 * 1024;
/// Time limit for receiving the request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Time limit for receiving the request body (answered with 408).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// Time limit of a whole connection, answer included (then it is closed).
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(15);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 64;

/// The server's time and connection limits (sizes are the constants [`MAX_HEAD`],
/// [`MAX_HEADERS`] and [`MAX_BODY`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Time limit for receiving the request head (then the connection is closed).
    pub header_timeout: Duration,
    /// Time limit for receiving the request body (then 408).
    pub body_timeout: Duration,
    /// Time limit of a whole connection, answer included.
    pub connection_deadline: Duration,
    /// Connections served at once (at least 1; more are closed at once).
    pub max_connections: usize,
}

impl Default for Limits {
    /// [`HEADER_TIMEOUT`], [`BODY_TIMEOUT`], [`CONNECTION_DEADLINE`], [`MAX_CONNECTIONS`].
    fn default() -> Limits {
        Limits { header_timeout: HEADER_TIMEOUT, body_timeout: BODY_TIMEOUT, connection_deadline: CONNECTION_DEADLINE, max_connections: MAX_CONNECTIONS }
    }
}
/// hyper's connection buffer (it must hold a whole request head).
const MAX_BUF: usize = 2 * MAX_HEAD;
/// After the answer: how long unread input is drained so that closing does not reset the
/// connection before the client has read the answer, and how much of it at most.
const LINGER: Duration = Duration::from_millis(200);
const LINGER_BYTES: usize = 256 * 1024;

/// A received request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    /// Method, e.g. `GET`.
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Headers in order (names in lower case).
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
    /// Headers (`Content-Length` and `Connection` are set when sent).
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

/// What answers requests.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request. It runs on the API's only thread: it must not block for long, and
    /// must not panic (a panic is answered with 500 where panics unwind).
    fn handle(&self, req: &HttpRequest) -> HttpResponse;
}

fn json_error(status: u16, msg: &str) -> HttpResponse {
    HttpResponse::new(status, "application/json", serde_json::json!({ "error": msg }).to_string())
}

/// Converts a response for hyper. Headers that are not valid HTTP (e.g. a value with a line
/// break) are dropped; `Content-Length` and `Connection: close` come last.
fn to_hyper(resp: HttpResponse) -> Response<Full<Bytes>> {
    let status = match StatusCode::from_u16(resp.status) {
        Ok(s) if !s.is_informational() => s,
        _ => {
            tracing::warn!(status = resp.status, "API: invalid response status, sending 500");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    let len = resp.body.len();
    let mut out = Response::new(Full::new(Bytes::from(resp.body)));
    *out.status_mut() = status;
    let headers = out.headers_mut();
    for (k, v) in &resp.headers {
        match (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
            (Ok(name), Ok(_)) if [CONTENT_LENGTH, CONNECTION, TRANSFER_ENCODING].contains(&name) => {}
            (Ok(name), Ok(value)) => {
                headers.append(name, value);
            }
            _ => tracing::warn!(header = %k, "API: invalid response header dropped"),
        }
    }
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    out
}

/// Reads the request (body within its limits) and asks the handler.
async fn answer(handler: &dyn Handler, req: Request<Incoming>, peer: SocketAddr, body_timeout: Duration) -> HttpResponse {
    let (parts, body) = req.into_parts();
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).trim().to_string()))
        .collect();
    let mut req =
        HttpRequest { method: parts.method.as_str().to_string(), path: parts.uri.path().to_string(), headers, body: Vec::new(), peer: Some(peer) };
    if parts.headers.contains_key(TRANSFER_ENCODING) {
        return json_error(501, "chunked request bodies are not supported; send Content-Length");
    }
    // hyper has checked Content-Length; the body's size hint is that length.
    if body.size_hint().lower() > MAX_BODY as u64 {
        return json_error(413, &format!("body larger than {MAX_BODY} bytes"));
    }
    match timeout(body_timeout, Limited::new(body, MAX_BODY).collect()).await {
        Err(_) => return json_error(408, "request too slow"),
        Ok(Err(e)) if e.is::<LengthLimitError>() => return json_error(413, &format!("body larger than {MAX_BODY} bytes")),
        Ok(Err(e)) => return json_error(400, &format!("cannot read the body: {e}")),
        Ok(Ok(collected)) => req.body = collected.to_bytes().to_vec(),
    }
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler.handle(&req))).unwrap_or_else(|_| json_error(500, "internal error"))
}

fn builder(limits: &Limits) -> http1::Builder {
    let mut b = http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(false)
        .max_buf_size(MAX_BUF)
        .max_header_size(MAX_HEAD)
        .max_headers(MAX_HEADERS)
        .title_case_headers(true)
        .auto_date_header(false);
    b
}

/// Serves one connection, then closes it politely.
async fn serve(stream: TcpStream, peer: SocketAddr, handler: Arc<dyn Handler>, limits: Limits, builder: http1::Builder, _permit: OwnedSemaphorePermit) {
    let _ = stream.set_nodelay(true);
    // A second descriptor of the socket: hyper drops its own when done (or on an error), and
    // this one keeps the socket open for the drain below.
    let spare = match socket2::SockRef::from(&stream).try_clone() {
        Ok(s) => std::net::TcpStream::from(s),
        Err(e) => {
            tracing::warn!(error = %e, "API: cannot duplicate a connection's socket");
            return;
        }
    };
    let service = service_fn(move |req| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(to_hyper(answer(handler.as_ref(), req, peer, limits.body_timeout).await)) }
    });
    match timeout(limits.connection_deadline, builder.serve_connection(TokioIo::new(stream), service)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "API connection error"),
        Err(_) => {
            tracing::debug!(%peer, "API connection too slow, closed");
            return;
        }
    }
    linger(spare).await;
}

/// Half-closes the socket and discards what the client still sends, for at most [`LINGER`]
/// and [`LINGER_BYTES`]: closing a socket with unread input resets the connection, and the
/// client could lose the answer (e.g. a 413 sent before its body was read).
async fn linger(spare: std::net::TcpStream) {
    let _ = spare.shutdown(Shutdown::Write);
    let Ok(stream) = TcpStream::from_std(spare) else { return };
    let end = Instant::now() + LINGER;
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < LINGER_BYTES {
        match timeout_at(end, stream.readable()).await {
            Ok(Ok(())) => match stream.try_read(&mut sink) {
                Ok(0) => break,
                Ok(n) => drained += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            },
            _ => break,
        }
    }
}

async fn accept_loop(listener: TcpListener, handler: Arc<dyn Handler>, limits: Limits, slots: Arc<Semaphore>) {
    let builder = builder(&limits);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => match slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    tokio::spawn(serve(stream, peer, handler.clone(), limits, builder.clone(), permit));
                }
                Err(_) => {
                    tracing::warn!(%peer, "API: too many connections, closing one");
                    drop(stream);
                }
            },
            Err(e) => {
                tracing::debug!(error = %e, "API accept error");
                // EMFILE and friends: do not spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// How the server thread stops.
#[derive(Debug)]
enum Stop {
    /// Wait for the connections in progress (at most their deadline and the drain).
    Graceful,
    /// Close everything at once.
    Now,
}

fn run(rt: tokio::runtime::Runtime, listener: std::net::TcpListener, handler: Arc<dyn Handler>, limits: Limits, stop: oneshot::Receiver<Stop>) {
    rt.block_on(async move {
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "API: cannot use the listening socket");
                return;
            }
        };
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        // The accept loop (and with it the listening socket) ends when `stop` is signalled
        // or its sender dropped.
        let how = tokio::select! {
            how = stop => how.unwrap_or(Stop::Now),
            () = accept_loop(listener, handler, limits, slots.clone()) => Stop::Now,
        };
        if let Stop::Graceful = how {
            let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
            if timeout(limits.connection_deadline + LINGER, slots.acquire_many(all)).await.is_err() {
                tracing::warn!("API: connections still open at shutdown, closing them");
            }
        }
    });
    // Dropping the runtime drops (closes) whatever connection is left.
    drop(rt);
}

/// A running server: one thread with a current-thread tokio runtime. Dropping it stops the
/// server at once and waits for the thread; [`HttpServer::shutdown`] lets the connections in
/// progress finish first.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<Stop>>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `addr` and serves in a new thread with the default [`Limits`].
    pub fn start(addr: SocketAddr, handler: Arc<dyn Handler>) -> io::Result<HttpServer> {
        HttpServer::start_with(addr, Limits::default(), handler)
    }

    /// Binds `addr` and serves in a new thread.
    pub fn start_with(addr: SocketAddr, limits: Limits, handler: Arc<dyn Handler>) -> io::Result<HttpServer> {
        let limits = Limits { max_connections: limits.max_connections.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize)), ..limits };
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build()?;
        let (tx, rx) = oneshot::channel();
        let thread = thread::Builder::new().name("farm-api".into()).spawn(move || run(rt, listener, handler, limits, rx))?;
        Ok(HttpServer { addr, stop: Some(tx), thread: Some(thread) })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets the connections in progress finish, and waits for the thread.
    pub fn shutdown(mut self) {
        self.stop_with(Stop::Graceful);
    }

    fn stop_with(&mut self, how: Stop) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(how);
        }
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("API thread panicked");
            }
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop_with(Stop::Now);
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::time::Instant as StdInstant;

    use super::*;

    #[test]
    fn responses_end_with_length_and_close_and_drop_bad_headers() {
        let r = HttpResponse::new(200, "text/plain", "OK\n")
            .with_header("X-A", "1")
            .with_header("Bad", "a\r\nb")
            .with_header("Content-Length", "99")
            .with_header("Connection", "keep-alive");
        let h = to_hyper(r);
        assert_eq!(h.status(), StatusCode::OK);
        let names: Vec<&str> = h.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-type", "x-a", "content-length", "connection"]);
        assert_eq!(h.headers()[CONTENT_LENGTH], "3");
        assert_eq!(h.headers()[CONNECTION], "close");
        assert_eq!(to_hyper(HttpResponse::new(100, "text/plain", "")).status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(to_hyper(HttpResponse::new(1000, "text/plain", "")).status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    /// Answers `<method> <path> <body length>`; `/panic` panics.
    struct Echo;

    impl Handler for Echo {
        fn handle(&self, req: &HttpRequest) -> HttpResponse {
            assert_ne!(req.path, "/panic", "asked to panic");
            let ua = req.header("user-agent").unwrap_or("-");
            HttpResponse::new(200, "text/plain", format!("{} {} {} {ua}", req.method, req.path, req.body.len()))
        }
    }

    fn start(limits: Limits) -> HttpServer {
        HttpServer::start_with("127.0.0.1:0".parse().unwrap(), limits, Arc::new(Echo)).unwrap()
    }

    fn connect(srv: &HttpServer) -> std::net::TcpStream {
        let s = std::net::TcpStream::connect(srv.local_addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    /// Everything until the server closes (a reset ends it too).
    fn read_all(s: &mut std::net::TcpStream) -> String {
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }

    fn request(srv: &HttpServer, bytes: &[u8]) -> String {
        let mut s = connect(srv);
        s.write_all(bytes).unwrap();
        read_all(&mut s)
    }

    fn body_of(resp: &str) -> &str {
        resp.split_once("\r\n\r\n").map_or("", |(_, b)| b)
    }

    #[test]
    fn serves_requests_with_query_strings_and_bodies() {
        let srv = start(Limits::default());
        let r = request(&srv, b"POST /a/b?x=1 HTTP/1.1\r\nUser-Agent: t\r\nContent-Length: 5\r\n\r\nhello");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r:?}");
        assert!(r.contains("\r\nContent-Length: 13\r\nConnection: close\r\n\r\n"), "{r:?}");
        assert!(!r.to_ascii_lowercase().contains("\r\ndate:"), "{r:?}");
        assert_eq!(body_of(&r), "POST /a/b 5 t");
        // Only the API's own thread runs: no tokio worker or blocking threads.
        let names: Vec<String> = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .collect();
        assert!(names.iter().any(|n| n.trim() == "farm-api"), "{names:?}");
        assert!(!names.iter().any(|n| n.starts_with("tokio")), "{names:?}");
    }

    #[test]
    fn a_panicking_handler_gets_500_and_the_server_goes_on() {
        let srv = start(Limits::default());
        let r = request(&srv, b"GET /panic HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 500 "), "{r:?}");
        assert!(body_of(&r).contains("internal error"), "{r:?}");
        assert!(request(&srv, b"GET /ok HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 "));
    }

    #[test]
    fn an_oversized_body_is_refused_without_100_continue() {
        let srv = start(Limits::default());
        let r = request(&srv, b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 65537\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 413 "), "{r:?}");
        assert!(body_of(&r).contains("65536"), "{r:?}");
        // The largest body passes.
        let mut req = b"POST / HTTP/1.1\r\nContent-Length: 65536\r\n\r\n".to_vec();
        req.resize(req.len() + MAX_BODY, b'x');
        let r = request(&srv, &req);
        assert_eq!(body_of(&r), "POST / 65536 -", "{r:?}");
    }

    #[test]
    fn a_slow_head_closes_the_connection_and_a_slow_body_gets_408() {
        let limits = Limits { header_timeout: Duration::from_millis(300), body_timeout: Duration::from_millis(300), ..Limits::default() };
        let srv = start(limits);
        let t = StdInstant::now();
        let r = request(&srv, b"GET / HTTP/1.1\r\nHost: x\r\n");
        assert_eq!(r, "");
        assert!(t.elapsed() >= Duration::from_millis(250) && t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        let t = StdInstant::now();
        let r = request(&srv, b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
        assert!(r.starts_with("HTTP/1.1 408 "), "{r:?}");
        assert!(t.elapsed() >= Duration::from_millis(250), "{:?}", t.elapsed());
    }

    #[test]
    fn a_connection_is_cut_off_at_its_deadline() {
        let limits = Limits { header_timeout: Duration::from_secs(10), connection_deadline: Duration::from_millis(300), ..Limits::default() };
        let srv = start(limits);
        let t = StdInstant::now();
        assert_eq!(request(&srv, b"GET / HTTP/1.1\r\n"), "");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    }

    #[test]
    fn connections_past_the_cap_are_closed_at_once() {
        let srv = start(Limits { max_connections: 2, ..Limits::default() });
        let mut held: Vec<_> = (0..2).map(|_| connect(&srv)).collect();
        for s in &mut held {
            s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        }
        // Let the server accept both before the third comes.
        std::thread::sleep(Duration::from_millis(100));
        let t = StdInstant::now();
        assert_eq!(request(&srv, b"GET / HTTP/1.1\r\n\r\n"), "");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        // The held ones are still served, and a slot is free again afterwards.
        for s in &mut held {
            s.write_all(b"\r\n").unwrap();
            assert!(read_all(s).starts_with("HTTP/1.1 200 "));
        }
        let mut ok = false;
        for _ in 0..50 {
            if request(&srv, b"GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 ") {
                ok = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(ok, "a slot never came back");
    }

    #[test]
    fn shutdown_finishes_requests_in_progress_and_drop_closes_at_once() {
        let srv = start(Limits::default());
        let addr = srv.local_addr();
        let mut s = connect(&srv);
        s.write_all(b"GET /late HTTP/1.1\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let stopper = std::thread::spawn(move || srv.shutdown());
        std::thread::sleep(Duration::from_millis(200));
        assert!(std::net::TcpStream::connect(addr).is_err(), "still accepting during shutdown");
        assert!(!stopper.is_finished(), "shutdown did not wait for the request in progress");
        s.write_all(b"\r\n").unwrap();
        assert_eq!(body_of(&read_all(&mut s)), "GET /late 0 -");
        stopper.join().unwrap();

        let srv = start(Limits::default());
        let mut s = connect(&srv);
        s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let t = StdInstant::now();
        drop(srv);
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert_eq!(read_all(&mut s), "");
    }
}
