//! Network faults without netem (DESIGN.md, "Lab"): nftables rules on the lab's bridge, in a
//! `bridge` family table of the host named after the lab (`farmlab_<prefix>`). Frames between
//! two ports are matched per egress port (the bridge runs the forward hook once per copy of a
//! flooded frame), so partitions also cut ARP and VIP floods. Teardown deletes the table.
//!
//! Faults of one node's traffic class only (its heartbeats, its witness pings), client traffic
//! untouched: an `inet` table `farmfault` inside the node's namespace, whose input and output
//! hooks see what the node's kernel sends and receives through `farm0` (heartbeats leave
//! through the TAP and the data plane). [`heal`] removes these too. CPU starvation of a node's
//! processes: [`Starve`] (a cgroup with a CPU quota).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::cmd::{ns_run, resolve, run, run_status, run_with_input};
use super::error::LabError;
use super::layout::Layout;

/// Name of the `inet` table of node-level faults inside a node namespace.
pub const NODE_TABLE: &str = "farmfault";

/// Name of the lab's nftables table (family `bridge`, host namespace).
pub fn table_name(prefix: &str) -> String {
    format!("farmlab_{prefix}")
}

/// Whether the lab's fault table exists.
pub fn table_exists(prefix: &str) -> bool {
    run_status("nft", ["list", "table", "bridge", &table_name(prefix)]).is_ok_and(|o| o.status.success())
}

/// Deletes the lab's fault table if it exists; returns whether it did.
pub fn delete_table(prefix: &str) -> Result<bool, LabError> {
    if !table_exists(prefix) {
        return Ok(false);
    }
    run("nft", ["delete", "table", "bridge", &table_name(prefix)]).map(|_| true)
}

fn ensure_table(l: &Layout) -> Result<(), LabError> {
    let t = table_name(l.prefix());
    run_with_input(
        "nft",
        ["-f", "-"],
        &format!(
            "table bridge {t} {{\n  chain forward {{\n    type filter hook forward priority 0; policy accept;\n  }}\n}}\n"
        ),
    )
    .map(drop)
}

fn add_rules(l: &Layout, rules: &[String]) -> Result<(), LabError> {
    ensure_table(l)?;
    let t = table_name(l.prefix());
    let text: String = rules.iter().map(|r| format!("add rule bridge {t} forward {r}\n")).collect();
    run_with_input("nft", ["-f", "-"], &text).map(drop)
}

/// Rules that drop every frame between nodes of different groups (both directions).
pub fn partition_rules(l: &Layout, groups: &[&[usize]]) -> Vec<String> {
    let mut rules = Vec::new();
    for (a, ga) in groups.iter().enumerate() {
        for (b, gb) in groups.iter().enumerate() {
            if a == b {
                continue;
            }
            for &i in ga.iter() {
                for &j in gb.iter() {
                    rules.push(format!(
                        "iifname \"{}\" oifname \"{}\" counter drop",
                        l.node_ns(i),
                        l.node_ns(j)
                    ));
                }
            }
        }
    }
    rules
}

/// Rules that drop `percent`% of UDP datagrams to `port` leaving or reaching any node.
pub fn udp_loss_rules(l: &Layout, port: u16, percent: u8) -> Vec<String> {
    l.node_numbers()
        .map(|i| {
            format!(
                "iifname \"{}\" udp dport {port} numgen random mod 100 < {percent} counter drop",
                l.node_ns(i)
            )
        })
        .collect()
}

/// Cuts the lab into `groups` of nodes (1-based): frames between groups are dropped; the client
/// still reaches every node.
pub fn partition(l: &Layout, groups: &[&[usize]]) -> Result<(), LabError> {
    for g in groups {
        for &i in g.iter() {
            if !(1..=l.nodes()).contains(&i) {
                return Err(LabError::Invalid(format!("partition: no node {i} (1..={})", l.nodes())));
            }
        }
    }
    add_rules(l, &partition_rules(l, groups))
}

