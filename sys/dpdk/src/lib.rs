//! Safe wrappers over DPDK 22.11 for the farm data plane.
//!
//! # The EAL is initialised once per process
//!
//! `rte_eal_init` can succeed only once in a process, and cannot be redone after
//! `rte_eal_cleanup`; after a failed attempt DPDK 22.11 keeps part of the
//! rejected configuration. So:
//! * [`Eal::builder()`]`.….init()` is attempted once per process: it returns an
//!   [`Eal`] handle, or [`EalError::Init`]; every later call returns
//!   [`EalError::AlreadyInitialized`] (or [`EalError::PreviousInitFailed`]);
//! * [`Eal`] is a cloneable `Arc` handle; every [`Mempool`], [`Port`], queue and
//!   lcore launch holds a clone, and `rte_eal_cleanup` runs when the last one
//!   drops — never while DPDK objects are still in use;
//! * tests share one EAL per test process (`test_support::eal()`, feature
//!   `test-support`) and create their devices at runtime under unique names
//!   ([`Port::attach`], i.e. `rte_dev_probe`), so tests in one binary run in
//!   parallel threads. Tests of EAL initialisation itself re-run their test
//!   binary as a child process per scenario (see `tests/eal_init.rs`).
//!
//! Memory: DPDK 22.11 refuses `--no-huge` together with `--in-memory`; use
//! `--no-huge --no-shconf` (no shared files; one `--file-prefix` per process) to
//! run several DPDK processes without hugepages, or `--in-memory` with hugepages.
//!
//! # Objects
//! * [`Mempool`]: pktmbuf pool; [`Mbuf`]: one owned packet; [`MbufBurst`]: up to
//!   `N` (default 32) mbufs on the stack, what rx fills and tx drains.
//! * [`Port`]: attach/open, configure (queues, RSS), start/stop/close, MAC,
//!   link, stats. [`RxQueue`] / [`TxQueue`]: one handle per queue, `Send`.
//! * [`RxInterrupts`]: an idle worker's sleep that a received packet ends (PMDs with rx
//!   interrupts: `net_tap`, `net_memif`; not `net_af_packet`, `net_af_xdp` in 22.11).
//! * [`Eal::launch`] runs a closure on a worker lcore; [`register_current_thread`]
//!   gives a plain thread an lcore id instead. [`tsc`] / [`tsc_hz`] for time.
//! * Errors: [`DpdkError`] (call + errno, built by [`ToResult`]) inside
//!   per-module enums.
//!
//! # Linking and drivers
//! `dpdk-sys` links DPDK dynamically, so the EAL loads all PMDs from Debian's
//! `RTE_EAL_PMD_PATH` at init: `net_null`, `net_ring`, `net_pcap`, `net_tap`,
//! `net_memif`, `net_af_packet`, `net_virtio_user`, ... need no `-d` option.
//!
//! # Safety
//! All `unsafe` is here and in `dpdk-sys`. Lifecycle calls on a port require
//! `&mut Port` and no live queue handles; DPDK control-path calls are
//! serialised by a process-wide lock.

mod burst;
mod eal;
mod error;
mod ids;
mod intr;
mod lcore;
mod mbuf;
mod mempool;
mod port;
mod queue;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;

pub use burst::{Drain, MbufBurst, BURST_SIZE};
pub use eal::{runtime_dir, Eal, EalBuilder, EalError};
pub use error::{rte_errno, DpdkError, RteErrno, ToResult};
pub use ids::{LcoreId, MacAddr, PortId, QueueId};
pub use intr::RxInterrupts;
pub use lcore::{
    pause, register_current_thread, tsc, tsc_hz, LaunchError, LcoreJoinHandle, ThreadRegistration,
};
pub use mbuf::{Mbuf, MbufError};
pub use mempool::{Mempool, MempoolConfig, MempoolError, MEMPOOL_NAME_MAX};
pub use port::{available_ports, DevInfo, Link, Port, PortConfig, PortError, PortStats, Rss};
pub use queue::{RxQueue, TxOutcome, TxQueue};

/// Raw bindings, for what the safe API does not cover.
pub use dpdk_sys as sys;
