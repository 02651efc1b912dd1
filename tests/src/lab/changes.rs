//! Planned changes of a running farm (issue 11): what each change should do to the buckets, and
//! when each change ran, so that a failure seen by a client or in the capture can be named by
//! the change it happened in.
//!
//! Owner of a bucket = weighted rendezvous hashing over the UP members with a weight above 0
//! (DESIGN.md, "Membership"): node `i` owns about `buckets × wᵢ / Σw`, and a change moves about
//! `Σ max(0, ideal_afterᵢ − ideal_beforeᵢ)` buckets, no more ([`ideal_moved`]).

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use super::capture::capture_time_now;
use super::error::LabError;
use super::ops::Assignment;
use super::Lab;

/// Each node's ideal bucket count: `buckets × w / Σw` over `weights` (nodes in the farm with
/// their weight in force; weight 0 = drained, ideal 0).
pub fn ideal_counts(buckets: usize, weights: &BTreeMap<usize, u16>) -> BTreeMap<usize, f64> {
    let total: f64 = weights.values().map(|w| f64::from(*w)).sum();
    weights
        .iter()
        .map(|(n, w)| (*n, if total > 0.0 { buckets as f64 * f64::from(*w) / total } else { 0.0 }))
        .collect()
}

/// The fewest buckets a change from `before` to `after` (ideal counts) can move.
pub fn ideal_moved(before: &BTreeMap<usize, f64>, after: &BTreeMap<usize, f64>) -> f64 {
    after.iter().map(|(n, a)| (a - before.get(n).copied().unwrap_or(0.0)).max(0.0)).sum()
}

/// Buckets whose owner differs between two tables.
pub fn moved(before: &[Option<usize>], after: &[Option<usize>]) -> usize {
    before.iter().zip(after).filter(|(a, b)| a != b).count()
}

/// Whether `got` is within `tolerance` (0.10: 10%) of `ideal`; an ideal of 0 needs exactly 0.
pub fn within(got: f64, ideal: f64, tolerance: f64) -> bool {
    (got - ideal).abs() <= tolerance * ideal
}

/// What one change did to the buckets, and what it should have done.
#[derive(Clone, Debug)]
pub struct BucketCheck {
    /// Buckets each node owns after the change (`buckets_owned` of its status; 0 for a node
    /// out of the farm).
    pub counts: BTreeMap<usize, usize>,
    /// The ideal counts after it.
    pub ideal: BTreeMap<usize, f64>,
    /// Buckets whose owner changed (tables before and after).
    pub moved: usize,
    /// The fewest buckets the change could move.
    pub ideal_moved: f64,
}

impl BucketCheck {
    /// What is off by more than `tolerance` (per node's count, and the count moved).
    pub fn problems(&self, tolerance: f64) -> Vec<String> {
        let mut p = Vec::new();
        for (n, ideal) in &self.ideal {
            let got = self.counts.get(n).copied().unwrap_or(0);
            if !within(got as f64, *ideal, tolerance) {
                p.push(format!("n{n} owns {got} buckets, ideal {ideal:.0} (more than {:.0}% off)", tolerance * 100.0));
            }
        }
        for (n, got) in &self.counts {
            if !self.ideal.contains_key(n) && *got != 0 {
                p.push(format!("n{n} is out of the farm but owns {got} buckets"));
            }
        }
        if !within(self.moved as f64, self.ideal_moved, tolerance) {
            p.push(format!(
                "{} buckets moved, ideal {:.0} (more than {:.0}% off)",
                self.moved,
                self.ideal_moved,
                tolerance * 100.0
            ));
        }
        p
    }
}

impl fmt::Display for BucketCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counts: Vec<String> = self
            .counts
            .iter()
            .map(|(n, c)| match self.ideal.get(n) {
                Some(i) => format!("n{n} {c} (ideal {i:.0})"),
                None => format!("n{n} {c} (out)"),
            })
            .collect();
        write!(f, "buckets {}; moved {} (ideal {:.0})", counts.join(", "), self.moved, self.ideal_moved)
    }
}

/// When a change ran.
#[derive(Clone, Debug)]
pub struct Window {
    /// What the change was.
    pub name: String,
    /// Its start.
    pub start: Instant,
    /// Its start as a capture time (wall clock).
    pub start_wall: Duration,
    /// Its end (the farm settled again), if it ended.
    pub end: Option<Instant>,
}

/// The changes of a sequence, in order.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// Every change.
    pub windows: Vec<Window>,
}

