//! The report of parts 3–5 (HTTP through the lab, table rebuild, failover series): targets,
//! Markdown sections and the failover histogram.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use farm_perf::assign_bench::AssignTiming;
use plotters::prelude::*;

use crate::lab::{percentile, FailoverSeries, HttpResults, WrkRun, DEDICATED, DIRECT, ON_ADDR, SHARED};
use crate::netcpu::{ms_per_1k, NetCpu};
use crate::report::{Spread, Target};

/// Width of a histogram bin (ms).
const BIN_MS: f64 = 25.0;

/// The runs of one case, and the median run by requests/s.
fn case<'a>(h: &'a HttpResults, setup: &str, local_port: &str, path: &str, keepalive: bool) -> (Vec<&'a WrkRun>, Option<&'a WrkRun>) {
    let mut v: Vec<&WrkRun> = h
        .runs
        .iter()
        .filter(|r| r.setup == setup && r.local_port == local_port && r.path == path && r.keepalive == keepalive)
        .collect();
    v.sort_by(|a, b| a.wrk.rps.total_cmp(&b.wrk.rps));
    let median = v.get(v.len().saturating_sub(1) / 2).copied();
    (v, median)
}

/// A figure per 1,000 requests over the runs of a case: median and range.
fn per_1k(runs: &[&WrkRun], f: impl Fn(&NetCpu) -> Option<f64>) -> Option<Spread> {
    Spread::of(runs.iter().filter_map(|r| r.cpu.as_ref().and_then(&f).and_then(|x| ms_per_1k(x, r.wrk.requests))).collect())
}

/// The cases in the order they ran: (setup, local port, path, keep-alive).
fn cases(h: &HttpResults) -> Vec<(&str, &str, &str, bool)> {
    let mut out: Vec<(&str, &str, &str, bool)> = Vec::new();
    for r in &h.runs {
        let c = (r.setup.as_str(), r.local_port.as_str(), r.path.as_str(), r.keepalive);
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// The local ports measured, in the order they ran.
fn local_ports(h: &HttpResults) -> Vec<&str> {
    let mut v: Vec<&str> = Vec::new();
    for r in &h.runs {
        if !v.contains(&r.local_port.as_str()) {
            v.push(&r.local_port);
        }
    }
    v
}

fn how(keepalive: bool) -> &'static str {
    if keepalive {
        "keep-alive"
    } else {
        "one connection per request"
    }
}

/// DESIGN.md's targets for parts 3–5.
pub fn targets(http: Option<&HttpResults>, assign: &[AssignTiming], failover: &[FailoverSeries]) -> Vec<Target> {
    let mut out = Vec::new();
    if let Some(h) = http {
        for lp in local_ports(h) {
            for keepalive in [true, false] {
                let (farm, _) = case(h, DEDICATED, lp, ON_ADDR, keepalive);
                let (direct, _) = case(h, DEDICATED, lp, DIRECT, keepalive);
                if let (Some(f), Some(d)) = (per_1k(&farm, |c| Some(c.network_s())), per_1k(&direct, |c| Some(c.network_s()))) {
                    let busy = farm.iter().all(|r| r.cpu.as_ref().is_some_and(|c| c.dataplane_busy_s.is_some()));
                    out.push(Target::at_most(
                        format!("HTTP network-path CPU per request, farm (local port {lp}) vs the kernel's direct path, {DEDICATED} (wrk, {})", how(keepalive)),
                        1.1,
                        f.median / d.median.max(1e-9),
                        "×",
                        format!(
                            "{:.1} / {:.1} ms of CPU per 1,000 requests, medians of {} and {} rounds (farm: the data plane's {} + softirq on CPU 0; direct: softirq on every CPU)",
                            f.median,
                            d.median,
                            f.n,
                            d.n,
                            if busy { "busy time (busy_cycles / TSC Hz)" } else { "CPU time (busy_cycles not exported: includes its empty polls)" }
                        ),
                    ));
                }
            }
            for keepalive in [true, false] {
                if let ((_, Some(f)), (_, Some(d))) = (case(h, SHARED, lp, ON_ADDR, keepalive), case(h, SHARED, lp, DIRECT, keepalive)) {
                    let overhead = (1.0 - f.wrk.rps / d.wrk.rps.max(1e-9)) * 100.0;
                    out.push(Target::at_most(
                        format!("HTTP throughput through the farm (local port {lp}) vs direct to Apache, {SHARED}, 2-CPU lab (wrk, {})", how(keepalive)),
                        25.0,
                        overhead,
                        "%",
                        format!("1 − {:.0} / {:.0} requests/s, medians of {} rounds (3 nodes and wrk on 2 shared CPUs; wrk's one client address: one node serves, the other two filter every packet)", f.wrk.rps, d.wrk.rps, h.repeat),
                    ));
                }
            }
        }
    }
    for t in assign.iter().filter(|t| t.buckets == 65536 && (t.nodes == 8 || t.nodes == 64)) {
        out.push(Target::at_most(
            format!("table rebuild + publish, 65536 buckets, {} nodes, {} weights", t.nodes, if t.mixed_weights { "mixed (1,3,5)" } else { "equal" }),
            if t.nodes == 8 { 1.0 } else { 3.0 },
            t.total_ms,
            " ms",
            format!("best of {} runs: assign {:.3} ms + publish {:.3} ms", t.runs, t.assign_ms, t.publish_ms),
        ));
    }
    for s in failover {
        if let Some(p99) = s.percentile(99.0) {
            out.push(Target::at_most(
                format!("failover p99 (kill -9 → every probed orphan bucket served), {}", s.timers),
                s.target_p99_ms,
                p99,
                " ms",
                format!("nearest-rank p99 of {} kills", s.kills.len()),
            ));
        }
    }
    out
}

fn ms(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.0}")
    } else {
        "never".into()
    }
}

