//! The simulated cluster: virtual time, an event queue, a lossy network, node processes that
//! crash, restart and pause, data planes that keep the last published table, and the
//! invariant checks run after every step that can break them.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use farm_control::membership::{Action, Config, Event, Liveness, Mode, Node, Takeover};
use farm_control::proto::{Heartbeat, NodeState, Reject};
use farm_table::BucketEntry;

use super::rng::Rng;

#[path = "checks.rs"]
mod checks;

pub const SECRET: &[u8] = b"simulation-secret-0123456789";

/// Whether a data-plane lease is valid at `now` (`None`: unlimited).
fn lease_valid(lease: Option<Duration>, now: Duration) -> bool {
    match lease {
        None => true,
        Some(l) => now < l,
    }
}
pub const MS: Duration = Duration::from_millis(1);

#[derive(Clone, Debug)]
pub struct Params {
    pub n: usize,
    pub lans: usize,
    pub n_buckets: u32,
    pub takeover: Takeover,
    pub witness: bool,
    pub mode: Mode,
    pub pulse: Duration,
    pub dead_after: Duration,
    /// The drain safety valve (`None`: drains last as long as the flows).
    pub drain_timeout: Option<Duration>,
    /// Datagrams go through `Codec::encode` / `Node::on_datagram` (slower: HMAC).
    pub use_codec: bool,
    /// Model client connections and check I2.
    pub check_i2: bool,
    /// New connections per second (all buckets).
    pub syn_rate: f64,
    /// Share of the new connections that never end (long-lived keep-alive clients).
    pub long_flow_share: f64,
    /// The data plane honours `Action::Lease` (else only the published tables count: farmd
    /// must publish the release itself when its lease runs out).
    pub enforce_lease: bool,
}

impl Params {
    pub fn new(n: usize) -> Params {
        Params {
            n,
            lans: 1,
            n_buckets: 256,
            takeover: Takeover::Always,
            witness: false,
            mode: Mode::Farm,
            pulse: Duration::from_millis(100),
            dead_after: Duration::from_secs(1),
            drain_timeout: None,
            use_codec: false,
            check_i2: false,
            syn_rate: 40.0,
            long_flow_share: 0.0,
            enforce_lease: true,
        }
    }

    pub fn config(&self, id: u8) -> Config {
        let ids: Vec<u8> = (0..self.n as u8).collect();
        let mut c = Config::new(9, 0xfa12_5eed, self.n_buckets, id, &ids);
        c.takeover = self.takeover;
        c.witness = self.witness;
        c.mode = self.mode;
        c.pulse = self.pulse;
        c.dead_after = self.dead_after;
        c.drain_timeout = self.drain_timeout;
        c
    }
}

/// Network behaviour, changeable during a run.
#[derive(Clone, Debug)]
pub struct NetParams {
    /// Per datagram copy (each LAN independently).
    pub loss: f64,
    pub dup: f64,
    pub delay_min: Duration,
    pub delay_max: Duration,
    /// Probability of an extra delay up to `slow_max` (reordering).
    pub slow: f64,
    pub slow_max: Duration,
}

impl NetParams {
    pub fn clean() -> NetParams {
        NetParams {
            loss: 0.0,
            dup: 0.0,
            delay_min: Duration::from_micros(100),
            delay_max: Duration::from_millis(2),
            slow: 0.0,
            slow_max: Duration::ZERO,
        }
    }

    pub fn messy(loss: f64) -> NetParams {
        NetParams { loss, dup: 0.05, slow: 0.05, slow_max: Duration::from_millis(150), ..NetParams::clean() }
    }
}

enum Kind {
    Deliver { to: usize, hb: Heartbeat, sent_at: Duration },
    Timer { node: usize, gen: u64 },
    Syn,
}

struct Ev {
    t: Duration,
    seq: u64,
    kind: Kind,
}

