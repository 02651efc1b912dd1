//! Integer-only scoring for weighted rendezvous hashing.
//!
//! Every (node, bucket) pair gets a 64-bit hash `h`. Read as `u = h / 2^64` in (0, 1), the
//! standard weighted-rendezvous score is `-w / ln(u)`: node `i` then wins a bucket with
//! probability `w_i / Σw`. Floating point and `ln` from libm are avoided so that every node
//! (whatever its CPU or libc) computes bit-identical tables: `-log2(u)` is computed in 32.32
//! fixed point from the leading-zero count plus a 4097-entry table of `-log2` over the next
//! 12 mantissa bits, linearly interpolated with the 20 bits after them. The table itself is
//! built with integers only (bit-by-bit logarithm by repeated squaring). Comparing `w / L`
//! between two nodes is done by cross-multiplication (`w_a · L_b` vs `w_b · L_a`), exactly.
//!
//! `L(h)` is non-increasing in `h`, so among nodes of equal weight the winner is simply the
//! node with the largest hash, and the logarithm is only needed to compare the per-weight
//! winners (never with a single weight class, the usual case).

use std::sync::OnceLock;

/// Fractional bits of the fixed-point logarithm.
pub(crate) const FRAC_BITS: u32 = 32;
const IDX_BITS: u32 = 12;
const INTERP_BITS: u32 = 20;
const TABLE_LEN: usize = (1 << IDX_BITS) + 1;

/// Domain separation: the assignment hash must not coincide with the client tuple hash.
const DOMAIN_NODE: u64 = 0x6872_775f_6e6f_6465; // "hrw_node"
const DOMAIN_BUCKET: u64 = 0x6872_775f_6275_636b; // "hrw_buck"

/// MurmurHash3's 64-bit finaliser.
#[inline(always)]
pub(crate) fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// 64×64→128 multiply, folded (wyhash's `mum`).
#[inline(always)]
fn mum(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Per-node hashing key, derived from the cluster seed and the node id.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NodeKey {
    a: u64,
    c: u64,
    tag: u64,
}

impl NodeKey {
    pub(crate) fn new(seed: u64, id: u8) -> NodeKey {
        debug_assert!(usize::from(id) < farm_table::MAX_NODES);
        let tag = 63 - u64::from(id & 63);
        let base = fmix64(seed ^ DOMAIN_NODE);
        let id = u64::from(id) + 1;
        let a = fmix64(base ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let c = fmix64(a ^ base.rotate_left(31) ^ id.wrapping_mul(0xd6e8_feb8_6659_fd93)) | 1;
        NodeKey { a, c, tag }
    }

    /// The node's hash for a bucket word (see [`BucketKey::word`]). The low 6 bits carry
    /// `63 - id`, so hashes of distinct nodes never tie and a larger hash means "lower id" on
    /// equal high bits: the tie-break is built in and the argmax is a branchless `max`.
    #[inline(always)]
    pub(crate) fn hash(&self, bucket_word: u64) -> u64 {
        (mum(bucket_word ^ self.a, self.c) & !63) | self.tag
    }
}

/// The per-bucket mixed word, shared by all nodes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BucketKey(u64);

impl BucketKey {
    pub(crate) fn new(seed: u64) -> BucketKey {
        BucketKey(fmix64(seed.rotate_left(17) ^ DOMAIN_BUCKET))
    }

    #[inline(always)]
    pub(crate) fn word(&self, bucket: u32) -> u64 {
        fmix64(self.0 ^ u64::from(bucket).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }
}

/// `log2(1 + i / 4096)` for `i` in `0..=4096`, in 0.40 fixed point, by repeated squaring.
const fn log2_1p_q40(i: u64) -> u64 {
    if i >= 1 << IDX_BITS {
        return 1 << 40;
    }
    // z in [1, 2) as Q62.
    let mut z: u128 = ((1u128 << IDX_BITS) + i as u128) << (62 - IDX_BITS);
    let two: u128 = 2 << 62;
    let mut out: u64 = 0;
    let mut k = 1;
    while k <= 40 {
        z = (z * z) >> 62;
        if z >= two {
            z >>= 1;
            out |= 1 << (40 - k);
        }
        k += 1;
    }
    out
}

fn table() -> &'static [u64; TABLE_LEN] {
    static TABLE: OnceLock<Box<[u64; TABLE_LEN]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = Box::new([0u64; TABLE_LEN]);
        for (i, slot) in t.iter_mut().enumerate() {
            // -log2(0.5 + i/8192) = 1 - log2(1 + i/4096), rounded from Q40 to Q32.
            let l = (1u64 << 40) - log2_1p_q40(i as u64);
            *slot = (l + (1 << 7)) >> 8;
        }
        t
    })
}

/// The table, for callers that evaluate many logarithms.
#[derive(Clone, Copy)]
pub(crate) struct Log2Table(&'static [u64; TABLE_LEN]);

impl std::fmt::Debug for Log2Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Log2Table")
    }
}

impl Log2Table {
    pub(crate) fn get() -> Log2Table {
        Log2Table(table())
    }

