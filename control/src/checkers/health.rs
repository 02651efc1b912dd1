//! Pure decision logic of the checkers: hysteresis over observations, and the per-checker
//! status shown by the API. No threads, no clocks: observations carry their time.

use farm_config::Action;

use super::runner::Observation;
use super::{action_name, CheckerSpec};
use crate::api::CheckerStatus;

/// A change of a checker's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// `fail_after` consecutive failures: the action applies.
    Failed,
    /// `ok_after` consecutive successes, the first time since the checkers started: the
    /// checker no longer holds the node out of the farm.
    Passed,
    /// `ok_after` consecutive successes after a failure.
    Recovered,
}

/// Where a checker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Standing {
    /// Since the checkers started, neither `ok_after` successes nor `fail_after` failures in a
    /// row yet.
    Unproven,
    Healthy,
    Failed,
}

/// `fail_after` / `ok_after` hysteresis. Starts unproven: neither healthy nor failed until one
/// of the two streaks completes, so that a freshly started application counts as healthy only
/// once it has passed `ok_after` times in a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hysteresis {
    fail_after: u32,
    ok_after: u32,
    standing: Standing,
    fails: u32,
    oks: u32,
}

impl Hysteresis {
    /// An unproven tracker (both thresholds at least 1).
    pub fn new(fail_after: u32, ok_after: u32) -> Hysteresis {
        Hysteresis { fail_after: fail_after.max(1), ok_after: ok_after.max(1), standing: Standing::Unproven, fails: 0, oks: 0 }
    }

    /// Feeds one result; returns the verdict when it changes.
    pub fn observe(&mut self, ok: bool) -> Option<Verdict> {
        if ok {
            self.fails = 0;
            self.oks = self.oks.saturating_add(1);
            if self.standing != Standing::Healthy && self.oks >= self.ok_after {
                let was = std::mem::replace(&mut self.standing, Standing::Healthy);
                return Some(if was == Standing::Unproven { Verdict::Passed } else { Verdict::Recovered });
            }
        } else {
            self.oks = 0;
            self.fails = self.fails.saturating_add(1);
            if self.standing != Standing::Failed && self.fails >= self.fail_after {
                self.standing = Standing::Failed;
                return Some(Verdict::Failed);
            }
        }
        None
    }

    /// Whether the checker passed (`ok_after` in a row) and has not failed since.
    pub fn healthy(&self) -> bool {
        self.standing == Standing::Healthy
    }

    /// Whether no streak has completed yet since the tracker was created.
    pub fn unproven(&self) -> bool {
        self.standing == Standing::Unproven
    }

    /// Consecutive failures so far.
    pub fn consecutive_failures(&self) -> u32 {
        self.fails
    }

    /// Consecutive successes so far.
    pub fn consecutive_successes(&self) -> u32 {
        self.oks
    }
}

/// What the lifecycle is told when a checker's verdict changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckerEvent {
    /// The checker.
    pub name: String,
    /// Its action.
    pub action: Action,
    /// The new verdict.
    pub verdict: Verdict,
    /// The last probe's detail.
    pub detail: String,
}

#[derive(Clone, Debug)]
struct Entry {
    name: String,
    kind: &'static str,
    action: Action,
    hyst: Hysteresis,
    last_ok: Option<bool>,
    last_detail: Option<String>,
    last_run_unix_ms: Option<u64>,
    runs: u64,
    failures: u64,
}

/// The verdicts of every checker. Observations of an older epoch (sent by threads that were
/// stopped before a [`Health::reset`]) are ignored.
#[derive(Clone, Debug)]
pub struct Health {
    entries: Vec<Entry>,
    epoch: u64,
}

/// Static description of a checker, for [`Health::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckerInfo {
    /// Name.
    pub name: String,
    /// `kind`.
    pub kind: &'static str,
    /// Action.
    pub action: Action,
    /// Consecutive failures before the action.
    pub fail_after: u32,
    /// Consecutive successes before recovery.
    pub ok_after: u32,
}

impl From<&CheckerSpec> for CheckerInfo {
    fn from(s: &CheckerSpec) -> CheckerInfo {
        CheckerInfo { name: s.name.clone(), kind: s.kind, action: s.action, fail_after: s.fail_after, ok_after: s.ok_after }
    }
}

impl Health {
    /// Every checker unproven, epoch 0.
    pub fn new(checkers: impl IntoIterator<Item = CheckerInfo>) -> Health {
        let entries = checkers
            .into_iter()
            .map(|c| Entry {
                name: c.name,
                kind: c.kind,
                action: c.action,
                hyst: Hysteresis::new(c.fail_after, c.ok_after),
                last_ok: None,
                last_detail: None,
                last_run_unix_ms: None,
                runs: 0,
                failures: 0,
            })
            .collect();
        Health { entries, epoch: 0 }
    }

    /// Starts a new epoch: every checker unproven again (it must pass `ok_after` times in a
    /// row, or fail `fail_after` times), counters of consecutive results cleared (totals
    /// kept). Returns the epoch to give the new checker threads.
    pub fn reset(&mut self) -> u64 {
        self.epoch += 1;
        for e in &mut self.entries {
            e.hyst = Hysteresis::new(e.hyst.fail_after, e.hyst.ok_after);
        }
        self.epoch
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Feeds an observation; returns an event when a verdict changes.
    pub fn observe(&mut self, obs: &Observation) -> Option<CheckerEvent> {
        if obs.epoch != self.epoch {
            return None;
        }
        let e = self.entries.get_mut(obs.index)?;
        e.runs += 1;
        e.last_ok = Some(obs.result.ok);
        e.last_detail = Some(obs.result.detail.clone());
        e.last_run_unix_ms = obs.wall.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_millis() as u64);
        let verdict = e.hyst.observe(obs.result.ok)?;
        if verdict == Verdict::Failed {
            e.failures += 1;
        }
        Some(CheckerEvent { name: e.name.clone(), action: e.action, verdict, detail: obs.result.detail.clone() })
    }

