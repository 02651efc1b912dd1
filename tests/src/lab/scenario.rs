//! Measured farm-mode scenarios shared by `farm-lab` (the demo) and the end-to-end tests: a
//! node crash (how long until its clients are served again) and its return (how long until it
//! is UP and owns its buckets again).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::client::{Attempt, Probe};
use super::error::LabError;
use super::ops::{Assignment, Health};
use super::Lab;

/// Period of the probes: a new connection from each probed client every 20 ms.
pub const PROBE_PERIOD: Duration = Duration::from_millis(20);
/// Time limit of one probe attempt (a SYN lost before the failover is retried by the kernel
/// only after 1 s: such an attempt says nothing about the failover).
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(900);

/// What a node crash cost.
#[derive(Clone, Debug)]
pub struct FailoverReport {
    /// The node killed.
    pub victim: usize,
    /// Whether its link was also pulled.
    pub link_down: bool,
    /// Per probed client (each in another bucket of the victim): time from the kill to its
    /// first success, and the node that served it.
    pub served: Vec<(Ipv4Addr, Option<Duration>, Option<usize>)>,
    /// Probe attempts in all.
    pub attempts: usize,
    /// Attempts that started after their client was served again and still failed (should be
    /// none: once taken over, a bucket stays served).
    pub failed_after: Vec<String>,
}

impl FailoverReport {
    /// The first client served again.
    pub fn first(&self) -> Option<Duration> {
        self.served.iter().filter_map(|(_, d, _)| *d).min()
    }

    /// Every probed client served again (None if one never was).
    pub fn all(&self) -> Option<Duration> {
        self.served.iter().map(|(_, d, _)| *d).collect::<Option<Vec<_>>>()?.into_iter().max()
    }
}

impl fmt::Display for FailoverReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Option<Duration>| d.map_or_else(|| "never".to_owned(), |d| format!("{} ms", d.as_millis()));
        write!(
            f,
            "n{} killed{}: first of {} probed clients served again after {}, all after {} ({} attempts, {} failed after takeover)",
            self.victim,
            if self.link_down { " and link down" } else { "" },
            self.served.len(),
            ms(self.first()),
            ms(self.all()),
            self.attempts,
            self.failed_after.len()
        )
    }
}

/// What a node's return cost.
#[derive(Clone, Debug)]
pub struct RejoinReport {
    /// The node.
    pub node: usize,
    /// From the restart to its health URL answering 200.
    pub up_after: Duration,
    /// From the restart until every node's table gives it its buckets again.
    pub settled_after: Duration,
    /// The assignment then.
    pub assignment: Assignment,
}

impl fmt::Display for RejoinReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "n{} restarted: UP after {} ms, owns its {} buckets again after {} ms",
            self.node,
            self.up_after.as_millis(),
            self.assignment.counts().get(&self.node).copied().unwrap_or(0),
            self.settled_after.as_millis()
        )
    }
}

impl Lab {
    /// Up to `count` client addresses whose TCP 80 bucket node `node` owns (per its table), each
    /// in a different bucket, spread over the client range.
    pub fn clients_of(&self, node: usize, count: usize) -> Result<Vec<Ipv4Addr>, LabError> {
        let a = self.assignment(node)?;
        let mut seen = std::collections::BTreeSet::new();
        let mine: Vec<Ipv4Addr> = self
            .client_addrs()
            .into_iter()
            .filter(|c| {
                self.bucket(*c, 80, 0)
                    .is_some_and(|b| a.owners.get(b as usize) == Some(&Some(node)) && seen.insert(b))
            })
            .collect();
        let step = (mine.len() / count.max(1)).max(1);
        Ok(mine.into_iter().step_by(step).take(count).collect())
    }

