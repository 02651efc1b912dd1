//! The module lifecycle (SafeKit meanings), as a pure state machine.
//!
//! States: `STOP`, `WAIT` (a checker holds the node out of the farm; the application keeps
//! running), `UP` (the only state that owns buckets), and the transient `STARTING` and
//! `STOPPING`.
//!
//! UP means healthy: after every run of `start_both` (an administrator's start or restart, the
//! `restart` and `stopstart` actions) the node joins the farm only once **every** checker has
//! passed `ok_after` times in a row since that start.
//!
//! - start: `STOP -> STARTING` (run `start_both`) `-> WAIT` (the checkers start; each is
//!   *unproven*) `-> UP` (join the farm) when the last unproven checker passes. Without
//!   checkers: `STARTING -> UP` at once. If `start_both` fails, the module stops (`stop_both`
//!   runs to clean up).
//! - an unproven checker that fails `fail_after` times in a row applies its action as in UP:
//!   `restart` / `stopstart` restart the application (counted by the restart policy, so an
//!   application that never comes up ends in STOP), `wait` keeps the node in WAIT.
//! - stop: `UP|WAIT -> STOPPING`, a graceful stop (DESIGN.md): leave the farm first (the
//!   membership hands the buckets over to the peers without a gap, [`Input::Left`]), keep
//!   serving the connections the node holds, run `stop_both` (graceful: e.g. Apache's
//!   graceful-stop ends idle keep-alive connections with a FIN after the request in flight)
//!   while watching the connections ([`Effect::WatchDrain`]; [`Input::Drained`] when none is
//!   left or after the stop's drain timeout), then `-> STOP`. `stop_both force` runs only if
//!   needed: the graceful run failed or timed out, or connections were left at the timeout.
//! - checker with action `wait` fails: `UP -> WAIT` (leave); when every such checker has
//!   recovered (and none is unproven): `WAIT -> UP` (join).
//! - checker with action `restart` fails: the application restarts locally:
//!   `UP|WAIT -> STOPPING -> STARTING -> WAIT -> UP`, never through `STOP`.
//! - checker with action `stopstart` fails: the module stops, then starts automatically:
//!   `UP|WAIT -> STOPPING -> STOP -> STARTING -> WAIT -> UP` (farmd restarts what belongs to
//!   the module, such as the data plane, on the way through `STOP`).
//! - both automatic actions count against the restart policy ([`crate::restart`]); the failure
//!   that exceeds it stops the module instead. An administrator's start or restart resets it.
//! - commands during a transient state are queued (one, the last wins) and run when it ends.
//!
//! `farmctl state` exit codes ([`State::exit_code`]): STOP 0, WAIT 1, UP 2; the transient
//! states also exit 1, so that 2 always means "owns buckets" and 0 "fully stopped".
//!
//! [`Lifecycle::handle`] takes an [`Input`] and the current time and returns [`Effect`]s for
//! the caller to carry out ([`driver::ModuleRuntime`] does so with real scripts and checker
//! threads).

pub mod driver;

use std::collections::BTreeSet;
use std::fmt;
use std::time::Instant;

use farm_config::Action;
use serde::{Deserialize, Serialize};

use crate::checkers::{CheckerEvent, Verdict};
use crate::logs::Level;
use crate::restart::{Decision, RestartPolicy};
use crate::scripts::Phase;

/// A module state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    /// Stopped: the application is stopped, the node owns no bucket.
    #[default]
    Stop,
    /// `start_both` is running.
    Starting,
    /// Started but held out of the farm by a checker; owns no bucket.
    Wait,
    /// In the farm: owns its share of the buckets.
    Up,
    /// Leaving the farm and running `stop_both`.
    Stopping,
}

impl State {
    /// Every state.
    pub const ALL: [State; 5] = [State::Stop, State::Starting, State::Wait, State::Up, State::Stopping];

