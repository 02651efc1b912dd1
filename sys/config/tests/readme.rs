//! `configs/README.md` documents every key of the schema. The keys are enumerated from the
//! parser itself: an unknown key in a section makes it list the keys it accepts.

mod common;

use std::path::PathBuf;

use common::{patch, BASE};
use farm_config::Config;

/// The keys the parser accepts at the place where `zzz_unknown = 1` is inserted.
fn accepted_keys(text: &str) -> Vec<String> {
    let msg = Config::from_str(text, "t.toml")
        .expect_err("unknown key refused")
        .to_string();
    // serde writes "expected `a`", "expected `a` or `b`" or "expected one of `a`, `b`, ...".
    let list = msg
        .split(", expected ")
        .nth(1)
        .unwrap_or_else(|| panic!("no key list in {msg}"));
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn readme_documents_every_key() {
    let readme = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../configs/README.md"),
    )
    .expect("configs/README.md");
    let inserted = [
        ("root", format!("zzz_unknown = 1\n{BASE}")),
        (
            "module",
            BASE.replace("cluster_id = 7", "cluster_id = 7\nzzz_unknown = 1"),
        ),
        (
            "node",
            BASE.replace("name = \"n1\"", "name = \"n1\"\nzzz_unknown = 1"),
        ),
        (
            "vip",
            BASE.replace(
                "addr = \"198.18.0.100\"",
                "addr = \"198.18.0.100\"\nzzz_unknown = 1",
            ),
        ),
        (
            "vip.rule",
            BASE.replace("ports = \"80\"", "ports = \"80\"\nzzz_unknown = 1"),
        ),
        ("dataplane", format!("{BASE}zzz_unknown = 1\n")),
        (
            "heartbeat",
            patch("pulse = \"100ms\"", "pulse = \"100ms\"\nzzz_unknown = 1"),
        ),
        (
            "assignment",
            format!("{BASE}[assignment]\nzzz_unknown = 1\n"),
        ),
        ("scripts", format!("{BASE}[scripts]\nzzz_unknown = 1\n")),
        (
            "checker",
            format!("{BASE}[[checker]]\nname = \"c\"\nkind = \"dataplane\"\nzzz_unknown = 1\n"),
        ),
        ("restart", format!("{BASE}[restart]\nzzz_unknown = 1\n")),
        ("api", format!("{BASE}[api]\nzzz_unknown = 1\n")),
    ];
    let mut missing = Vec::new();
    let mut total = 0;
    for (section, text) in &inserted {
        let keys = accepted_keys(text);
        assert!(!keys.is_empty(), "{section}: no keys listed");
        for key in keys {
            total += 1;
            let documented = readme.contains(&format!("`{key}`"))
                || readme.contains(&format!("`vip.{key}`"))
                || readme.contains(&format!("`rule.{key}`"))
                || readme.contains(&format!("`[{key}]`"))
                || readme.contains(&format!("`[[{key}]]`"))
                || readme.contains(&format!("`[[vip.{key}]]`"));
            if !documented {
                missing.push(format!("{section}.{key}"));
            }
        }
    }
    assert!(total > 60, "expected the whole schema, saw {total} keys");
    assert!(
        missing.is_empty(),
        "keys not documented in configs/README.md: {missing:?}"
    );
}
