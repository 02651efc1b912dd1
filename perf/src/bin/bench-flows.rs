//! Flow knowledge's refresh cost (DESIGN.md I2): the data plane's refresher reading the kernel's
//! TCP sockets through sock_diag netlink (filtered on the VIP in the kernel) vs the `/proc/net/tcp`
//! parser (the fallback), and sock_diag without the kernel-side filter, side by side in one run,
//! with 1k, 10k and 100k established connections to the VIP.
//!
//! Runs in a network namespace of its own (created with `unshare`, gone when the process
//! exits), on loopback only: the "VIP" is 127.0.0.1:80, clients connect from 127.1.x.1.
//! So N connections are 2N sockets in the namespace (the VIP side, which the refresher keeps,
//! and the client side, which it must skip) plus the listener. The file limit here may be low
//! (20000, with no right to raise it), so the client sides are held by child processes (15000
//! each, in the same namespace) and the VIP sides wait in the listener's accept queue, where they
//! are established sockets of the kernel's table all the same, without a file descriptor. Each round times one refresh
//! (read the kernel + build the set of VIP flows and the per-bucket counts, as
//! `Refresher::collect`) of each method in turn, interleaved; the figures are the median and the
//! range of the wall time and of the thread's CPU time (user + system: sock_diag's dump runs in
//! the kernel on the reading thread). Run as root (namespace):
//! `cargo run --release -p farm-perf --bin bench-flows [rounds] [max connections] [ehash entries]`
//! (the third argument gives the namespace a TCP hash table of its own: the dump walks every
//! bucket of the table, so on the host's global table (262144 buckets here) even an empty
//! namespace costs a few ms per refresh).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use farm_dataplane::flows::{diag, vip_flows, Refresher, SockDiag, Source, REFRESH_PERIOD};
use farm_pipeline::{PipelineConfig, PortRange, Protocol, Rule, Vip};
use farm_table::{Affinity, HashKey};
use farm_wire::EthernetAddress;
use socket2::{Domain, Socket, Type};

const VIP: Ipv4Addr = Ipv4Addr::LOCALHOST;
const PORT: u16 = 80;
/// Address families of the dumps (linux/socket.h).
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// A network namespace of this process's own; with `ehash`, one whose TCP hash table is its own
/// and that size (`net.ipv4.tcp_child_ehash_entries`, set in an intermediate namespace of ours,
/// so nothing outside changes), instead of the host's global table.
fn own_namespace(ehash: Option<u32>) -> Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).context("unshare a network namespace (run as root)")?;
    if let Some(n) = ehash {
        std::fs::write("/proc/sys/net/ipv4/tcp_child_ehash_entries", n.to_string()).context("tcp_child_ehash_entries")?;
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).context("unshare the second namespace")?;
    }
    let ok = std::process::Command::new("ip").args(["link", "set", "lo", "up"]).status()?;
    if !ok.success() {
        bail!("ip link set lo up failed");
    }
    // The namespace's own sysctl: room for 64k client ports per client address.
    std::fs::write("/proc/sys/net/ipv4/ip_local_port_range", "1024 65000").context("port range")?;
    Ok(())
}

/// The thread's CPU time, user and system (CLOCK_THREAD_CPUTIME_ID: exact, where schedstat and
/// getrusage lag or are tick-sampled).
fn cpu_now() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map_or(Duration::ZERO, |t| Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32))
}

/// Client sides held per child process.
const PER_CHILD: usize = 15_000;

/// The child's part: opens `count` connections to the VIP from client numbers `first..`, says
/// "ready", holds them until its standard input closes.
fn hold(first: usize, count: usize) -> Result<()> {
    let to: socket2::SockAddr = SocketAddr::from((VIP, PORT)).into();
    let mut held = Vec::with_capacity(count);
    for i in first..first + count {
        // Explicit ports: bind(port 0) searches for a free port, slower with every socket.
        let from = Ipv4Addr::new(127, 1, (i / 10_000) as u8, 1);
        let c = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        c.bind(&SocketAddr::from((from, 20_000 + (i % 10_000) as u16)).into()).with_context(|| format!("bind client {i}"))?;
        c.connect(&to).with_context(|| format!("connect client {i}"))?;
        held.push(c);
    }
    println!("ready");
    let mut sink = String::new();
    let _ = std::io::stdin().read_line(&mut sink);
    Ok(())
}

struct Conns {
    _listener: Socket,
    open: usize,
    children: Vec<std::process::Child>,
}

impl Conns {
    fn new(max: usize) -> Result<Conns> {
        std::fs::write("/proc/sys/net/core/somaxconn", format!("{}", 2 * max + 1024)).context("somaxconn")?;
        let l = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        l.set_reuse_address(true)?;
        l.bind(&SocketAddr::from((VIP, PORT)).into())?;
        l.listen(i32::try_from(2 * max + 1024)?)?;
        Ok(Conns { _listener: l, open: 0, children: Vec::new() })
    }

