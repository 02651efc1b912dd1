//! farmctl (the real binary) against a real API server on 127.0.0.1.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use common::{private, quoted, FarmToml, SECRET};
use crossbeam::channel::{self, Receiver};
use farm_control::api::{self, ApiServer, ApiSettings, CommandRequest, SharedStatus, Status};
use farm_control::lifecycle::{Command as LcCommand, State};

const TOKEN: &str = "farmctl-test-token-42";

struct Env {
    _dir: tempfile::TempDir,
    root: PathBuf,
    config: PathBuf,
    server: Option<ApiServer>,
    status: SharedStatus,
    commands: Receiver<CommandRequest>,
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
    }
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let status = api::shared_status(Status { module: "web".into(), node: "n1".into(), ..Default::default() });
    let (tx, commands) = channel::unbounded();
    let settings = ApiSettings::new("127.0.0.1:0".parse().unwrap(), "web", Some(TOKEN.into()));
    let server = ApiServer::start(settings, status.clone(), tx).unwrap();
    private(&root.join("secret"), SECRET);
    private(&root.join("token"), &format!("{TOKEN}\n"));
    let config = root.join("farm.toml");
    FarmToml::new(7)
        .module("hash_seed", quoted("0x5eed"))
        .module("buckets", 256)
        .module("secret_file", quoted(root.join("secret").display()))
        .module("log_dir", quoted(format_args!("{}/log/{{node}}", root.display())))
        .module("run_dir", quoted(root.join("run").display()))
        .node("n1", "198.18.0.1")
        .node("n2", "198.18.0.2")
        .api("listen", quoted(server.local_addr()))
        .api("token_file", quoted(root.join("token").display()))
        .extra("[scripts.env]\nDB_PASSWORD = \"hunter2\"\n")
        .write(&config);
    Env { _dir: dir, root, config, server: Some(server), status, commands }
}

impl Env {
    fn farmctl(&self, args: &[&str]) -> Output {
        common::farmctl(&self.config, "n1", args)
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn state_exit_codes_follow_the_api() {
    let e = env();
    for (s, code) in [(State::Stop, 0), (State::Wait, 1), (State::Up, 2), (State::Starting, 1), (State::Stopping, 1)] {
        e.status.write().unwrap().state = s;
        let o = e.farmctl(&["state"]);
        assert_eq!(o.status.code(), Some(code), "{s}: {}", stderr(&o));
        assert_eq!(stdout(&o).trim(), s.as_str());
    }
    // farmd not running: STOP.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let o = e.farmctl(&["--api", &format!("http://{closed}"), "state"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o).trim(), "STOP");
    assert!(stderr(&o).contains("not running"));
}

#[test]
fn commands_use_the_token_file() {
    let e = env();
    let o = e.farmctl(&["stop", "--reason", "maintenance"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let c = e.commands.recv_timeout(Duration::from_secs(2)).unwrap();
    assert_eq!((c.command, c.reason.as_deref()), (LcCommand::Stop, Some("maintenance")));
    private(&e.root.join("token"), "wrong-token");
    let o = e.farmctl(&["start"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("401"), "{}", stderr(&o));
    // A token readable by others is refused before anything is sent.
    fs::set_permissions(e.root.join("token"), fs::Permissions::from_mode(0o644)).unwrap();
    let o = e.farmctl(&["start"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("0600"), "{}", stderr(&o));
    assert!(e.commands.try_recv().is_err());
}

#[test]
fn printi_printe_and_log_tail() {
    let e = env();
    assert!(e.farmctl(&["printi", "backup", "started"]).status.success());
    assert!(e.farmctl(&["printe", "backup failed"]).status.success());
    let log = fs::read_to_string(e.root.join("log/n1/module.log")).unwrap();
    assert!(log.contains(" I backup started\n") && log.contains(" E backup failed\n"), "{log}");
    let o = e.farmctl(&["log", "-n", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 1);
    assert!(stdout(&o).trim_end().ends_with("E backup failed"));
    let o = e.farmctl(&["applog"]);
    assert!(o.status.success() && stdout(&o).is_empty(), "{}", stderr(&o));
}

#[test]
fn which_shows_bucket_and_owner() {
    let e = env();
    {
        let mut st = e.status.write().unwrap();
        st.members = vec![
            api::MemberStatus { id: 0, name: "n1".into(), is_self: true, live: true, ..Default::default() },
            api::MemberStatus { id: 1, name: "n2".into(), live: true, ..Default::default() },
        ];
        st.table = (0..256).map(|_| farm_table::BucketEntry::owned(1)).collect();
        st.table_generation = 5;
    }
    let key = farm_table::HashKey::from_seed(0x5eed);
    let ip = "198.51.100.7".parse().unwrap();
    let on_addr = farm_table::bucket_of(&key, ip, None, 256);
    let on_port = farm_table::bucket_of(&key, ip, Some(40000), 256);
    let o = e.farmctl(&["which", "198.51.100.7:40000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains(&format!("bucket {on_addr}/256 (on_addr rules): owner n2 (id 1, table generation 5)")), "{out}");
    assert!(out.contains(&format!("bucket {on_port}/256 (on_port rules): owner n2")), "{out}");
    let o = e.farmctl(&["which", "not-an-ip"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn config_check_reports_ok_or_the_error() {
    let e = env();
    let o = e.farmctl(&["config", "check", e.config.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("OK"));
    let o = e.farmctl(&["config", "check", "--runtime", e.config.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let bad = e.root.join("bad.toml");
    fs::write(&bad, "[module]\nname = \"Bad Name\"\n").unwrap();
    let o = e.farmctl(&["config", "check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("bad.toml"), "{}", stderr(&o));
    let o = e.farmctl(&["config", "check", "/nonexistent/farm.toml"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn snapshot_as_tar_and_as_directory() {
    let e = env();
    e.status.write().unwrap().state = State::Up;
    assert!(e.farmctl(&["printi", "hello snapshot"]).status.success());
    let tar_path = e.root.join("bundle.tar");
    let o = e.farmctl(&["snapshot", tar_path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut names = Vec::new();
    let mut config = String::new();
    let mut ar = tar::Archive::new(fs::File::open(&tar_path).unwrap());
    for entry in ar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        if name.ends_with("/config.toml") {
            std::io::Read::read_to_string(&mut entry, &mut config).unwrap();
        }
        names.push(name);
    }
    for want in ["bundle/README.txt", "bundle/config.toml", "bundle/status.json", "bundle/metrics.txt", "bundle/logs/module.log", "bundle/config-check.txt"] {
        assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
    }
    assert!(!config.contains("hunter2") && !config.contains("0x5eed"), "secrets leaked:\n{config}");
    assert!(config.contains("token_file"), "{config}");
    let dir = e.root.join("bundle-dir");
    assert!(e.farmctl(&["snapshot", dir.to_str().unwrap()]).status.success());
    let st: Status = serde_json::from_str(&fs::read_to_string(dir.join("status.json")).unwrap()).unwrap();
    assert_eq!(st.state, State::Up);
    assert!(fs::read_to_string(dir.join("logs/module.log")).unwrap().contains("hello snapshot"));
    // Never overwrite.
    assert_eq!(e.farmctl(&["snapshot", dir.to_str().unwrap()]).status.code(), Some(1));
}
