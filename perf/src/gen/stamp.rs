//! The transmit timestamp carried by every generated frame.
//!
//! The stamp is 8 bytes (the TSC at transmission, big endian) at a place that
//! every frame of the generator has, whatever its size, so that 64-byte
//! frames carry one too:
//!
//! ```text
//! TCP: sequence number (TSC bits 63..32) + acknowledgment number (31..0)
//!      compensation word: urgent pointer (URG is never set, so it means nothing)
//! UDP: payload bytes 0..8, compensation word: payload bytes 8..10
//! ```
//!
//! Writing the stamp also rewrites the compensation word so that the
//! one's-complement sum of the L4 segment, and so its checksum, stays valid
//! (RFC 1624 style incremental update, folded into a spare word instead of
//! the checksum field): a stamped frame is still a well-formed frame.

/// IPv4 EtherType.
const ETH_IPV4: u16 = 0x0800;
/// IPv6 EtherType.
const ETH_IPV6: u16 = 0x86dd;
/// 802.1Q / 802.1ad tag EtherTypes.
const ETH_VLAN: [u16; 2] = [0x8100, 0x88a8];
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// Bytes of UDP payload a stamped datagram needs (stamp + compensation word).
pub const UDP_STAMP_PAYLOAD: usize = 10;

/// Where the stamp of one frame lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StampPlace {
    /// Offset of the 8 stamp bytes.
    pub at: usize,
    /// Offset of the 2-byte compensation word.
    pub comp: usize,
}

#[inline(always)]
fn be16(frame: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]))
}

/// Finds the stamp of a TCP or UDP frame over IPv4 (not a fragment) or IPv6
/// (no extension header), untagged or with up to two VLAN tags. `None` for any
/// other frame, or one too short to hold a stamp.
#[inline]
pub fn locate(frame: &[u8]) -> Option<StampPlace> {
    let mut l3 = 14;
    let mut ethertype = be16(frame, 12)?;
    for _ in 0..2 {
        if !ETH_VLAN.contains(&ethertype) {
            break;
        }
        ethertype = be16(frame, l3 + 2)?;
        l3 += 4;
    }
    let (proto, l4) = match ethertype {
        ETH_IPV4 => {
            let vihl = *frame.get(l3)?;
            if vihl >> 4 != 4 || be16(frame, l3 + 6)? & 0x3fff != 0 {
                return None;
            }
            (*frame.get(l3 + 9)?, l3 + usize::from(vihl & 0x0f) * 4)
        }
        ETH_IPV6 => (*frame.get(l3 + 6)?, l3 + 40),
        _ => return None,
    };
    let place = match proto {
        PROTO_TCP => StampPlace { at: l4 + 4, comp: l4 + 18 },
        PROTO_UDP => StampPlace { at: l4 + 8, comp: l4 + 16 },
        _ => return None,
    };
    (place.comp + 2 <= frame.len()).then_some(place)
}

#[inline(always)]
fn ones_add(a: u32, b: u32) -> u32 {
    let s = a + b;
    (s & 0xffff) + (s >> 16)
}

/// One's-complement sum of the 16-bit words of `bytes` (even length).
#[inline(always)]
fn ones_sum(bytes: &[u8]) -> u32 {
    let mut s = 0u32;
    for w in bytes.chunks_exact(2) {
        s = ones_add(s, u32::from(u16::from_be_bytes([w[0], w[1]])));
    }
    s
}

/// Writes `value` as the stamp at `place` and keeps the L4 checksum valid.
///
/// # Panics
/// If `place` does not fit `frame` (use a place [`locate`] returned for it).
#[inline]
pub fn write(frame: &mut [u8], place: StampPlace, value: u64) {
    let old = ones_add(
        ones_sum(&frame[place.at..place.at + 8]),
        ones_sum(&frame[place.comp..place.comp + 2]),
    );
    let new_bytes = value.to_be_bytes();
    frame[place.at..place.at + 8].copy_from_slice(&new_bytes);
    // comp' = old - sum(new) in one's complement, so sum(new) + comp' == old.
    let comp = ones_add(old, !ones_sum(&new_bytes) & 0xffff);
    let comp = u16::try_from(comp & 0xffff).unwrap_or(0);
    frame[place.comp..place.comp + 2].copy_from_slice(&comp.to_be_bytes());
}

/// Reads the stamp at `place`.
///
/// # Panics
/// If `place` does not fit `frame`.
#[inline]
pub fn read_at(frame: &[u8], place: StampPlace) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&frame[place.at..place.at + 8]);
    u64::from_be_bytes(b)
}

