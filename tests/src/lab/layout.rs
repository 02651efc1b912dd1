//! Names and addresses of one lab: pure functions of the prefix and the sizes.
//!
//! | thing | name / address (prefix `farm`) |
//! | --- | --- |
//! | bridge (the switch) | `farmbr0`, no address, IPv6 off, alias `farm-lab:farm` |
//! | node namespaces | `farm-n1` .. `farm-nN` (node names `n1` .. `nN`) |
//! | node uplink (veth end in the namespace) | `dp0`, MAC `02:fa:00:00:00:<i>` |
//! | node TAP (farm mode, created by farm-dataplane) | `farm0` |
//! | client namespace | `farm-cl`, interface `eth0` |
//! | host veth ends (bridge ports) | named like their namespace: `farm-n1`, `farm-cl` |
//! | node addresses | `198.18.0.<i>/16` |
//! | VIP | `198.18.0.100/32` |
//! | client addresses | `198.18.1.1/16`, then `198.18.1.2` .. `198.18.1.254`, `198.18.2.1` .. as `/32` |
//! | run directory | `/run/farm-lab` (`/run/<prefix>-lab`) |
//! | shared memory / DPDK file prefix | `/dev/shm/farm-lab-<node>`, `farm-lab-<node>` |
//!
//! The whole lab is one `/16` (198.18.0.0/16, inside the benchmarking range 198.18.0.0/15):
//! every address is on-link for every other, so clients in 198.18.2.0/24 reach nodes in
//! 198.18.0.0/24 without routes. The host itself has no address on the bridge.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::error::LabError;

/// Name of the node end of each node's veth (the data plane's uplink, `net_af_packet`).
pub const NODE_UPLINK: &str = "dp0";
/// Name of the TAP interface that farm-dataplane creates in each node namespace.
pub const NODE_TAP: &str = "farm0";
/// Name of the client's interface in the client namespace.
pub const CLIENT_IF: &str = "eth0";
/// Prefix length of every on-link address (the lab is one 198.18.0.0/16 LAN).
pub const LAN_PREFIX_LEN: u8 = 16;
/// Default and allowed number of nodes.
pub const DEFAULT_NODES: usize = 3;
/// Largest number of nodes (node addresses 198.18.0.1..=32 stay below the VIP).
pub const MAX_NODES: usize = 32;
/// Default number of client addresses: two /24s (198.18.1.0/24 and 198.18.2.0/24).
pub const DEFAULT_CLIENTS: usize = 2 * 254;
/// Largest number of client addresses (16 /24s, 198.18.1.0 .. 198.18.16.255).
pub const MAX_CLIENTS: usize = 16 * 254;
/// Default lab prefix.
pub const DEFAULT_PREFIX: &str = "farm";
/// Largest prefix length (interface names are limited to 15 bytes: `<prefix>-n32`).
pub const MAX_PREFIX_LEN: usize = 8;

/// The names and addresses of one lab.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    prefix: String,
    nodes: usize,
    clients: usize,
}

impl Layout {
    /// Checks the prefix (`[a-z][a-z0-9]{0,7}`), the node count (1..=32) and the client count
    /// (1..=4064).
    pub fn new(prefix: &str, nodes: usize, clients: usize) -> Result<Layout, LabError> {
        check_prefix(prefix)?;
        if !(1..=MAX_NODES).contains(&nodes) {
            return Err(LabError::Invalid(format!(
                "--nodes {nodes}: expected 1 to {MAX_NODES} nodes"
            )));
        }
        if !(1..=MAX_CLIENTS).contains(&clients) {
            return Err(LabError::Invalid(format!(
                "--clients {clients}: expected 1 to {MAX_CLIENTS} client addresses"
            )));
        }
        Ok(Layout { prefix: prefix.to_owned(), nodes, clients })
    }

    /// The lab prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// Node numbers, 1..=N.
    pub fn node_numbers(&self) -> std::ops::RangeInclusive<usize> {
        1..=self.nodes
    }

    /// Number of client addresses.
    pub fn clients(&self) -> usize {
        self.clients
    }

    /// The bridge: `<prefix>br0`.
    pub fn bridge(&self) -> String {
        bridge_name(&self.prefix)
    }

    /// The bridge's alias, which marks it as this lab's.
    pub fn bridge_alias(&self) -> String {
        bridge_alias(&self.prefix)
    }

