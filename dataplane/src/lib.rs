//! The farm data plane as a library: the binary (`main.rs`) and the benchmarks in `perf/` use
//! it. The packet path itself is `farm-pipeline`; this crate binds it to DPDK ports.

#![forbid(unsafe_code)]

pub mod cli;
pub mod flows;
pub mod idle;
pub mod lease;
pub mod port;
pub mod run;
pub mod setup;
pub mod veth;
