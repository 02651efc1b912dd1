use proptest::prelude::*;

use super::*;

fn members(ws: &[(u8, u16)]) -> Vec<Member> {
    ws.iter().map(|&(id, weight)| Member { id, weight }).collect()
}

fn table(seed: u64, ms: &[Member], n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    assign(seed, ms, &mut out);
    out
}

/// The plain definition, the specification of [`assign`]: for every bucket, one [`Score`] per
/// member with a positive weight, the best by [`Score::beats`]. No weight classes, no lanes,
/// no blocks.
fn reference(seed: u64, ms: &[Member], n: usize) -> Vec<u8> {
    let bk = BucketKey::new(seed);
    let logs = Log2Table::get();
    (0..n as u32)
        .map(|b| {
            let w = bk.word(b);
            let mut best: Option<Score> = None;
            for m in ms.iter().filter(|m| m.weight > 0) {
                let s = Score::new(m.weight, NodeKey::new(seed, m.id).hash(w), logs);
                if best.is_none_or(|cur| s.beats(&cur)) {
                    best = Some(s);
                }
            }
            best.map_or(NO_NODE, |s| id_of(s.hash))
        })
        .collect()
}

fn counts(t: &[u8]) -> [usize; 256] {
    let mut c = [0usize; 256];
    for &o in t {
        c[usize::from(o)] += 1;
    }
    c
}

/// Known answers: pin the function (the weighted vectors were cross-checked against an
/// independent floating-point `-w / ln(u)` implementation over the same hashes). A change here changes placement in mixed-version clusters.
#[test]
fn known_answer_vectors() {
    let ms = members(&[(0, 1), (1, 1), (2, 1), (3, 1)]);
    let t = table(0x5eed, &ms, 4096);
    assert_eq!(&t[..16], &KAT_EQUAL_FIRST16);
    assert_eq!(table_digest(&t), KAT_EQUAL_DIGEST);

    let ms = members(&[(0, 1), (3, 2), (7, 3), (12, 1)]);
    let t = table(42, &ms, 4096);
    assert_eq!(&t[..16], &KAT_WEIGHTED_FIRST16);
    assert_eq!(table_digest(&t), KAT_WEIGHTED_DIGEST);

    let ms: Vec<Member> = (0..8).map(|id| Member { id, weight: 1 }).collect();
    assert_eq!(table_digest(&table(1, &ms, 65536)), KAT_8X65536_DIGEST);
    assert_eq!(table_digest(&[]), KAT_EMPTY_DIGEST);
}

const KAT_EQUAL_FIRST16: [u8; 16] = [3, 1, 2, 0, 3, 3, 2, 1, 1, 1, 3, 1, 3, 2, 3, 3];
const KAT_EQUAL_DIGEST: u64 = 0x6fa9_4fd5_ff8f_2e42;
const KAT_WEIGHTED_FIRST16: [u8; 16] = [7, 12, 12, 7, 7, 3, 7, 7, 3, 0, 3, 3, 7, 3, 7, 0];
const KAT_WEIGHTED_DIGEST: u64 = 0x780e_c255_682e_1e7a;
const KAT_8X65536_DIGEST: u64 = 0x609e_5030_f4b8_b23e;
const KAT_EMPTY_DIGEST: u64 = 0xefd0_1f60_ba99_2926;

#[test]
fn empty_and_zero_weight() {
    assert!(table(1, &[], 256).iter().all(|&o| o == NO_NODE));
    let t = table(1, &members(&[(4, 0)]), 256);
    assert!(t.iter().all(|&o| o == NO_NODE));
    let t = table(1, &members(&[(4, 0), (5, 3)]), 256);
    assert!(t.iter().all(|&o| o == 5));
}

#[test]
fn member_order_does_not_matter() {
    let a = members(&[(0, 1), (5, 2), (9, 1), (63, 4)]);
    let mut b = a.clone();
    b.reverse();
    assert_eq!(table(7, &a, 4096), table(7, &b, 4096));
}

