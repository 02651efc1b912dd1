//! ICMPv6 (RFC 4443): echo, destination unreachable, packet too big, time
//! exceeded, and neighbour discovery (see [`crate::ndisc`]).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Type      |     Code      |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | echo:  Identifier             |        Sequence Number        |
//! | PTB:   MTU                                                    |
//! | NS/NA: flags (R S O) + reserved                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | errors: as much of the invoking packet as fits the min. MTU   |
//! | NS/NA: target address (16 bytes), then options                |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The checksum covers the IPv6 pseudo-header.

use core::net::Ipv6Addr;

use crate::ip::IpProtocol;
use crate::ipv6::{self, Ipv6Repr};
use crate::ndisc::NdiscRepr;
use crate::{
    be16, be32, checksum, enum_with_unknown, put16, put32, Error, Result, VERIFY_CHECKSUMS,
};

enum_with_unknown! {
    /// ICMPv6 message type.
    pub enum Icmpv6Message(u8) {
        DstUnreachable = 1,
        PacketTooBig = 2,
        TimeExceeded = 3,
        ParamProblem = 4,
        EchoRequest = 128,
        EchoReply = 129,
        MldQuery = 130,
        MldReport = 131,
        RouterSolicit = 133,
        RouterAdvert = 134,
        NeighborSolicit = 135,
        NeighborAdvert = 136,
        Redirect = 137,
        Mldv2Report = 143,
    }
}

impl Icmpv6Message {
    /// Error messages (types 0..=127).
    pub fn is_error(self) -> bool {
        u8::from(self) < 128
    }
}

enum_with_unknown! {
    /// Codes of "destination unreachable".
    pub enum Icmpv6DstUnreachable(u8) {
        NoRoute = 0,
        AdminProhibit = 1,
        BeyondScope = 2,
        AddrUnreachable = 3,
        PortUnreachable = 4,
        FailedPolicy = 5,
        RejectRoute = 6,
    }
}

/// Length of the ICMPv6 header (type, code, checksum, 4 bytes of rest).
pub const HEADER_LEN: usize = 8;

/// A read/write view of an ICMPv6 message.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    pub(crate) buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer and checks its length.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks for the 8-byte header, and for neighbour solicitations and
    /// advertisements the 16-byte target too. After this succeeds no
    /// accessor panics.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let need = match self.msg_type() {
            Icmpv6Message::NeighborSolicit | Icmpv6Message::NeighborAdvert => 24,
            _ => HEADER_LEN,
        };
        if len < need {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Message type.
    pub fn msg_type(&self) -> Icmpv6Message {
        Icmpv6Message::from(self.buffer.as_ref()[0])
    }
    /// Code.
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }
    /// Echo identifier.
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }
    /// Echo sequence number.
    pub fn echo_seq_no(&self) -> u16 {
        be16(self.buffer.as_ref(), 6)
    }
    /// MTU of "packet too big".
    pub fn pkt_too_big_mtu(&self) -> u32 {
        be32(self.buffer.as_ref(), 4)
    }
    /// Byte 4 (neighbour advertisement flags R, S, O in the top bits).
    pub fn nd_flags(&self) -> u8 {
        self.buffer.as_ref()[4]
    }
    /// Target address of a neighbour solicitation / advertisement (bytes
    /// 8..24; only guaranteed present for those types).
    pub fn nd_target(&self) -> Ipv6Addr {
        ipv6::addr(&self.buffer.as_ref()[8..24])
    }
    /// Bytes after the 8-byte header.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
    /// Verifies the checksum over the pseudo-header and the whole buffer.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let d = self.buffer.as_ref();
        let ph = checksum::pseudo_header_v6(src, dst, IpProtocol::Icmpv6, d.len() as u32);
        checksum::combine(&[ph, checksum::data(d)]) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the type.
    pub fn set_msg_type(&mut self, v: Icmpv6Message) {
        self.buffer.as_mut()[0] = v.into();
    }
    /// Sets the code.
    pub fn set_msg_code(&mut self, v: u8) {
        self.buffer.as_mut()[1] = v;
    }
    /// Sets bytes 4..6.
    pub fn set_echo_ident(&mut self, v: u16) {
        put16(self.buffer.as_mut(), 4, v);
    }
    /// Sets bytes 6..8.
    pub fn set_echo_seq_no(&mut self, v: u16) {
        put16(self.buffer.as_mut(), 6, v);
    }
    /// Sets bytes 4..8 (PTB MTU, or NS/NA flags + reserved).
    pub fn set_rest(&mut self, v: u32) {
        put32(self.buffer.as_mut(), 4, v);
    }
    /// Sets the NS/NA target address.
    pub fn set_nd_target(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[8..24].copy_from_slice(&a.octets());
    }
    /// Recomputes the checksum.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        put16(self.buffer.as_mut(), 2, 0);
        let d = self.buffer.as_ref();
        let ph = checksum::pseudo_header_v6(src, dst, IpProtocol::Icmpv6, d.len() as u32);
        let sum = !checksum::combine(&[ph, checksum::data(d)]);
        put16(self.buffer.as_mut(), 2, sum);
    }
    /// Mutable data after the header.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// Parses an IPv6 header embedded in an ICMPv6 error (the payload length
