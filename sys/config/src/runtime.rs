//! Checks and lookups that depend on the machine, kept apart from pure parsing: file modes of
//! secrets, scripts and programs, and which node this machine is.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::checker::Check;
use crate::error::ConfigError;
use crate::nodes::Node;
use crate::Config;

/// Minimum length of the heartbeat secret.
pub const MIN_SECRET_LEN: usize = 16;

impl Config {
    fn runtime_err(&self, key: &str, path: &Path, message: impl Into<String>) -> ConfigError {
        ConfigError::Runtime {
            file: self.origin.clone(),
            key: key.to_string(),
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    /// Reads a file that must be private to its owner (mode 0600 or stricter).
    fn read_private(&self, key: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
        let meta = fs::metadata(path)
            .map_err(|e| self.runtime_err(key, path, format!("cannot stat: {e}")))?;
        if !meta.is_file() {
            return Err(self.runtime_err(key, path, "expected a regular file"));
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(self.runtime_err(
                key,
                path,
                format!("expected mode 0600 (no access for group or others), found {mode:04o}; run chmod 600"),
            ));
        }
        fs::read(path).map_err(|e| self.runtime_err(key, path, format!("cannot read: {e}")))
    }

    /// The heartbeat HMAC secret, after checking its mode (0600) and length
    /// ([`MIN_SECRET_LEN`] bytes at least; surrounding whitespace is trimmed).
    pub fn read_secret(&self) -> Result<Vec<u8>, ConfigError> {
        let path = &self.module.secret_file;
        let raw = self.read_private("module.secret_file", path)?;
        let secret = raw.trim_ascii().to_vec();
        if secret.len() < MIN_SECRET_LEN {
            return Err(self.runtime_err(
                "module.secret_file",
                path,
                format!(
                    "expected at least {MIN_SECRET_LEN} bytes of secret, found {}",
                    secret.len()
                ),
            ));
        }
        Ok(secret)
    }

    /// The API token (`None` when `api.token_file` is not set: POST endpoints are refused).
    pub fn read_token(&self) -> Result<Option<String>, ConfigError> {
        let Some(path) = &self.api.token_file else {
            return Ok(None);
        };
        let raw = self.read_private("api.token_file", path)?;
        let token = String::from_utf8(raw)
            .map_err(|_| self.runtime_err("api.token_file", path, "expected UTF-8 text"))?
            .trim()
            .to_string();
        if token.is_empty() {
            return Err(self.runtime_err("api.token_file", path, "expected a non-empty token"));
        }
        Ok(Some(token))
    }

    fn check_executable(&self, key: &str, path: &Path) -> Result<(), ConfigError> {
        let meta = fs::metadata(path)
            .map_err(|e| self.runtime_err(key, path, format!("cannot stat: {e}")))?;
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            return Err(self.runtime_err(key, path, "expected an executable file"));
        }
        Ok(())
    }

    /// The data-plane program: `dataplane.binary` itself if it contains a `/`, else its first
    /// match in `PATH`.
    pub fn dataplane_binary(&self) -> Result<PathBuf, ConfigError> {
        let bin = &self.dataplane.binary;
        if bin.components().count() > 1 || bin.is_absolute() {
            self.check_executable("dataplane.binary", bin)?;
            return Ok(bin.clone());
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        for dir in std::env::split_paths(&path) {
            let cand = dir.join(bin);
            if self.check_executable("dataplane.binary", &cand).is_ok() {
                return Ok(cand);
            }
        }
        Err(self.runtime_err(
            "dataplane.binary",
            bin,
            "expected an executable in PATH (or give a full path)",
        ))
    }

    /// Checks what the configuration refers to on this machine: the secret file (mode 0600,
    /// long enough), the hash seed (set in the file, or derived from the secret when it was
    /// loaded: [`Config::try_hash_key`]), the API token file, the scripts and custom checkers
    /// (executable) and, when the data plane is enabled, its program. Returns the first failure.
    pub fn check_runtime(&self) -> Result<(), ConfigError> {
        self.read_secret()?;
        // Without `hash_seed` in the file, farmd must have derived it (Config::load does).
        self.try_hash_key()?;
        self.read_token()?;
        if let Some(p) = &self.scripts.start_both {
            self.check_executable("scripts.start_both", p)?;
        }
        if let Some(p) = &self.scripts.stop_both {
            self.check_executable("scripts.stop_both", p)?;
        }
        for (i, c) in self.checkers.iter().enumerate() {
            if let Check::Custom { script } = &c.check {
                self.check_executable(&format!("checker[{i}].script"), script)?;
            }
        }
        if self.dataplane.enabled {
            self.dataplane_binary()?;
        }
        Ok(())
    }

    /// This machine's node: the one named `name_override` (e.g. from `--node`), else the only
    /// node with an address configured on one of this machine's interfaces.
    pub fn local_node(&self, name_override: Option<&str>) -> Result<&Node, ConfigError> {
        if let Some(name) = name_override {
            return self
                .node_by_name(name)
                .ok_or_else(|| ConfigError::LocalNode {
                    file: self.origin.clone(),
                    message: format!(
                        "no [[node]] is named {name:?}; expected one of: {}",
                        self.node_names()
                    ),
                });
        }
        let local: Vec<IpAddr> = if_addrs::get_if_addrs()
            .map_err(|e| ConfigError::LocalNode {
                file: self.origin.clone(),
                message: format!("cannot list local addresses ({e}); pass the node name (--node)"),
            })?
            .into_iter()
            .map(|i| i.ip())
            .collect();
        self.local_node_among(&local)
    }

    /// The only node that has one of `local` among its addresses.
    pub fn local_node_among(&self, local: &[IpAddr]) -> Result<&Node, ConfigError> {
        let found: Vec<&Node> = self
            .nodes
            .iter()
            .filter(|n| n.addrs.iter().any(|a| local.contains(a)))
            .collect();
        match found.as_slice() {
            [one] => Ok(one),
            [] => Err(ConfigError::LocalNode {
                file: self.origin.clone(),
                message: format!(
                    "no node address is configured on this machine; expected one of {} to match a local address, or pass the node name (--node)",
                    self.node_names()
                ),
            }),
            many => Err(ConfigError::LocalNode {
                file: self.origin.clone(),
                message: format!(
                    "several nodes have addresses on this machine ({}); pass the node name (--node)",
                    many.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            }),
        }
    }

    fn node_names(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}
