//! Targeted scenarios on a perfect network (fixed 1 ms delay). The randomized simulation with
//! loss, partitions, crashes and pauses is `control/tests/sim.rs`.

use std::time::Duration;

use farm_table::NO_NODE;

use super::*;
use crate::proto::{Heartbeat, NodeState};

const SECRET: &[u8] = b"unit-test-secret-0123456789";
const MS: Duration = Duration::from_millis(1);

struct Net {
    now: Duration,
    nodes: Vec<Option<Node>>,
    inflight: Vec<(Duration, Heartbeat)>,
    cut: Vec<(u8, u8)>,
    /// Heartbeats sent from `.0` to `.1` are also recorded here (an eavesdropper).
    tap: Option<(u8, u8)>,
    recorded: Vec<Heartbeat>,
}

fn cfg(id: u8, ids: &[u8]) -> Config {
    Config::new(7, 0x5eed, 256, id, ids)
}

impl Net {
    fn new(ids: &[u8], f: impl Fn(&mut Config)) -> Net {
        let nodes = ids
            .iter()
            .map(|&id| {
                let mut c = cfg(id, ids);
                f(&mut c);
                Some(Node::new(c, SECRET, 1, Duration::ZERO).unwrap())
            })
            .collect();
        Net { now: Duration::ZERO, nodes, inflight: Vec::new(), cut: Vec::new(), tap: None, recorded: Vec::new() }
    }

    fn node(&mut self, i: usize) -> &mut Node {
        self.nodes[i].as_mut().unwrap()
    }

    fn apply(&mut self, actions: Vec<Action>) {
        for a in actions {
            if let Action::Send(hb) = a {
                if self.tap == Some((hb.sender, hb.dest)) {
                    self.recorded.push(hb.clone());
                }
                if !self.cut.contains(&(hb.sender, hb.dest)) {
                    self.inflight.push((self.now + MS, hb));
                }
            }
        }
    }

    /// Runs until `until`, 1 ms steps: deliveries, then ticks when due.
    fn run_until(&mut self, until: Duration) {
        while self.now < until {
            self.now += MS;
            let now = self.now;
            let (due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.inflight).into_iter().partition(|(t, _)| *t <= now);
            self.inflight = rest;
            for (_, hb) in due {
                if let Some(n) = self.nodes.get_mut(usize::from(hb.dest)).and_then(Option::as_mut) {
                    // Through the real codec (all nodes share the secret).
                    let bytes = n.codec().encode(&hb).unwrap();
                    let _ = n.on_datagram(now, &bytes);
                }
            }
            for i in 0..self.nodes.len() {
                let due = self.nodes[i].as_ref().is_some_and(|n| n.next_deadline() <= now);
                if due {
                    let acts = self.node(i).tick(now);
                    self.apply(acts);
                }
            }
            self.check_i1();
        }
    }

    fn check_i1(&self) {
        for b in 0..256u32 {
            let owners: Vec<u8> = self.nodes.iter().flatten().filter(|n| n.owns(b)).map(Node::id).collect();
            let connected = owners.iter().all(|&a| owners.iter().all(|&c| a == c || !self.cut.contains(&(a, c))));
            assert!(owners.len() <= 1 || !connected, "I1 violated at {:?}: bucket {b} owned by {owners:?}", self.now);
        }
    }

    fn set_state(&mut self, i: usize, s: NodeState) {
        let now = self.now;
        self.node(i).set_state(now, s);
        let acts = self.node(i).tick(now);
        self.apply(acts);
    }

    fn owners(&self) -> Vec<Vec<u8>> {
        (0..256u32).map(|b| self.nodes.iter().flatten().filter(|n| n.owns(b)).map(Node::id).collect()).collect()
    }

    fn entry(&self, i: usize, b: u32) -> (u8, u8) {
        let e = self.nodes[i].as_ref().unwrap().entries()[b as usize];
        (e.owner, e.prev_owner)
    }

    fn set_flows(&mut self, i: usize, flows: &[u32]) {
        let now = self.now;
        self.node(i).set_flows(now, flows);
        let acts = self.node(i).tick(now);
        self.apply(acts);
    }

