//! Health checkers: process, tcp, http, custom script, interface (kernel link or the data
//! plane's uplink), ping and data-plane liveness.
//!
//! - [`Probe`]: one run of a check, bounded by the checker's timeout ([`probes`], [`ping`]).
//! - [`runner::CheckerThreads`]: one thread per checker, sending [`runner::Observation`]s on a
//!   channel (so the daemon loop never blocks on a probe).
//! - [`health::Health`]: the pure decision logic in farmd's loop: hysteresis (`fail_after`
//!   consecutive failures, `ok_after` consecutive successes) turning observations into
//!   [`health::CheckerEvent`]s for the lifecycle, which applies the actions
//!   (restart / stopstart / wait) and the restart policy.
//!
//! The ping checker uses ICMP sockets from the `socket2` crate (datagram, else raw), not the
//! `ping` program.

pub mod dataplane;
pub mod health;
pub mod ping;
pub mod probes;
pub mod runner;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use farm_config::{Action, Check, InterfaceTarget, ProcessMatch};
use regex::Regex;

pub use dataplane::{DataplaneView, SharedDataplane};
pub use health::{CheckerEvent, Health, Verdict};
pub use probes::{ProbeResult, ProcMatcher};
pub use runner::{CheckerThreads, Observation};

use crate::scripts::{self, Invocation, Output};

/// Errors building the checkers from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum CheckerError {
    /// A process pattern is not a valid regular expression.
    #[error("checker {name}: pattern: {source}")]
    Pattern {
        /// The checker.
        name: String,
        /// The regex error.
        #[source]
        source: regex::Error,
    },
    /// The checker watches the data plane, which is disabled.
    #[error("checker {name}: needs the data plane ([dataplane] enabled = true)")]
    NoDataplane {
        /// The checker.
        name: String,
    },
}

/// What a probe needs besides its own configuration.
#[derive(Clone, Debug)]
pub struct ProbeContext {
    /// The data plane (uplink link state and liveness); `None` in control-only mode.
    pub dataplane: Option<Arc<dyn DataplaneView>>,
    /// `[dataplane] liveness_timeout`.
    pub liveness_timeout: Duration,
    /// Environment of custom scripts (the script environment, see [`crate::scripts`]).
    pub script_env: Vec<(String, String)>,
    /// Working directory of custom scripts.
    pub script_dir: Option<PathBuf>,
    /// Where processes are listed (`/proc`).
    pub proc_root: PathBuf,
    /// Where kernel interfaces are listed (`/sys/class/net`).
    pub sys_net: PathBuf,
}

impl ProbeContext {
    /// A context with the system paths and no data plane.
    pub fn new() -> ProbeContext {
        ProbeContext {
            dataplane: None,
            liveness_timeout: Duration::from_millis(500),
            script_env: Vec::new(),
            script_dir: None,
            proc_root: PathBuf::from("/proc"),
            sys_net: PathBuf::from("/sys/class/net"),
        }
    }
}

impl ProbeContext {
    /// From the configuration: the script environment and directory of `scripts` (see
    /// [`crate::scripts::ScriptSettings::from_config`]), `[dataplane] liveness_timeout`, and the
    /// data-plane view (`None` in control-only mode).
    pub fn from_config(
        cfg: &farm_config::Config,
        scripts: &crate::scripts::ScriptSettings,
        dataplane: Option<Arc<dyn DataplaneView>>,
    ) -> ProbeContext {
        ProbeContext {
            dataplane,
            liveness_timeout: cfg.dataplane.liveness_timeout,
            script_env: scripts.env.clone(),
            script_dir: scripts.dir.clone(),
            ..ProbeContext::new()
        }
    }
}

impl Default for ProbeContext {
    fn default() -> Self {
        ProbeContext::new()
    }
}

/// One kind of check, ready to run.
#[derive(Debug)]
pub enum Probe {
    /// At least `at_least` matching processes.
    Process {
        /// Matcher.
        matcher: ProcMatcher,
        /// Minimum count.
        at_least: u32,
        /// `/proc`.
        proc_root: PathBuf,
    },
    /// TCP connect.
    Tcp {
        /// Target.
        addr: SocketAddr,
    },
    /// HTTP GET.
    Http {
        /// URL.
        url: String,
        /// Expected status.
        expect_status: u16,
        /// Text the body must contain.
        expect_text: Option<String>,
    },
    /// A script that must exit 0.
    Custom {
        /// The script.
        script: PathBuf,
        /// Its environment.
        env: Vec<(String, String)>,
        /// Its working directory.
        cwd: Option<PathBuf>,
    },
    /// A kernel interface's link.
    KernelLink {
        /// Interface name.
        name: String,
        /// `/sys/class/net`.
        sys_net: PathBuf,
    },
    /// The data plane's uplink link (from the shared-memory table).
    Uplink(Arc<dyn DataplaneView>),
    /// ICMP echo.
    Ping {
        /// Target.
        addr: IpAddr,
    },
    /// The data plane's liveness stamp is younger than `max_age`.
    Dataplane {
        /// The view.
        view: Arc<dyn DataplaneView>,
        /// Allowed age.
        max_age: Duration,
    },
}

