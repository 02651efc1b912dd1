//! Shared by the control crate's integration tests: farm.toml from a builder, private files
//! and scripts, free ports and addresses, and [`Farmd`], a real farmd process (with its API
//! and farmctl) that is killed when dropped.
#![allow(dead_code)] // each test binary uses its part

pub mod farm_toml;

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use farm_control::api::{ApiClient, Status};
use farm_table::{BucketEntry, TableReader};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub use farm_toml::{quoted, FarmToml};

/// The secret of the one-node farms.
pub const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// Writes `text` to `path` with mode 0600 (secrets, tokens).
pub fn private(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

/// The shell script `dir/name` (mode 0755) that runs `body`.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// A TCP port on 127.0.0.1 nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A UDP port free on every address of `udp` and a TCP port free on every address of `tcp`:
/// each is bound on its list's first address, then tried on the others.
pub fn free_ports(udp: &[Ipv4Addr], tcp: &[Ipv4Addr]) -> (u16, u16) {
    for _ in 0..50 {
        let u = UdpSocket::bind((udp[0], 0)).unwrap();
        let t = TcpListener::bind((tcp[0], 0)).unwrap();
        let (up, tp) = (u.local_addr().unwrap().port(), t.local_addr().unwrap().port());
        let ok = udp[1..].iter().all(|&a| UdpSocket::bind((a, up)).is_ok()) && tcp[1..].iter().all(|&a| TcpListener::bind((a, tp)).is_ok());
        if ok {
            return (up, tp);
        }
    }
    panic!("no free ports");
}

/// A /16 of 127/8 for this test process: `first`.(pid / 100 % 250). Each test file picks its
/// own `first` so that tests running at once on this machine do not collide.
pub fn net(first: u8) -> [u8; 2] {
    [first, (std::process::id() / 100 % 250) as u8]
}

pub fn ip(net: [u8; 2], host: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, net[0], net[1], host)
}

/// Runs `farmctl --config <config> --node <node> <args>`.
pub fn farmctl(config: &Path, node: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_farmctl")).arg("--config").arg(config).args(["--node", node]).args(args).output().unwrap()
}

/// A client of the API at `addr` (2 s timeout).
pub fn api_client(addr: SocketAddr, token: Option<&str>) -> ApiClient {
    ApiClient::new(&format!("http://{addr}"), token.map(str::to_string), Duration::from_secs(2))
}

/// One farmd of a test: where its file, API, logs and table are, and its process once started
/// (killed and reaped when dropped).
pub struct Farmd {
    child: Option<Child>,
    /// The directory of a one-node farm that this farmd owns ([`Farmd::one_node`]).
    _dir: Option<tempfile::TempDir>,
    pub root: PathBuf,
    pub config: PathBuf,
    pub node: String,
    pub api_addr: SocketAddr,
    token: Option<String>,
    stderr: PathBuf,
    /// Where its `log/`, `run/` and `table` are.
    files: PathBuf,
}

impl Farmd {
    /// Node `node` of a farm in `root` as [`FarmToml::node_files`] places it: its file
    /// `root/<node>.toml`, its files in `root/<node>/`, its stderr in `root/<node>.stderr`.
    pub fn new(root: &Path, node: &str, api_addr: SocketAddr, token: Option<&str>) -> Farmd {
        Farmd {
            child: None,
            _dir: None,
            root: root.to_path_buf(),
            config: root.join(format!("{node}.toml")),
            node: node.into(),
            api_addr,
            token: token.map(str::to_string),
            stderr: root.join(format!("{node}.stderr")),
            files: root.join(node),
        }
    }

