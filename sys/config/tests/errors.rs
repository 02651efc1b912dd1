//! Malformed configurations: each error names the file, the position, the key and what was
//! expected.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{patch, write_mode, BASE};
use farm_config::{Config, ConfigError};

fn err_of(text: &str) -> String {
    match Config::from_str(text, "farm-test.toml") {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn base_is_valid() {
    let c = Config::from_str(BASE, "farm-test.toml").unwrap();
    assert_eq!(c.nodes.len(), 2);
}

#[test]
fn malformed_configs_name_file_key_and_expectation() {
    let cases: Vec<(&str, String, &[&str])> = vec![
        (
            "unknown key",
            patch("pulse = \"100ms\"", "pulse = \"100ms\"\npulze = \"1s\""),
            &["farm-test.toml:8:1", "heartbeat.pulze", "unknown field `pulze`", "expected one of"],
        ),
        (
            "unknown section",
            format!("{BASE}\n[dataplain]\nworkers = 2\n"),
            &["farm-test.toml:27:2", "dataplain", "unknown field `dataplain`"],
        ),
        (
            "bad duration",
            patch("pulse = \"100ms\"", "pulse = \"100 parsecs\""),
            &["farm-test.toml:7:9", "heartbeat.pulse", "expected a duration like"],
        ),
        (
            "duration as a number",
            patch("pulse = \"100ms\"", "pulse = 100"),
            &["farm-test.toml:7:9", "heartbeat.pulse", "duration string"],
        ),
        (
            "bad IP",
            patch("addrs = [\"198.18.0.2\"]", "addrs = [\"198.18.0.256\"]"),
            &["farm-test.toml:15:10", "node[1].addrs[0]", "expected an IPv4 or IPv6 address", "got \"198.18.0.256\""],
        ),
        (
            "bad VIP",
            patch("addr = \"198.18.0.100\"", "addr = \"vip.example\""),
            &["farm-test.toml:18:8", "vip[0].addr", "expected an IPv4 or IPv6 address", "got \"vip.example\""],
        ),
        (
            "overlapping rules",
            format!("{BASE}\n[[vip.rule]]\nproto = \"udp\"\nports = \"80\"\n\n[[vip.rule]]\nproto = \"tcp\"\nports = \"70-90\"\n"),
            &["farm-test.toml:33:1", "vip[0].rule[2].ports", "overlap vip[0].rule[0].ports \"80\"", "disjoint"],
        ),
        (
            "duplicate node id",
            patch("name = \"n2\"", "name = \"n2\"\nid = 0"),
            &["farm-test.toml:15:1", "node[1].id", "duplicate node id 0 (also node[0])"],
        ),
        (
            "node id out of range",
            patch("name = \"n2\"", "name = \"n2\"\nid = 64"),
            &["farm-test.toml:15:6", "node[1].id", "expected a node id between 0 and 63"],
        ),
        (
            "buckets not a power of two",
            patch("cluster_id = 7", "cluster_id = 7\nbuckets = 1000"),
            &["farm-test.toml:4:11", "module.buckets", "expected a power of two between 256 and 65536"],
        ),
        (
            "dead_after < 3 pulses",
            patch("pulse = \"100ms\"", "pulse = \"400ms\""),
            &["farm-test.toml:6:1", "heartbeat.dead_after", "expected at least 3 × pulse (1s 200ms), got 1s"],
        ),
        (
            "lease longer than dead_after - pulse",
            patch("pulse = \"100ms\"", "pulse = \"100ms\"\nlease = \"950ms\""),
            &["farm-test.toml:8:1", "heartbeat.lease", "expected between pulse (100ms) and dead_after - pulse (900ms), got 950ms"],
        ),
        (
            "bad ports",
            patch("ports = \"80\"", "ports = \"90-80\""),
            &["farm-test.toml:22:9", "vip[0].rule[0].ports", "first port is not above its last"],
        ),
        (
            "bad affinity",
            patch("ports = \"80\"", "ports = \"80\"\naffinity = \"sticky\""),
            &["farm-test.toml:23:12", "vip[0].rule[0].affinity", "expected \"on_addr\" or \"on_port\""],
        ),
        (
            "missing ports",
            patch("ports = \"80\"\n", ""),
            &["farm-test.toml:20:1", "vip[0].rule[0]", "missing ports"],
        ),
        (
            "bad module name",
            patch("name = \"web\"", "name = \"Web Farm\""),
            &["farm-test.toml:2:8", "module.name", "[a-z0-9_-]"],
        ),
        (
            "missing module name",
            patch("name = \"web\"\n", ""),
            &["farm-test.toml:1:1", "module", "missing field `name`"],
        ),
        (
            "hash seed",
            patch("cluster_id = 7", "cluster_id = 7\nhash_seed = \"0xZZ\""),
            &["farm-test.toml:4:13", "module.hash_seed", "hex string"],
        ),
        (
            "unequal LAN count",
            patch("addrs = [\"198.18.0.2\"]", "addrs = [\"198.18.0.2\", \"198.19.0.2\"]"),
            &["farm-test.toml:15:1", "node[1].addrs", "expected as many addresses as node[0] (1, one per heartbeat LAN), got 2"],
        ),
        (
            "duplicate node name",
            patch("name = \"n2\"", "name = \"n1\""),
            &["node[1].name", "duplicate node name \"n1\""],
        ),
        (
            "VIP is a node address",
            patch("addr = \"198.18.0.100\"", "addr = \"198.18.0.2\""),
            &["vip[0].addr", "an address no node uses"],
        ),
        (
            "weight",
            patch("name = \"n2\"", "name = \"n2\"\nweight = 0"),
            &["farm-test.toml:15:10", "node[1].weight", "between 1 and 1000"],
        ),
        (
            "uplink",
            patch("uplink = \"net_af_packet0,iface=veth0\"", "uplink = \"eth0\""),
            &["farm-test.toml:25:10", "dataplane.uplink", "PCI address"],
        ),
        (
            "missing uplink",
            patch("uplink = \"net_af_packet0,iface=veth0\"", "workers = 1"),
            &["farm-test.toml:24:1", "dataplane", "missing uplink"],
        ),
        (
            "checker field of another kind",
            format!("{BASE}\n[[checker]]\nname = \"c\"\nkind = \"tcp\"\nport = 80\nurl = \"http://x/\"\n"),
            &["farm-test.toml:31:1", "checker[0].url", "not allowed with kind = \"tcp\" (its fields: addr, port)"],
        ),
        (
            "checker unknown kind",
            format!("{BASE}\n[[checker]]\nname = \"c\"\nkind = \"smtp\"\n"),
            &["farm-test.toml:29:8", "checker[0].kind", "unknown variant `smtp`", "expected one of"],
        ),
        (
            "checker bad regex",
            format!("{BASE}\n[[checker]]\nname = \"c\"\nkind = \"process\"\npattern = \"httpd(\"\n"),
            &["checker[0].pattern", "expected a regular expression"],
        ),
        (
            "majority with two nodes",
            format!("{BASE}\n[assignment]\ntakeover = \"majority\"\n"),
            &["farm-test.toml:28:1", "assignment.takeover", "expected a witness address"],
        ),
        (
            "relative secret path",
            patch("secret_file = \"/etc/farm/web.secret\"", "secret_file = \"web.secret\""),
            &["farm-test.toml:4:1", "module.secret_file", "expected an absolute path"],
        ),
        (
            "icmp with ports",
            format!("{BASE}\n[[vip.rule]]\nproto = \"icmp\"\nports = \"80\"\n"),
            &["farm-test.toml:29:1", "vip[0].rule[1].ports", "expected no ports (or \"all\") for icmp"],
        ),
        (
            "witness without majority",
            format!("{BASE}\n[assignment]\nwitness = \"198.18.0.254\"\n"),
            &["farm-test.toml:28:1", "assignment.witness", "only used with takeover = \"majority\""],
        ),
        (
            "dataplane checker in control-only mode",
            patch("uplink = \"net_af_packet0,iface=veth0\"", "enabled = false")
                + "\n[[checker]]\nname = \"dp\"\nkind = \"dataplane\"\n",
            &["farm-test.toml:29:1", "checker[0].kind", "expected [dataplane] enabled = true"],
        ),
        (
            "placeholder other than {node}",
            patch("cluster_id = 7", "cluster_id = 7\ntable_file = \"/dev/shm/farm-{module}\""),
            &["farm-test.toml:4:1", "module.table_file", "other than the {node} placeholder"],
        ),
        (
            "eal_args overriding file_prefix",
            patch("uplink = \"net_af_packet0,iface=veth0\"", "uplink = \"net_af_packet0\"\neal_args = [\"--no-huge\", \"--file-prefix=x\"]"),
            &["farm-test.toml:26:", "dataplane.eal_args[1]", "--file-prefix is set from the config"],
        ),
        (
            "af_xdp_peer with another local port",
            patch("uplink = \"net_af_packet0,iface=veth0\"", "uplink = \"net_af_packet0\"\nlocal_port = \"tap\"\naf_xdp_peer = \"farm0-dp\""),
            &["dataplane.af_xdp_peer", "expected no af_xdp_peer with local_port = \"tap\""],
        ),
        (
            "af_xdp peer named like the kernel end",
            patch("uplink = \"net_af_packet0,iface=veth0\"", "uplink = \"net_af_packet0\"\nlocal_port = \"af_xdp\"\naf_xdp_peer = \"farm0\""),
            &["dataplane.af_xdp_peer", "\"farm0\" is tap_name too"],
        ),
        (
            "af_xdp with a tap_name too long for the derived peer",
            patch("uplink = \"net_af_packet0,iface=veth0\"", "uplink = \"net_af_packet0\"\nlocal_port = \"af_xdp\"\ntap_name = \"farm-web-node01\""),
            &["dataplane.tap_name", "longer than 15 characters", "set af_xdp_peer"],
        ),
        (
            "unknown local port",
            patch("uplink = \"net_af_packet0,iface=veth0\"", "uplink = \"net_af_packet0\"\nlocal_port = \"kni\""),
            &["farm-test.toml:26:14", "dataplane.local_port", "unknown variant `kni`", "af_xdp"],
        ),
        (
            "listen address",
            format!("{BASE}\n[api]\nlisten = \"9010\"\n"),
            &["farm-test.toml:28:10", "api.listen", "expected an address and port like"],
        ),
        (
            "lcores count",
            patch("uplink = \"net_af_packet0,iface=veth0\"", "uplink = \"net_af_packet0\"\nworkers = 2\nlcores = [1]"),
            &["farm-test.toml:27:1", "dataplane.lcores", "expected one CPU per worker (2 workers), got 1 CPUs"],
        ),
        (
            "mbuf cache too big for the pool",
            patch("uplink = \"net_af_packet0,iface=veth0\"", "uplink = \"net_af_packet0\"\nmempool_size = 512\nmbuf_cache = 400"),
            &["farm-test.toml:27:1", "dataplane.mbuf_cache", "at most mempool_size / 1.5 (341), got 400"],
        ),
        (
            "relative script without dir",
            format!("{BASE}\n[scripts]\nstart_both = \"start_both\"\n"),
            &["farm-test.toml:28:1", "scripts.start_both", "or [scripts] dir to resolve it against"],
        ),
        (
            "syntax error",
            patch("cluster_id = 7", "cluster_id = = 7"),
            &["farm-test.toml:3:14", "invalid string; expected"],
        ),
    ];
    let mut failed = Vec::new();
    for (name, text, expected) in &cases {
        let msg = err_of(text);
        for want in *expected {
            if !msg.contains(want) {
                failed.push(format!("{name}: {want:?} not in {msg:?}"));
            }
        }
        assert!(msg.starts_with("farm-test.toml"), "{name}: {msg}");
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn all_validation_problems_are_reported() {
    let text = patch("pulse = \"100ms\"", "pulse = \"400ms\"")
        .replace("name = \"n2\"", "name = \"n2\"\nid = 0");
    let e = Config::from_str(&text, "f.toml").unwrap_err();
    let keys: Vec<&str> = e.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["node[1].id", "heartbeat.dead_after"]);
    assert_eq!(e.to_string().lines().count(), 2);
}

#[test]
fn load_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, patch("pulse = \"100ms\"", "pulse = \"soon\"")).unwrap();
    let msg = Config::load(&path).unwrap_err().to_string();
    assert!(
        msg.starts_with(&format!(
            "{}:7:9: heartbeat.pulse: expected a duration",
            path.display()
        )),
        "{msg}"
    );
    let missing = dir.path().join("missing.toml");
    let e = Config::load(&missing).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(e.to_string().contains("missing.toml"), "{e}");
}

#[test]
fn check_runtime_requires_private_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("web.secret");
    let text = patch("/etc/farm/web.secret", secret.to_str().unwrap()).replace(
        "uplink = \"net_af_packet0,iface=veth0\"",
        "uplink = \"net_af_packet0,iface=veth0\"\nbinary = \"/bin/sh\"",
    );
    let cfg = Config::from_str(&text, "farm-test.toml").expect("valid");

    // Missing file.
    let msg = cfg.check_runtime().unwrap_err().to_string();
    assert!(
        msg.contains("farm-test.toml: module.secret_file") && msg.contains("cannot stat"),
        "{msg}"
    );

    // World-readable.
    write_mode(&secret, b"0123456789abcdef0123", 0o644);
    let e = cfg.check_runtime().unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, ConfigError::Runtime { .. }));
    assert!(
        msg.starts_with("farm-test.toml: module.secret_file: "),
        "{msg}"
    );
    assert!(
        msg.contains("web.secret") && msg.contains("expected mode 0600") && msg.contains("0644"),
        "{msg}"
    );

    // Group-readable is refused too.
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(cfg
        .check_runtime()
        .unwrap_err()
        .to_string()
        .contains("found 0640"));

    // Too short.
    write_mode(&secret, b"short\n", 0o600);
    assert!(cfg
        .check_runtime()
        .unwrap_err()
        .to_string()
        .contains("at least 16 bytes"));

    // Good, once the seed (not in the file) is derived from it, as Config::load does.
    write_mode(&secret, b"0123456789abcdef0123\n", 0o600);
    let msg = cfg.check_runtime().unwrap_err().to_string();
    assert!(msg.contains("module.hash_seed") && msg.contains("not read"), "{msg}");
    let mut cfg = cfg;
    cfg.resolve_hash_seed().unwrap();
    cfg.check_runtime().expect("0600 secret passes");
    assert_eq!(cfg.read_secret().unwrap(), b"0123456789abcdef0123");
}

