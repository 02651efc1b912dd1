//! Port value types: errors, configuration, capabilities, link and counters.

use dpdk_sys as sys;

use crate::error::DpdkError;
use crate::ids::{PortId, QueueId};

/// Port errors.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// No ethdev port has this name.
    #[error("no DPDK port named {0:?}")]
    NotFound(String),
    /// No ethdev port has this id.
    #[error("no DPDK port with id {0}")]
    NoSuchId(PortId),
    /// Hotplugging the device failed (unknown driver, bad arguments, name in use).
    #[error("cannot attach device {devargs:?}: {source}")]
    Probe {
        /// The devargs given to `rte_dev_probe`.
        devargs: String,
        /// What DPDK reported.
        #[source]
        source: DpdkError,
    },
    /// A port of that name exists already (attach), or is already held by
    /// another [`Port`] (open).
    #[error("port {0:?} already exists or is already open")]
    InUse(String),
    /// A name or devargs string contains NUL or is empty.
    #[error("invalid device string {0:?}")]
    InvalidName(String),
    /// The requested configuration does not fit the device.
    #[error("invalid configuration for port {port}: {reason}")]
    InvalidConfig {
        /// The port.
        port: String,
        /// What is wrong.
        reason: String,
    },
    /// The operation needs another state (e.g. start before configure).
    #[error("port {port} is {state}, cannot {op}")]
    BadState {
        /// The port.
        port: String,
        /// Current state.
        state: &'static str,
        /// Attempted operation.
        op: &'static str,
    },
    /// Rx/tx queue handles of this port are still alive.
    #[error("port {0} has live rx/tx queue handles")]
    Busy(String),
    /// The queue handle was already taken and not dropped yet.
    #[error("port {port}: {dir} queue {queue} is already taken")]
    QueueTaken {
        /// The port.
        port: String,
        /// `"rx"` or `"tx"`.
        dir: &'static str,
        /// The queue.
        queue: QueueId,
    },
    /// Queue id beyond the configured count.
    #[error("port {port}: no {dir} queue {queue}")]
    NoSuchQueue {
        /// The port.
        port: String,
        /// `"rx"` or `"tx"`.
        dir: &'static str,
        /// The queue.
        queue: QueueId,
    },
    /// Another DPDK failure.
    #[error(transparent)]
    Dpdk(#[from] DpdkError),
}

/// RSS policy for [`PortConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rss {
    /// RSS when there are several rx queues and the device supports it.
    #[default]
    Auto,
    /// Never.
    Off,
    /// Always; configuring fails if the device has no RSS.
    Required,
}

/// Queue counts and ring sizes for [`Port::configure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortConfig {
    /// Rx queues (>= 1).
    pub rx_queues: u16,
    /// Tx queues (>= 1).
    pub tx_queues: u16,
    /// Rx descriptors per queue (adjusted to the device's limits).
    pub rx_desc: u16,
    /// Tx descriptors per queue (adjusted to the device's limits).
    pub tx_desc: u16,
    /// RSS policy.
    pub rss: Rss,
    /// Hash functions wanted (`RTE_ETH_RSS_*`), masked by what the device offers.
    pub rss_hf: u64,
    /// Rx queue interrupts (`intr_conf.rxq = 1`), for [`RxInterrupts`](crate::RxInterrupts).
    /// PMDs without them ignore it; registering a queue then fails.
    pub rx_intr: bool,
}

impl Default for PortConfig {
    fn default() -> Self {
        Self {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            rss: Rss::Auto,
            rss_hf: sys::SHIM_RTE_ETH_RSS_IP
                | sys::SHIM_RTE_ETH_RSS_TCP
                | sys::SHIM_RTE_ETH_RSS_UDP,
            rx_intr: false,
        }
    }
}

/// Device capabilities (`rte_eth_dev_info_get`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevInfo {
    /// PMD name, e.g. `net_null`.
    pub driver_name: String,
    /// Generic device name (bus level), e.g. `net_null0`.
    pub device_name: String,
    /// Maximum rx queues.
    pub max_rx_queues: u16,
    /// Maximum tx queues.
    pub max_tx_queues: u16,
    /// RSS hash functions supported (`RTE_ETH_RSS_*`); 0 = no RSS.
    pub rss_offloads: u64,
    /// Rx offload capabilities (`RTE_ETH_RX_OFFLOAD_*`).
    pub rx_offload_capa: u64,
    /// Tx offload capabilities (`RTE_ETH_TX_OFFLOAD_*`).
    pub tx_offload_capa: u64,
    /// MTU bounds.
    pub min_mtu: u16,
    /// MTU bounds.
    pub max_mtu: u16,
    /// Kernel interface index, 0 if none.
    pub if_index: u32,
}

/// Link state (`rte_eth_link_get_nowait`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Link up.
    pub up: bool,
    /// Speed in Mb/s, `None` if unknown.
    pub speed_mbps: Option<u32>,
    /// Full duplex.
    pub full_duplex: bool,
    /// Autonegotiated.
    pub autoneg: bool,
}

/// Basic port counters (`rte_eth_stats_get`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Rx packets dropped by the hardware (rx queue full).
    pub imissed: u64,
    /// Erroneous rx packets.
    pub ierrors: u64,
    /// Failed tx packets.
    pub oerrors: u64,
    /// Rx mbuf allocation failures.
    pub rx_nombuf: u64,
}
