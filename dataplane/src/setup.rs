//! From the shared config file to what the data plane runs with.

use anyhow::{bail, Context, Result};
use farm_config::{Config, LocalPort, Node, Ports, Proto};
use farm_pipeline::{PipelineConfig, PortRange, Protocol, Rule, Vip};
use farm_wire::EthernetAddress;

use crate::cli::Args;
use crate::veth::VethPlan;

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

/// Buffers `net_af_xdp` keeps in the fill ring of each of its rx queues (its default ring of
/// 2048 descriptors), taken from the packet pool when the queue is set up.
pub const AF_XDP_FILL: u32 = 2048;

/// Buffers to add to `dataplane.mempool_size` for the `net_af_xdp` ports (uplink, local port):
/// [`AF_XDP_FILL`] per rx queue of each, so the pool keeps `mempool_size` for the traffic.
pub fn af_xdp_pool_extra(cfg: &Config, args: &Args, queues: u32) -> u32 {
    let is_xdp = |dev: &str| dev.starts_with("net_af_xdp");
    let uplink = uplink_name(cfg, args).is_some_and(|u| is_xdp(&u));
    let local = match &args.local_port {
        Some(d) => is_xdp(d),
        None => cfg.dataplane.local_port == LocalPort::AfXdp,
    };
    (u32::from(uplink) + u32::from(local)) * AF_XDP_FILL * queues
}

/// The local port to the kernel: its devargs, and the veth pair to create first (`af_xdp`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalSetup {
    /// What `rte_dev_probe` gets.
    pub devargs: String,
    /// `local_port = "af_xdp"`: the pair the port drives.
    pub veth: Option<VethPlan>,
}

/// The local port to the kernel, created once the uplink's MAC is known.
pub fn local_port(cfg: &Config, args: &Args, mac: [u8; 6], queues: u32) -> Result<LocalSetup> {
    if let Some(d) = &args.local_port {
        return Ok(LocalSetup { devargs: d.clone(), veth: None });
    }
    let m = mac.map(|b| format!("{b:02x}")).join(":");
    let dp = &cfg.dataplane;
    let ifname = dp.tap_name.as_str().to_owned();
    let plain = |devargs: String| Ok(LocalSetup { devargs, veth: None });
    match dp.local_port {
        LocalPort::Tap => plain(format!("net_tap_farm,iface={ifname},mac={m}")),
        LocalPort::VirtioUser => {
            plain(format!("net_virtio_user_farm,path=/dev/vhost-net,queues={queues},queue_size=1024,iface={ifname},mac={m}"))
        }
        LocalPort::AfXdp => {
            let peer = dp.xdp_peer().with_context(|| format!("{}: dataplane.af_xdp_peer: no name fits", cfg.origin))?;
            let plan = VethPlan { kernel: ifname, peer, mac, queues };
            Ok(LocalSetup { devargs: plan.devargs(), veth: Some(plan) })
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn cfg(dataplane: &str) -> Config {
        let text = format!(
            "[module]\nname = \"web\"\ncluster_id = 7\nsecret_file = \"/etc/farm/web.secret\"\n\n\
             [[node]]\nname = \"n1\"\naddrs = [\"198.18.0.1\"]\n\n\
             [[vip]]\naddr = \"198.18.0.100\"\n[[vip.rule]]\nproto = \"tcp\"\nports = \"80\"\n\n\
             [dataplane]\nuplink = \"net_af_packet0,iface=veth0\"\n{dataplane}\n"
        );
        Config::from_str(&text, "t.toml").unwrap()
    }

    const MAC: [u8; 6] = [2, 0xfa, 0, 0, 0, 1];

    #[test]
    fn af_xdp_drives_a_veth_pair_named_after_tap_name() {
        let args = Args::parse_from(["farm-dataplane"]);
        let l = local_port(&cfg("local_port = \"af_xdp\"\nworkers = 2"), &args, MAC, 2).unwrap();
        let v = l.veth.expect("a veth pair");
        assert_eq!((v.kernel.as_str(), v.peer.as_str(), v.mac, v.queues), ("farm0", "farm0-dp", MAC, 2));
        assert_eq!(l.devargs, "net_af_xdp_farm,iface=farm0-dp,start_queue=0,queue_count=2,busy_budget=0");
        let l = local_port(&cfg("local_port = \"af_xdp\"\ntap_name = \"web0\"\naf_xdp_peer = \"xsk0\""), &args, MAC, 1).unwrap();
        assert_eq!(l.veth.map(|v| (v.kernel, v.peer)), Some(("web0".into(), "xsk0".into())));
    }

    #[test]
    fn the_pool_grows_by_a_fill_ring_per_af_xdp_queue() {
        let args = Args::parse_from(["farm-dataplane"]);
        assert_eq!(af_xdp_pool_extra(&cfg("local_port = \"tap\""), &args, 2), 0);
        assert_eq!(af_xdp_pool_extra(&cfg("local_port = \"af_xdp\""), &args, 2), 2 * AF_XDP_FILL);
        let args = Args::parse_from(["farm-dataplane", "--uplink", "net_af_xdp0,iface=eth1"]);
        assert_eq!(af_xdp_pool_extra(&cfg("local_port = \"af_xdp\""), &args, 1), 2 * AF_XDP_FILL);
        assert_eq!(af_xdp_pool_extra(&cfg("local_port = \"tap\""), &args, 3), 3 * AF_XDP_FILL);
    }

    #[test]
    fn tap_and_virtio_user_need_no_veth() {
        let args = Args::parse_from(["farm-dataplane"]);
        let l = local_port(&cfg("local_port = \"tap\""), &args, MAC, 1).unwrap();
        assert_eq!((l.devargs.as_str(), l.veth), ("net_tap_farm,iface=farm0,mac=02:fa:00:00:00:01", None));
        let l = local_port(&cfg("local_port = \"virtio_user\""), &args, MAC, 2).unwrap();
        assert!(l.devargs.starts_with("net_virtio_user_farm,path=/dev/vhost-net,queues=2"), "{}", l.devargs);
        assert_eq!(l.veth, None);
        // --local-port overrides the configuration (tests use net_pcap / net_ring).
        let args = Args::parse_from(["farm-dataplane", "--local-port", "net_ring1"]);
        let l = local_port(&cfg("local_port = \"af_xdp\""), &args, MAC, 1).unwrap();
        assert_eq!((l.devargs.as_str(), l.veth), ("net_ring1", None));
    }
}
