//! ARP and IPv6 neighbour discovery for VIPs, both directions.
//!
//! From the wire:
//! - a request / solicitation for a VIP is answered with the VIP's virtual
//!   MAC by the one node that owns the requester's bucket (hash of the
//!   requester's address, `on_addr`). The Ethernet source of the answer is
//!   the node's MAC: no frame ever leaves with a virtual MAC as source, so
//!   switches never learn it and keep flooding VIP traffic to every node.
//!   Probes (sender 0.0.0.0, or `::` for duplicate address detection) are
//!   never answered: the nodes' kernels probe the VIP themselves when it is
//!   configured on the TAP, and must not see a conflict.
//! - an ARP reply / neighbour advertisement addressed to a VIP answers a
//!   solicitation a node's kernel sent from the VIP (see below): it goes to
//!   every node's kernel, destination MAC rewritten.
//! - neighbour traffic whose sender is a VIP (other nodes' kernels, or an
//!   address conflict) and advertisements for a VIP never reach the kernel.
//!
//! From the TAP (the kernel):
//! - replies, gratuitous ARP and advertisements that carry a VIP with the
//!   node's MAC are dropped (the classic CLUSTERIP pitfall: they would bind
//!   the VIP to one node);
//! - a request / solicitation sent *from* a VIP (the kernel resolving a
//!   client it answers from the VIP) is rewritten, not dropped: its sender
//!   hardware address / source link-layer option becomes the virtual MAC, so
//!   the client learns VIP -> virtual MAC (correct) and answers to the
//!   virtual MAC, which the switch floods to every node. Dropping would
//!   break neighbour resolution for IPv6 (Linux always solicits from the
//!   packet's source address) and for IPv4 unless `arp_announce=2`.
//! - a frame whose source is a virtual MAC is dropped.

use std::net::IpAddr;

use farm_table::bucket_of;
use farm_wire::frame::{arp_reply_frame, ndisc_advert_frame};
use farm_wire::ndisc::{NdiscOptionType, LLADDR_OPTION_LEN, OPTIONS_OFFSET};
use farm_wire::{
    arp, icmpv6, summarize, ArpOperation, ArpRepr, ArpSummary, EthernetAddress, FrameSummary,
    IcmpKind, IcmpSummary, IpSummary, NdiscRepr, L3, L4,
};

use crate::classify::to_tap;
use crate::config::PipelineConfig;
use crate::fast;
use crate::table::{answers_neighbors, OwnerLookup};
use crate::verdict::{Delivery, DropReason, ReplyKind, Verdict};

fn answers(cfg: &PipelineConfig, table: &impl OwnerLookup, requester: IpAddr) -> bool {
    let b = bucket_of(&cfg.hash_key, requester, None, cfg.n_buckets);
    answers_neighbors(table.entry(b), table.node_id())
}

fn reply_verdict(r: Option<farm_wire::Result<usize>>, kind: ReplyKind) -> Verdict {
    match r {
        Some(Ok(len)) => Verdict::Reply { len, kind },
        Some(Err(_)) => Verdict::Drop(DropReason::NoBuffer),
        None => Verdict::Drop(DropReason::Malformed),
    }
}

/// ARP from the wire; `None` when the frame is not about a VIP.
pub(crate) fn arp_from_wire(
    cfg: &PipelineConfig,
    table: &impl OwnerLookup,
    s: &FrameSummary,
    a: &ArpSummary,
    frame: &mut [u8],
    reply: &mut [u8],
) -> Option<Verdict> {
    if cfg.is_vip(a.sender_ip.into()) {
        return Some(Verdict::Drop(DropReason::NeighNotMine));
    }
    let vip = cfg.vip(a.target_ip.into())?;
    Some(match a.op {
        ArpOperation::Request if a.sender_ip.is_unspecified() => {
            Verdict::Drop(DropReason::NeighNotMine)
        }
        ArpOperation::Request if answers(cfg, table, a.sender_ip.into()) => {
            if table.fenced() {
                return Some(Verdict::Drop(DropReason::Fenced));
            }
            let req = ArpRepr {
                operation: ArpOperation::Request,
                source_hardware_addr: a.sender_mac,
                source_protocol_addr: a.sender_ip,
                target_hardware_addr: a.target_mac,
                target_protocol_addr: a.target_ip,
            };
            reply_verdict(
                arp_reply_frame(&req, s.src_mac, s.tags, cfg.node_mac, vip.vmac, reply),
                ReplyKind::Arp,
            )
        }
        ArpOperation::Reply => to_tap(cfg, frame, Delivery::VipNeighbor),
        _ => Verdict::Drop(DropReason::NeighNotMine),
    })
}

