//! `farm-lab`: builds and tears down the network-namespace lab (see `farm_tests::lab`).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::builder::TypedValueParser;
use clap::{Parser, Subcommand};
use farm_tests::lab::{self, layout, Lab, LabOptions, Mode};

/// The farm lab on one Linux machine: a bridge, N node namespaces, a client namespace.
/// Addresses only from 198.18.0.0/15; nothing touches a real interface. Needs root.
#[derive(Parser, Debug)]
#[command(name = "farm-lab", version)]
struct Cli {
    /// Prefix of every name (bridge <prefix>br0, namespaces <prefix>-n1.., <prefix>-cl, run
    /// directory /run/<prefix>-lab): labs with distinct prefixes run side by side.
    #[arg(long, global = true, default_value = layout::DEFAULT_PREFIX)]
    prefix: String,
    /// More logs (-v: debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

fn parse_local_port(s: &str) -> Result<farm_config::LocalPort, String> {
    use farm_config::LocalPort::*;
    [Tap, AfXdp, VirtioUser]
        .into_iter()
        .find(|p| p.as_str() == s)
        .ok_or_else(|| format!("expected tap, af_xdp or virtio_user, got {s:?}"))
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Builds the lab and leaves it running.
    Up {
        /// Number of nodes (n1..nN).
        #[arg(long, default_value_t = layout::DEFAULT_NODES,
              value_parser = clap::value_parser!(u16).range(1..=layout::MAX_NODES as i64).map(usize::from))]
        nodes: usize,
        /// farm: farmd (which starts farm-dataplane and Apache) on each node; dataplane:
        /// farm-dataplane and Apache with a fixed table published by the lab, no farmd;
        /// direct: node address on the veth, Apache, no farm.
        #[arg(long, value_enum, default_value_t = Mode::Farm)]
        mode: Mode,
        /// Where farmd and farm-dataplane are (farm and dataplane modes).
        #[arg(long, default_value = "target/release")]
        bin_dir: PathBuf,
        /// Number of client addresses (198.18.1.1, 198.18.1.2, ..., 198.18.2.1, ...).
        #[arg(long, default_value_t = layout::DEFAULT_CLIENTS,
              value_parser = clap::value_parser!(u16).range(1..=layout::MAX_CLIENTS as i64).map(usize::from))]
        clients: usize,
        /// The Apache program.
        #[arg(long, default_value = "apache2")]
        apache: String,
        /// Farm configuration template (default: the built-in configs/lab.toml).
        #[arg(long)]
        config_template: Option<PathBuf>,
        /// The nodes' uplink driver on `dp0` (default: the template's dataplane.uplink driver).
        #[arg(long, value_enum)]
        uplink: Option<lab::LabUplink>,
        /// The nodes' dataplane.local_port: tap, af_xdp or virtio_user (default: the template's).
        #[arg(long, value_parser = parse_local_port)]
        local_port: Option<farm_config::LocalPort>,
        /// Pause between steps, in milliseconds (for tests that interrupt `up`).
        #[arg(long, hide = true, default_value_t = 0)]
        step_delay_ms: u64,
        /// On failure, leave what was built for inspection (remove it with `down`).
        #[arg(long)]
        keep_on_error: bool,
    },
    /// Tears the lab down (also after a failed or interrupted `up`); does nothing if it is down.
    Down,
    /// Shows what of the lab exists and runs.
    Status,
    /// Farm mode: each node's state and health URL; with --wait, waits until every node is UP.
    Health {
        /// Wait up to this many seconds for every node to be UP (exit 1 if one is not).
        #[arg(long, value_name = "SECS")]
        wait: Option<u64>,
    },
    /// One HTTP request to the VIP from every client address (curl), shown as a mosaic (one
    /// cell per client: the node that answered) and the share of each node.
    Shares {
        /// The VIP's TCP port (80: on_addr rule; 8080: on_port rule).
        #[arg(long, default_value_t = 80)]
        port: u16,
        /// Cells per row.
        #[arg(long, default_value_t = 64)]
        width: usize,
        /// Never colour the cells (default: colour when stdout is a terminal).
        #[arg(long)]
        no_color: bool,
    },
    /// Farm mode: crashes a node (kill -9 of its farmd, farm-dataplane and Apache, then its
    /// link down) while some of its clients open a new connection every 20 ms; prints how long
    /// until they are served again. The node stays down (see `rejoin`).
    Failover {
        /// The node: `n2` or `2`.
        node: String,
        /// Leave the link up (kill the processes only).
        #[arg(long)]
        keep_link: bool,
        /// How many of its clients (each in another bucket) to probe.
        #[arg(long, default_value_t = 8)]
        probes: usize,
    },
    /// Farm mode: brings a node back after `failover` (link up, farmd started); prints how long
    /// until it is UP and owns its buckets again.
    Rejoin {
        /// The node: `n2` or `2`.
        node: String,
    },
    /// Runs a command in a lab namespace: a node (`n1`, ...) or the client (`cl`).
    Exec {
        /// `n1`..`nN` or `cl`.
        node: String,
        /// The command and its arguments (after `--`).
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
}

