//! What the classifier needs to know: the node's MACs, the VIPs and their
//! rules, the bucket count and the hash key.
//!
//! The data-plane binary builds a [`PipelineConfig`] from the shared
//! `farm-config` file; this crate does not read files.

use std::net::IpAddr;

use farm_table::{Affinity, HashKey, TableParams, MAX_BUCKETS, MIN_BUCKETS};
use farm_wire::{EthernetAddress, IpProtocol};

/// Transport protocol of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP / ICMPv6 echo; always placed by source address, ports ignored.
    Icmp,
}

impl Protocol {
    /// The protocol of an IP upper-layer number, if rules can name it.
    pub fn from_ip(p: IpProtocol) -> Option<Protocol> {
        match p {
            IpProtocol::Tcp => Some(Protocol::Tcp),
            IpProtocol::Udp => Some(Protocol::Udp),
            IpProtocol::Icmp | IpProtocol::Icmpv6 => Some(Protocol::Icmp),
            _ => None,
        }
    }
}

/// Destination ports of a rule (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port (`>= first`).
    pub last: u16,
}

impl PortRange {
    /// Every port.
    pub const ALL: PortRange = PortRange {
        first: 0,
        last: u16::MAX,
    };

    /// One port.
    pub const fn single(p: u16) -> PortRange {
        PortRange { first: p, last: p }
    }

    /// `port` is in the range.
    #[inline]
    pub const fn contains(self, port: u16) -> bool {
        self.first <= port && port <= self.last
    }

    fn overlaps(self, o: PortRange) -> bool {
        self.first <= o.last && o.first <= self.last
    }
}

/// Which packets to a VIP are spread over the farm, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rule {
    /// Protocol.
    pub protocol: Protocol,
    /// Destination ports (ignored for [`Protocol::Icmp`]).
    pub ports: PortRange,
    /// `OnAddr`: bucket = hash(source address) (client affinity);
    /// `OnPort`: bucket = hash(source address, source port). ICMP rules are
    /// always `OnAddr`, whatever is configured.
    pub affinity: Affinity,
}

impl Rule {
    /// A rule.
    pub const fn new(protocol: Protocol, ports: PortRange, affinity: Affinity) -> Rule {
        Rule {
            protocol,
            ports,
            affinity,
        }
    }

    #[inline]
    fn matches(&self, protocol: Protocol, port: u16) -> bool {
        self.protocol == protocol && (protocol == Protocol::Icmp || self.ports.contains(port))
    }

    /// The affinity actually used (ICMP: always by address).
    #[inline]
    pub fn effective_affinity(&self) -> Affinity {
        if self.protocol == Protocol::Icmp {
            Affinity::OnAddr
        } else {
            self.affinity
        }
    }
}

/// A virtual IP address and its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vip {
    /// The address.
    pub addr: IpAddr,
    /// Its rules (non-overlapping); VIP traffic matching none is dropped.
    pub rules: Vec<Rule>,
    /// The virtual MAC that ARP / ND answers carry for this VIP.
    pub vmac: EthernetAddress,
}

impl Vip {
    /// A VIP with the derived virtual MAC ([`virtual_mac`]).
    pub fn new(addr: IpAddr, rules: Vec<Rule>) -> Vip {
        Vip {
            addr,
            rules,
            vmac: virtual_mac(addr),
        }
    }

    /// The rule for `protocol` to destination `port`.
    #[inline]
    pub fn rule_for(&self, protocol: Protocol, port: u16) -> Option<&Rule> {
        self.rules.iter().find(|r| r.matches(protocol, port))
    }

    /// The affinity shared by every rule of `protocol`, for packets whose
    /// port is unknown (non-first fragments, truncated ICMP errors): `None`
    /// if there is no such rule, `Some(Err(()))` if they disagree or any is
    /// `OnPort`, `Some(Ok(OnAddr))` otherwise.
    pub fn portless_affinity(&self, protocol: Protocol) -> Option<Result<Affinity, ()>> {
        let mut found = None;
        for r in self.rules.iter().filter(|r| r.protocol == protocol) {
            if r.effective_affinity() == Affinity::OnPort {
                return Some(Err(()));
            }
            found = Some(Ok(Affinity::OnAddr));
        }
        found
    }
}