/// The Markdown sections of parts 3–5.
pub fn markdown(s: &mut String, http: Option<&HttpResults>, assign: &[AssignTiming], failover: &[FailoverSeries]) {
    if let Some(h) = http {
        let _ = writeln!(s, "\n## HTTP through the farm vs directly to Apache (wrk)\n");
        let _ = writeln!(s, "wrk (2 threads, keep-alive or `Connection: close`) in the lab's client namespace; the same Apache configuration and page (a few bytes naming the node) everywhere. Direct: a lab without farm, the node address on the veth. {SHARED}: a 3-node farm, every process (3 data planes backing off when idle, 3 farmd, 3 Apache, wrk) on the 2 CPUs, as the demo runs; each data plane receives every packet (the bridge floods the virtual MAC). wrk has one source address, so under the on_addr rule one node serves it all; under the on_port rule (port 8080) the three nodes share the connections. {DEDICATED}: the deployed shape, CPU 0 for the application and CPU 1 for the network: a 1-node farm whose data plane busy-polls on CPU 1 (a core per data-plane worker), Apache, farmd and wrk pinned to CPU 0, against the direct lab with Apache and wrk pinned to CPU 0 and the kernel's receive processing of both veths steered to CPU 1 (RPS). In the farm the kernel's receive path of what the data plane sends (to its local port, to the client) runs inside its system calls on CPU 1, and the client's frames reach its packet socket in softirq on CPU 0 (no RPS in that lab, so that CPU 1's softirq time is only what runs inside the data plane's polls). Cases ran interleaved, {} rounds of {} s per local port of the farm; the table shows the median round (by requests/s) and the range. Served by: requests per node in the access logs of that round (the other nodes' few requests are their http checkers').\n", h.repeat, h.seconds);
        let _ = writeln!(s, "**CPU per 1,000 requests** (the cost of the network path, which holds still where requests/s move with whatever else runs): the data planes' CPU time (every thread's schedstat: user + system, ns), their busy time (`busy_cycles` of their tables / TSC Hz: polls that returned frames, including the TAP or AF_XDP system calls made in them; a busy-polling data plane is on its CPU all the time, so only this says what its work cost) and the kernel's softirq time (/proc/stat, every CPU; `other`: the CPUs a busy-polling data plane does not own). **Network**: direct, the softirq time; farm with {DEDICATED}, the data plane's busy time + softirq on CPU 0 (softirq on CPU 1 runs inside its polls); farm with {SHARED}, the data planes' CPU time + all softirq time (ticks taken while a data plane runs count in both on a kernel without IRQ time accounting: an upper bound). Medians (range) over the rounds; a direct row is the series interleaved with that local port's farm runs.\n");
        let _ = writeln!(s, "| CPUs | Local port | Path | Connections | Requests/s | Range | Network CPU ms / 1k req | Data plane CPU / busy ms / 1k | Softirq all / other ms / 1k | p50 (ms) | p99 (ms) | Errors | Served by |");
        let _ = writeln!(s, "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        for (setup, lp, path, keepalive) in cases(h) {
            let (all, median) = case(h, setup, lp, path, keepalive);
            let Some(r) = median else { continue };
            let by = r.served_by.iter().map(|(n, c)| format!("n{n}: {c}")).collect::<Vec<_>>().join(", ");
            let range = match (all.first(), all.last()) {
                (Some(lo), Some(hi)) if all.len() > 1 => format!("{:.0}–{:.0}", lo.wrk.rps, hi.wrk.rps),
                _ => "–".to_owned(),
            };
            let show = |x: Option<Spread>| x.map_or_else(|| "–".to_owned(), |x| x.show(1));
            let med = |x: Option<Spread>| x.map_or_else(|| "–".to_owned(), |x| format!("{:.1}", x.median));
            let farm = path != DIRECT;
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | **{:.0}** | {} | **{}** | {} | {} / {} | {:.2} | {:.2} | {} | {} |",
                setup,
                if farm { lp.to_owned() } else { format!("(with {lp})") },
                path,
                if keepalive { "keep-alive" } else { "close" },
                r.wrk.rps,
                range,
                show(per_1k(&all, |c| Some(c.network_s()))),
                if farm { format!("{} / {}", med(per_1k(&all, |c| Some(c.dataplane_cpu_s))), med(per_1k(&all, |c| c.dataplane_busy_s))) } else { "–".to_owned() },
                med(per_1k(&all, |c| Some(c.softirq_s))),
                med(per_1k(&all, |c| Some(c.softirq_other_s))),
                r.wrk.p50_ms,
                r.wrk.p99_ms,
                r.wrk.errors,
                by
            );
        }
        for e in &h.errors {
            let _ = writeln!(s, "\n**Phase failed**: {}", e.replace('\n', " / "));
        }
        let _ = writeln!(s, "\nwrk commands: {}", {
            let mut cmds: Vec<&str> = h.runs.iter().map(|r| r.command.as_str()).collect();
            cmds.sort_unstable();
            cmds.dedup();
            cmds.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join("; ")
        });
    }
    if !assign.is_empty() {
        let _ = writeln!(s, "\n## Table rebuild + publish\n");
        let _ = writeln!(s, "Weighted rendezvous assignment of every bucket (`farm_control::assign`) and `TableWriter::publish` into a table file in /dev/shm; best of {} runs.\n", assign[0].runs);
        let _ = writeln!(s, "| Buckets | Nodes | Weights | Assign (ms) | Publish (ms) | Total (ms) |");
        let _ = writeln!(s, "|---:|---:|---|---:|---:|---:|");
        for t in assign {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.3} | {:.3} | **{:.3}** |",
                t.buckets,
                t.nodes,
                t.weights(),
                t.assign_ms,
                t.publish_ms,
                t.total_ms
            );
        }
    }
    if !failover.is_empty() {
        let _ = writeln!(s, "\n## Failover time over repeated kills (3-node lab)\n");
        let _ = writeln!(s, "Each kill: `kill -9` of every process of one node (farmd, farm-dataplane, Apache; the link stays up) while 4 of its client addresses, each in another of its buckets, open a new connection to the VIP every 20 ms; the failover time is from the kill until all 4 were served by another node. Then the node is restarted (the table settles before the next kill) and the next kill takes the next node (n1, n2, n3, n1, ...). Histogram: `failover.svg`.\n");
        let _ = writeln!(s, "| Timers | Kills | min | p50 | p90 | p99 | max (ms) | Failed after takeover | Rejoin: UP after (p50, ms) |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for f in failover {
            let v = f.sorted_ms();
            let p = |q: f64| percentile(&v, q).map_or_else(|| "–".to_owned(), ms);
            let mut rejoin: Vec<f64> = f.kills.iter().map(|k| k.rejoin_up_ms).collect();
            rejoin.sort_by(f64::total_cmp);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | **{}** | {} | {} | {} |",
                f.timers,
                f.kills.len(),
                p(0.0),
                p(50.0),
                p(90.0),
                p(99.0),
                p(100.0),
                f.kills.iter().map(|k| k.failed_after).sum::<usize>(),
                percentile(&rejoin, 50.0).map_or_else(|| "–".to_owned(), ms)
            );
        }
        for f in failover {
            let each = f.kills.iter().map(|k| format!("n{} {}", k.victim, k.all_ms.map_or_else(|| "never".into(), ms))).collect::<Vec<_>>().join(", ");
            let _ = writeln!(s, "\n{} (ms): {each}", f.timers);
            if let Some(e) = &f.error {
                let _ = writeln!(s, "\n**The series stopped early**: {}", e.replace('\n', " / "));
            }
        }
    }
}

