//! A small client of the API (used by farmctl and the tests), over TCP (`http://...`, with the
//! token for commands) or over farmd's Unix socket (root only; no token needed).

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::{BucketOwner, Status};
use crate::lifecycle::Command;

/// Largest answer read.
const MAX_ANSWER: u64 = 64 << 20;

/// Errors talking to farmd.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens at the address or socket (farmd is not running, or another `--api`).
    #[error("cannot reach farmd at {base}: {message}")]
    Unreachable {
        /// The API base URL (`unix:<path>` for the Unix socket).
        base: String,
        /// Why.
        message: String,
    },
    /// Something listens but gave no complete answer in time: farmd runs but does not answer
    /// (stopped, hung, or its API flooded).
    #[error("farmd at {base} does not answer: {message}")]
    NoAnswer {
        /// The API base URL.
        base: String,
        /// Why.
        message: String,
    },
    /// The Unix socket is not for this user (only root, or farmd's own user, may use it).
    #[error("{base}: permission denied: {message}")]
    Denied {
        /// The API base URL.
        base: String,
        /// Why.
        message: String,
    },
    /// farmd answered with an error status.
    #[error("{url}: HTTP {status}: {message}")]
    Http {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
        /// The `error` of the JSON body (or the body).
        message: String,
    },
    /// The answer could not be understood.
    #[error("{url}: unexpected answer: {message}")]
    Decode {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
}

/// The API's base URL for a listen address: wildcard addresses become loopback.
pub fn base_url(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, listen.port()))
}

/// farmd's Unix socket for a configuration: `<[module] run_dir>/farmd.sock`.
pub fn socket_path(cfg: &farm_config::Config) -> PathBuf {
    cfg.module.run_dir.join(SOCKET_NAME)
}

/// The Unix socket's file name in the run directory.
pub const SOCKET_NAME: &str = "farmd.sock";

/// What a connection attempt to a Unix socket says about the process behind it.
#[derive(Debug, PartialEq, Eq)]
pub enum Probe {
    /// No socket file, or nothing listens on it (ENOENT, ECONNREFUSED): no farmd runs there.
    Absent,
    /// A listener accepted the connection (it may still not answer).
    Listening,
    /// A listener exists but its queue is full (EAGAIN): it runs and does not accept.
    Busy,
    /// This user may not connect (EACCES, EPERM).
    Denied(String),
    /// Anything else.
    Failed(String),
}

fn connect_unix(path: &Path) -> Result<UnixStream, (Probe, io::Error)> {
    let sock = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).map_err(|e| (Probe::Failed(e.to_string()), e))?;
    let addr = socket2::SockAddr::unix(path).map_err(|e| (Probe::Failed(e.to_string()), e))?;
    // Non-blocking: a full queue answers EAGAIN at once instead of blocking.
    sock.set_nonblocking(true).map_err(|e| (Probe::Failed(e.to_string()), e))?;
    match sock.connect(&addr) {
        Ok(()) => {}
        Err(e) => {
            let probe = match e.kind() {
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => Probe::Absent,
                io::ErrorKind::WouldBlock => Probe::Busy,
                io::ErrorKind::PermissionDenied => Probe::Denied(e.to_string()),
                _ => Probe::Failed(e.to_string()),
            };
            return Err((probe, e));
        }
    }
    sock.set_nonblocking(false).map_err(|e| (Probe::Failed(e.to_string()), e))?;
    Ok(sock.into())
}

/// Tries to connect to the Unix socket at `path` (and closes the connection at once).
pub fn probe_unix(path: &Path) -> Probe {
    match connect_unix(path) {
        Ok(_) => Probe::Listening,
        Err((p, _)) => p,
    }
}

#[derive(Clone, Debug)]
enum Transport {
    Tcp(ureq::Agent),
    Unix(PathBuf),
}

/// A client of one farmd.
#[derive(Clone, Debug)]
pub struct ApiClient {
    base: String,
    token: Option<String>,
    timeout: Duration,
    transport: Transport,
}

impl ApiClient {
    /// A client of `base` (e.g. `http://127.0.0.1:9010`), with the token for commands.
    pub fn new(base: &str, token: Option<String>, timeout: Duration) -> ApiClient {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent("farmctl")
            .build()
            .into();
        ApiClient { base: base.trim_end_matches('/').to_string(), token, timeout, transport: Transport::Tcp(agent) }
    }

