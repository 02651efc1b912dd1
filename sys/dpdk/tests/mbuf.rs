//! Mempool, Mbuf and MbufBurst against a real EAL (shared per process).

use dpdk::test_support::{eal, pool, unique};
use dpdk::{Mbuf, MbufBurst, MbufError, Mempool, MempoolConfig, MempoolError};

#[test]
fn alloc_free_returns_to_pool() {
    let p = pool(127);
    assert_eq!(p.capacity(), 127);
    assert_eq!(p.available(), 127);
    let a = p.alloc().expect("mbuf");
    let b = p.alloc().expect("mbuf");
    assert_eq!(p.in_use(), 2);
    assert_eq!(a.data_len(), 0);
    assert_eq!(a.pkt_len(), 0);
    assert_eq!(a.refcnt(), 1);
    assert!(a.is_contiguous());
    assert_eq!(a.headroom(), 128);
    drop(a);
    drop(b);
    assert_eq!(p.in_use(), 0);
}

#[test]
fn pool_exhaustion_is_reported() {
    let p = pool(63);
    let all: Vec<Mbuf> = std::iter::from_fn(|| p.alloc()).collect();
    assert_eq!(all.len(), 63);
    assert!(p.alloc().is_none());
    let mut burst: MbufBurst = MbufBurst::new();
    assert!(matches!(
        p.alloc_bulk(&mut burst, 1),
        Err(MempoolError::Exhausted { requested: 1 })
    ));
    assert!(burst.is_empty());
    drop(all);
    assert_eq!(p.available(), 63);
}

#[test]
fn append_prepend_adj_trim() {
    let p = pool(63);
    let mut m = p.alloc().unwrap();
    m.extend_from_slice(b"world").unwrap();
    m.prepend(6).unwrap().copy_from_slice(b"hello ");
    assert_eq!(m.data(), b"hello world");
    assert_eq!(m.pkt_len(), 11);
    m.adj(6).unwrap();
    assert_eq!(m.data(), b"world");
    m.trim(2).unwrap();
    assert_eq!(m.data(), b"wor");
    m.data_mut()[0] = b'W';
    assert_eq!(m.data(), b"Wor");
    m.truncate(1).unwrap();
    assert_eq!(m.data(), b"W");
    // Refusals leave the mbuf unchanged.
    assert_eq!(m.adj(2), Err(MbufError::TooShort(2)));
    assert_eq!(m.trim(5), Err(MbufError::TooShort(5)));
    let head = m.headroom();
    assert_eq!(
        m.prepend(head + 1).unwrap_err(),
        MbufError::NoRoom(head + 1)
    );
    let tail = m.tailroom();
    assert_eq!(m.append(tail + 1).unwrap_err(), MbufError::NoRoom(tail + 1));
    assert_eq!(m.append(100_000).unwrap_err(), MbufError::NoRoom(100_000));
    assert_eq!(m.data(), b"W");
    // The full tailroom is usable.
    assert_eq!(m.append(tail).unwrap().len(), tail);
    assert_eq!(m.tailroom(), 0);
    m.reset();
    assert_eq!(m.data_len(), 0);
    assert_eq!(m.rss_hash(), None);
}

#[test]
fn into_raw_from_raw_round_trip() {
    let p = pool(63);
    let mut m = p.alloc().unwrap();
    m.extend_from_slice(&[1, 2, 3]).unwrap();
    let raw = m.into_raw();
    assert_eq!(p.in_use(), 1, "into_raw must not free");
    // SAFETY: `raw` came from into_raw just above and is owned by nobody else.
    let m = unsafe { Mbuf::from_raw(raw) };
    assert_eq!(m.data(), &[1, 2, 3]);
    drop(m);
    assert_eq!(p.in_use(), 0);
}

#[test]
fn burst_owns_and_frees_everything() {
    let p = pool(255);
    {
        let mut burst: MbufBurst<64> = MbufBurst::new();
        p.alloc_bulk(&mut burst, 40).unwrap();
        assert_eq!(burst.len(), 40);
        assert_eq!(p.in_use(), 40);
        assert!(matches!(
            p.alloc_bulk(&mut burst, 25),
            Err(MempoolError::Exhausted { .. })
        ));
        for (i, m) in burst.iter_mut().enumerate() {
            m.extend_from_slice(&[i as u8]).unwrap();
        }
        // retain keeps order and frees the rest
        burst.retain(|m| m.data()[0] % 2 == 0);
        assert_eq!(burst.len(), 20);
        assert_eq!(p.in_use(), 20);
        assert!(burst
            .iter()
            .enumerate()
            .all(|(i, m)| m.data()[0] == 2 * i as u8));
        // drain: take three, the dropped iterator frees the rest
        let taken: Vec<Mbuf> = burst.drain().take(3).collect();
        assert!(burst.is_empty());
        assert_eq!(p.in_use(), 3);
        for m in taken {
            burst.push(m).unwrap();
        }
        let last = burst.swap_remove(0);
        assert_eq!(last.data(), &[0]);
        assert_eq!(burst[0].data(), &[4]);
        drop(last);
        burst.truncate(1);
        assert_eq!(p.in_use(), 1);
        // burst dropped with one mbuf inside
    }
    assert_eq!(p.in_use(), 0);
}

#[test]
fn full_burst_gives_mbuf_back() {
    let p = pool(63);
    let mut burst: MbufBurst<2> = MbufBurst::new();
    burst.push(p.alloc().unwrap()).unwrap();
    burst.push(p.alloc().unwrap()).unwrap();
    assert!(burst.is_full());
    let extra = burst.push(p.alloc().unwrap()).unwrap_err();
    drop(extra);
    burst.clear();
    assert_eq!(p.in_use(), 0);
}

#[test]
fn mempool_name_rules() {
    let e = eal();
    let long = "x".repeat(26);
    assert!(matches!(
        Mempool::with_size(e, &long, 63),
        Err(MempoolError::InvalidName { .. })
    ));
    assert!(matches!(
        Mempool::with_size(e, "", 63),
        Err(MempoolError::InvalidName { .. })
    ));
    assert!(matches!(
        Mempool::with_size(e, "a\0b", 63),
        Err(MempoolError::InvalidName { .. })
    ));
    let name = unique("dup");
    let first = Mempool::with_size(e, &name, 63).unwrap();
    match Mempool::with_size(e, &name, 63) {
        Err(MempoolError::Create { source, .. }) => assert_eq!(source.errno(), libc::EEXIST),
        other => panic!("expected EEXIST, got {other:?}"),
    }
    // Freed on drop: the name can be reused.
    drop(first);
    Mempool::with_size(e, &name, 63).expect("name free again after drop");
}

#[test]
fn custom_data_room() {
    let cfg = MempoolConfig {
        size: 63,
        cache_size: 0,
        data_room: 128 + 256,
        ..MempoolConfig::default()
    };
    let p = Mempool::new(eal(), &unique("small"), &cfg).unwrap();
    let mut m = p.alloc().unwrap();
    assert_eq!(m.tailroom(), 256);
    assert!(m.append(257).is_err());
}
