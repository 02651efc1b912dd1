//! [`RxQueue`] / [`TxQueue`]: the data path of a started [`Port`](crate::Port).
//!
//! A handle is unique per queue, `Send`, and keeps the port open. Bursts go
//! through [`MbufBurst`], so no mbuf can leak:
//! * rx appends to the burst's free slots;
//! * [`TxQueue::tx_burst`] sends from the front and **leaves unsent mbufs in the
//!   burst** (order kept) for the caller to retry or drop;
//!   [`TxQueue::tx_burst_or_free`] frees them at once and counts them.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use dpdk_sys as sys;

use crate::burst::MbufBurst;
use crate::ids::{PortId, QueueId};
use crate::mbuf::Mbuf;
use crate::port::PortShared;

/// Receive side of one queue.
pub struct RxQueue {
    port: u16,
    queue: u16,
    shared: Arc<PortShared>,
}

/// Transmit side of one queue.
pub struct TxQueue {
    port: u16,
    queue: u16,
    shared: Arc<PortShared>,
}

/// What [`TxQueue::tx_burst_or_free`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxOutcome {
    /// Mbufs the driver accepted.
    pub sent: usize,
    /// Mbufs it refused, which were freed.
    pub dropped: usize,
}

impl std::fmt::Debug for RxQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RxQueue")
            .field("port", &self.shared.name)
            .field("queue", &self.queue)
            .finish()
    }
}

impl std::fmt::Debug for TxQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxQueue")
            .field("port", &self.shared.name)
            .field("queue", &self.queue)
            .finish()
    }
}

impl RxQueue {
    pub(crate) fn new(shared: Arc<PortShared>, q: QueueId) -> Self {
        Self {
            port: shared.id.0,
            queue: q.0,
            shared,
        }
    }

    /// The port.
    pub fn port_id(&self) -> PortId {
        PortId(self.port)
    }

    /// The queue.
    pub fn queue_id(&self) -> QueueId {
        QueueId(self.queue)
    }

    /// Receives up to `burst.spare()` packets into the burst's free slots
    /// (`rte_eth_rx_burst`); returns how many arrived.
    #[inline]
    pub fn rx_burst<const N: usize>(&mut self, burst: &mut MbufBurst<N>) -> usize {
        let room = u16::try_from(burst.spare()).expect("burst capacity fits u16");
        if room == 0 {
            return 0;
        }
        // SAFETY: the port is started and stays so while this handle lives; this
        // handle is the only user of (port, queue); the spare area holds `room`
        // pointer slots.
        let n =
            unsafe { sys::shim_rte_eth_rx_burst(self.port, self.queue, burst.spare_ptr(), room) };
        let n = usize::from(n);
        // SAFETY: the driver wrote `n <= room` pointers to mbufs it handed over.
        unsafe { burst.assume_pushed(n) };
        n
    }
}

impl TxQueue {
    pub(crate) fn new(shared: Arc<PortShared>, q: QueueId) -> Self {
        Self {
            port: shared.id.0,
            queue: q.0,
            shared,
        }
    }

    /// The port.
    pub fn port_id(&self) -> PortId {
        PortId(self.port)
    }

    /// The queue.
    pub fn queue_id(&self) -> QueueId {
        QueueId(self.queue)
    }

    /// Transmits from the front of `burst` (`rte_eth_tx_burst`) and returns how
    /// many the driver took. **Unsent mbufs stay in `burst`**, moved to the
    /// front: retry, or drop/clear the burst to free them.
    #[inline]
    pub fn tx_burst<const N: usize>(&mut self, burst: &mut MbufBurst<N>) -> usize {
        let len = u16::try_from(burst.len()).expect("burst capacity fits u16");
        if len == 0 {
            return 0;
        }
        // SAFETY: started port, sole user of (port, queue); the first `len` slots
        // are owned mbufs; the driver takes ownership of the first `sent`.
        let sent = usize::from(unsafe {
            sys::shim_rte_eth_tx_burst(self.port, self.queue, burst.as_mut_ptr(), len)
        });
        // SAFETY: sent <= len, and those mbufs now belong to the driver.
        unsafe { burst.consume_front(sent) };
        sent
    }

    /// Transmits the burst and frees what the driver refused; the burst is empty
    /// afterwards.
    #[inline]
    pub fn tx_burst_or_free<const N: usize>(&mut self, burst: &mut MbufBurst<N>) -> TxOutcome {
        let sent = self.tx_burst(burst);
        let dropped = burst.len();
        burst.clear();
        TxOutcome { sent, dropped }
    }

    /// Transmits one mbuf; gives it back if the driver refused it.
    ///
    /// # Errors
    /// The mbuf, when the tx ring is full.
    pub fn tx_one(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        let mut raw = m.into_raw().as_ptr();
        // SAFETY: started port, sole user of the queue; one owned mbuf.
        let sent = unsafe { sys::shim_rte_eth_tx_burst(self.port, self.queue, &mut raw, 1) };
        if sent == 1 {
            Ok(())
        } else {
            // SAFETY: the driver did not take it, so we still own it.
            Err(unsafe { Mbuf::from_raw(std::ptr::NonNull::new(raw).expect("non-null mbuf")) })
        }
    }
}

impl Drop for RxQueue {
    fn drop(&mut self) {
        self.shared.rx_taken[usize::from(self.queue)].store(false, Ordering::Release);
    }
}

impl Drop for TxQueue {
    fn drop(&mut self) {
        self.shared.tx_taken[usize::from(self.queue)].store(false, Ordering::Release);
    }
}
