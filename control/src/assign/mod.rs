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

mod kernel;
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
/// Cost: one 64×64→128 multiply per (member, bucket) plus one hash per bucket; with several
/// distinct weights, also one table-driven logarithm per weight class and bucket. On one
/// thread of the 2-CPU, ~2 GHz test VM, 65536 buckets take about 0.55 ms for 8 members with
/// equal weights, 1.3 ms with weights 1,3,5, 3.5 ms and 4.1 ms for 64 members: the hashes
/// alone (about 1.6 cycles per member and bucket) exceed the 3 ms goal for 64 members. So a
/// rebuild costing more than about half a millisecond (see [`PARALLEL_COST`]) is split over
/// two threads when the process may run on two CPUs or more (its affinity mask and cgroup
/// quota, read at the first call: a farmd pinned to one CPU, away from the data plane's
/// lcores, stays on one thread); [`assign_threads`] with `threads == 1` never spawns one.
pub fn assign(seed: u64, members: &[Member], out: &mut [u8]) {
    let Some(plan) = kernel::Plan::new(seed, members) else {
        out.fill(NO_NODE);
        return;
    };
    let threads = if plan.cost(out.len()) > PARALLEL_COST { cpus().min(2) } else { 1 };
    fill_parallel(&plan, out, threads);
}

/// Estimated rebuild cost (in (member, bucket) hashes; a logarithm counts as 4) above which
/// [`assign`] uses two threads: 65536 buckets × 8 equal members (~0.55 ms) stays on one.
pub const PARALLEL_COST: u64 = 65536 * 8;

/// CPUs this process may run on (read once).
fn cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// [`assign`] with the buckets split over `threads` scoped threads (0 or 1: the calling thread
/// only, no thread is spawned). Same table whatever `threads`.
pub fn assign_threads(seed: u64, members: &[Member], out: &mut [u8], threads: usize) {
    let Some(plan) = kernel::Plan::new(seed, members) else {
        out.fill(NO_NODE);
        return;
    };
    fill_parallel(&plan, out, threads);
}

fn fill_parallel(plan: &kernel::Plan, out: &mut [u8], threads: usize) {
    // Whole blocks per thread, so only the last part has a partial one.
    let per = out.len().div_ceil(threads.max(1)).next_multiple_of(kernel::BLOCK).max(kernel::BLOCK);
    if per >= out.len() {
        plan.fill(0, out);
        return;
    }
    // Parts whose thread could not be created: done here afterwards, same table.
    let mut failed = Vec::new();
    std::thread::scope(|s| {
        let mut parts = out.chunks_mut(per).enumerate();
        let mine = parts.next();
        for (i, part) in parts {
            let first = (i * per) as u32;
            let thread = std::thread::Builder::new().name("farm-assign".into());
            if thread.spawn_scoped(s, move || plan.fill(first, part)).is_err() {
                failed.push(i);
            }
        }
        if let Some((_, part)) = mine {
            plan.fill(0, part);
        }
    });
    for i in failed {
        let start = i * per;
        let end = (start + per).min(out.len());
        plan.fill(start as u32, &mut out[start..end]);
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
