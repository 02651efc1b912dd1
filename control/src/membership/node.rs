//! The per-node state machine: inputs, timers, outputs.

use std::collections::VecDeque;
use std::time::Duration;

use farm_table::{BucketEntry, NO_NODE};
use tracing::{debug, info, warn};

use super::config::{Config, ConfigError, Takeover};
use super::peer::{Heard, Liveness, Peer, PeerInfo};
use crate::proto::{Ack, Codec, DrainSet, EncodeError, Heartbeat, NodeState, Reject, RejectCounters, ReplayGuard};

/// Never done, or done at least `period` before `now`.
fn due(last: Option<Duration>, now: Duration, period: Duration) -> bool {
    match last {
        None => true,
        Some(t) => now >= t + period,
    }
}

/// What the runtime must do. Returned by [`Node::tick`], in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Encode with [`Node::encode`] and send to node `heartbeat.dest` on every heartbeat LAN.
    Send(Heartbeat),
    /// Publish this table (`TableWriter::publish(entries, live, ..)`): `entries[b]` for every
    /// bucket, `live` the members bitmap.
    Publish {
        /// One entry per bucket.
        entries: Vec<BucketEntry>,
        /// Live UP members (this node's view).
        live: u64,
    },
    /// [`Takeover::Majority`] only: the buckets this node publishes as its own are valid
    /// until `until` (same clock as `now`); after it the data plane must not accept new
    /// connections in them until a later lease arrives. Emitted whenever it changes.
    Lease {
        /// End of validity; `None`: unlimited.
        until: Option<Duration>,
    },
    /// Something worth a log line.
    Event(Event),
}

/// Log-worthy membership events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A peer became alive (first heartbeat, or back after being dead).
    PeerAlive {
        /// Peer.
        id: u8,
        /// Its incarnation.
        incarnation: u64,
    },
    /// A peer restarted (new incarnation) without being declared dead in between.
    PeerRestarted {
        /// Peer.
        id: u8,
        /// Its new incarnation.
        incarnation: u64,
    },
    /// No valid heartbeat from a peer for `dead_after` (or never, at startup).
    PeerDead {
        /// Peer.
        id: u8,
    },
    /// The set of live UP members (or their weights) changed.
    ViewChanged {
        /// New members bitmap.
        view: u64,
    },
    /// This node started accepting new connections in some buckets.
    Acquired {
        /// How many.
        buckets: u32,
    },
    /// This node stopped accepting new connections in some buckets (they drain).
    Released {
        /// How many.
        buckets: u32,
    },
    /// Not called for longer than [`Config::stall_limit`]: this node released everything and
    /// restarts the handshake (peers may have declared it dead meanwhile).
    Stalled {
        /// The gap.
        gap: Duration,
    },
    /// [`Takeover::Majority`]: no quorum acknowledged this node recently; it released
    /// everything.
    LeaseExpired,
    /// A node leaving the farm handed its buckets over: it released them once every live peer
    /// reported the view without it (they take the buckets one triggered heartbeat later).
    HandedOver {
        /// Buckets released.
        buckets: u32,
        /// Since the leave began.
        waited: Duration,
        /// False: the peers did not all report the view without this node within `dead_after`;
        /// released anyway.
        peers_ready: bool,
    },
    /// After a state change away from UP: this node owns no bucket any more (its released
    /// buckets may still drain: its data plane keeps the flows it holds).
    Left,
    /// The drain safety valve ([`Config::drain_timeout`], off by default) ended drains that
    /// still had flows: their packets now go to the bucket owners, whose kernels reset them.
    DrainExpired {
        /// Buckets whose drain was cut short.
        buckets: u32,
        /// Flows this node still held in them (per its data plane's last report).
        flows: u64,
    },
}

/// Errors of [`Node::new`].
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Invalid configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Invalid secret or node id for the codec.
    #[error(transparent)]
    Codec(#[from] EncodeError),
}

