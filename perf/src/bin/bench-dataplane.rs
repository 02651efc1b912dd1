//! Data-plane benchmarks (issue: classifier cost, whole loop on `net_null`).
//!
//! Prints, side by side in one run:
//! 1. the classifier alone on a realistic mix of frames: ns and TSC cycles per frame;
//! 2. the whole poll loop (rx burst → classify → tx/free, counters, table protocol) on a
//!    `net_null` uplink with one worker lcore, busy polling: Mpps;
//! 3. a bare loop on the same kind of port doing rx + tuple hash + bulk free: Mpps — the
//!    ceiling of this machine for any DPDK program; and the floor (part `floor`): the pipeline's
//!    two ports and port adapters, every frame received transmitted, no classification — the
//!    ceiling of the pipeline loop on these ports (its transmissions cost `net_null` a
//!    per-packet free, which the bare loop's bulk free does not pay);
//! 4. the cost of the lease check (DESIGN.md I1): the pipeline loop with the lease checked per
//!    burst and per packet (as the data plane runs) and without it (a view that can never be
//!    fenced), interleaved rounds, TSC cycles per frame of each and their difference;
//! 5. the cost of flow knowledge (DESIGN.md I2, "100k held flows >= 0.9x none"): the pipeline
//!    loop on a table where every bucket is being handed over to or from this node (so every
//!    non-SYN VIP frame asks `is_known`), with the workers' snapshot holding 100k flows vs none,
//!    interleaved rounds, TSC cycles per frame and the ratio.
//!
//! `net_null` hands out mbufs without writing them; the pool's buffers are pre-filled with the
//! mix, so the loop classifies real frames. Run as root:
//! `cargo run --release -p farm-perf --bin bench-dataplane [seconds] [all|classifier|pipeline|floor|bare|lease|flows]`
//! (the second argument runs one part alone, e.g. under `perf record` or callgrind; `floor` runs
//! the pipeline's I/O without classification: the pipeline's ceiling on these ports).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use dpdk::{
    Eal, LcoreId, Mbuf, MbufBurst, Mempool, MempoolConfig, Port, PortConfig, QueueId, RxQueue,
};
use farm_dataplane::flows::{LcoreFlows, Refresher};
use farm_dataplane::port::{Pkt, QueuePair};
use farm_pipeline::{
    classify, poll_loop, Backoff, BackoffConfig, NoFlowTracking, Pipeline, PipelineConfig,
    PortRange, Protocol, Rule, Tally, Vip, REPLY_BUF_LEN,
};
use farm_table::{
    bucket_v4, Affinity, BucketEntry, Counter, HashKey, TableParams, TableReader, TableWriter,
};
use farm_wire::gen::FrameBuilder;
use farm_wire::{EthernetAddress, TcpFlags};

const NODE_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const BUCKETS: u32 = 4096;

fn pipeline_config() -> PipelineConfig {
    let vips = vec![Vip::new(
        IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100)),
        vec![
            Rule::new(Protocol::Tcp, PortRange::single(80), Affinity::OnAddr),
            Rule::new(
                Protocol::Udp,
                PortRange {
                    first: 5000,
                    last: 5100,
                },
                Affinity::OnPort,
            ),
        ],
    )];
    PipelineConfig::new(NODE_MAC, vips, BUCKETS, HashKey::from_seed(1)).expect("config")
}

