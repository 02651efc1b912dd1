//! Network faults without netem (DESIGN.md, "Lab"): nftables rules on the lab's bridge, in a
//! `bridge` family table of the host named after the lab (`farmlab_<prefix>`). Frames between
//! two ports are matched per egress port (the bridge runs the forward hook once per copy of a
//! flooded frame), so partitions also cut ARP and VIP floods. Teardown deletes the table.

use super::cmd::{run, run_status, run_with_input};
use super::error::LabError;
use super::layout::Layout;

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

/// Removes every fault rule.
pub fn heal(l: &Layout) -> Result<(), LabError> {
    delete_table(l.prefix()).map(drop)
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
    fn loss_rules_cover_every_node() {
        let l = Layout::new("p", 2, 1).unwrap();
        let r = udp_loss_rules(&l, 4790, 20);
        assert_eq!(r.len(), 2);
        assert!(r[1].contains("iifname \"p-n2\" udp dport 4790 numgen random mod 100 < 20"));
    }
}
