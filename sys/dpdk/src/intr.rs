//! Rx interrupts: an idle worker sleeps on its queues' interrupt events instead of a timer,
//! so that a packet wakes it at once.
//!
//! The port must have been configured with [`PortConfig::rx_intr`](crate::PortConfig). Each
//! queue is registered (`rte_eth_dev_rx_intr_ctl_q`, `RTE_EPOLL_PER_THREAD`) on the EAL's
//! epoll instance **of the calling thread**, so an [`RxInterrupts`] is built and used on the
//! worker's own thread (it is not `Send`). A PMD without rx interrupts (in DPDK 22.11:
//! `net_af_packet`, `net_af_xdp`, `net_null`, `net_ring`) refuses the registration; `net_tap`
//! and `net_memif` accept it.
//!
//! [`RxInterrupts::wait`] enables the queues' interrupts (`rte_eth_dev_rx_intr_enable`; PMDs
//! whose event is the queue's file descriptor have nothing to enable), waits on the epoll
//! instance with a nanosecond timeout (`epoll_pwait2`; the EAL's own `rte_epoll_wait` counts in
//! milliseconds, too coarse for a backoff that starts at 10 µs), and disables them again. The
//! EAL registers the events edge-triggered: a packet that arrived after the last empty poll
//! and before the wait has left its event pending, so it is never missed; an event left from
//! busy time makes one wait return early, nothing worse.

use std::marker::PhantomData;
use std::time::Duration;

use dpdk_sys as sys;

use crate::error::{DpdkError, ToResult};
use crate::queue::RxQueue;

/// The calling thread's epoll instance.
const EPOLL_PER_THREAD: i32 = sys::RTE_EPOLL_PER_THREAD;
/// `RTE_INTR_EVENT_ADD` / `_DEL` (small `#define`s).
const EVENT_ADD: i32 = sys::RTE_INTR_EVENT_ADD as i32;
const EVENT_DEL: i32 = sys::RTE_INTR_EVENT_DEL as i32;
/// Events read per wait: the wait only needs to know that one came.
const MAX_EVENTS: usize = 8;

/// The rx queues whose interrupts wake the calling thread.
pub struct RxInterrupts {
    queues: Vec<(u16, u16)>,
    epfd: i32,
    /// Per-thread state: registered on, and waited for from, one thread.
    _thread: PhantomData<*const ()>,
}

impl std::fmt::Debug for RxInterrupts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RxInterrupts").field("queues", &self.queues).field("epfd", &self.epfd).finish()
    }
}

impl Default for RxInterrupts {
    fn default() -> Self {
        Self::new()
    }
}

impl RxInterrupts {
    /// No queue yet (a wait is then a plain sleep).
    pub fn new() -> RxInterrupts {
        RxInterrupts { queues: Vec::new(), epfd: -1, _thread: PhantomData }
    }

    /// Registers `rx`'s interrupt on this thread's epoll instance.
    ///
    /// # Errors
    /// DPDK's error: `ENOTSUP` (or `EPERM`/`EINVAL`) for a PMD without rx interrupts or a port
    /// configured without them. Nothing is registered then.
    pub fn add(&mut self, rx: &RxQueue) -> Result<(), DpdkError> {
        let (port, queue) = (rx.port_id().0, rx.queue_id().0);
        // SAFETY: the handle keeps the port open and started; a NULL data pointer is allowed
        // (the EAL's callback does not use it for ethdev queues).
        unsafe { sys::rte_eth_dev_rx_intr_ctl_q(port, queue, EPOLL_PER_THREAD, EVENT_ADD, std::ptr::null_mut()) }
            .to_result("rte_eth_dev_rx_intr_ctl_q")?;
        if self.epfd < 0 {
            // SAFETY: no arguments; returns (creating it on first use) this thread's epoll fd,
            // which the EAL keeps for the thread's lifetime.
            self.epfd = unsafe { sys::rte_intr_tls_epfd() };
        }
        self.queues.push((port, queue));
        Ok(())
    }

    /// Number of queues registered.
    pub fn len(&self) -> usize {
        self.queues.len()
    }

    /// True when no queue is registered.
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Sleeps up to `timeout`, less if a registered queue receives. Returns the number of
    /// queue events that woke it (0: the timeout passed, or there is no queue).
    pub fn wait(&mut self, timeout: Duration) -> usize {
        if self.queues.is_empty() || self.epfd < 0 {
            std::thread::sleep(timeout);
            return 0;
        }
        for &(port, queue) in &self.queues {
            // SAFETY: a registered queue of an open port; ENOTSUP (nothing to enable) is fine.
            let _ = unsafe { sys::rte_eth_dev_rx_intr_enable(port, queue) };
        }
        let n = epoll_wait_ns(self.epfd, timeout);
        for &(port, queue) in &self.queues {
            // SAFETY: as above.
            let _ = unsafe { sys::rte_eth_dev_rx_intr_disable(port, queue) };
        }
        n
    }
}

impl Drop for RxInterrupts {
    fn drop(&mut self) {
        for &(port, queue) in &self.queues {
            // SAFETY: registered on this thread's epoll instance by `add` (not Send, so this
            // is the same thread); the port is still open (the queue handles outlive nothing,
            // but the ports are only closed after the workers end).
            let _ = unsafe { sys::rte_eth_dev_rx_intr_ctl_q(port, queue, EPOLL_PER_THREAD, EVENT_DEL, std::ptr::null_mut()) };
        }
    }
}

/// `epoll_pwait2` with a nanosecond timeout; `epoll_wait` (milliseconds, rounded up) where the
/// kernel lacks it. Returns the number of events.
fn epoll_wait_ns(epfd: i32, timeout: Duration) -> usize {
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS];
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: epfd is a live epoll fd; `events` has MAX_EVENTS slots; `ts` outlives the call;
    // a NULL sigmask means no change. The events' data (the EAL's pointers) is never read.
    let n = unsafe { libc::epoll_pwait2(epfd, events.as_mut_ptr(), MAX_EVENTS as i32, &ts, std::ptr::null()) };
    if n >= 0 {
        return n as usize;
    }
    if std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOSYS) {
        return 0; // EINTR: a signal; the caller polls and decides again
    }
    let ms = timeout.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
    // SAFETY: as above.
    let n = unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), MAX_EVENTS as i32, ms) };
    n.max(0) as usize
}
