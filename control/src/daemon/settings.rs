//! Everything farmd derives from the configuration before it touches the machine: the
//! membership configuration, the secret, the heartbeat addresses, the API settings. A failure
//! here leaves no trace (no socket, no table file, no log directory).

use std::net::SocketAddr;
use std::path::PathBuf;
use farm_config::{Config, Node};

use super::DaemonError;
use crate::api::ApiSettings;
use crate::checkers::{CheckerSpec, ProbeContext, SharedDataplane};
use crate::membership::{self, Mode, NodeConfig, Takeover};
use crate::scripts::ScriptSettings;

/// farmd's options (the command line, see `farmd --help`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The configuration file.
    pub config: PathBuf,
    /// This node's name (default: the node with an address on this machine).
    pub node: Option<String>,
    /// Start the module once farmd runs (default: `[module] autostart`, false: the module
    /// stays in STOP until `farmctl start`).
    pub start: bool,
    /// Never run the data plane, but write the table file anyway (tests, tools; several farmd
    /// on one machine without DPDK).
    pub table_only: bool,
    /// iproute2's `ip`, for `[dataplane] tap_addrs` (default: the first of
    /// [`super::tap::IP_PATHS`] that exists).
    pub ip: Option<PathBuf>,
}

/// What the data plane is, for this run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataplaneMode {
    /// farmd starts and supervises `farm-dataplane` (this program).
    Supervised(PathBuf),
    /// No data plane; the table file is written anyway (`--table-only`).
    TableOnly,
    /// Control-only mode (`dataplane.enabled = false`): no data plane, no table file.
    None,
}

/// The validated inputs of a run.
#[derive(Debug)]
pub struct Prepared {
    /// The options.
    pub opts: Options,
    /// The configuration, localized for this node.
    pub cfg: Config,
    /// This node.
    pub node: Node,
    /// The heartbeat secret.
    pub secret: Vec<u8>,
    /// The membership state machine's configuration.
    pub membership: membership::Config,
    /// The data plane.
    pub dataplane: DataplaneMode,
    /// The API.
    pub api: ApiSettings,
    /// Local heartbeat address per LAN.
    pub local_addrs: Vec<SocketAddr>,
    /// Every peer's heartbeat address per LAN, by node id.
    pub peer_addrs: Vec<(u8, Vec<SocketAddr>)>,
    /// `ip` and the addresses (`198.18.0.1/16`) to put on the TAP each time the data plane
    /// becomes ready (`[dataplane] tap_addrs`, with a supervised data plane).
    pub tap: Option<(PathBuf, Vec<String>)>,
}

/// The membership configuration of `node` in `cfg`.
pub fn membership_config(cfg: &Config, node: &Node) -> membership::Config {
    let ids: Vec<u8> = cfg.nodes.iter().map(|n| n.id.get()).collect();
    let mut m = membership::Config::new(cfg.module.cluster_id, cfg.module.hash_seed, cfg.buckets(), node.id.get(), &ids);
    m.weight = node.weight.get();
    m.nodes = cfg.nodes.iter().map(|n| NodeConfig { id: n.id.get(), priority: n.priority }).collect();
    m.pulse = cfg.heartbeat.pulse;
    m.dead_after = cfg.heartbeat.dead_after;
    m.takeover = match cfg.assignment.takeover {
        farm_config::Takeover::Always => Takeover::Always,
        farm_config::Takeover::Majority => Takeover::Majority,
    };
    m.witness = cfg.assignment.witness.is_some() && m.takeover == Takeover::Majority;
    m.mode = match cfg.assignment.mode {
        farm_config::Mode::Farm => Mode::Farm,
        farm_config::Mode::Failover => Mode::Failover { failback: cfg.assignment.failback },
    };
    // No deadline unless the safety valve is set: a released bucket drains for as long as the
    // data plane reports flows in it (I2).
    m.drain_timeout = cfg.assignment.drain_timeout;
    m
}

