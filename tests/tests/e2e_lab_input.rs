//! End to end through the `farm-lab` command line in farm mode (what `tests/demo.sh` runs:
//! up, health, shares, failover, rejoin, down), and bad input in farm mode: each refused with a
//! clear error and nothing left behind. Needs root. The tests take turns (one farm lab at a
//! time on 2 cores), each with its own prefix.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use farm_tests::lab::{self, client, Lab, LabError, LabOptions, FARMD};

const FARM_LAB: &str = env!("CARGO_BIN_EXE_farm-lab");

/// The binaries, built once; holding the lock serialises the tests.
fn bins() -> std::sync::MutexGuard<'static, PathBuf> {
    static BINS: OnceLock<Mutex<PathBuf>> = OnceLock::new();
    BINS.get_or_init(|| Mutex::new(common::build_bins())).lock().unwrap_or_else(|p| p.into_inner())
}

fn farm_lab(args: &[&str]) -> Output {
    Command::new(FARM_LAB).args(args).output().expect("run farm-lab")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn assert_gone(prefix: &str) {
    let left = lab::leftovers(prefix).unwrap();
    assert!(left.is_empty(), "lab {prefix} left: {left:?}");
    let pg = Command::new("pgrep").args(["-f", &format!("/run/{prefix}-lab/")]).output().unwrap();
    assert!(!pg.status.success(), "processes left: {}", text(&pg.stdout));
    let shm = std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().starts_with(&format!("{prefix}-lab-")));
    assert!(!shm, "tables left in /dev/shm");
}

/// The milliseconds in `... after <N> ms ...`.
fn ms_after(s: &str) -> Option<u64> {
    s.split("after ").nth(1)?.split(" ms").next()?.trim().parse().ok()
}

