//! The single-table sections: `[module]`, `[heartbeat]`, `[assignment]`, `[dataplane]`,
//! `[scripts]`, `[restart]`, `[api]`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::seed::HashSeedFrom;
use crate::tap::TapAddr;
use crate::types::Buckets;
use crate::types::{duration, HashSeed, IfName, MacAddr, ModuleName, Uplink};

/// `[module]` as written in the file (defaults that depend on the name are filled in later).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ModuleSpec {
    pub name: ModuleName,
    pub cluster_id: u32,
    pub hash_seed: Option<HashSeed>,
    #[serde(default)]
    pub buckets: Buckets,
    pub secret_file: PathBuf,
    pub log_dir: Option<PathBuf>,
    pub run_dir: Option<PathBuf>,
    pub table_file: Option<PathBuf>,
    #[serde(default)]
    pub autostart: bool,
}

/// `[module]`: identity of the farm and where its files live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    /// Module name (`[a-z0-9_-]`).
    pub name: ModuleName,
    /// Cluster id carried in every heartbeat; two farms on one LAN need different ids.
    pub cluster_id: u32,
    /// Seed of the client hash: written in the file, or else derived from the secret file by
    /// [`Config::load`](crate::Config::load) (see [`Module::hash_seed_from`] and
    /// [`Config::hash_key`](crate::Config::hash_key)).
    pub hash_seed: u64,
    /// Where `hash_seed` came from; with [`HashSeedFrom::Unresolved`] it is meaningless.
    pub hash_seed_from: HashSeedFrom,
    /// Number of buckets (power of two, 256..=65536, default 4096).
    pub buckets: Buckets,
    /// File holding the heartbeat HMAC secret; must be mode 0600 (checked by
    /// [`Config::check_runtime`](crate::Config::check_runtime)).
    pub secret_file: PathBuf,
    /// Log directory (default `/var/log/farm/<module>`).
    pub log_dir: PathBuf,
    /// Runtime directory: pid files, sockets (default `/run/farm/<module>`).
    pub run_dir: PathBuf,
    /// Shared-memory table file (default `/dev/shm/farm-<module>`).
    pub table_file: PathBuf,
    /// Start the module when farmd starts, like `farmd --start` (SafeKit's boot start;
    /// default false: the module stays in STOP until `farmctl start`).
    pub autostart: bool,
}

impl ModuleSpec {
    pub(crate) fn resolve(self) -> Module {
        let n = self.name.as_str().to_string();
        Module {
            // Never derived from `cluster_id` (public): without a seed in the file,
            // `Config::load` derives it from the secret file.
            hash_seed: self.hash_seed.map_or(0, |s| s.0),
            hash_seed_from: if self.hash_seed.is_some() {
                HashSeedFrom::Config
            } else {
                HashSeedFrom::Unresolved
            },
            log_dir: self
                .log_dir
                .unwrap_or_else(|| PathBuf::from(format!("/var/log/farm/{n}"))),
            run_dir: self
                .run_dir
                .unwrap_or_else(|| PathBuf::from(format!("/run/farm/{n}"))),
            table_file: self
                .table_file
                .unwrap_or_else(|| PathBuf::from(format!("/dev/shm/farm-{n}"))),
            name: self.name,
            cluster_id: self.cluster_id,
            buckets: self.buckets,
            secret_file: self.secret_file,
            autostart: self.autostart,
        }
    }
}

/// `[heartbeat]`: UDP heartbeats between the nodes.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Heartbeat {
    /// UDP port on every heartbeat LAN (default 4790).
    pub port: u16,
    /// Interval between heartbeats (default 100ms).
    #[serde(with = "duration")]
    pub pulse: Duration,
    /// A peer with no valid heartbeat for this long is dead (default 1s, at least 3 × pulse).
    #[serde(with = "duration")]
    pub dead_after: Duration,
    /// The data plane's lease (DESIGN.md I1): how long after farmd's last renewal the data
    /// plane keeps accepting new flows. `None` = [`Heartbeat::default_lease`]; at most
    /// `dead_after - pulse`, so a stalled node lets go before its peers take over.
    #[serde(deserialize_with = "opt_duration")]
    pub lease: Option<Duration>,
}

fn opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration::deserialize(d).map(Some)
}

impl Heartbeat {
    /// `dead_after - 2 × pulse` (800ms at the default timers): two pulses of margin before the
    /// earliest takeover by a peer (`dead_after` after the last heartbeat it heard).
    pub fn default_lease(&self) -> Duration {
        self.dead_after.saturating_sub(self.pulse * 2).max(self.pulse)
    }

