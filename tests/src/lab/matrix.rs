//! The fault matrix (issue 10): one fault on a running farm-mode lab, watched from the client
//! side by [`Watch`] (new-connection and keep-alive clients of every node, a capture of every
//! SYN-ACK with the MAC of the node that sent it), then judged:
//!
//! - I1: no SYN answered by two nodes. A duplicate whose first answer was captured before the
//!   fault started is no new acceptance (the first node accepted the SYN before the fault, and
//!   its kernel retransmits the SYN-ACK when its data plane passes frames again), so it is
//!   listed apart and not counted;
//! - clients of the nodes the fault does not touch never fail (no failed connection, no failed
//!   keep-alive request);
//! - the settle time: from the fault's start until every watched client is served again for
//!   good (recovery included: a node that comes back takes its buckets back);
//! - the `is dead` events farmd logged meanwhile (module logs), for the loss runs: no false
//!   deaths (I4).
//!
//! Each fault is watched for at least [`MIN_WATCH`] (three times the default `dead_after`), then
//! until every node is UP with tables agreeing on an owner of every bucket, then
//! [`AFTER_RECOVERY`] more.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::capture::{capture_time_now, Duplicate};
use super::error::LabError;
use super::faults::{self, Direction, Starve};
use super::farm::{daemon_pid_file, DATAPLANE, FARMD};
use super::ops::Health;
use super::probes::{Watch, WatchReport};
use super::procs;
use super::Lab;

/// Shortest watch of a fault, from its start (default `dead_after` is 1 s).
pub const MIN_WATCH: Duration = Duration::from_secs(3);
/// How long the clients keep going once every node is UP and the tables agree.
pub const AFTER_RECOVERY: Duration = Duration::from_secs(2);
/// Longest wait for every node UP with agreeing tables after a fault.
pub const RECOVERY_LIMIT: Duration = Duration::from_secs(40);

/// One fault, applied to a victim node (except heartbeat loss, which hits every node).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// SIGSTOP to the victim's farmd only, SIGCONT after this long (its data plane runs on).
    FarmdPause(Duration),
    /// SIGKILL to the victim's farmd only (its data plane runs on, orphaned, until it sees its
    /// lease expired and farmd gone); farmd is started again after `down_for` and must replace
    /// a data plane it finds.
    FarmdKill {
        /// How long the node runs without farmd.
        down_for: Duration,
    },
    /// SIGSTOP to the victim's data plane, SIGCONT after this long (if farmd has not replaced it).
    DataplanePause(Duration),
    /// SIGKILL to the victim's data plane (farmd restarts it).
    DataplaneKill,
    /// The victim's heartbeats dropped in its namespace (one direction or both) for `hold`;
    /// client traffic untouched.
    HeartbeatCut {
        /// Which way.
        dir: Direction,
        /// How long.
        hold: Duration,
    },
    /// The victim cut from its peers' heartbeats and from its witness (echo requests to it
    /// dropped) for `hold`: the isolated node of a two-node farm with a witness.
    Isolate {
        /// The witness address.
        witness: Ipv4Addr,
        /// How long.
        hold: Duration,
    },
    /// `percent`% of every node's heartbeats dropped (on the bridge) for `hold`.
    HeartbeatLoss {
        /// Loss rate.
        percent: u8,
        /// How long.
        hold: Duration,
    },
    /// The victim's farmd and data plane held to `quota_us` of CPU per `period_us` for `hold`.
    Starve {
        /// CPU time allowed per period.
        quota_us: u64,
        /// Period.
        period_us: u64,
        /// How long.
        hold: Duration,
    },
}

impl Fault {
    /// Whether the fault hits one node (the victim) rather than every node.
    pub fn has_victim(&self) -> bool {
        !matches!(self, Fault::HeartbeatLoss { .. })
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |d: &Duration| format!("{:.1} s", d.as_secs_f64());
        match self {
            Fault::FarmdPause(d) => write!(f, "farmd SIGSTOP for {}", s(d)),
            Fault::FarmdKill { down_for } => write!(f, "farmd SIGKILL, started again after {}", s(down_for)),
            Fault::DataplanePause(d) => write!(f, "data plane SIGSTOP for {}", s(d)),
            Fault::DataplaneKill => write!(f, "data plane SIGKILL"),
            Fault::HeartbeatCut { dir, hold } => write!(f, "heartbeats cut ({dir:?}) for {}", s(hold)),
            Fault::Isolate { witness, hold } => write!(f, "heartbeats and witness {witness} cut for {}", s(hold)),
            Fault::HeartbeatLoss { percent, hold } => write!(f, "{percent}% heartbeat loss for {}", s(hold)),
            Fault::Starve { quota_us, period_us, hold } => {
                write!(f, "farmd + data plane held to {quota_us} us of CPU per {period_us} us for {}", s(hold))
            }
        }
    }
}

