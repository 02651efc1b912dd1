//! [`Port`]: an ethdev port's lifecycle (attach, configure, start, stop, close)
//! and control-path queries (info, MAC, link, stats).
//!
//! Data-path access goes through [`RxQueue`] / [`TxQueue`] handles taken from a
//! started port. Lifecycle operations need `&mut Port` **and** no live queue
//! handle (else [`PortError::Busy`]), so a control operation never races a
//! burst on the same port. The port is closed (and, if [`Port::attach`] hotplugged
//! it, removed) when the `Port` and all its queue handles are dropped.

use std::ffi::{c_char, CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use dpdk_sys as sys;

use crate::eal::{control_lock, Eal};
use crate::error::{DpdkError, ToResult};
use crate::ids::{MacAddr, PortId, QueueId};
use crate::mempool::Mempool;
use crate::queue::{RxQueue, TxQueue};

mod types;
pub use types::{DevInfo, Link, PortConfig, PortError, PortStats, Rss};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Unconfigured,
    Configured,
    Started,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Unconfigured => "unconfigured",
            State::Configured => "configured (stopped)",
            State::Started => "started",
        }
    }
}

/// Port ids held by a live [`Port`] (at most one `Port` per ethdev port).
/// Only touched under the control lock.
static OPEN: Mutex<[bool; sys::RTE_MAX_ETHPORTS as usize]> =
    Mutex::new([false; sys::RTE_MAX_ETHPORTS as usize]);

/// Marks `id` as held; false if it already was. Call under the control lock.
fn claim(id: PortId) -> bool {
    let mut open = OPEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let slot = &mut open[usize::from(id.0)];
    !std::mem::replace(slot, true)
}

fn release(id: PortId) {
    OPEN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)[usize::from(id.0)] = false;
}

/// Bus and device name, for `rte_eal_hotplug_remove` after close.
#[derive(Debug)]
struct Hotplugged {
    bus: CString,
    dev: CString,
}

pub(crate) struct PortShared {
    pub(crate) id: PortId,
    pub(crate) name: String,
    state: State,
    rss: bool,
    pools: Vec<Mempool>,
    pub(crate) rx_taken: Box<[AtomicBool]>,
    pub(crate) tx_taken: Box<[AtomicBool]>,
    hotplugged: Option<Hotplugged>,
    _eal: Eal,
}

impl Drop for PortShared {
    fn drop(&mut self) {
        let _control = control_lock();
        let port = self.id.0;
        if self.state == State::Started {
            // SAFETY: valid port; no queue handle exists (they hold this Arc).
            if let Err(e) = unsafe { sys::rte_eth_dev_stop(port) }.to_result("rte_eth_dev_stop") {
                tracing::warn!(port = %self.name, error = %e, "stop on drop failed");
            }
        }
        // SAFETY: valid, stopped port, no queue handles; not used afterwards.
        if let Err(e) = unsafe { sys::rte_eth_dev_close(port) }.to_result("rte_eth_dev_close") {
            tracing::warn!(port = %self.name, error = %e, "close on drop failed");
        }
        if let Some(h) = &self.hotplugged {
            // SAFETY: NUL-terminated names of a device we probed; the port is closed.
            let ret = unsafe { sys::rte_eal_hotplug_remove(h.bus.as_ptr(), h.dev.as_ptr()) };
            if let Err(e) = ret.to_result("rte_eal_hotplug_remove") {
                tracing::warn!(port = %self.name, error = %e, "device removal failed");
            }
        }
        release(self.id);
        tracing::debug!(port = %self.name, "port closed");
        // `pools` drop after this body: after the port released its rx rings.
    }
}

/// An ethdev port. See the module docs for the lifecycle rules.
pub struct Port {
    shared: Arc<PortShared>,
}

impl std::fmt::Debug for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Port")
            .field("id", &self.shared.id)
            .field("name", &self.shared.name)
            .field("state", &self.shared.state)
            .finish()
    }
}

fn cstring(s: &str) -> Result<CString, PortError> {
    if s.is_empty() {
        return Err(PortError::InvalidName(s.to_owned()));
    }
    CString::new(s).map_err(|_| PortError::InvalidName(s.to_owned()))
}

