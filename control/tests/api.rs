//! The HTTP API over real HTTP on 127.0.0.1 with an ephemeral port.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crossbeam::channel::{self, Receiver};
use farm_control::api::{self, ApiClient, ApiServer, ApiSettings, ClientError, CommandRequest, SharedStatus, Status};
use farm_control::lifecycle::{Command, State};

const TOKEN: &str = "s3cret-token-0123456789";

struct Fixture {
    server: Option<ApiServer>,
    status: SharedStatus,
    commands: Receiver<CommandRequest>,
    base: String,
    agent: ureq::Agent,
}

fn fixture(token: Option<&str>) -> Fixture {
    let status = api::shared_status(Status { module: "web".into(), node: "n1".into(), ..Default::default() });
    let (tx, commands) = channel::unbounded();
    let settings = ApiSettings::new("127.0.0.1:0".parse().unwrap(), "web", token.map(str::to_string));
    let server = ApiServer::start(settings, status.clone(), tx).unwrap();
    let base = format!("http://{}", server.local_addr());
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into();
    Fixture { server: Some(server), status, commands, base, agent }
}

impl Fixture {
    fn get(&self, path: &str) -> (u16, String) {
        let mut r = self.agent.get(&format!("{}{path}", self.base)).call().unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    }
    fn post(&self, path: &str, auth: Option<&str>, body: &str) -> (u16, String) {
        let mut req = self.agent.post(&format!("{}{path}", self.base));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let mut r = req.send(body.as_bytes()).unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    }
    fn set_state(&self, s: State) {
        self.status.write().unwrap().state = s;
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
    }
}

fn error_of(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    v["error"].as_str().unwrap_or_else(|| panic!("no error field: {body}")).to_string()
}

#[test]
fn health_url_is_200_only_when_up() {
    let f = fixture(None);
    for s in State::ALL {
        f.set_state(s);
        let (code, body) = f.get("/var/modules/web/ready.txt");
        if s == State::Up {
            assert_eq!((code, body.as_str()), (200, "OK\n"));
        } else {
            assert_eq!(code, 404, "{s}");
            assert_eq!(body.trim(), s.as_str());
        }
    }
    f.set_state(State::Up);
    assert_eq!(f.get("/var/modules/other/ready.txt").0, 404);
    let (code, body) = f.post("/var/modules/web/ready.txt", None, "");
    assert_eq!(code, 405);
    assert!(error_of(&body).contains("GET"));
}

