//! Carries out the lifecycle's effects with real scripts, checker threads and logs.
//!
//! farmd's loop owns one [`ModuleRuntime`] and:
//! - calls [`ModuleRuntime::command`] for each administrator command (API or signal);
//! - calls [`ModuleRuntime::poll`] every iteration (e.g. every pulse) or whenever
//!   [`ModuleRuntime::script_receiver`] / [`ModuleRuntime::observation_receiver`] are ready;
//! - acts on the returned [`Notice`]s: `Join` (advertise UP, take buckets), `Leave` (release
//!   the buckets, then call [`ModuleRuntime::left`] once they are released: at once, or after
//!   the peers acknowledged), `Draining` (from then on report the connections the node holds
//!   with [`ModuleRuntime::drains`] every iteration, until the state changes), `StateChanged`
//!   (advertise the state in heartbeats; start or stop the data plane around `STOP`);
//! - calls [`ModuleRuntime::fill_status`] when it refreshes the API's status.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam::channel::{self, Receiver, Sender};

use super::{Command, Effect, Input, Lifecycle, State};
use crate::api::{RestartStatus, Status};
use crate::checkers::health::CheckerInfo;
use crate::checkers::{CheckerError, CheckerSpec, CheckerThreads, DataplaneView, Health, Observation, ProbeContext};
use crate::logs::Logs;
use crate::restart::RestartPolicy;
use crate::scripts::{Phase, ScriptOutcome, ScriptRunner, ScriptSettings};

/// What farmd's membership must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// Advertise UP and take buckets.
    Join,
    /// Release the buckets; then call [`ModuleRuntime::left`].
    Leave,
    /// A graceful stop waits for the node's connections: report them with
    /// [`ModuleRuntime::drains`] (every iteration) until the module leaves STOPPING.
    Draining,
    /// The state changed.
    StateChanged {
        /// Old state.
        from: State,
        /// New state.
        to: State,
    },
}

/// The lifecycle with its scripts, checkers and logs.
#[derive(Debug)]
pub struct ModuleRuntime {
    lifecycle: Lifecycle,
    scripts: ScriptRunner,
    script_rx: Receiver<ScriptOutcome>,
    specs: Arc<[CheckerSpec]>,
    health: Health,
    threads: Option<CheckerThreads>,
    obs_tx: Sender<Observation>,
    obs_rx: Receiver<Observation>,
    logs: Logs,
    state_since: SystemTime,
    /// The longest a stop waits for the node's connections to end (and bound of the graceful
    /// `stop_both` run).
    stop_drain_timeout: Duration,
    /// The drain of a graceful stop being watched.
    drain: Option<DrainWatch>,
}

/// A graceful stop's drain: since when, next progress line.
#[derive(Debug, Clone, Copy)]
struct DrainWatch {
    since: Instant,
    next_log: Instant,
}

/// Default of [`ModuleRuntime::with_stop_drain_timeout`] (`[scripts] stop_drain_timeout`).
pub const STOP_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Progress lines of a graceful stop's drain, at most one per this period.
const DRAIN_LOG_EVERY: Duration = Duration::from_secs(5);

impl ModuleRuntime {
    /// A stopped module.
    pub fn new(scripts: ScriptSettings, checkers: Vec<CheckerSpec>, policy: RestartPolicy, logs: Logs) -> ModuleRuntime {
        let (runner, script_rx) = ScriptRunner::new(scripts, logs.clone());
        let (obs_tx, obs_rx) = channel::unbounded();
        let health = Health::new(checkers.iter().map(CheckerInfo::from));
        ModuleRuntime {
            lifecycle: Lifecycle::new(policy).with_checkers(checkers.iter().map(|c| c.name.clone())),
            scripts: runner,
            script_rx,
            specs: checkers.into(),
            health,
            threads: None,
            obs_tx,
            obs_rx,
            logs,
            state_since: SystemTime::now(),
            stop_drain_timeout: STOP_DRAIN_TIMEOUT,
            drain: None,
        }
    }

    /// How long a graceful stop waits for the node's connections to end (default
    /// [`STOP_DRAIN_TIMEOUT`]); the graceful `stop_both` run is bounded by it too.
    pub fn with_stop_drain_timeout(mut self, t: Duration) -> ModuleRuntime {
        self.stop_drain_timeout = t;
        self
    }

