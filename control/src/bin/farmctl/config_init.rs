//! `farmctl config init`: the secrets of a new cluster, made once and copied to every node;
//! with `--nodes` (and `--vip`), the configuration itself, from nothing.
//!
//! From nothing (`--nodes NAME=ADDR ...`): writes a first, commented configuration at
//! `--config` ([`farm_config::init::new_config`]: the nodes, the VIPs with a rule per `--port`,
//! the data plane on `--uplink` or off without it, a random cluster id and hash seed), the
//! secret and the token next to it (`<dir>/<module>.secret`, `.token`, mode 0600, unless
//! `--secret-file` / `--token-file` say otherwise). It refuses to replace any of these files
//! that exists, naming it, unless `--force`.
//!
//! For an existing configuration (no `--nodes`):
//! Writes the heartbeat secret (`module.secret_file`) and the API token (`api.token_file`) as
//! random hex, mode 0600, and a random `module.hash_seed` into the configuration (all from the
//! OS random number generator, `farm_config::init`). Existing secret and token files are never
//! replaced without `--force` (every node must keep the same secret). A `hash_seed` already in
//! the file is kept unless it is weak (`farm_config::seed::seed_weakness`: e.g. a shipped
//! example's) or `--force` is given. Without a configuration file, `--secret-file` (and
//! `--token-file`) say where to write, and the seed is printed for pasting.

use std::io::ErrorKind;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use farm_config::seed::{format_seed, random_seed, seed_weakness};
use farm_config::{init, Config, HashSeedFrom};

/// Options of `farmctl config init` (the configuration is the global `--config`).
#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// Heartbeat secret file to write (default: `module.secret_file` of the configuration).
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// API token file to write (default: `api.token_file` of the configuration, when set).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Only write a new `hash_seed` into the configuration (e.g. to replace a weak one); the
    /// secret and token files are left alone.
    #[arg(long)]
    pub seed_only: bool,
    /// Replace existing secret and token files, and a `hash_seed` already in the configuration
    /// (a new seed moves clients between nodes; a new secret must reach every node at once);
    /// with --nodes, also an existing configuration file.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub new: NewArgs,
}

/// A new cluster from nothing: with `--nodes`, `config init` writes the `--config` file too.
#[derive(clap::Args, Debug, Default)]
pub struct NewArgs {
    /// Start from nothing: write a new configuration (at --config) with these members, each
    /// `NAME=ADDR` (one address per heartbeat LAN: `NAME=ADDR1,ADDR2`). Several after one
    /// --nodes, or --nodes repeated. (The global --node names this machine's node: another
    /// option.)
    #[arg(long, value_name = "NAME=ADDR[,ADDR]", num_args = 1.., conflicts_with = "seed_only")]
    pub nodes: Vec<String>,
    /// A virtual IP of the new configuration (repeat for several). None: a control-only farm.
    #[arg(long = "vip", value_name = "ADDR", requires = "nodes")]
    pub vips: Vec<IpAddr>,
    /// A rule of every VIP: `80`, `8000-8100`, `53/udp`, `all/tcp` (default: `80`, TCP).
    #[arg(long = "port", value_name = "PORT[/tcp|udp]", requires = "vips")]
    pub ports: Vec<String>,
    /// Hash each connection on its own (client address and port) instead of keeping all
    /// connections of a client on one node (address only, the default).
    #[arg(long, requires = "vips")]
    pub on_port: bool,
    /// Module name of the new configuration (`[a-z0-9_-]`; default `farm`).
    #[arg(long, value_name = "NAME", requires = "nodes")]
    pub module: Option<String>,
    /// The NIC the data plane takes over: a PCI address (`0000:03:00.0`) or a DPDK vdev
    /// (`net_af_packet0,iface=eth1`). Without it the data plane is written disabled.
    #[arg(long, value_name = "DEVICE", requires = "vips")]
    pub uplink: Option<String>,
    /// Cluster id of the new configuration (default: random).
    #[arg(long, value_name = "ID", requires = "nodes")]
    pub cluster_id: Option<u32>,
}

