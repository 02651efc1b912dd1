//! The virtual devices the farm uses, attached at runtime and passing real
//! packets: net_memif pair, net_tap <-> net_af_packet over the kernel, and
//! net_virtio_user <-> net_vhost. (net_ring, net_null, net_pcap: ports.rs.)

use std::path::Path;
use std::time::{Duration, Instant};

use dpdk::test_support::{pool, started_port, unique};
use dpdk::{MbufBurst, Mempool, Port, QueueId, RxQueue, TxQueue};

const Q0: QueueId = QueueId(0);
const TIMEOUT: Duration = Duration::from_secs(10);

/// An Ethernet frame with a local-experimental EtherType and a tagged payload.
fn frame(tag: u8, i: u8) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x88, 0xb5];
    f.extend(std::iter::repeat_n(tag, 4));
    f.push(i);
    f.extend((0..60u8).map(|j| j.wrapping_mul(i)));
    f
}

fn is_ours(data: &[u8], tag: u8) -> bool {
    data.len() > 18 && data[12..14] == [0x88, 0xb5] && data[14..18] == [tag; 4]
}

fn wait_link_up(port: &Port) {
    let deadline = Instant::now() + TIMEOUT;
    while !port.link().unwrap().up {
        assert!(
            Instant::now() < deadline,
            "link of {} never came up",
            port.name()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `count` tagged frames (retrying refused ones) and returns them.
fn send(tx: &mut TxQueue, p: &Mempool, tag: u8, count: u8) -> Vec<Vec<u8>> {
    let frames: Vec<Vec<u8>> = (0..count).map(|i| frame(tag, i)).collect();
    let mut burst: MbufBurst = MbufBurst::new();
    for f in &frames {
        let mut m = p.alloc().unwrap();
        m.extend_from_slice(f).unwrap();
        burst.push(m).unwrap();
    }
    let deadline = Instant::now() + TIMEOUT;
    while !burst.is_empty() {
        tx.tx_burst(&mut burst);
        assert!(Instant::now() < deadline, "tx never drained");
    }
    frames
}

/// Receives until `want` frames tagged `tag` arrived (others are dropped).
fn receive(rx: &mut RxQueue, tag: u8, want: usize) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + TIMEOUT;
    let mut got = Vec::new();
    while got.len() < want {
        assert!(
            Instant::now() < deadline,
            "received {} of {want} frames",
            got.len()
        );
        let mut burst: MbufBurst = MbufBurst::new();
        if rx.rx_burst(&mut burst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        got.extend(
            burst
                .iter()
                .filter(|m| is_ours(m.data(), tag))
                .map(|m| m.data().to_vec()),
        );
    }
    got
}

#[test]
fn memif_pair_passes_packets_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("memif.sock");
    let p = pool(2047);
    let server = started_port(
        &format!(
            "{},role=server,id=0,socket={}",
            unique("net_memif"),
            sock.display()
        ),
        1,
        1,
        &p,
    )
    .unwrap();
    let client = started_port(
        &format!(
            "{},role=client,id=0,socket={}",
            unique("net_memif"),
            sock.display()
        ),
        1,
        1,
        &p,
    )
    .unwrap();
    wait_link_up(&server);
    wait_link_up(&client);
    let (mut s_rx, mut s_tx) = (server.rx_queue(Q0).unwrap(), server.tx_queue(Q0).unwrap());
    let (mut c_rx, mut c_tx) = (client.rx_queue(Q0).unwrap(), client.tx_queue(Q0).unwrap());
    let sent = send(&mut c_tx, &p, 0xc1, 32);
    assert_eq!(receive(&mut s_rx, 0xc1, 32), sent);
    // memif server->client: the client's rx posts the free slots the server
    // transmits into, so the client must poll before the server can send.
    let mut none: MbufBurst = MbufBurst::new();
    assert_eq!(c_rx.rx_burst(&mut none), 0);
    let sent = send(&mut s_tx, &p, 0x5e, 32);
    assert_eq!(receive(&mut c_rx, 0x5e, 32), sent);
    assert!(client.stats().unwrap().opackets >= 32);
    assert!(server.stats().unwrap().ipackets >= 32);
    drop((s_rx, s_tx, c_rx, c_tx, server, client));
    assert_eq!(p.in_use(), 0);
}

/// A kernel interface name (<= 15 bytes) unique on the machine.
fn ifname() -> String {
    let n = unique("");
    format!(
        "ft{}{}",
        std::process::id() % 100_000,
        n.trim_start_matches("_t")
    )
}

#[test]
fn tap_and_af_packet_meet_in_the_kernel() {
    let p = pool(2047);
    let ifname = ifname();
    let tap = started_port(&format!("{},iface={ifname}", unique("net_tap")), 1, 1, &p).unwrap();
    assert!(
        Path::new("/sys/class/net").join(&ifname).exists(),
        "kernel interface {ifname} created"
    );
    wait_link_up(&tap);
    let info = tap.info().unwrap();
    assert_eq!(info.driver_name, "net_tap");
    assert!(info.if_index > 0);
    let afp = started_port(
        &format!("{},iface={ifname}", unique("net_af_packet")),
        1,
        1,
        &p,
    )
    .unwrap();
    let (mut tap_rx, mut tap_tx) = (tap.rx_queue(Q0).unwrap(), tap.tx_queue(Q0).unwrap());
    let (mut afp_rx, mut afp_tx) = (afp.rx_queue(Q0).unwrap(), afp.tx_queue(Q0).unwrap());
    // DPDK -> tap fd -> kernel receives on the interface -> packet socket.
    let sent = send(&mut tap_tx, &p, 0x7a, 16);
    assert_eq!(receive(&mut afp_rx, 0x7a, 16), sent);
    // packet socket transmits on the interface -> tap fd -> DPDK.
    let sent = send(&mut afp_tx, &p, 0xaf, 16);
    assert_eq!(receive(&mut tap_rx, 0xaf, 16), sent);
    drop((tap_rx, tap_tx, afp_rx, afp_tx, afp));
    drop(tap);
    assert!(
        !Path::new("/sys/class/net").join(&ifname).exists(),
        "tap interface removed with the port"
    );
    assert_eq!(p.in_use(), 0);
}

#[test]
fn virtio_user_talks_to_vhost() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("vhost.sock");
    let p = pool(4095);
    // vhost-user backend (server side of the socket), then the virtio_user
    // frontend that connects to it; the farm uses virtio_user on vhost-net the
    // same way.
    let vhost = started_port(
        &format!("{},iface={},queues=1", unique("net_vhost"), sock.display()),
        1,
        1,
        &p,
    )
    .unwrap();
    let virtio = started_port(
        &format!(
            "{},path={},queues=1,queue_size=256",
            unique("net_virtio_user"),
            sock.display()
        ),
        1,
        1,
        &p,
    )
    .unwrap();
    assert_eq!(virtio.info().unwrap().driver_name, "net_virtio_user");
    wait_link_up(&vhost);
    let (mut h_rx, mut h_tx) = (vhost.rx_queue(Q0).unwrap(), vhost.tx_queue(Q0).unwrap());
    let (mut v_rx, mut v_tx) = (virtio.rx_queue(Q0).unwrap(), virtio.tx_queue(Q0).unwrap());
    let sent = send(&mut v_tx, &p, 0x71, 32);
    assert_eq!(receive(&mut h_rx, 0x71, 32), sent);
    let sent = send(&mut h_tx, &p, 0x4b, 32);
    assert_eq!(receive(&mut v_rx, 0x4b, 32), sent);
    drop((h_rx, h_tx, v_rx, v_tx, virtio, vhost));
    assert_eq!(p.in_use(), 0);
}