/// What a fault did.
#[derive(Clone, Debug)]
pub struct FaultReport {
    /// The fault.
    pub fault: Fault,
    /// The victim (None: every node).
    pub victim: Option<usize>,
    /// Clients, capture, settle times.
    pub watch: WatchReport,
    /// Capture time of the fault's start (for the duplicates).
    pub fault_at: Duration,
    /// From the start of the fault to its end (SIGCONT, heal, farmd started again).
    pub ended_after: Duration,
    /// From the start of the fault until every node was UP with tables agreeing on an owner of
    /// every bucket ([`Lab::wait_agreed`]; None: not within [`RECOVERY_LIMIT`]).
    pub recovered_after: Option<Duration>,
    /// `is dead` lines that the nodes' farmd logged during the watch (`n<i>: line`).
    pub deaths: Vec<String>,
    /// Packets the fault's nftables rules dropped.
    pub dropped: u64,
    /// [`Fault::FarmdKill`]: whether the killed farmd's data plane still ran when farmd was
    /// started again (it exits by itself once its lease has expired and farmd is gone; if still
    /// there, the new farmd must stop it before starting its own).
    pub orphan_at_restart: Option<bool>,
    /// [`Fault::Starve`]: `(periods, periods throttled)` of the starved processes' cgroup.
    pub throttled: Option<(u64, u64)>,
}

impl FaultReport {
    /// SYNs answered by two nodes, except those whose first answer came before the fault.
    pub fn i1_violations(&self) -> Vec<&Duplicate> {
        self.watch.capture.duplicates.iter().filter(|d| !d.first_answer_before(self.fault_at)).collect()
    }

    /// Duplicates explained by an acceptance before the fault.
    pub fn retransmitted(&self) -> Vec<&Duplicate> {
        self.watch.capture.duplicates.iter().filter(|d| d.first_answer_before(self.fault_at)).collect()
    }

    /// Capture violations other than duplicates and foreign RSTs: the virtual MAC as a source,
    /// the VIP bound to a node's MAC.
    pub fn arp_violations(&self) -> Vec<&String> {
        self.watch.capture.violations.iter().filter(|v| v.contains("virtual MAC") || v.contains("binds the VIP")).collect()
    }

    /// Failures of clients whose node the fault did not touch.
    pub fn unaffected_failures(&self) -> Vec<String> {
        self.watch.failures_outside(&self.victim.into_iter().collect::<Vec<_>>())
    }

    /// From the fault until every client is served again for good.
    pub fn settle_time(&self) -> Option<Duration> {
        self.watch.settle_time()
    }

    /// Everything that breaks the matrix's rules; `i1` false for a fault where two sides serving
    /// is the documented behaviour (not checked then).
    pub fn problems(&self, i1: bool) -> Vec<String> {
        let mut p = Vec::new();
        if i1 {
            p.extend(self.i1_violations().iter().map(|d| format!("I1: {d}")));
        }
        p.extend(self.arp_violations().iter().map(|v| format!("ARP: {v}")));
        p.extend(self.unaffected_failures().into_iter().map(|f| format!("unaffected client failed: {f}")));
        if self.watch.capture.dropped > 0 {
            p.push(format!("the capture lost {} frames: the I1 check is incomplete", self.watch.capture.dropped));
        }
        if self.recovered_after.is_none() {
            p.push(format!("not every node UP with agreeing tables within {RECOVERY_LIMIT:?} after the fault"));
        }
        if self.settle_time().is_none() {
            p.push("a watched client was never served again".into());
        }
        p
    }
}

