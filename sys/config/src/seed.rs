//! The cluster's hash seed (`module.hash_seed`): where it comes from, how a new one is made,
//! and when a configured one is weak.
//!
//! The seed keys the client hash (which node serves which client). Anyone who knows it can
//! compute the bucket of any (address, port): an `on_port` client could then pick source ports
//! that all land on one node. So it must not be derived from a public value such as
//! `cluster_id` (the default before), and is made once per cluster from the OS random number
//! generator by `farmctl config init` ([`random_seed`]). A file without `hash_seed` gets a seed
//! derived from the heartbeat secret ([`derive_from_secret`]): secret like it, and the same on
//! every node since the secret is.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Where the loaded `module.hash_seed` came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashSeedFrom {
    /// Written in the file (`hash_seed = "0x..."`).
    Config,
    /// Not in the file: derived from the secret file's content ([`derive_from_secret`]).
    SecretFile,
    /// Not in the file, and the secret file was not read: parsed with
    /// [`Config::from_str`](crate::Config::from_str) (which reads no file), or
    /// [`Config::load`](crate::Config::load) could not read the secret (not root). The value of
    /// `Module::hash_seed` is then meaningless; [`Config::try_hash_key`](crate::Config::try_hash_key)
    /// says why, and [`Config::check_runtime`](crate::Config::check_runtime) (farmd at start)
    /// fails.
    Unresolved,
}

/// Label of the derivation, so that the seed is independent of the heartbeat keys computed
/// from the same secret.
const DERIVE_LABEL: &[u8] = b"farm module.hash_seed v1";

/// The seed used when the file sets no `hash_seed`: the first 8 bytes (little-endian) of
/// HMAC-SHA256(key = the secret, as read by [`Config::read_secret`](crate::Config::read_secret),
/// message = `"farm module.hash_seed v1"`). One-way: the seed reveals nothing of the secret.
pub fn derive_from_secret(secret: &[u8]) -> u64 {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(DERIVE_LABEL);
    let out = mac.finalize().into_bytes();
    let mut first = [0u8; 8];
    first.copy_from_slice(&out[..8]);
    u64::from_le_bytes(first)
}

/// Seeds published in farm's sources (the examples under `configs/` and `vagrant/`): a farm
/// that copied one uses a seed anybody can read. `farmctl config check` warns about them and
/// `farmctl config init` replaces them.
pub const PUBLISHED_SEEDS: &[(u64, &str)] = &[
    (0xf000_f1a4_c577_ead1, "configs/apache-farm.toml"),
    (0x1fbe_d064_3ca5_688a, "configs/generic-tcp-udp.toml"),
    (0x1026_70ca_a081_892f, "configs/control-only-cloud-lb.toml"),
    (0xf32d_eae5_b1cc_779a, "configs/active-passive.toml"),
    (0x3c95_42e2_1569_1df9, "configs/lab.toml"),
    (0xdd21_545c_c68c_02df, "vagrant/farm.toml"),
];

/// Why `seed` is a weak `module.hash_seed` for the cluster `cluster_id`, or `None` when it looks
/// like the 64 random bits that `farmctl config init` writes. Weak: 0, a value that fits in 32
/// bits (guessable: few people type 16 random hex digits by hand), one made from `cluster_id`
/// (which every heartbeat carries in clear; `cluster_id` itself was the default), one with
/// few or almost all bits set, a repeated pattern, or a seed published in farm's examples.
///
/// A random seed is flagged with a probability below 10⁻⁶ ([`random_seed`] draws again then).
pub fn seed_weakness(seed: u64, cluster_id: u32) -> Option<String> {
    let cid = u64::from(cluster_id);
    if seed == 0 {
        return Some("it is 0".to_string());
    }
    if let Some((_, file)) = PUBLISHED_SEEDS.iter().find(|(s, _)| *s == seed) {
        return Some(format!(
            "it is the example value of {file}, published with farm's sources"
        ));
    }
    if seed == cid {
        return Some(format!(
            "it equals cluster_id ({cluster_id}), which every heartbeat carries in clear (and was the default seed)"
        ));
    }
    let (hi, lo) = (seed >> 32, seed & 0xffff_ffff);
    if cid != 0 && (hi == cid || lo == cid || seed == !cid || seed == cid.wrapping_mul(0x1_0000_0001)) {
        return Some(format!(
            "it is made from cluster_id ({cluster_id}), which every heartbeat carries in clear"
        ));
    }
    if seed <= u64::from(u32::MAX) {
        return Some(format!(
            "it is small ({seed}): a value that fits in 32 bits can be guessed"
        ));
    }
    if !seed <= u64::from(u32::MAX) {
        return Some("it is within 2^32 of the largest value: it can be guessed".to_string());
    }
    let ones = seed.count_ones();
    if !(12..=52).contains(&ones) {
        return Some(format!(
            "only {ones} of its 64 bits are 1: a random seed has about 32"
        ));
    }
    if hi == lo {
        return Some("its two 32-bit halves are equal: a pattern, not a random value".to_string());
    }
    let bytes = seed.to_le_bytes();
    let distinct = bytes
        .iter()
        .enumerate()
        .filter(|(i, b)| !bytes[..*i].contains(b))
        .count();
    if distinct <= 3 {
        return Some(format!(
            "it is made of {distinct} distinct bytes: a pattern, not a random value"
        ));
    }
    None
}

