//! From the shared config file to what the data plane runs with.

use anyhow::{bail, Context, Result};
use farm_config::{Config, LocalPort, Node, Ports, Proto};
use farm_pipeline::{PipelineConfig, PortRange, Protocol, Rule, Vip};
use farm_wire::EthernetAddress;

use crate::cli::Args;

/// The packet path's configuration: the config's VIPs and rules, this node's MAC.
pub fn pipeline_config(cfg: &Config, node_mac: [u8; 6]) -> Result<PipelineConfig> {
    let vips = cfg
        .vips
        .iter()
        .map(|v| {
            let rules = v
                .rules
                .iter()
                .map(|r| {
                    let protocol = match r.proto {
                        Proto::Tcp => Protocol::Tcp,
                        Proto::Udp => Protocol::Udp,
                        Proto::Icmp => Protocol::Icmp,
                    };
                    let ports = match r.ports {
                        Ports::All => PortRange::ALL,
                        Ports::Range { first, last } => PortRange { first, last },
                    };
                    Rule::new(protocol, ports, r.affinity)
                })
                .collect();
            Vip::new(v.addr, rules)
        })
        .collect();
    PipelineConfig::new(EthernetAddress(node_mac), vips, cfg.buckets(), cfg.hash_key())
        .with_context(|| format!("{}: VIPs and rules", cfg.origin))
}

/// Worker count after command-line overrides.
pub fn workers(cfg: &Config, args: &Args) -> u32 {
    args.workers.unwrap_or(cfg.dataplane.workers)
}

/// The EAL argument vector (after argv[0]).
pub fn eal_args(cfg: &Config, node: &Node, args: &Args) -> Result<Vec<String>> {
    let dp = &cfg.dataplane;
    let mut v = Vec::new();
    let prefix = args.file_prefix.clone().unwrap_or_else(|| dp.file_prefix.clone());
    v.push(format!("--file-prefix={prefix}"));
    let n = workers(cfg, args);
    // Lcore 0 is the main thread (link state, flow refresh, signals); lcores 1..=n the workers.
    // Unpinned lcores float over every CPU, so that several data planes share a small machine.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let all = if cpus > 1 { format!("(0-{})", cpus - 1) } else { "(0)".to_owned() };
    let pinned = args.lcores.clone().or_else(|| dp.lcores.clone());
    if let Some(p) = &pinned {
        if p.len() != n as usize {
            bail!("{} workers but {} CPUs in dataplane.lcores / --lcores: give one CPU per worker", n, p.len());
        }
    }
    let mut map = vec![format!("0@{all}")];
    for i in 0..n as usize {
        match &pinned {
            Some(p) => map.push(format!("{}@{}", i + 1, p[i])),
            None => map.push(format!("{}@{all}", i + 1)),
        }
    }
    v.push(format!("--lcores={}", map.join(",")));
    match &args.uplink {
        Some(dev) if looks_like_pci(dev) => v.extend(["-a".to_owned(), dev.clone()]),
        Some(dev) => v.push(format!("--vdev={dev}")),
        None => {
            let up = dp.uplink.as_ref().context("dataplane.uplink is not set")?;
            let [a, b] = up.eal_args();
            v.extend([a, b]);
        }
    }
    let _ = node;
    v.extend(dp.eal_args.iter().cloned());
    v.extend(args.eal_arg.iter().cloned());
    Ok(v)
}

fn looks_like_pci(dev: &str) -> bool {
    let name = dev.split(',').next().unwrap_or(dev);
    name.contains(':') && name.contains('.') && !name.starts_with("net_")
}

/// The name DPDK gives the uplink port.
pub fn uplink_name(cfg: &Config, args: &Args) -> Option<String> {
    match &args.uplink {
        Some(dev) => dev.split(',').next().map(str::to_owned),
        None => cfg.dataplane.uplink.as_ref().map(|u| u.device_name().to_owned()),
    }
}

/// The devargs of the local port to the kernel, created once the uplink's MAC is known.
pub fn local_port_devargs(cfg: &Config, args: &Args, mac: [u8; 6], queues: u32) -> String {
    if let Some(d) = &args.local_port {
        return d.clone();
    }
    let m = mac.map(|b| format!("{b:02x}")).join(":");
    let ifname = cfg.dataplane.tap_name.as_str().to_owned();
    match cfg.dataplane.local_port {
        LocalPort::Tap => format!("net_tap_farm,iface={ifname},mac={m}"),
        LocalPort::VirtioUser => {
            format!("net_virtio_user_farm,path=/dev/vhost-net,queues={queues},queue_size=1024,iface={ifname},mac={m}")
        }
    }
}
