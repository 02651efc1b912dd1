//! `[dataplane] tap_addrs`: the addresses farmd puts on the data plane's kernel interface
//! (`tap_name`) each time the data plane becomes ready, since a (re)started data plane
//! recreates that interface without any address.
//!
//! An entry is an address with its prefix length, `"198.18.0.1/16"` or `"2001:db8::1/64"`,
//! or a placeholder for one of the local node's heartbeat addresses: `"{addr0}/16"` is the
//! node's `addrs[0]` with prefix length 16 (`{addr}` is short for `{addr0}`). The placeholder
//! lets one file, shared by every node, give each node its own address; it is filled in by
//! [`Config::localize`](crate::Config::localize).

use std::fmt;
use std::net::IpAddr;

use serde::de::{self, Deserialize, Deserializer, Visitor};

use crate::nodes::Node;

/// The address part of a [`TapAddr`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TapHost {
    /// A fixed address.
    Addr(IpAddr),
    /// `{addrN}`: the local node's `addrs[N]` (`{addr}` is `{addr0}`).
    NodeAddr(usize),
}

/// One entry of `[dataplane] tap_addrs`: an address and its prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TapAddr {
    /// The address, or which of the node's addresses.
    pub host: TapHost,
    /// The prefix length (1..=32 for IPv4, 1..=128 for IPv6).
    pub prefix_len: u8,
}

/// The longest prefix length of `a`'s family.
pub(crate) fn max_prefix(a: &IpAddr) -> u8 {
    if a.is_ipv4() {
        32
    } else {
        128
    }
}

/// Whether `a` can be an interface's own address.
pub(crate) fn assignable(a: &IpAddr) -> bool {
    !a.is_unspecified()
        && !a.is_multicast()
        && !a.is_loopback()
        && match a {
            IpAddr::V4(v4) => !v4.is_broadcast(),
            IpAddr::V6(_) => true,
        }
}

impl TapAddr {
    /// The address, once it is fixed (always after [`Config::localize`](crate::Config::localize)
    /// for a node that has the addresses the placeholders name).
    pub fn addr(&self) -> Option<IpAddr> {
        match self.host {
            TapHost::Addr(a) => Some(a),
            TapHost::NodeAddr(_) => None,
        }
    }

    /// This entry for `node`: a placeholder becomes the node's address (`None` if the node has
    /// no such address); a fixed address stays as it is.
    pub fn resolve(&self, node: &Node) -> Option<TapAddr> {
        let addr = match self.host {
            TapHost::Addr(a) => a,
            TapHost::NodeAddr(k) => *node.addrs.get(k)?,
        };
        Some(TapAddr {
            host: TapHost::Addr(addr),
            prefix_len: self.prefix_len,
        })
    }
}

/// As written in the file: `198.18.0.1/16`, `2001:db8::1/64`, `{addr0}/16`; also the form
/// `ip address` takes.
impl fmt::Display for TapAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host {
            TapHost::Addr(a) => write!(f, "{a}/{}", self.prefix_len),
            TapHost::NodeAddr(k) => write!(f, "{{addr{k}}}/{}", self.prefix_len),
        }
    }
}

const EXPECTED: &str = "expected an address with a prefix length like \"198.18.0.1/16\" or \"2001:db8::1/64\", or \"{addr0}/16\" for the node's first address";

