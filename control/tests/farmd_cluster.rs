//! Three real farmd processes on loopback addresses (no data plane, table files written with
//! `--table-only`), plus a fourth with the wrong secret: agreement on one table, failover after
//! `kill -9`, rejoin, graceful stop through the API, SIGTERM.

mod common;

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{free_ports, private, quoted, Farmd, FarmToml};
use farm_control::lifecycle::{Command as LcCommand, State};
use farm_table::{BucketEntry, TableReader};

const TOKEN: &str = "farmd-cluster-test-token";
const BUCKETS: usize = 256;
const NODES: usize = 4; // n1..n3 and the impostor n4 (wrong secret)

/// The tests of this file run one at a time: timings on a 2-core machine.
static SERIAL: Mutex<()> = Mutex::new(());

struct Cluster {
    /// n1..n4, each started with `--table-only` (killed before the directory goes).
    nodes: Vec<Farmd>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Four nodes' configurations with these heartbeat timers; `variant` picks distinct
    /// addresses for each test of this file.
    fn new(pulse_ms: u64, dead_after_ms: u64, variant: u8) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // A /16 of 127/8 of its own, so that other tests on this machine never collide.
        let net = common::net(100 + (std::process::id() % 50) as u8 * 2 + variant);
        let addrs: Vec<Ipv4Addr> = (0..NODES).map(|k| common::ip(net, k as u8 + 1)).collect();
        let (hb_port, api_port) = free_ports(&addrs, &addrs);
        private(&root.join("secret"), "the-cluster-secret-0123456789abcdef");
        private(&root.join("wrong-secret"), "an-impostor-secret-0123456789abcdef");
        private(&root.join("token"), TOKEN);
        let mut nodes = Vec::new();
        for (k, &addr) in addrs.iter().enumerate() {
            let secret = if k == 3 { "wrong-secret" } else { "secret" };
            let api = SocketAddr::from((addr, api_port));
            let t = FarmToml::new(42).module("hash_seed", quoted("0x5eed")).module("buckets", BUCKETS).node_files(root, secret);
            (0..NODES)
                .fold(t, |t, j| t.node(&format!("n{}", j + 1), addrs[j]))
                .heartbeat("port", hb_port)
                .heartbeat("pulse", quoted(format_args!("{pulse_ms}ms")))
                .heartbeat("dead_after", quoted(format_args!("{dead_after_ms}ms")))
                .api("listen", quoted(api))
                .api("token_file", quoted(root.join("token").display()))
                .write(&root.join(format!("n{}.toml", k + 1)));
            nodes.push(Farmd::new(root, &format!("n{}", k + 1), api, Some(TOKEN)));
        }
        Cluster { nodes, _dir: dir }
    }

    fn start(&mut self, k: usize) {
        self.nodes[k].start(&["--table-only", "--start", "--log", "info"]);
    }

    fn logs(&self) -> String {
        self.nodes.iter().map(|n| format!("--- {} ---\n{}", n.node, n.stderr())).collect()
    }

    /// Checks that the tables of `members` describe one assignment: every bucket accepted by
    /// exactly one member (the one whose own table names itself owner), and every member's
    /// table naming that same owner. Returns buckets owned per member.
    #[allow(clippy::needless_range_loop)] // `b` indexes the second dimension of every table
    fn agreement(&self, members: &[usize]) -> Result<Vec<usize>, String> {
        let tables: Vec<Vec<BucketEntry>> = members
            .iter()
            .map(|&k| self.nodes[k].table().ok_or_else(|| format!("n{}: no table yet", k + 1)))
            .collect::<Result<_, _>>()?;
        let mut owned = vec![0; members.len()];
        for b in 0..BUCKETS {
            let claimants: Vec<usize> =
                members.iter().enumerate().filter(|&(i, &k)| tables[i][b].owner == k as u8).map(|(i, _)| i).collect();
            let [i] = claimants[..] else {
                return Err(format!("bucket {b}: accepted by {} members", claimants.len()));
            };
            owned[i] += 1;
            let owner = members[i] as u8;
            if let Some(j) = (0..members.len()).find(|&j| tables[j][b].owner != owner) {
                return Err(format!("bucket {b}: n{} says owner {}, n{} owns it", members[j] + 1, tables[j][b].owner, owner + 1));
            }
        }
        Ok(owned)
    }

    /// Waits until [`Cluster::agreement`] holds with every member owning some buckets.
    fn wait_agreement(&self, members: &[usize], within: Duration) -> (Vec<usize>, Duration) {
        let t0 = Instant::now();
        loop {
            // A member that owns nothing yet (e.g. still STARTING) is not done joining.
            match self.agreement(members).and_then(|o| if o.contains(&0) { Err(format!("owned {o:?}")) } else { Ok(o) }) {
                Ok(owned) => return (owned, t0.elapsed()),
                Err(e) if t0.elapsed() > within => panic!("no agreement among {members:?} after {within:?}: {e}\n{}", self.logs()),
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
}

/// Watches invariant I1 on the real processes: no bucket accepted by two live members at
/// once. The tables of distinct processes cannot be read atomically, so a violation is
/// reported only when it is sandwiched: the tables read in order, then in reverse order, show
/// the same two members accepting the same bucket both times (ownership does not flip-flop
/// within microseconds, so both then held it over a common interval).
struct I1Monitor {
    live: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    violations: Arc<Mutex<Vec<String>>>,
    rounds: Arc<std::sync::atomic::AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl I1Monitor {
    fn start(paths: Vec<PathBuf>) -> I1Monitor {
        let live = Arc::new(AtomicU8::new(0b111));
        let stop = Arc::new(AtomicBool::new(false));
        let violations = Arc::new(Mutex::new(Vec::new()));
        let rounds = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (l, s, v, r) = (live.clone(), stop.clone(), violations.clone(), rounds.clone());
        let handle = std::thread::spawn(move || {
            let read = |k: usize| TableReader::open(&paths[k]).ok().map(|t| t.peek().2);
            while !s.load(Ordering::Relaxed) {
                let mask = l.load(Ordering::SeqCst);
                let members: Vec<usize> = (0..paths.len()).filter(|k| mask & (1 << k) != 0).collect();
                let first: Vec<Option<Vec<BucketEntry>>> = members.iter().map(|&k| read(k)).collect();
                let mut second: Vec<Option<Vec<BucketEntry>>> = members.iter().rev().map(|&k| read(k)).collect();
                second.reverse();
                // A member killed meanwhile is not a violation.
                if l.load(Ordering::SeqCst) == mask {
                    for b in 0..BUCKETS {
                        let holders = |snap: &[Option<Vec<BucketEntry>>]| -> Vec<usize> {
                            members
                                .iter()
                                .zip(snap)
                                .filter(|(&k, t)| t.as_ref().is_some_and(|t| t[b].owner == k as u8))
                                .map(|(&k, _)| k)
                                .collect()
                        };
                        let (h1, h2) = (holders(&first), holders(&second));
                        if h1.len() > 1 && h1 == h2 {
                            v.lock().unwrap().push(format!("bucket {b} accepted by {h1:?}"));
                        }
                    }
                }
                r.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        I1Monitor { live, stop, violations, rounds, handle: Some(handle) }
    }

    fn set_live(&self, k: usize, live: bool) {
        if live {
            self.live.fetch_or(1 << k, Ordering::SeqCst);
        } else {
            self.live.fetch_and(!(1 << k), Ordering::SeqCst);
        }
    }

    fn finish(mut self) -> (Vec<String>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap();
        let v = self.violations.lock().unwrap().clone();
        (v, self.rounds.load(Ordering::Relaxed))
    }
}

fn assert_spread(owned: &[usize], n: usize) {
    let share = BUCKETS / n;
    for &o in owned {
        assert!(o >= share * 6 / 10 && o <= share * 14 / 10, "unbalanced: {owned:?}");
    }
}

#[test]
fn three_nodes_agree_fail_over_rejoin_and_leave() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut c = Cluster::new(100, 1000, 0);
    for k in 0..NODES {
        c.start(k);
    }
    let all = [0, 1, 2];
    let i1 = I1Monitor::start(all.iter().map(|&k| c.nodes[k].table_path()).collect());

    // 1. One table, spread over the three (n4 never counts).
    let (owned, t) = c.wait_agreement(&all, Duration::from_secs(15));
    eprintln!("agreement of 3 nodes {t:?} after the tables appeared: {owned:?}");
    assert_spread(&owned, 3);
    let st = c.nodes[0].status();
    assert_eq!(st.state, State::Up);
    assert_eq!(st.view, vec![0, 1, 2]);
    assert_eq!(st.buckets_owned as usize, owned[0]);
    assert!(st.table_generation > 1);
    let n4 = st.members.iter().find(|m| m.name == "n4").unwrap();
    assert!(!n4.live && n4.state.is_none(), "{n4:?}");

    // 2. The impostor's heartbeats are rejected and counted, everywhere, and it never gets in.
    std::thread::sleep(Duration::from_millis(300));
    for k in all {
        let st = c.nodes[k].status();
        let bad_mac = st.heartbeat.rejected.get("bad_mac").copied().unwrap_or(0);
        assert!(bad_mac > 0, "n{}: {:?}", k + 1, st.heartbeat);
        assert!(st.heartbeat.rx > 0 && st.heartbeat.tx > 0, "{:?}", st.heartbeat);
        assert!(!st.view.contains(&3));
        let metrics = c.nodes[k].metrics();
        let line = metrics.lines().find(|l| l.starts_with("farm_heartbeat_rejected_total") && l.contains("reason=\"bad_mac\"")).unwrap();
        let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(n > 0, "{line}");
    }
    // The impostor, for its part, hears nobody.
    assert_eq!(c.nodes[3].status().heartbeat.rx, 0);

    // 3. kill -9 n2: n1 and n3 take its buckets.
    let t0 = Instant::now();
    i1.set_live(1, false);
    c.nodes[1].kill();
    // Its table file outlives it with its last ownership: not a live member's.
    fs::remove_file(c.nodes[1].table_path()).unwrap();
    let (owned, _) = c.wait_agreement(&[0, 2], Duration::from_secs(5));
    let failover = t0.elapsed();
    eprintln!("FAILOVER after kill -9 (pulse 100 ms, dead_after 1 s): {:.0} ms; owned {owned:?}", failover.as_secs_f64() * 1e3);
    assert!(failover < Duration::from_secs(5), "{failover:?}");
    assert!(failover >= Duration::from_millis(500), "a peer is dead only after dead_after: {failover:?}");
    assert_spread(&owned, 2);
    let st = c.nodes[0].status();
    assert_eq!(st.view, vec![0, 2]);
    assert!(!st.members[1].live);

    // 4. n2 comes back and gets about a third again.
    let t0 = Instant::now();
    c.start(1);
    i1.set_live(1, true);
    let (owned, _) = c.wait_agreement(&all, Duration::from_secs(15));
    eprintln!("REJOIN of n2 (process start to agreement): {:.0} ms; owned {owned:?}", t0.elapsed().as_secs_f64() * 1e3);
    assert_spread(&owned, 3);

    // 5. farmctl stop on n3 (the API): it leaves, n1 and n2 serve everything, n3 is STOP.
    let t0 = Instant::now();
    c.nodes[2].api().command(LcCommand::Stop, Some("test")).unwrap();
    let (owned, _) = c.wait_agreement(&[0, 1], Duration::from_secs(10));
    eprintln!("graceful leave of n3: {:.0} ms; owned {owned:?}", t0.elapsed().as_secs_f64() * 1e3);
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.nodes[2].status().state != State::Stop {
        assert!(Instant::now() < deadline, "n3 not STOP: {:?}", c.nodes[2].status().state);
        std::thread::sleep(Duration::from_millis(20));
    }
    let t3 = c.nodes[2].table().unwrap();
    assert!(t3.iter().all(|e| e.owner != 2), "a stopped node accepts nothing");
    let st = c.nodes[2].status();
    assert_eq!(st.buckets_owned, 0);
    assert!(st.members[2].live, "a stopped node still heartbeats");

    // 6. SIGTERM to n1: graceful stop then exit 0; n2 ends up with everything.
    let st = c.nodes[0].terminate(Duration::from_secs(10));
    assert_eq!(st.code(), Some(0), "{}", c.nodes[0].stderr());
    let t1 = c.nodes[0].table().unwrap();
    assert!(t1.iter().all(|e| e.owner != 0 && e.prev_owner != 0), "n1 released and drained before it exited");
    let (owned, _) = c.wait_agreement(&[1], Duration::from_secs(5));
    assert_eq!(owned, vec![BUCKETS]);
    let log = c.nodes[0].module_log();
    assert!(log.contains("termination signal"), "{log}");

    let (violations, rounds) = i1.finish();
    eprintln!("I1 monitor: {rounds} rounds, {} violations", violations.len());
    assert!(rounds > 100, "the monitor ran");
    assert!(violations.is_empty(), "I1 violated: {:?}", &violations[..violations.len().min(10)]);
}

#[test]
fn fast_timers_fail_over_within_a_few_pulses() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // pulse 20 ms, dead after 200 ms (the design's fast profile: failover <= 300 ms).
    let mut c = Cluster::new(20, 200, 1);
    let all = [0, 1, 2];
    for k in all {
        c.start(k);
    }
    c.wait_agreement(&all, Duration::from_secs(15));
    let mut samples = Vec::new();
    for round in 0..5 {
        let victim = round % 3;
        let survivors: Vec<usize> = all.iter().copied().filter(|&k| k != victim).collect();
        let t0 = Instant::now();
        c.nodes[victim].kill();
        let (owned, _) = c.wait_agreement(&survivors, Duration::from_secs(5));
        samples.push(t0.elapsed());
        assert_spread(&owned, 2);
        fs::remove_file(c.nodes[victim].table_path()).unwrap();
        c.start(victim);
        c.wait_agreement(&all, Duration::from_secs(10));
    }
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    eprintln!("FAILOVER with pulse 20 ms, dead_after 200 ms, 5 kills: min {:.0} ms, median {:.0} ms, max {:.0} ms", ms[0], ms[2], ms[4]);
    assert!(ms[4] < 2000.0, "{ms:?}");
}