    /// Node name `n<i>` (what farmd's `--node` and the config's `[[node]] name` use).
    pub fn node_name(&self, i: usize) -> String {
        self.check_node(i);
        format!("n{i}")
    }

    /// Namespace of node `i` (1-based): `<prefix>-n<i>`; also the name of its host veth end.
    pub fn node_ns(&self, i: usize) -> String {
        self.check_node(i);
        format!("{}-n{i}", self.prefix)
    }

    /// The client namespace `<prefix>-cl`; also the name of its host veth end.
    pub fn client_ns(&self) -> String {
        format!("{}-cl", self.prefix)
    }

    /// Every namespace of the lab: the client's first, then the nodes'.
    pub fn namespaces(&self) -> Vec<String> {
        let mut v = vec![self.client_ns()];
        v.extend(self.node_numbers().map(|i| self.node_ns(i)));
        v
    }

    /// Address of node `i` (1-based): 198.18.0.i.
    pub fn node_addr(&self, i: usize) -> Ipv4Addr {
        self.check_node(i);
        Ipv4Addr::new(198, 18, 0, i as u8)
    }

    /// MAC of node `i`'s uplink `dp0` (locally administered, unique on the bridge).
    pub fn node_mac(&self, i: usize) -> String {
        self.check_node(i);
        format!("02:fa:00:00:00:{i:02x}")
    }

    /// The VIP: 198.18.0.100.
    pub fn vip(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 0, 100)
    }

    /// Client address `k` (0-based): 198.18.(1 + k / 254).(1 + k % 254).
    pub fn client_addr(&self, k: usize) -> Ipv4Addr {
        assert!(k < self.clients, "client address {k} out of range 0..{}", self.clients);
        Ipv4Addr::new(198, 18, (1 + k / 254) as u8, (1 + k % 254) as u8)
    }

    /// Every client address, in order.
    pub fn client_addrs(&self) -> Vec<Ipv4Addr> {
        (0..self.clients).map(|k| self.client_addr(k)).collect()
    }

    /// The run directory `/run/<prefix>-lab`: configs, pid files, logs, document roots.
    pub fn run_dir(&self) -> PathBuf {
        run_dir(&self.prefix)
    }

    /// Node `i`'s directory in the run directory.
    pub fn node_dir(&self, i: usize) -> PathBuf {
        self.run_dir().join(self.node_name(i))
    }

    /// Prefix of the lab's files in /dev/shm and of its DPDK `--file-prefix`es: `<prefix>-lab-`.
    pub fn shm_prefix(&self) -> String {
        shm_prefix(&self.prefix)
    }

    fn check_node(&self, i: usize) {
        assert!((1..=self.nodes).contains(&i), "node {i} out of range 1..={}", self.nodes);
    }
}

/// `[a-z][a-z0-9]{0,7}`: keeps every derived interface name within 15 bytes and every glob
/// (`<prefix>-lab-*`) from matching another lab's files.
pub fn check_prefix(prefix: &str) -> Result<(), LabError> {
    let ok = !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX_LEN
        && prefix.as_bytes()[0].is_ascii_lowercase()
        && prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(LabError::Invalid(format!(
            "--prefix {prefix:?}: expected 1 to {MAX_PREFIX_LEN} characters, a lowercase letter \
             then lowercase letters or digits"
        )))
    }
}

/// The bridge of the lab with this prefix.
pub fn bridge_name(prefix: &str) -> String {
    format!("{prefix}br0")
}

/// The alias that marks the bridge as the lab's.
pub fn bridge_alias(prefix: &str) -> String {
    format!("farm-lab:{prefix}")
}

/// The run directory of the lab with this prefix.
pub fn run_dir(prefix: &str) -> PathBuf {
    PathBuf::from(format!("/run/{prefix}-lab"))
}

/// The shared-memory / DPDK file prefix of the lab with this prefix.
pub fn shm_prefix(prefix: &str) -> String {
    format!("{prefix}-lab-")
}

