//! What a configuration reload (`farmctl reload`, SIGHUP) may change while farmd runs.
//!
//! [`diff`] compares the running configuration with the new file, key by key, and says for
//! each changed key how it is handled ([`Handling`]). A reload is all or nothing: if any
//! changed key is [`Handling::Refused`], nothing changes and every refused key is named with
//! its reason; otherwise the live keys are applied (`live.rs`) and the new file becomes the
//! running configuration. The section structs are destructured without `..`, so a key added
//! to the configuration later does not compile here until it is classified.
//!
//! | live | how |
//! | --- | --- |
//! | this node's `[[node]] weight` | [`crate::membership::Node::set_weight`]; peers learn it from the heartbeats |
//! | `[[checker]]` | the checker set is replaced and its threads restart |
//! | another node's `weight` | accepted; that node applies it when it reloads |
//! | `module.autostart` | accepted; read at farmd's next start |
//! | `[[vip]]`, `[dataplane]` (but `enabled`) without a data plane | accepted; nothing in this farmd reads them |
//!
//! Everything else is refused (see the reasons below and configs/README.md, "Live changes").

use farm_config::{Api, Assignment, Config, Dataplane, Heartbeat, Module, Restart, Scripts};

use super::settings::{DataplaneMode, Prepared};

/// How a reload handles one changed key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handling {
    /// Applied at once.
    Live,
    /// Accepted; takes effect later (the text says when).
    Later(&'static str),
    /// Accepted; nothing in this farmd uses it (no data plane).
    Unused,
    /// Refused (the text says why): the reload changes nothing.
    Refused(&'static str),
}

/// One changed key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The key, as configuration errors name it (`heartbeat.pulse`, `node[1].weight`, `vip[0]`).
    pub key: String,
    /// What changed, e.g. `1 -> 3` or `added`.
    pub what: String,
    /// How it is handled.
    pub handling: Handling,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.key, self.what)?;
        match &self.handling {
            Handling::Live => Ok(()),
            Handling::Later(when) => write!(f, ": {when}"),
            Handling::Unused => write!(f, ": not used by this farmd (no data plane)"),
            Handling::Refused(why) => write!(f, ": cannot change live: {why}"),
        }
    }
}

/// Every changed key, in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// The changes.
    pub changes: Vec<Change>,
}

impl Diff {
    /// The changes that refuse the reload.
    pub fn refused(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| matches!(c.handling, Handling::Refused(_)))
    }

    /// Whether the reload is refused.
    pub fn is_refused(&self) -> bool {
        self.refused().next().is_some()
    }

    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The change of `key`, if any.
    pub fn get(&self, key: &str) -> Option<&Change> {
        self.changes.iter().find(|c| c.key == key)
    }

    /// Records `key` if `old != new`.
    fn cmp<T: PartialEq + std::fmt::Debug>(&mut self, key: &str, old: &T, new: &T, handling: Handling) {
        if old != new {
            self.push(key, format!("{old:?} -> {new:?}"), handling);
        }
    }

    fn push(&mut self, key: &str, what: String, handling: Handling) {
        self.changes.push(Change { key: key.to_string(), what, handling });
    }
}

/// Why files opened at start cannot move.
const FILES: &str = "farmd opened it at start (logs, Unix socket, table); restart farmd";
/// Why cluster-wide identity cannot change on one node.
const CLUSTER: &str = "it must be the same on every node (heartbeats and the view digest carry it, the client hash uses it); change it on every node and restart the farm";
const BUCKETS: &str = "it sizes the shared-memory table and the client hash, and must be the same on every node; change it on every node and restart the farm";
const SECRET: &str = "the heartbeat secret is read at start and must match every peer's; change it on every node and restart the farm";
const NODES: &str = "the node list must be the same on every node (it is in the view digest) and farmd bound its heartbeat sockets to it; change it on every node and restart them";
const PORT: &str = "the heartbeat sockets are bound at start; restart farmd";
const TIMERS: &str = "failure detection and the leases (the data plane's and the majority's) assume the same timers on every node, and the membership takes them at start: a change on one node could let a stalled node keep accepting after its peers took over (I1); change it on every node and restart them";
const ASSIGNMENT: &str = "the assignment mode and partition policy must be the same on every node (the view digest carries the mode, quorum leases assume one policy); change it on every node and restart them";
const DP_MODE: &str = "it switches between control-only and a supervised data plane; restart farmd";
const DATAPLANE: &str = "the data plane reads it at start, and restarting the data plane to apply it would cut the connections this node holds (I2); stop the module and restart farmd";
const VIPS: &str = "the data plane reads the VIP rules at start, and restarting it to apply them would cut the connections this node holds (I2); stop the module and restart farmd";
const SCRIPTS: &str = "the script runner takes the scripts at start (not live yet: a script may be running); stop the module and restart farmd";
const RESTART: &str = "the restart policy and its count are taken at start (not live yet); restart farmd";
const API: &str = "the API server binds and reads it at start; restart farmd";
const AT_START: &str = "farmd takes it at start (not live yet); restart farmd";
const AUTOSTART: &str = "read when farmd starts: applies at its next start";
const PEER_WEIGHT: &str = "that node applies it when it reloads (weights travel in its heartbeats)";

