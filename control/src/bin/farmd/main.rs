//! `farmd`: the farm's control daemon. See `farm_control::daemon` for what it does.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use farm_control::daemon::{self, DaemonError, Options, Prepared};

/// farm control daemon: membership (heartbeats), bucket assignment (the shared-memory table),
/// the module lifecycle (start_both/stop_both, checkers, restart policy), the data plane's
/// supervision and the HTTP API.
///
/// farmd never forks into the background (run it from systemd, `Type=simple`). The module
/// starts in STOP unless --start is given (or [module] autostart = true): `farmctl start`
/// starts it. SIGTERM or SIGINT stops the module gracefully (leave the farm, stop_both), stops
/// the data plane, and exits 0.
#[derive(Debug, Parser)]
#[command(name = "farmd", version)]
struct Args {
    /// The farm config file (TOML, shared with farm-dataplane and farmctl).
    #[arg(short, long, value_name = "FILE", default_value = "/etc/farm/farm.toml")]
    config: PathBuf,

    /// This node's name in the config (default: the node with an address on this machine;
    /// pass it when the node address lives on the data plane's TAP interface).
    #[arg(long, value_name = "NAME")]
    node: Option<String>,

    /// Start the module once farmd runs (default: [module] autostart, else it stays in STOP
    /// until `farmctl start`).
    #[arg(long)]
    start: bool,

    /// Never start the data plane, but write the table file (tests, tools; also with
    /// dataplane.enabled = false).
    #[arg(long)]
    table_only: bool,

    /// iproute2's ip program, used to put [dataplane] tap_addrs on the TAP (default:
    /// /usr/sbin/ip, else /sbin/ip, /usr/bin/ip, /bin/ip).
    #[arg(long, value_name = "PATH")]
    ip: Option<PathBuf>,

    /// Stay in the foreground (accepted for compatibility: farmd never daemonizes).
    #[arg(long)]
    foreground: bool,

    /// Check the configuration and the files it names (secret, token, scripts, data-plane
    /// program), print "ok" and exit.
    #[arg(long)]
    check: bool,

    /// Log filter (tracing syntax, e.g. `info`, `farm_control=debug`); default from RUST_LOG,
    /// else `info`.
    #[arg(long, value_name = "FILTER")]
    log: Option<String>,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit: the API holds two descriptors per
/// connection and keeps serving with `[api] max_connections` (default 1024) open, more than
/// the usual soft limit of 1024 allows. The API lowers its connection limit to what fits if
/// this is not enough.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(soft, hard, error = %e, "cannot raise the file descriptor limit");
            } else {
                tracing::debug!(from = soft, to = hard, "file descriptor limit raised");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the file descriptor limit"),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = args
        .log
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    raise_fd_limit();
    let opts = Options { config: args.config, node: args.node, start: args.start, table_only: args.table_only, ip: args.ip };
    let r = if args.check {
        Prepared::load(opts).map(|_| println!("ok"))
    } else {
        daemon::run(opts)
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("farmd: error: {}", farm_config::error_line(&e));
            match e {
                DaemonError::Config(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
