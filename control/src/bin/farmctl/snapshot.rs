//! `farmctl snapshot`: a support bundle (a tar file or a directory) with the configuration
//! (secrets redacted; the secret and token files are never read), the module and application
//! logs with their rotated files, the status and metrics from the API (data-plane counters
//! included), the result of the runtime checks and a few facts about the system.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use farm_config::Config;
use farm_control::api::ApiClient;
use farm_control::logs::{self, LogSettings};

/// What replaces a redacted value.
pub const REDACTED: &str = "REDACTED";

fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    if k.ends_with("_file") || k.ends_with("_dir") {
        return false; // paths to secrets are useful and not secret
    }
    k == "hash_seed" || ["password", "passwd", "secret", "token", "credential", "apikey", "api_key"].iter().any(|w| k.contains(w))
}

fn redact_table(t: &mut dyn toml_edit::TableLike, all: bool) {
    for (key, item) in t.iter_mut() {
        let secret = all || is_secret_key(key.get());
        match item {
            toml_edit::Item::Value(v) if secret => *v = toml_edit::Value::from(REDACTED),
            toml_edit::Item::Value(toml_edit::Value::InlineTable(it)) => redact_table(it, key.get() == "env"),
            toml_edit::Item::Table(sub) => redact_table(sub, all || key.get() == "env"),
            toml_edit::Item::ArrayOfTables(arr) => {
                for sub in arr.iter_mut() {
                    redact_table(sub, all);
                }
            }
            _ => {}
        }
    }
}

/// The configuration text with secret values replaced: `hash_seed`, every `[scripts.env]`
/// value, and keys that name passwords, secrets or tokens (but not the paths `*_file`).
pub fn redact(text: &str) -> Result<String> {
    let mut doc: toml_edit::DocumentMut = text.parse().context("the configuration is not valid TOML")?;
    redact_table(doc.as_table_mut(), false);
    Ok(doc.to_string())
}

struct Bundle {
    entries: Vec<(String, Vec<u8>)>,
}

impl Bundle {
    fn add(&mut self, name: &str, data: impl Into<Vec<u8>>) {
        self.entries.push((name.to_string(), data.into()));
    }
}

fn collect(config_path: &Path, cfg: &Config, api: &ApiClient) -> Bundle {
    let mut b = Bundle { entries: Vec::new() };
    let now = humantime::format_rfc3339_seconds(SystemTime::now());
    b.add(
        "README.txt",
        format!(
            "farm support snapshot of module {} taken {now} by farmctl {}\n\
             config.toml       the configuration, secrets redacted\n\
             config-check.txt  result of the runtime checks\n\
             status.json       GET /api/v1/status (members, checkers, data-plane counters)\n\
             metrics.txt       GET /metrics\n\
             logs/             module and application logs, with rotated files\n\
             system.txt        kernel, interfaces\n",
            cfg.module.name,
            env!("CARGO_PKG_VERSION")
        ),
    );
    match fs::read_to_string(config_path).map_err(anyhow::Error::from).and_then(|t| redact(&t)) {
        Ok(t) => b.add("config.toml", t),
        Err(e) => b.add("config.toml.error", format!("{}: {e:#}\n", config_path.display())),
    }
    let check = match cfg.check_runtime() {
        Ok(()) => "OK\n".to_string(),
        Err(e) => format!("{e}\n"),
    };
    b.add("config-check.txt", check);
    match api.status() {
        Ok(st) => b.add("status.json", serde_json::to_string_pretty(&st).unwrap_or_default()),
        Err(e) => b.add("status.error", format!("{e}\n")),
    }
    match api.metrics() {
        Ok(m) => b.add("metrics.txt", m),
        Err(e) => b.add("metrics.error", format!("{e}\n")),
    }
    let keep = LogSettings::default().keep;
    for name in [logs::MODULE_LOG, logs::APP_LOG] {
        let base = cfg.module.log_dir.join(name);
        let files = std::iter::once(base.clone()).chain((1..=keep).map(|n| logs::rotated_path(&base, n)));
        for f in files {
            if let Ok(data) = fs::read(&f) {
                let file_name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                b.add(&format!("logs/{file_name}"), data);
            }
        }
    }
    let mut sys = String::new();
    for f in ["/proc/version", "/proc/sys/kernel/hostname", "/proc/uptime", "/proc/loadavg", "/proc/net/dev"] {
        sys.push_str(&format!("== {f}\n{}\n", fs::read_to_string(f).unwrap_or_else(|e| format!("({e})"))));
    }
    b.add("system.txt", sys);
    b
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(data)
}

/// Writes the bundle to `out` (a `.tar` file, else a new directory); returns what was written.
pub fn write(config_path: &Path, cfg: &Config, api: &ApiClient, out: &Path) -> Result<PathBuf> {
    let bundle = collect(config_path, cfg, api);
    let is_tar = out.extension().is_some_and(|e| e == "tar");
    if is_tar {
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(out)
            .with_context(|| format!("cannot create {}", out.display()))?;
        let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "snapshot".into());
        let mtime = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut tar = tar::Builder::new(file);
        for (name, data) in &bundle.entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            h.set_mtime(mtime);
            h.set_cksum();
            tar.append_data(&mut h, format!("{stem}/{name}"), data.as_slice())
                .with_context(|| format!("cannot write {name} to {}", out.display()))?;
        }
        tar.into_inner().and_then(|mut f| f.flush()).with_context(|| format!("cannot finish {}", out.display()))?;
    } else {
        fs::create_dir(out).with_context(|| format!("cannot create the directory {} (it must not exist)", out.display()))?;
        for (name, data) in &bundle.entries {
            let path = out.join(name);
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            }
            write_private(&path, data).with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    Ok(out.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_paths_kept() {
        let text = r#"
[module]
name = "web"
hash_seed = "0x5eed"
secret_file = "/etc/farm/web.secret"

[scripts]
dir = "/etc/farm/scripts"
env = { DB_HOST = "db1", DB_PASSWORD = "hunter2" }

[scripts.more]
api_token = "abc"

[[checker]]
name = "http"
password = "pw"

[api]
token_file = "/etc/farm/api.token"
"#;
        let out = redact(text).unwrap();
        for secret in ["0x5eed", "hunter2", "db1", "\"abc\"", "\"pw\""] {
            assert!(!out.contains(secret), "{secret} leaked:\n{out}");
        }
        for kept in ["/etc/farm/web.secret", "/etc/farm/api.token", "/etc/farm/scripts", "name = \"web\"", "name = \"http\""] {
            assert!(out.contains(kept), "{kept} lost:\n{out}");
        }
        assert!(out.contains("hash_seed = \"REDACTED\""), "{out}");
        let env_table = "[scripts]\ndir = \"/etc/farm/scripts\"\n[scripts.env]\nTOKEN = \"t\"\n";
        let out = redact(env_table).unwrap();
        assert!(!out.contains("\"t\""), "{out}");
        assert!(redact("not = [valid").is_err());
    }
}
