//! Lifecycle tests with virtual time.

use std::time::{Duration, Instant};

use super::*;

const H: Duration = Duration::from_secs(3600);

struct T {
    lc: Lifecycle,
    t0: Instant,
    now: Instant,
}

impl T {
    fn new(maxloop: u32) -> T {
        let t0 = Instant::now();
        T { lc: Lifecycle::new(RestartPolicy::new(maxloop, 24 * H)), t0, now: t0 }
    }
    fn at(&mut self, offset: Duration) -> &mut T {
        self.now = self.t0 + offset;
        self
    }
    fn feed(&mut self, i: Input) -> Vec<Effect> {
        self.lc.handle(i, self.now)
    }
    /// Feeds and keeps only the effects that drive the outside world (not logs, not state changes).
    fn act(&mut self, i: Input) -> Vec<Effect> {
        self.feed(i).into_iter().filter(|e| !matches!(e, Effect::Log(..) | Effect::StateChanged { .. })).collect()
    }
    /// The graceful stop ends well: `stop_both` (graceful) succeeded, no connection left.
    fn stopped(&mut self) -> Vec<Effect> {
        let mut fx = self.feed(done(Phase::StopGraceful, true));
        fx.extend(self.feed(Input::Drained { flows: 0 }));
        fx
    }
    fn started(&mut self) {
        assert_eq!(self.act(Input::Command(Command::Start)), vec![Effect::RunScripts(Phase::Start)]);
        assert_eq!(self.lc.state(), State::Starting);
        assert_eq!(self.act(done(Phase::Start, true)), vec![Effect::StartCheckers, Effect::Join]);
        assert_eq!(self.lc.state(), State::Up);
    }
}

fn done(phase: Phase, ok: bool) -> Input {
    Input::ScriptsDone { phase, ok }
}

fn ev(name: &str, action: Action, verdict: Verdict) -> Input {
    Input::Checker(CheckerEvent { name: name.into(), action, verdict, detail: "d".into() })
}

fn states(fx: &[Effect]) -> Vec<(State, State)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::StateChanged { from, to, .. } => Some((*from, *to)),
            _ => None,
        })
        .collect()
}

#[test]
fn exit_codes_and_metric_values() {
    let codes: Vec<i32> = State::ALL.iter().map(|s| s.exit_code()).collect();
    assert_eq!(codes, vec![0, 1, 1, 2, 1]);
    assert_eq!(State::Up.metric(), 2);
    assert!(State::ALL.iter().filter(|s| s.owns_buckets()).eq([State::Up].iter()));
    assert_eq!(serde_json::to_string(&State::Starting).unwrap(), "\"STARTING\"");
}

#[test]
fn start_then_graceful_stop_leaves_before_stop_scripts() {
    let mut t = T::new(3);
    let fx = t.feed(Input::Command(Command::Start));
    assert_eq!(states(&fx), vec![(State::Stop, State::Starting)]);
    let fx = t.feed(done(Phase::Start, true));
    assert_eq!(states(&fx), vec![(State::Starting, State::Up)]);
    let fx = t.feed(Input::Command(Command::Stop));
    assert_eq!(states(&fx), vec![(State::Up, State::Stopping)]);
    let act: Vec<_> = fx.into_iter().filter(|e| !matches!(e, Effect::StateChanged { .. })).collect();
    // Leave first; the stop scripts wait for the buckets to be released.
    assert_eq!(act, vec![Effect::StopCheckers, Effect::Leave]);
    assert_eq!(t.act(Input::Left), vec![Effect::WatchDrain, Effect::RunScripts(Phase::StopGraceful)]);
    let fx = t.stopped();
    assert_eq!(states(&fx), vec![(State::Stopping, State::Stop)]);
    assert_eq!(t.lc.state(), State::Stop);
}

#[test]
fn start_failure_stops_the_module() {
    let mut t = T::new(3);
    t.act(Input::Command(Command::Start));
    let fx = t.feed(done(Phase::Start, false));
    assert!(fx.iter().any(|e| matches!(e, Effect::Log(Level::Error, m) if m.contains("start_both failed"))));
    // Never joined, never ran checkers: straight to the stop scripts.
    assert_eq!(fx.last(), Some(&Effect::RunScripts(Phase::StopGraceful)));
    assert!(!fx.contains(&Effect::Leave) && !fx.contains(&Effect::StopCheckers));
    t.stopped();
    assert_eq!(t.lc.state(), State::Stop);
}

