//! Farm mode: the configuration every node's farmd reads (generated from `configs/lab.toml`),
//! the secret and token files, the start/stop scripts, and starting farmd in a namespace.
//!
//! One file for all nodes, as on a real farm: `R/farm.toml` (R = the run directory). The lab
//! rewrites from the template only what depends on the lab: the node list (`n1..nN`,
//! 198.18.0.i), the VIP, every path (run directory, `/dev/shm/<prefix>-lab-{node}`, DPDK file
//! prefix `<prefix>-lab-{node}`), the data-plane binary (absolute, from `--bin-dir`), the uplink
//! (`net_af_packet0,iface=dp0`), the TAP name (`farm0`), the scripts and the API token; then it
//! validates the result with `farm-config` before creating anything. Two additions: a `tcp
//! 8080 on_port` rule on the VIP (unless a rule covers TCP 8080 already), so the lab has a
//! per-connection spread next to the `tcp 80 on_addr` one; and `action = "wait"` on HTTP
//! checkers without an action (a node whose Apache fails waits out of the farm until it
//! answers again, instead of restarting it).
//!
//! farmd runs in its namespace as `farmd --config R/farm.toml --node n<i> --start`; it starts
//! farm-dataplane itself, which creates `farm0`; the lab then puts the node address on `farm0`
//! (the VIP already sits on `lo`). farmd runs `start_both`, which starts the node's Apache with
//! the configuration the lab wrote in `R/n<i>/apache/`.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use farm_config::{init, seed, Config, LocalPort, Proto};
use toml_edit::{value, Array, ArrayOfTables, DocumentMut, Item, Table};

use super::cmd::command;
use super::error::LabError;
use super::layout::{Layout, NODE_TAP, NODE_UPLINK};

/// The template shipped with the sources (`configs/lab.toml`).
pub const LAB_TEMPLATE: &str = include_str!("../../../configs/lab.toml");
/// Name of the control daemon in `--bin-dir`.
pub const FARMD: &str = "farmd";
/// Name of the data plane in `--bin-dir`.
pub const DATAPLANE: &str = "farm-dataplane";
/// Name of the command line in `--bin-dir` (optional: the lab runs without it).
pub const FARMCTL: &str = "farmctl";
/// The VIP's second TCP port, with an `on_port` rule (per-connection spread); the lab's Apache
/// listens on it too.
pub const ON_PORT_TCP: u16 = 8080;

/// Paths of the farm files in the run directory.
#[derive(Clone, Debug)]
pub struct FarmFiles {
    /// `R/farm.toml`.
    pub config: PathBuf,
    /// `R/secret` (0600).
    pub secret: PathBuf,
    /// `R/token` (0600): bearer token for farmd's POST endpoints.
    pub token: PathBuf,
    /// `R/start_both`.
    pub start_both: PathBuf,
    /// `R/stop_both`.
    pub stop_both: PathBuf,
}

impl FarmFiles {
    /// The files of the lab `l`.
    pub fn new(l: &Layout) -> FarmFiles {
        let r = l.run_dir();
        FarmFiles {
            config: r.join("farm.toml"),
            secret: r.join("secret"),
            token: r.join("token"),
            start_both: r.join("start_both"),
            stop_both: r.join("stop_both"),
        }
    }
}

fn set_path(t: &mut Item, key: &str, p: impl AsRef<Path>) {
    t[key] = value(p.as_ref().to_string_lossy().into_owned());
}

/// The DPDK driver of each node's uplink `dp0` (a veth whose peer is on the bridge).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LabUplink {
    /// `net_af_packet`: a packet socket (TPACKET_V2 rings, one `sendto` per tx burst).
    #[value(name = "af_packet")]
    AfPacket,
    /// `net_af_xdp`: the PMD loads libxdp's default program on `dp0` (native XDP on a veth)
    /// and redirects every frame into its AF_XDP socket.
    #[value(name = "af_xdp")]
    AfXdp,
}

