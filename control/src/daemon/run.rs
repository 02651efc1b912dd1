//! Start-up and the loop.

use std::fs;
use std::sync::Arc;
use std::time::{Duration, Instant};

use farm_table::{TableError, TableParams, TableWriter, MAX_NODES};
use mio::{Events, Poll, Token, Waker};
use tracing::{debug, warn};

use super::settings::{DataplaneMode, Prepared};
use super::supervisor::{self, DataplaneCommand, DpEvent, Supervisor};
use super::tap::{TapReport, TapSetup};
use super::wakeups::{Bridge, Signals};
use super::witness::Witness;
use super::{io_err, net, Counters, Daemon, DaemonError, PUBLISH_TIMEOUT};
use crate::api::{self, ApiServer, CommandRequest, Status};
use crate::checkers::dataplane::monotonic_ns;
use crate::checkers::{DataplaneView, SharedDataplane};
use crate::lifecycle::driver::{ModuleRuntime, Notice};
use crate::lifecycle::{Command, Input, State};
use crate::logs::{LogSettings, Logs};
use crate::membership::{self, Action, Event, Liveness};
use crate::proto::NodeState;
use crate::restart::RestartPolicy;

const SIGNALS: Token = Token(0);
const WAKER: Token = Token(1);
const HB_BASE: usize = 16;
/// Datagrams read per socket per iteration before the loop does other work.
const RX_BURST: usize = 256;

/// The membership's view of a lifecycle state.
pub(super) fn node_state(s: State) -> NodeState {
    match s {
        State::Stop => NodeState::Stop,
        State::Starting => NodeState::Starting,
        State::Wait => NodeState::Wait,
        State::Up => NodeState::Up,
        State::Stopping => NodeState::Stopping,
    }
}

impl Daemon {
    /// Binds, opens and starts everything of a prepared run.
    pub fn start(p: Prepared) -> Result<Daemon, DaemonError> {
        let cfg = &p.cfg;
        let poll = Poll::new().map_err(io_err("mio poll"))?;
        let sockets = net::bind_all(&p.local_addrs, poll.registry(), HB_BASE).map_err(io_err("heartbeats"))?;
        let mut peer_addrs = vec![Vec::new(); MAX_NODES];
        for (id, addrs) in &p.peer_addrs {
            peer_addrs[usize::from(*id)].clone_from(addrs);
        }
        let signals = Signals::install(poll.registry(), SIGNALS).map_err(io_err("signal handlers"))?;
        let logs = Logs::open(&cfg.module.log_dir, LogSettings::default())?;
        let dp_view = SharedDataplane::new();
        let view: Option<Arc<dyn DataplaneView>> = match p.dataplane {
            DataplaneMode::Supervised(_) => Some(Arc::new(dp_view.clone())),
            _ => None,
        };
        let rt = ModuleRuntime::from_config(cfg, &p.node, view, logs.clone())?;
        let status = api::shared_status(Status::from_config(cfg, &p.node));
        let (api_tx, api_rx) = crossbeam::channel::unbounded::<CommandRequest>();
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(io_err("mio waker"))?);
        let (admin_tx, admin_rx) = crossbeam::channel::bounded::<api::AdminRequest>(64);
        let wake = waker.clone();
        let admin = api::AdminSink { tx: admin_tx, wake: Arc::new(move || drop(wake.wake())) };
        let api = ApiServer::start_with_admin(p.api.clone(), status.clone(), api_tx, Some(admin))?;
        let (bridge, cmds) =
            Bridge::spawn(api_rx, rt.script_receiver().clone(), rt.observation_receiver().clone(), waker)
                .map_err(io_err("thread"))?;

