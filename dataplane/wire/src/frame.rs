//! Whole-frame reprs: Ethernet + ARP / IPv4 / IPv6 + UDP / TCP / ICMP, for
//! tests, the traffic generator and the rare replies the data plane builds
//! (ARP replies, neighbour advertisements).
//!
//! [`FrameRepr::emit`] derives the length, next-header and EtherType fields
//! from the payload, so callers need not keep them consistent by hand.
//! [`FrameRepr::parse`] verifies checksums (except under `cfg(fuzzing)`).

use core::net::IpAddr;

use crate::arp::{self, ArpRepr};
use crate::ethernet::{self, EtherType, EthernetAddress, EthernetRepr};
use crate::icmpv4::{self, Icmpv4Repr};
use crate::icmpv6::{self, Icmpv6Repr};
use crate::ip::IpProtocol;
use crate::ipv4::{self, Ipv4Repr};
use crate::ipv6::{self, Ipv6Repr};
use crate::ndisc::NdiscRepr;
use crate::tcp::{self, TcpRepr};
use crate::udp::{self, UdpRepr};
use crate::{Error, Result};

/// Shortest Ethernet frame without FCS; [`FrameRepr::emit_padded`] pads to it.
pub const MIN_FRAME_LEN: usize = 60;

/// An IP payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpPayload<'a> {
    /// UDP datagram.
    Udp {
        /// Header.
        repr: UdpRepr,
        /// Payload.
        payload: &'a [u8],
    },
    /// TCP segment.
    Tcp {
        /// Header.
        repr: TcpRepr,
        /// Payload.
        payload: &'a [u8],
    },
    /// ICMPv4 message (IPv4 only).
    Icmpv4(Icmpv4Repr<'a>),
    /// ICMPv6 message (IPv6 only).
    Icmpv6(Icmpv6Repr<'a>),
    /// Anything else, including fragments and IPv6 extension headers.
    Raw {
        /// The (first) next-header value.
        protocol: IpProtocol,
        /// Bytes after the IP header.
        data: &'a [u8],
    },
}

impl IpPayload<'_> {
    fn protocol(&self) -> IpProtocol {
        match self {
            IpPayload::Udp { .. } => IpProtocol::Udp,
            IpPayload::Tcp { .. } => IpProtocol::Tcp,
            IpPayload::Icmpv4(_) => IpProtocol::Icmp,
            IpPayload::Icmpv6(_) => IpProtocol::Icmpv6,
            IpPayload::Raw { protocol, .. } => *protocol,
        }
    }

    fn buffer_len(&self) -> usize {
        match self {
            IpPayload::Udp { repr, payload } => repr.buffer_len(payload.len()),
            IpPayload::Tcp { repr, payload } => repr.buffer_len(payload.len()),
            IpPayload::Icmpv4(r) => r.buffer_len(),
            IpPayload::Icmpv6(r) => r.buffer_len(),
            IpPayload::Raw { data, .. } => data.len(),
        }
    }

    fn emit(&self, src: IpAddr, dst: IpAddr, out: &mut [u8]) -> Result<()> {
        match (self, src, dst) {
            (IpPayload::Udp { repr, payload }, ..) => repr.emit(out, src, dst, payload),
            (IpPayload::Tcp { repr, payload }, ..) => repr.emit(out, src, dst, payload),
            (IpPayload::Icmpv4(r), IpAddr::V4(_), IpAddr::V4(_)) => r.emit(out),
            (IpPayload::Icmpv6(r), IpAddr::V6(s), IpAddr::V6(d)) => r.emit(s, d, out),
            (IpPayload::Raw { data, .. }, ..) => {
                out.get_mut(..data.len())
                    .ok_or(Error::Truncated)?
                    .copy_from_slice(data);
                Ok(())
            }
            _ => Err(Error::Malformed),
        }
    }

    fn parse(
        protocol: IpProtocol,
        src: IpAddr,
        dst: IpAddr,
        data: &[u8],
        fragment: bool,
    ) -> Result<IpPayload<'_>> {
        let raw = IpPayload::Raw { protocol, data };
        if fragment {
            return Ok(raw);
        }
        match (protocol, src, dst) {
            (IpProtocol::Udp, ..) => {
                let p = udp::Packet::new_checked(data)?;
                Ok(IpPayload::Udp {
                    repr: UdpRepr::parse(&p, src, dst)?,
                    payload: &data[udp::HEADER_LEN..usize::from(p.length())],
                })
            }
            (IpProtocol::Tcp, ..) => {
                let p = tcp::Packet::new_checked(data)?;
                let repr = TcpRepr::parse(&p, src, dst)?;
                if p.header_len() != tcp::HEADER_LEN {
                    return Ok(raw); // options are not representable
                }
                Ok(IpPayload::Tcp {
                    repr,
                    payload: &data[tcp::HEADER_LEN..],
                })
            }
            (IpProtocol::Icmp, IpAddr::V4(_), _) => {
                match Icmpv4Repr::parse(&icmpv4::Packet::new_checked(data)?) {
                    Ok(r) => Ok(IpPayload::Icmpv4(r)),
                    Err(Error::Unsupported) => Ok(raw),
                    Err(e) => Err(e),
                }
            }
            (IpProtocol::Icmpv6, IpAddr::V6(s), IpAddr::V6(d)) => {
                match Icmpv6Repr::parse(s, d, &icmpv6::Packet::new_checked(data)?) {
                    Ok(r) => Ok(IpPayload::Icmpv6(r)),
                    Err(Error::Unsupported) => Ok(raw),
                    Err(e) => Err(e),
                }
            }
            _ => Ok(raw),
        }
    }
}

