//! The HTTP server: `tiny_http` with a few worker threads. Every request is answered; a bad
//! request gets a 4xx JSON error, never a panic.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam::channel::Sender;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tiny_http::{Header, Method, Request, Response, Server};

use super::{metrics, SharedStatus};
use crate::lifecycle::{Command, State};

/// Largest request body accepted.
pub const MAX_BODY: u64 = 64 * 1024;

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {message}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        message: String,
    },
    /// A worker thread could not be created.
    #[error("cannot start the API threads: {0}")]
    Thread(#[source] std::io::Error),
}

/// How the server is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiSettings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Module name (in the health URL).
    pub module: String,
    /// Bearer token for POST; `None` refuses every POST with 403.
    pub token: Option<String>,
    /// Worker threads (at least 1).
    pub workers: usize,
}

impl ApiSettings {
    /// From the configuration (reads `[api] token_file`, which must be mode 0600).
    pub fn from_config(cfg: &farm_config::Config) -> Result<ApiSettings, farm_config::ConfigError> {
        Ok(ApiSettings { listen: cfg.api.listen, module: cfg.module.name.to_string(), token: cfg.read_token()?, workers: 2 })
    }
}

/// A command received by the API, for farmd's loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandRequest {
    /// The command.
    pub command: Command,
    /// The optional `reason` of the body.
    pub reason: Option<String>,
    /// The client.
    pub from: Option<SocketAddr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    reason: Option<String>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

#[derive(Serialize)]
struct Accepted<'a> {
    accepted: &'a str,
}

/// The running server.
#[derive(Debug)]
pub struct ApiServer {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    addr: SocketAddr,
}

struct Ctx {
    settings: ApiSettings,
    status: SharedStatus,
    commands: Sender<CommandRequest>,
}

type Resp = Response<std::io::Cursor<Vec<u8>>>;

fn header(name: &str, value: &str) -> Header {
    // Only called with ASCII constants and generated values.
    Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap_or_else(|_| Header::from_bytes(&b"X-Invalid"[..], &b"1"[..]).expect("valid header"))
}

fn json<T: Serialize>(code: u16, body: &T) -> Resp {
    let text = serde_json::to_vec(body).unwrap_or_else(|_| b"{\"error\":\"serialization\"}".to_vec());
    Response::from_data(text).with_status_code(code).with_header(header("Content-Type", "application/json"))
}

fn error(code: u16, msg: &str) -> Resp {
    json(code, &ErrorBody { error: msg })
}

fn text(code: u16, content_type: &str, body: String) -> Resp {
    Response::from_data(body.into_bytes()).with_status_code(code).with_header(header("Content-Type", content_type))
}

fn not_allowed(allow: &str) -> Resp {
    error(405, &format!("method not allowed; allowed: {allow}")).with_header(header("Allow", allow))
}

