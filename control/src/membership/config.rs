//! Static inputs of the membership state machine.

use std::time::Duration;

use farm_table::{MAX_BUCKETS, MAX_NODES};

/// What a node does with the buckets of peers it cannot hear.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Takeover {
    /// Always take over (SafeKit farm behaviour): during a partition each side serves every
    /// bucket; invariant I1 holds only between nodes that hear each other.
    #[default]
    Always,
    /// Own buckets only while a strict majority of the configured nodes (plus the witness
    /// vote, if configured) has recently acknowledged this node: a lease. I1 holds globally as
    /// long as the data plane honours [`crate::membership::Action::Lease`].
    Majority,
}

/// How buckets are assigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Weighted rendezvous hashing over the live UP members.
    Farm,
    /// Active/passive: one node owns every bucket.
    Failover {
        /// A better-priority node that comes back takes the buckets back.
        failback: bool,
    },
}

/// One configured node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    /// Node id, `0..MAX_NODES`.
    pub id: u8,
    /// Failover priority, lower is better.
    pub priority: u32,
}

/// Static configuration of one node's membership. All nodes of a cluster must agree on
/// `cluster_id`, `hash_seed`, `n_buckets`, `mode` and the node list (a digest of these is part
/// of every heartbeat's view digest: nodes that disagree never take buckets from each other).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Cluster id carried in heartbeats.
    pub cluster_id: u32,
    /// Seed of the assignment hash (the cluster's `hash_seed`).
    pub hash_seed: u64,
    /// Buckets, a power of two in `MIN_BUCKETS..=MAX_BUCKETS`.
    pub n_buckets: u32,
    /// This node's id.
    pub local_id: u8,
    /// This node's initial weight (1..=1000 in the config file; 0 owns nothing).
    pub weight: u16,
    /// Every configured node, this one included.
    pub nodes: Vec<NodeConfig>,
    /// Heartbeat interval.
    pub pulse: Duration,
    /// A peer with no valid heartbeat for this long is dead.
    pub dead_after: Duration,
    /// Partition policy.
    pub takeover: Takeover,
    /// With [`Takeover::Majority`]: a witness vote exists (fed by
    /// [`crate::membership::Node::set_witness`]).
    pub witness: bool,
    /// Assignment mode.
    pub mode: Mode,
    /// Safety valve: the longest time a released bucket stays draining. `None` (the default):
    /// no deadline, a drain lasts as long as this node's data plane reports a flow in the
    /// bucket ([`crate::membership::Node::set_flows`]), so a connection keeps reaching this
    /// node for as long as it lives (invariant I2). When the valve fires, the bucket's
    /// remaining flows are given up (the owner then takes their packets and its kernel resets
    /// them): logged ([`crate::membership::Event::DrainExpired`]) and counted
    /// ([`crate::membership::Node::drains_expired`]).
    pub drain_timeout: Option<Duration>,
}

/// Invalid [`Config`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Bucket count not a power of two in range.
    #[error("bucket count {0} is not a power of two in 1..={MAX_BUCKETS}")]
    Buckets(u32),
    /// Node id out of range or duplicated.
    #[error("node id {0} is out of range or listed twice")]
    NodeId(u8),
    /// The local node is not in the node list.
    #[error("local node {0} is not in the node list")]
    LocalMissing(u8),
    /// Timers: pulse must be positive and `dead_after` at least three pulses.
    #[error("pulse {pulse:?} / dead_after {dead_after:?}: need pulse > 0 and dead_after >= 3 x pulse")]
    Timers {
        /// Pulse.
        pulse: Duration,
        /// Dead after.
        dead_after: Duration,
    },
    /// A witness without the majority policy.
    #[error("a witness only makes sense with takeover = majority")]
    Witness,
}

impl Config {
    /// A configuration with the documented defaults (pulse 100 ms, dead after 1 s, farm mode,
    /// takeover `always`, no drain deadline) for nodes `ids` (priority = position).
    pub fn new(cluster_id: u32, hash_seed: u64, n_buckets: u32, local_id: u8, ids: &[u8]) -> Config {
        Config {
            cluster_id,
            hash_seed,
            n_buckets,
            local_id,
            weight: 1,
            nodes: ids.iter().enumerate().map(|(i, &id)| NodeConfig { id, priority: i as u32 }).collect(),
            pulse: Duration::from_millis(100),
            dead_after: Duration::from_secs(1),
            takeover: Takeover::Always,
            witness: false,
            mode: Mode::Farm,
            drain_timeout: None,
        }
    }

    /// Checks the invariants the state machine relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.n_buckets.is_power_of_two() || self.n_buckets > MAX_BUCKETS {
            return Err(ConfigError::Buckets(self.n_buckets));
        }
        let mut seen = 0u64;
        for n in &self.nodes {
            if usize::from(n.id) >= MAX_NODES || seen & (1 << n.id) != 0 {
                return Err(ConfigError::NodeId(n.id));
            }
            seen |= 1 << n.id;
        }
        if usize::from(self.local_id) >= MAX_NODES || seen & (1 << self.local_id) == 0 {
            return Err(ConfigError::LocalMissing(self.local_id));
        }
        if self.pulse.is_zero() || self.dead_after < self.pulse * 3 {
            return Err(ConfigError::Timers { pulse: self.pulse, dead_after: self.dead_after });
        }
        if self.witness && self.takeover != Takeover::Majority {
            return Err(ConfigError::Witness);
        }
        Ok(())
    }

    /// Votes needed for a quorum under [`Takeover::Majority`] (self included).
    pub fn quorum(&self) -> usize {
        (self.nodes.len() + usize::from(self.witness)) / 2 + 1
    }

    /// A gap between two calls longer than this means this process was stalled (e.g. SIGSTOP,
    /// VM pause): peers may have declared it dead, so it fences itself.
    pub fn stall_limit(&self) -> Duration {
        self.dead_after.saturating_sub(self.pulse * 2).max(self.pulse * 3 / 2)
    }

    /// Safety margin of the majority lease (timer granularity, clock rate differences).
    pub fn lease_guard(&self) -> Duration {
        self.pulse
    }
}
