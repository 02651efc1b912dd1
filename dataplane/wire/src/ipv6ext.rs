//! IPv6 extension headers (RFC 8200 section 4) and the bounded walk from the
//! fixed header to the upper layer.
//!
//! Hop-by-hop options, destination options and routing headers share one
//! layout; their length is counted in 8-octet units, not including the first:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Next Header  |  Hdr Ext Len  | (routing: Type, Segments Left)|
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! .                  options / type-specific data                 .
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The fragment header is always 8 octets:
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Next Header  |   Reserved    |      Fragment Offset    |Res|M|
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         Identification                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use crate::ip::IpProtocol;
use crate::{be16, be32, put16, put32, Error, Result};

/// Most extension headers [`walk`] follows before giving up.
pub const MAX_EXT_HEADERS: usize = 8;

/// Length of the fragment header.
pub const FRAGMENT_HEADER_LEN: usize = 8;

/// A view of a hop-by-hop, destination-options or routing header.
#[derive(Debug, Clone)]
pub struct ExtHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ExtHeader<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        ExtHeader { buffer }
    }

    /// Wraps a buffer and checks its length.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let h = Self::new_unchecked(buffer);
        h.check_len()?;
        Ok(h)
    }

    /// Checks that the buffer holds the whole header as its length field
    /// says. After this succeeds no accessor panics.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < 8 || len < self.header_len() {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Next header.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[0])
    }
    /// Header length in bytes ((Hdr Ext Len + 1) * 8).
    pub fn header_len(&self) -> usize {
        (usize::from(self.buffer.as_ref()[1]) + 1) * 8
    }
    /// Routing type (meaningful for routing headers only).
    pub fn routing_type(&self) -> u8 {
        self.buffer.as_ref()[2]
    }
    /// Segments left (meaningful for routing headers only).
    pub fn segments_left(&self) -> u8 {
        self.buffer.as_ref()[3]
    }
    /// Bytes after the first two (options, or routing type-specific data).
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[2..self.header_len()]
    }
}

/// A view of a fragment header.
#[derive(Debug, Clone)]
pub struct FragmentHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> FragmentHeader<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        FragmentHeader { buffer }
    }

    /// Wraps a buffer and checks its length.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let h = Self::new_unchecked(buffer);
        h.check_len()?;
        Ok(h)
    }

    /// After this succeeds no accessor panics.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < FRAGMENT_HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Next header (protocol of the fragmentable part).
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[0])
    }
    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        be16(self.buffer.as_ref(), 2) & 0xfff8
    }
    /// More-fragments flag.
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), 2) & 1 != 0
    }
    /// Identification.
    pub fn ident(&self) -> u32 {
        be32(self.buffer.as_ref(), 4)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> FragmentHeader<T> {
    /// Sets every field (reserved bits zeroed; offset in bytes, multiple of 8).
    pub fn set(&mut self, next_header: IpProtocol, frag_offset: u16, more_frags: bool, ident: u32) {
        let d = self.buffer.as_mut();
        d[0] = next_header.into();
        d[1] = 0;
        put16(d, 2, (frag_offset & 0xfff8) | u16::from(more_frags));
        put32(d, 4, ident);
    }
}

/// High-level fragment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentRepr {
    /// Protocol of the fragmentable part.
    pub next_header: IpProtocol,
    /// Offset in bytes (a multiple of 8).
    pub frag_offset: u16,
    /// More fragments follow.
    pub more_frags: bool,
    /// Identification.
    pub ident: u32,
}

impl FragmentRepr {
    /// Parses a fragment header.
    pub fn parse<T: AsRef<[u8]>>(h: &FragmentHeader<T>) -> Result<Self> {
        h.check_len()?;
        Ok(FragmentRepr {
            next_header: h.next_header(),
            frag_offset: h.frag_offset(),
            more_frags: h.more_frags(),
            ident: h.ident(),
        })
    }

    /// Writes the header at the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let mut h = FragmentHeader::new_checked(buf)?;
        h.set(
            self.next_header,
            self.frag_offset,
            self.more_frags,
            self.ident,
        );
        Ok(())
    }
}

/// High-level hop-by-hop / destination-options / routing header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtHeaderRepr<'a> {
    /// Next header.
    pub next_header: IpProtocol,
    /// Bytes after the first two; `data.len() + 2` must be a multiple of 8
    /// and at most 2048.
    pub data: &'a [u8],
}

