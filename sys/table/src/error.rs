//! Errors of the shared-memory table.

use std::path::PathBuf;

/// Everything that can go wrong creating, opening or publishing a table.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// A system call on the table file failed.
    #[error("table file {path}: {what}: {source}")]
    Io {
        /// The table file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with the farm table magic.
    #[error("table file {path}: not a farm table (magic {found:#018x}, expected {expected:#018x})")]
    BadMagic {
        /// The table file.
        path: PathBuf,
        /// The magic found.
        found: u64,
        /// The magic expected.
        expected: u64,
    },
    /// The file was written by another ABI version.
    #[error("table file {path}: ABI version {found}, this program speaks version {expected}; restart farmd and the data plane from the same release")]
    AbiVersion {
        /// The table file.
        path: PathBuf,
        /// Version in the file.
        found: u32,
        /// Version of this build.
        expected: u32,
    },
    /// The file is shorter than its header says, or than a header.
    #[error("table file {path}: truncated or inconsistent size ({len} bytes, expected {expected})")]
    Truncated {
        /// The table file.
        path: PathBuf,
        /// The file's length.
        len: u64,
        /// The length its header implies.
        expected: u64,
    },
    /// A header field is out of range.
    #[error("table file {path}: invalid header: {what}")]
    BadHeader {
        /// The table file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// Parameters given to the writer are out of range.
    #[error("invalid table parameters: {0}")]
    BadParams(String),
    /// A reader lcore did not leave the generation whose slot must be reused.
    #[error("data-plane lcore {lcore} still runs on generation {acked}, generation {needed} is required before the slot can be reused")]
    ReaderStuck {
        /// The lcore index.
        lcore: usize,
        /// The generation it acknowledged.
        acked: u64,
        /// The generation needed.
        needed: u64,
    },
    /// An lcore index beyond the table's lcore count.
    #[error("lcore index {idx} out of range: the table has {n} lcore areas")]
    LcoreOutOfRange {
        /// The index asked for.
        idx: usize,
        /// The number of lcore areas.
        n: usize,
    },
    /// The entry slice given to `publish` has the wrong length.
    #[error("publish: {got} bucket entries given, the table has {expected}")]
    WrongLength {
        /// Entries given.
        got: usize,
        /// Buckets in the table.
        expected: usize,
    },
}