/// describes the original packet, which may be cut). Returns the header and
/// the bytes after it.
pub fn parse_embedded(buf: &[u8]) -> Result<(Ipv6Repr, &[u8])> {
    if buf.len() < ipv6::HEADER_LEN {
        return Err(Error::Truncated);
    }
    let p = ipv6::Packet::new_unchecked(buf);
    if p.version() != 6 {
        return Err(Error::Malformed);
    }
    let header = Ipv6Repr {
        src_addr: p.src_addr(),
        dst_addr: p.dst_addr(),
        next_header: p.next_header(),
        payload_len: usize::from(p.payload_len()),
        hop_limit: p.hop_limit(),
        traffic_class: p.traffic_class(),
        flow_label: p.flow_label(),
    };
    Ok((header, &buf[ipv6::HEADER_LEN..]))
}

/// High-level ICMPv6 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv6Repr<'a> {
    /// Echo request.
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data.
        data: &'a [u8],
    },
    /// Echo reply.
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data.
        data: &'a [u8],
    },
    /// Destination unreachable.
    DstUnreachable {
        /// Code.
        reason: Icmpv6DstUnreachable,
        /// The invoking packet's header.
        header: Ipv6Repr,
        /// The bytes that followed it.
        data: &'a [u8],
    },
    /// Packet too big (PMTU discovery, RFC 8201).
    PacketTooBig {
        /// MTU of the next hop.
        mtu: u32,
        /// The invoking packet's header.
        header: Ipv6Repr,
        /// The bytes that followed it.
        data: &'a [u8],
    },
    /// Time exceeded.
    TimeExceeded {
        /// Code (0 hop limit, 1 reassembly).
        code: u8,
        /// The invoking packet's header.
        header: Ipv6Repr,
        /// The bytes that followed it.
        data: &'a [u8],
    },
    /// Neighbour solicitation or advertisement.
    Ndisc(NdiscRepr),
}