/// Locates and reads the stamp of a received frame.
#[inline]
pub fn read(frame: &[u8]) -> Option<u64> {
    locate(frame).map(|p| read_at(frame, p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use farm_wire::gen::FrameBuilder;
    use farm_wire::{EthernetAddress, TcpFlags, VlanTag, VlanTags};
    use std::net::IpAddr;

    fn fb() -> FrameBuilder {
        FrameBuilder::new(
            EthernetAddress([2, 0, 0, 0, 0, 1]),
            EthernetAddress([2, 0, 0, 0, 0, 2]),
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn l4_checksum_ok(frame: &[u8]) -> bool {
        let s = farm_wire::summarize(frame).unwrap();
        let farm_wire::L3::Ip(ipsum) = s.l3 else { panic!("not IP") };
        let seg = &frame[ipsum.l4_offset..ipsum.l4_offset + ipsum.l4_len];
        match ipsum.l4 {
            farm_wire::L4::Tcp { .. } => farm_wire::tcp::Packet::new_checked(seg)
                .unwrap()
                .verify_checksum(ipsum.src, ipsum.dst),
            farm_wire::L4::Udp { .. } => farm_wire::udp::Packet::new_checked(seg)
                .unwrap()
                .verify_checksum(ipsum.src, ipsum.dst),
            _ => panic!("not TCP/UDP"),
        }
    }

    #[test]
    fn tcp_and_udp_v4_v6_keep_their_checksums() {
        let frames = [
            fb().tcp(ip("198.18.1.1"), ip("198.18.0.100"), 1234, 80, TcpFlags::SYN).unwrap(),
            fb().tcp(ip("2001:db8::1"), ip("2001:db8::100"), 1234, 80, TcpFlags::ACK).unwrap(),
            fb().udp(ip("198.18.1.1"), ip("198.18.0.100"), 1234, 53, &[0; 10]).unwrap(),
            fb().udp(ip("2001:db8::1"), ip("2001:db8::100"), 1234, 53, &[7; 30]).unwrap(),
            fb()
                .with_tags(VlanTags::from_slice(&[VlanTag::new(farm_wire::EtherType::Vlan, 0, false, 100)]).unwrap())
                .tcp(ip("198.18.1.1"), ip("198.18.0.100"), 1, 80, TcpFlags::FIN)
                .unwrap(),
        ];
        let mut v = 0x0123_4567_89ab_cdefu64;
        for f in frames {
            assert!(l4_checksum_ok(&f), "builder checksum");
            let place = locate(&f).expect("stamp place");
            for _ in 0..2000 {
                let mut g = f.clone();
                write(&mut g, place, v);
                assert_eq!(read(&g), Some(v));
                assert!(l4_checksum_ok(&g), "checksum after stamping {v:#x}");
                assert_eq!(g.len(), f.len());
                // Only the stamp and the compensation word changed.
                for (i, (a, b)) in f.iter().zip(&g).enumerate() {
                    if a != b {
                        assert!(
                            (place.at..place.at + 8).contains(&i)
                                || (place.comp..place.comp + 2).contains(&i),
                            "byte {i} changed"
                        );
                    }
                }
                v = v.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            }
            // Edge values of the one's-complement arithmetic.
            for v in [0, u64::MAX, 0xffff, 0xffff_0000_ffff_0000] {
                let mut g = f.clone();
                write(&mut g, place, v);
                assert_eq!(read(&g), Some(v));
                assert!(l4_checksum_ok(&g));
            }
        }
    }

    #[test]
    fn non_stampable_frames_have_no_place() {
        let f = fb().echo_request(ip("198.18.1.1"), ip("198.18.0.100"), 1, 1).unwrap();
        assert_eq!(locate(&f), None);
        let f = fb().arp_request("198.18.1.1".parse().unwrap(), "198.18.0.100".parse().unwrap()).unwrap();
        assert_eq!(locate(&f), None);
        let f = fb()
            .ipv4_fragment(
                "198.18.1.1".parse().unwrap(),
                "198.18.0.100".parse().unwrap(),
                farm_wire::IpProtocol::Tcp,
                8,
                false,
                &[0; 24],
            )
            .unwrap();
        assert_eq!(locate(&f), None);
        assert_eq!(locate(&[0u8; 10]), None);
        // UDP without room for the stamp + compensation word.
        let f = fb().udp(ip("2001:db8::1"), ip("2001:db8::100"), 1, 2, &[0; 4]).unwrap();
        assert_eq!(locate(&f), None);
    }
}