    /// The lease in force: `lease`, or [`Heartbeat::default_lease`].
    pub fn lease(&self) -> Duration {
        self.lease.unwrap_or_else(|| self.default_lease())
    }
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            port: 4790,
            pulse: Duration::from_millis(100),
            dead_after: Duration::from_secs(1),
            lease: None,
        }
    }
}

/// How buckets are assigned to live nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Weighted rendezvous hashing over all live UP nodes (load balancing).
    #[default]
    Farm,
    /// Active/passive: the live UP node with the best (lowest) priority owns every bucket.
    Failover,
}

/// What a node does with the buckets of peers it cannot hear.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Takeover {
    /// Always take over (SafeKit farm behaviour; both sides serve during a partition).
    #[default]
    Always,
    /// Only while the node sees a strict majority of the nodes (the witness counts as a vote).
    Majority,
}

/// `[assignment]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Assignment {
    /// `farm` (default) or `failover`.
    pub mode: Mode,
    /// Failover mode: when a better-priority node comes back, it takes the buckets back (default true).
    pub failback: bool,
    /// `always` (default) or `majority`.
    pub takeover: Takeover,
    /// Address pinged as a tie-breaker vote with `takeover = "majority"` (needed with 2 nodes).
    #[serde(deserialize_with = "crate::types::ip::opt")]
    pub witness: Option<IpAddr>,
    /// Safety valve: the longest a released bucket keeps its flows on this node (`None`, the
    /// default `"off"`: as long as they live).
    #[serde(deserialize_with = "crate::types::duration::opt")]
    pub drain_timeout: Option<Duration>,
}

impl Default for Assignment {
    fn default() -> Self {
        Assignment {
            mode: Mode::Farm,
            failback: true,
            takeover: Takeover::Always,
            witness: None,
            drain_timeout: None,
        }
    }
}

/// The data plane's port to the kernel (configs/README.md says when to choose which).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LocalPort {
    /// DPDK `net_tap`: one syscall and one signal per packet.
    Tap,
    /// DPDK `virtio_user` on vhost-net (needs `/dev/vhost-net`).
    VirtioUser,
    /// DPDK `net_af_xdp` on a veth pair (default): `tap_name` is the kernel end, `af_xdp_peer`
    /// the end the data plane drives; batched rings, no signal.
    #[default]
    AfXdp,
}

impl LocalPort {
    /// The value as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            LocalPort::Tap => "tap",
            LocalPort::VirtioUser => "virtio_user",
            LocalPort::AfXdp => "af_xdp",
        }
    }
}

/// `[dataplane]`: the DPDK process (`farm-dataplane`) that farmd supervises.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dataplane {
    /// `false`: control-only mode (no data plane, e.g. behind a cloud load balancer). Default true.
    pub enabled: bool,
    /// Program farmd starts (default `farm-dataplane`, looked up in `PATH`).
    pub binary: PathBuf,
    /// The DPDK device on the wire; required (so always `Some`) when `enabled`.
    pub uplink: Option<Uplink>,
    /// `af_xdp` (default), `tap` or `virtio_user`.
    pub local_port: LocalPort,
    /// Kernel interface name of the local port (default `farm0`).
    pub tap_name: IfName,
    /// `local_port = "af_xdp"`: the veth end the data plane drives (default
    /// [`Dataplane::xdp_peer`]: `tap_name` + `-dp`).
    pub af_xdp_peer: Option<IfName>,
    /// Addresses farmd puts on `tap_name` (and sets it up) each time the data plane becomes
    /// ready (default none: farmd leaves the interface alone). See [`TapAddr`].
    pub tap_addrs: Vec<TapAddr>,
    /// Number of worker lcores (default 1).
    pub workers: u32,
    /// CPUs of the worker lcores, one per worker (default: chosen by the data plane).
    pub lcores: Option<Vec<u32>>,
    /// Never sleep when idle (default false: back off after `idle_polls_before_sleep` empty polls).
    pub busy_poll: bool,
    /// Empty polls before an idle worker starts sleeping (default 256).
    pub idle_polls_before_sleep: u32,
    /// Longest idle sleep (default 1ms).
    #[serde(with = "duration")]
    pub max_sleep: Duration,
    /// Mbufs in the packet pool (default 8191).
    pub mempool_size: u32,
    /// Per-lcore mempool cache (default 256, at most 512 and at most mempool_size / 1.5).
    pub mbuf_cache: u32,
    /// Packets per rx/tx burst (default 32, 1..=512).
    pub burst: u16,
    /// Extra EAL arguments, appended last.
    pub eal_args: Vec<String>,
    /// EAL `--file-prefix` (default `farm-<module>`).
    #[serde(deserialize_with = "crate::types::de_non_empty")]
    pub file_prefix: String,
    /// MAC address for the node (uplink and TAP) instead of the uplink's own.
    pub node_mac: Option<MacAddr>,
    /// farmd declares the data plane dead when its liveness stamp is older (default 500ms).
    #[serde(with = "duration")]
    pub liveness_timeout: Duration,
}