        let mut sup = None;
        if let DataplaneMode::Supervised(program) = &p.dataplane {
            let run_dir = &cfg.module.run_dir;
            fs::create_dir_all(run_dir).map_err(io_err(format!("module.run_dir {}", run_dir.display())))?;
            let pid_file = run_dir.join("dataplane.pid");
            supervisor::stop_leftover(&pid_file, program);
            let config = std::path::absolute(&p.opts.config).unwrap_or_else(|_| p.opts.config.clone());
            let cmd = DataplaneCommand {
                program: program.clone(),
                args: vec![
                    "--config".into(),
                    config.into(),
                    "--node".into(),
                    p.node.name.as_str().into(),
                    "--table".into(),
                    cfg.module.table_file.clone().into(),
                ],
                pid_file: Some(pid_file),
            };
            sup = Some(Supervisor::new(cmd, RestartPolicy::from_config(&cfg.restart), cfg.dataplane.liveness_timeout));
        }
        let tap = p.tap.as_ref().map(|(ip, addrs)| {
            TapSetup::new(ip, cfg.dataplane.tap_name.as_str(), addrs.clone(), cfg.module.run_dir.join("tap-ip.err"))
        });
        let table = if p.writes_table() {
            let params = TableParams {
                n_buckets: cfg.buckets(),
                node_id: p.node.id.get(),
                n_lcores: cfg.dataplane.workers.max(1),
                hash_key: cfg.hash_key(),
            };
            Some(TableWriter::create(&cfg.module.table_file, &params)?)
        } else {
            None
        };
        let witness = match cfg.assignment.witness {
            Some(addr) if p.membership.witness => Some(Witness::spawn(addr, cfg.heartbeat.pulse).map_err(io_err("thread"))?),
            _ => None,
        };
        let inc_file = cfg.module.run_dir.join("incarnation");
        let _ = fs::create_dir_all(&cfg.module.run_dir);
        let (incarnation, recorded) = super::incarnation::pick(&inc_file);
        if let Err(e) = recorded {
            logs.warn(&format!(
                "cannot record the incarnation in {}: {e}; after a restart with the wall clock set back, peers would ignore this node",
                inc_file.display()
            ));
        }
        let t0 = Instant::now();
        let node = membership::Node::new(p.membership.clone(), &p.secret, incarnation, Duration::ZERO)?;
        let mode = match &p.dataplane {
            DataplaneMode::Supervised(prog) => format!("data plane {}", prog.display()),
            DataplaneMode::TableOnly => "no data plane (--table-only)".into(),
            DataplaneMode::None => "control-only (no data plane)".into(),
        };
        logs.info(&format!(
            "farmd {} started: module {}, node {} (id {}), incarnation {incarnation}, heartbeats on {}, {mode}, API on {}",
            env!("CARGO_PKG_VERSION"),
            cfg.module.name,
            p.node.name,
            p.node.id.get(),
            p.local_addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
            api.local_addr(),
        ));
        let mut d = Daemon {
            poll,
            sockets,
            rx_pending: false,
            peer_addrs,
            node,
            t0,
            rt,
            logs,
            dp_view,
            last_snap: None,
            table,
            pending_publish: None,
            lease: super::lease::Lease::new(cfg.heartbeat.lease(), p.membership.takeover),
            sup,
            tap,
            zero_flows_fed: false,
            status,
            api: Some(api),
            cmds,
            admin_rx,
            live: super::live::Live::default(),
            bridge: Some(bridge),
            signals,
            witness,
            joined: false,
            dp_held: false,
            leaving_since: None,
            released_at: None,
            counters: Counters::default(),
            term_signals: 0,
            next_housekeeping: t0,
            status_generation: u64::MAX,
            p,
        };
        let now = Instant::now();
        if let Some(s) = &mut d.sup {
            let ev = s.start(now, monotonic_ns());
            d.dp_events(ev, now);
        } else {
            d.feed_zero_flows(now);
        }
        if d.p.opts.start || d.p.cfg.module.autostart {
            let why = if d.p.opts.start { "--start" } else { "[module] autostart" };
            d.logs.info(&format!("starting the module ({why})"));
            let n = d.rt.feed(Input::Command(Command::Start), now);
            d.notices(n, now);
        }
        d.refresh_status(now);
        Ok(d)
    }

    pub(super) fn mnow(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.t0)
    }

    /// The loop; returns when farmd must exit.
    pub fn run(&mut self) -> Result<(), DaemonError> {
        let mut events = Events::with_capacity(64);
        let mut buf = vec![0u8; 4096];
        loop {
            let now = Instant::now();
            let timeout = if self.rx_pending { Duration::ZERO } else { self.next_wakeup(now) };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(DaemonError::Io { what: "mio poll".into(), source: e });
                }
            }
            let mut readable = false;
            let mut signalled = false;
            for ev in events.iter() {
                match ev.token() {
                    SIGNALS => signalled = true,
                    WAKER => {}
                    _ => readable = true,
                }
            }
            let now = Instant::now();
            if signalled {
                self.on_signals(now)?;
            }
            if readable || self.rx_pending {
                self.receive(now, &mut buf);
            }
            self.step(now);
            if self.finished() {
                break;
            }
        }
        self.finish();
        Ok(())
    }

    fn next_wakeup(&self, now: Instant) -> Duration {
        let deadline = (self.t0 + self.node.next_deadline()).min(self.next_housekeeping);
        deadline.saturating_duration_since(now).min(self.p.cfg.heartbeat.pulse)
    }

    fn on_signals(&mut self, now: Instant) -> Result<(), DaemonError> {
        let r = self.signals.take();
        // SIGCHLD (or any signal): look at the data plane now.
        self.next_housekeeping = now;
        if r.hup {
            if self.term_signals > 0 {
                self.logs.warn("SIGHUP ignored: farmd is exiting");
            } else {
                self.reload("SIGHUP", now);
            }
        }
        if r.term {
            self.term_signals += 1;
            if self.term_signals > 1 {
                self.logs.error("second termination signal: exiting without completing the graceful stop");
                return Err(DaemonError::Interrupted);
            }
            if self.rt.state() == State::Stop && self.rt.lifecycle().pending().is_none() {
                self.logs.info("termination signal: module stopped, exiting");
            } else {
                self.logs.info(&format!("termination signal: stopping the module ({}), then exiting", self.rt.state()));
                let n = self.rt.feed(Input::Command(Command::Stop), now);
                self.notices(n, now);
            }
        }
        Ok(())
    }

    fn receive(&mut self, now: Instant, buf: &mut [u8]) {
        let mnow = self.mnow(now);
        let mut more = false;
        let node = &mut self.node;
        let rx = &mut self.counters.rx;
        let peer_addrs = &self.peer_addrs;
        for s in &mut self.sockets {
            more |= s.recv_some(buf, RX_BURST, |bytes, from| {
                // Authenticated, it must also come from one of its sender's addresses (an
                // unconfigured sender is rejected as such by the membership).
                let source_ok =
                    |id: u8| peer_addrs.get(usize::from(id)).is_none_or(|a| a.is_empty() || net::source_matches(a, from));
                match node.on_datagram_from(mnow, bytes, source_ok) {
                    Ok(()) => *rx += 1,
                    Err(e) => debug!(%from, reason = e.name(), "heartbeat rejected: {e}"),
                }
            });
        }
        self.rx_pending = more;
    }

    fn step(&mut self, now: Instant) {
        while let Ok(req) = self.cmds.try_recv() {
            self.command(req, now);
        }
        while let Ok(req) = self.admin_rx.try_recv() {
            self.admin(req, now);
        }
        let n = self.rt.poll(now);
        self.notices(n, now);
        if let Some(b) = &self.bridge {
            b.ack();
        }
        if now >= self.next_housekeeping {
            self.next_housekeeping = now + self.p.cfg.heartbeat.pulse;
            self.housekeeping(now);
        }
        self.sync_state(now);
        let acts = self.node.tick(self.mnow(now));
        self.carry_out(acts, now);
        // After the membership's actions: a release decided in this iteration (or while
        // receiving) is published before the lifecycle hears that the node left.
        self.check_left(now);
        if self.status_generation != self.node.generation() {
            self.refresh_status(now);
        }
    }

    fn finished(&self) -> bool {
        self.term_signals > 0
            && self.rt.state() == State::Stop
            && self.rt.lifecycle().pending().is_none()
            && self.leaving_since.is_none()
    }

    fn finish(&mut self) {
        if let Some(t) = &self.table {
            // Nobody renews it any more: fence the data plane at once.
            t.set_lease(0);
        }
        if let Some(s) = &mut self.sup {
            s.shutdown();
            if let Some(t) = &self.table {
                t.reset_readers();
            }
        }
        self.bridge = None;
        if let Some(api) = self.api.take() {
            api.shutdown();
        }
        self.logs.info("farmd exited");
    }

    fn command(&mut self, req: CommandRequest, now: Instant) {
        let c = req.command;
        if self.term_signals > 0 && c != Command::Stop {
            self.logs.warn(&format!("admin {} ignored: farmd is exiting", c.as_str()));
            return;
        }
        if let Some(reason) = &req.reason {
            let from = req.from.map_or_else(|| "the Unix socket".to_string(), |a| a.to_string());
            self.logs.info(&format!("admin {} from {from}: {reason}", c.as_str()));
        }
        if matches!(c, Command::Start | Command::Restart) {
            if let Some(s) = &mut self.sup {
                s.reset_policy();
                if s.gave_up() {
                    let ev = s.start(now, monotonic_ns());
                    self.dp_events(ev, now);
                }
            }
        }
        let n = self.rt.command(c, now);
        self.notices(n, now);
    }

    /// Acts on the lifecycle's notices.
    pub(super) fn notices(&mut self, notices: Vec<Notice>, now: Instant) {
        if notices.is_empty() {
            return;
        }
        for n in notices {
            match n {
                Notice::Join => {
                    self.joined = true;
                    self.leaving_since = None;
                }
                Notice::Leave => {
                    self.joined = false;
                    self.leaving_since = Some(now);
                    self.released_at = None;
                }
                // check_left reports the held connections every iteration from now on.
                Notice::Draining => {}
                // The data plane runs in every state (see the module docs): nothing to do.
                Notice::StateChanged { .. } => {}
            }
        }
        self.sync_state(now);
        self.refresh_status(now);
    }

    /// Whether the data plane lets this node own buckets: ready for at least `dead_after`
    /// (it heard its peers) with `tap_addrs` on its TAP, or none is supervised.
    fn dataplane_settled(&self, now: Instant) -> bool {
        let tap_done = self.tap.as_ref().is_none_or(|t| !t.pending());
        match &self.sup {
            None => true,
            Some(s) => {
                tap_done && s.ready() && s.ready_since().is_some_and(|t| now.duration_since(t) >= self.p.cfg.heartbeat.dead_after)
            }
        }
    }

    /// The state this node advertises.
    pub(super) fn advertised(&self, now: Instant) -> NodeState {
        match self.rt.state() {
            State::Up if self.joined && self.dataplane_settled(now) => NodeState::Up,
            State::Up => NodeState::Wait,
            s => node_state(s),
        }
    }

    fn sync_state(&mut self, now: Instant) {
        let up = self.joined && self.rt.state() == State::Up;
        let held = up && !self.dataplane_settled(now);
        if held != self.dp_held {
            self.dp_held = held;
            if held {
                self.logs.warn("data plane not ready: the node stays out of the farm (WAIT)");
            } else if up {
                self.logs.info("data plane ready: the node joins the farm");
            }
        }
        let s = self.advertised(now);
        if s != self.node.state() {
            self.node.set_state(self.mnow(now), s);
        }
    }

    /// After a Leave: tells the lifecycle once the buckets are handed over (the membership
    /// released them when the peers were ready to take them) and the live peers' views exclude
    /// this node (or after `3 x dead_after`); the released buckets may still drain. During a
    /// graceful stop, reports the connections the node still holds.
    fn check_left(&mut self, now: Instant) {
        // The membership ends a drain a pulse after the data plane reports it empty: wait for
        // that too, so that the table left behind at exit names no drain.
        let (flows, buckets) = self.node.held_flows();
        if flows > 0 || self.node.draining_count() == 0 {
            let n = self.rt.drains(now, flows, buckets);
            self.notices(n, now);
        }
        let Some(since) = self.leaving_since else { return };
        if self.node.owned_count() > 0 || self.node.handing_over() || self.pending_publish.is_some() {
            self.released_at = None;
            return;
        }
        // The release is published; wait one pulse more before `stop_both`: the data plane
        // picks the table up at its next burst, and connections whose SYN it accepted just
        // before complete their handshake and leave the listen backlog (an application that
        // closes its listeners, as Apache's graceful-stop does, would reset them).
        let released = *self.released_at.get_or_insert(now);
        if now.duration_since(released) < self.p.cfg.heartbeat.pulse {
            return;
        }
        let me = 1u64 << self.node.id();
        let peers_moved = self.node.peers().iter().filter(|p| p.liveness == Liveness::Alive).all(|p| p.view & me == 0);
        if peers_moved || now.duration_since(since) >= self.p.cfg.heartbeat.dead_after * 3 {
            self.leaving_since = None;
            debug!(peers_moved, "left the farm");
            let n = self.rt.left(now);
            self.notices(n, now);
        }
    }

    fn feed_zero_flows(&mut self, now: Instant) {
        if !self.zero_flows_fed {
            let zeros = vec![0u32; self.p.cfg.buckets() as usize];
            self.node.set_flows(self.mnow(now), &zeros);
            self.zero_flows_fed = true;
        }
    }

    fn housekeeping(&mut self, now: Instant) {
        let mnow = self.mnow(now);
        if let (Some(sup), Some(table)) = (&mut self.sup, &self.table) {
            let snap = table.dataplane();
            self.dp_view.update(snap.clone());
            let ev = sup.poll(now, monotonic_ns(), Some(&snap));
            let ready = sup.ready();
            if ready {
                self.node.set_flows(mnow, &snap.flows_per_bucket);
                self.zero_flows_fed = false;
            }
            self.last_snap = Some(snap);
            self.dp_events(ev, now);
            if !ready {
                self.feed_zero_flows(now);
            }
        }
        self.configure_tap(now);
        if let Some(w) = &self.witness {
            let vote = w.last_vote().map(|t| t.saturating_duration_since(self.t0));
            self.node.set_witness(mnow, vote);
        }
        self.flush_publish(now);
        self.refresh_status(now);
    }

    pub(super) fn dp_events(&mut self, events: Vec<DpEvent>, now: Instant) {
        for e in events {
            match e {
                DpEvent::Started { pid } => self.logs.info(&format!("data plane started (pid {pid})")),
                DpEvent::Ready { pid } => {
                    self.logs.info(&format!("data plane ready (pid {pid})"));
                    if let Some(t) = &mut self.tap {
                        t.request();
                    }
                }
                DpEvent::Stopped => {
                    self.logs.info("data plane stopped");
                    if let Some(t) = &mut self.tap {
                        t.cancel();
                    }
                }
                DpEvent::Died { pid, reason, restarting } => {
                    if let Some(t) = &mut self.tap {
                        t.cancel();
                    }
                    let then = if restarting { "restarting it" } else { "not restarted" };
                    self.logs.error(&format!("data plane (pid {pid}) {reason}; {then}"));
                    if let Some(t) = &self.table {
                        t.reset_readers();
                    }
                    self.next_housekeeping = now;
                }
                DpEvent::GaveUp { count } => {
                    self.logs.error(&format!(
                        "data plane failed {count} times within {}: stopping the module",
                        humantime::format_duration(self.p.cfg.restart.loop_interval)
                    ));
                    if self.rt.state() != State::Stop {
                        let n = self.rt.feed(Input::Command(Command::Stop), now);
                        self.notices(n, now);
                    }
                }
            }
        }
    }

    /// Starts or reaps the run of `ip` that puts `tap_addrs` on the TAP; logs its outcome.
    fn configure_tap(&mut self, now: Instant) {
        let Some(t) = &mut self.tap else { return };
        let Some(report) = t.poll(now) else { return };
        let ifname = self.p.cfg.dataplane.tap_name.as_str();
        match report {
            TapReport::Configured { attempts } => {
                let after = if attempts > 1 { format!(" (after {attempts} attempts)") } else { String::new() };
                let addrs = self.p.tap.as_ref().map(|(_, a)| a.join(", ")).unwrap_or_default();
                self.logs.info(&format!("{ifname}: addresses {addrs} configured, link up{after}"));
            }
            TapReport::Failed { error, repeated: false } => {
                self.logs.warn(&format!("{ifname}: cannot configure the addresses: {error}; retrying every pulse"));
            }
            TapReport::Failed { error, repeated: true } => debug!(%error, "{ifname}: addresses still not configured"),
        }
    }

    /// Carries out the membership's actions: the table first, then the lease, then the
    /// heartbeats (so no heartbeat leaves before the lease that it vouches for is renewed, and
    /// no lease is renewed before the table it covers is published).
    fn carry_out(&mut self, actions: Vec<Action>, now: Instant) {
        let (sends, others): (Vec<Action>, Vec<Action>) = actions.into_iter().partition(|a| matches!(a, Action::Send(_)));
        for a in others {
            self.act(a, now);
        }
        self.renew_lease(now);
        for a in sends {
            self.act(a, now);
        }
    }

    /// Writes the lease into the table, unless it must run out (see [`super::lease`]).
    fn renew_lease(&mut self, now: Instant) {
        let Some(table) = &self.table else { return };
        let mnow = self.mnow(now);
        let r = self.lease.deadline(mnow, self.pending_publish.is_none());
        if let Ok(until) = r {
            table.set_lease(monotonic_ns().saturating_add((until - mnow).as_nanos() as u64));
        }
        if self.lease.note(r.is_ok()) {
            self.counters.lease_held_back += 1;
            let why = match r {
                Err(super::lease::HeldBack::Unpublished) => "the table it covers is not published yet",
                _ => "no majority acknowledges this node",
            };
            self.logs.warn(&format!("not renewing the data plane's lease ({why}): it accepts no new flow when the lease runs out"));
        }
    }

    /// Carries out one membership action.
    fn act(&mut self, a: Action, now: Instant) {
        match a {
            Action::Send(hb) => match self.node.encode(&hb) {
                Ok(bytes) => {
                    let addrs = &self.peer_addrs[usize::from(hb.dest)];
                    for (s, &to) in self.sockets.iter_mut().zip(addrs) {
                        s.send(&bytes, to, &mut self.counters.net);
                    }
                }
                Err(e) => warn!(dest = hb.dest, error = %e, "cannot encode a heartbeat"),
            },
            Action::Publish { entries, live } => {
                if self.table.is_some() {
                    self.pending_publish = Some((entries, live));
                    self.flush_publish(now);
                }
            }
            Action::Lease { until } => {
                debug!(?until, "membership lease");
                self.lease.on_quorum(until);
            }
            Action::Event(e) => self.log_event(e),
        }
    }

    fn name(&self, id: u8) -> String {
        self.p.cfg.node_by_id(id).map_or_else(|| format!("#{id}"), |n| n.name.to_string())
    }

    fn names(&self, bits: u64) -> String {
        let v: Vec<String> = (0..64u8).filter(|i| bits & (1 << i) != 0).map(|i| self.name(i)).collect();
        if v.is_empty() {
            "(empty)".into()
        } else {
            v.join(", ")
        }
    }

    fn log_event(&mut self, e: Event) {
        match e {
            Event::PeerAlive { id, incarnation } => {
                self.logs.info(&format!("node {} is alive (incarnation {incarnation})", self.name(id)))
            }
            Event::PeerRestarted { id, incarnation } => {
                self.logs.info(&format!("node {} restarted (incarnation {incarnation})", self.name(id)))
            }
            Event::PeerDead { id } => self.logs.warn(&format!("node {} is dead (no valid heartbeat)", self.name(id))),
            Event::ViewChanged { view } => {
                let weights = self.weight_changes(view);
                self.logs.info(&format!("view: {}{weights}", self.names(view)))
            }
            Event::Acquired { buckets } => self.log_moved(true, buckets),
            Event::Released { buckets } => self.log_moved(false, buckets),
            Event::Stalled { gap } => self.logs.warn(&format!(
                "farmd was stalled for {} ms: released every bucket, rejoining",
                gap.as_millis()
            )),
            Event::LeaseExpired => self.logs.warn("no majority acknowledged this node: released every bucket"),
            Event::HandedOver { buckets, waited, peers_ready: true } => self.logs.info(&format!(
                "leaving: handed {buckets} buckets over to the peers ({} ms after the leave, once they were ready to take them)",
                waited.as_millis()
            )),
            Event::HandedOver { buckets, waited, peers_ready: false } => self.logs.warn(&format!(
                "leaving: released {buckets} buckets after {} ms although not every peer reported the view without this node",
                waited.as_millis()
            )),
            Event::DrainExpired { buckets, flows } => self.logs.error(&format!(
                "[assignment] drain_timeout passed: gave up {flows} connections still held in {buckets} released buckets (their new owners will reset them)"
            )),
            Event::Left => debug!("left the farm"),
        }
    }

    /// Publishes the pending table; a reader stuck on an old generation means a wedged data
    /// plane: it is killed, the readers reset, and the table published.
    fn flush_publish(&mut self, now: Instant) {
        let Some(table) = &mut self.table else { return };
        let Some((entries, live)) = self.pending_publish.take() else { return };
        let mut events = Vec::new();
        let r = match table.publish(&entries, live, PUBLISH_TIMEOUT) {
            Err(TableError::ReaderStuck { lcore, acked, needed }) => {
                let reason = format!("lcore {lcore} stuck on table generation {acked} (needed {needed})");
                warn!(%reason, "table publication blocked: resetting the readers");
                if let Some(s) = &mut self.sup {
                    events = s.wedged(now, &reason);
                }
                table.reset_readers();
                table.publish(&entries, live, Duration::ZERO)
            }
            r => r,
        };
        match r {
            Ok(g) => debug!(generation = g, "table published"),
            Err(e) => {
                self.logs.error(&format!("cannot publish the table: {}", farm_config::error_line(&e)));
                self.pending_publish = Some((entries, live));
            }
        }
        self.dp_events(events, now);
    }
}
