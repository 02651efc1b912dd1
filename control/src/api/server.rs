//! The API's routes over the bounded HTTP transport of [`super::http`]. Every request is
//! answered; a bad request gets a 4xx JSON error, never a panic.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crossbeam::channel::{Sender, TrySendError};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::http::{HttpRequest, HttpResponse, HttpServer, Limits};
use super::{metrics, SharedStatus};
use crate::lifecycle::{Command, State};

pub use super::http::MAX_BODY;

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
}

fn listen_error(settings: &ApiSettings, e: &std::io::Error) -> ApiError {
    let message = match &settings.unix_socket {
        Some(p) => format!("{e} (TCP, or the Unix socket {})", p.display()),
        None => e.to_string(),
    };
    ApiError::Listen { addr: settings.listen, message }
}

/// How the server is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiSettings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Module name (in the health URL).
    pub module: String,
    /// Bearer token for POST over TCP; `None` refuses every POST over TCP with 403.
    pub token: Option<String>,
    /// The Unix socket (mode 0600, root or farmd's user only) where POST needs no token;
    /// `None`: no Unix socket.
    pub unix_socket: Option<PathBuf>,
    /// Times and connection limits.
    pub limits: Limits,
    /// `[module] log_dir`, whose module and application logs the console shows
    /// (`GET /api/v1/logs/...`); `None`: not served (404).
    pub log_dir: Option<PathBuf>,
}

impl ApiSettings {
    /// TCP only, default limits.
    pub fn new(listen: SocketAddr, module: &str, token: Option<String>) -> ApiSettings {
        ApiSettings { listen, module: module.to_string(), token, unix_socket: None, limits: Limits::default(), log_dir: None }
    }

    /// From the configuration (reads `[api] token_file`, which must be mode 0600); the Unix
    /// socket is [`super::client::socket_path`].
    pub fn from_config(cfg: &farm_config::Config) -> Result<ApiSettings, farm_config::ConfigError> {
        Ok(ApiSettings {
            listen: cfg.api.listen,
            module: cfg.module.name.to_string(),
            token: cfg.read_token()?,
            unix_socket: Some(super::client::socket_path(cfg)),
            limits: Limits::from_config(&cfg.api),
            log_dir: Some(cfg.module.log_dir.clone()),
        })
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

/// A live change asked through the API (`farmctl weight`, `drain`, `undrain`, `reload`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminOp {
    /// Set this node's weight (0..=[`MAX_WEIGHT`]; 0 drains) until the file changes it.
    Weight(u16),
    /// Weight 0: new connections go to the other nodes, held ones finish here; the node
    /// stays UP (NLB's drainstop).
    Drain,
    /// Back to the configuration file's weight.
    Undrain,
    /// Re-read, check and apply the configuration file (as SIGHUP does).
    Reload,
}

impl AdminOp {
    /// The endpoint's name.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminOp::Weight(_) => "weight",
            AdminOp::Drain => "drain",
            AdminOp::Undrain => "undrain",
            AdminOp::Reload => "reload",
        }
    }
}

/// The largest weight (as in the configuration file).
pub const MAX_WEIGHT: u16 = 1000;

/// A live change received by the API, for farmd's loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminRequest {
    /// The change.
    pub op: AdminOp,
    /// The optional `reason` of the body.
    pub reason: Option<String>,
    /// The client (`None`: the Unix socket).
    pub from: Option<SocketAddr>,
}

/// Where the API sends [`AdminRequest`]s, and how it wakes farmd's loop after each.
#[derive(Clone)]
pub struct AdminSink {
    /// The channel (farmd's loop reads it).
    pub tx: Sender<AdminRequest>,
    /// Wakes the loop.
    pub wake: Arc<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for AdminSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSink").finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WeightBody {
    weight: i64,
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
    http: HttpServer,
}

/// Answers the API's requests; usable without sockets (see [`Routes::route`]).
#[derive(Debug)]
pub struct Routes {
    settings: ApiSettings,
    status: SharedStatus,
    commands: Sender<CommandRequest>,
    admin: Option<AdminSink>,
}

