//! Validated value types. Each one checks its invariant while it is deserialized, so a bad
//! value is reported with the position of the value in the file.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use farm_table::{MAX_BUCKETS, MAX_NODES, MIN_BUCKETS};

/// A module name: 1 to 32 characters from `[a-z0-9_-]`, starting with a letter or digit.
/// It names files and directories (`/run/farm/<module>`, `/dev/shm/farm-<module>`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct ModuleName(String);

impl ModuleName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ModuleName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let ok_char =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
        let first_ok = s
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if s.len() > 32 || !first_ok || !s.chars().all(ok_char) {
            return Err(format!(
                "expected a module name of 1 to 32 characters from [a-z0-9_-] starting with a letter or digit, got {s:?}"
            ));
        }
        Ok(ModuleName(s))
    }
}

impl fmt::Display for ModuleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A node or checker name: 1 to 64 characters from `[A-Za-z0-9_.-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Name(String);

impl Name {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Name {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if s.is_empty() || s.len() > 64 || !s.chars().all(ok_char) {
            return Err(format!(
                "expected a name of 1 to 64 characters from [A-Za-z0-9_.-], got {s:?}"
            ));
        }
        Ok(Name(s))
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

/// The number of buckets: a power of two in `MIN_BUCKETS..=MAX_BUCKETS` (256..=65536).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "i64")]
pub struct Buckets(u32);

impl Buckets {
    /// The bucket count.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for Buckets {
    fn default() -> Self {
        Buckets(farm_table::DEFAULT_BUCKETS)
    }
}

impl TryFrom<i64> for Buckets {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, String> {
        match u32::try_from(n) {
            Ok(n) if n.is_power_of_two() && (MIN_BUCKETS..=MAX_BUCKETS).contains(&n) => Ok(Buckets(n)),
            _ => Err(format!(
                "expected a power of two between {MIN_BUCKETS} and {MAX_BUCKETS} (e.g. 4096), got {n}"
            )),
        }
    }
}

/// A node id, `0..MAX_NODES` (0..=63).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "i64")]
pub struct NodeId(u8);

impl NodeId {
    /// The id as used in the table and in heartbeats.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<i64> for NodeId {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, String> {
        match u8::try_from(n) {
            Ok(n) if usize::from(n) < MAX_NODES => Ok(NodeId(n)),
            _ => Err(format!(
                "expected a node id between 0 and {}, got {n}",
                MAX_NODES - 1
            )),
        }
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A node's weight in the farm, `1..=1000` (a node of weight 2 gets about twice the buckets of
/// a node of weight 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "i64")]
pub struct Weight(u16);

impl Weight {
    /// The weight.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl Default for Weight {
    fn default() -> Self {
        Weight(1)
    }
}

impl TryFrom<i64> for Weight {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, String> {
        match u16::try_from(n) {
            Ok(n) if (1..=1000).contains(&n) => Ok(Weight(n)),
            _ => Err(format!("expected a weight between 1 and 1000, got {n}")),
        }
    }
}

/// The cluster-wide hash seed: an integer, or a string `"0x..."` (hex) or decimal, so that the
/// whole `u64` range can be written (TOML integers are signed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HashSeed(pub u64);

impl<'de> Deserialize<'de> for HashSeed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        const EXP: &str = "a non-negative integer or a hex string like \"0x5eed\"";
        impl Visitor<'_> for V {
            type Value = HashSeed;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXP)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HashSeed, E> {
                u64::try_from(v)
                    .map(HashSeed)
                    .map_err(|_| E::custom(format!("expected {EXP}, got {v}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HashSeed, E> {
                Ok(HashSeed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HashSeed, E> {
                let t = v.trim().replace('_', "");
                let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                    Some(hex) => u64::from_str_radix(hex, 16),
                    None => t.parse(),
                };
                parsed
                    .map(HashSeed)
                    .map_err(|_| E::custom(format!("expected {EXP}, got {v:?}")))
            }
        }
        d.deserialize_any(V)
    }
}

/// The transport protocol of a VIP rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP echo (ICMPv6 echo for an IPv6 VIP); always hashed on the source address.
    Icmp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
        })
    }
}

/// Destination ports of a rule: one port, an inclusive range, or all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ports {
    /// Every port.
    All,
    /// `first..=last` (a single port has `first == last`).
    Range {
        /// First port, `>= 1`.
        first: u16,
        /// Last port, `>= first`.
        last: u16,
    },
}

impl Ports {
    /// The inclusive bounds (`All` is `1..=65535`).
    pub fn bounds(self) -> (u16, u16) {
        match self {
            Ports::All => (1, u16::MAX),
            Ports::Range { first, last } => (first, last),
        }
    }
    /// Whether `port` is matched.
    pub fn contains(self, port: u16) -> bool {
        match self {
            Ports::All => true,
            Ports::Range { first, last } => (first..=last).contains(&port),
        }
    }
    /// Whether the two sets share a port.
    pub fn overlaps(self, other: Ports) -> bool {
        let (a0, a1) = self.bounds();
        let (b0, b1) = other.bounds();
        a0 <= b1 && b0 <= a1
    }
}

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Ports::All => f.write_str("all"),
            Ports::Range { first, last } if first == last => write!(f, "{first}"),
            Ports::Range { first, last } => write!(f, "{first}-{last}"),
        }
    }
}

const PORTS_EXP: &str = "a port (\"80\"), a range (\"8000-8100\") or \"all\"";

impl FromStr for Ports {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("expected {PORTS_EXP} with ports between 1 and 65535, got {s:?}");
        let t = s.trim();
        if t == "all" {
            return Ok(Ports::All);
        }
        let port = |p: &str| p.trim().parse::<u16>().ok().filter(|&p| p != 0);
        let (first, last) = match t.split_once('-') {
            Some((a, b)) => (port(a).ok_or_else(bad)?, port(b).ok_or_else(bad)?),
            None => {
                let p = port(t).ok_or_else(bad)?;
                (p, p)
            }
        };
        if first > last {
            return Err(format!(
                "expected a range whose first port is not above its last, got {s:?}"
            ));
        }
        Ok(Ports::Range { first, last })
    }
}

impl<'de> Deserialize<'de> for Ports {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Ports;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(PORTS_EXP)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Ports, E> {
                v.to_string().parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Ports, E> {
                v.to_string().parse().map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Ports, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Deserializes `"on_addr"` / `"on_port"` into the table crate's [`farm_table::Affinity`].
pub(crate) fn de_affinity<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<farm_table::Affinity, D::Error> {
    let s = String::deserialize(d)?;
    match s.as_str() {
        "on_addr" => Ok(farm_table::Affinity::OnAddr),
        "on_port" => Ok(farm_table::Affinity::OnPort),
        _ => Err(de::Error::custom(format!(
            "expected \"on_addr\" or \"on_port\", got {s:?}"
        ))),
    }
}

pub(crate) fn default_affinity() -> farm_table::Affinity {
    farm_table::Affinity::OnAddr
}

/// A MAC address written `aa:bb:cc:dd:ee:ff`; must be unicast and not all zeros.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct MacAddr(pub [u8; 6]);

impl TryFrom<String> for MacAddr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let bad =
            || format!("expected a unicast MAC address like \"02:00:00:00:00:01\", got {s:?}");
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut mac = [0u8; 6];
        for (b, p) in mac.iter_mut().zip(&parts) {
            if p.len() != 2 {
                return Err(bad());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if mac[0] & 1 != 0 || mac == [0; 6] {
            return Err(bad());
        }
        if mac[..2] == [0x5a, 0xfe] {
            return Err(format!("expected a node MAC address, got {s:?}: 5a:fe:... is reserved for the VIPs' virtual MACs"));
        }
        Ok(MacAddr(mac))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// A Linux interface name: 1 to 15 bytes, no `/`, no whitespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct IfName(String);

impl IfName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IfName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.is_empty()
            || s.len() > 15
            || s == "."
            || s == ".."
            || s.chars().any(|c| c == '/' || c == ':' || c.is_whitespace())
        {
            return Err(format!("expected an interface name of 1 to 15 characters without '/', ':' or spaces, got {s:?}"));
        }
        Ok(IfName(s))
    }
}

impl Default for IfName {
    fn default() -> Self {
        IfName("farm0".to_string())
    }
}

/// The DPDK device of the uplink.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum Uplink {
    /// A PCI device, `[domain:]bus:device.function[,devargs]`; passed as `-a <this>`.
    Pci(String),
    /// A virtual device, `net_<driver><n>[,key=value...]`; passed as `--vdev <this>`.
    Vdev(String),
}

impl Uplink {
    /// The EAL arguments that attach this device.
    pub fn eal_args(&self) -> [String; 2] {
        match self {
            Uplink::Pci(s) => ["-a".to_string(), s.clone()],
            Uplink::Vdev(s) => ["--vdev".to_string(), s.clone()],
        }
    }
    /// The device name as DPDK reports it (the PCI address or the vdev name, without devargs).
    pub fn device_name(&self) -> &str {
        let s = match self {
            Uplink::Pci(s) | Uplink::Vdev(s) => s,
        };
        s.split(',').next().unwrap_or(s)
    }
}

fn is_pci(addr: &str) -> bool {
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    let (bdf, dom) = match addr.matches(':').count() {
        2 => {
            let (d, rest) = addr.split_once(':').unwrap_or_default();
            (rest, Some(d))
        }
        1 => (addr, None),
        _ => return false,
    };
    if dom.is_some_and(|d| !hex(d, 4)) {
        return false;
    }
    let Some((bus, df)) = bdf.split_once(':') else {
        return false;
    };
    let Some((dev, func)) = df.split_once('.') else {
        return false;
    };
    hex(bus, 2) && hex(dev, 2) && func.len() == 1 && func.chars().all(|c| ('0'..='7').contains(&c))
}

impl TryFrom<String> for Uplink {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let name = s.split(',').next().unwrap_or_default();
        if is_pci(name) {
            return Ok(Uplink::Pci(s));
        }
        let vdev_ok = name.starts_with("net_")
            && name.len() > 4
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if vdev_ok && !s.chars().any(char::is_whitespace) {
            return Ok(Uplink::Vdev(s));
        }
        Err(format!(
            "expected a PCI address like \"0000:01:00.0\" or a DPDK vdev like \"net_af_packet0,iface=veth0\", got {s:?}"
        ))
    }
}

/// Serde helpers for IP addresses with messages that show the bad value.
pub(crate) mod ip {
    use super::*;
    use std::net::{IpAddr, SocketAddr};

    /// Parses inside the deserializer's `visit_str`, so the error carries the value's span.
    fn with_str<'de, D: Deserializer<'de>, T>(
        d: D,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, D::Error> {
        struct V<F>(F);
        impl<T, F: FnOnce(&str) -> Result<T, String>> Visitor<'_> for V<F> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
                (self.0)(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V(parse))
    }

    fn parse(s: &str) -> Result<IpAddr, String> {
        s.parse().map_err(|_| {
            format!("expected an IPv4 or IPv6 address like \"198.18.0.1\" or \"2001:db8::1\", got {s:?}")
        })
    }

    pub(crate) fn one<'de, D: Deserializer<'de>>(d: D) -> Result<IpAddr, D::Error> {
        with_str(d, parse)
    }

    pub(crate) fn opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpAddr>, D::Error> {
        with_str(d, parse).map(Some)
    }

    /// One list element, so that an error points at the element, not the list.
    struct Elem(IpAddr);

    impl<'de> Deserialize<'de> for Elem {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            one(d).map(Elem)
        }
    }

    pub(crate) fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpAddr>, D::Error> {
        Ok(Vec::<Elem>::deserialize(d)?
            .into_iter()
            .map(|e| e.0)
            .collect())
    }

    pub(crate) fn socket<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
        with_str(d, |s| {
            s.parse().map_err(|_| {
                format!("expected an address and port like \"0.0.0.0:9010\" or \"[::]:9010\", got {s:?}")
            })
        })
    }
}

/// Serde helpers for durations written like `"100ms"`, `"1s"`, `"5m"`, `"24h"`.
pub(crate) mod duration {
    use super::*;

    pub(crate) fn parse(s: &str) -> Result<Duration, String> {
        humantime::parse_duration(s).map_err(|e| {
            format!(
                "expected a duration like \"100ms\", \"1s\", \"5m\" or \"24h\", got {s:?} ({e})"
            )
        })
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string like \"100ms\", \"1s\", \"5m\" or \"24h\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }

    /// An optional duration: `"off"` (or the key left out) is `None`.
    pub(crate) fn opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Option<Duration>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"off\" or a duration string like \"100ms\", \"1s\", \"5m\" or \"24h\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<Duration>, E> {
                if v == "off" {
                    return Ok(None);
                }
                parse(v).map(Some).map_err(|e| E::custom(format!("{e}, or \"off\"")))
            }
        }
        d.deserialize_str(V)
    }

    /// Formats a duration the way the file writes it (`1s`, `100ms`).
    pub(crate) fn show(d: Duration) -> String {
        humantime::format_duration(d).to_string()
    }
}

/// A string that, when present, must not be empty (absent is represented by `""` and filled
/// with a default later).
pub(crate) fn de_non_empty<'de, D: Deserializer<'de>, T: From<String>>(
    d: D,
) -> Result<T, D::Error> {
    let s = String::deserialize(d)?;
    if s.is_empty() {
        return Err(de::Error::custom(
            "expected a non-empty string (leave the key out for the default)",
        ));
    }
    Ok(T::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_bounds() {
        assert!(Buckets::try_from(256).is_ok());
        assert!(Buckets::try_from(65536).is_ok());
        assert!(Buckets::try_from(128).is_err());
        assert!(Buckets::try_from(131072).is_err());
        assert!(Buckets::try_from(1000)
            .unwrap_err()
            .contains("power of two"));
        assert!(Buckets::try_from(-4096).is_err());
    }

    #[test]
    fn node_id_and_weight_bounds() {
        assert_eq!(NodeId::try_from(63).unwrap().get(), 63);
        assert!(NodeId::try_from(64).is_err());
        assert!(NodeId::try_from(-1).is_err());
        assert!(Weight::try_from(0).is_err());
        assert_eq!(Weight::try_from(1000).unwrap().get(), 1000);
        assert!(Weight::try_from(1001).is_err());
    }

    #[test]
    fn ports_parse_and_overlap() {
        assert_eq!(
            "80".parse::<Ports>(),
            Ok(Ports::Range {
                first: 80,
                last: 80
            })
        );
        assert_eq!(
            " 8000 - 8100 ".parse::<Ports>(),
            Ok(Ports::Range {
                first: 8000,
                last: 8100
            })
        );
        assert_eq!("all".parse::<Ports>(), Ok(Ports::All));
        assert!("0".parse::<Ports>().is_err());
        assert!("65536".parse::<Ports>().is_err());
        assert!("90-80".parse::<Ports>().is_err());
        assert!("http".parse::<Ports>().is_err());
        let p80: Ports = "80".parse().unwrap();
        let r: Ports = "8000-8100".parse().unwrap();
        assert!(!p80.overlaps(r));
        assert!(r.overlaps("8100-9000".parse().unwrap()));
        assert!(Ports::All.overlaps(p80));
        assert!(r.contains(8050) && !r.contains(8101));
        assert_eq!(r.to_string(), "8000-8100");
        assert_eq!(p80.to_string(), "80");
    }

    #[test]
    fn module_names() {
        assert!(ModuleName::try_from("web-farm_2".to_string()).is_ok());
        for bad in ["", "Web", "-x", "a/b", "a b", &"x".repeat(33)] {
            assert!(ModuleName::try_from(bad.to_string()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mac_addresses() {
        assert_eq!(
            MacAddr::try_from("02:00:00:00:00:01".to_string())
                .unwrap()
                .0,
            [2, 0, 0, 0, 0, 1]
        );
        assert!(MacAddr::try_from("01:00:5e:00:00:01".to_string()).is_err()); // multicast
        assert!(MacAddr::try_from("00:00:00:00:00:00".to_string()).is_err());
        assert!(MacAddr::try_from("5a:fe:c6:12:00:0a".to_string())
            .unwrap_err()
            .contains("virtual"));
        assert!(MacAddr::try_from("02:00:00:00:01".to_string()).is_err());
    }

    #[test]
    fn uplinks() {
        let u = Uplink::try_from("0000:01:00.0".to_string()).unwrap();
        assert_eq!(u.eal_args(), ["-a".to_string(), "0000:01:00.0".to_string()]);
        assert!(matches!(
            Uplink::try_from("01:00.1".to_string()),
            Ok(Uplink::Pci(_))
        ));
        let v = Uplink::try_from("net_af_packet0,iface=veth0".to_string()).unwrap();
        assert_eq!(v.eal_args()[0], "--vdev");
        assert_eq!(v.device_name(), "net_af_packet0");
        assert!(Uplink::try_from("eth0".to_string()).is_err());
        assert!(Uplink::try_from("0000:01:00.8".to_string()).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(duration::parse("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(duration::parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(duration::parse("24h"), Ok(Duration::from_secs(86400)));
        assert!(duration::parse("10 parsecs")
            .unwrap_err()
            .contains("expected a duration"));
        assert!(duration::parse("100").is_err());
        assert_eq!(duration::show(Duration::from_millis(1500)), "1s 500ms");
    }
}
