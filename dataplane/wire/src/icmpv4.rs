//! ICMPv4 (RFC 792, RFC 1191): echo, destination unreachable (with the
//! next-hop MTU of "fragmentation needed") and time exceeded.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Type      |     Code      |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | echo:     Identifier          |        Sequence Number        |
//! | unreach:  unused              |  Next-Hop MTU (code 4)        |
//! | time ex.: unused                                              |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | echo: data ...  errors: IP header + first 8 bytes of datagram |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use crate::ipv4::{self, Ipv4Repr};
use crate::{be16, checksum, enum_with_unknown, put16, Error, Result, VERIFY_CHECKSUMS};

enum_with_unknown! {
    /// ICMPv4 message type.
    pub enum Icmpv4Message(u8) {
        EchoReply = 0,
        DstUnreachable = 3,
        Redirect = 5,
        EchoRequest = 8,
        RouterAdvert = 9,
        RouterSolicit = 10,
        TimeExceeded = 11,
        ParamProblem = 12,
        Timestamp = 13,
        TimestampReply = 14,
    }
}

impl Icmpv4Message {
    /// Error messages carry the offending datagram's header.
    pub fn is_error(self) -> bool {
        matches!(
            self,
            Icmpv4Message::DstUnreachable
                | Icmpv4Message::Redirect
                | Icmpv4Message::TimeExceeded
                | Icmpv4Message::ParamProblem
        )
    }
}

enum_with_unknown! {
    /// Codes of "destination unreachable".
    pub enum Icmpv4DstUnreachable(u8) {
        NetUnreachable = 0,
        HostUnreachable = 1,
        ProtoUnreachable = 2,
        PortUnreachable = 3,
        /// Fragmentation needed and DF set (PMTU discovery, RFC 1191).
        FragRequired = 4,
        SrcRouteFailed = 5,
        NetProhibited = 9,
        HostProhibited = 10,
        CommProhibited = 13,
    }
}

enum_with_unknown! {
    /// Codes of "time exceeded".
    pub enum Icmpv4TimeExceeded(u8) {
        TtlExpired = 0,
        FragExpired = 1,
    }
}

/// Length of the ICMP header (type, code, checksum, 4 bytes of rest).
pub const HEADER_LEN: usize = 8;

/// A read/write view of an ICMPv4 message.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
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

    /// Checks for the 8-byte header. After this succeeds no accessor panics.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Message type.
    pub fn msg_type(&self) -> Icmpv4Message {
        Icmpv4Message::from(self.buffer.as_ref()[0])
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
    /// Next-hop MTU of "fragmentation needed" (0 from pre-RFC 1191 routers).
    pub fn next_hop_mtu(&self) -> u16 {
        be16(self.buffer.as_ref(), 6)
    }
    /// Bytes after the 8-byte header (echo data or the embedded datagram).
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
    /// Verifies the checksum over the whole buffer.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the type.
    pub fn set_msg_type(&mut self, v: Icmpv4Message) {
        self.buffer.as_mut()[0] = v.into();
    }
    /// Sets the code.
    pub fn set_msg_code(&mut self, v: u8) {
        self.buffer.as_mut()[1] = v;
    }
    /// Sets bytes 4..6 (echo identifier).
    pub fn set_echo_ident(&mut self, v: u16) {
        put16(self.buffer.as_mut(), 4, v);
    }
    /// Sets bytes 6..8 (echo sequence number / next-hop MTU).
    pub fn set_echo_seq_no(&mut self, v: u16) {
        put16(self.buffer.as_mut(), 6, v);
    }
    /// Recomputes the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        put16(self.buffer.as_mut(), 2, 0);
        let sum = !checksum::data(self.buffer.as_ref());
        put16(self.buffer.as_mut(), 2, sum);
    }
    /// Mutable data after the header.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// High-level ICMPv4 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv4Repr<'a> {
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
        reason: Icmpv4DstUnreachable,
        /// Next-hop MTU (meaningful for `FragRequired`, zero otherwise).
        mtu: u16,
        /// The offending datagram's header.
        header: Ipv4Repr,
        /// The bytes that followed it (at least the first 8).
        data: &'a [u8],
    },
    /// Time exceeded.
    TimeExceeded {
        /// Code.
        reason: Icmpv4TimeExceeded,
        /// The offending datagram's header.
        header: Ipv4Repr,
        /// The bytes that followed it.
        data: &'a [u8],
    },
}