/// A new seed from the OS random number generator (`getrandom`), drawn again in the (very
/// unlikely) case that [`seed_weakness`] would warn about it.
pub fn random_seed(cluster_id: u32) -> Result<u64, getrandom::Error> {
    loop {
        let s = getrandom::u64()?;
        if seed_weakness(s, cluster_id).is_none() {
            return Ok(s);
        }
    }
}

/// `n` random bytes from the OS as lowercase hex (`2 n` characters): the content of a new
/// secret or token file.
pub fn random_hex(n: usize) -> Result<String, getrandom::Error> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// How a seed is written in a file: `0x` and 16 hex digits (a TOML string, since TOML integers
/// stop at 2^63 - 1).
pub fn format_seed(seed: u64) -> String {
    format!("0x{seed:016x}")
}

impl crate::Config {
    /// The warning `farmctl config check` prints about `module.hash_seed`, if any: a weak seed
    /// written in the file ([`seed_weakness`]). A seed derived from the secret file is not weak.
    pub fn hash_seed_warning(&self) -> Option<String> {
        if self.module.hash_seed_from != HashSeedFrom::Config {
            return None;
        }
        let why = seed_weakness(self.module.hash_seed, self.module.cluster_id)?;
        Some(format!(
            "{}: module.hash_seed: weak seed: {why}. Whoever knows the seed can compute which node serves which client (an on_port client can aim all its connections at one node). Replace it with a random one: `farmctl --config {} config init --seed-only`, then copy the file to every node",
            self.origin, self.origin
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_seeds_are_named() {
        let weak = |s: u64, cid: u32| seed_weakness(s, cid).unwrap_or_else(|| panic!("{s:#x} should be weak"));
        assert_eq!(weak(0, 7), "it is 0");
        assert_eq!(weak(0, 0), "it is 0");
        assert!(weak(7, 7).contains("equals cluster_id"));
        assert!(weak(12345, 7).contains("small"));
        assert!(weak(0x5eed_0010, 16).contains("small"));
        assert!(weak(0xffff_ffff, 1).contains("small"));
        assert!(weak(u64::MAX, 1).contains("largest"));
        assert!(weak(0x0000_0007_9c3e_71d4, 7).contains("cluster_id"), "cluster id in the high half");
        assert!(weak(0x9c3e_71d4_0000_0007, 7).contains("cluster_id"), "cluster id in the low half");
        assert!(weak(0x0000_0007_0000_0007, 7).contains("cluster_id"));
        assert!(weak(!7, 7).contains("cluster_id"));
        assert!(weak(0x8000_0001_0000_0100, 7).contains("bits"));
        assert!(weak(0xfeff_ffff_7fff_ffff, 7).contains("bits"));
        assert!(weak(0xdead_beef_dead_beef, 7).contains("halves"));
        assert!(weak(0x5a5a_a5a5_5aa5_a55a, 7).contains("distinct bytes"));
        for (s, file) in PUBLISHED_SEEDS {
            assert!(weak(*s, 1).contains(file));
        }
    }

    #[test]
    fn random_looking_seeds_pass() {
        for s in [0x3d8f_27c1_94ab_e605, 0x1b6e_a09f_73c2_d854, 0x80c4_15e7_2bd9_6fa3] {
            assert_eq!(seed_weakness(s, 7), None, "{s:#x}");
        }
        // The derived default and new random seeds are strong (for any cluster id).
        assert_eq!(seed_weakness(derive_from_secret(b"0123456789abcdef0123456789abcdef"), 7), None);
        for cid in [0, 1, 7, u32::MAX] {
            let s = random_seed(cid).unwrap();
            assert_eq!(seed_weakness(s, cid), None);
        }
        assert_ne!(random_seed(1).unwrap(), random_seed(1).unwrap());
    }

    #[test]
    fn derivation_is_pinned_and_keyed() {
        // Known answer: HMAC-SHA256(key, "farm module.hash_seed v1"), first 8 bytes LE. Every
        // node of a cluster computes it; changing it moves clients, so it must never change.
        // (python3: hmac.new(b"0123456789abcdef", b"farm module.hash_seed v1", "sha256").digest()[:8])
        let s = derive_from_secret(b"0123456789abcdef");
        assert_eq!(s, derive_from_secret(b"0123456789abcdef"));
        assert_ne!(s, derive_from_secret(b"0123456789abcdeg"));
        assert_eq!(format_seed(s), KNOWN_DERIVED);
    }

    const KNOWN_DERIVED: &str = "0xd9a0ea440590221c";

    #[test]
    fn random_material() {
        let h = random_hex(32).unwrap();
        assert_eq!(h.len(), 64);
        assert!(h.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(h, random_hex(32).unwrap());
        assert_eq!(format_seed(0xab), "0x00000000000000ab");
    }
}