impl fmt::Display for FaultReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Option<Duration>| d.map_or_else(|| "never".to_owned(), |d| format!("{} ms", d.as_millis()));
        let victim = self.victim.map_or_else(|| "every node".to_owned(), |v| format!("n{v}"));
        writeln!(f, "{} on {victim}: settle time {}", self.fault, ms(self.settle_time()))?;
        writeln!(
            f,
            "    fault ended after {} ms; every node UP, tables agreeing after {}; {} packets dropped by the fault rules",
            self.ended_after.as_millis(),
            ms(self.recovered_after),
            self.dropped
        )?;
        if let Some(o) = self.orphan_at_restart {
            let what = if o { "still running (replaced by the new farmd)" } else { "gone by itself (lease expired, farmd gone)" };
            writeln!(f, "    the killed farmd's data plane when farmd started again: {what}")?;
        }
        if let Some((periods, throttled)) = self.throttled {
            writeln!(f, "    CPU quota: throttled in {throttled} of {periods} periods")?;
        }
        writeln!(f, "    clients: {}", self.watch)?;
        let per_client: Vec<String> = self
            .watch
            .settle
            .iter()
            .filter(|(_, d)| **d != Some(Duration::ZERO))
            .map(|(c, d)| format!("{c} (n{}) {}", self.watch.node_of(*c).unwrap_or(0), ms(*d)))
            .collect();
        if !per_client.is_empty() {
            writeln!(f, "    served again for good: {}", per_client.join(", "))?;
        }
        writeln!(f, "    capture: {}", self.watch.capture)?;
        let i1 = self.i1_violations();
        writeln!(
            f,
            "    SYNs answered by two nodes: {} after the fault started, {} accepted before it (retransmitted SYN-ACKs)",
            i1.len(),
            self.retransmitted().len()
        )?;
        for d in i1.iter().take(5) {
            writeln!(f, "      {d}")?;
        }
        let unaffected = self.unaffected_failures();
        writeln!(f, "    failures of unaffected clients: {}", unaffected.len())?;
        for u in unaffected.iter().take(5) {
            writeln!(f, "      {u}")?;
        }
        write!(f, "    'is dead' events: {}", self.deaths.len())?;
        for d in self.deaths.iter().take(6) {
            write!(f, "\n      {d}")?;
        }
        Ok(())
    }
}

/// Whether process `pid` runs (not a zombie).
pub fn pid_alive(pid: i32) -> bool {
    procs::alive(pid)
}

/// SIGSTOP now, SIGCONT when dropped (also when a step in between fails).
struct Frozen(i32);

impl Frozen {
    fn new(pid: i32) -> Frozen {
        procs::send(pid, Signal::SIGSTOP);
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        procs::send(self.0, Signal::SIGCONT);
    }
}

impl Lab {
    /// The pid of node `i`'s farmd (from the lab's pid file), checked against its command line.
    pub fn farmd_pid(&self, i: usize) -> Result<i32, LabError> {
        let f = daemon_pid_file(&self.layout, i, FARMD);
        procs::read_pid(&f)
            .filter(|p| procs::alive(*p) && procs::cmdline(*p).contains(FARMD))
            .ok_or_else(|| LabError::Check(format!("n{i}: no running farmd in {}", f.display())))
    }

    /// The pid of node `i`'s data plane (farmd's pid file `R/n<i>/run/dataplane.pid`), checked
    /// against its command line.
    pub fn dataplane_pid(&self, i: usize) -> Result<i32, LabError> {
        let f = self.layout.node_dir(i).join("run").join("dataplane.pid");
        procs::read_pid(&f)
            .filter(|p| procs::alive(*p) && procs::cmdline(*p).contains(DATAPLANE))
            .ok_or_else(|| LabError::Check(format!("n{i}: no running {DATAPLANE} in {}", f.display())))
    }

    /// Waits until the tables of `nodes` give every bucket to one of them, the same owner in
    /// every table. Unlike [`Lab::wait_settled`], handovers may still be in progress: a bucket
    /// that moved while clients kept connections open drains until those connections close
    /// (I2: no deadline), and the watch's keep-alive clients never close theirs.
    pub fn wait_agreed(&self, nodes: &[usize], timeout: Duration) -> Result<Duration, LabError> {
        let what = format!("tables of nodes {nodes:?} agreeing on owners among them");
        self.wait_for(&what, timeout, || {
            let tables: Vec<_> = nodes.iter().filter_map(|&i| self.assignment(i).ok()).collect();
            tables.len() == nodes.len()
                && tables.iter().all(|t| {
                    t.owners == tables[0].owners && t.owners.iter().all(|o| o.is_some_and(|o| nodes.contains(&o)))
                })
        })
    }

    fn heartbeat_port(&self) -> Result<u16, LabError> {
        self.config().map(|c| c.heartbeat.port).ok_or_else(|| LabError::Invalid("no farm configuration".into()))
    }

    fn module_logs(&self) -> Vec<PathBuf> {
        self.layout.node_numbers().map(|i| self.layout.node_dir(i).join("log").join("module.log")).collect()
    }