/// What to do with the configuration's seed.
enum SeedPlan {
    /// Write this seed into the configuration (new text, validated), saying why.
    Write { text: String, why: String },
    /// Keep the seed already there.
    Keep,
    /// No configuration file: print the seed for the user to paste.
    Print(u64),
}

/// Runs `farmctl --config CONFIG config init ARGS`; returns the exit code.
pub fn run(config: &Path, args: &InitArgs) -> Result<u8> {
    if !args.new.nodes.is_empty() {
        return run_new(config, args);
    }
    let origin = config.display().to_string();
    let existing = match std::fs::read_to_string(config) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {origin}")),
    };
    let cfg = match &existing {
        Some(text) => Some(Config::from_str(text, &origin)?),
        None => None,
    };

    // The files to write.
    let mut files: Vec<(&str, PathBuf)> = Vec::new();
    if !args.seed_only {
        let secret = match (&args.secret_file, &cfg) {
            (Some(p), _) => p.clone(),
            (None, Some(c)) => c.module.secret_file.clone(),
            (None, None) => bail!(
                "{origin} does not exist: write the configuration first (configs/ has examples) and run this again, or give --secret-file (and --token-file) and paste the printed hash_seed into it"
            ),
        };
        files.push(("heartbeat secret", secret));
        if let Some(t) = args.token_file.clone().or_else(|| cfg.as_ref().and_then(|c| c.api.token_file.clone())) {
            if t == files[0].1 {
                bail!("the token file and the secret file are both {}: expected two files", t.display());
            }
            files.push(("API token", t));
        }
        if !args.force {
            let present: Vec<String> = files.iter().filter(|(_, p)| p.exists()).map(|(_, p)| p.display().to_string()).collect();
            if !present.is_empty() {
                bail!(
                    "refusing to overwrite {}: every node of a cluster must keep the same secret and token (copy them from the node that has them); --force makes new ones (then copy them to every node at once), --seed-only writes only a new hash_seed",
                    present.join(" and ")
                );
            }
        }
    }

    let plan = match (&existing, &cfg) {
        (Some(text), Some(c)) => {
            let why = match (c.module.hash_seed_from, seed_weakness(c.module.hash_seed, c.module.cluster_id)) {
                (HashSeedFrom::Config, _) if args.force => Some("; it replaces the one there (--force)".to_string()),
                (HashSeedFrom::Config, Some(weak)) => Some(format!("; it replaces a weak one: {weak}")),
                (HashSeedFrom::Config, None) => None,
                _ => Some(String::new()),
            };
            match why {
                Some(why) => {
                    let seed = random_seed(c.module.cluster_id).context("the OS random number generator")?;
                    let new = init::set_hash_seed(text, seed).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
                    // The file must stay valid (it was before: only hash_seed changed).
                    Config::from_str(&new, &origin)?;
                    SeedPlan::Write { text: new, why }
                }
                None if args.seed_only => bail!(
                    "{origin}: module.hash_seed is set and not weak: kept; --force replaces it (which moves clients between nodes)"
                ),
                None => SeedPlan::Keep,
            }
        }
        _ => SeedPlan::Print(random_seed(0).context("the OS random number generator")?),
    };

    // Everything is decided: write.
    for (what, path) in &files {
        let content = if *what == "API token" { init::new_token()? } else { init::new_secret()? };
        init::write_private(path, content.as_bytes(), args.force).map_err(|e| match e.kind() {
            ErrorKind::AlreadyExists => anyhow::anyhow!("refusing to overwrite {} (created meanwhile)", path.display()),
            _ => anyhow::anyhow!("cannot write {}: {e}", path.display()),
        })?;
        println!("wrote {} ({what}, {} random bytes as hex, mode 0600)", path.display(), if *what == "API token" { init::TOKEN_BYTES } else { init::SECRET_BYTES });
    }
    match &plan {
        SeedPlan::Write { text, why } => {
            init::replace_keeping_mode(config, text.as_bytes()).with_context(|| format!("cannot write {origin}"))?;
            println!("wrote module.hash_seed (64 random bits) into {origin}{why}");
        }
        SeedPlan::Keep => println!("kept module.hash_seed of {origin} (already set, not weak; --force replaces it)"),
        SeedPlan::Print(seed) => {
            println!("hash seed (64 random bits); put this line in the [module] section of the configuration of every node:");
            println!("  hash_seed = \"{}\"", format_seed(*seed));
        }
    }

    // What the other nodes need.
    let mut copy: Vec<String> = Vec::new();
    if existing.is_some() {
        copy.push(format!("{origin} (the configuration, the same on every node: it holds hash_seed)"));
    }
    copy.extend(files.iter().map(|(what, p)| {
        // Written elsewhere than the configuration says (--secret-file, --token-file).
        let configured = cfg.as_ref().and_then(|c| match *what {
            "API token" => c.api.token_file.clone(),
            _ => Some(c.module.secret_file.clone()),
        });
        match configured.filter(|c| c != p) {
            Some(c) => format!("{} -> {} ({what}, mode 0600; the path the configuration names)", p.display(), c.display()),
            None => format!("{} ({what}, mode 0600, same path)", p.display()),
        }
    }));
    println!("copy to every other node of the cluster, same content, same mode (e.g. scp -p, or install -m 0600):");
    for c in &copy {
        println!("  {c}");
    }
    println!("run config init once per cluster, not on each node: all nodes need the same secret and seed");
    if matches!(plan, SeedPlan::Write { .. }) {
        if let Ok(m) = std::fs::metadata(config) {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o004 != 0 {
                println!("note: {origin} is readable by every local user (mode {mode:04o}); the seed tells which node serves which client: consider chmod 640");
            }
        }
    }
    Ok(0)
}