    /// Crashes node `victim` (SIGKILL to farmd, farm-dataplane and Apache; with `link_down`
    /// its link goes down too) while `probes` of its clients open a new connection every 20 ms;
    /// measures from the kill until each is served again (by another node), waiting at most
    /// `deadline`. The node stays dead.
    pub fn fail_node(&mut self, victim: usize, link_down: bool, probes: usize, deadline: Duration) -> Result<FailoverReport, LabError> {
        let clients = self.clients_of(victim, probes)?;
        if clients.is_empty() {
            return Err(LabError::Check(format!("n{victim} owns no client's bucket")));
        }
        let dst = SocketAddrV4::new(self.vip(), 80);
        let probe = Probe::start(&self.client_ns(), &clients, dst, PROBE_PERIOD, PROBE_TIMEOUT)?;
        // The probes work and reach the victim before it dies.
        let before = probe.wait_served(&clients, Instant::now(), None, Duration::from_secs(5));
        for (c, a) in clients.iter().zip(&before) {
            match a.as_ref().map(|a| &a.result) {
                Some(Ok(n)) if *n == victim => {}
                other => {
                    return Err(LabError::Check(format!(
                        "before the kill, client {c} of n{victim} got {other:?} from the VIP"
                    )))
                }
            }
        }
        // From here on (a few ms before SIGKILL reaches every process): a connection started
        // now may still be served by the victim before it dies; only another node's answer
        // counts as "served again".
        let t0 = Instant::now();
        self.kill_node(victim)?;
        if link_down {
            self.set_link(victim, false)?;
        }
        let firsts = probe.wait_served(&clients, t0, Some(victim), deadline);
        // Keep probing a little: once served again, a client must stay served.
        std::thread::sleep(Duration::from_millis(300));
        let attempts = probe.stop();
        let served: Vec<_> = clients
            .iter()
            .zip(&firsts)
            .map(|(c, a)| (*c, a.as_ref().map(|a| a.end - t0), a.as_ref().and_then(|a| a.result.clone().ok())))
            .collect();
        let failed_after = failed_after_takeover(&attempts, &firsts);
        Ok(FailoverReport { victim, link_down, served, attempts: attempts.len(), failed_after })
    }

    /// Brings node `node` back after [`Lab::fail_node`] (link up, farmd started again) and
    /// measures until it is UP and until the tables of all nodes give it its buckets again.
    pub fn rejoin_node(&mut self, node: usize, deadline: Duration) -> Result<RejoinReport, LabError> {
        let t0 = Instant::now();
        self.set_link(node, true)?;
        self.restart_node(node)?;
        self.wait_health(&[node], Health::Up, deadline)?;
        let up_after = t0.elapsed();
        let all: Vec<usize> = self.layout.node_numbers().collect();
        let assignment = self.wait_settled(&all, deadline.saturating_sub(t0.elapsed()))?;
        let settled_after = t0.elapsed();
        if !assignment.counts().contains_key(&node) {
            return Err(LabError::Check(format!("n{node} is UP but owns no bucket: {:?}", assignment.counts())));
        }
        Ok(RejoinReport { node, up_after, settled_after, assignment })
    }
}

/// Attempts that started after their client's first success (`firsts`) and failed.
fn failed_after_takeover(attempts: &[Attempt], firsts: &[Option<Attempt>]) -> Vec<String> {
    attempts
        .iter()
        .filter(|a| {
            a.result.is_err()
                && firsts.iter().flatten().any(|f| f.src == a.src && a.start > f.end)
        })
        .map(|a| format!("{}: {}", a.src, a.result.as_ref().err().map_or("", |e| e.as_str())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(src: u8, start: Instant, ms: u64, result: Result<usize, String>) -> Attempt {
        let s = start + Duration::from_millis(ms);
        Attempt { src: Ipv4Addr::new(198, 18, 1, src), start: s, end: s + Duration::from_millis(5), result }
    }

    #[test]
    fn failures_count_only_after_the_client_was_served_again() {
        let t = Instant::now();
        let first = at(1, t, 100, Ok(2));
        let attempts = vec![
            at(1, t, 50, Err("timed out".into())),
            first.clone(),
            at(1, t, 120, Err("reset".into())),
            at(2, t, 130, Err("timed out".into())),
        ];
        let f = failed_after_takeover(&attempts, &[Some(first), None]);
        assert_eq!(f, vec!["198.18.1.1: reset".to_owned()]);
    }

    #[test]
    fn report_figures() {
        let r = FailoverReport {
            victim: 2,
            link_down: true,
            served: vec![
                (Ipv4Addr::new(198, 18, 1, 1), Some(Duration::from_millis(1100)), Some(1)),
                (Ipv4Addr::new(198, 18, 1, 2), Some(Duration::from_millis(1180)), Some(3)),
            ],
            attempts: 130,
            failed_after: vec![],
        };
        assert_eq!(r.first(), Some(Duration::from_millis(1100)));
        assert_eq!(r.all(), Some(Duration::from_millis(1180)));
        let s = r.to_string();
        assert!(s.contains("after 1100 ms, all after 1180 ms"), "{s}");
        let never = FailoverReport { served: vec![(Ipv4Addr::new(198, 18, 1, 1), None, None)], ..r };
        assert_eq!(never.all(), None);
    }
}
