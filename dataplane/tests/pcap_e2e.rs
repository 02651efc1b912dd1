//! The real `farm-dataplane` binary on virtual devices: the uplink is a `net_pcap` port fed from
//! a pcap of mixed traffic, the TAP is replaced by a second `net_pcap` port, and the table is a
//! fixed one this test publishes. Every input frame's fate (to the kernel, answered, dropped
//! with which counter) is checked, and the counters in shared memory must match.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use farm_table::{bucket_of, BucketEntry, Counter, TableParams, TableWriter, NO_NODE};
use farm_wire::gen::FrameBuilder;
use farm_wire::{summarize, ArpOperation, EthernetAddress, TcpFlags, VlanTag, VlanTags, L3};
use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};

const NODE_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
const CLIENT_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0xc1]);
const OTHER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x99]);
const BUCKETS: u32 = 256;

fn vip() -> IpAddr {
    "198.18.0.100".parse().unwrap()
}
fn vip6() -> IpAddr {
    "2001:db8::100".parse().unwrap()
}
fn vmac4() -> EthernetAddress {
    EthernetAddress([0x5a, 0xfe, 198, 18, 0, 100])
}

fn config(dir: &Path, prefix: &str) -> PathBuf {
    let text = format!(
        r#"
[module]
name = "e2e"
cluster_id = 7
hash_seed = "0xfa7"
buckets = {BUCKETS}
secret_file = "{dir}/secret"
table_file = "{dir}/table"
log_dir = "{dir}/log"
run_dir = "{dir}/run"

[[node]]
name = "n1"
addrs = ["198.18.0.1"]
[[node]]
name = "n2"
addrs = ["198.18.0.2"]

[[vip]]
addr = "198.18.0.100"
[[vip.rule]]
proto = "tcp"
ports = "80"
[[vip.rule]]
proto = "udp"
ports = "5000-5100"
affinity = "on_port"
[[vip.rule]]
proto = "icmp"

[[vip]]
addr = "2001:db8::100"
[[vip.rule]]
proto = "tcp"
ports = "80"

[dataplane]
uplink = "net_pcap_up"
node_mac = "02:00:00:00:00:01"
mempool_size = 2047
mbuf_cache = 64
idle_polls_before_sleep = 16
eal_args = ["--no-huge", "--no-shconf", "--no-pci", "-m", "128"]
file_prefix = "{prefix}"
"#,
        dir = dir.display()
    );
    let p = dir.join("farm.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn hash_key(cfg: &Path) -> farm_table::HashKey {
    farm_config::Config::load(cfg).unwrap().hash_key()
}

fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut w = PcapWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.write_packet(&PcapPacket::new(Duration::from_micros(i as u64), f.len() as u32, f)).unwrap();
    }
}

fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let mut r = PcapReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.unwrap().data.into_owned());
    }
    out
}

fn dataplane(cfg: &Path, uplink: &str, local: &str, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_farm-dataplane"))
        .arg("--config")
        .arg(cfg)
        .args(["--node", "n1", "--uplink", uplink, "--local-port", local])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start farm-dataplane")
}

