//! The CPU cost of the network path during one HTTP run (lab.rs): snapshots before and after
//! wrk of
//!
//! - the softirq time of every CPU (`/proc/stat`, USER_HZ ticks): the kernel's receive path;
//! - the CPU time of the farm's data planes (every thread's `schedstat`: utime + stime in ns);
//! - the data planes' `busy_cycles` counter (TSC cycles of polls that returned frames), read
//!   from each node's table file: a busy-polling data plane is on its CPU all the time, so
//!   only this counter says what its work cost.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use farm_table::layout::{LcoreArea, Layout};
use farm_table::{Counter, TableReader};
use serde::Serialize;

/// Where one run's figures come from.
#[derive(Debug)]
pub struct Probe {
    /// farm-dataplane processes (none in the direct case).
    pub dp_pids: Vec<u32>,
    /// Each table (for its TSC Hz), its file and the offsets of every lcore's `busy_cycles`.
    tables: Vec<(TableReader, File, Vec<u64>)>,
    /// CPUs the data plane busy-polls on (their softirq runs inside its polls), if any.
    pub dp_cpus: Vec<usize>,
    /// TSC frequency, to turn busy cycles into seconds.
    pub tsc_hz: u64,
}

/// One snapshot.
#[derive(Debug, Clone)]
pub struct Snap {
    at: std::time::Instant,
    softirq_ticks: Vec<u64>,
    dp_cpu_ns: u64,
    busy_cycles: Option<u64>,
}

/// What one run cost, in seconds of CPU over the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NetCpu {
    /// Wall time between the snapshots.
    pub seconds: f64,
    /// CPU time of the data planes (all their threads).
    pub dataplane_cpu_s: f64,
    /// Busy time of the data planes (busy cycles / TSC Hz); None: not exported.
    pub dataplane_busy_s: Option<f64>,
    /// Softirq time, all CPUs.
    pub softirq_s: f64,
    /// Softirq time on the CPUs the data plane does not busy-poll on.
    pub softirq_other_s: f64,
    /// The data plane busy-polls on a CPU of its own (dedicated shape).
    pub busy_polling: bool,
}

impl NetCpu {
    /// CPU seconds of the network path: the kernel's softirq time, plus for the farm the data
    /// planes' busy time when they busy-poll (else their CPU time); the softirq time of the CPUs
    /// a busy-polling data plane owns is then left out (it ran inside its polls).
    pub fn network_s(&self) -> f64 {
        if self.busy_polling {
            self.dataplane_busy_s.unwrap_or(self.dataplane_cpu_s) + self.softirq_other_s
        } else {
            self.dataplane_cpu_s + self.softirq_s
        }
    }
}

/// Milliseconds of CPU per 1,000 requests.
pub fn ms_per_1k(cpu_s: f64, requests: u64) -> Option<f64> {
    (requests > 0).then(|| cpu_s * 1e6 / requests as f64)
}

fn softirq_ticks() -> Vec<u64> {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let mut out = Vec::new();
    for l in stat.lines() {
        let mut f = l.split_whitespace();
        let Some(name) = f.next() else { continue };
        let Some(n) = name.strip_prefix("cpu").filter(|n| !n.is_empty()).and_then(|n| n.parse::<usize>().ok()) else { continue };
        // user nice system idle iowait irq softirq
        let softirq = f.nth(6).and_then(|v| v.parse().ok()).unwrap_or(0);
        if out.len() <= n {
            out.resize(n + 1, 0);
        }
        out[n] = softirq;
    }
    out
}

/// A table, its file and the offsets of the `busy_cycles` counter of every lcore.
fn busy_offsets(path: &Path) -> Option<(TableReader, File, Vec<u64>)> {
    let slot = Counter::BusyCycles as u64;
    let reader = TableReader::open(path).ok()?;
    let p = reader.params();
    let l = Layout::new(p.n_buckets, p.n_lcores);
    let area = std::mem::size_of::<LcoreArea>() as u64;
    let counters = std::mem::offset_of!(LcoreArea, counters) as u64;
    let offs = (0..u64::from(p.n_lcores)).map(|i| l.lcores_offset + i * area + counters + slot * 8).collect();
    Some((reader, File::open(path).ok()?, offs))
}