/// Parses an IPv4 header embedded in an ICMP error: only the header must be
/// present (the total length describes the original datagram). Returns the
/// header and the bytes after it. The checksum is not verified.
pub fn parse_embedded(buf: &[u8]) -> Result<(Ipv4Repr, &[u8])> {
    if buf.len() < ipv4::HEADER_LEN {
        return Err(Error::Truncated);
    }
    let p = ipv4::Packet::new_unchecked(buf);
    let hl = p.header_len();
    if p.version() != 4 || hl < ipv4::HEADER_LEN || usize::from(p.total_len()) < hl {
        return Err(Error::Malformed);
    }
    let rest = buf.get(hl..).ok_or(Error::Truncated)?;
    let header = Ipv4Repr {
        src_addr: p.src_addr(),
        dst_addr: p.dst_addr(),
        next_header: p.next_header(),
        payload_len: usize::from(p.total_len()) - hl,
        hop_limit: p.hop_limit(),
        dscp_ecn: p.dscp_ecn(),
        ident: p.ident(),
        dont_frag: p.dont_frag(),
        more_frags: p.more_frags(),
        frag_offset: p.frag_offset(),
    };
    Ok((header, rest))
}

impl<'a> Icmpv4Repr<'a> {
    /// Parses a message (the buffer is exactly the message), verifying the
    /// checksum. Other message types are `Unsupported`.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(p: &Packet<&'a T>) -> Result<Icmpv4Repr<'a>> {
        p.check_len()?;
        if VERIFY_CHECKSUMS && !p.verify_checksum() {
            return Err(Error::Checksum);
        }
        let data: &'a [u8] = &p.buffer.as_ref()[HEADER_LEN..];
        match (p.msg_type(), p.msg_code()) {
            (Icmpv4Message::EchoRequest, 0) => Ok(Icmpv4Repr::EchoRequest {
                ident: p.echo_ident(),
                seq_no: p.echo_seq_no(),
                data,
            }),
            (Icmpv4Message::EchoReply, 0) => Ok(Icmpv4Repr::EchoReply {
                ident: p.echo_ident(),
                seq_no: p.echo_seq_no(),
                data,
            }),
            (Icmpv4Message::DstUnreachable, code) => {
                let (header, data) = parse_embedded(data)?;
                let reason = Icmpv4DstUnreachable::from(code);
                let mtu = if reason == Icmpv4DstUnreachable::FragRequired {
                    p.next_hop_mtu()
                } else {
                    0
                };
                Ok(Icmpv4Repr::DstUnreachable {
                    reason,
                    mtu,
                    header,
                    data,
                })
            }
            (Icmpv4Message::TimeExceeded, code) => {
                let (header, data) = parse_embedded(data)?;
                Ok(Icmpv4Repr::TimeExceeded {
                    reason: Icmpv4TimeExceeded::from(code),
                    header,
                    data,
                })
            }
            _ => Err(Error::Unsupported),
        }
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            Icmpv4Repr::EchoRequest { data, .. } | Icmpv4Repr::EchoReply { data, .. } => {
                HEADER_LEN + data.len()
            }
            Icmpv4Repr::DstUnreachable { data, .. } | Icmpv4Repr::TimeExceeded { data, .. } => {
                HEADER_LEN + ipv4::HEADER_LEN + data.len()
            }
        }
    }

    /// Writes the message with its checksum at the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let len = self.buffer_len();
        let d = buf.get_mut(..len).ok_or(Error::Truncated)?;
        let mut p = Packet::new_unchecked(d);
        match *self {
            Icmpv4Repr::EchoRequest {
                ident,
                seq_no,
                data,
            }
            | Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => {
                let ty = if matches!(self, Icmpv4Repr::EchoRequest { .. }) {
                    Icmpv4Message::EchoRequest
                } else {
                    Icmpv4Message::EchoReply
                };
                p.set_msg_type(ty);
                p.set_msg_code(0);
                p.set_echo_ident(ident);
                p.set_echo_seq_no(seq_no);
                p.data_mut().copy_from_slice(data);
            }
            Icmpv4Repr::DstUnreachable {
                reason,
                mtu,
                header,
                data,
            } => {
                p.set_msg_type(Icmpv4Message::DstUnreachable);
                p.set_msg_code(reason.into());
                p.set_echo_ident(0);
                p.set_echo_seq_no(mtu);
                emit_embedded(p.data_mut(), &header, data)?;
            }
            Icmpv4Repr::TimeExceeded {
                reason,
                header,
                data,
            } => {
                p.set_msg_type(Icmpv4Message::TimeExceeded);
                p.set_msg_code(reason.into());
                p.set_echo_ident(0);
                p.set_echo_seq_no(0);
                emit_embedded(p.data_mut(), &header, data)?;
            }
        }
        p.fill_checksum();
        Ok(())
    }
}

