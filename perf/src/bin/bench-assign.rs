//! Table rebuild + publish: weighted rendezvous assignment (`farm_control::assign`) of every
//! bucket, then `TableWriter::publish` into a real table file in /dev/shm, for 4096 and 65536
//! buckets and 2..64 nodes, equal and mixed weights. Best of 20 runs each (the machine is
//! shared and noisy). Target (DESIGN.md): ≤ 1 ms for 65536 buckets and 8 nodes.
//! Run: `cargo run --release -p farm-perf --bin bench-assign`.

use std::time::{Duration, Instant};

use anyhow::Result;
use farm_control::assign::{assign, Member};
use farm_table::{BucketEntry, HashKey, TableParams, TableWriter};

fn main() -> Result<()> {
    println!("{:>8} {:>6} {:>8} {:>12} {:>12} {:>12}", "buckets", "nodes", "weights", "assign ms", "publish ms", "total ms");
    for buckets in [4096u32, 65536] {
        let path = std::env::temp_dir().join(format!("farm-bench-assign-{}-{buckets}", std::process::id()));
        let path = if std::path::Path::new("/dev/shm").is_dir() {
            std::path::PathBuf::from("/dev/shm").join(path.file_name().unwrap())
        } else {
            path
        };
        let params = TableParams { n_buckets: buckets, node_id: 0, n_lcores: 1, hash_key: HashKey::from_seed(1) };
        let mut w = TableWriter::create(&path, &params)?;
        for nodes in [2u8, 4, 8, 16, 32, 64] {
            for mixed in [false, true] {
                let members: Vec<Member> =
                    (0..nodes).map(|id| Member { id, weight: if mixed { 1 + u16::from(id % 3) * 2 } else { 1 } }).collect();
                let mut owners = vec![0u8; buckets as usize];
                let mut entries = vec![BucketEntry::UNOWNED; buckets as usize];
                let (mut best_a, mut best_p) = (Duration::MAX, Duration::MAX);
                for _ in 0..20 {
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
                }
                let ms = |d: Duration| d.as_secs_f64() * 1e3;
                println!(
                    "{buckets:>8} {nodes:>6} {:>8} {:>12.3} {:>12.3} {:>12.3}",
                    if mixed { "1,3,5" } else { "equal" },
                    ms(best_a),
                    ms(best_p),
                    ms(best_a + best_p)
                );
            }
        }
        let _ = std::fs::remove_file(&path);
    }
    Ok(())
}
