//! The data plane's lease (DESIGN.md I1): farmd renews it in the table every loop iteration,
//! before any heartbeat leaves, so the lease always runs out before a peer can take this
//! node's buckets.
//!
//! A peer takes over `dead_after` after the last heartbeat it heard from this node; the lease
//! is renewed, at the latest, just before each heartbeat is sent and runs for `heartbeat.lease`
//! (at most `dead_after - pulse`, by default `dead_after - 2 × pulse`). So when farmd stops
//! (SIGSTOP, kill -9, a VM pause that spares the data plane, CPU starvation), the data plane
//! stops accepting new flows at least `dead_after - lease` before any peer starts: two pulses
//! (200 ms) at the default timers. Under `takeover = "majority"` the lease also never outlives
//! the membership's quorum lease (the heartbeats a quorum acknowledged were sent at `t`; no
//! such peer declares this node dead before `t + dead_after`; ownership is valid until
//! `t + dead_after - pulse`), so a node cut off from the majority is fenced even while farmd
//! runs. farmd does not renew the lease while a table it decided is not yet published (a
//! wedged data plane): what the data plane applies must be what the lease vouches for.

use std::time::Duration;

use crate::membership::Takeover;

/// What farmd writes into the table as the lease.
#[derive(Debug, Clone)]
pub(super) struct Lease {
    len: Duration,
    takeover: Takeover,
    /// The membership's quorum lease (membership clock); `None` = unlimited (a quorum of one).
    quorum_until: Option<Duration>,
    /// The last renewal was refused (logged once per episode).
    held_back: bool,
}

/// Why the lease was not renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HeldBack {
    /// The membership decided a table that the data plane does not run yet.
    Unpublished,
    /// No quorum acknowledges this node (majority policy).
    NoQuorum,
}

impl Lease {
    /// A lease of `len` under `takeover`; under the majority policy it starts without a quorum.
    pub(super) fn new(len: Duration, takeover: Takeover) -> Lease {
        Lease { len, takeover, quorum_until: Some(Duration::ZERO), held_back: false }
    }

    /// The membership's quorum lease changed (`Action::Lease`).
    pub(super) fn on_quorum(&mut self, until: Option<Duration>) {
        self.quorum_until = until;
    }

    /// The deadline to write at `now` (membership clock), or why none may be written.
    pub(super) fn deadline(&self, now: Duration, published: bool) -> Result<Duration, HeldBack> {
        if !published {
            return Err(HeldBack::Unpublished);
        }
        let own = now + self.len;
        match (self.takeover, self.quorum_until) {
            (Takeover::Always, _) | (Takeover::Majority, None) => Ok(own),
            (Takeover::Majority, Some(q)) if q > now => Ok(own.min(q)),
            (Takeover::Majority, Some(_)) => Err(HeldBack::NoQuorum),
        }
    }

    /// Records whether the last attempt renewed; true when this starts a held-back episode
    /// (to log it once).
    pub(super) fn note(&mut self, renewed: bool) -> bool {
        let started = !renewed && !self.held_back;
        self.held_back = !renewed;
        started
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn always_renews_for_the_full_length() {
        let l = Lease::new(800 * MS, Takeover::Always);
        assert_eq!(l.deadline(1000 * MS, true), Ok(1800 * MS));
        assert_eq!(l.deadline(1000 * MS, false), Err(HeldBack::Unpublished));
    }

    #[test]
    fn majority_never_outlives_the_quorum() {
        let mut l = Lease::new(800 * MS, Takeover::Majority);
        assert_eq!(l.deadline(10 * MS, true), Err(HeldBack::NoQuorum), "no quorum yet");
        l.on_quorum(Some(1500 * MS));
        assert_eq!(l.deadline(1000 * MS, true), Ok(1500 * MS));
        assert_eq!(l.deadline(500 * MS, true), Ok(1300 * MS));
        assert_eq!(l.deadline(1500 * MS, true), Err(HeldBack::NoQuorum));
        l.on_quorum(None);
        assert_eq!(l.deadline(5000 * MS, true), Ok(5800 * MS), "quorum of one");
    }

    #[test]
    fn held_back_episodes_are_reported_once() {
        let mut l = Lease::new(800 * MS, Takeover::Always);
        assert!(!l.note(true));
        assert!(l.note(false));
        assert!(!l.note(false));
        assert!(!l.note(true));
        assert!(l.note(false));
    }
}
