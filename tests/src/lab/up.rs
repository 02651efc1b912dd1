//! Building a lab: checks first (nothing created on failure), then the steps, each one
//! interruptible; any failure tears down what was built.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::apache::{check_modules, write_big_file, Httpd};
use super::cmd::{find_program, is_executable, ns_run, tail};
use super::error::LabError;
use super::farm::{self, render_config_with, DATAPLANE, FARMD, LAB_TEMPLATE};
use super::layout::{is_lab_name, Layout, NODE_TAP};
use super::net::{self, check_port_free, host_links, link_alias, link_exists, namespaces};
use super::state::{Mode, State};
use super::static_table;
use super::{Lab, LabOptions};

/// What the checks found.
struct Checked {
    layout: Layout,
    apache: PathBuf,
    bin_dir: Option<PathBuf>,
    config_text: Option<String>,
    config: Option<farm_config::Config>,
    api_port: u16,
    heartbeat_port: u16,
    module: String,
}

fn tool(name: &str) -> Result<PathBuf, LabError> {
    find_program(name).ok_or_else(|| LabError::Missing {
        what: name.to_owned(),
        detail: "looked in PATH, /usr/sbin, /sbin; run tests/install-deps.sh".into(),
    })
}

/// Every check that needs no change to the machine.
fn check(opts: &LabOptions) -> Result<Checked, LabError> {
    let layout = Layout::new(&opts.prefix, opts.nodes, opts.clients)?;
    if !nix::unistd::geteuid().is_root() {
        return Err(LabError::NotRoot);
    }
    let mut tools = vec!["ip", "sysctl", "ss", "curl", "ethtool"];
    if opts.mode.has_dataplane() {
        tools.push("nft");
    }
    for t in tools {
        tool(t)?;
    }
    let apache = find_program(&opts.apache).ok_or_else(|| LabError::Missing {
        what: opts.apache.clone(),
        detail: "looked in PATH, /usr/sbin, /sbin; install Debian's apache2 \
                 (tests/install-deps.sh) or pass --apache PATH"
            .into(),
    })?;
    check_modules()?;

    let mut checked = Checked {
        layout,
        apache,
        bin_dir: None,
        config_text: None,
        config: None,
        api_port: 0,
        heartbeat_port: 0,
        module: String::new(),
    };
    if opts.mode.has_dataplane() {
        let bin_dir = std::path::absolute(&opts.bin_dir)
            .map_err(|e| LabError::io(&opts.bin_dir, e))?;
        let needed: &[&str] = if opts.mode == Mode::Farm { &[FARMD, DATAPLANE] } else { &[DATAPLANE] };
        for &b in needed {
            let p = bin_dir.join(b);
            if !is_executable(&p) {
                return Err(LabError::Missing {
                    what: b.to_owned(),
                    detail: format!(
                        "no executable {} (build with `cargo build --release`, or pass --bin-dir)",
                        p.display()
                    ),
                });
            }
        }
        let template = match &opts.template {
            Some(p) => std::fs::read_to_string(p).map_err(|e| LabError::io(p, e))?,
            None => LAB_TEMPLATE.to_owned(),
        };
        let (text, cfg) = render_config_with(&template, &checked.layout, &bin_dir, opts.dataplane)?;
        checked.api_port = cfg.api.listen.port();
        checked.heartbeat_port = cfg.heartbeat.port;
        checked.module = cfg.module.name.to_string();
        checked.config_text = Some(text);
        checked.config = Some(cfg);
        checked.bin_dir = Some(bin_dir);
    }
    check_names(&checked.layout)?;
    Ok(checked)
}

/// Refuses when anything with one of the lab's names exists.
fn check_names(l: &Layout) -> Result<(), LabError> {
    let p = l.prefix();
    let hint = format!("if it is a leftover of an earlier lab, run `farm-lab down --prefix {p}`");
    let br = l.bridge();
    if link_exists(&br) {
        return Err(LabError::Conflict(
            if link_alias(&br).as_deref() == Some(l.bridge_alias().as_str()) {
                format!("lab {p} is already up (bridge {br} exists); {hint}")
            } else {
                format!(
                    "interface {br} exists and is not a farm-lab bridge: refusing to touch it; \
                     choose another --prefix"
                )
            },
        ));
    }
    if let Some(ns) = namespaces()?.into_iter().find(|n| is_lab_name(p, n)) {
        return Err(LabError::Conflict(format!("namespace {ns} exists; {hint}")));
    }
    if let Some(link) = host_links()?.into_iter().find(|n| is_lab_name(p, n)) {
        return Err(LabError::Conflict(format!("interface {link} exists; {hint}")));
    }
    if l.run_dir().exists() {
        return Err(LabError::Conflict(format!(
            "lab {p} is already up or was not torn down ({} exists); {hint}",
            l.run_dir().display()
        )));
    }
    Ok(())
}