/// The mix: 60% TCP to the VIP (data and SYNs, from 1024 clients), 20% UDP on_port to the VIP,
/// 5% ARP requests for the VIP, 5% frames for the node itself, 10% flooded unicast.
fn mix() -> Vec<Vec<u8>> {
    let cm = EthernetAddress([2, 0, 0, 0, 0, 0xc1]);
    let vip = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100));
    let to_vip = FrameBuilder::new(cm, farm_pipeline::virtual_mac(vip));
    let mut out = Vec::new();
    for i in 0..1024u32 {
        let c = IpAddr::V4(Ipv4Addr::from(0xc612_0100 + i));
        let f = match i % 20 {
            0..=10 => to_vip.tcp(c, vip, 40000 + i as u16, 80, TcpFlags::ACK),
            11 | 12 => to_vip.tcp(c, vip, 40000 + i as u16, 80, TcpFlags::SYN),
            13..=16 => to_vip.udp(c, vip, 1024 + i as u16, 5000, b"x"),
            17 => FrameBuilder::new(cm, EthernetAddress([0xff; 6])).arp_request(
                Ipv4Addr::from(0xc612_0100 + i),
                Ipv4Addr::new(198, 18, 0, 100),
            ),
            18 => to_vip.to_mac(NODE_MAC).udp(
                c,
                IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
                4790,
                4790,
                b"hb",
            ),
            _ => to_vip.to_mac(EthernetAddress([2, 0, 0, 0, 0, 0x99])).udp(
                c,
                IpAddr::V4(Ipv4Addr::new(198, 18, 0, 9)),
                1,
                2,
                b"x",
            ),
        };
        out.push(f.expect("frame"));
    }
    out
}

/// The benchmarks' table: every bucket owned by node `b % 3` (node 0 is this one).
fn table(path: &std::path::Path) -> Result<(TableWriter, TableReader)> {
    let e: Vec<BucketEntry> = (0..BUCKETS)
        .map(|b| BucketEntry::owned((b % 3) as u8))
        .collect();
    table_with(path, &e, 0b111)
}

/// A table for node 0 with `entries`, published, under a lease that never runs out (no farmd
/// behind the benchmark).
fn table_with(
    path: &std::path::Path,
    entries: &[BucketEntry],
    live: u64,
) -> Result<(TableWriter, TableReader)> {
    let p = TableParams {
        n_buckets: BUCKETS,
        node_id: 0,
        n_lcores: 2,
        hash_key: HashKey::from_seed(1),
    };
    let mut w = TableWriter::create(path, &p)?;
    w.publish(entries, live, Duration::ZERO)?;
    w.set_lease(u64::MAX);
    let r = TableReader::open(path)?;
    Ok((w, r))
}

fn classifier_alone(reader: &TableReader) -> Result<()> {
    let cfg = pipeline_config();
    let mut frames = mix();
    let dsts: Vec<[u8; 6]> = frames.iter().map(|f| f[..6].try_into().unwrap()).collect();
    let mut lc = reader.lcore(1)?;
    let view = lc.begin(0);
    let mut reply = [0u8; REPLY_BUF_LEN];
    let mut tally = Tally::new();
    let rounds = 20_000usize;
    let (t0, c0) = (Timer::start(), dpdk::tsc());
    for _ in 0..rounds {
        for (f, d) in frames.iter_mut().zip(&dsts) {
            let v = classify(&cfg, &view, &mut NoFlowTracking, f, &mut reply);
            tally.count(v);
            f[..6].copy_from_slice(d);
        }
    }
    let cycles = dpdk::tsc() - c0;
    let el = t0.stop();
    let n = (rounds * frames.len()) as f64;
    let ns = el.wall.as_secs_f64() * 1e9 / n;
    let cycles = cycles as f64 / n;
    let on_cpu = match el.cpu {
        Some(cpu) => format!("  ({:.1} ns/frame on CPU)", cpu.as_secs_f64() * 1e9 / n),
        None => String::new(),
    };
    println!(
        "classifier alone (realistic mix, {} frames):  {ns:6.1} ns/frame  {cycles:6.1} TSC cycles/frame{on_cpu}",
        frames.len()
    );
    std::hint::black_box(tally);
    Ok(())
}

fn prefill(pool: &Mempool, frames: &[Vec<u8>]) {
    let mut held: Vec<Mbuf> = Vec::new();
    while let Some(mut m) = pool.alloc() {
        let f = &frames[held.len() % frames.len()];
        if m.extend_from_slice(&f[..f.len().min(64)]).is_err() {
            break;
        }
        held.push(m);
    }
}

