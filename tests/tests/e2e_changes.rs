//! End to end, planned changes lose nothing (issue 11, DESIGN.md I2, "Graceful stop", "Live
//! changes"): a farm-mode lab of 3 nodes (real farmd + farm-dataplane + Apache, 4096 buckets)
//! under long-lived clients from the client namespace, spread so that every node holds
//! connections:
//!
//! - 60 keep-alive HTTP sessions (20 per node), one connection each, a `GET /` every 200 ms;
//! - slow downloads with their size and checksum checked: one client per node downloading a
//!   1.5 MiB file at 128 KiB/s again and again (each ~12 s, shorter than a graceful stop's
//!   drain timeout), and two clients of n1 (never stopped) downloading one file for longer than
//!   the whole sequence;
//! - 9 clients opening a new connection every 250 ms (the farm leaves no gap);
//! - a capture of every SYN-ACK and RST of the VIP with the MAC of the node that sent it.
//!
//! The sequence, one change after the other under the same clients: weight of n1 up and down,
//! drain and undrain of n3 (held for longer than a pulse and a lease), a reload that changes
//! weights and adds a VIP rule (refused: the refusal must name `vip[0]`), a reload of the
//! weights alone (farmctl and SIGHUP) and back, a graceful stop of n2 and its return, graceful
//! stops of n2 and n3 and their two joins in a row, a drain of n1 with a graceful stop and a
//! join of n3 during it, and the undrain. The clients run on until at least [`Plan::watch`]
//! after the first change (3 minutes by default).
//!
//! Asserted: no RST from any node, no SYN answered by two nodes, no failed request (keep-alive
//! or new connection), every download complete with the right checksum, n1's keep-alive
//! connections never closed (n1 never stops), n3's sessions still served by n3 while drained,
//! after each change every node's bucket count and the buckets moved within 10% of the ideal
//! share (`buckets_owned` from each node's status, the tables for the moves). A second case
//! stops a node that has only idle keep-alive clients: STOP in under 5 s, no failure.
//!
//! `FARM_CHANGES=full` runs the sequence twice under a 6-minute watch. `FARM_LAB_BIN_DIR=<dir>`
//! runs the farmd / farm-dataplane found there instead of building them. Needs root, tcpdump.

mod common;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use farm_tests::lab::changes::{ideal_counts, ideal_moved, moved, BucketCheck, Timeline};
use farm_tests::lab::client::{Attempt, Probe};
use farm_tests::lab::longlived::{Download, Downloads, Ending, SessionLog, Sessions, TestFile};
use farm_tests::lab::{self, Capture, CaptureReport, Health, Lab, LabOptions, LAB_TEMPLATE};

const PREFIX: &str = "e2ec";
/// Buckets of the lab (the template's 256 are too few for a 10% check of every change).
const BUCKETS: usize = 4096;
/// How far from the ideal share a node's count and a change's moves may be.
const TOLERANCE: f64 = 0.10;
/// Keep-alive sessions per node and their period.
const SESSIONS_PER_NODE: usize = 20;
const SESSION_PERIOD: Duration = Duration::from_millis(200);
/// Limit of one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The repeated downloads: size and reading rate (~12 s each).
const SHORT_SIZE: usize = 1536 << 10;
const SHORT_RATE: u64 = 128 << 10;
/// The downloads that outlive the sequence: reading rate.
const LONG_RATE: u64 = 64 << 10;
/// A download whose read waits longer than this fails.
const STALL: Duration = Duration::from_secs(10);
/// New-connection clients per node and their period.
const PROBES_PER_NODE: usize = 3;
const PROBE_PERIOD: Duration = Duration::from_millis(250);
/// The bound for a stop with only idle keep-alive clients.
const IDLE_STOP_BOUND: Duration = Duration::from_secs(5);
/// Longest wait for a graceful stop (in-flight downloads finish first, ~12 s) or a start.
const STATE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long and how often.
#[derive(Clone, Copy, Debug)]
struct Plan {
    /// The clients run at least this long after the first change.
    watch: Duration,
    /// Times the change sequence runs.
    rounds: usize,
    /// How long a drain is held before the next change.
    drain_hold: Duration,
}

fn plan() -> Plan {
    match std::env::var("FARM_CHANGES").as_deref() {
        Ok("full") => Plan { watch: Duration::from_secs(360), rounds: 2, drain_hold: Duration::from_secs(20) },
        Ok("" | "fast") | Err(_) => Plan { watch: Duration::from_secs(180), rounds: 1, drain_hold: Duration::from_secs(8) },
        Ok(other) => panic!("FARM_CHANGES={other:?}: expected \"full\" or \"fast\" (the default)"),
    }
}

