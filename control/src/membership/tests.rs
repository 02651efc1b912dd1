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
}

fn cfg(id: u8, ids: &[u8]) -> Config {
    let mut c = Config::new(7, 0x5eed, 256, id, ids);
    c.drain_timeout = Duration::from_secs(3);
    c
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
        Net { now: Duration::ZERO, nodes, inflight: Vec::new(), cut: Vec::new() }
    }

    fn node(&mut self, i: usize) -> &mut Node {
        self.nodes[i].as_mut().unwrap()
    }

    fn apply(&mut self, actions: Vec<Action>) {
        for a in actions {
            if let Action::Send(hb) = a {
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
    assert_eq!(net.node(1).owned_count(), 0, "released at once");
    net.run_until(Duration::from_millis(230));
    assert_eq!(net.node(0).owned_count(), 256, "taken over after one round trip");
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
fn drains_end_on_timeout_without_flow_counts() {
    let mut net = Net::new(&[0, 1], |_| {});
    net.set_state(0, NodeState::Up);
    net.set_state(1, NodeState::Up);
    net.run_until(Duration::from_millis(200));
    net.set_state(1, NodeState::Wait);
    net.run_until(Duration::from_millis(3100));
    assert!(net.node(1).draining_count() > 0);
    net.run_until(Duration::from_millis(3400));
    assert_eq!(net.node(1).draining_count(), 0);
    assert!(net.nodes[0].as_ref().unwrap().entries().iter().all(|e| e.prev_owner == NO_NODE));
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