    /// `-log2(h / 2^64)` in 32.32 fixed point (`h == 0` counts as 1). Non-increasing in `h`;
    /// at most `64 << 32`.
    #[inline(always)]
    pub(crate) fn neg_log2(&self, h: u64) -> u64 {
        // `h | 1` has the leading zeros of `h` when h >= 1 and cannot be 0 (no branch, no
        // zero case); h == 0 then gives lz 63, n 0, idx 0, r 0: 63 + t[0] = 64, as h == 1.
        let lz = (h | 1).leading_zeros();
        let n = h << lz; // h >= 1: top bit set, n / 2^64 in [0.5, 1)
        let idx = ((n >> (63 - IDX_BITS)) & ((1 << IDX_BITS) - 1)) as usize;
        let r = (n >> (63 - IDX_BITS - INTERP_BITS)) & ((1 << INTERP_BITS) - 1);
        let hi = self.0[idx];
        let lo = self.0[idx + 1];
        let frac = hi - (((hi - lo) * r) >> INTERP_BITS);
        (u64::from(lz) << FRAC_BITS) + frac
    }
}

/// Id carried in the low bits of a [`NodeKey::hash`].
#[inline(always)]
pub(crate) fn id_of(hash: u64) -> u8 {
    63 - (hash & 63) as u8
}

/// A candidate's score for one bucket: its weight, its hash (which embeds its id) and
/// `L = -log2(hash / 2^64)`. Weight 0 loses to everything.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Score {
    pub(crate) weight: u16,
    pub(crate) hash: u64,
    pub(crate) log: u64,
}

impl Score {
    #[inline(always)]
    pub(crate) fn new(weight: u16, hash: u64, logs: Log2Table) -> Score {
        Score { weight, hash, log: logs.neg_log2(hash) }
    }

    /// True if `self` beats `other`: larger `weight / L`, then larger hash (distinct per node).
    /// A total order, identical on every node.
    #[inline(always)]
    pub(crate) fn beats(&self, other: &Score) -> bool {
        Score::wins(self.weight, self.log, self.hash, other.weight, other.log, other.hash)
    }

    /// [`Score::beats`] on unpacked fields.
    #[inline(always)]
    pub(crate) fn wins(wa: u16, la: u64, ha: u64, wb: u16, lb: u64, hb: u64) -> bool {
        // w_a / L_a > w_b / L_b  <=>  w_a·L_b > w_b·L_a (L <= 2^38, w < 2^16: no overflow).
        let a = u64::from(wa) * lb;
        let b = u64::from(wb) * la;
        (a > b) | ((a == b) & (ha > hb))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_monotone_and_pinned() {
        let t = table();
        assert_eq!(t[0], 1 << 32);
        assert_eq!(t[TABLE_LEN - 1], 0);
        for w in t.windows(2) {
            assert!(w[0] > w[1], "table must strictly decrease");
        }
        // -log2(0.75) × 2^32 = 1782572486.016...
        let mid = t[2048];
        assert!((1_782_572_484..=1_782_572_488).contains(&mid), "t[2048] = {mid}");
    }

    /// The original formulation (`h.max(1)` then its leading zeros).
    fn neg_log2_reference(t: &[u64; TABLE_LEN], h: u64) -> u64 {
        let h = h.max(1);
        let lz = h.leading_zeros();
        let n = h << lz;
        let idx = ((n >> (63 - IDX_BITS)) & ((1 << IDX_BITS) - 1)) as usize;
        let r = (n >> (63 - IDX_BITS - INTERP_BITS)) & ((1 << INTERP_BITS) - 1);
        let frac = t[idx] - (((t[idx] - t[idx + 1]) * r) >> INTERP_BITS);
        (u64::from(lz) << FRAC_BITS) + frac
    }

    #[test]
    fn neg_log2_equals_reference() {
        let l = Log2Table::get();
        let t = table();
        let mut x: u64 = 0x0123_4567_89ab_cdef;
        for i in 0..200_000u64 {
            x = fmix64(x ^ i);
            // Every magnitude: shift a random word right by 0..=63, and the words around
            // powers of two.
            for h in [x, x >> (i % 64), 1u64 << (i % 64), (1u64 << (i % 64)).wrapping_sub(1), i] {
                assert_eq!(l.neg_log2(h), neg_log2_reference(t, h), "{h:#x}");
            }
        }
        for h in [0, 1, 2, 3, u64::MAX, u64::MAX - 1, 1 << 63, (1 << 63) - 1] {
            assert_eq!(l.neg_log2(h), neg_log2_reference(t, h), "{h:#x}");
        }
    }

    #[test]
    fn neg_log2_known_points_and_monotone() {
        let l = Log2Table::get();
        assert_eq!(l.neg_log2(1 << 63), 1 << 32); // u = 1/2
        assert_eq!(l.neg_log2(1 << 62), 2 << 32); // u = 1/4
        assert_eq!(l.neg_log2(0), 64 << 32);
        assert_eq!(l.neg_log2(1), 64 << 32);
        assert!(l.neg_log2(u64::MAX) < 1 << 12);
        let mut prev = u64::MAX;
        let mut h: u64 = 1;
        while h < u64::MAX / 3 {
            let v = l.neg_log2(h);
            assert!(v <= prev, "not monotone at {h:#x}");
            prev = v;
            h = h + (h >> 7) + 1;
        }
        // Accuracy against f64 (test only) over a spread of points.
        let mut x: u64 = 0x1234_5678_9abc_def1;
        for _ in 0..10_000 {
            x = fmix64(x);
            let exact = -((x.max(1) as f64) / 2f64.powi(64)).log2();
            let got = l.neg_log2(x) as f64 / 2f64.powi(32);
            assert!((exact - got).abs() < 1e-6, "{x:#x}: {exact} vs {got}");
        }
    }
}
