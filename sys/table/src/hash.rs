//! The keyed tuple → bucket hash, shared by every component.
//!
//! The data plane, farmd, `farmctl which`, the traffic generator and the tests all call these
//! functions, so a client maps to the same bucket everywhere. The hash is keyed with a
//! cluster-wide seed (`module.hash_seed` in the config) so that bucket placement is not
//! predictable from outside the cluster.
//!
//! The function is two or three rounds of the MurmurHash3 64-bit finaliser over the address,
//! the port and a tag, mixed with a 128-bit key derived from the seed by SplitMix64. It is
//! not a cryptographic PRF: it is meant to spread addresses evenly at line rate (a few ns per
//! tuple), not to resist an attacker who already knows the seed. The known-answer vectors in
//! the tests pin the function: changing it breaks mixed-version clusters and must bump
//! [`crate::ABI_VERSION`].

use std::net::IpAddr;

/// The cluster-wide hash key, derived from the configured seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HashKey {
    /// First key word.
    pub k0: u64,
    /// Second key word.
    pub k1: u64,
}

/// Which part of the client tuple selects the bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Affinity {
    /// Source address only: all connections of one client land on one node.
    OnAddr,
    /// Source address and source port: each connection is placed on its own.
    OnPort,
}

const TAG_V4: u64 = 0x4 << 56;
const TAG_V6: u64 = 0x6 << 56;
const TAG_PORT: u64 = 1 << 48;

#[inline(always)]
fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl HashKey {
    /// Derives the key from the configured 64-bit seed.
    pub fn from_seed(seed: u64) -> HashKey {
        let mut s = seed;
        let k0 = splitmix64(&mut s);
        let k1 = splitmix64(&mut s);
        HashKey { k0, k1 }
    }
}

#[inline(always)]
fn port_word(src_port: u16, aff: Affinity) -> u64 {
    match aff {
        Affinity::OnAddr => 0,
        Affinity::OnPort => TAG_PORT | u64::from(src_port),
    }
}

#[inline(always)]
fn to_bucket(h: u64, n_buckets: u32) -> u32 {
    debug_assert!(n_buckets.is_power_of_two());
    ((h >> 32) as u32) & n_buckets.wrapping_sub(1)
}

/// The full 64-bit hash of an IPv4 client tuple (before reduction to a bucket).
#[inline(always)]
pub fn hash_v4(key: &HashKey, src: [u8; 4], src_port: u16, aff: Affinity) -> u64 {
    let addr = u64::from(u32::from_be_bytes(src));
    let h = fmix64(key.k0 ^ TAG_V4 ^ (addr << 16) ^ port_word(src_port, aff));
    fmix64(h ^ key.k1)
}

/// The full 64-bit hash of an IPv6 client tuple (before reduction to a bucket).
#[inline(always)]
pub fn hash_v6(key: &HashKey, src: [u8; 16], src_port: u16, aff: Affinity) -> u64 {
    let v = u128::from_be_bytes(src);
    let hi = (v >> 64) as u64;
    let lo = v as u64;
    let h = fmix64(key.k0 ^ TAG_V6 ^ port_word(src_port, aff) ^ hi);
    let h = fmix64(h ^ lo ^ key.k1);
    fmix64(h ^ key.k0.rotate_left(29))
}

/// Bucket of an IPv4 client, in `0..n_buckets` (`n_buckets` a power of two).
/// `src_port` is ignored for [`Affinity::OnAddr`].
#[inline(always)]
pub fn bucket_v4(key: &HashKey, src: [u8; 4], src_port: u16, aff: Affinity, n_buckets: u32) -> u32 {
    to_bucket(hash_v4(key, src, src_port, aff), n_buckets)
}

/// Bucket of an IPv6 client, in `0..n_buckets` (`n_buckets` a power of two).
/// `src_port` is ignored for [`Affinity::OnAddr`].
#[inline(always)]
pub fn bucket_v6(key: &HashKey, src: [u8; 16], src_port: u16, aff: Affinity, n_buckets: u32) -> u32 {
    to_bucket(hash_v6(key, src, src_port, aff), n_buckets)
}

