//! Live changes on two real farmd processes on loopback (no data plane, table files written
//! with `--table-only`): `farmctl weight`, `drain`, `undrain`, `reload` and SIGHUP move
//! buckets without a restart; a broken file or a key that cannot change live changes nothing
//! and says why.

use std::fs;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use farm_control::api::{ApiClient, Status};
use farm_table::{BucketEntry, TableReader};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const TOKEN: &str = "live-changes-test-token";
const BUCKETS: usize = 1024;
const NODES: usize = 2;

/// One test at a time: timings on a 2-core machine.
static SERIAL: Mutex<()> = Mutex::new(());

struct Farm {
    _dir: tempfile::TempDir,
    root: PathBuf,
    net: [u8; 2],
    hb_port: u16,
    api_port: u16,
    procs: Vec<Option<Child>>,
}

fn addr(net: [u8; 2], k: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, net[0], net[1], k as u8 + 1)
}

fn private(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

fn free_ports(net: [u8; 2]) -> (u16, u16) {
    for _ in 0..50 {
        let u = UdpSocket::bind((addr(net, 0), 0)).unwrap();
        let t = TcpListener::bind((addr(net, 0), 0)).unwrap();
        let (up, tp) = (u.local_addr().unwrap().port(), t.local_addr().unwrap().port());
        if (1..NODES).all(|k| UdpSocket::bind((addr(net, k), up)).is_ok() && TcpListener::bind((addr(net, k), tp)).is_ok()) {
            return (up, tp);
        }
    }
    panic!("no free ports");
}

impl Farm {
    fn new(variant: u8) -> Farm {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        // A /16 of 127/8 of its own (farmd_cluster.rs uses 100..=199).
        let net = [200 + (std::process::id() % 25) as u8 * 2 + variant, (std::process::id() / 100 % 250) as u8];
        let (hb_port, api_port) = free_ports(net);
        private(&root.join("secret"), "the-cluster-secret-0123456789abcdef");
        private(&root.join("token"), TOKEN);
        let f = Farm { _dir: dir, root, net, hb_port, api_port, procs: (0..NODES).map(|_| None).collect() };
        for k in 0..NODES {
            f.write_config(k, 1, "100ms");
        }
        f
    }

    fn config(&self, k: usize) -> PathBuf {
        self.root.join(format!("n{}.toml", k + 1))
    }

    /// Node k's file with its own weight `weight` and the heartbeat `pulse`.
    fn write_config(&self, k: usize, weight: u16, pulse: &str) {
        let nodes: String = (0..NODES)
            .map(|j| {
                let w = if j == k { weight } else { 1 };
                format!("[[node]]\nname = \"n{}\"\naddrs = [\"{}\"]\nweight = {w}\n\n", j + 1, addr(self.net, j))
            })
            .collect();
        let text = format!(
            r#"
[module]
name = "web"
cluster_id = 43
hash_seed = "0x5eed"
buckets = {BUCKETS}
secret_file = "{root}/secret"
log_dir = "{root}/{{node}}/log"
run_dir = "{root}/{{node}}/run"
table_file = "{root}/{{node}}/table"

{nodes}
[heartbeat]
port = {hb_port}
pulse = "{pulse}"
dead_after = "1s"

[[vip]]
addr = "198.18.0.100"
[[vip.rule]]
proto = "tcp"
ports = "80"

[dataplane]
enabled = false

[api]
listen = "{api}:{api_port}"
token_file = "{root}/token"
"#,
            root = self.root.display(),
            hb_port = self.hb_port,
            api = addr(self.net, k),
            api_port = self.api_port,
        );
        fs::write(self.config(k), text).unwrap();
    }

    fn start(&mut self, k: usize) {
        let name = format!("n{}", k + 1);
        let stderr = fs::File::options().create(true).append(true).open(self.root.join(format!("{name}.stderr"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_farmd"))
            .arg("--config")
            .arg(self.config(k))
            .args(["--node", &name, "--table-only", "--start", "--log", "info"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        self.procs[k] = Some(child);
    }

    fn pid(&self, k: usize) -> Pid {
        Pid::from_raw(self.procs[k].as_ref().unwrap().id() as i32)
    }

    fn farmctl(&self, k: usize, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_farmctl"))
            .arg("--config")
            .arg(self.config(k))
            .args(["--node", &format!("n{}", k + 1)])
            .args(args)
            .output()
            .unwrap()
    }

    fn table(&self, k: usize) -> Option<Vec<BucketEntry>> {
        TableReader::open(&self.root.join(format!("n{}", k + 1)).join("table")).ok().map(|r| r.peek().2)
    }

    fn api(&self, k: usize) -> ApiClient {
        ApiClient::new(&format!("http://{}:{}", addr(self.net, k), self.api_port), Some(TOKEN.into()), Duration::from_secs(2))
    }

    fn status(&self, k: usize) -> Status {
        self.api(k).status().unwrap_or_else(|e| panic!("n{} status: {e}\n{}", k + 1, self.logs()))
    }

    fn module_log(&self, k: usize) -> String {
        fs::read_to_string(self.root.join(format!("n{}", k + 1)).join("log").join(farm_control::logs::MODULE_LOG)).unwrap_or_default()
    }

    fn logs(&self) -> String {
        (0..NODES).map(|k| format!("--- n{} module log ---\n{}", k + 1, self.module_log(k))).collect()
    }

    /// Buckets owned per node when both tables agree on every bucket's owner and every bucket
    /// is accepted by exactly one node.
    #[allow(clippy::needless_range_loop)] // `b` indexes the second dimension of every table
    fn agreement(&self) -> Result<[usize; NODES], String> {
        let t: Vec<Vec<BucketEntry>> = (0..NODES).map(|k| self.table(k).ok_or("no table yet".to_string())).collect::<Result<_, _>>()?;
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
        while !self.module_log(k).contains(needle) {
            assert!(t0.elapsed() < within, "n{}'s module log has no {needle:?}\n{}", k + 1, self.logs());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The last reload report of node k with a sequence above `after`.
    fn wait_reload(&self, k: usize, after: u64) -> farm_control::api::ReloadReport {
        let t0 = Instant::now();
        loop {
            if let Some(r) = self.status(k).live.and_then(|l| l.last_reload).filter(|r| r.seq > after) {
                return r;
            }
            assert!(t0.elapsed() < Duration::from_secs(5), "n{}: no reload reported\n{}", k + 1, self.logs());
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Farm {
    fn drop(&mut self) {
        for c in self.procs.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
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

    let o = f.farmctl(0, &["weight", "3", "--reason", "bigger box"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("weight 3"), "{}", text(&o));
    let owned = f.wait_owned("n1 at weight 3 owns ~3/4", Duration::from_secs(10), |o| near(o[0], 0.75) && near(o[1], 0.25));
    eprintln!("weight 3: {owned:?}");
    f.wait_log(0, "weight 1 -> 3 (farmctl weight", Duration::from_secs(2));
    f.wait_log(0, "took ", Duration::from_secs(2));
    f.wait_log(1, "(n1 weight 1 -> 3)", Duration::from_secs(2));
    f.wait_log(1, "released ", Duration::from_secs(2));
    let l = f.status(0).live.unwrap();
    assert_eq!((l.weight, l.config_weight, l.runtime_weight), (3, 1, Some(3)));
    let o = f.farmctl(0, &["weight"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("weight 3 (set at runtime; the file says 1)"), "{}", text(&o));

    // Drain: every bucket goes to n2; n1 stays UP (in the cluster, in n2's view) but its
    // health URL says no.
    let o = f.farmctl(0, &["drain"]);
    assert!(o.status.success(), "{}", text(&o));
    f.wait_owned("n1 drained", Duration::from_secs(10), |o| o == [0, BUCKETS]);
    let o = f.farmctl(0, &["state"]);
    assert_eq!((o.status.code(), String::from_utf8_lossy(&o.stdout).trim()), (Some(2), "UP"), "{}", text(&o));
    let st = f.status(1);
    assert_eq!(st.view, vec![0, 1], "n1 stays in n2's view");
    assert_eq!(st.members[0].weight, 0);
    let health = f.api(0).get_text("/var/modules/web/ready.txt");
    assert!(matches!(health, Err(farm_control::api::ClientError::Http { status: 404, .. })), "{health:?}");
    f.wait_log(0, "weight 3 -> 0", Duration::from_secs(2));

    // Undrain: back to the file's weight, half each.
    let o = f.farmctl(0, &["undrain"]);
    assert!(o.status.success(), "{}", text(&o));
    f.wait_owned("n1 back at weight 1", Duration::from_secs(10), |o| near(o[0], 0.5) && near(o[1], 0.5));
    assert_eq!(f.api(0).get_text("/var/modules/web/ready.txt").unwrap(), "OK\n");
    let l = f.status(0).live.unwrap();
    assert_eq!((l.weight, l.runtime_weight), (1, None));
    // Out of range.
    let o = f.farmctl(0, &["weight", "1001"]);
    assert!(!o.status.success(), "{}", text(&o));
}

#[test]
fn sighup_and_reload_apply_live_keys_and_refuse_the_rest_changing_nothing() {
    let (_g, f) = started();

    // SIGHUP with n1's weight 3 in the file.
    f.write_config(0, 3, "100ms");
    kill(f.pid(0), Signal::SIGHUP).unwrap();
    let r = f.wait_reload(0, 0);
    assert_eq!(r.outcome, "applied", "{r:?}");
    assert_eq!(r.trigger, "SIGHUP");
    assert!(r.changes.iter().any(|c| c.contains("node[0].weight (n1 1 -> 3)")), "{r:?}");
    let owned = f.wait_owned("n1 at weight 3 after SIGHUP", Duration::from_secs(10), |o| near(o[0], 0.75));
    eprintln!("SIGHUP weight 3: {owned:?}");
    f.wait_log(0, "weight 1 -> 3 (reload (SIGHUP))", Duration::from_secs(2));

    // A broken file: nothing changes, the log says which file and key.
    let good = fs::read_to_string(f.config(0)).unwrap();
    fs::write(f.config(0), good.replace("weight = 3", "weight = \"heavy\"")).unwrap();
    kill(f.pid(0), Signal::SIGHUP).unwrap();
    let r = f.wait_reload(0, 1);
    assert_eq!(r.outcome, "invalid", "{r:?}");
    let file = f.config(0).display().to_string();
    f.wait_log(0, "nothing changed", Duration::from_secs(2));
    let log = f.module_log(0);
    let line = log.lines().rev().find(|l| l.contains("reload (SIGHUP): nothing changed")).unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains(&file) && line.contains("node[0].weight"), "{line}");
    assert_eq!(f.status(0).live.unwrap().weight, 3);
    assert!(near(f.agreement().unwrap()[0], 0.75));

    // A timer change with a weight change: refused as a whole, the timer named.
    f.write_config(0, 2, "50ms");
    let o = f.farmctl(0, &["reload"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("refused") && err.contains("heartbeat.pulse (100ms -> 50ms): cannot change live"), "{}", text(&o));
    assert!(!err.contains("node[0].weight"), "only refused keys are named: {err}");
    f.wait_log(0, "refused, nothing changed", Duration::from_secs(2));
    assert!(f.module_log(0).contains("heartbeat.pulse"));
    let l = f.status(0).live.unwrap();
    assert_eq!((l.weight, l.config_weight), (3, 3), "nothing changed");

    // A runtime weight survives a reload that leaves the file's weight alone, not one that
    // changes it.
    f.write_config(0, 3, "100ms");
    let o = f.farmctl(0, &["weight", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = f.farmctl(0, &["reload"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("nothing changed"), "{}", text(&o));
    assert_eq!(f.status(0).live.unwrap().weight, 1);
    f.write_config(0, 2, "100ms");
    let o = f.farmctl(0, &["reload"]);
    assert!(o.status.success(), "{}", text(&o));
    let l = f.status(0).live.unwrap();
    assert_eq!((l.weight, l.config_weight, l.runtime_weight), (2, 2, None));
    f.wait_owned("n1 at weight 2", Duration::from_secs(10), |o| near(o[0], 2.0 / 3.0));
}
