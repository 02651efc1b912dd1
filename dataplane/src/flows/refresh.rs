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
    /// the longest the next refresh may take to come: the cadence's period before this refresh
    /// stretched it, i.e. [`Cadence::bound`].
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

/// When the next refresh is due: every [`REFRESH_PERIOD`], stretched on a node where one refresh
/// costs much (tens of thousands of sockets) so that refreshing takes at most about a tenth of a
/// CPU, up to [`REFRESH_MAX_PERIOD`]. Each snapshot announces the period, so the workers' SYN
/// memory always covers the gap between two refreshes.
#[derive(Debug, Clone, Copy)]
pub struct Cadence {
    period: Duration,
}

impl Default for Cadence {
    fn default() -> Cadence {
        Cadence { period: REFRESH_PERIOD }
    }
}

impl Cadence {
    /// The current period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Adapts the period to the cost of the refresh that just ran.
    pub fn after(&mut self, cost: Duration) -> Duration {
        self.period = (cost * 10).clamp(REFRESH_PERIOD, REFRESH_MAX_PERIOD);
        self.period
    }

    /// The period a snapshot announces: the longer of the current period and the one a refresh
    /// of cost `last_cost` would set (the next refresh may stretch the period before it runs).
    pub fn bound(&self, last_cost: Duration) -> Duration {
        self.period.max((last_cost * 10).clamp(REFRESH_PERIOD, REFRESH_MAX_PERIOD)) + last_cost
    }
}