impl LabUplink {
    /// The uplink's devargs for `workers` queues.
    pub fn devargs(self, workers: u32) -> String {
        match self {
            LabUplink::AfPacket if workers > 1 => format!("net_af_packet0,iface={NODE_UPLINK},qpairs={workers}"),
            LabUplink::AfPacket => format!("net_af_packet0,iface={NODE_UPLINK}"),
            LabUplink::AfXdp => format!("net_af_xdp0,iface={NODE_UPLINK},start_queue=0,queue_count={workers},busy_budget=0"),
        }
    }

    /// The driver a template's `dataplane.uplink` names (`net_af_xdp...` or else af_packet).
    pub fn of_template(uplink: Option<&str>) -> LabUplink {
        match uplink {
            Some(u) if u.starts_with("net_af_xdp") => LabUplink::AfXdp,
            _ => LabUplink::AfPacket,
        }
    }

    /// The name used by the options and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            LabUplink::AfPacket => "af_packet",
            LabUplink::AfXdp => "af_xdp",
        }
    }
}

/// What a lab may change in the template besides its own names: the uplink's driver and the
/// local port (`None`: the template's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataplaneChoice {
    /// The uplink's driver.
    pub uplink: Option<LabUplink>,
    /// `dataplane.local_port`.
    pub local_port: Option<LocalPort>,
}

/// Rewrites the template for lab `l` and validates it. Returns the text and the parsed config.
pub fn render_config(
    template: &str,
    l: &Layout,
    bin_dir: &Path,
) -> Result<(String, Config), LabError> {
    render_config_with(template, l, bin_dir, DataplaneChoice::default())
}

/// [`render_config`] with the uplink driver and the local port chosen by the lab's options.
pub fn render_config_with(
    template: &str,
    l: &Layout,
    bin_dir: &Path,
    choice: DataplaneChoice,
) -> Result<(String, Config), LabError> {
    let files = FarmFiles::new(l);
    let r = l.run_dir();
    let mut doc: DocumentMut =
        template.parse().map_err(|e| LabError::Config(format!("template: {e}")))?;

    let module = &mut doc["module"];
    set_path(module, "secret_file", &files.secret);
    lab_hash_seed(module)?;
    set_path(module, "log_dir", r.join("{node}/log"));
    set_path(module, "run_dir", r.join("{node}/run"));
    module["table_file"] = value(format!("/dev/shm/{}{{node}}", l.shm_prefix()));

    let mut nodes = ArrayOfTables::new();
    for i in l.node_numbers() {
        let mut t = Table::new();
        t["name"] = value(l.node_name(i));
        let mut addrs = Array::new();
        addrs.push(l.node_addr(i).to_string());
        t["addrs"] = value(addrs);
        nodes.push(t);
    }
    doc["node"] = Item::ArrayOfTables(nodes);

    let vips = doc["vip"]
        .as_array_of_tables_mut()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| LabError::Config("template: expected at least one [[vip]]".into()))?;
    let vip = vips.get_mut(0).expect("non-empty");
    vip["addr"] = value(l.vip().to_string());

    // A node whose Apache fails its HTTP checker waits out of the farm until it answers again
    // (unless the template says otherwise).
    if let Some(checkers) = doc.get_mut("checker").and_then(Item::as_array_of_tables_mut) {
        for c in checkers.iter_mut() {
            if c.get("kind").and_then(Item::as_str) == Some("http") && !c.contains_key("action") {
                c["action"] = value("wait");
            }
        }
    }

    let dp = &mut doc["dataplane"];
    set_path(dp, "binary", bin_dir.join(DATAPLANE));
    let uplink = choice.uplink.unwrap_or_else(|| LabUplink::of_template(dp.get("uplink").and_then(Item::as_str)));
    let workers = dp.get("workers").and_then(Item::as_integer).and_then(|w| u32::try_from(w).ok()).unwrap_or(1);
    dp["uplink"] = value(uplink.devargs(workers));
    if let Some(lp) = choice.local_port {
        dp["local_port"] = value(lp.as_str());
    }
    dp["tap_name"] = value(NODE_TAP);
    dp["file_prefix"] = value(format!("{}{{node}}", l.shm_prefix()));

    let scripts = &mut doc["scripts"];
    set_path(scripts, "start_both", &files.start_both);
    set_path(scripts, "stop_both", &files.stop_both);

    set_path(&mut doc["api"], "token_file", &files.token);

    let origin = files.config.to_string_lossy().into_owned();
    let parse = |doc: &DocumentMut| {
        let text = doc.to_string();
        Config::from_str(&text, &origin).map(|c| (text, c)).map_err(|e| LabError::Config(e.to_string()))
    };
    let (text, cfg) = parse(&doc)?;
    let vip = IpAddr::V4(l.vip());
    if cfg.vip(vip).is_some_and(|v| v.rules.iter().any(|r| r.matches(Proto::Tcp, ON_PORT_TCP))) {
        return Ok((text, cfg));
    }
    push_on_port_rule(doc["vip"].as_array_of_tables_mut().and_then(|v| v.get_mut(0)).expect("checked above"));
    parse(&doc)
}