fn main() -> Result<()> {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let only = std::env::args().nth(2).unwrap_or_else(|| "all".into());
    let run = |part: &str| only == "all" || only == part;
    anyhow::ensure!(
        ["all", "classifier", "pipeline", "bare", "floor", "lease", "flows"].contains(&only.as_str()),
        "unknown part {only:?}: expected all, classifier, pipeline, bare, lease, flows or floor"
    );
    let shm = std::path::PathBuf::from(format!("/dev/shm/farm-bench-{}", std::process::id()));
    let (_w, reader) = table(&shm)?;
    let reader: &'static TableReader = Box::leak(Box::new(reader));
    if run("classifier") {
        classifier_alone(reader)?;
    }
    if !run("pipeline") && !run("bare") && !run("floor") && !run("lease") && !run("flows") {
        let _ = std::fs::remove_file(&shm);
        return Ok(());
    }

    let eal = Eal::builder()
        .program("bench-dataplane")
        .no_huge()
        .no_shconf()
        .no_pci()
        .memory_mb(512)
        .file_prefix(&format!("farm-bench-{}", std::process::id()))
        .lcore_map("0@(0-1),1@(0-1)")
        .vdev("net_null0,size=64,copy=0")
        .vdev("net_null1,size=64,copy=0")
        .vdev("net_null2,size=64,copy=0")
        .init()
        .context("EAL (run as root)")?;
    let pool = Mempool::new(
        &eal,
        "bench",
        &MempoolConfig {
            size: 16383,
            cache_size: 256,
            ..MempoolConfig::default()
        },
    )?;
    prefill(&pool, &mix());
    let mut ports = Vec::new();
    for name in ["net_null0", "net_null1", "net_null2"] {
        let mut p = Port::open(&eal, name)?;
        p.configure(&PortConfig::default(), &pool)?;
        p.start()?;
        ports.push(p);
    }
    let worker = eal.worker_lcores()[0];
    let q = QueueId(0);

    let pipeline_mpps = if run("pipeline") {
        let up = QueuePair::new(ports[0].rx_queue(q)?, ports[0].tx_queue(q)?);
        let tap = QueuePair::new(ports[1].rx_queue(q)?, ports[1].tx_queue(q)?);
        Some(pipeline_loop(&eal, worker, reader, up, tap, secs)?)
    } else {
        None
    };
    let floor_mpps = if run("floor") {
        let up = QueuePair::new(ports[0].rx_queue(q)?, ports[0].tx_queue(q)?);
        let tap = QueuePair::new(ports[1].rx_queue(q)?, ports[1].tx_queue(q)?);
        Some(floor_loop(&eal, worker, up, tap, secs)?)
    } else {
        None
    };
    let bare_mpps = if run("bare") {
        Some(bare_loop(&eal, worker, ports[2].rx_queue(q)?, secs)?)
    } else {
        None
    };
    if let (Some(p), Some(b)) = (pipeline_mpps, bare_mpps) {
        println!(
            "ratio pipeline / bare:                        {:6.2}",
            p / b
        );
    }
    if let (Some(f), Some(b)) = (floor_mpps, bare_mpps) {
        // What the port adapters and transmissions alone leave of the bare loop's rate: the
        // pipeline's ceiling on this bench.
        println!(
            "ratio floor / bare:                           {:6.2}",
            f / b
        );
    }
    if run("lease") {
        lease_cost(&eal, worker, reader, &ports, secs)?;
    }
    if run("flows") {
        let shm_h = std::path::PathBuf::from(format!("/dev/shm/farm-bench-h-{}", std::process::id()));
        let r = flows_cost(&eal, worker, &shm_h, &ports, secs);
        let _ = std::fs::remove_file(&shm_h);
        r?;
    }
    let _ = std::fs::remove_file(&shm);
    Ok(())
}

