//! The witness vote of `takeover = "majority"` (`[assignment] witness`): a thread pings the
//! witness address every pulse and records when the newest answered ping was sent; the
//! membership counts the vote as of that moment (like a peer's acknowledgement of a heartbeat
//! sent then), so the lease it grants ends `dead_after - pulse` after the last ping that got
//! through — before the peer can take over.
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
    /// Microseconds since `origin` at which the newest answered ping was sent, +1 (0 = never).
    last_vote_us: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Witness {
    /// Starts pinging `addr` every `pulse`.
    pub fn spawn(addr: IpAddr, pulse: Duration) -> std::io::Result<Witness> {
        let timeout = pulse.max(Duration::from_millis(50));
        Witness::spawn_with(pulse, move || {
            crate::checkers::ping::ping(addr, timeout).map(|_| ()).map_err(|e| e.to_string())
        })
    }

    /// Starts calling `probe` every `pulse` (a ping in farmd, a stand-in in tests).
    fn spawn_with(
        pulse: Duration,
        mut probe: impl FnMut() -> Result<(), String> + Send + 'static,
    ) -> std::io::Result<Witness> {
        let origin = Instant::now();
        let last_vote_us = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (last_vote_us.clone(), stop.clone());
        let handle = std::thread::Builder::new().name("farmd-witness".into()).spawn(move || {
            let mut was_ok = None;
            while !s.load(Ordering::Relaxed) {
                let started = Instant::now();
                let ok = match probe() {
                    Ok(()) => {
                        let sent = started.duration_since(origin).as_micros() as u64 + 1;
                        l.store(sent, Ordering::Relaxed);
                        true
                    }
                    Err(e) => {
                        debug!(error = %e, "witness: no echo");
                        false
                    }
                };
                if was_ok != Some(ok) {
                    info!(reachable = ok, "witness");
                    was_ok = Some(ok);
                }
                if let Some(rest) = pulse.checked_sub(started.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
        })?;
        Ok(Witness { origin, last_vote_us, stop, handle: Some(handle) })
    }

    /// When the newest ping that the witness answered was sent (`None`: never answered).
    pub fn last_vote(&self) -> Option<Instant> {
        match self.last_vote_us.load(Ordering::Relaxed) {
            0 => None,
            t => Some(self.origin + Duration::from_micros(t - 1)),
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
    fn the_vote_is_dated_by_the_answered_probe() {
        let up = Arc::new(AtomicBool::new(true));
        let u = up.clone();
        let w = Witness::spawn_with(Duration::from_millis(20), move || {
            if u.load(Ordering::Relaxed) {
                Ok(())
            } else {
                Err("no echo".into())
            }
        })
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while w.last_vote().is_none() {
            assert!(Instant::now() < deadline, "the probe never ran");
            std::thread::sleep(Duration::from_millis(5));
        }
        up.store(false, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(60));
        let cut = Instant::now();
        let last = w.last_vote().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        // The vote keeps the date of the last answered probe: it ages, it is never renewed.
        assert_eq!(w.last_vote(), Some(last));
        assert!(last < cut);
        up.store(true, Ordering::Relaxed);
        while w.last_vote() == Some(last) {
            assert!(Instant::now() < deadline + Duration::from_secs(5), "no new vote");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(w.last_vote().unwrap() > last);
    }

    #[test]
    fn a_witness_that_never_answers_never_votes() {
        let w = Witness::spawn_with(Duration::from_millis(10), || Err("no echo".into())).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(w.last_vote(), None);
    }
}
