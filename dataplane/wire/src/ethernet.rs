//! Ethernet II frames, with 802.1Q (C-tag) and 802.1ad (S-tag, QinQ) tags.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 Destination MAC address                       |
//! +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                               |                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//! |                      Source MAC address                       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     EtherType or TPID         |  payload, or a VLAN tag ...   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! VLAN tag (IEEE 802.1Q), after a TPID of 0x8100, 0x88a8 or 0x9100:
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | PCP |D|        VID            |  EtherType or next TPID       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! [`Frame`] views the untagged 14-byte header; tags are read with
//! [`VlanHeader`] views chained after it ([`Frame::tags`] walks them).

use core::fmt;
use core::str::FromStr;

use crate::{enum_with_unknown, Error, Result};

enum_with_unknown! {
    /// EtherType / TPID values.
    pub enum EtherType(u16) {
        Ipv4 = 0x0800,
        Arp = 0x0806,
        /// 802.1Q customer tag (C-tag).
        Vlan = 0x8100,
        Ipv6 = 0x86DD,
        /// 802.1ad service tag (S-tag, outer QinQ tag).
        QinQ = 0x88A8,
        /// Pre-standard QinQ outer tag still emitted by some switches.
        QinQLegacy = 0x9100,
    }
}

impl EtherType {
    /// True for the TPIDs that introduce a VLAN tag.
    #[inline]
    pub fn is_vlan_tpid(self) -> bool {
        matches!(
            self,
            EtherType::Vlan | EtherType::QinQ | EtherType::QinQLegacy
        )
    }
}

/// A 48-bit Ethernet (MAC) address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);

    /// Builds an address from a slice of exactly six bytes.
    ///
    /// # Panics
    /// If `data.len() != 6` (only call it on a checked field).
    #[inline]
    pub fn from_bytes(data: &[u8]) -> EthernetAddress {
        let mut b = [0u8; 6];
        b.copy_from_slice(data);
        EthernetAddress(b)
    }

    /// The six octets.
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// Group bit set (multicast, broadcast included).
    #[inline]
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// All ones.
    #[inline]
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Not multicast and not all zeros.
    #[inline]
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast() && self.0 != [0; 6]
    }

    /// Locally administered bit set.
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Error parsing a textual MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected a MAC address as six hex octets separated by ':' or '-'")]
pub struct MacParseError;

impl FromStr for EthernetAddress {
    type Err = MacParseError;
    fn from_str(s: &str) -> core::result::Result<Self, MacParseError> {
        let mut out = [0u8; 6];
        let mut n = 0;
        for part in s.split([':', '-']) {
            if n == 6 || part.is_empty() || part.len() > 2 {
                return Err(MacParseError);
            }
            out[n] = u8::from_str_radix(part, 16).map_err(|_| MacParseError)?;
            n += 1;
        }
        if n == 6 {
            Ok(EthernetAddress(out))
        } else {
            Err(MacParseError)
        }
    }
}

mod field {
    use crate::field::Field;
    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const PAYLOAD: usize = 14;
    pub const TCI: Field = 0..2;
    pub const INNER_TYPE: Field = 2..4;
}

/// Length of the untagged Ethernet header.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Length of one VLAN tag.
pub const VLAN_TAG_LEN: usize = 4;
/// Most tags [`Frame::tags`] and the summarizer accept (QinQ).
pub const MAX_VLAN_TAGS: usize = 2;

