//! Bucket assignment: who owns each bucket, given the live UP members.
//!
//! - Farm mode: weighted rendezvous hashing (HRW). For every bucket each member gets a score
//!   from a keyed 64-bit hash of (node id, bucket); the highest score owns the bucket. The
//!   weighted score is the standard `-w / ln(u)` (Schindelhauer & Schomaker), computed with
//!   integers only (see `score.rs`); the low 6 bits of each hash carry the node id, so no two
//!   nodes ever tie. The
//!   same members, weights and seed give the same table on every node, on every platform.
//!   Removing a member moves only its own buckets; adding one takes about `w / Σw` of them.
//! - Failover mode: every bucket goes to one node, the live UP member with the best (lowest)
//!   priority value; without failback the node that is active keeps everything while alive.
//!
//! These are pure functions. The membership state machine decides *when* a node may start
//! accepting the buckets this module gives it (see `membership`).

mod score;
#[cfg(test)]
mod tests;

use farm_table::NO_NODE;

use score::{id_of, BucketKey, Log2Table, NodeKey, Score};

/// A member of the assignment: a live node in state UP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Member {
    /// Node id, `0..MAX_NODES` (64).
    pub id: u8,
    /// Relative weight; 0 means "owns nothing" (the member is ignored).
    pub weight: u16,
}

/// A candidate of failover mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Candidate {
    /// Node id.
    pub id: u8,
    /// Lower is better (the config's `priority`).
    pub priority: u32,
    /// The node currently owns the buckets (reported in its heartbeats).
    pub active: bool,
}

/// Fills `out[b]` with the owner of bucket `b` for every `b` in `0..out.len()`, by weighted
/// rendezvous hashing over `members` keyed with the cluster's `seed`. Buckets get
/// [`NO_NODE`] when no member has a positive weight. Member order does not matter; ids must be
/// distinct.
///
/// Cost: one multiply per (member, bucket) plus one hash per bucket when all weights are equal;
/// with several distinct weights, one table-driven logarithm per weight class and bucket.
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

/// The owner of one bucket (same answer as [`assign`] for that bucket); for `farmctl which`.
pub fn owner_of(seed: u64, members: &[Member], bucket: u32) -> u8 {
    let bk = BucketKey::new(seed);
    let w = bk.word(bucket);
    let logs = Log2Table::get();
    let mut best: Option<Score> = None;
    for m in members.iter().filter(|m| m.weight > 0) {
        let s = Score::new(m.weight, NodeKey::new(seed, m.id).hash(w), logs);
        best = match best {
            Some(cur) if !s.beats(&cur) => Some(cur),
            _ => Some(s),
        };
    }
    best.map_or(NO_NODE, |s| id_of(s.hash))
}

/// Failover mode: the node that owns every bucket, or [`NO_NODE`] with no candidate.
/// The best (lowest) priority wins, ties to the lower id; with `failback == false` an active
/// candidate keeps the buckets (the best active one if, after a partition, several are).
pub fn failover_owner(candidates: &[Candidate], failback: bool) -> u8 {
    let key = |c: &&Candidate| (c.priority, c.id);
    let active = if failback { None } else { candidates.iter().filter(|c| c.active).min_by_key(key) };
    active.or_else(|| candidates.iter().min_by_key(key)).map_or(NO_NODE, |c| c.id)
}

/// A 64-bit digest of an owner table (FNV-1a then a finaliser), for known-answer tests and for
/// comparing tables across nodes in logs.
pub fn table_digest(owners: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &o in owners {
        h ^= u64::from(o);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    score::fmix64(h ^ owners.len() as u64)
}