fn main() -> ExitCode {
    let plan = plan();
    let bins = bin_dir();
    let tpl = template();
    let name: &'static str = if plan.rounds > 1 { "full_change_sequence_twice_loses_nothing" } else { "change_sequence_loses_nothing" };
    common::run_suite(
        PREFIX,
        || LabOptions { template: Some(tpl.clone()), ..common::farm_options(PREFIX, bins.clone()) },
        &[("stop_with_only_idle_keepalive_clients_reaches_stop_under_5s", idle_stop), (name, sequence)],
    )
}

fn bin_dir() -> PathBuf {
    match std::env::var_os("FARM_LAB_BIN_DIR") {
        Some(d) => {
            // Relative to the workspace (cargo runs the test in tests/).
            let d = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(d);
            for b in [lab::FARMD, lab::FARMCTL, lab::DATAPLANE] {
                assert!(d.join(b).is_file(), "FARM_LAB_BIN_DIR: no {b} in {}", d.display());
            }
            d
        }
        None => common::build_bins(),
    }
}

/// The lab template with [`BUCKETS`] buckets.
fn template() -> PathBuf {
    let mut doc: toml_edit::DocumentMut = LAB_TEMPLATE.parse().expect("lab template parses");
    doc["module"]["buckets"] = toml_edit::value(BUCKETS as i64);
    let p = std::env::temp_dir().join(format!("farm-e2e-changes-{PREFIX}.toml"));
    std::fs::write(&p, doc.to_string()).expect("write the lab template");
    p
}

fn vip80(lab: &Lab) -> SocketAddrV4 {
    SocketAddrV4::new(lab.vip(), 80)
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

fn farmctl_ok(lab: &Lab, i: usize, args: &[&str]) -> Result<String, String> {
    let out = lab.farmctl(i, args).map_err(|e| format!("farmctl {args:?} on n{i}: {e}"))?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("farmctl {args:?} on n{i}: {}: {}", out.status, text.trim()))
    }
}

fn wait_state(lab: &Lab, i: usize, want: &str, timeout: Duration) -> Result<Duration, String> {
    lab.wait_for(&format!("n{i} in {want}"), timeout, || lab.node_state(i).is_ok_and(|s| s == want))
        .map_err(|e| format!("{e}{}", lab.diagnose(i)))
}

fn capture_ok(rep: &CaptureReport, timeline: &Timeline) -> Vec<String> {
    let mut p: Vec<String> = rep.resets.iter().map(|r| format!("{r}, {}", timeline.at_wall(r.at))).collect();
    p.extend(rep.duplicates.iter().map(|d| format!("I1: {d}, {}", timeline.at_wall(d.second.1))));
    p.extend(rep.violations.iter().filter(|v| !v.contains("RST") && !v.contains("answered by")).cloned());
    if rep.dropped > 0 {
        p.push(format!("the capture lost {} frames", rep.dropped));
    }
    p
}

// ---- a stop with only idle keep-alive clients ----

fn idle_stop(lab: &mut Lab) {
    let ns = lab.client_ns();
    let mut srcs = lab.clients_of(2, 8).unwrap();
    srcs.extend(lab.clients_of(1, 4).unwrap());
    srcs.extend(lab.clients_of(3, 4).unwrap());
    let cap = Capture::start(&ns, lab.vip(), &lab.run_dir().join("idle-stop.pcap")).unwrap();
    // A request a second: idle in between (Apache's KeepAliveTimeout is 5 s).
    let sessions = Sessions::start(&ns, &srcs, vip80(lab), Duration::from_secs(1), REQUEST_TIMEOUT).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let held = sessions.snapshot().conns.iter().filter(|c| c.node == Some(2) && c.ended.is_none()).count();
    assert_eq!(held, 8, "n2's idle keep-alive sessions before the stop: {:?}", sessions.snapshot().conns);

    let mut timeline = Timeline::default();
    let k = timeline.begin("farmctl stop n2 (idle keep-alive clients only)");
    let t = Instant::now();
    farmctl_ok(lab, 2, &["stop", "--reason", "e2e idle stop"]).unwrap();
    let stopped = wait_state(lab, 2, "STOP", Duration::from_secs(30));
    let took = t.elapsed();
    timeline.end(k);
    println!("  n2 with only idle keep-alive clients: STOP {} ms after farmctl stop", ms(took));
    std::thread::sleep(Duration::from_secs(2));
    let log = sessions.stop();
    let rep = cap.finish(&lab.node_macs(), lab.vip(), &[]).unwrap();
    println!("  capture: {rep}");
    let closed = log.conns.iter().filter(|c| c.node == Some(2) && matches!(c.ended, Some((_, Ending::ServerClosed)))).count();
    let retried = log.requests.iter().filter(|r| r.retried).count();
    println!(
        "  {} requests, {} failed, {retried} sent again after a close; n2's connections closed by n2: {closed}",
        log.requests.len(),
        log.failures().len()
    );
    farmctl_ok(lab, 2, &["start"]).unwrap();
    lab.wait_health(&[2], Health::Up, Duration::from_secs(30)).unwrap();

    stopped.unwrap();
    let mut problems = capture_ok(&rep, &timeline);
    problems.extend(session_failures(&log, &srcs, &timeline));
    assert!(problems.is_empty(), "{}", summary(&problems));
    assert!(took < IDLE_STOP_BOUND, "STOP after {} ms with only idle keep-alive clients (bound {} ms)", ms(took), ms(IDLE_STOP_BOUND));
}

