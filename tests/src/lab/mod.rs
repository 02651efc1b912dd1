//! The network-namespace lab: N farm nodes and a client on one Linux machine, built from
//! nothing and torn down without a trace (DESIGN.md, "Lab").
//!
//! ```text
//!   namespace <p>-cl                       bridge <p>br0 (no address, never on a real NIC)
//!   eth0: 198.18.1.1/16 + 198.18.1.2..   ──┬── <p>-cl
//!         198.18.2.254 as /32               ├── <p>-n1 ── namespace <p>-n1: dp0 ─ farm-dataplane ─ farm0 (198.18.0.1/16), lo: VIP 198.18.0.100/32
//!                                           ├── <p>-n2 ── namespace <p>-n2: ...                                         farmd, apache2
//!                                           └── <p>-nN
//! ```
//!
//! [`Lab::up`] checks everything it can before creating anything (root, programs, options,
//! name clashes), then builds; any error or interruption tears down what was built. Dropping a
//! [`Lab`] tears it down; [`down`] does the same from the names on the machine, so it also
//! cleans up after a killed `farm-lab up`. See [`layout`] for every name and address.

mod apache;
pub mod capture;
pub mod changes;
pub mod client;
mod cmd;
mod down;
mod error;
mod farm;
mod faults;
mod flood;
pub mod layout;
pub mod longlived;
pub mod matrix;
mod net;
mod ops;
pub mod probes;
mod procs;
mod scenario;
mod shares;
mod state;
mod static_table;
mod up;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Output};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

pub use apache::{Httpd, BIG_FILE_SIZE, HTTP_PORTS};
pub use capture::{Capture, CaptureReport};
pub use down::{down, leftovers, status, DownReport, NodeStatus, StatusReport};
pub use error::LabError;
pub use farm::{
    render_config, render_config_with, DataplaneChoice, FarmFiles, LabUplink, DATAPLANE, FARMCTL, FARMD, LAB_TEMPLATE,
    ON_PORT_TCP,
};
pub use faults::{Direction, Starve};
pub use flood::FloodReport;
pub use layout::Layout;
pub use net::uplink_filter;
pub use ops::{Assignment, Health};
pub use scenario::{FailoverReport, RejoinReport};
pub use shares::{describe_moves, max_deviation, moves, Spread};
pub use state::{Mode, State};

/// How to build a lab.
#[derive(Clone, Debug)]
pub struct LabOptions {
    /// Prefix of every name (bridge `<prefix>br0`, namespaces `<prefix>-n1`, ...); distinct
    /// prefixes let labs run side by side.
    pub prefix: String,
    /// Number of nodes, 1..=32.
    pub nodes: usize,
    /// Number of client addresses, 1..=4064.
    pub clients: usize,
    /// Farm or direct.
    pub mode: Mode,
    /// Where `farmd` and `farm-dataplane` are (farm mode).
    pub bin_dir: PathBuf,
    /// The Apache program (looked up in PATH, /usr/sbin, /sbin unless it contains a `/`).
    pub apache: String,
    /// The farm configuration template (default: the built-in copy of `configs/lab.toml`).
    pub template: Option<PathBuf>,
    /// The nodes' uplink driver and local port, over the template's (default: the template's).
    pub dataplane: DataplaneChoice,
    /// Size of `/big.bin`.
    pub big_file_size: u64,
    /// How long farm mode waits for every node to be UP.
    pub ready_timeout: Duration,
    /// Set by a signal handler: `up` stops at the next step and tears down.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Pause between build steps (tests use it to interrupt `up` half-way).
    pub step_delay: Duration,
    /// Leave what was built when `up` fails (for debugging; `down` removes it).
    pub keep_on_error: bool,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            prefix: layout::DEFAULT_PREFIX.to_owned(),
            nodes: layout::DEFAULT_NODES,
            clients: layout::DEFAULT_CLIENTS,
            mode: Mode::Farm,
            bin_dir: PathBuf::from("target/release"),
            apache: "apache2".to_owned(),
            template: None,
            dataplane: DataplaneChoice::default(),
            big_file_size: BIG_FILE_SIZE,
            ready_timeout: Duration::from_secs(30),
            interrupt: None,
            step_delay: Duration::ZERO,
            keep_on_error: false,
        }
    }
}

/// A running lab. Dropping it tears it down (unless [`Lab::persist`] was called).
#[derive(Debug)]
pub struct Lab {
    layout: Layout,
    mode: Mode,
    apache: PathBuf,
    bin_dir: Option<PathBuf>,
    farmds: Vec<Child>,
    tables: Vec<farm_table::TableWriter>,
    config: Option<farm_config::Config>,
    interrupt: Option<Arc<AtomicBool>>,
    keep: bool,
}