/// The virtual MAC of a VIP: locally administered unicast addresses that
/// no NIC owns, so switches flood frames sent to them to every node.
///
/// - IPv4: `5a:fe` followed by the four address bytes (198.18.0.10 ->
///   `5a:fe:c6:12:00:0a`).
/// - IPv6: `5a:ff` followed by the last four address bytes (2001:db8::a ->
///   `5a:ff:00:00:00:0a`). Two IPv6 VIPs that share their last 32 bits
///   share a virtual MAC; that is harmless because the classifier keys on
///   IP addresses, never on the virtual MAC.
pub fn virtual_mac(vip: IpAddr) -> EthernetAddress {
    match vip {
        IpAddr::V4(a) => {
            let o = a.octets();
            EthernetAddress([0x5a, 0xfe, o[0], o[1], o[2], o[3]])
        }
        IpAddr::V6(a) => {
            let o = a.octets();
            EthernetAddress([0x5a, 0xff, o[12], o[13], o[14], o[15]])
        }
    }
}

/// Configuration errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `n_buckets` is not a power of two in range.
    #[error("n_buckets {0}: expected a power of two in {MIN_BUCKETS}..={MAX_BUCKETS}")]
    Buckets(u32),
    /// A MAC that must be unicast is not.
    #[error("{what} {mac}: expected a unicast MAC address")]
    Mac {
        /// Which field.
        what: &'static str,
        /// The value.
        mac: EthernetAddress,
    },
    /// The TAP MAC must be the uplink's.
    #[error("tap_mac {tap} differs from node_mac {node}: the TAP must carry the uplink's MAC")]
    TapMac {
        /// Node (uplink) MAC.
        node: EthernetAddress,
        /// TAP MAC.
        tap: EthernetAddress,
    },
    /// A VIP is not a unicast address.
    #[error("VIP {0}: expected a unicast address")]
    VipAddr(IpAddr),
    /// A VIP appears twice.
    #[error("VIP {0} is listed twice")]
    DuplicateVip(IpAddr),
    /// A virtual MAC collides with the node's MAC.
    #[error("VIP {0}: its virtual MAC equals the node MAC")]
    VmacIsNodeMac(IpAddr),
    /// A port range with first > last.
    #[error("VIP {vip}: port range {first}-{last} is empty")]
    EmptyRange {
        /// VIP.
        vip: IpAddr,
        /// First port.
        first: u16,
        /// Last port.
        last: u16,
    },
    /// Two rules of one VIP match the same packets.
    #[error("VIP {vip}: rules {a:?} and {b:?} overlap")]
    Overlap {
        /// VIP.
        vip: IpAddr,
        /// One rule.
        a: Rule,
        /// The other.
        b: Rule,
    },
    /// The table was created with other parameters.
    #[error("table {what} is {table}, configuration says {config}")]
    TableMismatch {
        /// Which parameter.
        what: &'static str,
        /// The table's value.
        table: String,
        /// The configuration's value.
        config: String,
    },
}

/// Everything the packet path needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineConfig {
    /// The uplink's MAC (the node's own MAC on the wire).
    pub node_mac: EthernetAddress,
    /// The TAP's MAC; equal to `node_mac` by design, so that the kernel's
    /// frames need no rewriting.
    pub tap_mac: EthernetAddress,
    /// The VIPs.
    pub vips: Vec<Vip>,
    /// Buckets (a power of two, same as the table).
    pub n_buckets: u32,
    /// Cluster hash key (same as the table).
    pub hash_key: HashKey,
}

