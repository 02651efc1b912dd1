//! The application's `start_both` / `stop_both` scripts, and the bounded command runner that
//! custom checkers share.
//!
//! Every run is bounded by a timeout (`[scripts] timeout`, default 300 s). A command runs in its
//! own process group; at its timeout the whole group gets `SIGTERM`, then `SIGKILL` after
//! [`KILL_GRACE`], so a hung script and the children it started are gone. Its stdout and stderr
//! go, line by line, to the application log (`start_both[out]`, `stop_both[err]`, ...); its
//! result goes to the module log.
//!
//! Stopping runs `stop_both` with no argument (graceful), and with the argument `force` only
//! when needed: the module lifecycle runs [`Phase::StopGraceful`] while the node's connections
//! drain, then [`Phase::StopForce`] if the graceful run failed or timed out or connections were
//! left at the stop's drain timeout ([`crate::lifecycle`]). The graceful run is bounded by the
//! smaller of the timeout and that drain timeout ([`ScriptRunner::spawn_within`]).
//!
//! Scripts get the configured `[scripts] env` plus:
//!
//! | variable | value |
//! | --- | --- |
//! | `FARM_MODULE` | module name |
//! | `FARM_NODE`, `FARM_NODE_ID` | this node's name and id |
//! | `FARM_ACTION` | `start` or `stop` |
//! | `FARM_STOP_MODE` | `graceful` or `force` (stop only) |
//! | `FARM_MODULE_DIR` | `[scripts] dir` (else the script's directory); also the working directory |
//! | `FARM_LOG_DIR`, `FARM_RUN_DIR` | `[module] log_dir`, `run_dir` |
//! | `FARM_CONFIG` | the configuration file |
//!
//! [`ScriptRunner`] runs a phase on a background thread and reports a [`ScriptOutcome`] on a
//! channel, so the daemon loop never blocks.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver, Sender};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::logs::Logs;

/// Time between `SIGTERM` and `SIGKILL` to a timed-out process group.
pub const KILL_GRACE: Duration = Duration::from_secs(2);
/// How long to wait for the output pipes to close after a command exits. A daemon started by
/// a script may keep them open; its later output still reaches the application log.
const DRAIN_WAIT: Duration = Duration::from_millis(500);
/// Lines kept by [`Output::Capture`].
const CAPTURE_LINES: usize = 20;

/// How a command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it (not our timeout).
    Signal(i32),
    /// It ran past its timeout; its process group was killed.
    TimedOut,
    /// It could not be started.
    SpawnFailed(String),
}

impl Exit {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        *self == Exit::Code(0)
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit code {c}"),
            Exit::Signal(s) => write!(f, "killed by signal {s}"),
            Exit::TimedOut => f.write_str("timed out, process group killed"),
            Exit::SpawnFailed(e) => write!(f, "cannot start: {e}"),
        }
    }
}

/// The result of one command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunReport {
    /// What ran (e.g. `stop_both force`).
    pub label: String,
    /// How it ended.
    pub exit: Exit,
    /// How long it ran.
    pub elapsed: Duration,
    /// The last lines of its output, with [`Output::Capture`] (empty otherwise).
    pub captured: Vec<String>,
}

/// Where a command's output goes.
#[derive(Clone, Debug)]
pub enum Output {
    /// Each line to the application log, tagged `<tag>[out]` / `<tag>[err]`.
    AppLog(Logs, String),
    /// The last lines are kept in [`RunReport::captured`].
    Capture,
    /// Discarded.
    Discard,
}

/// A command to run.
#[derive(Clone, Debug)]
pub struct Invocation {
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Working directory (default: inherited).
    pub cwd: Option<PathBuf>,
    /// Time limit.
    pub timeout: Duration,
}

impl Invocation {
    fn label(&self) -> String {
        let name = self.program.file_name().map_or_else(|| self.program.display().to_string(), |n| n.to_string_lossy().into_owned());
        std::iter::once(name).chain(self.args.iter().cloned()).collect::<Vec<_>>().join(" ")
    }
}

fn pump(stream: impl Read + Send + 'static, sink: Output, tag: &'static str, kept: Arc<Mutex<Vec<String>>>) -> Receiver<()> {
    let (done_tx, done_rx) = channel::bounded(1);
    thread::spawn(move || {
        for line in BufReader::new(stream).split(b'\n') {
            let Ok(line) = line else { break };
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches('\r');
            match &sink {
                Output::AppLog(logs, source) => logs.app(&format!("{source}[{tag}]"), line),
                Output::Capture => {
                    let mut k = kept.lock().unwrap_or_else(|p| p.into_inner());
                    if k.len() == CAPTURE_LINES {
                        k.remove(0);
                    }
                    k.push(line.to_string());
                }
                Output::Discard => {}
            }
        }
        let _ = done_tx.send(());
    });
    done_rx
}

