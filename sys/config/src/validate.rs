//! Semantic checks of the sections that have no module of their own, and the problem list
//! they feed.

use std::path::{Path, PathBuf};

use crate::error::{Problem, Problems};
use crate::locate::Locator;
use crate::nodes::{Node, Vip};
use crate::sections::{Assignment, Dataplane, Heartbeat, LocalPort, Module, Restart, Scripts, Takeover};
use crate::tap::{max_prefix, TapHost};
use crate::types::duration::show;

/// Problems found so far, as (key path, message).
#[derive(Debug, Default)]
pub(crate) struct Report {
    items: Vec<(String, String)>,
}

impl Report {
    pub(crate) fn err(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.items.push((key.into(), message.into()));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Attaches the file name and the position of each key.
    pub(crate) fn into_problems(self, origin: &str, text: &str) -> Problems {
        let loc = Locator::new(text);
        Problems(
            self.items
                .into_iter()
                .map(|(key, message)| Problem {
                    file: origin.to_string(),
                    line_col: loc.position_of(&key),
                    key,
                    message,
                })
                .collect(),
        )
    }
}

fn absolute(r: &mut Report, key: &str, p: &Path) {
    if !p.is_absolute() {
        r.err(
            key,
            format!(
                "expected an absolute path, got {:?}",
                p.display().to_string()
            ),
        );
    }
}

/// The placeholder that per-node values may contain (see [`Config::localize`](crate::Config::localize)).
pub(crate) const NODE_PLACEHOLDER: &str = "{node}";

/// Only `{node}` may appear between braces.
fn placeholders(r: &mut Report, key: &str, value: &str) {
    if value.replace(NODE_PLACEHOLDER, "").contains(['{', '}']) {
        r.err(
            key,
            format!(
                "expected no braces other than the {NODE_PLACEHOLDER} placeholder, got {value:?}"
            ),
        );
    }
}

pub(crate) fn module(m: &Module, r: &mut Report) {
    absolute(r, "module.secret_file", &m.secret_file);
    for (key, p) in [
        ("module.log_dir", &m.log_dir),
        ("module.run_dir", &m.run_dir),
        ("module.table_file", &m.table_file),
    ] {
        absolute(r, key, p);
        placeholders(r, key, &p.to_string_lossy());
    }
}

pub(crate) fn heartbeat(h: &Heartbeat, r: &mut Report) {
    if h.port == 0 {
        r.err("heartbeat.port", "expected a UDP port between 1 and 65535");
    }
    if h.pulse < std::time::Duration::from_millis(1) {
        r.err(
            "heartbeat.pulse",
            format!("expected at least 1ms, got {}", show(h.pulse)),
        );
    }
    if h.dead_after < h.pulse * 3 {
        r.err(
            "heartbeat.dead_after",
            format!(
                "expected at least 3 × pulse ({}), got {}; a single lost heartbeat must not kill a node",
                show(h.pulse * 3),
                show(h.dead_after)
            ),
        );
    }
    if let Some(l) = h.lease {
        let max = h.dead_after.saturating_sub(h.pulse);
        if l < h.pulse || l > max {
            r.err(
                "heartbeat.lease",
                format!(
                    "expected between pulse ({}) and dead_after - pulse ({}), got {}; a longer lease lets a stalled node accept connections after its peers took its buckets",
                    show(h.pulse),
                    show(max),
                    show(l)
                ),
            );
        }
    }
}

pub(crate) fn assignment(a: &Assignment, nodes: &[Node], vips: &[Vip], r: &mut Report) {
    match (a.takeover, a.witness) {
        (Takeover::Always, Some(_)) => r.err(
            "assignment.witness",
            "a witness is only used with takeover = \"majority\"; expected no witness",
        ),
        (Takeover::Majority, None) if nodes.len() == 2 => r.err(
            "assignment.takeover",
            "takeover = \"majority\" with 2 nodes never fails over; expected a witness address",
        ),
        _ => {}
    }
    if let Some(w) = a.witness {
        if nodes.iter().any(|n| n.addrs.contains(&w)) || vips.iter().any(|v| v.addr == w) {
            r.err(
                "assignment.witness",
                format!("expected a third machine's address, but {w} is a node address or a VIP"),
            );
        }
    }
    if a.drain_timeout.is_some_and(|t| t.is_zero()) {
        r.err("assignment.drain_timeout", "expected \"off\" or a duration above zero");
    }
}

pub(crate) fn dataplane(
    d: &mut Dataplane,
    module: &Module,
    nodes: &[Node],
    vips: &[Vip],
    r: &mut Report,
) {
    if d.file_prefix.is_empty() {
        d.file_prefix = format!("farm-{}", module.name);
    } else if d.file_prefix.chars().any(|c| c == '/' || c.is_whitespace()) {
        r.err(
            "dataplane.file_prefix",
            format!("expected no '/' or spaces, got {:?}", d.file_prefix),
        );
    }
    placeholders(r, "dataplane.file_prefix", &d.file_prefix);
    tap_addrs(d, nodes, r);
    if !d.enabled {
        return;
    }
    if d.uplink.is_none() {
        r.err("dataplane", "missing uplink: expected uplink = a PCI address (\"0000:01:00.0\") or a vdev (\"net_af_packet0,iface=veth0\"), or enabled = false");
    }
    if vips.is_empty() {
        r.err(
            "vip",
            "expected at least one [[vip]] when the data plane is enabled",
        );
    }
    let max = farm_table::MAX_LCORES as u32;
    if !(1..=max).contains(&d.workers) {
        r.err(
            "dataplane.workers",
            format!("expected between 1 and {max} workers, got {}", d.workers),
        );
    }
    if let Some(l) = &d.lcores {
        if l.len() != d.workers as usize {
            r.err(
                "dataplane.lcores",
                format!(
                    "expected one CPU per worker ({} workers), got {} CPUs",
                    d.workers,
                    l.len()
                ),
            );
        }
        for (i, c) in l.iter().enumerate() {
            if l[..i].contains(c) {
                r.err(
                    format!("dataplane.lcores[{i}]"),
                    format!("duplicate CPU {c}; expected distinct CPUs"),
                );
            }
        }
    }
    if !d.busy_poll && d.max_sleep.is_zero() {
        r.err(
            "dataplane.max_sleep",
            "expected a duration above zero (or busy_poll = true)",
        );
    }
    if d.mempool_size < 512 {
        r.err(
            "dataplane.mempool_size",
            format!("expected at least 512 mbufs, got {}", d.mempool_size),
        );
    }
    if d.mbuf_cache > 512 || u64::from(d.mbuf_cache) * 3 > u64::from(d.mempool_size) * 2 {
        r.err(
            "dataplane.mbuf_cache",
            format!(
                "expected at most 512 and at most mempool_size / 1.5 ({}), got {}",
                d.mempool_size * 2 / 3,
                d.mbuf_cache
            ),
        );
    }
    if !(1..=512).contains(&d.burst) {
        r.err(
            "dataplane.burst",
            format!("expected between 1 and 512 packets, got {}", d.burst),
        );
    }
    if d.liveness_timeout.is_zero() {
        r.err(
            "dataplane.liveness_timeout",
            "expected a duration above zero",
        );
    }
    local_port(d, r);
    for (i, a) in d.eal_args.iter().enumerate() {
        let opt = a.split('=').next().unwrap_or(a);
        if matches!(opt, "--file-prefix" | "-l" | "--lcores" | "-c") {
            r.err(format!("dataplane.eal_args[{i}]"), format!("{opt} is set from the config (file_prefix, lcores); expected other EAL options"));
        }
    }
}

/// `local_port = "af_xdp"`: a peer name that fits and differs from `tap_name`;
/// `af_xdp_peer` only with it.
fn local_port(d: &Dataplane, r: &mut Report) {
    let tap = d.tap_name.as_str();
    if d.local_port != LocalPort::AfXdp {
        if d.af_xdp_peer.is_some() {
            r.err(
                "dataplane.af_xdp_peer",
                format!("expected no af_xdp_peer with local_port = \"{}\" (it names the veth end of local_port = \"af_xdp\")", d.local_port.as_str()),
            );
        }
        return;
    }
    match (&d.af_xdp_peer, d.xdp_peer()) {
        (Some(p), _) if p.as_str() == tap => r.err(
            "dataplane.af_xdp_peer",
            format!("{:?} is tap_name too; expected another interface name for the data plane's end of the veth pair", p.as_str()),
        ),
        (None, None) => r.err(
            "dataplane.tap_name",
            format!("{tap:?} + \"-dp\" (the default af_xdp_peer) is longer than 15 characters; expected a shorter tap_name, or set af_xdp_peer"),
        ),
        _ => {}
    }
}

/// `tap_addrs`: placeholders name an address every node has, prefix lengths fit the family,
/// no entry twice, and a data plane to carry them.
fn tap_addrs(d: &Dataplane, nodes: &[Node], r: &mut Report) {
    if !d.enabled && !d.tap_addrs.is_empty() {
        r.err(
            "dataplane.tap_addrs",
            "expected no tap_addrs with enabled = false (there is no data plane, hence no TAP)",
        );
        return;
    }
    let lans = nodes.first().map_or(0, |n| n.addrs.len());
    for (i, a) in d.tap_addrs.iter().enumerate() {
        let key = format!("dataplane.tap_addrs[{i}]");
        if let TapHost::NodeAddr(k) = a.host {
            match nodes.first().and_then(|n| n.addrs.get(k)) {
                None => r.err(
                    &key,
                    format!("{a}: the nodes have {lans} address(es) (addrs[0..{lans}]); expected {{addr0}}..{{addr{}}}", lans.saturating_sub(1)),
                ),
                Some(first) if a.prefix_len > max_prefix(first) => r.err(
                    &key,
                    format!(
                        "{a}: node addrs[{k}] are {} addresses; expected a prefix length between 1 and {}",
                        if first.is_ipv4() { "IPv4" } else { "IPv6" },
                        max_prefix(first)
                    ),
                ),
                Some(_) => {}
            }
        }
        if let Some(j) = d.tap_addrs[..i].iter().position(|b| b.host == a.host) {
            r.err(
                &key,
                format!("duplicate address {a} (also dataplane.tap_addrs[{j}]); expected each address once"),
            );
        }
    }
}

fn resolve_script(r: &mut Report, key: &str, dir: Option<&PathBuf>, p: &mut Option<PathBuf>) {
    let Some(path) = p.as_mut() else { return };
    if path.is_absolute() {
        return;
    }
    match dir {
        Some(d) if !path.as_os_str().is_empty() => *path = d.join(&*path),
        _ => r.err(
            key,
            format!(
                "expected an absolute path, or [scripts] dir to resolve it against, got {:?}",
                path.display().to_string()
            ),
        ),
    }
}

pub(crate) fn scripts(s: &mut Scripts, r: &mut Report) {
    if let Some(d) = &s.dir {
        absolute(r, "scripts.dir", d);
    }
    let dir = s.dir.clone();
    resolve_script(r, "scripts.start_both", dir.as_ref(), &mut s.start_both);
    resolve_script(r, "scripts.stop_both", dir.as_ref(), &mut s.stop_both);
    if s.timeout.is_zero() {
        r.err("scripts.timeout", "expected a duration above zero");
    }
    if s.stop_drain_timeout.is_zero() {
        r.err("scripts.stop_drain_timeout", "expected a duration above zero");
    }
    for name in s.env.keys() {
        let ok = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            r.err(
                format!("scripts.env.{name}"),
                format!("expected an environment variable name like FOO_BAR, got {name:?}"),
            );
        }
    }
}

pub(crate) fn restart(x: &Restart, r: &mut Report) {
    if x.loop_interval.is_zero() {
        r.err("restart.loop_interval", "expected a duration above zero");
    }
}
