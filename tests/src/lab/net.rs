//! The network: bridge, namespaces, veths, addresses, sysctls, the uplink filter.

use std::fmt::Write as _;

use serde_json::Value;

use super::cmd::{ns_run, ns_sysctl, resolve, run, run_status, run_with_input};
use super::error::LabError;
use super::layout::{Layout, CLIENT_IF, LAN_PREFIX_LEN, NODE_TAP, NODE_UPLINK};

/// Names of the interfaces of the current (host) namespace.
pub fn host_links() -> Result<Vec<String>, LabError> {
    let out = run("ip", ["-j", "link", "show"])?;
    let v: Value = serde_json::from_str(&out).map_err(|e| LabError::Command {
        cmd: "ip -j link show".into(),
        status: "ok".into(),
        stderr: format!("unexpected output: {e}"),
    })?;
    Ok(v.as_array()
        .map(|a| a.iter().filter_map(|l| l["ifname"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default())
}

/// The alias (`ifalias`) of a host interface, if it exists.
pub fn link_alias(name: &str) -> Option<String> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifalias"))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Whether a host interface exists.
pub fn link_exists(name: &str) -> bool {
    std::path::Path::new(&format!("/sys/class/net/{name}")).exists()
}

/// Names of every network namespace (`ip netns list`).
pub fn namespaces() -> Result<Vec<String>, LabError> {
    let out = run("ip", ["netns", "list"])?;
    Ok(out.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_owned).collect())
}

/// The interface index of `ifname` inside `ns`, if it exists (a recreated interface gets a new
/// one).
pub fn ns_link_index(ns: &str, ifname: &str) -> Option<u32> {
    let o = run_status("ip", ["-n", ns, "-o", "link", "show", "dev", ifname]).ok()?;
    if !o.status.success() {
        return None;
    }
    String::from_utf8_lossy(&o.stdout).split(':').next()?.trim().parse().ok()
}

fn write_proc(path: &str, value: &str) -> Result<(), LabError> {
    std::fs::write(path, value).map_err(|e| LabError::io(path, e))
}

/// Creates the bridge: no address, IPv6 off, STP off, no host netfilter on bridged frames,
/// marked with the lab's alias, up.
pub fn create_bridge(l: &Layout) -> Result<(), LabError> {
    let br = l.bridge();
    run("ip", ["link", "add", &br, "type", "bridge", "stp_state", "0", "forward_delay", "0"])?;
    // The alias marks the bridge as ours: `down` deletes only a bridge that carries it.
    run("ip", ["link", "set", "dev", &br, "alias", &l.bridge_alias()])?;
    write_proc(&format!("/proc/sys/net/ipv6/conf/{br}/disable_ipv6"), "1")?;
    // Optional knobs: older kernels/iproute2 may lack them; the lab works without.
    let _ = run(
        "ip",
        [
            "link", "set", "dev", &br, "type", "bridge", "mcast_snooping", "0", "nf_call_iptables",
            "0", "nf_call_ip6tables", "0", "nf_call_arptables", "0",
        ],
    );
    run("ip", ["link", "set", "dev", &br, "up"]).map(drop)
}

/// Creates namespace `ns` with a veth: host end `ns` (same name) on the bridge, namespace end
/// `inner` (with `mac` if given); brings lo up.
pub fn create_ns_with_veth(
    l: &Layout,
    ns: &str,
    inner: &str,
    mac: Option<&str>,
) -> Result<(), LabError> {
    create_ns_with_veth_queues(l, ns, inner, mac, 1)
}

/// `ip link add` arguments of a namespace's veth with `queues` rx and tx queues on both ends
/// (native XDP on a veth needs as many rx queues as its peer has tx queues; `net_af_xdp` binds
/// one socket per queue).
pub fn veth_args<'a>(ns: &'a str, inner: &'a str, mac: Option<&'a str>, queues: &'a str) -> Vec<&'a str> {
    let mut args = vec!["link", "add", ns, "numtxqueues", queues, "numrxqueues", queues, "type", "veth", "peer", "name", inner];
    args.extend(["numtxqueues", queues, "numrxqueues", queues, "netns", ns]);
    if let Some(m) = mac {
        args.extend(["address", m]);
    }
    args
}

fn create_ns_with_veth_queues(
    l: &Layout,
    ns: &str,
    inner: &str,
    mac: Option<&str>,
    queues: u32,
) -> Result<(), LabError> {
    run("ip", ["netns", "add", ns])?;
    let q = queues.max(1).to_string();
    run("ip", veth_args(ns, inner, mac, &q))?;
    write_proc(&format!("/proc/sys/net/ipv6/conf/{ns}/disable_ipv6"), "1")?;
    run("ip", ["link", "set", "dev", ns, "master", &l.bridge(), "up"])?;
    // No IPv6 on the lab's own uplinks: no router solicitations or DAD on the wire.
    ns_sysctl(
        ns,
        &[
            (&format!("net.ipv6.conf.{inner}.disable_ipv6"), "1"),
            ("net.ipv6.conf.default.disable_ipv6", "1"),
        ],
    )?;
    run("ip", ["-n", ns, "link", "set", "dev", "lo", "up"]).map(drop)
}

/// The client namespace: `eth0` with 198.18.1.1/16 and the other client addresses as /32.
pub fn create_client(l: &Layout) -> Result<(), LabError> {
    let ns = l.client_ns();
    create_ns_with_veth(l, &ns, CLIENT_IF, Some("02:fa:00:00:01:01"))?;
    let mut batch = String::new();
    for (k, a) in l.client_addrs().iter().enumerate() {
        let len = if k == 0 { LAN_PREFIX_LEN } else { 32 };
        writeln!(batch, "address add {a}/{len} dev {CLIENT_IF}").expect("write to String");
    }
    writeln!(batch, "link set dev {CLIENT_IF} up").expect("write to String");
    run_with_input("ip", ["-n", &ns, "-batch", "-"], &batch)?;
    // A veth hands frames to its peer with the TCP/UDP checksum not yet computed (checksum
    // offload) and TCP segments up to 64 KiB (TSO/GSO). A farm node's data plane reads raw frames
    // with a packet socket and passes them to its TAP, where the kernel then drops them
    // (TcpInCsumErrors) or they exceed an mbuf. So the client computes checksums and segments in
    // software, like a real NIC on a wire. Same in direct mode, so baselines compare alike.
    ns_run(&ns, "ethtool", ["-K", CLIENT_IF, "tx", "off", "sg", "off", "tso", "off", "gso", "off"]).map(drop)
}

/// Direct mode: the node address straight on the veth (`dp0`), no data plane.
pub fn create_node_direct(l: &Layout, i: usize) -> Result<(), LabError> {
    let ns = l.node_ns(i);
    create_ns_with_veth(l, &ns, NODE_UPLINK, Some(&l.node_mac(i)))?;
    let addr = format!("{}/{LAN_PREFIX_LEN}", l.node_addr(i));
    run("ip", ["-n", &ns, "address", "add", &addr, "dev", NODE_UPLINK])?;
    run("ip", ["-n", &ns, "link", "set", "dev", NODE_UPLINK, "up"]).map(drop)
}

/// The netdev ingress filter that keeps the kernel of a farm node away from its uplink:
/// packet sockets (DPDK `net_af_packet`) see each frame before the ingress hook, so the data
/// plane still receives everything while the kernel stack receives nothing from `dp0`. With
/// `net_af_xdp`, XDP redirects each frame into the data plane's socket in the driver, before
/// any hook: the kernel sees only what the XDP program passes (frames of a queue without a
/// socket), and the filter drops those.
pub fn uplink_filter() -> String {
    format!(
        "table netdev farm_lab {{\n  chain uplink {{\n    type filter hook ingress device \"{NODE_UPLINK}\" priority 0; policy drop;\n  }}\n}}\n"
    )
}

/// Farm mode, before farmd starts: `dp0` (with `queues` queues, one per worker) up,
/// promiscuous, no address, no ARP, no IPv6, and dropped at ingress for the kernel (the data
/// plane owns it); the VIP on `lo`; sysctls so the kernel never claims the VIP in ARP and
/// Apache can bind addresses that appear later.
pub fn create_node_farm(l: &Layout, i: usize, queues: u32) -> Result<(), LabError> {
    let ns = l.node_ns(i);
    create_ns_with_veth_queues(l, &ns, NODE_UPLINK, Some(&l.node_mac(i)), queues)?;
    let vip = format!("{}/32", l.vip());
    let batch = format!(
        "link set dev {NODE_UPLINK} promisc on arp off up\naddress add {vip} dev lo\n"
    );
    run_with_input("ip", ["-n", &ns, "-batch", "-"], &batch)?;
    ns_sysctl(
        &ns,
        &[
            // VIP on lo + arp_ignore=1: ARP is answered only for addresses of the interface it
            // arrives on, so the kernel answers for the node address on farm0, never for the
            // VIP (the data plane answers VIP ARP with the virtual MAC, by bucket owner).
            ("net.ipv4.conf.all.arp_ignore", "1"),
            // arp_announce=2: ARP requests sent by the node never carry the VIP as source.
            ("net.ipv4.conf.all.arp_announce", "2"),
            // Apache (started by farmd's start_both) may bind the node address before the lab
            // has put it on farm0.
            ("net.ipv4.ip_nonlocal_bind", "1"),
        ],
    )?;
    let nft = resolve(std::ffi::OsStr::new("nft"));
    let args: [&std::ffi::OsStr; 6] =
        ["netns".as_ref(), "exec".as_ref(), ns.as_ref(), &nft, "-f".as_ref(), "-".as_ref()];
    run_with_input("ip", args, &uplink_filter()).map(drop)
}

/// Farm mode, once farm-dataplane created the TAP: node address on farm0, farm0 up.
pub fn configure_tap(l: &Layout, i: usize) -> Result<(), LabError> {
    let ns = l.node_ns(i);
    let addr = format!("{}/{LAN_PREFIX_LEN}", l.node_addr(i));
    let batch = format!("address replace {addr} dev {NODE_TAP}\nlink set dev {NODE_TAP} up\n");
    run_with_input("ip", ["-n", &ns, "-batch", "-"], &batch).map(drop)
}

/// Sets the host end of node `i`'s veth (its "cable") up or down.
pub fn set_node_link(l: &Layout, i: usize, up: bool) -> Result<(), LabError> {
    run("ip", ["link", "set", "dev", &l.node_ns(i), if up { "up" } else { "down" }]).map(drop)
}

/// Fails with [`LabError::PortInUse`] if something listens on `port` in `ns`.
pub fn check_port_free(ns: &str, port: u16, proto: &'static str) -> Result<(), LabError> {
    let flag = if proto == "udp" { "-Hlunp" } else { "-Hltnp" };
    let out = ns_run(ns, "ss", [flag, &format!("sport = :{port}")])?;
    let by = out.trim();
    if by.is_empty() {
        Ok(())
    } else {
        Err(LabError::PortInUse {
            ns: ns.to_owned(),
            port,
            proto,
            by: by.split_whitespace().collect::<Vec<_>>().join(" "),
        })
    }
}

/// Addresses (`ip -br addr`) of an interface in a namespace, for `status`.
pub fn ns_brief_addrs(ns: &str, ifname: &str) -> String {
    run("ip", ["-n", ns, "-br", "address", "show", "dev", ifname])
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| format!("{ifname}: absent"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_veths_have_a_queue_per_worker_on_both_ends() {
        assert_eq!(
            veth_args("farm-n1", "dp0", Some("02:fa:00:00:00:01"), "2").join(" "),
            "link add farm-n1 numtxqueues 2 numrxqueues 2 type veth peer name dp0 numtxqueues 2 numrxqueues 2 \
             netns farm-n1 address 02:fa:00:00:00:01"
        );
    }

    #[test]
    fn uplink_filter_drops_only_the_uplink_at_ingress() {
        let f = uplink_filter();
        assert!(f.contains("table netdev farm_lab"));
        assert!(f.contains("hook ingress device \"dp0\""));
        assert!(f.contains("policy drop"));
    }
}
