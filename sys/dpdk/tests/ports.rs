//! Ports on net_ring / net_null / net_pcap vdevs created at runtime, sharing
//! one EAL per test process.

use std::time::{Duration, Instant};

use dpdk::test_support::{eal, pool, started_port, unique};
use dpdk::{Eal, EalError, Mbuf, MbufBurst, Mempool, Port, PortConfig, PortError, QueueId, Rss};

const Q0: QueueId = QueueId(0);

/// A frame whose bytes identify `i`.
fn frame(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 7 + j) as u8).collect()
}

fn filled(p: &Mempool, bytes: &[u8]) -> Mbuf {
    let mut m = p.alloc().expect("mbuf");
    m.extend_from_slice(bytes).expect("room");
    m
}

#[test]
fn ring_loopback_returns_burst_intact() {
    let p = pool(511);
    // A single net_ring vdev uses the same ring for tx queue i and rx queue i.
    let port = started_port(&unique("net_ring"), 1, 1, &p).unwrap();
    let mut rx = port.rx_queue(Q0).unwrap();
    let mut tx = port.tx_queue(Q0).unwrap();
    let sent_frames: Vec<Vec<u8>> = (0..32).map(|i| frame(i, 60 + i * 13)).collect();
    let mut burst: MbufBurst = MbufBurst::new();
    for f in &sent_frames {
        burst.push(filled(&p, f)).unwrap();
    }
    assert_eq!(tx.tx_burst(&mut burst), 32);
    assert!(burst.is_empty());
    let mut got: MbufBurst<64> = MbufBurst::new();
    assert_eq!(rx.rx_burst(&mut got), 32);
    assert_eq!(rx.rx_burst(&mut got), 0, "nothing more in the ring");
    let received: Vec<Vec<u8>> = got.iter().map(|m| m.data().to_vec()).collect();
    assert_eq!(received, sent_frames);
    assert_eq!(p.in_use(), 32);
    drop(got);
    assert_eq!(p.in_use(), 0, "all mbufs back in the pool");

    let stats = port.stats().unwrap();
    assert_eq!(stats.opackets, 32);
    assert_eq!(stats.ipackets, 32);
    assert_eq!(stats.oerrors, 0);
    port.reset_stats().unwrap();
    assert_eq!(port.stats().unwrap().ipackets, 0);
}

#[test]
fn ring_full_leaves_unsent_mbufs_with_caller() {
    let p = pool(2047);
    let mut port = Port::attach(eal(), &unique("net_ring")).unwrap();
    port.configure(
        &PortConfig {
            rx_desc: 64,
            tx_desc: 64,
            ..PortConfig::default()
        },
        &p,
    )
    .unwrap();
    port.start().unwrap();
    let mut tx = port.tx_queue(Q0).unwrap();
    // net_ring's ring holds 1023 entries; push until it refuses.
    let mut total = 0;
    let mut leftover = 0;
    for round in 0..40 {
        let mut burst: MbufBurst = MbufBurst::new();
        p.alloc_bulk(&mut burst, 32).unwrap();
        let sent = tx.tx_burst(&mut burst);
        total += sent;
        if sent < 32 {
            assert_eq!(
                burst.len(),
                32 - sent,
                "unsent mbufs stay in the burst (round {round})"
            );
            leftover = burst.len();
            let out = tx.tx_burst_or_free(&mut burst);
            assert_eq!(out.sent, 0);
            assert_eq!(out.dropped, leftover);
            assert!(burst.is_empty());
            break;
        }
    }
    assert!(leftover > 0, "ring never filled");
    assert_eq!(
        p.in_use() as usize,
        total,
        "refused mbufs were freed, sent ones sit in the ring"
    );
    // Drain the ring back.
    let mut rx = port.rx_queue(Q0).unwrap();
    let mut got: MbufBurst = MbufBurst::new();
    let mut received = 0;
    while {
        got.clear();
        rx.rx_burst(&mut got) > 0
    } {
        received += got.len();
    }
    assert_eq!(received, total);
    assert_eq!(p.in_use(), 0);
    let mut q = port.tx_queue(QueueId(0));
    assert!(matches!(q, Err(PortError::QueueTaken { .. })));
    drop(tx);
    q = port.tx_queue(QueueId(0));
    let mut tx = q.unwrap();
    let m = filled(&p, b"one");
    tx.tx_one(m).unwrap();
    got.clear();
    assert_eq!(rx.rx_burst(&mut got), 1);
    assert_eq!(got[0].data(), b"one");
}