/// A read/write view of an Ethernet II header.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps a buffer and checks that it holds the 14-byte header.
    pub fn new_checked(buffer: T) -> Result<Frame<T>> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// After this succeeds no accessor panics.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::DESTINATION])
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::SOURCE])
    }

    /// The EtherType field at offset 12 (a TPID when the frame is tagged).
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        let d = self.buffer.as_ref();
        EtherType::from(u16::from_be_bytes([d[12], d[13]]))
    }

    /// Walks up to [`MAX_VLAN_TAGS`] tags; returns them, the innermost
    /// EtherType and the offset of the L3 header.
    #[inline]
    pub fn tags(&self) -> Result<(VlanTags, EtherType, usize)> {
        let d = self.buffer.as_ref();
        let mut tags = VlanTags::new();
        let mut ty = self.ethertype();
        let mut off = HEADER_LEN;
        while ty.is_vlan_tpid() {
            if tags.len() == MAX_VLAN_TAGS {
                return Err(Error::Unsupported);
            }
            let v = VlanHeader::new_checked(d.get(off..).ok_or(Error::Truncated)?)?;
            tags.push(VlanTag {
                tpid: ty,
                tci: v.tci(),
            })?;
            ty = v.ethertype();
            off += VLAN_TAG_LEN;
        }
        Ok((tags, ty, off))
    }

    /// Bytes after the untagged header (tags included).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, a: EthernetAddress) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&a.0);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, a: EthernetAddress) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&a.0);
    }

    /// Sets the EtherType / outer TPID.
    #[inline]
    pub fn set_ethertype(&mut self, t: EtherType) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&u16::from(t).to_be_bytes());
    }

    /// Mutable bytes after the untagged header.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

/// A view of one 4-byte VLAN tag body (TCI + next EtherType), i.e. the bytes
/// that follow a VLAN TPID.
#[derive(Debug, Clone)]
pub struct VlanHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanHeader<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        VlanHeader { buffer }
    }

    /// Wraps a buffer and checks that it holds the 4-byte tag.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let v = Self::new_unchecked(buffer);
        v.check_len()?;
        Ok(v)
    }

    /// After this succeeds no accessor panics.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < VLAN_TAG_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Tag control information (PCP, DEI, VID).
    #[inline]
    pub fn tci(&self) -> u16 {
        let d = self.buffer.as_ref();
        u16::from_be_bytes([d[field::TCI.start], d[field::TCI.start + 1]])
    }

    /// The EtherType (or next TPID) after this tag.
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        let d = self.buffer.as_ref();
        EtherType::from(u16::from_be_bytes([
            d[field::INNER_TYPE.start],
            d[field::INNER_TYPE.start + 1],
        ]))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanHeader<T> {
    /// Sets the TCI.
    pub fn set_tci(&mut self, tci: u16) {
        self.buffer.as_mut()[field::TCI].copy_from_slice(&tci.to_be_bytes());
    }

    /// Sets the next EtherType.
    pub fn set_ethertype(&mut self, t: EtherType) {
        self.buffer.as_mut()[field::INNER_TYPE].copy_from_slice(&u16::from(t).to_be_bytes());
    }
}

/// One VLAN tag: the TPID that introduced it and its TCI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VlanTag {
    /// 0x8100 (C-tag), 0x88a8 (S-tag) or 0x9100.
    pub tpid: EtherType,
    /// PCP (3 bits), DEI (1 bit), VID (12 bits).
    pub tci: u16,
}

impl VlanTag {
    /// A tag from its parts (`pcp` and `vid` are masked to 3 and 12 bits).
    pub fn new(tpid: EtherType, pcp: u8, dei: bool, vid: u16) -> VlanTag {
        VlanTag {
            tpid,
            tci: (u16::from(pcp & 7) << 13) | (u16::from(dei) << 12) | (vid & 0x0fff),
        }
    }
    /// VLAN identifier.
    pub const fn vid(&self) -> u16 {
        self.tci & 0x0fff
    }
    /// Priority code point.
    pub const fn pcp(&self) -> u8 {
        (self.tci >> 13) as u8
    }
    /// Drop eligible indicator.
    pub const fn dei(&self) -> bool {
        self.tci & 0x1000 != 0
    }
}

/// Up to [`MAX_VLAN_TAGS`] tags, outermost first. Stored as raw
/// `TPID << 16 | TCI` words (cheap to copy on the hot path); unused slots
/// stay zero so equality compares only the tags present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VlanTags {
    words: [u32; MAX_VLAN_TAGS],
    len: u8,
}