impl ApiServer {
    /// Binds and starts the worker threads.
    pub fn start(settings: ApiSettings, status: SharedStatus, commands: Sender<CommandRequest>) -> Result<ApiServer, ApiError> {
        let server = Server::http(settings.listen)
            .map_err(|e| ApiError::Listen { addr: settings.listen, message: e.to_string() })?;
        let addr = server.server_addr().to_ip().unwrap_or(settings.listen);
        let server = Arc::new(server);
        let stop = Arc::new(AtomicBool::new(false));
        let workers = settings.workers.max(1);
        let ctx = Arc::new(Ctx { settings, status, commands });
        let mut threads = Vec::with_capacity(workers);
        for i in 0..workers {
            let (server, stop, ctx) = (server.clone(), stop.clone(), ctx.clone());
            let h = thread::Builder::new()
                .name(format!("farm-api-{i}"))
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        match server.recv_timeout(Duration::from_millis(200)) {
                            Ok(Some(req)) => ctx.serve(req),
                            Ok(None) => {}
                            Err(e) => tracing::debug!(error = %e, "API accept error"),
                        }
                    }
                })
                .map_err(ApiError::Thread)?;
            threads.push(h);
        }
        tracing::info!(%addr, "API listening");
        Ok(ApiServer { stop, threads, addr })
    }

    /// The bound address (with the actual port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the workers and waits for them (at most ~200 ms plus a request in progress).
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Ctx {
    fn serve(&self, mut req: Request) {
        let resp = self.route(&mut req);
        if let Err(e) = req.respond(resp) {
            tracing::debug!(error = %e, "API: cannot send the response");
        }
    }

    fn route(&self, req: &mut Request) -> Resp {
        let url = req.url().to_string();
        let path = url.split(['?', '#']).next().unwrap_or("");
        let method = req.method().clone();
        let get = matches!(method, Method::Get | Method::Head);
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match segs.as_slice() {
            ["var", "modules", module, "ready.txt"] => {
                if !get {
                    return not_allowed("GET, HEAD");
                }
                if *module != self.settings.module {
                    return error(404, &format!("no module {module:?} here"));
                }
                let state = self.state();
                if state == State::Up {
                    text(200, "text/plain", "OK\n".into())
                } else {
                    text(404, "text/plain", format!("{state}\n"))
                }
            }
            ["api", "v1", "status"] => {
                if !get {
                    return not_allowed("GET, HEAD");
                }
                let st = self.status.read().unwrap_or_else(|p| p.into_inner());
                json(200, &*st)
            }
            ["api", "v1", "buckets", n] => {
                if !get {
                    return not_allowed("GET, HEAD");
                }
                let Ok(bucket) = n.parse::<u32>() else {
                    return error(400, &format!("expected a bucket number, got {n:?}"));
                };
                let st = self.status.read().unwrap_or_else(|p| p.into_inner());
                match st.bucket_owner(bucket) {
                    Some(owner) => json(200, &owner),
                    None if st.table.is_empty() => error(503, "no table published yet"),
                    None => error(404, &format!("bucket {bucket} out of range 0..{}", st.table.len())),
                }
            }
            ["metrics"] => {
                if !get {
                    return not_allowed("GET, HEAD");
                }
                let st = self.status.read().unwrap_or_else(|p| p.into_inner());
                text(200, metrics::CONTENT_TYPE, metrics::render(&st))
            }
            ["api", "v1", cmd @ ("start" | "stop" | "restart")] => {
                if method != Method::Post {
                    return not_allowed("POST");
                }
                let command = match *cmd {
                    "start" => Command::Start,
                    "stop" => Command::Stop,
                    _ => Command::Restart,
                };
                self.command(req, command)
            }
            _ => error(404, &format!("no such path: {path}")),
        }
    }

    fn state(&self) -> State {
        self.status.read().unwrap_or_else(|p| p.into_inner()).state
    }

    fn authorized(&self, req: &Request) -> Result<(), Resp> {
        let Some(token) = &self.settings.token else {
            return Err(error(403, "commands are disabled: set [api] token_file"));
        };
        let given = req
            .headers()
            .iter()
            .find(|h| h.field.equiv("Authorization"))
            .and_then(|h| h.value.as_str().strip_prefix("Bearer "))
            .map(str::trim);
        let unauthorized = |msg| Err(error(401, msg).with_header(header("WWW-Authenticate", "Bearer")));
        match given {
            None => unauthorized("missing Authorization: Bearer <token>"),
            Some(g) if bool::from(g.as_bytes().ct_eq(token.as_bytes())) => Ok(()),
            Some(_) => unauthorized("wrong token"),
        }
    }

    fn command(&self, req: &mut Request, command: Command) -> Resp {
        if let Err(r) = self.authorized(req) {
            return r;
        }
        let mut body = Vec::new();
        if let Err(e) = req.as_reader().take(MAX_BODY + 1).read_to_end(&mut body) {
            return error(400, &format!("cannot read the body: {e}"));
        }
        if body.len() as u64 > MAX_BODY {
            return error(413, &format!("body larger than {MAX_BODY} bytes"));
        }
        let reason = if body.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            match serde_json::from_slice::<CommandBody>(&body) {
                Ok(b) => b.reason,
                Err(e) => return error(400, &format!("expected a JSON body like {{\"reason\": \"...\"}}: {e}")),
            }
        };
        let from = req.remote_addr().copied();
        match self.commands.send(CommandRequest { command, reason, from }) {
            Ok(()) => json(202, &Accepted { accepted: command.as_str() }),
            Err(_) => error(503, "farmd is shutting down"),
        }
    }
}