impl PartialEq for Ev {
    fn eq(&self, o: &Ev) -> bool {
        (self.t, self.seq) == (o.t, o.seq)
    }
}
impl Eq for Ev {}
impl PartialOrd for Ev {
    fn partial_cmp(&self, o: &Ev) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Ev {
    fn cmp(&self, o: &Ev) -> std::cmp::Ordering {
        (self.t, self.seq).cmp(&(o.t, o.seq))
    }
}

pub struct Host {
    pub node: Option<Node>,
    pub paused: bool,
    queued: Vec<(Heartbeat, Duration)>,
    /// What the data plane applies: the last published table (empty: nothing owned).
    pub table: Vec<BucketEntry>,
    /// Majority: the data plane's lease; `None` = unlimited.
    pub lease: Option<Duration>,
    pub starts: u64,
    timer_gen: u64,
    /// Flows this node holds, per bucket.
    pub flows: Vec<u32>,
    /// Whether the simulated lifecycle wants this node UP.
    pub want_up: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct Flow {
    pub bucket: u32,
    pub holder: usize,
    /// `Duration::MAX`: never ends.
    pub end: Duration,
}

#[derive(Debug, Default)]
pub struct Stats {
    /// (time, observer, dead peer).
    pub deaths: Vec<(Duration, usize, u8)>,
    /// For each death of a running peer: heartbeats lost in a row on that link before it.
    pub death_loss_streaks: Vec<u32>,
    pub publishes: u64,
    pub delivered: u64,
    pub i1_checks: u64,
    pub flows: u64,
    pub syn_dropped: u64,
    pub stalls: u64,
    /// Longest time a bucket released by a live node stayed unowned before its new owner
    /// took it.
    pub max_handover_gap: Duration,
    /// (time, observer, peer) of every `PeerAlive` event.
    pub alive_events: Vec<(Duration, usize, u8)>,
}

pub struct Sim {
    pub seed: u64,
    pub now: Duration,
    pub p: Params,
    pub net: NetParams,
    pub rng: Rng,
    queue: BinaryHeap<Reverse<Ev>>,
    seq: u64,
    pub hosts: Vec<Host>,
    /// cut[a][b]: a -> b blocked on every LAN.
    cut: Vec<Vec<bool>>,
    /// Always policy: pairs that were disrupted and have not heard each other since.
    exempt: Vec<Vec<bool>>,
    broken: Vec<Vec<bool>>,
    healed_at: Vec<Vec<Duration>>,
    contact: Vec<Vec<bool>>,
    pub flows: Vec<Flow>,
    pub stats: Stats,
    /// Witness arbiter: (holder, last renewal) and who cannot reach it.
    witness: Option<(usize, Duration)>,
    pub witness_cut: Vec<bool>,
    log: VecDeque<String>,
    /// Buckets released by a live node and not yet taken: since when.
    unowned_since: Vec<Option<Duration>>,
    /// Heartbeats from a to b whose every copy was lost since b last accepted one from a.
    pub loss_streak: Vec<Vec<u32>>,
    /// `FARM_SIM_TRACE_PAIR=a,b`: log every datagram between a and b.
    trace_pair: Option<(usize, usize)>,
    /// An eavesdropper: every heartbeat sent from `.0` to `.1` is also appended to `recorded`.
    pub tap: Option<(usize, usize)>,
    pub recorded: Vec<Heartbeat>,
}

impl Sim {
    pub fn new(seed: u64, p: Params, net: NetParams) -> Sim {
        let n = p.n;
        let hosts = (0..n)
            .map(|_| Host {
                node: None,
                paused: false,
                queued: Vec::new(),
                table: Vec::new(),
                lease: None,
                starts: 0,
                timer_gen: 0,
                flows: vec![0; p.n_buckets as usize],
                want_up: false,
            })
            .collect();
        let mut sim = Sim {
            seed,
            now: Duration::ZERO,
            net,
            rng: Rng::new(seed),
            queue: BinaryHeap::new(),
            seq: 0,
            hosts,
            cut: vec![vec![false; n]; n],
            exempt: vec![vec![false; n]; n],
            broken: vec![vec![false; n]; n],
            healed_at: vec![vec![Duration::ZERO; n]; n],
            contact: vec![vec![false; n]; n],
            flows: Vec::new(),
            stats: Stats::default(),
            witness: None,
            witness_cut: vec![false; n],
            log: VecDeque::new(),
            loss_streak: vec![vec![0; n]; n],
            unowned_since: vec![None; p.n_buckets as usize],
            trace_pair: std::env::var("FARM_SIM_TRACE_PAIR").ok().and_then(|v| {
                let (a, b) = v.split_once(',')?;
                Some((a.parse().ok()?, b.parse().ok()?))
            }),
            tap: None,
            recorded: Vec::new(),
            p,
        };
        if sim.p.check_i2 {
            sim.push(Duration::ZERO, Kind::Syn);
        }
        sim
    }

