//! The generator's report: JSON for the benchmark driver, one line for people.

use serde::{Deserialize, Serialize};

/// Latency percentiles in nanoseconds (transmit stamp to receive).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Packets measured.
    pub samples: u64,
    /// Minimum.
    pub min: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Maximum.
    pub max: u64,
}

impl Latency {
    /// Percentiles of a histogram of nanoseconds.
    pub fn from_histogram(h: &hdrhistogram::Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            samples: h.len(),
            min: h.min(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// Counters over the whole run (warm-up and drain included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Frames the driver accepted.
    pub tx: u64,
    /// Of those, frames the device under test should send back (owned bucket).
    pub expected: u64,
    /// Stamped frames received back.
    pub rx: u64,
    /// Frames received without a valid stamp (not ours).
    pub rx_foreign: u64,
    /// `expected - rx`: frames lost (negative: more came back than expected).
    pub lost: i64,
    /// Transmit attempts the driver refused in part (ring full; retried).
    pub tx_ring_full: u64,
    /// Bursts skipped because the mempool was empty.
    pub alloc_fail: u64,
}

/// Figures over the measurement window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Window length in seconds.
    pub seconds: f64,
    /// Frames sent in the window.
    pub tx: u64,
    /// Frames received in the window.
    pub rx: u64,
    /// Frames per second sent.
    pub tx_pps: f64,
    /// Frames per second received.
    pub rx_pps: f64,
    /// Gigabits per second sent (frames with FCS, without preamble/gap).
    pub tx_gbps: f64,
    /// Receive rate over the rate of frames the device should have sent back
    /// (1.0: nothing lost in the window).
    pub delivery: f64,
    /// `CLOCK_MONOTONIC` nanoseconds at the window's start (0: unknown), so that
    /// a harness sampling the device's own counters can take the same window.
    #[serde(default)]
    pub start_mono_ns: u64,
    /// `CLOCK_MONOTONIC` nanoseconds at the window's end (0: unknown).
    #[serde(default)]
    pub end_mono_ns: u64,
}

/// CPU time spent during the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUse {
    /// CPUs busy on the whole machine, on average.
    pub machine_busy_cpus: f64,
    /// CPUs used by the generator.
    pub generator_cpus: f64,
    /// CPUs used by the device under test (`--dut-pid`).
    pub dut_cpus: Option<f64>,
    /// TSC cycles the device under test spent per frame it sent back.
    pub dut_cycles_per_packet: Option<f64>,
}

/// The generator's whole report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Transmit port devargs.
    pub port: String,
    /// Receive port devargs (the transmit port if the same).
    pub rx_port: String,
    /// Queues per port.
    pub queues: u16,
    /// Target rate in packets per second (`None`: flat out).
    pub rate_pps: Option<u64>,
    /// Distinct frame templates.
    pub templates: usize,
    /// Mean frame size with FCS, over the templates.
    pub mean_frame_bytes: f64,
    /// Templates the device under test should accept, over all templates.
    pub accepted_share: f64,
    /// TSC frequency.
    pub tsc_hz: u64,
    /// The measurement window.
    pub window: Window,
    /// Whole-run counters.
    pub totals: Totals,
    /// Latency over the window (and the drain after it).
    pub latency_ns: Latency,
    /// CPU use in the window.
    pub cpu: CpuUse,
}

fn si(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.3} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0} ")
    }
}

fn us(ns: u64) -> String {
    format!("{:.1} us", ns as f64 / 1000.0)
}

impl Summary {
    /// One line for people.
    pub fn human(&self) -> String {
        let mut s = format!(
            "tx {}pps rx {}pps over {:.2} s ({:.0} B frames, {:.1}% accepted, delivery {:.4}); lost {}; latency p50 {} p99 {} p99.9 {} max {}",
            si(self.window.tx_pps),
            si(self.window.rx_pps),
            self.window.seconds,
            self.mean_frame_bytes,
            self.accepted_share * 100.0,
            self.window.delivery,
            self.totals.lost,
            us(self.latency_ns.p50),
            us(self.latency_ns.p99),
            us(self.latency_ns.p999),
            us(self.latency_ns.max),
        );
        if let Some(c) = self.cpu.dut_cycles_per_packet {
            s.push_str(&format!("; DUT {c:.0} cycles/packet"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_and_human_line() {
        let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let l = Latency::from_histogram(&h);
        assert_eq!(l.samples, 1000);
        assert!(l.p50.abs_diff(500_000) < 1000 && l.p99.abs_diff(990_000) < 2000);
        assert!(l.min <= l.p50 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max);
        let s = Summary {
            window: Window { seconds: 2.0, tx_pps: 9_870_000.0, rx_pps: 9_860_000.0, delivery: 0.999, ..Window::default() },
            latency_ns: l,
            cpu: CpuUse { dut_cycles_per_packet: Some(123.4), ..CpuUse::default() },
            ..Summary::default()
        };
        let line = s.human();
        assert!(line.contains("tx 9.870 Mpps") && line.contains("rx 9.860 Mpps"), "{line}");
        assert!(line.contains("p99 990.") && line.contains("123 cycles/packet"), "{line}");
        let back: Summary = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert_eq!(Latency::from_histogram(&hdrhistogram::Histogram::<u64>::new(3).unwrap()), Latency::default());
    }
}