    /// A stopped module as configured: scripts, checkers (the uplink and data-plane checkers
    /// read `dataplane`, `None` in control-only mode), restart policy.
    pub fn from_config(
        cfg: &farm_config::Config,
        node: &farm_config::Node,
        dataplane: Option<Arc<dyn DataplaneView>>,
        logs: Logs,
    ) -> Result<ModuleRuntime, CheckerError> {
        let scripts = ScriptSettings::from_config(cfg, node);
        let ctx = ProbeContext::from_config(cfg, &scripts, dataplane);
        let checkers = CheckerSpec::all_from_config(cfg, &ctx)?;
        Ok(ModuleRuntime::new(scripts, checkers, RestartPolicy::from_config(&cfg.restart), logs)
            .with_stop_drain_timeout(cfg.scripts.stop_drain_timeout))
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.lifecycle.state()
    }

    /// The pure state machine (read-only).
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// The checkers' verdicts.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// The module and application logs.
    pub fn logs(&self) -> &Logs {
        &self.logs
    }

    /// Ready when a script phase finished (for `select!`; then call [`ModuleRuntime::poll`]).
    pub fn script_receiver(&self) -> &Receiver<ScriptOutcome> {
        &self.script_rx
    }

    /// Ready when a checker reported (for `select!`; then call [`ModuleRuntime::poll`]).
    pub fn observation_receiver(&self) -> &Receiver<Observation> {
        &self.obs_rx
    }

    /// An administrator's command.
    pub fn command(&mut self, c: Command, now: Instant) -> Vec<Notice> {
        self.logs.info(&format!("admin {} requested", c.as_str()));
        self.feed(Input::Command(c), now)
    }

    /// Membership released the buckets after [`Notice::Leave`].
    pub fn left(&mut self, now: Instant) -> Vec<Notice> {
        self.feed(Input::Left, now)
    }

    /// The connections this node holds (`flows` in `buckets`, from the data plane; zeros
    /// without one), reported every iteration after [`Notice::Draining`]: a graceful stop
    /// goes on once none is left or after the stop's drain timeout. Logs what it waits for.
    pub fn drains(&mut self, now: Instant, flows: u64, buckets: u32) -> Vec<Notice> {
        let Some(w) = &mut self.drain else { return Vec::new() };
        if self.lifecycle.state() != State::Stopping {
            self.drain = None;
            return Vec::new();
        }
        let elapsed = now.saturating_duration_since(w.since);
        let secs = elapsed.as_secs_f64();
        if flows == 0 {
            self.drain = None;
            self.logs.info(&format!("graceful stop: no connection left after {secs:.1}s"));
            return self.feed(Input::Drained { flows: 0 }, now);
        }
        if elapsed >= self.stop_drain_timeout {
            self.drain = None;
            self.logs.warn(&format!(
                "graceful stop: stop_drain_timeout ({}) passed with {flows} connections in {buckets} buckets left",
                humantime::format_duration(self.stop_drain_timeout)
            ));
            return self.feed(Input::Drained { flows }, now);
        }
        if now >= w.next_log {
            w.next_log = now + DRAIN_LOG_EVERY;
            let left = self.stop_drain_timeout.saturating_sub(elapsed).as_secs_f64();
            self.logs.info(&format!("graceful stop: draining {flows} connections in {buckets} buckets ({left:.0}s left)"));
        }
        Vec::new()
    }

    /// Handles every finished script phase and checker result received so far (never blocks).
    pub fn poll(&mut self, now: Instant) -> Vec<Notice> {
        let mut out = Vec::new();
        while let Ok(o) = self.script_rx.try_recv() {
            out.extend(self.feed(Input::ScriptsDone { phase: o.phase, ok: o.ok }, now));
        }
        while let Ok(obs) = self.obs_rx.try_recv() {
            if let Some(ev) = self.health.observe(&obs) {
                out.extend(self.feed(Input::Checker(ev), now));
            }
        }
        out
    }

    /// Waits up to `timeout` for a script or checker result, then polls.
    pub fn wait_and_poll(&mut self, timeout: Duration) -> Vec<Notice> {
        crossbeam::select! {
            recv(self.script_rx) -> o => {
                let now = Instant::now();
                let mut out = match o {
                    Ok(o) => self.feed(Input::ScriptsDone { phase: o.phase, ok: o.ok }, now),
                    Err(_) => Vec::new(),
                };
                out.extend(self.poll(now));
                out
            }
            recv(self.obs_rx) -> obs => {
                let now = Instant::now();
                let mut out = Vec::new();
                if let Ok(obs) = obs {
                    if let Some(ev) = self.health.observe(&obs) {
                        out.extend(self.feed(Input::Checker(ev), now));
                    }
                }
                out.extend(self.poll(now));
                out
            }
            default(timeout) => self.poll(Instant::now()),
        }
    }