#[test]
fn wait_checker_holds_the_node_out_until_all_recover() {
    let mut t = T::new(3);
    t.started();
    assert_eq!(t.act(ev("gw", Action::Wait, Verdict::Failed)), vec![Effect::Leave]);
    assert_eq!(t.lc.state(), State::Wait);
    assert_eq!(t.act(ev("link", Action::Wait, Verdict::Failed)), vec![]);
    assert_eq!(t.act(ev("gw", Action::Wait, Verdict::Recovered)), vec![]);
    assert_eq!(t.lc.state(), State::Wait);
    assert_eq!(t.lc.waiting_on().collect::<Vec<_>>(), vec!["link"]);
    assert_eq!(t.act(ev("link", Action::Wait, Verdict::Recovered)), vec![Effect::Join]);
    assert_eq!(t.lc.state(), State::Up);
    // Stop from WAIT: the buckets are already released, no Leave handshake.
    t.act(ev("gw", Action::Wait, Verdict::Failed));
    assert_eq!(t.act(Input::Command(Command::Stop)), vec![Effect::StopCheckers, Effect::WatchDrain, Effect::RunScripts(Phase::StopGraceful)]);
}

#[test]
fn restart_action_restarts_locally_without_passing_through_stop() {
    let mut t = T::new(3);
    t.started();
    let fx = t.feed(ev("app", Action::Restart, Verdict::Failed));
    assert_eq!(states(&fx), vec![(State::Up, State::Stopping)]);
    t.act(Input::Left);
    let fx = t.stopped();
    assert_eq!(states(&fx), vec![(State::Stopping, State::Starting)]);
    assert_eq!(fx.last(), Some(&Effect::RunScripts(Phase::Start)));
    assert_eq!(t.act(done(Phase::Start, true)), vec![Effect::StartCheckers, Effect::Join]);
    assert_eq!(t.lc.policy().count(t.now), 1);
}

#[test]
fn stopstart_action_passes_through_stop() {
    let mut t = T::new(3);
    t.started();
    t.act(ev("app", Action::Stopstart, Verdict::Failed));
    t.act(Input::Left);
    let fx = t.stopped();
    assert_eq!(states(&fx), vec![(State::Stopping, State::Stop), (State::Stop, State::Starting)]);
    t.act(done(Phase::Start, true));
    assert_eq!(t.lc.state(), State::Up);
}

/// Runs one automatic restart cycle triggered at `offset`; returns whether the module
/// came back UP (false: it stopped).
fn fail_once(t: &mut T, offset: Duration) -> bool {
    t.at(offset);
    t.act(ev("app", Action::Restart, Verdict::Failed));
    t.act(Input::Left);
    t.stopped();
    if t.lc.state() == State::Stop {
        return false;
    }
    t.act(done(Phase::Start, true));
    t.lc.state() == State::Up
}

#[test]
fn fourth_failure_within_a_day_stops_the_module() {
    let mut t = T::new(3);
    t.started();
    assert!(fail_once(&mut t, H));
    assert!(fail_once(&mut t, 2 * H));
    assert!(fail_once(&mut t, 3 * H));
    t.at(20 * H);
    let fx = t.feed(ev("app", Action::Restart, Verdict::Failed));
    assert!(fx.iter().any(|e| matches!(e, Effect::Log(Level::Error, m) if m.contains("maxloop"))), "{fx:?}");
    t.act(Input::Left);
    let fx = t.stopped();
    assert_eq!(states(&fx), vec![(State::Stopping, State::Stop)]);
    assert_eq!(t.lc.state(), State::Stop);
}

#[test]
fn failures_spread_over_more_than_a_day_keep_restarting() {
    let mut t = T::new(3);
    t.started();
    for day in 0..10u32 {
        assert!(fail_once(&mut t, H * (9 * day + 1)), "failure {day}");
    }
}

#[test]
fn admin_start_resets_the_restart_count() {
    let mut t = T::new(1);
    t.started();
    assert!(fail_once(&mut t, H));
    assert!(!fail_once(&mut t, 2 * H)); // second failure > maxloop 1: stopped
    t.at(3 * H);
    t.started(); // admin start resets
    assert_eq!(t.lc.policy().count(t.now), 0);
    assert!(fail_once(&mut t, 4 * H));
}

