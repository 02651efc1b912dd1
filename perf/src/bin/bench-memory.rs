//! Resident memory of a running `farm-dataplane` with the default mempool (8191 mbufs) and
//! 4096 buckets, idle on `net_pcap` ports, without hugepages (`--no-huge -m 128`).
//! Run as root after a release build: `cargo run --release -p farm-perf --bin bench-memory`
//! (it starts the `farm-dataplane` next to its own executable).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use farm_table::{BucketEntry, HashKey, TableParams, TableWriter};

fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("farm-bench-mem-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cfg = dir.join("farm.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[module]
name = "mem"
cluster_id = 1
secret_file = "{d}/secret"
table_file = "{d}/table"
log_dir = "{d}/log"
run_dir = "{d}/run"
[[node]]
name = "n1"
addrs = ["198.18.0.1"]
[[node]]
name = "n2"
addrs = ["198.18.0.2"]
[[vip]]
addr = "198.18.0.100"
[[vip.rule]]
proto = "tcp"
ports = "80"
[dataplane]
uplink = "net_pcap_up"
eal_args = ["--no-huge", "--no-shconf", "--no-pci", "-m", "128"]
file_prefix = "farm-bench-mem-{pid}"
"#,
            d = dir.display(),
            pid = std::process::id()
        ),
    )?;
    let conf = farm_config::Config::load(&cfg)?;
    let params = TableParams { n_buckets: conf.buckets(), node_id: 0, n_lcores: 1, hash_key: HashKey::from_seed(conf.module.hash_seed) };
    let mut table = TableWriter::create(&dir.join("table"), &params)?;
    table.publish(&vec![BucketEntry::owned(0); conf.buckets() as usize], 1, Duration::ZERO)?;
    let empty = dir.join("empty.pcap");
    pcap_file::pcap::PcapWriter::new(std::fs::File::create(&empty)?)?;
    let bin = std::env::current_exe()?.with_file_name("farm-dataplane");
    if !bin.exists() {
        bail!("{} not found: build it first (cargo build --release -p farm-dataplane)", bin.display());
    }
    let mut child = Command::new(&bin)
        .arg("--config")
        .arg(&cfg)
        .args(["--node", "n1"])
        .arg("--uplink")
        .arg(format!("net_pcap_up,rx_pcap={},tx_pcap={}/w.pcap", empty.display(), dir.display()))
        .arg("--local-port")
        .arg(format!("net_pcap_tap,rx_pcap={},tx_pcap={}/t.pcap", empty.display(), dir.display()))
        .stderr(Stdio::null())
        .spawn()
        .context("start farm-dataplane")?;
    let t = Instant::now();
    while table.dataplane().liveness_ns == 0 {
        if t.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            bail!("farm-dataplane did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let pid = child.id();
    let rss = status_kb(pid, "VmRSS:").unwrap_or(0);
    let hwm = status_kb(pid, "VmHWM:").unwrap_or(0);
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "farm-dataplane resident memory, {} buckets, mempool {} mbufs, idle: VmRSS {:.1} MiB (peak {:.1} MiB)",
        conf.buckets(),
        conf.dataplane.mempool_size,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    Ok(())
}