impl Lab {
    /// Builds the lab described by `opts` (see the module documentation).
    pub fn up(opts: &LabOptions) -> Result<Lab, LabError> {
        up::up(opts)
    }

    /// A lab that is up (built by another process, e.g. `farm-lab up`), from its run
    /// directory. Dropping the value leaves the lab running; [`Lab::teardown`] removes it.
    pub fn attach(prefix: &str) -> Result<Lab, LabError> {
        layout::check_prefix(prefix)?;
        let r = layout::run_dir(prefix);
        if !r.is_dir() {
            return Err(LabError::NotUp(prefix.to_owned()));
        }
        let st = State::read(&r)?;
        let layout = Layout::new(prefix, st.nodes, st.clients)?;
        let config = if st.mode.has_dataplane() {
            let f = FarmFiles::new(&layout).config;
            let text = std::fs::read_to_string(&f).map_err(|e| LabError::io(&f, e))?;
            Some(farm_config::Config::from_str(&text, &f.to_string_lossy()).map_err(|e| LabError::Config(e.to_string()))?)
        } else {
            None
        };
        Ok(Lab {
            layout,
            mode: st.mode,
            apache: st.apache,
            bin_dir: st.bin_dir,
            farmds: Vec::new(),
            tables: Vec::new(),
            config,
            interrupt: None,
            keep: true,
        })
    }

    /// Names and addresses.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Farm or direct.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Namespace of node `i` (1-based, as in its name `n<i>`).
    pub fn node_ns(&self, i: usize) -> String {
        self.layout.node_ns(i)
    }

    /// Address of node `i` (1-based).
    pub fn node_addr(&self, i: usize) -> Ipv4Addr {
        self.layout.node_addr(i)
    }

    /// The VIP (reachable in farm mode).
    pub fn vip(&self) -> Ipv4Addr {
        self.layout.vip()
    }

    /// The client namespace.
    pub fn client_ns(&self) -> String {
        self.layout.client_ns()
    }

    /// Client address `k` (0-based).
    pub fn client_addr(&self, k: usize) -> Ipv4Addr {
        self.layout.client_addr(k)
    }

    /// Every client address.
    pub fn client_addrs(&self) -> Vec<Ipv4Addr> {
        self.layout.client_addrs()
    }

    /// The run directory (configs, logs, pid files).
    pub fn run_dir(&self) -> PathBuf {
        self.layout.run_dir()
    }

    /// Node `i`'s Apache (its files: access log, error log, pid file).
    pub fn httpd(&self, i: usize) -> Httpd {
        up::httpd_for(&self.layout, self.mode, i)
    }

    /// The farm files (config, token) of this lab.
    pub fn farm_files(&self) -> FarmFiles {
        FarmFiles::new(&self.layout)
    }

    /// `curl` from the client namespace with source address `src`: the body of a 2xx answer,
    /// an error otherwise (5 s limit).
    pub fn client_curl(&self, src: Ipv4Addr, url: &str) -> Result<String, LabError> {
        let src = src.to_string();
        cmd::ns_run(
            &self.client_ns(),
            "curl",
            ["-sS", "--fail", "--max-time", "5", "--interface", &src, url],
        )
    }

    /// `curl <args>` from the client namespace with source address `src`; the raw output,
    /// whatever the exit status.
    pub fn client_curl_args(&self, src: Ipv4Addr, args: &[&str]) -> Result<Output, LabError> {
        let src = src.to_string();
        let mut full = vec!["netns", "exec", &self.layout.client_ns()]
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
        full.extend(["curl", "--interface", &src].map(str::to_owned));
        full.extend(args.iter().map(|a| a.to_string()));
        cmd::run_status("ip", full)
    }

    /// Runs `args` in namespace `ns` (`ip netns exec`); the output whatever the exit status.
    pub fn exec(&self, ns: &str, args: &[&str]) -> Result<Output, LabError> {
        let mut full = vec!["netns", "exec", ns];
        full.extend_from_slice(args);
        cmd::run_status("ip", full)
    }