fn wait_output(child: Child, limit: Duration) -> std::process::Output {
    let start = Instant::now();
    let mut child = child;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!("farm-dataplane did not exit in {limit:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The first address of `net` (198.18.<net>.x) whose bucket satisfies `want`.
fn client(key: &farm_table::HashKey, net: u8, port: Option<u16>, want: impl Fn(u32) -> bool) -> Ipv4Addr {
    (1..=254u8)
        .map(|x| Ipv4Addr::new(198, 18, net, x))
        .find(|a| want(bucket_of(key, IpAddr::V4(*a), port, BUCKETS)))
        .expect("a client in the wanted bucket")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// VIP traffic accepted: to the kernel with the destination MAC rewritten to the node's.
    ToTap,
    /// The node's own traffic (its MAC, broadcast): to the kernel unchanged.
    Own,
    Reply,
    Drop(Counter),
}

#[test]
fn every_frames_fate_matches_the_table_and_the_counters() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &format!("farm-e2e-{}", std::process::id()));
    let key = hash_key(&cfg);
    // Node n1 has id 0. Even buckets are ours, odd buckets n2's, and bucket `h` is being
    // handed over from n2 to us.
    let a = client(&key, 1, None, |b| b % 2 == 0);
    let b = client(&key, 1, None, |b| b % 2 == 1);
    let d = client(&key, 2, None, |b| b % 2 == 1);
    let h = bucket_of(&key, IpAddr::V4(d), None, BUCKETS);
    let mut entries: Vec<BucketEntry> =
        (0..BUCKETS).map(|b| BucketEntry::owned(if b % 2 == 0 { 0 } else { 1 })).collect();
    entries[h as usize] = BucketEntry { owner: 0, prev_owner: 1 };
    let params = TableParams { n_buckets: BUCKETS, node_id: 0, n_lcores: 1, hash_key: key };
    let mut table = TableWriter::create(&dir.path().join("table"), &params).unwrap();
    table.publish(&entries, 0b11, Duration::ZERO).unwrap();
    table.set_lease(u64::MAX);

    let c6: Ipv6Addr = (1..=500u16)
        .map(|x| Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, x))
        .find(|c| bucket_of(&key, IpAddr::V6(*c), None, BUCKETS).is_multiple_of(2))
        .unwrap();
    // A UDP source port of client `a` whose (address, port) bucket is ours, and one that is not.
    let port_of = |mine: bool| {
        (1024..u16::MAX)
            .find(|p| bucket_of(&key, IpAddr::V4(a), Some(*p), BUCKETS).is_multiple_of(2) == mine && bucket_of(&key, IpAddr::V4(a), Some(*p), BUCKETS) != h)
            .unwrap()
    };
    let (udp_mine, udp_theirs) = (port_of(true), port_of(false));

    let to_vip = FrameBuilder::new(CLIENT_MAC, vmac4());
    let bcast = FrameBuilder::new(CLIENT_MAC, EthernetAddress([0xff; 6]));
    let v = vip();
    let ip = IpAddr::V4;
    let syn = TcpFlags::SYN;
    let ack = TcpFlags::ACK;
    let vlan = VlanTags::from_slice(&[VlanTag::new(farm_wire::EtherType::Vlan, 0, false, 100)]).unwrap();
    let t6 = match vip6() {
        IpAddr::V6(t) => t,
        _ => unreachable!(),
    };
    let sn = t6.octets();
    let ns_mac = EthernetAddress([0x33, 0x33, 0xff, sn[13], sn[14], sn[15]]);
    let cases: Vec<(&str, Vec<u8>, Fate)> = vec![
        ("ARP for the VIP from our client", bcast.arp_request(a, Ipv4Addr::new(198, 18, 0, 100)).unwrap(), Fate::Reply),
        ("ARP for the VIP from their client", bcast.arp_request(b, Ipv4Addr::new(198, 18, 0, 100)).unwrap(), Fate::Drop(Counter::NeighNotMine)),
        ("SYN from our client", to_vip.tcp(ip(a), v, 40000, 80, syn).unwrap(), Fate::ToTap),
        ("SYN from their client", to_vip.tcp(ip(b), v, 40000, 80, syn).unwrap(), Fate::Drop(Counter::NotMine)),
        ("ACK of our client", to_vip.tcp(ip(a), v, 40000, 80, ack).unwrap(), Fate::ToTap),
        ("SYN with a VLAN tag", to_vip.with_tags(vlan).tcp(ip(a), v, 40001, 80, syn).unwrap(), Fate::ToTap),
        ("UDP on_port, our port", to_vip.udp(ip(a), v, udp_mine, 5000, b"x").unwrap(), Fate::ToTap),
        ("UDP on_port, their port", to_vip.udp(ip(a), v, udp_theirs, 5000, b"x").unwrap(), Fate::Drop(Counter::NotMine)),
        ("UDP to a port with no rule", to_vip.udp(ip(a), v, 1234, 9999, b"x").unwrap(), Fate::Drop(Counter::NoRule)),
        ("TCP to a port with no rule", to_vip.tcp(ip(a), v, 1234, 22, syn).unwrap(), Fate::Drop(Counter::NoRule)),
        ("ping from our client", to_vip.echo_request(ip(a), v, 1, 1).unwrap(), Fate::ToTap),
        ("ping from their client", to_vip.echo_request(ip(b), v, 1, 1).unwrap(), Fate::Drop(Counter::NotMine)),
        ("UDP to the node itself", to_vip.to_mac(NODE_MAC).udp(ip(b), "198.18.0.1".parse().unwrap(), 1, 4790, b"hb").unwrap(), Fate::Own),
        ("ARP for the node's address", bcast.arp_request(b, Ipv4Addr::new(198, 18, 0, 1)).unwrap(), Fate::Own),
        ("unicast for another MAC", to_vip.to_mac(OTHER_MAC).udp(ip(b), "198.18.0.9".parse().unwrap(), 1, 2, b"x").unwrap(), Fate::Drop(Counter::DropFlooded)),
        ("truncated frame", vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0], Fate::Drop(Counter::DropMalformed)),
        ("IPv6 NS for the VIP", FrameBuilder::new(CLIENT_MAC, ns_mac).neighbor_solicit(c6, t6).unwrap(), Fate::Reply),
        ("IPv6 SYN from our client", FrameBuilder::new(CLIENT_MAC, farm_pipeline::virtual_mac(vip6())).tcp(IpAddr::V6(c6), vip6(), 40000, 80, syn).unwrap(), Fate::ToTap),
        ("handover: unknown ACK is left to the previous owner", to_vip.tcp(ip(d), v, 50000, 80, ack).unwrap(), Fate::Drop(Counter::HandoverPassed)),
        ("handover: SYN is ours", to_vip.tcp(ip(d), v, 50001, 80, syn).unwrap(), Fate::ToTap),
        ("handover: ACK of the flow we accepted", to_vip.tcp(ip(d), v, 50001, 80, ack).unwrap(), Fate::ToTap),
    ];

    let input = dir.path().join("in.pcap");
    let empty = dir.path().join("empty.pcap");
    let wire = dir.path().join("wire.pcap");
    let tap = dir.path().join("tap.pcap");
    write_pcap(&input, &cases.iter().map(|c| c.1.clone()).collect::<Vec<_>>());
    write_pcap(&empty, &[]);
    let child = dataplane(
        &cfg,
        &format!("net_pcap_up,rx_pcap={},tx_pcap={}", input.display(), wire.display()),
        &format!("net_pcap_tap,rx_pcap={},tx_pcap={}", empty.display(), tap.display()),
        &["--exit-when-idle", "1s"],
    );
    let out = wait_output(child, Duration::from_secs(60));
    assert!(out.status.success(), "farm-dataplane failed: {}", String::from_utf8_lossy(&out.stderr));

    // The kernel side received exactly the accepted frames, in order, addressed to the node.
    let got_tap = read_pcap(&tap);
    let want_tap: Vec<&(&str, Vec<u8>, Fate)> = cases.iter().filter(|c| matches!(c.2, Fate::ToTap | Fate::Own)).collect();
    assert_eq!(got_tap.len(), want_tap.len(), "frames to the kernel: {:?}", want_tap.iter().map(|c| c.0).collect::<Vec<_>>());
    for (got, (name, sent, fate)) in got_tap.iter().zip(&want_tap) {
        if *fate == Fate::ToTap {
            assert_eq!(&got[..6], &NODE_MAC.0, "{name}: destination MAC rewritten to the node's");
            assert_eq!(&got[6..], &sent[6..], "{name}: rest of the frame unchanged");
        } else {
            assert_eq!(got, sent, "{name}: unchanged");
        }
    }
    // The wire received the two answers, carrying the virtual MACs.
    let got_wire = read_pcap(&wire);
    assert_eq!(got_wire.len(), 2, "ARP reply and neighbour advertisement");
    let arp = summarize(&got_wire[0]).unwrap();
    assert_eq!(arp.dst_mac, CLIENT_MAC);
    assert_eq!(arp.src_mac, NODE_MAC, "never the virtual MAC as a source: switches must not learn it");
    match arp.l3 {
        L3::Arp(s) => {
            assert_eq!(s.op, ArpOperation::Reply);
            assert_eq!(s.sender_mac, vmac4());
            assert_eq!(IpAddr::V4(s.sender_ip), vip());
            assert_eq!(s.target_ip, a);
        }
        other => panic!("expected an ARP reply, got {other:?}"),
    }
    let na = summarize(&got_wire[1]).unwrap();
    assert_eq!(na.dst_mac, CLIENT_MAC);
    assert!(matches!(na.l3, L3::Ip(_)), "neighbour advertisement");

    // Counters in shared memory match the fates.
    let st = table.dataplane();
    let count = |f: Fate| cases.iter().filter(|c| c.2 == f).count() as u64;
    assert_eq!(st.total(Counter::Rx), cases.len() as u64);
    assert_eq!(st.total(Counter::ToTap), count(Fate::ToTap) + count(Fate::Own));
    assert_eq!(st.total(Counter::ArpReply), 1);
    assert_eq!(st.total(Counter::NdReply), 1);
    for c in [Counter::NotMine, Counter::NoRule, Counter::NeighNotMine, Counter::DropFlooded, Counter::DropMalformed, Counter::HandoverPassed] {
        assert_eq!(st.total(c), count(Fate::Drop(c)), "{}", c.name());
    }
    assert_eq!(st.total(Counter::DropTxFull) + st.total(Counter::DropTapFull), 0);
    assert!(st.pid > 0 && st.liveness_ns > 0, "pid and liveness published");
    assert!(!st.lcores[0].online, "the worker went offline when it stopped");
    let _ = NO_NODE;
}

