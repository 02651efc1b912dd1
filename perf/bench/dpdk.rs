//! DPDK scenarios: farm-trafgen -> memif -> forwarder -> memif -> farm-trafgen,
//! where the forwarder is farm-dataplane (1 or 2 workers) or the minimal C loop.
//!
//! ```text
//!  farm-trafgen (CPU 0)                      forwarder
//!   tx: memif client ──── up.sock ────► memif server (uplink, port 0)
//!   rx: memif client ◄─── loc.sock ──── memif server (local port, port 1)
//! ```
//!
//! While the generator runs, the harness samples the forwarder's own counters
//! every 10 ms (farm-dataplane: its table's per-lcore counters; the C loop: its
//! `--stats` file) and keeps the delta over the generator's measurement window
//! (`CLOCK_MONOTONIC` edges in its report): busy cycles per frame, the figure
//! that does not depend on how fast the generator is.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use farm_perf::Summary;
use farm_table::{BucketEntry, Counter, TableParams, TableWriter};
use serde::{Deserialize, Serialize};

use crate::procs::{self, command_line, Guard};

/// The VIP, the clients and the hash seed of every scenario (and of the kernel path).
pub const VIP: &str = "198.18.0.100";
/// Client addresses.
pub const CLIENTS: &str = "198.18.128.0/17";
/// The cluster's hash seed.
pub const HASH_SEED: u64 = 0xfa7;
/// Buckets.
pub const BUCKETS: u32 = 4096;

/// What forwards between the two memifs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Forwarder {
    /// perf/c/fwd.c.
    CLoop,
    /// farm-dataplane with this many workers.
    Farm {
        /// Worker lcores.
        workers: u16,
    },
}

impl Forwarder {
    /// Label for tables and plots.
    pub fn label(self) -> String {
        match self {
            Forwarder::CLoop => "C DPDK loop (1 core)".to_owned(),
            Forwarder::Farm { workers: 1 } => "farm-dataplane, 1 worker".to_owned(),
            Forwarder::Farm { workers } => format!("farm-dataplane, {workers} workers"),
        }
    }
}

/// One DPDK run.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// The forwarder.
    pub fwd: Forwarder,
    /// Frame size with FCS.
    pub size: u16,
    /// Offered rate (None: flat out).
    pub rate: Option<u64>,
}

/// Binaries and timing.
#[derive(Debug, Clone)]
pub struct Setup {
    /// farm-trafgen.
    pub trafgen: PathBuf,
    /// farm-dataplane.
    pub dataplane: PathBuf,
    /// The C loop.
    pub cfwd: PathBuf,
    /// Generator warm-up.
    pub warmup: Duration,
    /// Measurement window.
    pub duration: Duration,
    /// Niceness of the generator and the forwarder (0: unchanged).
    pub nice: i32,
    /// The generator's memifs in zero-copy mode (its own mbufs are the shared
    /// buffers: no copy on its side; the forwarder, a memif server, copies as
    /// before).
    pub gen_zero_copy: bool,
}

/// The forwarder's own busy-cycle counters over the generator's window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Busy {
    /// Between the first and last samples inside the window.
    pub seconds: f64,
    /// Frames the forwarder received (farm: `rx` + `tap_rx`; C loop: both ports).
    pub frames: u64,
    /// TSC cycles of its polls that returned frames (all workers).
    pub busy_cycles: u64,
    /// Polls that returned frames.
    pub busy_polls: u64,
    /// Worker cores (the busy fraction is over their cycles together).
    pub cores: u16,
    /// TSC frequency used for the fraction.
    pub tsc_hz: u64,
}

impl Busy {
    /// TSC cycles per frame in polls that returned frames.
    pub fn cycles_per_frame(&self) -> Option<f64> {
        (self.frames > 0 && self.busy_cycles > 0).then(|| self.busy_cycles as f64 / self.frames as f64)
    }

    /// Busy cycles over all the workers' cycles in the window (1.0: never idle).
    pub fn fraction(&self) -> Option<f64> {
        let all = self.seconds * self.tsc_hz as f64 * f64::from(self.cores.max(1));
        (all > 0.0 && self.busy_cycles > 0).then(|| self.busy_cycles as f64 / all)
    }
}

/// One reading of the forwarder's counters.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    mono_ns: u64,
    frames: u64,
    busy_cycles: u64,
    busy_polls: u64,
    /// The forwarder's own TSC Hz (0: not reported).
    tsc_hz: u64,
}

/// Where the forwarder's counters are.
enum Counters<'a> {
    Table(&'a TableWriter),
    File(PathBuf),
}