fn session_failures(log: &SessionLog, srcs: &[Ipv4Addr], timeline: &Timeline) -> Vec<String> {
    log.failures()
        .iter()
        .map(|r| {
            let c = r.conn.and_then(|k| log.conns.get(k));
            let local = c.map_or_else(|| srcs[r.session].to_string(), |c| c.local.to_string());
            let node = c.and_then(|c| c.node).map_or_else(|| "?".to_owned(), |n| format!("n{n}"));
            let opened = c.map_or_else(String::new, |c| format!(", connection opened {}", timeline.at(c.opened)));
            format!(
                "keep-alive request from {local} (on {node}{opened}) failed {}: {}",
                timeline.at(r.start),
                r.result.as_ref().err().map_or("", String::as_str)
            )
        })
        .collect()
}

// ---- the change sequence ----

/// The farm as the test expects it: the nodes in the farm (UP) and their weights in force.
struct Run<'a> {
    lab: &'a Lab,
    weights: BTreeMap<usize, u16>,
    table: Vec<Option<usize>>,
    timeline: Timeline,
    problems: Vec<String>,
    /// Per change: its name, how long it took, its bucket check.
    results: Vec<(String, Duration, Option<BucketCheck>)>,
    /// Graceful stops: node, requested, STOP reached.
    stops: Vec<(usize, Instant, Option<Instant>)>,
    /// The drain of n3: its start and end.
    n3_drain: Option<(Instant, Instant)>,
}

