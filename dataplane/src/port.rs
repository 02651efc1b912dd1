//! DPDK queues as the pipeline's [`Port`]s, and mbufs as its [`Frame`]s.

use dpdk::{Mbuf, MbufBurst, RxQueue, TxQueue};
use farm_pipeline::{Frame, Port};

/// A received mbuf the pipeline may rewrite in place or replace by a reply.
#[derive(Debug)]
pub struct Pkt(pub Mbuf);

impl Frame for Pkt {
    #[inline(always)]
    fn data(&self) -> &[u8] {
        self.0.data()
    }
    #[inline(always)]
    fn data_mut(&mut self) -> &mut [u8] {
        self.0.data_mut()
    }
    fn replace(&mut self, bytes: &[u8]) -> bool {
        // A reply is built from a request we received; it never needs more room than an mbuf
        // has, but refuse rather than panic if it would.
        if bytes.len() > self.0.data_len() + self.0.tailroom() {
            return false;
        }
        self.0.reset();
        self.0.extend_from_slice(bytes).is_ok()
    }
}

/// One rx queue and one tx queue of a DPDK port, used by one worker.
#[derive(Debug)]
pub struct QueuePair {
    rx: RxQueue,
    tx: TxQueue,
    burst: MbufBurst,
}

impl QueuePair {
    /// Wraps the queues.
    pub fn new(rx: RxQueue, tx: TxQueue) -> QueuePair {
        QueuePair { rx, tx, burst: MbufBurst::default() }
    }

    /// The rx queue (to arm its interrupt).
    pub fn rx(&self) -> &RxQueue {
        &self.rx
    }
}

impl Port for QueuePair {
    type Buf = Pkt;

    #[inline]
    fn rx_burst(&mut self, out: &mut Vec<Pkt>, max: usize) -> usize {
        let mut total = 0;
        while total < max {
            let n = self.rx.rx_burst(&mut self.burst);
            // One pass over the burst: `resize_with` fills from a trusted-length iterator with
            // the length kept in a register, where pushing (or `extend` from the drain) would
            // store and reload the Vec's length for every mbuf.
            let held = self.burst.len();
            let mut mbufs = self.burst.drain();
            out.resize_with(out.len() + held, || {
                Pkt(mbufs.next().expect("a drain yields every mbuf the burst held"))
            });
            total += n;
            if n < dpdk::BURST_SIZE {
                break;
            }
        }
        total
    }

    #[inline]
    fn tx_burst(&mut self, frames: &mut Vec<Pkt>) -> usize {
        let mut sent = 0;
        let mut unsent: Vec<Pkt> = Vec::new();
        let mut rest = frames.drain(..);
        loop {
            for p in rest.by_ref().take(dpdk::BURST_SIZE) {
                if let Err(m) = self.burst.push(p.0) {
                    unsent.push(Pkt(m));
                }
            }
            if self.burst.is_empty() {
                break;
            }
            sent += self.tx.tx_burst(&mut self.burst);
            if !self.burst.is_empty() {
                // The queue is full: hand the rest back to the caller, which counts and drops.
                unsent.extend(self.burst.drain().map(Pkt));
                unsent.extend(rest.by_ref());
                break;
            }
        }
        drop(rest);
        frames.extend(unsent);
        sent
    }

    /// One `rte_pktmbuf_free_bulk` per [`dpdk::BURST_SIZE`] frames.
    #[inline]
    fn free(&mut self, frames: &mut Vec<Pkt>) {
        for p in frames.drain(..) {
            if let Err(m) = self.burst.push(p.0) {
                self.burst.clear();
                // Cannot fail on an empty burst; if it did, `m` would be freed alone.
                let _ = self.burst.push(m);
            }
        }
        self.burst.clear();
    }
}
