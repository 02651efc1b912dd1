//! The farm configuration a SafeKit module converts to ([`Model`]), and its TOML text.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use farm_config::init::toml_string as q;

/// A `[[node]]`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct NodeOut {
    pub name: String,
    pub addrs: Vec<IpAddr>,
    pub weight: Option<u32>,
}

/// A `[[vip.rule]]` before it is placed on its VIPs.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RuleOut {
    /// The VIP it applies to; `None`: every VIP (`virtual_addr="*"` or absent).
    pub vip: Option<IpAddr>,
    pub proto: &'static str,
    /// Inclusive port range (0-65535: `"all"`).
    pub ports: (u16, u16),
    pub affinity: &'static str,
    /// `file:line` of the `<rule>`, for the comment and the warnings.
    pub origin: String,
}

impl RuleOut {
    pub fn ports_text(&self) -> String {
        match self.ports {
            (0, 65535) => "all".to_string(),
            (a, b) if a == b => a.to_string(),
            (a, b) => format!("{a}-{b}"),
        }
    }
}

/// A `[[checker]]`: its keys with values already written as TOML.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct CheckerOut {
    pub name: String,
    pub kind: &'static str,
    pub keys: Vec<(&'static str, String)>,
    /// Where it comes from (a comment above it).
    pub comment: String,
}

/// `[scripts]`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ScriptsOut {
    pub dir: PathBuf,
    pub timeout: Duration,
    pub stop_drain_timeout: Duration,
    pub env: Vec<(String, String)>,
}

/// Everything the conversion decided.
#[derive(Debug, Default)]
pub(super) struct Model {
    pub module: String,
    pub cluster_id: u32,
    pub secret_file: PathBuf,
    pub token_file: PathBuf,
    /// Where the module came from (header comment).
    pub sources: Vec<String>,
    pub autostart: Option<bool>,
    pub nodes: Vec<NodeOut>,
    /// The heartbeat LANs, in the order of the nodes' `addrs`.
    pub lans: Vec<String>,
    pub hb_port: Option<u16>,
    pub pulse: Option<Duration>,
    pub dead_after: Option<Duration>,
    pub vips: Vec<IpAddr>,
    /// The rules placed on each VIP (same order as `vips`).
    pub vip_rules: Vec<Vec<RuleOut>>,
    /// `[dataplane] uplink` and a comment on where it comes from.
    pub uplink: Option<(String, String)>,
    pub checkers: Vec<CheckerOut>,
    pub scripts: Option<ScriptsOut>,
    pub maxloop: Option<u32>,
    pub loop_interval: Option<Duration>,
    /// The warnings, repeated as comments at the top of the file.
    pub warnings: Vec<String>,
}

/// A duration as farm writes it: the largest unit that divides it (`"24h"`, `"10s"`, `"700ms"`).
pub(super) fn fmt_duration(d: Duration) -> String {
    let us = d.as_micros();
    if us == 0 {
        return "0s".to_string();
    }
    for (unit, n) in [("d", 86_400_000_000u128), ("h", 3_600_000_000), ("m", 60_000_000), ("s", 1_000_000), ("ms", 1_000)] {
        if (us / n) * n == us {
            return format!("{}{unit}", us / n);
        }
    }
    format!("{us}us")
}

fn qd(d: Duration) -> String {
    q(&fmt_duration(d))
}

