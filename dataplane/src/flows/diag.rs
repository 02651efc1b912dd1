//! The kernel's TCP sockets through sock_diag netlink (`NETLINK_SOCK_DIAG`, `INET_DIAG`).
//!
//! One dump per address family (`AF_INET`, then `AF_INET6`, which also holds the IPv4
//! connections of dual-stack listeners as v4-mapped addresses), asking only for the states of a
//! held flow ([`held_states`]) and, when VIPs are given, with a bytecode filter
//! (`INET_DIAG_REQ_BYTECODE`) that makes the kernel send only the sockets whose local address is
//! a VIP. The messages are built and read with `netlink-packet-core` /
//! `netlink-packet-sock-diag`; replies are read header by header ([`InetResponseHeader`]), without
//! allocating per socket. The netlink socket belongs to the network namespace of the process
//! that opens it: the data plane runs in the node's namespace, so it sees the node's kernel.

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use netlink_packet_core::{
    DefaultNla, Emitable, NetlinkBuffer, NetlinkHeader, NetlinkMessage, Parseable, NLMSG_DONE,
    NLMSG_ERROR, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, InetResponseHeader, SocketId, StateFlags};
use netlink_packet_sock_diag::{SockDiagMessage, SOCK_DIAG_BY_FAMILY};
use netlink_sys::protocols::NETLINK_SOCK_DIAG;
use netlink_sys::{Socket as NlSocket, SocketAddr};

use super::Socket;

/// `INET_DIAG_REQ_BYTECODE` (linux/inet_diag.h): the request's filter attribute.
const INET_DIAG_REQ_BYTECODE: u16 = 1;
/// Bytecode operations (linux/inet_diag.h).
const INET_DIAG_BC_JMP: u8 = 1;
const INET_DIAG_BC_S_COND: u8 = 7;
/// More VIPs than this and the kernel sends every socket; the caller filters anyway.
const MAX_FILTERED_VIPS: usize = 256;
/// A dump that does not answer within this is abandoned (the refresh fails, the next retries).
const RECV_TIMEOUT: Duration = Duration::from_secs(1);
/// The kernel fills at most 32 KiB per dump datagram; room for two.
const RECV_BUF: usize = 64 * 1024;

/// States of a flow the node holds: all but TIME_WAIT, CLOSE and LISTEN (as the `/proc` parser).
/// SYN_RECV includes the kernel's request sockets (`TCP_NEW_SYN_RECV`).
pub fn held_states() -> StateFlags {
    StateFlags::all() - StateFlags::TIME_WAIT - StateFlags::CLOSE - StateFlags::LISTEN
}

fn host_cond(family: u8, addr: &[u8]) -> Vec<u8> {
    // struct inet_diag_bc_op { u8 code; u8 yes; u16 no; } then
    // struct inet_diag_hostcond { u8 family; u8 prefix_len; int port; be32 addr[]; }
    let len = 4 + 8 + addr.len();
    let mut op = Vec::with_capacity(len);
    op.extend_from_slice(&[INET_DIAG_BC_S_COND, 0, 0, 0]);
    op.extend_from_slice(&[family, (addr.len() * 8) as u8, 0, 0]);
    op.extend_from_slice(&(-1i32).to_ne_bytes()); // any port
    op.extend_from_slice(addr);
    op
}

/// The bytecode that accepts a socket of a `family` dump whose local address is one of `vips`,
/// or `None` when there is nothing to ask (no VIP of that family: the dump can be skipped), or
/// too many VIPs to filter in the kernel (`Some(vec![])`: dump unfiltered).
///
/// An IPv6 dump also matches the IPv4 VIPs: the kernel compares an `AF_INET` condition with the
/// v4-mapped address of an IPv6 socket. Layout, for n conditions: `C0 J C1 J ... Cn-1`, where
/// `Ci` jumps on a match to the following `J` (which jumps to the end: accept) and otherwise
/// over it to `Ci+1`; the last condition's match ends the program (accept), its miss jumps past
/// the end (reject). Every `yes` offset leads to the next operation, as the kernel's audit wants.
pub fn local_address_filter(family: u8, vips: &[IpAddr]) -> Option<Vec<u8>> {
    let conds: Vec<Vec<u8>> = vips
        .iter()
        .filter_map(|v| match (family, v) {
            (AF_INET | AF_INET6, IpAddr::V4(a)) => Some(host_cond(AF_INET, &a.octets())),
            (AF_INET6, IpAddr::V6(a)) => Some(host_cond(AF_INET6, &a.octets())),
            _ => None,
        })
        .collect();
    if conds.is_empty() {
        return None;
    }
    if conds.len() > MAX_FILTERED_VIPS {
        return Some(Vec::new());
    }
    let total: usize = conds.iter().map(Vec::len).sum::<usize>() + 4 * (conds.len() - 1);
    let mut bc = Vec::with_capacity(total);
    let n = conds.len();
    for (i, mut c) in conds.into_iter().enumerate() {
        let size = c.len();
        c[1] = size as u8;
        c[2..4].copy_from_slice(&((size + 4) as u16).to_ne_bytes());
        bc.extend_from_slice(&c);
        if i + 1 < n {
            let jmp_to_end = (total - bc.len()) as u16;
            bc.extend_from_slice(&[INET_DIAG_BC_JMP, 4]);
            bc.extend_from_slice(&jmp_to_end.to_ne_bytes());
        }
    }
    debug_assert_eq!(bc.len(), total);
    Some(bc)
}

