//! What a reload changes live, what it refuses, and that a broken file changes nothing.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::*;
use crate::daemon::Options;

/// The integration tests' farm.toml builder (plain `std`).
#[path = "../../../tests/common/farm_toml.rs"]
#[allow(dead_code)] // the integration tests use the rest
mod farm_toml;

use farm_toml::{quoted, FarmToml};

/// A two-node file; `extra` is appended, `weight` is n1's.
fn text(dir: &Path, weight: u16, pulse: &str, extra: &str) -> String {
    FarmToml::new(7)
        .module("hash_seed", quoted("0x5eed"))
        .module("buckets", 256)
        .files(dir)
        .weighted_node("n1", "127.0.0.1", weight)
        .node("n2", "127.0.0.2")
        .heartbeat("pulse", quoted(pulse))
        .heartbeat("dead_after", quoted("1s"))
        .api("listen", quoted("127.0.0.1:0"))
        .extra(extra)
        .render()
}

fn cfg(t: &str) -> Config {
    let mut c = Config::from_str(t, "farm.toml").unwrap();
    c.localize("n1");
    c
}

const CHECKER: &str = r#"
[[checker]]
name = "app"
kind = "tcp"
port = 80
"#;

const VIP2: &str = r#"
[[vip]]
addr = "198.18.0.101"
[[vip.rule]]
proto = "udp"
ports = "53"
"#;

#[test]
fn this_nodes_weight_and_the_checkers_are_live() {
    let dir = Path::new("/x");
    let old = cfg(&text(dir, 1, "100ms", ""));
    let new = cfg(&text(dir, 3, "100ms", CHECKER));
    let d = diff(&old, &new, "n1", true);
    assert!(!d.is_refused(), "{d:?}");
    assert_eq!(d.get("node[0].weight").unwrap().handling, Handling::Live);
    assert_eq!(d.get("node[0].weight").unwrap().what, "n1 1 -> 3");
    assert_eq!(d.get("checker").unwrap().handling, Handling::Live);
    assert_eq!(d.get("checker").unwrap().what, "app added");
    assert_eq!(d.changes.len(), 2, "{d:?}");
    // Seen from n2, n1's weight is n1's business.
    let d = diff(&old, &new, "n2", true);
    assert!(matches!(d.get("node[0].weight").unwrap().handling, Handling::Later(_)));
    assert!(!d.is_refused());
}

#[test]
fn timers_node_list_cluster_keys_and_vips_with_a_data_plane_are_refused_by_name() {
    let dir = Path::new("/x");
    let old = cfg(&text(dir, 1, "100ms", ""));
    let d = diff(&old, &cfg(&text(dir, 1, "200ms", "")), "n1", false);
    assert!(d.is_refused());
    let refused: Vec<&str> = d.refused().map(|c| c.key.as_str()).collect();
    assert_eq!(refused, ["heartbeat.pulse"]);
    let line = d.get("heartbeat.pulse").unwrap().to_string();
    assert!(line.starts_with("heartbeat.pulse (100ms -> 200ms): cannot change live: "), "{line}");
    assert!(line.contains("I1"), "{line}");

    // The node list, the cluster id and the buckets, all named.
    let t = text(dir, 1, "100ms", "")
        .replace("cluster_id = 7", "cluster_id = 8")
        .replace("buckets = 256", "buckets = 512")
        .replace("\"127.0.0.2\"", "\"127.0.0.3\"");
    let d = diff(&old, &cfg(&t), "n1", false);
    let refused: Vec<&str> = d.refused().map(|c| c.key.as_str()).collect();
    assert_eq!(refused, ["module.cluster_id", "module.buckets", "node[1].addrs"]);

    // A VIP added: refused when a data plane runs (it reads the rules at start), accepted
    // and unused without one.
    let vip = cfg(&text(dir, 1, "100ms", VIP2));
    let d = diff(&old, &vip, "n1", true);
    assert_eq!(d.refused().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["vip[1]"]);
    assert!(d.get("vip[1]").unwrap().to_string().contains("198.18.0.101 added"));
    let d = diff(&old, &vip, "n1", false);
    assert!(!d.is_refused());
    assert_eq!(d.get("vip[1]").unwrap().handling, Handling::Unused);

    // A third node.
    let t = text(dir, 1, "100ms", "").replace("[heartbeat]", "[[node]]\nname = \"n3\"\naddrs = [\"127.0.0.3\"]\n\n[heartbeat]");
    let d = diff(&old, &cfg(&t), "n1", false);
    assert_eq!(d.refused().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["node[2]"]);
}