fn signal_group(pgid: Pid, sig: Signal) {
    if let Err(e) = killpg(pgid, sig) {
        if e != nix::errno::Errno::ESRCH {
            tracing::warn!(pgid = pgid.as_raw(), ?sig, error = %e, "cannot signal the process group");
        }
    }
}

/// Runs a command to completion or to its timeout (blocking the calling thread).
pub fn run(inv: &Invocation, output: Output) -> RunReport {
    let label = inv.label();
    let start = Instant::now();
    let mut cmd = Command::new(&inv.program);
    cmd.args(&inv.args)
        .envs(inv.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(dir) = &inv.cwd {
        cmd.current_dir(dir);
    }
    let report = |exit, captured| RunReport { label: label.clone(), exit, elapsed: start.elapsed(), captured };
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return report(Exit::SpawnFailed(format!("{}: {e}", inv.program.display())), Vec::new()),
    };
    let pgid = Pid::from_raw(child.id() as i32);
    let kept = Arc::new(Mutex::new(Vec::new()));
    let mut done = Vec::new();
    if let Some(out) = child.stdout.take() {
        done.push(pump(out, output.clone(), "out", kept.clone()));
    }
    if let Some(err) = child.stderr.take() {
        done.push(pump(err, output.clone(), "err", kept.clone()));
    }
    let deadline = start + inv.timeout;
    let mut nap = Duration::from_millis(1);
    let exit = loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                break match (status.code(), status.signal()) {
                    (Some(c), _) => Exit::Code(c),
                    (None, Some(s)) => Exit::Signal(s),
                    (None, None) => Exit::Code(-1),
                };
            }
            Ok(None) => {}
            Err(e) => {
                signal_group(pgid, Signal::SIGKILL);
                let _ = child.wait();
                break Exit::SpawnFailed(format!("wait: {e}"));
            }
        }
        let now = Instant::now();
        if now >= deadline {
            signal_group(pgid, Signal::SIGTERM);
            let grace_end = Instant::now() + KILL_GRACE;
            while Instant::now() < grace_end && matches!(child.try_wait(), Ok(None)) {
                thread::sleep(Duration::from_millis(10));
            }
            // The leader may be gone while children it started still run: kill the group.
            signal_group(pgid, Signal::SIGKILL);
            let _ = child.wait();
            break Exit::TimedOut;
        }
        thread::sleep(nap.min(deadline - now));
        nap = (nap * 2).min(Duration::from_millis(50));
    };
    let drain_end = Instant::now() + DRAIN_WAIT;
    for d in done {
        let left = drain_end.saturating_duration_since(Instant::now());
        let _ = d.recv_timeout(left);
    }
    let captured = std::mem::take(&mut *kept.lock().unwrap_or_else(|p| p.into_inner()));
    report(exit, captured)
}

/// A lifecycle phase that runs scripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// `start_both`.
    Start,
    /// `stop_both`, then `stop_both force` if the first run failed or timed out (both at
    /// once, without waiting for connections to drain; the lifecycle runs the two halves).
    Stop,
    /// `stop_both` (graceful) alone.
    StopGraceful,
    /// `stop_both force` alone.
    StopForce,
}

/// What the scripts of a phase did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptOutcome {
    /// The phase.
    pub phase: Phase,
    /// Start, StopGraceful, StopForce: its run exited 0 (or no script is configured). Stop:
    /// the last run exited 0.
    pub ok: bool,
    /// Each run, in order (empty when no script is configured).
    pub runs: Vec<RunReport>,
}

/// The scripts and their environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptSettings {
    /// `start_both` (absolute).
    pub start_both: Option<PathBuf>,
    /// `stop_both` (absolute).
    pub stop_both: Option<PathBuf>,
    /// Time limit of each run.
    pub timeout: Duration,
    /// Environment common to every script and custom checker.
    pub env: Vec<(String, String)>,
    /// Working directory (`FARM_MODULE_DIR`).
    pub dir: Option<PathBuf>,
}