#[test]
fn null_rx_delivers_and_nothing_leaks() {
    let p = pool(1023);
    let port = started_port(&format!("{},size=64", unique("net_null")), 1, 1, &p).unwrap();
    let mut rx = port.rx_queue(Q0).unwrap();
    let mut tx = port.tx_queue(Q0).unwrap();
    let mut total = 0;
    for _ in 0..100 {
        let mut burst: MbufBurst = MbufBurst::new();
        let n = rx.rx_burst(&mut burst);
        assert_eq!(n, 32, "net_null always fills the burst");
        assert!(burst
            .iter()
            .all(|m| m.data_len() == 64 && m.pkt_len() == 64));
        total += n;
        if total % 64 == 0 {
            // half of the bursts go out through tx (net_null frees them)
            assert_eq!(tx.tx_burst(&mut burst), 32);
        }
        // the rest is freed by the burst's drop
    }
    assert_eq!(p.in_use(), 0, "every received mbuf was freed");
    assert_eq!(p.available(), 1023);
    let stats = port.stats().unwrap();
    assert_eq!(stats.ipackets, total as u64);
    assert_eq!(stats.opackets, (total / 2) as u64);
    assert_eq!(stats.rx_nombuf, 0);
}

#[test]
fn null_rx_with_exhausted_pool_delivers_nothing() {
    let p = pool(63);
    let port = started_port(&unique("net_null"), 1, 1, &p).unwrap();
    let mut rx = port.rx_queue(Q0).unwrap();
    let mut a: MbufBurst = MbufBurst::new();
    assert_eq!(rx.rx_burst(&mut a), 32);
    // 31 mbufs left: net_null allocates a whole burst or nothing.
    let mut b: MbufBurst = MbufBurst::new();
    assert_eq!(rx.rx_burst(&mut b), 0);
    assert!(b.is_empty());
    drop(a);
    assert_eq!(rx.rx_burst(&mut b), 32, "works again once mbufs are back");
    drop(b);
    assert_eq!(p.in_use(), 0);
    assert_eq!(port.stats().unwrap().ipackets, 64);
}

#[test]
fn bad_devargs_are_typed_errors() {
    let e = eal();
    match Port::attach(e, &unique("net_bogus")) {
        Err(PortError::Probe { source, .. }) => assert!(source.errno() > 0, "{source}"),
        other => panic!("unknown driver: expected Probe error, got {other:?}"),
    }
    let bad_arg = format!("{},nodeaction=garbage", unique("net_ring"));
    assert!(
        matches!(Port::attach(e, &bad_arg), Err(PortError::Probe { .. })),
        "bad driver argument"
    );
    let missing = format!("{},rx_pcap=/nonexistent/in.pcap", unique("net_pcap"));
    assert!(
        matches!(Port::attach(e, &missing), Err(PortError::Probe { .. })),
        "missing pcap file"
    );
    assert!(matches!(
        Port::attach(e, ""),
        Err(PortError::InvalidName(_))
    ));
    assert!(matches!(
        Port::attach(e, "net_null\0x"),
        Err(PortError::InvalidName(_))
    ));
    assert!(matches!(
        Port::open(e, "no_such_port"),
        Err(PortError::NotFound(_))
    ));
    // The same name twice.
    let name = unique("net_null");
    let _first = Port::attach(e, &name).unwrap();
    assert!(
        matches!(Port::attach(e, &name), Err(PortError::InUse(_))),
        "attach twice"
    );
    assert!(
        matches!(Port::open(e, &name), Err(PortError::InUse(_))),
        "second owner"
    );
    assert!(
        matches!(Port::open_id(e, _first.id()), Err(PortError::InUse(_))),
        "second owner by id"
    );
    assert!(matches!(
        Port::open_id(e, dpdk::PortId(31)),
        Err(PortError::NoSuchId(_))
    ));
}

#[test]
fn second_eal_init_is_a_typed_error() {
    let _ = eal();
    let again = Eal::builder()
        .no_huge()
        .no_shconf()
        .no_pci()
        .memory_mb(64)
        .init();
    assert!(
        matches!(again, Err(EalError::AlreadyInitialized)),
        "{again:?}"
    );
}