    fn grow_to(&mut self, n: usize) -> Result<()> {
        while self.open < n {
            let count = PER_CHILD.min(n - self.open);
            let mut child = std::process::Command::new(std::env::current_exe()?)
                .args(["--hold", &self.open.to_string(), &count.to_string()])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()?;
            let mut line = String::new();
            std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().expect("stdout")), &mut line)?;
            if line.trim() != "ready" {
                let _ = child.kill();
                bail!("a child failed to open its connections");
            }
            self.children.push(child);
            self.open += count;
        }
        Ok(())
    }
}

impl Drop for Conns {
    fn drop(&mut self) {
        for mut c in self.children.drain(..) {
            drop(c.stdin.take());
            let _ = c.wait();
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Method {
    SockDiag,
    SockDiagUnfiltered,
    Proc,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::SockDiag => "sock_diag, VIP filter in the kernel",
            Method::SockDiagUnfiltered => "sock_diag, no filter",
            Method::Proc => "/proc/net/tcp{,6} parser",
        }
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--hold") {
        return hold(args[2].parse()?, args[3].parse()?);
    }
    let rounds: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(15);
    let max: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let ehash: Option<u32> = args.get(3).and_then(|s| s.parse().ok());
    own_namespace(ehash)?;

    let vips = vec![Vip::new(IpAddr::V4(VIP), vec![Rule::new(Protocol::Tcp, PortRange::single(PORT), Affinity::OnAddr)])];
    let cfg = PipelineConfig::new(EthernetAddress([2, 0, 0, 0, 0, 1]), vips, 4096, HashKey::from_seed(1))?;
    let (mut by_diag, _) = Refresher::with_source(Source::SockDiag);
    if by_diag.source() != Source::SockDiag {
        bail!("sock_diag netlink unavailable");
    }
    let (mut by_proc, _) = Refresher::with_source(Source::Proc);
    let mut raw = SockDiag::open()?;
    let mut scratch = Vec::new();
    let mut conns = Conns::new(max)?;
    let methods = [Method::SockDiag, Method::SockDiagUnfiltered, Method::Proc];

    println!(
        "TCP hash table: {}",
        ehash.map_or("the host's global one".to_string(), |n| format!("the namespace's own, {n} entries"))
    );
    println!(
        "flow knowledge refresh: one refresh = read the kernel + the VIP flow set + per-bucket counts; {rounds} interleaved rounds; median (range)"
    );
    println!("{:>8}  {:<36} {:>22} {:>22} {:>8} {:>12}", "conns", "method", "wall ms/refresh", "CPU ms/refresh", "flows", "CPU @25 ms");
    for n in [0usize, 1_000, 10_000, 100_000].into_iter().filter(|&n| n <= max) {
        let t0 = Instant::now();
        conns.grow_to(n)?;
        eprintln!("  ({n} connections open, {:.1} s to open)", t0.elapsed().as_secs_f64());
        let mut wall: Vec<Vec<f64>> = vec![Vec::new(); methods.len()];
        let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); methods.len()];
        let mut found = vec![0usize; methods.len()];
        for round in 0..rounds {
            for k in 0..methods.len() {
                let m = (round + k) % methods.len();
                let (w0, c0) = (Instant::now(), cpu_now());
                let (known, per_bucket) = match methods[m] {
                    Method::SockDiag => by_diag.collect(&cfg),
                    Method::Proc => by_proc.collect(&cfg),
                    Method::SockDiagUnfiltered => {
                        scratch.clear();
                        for family in [AF_INET, AF_INET6] {
                            raw.dump(family, diag::held_states(), &[], &mut |s| scratch.push(s))?;
                        }
                        vip_flows(&cfg, &scratch)
                    }
                };
                let (w, c) = (w0.elapsed(), cpu_now() - c0);
                wall[m].push(w.as_secs_f64() * 1e3);
                cpu[m].push(c.as_secs_f64() * 1e3);
                found[m] = known.len();
                std::hint::black_box(per_bucket);
            }
        }
        for (m, method) in methods.iter().enumerate() {
            let (w, c) = (stats(&mut wall[m]), stats(&mut cpu[m]));
            println!(
                "{n:>8}  {:<36} {:>8.3} ({:.3}-{:.3}) {:>8.3} ({:.3}-{:.3}) {:>8} {:>11.1}%",
                method.name(),
                w.0,
                w.1,
                w.2,
                c.0,
                c.1,
                c.2,
                found[m],
                100.0 * c.0 / (REFRESH_PERIOD.as_secs_f64() * 1e3)
            );
            if found[m] != n {
                eprintln!("  warning: {} found {} flows, {n} open", method.name(), found[m]);
            }
        }
    }
    println!("(N connections = 2N sockets + the listener in the namespace: the clients' side is not on the VIP and is skipped)");
    Ok(())
}

/// Median, min, max.
fn stats(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}
