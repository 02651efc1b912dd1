//! The poll loop: rx burst -> classify -> tx burst on the uplink and the
//! TAP, counters, the table's quiescent-state protocol and idle backoff.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use farm_table::{Counter, LcoreHandle, SlotView, COUNTER_SLOTS};

use crate::classify::{classify, REPLY_BUF_LEN};
use crate::config::PipelineConfig;
use crate::flows::FlowTracker;
use crate::neigh::classify_from_tap;
use crate::port::{Frame, Port};
use crate::table::{FencedTable, LeasedTable, OwnerLookup};
use crate::verdict::{DropReason, Verdict};

/// Where counters go (a `farm_table::LcoreHandle` in the data plane).
pub trait CounterSink {
    /// Adds `n` to counter `c`.
    fn add(&self, c: Counter, n: u64);
}

impl CounterSink for LcoreHandle<'_> {
    #[inline]
    fn add(&self, c: Counter, n: u64) {
        LcoreHandle::add(self, c, n)
    }
}

/// Per-poll counter accumulator: the hot path increments an array, and
/// [`Tally::flush_into`] publishes the non-zero slots once per poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally([u64; COUNTER_SLOTS]);

impl Default for Tally {
    fn default() -> Self {
        Self::new()
    }
}

impl Tally {
    /// All zero.
    pub const fn new() -> Tally {
        Tally([0; COUNTER_SLOTS])
    }
    /// Adds `n` to `c`.
    #[inline(always)]
    pub fn add(&mut self, c: Counter, n: u64) {
        self.0[c as usize] += n;
    }
    /// The value of `c`.
    pub fn get(&self, c: Counter) -> u64 {
        self.0[c as usize]
    }
    /// Adds the verdict's counters.
    #[inline(always)]
    pub fn count(&mut self, v: Verdict) {
        let (c, extra) = v.counters();
        self.add(c, 1);
        if let Some(e) = extra {
            self.add(e, 1);
        }
    }
    /// Adds every non-zero slot to `sink` and zeroes the tally.
    pub fn flush_into(&mut self, sink: &impl CounterSink) {
        for &c in Counter::ALL {
            let n = std::mem::take(&mut self.0[c as usize]);
            if n != 0 {
                sink.add(c, n);
            }
        }
    }
}

/// One worker's access to the table (a `farm_table::LcoreHandle` in the
/// data plane; a fake in tests).
pub trait Lcore: CounterSink {
    /// The table as seen for one burst.
    type View: OwnerLookup;
    /// Acknowledges the current generation and returns its view, fenced
    /// if farmd's lease had passed at `now_ns` (`CLOCK_MONOTONIC`).
    fn begin(&mut self, now_ns: u64) -> Self::View;
    /// Declares the worker quiescent (before sleeping).
    fn go_offline(&mut self);
    /// Liveness stamp (CLOCK_MONOTONIC ns).
    fn stamp(&self, now_ns: u64);
    /// Publishes the frequency of the cycle counter [`Counter::BusyCycles`]
    /// counts in (once, when the loop starts). Default: nowhere.
    fn set_cycles_hz(&self, hz: u64) {
        let _ = hz;
    }
}

impl<'a> Lcore for LcoreHandle<'a> {
    type View = SlotView<'a>;
    #[inline]
    fn begin(&mut self, now_ns: u64) -> SlotView<'a> {
        LcoreHandle::begin(self, now_ns)
    }
    fn go_offline(&mut self) {
        LcoreHandle::go_offline(self)
    }
    #[inline]
    fn stamp(&self, now_ns: u64) {
        LcoreHandle::stamp(self, now_ns)
    }
    fn set_cycles_hz(&self, hz: u64) {
        LcoreHandle::set_tsc_hz(self, hz)
    }
}

/// Idle backoff settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// Never sleep (dedicated cores).
    pub busy_poll: bool,
    /// Empty polls before the first sleep.
    pub spin_polls: u32,
    /// First sleep; each further empty poll doubles it.
    pub min_sleep: Duration,
    /// Longest sleep (bounds the added latency of the first packet after
    /// an idle period).
    pub max_sleep: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            busy_poll: false,
            spin_polls: 256,
            min_sleep: Duration::from_micros(10),
            max_sleep: Duration::from_millis(1),
        }
    }
}

