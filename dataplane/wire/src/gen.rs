//! Frame builders for tests, fuzz seeds and the traffic generator.
//!
//! Slow path: each call allocates the frame. Frames are padded to the
//! Ethernet minimum (60 bytes without FCS).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::arp::{ArpOperation, ArpRepr};
use crate::ethernet::{EtherType, EthernetAddress, EthernetRepr, VlanTags};
use crate::frame::{FrameRepr, IpPayload, PacketRepr};
use crate::icmpv4::{Icmpv4DstUnreachable, Icmpv4Repr};
use crate::icmpv6::Icmpv6Repr;
use crate::ip::IpProtocol;
use crate::ipv4::Ipv4Repr;
use crate::ipv6::{self, Ipv6Repr};
use crate::ipv6ext::FragmentRepr;
use crate::ndisc::{NdiscRepr, NeighborFlags};
use crate::tcp::{TcpFlags, TcpRepr};
use crate::udp::UdpRepr;
use crate::{Error, Result};

/// Ethernet addressing shared by the frames one builder makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameBuilder {
    /// Ethernet source.
    pub src_mac: EthernetAddress,
    /// Ethernet destination.
    pub dst_mac: EthernetAddress,
    /// VLAN tags, outermost first.
    pub tags: VlanTags,
}

/// The embedded packet an ICMP error talks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invoking {
    /// Its source (the VIP, for an error about the VIP's reply).
    pub src: IpAddr,
    /// Its destination (the client).
    pub dst: IpAddr,
    /// Its protocol.
    pub protocol: IpProtocol,
    /// Its source port.
    pub src_port: u16,
    /// Its destination port.
    pub dst_port: u16,
}

impl Invoking {
    fn l4_bytes(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        b[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        b[4..8].copy_from_slice(&[0, 0, 0, 1]);
        b
    }
}

impl FrameBuilder {
    /// Untagged frames from `src_mac` to `dst_mac`.
    pub fn new(src_mac: EthernetAddress, dst_mac: EthernetAddress) -> Self {
        FrameBuilder {
            src_mac,
            dst_mac,
            tags: VlanTags::new(),
        }
    }

    /// The same with VLAN tags.
    pub fn with_tags(self, tags: VlanTags) -> Self {
        FrameBuilder { tags, ..self }
    }

    /// The same with another destination MAC.
    pub fn to_mac(self, dst_mac: EthernetAddress) -> Self {
        FrameBuilder { dst_mac, ..self }
    }

    fn eth(&self) -> EthernetRepr {
        EthernetRepr {
            src_addr: self.src_mac,
            dst_addr: self.dst_mac,
            tags: self.tags,
            ethertype: EtherType::Ipv4,
        }
    }

    /// Emits any packet with this builder's Ethernet header.
    pub fn frame(&self, packet: PacketRepr<'_>) -> Result<Vec<u8>> {
        let f = FrameRepr {
            ethernet: self.eth(),
            packet,
        };
        let mut out = vec![0u8; f.buffer_len().max(crate::frame::MIN_FRAME_LEN)];
        let n = f.emit_padded(&mut out)?;
        out.truncate(n);
        Ok(out)
    }

