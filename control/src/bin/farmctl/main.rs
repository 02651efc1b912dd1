//! farmctl: the farm's command line.
//!
//! ```text
//! farmctl [--config FILE] [--node NAME] [--api URL] <command>
//!   state                      print the state; exit STOP 0, WAIT 1, UP 2 (STARTING and
//!                              STOPPING 1); farmd not running counts as STOP; a farmd that
//!                              runs but does not answer, and other errors: 3
//!   status                     the full status (JSON)
//!   start|stop|restart         ask farmd: over its Unix socket <run_dir>/farmd.sock (root, no
//!                              token), else over TCP with the [api] token_file token
//!   weight [W]                 print this node's weight, or set it (0..1000, 0 drains) until
//!                              undrain or a reload that changes it in the file
//!   drain / undrain            weight 0 (new connections go to the other nodes, held ones
//!                              finish here, the node stays UP) / back to the file's weight
//!   reload                     re-read the configuration (as SIGHUP): applied, or refused
//!                              with the keys that cannot change live (exit 1)
//!   log [-n N] / applog [-n N] print the module / application log (last N lines)
//!   printi MSG / printe MSG    append an information / error entry to the module log
//!   which CLIENT[:PORT]        the bucket of a client and its owner
//!   snapshot OUT               support bundle: OUT.tar (if OUT ends in .tar) or directory OUT
//!   config check FILE          validate a configuration: prints OK or the errors, exit 1;
//!                              warns about a weak hash_seed
//!   config init [--force] [--seed-only] [--secret-file F] [--token-file F]
//!                              a new cluster's secret, token and random hash_seed (config_init.rs)
//!   config init --nodes N1=ADDR N2=ADDR [--vip ADDR] [--port P[/udp]] [--uplink DEV] ...
//!                              from nothing: also a first, commented --config file
//!   import safekit USERCONFIG [CLUSTER] [-o OUT]
//!                              convert a SafeKit farm module (userconfig.xml, cluster.xml) to a
//!                              farm.toml; lists what has no equivalent; exit 0 all converted,
//!                              2 written with warnings, 1 error (import.rs)
//! ```
#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use farm_config::{Config, ConfigError};
use farm_control::api::client::{base_url, probe_unix, socket_path, Probe};
use farm_control::api::{AdminOp, ApiClient, ClientError};
use farm_control::lifecycle::Command as LcCommand;
use farm_control::logs::{self, Level, LogSettings};

