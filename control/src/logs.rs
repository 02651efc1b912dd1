//! The module log and the application log, persisted under `[module] log_dir` with size-based
//! rotation.
//!
//! - `module.log`: state changes, membership, checker events, table changes, `farmctl printi`
//!   and `printe` messages (SafeKit's module log).
//! - `application.log`: the output of `start_both` / `stop_both` (SafeKit's application log).
//!
//! One entry per line: `<RFC 3339 UTC time, ms> <level letter> <message>`, e.g.
//! `2026-01-02T03:04:05.678Z I state STOP -> STARTING (admin start)`. Newlines inside a message
//! are replaced by spaces so that a line is always an entry. When a file would grow past
//! [`LogSettings::max_bytes`] it is renamed `<name>.1` (`.1` to `.2`, ... up to
//! [`LogSettings::keep`] old files, the oldest deleted).
//!
//! Every entry written by farmd is also emitted as a `tracing` event (journald sees it).
//! `farmctl printi|printe` append to `module.log` directly with [`append_entry`]: lines are
//! written with one `write` on a file opened with `O_APPEND`, so they never interleave with
//! farmd's.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// File name of the module log inside the log directory.
pub const MODULE_LOG: &str = "module.log";
/// File name of the application log inside the log directory.
pub const APP_LOG: &str = "application.log";

/// Errors opening the logs.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The directory or a file could not be created or opened.
    #[error("{}: cannot {what}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What was attempted.
        what: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// Severity of a module-log entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Information (`I`).
    Info,
    /// Warning (`W`).
    Warn,
    /// Error (`E`).
    Error,
}

impl Level {
    /// The letter written in the file.
    pub fn letter(self) -> char {
        match self {
            Level::Info => 'I',
            Level::Warn => 'W',
            Level::Error => 'E',
        }
    }
}

/// Rotation settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogSettings {
    /// A file is rotated before it would exceed this size (default 8 MiB).
    pub max_bytes: u64,
    /// Rotated files kept (`.1` ..= `.keep`, default 5).
    pub keep: usize,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings { max_bytes: 8 << 20, keep: 5 }
    }
}

/// Formats one entry (without the trailing newline).
pub fn format_entry(at: SystemTime, tag: &str, msg: &str) -> String {
    let ts = humantime::format_rfc3339_millis(at);
    let mut line = String::with_capacity(msg.len() + 32);
    line.push_str(&ts.to_string());
    line.push(' ');
    line.push_str(tag);
    line.push(' ');
    for c in msg.chars() {
        line.push(if c == '\n' || c == '\r' { ' ' } else { c });
    }
    line
}

/// A log file that rotates by size.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    settings: LogSettings,
    file: File,
    size: u64,
}

fn open_append(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| LogError::Io { path: path.to_owned(), what: "open for appending", source })
}

/// The path of rotated file number `n` (`n >= 1`).
pub fn rotated_path(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl RotatingFile {
    /// Opens (creating) `path` for appending; creates its directory if needed.
    pub fn open(path: &Path, settings: LogSettings) -> Result<RotatingFile, LogError> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)
                .map_err(|source| LogError::Io { path: dir.to_owned(), what: "create the log directory", source })?;
        }
        let file = open_append(path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(RotatingFile { path: path.to_owned(), settings, file, size })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `line` and a newline, rotating first if the file would grow past the limit.
    pub fn write_line(&mut self, line: &str) -> io::Result<()> {
        let len = line.len() as u64 + 1;
        if self.size + len > self.settings.max_bytes && self.size > 0 {
            // Others (farmctl printi) may have appended: trust the file, not the counter.
            self.size = self.file.metadata().map(|m| m.len()).unwrap_or(self.size);
            if self.size + len > self.settings.max_bytes {
                self.rotate()?;
            }
        }
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        self.file.write_all(&buf)?;
        self.size += len;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.settings.keep == 0 {
            fs::remove_file(&self.path).or_else(ignore_missing)?;
        } else {
            fs::remove_file(rotated_path(&self.path, self.settings.keep)).or_else(ignore_missing)?;
            for n in (1..self.settings.keep).rev() {
                fs::rename(rotated_path(&self.path, n), rotated_path(&self.path, n + 1)).or_else(ignore_missing)?;
            }
            fs::rename(&self.path, rotated_path(&self.path, 1)).or_else(ignore_missing)?;
        }
        self.file = open_append(&self.path).map_err(|e| match e {
            LogError::Io { source, .. } => source,
        })?;
        self.size = 0;
        Ok(())
    }
}

