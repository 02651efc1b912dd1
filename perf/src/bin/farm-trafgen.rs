//! farm-trafgen: a DPDK traffic generator for the farm data plane.
//!
//! Sends TCP (SYN / established ACK / FIN) and UDP frames from configurable
//! client ranges to a VIP on one DPDK port (a `net_memif` client by default),
//! receives what the device under test sends back on a second port (or the same
//! one), and reports rates, losses and latency (TSC stamp in every frame) as
//! JSON on stdout and one human line on stderr.
//!
//! Example (against a farm-dataplane whose uplink and local port are memif
//! servers on these sockets):
//!
//! ```text
//! farm-trafgen --port net_memif_tg0,role=client,id=0,socket=/tmp/up.sock \
//!              --rx-port net_memif_tg1,role=client,id=0,socket=/tmp/loc.sock \
//!              --farm-config farm.toml --size 64 --duration 5s
//! ```

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use dpdk::{Eal, Mempool, MempoolConfig, Port, PortConfig, QueueId};
use farm_perf::cpu::{mono_ns, process_cpu_ns, SystemCpu};
use farm_perf::engine::{Edge, Engine, RunConfig};
use farm_perf::summary::{CpuUse, Summary, Window};
use farm_perf::{ClientRange, Hashing, Mix, Owned, PortSpan, TrafficSpec};
use farm_table::{Affinity, HashKey};
use farm_wire::EthernetAddress;

#[derive(Debug, Parser)]
#[command(name = "farm-trafgen", version, about = "DPDK traffic generator for the farm data plane")]
struct Args {
    /// Transmit port (DPDK devargs, hotplugged).
    #[arg(long, default_value = "net_memif_tg0,role=client,id=0,socket=/tmp/farm-trafgen-tx.sock")]
    port: String,
    /// Receive port (devargs); default: receive on the transmit port.
    #[arg(long)]
    rx_port: Option<String>,
    /// Queues per port (transmit bursts go to each in turn; all are polled).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    queues: u16,

    /// Client address range: CIDR, first-last or one address (repeatable; IPv4 and IPv6).
    #[arg(long = "clients", default_value = "198.18.128.0/17")]
    clients: Vec<ClientRange>,
    /// Client source ports.
    #[arg(long, default_value = "1024-65535")]
    sports: PortSpan,
    /// VIP (repeatable: one IPv4 and/or one IPv6); default from --farm-config, else 198.18.0.100.
    #[arg(long)]
    vip: Vec<IpAddr>,
    /// TCP destination port.
    #[arg(long, default_value_t = 80)]
    tcp_port: u16,
    /// UDP destination port.
    #[arg(long, default_value_t = 5000)]
    udp_port: u16,
    /// Frame sizes with FCS, 64..=1518 (comma-separated, used in turn).
    #[arg(long = "size", default_value = "64", value_delimiter = ',')]
    sizes: Vec<u16>,
    /// Packet mix: weights of syn, ack (established), fin and udp.
    #[arg(long, default_value = "syn=1,ack=8,fin=1,udp=0")]
    mix: Mix,
    /// Distinct frames to pre-build (capped by the combinations).
    #[arg(long, default_value_t = 4096)]
    templates: usize,
    /// Seed of the client/port choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Source MAC.
    #[arg(long, default_value = "02:00:00:00:00:c1", value_parser = parse_mac)]
    src_mac: EthernetAddress,
    /// Destination MAC (default: the VIP's virtual MAC, as a switch floods it).
    #[arg(long, value_parser = parse_mac)]
    dst_mac: Option<EthernetAddress>,

    /// Farm config to take the hash seed, bucket count and VIPs from.
    #[arg(long)]
    farm_config: Option<PathBuf>,
    /// Hash seed (module.hash_seed; default cluster_id 1 without --farm-config).
    #[arg(long, value_parser = parse_u64)]
    hash_seed: Option<u64>,
    /// Bucket count.
    #[arg(long)]
    buckets: Option<u32>,
    /// Affinity of the VIP's rules: on_addr or on_port.
    #[arg(long, default_value = "on_addr", value_parser = parse_affinity)]
    affinity: Affinity,
    /// Buckets the device under test owns (all, none, K:R for b % K == R).
    #[arg(long, default_value = "all")]
    owned: Owned,

