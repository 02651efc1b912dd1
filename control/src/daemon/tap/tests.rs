//! [`TapSetup`] with fake `ip` programs (shell scripts), and with the real `ip` in a network
//! namespace of its own holding a TAP named like the data plane's (`ip tuntap`, as DPDK's
//! `net_tap` creates it).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use super::*;

const ADDRS: [&str; 2] = ["198.18.0.1/16", "2001:db8::1/64"];

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn setup(dir: &Path, program: PathBuf) -> TapSetup {
    TapSetup::new(program, "farm0", ADDRS.iter().map(|s| s.to_string()).collect(), dir.join("ip.err"))
}

/// Polls until a report comes (at most 5 s). That `poll` never waits for the run is checked
/// without a clock: the poll right after a request reports nothing ("started, not finished").
fn report(t: &mut TapSetup) -> TapReport {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = t.poll(Instant::now());
        if let Some(r) = r {
            return r;
        }
        assert!(Instant::now() < deadline, "no report");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn one_batch_run_puts_every_address_then_sets_the_link_up() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let ip = script(dir.path(), "ip", &format!("echo \"$@\" >> {0}\ncat >> {0}", log.display()));
    let mut t = setup(dir.path(), ip);
    assert_eq!(
        t.batch(),
        "address replace 198.18.0.1/16 dev farm0\naddress replace 2001:db8::1/64 dev farm0\nlink set dev farm0 up\n"
    );
    // Nothing asked: nothing runs.
    assert_eq!(t.poll(Instant::now()), None);
    assert!(!t.running() && !t.pending());
    t.request();
    assert!(t.pending());
    assert_eq!(t.poll(Instant::now()), None, "started, not finished");
    assert!(t.running());
    assert_eq!(report(&mut t), TapReport::Configured { attempts: 1 });
    assert!(!t.pending() && !t.running());
    assert_eq!(fs::read_to_string(&log).unwrap(), format!("-force -batch -\n{}", t.batch()));
    // Done: nothing more runs until the next request (the next data-plane start).
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(t.poll(Instant::now()), None);
    assert!(!t.running());
    t.request();
    assert_eq!(report(&mut t), TapReport::Configured { attempts: 1 });
    assert_eq!(fs::read_to_string(&log).unwrap().matches("-force -batch -").count(), 2);
}

#[test]
fn a_failure_is_reported_once_and_retried_at_the_next_poll() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("count");
    // Fails twice ("Cannot find device"), then succeeds.
    let ip = script(
        dir.path(),
        "ip",
        &format!(
            "cat > /dev/null\necho x >> {0}\nif [ $(wc -l < {0}) -le 2 ]; then echo 'Cannot find device \"farm0\"' >&2; exit 1; fi",
            count.display()
        ),
    );
    let mut t = setup(dir.path(), ip);
    t.request();
    match report(&mut t) {
        TapReport::Failed { error, repeated: false } => {
            assert!(error.contains("exit status: 1") && error.contains("Cannot find device \"farm0\""), "{error}");
        }
        other => panic!("{other:?}"),
    }
    // Not restarted by the poll that reported the failure: at the next one.
    assert!(!t.running() && t.pending());
    assert!(matches!(report(&mut t), TapReport::Failed { repeated: true, .. }));
    assert_eq!(report(&mut t), TapReport::Configured { attempts: 3 });
    assert_eq!(fs::read_to_string(&count).unwrap().lines().count(), 3);
}

#[test]
fn cancel_and_new_requests_supersede_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let ip = script(dir.path(), "ip", &format!("cat > /dev/null\nsleep 0.2\necho run >> {}", log.display()));
    let mut t = setup(dir.path(), ip);
    // The data plane died while ip ran: its result is not reported, nothing else runs.
    t.request();
    assert_eq!(t.poll(Instant::now()), None);
    t.cancel();
    assert!(!t.pending());
    let deadline = Instant::now() + Duration::from_secs(5);
    while t.running() {
        assert_eq!(t.poll(Instant::now()), None);
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(fs::read_to_string(&log).unwrap().lines().count(), 1);
    // Ready again while ip ran for the previous start: the run is repeated for the new TAP.
    t.request();
    assert_eq!(t.poll(Instant::now()), None);
    t.request();
    assert_eq!(report(&mut t), TapReport::Configured { attempts: 1 });
    assert_eq!(fs::read_to_string(&log).unwrap().lines().count(), 3);
}