impl Prepared {
    /// Loads and checks everything; touches nothing.
    pub fn load(opts: Options) -> Result<Prepared, DaemonError> {
        let (cfg, node) = Config::load_local(&opts.config, opts.node.as_deref())?;
        let dataplane = if opts.table_only {
            DataplaneMode::TableOnly
        } else if cfg.dataplane.enabled {
            DataplaneMode::Supervised(cfg.dataplane_binary()?)
        } else {
            DataplaneMode::None
        };
        // The machine checks, minus the data-plane program when it is not run.
        let mut rt_cfg = cfg.clone();
        rt_cfg.dataplane.enabled = matches!(dataplane, DataplaneMode::Supervised(_));
        rt_cfg.check_runtime()?;
        let secret = cfg.read_secret()?;
        let membership = membership_config(&cfg, &node);
        membership.validate().map_err(|e| DaemonError::Membership(e.into()))?;
        // The checkers must build with the data plane this run has.
        let dp_view: Option<std::sync::Arc<dyn crate::checkers::DataplaneView>> = match dataplane {
            DataplaneMode::Supervised(_) => Some(std::sync::Arc::new(SharedDataplane::new())),
            _ => None,
        };
        let scripts = ScriptSettings::from_config(&cfg, &node);
        CheckerSpec::all_from_config(&cfg, &ProbeContext::from_config(&cfg, &scripts, dp_view))?;
        let api = ApiSettings::from_config(&cfg)?;
        let port = cfg.heartbeat.port;
        let local_addrs = node.addrs.iter().map(|&a| SocketAddr::new(a, port)).collect();
        let peer_addrs = cfg
            .nodes
            .iter()
            .filter(|n| n.id != node.id)
            .map(|n| (n.id.get(), n.addrs.iter().map(|&a| SocketAddr::new(a, port)).collect()))
            .collect();
        let tap = match dataplane {
            DataplaneMode::Supervised(_) if !cfg.dataplane.tap_addrs.is_empty() => {
                let addrs = cfg.dataplane.tap_addrs.iter().filter_map(|a| a.resolve(&node)).map(|a| a.to_string()).collect();
                Some((ip_program(&cfg, opts.ip.as_deref())?, addrs))
            }
            _ => None,
        };
        Ok(Prepared { opts, cfg, node, secret, membership, dataplane, api, local_addrs, peer_addrs, tap })
    }

    /// Whether this run writes a table file.
    pub fn writes_table(&self) -> bool {
        !matches!(self.dataplane, DataplaneMode::None)
    }
}

/// The `ip` program: `given` (`--ip`), else the first of [`super::tap::IP_PATHS`] found.
fn ip_program(cfg: &Config, given: Option<&std::path::Path>) -> Result<PathBuf, DaemonError> {
    let err = |path: &std::path::Path, message: String| {
        DaemonError::Config(farm_config::ConfigError::Runtime {
            file: cfg.origin.clone(),
            key: "dataplane.tap_addrs".into(),
            path: path.to_path_buf(),
            message,
        })
    };
    match given {
        Some(p) if p.is_file() => Ok(p.to_path_buf()),
        Some(p) => Err(err(p, "the ip program given with --ip is not a file".into())),
        None => super::tap::find_ip().ok_or_else(|| {
            err(
                std::path::Path::new(super::tap::IP_PATHS[0]),
                format!("farmd needs iproute2's ip to put tap_addrs on the TAP, found none of {}; install iproute2", super::tap::IP_PATHS.join(", ")),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const TOML: &str = r#"
[module]
name = "web"
cluster_id = 9
hash_seed = "0x5eed"
buckets = 512
secret_file = "/nonexistent/secret"

[[node]]
name = "a"
addrs = ["198.18.0.1", "198.19.0.1"]
weight = 3

[[node]]
name = "b"
id = 7
addrs = ["198.18.0.2", "198.19.0.2"]
priority = 9

[heartbeat]
pulse = "50ms"
dead_after = "400ms"

[assignment]
mode = "failover"
failback = false
takeover = "majority"
witness = "198.18.0.254"

[dataplane]
enabled = false
"#;

    #[test]
    fn membership_config_follows_the_file() {
        let cfg = Config::from_str(TOML, "t.toml").unwrap();
        let b = cfg.node_by_name("b").unwrap();
        let m = membership_config(&cfg, b);
        assert_eq!(m.cluster_id, 9);
        assert_eq!(m.hash_seed, 0x5eed);
        assert_eq!(m.n_buckets, 512);
        assert_eq!(m.local_id, 7);
        assert_eq!(m.weight, 1);
        assert_eq!(m.nodes, vec![NodeConfig { id: 0, priority: 1 }, NodeConfig { id: 7, priority: 9 }]);
        assert_eq!(m.pulse, Duration::from_millis(50));
        assert_eq!(m.dead_after, Duration::from_millis(400));
        assert_eq!(m.takeover, Takeover::Majority);
        assert!(m.witness);
        assert_eq!(m.mode, Mode::Failover { failback: false });
        assert_eq!(m.drain_timeout, None, "no drain deadline unless [assignment] drain_timeout is set");
        m.validate().unwrap();
        let a = membership_config(&cfg, cfg.node_by_name("a").unwrap());
        assert_eq!((a.local_id, a.weight), (0, 3));
    }

    #[test]
    fn missing_secret_is_a_config_error_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("farm.toml");
        std::fs::write(&path, TOML).unwrap();
        let err = Prepared::load(Options { config: path, node: Some("a".into()), ..Default::default() }).unwrap_err();
        let line = farm_config::error_line(&err);
        assert!(line.contains("module.secret_file"), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }
}