/// Part 2, the whole loop: `poll_loop` on two `net_null` ports (uplink and TAP), busy
/// polling. Prints Mpps (uplink and TAP frames) and the verdicts the loop saw.
fn pipeline_loop(
    eal: &Eal,
    worker: LcoreId,
    reader: &'static TableReader,
    up: QueuePair,
    tap: QueuePair,
    secs: u64,
) -> Result<f64> {
    let (_refresher, shared) = Refresher::new();
    let r = run_loop(eal, worker, reader.lcore(0)?, LcoreFlows::new(shared), up, tap, secs)?;
    let mpps = r.elapsed.mpps(r.frames);
    println!(
        "farm pipeline loop, net_null, 1 lcore:        {mpps:6.2} Mpps  {}",
        r.elapsed.detail(r.frames)
    );
    // The loop's own busy-time accounting (table counters busy_cycles / busy_polls).
    let (busy, polls) = (r.lcore.get(Counter::BusyCycles), r.lcore.get(Counter::BusyPolls));
    // Wall-clock cycles: a poll preempted by another process counts its time off the CPU too;
    // scaled by the share of the time the worker ran, as `cycles_per_frame` does.
    let on_cpu = match r.elapsed.cpu {
        Some(cpu) if !r.elapsed.wall.is_zero() => (cpu.as_secs_f64() / r.elapsed.wall.as_secs_f64()).min(1.0),
        _ => 1.0,
    };
    let per_frame = busy as f64 / r.frames.max(1) as f64;
    println!(
        "  busy_cycles: {per_frame:.1} TSC cycles per frame ({:.1} scaled to the time on a CPU) over {polls} busy polls ({:.1} frames per poll; TSC {:.2} GHz)",
        per_frame * on_cpu,
        r.frames as f64 / polls.max(1) as f64,
        dpdk::tsc_hz() as f64 / 1e9
    );
    println!("  frames seen (uplink + TAP): {}", verdict_shares(&r.lcore));
    Ok(mpps)
}

/// What one timed run of `poll_loop` measured; `lcore` is handed back for its counters.
struct LoopRun<L> {
    frames: u64,
    cycles: u64,
    elapsed: Elapsed,
    lcore: L,
}

impl<L> LoopRun<L> {
    /// TSC cycles per frame while the worker was on a CPU: the wall-clock cycles scaled by
    /// the share of the time it ran (`/proc/thread-self/schedstat`), so that preemption by
    /// other processes does not count.
    fn cycles_per_frame(&self) -> f64 {
        let on_cpu = match self.elapsed.cpu {
            Some(cpu) if !self.elapsed.wall.is_zero() => (cpu.as_secs_f64() / self.elapsed.wall.as_secs_f64()).min(1.0),
            _ => 1.0,
        };
        self.cycles as f64 * on_cpu / self.frames.max(1) as f64
    }
}

/// Runs `poll_loop` with `lc` and `flows` on the null ports, busy polling, for `secs`.
fn run_loop<L, F>(
    eal: &Eal,
    worker: LcoreId,
    mut lc: L,
    mut flows: F,
    mut up: QueuePair,
    mut tap: QueuePair,
    secs: u64,
) -> Result<LoopRun<L>>
where
    L: farm_pipeline::Lcore + Send + 'static,
    F: farm_pipeline::FlowTracker + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = Arc::clone(&stop);
    let h = eal.launch(worker, move || {
        let mut p: Pipeline<Pkt> = Pipeline::new(pipeline_config(), 32);
        let mut b = Backoff::new(BackoffConfig {
            busy_poll: true,
            ..BackoffConfig::default()
        });
        let (t, c0) = (Timer::start(), dpdk::tsc());
        let frames = poll_loop(
            &mut p,
            &mut up,
            &mut tap,
            &mut lc,
            &mut flows,
            &mut b,
            &s2,
            farm_pipeline::Clocks {
                now_ns: farm_dataplane::run::now_ns,
                cycles: dpdk::tsc,
                cycles_hz: dpdk::tsc_hz(),
                sleep: |_| {},
            },
        );
        let cycles = dpdk::tsc() - c0;
        LoopRun {
            frames,
            cycles,
            elapsed: t.stop(),
            lcore: lc,
        }
    })?;
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    h.join().map_err(|_| anyhow::anyhow!("worker panicked"))
}

/// The verdicts a worker counted, as shares of the frames it received.
fn verdict_shares(lc: &farm_table::LcoreHandle<'_>) -> String {
    let seen: Vec<(Counter, u64)> = Counter::ALL
        .iter()
        .filter(|c| c.counts_frames())
        .map(|&c| (c, lc.get(c)))
        .filter(|&(_, v)| v != 0)
        .collect();
    let rx: u64 = seen
        .iter()
        .filter(|(c, _)| matches!(c, Counter::Rx | Counter::TapRx))
        .map(|&(_, v)| v)
        .sum();
    let shares: Vec<String> = seen
        .iter()
        .filter(|(c, _)| !matches!(c, Counter::Rx | Counter::TapRx))
        .map(|&(c, v)| format!("{} {:.0}%", c.name(), 100.0 * v as f64 / rx.max(1) as f64))
        .collect();
    shares.join(", ")
}

