//! Rx interrupts ([`RxInterrupts`]): a `net_tap` queue wakes a sleeping thread when the kernel
//! sends a frame on the TAP (here through a `net_af_packet` port on the same interface); a PMD
//! without rx interrupts (`net_null`) refuses the registration, and the wait is then a sleep.

use std::time::{Duration, Instant};

use dpdk::test_support::{eal, pool, started_port, unique};
use dpdk::{MbufBurst, Port, PortConfig, QueueId, RxInterrupts};

const Q0: QueueId = QueueId(0);

fn intr_port(devargs: &str, p: &dpdk::Mempool) -> Port {
    let mut port = Port::attach(eal(), devargs).unwrap();
    let config = PortConfig { rx_desc: 256, tx_desc: 256, rx_intr: true, ..PortConfig::default() };
    port.configure(&config, p).unwrap();
    port.start().unwrap();
    port
}

#[test]
fn a_tap_frame_ends_the_wait_and_a_port_without_interrupts_is_refused() {
    let p = pool(2047);
    let ifname = format!("fi{}", std::process::id() % 1_000_000);
    let tap = intr_port(&format!("{},iface={ifname}", unique("net_tap")), &p);
    // No IPv6 chatter from the kernel on the TAP: the only frames are the test's.
    let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"), "1");
    let afp = started_port(&format!("{},iface={ifname}", unique("net_af_packet")), 1, 1, &p).unwrap();
    let mut tap_rx = tap.rx_queue(Q0).unwrap();
    let mut afp_tx = afp.tx_queue(Q0).unwrap();

    let null = intr_port(&unique("net_null"), &p);
    let null_rx = null.rx_queue(Q0).unwrap();
    let mut intr = RxInterrupts::new();
    assert!(intr.add(&null_rx).is_err(), "net_null has no rx interrupts");
    assert!(intr.is_empty());
    let t = Instant::now();
    assert_eq!(intr.wait(Duration::from_millis(20)), 0);
    assert!(t.elapsed() >= Duration::from_millis(20), "without queues the wait is a sleep");

    intr.add(&tap_rx).expect("net_tap has rx interrupts");
    assert_eq!(intr.len(), 1);
    // Drain what the kernel may have sent when the interface came up.
    let mut burst: MbufBurst = MbufBurst::new();
    while tap_rx.rx_burst(&mut burst) > 0 {
        burst.clear();
    }
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        let mut b: MbufBurst = MbufBurst::new();
        let mut m = p.alloc().unwrap();
        let mut f = vec![0xff; 6];
        f.extend([0x02, 0, 0, 0, 0, 0x09, 0x88, 0xb5]);
        f.extend([0x5a; 50]);
        m.extend_from_slice(&f).unwrap();
        b.push(m).unwrap();
        while !b.is_empty() {
            afp_tx.tx_burst(&mut b);
        }
        (afp_tx, p)
    });
    // The frame ends a 5 s wait long before its end.
    let t = Instant::now();
    let mut got = 0;
    while got == 0 && t.elapsed() < Duration::from_secs(5) {
        intr.wait(Duration::from_secs(5));
        got = tap_rx.rx_burst(&mut burst);
    }
    let waited = t.elapsed();
    assert!(got > 0, "the frame arrived");
    assert!(waited >= Duration::from_millis(90), "woke before the frame was sent: {waited:?}");
    assert!(waited < Duration::from_secs(2), "the frame did not end the wait: {waited:?}");
    burst.clear();
    let (afp_tx, _p) = sender.join().unwrap();
    drop((intr, null_rx, null, tap_rx, afp_tx, afp, tap));
}
