//! Results: the machine, the runs, the targets; as JSON, Markdown and an SVG plot.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::Result;
use plotters::prelude::*;
use serde::Serialize;

use crate::dpdk::{DpdkRun, Forwarder};
use crate::kernel::KernelRun;

/// The machine the figures come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Its name (`--machine`, else the host name).
    pub name: String,
    /// `lscpu` output.
    pub lscpu: String,
    /// CPU model (from lscpu).
    pub cpu_model: String,
    /// Online CPUs.
    pub cpus: usize,
    /// `uname -r`.
    pub kernel: String,
    /// `pkg-config --modversion libdpdk`.
    pub dpdk: String,
    /// `rustc --version` (if on PATH).
    pub rustc: String,
    /// /proc/loadavg when the run started (other work on the machine skews figures).
    pub loadavg_start: String,
    /// /proc/loadavg when it ended.
    pub loadavg_end: String,
    /// TSC frequency (DPDK's, from the generator's report; else the CPU's MHz from /proc/cpuinfo).
    pub tsc_hz: u64,
}

fn cmd_out(prog: &str, args: &[&str]) -> String {
    Command::new(prog)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|e| format!("({prog}: {e})"))
}

/// The current load average line.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_owned()
}

impl Machine {
    /// Describes this machine (`name`: None for the host name).
    pub fn describe(name: Option<String>, loadavg_start: String) -> Machine {
        let lscpu = cmd_out("lscpu", &[]);
        let cpu_model = lscpu
            .lines()
            .find_map(|l| l.strip_prefix("Model name:"))
            .unwrap_or("")
            .trim()
            .to_owned();
        let name = name.unwrap_or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_owned());
        // The CPU's nominal MHz until a DPDK run reports the TSC's.
        let mhz = std::fs::read_to_string("/proc/cpuinfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("cpu MHz").and_then(|v| v.trim_start_matches([' ', '\t', ':']).trim().parse::<f64>().ok()))
            .unwrap_or(0.0);
        Machine {
            name,
            tsc_hz: (mhz * 1e6) as u64,
            cpu_model,
            lscpu,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: cmd_out("uname", &["-r"]),
            dpdk: cmd_out("pkg-config", &["--modversion", "libdpdk"]),
            rustc: cmd_out("rustc", &["--version"]),
            loadavg_start,
            loadavg_end: String::new(),
        }
    }
}

/// A design target and whether this run met it.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// What is compared.
    pub name: String,
    /// The bound required.
    pub required: f64,
    /// The value measured.
    pub measured: f64,
    /// Unit of both ("×", " ms", "%").
    pub unit: String,
    /// The bound is an upper one (measured <= required); else a lower one.
    pub at_most: bool,
    /// Whether the bound holds.
    pub met: bool,
    /// How the value was computed.
    pub how: String,
}

impl Target {
    /// A lower bound on a ratio.
    pub fn ratio_at_least(name: String, required: f64, measured: f64, how: String) -> Target {
        Target { name, required, measured, unit: "×".into(), at_most: false, met: measured >= required, how }
    }

    /// An upper bound.
    pub fn at_most(name: String, required: f64, measured: f64, unit: &str, how: String) -> Target {
        Target { name, required, measured, unit: unit.into(), at_most: true, met: measured <= required, how }
    }

    fn cell(&self, v: f64) -> String {
        let digits = if self.unit == "×" || v.abs() < 10.0 { 2 } else { 0 };
        format!("{v:.digits$}{}", self.unit)
    }
}

/// Everything a run of farm-bench produced.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    /// The exact command.
    pub command: String,
    /// Start time (`date -Is`).
    pub started: String,
    /// Wall time of the whole benchmark.
    pub elapsed_s: f64,
    /// Repeats of each flat-out DPDK case.
    pub repeat: u32,
    /// The machine.
    pub machine: Machine,
    /// DPDK runs.
    pub dpdk: Vec<DpdkRun>,
    /// Kernel-path runs.
    pub kernel: Vec<KernelRun>,
    /// HTTP through the lab vs direct.
    pub http: Option<crate::lab::HttpResults>,
    /// Table rebuild + publish.
    pub assign: Vec<farm_perf::assign_bench::AssignTiming>,
    /// Failover series.
    pub failover: Vec<crate::lab::FailoverSeries>,
    /// Runs that failed, with their error.
    pub failures: Vec<String>,
    /// Targets of DESIGN.md.
    pub targets: Vec<Target>,
}

