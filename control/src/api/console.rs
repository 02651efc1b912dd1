//! The web console: one HTML page, a style sheet and a script, embedded in the binary and
//! served on the API listener (`GET /`), plus the two read-only JSON documents it needs beyond
//! `/api/v1/status`: the whole bucket table and the tails of the logs.
//!
//! | method | path | answer |
//! | --- | --- | --- |
//! | GET, HEAD | `/`, `/console/`, `/console/index.html` | the console page |
//! | GET, HEAD | `/console/console.js`, `/console/console.css`, `/console/icon.svg` | its assets |
//! | GET | `/api/v1/buckets` | [`BucketTable`] as JSON: owner and previous owner of every bucket |
//! | GET | `/api/v1/logs/module`, `/api/v1/logs/application` | [`LogTail`] as JSON: the last [`LOG_TAIL_LINES`] lines (token) |
//!
//! The console follows the API's rules: what only reads the farm's state (the page, the
//! status, the table, the metrics) is public like the health URL; the logs (script output,
//! commands with their reasons) need the bearer token over TCP like the actions; every action it offers (start, stop,
//! restart, weight, drain, undrain, reload) is a `POST` to the existing endpoints, which need
//! the bearer token over TCP. The page keeps the token the operator types in `sessionStorage`
//! (gone with the tab) and sends it as `Authorization: Bearer`, never in a URL.
//!
//! Console responses carry `Content-Security-Policy` (everything from this origin only: no
//! inline script or style, no framing, no other host), `X-Content-Type-Options: nosniff`,
//! `Referrer-Policy: no-referrer` and `Cache-Control: no-cache`. Nothing is fetched from
//! elsewhere: the console works on a network without Internet access.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::http::{HttpRequest, HttpResponse};
use super::server::{error, json, not_allowed};
use super::{SharedStatus, Status};
use crate::logs;

const INDEX_HTML: &str = include_str!("console/index.html");
const CONSOLE_JS: &str = include_str!("console/console.js");
const CONSOLE_CSS: &str = include_str!("console/console.css");
const ICON_SVG: &str = include_str!("console/icon.svg");

/// The console's `Content-Security-Policy`: this origin only.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
                       base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Lines of a log served by `GET /api/v1/logs/<log>`.
pub const LOG_TAIL_LINES: usize = 200;
/// Bytes read at most from the end of each log file for a tail (the API's thread must not
/// read megabytes).
const LOG_TAIL_BYTES: u64 = 128 * 1024;

/// `GET /api/v1/buckets`: the table this node publishes, every bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketTable {
    /// Generation of the table.
    pub table_generation: u64,
    /// Owner id of each bucket (`None`: unowned).
    pub owners: Vec<Option<u8>>,
    /// Previous owner of each bucket while a handover is in progress (it keeps the flows it
    /// holds), else `None`.
    pub prev_owners: Vec<Option<u8>>,
}

impl BucketTable {
    /// From the status's copy of the published table.
    pub fn from_status(st: &Status) -> BucketTable {
        let id = |n: u8| (n != farm_table::NO_NODE).then_some(n);
        BucketTable {
            table_generation: st.table_generation,
            owners: st.table.iter().map(|e| id(e.owner)).collect(),
            prev_owners: st.table.iter().map(|e| id(e.prev_owner).filter(|&p| Some(p) != id(e.owner))).collect(),
        }
    }
}

/// `GET /api/v1/logs/<log>`: the end of a log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogTail {
    /// `module` or `application`.
    pub log: String,
    /// The file's name (`module.log`, `application.log`).
    pub file: String,
    /// The last lines, oldest first (at most [`LOG_TAIL_LINES`]).
    pub lines: Vec<String>,
}

/// Adds the console's security headers.
pub fn secured(resp: HttpResponse) -> HttpResponse {
    resp.with_header("Content-Security-Policy", CSP)
        .with_header("X-Content-Type-Options", "nosniff")
        .with_header("Referrer-Policy", "no-referrer")
        .with_header("X-Frame-Options", "DENY")
        .with_header("Cache-Control", "no-cache")
}