    /// Runs until `until` and returns the longest time (ms) any bucket had no owner at all.
    fn run_measuring_gaps(&mut self, until: Duration) -> u64 {
        let mut since: Vec<Option<Duration>> = vec![None; 256];
        let mut worst = Duration::ZERO;
        while self.now < until {
            let t = self.now + MS;
            self.run_until(t);
            for (b, o) in self.owners().iter().enumerate() {
                match (o.is_empty(), since[b]) {
                    (true, None) => since[b] = Some(self.now - MS),
                    (false, Some(s)) => {
                        worst = worst.max(self.now - s);
                        since[b] = None;
                    }
                    _ => {}
                }
            }
        }
        assert!(since.iter().all(Option::is_none), "buckets left without owner");
        worst.as_millis() as u64
    }
}

/// Node `holder` holds one flow in each of `buckets` (the data plane's report).
fn flows_in(buckets: &[u32]) -> Vec<u32> {
    let mut f = vec![0; 256];
    for &b in buckets {
        f[b as usize] += 1;
    }
    f
}

#[test]
fn two_nodes_split_the_buckets_after_the_handshake() {
    let mut net = Net::new(&[0, 1], |_| {});
    net.set_state(0, NodeState::Up);
    net.set_state(1, NodeState::Up);
    net.run_until(Duration::from_millis(200));
    let owners = net.owners();
    assert!(owners.iter().all(|o| o.len() == 1), "every bucket owned exactly once");
    let n0 = owners.iter().filter(|o| o[0] == 0).count();
    assert!((80..176).contains(&n0), "{n0}");
    // Both publish the same owners; prev_owner is empty.
    let e0 = net.nodes[0].as_ref().unwrap().entries().to_vec();
    let e1 = net.nodes[1].as_ref().unwrap().entries().to_vec();
    assert_eq!(e0, e1);
    assert!(e0.iter().all(|e| e.prev_owner == NO_NODE && e.owner != NO_NODE));
}

#[test]
fn startup_waits_for_unknown_peers() {
    // Node 1 never starts: node 0 must wait dead_after before owning anything.
    let mut net = Net::new(&[0, 1], |_| {});
    net.nodes[1] = None;
    net.set_state(0, NodeState::Up);
    net.run_until(Duration::from_millis(990));
    assert_eq!(net.node(0).owned_count(), 0);
    net.run_until(Duration::from_millis(1010));
    assert_eq!(net.node(0).owned_count(), 256);
}

#[test]
fn death_is_taken_over_within_a_round_trip() {
    let mut net = Net::new(&[0, 1, 2], |_| {});
    for i in 0..3 {
        net.set_state(i, NodeState::Up);
    }
    net.run_until(Duration::from_millis(300));
    assert!(net.owners().iter().all(|o| o.len() == 1));
    let crash_at = net.now;
    net.nodes[2] = None;
    // Survivors notice within dead_after (+ tick granularity), then take over at once.
    net.run_until(crash_at + Duration::from_millis(1100) + Duration::from_millis(10));
    let owners = net.owners();
    assert!(owners.iter().all(|o| o.len() == 1), "orphans taken over: {owners:?}");
    assert!(owners.iter().all(|o| o[0] != 2));
}

#[test]
fn graceful_leave_drains_and_hands_over() {
    let mut net = Net::new(&[0, 1], |_| {});
    net.set_state(0, NodeState::Up);
    net.set_state(1, NodeState::Up);
    net.run_until(Duration::from_millis(200));
    let had: Vec<u32> = (0..256).filter(|&b| net.nodes[1].as_ref().unwrap().owns(b)).collect();
    net.set_state(1, NodeState::Stopping);
    assert_eq!(net.node(1).owned_count(), had.len() as u32, "kept until the peer is ready");
    assert!(net.node(1).handing_over());
    let gap = net.run_measuring_gaps(Duration::from_millis(230));
    assert_eq!(net.node(0).owned_count(), 256, "taken over within a few trips");
    assert!(gap <= 2, "a bucket had no owner for {gap} ms (1 ms per hop)");
    assert!(!net.node(1).handing_over());
    // Node 0 publishes node 1 as previous owner of the moved buckets while they drain.
    for &b in &had {
        let e0 = net.nodes[0].as_ref().unwrap().entries()[b as usize];
        assert_eq!((e0.owner, e0.prev_owner), (0, 1));
        let e1 = net.nodes[1].as_ref().unwrap().entries()[b as usize];
        assert_eq!((e1.owner, e1.prev_owner), (0, 1));
    }
    // No flow left: the drain ends after a pulse, then node 0 clears prev_owner.
    let now = net.now;
    net.node(1).set_flows(now, &[0; 256]);
    net.run_until(Duration::from_millis(500));
    assert!(net.nodes[0].as_ref().unwrap().entries().iter().all(|e| e.owner == 0 && e.prev_owner == NO_NODE));
}

