//! The architecture's dependency rules, checked over `cargo metadata`:
//! - `farm-dataplane` and `farm-control` never depend on each other (they share `sys/` crates);
//! - `farm-control` never links DPDK (`dpdk`, `dpdk-sys`), not even transitively.

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use serde_json::Value;

struct Graph {
    names: HashMap<String, String>,
    deps: HashMap<String, Vec<String>>,
}

fn graph() -> Graph {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let names = v["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap().to_owned(), p["name"].as_str().unwrap().to_owned()))
        .collect();
    let deps = v["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let id = n["id"].as_str().unwrap().to_owned();
            // Only normal (non-dev, non-build) dependencies count: what the binary links.
            let ds = n["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].is_null()))
                .map(|d| d["pkg"].as_str().unwrap().to_owned())
                .collect();
            (id, ds)
        })
        .collect();
    Graph { names, deps }
}

impl Graph {
    fn closure(&self, name: &str) -> BTreeSet<String> {
        let root = self.names.iter().find(|(_, n)| *n == name).map(|(id, _)| id.clone());
        let root = root.unwrap_or_else(|| panic!("package {name} not in the workspace"));
        let mut seen = BTreeSet::new();
        let mut stack = vec![root];
        while let Some(id) = stack.pop() {
            for d in self.deps.get(&id).into_iter().flatten() {
                if seen.insert(self.names[d].clone()) {
                    stack.push(d.clone());
                }
            }
        }
        seen
    }
}

#[test]
fn dataplane_and_control_are_independent_and_control_never_links_dpdk() {
    let g = graph();
    let control = g.closure("farm-control");
    let dataplane = g.closure("farm-dataplane");
    assert!(dataplane.contains("farm-table"), "the data plane reads the table");
    assert!(control.contains("farm-table"), "farmd writes the table");
    for forbidden in ["farm-dataplane", "farm-pipeline", "farm-wire", "dpdk", "dpdk-sys"] {
        assert!(!control.contains(forbidden), "farm-control depends on {forbidden}: {control:?}");
    }
    assert!(!dataplane.contains("farm-control"), "farm-dataplane depends on farm-control");
    assert!(dataplane.contains("dpdk-sys"), "sanity: the data plane links DPDK");
}
