//! Cost of the keyed tuple → bucket hash (`farm_table::bucket_v4/v6`), in ns and in TSC ticks
//! per tuple. Run: `cargo run --release -p farm-perf --bin bench-hash`.

use std::hint::black_box;
use std::time::Instant;

use farm_table::{bucket_v4, bucket_v6, Affinity, HashKey};

const N: u32 = 20_000_000;

fn measure(name: &str, f: impl Fn(u32) -> u32) {
    // Warm up, then take the best of five runs (the machine is shared and noisy).
    let mut acc = 0u32;
    for i in 0..1_000_000 {
        acc = acc.wrapping_add(f(i));
    }
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for i in 0..N {
            acc = acc.wrapping_add(f(black_box(i)));
        }
        best = best.min(t.elapsed().as_secs_f64() * 1e9 / f64::from(N));
    }
    black_box(acc);
    println!("{name:<24} {best:6.2} ns/tuple  {:7.1} Mtuples/s", 1e3 / best);
}

fn main() {
    let key = HashKey::from_seed(0x5eed);
    println!("bench-hash: {N} tuples per run, best of 5 (release build)");
    measure("ipv4 on_addr", |i| bucket_v4(&key, (0xc612_0000 ^ i).to_be_bytes(), 0, Affinity::OnAddr, 4096));
    measure("ipv4 on_port", |i| {
        bucket_v4(&key, (0xc612_0000 ^ (i >> 8)).to_be_bytes(), i as u16, Affinity::OnPort, 4096)
    });
    measure("ipv6 on_addr", |i| {
        let a = (0x2001_0db8_u128 << 96 | u128::from(i)).to_be_bytes();
        bucket_v6(&key, a, 0, Affinity::OnAddr, 4096)
    });
    measure("ipv6 on_port", |i| {
        let a = (0x2001_0db8_u128 << 96 | u128::from(i >> 8)).to_be_bytes();
        bucket_v6(&key, a, i as u16, Affinity::OnPort, 4096)
    });
}