impl Counters<'_> {
    fn sample(&self) -> Option<Sample> {
        let mono_ns = farm_perf::cpu::mono_ns();
        match self {
            Counters::Table(t) => {
                let s = t.dataplane();
                Some(Sample {
                    mono_ns,
                    frames: s.total(Counter::Rx) + s.total(Counter::TapRx),
                    busy_cycles: s.total(Counter::BusyCycles),
                    busy_polls: s.total(Counter::BusyPolls),
                    tsc_hz: s.tsc_hz,
                })
            }
            Counters::File(p) => {
                // struct cfwd_stats of perf/c/fwd.c: eight little-endian u64.
                let b = std::fs::read(p).ok()?;
                let w = |i: usize| b.get(i * 8..i * 8 + 8).map_or(0, |x| u64::from_le_bytes(x.try_into().unwrap_or([0; 8])));
                Some(Sample { mono_ns, frames: w(0) + w(7), busy_polls: w(3), busy_cycles: w(4), tsc_hz: w(6) })
            }
        }
    }
}

/// The delta between the first and the last sample inside `[start, end]`; the forwarder's TSC
/// Hz if it reported one, else `tsc_hz` (the generator's: the same TSC).
fn busy_window(samples: &[Sample], start: u64, end: u64, cores: u16, tsc_hz: u64) -> Option<Busy> {
    let inside: Vec<&Sample> = samples.iter().filter(|s| s.mono_ns >= start && s.mono_ns <= end).collect();
    let (a, b) = (inside.first()?, inside.last()?);
    if b.mono_ns <= a.mono_ns {
        return None;
    }
    Some(Busy {
        seconds: (b.mono_ns - a.mono_ns) as f64 / 1e9,
        frames: b.frames.saturating_sub(a.frames),
        busy_cycles: b.busy_cycles.saturating_sub(a.busy_cycles),
        busy_polls: b.busy_polls.saturating_sub(a.busy_polls),
        cores,
        tsc_hz: if b.tsc_hz > 0 { b.tsc_hz } else { tsc_hz },
    })
}

/// What one run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DpdkRun {
    /// The forwarder.
    pub forwarder: Forwarder,
    /// Frame size with FCS.
    pub size: u16,
    /// Offered rate.
    pub rate: Option<u64>,
    /// The generator's report.
    pub summary: Summary,
    /// The forwarder's own counters (C loop: its JSON line; farm: table counters).
    pub forwarder_counters: serde_json::Value,
    /// Exact commands, forwarder first.
    pub commands: Vec<String>,
    /// Attempts it took (a run in which no frame came back is retried).
    pub attempts: u32,
    /// Anomalies that did not invalidate the figures (e.g. a crash on shutdown).
    pub warnings: Vec<String>,
    /// The forwarder's busy-cycle counters over the window (None: not exported).
    #[serde(default)]
    pub busy: Option<Busy>,
}

fn farm_config(dir: &Path, prefix: &str) -> Result<PathBuf> {
    let text = format!(
        r#"# farm-bench: one node, every bucket its own; memif ports given on the command line.
[module]
name = "bench"
cluster_id = 1
hash_seed = "{HASH_SEED:#x}"
buckets = {BUCKETS}
secret_file = "{d}/secret"
table_file = "{d}/table"
log_dir = "{d}/log"
run_dir = "{d}/run"

[[node]]
name = "n1"
addrs = ["198.18.0.1"]
[[node]]
name = "n2"
addrs = ["198.18.0.2"]

[[vip]]
addr = "{VIP}"
[[vip.rule]]
proto = "tcp"
ports = "80"
[[vip.rule]]
proto = "udp"
ports = "5000"

[dataplane]
uplink = "net_memif_up"
mempool_size = 16383
eal_args = ["--no-huge", "--no-shconf", "--no-pci", "--no-telemetry", "-m", "256"]
file_prefix = "{prefix}"
"#,
        d = dir.display()
    );
    let p = dir.join("farm.toml");
    std::fs::write(&p, text)?;
    Ok(p)
}