/// Idle backoff as a pure state machine: after `spin_polls` empty polls in
/// a row, sleep `min_sleep`, doubling up to `max_sleep` while polls stay
/// empty; any work resets it. Lets several data planes share two cores.
#[derive(Debug, Clone)]
pub struct Backoff {
    cfg: BackoffConfig,
    idle_polls: u32,
    next: Duration,
}

impl Backoff {
    /// A backoff in the "busy" state.
    pub fn new(cfg: BackoffConfig) -> Backoff {
        Backoff {
            cfg,
            idle_polls: 0,
            next: cfg.min_sleep,
        }
    }

    /// Records a poll that handled `work` frames; returns how long to sleep.
    #[inline]
    pub fn on_poll(&mut self, work: usize) -> Option<Duration> {
        if work > 0 || self.cfg.busy_poll {
            self.idle_polls = 0;
            self.next = self.cfg.min_sleep;
            return None;
        }
        self.idle_polls = self.idle_polls.saturating_add(1);
        if self.idle_polls < self.cfg.spin_polls {
            return None;
        }
        let d = self.next.min(self.cfg.max_sleep);
        self.next = (self.next * 2).min(self.cfg.max_sleep);
        Some(d)
    }
}

/// The classifier with its burst buffers. One per worker.
#[derive(Debug)]
pub struct Pipeline<B> {
    cfg: PipelineConfig,
    burst: usize,
    rx: Vec<B>,
    to_tap: Vec<B>,
    to_wire: Vec<B>,
    /// Frames dropped during a poll, freed together at its end.
    dropped: Vec<B>,
    reply: [u8; REPLY_BUF_LEN],
}

