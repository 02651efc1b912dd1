//! The supervisor with real child processes (`/bin/sh`) and fabricated table snapshots.

use super::*;

fn sh(script: &str, pid_file: Option<PathBuf>) -> DataplaneCommand {
    DataplaneCommand { program: "/bin/sh".into(), args: vec!["-c".into(), script.into()], pid_file }
}

fn snap(pid: u32, liveness_ns: u64) -> DataplaneStatus {
    DataplaneStatus { link_up: true, link_speed_mbps: 0, liveness_ns, pid, lcores: vec![], flows_per_bucket: vec![], lease_until_ns: 0, tsc_hz: 0 }
}

fn alive(pid: u32) -> bool {
    // A zombie has no exe link; a reaped process has no directory.
    fs::read_link(format!("/proc/{pid}/exe")).is_ok()
}

fn started(ev: &[DpEvent]) -> u32 {
    match ev {
        [DpEvent::Started { pid }] => *pid,
        other => panic!("expected Started, got {other:?}"),
    }
}

const S: u64 = 1_000_000_000;

#[test]
fn ready_then_wedged_then_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("dp.pid");
    let mut s = Supervisor::new(sh("exec sleep 30", Some(pid_file.clone())), RestartPolicy::new(3, Duration::from_secs(3600)), Duration::from_millis(500))
        .with_timers(Duration::from_secs(10), Duration::from_millis(100));
    let t0 = Instant::now();
    let pid = started(&s.start(t0, 100 * S));
    assert_eq!(fs::read_to_string(&pid_file).unwrap().trim(), pid.to_string());
    assert_eq!(s.pid(), Some(pid));
    // Not attached yet: an old stamp from an earlier process does not count.
    assert!(s.poll(t0, 100 * S, Some(&snap(pid, 99 * S))).is_empty());
    assert!(!s.ready());
    // Another pid: not ours.
    assert!(s.poll(t0, 100 * S, Some(&snap(pid + 1, 100 * S + 1))).is_empty());
    let ev = s.poll(t0, 100 * S + 2, Some(&snap(pid, 100 * S + 1)));
    assert_eq!(ev, vec![DpEvent::Ready { pid }]);
    assert!(s.ready() && s.ready_since().is_some());
    // Fresh stamps: nothing happens.
    assert!(s.poll(t0, 100 * S + S / 4, Some(&snap(pid, 100 * S + S / 5))).is_empty());
    // Stamp 600 ms old: wedged, killed, restart scheduled.
    let ev = s.poll(t0, 101 * S, Some(&snap(pid, 100 * S + S / 5 + 1)));
    assert!(matches!(&ev[..], [DpEvent::Died { pid: p, reason, restarting: true }] if *p == pid && reason.contains("liveness stamp")), "{ev:?}");
    assert!(!alive(pid), "the wedged process was killed");
    assert!(!pid_file.exists());
    assert!(!s.ready() && s.pid().is_none());
    // Not before the restart delay.
    assert!(s.poll(t0 + Duration::from_millis(50), 101 * S, None).is_empty());
    let pid2 = started(&s.poll(t0 + Duration::from_millis(100), 101 * S, None));
    assert_ne!(pid, pid2);
    assert_eq!((s.starts(), s.deaths()), (2, 1));
    s.shutdown();
    assert!(!alive(pid2));
}

#[test]
fn exits_count_against_the_policy_until_it_gives_up() {
    let mut s = Supervisor::new(sh("exit 3", None), RestartPolicy::new(1, Duration::from_secs(3600)), Duration::from_millis(500))
        .with_timers(Duration::from_secs(10), Duration::ZERO);
    let t0 = Instant::now();
    started(&s.start(t0, S));
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s.gave_up() && Instant::now() < deadline {
        events.extend(s.poll(Instant::now(), S, None));
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(s.gave_up(), "{events:?}");
    let died: Vec<_> = events.iter().filter(|e| matches!(e, DpEvent::Died { .. })).collect();
    assert_eq!(died.len(), 2, "{events:?}");
    assert!(matches!(died[0], DpEvent::Died { reason, restarting: true, .. } if reason == "exited with code 3"));
    assert!(matches!(died[1], DpEvent::Died { restarting: false, .. }));
    assert!(matches!(events.last(), Some(DpEvent::GaveUp { count: 2 })));
    // Stays down.
    assert!(s.poll(Instant::now() + Duration::from_secs(5), S, None).is_empty());
    // An administrator's start.
    s.reset_policy();
    started(&s.start(Instant::now(), S));
    assert!(!s.gave_up());
}

#[test]
fn no_stamp_within_the_grace_is_wedged() {
    let mut s = Supervisor::new(sh("exec sleep 30", None), RestartPolicy::new(3, Duration::from_secs(3600)), Duration::from_millis(500))
        .with_timers(Duration::from_millis(200), Duration::from_secs(1));
    let t0 = Instant::now();
    let pid = started(&s.start(t0, S));
    assert!(s.poll(t0 + Duration::from_millis(100), S, Some(&snap(0, 0))).is_empty());
    let ev = s.poll(t0 + Duration::from_millis(300), S, Some(&snap(0, 0)));
    assert!(matches!(&ev[..], [DpEvent::Died { reason, restarting: true, .. }] if reason.contains("no liveness stamp")), "{ev:?}");
    assert!(!alive(pid));
}

#[test]
fn stop_sends_sigterm_to_the_group_and_can_restart() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("term");
    // The shell traps TERM, records it, exits; its `sleep` child is in the same group.
    let script = format!("trap 'echo term > {}; exit 0' TERM; sleep 30 & wait", marker.display());
    let mut s = Supervisor::new(sh(&script, None), RestartPolicy::new(3, Duration::from_secs(3600)), Duration::from_millis(500));
    let t0 = Instant::now();
    let pid = started(&s.start(t0, S));
    std::thread::sleep(Duration::from_millis(200));
    s.stop(Instant::now(), true);
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !events.iter().any(|e| matches!(e, DpEvent::Started { .. })) && Instant::now() < deadline {
        events.extend(s.poll(Instant::now(), S, None));
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(matches!(&events[..], [DpEvent::Stopped, DpEvent::Started { pid: p }] if *p != pid), "{events:?}");
    assert_eq!(fs::read_to_string(&marker).unwrap().trim(), "term");
    assert_eq!(s.deaths(), 0, "a requested stop is not a death");
    s.shutdown();
}

#[test]
fn a_program_that_cannot_start_counts_as_a_death() {
    let cmd = DataplaneCommand { program: "/nonexistent/farm-dataplane".into(), args: vec![], pid_file: None };
    let mut s = Supervisor::new(cmd, RestartPolicy::new(0, Duration::from_secs(3600)), Duration::from_millis(500));
    let ev = s.start(Instant::now(), S);
    assert!(matches!(&ev[..], [DpEvent::Died { restarting: false, reason, .. }, DpEvent::GaveUp { count: 1 }] if reason.contains("cannot start")), "{ev:?}");
}