/// Drops `percent`% (0..=100) of the UDP datagrams to `port` sent by the nodes (e.g. the
/// heartbeat port: `[heartbeat] port`, 4790 by default).
pub fn udp_loss(l: &Layout, port: u16, percent: u8) -> Result<(), LabError> {
    if percent > 100 {
        return Err(LabError::Invalid(format!("loss {percent}%: expected 0..=100")));
    }
    add_rules(l, &udp_loss_rules(l, port, percent))
}

/// Which way of a node's traffic a node-level fault cuts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// What the node receives.
    In,
    /// What the node sends.
    Out,
    /// Both.
    Both,
}

impl Direction {
    fn chains(self) -> &'static [&'static str] {
        match self {
            Direction::In => &["input"],
            Direction::Out => &["output"],
            Direction::Both => &["input", "output"],
        }
    }
}

fn node_nft(l: &Layout, i: usize, text: &str) -> Result<(), LabError> {
    let ns = l.node_ns(i);
    let nft = resolve("nft".as_ref());
    let args: [&std::ffi::OsStr; 6] = ["netns".as_ref(), "exec".as_ref(), ns.as_ref(), &nft, "-f".as_ref(), "-".as_ref()];
    run_with_input("ip", args, text).map(drop)
}

/// The rules that cut node `i`'s heartbeats (UDP to `port`) in `dir`, for [`node_rules`].
pub fn heartbeat_cut_rules(port: u16, dir: Direction) -> Vec<(&'static str, String)> {
    dir.chains().iter().map(|c| (*c, format!("udp dport {port} counter drop"))).collect()
}

/// The rule that stops node `i` from pinging `addr` (a witness), for [`node_rules`].
pub fn ping_cut_rules(addr: Ipv4Addr) -> Vec<(&'static str, String)> {
    vec![("output", format!("ip daddr {addr} icmp type echo-request counter drop"))]
}

/// The `nft -f` text that adds `rules` (chain, rule) to the node table, creating it if needed.
pub fn node_rules(rules: &[(&str, String)]) -> String {
    let t = NODE_TABLE;
    let mut text = format!(
        "table inet {t} {{\n  chain input {{ type filter hook input priority 0; policy accept; }}\n  \
         chain output {{ type filter hook output priority 0; policy accept; }}\n}}\n"
    );
    for (chain, r) in rules {
        text.push_str(&format!("add rule inet {t} {chain} {r}\n"));
    }
    text
}

/// Cuts node `i`'s heartbeats (UDP to `port`, `[heartbeat] port`) in direction `dir`, inside its
/// namespace: its peers and it stop hearing each other while clients still reach it.
pub fn cut_heartbeats(l: &Layout, i: usize, port: u16, dir: Direction) -> Result<(), LabError> {
    node_nft(l, i, &node_rules(&heartbeat_cut_rules(port, dir)))
}

/// Stops node `i`'s echo requests to `addr` (its witness), inside its namespace.
pub fn cut_pings(l: &Layout, i: usize, addr: Ipv4Addr) -> Result<(), LabError> {
    node_nft(l, i, &node_rules(&ping_cut_rules(addr)))
}

/// Packets dropped so far by the fault rules (the bridge table and every node table).
pub fn dropped(l: &Layout) -> u64 {
    let mut outs = Vec::new();
    if let Ok(o) = run("nft", ["list", "table", "bridge", &table_name(l.prefix())]) {
        outs.push(o);
    }
    for i in l.node_numbers() {
        if let Ok(o) = ns_run(&l.node_ns(i), "nft", ["list", "table", "inet", NODE_TABLE]) {
            outs.push(o);
        }
    }
    outs.iter().map(|o| counted_packets(o)).sum()
}

/// Sum of `counter packets N` in `nft list` output.
pub fn counted_packets(listing: &str) -> u64 {
    let words: Vec<&str> = listing.split_whitespace().collect();
    words
        .windows(3)
        .filter(|w| w[0] == "counter" && w[1] == "packets")
        .filter_map(|w| w[2].parse::<u64>().ok())
        .sum()
}