    fn push(&mut self, t: Duration, kind: Kind) {
        self.seq += 1;
        self.queue.push(Reverse(Ev { t, seq: self.seq, kind }));
    }

    pub fn set_loss(&mut self, loss: f64) {
        self.net.loss = loss;
        self.note(format!("loss {loss:.2}"));
    }

    pub fn note(&mut self, s: String) {
        let cap = if self.trace_pair.is_some() { 100_000 } else { 400 };
        if self.log.len() >= cap {
            self.log.pop_front();
        }
        self.log.push_back(format!("{:>9.3} {s}", self.now.as_secs_f64()));
    }

    /// The recent event log (for debugging a seed).
    pub fn dump(&self) -> String {
        self.log.iter().map(String::as_str).collect::<Vec<_>>().join("\n")
    }

    pub fn fail(&self, what: &str) -> ! {
        let tail: Vec<&String> = self.log.iter().collect();
        panic!("seed {:#x} at {:?}: {what}\nrecent events:\n{}", self.seed, self.now, tail.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n"));
    }

    // ---- scripted faults and lifecycle ----

    /// Starts (or restarts, after a crash) node `i` with a new incarnation.
    pub fn start(&mut self, i: usize) {
        assert!(self.hosts[i].node.is_none());
        let h = &mut self.hosts[i];
        h.starts += 1;
        let incarnation = (self.now.as_nanos() as u64) << 8 | h.starts;
        let node = Node::new(self.p.config(i as u8), SECRET, incarnation, self.now).expect("valid config");
        h.node = Some(node);
        h.table.clear();
        h.lease = None;
        h.paused = false;
        h.queued.clear();
        self.note(format!("start n{i} inc {incarnation:#x}"));
        self.step_node(i, |_, _| {});
    }

    pub fn crash(&mut self, i: usize) {
        let h = &mut self.hosts[i];
        if h.node.take().is_some() {
            h.table.clear();
            h.paused = false;
            h.queued.clear();
            h.flows.iter_mut().for_each(|f| *f = 0);
            self.flows.retain(|f| f.holder != i);
            self.note(format!("crash n{i}"));
            self.refresh_broken();
        }
    }

    pub fn alive(&self, i: usize) -> bool {
        self.hosts[i].node.is_some()
    }

    pub fn set_up(&mut self, i: usize, up: bool) {
        self.hosts[i].want_up = up;
        if self.hosts[i].node.is_some() && !self.hosts[i].paused {
            let s = if up { NodeState::Up } else { NodeState::Wait };
            self.note(format!("n{i} -> {s}"));
            self.step_node(i, |n, now| n.set_state(now, s));
        }
    }

    pub fn set_weight(&mut self, i: usize, w: u16) {
        if self.hosts[i].node.is_some() && !self.hosts[i].paused {
            self.note(format!("n{i} weight {w}"));
            self.step_node(i, |n, now| n.set_weight(now, w));
        }
    }

    pub fn pause(&mut self, i: usize) {
        if self.hosts[i].node.is_some() && !self.hosts[i].paused {
            self.hosts[i].paused = true;
            self.note(format!("pause n{i}"));
            self.refresh_broken();
        }
    }

    pub fn resume(&mut self, i: usize) {
        if self.hosts[i].paused {
            self.hosts[i].paused = false;
            self.note(format!("resume n{i}"));
            self.refresh_broken();
            let queued = std::mem::take(&mut self.hosts[i].queued);
            for (hb, sent_at) in queued {
                self.deliver(i, hb, sent_at);
            }
            self.step_node(i, |_, _| {});
        }
    }

    pub fn is_paused(&self, i: usize) -> bool {
        self.hosts[i].paused
    }

    /// Blocks (or unblocks) a -> b.
    pub fn set_cut(&mut self, a: usize, b: usize, blocked: bool) {
        if self.cut[a][b] != blocked {
            self.cut[a][b] = blocked;
            self.note(format!("{} n{a} -> n{b}", if blocked { "cut" } else { "uncut" }));
            self.refresh_broken();
        }
    }

    /// Splits the nodes into two sides (both directions cut).
    pub fn partition(&mut self, side_a: u64) {
        for a in 0..self.p.n {
            for b in 0..self.p.n {
                if a != b && ((side_a >> a) & 1) != ((side_a >> b) & 1) {
                    self.set_cut(a, b, true);
                }
            }
        }
    }

    pub fn heal(&mut self) {
        for a in 0..self.p.n {
            for b in 0..self.p.n {
                self.set_cut(a, b, false);
            }
        }
    }

    /// Exemption bookkeeping: a pair is broken while either direction is cut or either node
    /// is paused; after that ends, it stays exempt from I1 (Always policy) until each node has
    /// accepted a heartbeat the other sent after the healing.
    fn refresh_broken(&mut self) {
        let n = self.p.n;
        for a in 0..n {
            for b in 0..n {
                if a == b {
                    continue;
                }
                let br = self.cut[a][b] || self.cut[b][a] || self.hosts[a].paused || self.hosts[b].paused;
                if br && !self.broken[a][b] {
                    self.exempt[a][b] = true;
                } else if !br && self.broken[a][b] {
                    self.healed_at[a][b] = self.now;
                    self.contact[a][b] = false;
                }
                self.broken[a][b] = br;
            }
        }
    }

    // ---- running ----

    pub fn run_until(&mut self, until: Duration) {
        while let Some(Reverse(ev)) = self.queue.peek() {
            if ev.t > until {
                break;
            }
            let Reverse(ev) = self.queue.pop().expect("peeked");
            self.now = ev.t;
            match ev.kind {
                Kind::Deliver { to, hb, sent_at } => self.deliver(to, hb, sent_at),
                Kind::Timer { node, gen } => {
                    if self.hosts[node].timer_gen == gen && self.hosts[node].node.is_some() && !self.hosts[node].paused {
                        self.step_node(node, |_, _| {});
                    }
                }
                Kind::Syn => self.syn(),
            }
        }
        self.now = until;
    }

    /// Runs in steps of `step` until `pred` holds or `deadline` passes; returns the time it
    /// first held.
    pub fn run_until_pred(&mut self, deadline: Duration, step: Duration, mut pred: impl FnMut(&Sim) -> bool) -> Option<Duration> {
        loop {
            if pred(self) {
                return Some(self.now);
            }
            if self.now >= deadline {
                return None;
            }
            let t = (self.now + step).min(deadline);
            self.run_until(t);
        }
    }

    fn deliver(&mut self, to: usize, hb: Heartbeat, sent_at: Duration) {
        let h = &mut self.hosts[to];
        if h.node.is_none() {
            return;
        }
        if h.paused {
            h.queued.push((hb, sent_at));
            return;
        }
        self.stats.delivered += 1;
        if self.traced(usize::from(hb.sender), to) {
            let line = format!("deliver n{}->n{to} seq {} view {:#x} ack {:?}", hb.sender, hb.sequence, hb.view, hb.ack.map(|a| a.sequence));
            self.note(line);
        }
        let use_codec = self.p.use_codec;
        let mut accepted = false;
        let from = usize::from(hb.sender);
        self.step_node(to, |n, now| {
            accepted = if use_codec {
                let bytes = n.codec().encode(&hb).expect("encodable");
                n.on_datagram(now, &bytes).is_ok()
            } else {
                n.on_heartbeat(now, &hb).is_ok()
            };
        });
        if accepted {
            self.loss_streak[from][to] = 0;
        }
        // Contact after a disruption: a heartbeat sent after the healing that reflects the
        // sender's current state and weight (the reconciliation of the partition's double
        // ownership compares the two nodes with the inputs each has about the other).
        let current = self.hosts[from].node.as_ref().is_some_and(|n| n.state() == hb.state && n.weight() == hb.weight);
        if accepted && current && from < self.p.n && sent_at >= self.healed_at[to][from] && !self.broken[to][from] {
            self.contact[to][from] = true;
            if self.exempt[to][from] && self.contact[from][to] {
                self.exempt[to][from] = false;
                self.exempt[from][to] = false;
                self.check_i1();
            }
        }
    }

    /// Runs `f` on node `i`, then its tick, then applies the actions and re-arms its timer.
    fn step_node(&mut self, i: usize, f: impl FnOnce(&mut Node, Duration)) {
        let now = self.now;
        let witness = self.witness_vote(i);
        let Some(node) = self.hosts[i].node.as_mut() else { return };
        f(node, now);
        if let Some(g) = witness {
            node.set_witness(now, g.then_some(now));
        }
        // The data plane's report (all zeros when flows are not modelled): drains have no
        // deadline, they end when the node holds no flow in the bucket.
        let flows = std::mem::take(&mut self.hosts[i].flows);
        let node = self.hosts[i].node.as_mut().expect("alive");
        node.set_flows(now, &flows);
        self.hosts[i].flows = flows;
        let node = self.hosts[i].node.as_mut().expect("alive");
        let actions = node.tick(now);
        let next = node.next_deadline().max(now + Duration::from_micros(1));
        self.apply(i, actions);
        let jitter = Duration::from_micros(self.rng.below(1500));
        let h = &mut self.hosts[i];
        h.timer_gen += 1;
        let gen = h.timer_gen;
        self.push(next + jitter, Kind::Timer { node: i, gen });
    }

    /// An attacker's datagram: `hb` encoded with the shared secret (a recorded heartbeat
    /// replayed as is) and received by node `to` now. Returns what the node made of it (`None`:
    /// node `to` is not running).
    pub fn inject(&mut self, to: usize, hb: &Heartbeat) -> Option<Result<(), Reject>> {
        if self.hosts[to].node.is_none() || self.hosts[to].paused {
            return None;
        }
        self.note(format!("inject n{}->n{to} inc {:#x} seq {}", hb.sender, hb.incarnation, hb.sequence));
        let mut r = None;
        self.step_node(to, |n, now| {
            let bytes = n.codec().encode(hb).expect("encodable");
            r = Some(n.on_datagram(now, &bytes));
        });
        r
    }

    /// How node `observer` sees node `peer` (`None`: `observer` is not running).
    pub fn liveness(&self, observer: usize, peer: usize) -> Option<Liveness> {
        let n = self.hosts[observer].node.as_ref()?;
        n.peers().into_iter().find(|p| usize::from(p.id) == peer).map(|p| p.liveness)
    }

    fn witness_vote(&mut self, i: usize) -> Option<bool> {
        if !self.p.witness {
            return None;
        }
        if self.witness_cut[i] {
            return Some(false);
        }
        let expired = |(_, t): (usize, Duration)| t + self.p.dead_after + self.p.pulse < self.now;
        match self.witness {
            Some((holder, _)) if holder == i => {
                self.witness = Some((i, self.now));
                Some(true)
            }
            Some(w) if !expired(w) => Some(false),
            _ => {
                self.witness = Some((i, self.now));
                self.note(format!("witness vote -> n{i}"));
                Some(true)
            }
        }
    }

    fn apply(&mut self, i: usize, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send(hb) => self.send(i, hb),
                Action::Publish { entries, .. } => {
                    self.stats.publishes += 1;
                    let before: Vec<bool> = (0..self.p.n_buckets as usize).map(|b| self.claims(i, b)).collect();
                    self.hosts[i].table = entries;
                    self.track_gaps(i, &before);
                    self.check_i1();
                    if self.p.check_i2 {
                        self.check_i2();
                    }
                }
                Action::Lease { until } => {
                    // Only a lease going from expired to valid (or back) changes what the data
                    // plane accepts at this instant; a renewal of a valid lease does not.
                    let (was, is) = (lease_valid(self.hosts[i].lease, self.now), lease_valid(until, self.now));
                    if was == is || !self.p.enforce_lease {
                        self.hosts[i].lease = until;
                    } else {
                        let before: Vec<bool> = (0..self.p.n_buckets as usize).map(|b| self.claims(i, b)).collect();
                        self.hosts[i].lease = until;
                        self.track_gaps(i, &before);
                        self.check_i1();
                    }
                }
                Action::Event(e) => {
                    match &e {
                        Event::PeerDead { id } => {
                            self.stats.deaths.push((self.now, i, *id));
                            let j = usize::from(*id);
                            if j < self.p.n && self.hosts[j].node.is_some() {
                                let streak = self.loss_streak[j][i];
                                self.stats.death_loss_streaks.push(streak);
                                // A false death (loss): the pair cannot hear each other, like a
                                // partition, until fresh heartbeats cross both ways.
                                self.exempt[i][j] = true;
                                self.exempt[j][i] = true;
                                self.healed_at[i][j] = self.now;
                                self.healed_at[j][i] = self.now;
                                self.contact[i][j] = false;
                                self.contact[j][i] = false;
                            }
                        }
                        Event::Stalled { .. } => self.stats.stalls += 1,
                        Event::PeerAlive { id, .. } => self.stats.alive_events.push((self.now, i, *id)),
                        _ => {}
                    }
                    self.note(format!("n{i}: {e:?}"));
                }
            }
        }
    }

