use proptest::prelude::*;

use super::*;

const SECRET: &[u8] = b"0123456789abcdef-farm-secret";

fn sample() -> Heartbeat {
    Heartbeat {
        cluster_id: 77,
        sender: 2,
        dest: 5,
        incarnation: 1_700_000_000_123_456_789,
        sequence: 42,
        state: NodeState::Up,
        weight: 3,
        active: true,
        settled: true,
        view: 0b10_0110,
        view_digest: 0xdead_beef_0bad_cafe,
        generation: 9,
        timestamp_ns: 123_456,
        ack: Some(Ack { incarnation: 5, sequence: 1000 }),
        drain: DrainSet::from_sorted([1, 2, 3, 100, 4095, 65535]),
    }
}

fn codecs() -> (Codec, Codec) {
    (Codec::new(SECRET, 77, 2).unwrap(), Codec::new(SECRET, 77, 5).unwrap())
}

#[test]
fn round_trip() {
    let (tx, rx) = codecs();
    let hb = sample();
    let bytes = tx.encode(&hb).unwrap();
    assert_eq!(bytes.len(), HEADER_LEN + 4 * 4 + MAC_LEN);
    assert_eq!(bytes[0], VERSION);
    assert_eq!(rx.decode(&bytes).unwrap(), hb);

    let mut bare = sample();
    bare.ack = None;
    bare.active = false;
    bare.settled = false;
    bare.drain = DrainSet::new();
    bare.state = NodeState::Stopping;
    let bytes = tx.encode(&bare).unwrap();
    assert_eq!(bytes.len(), HEADER_LEN + MAC_LEN);
    assert_eq!(rx.decode(&bytes).unwrap(), bare);
}

/// Byte-level fixture: pins the layout (offsets, endianness) independently of the encoder.
#[test]
fn layout_fixture() {
    let (tx, _) = codecs();
    let bytes = tx.encode(&sample()).unwrap();
    assert_eq!(&bytes[..12], &[1, 2, 3, 2, 5, 0, 0, 3, 0, 0, 0, 77]);
    let mut unsettled = sample();
    unsettled.settled = false;
    assert_eq!(tx.encode(&unsettled).unwrap()[2], 3 | 4);
    assert_eq!(&bytes[20..28], &42u64.to_be_bytes());
    assert_eq!(&bytes[36..44], &0b10_0110u64.to_be_bytes());
    assert_eq!(&bytes[68..76], &1000u64.to_be_bytes());
    assert_eq!(&bytes[76..78], &[0, 4]);
    // Runs: 1..4 (start 1, len-1 2), 100, 4095, 65535.
    assert_eq!(&bytes[78..94], &[0, 1, 0, 2, 0, 100, 0, 0, 0x0f, 0xff, 0, 0, 0xff, 0xff, 0, 0]);
}

#[test]
fn forged_or_corrupted_mac_rejected() {
    let (tx, rx) = codecs();
    let bytes = tx.encode(&sample()).unwrap();
    // Any flipped bit after the cluster id fails the MAC (or an earlier structural check).
    for i in 12..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x10;
        let r = rx.decode(&b);
        assert!(r.is_err(), "byte {i} flipped but accepted");
        if i != 76 && i != 77 {
            assert_eq!(r, Err(Reject::BadMac), "byte {i}");
        }
    }
    // Other secret.
    let other = Codec::new(b"another secret, same length!", 77, 2).unwrap();
    assert_eq!(rx.decode(&other.encode(&sample()).unwrap()), Err(Reject::BadMac));
    // Changing the authenticated sender changes the MAC input.
    let mut b = bytes.clone();
    b[3] = 3;
    assert_eq!(rx.decode(&b), Err(Reject::BadMac));
}

#[test]
fn foreign_cluster_wrong_dest_self_rejected() {
    let (tx, rx) = codecs();
    let mut hb = sample();
    hb.cluster_id = 78;
    assert_eq!(rx.decode(&tx.encode(&hb).unwrap()), Err(Reject::ForeignCluster(78)));
    let mut hb = sample();
    hb.dest = 4;
    assert_eq!(rx.decode(&tx.encode(&hb).unwrap()), Err(Reject::WrongDest(4)));
    let mut hb = sample();
    hb.sender = 5;
    assert_eq!(rx.decode(&tx.encode(&hb).unwrap()), Err(Reject::FromSelf));
}

#[test]
fn truncated_and_bad_lengths_rejected() {
    let (tx, rx) = codecs();
    let bytes = tx.encode(&sample()).unwrap();
    for n in 0..HEADER_LEN + MAC_LEN {
        assert_eq!(rx.decode(&bytes[..n]), Err(Reject::Truncated { len: n }));
    }
    for n in HEADER_LEN + MAC_LEN..bytes.len() {
        assert!(matches!(rx.decode(&bytes[..n]), Err(Reject::BadLength { .. })), "len {n}");
    }
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(rx.decode(&long), Err(Reject::BadLength { .. })));
    let mut v2 = bytes;
    v2[0] = 2;
    assert_eq!(rx.decode(&v2), Err(Reject::BadVersion(2)));
}

