//! The kernel path: an nftables `jhash` filter (CLUSTERIP / xt_cluster style)
//! on a veth in a network namespace, fed by netsniff-ng's trafgen with the
//! same frames as the DPDK runs.
//!
//! ```text
//!  netns fbench-g<pid>                     netns fbench-d<pid>
//!   trafgen -> fbg<pid> ══ veth ══ fbd<pid> -> prerouting:
//!              198.18.0.1/24        198.18.0.2/24, VIP 198.18.0.100/32
//!     jhash ip saddr mod 2 seed S == 0 -> counter "accepted", accept
//!     else                              -> counter "dropped", drop
//!   (accepted frames are dropped in the input hook: no TCP resets)
//! ```
//!
//! The namespaces are the benchmark's own (unique names, removed on exit,
//! also on error); nothing is routed outside them.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use farm_perf::{Hashing, Owned, TrafficSpec};
use farm_table::{Affinity, HashKey};
use farm_wire::EthernetAddress;
use serde::{Deserialize, Serialize};

use crate::dpdk::{BUCKETS, CLIENTS, HASH_SEED, VIP};
use crate::procs::{self, command_line};

const GEN_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0xc1]);
const DUT_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
/// Frames in trafgen's configuration (it parses them as text).
const KERNEL_TEMPLATES: usize = 1024;

/// One kernel-path run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KernelRun {
    /// Frame size with FCS.
    pub size: u16,
    /// True: the jhash filter; false: a counter only (the path's own ceiling).
    pub filter: bool,
    /// Window length.
    pub seconds: f64,
    /// Frames the filter accepted in the window.
    pub accepted: u64,
    /// Frames it dropped.
    pub dropped: u64,
    /// (accepted + dropped) per second, in millions.
    pub mpps: f64,
    /// CPUs in softirq (the receive path: veth -> IP -> nftables), all CPUs together.
    pub softirq_cpus: f64,
    /// CPUs in system time (mostly trafgen's send path).
    pub system_cpus: f64,
    /// CPUs busy on the whole machine.
    pub machine_busy_cpus: f64,
    /// Mpps per CPU of receive path (softirq) time.
    pub mpps_per_rx_core: f64,
    /// Mpps per CPU of softirq + system time (generator's send path included).
    pub mpps_per_core_with_sender: f64,
    /// Softirq time per filtered packet (ns): the receive path's cost per packet;
    /// × TSC Hz = its cycles per packet, next to the DPDK forwarders' busy cycles.
    #[serde(default)]
    pub softirq_ns_per_packet: f64,
    /// Exact commands.
    pub commands: Vec<String>,
}

