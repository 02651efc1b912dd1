//! farmd as a process, alone: configuration errors, `--check`, control-only mode, commands
//! through the API, SIGTERM, and the supervision of a (fake) data plane.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::{script, Farmd};
use farm_control::lifecycle::{Command as LcCommand, State};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const TOKEN: &str = "farmd-cli-test-token";

/// One node on 127.0.0.1 with `dataplane` as its `[dataplane]` section; `extra` is appended to
/// the file (e.g. a `[restart]` section).
fn env(dataplane: &str, extra: &str) -> Farmd {
    Farmd::one_node(Some(TOKEN), |t, _| t.dataplane(dataplane).extra(extra))
}

/// One node whose data plane is a fake running `body` ([`fake_dataplane`]); `dataplane` is
/// added to its `[dataplane]` section, `extra` appended to the file.
fn dp_env(body: &str, dataplane: &str, extra: &str) -> Farmd {
    Farmd::one_node(Some(TOKEN), |t, root| {
        let dp = fake_dataplane(root, body);
        t.dataplane(&format!("uplink = \"net_null0\"\nbinary = \"{}\"\n{dataplane}", dp.display())).extra(extra)
    })
}

/// Nothing was created next to the config.
fn assert_untouched(e: &Farmd) {
    for p in ["table", "log", "run"] {
        assert!(!e.root.join(p).exists(), "{p} was created");
    }
}

fn one_error_line(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {err}");
    assert!(lines[0].starts_with("farmd: error: "), "{err}");
    lines[0].to_string()
}

fn running(pid: u32) -> bool {
    fs::read_link(format!("/proc/{pid}/exe")).is_ok()
}

