//! Errors: every message names the file, the place in it (line:column when known) and the key,
//! then says what was expected.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// One thing wrong with a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file (or the origin given to [`Config::from_str`](crate::Config::from_str)).
    pub file: String,
    /// 1-based line and column of the offending key or value, when it can be located.
    pub line_col: Option<(usize, usize)>,
    /// Key path, e.g. `heartbeat.pulse` or `vip[0].rule[1].ports` (empty for syntax errors
    /// outside any key).
    pub key: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some((line, col)) = self.line_col {
            write!(f, ":{line}:{col}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A list of problems, displayed one per line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Errors from loading, validating or checking a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read the configuration: {source}", file.display())]
    Read {
        /// The path given to [`Config::load`](crate::Config::load).
        file: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Syntax, type or validation errors (at least one).
    #[error("{0}")]
    Invalid(Problems),
    /// A check of the machine the configuration refers to failed (see
    /// [`Config::check_runtime`](crate::Config::check_runtime)).
    #[error("{file}: {key}: {}: {message}", path.display())]
    Runtime {
        /// The configuration file.
        file: String,
        /// The key naming the path, e.g. `module.secret_file`.
        key: String,
        /// The file or program that failed the check.
        path: PathBuf,
        /// What is wrong and what was expected.
        message: String,
    },
    /// This machine's node could not be determined.
    #[error("{file}: node: {message}")]
    LocalNode {
        /// The configuration file.
        file: String,
        /// Why, and how to fix it (e.g. pass `--node NAME`).
        message: String,
    },
}

impl ConfigError {
    /// The problems of an [`ConfigError::Invalid`] error (empty for other variants).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid(p) => &p.0,
            _ => &[],
        }
    }
}
