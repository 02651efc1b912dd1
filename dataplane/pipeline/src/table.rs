//! How the classifier reads the bucket table, and who owns what.

use farm_table::{BucketEntry, SlotView, NO_NODE};

/// Read access to the published bucket table for one burst.
pub trait OwnerLookup {
    /// This node's id.
    fn node_id(&self) -> u8;
    /// The entry of `bucket` (any value; implementations mask or bound it).
    fn entry(&self, bucket: u32) -> BucketEntry;
    /// True when farmd's lease has expired: accept no new flow, keep held
    /// ones (DESIGN.md I1). Default: never (in-memory tables).
    #[inline(always)]
    fn fenced(&self) -> bool {
        false
    }
}

impl OwnerLookup for SlotView<'_> {
    #[inline]
    fn node_id(&self) -> u8 {
        SlotView::node_id(self)
    }
    #[inline]
    fn entry(&self, bucket: u32) -> BucketEntry {
        SlotView::entry(self, bucket)
    }
    #[inline(always)]
    fn fenced(&self) -> bool {
        SlotView::fenced(self)
    }
}

impl<T: OwnerLookup + ?Sized> OwnerLookup for &T {
    #[inline]
    fn node_id(&self) -> u8 {
        (**self).node_id()
    }
    #[inline]
    fn entry(&self, bucket: u32) -> BucketEntry {
        (**self).entry(bucket)
    }
    #[inline(always)]
    fn fenced(&self) -> bool {
        (**self).fenced()
    }
}

/// `T` seen as fenced: the pipeline classifies a burst through it when the
/// burst's view is fenced (and in tests), so the fenced answer is a constant
/// in the compiled classifier, not a test per packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FencedTable<T>(pub T);

/// `T` seen as not fenced (the trait's constant `false`): the pipeline
/// classifies a burst through it when the burst's view holds a valid lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasedTable<T>(pub T);

impl<T: OwnerLookup> OwnerLookup for LeasedTable<T> {
    #[inline(always)]
    fn node_id(&self) -> u8 {
        self.0.node_id()
    }
    #[inline(always)]
    fn entry(&self, bucket: u32) -> BucketEntry {
        self.0.entry(bucket)
    }
}

impl<T: OwnerLookup> OwnerLookup for FencedTable<T> {
    #[inline(always)]
    fn node_id(&self) -> u8 {
        self.0.node_id()
    }
    #[inline(always)]
    fn entry(&self, bucket: u32) -> BucketEntry {
        self.0.entry(bucket)
    }
    #[inline(always)]
    fn fenced(&self) -> bool {
        true
    }
}

/// An in-memory table: for tests, benchmarks and running without farmd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticTable {
    /// This node's id.
    pub node_id: u8,
    /// One entry per bucket (length a power of two).
    pub entries: Vec<BucketEntry>,
}

impl StaticTable {
    /// Every bucket owned by `owner`.
    pub fn all_owned_by(node_id: u8, owner: u8, n_buckets: u32) -> StaticTable {
        StaticTable {
            node_id,
            entries: vec![BucketEntry::owned(owner); n_buckets as usize],
        }
    }
}

impl OwnerLookup for StaticTable {
    fn node_id(&self) -> u8 {
        self.node_id
    }
    fn entry(&self, bucket: u32) -> BucketEntry {
        let mask = self.entries.len().saturating_sub(1);
        self.entries
            .get(bucket as usize & mask)
            .copied()
            .unwrap_or(BucketEntry::UNOWNED)
    }
}

/// Whether this node answers ARP / ND for requesters hashing to `entry`:
/// the owner does; when a bucket has no owner, its previous owner does, so
/// that resolution survives the gap of a handover.
#[inline]
pub fn answers_neighbors(entry: BucketEntry, me: u8) -> bool {
    entry.owner == me || (entry.owner == NO_NODE && entry.prev_owner == me)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_table_masks() {
        let mut t = StaticTable::all_owned_by(1, 2, 256);
        t.entries[3] = BucketEntry::owned(1);
        assert_eq!(t.entry(3).owner, 1);
        assert_eq!(t.entry(256 + 3).owner, 1);
        assert_eq!(t.node_id(), 1);
        let empty = StaticTable {
            node_id: 0,
            entries: vec![],
        };
        assert_eq!(empty.entry(7), BucketEntry::UNOWNED);
    }

    #[test]
    fn neighbor_answering() {
        assert!(answers_neighbors(BucketEntry::owned(1), 1));
        assert!(!answers_neighbors(BucketEntry::owned(2), 1));
        assert!(answers_neighbors(
            BucketEntry {
                owner: NO_NODE,
                prev_owner: 1
            },
            1
        ));
        assert!(!answers_neighbors(
            BucketEntry {
                owner: 2,
                prev_owner: 1
            },
            1
        ));
        assert!(!answers_neighbors(BucketEntry::UNOWNED, 1));
    }
}
