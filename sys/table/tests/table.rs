//! The table file: creation, validation of bad files, the publish/acknowledge protocol.

use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use farm_table::{BucketEntry, Counter, HashKey, TableError, TableParams, TableReader, TableWriter, NO_NODE};

fn params(n_buckets: u32, n_lcores: u32) -> TableParams {
    TableParams { n_buckets, node_id: 2, n_lcores, hash_key: HashKey::from_seed(99) }
}

fn tmp() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("farm-test");
    (d, p)
}

#[test]
fn create_open_publish_roundtrip() {
    let (_d, path) = tmp();
    let mut w = TableWriter::create(&path, &params(4096, 2)).unwrap();
    assert_eq!(w.generation(), 1);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "table file mode");
    let r = TableReader::open(&path).unwrap();
    assert_eq!(r.params(), *w.params());
    let mut l = r.lcore(0).unwrap();
    let v = l.begin(0);
    assert_eq!(v.generation(), 1);
    assert_eq!(v.entry(17), BucketEntry::UNOWNED);
    assert_eq!(v.node_id(), 2);

    let entries: Vec<BucketEntry> =
        (0..4096u32).map(|b| BucketEntry { owner: (b % 3) as u8, prev_owner: if b % 5 == 0 { 1 } else { NO_NODE } }).collect();
    let g = w.publish(&entries, 0b111, Duration::from_secs(1)).unwrap();
    assert_eq!(g, 2);
    let v = l.begin(0);
    assert_eq!(v.generation(), 2);
    assert_eq!(v.live(), 0b111);
    for b in 0..4096 {
        assert_eq!(v.entry(b), entries[b as usize]);
    }
    // Out-of-range buckets are masked, never a panic.
    assert_eq!(v.entry(4096 + 5), entries[5]);

    l.add(Counter::Rx, 10);
    l.add(Counter::Rx, 5);
    l.add(Counter::NotMine, 3);
    r.lcore(1).unwrap().add(Counter::Rx, 1);
    r.set_link(true, 10000);
    r.set_pid(4242);
    assert_eq!((r.tsc_hz(), w.dataplane().tsc_hz), (0, 0), "not reported yet");
    l.set_tsc_hz(2_400_000_000);
    l.add(Counter::BusyCycles, 7_000);
    l.add(Counter::BusyPolls, 2);
    l.stamp(123);
    r.flows()[7].fetch_add(2, std::sync::atomic::Ordering::Relaxed);
    let s = w.dataplane();
    assert_eq!(s.total(Counter::Rx), 16);
    assert_eq!(s.total(Counter::NotMine), 3);
    assert!(s.link_up);
    assert_eq!(s.link_speed_mbps, 10000);
    assert_eq!(s.pid, 4242);
    assert_eq!((s.tsc_hz, r.tsc_hz()), (2_400_000_000, 2_400_000_000));
    assert_eq!((s.total(Counter::BusyCycles), s.total(Counter::BusyPolls)), (7_000, 2));
    assert_eq!(s.lcores[0].counters[21], 7_000, "busy_cycles is slot 21");
    assert_eq!(s.liveness_ns, 123);
    assert_eq!(s.flows_per_bucket[7], 2);
    assert!(s.lcores[0].online);
    assert_eq!(s.lcores[0].acked_generation, 2);
    assert!(!s.lcores[1].online, "lcore 1 never called begin");
}

#[test]
fn the_lease_fences_every_view_once_it_has_passed() {
    let (_d, path) = tmp();
    let w = TableWriter::create(&path, &params(256, 2)).unwrap();
    let r = TableReader::open(&path).unwrap();
    let mut l = r.lcore(0).unwrap();
    assert_eq!(w.lease(), 0);
    assert!(l.begin(1).fenced(), "a new table has no lease: fenced");
    w.set_lease(1_000);
    assert_eq!(r.lease_until_ns(), 1_000);
    assert!(!l.begin(999).fenced());
    assert!(l.begin(1_000).fenced(), "the deadline itself is past");
    assert!(l.begin(u64::MAX).fenced());
    // A second mapping (another lcore) sees the same lease.
    let mut l1 = r.lcore(1).unwrap();
    w.set_lease(5_000);
    assert!(!l1.begin(4_999).fenced());
    assert!(!l.begin(4_999).fenced());
    w.set_lease(0);
    assert!(l1.begin(0).fenced());
    assert_eq!(r.writer_pid(), std::process::id());
}

