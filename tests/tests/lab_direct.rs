//! The lab in direct mode (no farm): every node answers from the client namespace, faults
//! work, teardown leaves nothing, bad input is refused with nothing left behind, and an
//! interrupted or killed `farm-lab up` is cleaned up. Needs root (namespaces, veths, bridge).
//!
//! Each test uses its own lab prefix, so they run in parallel with each other and with a lab
//! a developer has up (default prefix `farm`).

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use farm_tests::lab::{self, Lab, LabError, LabOptions, Mode};

const FARM_LAB: &str = env!("CARGO_BIN_EXE_farm-lab");

/// Removes what a killed earlier run of a test may have left, so the test starts clean.
fn fresh(prefix: &str) {
    lab::down(prefix).unwrap();
}

fn direct(prefix: &str, nodes: usize) -> LabOptions {
    LabOptions { prefix: prefix.into(), nodes, mode: Mode::Direct, ..LabOptions::default() }
}

fn farm_lab(args: &[&str]) -> Output {
    Command::new(FARM_LAB).args(args).output().expect("run farm-lab")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts nothing of lab `prefix` is on the machine, by independent means too.
fn assert_gone(prefix: &str) {
    let left = lab::leftovers(prefix).unwrap();
    assert!(left.is_empty(), "lab {prefix} left: {left:?}");
    let ns = text(&Command::new("ip").args(["netns", "list"]).output().unwrap().stdout);
    assert!(
        !ns.lines().any(|l| l.starts_with(&format!("{prefix}-"))),
        "namespaces left: {ns}"
    );
    let links = text(&Command::new("ip").args(["-br", "link"]).output().unwrap().stdout);
    assert!(!links.lines().any(|l| l.starts_with(prefix)), "links left: {links}");
    let run_dir = format!("/run/{prefix}-lab/");
    let pg = Command::new("pgrep").args(["-f", &run_dir]).output().unwrap();
    assert!(!pg.status.success(), "processes left: {}", text(&pg.stdout));
    assert!(!Path::new(&run_dir).exists());
}

fn pid_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, r)| !r.trim_start().starts_with('Z')))
}

#[test]
fn every_node_answers_from_many_client_addresses_and_teardown_leaves_nothing() {
    fresh("tdir");
    let mut l = Lab::up(&direct("tdir", 3)).expect("lab up");
    assert_eq!(l.client_addrs().len(), 508);
    let srcs = [l.client_addr(0), l.client_addr(300), l.client_addr(507)];
    for i in 1..=3 {
        for src in srcs {
            let body = l.client_curl(src, &format!("http://{}/", l.node_addr(i))).unwrap();
            assert_eq!(body, format!("node n{i}\n"), "node {i} from {src}");
        }
    }
    // The server saw the client's chosen source address.
    let log = std::fs::read_to_string(l.httpd(2).access_log()).unwrap();
    assert!(log.contains(&format!("{} 198.18.0.2 200", l.client_addr(300))), "{log}");
    // The big file for long downloads.
    let head = l.client_curl_args(srcs[0], &["-sfI", "http://198.18.0.3/big.bin"]).unwrap();
    assert!(head.status.success());
    assert!(text(&head.stdout).to_ascii_lowercase().contains("content-length: 67108864"));

    // A second Apache on a node is refused: port 80 is taken in that namespace.
    match l.start_app(1) {
        Err(LabError::PortInUse { ns, port: 80, proto: "tcp", by }) => {
            assert_eq!(ns, "tdir-n1");
            assert!(by.contains("apache2"), "{by}");
        }
        other => panic!("expected PortInUse, got {other:?}"),
    }

    // A crashed node stops answering; the others don't notice; it comes back.
    let killed = l.kill_node(2).unwrap();
    assert!(!killed.is_empty());
    assert!(l.node_pids(2).is_empty());
    assert!(l.client_curl(srcs[0], "http://198.18.0.2/").is_err());
    assert_eq!(l.client_curl(srcs[0], "http://198.18.0.1/").unwrap(), "node n1\n");
    l.start_app(2).unwrap();
    assert_eq!(l.client_curl(srcs[0], "http://198.18.0.2/").unwrap(), "node n2\n");

    // A pulled cable.
    l.set_link(3, false).unwrap();
    let out = l.client_curl_args(srcs[1], &["-sf", "--max-time", "1", "http://198.18.0.3/"]).unwrap();
    assert!(!out.status.success(), "node 3 answered with its cable pulled");
    l.set_link(3, true).unwrap();
    assert_eq!(l.client_curl(srcs[1], "http://198.18.0.3/").unwrap(), "node n3\n");

    // A partition {n1} | {n2, n3}: n1 and n2 cannot talk, n2 and n3 can, the client reaches
    // everyone. Rules stay until heal; teardown removes them too.
    let node_curl = |from: usize, to: usize| {
        let out = l
            .exec(&l.node_ns(from), &["curl", "-sf", "--max-time", "1", &format!("http://198.18.0.{to}/")])
            .unwrap();
        out.status.success()
    };
    assert!(node_curl(1, 2));
    l.partition(&[&[1], &[2, 3]]).unwrap();
    assert!(!node_curl(1, 2) && !node_curl(2, 1) && !node_curl(3, 1));
    assert!(node_curl(2, 3));
    assert_eq!(l.client_curl(srcs[0], "http://198.18.0.1/").unwrap(), "node n1\n");
    assert!(matches!(l.partition(&[&[1], &[4]]), Err(LabError::Invalid(_))));
    l.heal().unwrap();
    assert!(node_curl(1, 2));
    l.udp_loss(4790, 20).unwrap();

    let pids: Vec<i32> = (1..=3).flat_map(|i| l.node_pids(i)).collect();
    assert!(pids.len() >= 6, "each node runs an Apache parent and child: {pids:?}");
    let rep = l.teardown().unwrap();
    assert!(rep.removed.iter().any(|r| r == "bridge tdirbr0"), "{:?}", rep.removed);
    assert!(rep.removed.iter().any(|r| r.contains("farmlab_tdir")), "{:?}", rep.removed);
    assert!(pids.iter().all(|p| !pid_alive(*p)), "lab processes survive teardown");
    assert_gone("tdir");
}