#[test]
fn cli_farm_mode_up_health_shares_failover_rejoin_down() {
    let bins = bins();
    let p = "e2ec";
    lab::down(p).unwrap();
    let bin_dir = bins.to_string_lossy().to_string();
    let up = farm_lab(&["--prefix", p, "up", "--mode", "farm", "--bin-dir", &bin_dir]);
    assert!(up.status.success(), "up: {}", text(&up.stderr));
    assert!(text(&up.stdout).contains("lab e2ec up (farm mode)"), "{}", text(&up.stdout));
    let run = |args: &[&str]| {
        let mut full = vec!["--prefix", p];
        full.extend_from_slice(args);
        let out = farm_lab(&full);
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    };

    let (ok, out, err) = run(&["health", "--wait", "10"]);
    assert!(ok, "{out}{err}");
    for i in 1..=3 {
        assert!(out.contains(&format!("n{i} UP (ready.txt 200, ")), "{out}");
    }
    let (ok, out, err) = run(&["shares", "--no-color"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("508 client addresses to http://198.18.0.100:80/"), "{out}");
    assert!(out.contains("failed 0"), "{out}");
    let cells: usize = out.lines().filter(|l| l.starts_with("  ") && l.trim().bytes().all(|b| b"123".contains(&b))).map(|l| l.trim().len()).sum();
    assert_eq!(cells, 508, "one mosaic cell per client: {out}");
    let (ok, out, err) = run(&["shares", "--port", "8080", "--no-color"]);
    assert!(ok && out.contains("failed 0"), "{out}{err}");

    let (ok, out, err) = run(&["failover", "n9"]);
    assert!(!ok && err.contains("unknown node \"n9\""), "{out}{err}");
    let (ok, out, err) = run(&["failover", "n2"]);
    assert!(ok, "{out}{err}");
    let line = out.lines().find(|l| l.contains("succeed again after")).unwrap_or_else(|| panic!("{out}"));
    let first = ms_after(line).unwrap_or_else(|| panic!("{line}"));
    println!("farm-lab failover n2: {line}");
    assert!(first <= 1500, "{line}");
    let (_, out, _) = run(&["health"]);
    assert!(out.contains("n2 down") && out.contains("n1 UP"), "{out}");
    let (ok, out, _) = run(&["shares", "--no-color"]);
    assert!(ok && out.contains("n2    0 ( 0.0%)") && out.contains("failed 0"), "{out}");

    let (ok, out, err) = run(&["rejoin", "2"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("UP after") && out.contains("buckets again after"), "{out}");
    let (ok, out, err) = run(&["health", "--wait", "10"]);
    assert!(ok && out.contains("n2 UP"), "{out}{err}");

    let (ok, out, err) = run(&["down"]);
    assert!(ok, "{out}{err}");
    assert_gone(p);
    // Farm-mode commands on a lab that is not up: a clear error.
    for cmd in [&["health"][..], &["shares"], &["failover", "n1"], &["rejoin", "n1"]] {
        let (ok, _, err) = run(cmd);
        assert!(!ok && err.contains("lab e2ec is not up"), "{cmd:?}: {err}");
    }
}

#[test]
fn farm_mode_bad_input_is_refused_and_leaves_nothing() {
    let bins = bins();
    let bin_dir = bins.clone();
    let opts = |p: &str, bin_dir: PathBuf| common::farm_options(p, bin_dir);

    // farmd present, farm-dataplane missing.
    lab::down("e2eb").unwrap();
    let only_farmd = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(bin_dir.join(FARMD), only_farmd.path().join(FARMD)).unwrap();
    let e = Lab::up(&opts("e2eb", only_farmd.path().into())).unwrap_err();
    assert!(matches!(&e, LabError::Missing { what, .. } if what == "farm-dataplane"), "{e}");
    assert!(e.to_string().contains("cargo build --release"), "{e}");
    assert!(!Path::new("/run/e2eb-lab").exists());

    // A template that does not exist, or with an unknown key: nothing is created.
    let e = Lab::up(&LabOptions { template: Some("/nonexistent/lab.toml".into()), ..opts("e2eb", bin_dir.clone()) })
        .unwrap_err();
    assert!(e.to_string().contains("/nonexistent/lab.toml"), "{e}");
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bad.path(), lab::LAB_TEMPLATE.replace("pulse = \"100ms\"", "pulse = \"100ms\"\npulsar = 1")).unwrap();
    let e = Lab::up(&LabOptions { template: Some(bad.path().into()), ..opts("e2eb", bin_dir.clone()) }).unwrap_err();
    assert!(matches!(&e, LabError::Config(m) if m.contains("pulsar")), "{e}");
    assert_gone("e2eb");

    // Command-line errors in farm mode (clap: exit 2, the option named).
    for (args, needle) in [
        (vec!["up", "--mode", "farm", "--bogus"], "--bogus"),
        (vec!["up", "--mode", "farm", "--nodes", "40"], "--nodes"),
        (vec!["failover"], "<NODE>"),
        (vec!["shares", "--port", "http"], "--port"),
    ] {
        let mut full = vec!["--prefix", "e2eb"];
        full.extend(args.iter());
        let out = farm_lab(&full);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains(needle), "{args:?}: {}", text(&out.stderr));
    }
    let bin_arg = bin_dir.to_string_lossy().to_string();
    let out = farm_lab(&[
        "--prefix", "e2eb", "up", "--mode", "farm", "--bin-dir", &bin_arg, "--config-template", "/nonexistent/t.toml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/t.toml"), "{}", text(&out.stderr));
    assert_gone("e2eb");

    // farmd's API port already taken in n3 when its farmd is about to start: refused with what
    // holds it; the nodes already running are torn down.
    lab::down("e2ep").unwrap();
    let squatter = std::thread::spawn(|| {
        let start = Instant::now();
        while !Path::new("/run/netns/e2ep-n3").exists() {
            assert!(start.elapsed() < Duration::from_secs(20), "namespace e2ep-n3 never appeared");
            std::thread::sleep(Duration::from_millis(5));
        }
        // The file appears before `ip netns add` has mounted the namespace on it: retry.
        loop {
            let bound = std::thread::spawn(|| {
                client::enter("e2ep-n3").ok()?;
                TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 9010)).ok()
            });
            if let Some(l) = bound.join().unwrap() {
                break l;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "cannot bind 9010 in e2ep-n3");
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let e = Lab::up(&LabOptions { step_delay: Duration::from_millis(150), ..opts("e2ep", bin_dir.clone()) }).unwrap_err();
    let listener = squatter.join().unwrap();
    match &e {
        LabError::PortInUse { ns, port: 9010, proto: "tcp", .. } => assert_eq!(ns, "e2ep-n3"),
        other => panic!("expected PortInUse, got {other}"),
    }
    assert!(e.to_string().contains("port 9010/tcp is already in use in namespace e2ep-n3"), "{e}");
    drop(listener);
    assert_gone("e2ep");
}