impl Probe {
    /// A probe of these data planes (pids, table files); `dp_cpus`: the CPUs they busy-poll on.
    pub fn new(dp_pids: Vec<u32>, tables: &[std::path::PathBuf], dp_cpus: Vec<usize>, tsc_hz: u64) -> Probe {
        let tables = tables.iter().filter_map(|t| busy_offsets(t)).collect::<Vec<_>>();
        Probe { dp_pids, tables, dp_cpus, tsc_hz }
    }

    /// A probe of the kernel alone (direct case).
    pub fn kernel() -> Probe {
        Probe { dp_pids: Vec::new(), tables: Vec::new(), dp_cpus: Vec::new(), tsc_hz: 0 }
    }

    /// Takes a snapshot.
    pub fn snap(&self) -> Snap {
        let dp_cpu_ns = self.dp_pids.iter().map(|&p| farm_perf::cpu::process_cpu_ns(p).unwrap_or(0)).sum();
        let busy_cycles = (!self.tables.is_empty()).then(|| {
            self.tables
                .iter()
                .flat_map(|(_, f, offs)| {
                    offs.iter().map(move |&o| {
                        let mut b = [0u8; 8];
                        f.read_exact_at(&mut b, o).map_or(0, |()| u64::from_le_bytes(b))
                    })
                })
                .sum()
        });
        Snap { at: std::time::Instant::now(), softirq_ticks: softirq_ticks(), dp_cpu_ns, busy_cycles }
    }

    /// The cost between two snapshots.
    pub fn between(&self, a: &Snap, b: &Snap) -> NetCpu {
        let ticks = |own: bool| -> f64 {
            let d: u64 = b
                .softirq_ticks
                .iter()
                .enumerate()
                .filter(|(cpu, _)| own || !self.dp_cpus.contains(cpu))
                .map(|(cpu, t)| t.saturating_sub(a.softirq_ticks.get(cpu).copied().unwrap_or(0)))
                .sum();
            d as f64 / farm_perf::cpu::USER_HZ
        };
        // The data plane's own TSC Hz (in its table) if it reports one.
        let hz = self.tables.iter().map(|(r, _, _)| r.tsc_hz()).find(|&h| h > 0).unwrap_or(self.tsc_hz);
        let busy = match (a.busy_cycles, b.busy_cycles) {
            (Some(x), Some(y)) if hz > 0 && y > x => Some((y - x) as f64 / hz as f64),
            _ => None,
        };
        NetCpu {
            seconds: (b.at - a.at).as_secs_f64(),
            dataplane_cpu_s: b.dp_cpu_ns.saturating_sub(a.dp_cpu_ns) as f64 / 1e9,
            dataplane_busy_s: busy,
            softirq_s: ticks(true),
            softirq_other_s: ticks(false),
            busy_polling: !self.dp_cpus.is_empty(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_path_and_per_request() {
        let shared = NetCpu { seconds: 3.0, dataplane_cpu_s: 0.6, dataplane_busy_s: None, softirq_s: 0.3, softirq_other_s: 0.1, busy_polling: false };
        assert!((shared.network_s() - 0.9).abs() < 1e-12);
        let ded = NetCpu { dataplane_cpu_s: 3.0, dataplane_busy_s: Some(0.5), busy_polling: true, ..shared.clone() };
        assert!((ded.network_s() - 0.6).abs() < 1e-12);
        assert_eq!(ms_per_1k(0.5, 10_000), Some(50.0));
        assert_eq!(ms_per_1k(0.5, 0), None);
        let t = softirq_ticks();
        assert!(!t.is_empty());
        let p = Probe::kernel();
        let (a, b) = (p.snap(), p.snap());
        let c = p.between(&a, &b);
        assert!(c.dataplane_busy_s.is_none() && c.dataplane_cpu_s == 0.0 && !c.busy_polling);
    }
}