impl Timeline {
    /// Marks the start of change `name`; returns its index.
    pub fn begin(&mut self, name: &str) -> usize {
        self.windows.push(Window { name: name.to_owned(), start: Instant::now(), start_wall: capture_time_now(), end: None });
        self.windows.len() - 1
    }

    /// Marks the end of change `k`.
    pub fn end(&mut self, k: usize) {
        if let Some(w) = self.windows.get_mut(k) {
            w.end = Some(Instant::now());
        }
    }

    /// The change running at `t` (or the last one that started before it, "after ..."):
    /// `"<name> +<ms> ms"`, for failure messages.
    pub fn at(&self, t: Instant) -> String {
        match self.windows.iter().rev().find(|w| w.start <= t) {
            None => "before the changes".to_owned(),
            Some(w) => {
                let ms = t.duration_since(w.start).as_millis();
                match w.end {
                    Some(e) if e < t => format!("after {} (+{ms} ms from its start)", w.name),
                    _ => format!("during {} (+{ms} ms)", w.name),
                }
            }
        }
    }

    /// [`Timeline::at`] for a capture time.
    pub fn at_wall(&self, t: Duration) -> String {
        match self.windows.iter().rev().find(|w| w.start_wall <= t) {
            None => "before the changes".to_owned(),
            Some(w) => {
                let since = t - w.start_wall;
                let running = w.end.is_none_or(|e| w.start + since <= e);
                let how = if running { "during" } else { "after" };
                format!("{how} {} (+{} ms)", w.name, since.as_millis())
            }
        }
    }
}