fn interrupt_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        signal_hook::flag::register(sig, Arc::clone(&flag)).context("install signal handler")?;
    }
    Ok(flag)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("farm-lab: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let level = if cli.verbose > 0 { "debug" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    layout::check_prefix(&cli.prefix)?;

    match cli.command {
        Command::Up { nodes, mode, bin_dir, clients, apache, config_template, uplink, local_port, step_delay_ms, keep_on_error } => {
            let opts = LabOptions {
                prefix: cli.prefix.clone(),
                nodes,
                clients,
                mode,
                bin_dir,
                apache,
                template: config_template,
                dataplane: lab::DataplaneChoice { uplink, local_port },
                interrupt: Some(interrupt_flag()?),
                step_delay: Duration::from_millis(step_delay_ms),
                keep_on_error,
                ..LabOptions::default()
            };
            let lab = Lab::up(&opts)?;
            print_summary(&lab);
            lab.persist();
        }
        Command::Down => {
            // A Ctrl-C must not cut a teardown in half: it is bounded anyway.
            let _flag = interrupt_flag()?;
            let rep = lab::down(&cli.prefix)?;
            for w in &rep.warnings {
                eprintln!("warning: {w}");
            }
            println!("lab {}: down ({} items removed)", cli.prefix, rep.removed.len());
        }
        Command::Status => print!("{}", lab::status(&cli.prefix)?),
        Command::Health { wait } => health(&Lab::attach(&cli.prefix)?, wait)?,
        Command::Shares { port, width, no_color } => {
            let lab = Lab::attach(&cli.prefix)?;
            let colour = !no_color && std::io::IsTerminal::is_terminal(&std::io::stdout());
            let spread = lab.curl_spread(&lab.client_addrs(), port)?;
            println!(
                "one request (curl) from each of {} client addresses to http://{}:{port}/ -- cell = client, digit = node:",
                spread.results.len(),
                lab.vip()
            );
            print!("{}", spread.mosaic(width, colour));
            println!("  {}", spread.summary(lab.layout().nodes()));
            // Compared with the previous `shares` on this port (kept in the run directory).
            let last = lab.run_dir().join(format!("shares-{port}.last"));
            if let Ok(before) = lab::Spread::load(&last) {
                println!("  since the previous run: {}", lab::describe_moves(&lab::moves(&before, &spread)));
            }
            spread.save(&last)?;
        }
        Command::Failover { node, keep_link, probes } => {
            let mut lab = Lab::attach(&cli.prefix)?;
            let i = node_number(&lab, &node)?;
            let what = if keep_link { "" } else { ", then its link down" };
            println!("kill -9 of n{i}'s farmd, farm-dataplane and Apache{what}; {probes} of its clients probe the VIP every 20 ms");
            let r = lab.fail_node(i, !keep_link, probes, Duration::from_secs(10))?;
            let ms = |d: Option<Duration>| d.map_or_else(|| "never (10 s)".to_owned(), |d| format!("{} ms", d.as_millis()));
            println!("  new connections to n{i}'s buckets succeed again after {} (first client), {} (all {})", ms(r.first()), ms(r.all()), r.served.len());
            let by: Vec<String> = r.served.iter().map(|(c, _, n)| format!("{c}->{}", n.map_or("-".into(), |n| format!("n{n}")))).collect();
            println!("  taken over: {}", by.join(" "));
            if !r.failed_after.is_empty() {
                println!("  {} requests failed after the takeover: {:?}", r.failed_after.len(), r.failed_after);
            }
            if r.all().is_none() {
                bail!("some clients of n{i} were not served again within 10 s");
            }
        }
        Command::Rejoin { node } => {
            let mut lab = Lab::attach(&cli.prefix)?;
            let i = node_number(&lab, &node)?;
            println!("n{i}: link up, farmd started again");
            let r = lab.rejoin_node(i, Duration::from_secs(30))?;
            println!(
                "  UP after {} ms; every table gives n{i} its {} buckets again after {} ms",
                r.up_after.as_millis(),
                r.assignment.counts().get(&i).copied().unwrap_or(0),
                r.settled_after.as_millis()
            );
        }
        Command::Exec { node, cmd } => {
            let ns = if node == "cl" || node == "client" {
                format!("{}-cl", cli.prefix)
            } else if layout::is_lab_name(&cli.prefix, &format!("{}-{node}", cli.prefix)) {
                format!("{}-{node}", cli.prefix)
            } else {
                bail!("unknown node {node:?}: expected n1, n2, ... or cl");
            };
            let err = std::process::Command::new("ip").args(["netns", "exec", &ns]).args(&cmd).exec();
            bail!("cannot run ip netns exec {ns}: {err}");
        }
    }
    Ok(())
}

