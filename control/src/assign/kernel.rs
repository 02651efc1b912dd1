//! The table rebuild proper: [`Plan`] holds what [`super::assign`] derives from the members
//! once (node keys sorted by weight, as a struct of arrays, and the weight classes);
//! [`Plan::fill`] computes the owners of a run of buckets.
//!
//! Three paths, all giving exactly the answer of the plain definition (one [`Score`] per
//! member and bucket, the best by [`Score::beats`]; `tests.rs` checks them against it):
//! - one weight class: the largest hash wins, no logarithm;
//! - several classes whose weights have a small least common multiple `M` (the usual case):
//!   `w_a / L_a > w_b / L_b` is `L_a · (M / w_a) < L_b · (M / w_b)`, so each class winner
//!   gets one integer key `L · M / w` and the smallest key wins (ties: the larger hash, as in
//!   [`Score::beats`]);
//! - otherwise the cross-multiplied comparison of [`Score::wins`].
//!
//! Speed: every (node, bucket) hash is computed for [`LANES`] buckets at a time with the
//! nodes in the inner loop (independent multiplies in flight, branch-free `max`). With
//! several classes, a block of [`BLOCK`] buckets first gets every class's largest hash, then
//! a second loop turns them into keys and picks the winner: the logarithms of different
//! buckets then overlap instead of waiting on that bucket's hashes.

use super::score::{id_of, BucketKey, Log2Table, NodeKey, Score};
use super::Member;

/// Buckets computed together for instruction-level parallelism.
pub(super) const LANES: usize = 4;

/// Buckets whose class winners are computed before their keys are compared (a multiple of
/// [`LANES`]).
pub(super) const BLOCK: usize = 64;

/// Largest least common multiple of the weights for single-key comparison: `L ≤ 64 · 2^32`,
/// so `L · M / w ≤ 2^38 · 2^25 < 2^64`.
const MAX_LCM: u64 = 1 << 25;

/// The largest hash of `keys` for each of `LANES` bucket words.
#[inline(always)]
fn max_lanes(keys: &[NodeKey], w: &[u64; LANES]) -> [u64; LANES] {
    let mut m = [0u64; LANES];
    for k in keys {
        for j in 0..LANES {
            m[j] = m[j].max(k.hash(w[j]));
        }
    }
    m
}

/// The largest hash of `keys` for one bucket word.
#[inline(always)]
fn max_one(keys: &[NodeKey], w: u64) -> u64 {
    keys.iter().fold(0, |m, k| m.max(k.hash(w)))
}

/// Nodes `lo..hi` of [`Plan::keys`] have weight `weight`; `factor` is `M / weight` (single-key
/// path only).
#[derive(Clone, Copy, Debug)]
struct Class {
    lo: usize,
    hi: usize,
    weight: u16,
    factor: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    Equal,
    Keyed,
    Cross,
}

/// Everything [`Plan::fill`] needs, derived once per rebuild.
#[derive(Debug)]
pub(super) struct Plan {
    bk: BucketKey,
    /// Sorted by weight, then id.
    keys: Vec<NodeKey>,
    classes: Vec<Class>,
    path: Path,
    logs: Log2Table,
}

impl Plan {
    /// `None` if no member has a positive weight.
    pub(super) fn new(seed: u64, members: &[Member]) -> Option<Plan> {
        let mut ms: Vec<Member> = members.iter().copied().filter(|m| m.weight > 0).collect();
        debug_assert!(ms.iter().all(|m| usize::from(m.id) < farm_table::MAX_NODES), "node id out of range");
        if ms.is_empty() {
            return None;
        }
        // Group by weight: within a class the largest hash wins (the log is monotone).
        debug_assert!(
            {
                let mut ids: Vec<u8> = ms.iter().map(|m| m.id).collect();
                ids.sort_unstable();
                ids.windows(2).all(|w| w[0] != w[1])
            },
            "duplicate member ids"
        );
        ms.sort_unstable_by_key(|m| (m.weight, m.id));
        let keys: Vec<NodeKey> = ms.iter().map(|m| NodeKey::new(seed, m.id)).collect();
        let mut classes = Vec::new();
        let mut start = 0;
        for i in 1..=ms.len() {
            if i == ms.len() || ms[i].weight != ms[start].weight {
                classes.push(Class { lo: start, hi: i, weight: ms[start].weight, factor: 0 });
                start = i;
            }
        }
        let lcm = classes.iter().try_fold(1u64, |l, c| {
            let w = u64::from(c.weight);
            let l = l / gcd(l, w) * w;
            (l <= MAX_LCM).then_some(l)
        });
        let path = match lcm {
            _ if classes.len() == 1 => Path::Equal,
            Some(lcm) => {
                for c in &mut classes {
                    c.factor = lcm / u64::from(c.weight);
                }
                Path::Keyed
            }
            None => Path::Cross,
        };
        Some(Plan { bk: BucketKey::new(seed), keys, classes, path, logs: Log2Table::get() })
    }

    /// Estimated cost of filling `buckets` buckets, in (member, bucket) hashes (a logarithm
    /// costs about 4 of them).
    pub(super) fn cost(&self, buckets: usize) -> u64 {
        let logs = if self.path == Path::Equal { 0 } else { 4 * self.classes.len() };
        buckets as u64 * (self.keys.len() + logs) as u64
    }