/// A running data plane follows new table generations: each one is acknowledged (the worker
/// runs on it) without any packet arriving, the liveness stamp moves, and SIGTERM stops it
/// cleanly.
#[test]
fn picks_up_and_acknowledges_new_generations() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &format!("farm-e2e-gen-{}", std::process::id()));
    let key = hash_key(&cfg);
    let params = TableParams { n_buckets: BUCKETS, node_id: 0, n_lcores: 1, hash_key: key };
    let mut table = TableWriter::create(&dir.path().join("table"), &params).unwrap();
    table.set_lease(u64::MAX);
    let empty = dir.path().join("empty.pcap");
    write_pcap(&empty, &[]);
    let mut child = dataplane(
        &cfg,
        &format!("net_pcap_up,rx_pcap={},tx_pcap={}", empty.display(), dir.path().join("w.pcap").display()),
        &format!("net_pcap_tap,rx_pcap={},tx_pcap={}", empty.display(), dir.path().join("t.pcap").display()),
        &[],
    );
    let wait_for = |what: &str, table: &TableWriter, ok: &dyn Fn(&farm_table::DataplaneStatus) -> bool| {
        let start = Instant::now();
        while !ok(&table.dataplane()) {
            assert!(start.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
        start.elapsed()
    };
    wait_for("the data plane to attach", &table, &|s| s.pid != 0 && s.liveness_ns != 0);
    let mut latencies = Vec::new();
    for owner in [0u8, 1, 0, 1, 0] {
        let g = table.publish(&vec![BucketEntry::owned(owner); BUCKETS as usize], 0b11, Duration::from_secs(5)).unwrap();
        latencies.push(wait_for("the new generation to be acknowledged", &table, &|s| s.lcores[0].acked_generation == g));
    }
    let stamp = table.dataplane().liveness_ns;
    wait_for("the liveness stamp to move", &table, &|s| s.liveness_ns > stamp);
    eprintln!("generation acknowledged after {latencies:?}");
    nix_kill(&child);
    let status = child.wait().unwrap();
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    assert!(!table.dataplane().lcores[0].online);
}

fn nix_kill(child: &Child) {
    let ok = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(ok.success());
}