#[derive(Parser, Debug)]
#[command(name = "farmctl", version, about = "Control a farm node (farmd)")]
struct Cli {
    /// Configuration file.
    #[arg(long, global = true, default_value = "/etc/farm/farm.toml")]
    config: PathBuf,
    /// This machine's node, for per-node paths (default: found from the local addresses).
    #[arg(long, global = true)]
    node: Option<String>,
    /// farmd's API (default: from `[api] listen`, wildcard as loopback), e.g. `http://127.0.0.1:9010`.
    #[arg(long, global = true)]
    api: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Print the module state; exit code STOP 0, WAIT 1, UP 2, STARTING/STOPPING 1, error 3.
    State,
    /// Print the full status as JSON.
    Status,
    /// Start the module.
    Start(Reason),
    /// Stop the module (leave the farm, then stop_both).
    Stop(Reason),
    /// Stop, then start the module.
    Restart(Reason),
    /// Print this node's weight, or set it (0..1000; 0 drains) until `undrain` or a reload that
    /// changes it in the file.
    Weight {
        /// The new weight.
        weight: Option<u16>,
        #[command(flatten)]
        reason: Reason,
    },
    /// Weight 0: new connections go to the other nodes, the connections held here finish; the
    /// node stays UP (NLB's drainstop). `undrain` or `weight W` brings it back.
    Drain(Reason),
    /// Back to the configuration file's weight (after `drain` or `weight`).
    Undrain(Reason),
    /// Re-read the configuration file (as SIGHUP does): applied if every changed key can change
    /// live, else nothing changes and the keys are named (exit 1).
    Reload(Reason),
    /// Print the module log.
    Log(Tail),
    /// Print the application log (script output).
    Applog(Tail),
    /// Append an information entry to the module log.
    Printi {
        /// The message.
        msg: Vec<String>,
    },
    /// Append an error entry to the module log.
    Printe {
        /// The message.
        msg: Vec<String>,
    },
    /// Show the bucket of a client (address, or address:port for on_port rules) and its owner.
    Which {
        /// `198.51.100.7`, `198.51.100.7:40000`, `2001:db8::7` or `[2001:db8::7]:40000`.
        client: String,
    },
    /// Write a support bundle: redacted configuration, logs, status, metrics.
    Snapshot {
        /// `bundle.tar` writes a tar file; anything else is a directory.
        out: PathBuf,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Convert another product's configuration to a farm.toml.
    Import {
        #[command(subcommand)]
        cmd: import::ImportCmd,
    },
}

#[derive(clap::Args, Debug)]
struct Reason {
    /// Logged by farmd with the command.
    #[arg(long)]
    reason: Option<String>,
}

#[derive(clap::Args, Debug)]
struct Tail {
    /// Only the last N lines.
    #[arg(short = 'n', long)]
    lines: Option<usize>,
}

#[derive(Subcommand, Debug)]
enum ConfigCmd {
    /// Validate a configuration file.
    Check {
        /// The file.
        file: PathBuf,
        /// Also check the files it refers to (secret and token modes, scripts, the data plane).
        #[arg(long)]
        runtime: bool,
    },
    /// Write a new cluster's heartbeat secret, API token (mode 0600) and random hash_seed
    /// (into the --config file), and say what to copy to the other nodes. With --nodes (and
    /// --vip): start from nothing, writing a first, commented --config file too.
    Init(config_init::InitArgs),
}

const TIMEOUT: Duration = Duration::from_secs(5);

fn load_config(cli: &Cli) -> Result<Config> {
    match Config::load_local(&cli.config, cli.node.as_deref()) {
        Ok((cfg, _node)) => Ok(cfg),
        // Not on a configured node (e.g. a workstation): per-node paths stay unexpanded.
        Err(ConfigError::LocalNode { .. }) if cli.node.is_none() => Ok(Config::load(&cli.config)?),
        Err(e) => Err(e.into()),
    }
}

/// A client for reading: `--api` as given; else farmd's Unix socket when it accepts this user,
/// else `[api] listen` over TCP.
fn reader(cli: &Cli, cfg: &Config) -> ApiClient {
    if let Some(a) = &cli.api {
        return ApiClient::new(a, None, TIMEOUT);
    }
    let sock = socket_path(cfg);
    match probe_unix(&sock) {
        Probe::Listening | Probe::Busy => ApiClient::unix(&sock, TIMEOUT),
        _ => ApiClient::new(&base_url(cfg.api.listen), None, TIMEOUT),
    }
}

/// Prints the state and returns its exit code. STOP (0) only when no farmd runs: nothing
/// listens on its Unix socket (no file, or connection refused) nor on its TCP address. A farmd
/// that accepts but does not answer in time (stopped, hung, API flooded) is an error (3).
fn state(cli: &Cli) -> u8 {
    let report = |st: farm_control::api::Status| {
        println!("{}", st.state);
        st.state.exit_code() as u8
    };
    let not_answering = |e: &ClientError| {
        eprintln!("farmctl: {e}");
        eprintln!("farmctl: farmd runs but does not answer (stopped, hung, or its API is flooded): state unknown");
        3
    };
    let (tcp, unix_note) = if let Some(a) = &cli.api {
        (ApiClient::new(a, None, TIMEOUT), None)
    } else {
        let cfg = match load_config(cli) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("farmctl: {e:#}");
                return 3;
            }
        };
        match ApiClient::unix(&socket_path(&cfg), TIMEOUT).status() {
            Ok(st) => return report(st),
            // Nobody on the socket, or not for this user: ask over TCP.
            Err(e @ (ClientError::Unreachable { .. } | ClientError::Denied { .. })) => {
                (ApiClient::new(&base_url(cfg.api.listen), None, TIMEOUT), Some(e.to_string()))
            }
            Err(e @ ClientError::NoAnswer { .. }) => return not_answering(&e),
            Err(e) => {
                eprintln!("farmctl: {e}");
                return 3;
            }
        }
    };
    match tcp.status() {
        Ok(st) => report(st),
        Err(ClientError::Unreachable { message, .. }) => {
            println!("STOP");
            let also = unix_note.map(|n| format!("; {n}")).unwrap_or_default();
            eprintln!("farmctl: farmd is not running (nothing listens at {}: {message}{also})", tcp.base());
            0
        }
        Err(e @ ClientError::NoAnswer { .. }) => not_answering(&e),
        Err(e) => {
            eprintln!("farmctl: {e}");
            3
        }
    }
}

