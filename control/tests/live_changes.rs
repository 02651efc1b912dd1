//! Live changes on two real farmd processes on loopback (no data plane, table files written
//! with `--table-only`): `farmctl weight`, `drain`, `undrain`, `reload` and SIGHUP move
//! buckets without a restart; a broken file or a key that cannot change live changes nothing
//! and says why.

mod common;

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Output;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{free_ports, private, quoted, Farmd, FarmToml};
use farm_table::BucketEntry;
use nix::sys::signal::Signal;

const TOKEN: &str = "live-changes-test-token";
const BUCKETS: usize = 1024;
const NODES: usize = 2;

/// One test at a time: timings on a 2-core machine.
static SERIAL: Mutex<()> = Mutex::new(());

struct Farm {
    /// n1 and n2, each started with `--table-only` (killed before the directory goes).
    nodes: Vec<Farmd>,
    _dir: tempfile::TempDir,
    root: PathBuf,
    addrs: Vec<Ipv4Addr>,
    hb_port: u16,
}

impl Farm {
    fn new(variant: u8) -> Farm {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        // A /16 of 127/8 of its own (farmd_cluster.rs uses 100..=199).
        let net = common::net(200 + (std::process::id() % 25) as u8 * 2 + variant);
        let addrs: Vec<Ipv4Addr> = (0..NODES).map(|k| common::ip(net, k as u8 + 1)).collect();
        let (hb_port, api_port) = free_ports(&addrs, &addrs);
        private(&root.join("secret"), "the-cluster-secret-0123456789abcdef");
        private(&root.join("token"), TOKEN);
        let nodes = (0..NODES).map(|k| Farmd::new(&root, &format!("n{}", k + 1), SocketAddr::from((addrs[k], api_port)), Some(TOKEN))).collect();
        let f = Farm { nodes, _dir: dir, root, addrs, hb_port };
        for k in 0..NODES {
            f.write_config(k, 1, "100ms");
        }
        f
    }

    /// Node k's file with its own weight `weight` and the heartbeat `pulse`.
    fn write_config(&self, k: usize, weight: u16, pulse: &str) {
        let t = FarmToml::new(43).module("hash_seed", quoted("0x5eed")).module("buckets", BUCKETS).node_files(&self.root, "secret");
        (0..NODES)
            .fold(t, |t, j| t.weighted_node(&format!("n{}", j + 1), self.addrs[j], if j == k { weight } else { 1 }))
            .heartbeat("port", self.hb_port)
            .heartbeat("pulse", quoted(pulse))
            .heartbeat("dead_after", quoted("1s"))
            .api("listen", quoted(self.nodes[k].api_addr))
            .api("token_file", quoted(self.root.join("token").display()))
            .write(&self.nodes[k].config);
    }

    fn start(&mut self, k: usize) {
        self.nodes[k].start(&["--table-only", "--start", "--log", "info"]);
    }

    fn logs(&self) -> String {
        self.nodes.iter().map(|n| format!("--- {} module log ---\n{}", n.node, n.module_log())).collect()
    }

    /// Buckets owned per node when both tables agree on every bucket's owner and every bucket
    /// is accepted by exactly one node.
    #[allow(clippy::needless_range_loop)] // `b` indexes the second dimension of every table
    fn agreement(&self) -> Result<[usize; NODES], String> {
        let t: Vec<Vec<BucketEntry>> = (0..NODES).map(|k| self.nodes[k].table().ok_or("no table yet".to_string())).collect::<Result<_, _>>()?;
        let mut owned = [0; NODES];
        for b in 0..BUCKETS {
            let owners: Vec<usize> = (0..NODES).filter(|&k| t[k][b].owner == k as u8).collect();
            let [o] = owners[..] else { return Err(format!("bucket {b} accepted by {owners:?}")) };
            if (0..NODES).any(|k| t[k][b].owner != o as u8) {
                return Err(format!("bucket {b}: tables disagree"));
            }
            owned[o] += 1;
        }
        Ok(owned)
    }

