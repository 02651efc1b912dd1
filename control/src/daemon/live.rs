//! Live changes while farmd runs: this node's weight (`farmctl weight`), drain and undrain,
//! and configuration reloads (`farmctl reload`, SIGHUP; what may change is decided in
//! [`super::reload`]). Every change is logged with the buckets it moves.
//!
//! The weight rule: a weight set by `farmctl weight` or `drain` stays in force until `undrain`
//! (back to the file's weight), until a reload finds this node's `[[node]] weight` changed in
//! the file (the file wins and the runtime weight is dropped), or until farmd restarts (it
//! starts with the file's weight).

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use farm_table::MAX_NODES;

use super::reload::{self, Verdict};
use super::settings::DataplaneMode;
use super::Daemon;
use crate::api::{AdminOp, AdminRequest, LiveStatus, ReloadReport, Status};
use crate::checkers::{CheckerSpec, DataplaneView, ProbeContext};
use crate::scripts::ScriptSettings;

/// The live-change state of the daemon.
#[derive(Debug)]
pub(super) struct Live {
    /// The weight set by `farmctl weight` or `drain` (`None`: the file's).
    runtime_weight: Option<u16>,
    /// Reloads so far.
    reloads: u64,
    last_report: Option<ReloadReport>,
    /// Each member's weight as last logged in a view, by id.
    weights: Vec<Option<u16>>,
}

