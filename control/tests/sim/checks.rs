//! Invariant checks and convergence of the simulated cluster (part of `world`).

use std::time::Duration;

use farm_control::assign::{self, Candidate, Member};
use farm_control::membership::{Mode, Node, Takeover};
use farm_control::proto::NodeState;
use farm_table::{BucketEntry, NO_NODE};

use super::{lease_valid, Flow, Kind, Sim};

impl Sim {
    // ---- invariants ----

    /// Handover gaps: a bucket node `i` stopped accepting with nobody else accepting it starts
    /// a gap; the next node to accept it ends the gap.
    pub(super) fn track_gaps(&mut self, i: usize, before: &[bool]) {
        for (b, &was) in before.iter().enumerate() {
            let now_claims = self.claims(i, b);
            if was && !now_claims {
                if !(0..self.p.n).any(|j| self.claims(j, b)) && self.unowned_since[b].is_none() {
                    self.unowned_since[b] = Some(self.now);
                }
            } else if !was && now_claims {
                if let Some(t) = self.unowned_since[b].take() {
                    self.stats.max_handover_gap = self.stats.max_handover_gap.max(self.now - t);
                }
            }
        }
    }

    /// Forgets open gaps (after faults that legitimately leave buckets orphaned for longer).
    pub fn reset_gaps(&mut self) {
        self.unowned_since.iter_mut().for_each(|g| *g = None);
    }

    /// Whether node `i`'s data plane accepts new connections in `b` now.
    pub fn claims(&self, i: usize, b: usize) -> bool {
        let h = &self.hosts[i];
        let leased = !self.p.enforce_lease || lease_valid(h.lease, self.now);
        h.node.is_some() && h.table.get(b).is_some_and(|e| e.owner == i as u8) && leased
    }

    /// Per node: whether its data plane accepts anything at all now (alive, lease valid).
    pub(super) fn accepting(&self) -> Vec<bool> {
        self.hosts
            .iter()
            .map(|h| h.node.is_some() && (!self.p.enforce_lease || lease_valid(h.lease, self.now)))
            .collect()
    }

    /// I1: at most one node accepts new connections in a bucket (with `Always`, only among
    /// nodes that can hear each other).
    pub fn check_i1(&mut self) {
        self.stats.i1_checks += 1;
        let global = self.p.takeover == Takeover::Majority;
        let ok = self.accepting();
        for b in 0..self.p.n_buckets as usize {
            let mut first: Option<usize> = None;
            for (i, &ok_i) in ok.iter().enumerate() {
                if !(ok_i && self.hosts[i].table.get(b).is_some_and(|e| e.owner == i as u8)) {
                    continue;
                }
                match first {
                    None => first = Some(i),
                    Some(_) => {
                        for j in (0..i).filter(|&j| self.claims(j, b)) {
                            if global || !self.exempt[i][j] {
                                self.fail(&format!("I1 violated: bucket {b} accepted by n{j} and n{i}"));
                            }
                        }
                    }
                }
            }
        }
    }

    /// I2: every live flow is accepted by its holder, and no other node takes its packets as
    /// unknown (owner with no previous owner).
    pub(super) fn check_i2(&mut self) {
        let now = self.now;
        self.expire_flows(now);
        for f in &self.flows {
            let b = f.bucket as usize;
            let h = &self.hosts[f.holder];
            let e = h.table.get(b).copied().unwrap_or(BucketEntry::UNOWNED);
            let me = f.holder as u8;
            if e.owner != me && e.prev_owner != me {
                self.fail(&format!("I2 violated: n{} no longer serves its flow in bucket {b} ({e:?})", f.holder));
            }
            for (x, hx) in self.hosts.iter().enumerate() {
                if x != f.holder && hx.node.is_some() {
                    if let Some(ex) = hx.table.get(b) {
                        if ex.owner == x as u8 && ex.prev_owner == NO_NODE {
                            self.fail(&format!("I2 violated: n{x} takes unknown packets of n{}'s flow in bucket {b}", f.holder));
                        }
                    }
                }
            }
        }
    }

    pub(super) fn expire_flows(&mut self, now: Duration) {
        let hosts = &mut self.hosts;
        self.flows.retain(|f| {
            if f.end <= now {
                hosts[f.holder].flows[f.bucket as usize] -= 1;
                false
            } else {
                true
            }
        });
    }