    /// The name as shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Stop => "STOP",
            State::Starting => "STARTING",
            State::Wait => "WAIT",
            State::Up => "UP",
            State::Stopping => "STOPPING",
        }
    }

    /// Exit code of `farmctl state`: STOP 0, WAIT 1, UP 2; STARTING and STOPPING 1.
    pub fn exit_code(self) -> i32 {
        match self {
            State::Stop => 0,
            State::Wait | State::Starting | State::Stopping => 1,
            State::Up => 2,
        }
    }

    /// Numeric value of the `farm_state` metric: STOP 0, WAIT 1, UP 2, STARTING 3, STOPPING 4.
    pub fn metric(self) -> u8 {
        match self {
            State::Stop => 0,
            State::Wait => 1,
            State::Up => 2,
            State::Starting => 3,
            State::Stopping => 4,
        }
    }

    /// Only UP owns buckets.
    pub fn owns_buckets(self) -> bool {
        self == State::Up
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An administrator's command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Command {
    /// Start the module (resets the restart count).
    Start,
    /// Stop the module.
    Stop,
    /// Stop, then start (resets the restart count).
    Restart,
}

impl Command {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Start => "start",
            Command::Stop => "stop",
            Command::Restart => "restart",
        }
    }
}

/// What happens to the lifecycle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// An administrator's command.
    Command(Command),
    /// The scripts of a phase finished.
    ScriptsDone {
        /// Which.
        phase: Phase,
        /// Whether they succeeded.
        ok: bool,
    },
    /// Membership has released this node's buckets after [`Effect::Leave`] (they may still
    /// drain: the node keeps serving the connections it holds).
    Left,
    /// After [`Effect::WatchDrain`]: the node holds no connection any more (`flows` 0), or the
    /// stop's drain timeout passed with `flows` connections left.
    Drained {
        /// Connections still held.
        flows: u64,
    },
    /// A checker's verdict changed.
    Checker(CheckerEvent),
}

/// What the caller must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The state changed.
    StateChanged {
        /// Old state.
        from: State,
        /// New state.
        to: State,
        /// Why.
        reason: String,
    },
    /// Join the farm: advertise UP, take buckets.
    Join,
    /// Leave the farm: release the buckets, then feed [`Input::Left`].
    Leave,
    /// Run a phase's scripts in the background, then feed [`Input::ScriptsDone`].
    RunScripts(Phase),
    /// Watch the connections this node holds; feed [`Input::Drained`] once none is left or
    /// the stop's drain timeout has passed (counted from now).
    WatchDrain,
    /// Reset the checkers' verdicts and start their threads.
    StartCheckers,
    /// Stop the checker threads.
    StopCheckers,
    /// A module-log entry.
    Log(Level, String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Idle,
    AwaitLeft,
    /// `stop_both` (graceful) runs; the connections drain meanwhile.
    StopGraceful,
    /// `stop_both` (graceful) is done; waiting for [`Input::Drained`].
    AwaitDrain,
    /// `stop_both force` runs.
    StopForce,
    RunningStart,
}

/// What follows STOPPING.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum After {
    Stop,
    /// Local application restart: straight to STARTING.
    Start,
    /// Through STOP, then start.
    StopThenStart,
}

/// The state machine.
#[derive(Clone, Debug)]
pub struct Lifecycle {
    state: State,
    step: Step,
    after: After,
    pending: Option<Command>,
    /// The graceful stop's outcomes so far: `stop_both` (graceful) succeeded; connections
    /// left when the drain ended.
    graceful_ok: Option<bool>,
    drained: Option<u64>,
    joined: bool,
    checkers_running: bool,
    waiting: BTreeSet<String>,
    /// Every configured checker.
    checkers: Vec<String>,
    /// Checkers that have not passed since the last start.
    unproven: BTreeSet<String>,
    policy: RestartPolicy,
}

impl Lifecycle {
    /// A stopped module with this restart policy.
    pub fn new(policy: RestartPolicy) -> Lifecycle {
        Lifecycle {
            state: State::Stop,
            step: Step::Idle,
            after: After::Stop,
            pending: None,
            graceful_ok: None,
            drained: None,
            joined: false,
            checkers_running: false,
            waiting: BTreeSet::new(),
            checkers: Vec::new(),
            unproven: BTreeSet::new(),
            policy,
        }
    }