/// Sends a command: over farmd's Unix socket when it is there and accepts this user (no token),
/// else over TCP with the `[api] token_file` token (`--api`: always TCP).
fn command(cli: &Cli, c: LcCommand, reason: &Reason) -> Result<()> {
    let cfg = load_config(cli)?;
    let mut unix_note = String::new();
    if cli.api.is_none() {
        let sock = socket_path(&cfg);
        match ApiClient::unix(&sock, TIMEOUT).command(c, reason.reason.as_deref()) {
            Ok(()) => {
                println!("{} requested", c.as_str());
                return Ok(());
            }
            Err(e @ (ClientError::Unreachable { .. } | ClientError::Denied { .. })) => unix_note = format!(" (Unix socket: {e})"),
            Err(e) => return Err(e.into()),
        }
    }
    let token = cfg.read_token()?;
    if token.is_none() {
        bail!("{}: [api] token_file is not set: farmd refuses commands over TCP{unix_note}", cfg.origin);
    }
    let base = match &cli.api {
        Some(a) => a.clone(),
        None => base_url(cfg.api.listen),
    };
    ApiClient::new(&base, token, TIMEOUT).command(c, reason.reason.as_deref())?;
    println!("{} requested", c.as_str());
    Ok(())
}

/// Sends a live change the way [`command`] sends commands; returns the client that took it.
fn admin(cli: &Cli, cfg: &Config, op: AdminOp, reason: &Reason) -> Result<ApiClient> {
    let mut unix_note = String::new();
    if cli.api.is_none() {
        let client = ApiClient::unix(&socket_path(cfg), TIMEOUT);
        match client.admin(op, reason.reason.as_deref()) {
            Ok(()) => return Ok(client),
            Err(e @ (ClientError::Unreachable { .. } | ClientError::Denied { .. })) => unix_note = format!(" (Unix socket: {e})"),
            Err(e) => return Err(e.into()),
        }
    }
    let token = cfg.read_token()?;
    if token.is_none() {
        bail!("{}: [api] token_file is not set: farmd refuses commands over TCP{unix_note}", cfg.origin);
    }
    let base = cli.api.clone().unwrap_or_else(|| base_url(cfg.api.listen));
    let client = ApiClient::new(&base, token, TIMEOUT);
    client.admin(op, reason.reason.as_deref())?;
    Ok(client)
}

