//! `[dataplane] tap_addrs` (addresses farmd puts on the TAP) and `[module] autostart`.

use std::net::IpAddr;

use farm_config::{Config, TapAddr, TapHost};

const BASE: &str = r#"[module]
name = "web"
cluster_id = 7
secret_file = "/etc/farm/web.secret"

[[node]]
name = "n1"
addrs = ["198.18.0.1", "2001:db8::1"]

[[node]]
name = "n2"
addrs = ["198.18.0.2", "2001:db8::2"]

[[vip]]
addr = "198.18.0.100"
[[vip.rule]]
proto = "tcp"
ports = "80"

[dataplane]
uplink = "net_af_packet0,iface=veth0"
"#;

fn with(dataplane_lines: &str) -> String {
    format!("{BASE}{dataplane_lines}\n")
}

fn err_of(text: &str) -> String {
    match Config::from_str(text, "t.toml") {
        Ok(c) => panic!("expected an error, got {:?}", c.dataplane.tap_addrs),
        Err(e) => e.to_string(),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn default_is_no_address_and_no_autostart() {
    let c = Config::from_str(BASE, "t.toml").unwrap();
    assert!(c.dataplane.tap_addrs.is_empty());
    assert!(!c.module.autostart);
    let c = Config::from_str(
        &BASE.replace("cluster_id = 7", "cluster_id = 7\nautostart = true"),
        "t.toml",
    )
    .unwrap();
    assert!(c.module.autostart);
}

#[test]
fn fixed_addresses_and_placeholders_parse() {
    let c = Config::from_str(
        &with(
            r#"tap_addrs = ["198.18.0.100/32", "{addr0}/16", "{addr1}/64", "2001:db8::100/128"]"#,
        ),
        "t.toml",
    )
    .unwrap();
    let a = &c.dataplane.tap_addrs;
    assert_eq!(
        a[0],
        TapAddr {
            host: TapHost::Addr(ip("198.18.0.100")),
            prefix_len: 32
        }
    );
    assert_eq!(
        a[1],
        TapAddr {
            host: TapHost::NodeAddr(0),
            prefix_len: 16
        }
    );
    assert_eq!(a[2].host, TapHost::NodeAddr(1));
    assert_eq!(a[3].to_string(), "2001:db8::100/128");
    // `{addr}` is `{addr0}`.
    let c = Config::from_str(&with(r#"tap_addrs = ["{addr}/24"]"#), "t.toml").unwrap();
    assert_eq!(c.dataplane.tap_addrs[0].host, TapHost::NodeAddr(0));
}

#[test]
fn bad_entries_name_the_element_and_what_was_expected() {
    let cases: &[(&str, &[&str])] = &[
        (
            r#"tap_addrs = ["198.18.0.1/16", "198.18.0.300/16"]"#,
            &[
                "t.toml:22:31",
                "dataplane.tap_addrs[1]",
                "\"198.18.0.300\" is not an address",
            ],
        ),
        (
            r#"tap_addrs = ["198.18.0.1"]"#,
            &[
                "dataplane.tap_addrs[0]",
                "no prefix length",
                "like \"198.18.0.1/16\"",
            ],
        ),
        (
            r#"tap_addrs = ["198.18.0.1/33"]"#,
            &["dataplane.tap_addrs[0]", "prefix length between 1 and 32"],
        ),
        (
            r#"tap_addrs = ["2001:db8::1/0"]"#,
            &["dataplane.tap_addrs[0]", "prefix length between 1 and 128"],
        ),
        (
            r#"tap_addrs = ["224.0.0.1/24"]"#,
            &["dataplane.tap_addrs[0]", "unicast"],
        ),
        (
            r#"tap_addrs = ["{node}/16"]"#,
            &["dataplane.tap_addrs[0]", "{addr0}"],
        ),
        (
            r#"tap_addrs = "198.18.0.1/16""#,
            &["dataplane.tap_addrs", "expected a sequence"],
        ),
        // Checked against the nodes' addresses.
        (
            r#"tap_addrs = ["{addr2}/16"]"#,
            &[
                "t.toml:22:14",
                "dataplane.tap_addrs[0]",
                "the nodes have 2 address(es)",
                "{addr0}..{addr1}",
            ],
        ),
        (
            r#"tap_addrs = ["{addr0}/64"]"#,
            &[
                "dataplane.tap_addrs[0]",
                "node addrs[0] are IPv4 addresses",
                "between 1 and 32",
            ],
        ),
        (
            r#"tap_addrs = ["{addr0}/16", "{addr}/24"]"#,
            &[
                "dataplane.tap_addrs[1]",
                "duplicate address {addr0}/24 (also dataplane.tap_addrs[0])",
            ],
        ),
        (
            r#"tap_addrs = ["198.18.0.100/32", "198.18.0.100/24"]"#,
            &["dataplane.tap_addrs[1]", "duplicate address"],
        ),
    ];
    for (lines, wants) in cases {
        let msg = err_of(&with(lines));
        for w in *wants {
            assert!(msg.contains(w), "{lines}: {w:?} not in {msg}");
        }
    }
    // No data plane, no TAP.
    let msg = err_of(&BASE.replace(
        "uplink = \"net_af_packet0,iface=veth0\"",
        "enabled = false\ntap_addrs = [\"{addr0}/16\"]",
    ));
    assert!(
        msg.contains("dataplane.tap_addrs") && msg.contains("enabled = false"),
        "{msg}"
    );
}

#[test]
fn localize_fills_in_the_nodes_addresses() {
    let mut c = Config::from_str(
        &with(r#"tap_addrs = ["{addr0}/16", "{addr1}/64", "198.18.0.100/32"]"#),
        "t.toml",
    )
    .unwrap();
    let unknown = {
        let mut u = c.clone();
        u.localize("n9");
        u.dataplane.tap_addrs
    };
    assert_eq!(
        unknown, c.dataplane.tap_addrs,
        "no such node: left as placeholders"
    );
    c.localize("n2");
    let shown: Vec<String> = c
        .dataplane
        .tap_addrs
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        shown,
        ["198.18.0.2/16", "2001:db8::2/64", "198.18.0.100/32"]
    );
    assert!(c.dataplane.tap_addrs.iter().all(|a| a.addr().is_some()));
}

#[test]
fn load_local_refuses_a_peers_address() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("farm.toml");
    std::fs::write(&path, with(r#"tap_addrs = ["198.18.0.1/16"]"#)).unwrap();
    // On n1 this is its own address: fine (a per-node file).
    let (c, n) = Config::load_local(&path, Some("n1")).unwrap();
    assert_eq!(n.name.as_str(), "n1");
    assert_eq!(c.dataplane.tap_addrs[0].to_string(), "198.18.0.1/16");
    // On n2 it is a peer's: the shared-file mistake.
    let msg = Config::load_local(&path, Some("n2"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("dataplane.tap_addrs[0]")
            && msg.contains("198.18.0.1/16 is node n1's address, not this node's (n2)")
            && msg.contains("{addrN}/16"),
        "{msg}"
    );
    // Placeholders resolve per node.
    std::fs::write(&path, with(r#"tap_addrs = ["{addr0}/16"]"#)).unwrap();
    let (c, _) = Config::load_local(&path, Some("n2")).unwrap();
    assert_eq!(c.dataplane.tap_addrs[0].addr(), Some(ip("198.18.0.2")));
}