    pub(super) fn syn(&mut self) {
        let now = self.now;
        self.expire_flows(now);
        let b = self.rng.below(u64::from(self.p.n_buckets)) as usize;
        let acceptors: Vec<usize> = (0..self.p.n).filter(|&i| self.claims(i, b)).collect();
        if let [holder] = acceptors[..] {
            let life = self.rng.dur(Duration::from_millis(200), Duration::from_secs(4));
            let end = if self.rng.chance(self.p.long_flow_share) { Duration::MAX } else { now + life };
            self.flows.push(Flow { bucket: b as u32, holder, end });
            self.hosts[holder].flows[b] += 1;
            self.stats.flows += 1;
        } else {
            self.stats.syn_dropped += 1;
        }
        // Exponential inter-arrival times (Poisson arrivals).
        let u = (self.rng.below(1 << 30) + 1) as f64 / (1u64 << 30) as f64;
        let gap = Duration::from_secs_f64(-u.ln() / self.p.syn_rate);
        self.push(now + gap, Kind::Syn);
    }

    // ---- convergence ----

    /// Alive, running, UP nodes.
    pub fn up_members(&self) -> Vec<usize> {
        (0..self.p.n)
            .filter(|&i| {
                let h = &self.hosts[i];
                !h.paused && h.node.as_ref().is_some_and(|n| n.state() == NodeState::Up)
            })
            .collect()
    }

    /// The table every node should agree on: assignment over the running UP nodes.
    pub fn expected_owners(&self) -> Vec<u8> {
        let ups = self.up_members();
        let mut out = vec![NO_NODE; self.p.n_buckets as usize];
        match self.p.mode {
            Mode::Farm => {
                let ms: Vec<Member> = ups.iter().map(|&i| Member { id: i as u8, weight: self.weight_of(i) }).collect();
                assign::assign(self.p.config(0).hash_seed, &ms, &mut out);
            }
            Mode::Failover { failback } => {
                let cands: Vec<Candidate> = ups
                    .iter()
                    .map(|&i| Candidate {
                        id: i as u8,
                        priority: i as u32,
                        active: self.hosts[i].node.as_ref().is_some_and(|n| n.owned_count() > 0),
                    })
                    .collect();
                out.fill(assign::failover_owner(&cands, failback));
            }
        }
        out
    }

    pub(super) fn weight_of(&self, i: usize) -> u16 {
        self.hosts[i].node.as_ref().map_or(0, Node::weight)
    }

    /// All running nodes agree: same view (the running UP nodes), every bucket accepted by
    /// exactly its expected owner, and every table names that owner.
    pub fn converged(&self) -> Result<(), String> {
        let ups = self.up_members();
        let view: u64 = ups.iter().map(|&i| 1u64 << i).sum();
        let expected = self.expected_owners();
        for i in (0..self.p.n).filter(|&i| self.alive(i) && !self.hosts[i].paused) {
            let n = self.hosts[i].node.as_ref().expect("alive");
            if n.view() != view {
                return Err(format!("n{i} view {:#x}, expected {view:#x}", n.view()));
            }
            for (b, e) in self.hosts[i].table.iter().enumerate() {
                if e.owner != expected[b] {
                    return Err(format!("n{i} table says bucket {b} -> {}, expected {}", e.owner, expected[b]));
                }
            }
            if self.hosts[i].table.len() != expected.len() {
                return Err(format!("n{i} has published no table"));
            }
        }
        for (b, &o) in expected.iter().enumerate() {
            let claimants: Vec<usize> = (0..self.p.n).filter(|&i| self.claims(i, b)).collect();
            let want: Vec<usize> = if o == NO_NODE { vec![] } else { vec![usize::from(o)] };
            if claimants != want {
                return Err(format!("bucket {b} accepted by {claimants:?}, expected {want:?}"));
            }
        }
        Ok(())
    }

    /// I2 now (it is also checked at every published table).
    pub fn check_i2_now(&mut self) {
        self.check_i2();
    }

    /// Long-lived flows (never ending) still held, per node.
    pub fn long_flows(&self) -> usize {
        self.flows.iter().filter(|f| f.end == Duration::MAX).count()
    }

    /// No handover in progress anywhere.
    pub fn drained(&self) -> bool {
        (0..self.p.n).filter(|&i| self.alive(i)).all(|i| self.hosts[i].table.iter().all(|e| e.prev_owner == NO_NODE))
    }
}