/// Median and range ("lo-hi") of cycles-per-frame samples.
fn median_range(mut v: Vec<f64>) -> (f64, String) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], format!("{:.1}-{:.1}", v[0], v[v.len() - 1]))
}

/// A worker's table access without the lease: `begin_unleased`, and a view whose `fenced()` is
/// the trait's constant `false`, so the compiled loop has neither the lease's load nor the
/// per-burst test. The baseline of part 4.
struct Unleased(farm_table::LcoreHandle<'static>);

impl farm_pipeline::CounterSink for Unleased {
    #[inline]
    fn add(&self, c: Counter, n: u64) {
        self.0.add(c, n)
    }
}

impl farm_pipeline::Lcore for Unleased {
    type View = farm_pipeline::LeasedTable<farm_table::SlotView<'static>>;
    #[inline]
    fn begin(&mut self, _now_ns: u64) -> Self::View {
        farm_pipeline::LeasedTable(self.0.begin_unleased())
    }
    fn go_offline(&mut self) {
        self.0.go_offline()
    }
    #[inline]
    fn stamp(&self, now_ns: u64) {
        self.0.stamp(now_ns)
    }
}

/// Part 4: the lease check's cost: the loop with the check and without it in adjacent pairs
/// of rounds (10 pairs, the order alternating), cycles per frame while on a CPU. The figure is
/// the median of the pairs' differences, which a slow drift of the machine's speed does not
/// bias; the medians and ranges of each side show how noisy the machine was.
fn lease_cost(
    eal: &Eal,
    worker: LcoreId,
    reader: &'static TableReader,
    ports: &[Port],
    secs: u64,
) -> Result<()> {
    let q = QueueId(0);
    let (mut with, mut without, mut diffs) = (Vec::new(), Vec::new(), Vec::new());
    for pair in 0..10 {
        let mut w = 0.0;
        let mut o = 0.0;
        for leased in [pair % 2 == 0, pair % 2 == 1] {
            let up = QueuePair::new(ports[0].rx_queue(q)?, ports[0].tx_queue(q)?);
            let tap = QueuePair::new(ports[1].rx_queue(q)?, ports[1].tx_queue(q)?);
            if leased {
                w = run_loop(eal, worker, reader.lcore(0)?, NoFlowTracking, up, tap, secs)?.cycles_per_frame();
            } else {
                o = run_loop(eal, worker, Unleased(reader.lcore(0)?), NoFlowTracking, up, tap, secs)?
                    .cycles_per_frame();
            }
        }
        with.push(w);
        without.push(o);
        diffs.push(w - o);
    }
    let ((mw, rw), (mo, ro), (md, rd)) = (median_range(with), median_range(without), median_range(diffs));
    println!(
        "lease check, pipeline loop on net_null:       {md:+.2} cycles/frame (median of 10 paired differences, {rd}; target <= 1); with {mw:6.2} ({rw}), without {mo:6.2} ({ro})"
    );
    // The check itself, without the machine's noise: what `begin` costs with the lease and
    // without it, per call (once per burst), interleaved, and per frame at a full burst.
    let mut lc = reader.lcore(1)?;
    let calls = 20_000_000u64;
    let (mut leased, mut unleased) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let c0 = dpdk::tsc();
        for i in 0..calls {
            std::hint::black_box(lc.begin(std::hint::black_box(i)).fenced());
        }
        leased.push((dpdk::tsc() - c0) as f64 / calls as f64);
        let c0 = dpdk::tsc();
        for _ in 0..calls {
            std::hint::black_box(lc.begin_unleased().fenced());
        }
        unleased.push((dpdk::tsc() - c0) as f64 / calls as f64);
    }
    lc.go_offline();
    let ((ml, _), (mu, _)) = (median_range(leased), median_range(unleased));
    println!(
        "  begin() per burst: {ml:.2} cycles with the lease, {mu:.2} without: {:+.3} cycles per frame at a burst of 32",
        (ml - mu) / 32.0
    );
    Ok(())
}