/// Whether `name` is one of the namespaces / host veth names a lab with `prefix` creates:
/// `<prefix>-cl` or `<prefix>-n<digits>`.
pub fn is_lab_name(prefix: &str, name: &str) -> bool {
    let Some(rest) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    if rest == "cl" {
        return true;
    }
    rest.strip_prefix('n')
        .is_some_and(|d| !d.is_empty() && d.len() <= 3 && d.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_and_addresses() {
        let l = Layout::new("farm", 3, DEFAULT_CLIENTS).unwrap();
        assert_eq!(l.bridge(), "farmbr0");
        assert_eq!(l.node_ns(1), "farm-n1");
        assert_eq!(l.node_name(3), "n3");
        assert_eq!(l.client_ns(), "farm-cl");
        assert_eq!(l.namespaces(), ["farm-cl", "farm-n1", "farm-n2", "farm-n3"]);
        assert_eq!(l.node_addr(2), Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(l.node_mac(3), "02:fa:00:00:00:03");
        assert_eq!(Layout::new("farm", 12, 1).unwrap().node_mac(10), "02:fa:00:00:00:0a");
        assert_eq!(l.vip(), Ipv4Addr::new(198, 18, 0, 100));
        assert_eq!(l.run_dir(), PathBuf::from("/run/farm-lab"));
        assert_eq!(l.node_dir(2), PathBuf::from("/run/farm-lab/n2"));
        assert_eq!(l.shm_prefix(), "farm-lab-");
    }

    #[test]
    fn client_addresses_cover_two_slash_24s_without_network_or_broadcast() {
        let l = Layout::new("farm", 3, DEFAULT_CLIENTS).unwrap();
        let a = l.client_addrs();
        assert_eq!(a.len(), 508);
        assert_eq!(a[0], Ipv4Addr::new(198, 18, 1, 1));
        assert_eq!(a[253], Ipv4Addr::new(198, 18, 1, 254));
        assert_eq!(a[254], Ipv4Addr::new(198, 18, 2, 1));
        assert_eq!(a[507], Ipv4Addr::new(198, 18, 2, 254));
        let set: std::collections::BTreeSet<_> = a.iter().collect();
        assert_eq!(set.len(), a.len());
        assert!(a.iter().all(|x| x.octets()[3] != 0 && x.octets()[3] != 255));
        let max = Layout::new("farm", 3, MAX_CLIENTS).unwrap();
        assert_eq!(max.client_addr(MAX_CLIENTS - 1), Ipv4Addr::new(198, 18, 16, 254));
    }

    #[test]
    fn every_address_is_in_the_benchmarking_range_and_distinct() {
        let l = Layout::new("farm", MAX_NODES, MAX_CLIENTS).unwrap();
        let mut all: Vec<Ipv4Addr> = l.node_numbers().map(|i| l.node_addr(i)).collect();
        all.push(l.vip());
        all.extend(l.client_addrs());
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "addresses collide");
        assert!(all.iter().all(|a| a.octets()[0] == 198 && a.octets()[1] == 18));
    }

    #[test]
    fn longest_names_fit_in_an_interface_name() {
        let l = Layout::new("abcdefgh", MAX_NODES, 1).unwrap();
        assert!(l.bridge().len() <= 15);
        assert!(l.node_ns(MAX_NODES).len() <= 15, "{}", l.node_ns(MAX_NODES));
        assert!(l.client_ns().len() <= 15);
    }

    #[test]
    fn bad_sizes_and_prefixes_are_refused() {
        for (p, n, c) in [
            ("farm", 0, 1),
            ("farm", MAX_NODES + 1, 1),
            ("farm", 3, 0),
            ("farm", 3, MAX_CLIENTS + 1),
            ("", 3, 1),
            ("abcdefghi", 3, 1),
            ("Farm", 3, 1),
            ("1farm", 3, 1),
            ("fa-rm", 3, 1),
            ("fa/rm", 3, 1),
        ] {
            let e = Layout::new(p, n, c).unwrap_err();
            assert!(matches!(e, LabError::Invalid(_)), "{p:?} {n} {c}: {e}");
        }
        let e = Layout::new("farm", 0, 1).unwrap_err().to_string();
        assert!(e.contains("--nodes 0") && e.contains("1 to 32"), "{e}");
    }

    #[test]
    fn lab_names_are_recognised_exactly() {
        assert!(is_lab_name("farm", "farm-n1"));
        assert!(is_lab_name("farm", "farm-n32"));
        assert!(is_lab_name("farm", "farm-cl"));
        assert!(!is_lab_name("farm", "farm-n"));
        assert!(!is_lab_name("farm", "farm-nx"));
        assert!(!is_lab_name("farm", "farmx-n1"));
        assert!(!is_lab_name("farm", "farm-cl2"));
        assert!(!is_lab_name("farm", "farmbr0"));
        assert!(!is_lab_name("farm", "n1"));
        assert!(!is_lab_name("fa", "farm-n1"));
    }
}
