//! Uplink -> node: the packet path of DESIGN.md, step by step.
//!
//! 1. ARP request / neighbour solicitation for a VIP: answered with the
//!    VIP's virtual MAC by the node that owns the requester's bucket
//!    ([`crate::neigh`]).
//! 2. IPv4/IPv6 to a VIP matching a rule: placed in a bucket and accepted
//!    if the table says so (destination MAC rewritten to the TAP's).
//! 3. VIP traffic matching no rule: dropped.
//! 4. Frames for the node (its MAC, broadcast, multicast): to the TAP
//!    unchanged; other unicast: dropped as flooded.

use std::net::IpAddr;

use farm_table::{bucket_of, Affinity, BucketEntry, NO_NODE};
use farm_wire::ethernet::Frame;
use farm_wire::{summarize, Fragment, FrameSummary, IcmpKind, IpSummary, TcpFlags, L3, L4};

use crate::config::{PipelineConfig, Protocol, Vip};
use crate::fast;
use crate::flows::{FlowKey, FlowTracker};
use crate::neigh;
use crate::table::OwnerLookup;
use crate::verdict::{Delivery, DropReason, Verdict};

/// Size of the reply buffer [`classify`] needs (ARP reply or neighbour
/// advertisement with two VLAN tags, padded).
pub const REPLY_BUF_LEN: usize = 128;

/// Classifies a frame received on the uplink.
///
/// May rewrite `frame` in place (destination MAC of accepted VIP traffic).
/// For [`Verdict::Reply`] the reply is in `reply[..len]` (`reply` must hold
/// [`REPLY_BUF_LEN`] bytes, else the verdict is a `NoBuffer` drop).
///
/// Unfragmented IPv4 TCP/UDP frames take a fast path ([`crate::fast`]) that
/// gives the same verdicts; everything else is [`summarize`]d.
#[inline(always)]
pub fn classify<L: OwnerLookup, F: FlowTracker>(
    cfg: &PipelineConfig,
    table: &L,
    flows: &mut F,
    frame: &mut [u8],
    reply: &mut [u8],
) -> Verdict {
    if let Some(p) = farm_wire::fast::ipv4_l4(frame) {
        return fast::classify_ipv4_l4(cfg, table, flows, &p, frame);
    }
    classify_full(cfg, table, flows, frame, reply)
}

/// [`classify`] without the fast path: summarize, then decide.
#[inline(never)]
pub(crate) fn classify_full<L: OwnerLookup, F: FlowTracker>(
    cfg: &PipelineConfig,
    table: &L,
    flows: &mut F,
    frame: &mut [u8],
    reply: &mut [u8],
) -> Verdict {
    match summarize(frame) {
        Ok(s) => classify_summary(cfg, table, flows, &s, frame, reply),
        Err(e) => {
            tracing::trace!(error = %e, "malformed frame from the uplink");
            Verdict::Drop(DropReason::Malformed)
        }
    }
}

/// [`classify`] for a frame already summarized (`s` must describe `frame`).
pub fn classify_summary<L: OwnerLookup, F: FlowTracker>(
    cfg: &PipelineConfig,
    table: &L,
    flows: &mut F,
    s: &FrameSummary,
    frame: &mut [u8],
    reply: &mut [u8],
) -> Verdict {
    match &s.l3 {
        L3::Arp(a) => {
            if let Some(v) = neigh::arp_from_wire(cfg, table, s, a, frame, reply) {
                return v;
            }
        }
        L3::Ip(ip) => {
            if let L4::Icmp(icmp) = &ip.l4 {
                if let Some(v) = neigh::ndisc_from_wire(cfg, table, s, ip, &icmp.kind, frame, reply)
                {
                    return v;
                }
            }
            if let Some(vip) = cfg.vip(ip.dst) {
                return vip_packet(cfg, vip, table, flows, ip, frame);
            }
        }
        L3::Other => {}
    }
    for_host(cfg, s)
}

/// Step 4: the node's own frames go to the kernel, flooded unicast is dropped.
#[inline]
fn for_host(cfg: &PipelineConfig, s: &FrameSummary) -> Verdict {
    if s.dst_mac == cfg.node_mac || s.dst_mac.is_multicast() {
        match s.l3 {
            L3::Other => Verdict::ToTap(Delivery::HostNonIp),
            _ => Verdict::ToTap(Delivery::Host),
        }
    } else {
        Verdict::Drop(DropReason::Flooded)
    }
}

/// Rewrites the destination MAC to the TAP's (the frame has an Ethernet
/// header: it was summarized).
#[inline]
pub(crate) fn to_tap(cfg: &PipelineConfig, frame: &mut [u8], d: Delivery) -> Verdict {
    if let Ok(mut f) = Frame::new_checked(frame) {
        f.set_dst_addr(cfg.tap_mac);
    }
    Verdict::ToTap(d)
}

