//! The files of a new cluster, as `farmctl config init` and the namespace lab make them: the
//! heartbeat secret, the API token (random hex, mode 0600) and a random `module.hash_seed`
//! written into the configuration ([`crate::seed`]); and, for a cluster started from nothing,
//! a first commented configuration ([`new_config`]).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use toml_edit::{value, DocumentMut};

use crate::seed::{format_seed, random_hex};

/// Random bytes in a new secret file (written as 64 hex characters).
pub const SECRET_BYTES: usize = 32;
/// Random bytes in a new token file (written as 64 hex characters).
pub const TOKEN_BYTES: usize = 32;

/// The content of a new heartbeat secret file: [`SECRET_BYTES`] random bytes as hex, newline.
pub fn new_secret() -> io::Result<String> {
    Ok(random_hex(SECRET_BYTES)? + "\n")
}

/// The content of a new API token file: [`TOKEN_BYTES`] random bytes as hex, newline.
pub fn new_token() -> io::Result<String> {
    Ok(random_hex(TOKEN_BYTES)? + "\n")
}

/// A temporary name next to `path` (same directory, so a rename replaces `path` atomically).
fn temp_next_to(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp{}", std::process::id()))
}

/// Writes `contents` to a new file `tmp` with `mode`, then renames it to `path`.
fn write_then_rename(tmp: &Path, path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let res = (|| {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(tmp)?;
        // The umask may have removed bits of `mode`; the mode is what the caller asked for.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(tmp, path)
    })();
    if res.is_err() {
        let _ = fs::remove_file(tmp);
    }
    res
}

/// Writes a private file (mode 0600 from its creation: the content is never readable by
/// others). An existing `path` is refused (`ErrorKind::AlreadyExists`) unless `overwrite`;
/// overwriting writes a new file next to it and renames it over. Creates missing parent
/// directories.
pub fn write_private(path: &Path, contents: &[u8], overwrite: bool) -> io::Result<()> {
    write_new(path, contents, 0o600, overwrite)
}

/// Writes a file with `mode` from its creation (e.g. 0640 for a configuration that holds a
/// hash seed). An existing `path` is refused (`ErrorKind::AlreadyExists`) unless `overwrite`,
/// as [`write_private`] does. Creates missing parent directories.
pub fn write_new(path: &Path, contents: &[u8], mode: u32, overwrite: bool) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    if !overwrite {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(contents)?;
        return f.sync_all();
    }
    write_then_rename(&temp_next_to(path), path, contents, mode)
}

/// Replaces the content of the existing file `path`, keeping its mode (written next to it,
/// then renamed over it).
pub fn replace_keeping_mode(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mode = fs::metadata(path)?.permissions().mode() & 0o7777;
    write_then_rename(&temp_next_to(path), path, contents, mode)
}

/// Comment written after a seed set by [`set_hash_seed`].
pub const SEED_COMMENT: &str = "# random (farmctl config init): the same on every node, keep it private";

/// The configuration `text` with `[module] hash_seed` set to `seed` (as `"0x..."`, with
/// [`SEED_COMMENT`]); everything else, comments and layout included, is kept. Fails when `text`
/// is not TOML or has no `[module]` table.
pub fn set_hash_seed(text: &str, seed: u64) -> Result<String, String> {
    let mut doc: DocumentMut = text.parse().map_err(|e| format!("not a TOML file: {e}"))?;
    let module = doc
        .get_mut("module")
        .and_then(|m| m.as_table_like_mut())
        .ok_or("expected a [module] table")?;
    let mut v = value(format_seed(seed));
    if let Some(val) = v.as_value_mut() {
        val.decor_mut().set_suffix(format!("  {SEED_COMMENT}"));
    }
    module.insert("hash_seed", v);
    Ok(doc.to_string())
}

/// A new cluster described on the command line (`farmctl config init --nodes ... --vip ...`):
/// what [`new_config`] writes.
#[derive(Clone, Debug)]
pub struct NewCluster {
    /// `module.name`.
    pub module: String,
    /// `module.cluster_id` (random unless given).
    pub cluster_id: u32,
    /// `module.hash_seed` (random).
    pub hash_seed: u64,
    /// `module.secret_file` (absolute).
    pub secret_file: PathBuf,
    /// `api.token_file` (absolute).
    pub token_file: PathBuf,
    /// The members: name and one address per heartbeat LAN.
    pub nodes: Vec<(String, Vec<IpAddr>)>,
    /// The virtual IPs (none: a control-only farm).
    pub vips: Vec<IpAddr>,
    /// The rules of every VIP: protocol (`"tcp"`, `"udp"`) and ports (`"80"`, `"8000-8100"`,
    /// `"all"`).
    pub rules: Vec<(String, String)>,
    /// `affinity = "on_port"` instead of `"on_addr"` for these rules.
    pub on_port: bool,
    /// `dataplane.uplink`; without it the data plane is written disabled (control-only), with
    /// the key to set commented.
    pub uplink: Option<String>,
}

/// A TOML string (quoted and escaped).
pub fn toml_string(s: &str) -> String {
    toml_edit::Value::from(s).to_string().trim().to_string()
}