#[test]
fn writer_never_reuses_a_slot_an_online_reader_holds() {
    let (_d, path) = tmp();
    let mut w = TableWriter::create(&path, &params(256, 1)).unwrap();
    let r = TableReader::open(&path).unwrap();
    let mut l = r.lcore(0).unwrap();
    assert_eq!(l.begin(0).generation(), 1);
    let e = vec![BucketEntry::owned(1); 256];
    // Generation 2 goes to the slot generation 0 would have used: free.
    assert_eq!(w.publish(&e, 1, Duration::ZERO).unwrap(), 2);
    // Generation 3 reuses generation 1's slot, which the lcore still runs on.
    match w.publish(&e, 1, Duration::from_millis(20)) {
        Err(TableError::ReaderStuck { lcore: 0, acked: 1, needed: 2 }) => {}
        other => panic!("expected ReaderStuck, got {other:?}"),
    }
    assert_eq!(w.generation(), 2, "a refused publish publishes nothing");
    assert_eq!(l.begin(0).generation(), 2);
    assert_eq!(w.publish(&e, 1, Duration::ZERO).unwrap(), 3);
    // An offline lcore does not hold anything back.
    l.go_offline();
    for _ in 0..5 {
        w.publish(&e, 1, Duration::ZERO).unwrap();
    }
    assert_eq!(l.begin(0).generation(), 8);
    // After the data plane died holding a generation, farmd resets the readers.
    let _ = w.publish(&e, 1, Duration::ZERO);
    assert!(w.publish(&e, 1, Duration::ZERO).is_err());
    w.reset_readers();
    assert!(w.publish(&e, 1, Duration::ZERO).is_ok());
}

#[test]
fn publish_rejects_wrong_length_and_params_are_validated() {
    let (_d, path) = tmp();
    let mut w = TableWriter::create(&path, &params(256, 1)).unwrap();
    assert!(matches!(
        w.publish(&[BucketEntry::UNOWNED; 3], 0, Duration::ZERO),
        Err(TableError::WrongLength { got: 3, expected: 256 })
    ));
    for bad in [params(1000, 1), params(128, 1), params(1 << 17, 1), params(256, 0), params(256, 33)] {
        let e = TableWriter::create(&path, &bad).unwrap_err();
        assert!(matches!(e, TableError::BadParams(_)), "{bad:?}: {e}");
    }
    let mut p = params(256, 1);
    p.node_id = 64;
    assert!(TableWriter::create(&path, &p).is_err());
}

fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn reader_rejects_bad_files_with_clear_errors() {
    let (_d, path) = tmp();
    let _w = TableWriter::create(&path, &params(1024, 1)).unwrap();
    let good = std::fs::read(&path).unwrap();
    let reset = || std::fs::write(&path, &good).unwrap();

    // Missing file.
    let missing = path.with_extension("nope");
    let e = TableReader::open(&missing).unwrap_err();
    assert!(e.to_string().contains("farmd"), "{e}");

    // Wrong magic.
    patch(&path, 0, b"NOTFARM!");
    let e = TableReader::open(&path).unwrap_err();
    assert!(matches!(e, TableError::BadMagic { .. }), "{e}");
    assert!(e.to_string().contains("not a farm table"), "{e}");
    reset();

    // Other ABI version.
    patch(&path, 8, &7u32.to_le_bytes());
    let e = TableReader::open(&path).unwrap_err();
    assert!(matches!(e, TableError::AbiVersion { found: 7, .. }), "{e}");
    assert!(e.to_string().contains("ABI version 7"), "{e}");
    reset();

    // Truncated file.
    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    let e = TableReader::open(&path).unwrap_err();
    assert!(matches!(e, TableError::Truncated { .. }), "{e}");
    std::fs::write(&path, &good[..100]).unwrap();
    assert!(matches!(TableReader::open(&path).unwrap_err(), TableError::Truncated { .. }));
    std::fs::write(&path, b"FARM").unwrap();
    assert!(TableReader::open(&path).is_err());
    std::fs::write(&path, b"").unwrap();
    assert!(TableReader::open(&path).is_err());
    reset();

    // Header says another size than the file's layout.
    patch(&path, 24, &2048u32.to_le_bytes());
    let e = TableReader::open(&path).unwrap_err();
    assert!(matches!(e, TableError::Truncated { .. }), "{e}");
    reset();
    patch(&path, 24, &1000u32.to_le_bytes());
    let e = TableReader::open(&path).unwrap_err();
    assert!(matches!(e, TableError::BadHeader { .. }), "{e}");
    reset();
    patch(&path, 56, &8u64.to_le_bytes());
    assert!(matches!(TableReader::open(&path).unwrap_err(), TableError::BadHeader { .. }));
    reset();
    assert!(TableReader::open(&path).is_ok());
    let r = TableReader::open(&path).unwrap();
    assert!(matches!(r.lcore(1), Err(TableError::LcoreOutOfRange { idx: 1, n: 1 })));
}