    /// Waits until the tables agree and `ok(owned)` holds.
    fn wait_owned(&self, what: &str, within: Duration, ok: impl Fn([usize; NODES]) -> bool) -> [usize; NODES] {
        let t0 = Instant::now();
        loop {
            match self.agreement() {
                Ok(o) if ok(o) => return o,
                r if t0.elapsed() > within => panic!("{what}: not after {within:?}: {r:?}\n{}", self.logs()),
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    fn wait_log(&self, k: usize, needle: &str, within: Duration) {
        let t0 = Instant::now();
        while !self.nodes[k].module_log().contains(needle) {
            assert!(t0.elapsed() < within, "n{}'s module log has no {needle:?}\n{}", k + 1, self.logs());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The last reload report of node k with a sequence above `after`.
    fn wait_reload(&self, k: usize, after: u64) -> farm_control::api::ReloadReport {
        let t0 = Instant::now();
        loop {
            if let Some(r) = self.nodes[k].status().live.and_then(|l| l.last_reload).filter(|r| r.seq > after) {
                return r;
            }
            assert!(t0.elapsed() < Duration::from_secs(5), "n{}: no reload reported\n{}", k + 1, self.logs());
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Within 10% of the ideal share `ideal` (of all buckets).
fn near(owned: usize, ideal: f64) -> bool {
    let share = owned as f64 / BUCKETS as f64;
    (share - ideal).abs() <= 0.1 * ideal
}

fn text(o: &Output) -> String {
    format!("status {:?}\nstdout: {}\nstderr: {}", o.status.code(), String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn started() -> (std::sync::MutexGuard<'static, ()>, Farm) {
    let guard = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut f = Farm::new(0);
    f.start(0);
    f.start(1);
    let o = f.wait_owned("both nodes own buckets", Duration::from_secs(15), |o| near(o[0], 0.5) && near(o[1], 0.5));
    eprintln!("joined: {o:?}");
    (guard, f)
}

#[test]
fn farmctl_weight_drain_and_undrain_move_buckets_and_the_node_stays_up() {
    let (_g, f) = started();

    let o = f.nodes[0].farmctl(&["weight", "3", "--reason", "bigger box"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("weight 3"), "{}", text(&o));
    let owned = f.wait_owned("n1 at weight 3 owns ~3/4", Duration::from_secs(10), |o| near(o[0], 0.75) && near(o[1], 0.25));
    eprintln!("weight 3: {owned:?}");
    f.wait_log(0, "weight 1 -> 3 (farmctl weight", Duration::from_secs(2));
    f.wait_log(0, "took ", Duration::from_secs(2));
    f.wait_log(1, "(n1 weight 1 -> 3)", Duration::from_secs(2));
    f.wait_log(1, "released ", Duration::from_secs(2));
    let l = f.nodes[0].status().live.unwrap();
    assert_eq!((l.weight, l.config_weight, l.runtime_weight), (3, 1, Some(3)));
    let o = f.nodes[0].farmctl(&["weight"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("weight 3 (set at runtime; the file says 1)"), "{}", text(&o));

    // Drain: every bucket goes to n2; n1 stays UP (in the cluster, in n2's view) but its
    // health URL says no.
    let o = f.nodes[0].farmctl(&["drain"]);
    assert!(o.status.success(), "{}", text(&o));
    f.wait_owned("n1 drained", Duration::from_secs(10), |o| o == [0, BUCKETS]);
    let o = f.nodes[0].farmctl(&["state"]);
    assert_eq!((o.status.code(), String::from_utf8_lossy(&o.stdout).trim()), (Some(2), "UP"), "{}", text(&o));
    let st = f.nodes[1].status();
    assert_eq!(st.view, vec![0, 1], "n1 stays in n2's view");
    assert_eq!(st.members[0].weight, 0);
    let health = f.nodes[0].api().get_text("/var/modules/web/ready.txt");
    assert!(matches!(health, Err(farm_control::api::ClientError::Http { status: 404, .. })), "{health:?}");
    f.wait_log(0, "weight 3 -> 0", Duration::from_secs(2));

    // Undrain: back to the file's weight, half each.
    let o = f.nodes[0].farmctl(&["undrain"]);
    assert!(o.status.success(), "{}", text(&o));
    f.wait_owned("n1 back at weight 1", Duration::from_secs(10), |o| near(o[0], 0.5) && near(o[1], 0.5));
    assert_eq!(f.nodes[0].api().get_text("/var/modules/web/ready.txt").unwrap(), "OK\n");
    let l = f.nodes[0].status().live.unwrap();
    assert_eq!((l.weight, l.runtime_weight), (1, None));
    // Out of range.
    let o = f.nodes[0].farmctl(&["weight", "1001"]);
    assert!(!o.status.success(), "{}", text(&o));
}

#[test]
fn sighup_and_reload_apply_live_keys_and_refuse_the_rest_changing_nothing() {
    let (_g, f) = started();

    // SIGHUP with n1's weight 3 in the file.
    f.write_config(0, 3, "100ms");
    f.nodes[0].signal(Signal::SIGHUP);
    let r = f.wait_reload(0, 0);
    assert_eq!(r.outcome, "applied", "{r:?}");
    assert_eq!(r.trigger, "SIGHUP");
    assert!(r.changes.iter().any(|c| c.contains("node[0].weight (n1 1 -> 3)")), "{r:?}");
    let owned = f.wait_owned("n1 at weight 3 after SIGHUP", Duration::from_secs(10), |o| near(o[0], 0.75));
    eprintln!("SIGHUP weight 3: {owned:?}");
    f.wait_log(0, "weight 1 -> 3 (reload (SIGHUP))", Duration::from_secs(2));

    // A broken file: nothing changes, the log says which file and key.
    let good = fs::read_to_string(&f.nodes[0].config).unwrap();
    fs::write(&f.nodes[0].config, good.replace("weight = 3", "weight = \"heavy\"")).unwrap();
    f.nodes[0].signal(Signal::SIGHUP);
    let r = f.wait_reload(0, 1);
    assert_eq!(r.outcome, "invalid", "{r:?}");
    let file = f.nodes[0].config.display().to_string();
    f.wait_log(0, "nothing changed", Duration::from_secs(2));
    let log = f.nodes[0].module_log();
    let line = log.lines().rev().find(|l| l.contains("reload (SIGHUP): nothing changed")).unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains(&file) && line.contains("node[0].weight"), "{line}");
    assert_eq!(f.nodes[0].status().live.unwrap().weight, 3);
    assert!(near(f.agreement().unwrap()[0], 0.75));

    // A timer change with a weight change: refused as a whole, the timer named.
    f.write_config(0, 2, "50ms");
    let o = f.nodes[0].farmctl(&["reload"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("refused") && err.contains("heartbeat.pulse (100ms -> 50ms): cannot change live"), "{}", text(&o));
    assert!(!err.contains("node[0].weight"), "only refused keys are named: {err}");
    f.wait_log(0, "refused, nothing changed", Duration::from_secs(2));
    assert!(f.nodes[0].module_log().contains("heartbeat.pulse"));
    let l = f.nodes[0].status().live.unwrap();
    assert_eq!((l.weight, l.config_weight), (3, 3), "nothing changed");

    // A runtime weight survives a reload that leaves the file's weight alone, not one that
    // changes it.
    f.write_config(0, 3, "100ms");
    let o = f.nodes[0].farmctl(&["weight", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = f.nodes[0].farmctl(&["reload"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("nothing changed"), "{}", text(&o));
    assert_eq!(f.nodes[0].status().live.unwrap().weight, 1);
    f.write_config(0, 2, "100ms");
    let o = f.nodes[0].farmctl(&["reload"]);
    assert!(o.status.success(), "{}", text(&o));
    let l = f.nodes[0].status().live.unwrap();
    assert_eq!((l.weight, l.config_weight, l.runtime_weight), (2, 2, None));
    f.wait_owned("n1 at weight 2", Duration::from_secs(10), |o| near(o[0], 2.0 / 3.0));
}