#[test]
fn check_runtime_checks_scripts_and_binary() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("s");
    write_mode(&secret, b"0123456789abcdef", 0o600);
    let script = dir.path().join("start_both");
    write_mode(&script, b"#!/bin/sh\n", 0o644);
    let text = patch("/etc/farm/web.secret", secret.to_str().unwrap()).replace(
        "uplink = \"net_af_packet0,iface=veth0\"",
        &format!(
            "uplink = \"net_af_packet0,iface=veth0\"\nbinary = \"{}\"\n\n[scripts]\ndir = \"{}\"\nstart_both = \"start_both\"",
            dir.path().join("no-such-dataplane").display(),
            dir.path().display()
        ),
    );
    let mut cfg = Config::from_str(&text, "f.toml").unwrap();
    cfg.resolve_hash_seed().unwrap();
    let msg = cfg.check_runtime().unwrap_err().to_string();
    assert!(
        msg.contains("scripts.start_both") && msg.contains("expected an executable file"),
        "{msg}"
    );
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let msg = cfg.check_runtime().unwrap_err().to_string();
    assert!(
        msg.contains("dataplane.binary") && msg.contains("no-such-dataplane"),
        "{msg}"
    );
}

#[test]
fn local_node_by_name_or_by_address() {
    let text = patch("addrs = [\"198.18.0.2\"]", "addrs = [\"127.0.0.1\"]");
    let cfg = Config::from_str(&text, "f.toml").unwrap();
    assert_eq!(cfg.local_node(Some("n1")).unwrap().id.get(), 0);
    let msg = cfg.local_node(Some("n9")).unwrap_err().to_string();
    assert!(
        msg.contains("f.toml: node: no [[node]] is named \"n9\"; expected one of: n1, n2"),
        "{msg}"
    );
    // 127.0.0.1 is on this machine's loopback interface: n2 is found by address.
    assert_eq!(cfg.local_node(None).unwrap().name.as_str(), "n2");
    let none = cfg
        .local_node_among(&["198.18.9.9".parse().unwrap()])
        .unwrap_err()
        .to_string();
    assert!(
        none.contains("no node address is configured on this machine") && none.contains("--node"),
        "{none}"
    );
    let both = ["198.18.0.1".parse().unwrap(), "127.0.0.1".parse().unwrap()];
    let many = cfg.local_node_among(&both).unwrap_err().to_string();
    assert!(
        many.contains("several nodes") && many.contains("n1, n2"),
        "{many}"
    );
}
