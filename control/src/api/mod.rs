//! farmd's HTTP API (default port 9010), served by hyper on a current-thread tokio runtime in
//! one dedicated thread, with bounded sizes, times and connections ([`http`], `conns`), on
//! `[api] listen` and on the Unix socket `<[module] run_dir>/farmd.sock` (mode 0600; only root
//! or farmd's own user may connect, checked with `SO_PEERCRED`).
//!
//! | method | path | answer |
//! | --- | --- | --- |
//! | GET, HEAD | `/var/modules/<module>/ready.txt` | 200 `OK` when UP with a weight above 0; 404 (body: the state) otherwise |
//! | GET | `/api/v1/status` | [`Status`] as JSON |
//! | GET | `/api/v1/buckets/<n>` | [`BucketOwner`] as JSON |
//! | GET | `/api/v1/buckets` | every bucket's owner ([`console::BucketTable`]) |
//! | GET | `/api/v1/logs/module`, `/api/v1/logs/application` | the end of a log ([`console::LogTail`]) |
//! | GET, HEAD | `/`, `/console/...` | the web console ([`console`]): a page, a style sheet, a script |
//! | GET | `/metrics` | Prometheus text format ([`metrics::render`]) |
//! | POST | `/api/v1/start`, `/api/v1/stop`, `/api/v1/restart` | 202; over TCP needs `Authorization: Bearer <token>`, over the Unix socket nothing |
//! | POST | `/api/v1/weight` (body `{"weight": 0..1000}`), `/api/v1/drain`, `/api/v1/undrain`, `/api/v1/reload` | 202, same authorization; outcome in the status's `live` |
//!
//! POST bodies are optional; when present they are a JSON object `{"reason": "..."}`. Errors are
//! JSON `{"error": "..."}`: 400 bad body, 401 missing or wrong token, 403 no token configured
//! (`[api] token_file`), 404 unknown path, 405 wrong method, 408 body too slow, 413 body too
//! large, 501 chunked body, 503 farmd is shutting down or its command queue is full. A malformed
//! request head gets 400 and a too large one 431, with an empty body (hyper answers those); a
//! head not received within `[api] header_timeout` of the accept closes the connection, and
//! floods of idle or slow connections give way to new ones (see [`http`]). Commands reach
//! farmd's loop as [`CommandRequest`]s on a channel; the API reads the [`Status`] that the loop
//! publishes in a [`SharedStatus`].

pub mod client;
mod conns;
pub mod console;
pub mod http;
mod linger;
mod listen;
pub mod metrics;
pub mod server;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

pub use client::{ApiClient, ClientError};
pub use server::{AdminOp, AdminRequest, AdminSink, ApiError, ApiServer, ApiSettings, CommandRequest, Routes, MAX_WEIGHT};

use crate::lifecycle::{Command, State};

/// One checker, as shown by the API.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckerStatus {
    /// Name.
    pub name: String,
    /// `kind` (process, tcp, http, custom, interface, ping, dataplane).
    pub kind: String,
    /// `restart`, `stopstart` or `wait`.
    pub action: String,
    /// Current verdict.
    pub healthy: bool,
    /// Consecutive failed runs.
    pub consecutive_failures: u32,
    /// Consecutive successful runs.
    pub consecutive_successes: u32,
    /// Result of the last run.
    pub last_ok: Option<bool>,
    /// Detail of the last run.
    pub last_detail: Option<String>,
    /// When the last run finished (Unix ms).
    pub last_run_unix_ms: Option<u64>,
    /// Runs since farmd started.
    pub runs: u64,
    /// Times the verdict went to failed.
    pub failures: u64,
}

/// The restart policy's count.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartStatus {
    /// Automatic restarts in the current window.
    pub count: u32,
    /// Allowed in the window.
    pub maxloop: u32,
    /// The window, in seconds.
    pub loop_interval_secs: u64,
}

/// A farm member as this node sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Node id.
    pub id: u8,
    /// Node name.
    pub name: String,
    /// This node.
    pub is_self: bool,
    /// Heard from recently (or this node).
    pub live: bool,
    /// The state it advertises (`None`: never heard).
    pub state: Option<State>,
    /// Its weight.
    pub weight: u16,
    /// Buckets it owns in this node's table.
    pub buckets: u32,
    /// Milliseconds since its last valid heartbeat.
    pub last_heard_ms_ago: Option<u64>,
    /// Its web console (`http://<address>:<port>/`, from its first address and `[api]
    /// listen`; `None` when the API listens on loopback only, for the peers).
    #[serde(default)]
    pub console_url: Option<String>,
}