#[test]
fn commands_during_transient_states_are_queued() {
    let mut t = T::new(3);
    t.act(Input::Command(Command::Start));
    assert!(t.act(Input::Command(Command::Stop)).is_empty());
    assert_eq!(t.lc.pending(), Some(Command::Stop));
    // start_both finishes: the queued stop runs instead of joining.
    let fx = t.act(done(Phase::Start, true));
    assert_eq!(fx, vec![Effect::WatchDrain, Effect::RunScripts(Phase::StopGraceful)]);
    assert!(t.act(Input::Command(Command::Start)).is_empty());
    let fx = t.stopped();
    assert_eq!(states(&fx), vec![(State::Stopping, State::Stop), (State::Stop, State::Starting)]);
    t.act(done(Phase::Start, true));
    assert_eq!(t.lc.state(), State::Up);
}

#[test]
fn admin_restart_goes_through_stop() {
    let mut t = T::new(3);
    t.started();
    t.act(Input::Command(Command::Restart));
    t.act(Input::Left);
    let fx = t.stopped();
    assert_eq!(states(&fx), vec![(State::Stopping, State::Stop), (State::Stop, State::Starting)]);
}

#[test]
fn stray_inputs_are_ignored() {
    let mut t = T::new(3);
    assert!(t.act(ev("app", Action::Restart, Verdict::Failed)).is_empty());
    assert!(t.act(Input::Left).is_empty());
    assert!(t.act(done(Phase::StopGraceful, true)).is_empty());
    assert!(t.act(Input::Drained { flows: 0 }).is_empty());
    assert!(t.act(done(Phase::StopForce, true)).is_empty());
    assert!(t.act(Input::Command(Command::Stop)).is_empty());
    assert_eq!(t.lc.state(), State::Stop);
    t.started();
    assert!(t.act(Input::Command(Command::Start)).is_empty());
    assert!(t.act(done(Phase::Start, true)).is_empty());
    assert!(t.act(ev("app", Action::Restart, Verdict::Recovered)).is_empty());
    assert_eq!(t.lc.state(), State::Up);
}

// UP means healthy: with checkers, the node joins only once every checker has passed since the
// last run of start_both.

/// A lifecycle whose module has checkers `app` (restart) and `gw` (wait).
fn with_checkers(maxloop: u32) -> T {
    let mut t = T::new(maxloop);
    t.lc = Lifecycle::new(RestartPolicy::new(maxloop, 24 * H)).with_checkers(["app", "gw"]);
    t
}

/// Starts the module: STARTING, then WAIT with the checkers running and nothing joined.
fn started_unproven(t: &mut T, c: Command) {
    assert_eq!(t.act(Input::Command(c)), vec![Effect::RunScripts(Phase::Start)]);
    let fx = t.feed(done(Phase::Start, true));
    assert_eq!(states(&fx), vec![(State::Starting, State::Wait)]);
    assert!(fx.contains(&Effect::StartCheckers) && !fx.contains(&Effect::Join), "{fx:?}");
    assert_eq!(t.lc.unproven().collect::<Vec<_>>(), vec!["app", "gw"]);
}

/// Both checkers pass: the node joins with the last one.
fn pass_all(t: &mut T) {
    assert_eq!(t.act(ev("app", Action::Restart, Verdict::Passed)), vec![]);
    assert_eq!(t.lc.state(), State::Wait);
    assert_eq!(t.lc.waiting_on().collect::<Vec<_>>(), vec!["gw"]);
    let fx = t.feed(ev("gw", Action::Wait, Verdict::Passed));
    assert_eq!(states(&fx), vec![(State::Wait, State::Up)]);
    assert!(fx.contains(&Effect::Join));
    assert_eq!(t.lc.waiting_on().count(), 0);
}

#[test]
fn with_checkers_the_node_goes_up_only_once_every_checker_passed() {
    let mut t = with_checkers(3);
    started_unproven(&mut t, Command::Start);
    assert_eq!(t.lc.state().exit_code(), 1);
    assert_eq!(t.lc.waiting_on().collect::<Vec<_>>(), vec!["app", "gw"]);
    pass_all(&mut t);
    assert_eq!(t.lc.state().exit_code(), 2);
}

#[test]
fn without_checkers_the_node_goes_up_when_start_both_succeeds() {
    let mut t = T::new(3);
    t.lc = Lifecycle::new(RestartPolicy::new(3, H)).with_checkers(Vec::<String>::new());
    t.started();
}

