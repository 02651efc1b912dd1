//! The API's HTTP/1.1 transport: [`hyper`] 1.x on a current-thread tokio runtime that runs in
//! one dedicated thread (no worker pool, no blocking pool: farmd stays small), on a TCP
//! listener and, optionally, on a Unix socket that only root (or farmd's own user) may use.
//!
//! Every size and time is bounded before anything is allocated or awaited:
//! - request head at most [`MAX_HEAD`] bytes and [`MAX_HEADERS`] headers (hyper answers 431),
//!   received within [`Limits::header_timeout`] of the accept (else the connection is closed);
//! - request body at most [`MAX_BODY`] bytes: a larger `Content-Length` is refused with 413
//!   before anything is read, and the body is read through [`Limited`] (413 past the limit)
//!   within [`Limits::body_timeout`] (408); chunked bodies are refused with 501;
//! - each connection cut off after [`Limits::connection_deadline`];
//! - one request per connection (`Connection: close`): there are no idle keep-alive
//!   connections.
//!
//! Floods of idle or slow (slowloris) connections must not take the health URL down, since
//! cloud load balancers decide on it. The connections are kept in a table (`conns.rs`) with two
//! limits, [`Limits::max_connections_per_address`] (an IPv6 client's address is its /64) and
//! [`Limits::max_connections`]: a new connection past a limit takes the place of the oldest
//! idle one (lingering after its answer, or still waiting for a complete request), and is
//! refused only when everything in its way is busy answering. Evicted and refused connections
//! are reset (no TIME_WAIT kept here). The accept loop is the runtime's main future, so no
//! number of connection tasks can starve it; it accepts in batches of [`ACCEPT_BATCH`] and lets
//! the new connections read their requests in between. When the process is out of file
//! descriptors it evicts an idle connection to get one back. Each connection holds two
//! descriptors (its own and a duplicate kept for the closing drain): the global limit is
//! lowered at start to what `RLIMIT_NOFILE` allows (farmd raises its soft limit to the hard one
//! first).
//!
//! Why not `tiny_http`: its 0.12 release (the latest) drains an unread request body by
//! allocating a buffer of the declared `Content-Length`, so one unauthenticated request with
//! `Content-Length: 99999999999` aborts the whole daemon (tiny-http/tiny-http#290).
//!
//! Requests are handed to a synchronous [`Handler`] as an [`HttpRequest`]; its
//! [`HttpResponse`] is sent with `Content-Length` and `Connection: close` as the last headers.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
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
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::oneshot;
use tokio::time::{sleep_until, timeout, Instant};

use super::conns::{ConnState, ConnTable, Phase, Slot, TableLimits};
use super::linger::{Stream, LINGER};
use super::listen::{accept_loop, bind_tcp, bind_unix, Acceptor, UnixSocketFile};

/// Largest request head (request line and headers).
pub const MAX_HEAD: usize = 16 * 1024;
/// Most headers in a request.
pub const MAX_HEADERS: usize = 48;
/// Largest request body.
pub const MAX_BODY: usize = 64 * 1024;
/// Time limit for receiving the request head, from the accept (`[api] header_timeout`).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// Time limit for receiving the request body (answered with 408).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// Time limit of a whole connection, answer included (then it is closed).
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(15);
/// TCP connections at once (`[api] max_connections`).
pub const MAX_CONNECTIONS: usize = 1024;
/// TCP connections at once from one client address (`[api] max_connections_per_address`).
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 16;
/// Connections at once over the Unix socket.
pub const MAX_UNIX_CONNECTIONS: usize = 16;
/// The TCP listener's backlog (the kernel caps it at `net.core.somaxconn`).
pub const LISTEN_BACKLOG: i32 = 1024;
/// Connections accepted before the new connections' tasks get to run.
pub const ACCEPT_BATCH: usize = 16;
/// File descriptors kept for the rest of farmd when the connection limit is fitted to
/// `RLIMIT_NOFILE`.
const FD_RESERVE: u64 = 256;

/// The server's time and connection limits (sizes are the constants [`MAX_HEAD`],
/// [`MAX_HEADERS`] and [`MAX_BODY`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Time limit for receiving the request head, from the accept (then the connection is
    /// closed).
    pub header_timeout: Duration,
    /// Time limit for receiving the request body (then 408).
    pub body_timeout: Duration,
    /// Time limit of a whole connection, answer included.
    pub connection_deadline: Duration,
    /// TCP connections at once (at least 1; past it the oldest idle one is evicted).
    pub max_connections: usize,
    /// TCP connections at once from one client address (at least 1; past it the oldest idle
    /// one of that address is evicted).
    pub max_connections_per_address: usize,
}

