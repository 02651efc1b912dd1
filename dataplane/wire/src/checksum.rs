//! The Internet checksum (RFC 1071) and the IPv4 / IPv6 pseudo-headers
//! (RFC 793 section 3.1, RFC 8200 section 8.1).
//!
//! [`data`] and [`combine`] return the folded one's-complement *sum*; callers
//! store `!sum` in the packet, and a packet verifies when the sum over it
//! (checksum field included) is `0xffff`.

use core::net::{Ipv4Addr, Ipv6Addr};

use crate::IpProtocol;

/// Folds a 32-bit accumulator into 16 bits with end-around carry.
#[inline]
const fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// One's-complement sum of `data` as big-endian 16-bit words (an odd trailing
/// byte is padded with zero).
pub fn data(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]))
            + u64::from(u16::from_be_bytes([c[2], c[3]]))
            + u64::from(u16::from_be_bytes([c[4], c[5]]))
            + u64::from(u16::from_be_bytes([c[6], c[7]]));
    }
    let rest = chunks.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        acc += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        acc += u64::from(*last) << 8;
    }
    fold(acc)
}

/// One's-complement sum of partial sums.
pub fn combine(parts: &[u16]) -> u16 {
    fold(parts.iter().map(|&p| u64::from(p)).sum())
}

/// Sum over the IPv4 pseudo-header (RFC 793).
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, length: u32) -> u16 {
    let mut hdr = [0u8; 12];
    hdr[0..4].copy_from_slice(&src.octets());
    hdr[4..8].copy_from_slice(&dst.octets());
    hdr[9] = protocol.into();
    // An IPv4 upper-layer length always fits 16 bits; truncation is intended.
    hdr[10..12].copy_from_slice(&(length as u16).to_be_bytes());
    data(&hdr)
}

/// Sum over the IPv6 pseudo-header (RFC 8200 section 8.1).
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, protocol: IpProtocol, length: u32) -> u16 {
    let mut hdr = [0u8; 40];
    hdr[0..16].copy_from_slice(&src.octets());
    hdr[16..32].copy_from_slice(&dst.octets());
    hdr[32..36].copy_from_slice(&length.to_be_bytes());
    hdr[39] = protocol.into();
    data(&hdr)
}

/// Pseudo-header sum for either family; mixed families are a caller bug and
/// yield the IPv6 form over v4-mapped addresses.
pub fn pseudo_header(
    src: core::net::IpAddr,
    dst: core::net::IpAddr,
    protocol: IpProtocol,
    length: u32,
) -> u16 {
    use core::net::IpAddr;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => pseudo_header_v4(s, d, protocol, length),
        (s, d) => pseudo_header_v6(to_v6(s), to_v6(d), protocol, length),
    }
}

fn to_v6(a: core::net::IpAddr) -> Ipv6Addr {
    match a {
        core::net::IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        core::net::IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        assert_eq!(
            data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(data(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(data(&[]), 0);
    }

    #[test]
    fn long_input_matches_naive_sum() {
        let buf: Vec<u8> = (0..1001u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut naive: u64 = 0;
        for p in buf.chunks(2) {
            naive += u64::from(p[0]) << 8 | u64::from(*p.get(1).unwrap_or(&0));
        }
        assert_eq!(data(&buf), fold(naive));
    }

    #[test]
    fn combine_folds_carry() {
        assert_eq!(combine(&[0xffff, 0x0001]), 0x0001);
        assert_eq!(combine(&[0x8000, 0x8000]), 0x0001);
    }
}