/// Neighbour discovery from the wire; `None` when not about a VIP.
pub(crate) fn ndisc_from_wire(
    cfg: &PipelineConfig,
    table: &impl OwnerLookup,
    s: &FrameSummary,
    ip: &IpSummary,
    kind: &IcmpKind,
    frame: &mut [u8],
    reply: &mut [u8],
) -> Option<Verdict> {
    let IpAddr::V6(src) = ip.src else {
        return None;
    };
    match *kind {
        IcmpKind::NeighborSolicit { target, source_mac } => {
            if cfg.is_vip(ip.src) {
                return Some(Verdict::Drop(DropReason::NeighNotMine));
            }
            let vip = cfg.vip(target.into())?;
            Some(if ip.hop_limit != 255 {
                Verdict::Drop(DropReason::Malformed)
            } else if src.is_unspecified() || !answers(cfg, table, ip.src) {
                Verdict::Drop(DropReason::NeighNotMine)
            } else if table.fenced() {
                Verdict::Drop(DropReason::Fenced)
            } else {
                let ns = NdiscRepr::NeighborSolicit {
                    target_addr: target,
                    lladdr: source_mac,
                };
                let r =
                    ndisc_advert_frame(&ns, src, s.src_mac, s.tags, cfg.node_mac, vip.vmac, reply);
                reply_verdict(r, ReplyKind::Nd)
            })
        }
        IcmpKind::NeighborAdvert { target, .. } => {
            if cfg.is_vip(target.into()) || cfg.is_vip(ip.src) {
                Some(Verdict::Drop(DropReason::NeighNotMine))
            } else if cfg.is_vip(ip.dst) {
                Some(if ip.hop_limit != 255 {
                    Verdict::Drop(DropReason::Malformed)
                } else {
                    to_tap(cfg, frame, Delivery::VipNeighbor)
                })
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Classifies a frame from the TAP (the kernel) on its way to the uplink.
///
/// Everything goes out unchanged except neighbour traffic that would bind
/// a VIP to this node's MAC (dropped) and solicitations sent from a VIP
/// (rewritten in place to carry the virtual MAC); see the module docs.
/// Frames the summarizer cannot read are forwarded: the kernel wrote them.
/// Plain IPv4 / IPv6 TCP/UDP frames take a fast path ([`crate::fast`]).
#[inline(always)]
pub fn classify_from_tap(cfg: &PipelineConfig, frame: &mut [u8]) -> Verdict {
    if fast::tap_frame_passes(cfg, frame) {
        return Verdict::ToWire;
    }
    from_tap_full(cfg, frame)
}

/// [`classify_from_tap`] without the fast path.
#[inline(never)]
pub(crate) fn from_tap_full(cfg: &PipelineConfig, frame: &mut [u8]) -> Verdict {
    let Ok(s) = summarize(frame) else {
        return Verdict::ToWire;
    };
    if cfg.vip_by_vmac(s.src_mac).is_some() {
        return Verdict::Drop(DropReason::VipNeighFromTap);
    }
    match &s.l3 {
        L3::Arp(a) => {
            let Some(vip) = cfg.vip(a.sender_ip.into()) else {
                return Verdict::ToWire;
            };
            if a.op == ArpOperation::Request && a.target_ip != a.sender_ip {
                if let Some(mut p) = frame
                    .get_mut(s.l3_offset..)
                    .and_then(|b| arp::Packet::new_checked(b).ok())
                {
                    p.set_source_hardware_addr(vip.vmac);
                    return Verdict::ToWire;
                }
            }
            Verdict::Drop(DropReason::VipNeighFromTap)
        }
        L3::Ip(ip) => match &ip.l4 {
            L4::Icmp(IcmpSummary {
                kind: IcmpKind::NeighborAdvert { target, .. },
                ..
            }) if cfg.is_vip((*target).into()) => Verdict::Drop(DropReason::VipNeighFromTap),
            L4::Icmp(IcmpSummary {
                kind:
                    IcmpKind::NeighborSolicit {
                        source_mac: Some(_),
                        ..
                    },
                ..
            }) => match cfg.vip(ip.src) {
                None => Verdict::ToWire,
                Some(vip) if rewrite_source_lladdr(frame, ip, vip.vmac) => Verdict::ToWire,
                Some(_) => Verdict::Drop(DropReason::VipNeighFromTap),
            },
            _ => Verdict::ToWire,
        },
        L3::Other => Verdict::ToWire,
    }
}

/// Replaces every source link-layer address option of the NS at
/// `ip.l4_offset` with `mac` and recomputes the ICMPv6 checksum.
fn rewrite_source_lladdr(frame: &mut [u8], ip: &IpSummary, mac: EthernetAddress) -> bool {
    let (IpAddr::V6(src), IpAddr::V6(dst)) = (ip.src, ip.dst) else {
        return false;
    };
    let Some(msg) = frame.get_mut(ip.l4_offset..ip.l4_offset + ip.l4_len) else {
        return false;
    };
    let mut off = OPTIONS_OFFSET;
    while let (Some(&ty), Some(&len)) = (msg.get(off), msg.get(off + 1)) {
        let len = usize::from(len) * 8;
        let Some(opt) = msg.get_mut(off..off + len).filter(|_| len != 0) else {
            return false;
        };
        if NdiscOptionType::from(ty) == NdiscOptionType::SourceLinkLayerAddr
            && len == LLADDR_OPTION_LEN
        {
            opt[2..].copy_from_slice(&mac.0);
        }
        off += len;
    }
    icmpv6::Packet::new_unchecked(msg).fill_checksum(src, dst);
    true
}