impl Default for Limits {
    /// [`HEADER_TIMEOUT`], [`BODY_TIMEOUT`], [`CONNECTION_DEADLINE`], [`MAX_CONNECTIONS`],
    /// [`MAX_CONNECTIONS_PER_ADDRESS`].
    fn default() -> Limits {
        Limits {
            header_timeout: HEADER_TIMEOUT,
            body_timeout: BODY_TIMEOUT,
            connection_deadline: CONNECTION_DEADLINE,
            max_connections: MAX_CONNECTIONS,
            max_connections_per_address: MAX_CONNECTIONS_PER_ADDRESS,
        }
    }
}

impl Limits {
    /// From the `[api]` section of the configuration (the other times are the defaults).
    pub fn from_config(api: &farm_config::Api) -> Limits {
        Limits {
            header_timeout: api.header_timeout,
            max_connections: api.max_connections.get() as usize,
            max_connections_per_address: api.max_connections_per_address.get() as usize,
            ..Limits::default()
        }
    }

    /// The connection limit lowered so that two descriptors per connection, the Unix
    /// socket's connections and a reserve fit under the soft `RLIMIT_NOFILE`.
    fn fitted_to_fd_limit(self) -> Limits {
        use nix::sys::resource::{getrlimit, Resource};
        let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NOFILE) else { return self };
        let room = (soft.saturating_sub(FD_RESERVE) / 2).saturating_sub(MAX_UNIX_CONNECTIONS as u64).max(1);
        let room = usize::try_from(room).unwrap_or(usize::MAX);
        if self.max_connections <= room {
            return self;
        }
        tracing::warn!(
            max_connections = self.max_connections,
            fd_soft_limit = soft,
            lowered_to = room,
            "API: [api] max_connections does not fit the file descriptor limit (2 per connection); raise LimitNOFILE"
        );
        Limits { max_connections: room, ..self }
    }
}
/// hyper's connection buffer (it must hold a whole request head).
const MAX_BUF: usize = 2 * MAX_HEAD;

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
    /// The client (`None` over the Unix socket).
    pub peer: Option<SocketAddr>,
    /// Came over the Unix socket, whose peers are root or farmd's own user (checked with
    /// `SO_PEERCRED` at accept).
    pub unix: bool,
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

/// Where a connection comes from, for the request.
#[derive(Clone, Copy, Debug)]
pub(super) struct Client {
    pub(super) peer: Option<SocketAddr>,
    pub(super) unix: bool,
}

/// Reads the request (body within its limits) and asks the handler.
async fn answer(handler: &dyn Handler, req: Request<Incoming>, client: Client, body_timeout: Duration, state: &ConnState) -> HttpResponse {
    state.set_phase(Phase::Body);
    let (parts, body) = req.into_parts();
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).trim().to_string()))
        .collect();
    let mut req = HttpRequest {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        headers,
        body: Vec::new(),
        peer: client.peer,
        unix: client.unix,
    };
    // Nothing more is read from here on: the connection is busy answering.
    let refuse = |code, msg: &str| {
        state.set_phase(Phase::Answering);
        json_error(code, msg)
    };
    if parts.headers.contains_key(TRANSFER_ENCODING) {
        return refuse(501, "chunked request bodies are not supported; send Content-Length");
    }
    // hyper has checked Content-Length; the body's size hint is that length.
    if body.size_hint().lower() > MAX_BODY as u64 {
        return refuse(413, &format!("body larger than {MAX_BODY} bytes"));
    }
    match timeout(body_timeout, Limited::new(body, MAX_BODY).collect()).await {
        Err(_) => return refuse(408, "request too slow"),
        Ok(Err(e)) if e.is::<LengthLimitError>() => return refuse(413, &format!("body larger than {MAX_BODY} bytes")),
        Ok(Err(e)) => return refuse(400, &format!("cannot read the body: {e}")),
        Ok(Ok(collected)) => req.body = collected.to_bytes().to_vec(),
    }
    state.set_phase(Phase::Answering);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler.handle(&req))).unwrap_or_else(|_| json_error(500, "internal error"))
}

