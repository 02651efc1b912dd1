//! The lab's record of itself: `R/lab.json`, written first thing by `up`; read by `status`
//! and `exec`. Teardown does not need it (it finds the lab by its names).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::LabError;

/// How the nodes are wired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The real thing: farmd + farm-dataplane own each node's uplink; node address on the TAP
    /// `farm0`, VIP on `lo`, Apache started by farmd's `start_both`.
    Farm,
    /// farm-dataplane on each node (farm-mode network), no farmd: the lab publishes a fixed
    /// table (bucket b -> node 1 + b mod N) and starts Apache itself. Tests the data plane and
    /// the VIP path without the control plane.
    Dataplane,
    /// Baseline without farm: the node address directly on the veth, Apache started by the lab.
    Direct,
}

impl Mode {
    /// Whether the nodes' uplinks belong to farm-dataplane (node address on `farm0`).
    pub fn has_dataplane(self) -> bool {
        matches!(self, Mode::Farm | Mode::Dataplane)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Farm => "farm",
            Mode::Dataplane => "dataplane",
            Mode::Direct => "direct",
        })
    }
}

/// What `up` recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Lab prefix.
    pub prefix: String,
    /// Mode.
    pub mode: Mode,
    /// Number of nodes.
    pub nodes: usize,
    /// Number of client addresses.
    pub clients: usize,
    /// The apache2 program.
    pub apache: PathBuf,
    /// Where farmd and farm-dataplane are (farm mode).
    pub bin_dir: Option<PathBuf>,
}

impl State {
    /// The file in run directory `r`.
    pub fn path(r: &Path) -> PathBuf {
        r.join("lab.json")
    }

    /// Writes `R/lab.json`.
    pub fn write(&self, r: &Path) -> Result<(), LabError> {
        let p = State::path(r);
        let text = serde_json::to_string_pretty(self).expect("State serializes");
        std::fs::write(&p, text).map_err(|e| LabError::io(&p, e))
    }

    /// Reads `R/lab.json`.
    pub fn read(r: &Path) -> Result<State, LabError> {
        let p = State::path(r);
        let text = std::fs::read_to_string(&p).map_err(|e| LabError::io(&p, e))?;
        serde_json::from_str(&text).map_err(|e| {
            LabError::io(&p, std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let s = State {
            prefix: "farm".into(),
            mode: Mode::Direct,
            nodes: 3,
            clients: 508,
            apache: "/usr/sbin/apache2".into(),
            bin_dir: None,
        };
        s.write(dir.path()).unwrap();
        assert_eq!(State::read(dir.path()).unwrap(), s);
        assert!(std::fs::read_to_string(State::path(dir.path())).unwrap().contains("\"direct\""));
        assert!(State::read(&dir.path().join("none")).is_err());
    }
}