/// Compares the running configuration `old` with the reloaded `new` (both localized for this
/// node, `me`). `data_plane`: this farmd supervises a data plane (else `[[vip]]` and
/// `[dataplane]` keys other than `enabled` are unused).
pub fn diff(old: &Config, new: &Config, me: &str, data_plane: bool) -> Diff {
    let mut d = Diff::default();
    let Config { origin: _, module, nodes, heartbeat, vips, assignment, dataplane, scripts, checkers, restart, api } = new;

    let Module { name, cluster_id, hash_seed, hash_seed_from: _, buckets, secret_file, log_dir, run_dir, table_file, autostart } = module;
    let o = &old.module;
    d.cmp("module.name", &o.name, name, Handling::Refused(FILES));
    d.cmp("module.cluster_id", &o.cluster_id, cluster_id, Handling::Refused(CLUSTER));
    // The value matters, not where it came from (file or secret).
    d.cmp("module.hash_seed", &o.hash_seed, hash_seed, Handling::Refused(CLUSTER));
    d.cmp("module.buckets", &o.buckets.get(), &buckets.get(), Handling::Refused(BUCKETS));
    d.cmp("module.secret_file", &o.secret_file, secret_file, Handling::Refused(SECRET));
    d.cmp("module.log_dir", &o.log_dir, log_dir, Handling::Refused(FILES));
    d.cmp("module.run_dir", &o.run_dir, run_dir, Handling::Refused(FILES));
    d.cmp("module.table_file", &o.table_file, table_file, Handling::Refused(FILES));
    d.cmp("module.autostart", &o.autostart, autostart, Handling::Later(AUTOSTART));

    diff_nodes(&mut d, &old.nodes, nodes, me);

    let Heartbeat { port, pulse, dead_after, lease } = heartbeat;
    let o = &old.heartbeat;
    d.cmp("heartbeat.port", &o.port, port, Handling::Refused(PORT));
    d.cmp("heartbeat.pulse", &o.pulse, pulse, Handling::Refused(TIMERS));
    d.cmp("heartbeat.dead_after", &o.dead_after, dead_after, Handling::Refused(TIMERS));
    d.cmp("heartbeat.lease", &o.lease, lease, Handling::Refused(TIMERS));

    let vip_handling = if data_plane { Handling::Refused(VIPS) } else { Handling::Unused };
    for i in 0..old.vips.len().max(vips.len()) {
        let key = format!("vip[{i}]");
        match (old.vips.get(i), vips.get(i)) {
            (Some(a), Some(b)) if a != b => {
                let what = if a.addr == b.addr { format!("{} rules changed", b.addr) } else { format!("{} -> {}", a.addr, b.addr) };
                d.push(&key, what, vip_handling.clone());
            }
            (None, Some(b)) => d.push(&key, format!("{} added", b.addr), vip_handling.clone()),
            (Some(a), None) => d.push(&key, format!("{} removed", a.addr), vip_handling.clone()),
            _ => {}
        }
    }

    let Assignment { mode, failback, takeover, witness, drain_timeout } = assignment;
    let o = &old.assignment;
    d.cmp("assignment.mode", &o.mode, mode, Handling::Refused(ASSIGNMENT));
    d.cmp("assignment.failback", &o.failback, failback, Handling::Refused(ASSIGNMENT));
    d.cmp("assignment.takeover", &o.takeover, takeover, Handling::Refused(ASSIGNMENT));
    d.cmp("assignment.witness", &o.witness, witness, Handling::Refused(ASSIGNMENT));
    d.cmp("assignment.drain_timeout", &o.drain_timeout, drain_timeout, Handling::Refused(AT_START));

    let Dataplane {
        enabled,
        binary,
        uplink,
        local_port,
        tap_name,
        af_xdp_peer,
        tap_addrs,
        workers,
        lcores,
        busy_poll,
        idle_polls_before_sleep,
        max_sleep,
        mempool_size,
        mbuf_cache,
        burst,
        eal_args,
        file_prefix,
        node_mac,
        liveness_timeout,
    } = dataplane;
    let o = &old.dataplane;
    d.cmp("dataplane.enabled", &o.enabled, enabled, Handling::Refused(DP_MODE));
    let h = if data_plane { Handling::Refused(DATAPLANE) } else { Handling::Unused };
    d.cmp("dataplane.binary", &o.binary, binary, h.clone());
    d.cmp("dataplane.uplink", &o.uplink, uplink, h.clone());
    d.cmp("dataplane.local_port", &o.local_port, local_port, h.clone());
    d.cmp("dataplane.tap_name", &o.tap_name, tap_name, h.clone());
    d.cmp("dataplane.af_xdp_peer", &o.af_xdp_peer, af_xdp_peer, h.clone());
    d.cmp("dataplane.tap_addrs", &o.tap_addrs, tap_addrs, h.clone());
    d.cmp("dataplane.workers", &o.workers, workers, h.clone());
    d.cmp("dataplane.lcores", &o.lcores, lcores, h.clone());
    d.cmp("dataplane.busy_poll", &o.busy_poll, busy_poll, h.clone());
    d.cmp("dataplane.idle_polls_before_sleep", &o.idle_polls_before_sleep, idle_polls_before_sleep, h.clone());
    d.cmp("dataplane.max_sleep", &o.max_sleep, max_sleep, h.clone());
    d.cmp("dataplane.mempool_size", &o.mempool_size, mempool_size, h.clone());
    d.cmp("dataplane.mbuf_cache", &o.mbuf_cache, mbuf_cache, h.clone());
    d.cmp("dataplane.burst", &o.burst, burst, h.clone());
    d.cmp("dataplane.eal_args", &o.eal_args, eal_args, h.clone());
    d.cmp("dataplane.file_prefix", &o.file_prefix, file_prefix, h.clone());
    d.cmp("dataplane.node_mac", &o.node_mac, node_mac, h.clone());
    d.cmp("dataplane.liveness_timeout", &o.liveness_timeout, liveness_timeout, h);

    let Scripts { dir, start_both, stop_both, timeout, stop_drain_timeout, env } = scripts;
    let o = &old.scripts;
    d.cmp("scripts.dir", &o.dir, dir, Handling::Refused(SCRIPTS));
    d.cmp("scripts.start_both", &o.start_both, start_both, Handling::Refused(SCRIPTS));
    d.cmp("scripts.stop_both", &o.stop_both, stop_both, Handling::Refused(SCRIPTS));
    d.cmp("scripts.timeout", &o.timeout, timeout, Handling::Refused(SCRIPTS));
    d.cmp("scripts.stop_drain_timeout", &o.stop_drain_timeout, stop_drain_timeout, Handling::Refused(AT_START));
    if o.env != *env {
        d.push("scripts.env", "changed".into(), Handling::Refused(SCRIPTS));
    }

    if old.checkers != *checkers {
        let names = |cs: &[farm_config::Checker]| cs.iter().map(|c| c.name.to_string()).collect::<Vec<_>>();
        let (a, b) = (names(&old.checkers), names(checkers));
        let mut what: Vec<String> = b.iter().filter(|n| !a.contains(n)).map(|n| format!("{n} added")).collect();
        what.extend(a.iter().filter(|n| !b.contains(n)).map(|n| format!("{n} removed")));
        for c in checkers {
            if old.checkers.iter().any(|o| o.name == c.name && o != c) {
                what.push(format!("{} changed", c.name));
            }
        }
        if what.is_empty() {
            what.push("order changed".into());
        }
        d.push("checker", what.join(", "), Handling::Live);
    }

    let Restart { maxloop, loop_interval } = restart;
    d.cmp("restart.maxloop", &old.restart.maxloop, maxloop, Handling::Refused(RESTART));
    d.cmp("restart.loop_interval", &old.restart.loop_interval, loop_interval, Handling::Refused(RESTART));

    let Api { listen, token_file, header_timeout, max_connections, max_connections_per_address } = api;
    let o = &old.api;
    d.cmp("api.listen", &o.listen, listen, Handling::Refused(API));
    d.cmp("api.token_file", &o.token_file, token_file, Handling::Refused(API));
    d.cmp("api.header_timeout", &o.header_timeout, header_timeout, Handling::Refused(API));
    d.cmp("api.max_connections", &o.max_connections, max_connections, Handling::Refused(API));
    d.cmp("api.max_connections_per_address", &o.max_connections_per_address, max_connections_per_address, Handling::Refused(API));
    d
}

