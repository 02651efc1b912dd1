//! Parts 3 and 5 of the harness, on the network-namespace lab (`farm_tests::lab`, the one the
//! demo and the end-to-end tests use):
//!
//! - HTTP through the farm vs directly to one Apache, with wrk from the client namespace: a
//!   `direct` lab (node address on the veth, Apache, no farm) and a 3-node `farm` lab, the same
//!   Apache configuration and page, keep-alive and one connection per request;
//! - failover time over many kills: `kill -9` of every process of a node (farmd, farm-dataplane,
//!   Apache) while some of its clients open a new connection every 20 ms; the time from the kill
//!   until every probed client (each in another bucket of the victim) is served by another node.
//!   The node is then brought back and the next kill takes the next node. At the lab's default
//!   timers (pulse 100 ms, dead after 1 s) and with pulse 20 ms (dead after 200 ms).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use farm_tests::lab::{self, layout, Lab, LabOptions, Mode, ON_PORT_TCP};
use serde::Serialize;

use crate::netcpu::{NetCpu, Probe};

/// What the lab parts need.
pub struct LabSetup {
    /// Where farmd, farmctl and farm-dataplane are.
    pub bin_dir: PathBuf,
    /// wrk's measurement time per run.
    pub http_duration: Duration,
    /// wrk's connections.
    pub connections: u32,
    /// Kills per timer setting.
    pub kills: usize,
    /// Scratch directory (configuration templates).
    pub work: PathBuf,
    /// TSC frequency (the data planes' busy cycles into seconds).
    pub tsc_hz: u64,
    /// Set on SIGINT/SIGTERM: stop between steps (the lab is torn down by its Drop).
    pub interrupt: Arc<AtomicBool>,
}

/// One wrk run.
#[derive(Debug, Clone, Serialize)]
pub struct WrkRun {
    /// How the CPUs were used: [`SHARED`] or [`DEDICATED`].
    pub setup: String,
    /// What was measured ("direct", "farm, on_addr", ...).
    pub path: String,
    /// The farm's local port (`dataplane.local_port`); for a direct run, the local port of the
    /// farm runs it was interleaved with (its pair).
    #[serde(default)]
    pub local_port: String,
    /// Keep-alive (false: `Connection: close`, one TCP connection per request).
    pub keepalive: bool,
    /// The URL.
    pub url: String,
    /// What wrk reported.
    #[serde(flatten)]
    pub wrk: WrkOutput,
    /// Requests per node, from the access logs (node 1..N).
    pub served_by: BTreeMap<usize, u64>,
    /// CPU cost of the network path over the run.
    pub cpu: Option<NetCpu>,
    /// The exact command.
    pub command: String,
}

/// The HTTP comparison.
#[derive(Debug, Clone, Serialize)]
pub struct HttpResults {
    /// Every run, in the order they ran (cases interleaved, `repeat` rounds).
    pub runs: Vec<WrkRun>,
    /// Rounds.
    pub repeat: u32,
    /// wrk's measurement time per run (s).
    #[serde(default)]
    pub seconds: u64,
    /// Phases (local port × CPU shape) that failed, with their error; the others ran.
    #[serde(default)]
    pub errors: Vec<String>,
}

/// Every process of every lab on both CPUs, as the demo runs: 3 farm nodes (3 data planes
/// backing off when idle, 3 farmd, 3 Apache) and wrk share 2 CPUs.
pub const SHARED: &str = "shared CPUs";
/// The deployed shape: the data plane busy-polls on a CPU of its own (CPU 1); Apache, farmd and
/// wrk on CPU 0, in both the farm (one node) and the direct case; in the direct case the
/// kernel's receive processing of both veths is steered to CPU 1 (RPS), so that both cases
/// have CPU 0 for the application and CPU 1 for the network.
pub const DEDICATED: &str = "data plane on its own CPU";