#[test]
fn bad_configurations_exit_non_zero_with_one_line_and_touch_nothing() {
    // Unknown key: file, line, key.
    let e = env("enabled = false", "\n[heartbeat2]\nx = 1\n");
    let o = e.run(&["--node", "n1"]);
    assert_eq!(o.status.code(), Some(2));
    let line = one_error_line(&o);
    assert!(line.contains("farm.toml") && line.contains("heartbeat2"), "{line}");
    assert_untouched(&e);

    // A secret readable by others.
    let e = env("enabled = false", "");
    fs::set_permissions(e.root.join("secret"), fs::Permissions::from_mode(0o644)).unwrap();
    let o = e.run(&["--node", "n1", "--start"]);
    assert_eq!(o.status.code(), Some(2));
    let line = one_error_line(&o);
    assert!(line.contains("module.secret_file") && line.contains("0600"), "{line}");
    assert_untouched(&e);

    // No such node.
    let o = e.run(&["--node", "n9"]);
    assert_ne!(o.status.code(), Some(0));
    let line = one_error_line(&o);
    assert!(line.contains("n9"), "{line}");
    assert_untouched(&e);

    // The data-plane program does not exist.
    let e = env("uplink = \"net_null0\"\nbinary = \"/nonexistent/farm-dataplane\"", "");
    let o = e.run(&["--node", "n1"]);
    assert_eq!(o.status.code(), Some(2));
    let line = one_error_line(&o);
    assert!(line.contains("dataplane.binary"), "{line}");
    assert_untouched(&e);

    // --check on a good file: ok, nothing created.
    let e = env("enabled = false", "");
    let o = e.run(&["--node", "n1", "--check"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "ok");
    assert_untouched(&e);
}

#[test]
fn control_only_starts_in_stop_obeys_commands_and_exits_on_sigterm() {
    let mut e = env("enabled = false", "");
    e.start(&[]);
    let st = e.wait_status(Duration::from_secs(10), |_| true);
    assert_eq!(st.state, State::Stop, "the module stays in STOP without --start");
    assert!(!e.root.join("table").exists(), "control-only mode writes no table");
    assert!(e.api().get_text("/var/modules/web/ready.txt").is_err());

    e.api().command(LcCommand::Start, Some("test")).unwrap();
    // A single node owns every bucket once its startup grace (dead_after) is over.
    let st = e.wait_status(Duration::from_secs(10), |s| s.state == State::Up && s.buckets_owned == 256);
    assert_eq!(st.view, vec![0]);
    assert_eq!(st.members.len(), 1);
    assert_eq!(st.members[0].buckets, 256);
    assert!(st.dataplane.is_none());
    assert_eq!(e.api().get_text("/var/modules/web/ready.txt").unwrap().trim(), "OK");

    e.api().command(LcCommand::Stop, None).unwrap();
    let st = e.wait_status(Duration::from_secs(10), |s| s.state == State::Stop);
    assert_eq!(st.buckets_owned, 0);

    let status = e.terminate(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{}", e.stderr());
    let log = e.module_log();
    assert!(log.contains("admin start from") && log.contains("test"), "{log}");
    assert!(log.contains("farmd exited"), "{log}");
}

/// A fake data plane: records its arguments, then runs `body`.
fn fake_dataplane(root: &Path, body: &str) -> PathBuf {
    script(root, "fake-dataplane", &format!("echo \"$@\" >> {}/dp-args\n{body}", root.display()))
}

#[test]
fn a_data_plane_that_never_stamps_holds_the_node_in_wait_and_is_stopped_with_farmd() {
    let mut e = dp_env("exec sleep 60", "", "");
    e.start(&["--start"]);
    let st = e.wait_status(Duration::from_secs(10), |s| s.state == State::Wait);
    assert_eq!(st.waiting_on, vec!["dataplane".to_string()], "{st:?}");
    assert_eq!(st.buckets_owned, 0);
    assert!(e.api().get_text("/var/modules/web/ready.txt").is_err(), "not ready while the data plane is not");
    // It was started with the config, the node and the table, in its own process group.
    let args = fs::read_to_string(e.root.join("dp-args")).unwrap();
    let table = e.root.join("table");
    assert_eq!(args.trim(), format!("--config {} --node n1 --table {}", e.config.display(), table.display()));
    assert!(table.exists());
    let pid: u32 = fs::read_to_string(e.root.join("run/dataplane.pid")).unwrap().trim().parse().unwrap();
    assert!(running(pid));
    assert_eq!(nix::unistd::getpgid(Some(Pid::from_raw(pid as i32))).unwrap().as_raw(), pid as i32);

    let status = e.terminate(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", e.stderr());
    assert!(!running(pid), "the data plane is stopped with farmd");
    assert!(!e.root.join("run/dataplane.pid").exists());
}

#[test]
fn a_data_plane_that_keeps_dying_is_restarted_per_policy_then_the_module_stops() {
    let mut e = dp_env("exit 3", "", "\n[restart]\nmaxloop = 1\nloop_interval = \"1h\"\n");
    e.start(&["--start"]);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(15);
    while !e.module_log().contains("stopping the module") {
        assert!(Instant::now() < deadline, "{}\n{}", e.module_log(), e.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = e.wait_status(Duration::from_secs(10), |s| s.state == State::Stop);
    assert_eq!(st.buckets_owned, 0);
    let starts = fs::read_to_string(e.root.join("dp-args")).unwrap().lines().count();
    assert_eq!(starts, 2, "started, restarted once (maxloop 1), then given up");
    let log = e.module_log();
    assert!(log.contains("exited with code 3; restarting it"), "{log}");
    assert!(log.contains("exited with code 3; not restarted"), "{log}");
    // It stays down.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(fs::read_to_string(e.root.join("dp-args")).unwrap().lines().count(), 2);
    // An administrator's start resets the policy and starts the data plane again.
    e.api().command(LcCommand::Start, None).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while fs::read_to_string(e.root.join("dp-args")).unwrap().lines().count() < 3 {
        assert!(Instant::now() < deadline, "{}", e.module_log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = e.terminate(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", e.stderr());
}

#[test]
fn a_reader_stuck_on_an_old_generation_gets_the_data_plane_killed_as_wedged() {
    use farm_control::checkers::dataplane::monotonic_ns;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let mut e = dp_env("exec sleep 60", "", "");
    e.start(&["--start"]);
    let pid_file = e.root.join("run/dataplane.pid");
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid: u32 = loop {
        if let Some(p) = fs::read_to_string(&pid_file).ok().and_then(|s| s.trim().parse().ok()) {
            break p;
        }
        assert!(Instant::now() < deadline, "{}", e.stderr());
        std::thread::sleep(Duration::from_millis(10));
    };
    // This test plays the data plane's part in the table: its pid, liveness stamps; lcore 0
    // acknowledges the current generation once and then never again (a wedged worker).
    let table = Arc::new(farm_table::TableReader::open(&e.root.join("table")).unwrap());
    table.set_pid(pid);
    // After farmd's first publication of the membership's table (generation 2).
    while table.peek().0 < 2 {
        assert!(Instant::now() < deadline, "{}", e.stderr());
        std::thread::sleep(Duration::from_millis(5));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (t, s) = (table.clone(), stop.clone());
    let stamper = std::thread::spawn(move || {
        let mut lcore = t.lcore(0).unwrap();
        let g = lcore.begin(0).generation();
        while !s.load(Ordering::Relaxed) {
            lcore.stamp(monotonic_ns());
            std::thread::sleep(Duration::from_millis(1));
        }
        g
    });
    // Ready, then UP after dead_after: the join publishes the table the lcore runs on (one
    // publication is allowed past it), the stop another, which the stuck lcore blocks.
    e.wait_status(Duration::from_secs(10), |s| s.buckets_owned == 256);
    e.api().command(LcCommand::Stop, None).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !e.module_log().contains("stuck on table generation") {
        assert!(Instant::now() < deadline, "{}\n{}", e.module_log(), e.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let acked = stamper.join().unwrap();
    let log = e.module_log();
    assert!(log.contains(&format!("data plane (pid {pid}) wedged: lcore 0 stuck on table generation {acked}")), "{log}");
    assert!(!running(pid), "the wedged data plane was killed");
    // The table was published anyway (readers reset), and a new data plane started.
    let (generation, _, _) = table.peek();
    assert!(generation > acked + 1, "generation {generation}, stuck reader on {acked}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while fs::read_to_string(e.root.join("dp-args")).unwrap().lines().count() < 2 {
        assert!(Instant::now() < deadline, "{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = e.terminate(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", e.stderr());
}

#[test]
fn a_second_signal_during_the_graceful_stop_exits_at_once() {
    let mut e = Farmd::one_node(Some(TOKEN), |t, root| {
        // The graceful run takes 3 s.
        let stop_both = script(root, "stop_both", "[ \"$1\" = force ] || sleep 3");
        t.extra(&format!("\n[scripts]\nstop_both = \"{}\"\n", stop_both.display()))
    });
    e.start(&["--start"]);
    e.wait_status(Duration::from_secs(10), |s| s.state == State::Up);
    e.signal(Signal::SIGTERM);
    e.wait_status(Duration::from_secs(5), |s| s.state == State::Stopping);
    e.signal(Signal::SIGINT);
    // At once: farmd does not wait for stop_both.
    let status = e.wait_exit(Duration::from_secs(2));
    assert_eq!(status.code(), Some(1));
    let err = e.stderr();
    assert!(err.contains("farmd: error: second termination signal"), "{err}");
}

/// Plays the data plane's part in the table: the pid of whichever data plane farmd runs (from
/// its pid file), and liveness stamps; until dropped.
struct Stamper {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Stamper {
    fn start(e: &Farmd) -> Stamper {
        use farm_control::checkers::dataplane::monotonic_ns;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;

        let pid_file = e.root.join("run/dataplane.pid");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !e.root.join("table").exists() || !pid_file.exists() {
            assert!(Instant::now() < deadline, "{}", e.stderr());
            std::thread::sleep(Duration::from_millis(10));
        }
        let table = farm_table::TableReader::open(&e.root.join("table")).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let lcore = table.lcore(0).unwrap();
            let mut pid = 0;
            while !s.load(Ordering::Relaxed) {
                if let Some(p) = fs::read_to_string(&pid_file).ok().and_then(|s| s.trim().parse().ok()) {
                    if p != pid {
                        pid = p;
                        table.set_pid(pid);
                    }
                }
                lcore.stamp(monotonic_ns());
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Stamper { stop, thread: Some(thread) }
    }
}

impl Drop for Stamper {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An env whose data plane is a fake that sleeps, with `tap_addrs`, and a fake `ip` running
/// `ip_body` (after recording its arguments and batch in `ip-log`).
fn tap_env(tap_addrs: &str, ip_body: &str) -> (Farmd, String) {
    let e = dp_env("exec sleep 60", &format!("tap_addrs = {tap_addrs}"), "");
    let ip = script(&e.root, "fake-ip", &format!("echo \"$@\" >> {0}/ip-log\ncat >> {0}/ip-log\n{ip_body}", e.root.display()));
    (e, ip.display().to_string())
}

fn ip_runs(e: &Farmd) -> usize {
    fs::read_to_string(e.root.join("ip-log")).unwrap_or_default().matches("-force -batch -").count()
}

fn wait_log(e: &Farmd, text: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while e.module_log().matches(text).count() < count {
        assert!(Instant::now() < deadline, "{text:?} x{count} not in\n{}\n{}", e.module_log(), e.stderr());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn tap_addrs_are_put_on_the_tap_each_time_the_data_plane_becomes_ready() {
    let (mut e, ip) = tap_env("[\"{addr0}/8\", \"198.18.0.100/32\"]", "");
    e.start(&["--ip", &ip]);
    let _stamper = Stamper::start(&e);
    let done = "farm0: addresses 127.0.0.1/8, 198.18.0.100/32 configured, link up";
    wait_log(&e, done, 1);
    let batch = "address replace 127.0.0.1/8 dev farm0\naddress replace 198.18.0.100/32 dev farm0\nlink set dev farm0 up\n";
    assert_eq!(fs::read_to_string(e.root.join("ip-log")).unwrap(), format!("-force -batch -\n{batch}"));
    // Once per start: not again while the same data plane runs.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(ip_runs(&e), 1);

    // The data plane dies; farmd starts a new one, whose TAP has no address: configured again.
    let pid_file = e.root.join("run/dataplane.pid");
    let pid: u32 = fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    wait_log(&e, done, 2);
    assert_eq!(fs::read_to_string(e.root.join("ip-log")).unwrap(), format!("-force -batch -\n{batch}").repeat(2));
    let new_pid: u32 = fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    assert_ne!(new_pid, pid);
    let log = e.module_log();
    let ready = log.find(&format!("data plane ready (pid {new_pid})")).expect("the new data plane got ready");
    assert!(log[ready..].contains(done), "configured after the new data plane got ready:\n{log}");
    let status = e.terminate(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", e.stderr());
}

#[test]
fn tap_addrs_failures_are_logged_once_and_retried_and_ip_must_exist() {
    // No ip program: refused at start-up, naming the key.
    let (e, _) = tap_env("[\"{addr0}/8\"]", "");
    let o = e.run(&["--node", "n1", "--ip", "/nonexistent/ip"]);
    assert_eq!(o.status.code(), Some(2));
    let line = one_error_line(&o);
    assert!(line.contains("dataplane.tap_addrs") && line.contains("/nonexistent/ip"), "{line}");
    assert_untouched(&e);

    // ip fails (the interface is not there) until the file "allow" exists: the started module
    // stays out of the farm meanwhile, the failure is logged once, and ip retried every pulse.
    let body = "if [ ! -e \"$(dirname \"$0\")/allow\" ]; then echo 'Cannot find device \"farm0\"' >&2; exit 1; fi";
    let (mut e, ip) = tap_env("[\"{addr0}/8\"]", body);
    e.start(&["--ip", &ip, "--start"]);
    let _stamper = Stamper::start(&e);
    wait_log(&e, "farm0: cannot configure the addresses: ", 1);
    // Ready for well over dead_after (1s), but no address: held in WAIT, owning nothing.
    std::thread::sleep(Duration::from_millis(1500));
    let st = e.api().status().unwrap();
    assert_eq!((st.state, st.buckets_owned), (State::Wait, 0), "{st:?}");
    assert!(ip_runs(&e) >= 5, "retried every pulse: {} runs", ip_runs(&e));
    let log = e.module_log();
    assert_eq!(log.matches("farm0: cannot configure the addresses: ").count(), 1, "the same failure is logged once:\n{log}");
    assert!(log.contains("exit status: 1: Cannot find device \"farm0\"; retrying every pulse"), "{log}");
    fs::write(e.root.join("allow"), "").unwrap();
    wait_log(&e, "farm0: addresses 127.0.0.1/8 configured, link up (after ", 1);
    e.wait_status(Duration::from_secs(10), |s| s.state == State::Up && s.buckets_owned == 256);
    let status = e.terminate(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", e.stderr());
}

#[test]
fn autostart_starts_the_module_like_start() {
    let mut e = Farmd::one_node(Some(TOKEN), |t, _| t.module("autostart", true));
    e.start(&[]);
    e.wait_status(Duration::from_secs(10), |s| s.state == State::Up);
    assert!(e.module_log().contains("starting the module ([module] autostart)"), "{}", e.module_log());
    let status = e.terminate(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", e.stderr());
}

#[test]
fn the_systemd_unit_starts_the_module_with_options_farmd_accepts() {
    let unit = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/farmd.service")).unwrap();
    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("ExecStart");
    let words: Vec<&str> = exec.split_whitespace().collect();
    assert!(words[0].ends_with("/farmd"), "{exec}");
    assert!(words.contains(&"--start"), "the module starts at boot: {exec}");
    // The same options on a test file (its --config instead of /etc/farm/farm.toml).
    let e = env("enabled = false", "");
    let mut args: Vec<&str> = Vec::new();
    let mut it = words[1..].iter();
    while let Some(w) = it.next() {
        if *w == "--config" {
            it.next();
        } else {
            args.push(w);
        }
    }
    let o = e.run(&[&args[..], &["--node", "n1", "--check"]].concat());
    assert_eq!(o.status.code(), Some(0), "{exec}: {}", String::from_utf8_lossy(&o.stderr));
}