impl Model {
    /// The configuration file.
    pub fn to_toml(&self) -> String {
        let mut t = String::new();
        // `write!` to a String cannot fail.
        macro_rules! w {
            ($($a:tt)*) => {{ let _ = writeln!(t, $($a)*); }};
        }
        w!("# farm configuration of module {:?}, converted from SafeKit by `farmctl import safekit`:", self.module);
        for s in &self.sources {
            w!("#   {s}");
        }
        w!("# Every key is described in configs/README.md. Next: `farmctl --config THIS-FILE config init`");
        w!("# writes the heartbeat secret, the API token and a random hash_seed; copy them with this file");
        w!("# to every node.");
        if self.warnings.is_empty() {
            w!("#");
            w!("# Everything in the SafeKit files was converted.");
        } else {
            w!("#");
            w!("# NOT CONVERTED, or converted with another meaning (also printed by the import):");
            for x in &self.warnings {
                w!("#   - {x}");
            }
        }
        w!();
        w!("[module]");
        w!("name = {}", q(&self.module));
        w!("cluster_id = {}                 # random: farms sharing a LAN need different ids", self.cluster_id);
        w!("secret_file = {}   # heartbeat HMAC key, mode 0600 (farmctl config init)", q(&self.secret_file.display().to_string()));
        if let Some(a) = self.autostart {
            w!("autostart = {a}                   # <service boot=...>");
        }
        w!();
        if !self.lans.is_empty() {
            w!("# Nodes from cluster.xml; addrs[k] is the node's address on SafeKit LAN {:?}.", self.lans);
        }
        for n in &self.nodes {
            w!("[[node]]");
            w!("name = {}", q(&n.name));
            let a: Vec<String> = n.addrs.iter().map(|a| q(&a.to_string())).collect();
            w!("addrs = [{}]", a.join(", "));
            if let Some(wt) = n.weight {
                w!("weight = {wt}                       # <host power>");
            }
            w!();
        }
        w!("[heartbeat]                        # <farm>: the membership protocol");
        if let Some(p) = self.hb_port {
            w!("port = {p}");
        }
        w!("pulse = {}", qd(self.pulse.unwrap_or(Duration::from_millis(100))));
        w!("dead_after = {}                 # slost_count x pulse", qd(self.dead_after.unwrap_or(Duration::from_secs(1))));
        w!();
        for (vip, rules) in self.vips.iter().zip(&self.vip_rules) {
            w!("[[vip]]                            # <virtual_addr>");
            w!("addr = {}", q(&vip.to_string()));
            w!();
            for r in rules {
                w!("[[vip.rule]]                       # <rule> at {}", r.origin);
                w!("proto = {}", q(r.proto));
                w!("ports = {}", q(&r.ports_text()));
                w!("affinity = {}", q(r.affinity));
                w!();
            }
        }
        if !self.vips.is_empty() {
            w!("[dataplane]");
            match &self.uplink {
                Some((u, why)) => w!("uplink = {}   # {why}", q(u)),
                None => w!("enabled = false"),
            }
            w!("# The data plane owns the uplink NIC: the node address goes on the TAP (tap_addrs) and the");
            w!("# VIP on lo, with the kernel told not to answer ARP for it (vagrant/provision-node.sh).");
            w!("# tap_addrs = [\"{{addr0}}/24\"]");
            w!();
        } else {
            w!("[dataplane]");
            w!("enabled = false                    # no <vip>: control-only (health URL for a load balancer)");
            w!();
        }
        if let Some(s) = &self.scripts {
            w!("[scripts]                          # <user>: SafeKit's start_both / stop_both, copied here");
            w!("dir = {}", q(&s.dir.display().to_string()));
            w!("start_both = \"start_both\"");
            w!("stop_both = \"stop_both\"");
            w!("timeout = {}                 # the longest of nicestoptimeout, forcestoptimeout", qd(s.timeout));
            w!("stop_drain_timeout = {}      # nicestoptimeout", qd(s.stop_drain_timeout));
            if !s.env.is_empty() {
                let e: Vec<String> = s.env.iter().map(|(k, v)| format!("{} = {}", q(k), q(v))).collect();
                w!("env = {{ {} }}   # <var>", e.join(", "));
            }
            w!();
        }
        for c in &self.checkers {
            w!("# {}", c.comment);
            w!("[[checker]]");
            w!("name = {}", q(&c.name));
            w!("kind = {}", q(c.kind));
            for (k, v) in &c.keys {
                w!("{k} = {v}");
            }
            w!();
        }
        if self.maxloop.is_some() || self.loop_interval.is_some() {
            w!("[restart]                          # <service maxloop loop_interval>");
            if let Some(m) = self.maxloop {
                w!("maxloop = {m}");
            }
            if let Some(l) = self.loop_interval {
                w!("loop_interval = {}", qd(l));
            }
            w!();
        }
        w!("[api]");
        w!("listen = \"0.0.0.0:9010\"            # SafeKit's web service port: health URL /var/modules/{}/ready.txt", self.module);
        w!("token_file = {}   # bearer token for commands over TCP (farmctl config init)", q(&self.token_file.display().to_string()));
        t
    }
}

/// A checker's key holding a duration.
pub(super) fn dur_key(k: &'static str, d: Duration) -> (&'static str, String) {
    (k, qd(d))
}

/// A checker's key holding a string.
pub(super) fn str_key(k: &'static str, s: &str) -> (&'static str, String) {
    (k, q(s))
}
