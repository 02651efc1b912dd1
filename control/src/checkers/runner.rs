//! One thread per checker: wait `start_delay`, then run the probe every `interval` and send
//! each result on a channel. Stopping is immediate for idle threads; a thread busy in a probe
//! exits when the probe returns (probes are bounded by their timeout), and its late result
//! carries an old epoch that [`super::Health`] ignores.

use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Instant, SystemTime};

use crossbeam::channel::{self, RecvTimeoutError, Sender};

use super::{CheckerSpec, ProbeResult};

/// One probe result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// The epoch of the threads that produced it (see [`super::Health::reset`]).
    pub epoch: u64,
    /// Index of the checker in the slice given to [`CheckerThreads::spawn`].
    pub index: usize,
    /// The result.
    pub result: ProbeResult,
    /// When the probe finished.
    pub at: Instant,
    /// The same, as wall-clock time (for the status API).
    pub wall: SystemTime,
}

/// The running checker threads of one epoch.
#[derive(Debug)]
pub struct CheckerThreads {
    stop: Option<Sender<()>>,
    handles: Vec<JoinHandle<()>>,
    epoch: u64,
}

impl CheckerThreads {
    /// Starts one thread per checker.
    pub fn spawn(specs: Arc<[CheckerSpec]>, epoch: u64, tx: Sender<Observation>) -> std::io::Result<CheckerThreads> {
        let (stop_tx, stop_rx) = channel::bounded::<()>(0);
        let mut handles = Vec::with_capacity(specs.len());
        for index in 0..specs.len() {
            let (specs, tx, stop_rx) = (specs.clone(), tx.clone(), stop_rx.clone());
            let h = thread::Builder::new().name(format!("farm-chk-{}", specs[index].name)).spawn(move || {
                let spec = &specs[index];
                // Every wait doubles as the stop signal: the sender is dropped to stop.
                let keep_going = |d| matches!(stop_rx.recv_timeout(d), Err(RecvTimeoutError::Timeout));
                if !spec.start_delay.is_zero() && !keep_going(spec.start_delay) {
                    return;
                }
                loop {
                    let started = Instant::now();
                    let result = spec.probe.run(spec.timeout);
                    tracing::trace!(checker = %spec.name, ok = result.ok, detail = %result.detail, "probe");
                    let obs = Observation { epoch, index, result, at: Instant::now(), wall: SystemTime::now() };
                    if tx.send(obs).is_err() {
                        return;
                    }
                    let next = started + spec.interval;
                    if !keep_going(next.saturating_duration_since(Instant::now())) {
                        return;
                    }
                }
            })?;
            handles.push(h);
        }
        Ok(CheckerThreads { stop: Some(stop_tx), handles, epoch })
    }

    /// The epoch these threads report.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Tells every thread to stop, without waiting for probes in progress.
    pub fn stop(mut self) {
        self.stop.take();
    }

    /// Stops and waits for every thread (each at most one probe timeout).
    pub fn stop_and_join(mut self) {
        self.stop.take();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for CheckerThreads {
    fn drop(&mut self) {
        self.stop.take();
    }
}