/// One node's membership and handover state machine. Pure: no I/O, no clock; every input
/// carries `now` (a monotonic time since any fixed origin).
///
/// Driving it:
/// - every received datagram: [`Node::on_datagram`];
/// - the module state (lifecycle `Join` = [`NodeState::Up`], `Leave` = any other state):
///   [`Node::set_state`]; weight: [`Node::set_weight`]; live flows per bucket from the data
///   plane (optional, ends drains early): [`Node::set_flows`]; witness vote:
///   [`Node::set_witness`];
/// - then [`Node::tick`], and carry out its actions in order; call [`Node::tick`] again at
///   [`Node::next_deadline`] (at the latest).
#[derive(Debug)]
pub struct Node {
    pub(crate) cfg: Config,
    codec: Codec,
    guard: ReplayGuard,
    rejects: RejectCounters,
    pub(crate) incarnation: u64,
    /// Last sequence number used.
    pub(crate) seq: u64,
    pub(crate) state: NodeState,
    pub(crate) weight: u16,
    started_at: Duration,
    /// The latest `now` seen (every input calls `advance(now)` first).
    pub(crate) last_input: Duration,
    /// Configured peers, by increasing id.
    pub(crate) peers: Vec<Peer>,
    peer_index: [u8; 64],
    pub(crate) config_digest: u64,
    // The view and its epoch.
    pub(crate) view: u64,
    pub(crate) view_digest: u64,
    /// First sequence number sent with the current view: peers' acks must reach it.
    pub(crate) epoch_seq: u64,
    pub(crate) view_dirty: bool,
    /// The assignment for the current view.
    pub(crate) desired: Vec<u8>,
    // Ownership.
    pub(crate) owned: Vec<bool>,
    pub(crate) owned_count: u32,
    pub(crate) want_acquire: bool,
    pub(crate) drain_since: Vec<Option<Duration>>,
    pub(crate) draining_count: u32,
    pub(crate) drain_set: DrainSet,
    pub(crate) drain_dirty: bool,
    pub(crate) next_drain_deadline: Option<Duration>,
    /// Last full scan of the drains (at most one per pulse, unless a deadline is due).
    pub(crate) last_drain_scan: Option<Duration>,
    pub(crate) flows: Option<Vec<u32>>,
    /// Drains ended by the safety valve with flows left (buckets, since start).
    pub(crate) drains_expired: u64,
    /// Leaving (state no longer UP) but still owning its buckets, since when: the view keeps
    /// this node until every live peer reports the view without it (graceful hand-over).
    pub(crate) handoff: Option<Duration>,
    /// A peer became alive or restarted during the hand-over: it did not hear this node and
    /// may own its buckets.
    pub(crate) handoff_at_risk: bool,
    // Publication.
    pub(crate) published: Vec<BucketEntry>,
    pub(crate) published_live: u64,
    pub(crate) table_dirty: bool,
    pub(crate) generation: u64,
    pub(crate) lease: Option<Duration>,
    pub(crate) reported_lease: Option<Option<Duration>>,
    /// (sequence, send time) of recent heartbeats, for the lease.
    pub(crate) sent_log: VecDeque<(u64, Duration)>,
    pub(crate) witness_at: Option<Duration>,
    next_pulse: Duration,
    pub(crate) leaving: bool,
    /// [`Node::settled`] as last advertised.
    pub(crate) advertised_settled: bool,
    pub(crate) out: Vec<Action>,
}