impl Run<'_> {
    /// Runs change `name` (`f` sends the commands and updates the expected weights), waits for
    /// the tables to follow, checks the buckets.
    fn change(&mut self, name: &str, f: impl FnOnce(&mut Self) -> Result<(), String>) {
        println!("  -> {} {name}", clock(farm_tests::lab::capture::capture_time_now()));
        let before = ideal_counts(BUCKETS, &self.weights);
        let k = self.timeline.begin(name);
        let t = Instant::now();
        if let Err(e) = f(self) {
            self.problems.push(format!("{name}: {e}"));
        }
        let members: Vec<usize> = self.weights.keys().copied().collect();
        let owners: Vec<usize> = self.weights.iter().filter(|(_, w)| **w > 0).map(|(n, _)| *n).collect();
        let check = match self.lab.wait_placed(&members, &owners, Duration::from_secs(1), Duration::from_secs(30)) {
            Ok(a) => {
                let mut counts = BTreeMap::new();
                for i in self.lab.layout().node_numbers() {
                    let c = if members.contains(&i) {
                        self.lab.buckets_owned(i, &a).unwrap_or_else(|e| {
                            self.problems.push(format!("{name}: n{i}'s status: {e}"));
                            0
                        })
                    } else {
                        0
                    };
                    counts.insert(i, c);
                }
                let after = ideal_counts(BUCKETS, &self.weights);
                let c = BucketCheck { counts, ideal: after.clone(), moved: moved(&self.table, &a.owners), ideal_moved: ideal_moved(&before, &after) };
                self.problems.extend(c.problems(TOLERANCE).into_iter().map(|p| format!("{name}: {p}")));
                self.table = a.owners;
                Some(c)
            }
            Err(e) => {
                self.problems.push(format!("{name}: {e}"));
                None
            }
        };
        self.timeline.end(k);
        let took = t.elapsed();
        if let Some(c) = &check {
            println!("     {} ms: {c}", ms(took));
        }
        self.results.push((name.to_owned(), took, check));
    }

    fn set_weight(&mut self, i: usize, w: u16) -> Result<(), String> {
        let arg = w.to_string();
        let args: Vec<&str> = match w {
            0 => vec!["drain"],
            _ => vec!["weight", &arg],
        };
        farmctl_ok(self.lab, i, &args)?;
        self.weights.insert(i, w);
        Ok(())
    }

    fn undrain(&mut self, i: usize) -> Result<(), String> {
        farmctl_ok(self.lab, i, &["undrain"])?;
        self.weights.insert(i, 1);
        Ok(())
    }

    /// Graceful stops of `nodes` at once; waits for STOP.
    fn stop(&mut self, nodes: &[usize]) -> Result<(), String> {
        let t = Instant::now();
        for &i in nodes {
            farmctl_ok(self.lab, i, &["stop", "--reason", "e2e planned change"])?;
            self.weights.remove(&i);
        }
        for &i in nodes {
            let r = wait_state(self.lab, i, "STOP", STATE_TIMEOUT);
            let done = r.as_ref().ok().map(|_| Instant::now());
            self.stops.push((i, t, done));
            r?;
            println!("     n{i} STOP {} ms after farmctl stop", ms(t.elapsed()));
            if self.lab.health(i) != Health::NotUp(404) {
                return Err(format!("n{i} in STOP: health {:?}", self.lab.health(i)));
            }
        }
        Ok(())
    }

    /// `farmctl start` of `nodes` one right after the other; waits for them UP.
    fn start(&mut self, nodes: &[usize]) -> Result<(), String> {
        let t = Instant::now();
        for &i in nodes {
            farmctl_ok(self.lab, i, &["start"])?;
        }
        self.lab.wait_health(nodes, Health::Up, STATE_TIMEOUT).map_err(|e| e.to_string())?;
        println!("     {nodes:?} UP {} ms after farmctl start", ms(t.elapsed()));
        for &i in nodes {
            self.weights.insert(i, 1);
        }
        Ok(())
    }

    /// Reloads node `i`'s configuration with `farmctl reload` (or SIGHUP): its report.
    fn reload(&self, i: usize, sighup: bool) -> Result<(i32, serde_json::Value), String> {
        let seq = |v: &serde_json::Value| v["live"]["last_reload"]["seq"].as_u64().unwrap_or(0);
        let before = seq(&self.lab.status_json(i).map_err(|e| e.to_string())?);
        let code = if sighup {
            let pid_file = self.lab.layout().node_dir(i).join(format!("{}.pid", lab::FARMD));
            let pid: i32 = std::fs::read_to_string(&pid_file).map_err(|e| e.to_string())?.trim().parse().map_err(|e| format!("{e}"))?;
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGHUP).map_err(|e| e.to_string())?;
            0
        } else {
            let out = self.lab.farmctl(i, &["reload"]).map_err(|e| e.to_string())?;
            out.status.code().unwrap_or(-1)
        };
        let mut last = serde_json::Value::Null;
        self.lab
            .wait_for(&format!("n{i}'s reload report"), Duration::from_secs(5), || {
                last = self.lab.status_json(i).unwrap_or_default();
                seq(&last) > before
            })
            .map_err(|e| e.to_string())?;
        Ok((code, last["live"]["last_reload"].clone()))
    }
}

/// The lab's configuration file, restored when dropped.
struct ConfigFile {
    path: PathBuf,
    original: String,
}

impl ConfigFile {
    fn new(lab: &Lab) -> ConfigFile {
        let path = lab.farm_files().config;
        let original = std::fs::read_to_string(&path).unwrap();
        ConfigFile { path, original }
    }

    /// The original with `weights` set on the nodes (1-based) and, if `rule`, one more rule on
    /// the VIP (TCP 8081).
    fn write(&self, weights: &[(usize, u16)], rule: bool) {
        let mut doc: toml_edit::DocumentMut = self.original.parse().unwrap();
        let nodes = doc["node"].as_array_of_tables_mut().unwrap();
        for (i, w) in weights {
            nodes.get_mut(i - 1).unwrap()["weight"] = toml_edit::value(i64::from(*w));
        }
        if rule {
            let rules = doc["vip"].as_array_of_tables_mut().unwrap().get_mut(0).unwrap()["rule"].as_array_of_tables_mut().unwrap();
            let mut t = toml_edit::Table::new();
            t["proto"] = toml_edit::value("tcp");
            t["ports"] = toml_edit::value("8081");
            t["affinity"] = toml_edit::value("on_addr");
            rules.push(t);
        }
        std::fs::write(&self.path, doc.to_string()).unwrap();
    }