    /// Applies `fault` (to node `victim` if it has one) under a [`Watch`] of `per_node` clients
    /// of every node, waits for the farm to recover, and reports (see the module documentation).
    /// The lab should start with every node UP and settled tables; nodes stay in the farm
    /// afterwards (a killed farmd is started again).
    pub fn run_fault(&mut self, fault: &Fault, victim: usize, per_node: usize, name: &str) -> Result<FaultReport, LabError> {
        let all: Vec<usize> = self.layout.node_numbers().collect();
        self.wait_settled(&all, Duration::from_secs(10))?;
        let logs = self.module_logs();
        let log_sizes: Vec<u64> = logs.iter().map(|p| std::fs::metadata(p).map_or(0, |m| m.len())).collect();
        let watch = Watch::start(self, per_node, name)?;
        std::thread::sleep(Duration::from_millis(500));
        let port = self.heartbeat_port()?;
        let t0 = Instant::now();
        let fault_at = capture_time_now();
        let mut dropped = 0;
        let mut orphan = None;
        let mut throttled = None;
        let applied = (|| -> Result<(), LabError> {
            match fault {
                Fault::FarmdPause(d) => {
                    let _frozen = Frozen::new(self.farmd_pid(victim)?);
                    std::thread::sleep(*d);
                }
                Fault::FarmdKill { down_for } => {
                    let pid = self.farmd_pid(victim)?;
                    let dp = self.dataplane_pid(victim)?;
                    let left = procs::kill_now(&[pid]);
                    if !left.is_empty() {
                        return Err(LabError::Leftovers(format!("n{victim}'s farmd survives SIGKILL")));
                    }
                    std::thread::sleep(*down_for);
                    orphan = Some(procs::alive(dp) && procs::cmdline(dp).contains(DATAPLANE));
                    if let Err(e) = self.restart_node(victim) {
                        // The lab saw the orphan's farm0 and configured it just as the new
                        // farmd stopped the orphan (the TAP went with it): harmless, farmd puts
                        // the address on the new data plane's farm0 (`tap_addrs`), and the
                        // recovery wait below checks the node comes UP.
                        if !self.farmd_running(victim) {
                            return Err(e);
                        }
                    }
                }
                Fault::DataplanePause(d) => {
                    let pid = self.dataplane_pid(victim)?;
                    procs::send(pid, Signal::SIGSTOP);
                    std::thread::sleep(*d);
                    // farmd may have replaced it meanwhile: continue only that same process.
                    if procs::alive(pid) && procs::cmdline(pid).contains(DATAPLANE) {
                        procs::send(pid, Signal::SIGCONT);
                    }
                }
                Fault::DataplaneKill => {
                    let pid = self.dataplane_pid(victim)?;
                    procs::kill_now(&[pid]);
                }
                Fault::HeartbeatCut { dir, hold } => {
                    faults::cut_heartbeats(&self.layout, victim, port, *dir)?;
                    std::thread::sleep(*hold);
                    dropped = faults::dropped(&self.layout);
                    self.heal()?;
                }
                Fault::Isolate { witness, hold } => {
                    faults::cut_heartbeats(&self.layout, victim, port, Direction::Both)?;
                    faults::cut_pings(&self.layout, victim, *witness)?;
                    std::thread::sleep(*hold);
                    dropped = faults::dropped(&self.layout);
                    self.heal()?;
                }
                Fault::HeartbeatLoss { percent, hold } => {
                    self.udp_loss(port, *percent)?;
                    std::thread::sleep(*hold);
                    dropped = faults::dropped(&self.layout);
                    self.heal()?;
                }
                Fault::Starve { quota_us, period_us, hold } => {
                    let pids = vec![self.farmd_pid(victim)?, self.dataplane_pid(victim)?];
                    let s = Starve::start(&format!("{}-n{victim}", self.layout.prefix()), &pids, *quota_us, *period_us)?;
                    std::thread::sleep(*hold);
                    throttled = s.throttled();
                    s.end()?;
                }
            }
            Ok(())
        })();
        let ended_after = t0.elapsed();
        if let Err(e) = applied {
            let _ = self.heal();
            drop(watch);
            return Err(e);
        }
        std::thread::sleep(MIN_WATCH.saturating_sub(t0.elapsed()));
        let recovered = self
            .wait_health(&all, Health::Up, RECOVERY_LIMIT)
            .and_then(|_| self.wait_agreed(&all, RECOVERY_LIMIT.saturating_sub(t0.elapsed())));
        let recovered_after = recovered.ok().map(|_| t0.elapsed());
        std::thread::sleep(AFTER_RECOVERY);
        let report = watch.finish(self, t0)?;
        let deaths = logs
            .iter()
            .zip(&log_sizes)
            .enumerate()
            .flat_map(|(k, (p, from))| {
                let text = std::fs::read(p).unwrap_or_default();
                // A rotated log starts again at 0.
                let from = if (text.len() as u64) < *from { 0 } else { *from as usize };
                String::from_utf8_lossy(&text[from..])
                    .lines()
                    .filter(|l| l.contains("is dead"))
                    .map(|l| format!("n{}: {}", k + 1, l.trim()))
                    .collect::<Vec<_>>()
            })
            .collect();
        Ok(FaultReport {
            fault: fault.clone(),
            victim: fault.has_victim().then_some(victim),
            watch: report,
            fault_at,
            ended_after,
            recovered_after,
            deaths,
            dropped,
            orphan_at_restart: orphan,
            throttled,
        })
    }
}