/// Appends `tcp ON_PORT_TCP on_port` to the rules of the VIP `vip` (the template's `tcp 80
/// on_addr` rule gives client affinity; this one spreads the connections of one client).
fn push_on_port_rule(vip: &mut Table) {
    let mut rule = Table::new();
    rule["proto"] = value("tcp");
    rule["ports"] = value(ON_PORT_TCP.to_string());
    rule["affinity"] = value("on_port");
    match vip.get_mut("rule").and_then(Item::as_array_of_tables_mut) {
        Some(rules) => rules.push(rule),
        None => {
            let mut rules = ArrayOfTables::new();
            rules.push(rule);
            vip["rule"] = Item::ArrayOfTables(rules);
        }
    }
}

/// The shell lines both scripts start with: the node's Apache files, and `is_apache PID`, true
/// only for a live process running this configuration (a killed Apache that its parent has not
/// reaped yet is a zombie with an empty command line; a recycled pid runs something else).
fn script_prelude(l: &Layout) -> String {
    format!(
        "conf={r}/\"$FARM_NODE\"/apache/httpd.conf\n\
         pid={r}/\"$FARM_NODE\"/apache/httpd.pid\n\
         is_apache() {{ [ -n \"$1\" ] && tr '\\0' ' ' 2>/dev/null <\"/proc/$1/cmdline\" | grep -qF -- \"$conf\"; }}\n",
        r = l.run_dir().display()
    )
}

/// The `start_both` script: starts the node's Apache (`$FARM_NODE` is set by farmd) unless it
/// runs already.
pub fn start_script(l: &Layout, apache: &Path) -> String {
    format!(
        "#!/bin/sh\n# farm-lab: start the node's Apache (farmd sets FARM_NODE).\nset -e\n{prelude}\
         if is_apache \"$(cat \"$pid\" 2>/dev/null)\"; then exit 0; fi\n\
         # Apache itself refuses to start while its pid file names a process, a zombie too.\n\
         rm -f \"$pid\"\n\
         exec {apache} -f \"$conf\" -k start\n",
        prelude = script_prelude(l),
        apache = apache.display()
    )
}