/// Part 5's table: every bucket in a handover that involves node 0, half as the new owner
/// (owner 0, previous 1), half as the previous owner (owner 1, previous 0): the pipeline asks
/// `is_known` for every VIP frame that is not a SYN (nor an echo).
fn handover_table(path: &std::path::Path) -> Result<(TableWriter, TableReader)> {
    let e: Vec<BucketEntry> = (0..BUCKETS)
        .map(|b| BucketEntry {
            owner: (b % 2) as u8,
            prev_owner: 1 - (b % 2) as u8,
        })
        .collect();
    table_with(path, &e, 0b11)
}

/// `n` held TCP flows to the mix's VIP from clients outside the mix's addresses (so the
/// verdicts are those of an empty snapshot: only the lookups differ).
fn held_flows(n: usize) -> farm_dataplane::flows::KnownFlows {
    let vip = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100));
    (0..n)
        .map(|i| farm_pipeline::FlowKey {
            protocol: farm_wire::IpProtocol::Tcp,
            client: IpAddr::V4(Ipv4Addr::from(0xc613_0000 + (i / 50_000) as u32 * 256 + (i % 256) as u32)),
            client_port: 1024 + (i / 256 % 50_000) as u16,
            vip,
            vip_port: 80,
        })
        .collect()
}

/// Part 5: flow knowledge's cost on the pipeline loop, with the workers' snapshot holding 100k
/// flows vs none, on the handover table; interleaved rounds (5 each), medians and ranges of TSC
/// cycles per frame. The 100k flows are not the mix's, so both cases take the same verdicts.
fn flows_cost(
    eal: &Eal,
    worker: LcoreId,
    shm: &std::path::Path,
    ports: &[Port],
    secs: u64,
) -> Result<()> {
    use farm_dataplane::flows::{FlowSnapshot, SharedFlows};
    let (_w, reader) = handover_table(shm)?;
    let reader: &'static TableReader = Box::leak(Box::new(reader));
    let q = QueueId(0);
    let t0 = Instant::now();
    let big = Arc::new(FlowSnapshot {
        epoch: 1,
        taken_ns: 0,
        period_ns: 0,
        known: held_flows(100_000),
    });
    let build = t0.elapsed();
    let (mut held, mut none) = (Vec::new(), Vec::new());
    let mut verdicts = Vec::new();
    for round in 0..10 {
        let up = QueuePair::new(ports[0].rx_queue(q)?, ports[0].tx_queue(q)?);
        let tap = QueuePair::new(ports[1].rx_queue(q)?, ports[1].tx_queue(q)?);
        let with = round % 2 == 0;
        let snap = if with {
            Arc::clone(&big)
        } else {
            Arc::new(FlowSnapshot::default())
        };
        let shared: SharedFlows = Arc::new(arc_swap::ArcSwap::new(snap));
        let r = run_loop(eal, worker, reader.lcore(0)?, LcoreFlows::new(shared), up, tap, secs)?;
        if with {
            held.push(r.cycles_per_frame())
        } else {
            none.push(r.cycles_per_frame())
        }
        if round < 2 {
            verdicts.push((with, verdict_shares(&r.lcore)));
        }
    }
    let ((mh, rh), (mn, rn)) = (median_range(held), median_range(none));
    println!(
        "flow knowledge, handover table, net_null:     100k held {mh:6.2} cycles/frame ({rh}), none {mn:6.2} ({rn}): throughput ratio {:.3} (target >= 0.9)",
        mn / mh
    );
    for (with, shares) in verdicts {
        println!("  {} flows: {shares}", if with { "100k" } else { "no" });
    }
    println!("  (building the 100k-flow set took {:.1} ms)", build.as_secs_f64() * 1e3);
    Ok(())
}