pub(super) fn builder(limits: &Limits) -> http1::Builder {
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

/// Completes when the header timeout has passed and the head is still not in.
async fn head_overdue(state: &ConnState, deadline: Instant) {
    sleep_until(deadline).await;
    if state.phase() != Phase::Head {
        std::future::pending::<()>().await;
    }
}

/// How a connection's exchange ended.
enum End {
    Answered,
    Failed(hyper::Error),
    TooSlow,
    HeadTooSlow,
    Evicted,
}

/// Serves one connection (holding its `slot` in the table until it ends), then closes it
/// politely, or at once with a reset when it is evicted.
pub(super) async fn serve<S: Stream>(stream: S, client: Client, handler: Arc<dyn Handler>, limits: Limits, builder: http1::Builder, slot: Slot, accepted: Instant) {
    let spare = match stream.spare() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "API: cannot duplicate a connection's socket");
            return;
        }
    };
    let state = slot.state.clone();
    let service_state = state.clone();
    let service = service_fn(move |req| {
        let handler = handler.clone();
        let state = service_state.clone();
        async move { Ok::<_, Infallible>(to_hyper(answer(handler.as_ref(), req, client, limits.body_timeout, &state).await)) }
    });
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let end = tokio::select! {
        r = timeout(limits.connection_deadline, conn) => match r {
            Ok(Ok(())) => End::Answered,
            Ok(Err(e)) => End::Failed(e),
            Err(_) => End::TooSlow,
        },
        () = head_overdue(&state, accepted + limits.header_timeout) => End::HeadTooSlow,
        () = state.evicted() => End::Evicted,
    };
    let peer = client.peer;
    match end {
        End::Answered => {}
        // e.g. a malformed head, answered with 400 by hyper: still let the client read it.
        End::Failed(e) => tracing::debug!(?peer, error = %e, "API connection error"),
        End::TooSlow | End::HeadTooSlow => {
            tracing::debug!(?peer, "API connection too slow, closed");
            return;
        }
        End::Evicted => {
            tracing::debug!(?peer, "API connection evicted for a new one");
            spare.reset();
            return;
        }
    }
    state.set_phase(Phase::Closing);
    tokio::select! {
        () = spare.linger() => {}
        () = state.evicted() => {}
    }
    drop(slot);
}

/// How the server thread stops.
#[derive(Debug)]
enum Stop {
    /// Wait for the connections in progress (at most their deadline and the drain).
    Graceful,
    /// Close everything at once.
    Now,
}

/// The listening sockets, bound in the caller's thread.
struct Listeners {
    tcp: std::net::TcpListener,
    unix: Option<(std::os::unix::net::UnixListener, UnixSocketFile)>,
}