impl<'a> ExtHeaderRepr<'a> {
    /// Parses a header.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(h: &'a ExtHeader<&'a T>) -> Result<Self> {
        h.check_len()?;
        Ok(ExtHeaderRepr {
            next_header: h.next_header(),
            data: h.data(),
        })
    }

    /// Bytes the header occupies.
    pub const fn buffer_len(&self) -> usize {
        self.data.len() + 2
    }

    /// Writes the header at the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let len = self.buffer_len();
        if len & 7 != 0 || len > 2048 {
            return Err(Error::Malformed);
        }
        let d = buf.get_mut(..len).ok_or(Error::Truncated)?;
        d[0] = self.next_header.into();
        d[1] = (len / 8 - 1) as u8;
        d[2..].copy_from_slice(self.data);
        Ok(())
    }
}

/// IPv6 fragment information found on the way to the upper layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragInfo {
    /// Offset in bytes.
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
    /// Identification.
    pub ident: u32,
}

/// Where the upper layer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperLayer {
    /// Upper-layer protocol (the last next-header value).
    pub protocol: IpProtocol,
    /// Offset of the upper-layer header within the IPv6 payload. For a
    /// non-first fragment this is where fragment data starts, and there is
    /// no upper-layer header.
    pub offset: usize,
    /// Fragment header, if one was crossed.
    pub fragment: Option<FragInfo>,
}

impl UpperLayer {
    /// True when the upper-layer header is present (not a non-first fragment).
    pub fn has_header(&self) -> bool {
        self.fragment.is_none_or(|f| f.offset == 0)
    }
}

/// Walks the extension headers of an IPv6 payload starting with `first`
/// (the fixed header's next header), up to [`MAX_EXT_HEADERS`] of them.
///
/// Stops at the first non-extension protocol, or after a fragment header with
/// a non-zero offset (the rest is fragment data). Errors: `Truncated` when a
/// header overruns the payload; `Malformed` for a hop-by-hop header that is
/// not first or for two fragment headers; `Unsupported` beyond the bound.
pub fn walk(first: IpProtocol, payload: &[u8]) -> Result<UpperLayer> {
    let mut proto = first;
    let mut off = 0usize;
    let mut fragment = None;
    for i in 0..=MAX_EXT_HEADERS {
        if !proto.is_ipv6_ext() {
            return Ok(UpperLayer {
                protocol: proto,
                offset: off,
                fragment,
            });
        }
        if i == MAX_EXT_HEADERS {
            break;
        }
        let rest = payload.get(off..).ok_or(Error::Truncated)?;
        match proto {
            IpProtocol::HopByHop if i != 0 => return Err(Error::Malformed),
            IpProtocol::Ipv6Frag => {
                if fragment.is_some() {
                    return Err(Error::Malformed);
                }
                let h = FragmentHeader::new_checked(rest)?;
                let info = FragInfo {
                    offset: h.frag_offset(),
                    more: h.more_frags(),
                    ident: h.ident(),
                };
                fragment = Some(info);
                proto = h.next_header();
                off += FRAGMENT_HEADER_LEN;
                if info.offset != 0 {
                    return Ok(UpperLayer {
                        protocol: proto,
                        offset: off,
                        fragment,
                    });
                }
            }
            _ => {
                let h = ExtHeader::new_checked(rest)?;
                proto = h.next_header();
                off += h.header_len();
            }
        }
    }
    Err(Error::Unsupported)
}

#[cfg(test)]
mod tests {
    use super::*;

