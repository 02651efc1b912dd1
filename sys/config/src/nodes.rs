//! `[[node]]` and `[[vip]]` / `[[vip.rule]]`, with their cross-entry checks.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::Deserialize;

use crate::types::{de_affinity, default_affinity, Name, NodeId, Ports, Proto, Weight};
use crate::validate::Report;

/// `[[node]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NodeSpec {
    pub name: Name,
    pub id: Option<NodeId>,
    #[serde(deserialize_with = "crate::types::ip::list")]
    pub addrs: Vec<IpAddr>,
    #[serde(default)]
    pub weight: Weight,
    pub priority: Option<u32>,
}

/// A farm member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Unique name (given to `--node`, shown by farmctl).
    pub name: Name,
    /// Unique id, 0..=63 (default: position in the list).
    pub id: NodeId,
    /// One address per heartbeat LAN; `addrs[k]` of every node are on LAN `k`.
    pub addrs: Vec<IpAddr>,
    /// Share of buckets in farm mode (1..=1000, default 1).
    pub weight: Weight,
    /// Rank in failover mode: the live node with the LOWEST value owns everything
    /// (default: position in the list, starting at 1).
    pub priority: u32,
}

/// A rule of a VIP as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleSpec {
    pub proto: Proto,
    pub ports: Option<Ports>,
    #[serde(deserialize_with = "de_affinity", default = "default_affinity")]
    pub affinity: farm_table::Affinity,
}

/// `[[vip]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VipSpec {
    #[serde(deserialize_with = "crate::types::ip::one")]
    pub addr: IpAddr,
    #[serde(default)]
    pub rule: Vec<RuleSpec>,
}

/// Which packets to a VIP are load-balanced, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// `tcp`, `udp` or `icmp`.
    pub proto: Proto,
    /// Destination ports (`All` for icmp).
    pub ports: Ports,
    /// `on_addr` (default; client affinity) or `on_port` (per connection).
    pub affinity: farm_table::Affinity,
}

impl Rule {
    /// Whether a packet of `proto` to destination `port` matches (port ignored for icmp).
    pub fn matches(&self, proto: Proto, port: u16) -> bool {
        self.proto == proto && (proto == Proto::Icmp || self.ports.contains(port))
    }
}

/// A virtual IP address shared by the farm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vip {
    /// The address (IPv4 or IPv6).
    pub addr: IpAddr,
    /// Its rules; traffic to the VIP that matches none is dropped.
    pub rules: Vec<Rule>,
}

impl Vip {
    /// The rule matching a packet, if any (rules never overlap, so there is at most one).
    pub fn rule_for(&self, proto: Proto, port: u16) -> Option<&Rule> {
        self.rules.iter().find(|r| r.matches(proto, port))
    }
}

fn family(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

fn unicast(ip: &IpAddr) -> bool {
    !ip.is_unspecified()
        && !ip.is_multicast()
        && match ip {
            IpAddr::V4(v4) => !v4.is_broadcast(),
            IpAddr::V6(_) => true,
        }
}

pub(crate) fn resolve_nodes(specs: Vec<NodeSpec>, r: &mut Report) -> Vec<Node> {
    if specs.is_empty() {
        r.err("node", "expected at least one [[node]] entry");
    }
    if specs.len() > farm_table::MAX_NODES {
        r.err(
            "node",
            format!(
                "expected at most {} nodes, got {}",
                farm_table::MAX_NODES,
                specs.len()
            ),
        );
    }
    let mut nodes = Vec::with_capacity(specs.len());
    for (i, s) in specs.into_iter().enumerate() {
        let id = match s.id {
            Some(id) => id,
            None => match NodeId::try_from(i as i64) {
                Ok(id) => id,
                Err(e) => {
                    r.err(format!("node[{i}].id"), e);
                    continue;
                }
            },
        };
        nodes.push(Node {
            name: s.name,
            id,
            addrs: s.addrs,
            weight: s.weight,
            priority: s.priority.unwrap_or(i as u32 + 1),
        });
    }
    check_nodes(&nodes, r);
    nodes
}

fn check_nodes(nodes: &[Node], r: &mut Report) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut ids: HashMap<u8, usize> = HashMap::new();
    let mut prios: HashMap<u32, usize> = HashMap::new();
    let mut addrs: HashMap<IpAddr, String> = HashMap::new();
    let lans = nodes.first().map_or(0, |n| n.addrs.len());
    for (i, n) in nodes.iter().enumerate() {
        if let Some(j) = names.insert(n.name.as_str(), i) {
            r.err(
                format!("node[{i}].name"),
                format!(
                    "duplicate node name {:?} (also node[{j}].name)",
                    n.name.as_str()
                ),
            );
        }
        if let Some(j) = ids.insert(n.id.get(), i) {
            r.err(
                format!("node[{i}].id"),
                format!(
                    "duplicate node id {} (also node[{j}]); expected unique ids 0..=63",
                    n.id
                ),
            );
        }
        if let Some(j) = prios.insert(n.priority, i) {
            r.err(
                format!("node[{i}].priority"),
                format!(
                    "duplicate priority {} (also node[{j}]); expected unique priorities",
                    n.priority
                ),
            );
        }
        if n.addrs.is_empty() {
            r.err(
                format!("node[{i}].addrs"),
                "expected at least one address (one per heartbeat LAN)",
            );
        } else if n.addrs.len() != lans {
            r.err(
                format!("node[{i}].addrs"),
                format!(
                    "expected as many addresses as node[0] ({lans}, one per heartbeat LAN), got {}",
                    n.addrs.len()
                ),
            );
        }
        for (k, a) in n.addrs.iter().enumerate() {
            let key = format!("node[{i}].addrs[{k}]");
            if !unicast(a) {
                r.err(&key, format!("expected a unicast address, got {a}"));
            }
            if let Some(first) = nodes[0].addrs.get(k) {
                if first.is_ipv4() != a.is_ipv4() {
                    r.err(
                        &key,
                        format!(
                            "expected an {} address like node[0].addrs[{k}] (same LAN), got {a}",
                            family(first)
                        ),
                    );
                }
            }
            if let Some(other) = addrs.insert(*a, key.clone()) {
                r.err(&key, format!("duplicate address {a} (also {other})"));
            }
        }
    }
}

