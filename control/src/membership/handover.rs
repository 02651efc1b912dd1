//! View changes, release and acquisition of buckets, drains and the published table.

use std::time::Duration;

use farm_table::{BucketEntry, NO_NODE};
use tracing::{debug, info, warn};

use super::config::{Config, Mode, Takeover};
use super::peer::Liveness;
use super::node::{Action, Event, Node};
use crate::assign::{self, Candidate, Member};
use crate::proto::{DrainSet, NodeState, MAX_RUNS};

#[inline]
fn mix(h: u64, v: u64) -> u64 {
    let mut x = h ^ v.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Digest of the configuration every node must share for their tables to agree.
pub(crate) fn config_digest(cfg: &Config) -> u64 {
    let mode = match cfg.mode {
        Mode::Farm => 0,
        Mode::Failover { failback: true } => 1,
        Mode::Failover { failback: false } => 2,
    };
    let mut h = mix(0x6661_726d, u64::from(cfg.cluster_id));
    h = mix(h, cfg.hash_seed);
    h = mix(h, u64::from(cfg.n_buckets));
    h = mix(h, mode);
    let mut nodes = cfg.nodes.clone();
    nodes.sort_by_key(|n| n.id);
    for n in nodes {
        h = mix(h, u64::from(n.id) << 32 | u64::from(n.priority));
    }
    h
}

/// One member of the current view, with what the assignment needs.
struct ViewMember {
    id: u8,
    weight: u16,
    priority: u32,
    active: bool,
}

impl Node {
    fn sticky_failover(&self) -> bool {
        self.cfg.mode == (Mode::Failover { failback: false })
    }

    fn view_members(&self) -> Vec<ViewMember> {
        let me = self.cfg.local_id;
        let my_priority = self.cfg.nodes.iter().find(|n| n.id == me).map_or(0, |n| n.priority);
        let mut ms = Vec::new();
        // A leaving node keeps itself in its view until the peers are ready to take over.
        if self.state == NodeState::Up || self.handoff.is_some() {
            ms.push(ViewMember { id: me, weight: self.weight, priority: my_priority, active: self.owned_count > 0 });
        }
        for p in self.peers.iter().filter(|p| p.is_member()) {
            let h = p.heard.as_ref().expect("members have been heard");
            ms.push(ViewMember { id: p.id, weight: h.weight, priority: p.priority, active: h.active });
        }
        ms.sort_by_key(|m| m.id);
        ms
    }

    /// Runs after every input: deaths, view, lease, acquisition, drains, publication.
    pub(crate) fn update(&mut self, now: Duration) {
        self.expire_peers(now);
        let settled = self.settled();
        if settled != self.advertised_settled {
            // Peers wait for this before trusting our view.
            self.advertised_settled = settled;
            for p in &mut self.peers {
                p.urgent = true;
            }
        }
        if self.handoff.is_some() {
            self.check_handoff(now);
        }
        if self.view_dirty {
            self.view_dirty = false;
            self.recompute_view();
        }
        self.refresh_lease(now);
        if self.sticky_failover() {
            // Our "active" flag is part of the view in sticky failover mode, and any input may
            // have released our buckets (lease, stall, state).
            self.recompute_view();
        }
        if self.try_acquire() && self.sticky_failover() {
            self.recompute_view();
        }
        if self.drain_dirty {
            self.drain_dirty = false;
            let mut d = DrainSet::from_sorted(
                self.drain_since.iter().enumerate().filter(|(_, s)| s.is_some()).map(|(b, _)| b as u32),
            );
            d.coarsen(MAX_RUNS);
            self.drain_set = d;
            for p in &mut self.peers {
                p.urgent = true;
            }
        }
        if self.table_dirty {
            self.table_dirty = false;
            self.publish_if_changed();
        }
        if self.cfg.takeover == Takeover::Majority {
            let until = match self.lease {
                Some(Duration::MAX) => None,
                Some(t) => Some(t),
                None => Some(Duration::ZERO),
            };
            if self.reported_lease != Some(until) {
                self.reported_lease = Some(until);
                self.out.push(Action::Lease { until });
            }
        }
        if self.leaving && self.owned_count == 0 && self.handoff.is_none() {
            self.leaving = false;
            info!("membership: left the farm");
            self.out.push(Action::Event(Event::Left));
        }
    }

    /// The view (members bitmap) and its digest for these members.
    fn view_of(&self, ms: &[ViewMember]) -> (u64, u64) {
        let sticky = self.sticky_failover();
        let mut bits = 0u64;
        let mut digest = self.config_digest;
        for m in ms {
            bits |= 1 << m.id;
            let active = u64::from(sticky && m.active);
            digest = mix(digest, u64::from(m.id) | u64::from(m.weight) << 8 | active << 24);
        }
        (bits, digest)
    }

    /// A leaving node that still owns its buckets: it releases them (by leaving its own view)
    /// once every live peer reports the view without it and is settled, i.e. has dropped this
    /// node and waits only for this node's heartbeat to acquire; or after `dead_after` (a peer
    /// that never agrees must not hold the node forever; the gap is then the usual handshake).
    fn check_handoff(&mut self, now: Duration) {
        let Some(since) = self.handoff else { return };
        let me = self.cfg.local_id;
        let others: Vec<ViewMember> = self.view_members().into_iter().filter(|m| m.id != me).collect();
        let (bits, digest) = self.view_of(&others);
        let ready = self.peers.iter().all(|p| match p.liveness {
            Liveness::Alive => p.heard.as_ref().is_some_and(|h| h.settled && h.view == bits && h.view_digest == digest),
            Liveness::Dead | Liveness::Unknown => true,
        });
        let timed_out = now >= since + self.cfg.dead_after;
        // A peer that may have declared this node dead (it came back during the hand-over, or
        // its newest acknowledgement of this node is almost `dead_after` old) may own these
        // buckets already, or soon: release at once, as a node fences itself.
        let margin = self.cfg.pulse * 2;
        let stale = self.peers.iter().filter(|p| p.liveness == Liveness::Alive).any(|p| {
            let acked = p.heard.as_ref().and_then(|h| h.ack).filter(|a| a.incarnation == self.incarnation);
            acked.and_then(|a| self.sent_time(a.sequence)).is_none_or(|t| now + margin >= t + self.cfg.dead_after)
        });
        if self.handoff_at_risk || stale {
            warn!(buckets = self.owned_count, "membership: a peer may have taken this node's buckets while it could not hear it: releasing at once");
            self.out.push(Action::Event(Event::HandedOver { buckets: self.owned_count, waited: now.saturating_sub(since), peers_ready: false }));
            self.handoff = None;
            self.handoff_at_risk = false;
            self.view_dirty = true;
            return;
        }
        if !ready && !timed_out {
            return;
        }
        let waited = now.saturating_sub(since);
        if ready {
            info!(buckets = self.owned_count, waited_ms = waited.as_millis() as u64, "membership: peers ready, handing the buckets over");
        } else {
            warn!(
                buckets = self.owned_count,
                "membership: peers did not all report the view without this node within dead_after: releasing anyway"
            );
        }
        self.out.push(Action::Event(Event::HandedOver { buckets: self.owned_count, waited, peers_ready: ready }));
        self.handoff = None;
        self.view_dirty = true;
    }

    /// Recomputes the view; on a change, releases what this node should no longer own and
    /// starts a new epoch.
    pub(crate) fn recompute_view(&mut self) {
        let ms = self.view_members();
        let (bits, digest) = self.view_of(&ms);
        if bits == self.view && digest == self.view_digest {
            return;
        }
        info!(view = format_args!("{bits:#x}"), "membership: view changed");
        self.view = bits;
        self.view_digest = digest;
        self.new_epoch();
        self.out.push(Action::Event(Event::ViewChanged { view: bits }));
        match self.cfg.mode {
            Mode::Farm => {
                let members: Vec<Member> = ms.iter().map(|m| Member { id: m.id, weight: m.weight }).collect();
                assign::assign(self.cfg.hash_seed, &members, &mut self.desired);
            }
            Mode::Failover { failback } => {
                let cands: Vec<Candidate> = ms
                    .iter()
                    .filter(|m| m.weight > 0)
                    .map(|m| Candidate { id: m.id, priority: m.priority, active: m.active })
                    .collect();
                self.desired.fill(assign::failover_owner(&cands, failback));
            }
        }
        let me = self.cfg.local_id;
        let mut released = 0;
        for b in 0..self.owned.len() {
            if self.owned[b] && self.desired[b] != me {
                self.release(b, self.last_input);
                released += 1;
            }
        }
        if released > 0 {
            self.out.push(Action::Event(Event::Released { buckets: released }));
        }
        self.table_dirty = true;
    }

    /// Under the majority policy, refresh the lease and fence on expiry.
    fn refresh_lease(&mut self, now: Duration) {
        if self.cfg.takeover != Takeover::Majority {
            return;
        }
        self.lease = self.compute_lease();
        let valid = self.lease.is_some_and(|l| now < l);
        if !valid && self.owned_count > 0 {
            warn!("membership: lease expired (no quorum), releasing");
            self.release_all(now);
            self.new_epoch();
            self.out.push(Action::Event(Event::LeaseExpired));
        }
    }

    fn lease_valid(&self) -> bool {
        match self.cfg.takeover {
            Takeover::Always => true,
            Takeover::Majority => self.lease.is_some_and(|l| self.last_input < l),
        }
    }

    /// Takes every bucket assigned to this node if the handshake allows. Returns true if any.
    fn try_acquire(&mut self) -> bool {
        if !self.want_acquire || self.state != NodeState::Up || !self.lease_valid() || !self.handshake_ok() {
            return false;
        }
        self.want_acquire = false;
        let me = self.cfg.local_id;
        let mut n = 0;
        for b in 0..self.owned.len() {
            if self.desired[b] == me && !self.owned[b] {
                self.owned[b] = true;
                self.owned_count += 1;
                if self.drain_since[b].take().is_some() {
                    self.draining_count -= 1;
                    self.drain_dirty = true;
                }
                n += 1;
            }
        }
        if n > 0 {
            debug!(buckets = n, "membership: acquired");
            self.out.push(Action::Event(Event::Acquired { buckets: n }));
            self.table_dirty = true;
        }
        n > 0
    }

    fn release(&mut self, b: usize, now: Duration) {
        self.owned[b] = false;
        self.owned_count -= 1;
        if self.drain_since[b].is_none() {
            self.drain_since[b] = Some(now);
            self.draining_count += 1;
            self.drain_dirty = true;
            if let Some(t) = self.cfg.drain_timeout {
                let d = now + t;
                self.next_drain_deadline = Some(self.next_drain_deadline.map_or(d, |x| x.min(d)));
            }
        }
        self.table_dirty = true;
        self.want_acquire = true;
    }

    /// Releases every owned bucket (they drain); a hand-over in progress ends (fencing: the
    /// node leaves its view at once).
    pub(crate) fn release_all(&mut self, now: Duration) {
        if self.handoff.take().is_some() {
            self.view_dirty = true;
        }
        let mut n = 0;
        for b in 0..self.owned.len() {
            if self.owned[b] {
                self.release(b, now);
                n += 1;
            }
        }
        if n > 0 {
            self.out.push(Action::Event(Event::Released { buckets: n }));
        }
    }

    /// Ends the drains whose bucket has no flow left (from one pulse after the release, so
    /// that the data plane has applied the release before its count is trusted). No deadline,
    /// unless the safety valve [`Config::drain_timeout`] is set: then drains older than it end
    /// too, flows or not (logged and counted).
    pub(crate) fn update_drains(&mut self, now: Duration) {
        self.last_drain_scan = Some(now);
        if self.draining_count == 0 {
            self.next_drain_deadline = None;
            return;
        }
        let mut next: Option<Duration> = None;
        let (mut expired, mut expired_flows) = (0u32, 0u64);
        for b in 0..self.drain_since.len() {
            let Some(since) = self.drain_since[b] else { continue };
            let flows = self.flows.as_ref().and_then(|f| f.get(b).copied());
            let no_flows = now >= since + self.cfg.pulse && flows == Some(0);
            let deadline = self.cfg.drain_timeout.map(|t| since + t);
            let valve = deadline.is_some_and(|d| now >= d);
            if no_flows || valve {
                if !no_flows {
                    expired += 1;
                    expired_flows += u64::from(flows.unwrap_or(0));
                }
                self.drain_since[b] = None;
                self.draining_count -= 1;
                self.drain_dirty = true;
                self.table_dirty = true;
            } else if let Some(d) = deadline {
                next = Some(next.map_or(d, |x: Duration| x.min(d)));
            }
        }
        self.next_drain_deadline = next;
        if expired > 0 {
            self.drains_expired += u64::from(expired);
            warn!(
                buckets = expired,
                flows = expired_flows,
                "membership: drain_timeout passed: giving up the flows still held in these buckets (their owners will reset them)"
            );
            self.out.push(Action::Event(Event::DrainExpired { buckets: expired, flows: expired_flows }));
        }
    }

    /// The table this node publishes, from its ownership, its drains and its peers' drains.
    pub(crate) fn compute_entries(&self) -> Vec<BucketEntry> {
        let me = self.cfg.local_id;
        let n = self.owned.len();
        // Lowest-id live peer that still drains each bucket.
        let mut drainer = vec![NO_NODE; n];
        for p in self.peers.iter().filter(|p| p.liveness == super::Liveness::Alive) {
            if let Some(h) = &p.heard {
                for b in h.drain.buckets().take_while(|&b| (b as usize) < n) {
                    if drainer[b as usize] == NO_NODE {
                        drainer[b as usize] = p.id;
                    }
                }
            }
        }
        (0..n)
            .map(|b| {
                if self.owned[b] {
                    BucketEntry { owner: me, prev_owner: drainer[b] }
                } else {
                    let owner = if self.desired[b] == me { NO_NODE } else { self.desired[b] };
                    let prev_owner = if self.drain_since[b].is_some() { me } else { drainer[b] };
                    BucketEntry { owner, prev_owner }
                }
            })
            .collect()
    }

    fn publish_if_changed(&mut self) {
        let entries = self.compute_entries();
        if entries != self.published || self.view != self.published_live || self.generation == 0 {
            self.generation += 1;
            self.published.clone_from(&entries);
            self.published_live = self.view;
            self.out.push(Action::Publish { entries, live: self.view });
        }
    }
}
