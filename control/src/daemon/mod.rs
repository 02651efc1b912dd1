//! farmd, the control daemon: wires the pure state machines ([`crate::membership`],
//! [`crate::lifecycle`]) to the world: heartbeat sockets, the shared-memory table, the data
//! plane process, the HTTP API, signals.
//!
//! # The loop
//! One thread runs a [`mio::Poll`] loop over the heartbeat sockets (one per heartbeat LAN,
//! [`net`]), a signal pipe and a waker ([`wakeups`]: API commands, script and checker results).
//! Its timeout is the next membership deadline ([`crate::membership::Node::next_deadline`]),
//! at most one pulse away. Every iteration feeds the received datagrams to the membership
//! state machine, handles commands and lifecycle notices, and carries out the membership's
//! actions: heartbeats to every peer on every LAN, tables to publish. Once per pulse it also
//! checks the data plane and refreshes the API's status.
//!
//! # Behaviour
//! - **Start-up**: the module stays in STOP until `farmctl start` (or `farmd --start`, or
//!   `[module] autostart = true`); farmd itself (heartbeats, API, data plane) runs from the start, so a stopped node is visible to
//!   its peers and reachable.
//! - **Membership state**: UP only while the lifecycle is UP *and* the data plane is ready
//!   (attached and stamping for at least `dead_after`, so that it heard its peers before it
//!   takes buckets, and its TAP configured with `tap_addrs`); otherwise the lifecycle's state,
//!   with UP shown as WAIT (`waiting_on` lists `dataplane`). Only UP owns buckets.
//! - **Leave** (stop, restart, checker in WAIT): the node advertises its new state and hands
//!   its buckets over without a gap (it releases them once the live peers are ready to take
//!   them, [`crate::membership`]); they drain (its data plane keeps the flows it holds, for as
//!   long as they live). It reports `left` to the lifecycle once nothing is owned and the live
//!   peers' views exclude it (or after `3 x dead_after`). A stop then runs `stop_both`
//!   (graceful) while the connections drain, reaches STOP once none is left (or after
//!   `[scripts] stop_drain_timeout`), running `stop_both force` only if needed.
//! - **Data plane** ([`supervisor`]): started at start-up and kept running in every state,
//!   module restarts included (its TAP carries the node address: heartbeats flow in STOP and
//!   WAIT); restarted per
//!   the `[restart]` policy when it dies or its liveness stamp is older than
//!   `dataplane.liveness_timeout`; when the policy gives up the module stops (an
//!   administrator's start resets the policy and starts the data plane again). A table publication that finds a reader lcore stuck on an old
//!   generation for [`PUBLISH_TIMEOUT`] kills it as wedged. After every death farmd marks the
//!   table's readers offline. While it is not ready the node leaves the farm (see above) and
//!   feeds no flow to the drains (the flows died with it).
//! - **TAP addresses** ([`tap`]): a new data plane creates its TAP without addresses; each time
//!   it becomes ready farmd puts `[dataplane] tap_addrs` on it and sets it up (`ip`, never
//!   waited for; retried every pulse until it succeeds, failures in the module log).
//! - **Control-only** (`dataplane.enabled = false`): no data plane, no table file. With
//!   `--table-only` farmd never runs the data plane but writes the table file (tests and tools:
//!   several farmd on one machine without DPDK).
//! - **SIGTERM / SIGINT**: graceful stop (leave, `stop_both`, `stop_both force`), then the
//!   data plane is stopped and farmd exits 0. A second signal exits at once (status 1).
//! - **SIGHUP, `farmctl reload`**: the configuration file is re-read and checked as at start;
//!   a broken file, or one that changes keys that cannot change live, changes nothing and is
//!   logged with the reasons; otherwise this node's weight and the checkers are applied
//!   ([`reload`], `live.rs`). `farmctl weight`, `drain`, `undrain` set the weight at once.

mod incarnation;
mod lease;
mod live;
mod net;
mod reload;
mod run;
mod settings;
mod status;
pub mod supervisor;
pub mod tap;
mod wakeups;
mod witness;

use std::time::{Duration, Instant};