    /// Packets per second (k/M/G suffixes); default flat out.
    #[arg(long, value_parser = parse_rate)]
    rate: Option<u64>,
    /// Measurement window.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Traffic before the window (not in the rates).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Longest receive-only tail after the window.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    drain: Duration,
    /// Wait this long for the ports' links (memif: the peer must be there).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    link_timeout: Duration,

    /// Process of the device under test, for its CPU time and cycles per packet.
    #[arg(long)]
    dut_pid: Option<u32>,
    /// Write the JSON summary here instead of stdout (atomically: written
    /// to a temporary file, then renamed).
    #[arg(long)]
    json: Option<PathBuf>,
    /// After the report, keep the ports open (idle) until SIGTERM/SIGINT, so
    /// that the peer can be stopped first: DPDK 22.11's memif PMD can crash a
    /// process polling a memif whose peer disconnects.
    #[arg(long)]
    hold: bool,

    /// CPU of the generator's thread (EAL -l).
    #[arg(long, default_value_t = 0)]
    cpu: u32,
    /// EAL --file-prefix (default farm-trafgen-<pid>).
    #[arg(long)]
    file_prefix: Option<String>,
    /// EAL memory in MB (no hugepages).
    #[arg(long, default_value_t = 256)]
    memory_mb: u32,
    /// Extra EAL argument (repeatable).
    #[arg(long = "eal-arg", allow_hyphen_values = true)]
    eal_arg: Vec<String>,
    /// Mbufs in the pool.
    #[arg(long, default_value_t = 16383)]
    mempool: u32,
    /// Log filter (tracing), e.g. info, debug.
    #[arg(long, default_value = "warn")]
    log: String,
}

fn parse_mac(s: &str) -> Result<EthernetAddress, String> {
    let b: Vec<u8> = s
        .split(':')
        .map(|x| u8::from_str_radix(x, 16))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{s:?}: {e}"))?;
    let a: [u8; 6] = b.try_into().map_err(|_| format!("{s:?}: expected 6 bytes"))?;
    Ok(EthernetAddress(a))
}

fn parse_u64(s: &str) -> Result<u64, String> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    }
    .map_err(|e| format!("{s:?}: {e}"))
}

fn parse_rate(s: &str) -> Result<u64, String> {
    let (num, mul) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1e3),
        Some('m' | 'M') => (&s[..s.len() - 1], 1e6),
        Some('g' | 'G') => (&s[..s.len() - 1], 1e9),
        _ => (s, 1.0),
    };
    let v: f64 = num.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if !v.is_finite() || v <= 0.0 {
        return Err(format!("{s:?}: must be positive"));
    }
    Ok((v * mul) as u64)
}

fn parse_affinity(s: &str) -> Result<Affinity, String> {
    match s {
        "on_addr" => Ok(Affinity::OnAddr),
        "on_port" => Ok(Affinity::OnPort),
        _ => Err(format!("{s:?}: expected on_addr or on_port")),
    }
}

/// Hash key, bucket count and VIPs: flags first, then the farm config, then defaults.
fn hashing_and_vips(a: &Args) -> Result<(Hashing, Vec<IpAddr>)> {
    let cfg = a.farm_config.as_ref().map(farm_config::Config::load).transpose()?;
    let key = match (a.hash_seed, &cfg) {
        (Some(s), _) => HashKey::from_seed(s),
        (None, Some(c)) => c.hash_key(),
        (None, None) => HashKey::from_seed(1),
    };
    let n_buckets = a.buckets.or(cfg.as_ref().map(|c| c.buckets())).unwrap_or(farm_table::DEFAULT_BUCKETS);
    if !n_buckets.is_power_of_two() {
        bail!("--buckets {n_buckets}: must be a power of two");
    }
    let vips = if !a.vip.is_empty() {
        a.vip.clone()
    } else if let Some(c) = &cfg {
        c.vips.iter().map(|v| v.addr).collect()
    } else {
        vec!["198.18.0.100".parse()?]
    };
    Ok((Hashing { key, n_buckets, affinity: a.affinity, owned: a.owned }, vips))
}

