//! Fast-path reads: the fields of the commonest frames, straight off the
//! bytes, for the classifier's hot path.
//!
//! [`ipv4_l4`] recognises an Ethernet frame, untagged or with one VLAN tag,
//! that carries an unfragmented IPv4 packet with a TCP or UDP header, and
//! returns the few fields the classifier needs. It never guesses: when it
//! returns `Some`, [`summarize`](crate::summarize) succeeds on the same
//! frame and reports the same values (property-tested below); for anything
//! else (two tags, IPv6, ARP, ICMP, fragments, any header
//! [`summarize`](crate::summarize) would reject) it returns `None` and the
//! caller takes the summarizer's path. Every check mirrors one of the
//! views' `check_len`.
//!
//! ```text
//! Ethernet  | dst MAC (6) | src MAC (6) | 0x0800, or TPID + TCI + 0x0800 |
//! IPv4      | ver/IHL | .. | total length | .. | flags/offset | .. | protocol | .. | src | dst |
//! TCP / UDP | src port | dst port | .. (TCP: data offset at 12, flags at 13; UDP: length at 4)
//! ```

use core::net::Ipv4Addr;

use crate::ethernet::{EtherType, EthernetAddress, HEADER_LEN, VLAN_TAG_LEN};
use crate::summary::{Ports, L4};
use crate::tcp::TcpFlags;
use crate::{ipv4, tcp, udp};

/// What the classifier reads from an IPv4 TCP/UDP frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4L4 {
    /// Destination MAC.
    pub dst_mac: EthernetAddress,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Source and destination ports.
    pub ports: Ports,
    /// TCP flags for TCP, `None` for UDP.
    pub tcp_flags: Option<TcpFlags>,
}

impl Ipv4L4 {
    /// The L4 summary [`summarize`](crate::summarize) gives the same frame.
    pub fn l4(&self) -> L4 {
        match self.tcp_flags {
            Some(flags) => L4::Tcp {
                ports: self.ports,
                flags,
            },
            None => L4::Udp { ports: self.ports },
        }
    }
}

const IPV4: u16 = 0x0800;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
/// More-fragments flag and fragment offset.
const FRAGMENT_BITS: u16 = 0x3fff;

#[inline(always)]
fn be16(hi: u8, lo: u8) -> u16 {
    u16::from_be_bytes([hi, lo])
}

/// The destination MAC, and the IPv4 header with what follows it, when the
/// frame is untagged or has one VLAN tag and its (innermost) EtherType is
/// IPv4.
#[inline(always)]
fn ipv4_payload(frame: &[u8]) -> Option<(EthernetAddress, &[u8])> {
    let eth: &[u8; HEADER_LEN + VLAN_TAG_LEN] = frame.first_chunk()?;
    let dst_mac = EthernetAddress([eth[0], eth[1], eth[2], eth[3], eth[4], eth[5]]);
    let ty = be16(eth[12], eth[13]);
    let l3_offset = if ty == IPV4 {
        HEADER_LEN
    } else if EtherType::from(ty).is_vlan_tpid() && be16(eth[16], eth[17]) == IPV4 {
        HEADER_LEN + VLAN_TAG_LEN
    } else {
        return None;
    };
    Some((dst_mac, frame.get(l3_offset..)?))
}

/// The fields of an unfragmented IPv4 TCP/UDP frame (see the module docs);
/// `None` for every other frame.
#[inline(always)]
pub fn ipv4_l4(frame: &[u8]) -> Option<Ipv4L4> {
    // The shortest frame accepted is untagged IPv4 + UDP (14 + 20 + 8 = 42
    // bytes), so asking for a tag's worth of header bytes loses nothing.
    let (dst_mac, l3) = ipv4_payload(frame)?;
    let h: &[u8; ipv4::HEADER_LEN] = l3.first_chunk()?;
    if h[0] >> 4 != 4 {
        return None;
    }
    let header_len = usize::from(h[0] & 0x0f) * 4;
    let total = usize::from(be16(h[2], h[3]));
    // ipv4::Packet::check_len: IHL >= 5, header <= total <= buffer.
    if header_len < ipv4::HEADER_LEN || header_len > total || total > l3.len() {
        return None;
    }
    if be16(h[6], h[7]) & FRAGMENT_BITS != 0 {
        return None;
    }
    let l4 = l3.get(header_len..total)?;
    let (ports, tcp_flags) = match h[9] {
        PROTO_TCP => {
            let t: &[u8; tcp::HEADER_LEN] = l4.first_chunk()?;
            let data_offset = usize::from(t[12] >> 4) * 4;
            if data_offset < tcp::HEADER_LEN || data_offset > l4.len() {
                return None;
            }
            let ports = Ports {
                src: be16(t[0], t[1]),
                dst: be16(t[2], t[3]),
            };
            (ports, Some(TcpFlags(t[13])))
        }
        PROTO_UDP => {
            let u: &[u8; udp::HEADER_LEN] = l4.first_chunk()?;
            let len = usize::from(be16(u[4], u[5]));
            if len < udp::HEADER_LEN || len > l4.len() {
                return None;
            }
            let ports = Ports {
                src: be16(u[0], u[1]),
                dst: be16(u[2], u[3]),
            };
            (ports, None)
        }
        _ => return None,
    };
    let (s, d) = (&h[12..16], &h[16..20]);
    Some(Ipv4L4 {
        dst_mac,
        src: Ipv4Addr::new(s[0], s[1], s[2], s[3]),
        dst: Ipv4Addr::new(d[0], d[1], d[2], d[3]),
        ports,
        tcp_flags,
    })
}

#[cfg(test)]
#[path = "fast_tests.rs"]
mod tests;