    /// An IP packet from `src` to `dst` (same family) with `payload`.
    pub fn ip(&self, src: IpAddr, dst: IpAddr, payload: IpPayload<'_>) -> Result<Vec<u8>> {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => self.frame(PacketRepr::Ipv4 {
                header: Ipv4Repr::new(s, d, IpProtocol::Udp, 0),
                payload,
            }),
            (IpAddr::V6(s), IpAddr::V6(d)) => self.frame(PacketRepr::Ipv6 {
                header: Ipv6Repr::new(s, d, IpProtocol::Udp, 0),
                payload,
            }),
            _ => Err(Error::Malformed),
        }
    }

    /// A TCP segment without payload.
    pub fn tcp(
        &self,
        src: IpAddr,
        dst: IpAddr,
        src_port: u16,
        dst_port: u16,
        flags: TcpFlags,
    ) -> Result<Vec<u8>> {
        let repr = TcpRepr {
            src_port,
            dst_port,
            seq_number: 1000,
            ack_number: 0,
            flags,
            window_len: 64240,
        };
        self.ip(src, dst, IpPayload::Tcp { repr, payload: &[] })
    }

    /// A UDP datagram.
    pub fn udp(
        &self,
        src: IpAddr,
        dst: IpAddr,
        src_port: u16,
        dst_port: u16,
        payload: &[u8],
    ) -> Result<Vec<u8>> {
        self.ip(
            src,
            dst,
            IpPayload::Udp {
                repr: UdpRepr { src_port, dst_port },
                payload,
            },
        )
    }

    /// An ICMP / ICMPv6 echo request.
    pub fn echo_request(
        &self,
        src: IpAddr,
        dst: IpAddr,
        ident: u16,
        seq_no: u16,
    ) -> Result<Vec<u8>> {
        let data = b"farm-ping";
        let payload = if src.is_ipv4() {
            IpPayload::Icmpv4(Icmpv4Repr::EchoRequest {
                ident,
                seq_no,
                data,
            })
        } else {
            IpPayload::Icmpv6(Icmpv6Repr::EchoRequest {
                ident,
                seq_no,
                data,
            })
        };
        self.ip(src, dst, payload)
    }

    /// An ARP request "who has `target_ip`, tell `sender_ip`", sender MAC =
    /// the builder's source.
    pub fn arp_request(&self, sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> Result<Vec<u8>> {
        self.frame(PacketRepr::Arp(ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: self.src_mac,
            source_protocol_addr: sender_ip,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target_ip,
        }))
    }

    /// An ARP reply "`sender_ip` is at `sender_mac`" to `target`.
    pub fn arp_reply(
        &self,
        sender_mac: EthernetAddress,
        sender_ip: Ipv4Addr,
        target_mac: EthernetAddress,
        target_ip: Ipv4Addr,
    ) -> Result<Vec<u8>> {
        self.frame(PacketRepr::Arp(ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: sender_mac,
            source_protocol_addr: sender_ip,
            target_hardware_addr: target_mac,
            target_protocol_addr: target_ip,
        }))
    }

    /// A neighbour solicitation from `src` for `target` to its
    /// solicited-node group, with the builder's source MAC as the source
    /// link-layer option (omitted when `src` is unspecified, as in DAD).
    pub fn neighbor_solicit(&self, src: Ipv6Addr, target: Ipv6Addr) -> Result<Vec<u8>> {
        let lladdr = if src.is_unspecified() {
            None
        } else {
            Some(self.src_mac)
        };
        let ns = NdiscRepr::NeighborSolicit {
            target_addr: target,
            lladdr,
        };
        let header = Ipv6Repr {
            hop_limit: 255,
            ..Ipv6Repr::new(src, ipv6::solicited_node(target), IpProtocol::Icmpv6, 0)
        };
        self.frame(PacketRepr::Ipv6 {
            header,
            payload: IpPayload::Icmpv6(Icmpv6Repr::Ndisc(ns)),
        })
    }

    /// A neighbour advertisement from `src` to `dst` for `target` at `lladdr`.
    pub fn neighbor_advert(
        &self,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        target: Ipv6Addr,
        flags: NeighborFlags,
        lladdr: Option<EthernetAddress>,
    ) -> Result<Vec<u8>> {
        let na = NdiscRepr::NeighborAdvert {
            flags,
            target_addr: target,
            lladdr,
        };
        let header = Ipv6Repr {
            hop_limit: 255,
            ..Ipv6Repr::new(src, dst, IpProtocol::Icmpv6, 0)
        };
        self.frame(PacketRepr::Ipv6 {
            header,
            payload: IpPayload::Icmpv6(Icmpv6Repr::Ndisc(na)),
        })
    }

    /// ICMPv4 "fragmentation needed" from `router` to `to` about `inv`.
    pub fn frag_needed(
        &self,
        router: Ipv4Addr,
        to: Ipv4Addr,
        mtu: u16,
        inv: &Invoking,
    ) -> Result<Vec<u8>> {
        let (IpAddr::V4(s), IpAddr::V4(d)) = (inv.src, inv.dst) else {
            return Err(Error::Malformed);
        };
        let l4 = inv.l4_bytes();
        let header = Ipv4Repr::new(s, d, inv.protocol, 1480);
        let icmp = Icmpv4Repr::DstUnreachable {
            reason: Icmpv4DstUnreachable::FragRequired,
            mtu,
            header,
            data: &l4,
        };
        self.ip(router.into(), to.into(), IpPayload::Icmpv4(icmp))
    }

    /// ICMPv6 "packet too big" from `router` to `to` about `inv`.
    pub fn packet_too_big(
        &self,
        router: Ipv6Addr,
        to: Ipv6Addr,
        mtu: u32,
        inv: &Invoking,
    ) -> Result<Vec<u8>> {
        let (IpAddr::V6(s), IpAddr::V6(d)) = (inv.src, inv.dst) else {
            return Err(Error::Malformed);
        };
        let l4 = inv.l4_bytes();
        let header = Ipv6Repr::new(s, d, inv.protocol, 1440);
        let icmp = Icmpv6Repr::PacketTooBig {
            mtu,
            header,
            data: &l4,
        };
        self.ip(router.into(), to.into(), IpPayload::Icmpv6(icmp))
    }

    /// An IPv4 fragment of a datagram of `protocol`: `data` is the fragment
    /// payload (starting with the L4 header when `offset` is 0).
    pub fn ipv4_fragment(
        &self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: IpProtocol,
        offset: u16,
        more: bool,
        data: &[u8],
    ) -> Result<Vec<u8>> {
        let header = Ipv4Repr {
            dont_frag: false,
            more_frags: more,
            frag_offset: offset,
            ident: 0x4242,
            ..Ipv4Repr::new(src, dst, protocol, 0)
        };
        self.frame(PacketRepr::Ipv4 {
            header,
            payload: IpPayload::Raw { protocol, data },
        })
    }

    /// An IPv6 fragment (one fragment header, no other extension header).
    pub fn ipv6_fragment(
        &self,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        protocol: IpProtocol,
        offset: u16,
        more: bool,
        data: &[u8],
    ) -> Result<Vec<u8>> {
        let mut body = vec![0u8; 8 + data.len()];
        FragmentRepr {
            next_header: protocol,
            frag_offset: offset,
            more_frags: more,
            ident: 0x4242,
        }
        .emit(&mut body)?;
        body[8..].copy_from_slice(data);
        let header = Ipv6Repr::new(src, dst, IpProtocol::Ipv6Frag, 0);
        self.frame(PacketRepr::Ipv6 {
            header,
            payload: IpPayload::Raw {
                protocol: IpProtocol::Ipv6Frag,
                data: &body,
            },
        })
    }
}

/// The first `len` bytes of a TCP or UDP header with these ports (for
/// first fragments), checksum left zero.
pub fn l4_header(protocol: IpProtocol, src_port: u16, dst_port: u16, datagram_len: u16) -> Vec<u8> {
    let mut h = match protocol {
        IpProtocol::Tcp => vec![0u8; 20],
        _ => vec![0u8; 8],
    };
    h[0..2].copy_from_slice(&src_port.to_be_bytes());
    h[2..4].copy_from_slice(&dst_port.to_be_bytes());
    match protocol {
        IpProtocol::Tcp => {
            h[12] = 0x50;
            h[13] = TcpFlags::ACK.0;
        }
        _ => h[4..6].copy_from_slice(&datagram_len.to_be_bytes()),
    }
    h
}
