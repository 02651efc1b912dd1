use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};

use farm_table::{
    Affinity, BucketEntry, HashKey, TableParams, TableReader, TableWriter, DEFAULT_BUCKETS,
};
use farm_wire::gen::FrameBuilder;
use farm_wire::{summarize, EthernetAddress, TcpFlags};

use super::*;
use crate::config::{PortRange, Protocol, Rule, Vip};
use crate::flows::NoFlowTracking;
use crate::port::{LoopbackPort, Port, VecFrame};
use crate::table::StaticTable;

const NODE: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const OTHER: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
const CLIENT: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0x64]);

fn vip() -> IpAddr {
    "198.18.0.10".parse().unwrap()
}

fn cfg() -> PipelineConfig {
    let rules = vec![Rule::new(
        Protocol::Tcp,
        PortRange::single(80),
        Affinity::OnAddr,
    )];
    PipelineConfig::new(
        NODE,
        vec![Vip::new(vip(), rules)],
        DEFAULT_BUCKETS,
        HashKey::from_seed(7),
    )
    .unwrap()
}

fn client() -> FrameBuilder {
    FrameBuilder::new(CLIENT, crate::virtual_mac(vip()))
}

#[test]
fn backoff_progression() {
    let cfg = BackoffConfig {
        busy_poll: false,
        spin_polls: 3,
        min_sleep: Duration::from_micros(10),
        max_sleep: Duration::from_micros(80),
    };
    let mut b = Backoff::new(cfg);
    let us = Duration::from_micros;
    let got: Vec<_> = (0..8).map(|_| b.on_poll(0)).collect();
    assert_eq!(
        got,
        vec![
            None,
            None,
            Some(us(10)),
            Some(us(20)),
            Some(us(40)),
            Some(us(80)),
            Some(us(80)),
            Some(us(80))
        ]
    );
    assert_eq!(b.on_poll(1), None, "work resets");
    assert_eq!(
        (b.on_poll(0), b.on_poll(0), b.on_poll(0)),
        (None, None, Some(us(10)))
    );
    let mut busy = Backoff::new(BackoffConfig {
        busy_poll: true,
        ..cfg
    });
    assert!((0..1000).all(|_| busy.on_poll(0).is_none()));
    let d = BackoffConfig::default();
    assert!(!d.busy_poll && d.min_sleep <= d.max_sleep && d.max_sleep <= Duration::from_millis(1));
}

/// Uplink: a SYN to the VIP, a flooded unicast, an ARP request for the VIP.
/// TAP: a normal frame and a gratuitous ARP for the VIP.
fn load(up: &mut LoopbackPort, tap: &mut LoopbackPort) {
    let c: IpAddr = "198.18.0.100".parse().unwrap();
    up.inject(client().tcp(c, vip(), 40000, 80, TcpFlags::SYN).unwrap());
    up.inject(
        client()
            .to_mac(OTHER)
            .tcp(c, "198.18.0.2".parse().unwrap(), 40000, 22, TcpFlags::SYN)
            .unwrap(),
    );
    up.inject(
        client()
            .to_mac(EthernetAddress::BROADCAST)
            .arp_request(
                Ipv4Addr::new(198, 18, 0, 100),
                Ipv4Addr::new(198, 18, 0, 10),
            )
            .unwrap(),
    );
    let node = FrameBuilder::new(NODE, CLIENT);
    tap.inject(
        node.udp("198.18.0.1".parse().unwrap(), c, 5000, 53, b"q")
            .unwrap(),
    );
    tap.inject(
        node.to_mac(EthernetAddress::BROADCAST)
            .arp_request(Ipv4Addr::new(198, 18, 0, 10), Ipv4Addr::new(198, 18, 0, 10))
            .unwrap(),
    );
}