/// Part 3, the bare loop on another null port: rx + tuple hash + bulk free.
fn bare_loop(eal: &Eal, worker: LcoreId, mut rx: RxQueue, secs: u64) -> Result<f64> {
    let stop = Arc::new(AtomicBool::new(false));
    let s3 = Arc::clone(&stop);
    let key = HashKey::from_seed(1);
    let h = eal.launch(worker, move || {
        let mut burst: MbufBurst = MbufBurst::default();
        let (mut n, mut acc) = (0u64, 0u32);
        let t = Timer::start();
        while !s3.load(Ordering::Relaxed) {
            let k = rx.rx_burst(&mut burst);
            for m in burst.iter() {
                let d = m.data();
                if d.len() >= 30 {
                    acc ^= bucket_v4(
                        &key,
                        [d[26], d[27], d[28], d[29]],
                        0,
                        Affinity::OnAddr,
                        BUCKETS,
                    );
                }
            }
            burst.clear();
            n += k as u64;
        }
        std::hint::black_box(acc);
        (n, t.stop())
    })?;
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let (n, el) = h.join().map_err(|_| anyhow::anyhow!("worker panicked"))?;
    let mpps = el.mpps(n);
    println!(
        "bare rx + hash + bulk free, net_null, 1 lcore:{mpps:6.2} Mpps  {}",
        el.detail(n)
    );
    Ok(mpps)
}

/// Optional part `floor`: the same two `net_null` ports and port adapters as the pipeline loop,
/// every frame received on one port transmitted on the other, no classification. The cost of
/// the I/O alone: the pipeline loop can approach it, not pass it.
fn floor_loop(
    eal: &Eal,
    worker: LcoreId,
    mut up: QueuePair,
    mut tap: QueuePair,
    secs: u64,
) -> Result<f64> {
    use farm_pipeline::Port;
    let stop = Arc::new(AtomicBool::new(false));
    let s3 = Arc::clone(&stop);
    let h = eal.launch(worker, move || {
        let (mut a, mut b): (Vec<Pkt>, Vec<Pkt>) = (Vec::with_capacity(64), Vec::with_capacity(64));
        let mut n = 0u64;
        let t = Timer::start();
        while !s3.load(Ordering::Relaxed) {
            n += up.rx_burst(&mut a, 32) as u64;
            n += tap.rx_burst(&mut b, 32) as u64;
            tap.tx_burst(&mut a);
            up.tx_burst(&mut b);
            a.clear();
            b.clear();
        }
        (n, t.stop())
    })?;
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let (n, el) = h.join().map_err(|_| anyhow::anyhow!("worker panicked"))?;
    let mpps = el.mpps(n);
    println!(
        "floor: rx + tx on the same ports, no classify:{mpps:6.2} Mpps  {}",
        el.detail(n)
    );
    Ok(mpps)
}

/// Wall-clock and on-CPU time of a worker thread. The machine is shared, so the worker may
/// be preempted; frames per on-CPU second (from `/proc/thread-self/schedstat`) leave that
/// out and make runs comparable under load (the headline figure stays wall-clock Mpps).
struct Timer {
    wall: Instant,
    cpu_ns: Option<u64>,
}

/// What a [`Timer`] measured.
struct Elapsed {
    wall: Duration,
    cpu: Option<Duration>,
}

fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

impl Timer {
    fn start() -> Timer {
        Timer {
            wall: Instant::now(),
            cpu_ns: thread_cpu_ns(),
        }
    }

    fn stop(&self) -> Elapsed {
        let wall = self.wall.elapsed();
        let cpu = match (self.cpu_ns, thread_cpu_ns()) {
            (Some(a), Some(b)) => Some(Duration::from_nanos(b.saturating_sub(a))),
            _ => None,
        };
        Elapsed { wall, cpu }
    }
}

impl Elapsed {
    fn mpps(&self, n: u64) -> f64 {
        n as f64 / self.wall.as_secs_f64() / 1e6
    }

    fn detail(&self, n: u64) -> String {
        match self.cpu {
            Some(cpu) if !cpu.is_zero() => format!(
                "({n} frames; {:.2} Mpps per on-CPU second, on CPU {:.0}% of the time)",
                n as f64 / cpu.as_secs_f64() / 1e6,
                100.0 * cpu.as_secs_f64() / self.wall.as_secs_f64()
            ),
            _ => format!("({n} frames)"),
        }
    }
}