    /// A client of farmd's Unix socket at `path` (commands need no token there).
    pub fn unix(path: &Path, timeout: Duration) -> ApiClient {
        ApiClient { base: format!("unix:{}", path.display()), token: None, timeout, transport: Transport::Unix(path.to_path_buf()) }
    }

    /// The base URL (`unix:<path>` for the Unix socket).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Over the Unix socket.
    pub fn is_unix(&self) -> bool {
        matches!(self.transport, Transport::Unix(_))
    }

    /// Sends one request; the body of a 2xx answer, else an error.
    fn request(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<String, ClientError> {
        let url = format!("{}{path}", self.base);
        let (status, body) = match &self.transport {
            Transport::Tcp(agent) => self.tcp_request(agent, &url, method, body)?,
            Transport::Unix(socket) => self.unix_request(socket, &url, method, path, body)?,
        };
        let body = String::from_utf8(body).map_err(|e| ClientError::Decode { url: url.clone(), message: e.to_string() })?;
        if !(200..300).contains(&status) {
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or_else(|| body.trim().to_string());
            return Err(ClientError::Http { url, status, message });
        }
        Ok(body)
    }

    fn tcp_request(&self, agent: &ureq::Agent, url: &str, method: &str, body: Option<&[u8]>) -> Result<(u16, Vec<u8>), ClientError> {
        let r = match body {
            Some(b) => {
                let mut req = agent.post(url).header("Content-Type", "application/json");
                if let Some(t) = &self.token {
                    req = req.header("Authorization", &format!("Bearer {t}"));
                }
                req.send(b)
            }
            None if method == "GET" => agent.get(url).call(),
            None => return Err(ClientError::Decode { url: url.to_string(), message: format!("method {method} without a body") }),
        };
        let mut resp = r.map_err(|e| self.tcp_error(url, e))?;
        let status = resp.status().as_u16();
        let body = resp.body_mut().with_config().limit(MAX_ANSWER).read_to_vec().map_err(|e| self.tcp_error(url, e))?;
        Ok((status, body))
    }

    fn tcp_error(&self, url: &str, e: ureq::Error) -> ClientError {
        let base = self.base.clone();
        let message = e.to_string();
        match e {
            ureq::Error::Io(io) => match io.kind() {
                io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound | io::ErrorKind::AddrNotAvailable => ClientError::Unreachable { base, message },
                _ => ClientError::NoAnswer { base, message },
            },
            ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => ClientError::Unreachable { base, message },
            ureq::Error::Timeout(_) => ClientError::NoAnswer { base, message },
            _ => ClientError::Decode { url: url.to_string(), message },
        }
    }

    /// One HTTP/1.1 exchange over the Unix socket (farmd answers with `Content-Length` and
    /// `Connection: close`), within the client's timeout.
    fn unix_request(&self, socket: &Path, url: &str, method: &str, path: &str, body: Option<&[u8]>) -> Result<(u16, Vec<u8>), ClientError> {
        let deadline = Instant::now() + self.timeout;
        let base = || self.base.clone();
        let mut s = connect_unix(socket).map_err(|(probe, e)| match probe {
            Probe::Absent => ClientError::Unreachable { base: base(), message: e.to_string() },
            Probe::Denied(_) => ClientError::Denied { base: base(), message: e.to_string() },
            Probe::Busy => ClientError::NoAnswer { base: base(), message: format!("its queue is full ({e})") },
            _ => ClientError::Unreachable { base: base(), message: e.to_string() },
        })?;
        let no_answer = |e: io::Error| {
            let message = if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) {
                format!("no answer within {}", humantime::format_duration(self.timeout))
            } else {
                e.to_string()
            };
            ClientError::NoAnswer { base: base(), message }
        };
        let remaining = || deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: farmd\r\nUser-Agent: farmctl\r\nConnection: close\r\n").into_bytes();
        if let Some(b) = body {
            req.extend_from_slice(format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n", b.len()).as_bytes());
            req.extend_from_slice(b);
        } else {
            req.extend_from_slice(b"\r\n");
        }
        s.set_write_timeout(Some(remaining())).map_err(no_answer)?;
        s.write_all(&req).map_err(no_answer)?;
        let mut answer = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            s.set_read_timeout(Some(remaining())).map_err(no_answer)?;
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.len() as u64 > MAX_ANSWER {
                        return Err(ClientError::Decode { url: url.to_string(), message: format!("answer larger than {MAX_ANSWER} bytes") });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(no_answer(e)),
            }
            if Instant::now() >= deadline {
                return Err(no_answer(io::ErrorKind::TimedOut.into()));
            }
        }
        if answer.is_empty() {
            return Err(ClientError::NoAnswer { base: base(), message: "connection closed without an answer".into() });
        }
        parse_answer(&answer).map_err(|message| ClientError::Decode { url: url.to_string(), message })
    }