/// How a packet relates to flows, for handover decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Opens a TCP connection (SYN without ACK): belongs to the new owner.
    NewFlow,
    /// Needs no state (ICMP echo): the owner answers.
    Stateless,
    /// An IP fragment: no ports; the previous owner keeps fragments while
    /// the handover lasts (they most likely belong to its flows).
    Fragment,
    /// Part of a flow (TCP non-SYN, UDP, ICMP errors about a flow).
    Flow,
}

/// Where a VIP packet goes in the table.
#[derive(Debug, Clone, Copy)]
struct Placement {
    bucket: u32,
    class: Class,
    flow: Option<FlowKey>,
    tcp_flags: Option<TcpFlags>,
}

#[inline]
fn bucket(cfg: &PipelineConfig, client: IpAddr, client_port: u16, aff: Affinity) -> u32 {
    let port = match aff {
        Affinity::OnAddr => None,
        Affinity::OnPort => Some(client_port),
    };
    bucket_of(&cfg.hash_key, client, port, cfg.n_buckets)
}

/// Steps 2 and 3.
fn vip_packet<L: OwnerLookup, F: FlowTracker>(
    cfg: &PipelineConfig,
    vip: &Vip,
    table: &L,
    flows: &mut F,
    ip: &IpSummary,
    frame: &mut [u8],
) -> Verdict {
    let p = match place(cfg, vip, ip) {
        Ok(p) => p,
        Err(r) => return Verdict::Drop(r),
    };
    let entry = table.entry(p.bucket);
    let known = || p.flow.is_some_and(|f| flows.is_known(&f));
    match decide_at(table, entry, p.class, known) {
        Ok(d) => {
            if let Some(f) = &p.flow {
                flows.on_accept(f, p.bucket, p.tcp_flags);
            }
            to_tap(cfg, frame, d)
        }
        Err(r) => Verdict::Drop(r),
    }
}

/// Finds the rule and the bucket of a packet to `vip`.
fn place(cfg: &PipelineConfig, vip: &Vip, ip: &IpSummary) -> Result<Placement, DropReason> {
    let by_addr = |client: IpAddr, class: Class| Placement {
        bucket: bucket(cfg, client, 0, Affinity::OnAddr),
        class,
        flow: None,
        tcp_flags: None,
    };
    if ip.fragment != Fragment::None {
        return place_fragment(vip, ip).map(|class| by_addr(ip.src, class));
    }
    let (protocol, ports, tcp_flags) = match ip.l4 {
        L4::Tcp { ports, flags } => (Protocol::Tcp, ports, Some(flags)),
        L4::Udp { ports } => (Protocol::Udp, ports, None),
        L4::Icmp(icmp) => {
            return match icmp.kind {
                IcmpKind::EchoRequest { .. } => {
                    vip.rule_for(Protocol::Icmp, 0).ok_or(DropReason::NoRule)?;
                    Ok(by_addr(ip.src, Class::Stateless))
                }
                IcmpKind::Error { inner: Some(t), .. } if t.src == ip.dst => {
                    // An error about a packet the VIP sent to client `t.dst`:
                    // place it as that client's traffic.
                    let protocol = Protocol::from_ip(t.protocol).ok_or(DropReason::NoRule)?;
                    match (protocol, t.ports) {
                        (Protocol::Icmp, _) => {
                            vip.rule_for(Protocol::Icmp, 0).ok_or(DropReason::NoRule)?;
                            Ok(by_addr(t.dst, Class::Stateless))
                        }
                        (_, Some(p)) => {
                            let rule = vip.rule_for(protocol, p.src).ok_or(DropReason::NoRule)?;
                            let flow = FlowKey {
                                protocol: t.protocol,
                                client: t.dst,
                                client_port: p.dst,
                                vip: t.src,
                                vip_port: p.src,
                            };
                            Ok(Placement {
                                bucket: bucket(cfg, t.dst, p.dst, rule.effective_affinity()),
                                class: Class::Flow,
                                flow: Some(flow),
                                tcp_flags: None,
                            })
                        }
                        (_, None) => match vip.portless_affinity(protocol) {
                            None => Err(DropReason::NoRule),
                            Some(Err(())) => Err(DropReason::Fragment),
                            Some(Ok(_)) => Ok(by_addr(t.dst, Class::Fragment)),
                        },
                    }
                }
                _ => Err(DropReason::NoRule),
            };
        }
        L4::None | L4::Other => return Err(DropReason::NoRule),
    };
    let rule = vip
        .rule_for(protocol, ports.dst)
        .ok_or(DropReason::NoRule)?;
    let class = match tcp_flags {
        Some(f) if f.is_syn_only() => Class::NewFlow,
        _ => Class::Flow,
    };
    let flow = FlowKey {
        protocol: ip.protocol,
        client: ip.src,
        client_port: ports.src,
        vip: ip.dst,
        vip_port: ports.dst,
    };
    Ok(Placement {
        bucket: bucket(cfg, ip.src, ports.src, rule.effective_affinity()),
        class,
        flow: Some(flow),
        tcp_flags,
    })
}