fn asset(content_type: &str, body: &str) -> HttpResponse {
    secured(HttpResponse::new(200, content_type, body))
}

/// The embedded asset at `path` (`/` is the page).
fn static_asset(path: &str) -> Option<HttpResponse> {
    Some(match path {
        "/" | "/console" | "/console/" | "/console/index.html" => asset("text/html; charset=utf-8", INDEX_HTML),
        "/console/console.js" => asset("text/javascript; charset=utf-8", CONSOLE_JS),
        "/console/console.css" => asset("text/css; charset=utf-8", CONSOLE_CSS),
        "/console/icon.svg" | "/favicon.ico" => asset("image/svg+xml", ICON_SVG),
        _ => return None,
    })
}

/// What the console routes answer; `None` for the other paths.
/// `authorized` is the API's token check (the logs need it).
pub(super) fn route(
    req: &HttpRequest,
    segs: &[&str],
    status: &SharedStatus,
    log_dir: Option<&Path>,
    authorized: impl Fn(&HttpRequest) -> Result<(), HttpResponse>,
) -> Option<HttpResponse> {
    let get = matches!(req.method.as_str(), "GET" | "HEAD");
    if let Some(page) = static_asset(&req.path) {
        return Some(if get { page } else { secured(not_allowed("GET, HEAD")) });
    }
    let resp = match segs {
        ["api", "v1", "buckets"] => {
            if !get {
                return Some(not_allowed("GET, HEAD"));
            }
            let st = status.read().unwrap_or_else(|p| p.into_inner());
            if st.table.is_empty() {
                error(503, "no table published yet")
            } else {
                json(200, &BucketTable::from_status(&st))
            }
        }
        ["api", "v1", "logs", log @ ("module" | "application")] => {
            if !get {
                return Some(not_allowed("GET, HEAD"));
            }
            if let Err(refused) = authorized(req) {
                return Some(secured(refused));
            }
            let Some(dir) = log_dir else {
                return Some(error(404, "no log directory here"));
            };
            let file = if *log == "module" { logs::MODULE_LOG } else { logs::APP_LOG };
            match tail(&dir.join(file), LOG_TAIL_LINES, LOG_TAIL_BYTES) {
                Ok(lines) => json(200, &LogTail { log: log.to_string(), file: file.to_string(), lines }),
                Err(e) => {
                    tracing::warn!(error = %e, file, "API: cannot read a log for the console");
                    error(500, &format!("cannot read {file}: {e}"))
                }
            }
        }
        _ => return None,
    };
    Some(secured(resp))
}

/// The last `n` lines of the log at `path`, reading at most `max_bytes` from the end of it and,
/// when it has fewer lines, from the end of its first rotated file (`.1`). Missing files are
/// empty; invalid UTF-8 is replaced.
pub fn tail(path: &Path, n: usize, max_bytes: u64) -> io::Result<Vec<String>> {
    let mut lines = tail_one(path, n, max_bytes)?;
    if lines.len() < n {
        let mut older = tail_one(&logs::rotated_path(path, 1), n - lines.len(), max_bytes)?;
        older.append(&mut lines);
        lines = older;
    }
    Ok(lines)
}

