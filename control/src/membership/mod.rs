//! Membership and handover: one node's view of the cluster, as a pure state machine.
//!
//! # Failure detection
//! Every node sends a heartbeat ([`crate::proto::Heartbeat`]) to every configured peer each
//! `pulse`, on every heartbeat LAN, and at once when its view changes or a peer's view changed
//! (so that handovers take a round trip, not a pulse). A peer is dead after `dead_after`
//! without a valid heartbeat on any LAN. A peer never heard since this node started is
//! *unknown* during the first `dead_after` and blocks every acquisition (it may be alive and
//! own buckets).
//!
//! A heartbeat is *valid* when it is authenticated, fresh (its sender's incarnation and
//! sequence are newer than any seen, [`crate::proto::ReplayGuard`]) and echoes this node's
//! current incarnation in its acknowledgement (invariant I5). The replay guard starts empty
//! when farmd starts; the echo is what keeps a recording of a dead peer, made before this node
//! started, from passing for a live peer: such a heartbeat is rejected
//! ([`crate::proto::Reject::NoEcho`], counted) and only makes this node answer. Every
//! heartbeat acknowledges the newest authenticated heartbeat received from its destination,
//! valid or not, so two nodes that start together hear each other after one round trip: the
//! first heartbeat of each is not valid for the other, the answer to it is.
//!
//! # View, assignment
//! The *view* is the set of live UP members with their weights; its digest also covers the
//! shared configuration. The owner of each bucket in a view is given by [`crate::assign`]
//! (weighted rendezvous hashing, or failover). Every node publishes only buckets that its
//! current view assigns to it: on a view change it *releases* the others at once.
//!
//! # Handover (invariant I1: release before acquire)
//! A node *acquires* the buckets its view assigns to it only when every peer that may be alive
//! has sent a heartbeat that (a) reports the same view and digest, (b) acknowledges a
//! heartbeat of this node sent since its view began (its *epoch*), and (c) is *settled*: its
//! sender has heard every configured peer since it started, or started `dead_after` ago (a
//! restarted node has forgotten whom its previous incarnation acknowledged; until then its
//! view is no evidence that an unheard node is gone). Such a peer had released, before sending
//! it, every bucket the common view gives to someone else. Two consequences:
//! - two nodes that hear each other never own one bucket: in rendezvous hashing the pairwise
//!   order of two nodes on a bucket does not depend on the other members, so if both views
//!   contain both nodes, at most one of them wins the bucket;
//! - a node never takes a bucket from a peer it believes alive before that peer has let go.
//!   A dead peer's buckets are taken once every survivor agrees it is dead; with triggered
//!   heartbeats that is one round trip after the last survivor notices (I3).
//!
//! A node that was not called for longer than [`Config::stall_limit`] (SIGSTOP, VM pause)
//! fences itself: it releases everything and restarts the handshake.
//!
//! # Partitions
//! With [`Takeover::Always`] each side of a partition takes over the other side's buckets (as
//! SafeKit's farm does); I1 holds between nodes that hear each other. With
//! [`Takeover::Majority`] a node owns buckets only under a *lease*: the heartbeats of this node
//! acknowledged by a quorum of peers (the witness vote counts as one) were sent at time `t`,
//! and no such peer can declare this node dead before `t + dead_after`; ownership is valid
//! until `t + dead_after - pulse` ([`Action::Lease`]). Any two quorums intersect, so I1 then
//! holds globally. This node also releases everything itself when its lease runs out (its
//! timer, [`Node::next_deadline`], includes the lease end), a pulse before any peer may take
//! over: that suffices while farmd runs; a data plane that honours the lease also covers a
//! stopped farmd (SIGSTOP), which cannot publish anything.
//!
//! # Leaving without a gap
//! A node whose state leaves UP ([`Node::set_state`]) advertises it at once, so its peers drop
//! it from their views, but keeps its buckets (and itself in its own view) until every live
//! peer reports the view without it and is settled: the peers then wait only for this node's
//! heartbeat to acquire. It then releases everything and sends triggered heartbeats with the
//! new view: the buckets are unowned for one heartbeat trip. I1 holds as in any handover (the
//! peers acquire only on a heartbeat of this node that reports their view, sent after the
//! release). A peer that never agrees holds the node at most `dead_after`; fencing (stall,
//! lost lease) releases at once.
//!
//! # Draining (invariant I2)
//! A released bucket *drains*: the node publishes `prev_owner = self` for it (its data plane
//! keeps the flows it holds) and lists it in its heartbeats for as long as its data plane
//! reports a flow in the bucket ([`Node::set_flows`]): no deadline, across any number of later
//! changes (a bucket may drain on several nodes at once, each keeping its own flows). The owner
//! publishes `prev_owner` = the lowest live peer that lists the bucket, so its data plane takes
//! SYNs and its own flows only and leaves unknown packets to the drainers; `prev_owner` becomes
//! `NO_NODE` when no live peer drains the bucket any more (drained, or the drainer died). The
//! heartbeat carries at most [`crate::proto::MAX_RUNS`] runs: a larger drain set is coarsened to
//! a superset (an owner may keep `prev_owner` on a bucket nobody drains: it then drops unknown
//! non-SYN packets there, which belong to no live flow), never losing a draining bucket. A
//! safety valve, [`Config::drain_timeout`] (off by default), ends older drains anyway: logged
//! ([`Event::DrainExpired`]) and counted ([`Node::drains_expired`]).

mod config;
mod handover;
mod node;
mod peer;
#[cfg(test)]
mod tests;

pub use config::{Config, ConfigError, Mode, NodeConfig, Takeover};
pub use node::{Action, Event, Node, NodeError};
pub use peer::{Liveness, PeerInfo};