#[test]
fn replay_stale_and_old_incarnation_rejected() {
    let mut g = ReplayGuard::new();
    let mut hb = sample();
    assert_eq!(g.check(&hb), Ok(()));
    assert_eq!(g.check(&hb), Err(Reject::Duplicate));
    hb.sequence = 41;
    assert_eq!(g.check(&hb), Err(Reject::Stale));
    hb.sequence = 43;
    assert_eq!(g.check(&hb), Ok(()));
    // Restart: new incarnation, sequence starts over.
    hb.incarnation += 1;
    hb.sequence = 1;
    assert_eq!(g.check(&hb), Ok(()));
    // The old incarnation's datagrams, even with high sequences, are now rejected.
    hb.incarnation -= 1;
    hb.sequence = 1000;
    assert_eq!(g.check(&hb), Err(Reject::OldIncarnation));
    // Other senders are independent.
    hb.sender = 9;
    assert_eq!(g.check(&hb), Ok(()));
    assert_eq!(g.last(2), Some((sample().incarnation + 1, 1)));

    let mut c = RejectCounters::default();
    c.bump(Reject::Duplicate);
    c.bump(Reject::Duplicate);
    c.bump(Reject::BadMac);
    assert_eq!(c.get(Reject::Duplicate), 2);
    assert_eq!(c.by_name("bad_mac"), 1);
    assert_eq!(c.total(), 3);
    assert_eq!(c.iter().count(), Reject::NAMES.len());
}

#[test]
fn full_drain_set_fits_one_datagram() {
    let (tx, rx) = codecs();
    let mut hb = sample();
    let mut d = DrainSet::from_sorted((0..65536).step_by(3));
    assert!(d.runs().len() > MAX_RUNS);
    hb.drain = d.clone();
    assert_eq!(tx.encode(&hb), Err(EncodeError::TooManyRuns { runs: d.runs().len() }));
    d.coarsen(MAX_RUNS);
    hb.drain = d;
    let bytes = tx.encode(&hb).unwrap();
    assert!(bytes.len() <= MAX_DATAGRAM);
    assert_eq!(rx.decode(&bytes).unwrap(), hb);
    assert!(Codec::new(b"", 1, 1).is_err());
    assert!(Codec::new(SECRET, 1, 64).is_err());
}

fn arb_state() -> impl Strategy<Value = NodeState> {
    prop_oneof![
        Just(NodeState::Stop),
        Just(NodeState::Wait),
        Just(NodeState::Up),
        Just(NodeState::Starting),
        Just(NodeState::Stopping)
    ]
}

prop_compose! {
    fn arb_heartbeat()(
        sender in 0u8..64, incarnation in any::<u64>(), sequence in any::<u64>(), state in arb_state(),
        weight in any::<u16>(), active in any::<bool>(), settled in any::<bool>(), view in any::<u64>(), view_digest in any::<u64>(),
        generation in any::<u64>(), timestamp_ns in any::<u64>(), ack in proptest::option::of((any::<u64>(), any::<u64>())),
        buckets in proptest::collection::btree_set(0u32..65536, 0..400),
    ) -> Heartbeat {
        let mut drain = DrainSet::from_sorted(buckets);
        drain.coarsen(MAX_RUNS);
        Heartbeat {
            cluster_id: 77, sender, dest: 5, incarnation, sequence, state, weight, active, settled, view, view_digest,
            generation, timestamp_ns, ack: ack.map(|(incarnation, sequence)| Ack { incarnation, sequence }), drain,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1600)) {
        let (_, rx) = codecs();
        let _ = rx.decode(&bytes);
    }

    /// Arbitrary bytes behind a valid header (so the MAC check is reached) never panic either.
    #[test]
    fn decode_never_panics_past_header(tail in proptest::collection::vec(any::<u8>(), 0..1400), n_runs in 0u16..400) {
        let (_, rx) = codecs();
        let mut b = vec![VERSION, 2, 0, 1, 5, 0, 0, 1, 0, 0, 0, 77];
        b.resize(HEADER_LEN, 0);
        b[76..78].copy_from_slice(&n_runs.to_be_bytes());
        b.extend_from_slice(&tail);
        prop_assert!(rx.decode(&b).is_err());
    }

    #[test]
    fn round_trip_any(hb in arb_heartbeat()) {
        prop_assume!(hb.sender != 5);
        let tx = Codec::new(SECRET, 77, hb.sender).unwrap();
        let (_, rx) = codecs();
        let bytes = tx.encode(&hb).unwrap();
        prop_assert!(bytes.len() <= MAX_DATAGRAM);
        prop_assert_eq!(rx.decode(&bytes).unwrap(), hb);
    }

    /// Any single-byte corruption of a valid datagram is rejected.
    #[test]
    fn corruption_rejected(hb in arb_heartbeat(), pos in any::<prop::sample::Index>(), x in 1u8..=255) {
        prop_assume!(hb.sender != 5);
        let tx = Codec::new(SECRET, 77, hb.sender).unwrap();
        let (_, rx) = codecs();
        let mut bytes = tx.encode(&hb).unwrap();
        let i = pos.index(bytes.len());
        bytes[i] ^= x;
        prop_assert!(rx.decode(&bytes).is_err());
    }
}
