//! Fills the API's [`crate::api::Status`] from the daemon's parts.

use std::time::Instant;

use farm_table::NO_NODE;

use super::Daemon;
use crate::api::{DataplaneSummary, HeartbeatStats};
use crate::checkers::dataplane::monotonic_ns;
use crate::lifecycle::State;
use crate::membership::Liveness;
use crate::proto::NodeState;

/// The lifecycle state a peer advertises.
fn lifecycle_state(s: NodeState) -> State {
    match s {
        NodeState::Stop => State::Stop,
        NodeState::Wait => State::Wait,
        NodeState::Up => State::Up,
        NodeState::Starting => State::Starting,
        NodeState::Stopping => State::Stopping,
    }
}

impl Daemon {
    /// Refreshes the shared status (every pulse and after every change).
    pub(super) fn refresh_status(&mut self, now: Instant) {
        let mnow = self.mnow(now);
        let advertised = self.advertised(now);
        let peers = self.node.peers();
        let entries = self.node.entries();
        let mut owned = [0u32; 64];
        for e in entries {
            if e.owner != NO_NODE {
                owned[usize::from(e.owner) % 64] += 1;
            }
        }
        let generation = self.table.as_ref().map_or(self.node.generation(), |t| t.generation());
        let view = self.node.view();
        let mut st = self.status.write().unwrap_or_else(|p| p.into_inner());
        self.rt.fill_status(&mut st, now);
        // UP in the lifecycle but held out by the data plane: shown (and advertised) as WAIT.
        if st.state == State::Up && advertised != NodeState::Up {
            st.state = State::Wait;
            st.waiting_on.push("dataplane".into());
        }
        let me = self.node.id();
        let my_state = st.state;
        for m in &mut st.members {
            m.buckets = owned[usize::from(m.id) % 64];
            if m.id == me {
                m.live = true;
                m.state = Some(my_state);
                m.last_heard_ms_ago = None;
            } else if let Some(p) = peers.iter().find(|p| p.id == m.id) {
                m.live = p.liveness == Liveness::Alive;
                m.state = p.incarnation.map(|_| lifecycle_state(p.state));
                if p.incarnation.is_some() {
                    m.weight = p.weight;
                }
                m.last_heard_ms_ago = p.last_seen.map(|s| mnow.saturating_sub(s).as_millis() as u64);
            }
        }
        self.fill_live(&mut st);
        st.view = (0..64u8).filter(|i| view & (1 << i) != 0).collect();
        st.table_generation = generation;
        st.buckets_owned = self.node.owned_count();
        st.buckets_draining = self.node.draining_count();
        st.drains_expired = self.node.drains_expired();
        st.heartbeat = HeartbeatStats {
            rx: self.counters.rx,
            tx: self.counters.net.tx,
            rejected: self.node.rejects().iter().map(|(k, v)| (k.to_string(), v)).collect(),
        };
        st.dataplane = match (&self.sup, &self.last_snap) {
            (Some(_), Some(s)) if s.pid != 0 => {
                let mut d = DataplaneSummary::from_table(s, monotonic_ns());
                d.lease_held_back = self.counters.lease_held_back;
                Some(d)
            }
            _ => None,
        };
        if self.status_generation != self.node.generation() || st.table.len() != entries.len() {
            st.table = entries.to_vec();
        }
        drop(st);
        self.status_generation = self.node.generation();
    }
}
