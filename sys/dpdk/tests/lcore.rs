//! Worker lcores, thread registration and the TSC, on the shared test EAL
//! (lcores 0 = main, 1 = worker).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use dpdk::test_support::{eal, pool, started_port, unique};
use dpdk::{register_current_thread, tsc, tsc_hz, LaunchError, LcoreId, MbufBurst, QueueId};

/// Tests in this binary run in parallel but share worker lcore 1.
static WORKER: Mutex<()> = Mutex::new(());

fn worker() -> MutexGuard<'static, ()> {
    WORKER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn launch_runs_closure_on_worker_lcore() {
    let _lcore1 = worker();
    let e = eal();
    let workers = e.worker_lcores();
    assert_eq!(workers, [LcoreId(1)]);
    assert_eq!(e.lcore_count(), 2);
    let h = e.launch(LcoreId(1), LcoreId::current).unwrap();
    assert_eq!(h.lcore(), LcoreId(1));
    assert_eq!(
        h.join().unwrap(),
        Some(LcoreId(1)),
        "closure saw its lcore id"
    );
    // The lcore is free again.
    assert_eq!(e.launch(LcoreId(1), || 7).unwrap().join().unwrap(), 7);
}

#[test]
fn worker_polls_a_queue_it_was_given() {
    let _lcore1 = worker();
    let e = eal();
    let p = pool(511);
    let port = started_port(&unique("net_ring"), 1, 1, &p).unwrap();
    let mut tx = port.tx_queue(QueueId(0)).unwrap();
    let mut rx = port.rx_queue(QueueId(0)).unwrap();
    let mut burst: MbufBurst = MbufBurst::new();
    for i in 0..10u8 {
        let mut m = p.alloc().unwrap();
        m.extend_from_slice(&[i; 60]).unwrap();
        burst.push(m).unwrap();
    }
    assert_eq!(tx.tx_burst(&mut burst), 10);
    let h = e
        .launch(LcoreId(1), move || {
            let mut got: MbufBurst = MbufBurst::new();
            rx.rx_burst(&mut got);
            got.iter().map(|m| m.data()[0]).collect::<Vec<u8>>()
        })
        .unwrap();
    assert_eq!(h.join().unwrap(), (0..10).collect::<Vec<u8>>());
    assert_eq!(p.in_use(), 0);
}

#[test]
fn launch_errors_are_typed() {
    let e = eal();
    assert!(matches!(
        e.launch(e.main_lcore(), || ()),
        Err(LaunchError::NotAWorker(_))
    ));
    assert!(matches!(
        e.launch(LcoreId(5), || ()),
        Err(LaunchError::NotAWorker(_))
    ));
    assert!(matches!(
        e.launch(LcoreId(100_000), || ()),
        Err(LaunchError::NotAWorker(_))
    ));
}

#[test]
fn busy_lcore_and_panicking_closure() {
    let _lcore1 = worker();
    let e = eal();
    let go = Arc::new(AtomicBool::new(false));
    let released = Arc::clone(&go);
    let h = e
        .launch(LcoreId(1), move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !released.load(Ordering::Acquire) {
                assert!(Instant::now() < deadline, "never released");
                std::thread::sleep(Duration::from_millis(1));
            }
            "done"
        })
        .unwrap();
    assert!(matches!(
        e.launch(LcoreId(1), || ()),
        Err(LaunchError::Busy(_))
    ));
    assert!(!h.is_finished());
    go.store(true, Ordering::Release);
    assert_eq!(h.join().unwrap(), "done");

    let h = e
        .launch(LcoreId(1), || -> u32 { panic!("boom in worker") })
        .unwrap();
    let err = h.join().unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"boom in worker"));
}

#[test]
fn registered_std_thread_gets_an_lcore() {
    let e = eal();
    std::thread::spawn(move || {
        assert_eq!(LcoreId::current(), None);
        let reg = register_current_thread(e).unwrap();
        let id = reg.lcore();
        assert_eq!(LcoreId::current(), Some(id));
        assert!(id.0 >= 2, "not one of the EAL lcores: {id}");
        // A registered thread allocates through its own mempool cache.
        let p = pool(255);
        let m = p.alloc().unwrap();
        drop(m);
        assert_eq!(p.in_use(), 0);
        drop(reg);
        assert_eq!(LcoreId::current(), None);
    })
    .join()
    .unwrap();
}

#[test]
fn tsc_runs_at_measured_rate() {
    let hz = tsc_hz();
    assert!(hz == 0 || eal().tsc_hz() == hz);
    let hz = eal().tsc_hz();
    assert!(hz > 100_000_000, "tsc_hz {hz}");
    let t0 = tsc();
    std::thread::sleep(Duration::from_millis(20));
    let ticks = tsc() - t0;
    let ms = ticks as f64 * 1000.0 / hz as f64;
    assert!(
        (15.0..2000.0).contains(&ms),
        "20 ms sleep measured as {ms} ms"
    );
}