/// Histogram of failover times, one colour per timer setting, with the targets as lines.
pub fn failover_svg(path: &Path, failover: &[FailoverSeries], started: &str) -> Result<()> {
    let series: Vec<(&FailoverSeries, Vec<f64>)> =
        failover.iter().map(|f| (f, f.sorted_ms().into_iter().filter(|v| v.is_finite()).collect::<Vec<_>>())).filter(|(_, v)| !v.is_empty()).collect();
    if series.is_empty() {
        return Ok(());
    }
    let top_ms = series
        .iter()
        .flat_map(|(f, v)| v.iter().copied().chain([f.target_p99_ms]))
        .fold(0.0, f64::max);
    let bins = (top_ms / BIN_MS).floor() as usize + 2;
    let counts: Vec<Vec<u32>> = series
        .iter()
        .map(|(_, v)| {
            let mut c = vec![0u32; bins];
            for x in v {
                c[((x / BIN_MS) as usize).min(bins - 1)] += 1;
            }
            c
        })
        .collect();
    let max_count = counts.iter().flatten().copied().max().unwrap_or(1).max(1);
    let colors = [RGBColor(31, 119, 180), RGBColor(255, 127, 14), RGBColor(44, 160, 44)];
    let root = SVGBackend::new(path, (960, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let x_max = bins as f64 * BIN_MS;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("failover time after kill -9, 3-node lab ({started})"), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..x_max, 0.0..(f64::from(max_count) * 1.2))?;
    chart
        .configure_mesh()
        .x_desc(format!("ms from the kill until every probed orphan bucket is served ({BIN_MS:.0} ms bins)"))
        .y_desc("kills")
        .draw()?;
    let width = BIN_MS / series.len() as f64;
    for (k, ((f, v), c)) in series.iter().zip(&counts).enumerate() {
        let color = colors[k % colors.len()];
        chart
            .draw_series(c.iter().enumerate().filter(|(_, n)| **n > 0).map(|(b, n)| {
                let x0 = b as f64 * BIN_MS + k as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width, f64::from(*n))], color.filled())
            }))?
            .label(format!("{} ({} kills, p99 {} ms; target {:.0} ms, dashed)", f.timers, v.len(), percentile(v, 99.0).map_or_else(|| "–".into(), ms), f.target_p99_ms))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        let t = f.target_p99_ms;
        let steps = 12;
        let h = f64::from(max_count) * 1.2;
        chart.draw_series((0..steps).step_by(2).map(|i| {
            let y0 = h * f64::from(i) / f64::from(steps);
            PathElement::new(vec![(t, y0), (t, y0 + h / f64::from(steps))], color.stroke_width(2))
        }))?;
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.9)).position(SeriesLabelPosition::UpperLeft).draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::lab::{Kill, WrkOutput};

    fn wrk(setup: &str, path: &str, keepalive: bool, rps: f64) -> WrkRun {
        wrk_on(setup, "tap", path, keepalive, rps, 1.0)
    }

    /// A run of 10,000 requests whose network path cost `net_s` seconds of CPU.
    fn wrk_on(setup: &str, local_port: &str, path: &str, keepalive: bool, rps: f64, net_s: f64) -> WrkRun {
        let busy = setup == DEDICATED && path != DIRECT;
        let cpu = if path == DIRECT {
            NetCpu { seconds: 3.0, softirq_s: net_s, softirq_other_s: net_s, ..NetCpu::default() }
        } else if busy {
            NetCpu { seconds: 3.0, dataplane_cpu_s: 3.0, dataplane_busy_s: Some(net_s - 0.1), softirq_s: 0.5, softirq_other_s: 0.1, busy_polling: true }
        } else {
            NetCpu { seconds: 3.0, dataplane_cpu_s: net_s - 0.1, softirq_s: 0.1, softirq_other_s: 0.1, ..NetCpu::default() }
        };
        WrkRun {
            setup: setup.into(),
            path: path.into(),
            local_port: local_port.into(),
            keepalive,
            url: "http://x/".into(),
            wrk: WrkOutput { requests: 10_000, rps, p50_ms: 1.0, p90_ms: 2.0, p99_ms: 3.0, errors: 0 },
            served_by: BTreeMap::from([(2, 7)]),
            cpu: Some(cpu),
            command: "wrk".into(),
        }
    }

    fn series(target: f64, times: &[Option<f64>]) -> FailoverSeries {
        FailoverSeries {
            timers: format!("t{target}"),
            pulse_ms: 100,
            dead_after_ms: 1000,
            target_p99_ms: target,
            kills: times
                .iter()
                .enumerate()
                .map(|(i, t)| Kill { victim: i % 3 + 1, all_ms: *t, first_ms: *t, probes: 4, failed_after: 0, rejoin_up_ms: 1400.0 })
                .collect(),
            error: None,
        }
    }

    #[test]
    fn targets_markdown_and_histogram() {
        let http = HttpResults {
            runs: vec![
                wrk(SHARED, DIRECT, true, 1000.0),
                wrk(SHARED, ON_ADDR, true, 600.0),
                wrk(SHARED, DIRECT, true, 1100.0),
                wrk(SHARED, ON_ADDR, true, 800.0),
                wrk(SHARED, DIRECT, true, 1200.0),
                wrk(SHARED, ON_ADDR, true, 850.0),
                wrk_on(DEDICATED, "tap", DIRECT, true, 1000.0, 0.5),
                wrk_on(DEDICATED, "tap", ON_ADDR, true, 950.0, 0.6),
                wrk_on(DEDICATED, "tap", DIRECT, true, 1000.0, 0.4),
                wrk_on(DEDICATED, "tap", ON_ADDR, true, 950.0, 0.7),
                wrk_on(DEDICATED, "tap", DIRECT, false, 500.0, 1.0),
                wrk_on(DEDICATED, "tap", ON_ADDR, false, 400.0, 1.05),
                wrk_on(DEDICATED, "af_xdp", DIRECT, false, 500.0, 1.0),
                wrk_on(DEDICATED, "af_xdp", ON_ADDR, false, 450.0, 0.9),
            ],
            repeat: 3,
            seconds: 3,
            errors: vec!["shared CPUs, local port af_xdp: lab did not come up".into()],
        };
        let assign = vec![
            AssignTiming { buckets: 65536, nodes: 8, mixed_weights: false, assign_ms: 0.5, publish_ms: 0.1, total_ms: 0.6, runs: 20 },
            AssignTiming { buckets: 65536, nodes: 8, mixed_weights: true, assign_ms: 1.2, publish_ms: 0.1, total_ms: 1.3, runs: 20 },
            AssignTiming { buckets: 4096, nodes: 8, mixed_weights: true, assign_ms: 0.1, publish_ms: 0.0, total_ms: 0.1, runs: 20 },
            AssignTiming { buckets: 65536, nodes: 64, mixed_weights: true, assign_ms: 2.5, publish_ms: 0.1, total_ms: 2.6, runs: 20 },
        ];
        let fast: Vec<Option<f64>> = (0..20).map(|i| Some(200.0 + f64::from(i))).collect();
        let mut slow: Vec<Option<f64>> = (0..19).map(|i| Some(900.0 + f64::from(i) * 10.0)).collect();
        slow.push(None);
        let failover = vec![series(300.0, &fast), series(1500.0, &slow)];
        let t = targets(Some(&http), &assign, &failover);
        assert_eq!(t.len(), 9, "{t:#?}");
        // Dedicated, tap, keep-alive: medians 0.7 of (0.6, 0.7) over 0.5 of (0.4, 0.5) s per 10k requests.
        assert!((t[0].measured - 1.4).abs() < 1e-9 && !t[0].met && t[0].name.contains("local port tap"), "{:?}", t[0]);
        assert!((t[1].measured - 1.05).abs() < 1e-9 && t[1].met, "{:?}", t[1]);
        // Shared, tap, keep-alive: 800 of 600, 800, 850 against 1100.
        assert!((t[2].measured - (1.0 - 800.0 / 1100.0) * 100.0).abs() < 1e-9 && !t[2].met, "{:?}", t[2]);
        assert!((t[3].measured - 0.9).abs() < 1e-9 && t[3].met && t[3].name.contains("af_xdp"), "{:?}", t[3]);
        assert!(t[4].met && !t[5].met && t[6].met && t[6].required == 3.0);
        assert!((t[7].measured - 219.0).abs() < 1e-9 && t[7].met);
        // A kill never served again is infinitely slow.
        assert!(t[8].measured.is_infinite() && !t[8].met);

        let mut md = String::new();
        markdown(&mut md, Some(&http), &assign, &failover);
        assert!(md.contains(&format!("| {SHARED} | tap | {ON_ADDR} | keep-alive | **800** | 600–850 | **100.0 (100.0–100.0)** | 90.0 / – | 10.0 / 10.0 |")), "{md}");
        assert!(md.contains(&format!("| {DEDICATED} | tap | {ON_ADDR} | keep-alive | **950** | 950–950 | **70.0 (60.0–70.0)** | 300.0 / 60.0 | 50.0 / 10.0 |")), "{md}");
        assert!(md.contains(&format!("| {DEDICATED} | (with af_xdp) | {DIRECT} | close | **500** | – | **100.0** | – |")), "{md}");
        assert!(md.contains("**Phase failed**: shared CPUs, local port af_xdp"), "{md}");
        assert!(md.contains("| 65536 | 8 | 1,3,5 | 1.200 | 0.100 | **1.300** |"), "{md}");
        assert!(md.contains("| t300 | 20 | 200 | 209 | 217 | **219** | 219 | 0 | 1400 |"), "{md}");
        assert!(md.contains("| t1500 | 20 | 900 | 990 | 1070 | **never** | never |"), "{md}");

        let dir = std::env::temp_dir().join(format!("farm-bench-failover-svg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        failover_svg(&dir.join("f.svg"), &failover, "now").unwrap();
        let text = std::fs::read_to_string(dir.join("f.svg")).unwrap();
        assert!(text.starts_with("<svg") && text.contains("t300 (20 kills, p99 219 ms"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
