//! The transmit/receive loop on DPDK queues.
//!
//! One thread does both, in turn: top the transmit burst up with copies of the
//! next templates (mbuf allocation in bulk + memcpy), stamp every frame of the
//! burst with the TSC, hand it to the driver (what the driver refuses stays
//! for the next turn, re-stamped), then receive on every receive queue, read
//! the stamps back into a latency histogram and free the frames in bulk.
//!
//! Phases: warm-up (counted in the totals only), the measurement window, then
//! a drain (no transmission; receive until nothing arrives for
//! [`RunConfig::drain_idle`] or for at most [`RunConfig::drain`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dpdk::{tsc, tsc_hz, Mempool, MbufBurst, RxQueue, TxQueue, BURST_SIZE};
use hdrhistogram::Histogram;

use crate::pacer::Pacer;
use crate::stamp;
use crate::summary::{Latency, Totals};
use crate::template::Template;

/// Receive bursts per queue and turn, at most.
const RX_BURSTS: usize = 4;
/// Largest latency recorded (longer ones are clamped): 60 s in ns.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// Timing of one run.
#[derive(Debug, Clone, Copy)]
pub struct RunConfig {
    /// Before the window.
    pub warmup: Duration,
    /// The measurement window.
    pub duration: Duration,
    /// Longest receive-only tail after the window.
    pub drain: Duration,
    /// The tail ends earlier once nothing arrived for this long.
    pub drain_idle: Duration,
    /// Packets per second, or flat out.
    pub rate: Option<u64>,
}

/// Edges of the measurement window, for the caller's own sampling (CPU time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    /// The window starts.
    Start,
    /// The window ends.
    End,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Whole-run counters.
    pub totals: Totals,
    /// Window length in TSC cycles.
    pub window_cycles: u64,
    /// Frames sent in the window.
    pub window_tx: u64,
    /// Frame bytes (with FCS) sent in the window.
    pub window_tx_bytes: u64,
    /// Frames received in the window.
    pub window_rx: u64,
    /// Frames sent in the window that should come back.
    pub window_expected: u64,
    /// Latency from the window start to the end of the drain.
    pub latency: Latency,
    /// TSC frequency.
    pub tsc_hz: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    tx: u64,
    tx_bytes: u64,
    expected: u64,
    rx: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Warmup,
    Window,
    Drain,
}

fn cycles(d: Duration, hz: u64) -> u64 {
    u64::try_from(d.as_nanos() * u128::from(hz) / 1_000_000_000).unwrap_or(u64::MAX)
}

/// The generator's queues and frames.
#[derive(Debug)]
pub struct Engine<'a> {
    /// Transmit queues, used in turn, one burst each.
    pub tx: Vec<TxQueue>,
    /// Receive queues, all polled every turn.
    pub rx: Vec<RxQueue>,
    /// Where transmit mbufs come from.
    pub pool: &'a Mempool,
    /// The frames to send, in turn.
    pub templates: &'a [Template],
}