/// Port ids and names of every port the EAL knows.
pub fn available_ports(_eal: &Eal) -> Vec<(PortId, String)> {
    let _control = control_lock();
    let mut out = Vec::new();
    // SAFETY: EAL initialised; rte_eth_find_next accepts any id.
    let mut id = unsafe { sys::rte_eth_find_next(0) };
    while u32::from(id) < sys::RTE_MAX_ETHPORTS {
        if let Ok(name) = port_name(PortId(id)) {
            out.push((PortId(id), name));
        }
        // SAFETY: as above.
        id = unsafe { sys::rte_eth_find_next(id + 1) };
    }
    out
}

fn port_name(id: PortId) -> Result<String, DpdkError> {
    let mut buf: [c_char; sys::RTE_ETH_NAME_MAX_LEN as usize] =
        [0; sys::RTE_ETH_NAME_MAX_LEN as usize];
    // SAFETY: buf has RTE_ETH_NAME_MAX_LEN bytes, what the function requires.
    unsafe { sys::rte_eth_dev_get_name_by_port(id.0, buf.as_mut_ptr()) }
        .to_result("rte_eth_dev_get_name_by_port")?;
    // SAFETY: the function wrote a NUL-terminated name into buf.
    Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned())
}

fn lookup(name: &str) -> Result<PortId, PortError> {
    let cname = cstring(name)?;
    let mut id = 0u16;
    // SAFETY: NUL-terminated name, valid out pointer.
    let ret = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
    if ret < 0 {
        return Err(PortError::NotFound(name.to_owned()));
    }
    Ok(PortId(id))
}

fn dev_info(id: PortId) -> Result<sys::rte_eth_dev_info, DpdkError> {
    let mut info = sys::rte_eth_dev_info::default();
    // SAFETY: valid out pointer to a zeroed struct.
    unsafe { sys::rte_eth_dev_info_get(id.0, &mut info) }.to_result("rte_eth_dev_info_get")?;
    Ok(info)
}

