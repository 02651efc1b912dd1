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
    /// Describes this machine.
    pub fn describe(loadavg_start: String) -> Machine {
        let lscpu = cmd_out("lscpu", &[]);
        let cpu_model = lscpu
            .lines()
            .find_map(|l| l.strip_prefix("Model name:"))
            .unwrap_or("")
            .trim()
            .to_owned();
        Machine {
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

fn delivered_mpps(r: &DpdkRun) -> f64 {
    r.summary.window.rx_pps / 1e6
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

/// Per-core rate of a data-plane run: delivered Mpps over the CPUs it used.
fn farm_per_core(r: &DpdkRun) -> f64 {
    let cpus = r.summary.cpu.dut_cpus.unwrap_or(1.0).max(0.05);
    delivered_mpps(r) / cpus
}

/// Evaluates the targets on whatever runs succeeded.
pub fn targets(dpdk: &[DpdkRun], kernel: &[KernelRun], sizes: &[u16]) -> Vec<Target> {
    let mut out = Vec::new();
    for &size in sizes {
        if let (Some(f), Some(c)) = (find(dpdk, Forwarder::Farm { workers: 1 }, size), find(dpdk, Forwarder::CLoop, size)) {
            let m = delivered_mpps(f) / delivered_mpps(c).max(1e-9);
            out.push(Target::ratio_at_least(
                format!("farm-dataplane (1 worker) vs minimal C DPDK loop, {size} B, same memif wire"),
                0.9,
                m,
                format!("{:.3} / {:.3} Mpps delivered", delivered_mpps(f), delivered_mpps(c)),
            ));
        }
        if let (Some(f), Some(k)) =
            (find(dpdk, Forwarder::Farm { workers: 1 }, size), kernel.iter().find(|k| k.size == size && k.filter))
        {
            // DESIGN.md's kernel figure (~0.55 Mpps "fed by trafgen") is the whole
            // path on its CPU: trafgen's send plus the receive path and the filter.
            let whole = farm_per_core(f) / k.mpps_per_core_with_sender.max(1e-9);
            out.push(Target::ratio_at_least(
                format!("farm-dataplane vs nftables jhash on veth fed by trafgen, per core, {size} B"),
                10.0,
                whole,
                format!(
                    "{:.3} Mpps per data-plane CPU / {:.3} Mpps per CPU of the whole kernel path (trafgen send + veth receive + nftables: softirq + system time)",
                    farm_per_core(f),
                    k.mpps_per_core_with_sender
                ),
            ));
            let rx_only = farm_per_core(f) / k.mpps_per_rx_core.max(1e-9);
            out.push(Target::ratio_at_least(
                format!("same, kernel receive path only (stricter), {size} B"),
                10.0,
                rx_only,
                format!(
                    "{:.3} / {:.3} Mpps per CPU of softirq time alone (trafgen's send cost left out, which favours the kernel)",
                    farm_per_core(f),
                    k.mpps_per_rx_core
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
    let _ = writeln!(s, "# farm data-plane benchmark, {}\n", r.started);
    let _ = writeln!(s, "Command: `{}`  \nWall time: {:.0} s\n", r.command, r.elapsed_s);
    let _ = writeln!(
        s,
        "Machine: {} ({} CPUs), kernel {}, DPDK {}, {}.  \nLoad average at start: {}; at end: {} (anything else running skews these figures).\n",
        m.cpu_model, m.cpus, m.kernel, m.dpdk, m.rustc, m.loadavg_start, m.loadavg_end
    );
    let _ = writeln!(s, "## DPDK over net_memif, flat out\n");
    let _ = writeln!(s, "farm-trafgen (CPU 0) → memif → forwarder → memif → farm-trafgen. Every bucket is owned, so every frame comes back. \"DUT CPUs\": CPU time of the forwarder process over the window; cycles/packet = that time × TSC Hz / frames delivered.\n");
    let _ = writeln!(s, "Each case ran {} time(s), interleaved; the table shows the median run and the range of all.\n", r.repeat);
    let _ = writeln!(s, "| Path | Frame | Offered Mpps | Delivered Mpps | Range | Lost | DUT CPUs | Cycles/packet | Machine busy CPUs | Latency p50 / p99 (µs) |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for d in medians(&r.dpdk) {
        let w = &d.summary.window;
        let _ = writeln!(
            s,
            "| {} | {} B | {:.3} | **{:.3}** | {} | {} | {} | {} | {:.2} | {} / {} |",
            d.forwarder.label(),
            d.size,
            w.tx_pps / 1e6,
            w.rx_pps / 1e6,
            spread(&r.dpdk, d),
            d.summary.totals.lost,
            opt(d.summary.cpu.dut_cpus, 2),
            opt(d.summary.cpu.dut_cycles_per_packet, 0),
            d.summary.cpu.machine_busy_cpus,
            us(d.summary.latency_ns.p50),
            us(d.summary.latency_ns.p99),
        );
    }
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
        let _ = writeln!(s, "| Ruleset | Frame | Filtered Mpps | Accepted / dropped | Softirq CPUs | System CPUs | Mpps per receive-path CPU | Mpps per CPU incl. sender |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for k in &r.kernel {
            let _ = writeln!(
                s,
                "| {} | {} B | **{:.3}** | {} / {} | {:.2} | {:.2} | {:.3} | {:.3} |",
                if k.filter { "jhash mod 2 (CLUSTERIP style)" } else { "counter only (no filter)" },
                k.size,
                k.mpps,
                k.accepted,
                k.dropped,
                k.softirq_cpus,
                k.system_cpus,
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
    for c in medians(&r.dpdk).into_iter().filter(|d| d.forwarder == Forwarder::CLoop) {
        let fc = &c.forwarder_counters;
        if let (Some(busy), Some(all), Some(rx)) = (fc["busy_cycles"].as_f64(), fc["cycles"].as_f64(), fc["rx"].as_f64()) {
            if all > 0.0 && rx > 0.0 {
                let per_pkt = busy / rx;
                let hz = fc["tsc_hz"].as_f64().unwrap_or(c.summary.tsc_hz as f64);
                let _ = writeln!(
                    s,
                    "\nC loop at {} B: busy (polls that returned frames) {:.0}% of its cycles, {:.0} cycles per frame when busy, i.e. about {:.1} Mpps per core if fed faster.{}",
                    c.size,
                    busy / all * 100.0,
                    per_pkt,
                    hz / per_pkt / 1e6,
                    if busy / all < 0.9 {
                        " The generator (one core, one memif each way) is the limit here, not the forwarders: the farm/C ratio then shows that the data plane keeps up on this wire, not how much headroom it has (farm-dataplane exports no busy-cycle counter to measure that)."
                    } else {
                        ""
                    }
                );
            }
        }
    }
    let _ = writeln!(s, "\nNotes: a 2-worker data plane has a worker on CPU 0, shared with the generator, so it cannot beat 1 worker on this 2-CPU machine. memif (copy mode) copies every frame into and out of its rings at each hop, so the DPDK rates fall with frame size while a veth passes buffers without copying: the 512 B per-core ratio measures the memif wire as much as the data plane (a NIC's DMA does that copy for free).");
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
    use farm_perf::summary::{CpuUse, Window};
    use farm_perf::Summary;

    fn dpdk(fwd: Forwarder, size: u16, mpps: f64, cpus: f64) -> DpdkRun {
        DpdkRun {
            forwarder: fwd,
            size,
            rate: None,
            summary: Summary {
                window: Window { rx_pps: mpps * 1e6, tx_pps: mpps * 1e6, ..Window::default() },
                cpu: CpuUse { dut_cpus: Some(cpus), ..CpuUse::default() },
                ..Summary::default()
            },
            forwarder_counters: serde_json::Value::Null,
            commands: vec![],
            attempts: 1,
            warnings: vec![],
        }
    }

    fn kernel(size: u16, rx_core: f64, whole: f64) -> KernelRun {
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
            mpps_per_rx_core: rx_core,
            mpps_per_core_with_sender: whole,
            commands: vec![],
        }
    }

    #[test]
    fn targets_compare_the_right_runs() {
        let runs = vec![
            dpdk(Forwarder::CLoop, 64, 5.0, 1.0),
            dpdk(Forwarder::Farm { workers: 1 }, 64, 4.6, 1.0),
            dpdk(Forwarder::Farm { workers: 2 }, 64, 9.9, 2.0),
            dpdk(Forwarder::CLoop, 512, 2.0, 1.0),
            dpdk(Forwarder::Farm { workers: 1 }, 512, 1.7, 0.5),
        ];
        let k = vec![kernel(64, 0.8, 0.4), kernel(512, 0.8, 0.4)];
        let t = targets(&runs, &k, &[64, 512]);
        assert_eq!(t.len(), 6);
        assert!((t[0].measured - 0.92).abs() < 1e-9 && t[0].met);
        assert!((t[1].measured - 11.5).abs() < 1e-9 && t[1].met);
        assert!((t[2].measured - 5.75).abs() < 1e-9 && !t[2].met);
        assert!((t[3].measured - 0.85).abs() < 1e-9 && !t[3].met);
        // 1.7 Mpps on half a CPU is 3.4 per CPU.
        assert!((t[4].measured - 8.5).abs() < 1e-9 && !t[4].met);
        let r = Results {
            command: "x".into(),
            started: "now".into(),
            elapsed_s: 1.0,
            repeat: 1,
            machine: Machine::describe(String::new()),
            dpdk: runs,
            kernel: k,
            http: None,
            assign: Vec::new(),
            failover: Vec::new(),
            failures: vec!["one: broke".into()],
            targets: t,
        };
        let md = markdown(&r);
        assert!(md.contains("| farm-dataplane, 1 worker | 64 B | 4.600 | **4.600** | – |"), "{md}");
        assert!(md.contains("## Failed runs") && md.contains("| ≥ 10.00× | 11.50× | yes |"));
        let dir = std::env::temp_dir().join(format!("farm-bench-svg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        svg(&dir.join("p.svg"), &r).unwrap();
        let text = std::fs::read_to_string(dir.join("p.svg")).unwrap();
        assert!(text.starts_with("<svg") && text.contains("nftables jhash") && text.contains("4.60"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
