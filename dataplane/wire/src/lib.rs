//! Zero-copy packet views for the farm data plane.
//!
//! Every protocol module follows smoltcp's layout:
//!
//! - a view `Packet<T: AsRef<[u8]>>` over a buffer, built with
//!   `new_unchecked`, `check_len` or `new_checked`; getters need `AsRef`,
//!   setters `AsMut`; once `check_len` succeeded no accessor panics;
//! - a `Repr` with `parse` / `emit` for slow paths, tests and the traffic
//!   generator;
//! - protocol numbers as enums with an `Unknown(n)` variant.
//!
//! The classifier does not use the views directly: [`summarize`] reads
//! everything it needs from a frame in one pass and never panics, whatever
//! the input; [`fast::ipv4_l4`] reads the commonest frames (IPv4 TCP/UDP)
//! straight off the bytes and agrees with [`summarize`] on them.
//!
//! Supported: Ethernet II with up to two VLAN tags (802.1Q, 802.1ad), ARP
//! over Ethernet/IPv4, IPv4 (options, fragments), IPv6 with extension headers,
//! ICMPv4, ICMPv6 (with neighbour discovery), TCP and UDP.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod macros;

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod fast;
pub mod frame;
pub mod gen;
pub mod icmpv4;
pub mod icmpv6;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod ipv6ext;
pub mod ndisc;
pub mod summary;
pub mod tcp;
pub mod udp;

pub use arp::{ArpOperation, ArpRepr};
pub use ethernet::{EtherType, EthernetAddress, EthernetRepr, VlanTag, VlanTags};
pub use frame::{FrameRepr, IpPayload, PacketRepr};
pub use icmpv4::{Icmpv4Message, Icmpv4Repr};
pub use icmpv6::{Icmpv6Message, Icmpv6Repr};
pub use ip::IpProtocol;
pub use ipv4::Ipv4Repr;
pub use ipv6::Ipv6Repr;
pub use ndisc::NdiscRepr;
pub use summary::{
    summarize, ArpSummary, Fragment, FrameSummary, IcmpKind, IcmpSummary, InnerTuple, IpSummary,
    ParseError, Ports, L3, L4,
};
pub use tcp::{TcpFlags, TcpRepr};
pub use udp::UdpRepr;

/// Errors of the views and reprs. Small and `Copy`: no allocation on the hot
/// path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    /// The buffer is shorter than the header or than a length field says.
    #[error("truncated packet")]
    Truncated,
    /// A field holds a value the protocol forbids.
    #[error("malformed packet")]
    Malformed,
    /// The checksum does not verify.
    #[error("bad checksum")]
    Checksum,
    /// Valid but not handled here (e.g. non-Ethernet ARP, three VLAN tags).
    #[error("unsupported packet")]
    Unsupported,
}

/// Result with [`Error`].
pub type Result<T> = core::result::Result<T, Error>;

/// Byte ranges of header fields.
pub(crate) mod field {
    pub type Field = core::ops::Range<usize>;
}

/// Reads a big-endian u16 at `off` (caller checked the length).
#[inline]
pub(crate) fn be16(d: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([d[off], d[off + 1]])
}

/// Reads a big-endian u32 at `off` (caller checked the length).
#[inline]
pub(crate) fn be32(d: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([d[off], d[off + 1], d[off + 2], d[off + 3]])
}

/// Writes a big-endian u16 at `off` (caller checked the length).
#[inline]
pub(crate) fn put16(d: &mut [u8], off: usize, v: u16) {
    d[off..off + 2].copy_from_slice(&v.to_be_bytes());
}

/// Writes a big-endian u32 at `off` (caller checked the length).
#[inline]
pub(crate) fn put32(d: &mut [u8], off: usize, v: u32) {
    d[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

/// Whether checksums are verified by `Repr::parse`. Fuzzing builds skip the
/// check so the fuzzer reaches deeper code (smoltcp does the same).
pub(crate) const VERIFY_CHECKSUMS: bool = !cfg!(fuzzing);