impl Node {
    /// A node in state STOP that owns nothing. `incarnation` must grow across restarts of this
    /// node (e.g. the wall-clock start time in ns); `secret` is the cluster's shared secret.
    pub fn new(cfg: Config, secret: &[u8], incarnation: u64, now: Duration) -> Result<Node, NodeError> {
        cfg.validate()?;
        let codec = Codec::new(secret, cfg.cluster_id, cfg.local_id)?;
        let mut peers: Vec<Peer> =
            cfg.nodes.iter().filter(|n| n.id != cfg.local_id).map(|n| Peer::new(n.id, n.priority)).collect();
        peers.sort_by_key(|p| p.id);
        let mut peer_index = [u8::MAX; 64];
        for (i, p) in peers.iter().enumerate() {
            peer_index[usize::from(p.id)] = i as u8;
        }
        let n = cfg.n_buckets as usize;
        let config_digest = super::handover::config_digest(&cfg);
        Ok(Node {
            codec,
            guard: ReplayGuard::new(),
            rejects: RejectCounters::default(),
            incarnation,
            seq: 0,
            state: NodeState::Stop,
            weight: cfg.weight,
            started_at: now,
            last_input: now,
            peers,
            peer_index,
            config_digest,
            view: 0,
            view_digest: 0,
            epoch_seq: 1,
            view_dirty: true,
            desired: vec![NO_NODE; n],
            owned: vec![false; n],
            owned_count: 0,
            want_acquire: false,
            drain_since: vec![None; n],
            draining_count: 0,
            drain_set: DrainSet::new(),
            drain_dirty: false,
            next_drain_deadline: None,
            last_drain_scan: None,
            flows: None,
            drains_expired: 0,
            handoff: None,
            handoff_at_risk: false,
            published: Vec::new(),
            published_live: 0,
            table_dirty: true,
            generation: 0,
            lease: None,
            reported_lease: None,
            sent_log: VecDeque::new(),
            witness_at: None,
            next_pulse: now,
            leaving: false,
            advertised_settled: false,
            out: Vec::new(),
            cfg,
        })
    }

    // ---- inputs ----

    /// A received datagram (from any LAN): verified, then applied. Rejections are counted
    /// ([`Node::rejects`]) and returned for debug logging.
    pub fn on_datagram(&mut self, now: Duration, bytes: &[u8]) -> Result<(), Reject> {
        self.on_datagram_from(now, bytes, |_| true)
    }

    /// [`Node::on_datagram`] with a check of the datagram's source: once the datagram is
    /// authenticated, `source_ok(sender)` tells whether it came from one of the claimed
    /// sender's configured addresses; if not, it is rejected as [`Reject::WrongSource`]
    /// (counted) and changes nothing.
    pub fn on_datagram_from(
        &mut self,
        now: Duration,
        bytes: &[u8],
        source_ok: impl FnOnce(u8) -> bool,
    ) -> Result<(), Reject> {
        let checked = self.codec.decode(bytes).and_then(|hb| {
            if source_ok(hb.sender) {
                Ok(hb)
            } else {
                Err(Reject::WrongSource(hb.sender))
            }
        });
        match checked {
            Ok(hb) => self.on_heartbeat(now, &hb),
            Err(e) => {
                self.advance(now);
                self.rejects.bump(e);
                Err(e)
            }
        }
    }

    /// An already decoded and authenticated heartbeat (what [`Node::on_datagram`] does after
    /// [`Codec::decode`]); checks addressing, configuration, freshness and the echo of this
    /// node's incarnation (invariant I5, [`Reject::NoEcho`]).
    pub fn on_heartbeat(&mut self, now: Duration, hb: &Heartbeat) -> Result<(), Reject> {
        self.advance(now);
        if let Err(e) = self.accept(now, hb) {
            self.rejects.bump(e);
            return Err(e);
        }
        self.update(now);
        Ok(())
    }