/// Direct to Apache, no farm.
pub const DIRECT: &str = "direct to Apache (no farm)";
/// Through the farm, on_addr rule (wrk's one address: one node).
pub const ON_ADDR: &str = "farm VIP, on_addr";
/// Through the farm, on_port rule (connections over every node).
pub const ON_PORT: &str = "farm VIP, on_port";

/// One kill.
#[derive(Debug, Clone, Serialize)]
pub struct Kill {
    /// The node killed.
    pub victim: usize,
    /// Kill → every probed client served by another node (ms); None: not within the deadline.
    pub all_ms: Option<f64>,
    /// Kill → the first probed client served again (ms).
    pub first_ms: Option<f64>,
    /// Probed clients.
    pub probes: usize,
    /// Attempts that failed after their client had been served again.
    pub failed_after: usize,
    /// Restart → the node UP again (ms).
    pub rejoin_up_ms: f64,
}

/// Kills at one timer setting.
#[derive(Debug, Clone, Serialize)]
pub struct FailoverSeries {
    /// "pulse 100 ms, dead after 1 s".
    pub timers: String,
    pub pulse_ms: u64,
    pub dead_after_ms: u64,
    /// The p99 target of DESIGN.md (ms).
    pub target_p99_ms: f64,
    pub kills: Vec<Kill>,
    /// Errors that ended the series early.
    pub error: Option<String>,
}

impl FailoverSeries {
    /// Sorted failover times (ms); a kill never served again counts as infinite.
    pub fn sorted_ms(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self.kills.iter().map(|k| k.all_ms.unwrap_or(f64::INFINITY)).collect();
        v.sort_by(f64::total_cmp);
        v
    }