    /// The names of the configured checkers: after each start, every one of them must pass
    /// before the node goes UP.
    pub fn with_checkers<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Lifecycle {
        self.checkers = names.into_iter().map(Into::into).collect();
        self
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The queued command, if any.
    pub fn pending(&self) -> Option<Command> {
        self.pending
    }

    /// Checkers holding the node out of the farm, by name: those that have not passed since the
    /// last start, and those with action `wait` that failed.
    pub fn waiting_on(&self) -> impl Iterator<Item = &str> {
        self.unproven.union(&self.waiting).map(String::as_str)
    }

    /// Checkers that have not passed `ok_after` times in a row since the last start.
    pub fn unproven(&self) -> impl Iterator<Item = &str> {
        self.unproven.iter().map(String::as_str)
    }

    /// A configuration reload replaced the checkers with `names`. If they run, they restart
    /// ([`Effect::StartCheckers`]; every checker is unproven again in the verdicts). In UP the
    /// node stays UP: a new checker that then fails applies its action as any other. In WAIT
    /// the node keeps waiting for the unproven checkers of the new set and for the new ones;
    /// a checker removed from the file no longer holds it out (it joins if nothing else
    /// does).
    pub fn replace_checkers<S: Into<String>>(&mut self, names: impl IntoIterator<Item = S>) -> Vec<Effect> {
        let mut fx = Vec::new();
        let old = std::mem::replace(&mut self.checkers, names.into_iter().map(Into::into).collect());
        let new = &self.checkers;
        self.waiting.retain(|n| new.contains(n));
        self.unproven.retain(|n| new.contains(n));
        if self.state == State::Wait && self.checkers_running {
            self.unproven.extend(new.iter().filter(|n| !old.contains(n)).cloned());
        }
        if self.checkers_running {
            fx.push(Effect::StartCheckers);
            if self.state == State::Wait && self.unproven.is_empty() && self.waiting.is_empty() {
                self.join("the checkers holding the node out were removed (reload)", &mut fx);
            }
        }
        fx
    }

    /// The restart policy (its count and limits).
    pub fn policy(&self) -> &RestartPolicy {
        &self.policy
    }

    fn set_state(&mut self, to: State, reason: &str, fx: &mut Vec<Effect>) {
        if to != self.state {
            fx.push(Effect::StateChanged { from: self.state, to, reason: reason.to_string() });
            self.state = to;
        }
    }

    fn start(&mut self, reason: &str, fx: &mut Vec<Effect>) {
        self.set_state(State::Starting, reason, fx);
        self.step = Step::RunningStart;
        fx.push(Effect::RunScripts(Phase::Start));
    }

    fn stop(&mut self, after: After, reason: &str, fx: &mut Vec<Effect>) {
        if self.checkers_running {
            self.checkers_running = false;
            fx.push(Effect::StopCheckers);
        }
        self.waiting.clear();
        self.unproven.clear();
        self.after = after;
        self.set_state(State::Stopping, reason, fx);
        if self.joined {
            self.joined = false;
            self.step = Step::AwaitLeft;
            fx.push(Effect::Leave);
        } else {
            self.stop_graceful(fx);
        }
    }

    /// Out of the farm: `stop_both` (graceful) while the held connections drain.
    fn stop_graceful(&mut self, fx: &mut Vec<Effect>) {
        self.step = Step::StopGraceful;
        self.graceful_ok = None;
        self.drained = None;
        fx.push(Effect::WatchDrain);
        fx.push(Effect::RunScripts(Phase::StopGraceful));
    }

    /// `stop_both` (graceful) finished, or the drain ended: once both did, STOP, or `stop_both
    /// force` first if needed.
    fn graceful_progress(&mut self, fx: &mut Vec<Effect>) {
        let (Step::AwaitDrain, Some(ok), Some(flows)) = (self.step, self.graceful_ok, self.drained) else { return };
        if ok && flows == 0 {
            fx.push(Effect::Log(Level::Info, "graceful stop complete (no connection left): stop_both force not needed".into()));
            self.step = Step::StopForce;
            return self.stop_done(true, fx);
        }
        let why = match (ok, flows) {
            (false, 0) => "stop_both failed or timed out".to_string(),
            (false, n) => format!("stop_both failed or timed out, {n} connections left"),
            (true, n) => format!("{n} connections left at the drain timeout"),
        };
        fx.push(Effect::Log(Level::Warn, format!("{why}: running stop_both force")));
        self.step = Step::StopForce;
        fx.push(Effect::RunScripts(Phase::StopForce));
    }

    fn join(&mut self, reason: &str, fx: &mut Vec<Effect>) {
        self.set_state(State::Up, reason, fx);
        if !self.joined {
            self.joined = true;
            fx.push(Effect::Join);
        }
    }

    fn leave_to_wait(&mut self, reason: &str, fx: &mut Vec<Effect>) {
        self.set_state(State::Wait, reason, fx);
        if self.joined {
            self.joined = false;
            fx.push(Effect::Leave);
        }
    }

    /// Applies an input at time `now`; returns the effects to carry out, in order.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Effect> {
        let mut fx = Vec::new();
        match input {
            Input::Command(c) => self.command(c, &mut fx),
            Input::Left => {
                if self.state == State::Stopping && self.step == Step::AwaitLeft {
                    self.stop_graceful(&mut fx);
                }
                // In WAIT the buckets were released without waiting: nothing to do.
            }
            Input::Drained { flows } => {
                if self.state == State::Stopping && matches!(self.step, Step::StopGraceful | Step::AwaitDrain) {
                    self.drained.get_or_insert(flows);
                    self.graceful_progress(&mut fx);
                }
            }
            Input::ScriptsDone { phase: Phase::Start, ok } => self.start_done(ok, &mut fx),
            Input::ScriptsDone { phase: Phase::StopGraceful, ok } => {
                if self.state == State::Stopping && self.step == Step::StopGraceful {
                    self.graceful_ok = Some(ok);
                    self.step = Step::AwaitDrain;
                    self.graceful_progress(&mut fx);
                } else {
                    fx.push(Effect::Log(Level::Warn, format!("stop scripts finished in state {}: ignored", self.state)));
                }
            }
            Input::ScriptsDone { phase: Phase::Stop | Phase::StopForce, ok } => self.stop_done(ok, &mut fx),
            Input::Checker(ev) => self.checker(ev, now, &mut fx),
        }
        fx
    }