    /// The module state (UP joins the farm; any other state leaves it).
    ///
    /// Leaving is a hand-over without a gap: the heartbeats advertise the new state at once,
    /// so the peers drop this node from their views, but this node keeps its buckets (and
    /// its view) until every live peer reports the view without it, or `dead_after` passes.
    /// Then it releases them (they drain) and its triggered heartbeats let the peers acquire
    /// one trip later: new connections find an owner all along, except for that trip.
    /// [`Event::Left`] follows once nothing is owned.
    pub fn set_state(&mut self, now: Duration, state: NodeState) {
        self.advance(now);
        if state == self.state {
            return;
        }
        info!(from = %self.state, to = %state, "membership: local state");
        self.state = state;
        if state == NodeState::Up {
            self.leaving = false;
            if self.handoff.take().is_some() {
                info!("membership: UP again before the hand-over ended: keeping the buckets");
                self.handoff_at_risk = false;
            }
        } else {
            self.leaving = true;
            if self.owned_count > 0 && self.handoff.is_none() {
                info!(buckets = self.owned_count, "membership: leaving: keeping the buckets until the peers are ready to take them");
                self.handoff = Some(now);
                self.handoff_at_risk = false;
            }
        }
        self.view_dirty = true;
        for p in &mut self.peers {
            p.urgent = true;
        }
        self.update(now);
    }

    /// This node's weight (0: owns nothing but stays in the cluster).
    pub fn set_weight(&mut self, now: Duration, weight: u16) {
        self.advance(now);
        if weight != self.weight {
            self.weight = weight;
            self.view_dirty = true;
            self.update(now);
        }
    }

    /// Live flows per bucket, from the data plane: a released bucket drains until it has none
    /// (checked from one pulse after the release, once the data plane applied it). Until the
    /// first call the flows are unknown and released buckets drain (a runtime without a data
    /// plane reports zeros).
    pub fn set_flows(&mut self, now: Duration, flows: &[u32]) {
        self.advance(now);
        match &mut self.flows {
            Some(f) if f.len() == flows.len() => f.copy_from_slice(flows),
            _ => self.flows = Some(flows.to_vec()),
        }
        self.update_drains(now);
        self.update(now);
    }

    /// [`Takeover::Majority`] with a witness: the time at which the witness last vouched for
    /// this node — the moment the newest answered probe was *sent*, not when farmd looked —
    /// or `None` (report every pulse). The vote counts like a peer's acknowledgement of a
    /// heartbeat sent at that time: the lease it grants ends `dead_after - pulse` later, so
    /// it can never outlive the probe by more than a peer's ack would.
    /// Safety needs the witness to grant its vote to one node at a time (an arbiter, not a
    /// mere ping target): two isolated nodes that both reach a ping target would both own.
    pub fn set_witness(&mut self, now: Duration, vote: Option<Duration>) {
        self.advance(now);
        self.witness_at = vote.filter(|&v| v <= now);
        self.update(now);
    }

    /// Timers: peer deaths, drains, lease; heartbeats due. Returns every pending action.
    pub fn tick(&mut self, now: Duration) -> Vec<Action> {
        self.advance(now);
        let scan_due = due(self.last_drain_scan, now, self.cfg.pulse);
        if scan_due || self.next_drain_deadline.is_some_and(|d| now >= d) {
            self.update_drains(now);
        }
        self.update(now);
        while let Some(&(_, t)) = self.sent_log.front() {
            if t + self.cfg.dead_after < now {
                self.sent_log.pop_front();
            } else {
                break;
            }
        }
        if now >= self.next_pulse {
            for p in &mut self.peers {
                p.urgent = true;
            }
            self.next_pulse += self.cfg.pulse;
            if self.next_pulse <= now {
                self.next_pulse = now + self.cfg.pulse;
            }
        }
        for i in 0..self.peers.len() {
            if self.peers[i].urgent {
                self.peers[i].urgent = false;
                let hb = self.heartbeat_for(i, now);
                self.sent_log.push_back((hb.sequence, now));
                self.out.push(Action::Send(hb));
            }
        }
        std::mem::take(&mut self.out)
    }