    /// `GET <path>` as text.
    pub fn get_text(&self, path: &str) -> Result<String, ClientError> {
        self.request("GET", path, None)
    }

    fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let body = self.get_text(path)?;
        serde_json::from_str(&body).map_err(|e| ClientError::Decode { url: format!("{}{path}", self.base), message: e.to_string() })
    }

    /// `GET /api/v1/status`.
    pub fn status(&self) -> Result<Status, ClientError> {
        self.get_json("/api/v1/status")
    }

    /// `GET /api/v1/buckets/<n>`.
    pub fn bucket(&self, bucket: u32) -> Result<BucketOwner, ClientError> {
        self.get_json(&format!("/api/v1/buckets/{bucket}"))
    }

    /// `GET /metrics`.
    pub fn metrics(&self) -> Result<String, ClientError> {
        self.get_text("/metrics")
    }

    /// `POST /api/v1/<command>` with an optional reason (and the token, over TCP).
    pub fn command(&self, c: Command, reason: Option<&str>) -> Result<(), ClientError> {
        let body = serde_json::json!({ "reason": reason }).to_string();
        self.request("POST", &format!("/api/v1/{}", c.as_str()), Some(body.as_bytes())).map(|_| ())
    }

    /// `POST /api/v1/{weight,drain,undrain,reload}` with an optional reason (and the token, over
    /// TCP). Accepted means queued: the outcome shows in the status's `live`.
    pub fn admin(&self, op: super::AdminOp, reason: Option<&str>) -> Result<(), ClientError> {
        let body = match op {
            super::AdminOp::Weight(w) => serde_json::json!({ "weight": w, "reason": reason }),
            _ => serde_json::json!({ "reason": reason }),
        };
        self.request("POST", &format!("/api/v1/{}", op.as_str()), Some(body.to_string().as_bytes())).map(|_| ())
    }
}

/// Splits a complete HTTP/1.1 answer into its status and body (cut at `Content-Length`).
fn parse_answer(answer: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no complete head")?;
    let head = std::str::from_utf8(&answer[..end]).map_err(|_| "head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = match status_line.split(' ').collect::<Vec<_>>().as_slice() {
        [v, code, ..] if v.starts_with("HTTP/1.") => code.parse::<u16>().map_err(|_| format!("bad status line {status_line:?}"))?,
        _ => return Err(format!("bad status line {status_line:?}")),
    };
    let mut body = answer[end + 4..].to_vec();
    let length = lines.filter_map(|l| l.split_once(':')).find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length")).map(|(_, v)| v.trim());
    if let Some(v) = length {
        let n: usize = v.parse().map_err(|_| format!("bad Content-Length {v:?}"))?;
        if body.len() < n {
            return Err(format!("answer cut short: {} of {n} bytes", body.len()));
        }
        body.truncate(n);
    }
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listen_becomes_loopback() {
        assert_eq!(base_url("0.0.0.0:9010".parse().unwrap()), "http://127.0.0.1:9010");
        assert_eq!(base_url("[::]:9010".parse().unwrap()), "http://[::1]:9010");
        assert_eq!(base_url("10.0.0.1:80".parse().unwrap()), "http://10.0.0.1:80");
    }

    #[test]
    fn answers_are_parsed() {
        let (s, b) = parse_answer(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nOK\nextra").unwrap();
        assert_eq!((s, b.as_slice()), (200, &b"OK\n"[..]));
        assert_eq!(parse_answer(b"HTTP/1.1 404 Not Found\r\n\r\nSTOP\n").unwrap(), (404, b"STOP\n".to_vec()));
        assert!(parse_answer(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nOK").unwrap_err().contains("cut short"));
        assert!(parse_answer(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_answer(b"SSH-2.0\r\n\r\n").is_err());
    }

    #[test]
    fn probes_tell_absent_from_listening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        assert_eq!(probe_unix(&path), Probe::Absent);
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_eq!(probe_unix(&path), Probe::Listening);
        drop(l);
        // The file is left behind, nobody listens: refused.
        assert_eq!(probe_unix(&path), Probe::Absent);
    }
}