/// `[[node]]`: the list itself (names, ids, addresses, priorities) is refused; weights are
/// live for this node and accepted for the others.
fn diff_nodes(d: &mut Diff, old: &[farm_config::Node], new: &[farm_config::Node], me: &str) {
    for i in 0..old.len().max(new.len()) {
        let key = |k: &str| format!("node[{i}]{k}");
        match (old.get(i), new.get(i)) {
            (Some(a), Some(b)) => {
                let farm_config::Node { name, id, addrs, weight, priority } = b;
                d.cmp(&key(".name"), &a.name.to_string(), &name.to_string(), Handling::Refused(NODES));
                d.cmp(&key(".id"), &a.id.get(), &id.get(), Handling::Refused(NODES));
                d.cmp(&key(".addrs"), &a.addrs, addrs, Handling::Refused(NODES));
                d.cmp(&key(".priority"), &a.priority, priority, Handling::Refused(NODES));
                if a.weight != *weight {
                    let h = if a.name == *me && b.name == *me { Handling::Live } else { Handling::Later(PEER_WEIGHT) };
                    d.push(&key(".weight"), format!("{} {} -> {}", b.name, a.weight.get(), weight.get()), h);
                }
            }
            (None, Some(b)) => d.push(&key(""), format!("node {} added", b.name), Handling::Refused(NODES)),
            (Some(a), None) => d.push(&key(""), format!("node {} removed", a.name), Handling::Refused(NODES)),
            (None, None) => {}
        }
    }
}

