//! Teardown and status, from what is on the machine (not from memory): they work after a
//! failed, interrupted or killed `up`, and `down` is idempotent.
//!
//! Teardown order: farmd (pid files; it stops its data plane and Apache), every Apache (pid
//! files), every process left in the lab's namespaces (`ip netns pids`) and every process whose
//! command line names the lab's run directory, then the namespaces (their veths go with them),
//! leftover host veths, the bridge (only if its alias marks it as this lab's), the lab's files
//! in /dev/shm and /var/run/dpdk, and the run directory.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use super::cmd::run;
use super::error::LabError;
use super::layout::{bridge_alias, bridge_name, check_prefix, is_lab_name, run_dir, shm_prefix};
use super::net::{host_links, link_alias, link_exists, namespaces, ns_brief_addrs};
use super::procs::{alive, cmdline, empty_namespace, read_pid, stop_pid_file, terminate};
use super::state::State;

/// What a teardown did.
#[derive(Clone, Debug, Default)]
pub struct DownReport {
    /// What was removed or stopped, one entry each.
    pub removed: Vec<String>,
    /// Things left alone on purpose (e.g. a bridge with the lab's name that is not the lab's).
    pub warnings: Vec<String>,
}

/// Pids of processes whose command line contains `marker` (the lab's run directory).
pub fn pids_mentioning(marker: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| *p != me && *p > 1)
        .filter(|p| cmdline(*p).contains(marker) && alive(*p))
        .collect()
}

fn node_dirs(r: &Path) -> Vec<std::path::PathBuf> {
    let Ok(rd) = std::fs::read_dir(r) else { return Vec::new() };
    let mut v: Vec<_> = rd
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name().to_str().is_some_and(|n| {
                n.strip_prefix('n').is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            })
        })
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// Removes every trace of the lab with `prefix`. Idempotent: on a clean machine it does
/// nothing and succeeds. Fails with [`LabError::Leftovers`] if something could not be removed.
pub fn down(prefix: &str) -> Result<DownReport, LabError> {
    check_prefix(prefix)?;
    let mut rep = DownReport::default();
    let r = run_dir(prefix);
    let marker = format!("{}/", r.display());

    // 1. Supervisors first, so nothing is restarted behind our back; then the applications.
    for d in node_dirs(&r) {
        for (daemon, grace) in [("farmd", 5), ("farm-dataplane", 3)] {
            if stop_pid_file(&d.join(format!("{daemon}.pid")), &marker, Duration::from_secs(grace)) {
                rep.removed.push(format!("{daemon} of {}", d.display()));
            }
        }
        let conf = d.join("apache/httpd.conf");
        if stop_pid_file(&d.join("apache/httpd.pid"), &conf.to_string_lossy(), Duration::from_secs(3)) {
            rep.removed.push(format!("apache2 of {}", d.display()));
        }
    }

    // 2. Whatever else runs in the namespaces, or names the run directory anywhere.
    let lab_ns: Vec<String> =
        namespaces()?.into_iter().filter(|n| is_lab_name(prefix, n)).collect();
    for ns in &lab_ns {
        let left = empty_namespace(ns, Duration::from_secs(2));
        if !left.is_empty() {
            rep.warnings.push(format!("processes {left:?} survive in namespace {ns}"));
        }
    }
    let strays = pids_mentioning(&marker);
    if !strays.is_empty() {
        rep.removed.push(format!("processes {strays:?} naming {}", r.display()));
        terminate(&strays, Duration::from_secs(2));
    }

    // 3. Namespaces (their veth ends and nft tables go with them), then host links.
    for ns in &lab_ns {
        run("ip", ["netns", "delete", ns])?;
        rep.removed.push(format!("namespace {ns}"));
    }
    for link in host_links()?.into_iter().filter(|l| is_lab_name(prefix, l)) {
        // A veth whose namespace end is already gone disappears by itself.
        if link_exists(&link) {
            let _ = run("ip", ["link", "delete", &link]);
            rep.removed.push(format!("link {link}"));
        }
    }
    let br = bridge_name(prefix);
    if link_exists(&br) {
        if link_alias(&br).as_deref() == Some(bridge_alias(prefix).as_str()) {
            run("ip", ["link", "delete", &br])?;
            rep.removed.push(format!("bridge {br}"));
        } else {
            rep.warnings.push(format!("bridge {br} exists but is not a farm-lab bridge: left alone"));
        }
    }

    if super::faults::delete_table(prefix)? {
        rep.removed.push(format!("nftables table bridge {}", super::faults::table_name(prefix)));
    }

    // 4. Files.
    let shm = shm_prefix(prefix);
    for dir in ["/dev/shm", "/var/run/dpdk", "/run/dpdk"] {
        let Ok(rd) = std::fs::read_dir(dir) else { continue };
        for e in rd.filter_map(|e| e.ok()) {
            if e.file_name().to_str().is_some_and(|n| n.starts_with(&shm)) {
                let p = e.path();
                let res = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
                res.map_err(|err| LabError::io(&p, err))?;
                rep.removed.push(p.display().to_string());
            }
        }
    }
    if r.exists() {
        std::fs::remove_dir_all(&r).map_err(|e| LabError::io(&r, e))?;
        rep.removed.push(r.display().to_string());
    }

    let left = leftovers(prefix)?;
    if left.is_empty() {
        Ok(rep)
    } else {
        Err(LabError::Leftovers(left.join(", ")))
    }
}