#[test]
fn drains_have_no_deadline_by_default() {
    // Node 1 leaves holding flows in two of its buckets: they reach it for as long as they
    // live (two minutes here), while its other buckets stop draining after a pulse.
    let mut net = Net::new(&[0, 1], |_| {});
    net.set_state(0, NodeState::Up);
    net.set_state(1, NodeState::Up);
    net.run_until(Duration::from_millis(200));
    let had: Vec<u32> = (0..256).filter(|&b| net.nodes[1].as_ref().unwrap().owns(b)).collect();
    let held = [had[0], had[had.len() / 2]];
    net.set_flows(1, &flows_in(&held));
    net.set_flows(0, &[0; 256]);
    net.set_state(1, NodeState::Wait);
    net.run_until(Duration::from_secs(120));
    assert_eq!(net.node(1).draining_count(), 2);
    for &b in &had {
        let want = if held.contains(&b) { (0, 1) } else { (0, NO_NODE) };
        assert_eq!(net.entry(0, b), want, "bucket {b} on the owner");
        if held.contains(&b) {
            assert_eq!(net.entry(1, b), (0, 1), "bucket {b} on the holder");
        }
    }
    // The first flow ends: its bucket stops draining; then the second.
    net.set_flows(1, &flows_in(&held[1..]));
    net.run_until(Duration::from_millis(120_300));
    assert_eq!(net.entry(0, held[0]), (0, NO_NODE));
    assert_eq!(net.entry(0, held[1]), (0, 1));
    net.set_flows(1, &[0; 256]);
    net.run_until(Duration::from_millis(120_600));
    assert_eq!(net.node(1).draining_count(), 0);
    assert!(net.nodes[0].as_ref().unwrap().entries().iter().all(|e| e.prev_owner == NO_NODE));
    assert_eq!(net.node(1).drains_expired(), 0);
}

#[test]
fn the_drain_valve_ends_drains_loudly_and_counts_them() {
    let mut net = Net::new(&[0, 1], |c| c.drain_timeout = Some(Duration::from_secs(3)));
    net.set_state(0, NodeState::Up);
    net.set_state(1, NodeState::Up);
    net.run_until(Duration::from_millis(200));
    let had: Vec<u32> = (0..256).filter(|&b| net.nodes[1].as_ref().unwrap().owns(b)).collect();
    net.set_flows(1, &flows_in(&had[..3]));
    net.set_state(1, NodeState::Wait);
    net.run_until(Duration::from_millis(3100));
    assert_eq!(net.node(1).draining_count(), 3);
    // Past the valve, the node gives the flows up: an event, a count, and the owner clears
    // prev_owner.
    let mut expired = Vec::new();
    while net.now < Duration::from_millis(3400) {
        net.now += MS;
        let now = net.now;
        let acts = net.node(1).tick(now);
        expired.extend(acts.iter().filter_map(|a| match a {
            Action::Event(Event::DrainExpired { buckets, flows }) => Some((*buckets, *flows)),
            _ => None,
        }));
        net.apply(acts);
        let t = net.now;
        net.now -= MS;
        net.run_until(t);
    }
    assert_eq!(expired, vec![(3, 3)]);
    assert_eq!(net.node(1).draining_count(), 0);
    assert_eq!(net.node(1).drains_expired(), 3);
    assert!(net.nodes[0].as_ref().unwrap().entries().iter().all(|e| e.prev_owner == NO_NODE));
}