/// The weight this node runs with after a reload: the file's new weight if the file changed
/// it (a runtime weight from `farmctl weight` / `drain` is then dropped), else the runtime
/// weight if one is set, else the file's. Returns (weight, runtime weight kept).
pub fn weight_after_reload(old_file: u16, new_file: u16, runtime: Option<u16>) -> (u16, Option<u16>) {
    if old_file != new_file {
        (new_file, None)
    } else {
        (runtime.unwrap_or(new_file), runtime)
    }
}

/// What a reload of the running configuration's file finds.
#[derive(Debug)]
pub enum Verdict {
    /// The file does not load or validate (the message names file, key and expectation).
    Invalid(String),
    /// Some changed keys cannot change live (see [`Diff::refused`]).
    Refused(Diff),
    /// The file loads and changes nothing.
    Unchanged,
    /// To apply: the new inputs and what changed (no refused key).
    Apply(Box<Prepared>, Diff),
}

/// Loads the file `running` was loaded from, with the same options and every check of a start
/// ([`Prepared::load`]: syntax, keys, the secret and token files, scripts, checkers), and
/// compares it with `running`. Touches nothing.
pub fn check(running: &Prepared) -> Verdict {
    let new = match Prepared::load(running.opts.clone()) {
        Ok(p) => p,
        Err(e) => return Verdict::Invalid(farm_config::error_line(&e)),
    };
    let data_plane = matches!(running.dataplane, DataplaneMode::Supervised(_));
    let mut d = diff(&running.cfg, &new.cfg, running.node.name.as_str(), data_plane);
    // Same paths, new contents.
    if new.secret != running.secret && d.get("module.secret_file").is_none() {
        d.push("module.secret_file", "its contents changed".into(), Handling::Refused(SECRET));
    }
    if new.api.token != running.api.token && d.get("api.token_file").is_none() {
        d.push("api.token_file", "its contents changed".into(), Handling::Refused(API));
    }
    if d.is_refused() {
        Verdict::Refused(d)
    } else if d.is_empty() {
        Verdict::Unchanged
    } else {
        Verdict::Apply(Box::new(new), d)
    }
}

#[cfg(test)]
mod tests;