#[test]
fn a_missing_or_hung_program_is_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = setup(dir.path(), dir.path().join("no-such-ip"));
    t.request();
    match t.poll(Instant::now()) {
        Some(TapReport::Failed { error, repeated: false }) => assert!(error.contains("cannot run"), "{error}"),
        other => panic!("{other:?}"),
    }
    assert!(t.pending());
    let ip = script(dir.path(), "ip", "exec sleep 30");
    let mut t = setup(dir.path(), ip).with_timeout(Duration::from_millis(100));
    t.request();
    assert_eq!(t.poll(Instant::now()), None);
    let pid = t.running.as_ref().unwrap().child.id();
    match report(&mut t) {
        TapReport::Failed { error, .. } => assert!(error.contains("killed"), "{error}"),
        other => panic!("{other:?}"),
    }
    assert!(fs::metadata(format!("/proc/{pid}")).is_err(), "killed and reaped");
}

/// A network namespace, removed on drop.
struct Netns(String);

impl Netns {
    fn ip(&self, args: &[&str]) -> String {
        let o = Command::new(find_ip().unwrap()).args(["-n", &self.0]).args(args).output().unwrap();
        assert!(o.status.success(), "ip -n {} {args:?}: {}", self.0, String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new(find_ip().unwrap()).args(["netns", "delete", &self.0]).status();
    }
}

#[test]
fn the_real_ip_configures_the_interface_again_after_it_is_recreated() {
    let ip = find_ip().expect("iproute2 installed");
    let ns = Netns(format!("farmd-tap-{}", std::process::id()));
    let st = Command::new(&ip).args(["netns", "add", &ns.0]).status().unwrap();
    assert!(st.success(), "ip netns add (needs root)");
    ns.ip(&["tuntap", "add", "dev", "farm0", "mode", "tap"]);
    let dir = tempfile::tempdir().unwrap();
    let wrapper = script(dir.path(), "ip-in-ns", &format!("exec {} -n {} \"$@\"", ip.display(), ns.0));
    let mut t = setup(dir.path(), wrapper);
    for round in 0..2 {
        t.request();
        assert_eq!(report(&mut t), TapReport::Configured { attempts: 1 }, "round {round}");
        let addrs = ns.ip(&["-br", "address", "show", "dev", "farm0"]);
        for a in ADDRS {
            assert!(addrs.contains(a), "round {round}: {a} not in {addrs}");
        }
        let link = ns.ip(&["link", "show", "dev", "farm0"]);
        assert!(link.contains(",UP") || link.contains("<UP"), "round {round}: {link}");
        // Idempotent: a second run changes nothing and succeeds.
        t.request();
        assert_eq!(report(&mut t), TapReport::Configured { attempts: 1 });
        assert_eq!(ns.ip(&["-br", "address", "show", "dev", "farm0"]), addrs);
        // A data-plane restart recreates the interface without addresses.
        ns.ip(&["link", "delete", "farm0"]);
        ns.ip(&["tuntap", "add", "dev", "farm0", "mode", "tap"]);
        assert!(!ns.ip(&["-br", "address", "show", "dev", "farm0"]).contains("198.18.0.1"));
    }
    // No interface (the data plane is not there): a clear failure from ip.
    ns.ip(&["link", "delete", "farm0"]);
    t.request();
    match report(&mut t) {
        TapReport::Failed { error, .. } => assert!(error.contains("farm0"), "{error}"),
        other => panic!("{other:?}"),
    }
}