pub(super) fn up(opts: &LabOptions) -> Result<Lab, LabError> {
    let c = check(opts)?;
    let r = c.layout.run_dir();
    // The run directory is the lab's lock: created atomically, so two `up`s of one prefix
    // cannot both pass this point. From here on, any error tears down.
    if let Err(e) = std::fs::create_dir(&r) {
        return Err(if e.kind() == std::io::ErrorKind::AlreadyExists {
            LabError::Conflict(format!("lab {} is being built or is up ({} exists)", opts.prefix, r.display()))
        } else {
            LabError::io(&r, e)
        });
    }
    let mut lab = Lab {
        layout: c.layout.clone(),
        mode: opts.mode,
        apache: c.apache.clone(),
        bin_dir: c.bin_dir.clone(),
        farmds: Vec::new(),
        tables: Vec::new(),
        config: c.config.clone(),
        interrupt: opts.interrupt.clone(),
        keep: false,
    };
    match build(&mut lab, opts, &c) {
        Ok(()) => Ok(lab),
        Err(e) if opts.keep_on_error && !matches!(e, LabError::Interrupted) => {
            tracing::warn!(error = %e, "lab up failed; leaving what was built (--keep-on-error)");
            lab.persist();
            Err(e)
        }
        Err(e) => {
            tracing::warn!(error = %e, "lab up stopped; tearing down what was built");
            drop(lab);
            Err(e)
        }
    }
}

/// Stops at the next step if interrupted; sleeps `step_delay` (interruptibly).
fn step(opts: &LabOptions, what: &str) -> Result<(), LabError> {
    if !what.is_empty() {
        tracing::info!("{what}");
    }
    let interrupted = || opts.interrupt.as_ref().is_some_and(|f| f.load(Ordering::SeqCst));
    let end = Instant::now() + opts.step_delay;
    loop {
        if interrupted() {
            return Err(LabError::Interrupted);
        }
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(20)));
    }
}

/// Node `i`'s Apache: node address and 127.0.0.1 (the farm's HTTP checker), plus the VIP when
/// a data plane runs.
pub(super) fn httpd_for(l: &Layout, mode: Mode, i: usize) -> Httpd {
    let mut listen = vec![l.node_addr(i)];
    if mode.has_dataplane() {
        listen.push(l.vip());
    }
    listen.push(std::net::Ipv4Addr::LOCALHOST);
    Httpd::new(&l.node_name(i), &l.node_dir(i), listen)
}

fn build(lab: &mut Lab, opts: &LabOptions, c: &Checked) -> Result<(), LabError> {
    let l = c.layout.clone();
    let r = l.run_dir();
    State {
        prefix: l.prefix().to_owned(),
        mode: opts.mode,
        nodes: l.nodes(),
        clients: l.clients(),
        apache: c.apache.clone(),
        bin_dir: c.bin_dir.clone(),
    }
    .write(&r)?;
    let big = r.join("big.bin");
    write_big_file(&big, opts.big_file_size)?;

    step(opts, &format!("bridge {}", l.bridge()))?;
    net::create_bridge(&l)?;
    step(opts, &format!("client namespace {} ({} addresses)", l.client_ns(), l.clients()))?;
    net::create_client(&l)?;
    for i in l.node_numbers() {
        step(opts, &format!("node namespace {} ({} mode)", l.node_ns(i), opts.mode))?;
        if opts.mode.has_dataplane() {
            let queues = c.config.as_ref().map_or(1, |cfg| cfg.dataplane.workers);
            net::create_node_farm(&l, i, queues)?;
        } else {
            net::create_node_direct(&l, i)?;
        }
        httpd_for(&l, opts.mode, i).write(&big)?;
    }
    if let Some(text) = &c.config_text {
        farm::write_files(&l, text, &c.apache)?;
    }
    if opts.mode == Mode::Dataplane {
        step(opts, "tables (static assignment)")?;
        let cfg = c.config.as_ref().expect("data-plane mode renders the config");
        lab.tables = static_table::create_tables(cfg)?;
    }
    for i in l.node_numbers() {
        match opts.mode {
            Mode::Direct => step(opts, &format!("apache2 in {}", l.node_ns(i)))?,
            Mode::Dataplane => step(opts, &format!("farm-dataplane and apache2 in {}", l.node_ns(i)))?,
            Mode::Farm => {
                step(opts, &format!("farmd in {}", l.node_ns(i)))?;
                check_port_free(&l.node_ns(i), c.api_port, "tcp")?;
                check_port_free(&l.node_ns(i), c.heartbeat_port, "udp")?;
            }
        }
        start_node(lab, i)?;
    }
    if opts.mode == Mode::Farm {
        step(opts, "waiting for every node to be UP")?;
        wait_all_up(lab, opts, c)?;
    }
    step(opts, "checking every node from the client namespace")?;
    check_from_client(lab, opts)
}

