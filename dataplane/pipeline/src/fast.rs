//! The classifier's fast path: the frames that make up nearly all the
//! traffic, decided from a few fields read straight off the frame
//! ([`farm_wire::fast`]) instead of a full [`farm_wire::summarize`].
//!
//! - From the uplink: an unfragmented IPv4 TCP/UDP frame (untagged or one
//!   VLAN tag). Steps 2 to 4 of [`crate::classify`] for it: VIP lookup, rule,
//!   bucket, table decision, or the host / flooded decision.
//! - From the TAP: an untagged IPv4 frame, or an untagged IPv6 frame whose
//!   first next header is TCP or UDP, sent from a MAC that is no virtual
//!   MAC: it goes out unchanged (only ARP and neighbour discovery are ever
//!   rewritten or dropped).
//!
//! Both give exactly the verdict (and frame rewrite, and flow tracker
//! calls) of the full path; `fast_tests.rs` checks it on mutated frames.
//! Everything else takes the full path.

use std::net::IpAddr;

use farm_table::{bucket_v4, Affinity};
use farm_wire::fast::Ipv4L4;
use farm_wire::{EthernetAddress, IpProtocol};

use crate::classify::{decide_at, to_tap, Class};
use crate::config::{PipelineConfig, Protocol};
use crate::flows::{FlowKey, FlowTracker};
use crate::table::OwnerLookup;
use crate::verdict::{Delivery, DropReason, Verdict};

/// [`crate::classify`] for a frame [`farm_wire::fast::ipv4_l4`] read as `p`.
#[inline(always)]
pub(crate) fn classify_ipv4_l4<L: OwnerLookup, F: FlowTracker>(
    cfg: &PipelineConfig,
    table: &L,
    flows: &mut F,
    p: &Ipv4L4,
    frame: &mut [u8],
) -> Verdict {
    let Some(vip) = cfg.vip(IpAddr::V4(p.dst)) else {
        // Step 4 for an IP frame.
        return if p.dst_mac == cfg.node_mac || p.dst_mac.is_multicast() {
            Verdict::ToTap(Delivery::Host)
        } else {
            Verdict::Drop(DropReason::Flooded)
        };
    };
    let (protocol, ip_protocol) = match p.tcp_flags {
        Some(_) => (Protocol::Tcp, IpProtocol::Tcp),
        None => (Protocol::Udp, IpProtocol::Udp),
    };
    let Some(rule) = vip.rule_for(protocol, p.ports.dst) else {
        return Verdict::Drop(DropReason::NoRule);
    };
    let class = match p.tcp_flags {
        Some(f) if f.is_syn_only() => Class::NewFlow,
        _ => Class::Flow,
    };
    let affinity = rule.effective_affinity();
    let hashed_port = match affinity {
        Affinity::OnAddr => 0,
        Affinity::OnPort => p.ports.src,
    };
    let bucket = bucket_v4(
        &cfg.hash_key,
        p.src.octets(),
        hashed_port,
        affinity,
        cfg.n_buckets,
    );
    let flow = FlowKey {
        protocol: ip_protocol,
        client: IpAddr::V4(p.src),
        client_port: p.ports.src,
        vip: IpAddr::V4(p.dst),
        vip_port: p.ports.dst,
    };
    let entry = table.entry(bucket);
    match decide_at(table, entry, class, || flows.is_known(&flow)) {
        Ok(d) => {
            flows.on_accept(&flow, bucket, p.tcp_flags);
            to_tap(cfg, frame, d)
        }
        Err(r) => Verdict::Drop(r),
    }
}

const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const ETHERTYPE_IPV6: [u8; 2] = [0x86, 0xdd];
/// Offset of the IPv6 next-header field in an untagged frame.
const IPV6_NEXT_HEADER: usize = 14 + 6;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// True when [`crate::classify_from_tap`] forwards `frame` unchanged
/// whatever else it holds (see the module docs); false means "ask the full
/// path", not "drop".
#[inline(always)]
pub(crate) fn tap_frame_passes(cfg: &PipelineConfig, frame: &[u8]) -> bool {
    let Some(eth) = frame.first_chunk::<14>() else {
        return false;
    };
    let ethertype = [eth[12], eth[13]];
    let plain = ethertype == ETHERTYPE_IPV4
        || (ethertype == ETHERTYPE_IPV6
            && matches!(frame.get(IPV6_NEXT_HEADER), Some(&(PROTO_TCP | PROTO_UDP))));
    if !plain {
        return false;
    }
    let src = EthernetAddress([eth[6], eth[7], eth[8], eth[9], eth[10], eth[11]]);
    cfg.vip_by_vmac(src).is_none()
}

#[cfg(test)]
#[path = "fast_tests.rs"]
mod tests;
