//! Rough single-core cost of `classify` on a mix of VIP traffic (no DPDK):
//! `cargo run --release -p farm-pipeline --example classify_bench`.
//! The real benchmarks live in `perf/`; this is a quick regression check.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Instant;

use farm_pipeline::*;
use farm_table::{Affinity, HashKey, DEFAULT_BUCKETS};
use farm_wire::gen::FrameBuilder;
use farm_wire::{EthernetAddress, TcpFlags};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let node = EthernetAddress([2, 0, 0, 0, 0, 1]);
    let vip: IpAddr = "198.18.0.10".parse()?;
    let rules = vec![
        Rule::new(Protocol::Tcp, PortRange::single(80), Affinity::OnAddr),
        Rule::new(Protocol::Udp, PortRange::single(53), Affinity::OnPort),
    ];
    let cfg = PipelineConfig::new(
        node,
        vec![Vip::new(vip, rules)],
        DEFAULT_BUCKETS,
        HashKey::from_seed(1),
    )?;
    let mut table = StaticTable::all_owned_by(0, 0, DEFAULT_BUCKETS);
    for (i, e) in table.entries.iter_mut().enumerate() {
        e.owner = (i % 2) as u8;
    }
    let b = FrameBuilder::new(EthernetAddress([2, 0, 0, 0, 0, 0x64]), virtual_mac(vip));
    let mut frames = Vec::new();
    for i in 0..1024u32 {
        let c = IpAddr::from([10, 1, (i >> 8) as u8, i as u8]);
        frames.push(if i % 2 == 0 {
            b.tcp(c, vip, 1024 + i as u16, 80, TcpFlags::ACK)?
        } else {
            b.udp(c, vip, 1024 + i as u16, 53, &[0; 18])?
        });
    }
    let mut reply = [0u8; REPLY_BUF_LEN];
    let rounds = 20_000;
    let start = Instant::now();
    let mut accepted = 0u64;
    for _ in 0..rounds {
        for f in frames.iter_mut() {
            let v = classify(
                &cfg,
                &table,
                &mut NoFlowTracking,
                black_box(f.as_mut_slice()),
                &mut reply,
            );
            accepted += u64::from(matches!(v, Verdict::ToTap(_)));
        }
    }
    let n = rounds as f64 * frames.len() as f64;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{:.1} ns/frame, {:.1} Mpps, accepted {:.0}%",
        secs * 1e9 / n,
        n / secs / 1e6,
        100.0 * accepted as f64 / n
    );
    Ok(())
}
