//! Errors of the lab.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong building, using or tearing down a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A lab option is out of range or malformed (nothing was created).
    #[error("invalid lab option: {0}")]
    Invalid(String),
    /// A command needs a lab that is up.
    #[error("lab {0} is not up (run `farm-lab up --prefix {0}` first)")]
    NotUp(String),
    /// The lab needs root (namespaces, veths, bridges).
    #[error("farm-lab must run as root (it creates network namespaces, veths and a bridge)")]
    NotRoot,
    /// A program the lab needs is missing (nothing was created).
    #[error("{what} not found: {detail}")]
    Missing {
        /// The program or file.
        what: String,
        /// Where it was looked for, what to do.
        detail: String,
    },
    /// Something with one of the lab's names exists already (nothing was created or changed).
    #[error("{0}")]
    Conflict(String),
    /// A port that a lab service needs is already bound in its namespace.
    #[error("port {port}/{proto} is already in use in namespace {ns}: {by}")]
    PortInUse {
        /// Namespace.
        ns: String,
        /// Port number.
        port: u16,
        /// `tcp` or `udp`.
        proto: &'static str,
        /// What `ss` says holds it.
        by: String,
    },
    /// A command exited with an error.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        cmd: String,
        /// Its exit status.
        status: String,
        /// Its standard error (trimmed).
        stderr: String,
    },
    /// A command could not be started.
    #[error("cannot run `{cmd}`: {source}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file of the lab could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A service did not come up in time.
    #[error("{what} not ready after {after:?}: {detail}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long.
        after: Duration,
        /// The last failure, or a log tail.
        detail: String,
    },
    /// The lab was built but does not answer as it should (e.g. a node's page from the client).
    #[error("lab check failed: {0}")]
    Check(String),
    /// The farm configuration generated from the template is not valid.
    #[error("lab configuration: {0}")]
    Config(String),
    /// `up` was interrupted (SIGINT/SIGTERM); the lab was torn down.
    #[error("interrupted (the lab is torn down)")]
    Interrupted,
    /// Teardown could not remove everything.
    #[error("teardown left {0}")]
    Leftovers(String),
}

impl LabError {
    /// An [`LabError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> LabError {
        LabError::Io { path: path.into(), source }
    }
}