/// Heartbeat counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatStats {
    /// Valid heartbeats received.
    pub rx: u64,
    /// Heartbeats sent.
    pub tx: u64,
    /// Heartbeats rejected, by reason (e.g. `bad_mac`, `replay`, `wrong_cluster`).
    pub rejected: BTreeMap<String, u64>,
}

/// The data plane's region of the table, summarised.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataplaneSummary {
    /// Its pid (0 = not attached).
    pub pid: u32,
    /// Uplink link state.
    pub link_up: bool,
    /// Uplink speed.
    pub link_speed_mbps: u32,
    /// Age of the newest liveness stamp, in ms.
    pub liveness_age_ms: Option<u64>,
    /// Lcores online (not sleeping).
    pub lcores_online: u32,
    /// Lcores.
    pub lcores: u32,
    /// Every counter ([`farm_table::Counter::name`]) summed over lcores.
    pub counters: BTreeMap<String, u64>,
    /// Time left on the lease farmd gave the data plane, in ms (0: fenced, no new flows).
    #[serde(default)]
    pub lease_left_ms: u64,
    /// Times farmd stopped renewing the lease (a table not yet published, no quorum).
    #[serde(default)]
    pub lease_held_back: u64,
    /// Per lcore: TSC cycles spent in polls that received frames (`busy_cycles`).
    #[serde(default)]
    pub busy_cycles: Vec<u64>,
    /// Per lcore: polls that received frames (`busy_polls`).
    #[serde(default)]
    pub busy_polls: Vec<u64>,
    /// TSC ticks per second of the data plane's workers (0 = not reported): busy cycles / Hz =
    /// busy seconds.
    #[serde(default)]
    pub tsc_hz: u64,
    /// Connections to a VIP that this node's kernel holds, as the data plane last counted them
    /// (0 without flow tracking).
    #[serde(default)]
    pub flows: u64,
}

impl DataplaneSummary {
    /// Summarises a snapshot taken at `now_ns` (`CLOCK_MONOTONIC`).
    pub fn from_table(s: &farm_table::DataplaneStatus, now_ns: u64) -> DataplaneSummary {
        DataplaneSummary {
            pid: s.pid,
            link_up: s.link_up,
            link_speed_mbps: s.link_speed_mbps,
            liveness_age_ms: crate::checkers::dataplane::stamp_age(s.liveness_ns, now_ns).map(|d| d.as_millis() as u64),
            lcores_online: s.lcores.iter().filter(|l| l.online).count() as u32,
            lcores: s.lcores.len() as u32,
            counters: farm_table::Counter::ALL.iter().map(|&c| (c.name().to_string(), s.total(c))).collect(),
            lease_left_ms: s.lease_until_ns.saturating_sub(now_ns) / 1_000_000,
            lease_held_back: 0,
            busy_cycles: s.lcores.iter().map(|l| l.counters[farm_table::Counter::BusyCycles as usize]).collect(),
            busy_polls: s.lcores.iter().map(|l| l.counters[farm_table::Counter::BusyPolls as usize]).collect(),
            tsc_hz: s.tsc_hz,
            flows: s.flows_per_bucket.iter().map(|&f| u64::from(f)).sum(),
        }
    }
}

/// Everything `GET /api/v1/status` shows. farmd fills it; the lifecycle part comes from
/// [`crate::lifecycle::driver::ModuleRuntime::fill_status`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Module name.
    pub module: String,
    /// This node's name.
    pub node: String,
    /// This node's id.
    pub node_id: u8,
    /// Lifecycle state.
    pub state: State,
    /// Since when (Unix ms).
    pub state_since_unix_ms: u64,
    /// A command queued behind a transient state.
    pub pending_command: Option<Command>,
    /// Checkers with action `wait` holding the node in WAIT.
    pub waiting_on: Vec<String>,
    /// The configured nodes.
    pub members: Vec<MemberStatus>,
    /// Ids of the members in this node's view (live and UP).
    pub view: Vec<u8>,
    /// Generation of the table last published.
    pub table_generation: u64,
    /// Bucket count.
    pub buckets_total: u32,
    /// Buckets this node owns.
    pub buckets_owned: u32,
    /// Buckets released but still draining here (the node keeps the flows it holds in them).
    #[serde(default)]
    pub buckets_draining: u32,
    /// Drains ended by `[assignment] drain_timeout` with flows left (buckets, since farmd
    /// started).
    #[serde(default)]
    pub drains_expired: u64,
    /// Checkers.
    pub checkers: Vec<CheckerStatus>,
    /// Restart policy count.
    pub restarts: RestartStatus,
    /// Heartbeat counters.
    pub heartbeat: HeartbeatStats,
    /// The data plane (`None` in control-only mode or before it attaches).
    pub dataplane: Option<DataplaneSummary>,
    /// This node's weight and the last configuration reload (`None`: not reported).
    #[serde(default)]
    pub live: Option<LiveStatus>,
    /// The published table, per bucket (not serialized in the status; see
    /// `GET /api/v1/buckets/<n>`).
    #[serde(skip)]
    pub table: Vec<farm_table::BucketEntry>,
}