/// The dump request of `family`'s TCP sockets in `states`, with an optional bytecode filter.
pub fn dump_request(family: u8, states: StateFlags, seq: u32, bytecode: &[u8]) -> Vec<u8> {
    let mut hdr = NetlinkHeader::default();
    hdr.flags = NLM_F_REQUEST | NLM_F_DUMP;
    hdr.sequence_number = seq;
    let socket_id = if family == AF_INET { SocketId::new_v4() } else { SocketId::new_v6() };
    let req = InetRequest { family, protocol: IPPROTO_TCP, extensions: ExtensionFlags::empty(), states, socket_id };
    let mut msg = NetlinkMessage::new(hdr, SockDiagMessage::InetRequest(req).into());
    msg.finalize();
    let mut buf = vec![0; msg.buffer_len()];
    msg.serialize(&mut buf);
    if !bytecode.is_empty() {
        let nla = DefaultNla::new(INET_DIAG_REQ_BYTECODE, bytecode.to_vec());
        let at = buf.len();
        buf.resize(at + nla.buffer_len(), 0);
        nla.emit(&mut buf[at..]);
        let len = buf.len() as u32;
        NetlinkBuffer::new(&mut buf[..]).set_length(len);
    }
    buf
}

/// Where a dump stands after one datagram of its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// More datagrams follow.
    More,
    /// `NLMSG_DONE` seen: the dump is complete.
    Done,
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("sock_diag reply: {e}"))
}

fn unmapped(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    }
}

/// Reads one datagram of a dump's reply: calls `out` for each socket of dump `seq` (messages of
/// other sequence numbers, leftovers of an abandoned dump, are skipped). An `NLMSG_ERROR`, or an
/// `NLMSG_DONE` with an error code, is the kernel's error; a dump the kernel marks interrupted
/// (`NLM_F_DUMP_INTR`) is an error too (`Interrupted`: the caller retries).
pub fn parse_reply(mut buf: &[u8], seq: u32, out: &mut impl FnMut(Socket)) -> io::Result<Progress> {
    while buf.len() >= 16 {
        let msg = NetlinkBuffer::new_checked(buf).map_err(invalid)?;
        let len = msg.length() as usize;
        if msg.sequence_number() == seq {
            if msg.flags() & NLM_F_DUMP_INTR != 0 {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "sock_diag dump interrupted"));
            }
            let payload = msg.payload();
            let code = || payload.get(..4).map_or(0, |c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
            match msg.message_type() {
                NLMSG_DONE if code() < 0 => return Err(io::Error::from_raw_os_error(-code())),
                NLMSG_DONE => return Ok(Progress::Done),
                NLMSG_ERROR if code() != 0 => return Err(io::Error::from_raw_os_error(-code())),
                SOCK_DIAG_BY_FAMILY => {
                    let h = InetResponseHeader::parse(payload).map_err(invalid)?;
                    let id = &h.socket_id;
                    out(Socket {
                        local: (unmapped(id.source_address), id.source_port),
                        remote: (unmapped(id.destination_address), id.destination_port),
                        state: h.state,
                    });
                }
                _ => {}
            }
        }
        // Messages are aligned to 4 bytes.
        buf = &buf[((len + 3) & !3).min(buf.len())..];
    }
    Ok(Progress::More)
}