#[test]
fn several_drainers_of_one_bucket() {
    // Bucket b moves 2 -> 1 -> 0 while 2 and then 1 each hold a flow in it: the owner names a
    // live drainer as long as either holds one, and each drainer keeps its own flows.
    let ids = [0, 1, 2];
    let mut net = Net::new(&ids, |_| {});
    for i in 0..3 {
        net.set_state(i, NodeState::Up);
        net.set_flows(i, &[0; 256]);
    }
    net.run_until(Duration::from_millis(300));
    // A bucket of node 2 that goes to node 1 when node 2 leaves.
    let b = (0..256u32)
        .find(|&b| {
            net.nodes[2].as_ref().unwrap().owns(b) && {
                let mut d = vec![NO_NODE; 256];
                crate::assign::assign(0x5eed, &[crate::assign::Member { id: 0, weight: 1 }, crate::assign::Member { id: 1, weight: 1 }], &mut d);
                d[b as usize] == 1
            }
        })
        .expect("such a bucket");
    net.set_flows(2, &flows_in(&[b]));
    net.set_state(2, NodeState::Wait);
    net.run_until(Duration::from_millis(600));
    assert_eq!(net.entry(1, b), (1, 2));
    assert_eq!(net.entry(2, b), (1, 2));
    net.set_flows(1, &flows_in(&[b]));
    net.set_state(1, NodeState::Wait);
    net.run_until(Duration::from_millis(900));
    let (o, p) = net.entry(0, b);
    assert_eq!(o, 0);
    assert!(p == 1 || p == 2, "prev_owner {p}");
    assert_eq!(net.entry(1, b), (0, 1));
    assert_eq!(net.entry(2, b), (0, 2));
    // Node 2's flow ends: node 1 still drains.
    net.set_flows(2, &[0; 256]);
    net.run_until(Duration::from_millis(1200));
    assert_eq!(net.entry(0, b), (0, 1));
    assert_eq!(net.entry(1, b), (0, 1));
    // Node 1 dies while draining: its flows died with it.
    net.nodes[1] = None;
    net.run_until(Duration::from_millis(2400));
    assert_eq!(net.entry(0, b), (0, NO_NODE));
}

#[test]
fn a_coarsened_drain_set_still_covers_every_draining_bucket() {
    // 4096 buckets, node 1 leaves holding flows in every third of its buckets for a long
    // time: far more runs than a datagram carries. The heartbeats' drain set is a superset,
    // so the owner never clears prev_owner of a bucket that still drains.
    let ids = [0, 1];
    let mut net = Net::new(&ids, |c| c.n_buckets = 4096);
    let n = 4096usize;
    net.set_state(0, NodeState::Up);
    net.set_state(1, NodeState::Up);
    net.run_until(Duration::from_millis(300));
    let had: Vec<u32> = (0..n as u32).filter(|&b| net.nodes[1].as_ref().unwrap().owns(b)).collect();
    let held: Vec<u32> = had.iter().copied().step_by(3).collect();
    let mut f = vec![0u32; n];
    for &b in &held {
        f[b as usize] = 1;
    }
    net.set_flows(1, &f);
    net.set_flows(0, &vec![0; n]);
    net.set_state(1, NodeState::Wait);
    net.run_until(Duration::from_secs(30));
    let n1 = net.nodes[1].as_ref().unwrap();
    assert_eq!(n1.draining_count(), held.len() as u32);
    let e0 = net.nodes[0].as_ref().unwrap().entries();
    for &b in &held {
        assert_eq!((e0[b as usize].owner, e0[b as usize].prev_owner), (0, 1), "bucket {b}");
    }
    let peer = &net.nodes[0].as_ref().unwrap().peers()[0];
    assert!(peer.draining >= held.len() as u32, "coarsened: a superset");
    assert!(held.len() > crate::proto::MAX_RUNS, "the set had to be coarsened");
}

#[test]
fn up_again_during_the_hand_over_keeps_the_buckets() {
    let mut net = Net::new(&[0, 1], |_| {});
    net.set_state(0, NodeState::Up);
    net.set_state(1, NodeState::Up);
    net.run_until(Duration::from_millis(200));
    let had = net.node(1).owned_count();
    net.set_state(1, NodeState::Stopping);
    net.set_state(1, NodeState::Up);
    assert!(!net.node(1).handing_over());
    net.run_until(Duration::from_millis(400));
    assert_eq!(net.node(1).owned_count(), had);
    assert!(net.owners().iter().all(|o| o.len() == 1));
}