impl Status {
    /// The static part from the configuration: module, this node, bucket count, the members
    /// (names, ids, weights; not yet heard from).
    pub fn from_config(cfg: &farm_config::Config, node: &farm_config::Node) -> Status {
        Status {
            module: cfg.module.name.to_string(),
            node: node.name.to_string(),
            node_id: node.id.get(),
            buckets_total: cfg.buckets(),
            members: cfg
                .nodes
                .iter()
                .map(|n| MemberStatus {
                    id: n.id.get(),
                    name: n.name.to_string(),
                    is_self: n.id == node.id,
                    weight: n.weight.get(),
                    console_url: console_url(cfg.api.listen, n, n.id == node.id),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    /// The name of member `id`, if configured.
    pub fn member_name(&self, id: u8) -> Option<&str> {
        self.members.iter().find(|m| m.id == id).map(|m| m.name.as_str())
    }

    /// Who owns `bucket` in the published table.
    pub fn bucket_owner(&self, bucket: u32) -> Option<BucketOwner> {
        let e = self.table.get(bucket as usize)?;
        let id = |n: u8| (n != farm_table::NO_NODE).then_some(n);
        Some(BucketOwner {
            bucket,
            owner: id(e.owner),
            owner_name: id(e.owner).and_then(|n| self.member_name(n)).map(str::to_string),
            prev_owner: id(e.prev_owner),
            table_generation: self.table_generation,
        })
    }
}

/// The web console of `node` when the API listens on `listen` (the same `[api]` on every
/// node): at its first address, or at `listen` itself for this node when that is a specific
/// address; `None` for a peer when the API listens on loopback only.
fn console_url(listen: std::net::SocketAddr, node: &farm_config::Node, is_self: bool) -> Option<String> {
    let ip = listen.ip();
    let addr = if ip.is_loopback() {
        is_self.then_some(ip)?
    } else if ip.is_unspecified() || !is_self {
        *node.addrs.first()?
    } else {
        ip
    };
    Some(format!("http://{}/", std::net::SocketAddr::new(addr, listen.port())))
}

/// This node's weight and the last configuration reload (`farmctl weight`, `drain`,
/// `undrain`, `reload`, SIGHUP).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveStatus {
    /// The weight this node runs with (0: drained).
    pub weight: u16,
    /// Its `[[node]] weight` in the configuration file.
    pub config_weight: u16,
    /// The weight set by `farmctl weight` or `drain`, in force until `undrain` or until a
    /// reload finds the file's weight changed (`None`: the file's).
    pub runtime_weight: Option<u16>,
    /// The last reload, if any.
    pub last_reload: Option<ReloadReport>,
}

/// What a configuration reload did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// Reloads since farmd started (1 for the first).
    pub seq: u64,
    /// When (Unix ms).
    pub unix_ms: u64,
    /// What asked for it (`SIGHUP`, `farmctl reload` over the Unix socket or from an address).
    pub trigger: String,
    /// `applied`, `unchanged`, `refused` (keys that cannot change live) or `invalid` (the file
    /// does not load).
    pub outcome: String,
    /// The changes applied or accepted, one line each.
    pub changes: Vec<String>,
    /// Why nothing changed: the refused keys with their reasons, or the file's errors.
    pub problems: Vec<String>,
}

/// `GET /api/v1/buckets/<n>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketOwner {
    /// The bucket.
    pub bucket: u32,
    /// Its owner's id (`None`: unowned).
    pub owner: Option<u8>,
    /// Its owner's name.
    pub owner_name: Option<String>,
    /// Previous owner while a handover is in progress.
    pub prev_owner: Option<u8>,
    /// Generation of the table.
    pub table_generation: u64,
}

/// The status shared between farmd's loop (writer) and the API threads (readers).
pub type SharedStatus = Arc<RwLock<Status>>;

/// A new shared status.
pub fn shared_status(st: Status) -> SharedStatus {
    Arc::new(RwLock::new(st))
}
