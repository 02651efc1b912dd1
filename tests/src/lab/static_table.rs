//! Data-plane mode: the lab plays farmd's table writer with a fixed assignment, so the data
//! plane, the lab's farm-mode network and the VIP path can be exercised without farmd.
//!
//! Bucket `b` belongs to node number `1 + b mod N` (ids from the config); every node is live.
//! One table per node (`[module] table_file`, `{node}` expanded), created before the node's
//! farm-dataplane starts. The file stays when the lab's process exits (`farm-lab up`), so the
//! data planes keep the published table; teardown removes it.

use std::net::{IpAddr, Ipv4Addr};

use farm_config::{Config, Proto};
use farm_table::{bucket_of, BucketEntry, TableParams, TableWriter};

use super::error::LabError;

/// Node number (1-based) owning bucket `b` among `n` nodes.
pub fn static_owner(b: u32, n: usize) -> usize {
    1 + (b as usize % n)
}

/// The node number (1-based) that serves TCP port `port` of the VIP for client `src` under the
/// static assignment, following the VIP's rule (on_addr / on_port with `src_port`). None if no
/// rule matches.
pub fn vip_owner(cfg: &Config, vip: Ipv4Addr, port: u16, src: Ipv4Addr, src_port: u16) -> Option<usize> {
    let v = cfg.vip(IpAddr::V4(vip))?;
    let rule = v.rules.iter().find(|r| r.matches(Proto::Tcp, port))?;
    let p = (rule.affinity == farm_config::Affinity::OnPort).then_some(src_port);
    let b = bucket_of(&cfg.hash_key(), IpAddr::V4(src), p, cfg.buckets());
    Some(static_owner(b, cfg.nodes.len()))
}

/// Creates every node's table and publishes the static assignment.
pub fn create_tables(cfg: &Config) -> Result<Vec<TableWriter>, LabError> {
    let n = cfg.nodes.len();
    let entries: Vec<BucketEntry> = (0..cfg.buckets())
        .map(|b| BucketEntry::owned(cfg.nodes[static_owner(b, n) - 1].id.get()))
        .collect();
    let live = cfg.nodes.iter().fold(0u64, |m, node| m | 1 << node.id.get());
    let mut tables = Vec::new();
    for node in &cfg.nodes {
        let mut local = cfg.clone();
        local.localize(&node.name.to_string());
        let params = TableParams {
            n_buckets: cfg.buckets(),
            node_id: node.id.get(),
            n_lcores: cfg.dataplane.workers,
            hash_key: cfg.hash_key(),
        };
        let path = &local.module.table_file;
        let table_err = |e: farm_table::TableError| LabError::Config(format!("table {}: {e}", path.display()));
        let mut w = TableWriter::create(path, &params).map_err(table_err)?;
        w.publish(&entries, live, std::time::Duration::from_secs(1)).map_err(table_err)?;
        // A fixed table with no farmd behind it: a lease that never expires.
        w.set_lease(u64::MAX);
        tables.push(w);
    }
    Ok(tables)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::farm::{render_config, LAB_TEMPLATE};
    use crate::lab::layout::Layout;

    #[test]
    fn static_assignment_spreads_buckets_round_robin() {
        assert_eq!(static_owner(0, 3), 1);
        assert_eq!(static_owner(1, 3), 2);
        assert_eq!(static_owner(5, 3), 3);
        assert_eq!(static_owner(6, 3), 1);
    }

    #[test]
    fn vip_owner_follows_the_hash_and_the_rules() {
        let l = Layout::new("st", 3, 508).unwrap();
        let (_, cfg) = render_config(LAB_TEMPLATE, &l, std::path::Path::new("/b")).unwrap();
        let vip = l.vip();
        let mut seen = [0usize; 4];
        for a in l.client_addrs() {
            let o = vip_owner(&cfg, vip, 80, a, 40000).unwrap();
            // on_addr: the source port does not matter.
            assert_eq!(vip_owner(&cfg, vip, 80, a, 1234), Some(o));
            seen[o] += 1;
        }
        assert_eq!(seen[0], 0);
        // 508 clients over 3 nodes: each gets a fair share.
        assert!(seen[1..].iter().all(|&c| c > 120), "{seen:?}");
        assert_eq!(vip_owner(&cfg, vip, 81, l.client_addr(0), 1), None, "no rule for port 81");
        assert_eq!(vip_owner(&cfg, l.node_addr(1), 80, l.client_addr(0), 1), None, "not a VIP");
    }

    #[test]
    fn tables_are_created_per_node_with_the_assignment() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::new("st", 2, 10).unwrap();
        let (text, _) = render_config(LAB_TEMPLATE, &l, std::path::Path::new("/b")).unwrap();
        let text = text.replace("/dev/shm/st-lab-{node}", &format!("{}/t-{{node}}", dir.path().display()));
        let cfg = Config::from_str(&text, "t.toml").unwrap();
        let tables = create_tables(&cfg).unwrap();
        assert_eq!(tables.len(), 2);
        assert!(dir.path().join("t-n1").exists() && dir.path().join("t-n2").exists());
        let r = farm_table::TableReader::open(&dir.path().join("t-n2")).unwrap();
        assert_eq!(r.params().node_id, 1);
        let (_, live, entries) = r.peek();
        assert_eq!(live, 0b11);
        assert_eq!(entries[0], BucketEntry::owned(0));
        assert_eq!(entries[1], BucketEntry::owned(1));
    }
}
