//! Neighbour discovery (RFC 4861): neighbour solicitation (NS) and
//! advertisement (NA), with the source / target link-layer address options.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Type 135/136 |    Code 0     |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |R|S|O|                     Reserved (NS: all reserved)         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! +                       Target Address                          +
//! |                         (16 bytes)                            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   Options ...
//! +-+-+-+-+-+-+-+-+-+-+-+-+-
//!
//! Link-layer address option (type 1 source, 2 target; length in 8 octets):
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Type      |  Length (1)   |    Link-Layer Address ...     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use core::net::Ipv6Addr;

use crate::ethernet::EthernetAddress;
use crate::icmpv6::{Icmpv6Message, Packet};
use crate::{enum_with_unknown, Error, Result};

/// Offset of the options in an NS / NA message.
pub const OPTIONS_OFFSET: usize = 24;

/// Length of an Ethernet link-layer address option.
pub const LLADDR_OPTION_LEN: usize = 8;

enum_with_unknown! {
    /// NDP option type.
    pub enum NdiscOptionType(u8) {
        SourceLinkLayerAddr = 1,
        TargetLinkLayerAddr = 2,
        PrefixInformation = 3,
        RedirectedHeader = 4,
        Mtu = 5,
        Nonce = 14,
    }
}

/// Neighbour advertisement flags (byte 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NeighborFlags(pub u8);

impl NeighborFlags {
    /// R: the sender is a router.
    pub const ROUTER: NeighborFlags = NeighborFlags(0x80);
    /// S: sent in response to a solicitation.
    pub const SOLICITED: NeighborFlags = NeighborFlags(0x40);
    /// O: override an existing cache entry.
    pub const OVERRIDE: NeighborFlags = NeighborFlags(0x20);
    const MASK: u8 = 0xe0;

    /// All bits of `o` set.
    pub const fn contains(self, o: NeighborFlags) -> bool {
        self.0 & o.0 == o.0
    }
}

impl core::ops::BitOr for NeighborFlags {
    type Output = NeighborFlags;
    fn bitor(self, o: NeighborFlags) -> NeighborFlags {
        NeighborFlags(self.0 | o.0)
    }
}

/// Iterates over NDP options as `(type, whole option bytes)`; yields an
/// error (then stops) on a zero length or an option overrunning the buffer.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Options<'a> {
    /// Options starting at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Options {
            rest: buf,
            failed: false,
        }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<(NdiscOptionType, &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let len = match self.rest {
            [_, l, ..] if *l != 0 => usize::from(*l) * 8,
            [_, _, ..] => {
                self.failed = true;
                return Some(Err(Error::Malformed));
            }
            _ => {
                self.failed = true;
                return Some(Err(Error::Truncated));
            }
        };
        match (self.rest.get(..len), self.rest.get(len..)) {
            (Some(opt), Some(rest)) => {
                self.rest = rest;
                Some(Ok((NdiscOptionType::from(opt[0]), opt)))
            }
            _ => {
                self.failed = true;
                Some(Err(Error::Truncated))
            }
        }
    }
}

/// Finds an Ethernet link-layer address option of type `want`; validates
/// every option on the way.
pub fn find_lladdr(options: &[u8], want: NdiscOptionType) -> Result<Option<EthernetAddress>> {
    let mut found = None;
    for opt in Options::new(options) {
        let (ty, bytes) = opt?;
        if ty == want && found.is_none() {
            if bytes.len() != LLADDR_OPTION_LEN {
                return Err(Error::Unsupported);
            }
            found = Some(EthernetAddress::from_bytes(&bytes[2..8]));
        }
    }
    Ok(found)
}

/// High-level neighbour solicitation or advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdiscRepr {
    /// Neighbour solicitation.
    NeighborSolicit {
        /// The address being resolved.
        target_addr: Ipv6Addr,
        /// Source link-layer address option.
        lladdr: Option<EthernetAddress>,
    },
    /// Neighbour advertisement.
    NeighborAdvert {
        /// R / S / O flags.
        flags: NeighborFlags,
        /// The address being advertised.
        target_addr: Ipv6Addr,
        /// Target link-layer address option.
        lladdr: Option<EthernetAddress>,
    },
}

