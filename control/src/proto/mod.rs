//! The heartbeat: one UDP datagram from a node to one peer, every pulse, on every heartbeat LAN.
//!
//! ```text
//!  0               1               2               3
//!  0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7
//! +---------------+---------------+---------------+---------------+
//! |  version (1)  |     state     |     flags     |    sender     |  0
//! +---------------+---------------+---------------+---------------+
//! |     dest      |   reserved    |            weight             |  4
//! +---------------+---------------+---------------+---------------+
//! |                          cluster id                           |  8
//! +---------------------------------------------------------------+
//! |                   incarnation (64)                            | 12
//! |                   sequence (64)                               | 20
//! |                   timestamp, ns (64)                          | 28
//! |                   view: live UP members bitmap (64)           | 36
//! |                   view digest (64)                            | 44
//! |                   table generation (64)                       | 52
//! |                   ack: dest's incarnation (64)                | 60
//! |                   ack: dest's last sequence (64)              | 68
//! +-------------------------------+-------------------------------+
//! |        drain run count        |  runs: start (16), len-1 (16) | 76
//! +-------------------------------+-------------------------------+
//! |   ... runs ...                                                |
//! +---------------------------------------------------------------+
//! |   HMAC-SHA256 over every preceding byte (32 bytes)            |
//! +---------------------------------------------------------------+
//! ```
//!
//! All integers are big-endian. Flags: bit 0 `ACTIVE` (the sender accepts new connections in
//! at least one bucket), bit 1 `ACK` (the ack fields are valid), bit 2 `UNSETTLED` (the sender
//! started less than `dead_after` ago and has not heard every configured peer yet). A datagram is at most
//! [`MAX_DATAGRAM`] bytes: at most [`MAX_RUNS`] drain runs; larger drain sets are coarsened
//! (see [`DrainSet::coarsen`]).
//!
//! Each heartbeat is addressed to one peer (`dest`) and acknowledges the newest authenticated
//! heartbeat the sender received from that peer, (incarnation, sequence): the handover
//! protocol (`membership`) needs to know that a peer's statement was made *after* it heard
//! ours. The acknowledged incarnation is also the *echo* of invariant I5: a receiver counts
//! the sender alive only on heartbeats that echo the receiver's current incarnation, which a
//! heartbeat recorded before the receiver (re)started cannot do ([`Reject::NoEcho`]). The
//! HMAC covers the echo, so it cannot be forged without the secret. See
//! `docs/threat-model.md`.

mod codec;
mod drain;
mod replay;
#[cfg(test)]
mod tests;

pub use codec::{Codec, EncodeError, HEADER_LEN, MAC_LEN, MAX_DATAGRAM, MAX_RUNS, VERSION};
pub use drain::{DrainSet, Run, MAX_WIRE_BUCKETS};
pub use replay::{Reject, RejectCounters, ReplayGuard};

use std::fmt;

/// A node's module state as carried in heartbeats (values as the `farm_state` metric).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum NodeState {
    /// Stopped.
    #[default]
    Stop,
    /// Held out of the farm by a checker.
    Wait,
    /// In the farm; the only state that owns buckets.
    Up,
    /// Starting (`start_both` running).
    Starting,
    /// Stopping (leaving the farm, `stop_both`).
    Stopping,
}

impl NodeState {
    /// Wire value.
    pub fn to_wire(self) -> u8 {
        match self {
            NodeState::Stop => 0,
            NodeState::Wait => 1,
            NodeState::Up => 2,
            NodeState::Starting => 3,
            NodeState::Stopping => 4,
        }
    }

    /// From the wire value.
    pub fn from_wire(v: u8) -> Option<NodeState> {
        Some(match v {
            0 => NodeState::Stop,
            1 => NodeState::Wait,
            2 => NodeState::Up,
            3 => NodeState::Starting,
            4 => NodeState::Stopping,
            _ => return None,
        })
    }

    /// Name as shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Stop => "STOP",
            NodeState::Wait => "WAIT",
            NodeState::Up => "UP",
            NodeState::Starting => "STARTING",
            NodeState::Stopping => "STOPPING",
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The newest authenticated heartbeat the sender received from the destination (whether or
/// not it proved the destination alive): the destination's incarnation echoed back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ack {
    /// The destination's incarnation.
    pub incarnation: u64,
    /// The destination's sequence number.
    pub sequence: u64,
}

/// A decoded heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Heartbeat {
    /// Cluster id (config `module.cluster_id`).
    pub cluster_id: u32,
    /// Sending node.
    pub sender: u8,
    /// Node the datagram is addressed to.
    pub dest: u8,
    /// Sender's incarnation: greater after each restart (e.g. its start time in ns).
    pub incarnation: u64,
    /// Per-incarnation sequence number, incremented for every heartbeat the sender emits (the
    /// copies sent on several LANs share it).
    pub sequence: u64,
    /// Sender's module state.
    pub state: NodeState,
    /// Sender's weight.
    pub weight: u16,
    /// The sender accepts new connections in at least one bucket.
    pub active: bool,
    /// The sender has heard every configured peer since it started, or started at least
    /// `dead_after` ago: its view may be relied upon to take buckets from absent nodes.
    pub settled: bool,
    /// The sender's view: the live UP members it assigns buckets to (bit i = node i).
    pub view: u64,
    /// Digest of the sender's assignment inputs (members, weights, config); two nodes with the
    /// same view and digest compute the same table.
    pub view_digest: u64,
    /// Generation of the sender's own published table.
    pub generation: u64,
    /// Sender's clock when sending, ns (informational).
    pub timestamp_ns: u64,
    /// The newest heartbeat the sender received from `dest`, if any (the echo of `dest`'s
    /// incarnation).
    pub ack: Option<Ack>,
    /// Buckets the sender still drains.
    pub drain: DrainSet,
}