/// The median run (by delivered rate) of a forwarder at a size, flat out.
fn find(runs: &[DpdkRun], fwd: Forwarder, size: u16) -> Option<&DpdkRun> {
    let mut v: Vec<&DpdkRun> = runs.iter().filter(|r| r.forwarder == fwd && r.size == size && r.rate.is_none()).collect();
    v.sort_by(|a, b| a.summary.window.rx_pps.total_cmp(&b.summary.window.rx_pps));
    v.get(v.len() / 2).copied()
}

/// Median flat-out runs, one per (forwarder, size), in first-seen order.
fn medians(runs: &[DpdkRun]) -> Vec<&DpdkRun> {
    let mut keys: Vec<(Forwarder, u16)> = Vec::new();
    for r in runs.iter().filter(|r| r.rate.is_none()) {
        if !keys.contains(&(r.forwarder, r.size)) {
            keys.push((r.forwarder, r.size));
        }
    }
    keys.sort_by_key(|k| k.1);
    keys.iter().filter_map(|&(f, size)| find(runs, f, size)).collect()
}

/// "min–max" delivered Mpps over the repeats of a run's case.
fn spread(runs: &[DpdkRun], d: &DpdkRun) -> String {
    let v: Vec<f64> = runs
        .iter()
        .filter(|r| r.forwarder == d.forwarder && r.size == d.size && r.rate == d.rate)
        .map(|r| r.summary.window.rx_pps / 1e6)
        .collect();
    if v.len() < 2 {
        return "–".to_owned();
    }
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(0.0, f64::max);
    format!("{min:.2}–{max:.2} ({} runs)", v.len())
}

/// Median and range of one figure over the repeats of a case.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The median (the upper one of an even count, as [`find`]).
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Values.
    pub n: usize,
}

impl Spread {
    pub(crate) fn of(mut v: Vec<f64>) -> Option<Spread> {
        v.retain(|x| x.is_finite());
        v.sort_by(f64::total_cmp);
        Some(Spread { median: *v.get(v.len() / 2)?, min: v[0], max: v[v.len() - 1], n: v.len() })
    }

    /// "median (min–max)" with `digits` decimals, or the value alone for one run.
    pub fn show(&self, digits: usize) -> String {
        if self.n > 1 {
            format!("{:.digits$} ({:.digits$}–{:.digits$})", self.median, self.min, self.max)
        } else {
            format!("{:.digits$}", self.median)
        }
    }
}

fn flat_out(runs: &[DpdkRun], fwd: Forwarder, size: u16) -> impl Iterator<Item = &DpdkRun> {
    runs.iter().filter(move |r| r.forwarder == fwd && r.size == size && r.rate.is_none())
}

/// Busy cycles per frame of a forwarder at a size, over its flat-out repeats.
pub fn busy_cpp(runs: &[DpdkRun], fwd: Forwarder, size: u16) -> Option<Spread> {
    Spread::of(flat_out(runs, fwd, size).filter_map(|r| r.busy.and_then(|b| b.cycles_per_frame())).collect())
}

/// Busy share of the forwarder's worker cycles, over its flat-out repeats.
pub fn busy_fraction(runs: &[DpdkRun], fwd: Forwarder, size: u16) -> Option<Spread> {
    Spread::of(flat_out(runs, fwd, size).filter_map(|r| r.busy.and_then(|b| b.fraction())).collect())
}

/// Frames per busy poll (the mean burst) of a forwarder at a size, over its flat-out repeats.
fn frames_per_busy_poll(runs: &[DpdkRun], fwd: Forwarder, size: u16) -> Option<Spread> {
    Spread::of(flat_out(runs, fwd, size).filter_map(|r| r.busy.filter(|b| b.busy_polls > 0).map(|b| b.frames as f64 / b.busy_polls as f64)).collect())
}

/// Softirq cycles per filtered packet of the kernel path at a size.
pub fn kernel_cpp(kernel: &[KernelRun], size: u16, filter: bool, tsc_hz: u64) -> Option<f64> {
    let v: Vec<f64> = kernel
        .iter()
        .filter(|k| k.size == size && k.filter == filter && k.softirq_ns_per_packet > 0.0)
        .map(|k| k.softirq_ns_per_packet * tsc_hz as f64 / 1e9)
        .collect();
    (tsc_hz > 0).then(|| Spread::of(v)).flatten().map(|s| s.median)
}

