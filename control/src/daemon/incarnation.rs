//! This farmd's incarnation: a number that grows with every start, even when the wall clock
//! went backwards (NTP step, a VM restored from a snapshot, a wrong RTC at boot).
//!
//! Peers reject heartbeats of an incarnation older than one they already saw (a restarted
//! node's stale datagrams), so a restart that picked a smaller number would be ignored by them
//! until they restart too. The incarnation is therefore `max(wall clock in ns, last + 1)`,
//! where `last` is kept in `<run_dir>/incarnation` (written before the first heartbeat).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The incarnation for a start at `wall_ns` after one that used `last`.
pub(super) fn next(wall_ns: u64, last: Option<u64>) -> u64 {
    wall_ns.max(last.map_or(1, |l| l.saturating_add(1)))
}

/// Picks this start's incarnation and records it in `file`. An unreadable or malformed file
/// counts as absent; a failure to write it is returned (the caller logs it: the wall clock
/// alone still gives a usable number).
pub(super) fn pick(file: &Path) -> (u64, std::io::Result<()>) {
    let wall = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
    let last = std::fs::read_to_string(file).ok().and_then(|s| s.trim().parse().ok());
    let inc = next(wall, last);
    let tmp = file.with_extension("tmp");
    let written = std::fs::write(&tmp, format!("{inc}\n")).and_then(|()| std::fs::rename(&tmp, file));
    (inc, written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_even_when_the_clock_goes_back() {
        assert_eq!(next(1000, None), 1000);
        assert_eq!(next(1000, Some(5000)), 5001, "clock stepped back");
        assert_eq!(next(9000, Some(5000)), 9000);
        assert_eq!(next(0, Some(u64::MAX)), u64::MAX);
    }

    #[test]
    fn recorded_across_starts() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("incarnation");
        std::fs::write(&f, "99999999999999999999999\n").unwrap();
        let (a, w) = pick(&f);
        w.unwrap();
        std::fs::write(&f, format!("{}\n", a + 1_000_000_000_000)).unwrap();
        let (b, w) = pick(&f);
        w.unwrap();
        assert_eq!(b, a + 1_000_000_000_001, "a future value on file wins over the clock");
        let (c, _) = pick(&f);
        assert!(c > b);
        assert_eq!(std::fs::read_to_string(&f).unwrap().trim().parse::<u64>().unwrap(), c);
    }
}