/// The first configuration of a new cluster, with comments: the module (random cluster id and
/// hash seed), the nodes, heartbeat timers, the VIPs and their rules, the data plane, commented
/// examples of scripts and checkers, the restart policy and the API. It passes
/// [`crate::Config::from_str`] for any input that names valid nodes and VIPs (the caller checks).
pub fn new_config(c: &NewCluster) -> String {
    let q = |s: &str| toml_string(s);
    let p = |p: &Path| toml_string(&p.display().to_string());
    let mut t = String::new();
    let mut line = |s: String| {
        t.push_str(&s);
        t.push('\n');
    };
    line(format!("# farm configuration of module {:?}, written by `farmctl config init`.", c.module));
    line("#".into());
    line("# The same file goes on every node, with the secret and token files it names (same content,".into());
    line("# mode 0600). Every key is described in configs/README.md; check a change with".into());
    line("# `farmctl config check FILE` before copying it.".into());
    line(String::new());
    line("[module]".into());
    line(format!("name = {:<24}  # names the files: /dev/shm/farm-{m}, /var/log/farm/{m}, ...", q(&c.module), m = c.module));
    line(format!("cluster_id = {:<18}  # random; farms sharing a LAN need different ids", c.cluster_id));
    line(format!("hash_seed = {:<19}  {SEED_COMMENT}", q(&crate::seed::format_seed(c.hash_seed))));
    line(format!("secret_file = {}  # heartbeat HMAC key, mode 0600, the same on every node", p(&c.secret_file)));
    line("# autostart = true               # start the module when farmd starts (else: farmctl start)".into());
    line(String::new());
    line("# The members: one address per heartbeat LAN (addrs[k] of every node on the same LAN). farmd".into());
    line("# finds its own node by these addresses on the machine, or is told with `farmd --node NAME`.".into());
    for (name, addrs) in &c.nodes {
        line("[[node]]".into());
        line(format!("name = {}", q(name)));
        let a: Vec<String> = addrs.iter().map(|a| q(&a.to_string())).collect();
        line(format!("addrs = [{}]", a.join(", ")));
        line("# weight = 1                     # share of the clients (1-1000): 2 gets twice as many".into());
        line(String::new());
    }
    line("[heartbeat]".into());
    line("pulse = \"100ms\"                  # one heartbeat per peer and LAN every 100 ms".into());
    line("dead_after = \"1s\"                # silence after which a peer is dead and its buckets move".into());
    line(String::new());
    if c.vips.is_empty() {
        line("# No VIP: control-only (a cloud load balancer polls the health URL of each node,".into());
        line(format!("# http://<node>:9010/var/modules/{}/ready.txt: 200 when UP).", c.module));
    }
    for vip in &c.vips {
        line("# Every node receives every packet for the VIP; the client is hashed to a bucket and only".into());
        line("# the bucket's owner answers. Traffic to the VIP that matches no rule is dropped.".into());
        line("[[vip]]".into());
        line(format!("addr = {}", q(&vip.to_string())));
        line(String::new());
        for (proto, ports) in &c.rules {
            line("[[vip.rule]]".into());
            line(format!("proto = {}", q(proto)));
            line(format!("ports = {}", q(ports)));
            if c.on_port {
                line("affinity = \"on_port\"            # each connection placed on its own (stateless services)".into());
            } else {
                line("affinity = \"on_addr\"            # all connections of a client go to one node (sessions)".into());
            }
            line(String::new());
        }
        line("[[vip.rule]]".into());
        line("proto = \"icmp\"                   # answer pings to the VIP (one node per client)".into());
        line(String::new());
    }
    line("[dataplane]".into());
    match &c.uplink {
        Some(u) => {
            line(format!("uplink = {}  # the NIC the DPDK data plane owns (PCI address or vdev)", q(u)));
        }
        None => {
            if !c.vips.is_empty() {
                line("# No uplink given: the data plane is off, so the VIP is not served yet. Set the NIC the".into());
                line("# DPDK data plane takes over and remove `enabled = false`:".into());
            }
            line("enabled = false".into());
            line("# uplink = \"0000:03:00.0\"         # a PCI address, or a vdev: \"net_af_packet0,iface=eth1\"".into());
        }
    }
    if !c.vips.is_empty() {
        line("# tap_name = \"farm0\"              # the kernel interface behind the data plane (node address)".into());
        line("# tap_addrs = [\"{addr0}/24\"]      # put this node's addrs[0] on it after every data-plane start".into());
    }
    line(String::new());
    line("# The application: start_both runs before the node takes clients, stop_both after it has".into());
    line("# handed them over (then `stop_both force` if needed).".into());
    line("# [scripts]".into());
    line(format!("# dir = \"/etc/farm/{}\"", c.module));
    line("# start_both = \"start_both\"".into());
    line("# stop_both = \"stop_both\"".into());
    line(String::new());
    line("# Checkers: the node is UP (serves clients) only while every checker passes.".into());
    let port = c.rules.iter().find(|(p, ports)| p == "tcp" && ports.parse::<u16>().is_ok()).map(|(_, ports)| ports.clone());
    line("# [[checker]]".into());
    line("# name = \"app\"".into());
    line("# kind = \"tcp\"                    # or http, process, custom, interface, ping, dataplane".into());
    line(format!("# port = {}", port.unwrap_or_else(|| "80".into())));
    line("# action = \"restart\"              # restart, stopstart or wait".into());
    line(String::new());
    line("[restart]".into());
    line("maxloop = 3                      # restarts allowed within loop_interval, then the module stops".into());
    line("loop_interval = \"24h\"".into());
    line(String::new());
    line("[api]".into());
    line("listen = \"0.0.0.0:9010\"          # health URL, status, metrics; commands need the token".into());
    line(format!("token_file = {}  # bearer token for commands over TCP, mode 0600", p(&c.token_file)));
    t
}

