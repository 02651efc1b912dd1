//! Shared by the lab test binaries: building the farm binaries, and a small test runner that
//! shares one lab between the cases of a binary (`harness = false`).
#![allow(dead_code)] // each test binary uses its part

use std::io::Write as _;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use farm_tests::lab::{self, Health, Lab, LabOptions, Mode};

/// Builds farmd, farmctl and farm-dataplane (debug) with cargo, in `<target>/lab-bins`, next to
/// the workspace's target directory (so it never waits on the lock of the `cargo test` that
/// runs the tests, and the binaries are never stale). Returns their directory.
pub fn build_bins() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // <target>/<profile>/deps/<this test>
    let target = exe.ancestors().nth(3).expect("test binary under <target>/<profile>/deps");
    let lab_target = target.join("lab-bins");
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "farm-dataplane", "-p", "farm-control", "--bins", "--manifest-path", manifest])
        .env("CARGO_TARGET_DIR", &lab_target)
        .output()
        .expect("run cargo");
    assert!(out.status.success(), "cargo build of the farm binaries: {}", String::from_utf8_lossy(&out.stderr));
    let bin_dir = lab_target.join("debug");
    for b in [lab::FARMD, lab::FARMCTL, lab::DATAPLANE] {
        assert!(bin_dir.join(b).is_file(), "{b} not built in {}", bin_dir.display());
    }
    bin_dir
}

/// A farm-mode lab of 3 nodes with the freshly built binaries.
pub fn farm_options(prefix: &str, bin_dir: PathBuf) -> LabOptions {
    LabOptions { prefix: prefix.into(), nodes: 3, mode: Mode::Farm, bin_dir, ..LabOptions::default() }
}

/// One case of a suite: gets the shared lab, every node UP and the tables settled.
pub type Case = (&'static str, fn(&mut Lab));

/// Brings the lab back to every node UP with settled tables: links up, fault rules removed,
/// dead farmds restarted, stopped modules started, stopped Apaches started.
pub fn restore(lab: &mut Lab) -> Result<(), lab::LabError> {
    let nodes: Vec<usize> = lab.layout().node_numbers().collect();
    lab.heal()?;
    for &i in &nodes {
        lab.set_link(i, true)?;
        if !lab.farmd_running(i) {
            lab.restart_node(i)?;
        }
    }
    if lab.wait_health(&nodes, Health::Up, Duration::from_secs(5)).is_err() {
        for &i in &nodes {
            if lab.health(i) == Health::Up {
                continue;
            }
            if lab.node_state(i).is_ok_and(|s| s == "STOP") {
                lab.api_command(i, "start")?;
            } else if !lab.httpd(i).running() {
                // Held in WAIT by its HTTP checker: a case stopped Apache.
                lab.start_app(i)?;
            }
        }
    }
    lab.wait_health(&nodes, Health::Up, Duration::from_secs(30))?;
    lab.wait_settled(&nodes, Duration::from_secs(10))?;
    Ok(())
}

/// Tears the lab of `prefix` down if the process gets SIGINT/SIGTERM/SIGHUP (cargo test
/// interrupted), then exits.
fn teardown_on_signal(prefix: &str) {
    let prefix = prefix.to_owned();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ])
    .expect("signal handler");
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            eprintln!("signal {sig}: tearing down lab {prefix}");
            let _ = lab::down(&prefix);
            std::process::exit(130);
        }
    });
}

fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

/// Runs `cases` (those whose name contains one of the command-line filters, all without) on one
/// shared lab built with `opts`; before each, [`restore`] (or a rebuilt lab if that fails).
/// Each case's failure is reported on its own; the lab is torn down at the end and checked to
/// leave nothing. Output and exit status like libtest's.
pub fn run_suite(prefix: &str, opts: impl Fn() -> LabOptions, cases: &[Case]) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let selected: Vec<&Case> =
        cases.iter().filter(|(n, _)| filters.is_empty() || filters.iter().any(|f| n.contains(f.as_str()))).collect();
    if args.iter().any(|a| a == "--list") {
        for (n, _) in &selected {
            println!("{n}: test");
        }
        return ExitCode::SUCCESS;
    }
    println!("\nrunning {} tests (one shared lab, prefix {prefix})", selected.len());
    if selected.is_empty() {
        println!("\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; {} filtered out\n", cases.len());
        return ExitCode::SUCCESS;
    }
    let start = Instant::now();
    teardown_on_signal(prefix);
    lab::down(prefix).expect("remove what a killed earlier run left");
    let mut lab = Some(Lab::up(&opts()).unwrap_or_else(|e| panic!("lab {prefix} up: {e}")));
    let mut failed = Vec::new();
    for (name, case) in &selected {
        let t = Instant::now();
        let l = lab.as_mut().expect("a lab");
        if let Err(e) = restore(l) {
            eprintln!("{name}: restoring the lab failed ({e}); building it again");
            drop(lab.take());
            lab = Some(Lab::up(&opts()).unwrap_or_else(|e| panic!("lab {prefix} up again: {e}")));
        }
        let l = lab.as_mut().expect("a lab");
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| case(l)));
        let secs = t.elapsed().as_secs_f64();
        match r {
            Ok(()) => println!("test {name} ... ok ({secs:.1} s)"),
            Err(e) => {
                println!("test {name} ... FAILED ({secs:.1} s)");
                let nodes: String = l.layout().node_numbers().map(|i| l.diagnose(i)).collect();
                failed.push((name, format!("{}\nthe nodes after the failure:{nodes}", panic_text(&*e))));
            }
        }
        let _ = std::io::stdout().flush();
    }
    let rep = lab.take().expect("a lab").teardown();
    let left = lab::leftovers(prefix);
    let mut ok = failed.is_empty();
    match (&rep, &left) {
        (Ok(_), Ok(l)) if l.is_empty() => {}
        _ => {
            println!("teardown of lab {prefix}: {rep:?}, left: {left:?}");
            ok = false;
        }
    }
    if !failed.is_empty() {
        println!("\nfailures:");
        for (n, m) in &failed {
            println!("---- {n} ----\n{m}\n");
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; 0 ignored; 0 measured; {} filtered out; finished in {:.1}s\n",
        if ok { "ok" } else { "FAILED" },
        selected.len() - failed.len(),
        failed.len(),
        cases.len() - selected.len(),
        start.elapsed().as_secs_f64()
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(101)
    }
}
