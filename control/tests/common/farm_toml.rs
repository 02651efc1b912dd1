//! farm.toml files for tests, from a builder: module `web` with one VIP (198.18.0.100, tcp/80)
//! and no data plane unless told otherwise.
//!
//! Plain `std`, so that the library's own unit tests can include this file too
//! (`#[path = ".../tests/common/farm_toml.rs"] mod farm_toml;`).

use std::fmt::{Display, Write as _};
use std::path::Path;

/// A farm.toml being written. Values are TOML (strings go through [`quoted`]); the sections
/// come out in a fixed order: module, nodes, heartbeat, VIP, data plane, API, then the extra
/// text.
#[derive(Clone, Debug)]
pub struct FarmToml {
    module: Vec<String>,
    nodes: Vec<String>,
    heartbeat: Vec<String>,
    dataplane: String,
    api: Vec<String>,
    extra: String,
}

/// `v` as a TOML string (paths, durations, addresses: nothing to escape).
pub fn quoted(v: impl Display) -> String {
    format!("\"{v}\"")
}

impl FarmToml {
    /// `[module] name = "web"` with `cluster_id`, the VIP, `[dataplane] enabled = false`.
    pub fn new(cluster_id: u32) -> FarmToml {
        FarmToml {
            module: vec!["name = \"web\"".into(), format!("cluster_id = {cluster_id}")],
            nodes: Vec::new(),
            heartbeat: Vec::new(),
            dataplane: "enabled = false".into(),
            api: Vec::new(),
            extra: String::new(),
        }
    }

    pub fn module(mut self, key: &str, value: impl Display) -> FarmToml {
        self.module.push(format!("{key} = {value}"));
        self
    }

    /// The secret `root/secret` and a node's files directly in `root`: `log/`, `run/`, `table`.
    pub fn files(self, root: &Path) -> FarmToml {
        let root = root.display();
        self.module("secret_file", quoted(format_args!("{root}/secret")))
            .module("log_dir", quoted(format_args!("{root}/log")))
            .module("run_dir", quoted(format_args!("{root}/run")))
            .module("table_file", quoted(format_args!("{root}/table")))
    }

    /// The secret `root/<secret>` and each node's files in `root/<node>/`: `log/`, `run/`,
    /// `table`.
    pub fn node_files(self, root: &Path, secret: &str) -> FarmToml {
        let root = root.display();
        self.module("secret_file", quoted(format_args!("{root}/{secret}")))
            .module("log_dir", quoted(format_args!("{root}/{{node}}/log")))
            .module("run_dir", quoted(format_args!("{root}/{{node}}/run")))
            .module("table_file", quoted(format_args!("{root}/{{node}}/table")))
    }

    /// A `[[node]]` with one address.
    pub fn node(self, name: &str, addr: impl Display) -> FarmToml {
        self.node_block(name, addr, "")
    }

    /// A `[[node]]` with one address and a weight.
    pub fn weighted_node(self, name: &str, addr: impl Display, weight: u16) -> FarmToml {
        self.node_block(name, addr, &format!("weight = {weight}\n"))
    }

    fn node_block(mut self, name: &str, addr: impl Display, more: &str) -> FarmToml {
        self.nodes.push(format!("[[node]]\nname = \"{name}\"\naddrs = [\"{addr}\"]\n{more}"));
        self
    }

    pub fn heartbeat(mut self, key: &str, value: impl Display) -> FarmToml {
        self.heartbeat.push(format!("{key} = {value}"));
        self
    }

    /// The body of `[dataplane]` (instead of `enabled = false`).
    pub fn dataplane(mut self, body: &str) -> FarmToml {
        self.dataplane = body.into();
        self
    }

    pub fn api(mut self, key: &str, value: impl Display) -> FarmToml {
        self.api.push(format!("{key} = {value}"));
        self
    }

    /// Text appended at the end of the file (more sections).
    pub fn extra(mut self, text: &str) -> FarmToml {
        self.extra.push_str(text);
        self
    }

    pub fn render(&self) -> String {
        let mut t = String::new();
        let section = |t: &mut String, name: &str, lines: &[String]| {
            if !lines.is_empty() {
                let _ = write!(t, "[{name}]\n{}\n\n", lines.join("\n"));
            }
        };
        section(&mut t, "module", &self.module);
        for n in &self.nodes {
            let _ = writeln!(t, "{n}");
        }
        section(&mut t, "heartbeat", &self.heartbeat);
        t.push_str("[[vip]]\naddr = \"198.18.0.100\"\n[[vip.rule]]\nproto = \"tcp\"\nports = \"80\"\n\n");
        let _ = write!(t, "[dataplane]\n{}\n\n", self.dataplane);
        section(&mut t, "api", &self.api);
        let _ = writeln!(t, "{}", self.extra);
        t
    }

    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.render()).unwrap();
    }
}
