//! A worker's idle sleep: on its rx queues' interrupts where the PMDs have them (`net_tap`,
//! `net_memif`), so that a packet ends the sleep at once; a plain timed sleep otherwise
//! (`net_af_packet`, `net_af_xdp` in DPDK 22.11 have no rx interrupts).
//!
//! When every rx queue of the worker is armed, no packet waits for the end of a sleep, so the
//! backoff may sleep longer than `dataplane.max_sleep`: up to [`ARMED_MAX_SLEEP`], and never
//! more than a quarter of `dataplane.liveness_timeout` (the worker stamps its liveness after
//! each sleep, and farmd takes a stamp older than that timeout for a hung data plane). When
//! only some are armed (e.g. a TAP behind an af_packet uplink), the sleeps keep their bound and
//! wait on the armed ones: packets from the kernel wake the worker, the uplink's wait as before.

use std::time::Duration;

use dpdk::{RxInterrupts, RxQueue};

/// Longest idle sleep when every rx queue of a worker wakes it.
pub const ARMED_MAX_SLEEP: Duration = Duration::from_millis(10);

/// How many of a worker's rx queues are armed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Armed {
    /// None: timed sleeps.
    None,
    /// Some: sleeps keep their bound, the armed queues end them early.
    Some,
    /// All: sleeps may last up to [`ARMED_MAX_SLEEP`].
    All,
}

impl Armed {
    /// From the count of armed queues out of `total`.
    pub fn of(armed: usize, total: usize) -> Armed {
        match armed {
            0 => Armed::None,
            n if n >= total => Armed::All,
            _ => Armed::Some,
        }
    }

    /// The backoff's longest sleep: `max_sleep`, or longer when every queue is armed (bounded
    /// by a quarter of the liveness timeout, never below `max_sleep`).
    pub fn max_sleep(self, max_sleep: Duration, liveness_timeout: Duration) -> Duration {
        match self {
            Armed::All => ARMED_MAX_SLEEP.min(liveness_timeout / 4).max(max_sleep),
            Armed::None | Armed::Some => max_sleep,
        }
    }
}

/// The sleep of one worker (built on the worker's thread: the interrupts are per thread).
#[derive(Debug)]
pub struct IdleWait {
    intr: RxInterrupts,
    armed: Armed,
}

impl IdleWait {
    /// Arms the interrupt of each rx queue that has one (the ports must have been configured
    /// with `rx_intr`); `names` label the queues in the log.
    pub fn new(queues: &[(&str, &RxQueue)]) -> IdleWait {
        let mut intr = RxInterrupts::new();
        let mut names = Vec::new();
        for (name, q) in queues {
            match intr.add(q) {
                Ok(()) => names.push(*name),
                Err(e) => tracing::debug!(port = name, queue = q.queue_id().0, error = %e, "no rx interrupt"),
            }
        }
        let armed = Armed::of(intr.len(), queues.len());
        if armed != Armed::None {
            tracing::info!(ports = ?names, all = armed == Armed::All, "idle sleeps end on rx interrupts");
        }
        IdleWait { intr, armed }
    }

    /// How many queues are armed.
    pub fn armed(&self) -> Armed {
        self.armed
    }

    /// Sleeps up to `d`, less if an armed queue receives.
    pub fn sleep(&mut self, d: Duration) {
        if self.armed == Armed::None {
            std::thread::sleep(d);
        } else {
            self.intr.wait(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn armed_counts() {
        assert_eq!(Armed::of(0, 2), Armed::None);
        assert_eq!(Armed::of(1, 2), Armed::Some);
        assert_eq!(Armed::of(2, 2), Armed::All);
    }

    #[test]
    fn only_a_fully_armed_worker_sleeps_longer_and_never_near_the_liveness_timeout() {
        let ms = Duration::from_millis;
        assert_eq!(Armed::None.max_sleep(ms(1), ms(500)), ms(1));
        assert_eq!(Armed::Some.max_sleep(ms(1), ms(500)), ms(1));
        assert_eq!(Armed::All.max_sleep(ms(1), ms(500)), ARMED_MAX_SLEEP);
        assert_eq!(Armed::All.max_sleep(ms(1), ms(20)), ms(5), "a quarter of a short liveness timeout");
        assert_eq!(Armed::All.max_sleep(ms(50), ms(500)), ms(50), "never below max_sleep");
    }
}
