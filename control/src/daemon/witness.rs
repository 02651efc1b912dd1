//! The witness vote of `takeover = "majority"` (`[assignment] witness`): a thread pings the
//! witness address every pulse; the vote counts while the last echo is younger than
//! `dead_after`.
//!
//! A ping target grants its "vote" to every node that reaches it: two nodes that cannot hear
//! each other but both reach the witness both own (as SafeKit's and most two-node clusters'
//! ping tie-breakers do). It protects against the isolated node (lost its LAN), not against a
//! partition between the nodes themselves.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{debug, info};

/// The witness thread.
#[derive(Debug)]
pub struct Witness {
    origin: Instant,
    /// Milliseconds since `origin` of the last echo reply, +1 (0 = never).
    last_ok_ms: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Witness {
    /// Starts pinging `addr` every `pulse`.
    pub fn spawn(addr: IpAddr, pulse: Duration) -> std::io::Result<Witness> {
        let origin = Instant::now();
        let last_ok_ms = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (last_ok_ms.clone(), stop.clone());
        let handle = std::thread::Builder::new().name("farmd-witness".into()).spawn(move || {
            let mut was_ok = None;
            while !s.load(Ordering::Relaxed) {
                let started = Instant::now();
                let ok = match crate::checkers::ping::ping(addr, pulse.max(Duration::from_millis(50))) {
                    Ok(_) => {
                        l.store(origin.elapsed().as_millis() as u64 + 1, Ordering::Relaxed);
                        true
                    }
                    Err(e) => {
                        debug!(%addr, error = %e, "witness: no echo");
                        false
                    }
                };
                if was_ok != Some(ok) {
                    info!(%addr, reachable = ok, "witness");
                    was_ok = Some(ok);
                }
                if let Some(rest) = pulse.checked_sub(started.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
        })?;
        Ok(Witness { origin, last_ok_ms, stop, handle: Some(handle) })
    }

    /// Whether the witness answered within `max_age`.
    pub fn granted(&self, max_age: Duration) -> bool {
        match self.last_ok_ms.load(Ordering::Relaxed) {
            0 => false,
            t => (self.origin.elapsed().as_millis() as u64 + 1).saturating_sub(t) <= max_age.as_millis() as u64,
        }
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vote_follows_the_echo_replies() {
        let w = Witness::spawn("127.0.0.1".parse().unwrap(), Duration::from_millis(20)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !w.granted(Duration::from_millis(200)) {
            assert!(Instant::now() < deadline, "loopback never answered");
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(w);
        // TEST-NET-3, never routed: no vote.
        let w = Witness::spawn("203.0.113.1".parse().unwrap(), Duration::from_millis(20)).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(!w.granted(Duration::from_secs(1)));
    }
}