    /// When [`Node::tick`] must run next (at the latest).
    pub fn next_deadline(&self) -> Duration {
        let mut t = self.next_pulse;
        if !self.out.is_empty() || self.peers.iter().any(|p| p.urgent) {
            t = t.min(self.last_input);
        }
        for p in &self.peers {
            match p.liveness {
                Liveness::Alive => {
                    if let Some(s) = p.last_seen {
                        t = t.min(s + self.cfg.dead_after);
                    }
                }
                Liveness::Unknown => t = t.min(self.started_at + self.cfg.dead_after),
                Liveness::Dead => {}
            }
        }
        if self.owned_count > 0 {
            if let Some(l) = self.lease {
                t = t.min(l);
            }
        }
        if let Some(d) = self.next_drain_deadline {
            t = t.min(d);
        }
        if let Some(h) = self.handoff {
            t = t.min(h + self.cfg.dead_after);
        }
        t
    }

    // ---- queries ----

    /// Encodes a heartbeat from [`Action::Send`] (HMAC included).
    pub fn encode(&self, hb: &Heartbeat) -> Result<Vec<u8>, EncodeError> {
        self.codec.encode(hb)
    }

    /// The codec (for decoding elsewhere, or encoding into a reused buffer).
    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    /// Rejected datagrams by reason.
    pub fn rejects(&self) -> &RejectCounters {
        &self.rejects
    }

    /// This node's id.
    pub fn id(&self) -> u8 {
        self.cfg.local_id
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The local state.
    pub fn state(&self) -> NodeState {
        self.state
    }

    /// This node's weight.
    pub fn weight(&self) -> u16 {
        self.weight
    }

    /// This node's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Current view: live UP members, this node included when UP.
    pub fn view(&self) -> u64 {
        self.view
    }

    /// Buckets this node accepts new connections in.
    pub fn owned_count(&self) -> u32 {
        self.owned_count
    }

    /// True if this node accepts new connections in `bucket`.
    pub fn owns(&self, bucket: u32) -> bool {
        self.owned.get(bucket as usize).copied().unwrap_or(false)
    }

    /// Buckets released but still draining here.
    pub fn draining_count(&self) -> u32 {
        self.draining_count
    }

    /// True while leaving with its buckets kept until the peers are ready to take them
    /// ([`Node::set_state`]).
    pub fn handing_over(&self) -> bool {
        self.handoff.is_some()
    }

    /// Flows this node holds, per the data plane's last report ([`Node::set_flows`]): (flows,
    /// buckets with at least one), whatever the buckets' owners.
    pub fn held_flows(&self) -> (u64, u32) {
        self.flows.as_ref().map_or((0, 0), |f| {
            f.iter().fold((0, 0), |(n, b), &x| (n + u64::from(x), b + u32::from(x > 0)))
        })
    }

    /// Drains the safety valve ([`Config::drain_timeout`]) ended with flows left, in buckets,
    /// since this node started.
    pub fn drains_expired(&self) -> u64 {
        self.drains_expired
    }

    /// The owner of `bucket` in this node's current view (whether or not it took it yet).
    pub fn assigned_owner(&self, bucket: u32) -> u8 {
        self.desired.get(bucket as usize).copied().unwrap_or(NO_NODE)
    }

    /// The table as last published.
    pub fn entries(&self) -> &[BucketEntry] {
        &self.published
    }

    /// Number of tables published so far.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// [`Takeover::Majority`]: the current lease end (`None`: no valid lease). Always `None`
    /// with [`Takeover::Always`] (no lease needed).
    pub fn lease(&self) -> Option<Duration> {
        self.lease
    }

    /// Every configured peer.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.peers.iter().map(Peer::info).collect()
    }

    // ---- internals ----

    /// Stall detection: a gap longer than the stall limit means peers may have declared this
    /// node dead and taken its buckets.
    fn advance(&mut self, now: Duration) {
        if now > self.last_input {
            let gap = now - self.last_input;
            if gap > self.cfg.stall_limit() {
                warn!(gap_ms = gap.as_millis() as u64, "membership: stalled, fencing");
                self.release_all(now);
                for p in &mut self.peers {
                    if p.liveness == Liveness::Alive {
                        p.last_seen = Some(now);
                    }
                }
                self.new_epoch();
                self.out.push(Action::Event(Event::Stalled { gap }));
            }
            self.last_input = now;
        }
    }