pub(super) fn json<T: Serialize>(code: u16, body: &T) -> HttpResponse {
    let text = serde_json::to_vec(body).unwrap_or_else(|_| b"{\"error\":\"serialization\"}".to_vec());
    HttpResponse::new(code, "application/json", text)
}

pub(super) fn error(code: u16, msg: &str) -> HttpResponse {
    json(code, &ErrorBody { error: msg })
}

pub(super) fn not_allowed(allow: &str) -> HttpResponse {
    error(405, &format!("method not allowed; allowed: {allow}")).with_header("Allow", allow)
}

impl ApiServer {
    /// Binds and starts the server thread. Dropping the server stops it at once.
    pub fn start(settings: ApiSettings, status: SharedStatus, commands: Sender<CommandRequest>) -> Result<ApiServer, ApiError> {
        ApiServer::start_with_admin(settings, status, commands, None)
    }

    /// [`ApiServer::start`] that also takes live changes (`weight`, `drain`, `undrain`,
    /// `reload`) and sends them to `admin` (without it they are answered 503).
    pub fn start_with_admin(
        settings: ApiSettings,
        status: SharedStatus,
        commands: Sender<CommandRequest>,
        admin: Option<AdminSink>,
    ) -> Result<ApiServer, ApiError> {
        let (listen, unix, limits) = (settings.listen, settings.unix_socket.clone(), settings.limits);
        let err = settings.clone();
        let routes = Arc::new(Routes { settings, status, commands, admin });
        let http = HttpServer::start_on(listen, unix.as_deref(), limits, routes).map_err(|e| listen_error(&err, &e))?;
        tracing::info!(addr = %http.local_addr(), unix = ?unix, "API listening");
        Ok(ApiServer { http })
    }

    /// The bound address (with the actual port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.http.local_addr()
    }

    /// Stops accepting connections, waits for the requests in progress, and stops the thread.
    pub fn shutdown(self) {
        self.http.shutdown();
    }
}

impl super::http::Handler for Routes {
    fn handle(&self, req: &HttpRequest) -> HttpResponse {
        self.route(req)
    }
}

impl Routes {
    /// Routes without a server (for tests and embedding).
    pub fn new(settings: ApiSettings, status: SharedStatus, commands: Sender<CommandRequest>) -> Routes {
        Routes { settings, status, commands, admin: None }
    }

    /// Also takes live changes, sent to `admin`.
    pub fn with_admin(mut self, admin: AdminSink) -> Routes {
        self.admin = Some(admin);
        self
    }

    /// Answers one request. Every answer says `X-Content-Type-Options: nosniff`.
    pub fn route(&self, req: &HttpRequest) -> HttpResponse {
        let resp = self.answer(req);
        if resp.headers.iter().any(|(k, _)| k == "X-Content-Type-Options") {
            resp
        } else {
            resp.with_header("X-Content-Type-Options", "nosniff")
        }
    }

