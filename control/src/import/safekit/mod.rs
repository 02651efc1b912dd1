//! SafeKit farm module → farm.toml (`farmctl import safekit userconfig.xml [cluster.xml]`).
//!
//! The element and attribute names are those of SafeKit 8.2's user guide (sections 12,
//! "Cluster.xml", and 13, "Userconfig.xml"). What maps to what:
//!
//! | SafeKit | farm |
//! |---|---|
//! | `<macro name value>` | `%name%` replaced in every attribute value |
//! | `<service mode="farm" boot maxloop loop_interval>` | `module.autostart`, `[restart] maxloop`, `loop_interval` (hours when no unit) |
//! | cluster.xml `<lans><lan name><node name addr>` | `[[node]] name`, `addrs` (one per LAN that `<farm><lan name>` uses, in its order) |
//! | `<farm port pulse slost_count>` | `[heartbeat] port`, `pulse`, `dead_after` = `slost_count` × `pulse` |
//! | `<vip><interface check name>` | an `interface = "uplink"` checker with action `wait`; `name` → `uplink = "net_af_packet0,iface=NAME"` |
//! | `<virtual_interface type="vmac_invisible">` | farm's only mode (virtual MAC `5a:fe:` + VIP, never a source) |
//! | `<virtual_addr addr>` | `[[vip]] addr` |
//! | `<rule virtual_addr port proto filter>` | `[[vip.rule]] proto`, `ports`, `affinity` (`on_addr`, `on_port`) |
//! | `<group><cluster><host name power>` | `[[node]] weight` |
//! | `<check><tcp ident when action><to addr port interval timeout>` | `kind = "tcp"` checker |
//! | `<check><ping ...>` | `kind = "ping"` checker |
//! | `<errd polltimer><proc name atleast action class start_after>` | `kind = "process"` checkers (`interval` = `polltimer`) |
//! | `<user nicestoptimeout forcestoptimeout><var>` | `[scripts]` `start_both`, `stop_both`, `stop_drain_timeout`, `timeout`, `env` |
//!
//! SafeKit acts on a checker's first failure and counts its resource up on the first success:
//! the checkers get `fail_after = 1`, `ok_after = 1`.
//!
//! Everything else written in the files (e.g. `filter="on_ipid"`, `vmac_directed`, `<rfs>`,
//! `<failover>`, an unknown attribute) is a [`Warning`] naming the file, line, element and
//! attribute and why; [`Conversion::notes`] says what the operator must do by hand (copy the
//! scripts, move addresses to the TAP) and which implicit SafeKit defaults farm does differently.

mod emit;
mod members;
mod walk;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;

/// Where the conversion writes files and which values it cannot find in SafeKit's files.
#[derive(Clone, Debug)]
pub struct Options {
    /// `module.name` (SafeKit keeps it in the module's directory name, not in the XML).
    pub module: String,
    /// `module.cluster_id`.
    pub cluster_id: u32,
    /// `module.secret_file` (absolute; `farmctl config init` creates it).
    pub secret_file: PathBuf,
    /// `api.token_file` (absolute; `farmctl config init` creates it).
    pub token_file: PathBuf,
    /// `[scripts] dir`, where SafeKit's `start_both` / `stop_both` are to be copied.
    pub scripts_dir: PathBuf,
    /// `[dataplane] uplink` (else from `<interface name>`, else a placeholder and a warning).
    pub uplink: Option<String>,
}

/// One XML file to convert: a name for messages and its text.
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    /// The file's name as messages show it.
    pub name: &'a str,
    /// Its content.
    pub text: &'a str,
}

/// Something in the SafeKit files that was not converted, or converted with another meaning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// `file:line`.
    pub at: String,
    /// The element and attribute concerned, e.g. `<rule filter="on_ipid">`.
    pub what: String,
    /// Why, and what farm does instead.
    pub why: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.at, self.what, self.why)
    }
}

/// The result of a conversion.
#[derive(Clone, Debug)]
pub struct Conversion {
    /// The farm.toml text (the warnings are repeated as comments at its top).
    pub toml: String,
    /// What was not converted or changed meaning; empty: everything was converted.
    pub warnings: Vec<Warning>,
    /// What to do by hand, and implicit SafeKit defaults that farm handles differently.
    pub notes: Vec<String>,
}

/// Why nothing could be converted.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Not well-formed XML.
    #[error("{file}: not an XML file: {source}")]
    Xml {
        /// The file.
        file: String,
        /// The parser's error (with its position).
        source: roxmltree::Error,
    },
    /// Valid XML that cannot make a farm configuration.
    #[error("{at}: {what}: {why}")]
    Invalid {
        /// `file:line`.
        at: String,
        /// The element or attribute.
        what: String,
        /// What was expected.
        why: String,
    },
}

/// Converts a SafeKit farm module (its `userconfig.xml`, and the `cluster.xml` that names the
/// nodes, unless the module uses SafeKit 7.1's `<lan><node>` syntax).
pub fn convert(userconfig: Source<'_>, cluster: Option<Source<'_>>, opts: &Options) -> Result<Conversion, ImportError> {
    members::convert(userconfig, cluster, opts)
}

/// A module name from the path of a `userconfig.xml`: SafeKit keeps it at
/// `SAFE/modules/<name>/conf/userconfig.xml`, so the directory above `conf`, made to fit
/// `[a-z0-9_-]` (lower case, other characters as `-`, at most 32); `None` otherwise.
pub fn module_name_from_path(path: &std::path::Path) -> Option<String> {
    let dir = path.parent()?;
    let dir = if dir.file_name()? == "conf" { dir.parent()? } else { return None };
    let raw = dir.file_name()?.to_string_lossy().to_lowercase();
    let raw = raw.strip_suffix(".safe").unwrap_or(&raw);
    let name: String = raw.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '-' }).take(32).collect();
    let name = name.trim_start_matches(['-', '_']).to_string();
    (!name.is_empty()).then_some(name)
}