    /// Nearest-rank percentile of the failover times (ms).
    pub fn percentile(&self, p: f64) -> Option<f64> {
        percentile(&self.sorted_ms(), p)
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn check(interrupt: &AtomicBool) -> Result<()> {
    if interrupt.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    Ok(())
}

fn options(s: &LabSetup, prefix: &str, mode: Mode, template: Option<PathBuf>) -> LabOptions {
    LabOptions {
        prefix: prefix.to_owned(),
        nodes: 3,
        mode,
        bin_dir: s.bin_dir.clone(),
        template,
        interrupt: Some(s.interrupt.clone()),
        ready_timeout: Duration::from_secs(60),
        ..LabOptions::default()
    }
}

/// Builds a lab after removing whatever an interrupted earlier run left under `prefix`.
fn lab_up(opts: &LabOptions) -> Result<Lab> {
    lab::down(&opts.prefix).with_context(|| format!("remove an earlier lab {}", opts.prefix))?;
    let t = Instant::now();
    let l = Lab::up(opts).with_context(|| format!("lab {} ({:?} mode)", opts.prefix, opts.mode))?;
    tracing::info!("lab {} ({:?}) up in {:.1} s", opts.prefix, opts.mode, t.elapsed().as_secs_f64());
    Ok(l)
}

fn access_log_lines(l: &Lab) -> BTreeMap<usize, u64> {
    l.layout()
        .node_numbers()
        .map(|i| {
            let n = std::fs::read(l.httpd(i).access_log()).map_or(0, |b| b.iter().filter(|c| **c == b'\n').count() as u64);
            (i, n)
        })
        .collect()
}

/// Runs wrk in the lab's client namespace against `c.url`.
fn wrk(s: &LabSetup, setup: &str, c: &Case<'_>, keepalive: bool) -> Result<WrkRun> {
    check(&s.interrupt)?;
    let (l, path, url) = (c.lab, c.path, c.url.as_str());
    let before = access_log_lines(l);
    let secs = s.http_duration.as_secs().max(1).to_string();
    let conns = s.connections.to_string();
    let ns = l.client_ns();
    let mut args: Vec<&str> = vec!["netns", "exec", &ns];
    if setup == DEDICATED {
        args.extend(["taskset", "-c", "0"]);
    }
    args.extend(["wrk", "-t", "2", "-c", &conns, "-d", &secs, "--latency", "--timeout", "2s"]);
    if !keepalive {
        args.extend(["-H", "Connection: close"]);
    }
    args.push(url);
    let command = format!("ip {}", args.iter().map(|a| if a.contains(' ') { format!("'{a}'") } else { (*a).to_owned() }).collect::<Vec<_>>().join(" "));
    tracing::info!("{command}");
    let s0 = c.probe.snap();
    let out = Command::new("ip").args(&args).output().context("run wrk (Debian package wrk)")?;
    let cpu = c.probe.between(&s0, &c.probe.snap());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("{command}: {}\n{text}{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    let after = access_log_lines(l);
    let served_by = after.iter().map(|(i, n)| (*i, n - before.get(i).copied().unwrap_or(0))).filter(|(_, n)| *n > 0).collect();
    let w = parse_wrk(&text).with_context(|| format!("wrk output:\n{text}"))?;
    let run = WrkRun {
        setup: setup.to_owned(),
        path: path.to_owned(),
        local_port: c.local_port.clone(),
        keepalive,
        url: url.to_owned(),
        wrk: w,
        served_by,
        cpu: Some(cpu.clone()),
        command,
    };
    let per_1k = |x: f64| crate::netcpu::ms_per_1k(x, run.wrk.requests).unwrap_or(0.0);
    tracing::info!(
        "  {}, {} ({}) {}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors, served by {:?}; network CPU {:.1} ms per 1k requests (data plane {:.1} CPU / {} busy, softirq {:.1})",
        run.setup,
        run.path,
        run.local_port,
        if keepalive { "keep-alive" } else { "close" },
        run.wrk.rps,
        run.wrk.p50_ms,
        run.wrk.p99_ms,
        run.wrk.errors,
        run.served_by,
        per_1k(cpu.network_s()),
        per_1k(cpu.dataplane_cpu_s),
        cpu.dataplane_busy_s.map_or_else(|| "–".to_owned(), |b| format!("{:.1}", per_1k(b))),
        per_1k(cpu.softirq_s),
    );
    Ok(run)
}

/// What wrk printed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WrkOutput {
    /// Requests completed.
    pub requests: u64,
    /// Requests per second.
    pub rps: f64,
    /// Latency percentiles (ms).
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    /// Socket errors (connect, read, write, timeout) plus non-2xx/3xx answers.
    pub errors: u64,
}

fn wrk_duration_ms(s: &str) -> Option<f64> {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let v: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => v / 1000.0,
        "ms" => v,
        "s" => v * 1000.0,
        "m" => v * 60_000.0,
        _ => return None,
    })
}

/// Parses wrk's report (with `--latency`).
pub fn parse_wrk(text: &str) -> Result<WrkOutput> {
    let mut w = WrkOutput::default();
    let mut seen = (false, false);
    for line in text.lines().map(str::trim) {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["Requests/sec:", v] => {
                w.rps = v.parse().context("Requests/sec")?;
                seen.0 = true;
            }
            [n, "requests", "in", ..] => {
                w.requests = n.parse().context("requests")?;
                seen.1 = true;
            }
            ["50%", v] => w.p50_ms = wrk_duration_ms(v).context("50%")?,
            ["90%", v] => w.p90_ms = wrk_duration_ms(v).context("90%")?,
            ["99%", v] => w.p99_ms = wrk_duration_ms(v).context("99%")?,
            ["Socket", "errors:", rest @ ..] => {
                for v in rest.chunks(2) {
                    if let [_, n] = v {
                        w.errors += n.trim_end_matches(',').parse::<u64>().context("socket errors")?;
                    }
                }
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => w.errors += n.parse::<u64>().context("non-2xx")?,
            _ => {}
        }
    }
    if !(seen.0 && seen.1) {
        bail!("no 'Requests/sec' or 'requests in' line");
    }
    Ok(w)
}