    fn traced(&self, a: usize, b: usize) -> bool {
        self.trace_pair.is_some_and(|(x, y)| (x, y) == (a, b) || (x, y) == (b, a))
    }

    fn send(&mut self, from: usize, hb: Heartbeat) {
        let to = usize::from(hb.dest);
        if self.tap == Some((from, to)) {
            self.recorded.push(hb.clone());
        }
        if to >= self.p.n || self.cut[from][to] {
            return;
        }
        if self.traced(from, to) {
            self.note(format!("send n{from}->n{to} seq {} view {:#x} ack {:?}", hb.sequence, hb.view, hb.ack.map(|a| a.sequence)));
        }
        let mut all_lost = true;
        for _ in 0..self.p.lans {
            if self.rng.chance(self.net.loss) {
                if self.traced(from, to) {
                    self.note(format!("  lost n{from}->n{to} seq {}", hb.sequence));
                }
                continue;
            }
            all_lost = false;
            let copies = if self.rng.chance(self.net.dup) { 2 } else { 1 };
            for _ in 0..copies {
                let mut d = self.rng.dur(self.net.delay_min, self.net.delay_max);
                if self.rng.chance(self.net.slow) {
                    d += self.rng.dur(Duration::ZERO, self.net.slow_max);
                }
                self.push(self.now + d, Kind::Deliver { to, hb: hb.clone(), sent_at: self.now });
            }
        }
        if all_lost {
            self.loss_streak[from][to] += 1;
        }
    }
}
