//! farm-bench: the performance harness of DESIGN.md ("Performance targets"),
//! side by side in one run on one machine:
//!
//! 1. farm-dataplane (1 and 2 workers) and a minimal C DPDK loop
//!    (perf/c/fwd.c), each between two `net_memif` links to farm-trafgen,
//!    flat out at each frame size, plus latency at a fixed rate; busy cycles
//!    per frame from the forwarders' own counters;
//! 2. the kernel path: an nftables `jhash` filter on a veth in a network
//!    namespace, fed by netsniff-ng's trafgen with the same frames; softirq
//!    cycles per packet;
//! 3. HTTP through the 3-node network-namespace lab vs directly to one Apache
//!    (wrk), per local port of the farm, with the network path's CPU per
//!    request;
//! 4. table rebuild + publish for 4096 and 65536 buckets;
//! 5. failover time over repeated kills in the lab, at the default timers and
//!    with pulse 20 ms.
//!
//! Writes `results.json`, `results.md`, `mpps.svg` and `failover.svg` into
//! `--out`. Needs root (namespaces), release builds of farm-trafgen,
//! farm-dataplane and farmd next to this binary, the C loop (`make -C perf/c`),
//! `trafgen` (Debian `netsniff-ng`), `wrk` and `apache2`. `perf/bench/run.sh`
//! does all of that.

mod dpdk;
mod kernel;
mod lab;
mod netcpu;
mod procs;
mod report;
mod report_lab;
#[cfg(test)]
mod pktgen_tests;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;

use dpdk::{Case, Forwarder, Setup};
use report::{Machine, Results};

/// Attempts per DPDK case: DPDK 22.11's memif PMD sometimes never passes
/// traffic on a multi-queue link (see perf/bench/README.md).
const ATTEMPTS: u32 = 3;

#[derive(Debug, Parser)]
#[command(name = "farm-bench", about = "farm data plane vs C DPDK loop vs nftables, side by side", args_override_self = true)]
struct Args {
    /// Output directory (created).
    #[arg(long)]
    out: PathBuf,
    /// Frame sizes with FCS.
    #[arg(long, default_value = "64,512", value_delimiter = ',')]
    sizes: Vec<u16>,
    /// Measurement window of each run.
    #[arg(long, default_value = "4s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Warm-up before each window.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Rate of the latency runs (packets per second, 64 B); 0 skips them.
    #[arg(long, default_value_t = 1_000_000)]
    latency_rate: u64,
    /// Directory of farm-trafgen and farm-dataplane (default: this binary's).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// The C loop.
    #[arg(long, default_value = "perf/c/build/farm-cfwd")]
    cfwd: PathBuf,
    /// Skip the DPDK runs.
    #[arg(long)]
    skip_dpdk: bool,
    /// Skip the kernel path.
    #[arg(long)]
    skip_kernel: bool,
    /// Run the generators and forwarders at this niceness (e.g. -15 on a
    /// machine shared with other work; recorded in the results). With the
    /// kernel's autogroup scheduling, nice only ranks tasks of one session, so
    /// this session's autogroup gets the same niceness. 0: unchanged.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    nice: i32,
    /// Runs of each flat-out DPDK case (interleaved; the median is reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    repeat: u32,
    /// Worker counts of farm-dataplane to run.
    #[arg(long, default_value = "1,2", value_delimiter = ',')]
    workers: Vec<u16>,
    /// Skip the lab parts (HTTP through the farm, failover series).
    #[arg(long)]
    skip_lab: bool,
    /// Skip the table rebuild + publish timing.
    #[arg(long)]
    skip_assign: bool,
    /// Kills per timer setting in the failover series (0: no failover series).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=1000))]
    kills: u32,
    /// wrk's measurement time per HTTP run.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    http_duration: Duration,
    /// Interleaved rounds of the HTTP cases (the median is reported).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=30))]
    http_repeat: u32,
    /// The farm's local ports to measure in the HTTP section (`dataplane.local_port`:
    /// tap, af_xdp, ...); default tap, and af_xdp too if this build's config accepts it.
    #[arg(long, value_delimiter = ',')]
    local_ports: Vec<String>,
    /// The generator's memifs in zero-copy mode (false: copy mode, as the forwarders).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    gen_zero_copy: bool,
    /// The machine's name in the report (default: the host name).
    #[arg(long)]
    machine: Option<String>,
    /// wrk's open connections.
    #[arg(long, default_value_t = 32)]
    wrk_connections: u32,
}