    fn accept(&mut self, now: Duration, hb: &Heartbeat) -> Result<(), Reject> {
        if hb.cluster_id != self.cfg.cluster_id {
            return Err(Reject::ForeignCluster(hb.cluster_id));
        }
        if hb.dest != self.cfg.local_id {
            return Err(Reject::WrongDest(hb.dest));
        }
        if hb.sender == self.cfg.local_id {
            return Err(Reject::FromSelf);
        }
        let idx = match self.peer_index.get(usize::from(hb.sender)) {
            Some(&i) if i != u8::MAX => usize::from(i),
            _ => return Err(Reject::UnknownSender(hb.sender)),
        };
        let claimed = self.guard.last(hb.sender).map(|(incarnation, _)| incarnation);
        self.guard.check(hb)?;
        // I5: only a heartbeat that echoes this incarnation proves that its sender lives now.
        // A live sender that has not heard us yet (it or we just started) echoes us once our
        // answer reaches it; a recording made before we started never does. Answer each new
        // incarnation at once (a replayed stream triggers one answer per incarnation in it,
        // sent to the sender's configured addresses).
        let echoes = hb.ack.is_some_and(|a| a.incarnation == self.incarnation);
        if !echoes {
            if claimed != Some(hb.incarnation) {
                debug!(peer = hb.sender, incarnation = hb.incarnation, "membership: heartbeat without our incarnation, answering");
                self.peers[idx].urgent = true;
            }
            return Err(Reject::NoEcho);
        }
        let p = &mut self.peers[idx];
        let new = Heard::from_heartbeat(hb);
        let (inputs_changed, peer_view_changed, drain_changed, restarted) = match &p.heard {
            None => (true, true, !new.drain.is_empty(), false),
            Some(h) => (
                h.incarnation != new.incarnation || h.state != new.state || h.weight != new.weight || h.active != new.active,
                h.view != new.view || h.view_digest != new.view_digest,
                h.drain != new.drain,
                h.incarnation != new.incarnation,
            ),
        };
        p.heard = Some(new);
        p.last_seen = Some(now);
        if (p.liveness != Liveness::Alive || restarted) && self.handoff.is_some() {
            self.handoff_at_risk = true;
        }
        if p.liveness != Liveness::Alive {
            p.liveness = Liveness::Alive;
            p.urgent = true;
            self.view_dirty = true;
            info!(peer = p.id, incarnation = hb.incarnation, "membership: peer alive");
            self.out.push(Action::Event(Event::PeerAlive { id: hb.sender, incarnation: hb.incarnation }));
        } else if restarted {
            info!(peer = p.id, incarnation = hb.incarnation, "membership: peer restarted");
            self.out.push(Action::Event(Event::PeerRestarted { id: hb.sender, incarnation: hb.incarnation }));
        }
        if inputs_changed {
            self.view_dirty = true;
        }
        // A peer that changed its view waits for our acknowledgement: answer at once.
        if inputs_changed || peer_view_changed {
            p.urgent = true;
        }
        if drain_changed || restarted {
            self.table_dirty = true;
        }
        Ok(())
    }

    fn heartbeat_for(&mut self, idx: usize, now: Duration) -> Heartbeat {
        self.seq += 1;
        let p = &self.peers[idx];
        Heartbeat {
            cluster_id: self.cfg.cluster_id,
            sender: self.cfg.local_id,
            dest: p.id,
            incarnation: self.incarnation,
            sequence: self.seq,
            state: self.state,
            weight: self.weight,
            active: self.owned_count > 0,
            settled: self.settled(),
            view: self.view,
            view_digest: self.view_digest,
            generation: self.generation,
            timestamp_ns: u64::try_from(now.as_nanos()).unwrap_or(u64::MAX),
            // The newest authenticated heartbeat from the peer, proof of liveness or not: its
            // incarnation echoed back is what lets the peer count us alive.
            ack: self.guard.last(p.id).map(|(incarnation, sequence)| Ack { incarnation, sequence }),
            drain: self.drain_set.clone(),
        }
    }

