//! Rejection reasons, their counters, and the replay/staleness guard.

use farm_table::MAX_NODES;

use super::Heartbeat;

/// Why a datagram was not accepted. Small and `Copy`: counted, logged at debug level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Reject {
    /// Shorter than a header and a MAC.
    #[error("truncated datagram ({len} bytes)")]
    Truncated {
        /// Received length.
        len: usize,
    },
    /// Longer than [`super::MAX_DATAGRAM`] or not matching its run count.
    #[error("bad datagram length {len}, expected {expected}")]
    BadLength {
        /// Received length.
        len: usize,
        /// Length implied by the header.
        expected: usize,
    },
    /// Unknown protocol version.
    #[error("unsupported heartbeat version {0}")]
    BadVersion(u8),
    /// Another farm's heartbeat (different cluster id).
    #[error("heartbeat of foreign cluster {0}")]
    ForeignCluster(u32),
    /// The HMAC does not verify (wrong secret, corruption or forgery).
    #[error("bad MAC")]
    BadMac,
    /// Authenticated but structurally invalid.
    #[error("malformed heartbeat: {0}")]
    Malformed(&'static str),
    /// Addressed to another node.
    #[error("heartbeat addressed to node {0}")]
    WrongDest(u8),
    /// Our own heartbeat came back.
    #[error("own heartbeat")]
    FromSelf,
    /// Sender not in the configured node list.
    #[error("heartbeat from unconfigured node {0}")]
    UnknownSender(u8),
    /// From an incarnation older than one already seen (a restarted node's old datagram).
    #[error("heartbeat from an old incarnation")]
    OldIncarnation,
    /// Sequence below the last one accepted (reordered or replayed).
    #[error("stale heartbeat (sequence below the last accepted)")]
    Stale,
    /// Sequence equal to the last one accepted (the copy from another LAN, a duplicate, or a
    /// replay).
    #[error("duplicate heartbeat")]
    Duplicate,
    /// Authenticated, but from a source address that is none of the claimed sender's
    /// configured heartbeat addresses (checked by the daemon, which knows the addresses).
    #[error("heartbeat of node {0} from an address not configured for it")]
    WrongSource(u8),
    /// Authenticated and fresh, but it does not echo this node's current incarnation: the
    /// sender has not heard this incarnation (yet), or it is a recording made before this node
    /// restarted. No evidence that the sender is alive now (invariant I5); answered with a
    /// heartbeat that the sender, if alive, echoes within a round trip.
    #[error("heartbeat does not echo our incarnation")]
    NoEcho,
}

impl Reject {
    /// Every reason's counter name, in [`Reject::index`] order.
    pub const NAMES: [&'static str; 14] = [
        "truncated",
        "bad_length",
        "bad_version",
        "foreign_cluster",
        "bad_mac",
        "malformed",
        "wrong_dest",
        "from_self",
        "unknown_sender",
        "old_incarnation",
        "stale",
        "duplicate",
        "wrong_source",
        "no_echo",
    ];

    /// Index of this reason's counter.
    pub fn index(self) -> usize {
        match self {
            Reject::Truncated { .. } => 0,
            Reject::BadLength { .. } => 1,
            Reject::BadVersion(_) => 2,
            Reject::ForeignCluster(_) => 3,
            Reject::BadMac => 4,
            Reject::Malformed(_) => 5,
            Reject::WrongDest(_) => 6,
            Reject::FromSelf => 7,
            Reject::UnknownSender(_) => 8,
            Reject::OldIncarnation => 9,
            Reject::Stale => 10,
            Reject::Duplicate => 11,
            Reject::WrongSource(_) => 12,
            Reject::NoEcho => 13,
        }
    }

    /// The counter name.
    pub fn name(self) -> &'static str {
        Reject::NAMES[self.index()]
    }
}

/// Count of rejected datagrams per reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RejectCounters {
    counts: [u64; Reject::NAMES.len()],
}

impl RejectCounters {
    /// Counts one rejection.
    pub fn bump(&mut self, r: Reject) {
        self.counts[r.index()] += 1;
    }

    /// Count for a reason.
    pub fn get(&self, r: Reject) -> u64 {
        self.counts[r.index()]
    }

    /// Count by counter name (0 for an unknown name).
    pub fn by_name(&self, name: &str) -> u64 {
        Reject::NAMES.iter().position(|n| *n == name).map_or(0, |i| self.counts[i])
    }

    /// (name, count) for every reason.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Reject::NAMES.iter().copied().zip(self.counts.iter().copied())
    }

    /// Sum over all reasons.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// Rejects replayed and stale heartbeats: per sender, the newest (incarnation, sequence)
/// accepted so far. Run it only on authenticated heartbeats.
#[derive(Clone, Debug)]
pub struct ReplayGuard {
    last: [Option<(u64, u64)>; MAX_NODES],
}

impl Default for ReplayGuard {
    fn default() -> Self {
        ReplayGuard { last: [None; MAX_NODES] }
    }
}

impl ReplayGuard {
    /// An empty guard.
    pub fn new() -> ReplayGuard {
        ReplayGuard::default()
    }

    /// Accepts `hb` if it is newer than everything accepted from its sender, and records it.
    pub fn check(&mut self, hb: &Heartbeat) -> Result<(), Reject> {
        let slot = self.last.get_mut(usize::from(hb.sender)).ok_or(Reject::Malformed("sender id out of range"))?;
        if let Some((inc, seq)) = *slot {
            if hb.incarnation < inc {
                return Err(Reject::OldIncarnation);
            }
            if hb.incarnation == inc {
                if hb.sequence == seq {
                    return Err(Reject::Duplicate);
                }
                if hb.sequence < seq {
                    return Err(Reject::Stale);
                }
            }
        }
        *slot = Some((hb.incarnation, hb.sequence));
        Ok(())
    }

    /// The newest (incarnation, sequence) accepted from `sender`.
    pub fn last(&self, sender: u8) -> Option<(u64, u64)> {
        self.last.get(usize::from(sender)).copied().flatten()
    }
}