    fn command(&mut self, c: Command, fx: &mut Vec<Effect>) {
        let log = |fx: &mut Vec<Effect>, m: String| fx.push(Effect::Log(Level::Info, m));
        match (c, self.state) {
            (Command::Start | Command::Restart, State::Stop) => {
                self.policy.reset();
                self.start(&format!("admin {}", c.as_str()), fx);
            }
            (Command::Start, State::Up | State::Wait) => log(fx, format!("start ignored: already {}", self.state)),
            (Command::Start, State::Starting) => {
                self.pending = None;
                log(fx, "start ignored: already starting".into());
            }
            (Command::Stop, State::Stop) => log(fx, "stop ignored: already stopped".into()),
            (Command::Stop, State::Up | State::Wait) => self.stop(After::Stop, "admin stop", fx),
            (Command::Restart, State::Up | State::Wait) => {
                self.policy.reset();
                self.stop(After::StopThenStart, "admin restart", fx);
            }
            (Command::Stop, State::Stopping) => {
                self.after = After::Stop;
                self.pending = None;
                log(fx, "stop: already stopping".into());
            }
            (_, State::Starting | State::Stopping) => {
                self.pending = Some(c);
                log(fx, format!("{} queued until {} ends", c.as_str(), self.state));
            }
        }
    }

    fn start_done(&mut self, ok: bool, fx: &mut Vec<Effect>) {
        if self.state != State::Starting || self.step != Step::RunningStart {
            fx.push(Effect::Log(Level::Warn, format!("start scripts finished in state {}: ignored", self.state)));
            return;
        }
        self.step = Step::Idle;
        match self.pending.take() {
            Some(Command::Stop) => return self.stop(After::Stop, "stop requested while starting", fx),
            Some(Command::Restart) => {
                self.policy.reset();
                return self.stop(After::StopThenStart, "restart requested while starting", fx);
            }
            Some(Command::Start) | None => {}
        }
        if !ok {
            fx.push(Effect::Log(Level::Error, "start_both failed: stopping the module".into()));
            return self.stop(After::Stop, "start_both failed", fx);
        }
        self.waiting.clear();
        self.unproven = self.checkers.iter().cloned().collect();
        self.checkers_running = true;
        fx.push(Effect::StartCheckers);
        if self.unproven.is_empty() {
            self.join("started", fx);
        } else {
            let names = self.checkers.join(", ");
            self.set_state(State::Wait, &format!("started; waiting for checkers to pass: {names}"), fx);
        }
    }