impl Engine<'_> {
    /// Runs until the drain ends or `stop` is set (then the window ends at once).
    ///
    /// # Panics
    /// If there are no templates, or no transmit or receive queue.
    pub fn run(&mut self, cfg: &RunConfig, stop: &AtomicBool, on_edge: &mut dyn FnMut(Edge)) -> RunResult {
        assert!(!self.templates.is_empty() && !self.tx.is_empty() && !self.rx.is_empty());
        let hz = tsc_hz();
        let ns_per_cycle = 1e9 / hz as f64;
        let max_cycles = cycles(Duration::from_secs(10), hz);
        let mut hist = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid histogram bounds");
        let t0 = tsc();
        let t_window = t0 + cycles(cfg.warmup, hz);
        let mut t_end = t_window + cycles(cfg.duration, hz);
        let mut t_drain_end = u64::MAX;
        let drain_idle = cycles(cfg.drain_idle, hz);
        let mut last_rx = t0;
        let mut pacer = Pacer::new(hz, cfg.rate, t0);
        let mut phase = Phase::Warmup;
        let (mut now_c, mut start_c, mut end_c) = (Counts::default(), Counts::default(), Counts::default());
        let (mut t_start, mut t_stop) = (t0, t0);
        let mut totals = Totals::default();

        let mut burst: MbufBurst = MbufBurst::new();
        let mut slots = [0u32; BURST_SIZE];
        let mut rxb: MbufBurst = MbufBurst::new();
        let mut next = 0usize;
        let mut txq = 0usize;
        let mut turn = 0u32;
        let n_tpl = self.templates.len();

        loop {
            let now = tsc();
            turn = turn.wrapping_add(1);
            let stopped = turn & 1023 == 0 && stop.load(Ordering::Relaxed);
            if stopped && phase != Phase::Drain {
                t_end = now;
            }
            match phase {
                Phase::Warmup if now >= t_window || stopped => {
                    phase = Phase::Window;
                    on_edge(Edge::Start);
                    hist.reset();
                    start_c = now_c;
                    t_start = tsc();
                    continue;
                }
                Phase::Window if now >= t_end => {
                    t_stop = now;
                    end_c = now_c;
                    on_edge(Edge::End);
                    phase = Phase::Drain;
                    burst.clear();
                    t_drain_end = now + cycles(cfg.drain, hz);
                    last_rx = now;
                    continue;
                }
                Phase::Drain if now >= t_drain_end || now - last_rx >= drain_idle || stopped => break,
                _ => {}
            }

            if phase != Phase::Drain {
                let allow = pacer.allowance(now, BURST_SIZE);
                let have = burst.len();
                let add = allow.saturating_sub(have).min(burst.spare());
                if add > 0 {
                    if self.pool.alloc_bulk(&mut burst, add).is_err() {
                        totals.alloc_fail += 1;
                    } else {
                        for (k, m) in burst.as_mut_slice()[have..].iter_mut().enumerate() {
                            let t = &self.templates[next];
                            // An mbuf holds 2048 data bytes; templates are at most 1514.
                            if m.extend_from_slice(&t.frame).is_err() {
                                totals.alloc_fail += 1;
                            }
                            slots[have + k] = next as u32;
                            next += 1;
                            if next == n_tpl {
                                next = 0;
                            }
                        }
                    }
                }
                if !burst.is_empty() {
                    let stamp_now = tsc();
                    for (m, &s) in burst.as_mut_slice().iter_mut().zip(&slots) {
                        let place = self.templates[s as usize].place;
                        let d = m.data_mut();
                        if place.comp + 2 <= d.len() {
                            stamp::write(d, place, stamp_now);
                        }
                    }
                    let len = burst.len();
                    let sent = self.tx[txq].tx_burst(&mut burst);
                    pacer.sent(sent);
                    for &s in &slots[..sent] {
                        let t = &self.templates[s as usize];
                        now_c.tx_bytes += t.frame.len() as u64 + 4;
                        now_c.expected += u64::from(t.accepted);
                    }
                    now_c.tx += sent as u64;
                    slots.copy_within(sent..len, 0);
                    if sent < len {
                        totals.tx_ring_full += 1;
                    }
                    // Next queue in any case: what a full ring refused goes to the
                    // next one (a worker that is not scheduled must not stall the rest).
                    txq += 1;
                    if txq == self.tx.len() {
                        txq = 0;
                    }
                }
            }

            // Receiving comes first: a full receive ring makes the device under
            // test drop. Up to RX_BURSTS full bursts per queue and turn.
            for q in &mut self.rx {
                for _ in 0..RX_BURSTS {
                    let n = q.rx_burst(&mut rxb);
                    if n == 0 {
                        break;
                    }
                    let t = tsc();
                    last_rx = t;
                    for m in rxb.iter() {
                        match stamp::read(m.data()) {
                            Some(s) if t >= s && t - s < max_cycles => {
                                now_c.rx += 1;
                                if phase != Phase::Warmup {
                                    let ns = ((t - s) as f64 * ns_per_cycle) as u64;
                                    hist.saturating_record(ns.max(1));
                                }
                            }
                            _ => totals.rx_foreign += 1,
                        }
                    }
                    rxb.clear();
                    if n < BURST_SIZE {
                        break;
                    }
                }
            }
        }
        totals.tx = now_c.tx;
        totals.expected = now_c.expected;
        totals.rx = now_c.rx;
        totals.lost = now_c.expected as i64 - now_c.rx as i64;
        RunResult {
            totals,
            window_cycles: t_stop.saturating_sub(t_start),
            window_tx: end_c.tx - start_c.tx,
            window_tx_bytes: end_c.tx_bytes - start_c.tx_bytes,
            window_rx: end_c.rx - start_c.rx,
            window_expected: end_c.expected - start_c.expected,
            latency: Latency::from_histogram(&hist),
            tsc_hz: hz,
        }
    }
}
