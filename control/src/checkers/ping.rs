//! ICMP echo without an external program: an unprivileged ICMP datagram socket when
//! `net.ipv4.ping_group_range` allows it, else a raw socket (root or `CAP_NET_RAW`), through the
//! `socket2` crate (no unsafe code here).

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

static SEQ: AtomicU16 = AtomicU16::new(1);

/// The Internet checksum (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn open(addr: IpAddr) -> io::Result<(Socket, bool)> {
    let (domain, proto) = match addr {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    match Socket::new(domain, Type::DGRAM, Some(proto)) {
        Ok(s) => Ok((s, true)),
        Err(dgram_err) => Socket::new(domain, Type::RAW, Some(proto)).map(|s| (s, false)).map_err(|raw_err| {
            io::Error::new(
                raw_err.kind(),
                format!(
                    "cannot open an ICMP socket (datagram: {dgram_err}; raw: {raw_err}); run as root, give CAP_NET_RAW or widen net.ipv4.ping_group_range"
                ),
            )
        }),
    }
}

/// Builds an echo request: type, code 0, checksum, identifier, sequence, payload.
pub fn echo_request(v6: bool, ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + payload.len());
    p.push(if v6 { 128 } else { 8 });
    p.push(0);
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&ident.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(payload);
    if !v6 {
        // ICMPv6 checksums cover a pseudo-header: the kernel computes them.
        let c = checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// Whether `packet` (as received: with an IPv4 header on raw IPv4 sockets) is the echo reply
/// carrying `payload`.
pub fn is_reply(v6: bool, packet: &[u8], payload: &[u8]) -> bool {
    let icmp = if !v6 && packet.first().is_some_and(|b| b >> 4 == 4) {
        let ihl = usize::from(packet[0] & 0x0f) * 4;
        match packet.get(ihl..) {
            Some(rest) => rest,
            None => return false,
        }
    } else {
        packet
    };
    let reply_type = if v6 { 129 } else { 0 };
    icmp.len() >= 8 && icmp[0] == reply_type && icmp[1] == 0 && &icmp[8..] == payload
}

/// Sends one echo request to `addr` and waits up to `timeout` for its reply; returns the
/// round-trip time.
pub fn ping(addr: IpAddr, timeout: Duration) -> io::Result<Duration> {
    let v6 = addr.is_ipv6();
    let (sock, _dgram) = open(addr)?;
    let sock: UdpSocket = sock.into();
    sock.connect(SocketAddr::new(addr, 0))?;
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let ident = (std::process::id() as u16) ^ 0x5a5a;
    let start = Instant::now();
    let nonce = (u64::from(std::process::id()) << 32) ^ start.elapsed().as_nanos() as u64 ^ u64::from(seq);
    let mut payload = b"farm-ping".to_vec();
    payload.extend_from_slice(&nonce.to_be_bytes());
    payload.extend_from_slice(&seq.to_be_bytes());
    sock.send(&echo_request(v6, ident, seq, &payload))?;
    let deadline = start + timeout;
    let mut buf = [0u8; 2048];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, format!("no echo reply from {addr} within {timeout:?}")));
        }
        sock.set_read_timeout(Some(left))?;
        match sock.recv(&mut buf) {
            Ok(n) if is_reply(v6, &buf[..n], &payload) => return Ok(start.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            // ICMP errors (unreachable) surface as socket errors on connected sockets.
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_known_answer() {
        // RFC 1071 example bytes.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
        // A packet with its checksum filled in sums to zero.
        let p = echo_request(false, 0x1234, 7, b"abc");
        assert_eq!(checksum(&p), 0);
        assert_eq!(&p[..2], &[8, 0]);
    }

    #[test]
    fn reply_matching() {
        let payload = b"farm-ping-xyz";
        let mut reply = echo_request(false, 1, 2, payload);
        reply[0] = 0;
        assert!(is_reply(false, &reply, payload));
        let mut with_ip = vec![0x45u8; 1];
        with_ip.extend_from_slice(&[0; 19]);
        with_ip.extend_from_slice(&reply);
        assert!(is_reply(false, &with_ip, payload));
        assert!(!is_reply(false, &reply, b"other"));
        let request = echo_request(false, 1, 2, payload);
        assert!(!is_reply(false, &request, payload));
        let mut r6 = echo_request(true, 1, 2, payload);
        r6[0] = 129;
        assert!(is_reply(true, &r6, payload));
        assert!(!is_reply(true, &[129, 0], payload));
    }
}
