//! Table rebuild + publish timing (DESIGN.md: ≤ 1 ms for 65536 buckets and 8 nodes), shared
//! by `bench-assign` and `farm-bench`: weighted rendezvous assignment
//! (`farm_control::assign`) of every bucket, then `TableWriter::publish` into a real table file
//! (in /dev/shm when it exists), best of several runs (the machine is shared and noisy).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use farm_control::assign::{assign, assign_threads, Member};
use farm_table::{BucketEntry, HashKey, TableParams, TableWriter};
use serde::Serialize;

/// One case: its size and best times.
#[derive(Debug, Clone, Serialize)]
pub struct AssignTiming {
    /// Buckets in the table.
    pub buckets: u32,
    /// Live members.
    pub nodes: u8,
    /// Weights 1, 3, 5, 1, 3, 5, ... (false: all 1).
    pub mixed_weights: bool,
    /// Best assignment time (ms).
    pub assign_ms: f64,
    /// Best publish time (ms).
    pub publish_ms: f64,
    /// Best total of one run (ms).
    pub total_ms: f64,
    /// Runs measured.
    pub runs: u32,
}

impl AssignTiming {
    /// "equal" or "1,3,5".
    pub fn weights(&self) -> &'static str {
        if self.mixed_weights {
            "1,3,5"
        } else {
            "equal"
        }
    }
}

/// The rebuild targets of issue 12 (65536 buckets): weights 1,3,5 on 8 nodes within 1 ms,
/// 64 nodes (equal and 1,3,5) within 3 ms.
pub const TARGETS: [(u8, bool, f64); 3] = [(8, true, 1.0), (64, false, 3.0), (64, true, 3.0)];

/// One target case, assignment only (no publish), for each way of computing it.
#[derive(Debug, Clone, Serialize)]
pub struct TargetTiming {
    /// Buckets in the table.
    pub buckets: u32,
    /// Live members.
    pub nodes: u8,
    /// Weights 1, 3, 5, 1, 3, 5, ... (false: all 1).
    pub mixed_weights: bool,
    /// The target (ms).
    pub target_ms: f64,
    /// (implementation, best time in ms, median time in ms).
    pub times: Vec<(&'static str, f64, f64)>,
    /// Runs measured per implementation.
    pub runs: u32,
}

impl TargetTiming {
    /// "equal" or "1,3,5".
    pub fn weights(&self) -> &'static str {
        if self.mixed_weights {
            "1,3,5"
        } else {
            "equal"
        }
    }
}

fn members(nodes: u8, mixed: bool) -> Vec<Member> {
    (0..nodes).map(|id| Member { id, weight: if mixed { 1 + u16::from(id % 3) * 2 } else { 1 } }).collect()
}

type AssignFn = fn(u64, &[Member], &mut [u8]);

/// The implementations compared by [`measure_targets`].
const IMPLS: [(&str, AssignFn); 2] = [("1 thread", |seed, ms, out| assign_threads(seed, ms, out, 1)), ("assign", assign)];

/// Times the [`TARGETS`] cases with every implementation, interleaved (one run of each in
/// turn, `runs` rounds) so that the machine's noise hits them alike; checks that they agree.
pub fn measure_targets(runs: u32) -> Vec<TargetTiming> {
    let buckets = 65536u32;
    let cases: Vec<Vec<Member>> = TARGETS.iter().map(|&(n, mixed, _)| members(n, mixed)).collect();
    let mut times = vec![vec![Vec::new(); IMPLS.len()]; cases.len()];
    let mut outs = vec![vec![0u8; buckets as usize]; IMPLS.len()];
    for _ in 0..runs.max(1) {
        for (ci, ms) in cases.iter().enumerate() {
            for (ii, (_, f)) in IMPLS.iter().enumerate() {
                let t = Instant::now();
                f(0x5eed, ms, &mut outs[ii]);
                times[ci][ii].push(t.elapsed());
                std::hint::black_box(&outs[ii]);
            }
            assert!(outs.iter().all(|o| *o == outs[0]), "implementations disagree");
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    TARGETS
        .iter()
        .zip(times)
        .map(|(&(nodes, mixed_weights, target_ms), per_impl)| TargetTiming {
            buckets,
            nodes,
            mixed_weights,
            target_ms,
            times: IMPLS
                .iter()
                .zip(per_impl)
                .map(|((name, _), mut t)| {
                    t.sort_unstable();
                    (*name, ms(t[0]), ms(t[t.len() / 2]))
                })
                .collect(),
            runs: runs.max(1),
        })
        .collect()
}

fn table_path(buckets: u32) -> PathBuf {
    let name = format!("farm-bench-assign-{}-{buckets}", std::process::id());
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.join(name)
    } else {
        std::env::temp_dir().join(name)
    }
}

/// Times every combination of `bucket_counts` × `node_counts` × {equal, mixed} weights.
pub fn measure(bucket_counts: &[u32], node_counts: &[u8], runs: u32) -> Result<Vec<AssignTiming>, farm_table::TableError> {
    let mut out = Vec::new();
    for &buckets in bucket_counts {
        let path = table_path(buckets);
        let params = TableParams { n_buckets: buckets, node_id: 0, n_lcores: 1, hash_key: HashKey::from_seed(1) };
        let mut w = TableWriter::create(&path, &params)?;
        let mut run_case = |nodes: u8, mixed: bool| -> Result<AssignTiming, farm_table::TableError> {
            let members = members(nodes, mixed);
            let mut owners = vec![0u8; buckets as usize];
            let mut entries = vec![BucketEntry::UNOWNED; buckets as usize];
            let (mut best_a, mut best_p, mut best_t) = (Duration::MAX, Duration::MAX, Duration::MAX);
            for _ in 0..runs.max(1) {
                let t = Instant::now();
                assign(0x5eed, &members, &mut owners);
                let a = t.elapsed();
                for (e, o) in entries.iter_mut().zip(&owners) {
                    *e = BucketEntry::owned(*o);
                }
                let t = Instant::now();
                w.publish(&entries, (1u64 << nodes.min(63)) - 1, Duration::ZERO)?;
                let p = t.elapsed();
                best_a = best_a.min(a);
                best_p = best_p.min(p);
                best_t = best_t.min(a + p);
            }
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            Ok(AssignTiming {
                buckets,
                nodes,
                mixed_weights: mixed,
                assign_ms: ms(best_a),
                publish_ms: ms(best_p),
                total_ms: ms(best_t),
                runs: runs.max(1),
            })
        };
        let mut result = Ok(());
        'cases: for &nodes in node_counts {
            for mixed in [false, true] {
                match run_case(nodes, mixed) {
                    Ok(t) => out.push(t),
                    Err(e) => {
                        result = Err(e);
                        break 'cases;
                    }
                }
            }
        }
        let _ = std::fs::remove_file(&path);
        result?;
    }
    Ok(out)
}