/// What of the lab with `prefix` is still on the machine (empty after a clean teardown).
pub fn leftovers(prefix: &str) -> Result<Vec<String>, LabError> {
    let mut left: Vec<String> = namespaces()?
        .into_iter()
        .filter(|n| is_lab_name(prefix, n))
        .map(|n| format!("namespace {n}"))
        .collect();
    left.extend(
        host_links()?.into_iter().filter(|l| is_lab_name(prefix, l)).map(|l| format!("link {l}")),
    );
    let br = bridge_name(prefix);
    if link_exists(&br) && link_alias(&br).as_deref() == Some(bridge_alias(prefix).as_str()) {
        left.push(format!("bridge {br}"));
    }
    if super::faults::table_exists(prefix) {
        left.push(format!("nftables table bridge {}", super::faults::table_name(prefix)));
    }
    let r = run_dir(prefix);
    let pids = pids_mentioning(&format!("{}/", r.display()));
    if !pids.is_empty() {
        left.push(format!("processes {pids:?}"));
    }
    if r.exists() {
        left.push(r.display().to_string());
    }
    let shm = shm_prefix(prefix);
    if let Ok(rd) = std::fs::read_dir("/dev/shm") {
        left.extend(
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(&shm)))
                .map(|e| e.path().display().to_string()),
        );
    }
    Ok(left)
}

/// One node, as `status` sees it.
#[derive(Clone, Debug)]
pub struct NodeStatus {
    /// Node name.
    pub name: String,
    /// Its namespace.
    pub ns: String,
    /// Whether the namespace exists.
    pub ns_exists: bool,
    /// Apache's pid, if running.
    pub apache: Option<i32>,
    /// farmd's pid, if running.
    pub farmd: Option<i32>,
    /// farm-dataplane's pid, if started by the lab (data-plane mode) and running.
    pub dataplane: Option<i32>,
    /// `ip -br addr` of dp0 and farm0.
    pub addrs: Vec<String>,
}

/// The lab as found on the machine.
#[derive(Clone, Debug)]
pub struct StatusReport {
    /// The lab prefix.
    pub prefix: String,
    /// The lab's recorded state, if its run directory has one.
    pub state: Option<State>,
    /// Whether the bridge exists (and is the lab's).
    pub bridge: bool,
    /// Nodes.
    pub nodes: Vec<NodeStatus>,
    /// Whether the client namespace exists.
    pub client: bool,
    /// What `leftovers` reports (everything of the lab on the machine).
    pub present: Vec<String>,
}

/// The status of the lab with `prefix`.
pub fn status(prefix: &str) -> Result<StatusReport, LabError> {
    check_prefix(prefix)?;
    let r = run_dir(prefix);
    let state = State::read(&r).ok();
    let all_ns = namespaces()?;
    let br = bridge_name(prefix);
    let mut nodes = Vec::new();
    let count = state.as_ref().map_or(0, |s| s.nodes);
    for i in 1..=count {
        let name = format!("n{i}");
        let ns = format!("{prefix}-n{i}");
        let d = r.join(&name);
        let running = |p: &Path| read_pid(p).filter(|p| alive(*p));
        let ns_exists = all_ns.contains(&ns);
        let farm = state.as_ref().is_some_and(|s| s.mode.has_dataplane());
        let addrs = if ns_exists {
            let mut a = vec![ns_brief_addrs(&ns, "dp0")];
            if farm {
                a.push(ns_brief_addrs(&ns, "farm0"));
                a.push(ns_brief_addrs(&ns, "lo"));
            }
            a
        } else {
            Vec::new()
        };
        nodes.push(NodeStatus {
            apache: running(&d.join("apache/httpd.pid")),
            farmd: running(&d.join("farmd.pid")),
            dataplane: running(&d.join("farm-dataplane.pid")),
            name,
            ns,
            ns_exists,
            addrs,
        });
    }
    Ok(StatusReport {
        prefix: prefix.to_owned(),
        bridge: link_exists(&br) && link_alias(&br).as_deref() == Some(bridge_alias(prefix).as_str()),
        client: all_ns.contains(&format!("{prefix}-cl")),
        present: leftovers(prefix)?,
        state,
        nodes,
    })
}

impl fmt::Display for StatusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(st) = &self.state else {
            if self.present.is_empty() {
                return writeln!(f, "lab {}: down", self.prefix);
            }
            return writeln!(
                f,
                "lab {}: no state, but found: {} (run `farm-lab down --prefix {}`)",
                self.prefix,
                self.present.join(", "),
                self.prefix
            );
        };
        writeln!(f, "lab {}: mode {}, {} nodes, {} client addresses", self.prefix, st.mode, st.nodes, st.clients)?;
        writeln!(f, "  bridge {}: {}", bridge_name(&self.prefix), if self.bridge { "up" } else { "MISSING" })?;
        writeln!(
            f,
            "  client {}-cl: {}",
            self.prefix,
            if self.client { "present" } else { "MISSING" }
        )?;
        let pid = |p: Option<i32>| p.map_or("-".to_owned(), |p| p.to_string());
        for n in &self.nodes {
            writeln!(
                f,
                "  {} ({}): namespace {}, apache2 {}, farmd {}, farm-dataplane {}",
                n.name,
                n.ns,
                if n.ns_exists { "present" } else { "MISSING" },
                pid(n.apache),
                pid(n.farmd),
                pid(n.dataplane)
            )?;
            for a in &n.addrs {
                writeln!(f, "      {a}")?;
            }
        }
        Ok(())
    }
}
