//! [`Lifecycle::replace_checkers`]: a configuration reload changes the checker set.

use std::time::{Duration, Instant};

use super::*;
use crate::checkers::{CheckerEvent, Verdict};

fn started(names: &[&str]) -> (Lifecycle, Instant) {
    let now = Instant::now();
    let mut lc = Lifecycle::new(RestartPolicy::new(3, Duration::from_secs(3600))).with_checkers(names.iter().copied());
    lc.handle(Input::Command(Command::Start), now);
    lc.handle(Input::ScriptsDone { phase: Phase::Start, ok: true }, now);
    (lc, now)
}

fn passed(lc: &mut Lifecycle, name: &str, now: Instant) -> Vec<Effect> {
    let ev = CheckerEvent { name: name.into(), action: farm_config::Action::Wait, verdict: Verdict::Passed, detail: "ok".into() };
    lc.handle(Input::Checker(ev), now)
}

#[test]
fn in_wait_the_new_set_is_waited_for_and_a_removed_checker_no_longer_holds_the_node() {
    let (mut lc, now) = started(&["a", "b"]);
    assert_eq!(lc.state(), State::Wait);
    passed(&mut lc, "a", now);
    // b removed, c added: the node waits for c only (a passed already).
    let fx = lc.replace_checkers(["a", "c"]);
    assert_eq!(fx, vec![Effect::StartCheckers]);
    assert_eq!(lc.waiting_on().collect::<Vec<_>>(), ["c"]);
    assert!(passed(&mut lc, "c", now).contains(&Effect::Join));
    assert_eq!(lc.state(), State::Up);

    // Removing the last checker the node waits for lets it join at once.
    let (mut lc, _) = started(&["a"]);
    let fx = lc.replace_checkers(Vec::<String>::new());
    assert!(fx.contains(&Effect::StartCheckers) && fx.contains(&Effect::Join), "{fx:?}");
    assert_eq!(lc.state(), State::Up);
}

#[test]
fn in_up_the_node_stays_up_and_in_stop_nothing_starts() {
    let (mut lc, now) = started(&["a"]);
    passed(&mut lc, "a", now);
    assert_eq!(lc.state(), State::Up);
    assert_eq!(lc.replace_checkers(["a", "new"]), vec![Effect::StartCheckers]);
    assert_eq!(lc.state(), State::Up);
    assert_eq!(lc.waiting_on().count(), 0);

    let mut stopped = Lifecycle::new(RestartPolicy::new(3, Duration::from_secs(3600))).with_checkers(["a"]);
    assert!(stopped.replace_checkers(["b"]).is_empty());
    assert_eq!(stopped.state(), State::Stop);
}