    // hop-by-hop (PadN) -> dest opts -> fragment(first) -> routing -> TCP
    fn chain() -> Vec<u8> {
        let mut v = vec![60, 0, 1, 4, 0, 0, 0, 0]; // HBH, next = dest opts
        v.extend_from_slice(&[44, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // dest opts 16 bytes
        v.extend_from_slice(&[43, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef]); // fragment: offset 0, M=1
        v.extend_from_slice(&[6, 0, 4, 0, 0, 0, 0, 0]); // routing type 4, segments left 0
        v.extend_from_slice(&[0x12, 0x34, 0x00, 0x50]); // TCP ports
        v
    }

    #[test]
    fn walks_full_chain() {
        let up = walk(IpProtocol::HopByHop, &chain()).unwrap();
        assert_eq!(up.protocol, IpProtocol::Tcp);
        assert_eq!(up.offset, 40);
        assert_eq!(
            up.fragment,
            Some(FragInfo {
                offset: 0,
                more: true,
                ident: 0xdeadbeef
            })
        );
        assert!(up.has_header());
    }

    #[test]
    fn non_first_fragment_stops() {
        let v = [17, 0, 0x05, 0xc8, 0, 0, 0, 1, 0xaa, 0xbb];
        let up = walk(IpProtocol::Ipv6Frag, &v).unwrap();
        assert_eq!(up.protocol, IpProtocol::Udp);
        assert_eq!(up.offset, 8);
        assert_eq!(
            up.fragment,
            Some(FragInfo {
                offset: 1480,
                more: false,
                ident: 1
            })
        );
        assert!(!up.has_header());
    }

    #[test]
    fn no_extension_headers() {
        let up = walk(IpProtocol::Udp, &[]).unwrap();
        assert_eq!(
            (up.protocol, up.offset, up.fragment),
            (IpProtocol::Udp, 0, None)
        );
        let up = walk(IpProtocol::Ipv6NoNxt, &[]).unwrap();
        assert_eq!(up.protocol, IpProtocol::Ipv6NoNxt);
    }

    #[test]
    fn errors() {
        let c = chain();
        for cut in [0, 1, 7, 8, 23, 24, 31, 32, 39] {
            assert_eq!(
                walk(IpProtocol::HopByHop, &c[..cut]),
                Err(Error::Truncated),
                "cut {cut}"
            );
        }
        // HBH in second position.
        assert_eq!(
            walk(
                IpProtocol::Ipv6Opts,
                &[0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]
            ),
            Err(Error::Malformed)
        );
        // Two fragment headers.
        assert_eq!(
            walk(
                IpProtocol::Ipv6Frag,
                &[44, 0, 0, 1, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]
            ),
            Err(Error::Malformed)
        );
        // A loop of dest-opts headers exceeds the bound.
        let many: Vec<u8> = (0..MAX_EXT_HEADERS + 1)
            .flat_map(|_| [60u8, 0, 0, 0, 0, 0, 0, 0])
            .collect();
        assert_eq!(walk(IpProtocol::Ipv6Opts, &many), Err(Error::Unsupported));
        // Exactly the bound is fine.
        let mut ok: Vec<u8> = (0..MAX_EXT_HEADERS)
            .flat_map(|_| [60u8, 0, 0, 0, 0, 0, 0, 0])
            .collect();
        let last = ok.len() - 8;
        ok[last] = 17;
        assert_eq!(
            walk(IpProtocol::Ipv6Opts, &ok).unwrap().offset,
            8 * MAX_EXT_HEADERS
        );
    }

    #[test]
    fn views_and_reprs() {
        let c = chain();
        let h = ExtHeader::new_checked(&c[8..]).unwrap();
        assert_eq!(h.header_len(), 16);
        assert_eq!(h.next_header(), IpProtocol::Ipv6Frag);
        let r = ExtHeaderRepr::parse(&h).unwrap();
        let mut out = [0u8; 16];
        r.emit(&mut out).unwrap();
        assert_eq!(&out[..], &c[8..24]);
        let rt = ExtHeader::new_checked(&c[32..]).unwrap();
        assert_eq!((rt.routing_type(), rt.segments_left()), (4, 0));

        let f = FragmentRepr::parse(&FragmentHeader::new_checked(&c[24..32]).unwrap()).unwrap();
        assert_eq!(
            f,
            FragmentRepr {
                next_header: IpProtocol::Ipv6Route,
                frag_offset: 0,
                more_frags: true,
                ident: 0xdeadbeef
            }
        );
        let mut out = [0xffu8; 8];
        f.emit(&mut out).unwrap();
        assert_eq!(&out[..], &c[24..32]);

        assert_eq!(
            ExtHeaderRepr {
                next_header: IpProtocol::Tcp,
                data: &[0; 5]
            }
            .emit(&mut [0; 8]),
            Err(Error::Malformed)
        );
        assert_eq!(
            ExtHeaderRepr {
                next_header: IpProtocol::Tcp,
                data: &[0; 6]
            }
            .emit(&mut [0; 7]),
            Err(Error::Truncated)
        );
    }
}
