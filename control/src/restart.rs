//! The restart policy: at most `maxloop` automatic restarts within `loop_interval`.
//!
//! With the defaults (`maxloop = 3`, `loop_interval = 24h`) the first three checker failures
//! in a day restart the module; the fourth stops it. An administrator's start resets the count.
//! Time is passed in, so the policy is tested with virtual time.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What to do with a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Restart; `count` failures (this one included) are in the window.
    Restart {
        /// Failures in the window.
        count: u32,
    },
    /// Too many failures in the window: stop the module.
    GiveUp {
        /// Failures in the window.
        count: u32,
    },
}

/// Counts failures in a sliding window.
#[derive(Clone, Debug)]
pub struct RestartPolicy {
    maxloop: u32,
    window: Duration,
    failures: VecDeque<Instant>,
}

impl RestartPolicy {
    /// A policy allowing `maxloop` restarts within `window`.
    pub fn new(maxloop: u32, window: Duration) -> RestartPolicy {
        RestartPolicy { maxloop, window, failures: VecDeque::new() }
    }

    /// The policy of a `[restart]` section.
    pub fn from_config(r: &farm_config::Restart) -> RestartPolicy {
        RestartPolicy::new(r.maxloop, r.loop_interval)
    }

    fn prune(&mut self, now: Instant) {
        while let Some(&t) = self.failures.front() {
            if now.saturating_duration_since(t) >= self.window {
                self.failures.pop_front();
            } else {
                break;
            }
        }
    }

    /// Records a failure at `now` and decides.
    pub fn record(&mut self, now: Instant) -> Decision {
        self.prune(now);
        self.failures.push_back(now);
        let count = self.failures.len() as u32;
        if count > self.maxloop {
            Decision::GiveUp { count }
        } else {
            Decision::Restart { count }
        }
    }

    /// Forgets every failure (an administrator started the module).
    pub fn reset(&mut self) {
        self.failures.clear();
    }

    /// Failures within the window ending at `now`.
    pub fn count(&self, now: Instant) -> u32 {
        self.failures.iter().filter(|&&t| now.saturating_duration_since(t) < self.window).count() as u32
    }

    /// Restarts allowed in the window.
    pub fn maxloop(&self) -> u32 {
        self.maxloop
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Duration = Duration::from_secs(3600);

    #[test]
    fn fourth_failure_in_a_day_gives_up() {
        let t0 = Instant::now();
        let mut p = RestartPolicy::from_config(&farm_config::Restart::default());
        assert_eq!(p.record(t0), Decision::Restart { count: 1 });
        assert_eq!(p.record(t0 + H), Decision::Restart { count: 2 });
        assert_eq!(p.record(t0 + 2 * H), Decision::Restart { count: 3 });
        assert_eq!(p.record(t0 + 23 * H), Decision::GiveUp { count: 4 });
    }

    #[test]
    fn old_failures_leave_the_window() {
        let t0 = Instant::now();
        let mut p = RestartPolicy::new(3, 24 * H);
        for i in 0..3 {
            assert!(matches!(p.record(t0 + i * H), Decision::Restart { .. }));
        }
        // The first failure is exactly 24 h old: out of the window.
        assert_eq!(p.record(t0 + 24 * H), Decision::Restart { count: 3 });
        assert_eq!(p.count(t0 + 24 * H), 3);
        assert_eq!(p.count(t0 + 48 * H), 0);
    }

    #[test]
    fn admin_start_resets_the_count() {
        let t0 = Instant::now();
        let mut p = RestartPolicy::new(1, H);
        assert_eq!(p.record(t0), Decision::Restart { count: 1 });
        p.reset();
        assert_eq!(p.record(t0), Decision::Restart { count: 1 });
        assert_eq!(p.record(t0), Decision::GiveUp { count: 2 });
    }

    #[test]
    fn maxloop_zero_never_restarts() {
        let mut p = RestartPolicy::new(0, H);
        assert_eq!(p.record(Instant::now()), Decision::GiveUp { count: 1 });
    }
}