#[test]
fn recreating_replaces_the_file_atomically() {
    let (_d, path) = tmp();
    let _w1 = TableWriter::create(&path, &params(256, 1)).unwrap();
    let r1 = TableReader::open(&path).unwrap();
    let _w2 = TableWriter::create(&path, &params(512, 1)).unwrap();
    // The old reader keeps a coherent (old) mapping; a new reader sees the new table.
    assert_eq!(r1.params().n_buckets, 256);
    assert_eq!(TableReader::open(&path).unwrap().params().n_buckets, 512);
}

/// The writer publishes thousands of tables while readers (each with its own mapping, as a
/// separate process would have) check that every slot they read is internally consistent and
/// that generations never go backwards.
#[test]
fn stress_readers_never_see_a_torn_slot() {
    const GENERATIONS: u64 = 4000;
    const N: u32 = 4096;
    let (_d, path) = tmp();
    let mut w = TableWriter::create(&path, &params(N, 3)).unwrap();
    let pattern = |g: u64, b: u32| BucketEntry {
        owner: ((g + u64::from(b)) % 61) as u8,
        prev_owner: ((g * 7 + u64::from(b)) % 59) as u8,
    };
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..3usize)
            .map(|i| {
                let path = path.clone();
                let done = &done;
                s.spawn(move || {
                    let r = TableReader::open(&path).unwrap();
                    let mut l = r.lcore(i).unwrap();
                    let (mut last, mut checked, mut bursts) = (0u64, 0u64, 0u64);
                    while !done.load(std::sync::atomic::Ordering::Relaxed) {
                        let v = l.begin(0);
                        let g = v.generation();
                        assert!(g >= last, "generation went backwards: {last} -> {g}");
                        last = g;
                        if g >= 2 {
                            assert_eq!(v.live(), g, "live bitmap of generation {g}");
                            // Read the whole slot; a writer rewriting it would show another pattern.
                            for b in (0..N).step_by(1 + i) {
                                assert_eq!(v.entry(b), pattern(g, b), "torn slot: generation {g} bucket {b}");
                            }
                            checked += 1;
                        }
                        bursts += 1;
                        // Some lcores go idle now and then, as with idle backoff.
                        if i == 2 && bursts % 50 == 0 {
                            l.go_offline();
                            std::thread::yield_now();
                        }
                    }
                    (checked, last)
                })
            })
            .collect();
        let mut entries = vec![BucketEntry::UNOWNED; N as usize];
        for g in 2..=GENERATIONS {
            for (b, e) in entries.iter_mut().enumerate() {
                *e = pattern(g, b as u32);
            }
            assert_eq!(w.publish(&entries, g, Duration::from_secs(10)).unwrap(), g);
        }
        std::thread::sleep(Duration::from_millis(20));
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        for r in readers {
            let (checked, last) = r.join().unwrap();
            assert!(checked > 10, "reader checked only {checked} slots");
            assert_eq!(last, GENERATIONS);
        }
    });
}
