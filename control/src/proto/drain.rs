//! The set of buckets a node still drains, as sorted runs.

use std::fmt;

/// Highest bucket count (and so bucket index bound) the wire format can carry.
pub const MAX_WIRE_BUCKETS: u32 = 65536;

/// A run of consecutive buckets `start .. start + len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Run {
    /// First bucket.
    pub start: u32,
    /// Number of buckets, at least 1.
    pub len: u32,
}

impl Run {
    /// One past the last bucket.
    pub fn end(&self) -> u32 {
        self.start + self.len
    }
}

/// Buckets a node still drains (it released them but still serves the flows it knows).
///
/// Invariants: runs sorted, non-empty, non-overlapping and non-adjacent, all below
/// [`MAX_WIRE_BUCKETS`]. A set may be *coarsened* to fit in one datagram: it then also covers
/// gaps between runs, which is safe (a peer waits longer before serving unknown flows of those
/// buckets) and never loses a draining bucket.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct DrainSet {
    runs: Vec<Run>,
}

impl fmt::Debug for DrainSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut l = f.debug_list();
        for r in &self.runs {
            if r.len == 1 {
                l.entry(&format_args!("{}", r.start));
            } else {
                l.entry(&format_args!("{}..{}", r.start, r.end()));
            }
        }
        l.finish()
    }
}

impl DrainSet {
    /// The empty set.
    pub fn new() -> DrainSet {
        DrainSet::default()
    }

    /// From bucket indices in increasing order (duplicates allowed; indices at or above
    /// [`MAX_WIRE_BUCKETS`] are ignored).
    pub fn from_sorted(buckets: impl IntoIterator<Item = u32>) -> DrainSet {
        let mut runs: Vec<Run> = Vec::new();
        for b in buckets.into_iter().filter(|&b| b < MAX_WIRE_BUCKETS) {
            match runs.last_mut() {
                Some(r) if b < r.end() => {}
                Some(r) if b == r.end() => r.len += 1,
                _ => runs.push(Run { start: b, len: 1 }),
            }
        }
        DrainSet { runs }
    }

    /// From runs; `None` unless they satisfy the invariants.
    pub fn from_runs(runs: Vec<Run>) -> Option<DrainSet> {
        let mut prev_end: Option<u32> = None;
        for r in &runs {
            if r.len == 0 || u64::from(r.start) + u64::from(r.len) > u64::from(MAX_WIRE_BUCKETS) {
                return None;
            }
            if prev_end.is_some_and(|e| r.start <= e) {
                return None; // overlapping or adjacent
            }
            prev_end = Some(r.end());
        }
        Some(DrainSet { runs })
    }

    /// The runs.
    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// True if no bucket is draining.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Number of buckets covered.
    pub fn bucket_count(&self) -> u32 {
        self.runs.iter().map(|r| r.len).sum()
    }

    /// True if `bucket` is covered.
    pub fn contains(&self, bucket: u32) -> bool {
        let i = self.runs.partition_point(|r| r.end() <= bucket);
        self.runs.get(i).is_some_and(|r| r.start <= bucket)
    }

    /// Every covered bucket, in order.
    pub fn buckets(&self) -> impl Iterator<Item = u32> + '_ {
        self.runs.iter().flat_map(|r| r.start..r.end())
    }

    /// Merges runs across the smallest gaps until at most `max_runs` remain (a superset of
    /// the original; deterministic: equal gaps merge left first). Returns true if it changed.
    pub fn coarsen(&mut self, max_runs: usize) -> bool {
        let max_runs = max_runs.max(1);
        if self.runs.len() <= max_runs {
            return false;
        }
        let merges = self.runs.len() - max_runs;
        // Gaps between consecutive runs, by (size, position): merge the `merges` smallest.
        let mut gaps: Vec<(u32, usize)> =
            self.runs.windows(2).enumerate().map(|(i, w)| (w[1].start - w[0].end(), i)).collect();
        gaps.sort_unstable();
        let mut merge_after = vec![false; self.runs.len()];
        for &(_, i) in &gaps[..merges] {
            merge_after[i] = true;
        }
        let mut out: Vec<Run> = Vec::with_capacity(max_runs);
        let mut cur = self.runs[0];
        for (i, r) in self.runs.iter().enumerate().skip(1) {
            if merge_after[i - 1] {
                cur.len = r.end() - cur.start;
            } else {
                out.push(cur);
                cur = *r;
            }
        }
        out.push(cur);
        self.runs = out;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_and_query() {
        let d = DrainSet::from_sorted([1, 2, 3, 3, 7, 9, 10, 65535, 70000]);
        assert_eq!(
            d.runs(),
            &[Run { start: 1, len: 3 }, Run { start: 7, len: 1 }, Run { start: 9, len: 2 }, Run { start: 65535, len: 1 }]
        );
        assert_eq!(d.bucket_count(), 7);
        for b in [1, 2, 3, 7, 9, 10, 65535] {
            assert!(d.contains(b), "{b}");
        }
        for b in [0, 4, 6, 8, 11, 65534] {
            assert!(!d.contains(b), "{b}");
        }
        assert_eq!(d.buckets().collect::<Vec<_>>(), vec![1, 2, 3, 7, 9, 10, 65535]);
        assert!(DrainSet::new().is_empty());
        assert!(!DrainSet::new().contains(0));
    }

    #[test]
    fn from_runs_validates() {
        assert!(DrainSet::from_runs(vec![Run { start: 0, len: 0 }]).is_none());
        assert!(DrainSet::from_runs(vec![Run { start: 65535, len: 2 }]).is_none());
        assert!(DrainSet::from_runs(vec![Run { start: 5, len: 2 }, Run { start: 7, len: 1 }]).is_none());
        assert!(DrainSet::from_runs(vec![Run { start: 5, len: 2 }, Run { start: 3, len: 1 }]).is_none());
        assert!(DrainSet::from_runs(vec![Run { start: 5, len: 2 }, Run { start: 8, len: 1 }]).is_some());
        assert!(DrainSet::from_runs(vec![Run { start: 0, len: 65536 }]).is_some());
    }

    #[test]
    fn coarsen_is_a_superset_with_few_runs() {
        // Every other bucket of 0..4096: 2048 runs.
        let orig = DrainSet::from_sorted((0..4096).step_by(2));
        assert_eq!(orig.runs().len(), 2048);
        let mut c = orig.clone();
        assert!(c.coarsen(300));
        assert!(c.runs().len() <= 300);
        assert!(orig.buckets().all(|b| c.contains(b)));
        assert!(DrainSet::from_runs(c.runs().to_vec()).is_some());
        // Uneven gaps: the small ones merge first.
        let mut d = DrainSet::from_sorted([0, 2, 100, 102, 1000]);
        d.coarsen(3);
        assert_eq!(d.runs(), &[Run { start: 0, len: 3 }, Run { start: 100, len: 3 }, Run { start: 1000, len: 1 }]);
        assert!(!d.coarsen(3));
    }
}
