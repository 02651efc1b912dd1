//! The main thread's watch over farmd's lease (DESIGN.md I1).
//!
//! The workers enforce the lease themselves, per burst ([`farm_table::LcoreHandle::begin`]);
//! this watch only tells the operator: it logs when the data plane becomes fenced (farmd
//! stopped renewing the lease: paused, killed, starved, or it gave up its buckets) and when the
//! lease is renewed again, and it ends a data plane whose farmd is gone. A fenced data plane
//! keeps delivering the flows its kernel holds but accepts no new one; once farmd (the table's
//! writer) no longer exists, nobody will ever renew the lease, so the data plane exits: a new
//! farmd starts its own (and stops a leftover one through the pid file first).

use std::path::Path;
use std::time::Duration;

/// What the watch saw at one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// The lease runs: new flows are accepted.
    Valid,
    /// The lease expired; farmd still exists (paused, busy, or it fenced us on purpose).
    Fenced,
    /// The lease expired and farmd is gone: exit.
    Orphaned,
}

/// Logs lease transitions; detects a vanished farmd.
#[derive(Debug)]
pub struct LeaseWatch {
    writer_pid: u32,
    fenced_since_ns: Option<u64>,
}

/// Whether process `pid` exists and is not a zombie (`/proc/<pid>/stat`).
pub fn process_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")) else {
        return false;
    };
    // pid (comm) state ...: comm may contain spaces and parentheses; the state follows the last ')'.
    match stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next()) {
        Some("Z" | "X" | "x") | None => false,
        Some(_) => true,
    }
}

impl LeaseWatch {
    /// A watch over the lease of the table written by `writer_pid`.
    pub fn new(writer_pid: u32) -> LeaseWatch {
        LeaseWatch { writer_pid, fenced_since_ns: None }
    }

    /// Checks the lease `until_ns` at `now_ns` (both `CLOCK_MONOTONIC`); `writer_alive` says
    /// whether farmd still exists (asked only while fenced).
    pub fn check(&mut self, until_ns: u64, now_ns: u64, writer_alive: impl FnOnce(u32) -> bool) -> LeaseState {
        if now_ns < until_ns {
            if let Some(since) = self.fenced_since_ns.take() {
                let d = Duration::from_nanos(now_ns.saturating_sub(since));
                tracing::info!(fenced_for_ms = d.as_millis() as u64, "farmd renewed the lease: accepting new flows again");
            }
            return LeaseState::Valid;
        }
        if self.fenced_since_ns.is_none() {
            self.fenced_since_ns = Some(now_ns);
            if until_ns == 0 {
                tracing::info!("no lease from farmd yet: accepting no new flows until it sets one");
            } else {
                let late = Duration::from_nanos(now_ns - until_ns);
                tracing::warn!(
                    farmd_pid = self.writer_pid,
                    expired_ms_ago = late.as_millis() as u64,
                    "farmd's lease expired (farmd paused, killed or cut off): fenced, accepting no new flows, keeping held ones"
                );
            }
        }
        if writer_alive(self.writer_pid) {
            LeaseState::Fenced
        } else {
            tracing::error!(farmd_pid = self.writer_pid, "farmd is gone and its lease expired: exiting (a new farmd starts its own data plane)");
            LeaseState::Orphaned
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        let mut w = LeaseWatch::new(7);
        assert_eq!(w.check(100, 50, |_| panic!("asked while valid")), LeaseState::Valid);
        assert_eq!(w.check(100, 100, |_| true), LeaseState::Fenced);
        assert_eq!(w.check(100, 150, |p| p == 7), LeaseState::Fenced);
        assert_eq!(w.check(300, 200, |_| false), LeaseState::Valid, "renewed");
        assert_eq!(w.check(300, 400, |_| false), LeaseState::Orphaned);
        assert_eq!(LeaseWatch::new(1).check(0, 1, |_| true), LeaseState::Fenced, "no lease yet");
    }

    #[test]
    fn liveness_of_processes() {
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(u32::MAX - 1));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // An exited, not yet reaped child is a zombie: gone.
        for _ in 0..200 {
            if !process_alive(pid) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!process_alive(pid));
        child.wait().unwrap();
    }
}