    /// Whether every checker with action `wait` has passed and not failed since.
    pub fn wait_checkers_healthy(&self) -> bool {
        self.entries.iter().filter(|e| e.action == Action::Wait).all(|e| e.hyst.healthy())
    }

    /// Status for the API.
    pub fn status(&self) -> Vec<CheckerStatus> {
        self.entries
            .iter()
            .map(|e| CheckerStatus {
                name: e.name.clone(),
                kind: e.kind.to_string(),
                action: action_name(e.action).to_string(),
                healthy: e.hyst.healthy(),
                consecutive_failures: e.hyst.consecutive_failures(),
                consecutive_successes: e.hyst.consecutive_successes(),
                last_ok: e.last_ok,
                last_detail: e.last_detail.clone(),
                last_run_unix_ms: e.last_run_unix_ms,
                runs: e.runs,
                failures: e.failures,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::ProbeResult;
    use std::time::{Instant, SystemTime};

    #[test]
    fn hysteresis_needs_consecutive_results() {
        let mut h = Hysteresis::new(3, 2);
        assert!(h.unproven() && !h.healthy());
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(true), None); // streak broken
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(false), Some(Verdict::Failed));
        assert!(!h.healthy() && !h.unproven());
        assert_eq!(h.observe(false), None); // no repeat while failed
        assert_eq!(h.observe(true), None);
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(true), None);
        assert_eq!(h.observe(true), Some(Verdict::Recovered));
        assert!(h.healthy());
        assert_eq!(h.observe(true), None);
    }

    #[test]
    fn a_new_tracker_is_healthy_only_after_ok_after_successes() {
        let mut h = Hysteresis::new(3, 2);
        assert_eq!(h.observe(true), None);
        assert!(!h.healthy(), "one success of two is not enough");
        assert_eq!(h.observe(false), None); // streak broken, one failure of three
        assert_eq!(h.observe(true), None);
        assert!(h.unproven());
        assert_eq!(h.observe(true), Some(Verdict::Passed));
        assert!(h.healthy() && !h.unproven());
        assert_eq!(h.observe(true), None);
        // Failures before the first pass still count towards fail_after.
        let mut h = Hysteresis::new(2, 2);
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(false), Some(Verdict::Failed));
    }

    #[test]
    fn fail_after_one_fires_at_once() {
        let mut h = Hysteresis::new(1, 1);
        assert_eq!(h.observe(false), Some(Verdict::Failed));
        assert_eq!(h.observe(true), Some(Verdict::Recovered));
        // Zero thresholds are clamped to 1.
        let mut z = Hysteresis::new(0, 0);
        assert_eq!(z.observe(false), Some(Verdict::Failed));
        let mut z = Hysteresis::new(0, 0);
        assert_eq!(z.observe(true), Some(Verdict::Passed));
    }

    fn obs(epoch: u64, index: usize, ok: bool) -> Observation {
        Observation {
            epoch,
            index,
            result: ProbeResult { ok, detail: format!("ok={ok}") },
            at: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    #[test]
    fn health_tracks_checkers_and_ignores_old_epochs() {
        let info = |name: &str, action| CheckerInfo { name: name.into(), kind: "tcp", action, fail_after: 2, ok_after: 1 };
        let mut h = Health::new([info("app", Action::Restart), info("gw", Action::Wait)]);
        let ep = h.reset();
        assert_eq!(h.observe(&obs(ep, 1, false)), None);
        let ev = h.observe(&obs(ep, 1, false)).unwrap();
        assert_eq!((ev.name.as_str(), ev.action, ev.verdict), ("gw", Action::Wait, Verdict::Failed));
        assert!(!h.wait_checkers_healthy());
        // Stale epoch and unknown index: ignored.
        assert_eq!(h.observe(&obs(ep - 1, 0, false)), None);
        assert_eq!(h.observe(&obs(ep - 1, 0, false)), None);
        assert_eq!(h.observe(&obs(ep, 9, false)), None);
        let st = h.status();
        assert_eq!(st[0].runs, 0);
        assert_eq!(st[1].runs, 2);
        assert_eq!((st[1].healthy, st[1].failures, st[1].action.as_str()), (false, 1, "wait"));
        let ev = h.observe(&obs(ep, 1, true)).unwrap();
        assert_eq!(ev.verdict, Verdict::Recovered);
        assert!(h.wait_checkers_healthy());
        // Reset bumps the epoch.
        h.observe(&obs(ep, 0, false));
        h.observe(&obs(ep, 0, false));
        assert!(!h.status()[0].healthy);
        let ep2 = h.reset();
        assert_eq!(ep2, ep + 1);
        // Reset: unproven again (not healthy until ok_after passes), totals kept.
        assert!(h.status().iter().all(|c| !c.healthy && c.consecutive_successes == 0));
        assert!(!h.wait_checkers_healthy());
        assert_eq!(h.status()[0].failures, 1);
        let ev = h.observe(&obs(ep2, 1, true)).unwrap();
        assert_eq!((ev.name.as_str(), ev.verdict), ("gw", Verdict::Passed));
        assert!(h.wait_checkers_healthy());
    }
}