    /// Peer deaths (and the end of the startup grace for never-heard peers).
    pub(crate) fn expire_peers(&mut self, now: Duration) {
        for p in &mut self.peers {
            let dead = match p.liveness {
                Liveness::Alive => p.last_seen.is_some_and(|s| now >= s + self.cfg.dead_after),
                Liveness::Unknown => now >= self.started_at + self.cfg.dead_after,
                Liveness::Dead => false,
            };
            if dead {
                if p.liveness == Liveness::Alive {
                    warn!(peer = p.id, "membership: peer dead");
                } else {
                    debug!(peer = p.id, "membership: peer never heard, considered dead");
                }
                p.liveness = Liveness::Dead;
                self.view_dirty = true;
                self.table_dirty = true;
                self.out.push(Action::Event(Event::PeerDead { id: p.id }));
            }
        }
    }

    /// No configured peer is still unknown (never heard, within the startup grace).
    pub(crate) fn settled(&self) -> bool {
        self.peers.iter().all(|p| p.liveness != Liveness::Unknown)
    }

    /// True if every peer that may be alive agrees with this node's view, is settled, and has
    /// acknowledged a heartbeat sent since this view began.
    ///
    /// "Settled" matters across restarts: a peer's previous incarnation may have acknowledged
    /// a node that its new incarnation has not heard yet (promising not to declare it dead
    /// before `dead_after`); until its startup grace is over, its view is no evidence that the
    /// node is gone.
    pub(crate) fn handshake_ok(&self) -> bool {
        self.settled()
            && self.peers.iter().all(|p| match p.liveness {
                Liveness::Unknown => false,
                Liveness::Dead => true,
                Liveness::Alive => p.heard.as_ref().is_some_and(|h| {
                    h.settled
                        && h.view == self.view
                        && h.view_digest == self.view_digest
                        && h.ack.is_some_and(|a| a.incarnation == self.incarnation && a.sequence >= self.epoch_seq)
                }),
            })
    }

    /// Starts a new epoch: peers' earlier acknowledgements no longer count.
    pub(crate) fn new_epoch(&mut self) {
        self.epoch_seq = self.seq + 1;
        self.want_acquire = true;
        for p in &mut self.peers {
            p.urgent = true;
        }
    }

    /// Under [`Takeover::Majority`]: the lease from the acknowledgements of a quorum.
    pub(crate) fn compute_lease(&self) -> Option<Duration> {
        if self.cfg.takeover != Takeover::Majority {
            return None;
        }
        let need = self.cfg.quorum() - 1;
        let mut times: Vec<Duration> = self
            .peers
            .iter()
            .filter(|p| p.liveness == Liveness::Alive)
            .filter_map(|p| p.heard.as_ref()?.ack)
            .filter(|a| a.incarnation == self.incarnation)
            .filter_map(|a| self.sent_time(a.sequence))
            .collect();
        if self.cfg.witness {
            times.extend(self.witness_at);
        }
        if need == 0 {
            return Some(Duration::MAX);
        }
        if times.len() < need {
            return None;
        }
        times.sort_unstable_by(|a, b| b.cmp(a));
        Some(times[need - 1] + self.cfg.dead_after - self.cfg.lease_guard())
    }

    pub(crate) fn sent_time(&self, seq: u64) -> Option<Duration> {
        let i = self.sent_log.partition_point(|&(s, _)| s < seq);
        self.sent_log.get(i).filter(|&&(s, _)| s == seq).map(|&(_, t)| t)
    }
}