impl NdiscRepr {
    /// Parses an NS or NA from an ICMPv6 view (code must be 0; options are
    /// validated, unknown ones skipped).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(p: &Packet<&T>) -> Result<NdiscRepr> {
        p.check_len()?;
        if p.msg_code() != 0 {
            return Err(Error::Malformed);
        }
        let options = &p.buffer.as_ref()[OPTIONS_OFFSET..];
        match p.msg_type() {
            Icmpv6Message::NeighborSolicit => Ok(NdiscRepr::NeighborSolicit {
                target_addr: p.nd_target(),
                lladdr: find_lladdr(options, NdiscOptionType::SourceLinkLayerAddr)?,
            }),
            Icmpv6Message::NeighborAdvert => Ok(NdiscRepr::NeighborAdvert {
                flags: NeighborFlags(p.nd_flags() & NeighborFlags::MASK),
                target_addr: p.nd_target(),
                lladdr: find_lladdr(options, NdiscOptionType::TargetLinkLayerAddr)?,
            }),
            _ => Err(Error::Unsupported),
        }
    }

    /// Bytes the ICMPv6 message occupies.
    pub fn buffer_len(&self) -> usize {
        let (NdiscRepr::NeighborSolicit { lladdr, .. } | NdiscRepr::NeighborAdvert { lladdr, .. }) =
            self;
        OPTIONS_OFFSET
            + if lladdr.is_some() {
                LLADDR_OPTION_LEN
            } else {
                0
            }
    }

    /// Writes the message body into an ICMPv6 view of exactly
    /// [`buffer_len`](Self::buffer_len) bytes; the caller fills the checksum.
    pub fn emit(&self, p: &mut Packet<&mut [u8]>) -> Result<()> {
        if p.buffer.len() < self.buffer_len() {
            return Err(Error::Truncated);
        }
        let (ty, rest, target, opt_ty, lladdr) = match *self {
            NdiscRepr::NeighborSolicit {
                target_addr,
                lladdr,
            } => (
                Icmpv6Message::NeighborSolicit,
                0,
                target_addr,
                NdiscOptionType::SourceLinkLayerAddr,
                lladdr,
            ),
            NdiscRepr::NeighborAdvert {
                flags,
                target_addr,
                lladdr,
            } => (
                Icmpv6Message::NeighborAdvert,
                u32::from(flags.0 & NeighborFlags::MASK) << 24,
                target_addr,
                NdiscOptionType::TargetLinkLayerAddr,
                lladdr,
            ),
        };
        p.set_msg_type(ty);
        p.set_msg_code(0);
        p.set_rest(rest);
        p.set_nd_target(target);
        if let Some(mac) = lladdr {
            let o = &mut p.buffer[OPTIONS_OFFSET..OPTIONS_OFFSET + LLADDR_OPTION_LEN];
            o[0] = opt_ty.into();
            o[1] = 1;
            o[2..].copy_from_slice(&mac.0);
        }
        Ok(())
    }

    /// The advertisement answering this solicitation (sent from `ns_src`) with
    /// `answer_mac`, and the IPv6 destination to send it to: the solicitor,
    /// or all-nodes (ff02::1) without the S flag when the solicitation came
    /// from the unspecified address (RFC 4861 section 7.2.4). `None` when
    /// `self` is not a solicitation.
    pub fn advert_reply(
        &self,
        ns_src: Ipv6Addr,
        answer_mac: EthernetAddress,
    ) -> Option<(Ipv6Addr, NdiscRepr)> {
        let NdiscRepr::NeighborSolicit { target_addr, .. } = *self else {
            return None;
        };
        let (dst, flags) = if ns_src.is_unspecified() {
            (
                Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
                NeighborFlags::OVERRIDE,
            )
        } else {
            (ns_src, NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE)
        };
        Some((
            dst,
            NdiscRepr::NeighborAdvert {
                flags,
                target_addr,
                lladdr: Some(answer_mac),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::icmpv6::Icmpv6Repr;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0x64]);

    // NS from 2001:db8::64 for 2001:db8::a with SLLA 02:00:00:00:00:64.
    fn ns_bytes() -> Vec<u8> {
        let mut b = vec![135, 0, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&a("2001:db8::a").octets());
        b.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 0x64]);
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.fill_checksum(a("2001:db8::64"), a("ff02::1:ff00:a"));
        b
    }

    #[test]
    fn ns_deconstruct_construct() {
        let b = ns_bytes();
        let (s, d) = (a("2001:db8::64"), a("ff02::1:ff00:a"));
        let r = Icmpv6Repr::parse(s, d, &Packet::new_checked(&b[..]).unwrap()).unwrap();
        let ns = NdiscRepr::NeighborSolicit {
            target_addr: a("2001:db8::a"),
            lladdr: Some(MAC),
        };
        assert_eq!(r, Icmpv6Repr::Ndisc(ns));
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(s, d, &mut out).unwrap();
        assert_eq!(out, b);
    }

    #[test]
    fn na_builder() {
        let ns = NdiscRepr::NeighborSolicit {
            target_addr: a("2001:db8::a"),
            lladdr: Some(MAC),
        };
        let vmac = EthernetAddress([0x5a, 0xff, 0, 0, 0, 0x0a]);
        let (dst, na) = ns.advert_reply(a("2001:db8::64"), vmac).unwrap();
        assert_eq!(dst, a("2001:db8::64"));
        assert_eq!(
            na,
            NdiscRepr::NeighborAdvert {
                flags: NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE,
                target_addr: a("2001:db8::a"),
                lladdr: Some(vmac)
            }
        );
        let r = Icmpv6Repr::Ndisc(na);
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(a("2001:db8::a"), dst, &mut out).unwrap();
        assert_eq!(out[0], 136);
        assert_eq!(out[4], 0x60);
        assert_eq!(&out[24..], &[2, 1, 0x5a, 0xff, 0, 0, 0, 0x0a]);
        let back = Icmpv6Repr::parse(
            a("2001:db8::a"),
            dst,
            &Packet::new_checked(&out[..]).unwrap(),
        )
        .unwrap();
        assert_eq!(back, r);
        // DAD solicitation: reply to all-nodes, not solicited.
        let (dst, na) = ns.advert_reply(Ipv6Addr::UNSPECIFIED, vmac).unwrap();
        assert_eq!(dst, a("ff02::1"));
        assert!(matches!(
            na,
            NdiscRepr::NeighborAdvert {
                flags: NeighborFlags::OVERRIDE,
                ..
            }
        ));
        assert_eq!(na.advert_reply(dst, vmac), None);
    }

    #[test]
    fn options_validation() {
        // Nonce option (len 1) then SLLA.
        let opts = [14, 1, 1, 2, 3, 4, 5, 6, 1, 1, 9, 9, 9, 9, 9, 9];
        assert_eq!(
            find_lladdr(&opts, NdiscOptionType::SourceLinkLayerAddr).unwrap(),
            Some(EthernetAddress([9; 6]))
        );
        assert_eq!(
            find_lladdr(&opts, NdiscOptionType::TargetLinkLayerAddr).unwrap(),
            None
        );
        assert_eq!(
            find_lladdr(
                &[1, 0, 0, 0, 0, 0, 0, 0],
                NdiscOptionType::SourceLinkLayerAddr
            ),
            Err(Error::Malformed)
        );
        assert_eq!(
            find_lladdr(
                &[1, 2, 0, 0, 0, 0, 0, 0],
                NdiscOptionType::SourceLinkLayerAddr
            ),
            Err(Error::Truncated)
        );
        assert_eq!(
            find_lladdr(&[1], NdiscOptionType::SourceLinkLayerAddr),
            Err(Error::Truncated)
        );
        assert_eq!(
            find_lladdr(&[], NdiscOptionType::SourceLinkLayerAddr),
            Ok(None)
        );
        // A 16-byte link-layer option is not Ethernet.
        let long = [1u8, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            find_lladdr(&long, NdiscOptionType::SourceLinkLayerAddr),
            Err(Error::Unsupported)
        );
        // Non-zero code.
        let mut b = ns_bytes();
        b[1] = 1;
        assert_eq!(
            NdiscRepr::parse(&Packet::new_checked(&b[..]).unwrap()),
            Err(Error::Malformed)
        );
    }
}