/// Removes every fault rule (the bridge table and the node tables).
pub fn heal(l: &Layout) -> Result<(), LabError> {
    for i in l.node_numbers() {
        let ns = l.node_ns(i);
        if !Path::new("/run/netns").join(&ns).exists() {
            continue;
        }
        if ns_run(&ns, "nft", ["list", "table", "inet", NODE_TABLE]).is_ok() {
            ns_run(&ns, "nft", ["delete", "table", "inet", NODE_TABLE])?;
        }
    }
    delete_table(l.prefix()).map(drop)
}

/// Where a CPU quota can be set: cgroup v2 with the `cpu` controller (`cpu.max`), or the v1
/// `cpu` hierarchy (`cpu.cfs_quota_us`).
#[derive(Clone, Debug, PartialEq, Eq)]
enum CpuCgroups {
    V2(PathBuf),
    V1(PathBuf),
}

fn cpu_cgroups() -> Result<CpuCgroups, LabError> {
    let v2 = Path::new("/sys/fs/cgroup");
    if std::fs::read_to_string(v2.join("cgroup.controllers")).is_ok_and(|c| c.split_whitespace().any(|x| x == "cpu")) {
        return Ok(CpuCgroups::V2(v2.to_owned()));
    }
    let v1 = Path::new("/sys/fs/cgroup/cpu");
    if v1.join("cpu.cfs_quota_us").is_file() {
        return Ok(CpuCgroups::V1(v1.to_owned()));
    }
    Err(LabError::Missing {
        what: "a cgroup CPU controller".into(),
        detail: "neither /sys/fs/cgroup/cgroup.controllers with cpu (v2) nor /sys/fs/cgroup/cpu/cpu.cfs_quota_us (v1)".into(),
    })
}

fn write(path: &Path, text: &str) -> Result<(), LabError> {
    std::fs::write(path, text).map_err(|e| LabError::io(path, e))
}

/// The cgroup of `pid` in a hierarchy (v2: the `0::` line; v1: the line naming `cpu`).
fn cgroup_of(pid: i32, v2: bool) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
        let hit = if v2 { ctrl.is_empty() } else { ctrl.split(',').any(|c| c == "cpu") };
        hit.then(|| path.to_owned())
    })
}

/// Moves every process of cgroup `dir` to the hierarchy's root `root`.
fn empty_cgroup(dir: &Path, root: &Path) {
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    for p in procs.split_whitespace() {
        let _ = std::fs::write(root.join("cgroup.procs"), p);
    }
}

/// Processes held in a cgroup with a CPU quota (CPU starvation) until dropped or
/// [`Starve::end`]: then they go back to their cgroups and the cgroup is removed.
#[derive(Debug)]
pub struct Starve {
    dir: PathBuf,
    root: PathBuf,
    /// (pid, its cgroup before).
    moved: Vec<(i32, String)>,
    ended: bool,
}

impl Starve {
    /// Moves `pids` (whole processes) into a new cgroup `farmlab-<name>` allowed `quota_us` of
    /// CPU time per `period_us` (e.g. 5000 / 100000: 5% of one CPU).
    pub fn start(name: &str, pids: &[i32], quota_us: u64, period_us: u64) -> Result<Starve, LabError> {
        let cg = cpu_cgroups()?;
        let (root, v2) = match &cg {
            CpuCgroups::V2(r) => (r.clone(), true),
            CpuCgroups::V1(r) => (r.clone(), false),
        };
        let dir = root.join(format!("farmlab-{name}"));
        if dir.exists() {
            // Left by an interrupted run.
            empty_cgroup(&dir, &root);
            let _ = std::fs::remove_dir(&dir);
        }
        if v2 {
            // The controller must be enabled for the root's children.
            let _ = std::fs::write(root.join("cgroup.subtree_control"), "+cpu");
        }
        std::fs::create_dir(&dir).map_err(|e| LabError::io(&dir, e))?;
        let mut s = Starve { dir, root, moved: Vec::new(), ended: false };
        if v2 {
            write(&s.dir.join("cpu.max"), &format!("{quota_us} {period_us}"))?;
        } else {
            write(&s.dir.join("cpu.cfs_period_us"), &period_us.to_string())?;
            write(&s.dir.join("cpu.cfs_quota_us"), &quota_us.to_string())?;
        }
        for &p in pids {
            let before = cgroup_of(p, v2).unwrap_or_else(|| "/".into());
            write(&s.dir.join("cgroup.procs"), &p.to_string())?;
            s.moved.push((p, before));
        }
        Ok(s)
    }