/// The `stop_both` script: stops the node's Apache gracefully (SIGWINCH, Apache's
/// graceful-stop: requests in flight finish, idle keep-alive connections end with a FIN) and
/// waits up to 30 s for it to exit (farmd bounds the run by `[scripts] stop_drain_timeout`);
/// with `force` (run by farmd only if needed), SIGKILL to its process group.
pub fn stop_script(l: &Layout) -> String {
    format!(
        "#!/bin/sh\n# farm-lab: stop the node's Apache (farmd sets FARM_NODE; $1 = force).\n{prelude}\
         p=$(cat \"$pid\" 2>/dev/null) || exit 0\n\
         is_apache \"$p\" || {{ rm -f \"$pid\"; exit 0; }}\n\
         # force: the whole process group (Apache's main process leads it; its children\n\
         # would otherwise keep serving on the inherited sockets).\n\
         if [ \"$1\" = force ]; then kill -KILL -\"$p\" 2>/dev/null || kill -KILL \"$p\" 2>/dev/null; rm -f \"$pid\"; exit 0; fi\n\
         kill -WINCH \"$p\" 2>/dev/null || exit 0\n\
         i=0; while is_apache \"$p\"; do i=$((i+1)); [ $i -lt 600 ] || exit 1; sleep 0.05; done\n\
         exit 0\n",
        prelude = script_prelude(l)
    )
}