#[test]
fn lifecycle_rules() {
    let p = pool(255);
    let mut port = Port::attach(eal(), &unique("net_null")).unwrap();
    assert!(
        matches!(port.start(), Err(PortError::BadState { .. })),
        "start before configure"
    );
    assert!(matches!(port.rx_queue(Q0), Err(PortError::BadState { .. })));
    let info = port.info().unwrap();
    assert_eq!(info.driver_name, "net_null");
    assert_eq!(info.device_name, port.name());
    // net_null emulates RSS (it accepts the configuration; it hashes nothing).
    assert_ne!(info.rss_offloads, 0);

    let too_many = PortConfig {
        rx_queues: info.max_rx_queues + 1,
        ..PortConfig::default()
    };
    assert!(matches!(
        port.configure(&too_many, &p),
        Err(PortError::InvalidConfig { .. })
    ));
    assert!(matches!(
        port.configure_with_pools(
            &PortConfig {
                rx_queues: 2,
                ..PortConfig::default()
            },
            &[p.clone(), p.clone(), p.clone()]
        ),
        Err(PortError::InvalidConfig { .. })
    ));
    // One rx queue: Rss::Auto leaves RSS off.
    let one = PortConfig {
        rx_desc: 128,
        tx_desc: 128,
        ..PortConfig::default()
    };
    port.configure(&one, &p).unwrap();
    assert!(!port.rss_enabled());
    // Two: Rss::Auto turns it on where the device offers it.
    let auto = PortConfig {
        rx_queues: 2,
        tx_queues: 2,
        rx_desc: 128,
        tx_desc: 128,
        ..PortConfig::default()
    };
    port.configure(&auto, &p).unwrap();
    assert!(port.rss_enabled());
    assert_eq!((port.rx_queue_count(), port.tx_queue_count()), (2, 2));
    port.start().unwrap();
    assert!(port.is_started());
    assert!(matches!(
        port.rx_queue(QueueId(2)),
        Err(PortError::NoSuchQueue { .. })
    ));
    let rx0 = port.rx_queue(Q0).unwrap();
    let rx1 = port.rx_queue(QueueId(1)).unwrap();
    assert!(
        matches!(port.stop(), Err(PortError::Busy(_))),
        "queues alive"
    );
    assert!(matches!(port.configure(&auto, &p), Err(PortError::Busy(_))));
    drop((rx0, rx1));
    port.stop().unwrap();
    assert!(!port.is_started());
    port.start().unwrap();

    // Control-path queries.
    let link = port.link().unwrap();
    assert!(link.up, "net_null link is up once started");
    port.set_promiscuous(true).unwrap();
    assert!(port.promiscuous().unwrap());
    let mac = dpdk::MacAddr([0x02, 0, 0, 0, 0, 0x42]);
    port.set_mac_addr(mac).unwrap();
    assert_eq!(port.mac_addr().unwrap(), mac);
    assert!(port.mtu().unwrap() > 0);
    let id = port.id();
    assert!(dpdk::available_ports(eal())
        .iter()
        .any(|(i, n)| *i == id && n == port.name()));
    port.close().unwrap();
    assert!(
        !dpdk::available_ports(eal()).iter().any(|(i, _)| *i == id),
        "port released after close"
    );
    assert_eq!(p.in_use(), 0);
}

#[test]
fn rss_required_on_device_without_rss_is_refused() {
    let p = pool(255);
    let mut port = Port::attach(eal(), &unique("net_ring")).unwrap();
    let info = port.info().unwrap();
    assert_eq!(info.rss_offloads, 0, "net_ring has no RSS");
    let rss = PortConfig {
        rss: Rss::Required,
        ..PortConfig::default()
    };
    assert!(matches!(
        port.configure(&rss, &p),
        Err(PortError::InvalidConfig { .. })
    ));
    // Rss::Auto just leaves it off.
    port.configure(&PortConfig::default(), &p).unwrap();
    assert!(!port.rss_enabled());
}

#[test]
fn close_with_live_queue_defers_until_handle_drops() {
    let p = pool(255);
    let name = unique("net_null");
    let port = started_port(&name, 1, 1, &p).unwrap();
    let mut rx = port.rx_queue(Q0).unwrap();
    assert!(matches!(port.close(), Err(PortError::Busy(_))));
    // The handle still works: the port stays open while it lives.
    let mut burst: MbufBurst = MbufBurst::new();
    assert_eq!(rx.rx_burst(&mut burst), 32);
    drop(burst);
    drop(rx);
    assert!(
        matches!(Port::open(eal(), &name), Err(PortError::NotFound(_))),
        "closed and removed"
    );
}

#[test]
fn pcap_write_then_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("burst.pcap");
    let p = pool(255);
    let frames: Vec<Vec<u8>> = (0..20).map(|i| frame(i, 64 + i * 31)).collect();
    {
        // rx side of the writer reads an empty (header-only) pcap.
        let devargs = format!("{},tx_pcap={}", unique("net_pcap"), file.display());
        let port = started_port(&devargs, 1, 1, &p).unwrap();
        let mut tx = port.tx_queue(Q0).unwrap();
        let mut burst: MbufBurst = MbufBurst::new();
        for f in &frames {
            burst.push(filled(&p, f)).unwrap();
        }
        assert_eq!(tx.tx_burst(&mut burst), frames.len());
        assert_eq!(port.stats().unwrap().opackets, frames.len() as u64);
        // closing the port flushes the file
    }
    assert_eq!(p.in_use(), 0);
    let devargs = format!("{},rx_pcap={}", unique("net_pcap"), file.display());
    let port = started_port(&devargs, 1, 1, &p).unwrap();
    let mut rx = port.rx_queue(Q0).unwrap();
    let mut got: MbufBurst<64> = MbufBurst::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < frames.len() && Instant::now() < deadline {
        rx.rx_burst(&mut got);
    }
    let received: Vec<Vec<u8>> = got.iter().map(|m| m.data().to_vec()).collect();
    assert_eq!(received, frames);
    assert_eq!(port.stats().unwrap().ipackets, frames.len() as u64);
}