#[test]
fn a_lone_node_releases_at_once_when_it_leaves() {
    let mut net = Net::new(&[0, 1], |_| {});
    net.nodes[1] = None;
    net.set_state(0, NodeState::Up);
    net.run_until(Duration::from_millis(1100));
    assert_eq!(net.node(0).owned_count(), 256);
    net.set_state(0, NodeState::Stopping);
    assert_eq!(net.node(0).owned_count(), 0, "no peer to wait for");
}

#[test]
fn rejects_are_counted() {
    let mut net = Net::new(&[0, 1], |_| {});
    let now = net.now;
    assert_eq!(net.node(0).on_datagram(now, &[1, 2, 3]), Err(crate::proto::Reject::Truncated { len: 3 }));
    assert_eq!(net.node(0).rejects().get(crate::proto::Reject::Truncated { len: 0 }), 1);
}

#[test]
fn majority_single_node_of_three_owns_nothing() {
    let mut net = Net::new(&[0, 1, 2], |c| c.takeover = Takeover::Majority);
    net.nodes[1] = None;
    net.nodes[2] = None;
    net.set_state(0, NodeState::Up);
    net.run_until(Duration::from_secs(3));
    assert_eq!(net.node(0).owned_count(), 0);
}

#[test]
fn majority_two_of_three_take_everything() {
    let mut net = Net::new(&[0, 1, 2], |c| c.takeover = Takeover::Majority);
    net.nodes[2] = None;
    net.set_state(0, NodeState::Up);
    net.set_state(1, NodeState::Up);
    net.run_until(Duration::from_millis(1200));
    let owners = net.owners();
    assert!(owners.iter().all(|o| o.len() == 1), "{owners:?}");
    assert!(net.node(0).lease().is_some_and(|l| l > net.now));
}

#[test]
fn failover_without_failback_keeps_the_active_node() {
    let mut net = Net::new(&[0, 1], |c| c.mode = Mode::Failover { failback: false });
    net.set_state(1, NodeState::Up);
    net.run_until(Duration::from_millis(1100));
    assert_eq!(net.node(1).owned_count(), 256);
    // The better-priority node 0 comes up: node 1 stays active.
    net.set_state(0, NodeState::Up);
    net.run_until(Duration::from_millis(1500));
    assert_eq!(net.node(1).owned_count(), 256);
    assert_eq!(net.node(0).owned_count(), 0);
}

#[test]
fn failover_with_failback_moves_to_the_best_priority() {
    let mut net = Net::new(&[0, 1], |c| c.mode = Mode::Failover { failback: true });
    net.set_state(1, NodeState::Up);
    net.run_until(Duration::from_millis(1100));
    assert_eq!(net.node(1).owned_count(), 256);
    net.set_state(0, NodeState::Up);
    net.run_until(Duration::from_millis(1200));
    assert_eq!(net.node(0).owned_count(), 256);
    assert_eq!(net.node(1).owned_count(), 0);
}

#[test]
fn stall_fences_the_node() {
    let mut net = Net::new(&[0, 1], |_| {});
    net.set_state(0, NodeState::Up);
    net.set_state(1, NodeState::Up);
    net.run_until(Duration::from_millis(200));
    assert!(net.node(1).owned_count() > 0);
    // Node 1 is not called for 2 s (SIGSTOP); its first call afterwards fences.
    let n1 = net.nodes[1].take();
    net.run_until(Duration::from_millis(2200));
    net.nodes[1] = n1;
    let now = net.now;
    let acts = net.node(1).tick(now);
    assert!(acts.iter().any(|a| matches!(a, Action::Event(Event::Stalled { .. }))));
    assert_eq!(net.node(1).owned_count(), 0);
    net.apply(acts);
    net.run_until(Duration::from_millis(2400));
    assert!(net.owners().iter().all(|o| o.len() == 1));
    assert!(net.node(1).owned_count() > 0, "back after the handshake");
}

#[test]
fn two_fresh_nodes_hear_each_other_after_one_round_trip() {
    let mut net = Net::new(&[0, 1], |_| {});
    net.set_state(0, NodeState::Up);
    net.set_state(1, NodeState::Up);
    // 1 ms per hop: the first heartbeats cross (neither echoes the other), the answers echo.
    net.run_until(Duration::from_millis(5));
    for i in 0..2 {
        let n = net.node(i);
        assert_eq!(n.peers()[0].liveness, Liveness::Alive, "node {i}");
        assert!(n.rejects().get(crate::proto::Reject::NoEcho) >= 1, "node {i}: the first heartbeat is no proof");
    }
}