/// The fragment policy: every fragment of a datagram is placed by source
/// address, so all of them reach one node. A first fragment picks its rule
/// by destination port; a later fragment (no ports) by protocol, and then
/// every rule of that protocol must be `on_addr`. Fragments that would need
/// an `on_port` rule are dropped (`DropFragment`): their later pieces could
/// not follow the first. ICMP fragments (large pings) need an ICMP rule.
fn place_fragment(vip: &Vip, ip: &IpSummary) -> Result<Class, DropReason> {
    let protocol = Protocol::from_ip(ip.protocol).ok_or(DropReason::NoRule)?;
    if protocol == Protocol::Icmp {
        vip.rule_for(Protocol::Icmp, 0).ok_or(DropReason::NoRule)?;
        return Ok(Class::Stateless);
    }
    let aff = match ip.l4 {
        L4::Tcp { ports, .. } | L4::Udp { ports } => vip
            .rule_for(protocol, ports.dst)
            .ok_or(DropReason::NoRule)?
            .effective_affinity(),
        _ => match vip.portless_affinity(protocol) {
            None => return Err(DropReason::NoRule),
            Some(Err(())) => return Err(DropReason::Fragment),
            Some(Ok(a)) => a,
        },
    };
    match aff {
        Affinity::OnAddr => Ok(Class::Fragment),
        Affinity::OnPort => Err(DropReason::Fragment),
    }
}

/// The table decision, handover included.
///
/// | entry                          | this node   | accepts                                   |
/// |--------------------------------|-------------|-------------------------------------------|
/// | owner = me, no prev owner      | owner       | everything                                |
/// | owner = me, prev owner = other | new owner   | SYNs, echo, flows it knows                |
/// | prev owner = me                | previous    | flows it knows, fragments                 |
/// | otherwise                      | -           | nothing (`NotMine`, `NoOwner` if unowned) |
///
/// The new owner drops unknown non-SYN packets (`HandoverPassed`) until
/// farmd clears `prev_owner` (the previous owner reported the bucket
/// drained, or died): they may belong to the previous owner's connections.
pub fn decide(
    e: BucketEntry,
    me: u8,
    class: Class,
    known: impl FnOnce() -> bool,
) -> Result<Delivery, DropReason> {
    if e.owner == me {
        if e.prev_owner == NO_NODE || e.prev_owner == me {
            return Ok(Delivery::Vip);
        }
        return match class {
            Class::NewFlow | Class::Stateless => Ok(Delivery::Vip),
            Class::Flow if known() => Ok(Delivery::Vip),
            Class::Flow | Class::Fragment => Err(DropReason::HandoverPassed),
        };
    }
    if e.prev_owner == me {
        match class {
            Class::Fragment => return Ok(Delivery::VipHandoverKept),
            Class::Flow if known() => return Ok(Delivery::VipHandoverKept),
            _ => {}
        }
    }
    if e.owner == NO_NODE {
        Err(DropReason::NoOwner)
    } else {
        Err(DropReason::NotMine)
    }
}

