//! The veth pair of `local_port = "af_xdp"`: the kernel end (`tap_name`, carrying the node's
//! MAC, where farmd puts the node's addresses) and the data plane's end (`af_xdp_peer`), which
//! DPDK's `net_af_xdp` drives through an AF_XDP socket per queue.
//!
//! Created at start with iproute2 (as farmd's `tap_addrs` are applied), with as many queues as
//! workers on both ends (native XDP on a veth needs at least as many rx queues as its peer has
//! tx queues, and the PMD binds one socket per queue); removed when the data plane exits.
//! A pair left by a data plane that was killed is removed first; an interface of that name
//! that is not a veth is someone else's and is refused. The kernel end computes its checksums
//! and segments in software (`ethtool -K ... tx off sg off tso off gso off`): the frames it
//! sends go from the AF_XDP socket to the wire as they are, and a veth would otherwise hand
//! them over with the checksum still to do.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Where iproute2's `ip` is looked for, in order.
const IP_PATHS: [&str; 4] = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"];
/// Where `ethtool` is looked for, in order.
const ETHTOOL_PATHS: [&str; 4] = ["/usr/sbin/ethtool", "/sbin/ethtool", "/usr/bin/ethtool", "/bin/ethtool"];

/// What to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VethPlan {
    /// The kernel end (`dataplane.tap_name`).
    pub kernel: String,
    /// The data plane's end (`dataplane.af_xdp_peer`).
    pub peer: String,
    /// The kernel end's MAC (the node's).
    pub mac: [u8; 6],
    /// Queues of each end (one per worker).
    pub queues: u32,
}

