//! farm-control: farmd and farmctl.
//!
//! Cluster logic, as pure I/O-free state machines driven with virtual time (the daemon
//! runtime feeds them received datagrams and the current time, and carries out the actions
//! they return):
//! - [`assign`]: weighted rendezvous hashing (farm mode) and failover choice: who should own
//!   each bucket given the live UP members;
//! - [`proto`]: the heartbeat datagram (binary, versioned, HMAC-SHA256), its replay guard and
//!   rejection counters;
//! - [`membership`]: one node's failure detection, view, and the handover protocol that
//!   decides when it may accept new connections in a bucket (tables and leases to publish).

#![forbid(unsafe_code)]

pub mod assign;
pub mod proto;
pub mod membership;
pub mod api;
pub mod checkers;
pub mod lifecycle;
pub mod logs;
pub mod restart;
pub mod scripts;
pub mod daemon;
pub mod import;