fn main() -> Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if args.nice != 0 {
        // Autogroups share the CPUs fairly whatever the tasks' nice values.
        match std::fs::write("/proc/self/autogroup", args.nice.to_string()) {
            Ok(()) => tracing::info!(nice = args.nice, "this session's autogroup reniced"),
            Err(e) => tracing::warn!(error = %e, "cannot renice the autogroup (no autogroup scheduling?)"),
        }
    }
    let t0 = Instant::now();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let started = String::from_utf8_lossy(&std::process::Command::new("date").arg("-Is").output()?.stdout).trim().to_owned();
    let machine = Machine::describe(args.machine.clone(), report::loadavg());
    std::fs::create_dir_all(&args.out).with_context(|| format!("create {}", args.out.display()))?;
    let work = std::env::temp_dir().join(format!("farm-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let bin_dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?.parent().context("binary directory")?.to_owned(),
    };
    let setup = Setup {
        trafgen: bin_dir.join("farm-trafgen"),
        dataplane: bin_dir.join("farm-dataplane"),
        cfwd: args.cfwd.clone(),
        warmup: args.warmup,
        duration: args.duration,
        nice: args.nice,
        gen_zero_copy: args.gen_zero_copy,
    };
    if !args.skip_dpdk {
        for p in [&setup.trafgen, &setup.dataplane, &setup.cfwd] {
            if !p.exists() {
                bail!("{} not found (perf/bench/run.sh builds it)", p.display());
            }
        }
    }
    if !args.skip_lab {
        for p in [bin_dir.join("farmd"), bin_dir.join("farm-dataplane")] {
            if !p.exists() {
                bail!("{} not found (perf/bench/run.sh builds it)", p.display());
            }
        }
        for prog in ["wrk", "apache2"] {
            let found = std::process::Command::new("sh").args(["-c", &format!("command -v {prog} || test -x /usr/sbin/{prog}")]).output()?.status.success();
            if !found {
                bail!("{prog} not found: apt-get install {}", if prog == "wrk" { "wrk" } else { "apache2" });
            }
        }
    }

    let mut dpdk_runs = Vec::new();
    let mut kernel_runs = Vec::new();
    let mut failures = Vec::new();
    let mut n = 0;
    if !args.skip_dpdk {
        let mut cases = Vec::new();
        for _ in 0..args.repeat {
            for &size in &args.sizes {
                cases.push(Case { fwd: Forwarder::CLoop, size, rate: None });
                for &workers in &args.workers {
                    cases.push(Case { fwd: Forwarder::Farm { workers }, size, rate: None });
                }
            }
        }
        if args.latency_rate > 0 {
            cases.push(Case { fwd: Forwarder::CLoop, size: 64, rate: Some(args.latency_rate) });
            cases.push(Case { fwd: Forwarder::Farm { workers: 1 }, size: 64, rate: Some(args.latency_rate) });
        }
        for case in cases {
            n += 1;
            let what = format!("{} {} B{}", case.fwd.label(), case.size, case.rate.map_or(String::new(), |r| format!(" at {r} pps")));
            let mut errors = Vec::new();
            for attempt in 1..=ATTEMPTS {
                let dir = work.join(format!("{n:02}-{attempt}"));
                tracing::info!("run {n}: {what} (attempt {attempt})");
                match dpdk::run(&setup, case, &dir) {
                    Ok(mut r) => {
                        tracing::info!("  {}", r.summary.human());
                        r.attempts = attempt;
                        r.warnings.extend(errors.drain(..).map(|e| format!("earlier attempt failed: {e}")));
                        dpdk_runs.push(r);
                        break;
                    }
                    Err(e) => {
                        tracing::error!("  failed: {e:#}");
                        errors.push(format!("{e:#}"));
                    }
                }
            }
            if !errors.is_empty() {
                failures.push(format!("{what}: {} attempts failed: {}", errors.len(), errors.join(" | ")));
            }
        }
    }
    if !args.skip_kernel {
        for &size in &args.sizes {
            for filter in [true, false] {
                n += 1;
                let dir = work.join(format!("{n:02}"));
                let what = format!("kernel {size} B {}", if filter { "jhash filter" } else { "no filter" });
                tracing::info!("run {n}: {what}");
                match kernel::run(size, filter, args.warmup, args.duration, args.nice, &dir) {
                    Ok(k) => {
                        tracing::info!("  {:.3} Mpps filtered, {:.3} Mpps per receive-path CPU", k.mpps, k.mpps_per_rx_core);
                        kernel_runs.push(k);
                    }
                    Err(e) => {
                        tracing::error!("  failed: {e:#}");
                        failures.push(format!("{what}: {e:#}"));
                    }
                }
            }
        }
    }

    let mut assign = Vec::new();
    if !args.skip_assign {
        tracing::info!("table rebuild + publish, 4096 and 65536 buckets, 2..64 nodes");
        match farm_perf::assign_bench::measure(&[4096, 65536], &[2, 4, 8, 16, 32, 64], 20) {
            Ok(a) => assign = a,
            Err(e) => failures.push(format!("table rebuild + publish: {e}")),
        }
    }
    let mut http = None;
    let mut failover = Vec::new();
    if !args.skip_lab {
        let interrupt = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            // A second signal ends the process at once.
            signal_hook::flag::register_conditional_shutdown(sig, 130, std::sync::Arc::clone(&interrupt))?;
            signal_hook::flag::register(sig, std::sync::Arc::clone(&interrupt))?;
        }
        let ls = lab::LabSetup {
            bin_dir: bin_dir.clone(),
            http_duration: args.http_duration,
            connections: args.wrk_connections,
            kills: args.kills as usize,
            work: work.clone(),
            tsc_hz: dpdk_runs.iter().map(|d| d.summary.tsc_hz).find(|&h| h > 0).unwrap_or(machine.tsc_hz),
            interrupt,
        };
        let local_ports = if args.local_ports.is_empty() { lab::default_local_ports() } else { args.local_ports.clone() };
        tracing::info!("HTTP through the lab vs direct (wrk), local ports {}", local_ports.join(", "));
        match lab::http(&ls, args.http_repeat, &local_ports) {
            Ok(h) => http = Some(h),
            Err(e) => failures.push(format!("HTTP through the lab: {e:#}")),
        }
        if args.kills > 0 {
            tracing::info!("failover series: {} kills at the default timers, then with pulse 20 ms", args.kills);
            failover = lab::failover(&ls);
        }
        for f in &failover {
            if let Some(e) = &f.error {
                failures.push(format!("failover series, {}: {e}", f.timers));
            }
        }
    }

    let mut machine = machine;
    machine.loadavg_end = report::loadavg();
    if let Some(d) = dpdk_runs.iter().find(|d| d.summary.tsc_hz > 0) {
        machine.tsc_hz = d.summary.tsc_hz;
    }
    let mut targets = report::targets(&dpdk_runs, &kernel_runs, &args.sizes, machine.tsc_hz);
    targets.extend(report_lab::targets(http.as_ref(), &assign, &failover));
    let results = Results {
        command,
        started,
        elapsed_s: t0.elapsed().as_secs_f64(),
        repeat: args.repeat,
        machine,
        dpdk: dpdk_runs,
        kernel: kernel_runs,
        http,
        assign,
        failover,
        failures,
        targets,
    };
    std::fs::write(args.out.join("results.json"), serde_json::to_string_pretty(&results)? + "\n")?;
    let md = report::markdown(&results);
    std::fs::write(args.out.join("results.md"), &md)?;
    report::svg(&args.out.join("mpps.svg"), &results)?;
    report_lab::failover_svg(&args.out.join("failover.svg"), &results.failover, &results.started)?;
    // Keep the per-run logs next to the results.
    let logs = args.out.join("logs");
    std::fs::create_dir_all(&logs)?;
    for e in std::fs::read_dir(&work)?.flatten() {
        let run = logs.join(e.file_name());
        std::fs::create_dir_all(&run)?;
        for f in std::fs::read_dir(e.path())?.flatten() {
            let name = f.file_name();
            let keep = name.to_str().is_some_and(|n| n.ends_with(".out") || n.ends_with(".err") || n.ends_with(".json") || n.ends_with(".toml") || n.ends_with(".nft"));
            if keep {
                std::fs::copy(f.path(), run.join(&name))?;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    println!("{md}");
    println!("results in {}", args.out.display());
    if !results.failures.is_empty() {
        bail!("{} run(s) failed", results.failures.len());
    }
    Ok(())
}
