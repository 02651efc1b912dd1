//! `GET /metrics`: the status in the Prometheus text exposition format (version 0.0.4).

use std::fmt::Write;

use super::Status;
use crate::lifecycle::State;

/// The content type of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Escapes a label value (`\`, `"` and newlines).
pub fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

struct Out {
    text: String,
    base: String,
}

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, extra: &[(&str, &str)], value: impl std::fmt::Display) {
        let mut labels = self.base.clone();
        for (k, v) in extra {
            let _ = write!(labels, ",{k}=\"{}\"", escape_label(v));
        }
        let _ = writeln!(self.text, "{name}{{{labels}}} {value}");
    }
    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// Renders the metrics of a status.
pub fn render(st: &Status) -> String {
    let mut o = Out {
        text: String::new(),
        base: format!("module=\"{}\",node=\"{}\"", escape_label(&st.module), escape_label(&st.node)),
    };
    o.one("farm_state", "gauge", "Module state: 0 STOP, 1 WAIT, 2 UP, 3 STARTING, 4 STOPPING.", st.state.metric());
    o.family("farm_state_info", "gauge", "1 for the current state.");
    for s in State::ALL {
        o.sample("farm_state_info", &[("state", s.as_str())], u8::from(s == st.state));
    }
    o.one("farm_buckets_owned", "gauge", "Buckets this node owns.", st.buckets_owned);
    o.one("farm_buckets_draining", "gauge", "Buckets released but still draining on this node.", st.buckets_draining);
    o.one("farm_drains_expired_total", "counter", "Drains ended by [assignment] drain_timeout with flows left (buckets).", st.drains_expired);
    o.one("farm_buckets_total", "gauge", "Buckets in the table.", st.buckets_total);
    let up = st.members.iter().filter(|m| m.live && m.state == Some(State::Up)).count();
    o.one("farm_members_up", "gauge", "Members live and UP in this node's view.", up);
    o.one("farm_members_live", "gauge", "Members heard from (this node included).", st.members.iter().filter(|m| m.live).count());
    o.one("farm_table_generation", "counter", "Generation of the table last published.", st.table_generation);
    o.one("farm_heartbeat_rx_total", "counter", "Valid heartbeats received.", st.heartbeat.rx);
    o.one("farm_heartbeat_tx_total", "counter", "Heartbeats sent.", st.heartbeat.tx);
    o.family("farm_heartbeat_rejected_total", "counter", "Heartbeats rejected, by reason.");
    for (reason, n) in &st.heartbeat.rejected {
        o.sample("farm_heartbeat_rejected_total", &[("reason", reason)], n);
    }
    o.one("farm_restarts_in_window", "gauge", "Automatic restarts within the restart policy's window.", st.restarts.count);
    o.family("farm_checker_healthy", "gauge", "1 when the checker's verdict is healthy.");
    for c in &st.checkers {
        o.sample("farm_checker_healthy", &[("checker", &c.name), ("kind", &c.kind)], u8::from(c.healthy));
    }
    o.family("farm_checker_failures_total", "counter", "Times the checker's verdict went to failed.");
    for c in &st.checkers {
        o.sample("farm_checker_failures_total", &[("checker", &c.name), ("kind", &c.kind)], c.failures);
    }
    if let Some(dp) = &st.dataplane {
        o.one("farm_dataplane_link_up", "gauge", "Uplink link state.", u8::from(dp.link_up));
        o.one("farm_dataplane_lcores_online", "gauge", "Data-plane lcores online.", dp.lcores_online);
        o.one(
            "farm_dataplane_lease_seconds",
            "gauge",
            "Time left on the data plane's lease (0: fenced, no new flows accepted).",
            dp.lease_left_ms as f64 / 1e3,
        );
        o.one("farm_lease_held_back_total", "counter", "Times farmd stopped renewing the data plane's lease.", dp.lease_held_back);
        if let Some(age) = dp.liveness_age_ms {
            o.one("farm_dataplane_liveness_age_seconds", "gauge", "Age of the data plane's liveness stamp.", age as f64 / 1e3);
        }
        o.family("farm_dataplane_packets_total", "counter", "Data-plane counters, summed over lcores.");
        let frames: Vec<&str> = farm_table::Counter::ALL.iter().filter(|c| c.counts_frames()).map(|c| c.name()).collect();
        for (name, n) in dp.counters.iter().filter(|(name, _)| frames.contains(&name.as_str())) {
            o.sample("farm_dataplane_packets_total", &[("counter", name)], n);
        }
        o.family(
            "farm_dataplane_busy_cycles_total",
            "counter",
            "TSC cycles a data-plane worker spent in polls that received frames (divide by farm_dataplane_tsc_hz for seconds).",
        );
        for (i, n) in dp.busy_cycles.iter().enumerate() {
            o.sample("farm_dataplane_busy_cycles_total", &[("worker", &i.to_string())], n);
        }
        o.family("farm_dataplane_busy_polls_total", "counter", "Polls of a data-plane worker that received frames.");
        for (i, n) in dp.busy_polls.iter().enumerate() {
            o.sample("farm_dataplane_busy_polls_total", &[("worker", &i.to_string())], n);
        }
        o.one("farm_dataplane_tsc_hz", "gauge", "TSC ticks per second of the data plane's workers (0: not reported).", dp.tsc_hz);
    }
    o.text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CheckerStatus, DataplaneSummary, MemberStatus};

    #[test]
    fn renders_families_and_labels() {
        let mut st = Status { module: "web".into(), node: "n1".into(), state: State::Up, buckets_owned: 2048, ..Default::default() };
        st.members = vec![
            MemberStatus { id: 0, name: "n1".into(), is_self: true, live: true, state: Some(State::Up), ..Default::default() },
            MemberStatus { id: 1, name: "n2".into(), live: true, state: Some(State::Wait), ..Default::default() },
        ];
        st.heartbeat.rejected.insert("bad_mac".into(), 3);
        st.checkers.push(CheckerStatus { name: "http".into(), kind: "http".into(), healthy: true, ..Default::default() });
        let dp = farm_table::DataplaneStatus {
            link_up: true,
            link_speed_mbps: 10_000,
            liveness_ns: 1_000,
            pid: 7,
            lcores: vec![farm_table::LcoreStatus {
                online: true,
                acked_generation: 3,
                stamp_ns: 1_000,
                counters: std::array::from_fn(|i| match i {
                    21 => 4_800_000_000,
                    22 => 1_000,
                    _ => 0,
                }),
            }],
            flows_per_bucket: vec![],
            lease_until_ns: 2_500_001_000,
            tsc_hz: 2_400_000_000,
        };
        st.dataplane = Some(DataplaneSummary::from_table(&dp, 2_000_001_000));
        let m = render(&st);
        assert!(m.contains("farm_state{module=\"web\",node=\"n1\"} 2\n"), "{m}");
        assert!(m.contains("farm_state_info{module=\"web\",node=\"n1\",state=\"UP\"} 1\n"));
        assert!(m.contains("farm_state_info{module=\"web\",node=\"n1\",state=\"WAIT\"} 0\n"));
        assert!(m.contains("farm_buckets_owned{module=\"web\",node=\"n1\"} 2048\n"));
        assert!(m.contains("farm_members_up{module=\"web\",node=\"n1\"} 1\n"));
        assert!(m.contains("farm_heartbeat_rejected_total{module=\"web\",node=\"n1\",reason=\"bad_mac\"} 3\n"));
        assert!(m.contains("farm_checker_healthy{module=\"web\",node=\"n1\",checker=\"http\",kind=\"http\"} 1\n"));
        assert!(m.contains("farm_dataplane_liveness_age_seconds{module=\"web\",node=\"n1\"} 2\n"), "{m}");
        assert!(m.contains("farm_dataplane_lease_seconds{module=\"web\",node=\"n1\"} 0.5\n"), "{m}");
        for c in farm_table::Counter::ALL.iter().filter(|c| c.counts_frames()) {
            let line = format!("farm_dataplane_packets_total{{module=\"web\",node=\"n1\",counter=\"{}\"}} 0\n", c.name());
            assert!(m.contains(&line), "missing {line}");
        }
        // Busy time per worker, in TSC cycles, with the TSC's frequency; not among the packets.
        assert!(m.contains("farm_dataplane_busy_cycles_total{module=\"web\",node=\"n1\",worker=\"0\"} 4800000000\n"), "{m}");
        assert!(m.contains("farm_dataplane_busy_polls_total{module=\"web\",node=\"n1\",worker=\"0\"} 1000\n"), "{m}");
        assert!(m.contains("farm_dataplane_tsc_hz{module=\"web\",node=\"n1\"} 2400000000\n"), "{m}");
        assert!(!m.contains("counter=\"busy_cycles\"") && !m.contains("counter=\"busy_polls\""), "{m}");
        // Every sample line belongs to a declared family.
        for line in m.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split('{').next().unwrap();
            assert!(m.contains(&format!("# TYPE {name} ")), "{name} undeclared");
        }
    }

    #[test]
    fn label_escaping() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
