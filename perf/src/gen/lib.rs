//! The traffic generator's library: frame templates, transmit stamps, pacing,
//! the DPDK transmit/receive loop and its report. Used by `farm-trafgen` (the
//! generator) and `farm-bench` (the benchmark driver).
//!
//! Frames are built once ([`template::build`]) from a [`template::TrafficSpec`]
//! with `farm_wire`'s frame builders; each knows its client's bucket
//! (`farm_table::bucket_of`, the one hash every component uses) and whether the
//! device under test owns it, so the generator knows how many frames should
//! come back. The loop ([`engine::Engine`]) only copies templates into mbufs and
//! stamps them with the TSC ([`stamp`]); the receive side reads the stamps back
//! into an HDR histogram.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod assign_bench;
pub mod cpu;
pub mod engine;
pub mod pacer;
pub mod spec;
pub mod stamp;
pub mod summary;
pub mod template;

pub use spec::{ClientRange, Kind, Mix, Owned, PortSpan, SpecError};
pub use summary::Summary;
pub use template::{build, Hashing, Template, TemplateError, TrafficSpec};
