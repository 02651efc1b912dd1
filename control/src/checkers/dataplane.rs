//! What the interface (uplink) and data-plane liveness checkers read: the data plane's region
//! of the shared-memory table, behind a trait so the checkers are testable without a table.

use std::fmt::Debug;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use farm_table::DataplaneStatus;

/// The data plane as the checkers see it.
pub trait DataplaneView: Send + Sync + Debug {
    /// The uplink's link state; `None` when no data plane has attached.
    fn link_up(&self) -> Option<bool>;
    /// Age of the newest liveness stamp; `None` when no data plane has ever stamped.
    fn liveness_age(&self) -> Option<Duration>;
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock of the data plane's liveness stamps.
pub fn monotonic_ns() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(ts) => (ts.tv_sec() as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec() as u64),
        Err(_) => 0,
    }
}

/// Age of a liveness stamp (`CLOCK_MONOTONIC` ns, 0 = never) at `now_ns`.
pub fn stamp_age(stamp_ns: u64, now_ns: u64) -> Option<Duration> {
    (stamp_ns != 0).then(|| Duration::from_nanos(now_ns.saturating_sub(stamp_ns)))
}

/// A [`DataplaneView`] over the latest snapshot farmd took with
/// `farm_table::TableWriter::dataplane()`. farmd's loop calls [`SharedDataplane::update`]
/// (e.g. every pulse); the checkers read it from their threads. The age is computed from the
/// data plane's own stamp, so it keeps growing even if updates stop.
#[derive(Clone, Debug, Default)]
pub struct SharedDataplane {
    inner: Arc<RwLock<Option<DataplaneStatus>>>,
}

impl SharedDataplane {
    /// An empty view (no data plane attached).
    pub fn new() -> SharedDataplane {
        SharedDataplane::default()
    }

    /// Stores a new snapshot.
    pub fn update(&self, status: DataplaneStatus) {
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = Some(status);
    }

    /// Forgets the snapshot (data plane stopped).
    pub fn clear(&self) {
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> Option<DataplaneStatus> {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl DataplaneView for SharedDataplane {
    fn link_up(&self) -> Option<bool> {
        let g = self.inner.read().unwrap_or_else(|p| p.into_inner());
        g.as_ref().filter(|s| s.pid != 0 || s.liveness_ns != 0).map(|s| s.link_up)
    }

    fn liveness_age(&self) -> Option<Duration> {
        let g = self.inner.read().unwrap_or_else(|p| p.into_inner());
        g.as_ref().and_then(|s| stamp_age(s.liveness_ns, monotonic_ns()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(link_up: bool, liveness_ns: u64) -> DataplaneStatus {
        DataplaneStatus { link_up, link_speed_mbps: 1000, liveness_ns, pid: 42, lcores: vec![], flows_per_bucket: vec![], lease_until_ns: 0, tsc_hz: 0 }
    }

    #[test]
    fn shared_view_reports_link_and_age() {
        let v = SharedDataplane::new();
        assert_eq!(v.link_up(), None);
        assert_eq!(v.liveness_age(), None);
        let now = monotonic_ns();
        assert!(now > 0);
        v.update(status(true, now - 5_000_000_000));
        assert_eq!(v.link_up(), Some(true));
        let age = v.liveness_age().unwrap();
        assert!(age >= Duration::from_secs(5) && age < Duration::from_secs(60), "{age:?}");
        v.update(status(false, 0));
        assert_eq!(v.link_up(), Some(false));
        assert_eq!(v.liveness_age(), None);
        v.clear();
        assert_eq!(v.link_up(), None);
    }

    #[test]
    fn stamp_age_saturates() {
        assert_eq!(stamp_age(0, 10), None);
        assert_eq!(stamp_age(10, 5), Some(Duration::ZERO));
        assert_eq!(stamp_age(1_000, 3_000), Some(Duration::from_nanos(2_000)));
    }
}