impl Probe {
    /// The probe of a configured check.
    pub fn from_check(name: &str, check: &Check, ctx: &ProbeContext) -> Result<Probe, CheckerError> {
        let need_dp = || ctx.dataplane.clone().ok_or_else(|| CheckerError::NoDataplane { name: name.to_string() });
        Ok(match check {
            Check::Process { matcher, at_least } => Probe::Process {
                matcher: match matcher {
                    ProcessMatch::Name(n) => ProcMatcher::Name(n.clone()),
                    ProcessMatch::Pattern(p) => ProcMatcher::Pattern(
                        Regex::new(p).map_err(|source| CheckerError::Pattern { name: name.to_string(), source })?,
                    ),
                },
                at_least: *at_least,
                proc_root: ctx.proc_root.clone(),
            },
            Check::Tcp { addr } => Probe::Tcp { addr: *addr },
            Check::Http { url, expect_status, expect_text } => {
                Probe::Http { url: url.clone(), expect_status: *expect_status, expect_text: expect_text.clone() }
            }
            Check::Custom { script } => {
                let mut env = ctx.script_env.clone();
                env.push(("FARM_CHECKER".to_string(), name.to_string()));
                Probe::Custom { script: script.clone(), env, cwd: ctx.script_dir.clone() }
            }
            Check::Interface { target: InterfaceTarget::Kernel(ifname) } => {
                Probe::KernelLink { name: ifname.as_str().to_string(), sys_net: ctx.sys_net.clone() }
            }
            Check::Interface { target: InterfaceTarget::Uplink } => Probe::Uplink(need_dp()?),
            Check::Ping { addr } => Probe::Ping { addr: *addr },
            Check::Dataplane => Probe::Dataplane { view: need_dp()?, max_age: ctx.liveness_timeout },
        })
    }

    /// Runs the check once, within `timeout`.
    pub fn run(&self, timeout: Duration) -> ProbeResult {
        match self {
            Probe::Process { matcher, at_least, proc_root } => probes::process(proc_root, matcher, *at_least),
            Probe::Tcp { addr } => probes::tcp(*addr, timeout),
            Probe::Http { url, expect_status, expect_text } => {
                probes::http(&probes::http_agent(timeout), url, *expect_status, expect_text.as_deref())
            }
            Probe::Custom { script, env, cwd } => {
                let inv = Invocation { program: script.clone(), args: Vec::new(), env: env.clone(), cwd: cwd.clone(), timeout };
                let r = scripts::run(&inv, Output::Capture);
                let last = r.captured.last().map(|l| format!(": {l}")).unwrap_or_default();
                let detail = format!("{}: {}{last}", script.display(), r.exit);
                ProbeResult { ok: r.exit.success(), detail }
            }
            Probe::KernelLink { name, sys_net } => probes::kernel_link(sys_net, name),
            Probe::Uplink(view) => match view.link_up() {
                Some(true) => ProbeResult::ok("uplink link is up"),
                Some(false) => ProbeResult::fail("uplink link is down"),
                None => ProbeResult::fail("no data plane attached"),
            },
            Probe::Ping { addr } => match ping::ping(*addr, timeout) {
                Ok(rtt) => ProbeResult::ok(format!("echo reply from {addr} in {:.3} ms", rtt.as_secs_f64() * 1e3)),
                Err(e) => ProbeResult::fail(format!("ping {addr}: {e}")),
            },
            Probe::Dataplane { view, max_age } => match view.liveness_age() {
                Some(age) if age <= *max_age => ProbeResult::ok(format!("data plane stamp {} ms old", age.as_millis())),
                Some(age) => ProbeResult::fail(format!(
                    "data plane stamp {} ms old, limit {} ms",
                    age.as_millis(),
                    max_age.as_millis()
                )),
                None => ProbeResult::fail("data plane has never stamped its liveness"),
            },
        }
    }
}

/// The `action` as written in the file.
pub fn action_name(a: Action) -> &'static str {
    match a {
        Action::Restart => "restart",
        Action::Stopstart => "stopstart",
        Action::Wait => "wait",
    }
}

/// A checker ready to run: its probe and its schedule.
#[derive(Debug)]
pub struct CheckerSpec {
    /// Unique name.
    pub name: String,
    /// The `kind` string.
    pub kind: &'static str,
    /// What it runs.
    pub probe: Probe,
    /// Time between runs.
    pub interval: Duration,
    /// Time limit of a run.
    pub timeout: Duration,
    /// Consecutive failures before the action.
    pub fail_after: u32,
    /// Consecutive successes before it counts as healthy again.
    pub ok_after: u32,
    /// What a failure does.
    pub action: Action,
    /// Delay before the first run after the checkers start.
    pub start_delay: Duration,
}

impl CheckerSpec {
    /// From a configured checker.
    pub fn from_config(c: &farm_config::Checker, ctx: &ProbeContext) -> Result<CheckerSpec, CheckerError> {
        Ok(CheckerSpec {
            name: c.name.to_string(),
            kind: c.check.kind(),
            probe: Probe::from_check(c.name.as_str(), &c.check, ctx)?,
            interval: c.interval,
            timeout: c.timeout,
            fail_after: c.fail_after.max(1),
            ok_after: c.ok_after.max(1),
            action: c.action,
            start_delay: c.start_delay,
        })
    }

    /// Every checker of a configuration.
    pub fn all_from_config(cfg: &farm_config::Config, ctx: &ProbeContext) -> Result<Vec<CheckerSpec>, CheckerError> {
        cfg.checkers.iter().map(|c| CheckerSpec::from_config(c, ctx)).collect()
    }
}