impl VlanTags {
    /// No tags.
    pub const fn new() -> VlanTags {
        VlanTags {
            words: [0; MAX_VLAN_TAGS],
            len: 0,
        }
    }

    /// Builds from a slice of at most [`MAX_VLAN_TAGS`] tags.
    pub fn from_slice(tags: &[VlanTag]) -> Result<VlanTags> {
        let mut t = VlanTags::new();
        for &tag in tags {
            t.push(tag)?;
        }
        Ok(t)
    }

    /// Appends an inner tag; `Err(Unsupported)` when full.
    #[inline]
    pub fn push(&mut self, tag: VlanTag) -> Result<()> {
        self.push_raw(u16::from(tag.tpid), tag.tci)
    }

    #[inline]
    pub(crate) fn push_raw(&mut self, tpid: u16, tci: u16) -> Result<()> {
        let slot = self
            .words
            .get_mut(usize::from(self.len))
            .ok_or(Error::Unsupported)?;
        *slot = (u32::from(tpid) << 16) | u32::from(tci);
        self.len += 1;
        Ok(())
    }

    /// Tag `i` (0 = outermost).
    #[inline]
    pub fn get(&self, i: usize) -> Option<VlanTag> {
        if i < usize::from(self.len) {
            let w = self.words[i];
            Some(VlanTag {
                tpid: EtherType::from((w >> 16) as u16),
                tci: w as u16,
            })
        } else {
            None
        }
    }

    /// The tags present, outermost first.
    pub fn iter(&self) -> impl Iterator<Item = VlanTag> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// Number of tags.
    pub const fn len(&self) -> usize {
        self.len as usize
    }

    /// No tags.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes the tags occupy on the wire.
    pub const fn wire_len(&self) -> usize {
        self.len as usize * VLAN_TAG_LEN
    }
}

/// High-level Ethernet header: addresses, tags and the innermost EtherType.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    /// Source address.
    pub src_addr: EthernetAddress,
    /// Destination address.
    pub dst_addr: EthernetAddress,
    /// VLAN tags, outermost first.
    pub tags: VlanTags,
    /// EtherType of the payload (after the tags).
    pub ethertype: EtherType,
}