#[test]
fn owner_of_matches_assign() {
    for ms in [members(&[(0, 1), (1, 1), (2, 1)]), members(&[(0, 1), (3, 2), (7, 3), (12, 1)])] {
        let t = table(99, &ms, 1024);
        for (b, &o) in t.iter().enumerate() {
            assert_eq!(owner_of(99, &ms, b as u32), o, "bucket {b}");
        }
    }
}

#[test]
fn equal_weights_are_balanced() {
    for n in 2..=8u8 {
        let ms: Vec<Member> = (0..n).map(|id| Member { id, weight: 1 }).collect();
        let t = table(0xfeed, &ms, 65536);
        let c = counts(&t);
        let exp = 65536.0 / f64::from(n);
        let sigma = (65536.0 * (1.0 / f64::from(n)) * (1.0 - 1.0 / f64::from(n))).sqrt();
        for id in 0..n {
            let got = c[usize::from(id)] as f64;
            assert!((got - exp).abs() < 5.0 * sigma, "n={n} id={id}: {got} vs {exp}");
        }
    }
}

#[test]
fn seeds_change_placement() {
    let ms = members(&[(0, 1), (1, 1), (2, 1)]);
    let a = table(1, &ms, 4096);
    let b = table(2, &ms, 4096);
    let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    // Independent placements agree on about 1/3 of the buckets.
    assert!((1000..1800).contains(&same), "{same}");
}

#[test]
fn failover_choice() {
    let c = |id, priority, active| Candidate { id, priority, active };
    assert_eq!(failover_owner(&[], true), NO_NODE);
    assert_eq!(failover_owner(&[c(3, 20, false), c(1, 10, false), c(2, 10, false)], true), 1);
    // Failback: the best priority takes over even from an active node.
    assert_eq!(failover_owner(&[c(3, 20, true), c(1, 10, false)], true), 1);
    // No failback: the active node keeps it.
    assert_eq!(failover_owner(&[c(3, 20, true), c(1, 10, false)], false), 3);
    // No active node: best priority.
    assert_eq!(failover_owner(&[c(3, 20, false), c(1, 10, false)], false), 1);
    // Two active nodes (after a partition): the best of them.
    assert_eq!(failover_owner(&[c(3, 20, true), c(4, 5, true), c(1, 1, false)], false), 4);
}

/// Any member set: 1 to 64 distinct ids, weights from a few small values (several equal
/// weights per class, drained members), or any u16 (large lcm: the cross-multiplied path).
fn arb_any_members() -> impl Strategy<Value = Vec<Member>> {
    let weights = prop_oneof![
        4 => prop::sample::select(vec![0u16, 1, 2, 3, 5]),
        1 => 0u16..=8,
        1 => any::<u16>(),
    ];
    (proptest::collection::btree_set(0u8..64, 1..=64), proptest::collection::vec(weights, 64))
        .prop_map(|(ids, ws)| ids.into_iter().zip(ws).map(|(id, weight)| Member { id, weight }).collect())
}

#[test]
fn fast_paths_equal_reference_on_fixed_cases() {
    let cases: Vec<Vec<Member>> = vec![
        members(&[(5, 1)]),
        members(&[(5, 7)]),
        members(&[(5, 0)]),
        members(&[(0, 0), (63, 2)]),
        members(&[(0, 1), (1, 3), (2, 5), (3, 1), (4, 3), (5, 5), (6, 1), (7, 3)]),
        (0..64).map(|id| Member { id, weight: 1 + u16::from(id % 3) * 2 }).collect(),
        (0..64).map(|id| Member { id, weight: 1 }).collect(),
        (0..64).map(|id| Member { id, weight: u16::from(id) * 1000 + 1 }).collect(),
        members(&[(1, 65535), (2, 65534), (3, 65533), (9, 1)]),
    ];
    for ms in cases {
        for n in [0, 1, 3, 4, 63, 64, 65, 200, 4096, 16384 + 7] {
            let want = reference(0xabc, &ms, n);
            // 16391 buckets: more than `PARALLEL_COST` for 64 members, so `assign` may split.
            assert_eq!(table(0xabc, &ms, n), want, "{ms:?} n={n}");
            for threads in [1, 3] {
                let mut out = vec![0u8; n];
                assign_threads(0xabc, &ms, &mut out, threads);
                assert_eq!(out, want, "{threads} threads {ms:?} n={n}");
            }
        }
    }
}

