//! Supervision of the data plane (`farm-dataplane`): farmd starts it as a child in its own
//! process group, watches it (exit, liveness stamp in the table), and restarts it per the
//! restart policy (`[restart]`, counted apart from the checkers' restarts).
//!
//! The data plane is *ready* once it published its pid in the table and stamped liveness since
//! it was started; it is *wedged* when its newest stamp is older than
//! `dataplane.liveness_timeout`, when it did not become ready within [`START_GRACE`], or when
//! farmd says so (a table publication found a reader stuck on an old generation). A wedged data
//! plane is killed (`SIGKILL` to its group) and handled as a death. After a death it is started
//! again after [`RESTART_DELAY`], unless the policy gives up ([`DpEvent::GaveUp`]); an
//! administrator's start resets the policy ([`Supervisor::reset_policy`], [`Supervisor::start`]).

use std::ffi::OsString;
use std::fs;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use farm_table::DataplaneStatus;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tracing::{debug, warn};

use crate::restart::{Decision, RestartPolicy};

/// Longest time from spawn to the first liveness stamp (EAL initialisation, port start).
pub const START_GRACE: Duration = Duration::from_secs(30);
/// Delay before a dead data plane is started again.
pub const RESTART_DELAY: Duration = Duration::from_secs(1);
/// Time between `SIGTERM` and `SIGKILL` when stopping it.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// How to start it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataplaneCommand {
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Where its pid is recorded while it runs (so that a later farmd can stop a data plane
    /// that outlived a crashed farmd).
    pub pid_file: Option<PathBuf>,
}

/// What happened to the data plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DpEvent {
    /// A new process was started.
    Started {
        /// Its pid.
        pid: u32,
    },
    /// It attached to the table and stamps liveness.
    Ready {
        /// Its pid.
        pid: u32,
    },
    /// It died or was killed as wedged (call `TableWriter::reset_readers`).
    Died {
        /// Its pid.
        pid: u32,
        /// Why.
        reason: String,
        /// It will be started again.
        restarting: bool,
    },
    /// Too many deaths within the policy's window: it stays down (the module should stop).
    GaveUp {
        /// Deaths within the window.
        count: u32,
    },
    /// It exited after [`Supervisor::stop`].
    Stopped,
}

#[derive(Debug)]
enum DpState {
    /// Not running; started at `retry_at` if set.
    Down { retry_at: Option<Instant> },
    /// Running, not yet stamping.
    Starting { child: Child, since: Instant, since_ns: u64 },
    /// Running and stamping.
    Ready { child: Child },
    /// SIGTERM sent; SIGKILL at `kill_at`.
    Stopping { child: Child, kill_at: Instant, killed: bool, restart: bool },
    /// The policy gave up.
    GaveUp,
}

/// The data plane's supervisor. Pure bookkeeping around one child; the caller passes the
/// current time and the table's data-plane snapshot to [`Supervisor::poll`].
#[derive(Debug)]
pub struct Supervisor {
    cmd: DataplaneCommand,
    policy: RestartPolicy,
    liveness_timeout: Duration,
    start_grace: Duration,
    restart_delay: Duration,
    state: DpState,
    ready_since: Option<Instant>,
    starts: u64,
    deaths: u64,
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => format!("ended ({status})"),
    }
}

fn signal_group(child: &Child, sig: Signal) {
    let pid = Pid::from_raw(child.id() as i32);
    if let Err(e) = killpg(pid, sig) {
        debug!(pid = child.id(), ?sig, error = %e, "data plane: cannot signal its process group");
    }
}

impl Supervisor {
    /// A supervisor that has not started anything yet.
    pub fn new(cmd: DataplaneCommand, policy: RestartPolicy, liveness_timeout: Duration) -> Supervisor {
        Supervisor {
            cmd,
            policy,
            liveness_timeout,
            start_grace: START_GRACE,
            restart_delay: RESTART_DELAY,
            state: DpState::Down { retry_at: None },
            ready_since: None,
            starts: 0,
            deaths: 0,
        }
    }

    /// Overrides the start grace and restart delay (tests).
    pub fn with_timers(mut self, start_grace: Duration, restart_delay: Duration) -> Supervisor {
        self.start_grace = start_grace;
        self.restart_delay = restart_delay;
        self
    }

    /// Processes started so far.
    pub fn starts(&self) -> u64 {
        self.starts
    }