    /// Feeds an input and carries out its effects (and those of the inputs they cause).
    pub fn feed(&mut self, input: Input, now: Instant) -> Vec<Notice> {
        let mut notices = Vec::new();
        let mut queue = VecDeque::from([input]);
        while let Some(input) = queue.pop_front() {
            for fx in self.lifecycle.handle(input, now) {
                if let Some(next) = self.apply(fx, &mut notices) {
                    queue.push_back(next);
                }
            }
        }
        notices
    }

    fn apply(&mut self, fx: Effect, notices: &mut Vec<Notice>) -> Option<Input> {
        match fx {
            Effect::StateChanged { from, to, reason } => {
                self.logs.info(&format!("state {from} -> {to} ({reason})"));
                self.state_since = SystemTime::now();
                notices.push(Notice::StateChanged { from, to });
            }
            Effect::Join => {
                self.logs.info("joining the farm");
                notices.push(Notice::Join);
            }
            Effect::Leave => {
                self.logs.info("leaving the farm");
                notices.push(Notice::Leave);
            }
            Effect::WatchDrain => {
                let now = Instant::now();
                self.drain = Some(DrainWatch { since: now, next_log: now });
                notices.push(Notice::Draining);
            }
            Effect::RunScripts(phase) => {
                let limit = if phase == Phase::StopGraceful { self.stop_drain_timeout } else { Duration::MAX };
                if let Err(e) = self.scripts.spawn_within(phase, limit) {
                    self.logs.error(&format!("cannot run the {phase:?} scripts: {e}"));
                    return Some(Input::ScriptsDone { phase, ok: false });
                }
            }
            Effect::StartCheckers => {
                if let Some(t) = self.threads.take() {
                    t.stop();
                }
                let epoch = self.health.reset();
                if !self.specs.is_empty() {
                    match CheckerThreads::spawn(self.specs.clone(), epoch, self.obs_tx.clone()) {
                        Ok(t) => self.threads = Some(t),
                        Err(e) => self.logs.error(&format!("cannot start the checkers: {e}")),
                    }
                    self.logs.info(&format!("{} checkers started", self.specs.len()));
                }
            }
            Effect::StopCheckers => {
                if let Some(t) = self.threads.take() {
                    t.stop();
                    self.logs.info("checkers stopped");
                }
                // Results still in flight belong to the old epoch.
                self.health.reset();
            }
            Effect::Log(level, msg) => self.logs.module(level, &msg),
        }
        None
    }

    /// A configuration reload: replaces the checkers (their threads restart if they ran; see
    /// [`Lifecycle::replace_checkers`]). Results of the old threads are ignored (their epoch).
    pub fn replace_checkers(&mut self, checkers: Vec<CheckerSpec>, now: Instant) -> Vec<Notice> {
        if let Some(t) = self.threads.take() {
            t.stop();
        }
        // The new verdicts continue the old epochs, so no late result of an old thread (whose
        // index means another checker now) is taken.
        let epoch = self.health.epoch();
        let mut health = Health::new(checkers.iter().map(CheckerInfo::from));
        while health.epoch() < epoch {
            health.reset();
        }
        self.health = health;
        let names: Vec<String> = checkers.iter().map(|c| c.name.clone()).collect();
        self.specs = checkers.into();
        self.logs.info(&format!("checkers replaced (reload): {}", if names.is_empty() { "none".into() } else { names.join(", ") }));
        let mut notices = Vec::new();
        for fx in self.lifecycle.replace_checkers(names) {
            if let Some(next) = self.apply(fx, &mut notices) {
                notices.extend(self.feed(next, now));
            }
        }
        notices
    }

    /// Fills the lifecycle's part of the status: state, since, pending command, checkers,
    /// restart count.
    pub fn fill_status(&self, st: &mut Status, now: Instant) {
        st.state = self.lifecycle.state();
        st.state_since_unix_ms = self.state_since.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        st.pending_command = self.lifecycle.pending();
        st.waiting_on = self.lifecycle.waiting_on().map(str::to_string).collect();
        st.checkers = self.health.status();
        let p = self.lifecycle.policy();
        st.restarts = RestartStatus { count: p.count(now), maxloop: p.maxloop(), loop_interval_secs: p.window().as_secs() };
    }
}

impl Drop for ModuleRuntime {
    fn drop(&mut self) {
        if let Some(t) = self.threads.take() {
            t.stop();
        }
    }
}
