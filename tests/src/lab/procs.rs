//! Processes of the lab: pid files, `ip netns pids`, signals, waiting.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::cmd::run_status;

/// Reads a pid file (a decimal pid, possibly followed by a newline).
pub fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok().filter(|p| *p > 1)
}

/// Whether `pid` exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Field 3 (after the parenthesised command) is the state; Z = zombie, X = dead.
        Ok(s) => s
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|st| st != "Z" && st != "X"),
        Err(_) => false,
    }
}

/// The command line of `pid`, arguments joined with spaces.
pub fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Pids of the processes in network namespace `ns` (`ip netns pids`); empty if it is gone.
pub fn ns_pids(ns: &str) -> Vec<i32> {
    match run_status("ip", ["netns", "pids", ns]) {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .filter(|p: &i32| *p > 1 && *p != std::process::id() as i32)
            .collect(),
        _ => Vec::new(),
    }
}

fn signal(pid: i32, sig: Signal) {
    if let Err(e) = kill(Pid::from_raw(pid), sig) {
        if e != nix::errno::Errno::ESRCH {
            tracing::warn!(pid, ?sig, error = %e, "kill failed");
        }
    }
}

/// Waits until none of `pids` is alive; false on timeout.
pub fn wait_gone(pids: &[i32], timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if pids.iter().all(|p| !alive(*p)) {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM, then SIGKILL after `grace`: returns the pids still alive at the end (should be
/// none).
pub fn terminate(pids: &[i32], grace: Duration) -> Vec<i32> {
    for p in pids {
        signal(*p, Signal::SIGTERM);
    }
    if !wait_gone(pids, grace) {
        for p in pids.iter().filter(|p| alive(**p)) {
            tracing::debug!(pid = p, cmd = %cmdline(*p), "SIGKILL after SIGTERM grace");
            signal(*p, Signal::SIGKILL);
        }
        wait_gone(pids, Duration::from_secs(10));
    }
    pids.iter().copied().filter(|p| alive(*p)).collect()
}

/// SIGKILL right away (a crash); waits for the processes to disappear (up to 10 s: a process
/// with packet sockets may take a while to exit on a loaded machine).
pub fn kill_now(pids: &[i32]) -> Vec<i32> {
    for p in pids {
        signal(*p, Signal::SIGKILL);
    }
    wait_gone(pids, Duration::from_secs(10));
    pids.iter().copied().filter(|p| alive(*p)).collect()
}

/// Sends `sig` to `pid` (e.g. SIGSTOP / SIGCONT for a hung node).
pub fn send(pid: i32, sig: Signal) {
    signal(pid, sig);
}

/// Stops the process of a pid file if its command line mentions `marker` (so a recycled pid is
/// never hit); returns whether one was running.
pub fn stop_pid_file(path: &Path, marker: &str, grace: Duration) -> bool {
    let Some(pid) = read_pid(path) else { return false };
    if !alive(pid) || !cmdline(pid).contains(marker) {
        return false;
    }
    terminate(&[pid], grace);
    true
}

/// Terminates every process of namespace `ns` (SIGTERM, then SIGKILL); repeats while new ones
/// appear (a supervisor restarting its children). Returns the pids still there.
pub fn empty_namespace(ns: &str, grace: Duration) -> Vec<i32> {
    for _ in 0..5 {
        let pids = ns_pids(ns);
        if pids.is_empty() {
            return pids;
        }
        terminate(&pids, grace);
    }
    ns_pids(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_files_and_liveness() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.pid");
        assert_eq!(read_pid(&f), None);
        std::fs::write(&f, "1\n").unwrap();
        assert_eq!(read_pid(&f), None, "pid 1 is never ours");
        std::fs::write(&f, "garbage").unwrap();
        assert_eq!(read_pid(&f), None);
        let me = std::process::id() as i32;
        std::fs::write(&f, format!("{me}\n")).unwrap();
        assert_eq!(read_pid(&f), Some(me));
        assert!(alive(me));
        assert!(!cmdline(me).is_empty());
        // Not our marker: left alone.
        assert!(!stop_pid_file(&f, "no-such-marker-in-cmdline", Duration::from_millis(10)));
        assert!(alive(me));
    }

    #[test]
    fn terminate_kills_a_process_that_ignores_sigterm() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "trap '' TERM; exec sleep 30"])
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        std::thread::sleep(Duration::from_millis(100));
        let reaper = std::thread::spawn(move || child.wait());
        let left = terminate(&[pid], Duration::from_millis(200));
        assert!(left.is_empty(), "still alive: {left:?}");
        assert!(reaper.join().unwrap().is_ok());
        assert!(!alive(pid));
    }
}