#[test]
fn commands_need_the_bearer_token() {
    let f = fixture(Some(TOKEN));
    let (code, body) = f.post("/api/v1/stop", None, "");
    assert_eq!(code, 401);
    assert!(error_of(&body).contains("Authorization"));
    let (code, _) = f.post("/api/v1/stop", Some("Bearer wrong-token"), "");
    assert_eq!(code, 401);
    let (code, _) = f.post("/api/v1/stop", Some(&format!("Bearer {TOKEN}x")), "");
    assert_eq!(code, 401);
    let (code, _) = f.post("/api/v1/stop", Some(&format!("Basic {TOKEN}")), "");
    assert_eq!(code, 401);
    assert!(f.commands.try_recv().is_err(), "no command may pass without the token");

    let (code, body) = f.post("/api/v1/stop", Some(&format!("Bearer {TOKEN}")), "");
    assert_eq!(code, 202, "{body}");
    let c = f.commands.recv_timeout(Duration::from_secs(1)).unwrap();
    assert_eq!((c.command, c.reason), (Command::Stop, None));
    assert!(c.from.unwrap().ip().is_loopback());

    let (code, _) = f.post("/api/v1/restart", Some(&format!("Bearer {TOKEN}")), r#"{"reason": "maintenance"}"#);
    assert_eq!(code, 202);
    let c = f.commands.recv_timeout(Duration::from_secs(1)).unwrap();
    assert_eq!((c.command, c.reason.as_deref()), (Command::Restart, Some("maintenance")));
}

#[test]
fn bad_bodies_get_400_and_nothing_is_sent() {
    let f = fixture(Some(TOKEN));
    let auth = format!("Bearer {TOKEN}");
    for body in ["{", "not json", r#"{"reason": 5}"#, r#"{"unknown": 1}"#, "[1,2]"] {
        let (code, resp) = f.post("/api/v1/start", Some(&auth), body);
        assert_eq!(code, 400, "{body:?} -> {resp}");
        assert!(error_of(&resp).contains("JSON"), "{resp}");
    }
    let big = format!("{{\"reason\": \"{}\"}}", "x".repeat(70 * 1024));
    assert_eq!(f.post("/api/v1/start", Some(&auth), &big).0, 413);
    assert!(f.commands.try_recv().is_err());
    // The server still works.
    assert_eq!(f.post("/api/v1/start", Some(&auth), "  ").0, 202);
    assert_eq!(f.commands.recv_timeout(Duration::from_secs(1)).unwrap().command, Command::Start);
}

#[test]
fn without_a_configured_token_commands_are_refused() {
    let f = fixture(None);
    let (code, body) = f.post("/api/v1/start", Some("Bearer anything"), "");
    assert_eq!(code, 403);
    assert!(error_of(&body).contains("token_file"));
    assert!(f.commands.try_recv().is_err());
}

#[test]
fn unknown_paths_and_wrong_methods() {
    let f = fixture(Some(TOKEN));
    let (code, body) = f.get("/nope");
    assert_eq!(code, 404);
    assert!(error_of(&body).contains("/nope"));
    assert_eq!(f.get("/api/v1/").0, 404);
    assert_eq!(f.get("/api/v2/status").0, 404);
    let (code, body) = f.get("/api/v1/start");
    assert_eq!(code, 405);
    assert!(error_of(&body).contains("POST"));
    assert_eq!(f.post("/api/v1/status", Some(&format!("Bearer {TOKEN}")), "").0, 405);
    assert_eq!(f.post("/metrics", None, "").0, 405);
    assert_eq!(f.get("/api/v1/buckets/abc").0, 400);
}

#[test]
fn status_metrics_and_buckets() {
    let f = fixture(Some(TOKEN));
    {
        let mut st = f.status.write().unwrap();
        st.state = State::Up;
        st.buckets_total = 256;
        st.buckets_owned = 128;
        st.table_generation = 9;
        st.members = vec![
            api::MemberStatus { id: 0, name: "n1".into(), is_self: true, live: true, state: Some(State::Up), ..Default::default() },
            api::MemberStatus { id: 1, name: "n2".into(), live: true, state: Some(State::Up), ..Default::default() },
        ];
        st.table = (0..256u32).map(|b| farm_table::BucketEntry::owned((b % 2) as u8)).collect();
        st.table[3].prev_owner = 0;
    }
    let client = ApiClient::new(&f.base, Some(TOKEN.into()), Duration::from_secs(5));
    let st = client.status().unwrap();
    assert_eq!((st.state, st.buckets_owned, st.table_generation), (State::Up, 128, 9));
    assert_eq!(st.members.len(), 2);
    assert!(st.table.is_empty(), "the table is not part of the status JSON");
    let b = client.bucket(3).unwrap();
    assert_eq!((b.owner, b.owner_name.as_deref(), b.prev_owner), (Some(1), Some("n2"), Some(0)));
    assert!(matches!(client.bucket(256), Err(ClientError::Http { status: 404, .. })));
    let m = client.metrics().unwrap();
    assert!(m.contains("farm_state{module=\"web\",node=\"n1\"} 2"), "{m}");
    assert!(m.contains("farm_members_up{module=\"web\",node=\"n1\"} 2"), "{m}");
    client.command(Command::Start, Some("test")).unwrap();
    assert_eq!(f.commands.recv_timeout(Duration::from_secs(1)).unwrap().reason.as_deref(), Some("test"));
    let bad = ApiClient::new(&f.base, Some("wrong".into()), Duration::from_secs(5));
    assert!(matches!(bad.command(Command::Stop, None), Err(ClientError::Http { status: 401, .. })));
}

fn raw(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(bytes);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

#[test]
fn garbage_requests_do_not_break_the_server() {
    let f = fixture(Some(TOKEN));
    let addr = f.server.as_ref().unwrap().local_addr();
    let cases: [(&[u8], &str); 5] = [
        (b"\x00\x01\x02garbage\r\n\r\n", "HTTP/1.1 400 "),
        (b"GET\r\n\r\n", "HTTP/1.1 400 "),
        // A huge declared body is refused before anything is allocated or read (tiny_http 0.12
        // aborted the process here).
        (b"POST /api/v1/start HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", "HTTP/1.1 413 "),
        (b"POST /api/v1/start HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "HTTP/1.1 400 "),
        (b"POST /api/v1/start HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 501 "),
    ];
    for (junk, want) in cases {
        let got = raw(addr, junk);
        assert!(got.starts_with(want), "{:?} -> {got:?}", String::from_utf8_lossy(junk));
    }
    let big_head = format!("GET / HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "a".repeat(20_000));
    assert!(raw(addr, big_head.as_bytes()).starts_with("HTTP/1.1 431 "));
    // A client that closes at once gets nothing and costs nothing.
    drop(TcpStream::connect(addr).unwrap());
    // HEAD has the headers of GET and no body.
    f.set_state(State::Up);
    let head = raw(addr, b"HEAD /var/modules/web/ready.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 ") && head.ends_with("Content-Length: 3\r\nConnection: close\r\n\r\n"), "{head:?}");
    // Expect: 100-continue is honoured: the client sends the body after the interim answer.
    let auth = format!("Bearer {TOKEN}");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let head = format!("POST /api/v1/start HTTP/1.1\r\nAuthorization: {auth}\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"{}").unwrap();
    let mut rest = String::new();
    s.read_to_string(&mut rest).unwrap();
    assert!(rest.starts_with("HTTP/1.1 202 "), "{rest:?}");
    assert_eq!(f.commands.recv_timeout(Duration::from_secs(1)).unwrap().command, Command::Start);
    assert_eq!(f.get("/var/modules/web/ready.txt").0, 200);
    assert!(f.commands.try_recv().is_err());
}

#[test]
fn unreachable_farmd_is_reported_as_such() {
    let f = fixture(None);
    let base = f.base.clone();
    drop(f); // shuts the server down
    let client = ApiClient::new(&base, None, Duration::from_secs(2));
    match client.status() {
        Err(ClientError::Unreachable { .. }) => {}
        other => panic!("expected Unreachable, got {other:?}"),
    }
}
