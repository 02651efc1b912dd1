//! What traffic to generate: client address ranges, the TCP/UDP mix, and which
//! buckets the device under test owns (to know what should come back).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A malformed command-line value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?}: {reason}")]
pub struct SpecError {
    /// What was being parsed.
    pub what: &'static str,
    /// The value given.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

fn err(what: &'static str, value: &str, reason: impl Into<String>) -> SpecError {
    SpecError { what, value: value.to_owned(), reason: reason.into() }
}

/// A contiguous range of client addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientRange {
    /// First address.
    pub first: IpAddr,
    /// Number of addresses (>= 1).
    pub count: u128,
}

impl ClientRange {
    /// The `i`-th address (`i < count`).
    pub fn nth(&self, i: u128) -> IpAddr {
        match self.first {
            IpAddr::V4(a) => {
                let v = u32::from(a).wrapping_add(u32::try_from(i).unwrap_or(u32::MAX));
                IpAddr::V4(Ipv4Addr::from(v))
            }
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a).wrapping_add(i))),
        }
    }
}

impl FromStr for ClientRange {
    type Err = SpecError;

    /// `198.18.1.0/24`, `2001:db8:1::/112`, `198.18.1.1-198.18.1.200`, or one address.
    fn from_str(s: &str) -> Result<Self, SpecError> {
        const W: &str = "client range";
        let parse_ip = |t: &str| t.trim().parse::<IpAddr>().map_err(|e| err(W, s, e.to_string()));
        if let Some((a, len)) = s.split_once('/') {
            let a = parse_ip(a)?;
            let len: u32 = len.parse().map_err(|_| err(W, s, "prefix length is not a number"))?;
            let bits = if a.is_ipv4() { 32 } else { 128 };
            if len > bits {
                return Err(err(W, s, format!("prefix length above {bits}")));
            }
            let host_bits = bits - len;
            let (first, count) = match a {
                IpAddr::V4(v) => {
                    let mask = if host_bits == 32 { 0 } else { u32::MAX << host_bits };
                    (IpAddr::V4(Ipv4Addr::from(u32::from(v) & mask)), 1u128 << host_bits)
                }
                IpAddr::V6(v) => {
                    let mask = if host_bits == 128 { 0 } else { u128::MAX << host_bits };
                    let count = if host_bits == 128 { u128::MAX } else { 1u128 << host_bits };
                    (IpAddr::V6(Ipv6Addr::from(u128::from(v) & mask)), count)
                }
            };
            return Ok(ClientRange { first, count });
        }
        if let Some((a, b)) = s.split_once('-') {
            let (a, b) = (parse_ip(a)?, parse_ip(b)?);
            let count = match (a, b) {
                (IpAddr::V4(a), IpAddr::V4(b)) if u32::from(b) >= u32::from(a) => {
                    u128::from(u32::from(b) - u32::from(a)) + 1
                }
                (IpAddr::V6(a), IpAddr::V6(b)) if u128::from(b) >= u128::from(a) => {
                    (u128::from(b) - u128::from(a)).saturating_add(1)
                }
                _ => return Err(err(W, s, "expected first-last of one family, first <= last")),
            };
            return Ok(ClientRange { first: a, count });
        }
        Ok(ClientRange { first: parse_ip(s)?, count: 1 })
    }
}

/// Kinds of generated packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// TCP SYN (a new connection).
    Syn,
    /// TCP ACK (an established connection).
    Ack,
    /// TCP FIN+ACK (a closing connection).
    Fin,
    /// UDP datagram.
    Udp,
}

impl Kind {
    /// All kinds, in [`Mix`] order.
    pub const ALL: [Kind; 4] = [Kind::Syn, Kind::Ack, Kind::Fin, Kind::Udp];
}

/// Relative weights of the packet kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix(pub [u32; 4]);

impl Mix {
    /// The weight of `k`.
    pub fn weight(&self, k: Kind) -> u32 {
        self.0[Kind::ALL.iter().position(|x| *x == k).unwrap_or(0)]
    }

    /// Sum of the weights.
    pub fn total(&self) -> u64 {
        self.0.iter().map(|w| u64::from(*w)).sum()
    }

    /// The kind at position `r` in `0..total()`.
    pub fn pick(&self, mut r: u64) -> Kind {
        for (k, w) in Kind::ALL.iter().zip(self.0) {
            if r < u64::from(w) {
                return *k;
            }
            r -= u64::from(w);
        }
        Kind::Ack
    }
}

impl Default for Mix {
    /// Mostly established traffic: 1 SYN, 8 ACK, 1 FIN, no UDP.
    fn default() -> Self {
        Mix([1, 8, 1, 0])
    }
}

impl FromStr for Mix {
    type Err = SpecError;

