//! `farm-dataplane`: see `cli.rs` for the command line and ARCHITECTURE.md for the design.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use farm_dataplane::{cli, run};

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    match run::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("farm-dataplane: error: {}", farm_config::error_line(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
