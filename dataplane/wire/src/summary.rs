//! One-pass frame summary for the classifier.
//!
//! [`summarize`] reads, in one walk over the frame, everything the packet
//! path needs: addresses, VLAN tags, the L3/L4 tuple, TCP flags, fragment
//! position, ICMP type and the tuple embedded in ICMP errors, ARP fields and
//! the NDP target. It never panics: truncated or malformed input is a
//! [`ParseError`] naming the layer. Checksums are not verified (the kernel
//! behind the TAP does that).
//!
//! Leniency, on purpose: IPv4 options, TCP options, Ethernet padding and
//! unknown L4 protocols are accepted; IPv6 extension headers are followed up
//! to [`crate::ipv6ext::MAX_EXT_HEADERS`]. An embedded header in an ICMP
//! error that cannot be read yields `inner: None`, not an error.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::ethernet::{self, EtherType, EthernetAddress, VlanTags};
use crate::icmpv4::{self, Icmpv4Message};
use crate::icmpv6::{self, Icmpv6Message};
use crate::ip::IpProtocol;
use crate::ndisc::{self, NdiscOptionType};
use crate::tcp::{self, TcpFlags};
use crate::{arp, ipv4, ipv6, ipv6ext, udp, ArpOperation, Error};

/// Protocol layer a [`ParseError`] happened at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// Ethernet header.
    Ethernet,
    /// VLAN tags.
    Vlan,
    /// ARP.
    Arp,
    /// IPv4 header.
    Ipv4,
    /// IPv6 fixed header.
    Ipv6,
    /// IPv6 extension headers.
    Ipv6Ext,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMPv4 / ICMPv6.
    Icmp,
    /// Neighbour-discovery options.
    Ndisc,
}

/// Why a frame could not be summarized. Small and `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{layer:?}: {error}")]
pub struct ParseError {
    /// Where.
    pub layer: Layer,
    /// What.
    pub error: Error,
}

#[inline]
fn at(layer: Layer) -> impl Fn(Error) -> ParseError {
    move |error| ParseError { layer, error }
}

/// Everything the classifier reads from a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSummary {
    /// Destination MAC.
    pub dst_mac: EthernetAddress,
    /// Source MAC.
    pub src_mac: EthernetAddress,
    /// VLAN tags, outermost first.
    pub tags: VlanTags,
    /// Innermost EtherType.
    pub ethertype: EtherType,
    /// Offset of the L3 header in the frame.
    pub l3_offset: usize,
    /// L3 contents.
    pub l3: L3,
}

/// L3 kind and contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L3 {
    /// Ethernet/IPv4 ARP.
    Arp(ArpSummary),
    /// IPv4 or IPv6 (the address family tells which).
    Ip(IpSummary),
    /// Any other EtherType (LLDP, 802.3 length frames, ...).
    Other,
}

/// ARP fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpSummary {
    /// Operation.
    pub op: ArpOperation,
    /// Sender hardware address.
    pub sender_mac: EthernetAddress,
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target hardware address.
    pub target_mac: EthernetAddress,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

/// Position of a packet in a fragmented datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fragment {
    /// Not fragmented.
    None,
    /// First fragment: carries the L4 header.
    First,
    /// Later fragment: no L4 header.
    NonFirst,
}

/// IPv4 / IPv6 fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpSummary {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Upper-layer protocol (after IPv6 extension headers).
    pub protocol: IpProtocol,
    /// TTL / hop limit.
    pub hop_limit: u8,
    /// Offset of the L4 header (or fragment data) in the frame.
    pub l4_offset: usize,
    /// Bytes of L4 header and payload present (padding excluded).
    pub l4_len: usize,
    /// Fragment position.
    pub fragment: Fragment,
    /// L4 contents.
    pub l4: L4,
}

/// A source / destination port pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ports {
    /// Source port.
    pub src: u16,
    /// Destination port.
    pub dst: u16,
}

/// L4 contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    /// No L4 header: a non-first fragment, or IPv6 "no next header".
    None,
    /// TCP.
    Tcp {
        /// Ports.
        ports: Ports,
        /// Flags.
        flags: TcpFlags,
    },
    /// UDP.
    Udp {
        /// Ports.
        ports: Ports,
    },
    /// ICMPv4 (over IPv4) or ICMPv6 (over IPv6).
    Icmp(IcmpSummary),
    /// Another protocol.
    Other,
}

