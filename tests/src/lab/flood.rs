//! The API under a flood of idle connections, as a cloud load balancer's health checks see it:
//! [`Lab::api_flood`] keeps `conns` idle TCP connections open to a node's API port from the
//! client namespace (reopening every one the node closes, so the flood never thins out) while
//! it polls the node's health URL.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::time::{Duration, Instant};

use super::client::{connect, http_get, parallel, spawn_in};
use super::error::LabError;
use super::Lab;

/// What [`Lab::api_flood`] saw.
#[derive(Clone, Debug, Default)]
pub struct FloodReport {
    /// Idle connections kept open (asked).
    pub asked: usize,
    /// Connections opened in all (the first `asked`, then each reopened after the node closed
    /// one).
    pub opened: usize,
    /// Connection attempts that failed (refused, timed out).
    pub connect_failures: usize,
    /// Fewest and mean idle connections open, over the checks made while polling.
    pub open_min: usize,
    /// See `open_min`.
    pub open_mean: f64,
    /// Health URL polls.
    pub polls: usize,
    /// Polls answered 200 in time.
    pub answered: usize,
    /// What the other polls got.
    pub errors: BTreeMap<String, usize>,
}

impl FloodReport {
    /// Share of the polls answered (0..=1).
    pub fn answered_share(&self) -> f64 {
        if self.polls == 0 {
            0.0
        } else {
            self.answered as f64 / self.polls as f64
        }
    }
}

impl fmt::Display for FloodReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} idle connections kept open ({} opened in all, {} attempts failed; open while polling: min {}, mean {:.0}); health URL answered {} of {} polls ({:.1}%), other outcomes {:?}",
            self.asked,
            self.opened,
            self.connect_failures,
            self.open_min,
            self.open_mean,
            self.answered,
            self.polls,
            100.0 * self.answered_share(),
            self.errors
        )
    }
}

/// Whether the peer closed `s` (end of file or an error); an open idle connection would block.
fn closed(s: &TcpStream) -> bool {
    if s.set_nonblocking(true).is_err() {
        return true;
    }
    let mut b = [0u8; 1];
    !matches!(std::io::Read::read(&mut &*s, &mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

impl Lab {
    /// Keeps `conns` idle TCP connections open to node `i`'s API port (its address, from the
    /// client namespace; source addresses cycling over every client address but the first),
    /// reopening those the node closes every 200 ms, while it polls the node's health URL from
    /// the first client address every `every` for `poll_for` (1 s limit per poll).
    pub fn api_flood(&self, i: usize, conns: usize, poll_for: Duration, every: Duration) -> Result<FloodReport, LabError> {
        let api = SocketAddrV4::new(self.node_addr(i), self.api_addr()?.port());
        let module = self.config().map(|c| c.module.name.to_string()).unwrap_or_default();
        let path = format!("/var/modules/{module}/ready.txt");
        let addrs = self.client_addrs();
        let (poller, flooders) = addrs.split_first().ok_or_else(|| LabError::Invalid("no client address".into()))?;
        let srcs: Vec<Ipv4Addr> = flooders.iter().copied().cycle().take(conns).collect();
        let ns = self.client_ns();
        let open = |slots: &[usize]| {
            parallel(&ns, slots, 64, |k| connect(SocketAddrV4::new(srcs[*k], 0), api, Duration::from_secs(1)).ok())
        };
        let mut rep = FloodReport { asked: conns, open_min: usize::MAX, ..Default::default() };
        let all: Vec<usize> = (0..conns).collect();
        let mut streams: Vec<Option<TcpStream>> = open(&all)?;
        rep.opened = streams.iter().flatten().count();
        rep.connect_failures = conns - rep.opened;
        let poller = *poller;
        let polls = spawn_in(&ns, move || {
            let mut out = Vec::new();
            let end = Instant::now() + poll_for;
            let mut next = Instant::now();
            while Instant::now() < end {
                out.push(match http_get(SocketAddrV4::new(poller, 0), api, &path, Duration::from_secs(1)) {
                    Ok(r) if r.status == 200 => Ok(()),
                    Ok(r) => Err(format!("HTTP {}", r.status)),
                    Err(e) => Err(e.kind().to_string()),
                });
                next += every;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            out
        })?;
        let mut samples = Vec::new();
        while !polls.is_finished() {
            let gone: Vec<usize> = (0..conns).filter(|k| streams[*k].as_ref().is_none_or(closed)).collect();
            samples.push(conns - gone.len());
            for (k, s) in gone.iter().zip(open(&gone)?) {
                rep.opened += usize::from(s.is_some());
                rep.connect_failures += usize::from(s.is_none());
                streams[*k] = s;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let polls = polls.join().map_err(|_| LabError::Check("health poller panicked".into()))?;
        rep.open_min = samples.iter().copied().min().unwrap_or(0);
        rep.open_mean = samples.iter().sum::<usize>() as f64 / samples.len().max(1) as f64;
        rep.polls = polls.len();
        rep.answered = polls.iter().filter(|r| r.is_ok()).count();
        for e in polls.into_iter().filter_map(Result::err) {
            *rep.errors.entry(e).or_default() += 1;
        }
        Ok(rep)
    }
}
