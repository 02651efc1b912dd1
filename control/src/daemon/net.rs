//! The heartbeat sockets: one UDP socket per heartbeat LAN, bound to this node's address on
//! that LAN and the configured port, registered with mio.
//!
//! The sockets are bound with `IP_FREEBIND` / `IPV6_FREEBIND`: with a data plane the node
//! address lives on the TAP interface that `farm-dataplane` creates, possibly after farmd
//! starts (and again after each data-plane restart). A free-bound socket exists before its
//! address does; sends fail (counted, logged) and nothing arrives until the address appears,
//! then heartbeats flow with no re-bind. The socket is bound to the node address, not the
//! wildcard, so heartbeats leave with the node address as source and follow the node's own
//! route (through the TAP and the data plane: a dead data plane means a silent node, which is
//! the fate sharing the design wants).

use std::io;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Interest, Registry, Token};
use socket2::{Domain, Protocol, Socket, Type};
use tracing::{debug, warn};

/// One heartbeat LAN.
#[derive(Debug)]
pub struct LanSocket {
    /// The LAN's index (`addrs[k]` of every node).
    pub lan: usize,
    /// This node's address on it.
    pub local: SocketAddr,
    socket: UdpSocket,
    /// Send failures since the last warning.
    failures: u64,
    last_warn: Option<Instant>,
}

/// Heartbeat I/O counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetCounters {
    /// Datagrams sent.
    pub tx: u64,
    /// Sends that failed (address absent, no route, buffer full).
    pub tx_errors: u64,
}

/// True if a datagram received from `from` may come from a node whose heartbeat addresses
/// are `configured`: the same address and port as one of them (a node sends from its bound
/// heartbeat socket). A check against misrouted and casually replayed datagrams, not against
/// spoofing on the LAN (see `docs/threat-model.md`).
pub fn source_matches(configured: &[SocketAddr], from: SocketAddr) -> bool {
    let from_ip = from.ip().to_canonical();
    configured.iter().any(|c| c.port() == from.port() && c.ip().to_canonical() == from_ip)
}

/// Binds one socket per LAN. Fails if an address cannot be bound at all (e.g. the port is in
/// use: another farmd for this node already runs).
pub fn bind_all(addrs: &[SocketAddr], registry: &Registry, first_token: usize) -> io::Result<Vec<LanSocket>> {
    addrs
        .iter()
        .enumerate()
        .map(|(lan, &local)| {
            let mut socket = bind(local)
                .map_err(|e| io::Error::new(e.kind(), format!("heartbeat socket on {local} (LAN {lan}): {e}")))?;
            registry.register(&mut socket, Token(first_token + lan), Interest::READABLE)?;
            Ok(LanSocket { lan, local, socket, failures: 0, last_warn: None })
        })
        .collect()
}

fn bind(local: SocketAddr) -> io::Result<UdpSocket> {
    let domain = Domain::for_address(local);
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    let freebind = match local {
        SocketAddr::V4(_) => s.set_freebind_v4(true),
        SocketAddr::V6(_) => s.set_only_v6(true).and_then(|()| s.set_freebind_v6(true)),
    };
    if let Err(e) = freebind {
        debug!(%local, error = %e, "heartbeat socket: no freebind");
    }
    s.set_nonblocking(true)?;
    s.bind(&local.into())?;
    Ok(UdpSocket::from_std(StdUdpSocket::from(s)))
}

impl LanSocket {
    /// Sends one datagram; failures are counted and logged at most every 10 s.
    pub fn send(&mut self, bytes: &[u8], to: SocketAddr, counters: &mut NetCounters) {
        match self.socket.send_to(bytes, to) {
            Ok(_) => counters.tx += 1,
            Err(e) => {
                counters.tx_errors += 1;
                self.failures += 1;
                let now = Instant::now();
                let due = match self.last_warn {
                    None => true,
                    Some(t) => now.duration_since(t) >= Duration::from_secs(10),
                };
                if due {
                    warn!(
                        lan = self.lan,
                        local = %self.local,
                        %to,
                        error = %e,
                        failures = self.failures,
                        "heartbeat send failed (is the node address configured yet?)"
                    );
                    self.last_warn = Some(now);
                    self.failures = 0;
                }
            }
        }
    }

    /// Receives up to `max` datagrams, calling `f` on each. Returns true if more may be
    /// waiting (the limit was hit: call again without waiting for readiness).
    pub fn recv_some(&mut self, buf: &mut [u8], max: usize, mut f: impl FnMut(&[u8], SocketAddr)) -> bool {
        for _ in 0..max {
            match self.socket.recv_from(buf) {
                Ok((n, from)) => f(&buf[..n], from),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // ICMP errors of earlier sends (ECONNREFUSED...) surface here; not fatal.
                    debug!(lan = self.lan, error = %e, "heartbeat receive error");
                }
            }
        }
        true
    }

    /// The bound address.
    #[cfg(test)]
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_send_receive_on_loopback() {
        let poll = mio::Poll::new().unwrap();
        let a: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut socks = bind_all(&[a, a], poll.registry(), 10).unwrap();
        let to = socks[1].local_addr().unwrap();
        let mut c = NetCounters::default();
        socks[0].send(b"hello", to, &mut c);
        assert_eq!(c, NetCounters { tx: 1, tx_errors: 0 });
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(2);
        while got.is_empty() && Instant::now() < deadline {
            socks[1].recv_some(&mut buf, 8, |b, _| got.push(b.to_vec()));
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(got, vec![b"hello".to_vec()]);
        // A second socket on the same address and port is refused (one farmd per node).
        let taken = socks[1].local_addr().unwrap();
        assert!(bind_all(&[taken], poll.registry(), 20).is_err());
    }

    #[test]
    fn source_must_be_a_configured_address_and_port() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        let conf = [addr("198.18.0.2:4790"), addr("[fd00::2]:4790")];
        assert!(source_matches(&conf, addr("198.18.0.2:4790")));
        assert!(source_matches(&conf, addr("[fd00::2]:4790")));
        // IPv4-mapped form of a configured IPv4 address (a dual-stack socket would see it).
        assert!(source_matches(&conf, addr("[::ffff:198.18.0.2]:4790")));
        assert!(!source_matches(&conf, addr("198.18.0.3:4790")), "another node's address");
        assert!(!source_matches(&conf, addr("198.18.0.2:4791")), "another port");
        assert!(!source_matches(&conf, addr("[fd00::3]:4790")));
        assert!(!source_matches(&[], addr("198.18.0.2:4790")), "an unconfigured node");
    }

    #[test]
    fn freebind_allows_an_absent_address() {
        // 198.18.255.254 is not configured here: bound anyway, sends fail and are counted.
        let poll = mio::Poll::new().unwrap();
        let a: SocketAddr = "198.18.255.254:0".parse().unwrap();
        let mut socks = bind_all(&[a], poll.registry(), 0).unwrap();
        let mut c = NetCounters::default();
        socks[0].send(b"x", "127.0.0.1:9".parse().unwrap(), &mut c);
        assert_eq!(c.tx + c.tx_errors, 1);
    }
}