    /// A one-node farm in a new temporary directory: node n1 on 127.0.0.1 with free heartbeat
    /// and API ports, [`SECRET`] in `secret` and `token` (if any) in `token` (both 0600), and
    /// `farm.toml`: cluster 7, 256 buckets, the node's files in the directory
    /// ([`FarmToml::files`]), the API's `listen` (and `token_file`); `toml` adds the rest
    /// (given the directory, to put scripts in). Not started.
    pub fn one_node(token: Option<&str>, toml: impl FnOnce(FarmToml, &Path) -> FarmToml) -> Farmd {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let (hb_port, api_port) = free_ports(&[Ipv4Addr::LOCALHOST], &[Ipv4Addr::LOCALHOST]);
        let api_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, api_port));
        private(&root.join("secret"), SECRET);
        let mut t = FarmToml::new(7).module("buckets", 256).files(&root).node("n1", "127.0.0.1").heartbeat("port", hb_port);
        t = t.api("listen", quoted(api_addr));
        if let Some(token) = token {
            private(&root.join("token"), token);
            t = t.api("token_file", quoted(root.join("token").display()));
        }
        let config = root.join("farm.toml");
        toml(t, &root).write(&config);
        Farmd {
            child: None,
            _dir: Some(dir),
            config,
            node: "n1".into(),
            api_addr,
            token: token.map(str::to_string),
            stderr: root.join("farmd.stderr"),
            files: root.clone(),
            root,
        }
    }

    /// Starts `farmd --config <file> --node <node> <args>`, its stderr appended to its file.
    pub fn start(&mut self, args: &[&str]) {
        assert!(self.child.is_none(), "{} already started", self.node);
        let stderr = fs::File::options().create(true).append(true).open(&self.stderr).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_farmd"))
            .arg("--config")
            .arg(&self.config)
            .args(["--node", &self.node])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// Runs `farmd --config <file> <args>` to the end (not the started process).
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_farmd")).arg("--config").arg(&self.config).args(args).output().unwrap()
    }

    /// Runs `farmctl --config <file> --node <node> <args>`.
    pub fn farmctl(&self, args: &[&str]) -> Output {
        farmctl(&self.config, &self.node, args)
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().expect("started").id() as i32)
    }

    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).unwrap();
    }

    /// `kill -9`, and reaped.
    pub fn kill(&mut self) {
        let mut c = self.child.take().expect("started");
        c.kill().unwrap();
        c.wait().unwrap();
    }

    /// SIGTERM, then waits for the process to exit.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        self.signal(Signal::SIGTERM);
        self.wait_exit(within)
    }

    /// Waits for the process to exit (after a signal, a command).
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.as_mut().expect("started").try_wait().unwrap() {
                self.child = None;
                return st;
            }
            assert!(t0.elapsed() < within, "{} did not exit within {within:?}\n{}", self.node, self.stderr());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Its API with its token.
    pub fn api(&self) -> ApiClient {
        api_client(self.api_addr, self.token.as_deref())
    }

    /// Its API with `token`.
    pub fn api_as(&self, token: Option<&str>) -> ApiClient {
        api_client(self.api_addr, token)
    }

    pub fn status(&self) -> Status {
        self.api().status().unwrap_or_else(|e| panic!("{} status: {e}\n{}", self.node, self.stderr()))
    }

    pub fn metrics(&self) -> String {
        self.api().metrics().unwrap_or_else(|e| panic!("{} metrics: {e}\n{}", self.node, self.stderr()))
    }

    /// Polls the status every 20 ms until `pred` holds (its API may not answer yet).
    pub fn wait_status(&self, within: Duration, pred: impl Fn(&Status) -> bool) -> Status {
        self.wait_status_or(within, pred, || self.stderr())
    }

    /// [`Farmd::wait_status`], with `diagnostics()` in the message if it fails.
    pub fn wait_status_or(&self, within: Duration, pred: impl Fn(&Status) -> bool, diagnostics: impl Fn() -> String) -> Status {
        let t0 = Instant::now();
        loop {
            match self.api().status() {
                Ok(st) if pred(&st) => return st,
                r => assert!(t0.elapsed() < within, "{}: status not reached after {within:?}: {r:?}\n{}", self.node, diagnostics()),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn module_log(&self) -> String {
        fs::read_to_string(self.files.join("log").join(farm_control::logs::MODULE_LOG)).unwrap_or_default()
    }

    /// Its files' directory: `log/`, `run/` and `table` are in it.
    pub fn files(&self) -> &Path {
        &self.files
    }

    pub fn table_path(&self) -> PathBuf {
        self.files.join("table")
    }

    /// The entries of its table (None if not there yet).
    pub fn table(&self) -> Option<Vec<BucketEntry>> {
        TableReader::open(&self.table_path()).ok().map(|r| r.peek().2)
    }
}

impl Drop for Farmd {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            // Not reaped yet: the pid is still this child's. A stopped farmd dies too.
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGCONT);
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