/// Bucket of a client given as an address and, for `on_port` rules, a port.
/// An IPv4-mapped IPv6 address hashes as the IPv4 address it carries.
pub fn bucket_of(key: &HashKey, ip: IpAddr, port: Option<u16>, n_buckets: u32) -> u32 {
    let (p, aff) = match port {
        Some(p) => (p, Affinity::OnPort),
        None => (0, Affinity::OnAddr),
    };
    match ip {
        IpAddr::V4(a) => bucket_v4(key, a.octets(), p, aff, n_buckets),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => bucket_v4(key, v4.octets(), p, aff, n_buckets),
            None => bucket_v6(key, a.octets(), p, aff, n_buckets),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn key_derivation_known_answer() {
        let k = HashKey::from_seed(0);
        assert_eq!(k, HashKey { k0: 0xe220_a839_7b1d_cdaf, k1: 0x6e78_9e6a_a1b9_65f4 });
        assert_ne!(HashKey::from_seed(1), k);
    }

    /// Known-answer vectors: these pin the bucket function for every component and release.
    #[test]
    fn known_answer_vectors() {
        let key = HashKey::from_seed(0x0123_4567_89ab_cdef);
        let v4 = [
            ([198, 18, 0, 1], 0u16, Affinity::OnAddr),
            ([198, 18, 0, 2], 0, Affinity::OnAddr),
            ([10, 0, 0, 1], 0, Affinity::OnAddr),
            ([198, 18, 0, 1], 40000, Affinity::OnPort),
            ([198, 18, 0, 1], 40001, Affinity::OnPort),
        ];
        let got: Vec<u64> = v4.iter().map(|(a, p, f)| hash_v4(&key, *a, *p, *f)).collect();
        assert_eq!(got, KAT_V4, "IPv4 hash vectors changed: {got:#x?}");
        let v6: [(Ipv6Addr, u16, Affinity); 3] = [
            ("2001:db8::1".parse().unwrap(), 0, Affinity::OnAddr),
            ("2001:db8::2".parse().unwrap(), 0, Affinity::OnAddr),
            ("2001:db8::1".parse().unwrap(), 443, Affinity::OnPort),
        ];
        let got6: Vec<u64> = v6.iter().map(|(a, p, f)| hash_v6(&key, a.octets(), *p, *f)).collect();
        assert_eq!(got6, KAT_V6, "IPv6 hash vectors changed: {got6:#x?}");
        // Buckets are the top bits of the hash, masked.
        assert_eq!(bucket_v4(&key, [198, 18, 0, 1], 0, Affinity::OnAddr, 4096), ((KAT_V4[0] >> 32) as u32) & 4095);
    }

    const KAT_V4: [u64; 5] = [0x454b_a22b_bdca_a363, 0x9313_1938_8a47_cefa, 0x9459_070d_b808_6d6f, 0x7203_1f1a_1f72_3b98, 0x1e1c_e963_b981_94fa];
    const KAT_V6: [u64; 3] = [0x6016_5174_e212_7a37, 0xa8e8_9470_5afb_cb31, 0x544c_c4bb_720c_79fb];

    #[test]
    fn on_addr_ignores_port_and_on_port_uses_it() {
        let key = HashKey::from_seed(7);
        let a = [198, 18, 3, 4];
        assert_eq!(bucket_v4(&key, a, 1, Affinity::OnAddr, 4096), bucket_v4(&key, a, 2, Affinity::OnAddr, 4096));
        let distinct: std::collections::HashSet<u32> =
            (0..64u16).map(|p| bucket_v4(&key, a, 1000 + p, Affinity::OnPort, 4096)).collect();
        assert!(distinct.len() > 50, "ports should spread: {}", distinct.len());
    }

    #[test]
    fn mapped_v6_hashes_as_v4() {
        let key = HashKey::from_seed(9);
        let v4 = Ipv4Addr::new(198, 18, 9, 9);
        assert_eq!(
            bucket_of(&key, IpAddr::V4(v4), Some(80), 1024),
            bucket_of(&key, IpAddr::V6(v4.to_ipv6_mapped()), Some(80), 1024)
        );
    }

    #[test]
    fn seed_changes_placement() {
        let a = HashKey::from_seed(1);
        let b = HashKey::from_seed(2);
        let same = (0..1000u32)
            .filter(|i| {
                let ip = i.to_be_bytes();
                bucket_v4(&a, ip, 0, Affinity::OnAddr, 4096) == bucket_v4(&b, ip, 0, Affinity::OnAddr, 4096)
            })
            .count();
        assert!(same < 10, "{same} of 1000 addresses kept their bucket across seeds");
    }

    #[test]
    fn distribution_is_even() {
        // 65536 consecutive addresses (a /16, the worst case for weak hashes) over 64 buckets.
        let key = HashKey::from_seed(42);
        let mut counts = [0u32; 64];
        for i in 0..65536u32 {
            let ip = (0xc612_0000 | i).to_be_bytes();
            counts[bucket_v4(&key, ip, 0, Affinity::OnAddr, 64) as usize] += 1;
        }
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min > 900 && *max < 1150, "uneven: min {min} max {max}");
        let mut counts6 = [0u32; 64];
        for i in 0..65536u128 {
            let ip: u128 = u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0)) | i;
            counts6[bucket_v6(&key, ip.to_be_bytes(), 0, Affinity::OnAddr, 64) as usize] += 1;
        }
        let (min, max) = (counts6.iter().min().unwrap(), counts6.iter().max().unwrap());
        assert!(*min > 900 && *max < 1150, "uneven v6: min {min} max {max}");
    }
}