fn emit_embedded(out: &mut [u8], header: &Ipv4Repr, data: &[u8]) -> Result<()> {
    header.emit(out)?;
    out[ipv4::HEADER_LEN..].copy_from_slice(data);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IpProtocol;
    use core::net::Ipv4Addr;

    // Echo request id 0x1234 seq 0xabcd, data "ping" (smoltcp-style fixture; checksum computed).
    fn echo_bytes() -> Vec<u8> {
        let mut b = vec![
            0x08, 0x00, 0, 0, 0x12, 0x34, 0xab, 0xcd, b'p', b'i', b'n', b'g',
        ];
        let s = !checksum::data(&b);
        b[2..4].copy_from_slice(&s.to_be_bytes());
        b
    }

    #[test]
    fn echo_deconstruct_construct() {
        let b = echo_bytes();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.msg_type(), Icmpv4Message::EchoRequest);
        assert_eq!((p.echo_ident(), p.echo_seq_no()), (0x1234, 0xabcd));
        assert!(p.verify_checksum());
        let r = Icmpv4Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Icmpv4Repr::EchoRequest {
                ident: 0x1234,
                seq_no: 0xabcd,
                data: b"ping"
            }
        );
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(&mut out).unwrap();
        assert_eq!(out, b);
    }

    #[test]
    fn frag_needed_with_embedded_header() {
        // The VIP sent 1500 bytes to a client with DF; a router says MTU 1400.
        let inner = Ipv4Repr::new(
            Ipv4Addr::new(198, 18, 0, 10),
            Ipv4Addr::new(203, 0, 113, 7),
            IpProtocol::Tcp,
            1480,
        );
        let ports = [0x00, 0x50, 0x9c, 0x40, 0, 0, 0, 1];
        let r = Icmpv4Repr::DstUnreachable {
            reason: Icmpv4DstUnreachable::FragRequired,
            mtu: 1400,
            header: inner,
            data: &ports,
        };
        let mut out = vec![0u8; r.buffer_len()];
        assert_eq!(out.len(), 36);
        r.emit(&mut out).unwrap();
        let p = Packet::new_checked(&out[..]).unwrap();
        assert_eq!(
            (p.msg_type(), p.msg_code(), p.next_hop_mtu()),
            (Icmpv4Message::DstUnreachable, 4, 1400)
        );
        assert!(p.msg_type().is_error());
        assert_eq!(Icmpv4Repr::parse(&p).unwrap(), r);
    }

    #[test]
    fn time_exceeded_round_trip() {
        let inner = Ipv4Repr::new(
            Ipv4Addr::new(1, 2, 3, 4),
            Ipv4Addr::new(5, 6, 7, 8),
            IpProtocol::Udp,
            8,
        );
        let r = Icmpv4Repr::TimeExceeded {
            reason: Icmpv4TimeExceeded::TtlExpired,
            header: inner,
            data: &[0; 8],
        };
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(&mut out).unwrap();
        assert_eq!(
            Icmpv4Repr::parse(&Packet::new_checked(&out[..]).unwrap()).unwrap(),
            r
        );
    }

    #[test]
    fn rejects() {
        assert_eq!(
            Packet::new_checked(&[8u8, 0, 0, 0, 0, 0, 0][..]).unwrap_err(),
            Error::Truncated
        );
        // Error with a truncated embedded header.
        let mut b = vec![3u8, 4, 0, 0, 0, 0, 5, 0x78, 0x45, 0, 0, 40];
        let s = !checksum::data(&b);
        b[2..4].copy_from_slice(&s.to_be_bytes());
        assert_eq!(
            Icmpv4Repr::parse(&Packet::new_checked(&b[..]).unwrap()),
            Err(Error::Truncated)
        );
        assert_eq!(parse_embedded(&[0x55; 20]).unwrap_err(), Error::Malformed);
        if VERIFY_CHECKSUMS {
            let mut b = echo_bytes();
            b[11] ^= 1;
            assert_eq!(
                Icmpv4Repr::parse(&Packet::new_checked(&b[..]).unwrap()),
                Err(Error::Checksum)
            );
        }
    }
}
