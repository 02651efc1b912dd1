//! Shared by farm-config's integration tests: a valid two-node configuration to patch, and
//! files written with a mode.
#![allow(dead_code)] // each test binary uses its part

use std::io::Write;
use std::os::unix::fs::PermissionsExt;

/// Two nodes, one VIP, a data plane. Tests name positions in it (`file:line:column`): keep
/// its lines where they are.
pub const BASE: &str = r#"[module]
name = "web"
cluster_id = 7
secret_file = "/etc/farm/web.secret"

[heartbeat]
pulse = "100ms"

[[node]]
name = "n1"
addrs = ["198.18.0.1"]

[[node]]
name = "n2"
addrs = ["198.18.0.2"]

[[vip]]
addr = "198.18.0.100"

[[vip.rule]]
proto = "tcp"
ports = "80"

[dataplane]
uplink = "net_af_packet0,iface=veth0"
"#;

/// Replaces `from` (which must occur) with `to` in BASE.
pub fn patch(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "test bug: {from:?} not in BASE");
    BASE.replacen(from, to, 1)
}

/// Writes `contents` to `path` with `mode`.
pub fn write_mode(path: &std::path::Path, contents: &[u8], mode: u32) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