#[test]
fn an_application_that_never_comes_up_never_joins_and_ends_in_stop() {
    let mut t = with_checkers(2);
    started_unproven(&mut t, Command::Start);
    let mut all = Vec::new();
    for i in 1..=3u32 {
        t.at(H * i);
        // The restart checker fails before it ever passed: its action applies.
        let fx = t.feed(ev("app", Action::Restart, Verdict::Failed));
        // Never joined: no Leave handshake, straight to the stop scripts.
        assert!(!fx.contains(&Effect::Leave), "{fx:?}");
        assert_eq!(fx.last(), Some(&Effect::RunScripts(Phase::StopGraceful)));
        all.extend(fx);
        all.extend(t.stopped());
        if i < 3 {
            assert_eq!(t.lc.state(), State::Starting, "restart {i} of maxloop 2");
            all.extend(t.feed(done(Phase::Start, true)));
            assert_eq!(t.lc.state(), State::Wait);
        }
    }
    assert_eq!(t.lc.state(), State::Stop, "the third failure exceeds maxloop 2");
    assert!(!all.contains(&Effect::Join), "{all:?}");
    assert!(states(&all).iter().all(|&(_, to)| to != State::Up), "{all:?}");
    assert!(all.iter().any(|e| matches!(e, Effect::Log(Level::Error, m) if m.contains("exceed maxloop 2"))));
}

#[test]
fn after_a_restart_action_the_node_waits_for_its_checkers_again() {
    let mut t = with_checkers(3);
    started_unproven(&mut t, Command::Start);
    pass_all(&mut t);
    let fx = t.feed(ev("app", Action::Restart, Verdict::Failed));
    assert_eq!(states(&fx), vec![(State::Up, State::Stopping)]);
    assert_eq!(t.act(Input::Left), vec![Effect::WatchDrain, Effect::RunScripts(Phase::StopGraceful)]);
    t.stopped();
    assert_eq!(t.lc.state(), State::Starting);
    // start_both exits 0: not UP, not joined, until the checkers pass again.
    let fx = t.feed(done(Phase::Start, true));
    assert_eq!(states(&fx), vec![(State::Starting, State::Wait)]);
    assert!(!fx.contains(&Effect::Join));
    // A verdict of the checkers' previous run cannot count: only Passed after StartCheckers does.
    pass_all(&mut t);
}

#[test]
fn stopstart_and_admin_restart_wait_for_the_checkers_too() {
    for how in ["stopstart", "admin restart", "admin stop then start"] {
        let mut t = with_checkers(3);
        started_unproven(&mut t, Command::Start);
        pass_all(&mut t);
        match how {
            "stopstart" => drop(t.act(ev("app", Action::Stopstart, Verdict::Failed))),
            "admin restart" => drop(t.act(Input::Command(Command::Restart))),
            _ => drop(t.act(Input::Command(Command::Stop))),
        }
        t.act(Input::Left);
        let fx = t.stopped();
        if how == "admin stop then start" {
            assert_eq!(t.lc.state(), State::Stop);
            started_unproven(&mut t, Command::Start);
        } else {
            assert_eq!(states(&fx), vec![(State::Stopping, State::Stop), (State::Stop, State::Starting)], "{how}");
            let fx = t.feed(done(Phase::Start, true));
            assert_eq!(states(&fx), vec![(State::Starting, State::Wait)], "{how}");
        }
        assert!(!t.lc.state().owns_buckets(), "{how}");
        pass_all(&mut t);
    }
}

#[test]
fn wait_checkers_that_never_pass_keep_the_node_in_wait() {
    let mut t = T::new(3);
    t.lc = Lifecycle::new(RestartPolicy::new(3, H)).with_checkers(["gw"]);
    t.act(Input::Command(Command::Start));
    t.act(done(Phase::Start, true));
    assert_eq!(t.lc.state(), State::Wait);
    // Failing before it ever passed: WAIT, nothing to leave, no restart counted.
    assert_eq!(t.act(ev("gw", Action::Wait, Verdict::Failed)), vec![]);
    assert_eq!(t.lc.state(), State::Wait);
    assert_eq!(t.lc.policy().count(t.now), 0);
    assert_eq!(t.lc.waiting_on().collect::<Vec<_>>(), vec!["gw"]);
    // Recovering is passing.
    assert_eq!(t.act(ev("gw", Action::Wait, Verdict::Recovered)), vec![Effect::Join]);
    assert_eq!(t.lc.state(), State::Up);
}