fn c_str_or_empty(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: DPDK name strings are NUL-terminated and live as long as the device.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

impl Port {
    fn wrap(eal: &Eal, id: PortId, name: String, hotplugged: Option<Hotplugged>) -> Port {
        Port {
            shared: Arc::new(PortShared {
                id,
                name,
                state: State::Unconfigured,
                rss: false,
                pools: Vec::new(),
                rx_taken: Box::new([]),
                tx_taken: Box::new([]),
                hotplugged,
                _eal: eal.clone(),
            }),
        }
    }

    /// Hotplugs a device (`rte_dev_probe`), e.g. `"net_null_t1"` or
    /// `"net_pcap_a,rx_pcap=/tmp/in.pcap"`, and opens its port (named like the
    /// device: the devargs up to the first comma). The device is removed again
    /// when the port is dropped.
    ///
    /// # Errors
    /// [`PortError::Probe`] if DPDK rejects the devargs (unknown driver, bad
    /// arguments, `EEXIST` for a name in use); [`PortError::NotFound`] if the
    /// device created no port of that name.
    pub fn attach(eal: &Eal, devargs: &str) -> Result<Port, PortError> {
        let name = devargs
            .split(',')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        let cdevargs = cstring(devargs)?;
        let _control = control_lock();
        // rte_dev_probe succeeds silently for an already probed device: refuse
        // instead of handing out a second owner of the port.
        if lookup(&name).is_ok() {
            return Err(PortError::InUse(name));
        }
        // SAFETY: EAL initialised; NUL-terminated devargs (copied by DPDK).
        unsafe { sys::rte_dev_probe(cdevargs.as_ptr()) }
            .to_result("rte_dev_probe")
            .map_err(|source| PortError::Probe {
                devargs: devargs.to_owned(),
                source,
            })?;
        let id = lookup(&name)?;
        let info = dev_info(id)?;
        // SAFETY: info.device is the live rte_device of the port we just found.
        let (bus, dev) = unsafe {
            let dev = info.device;
            (
                c_str_or_empty(sys::rte_bus_name(sys::rte_dev_bus(dev))),
                c_str_or_empty(sys::rte_dev_name(dev)),
            )
        };
        tracing::debug!(port = %name, id = id.0, bus, dev, "device attached");
        let hotplugged = Hotplugged {
            bus: cstring(&bus)?,
            dev: cstring(&dev)?,
        };
        if !claim(id) {
            return Err(PortError::InUse(name));
        }
        Ok(Port::wrap(eal, id, name, Some(hotplugged)))
    }

    /// Opens an existing port by name (e.g. one from `--vdev`). It is closed,
    /// not removed, on drop.
    ///
    /// # Errors
    /// [`PortError::NotFound`]; [`PortError::InUse`] if another `Port` holds it.
    pub fn open(eal: &Eal, name: &str) -> Result<Port, PortError> {
        let _control = control_lock();
        let id = lookup(name)?;
        if !claim(id) {
            return Err(PortError::InUse(name.to_owned()));
        }
        Ok(Port::wrap(eal, id, name.to_owned(), None))
    }

    /// Opens an existing port by id. Closed, not removed, on drop.
    ///
    /// # Errors
    /// [`PortError::NoSuchId`]; [`PortError::InUse`] if another `Port` holds it.
    pub fn open_id(eal: &Eal, id: PortId) -> Result<Port, PortError> {
        let _control = control_lock();
        // SAFETY: any id is accepted.
        if unsafe { sys::rte_eth_dev_is_valid_port(id.0) } == 0 {
            return Err(PortError::NoSuchId(id));
        }
        let name = port_name(id)?;
        if !claim(id) {
            return Err(PortError::InUse(name));
        }
        Ok(Port::wrap(eal, id, name, None))
    }

    /// The port id.
    pub fn id(&self) -> PortId {
        self.shared.id
    }

    /// The port name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// True once started.
    pub fn is_started(&self) -> bool {
        self.shared.state == State::Started
    }

    /// True if the last [`configure`](Self::configure) enabled RSS.
    pub fn rss_enabled(&self) -> bool {
        self.shared.rss
    }

    /// Configured rx queue count (0 before configure).
    pub fn rx_queue_count(&self) -> u16 {
        u16::try_from(self.shared.rx_taken.len()).expect("queue count fits u16")
    }

    /// Configured tx queue count (0 before configure).
    pub fn tx_queue_count(&self) -> u16 {
        u16::try_from(self.shared.tx_taken.len()).expect("queue count fits u16")
    }

    /// Device capabilities.
    ///
    /// # Errors
    /// DPDK's error.
    pub fn info(&self) -> Result<DevInfo, PortError> {
        let _control = control_lock();
        let info = dev_info(self.id())?;
        let device_name = if info.device.is_null() {
            String::new()
        } else {
            // SAFETY: info.device is the port's live, non-null rte_device.
            c_str_or_empty(unsafe { sys::rte_dev_name(info.device) })
        };
        Ok(DevInfo {
            driver_name: c_str_or_empty(info.driver_name),
            device_name,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            rss_offloads: info.flow_type_rss_offloads,
            rx_offload_capa: info.rx_offload_capa,
            tx_offload_capa: info.tx_offload_capa,
            min_mtu: info.min_mtu,
            max_mtu: info.max_mtu,
            if_index: info.if_index,
        })
    }

    /// The shared state, if no queue handle holds it.
    fn exclusive(&mut self) -> Result<&mut PortShared, PortError> {
        let name = self.shared.name.clone();
        Arc::get_mut(&mut self.shared).ok_or(PortError::Busy(name))
    }

    /// Configures queues and RSS (`rte_eth_dev_configure` + queue setup), all rx
    /// queues receiving into `pool`. The port keeps the pool alive until closed.
    /// Reconfiguring a stopped port is allowed.
    ///
    /// # Errors
    /// As [`configure_with_pools`](Self::configure_with_pools).
    pub fn configure(&mut self, config: &PortConfig, pool: &Mempool) -> Result<(), PortError> {
        self.configure_with_pools(config, std::slice::from_ref(pool))
    }

    /// Like [`configure`](Self::configure) with one pool per rx queue (`pools.len()
    /// == rx_queues`), or one shared pool (`pools.len() == 1`).
    ///
    /// # Errors
    /// [`PortError::BadState`] if started, [`PortError::Busy`] with live queue
    /// handles, [`PortError::InvalidConfig`] if the counts exceed the device's
    /// limits or RSS is `Required` but unsupported, or DPDK's error.
    pub fn configure_with_pools(
        &mut self,
        config: &PortConfig,
        pools: &[Mempool],
    ) -> Result<(), PortError> {
        let _control = control_lock();
        let info = dev_info(self.id())?;
        let sh = self.exclusive()?;
        let pname = sh.name.clone();
        let invalid = |reason: String| PortError::InvalidConfig {
            port: pname.clone(),
            reason,
        };
        if sh.state == State::Started {
            return Err(PortError::BadState {
                port: sh.name.clone(),
                state: sh.state.name(),
                op: "configure",
            });
        }
        if config.rx_queues == 0 || config.tx_queues == 0 {
            return Err(invalid(
                "at least one rx and one tx queue are needed".into(),
            ));
        }
        if config.rx_queues > info.max_rx_queues || config.tx_queues > info.max_tx_queues {
            return Err(invalid(format!(
                "{} rx / {} tx queues requested, device allows {} / {}",
                config.rx_queues, config.tx_queues, info.max_rx_queues, info.max_tx_queues
            )));
        }
        if pools.len() != 1 && pools.len() != usize::from(config.rx_queues) {
            return Err(invalid(format!(
                "{} mempools for {} rx queues (need 1 or one per queue)",
                pools.len(),
                config.rx_queues
            )));
        }
        let rss_hf = config.rss_hf & info.flow_type_rss_offloads;
        let rss = match config.rss {
            Rss::Off => false,
            Rss::Auto => config.rx_queues > 1 && rss_hf != 0,
            Rss::Required if rss_hf == 0 => {
                return Err(invalid(format!(
                    "RSS required but the device offers no requested hash (offers {:#x})",
                    info.flow_type_rss_offloads
                )))
            }
            Rss::Required => true,
        };
        let mut conf = sys::rte_eth_conf::default();
        if rss {
            conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            if info.rx_offload_capa & sys::SHIM_RTE_ETH_RX_OFFLOAD_RSS_HASH != 0 {
                conf.rxmode.offloads |= sys::SHIM_RTE_ETH_RX_OFFLOAD_RSS_HASH;
            }
        }
        if config.rx_intr {
            conf.intr_conf.set_rxq(1);
        }
        let port = sh.id.0;
        // SAFETY: valid stopped port, conf fully initialised, no queue handles.
        unsafe { sys::rte_eth_dev_configure(port, config.rx_queues, config.tx_queues, &conf) }
            .to_result("rte_eth_dev_configure")?;
        sh.state = State::Configured;
        let (mut nb_rx, mut nb_tx) = (config.rx_desc, config.tx_desc);
        // SAFETY: valid port and out pointers.
        unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(port, &mut nb_rx, &mut nb_tx) }
            .to_result("rte_eth_dev_adjust_nb_rx_tx_desc")?;
        // SAFETY: valid port.
        let socket = unsafe { sys::rte_eth_dev_socket_id(port) };
        // SOCKET_ID_ANY (-1) is passed through as C would: (unsigned)-1.
        let socket = socket as u32;
        for q in 0..config.rx_queues {
            let pool = pools.get(usize::from(q)).unwrap_or(&pools[0]);
            // SAFETY: configured port, q < rx_queues, default rxconf (NULL), live
            // pktmbuf pool kept alive by `sh.pools` until close.
            unsafe {
                sys::rte_eth_rx_queue_setup(port, q, nb_rx, socket, std::ptr::null(), pool.as_ptr())
            }
            .to_result("rte_eth_rx_queue_setup")?;
        }
        for q in 0..config.tx_queues {
            // SAFETY: configured port, q < tx_queues, default txconf (NULL).
            unsafe { sys::rte_eth_tx_queue_setup(port, q, nb_tx, socket, std::ptr::null()) }
                .to_result("rte_eth_tx_queue_setup")?;
        }
        sh.pools = pools.to_vec();
        sh.rss = rss;
        sh.rx_taken = (0..config.rx_queues)
            .map(|_| AtomicBool::new(false))
            .collect();
        sh.tx_taken = (0..config.tx_queues)
            .map(|_| AtomicBool::new(false))
            .collect();
        tracing::debug!(port = %sh.name, rxq = config.rx_queues, txq = config.tx_queues, nb_rx, nb_tx, rss, "port configured");
        Ok(())
    }

    /// Starts the port (`rte_eth_dev_start`). No-op if started.
    ///
    /// # Errors
    /// [`PortError::BadState`] before configure, or DPDK's error.
    pub fn start(&mut self) -> Result<(), PortError> {
        let sh = self.exclusive()?;
        match sh.state {
            State::Started => return Ok(()),
            State::Unconfigured => {
                return Err(PortError::BadState {
                    port: sh.name.clone(),
                    state: sh.state.name(),
                    op: "start",
                })
            }
            State::Configured => {}
        }
        let _control = control_lock();
        // SAFETY: configured port with all queues set up.
        unsafe { sys::rte_eth_dev_start(sh.id.0) }.to_result("rte_eth_dev_start")?;
        sh.state = State::Started;
        Ok(())
    }

    /// Stops the port (`rte_eth_dev_stop`). No-op if not started.
    ///
    /// # Errors
    /// [`PortError::Busy`] with live queue handles, or DPDK's error.
    pub fn stop(&mut self) -> Result<(), PortError> {
        let sh = self.exclusive()?;
        if sh.state != State::Started {
            return Ok(());
        }
        let _control = control_lock();
        // SAFETY: started port, no queue handle alive, so no burst in flight.
        unsafe { sys::rte_eth_dev_stop(sh.id.0) }.to_result("rte_eth_dev_stop")?;
        sh.state = State::Configured;
        Ok(())
    }

    /// Stops, closes and (if attached) removes the port now, reporting errors
    /// that dropping would only log.
    ///
    /// # Errors
    /// [`PortError::Busy`] with live queue handles: the port is then closed when
    /// the last handle drops.
    pub fn close(mut self) -> Result<(), PortError> {
        self.exclusive()?;
        let shared = self.shared;
        match Arc::try_unwrap(shared) {
            Ok(sh) => {
                drop(sh);
                Ok(())
            }
            Err(shared) => Err(PortError::Busy(shared.name.clone())),
        }
    }

    /// Takes the rx handle of queue `q` (one handle per queue at a time).
    ///
    /// # Errors
    /// [`PortError::BadState`] unless started, [`PortError::NoSuchQueue`],
    /// [`PortError::QueueTaken`].
    pub fn rx_queue(&self, q: QueueId) -> Result<RxQueue, PortError> {
        self.take_queue(q, "rx")
            .map(|()| RxQueue::new(Arc::clone(&self.shared), q))
    }

    /// Takes the tx handle of queue `q` (one handle per queue at a time).
    ///
    /// # Errors
    /// As [`rx_queue`](Self::rx_queue).
    pub fn tx_queue(&self, q: QueueId) -> Result<TxQueue, PortError> {
        self.take_queue(q, "tx")
            .map(|()| TxQueue::new(Arc::clone(&self.shared), q))
    }

    fn take_queue(&self, q: QueueId, dir: &'static str) -> Result<(), PortError> {
        let sh = &self.shared;
        if sh.state != State::Started {
            return Err(PortError::BadState {
                port: sh.name.clone(),
                state: sh.state.name(),
                op: "take a queue",
            });
        }
        let flags = if dir == "rx" {
            &sh.rx_taken
        } else {
            &sh.tx_taken
        };
        let flag = flags
            .get(usize::from(q.0))
            .ok_or_else(|| PortError::NoSuchQueue {
                port: sh.name.clone(),
                dir,
                queue: q,
            })?;
        if flag.swap(true, Ordering::AcqRel) {
            return Err(PortError::QueueTaken {
                port: sh.name.clone(),
                dir,
                queue: q,
            });
        }
        Ok(())
    }

    /// Enables or disables promiscuous mode.
    ///
    /// # Errors
    /// DPDK's error (e.g. `ENOTSUP`).
    pub fn set_promiscuous(&self, on: bool) -> Result<(), PortError> {
        let _control = control_lock();
        let port = self.id().0;
        // SAFETY: valid port.
        let ret = unsafe {
            if on {
                sys::rte_eth_promiscuous_enable(port)
            } else {
                sys::rte_eth_promiscuous_disable(port)
            }
        };
        ret.to_result("rte_eth_promiscuous_enable/disable")?;
        Ok(())
    }

    /// Whether promiscuous mode is on.
    ///
    /// # Errors
    /// DPDK's error.
    pub fn promiscuous(&self) -> Result<bool, PortError> {
        let _control = control_lock();
        // SAFETY: valid port.
        let ret = unsafe { sys::rte_eth_promiscuous_get(self.id().0) }
            .to_result("rte_eth_promiscuous_get")?;
        Ok(ret == 1)
    }

    /// The port's MAC address.
    ///
    /// # Errors
    /// DPDK's error.
    pub fn mac_addr(&self) -> Result<MacAddr, PortError> {
        let _control = control_lock();
        let mut addr = sys::rte_ether_addr::default();
        // SAFETY: valid port and out pointer.
        unsafe { sys::rte_eth_macaddr_get(self.id().0, &mut addr) }
            .to_result("rte_eth_macaddr_get")?;
        Ok(MacAddr(addr.addr_bytes))
    }

    /// Sets the port's default MAC address.
    ///
    /// # Errors
    /// DPDK's error (e.g. `ENOTSUP` for PMDs that cannot change it).
    pub fn set_mac_addr(&self, mac: MacAddr) -> Result<(), PortError> {
        let _control = control_lock();
        let mut addr = mac.to_rte();
        // SAFETY: valid port; DPDK copies the address.
        unsafe { sys::rte_eth_dev_default_mac_addr_set(self.id().0, &mut addr) }
            .to_result("rte_eth_dev_default_mac_addr_set")?;
        Ok(())
    }

    /// Current link state, without waiting.
    ///
    /// # Errors
    /// DPDK's error.
    pub fn link(&self) -> Result<Link, PortError> {
        let _control = control_lock();
        let mut link = sys::rte_eth_link::default();
        // SAFETY: valid port and out pointer.
        unsafe { sys::rte_eth_link_get_nowait(self.id().0, &mut link) }
            .to_result("rte_eth_link_get_nowait")?;
        let speed = link.link_speed;
        Ok(Link {
            up: u32::from(link.link_status()) == sys::RTE_ETH_LINK_UP,
            speed_mbps: (speed != sys::RTE_ETH_SPEED_NUM_NONE
                && speed != sys::RTE_ETH_SPEED_NUM_UNKNOWN)
                .then_some(speed),
            full_duplex: u32::from(link.link_duplex()) == sys::RTE_ETH_LINK_FULL_DUPLEX,
            autoneg: link.link_autoneg() != 0,
        })
    }

    /// Sets the link administratively up or down (not all PMDs support it).
    ///
    /// # Errors
    /// DPDK's error.
    pub fn set_link(&self, up: bool) -> Result<(), PortError> {
        let _control = control_lock();
        let port = self.id().0;
        // SAFETY: valid port.
        let ret = unsafe {
            if up {
                sys::rte_eth_dev_set_link_up(port)
            } else {
                sys::rte_eth_dev_set_link_down(port)
            }
        };
        ret.to_result("rte_eth_dev_set_link_up/down")?;
        Ok(())
    }

    /// Port counters. Safe to call while other threads run bursts.
    ///
    /// # Errors
    /// DPDK's error.
    pub fn stats(&self) -> Result<PortStats, PortError> {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: valid port and out pointer; stats reads are allowed concurrently
        // with the data path.
        unsafe { sys::rte_eth_stats_get(self.id().0, &mut s) }.to_result("rte_eth_stats_get")?;
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Zeroes the port counters.
    ///
    /// # Errors
    /// DPDK's error.
    pub fn reset_stats(&self) -> Result<(), PortError> {
        let _control = control_lock();
        // SAFETY: valid port.
        unsafe { sys::rte_eth_stats_reset(self.id().0) }.to_result("rte_eth_stats_reset")?;
        Ok(())
    }

    /// The MTU.
    ///
    /// # Errors
    /// DPDK's error.
    pub fn mtu(&self) -> Result<u16, PortError> {
        let _control = control_lock();
        let mut mtu = 0u16;
        // SAFETY: valid port and out pointer.
        unsafe { sys::rte_eth_dev_get_mtu(self.id().0, &mut mtu) }
            .to_result("rte_eth_dev_get_mtu")?;
        Ok(mtu)
    }

    /// Sets the MTU.
    ///
    /// # Errors
    /// DPDK's error.
    pub fn set_mtu(&self, mtu: u16) -> Result<(), PortError> {
        let _control = control_lock();
        // SAFETY: valid port.
        unsafe { sys::rte_eth_dev_set_mtu(self.id().0, mtu) }.to_result("rte_eth_dev_set_mtu")?;
        Ok(())
    }
}
