//! The whole file: parsing, validation and lookups.

use std::path::Path;

use serde::Deserialize;

use crate::checker::{resolve_checkers, Checker, CheckerSpec};
use crate::error::{ConfigError, Problem, Problems};
use crate::locate::{line_col, Locator};
use crate::nodes::{resolve_nodes, resolve_vips, Node, NodeSpec, Vip, VipSpec};
use crate::sections::{
    Api, Assignment, Dataplane, Heartbeat, Module, ModuleSpec, Restart, Scripts,
};
use crate::seed::{self, HashSeedFrom};
use crate::validate::{self, Report};

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    module: ModuleSpec,
    #[serde(default)]
    node: Vec<NodeSpec>,
    #[serde(default)]
    heartbeat: Heartbeat,
    #[serde(default)]
    vip: Vec<VipSpec>,
    #[serde(default)]
    assignment: Assignment,
    #[serde(default)]
    dataplane: Dataplane,
    #[serde(default)]
    scripts: Scripts,
    #[serde(default)]
    checker: Vec<CheckerSpec>,
    #[serde(default)]
    restart: Restart,
    #[serde(default)]
    api: Api,
}

/// A loaded and validated configuration. Every default is filled in; relative script paths
/// are resolved against `[scripts] dir`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Where it was read from (the path given to [`Config::load`] or the origin given to
    /// [`Config::from_str`]); used in later error messages.
    pub origin: String,
    /// `[module]`.
    pub module: Module,
    /// `[[node]]`, in file order.
    pub nodes: Vec<Node>,
    /// `[heartbeat]`.
    pub heartbeat: Heartbeat,
    /// `[[vip]]`, in file order.
    pub vips: Vec<Vip>,
    /// `[assignment]`.
    pub assignment: Assignment,
    /// `[dataplane]`.
    pub dataplane: Dataplane,
    /// `[scripts]`.
    pub scripts: Scripts,
    /// `[[checker]]`, in file order.
    pub checkers: Vec<Checker>,
    /// `[restart]`.
    pub restart: Restart,
    /// `[api]`.
    pub api: Api,
}

impl Config {
    /// Reads, parses and validates the file at `path`. Does not check the files it refers to
    /// (see [`Config::check_runtime`]), with one exception: when the file sets no
    /// `module.hash_seed`, the seed is derived from the secret file if it can be read
    /// ([`seed::derive_from_secret`]); if it cannot (e.g. not root), the seed stays
    /// [`HashSeedFrom::Unresolved`], which is not an error here (`farmctl state` needs no seed).
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        let mut cfg = Config::from_str(&text, &path.display().to_string())?;
        if let Err(e) = cfg.resolve_hash_seed() {
            tracing::debug!(error = %e, "module.hash_seed not derived");
        }
        tracing::debug!(file = %path.display(), module = %cfg.module.name, nodes = cfg.nodes.len(), "configuration loaded");
        Ok(cfg)
    }

    /// Parses and validates `text`; `origin` names it in error messages (usually the path).
    // Not `FromStr`: it needs the origin.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| {
            let (line_col, key) = match e.span() {
                Some(span) => (
                    Some(line_col(text, span.start)),
                    Locator::new(text).key_at(span.start),
                ),
                None => (None, String::new()),
            };
            ConfigError::Invalid(Problems(vec![Problem {
                file: origin.to_string(),
                line_col,
                key,
                message: e
                    .message()
                    .trim()
                    .lines()
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join("; "),
            }]))
        })?;
        let mut r = Report::default();
        let module = file.module.resolve();
        validate::module(&module, &mut r);
        let nodes = resolve_nodes(file.node, &mut r);
        validate::heartbeat(&file.heartbeat, &mut r);
        let vips = resolve_vips(file.vip, &nodes, &mut r);
        validate::assignment(&file.assignment, &nodes, &vips, &mut r);
        let mut dataplane = file.dataplane;
        validate::dataplane(&mut dataplane, &module, &nodes, &vips, &mut r);
        let mut scripts = file.scripts;
        validate::scripts(&mut scripts, &mut r);
        let checkers = resolve_checkers(
            file.checker,
            scripts.dir.as_ref(),
            dataplane.enabled,
            &mut r,
        );
        validate::restart(&file.restart, &mut r);
        if !r.is_empty() {
            return Err(ConfigError::Invalid(r.into_problems(origin, text)));
        }
        Ok(Config {
            origin: origin.to_string(),
            module,
            nodes,
            heartbeat: file.heartbeat,
            vips,
            assignment: file.assignment,
            dataplane,
            scripts,
            checkers,
            restart: file.restart,
            api: file.api,
        })
    }

    /// The node called `name`.
    pub fn node_by_name(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == *name)
    }

    /// The node with id `id`.
    pub fn node_by_id(&self, id: u8) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id.get() == id)
    }

    /// The key of the client hash, from `module.hash_seed`.
    ///
    /// # Panics
    ///
    /// If the seed is [`HashSeedFrom::Unresolved`] (no `hash_seed` in the file and the secret
    /// file was not read): computing buckets with a wrong key would be silently wrong. farmd and
    /// the data plane load with [`Config::load_local`] as root, which derives the seed; use
    /// [`Config::try_hash_key`] where the secret may be unreadable.
    pub fn hash_key(&self) -> farm_table::HashKey {
        self.try_hash_key().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The key of the client hash, or why it is unknown: no `module.hash_seed` in the file
    /// and the secret file it is then derived from was not read.
    pub fn try_hash_key(&self) -> Result<farm_table::HashKey, ConfigError> {
        match self.module.hash_seed_from {
            HashSeedFrom::Config | HashSeedFrom::SecretFile => {
                Ok(farm_table::HashKey::from_seed(self.module.hash_seed))
            }
            HashSeedFrom::Unresolved => Err(self.unresolved_seed_error()),
        }
    }

    /// Derives `module.hash_seed` from the secret file when the file sets none (nothing to do
    /// otherwise). Fails when the secret cannot be read or fails its checks (mode 0600, length).
    pub fn resolve_hash_seed(&mut self) -> Result<(), ConfigError> {
        if self.module.hash_seed_from == HashSeedFrom::Unresolved {
            let secret = self.read_secret()?;
            self.module.hash_seed = seed::derive_from_secret(&secret);
            self.module.hash_seed_from = HashSeedFrom::SecretFile;
        }
        Ok(())
    }

    /// Why the seed is unresolved: the secret file's problem, or (when it reads now) that the
    /// configuration was parsed without reading files.
    pub(crate) fn unresolved_seed_error(&self) -> ConfigError {
        let why = match self.read_secret() {
            Err(ConfigError::Runtime { message, .. }) => format!("it cannot be read: {message}"),
            Err(e) => format!("it cannot be read: {e}"),
            Ok(_) => "it was not read when the configuration was loaded".to_string(),
        };
        ConfigError::Runtime {
            file: self.origin.clone(),
            key: "module.hash_seed".to_string(),
            path: self.module.secret_file.clone(),
            message: format!(
                "not set, so the seed is derived from the secret file, but {why}; set hash_seed in [module] (`farmctl config init` writes a random one), or run as a user who can read the secret"
            ),
        }
    }

    /// The bucket count.
    pub fn buckets(&self) -> u32 {
        self.module.buckets.get()
    }

    /// The VIP with address `addr`.
    pub fn vip(&self, addr: std::net::IpAddr) -> Option<&Vip> {
        self.vips.iter().find(|v| v.addr == addr)
    }
}