const FARM1: Forwarder = Forwarder::Farm { workers: 1 };

/// Evaluates the targets on whatever runs succeeded.
pub fn targets(dpdk: &[DpdkRun], kernel: &[KernelRun], sizes: &[u16], tsc_hz: u64) -> Vec<Target> {
    let mut out = Vec::new();
    for &size in sizes {
        let farm = busy_cpp(dpdk, FARM1, size);
        if let (Some(f), Some(c)) = (farm, busy_cpp(dpdk, Forwarder::CLoop, size)) {
            out.push(Target::at_most(
                format!("farm-dataplane (1 worker) vs minimal C DPDK loop, busy cycles per frame, {size} B, same memif wire"),
                1.15,
                f.median / c.median.max(1e-9),
                "×",
                format!(
                    "{:.0} / {:.0} busy cycles per frame (TSC cycles of polls that returned frames over frames received), medians of {} and {} runs",
                    f.median, c.median, f.n, c.n
                ),
            ));
        }
        // 64 B only (issue 12): at larger sizes memif's copies (a veth passes buffers) dominate,
        // the side-by-side table shows them.
        if let (Some(f), Some(k), 64) = (farm, kernel_cpp(kernel, size, true, tsc_hz), size) {
            out.push(Target::ratio_at_least(
                format!("kernel nftables jhash receive path vs farm-dataplane, cycles per packet, {size} B"),
                5.0,
                k / f.median.max(1e-9),
                format!(
                    "{k:.0} softirq cycles per filtered packet (veth → IP → nftables, trafgen's send left out) / {:.0} busy cycles per frame; DESIGN.md aims at 10×, 5× on every machine",
                    f.median
                ),
            ));
        }
    }
    out
}

fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1000.0)
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".to_owned(), |x| format!("{x:.digits$}"))
}

