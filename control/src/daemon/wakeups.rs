//! What wakes farmd's loop besides its sockets and its timer: signals (a self-pipe registered
//! with mio) and the crossbeam channels of the API, the scripts and the checkers (a bridge
//! thread that wakes the loop through a [`mio::Waker`]).

use std::io::{self, Read};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::channel::{self, Receiver, Select, Sender};
use mio::net::UnixStream;
use mio::{Interest, Registry, Token, Waker};
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
use signal_hook::SigId;

use crate::api::CommandRequest;

/// Signals farmd handles: SIGTERM and SIGINT (graceful stop, then exit), SIGHUP (logged and
/// ignored: no reload), SIGCHLD (a child exited: check the data plane at once).
#[derive(Debug)]
pub struct Signals {
    read: UnixStream,
    term: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
    ids: Vec<SigId>,
}

/// Signals received since the last [`Signals::take`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// SIGTERM or SIGINT.
    pub term: bool,
    /// SIGHUP.
    pub hup: bool,
}

impl Signals {
    /// Installs the handlers and registers the pipe under `token`.
    pub fn install(registry: &Registry, token: Token) -> io::Result<Signals> {
        let (read, write) = StdUnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let term = Arc::new(AtomicBool::new(false));
        let hup = Arc::new(AtomicBool::new(false));
        let mut ids = Vec::new();
        // Flags first: a handler sets its flag before it writes the pipe.
        for sig in [SIGTERM, SIGINT] {
            ids.push(signal_hook::flag::register(sig, term.clone())?);
        }
        ids.push(signal_hook::flag::register(SIGHUP, hup.clone())?);
        for sig in [SIGTERM, SIGINT, SIGHUP, SIGCHLD] {
            ids.push(signal_hook::low_level::pipe::register(sig, write.try_clone()?)?);
        }
        let mut read = UnixStream::from_std(read);
        registry.register(&mut read, token, Interest::READABLE)?;
        Ok(Signals { read, term, hup, ids })
    }

    /// Empties the pipe, then reads and clears the flags.
    pub fn take(&mut self) -> Received {
        let mut buf = [0u8; 64];
        loop {
            match self.read.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        Received { term: self.term.swap(false, Ordering::SeqCst), hup: self.hup.swap(false, Ordering::SeqCst) }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// Forwards API commands to the loop and wakes it when a script or checker result is ready.
#[derive(Debug)]
pub struct Bridge {
    stop: Arc<AtomicBool>,
    ack: Sender<()>,
    handle: Option<JoinHandle<()>>,
}

impl Bridge {
    /// Starts the thread. Commands arrive on the returned receiver; script and checker results
    /// stay in their channels (the loop's `ModuleRuntime::poll` takes them) and only wake the
    /// loop, which calls [`Bridge::ack`] after polling them.
    pub fn spawn<S: Send + 'static, O: Send + 'static>(
        api: Receiver<CommandRequest>,
        scripts: Receiver<S>,
        observations: Receiver<O>,
        waker: Arc<Waker>,
    ) -> io::Result<(Bridge, Receiver<CommandRequest>)> {
        let (cmd_tx, cmd_rx) = channel::unbounded();
        let (ack_tx, ack_rx) = channel::bounded::<()>(1);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = std::thread::Builder::new().name("farmd-wake".into()).spawn(move || {
            let mut api_open = true;
            while !stop2.load(Ordering::Relaxed) {
                let mut sel = Select::new();
                let i_api = api_open.then(|| sel.recv(&api));
                sel.recv(&scripts);
                sel.recv(&observations);
                let Ok(i) = sel.ready_timeout(Duration::from_millis(200)) else { continue };
                if Some(i) == i_api {
                    loop {
                        match api.try_recv() {
                            Ok(c) => {
                                if cmd_tx.send(c).is_err() {
                                    return;
                                }
                            }
                            Err(channel::TryRecvError::Empty) => break,
                            Err(channel::TryRecvError::Disconnected) => {
                                api_open = false;
                                break;
                            }
                        }
                    }
                    let _ = waker.wake();
                } else {
                    let _ = waker.wake();
                    // Wait until the loop has taken the result (or a while, if the channel was
                    // disconnected and stays "ready").
                    let _ = ack_rx.recv_timeout(Duration::from_millis(200));
                }
            }
        })?;
        Ok((Bridge { stop, ack: ack_tx, handle: Some(handle) }, cmd_rx))
    }

    /// The loop has polled the script and checker channels.
    pub fn ack(&self) {
        let _ = self.ack.try_send(());
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.ack.try_send(());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Command;
    use std::time::Instant;

    #[test]
    fn commands_are_forwarded_and_results_wake_the_loop() {
        let mut poll = mio::Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), Token(1)).unwrap());
        let (api_tx, api_rx) = channel::unbounded();
        let (s_tx, s_rx) = channel::unbounded::<u32>();
        let (_o_tx, o_rx) = channel::unbounded::<u32>();
        let (bridge, cmds) = Bridge::spawn(api_rx, s_rx.clone(), o_rx, waker).unwrap();
        let mut events = mio::Events::with_capacity(4);
        api_tx.send(CommandRequest { command: Command::Start, reason: None, from: None }).unwrap();
        poll.poll(&mut events, Some(Duration::from_secs(5))).unwrap();
        assert!(events.iter().any(|e| e.token() == Token(1)));
        assert_eq!(cmds.recv_timeout(Duration::from_secs(1)).unwrap().command, Command::Start);
        // A script result wakes the loop but stays in its channel.
        s_tx.send(7).unwrap();
        let t = Instant::now();
        poll.poll(&mut events, Some(Duration::from_secs(5))).unwrap();
        assert!(events.iter().any(|e| e.token() == Token(1)), "woken after {:?}", t.elapsed());
        assert_eq!(s_rx.try_recv(), Ok(7));
        bridge.ack();
        drop(bridge);
    }
}