    /// Owners of buckets `first..first + out.len()`.
    pub(super) fn fill(&self, first: u32, out: &mut [u8]) {
        match self.path {
            Path::Equal => fill_equal(self.bk, &self.keys, first, out),
            Path::Keyed => {
                let mut winners = vec![0u64; self.classes.len() * BLOCK];
                for (i, block) in out.chunks_mut(BLOCK).enumerate() {
                    self.fill_keyed(first + (i * BLOCK) as u32, block, &mut winners);
                }
            }
            Path::Cross => self.fill_cross(first, out),
        }
    }

    fn words(&self, base: u32) -> [u64; LANES] {
        std::array::from_fn(|j| self.bk.word(base + j as u32))
    }

    /// At most [`BLOCK`] buckets from `first`: every class's winner for all of them
    /// (`winners`, class-major), then the keys and the overall winner of each bucket.
    fn fill_keyed(&self, first: u32, out: &mut [u8], winners: &mut [u64]) {
        debug_assert!(out.len() <= BLOCK);
        let len = out.len();
        let whole = len - len % LANES;
        let mut w = [0u64; BLOCK];
        for (j, wj) in w[..len].iter_mut().enumerate() {
            *wj = self.bk.word(first + j as u32);
        }
        for (class, h) in self.classes.iter().zip(winners.chunks_exact_mut(BLOCK)) {
            let keys = &self.keys[class.lo..class.hi];
            for (wc, hc) in w[..whole].chunks_exact(LANES).zip(h.chunks_exact_mut(LANES)) {
                let wc: &[u64; LANES] = wc.try_into().expect("LANES words");
                hc.copy_from_slice(&max_lanes(keys, wc));
            }
            for (hj, &wj) in h[whole..len].iter_mut().zip(&w[whole..len]) {
                *hj = max_one(keys, wj);
            }
        }
        let (first_class, rest) = self.classes.split_first().expect("two classes or more");
        for (b, slot) in out.iter_mut().enumerate() {
            let mut best = winners[b];
            let mut best_key = self.logs.neg_log2(best) * first_class.factor;
            for (k, class) in rest.iter().enumerate() {
                let h = winners[(k + 1) * BLOCK + b];
                let key = self.logs.neg_log2(h) * class.factor;
                if key == best_key {
                    // Equal scores: the larger hash wins (rare; a branch that is predicted).
                    best = best.max(h);
                    continue;
                }
                let take = key < best_key;
                best_key = if take { key } else { best_key };
                best = if take { h } else { best };
            }
            *slot = id_of(best);
        }
    }

    /// Weights whose lcm is too large for one key: cross-multiplied comparisons.
    fn fill_cross(&self, first: u32, out: &mut [u8]) {
        let mut chunks = out.chunks_exact_mut(LANES);
        let mut base = first;
        for chunk in &mut chunks {
            let w = self.words(base);
            let mut best = [Best::SENTINEL; LANES];
            for class in &self.classes {
                let m = max_lanes(&self.keys[class.lo..class.hi], &w);
                for j in 0..LANES {
                    best[j].offer(class.weight, m[j], self.logs);
                }
            }
            for (slot, b) in chunk.iter_mut().zip(best) {
                *slot = id_of(b.hash);
            }
            base += LANES as u32;
        }
        for (j, slot) in chunks.into_remainder().iter_mut().enumerate() {
            let w = self.bk.word(base + j as u32);
            let mut best = Best::SENTINEL;
            for class in &self.classes {
                best.offer(class.weight, max_one(&self.keys[class.lo..class.hi], w), self.logs);
            }
            *slot = id_of(best.hash);
        }
    }
}

/// One class: the largest hash wins.
fn fill_equal(bk: BucketKey, keys: &[NodeKey], first: u32, out: &mut [u8]) {
    let mut chunks = out.chunks_exact_mut(LANES);
    let mut base = first;
    for chunk in &mut chunks {
        let w: [u64; LANES] = std::array::from_fn(|j| bk.word(base + j as u32));
        for (slot, h) in chunk.iter_mut().zip(max_lanes(keys, &w)) {
            *slot = id_of(h);
        }
        base += LANES as u32;
    }
    for (j, slot) in chunks.into_remainder().iter_mut().enumerate() {
        *slot = id_of(max_one(keys, bk.word(base + j as u32)));
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The running winner of one bucket (cross-multiplied path), updated without branches.
#[derive(Clone, Copy)]
struct Best {
    weight: u64,
    log: u64,
    hash: u64,
}

impl Best {
    /// Weight 0: every class beats it.
    const SENTINEL: Best = Best { weight: 0, log: 1, hash: 0 };

    #[inline(always)]
    fn offer(&mut self, weight: u16, hash: u64, logs: Log2Table) {
        let log = logs.neg_log2(hash);
        let take = Score::wins(weight, log, hash, self.weight as u16, self.log, self.hash);
        let mask = 0u64.wrapping_sub(u64::from(take));
        self.weight = (u64::from(weight) & mask) | (self.weight & !mask);
        self.log = (log & mask) | (self.log & !mask);
        self.hash = (hash & mask) | (self.hash & !mask);
    }
}