use crossbeam::channel::Receiver;
use farm_table::{BucketEntry, DataplaneStatus, TableWriter};

pub use settings::{membership_config, DataplaneMode, Options, Prepared};

use crate::api::{AdminRequest, ApiServer, CommandRequest, SharedStatus};
use crate::checkers::SharedDataplane;
use crate::lifecycle::driver::ModuleRuntime;
use crate::logs::Logs;
use crate::membership;

/// Longest wait of a table publication for the data plane's readers.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_millis(50);

/// Why farmd could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration, or a file it names.
    #[error(transparent)]
    Config(#[from] farm_config::ConfigError),
    /// The membership configuration.
    #[error("membership: {0}")]
    Membership(#[from] membership::NodeError),
    /// A checker cannot be built.
    #[error(transparent)]
    Checkers(#[from] crate::checkers::CheckerError),
    /// The HTTP API.
    #[error(transparent)]
    Api(#[from] crate::api::ApiError),
    /// The log files.
    #[error(transparent)]
    Logs(#[from] crate::logs::LogError),
    /// The table file.
    #[error(transparent)]
    Table(#[from] farm_table::TableError),
    /// A socket, the poll, a thread, a directory.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A second SIGTERM/SIGINT during the graceful stop.
    #[error("second termination signal: exited without completing the graceful stop")]
    Interrupted,
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DaemonError {
    let what = what.into();
    move |source| DaemonError::Io { what, source }
}

/// Heartbeat counters.
#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    /// Valid heartbeats received.
    rx: u64,
    net: net::NetCounters,
    /// Times farmd stopped renewing the data plane's lease (unpublished table, no quorum).
    lease_held_back: u64,
}

/// The running daemon.
pub struct Daemon {
    p: Prepared,
    poll: mio::Poll,
    sockets: Vec<net::LanSocket>,
    rx_pending: bool,
    /// Peer addresses per LAN, by node id.
    peer_addrs: Vec<Vec<std::net::SocketAddr>>,
    node: membership::Node,
    /// Origin of the membership clock.
    t0: Instant,
    rt: ModuleRuntime,
    logs: Logs,
    dp_view: SharedDataplane,
    last_snap: Option<DataplaneStatus>,
    table: Option<TableWriter>,
    pending_publish: Option<(Vec<BucketEntry>, u64)>,
    /// The data plane's lease, renewed every iteration (see [`lease`]).
    lease: lease::Lease,
    sup: Option<supervisor::Supervisor>,
    /// Puts `tap_addrs` on the TAP after each data-plane start.
    tap: Option<tap::TapSetup>,
    /// Zero flows were fed to the membership (no data plane, or it is not ready).
    zero_flows_fed: bool,
    status: SharedStatus,
    api: Option<ApiServer>,
    cmds: Receiver<CommandRequest>,
    /// Live changes from the API (weight, drain, undrain, reload).
    admin_rx: Receiver<AdminRequest>,
    /// Runtime weight, reload reports, weights last logged.
    live: live::Live,
    bridge: Option<wakeups::Bridge>,
    signals: wakeups::Signals,
    witness: Option<witness::Witness>,
    /// The lifecycle said Join (and not Leave since).
    joined: bool,
    /// The lifecycle is UP but the data plane holds the node out (logged on change).
    dp_held: bool,
    /// The lifecycle said Leave and waits for `left`.
    leaving_since: Option<Instant>,
    /// While leaving: when the node was first seen owning nothing with its release published.
    released_at: Option<Instant>,
    counters: Counters,
    /// SIGTERM/SIGINT received.
    term_signals: u32,
    next_housekeeping: Instant,
    status_generation: u64,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon").field("node", &self.p.node.name).field("state", &self.rt.state()).finish_non_exhaustive()
    }
}

/// Runs farmd until it is told to exit: loads and checks the configuration (touching nothing
/// on error), starts, then loops.
pub fn run(opts: Options) -> Result<(), DaemonError> {
    let prepared = Prepared::load(opts)?;
    let mut d = Daemon::start(prepared)?;
    d.run()
}
