//! Farm mode at run time: each node's farmd API (health URL, status, commands), `farmctl`, and
//! the bucket assignment each node's data plane applies (read from its table file).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::process::Output;
use std::time::{Duration, Instant};

use farm_config::Proto;
use farm_table::{bucket_of, TableReader, NO_NODE};

use super::client::{http_request, spawn_in, Reply};
use super::cmd::run_status;
use super::error::LabError;
use super::farm::FARMCTL;
use super::Lab;

/// What a node's health URL (`/var/modules/<module>/ready.txt`) says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// 200: the node is UP.
    Up,
    /// Another status (404 when not UP).
    NotUp(u16),
    /// No answer (farmd not running).
    Down,
}

/// The assignment a node's data plane applies: the owner (node number, 1-based) of each bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// Table generation.
    pub generation: u64,
    /// Owner of each bucket (None: unowned).
    pub owners: Vec<Option<usize>>,
    /// Buckets with a handover in progress (a previous owner still drains).
    pub handovers: usize,
}

impl Assignment {
    /// Buckets per node.
    pub fn counts(&self) -> BTreeMap<usize, usize> {
        let mut m = BTreeMap::new();
        for o in self.owners.iter().flatten() {
            *m.entry(*o).or_default() += 1;
        }
        m
    }

    /// Whether every bucket is owned by one of `nodes` and no handover is in progress.
    pub fn settled_on(&self, nodes: &[usize]) -> bool {
        self.handovers == 0 && self.owners.iter().all(|o| o.is_some_and(|o| nodes.contains(&o)))
    }
}

impl Lab {
    fn farm_config(&self) -> Result<&farm_config::Config, LabError> {
        self.config.as_ref().ok_or_else(|| LabError::Invalid(format!("the lab runs in {} mode: no farm", self.mode)))
    }