    fn restore(&self) {
        std::fs::write(&self.path, &self.original).unwrap();
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.path, &self.original);
    }
}

fn reload_changes(run: &mut Run, cfg: &ConfigFile) {
    // Weights and a VIP rule: refused as a whole, the refusal names the VIP.
    run.change("reload: weights n2 -> 2, n3 -> 2 and a VIP rule (refused)", |r| {
        cfg.write(&[(2, 2), (3, 2)], true);
        let (code, rep) = r.reload(2, false)?;
        let problems = rep["problems"].to_string();
        if code != 1 || rep["outcome"] != "refused" || !problems.contains("vip[0]") {
            return Err(format!("farmctl reload on n2: exit {code}, report {rep}: expected exit 1, refused, naming vip[0]"));
        }
        println!("     refused: {problems}");
        let (_, rep) = r.reload(3, true)?;
        if rep["outcome"] != "refused" || !rep["problems"].to_string().contains("vip[0]") {
            return Err(format!("SIGHUP on n3: report {rep}: expected refused, naming vip[0]"));
        }
        Ok(())
    });
    run.change("reload: weights n2 -> 2, n3 -> 2 (farmctl reload on n1, n2, SIGHUP on n3)", |r| {
        cfg.write(&[(2, 2), (3, 2)], false);
        for (i, sighup) in [(1, false), (2, false), (3, true)] {
            let (code, rep) = r.reload(i, sighup)?;
            if code != 0 || rep["outcome"] != "applied" {
                return Err(format!("reload on n{i}: exit {code}, report {rep}: expected applied"));
            }
        }
        r.weights.insert(2, 2);
        r.weights.insert(3, 2);
        Ok(())
    });
    run.change("reload: back to the file's weights", |r| {
        cfg.restore();
        for i in 1..=3 {
            let (code, rep) = r.reload(i, false)?;
            if code != 0 || rep["outcome"] != "applied" {
                return Err(format!("reload on n{i}: exit {code}, report {rep}: expected applied"));
            }
        }
        r.weights.insert(2, 1);
        r.weights.insert(3, 1);
        Ok(())
    });
}

fn one_round(run: &mut Run, cfg: &ConfigFile, plan: &Plan) {
    run.change("weight n1 1 -> 3", |r| r.set_weight(1, 3));
    run.change("weight n1 3 -> 1", |r| r.set_weight(1, 1));
    let t = Instant::now();
    run.change("drain n3", |r| {
        r.set_weight(3, 0)?;
        std::thread::sleep(plan.drain_hold);
        match (r.lab.node_state(3), r.lab.health(3)) {
            (Ok(s), Health::NotUp(404)) if s == "UP" => Ok(()),
            (s, h) => Err(format!("drained n3: state {s:?}, health {h:?}; expected UP and 404")),
        }
    });
    run.change("undrain n3", |r| r.undrain(3));
    run.n3_drain = Some((t, run.timeline.windows.last().map_or(t, |w| w.start)));
    reload_changes(run, cfg);
    run.change("graceful stop n2", |r| r.stop(&[2]));
    run.change("rejoin: start n2", |r| r.start(&[2]));
    run.change("graceful stops of n2 and n3", |r| r.stop(&[2, 3]));
    run.change("two joins in a row: start n2, start n3", |r| r.start(&[2, 3]));
    run.change("drain n1", |r| r.set_weight(1, 0));
    run.change("graceful stop n3 while n1 drains", |r| r.stop(&[3]));
    run.change("join during a drain: start n3", |r| r.start(&[3]));
    run.change("undrain n1", |r| r.undrain(1));
}