impl EthernetRepr {
    /// Parses a frame's header and tags.
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Result<EthernetRepr> {
        frame.check_len()?;
        let (tags, ethertype, _) = frame.tags()?;
        Ok(EthernetRepr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            tags,
            ethertype,
        })
    }

    /// Header length including tags (offset of the payload).
    pub const fn header_len(&self) -> usize {
        HEADER_LEN + self.tags.wire_len()
    }

    /// Writes the header and tags at the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        if buf.len() < self.header_len() {
            return Err(Error::Truncated);
        }
        let mut f = Frame::new_unchecked(&mut *buf);
        f.set_dst_addr(self.dst_addr);
        f.set_src_addr(self.src_addr);
        let mut off = field::ETHERTYPE.start;
        for tag in self.tags.iter() {
            buf[off..off + 2].copy_from_slice(&u16::from(tag.tpid).to_be_bytes());
            buf[off + 2..off + 4].copy_from_slice(&tag.tci.to_be_bytes());
            off += VLAN_TAG_LEN;
        }
        buf[off..off + 2].copy_from_slice(&u16::from(self.ethertype).to_be_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static UNTAGGED: [u8; 18] = [
        0x5a, 0xfe, 0xc6, 0x12, 0x00, 0x0a, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src
        0x08, 0x00, // IPv4
        0xaa, 0xbb, 0xcc, 0xdd,
    ];

    static QINQ: [u8; 22] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, //
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, //
        0x88, 0xa8, 0x20, 0x64, // S-tag pcp 1 vid 100
        0x81, 0x00, 0x00, 0x0a, // C-tag vid 10
        0x08, 0x06, // ARP
    ];

    #[test]
    fn deconstruct_untagged() {
        let f = Frame::new_checked(&UNTAGGED[..]).unwrap();
        assert_eq!(
            f.dst_addr(),
            EthernetAddress([0x5a, 0xfe, 0xc6, 0x12, 0x00, 0x0a])
        );
        assert_eq!(f.src_addr().to_string(), "02:00:00:00:00:01");
        assert_eq!(f.ethertype(), EtherType::Ipv4);
        assert_eq!(f.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        let (tags, ty, off) = f.tags().unwrap();
        assert!(tags.is_empty());
        assert_eq!((ty, off), (EtherType::Ipv4, 14));
    }

    #[test]
    fn deconstruct_qinq() {
        let f = Frame::new_checked(&QINQ[..]).unwrap();
        assert!(f.dst_addr().is_broadcast());
        let (tags, ty, off) = f.tags().unwrap();
        assert_eq!(ty, EtherType::Arp);
        assert_eq!(off, 22);
        assert_eq!(tags.get(0).unwrap().tpid, EtherType::QinQ);
        assert_eq!(
            (tags.get(0).unwrap().pcp(), tags.get(0).unwrap().vid()),
            (1, 100)
        );
        assert_eq!(tags.get(1).unwrap().tpid, EtherType::Vlan);
        assert_eq!(tags.get(1).unwrap().vid(), 10);
    }

    #[test]
    fn construct_qinq_matches_fixture() {
        let repr = EthernetRepr::parse(&Frame::new_checked(&QINQ[..]).unwrap()).unwrap();
        assert_eq!(repr.header_len(), 22);
        let mut buf = [0u8; 22];
        repr.emit(&mut buf).unwrap();
        assert_eq!(buf, QINQ);
        assert_eq!(repr.emit(&mut [0u8; 21]), Err(Error::Truncated));
    }

    #[test]
    fn truncated_and_too_many_tags() {
        assert_eq!(
            Frame::new_checked(&UNTAGGED[..13]).unwrap_err(),
            Error::Truncated
        );
        // Tag announced but missing.
        let f = Frame::new_checked(&QINQ[..16]).unwrap();
        assert_eq!(f.tags().unwrap_err(), Error::Truncated);
        // Three tags.
        let mut three = QINQ[..20].to_vec();
        three.extend_from_slice(&[0x81, 0x00, 0x00, 0x05, 0x08, 0x06]);
        let f = Frame::new_checked(&three[..]).unwrap();
        assert_eq!(f.tags().unwrap_err(), Error::Unsupported);
    }

    #[test]
    fn setters() {
        let mut buf = UNTAGGED;
        let mut f = Frame::new_checked(&mut buf[..]).unwrap();
        f.set_dst_addr(EthernetAddress::BROADCAST);
        f.set_src_addr(EthernetAddress([1, 2, 3, 4, 5, 6]));
        f.set_ethertype(EtherType::Ipv6);
        assert_eq!(
            &buf[..14],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 0x86, 0xdd]
        );
    }

    #[test]
    fn mac_text_and_bits() {
        let m: EthernetAddress = "5A:FE:c6:12:00:0a".parse().unwrap();
        assert_eq!(m.0, [0x5a, 0xfe, 0xc6, 0x12, 0x00, 0x0a]);
        assert!(m.is_local() && m.is_unicast() && !m.is_multicast());
        assert!("01-00-5e-00-00-01"
            .parse::<EthernetAddress>()
            .unwrap()
            .is_multicast());
        for bad in [
            "",
            "1:2:3:4:5",
            "1:2:3:4:5:6:7",
            "zz:00:00:00:00:00",
            "100:0:0:0:0:0",
        ] {
            assert!(bad.parse::<EthernetAddress>().is_err(), "{bad}");
        }
    }

    #[test]
    fn tag_fields() {
        let t = VlanTag::new(EtherType::Vlan, 7, true, 0xfff);
        assert_eq!(t.tci, 0xffff);
        assert_eq!((t.pcp(), t.dei(), t.vid()), (7, true, 0xfff));
        let mut tags = VlanTags::new();
        tags.push(t).unwrap();
        tags.push(t).unwrap();
        assert_eq!(tags.push(t), Err(Error::Unsupported));
        assert_eq!(tags.wire_len(), 8);
    }
}