/// Starts what runs on node `i` in the lab's mode: Apache (direct); farm-dataplane, then
/// `farm0`'s address, then Apache (data-plane); farmd, then `farm0`'s address (farm: farmd
/// starts the data plane and, through `start_both`, Apache).
pub(super) fn start_node(lab: &mut Lab, i: usize) -> Result<(), LabError> {
    let daemon = match lab.mode {
        Mode::Direct => return lab.start_app(i),
        Mode::Dataplane => DATAPLANE,
        Mode::Farm => FARMD,
    };
    let bin_dir = lab.bin_dir.clone().expect("farm and data-plane modes have a bin dir");
    let l = lab.layout.clone();
    let ns = l.node_ns(i);
    // A data plane killed with its veth pair (local_port = "af_xdp") leaves farm0 behind; the
    // new one replaces it: wait for the new interface, not the leftover.
    let leftover = net::ns_link_index(&ns, NODE_TAP);
    let mut child = farm::spawn_daemon(&l, i, &bin_dir, daemon)?;
    let timeout = Duration::from_secs(15);
    let start = Instant::now();
    let out = farm::daemon_out(&l, i, daemon);
    loop {
        if net::ns_link_index(&ns, NODE_TAP).is_some_and(|x| Some(x) != leftover) {
            break;
        }
        if lab.interrupt.as_ref().is_some_and(|f| f.load(Ordering::SeqCst)) {
            lab.farmds.push(child);
            return Err(LabError::Interrupted);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(LabError::Timeout {
                what: format!("{NODE_TAP} in {ns}"),
                after: start.elapsed(),
                detail: format!("{daemon} exited ({status}); {}:\n{}", out.display(), tail(&out, 10)),
            });
        }
        if start.elapsed() > timeout {
            lab.farmds.push(child);
            return Err(LabError::Timeout {
                what: format!("{NODE_TAP} in {ns} (created by farm-dataplane)"),
                after: timeout,
                detail: format!("{}:\n{}", out.display(), tail(&out, 10)),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    lab.farmds.push(child);
    net::configure_tap(&l, i)?;
    if lab.mode == Mode::Dataplane {
        lab.start_app(i)?;
    }
    Ok(())
}

fn wait_all_up(lab: &Lab, opts: &LabOptions, c: &Checked) -> Result<(), LabError> {
    let l = &lab.layout;
    let start = Instant::now();
    let url = format!("http://127.0.0.1:{}/var/modules/{}/ready.txt", c.api_port, c.module);
    let mut pending: Vec<usize> = l.node_numbers().collect();
    while !pending.is_empty() {
        step(opts, "")?;
        pending.retain(|&i| ns_run(&l.node_ns(i), "curl", ["-sf", "--max-time", "1", &url]).is_err());
        if pending.is_empty() {
            break;
        }
        if start.elapsed() > opts.ready_timeout {
            let i = pending[0];
            let out = farm::daemon_out(l, i, FARMD);
            return Err(LabError::Timeout {
                what: format!("nodes {:?} UP ({url})", pending.iter().map(|i| l.node_name(*i)).collect::<Vec<_>>()),
                after: opts.ready_timeout,
                detail: format!("{}:\n{}", out.display(), tail(&out, 10)),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Every node answers `node n<i>` from the client namespace at its address; with a data plane
/// the VIP answers too (in data-plane mode: the node the static table gives the client).
fn check_from_client(lab: &Lab, opts: &LabOptions) -> Result<(), LabError> {
    let l = &lab.layout;
    let src = l.client_addr(0);
    let expect = |url: &str, want: &str| -> Result<(), LabError> {
        let body = lab.client_curl(src, url)?;
        if body == want {
            Ok(())
        } else {
            Err(LabError::Check(format!("{url} from {src} answered {body:?}, expected {want:?}")))
        }
    };
    for i in l.node_numbers() {
        step(opts, "")?;
        expect(&format!("http://{}/", l.node_addr(i)), &format!("node {}\n", l.node_name(i)))?;
    }
    let vip_url = format!("http://{}/", l.vip());
    match lab.mode {
        Mode::Direct => {}
        Mode::Dataplane => {
            let owner = lab.vip_owner(src, 80, 0).expect("the lab's VIP has a TCP 80 rule");
            expect(&vip_url, &format!("node {}\n", l.node_name(owner)))?;
        }
        Mode::Farm => {
            let body = lab.client_curl(src, &vip_url)?;
            if !body.starts_with("node n") {
                return Err(LabError::Check(format!("{vip_url} from {src} answered {body:?}")));
            }
        }
    }
    Ok(())
}