fn wait_ready(fwd: &mut Guard, socks: &[&Path], table: Option<&TableWriter>, log: &Path) -> Result<()> {
    let t = Instant::now();
    loop {
        let live = table.is_none_or(|t| t.dataplane().liveness_ns != 0);
        if live && socks.iter().all(|s| procs::unix_listening(s)) {
            return Ok(());
        }
        if !fwd.running() {
            bail!("{} exited during start-up:\n{}", fwd.name, procs::tail(log, 15));
        }
        if t.elapsed() > Duration::from_secs(30) {
            bail!("{} not ready after 30 s:\n{}", fwd.name, procs::tail(log, 15));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs one case in `dir` (created).
pub fn run(setup: &Setup, case: Case, dir: &Path) -> Result<DpdkRun> {
    std::fs::create_dir_all(dir)?;
    let up = dir.join("up.sock");
    let loc = dir.join("loc.sock");
    let tag = format!("{}-{}", std::process::id(), dir.file_name().and_then(|n| n.to_str()).unwrap_or("x"));
    let mut commands = Vec::new();
    let mut table = None;
    let queues = match case.fwd {
        Forwarder::CLoop => 1,
        Forwarder::Farm { workers } => workers,
    };
    let mut fwd_cmd;
    let cfg;
    match case.fwd {
        Forwarder::CLoop => {
            cfg = None;
            fwd_cmd = procs::niced(&setup.cfwd, setup.nice);
            fwd_cmd
                .args(["-l", "1", "--no-huge", "--no-shconf", "-m", "256", "--no-pci", "--no-telemetry"])
                .arg(format!("--file-prefix=cfwd-{tag}"))
                .arg("--log-level=*:error")
                .arg(format!("--vdev=net_memif0,role=server,id=0,socket={}", up.display()))
                .arg(format!("--vdev=net_memif1,role=server,id=0,socket={}", loc.display()))
                .arg("--")
                .arg("--stats")
                .arg(dir.join("cfwd.stats"));
        }
        Forwarder::Farm { workers } => {
            let c = farm_config(dir, &format!("farmdp-{tag}"))?;
            let conf = farm_config::Config::load(&c)?;
            let params = TableParams { n_buckets: conf.buckets(), node_id: 0, n_lcores: 2, hash_key: conf.hash_key() };
            let mut w = TableWriter::create(&dir.join("table"), &params)?;
            w.publish(&vec![BucketEntry::owned(0); conf.buckets() as usize], 1, Duration::ZERO)?;
            // No farmd renews a lease here: one that outlasts the run (else the data plane is
            // fenced and refuses every new flow).
            w.set_lease(farm_perf::cpu::mono_ns() + 24 * 3600 * 1_000_000_000);
            table = Some(w);
            // Worker i on CPU i+1 modulo 2: one worker has CPU 1 to itself; a second
            // one shares CPU 0 with the generator.
            let lcores = (0..workers).map(|i| ((i + 1) % 2).to_string()).collect::<Vec<_>>().join(",");
            fwd_cmd = procs::niced(&setup.dataplane, setup.nice);
            fwd_cmd
                .arg("--config")
                .arg(&c)
                .args(["--node", "n1", "--workers", &workers.to_string(), "--lcores", &lcores, "--busy-poll", "--log", "warn"])
                .arg("--uplink")
                .arg(format!("net_memif_up,role=server,id=0,socket={}", up.display()))
                .arg("--local-port")
                .arg(format!("net_memif_loc,role=server,id=0,socket={}", loc.display()));
            cfg = Some(c);
        }
    }
    commands.push(command_line(&fwd_cmd));
    let mut fwd = procs::spawn("forwarder", fwd_cmd, dir)?;
    wait_ready(&mut fwd, &[&up, &loc], table.as_ref(), &dir.join("forwarder.err"))?;

    let json = dir.join("trafgen.json");
    let mut tg = procs::niced(&setup.trafgen, setup.nice);
    let zc = if setup.gen_zero_copy { ",zero-copy=yes" } else { "" };
    tg.args(["--cpu", "0", "--queues", &queues.to_string()])
        .arg("--port")
        .arg(format!("net_memif_tg0,role=client,id=0,socket={}{zc}", up.display()))
        .arg("--rx-port")
        .arg(format!("net_memif_tg1,role=client,id=0,socket={}{zc}", loc.display()));
    if setup.gen_zero_copy {
        // memif zero-copy shares the generator's memory: one file (memfd) for all of it.
        tg.arg("--eal-arg=--single-file-segments");
    }
    tg
        .args(["--clients", CLIENTS, "--size", &case.size.to_string()])
        .args(["--warmup", &humantime::format_duration(setup.warmup).to_string()])
        .args(["--duration", &humantime::format_duration(setup.duration).to_string()])
        .args(["--dut-pid", &fwd.pid().to_string(), "--file-prefix", &format!("tg-{tag}")])
        .arg("--hold")
        .arg("--json")
        .arg(&json);
    match &cfg {
        Some(c) => tg.arg("--farm-config").arg(c),
        None => tg.args(["--vip", VIP]),
    };
    if let Some(r) = case.rate {
        tg.args(["--rate", &r.to_string()]);
    }
    commands.push(command_line(&tg));
    let mut gen = procs::spawn("trafgen", tg, dir)?;
    // The generator holds its memifs open after its report: stop the forwarder
    // first (it stops polling before it disconnects), then the generator. The
    // other order can crash the forwarder inside DPDK's memif rx (peer
    // disconnect while polling).
    let limit = setup.warmup + setup.duration + Duration::from_secs(40);
    let t = Instant::now();
    let source = match &table {
        Some(w) => Counters::Table(w),
        None => Counters::File(dir.join("cfwd.stats")),
    };
    let mut samples = Vec::new();
    while !json.exists() && gen.running() {
        if t.elapsed() > limit {
            bail!("farm-trafgen did not report within {limit:?}");
        }
        samples.extend(source.sample());
        std::thread::sleep(Duration::from_millis(10));
    }
    let fwd_alive = fwd.running();
    let fwd_status = fwd.stop(Duration::from_secs(10));
    let status = gen.stop(Duration::from_secs(5));
    if !json.exists() {
        let err = procs::tail(&dir.join("trafgen.err"), 40);
        let first = err.lines().take_while(|l| !l.contains("Stack backtrace")).collect::<Vec<_>>().join("\n");
        bail!("farm-trafgen failed ({status:?}): {first}");
    }
    if !fwd_alive {
        bail!("the forwarder exited during the run ({fwd_status:?}):\n{}", procs::tail(&dir.join("forwarder.err"), 15));
    }
    let mut warnings = Vec::new();
    if !fwd_status.is_some_and(|s| s.success()) {
        let w = format!("forwarder exit status on SIGTERM, after the measurement: {fwd_status:?}");
        tracing::warn!("{w}");
        warnings.push(w);
    }
    if !status.is_some_and(|s| s.success()) {
        let w = format!("farm-trafgen exit status after its report: {status:?}");
        tracing::warn!("{w}");
        warnings.push(w);
    }
    // DPDK leaves /run/dpdk/<file-prefix> behind (always for the C loop).
    for prefix in [format!("cfwd-{tag}"), format!("farmdp-{tag}"), format!("tg-{tag}")] {
        let _ = std::fs::remove_dir_all(Path::new("/run/dpdk").join(prefix));
    }
    let summary: Summary = serde_json::from_str(&std::fs::read_to_string(&json).context("trafgen JSON")?)?;
    let forwarder_counters = match &table {
        Some(t) => {
            let s = t.dataplane();
            let mut m = serde_json::Map::new();
            for c in [
                Counter::Rx,
                Counter::TapRx,
                Counter::ToTap,
                Counter::NotMine,
                Counter::NoRule,
                Counter::DropTxFull,
                Counter::DropTapFull,
                Counter::DropMalformed,
                Counter::DropFenced,
                Counter::BusyCycles,
                Counter::BusyPolls,
            ] {
                m.insert(c.name().to_owned(), s.total(c).into());
            }
            serde_json::Value::Object(m)
        }
        None => {
            let out = std::fs::read_to_string(dir.join("forwarder.out")).unwrap_or_default();
            serde_json::from_str(out.trim()).unwrap_or(serde_json::Value::Null)
        }
    };
    if summary.window.tx > 0 && summary.window.rx == 0 {
        bail!("no frame came back ({} sent; forwarder counters {forwarder_counters})", summary.totals.tx);
    }
    let busy = busy_window(&samples, summary.window.start_mono_ns, summary.window.end_mono_ns, queues, summary.tsc_hz)
        .filter(|b| b.busy_cycles > 0);
    if let Some(b) = &busy {
        tracing::info!(
            "  forwarder busy {:.0}% of its cycles, {:.0} busy cycles per frame",
            b.fraction().unwrap_or(0.0) * 100.0,
            b.cycles_per_frame().unwrap_or(0.0)
        );
    }
    Ok(DpdkRun { forwarder: case.fwd, size: case.size, rate: case.rate, summary, forwarder_counters, commands, attempts: 1, warnings, busy })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_window_takes_the_samples_inside() {
        let s = |t: u64, f: u64, c: u64| Sample { mono_ns: t * 1_000_000, frames: f, busy_cycles: c, busy_polls: f / 32, tsc_hz: 0 };
        let samples = [s(0, 0, 0), s(10, 100, 1000), s(20, 1100, 101_000), s(30, 2100, 201_000), s(40, 9000, 9_000_000)];
        let b = busy_window(&samples, 5_000_000, 35_000_000, 1, 10_000_000).unwrap();
        assert_eq!((b.frames, b.busy_cycles), (2000, 200_000));
        assert!((b.seconds - 0.02).abs() < 1e-12);
        assert_eq!(b.cycles_per_frame(), Some(100.0));
        // 200k busy cycles of 0.02 s × 10 MHz.
        assert!((b.fraction().unwrap() - 1.0).abs() < 1e-9);
        assert!(busy_window(&samples, 5_000_000, 12_000_000, 1, 1).is_none());
        assert!(busy_window(&[], 0, 1, 1, 1).is_none());
    }
}