fn sequence(lab: &mut Lab) {
    let plan = plan();
    let ns = lab.client_ns();
    let dst = vip80(lab);
    let all: Vec<usize> = lab.layout().node_numbers().collect();
    let base = lab.wait_settled(&all, Duration::from_secs(10)).unwrap();

    // Clients of every node, each address used by one client.
    let mut session_srcs = Vec::new();
    let (mut loop_srcs, mut probe_srcs, mut long_srcs) = (Vec::new(), Vec::new(), Vec::new());
    for &i in &all {
        let extra = if i == 1 { 2 } else { 0 };
        let mine = lab.clients_of(i, SESSIONS_PER_NODE + 1 + PROBES_PER_NODE + extra).unwrap();
        assert_eq!(mine.len(), SESSIONS_PER_NODE + 1 + PROBES_PER_NODE + extra, "n{i} owns too few client addresses");
        let (s, rest) = mine.split_at(SESSIONS_PER_NODE);
        session_srcs.extend_from_slice(s);
        loop_srcs.push(rest[0]);
        probe_srcs.extend_from_slice(&rest[1..1 + PROBES_PER_NODE]);
        long_srcs.extend_from_slice(&rest[1 + PROBES_PER_NODE..]);
    }
    let watch_all = plan.watch + Duration::from_secs(15);
    let long_size = (LONG_RATE as f64 * watch_all.as_secs_f64()) as usize;
    let short = TestFile::install(lab, "changes-short.bin", SHORT_SIZE, 0x5eed_0001).unwrap();
    let long = TestFile::install(lab, "changes-long.bin", long_size, 0x5eed_0002).unwrap();

    let cap = Capture::start(&ns, lab.vip(), &lab.run_dir().join("changes.pcap")).unwrap();
    let sessions = Sessions::start(&ns, &session_srcs, dst, SESSION_PERIOD, REQUEST_TIMEOUT).unwrap();
    let loops = Downloads::start(&ns, &loop_srcs, dst, &short, SHORT_RATE, true, STALL).unwrap();
    let longs = Downloads::start(&ns, &long_srcs, dst, &long, LONG_RATE, false, STALL).unwrap();
    let probe = Probe::start(&ns, &probe_srcs, dst, PROBE_PERIOD, REQUEST_TIMEOUT).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let first = sessions.snapshot();
    let per_node: BTreeMap<usize, usize> = first.conns.iter().filter_map(|c| c.node).fold(BTreeMap::new(), |mut m, n| {
        *m.entry(n).or_default() += 1;
        m
    });
    println!(
        "  clients: {} keep-alive sessions (connections per node {per_node:?}), {} repeated downloads of {} KiB at {} KiB/s, {} downloads of {} KiB at {} KiB/s, {} new-connection clients; watch {} s",
        session_srcs.len(),
        loop_srcs.len(),
        short.size >> 10,
        SHORT_RATE >> 10,
        long_srcs.len(),
        long.size >> 10,
        LONG_RATE >> 10,
        probe_srcs.len(),
        plan.watch.as_secs()
    );
    assert_eq!(per_node.values().sum::<usize>(), session_srcs.len(), "every session served before the changes: {first:?}");
    assert!(all.iter().all(|i| per_node.get(i).copied().unwrap_or(0) == SESSIONS_PER_NODE), "sessions per node {per_node:?}");

    println!("  CPU pressure (/proc/pressure/cpu) before the changes: {}", cpu_pressure());
    let cfg = ConfigFile::new(lab);
    let mut run = Run {
        lab,
        weights: all.iter().map(|&i| (i, 1)).collect(),
        table: base.owners,
        timeline: Timeline::default(),
        problems: Vec::new(),
        results: Vec::new(),
        stops: Vec::new(),
        n3_drain: None,
    };
    let log_sizes = lab.module_log_sizes();
    let t0 = Instant::now();
    for round in 0..plan.rounds {
        if plan.rounds > 1 {
            println!("  round {}", round + 1);
        }
        one_round(&mut run, &cfg, &plan);
    }
    let seq_took = t0.elapsed();
    let hold = plan.watch.saturating_sub(t0.elapsed());
    println!("  the changes took {} s; the clients run on for {} s", seq_took.as_secs(), hold.as_secs());
    let k = run.timeline.begin("the watch after the changes");
    std::thread::sleep(hold);
    run.timeline.end(k);

    // Stop the clients; the downloads in flight finish.
    let log = sessions.stop();
    let probes = probe.stop();
    let loops = loops.finish();
    let wait_long = Instant::now();
    while !longs.all_done() && wait_long.elapsed() < Duration::from_secs(90) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let longs = longs.finish();
    let rep = cap.finish(&lab.node_macs(), lab.vip(), &[]).unwrap();
    report(&run, &log, &probes, &loops, &longs, &rep, &session_srcs, t0);
    keep_evidence(lab);

    let mut problems = std::mem::take(&mut run.problems);
    // No node is ever taken for dead, stalled or restarted by a planned change (on a starved
    // machine these come first: a data plane or farmd that did not run for longer than its
    // timeouts; the failures that follow are theirs).
    for pattern in [" is dead", "wedged", " was stalled", "failed: data plane", "action restart"] {
        for (i, at, line) in lab.module_log_lines(&log_sizes, pattern) {
            problems.push(format!("n{i} logged, {}: {line}", run.timeline.at_wall(at)));
        }
    }
    problems.sort_by_key(|p| !p.contains(" logged, "));
    println!("  CPU pressure (/proc/pressure/cpu) at the end: {}", cpu_pressure());
    problems.extend(capture_ok(&rep, &run.timeline));
    problems.extend(session_failures(&log, &session_srcs, &run.timeline));
    for a in probes.iter().filter(|a| a.result.is_err()) {
        problems.push(format!("new connection from {} failed {}: {}", a.src, run.timeline.at(a.start), a.result.as_ref().unwrap_err()));
    }
    for d in loops.iter().chain(&longs) {
        if let Err(e) = &d.result {
            let node = d.node.map_or_else(|| "?".to_owned(), |n| format!("n{n}"));
            problems.push(format!(
                "download from {}:{} on {node} (started {}) failed {}: {e}",
                d.src,
                d.port,
                run.timeline.at(d.start),
                run.timeline.at(d.end)
            ));
        }
    }
    if longs.len() != long_srcs.len() {
        problems.push(format!("{} of {} long downloads ended", longs.len(), long_srcs.len()));
    }
    // n1 never stops: its keep-alive connections opened before the changes live through all of
    // them. (Later, Apache may close idle keep-alive connections itself, e.g. a child process
    // retired when its spare threads exceed MaxSpareThreads: a FIN between requests, no request
    // lost, reported above.)
    let seq_end = t0 + seq_took;
    let n1_before: Vec<_> = log.conns.iter().filter(|c| c.node == Some(1) && c.opened < t0).collect();
    let n1_through = n1_before.iter().filter(|c| c.ended.as_ref().is_none_or(|(at, how)| *at >= seq_end || *how == Ending::Stopped)).count();
    println!("  n1's keep-alive connections opened before the changes: {}, alive through all of them: {n1_through}", n1_before.len());
    for c in log.conns.iter().filter(|c| c.node == Some(1) && c.opened < t0) {
        if let Some((at, how)) = &c.ended {
            if *at < seq_end && *how != Ending::Stopped {
                problems.push(format!("n1's keep-alive connection {} ended {}: {how:?}", c.local, run.timeline.at(*at)));
            }
        }
    }
    // n3 drained: its sessions still served by n3 (no deadline).
    if let Some((from, to)) = run.n3_drain {
        let served = log
            .requests
            .iter()
            .filter(|r| r.start > from + Duration::from_secs(1) && r.end < to && r.result == Ok(3))
            .filter(|r| r.conn.and_then(|k| log.conns.get(k)).is_some_and(|c| c.opened < from))
            .count();
        println!("  while n3 was drained: {served} requests on connections opened before answered by n3");
        if served == 0 {
            problems.push("n3 drained: no request on its earlier connections answered by n3".into());
        }
    }
    assert!(problems.is_empty(), "{}", summary(&problems));
}