/// Attaches, configures and starts a port. Starting is retried until `timeout`:
/// a memif client cannot start before its server listens.
fn open_port(eal: &Eal, devargs: &str, queues: u16, pool: &Mempool, timeout: Duration) -> Result<Port> {
    let mut port = Port::attach(eal, devargs).with_context(|| format!("attach {devargs}"))?;
    let pc = PortConfig { rx_queues: queues, tx_queues: queues, ..PortConfig::default() };
    port.configure(&pc, pool).with_context(|| format!("configure {devargs}"))?;
    let t = Instant::now();
    loop {
        match port.start() {
            Ok(()) => return Ok(port),
            Err(e) if t.elapsed() < timeout => {
                tracing::debug!(error = %e, port = devargs, "start failed, retrying");
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(e) => return Err(e).with_context(|| format!("start {devargs} (for {timeout:?})")),
        }
    }
}

/// Waits for every port's link (memif: up once the peer connected).
fn wait_links(ports: &[&Port], timeout: Duration) -> Result<()> {
    let t = Instant::now();
    for p in ports {
        while !p.link().map(|l| l.up).unwrap_or(false) {
            if t.elapsed() > timeout {
                bail!("port {}: link still down after {timeout:?} (is the peer running?)", p.name());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let a = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&a.log))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let (hashing, vips) = hashing_and_vips(&a)?;
    let spec = TrafficSpec {
        src_mac: a.src_mac,
        dst_mac: a.dst_mac,
        vip4: vips.iter().find_map(|v| match v {
            IpAddr::V4(x) => Some(*x),
            IpAddr::V6(_) => None,
        }),
        vip6: vips.iter().find_map(|v| match v {
            IpAddr::V6(x) => Some(*x),
            IpAddr::V4(_) => None,
        }),
        tcp_port: a.tcp_port,
        udp_port: a.udp_port,
        clients: a.clients.clone(),
        sports: a.sports,
        sizes: a.sizes.clone(),
        mix: a.mix,
        templates: a.templates,
        seed: a.seed,
    };
    let templates = farm_perf::build(&spec, &hashing)?;
    let accepted = templates.iter().filter(|t| t.accepted).count();
    let mean_bytes = templates.iter().map(|t| t.frame.len() as f64 + 4.0).sum::<f64>() / templates.len() as f64;

    let prefix = a.file_prefix.clone().unwrap_or_else(|| format!("farm-trafgen-{}", std::process::id()));
    let eal = Eal::builder()
        .program("farm-trafgen")
        .no_huge()
        .no_shconf()
        .no_pci()
        .no_telemetry()
        .memory_mb(a.memory_mb)
        .file_prefix(&prefix)
        .lcores(&a.cpu.to_string())
        .args(a.eal_arg.iter().cloned())
        .init()
        .context("DPDK EAL initialisation")?;
    let pool = Mempool::new(&eal, "trafgen", &MempoolConfig { size: a.mempool, cache_size: 256, ..MempoolConfig::default() })
        .context("mempool (raise --memory-mb)")?;
    let tx_port = open_port(&eal, &a.port, a.queues, &pool, a.link_timeout)?;
    let rx_port = match &a.rx_port {
        Some(d) => Some(open_port(&eal, d, a.queues, &pool, a.link_timeout)?),
        None => None,
    };
    let rxp = rx_port.as_ref().unwrap_or(&tx_port);
    wait_links(&[&tx_port, rxp], a.link_timeout)?;
    let queues: Vec<QueueId> = (0..a.queues).map(QueueId).collect();
    let mut engine = Engine {
        tx: queues.iter().map(|&q| tx_port.tx_queue(q)).collect::<Result<_, _>>()?,
        rx: queues.iter().map(|&q| rxp.rx_queue(q)).collect::<Result<_, _>>()?,
        pool: &pool,
        templates: &templates,
    };

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("signal handlers")?;
    }
    let me = std::process::id();
    let sample = || {
        let sys = SystemCpu::read(None).unwrap_or_default();
        let own = process_cpu_ns(me).unwrap_or(0);
        let dut = a.dut_pid.and_then(|p| process_cpu_ns(p).ok());
        (Instant::now(), sys, own, dut, mono_ns())
    };
    let mut first = None;
    let mut last = None;
    let run = RunConfig { warmup: a.warmup, duration: a.duration, drain: a.drain, drain_idle: Duration::from_millis(50), rate: a.rate };
    let r = engine.run(&run, &stop, &mut |e| match e {
        Edge::Start => first = Some(sample()),
        Edge::End => last = Some(sample()),
    });
    drop(engine);

    let seconds = r.window_cycles as f64 / r.tsc_hz as f64;
    let per_s = |n: u64| if seconds > 0.0 { n as f64 / seconds } else { 0.0 };
    let mut cpu = CpuUse::default();
    let (start_mono_ns, end_mono_ns) = (first.map_or(0, |f| f.4), last.map_or(0, |l| l.4));
    if let (Some((t0, s0, o0, d0, _)), Some((t1, s1, o1, d1, _))) = (first, last) {
        let wall = (t1 - t0).as_secs_f64();
        cpu.machine_busy_cpus = s1.busy_cpus_since(&s0, wall);
        cpu.generator_cpus = o1.saturating_sub(o0) as f64 / 1e9 / wall;
        if let (Some(d0), Some(d1)) = (d0, d1) {
            let dut_s = d1.saturating_sub(d0) as f64 / 1e9;
            cpu.dut_cpus = Some(dut_s / wall);
            if r.window_rx > 0 {
                cpu.dut_cycles_per_packet = Some(dut_s * r.tsc_hz as f64 / r.window_rx as f64);
            }
        }
    }
    let summary = Summary {
        port: a.port.clone(),
        rx_port: a.rx_port.clone().unwrap_or_else(|| a.port.clone()),
        queues: a.queues,
        rate_pps: a.rate,
        templates: templates.len(),
        mean_frame_bytes: mean_bytes,
        accepted_share: accepted as f64 / templates.len() as f64,
        tsc_hz: r.tsc_hz,
        window: Window {
            seconds,
            tx: r.window_tx,
            rx: r.window_rx,
            tx_pps: per_s(r.window_tx),
            rx_pps: per_s(r.window_rx),
            tx_gbps: per_s(r.window_tx_bytes) * 8.0 / 1e9,
            delivery: if r.window_expected > 0 { r.window_rx as f64 / r.window_expected as f64 } else { 0.0 },
            start_mono_ns,
            end_mono_ns,
        },
        totals: r.totals,
        latency_ns: r.latency,
        cpu,
    };
    // From here on a signal ends the hold (a signal during the run ended the run).
    stop.store(false, Ordering::SeqCst);
    let json = serde_json::to_string_pretty(&summary)?;
    match &a.json {
        Some(p) => {
            let tmp = p.with_extension("json.tmp");
            std::fs::write(&tmp, json + "\n").with_context(|| format!("write {}", tmp.display()))?;
            std::fs::rename(&tmp, p).with_context(|| format!("rename to {}", p.display()))?;
        }
        None => println!("{json}"),
    }
    eprintln!("farm-trafgen: {}", summary.human());
    if a.hold {
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_values() {
        assert_eq!(parse_rate("1M"), Ok(1_000_000));
        assert_eq!(parse_rate("2.5k"), Ok(2_500));
        assert_eq!(parse_rate("300"), Ok(300));
        assert!(parse_rate("0").is_err() && parse_rate("-1M").is_err() && parse_rate("fast").is_err());
        assert_eq!(parse_mac("5a:fe:c6:12:00:64"), Ok(EthernetAddress([0x5a, 0xfe, 0xc6, 0x12, 0, 0x64])));
        assert!(parse_mac("5a:fe:c6:12:00").is_err() && parse_mac("zz:fe:c6:12:00:64").is_err());
        assert_eq!(parse_u64("0xfa7"), Ok(0xfa7));
        assert_eq!(parse_u64("42"), Ok(42));
        assert!(parse_affinity("on_port").is_ok() && parse_affinity("port").is_err());
        // The defaults parse, and --farm-config supplies key, buckets and VIPs.
        let a = Args::try_parse_from(["farm-trafgen"]).unwrap();
        let (h, vips) = hashing_and_vips(&a).unwrap();
        assert_eq!((h.n_buckets, vips.len()), (farm_table::DEFAULT_BUCKETS, 1));
        assert!(Args::try_parse_from(["farm-trafgen", "--buckets", "1000"]).is_ok_and(|a| hashing_and_vips(&a).is_err()));
    }
}