/// ICMP type, code and what the classifier needs from the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpSummary {
    /// Raw type.
    pub ty: u8,
    /// Raw code.
    pub code: u8,
    /// Decoded kind.
    pub kind: IcmpKind,
}

/// ICMP message kinds the classifier distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpKind {
    /// Echo request.
    EchoRequest {
        /// Identifier.
        ident: u16,
    },
    /// Echo reply.
    EchoReply {
        /// Identifier.
        ident: u16,
    },
    /// An error carrying part of the invoking packet (v4: destination
    /// unreachable, time exceeded, parameter problem; v6: destination
    /// unreachable, packet too big, time exceeded, parameter problem).
    Error {
        /// Next-hop MTU for v4 "fragmentation needed", MTU of v6 "packet too
        /// big", 0 otherwise.
        mtu: u32,
        /// The invoking packet's tuple, when readable.
        inner: Option<InnerTuple>,
    },
    /// Neighbour solicitation (ICMPv6 135, code 0).
    NeighborSolicit {
        /// Address being resolved.
        target: Ipv6Addr,
        /// Source link-layer address option.
        source_mac: Option<EthernetAddress>,
    },
    /// Neighbour advertisement (ICMPv6 136, code 0).
    NeighborAdvert {
        /// Address advertised.
        target: Ipv6Addr,
        /// R/S/O flags byte.
        flags: u8,
        /// Target link-layer address option.
        target_mac: Option<EthernetAddress>,
    },
    /// Any other ICMP message.
    Other,
}

/// The tuple of the packet embedded in an ICMP error (as that packet was
/// sent: for an error about a VIP's reply, `src` is the VIP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InnerTuple {
    /// Source of the invoking packet.
    pub src: IpAddr,
    /// Destination of the invoking packet.
    pub dst: IpAddr,
    /// Its upper-layer protocol.
    pub protocol: IpProtocol,
    /// Its TCP/UDP ports, when present (not for non-first fragments or
    /// other protocols).
    pub ports: Option<Ports>,
}

/// Summarizes a frame in one pass. Never panics.
#[inline(always)]
pub fn summarize(frame: &[u8]) -> Result<FrameSummary, ParseError> {
    let eth = ethernet::Frame::new_checked(frame).map_err(at(Layer::Ethernet))?;
    // The tag walk of `Frame::tags`, kept in registers (hot path).
    let mut tags = VlanTags::new();
    let mut ty = u16::from(eth.ethertype());
    let mut l3_offset = ethernet::HEADER_LEN;
    while EtherType::from(ty).is_vlan_tpid() {
        let Some(&[t0, t1, e0, e1]) = frame.get(l3_offset..l3_offset + ethernet::VLAN_TAG_LEN)
        else {
            return Err(ParseError {
                layer: Layer::Vlan,
                error: Error::Truncated,
            });
        };
        tags.push_raw(ty, u16::from_be_bytes([t0, t1]))
            .map_err(at(Layer::Vlan))?;
        ty = u16::from_be_bytes([e0, e1]);
        l3_offset += ethernet::VLAN_TAG_LEN;
    }
    let ethertype = EtherType::from(ty);
    let l3_bytes = &frame[l3_offset..];
    let l3 = match ethertype {
        EtherType::Arp => L3::Arp(summarize_arp(l3_bytes)?),
        EtherType::Ipv4 => L3::Ip(summarize_ipv4(l3_bytes, l3_offset)?),
        EtherType::Ipv6 => L3::Ip(summarize_ipv6(l3_bytes, l3_offset)?),
        _ => L3::Other,
    };
    Ok(FrameSummary {
        dst_mac: eth.dst_addr(),
        src_mac: eth.src_addr(),
        tags,
        ethertype,
        l3_offset,
        l3,
    })
}

#[inline]
fn summarize_arp(buf: &[u8]) -> Result<ArpSummary, ParseError> {
    let p = arp::Packet::new_checked(buf).map_err(at(Layer::Arp))?;
    if !p.is_ethernet_ipv4() {
        return Err(ParseError {
            layer: Layer::Arp,
            error: Error::Unsupported,
        });
    }
    Ok(ArpSummary {
        op: p.operation(),
        sender_mac: p.source_hardware_addr(),
        sender_ip: p.source_protocol_addr(),
        target_mac: p.target_hardware_addr(),
        target_ip: p.target_protocol_addr(),
    })
}