/// A sock_diag netlink socket in this process's network namespace.
#[derive(Debug)]
pub struct SockDiag {
    socket: NlSocket,
    buf: Vec<u8>,
    seq: u32,
}

impl SockDiag {
    /// Opens the socket (fails where the kernel has no sock_diag, or seccomp forbids netlink).
    pub fn open() -> io::Result<SockDiag> {
        let mut socket = NlSocket::new(NETLINK_SOCK_DIAG)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        socket2::SockRef::from(&socket).set_read_timeout(Some(RECV_TIMEOUT))?;
        Ok(SockDiag { socket, buf: vec![0; RECV_BUF], seq: 0 })
    }

    /// One dump of `family`'s TCP sockets in `states` (filtered by `bytecode` unless empty).
    pub fn dump(&mut self, family: u8, states: StateFlags, bytecode: &[u8], out: &mut impl FnMut(Socket)) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let req = dump_request(family, states, self.seq, bytecode);
        self.socket.send(&req, 0)?;
        loop {
            let n = match self.socket.recv(&mut &mut self.buf[..], 0) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if parse_reply(&self.buf[..n.min(self.buf.len())], self.seq, out)? == Progress::Done {
                return Ok(());
            }
        }
    }

    /// The TCP sockets in a held state ([`held_states`]) whose local address is one of `vips`
    /// (filtered by the kernel; the caller still checks), IPv4 and IPv6, appended to `out`.
    /// With no VIP nothing is asked. A dump the kernel interrupted is retried once.
    pub fn held_tcp(&mut self, vips: &[IpAddr], out: &mut Vec<Socket>) -> io::Result<()> {
        for family in [AF_INET, AF_INET6] {
            let Some(bc) = local_address_filter(family, vips) else { continue };
            let start = out.len();
            match self.dump(family, held_states(), &bc, &mut |s| out.push(s)) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    out.truncate(start);
                    self.dump(family, held_states(), &bc, &mut |s| out.push(s))?;
                }
                r => r?,
            }
        }
        Ok(())
    }

    /// Every TCP socket of `family` in any state, unfiltered (tests, benchmarks).
    pub fn all_tcp(&mut self, family: u8, out: &mut Vec<Socket>) -> io::Result<()> {
        self.dump(family, StateFlags::all(), &[], &mut |s| out.push(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, Ipv6Addr, TcpListener, TcpStream};

    use crate::flows::{TCP_LISTEN, TCP_TIME_WAIT};

    const ESTABLISHED: u8 = 1;

    #[test]
    fn the_request_is_a_sock_diag_dump_with_the_filter_attribute() {
        let bc = local_address_filter(AF_INET, &["198.18.0.100".parse().unwrap()]).unwrap();
        assert_eq!(bc.len(), 16, "one v4 condition: op 4 + hostcond 8 + address 4");
        let req = dump_request(AF_INET, held_states(), 7, &bc);
        let nl = NetlinkBuffer::new_checked(&req[..]).unwrap();
        assert_eq!(nl.length() as usize, req.len());
        assert_eq!(nl.message_type(), SOCK_DIAG_BY_FAMILY);
        assert_eq!(nl.flags(), NLM_F_REQUEST | NLM_F_DUMP);
        assert_eq!(nl.sequence_number(), 7);
        let p = nl.payload();
        let parsed = InetRequest::parse(&p[..56]).unwrap();
        assert_eq!((parsed.family, parsed.protocol), (AF_INET, IPPROTO_TCP));
        assert_eq!(parsed.states, held_states());
        assert!(!parsed.states.contains(StateFlags::TIME_WAIT) && parsed.states.contains(StateFlags::SYN_RECV));
        // the attribute: len, type, then the bytecode
        assert_eq!(u16::from_ne_bytes([p[56], p[57]]) as usize, 4 + bc.len());
        assert_eq!(u16::from_ne_bytes([p[58], p[59]]), INET_DIAG_REQ_BYTECODE);
        assert_eq!(&p[60..], &bc[..]);
        assert_eq!(dump_request(AF_INET6, held_states(), 1, &[]).len(), 16 + 56, "no filter, no attribute");
    }

    #[test]
    fn the_filter_chains_conditions_for_the_kernels_audit() {
        let vips: Vec<IpAddr> =
            vec!["198.18.0.100".parse().unwrap(), "2001:db8::1".parse().unwrap(), "198.18.0.101".parse().unwrap()];
        assert_eq!(local_address_filter(AF_INET, &vips[1..2]), None, "no v4 VIP: no v4 dump");
        let v4 = local_address_filter(AF_INET, &vips).unwrap();
        assert_eq!(v4.len(), 16 + 4 + 16);
        assert_eq!((v4[0], v4[1], u16::from_ne_bytes([v4[2], v4[3]])), (INET_DIAG_BC_S_COND, 16, 20));
        assert_eq!((v4[16], v4[17], u16::from_ne_bytes([v4[18], v4[19]])), (INET_DIAG_BC_JMP, 4, 20), "to the end");
        assert_eq!((v4[20], v4[21], u16::from_ne_bytes([v4[22], v4[23]])), (INET_DIAG_BC_S_COND, 16, 20), "last: miss = reject");
        // the v6 dump matches the v6 VIP and the v4 VIPs (v4-mapped sockets)
        let v6 = local_address_filter(AF_INET6, &vips).unwrap();
        assert_eq!(v6.len(), 16 + 4 + 28 + 4 + 16);
    }

    /// Every (local, remote, state) of the kernel's TCP sockets, both families, unfiltered.
    fn kernel_sockets() -> Vec<Socket> {
        let mut d = SockDiag::open().expect("sock_diag");
        let mut v = Vec::new();
        d.all_tcp(AF_INET, &mut v).unwrap();
        d.all_tcp(AF_INET6, &mut v).unwrap();
        v
    }

    fn held(vips: &[IpAddr]) -> Vec<Socket> {
        let mut d = SockDiag::open().expect("sock_diag");
        let mut v = Vec::new();
        d.held_tcp(vips, &mut v).unwrap();
        v
    }

    fn find(v: &[Socket], local: (IpAddr, u16), remote: (IpAddr, u16)) -> Option<u8> {
        v.iter().find(|s| s.local == local && s.remote == remote).map(|s| s.state)
    }

    /// Real sockets on loopback: a listener and connections, seen with their states; closed ones
    /// disappear from the held set (TIME_WAIT is not held).
    fn sees_real_sockets(lo: IpAddr) {
        let l = TcpListener::bind((lo, 0)).unwrap();
        let la = l.local_addr().unwrap();
        let local = (lo, la.port());
        let all = kernel_sockets();
        assert_eq!(find(&all, local, (if lo.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() }, 0)), Some(TCP_LISTEN));
        assert!(held(&[lo]).iter().all(|s| s.local != local), "a listener is not a held flow");

        let mut clients = Vec::new();
        let mut servers = Vec::new();
        for _ in 0..3 {
            let c = TcpStream::connect(la).unwrap();
            servers.push(l.accept().unwrap().0);
            clients.push(c);
        }
        let remotes: Vec<(IpAddr, u16)> = clients.iter().map(|c| (lo, c.local_addr().unwrap().port())).collect();
        let h = held(&[lo]);
        for r in &remotes {
            assert_eq!(find(&h, local, *r), Some(ESTABLISHED), "server side of {r:?} in {h:?}");
        }
        // the filter: another address is not a VIP, nothing on it is sent
        let other: IpAddr = if lo.is_ipv4() { "127.0.0.2".parse().unwrap() } else { "::2".parse().unwrap() };
        assert!(held(&[other]).iter().all(|s| s.local != local));

        // the server closes first: its side goes to TIME_WAIT, which is not held
        let (s0, c0) = (servers.remove(0), clients.remove(0));
        drop(s0);
        let mut b = [0u8; 1];
        let mut c0 = c0;
        assert_eq!(c0.read(&mut b).unwrap(), 0);
        drop(c0);
        std::thread::sleep(Duration::from_millis(50));
        let h = held(&[lo]);
        assert_eq!(find(&h, local, remotes[0]), None, "closed: gone from the held set");
        assert_eq!(find(&kernel_sockets(), local, remotes[0]), Some(TCP_TIME_WAIT), "still in the kernel as TIME_WAIT");
        // the client closes first: the server side holds CLOSE_WAIT until it closes too
        let mut c1 = clients.remove(0);
        c1.write_all(b"x").unwrap();
        drop(c1);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(find(&held(&[lo]), local, remotes[1]), Some(8), "CLOSE_WAIT is held");
        drop(servers.remove(0));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(find(&held(&[lo]), local, remotes[1]), None, "gone once both sides closed");
        assert_eq!(find(&held(&[lo]), local, remotes[2]), Some(ESTABLISHED));
    }

    #[test]
    fn sees_real_ipv4_sockets() {
        sees_real_sockets(Ipv4Addr::LOCALHOST.into());
    }

    #[test]
    fn sees_real_ipv6_sockets() {
        if TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_err() {
            eprintln!("no IPv6 loopback: skipped");
            return;
        }
        sees_real_sockets(Ipv6Addr::LOCALHOST.into());
    }

    #[test]
    fn v4_connections_to_a_dual_stack_listener_are_found_by_their_v4_address() {
        let Ok(l) = TcpListener::bind((Ipv6Addr::UNSPECIFIED, 0)) else { return };
        let port = l.local_addr().unwrap().port();
        let c = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        let _s = l.accept().unwrap();
        let lo: IpAddr = Ipv4Addr::LOCALHOST.into();
        let h = held(&[lo]);
        assert_eq!(find(&h, (lo, port), (lo, c.local_addr().unwrap().port())), Some(ESTABLISHED), "{h:?}");
    }

    /// A request socket (the server answered a SYN, the handshake is not complete) is held: a
    /// raw SYN from a client address that never answers, inside a network namespace of the
    /// test's own (the SYN-ACK goes nowhere, so the request stays in SYN_RECV).
    #[test]
    fn syn_recv_request_sockets_are_held() {
        let t = std::thread::spawn(|| {
            if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
                eprintln!("cannot create a network namespace ({e}): skipped");
                return;
            }
            // fork inherits this thread's namespace. The SYN-ACK needs a route (or the kernel
            // drops the request): to lo, where it is dropped as not for this host.
            for cmd in [&["link", "set", "lo", "up"][..], &["route", "add", "198.18.99.0/24", "dev", "lo"]] {
                let ok = std::process::Command::new("ip").args(cmd).status();
                if !ok.is_ok_and(|s| s.success()) {
                    eprintln!("ip {cmd:?} failed: skipped");
                    return;
                }
            }
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            let client: IpAddr = "198.18.99.1".parse().unwrap();
            let lo: IpAddr = Ipv4Addr::LOCALHOST.into();
            let raw = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::RAW, Some(socket2::Protocol::TCP)).unwrap();
            raw.set_header_included_v4(true).unwrap();
            let frame = farm_wire::gen::FrameBuilder::new(farm_wire::EthernetAddress([2; 6]), farm_wire::EthernetAddress([4; 6]))
                .tcp(client, lo, 40404, port, farm_wire::TcpFlags::SYN)
                .unwrap();
            let mut pkt = frame[14..].to_vec();
            // The TCP checksum over the pseudo-header (src, dst, protocol, length) and the segment.
            let seg = pkt.len() - 20;
            pkt[36..38].fill(0);
            let mut sum: u32 = 6 + seg as u32;
            for c in pkt[12..20].chunks(2).chain(pkt[20..].chunks(2)) {
                sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
            }
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            pkt[36..38].copy_from_slice(&(!(sum as u16)).to_be_bytes());
            let to: std::net::SocketAddr = (lo, 0).into();
            raw.send_to(&pkt, &to.into()).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            let h = held(&[lo]);
            assert_eq!(find(&h, (lo, port), (client, 40404)), Some(3), "SYN_RECV: {h:?}");
            drop(l);
        });
        t.join().unwrap();
    }

    #[test]
    fn errors_and_foreign_messages() {
        let mut out = Vec::new();
        // NLMSG_ERROR -EPERM for seq 3
        let mut m = vec![0u8; 36];
        m[..4].copy_from_slice(&36u32.to_ne_bytes());
        m[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        m[8..12].copy_from_slice(&3u32.to_ne_bytes());
        m[16..20].copy_from_slice(&(-1i32).to_ne_bytes());
        let e = parse_reply(&m, 3, &mut |s| out.push(s)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(1));
        assert_eq!(parse_reply(&m, 4, &mut |s| out.push(s)).unwrap(), Progress::More, "another dump's message is skipped");
        // NLMSG_DONE
        m[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
        m[16..20].copy_from_slice(&0i32.to_ne_bytes());
        assert_eq!(parse_reply(&m, 3, &mut |s| out.push(s)).unwrap(), Progress::Done);
        assert!(out.is_empty());
        assert!(parse_reply(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 3, &mut |s| out.push(s)).is_err(), "length below the header");
    }
}
