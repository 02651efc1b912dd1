//! The refresher (the data plane's main thread): reads the kernel's sockets, publishes the
//! snapshot and the per-bucket counts, on a cadence that follows the refresh's cost.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use farm_pipeline::PipelineConfig;
use farm_table::TableReader;

use super::{procfs, vip_flows, FlowSnapshot, KnownFlows, SharedFlows, SockDiag, Socket, REFRESH_MAX_PERIOD, REFRESH_PERIOD};

/// Where the refresher reads the kernel's sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// sock_diag netlink, filtered on the VIPs in the kernel.
    SockDiag,
    /// `/proc/net/tcp{,6}` (the fallback).
    Proc,
}

/// Reads the kernel's tables, publishes the snapshot and the per-bucket counts.
#[derive(Debug)]
pub struct Refresher {
    shared: SharedFlows,
    epoch: u64,
    diag: Option<SockDiag>,
    failing: bool,
    sockets: Vec<Socket>,
    vips: Vec<IpAddr>,
}

impl Refresher {
    /// A refresher on sock_diag (or `/proc` where sock_diag cannot be opened), and the handle
    /// workers read.
    pub fn new() -> (Refresher, SharedFlows) {
        Refresher::with_source(Source::SockDiag)
    }

    /// A refresher on `source`; asking for sock_diag falls back to `/proc` (with a warning)
    /// when the netlink socket cannot be opened.
    pub fn with_source(source: Source) -> (Refresher, SharedFlows) {
        let diag = match source {
            Source::Proc => None,
            Source::SockDiag => match SockDiag::open() {
                Ok(d) => Some(d),
                Err(e) => {
                    tracing::warn!(error = %e, "sock_diag netlink unavailable: flow knowledge from /proc/net/tcp");
                    None
                }
            },
        };
        let shared: SharedFlows = Arc::new(ArcSwap::from_pointee(FlowSnapshot::default()));
        let r = Refresher { shared: shared.clone(), epoch: 0, diag, failing: false, sockets: Vec::new(), vips: Vec::new() };
        (r, shared)
    }

    /// Where the sockets come from.
    pub fn source(&self) -> Source {
        if self.diag.is_some() {
            Source::SockDiag
        } else {
            Source::Proc
        }
    }

    /// Reads the kernel's sockets (those in a held state on a VIP with sock_diag; all of them
    /// from `/proc`), into the refresher's buffer. A failed dump falls back to `/proc` for this
    /// refresh (logged once per run of failures).
    pub fn read_kernel(&mut self, cfg: &PipelineConfig) -> &[Socket] {
        self.sockets.clear();
        if let Some(d) = self.diag.as_mut() {
            self.vips.clear();
            self.vips.extend(cfg.vips.iter().map(|v| v.addr));
            match d.held_tcp(&self.vips, &mut self.sockets) {
                Ok(()) => {
                    if std::mem::take(&mut self.failing) {
                        tracing::info!("sock_diag dumps work again");
                    }
                    return &self.sockets;
                }
                Err(e) => {
                    if !std::mem::replace(&mut self.failing, true) {
                        tracing::warn!(error = %e, "sock_diag dump failed: reading /proc/net/tcp until it works");
                    }
                    self.sockets.clear();
                }
            }
        }
        procfs::read_proc_net_tcp(&mut self.sockets);
        &self.sockets
    }

    /// Reads the kernel: the VIP connections and their count per bucket.
    pub fn collect(&mut self, cfg: &PipelineConfig) -> (KnownFlows, Vec<u32>) {
        self.read_kernel(cfg);
        vip_flows(cfg, &self.sockets)
    }

    /// One refresh: reads the kernel, writes the per-bucket counts into the table, publishes the
    /// snapshot. Returns how long it took (the cadence stretches on slow refreshes). `period` is
    /// the longest the next refresh may take to come: [`Cadence::bound`].
    /// snapshot, announcing the refresh `period` until the next one (the workers' SYN memory
    /// lasts [`syn_ttl`] of it).
    pub fn refresh(&mut self, cfg: &PipelineConfig, table: &TableReader, period: Duration) -> Duration {
        let t0 = Instant::now();
        let taken_ns = crate::run::now_ns();
        let (known, per_bucket) = self.collect(cfg);
        for (cell, n) in table.flows().iter().zip(per_bucket) {
            cell.store(n, Ordering::Relaxed);
        }
        self.publish(known, taken_ns, period);
        t0.elapsed()
    }

    /// Publishes `known`, read from the kernel at `taken_ns`, to the workers; the next refresh
    /// comes within `period`.
    pub fn publish(&mut self, known: KnownFlows, taken_ns: u64, period: Duration) {
        self.epoch += 1;
        let period_ns = period.as_nanos() as u64;
        self.shared.store(Arc::new(FlowSnapshot { epoch: self.epoch, taken_ns, period_ns, known }));
    }
}

/// Refreshing may take about this share of a CPU (1/n) while a handover involves the node ...
const HANDOVER_BUDGET: u32 = 10;
/// ... and this share otherwise (nothing asks whether a flow is known then: the refresh keeps
/// the per-bucket counts farmd reads, and a handover starts with a refresh).
const IDLE_BUDGET: u32 = 50;

/// When the next refresh is due: every [`REFRESH_PERIOD`], stretched so that refreshing takes
/// at most about a tenth of a CPU while a handover involves the node (a fiftieth otherwise), up
/// to [`REFRESH_MAX_PERIOD`]. A sock_diag dump walks the kernel's whole TCP hash table, so even
/// an idle node pays a few ms per refresh on a large host table (perf/README.md). Each snapshot
/// announces a bound of the next refresh ([`Cadence::bound`]), so the workers' SYN memory always
/// covers the gap between two refreshes.
#[derive(Debug, Clone, Copy)]
pub struct Cadence {
    period: Duration,
    cost: Duration,
    handover: bool,
}

impl Default for Cadence {
    fn default() -> Cadence {
        Cadence { period: REFRESH_PERIOD, cost: Duration::ZERO, handover: false }
    }
}

impl Cadence {
    fn target(&self, cost: Duration, budget: u32) -> Duration {
        (cost * budget).clamp(REFRESH_PERIOD, REFRESH_MAX_PERIOD)
    }

    /// The current period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Whether a handover involves the node; true when one just began (refresh now).
    pub fn set_handover(&mut self, handover: bool) -> bool {
        let began = handover && !self.handover;
        self.handover = handover;
        self.period = self.target(self.cost, if handover { HANDOVER_BUDGET } else { IDLE_BUDGET });
        began
    }

    /// Adapts the period to the cost of the refresh that just ran.
    pub fn after(&mut self, cost: Duration) -> Duration {
        self.cost = cost;
        self.set_handover(self.handover);
        self.period
    }

    /// The bound a snapshot announces for the next refresh: the idle period the last cost implies
    /// (the longest the next refresh may be put off, whatever happens to the handover) plus that
    /// cost.
    pub fn bound(&self) -> Duration {
        self.period.max(self.target(self.cost, IDLE_BUDGET)) + self.cost
    }
}