/// I5: node 0 restarts while node 2 is dead; a recording of node 2's heartbeats to node 0
/// (made while both lived, so they echo node 0's previous incarnation) is replayed to it.
#[test]
fn replayed_heartbeats_of_a_dead_peer_do_not_revive_it_after_a_restart() {
    use crate::proto::Reject;
    let ids = [0, 1, 2];
    let mut net = Net::new(&ids, |_| {});
    for i in 0..3 {
        net.set_state(i, NodeState::Up);
    }
    net.run_until(Duration::from_millis(300));
    net.tap = Some((2, 0));
    net.run_until(Duration::from_millis(1300));
    net.tap = None;
    let recording = std::mem::take(&mut net.recorded);
    assert!(recording.len() >= 9, "{}", recording.len());
    assert!(recording.iter().all(|hb| hb.ack.is_some_and(|a| a.incarnation == 1)));

    net.nodes[2] = None;
    net.run_until(Duration::from_millis(2500));
    let restart = net.now;
    net.nodes[0] = Some(Node::new(cfg(0, &ids), SECRET, 2, restart).unwrap());
    net.set_state(0, NodeState::Up);
    // The recording, at its own pace and then all at once again, through the codec.
    let mut replay: Vec<Heartbeat> = recording.clone();
    replay.extend(recording.iter().cloned());
    for (k, hb) in replay.iter().enumerate() {
        net.run_until(restart + Duration::from_millis(100) * k.min(recording.len()) as u32 + MS);
        let now = net.now;
        let n0 = net.node(0);
        let bytes = n0.codec().encode(hb).unwrap();
        let r = n0.on_datagram(now, &bytes);
        let want = if k < recording.len() { Reject::NoEcho } else { Reject::Stale };
        if k + 1 != recording.len() * 2 {
            assert_eq!(r, Err(want), "replayed heartbeat {k}");
        } else {
            assert_eq!(r, Err(Reject::Duplicate), "the last one, again");
        }
        assert_ne!(net.node(0).peers()[1].liveness, Liveness::Alive, "node 2 alive after replay {k}");
    }
    net.run_until(restart + Duration::from_secs(3));
    let n0 = net.node(0);
    assert_eq!(n0.peers()[1].liveness, Liveness::Dead);
    assert!(n0.peers()[1].incarnation.is_none(), "nothing of node 2 was taken as heard");
    // The replay, and node 1's first heartbeat to the new incarnation.
    assert_eq!(n0.rejects().get(Reject::NoEcho), recording.len() as u64 + 1);
    assert_eq!(n0.view(), 0b011);
    let owners = net.owners();
    assert!(owners.iter().all(|o| o.len() == 1 && o[0] != 2), "every bucket owned by a live node: {owners:?}");
}

#[test]
fn heartbeats_from_a_wrong_source_change_nothing() {
    use crate::proto::Reject;
    let mut net = Net::new(&[0, 1], |_| {});
    net.tap = Some((1, 0));
    net.set_state(1, NodeState::Up);
    let hb = net.recorded[0].clone();
    let bytes = net.node(0).codec().encode(&hb).unwrap();
    let mut asked = None;
    let r = net.node(0).on_datagram_from(MS, &bytes, |sender| {
        asked = Some(sender);
        false
    });
    assert_eq!(r, Err(Reject::WrongSource(1)));
    assert_eq!(asked, Some(1), "asked about the authenticated sender");
    assert_eq!(net.node(0).rejects().by_name("wrong_source"), 1);
    // Not recorded by the replay guard: the same datagram from the right source counts (as
    // the first, not yet echoing heartbeat of node 1).
    assert_eq!(net.node(0).on_datagram_from(MS, &bytes, |_| true), Err(Reject::NoEcho));
    // Garbage never reaches the source check.
    assert_eq!(net.node(0).on_datagram_from(MS, &[0; 8], |_| panic!("asked")), Err(Reject::Truncated { len: 8 }));
}
