//! The node's addresses on the data plane's kernel interface (`[dataplane] tap_addrs`).
//!
//! farm-dataplane creates the TAP (`tap_name`) without any address, and a restarted data
//! plane creates it anew; heartbeats leave through it, so farmd configures it each time the
//! data plane becomes ready: one `ip -force -batch -` run with
//! `address replace <addr/prefix> dev <tap>` per address, then `link set dev <tap> up`.
//!
//! The loop never waits for `ip`: [`TapSetup::poll`] (once per pulse, and when a child exits)
//! reaps the previous run and starts the next one. `ip` writes its errors to a file (reading it
//! never blocks, unlike a pipe a stray grandchild could hold open). A failed run is retried at
//! the next pulse; a run still going after [`RUN_TIMEOUT`] is killed and counts as a failure.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tracing::debug;

/// Where iproute2's `ip` is looked for, in order.
pub const IP_PATHS: [&str; 4] = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"];

/// Longest run of `ip` before it is killed (default).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(5);

/// The first of [`IP_PATHS`] that exists.
pub fn find_ip() -> Option<PathBuf> {
    IP_PATHS.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// What a finished run of `ip` means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TapReport {
    /// The addresses are on the interface and it is up.
    Configured {
        /// Runs it took (1 unless earlier runs failed).
        attempts: u32,
    },
    /// The run failed; it is retried at the next pulse.
    Failed {
        /// What `ip` said (or why it could not run).
        error: String,
        /// The previous attempt failed the same way (log it once).
        repeated: bool,
    },
}

#[derive(Debug)]
struct Running {
    child: Child,
    since: Instant,
    /// The request it serves.
    request: u64,
}

/// Puts the configured addresses on the interface when asked to, until it succeeds.
#[derive(Debug)]
pub struct TapSetup {
    program: PathBuf,
    ifname: String,
    addrs: Vec<String>,
    /// Where `ip` writes its errors.
    err_file: PathBuf,
    /// Requests so far; the one in `wanted` is still to be carried out.
    requests: u64,
    wanted: Option<u64>,
    running: Option<Running>,
    attempts: u32,
    last_error: Option<String>,
    timeout: Duration,
}

impl TapSetup {
    /// `program` is iproute2's `ip` (see [`find_ip`]); `addrs` in `ip address` syntax
    /// (`198.18.0.1/16`); `err_file` receives `ip`'s error messages (rewritten at each run).
    pub fn new(program: impl Into<PathBuf>, ifname: &str, addrs: Vec<String>, err_file: impl Into<PathBuf>) -> TapSetup {
        TapSetup {
            program: program.into(),
            ifname: ifname.to_string(),
            addrs,
            err_file: err_file.into(),
            requests: 0,
            wanted: None,
            running: None,
            attempts: 0,
            last_error: None,
            timeout: RUN_TIMEOUT,
        }
    }

    /// Overrides [`RUN_TIMEOUT`] (tests).
    pub fn with_timeout(mut self, timeout: Duration) -> TapSetup {
        self.timeout = timeout;
        self
    }

    /// The program.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The commands given to `ip -batch`.
    pub fn batch(&self) -> String {
        let mut b = String::new();
        for a in &self.addrs {
            b.push_str(&format!("address replace {a} dev {}\n", self.ifname));
        }
        b.push_str(&format!("link set dev {} up\n", self.ifname));
        b
    }

    /// The data plane became ready (again): configure the interface.
    pub fn request(&mut self) {
        self.requests += 1;
        self.wanted = Some(self.requests);
        self.attempts = 0;
        self.last_error = None;
    }

    /// The data plane is gone, and the interface with it: nothing to do until the next
    /// [`TapSetup::request`] (a run under way finishes unheeded).
    pub fn cancel(&mut self) {
        self.wanted = None;
    }

    /// Whether a request is not carried out yet.
    pub fn pending(&self) -> bool {
        self.wanted.is_some()
    }

    /// Whether `ip` runs.
    pub fn running(&self) -> bool {
        self.running.is_some()
    }

    /// Reaps a finished run (reporting it if it served the current request), then starts a
    /// run if one is wanted and none just failed (a failure is retried at the next call).
    pub fn poll(&mut self, now: Instant) -> Option<TapReport> {
        if let Some(r) = &mut self.running {
            let result = match r.child.try_wait() {
                Ok(Some(status)) if status.success() => Ok(()),
                Ok(Some(status)) => Err(format!("{} {status}: {}", self.program.display(), read_errors(&self.err_file))),
                Ok(None) if now.saturating_duration_since(r.since) <= self.timeout => return None,
                Ok(None) => {
                    let _ = r.child.kill();
                    let _ = r.child.wait();
                    Err(format!("{} still running after {}: killed", self.program.display(), humantime::format_duration(self.timeout)))
                }
                Err(e) => {
                    let _ = r.child.kill();
                    let _ = r.child.wait();
                    Err(format!("cannot wait for {}: {e}", self.program.display()))
                }
            };
            let served = r.request;
            self.running = None;
            if self.wanted == Some(served) {
                return Some(match result {
                    Ok(()) => {
                        self.wanted = None;
                        self.last_error = None;
                        TapReport::Configured { attempts: self.attempts }
                    }
                    Err(error) => self.failed(error),
                });
            }
            debug!(?result, "tap addresses: result of a superseded run ignored");
        }
        let request = self.wanted?;
        self.attempts += 1;
        match self.spawn() {
            Ok(child) => {
                self.running = Some(Running { child, since: now, request });
                None
            }
            Err(error) => Some(self.failed(error)),
        }
    }

    fn failed(&mut self, error: String) -> TapReport {
        let repeated = self.last_error.as_deref() == Some(error.as_str());
        self.last_error = Some(error.clone());
        TapReport::Failed { error, repeated }
    }

    fn spawn(&self) -> Result<Child, String> {
        let err = File::create(&self.err_file)
            .map_err(|e| format!("cannot create {}: {e}", self.err_file.display()))?;
        let mut child = Command::new(&self.program)
            .args(["-force", "-batch", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.program.display()))?;
        // A few lines: far below the pipe's capacity, so the write does not block.
        let batch = self.batch();
        if let Some(mut stdin) = child.stdin.take() {
            if let Err(e) = stdin.write_all(batch.as_bytes()) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("cannot write to {}: {e}", self.program.display()));
            }
        }
        Ok(child)
    }
}

impl Drop for TapSetup {
    fn drop(&mut self) {
        if let Some(r) = &mut self.running {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }
}

/// The first 4 KiB of what `ip` wrote to `path`, on one line.
fn read_errors(path: &Path) -> String {
    let mut bytes = Vec::new();
    if let Ok(f) = File::open(path) {
        let _ = f.take(4096).read_to_end(&mut bytes);
    }
    let line = String::from_utf8_lossy(&bytes).split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        "(no message)".into()
    } else {
        line
    }
}

#[cfg(test)]
mod tests;
