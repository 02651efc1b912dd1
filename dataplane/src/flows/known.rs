//! The set of flows a snapshot holds, built for the workers' lookups.
//!
//! Lookups happen per packet in buckets being handed over, against up to hundreds of thousands of
//! flows: a `HashSet<FlowKey>` with SipHash costs a slow hash and a cache miss in a table of
//! ~40-byte keys. This set stores a 64-bit keyed fingerprint of each flow instead (8 bytes,
//! already a hash, so the table does not hash again), computed with a fast keyed multiply-fold
//! hash whose key is random per process. Two flows share a fingerprint with probability 2^-64
//! per pair: an unknown packet would then be taken as a held flow's, about once in 10^14
//! lookups with 100k flows held.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::sync::OnceLock;

use farm_pipeline::FlowKey;

const K: u64 = 0x9e37_79b9_7f4a_7c15;

#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        use std::hash::BuildHasher;
        std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64) | 1
    })
}

#[inline(always)]
fn addr_words(a: IpAddr) -> (u64, u64) {
    match a {
        IpAddr::V4(v4) => (u64::from(u32::from(v4)), 0x4),
        IpAddr::V6(v6) => {
            let b = u128::from(v6);
            ((b >> 64) as u64, b as u64)
        }
    }
}

/// The keyed 64-bit fingerprint of a flow (random key per process).
#[inline]
pub fn fingerprint(k: &FlowKey) -> u64 {
    let s = seed();
    let (c0, c1) = addr_words(k.client);
    let (v0, v1) = addr_words(k.vip);
    let ports = u64::from(k.client_port) | u64::from(k.vip_port) << 16 | u64::from(u8::from(k.protocol)) << 32;
    let h = fold(c0 ^ s, c1 ^ K);
    let h = fold(h ^ v0, v1 ^ s.rotate_left(17));
    fold(h ^ ports, K ^ s.rotate_left(41))
}

/// A hasher for values that already are hashes.
#[derive(Debug, Default, Clone, Copy)]
pub struct Prehashed(u64);

impl Hasher for Prehashed {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The flows of a snapshot, by fingerprint.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KnownFlows {
    set: HashSet<u64, BuildHasherDefault<Prehashed>>,
}

impl KnownFlows {
    /// An empty set with room for `n` flows.
    pub fn with_capacity(n: usize) -> KnownFlows {
        KnownFlows { set: HashSet::with_capacity_and_hasher(n, BuildHasherDefault::default()) }
    }
    /// Adds a flow.
    pub fn insert(&mut self, k: &FlowKey) {
        self.set.insert(fingerprint(k));
    }
    /// True when the flow is in the set.
    #[inline]
    pub fn contains(&self, k: &FlowKey) -> bool {
        !self.set.is_empty() && self.set.contains(&fingerprint(k))
    }
    /// True when the flow of fingerprint `fp` is in the set.
    #[inline]
    pub fn contains_fingerprint(&self, fp: u64) -> bool {
        !self.set.is_empty() && self.set.contains(&fp)
    }
    /// How many flows.
    pub fn len(&self) -> usize {
        self.set.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

impl<'a> FromIterator<&'a FlowKey> for KnownFlows {
    fn from_iter<I: IntoIterator<Item = &'a FlowKey>>(iter: I) -> KnownFlows {
        let mut s = KnownFlows::default();
        for k in iter {
            s.insert(k);
        }
        s
    }
}

impl FromIterator<FlowKey> for KnownFlows {
    fn from_iter<I: IntoIterator<Item = FlowKey>>(iter: I) -> KnownFlows {
        let mut s = KnownFlows::default();
        for k in iter {
            s.insert(&k);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use farm_wire::IpProtocol;

    #[test]
    fn fingerprints_tell_flows_apart() {
        let k = |c: &str, p: u16, v: &str, vp: u16| FlowKey { protocol: IpProtocol::Tcp, client: c.parse().unwrap(), client_port: p, vip: v.parse().unwrap(), vip_port: vp };
        let a = k("198.18.1.1", 40000, "198.18.0.100", 80);
        let mut seen = HashSet::new();
        for (c, p, v, vp) in [
            ("198.18.1.1", 40000, "198.18.0.100", 80),
            ("198.18.1.1", 40001, "198.18.0.100", 80),
            ("198.18.1.2", 40000, "198.18.0.100", 80),
            ("198.18.1.1", 40000, "198.18.0.101", 80),
            ("198.18.1.1", 40000, "198.18.0.100", 81),
            ("::ffff:198.18.1.1", 40000, "198.18.0.100", 80),
            ("2001:db8::1", 40000, "2001:db8::100", 80),
        ] {
            assert!(seen.insert(fingerprint(&k(c, p, v, vp))), "{c} {p} {v} {vp}");
        }
        assert_ne!(fingerprint(&a), fingerprint(&FlowKey { protocol: IpProtocol::Udp, ..a }));
        let set: KnownFlows = (0..100_000u32).map(|i| k(&format!("198.19.{}.{}", i / 256 % 256, i % 256), (i / 65536) as u16, "198.18.0.100", 80)).collect();
        assert_eq!(set.len(), 100_000, "no collision among 100k flows");
        assert!(set.contains(&k("198.19.0.5", 0, "198.18.0.100", 80)));
        assert!(!set.contains(&a));
    }
}