#[inline(always)]
fn summarize_ipv4(buf: &[u8], l3_offset: usize) -> Result<IpSummary, ParseError> {
    let p = ipv4::Packet::new_checked(buf).map_err(at(Layer::Ipv4))?;
    if p.version() != 4 {
        return Err(ParseError {
            layer: Layer::Ipv4,
            error: Error::Malformed,
        });
    }
    let fragment = match (p.is_fragment(), p.frag_offset()) {
        (false, _) => Fragment::None,
        (true, 0) => Fragment::First,
        (true, _) => Fragment::NonFirst,
    };
    let protocol = p.next_header();
    let l4_bytes = p.payload();
    let l4 = if fragment == Fragment::NonFirst {
        L4::None
    } else {
        summarize_l4(protocol, l4_bytes, fragment, false)?
    };
    Ok(IpSummary {
        src: IpAddr::V4(p.src_addr()),
        dst: IpAddr::V4(p.dst_addr()),
        protocol,
        hop_limit: p.hop_limit(),
        l4_offset: l3_offset + p.header_len(),
        l4_len: l4_bytes.len(),
        fragment,
        l4,
    })
}

#[inline(always)]
fn summarize_ipv6(buf: &[u8], l3_offset: usize) -> Result<IpSummary, ParseError> {
    let p = ipv6::Packet::new_checked(buf).map_err(at(Layer::Ipv6))?;
    if p.version() != 6 {
        return Err(ParseError {
            layer: Layer::Ipv6,
            error: Error::Malformed,
        });
    }
    let payload = p.payload();
    let up = ipv6ext::walk(p.next_header(), payload).map_err(at(Layer::Ipv6Ext))?;
    let fragment = match up.fragment {
        None => Fragment::None,
        Some(f) if f.offset == 0 => Fragment::First,
        Some(_) => Fragment::NonFirst,
    };
    let l4_bytes = payload.get(up.offset..).ok_or(ParseError {
        layer: Layer::Ipv6Ext,
        error: Error::Truncated,
    })?;
    let l4 = if fragment == Fragment::NonFirst || up.protocol == IpProtocol::Ipv6NoNxt {
        L4::None
    } else {
        summarize_l4(up.protocol, l4_bytes, fragment, true)?
    };
    Ok(IpSummary {
        src: IpAddr::V6(p.src_addr()),
        dst: IpAddr::V6(p.dst_addr()),
        protocol: up.protocol,
        hop_limit: p.hop_limit(),
        l4_offset: l3_offset + ipv6::HEADER_LEN + up.offset,
        l4_len: l4_bytes.len(),
        fragment,
        l4,
    })
}

#[inline(always)]
fn summarize_l4(
    protocol: IpProtocol,
    buf: &[u8],
    fragment: Fragment,
    v6: bool,
) -> Result<L4, ParseError> {
    match protocol {
        IpProtocol::Tcp => {
            let t = tcp::Packet::new_checked(buf).map_err(at(Layer::Tcp))?;
            Ok(L4::Tcp {
                ports: Ports {
                    src: t.src_port(),
                    dst: t.dst_port(),
                },
                flags: t.flags(),
            })
        }
        IpProtocol::Udp => {
            // In a first fragment the length field covers the whole datagram.
            let u = if fragment == Fragment::None {
                udp::Packet::new_checked(buf).map_err(at(Layer::Udp))?
            } else if buf.len() < udp::HEADER_LEN {
                return Err(ParseError {
                    layer: Layer::Udp,
                    error: Error::Truncated,
                });
            } else {
                udp::Packet::new_unchecked(buf)
            };
            Ok(L4::Udp {
                ports: Ports {
                    src: u.src_port(),
                    dst: u.dst_port(),
                },
            })
        }
        IpProtocol::Icmp if !v6 => Ok(L4::Icmp(summarize_icmpv4(buf)?)),
        IpProtocol::Icmpv6 if v6 => Ok(L4::Icmp(summarize_icmpv6(buf)?)),
        _ => Ok(L4::Other),
    }
}