fn write_mode(path: &Path, text: &str, mode: u32) -> Result<(), LabError> {
    fs::write(path, text).map_err(|e| LabError::io(path, e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| LabError::io(path, e))
}

/// `module.hash_seed` of the lab: a new random one (as `farmctl config init` makes it), unless
/// the template sets one that is not weak (a template may pin a placement). Always written: the
/// lab computes buckets from the text it wrote, without reading the secret.
fn lab_hash_seed(module: &mut Item) -> Result<(), LabError> {
    let cluster_id = module.get("cluster_id").and_then(Item::as_integer).and_then(|c| u32::try_from(c).ok()).unwrap_or(0);
    let set: Option<u64> = module.get("hash_seed").and_then(|s| {
        s.as_str().and_then(|s| s.strip_prefix("0x")).and_then(|h| u64::from_str_radix(&h.replace('_', ""), 16).ok())
    });
    if set.is_some_and(|s| seed::seed_weakness(s, cluster_id).is_none()) {
        return Ok(());
    }
    let s = seed::random_seed(cluster_id).map_err(|e| LabError::io("the OS random number generator", e.into()))?;
    module["hash_seed"] = value(seed::format_seed(s));
    Ok(())
}

/// A new secret or token (as `farmctl config init` writes them), mode 0600.
fn write_private(path: &Path, content: std::io::Result<String>) -> Result<(), LabError> {
    let content = content.map_err(|e| LabError::io("the OS random number generator", e))?;
    init::write_private(path, content.as_bytes(), true).map_err(|e| LabError::io(path, e))
}

/// Writes the config, secret, token and scripts; creates each node's log and run directories.
pub fn write_files(l: &Layout, config_text: &str, apache: &Path) -> Result<FarmFiles, LabError> {
    let f = FarmFiles::new(l);
    write_mode(&f.config, config_text, 0o644)?;
    write_private(&f.secret, init::new_secret())?;
    write_private(&f.token, init::new_token())?;
    write_mode(&f.start_both, &start_script(l, apache), 0o755)?;
    write_mode(&f.stop_both, &stop_script(l), 0o755)?;
    for i in l.node_numbers() {
        for sub in ["log", "run"] {
            let d = l.node_dir(i).join(sub);
            fs::create_dir_all(&d).map_err(|e| LabError::io(&d, e))?;
        }
    }
    Ok(f)
}

/// Where a daemon of node `i` (`farmd`, `farm-dataplane`) writes its output: `R/n<i>/<name>.out`.
pub fn daemon_out(l: &Layout, i: usize, name: &str) -> PathBuf {
    l.node_dir(i).join(format!("{name}.out"))
}

/// The pid file the lab keeps for a daemon of node `i`: `R/n<i>/<name>.pid`.
pub fn daemon_pid_file(l: &Layout, i: usize, name: &str) -> PathBuf {
    l.node_dir(i).join(format!("{name}.pid"))
}

/// Starts `bin_dir/<name> --config R/farm.toml --node n<i>` in node `i`'s namespace (farmd, or
/// farm-dataplane in data-plane mode), in its own process group (so it outlives a Ctrl-C of
/// farm-lab and `farm-lab up` itself), output to `R/n<i>/<name>.out`, pid in `R/n<i>/<name>.pid`.
pub fn spawn_daemon(l: &Layout, i: usize, bin_dir: &Path, name: &str) -> Result<Child, LabError> {
    let out_path = daemon_out(l, i, name);
    let out = fs::File::create(&out_path).map_err(|e| LabError::io(&out_path, e))?;
    let err = out.try_clone().map_err(|e| LabError::io(&out_path, e))?;
    let program = bin_dir.join(name);
    let config = FarmFiles::new(l).config;
    let mut c = command("ip");
    c.args(["netns", "exec", &l.node_ns(i)])
        .arg(&program)
        .arg("--config")
        .arg(&config)
        .args(["--node", &l.node_name(i)]);
    if name == FARMD {
        // The module stays in STOP without it (until `farmctl start`).
        c.arg("--start");
    }
    c.stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    let child = c.spawn().map_err(|source| LabError::Spawn {
        cmd: format!("ip netns exec {} {} --config ...", l.node_ns(i), program.display()),
        source,
    })?;
    // `ip netns exec` execs the program: the child's pid is the daemon's.
    let pid_path = daemon_pid_file(l, i, name);
    fs::write(&pid_path, format!("{}\n", child.id())).map_err(|e| LabError::io(&pid_path, e))?;
    Ok(child)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_config_is_valid_and_describes_the_lab() {
        let l = Layout::new("xy", 5, 10).unwrap();
        let (text, cfg) = render_config(LAB_TEMPLATE, &l, Path::new("/opt/farm/bin")).unwrap();
        assert_eq!(cfg.nodes.len(), 5);
        for (k, n) in cfg.nodes.iter().enumerate() {
            assert_eq!(n.name.to_string(), format!("n{}", k + 1));
            assert_eq!(n.addrs, vec![std::net::IpAddr::V4(l.node_addr(k + 1))]);
        }
        assert_eq!(cfg.vips.len(), 1);
        assert_eq!(cfg.vips[0].addr, std::net::IpAddr::V4(l.vip()));
        assert_eq!(cfg.module.secret_file, PathBuf::from("/run/xy-lab/secret"));
        assert_eq!(cfg.module.table_file, PathBuf::from("/dev/shm/xy-lab-{node}"));
        assert_eq!(cfg.dataplane.binary, PathBuf::from("/opt/farm/bin/farm-dataplane"));
        assert_eq!(cfg.dataplane.file_prefix, "xy-lab-{node}");
        assert_eq!(cfg.dataplane.tap_name.as_str(), "farm0");
        assert_eq!(cfg.scripts.start_both, Some(PathBuf::from("/run/xy-lab/start_both")));
        assert_eq!(cfg.api.token_file, Some(PathBuf::from("/run/xy-lab/token")));
        assert!(text.contains("iface=dp0"), "{text}");
        // Per-node paths resolve to distinct files.
        let mut a = cfg.clone();
        a.localize("n1");
        let mut b = cfg.clone();
        b.localize("n2");
        assert_eq!(a.module.table_file, PathBuf::from("/dev/shm/xy-lab-n1"));
        assert_ne!(a.module.table_file, b.module.table_file);
        assert_ne!(a.dataplane.file_prefix, b.dataplane.file_prefix);
        assert_ne!(a.module.run_dir, b.module.run_dir);
    }

    #[test]
    fn the_uplink_driver_comes_from_the_template_or_the_options() {
        let l = Layout::new("xy", 2, 10).unwrap();
        let b = Path::new("/b");
        let uplink = |c: &Config| c.dataplane.uplink.as_ref().map(|u| u.eal_args()[1].clone()).unwrap();
        let (_, c) = render_config(LAB_TEMPLATE, &l, b).unwrap();
        assert_eq!(uplink(&c), "net_af_xdp0,iface=dp0,start_queue=0,queue_count=1,busy_budget=0");
        assert_eq!(c.dataplane.local_port, LocalPort::AfXdp);
        let t = LAB_TEMPLATE.replace("uplink = \"net_af_xdp0,iface=dp0\"", "uplink = \"net_af_packet0,iface=eth9\"");
        let (_, c) = render_config(&t, &l, b).unwrap();
        assert_eq!(uplink(&c), "net_af_packet0,iface=dp0");
        let t2 = t.replace("workers = 1", "workers = 2");
        let (_, c) = render_config(&t2, &l, b).unwrap();
        assert_eq!(uplink(&c), "net_af_packet0,iface=dp0,qpairs=2");
        let choice = DataplaneChoice { uplink: Some(LabUplink::AfXdp), local_port: Some(LocalPort::Tap) };
        let (text, c) = render_config_with(&t, &l, b, choice).unwrap();
        assert_eq!(uplink(&c), "net_af_xdp0,iface=dp0,start_queue=0,queue_count=1,busy_budget=0");
        assert_eq!(c.dataplane.local_port, LocalPort::Tap, "{text}");
    }

    #[test]
    fn the_lab_adds_an_on_port_rule_and_waiting_http_checkers() {
        let l = Layout::new("xy", 3, 10).unwrap();
        let (_, cfg) = render_config(LAB_TEMPLATE, &l, Path::new("/b")).unwrap();
        let rules = &cfg.vips[0].rules;
        let r80 = rules.iter().find(|r| r.matches(Proto::Tcp, 80)).unwrap();
        let r8080 = rules.iter().find(|r| r.matches(Proto::Tcp, ON_PORT_TCP)).unwrap();
        assert_eq!(r80.affinity, farm_table::Affinity::OnAddr);
        assert_eq!(r8080.affinity, farm_table::Affinity::OnPort);
        let http = cfg.checkers.iter().find(|c| c.name.to_string() == "http").unwrap();
        assert_eq!(http.action, farm_config::Action::Wait);

        // A template that covers 8080 already, or says what its checker does, is kept.
        let t = LAB_TEMPLATE.replace("ports = \"80\"", "ports = \"80-9000\"").replace(
            "kind = \"http\"",
            "kind = \"http\"\naction = \"restart\"",
        );
        let (text, cfg) = render_config(&t, &l, Path::new("/b")).unwrap();
        assert!(!text.contains("\"8080\""), "{text}");
        assert_eq!(cfg.vips[0].rules.iter().filter(|r| r.matches(Proto::Tcp, ON_PORT_TCP)).count(), 1);
        let http = cfg.checkers.iter().find(|c| c.name.to_string() == "http").unwrap();
        assert_eq!(http.action, farm_config::Action::Restart);
    }

    #[test]
    fn each_lab_gets_its_own_random_seed() {
        let l = Layout::new("xy", 2, 10).unwrap();
        let (text, a) = render_config(LAB_TEMPLATE, &l, Path::new("/b")).unwrap();
        let (_, b) = render_config(LAB_TEMPLATE, &l, Path::new("/b")).unwrap();
        assert_eq!(a.module.hash_seed_from, farm_config::HashSeedFrom::Config, "{text}");
        assert_eq!(a.hash_seed_warning(), None, "not the template's published seed");
        assert_ne!(a.module.hash_seed, b.module.hash_seed);
        // Written too when the template has none, and for a weak one; a strong one is kept.
        let none = LAB_TEMPLATE.replace("hash_seed = \"0x3c9542e215691df9\"", "");
        let weak = LAB_TEMPLATE.replace("0x3c9542e215691df9", "0x1ab");
        for t in [none, weak] {
            let c = render_config(&t, &l, Path::new("/b")).unwrap().1;
            assert_eq!(c.module.hash_seed_from, farm_config::HashSeedFrom::Config);
            assert_eq!(c.hash_seed_warning(), None);
        }
        let pinned = LAB_TEMPLATE.replace("0x3c9542e215691df9", "0x3d8f27c194abe605");
        assert_eq!(render_config(&pinned, &l, Path::new("/b")).unwrap().1.module.hash_seed, 0x3d8f_27c1_94ab_e605);
    }

    #[test]
    fn a_broken_template_is_a_config_error() {
        let l = Layout::new("xy", 2, 10).unwrap();
        let e = render_config("[module\n", &l, Path::new("/b")).unwrap_err();
        assert!(matches!(e, LabError::Config(_)), "{e}");
        let no_vip = LAB_TEMPLATE.replace("[[vip]]", "[[vipx]]");
        let e = render_config(&no_vip, &l, Path::new("/b")).unwrap_err();
        assert!(matches!(e, LabError::Config(_)), "{e}");
    }

    #[test]
    fn scripts_use_the_node_from_farmd() {
        let l = Layout::new("farm", 3, 10).unwrap();
        let s = start_script(&l, Path::new("/usr/sbin/apache2"));
        assert!(s.contains("/run/farm-lab/\"$FARM_NODE\"/apache/httpd.conf"));
        assert!(s.contains("exec /usr/sbin/apache2 -f \"$conf\" -k start"));
        let s = stop_script(&l);
        assert!(s.contains("force"));
        assert!(s.contains("while is_apache \"$p\""), "{s}");
    }

    #[test]
    fn start_script_ignores_a_stale_pid_file() {
        // A pid file naming a live process that is not this Apache (here: this test) or no
        // process at all: start_both starts Apache (here a stand-in that records its arguments).
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::new("farm", 1, 1).unwrap();
        let fake = dir.path().join("apache2");
        // Like Apache, it would not start while the pid file names a process: report it.
        std::fs::write(&fake, "#!/bin/sh\n[ -e \"$(dirname \"$2\")/httpd.pid\" ] && echo pid-file-left\necho started \"$@\"\n")
            .unwrap();
        fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
        let script = start_script(&l, &fake).replace("/run/farm-lab", &dir.path().to_string_lossy());
        let run = |pid: &str| {
            let apache_dir = dir.path().join("n1/apache");
            fs::create_dir_all(&apache_dir).unwrap();
            fs::write(apache_dir.join("httpd.pid"), pid).unwrap();
            let out = std::process::Command::new("sh").args(["-c", &script]).env("FARM_NODE", "n1").output().unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        assert!(run(&std::process::id().to_string()).starts_with("started -f"), "a live non-Apache pid");
        assert!(run("999999999").starts_with("started -f"), "no such process");
        assert!(run("").starts_with("started -f"), "empty pid file");
        // A zombie (killed, not reaped by its parent yet): a child of a process that never waits.
        let mut parent = std::process::Command::new("sh").args(["-c", "sleep 0.05 & exec sleep 30"]).spawn().unwrap();
        let children = format!("/proc/{0}/task/{0}/children", parent.id());
        let zombie = (0..200)
            .find_map(|_| {
                std::thread::sleep(std::time::Duration::from_millis(10));
                let c: i32 = fs::read_to_string(&children).ok()?.trim().parse().ok()?;
                let st = fs::read_to_string(format!("/proc/{c}/stat")).ok()?;
                st.rsplit_once(')')?.1.trim_start().starts_with('Z').then_some(c)
            })
            .expect("a zombie");
        assert!(run(&zombie.to_string()).starts_with("started -f"), "a zombie is not Apache");
        parent.kill().unwrap();
        parent.wait().unwrap();
        // A live process whose command line names the configuration: already running.
        let conf = dir.path().join("n1/apache/httpd.conf");
        let mut holder = std::process::Command::new("sh")
            .args(["-c", "sleep 30; :", conf.to_str().unwrap()])
            .spawn()
            .unwrap();
        assert_eq!(run(&holder.id().to_string()), "", "Apache runs: nothing started");
        holder.kill().unwrap();
        holder.wait().unwrap();
    }
}
