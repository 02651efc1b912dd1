//! Table rebuild + publish: weighted rendezvous assignment (`farm_control::assign`) of every
//! bucket, then `TableWriter::publish` into a real table file in /dev/shm, for 4096 and 65536
//! buckets and 2..64 nodes, equal and mixed weights. Best of 20 runs each (the machine is
//! shared and noisy). Target (DESIGN.md): ≤ 1 ms for 65536 buckets and 8 nodes.
//! First, the rebuild targets of issue 12 alone (assignment only, 65536 buckets: 8 nodes
//! weights 1,3,5 ≤ 1 ms, 64 nodes ≤ 3 ms), single-threaded and as `assign` does it (two
//! threads above `assign::PARALLEL_COST` on a machine with 2 CPUs or more), interleaved.
//! Run: `cargo run --release -p farm-perf --bin bench-assign [RUNS]` (farm-bench runs the
//! same table cases).

use anyhow::Result;
use farm_perf::assign_bench;

fn main() -> Result<()> {
    let runs = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(20);
    println!("rebuild targets, assignment only, {runs} interleaved runs: best (median) ms");
    for t in assign_bench::measure_targets(runs) {
        print!("{:>8} {:>6} {:>8}  target {:>4.1}", t.buckets, t.nodes, t.weights(), t.target_ms);
        for (name, best, median) in &t.times {
            print!("  {name} {best:.3} ({median:.3})");
        }
        println!();
    }
    println!();
    println!("{:>8} {:>6} {:>8} {:>12} {:>12} {:>12}", "buckets", "nodes", "weights", "assign ms", "publish ms", "total ms");
    for t in assign_bench::measure(&[4096, 65536], &[2, 4, 8, 16, 32, 64], runs)? {
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
