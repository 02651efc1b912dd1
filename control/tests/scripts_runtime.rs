//! The lifecycle driven end to end by ModuleRuntime: real scripts, real checker threads.

mod common;

use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{quoted, script, FarmToml};
use farm_config::Action;
use farm_control::api::Status;
use farm_control::checkers::{CheckerSpec, Probe};
use farm_control::lifecycle::driver::{ModuleRuntime, Notice};
use farm_control::lifecycle::{Command, State};
use farm_control::logs::{LogSettings, Logs, MODULE_LOG};
use farm_control::restart::RestartPolicy;
use farm_control::scripts::ScriptSettings;

fn tcp_checker(name: &str, port: u16, action: Action) -> CheckerSpec {
    CheckerSpec {
        name: name.into(),
        kind: "tcp",
        probe: Probe::Tcp { addr: ([127, 0, 0, 1], port).into() },
        interval: Duration::from_millis(30),
        timeout: Duration::from_millis(200),
        fail_after: 2,
        ok_after: 2,
        action,
        start_delay: Duration::ZERO,
    }
}

/// Answers every Leave with `left` at once, as farmd would after releasing its buckets, and
/// every Draining with "no connection held" (no data plane here).
fn answer(rt: &mut ModuleRuntime, mut notices: Vec<Notice>, seen: &mut Vec<Notice>) {
    while let Some(pos) = notices.iter().position(|n| matches!(n, Notice::Leave | Notice::Draining)) {
        let n = notices[pos].clone();
        seen.extend(notices.drain(..=pos));
        if n == Notice::Leave {
            notices.extend(rt.left(Instant::now()));
        } else {
            notices.extend(rt.drains(Instant::now(), 0, 0));
        }
    }
    seen.extend(notices);
}

/// Runs the loop until `state` is reached, starting with the notices of a command. Returns the
/// notices seen.
fn run_until(rt: &mut ModuleRuntime, first: Vec<Notice>, state: State, within: Duration) -> Vec<Notice> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    answer(rt, first, &mut seen);
    while rt.state() != state {
        assert!(Instant::now() < deadline, "still {} waiting for {state}; saw {seen:?}", rt.state());
        let notices = rt.wait_and_poll(Duration::from_millis(50));
        answer(rt, notices, &mut seen);
    }
    seen
}

fn runtime(dir: &Path, checkers: Vec<CheckerSpec>, maxloop: u32) -> ModuleRuntime {
    let trace = dir.join("trace");
    let start = script(dir, "start_both", &format!("echo start >> {}", trace.display()));
    let stop = script(dir, "stop_both", &format!("echo \"stop $*\" >> {}", trace.display()));
    let settings = ScriptSettings {
        start_both: Some(start),
        stop_both: Some(stop),
        timeout: Duration::from_secs(10),
        env: vec![],
        dir: Some(dir.to_path_buf()),
    };
    let logs = Logs::open(&dir.join("log"), LogSettings::default()).unwrap();
    ModuleRuntime::new(settings, checkers, RestartPolicy::new(maxloop, Duration::from_secs(3600)), logs)
}

#[test]
fn start_wait_recover_and_stop() {
    let dir = tempfile::tempdir().unwrap();
    let gw = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = gw.local_addr().unwrap().port();
    let mut rt = runtime(dir.path(), vec![tcp_checker("gw", port, Action::Wait)], 3);
    let notices = rt.command(Command::Start, Instant::now());
    assert_eq!(notices, vec![Notice::StateChanged { from: State::Stop, to: State::Starting }]);
    let seen = run_until(&mut rt, notices, State::Up, Duration::from_secs(10));
    assert!(seen.contains(&Notice::Join), "{seen:?}");

    drop(gw); // the watched service goes away: WAIT
    let seen = run_until(&mut rt, vec![], State::Wait, Duration::from_secs(10));
    assert!(seen.contains(&Notice::Leave), "{seen:?}");
    let mut st = Status::default();
    rt.fill_status(&mut st, Instant::now());
    assert_eq!(st.state, State::Wait);
    assert_eq!(st.waiting_on, vec!["gw".to_string()]);
    assert!(!st.checkers[0].healthy);

    let _gw = TcpListener::bind(("127.0.0.1", port)).unwrap(); // back: UP again
    let seen = run_until(&mut rt, vec![], State::Up, Duration::from_secs(10));
    assert!(seen.contains(&Notice::Join), "{seen:?}");

    let notices = rt.command(Command::Stop, Instant::now());
    assert_eq!(notices, vec![Notice::StateChanged { from: State::Up, to: State::Stopping }, Notice::Leave]);
    run_until(&mut rt, notices, State::Stop, Duration::from_secs(10));
    // Graceful stop, nothing left to drain: no force run.
    assert_eq!(fs::read_to_string(dir.path().join("trace")).unwrap(), "start\nstop \n");
    let log = fs::read_to_string(dir.path().join("log").join(MODULE_LOG)).unwrap();
    for want in ["state STOP -> STARTING (admin start)", "state UP -> WAIT (checker gw failed)", "state WAIT -> UP (checker gw recovered)", "state STOPPING -> STOP"] {
        assert!(log.contains(want), "missing {want:?} in\n{log}");
    }
}