impl<'a> Icmpv6Repr<'a> {
    /// Parses a message (the buffer is exactly the message), verifying the
    /// checksum. Other types are `Unsupported`.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        src: Ipv6Addr,
        dst: Ipv6Addr,
        p: &Packet<&'a T>,
    ) -> Result<Icmpv6Repr<'a>> {
        p.check_len()?;
        if VERIFY_CHECKSUMS && !p.verify_checksum(src, dst) {
            return Err(Error::Checksum);
        }
        let data: &'a [u8] = &p.buffer.as_ref()[HEADER_LEN..];
        match (p.msg_type(), p.msg_code()) {
            (Icmpv6Message::EchoRequest, 0) => Ok(Icmpv6Repr::EchoRequest {
                ident: p.echo_ident(),
                seq_no: p.echo_seq_no(),
                data,
            }),
            (Icmpv6Message::EchoReply, 0) => Ok(Icmpv6Repr::EchoReply {
                ident: p.echo_ident(),
                seq_no: p.echo_seq_no(),
                data,
            }),
            (Icmpv6Message::DstUnreachable, code) => {
                let (header, data) = parse_embedded(data)?;
                Ok(Icmpv6Repr::DstUnreachable {
                    reason: code.into(),
                    header,
                    data,
                })
            }
            (Icmpv6Message::PacketTooBig, 0) => {
                let (header, data) = parse_embedded(data)?;
                Ok(Icmpv6Repr::PacketTooBig {
                    mtu: p.pkt_too_big_mtu(),
                    header,
                    data,
                })
            }
            (Icmpv6Message::TimeExceeded, code) => {
                let (header, data) = parse_embedded(data)?;
                Ok(Icmpv6Repr::TimeExceeded { code, header, data })
            }
            (Icmpv6Message::NeighborSolicit | Icmpv6Message::NeighborAdvert, _) => {
                Ok(Icmpv6Repr::Ndisc(NdiscRepr::parse(p)?))
            }
            _ => Err(Error::Unsupported),
        }
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            Icmpv6Repr::EchoRequest { data, .. } | Icmpv6Repr::EchoReply { data, .. } => {
                HEADER_LEN + data.len()
            }
            Icmpv6Repr::DstUnreachable { data, .. }
            | Icmpv6Repr::PacketTooBig { data, .. }
            | Icmpv6Repr::TimeExceeded { data, .. } => HEADER_LEN + ipv6::HEADER_LEN + data.len(),
            Icmpv6Repr::Ndisc(nd) => nd.buffer_len(),
        }
    }

    /// Writes the message with its checksum at the start of `buf`.
    pub fn emit(&self, src: Ipv6Addr, dst: Ipv6Addr, buf: &mut [u8]) -> Result<()> {
        let len = self.buffer_len();
        let d = buf.get_mut(..len).ok_or(Error::Truncated)?;
        let mut p = Packet::new_unchecked(d);
        let embedded = |p: &mut Packet<&mut [u8]>, header: &Ipv6Repr, data: &[u8]| -> Result<()> {
            let out = p.data_mut();
            header.emit(out)?;
            out[ipv6::HEADER_LEN..].copy_from_slice(data);
            Ok(())
        };
        match *self {
            Icmpv6Repr::EchoRequest {
                ident,
                seq_no,
                data,
            }
            | Icmpv6Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => {
                let ty = if matches!(self, Icmpv6Repr::EchoRequest { .. }) {
                    Icmpv6Message::EchoRequest
                } else {
                    Icmpv6Message::EchoReply
                };
                p.set_msg_type(ty);
                p.set_msg_code(0);
                p.set_echo_ident(ident);
                p.set_echo_seq_no(seq_no);
                p.data_mut().copy_from_slice(data);
            }
            Icmpv6Repr::DstUnreachable {
                reason,
                header,
                data,
            } => {
                p.set_msg_type(Icmpv6Message::DstUnreachable);
                p.set_msg_code(reason.into());
                p.set_rest(0);
                embedded(&mut p, &header, data)?;
            }
            Icmpv6Repr::PacketTooBig { mtu, header, data } => {
                p.set_msg_type(Icmpv6Message::PacketTooBig);
                p.set_msg_code(0);
                p.set_rest(mtu);
                embedded(&mut p, &header, data)?;
            }
            Icmpv6Repr::TimeExceeded { code, header, data } => {
                p.set_msg_type(Icmpv6Message::TimeExceeded);
                p.set_msg_code(code);
                p.set_rest(0);
                embedded(&mut p, &header, data)?;
            }
            Icmpv6Repr::Ndisc(nd) => nd.emit(&mut p)?,
        }
        p.fill_checksum(src, dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn echo_round_trip_and_fixture() {
        let (s, d) = (a("2001:db8::64"), a("2001:db8::a"));
        let r = Icmpv6Repr::EchoRequest {
            ident: 7,
            seq_no: 1,
            data: b"hi",
        };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(s, d, &mut b).unwrap();
        assert_eq!(&b[..2], &[128, 0]);
        assert_eq!(&b[4..], &[0, 7, 0, 1, b'h', b'i']);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum(s, d));
        assert!(!p.verify_checksum(d, d));
        assert_eq!(Icmpv6Repr::parse(s, d, &p).unwrap(), r);
    }

    #[test]
    fn packet_too_big_round_trip() {
        let inner = Ipv6Repr::new(a("2001:db8::a"), a("2001:db8:1::7"), IpProtocol::Tcp, 1440);
        let r = Icmpv6Repr::PacketTooBig {
            mtu: 1280,
            header: inner,
            data: &[0x01, 0xbb, 0xa4, 0x10, 0, 0, 0, 1],
        };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(a("2001:db8::1"), a("2001:db8::a"), &mut b).unwrap();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            (p.msg_type(), p.pkt_too_big_mtu()),
            (Icmpv6Message::PacketTooBig, 1280)
        );
        assert!(p.msg_type().is_error() && !Icmpv6Message::EchoReply.is_error());
        assert_eq!(
            Icmpv6Repr::parse(a("2001:db8::1"), a("2001:db8::a"), &p).unwrap(),
            r
        );
    }

    #[test]
    fn errors_round_trip() {
        let inner = Ipv6Repr::new(a("::1"), a("::2"), IpProtocol::Udp, 8);
        for r in [
            Icmpv6Repr::DstUnreachable {
                reason: Icmpv6DstUnreachable::PortUnreachable,
                header: inner,
                data: &[1; 8],
            },
            Icmpv6Repr::TimeExceeded {
                code: 1,
                header: inner,
                data: &[],
            },
        ] {
            let mut b = vec![0u8; r.buffer_len()];
            r.emit(a("::3"), a("::4"), &mut b).unwrap();
            assert_eq!(
                Icmpv6Repr::parse(a("::3"), a("::4"), &Packet::new_checked(&b[..]).unwrap())
                    .unwrap(),
                r
            );
        }
    }

    #[test]
    fn rejects() {
        assert_eq!(
            Packet::new_checked(&[128u8, 0, 0, 0, 0, 0, 0][..]).unwrap_err(),
            Error::Truncated
        );
        // NS shorter than its target.
        assert_eq!(
            Packet::new_checked(&[135u8; 23][..]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(parse_embedded(&[0x40; 40]).unwrap_err(), Error::Malformed);
        assert_eq!(parse_embedded(&[0x60; 39]).unwrap_err(), Error::Truncated);
    }
}