    fn answer(&self, req: &HttpRequest) -> HttpResponse {
        let path = req.path.as_str();
        let get = matches!(req.method.as_str(), "GET" | "HEAD");
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if let Some(resp) = super::console::route(req, &segs, &self.status, self.settings.log_dir.as_deref(), |r| self.authorized(r)) {
            return resp;
        }
        match segs.as_slice() {
            ["var", "modules", module, "ready.txt"] => {
                if !get {
                    return not_allowed("GET, HEAD");
                }
                if *module != self.settings.module {
                    return error(404, &format!("no module {module:?} here"));
                }
                let (state, drained) = self.state_drained();
                if state == State::Up && drained {
                    // New connections must go elsewhere (a cloud load balancer's view of drain).
                    HttpResponse::new(404, "text/plain", "UP (drained: weight 0)\n")
                } else if state == State::Up {
                    HttpResponse::new(200, "text/plain", "OK\n")
                } else {
                    HttpResponse::new(404, "text/plain", format!("{state}\n"))
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
                HttpResponse::new(200, metrics::CONTENT_TYPE, metrics::render(&st))
            }
            ["api", "v1", cmd @ ("start" | "stop" | "restart")] => {
                if req.method != "POST" {
                    return not_allowed("POST");
                }
                let command = match *cmd {
                    "start" => Command::Start,
                    "stop" => Command::Stop,
                    _ => Command::Restart,
                };
                self.command(req, command)
            }
            ["api", "v1", op @ ("weight" | "drain" | "undrain" | "reload")] => {
                if req.method != "POST" {
                    return not_allowed("POST");
                }
                self.admin(req, op)
            }
            _ => error(404, &format!("no such path: {path}")),
        }
    }

    /// The state, and whether this node runs with weight 0 (drained).
    fn state_drained(&self) -> (State, bool) {
        let st = self.status.read().unwrap_or_else(|p| p.into_inner());
        (st.state, st.live.as_ref().is_some_and(|l| l.weight == 0))
    }

    /// `POST /api/v1/{weight,drain,undrain,reload}`.
    fn admin(&self, req: &HttpRequest, op: &str) -> HttpResponse {
        if let Err(r) = self.authorized(req) {
            return r;
        }
        let Some(sink) = &self.admin else {
            return error(503, "live changes are not available here");
        };
        let (op, reason) = if op == "weight" {
            match serde_json::from_slice::<WeightBody>(&req.body) {
                Ok(b) => match u16::try_from(b.weight) {
                    Ok(w) if w <= MAX_WEIGHT => (AdminOp::Weight(w), b.reason),
                    _ => return error(400, &format!("expected a weight between 0 and {MAX_WEIGHT}, got {}", b.weight)),
                },
                Err(e) => return error(400, &format!("expected a JSON body like {{\"weight\": 3, \"reason\": \"...\"}}: {e}")),
            }
        } else {
            let op = match op {
                "drain" => AdminOp::Drain,
                "undrain" => AdminOp::Undrain,
                _ => AdminOp::Reload,
            };
            match self.reason(req) {
                Ok(r) => (op, r),
                Err(r) => return r,
            }
        };
        match sink.tx.try_send(AdminRequest { op, reason, from: req.peer }) {
            Ok(()) => {
                (sink.wake)();
                json(202, &Accepted { accepted: op.as_str() })
            }
            Err(TrySendError::Full(_)) => error(503, "too many commands queued; try again"),
            Err(TrySendError::Disconnected(_)) => error(503, "farmd is shutting down"),
        }
    }

    /// The optional `{"reason": "..."}` body.
    fn reason(&self, req: &HttpRequest) -> Result<Option<String>, HttpResponse> {
        if req.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice::<CommandBody>(&req.body)
            .map(|b| b.reason)
            .map_err(|e| error(400, &format!("expected a JSON body like {{\"reason\": \"...\"}}: {e}")))
    }

    fn authorized(&self, req: &HttpRequest) -> Result<(), HttpResponse> {
        // Only root (or farmd's own user) can connect to the Unix socket.
        if req.unix {
            return Ok(());
        }
        let Some(token) = &self.settings.token else {
            return Err(error(403, "commands are disabled: set [api] token_file"));
        };
        let given = req.header("Authorization").and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
        let unauthorized = |msg| Err(error(401, msg).with_header("WWW-Authenticate", "Bearer"));
        match given {
            None => unauthorized("missing Authorization: Bearer <token>"),
            Some(g) if bool::from(g.as_bytes().ct_eq(token.as_bytes())) => Ok(()),
            Some(_) => unauthorized("wrong token"),
        }
    }

    fn command(&self, req: &HttpRequest, command: Command) -> HttpResponse {
        if let Err(r) = self.authorized(req) {
            return r;
        }
        let reason = if req.body.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            match serde_json::from_slice::<CommandBody>(&req.body) {
                Ok(b) => b.reason,
                Err(e) => return error(400, &format!("expected a JSON body like {{\"reason\": \"...\"}}: {e}")),
            }
        };
        // Never block the API's thread on a full channel.
        match self.commands.try_send(CommandRequest { command, reason, from: req.peer }) {
            Ok(()) => json(202, &Accepted { accepted: command.as_str() }),
            Err(TrySendError::Full(_)) => error(503, "too many commands queued; try again"),
            Err(TrySendError::Disconnected(_)) => error(503, "farmd is shutting down"),
        }
    }
}
