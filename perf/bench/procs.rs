//! Child processes: start with logs in the run directory, stop politely, and
//! never leave one behind.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A child that is sent SIGTERM (then SIGKILL) when dropped.
#[derive(Debug)]
pub struct Guard {
    /// What it is, for messages.
    pub name: String,
    /// The process.
    pub child: Option<Child>,
    /// Signal that asks it to stop (`TERM`; netsniff-ng's trafgen wants `INT`).
    pub signal: &'static str,
    /// Signal its whole process group (it leads one), as a terminal's ^C does:
    /// trafgen forks its senders and only they stop on SIGINT.
    pub group: bool,
}

impl Guard {
    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// True while it runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Its stop signal, wait up to `grace`, then SIGKILL; returns the exit status.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        let target = if self.group { format!("-{}", child.id()) } else { child.id().to_string() };
        let _ = Command::new("kill").args([format!("-{}", self.signal), "--".to_owned(), target]).status();
        let t = Instant::now();
        while t.elapsed() < grace {
            if let Ok(Some(s)) = child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::warn!(name = %self.name, signal = self.signal, "did not stop: killing it");
        if self.group {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
        }
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

/// The command as one shell-quoted line (for the report).
pub fn command_line(cmd: &Command) -> String {
    let quote = |s: &str| {
        if s.chars().all(|c| c.is_ascii_alphanumeric() || "-_=./:,@%+".contains(c)) {
            s.to_owned()
        } else {
            format!("'{}'", s.replace('\'', r"'\''"))
        }
    };
    std::iter::once(cmd.get_program().to_string_lossy().into_owned())
        .chain(cmd.get_args().map(|a| a.to_string_lossy().into_owned()))
        .map(|a| quote(&a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `prog` run through `nice -n <nice>` when `nice` is not 0 (same pid: nice execs).
pub fn niced(prog: impl AsRef<std::ffi::OsStr>, nice: i32) -> Command {
    if nice == 0 {
        return Command::new(prog);
    }
    let mut c = Command::new("nice");
    c.arg("-n").arg(nice.to_string()).arg(prog);
    c
}

/// [`spawn`] as the leader of a new process group, stopped by signalling the group.
pub fn spawn_group(name: &str, mut cmd: Command, dir: &Path, signal: &'static str) -> Result<Guard> {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    let mut g = spawn(name, cmd, dir)?;
    g.group = true;
    g.signal = signal;
    Ok(g)
}

/// Starts `cmd` with stdout and stderr in `<dir>/<name>.out` / `.err`.
pub fn spawn(name: &str, mut cmd: Command, dir: &Path) -> Result<Guard> {
    let out = File::create(dir.join(format!("{name}.out")))?;
    let err = File::create(dir.join(format!("{name}.err")))?;
    tracing::debug!(cmd = %command_line(&cmd), "spawn");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("start {}", command_line(&cmd)))?;
    Ok(Guard { name: name.to_owned(), child: Some(child), signal: "TERM", group: false })
}

/// Runs a short command to completion; its stdout, or an error with its stderr.
pub fn run(cmd: &mut Command) -> Result<String> {
    let line = command_line(cmd);
    let o = cmd.stdin(Stdio::null()).output().with_context(|| format!("run {line}"))?;
    if !o.status.success() {
        bail!("{line}: {} {}", o.status, String::from_utf8_lossy(&o.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// True once a unix socket (filesystem path, or abstract name as memif uses by
/// default) named `path` is listening.
pub fn unix_listening(path: &Path) -> bool {
    let p = path.to_string_lossy();
    let abstract_name = format!("@{p}");
    std::fs::read_to_string("/proc/net/unix").is_ok_and(|t| {
        t.lines().skip(1).any(|l| {
            let name = l.split_whitespace().nth(7).unwrap_or("");
            name == p || name == abstract_name
        })
    })
}

/// Tail of a log file, for error messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let t = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = t.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}