#[test]
fn run_once_moves_and_counts() {
    let mut p = Pipeline::new(cfg(), 32);
    let (mut up, mut tap) = (LoopbackPort::new(), LoopbackPort::new());
    load(&mut up, &mut tap);
    let table = StaticTable::all_owned_by(0, 0, DEFAULT_BUCKETS);
    let mut tally = Tally::new();
    assert_eq!(
        p.run_once(&mut up, &mut tap, &table, &mut NoFlowTracking, &mut tally),
        5
    );

    let to_kernel = tap.take_sent();
    assert_eq!(to_kernel.len(), 1);
    assert_eq!(
        summarize(&to_kernel[0]).unwrap().dst_mac,
        NODE,
        "destination MAC rewritten to the TAP's"
    );
    let to_wire = up.take_sent();
    assert_eq!(to_wire.len(), 2, "the ARP reply and the kernel's UDP frame");
    let arp = to_wire
        .iter()
        .map(|f| summarize(f).unwrap())
        .find(|s| s.dst_mac == CLIENT && s.src_mac == NODE);
    assert!(
        matches!(arp.unwrap().l3, farm_wire::L3::Arp(a) if a.sender_mac == crate::virtual_mac(vip()))
    );

    let want = [
        (Counter::Rx, 3),
        (Counter::ToTap, 1),
        (Counter::DropFlooded, 1),
        (Counter::ArpReply, 1),
        (Counter::TapRx, 2),
        (Counter::TapToWire, 1),
        (Counter::DropVipNeighFromTap, 1),
        (Counter::DropTxFull, 0),
        (Counter::DropTapFull, 0),
    ];
    for (c, n) in want {
        assert_eq!(tally.get(c), n, "{c:?}");
    }
    assert_eq!(
        p.run_once(&mut up, &mut tap, &table, &mut NoFlowTracking, &mut tally),
        0
    );
}

#[test]
fn full_queues_and_bursts() {
    let mut p = Pipeline::new(cfg(), 2);
    let (mut up, mut tap) = (LoopbackPort::new(), LoopbackPort::new());
    load(&mut up, &mut tap);
    tap.tx_room = 0;
    up.tx_room = 0;
    let table = StaticTable::all_owned_by(0, 0, DEFAULT_BUCKETS);
    let mut tally = Tally::new();
    let mut n = 0;
    for _ in 0..3 {
        n += p.run_once(&mut up, &mut tap, &table, &mut NoFlowTracking, &mut tally);
    }
    assert_eq!(n, 5, "bursts of 2 drain the queues in 3 polls");
    assert_eq!(tally.get(Counter::DropTapFull), 1);
    assert_eq!(tally.get(Counter::DropTxFull), 2);
    assert!(tap.sent.is_empty() && up.sent.is_empty());
}

/// A loopback port that keeps what the pipeline frees, and counts the calls.
#[derive(Default)]
struct FreeingPort {
    inner: LoopbackPort,
    freed: Vec<VecFrame>,
    free_calls: u32,
}

impl Port for FreeingPort {
    type Buf = VecFrame;
    fn rx_burst(&mut self, out: &mut Vec<VecFrame>, max: usize) -> usize {
        self.inner.rx_burst(out, max)
    }
    fn tx_burst(&mut self, frames: &mut Vec<VecFrame>) -> usize {
        self.inner.tx_burst(frames)
    }
    fn free(&mut self, frames: &mut Vec<VecFrame>) {
        self.free_calls += 1;
        self.freed.append(frames);
    }
}

#[test]
fn drops_and_refused_frames_are_freed_in_one_call_per_poll() {
    let mut p = Pipeline::new(cfg(), 32);
    let (mut up, mut tap) = (FreeingPort::default(), LoopbackPort::new());
    up.inner.tx_room = 0;
    load(&mut up.inner, &mut tap);
    let table = StaticTable::all_owned_by(0, 0, DEFAULT_BUCKETS);
    let mut tally = Tally::new();
    assert_eq!(
        p.run_once(&mut up, &mut tap, &table, &mut NoFlowTracking, &mut tally),
        5
    );
    // Dropped: the flooded frame, the kernel's gratuitous ARP; refused by
    // the uplink: the ARP reply and the kernel's UDP frame.
    assert_eq!(up.free_calls, 1);
    assert_eq!(up.freed.len(), 4);
    assert_eq!(tally.get(Counter::DropTxFull), 2);
    assert_eq!(tap.take_sent().len(), 1);
    // A poll that drops nothing frees nothing.
    p.run_once(&mut up, &mut tap, &table, &mut NoFlowTracking, &mut tally);
    assert_eq!(up.free_calls, 1);
}

/// A fake lcore over a static table.
struct FakeLcore<'a> {
    table: &'a StaticTable,
    counters: [Cell<u64>; COUNTER_SLOTS],
    begins: u32,
    offline: u32,
    stamps: Cell<u32>,
    hz: Cell<u64>,
}