impl Lab {
    /// Waits until the tables of `members` (the nodes in the farm) agree, give every bucket to
    /// one of `owners` (the members with a weight above 0), and have not changed for `stable`;
    /// returns that assignment. Handovers may still be in progress: a bucket that moved while
    /// clients kept connections open drains for as long as they live (I2: no deadline).
    pub fn wait_placed(&self, members: &[usize], owners: &[usize], stable: Duration, timeout: Duration) -> Result<Assignment, LabError> {
        let start = Instant::now();
        let mut last: Option<(Assignment, Instant)> = None;
        loop {
            let tables: Vec<Assignment> = members.iter().filter_map(|&i| self.assignment(i).ok()).collect();
            let agreed = tables.len() == members.len()
                && tables.iter().all(|t| t.owners == tables[0].owners && t.owners.iter().all(|o| o.is_some_and(|o| owners.contains(&o))));
            if agreed {
                let t = tables.into_iter().next().expect("a table");
                match &last {
                    Some((a, since)) if a.owners == t.owners => {
                        if since.elapsed() >= stable {
                            return Ok(t);
                        }
                    }
                    _ => last = Some((t, Instant::now())),
                }
            } else {
                last = None;
            }
            if start.elapsed() > timeout {
                let seen: Vec<String> = members
                    .iter()
                    .map(|&i| match self.assignment(i) {
                        Ok(a) => format!("n{i}: {:?} ({} handovers)", a.counts(), a.handovers),
                        Err(e) => format!("n{i}: {e}"),
                    })
                    .collect();
                return Err(LabError::Timeout {
                    what: format!("tables of {members:?} agreeing on owners among {owners:?}, stable for {stable:?}"),
                    after: timeout,
                    detail: seen.join("; "),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Lines of each node's module log (`R/n<i>/log/module.log`, from byte `from[i-1]` on)
    /// that contain `pattern`: node, time (as a capture time), line.
    pub fn module_log_lines(&self, from: &[u64], pattern: &str) -> Vec<(usize, Duration, String)> {
        let mut out = Vec::new();
        for i in self.layout.node_numbers() {
            let p = self.module_log(i);
            let Ok(bytes) = std::fs::read(&p) else { continue };
            let start = (from.get(i - 1).copied().unwrap_or(0) as usize).min(bytes.len());
            for line in String::from_utf8_lossy(&bytes[start..]).lines().filter(|l| l.contains(pattern)) {
                out.push((i, log_time(line).unwrap_or_default(), line.to_owned()));
            }
        }
        out.sort_by_key(|(_, t, _)| *t);
        out
    }

    /// Node `i`'s module log.
    pub fn module_log(&self, i: usize) -> std::path::PathBuf {
        self.layout.node_dir(i).join("log").join("module.log")
    }

    /// The size of every node's module log (where [`Lab::module_log_lines`] starts).
    pub fn module_log_sizes(&self) -> Vec<u64> {
        self.layout.node_numbers().map(|i| std::fs::metadata(self.module_log(i)).map_or(0, |m| m.len())).collect()
    }

    /// `buckets_owned` of node `i`'s status once it equals its count in `a` (farmd publishes
    /// the table and its status together; polled for up to 2 s), else the last one read.
    pub fn buckets_owned(&self, i: usize, a: &Assignment) -> Result<usize, LabError> {
        let want = a.owners.iter().filter(|o| **o == Some(i)).count();
        let start = Instant::now();
        loop {
            let v = self.status_json(i)?;
            let got = v["buckets_owned"].as_u64().ok_or_else(|| LabError::Check(format!("status of n{i}: no buckets_owned: {v}")))? as usize;
            if got == want || start.elapsed() > Duration::from_secs(2) {
                return Ok(got);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The time of a module log line (`2026-12-04T19:13:34.733Z ...`) as a capture time.
pub fn log_time(line: &str) -> Option<Duration> {
    let t = line.get(..24)?;
    let num = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    // Days from 1970-01-01 to y-mo-d (proleptic Gregorian; Howard Hinnant's days_from_civil).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + s;
    Some(Duration::from_millis(u64::try_from(secs * 1000 + ms).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ideal_shares_and_moves() {
        let w = |v: &[(usize, u16)]| v.iter().copied().collect::<BTreeMap<_, _>>();
        let even = ideal_counts(4096, &w(&[(1, 1), (2, 1), (3, 1)]));
        assert!((even[&1] - 1365.33).abs() < 0.01);
        let heavy = ideal_counts(4096, &w(&[(1, 3), (2, 1), (3, 1)]));
        assert!((heavy[&1] - 2457.6).abs() < 0.01);
        // n1 from 1/3 to 3/5: it takes 3/5 - 1/3 of the buckets, nobody else gains.
        assert!((ideal_moved(&even, &heavy) - 4096.0 * (0.6 - 1.0 / 3.0)).abs() < 0.01);
        // A drain: n1's share goes to the others.
        let drained = ideal_counts(4096, &w(&[(1, 0), (2, 1), (3, 1)]));
        assert_eq!(drained[&1], 0.0);
        assert!((ideal_moved(&even, &drained) - even[&1]).abs() < 0.01);
        // A node leaves (absent from the map): its buckets move.
        let two = ideal_counts(4096, &w(&[(1, 1), (3, 1)]));
        assert!((ideal_moved(&even, &two) - even[&2]).abs() < 0.01);
        assert_eq!(moved(&[Some(1), Some(2), None], &[Some(1), Some(3), Some(1)]), 2);
        assert!(within(0.0, 0.0, 0.1) && !within(1.0, 0.0, 0.1));
        assert!(within(110.0, 100.0, 0.1) && !within(111.0, 100.0, 0.1));
    }

    #[test]
    fn a_check_names_what_is_off() {
        let ideal = ideal_counts(100, &[(1, 1), (2, 1)].into_iter().collect());
        let c = BucketCheck { counts: [(1, 50), (2, 50), (3, 0)].into(), ideal: ideal.clone(), moved: 33, ideal_moved: 33.3 };
        assert!(c.problems(0.1).is_empty(), "{:?}", c.problems(0.1));
        let c = BucketCheck { counts: [(1, 60), (2, 40), (3, 1)].into(), ideal, moved: 50, ideal_moved: 33.3 };
        let p = c.problems(0.1).join("\n");
        assert!(p.contains("n1 owns 60 buckets, ideal 50"), "{p}");
        assert!(p.contains("n3 is out of the farm but owns 1"), "{p}");
        assert!(p.contains("50 buckets moved, ideal 33"), "{p}");
    }

    #[test]
    fn module_log_times() {
        assert_eq!(log_time("1970-01-01T00:00:01.500Z I x"), Some(Duration::from_millis(1500)));
        // date -d 2026-12-04T19:13:34.733Z +%s%3N
        assert_eq!(log_time("2026-12-04T19:13:34.733Z W node n2 is dead"), Some(Duration::from_millis(1_796_411_614_733)));
        assert_eq!(log_time("garbage"), None);
    }

    #[test]
    fn the_timeline_names_the_change() {
        let mut t = Timeline::default();
        let before = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        let k = t.begin("drain n3");
        std::thread::sleep(Duration::from_millis(2));
        let mid = Instant::now();
        t.end(k);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(t.at(before), "before the changes");
        assert!(t.at(mid).starts_with("during drain n3"), "{}", t.at(mid));
        assert!(t.at(Instant::now()).starts_with("after drain n3"), "{}", t.at(Instant::now()));
        assert!(t.at_wall(capture_time_now()).starts_with("after drain n3"));
    }
}