    /// `syn=1,ack=8,fin=1,udp=0` (missing kinds weigh 0).
    fn from_str(s: &str) -> Result<Self, SpecError> {
        const W: &str = "mix";
        let mut w = [0u32; 4];
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| err(W, s, "expected kind=weight"))?;
            let i = match k.trim() {
                "syn" => 0,
                "ack" => 1,
                "fin" => 2,
                "udp" => 3,
                other => return Err(err(W, s, format!("unknown kind {other:?} (syn, ack, fin, udp)"))),
            };
            w[i] = v.trim().parse().map_err(|_| err(W, s, "weight is not a number"))?;
        }
        let mix = Mix(w);
        if mix.total() == 0 {
            return Err(err(W, s, "all weights are zero"));
        }
        Ok(mix)
    }
}

/// Which buckets the device under test owns, i.e. which packets it should
/// accept and send back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owned {
    /// Every bucket.
    All,
    /// No bucket.
    None,
    /// Buckets `b` with `b % modulus == rest`.
    Modulo {
        /// Divisor.
        modulus: u32,
        /// Remainder.
        rest: u32,
    },
}

impl Owned {
    /// True if `bucket` is owned.
    pub fn owns(&self, bucket: u32) -> bool {
        match *self {
            Owned::All => true,
            Owned::None => false,
            Owned::Modulo { modulus, rest } => bucket % modulus == rest,
        }
    }
}

impl FromStr for Owned {
    type Err = SpecError;

    /// `all`, `none`, or `K:R` (buckets with `b % K == R`).
    fn from_str(s: &str) -> Result<Self, SpecError> {
        const W: &str = "owned buckets";
        match s {
            "all" => Ok(Owned::All),
            "none" => Ok(Owned::None),
            _ => {
                let (k, r) = s.split_once(':').ok_or_else(|| err(W, s, "expected all, none or K:R"))?;
                let modulus: u32 = k.parse().map_err(|_| err(W, s, "K is not a number"))?;
                let rest: u32 = r.parse().map_err(|_| err(W, s, "R is not a number"))?;
                if modulus == 0 || rest >= modulus {
                    return Err(err(W, s, "need K > 0 and R < K"));
                }
                Ok(Owned::Modulo { modulus, rest })
            }
        }
    }
}

/// A source-port range `first-last` (or one port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSpan {
    /// First port.
    pub first: u16,
    /// Last port (>= first).
    pub last: u16,
}

impl FromStr for PortSpan {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        const W: &str = "port range";
        let num = |t: &str| t.trim().parse::<u16>().map_err(|_| err(W, s, "not a port number"));
        let (first, last) = match s.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(s)?, num(s)?),
        };
        if last < first {
            return Err(err(W, s, "last < first"));
        }
        Ok(PortSpan { first, last })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ranges() {
        let r: ClientRange = "198.18.1.77/24".parse().unwrap();
        assert_eq!(r.first, "198.18.1.0".parse::<IpAddr>().unwrap());
        assert_eq!(r.count, 256);
        assert_eq!(r.nth(255), "198.18.1.255".parse::<IpAddr>().unwrap());
        let r: ClientRange = "198.18.1.10-198.18.2.9".parse().unwrap();
        assert_eq!(r.count, 256);
        let r: ClientRange = "2001:db8:1::/112".parse().unwrap();
        assert_eq!(r.count, 65536);
        assert_eq!(r.nth(0x1234), "2001:db8:1::1234".parse::<IpAddr>().unwrap());
        let r: ClientRange = "0.0.0.0/0".parse().unwrap();
        assert_eq!(r.count, 1 << 32);
        let r: ClientRange = "::/0".parse().unwrap();
        assert_eq!(r.count, u128::MAX);
        assert_eq!("10.0.0.1".parse::<ClientRange>().unwrap().count, 1);
        assert!("198.18.1.0/33".parse::<ClientRange>().is_err());
        assert!("198.18.1.9-198.18.1.1".parse::<ClientRange>().is_err());
        assert!("198.18.1.1-2001:db8::1".parse::<ClientRange>().is_err());
        assert!("nonsense".parse::<ClientRange>().is_err());
    }

    #[test]
    fn mixes() {
        let m: Mix = "syn=1,ack=2,udp=3".parse().unwrap();
        assert_eq!(m.0, [1, 2, 0, 3]);
        assert_eq!(m.total(), 6);
        let picks: Vec<Kind> = (0..6).map(|r| m.pick(r)).collect();
        assert_eq!(picks, [Kind::Syn, Kind::Ack, Kind::Ack, Kind::Udp, Kind::Udp, Kind::Udp]);
        assert!("syn=0".parse::<Mix>().is_err());
        assert!("rst=1".parse::<Mix>().is_err());
        assert_eq!(Mix::default().weight(Kind::Ack), 8);
    }

    #[test]
    fn owned_and_ports() {
        let o: Owned = "4:1".parse().unwrap();
        assert!(o.owns(5) && !o.owns(4));
        assert!(Owned::All.owns(7) && !Owned::None.owns(7));
        assert!("4:4".parse::<Owned>().is_err());
        assert!("0:0".parse::<Owned>().is_err());
        assert_eq!("1024-1100".parse::<PortSpan>().unwrap(), PortSpan { first: 1024, last: 1100 });
        assert_eq!("80".parse::<PortSpan>().unwrap(), PortSpan { first: 80, last: 80 });
        assert!("9-1".parse::<PortSpan>().is_err());
    }
}