impl ScriptSettings {
    /// From a loaded (and localized) configuration and this node.
    pub fn from_config(cfg: &farm_config::Config, node: &farm_config::Node) -> ScriptSettings {
        let s = &cfg.scripts;
        let dir = s
            .dir
            .clone()
            .or_else(|| s.start_both.as_ref().or(s.stop_both.as_ref()).and_then(|p| p.parent().map(Path::to_path_buf)));
        let mut env = vec![
            ("FARM_MODULE".to_string(), cfg.module.name.to_string()),
            ("FARM_NODE".to_string(), node.name.to_string()),
            ("FARM_NODE_ID".to_string(), node.id.to_string()),
            ("FARM_LOG_DIR".to_string(), cfg.module.log_dir.display().to_string()),
            ("FARM_RUN_DIR".to_string(), cfg.module.run_dir.display().to_string()),
            ("FARM_CONFIG".to_string(), cfg.origin.clone()),
        ];
        if let Some(d) = &dir {
            env.push(("FARM_MODULE_DIR".to_string(), d.display().to_string()));
        }
        env.extend(s.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        ScriptSettings { start_both: s.start_both.clone(), stop_both: s.stop_both.clone(), timeout: s.timeout, env, dir }
    }

    fn invocation(&self, program: &Path, args: &[&str], extra: &[(&str, &str)]) -> Invocation {
        let mut env = self.env.clone();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Invocation {
            program: program.to_owned(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env,
            cwd: self.dir.clone().filter(|d| d.is_dir()),
            timeout: self.timeout,
        }
    }
}

fn log_run(logs: &Logs, r: &RunReport) {
    let msg = format!("{}: {} after {:.1}s", r.label, r.exit, r.elapsed.as_secs_f64());
    if r.exit.success() {
        logs.info(&msg);
    } else {
        logs.error(&msg);
    }
}

/// Runs the scripts of `phase` synchronously, logging each run.
pub fn run_phase(settings: &ScriptSettings, phase: Phase, logs: &Logs) -> ScriptOutcome {
    let mut runs = Vec::new();
    match phase {
        Phase::Start => {
            if let Some(p) = &settings.start_both {
                logs.info(&format!("start_both: running {}", p.display()));
                let inv = settings.invocation(p, &[], &[("FARM_ACTION", "start")]);
                let r = run(&inv, Output::AppLog(logs.clone(), "start_both".into()));
                log_run(logs, &r);
                runs.push(r);
            }
            let ok = runs.iter().all(|r| r.exit.success());
            ScriptOutcome { phase, ok, runs }
        }
        Phase::Stop | Phase::StopGraceful | Phase::StopForce => {
            if let Some(p) = &settings.stop_both {
                let modes: &[(&[&str], &str)] = match phase {
                    Phase::StopForce => &[(&["force"], "force")],
                    Phase::StopGraceful => &[(&[], "graceful")],
                    _ => &[(&[], "graceful"), (&["force"], "force")],
                };
                for &(args, mode) in modes {
                    if mode == "force" && phase == Phase::Stop && runs.iter().all(|r: &RunReport| r.exit.success()) {
                        break;
                    }
                    logs.info(&format!("stop_both: running {} ({mode})", p.display()));
                    let inv = settings.invocation(p, args, &[("FARM_ACTION", "stop"), ("FARM_STOP_MODE", mode)]);
                    let r = run(&inv, Output::AppLog(logs.clone(), "stop_both".into()));
                    log_run(logs, &r);
                    runs.push(r);
                }
            }
            let ok = !matches!(runs.last(), Some(r) if !r.exit.success());
            ScriptOutcome { phase, ok, runs }
        }
    }
}

/// Errors of [`ScriptRunner::spawn`].
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// A phase is still running.
    #[error("the {0:?} scripts are still running")]
    Busy(Phase),
    /// The thread could not be created.
    #[error("cannot start the script thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Runs phases on a background thread, one at a time; outcomes arrive on the receiver given
/// by [`ScriptRunner::new`].
#[derive(Debug)]
pub struct ScriptRunner {
    settings: Arc<ScriptSettings>,
    logs: Logs,
    tx: Sender<ScriptOutcome>,
    /// The phase in progress; cleared by the thread just before it sends the outcome, so a
    /// receiver of the outcome may start the next phase at once.
    running: Arc<Mutex<Option<Phase>>>,
}

impl ScriptRunner {
    /// A runner and the receiver of its outcomes.
    pub fn new(settings: ScriptSettings, logs: Logs) -> (ScriptRunner, Receiver<ScriptOutcome>) {
        let (tx, rx) = channel::unbounded();
        (ScriptRunner { settings: Arc::new(settings), logs, tx, running: Arc::new(Mutex::new(None)) }, rx)
    }

    /// The phase still running, if any.
    pub fn running(&self) -> Option<Phase> {
        *self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts `phase` in the background; its [`ScriptOutcome`] is sent when done.
    pub fn spawn(&mut self, phase: Phase) -> Result<(), ScriptError> {
        self.spawn_within(phase, self.settings.timeout)
    }

    /// [`ScriptRunner::spawn`] with each run bounded by `limit` when it is shorter than the
    /// configured timeout (the graceful stop is bounded by the stop's drain timeout).
    pub fn spawn_within(&mut self, phase: Phase, limit: Duration) -> Result<(), ScriptError> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = *running {
            return Err(ScriptError::Busy(p));
        }
        let settings = if limit < self.settings.timeout {
            Arc::new(ScriptSettings { timeout: limit, ..(*self.settings).clone() })
        } else {
            self.settings.clone()
        };
        let (logs, tx, flag) = (self.logs.clone(), self.tx.clone(), self.running.clone());
        thread::Builder::new()
            .name(format!("farm-{phase:?}-scripts").to_lowercase())
            .spawn(move || {
                let outcome = run_phase(&settings, phase, &logs);
                *flag.lock().unwrap_or_else(|p| p.into_inner()) = None;
                let _ = tx.send(outcome);
            })
            .map_err(ScriptError::Thread)?;
        *running = Some(phase);
        Ok(())
    }
}
