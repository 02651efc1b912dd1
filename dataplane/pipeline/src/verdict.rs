//! What the classifier decides for a frame, and the counter each decision
//! is accounted under.

use farm_table::Counter;

/// Why a frame was delivered to the kernel (through the TAP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// Addressed to the node (its MAC, broadcast, multicast): unchanged.
    Host,
    /// Like `Host`, but not IPv4/IPv6/ARP (counted as `NonIp` too).
    HostNonIp,
    /// VIP traffic of a bucket this node owns; destination MAC rewritten.
    Vip,
    /// VIP traffic of a bucket being handed over, kept by this node (the
    /// previous owner) because it knows the flow; destination MAC rewritten.
    VipHandoverKept,
    /// An ARP reply / neighbour advertisement addressed to a VIP (the answer
    /// to a solicitation one of the nodes' kernels sent from the VIP);
    /// destination MAC rewritten. Every node delivers it: the answer is
    /// true, and the node that asked needs it.
    VipNeighbor,
}

/// A reply the classifier wrote into the caller's reply buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyKind {
    /// ARP reply for a VIP.
    Arp,
    /// Neighbour advertisement for a VIP.
    Nd,
}

/// Why a frame was dropped. Each maps to one [`Counter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Truncated or malformed (including ND with a hop limit other than 255).
    Malformed,
    /// VIP traffic of a bucket another node owns.
    NotMine,
    /// VIP traffic of a bucket nobody owns.
    NoOwner,
    /// VIP traffic matching no rule (includes ICMP errors about no VIP flow).
    NoRule,
    /// A fragment to a VIP whose rules hash on ports (see the crate docs).
    Fragment,
    /// Unicast for another MAC, flooded by the switch.
    Flooded,
    /// Handover in progress: this new owner leaves an unknown non-SYN packet
    /// to the previous owner.
    HandoverPassed,
    /// ARP/ND for a VIP that another node answers, a probe for a VIP
    /// (sender 0.0.0.0 / ::, never answered so that the nodes' own duplicate
    /// address detection succeeds), or neighbour traffic whose sender is a
    /// VIP (another node's kernel, or an address conflict): never given to
    /// the kernel.
    NeighNotMine,
    /// From the TAP: ARP/ND that would bind a VIP to this node's MAC, or a
    /// frame with a virtual MAC as source.
    VipNeighFromTap,
    /// The reply could not be written into the frame buffer.
    NoBuffer,
    /// farmd's lease has expired (DESIGN.md I1): a new flow, an unknown
    /// packet of a bucket this node owns, or an ARP/ND answer it would have
    /// given, refused. Held flows still pass.
    Fenced,
}

impl DropReason {
    /// The counter this drop is accounted under.
    pub const fn counter(self) -> Counter {
        match self {
            DropReason::Malformed => Counter::DropMalformed,
            DropReason::NotMine => Counter::NotMine,
            DropReason::NoOwner => Counter::NoOwner,
            DropReason::NoRule => Counter::NoRule,
            DropReason::Fragment => Counter::DropFragment,
            DropReason::Flooded => Counter::DropFlooded,
            DropReason::HandoverPassed => Counter::HandoverPassed,
            DropReason::NeighNotMine => Counter::NeighNotMine,
            DropReason::VipNeighFromTap => Counter::DropVipNeighFromTap,
            DropReason::NoBuffer => Counter::DropNoMbuf,
            DropReason::Fenced => Counter::DropFenced,
        }
    }
}

/// The classifier's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Uplink -> TAP (the frame may have been rewritten in place).
    ToTap(Delivery),
    /// TAP -> uplink (the frame may have been rewritten in place).
    ToWire,
    /// Send the `len` bytes written to the reply buffer out of the uplink,
    /// instead of the frame.
    Reply {
        /// Reply length (padded to 60 bytes).
        len: usize,
        /// What it is.
        kind: ReplyKind,
    },
    /// Drop.
    Drop(DropReason),
}

impl Verdict {
    /// The counters this verdict adds one to (the frame's Rx/TapRx excluded).
    pub fn counters(self) -> (Counter, Option<Counter>) {
        match self {
            Verdict::ToTap(Delivery::HostNonIp) => (Counter::ToTap, Some(Counter::NonIp)),
            Verdict::ToTap(Delivery::VipHandoverKept) => {
                (Counter::ToTap, Some(Counter::HandoverKept))
            }
            Verdict::ToTap(_) => (Counter::ToTap, None),
            Verdict::ToWire => (Counter::TapToWire, None),
            Verdict::Reply {
                kind: ReplyKind::Arp,
                ..
            } => (Counter::ArpReply, None),
            Verdict::Reply {
                kind: ReplyKind::Nd,
                ..
            } => (Counter::NdReply, None),
            Verdict::Drop(r) => (r.counter(), None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_drop_reason_has_a_distinct_counter() {
        let all = [
            DropReason::Malformed,
            DropReason::NotMine,
            DropReason::NoOwner,
            DropReason::NoRule,
            DropReason::Fragment,
            DropReason::Flooded,
            DropReason::HandoverPassed,
            DropReason::NeighNotMine,
            DropReason::VipNeighFromTap,
            DropReason::NoBuffer,
            DropReason::Fenced,
        ];
        let counters: std::collections::HashSet<_> = all.iter().map(|r| r.counter()).collect();
        assert_eq!(counters.len(), all.len());
        assert!(!counters.contains(&Counter::ToTap) && !counters.contains(&Counter::Rx));
    }

    #[test]
    fn verdict_counters() {
        assert_eq!(
            Verdict::ToTap(Delivery::Vip).counters(),
            (Counter::ToTap, None)
        );
        assert_eq!(
            Verdict::ToTap(Delivery::HostNonIp).counters(),
            (Counter::ToTap, Some(Counter::NonIp))
        );
        assert_eq!(
            Verdict::ToTap(Delivery::VipHandoverKept).counters(),
            (Counter::ToTap, Some(Counter::HandoverKept))
        );
        assert_eq!(
            Verdict::Reply {
                len: 60,
                kind: ReplyKind::Nd
            }
            .counters(),
            (Counter::NdReply, None)
        );
        assert_eq!(Verdict::ToWire.counters(), (Counter::TapToWire, None));
        assert_eq!(
            Verdict::Drop(DropReason::Flooded).counters(),
            (Counter::DropFlooded, None)
        );
    }
}
