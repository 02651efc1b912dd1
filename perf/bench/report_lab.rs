//! The report of parts 3–5 (HTTP through the lab, table rebuild, failover series): targets,
//! Markdown sections and the failover histogram.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use farm_perf::assign_bench::AssignTiming;
use plotters::prelude::*;

use crate::lab::{percentile, FailoverSeries, HttpResults, WrkRun, DEDICATED, DIRECT, ON_ADDR, SHARED};
use crate::report::Target;

/// Width of a histogram bin (ms).
const BIN_MS: f64 = 25.0;

/// The runs of one case, and the median run by requests/s.
fn case<'a>(h: &'a HttpResults, setup: &str, path: &str, keepalive: bool) -> (Vec<&'a WrkRun>, Option<&'a WrkRun>) {
    let mut v: Vec<&WrkRun> = h.runs.iter().filter(|r| r.setup == setup && r.path == path && r.keepalive == keepalive).collect();
    v.sort_by(|a, b| a.wrk.rps.total_cmp(&b.wrk.rps));
    let median = v.get(v.len().saturating_sub(1) / 2).copied();
    (v, median)
}

/// The cases in the order they ran.
fn cases(h: &HttpResults) -> Vec<(&str, &str, bool)> {
    let mut out: Vec<(&str, &str, bool)> = Vec::new();
    for r in &h.runs {
        let c = (r.setup.as_str(), r.path.as_str(), r.keepalive);
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// DESIGN.md's targets for parts 3–5.
pub fn targets(http: Option<&HttpResults>, assign: &[AssignTiming], failover: &[FailoverSeries]) -> Vec<Target> {
    let mut out = Vec::new();
    if let Some(h) = http {
        for setup in [DEDICATED, SHARED] {
            for keepalive in [true, false] {
                let how = if keepalive { "keep-alive" } else { "one connection per request" };
                if let ((_, Some(f)), (_, Some(d))) = (case(h, setup, ON_ADDR, keepalive), case(h, setup, DIRECT, keepalive)) {
                    let overhead = (1.0 - f.wrk.rps / d.wrk.rps.max(1e-9)) * 100.0;
                    let shape = if setup == DEDICATED {
                        "CPU 0: Apache, farmd and wrk in both cases; CPU 1: the data plane, or the kernel's receive processing (RPS) in the direct case"
                    } else {
                        "3 nodes and wrk on 2 shared CPUs; wrk's one client address: one node serves, the other two filter every packet"
                    };
                    out.push(Target::at_most(
                        format!("HTTP through the farm vs direct to Apache, per node, {setup} (wrk, {how})"),
                        10.0,
                        overhead,
                        "%",
                        format!("1 − {:.0} / {:.0} requests/s, medians of {} rounds ({shape})", f.wrk.rps, d.wrk.rps, h.repeat),
                    ));
                }
            }
        }
    }
    for t in assign.iter().filter(|t| t.buckets == 65536 && t.nodes == 8) {
        out.push(Target::at_most(
            format!("table rebuild + publish, 65536 buckets, 8 nodes, {} weights", if t.mixed_weights { "mixed (1,3,5)" } else { "equal" }),
            1.0,
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
        let _ = writeln!(s, "wrk (2 threads, keep-alive or `Connection: close`) in the lab's client namespace; the same Apache configuration and page (a few bytes naming the node) everywhere. Direct: a lab without farm, the node address on the veth. {SHARED}: a 3-node farm, every process (3 data planes backing off when idle, 3 farmd, 3 Apache, wrk) on the 2 CPUs, as the demo runs; each data plane receives every packet (the bridge floods the virtual MAC). wrk has one source address, so under the on_addr rule one node serves it all; under the on_port rule (port 8080) the three nodes share the connections. {DEDICATED}: the deployed shape, CPU 0 for the application and CPU 1 for the network: a 1-node farm whose data plane busy-polls on CPU 1 (a core per data-plane worker), Apache, farmd and wrk pinned to CPU 0, against the direct lab with Apache and wrk pinned to CPU 0 and the kernel's receive processing of both veths steered to CPU 1 (RPS). The data plane also runs the kernel's receive path of each frame it writes to its TAP (in its write call), so in both cases CPU 1 does the network work; what differs is the farm's path (packet socket, classification, TAP) against the kernel's bridge-to-socket path. Cases ran interleaved, {} rounds; the table shows the median round (by requests/s) and the range. Served by: requests per node in the access logs of that round (the other nodes' few requests are their http checkers').\n", h.repeat);
        let _ = writeln!(s, "| CPUs | Path | Connections | Requests/s | Range | p50 (ms) | p90 (ms) | p99 (ms) | Errors | Served by |");
        let _ = writeln!(s, "|---|---|---|---:|---:|---:|---:|---:|---:|---|");
        for (setup, path, keepalive) in cases(h) {
            let (all, median) = case(h, setup, path, keepalive);
            let Some(r) = median else { continue };
            let by = r.served_by.iter().map(|(n, c)| format!("n{n}: {c}")).collect::<Vec<_>>().join(", ");
            let range = match (all.first(), all.last()) {
                (Some(lo), Some(hi)) if all.len() > 1 => format!("{:.0}–{:.0}", lo.wrk.rps, hi.wrk.rps),
                _ => "–".to_owned(),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | **{:.0}** | {} | {:.2} | {:.2} | {:.2} | {} | {} |",
                setup,
                path,
                if keepalive { "keep-alive" } else { "close" },
                r.wrk.rps,
                range,
                r.wrk.p50_ms,
                r.wrk.p90_ms,
                r.wrk.p99_ms,
                r.wrk.errors,
                by
            );
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
        WrkRun {
            setup: setup.into(),
            path: path.into(),
            keepalive,
            url: "http://x/".into(),
            wrk: WrkOutput { requests: 1, rps, p50_ms: 1.0, p90_ms: 2.0, p99_ms: 3.0, errors: 0 },
            served_by: BTreeMap::from([(2, 7)]),
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
                wrk(SHARED, ON_ADDR, true, 700.0),
                wrk(SHARED, DIRECT, true, 1200.0),
                wrk(SHARED, ON_ADDR, true, 650.0),
                wrk(DEDICATED, DIRECT, true, 1000.0),
                wrk(DEDICATED, ON_ADDR, true, 950.0),
                wrk(DEDICATED, DIRECT, false, 500.0),
                wrk(DEDICATED, ON_ADDR, false, 400.0),
            ],
            repeat: 3,
        };
        let assign = vec![
            AssignTiming { buckets: 65536, nodes: 8, mixed_weights: false, assign_ms: 0.5, publish_ms: 0.1, total_ms: 0.6, runs: 20 },
            AssignTiming { buckets: 65536, nodes: 8, mixed_weights: true, assign_ms: 1.2, publish_ms: 0.1, total_ms: 1.3, runs: 20 },
            AssignTiming { buckets: 4096, nodes: 8, mixed_weights: true, assign_ms: 0.1, publish_ms: 0.0, total_ms: 0.1, runs: 20 },
        ];
        let fast: Vec<Option<f64>> = (0..20).map(|i| Some(200.0 + f64::from(i))).collect();
        let mut slow: Vec<Option<f64>> = (0..19).map(|i| Some(900.0 + f64::from(i) * 10.0)).collect();
        slow.push(None);
        let failover = vec![series(300.0, &fast), series(1500.0, &slow)];
        let t = targets(Some(&http), &assign, &failover);
        assert_eq!(t.len(), 7, "{t:?}");
        assert!((t[0].measured - 5.0).abs() < 1e-9 && t[0].met && t[0].at_most);
        assert!((t[1].measured - 20.0).abs() < 1e-9 && !t[1].met);
        // Medians: 650 of 600, 650, 700 against 1100 of 1000, 1100, 1200.
        assert!((t[2].measured - (1.0 - 650.0 / 1100.0) * 100.0).abs() < 1e-9 && !t[2].met, "{:?}", t[2]);
        assert!(t[3].met && !t[4].met);
        assert!((t[5].measured - 219.0).abs() < 1e-9 && t[5].met);
        // A kill never served again is infinitely slow.
        assert!(t[6].measured.is_infinite() && !t[6].met);

        let mut md = String::new();
        markdown(&mut md, Some(&http), &assign, &failover);
        assert!(md.contains(&format!("| {SHARED} | {ON_ADDR} | keep-alive | **650** | 600–700 |")), "{md}");
        assert!(md.contains(&format!("| {DEDICATED} | {DIRECT} | close | **500** | – |")), "{md}");
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