    /// A checker passed or recovered: it no longer holds the node out.
    fn cleared(&mut self, name: &str, reason: &str, fx: &mut Vec<Effect>) {
        self.unproven.remove(name);
        self.waiting.remove(name);
        if self.state == State::Wait && self.unproven.is_empty() && self.waiting.is_empty() {
            self.join(reason, fx);
        }
    }

    fn stop_done(&mut self, ok: bool, fx: &mut Vec<Effect>) {
        if self.state != State::Stopping || self.step != Step::StopForce {
            fx.push(Effect::Log(Level::Warn, format!("stop scripts finished in state {}: ignored", self.state)));
            return;
        }
        if !ok {
            fx.push(Effect::Log(Level::Warn, "stop_both force failed: the application may still run".into()));
        }
        self.step = Step::Idle;
        let after = std::mem::replace(&mut self.after, After::Stop);
        match after {
            After::Start => self.start("local restart", fx),
            After::StopThenStart => {
                self.set_state(State::Stop, "stopped", fx);
                self.pending = None;
                self.start("automatic start", fx);
            }
            After::Stop => {
                self.set_state(State::Stop, "stopped", fx);
                if let Some(c @ (Command::Start | Command::Restart)) = self.pending.take() {
                    self.policy.reset();
                    self.start(&format!("queued admin {}", c.as_str()), fx);
                }
            }
        }
    }

    fn checker(&mut self, ev: CheckerEvent, now: Instant, fx: &mut Vec<Effect>) {
        if !matches!(self.state, State::Up | State::Wait) {
            return;
        }
        match (ev.action, ev.verdict) {
            (Action::Wait, Verdict::Failed) => {
                fx.push(Effect::Log(Level::Error, format!("checker {} failed: {}; action wait", ev.name, ev.detail)));
                self.waiting.insert(ev.name.clone());
                if self.state == State::Up {
                    self.leave_to_wait(&format!("checker {} failed", ev.name), fx);
                }
            }
            (_, Verdict::Passed) => {
                fx.push(Effect::Log(Level::Info, format!("checker {} passed: {}", ev.name, ev.detail)));
                self.cleared(&ev.name, &format!("checker {} passed", ev.name), fx);
            }
            (_, Verdict::Recovered) => {
                fx.push(Effect::Log(Level::Info, format!("checker {} recovered: {}", ev.name, ev.detail)));
                self.cleared(&ev.name, &format!("checker {} recovered", ev.name), fx);
            }
            (action @ (Action::Restart | Action::Stopstart), Verdict::Failed) => {
                let name = if action == Action::Restart { "restart" } else { "stopstart" };
                match self.policy.record(now) {
                    Decision::Restart { count } => {
                        fx.push(Effect::Log(
                            Level::Error,
                            format!(
                                "checker {} failed: {}; action {name} ({count}/{} in {})",
                                ev.name,
                                ev.detail,
                                self.policy.maxloop(),
                                humantime::format_duration(self.policy.window())
                            ),
                        ));
                        let after = if action == Action::Restart { After::Start } else { After::StopThenStart };
                        self.stop(after, &format!("action {name} called by checker {}", ev.name), fx);
                    }
                    Decision::GiveUp { count } => {
                        fx.push(Effect::Log(
                            Level::Error,
                            format!(
                                "checker {} failed: {}; {count} failures within {} exceed maxloop {}: stopping the module",
                                ev.name,
                                ev.detail,
                                humantime::format_duration(self.policy.window()),
                                self.policy.maxloop()
                            ),
                        ));
                        self.stop(After::Stop, &format!("maxloop reached (checker {})", ev.name), fx);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod reload_tests;
