//! TEMPORARY: the implementation before the rebuild was sped up (issue 12), kept callable
//! for one side-by-side benchmark run; removed in the next commit.

use farm_table::NO_NODE;

use super::score::{id_of, BucketKey, Log2Table, NodeKey, Score};
use super::Member;

/// The previous [`super::assign`] (same table, slower).
pub fn assign(seed: u64, members: &[Member], out: &mut [u8]) {
    let mut ms: Vec<Member> = members.iter().copied().filter(|m| m.weight > 0).collect();
    debug_assert!(ms.iter().all(|m| usize::from(m.id) < farm_table::MAX_NODES), "node id out of range");
    debug_assert!(
        {
            let mut ids: Vec<u8> = ms.iter().map(|m| m.id).collect();
            ids.sort_unstable();
            ids.windows(2).all(|w| w[0] != w[1])
        },
        "duplicate member ids"
    );
    if ms.is_empty() {
        out.fill(NO_NODE);
        return;
    }
    // Group by weight: within a class the largest hash wins (the log is monotone).
    ms.sort_unstable_by_key(|m| (m.weight, m.id));
    let keys: Vec<NodeKey> = ms.iter().map(|m| NodeKey::new(seed, m.id)).collect();
    let bk = BucketKey::new(seed);
    if ms.iter().all(|m| m.weight == ms[0].weight) {
        assign_equal(&bk, &keys, out);
        return;
    }
    let mut classes: Vec<(usize, usize, u16)> = Vec::new();
    let mut start = 0;
    for i in 1..=ms.len() {
        if i == ms.len() || ms[i].weight != ms[start].weight {
            classes.push((start, i, ms[start].weight));
            start = i;
        }
    }
    let logs = Log2Table::get();
    // Four buckets at a time, branch-free: which class wins is random, so a branch would be
    // mispredicted half the time, and the log's dependency chain is long.
    let mut chunks = out.chunks_exact_mut(LANES);
    let mut base = 0u32;
    for chunk in &mut chunks {
        let w: [u64; LANES] = std::array::from_fn(|j| bk.word(base + j as u32));
        let mut best = [Best::SENTINEL; LANES];
        for &(lo, hi, weight) in &classes {
            let ks = &keys[lo..hi];
            let mut m = [0u64; LANES];
            for k in ks {
                for j in 0..LANES {
                    m[j] = m[j].max(k.hash(w[j]));
                }
            }
            for j in 0..LANES {
                best[j].offer(weight, m[j], logs);
            }
        }
        for j in 0..LANES {
            chunk[j] = id_of(best[j].hash);
        }
        base += LANES as u32;
    }
    for (j, slot) in chunks.into_remainder().iter_mut().enumerate() {
        let w = bk.word(base + j as u32);
        let mut best = Best::SENTINEL;
        for &(lo, hi, weight) in &classes {
            best.offer(weight, class_max(w, &keys[lo..hi]), logs);
        }
        *slot = id_of(best.hash);
    }
}

/// Buckets computed together for instruction-level parallelism.
const LANES: usize = 4;

/// The running winner of one bucket, updated without branches.
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

/// The largest hash in a weight class (the hash embeds the id: no ties, no branches).
#[inline(always)]
fn class_max(w: u64, keys: &[NodeKey]) -> u64 {
    keys.iter().fold(0, |m, k| m.max(k.hash(w)))
}

/// All weights equal: the largest hash wins.
fn assign_equal(bk: &BucketKey, keys: &[NodeKey], out: &mut [u8]) {
    let mut chunks = out.chunks_exact_mut(LANES);
    let mut base = 0u32;
    for chunk in &mut chunks {
        let w: [u64; LANES] = std::array::from_fn(|j| bk.word(base + j as u32));
        let mut m = [0u64; LANES];
        for k in keys {
            for j in 0..LANES {
                m[j] = m[j].max(k.hash(w[j]));
            }
        }
        for j in 0..LANES {
            chunk[j] = id_of(m[j]);
        }
        base += LANES as u32;
    }
    for (j, slot) in chunks.into_remainder().iter_mut().enumerate() {
        *slot = id_of(class_max(bk.word(base + j as u32), keys));
    }
}