pub(crate) fn resolve_vips(specs: Vec<VipSpec>, nodes: &[Node], r: &mut Report) -> Vec<Vip> {
    let mut seen: HashMap<IpAddr, usize> = HashMap::new();
    let mut vips = Vec::with_capacity(specs.len());
    for (v, spec) in specs.into_iter().enumerate() {
        let addr = spec.addr;
        if !unicast(&addr) {
            r.err(
                format!("vip[{v}].addr"),
                format!("expected a unicast address, got {addr}"),
            );
        }
        if let Some(j) = seen.insert(addr, v) {
            r.err(
                format!("vip[{v}].addr"),
                format!("duplicate VIP {addr} (also vip[{j}].addr)"),
            );
        }
        if let Some(n) = nodes.iter().position(|n| n.addrs.contains(&addr)) {
            r.err(
                format!("vip[{v}].addr"),
                format!("expected an address no node uses, but {addr} is an address of node[{n}]"),
            );
        }
        if spec.rule.is_empty() {
            r.err(
                format!("vip[{v}]"),
                "expected at least one [[vip.rule]] (traffic matching no rule is dropped)",
            );
        }
        let mut rules: Vec<Rule> = Vec::with_capacity(spec.rule.len());
        for (k, rs) in spec.rule.into_iter().enumerate() {
            let key = format!("vip[{v}].rule[{k}]");
            let ports = match (rs.proto, rs.ports) {
                (Proto::Icmp, None | Some(Ports::All)) => Ports::All,
                (Proto::Icmp, Some(p)) => {
                    r.err(
                        format!("{key}.ports"),
                        format!("expected no ports (or \"all\") for icmp, got \"{p}\""),
                    );
                    Ports::All
                }
                (_, Some(p)) => p,
                (proto, None) => {
                    r.err(&key, format!("missing ports: expected ports = \"80\", \"8000-8100\" or \"all\" for {proto}"));
                    Ports::All
                }
            };
            if rs.proto == Proto::Icmp && rs.affinity == farm_table::Affinity::OnPort {
                r.err(
                    format!("{key}.affinity"),
                    "expected \"on_addr\" for icmp (ICMP has no ports)",
                );
            }
            let rule = Rule {
                proto: rs.proto,
                ports,
                affinity: rs.affinity,
            };
            for (j, other) in rules.iter().enumerate() {
                if other.proto == rule.proto && other.ports.overlaps(rule.ports) {
                    r.err(
                        format!("{key}.ports"),
                        format!(
                            "{} ports \"{}\" overlap vip[{v}].rule[{j}].ports \"{}\"; expected disjoint port sets per VIP and protocol",
                            rule.proto, rule.ports, other.ports
                        ),
                    );
                }
            }
            rules.push(rule);
        }
        vips.push(Vip { addr, rules });
    }
    vips
}