impl CounterSink for FakeLcore<'_> {
    fn add(&self, c: Counter, n: u64) {
        let cell = &self.counters[c as usize];
        cell.set(cell.get() + n);
    }
}

impl<'a> Lcore for FakeLcore<'a> {
    type View = &'a StaticTable;
    fn begin(&mut self, _: u64) -> &'a StaticTable {
        self.begins += 1;
        self.table
    }
    fn go_offline(&mut self) {
        self.offline += 1;
    }
    fn stamp(&self, _: u64) {
        self.stamps.set(self.stamps.get() + 1);
    }
    fn set_cycles_hz(&self, hz: u64) {
        self.hz.set(hz);
    }
}

#[test]
fn poll_loop_flushes_sleeps_and_stops() {
    let table = StaticTable::all_owned_by(0, 0, DEFAULT_BUCKETS);
    let mut lcore = FakeLcore {
        table: &table,
        counters: Default::default(),
        begins: 0,
        offline: 0,
        stamps: Cell::new(0),
        hz: Cell::new(0),
    };
    let mut p = Pipeline::new(cfg(), 32);
    let (mut up, mut tap) = (LoopbackPort::new(), LoopbackPort::new());
    load(&mut up, &mut tap);
    let cfg = BackoffConfig {
        spin_polls: 2,
        ..BackoffConfig::default()
    };
    let mut backoff = Backoff::new(cfg);
    let stop = AtomicBool::new(false);
    let mut slept = Vec::new();
    let total = poll_loop(
        &mut p,
        &mut up,
        &mut tap,
        &mut lcore,
        &mut NoFlowTracking,
        &mut backoff,
        &stop,
        Clocks {
            now_ns: || 42,
            cycles: || 0,
            cycles_hz: 0,
            sleep: |d| {
                slept.push(d);
                if slept.len() == 3 {
                    stop.store(true, Ordering::Relaxed);
                }
            },
        },
    );
    assert_eq!(total, 5);
    // Poll 1 has work; poll 2 spins; polls 3, 4, 5 sleep (10, 20, 40 us).
    assert_eq!(
        slept,
        vec![
            Duration::from_micros(10),
            Duration::from_micros(20),
            Duration::from_micros(40)
        ]
    );
    assert_eq!(lcore.begins, 5);
    assert_eq!(
        lcore.offline,
        3 + 1,
        "offline before each sleep and on exit"
    );
    assert!(lcore.stamps.get() >= 3);
    assert_eq!(lcore.counters[Counter::Rx as usize].get(), 3);
    assert_eq!(lcore.counters[Counter::ArpReply as usize].get(), 1);
    assert_eq!(lcore.counters[Counter::TapToWire as usize].get(), 1);
}

