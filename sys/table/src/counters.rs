//! Counters the data plane publishes per lcore.

/// Number of counter slots per lcore in the ABI (room to add counters without a version bump).
pub const COUNTER_SLOTS: usize = 32;

macro_rules! counters {
    ($($(#[doc = $doc:literal])* $name:ident = $idx:literal => $text:literal,)*) => {
        /// A data-plane counter; its discriminant is its slot in [`crate::layout::LcoreArea::counters`].
        #[repr(usize)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Counter {
            $($(#[doc = $doc])* $name = $idx,)*
        }
        impl Counter {
            /// Every counter, in slot order.
            pub const ALL: &'static [Counter] = &[$(Counter::$name,)*];
            /// Stable snake_case name (used in metrics and logs).
            pub const fn name(self) -> &'static str {
                match self { $(Counter::$name => $text,)* }
            }
        }
    };
}

counters! {
    /// Frames received on the uplink.
    Rx = 0 => "rx",
    /// Frames handed to the kernel through the local port.
    ToTap = 1 => "to_tap",
    /// VIP frames dropped because another node owns their bucket.
    NotMine = 2 => "not_mine",
    /// VIP frames matching no rule, dropped.
    NoRule = 3 => "no_rule",
    /// ARP replies sent for a VIP.
    ArpReply = 4 => "arp_reply",
    /// IPv6 neighbour advertisements sent for a VIP.
    NdReply = 5 => "nd_reply",
    /// Frames received from the kernel.
    TapRx = 6 => "tap_rx",
    /// Frames sent from the kernel to the wire.
    TapToWire = 7 => "tap_to_wire",
    /// Malformed or truncated frames, dropped.
    DropMalformed = 8 => "drop_malformed",
    /// IP fragments dropped (see the fragment policy).
    DropFragment = 9 => "drop_fragment",
    /// Unicast frames for another MAC (flooded by the switch), dropped.
    DropFlooded = 10 => "drop_flooded",
    /// ARP/ND from the kernel that would bind a VIP to the node's MAC, dropped.
    DropVipNeighFromTap = 11 => "drop_vip_neigh_from_tap",
    /// Frames the uplink's transmit queue refused.
    DropTxFull = 12 => "drop_tx_full",
    /// Frames the local port's transmit queue refused.
    DropTapFull = 13 => "drop_tap_full",
    /// Packets of a handed-over bucket kept by this node (previous owner, known flow).
    HandoverKept = 14 => "handover_kept",
    /// Packets of a handed-over bucket left to the previous owner by the new owner.
    HandoverPassed = 15 => "handover_passed",
    /// ARP/ND for a VIP not answered because another node owns the requester.
    NeighNotMine = 16 => "neigh_not_mine",
    /// Frames with no known ethertype handed to the kernel or dropped.
    NonIp = 17 => "non_ip",
    /// Packets dropped because the table has no owner for their bucket.
    NoOwner = 18 => "no_owner",
    /// Replies (ARP/ND) that could not be built (no buffer).
    DropNoMbuf = 19 => "drop_no_mbuf",
    /// New flows (SYNs, unknown flows, echo, ARP/ND answers) refused because farmd's lease
    /// had expired (fenced: DESIGN.md I1).
    DropFenced = 20 => "drop_fenced",
    /// TSC cycles spent in polls that received at least one frame, from before the poll's rx
    /// bursts to after its transmissions and frees (convert with the data plane's TSC Hz,
    /// `DataplaneStatus::tsc_hz`). Not a frame count.
    BusyCycles = 21 => "busy_cycles",
    /// Polls that received at least one frame (the polls `BusyCycles` measured). Not a frame
    /// count.
    BusyPolls = 22 => "busy_polls",
}

impl Counter {
    /// False for the busy-time accounting (`BusyCycles`, `BusyPolls`), true for the counters
    /// of frames.
    pub const fn counts_frames(self) -> bool {
        !matches!(self, Counter::BusyCycles | Counter::BusyPolls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_dense_unique_and_fit() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{c:?} out of order");
            assert!((*c as usize) < COUNTER_SLOTS);
        }
        let names: std::collections::HashSet<_> = Counter::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), Counter::ALL.len());
    }

    #[test]
    fn busy_accounting_slots_are_pinned() {
        // Read by name and slot outside this crate (perf/bench): never move them.
        assert_eq!((Counter::BusyCycles as usize, Counter::BusyCycles.name()), (21, "busy_cycles"));
        assert_eq!((Counter::BusyPolls as usize, Counter::BusyPolls.name()), (22, "busy_polls"));
        assert!(!Counter::BusyCycles.counts_frames() && !Counter::BusyPolls.counts_frames());
        assert!(Counter::ALL[..21].iter().all(|c| c.counts_frames()));
    }
}