#[test]
fn nothing_changed_is_an_empty_diff() {
    let dir = Path::new("/x");
    let a = cfg(&text(dir, 2, "100ms", CHECKER));
    assert!(diff(&a, &a.clone(), "n1", true).is_empty());
}

#[test]
fn a_runtime_weight_survives_a_reload_unless_the_file_changed_the_weight() {
    assert_eq!(weight_after_reload(1, 1, Some(3)), (3, Some(3)));
    assert_eq!(weight_after_reload(1, 1, Some(0)), (0, Some(0)));
    assert_eq!(weight_after_reload(1, 2, Some(3)), (2, None));
    assert_eq!(weight_after_reload(1, 2, None), (2, None));
    assert_eq!(weight_after_reload(2, 2, None), (2, None));
}

/// A real file with its secret, loaded as farmd does.
struct Files {
    _dir: tempfile::TempDir,
    root: PathBuf,
    file: PathBuf,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let secret = root.join("secret");
        fs::write(&secret, "a-secret-of-enough-length-0123456789").unwrap();
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
        let file = root.join("farm.toml");
        fs::write(&file, text(&root, 1, "100ms", "")).unwrap();
        Files { _dir: dir, root, file }
    }

    fn running(&self) -> Prepared {
        Prepared::load(Options { config: self.file.clone(), node: Some("n1".into()), ..Default::default() }).unwrap()
    }

    fn write(&self, t: &str) {
        fs::write(&self.file, t).unwrap();
    }
}

#[test]
fn a_broken_file_is_invalid_and_names_file_and_key() {
    let f = Files::new();
    let running = f.running();
    f.write(&text(&f.root, 1, "100ms", "").replace("weight = 1", "weight = 0"));
    let Verdict::Invalid(msg) = check(&running) else { panic!("expected invalid") };
    assert!(msg.contains("farm.toml") && msg.contains("node[0].weight") && msg.contains("between 1 and 1000"), "{msg}");
    f.write("[module\nname =");
    assert!(matches!(check(&running), Verdict::Invalid(_)));
    // A checker that cannot be built (a custom script that does not exist) is invalid too.
    f.write(&text(&f.root, 1, "100ms", "[[checker]]\nname = \"s\"\nkind = \"custom\"\nscript = \"/nonexistent/check.sh\"\n"));
    let v = check(&running);
    assert!(matches!(v, Verdict::Invalid(ref m) if m.contains("/nonexistent/check.sh")), "{v:?}");
    // The running inputs did not move.
    assert_eq!(running.node.weight.get(), 1);
}

#[test]
fn check_applies_refuses_or_finds_nothing() {
    let f = Files::new();
    let running = f.running();
    assert!(matches!(check(&running), Verdict::Unchanged));
    f.write(&text(&f.root, 4, "100ms", CHECKER));
    match check(&running) {
        Verdict::Apply(new, d) => {
            assert_eq!(new.node.weight.get(), 4);
            assert_eq!(new.cfg.checkers.len(), 1);
            assert!(d.get("node[0].weight").is_some() && d.get("checker").is_some());
        }
        v => panic!("expected apply, got {v:?}"),
    }
    // A weight change and a timer change together: all or nothing.
    f.write(&text(&f.root, 4, "50ms", ""));
    match check(&running) {
        Verdict::Refused(d) => assert_eq!(d.refused().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["heartbeat.pulse"]),
        v => panic!("expected refused, got {v:?}"),
    }
    // The secret's contents changed under the same path.
    f.write(&text(&f.root, 1, "100ms", ""));
    fs::write(f.root.join("secret"), "another-secret-of-enough-length-0123").unwrap();
    match check(&running) {
        Verdict::Refused(d) => {
            let c = d.get("module.secret_file").unwrap();
            assert_eq!(c.what, "its contents changed");
            assert!(!c.to_string().contains("another-secret"), "{c}");
        }
        v => panic!("expected refused, got {v:?}"),
    }
}