    /// Deaths (exits and kills as wedged) so far.
    pub fn deaths(&self) -> u64 {
        self.deaths
    }

    /// The running process, if any.
    pub fn pid(&self) -> Option<u32> {
        match &self.state {
            DpState::Starting { child, .. } | DpState::Ready { child } | DpState::Stopping { child, .. } => Some(child.id()),
            _ => None,
        }
    }

    /// Since when it is ready (attached and stamping), if it is.
    pub fn ready_since(&self) -> Option<Instant> {
        self.ready_since
    }

    /// True after the policy gave up.
    pub fn gave_up(&self) -> bool {
        matches!(self.state, DpState::GaveUp)
    }

    /// Clears the restart count (administrator's start).
    pub fn reset_policy(&mut self) {
        self.policy.reset();
    }

    /// Starts it now if it is down (also after the policy gave up).
    pub fn start(&mut self, now: Instant, now_ns: u64) -> Vec<DpEvent> {
        match self.state {
            DpState::Down { .. } | DpState::GaveUp => self.spawn(now, now_ns),
            _ => Vec::new(),
        }
    }

    /// Asks it to stop (`SIGTERM`, `SIGKILL` after [`STOP_GRACE`]); with `restart`, starts a
    /// new one once it exited.
    pub fn stop(&mut self, now: Instant, restart: bool) {
        self.ready_since = None;
        self.state = match std::mem::replace(&mut self.state, DpState::Down { retry_at: None }) {
            DpState::Starting { child, .. } | DpState::Ready { child } => {
                signal_group(&child, Signal::SIGTERM);
                DpState::Stopping { child, kill_at: now + STOP_GRACE, killed: false, restart }
            }
            DpState::Stopping { child, kill_at, killed, .. } => DpState::Stopping { child, kill_at, killed, restart },
            DpState::Down { .. } | DpState::GaveUp if restart => DpState::Down { retry_at: Some(now) },
            other => other,
        };
    }

    /// Kills it as wedged (e.g. a reader stuck on an old table generation).
    pub fn wedged(&mut self, now: Instant, reason: &str) -> Vec<DpEvent> {
        match std::mem::replace(&mut self.state, DpState::Down { retry_at: None }) {
            DpState::Starting { mut child, .. } | DpState::Ready { mut child } => {
                warn!(pid = child.id(), reason, "data plane wedged: killing it");
                signal_group(&child, Signal::SIGKILL);
                let _ = child.wait();
                self.died(now, child.id(), format!("wedged: {reason}"))
            }
            other => {
                self.state = other;
                Vec::new()
            }
        }
    }

    /// Checks the child and its liveness; starts it again when due.
    pub fn poll(&mut self, now: Instant, now_ns: u64, snap: Option<&DataplaneStatus>) -> Vec<DpEvent> {
        let mut ev = Vec::new();
        let state = std::mem::replace(&mut self.state, DpState::Down { retry_at: None });
        self.state = match state {
            DpState::Down { retry_at: Some(t) } if now >= t => {
                ev.extend(self.spawn(now, now_ns));
                return ev;
            }
            DpState::Starting { mut child, since, since_ns } => match child.try_wait() {
                Ok(Some(st)) => return self.died(now, child.id(), describe(st)),
                _ => {
                    let attached = snap.is_some_and(|s| s.pid == child.id() && s.liveness_ns > since_ns);
                    let fresh = snap.is_some_and(|s| now_ns.saturating_sub(s.liveness_ns) <= self.liveness_timeout.as_nanos() as u64);
                    if attached && fresh {
                        self.ready_since = Some(now);
                        ev.push(DpEvent::Ready { pid: child.id() });
                        DpState::Ready { child }
                    } else if now.duration_since(since) > self.start_grace {
                        self.state = DpState::Starting { child, since, since_ns };
                        let grace = self.start_grace;
                        return self.wedged(now, &format!("no liveness stamp within {}", humantime::format_duration(grace)));
                    } else {
                        DpState::Starting { child, since, since_ns }
                    }
                }
            },
            DpState::Ready { mut child } => match child.try_wait() {
                Ok(Some(st)) => return self.died(now, child.id(), describe(st)),
                _ => {
                    let age = snap.map(|s| now_ns.saturating_sub(s.liveness_ns));
                    match age {
                        Some(a) if a > self.liveness_timeout.as_nanos() as u64 => {
                            self.state = DpState::Ready { child };
                            return self.wedged(now, &format!("liveness stamp {} ms old", a / 1_000_000));
                        }
                        _ => DpState::Ready { child },
                    }
                }
            },
            DpState::Stopping { mut child, kill_at, mut killed, restart } => match child.try_wait() {
                Ok(Some(st)) => {
                    debug!(pid = child.id(), status = %describe(st), "data plane stopped");
                    self.remove_pid_file();
                    ev.push(DpEvent::Stopped);
                    if restart {
                        ev.extend(self.spawn(now, now_ns));
                        return ev;
                    }
                    DpState::Down { retry_at: None }
                }
                _ => {
                    if now >= kill_at && !killed {
                        warn!(pid = child.id(), "data plane ignored SIGTERM: killing it");
                        signal_group(&child, Signal::SIGKILL);
                        killed = true;
                    }
                    DpState::Stopping { child, kill_at, killed, restart }
                }
            },
            other => other,
        };
        ev
    }