impl PipelineConfig {
    /// Builds and validates a configuration.
    pub fn new(
        node_mac: EthernetAddress,
        vips: Vec<Vip>,
        n_buckets: u32,
        hash_key: HashKey,
    ) -> Result<PipelineConfig, ConfigError> {
        let cfg = PipelineConfig {
            node_mac,
            tap_mac: node_mac,
            vips,
            n_buckets,
            hash_key,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every invariant the classifier relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.n_buckets.is_power_of_two()
            || !(MIN_BUCKETS..=MAX_BUCKETS).contains(&self.n_buckets)
        {
            return Err(ConfigError::Buckets(self.n_buckets));
        }
        if !self.node_mac.is_unicast() {
            return Err(ConfigError::Mac {
                what: "node_mac",
                mac: self.node_mac,
            });
        }
        if self.tap_mac != self.node_mac {
            return Err(ConfigError::TapMac {
                node: self.node_mac,
                tap: self.tap_mac,
            });
        }
        for (i, vip) in self.vips.iter().enumerate() {
            let unicast = match vip.addr {
                IpAddr::V4(a) => !a.is_unspecified() && !a.is_multicast() && !a.is_broadcast(),
                IpAddr::V6(a) => !a.is_unspecified() && !a.is_multicast(),
            };
            if !unicast {
                return Err(ConfigError::VipAddr(vip.addr));
            }
            if self.vips[..i].iter().any(|v| v.addr == vip.addr) {
                return Err(ConfigError::DuplicateVip(vip.addr));
            }
            if !vip.vmac.is_unicast() {
                return Err(ConfigError::Mac {
                    what: "virtual MAC",
                    mac: vip.vmac,
                });
            }
            if vip.vmac == self.node_mac {
                return Err(ConfigError::VmacIsNodeMac(vip.addr));
            }
            for (j, r) in vip.rules.iter().enumerate() {
                if r.ports.first > r.ports.last {
                    return Err(ConfigError::EmptyRange {
                        vip: vip.addr,
                        first: r.ports.first,
                        last: r.ports.last,
                    });
                }
                for o in &vip.rules[..j] {
                    let same_ports = r.protocol == Protocol::Icmp || r.ports.overlaps(o.ports);
                    if o.protocol == r.protocol && same_ports {
                        return Err(ConfigError::Overlap {
                            vip: vip.addr,
                            a: *o,
                            b: *r,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks that the table was created for this configuration (bucket
    /// count and hash key), so that every node computes the same buckets.
    pub fn check_table(&self, params: &TableParams) -> Result<(), ConfigError> {
        if params.n_buckets != self.n_buckets {
            return Err(ConfigError::TableMismatch {
                what: "n_buckets",
                table: params.n_buckets.to_string(),
                config: self.n_buckets.to_string(),
            });
        }
        if params.hash_key != self.hash_key {
            return Err(ConfigError::TableMismatch {
                what: "hash key",
                table: "(other seed)".into(),
                config: "(configured seed)".into(),
            });
        }
        Ok(())
    }

    /// The VIP with address `addr`.
    #[inline]
    pub fn vip(&self, addr: IpAddr) -> Option<&Vip> {
        // Per family, so the hot path compares 4 or 16 bytes, never the enum.
        match addr {
            IpAddr::V4(a) => self
                .vips
                .iter()
                .find(|v| matches!(v.addr, IpAddr::V4(b) if b == a)),
            IpAddr::V6(a) => self
                .vips
                .iter()
                .find(|v| matches!(v.addr, IpAddr::V6(b) if b == a)),
        }
    }

    /// `addr` is a VIP.
    #[inline]
    pub fn is_vip(&self, addr: IpAddr) -> bool {
        self.vip(addr).is_some()
    }

    /// A VIP whose virtual MAC is `mac`.
    pub fn vip_by_vmac(&self, mac: EthernetAddress) -> Option<&Vip> {
        self.vips.iter().find(|v| v.vmac == mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use farm_table::DEFAULT_BUCKETS;

    const NODE: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn tcp(first: u16, last: u16, a: Affinity) -> Rule {
        Rule::new(Protocol::Tcp, PortRange { first, last }, a)
    }

    fn cfg(vips: Vec<Vip>) -> Result<PipelineConfig, ConfigError> {
        PipelineConfig::new(NODE, vips, DEFAULT_BUCKETS, HashKey::from_seed(1))
    }

    #[test]
    fn virtual_macs() {
        assert_eq!(
            virtual_mac(ip("198.18.0.10")).to_string(),
            "5a:fe:c6:12:00:0a"
        );
        assert_eq!(
            virtual_mac(ip("2001:db8::1:a")).to_string(),
            "5a:ff:00:01:00:0a"
        );
        assert!(virtual_mac(ip("10.0.0.1")).is_local() && virtual_mac(ip("::1")).is_unicast());
    }

    #[test]
    fn accepts_a_valid_config() {
        let c = cfg(vec![
            Vip::new(
                ip("198.18.0.10"),
                vec![tcp(80, 80, Affinity::OnAddr), tcp(81, 90, Affinity::OnPort)],
            ),
            Vip::new(
                ip("2001:db8::a"),
                vec![
                    tcp(443, 443, Affinity::OnPort),
                    Rule::new(Protocol::Udp, PortRange::single(443), Affinity::OnAddr),
                ],
            ),
        ])
        .unwrap();
        assert!(c.is_vip(ip("2001:db8::a")) && !c.is_vip(ip("2001:db8::b")));
        let v = c.vip(ip("198.18.0.10")).unwrap();
        assert_eq!(
            v.rule_for(Protocol::Tcp, 85).unwrap().affinity,
            Affinity::OnPort
        );
        assert!(v.rule_for(Protocol::Tcp, 91).is_none() && v.rule_for(Protocol::Udp, 80).is_none());
        assert_eq!(v.portless_affinity(Protocol::Tcp), Some(Err(())));
        assert_eq!(v.portless_affinity(Protocol::Udp), None);
        assert_eq!(
            c.vip_by_vmac(virtual_mac(ip("2001:db8::a"))).unwrap().addr,
            ip("2001:db8::a")
        );
    }

    #[test]
    fn rejects_bad_configs() {
        let v4 = ip("198.18.0.10");
        let overlap = cfg(vec![Vip::new(
            v4,
            vec![tcp(80, 90, Affinity::OnAddr), tcp(90, 95, Affinity::OnPort)],
        )]);
        assert!(
            matches!(overlap, Err(ConfigError::Overlap { .. })),
            "{overlap:?}"
        );
        let icmp = Rule::new(Protocol::Icmp, PortRange::single(1), Affinity::OnAddr);
        let icmp2 = Rule::new(Protocol::Icmp, PortRange::single(2), Affinity::OnAddr);
        assert!(matches!(
            cfg(vec![Vip::new(v4, vec![icmp, icmp2])]),
            Err(ConfigError::Overlap { .. })
        ));
        assert_eq!(
            cfg(vec![Vip::new(v4, vec![]), Vip::new(v4, vec![])]),
            Err(ConfigError::DuplicateVip(v4))
        );
        assert_eq!(
            cfg(vec![Vip::new(ip("224.0.0.1"), vec![])]),
            Err(ConfigError::VipAddr(ip("224.0.0.1")))
        );
        assert_eq!(
            cfg(vec![Vip::new(ip("::"), vec![])]),
            Err(ConfigError::VipAddr(ip("::")))
        );
        assert!(matches!(
            cfg(vec![Vip::new(v4, vec![tcp(9, 8, Affinity::OnAddr)])]),
            Err(ConfigError::EmptyRange { .. })
        ));
        assert_eq!(
            PipelineConfig::new(NODE, vec![], 1000, HashKey::from_seed(1)),
            Err(ConfigError::Buckets(1000))
        );
        assert_eq!(
            PipelineConfig::new(NODE, vec![], 128, HashKey::from_seed(1)),
            Err(ConfigError::Buckets(128))
        );
        let bcast = EthernetAddress::BROADCAST;
        assert!(matches!(
            PipelineConfig::new(bcast, vec![], 256, HashKey::from_seed(1)),
            Err(ConfigError::Mac { .. })
        ));
        let mut c = cfg(vec![]).unwrap();
        c.tap_mac = EthernetAddress([2, 0, 0, 0, 0, 2]);
        assert!(matches!(c.validate(), Err(ConfigError::TapMac { .. })));
        let mut v = Vip::new(v4, vec![]);
        v.vmac = NODE;
        assert_eq!(cfg(vec![v]), Err(ConfigError::VmacIsNodeMac(v4)));
    }

    #[test]
    fn table_mismatch() {
        let c = cfg(vec![]).unwrap();
        let mut p = TableParams {
            n_buckets: DEFAULT_BUCKETS,
            node_id: 0,
            n_lcores: 1,
            hash_key: HashKey::from_seed(1),
        };
        assert_eq!(c.check_table(&p), Ok(()));
        p.n_buckets = 256;
        assert!(matches!(
            c.check_table(&p),
            Err(ConfigError::TableMismatch {
                what: "n_buckets",
                ..
            })
        ));
        p.n_buckets = DEFAULT_BUCKETS;
        p.hash_key = HashKey::from_seed(2);
        assert!(matches!(
            c.check_table(&p),
            Err(ConfigError::TableMismatch {
                what: "hash key",
                ..
            })
        ));
    }
}