/// Polls the status until `done` says so (at most [`TIMEOUT`]).
fn wait_status<T>(api: &ApiClient, done: impl Fn(&farm_control::api::Status) -> Option<T>) -> Result<T> {
    let t0 = std::time::Instant::now();
    loop {
        let st = api.status()?;
        if let Some(t) = done(&st) {
            return Ok(t);
        }
        if t0.elapsed() > TIMEOUT {
            bail!("farmd took the request but did not report it done within {}", humantime::format_duration(TIMEOUT));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn live(st: &farm_control::api::Status) -> Result<&farm_control::api::LiveStatus> {
    st.live.as_ref().context("this farmd does not report its weight (older version?)")
}

fn weight(cli: &Cli, w: Option<u16>, reason: &Reason) -> Result<()> {
    let cfg = load_config(cli)?;
    let op = match w {
        None => {
            let st = reader(cli, &cfg).status()?;
            let l = live(&st)?;
            let how = match l.runtime_weight {
                Some(_) => format!("set at runtime; the file says {}", l.config_weight),
                None => "from the file".to_string(),
            };
            println!("weight {} ({how}); owns {} of {} buckets", l.weight, st.buckets_owned, st.buckets_total);
            return Ok(());
        }
        Some(w) if w > farm_control::api::MAX_WEIGHT => bail!("expected a weight between 0 and {}, got {w}", farm_control::api::MAX_WEIGHT),
        Some(0) => AdminOp::Drain,
        Some(w) => AdminOp::Weight(w),
    };
    set_weight(cli, &cfg, op, reason)
}

fn set_weight(cli: &Cli, cfg: &Config, op: AdminOp, reason: &Reason) -> Result<()> {
    let api = admin(cli, cfg, op, reason)?;
    let (w, file) = wait_status(&api, |st| {
        let l = st.live.as_ref()?;
        let want = match op {
            AdminOp::Weight(w) => w,
            AdminOp::Drain => 0,
            _ => l.config_weight,
        };
        (l.weight == want && (op != AdminOp::Undrain || l.runtime_weight.is_none())).then_some((l.weight, l.config_weight))
    })?;
    match op {
        AdminOp::Drain => println!(
            "drained: weight 0 (the file says {file}); new connections go to the other nodes, the connections held here finish here; the node stays UP. `farmctl undrain` brings it back"
        ),
        AdminOp::Undrain => println!("weight {w} (from the file)"),
        _ => println!("weight {w} (the file says {file}; kept until `farmctl undrain` or a reload that changes it in the file)"),
    }
    println!("buckets move as the peers agree: see `farmctl status` (buckets_owned) and the module log");
    Ok(())
}

fn reload(cli: &Cli, reason: &Reason) -> Result<u8> {
    let cfg = load_config(cli)?;
    let before = reader(cli, &cfg).status().ok().and_then(|st| st.live.and_then(|l| l.last_reload)).map_or(0, |r| r.seq);
    let api = admin(cli, &cfg, AdminOp::Reload, reason)?;
    let r = wait_status(&api, |st| st.live.as_ref()?.last_reload.clone().filter(|r| r.seq > before))?;
    match r.outcome.as_str() {
        "applied" => {
            println!("reloaded {}:", cfg.origin);
            for c in &r.changes {
                println!("  {c}");
            }
            Ok(0)
        }
        "unchanged" => {
            println!("reloaded {}: nothing changed", cfg.origin);
            Ok(0)
        }
        outcome => {
            let why = if outcome == "refused" { "keys that cannot change live" } else { "the file is not valid" };
            eprintln!("farmctl: reload {outcome}, nothing changed ({why}):");
            for p in &r.problems {
                eprintln!("  {p}");
            }
            Ok(1)
        }
    }
}

fn print_log(cli: &Cli, name: &str, tail: &Tail) -> Result<()> {
    let cfg = load_config(cli)?;
    let path = cfg.module.log_dir.join(name);
    let lines = logs::tail(&path, tail.lines, LogSettings::default().keep)
        .with_context(|| format!("cannot read {}", path.display()))?;
    for l in lines {
        println!("{l}");
    }
    Ok(())
}

fn print_entry(cli: &Cli, level: Level, msg: &[String]) -> Result<()> {
    let cfg = load_config(cli)?;
    let msg = msg.join(" ");
    if msg.trim().is_empty() {
        bail!("nothing to print: give a message");
    }
    logs::append_entry(&cfg.module.log_dir.join(logs::MODULE_LOG), level, &msg)?;
    Ok(())
}

/// Parses `ip`, `ipv4:port`, `[ipv6]:port` or a bare IPv6 address.
fn parse_client(s: &str) -> Result<(IpAddr, Option<u16>)> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok((ip, None));
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok((sa.ip(), Some(sa.port())));
    }
    bail!("expected a client address like 198.51.100.7, 198.51.100.7:40000 or [2001:db8::7]:40000, got {s:?}")
}

fn which(cli: &Cli, client: &str) -> Result<()> {
    let cfg = load_config(cli)?;
    let (ip, port) = parse_client(client)?;
    let key = cfg.try_hash_key()?;
    let n = cfg.buckets();
    let api = reader(cli, &cfg);
    let mut rows = vec![("on_addr", farm_table::bucket_of(&key, ip, None, n))];
    if let Some(p) = port {
        rows.push(("on_port", farm_table::bucket_of(&key, ip, Some(p), n)));
    }
    for (aff, bucket) in rows {
        let owner = match api.bucket(bucket) {
            Ok(b) => match (b.owner, b.owner_name) {
                (Some(id), Some(name)) => format!("owner {name} (id {id}, table generation {})", b.table_generation),
                (Some(id), None) => format!("owner id {id}"),
                (None, _) => "no owner".to_string(),
            },
            Err(e) => format!("owner unknown ({e})"),
        };
        println!("{client} -> bucket {bucket}/{n} ({aff} rules): {owner}");
    }
    Ok(())
}

fn config_check(file: &Path, runtime: bool) -> u8 {
    let res = Config::load(file).and_then(|c| if runtime { c.check_runtime().map(|_| c) } else { Ok(c) });
    match res {
        Ok(c) => {
            println!("OK: {} (module {}, {} nodes, {} VIPs, {} checkers)", file.display(), c.module.name, c.nodes.len(), c.vips.len(), c.checkers.len());
            config_init::warn_seed(&c);
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

mod config_init;
mod import;
mod snapshot;

fn run(cli: &Cli) -> Result<u8> {
    match &cli.cmd {
        Cmd::State => return Ok(state(cli)),
        Cmd::Status => {
            let st = match &cli.api {
                Some(a) => ApiClient::new(a, None, TIMEOUT).status()?,
                None => reader(cli, &load_config(cli)?).status()?,
            };
            println!("{}", serde_json::to_string_pretty(&st)?);
        }
        Cmd::Start(r) => command(cli, LcCommand::Start, r)?,
        Cmd::Stop(r) => command(cli, LcCommand::Stop, r)?,
        Cmd::Restart(r) => command(cli, LcCommand::Restart, r)?,
        Cmd::Weight { weight: w, reason } => weight(cli, *w, reason)?,
        Cmd::Drain(r) => set_weight(cli, &load_config(cli)?, AdminOp::Drain, r)?,
        Cmd::Undrain(r) => set_weight(cli, &load_config(cli)?, AdminOp::Undrain, r)?,
        Cmd::Reload(r) => return reload(cli, r),
        Cmd::Log(t) => print_log(cli, logs::MODULE_LOG, t)?,
        Cmd::Applog(t) => print_log(cli, logs::APP_LOG, t)?,
        Cmd::Printi { msg } => print_entry(cli, Level::Info, msg)?,
        Cmd::Printe { msg } => print_entry(cli, Level::Error, msg)?,
        Cmd::Which { client } => which(cli, client)?,
        Cmd::Snapshot { out } => {
            let cfg = load_config(cli)?;
            let api = reader(cli, &cfg);
            let written = snapshot::write(&cli.config, &cfg, &api, out)?;
            println!("snapshot written to {}", written.display());
        }
        Cmd::Config { cmd: ConfigCmd::Check { file, runtime } } => return Ok(config_check(file, *runtime)),
        Cmd::Config { cmd: ConfigCmd::Init(a) } => return config_init::run(&cli.config, a),
        Cmd::Import { cmd } => return import::run(cmd),
    }
    Ok(0)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("farmctl: {e:#}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_forms() {
        assert_eq!(parse_client("198.51.100.7").unwrap(), ("198.51.100.7".parse().unwrap(), None));
        assert_eq!(parse_client("198.51.100.7:40000").unwrap(), ("198.51.100.7".parse().unwrap(), Some(40000)));
        assert_eq!(parse_client("2001:db8::7").unwrap(), ("2001:db8::7".parse().unwrap(), None));
        assert_eq!(parse_client("[2001:db8::7]:80").unwrap(), ("2001:db8::7".parse().unwrap(), Some(80)));
        assert!(parse_client("example.com").is_err());
        assert!(parse_client("1.2.3.4:99999").is_err());
    }

    #[test]
    fn cli_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let c = Cli::try_parse_from(["farmctl", "--api", "http://x:1", "log", "-n", "5"]).unwrap();
        assert!(matches!(c.cmd, Cmd::Log(Tail { lines: Some(5) })));
        let c = Cli::try_parse_from(["farmctl", "printe", "disk", "full"]).unwrap();
        assert!(matches!(c.cmd, Cmd::Printe { ref msg } if msg.join(" ") == "disk full"));
        assert!(Cli::try_parse_from(["farmctl", "bogus"]).is_err());
        let c = Cli::try_parse_from(["farmctl", "weight", "3", "--reason", "bigger box"]).unwrap();
        assert!(matches!(c.cmd, Cmd::Weight { weight: Some(3), ref reason } if reason.reason.as_deref() == Some("bigger box")));
        assert!(matches!(Cli::try_parse_from(["farmctl", "weight"]).unwrap().cmd, Cmd::Weight { weight: None, .. }));
        assert!(Cli::try_parse_from(["farmctl", "weight", "-1"]).is_err());
        assert!(matches!(Cli::try_parse_from(["farmctl", "drain"]).unwrap().cmd, Cmd::Drain(_)));
        assert!(matches!(Cli::try_parse_from(["farmctl", "reload"]).unwrap().cmd, Cmd::Reload(_)));
        // config init from nothing: --nodes takes several values; the global --node is another option.
        let c = Cli::try_parse_from(["farmctl", "--node", "n1", "config", "init", "--vip", "198.18.0.100", "--nodes", "n1=198.18.0.1", "n2=198.18.0.2", "--port", "80"]).unwrap();
        assert_eq!(c.node.as_deref(), Some("n1"));
        assert!(matches!(c.cmd, Cmd::Config { cmd: ConfigCmd::Init(ref a) } if a.new.nodes.len() == 2 && a.new.vips.len() == 1));
        assert!(Cli::try_parse_from(["farmctl", "config", "init", "--vip", "198.18.0.100"]).is_err(), "--vip needs --nodes");
        assert!(Cli::try_parse_from(["farmctl", "config", "init", "--nodes", "n1=198.18.0.1", "--seed-only"]).is_err());
        let c = Cli::try_parse_from(["farmctl", "import", "safekit", "u.xml", "c.xml", "-o", "f.toml"]).unwrap();
        assert!(matches!(c.cmd, Cmd::Import { cmd: import::ImportCmd::Safekit(ref a) } if a.cluster.is_some() && a.output.is_some()));
    }
}