    /// farmd's API address inside a node namespace (loopback, `[api] listen` port).
    pub fn api_addr(&self) -> Result<SocketAddrV4, LabError> {
        Ok(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.farm_config()?.api.listen.port()))
    }

    /// One request to node `i`'s farmd API (from inside its namespace).
    pub fn api(&self, i: usize, method: &str, path: &str, token: bool) -> Result<Reply, LabError> {
        let dst = self.api_addr()?;
        let headers = if token {
            let f = self.farm_files().token;
            let t = std::fs::read_to_string(&f).map_err(|e| LabError::io(&f, e))?;
            format!("Authorization: Bearer {}\r\n", t.trim())
        } else {
            String::new()
        };
        let (method, path) = (method.to_owned(), path.to_owned());
        let what = format!("{method} {path} on {}", self.node_ns(i));
        let h = spawn_in(&self.node_ns(i), move || {
            http_request(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0), dst, &method, &path, &headers, Duration::from_secs(2))
        })?;
        h.join()
            .map_err(|_| LabError::Check(format!("{what}: client thread panicked")))?
            .map_err(|source| LabError::Spawn { cmd: what, source })
    }

    /// The health URL of node `i`.
    pub fn health(&self, i: usize) -> Health {
        let Ok(cfg) = self.farm_config() else { return Health::Down };
        let path = format!("/var/modules/{}/ready.txt", cfg.module.name);
        match self.api(i, "GET", &path, false) {
            Ok(r) if r.status == 200 => Health::Up,
            Ok(r) => Health::NotUp(r.status),
            Err(_) => Health::Down,
        }
    }

    /// farmd's status of node `i` (`GET /api/v1/status`).
    pub fn status_json(&self, i: usize) -> Result<serde_json::Value, LabError> {
        let r = self.api(i, "GET", "/api/v1/status", false)?;
        serde_json::from_str(&r.body).map_err(|e| LabError::Check(format!("status of n{i}: {e}: {:?}", r.body)))
    }

    /// The lifecycle state of node `i` (`UP`, `WAIT`, `STOP`, ...), from its status.
    pub fn node_state(&self, i: usize) -> Result<String, LabError> {
        let v = self.status_json(i)?;
        v["state"].as_str().map(str::to_owned).ok_or_else(|| LabError::Check(format!("status of n{i} has no state: {v}")))
    }

    /// `POST /api/v1/<cmd>` (start, stop, restart) with the lab's token.
    pub fn api_command(&self, i: usize, cmd: &str) -> Result<(), LabError> {
        let r = self.api(i, "POST", &format!("/api/v1/{cmd}"), true)?;
        if (200..300).contains(&r.status) {
            Ok(())
        } else {
            Err(LabError::Check(format!("POST /api/v1/{cmd} on n{i}: HTTP {} {}", r.status, r.body.trim())))
        }
    }

    /// Runs `farmctl --config R/farm.toml --node n<i> <args>` in node `i`'s namespace.
    pub fn farmctl(&self, i: usize, args: &[&str]) -> Result<Output, LabError> {
        let bin = self.bin_dir.as_ref().ok_or_else(|| LabError::Invalid("no --bin-dir: not a farm lab".into()))?;
        let farmctl = bin.join(FARMCTL);
        let config = self.farm_files().config;
        let ns = self.node_ns(i);
        let node = self.layout.node_name(i);
        let mut full: Vec<&std::ffi::OsStr> = vec!["netns".as_ref(), "exec".as_ref(), ns.as_ref(), farmctl.as_ref()];
        full.extend(["--config".as_ref(), config.as_os_str(), "--node".as_ref(), node.as_ref()]);
        full.extend(args.iter().map(std::ffi::OsStr::new));
        run_status("ip", full)
    }

    /// Waits until `f` holds (polled every 20 ms); the time it took, or a timeout naming `what`.
    pub fn wait_for(&self, what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Result<Duration, LabError> {
        let start = Instant::now();
        loop {
            if f() {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                return Err(LabError::Timeout { what: what.to_owned(), after: timeout, detail: String::new() });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until each of `nodes` has health `want`; on timeout the error tells what each
    /// node that is not there says (see [`Lab::diagnose`]).
    pub fn wait_health(&self, nodes: &[usize], want: Health, timeout: Duration) -> Result<Duration, LabError> {
        let what = format!("health {want:?} on nodes {nodes:?}");
        self.wait_for(&what, timeout, || nodes.iter().all(|&i| self.health(i) == want)).map_err(|e| match e {
            LabError::Timeout { what, after, .. } => LabError::Timeout {
                what,
                after,
                detail: nodes.iter().filter(|&&i| self.health(i) != want).map(|&i| self.diagnose(i)).collect(),
            },
            e => e,
        })
    }

    /// What node `i` looks like, for failure messages: health, state, what holds it out, the
    /// end of farmd's output and of its module log.
    pub fn diagnose(&self, i: usize) -> String {
        let st = self.status_json(i).ok();
        let field = |k: &str| st.as_ref().map_or_else(|| "?".to_owned(), |v| v[k].to_string());
        let farmd_out = super::farm::daemon_out(&self.layout, i, super::farm::FARMD);
        let module_log = self.layout.node_dir(i).join("log").join("module.log");
        let app_log = self.layout.node_dir(i).join("log").join("application.log");
        let apache_log = self.httpd(i).error_log();
        let listeners = super::cmd::ns_run(&self.node_ns(i), "ss", ["-Hltnp", "sport = :80"]).unwrap_or_default();
        format!(
            "\n--- n{i}: health {:?}, state {}, waiting on {}, farmd running {}, Apache running {}\n\
             {}:\n{}\n{}:\n{}\n{}:\n{}\n{}:\n{}\nlisteners on port 80:\n{}",
            self.health(i),
            field("state"),
            field("waiting_on"),
            self.farmd_running(i),
            self.httpd(i).running(),
            farmd_out.display(),
            super::cmd::tail(&farmd_out, 15),
            module_log.display(),
            super::cmd::tail(&module_log, 15),
            app_log.display(),
            super::cmd::tail(&app_log, 5),
            apache_log.display(),
            super::cmd::tail(&apache_log, 5),
            listeners,
        )
    }

    /// The table node `i`'s data plane applies (its table file).
    pub fn assignment(&self, i: usize) -> Result<Assignment, LabError> {
        let cfg = self.farm_config()?;
        let path = std::path::PathBuf::from(format!("/dev/shm/{}{}", self.layout.shm_prefix(), self.layout.node_name(i)));
        let r = TableReader::open(&path).map_err(|e| LabError::Check(format!("table {}: {e}", path.display())))?;
        let (generation, _live, entries) = r.peek();
        let number = |id: u8| cfg.nodes.iter().position(|n| n.id.get() == id).map(|k| k + 1);
        Ok(Assignment {
            generation,
            owners: entries.iter().map(|e| if e.owner == NO_NODE { None } else { number(e.owner) }).collect(),
            handovers: entries.iter().filter(|e| e.prev_owner != NO_NODE).count(),
        })
    }

    /// Waits until the tables of `nodes` are equal, every bucket owned by one of them and no
    /// handover in progress; returns that assignment.
    pub fn wait_settled(&self, nodes: &[usize], timeout: Duration) -> Result<Assignment, LabError> {
        let mut last = None;
        let what = format!("tables of nodes {nodes:?} settled on them");
        let r = self.wait_for(&what, timeout, || {
            let tables: Vec<_> = nodes.iter().filter_map(|&i| self.assignment(i).ok()).collect();
            let ok = tables.len() == nodes.len()
                && tables.iter().all(|t| t.settled_on(nodes) && t.owners == tables[0].owners);
            last = tables.into_iter().next();
            ok
        });
        match (r, last) {
            (Ok(_), Some(a)) => Ok(a),
            (Err(LabError::Timeout { what, after, .. }), last) => Err(LabError::Timeout {
                what,
                after,
                detail: format!("last table seen: {:?}", last.map(|a| (a.counts(), a.handovers))),
            }),
            (Err(e), _) => Err(e),
            (Ok(_), None) => Err(LabError::Check("no table".into())),
        }
    }

    /// The bucket of a client of the VIP's TCP `port` (`src_port` counts under an on_port rule).
    pub fn bucket(&self, src: Ipv4Addr, port: u16, src_port: u16) -> Option<u32> {
        let cfg = self.config.as_ref()?;
        let v = cfg.vip(IpAddr::V4(self.vip()))?;
        let rule = v.rules.iter().find(|r| r.matches(Proto::Tcp, port))?;
        let p = (rule.affinity == farm_table::Affinity::OnPort).then_some(src_port);
        Some(bucket_of(&cfg.hash_key(), IpAddr::V4(src), p, cfg.buckets()))
    }

    /// The MAC of every node's uplink, for [`super::Capture::finish`].
    pub fn node_macs(&self) -> Vec<(usize, super::capture::Mac)> {
        self.layout
            .node_numbers()
            .map(|i| (i, super::capture::parse_mac(&self.layout.node_mac(i)).expect("lab MACs parse")))
            .collect()
    }

    /// The client's neighbour entry for the VIP (`ip neigh show`), e.g.
    /// `198.18.0.100 dev eth0 lladdr 5a:fe:c6:12:00:64 REACHABLE`.
    pub fn client_vip_neighbour(&self) -> Result<String, LabError> {
        let out = super::cmd::run("ip", ["-n", &self.client_ns(), "neigh", "show", &self.vip().to_string()])?;
        Ok(out.trim().to_owned())
    }

    /// Whether node `i`'s farmd is running (its pid file names a live process).
    pub fn farmd_running(&self, i: usize) -> bool {
        let pid = super::farm::daemon_pid_file(&self.layout, i, super::farm::FARMD);
        super::procs::read_pid(&pid).is_some_and(super::procs::alive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_counts_and_settles() {
        let a = Assignment { generation: 3, owners: vec![Some(1), Some(2), Some(1), None], handovers: 0 };
        assert_eq!(a.counts(), BTreeMap::from([(1, 2), (2, 1)]));
        assert!(!a.settled_on(&[1, 2]), "an unowned bucket");
        let b = Assignment { owners: vec![Some(1), Some(2)], ..a.clone() };
        assert!(b.settled_on(&[1, 2]));
        assert!(!b.settled_on(&[1]));
        assert!(!Assignment { handovers: 1, ..b }.settled_on(&[1, 2]));
    }
}