impl TryFrom<String> for TapAddr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let Some((host, len)) = s.rsplit_once('/') else {
            return Err(format!("{EXPECTED}, got {s:?} (no prefix length)"));
        };
        let host = if let Some(inner) = host.strip_prefix('{') {
            let k = inner
                .strip_suffix('}')
                .and_then(|i| i.strip_prefix("addr"))
                .and_then(|k| match k {
                    "" => Some(0),
                    _ if k.len() <= 2 && k.bytes().all(|b| b.is_ascii_digit()) => k.parse().ok(),
                    _ => None,
                })
                .ok_or_else(|| {
                    format!("{EXPECTED}, got {s:?} (the only placeholders are {{addr}}, {{addr0}}, {{addr1}}, ...)")
                })?;
            TapHost::NodeAddr(k)
        } else {
            let a: IpAddr = host
                .parse()
                .map_err(|_| format!("{EXPECTED}, got {s:?} ({host:?} is not an address)"))?;
            if !assignable(&a) {
                return Err(format!(
                    "{EXPECTED}, got {s:?} (expected a unicast, non-loopback address)"
                ));
            }
            TapHost::Addr(a)
        };
        let max = match host {
            TapHost::Addr(a) => max_prefix(&a),
            // The family is known once the node's addresses are: checked with them.
            TapHost::NodeAddr(_) => 128,
        };
        let prefix_len = match len.parse::<u8>() {
            Ok(n) if (1..=max).contains(&n) && len.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => {
                return Err(format!(
                    "{EXPECTED}, got {s:?} (expected a prefix length between 1 and {max})"
                ))
            }
        };
        Ok(TapAddr { host, prefix_len })
    }
}

/// Parses inside `visit_str`, so that an error carries the span of the list element.
impl<'de> Deserialize<'de> for TapAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TapAddr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string like \"198.18.0.1/16\" or \"{addr0}/16\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TapAddr, E> {
                TapAddr::try_from(v.to_string()).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<TapAddr, String> {
        TapAddr::try_from(s.to_string())
    }

    #[test]
    fn fixed_addresses_and_placeholders() {
        let a = parse("198.18.0.1/16").unwrap();
        assert_eq!(a.addr(), Some("198.18.0.1".parse().unwrap()));
        assert_eq!(a.prefix_len, 16);
        assert_eq!(a.to_string(), "198.18.0.1/16");
        let b = parse("2001:db8::1/64").unwrap();
        assert_eq!(b.to_string(), "2001:db8::1/64");
        assert_eq!(parse("198.18.0.1/32").unwrap().prefix_len, 32);
        assert_eq!(parse("2001:db8::1/128").unwrap().prefix_len, 128);
        let t = parse("{addr0}/16").unwrap();
        assert_eq!(t.host, TapHost::NodeAddr(0));
        assert_eq!(t.addr(), None);
        assert_eq!(t.to_string(), "{addr0}/16");
        assert_eq!(parse("{addr}/24").unwrap().host, TapHost::NodeAddr(0));
        assert_eq!(parse("{addr1}/64").unwrap().host, TapHost::NodeAddr(1));
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        for (bad, why) in [
            ("198.18.0.1", "no prefix length"),
            ("198.18.0.1/33", "between 1 and 32"),
            ("198.18.0.1/0", "between 1 and 32"),
            ("198.18.0.1/+8", "between 1 and 32"),
            ("198.18.0.1/", "between 1 and 32"),
            ("2001:db8::1/129", "between 1 and 128"),
            ("198.18.0.256/16", "is not an address"),
            ("farm0/16", "is not an address"),
            ("0.0.0.0/8", "unicast"),
            ("224.0.0.1/4", "unicast"),
            ("127.0.0.2/8", "unicast"),
            ("::/64", "unicast"),
            ("{node}/16", "placeholders are"),
            ("{addr/16", "placeholders are"),
            ("{addrx}/16", "placeholders are"),
            ("{addr-1}/16", "placeholders are"),
            ("{addr0}/200", "between 1 and 128"),
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
    }

    #[test]
    fn resolve_for_a_node() {
        let node = Node {
            name: crate::types::Name::try_from("n2".to_string()).unwrap(),
            id: crate::types::NodeId::try_from(1).unwrap(),
            addrs: vec![
                "198.18.0.2".parse().unwrap(),
                "2001:db8::2".parse().unwrap(),
            ],
            weight: crate::types::Weight::default(),
            priority: 2,
        };
        let r = |s: &str| parse(s).unwrap().resolve(&node).map(|a| a.to_string());
        assert_eq!(r("{addr0}/16").as_deref(), Some("198.18.0.2/16"));
        assert_eq!(r("{addr1}/64").as_deref(), Some("2001:db8::2/64"));
        assert_eq!(r("{addr2}/64"), None);
        assert_eq!(r("198.18.0.100/32").as_deref(), Some("198.18.0.100/32"));
    }
}
