//! The farm packet path, without DPDK: classify frames from the uplink and
//! from the TAP, answer ARP / ND for the VIPs, and move bursts between two
//! [`Port`]s.
//!
//! # Uplink -> node ([`classify()`])
//!
//! 1. ARP request / neighbour solicitation for a VIP: answered with the
//!    VIP's virtual MAC ([`virtual_mac`]) only by the node that owns the
//!    bucket of the requester's address; see [`neigh`] for the other
//!    neighbour cases (probes, replies to the nodes' own solicitations).
//! 2. IPv4/IPv6 to a VIP matching a rule: bucket = hash(source address) for
//!    `on_addr`, hash(source address, source port) for `on_port`, with
//!    `farm_table::bucket_of`. ICMP echo needs an ICMP rule and hashes on
//!    the source address. ICMP errors (destination unreachable / fragmentation
//!    needed, packet too big, time exceeded, parameter problem) whose
//!    embedded packet was sent by the VIP hash on the embedded destination
//!    (the client) and its port, so they reach the flow's owner and PMTU
//!    discovery keeps working. Accepted frames go to the TAP with the
//!    destination MAC rewritten to the TAP's.
//!    The table entry decides, with handover: see [`classify::decide`]'s
//!    table. Flow knowledge comes from a caller-provided [`FlowTracker`].
//! 3. VIP traffic matching no rule: dropped (`NoRule`).
//! 4. Frames for the node (its MAC, broadcast, multicast): to the TAP
//!    unchanged. Other unicast (flooded by the switch): dropped.
//!
//! Malformed or truncated frames are dropped. Every drop has a
//! [`DropReason`] that maps to one `farm_table::Counter`.
//!
//! ## Fragments
//!
//! Every fragment of a datagram to a VIP is placed by source address, so
//! all pieces reach one node (the one that owns the client for `on_addr`
//! rules). A first fragment finds its rule by destination port, a later
//! fragment by protocol; fragments that would need an `on_port` rule are
//! dropped (`DropFragment`): the later pieces carry no ports and could not
//! follow the first. TCP avoids fragmentation (PMTU discovery, which the ICMP
//! handling keeps working); UDP services that receive fragmented datagrams
//! need `on_addr` rules. During a handover the previous owner keeps
//! fragments.
//!
//! # Node -> uplink ([`classify_from_tap`])
//!
//! Forwarded unchanged, except ARP/ND that would bind a VIP to the node's
//! MAC (dropped) and solicitations sent from a VIP (rewritten to carry the
//! virtual MAC); see [`neigh`].
//!
//! # Poll loop
//!
//! [`Pipeline::run_once`] does one rx burst on each port, classifies, and
//! transmits; [`poll_loop`] repeats it with the table's quiescent-state
//! protocol and [`Backoff`] when idle.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod classify;
pub mod config;
mod fast;
pub mod flows;
pub mod neigh;
pub mod poll;
pub mod port;
pub mod table;
pub mod verdict;

pub use classify::{classify, classify_summary, REPLY_BUF_LEN};
pub use config::{virtual_mac, ConfigError, PipelineConfig, PortRange, Protocol, Rule, Vip};
pub use flows::{FlowKey, FlowTracker, NoFlowTracking};
pub use neigh::classify_from_tap;
pub use poll::{poll_loop, Backoff, BackoffConfig, Clocks, CounterSink, Lcore, Pipeline, Tally};
pub use port::{Frame, LoopbackPort, Port, VecFrame};
pub use table::{FencedTable, LeasedTable, OwnerLookup, StaticTable};
pub use verdict::{Delivery, DropReason, ReplyKind, Verdict};
