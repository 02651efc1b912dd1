//! farmd at idle with 8 peers: eight real `farmd` processes (`--table-only`: no data plane) on
//! loopback addresses 127.77.0.1..8 heartbeat each other at the default pulse (100 ms); after
//! they settle, each one's resident memory and CPU use over a 10 s window are measured from
//! /proc. Target (issue): < 30 MB RSS and < 1% of a core each.
//! Run after a release build: `cargo run --release -p farm-perf --bin bench-farmd`
//! (it starts the `farmd` next to its own executable).

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

const PEERS: usize = 8;

fn stat_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// The farmd processes, stopped (SIGTERM, then waited for) however the bench ends.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &self.0 {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

fn main() -> Result<()> {
    let bin = std::env::current_exe()?.with_file_name("farmd");
    if !bin.exists() {
        bail!("{} not found: build it first (cargo build --release -p farm-control)", bin.display());
    }
    let dir = std::env::temp_dir().join(format!("farm-bench-farmd-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let secret = dir.join("secret");
    std::fs::write(&secret, "bench-secret-0123456789abcdef0123")?;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))?;
    let nodes: String =
        (1..=PEERS).map(|k| format!("[[node]]\nname = \"n{k}\"\naddrs = [\"127.77.0.{k}\"]\n\n")).collect();
    let mut children = Children(Vec::new());
    for k in 1..=PEERS {
        let cfg = dir.join(format!("n{k}.toml"));
        std::fs::write(
            &cfg,
            format!(
                r#"[module]
name = "bench"
cluster_id = 9
secret_file = "{d}/secret"
log_dir = "{d}/{{node}}/log"
run_dir = "{d}/{{node}}/run"
table_file = "{d}/{{node}}/table"
{nodes}
[heartbeat]
port = {port}
[[vip]]
addr = "198.18.0.100"
[[vip.rule]]
proto = "tcp"
ports = "80"
[dataplane]
enabled = false
[api]
listen = "127.77.0.{k}:9010"
"#,
                d = dir.display(),
                port = 47000 + std::process::id() % 1000
            ),
        )?;
        children.0.push(
            Command::new(&bin)
                .arg("--config")
                .arg(&cfg)
                .args(["--node", &format!("n{k}"), "--start", "--table-only", "--log", "warn"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("start farmd")?,
        );
    }
    std::thread::sleep(Duration::from_secs(5));
    // The measurement only means something if the eight formed one farm.
    for k in 1..=PEERS {
        let r = farm_table::TableReader::open(&dir.join(format!("n{k}/table")))?;
        let (_, live, entries) = r.peek();
        if live.count_ones() as usize != PEERS || entries.iter().any(|e| e.owner == farm_table::NO_NODE) {
            bail!("n{k} did not join the farm: live {live:#b}");
        }
    }
    println!("all {PEERS} nodes UP, one table");
    let pids: Vec<u32> = children.0.iter().map(Child::id).collect();
    let before: Vec<Option<u64>> = pids.iter().map(|p| stat_ticks(*p)).collect();
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let secs = t.elapsed().as_secs_f64();
    // Clock ticks per second (USER_HZ, 100 on Linux): read from getconf to be sure.
    let hz: f64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0);
    let mut worst_cpu = 0f64;
    let mut worst_rss = 0u64;
    for (i, p) in pids.iter().enumerate() {
        let (Some(b), Some(a), Some(r)) = (before[i], stat_ticks(*p), rss_kb(*p)) else {
            bail!("farmd n{} exited early", i + 1);
        };
        let cpu = (a - b) as f64 / hz / secs * 100.0;
        worst_cpu = worst_cpu.max(cpu);
        worst_rss = worst_rss.max(r);
        println!("farmd n{}: RSS {:5.1} MiB  CPU {:5.2} % of a core", i + 1, r as f64 / 1024.0, cpu);
    }
    drop(children);
    let _ = std::fs::remove_dir_all(&dir);
    println!("farmd idle with {PEERS} peers, worst: RSS {:.1} MiB, CPU {:.2} % of a core (targets < 30 MB, < 1 %)", worst_rss as f64 / 1024.0, worst_cpu);
    Ok(())
}