/// The packet after the Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketRepr<'a> {
    /// ARP.
    Arp(ArpRepr),
    /// IPv4 header and payload (`next_header`, `payload_len` derived on emit).
    Ipv4 {
        /// Header.
        header: Ipv4Repr,
        /// Payload.
        payload: IpPayload<'a>,
    },
    /// IPv6 header and payload (`next_header`, `payload_len` derived on emit).
    Ipv6 {
        /// Header.
        header: Ipv6Repr,
        /// Payload.
        payload: IpPayload<'a>,
    },
    /// Another EtherType and its raw payload.
    Other(&'a [u8]),
}

/// A whole frame (`ethernet.ethertype` derived on emit, except for `Other`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRepr<'a> {
    /// Ethernet header and tags.
    pub ethernet: EthernetRepr,
    /// Contents.
    pub packet: PacketRepr<'a>,
}

impl<'a> FrameRepr<'a> {
    /// Bytes [`emit`](Self::emit) writes (no padding).
    pub fn buffer_len(&self) -> usize {
        self.ethernet.header_len()
            + match &self.packet {
                PacketRepr::Arp(a) => a.buffer_len(),
                PacketRepr::Ipv4 { payload, .. } => ipv4::HEADER_LEN + payload.buffer_len(),
                PacketRepr::Ipv6 { payload, .. } => ipv6::HEADER_LEN + payload.buffer_len(),
                PacketRepr::Other(d) => d.len(),
            }
    }

