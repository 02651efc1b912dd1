//! Flow knowledge for bucket handover.
//!
//! During a handover (`prev_owner != NO_NODE`) the previous owner keeps the
//! packets of flows it knows and the new owner takes new flows (TCP SYN) and
//! its own flows; see the crate docs. Which flows a node "knows" is the
//! caller's business (a table of flows the data plane passed to the kernel,
//! or the kernel's socket table): this module only defines the question.

use std::net::IpAddr;

use farm_wire::{IpProtocol, TcpFlags};

/// A client flow to a VIP, seen from the VIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Upper-layer protocol.
    pub protocol: IpProtocol,
    /// Client address.
    pub client: IpAddr,
    /// Client port (0 when the protocol has none).
    pub client_port: u16,
    /// The VIP.
    pub vip: IpAddr,
    /// VIP port (0 when the protocol has none).
    pub vip_port: u16,
}

/// Answers "does this node hold this flow?" and hears about accepted
/// packets.
pub trait FlowTracker {
    /// True when this node holds state for `flow`. Only asked during a
    /// handover, so it may be slower than the hot path.
    fn is_known(&self, flow: &FlowKey) -> bool;

    /// Called for every VIP packet this node accepts, with its bucket and
    /// TCP flags (`None` for other protocols). Default: nothing.
    #[inline]
    fn on_accept(&mut self, flow: &FlowKey, bucket: u32, tcp_flags: Option<TcpFlags>) {
        let _ = (flow, bucket, tcp_flags);
    }
}

/// No flow tracking: nothing is known. During a handover the previous owner
/// then drops everything and the new owner accepts only new TCP
/// connections and ICMP echo until the handover ends.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFlowTracking;

impl FlowTracker for NoFlowTracking {
    #[inline]
    fn is_known(&self, _: &FlowKey) -> bool {
        false
    }
}

impl<T: FlowTracker + ?Sized> FlowTracker for &mut T {
    fn is_known(&self, flow: &FlowKey) -> bool {
        (**self).is_known(flow)
    }
    fn on_accept(&mut self, flow: &FlowKey, bucket: u32, tcp_flags: Option<TcpFlags>) {
        (**self).on_accept(flow, bucket, tcp_flags)
    }
}
