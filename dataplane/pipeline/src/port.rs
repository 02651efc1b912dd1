//! The port abstraction the poll loop runs on (in the spirit of smoltcp's
//! `phy::Device`): DPDK ports in the data-plane binary, memory in tests.

use std::collections::VecDeque;

/// A received frame the pipeline may rewrite, or replace by a reply.
pub trait Frame {
    /// The frame's bytes.
    fn data(&self) -> &[u8];
    /// The frame's bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Replaces the contents by `bytes` (a request turned into its reply);
    /// false when the buffer cannot hold them.
    fn replace(&mut self, bytes: &[u8]) -> bool;
}

/// One queue pair of a port.
pub trait Port {
    /// The frame buffer type (e.g. an mbuf wrapper); shared by both ports of
    /// a pipeline so frames move between them without copies.
    type Buf: Frame;
    /// Receives up to `max` frames, appended to `out`; returns how many.
    fn rx_burst(&mut self, out: &mut Vec<Self::Buf>, max: usize) -> usize;
    /// Transmits frames from the front of `frames` and removes the ones sent;
    /// the rest stay for the caller (which drops and counts them). Returns
    /// how many were sent.
    fn tx_burst(&mut self, frames: &mut Vec<Self::Buf>) -> usize;
    /// Frees frames the pipeline dropped and empties `frames`. The default
    /// drops them one by one; a DPDK port frees them in one bulk call.
    #[inline]
    fn free(&mut self, frames: &mut Vec<Self::Buf>) {
        frames.clear();
    }
}

/// A heap frame (tests, tools).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VecFrame(pub Vec<u8>);

impl VecFrame {
    /// Largest frame [`Frame::replace`] accepts (a standard mbuf's room).
    pub const CAPACITY: usize = 2048;
}

impl Frame for VecFrame {
    fn data(&self) -> &[u8] {
        &self.0
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
    fn replace(&mut self, bytes: &[u8]) -> bool {
        if bytes.len() > Self::CAPACITY {
            return false;
        }
        self.0.clear();
        self.0.extend_from_slice(bytes);
        true
    }
}

/// An in-memory port: frames injected into `rx` are received; transmitted
/// frames land in `sent`. `tx_room` bounds how many frames one `tx_burst`
/// accepts, to exercise full transmit queues.
#[derive(Debug, Default)]
pub struct LoopbackPort {
    /// Frames waiting to be received.
    pub rx: VecDeque<VecFrame>,
    /// Frames transmitted so far.
    pub sent: Vec<VecFrame>,
    /// Frames one `tx_burst` accepts (`usize::MAX`: unbounded).
    pub tx_room: usize,
}

impl LoopbackPort {
    /// An empty port with unbounded transmit room.
    pub fn new() -> Self {
        LoopbackPort {
            rx: VecDeque::new(),
            sent: Vec::new(),
            tx_room: usize::MAX,
        }
    }

    /// Queues a frame for reception.
    pub fn inject(&mut self, frame: Vec<u8>) {
        self.rx.push_back(VecFrame(frame));
    }

    /// Takes the transmitted frames.
    pub fn take_sent(&mut self) -> Vec<Vec<u8>> {
        self.sent.drain(..).map(|f| f.0).collect()
    }

    /// Connects `self`'s transmissions to `peer`'s receptions (moves what
    /// was sent so far).
    pub fn deliver_to(&mut self, peer: &mut LoopbackPort) {
        peer.rx.extend(self.sent.drain(..));
    }
}

impl Port for LoopbackPort {
    type Buf = VecFrame;

    fn rx_burst(&mut self, out: &mut Vec<VecFrame>, max: usize) -> usize {
        let n = max.min(self.rx.len());
        out.extend(self.rx.drain(..n));
        n
    }

    fn tx_burst(&mut self, frames: &mut Vec<VecFrame>) -> usize {
        let n = self.tx_room.min(frames.len());
        self.sent.extend(frames.drain(..n));
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_bursts() {
        let mut p = LoopbackPort::new();
        for i in 0..5u8 {
            p.inject(vec![i; 4]);
        }
        let mut v = Vec::new();
        assert_eq!(p.rx_burst(&mut v, 3), 3);
        assert_eq!(p.rx_burst(&mut v, 3), 2);
        assert_eq!(p.rx_burst(&mut v, 3), 0);
        p.tx_room = 4;
        assert_eq!(p.tx_burst(&mut v), 4);
        assert_eq!(v, vec![VecFrame(vec![4; 4])]);
        let mut q = LoopbackPort::new();
        p.deliver_to(&mut q);
        assert_eq!(q.rx.len(), 4);
        assert!(p.take_sent().is_empty());
    }

    #[test]
    fn vec_frame_replace() {
        let mut f = VecFrame(vec![1; 60]);
        assert!(f.replace(&[2; 90]));
        assert_eq!(f.data(), &[2; 90][..]);
        assert!(!f.replace(&vec![0; VecFrame::CAPACITY + 1]));
        f.data_mut()[0] = 9;
        assert_eq!(f.0[0], 9);
    }
}