#[test]
fn poll_loop_against_the_real_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("farm-test");
    let params = TableParams {
        n_buckets: DEFAULT_BUCKETS,
        node_id: 0,
        n_lcores: 1,
        hash_key: HashKey::from_seed(7),
    };
    let mut writer = TableWriter::create(&path, &params).unwrap();
    let reader = TableReader::open(&path).unwrap();
    let c = cfg();
    c.check_table(&reader.params()).unwrap();

    let mut lcore = reader.lcore(0).unwrap();
    let mut p = Pipeline::new(c, 32);
    let (mut up, mut tap) = (LoopbackPort::new(), LoopbackPort::new());
    let stop = AtomicBool::new(false);
    let mut backoff = Backoff::new(BackoffConfig {
        spin_polls: 1,
        ..BackoffConfig::default()
    });
    let syn = client()
        .tcp(
            "198.18.0.100".parse().unwrap(),
            vip(),
            40000,
            80,
            TcpFlags::SYN,
        )
        .unwrap();

    // Generation 1: every bucket unowned -> NoOwner.
    up.inject(syn.clone());
    poll_loop(
        &mut p,
        &mut up,
        &mut tap,
        &mut lcore,
        &mut NoFlowTracking,
        &mut backoff,
        &stop,
        Clocks {
            now_ns: || 1,
            cycles: || 0,
            cycles_hz: 0,
            sleep: |_| stop.store(true, Ordering::Relaxed),
        },
    );
    assert_eq!(writer.dataplane().total(Counter::NoOwner), 1);

    // Publish every bucket to node 0 (the lcore is offline, so the writer does not wait).
    writer
        .publish(
            &vec![BucketEntry::owned(0); DEFAULT_BUCKETS as usize],
            1,
            Duration::from_secs(1),
        )
        .unwrap();
    // Owned, but farmd never set a lease: fenced, the SYN is refused.
    let run = |p: &mut Pipeline<VecFrame>,
               up: &mut LoopbackPort,
               tap: &mut LoopbackPort,
               lcore: &mut farm_table::LcoreHandle<'_>,
               backoff: &mut Backoff,
               now: u64| {
        stop.store(false, Ordering::Relaxed);
        up.inject(syn.clone());
        poll_loop(
            p,
            up,
            tap,
            lcore,
            &mut NoFlowTracking,
            backoff,
            &stop,
            Clocks {
                now_ns: || now,
                cycles: || 0,
                cycles_hz: 0,
                sleep: |_| stop.store(true, Ordering::Relaxed),
            },
        );
    };
    run(&mut p, &mut up, &mut tap, &mut lcore, &mut backoff, 2);
    assert_eq!(writer.dataplane().total(Counter::DropFenced), 1);
    assert_eq!(tap.take_sent().len(), 0);

    // Under a lease until t = 100: accepted at t = 2.
    writer.set_lease(100);
    run(&mut p, &mut up, &mut tap, &mut lcore, &mut backoff, 2);
    let st = writer.dataplane();
    assert_eq!((st.total(Counter::Rx), st.total(Counter::ToTap)), (3, 1));
    assert_eq!(tap.take_sent().len(), 1);
    assert!(!st.lcores[0].online, "offline after the loop");

    // The lease has passed at t = 100: fenced again, nothing reaches the TAP.
    run(&mut p, &mut up, &mut tap, &mut lcore, &mut backoff, 100);
    assert_eq!(writer.dataplane().total(Counter::DropFenced), 2);
    assert_eq!(tap.take_sent().len(), 0);
}

#[test]
fn busy_cycles_count_only_polls_with_frames() {
    let table = StaticTable::all_owned_by(0, 0, DEFAULT_BUCKETS);
    let mut lcore = FakeLcore {
        table: &table,
        counters: Default::default(),
        begins: 0,
        offline: 0,
        stamps: Cell::new(0),
        hz: Cell::new(0),
    };
    // Bursts of 2: the 5 frames of `load` (3 uplink, 2 TAP) take polls 1
    // (2 + 2 frames) and 2 (1 + 0), then polls 3 to 5 are empty and sleep;
    // the loop stops in the third sleep.
    let mut p = Pipeline::new(cfg(), 2);
    let (mut up, mut tap) = (LoopbackPort::new(), LoopbackPort::new());
    load(&mut up, &mut tap);
    let mut backoff = Backoff::new(BackoffConfig {
        spin_polls: 1,
        ..BackoffConfig::default()
    });
    let stop = AtomicBool::new(false);
    // The fake cycle counter advances 1000 per read: a busy poll reads it
    // before its rx bursts and after its frees, so it measures 1000 cycles.
    let reads = Cell::new(0u64);
    let mut sleeps = 0;
    let total = poll_loop(
        &mut p,
        &mut up,
        &mut tap,
        &mut lcore,
        &mut NoFlowTracking,
        &mut backoff,
        &stop,
        Clocks {
            now_ns: || 7,
            cycles: || {
                reads.set(reads.get() + 1);
                reads.get() * 1000
            },
            cycles_hz: 2_000_000_000,
            sleep: |_| {
                sleeps += 1;
                if sleeps == 3 {
                    stop.store(true, Ordering::Relaxed);
                }
            },
        },
    );
    assert_eq!(total, 5);
    assert_eq!(lcore.begins, 5);
    let got = |c: Counter| lcore.counters[c as usize].get();
    assert_eq!(got(Counter::BusyPolls), 2, "polls 1 and 2 received frames");
    assert_eq!(got(Counter::BusyCycles), 2 * 1000, "one tick between the two reads of each busy poll");
    // Two reads per busy poll, one per empty poll (before its rx burst), nothing per frame.
    assert_eq!(reads.get(), 2 * 2 + 3);
    assert_eq!(lcore.hz.get(), 2_000_000_000, "the frequency is published");
}