fn arb_members() -> impl Strategy<Value = Vec<Member>> {
    proptest::collection::btree_map(0u8..64, 1u16..=8, 1..8)
        .prop_map(|m| m.into_iter().map(|(id, weight)| Member { id, weight }).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever path [`assign`] takes (one weight class, single keys, cross-multiplied), and
    /// however many threads, it gives the plain definition's table.
    #[test]
    fn assign_equals_reference(seed in any::<u64>(), ms in arb_any_members(), n in 0usize..700, threads in 0usize..4) {
        let want = reference(seed, &ms, n);
        prop_assert_eq!(&table(seed, &ms, n), &want);
        let mut out = vec![0u8; n];
        assign_threads(seed, &ms, &mut out, threads);
        prop_assert_eq!(&out, &want);
        for b in [0, n / 2, n.saturating_sub(1)] {
            if b < n {
                prop_assert_eq!(owner_of(seed, &ms, b as u32), want[b]);
            }
        }
    }

    /// A member leaving moves only its own buckets.
    #[test]
    fn leave_moves_only_its_buckets(seed in any::<u64>(), ms in arb_members(), pick in any::<prop::sample::Index>()) {
        prop_assume!(ms.len() >= 2);
        let gone = ms[pick.index(ms.len())].id;
        let before = table(seed, &ms, 2048);
        let rest: Vec<Member> = ms.iter().copied().filter(|m| m.id != gone).collect();
        let after = table(seed, &rest, 2048);
        for (b, (&x, &y)) in before.iter().zip(&after).enumerate() {
            if x != gone {
                prop_assert_eq!(x, y, "bucket {} moved from {} to {}", b, x, y);
            } else {
                prop_assert_ne!(y, gone);
            }
        }
    }

    /// A member joining takes only buckets for itself, about w / Σw of them.
    #[test]
    fn join_takes_its_share(seed in any::<u64>(), ms in arb_members(), w in 1u16..=8) {
        let new_id = (0u8..64).find(|id| ms.iter().all(|m| m.id != *id)).unwrap();
        let before = table(seed, &ms, 8192);
        let mut more = ms.clone();
        more.push(Member { id: new_id, weight: w });
        let after = table(seed, &more, 8192);
        let mut taken = 0usize;
        for (&x, &y) in before.iter().zip(&after) {
            if x != y {
                prop_assert_eq!(y, new_id);
                taken += 1;
            }
        }
        let total: f64 = more.iter().map(|m| f64::from(m.weight)).sum();
        let p = f64::from(w) / total;
        let exp = 8192.0 * p;
        let sigma = (8192.0 * p * (1.0 - p)).sqrt();
        prop_assert!((taken as f64 - exp).abs() < 5.0 * sigma + 1.0, "took {} expected {}", taken, exp);
    }

    /// Each member gets a share proportional to its weight.
    #[test]
    fn weights_are_respected(seed in any::<u64>(), ms in arb_members()) {
        let t = table(seed, &ms, 16384);
        let c = counts(&t);
        let total: f64 = ms.iter().map(|m| f64::from(m.weight)).sum();
        for m in &ms {
            let p = f64::from(m.weight) / total;
            let exp = 16384.0 * p;
            let sigma = (16384.0 * p * (1.0 - p)).sqrt();
            let got = c[usize::from(m.id)] as f64;
            prop_assert!((got - exp).abs() < 5.0 * sigma + 1.0, "id {} weight {}: {} vs {}", m.id, m.weight, got, exp);
        }
    }

    /// Changing one member's weight moves buckets only to or from that member.
    #[test]
    fn weight_change_is_local(seed in any::<u64>(), ms in arb_members(), pick in any::<prop::sample::Index>(), w in 1u16..=8) {
        let i = pick.index(ms.len());
        let id = ms[i].id;
        let before = table(seed, &ms, 2048);
        let mut changed = ms.clone();
        changed[i].weight = w;
        let after = table(seed, &changed, 2048);
        for (&x, &y) in before.iter().zip(&after) {
            if x != y {
                prop_assert!(x == id || y == id);
            }
        }
    }
}