    /// True while it is ready (attached, stamping, not being stopped).
    pub fn ready(&self) -> bool {
        matches!(self.state, DpState::Ready { .. })
    }

    fn spawn(&mut self, now: Instant, now_ns: u64) -> Vec<DpEvent> {
        self.ready_since = None;
        let mut c = Command::new(&self.cmd.program);
        c.args(&self.cmd.args).stdin(Stdio::null()).process_group(0);
        match c.spawn() {
            Ok(child) => {
                self.starts += 1;
                let pid = child.id();
                if let Some(p) = &self.cmd.pid_file {
                    if let Err(e) = fs::write(p, format!("{pid}\n")) {
                        warn!(path = %p.display(), error = %e, "cannot write the data plane's pid file");
                    }
                }
                self.state = DpState::Starting { child, since: now, since_ns: now_ns };
                vec![DpEvent::Started { pid }]
            }
            Err(e) => self.died(now, 0, format!("cannot start {}: {e}", self.cmd.program.display())),
        }
    }

    fn died(&mut self, now: Instant, pid: u32, reason: String) -> Vec<DpEvent> {
        self.deaths += 1;
        self.ready_since = None;
        self.remove_pid_file();
        match self.policy.record(now) {
            Decision::Restart { .. } => {
                self.state = DpState::Down { retry_at: Some(now + self.restart_delay) };
                vec![DpEvent::Died { pid, reason, restarting: true }]
            }
            Decision::GiveUp { count } => {
                self.state = DpState::GaveUp;
                vec![DpEvent::Died { pid, reason, restarting: false }, DpEvent::GaveUp { count }]
            }
        }
    }

    fn remove_pid_file(&self) {
        if let Some(p) = &self.cmd.pid_file {
            let _ = fs::remove_file(p);
        }
    }

    /// Stops it and waits (at most [`STOP_GRACE`] plus a second); for farmd's exit.
    pub fn shutdown(&mut self) {
        let now = Instant::now();
        self.stop(now, false);
        let deadline = now + STOP_GRACE + Duration::from_secs(1);
        while matches!(self.state, DpState::Stopping { .. }) && Instant::now() < deadline {
            self.poll(Instant::now(), 0, None);
            std::thread::sleep(Duration::from_millis(10));
        }
        self.state = DpState::Down { retry_at: None };
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let DpState::Starting { child, .. } | DpState::Ready { child } | DpState::Stopping { child, .. } = &mut self.state {
            signal_group(child, Signal::SIGKILL);
            let _ = child.wait();
            self.remove_pid_file();
        }
    }
}

/// Stops a data plane left over by an earlier farmd (crashed, or killed with `SIGKILL`): the
/// pid in `pid_file`, if that process still runs `program`. It maps a table file that has
/// been replaced since, and would keep filtering with stale ownership.
pub fn stop_leftover(pid_file: &std::path::Path, program: &std::path::Path) -> Option<u32> {
    let pid: i32 = fs::read_to_string(pid_file).ok()?.trim().parse().ok()?;
    let _ = fs::remove_file(pid_file);
    let exe = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let name = program.file_name()?;
    if exe.file_name() != Some(name) {
        return None;
    }
    warn!(pid, program = %program.display(), "stopping a data plane left by an earlier farmd");
    let p = Pid::from_raw(pid);
    let _ = killpg(p, Signal::SIGTERM);
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline && fs::metadata(format!("/proc/{pid}")).is_ok() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = killpg(p, Signal::SIGKILL);
    Some(pid as u32)
}

#[cfg(test)]
mod tests;
