//! The `#[repr(C)]` layout of the table file.
//!
//! ```text
//! offset 0            Header                  (256 bytes)
//! slot_offset[0]      SlotHeader + n_buckets × u16 entries   (slot 0: even generations)
//! slot_offset[1]      SlotHeader + n_buckets × u16 entries   (slot 1: odd generations)
//! dp_offset           DpHeader                (64 bytes)
//!                     n_lcores × LcoreArea    (320 bytes each, cache-line aligned)
//!                     n_buckets × u32 flows per bucket
//! ```
//!
//! Every region starts on a 64-byte boundary. All fields that change after creation are
//! atomics; the rest is written once by the creator before the file is renamed into place.
//! Offsets are never trusted from the file: a reader recomputes them from `n_buckets` and
//! `n_lcores` and requires the header to agree.

use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64};

use crate::counters::COUNTER_SLOTS;

/// `"FARMTBL1"` in little-endian.
pub const MAGIC: u64 = u64::from_le_bytes(*b"FARMTBL1");

/// Bumped on any change of the layout or of the hash function.
pub const ABI_VERSION: u32 = 2;

/// Marker for types that may live in the shared mapping.
///
/// # Safety
/// Implementors are `#[repr(C)]`, contain no padding, no pointers and no references, and every
/// bit pattern is a valid value (integers and atomics of integers only), so viewing any bytes of
/// the mapping as `Self` is sound.
pub unsafe trait ShmSafe: Sized {}

/// File header: written once at creation except `published` and `lease_until_ns`.
#[repr(C)]
#[derive(Debug)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: u64,
    /// [`ABI_VERSION`].
    pub abi_version: u32,
    /// `size_of::<Header>()`.
    pub header_size: u32,
    /// Whole file size in bytes.
    pub total_size: u64,
    /// Buckets per slot (power of two).
    pub n_buckets: u32,
    /// Lcore areas in the data-plane region.
    pub n_lcores: u32,
    /// This node's id (0..64).
    pub node_id: u32,
    /// pid of the writer that created the file.
    pub writer_pid: u32,
    /// Hash key, first word.
    pub hash_k0: u64,
    /// Hash key, second word.
    pub hash_k1: u64,
    /// Byte offsets of the two slots.
    pub slot_offset: [u64; 2],
    /// Byte offset of the data-plane region.
    pub dp_offset: u64,
    /// The published generation; the slot in use is `generation & 1`.
    pub published: AtomicU64,
    /// The lease (DESIGN.md I1): `CLOCK_MONOTONIC` nanoseconds until which the data plane may
    /// accept new flows. farmd extends it every pulse while it runs and may own buckets; once
    /// it has passed, the data plane accepts no new flow and keeps only the flows it holds.
    /// 0 = no lease yet (fenced).
    pub lease_until_ns: AtomicU64,
    /// Reserved, zero.
    pub reserved: [u64; 20],
}

/// Header of one slot, followed by `n_buckets` `u16` entries (owner | prev_owner << 8).
#[repr(C)]
#[derive(Debug)]
pub struct SlotHeader {
    /// Generation the slot holds.
    pub generation: AtomicU64,
    /// Live-member bitmap (bit i = node id i).
    pub live: AtomicU64,
    /// Reserved, zero.
    pub reserved: [u64; 6],
}

/// Data-plane wide status, written by the data plane.
#[repr(C)]
#[derive(Debug)]
pub struct DpHeader {
    /// 1 when the uplink reports link up.
    pub link_up: AtomicU32,
    /// Uplink speed in Mbit/s.
    pub link_speed_mbps: AtomicU32,
    /// pid of the data plane.
    pub pid: AtomicU32,
    /// Reserved, zero.
    pub reserved0: u32,
    /// TSC ticks per second of the data plane's workers, to turn the `busy_cycles` counter
    /// into time; 0 = not reported (a data plane older than this field, which was reserved
    /// and zero: no ABI change).
    pub tsc_hz: AtomicU64,
    /// Reserved, zero.
    pub reserved: [u64; 5],
}

/// One worker lcore's area, written only by that lcore (and reset by the writer after the data
/// plane died).
#[repr(C, align(64))]
#[derive(Debug)]
pub struct LcoreArea {
    /// Generation this lcore runs on; [`OFFLINE`] bit set while it sleeps or is absent.
    pub ack: AtomicU64,
    /// CLOCK_MONOTONIC nanoseconds of its last loop iteration (0 = never).
    pub stamp: AtomicU64,
    /// Reserved, zero.
    pub reserved: [u64; 6],
    /// Counters, indexed by [`crate::Counter`].
    pub counters: [AtomicU64; COUNTER_SLOTS],
}

/// Bit set in [`LcoreArea::ack`] while the lcore is quiescent (sleeping, or no process).
pub const OFFLINE: u64 = 1 << 63;

// SAFETY: all four are repr(C), made of u32/u64 and their atomics only, with sizes that are
// multiples of 8 and no implicit padding (checked by the size assertions below).
unsafe impl ShmSafe for Header {}
// SAFETY: as above.
unsafe impl ShmSafe for SlotHeader {}
// SAFETY: as above.
unsafe impl ShmSafe for DpHeader {}
// SAFETY: as above; align(64) with a size that is a multiple of 64 adds no padding.
unsafe impl ShmSafe for LcoreArea {}
// SAFETY: atomics of integers are valid for any bit pattern and have no padding.
unsafe impl ShmSafe for AtomicU16 {}
// SAFETY: as above.
unsafe impl ShmSafe for AtomicU32 {}

const _: () = assert!(std::mem::size_of::<Header>() == 256);
const _: () = assert!(std::mem::size_of::<SlotHeader>() == 64);
const _: () = assert!(std::mem::size_of::<DpHeader>() == 64);
const _: () = assert!(std::mem::size_of::<LcoreArea>() == 320);

/// Offsets and sizes derived from the two parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Buckets.
    pub n_buckets: u32,
    /// Lcore areas.
    pub n_lcores: u32,
    /// Slot offsets.
    pub slot_offset: [u64; 2],
    /// Data-plane region offset.
    pub dp_offset: u64,
    /// Offset of the first lcore area.
    pub lcores_offset: u64,
    /// Offset of the flows-per-bucket array.
    pub flows_offset: u64,
    /// File size.
    pub total_size: u64,
}

const fn align64(x: u64) -> u64 {
    (x + 63) & !63
}

impl Layout {
    /// Computes the layout; the caller has validated the parameters.
    pub fn new(n_buckets: u32, n_lcores: u32) -> Layout {
        let hdr = std::mem::size_of::<Header>() as u64;
        let slot_size = align64(std::mem::size_of::<SlotHeader>() as u64 + 2 * u64::from(n_buckets));
        let s0 = hdr;
        let s1 = s0 + slot_size;
        let dp = s1 + slot_size;
        let lcores = dp + std::mem::size_of::<DpHeader>() as u64;
        let flows = lcores + u64::from(n_lcores) * std::mem::size_of::<LcoreArea>() as u64;
        let total = align64(flows + 4 * u64::from(n_buckets));
        Layout {
            n_buckets,
            n_lcores,
            slot_offset: [s0, s1],
            dp_offset: dp,
            lcores_offset: lcores,
            flows_offset: flows,
            total_size: total,
        }
    }
}

/// Packs an entry into the slot's `u16` form.
#[inline(always)]
pub const fn pack(owner: u8, prev_owner: u8) -> u16 {
    owner as u16 | (prev_owner as u16) << 8
}