#[test]
fn cli_up_status_exec_down_and_down_is_idempotent() {
    fresh("tcli");
    let out = farm_lab(&["--prefix", "tcli", "up", "--mode", "direct", "--nodes", "2", "--clients", "300"]);
    assert!(out.status.success(), "up: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("n2: namespace tcli-n2, address 198.18.0.2"));

    let st = farm_lab(&["--prefix", "tcli", "status"]);
    let st_text = text(&st.stdout);
    assert!(st.status.success());
    assert!(st_text.contains("mode direct, 2 nodes, 300 client addresses"), "{st_text}");
    assert!(st_text.contains("198.18.0.2/16"), "{st_text}");
    assert!(!st_text.contains("MISSING"), "{st_text}");

    let ex = farm_lab(&["--prefix", "tcli", "exec", "n1", "--", "ip", "-br", "address", "show", "dev", "dp0"]);
    assert!(text(&ex.stdout).contains("198.18.0.1/16"), "{}", text(&ex.stderr));
    let ex = farm_lab(&[
        "--prefix", "tcli", "exec", "cl", "--", "curl", "-s", "--interface", "198.18.2.46", "http://198.18.0.2/",
    ]);
    assert_eq!(text(&ex.stdout), "node n2\n", "{}", text(&ex.stderr));
    let ex = farm_lab(&["--prefix", "tcli", "exec", "x9", "--", "true"]);
    assert!(!ex.status.success());
    assert!(text(&ex.stderr).contains("unknown node"));

    // The lab is up: a second `up` with its prefix is refused and does not disturb it.
    let again = farm_lab(&["--prefix", "tcli", "up", "--mode", "direct"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("already up"), "{}", text(&again.stderr));
    let ex = farm_lab(&["--prefix", "tcli", "exec", "cl", "--", "curl", "-s", "http://198.18.0.1/"]);
    assert_eq!(text(&ex.stdout), "node n1\n");

    let down = farm_lab(&["--prefix", "tcli", "down"]);
    assert!(down.status.success(), "{}", text(&down.stderr));
    assert_gone("tcli");
    let down = farm_lab(&["--prefix", "tcli", "down"]);
    assert!(down.status.success(), "second down: {}", text(&down.stderr));
    assert!(text(&down.stdout).contains("0 items removed"));
    assert!(text(&farm_lab(&["--prefix", "tcli", "status"]).stdout).contains("lab tcli: down"));
}

#[test]
fn bad_input_is_refused_before_anything_is_created() {
    for p in ["tbad", "tfmd", "tfor"] {
        fresh(p);
    }
    let _ = Command::new("ip").args(["link", "delete", "tforbr0"]).output();
    // Usage errors (clap): exit code 2 and a message naming the problem.
    for (args, needle) in [
        (vec!["up", "--nodes", "0"], "--nodes"),
        (vec!["up", "--nodes", "33"], "--nodes"),
        (vec!["up", "--clients", "0"], "--clients"),
        (vec!["up", "--mode", "bogus"], "--mode"),
        (vec!["up", "--bogus"], "--bogus"),
        (vec!["exec", "n1"], "<CMD>"),
    ] {
        let mut full = vec!["--prefix", "tbad"];
        full.extend(args.iter());
        let out = farm_lab(&full);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains(needle), "{args:?}: {}", text(&out.stderr));
    }
    let out = farm_lab(&["--prefix", "Bad-Prefix", "up", "--mode", "direct"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--prefix"), "{}", text(&out.stderr));

    // Library options out of range.
    let e = Lab::up(&LabOptions { clients: 5000, ..direct("tbad", 3) }).unwrap_err();
    assert!(matches!(e, LabError::Invalid(_)), "{e}");

    // Missing programs.
    let e = Lab::up(&LabOptions { apache: "/nonexistent/apache2".into(), ..direct("tbad", 2) })
        .unwrap_err();
    assert!(matches!(&e, LabError::Missing { what, .. } if what == "/nonexistent/apache2"), "{e}");
    let empty = tempfile::tempdir().unwrap();
    let e = Lab::up(&LabOptions { mode: Mode::Farm, bin_dir: empty.path().into(), ..direct("tbad", 2) })
        .unwrap_err();
    assert!(matches!(&e, LabError::Missing { what, .. } if what == "farmd"), "{e}");
    let out = farm_lab(&["--prefix", "tbad", "up", "--mode", "farm", "--bin-dir", "/nonexistent"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("farmd not found"), "{}", text(&out.stderr));
    assert_gone("tbad");

    // Farm mode with a farmd that dies at start: the error names it and shows its output (here
    // its arguments), and everything built so far is torn down.
    let bins = tempfile::tempdir().unwrap();
    for (name, body) in [("farmd", "echo \"farmd args: $*\"; echo boom >&2; exit 3"), ("farm-dataplane", "exit 1")] {
        let p = bins.path().join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let e = Lab::up(&LabOptions { mode: Mode::Farm, bin_dir: bins.path().into(), ..direct("tfmd", 2) })
        .unwrap_err()
        .to_string();
    assert!(e.contains("farmd exited") && e.contains("boom"), "{e}");
    assert!(e.contains("farmd args: --config /run/tfmd-lab/farm.toml --node n1"), "{e}");
    assert_gone("tfmd");

    // A bridge with the lab's name that is not the lab's: refused, and left alone by `down`.
    let run = |args: &[&str]| assert!(Command::new("ip").args(args).status().unwrap().success());
    run(&["link", "add", "tforbr0", "type", "bridge"]);
    let e = Lab::up(&direct("tfor", 2)).unwrap_err();
    let still_there = Path::new("/sys/class/net/tforbr0").exists();
    let down = lab::down("tfor");
    run(&["link", "delete", "tforbr0"]);
    assert!(matches!(&e, LabError::Conflict(m) if m.contains("not a farm-lab bridge")), "{e}");
    assert!(still_there, "the foreign bridge was removed by up");
    let down = down.unwrap();
    assert!(down.warnings.iter().any(|w| w.contains("tforbr0")), "{down:?}");
    assert_gone("tfor");
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigint_during_up_tears_down() {
    fresh("tint");
    let child = Command::new(FARM_LAB)
        .args(["--prefix", "tint", "up", "--mode", "direct", "--step-delay-ms", "200"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the first node namespace exists: bridge, client and a node are built.
    wait_for("namespace tint-n1", Duration::from_secs(10), || Path::new("/run/netns/tint-n1").exists());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::SIGINT)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("interrupted"), "{}", text(&out.stderr));
    assert_gone("tint");
}

#[test]
fn down_cleans_up_after_a_killed_up() {
    fresh("tkil");
    let mut child = Command::new(FARM_LAB)
        .args(["--prefix", "tkil", "up", "--mode", "direct", "--nodes", "2", "--step-delay-ms", "100"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill -9 farm-lab once the first Apache runs: nothing gets a chance to clean up.
    let pid_file = Path::new("/run/tkil-lab/n1/apache/httpd.pid");
    wait_for("Apache of tkil-n1", Duration::from_secs(10), || pid_file.exists());
    child.kill().unwrap();
    child.wait().unwrap();
    let apache: i32 = std::fs::read_to_string(pid_file).unwrap().trim().parse().unwrap();
    assert!(pid_alive(apache));
    assert!(!lab::leftovers("tkil").unwrap().is_empty());

    let down = farm_lab(&["--prefix", "tkil", "down"]);
    assert!(down.status.success(), "{}", text(&down.stderr));
    assert!(!pid_alive(apache), "Apache survives down");
    assert_gone("tkil");
}