/// `n2` or `2` → 2, checked against the lab's node count.
fn node_number(lab: &Lab, s: &str) -> Result<usize> {
    let n = lab.layout().nodes();
    match s.strip_prefix('n').unwrap_or(s).parse::<usize>() {
        Ok(i) if (1..=n).contains(&i) => Ok(i),
        _ => bail!("unknown node {s:?}: expected n1 .. n{n}"),
    }
}

fn health(lab: &Lab, wait: Option<u64>) -> Result<()> {
    if lab.mode() != Mode::Farm {
        bail!("lab {} runs in {} mode: no farmd", lab.layout().prefix(), lab.mode());
    }
    let nodes: Vec<usize> = lab.layout().node_numbers().collect();
    let waited = wait.map(|secs| lab.wait_health(&nodes, lab::Health::Up, Duration::from_secs(secs)));
    let line: Vec<String> = nodes
        .iter()
        .map(|&i| {
            let state = lab.node_state(i).unwrap_or_else(|_| "no farmd".into());
            let owned = lab.assignment(i).ok().and_then(|a| a.counts().get(&i).copied()).unwrap_or(0);
            match lab.health(i) {
                lab::Health::Up => format!("n{i} {state} (ready.txt 200, {owned} buckets)"),
                lab::Health::NotUp(code) => format!("n{i} {state} (ready.txt {code})"),
                lab::Health::Down => format!("n{i} down"),
            }
        })
        .collect();
    println!("{}", line.join(", "));
    match waited {
        Some(Ok(d)) => println!("every node UP (waited {} ms)", d.as_millis()),
        Some(Err(e)) => bail!("{e}"),
        None => {}
    }
    Ok(())
}

fn print_summary(lab: &Lab) {
    let l = lab.layout();
    println!("lab {} up ({} mode), bridge {}", l.prefix(), lab.mode(), l.bridge());
    for i in l.node_numbers() {
        println!("  {}: namespace {}, address {}", l.node_name(i), l.node_ns(i), l.node_addr(i));
    }
    if lab.mode().has_dataplane() {
        println!("  VIP {} (farm config {})", l.vip(), lab.farm_files().config.display());
    }
    let n = l.clients();
    println!(
        "  client: namespace {}, {} addresses {} .. {}",
        l.client_ns(),
        n,
        l.client_addr(0),
        l.client_addr(n - 1)
    );
    println!("  run directory {}; tear down with: farm-lab down --prefix {}", l.run_dir().display(), l.prefix());
}