#[test]
fn restart_action_until_maxloop_stops_the_module() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port(); // nothing listens
    let mut rt = runtime(dir.path(), vec![tcp_checker("app", port, Action::Restart)], 2);
    let notices = rt.command(Command::Start, Instant::now());
    // Failures 1 and 2 restart locally; failure 3 exceeds maxloop = 2 and stops.
    run_until(&mut rt, notices, State::Stop, Duration::from_secs(20));
    let trace = fs::read_to_string(dir.path().join("trace")).unwrap();
    let log = fs::read_to_string(dir.path().join("log").join(MODULE_LOG)).unwrap();
    assert_eq!(trace.matches("start\n").count(), 3, "{trace}\n{log}");
    assert_eq!(trace.matches("stop \n").count(), 3, "{trace}");
    assert_eq!(trace.matches("stop force\n").count(), 0, "graceful stops with nothing to drain: {trace}");
    let log = fs::read_to_string(dir.path().join("log").join(MODULE_LOG)).unwrap();
    assert!(log.contains("action restart (1/2"), "{log}");
    assert!(log.contains("action restart (2/2"), "{log}");
    assert!(log.contains("exceed maxloop 2: stopping the module"), "{log}");
    assert!(!log.contains("STOP -> STARTING (local restart)"), "a local restart never passes through STOP");
    // An administrator's start resets the count.
    rt.command(Command::Start, Instant::now());
    let mut st = Status::default();
    rt.fill_status(&mut st, Instant::now());
    assert_eq!(st.restarts.count, 0);
    assert_eq!(st.restarts.maxloop, 2);
    let notices = rt.command(Command::Stop, Instant::now());
    run_until(&mut rt, notices, State::Stop, Duration::from_secs(20));
}

#[test]
fn runtime_and_status_from_a_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    script(dir.path(), "start_both", &format!("echo \"$FARM_ACTION $FARM_MODULE $FARM_NODE $FARM_NODE_ID $GREETING\" >> {}", trace.display()));
    script(dir.path(), "stop_both", "exit 0");
    let app = TcpListener::bind("127.0.0.1:0").unwrap();
    let text = |extra: &str| {
        FarmToml::new(7)
            .module("secret_file", quoted("/etc/farm/web.secret"))
            .module("log_dir", quoted(format_args!("{}/log", dir.path().display())))
            .node("n1", "198.18.0.1")
            .weighted_node("n2", "198.18.0.2", 3)
            .dataplane(if extra.is_empty() { "enabled = false" } else { "enabled = true\nuplink = \"net_null0\"" })
            .extra(&format!(
                r#"[scripts]
dir = "{dir}"
start_both = "start_both"
stop_both = "stop_both"
env = {{ GREETING = "hello" }}

[[checker]]
name = "app"
kind = "tcp"
port = {port}

{extra}
"#,
                dir = dir.path().display(),
                port = app.local_addr().unwrap().port(),
            ))
            .render()
    };
    let cfg = farm_config::Config::from_str(&text(""), "t.toml").unwrap();
    let node = cfg.node_by_name("n2").unwrap().clone();
    let logs = Logs::open(&cfg.module.log_dir, LogSettings::default()).unwrap();
    let mut rt = ModuleRuntime::from_config(&cfg, &node, None, logs.clone()).unwrap();
    let notices = rt.command(Command::Start, Instant::now());
    run_until(&mut rt, notices, State::Up, Duration::from_secs(10));
    assert_eq!(fs::read_to_string(&trace).unwrap(), "start web n2 1 hello\n");
    let mut st = Status::from_config(&cfg, &node);
    rt.fill_status(&mut st, Instant::now());
    assert_eq!((st.module.as_str(), st.node.as_str(), st.node_id, st.buckets_total), ("web", "n2", 1, 4096));
    assert_eq!(st.members.iter().map(|m| (m.name.as_str(), m.is_self, m.weight)).collect::<Vec<_>>(), [("n1", false, 1), ("n2", true, 3)]);
    assert_eq!((st.state, st.checkers.len(), st.restarts.maxloop), (State::Up, 1, 3));
    // A data-plane checker without a data-plane view is a configuration error for the runtime.
    let cfg = farm_config::Config::from_str(&text("[[checker]]\nname = \"dp\"\nkind = \"dataplane\""), "t.toml").unwrap();
    assert!(ModuleRuntime::from_config(&cfg, &node, None, logs).is_err());
}