/// Per-node values: a config shared by several nodes (every farm installs one file on every
/// node; the namespace lab runs them all on one machine) can write `{node}` in
/// `module.log_dir`, `module.run_dir`, `module.table_file` and `dataplane.file_prefix`; it
/// stands for the local node's name. `dataplane.tap_addrs` can write `{addrN}` (`{addr}` is
/// `{addr0}`) for the local node's `addrs[N]`.
impl Config {
    /// Replaces `{node}` with `node_name` in the per-node values, and the `{addrN}` of
    /// `dataplane.tap_addrs` with that node's addresses (they stay placeholders if no node is
    /// called `node_name`).
    pub fn localize(&mut self, node_name: &str) {
        let expand = |p: &mut std::path::PathBuf| {
            let s = p.to_string_lossy();
            if s.contains(validate::NODE_PLACEHOLDER) {
                *p = s.replace(validate::NODE_PLACEHOLDER, node_name).into();
            }
        };
        expand(&mut self.module.log_dir);
        expand(&mut self.module.run_dir);
        expand(&mut self.module.table_file);
        self.dataplane.file_prefix = self
            .dataplane
            .file_prefix
            .replace(validate::NODE_PLACEHOLDER, node_name);
        if let Some(node) = self.nodes.iter().find(|n| n.name == *node_name) {
            for a in &mut self.dataplane.tap_addrs {
                if let Some(r) = a.resolve(node) {
                    *a = r;
                }
            }
        }
    }

    /// What farmd and the data plane call at start-up: [`Config::load`], then
    /// [`Config::local_node`] (the node named `name_override`, e.g. from `--node`, or the one
    /// whose address is on this machine), then [`Config::localize`] for that node.
    ///
    /// A fixed `dataplane.tap_addrs` entry that is another node's address is refused here: the
    /// file is shared by every node, so it would give this node a peer's address (write
    /// `{addr0}/..` instead).
    pub fn load_local(
        path: impl AsRef<Path>,
        name_override: Option<&str>,
    ) -> Result<(Config, Node), ConfigError> {
        let mut cfg = Config::load(path)?;
        let node = cfg.local_node(name_override)?.clone();
        cfg.localize(node.name.as_str());
        cfg.check_tap_addrs_for(&node)?;
        Ok((cfg, node))
    }

    /// See [`Config::load_local`].
    fn check_tap_addrs_for(&self, node: &Node) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        for (i, a) in self.dataplane.tap_addrs.iter().enumerate() {
            let Some(addr) = a.addr() else { continue };
            let owner = self
                .nodes
                .iter()
                .find(|n| n.id != node.id && n.addrs.contains(&addr));
            if let Some(other) = owner {
                problems.push(Problem {
                    file: self.origin.clone(),
                    line_col: None,
                    key: format!("dataplane.tap_addrs[{i}]"),
                    message: format!(
                        "{a} is node {}'s address, not this node's ({}); expected {{addrN}}/{} (this node's addrs[N]) in a file shared by the nodes",
                        other.name, node.name, a.prefix_len
                    ),
                });
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(Problems(problems)))
        }
    }
}