fn tail_one(path: &Path, n: usize, max_bytes: u64) -> io::Result<Vec<String>> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let start = len.saturating_sub(max_bytes);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.take(max_bytes).read_to_end(&mut buf)?;
    let mut text: &[u8] = &buf;
    if start > 0 {
        // The first line is cut: drop it.
        text = text.iter().position(|&b| b == b'\n').map_or(&[][..], |i| &text[i + 1..]);
    }
    let all: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    // A final newline leaves an empty last piece.
    let all = match all.split_last() {
        Some(([], rest)) => rest,
        _ => &all[..],
    };
    Ok(all[all.len().saturating_sub(n)..].iter().map(|l| String::from_utf8_lossy(l).into_owned()).collect())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    use crossbeam::channel::{self, Receiver};

    use crate::api::{shared_status, AdminRequest, AdminSink, ApiSettings, CommandRequest, Routes};
    use crate::lifecycle::State;

    const TOKEN: &str = "t0ken-for-the-console";

    fn routes(log_dir: Option<&Path>) -> (Routes, SharedStatus, Receiver<CommandRequest>, Receiver<AdminRequest>) {
        let status = shared_status(Status { module: "web".into(), node: "n1".into(), state: State::Up, ..Default::default() });
        let (tx, commands) = channel::unbounded();
        let (atx, admin) = channel::unbounded();
        let mut settings = ApiSettings::new("127.0.0.1:0".parse().unwrap(), "web", Some(TOKEN.into()));
        settings.log_dir = log_dir.map(Path::to_path_buf);
        let routes = Routes::new(settings, status.clone(), tx).with_admin(AdminSink { tx: atx, wake: std::sync::Arc::new(|| {}) });
        (routes, status, commands, admin)
    }

    fn req(method: &str, path: &str, auth: Option<&str>, body: &str) -> HttpRequest {
        let mut headers = vec![];
        if let Some(a) = auth {
            headers.push(("authorization".to_string(), a.to_string()));
        }
        HttpRequest {
            method: method.into(),
            path: path.into(),
            headers,
            body: body.as_bytes().to_vec(),
            peer: Some("198.18.0.9:40000".parse().unwrap()),
            unix: false,
        }
    }

    fn header<'a>(r: &'a HttpResponse, name: &str) -> Option<&'a str> {
        r.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    #[test]
    fn the_page_and_its_assets_are_public_with_security_headers() {
        let (r, ..) = routes(None);
        for path in ["/", "/console/", "/console/console.js", "/console/console.css", "/console/icon.svg"] {
            for method in ["GET", "HEAD"] {
                let resp = r.route(&req(method, path, None, ""));
                assert_eq!(resp.status, 200, "{method} {path}");
                assert_eq!(header(&resp, "Content-Security-Policy"), Some(CSP), "{path}");
                assert_eq!(header(&resp, "X-Content-Type-Options"), Some("nosniff"), "{path}");
                assert_eq!(resp.headers.iter().filter(|(k, _)| k == "X-Content-Type-Options").count(), 1, "{path}");
            }
        }
        assert!(header(&r.route(&req("GET", "/", None, "")), "Content-Type").unwrap().starts_with("text/html"));
        assert!(header(&r.route(&req("GET", "/console/console.js", None, "")), "Content-Type").unwrap().starts_with("text/javascript"));
        let post = r.route(&req("POST", "/", Some(&format!("Bearer {TOKEN}")), ""));
        assert_eq!(post.status, 405);
        assert_eq!(header(&post, "Allow"), Some("GET, HEAD"));
        // The rest of the API says nosniff too; unknown console paths are 404.
        let st = r.route(&req("GET", "/api/v1/status", None, ""));
        assert_eq!((st.status, header(&st, "X-Content-Type-Options")), (200, Some("nosniff")));
        assert_eq!(r.route(&req("GET", "/console/nope.js", None, "")).status, 404);
    }

    #[test]
    fn every_action_needs_the_token_over_tcp() {
        let (r, _, commands, admin) = routes(None);
        let actions = ["start", "stop", "restart", "drain", "undrain", "reload", "weight"];
        let body = |a: &str| if a == "weight" { r#"{"weight": 2, "reason": "web console"}"# } else { r#"{"reason": "web console"}"# };
        for a in actions {
            let path = format!("/api/v1/{a}");
            for auth in [None, Some("Bearer wrong"), Some(TOKEN), Some("Basic dDBrZW4=")] {
                let resp = r.route(&req("POST", &path, auth, body(a)));
                assert_eq!(resp.status, 401, "{a} with {auth:?}");
                assert_eq!(header(&resp, "WWW-Authenticate"), Some("Bearer"));
            }
        }
        assert!(commands.try_recv().is_err() && admin.try_recv().is_err(), "a refused action reached farmd");
        for a in actions {
            let resp = r.route(&req("POST", &format!("/api/v1/{a}"), Some(&format!("Bearer {TOKEN}")), body(a)));
            assert_eq!(resp.status, 202, "{a}: {:?}", String::from_utf8_lossy(&resp.body));
        }
        assert_eq!(commands.try_iter().count(), 3);
        assert_eq!(admin.try_iter().count(), 4);
        // Without a configured token, nothing is accepted over TCP.
        let status = shared_status(Status::default());
        let (tx, commands) = channel::unbounded();
        let open = Routes::new(ApiSettings::new("127.0.0.1:0".parse().unwrap(), "web", None), status, tx);
        assert_eq!(open.route(&req("POST", "/api/v1/stop", Some("Bearer "), "")).status, 403);
        assert!(commands.try_recv().is_err());
    }

    #[test]
    fn the_bucket_table_and_the_logs_are_served_as_json() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(logs::MODULE_LOG), "2026-01-01T00:00:00.000Z I state STOP -> STARTING (admin start)\n").unwrap();
        let (r, status, ..) = routes(Some(dir.path()));
        assert_eq!(r.route(&req("GET", "/api/v1/buckets", None, "")).status, 503);
        status.write().unwrap().table = vec![farm_table::BucketEntry { owner: 2, prev_owner: 1 }];
        let resp = r.route(&req("GET", "/api/v1/buckets", None, ""));
        assert_eq!(resp.status, 200);
        let t: BucketTable = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!((t.owners, t.prev_owners), (vec![Some(2)], vec![Some(1)]));
        assert_eq!(r.route(&req("POST", "/api/v1/buckets", Some(&format!("Bearer {TOKEN}")), "")).status, 405);
        // The logs need the token.
        for auth in [None, Some("Bearer wrong")] {
            let resp = r.route(&req("GET", "/api/v1/logs/module", auth, ""));
            assert_eq!(resp.status, 401, "logs with {auth:?}");
            assert_eq!(header(&resp, "Content-Security-Policy"), Some(CSP));
        }
        let bearer = format!("Bearer {TOKEN}");
        let resp = r.route(&req("GET", "/api/v1/logs/module", Some(&bearer), ""));
        assert_eq!(resp.status, 200);
        assert_eq!(header(&resp, "Content-Security-Policy"), Some(CSP));
        let t: LogTail = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!((t.file.as_str(), t.lines.len()), ("module.log", 1));
        let t: LogTail = serde_json::from_slice(&r.route(&req("GET", "/api/v1/logs/application", Some(&bearer), "")).body).unwrap();
        assert!(t.lines.is_empty());
        assert_eq!(r.route(&req("GET", "/api/v1/logs/other", Some(&bearer), "")).status, 404);
        // Without a log directory (e.g. an embedded API), the logs are not there.
        let (r, ..) = routes(None);
        assert_eq!(r.route(&req("GET", "/api/v1/logs/module", Some(&bearer), "")).status, 404);
    }

    #[test]
    fn members_link_to_their_consoles() {
        let urls = |listen: &str, a: &str, b: &str| {
            let toml = format!(
                "[module]\nname = \"web\"\ncluster_id = 1\nsecret_file = \"/nonexistent\"\n\
                 [[node]]\nname = \"a\"\naddrs = [\"{a}\"]\n[[node]]\nname = \"b\"\naddrs = [\"{b}\"]\n\
                 [api]\nlisten = \"{listen}\"\n[dataplane]\nenabled = false\n"
            );
            let cfg = farm_config::Config::from_str(&toml, "t.toml").unwrap();
            let st = Status::from_config(&cfg, cfg.node_by_name("a").unwrap());
            st.members.into_iter().map(|m| m.console_url).collect::<Vec<_>>()
        };
        let some = |s: &str| Some(s.to_string());
        let v4 = |listen| urls(listen, "198.18.0.1", "198.18.0.2");
        assert_eq!(v4("0.0.0.0:9010"), [some("http://198.18.0.1:9010/"), some("http://198.18.0.2:9010/")]);
        assert_eq!(v4("127.0.0.1:9999"), [some("http://127.0.0.1:9999/"), None]);
        assert_eq!(v4("198.19.0.1:80"), [some("http://198.19.0.1:80/"), some("http://198.18.0.2:80/")]);
        assert_eq!(urls("[::]:9010", "fd00::1", "fd00::2"), [some("http://[fd00::1]:9010/"), some("http://[fd00::2]:9010/")]);
    }


    #[test]
    fn tail_reads_the_end_only_and_the_rotated_file_when_short() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("module.log");
        assert_eq!(tail(&path, 5, 1024).unwrap(), Vec::<String>::new());
        let mut f = File::create(&path).unwrap();
        for i in 0..100 {
            writeln!(f, "line {i:03}").unwrap();
        }
        // 9 bytes a line: 30 bytes hold 3 whole lines after a cut one.
        assert_eq!(tail(&path, 10, 30).unwrap(), ["line 097", "line 098", "line 099"]);
        assert_eq!(tail(&path, 2, 1024).unwrap(), ["line 098", "line 099"]);
        // No final newline: the last line still counts.
        write!(f, "partial \u{e9}").unwrap();
        assert_eq!(tail(&path, 1, 1024).unwrap(), ["partial \u{e9}"]);
        // Few lines in the current file: the end of `.1` comes first.
        std::fs::rename(&path, logs::rotated_path(&path, 1)).unwrap();
        std::fs::write(&path, "new 1\nnew 2\n").unwrap();
        assert_eq!(tail(&path, 4, 1024).unwrap(), ["line 099", "partial \u{e9}", "new 1", "new 2"]);
        // Invalid UTF-8 is replaced, not an error.
        std::fs::write(&path, b"bad \xff\n").unwrap();
        assert_eq!(tail(&path, 1, 1024).unwrap(), ["bad \u{fffd}"]);
    }

    #[test]
    fn the_bucket_table_names_handovers_only() {
        let e = |owner, prev_owner| farm_table::BucketEntry { owner, prev_owner };
        let st = Status {
            table_generation: 7,
            table: vec![e(1, 1), e(2, 1), e(farm_table::NO_NODE, farm_table::NO_NODE), e(0, farm_table::NO_NODE)],
            ..Default::default()
        };
        let t = BucketTable::from_status(&st);
        assert_eq!(t.table_generation, 7);
        assert_eq!(t.owners, [Some(1), Some(2), None, Some(0)]);
        assert_eq!(t.prev_owners, [None, Some(1), None, None]);
    }

    #[test]
    fn assets_are_embedded_and_reference_only_this_origin() {
        for path in ["/", "/console/console.js", "/console/console.css", "/console/icon.svg"] {
            let r = static_asset(path).unwrap();
            assert_eq!(r.status, 200, "{path}");
            assert!(!r.body.is_empty(), "{path}");
            let text = String::from_utf8(r.body.clone()).unwrap();
            assert!(!text.contains("http://") && !text.contains("https://") || path.ends_with(".svg"), "{path} names another origin");
            let names: Vec<&str> = r.headers.iter().map(|(k, _)| k.as_str()).collect();
            assert!(names.contains(&"Content-Security-Policy") && names.contains(&"X-Content-Type-Options"), "{path}: {names:?}");
        }
        // No inline script or style: the CSP would block them.
        assert!(!INDEX_HTML.contains("<script>") && !INDEX_HTML.contains("style="), "inline code in index.html");
        assert!(INDEX_HTML.contains("src=\"/console/console.js\""));
        assert!(static_asset("/console/other.js").is_none());
    }
}