/// The client namespace may open many connections per second: wide ephemeral port range and
/// reuse of TIME_WAIT ports (one connection per request would run out of ports in a minute).
fn tune_client(l: &Lab) -> Result<()> {
    for kv in ["net.ipv4.ip_local_port_range=1024 65535", "net.ipv4.tcp_tw_reuse=1"] {
        let out = l.exec(&l.client_ns(), &["sysctl", "-q", "-w", kv])?;
        if !out.status.success() {
            bail!("sysctl {kv} in {}: {}", l.client_ns(), String::from_utf8_lossy(&out.stderr));
        }
    }
    Ok(())
}

/// Pins every thread of node 1's processes to CPU 0, except farm-dataplane's (on CPU 1).
fn pin_node(l: &Lab) -> Result<()> {
    for pid in l.node_pids(1) {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "farm-dataplane" {
            continue;
        }
        let out = Command::new("taskset").args(["-a", "-p", "-c", "0", &pid.to_string()]).output().context("taskset (util-linux)")?;
        // A process may end between the listing and taskset (an Apache child, a checker).
        if !out.status.success() && std::path::Path::new(&format!("/proc/{pid}")).exists() {
            bail!("taskset -a -p -c 0 {pid} ({}): {}", comm.trim(), String::from_utf8_lossy(&out.stderr));
        }
    }
    Ok(())
}

