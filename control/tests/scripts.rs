//! start_both / stop_both: environment, output to the application log, timeouts that kill the
//! whole process group, the force pass, and the background runner.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::script;
use farm_control::logs::{LogSettings, Logs, APP_LOG, MODULE_LOG};
use farm_control::scripts::{self, Exit, Invocation, Output, Phase, ScriptError, ScriptRunner, ScriptSettings, KILL_GRACE};

fn settings(dir: &Path, start: Option<PathBuf>, stop: Option<PathBuf>, timeout: Duration) -> ScriptSettings {
    ScriptSettings {
        start_both: start,
        stop_both: stop,
        timeout,
        env: vec![("FARM_MODULE".into(), "web".into()), ("FARM_NODE".into(), "n1".into())],
        dir: Some(dir.to_path_buf()),
    }
}

fn read(p: PathBuf) -> String {
    fs::read_to_string(p).unwrap_or_default()
}

fn alive(pid: i32) -> bool {
    // A zombie is dead for our purpose.
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

#[test]
fn start_both_gets_the_environment_and_its_output_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let logs = Logs::open(&dir.path().join("log"), LogSettings::default()).unwrap();
    let start = script(dir.path(), "start_both", "echo \"start $FARM_MODULE on $FARM_NODE action=$FARM_ACTION cwd=$(pwd)\"\necho oops >&2");
    let s = settings(dir.path(), Some(start), None, Duration::from_secs(10));
    let out = scripts::run_phase(&s, Phase::Start, &logs);
    assert!(out.ok, "{out:?}");
    assert_eq!(out.runs.len(), 1);
    assert_eq!(out.runs[0].exit, Exit::Code(0));
    let app = read(dir.path().join("log").join(APP_LOG));
    let want = format!("start_both[out] start web on n1 action=start cwd={}", dir.path().display());
    assert!(app.contains(&want), "{app}");
    assert!(app.contains("start_both[err] oops"), "{app}");
    let module = read(dir.path().join("log").join(MODULE_LOG));
    assert!(module.contains(" I start_both: exit code 0"), "{module}");
}

#[test]
fn a_failing_start_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let logs = Logs::open(dir.path(), LogSettings::default()).unwrap();
    let s = settings(dir.path(), Some(script(dir.path(), "start_both", "exit 4")), None, Duration::from_secs(10));
    let out = scripts::run_phase(&s, Phase::Start, &logs);
    assert!(!out.ok);
    assert_eq!(out.runs[0].exit, Exit::Code(4));
    assert!(read(dir.path().join(MODULE_LOG)).contains(" E start_both: exit code 4"));
    // No script configured: nothing runs, success.
    let none = settings(dir.path(), None, None, Duration::from_secs(1));
    let out = scripts::run_phase(&none, Phase::Start, &logs);
    assert!(out.ok && out.runs.is_empty());
    assert!(scripts::run_phase(&none, Phase::Stop, &logs).ok);
}

#[test]
fn a_hung_script_is_killed_with_its_children_and_its_output_kept() {
    let dir = tempfile::tempdir().unwrap();
    let logs = Logs::open(dir.path(), LogSettings::default()).unwrap();
    let pidfile = dir.path().join("child.pid");
    let body = format!("echo before-hang\nsleep 1000 &\necho $! > {}\nwait", pidfile.display());
    let s = settings(dir.path(), Some(script(dir.path(), "start_both", &body)), None, Duration::from_millis(500));
    let started = Instant::now();
    let out = scripts::run_phase(&s, Phase::Start, &logs);
    let took = started.elapsed();
    assert!(!out.ok);
    assert_eq!(out.runs[0].exit, Exit::TimedOut);
    assert!(took >= Duration::from_millis(500), "{took:?}");
    assert!(took < Duration::from_millis(500) + KILL_GRACE + Duration::from_secs(2), "{took:?}");
    let child: i32 = read(pidfile).trim().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while alive(child) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(child), "the script's child {child} survived the timeout");
    assert!(read(dir.path().join(APP_LOG)).contains("start_both[out] before-hang"));
    assert!(read(dir.path().join(MODULE_LOG)).contains(" E start_both: timed out, process group killed"));
}

