//! Command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// farm data plane: owns the uplink NIC with DPDK, accepts the VIP traffic of the buckets this
/// node owns (per the table farmd publishes in shared memory), answers ARP/ND for the VIPs, and
/// hands accepted frames to the kernel through a TAP interface.
///
/// Normally started by farmd. Settings come from the `[dataplane]` section of the shared config
/// file; the options below override them.
#[derive(Debug, Parser)]
#[command(name = "farm-dataplane", version)]
pub struct Args {
    /// The farm config file (TOML, shared with farmd).
    #[arg(short, long, value_name = "FILE", default_value = "/etc/farm/farm.toml")]
    pub config: PathBuf,

    /// This node's name in the config (default: the node with an address on this machine).
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,

    /// The table file farmd publishes (default: module.table_file).
    #[arg(long, value_name = "PATH")]
    pub table: Option<PathBuf>,

    /// The uplink device instead of dataplane.uplink: a PCI address (`0000:03:00.0`) or a
    /// vdev (`net_af_packet0,iface=eth1`, `net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap`).
    #[arg(long, value_name = "DEVICE")]
    pub uplink: Option<String>,

    /// Any DPDK device as the local port instead of the TAP (testing: `net_pcap1,tx_pcap=f`,
    /// `net_ring1`); default from dataplane.local_port / tap_name.
    #[arg(long, value_name = "DEVICE")]
    pub local_port: Option<String>,

    /// Worker lcores (default dataplane.workers).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=32))]
    pub workers: Option<u32>,

    /// CPUs of the workers, one per worker (default dataplane.lcores, else unpinned).
    #[arg(long, value_name = "CPU,..", value_delimiter = ',')]
    pub lcores: Option<Vec<u32>>,

    /// Never sleep when idle (dedicated cores).
    #[arg(long)]
    pub busy_poll: bool,

    /// EAL --file-prefix (default dataplane.file_prefix).
    #[arg(long, value_name = "PREFIX")]
    pub file_prefix: Option<String>,

    /// Extra EAL argument (repeatable), after dataplane.eal_args.
    #[arg(long = "eal-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub eal_arg: Vec<String>,

    /// DPDK log level (EAL --log-level), e.g. `error`, `*:info`.
    #[arg(long, value_name = "SPEC", default_value = "*:error")]
    pub dpdk_log_level: String,

    /// Exit once no frame arrived on either port for this long (tests feeding a pcap).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub exit_when_idle: Option<Duration>,

    /// Log level of the data plane itself (tracing filter), e.g. `info`, `debug`.
    #[arg(long, value_name = "FILTER", default_value = "info")]
    pub log: String,
}