    /// Writes the frame at the start of `buf`; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        let out = buf.get_mut(..len).ok_or(Error::Truncated)?;
        let mut eth = self.ethernet;
        eth.ethertype = match self.packet {
            PacketRepr::Arp(_) => EtherType::Arp,
            PacketRepr::Ipv4 { .. } => EtherType::Ipv4,
            PacketRepr::Ipv6 { .. } => EtherType::Ipv6,
            PacketRepr::Other(_) => eth.ethertype,
        };
        eth.emit(out)?;
        let l3 = &mut out[eth.header_len()..];
        match self.packet {
            PacketRepr::Arp(a) => a.emit(l3)?,
            PacketRepr::Ipv4 { header, payload } => {
                let h = Ipv4Repr {
                    next_header: payload.protocol(),
                    payload_len: payload.buffer_len(),
                    ..header
                };
                h.emit(l3)?;
                payload.emit(
                    h.src_addr.into(),
                    h.dst_addr.into(),
                    &mut l3[ipv4::HEADER_LEN..],
                )?;
            }
            PacketRepr::Ipv6 { header, payload } => {
                let h = Ipv6Repr {
                    next_header: payload.protocol(),
                    payload_len: payload.buffer_len(),
                    ..header
                };
                h.emit(l3)?;
                payload.emit(
                    h.src_addr.into(),
                    h.dst_addr.into(),
                    &mut l3[ipv6::HEADER_LEN..],
                )?;
            }
            PacketRepr::Other(d) => l3.copy_from_slice(d),
        }
        Ok(len)
    }

    /// Like [`emit`](Self::emit), then zero-pads to [`MIN_FRAME_LEN`];
    /// returns the padded length.
    pub fn emit_padded(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.emit(buf)?;
        let padded = len.max(MIN_FRAME_LEN);
        buf.get_mut(len..padded).ok_or(Error::Truncated)?.fill(0);
        Ok(padded)
    }

    /// Parses a frame, verifying checksums. IP fragments, IPv6 extension
    /// headers, TCP options and unknown protocols come back as
    /// [`IpPayload::Raw`].
    pub fn parse(frame: &'a [u8]) -> Result<FrameRepr<'a>> {
        let ethernet = EthernetRepr::parse(&ethernet::Frame::new_checked(frame)?)?;
        let l3 = &frame[ethernet.header_len()..];
        let packet = match ethernet.ethertype {
            EtherType::Arp => PacketRepr::Arp(ArpRepr::parse(&arp::Packet::new_checked(l3)?)?),
            EtherType::Ipv4 => {
                let p = ipv4::Packet::new_checked(l3)?;
                let header = Ipv4Repr::parse(&p)?;
                let frag = p.is_fragment();
                let data = &l3[p.header_len()..usize::from(p.total_len())];
                let payload = IpPayload::parse(
                    header.next_header,
                    header.src_addr.into(),
                    header.dst_addr.into(),
                    data,
                    frag,
                )?;
                PacketRepr::Ipv4 { header, payload }
            }
            EtherType::Ipv6 => {
                let p = ipv6::Packet::new_checked(l3)?;
                let header = Ipv6Repr::parse(&p)?;
                let data = &l3[ipv6::HEADER_LEN..ipv6::HEADER_LEN + header.payload_len];
                let ext = header.next_header.is_ipv6_ext();
                let payload = IpPayload::parse(
                    header.next_header,
                    header.src_addr.into(),
                    header.dst_addr.into(),
                    data,
                    ext,
                )?;
                PacketRepr::Ipv6 { header, payload }
            }
            _ => PacketRepr::Other(l3),
        };
        Ok(FrameRepr { ethernet, packet })
    }
}

/// Builds the ARP reply frame answering `request` (carried in a frame from
/// `request_src_mac` with `tags`): ARP sender = `answer_mac`, Ethernet
/// source = `eth_src` (the farm never sends the virtual MAC as an Ethernet
/// source). Returns the padded frame length, or `None` if `request` is not a
/// request.
pub fn arp_reply_frame(
    request: &ArpRepr,
    request_src_mac: EthernetAddress,
    tags: crate::VlanTags,
    eth_src: EthernetAddress,
    answer_mac: EthernetAddress,
    out: &mut [u8],
) -> Option<Result<usize>> {
    let reply = request.reply(answer_mac)?;
    let f = FrameRepr {
        ethernet: EthernetRepr {
            src_addr: eth_src,
            dst_addr: request_src_mac,
            tags,
            ethertype: EtherType::Arp,
        },
        packet: PacketRepr::Arp(reply),
    };
    Some(f.emit_padded(out))
}

/// Builds the neighbour advertisement answering a solicitation `ns` sent from
/// IPv6 `ns_src` / Ethernet `ns_src_mac` with `tags`: target link-layer
/// address = `answer_mac`, Ethernet source = `eth_src`, IPv6 source = the
/// target, hop limit 255. Returns the padded frame length, or `None` if `ns`
/// is not a solicitation.
pub fn ndisc_advert_frame(
    ns: &NdiscRepr,
    ns_src: core::net::Ipv6Addr,
    ns_src_mac: EthernetAddress,
    tags: crate::VlanTags,
    eth_src: EthernetAddress,
    answer_mac: EthernetAddress,
    out: &mut [u8],
) -> Option<Result<usize>> {
    let NdiscRepr::NeighborSolicit { target_addr, .. } = *ns else {
        return None;
    };
    let (dst, na) = ns.advert_reply(ns_src, answer_mac)?;
    let dst_mac = if dst.is_multicast() {
        ipv6::multicast_mac(dst)
    } else {
        ns_src_mac
    };
    let f = FrameRepr {
        ethernet: EthernetRepr {
            src_addr: eth_src,
            dst_addr: dst_mac,
            tags,
            ethertype: EtherType::Ipv6,
        },
        packet: PacketRepr::Ipv6 {
            header: Ipv6Repr {
                hop_limit: 255,
                ..Ipv6Repr::new(target_addr, dst, IpProtocol::Icmpv6, 0)
            },
            payload: IpPayload::Icmpv6(Icmpv6Repr::Ndisc(na)),
        },
    };
    Some(f.emit_padded(out))
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