/// The namespaces and veth pair; removed on drop.
struct Netns {
    gen: String,
    dut: String,
    gen_if: String,
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in [&self.gen, &self.dut] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn ip(args: &[&str]) -> Result<()> {
    procs::run(Command::new("ip").args(args)).map(drop)
}

fn setup_netns(tag: &str) -> Result<Netns> {
    let n = Netns { gen: format!("fbench-g{tag}"), dut: format!("fbench-d{tag}"), gen_if: format!("fbg{tag}") };
    let dut_if = format!("fbd{tag}");
    ip(&["netns", "add", &n.gen])?;
    ip(&["netns", "add", &n.dut])?;
    ip(&["link", "add", &n.gen_if, "address", &GEN_MAC.to_string(), "type", "veth", "peer", "name", &dut_if, "address", &DUT_MAC.to_string()])?;
    ip(&["link", "set", &n.gen_if, "netns", &n.gen])?;
    ip(&["link", "set", &dut_if, "netns", &n.dut])?;
    for (ns, dev, addr) in [(&n.gen, &n.gen_if, "198.18.0.1/24"), (&n.dut, &dut_if, "198.18.0.2/24")] {
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        ip(&["-n", ns, "addr", "add", addr, "dev", dev])?;
        ip(&["-n", ns, "link", "set", dev, "up"])?;
    }
    ip(&["-n", &n.dut, "addr", "add", &format!("{VIP}/32"), "dev", &dut_if])?;
    ip(&["-n", &n.dut, "route", "add", CLIENTS, "dev", &dut_if])?;
    Ok(n)
}

fn nft_ruleset(filter: bool) -> String {
    let verdict = if filter {
        format!(
            "    ip daddr {VIP} jhash ip saddr mod 2 seed {HASH_SEED:#x} == 0 counter name \"accepted\" accept\n    ip daddr {VIP} counter name \"dropped\" drop\n"
        )
    } else {
        format!("    ip daddr {VIP} counter name \"accepted\" accept\n")
    };
    format!(
        "table ip farmbench {{\n  counter accepted {{}}\n  counter dropped {{}}\n  chain pre {{\n    type filter hook prerouting priority -150; policy accept;\n{verdict}  }}\n  chain inp {{\n    type filter hook input priority 0; policy accept;\n    ip daddr {VIP} drop\n  }}\n}}\n"
    )
}

/// trafgen's configuration: the generator's own templates, as bytes.
fn trafgen_config(size: u16) -> Result<String> {
    let spec = TrafficSpec {
        src_mac: GEN_MAC,
        dst_mac: Some(DUT_MAC),
        vip4: Some(VIP.parse()?),
        vip6: None,
        tcp_port: 80,
        udp_port: 5000,
        clients: vec![CLIENTS.parse()?],
        sports: "1024-65535".parse()?,
        sizes: vec![size],
        mix: farm_perf::Mix::default(),
        templates: KERNEL_TEMPLATES,
        seed: 1,
    };
    let h = Hashing { key: HashKey::from_seed(HASH_SEED), n_buckets: BUCKETS, affinity: Affinity::OnAddr, owned: Owned::All };
    let mut out = String::new();
    for t in farm_perf::build(&spec, &h)? {
        out.push_str("{ ");
        for (i, b) in t.frame.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            let _ = write!(out, "{sep}{b:#04x}");
        }
        out.push_str(" }\n");
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    at: Option<Instant>,
    accepted: u64,
    dropped: u64,
    busy: u64,
    system: u64,
    softirq: u64,
}

fn sample(dut: &str) -> Result<Sample> {
    let j = procs::run(Command::new("ip").args(["netns", "exec", dut, "nft", "-j", "list", "counters"]))?;
    let v: serde_json::Value = serde_json::from_str(&j).context("nft -j output")?;
    let mut s = Sample { at: Some(Instant::now()), ..Sample::default() };
    for item in v["nftables"].as_array().into_iter().flatten() {
        let c = &item["counter"];
        let packets = c["packets"].as_u64().unwrap_or(0);
        match c["name"].as_str() {
            Some("accepted") => s.accepted = packets,
            Some("dropped") => s.dropped = packets,
            _ => {}
        }
    }
    let stat = std::fs::read_to_string("/proc/stat")?;
    let all: Vec<u64> = stat.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let f = |i: usize| all.get(i).copied().unwrap_or(0);
    s.busy = (0..8).map(f).sum::<u64>() - f(3) - f(4);
    s.system = f(2);
    s.softirq = f(6);
    Ok(s)
}

/// Runs the kernel path for one size, with or without the jhash filter.
pub fn run(size: u16, filter: bool, warmup: Duration, duration: Duration, nice: i32, dir: &Path) -> Result<KernelRun> {
    std::fs::create_dir_all(dir)?;
    let tag = format!("{}{}", std::process::id() % 100_000, if filter { "f" } else { "n" });
    let ns = setup_netns(&tag)?;
    let nft = dir.join("ruleset.nft");
    std::fs::write(&nft, nft_ruleset(filter))?;
    let mut nft_cmd = Command::new("ip");
    nft_cmd.args(["netns", "exec", &ns.dut, "nft", "-f"]).arg(&nft);
    let mut commands = vec![command_line(&nft_cmd)];
    procs::run(&mut nft_cmd)?;
    let cfg = dir.join("trafgen.cfg");
    std::fs::write(&cfg, trafgen_config(size)?)?;
    // nsenter execs trafgen, so the process group is trafgen's own. A bounded
    // TX ring keeps its final flush short.
    let mut tg = procs::niced("nsenter", nice);
    tg.arg(format!("--net=/run/netns/{}", ns.gen))
        .args(["trafgen", "--no-sock-mem", "--cpus", "1", "--num", "0", "--ring-size", "4MiB", "-i"])
        .arg(&cfg)
        .args(["-o", &ns.gen_if]);
    commands.push(command_line(&tg));
    // trafgen stops (and prints its totals) when its process group gets SIGINT.
    let mut gen = procs::spawn_group("trafgen", tg, dir, "INT")?;
    // trafgen parses its config first: wait for traffic before the warm-up.
    let t = Instant::now();
    while sample(&ns.dut)?.accepted == 0 {
        if !gen.running() || t.elapsed() > Duration::from_secs(30) {
            bail!("trafgen sent nothing:\n{}", procs::tail(&dir.join("trafgen.err"), 10));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(warmup);
    let a = sample(&ns.dut)?;
    std::thread::sleep(duration);
    let b = sample(&ns.dut)?;
    gen.stop(Duration::from_secs(5));
    drop(ns);
    let seconds = match (a.at, b.at) {
        (Some(x), Some(y)) => (y - x).as_secs_f64(),
        _ => 0.0,
    };
    let per_s = |n: u64| n as f64 / seconds;
    let accepted = b.accepted - a.accepted;
    let dropped = b.dropped - a.dropped;
    let mpps = per_s(accepted + dropped) / 1e6;
    let ticks = |x: u64, y: u64| (y.saturating_sub(x)) as f64 / farm_perf::cpu::USER_HZ / seconds;
    let softirq_cpus = ticks(a.softirq, b.softirq);
    let system_cpus = ticks(a.system, b.system);
    Ok(KernelRun {
        size,
        filter,
        seconds,
        accepted,
        dropped,
        mpps,
        softirq_cpus,
        system_cpus,
        machine_busy_cpus: ticks(a.busy, b.busy),
        mpps_per_rx_core: if softirq_cpus > 0.0 { mpps / softirq_cpus } else { 0.0 },
        mpps_per_core_with_sender: if softirq_cpus + system_cpus > 0.0 { mpps / (softirq_cpus + system_cpus) } else { 0.0 },
        softirq_ns_per_packet: if mpps > 0.0 { softirq_cpus * 1e3 / mpps } else { 0.0 },
        commands,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruleset_and_config_text() {
        let r = nft_ruleset(true);
        assert!(r.contains("jhash ip saddr mod 2 seed 0xfa7 == 0 counter name \"accepted\" accept"));
        assert!(r.contains("counter name \"dropped\" drop"));
        assert!(!nft_ruleset(false).contains("jhash"));
        let c = trafgen_config(64).unwrap();
        assert_eq!(c.lines().count(), KERNEL_TEMPLATES);
        // 60-byte frames to the veth's MAC.
        let first = c.lines().next().unwrap();
        assert_eq!(first.matches("0x").count(), 60);
        assert!(first.starts_with("{ 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02"));
    }
}