/// `path` made absolute (relative to the current directory): paths in the file must be.
fn absolute(path: &Path) -> Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    Ok(std::env::current_dir().context("the current directory")?.join(path))
}

/// `NAME=ADDR[,ADDR...]`.
fn parse_node(s: &str) -> Result<(String, Vec<IpAddr>)> {
    let (name, addrs) = s.split_once('=').with_context(|| format!("--nodes: expected NAME=ADDR (e.g. n1=198.18.0.1), got {s:?}"))?;
    let addrs = addrs
        .split(',')
        .map(|a| a.trim().parse::<IpAddr>().with_context(|| format!("--nodes {s}: expected an IP address, got {a:?}")))
        .collect::<Result<Vec<_>>>()?;
    Ok((name.to_string(), addrs))
}

/// `PORT[/tcp|udp]` as (protocol, ports).
fn parse_port(s: &str) -> Result<(String, String)> {
    let (ports, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if proto != "tcp" && proto != "udp" {
        bail!("--port {s}: expected the protocol tcp or udp after '/', got {proto:?}");
    }
    Ok((proto, ports.to_string()))
}

/// `config init --nodes ...`: a new configuration, secret and token, from nothing.
fn run_new(config: &Path, args: &InitArgs) -> Result<u8> {
    let n = &args.new;
    let config = absolute(config)?;
    let origin = config.display().to_string();
    let module = n.module.clone().unwrap_or_else(|| "farm".to_string());
    let dir = config.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
    let secret = absolute(&args.secret_file.clone().unwrap_or_else(|| dir.join(format!("{module}.secret"))))?;
    let token = absolute(&args.token_file.clone().unwrap_or_else(|| dir.join(format!("{module}.token"))))?;
    let files = [("configuration", &config), ("heartbeat secret", &secret), ("API token", &token)];
    for (i, (what, p)) in files.iter().enumerate() {
        if let Some((other, _)) = files[..i].iter().find(|(_, q)| q == p) {
            bail!("the {what} and the {other} are both {}: expected distinct files", p.display());
        }
    }
    let nodes = n.nodes.iter().map(|s| parse_node(s)).collect::<Result<Vec<_>>>()?;
    let mut rules = n.ports.iter().map(|s| parse_port(s)).collect::<Result<Vec<_>>>()?;
    if rules.is_empty() {
        rules.push(("tcp".to_string(), "80".to_string()));
    }
    let cluster_id = match n.cluster_id {
        Some(id) => id,
        None => init::random_cluster_id().context("the OS random number generator")?,
    };
    let new = init::NewCluster {
        module: module.clone(),
        cluster_id,
        hash_seed: random_seed(cluster_id).context("the OS random number generator")?,
        secret_file: secret.clone(),
        token_file: token.clone(),
        nodes,
        vips: n.vips.clone(),
        rules,
        on_port: n.on_port,
        uplink: n.uplink.clone(),
    };
    let text = init::new_config(&new);
    // The options are checked by the configuration's own rules (names, addresses, ports).
    let cfg = Config::from_str(&text, &origin).map_err(|e| anyhow::anyhow!("the options make an invalid configuration:\n{e}"))?;
    if !args.force {
        let present: Vec<String> = files.iter().filter(|(_, p)| p.exists()).map(|(what, p)| format!("{} ({what})", p.display())).collect();
        if !present.is_empty() {
            bail!(
                "refusing to overwrite existing {}: --force replaces (a new secret must then reach every node at once); without --nodes, config init completes an existing configuration",
                present.join(" and ")
            );
        }
    }

    // Everything is decided: write the secret and token first, the configuration last.
    for (what, path, content, bytes) in [
        ("heartbeat secret", &secret, init::new_secret()?, init::SECRET_BYTES),
        ("API token", &token, init::new_token()?, init::TOKEN_BYTES),
    ] {
        init::write_private(path, content.as_bytes(), args.force).map_err(|e| match e.kind() {
            ErrorKind::AlreadyExists => anyhow::anyhow!("refusing to overwrite {} (created meanwhile)", path.display()),
            _ => anyhow::anyhow!("cannot write {}: {e}", path.display()),
        })?;
        println!("wrote {} ({what}, {bytes} random bytes as hex, mode 0600)", path.display());
    }
    init::write_new(&config, text.as_bytes(), 0o640, args.force).map_err(|e| match e.kind() {
        ErrorKind::AlreadyExists => anyhow::anyhow!("refusing to overwrite {origin} (created meanwhile)"),
        _ => anyhow::anyhow!("cannot write {origin}: {e}"),
    })?;
    println!(
        "wrote {origin} (module {module}, {} nodes, {} VIPs, cluster_id {cluster_id}, a random hash_seed; mode 0640)",
        cfg.nodes.len(),
        cfg.vips.len()
    );
    if !cfg.vips.is_empty() && !cfg.dataplane.enabled {
        println!("note: no --uplink: the data plane is disabled, the VIP is not served until [dataplane] uplink is set (see the comments in the file)");
    }
    println!("next: review {origin} (scripts, checkers), then `farmctl config check {origin}`");
    println!("copy to every other node of the cluster, same content, same mode (e.g. scp -p, or install -m 0600):");
    for (what, p) in &files {
        println!("  {} ({what})", p.display());
    }
    println!("run config init once per cluster, not on each node: all nodes need the same secret and seed");
    Ok(0)
}

/// The warning of `farmctl config check` about a weak `hash_seed` (stderr; the check still
/// passes: the farm works, it is only predictable).
pub fn warn_seed(cfg: &Config) {
    if let Some(w) = cfg.hash_seed_warning() {
        eprintln!("warning: {w}");
    }
}