impl Default for Live {
    fn default() -> Live {
        Live { runtime_weight: None, reloads: 0, last_report: None, weights: vec![None; MAX_NODES] }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Daemon {
    /// A live change from the API.
    pub(super) fn admin(&mut self, req: AdminRequest, now: Instant) {
        let from = req.from.map_or_else(|| "the Unix socket".to_string(), |a| a.to_string());
        let because = req.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        let what = match req.op {
            AdminOp::Weight(w) => format!("weight {w}"),
            op => op.as_str().to_string(),
        };
        if self.term_signals > 0 {
            self.logs.warn(&format!("admin {what} from {from} ignored: farmd is exiting"));
            if req.op == AdminOp::Reload {
                self.report(format!("farmctl reload from {from}"), "refused", Vec::new(), vec!["farmd is exiting".into()]);
            }
            return;
        }
        self.logs.info(&format!("admin {what} from {from}{because}"));
        match req.op {
            AdminOp::Weight(w) => {
                self.live.runtime_weight = Some(w);
                self.apply_weight(&format!("farmctl weight from {from}"), now);
            }
            AdminOp::Drain => {
                self.live.runtime_weight = Some(0);
                self.apply_weight(&format!("farmctl drain from {from}"), now);
            }
            AdminOp::Undrain => {
                self.live.runtime_weight = None;
                self.apply_weight(&format!("farmctl undrain from {from}: back to the file's weight"), now);
            }
            AdminOp::Reload => self.reload(&format!("farmctl reload from {from}"), now),
        }
        self.refresh_status(now);
    }

    /// Gives the membership the weight in force (runtime, else the file's) and logs it.
    fn apply_weight(&mut self, why: &str, now: Instant) {
        let w = self.live.runtime_weight.unwrap_or(self.p.node.weight.get());
        let old = self.node.weight();
        if w == old {
            self.logs.info(&format!("weight stays {w} ({why})"));
            return;
        }
        let owned = self.node.owned_count();
        self.node.set_weight(self.mnow(now), w);
        let then = if w == 0 {
            "drained: new connections go to the other nodes, the connections held here finish here; the node stays UP"
        } else {
            "buckets move as the peers agree"
        };
        self.logs.info(&format!(
            "weight {old} -> {w} ({why}): owned {owned} of {} buckets; {then}",
            self.p.cfg.buckets()
        ));
    }

    /// Re-reads the configuration file: applies it when everything that changed can change
    /// live, else changes nothing and says why.
    pub(super) fn reload(&mut self, trigger: &str, now: Instant) {
        let file = self.p.cfg.origin.clone();
        match reload::check(&self.p) {
            Verdict::Invalid(msg) => {
                self.logs.error(&format!("reload ({trigger}): nothing changed: {file} is not valid: {msg}"));
                self.report(trigger.into(), "invalid", Vec::new(), msg.lines().map(str::to_string).collect());
            }
            Verdict::Refused(d) => {
                let refused: Vec<String> = d.refused().map(ToString::to_string).collect();
                let keys: Vec<&str> = d.refused().map(|c| c.key.as_str()).collect();
                self.logs.error(&format!(
                    "reload ({trigger}): refused, nothing changed: {file} changes keys that cannot change live: {}",
                    keys.join(", ")
                ));
                for r in &refused {
                    self.logs.error(&format!("reload: {r}"));
                }
                self.report(trigger.into(), "refused", Vec::new(), refused);
            }
            Verdict::Unchanged => {
                self.logs.info(&format!("reload ({trigger}): {file} changes nothing"));
                self.report(trigger.into(), "unchanged", Vec::new(), Vec::new());
            }
            Verdict::Apply(new, d) => {
                let checkers = if d.get("checker").is_some() {
                    let view: Option<Arc<dyn DataplaneView>> = match new.dataplane {
                        DataplaneMode::Supervised(_) => Some(Arc::new(self.dp_view.clone())),
                        _ => None,
                    };
                    let scripts = ScriptSettings::from_config(&new.cfg, &new.node);
                    match CheckerSpec::all_from_config(&new.cfg, &ProbeContext::from_config(&new.cfg, &scripts, view)) {
                        Ok(c) => Some(c),
                        Err(e) => {
                            let msg = farm_config::error_line(&e);
                            self.logs.error(&format!("reload ({trigger}): nothing changed: {msg}"));
                            self.report(trigger.into(), "invalid", Vec::new(), vec![msg]);
                            return;
                        }
                    }
                } else {
                    None
                };
                let changes: Vec<String> = d.changes.iter().map(ToString::to_string).collect();
                self.logs.info(&format!("reload ({trigger}): applying {file}: {} change(s)", changes.len()));
                for c in &changes {
                    self.logs.info(&format!("reload: {c}"));
                }
                let (old_w, new_w) = (self.p.node.weight.get(), new.node.weight.get());
                let (_, runtime) = reload::weight_after_reload(old_w, new_w, self.live.runtime_weight);
                if let (Some(r), None) = (self.live.runtime_weight, runtime) {
                    self.logs.info(&format!("reload: the file changed this node's weight: the runtime weight {r} is dropped"));
                }
                self.live.runtime_weight = runtime;
                self.p = *new;
                self.apply_weight(&format!("reload ({trigger})"), now);
                if let Some(specs) = checkers {
                    let n = self.rt.replace_checkers(specs, now);
                    self.notices(n, now);
                }
                self.report(trigger.into(), "applied", changes, Vec::new());
            }
        }
        self.refresh_status(now);
    }

    fn report(&mut self, trigger: String, outcome: &str, changes: Vec<String>, problems: Vec<String>) {
        self.live.reloads += 1;
        self.live.last_report =
            Some(ReloadReport { seq: self.live.reloads, unix_ms: unix_ms(), trigger, outcome: outcome.into(), changes, problems });
    }

    /// The weights of the members of `view` that changed since the last view logged (or
    /// differ from the file on first sight), e.g. ` (n2 weight 1 -> 3)`; empty when none did.
    pub(super) fn weight_changes(&mut self, view: u64) -> String {
        let me = self.node.id();
        let peers = self.node.peers();
        let mut out = Vec::new();
        for id in (0..MAX_NODES.min(64) as u8).filter(|i| view & (1u64 << i) != 0) {
            let w = if id == me { Some(self.node.weight()) } else { peers.iter().find(|p| p.id == id).map(|p| p.weight) };
            let Some(w) = w else { continue };
            let before = self.live.weights[usize::from(id)].replace(w);
            let name = self.p.cfg.node_by_id(id).map_or_else(|| format!("#{id}"), |n| n.name.to_string());
            match before {
                Some(b) if b != w => out.push(format!("{name} weight {b} -> {w}")),
                None if self.p.cfg.node_by_id(id).is_some_and(|n| n.weight.get() != w) => out.push(format!("{name} weight {w}")),
                _ => {}
            }
        }
        if out.is_empty() {
            String::new()
        } else {
            format!(" ({})", out.join(", "))
        }
    }

    /// Buckets moved by a view change, for the module log.
    pub(super) fn log_moved(&self, took: bool, buckets: u32) {
        let verb = if took { "took" } else { "released" };
        let after = if took { "" } else { "; their held connections finish here" };
        self.logs.info(&format!(
            "{verb} {buckets} buckets (owns {} of {}{after})",
            self.node.owned_count(),
            self.p.cfg.buckets()
        ));
    }

    /// The live part of the status (and this node's weight among the members).
    pub(super) fn fill_live(&self, st: &mut Status) {
        let weight = self.node.weight();
        let me = self.node.id();
        if let Some(m) = st.members.iter_mut().find(|m| m.id == me) {
            m.weight = weight;
        }
        st.live = Some(LiveStatus {
            weight,
            config_weight: self.p.node.weight.get(),
            runtime_weight: self.live.runtime_weight,
            last_reload: self.live.last_report.clone(),
        });
    }
}