fn ignore_missing(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

/// The two logs of a module. Cheap to clone; safe to use from any thread.
#[derive(Clone, Debug)]
pub struct Logs {
    module: Arc<Mutex<RotatingFile>>,
    app: Arc<Mutex<RotatingFile>>,
}

impl Logs {
    /// Opens (creating) `module.log` and `application.log` in `dir`.
    pub fn open(dir: &Path, settings: LogSettings) -> Result<Logs, LogError> {
        Ok(Logs {
            module: Arc::new(Mutex::new(RotatingFile::open(&dir.join(MODULE_LOG), settings)?)),
            app: Arc::new(Mutex::new(RotatingFile::open(&dir.join(APP_LOG), settings)?)),
        })
    }

    fn write(file: &Mutex<RotatingFile>, line: &str) {
        let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = f.write_line(line) {
            tracing::warn!(path = %f.path().display(), error = %e, "cannot write to the log");
        }
    }

    /// Appends an entry to the module log (and emits it as a tracing event).
    pub fn module(&self, level: Level, msg: &str) {
        match level {
            Level::Info => tracing::info!(target: "farm::module", "{msg}"),
            Level::Warn => tracing::warn!(target: "farm::module", "{msg}"),
            Level::Error => tracing::error!(target: "farm::module", "{msg}"),
        }
        let tag = level.letter().to_string();
        Self::write(&self.module, &format_entry(SystemTime::now(), &tag, msg));
    }

    /// An informational module-log entry.
    pub fn info(&self, msg: &str) {
        self.module(Level::Info, msg);
    }

    /// A warning module-log entry.
    pub fn warn(&self, msg: &str) {
        self.module(Level::Warn, msg);
    }

    /// An error module-log entry.
    pub fn error(&self, msg: &str) {
        self.module(Level::Error, msg);
    }

    /// Appends one line of script output to the application log, tagged with its source
    /// (e.g. `start_both[out]`).
    pub fn app(&self, source: &str, line: &str) {
        tracing::debug!(target: "farm::app", source, "{line}");
        Self::write(&self.app, &format_entry(SystemTime::now(), source, line));
    }

    /// The module log's path.
    pub fn module_path(&self) -> PathBuf {
        self.module.lock().unwrap_or_else(|p| p.into_inner()).path().to_owned()
    }

    /// The application log's path.
    pub fn app_path(&self) -> PathBuf {
        self.app.lock().unwrap_or_else(|p| p.into_inner()).path().to_owned()
    }
}

/// Appends one entry to a log file without rotating it (used by `farmctl printi|printe`,
/// which may run while farmd writes the same file).
pub fn append_entry(path: &Path, level: Level, msg: &str) -> Result<(), LogError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)
            .map_err(|source| LogError::Io { path: dir.to_owned(), what: "create the log directory", source })?;
    }
    let mut file = open_append(path)?;
    let mut line = format_entry(SystemTime::now(), &level.letter().to_string(), msg);
    line.push('\n');
    file.write_all(line.as_bytes())
        .map_err(|source| LogError::Io { path: path.to_owned(), what: "append to", source })
}

/// The last `n` lines of a log, reading older rotated files (`.1`, `.2`, ...) when the
/// current one has fewer; `None` reads everything. Missing files are skipped.
pub fn tail(path: &Path, n: Option<usize>, keep: usize) -> io::Result<Vec<String>> {
    let mut files = vec![path.to_owned()];
    files.extend((1..=keep).map(|k| rotated_path(path, k)));
    // Newest first; collect lines of each file, stop once enough.
    let mut chunks: Vec<Vec<String>> = Vec::new();
    let mut have = 0usize;
    for f in files {
        let file = match File::open(&f) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let mut last: VecDeque<String> = VecDeque::new();
        for line in BufReader::new(file).split(b'\n') {
            let line = String::from_utf8_lossy(&line?).into_owned();
            last.push_back(line);
            if let Some(n) = n {
                if last.len() > n {
                    last.pop_front();
                }
            }
        }
        have += last.len();
        chunks.push(last.into());
        if n.is_some_and(|n| have >= n) {
            break;
        }
    }
    let mut out: Vec<String> = chunks.into_iter().rev().flatten().collect();
    if let Some(n) = n {
        let extra = out.len().saturating_sub(n);
        out.drain(..extra);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn entry_format_is_one_line_with_time_and_level() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let e = format_entry(at, "I", "state STOP -> UP\nsecond line");
        assert_eq!(e, "2023-11-14T22:13:20.123Z I state STOP -> UP second line");
    }

    #[test]
    fn rotation_keeps_n_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/module.log");
        let mut f = RotatingFile::open(&path, LogSettings { max_bytes: 100, keep: 2 }).unwrap();
        for i in 0..40 {
            f.write_line(&format!("line {i:02} 0123456789")).unwrap(); // 20 bytes with '\n'
        }
        // 5 lines per file: current holds 35..39, .1 30..34, .2 25..29, older ones deleted.
        let cur = fs::read_to_string(&path).unwrap();
        assert_eq!(cur.lines().count(), 5);
        assert!(cur.starts_with("line 35"));
        assert!(fs::read_to_string(rotated_path(&path, 1)).unwrap().starts_with("line 30"));
        assert!(fs::read_to_string(rotated_path(&path, 2)).unwrap().starts_with("line 25"));
        assert!(!rotated_path(&path, 3).exists());
        assert!(fs::metadata(&path).unwrap().len() <= 100);
    }

    #[test]
    fn tail_reads_across_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("module.log");
        let mut f = RotatingFile::open(&path, LogSettings { max_bytes: 100, keep: 3 }).unwrap();
        for i in 0..12 {
            f.write_line(&format!("line {i:02} 0123456789")).unwrap();
        }
        let last = tail(&path, Some(7), 3).unwrap();
        let want: Vec<String> = (5..12).map(|i| format!("line {i:02} 0123456789")).collect();
        assert_eq!(last, want);
        assert_eq!(tail(&path, None, 3).unwrap().len(), 12);
        assert_eq!(tail(&dir.path().join("none.log"), Some(3), 3).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn logs_and_append_entry_share_the_module_log() {
        let dir = tempfile::tempdir().unwrap();
        let logs = Logs::open(dir.path(), LogSettings::default()).unwrap();
        logs.info("hello");
        append_entry(&logs.module_path(), Level::Error, "from farmctl").unwrap();
        logs.app("start_both[out]", "apache started");
        let m = fs::read_to_string(dir.path().join(MODULE_LOG)).unwrap();
        let lines: Vec<&str> = m.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with(" I hello"), "{m}");
        assert!(lines[1].ends_with(" E from farmctl"), "{m}");
        let a = fs::read_to_string(dir.path().join(APP_LOG)).unwrap();
        assert!(a.trim_end().ends_with(" start_both[out] apache started"), "{a}");
    }
}