#[test]
fn a_script_ignoring_sigterm_is_killed_after_the_grace() {
    let inv = Invocation {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), "trap '' TERM; while :; do sleep 0.05; done".into()],
        env: vec![],
        cwd: None,
        timeout: Duration::from_millis(200),
    };
    let started = Instant::now();
    let r = scripts::run(&inv, Output::Discard);
    assert_eq!(r.exit, Exit::TimedOut);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(200) + KILL_GRACE - Duration::from_millis(50), "{took:?}");
    assert!(took < Duration::from_millis(200) + KILL_GRACE + Duration::from_secs(2), "{took:?}");
}

#[test]
fn stop_runs_graceful_then_force_even_when_graceful_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let logs = Logs::open(dir.path(), LogSettings::default()).unwrap();
    let trace = dir.path().join("trace");
    let body = format!(
        "echo \"run args=[$*] action=$FARM_ACTION mode=$FARM_STOP_MODE\" >> {}\n[ \"$1\" = force ] || sleep 1000",
        trace.display()
    );
    let s = settings(dir.path(), None, Some(script(dir.path(), "stop_both", &body)), Duration::from_millis(400));
    let out = scripts::run_phase(&s, Phase::Stop, &logs);
    assert_eq!(out.runs.len(), 2);
    assert_eq!(out.runs[0].exit, Exit::TimedOut);
    assert_eq!(out.runs[0].label, "stop_both");
    assert_eq!(out.runs[1].exit, Exit::Code(0));
    assert_eq!(out.runs[1].label, "stop_both force");
    assert!(out.ok, "the force pass decides");
    assert_eq!(
        read(trace),
        "run args=[] action=stop mode=graceful\nrun args=[force] action=stop mode=force\n"
    );
}

#[test]
fn the_runner_reports_on_its_channel_and_refuses_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let logs = Logs::open(dir.path(), LogSettings::default()).unwrap();
    let s = settings(dir.path(), Some(script(dir.path(), "start_both", "sleep 0.3; echo done")), None, Duration::from_secs(10));
    let (mut runner, rx) = ScriptRunner::new(s, logs);
    runner.spawn(Phase::Start).unwrap();
    // A spawn that waited for the script would have its report on the channel already.
    assert!(rx.try_recv().is_err(), "spawn must not wait for the script");
    assert_eq!(runner.running(), Some(Phase::Start));
    assert!(matches!(runner.spawn(Phase::Stop), Err(ScriptError::Busy(Phase::Start))));
    let out = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!((out.phase, out.ok), (Phase::Start, true));
    // Once reported, the runner is free again.
    let deadline = Instant::now() + Duration::from_secs(2);
    while runner.running().is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    runner.spawn(Phase::Stop).unwrap();
    let out = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!((out.phase, out.ok, out.runs.len()), (Phase::Stop, true, 0));
}

#[test]
fn a_daemon_keeping_the_output_open_does_not_block_the_script() {
    let dir = tempfile::tempdir().unwrap();
    let logs = Logs::open(dir.path(), LogSettings::default()).unwrap();
    let pidfile = dir.path().join("daemon.pid");
    // The "daemon" inherits stdout and outlives the script.
    let body = format!("(sleep 3; echo late) &\necho $! > {}\necho started", pidfile.display());
    let s = settings(dir.path(), Some(script(dir.path(), "start_both", &body)), None, Duration::from_secs(10));
    let t0 = Instant::now();
    let out = scripts::run_phase(&s, Phase::Start, &logs);
    assert!(out.ok);
    assert!(t0.elapsed() < Duration::from_secs(2), "waited for the daemon: {:?}", t0.elapsed());
    assert!(read(dir.path().join(APP_LOG)).contains("start_both[out] started"));
    if let Ok(pid) = read(pidfile).trim().parse::<i32>() {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
}