    /// `(nr_periods, nr_throttled)` of the cgroup's `cpu.stat` so far: how many quota periods
    /// passed, and in how many the processes were stopped for using up their quota.
    pub fn throttled(&self) -> Option<(u64, u64)> {
        let text = std::fs::read_to_string(self.dir.join("cpu.stat")).ok()?;
        let field = |name: &str| {
            text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
        };
        Some((field("nr_periods ")?, field("nr_throttled ")?))
    }

    /// The processes moved.
    pub fn pids(&self) -> Vec<i32> {
        self.moved.iter().map(|(p, _)| *p).collect()
    }

    /// Ends the starvation: every process back where it was, the cgroup removed.
    pub fn end(mut self) -> Result<(), LabError> {
        self.restore()
    }

    fn restore(&mut self) -> Result<(), LabError> {
        if self.ended {
            return Ok(());
        }
        self.ended = true;
        for (p, before) in &self.moved {
            if super::procs::alive(*p) {
                let back = self.root.join(before.trim_start_matches('/')).join("cgroup.procs");
                let _ = std::fs::write(&back, p.to_string())
                    .or_else(|_| std::fs::write(self.root.join("cgroup.procs"), p.to_string()));
            }
        }
        // Processes started meanwhile (farmd's scripts and helpers) were born in the cgroup:
        // they go to the root's; threads still exiting may hold the cgroup a moment.
        for _ in 0..50 {
            empty_cgroup(&self.dir, &self.root);
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::fs::remove_dir(&self.dir).map_err(|e| LabError::io(&self.dir, e))
    }
}

impl Drop for Starve {
    fn drop(&mut self) {
        if let Err(e) = self.restore() {
            tracing::error!(error = %e, "removing the starvation cgroup");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_cuts_both_directions_between_groups_only() {
        let l = Layout::new("p", 3, 1).unwrap();
        let r = partition_rules(&l, &[&[1], &[2, 3]]);
        assert_eq!(r.len(), 4);
        assert!(r.contains(&"iifname \"p-n1\" oifname \"p-n2\" counter drop".to_owned()));
        assert!(r.contains(&"iifname \"p-n3\" oifname \"p-n1\" counter drop".to_owned()));
        assert!(!r.iter().any(|x| x.contains("\"p-n2\" oifname \"p-n3\"")));
        assert!(!r.iter().any(|x| x.contains("p-cl")));
    }

    #[test]
    fn node_rules_cut_one_class_of_traffic() {
        let r = heartbeat_cut_rules(4790, Direction::Both);
        assert_eq!(r, vec![("input", "udp dport 4790 counter drop".to_owned()), ("output", "udp dport 4790 counter drop".to_owned())]);
        assert_eq!(heartbeat_cut_rules(4790, Direction::In).len(), 1);
        let mut all = r;
        all.extend(ping_cut_rules(Ipv4Addr::new(198, 18, 1, 1)));
        let text = node_rules(&all);
        assert!(text.starts_with("table inet farmfault {"), "{text}");
        assert!(text.contains("add rule inet farmfault output ip daddr 198.18.1.1 icmp type echo-request counter drop\n"));
        assert_eq!(text.matches("add rule").count(), 3);
    }

    #[test]
    fn counters_are_summed() {
        let listing = "table bridge x {\n chain forward {\n iifname \"a\" counter packets 12 bytes 900 drop\n \
                       udp dport 4790 numgen random mod 100 < 20 counter packets 3 bytes 1 drop\n }\n}";
        assert_eq!(counted_packets(listing), 15);
        assert_eq!(counted_packets(""), 0);
    }

    #[test]
    fn loss_rules_cover_every_node() {
        let l = Layout::new("p", 2, 1).unwrap();
        let r = udp_loss_rules(&l, 4790, 20);
        assert_eq!(r.len(), 2);
        assert!(r[1].contains("iifname \"p-n2\" udp dport 4790 numgen random mod 100 < 20"));
    }
}