#[test]
fn a_recovered_wait_checker_does_not_bring_up_a_node_whose_other_checkers_are_unproven() {
    let mut t = with_checkers(3);
    started_unproven(&mut t, Command::Start);
    t.act(ev("gw", Action::Wait, Verdict::Failed));
    assert_eq!(t.act(ev("gw", Action::Wait, Verdict::Recovered)), vec![]);
    assert_eq!(t.lc.state(), State::Wait);
    assert_eq!(t.lc.waiting_on().collect::<Vec<_>>(), vec!["app"]);
    assert_eq!(t.act(ev("app", Action::Restart, Verdict::Passed)), vec![Effect::Join]);
}

#[test]
fn admin_stop_while_waiting_for_the_checkers() {
    let mut t = with_checkers(3);
    started_unproven(&mut t, Command::Start);
    // Not joined: no Leave; the stop scripts run at once.
    assert_eq!(t.act(Input::Command(Command::Stop)), vec![Effect::StopCheckers, Effect::WatchDrain, Effect::RunScripts(Phase::StopGraceful)]);
    assert_eq!(t.lc.unproven().count(), 0);
    // A late Passed is ignored.
    assert!(t.act(ev("app", Action::Restart, Verdict::Passed)).is_empty());
    t.stopped();
    assert_eq!(t.lc.state(), State::Stop);
    assert!(t.act(ev("gw", Action::Wait, Verdict::Passed)).is_empty());
    assert_eq!(t.lc.state(), State::Stop);
}

/// A joined node that stops: Leave, Left, then the graceful stop.
fn stopping_after_left() -> T {
    let mut t = T::new(3);
    t.started();
    assert_eq!(t.act(Input::Command(Command::Stop)), vec![Effect::StopCheckers, Effect::Leave]);
    assert_eq!(t.act(Input::Left), vec![Effect::WatchDrain, Effect::RunScripts(Phase::StopGraceful)]);
    t
}

#[test]
fn graceful_stop_without_connections_left_needs_no_force() {
    let mut t = stopping_after_left();
    // The connections drain while stop_both (graceful) runs; both must end.
    assert!(t.act(Input::Drained { flows: 0 }).is_empty());
    assert_eq!(t.lc.state(), State::Stopping);
    let fx = t.feed(done(Phase::StopGraceful, true));
    assert!(!fx.contains(&Effect::RunScripts(Phase::StopForce)), "{fx:?}");
    assert!(fx.iter().any(|e| matches!(e, Effect::Log(Level::Info, m) if m.contains("force not needed"))), "{fx:?}");
    assert_eq!(states(&fx), vec![(State::Stopping, State::Stop)]);
}

#[test]
fn connections_left_at_the_drain_timeout_get_stop_both_force() {
    let mut t = stopping_after_left();
    assert!(t.act(done(Phase::StopGraceful, true)).is_empty(), "waits for the drain");
    let fx = t.feed(Input::Drained { flows: 4 });
    assert!(fx.iter().any(|e| matches!(e, Effect::Log(Level::Warn, m) if m.contains("4 connections left"))), "{fx:?}");
    assert_eq!(fx.last(), Some(&Effect::RunScripts(Phase::StopForce)));
    assert_eq!(t.lc.state(), State::Stopping);
    let fx = t.feed(done(Phase::StopForce, true));
    assert_eq!(states(&fx), vec![(State::Stopping, State::Stop)]);
}

#[test]
fn a_failed_graceful_stop_gets_stop_both_force() {
    let mut t = stopping_after_left();
    assert!(t.act(done(Phase::StopGraceful, false)).is_empty(), "waits for the drain");
    assert_eq!(t.act(Input::Drained { flows: 0 }), vec![Effect::RunScripts(Phase::StopForce)]);
    t.act(done(Phase::StopForce, true));
    assert_eq!(t.lc.state(), State::Stop);
}

#[test]
fn a_restart_drains_then_starts_without_force() {
    let mut t = T::new(3);
    t.started();
    assert_eq!(t.act(Input::Command(Command::Restart)), vec![Effect::StopCheckers, Effect::Leave]);
    t.act(Input::Left);
    let fx = t.stopped();
    assert!(!fx.contains(&Effect::RunScripts(Phase::StopForce)), "{fx:?}");
    assert_eq!(fx.last(), Some(&Effect::RunScripts(Phase::Start)));
}