impl VethPlan {
    /// `ip` arguments that create the pair.
    pub fn add_args(&self) -> Vec<String> {
        let q = self.queues.to_string();
        let mac = self.mac.map(|b| format!("{b:02x}")).join(":");
        [
            "link", "add", &self.kernel, "numtxqueues", &q, "numrxqueues", &q, "address", &mac, "type", "veth",
            "peer", "name", &self.peer, "numtxqueues", &q, "numrxqueues", &q,
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// `ethtool` arguments for the kernel end: checksums and segmentation in software.
    pub fn offload_args(&self) -> Vec<String> {
        ["-K", &self.kernel, "tx", "off", "sg", "off", "tso", "off", "gso", "off"].map(str::to_owned).to_vec()
    }

    /// `ip -batch` lines that bring both ends up (the data plane's end first).
    pub fn up_batch(&self) -> String {
        format!("link set dev {} up\nlink set dev {} up\n", self.peer, self.kernel)
    }

    /// The devargs of the `net_af_xdp` port on the data plane's end. `busy_budget=0`: no
    /// preferred busy polling (a veth has no NAPI of its own to poll; the sender's CPU
    /// delivers), so an idle worker costs nothing.
    pub fn devargs(&self) -> String {
        format!("net_af_xdp_farm,iface={},start_queue=0,queue_count={},busy_budget=0", self.peer, self.queues)
    }
}

/// What is found under a name the pair needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// Nothing.
    Absent,
    /// A veth (a pair left by an earlier run): removed.
    Veth,
    /// Another kind of interface: refused.
    Other,
}

/// Reads `ip -o -d link show dev NAME` output: a veth's details carry the word `veth`.
pub fn classify(show_output: Option<&str>) -> Existing {
    match show_output {
        None => Existing::Absent,
        Some(s) if s.split_whitespace().any(|w| w == "veth") => Existing::Veth,
        Some(_) => Existing::Other,
    }
}

fn find(paths: &[&str]) -> Option<PathBuf> {
    paths.iter().map(PathBuf::from).find(|p| p.is_file())
}

fn run(program: &Path, args: &[String]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("run {} {}", program.display(), args.join(" ")))?;
    if !out.status.success() {
        bail!("{} {}: {}", program.display(), args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn show(ip: &Path, name: &str) -> Option<String> {
    if !Path::new("/sys/class/net").join(name).exists() {
        return None;
    }
    run(ip, &["-o", "-d", "link", "show", "dev", name].map(str::to_owned)).ok()
}

/// The created pair; dropping it removes it (both ends go with either).
#[derive(Debug)]
pub struct Veth {
    ip: PathBuf,
    plan: VethPlan,
}

impl Veth {
    /// Removes a leftover pair, creates the pair, turns the kernel end's offloads off and
    /// brings both ends up.
    ///
    /// # Errors
    /// No `ip` or `ethtool`; a name taken by an interface that is not a veth; what the
    /// commands report.
    pub fn create(plan: VethPlan) -> Result<Veth> {
        let ip = find(&IP_PATHS).context("local_port = \"af_xdp\" needs iproute2's ip (/usr/sbin/ip or /sbin/ip)")?;
        let ethtool = find(&ETHTOOL_PATHS)
            .context("local_port = \"af_xdp\" needs ethtool (to compute the kernel end's checksums in software)")?;
        for (key, name) in [("tap_name", &plan.kernel), ("af_xdp_peer", &plan.peer)] {
            match classify(show(&ip, name).as_deref()) {
                Existing::Absent => {}
                Existing::Veth => {
                    tracing::warn!(interface = %name, "removing a veth left by an earlier run");
                    // Its peer goes with it; it may already be gone with the first name.
                    if let Err(e) = run(&ip, &["link", "del", "dev", name].map(str::to_owned)) {
                        if show(&ip, name).is_some() {
                            return Err(e);
                        }
                    }
                }
                Existing::Other => bail!(
                    "dataplane.{key}: interface {name:?} exists and is not a veth (another program's?); \
                     expected a free name for local_port = \"af_xdp\""
                ),
            }
        }
        run(&ip, &plan.add_args())?;
        let veth = Veth { ip, plan };
        // No IPv6 on the data plane's end: nothing of the kernel's own (DAD, router
        // solicitations) should leave through it. Best effort: IPv6 may be off altogether.
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", veth.plan.peer), "1");
        run(&ethtool, &veth.plan.offload_args())?;
        veth.batch(&veth.plan.up_batch())?;
        tracing::info!(kernel = %veth.plan.kernel, peer = %veth.plan.peer, queues = veth.plan.queues, "veth pair created");
        Ok(veth)
    }

    fn batch(&self, lines: &str) -> Result<()> {
        use std::io::Write as _;
        let mut child = Command::new(&self.ip)
            .args(["-batch", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("run {} -batch -", self.ip.display()))?;
        child.stdin.take().expect("piped").write_all(lines.as_bytes()).context("write to ip -batch")?;
        let out = child.wait_with_output().context("ip -batch")?;
        if !out.status.success() {
            bail!("ip -batch ({}): {}", lines.trim().replace('\n', "; "), String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    }

    /// The plan it was created from.
    pub fn plan(&self) -> &VethPlan {
        &self.plan
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        match run(&self.ip, &["link", "del", "dev", &self.plan.peer].map(str::to_owned)) {
            Ok(_) => tracing::debug!(peer = %self.plan.peer, "veth pair removed"),
            Err(e) => tracing::warn!(error = %e, "remove the veth pair"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> VethPlan {
        VethPlan { kernel: "farm0".into(), peer: "farm0-dp".into(), mac: [2, 0xfa, 0, 0, 0, 1], queues: 2 }
    }

    #[test]
    fn the_pair_has_the_node_mac_and_a_queue_per_worker_on_both_ends() {
        assert_eq!(
            plan().add_args().join(" "),
            "link add farm0 numtxqueues 2 numrxqueues 2 address 02:fa:00:00:00:01 type veth \
             peer name farm0-dp numtxqueues 2 numrxqueues 2"
        );
        assert_eq!(plan().offload_args().join(" "), "-K farm0 tx off sg off tso off gso off");
        assert_eq!(plan().up_batch(), "link set dev farm0-dp up\nlink set dev farm0 up\n");
    }

    #[test]
    fn the_port_drives_every_queue_of_the_peer() {
        assert_eq!(plan().devargs(), "net_af_xdp_farm,iface=farm0-dp,start_queue=0,queue_count=2,busy_budget=0");
    }

    #[test]
    fn leftovers_are_told_apart_from_other_interfaces() {
        let veth = "7: farm0@farm0-dp: <BROADCAST,MULTICAST,UP,LOWER_UP,M-DOWN> mtu 1500 qdisc noqueue state UP \
                    mode DEFAULT group default qlen 1000\\    link/ether 02:fa:00:00:00:01 brd ff:ff:ff:ff:ff:ff \
                    promiscuity 0 allmulti 0 minmtu 68 maxmtu 65535 \\    veth addrgenmode eui64 numtxqueues 1";
        let tun = "9: farm0: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 qdisc fq_codel state DOWN \\    \
                   link/ether 02:fa:00:00:00:01 brd ff:ff:ff:ff:ff:ff promiscuity 0 \\    tun type tap pi off vnet_hdr off";
        assert_eq!(classify(None), Existing::Absent);
        assert_eq!(classify(Some(veth)), Existing::Veth);
        assert_eq!(classify(Some(tun)), Existing::Other);
    }
}