/// The Markdown report.
pub fn markdown(r: &Results) -> String {
    let mut s = String::new();
    let m = &r.machine;
    let _ = writeln!(s, "# farm data-plane benchmark, {}, on {}\n", r.started, m.name);
    let _ = writeln!(s, "Command: `{}`  \nWall time: {:.0} s\n", r.command, r.elapsed_s);
    let _ = writeln!(
        s,
        "Machine: **{}**: {} ({} CPUs, TSC {:.3} GHz), kernel {}, DPDK {}, {}.  \nLoad average at start: {}; at end: {} (anything else running skews these figures).\n",
        m.name,
        m.cpu_model,
        m.cpus,
        m.tsc_hz as f64 / 1e9,
        m.kernel,
        m.dpdk,
        m.rustc,
        m.loadavg_start,
        m.loadavg_end
    );
    let _ = writeln!(s, "## DPDK over net_memif, flat out\n");
    let _ = writeln!(s, "farm-trafgen (CPU 0) → memif → forwarder → memif → farm-trafgen. Every bucket is owned, so every frame comes back. **Busy cycles/frame**: the forwarder's own counters over the generator's window, TSC cycles of its polls that returned frames over the frames it received (farm-dataplane: its table's `busy_cycles` over `rx` + `tap_rx`; the C loop: the same from its `--stats` file); this does not depend on how fast the generator is. **Busy**: those cycles over all its worker cores' cycles (100%: never idle, the generator outruns it). \"DUT CPUs\": CPU time of the forwarder process over the window; CPU-time cycles/frame = that time × TSC Hz / frames delivered (includes empty polls).\n");
    let _ = writeln!(s, "Each case ran {} time(s), interleaved; the table shows the median run (by delivered rate) and the range of all.\n", r.repeat);
    let _ = writeln!(s, "| Path | Frame | Offered Mpps | Delivered Mpps | Range | Lost | Busy cycles/frame | Busy | DUT CPUs | CPU-time cycles/frame | Machine busy CPUs | Latency p50 / p99 (µs) |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for d in medians(&r.dpdk) {
        let w = &d.summary.window;
        let _ = writeln!(
            s,
            "| {} | {} B | {:.3} | **{:.3}** | {} | {} | {} | {} | {} | {} | {:.2} | {} / {} |",
            d.forwarder.label(),
            d.size,
            w.tx_pps / 1e6,
            w.rx_pps / 1e6,
            spread(&r.dpdk, d),
            d.summary.totals.lost,
            opt(d.busy.and_then(|b| b.cycles_per_frame()), 0),
            d.busy.and_then(|b| b.fraction()).map_or_else(|| "–".to_owned(), |f| format!("{:.0}%", f * 100.0)),
            opt(d.summary.cpu.dut_cpus, 2),
            opt(d.summary.cpu.dut_cycles_per_packet, 0),
            d.summary.cpu.machine_busy_cpus,
            us(d.summary.latency_ns.p50),
            us(d.summary.latency_ns.p99),
        );
    }
    cycles_side_by_side(&mut s, r);
    if r.dpdk.iter().any(|d| d.rate.is_some()) {
        let _ = writeln!(s, "\n## Latency at a fixed rate\n");
        let _ = writeln!(s, "| Path | Frame | Rate (Mpps) | Delivered Mpps | Lost | p50 (µs) | p99 (µs) | p99.9 (µs) | max (µs) |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for d in r.dpdk.iter().filter(|d| d.rate.is_some()) {
            let l = &d.summary.latency_ns;
            let _ = writeln!(
                s,
                "| {} | {} B | {:.3} | {:.3} | {} | {} | {} | {} | {} |",
                d.forwarder.label(),
                d.size,
                d.rate.unwrap_or(0) as f64 / 1e6,
                d.summary.window.rx_pps / 1e6,
                d.summary.totals.lost,
                us(l.p50),
                us(l.p99),
                us(l.p999),
                us(l.max)
            );
        }
    }
    if !r.kernel.is_empty() {
        let _ = writeln!(s, "\n## Kernel path: nftables on a veth, fed by trafgen (netsniff-ng)\n");
        let _ = writeln!(s, "Same frames as the DPDK runs (1024 of the generator's templates). trafgen and the veth receive path run on one CPU; softirq time is the receive path (veth → IP → nftables), system time mostly trafgen's send path.\n");
        let _ = writeln!(s, "| Ruleset | Frame | Filtered Mpps | Accepted / dropped | Softirq CPUs | System CPUs | Softirq cycles/packet | Mpps per receive-path CPU | Mpps per CPU incl. sender |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for k in &r.kernel {
            let _ = writeln!(
                s,
                "| {} | {} B | **{:.3}** | {} / {} | {:.2} | {:.2} | {:.0} | {:.3} | {:.3} |",
                if k.filter { "jhash mod 2 (CLUSTERIP style)" } else { "counter only (no filter)" },
                k.size,
                k.mpps,
                k.accepted,
                k.dropped,
                k.softirq_cpus,
                k.system_cpus,
                k.softirq_ns_per_packet * r.machine.tsc_hz as f64 / 1e9,
                k.mpps_per_rx_core,
                k.mpps_per_core_with_sender
            );
        }
    }
    crate::report_lab::markdown(&mut s, r.http.as_ref(), &r.assign, &r.failover);
    let _ = writeln!(s, "\n## Targets (DESIGN.md, \"Performance targets\")\n");
    let _ = writeln!(s, "| Target | Required | Measured | Met | How |");
    let _ = writeln!(s, "|---|---:|---:|:---:|---|");
    for t in &r.targets {
        let _ = writeln!(
            s,
            "| {} | {} {} | {} | {} | {} |",
            t.name,
            if t.at_most { "≤" } else { "≥" },
            t.cell(t.required),
            t.cell(t.measured),
            if t.met { "yes" } else { "**no**" },
            t.how
        );
    }
    let _ = writeln!(s, "\nNotes: a 2-worker data plane has a worker on CPU 0, shared with the generator, so it cannot beat 1 worker on a 2-CPU machine. The forwarders' side of memif copies every frame out of and into the rings (the generator's side is zero-copy), so their cycles per frame grow with frame size while a veth passes buffers without copying (a NIC's DMA does that copy for free).");
    let warned: Vec<&DpdkRun> = r.dpdk.iter().filter(|d| !d.warnings.is_empty()).collect();
    if !warned.is_empty() {
        let _ = writeln!(s, "\n## Warnings\n");
        for d in warned {
            for w in &d.warnings {
                let _ = writeln!(s, "- {} {} B: {}", d.forwarder.label(), d.size, w.replace('\n', " / "));
            }
        }
    }
    if !r.failures.is_empty() {
        let _ = writeln!(s, "\n## Failed runs\n");
        for f in &r.failures {
            let _ = writeln!(s, "- {}", f.replace('\n', " / "));
        }
    }
    let _ = writeln!(s, "\n## Exact commands\n");
    let mut seen = Vec::new();
    for d in &r.dpdk {
        if seen.contains(&(d.forwarder, d.size, d.rate)) {
            continue; // repeats run the same commands (but the file prefixes)
        }
        seen.push((d.forwarder, d.size, d.rate));
        let _ = writeln!(s, "{} {} B{}:\n```\n{}\n```", d.forwarder.label(), d.size, d.rate.map_or(String::new(), |x| format!(" at {x} pps")), d.commands.join("\n"));
    }
    for k in &r.kernel {
        let _ = writeln!(s, "kernel, {} B, {}:\n```\n{}\n```", k.size, if k.filter { "jhash" } else { "no filter" }, k.commands.join("\n"));
    }
    s
}

