//! Table rebuild + publish: weighted rendezvous assignment (`farm_control::assign`) of every
//! bucket, then `TableWriter::publish` into a real table file in /dev/shm, for 4096 and 65536
//! buckets and 2..64 nodes, equal and mixed weights. Best of 20 runs each (the machine is
//! shared and noisy). Target (DESIGN.md): ≤ 1 ms for 65536 buckets and 8 nodes.
//! Run: `cargo run --release -p farm-perf --bin bench-assign` (farm-bench runs the same cases).

use anyhow::Result;
use farm_perf::assign_bench;

fn main() -> Result<()> {
    println!("{:>8} {:>6} {:>8} {:>12} {:>12} {:>12}", "buckets", "nodes", "weights", "assign ms", "publish ms", "total ms");
    for t in assign_bench::measure(&[4096, 65536], &[2, 4, 8, 16, 32, 64], 20)? {
        println!(
            "{:>8} {:>6} {:>8} {:>12.3} {:>12.3} {:>12.3}",
            t.buckets,
            t.nodes,
            t.weights(),
            t.assign_ms,
            t.publish_ms,
            t.total_ms
        );
    }
    Ok(())
}
