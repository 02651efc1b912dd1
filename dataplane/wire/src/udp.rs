//! UDP (RFC 768).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Source Port          |       Destination Port        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |            Length             |           Checksum            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The checksum covers the IPv4/IPv6 pseudo-header; zero means "none" over
//! IPv4 only.

use core::net::IpAddr;

use crate::ip::IpProtocol;
use crate::{be16, checksum, put16, Error, Result, VERIFY_CHECKSUMS};

/// Header length.
pub const HEADER_LEN: usize = 8;

/// A read/write view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer and checks its lengths.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the buffer holds the header and the length field's bytes,
    /// and that the length field covers the header. After this succeeds no
    /// accessor panics.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let field = usize::from(self.length());
        if field < HEADER_LEN {
            Err(Error::Malformed)
        } else if field > len {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }
    /// Length field (header + payload).
    pub fn length(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 6)
    }
    /// Payload bounded by the length field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.length())]
    }
    /// Verifies the checksum against the pseudo-header (a zero checksum over
    /// IPv4 means none and passes).
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        if src.is_ipv4() && self.checksum() == 0 {
            return true;
        }
        let d = &self.buffer.as_ref()[..usize::from(self.length())];
        let ph = checksum::pseudo_header(src, dst, IpProtocol::Udp, u32::from(self.length()));
        checksum::combine(&[ph, checksum::data(d)]) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), 0, v);
    }
    /// Sets the destination port.
    pub fn set_dst_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), 2, v);
    }
    /// Sets the length field.
    pub fn set_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), 4, v);
    }
    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), 6, v);
    }
    /// Computes and stores the checksum (0 is sent as 0xffff).
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        self.set_checksum(0);
        let len = self.length();
        let d = &self.buffer.as_ref()[..usize::from(len)];
        let ph = checksum::pseudo_header(src, dst, IpProtocol::Udp, u32::from(len));
        let sum = !checksum::combine(&[ph, checksum::data(d)]);
        self.set_checksum(if sum == 0 { 0xffff } else { sum });
    }
    /// Mutable payload.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.length());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// High-level UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl UdpRepr {
    /// Parses a datagram, verifying its checksum.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>, src: IpAddr, dst: IpAddr) -> Result<UdpRepr> {
        p.check_len()?;
        if p.dst_port() == 0 {
            return Err(Error::Malformed);
        }
        if VERIFY_CHECKSUMS && !p.verify_checksum(src, dst) {
            return Err(Error::Checksum);
        }
        Ok(UdpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
        })
    }

    /// Bytes [`emit`](Self::emit) writes for `payload_len` bytes of payload.
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }

    /// Writes header, payload and checksum at the start of `buf`.
    pub fn emit(&self, buf: &mut [u8], src: IpAddr, dst: IpAddr, payload: &[u8]) -> Result<()> {
        let total = self.buffer_len(payload.len());
        let len = u16::try_from(total).map_err(|_| Error::Malformed)?;
        let d = buf.get_mut(..total).ok_or(Error::Truncated)?;
        d[HEADER_LEN..].copy_from_slice(payload);
        let mut p = Packet::new_unchecked(d);
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len(len);
        p.fill_checksum(src, dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: IpAddr = IpAddr::V4(core::net::Ipv4Addr::new(192, 168, 1, 1));
    const DST: IpAddr = IpAddr::V4(core::net::Ipv4Addr::new(192, 168, 1, 2));

    // smoltcp's fixture: checksum 0x124d over these addresses.
    static PACKET: [u8; 12] = [
        0xbf, 0x00, 0x00, 0x35, 0x00, 0x0c, 0x12, 0x4d, 0xaa, 0x00, 0x00, 0xff,
    ];

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(
            (p.src_port(), p.dst_port(), p.length(), p.checksum()),
            (48896, 53, 12, 0x124d)
        );
        assert_eq!(p.payload(), &[0xaa, 0x00, 0x00, 0xff]);
        assert!(p.verify_checksum(SRC, DST));
        assert_eq!(
            UdpRepr::parse(&p, SRC, DST).unwrap(),
            UdpRepr {
                src_port: 48896,
                dst_port: 53
            }
        );
    }

    #[test]
    fn construct() {
        let mut b = [0u8; 12];
        UdpRepr {
            src_port: 48896,
            dst_port: 53,
        }
        .emit(&mut b, SRC, DST, &[0xaa, 0x00, 0x00, 0xff])
        .unwrap();
        assert_eq!(b, PACKET);
    }

    #[test]
    fn ipv6_checksum_and_zero() {
        let s: IpAddr = "2001:db8::1".parse().unwrap();
        let d: IpAddr = "2001:db8::2".parse().unwrap();
        let mut b = [0u8; 11];
        UdpRepr {
            src_port: 1,
            dst_port: 2,
        }
        .emit(&mut b, s, d, b"abc")
        .unwrap();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum(s, d));
        assert!(!p.verify_checksum(d, SRC));
        // Zero checksum: accepted over IPv4 only.
        let mut z = PACKET;
        z[6..8].copy_from_slice(&[0, 0]);
        assert!(Packet::new_unchecked(&z[..]).verify_checksum(SRC, DST));
        assert!(!Packet::new_unchecked(&z[..]).verify_checksum(s, d));
    }

    #[test]
    fn rejects() {
        assert_eq!(
            Packet::new_checked(&PACKET[..7]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Packet::new_checked(&PACKET[..11]).unwrap_err(),
            Error::Truncated
        );
        let mut b = PACKET;
        b[5] = 4;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        if VERIFY_CHECKSUMS {
            let mut b = PACKET;
            b[8] = 0;
            assert_eq!(
                UdpRepr::parse(&Packet::new_unchecked(&b[..]), SRC, DST),
                Err(Error::Checksum)
            );
        }
    }
}