/// [`decide`] under the lease: while `table` is fenced (farmd's lease
/// expired, DESIGN.md I1) this node accepts only packets of flows it holds
/// in buckets it owns or hands over; everything it would otherwise have
/// taken (SYNs, echo, fragments, unknown packets) is dropped as `Fenced`.
/// Packets it would not have taken anyway keep their usual reason.
#[inline(always)]
pub fn decide_at<L: OwnerLookup>(
    table: &L,
    e: BucketEntry,
    class: Class,
    known: impl FnOnce() -> bool,
) -> Result<Delivery, DropReason> {
    let me = table.node_id();
    if !table.fenced() {
        return decide(e, me, class, known);
    }
    if e.owner != me && e.prev_owner != me {
        return decide(e, me, class, || false);
    }
    match class {
        Class::Flow if known() => Ok(Delivery::Vip),
        _ => Err(DropReason::Fenced),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{FencedTable, StaticTable};

    fn e(owner: u8, prev_owner: u8) -> BucketEntry {
        BucketEntry { owner, prev_owner }
    }

    const CLASSES: [Class; 4] = [
        Class::NewFlow,
        Class::Stateless,
        Class::Fragment,
        Class::Flow,
    ];

    #[test]
    fn handover_table() {
        use Delivery::*;
        use DropReason::*;
        let n = NO_NODE;
        // (entry, class, known) -> result, for node 1.
        let cases: &[(BucketEntry, Class, bool, Result<Delivery, DropReason>)] = &[
            (e(1, n), Class::Flow, false, Ok(Vip)),
            (e(1, n), Class::Fragment, false, Ok(Vip)),
            (e(1, 1), Class::Flow, false, Ok(Vip)),
            (e(1, 2), Class::NewFlow, false, Ok(Vip)),
            (e(1, 2), Class::Stateless, false, Ok(Vip)),
            (e(1, 2), Class::Flow, true, Ok(Vip)),
            (e(1, 2), Class::Flow, false, Err(HandoverPassed)),
            (e(1, 2), Class::Fragment, false, Err(HandoverPassed)),
            (e(2, 1), Class::Flow, true, Ok(VipHandoverKept)),
            (e(2, 1), Class::Fragment, false, Ok(VipHandoverKept)),
            (e(2, 1), Class::Flow, false, Err(NotMine)),
            (e(2, 1), Class::NewFlow, true, Err(NotMine)),
            (e(2, 1), Class::Stateless, true, Err(NotMine)),
            (e(n, 1), Class::Flow, true, Ok(VipHandoverKept)),
            (e(n, 1), Class::NewFlow, false, Err(NoOwner)),
            (e(2, n), Class::Flow, true, Err(NotMine)),
            (e(2, 3), Class::Flow, true, Err(NotMine)),
            (e(n, n), Class::NewFlow, true, Err(NoOwner)),
            (e(n, 2), Class::Flow, true, Err(NoOwner)),
        ];
        for &(entry, class, known, want) in cases {
            assert_eq!(
                decide(entry, 1, class, || known),
                want,
                "{entry:?} {class:?} known={known}"
            );
        }
    }

    #[test]
    fn at_most_one_node_accepts_new_flows() {
        // I1 at the packet level: for any entry, at most one node takes a SYN or an echo.
        let ids = [0u8, 1, 2, NO_NODE];
        for &o in &ids {
            for &p in &ids {
                for class in [Class::NewFlow, Class::Stateless] {
                    let takers = (0..3u8)
                        .filter(|&me| decide(e(o, p), me, class, || true).is_ok())
                        .count();
                    assert!(
                        takers <= 1,
                        "owner {o} prev {p} {class:?}: {takers} nodes accept"
                    );
                }
            }
        }
    }

    #[test]
    fn a_fenced_node_keeps_held_flows_only() {
        use Delivery::*;
        use DropReason::*;
        let n = NO_NODE;
        let at = |o: u8, p: u8, class: Class, known: bool| {
            let t = FencedTable(StaticTable {
                node_id: 1,
                entries: vec![e(o, p); 256],
            });
            decide_at(&t, e(o, p), class, || known)
        };
        for (o, p) in [(1, n), (1, 2), (2, 1), (n, 1)] {
            assert_eq!(at(o, p, Class::Flow, true), Ok(Vip), "{o} {p}");
            for class in [Class::NewFlow, Class::Stateless, Class::Fragment] {
                assert_eq!(at(o, p, class, true), Err(Fenced), "{o} {p} {class:?}");
            }
            assert_eq!(at(o, p, Class::Flow, false), Err(Fenced), "{o} {p}");
        }
        assert_eq!(at(2, n, Class::NewFlow, true), Err(NotMine));
        assert_eq!(at(n, n, Class::NewFlow, true), Err(NoOwner));
        // Unfenced, the same table decides as `decide` does.
        let t = StaticTable::all_owned_by(1, 1, 256);
        assert_eq!(decide_at(&t, e(1, n), Class::NewFlow, || false), Ok(Vip));
    }

    #[test]
    fn known_flows_have_exactly_one_taker_while_a_live_node_owns_them() {
        // A flow known only to node `holder` reaches exactly one node in every state of its bucket.
        for holder in 0..3u8 {
            for &(o, p) in &[
                (holder, NO_NODE),
                (holder, (holder + 1) % 3),
                ((holder + 1) % 3, holder),
            ] {
                let takers: Vec<u8> = (0..3u8)
                    .filter(|&me| decide(e(o, p), me, Class::Flow, || me == holder).is_ok())
                    .collect();
                assert_eq!(takers, vec![holder], "owner {o} prev {p}");
            }
        }
        // The flow lookup is only asked when it matters.
        for class in CLASSES {
            let _ = decide(e(1, NO_NODE), 1, class, || {
                panic!("asked without a handover")
            });
        }
    }
}