impl Dataplane {
    /// The veth end the data plane drives with `local_port = "af_xdp"`: `af_xdp_peer`, else
    /// `tap_name` + `-dp` (`None` when that is longer than an interface name may be).
    pub fn xdp_peer(&self) -> Option<String> {
        match &self.af_xdp_peer {
            Some(p) => Some(p.as_str().to_owned()),
            None => Some(format!("{}-dp", self.tap_name.as_str())).filter(|p| p.len() <= 15),
        }
    }
}

impl Default for Dataplane {
    fn default() -> Self {
        Dataplane {
            enabled: true,
            binary: PathBuf::from("farm-dataplane"),
            uplink: None,
            local_port: LocalPort::AfXdp,
            tap_name: IfName::default(),
            af_xdp_peer: None,
            tap_addrs: Vec::new(),
            workers: 1,
            lcores: None,
            busy_poll: false,
            idle_polls_before_sleep: 256,
            max_sleep: Duration::from_millis(1),
            mempool_size: 8191,
            mbuf_cache: 256,
            burst: 32,
            eal_args: Vec::new(),
            file_prefix: String::new(),
            node_mac: None,
            liveness_timeout: Duration::from_millis(500),
        }
    }
}

/// `[scripts]`: the application's start/stop scripts.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scripts {
    /// Directory for relative script paths (here and in `custom` checkers).
    pub dir: Option<PathBuf>,
    /// Started when the module starts, before the node joins the farm (resolved against `dir`).
    pub start_both: Option<PathBuf>,
    /// Run when the module stops (`stop_both`, then `stop_both force`).
    pub stop_both: Option<PathBuf>,
    /// Time limit of each script run (default 300s).
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// How long a stop waits for the node's connections to end before `stop_both force`
    /// (default 30s); also bounds the graceful `stop_both` run.
    #[serde(with = "duration")]
    pub stop_drain_timeout: Duration,
    /// Extra environment variables for scripts and custom checkers.
    pub env: BTreeMap<String, String>,
}

impl Default for Scripts {
    fn default() -> Self {
        Scripts {
            dir: None,
            start_both: None,
            stop_both: None,
            timeout: Duration::from_secs(300),
            stop_drain_timeout: Duration::from_secs(30),
            env: BTreeMap::new(),
        }
    }
}

/// `[restart]`: how often checkers may restart the module.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Restart {
    /// Restarts allowed within `loop_interval`; one more failure stops the module (default 3).
    pub maxloop: u32,
    /// Window of the restart count (default 24h).
    #[serde(with = "duration")]
    pub loop_interval: Duration,
}

impl Default for Restart {
    fn default() -> Self {
        Restart {
            maxloop: 3,
            loop_interval: Duration::from_secs(24 * 3600),
        }
    }
}

/// `[api]`: farmd's HTTP API (state, health URL, commands).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Api {
    /// Listen address (default `0.0.0.0:9010`).
    #[serde(deserialize_with = "crate::types::ip::socket")]
    pub listen: SocketAddr,
    /// File holding the bearer token for POST endpoints over TCP; without it POST over TCP is
    /// refused (the root-only Unix socket in `run_dir` needs no token).
    pub token_file: Option<PathBuf>,
    /// Time a client has, from its connection, to send a complete request head (default 2s);
    /// then the connection is closed.
    #[serde(deserialize_with = "positive_duration")]
    pub header_timeout: Duration,
    /// TCP connections served at once (default 1024); past it a new connection takes the
    /// place of the oldest idle one.
    pub max_connections: std::num::NonZeroU32,
    /// TCP connections served at once from one client address (default 16); past it a new
    /// connection takes the place of that address's oldest idle one.
    pub max_connections_per_address: std::num::NonZeroU32,
}

fn positive_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let v = duration::deserialize(d)?;
    if v.is_zero() {
        return Err(serde::de::Error::custom("expected a duration above zero"));
    }
    Ok(v)
}

impl Default for Api {
    fn default() -> Self {
        Api {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 9010),
            token_file: None,
            header_timeout: Duration::from_secs(2),
            max_connections: std::num::NonZeroU32::new(1024).unwrap_or(std::num::NonZeroU32::MIN),
            max_connections_per_address: std::num::NonZeroU32::new(16).unwrap_or(std::num::NonZeroU32::MIN),
        }
    }
}
