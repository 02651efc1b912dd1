//! What one node knows about one peer.

use std::time::Duration;

use crate::proto::{Ack, DrainSet, Heartbeat, NodeState};

/// Liveness of a peer as seen by this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// Never heard since this node started (no valid heartbeat echoing this node's
    /// incarnation), and the startup grace (`dead_after`) is not over: the peer might be alive
    /// and own buckets, so this node takes none.
    Unknown,
    /// A valid heartbeat (authenticated, fresh, echoing this node's current incarnation)
    /// arrived less than `dead_after` ago.
    Alive,
    /// No valid heartbeat for `dead_after`.
    Dead,
}

/// A peer as seen by this node (read-only snapshot for the API and logs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// Node id.
    pub id: u8,
    /// Liveness.
    pub liveness: Liveness,
    /// When its last valid heartbeat arrived (this node's clock).
    pub last_seen: Option<Duration>,
    /// Its incarnation, if heard.
    pub incarnation: Option<u64>,
    /// Its state, per its last heartbeat.
    pub state: NodeState,
    /// Its weight, per its last heartbeat.
    pub weight: u16,
    /// It accepts new connections in some bucket.
    pub active: bool,
    /// Its view (live UP members).
    pub view: u64,
    /// Its view digest.
    pub view_digest: u64,
    /// Its table generation.
    pub generation: u64,
    /// Buckets it drains.
    pub draining: u32,
}

/// The latest valid heartbeat of the peer (one that echoed this node's incarnation), reduced
/// to what the protocol uses.
#[derive(Clone, Debug)]
pub(crate) struct Heard {
    pub(crate) incarnation: u64,
    pub(crate) state: NodeState,
    pub(crate) weight: u16,
    pub(crate) active: bool,
    pub(crate) settled: bool,
    pub(crate) view: u64,
    pub(crate) view_digest: u64,
    pub(crate) generation: u64,
    pub(crate) ack: Option<Ack>,
    pub(crate) drain: DrainSet,
}

impl Heard {
    pub(crate) fn from_heartbeat(hb: &Heartbeat) -> Heard {
        Heard {
            incarnation: hb.incarnation,
            state: hb.state,
            weight: hb.weight,
            active: hb.active,
            settled: hb.settled,
            view: hb.view,
            view_digest: hb.view_digest,
            generation: hb.generation,
            ack: hb.ack,
            drain: hb.drain.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Peer {
    pub(crate) id: u8,
    pub(crate) priority: u32,
    pub(crate) liveness: Liveness,
    pub(crate) last_seen: Option<Duration>,
    pub(crate) heard: Option<Heard>,
    /// Send it a heartbeat at the next tick, without waiting for the pulse.
    pub(crate) urgent: bool,
}

impl Peer {
    pub(crate) fn new(id: u8, priority: u32) -> Peer {
        Peer { id, priority, liveness: Liveness::Unknown, last_seen: None, heard: None, urgent: false }
    }

    /// Alive and UP with a positive weight: a member of the assignment.
    pub(crate) fn is_member(&self) -> bool {
        self.liveness == Liveness::Alive && self.heard.as_ref().is_some_and(|h| h.state == NodeState::Up)
    }

    pub(crate) fn info(&self) -> PeerInfo {
        let h = self.heard.as_ref();
        PeerInfo {
            id: self.id,
            liveness: self.liveness,
            last_seen: self.last_seen,
            incarnation: h.map(|h| h.incarnation),
            state: h.map_or(NodeState::Stop, |h| h.state),
            weight: h.map_or(0, |h| h.weight),
            active: h.is_some_and(|h| h.active),
            view: h.map_or(0, |h| h.view),
            view_digest: h.map_or(0, |h| h.view_digest),
            generation: h.map_or(0, |h| h.generation),
            draining: h.map_or(0, |h| h.drain.bucket_count()),
        }
    }
}