impl<B: Frame> Pipeline<B> {
    /// A pipeline receiving up to `burst` frames per port and poll.
    pub fn new(cfg: PipelineConfig, burst: usize) -> Pipeline<B> {
        let burst = burst.max(1);
        Pipeline {
            cfg,
            burst,
            rx: Vec::with_capacity(burst),
            to_tap: Vec::with_capacity(burst),
            to_wire: Vec::with_capacity(2 * burst),
            dropped: Vec::with_capacity(2 * burst),
            reply: [0; REPLY_BUF_LEN],
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PipelineConfig {
        &self.cfg
    }

    /// Replaces the configuration (between polls).
    pub fn set_config(&mut self, cfg: PipelineConfig) {
        self.cfg = cfg;
    }

    /// One poll: an rx burst on each port, classification, and tx bursts.
    /// Dropped frames (and frames a transmit queue refused) are freed in one
    /// [`Port::free`] call on the uplink at the end.
    /// Counts into `tally`; returns the number of frames received.
    pub fn run_once<U, T, L, F>(
        &mut self,
        uplink: &mut U,
        tap: &mut T,
        table: &L,
        flows: &mut F,
        tally: &mut Tally,
    ) -> usize
    where
        U: Port<Buf = B>,
        T: Port<Buf = B>,
        L: OwnerLookup,
        F: FlowTracker,
    {
        let n_up = uplink.rx_burst(&mut self.rx, self.burst);
        tally.add(Counter::Rx, n_up as u64);
        // The lease is tested once per burst: each case runs a classifier
        // compiled with the answer as a constant.
        if table.fenced() {
            self.classify_uplink(&FencedTable(table), flows, tally);
        } else {
            self.classify_uplink(&LeasedTable(table), flows, tally);
        }

        let n_tap = tap.rx_burst(&mut self.rx, self.burst);
        tally.add(Counter::TapRx, n_tap as u64);
        for mut f in self.rx.drain(..) {
            let v = classify_from_tap(&self.cfg, f.data_mut());
            tally.count(v);
            if v == Verdict::ToWire {
                self.to_wire.push(f);
            } else {
                self.dropped.push(f);
            }
        }

        if !self.to_tap.is_empty() {
            tap.tx_burst(&mut self.to_tap);
            tally.add(Counter::DropTapFull, self.to_tap.len() as u64);
            self.dropped.append(&mut self.to_tap);
        }
        if !self.to_wire.is_empty() {
            uplink.tx_burst(&mut self.to_wire);
            tally.add(Counter::DropTxFull, self.to_wire.len() as u64);
            self.dropped.append(&mut self.to_wire);
        }
        if !self.dropped.is_empty() {
            uplink.free(&mut self.dropped);
            // A port that left frames behind: drop them here, never keep them.
            self.dropped.clear();
        }
        n_up + n_tap
    }
}

impl<B: Frame> Pipeline<B> {
    /// Classifies the received uplink burst (`self.rx`) into the TAP, wire
    /// and drop lists.
    #[inline(always)]
    fn classify_uplink<L: OwnerLookup, F: FlowTracker>(
        &mut self,
        table: &L,
        flows: &mut F,
        tally: &mut Tally,
    ) {
        for mut f in self.rx.drain(..) {
            let v = classify(&self.cfg, table, flows, f.data_mut(), &mut self.reply);
            tally.count(v);
            match v {
                Verdict::ToTap(_) => self.to_tap.push(f),
                Verdict::Reply { len, .. } => {
                    if f.replace(&self.reply[..len]) {
                        self.to_wire.push(f);
                    } else {
                        tally.add(DropReason::NoBuffer.counter(), 1);
                        self.dropped.push(f);
                    }
                }
                Verdict::ToWire => self.to_wire.push(f),
                Verdict::Drop(_) => self.dropped.push(f),
            }
        }
    }
}

/// How often (in polls) a busy worker reads the clock: it refreshes its
/// liveness stamp and the time it checks farmd's lease against.
pub const STAMP_EVERY: u32 = 64;

/// The clocks and the sleep a worker uses, injected so that tests run on
/// fake time.
#[derive(Debug, Clone, Copy)]
pub struct Clocks<N, C, S> {
    /// `CLOCK_MONOTONIC` in nanoseconds: liveness stamps and the lease.
    pub now_ns: N,
    /// A cycle counter (the TSC in the data plane: `dpdk::tsc`), read twice
    /// per poll that received frames, for [`Counter::BusyCycles`].
    pub cycles: C,
    /// Ticks per second of `cycles`, published in the table so that readers
    /// turn busy cycles into time (0 = unknown, not published).
    pub cycles_hz: u64,
    /// Sleeps (idle backoff).
    pub sleep: S,
}

/// Runs [`Pipeline::run_once`] until `stop` is set: acknowledges the table
/// generation before each poll (and checks the lease against a clock
/// reading at most [`STAMP_EVERY`] polls old, refreshed after every sleep),
/// flushes counters after it, stamps liveness every [`STAMP_EVERY`] polls
/// and before sleeping, and goes offline while sleeping so the table writer
/// never waits for an idle worker. Returns the number of frames received.
///
/// Busy time: a poll that received frames adds the cycles from before its
/// rx bursts to after its transmissions and frees to [`Counter::BusyCycles`]
/// and one to [`Counter::BusyPolls`] (two reads of `clocks.cycles` per poll,
/// nothing per frame); empty polls add nothing.
#[allow(clippy::too_many_arguments)]
pub fn poll_loop<B, U, T, C, F, N, K, S>(
    pipeline: &mut Pipeline<B>,
    uplink: &mut U,
    tap: &mut T,
    lcore: &mut C,
    flows: &mut F,
    backoff: &mut Backoff,
    stop: &AtomicBool,
    clocks: Clocks<N, K, S>,
) -> u64
where
    B: Frame,
    U: Port<Buf = B>,
    T: Port<Buf = B>,
    C: Lcore,
    F: FlowTracker,
    N: FnMut() -> u64,
    K: FnMut() -> u64,
    S: FnMut(Duration),
{
    let Clocks {
        mut now_ns,
        mut cycles,
        cycles_hz,
        mut sleep,
    } = clocks;
    if cycles_hz != 0 {
        lcore.set_cycles_hz(cycles_hz);
    }
    let mut tally = Tally::new();
    let mut total = 0u64;
    let mut until_stamp = STAMP_EVERY;
    let mut now = now_ns();
    while !stop.load(Ordering::Relaxed) {
        let c0 = cycles();
        let view = lcore.begin(now);
        let n = pipeline.run_once(uplink, tap, &view, flows, &mut tally);
        drop(view);
        if n > 0 {
            total += n as u64;
            tally.add(Counter::BusyCycles, cycles().wrapping_sub(c0));
            tally.add(Counter::BusyPolls, 1);
            tally.flush_into(lcore);
        }
        until_stamp -= 1;
        if until_stamp == 0 {
            until_stamp = STAMP_EVERY;
            now = now_ns();
            lcore.stamp(now);
        }
        if let Some(d) = backoff.on_poll(n) {
            lcore.stamp(now_ns());
            lcore.go_offline();
            sleep(d);
            now = now_ns();
        }
    }
    tally.flush_into(lcore);
    lcore.go_offline();
    total
}

#[cfg(test)]
#[path = "poll_tests.rs"]
mod tests;