#[inline(never)]
fn summarize_icmpv4(buf: &[u8]) -> Result<IcmpSummary, ParseError> {
    let p = icmpv4::Packet::new_checked(buf).map_err(at(Layer::Icmp))?;
    let ty = p.msg_type();
    let kind = match ty {
        Icmpv4Message::EchoRequest => IcmpKind::EchoRequest {
            ident: p.echo_ident(),
        },
        Icmpv4Message::EchoReply => IcmpKind::EchoReply {
            ident: p.echo_ident(),
        },
        Icmpv4Message::DstUnreachable
        | Icmpv4Message::TimeExceeded
        | Icmpv4Message::ParamProblem => {
            let mtu = if ty == Icmpv4Message::DstUnreachable && p.msg_code() == 4 {
                u32::from(p.next_hop_mtu())
            } else {
                0
            };
            IcmpKind::Error {
                mtu,
                inner: inner_v4(p.data()),
            }
        }
        _ => IcmpKind::Other,
    };
    Ok(IcmpSummary {
        ty: ty.into(),
        code: p.msg_code(),
        kind,
    })
}

fn inner_v4(buf: &[u8]) -> Option<InnerTuple> {
    let (h, rest) = icmpv4::parse_embedded(buf).ok()?;
    let first = h.frag_offset == 0;
    Some(InnerTuple {
        src: IpAddr::V4(h.src_addr),
        dst: IpAddr::V4(h.dst_addr),
        protocol: h.next_header,
        ports: if first {
            ports_of(h.next_header, rest)
        } else {
            None
        },
    })
}

fn inner_v6(buf: &[u8]) -> Option<InnerTuple> {
    let (h, rest) = icmpv6::parse_embedded(buf).ok()?;
    // The embedded packet is usually cut: walk only what is there.
    let up = ipv6ext::walk(h.next_header, rest).ok()?;
    Some(InnerTuple {
        src: IpAddr::V6(h.src_addr),
        dst: IpAddr::V6(h.dst_addr),
        protocol: up.protocol,
        ports: if up.has_header() {
            rest.get(up.offset..)
                .and_then(|l4| ports_of(up.protocol, l4))
        } else {
            None
        },
    })
}

#[inline]
fn ports_of(protocol: IpProtocol, l4: &[u8]) -> Option<Ports> {
    match (protocol, l4) {
        (IpProtocol::Tcp | IpProtocol::Udp, [a, b, c, d, ..]) => Some(Ports {
            src: u16::from_be_bytes([*a, *b]),
            dst: u16::from_be_bytes([*c, *d]),
        }),
        _ => None,
    }
}

#[inline(never)]
fn summarize_icmpv6(buf: &[u8]) -> Result<IcmpSummary, ParseError> {
    let p = icmpv6::Packet::new_checked(buf).map_err(at(Layer::Icmp))?;
    let ty = p.msg_type();
    let code = p.msg_code();
    let kind = match ty {
        Icmpv6Message::EchoRequest => IcmpKind::EchoRequest {
            ident: p.echo_ident(),
        },
        Icmpv6Message::EchoReply => IcmpKind::EchoReply {
            ident: p.echo_ident(),
        },
        t if t.is_error() => {
            let mtu = if t == Icmpv6Message::PacketTooBig {
                p.pkt_too_big_mtu()
            } else {
                0
            };
            IcmpKind::Error {
                mtu,
                inner: inner_v6(p.data()),
            }
        }
        Icmpv6Message::NeighborSolicit if code == 0 => {
            let opts = buf.get(ndisc::OPTIONS_OFFSET..).unwrap_or(&[]);
            let source_mac = ndisc::find_lladdr(opts, NdiscOptionType::SourceLinkLayerAddr)
                .map_err(at(Layer::Ndisc))?;
            IcmpKind::NeighborSolicit {
                target: p.nd_target(),
                source_mac,
            }
        }
        Icmpv6Message::NeighborAdvert if code == 0 => {
            let opts = buf.get(ndisc::OPTIONS_OFFSET..).unwrap_or(&[]);
            let target_mac = ndisc::find_lladdr(opts, NdiscOptionType::TargetLinkLayerAddr)
                .map_err(at(Layer::Ndisc))?;
            IcmpKind::NeighborAdvert {
                target: p.nd_target(),
                flags: p.nd_flags(),
                target_mac,
            }
        }
        _ => IcmpKind::Other,
    };
    Ok(IcmpSummary {
        ty: ty.into(),
        code,
        kind,
    })
}

impl FrameSummary {
    /// The IP summary, if the frame is IPv4/IPv6.
    pub fn ip(&self) -> Option<&IpSummary> {
        match &self.l3 {
            L3::Ip(ip) => Some(ip),
            _ => None,
        }
    }
}

#[cfg(test)]
#[path = "summary_tests.rs"]
mod tests;