/// Steers the receive processing of the client's and node 1's veth (RPS) to CPU 1, the network
/// CPU of the dedicated setup: in the direct lab the kernel then does there what the data plane
/// (which also runs the kernel's receive path of what it writes to its TAP) does in the farm.
fn steer_rx_to_cpu1(l: &Lab) -> Result<()> {
    for (ns, dev) in [(l.client_ns(), layout::CLIENT_IF), (l.node_ns(1), layout::NODE_UPLINK)] {
        let script = format!("echo 2 > /sys/class/net/{dev}/queues/rx-0/rps_cpus");
        let out = l.exec(&ns, &["sh", "-c", &script])?;
        if !out.status.success() {
            bail!("{script} in {ns}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    Ok(())
}

/// One measured case: which lab, what it is, its URL, how to measure its CPU.
struct Case<'a> {
    lab: &'a Lab,
    path: &'static str,
    url: String,
    local_port: String,
    probe: Probe,
}

fn rounds(s: &LabSetup, setup: &str, cases: &[Case<'_>], repeat: u32, runs: &mut Vec<WrkRun>) -> Result<()> {
    for round in 1..=repeat {
        tracing::info!("HTTP, {setup}, local port {}: round {round} of {repeat}", cases.last().map_or("", |c| c.local_port.as_str()));
        for keepalive in [true, false] {
            for c in cases {
                runs.push(wrk(s, setup, c, keepalive)?);
            }
        }
    }
    Ok(())
}

/// The local ports this build's configuration accepts, of tap and af_xdp.
pub fn default_local_ports() -> Vec<String> {
    ["tap", "af_xdp"]
        .into_iter()
        .filter(|p| serde_json::from_value::<farm_config::LocalPort>(serde_json::Value::from(*p)).is_ok())
        .map(str::to_owned)
        .collect()
}

/// Lab prefixes per local port (interface names are derived from them: short).
fn prefix(base: &str, local_port: &str) -> String {
    if local_port == "tap" {
        base.to_owned()
    } else {
        format!("{base}{}", local_port.chars().filter(char::is_ascii_alphanumeric).take(2).collect::<String>())
    }
}

/// The farm's data planes: their pids and table files.
fn dataplanes(l: &Lab) -> (Vec<u32>, Vec<PathBuf>) {
    let mut pids = Vec::new();
    let mut tables = Vec::new();
    for i in l.layout().node_numbers() {
        for pid in l.node_pids(i) {
            if std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim() == "farm-dataplane" {
                pids.push(pid.unsigned_abs());
            }
        }
        tables.push(PathBuf::from(format!("/dev/shm/{}{}", l.layout().shm_prefix(), l.layout().node_name(i))));
    }
    (pids, tables)
}

/// Part 3: wrk against Apache directly and through the farm, `repeat` interleaved rounds of
/// keep-alive and one-connection-per-request runs, for each of `local_ports` (the farm's
/// `dataplane.local_port`), in two setups:
///
/// - [`SHARED`]: a direct lab (one node) and a 3-node farm lab side by side, every process on
///   both CPUs; through the farm on port 80 (on_addr: wrk's one client address is served by
///   one node, the other two filter its packets) and on port ON_PORT_TCP (on_port: the three
///   nodes share the connections);
/// - [`DEDICATED`]: the direct lab pinned to CPU 0 with its receive processing steered to
///   CPU 1 (RPS), and a 1-node farm whose data plane busy-polls on CPU 1, its Apache and farmd
///   pinned to CPU 0; wrk on CPU 0 in both.
///
/// The direct lab stays up throughout; each farm lab comes up for its phase only (two
/// busy-polling data planes would share CPU 1). A phase that fails is recorded and the others
/// run.
pub fn http(s: &LabSetup, repeat: u32, local_ports: &[String]) -> Result<HttpResults> {
    let mut runs = Vec::new();
    let mut errors = Vec::new();
    let direct = lab_up(&LabOptions { nodes: 1, ..options(s, "fbdirect", Mode::Direct, None) })?;
    tune_client(&direct)?;
    let direct_url = format!("http://{}/", direct.node_addr(1));
    for lp in local_ports {
        let mut phase = || -> Result<()> {
            let t = local_port_template(s, lp, None)?;
            let farm = lab_up(&options(s, &prefix("fbfarm", lp), Mode::Farm, t))?;
            tune_client(&farm)?;
            let vip = farm.vip();
            let (pids, tables) = dataplanes(&farm);
            let probe = || Probe::new(pids.clone(), &tables, Vec::new(), s.tsc_hz);
            let cases = [
                Case { lab: &direct, path: DIRECT, url: direct_url.clone(), local_port: lp.clone(), probe: Probe::kernel() },
                Case { lab: &farm, path: ON_ADDR, url: format!("http://{vip}/"), local_port: lp.clone(), probe: probe() },
                Case { lab: &farm, path: ON_PORT, url: format!("http://{vip}:{ON_PORT_TCP}/"), local_port: lp.clone(), probe: probe() },
            ];
            rounds(s, SHARED, &cases, repeat, &mut runs)?;
            farm.teardown().context("tear the farm lab down")?;
            Ok(())
        };
        if let Err(e) = phase() {
            check(&s.interrupt)?;
            tracing::error!("HTTP, {SHARED}, local port {lp}: {e:#}");
            errors.push(format!("{SHARED}, local port {lp}: {e:#}"));
        }
    }
    pin_node(&direct)?;
    steer_rx_to_cpu1(&direct)?;
    for lp in local_ports {
        let mut phase = || -> Result<()> {
            let ded = lab_up(&dedicated_options(s, lp)?)?;
            tune_client(&ded)?;
            pin_node(&ded)?;
            // No RPS here: what the data plane sends (to the client, to the kernel) is received
            // inside its own system calls on CPU 1, within its busy time; the client's frames
            // reach its packet socket in softirq on CPU 0, where they are counted.
            let (pids, tables) = dataplanes(&ded);
            let cases = [
                Case { lab: &direct, path: DIRECT, url: direct_url.clone(), local_port: lp.clone(), probe: Probe::kernel() },
                Case {
                    lab: &ded,
                    path: ON_ADDR,
                    url: format!("http://{}/", ded.vip()),
                    local_port: lp.clone(),
                    probe: Probe::new(pids, &tables, vec![1], s.tsc_hz),
                },
            ];
            rounds(s, DEDICATED, &cases, repeat, &mut runs)?;
            ded.teardown().context("tear the 1-node farm lab down")?;
            Ok(())
        };
        if let Err(e) = phase() {
            check(&s.interrupt)?;
            tracing::error!("HTTP, {DEDICATED}, local port {lp}: {e:#}");
            errors.push(format!("{DEDICATED}, local port {lp}: {e:#}"));
        }
    }
    direct.teardown().context("tear the direct lab down")?;
    if runs.is_empty() {
        bail!("every HTTP phase failed: {}", errors.join(" | "));
    }
    Ok(HttpResults { runs, repeat, seconds: s.http_duration.as_secs().max(1), errors })
}

/// The lab template with `dataplane.local_port` (None for tap: the built-in template as is),
/// edited further by `edit`.
fn local_port_template(s: &LabSetup, local_port: &str, edit: Option<&dyn Fn(&mut toml_edit::DocumentMut)>) -> Result<Option<PathBuf>> {
    if local_port == "tap" && edit.is_none() {
        return Ok(None);
    }
    let mut doc: toml_edit::DocumentMut = lab::LAB_TEMPLATE.parse().context("built-in lab template")?;
    if local_port != "tap" {
        doc["dataplane"]["local_port"] = toml_edit::value(local_port);
    }
    let mut name = format!("lab-{local_port}");
    if let Some(f) = edit {
        f(&mut doc);
        name.push_str("-dedicated");
    }
    write_template(&s.work, &format!("{name}.toml"), &doc).map(Some)
}

/// The 1-node farm lab of [`DEDICATED`]: its data plane busy-polls on CPU 1.
fn dedicated_options(s: &LabSetup, local_port: &str) -> Result<LabOptions> {
    let edit = |doc: &mut toml_edit::DocumentMut| {
        doc["dataplane"]["busy_poll"] = toml_edit::value(true);
        doc["dataplane"]["lcores"] = toml_edit::value(toml_edit::Array::from_iter([1i64]));
    };
    let t = local_port_template(s, local_port, Some(&edit))?;
    Ok(LabOptions { nodes: 1, ..options(s, &prefix("fbded", local_port), Mode::Farm, t) })
}

fn write_template(work: &Path, name: &str, doc: &toml_edit::DocumentMut) -> Result<PathBuf> {
    let dir = work.join("lab");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let p = dir.join(name);
    std::fs::write(&p, doc.to_string()).with_context(|| format!("write {}", p.display()))?;
    Ok(p)
}

/// The lab template with other heartbeat timers.
fn template_with_timers(work: &Path, pulse_ms: u64, dead_after_ms: u64) -> Result<PathBuf> {
    let mut doc: toml_edit::DocumentMut = lab::LAB_TEMPLATE.parse().context("built-in lab template")?;
    doc["heartbeat"]["pulse"] = toml_edit::value(format!("{pulse_ms}ms"));
    doc["heartbeat"]["dead_after"] = toml_edit::value(format!("{dead_after_ms}ms"));
    write_template(work, &format!("lab-pulse{pulse_ms}.toml"), &doc)
}

/// Part 5: a 3-node farm lab at the lab's default timers (pulse 100 ms, dead after 1 s), then
/// one with pulse 20 ms (dead after 200 ms); `kills` kills each.
pub fn failover(s: &LabSetup) -> Vec<FailoverSeries> {
    let mut out = Vec::new();
    for (prefix, pulse_ms, dead_ms, target) in [("fbfail", 100u64, 1000u64, 1500.0), ("fbfast", 20, 200, 300.0)] {
        let lab = template_with_timers(&s.work, pulse_ms, dead_ms).and_then(|t| lab_up(&options(s, prefix, Mode::Farm, Some(t))));
        let (pulse, dead) = (Duration::from_millis(pulse_ms), Duration::from_millis(dead_ms));
        match lab {
            Ok(mut l) => {
                out.push(series(s, &mut l, pulse, dead, target));
                if let Err(e) = l.teardown() {
                    tracing::warn!("tear lab {prefix} down: {e}");
                }
            }
            Err(e) => out.push(FailoverSeries {
                timers: timers(pulse, dead),
                pulse_ms,
                dead_after_ms: dead_ms,
                target_p99_ms: target,
                kills: Vec::new(),
                error: Some(format!("{e:#}")),
            }),
        }
    }
    out
}

fn timers(pulse: Duration, dead: Duration) -> String {
    format!("pulse {} ms, dead after {} ms", pulse.as_millis(), dead.as_millis())
}

fn series(s: &LabSetup, l: &mut Lab, pulse: Duration, dead: Duration, target_p99_ms: f64) -> FailoverSeries {
    let pulse_ms = pulse.as_millis() as u64;
    let dead_after_ms = dead.as_millis() as u64;
    let mut out = FailoverSeries {
        timers: timers(pulse, dead),
        pulse_ms,
        dead_after_ms,
        target_p99_ms,
        kills: Vec::new(),
        error: None,
    };
    let nodes: Vec<usize> = l.layout().node_numbers().collect();
    for k in 0..s.kills {
        let victim = nodes[k % nodes.len()];
        match kill_once(s, l, victim) {
            Ok(kill) => out.kills.push(kill),
            Err(e) => {
                tracing::error!("{}: kill {} of n{victim} failed: {e:#}", out.timers, k + 1);
                out.error = Some(format!("kill {} of n{victim}: {e:#}", k + 1));
                break;
            }
        }
    }
    out
}

fn kill_once(s: &LabSetup, l: &mut Lab, victim: usize) -> Result<Kill> {
    check(&s.interrupt)?;
    let all: Vec<usize> = l.layout().node_numbers().collect();
    // Every node UP and every table agreeing before the kill.
    l.wait_settled(&all, Duration::from_secs(20)).context("settle before the kill")?;
    let r = l.fail_node(victim, false, 4, Duration::from_secs(10)).context("kill")?;
    check(&s.interrupt)?;
    let j = l.rejoin_node(victim, Duration::from_secs(30)).context("rejoin")?;
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e3);
    let kill = Kill {
        victim,
        all_ms: ms(r.all()),
        first_ms: ms(r.first()),
        probes: r.served.len(),
        failed_after: r.failed_after.len(),
        rejoin_up_ms: j.up_after.as_secs_f64() * 1e3,
    };
    tracing::info!("  {r}; {j}");
    Ok(kill)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 5s test @ http://198.18.0.100/
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms    1.02ms  20.31ms   85.12%
    Req/Sec     7.65k   512.33     8.60k    70.00%
  Latency Distribution
     50%    1.95ms
     75%    2.40ms
     90%  850.00us
     99%    1.20s
  76123 requests in 5.00s, 20.12MB read
  Socket errors: connect 1, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 4
Requests/sec:  15220.31
Transfer/sec:      4.02MB
";

    #[test]
    fn parses_wrk_report() {
        let w = parse_wrk(WRK).unwrap();
        assert_eq!(
            w,
            WrkOutput { requests: 76123, rps: 15220.31, p50_ms: 1.95, p90_ms: 0.85, p99_ms: 1200.0, errors: 10 }
        );
        assert!(parse_wrk("unable to connect to 198.18.0.100:80 Connection refused").is_err());
    }

    #[test]
    fn local_ports_and_lab_prefixes() {
        // tap is always accepted; the prefixes stay short and distinct (interface names).
        assert_eq!(default_local_ports().first().map(String::as_str), Some("tap"));
        assert_eq!(prefix("fbfarm", "tap"), "fbfarm");
        assert_eq!(prefix("fbfarm", "af_xdp"), "fbfarmaf");
        assert_eq!(prefix("fbded", "virtio_user"), "fbdedvi");
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(10.0));
        assert_eq!(percentile(&v, 99.0), Some(20.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