    /// Crashes node `i`: SIGKILL to every process in its namespace (farmd, farm-dataplane,
    /// Apache). The network stays. Returns the pids killed.
    pub fn kill_node(&mut self, i: usize) -> Result<Vec<i32>, LabError> {
        let ns = self.node_ns(i);
        let mut killed = Vec::new();
        // Again while new ones show up: a process forked between the listing and the signal
        // (an Apache child) would survive and keep the node's ports.
        for _ in 0..5 {
            let pids = procs::ns_pids(&ns);
            if pids.is_empty() {
                break;
            }
            let left = procs::kill_now(&pids);
            if !left.is_empty() {
                self.reap();
                return Err(LabError::Leftovers(format!("processes {left:?} in {ns} survive SIGKILL")));
            }
            killed.extend(pids);
        }
        self.reap();
        let left = procs::ns_pids(&ns);
        if left.is_empty() {
            Ok(killed)
        } else {
            Err(LabError::Leftovers(format!("processes {left:?} keep appearing in {ns}")))
        }
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) every process of node `i`: a hung node whose
    /// network is fine. Returns the pids signalled.
    pub fn freeze_node(&self, i: usize, frozen: bool) -> Vec<i32> {
        let sig = if frozen { nix::sys::signal::Signal::SIGSTOP } else { nix::sys::signal::Signal::SIGCONT };
        let pids = procs::ns_pids(&self.node_ns(i));
        for p in &pids {
            procs::send(*p, sig);
        }
        pids
    }

    /// Pids of the processes in node `i`'s namespace.
    pub fn node_pids(&self, i: usize) -> Vec<i32> {
        procs::ns_pids(&self.node_ns(i))
    }

    /// Pulls node `i`'s cable (host end of its veth down) or plugs it back.
    pub fn set_link(&self, i: usize, up: bool) -> Result<(), LabError> {
        net::set_node_link(&self.layout, i, up)
    }

    /// Cuts the network between groups of nodes (1-based), e.g. `&[&[1], &[2, 3]]`; the client
    /// still reaches every node. Rules accumulate until [`Lab::heal`].
    pub fn partition(&self, groups: &[&[usize]]) -> Result<(), LabError> {
        faults::partition(&self.layout, groups)
    }

    /// Drops `percent`% of the UDP datagrams to `port` sent by any node (heartbeat loss).
    pub fn udp_loss(&self, port: u16, percent: u8) -> Result<(), LabError> {
        faults::udp_loss(&self.layout, port, percent)
    }

    /// Removes every partition and loss rule.
    pub fn heal(&self) -> Result<(), LabError> {
        faults::heal(&self.layout)
    }

    /// Stops node `i`'s Apache; returns whether it was running.
    pub fn stop_app(&self, i: usize) -> bool {
        self.httpd(i).stop()
    }

    /// Starts node `i`'s Apache in its namespace (refused if port 80 is taken there).
    pub fn start_app(&self, i: usize) -> Result<(), LabError> {
        self.httpd(i).start(&self.node_ns(i), &self.apache)
    }

    /// Starts node `i` again after [`Lab::kill_node`]: Apache (direct); farm-dataplane, the
    /// `farm0` address and Apache (data-plane); farmd and the `farm0` address (farm).
    pub fn restart_node(&mut self, i: usize) -> Result<(), LabError> {
        self.reap();
        up::start_node(self, i)
    }

    /// The farm configuration every node reads (farm and data-plane modes).
    pub fn config(&self) -> Option<&farm_config::Config> {
        self.config.as_ref()
    }

    /// Data-plane mode: the node (1-based) that the static table gives TCP `port` of the VIP for
    /// client `src` (and `src_port` under an on_port rule). None in the other modes or if no
    /// rule matches.
    pub fn vip_owner(&self, src: Ipv4Addr, port: u16, src_port: u16) -> Option<usize> {
        if self.mode != Mode::Dataplane {
            return None;
        }
        static_table::vip_owner(self.config.as_ref()?, self.vip(), port, src, src_port)
    }

    /// Puts the node address on node `i`'s `farm0` again (after a data-plane restart recreated
    /// the TAP).
    pub fn configure_tap(&self, i: usize) -> Result<(), LabError> {
        net::configure_tap(&self.layout, i)
    }

    /// Leaves the lab running when this value is dropped (`farm-lab up`).
    pub fn persist(mut self) {
        self.keep = true;
    }

    /// Tears the lab down now, reporting errors (dropping does the same, logging them).
    pub fn teardown(mut self) -> Result<DownReport, LabError> {
        self.keep = true;
        let r = down(self.layout.prefix());
        self.reap();
        r
    }

    fn reap(&mut self) {
        self.farmds.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if let Err(e) = down(self.layout.prefix()) {
            tracing::error!(prefix = self.layout.prefix(), error = %e, "lab teardown failed");
        }
        self.reap();
    }
}
