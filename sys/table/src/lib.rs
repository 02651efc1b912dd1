//! The shared-memory table between farmd (sole writer) and the data plane (reader), and the
//! keyed client-tuple hash that every component uses to map a client to a bucket.
//!
//! See `layout` for the file format and `DESIGN.md` ("The table") for the protocol: the writer
//! fills the idle one of two slots and publishes it with a release store of the generation;
//! each data-plane lcore acknowledges the generation it runs on, and the writer never rewrites a
//! slot that an online lcore may still read (quiescent-state based reclamation, as in RCU).
//! The hot path does no system calls and takes no locks.

mod counters;
mod error;
mod hash;
pub mod layout;
mod mmap;
mod reader;
mod writer;

pub use counters::{Counter, COUNTER_SLOTS};
pub use error::TableError;
pub use hash::{bucket_of, bucket_v4, bucket_v6, hash_v4, hash_v6, Affinity, HashKey};
pub use layout::ABI_VERSION;
pub use reader::{LcoreHandle, SlotView, TableReader};
pub use writer::{DataplaneStatus, LcoreStatus, TableParams, TableWriter};

/// Node ids are `0..MAX_NODES`; live bitmaps are `u64`.
pub const MAX_NODES: usize = 64;
/// "No owner" / "no previous owner".
pub const NO_NODE: u8 = 0xFF;
/// Maximum worker lcores per data plane.
pub const MAX_LCORES: usize = 32;
/// Smallest bucket count.
pub const MIN_BUCKETS: u32 = 256;
/// Largest bucket count.
pub const MAX_BUCKETS: u32 = 65536;
/// Default bucket count.
pub const DEFAULT_BUCKETS: u32 = 4096;

/// One bucket's assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BucketEntry {
    /// The node that accepts new connections in this bucket ([`NO_NODE`] if none).
    pub owner: u8,
    /// While not [`NO_NODE`], a handover is in progress: this previous owner still serves the
    /// flows it knows, and the owner accepts only SYNs and its own flows.
    pub prev_owner: u8,
}

impl BucketEntry {
    /// An unowned bucket.
    pub const UNOWNED: BucketEntry = BucketEntry { owner: NO_NODE, prev_owner: NO_NODE };
    /// A bucket owned by `owner` with no handover in progress.
    pub const fn owned(owner: u8) -> BucketEntry {
        BucketEntry { owner, prev_owner: NO_NODE }
    }
}