/// Cycles per packet of the three paths and their ratios, and the generator's headroom.
fn cycles_side_by_side(s: &mut String, r: &Results) {
    let mut sizes: Vec<u16> = r.dpdk.iter().map(|d| d.size).chain(r.kernel.iter().map(|k| k.size)).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let hz = r.machine.tsc_hz;
    let mut rows = Vec::new();
    for &size in &sizes {
        let c = busy_cpp(&r.dpdk, Forwarder::CLoop, size);
        let f = busy_cpp(&r.dpdk, FARM1, size);
        let f2 = busy_cpp(&r.dpdk, Forwarder::Farm { workers: 2 }, size);
        let kj = kernel_cpp(&r.kernel, size, true, hz);
        let kn = kernel_cpp(&r.kernel, size, false, hz);
        if c.is_none() && f.is_none() && kj.is_none() {
            continue;
        }
        let show = |x: Option<Spread>| x.map_or_else(|| "–".to_owned(), |x| x.show(0));
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
            _ => "–".to_owned(),
        };
        let fm = f.map(|x| x.median);
        let cm = c.map(|x| x.median);
        let own = match (fm, cm) {
            (Some(f), Some(c)) => format!("{:.0} ({:.0}%)", f - c, (f - c) / f * 100.0),
            _ => "–".to_owned(),
        };
        let burst = |fwd| frames_per_busy_poll(&r.dpdk, fwd, size).map_or_else(|| "–".to_owned(), |x| format!("{:.1}", x.median));
        rows.push(format!(
            "| {size} B | {} | {} | {} | {} | {} | {} | {} | {own} | {} / {} |",
            show(c),
            show(f),
            show(f2),
            opt(kj, 0),
            opt(kn, 0),
            ratio(fm, cm),
            ratio(kj, fm),
            burst(Forwarder::CLoop),
            burst(FARM1)
        ));
    }
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n## Cycles per packet, side by side\n");
    let _ = writeln!(s, "TSC cycles per packet of each path's own work ({:.3} GHz TSC): the DPDK forwarders' busy cycles per frame (median (range) over the repeats; frames = `rx` + `tap_rx` for farm-dataplane, frames received for the C loop), the kernel's softirq time per filtered packet × TSC Hz (veth → IP → nftables, from /proc/stat; trafgen's send path left out). The C loop does nothing but memif receive + transmit + free, so its figure is the memif wire's cost (both copies at the forwarder's side); farm's own work is the difference.\n", hz as f64 / 1e9);
    let _ = writeln!(s, "| Frame | C loop | farm, 1 worker | farm, 2 workers | kernel jhash (softirq) | kernel, no filter | farm / C loop | kernel jhash / farm | farm's own (farm − C loop; share of farm's) | frames per busy poll, C loop / farm |");
    let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let _ = writeln!(s, "{row}");
    }
    for &size in &sizes {
        let Some(c) = medians(&r.dpdk).into_iter().find(|d| d.forwarder == Forwarder::CLoop && d.size == size) else { continue };
        let frac = busy_fraction(&r.dpdk, Forwarder::CLoop, size);
        let cap = busy_cpp(&r.dpdk, Forwarder::CLoop, size).map(|x| hz as f64 / x.median);
        let ffrac = busy_fraction(&r.dpdk, FARM1, size);
        if let (Some(frac), Some(cap)) = (frac, cap) {
            let offered = c.summary.window.tx_pps;
            let gen_cpf = (offered > 0.0).then(|| c.summary.cpu.generator_cpus * hz as f64 / offered);
            let _ = writeln!(
                s,
                "\nGenerator headroom at {size} B: the C loop was busy {:.0}% of its cycles (range {:.0}–{:.0}%){}; the generator offered {:.2} Mpps against the C loop's {:.2} Mpps if always busy ({:.0}%), spending {} cycles of its CPU per frame sent and received back. {}",
                frac.median * 100.0,
                frac.min * 100.0,
                frac.max * 100.0,
                ffrac.map_or_else(String::new, |f| format!(", farm-dataplane (1 worker) {:.0}%", f.median * 100.0)),
                offered / 1e6,
                cap / 1e6,
                offered / cap * 100.0,
                opt(gen_cpf, 0),
                if frac.median < 0.9 {
                    format!(
                        "The generator (one core, {} memif each way) does not outrun one forwarder core here: on its side of the wire it does about the forwarder's per-frame work plus building, stamping and checking frames, with one CPU of its own on a 2-CPU machine (a second generator core would take the forwarder's). The delivered rates then show that the forwarders keep up, not their headroom; the busy cycles per frame are the robust figure.",
                        if c.summary.port.contains("zero-copy=yes") { "zero-copy" } else { "copy-mode" }
                    )
                } else {
                    "The generator outruns the forwarder: delivered rates are the forwarder's.".to_owned()
                }
            );
        }
    }
}

