//! Table rebuild + publish timing (DESIGN.md: ≤ 1 ms for 65536 buckets and 8 nodes), shared
//! by `bench-assign` and `farm-bench`: weighted rendezvous assignment
//! (`farm_control::assign`) of every bucket, then `TableWriter::publish` into a real table file
//! (in /dev/shm when it exists), best of several runs (the machine is shared and noisy).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use farm_control::assign::{assign, Member};
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
            let members: Vec<Member> =
                (0..nodes).map(|id| Member { id, weight: if mixed { 1 + u16::from(id % 3) * 2 } else { 1 } }).collect();
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