/// A random cluster id (from the OS random number generator), never 0.
pub fn random_cluster_id() -> io::Result<u32> {
    loop {
        let id = getrandom::u32().map_err(io::Error::other)?;
        if id != 0 {
            return Ok(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_refuse_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/secret");
        write_private(&p, b"one\n", false).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        let e = write_private(&p, b"two\n", false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&p).unwrap(), b"one\n");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&p, b"two\n", true).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two\n");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_dir(p.parent().unwrap()).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn seed_is_set_keeping_the_rest() {
        let text = "# head\n[module]\nname = \"web\"   # the name\ncluster_id = 7\n\n[api]\nlisten = \"0.0.0.0:9010\"\n";
        let out = set_hash_seed(text, 0x0123_4567_89ab_cdef).unwrap();
        assert!(out.starts_with("# head\n[module]\nname = \"web\"   # the name\n"), "{out}");
        assert!(out.contains(&format!("hash_seed = \"0x0123456789abcdef\"  {SEED_COMMENT}\n")), "{out}");
        assert!(out.find("hash_seed").unwrap() < out.find("[api]").unwrap(), "{out}");
        // Replacing drops the old value and its comment.
        let again = set_hash_seed(&out.replace("0x0123456789abcdef", "0x5eed\"  # old"), 0xfedc_ba98_7654_3210).unwrap();
        assert!(!again.contains("0x5eed") && !again.contains("# old"), "{again}");
        assert_eq!(again.matches("hash_seed").count(), 1, "{again}");
        assert!(set_hash_seed("[api]\n", 1).unwrap_err().contains("[module]"));
        assert!(set_hash_seed("[module\n", 1).is_err());
    }

    #[test]
    fn new_config_is_valid_and_commented() {
        let mut c = NewCluster {
            module: "web".into(),
            cluster_id: 77,
            hash_seed: 0x0123_4567_89ab_cdef,
            secret_file: "/etc/farm/web.secret".into(),
            token_file: "/etc/farm/web.token".into(),
            nodes: vec![("n1".into(), vec!["198.18.0.1".parse().unwrap()]), ("n2".into(), vec!["198.18.0.2".parse().unwrap()])],
            vips: vec!["198.18.0.100".parse().unwrap()],
            rules: vec![("tcp".into(), "80".into()), ("udp".into(), "5000-5100".into())],
            on_port: false,
            uplink: Some("net_af_packet0,iface=eth1".into()),
        };
        let text = new_config(&c);
        let cfg = crate::Config::from_str(&text, "new.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!((cfg.nodes.len(), cfg.vips.len(), cfg.vips[0].rules.len()), (2, 1, 3));
        assert_eq!(cfg.module.hash_seed, 0x0123_4567_89ab_cdef);
        assert!(cfg.dataplane.enabled);
        assert!(text.contains("# [[checker]]") && text.contains("# port = 80"), "{text}");
        // Without an uplink: the data plane is off, the file still valid; without a VIP too.
        c.uplink = None;
        c.on_port = true;
        let text = new_config(&c);
        let cfg = crate::Config::from_str(&text, "new.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(!cfg.dataplane.enabled && text.contains("# uplink = "), "{text}");
        assert_eq!(cfg.vips[0].rules[0].affinity, crate::Affinity::OnPort);
        c.vips.clear();
        let text = new_config(&c);
        let cfg = crate::Config::from_str(&text, "new.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(cfg.vips.is_empty() && text.contains("control-only"), "{text}");
        // Strings are escaped.
        let doc: DocumentMut = format!("x = {}", toml_string("a\"b\\c'd")).parse().unwrap();
        assert_eq!(doc["x"].as_str(), Some("a\"b\\c'd"));
    }

    #[test]
    fn replacing_keeps_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("farm.toml");
        fs::write(&p, "a").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        replace_keeping_mode(&p, b"b").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"b");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o640);
    }

    #[test]
    fn new_material_is_long_hex() {
        let s = new_secret().unwrap();
        assert_eq!(s.trim().len(), 2 * SECRET_BYTES);
        assert!(s.ends_with('\n'));
        assert_ne!(s, new_secret().unwrap());
        assert_eq!(new_token().unwrap().trim().len(), 2 * TOKEN_BYTES);
    }
}