/// Horizontal bars of delivered / filtered Mpps.
pub fn svg(path: &Path, r: &Results) -> Result<()> {
    let mut bars: Vec<(String, f64, RGBColor)> = Vec::new();
    let mut sizes: Vec<u16> = r.dpdk.iter().map(|d| d.size).chain(r.kernel.iter().map(|k| k.size)).collect();
    sizes.sort_unstable();
    sizes.dedup();
    for size in sizes {
        for d in medians(&r.dpdk).into_iter().filter(|d| d.size == size) {
            let color = match d.forwarder {
                Forwarder::CLoop => RGBColor(120, 120, 120),
                Forwarder::Farm { workers: 1 } => RGBColor(31, 119, 180),
                Forwarder::Farm { .. } => RGBColor(107, 174, 214),
            };
            bars.push((format!("{size} B  {}", d.forwarder.label()), d.summary.window.rx_pps / 1e6, color));
        }
        for k in r.kernel.iter().filter(|k| k.size == size) {
            let label = if k.filter { "nftables jhash, veth" } else { "veth, no filter" };
            bars.push((format!("{size} B  {label}"), k.mpps, RGBColor(214, 39, 40)));
        }
    }
    if bars.is_empty() {
        return Ok(());
    }
    // Segment 0 is at the bottom: reverse so that the first bar is on top.
    bars.reverse();
    let height = 90 + 30 * u32::try_from(bars.len()).unwrap_or(1);
    let root = SVGBackend::new(path, (960, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(0.1) * 1.15;
    let n = bars.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("farm data plane vs C DPDK loop vs kernel ({})", r.started), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(330)
        .build_cartesian_2d(0.0..max, (0..n).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc("Mpps (delivered back to the generator / filtered by nftables)")
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => bars.get(*i).map(|b| b.0.clone()).unwrap_or_default(),
            _ => String::new(),
        })
        .draw()?;
    chart.draw_series(bars.iter().enumerate().map(|(i, (_, v, c))| {
        let mut rect = Rectangle::new([(0.0, SegmentValue::Exact(i)), (*v, SegmentValue::Exact(i + 1))], c.filled());
        rect.set_margin(4, 4, 0, 0);
        rect
    }))?;
    chart.draw_series(
        bars.iter()
            .enumerate()
            .map(|(i, (_, v, _))| Text::new(format!(" {v:.2}"), (*v, SegmentValue::CenterOf(i)), ("sans-serif", 13))),
    )?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dpdk::Busy;
    use farm_perf::summary::{CpuUse, Window};
    use farm_perf::Summary;

    fn dpdk(fwd: Forwarder, size: u16, mpps: f64, busy_cpp: f64) -> DpdkRun {
        let frames = (mpps * 1e6) as u64;
        DpdkRun {
            forwarder: fwd,
            size,
            rate: None,
            summary: Summary {
                window: Window { rx_pps: mpps * 1e6, tx_pps: mpps * 1e6, ..Window::default() },
                cpu: CpuUse { dut_cpus: Some(1.0), ..CpuUse::default() },
                ..Summary::default()
            },
            forwarder_counters: serde_json::Value::Null,
            commands: vec![],
            attempts: 1,
            warnings: vec![],
            busy: Some(Busy {
                seconds: 1.0,
                frames,
                busy_cycles: (frames as f64 * busy_cpp) as u64,
                busy_polls: frames / 32,
                cores: 1,
                tsc_hz: 2_000_000_000,
            }),
        }
    }

    fn kernel(size: u16, ns_per_packet: f64) -> KernelRun {
        KernelRun {
            size,
            filter: true,
            seconds: 4.0,
            accepted: 1,
            dropped: 1,
            mpps: 0.4,
            softirq_cpus: 0.5,
            system_cpus: 0.7,
            machine_busy_cpus: 2.0,
            mpps_per_rx_core: 0.8,
            mpps_per_core_with_sender: 0.4,
            softirq_ns_per_packet: ns_per_packet,
            commands: vec![],
        }
    }

    #[test]
    fn targets_compare_the_right_runs() {
        let runs = vec![
            dpdk(Forwarder::CLoop, 64, 5.0, 100.0),
            dpdk(Forwarder::Farm { workers: 1 }, 64, 4.6, 110.0),
            dpdk(Forwarder::Farm { workers: 2 }, 64, 9.9, 300.0),
            dpdk(Forwarder::CLoop, 64, 5.2, 90.0),
            dpdk(Forwarder::Farm { workers: 1 }, 64, 4.7, 130.0),
            dpdk(Forwarder::CLoop, 64, 5.1, 95.0),
            dpdk(Forwarder::Farm { workers: 1 }, 64, 4.8, 120.0),
            dpdk(Forwarder::CLoop, 512, 2.0, 200.0),
            dpdk(Forwarder::Farm { workers: 1 }, 512, 1.7, 250.0),
        ];
        // 300 ns per packet at 2 GHz: 600 cycles; 200 ns: 400.
        let k = vec![kernel(64, 300.0), kernel(512, 200.0)];
        let t = targets(&runs, &k, &[64, 512], 2_000_000_000);
        assert_eq!(t.len(), 3, "{t:?}");
        // Medians: farm 120 of 110, 120, 130; C loop 95 of 90, 95, 100.
        assert!((t[0].measured - 120.0 / 95.0).abs() < 1e-6 && !t[0].met && t[0].at_most, "{:?}", t[0]);
        assert!((t[1].measured - 5.0).abs() < 1e-6 && t[1].met, "{:?}", t[1]);
        assert!((t[2].measured - 1.25).abs() < 1e-6 && !t[2].met);
        let mut machine = Machine::describe(Some("test-vm".into()), String::new());
        machine.tsc_hz = 2_000_000_000;
        let r = Results {
            command: "x".into(),
            started: "now".into(),
            elapsed_s: 1.0,
            repeat: 3,
            machine,
            dpdk: runs,
            kernel: k,
            http: None,
            assign: Vec::new(),
            failover: Vec::new(),
            failures: vec!["one: broke".into()],
            targets: t,
        };
        let md = markdown(&r);
        assert!(md.contains("on test-vm") && md.contains("Machine: **test-vm**"), "{md}");
        assert!(md.contains("| farm-dataplane, 1 worker | 64 B | 4.700 | **4.700** | 4.60–4.80 (3 runs) | 0 | 130 | 31% |"), "{md}");
        assert!(md.contains("| 64 B | 95 (90–100) | 120 (110–130) | 300 | 600 | – | 1.26× | 5.00× | 25 (21%) | 32.0 / 32.0 |"), "{md}");
        assert!(md.contains("Generator headroom at 64 B: the C loop was busy 24% of its cycles"), "{md}");
        assert!(md.contains("## Failed runs") && md.contains("| ≥ 5.00× | 5.00× | yes |") && md.contains("| ≤ 1.15× | 1.26× | **no** |"), "{md}");
        let dir = std::env::temp_dir().join(format!("farm-bench-svg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        svg(&dir.join("p.svg"), &r).unwrap();
        let text = std::fs::read_to_string(dir.join("p.svg")).unwrap();
        assert!(text.starts_with("<svg") && text.contains("nftables jhash") && text.contains("4.70"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