/// Copies the module logs, farmd's output and the capture to `<tmp>/farm-e2e-changes/` (the lab
/// is torn down after the case).
fn keep_evidence(lab: &Lab) {
    let dir = std::env::temp_dir().join("farm-e2e-changes");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::create_dir_all(&dir);
    let mut files = vec![(lab.run_dir().join("changes.pcap"), "changes.pcap".to_owned())];
    for i in lab.layout().node_numbers() {
        files.push((lab.module_log(i), format!("n{i}-module.log")));
        files.push((lab.layout().node_dir(i).join("farmd.out"), format!("n{i}-farmd.out")));
        files.push((lab.httpd(i).error_log(), format!("n{i}-apache-error.log")));
    }
    for (from, to) in files {
        let _ = std::fs::copy(&from, dir.join(to));
    }
    println!("  module logs, farmd output, Apache error logs and the capture kept in {}", dir.display());
}

/// The machine's CPU pressure (`some avg10 avg60 avg300`), to tell a starved machine.
fn cpu_pressure() -> String {
    std::fs::read_to_string("/proc/pressure/cpu").map_or_else(|_| "unknown".to_owned(), |t| t.lines().next().unwrap_or("").to_owned())
}

/// A capture time as `HH:MM:SS.mmm` (UTC), as in the module logs.
fn clock(t: Duration) -> String {
    let ms = t.as_millis() % 86_400_000;
    format!("{:02}:{:02}:{:02}.{:03}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
}

/// The problems: how many of each kind per change, then the first 80.
fn summary(problems: &[String]) -> String {
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for p in problems {
        // Up to the first ':' or ',', without addresses.
        let head = p.split([':', ',']).next().unwrap_or("");
        let kind: Vec<&str> = head.split_whitespace().filter(|w| !(w.contains('.') && w.chars().any(|c| c.is_ascii_digit()))).collect();
        let kind = kind.join(" ");
        let when = p.find("during ").or_else(|| p.find("after ")).map_or("", |k| {
            let w = &p[k..];
            w.split(" (+").next().unwrap_or(w)
        });
        *kinds.entry(format!("{kind} | {when}")).or_default() += 1;
    }
    let table: Vec<String> = kinds.iter().map(|(k, n)| format!("  {n:5} x {k}")).collect();
    let first: Vec<&str> = problems.iter().take(80).map(String::as_str).collect();
    format!("{} problems; by kind and change:\n{}\nthe first {}:\n{}", problems.len(), table.join("\n"), first.len(), first.join("\n"))
}

#[allow(clippy::too_many_arguments)]
fn report(
    run: &Run,
    log: &SessionLog,
    probes: &[Attempt],
    loops: &[Download],
    longs: &[Download],
    rep: &CaptureReport,
    srcs: &[Ipv4Addr],
    t0: Instant,
) {
    println!("  per change (name: time, buckets after it, moved vs ideal):");
    for ((name, took, check), w) in run.results.iter().zip(&run.timeline.windows) {
        let c = check.as_ref().map_or_else(|| "no settled table".to_owned(), ToString::to_string);
        println!("    {} {name}: {} ms; {c}", clock(w.start_wall), ms(*took));
    }
    for (i, asked, done) in &run.stops {
        let in_flight: Vec<String> = loops
            .iter()
            .filter(|d| d.node == Some(*i) && d.start < *asked && d.end > *asked)
            .map(|d| format!("{}:{} ended {} ms after the stop ({:?})", d.src, d.port, ms(d.end - *asked), d.result))
            .collect();
        let stop = done.map_or_else(|| "never".to_owned(), |d| format!("{} ms", ms(d - *asked)));
        println!("    graceful stop of n{i} ({}): STOP after {stop}; downloads in flight on n{i}: {in_flight:?}", run.timeline.at(*asked));
    }
    let retried = log.requests.iter().filter(|r| r.retried).count();
    let mut closed: BTreeMap<usize, usize> = BTreeMap::new();
    for c in &log.conns {
        if let (Some(n), Some((_, Ending::ServerClosed))) = (c.node, &c.ended) {
            *closed.entry(n).or_default() += 1;
        }
    }
    let lived = log.conns.iter().filter(|c| c.opened < t0 && matches!(c.ended, None | Some((_, Ending::Stopped)))).count();
    println!(
        "  keep-alive: {} requests by {} sessions on {} connections, {} failed, {retried} sent again after a server's close; connections closed by their server per node {closed:?}; {lived} connections lived from before the first change to the end",
        log.requests.len(),
        srcs.len(),
        log.conns.len(),
        log.failures().len()
    );
    let max = log.requests.iter().filter(|r| r.result.is_ok()).map(|r| r.end - r.start).max().unwrap_or_default();
    println!("  slowest keep-alive answer: {} ms", ms(max));
    let mut by: BTreeMap<usize, usize> = BTreeMap::new();
    for a in probes.iter().filter_map(|a| a.result.as_ref().ok()) {
        *by.entry(*a).or_default() += 1;
    }
    println!("  new connections: {} ({} failed), served per node {by:?}", probes.len(), probes.iter().filter(|a| a.result.is_err()).count());
    let ok = |v: &[Download]| v.iter().filter(|d| d.result.is_ok()).count();
    let mut dl_nodes: BTreeMap<usize, usize> = BTreeMap::new();
    for d in loops {
        *dl_nodes.entry(d.node.unwrap_or(0)).or_default() += 1;
    }
    println!("  repeated downloads: {} complete and correct of {} (per node {dl_nodes:?})", ok(loops), loops.len());
    for d in longs {
        println!(
            "  long download from {}:{} on n{}: {} s, {} bytes, {:?}",
            d.src,
            d.port,
            d.node.unwrap_or(0),
            (d.end - d.start).as_secs(),
            d.bytes,
            d.result
        );
    }
    println!("  capture: {rep}");
}