fn run(rt: tokio::runtime::Runtime, listeners: Listeners, handler: Arc<dyn Handler>, limits: Limits, stop: oneshot::Receiver<Stop>) {
    let (unix, socket_file) = match listeners.unix {
        Some((l, f)) => (Some(l), Some(f)),
        None => (None, None),
    };
    rt.block_on(async move {
        let tcp = match TcpListener::from_std(listeners.tcp) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "API: cannot use the listening socket");
                return;
            }
        };
        let unix = match unix.map(UnixListener::from_std).transpose() {
            Ok(u) => u,
            Err(e) => {
                tracing::error!(error = %e, "API: cannot use the Unix socket");
                return;
            }
        };
        let table = ConnTable::new(TableLimits {
            global: limits.max_connections,
            per_address: limits.max_connections_per_address,
            unix: MAX_UNIX_CONNECTIONS,
        });
        let acceptor = Acceptor { handler, limits, builder: builder(&limits), table: table.clone(), own_uid: nix::unistd::geteuid().as_raw() };
        // The accept loop (and with it the listening sockets) ends when `stop` is signalled
        // or its sender dropped.
        let how = tokio::select! {
            how = stop => how.unwrap_or(Stop::Now),
            () = accept_loop(tcp, unix, acceptor) => Stop::Now,
        };
        if let Stop::Graceful = how {
            let end = Instant::now() + limits.connection_deadline + LINGER;
            while table.len() > 0 && Instant::now() < end {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if table.len() > 0 {
                tracing::warn!("API: connections still open at shutdown, closing them");
            }
        }
        let s = table.stats();
        tracing::debug!(admitted = s.admitted, evicted = s.evicted, refused = s.refused, "API stopped");
    });
    // Dropping the runtime drops (closes) whatever connection is left.
    drop(rt);
    drop(socket_file);
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
        HttpServer::start_on(addr, None, limits, handler)
    }

    /// Binds `addr` and, if given, the Unix socket `unix` (mode 0600; a stale socket file is
    /// replaced, a live one is `AddrInUse`), and serves both in a new thread.
    pub fn start_on(addr: SocketAddr, unix: Option<&Path>, limits: Limits, handler: Arc<dyn Handler>) -> io::Result<HttpServer> {
        let limits = Limits { max_connections_per_address: limits.max_connections_per_address.max(1), max_connections: limits.max_connections.max(1), ..limits }
            .fitted_to_fd_limit();
        let tcp = bind_tcp(addr)?;
        let addr = tcp.local_addr()?;
        let unix = unix.map(bind_unix).transpose()?;
        let listeners = Listeners { tcp, unix };
        let rt = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build()?;
        let (tx, rx) = oneshot::channel();
        let thread = thread::Builder::new().name("farm-api".into()).spawn(move || run(rt, listeners, handler, limits, rx))?;
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
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
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

    fn connect_from(srv: &HttpServer, src: [u8; 4]) -> std::net::TcpStream {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.bind(&SocketAddr::from((src, 0)).into()).unwrap();
        s.connect(&srv.local_addr().into()).unwrap();
        let s: std::net::TcpStream = s.into();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    /// Opens `n` connections from `src` that send half a head, and lets the server take them.
    fn idle(srv: &HttpServer, src: [u8; 4], n: usize) -> Vec<std::net::TcpStream> {
        let held: Vec<_> = (0..n)
            .map(|_| {
                let mut s = connect_from(srv, src);
                s.write_all(b"GET /held HTTP/1.1\r\n").unwrap();
                s
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        held
    }

    fn finish(s: &mut std::net::TcpStream) -> String {
        let _ = s.write_all(b"\r\n");
        read_all(s)
    }

    #[test]
    fn past_the_global_cap_the_oldest_idle_connection_gives_way() {
        let srv = start(Limits { max_connections: 2, ..Limits::default() });
        let mut held = idle(&srv, [127, 0, 0, 1], 2);
        // A new connection is served at once; the oldest idle one was reset for it.
        let t = StdInstant::now();
        assert_eq!(body_of(&request(&srv, b"GET /new HTTP/1.1\r\n\r\n")), "GET /new 0 -");
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert_eq!(finish(&mut held[0]), "");
        assert_eq!(body_of(&finish(&mut held[1])), "GET /held 0 -");
    }

    #[test]
    fn the_per_address_cap_evicts_only_that_address() {
        let srv = start(Limits { max_connections_per_address: 2, ..Limits::default() });
        let mut others = idle(&srv, [127, 0, 0, 2], 2);
        let mut mine = idle(&srv, [127, 0, 0, 3], 2);
        // Requests from a third address: served, nobody evicted.
        for _ in 0..5 {
            let mut s = connect_from(&srv, [127, 0, 0, 4]);
            s.write_all(b"GET /x HTTP/1.1\r\n\r\n").unwrap();
            assert_eq!(body_of(&read_all(&mut s)), "GET /x 0 -");
        }
        // A third from 127.0.0.3 evicts its oldest; 127.0.0.2 keeps both.
        let mut third = idle(&srv, [127, 0, 0, 3], 1);
        assert_eq!(finish(&mut mine[0]), "");
        for s in mine.iter_mut().skip(1).chain(third.iter_mut()).chain(others.iter_mut()) {
            assert_eq!(body_of(&finish(s)), "GET /held 0 -");
        }
    }

    #[test]
    fn a_silent_connection_is_closed_at_the_header_timeout() {
        let srv = start(Limits { header_timeout: Duration::from_millis(300), ..Limits::default() });
        let mut s = connect(&srv);
        let t = StdInstant::now();
        assert_eq!(read_all(&mut s), "");
        assert!(t.elapsed() >= Duration::from_millis(250) && t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }

    #[test]
    fn the_unix_socket_is_private_and_says_so_in_the_request() {
        struct Where;
        impl Handler for Where {
            fn handle(&self, req: &HttpRequest) -> HttpResponse {
                HttpResponse::new(200, "text/plain", format!("unix={} peer={:?}", req.unix, req.peer.is_some()))
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/farmd.sock");
        let srv = HttpServer::start_on("127.0.0.1:0".parse().unwrap(), Some(&path), Limits::default(), Arc::new(Where)).unwrap();
        let m = std::fs::symlink_metadata(&path).unwrap();
        assert!(m.file_type().is_socket());
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        let mut u = std::os::unix::net::UnixStream::connect(&path).unwrap();
        u.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut answer = String::new();
        let _ = u.read_to_string(&mut answer);
        assert_eq!(body_of(&answer), "unix=true peer=false");
        assert_eq!(body_of(&request(&srv, b"GET / HTTP/1.1\r\n\r\n")), "unix=false peer=true");
        // A second server on the same socket is refused while the first runs.
        let again = HttpServer::start_on("127.0.0.1:0".parse().unwrap(), Some(&path), Limits::default(), Arc::new(Where));
        assert_eq!(again.unwrap_err().kind(), io::ErrorKind::AddrInUse);
        // Stopping removes the socket file; a stale file (nobody listening) is replaced.
        drop(srv);
        assert!(!path.exists());
        let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(stale);
        let srv = HttpServer::start_on("127.0.0.1:0".parse().unwrap(), Some(&path), Limits::default(), Arc::new(Where)).unwrap();
        assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
        drop(srv);
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
