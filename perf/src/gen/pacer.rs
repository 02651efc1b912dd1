//! Transmit pacing on the TSC: a packet budget that grows at the target rate.

/// Largest deficit a paced sender makes up (packets).
pub const MAX_BACKLOG: u64 = 64;

/// Paces transmission at `rate` packets per second (or not at all).
#[derive(Debug, Clone)]
pub struct Pacer {
    hz: u128,
    rate: Option<u128>,
    start: u64,
    sent: u64,
}

impl Pacer {
    /// A pacer started at TSC `start`, with the TSC at `hz`; `rate` `None` is
    /// flat out.
    pub fn new(hz: u64, rate: Option<u64>, start: u64) -> Pacer {
        Pacer { hz: u128::from(hz.max(1)), rate: rate.map(u128::from), start, sent: 0 }
    }

    /// How many packets may go to the driver at TSC `now`, at most `max`.
    ///
    /// A sender that fell behind (descheduled, ring full) catches up by at most
    /// [`MAX_BACKLOG`] packets: the rest of the deficit is forgotten, so a stall
    /// lowers the achieved rate instead of causing a burst at line rate.
    #[inline]
    pub fn allowance(&mut self, now: u64, max: usize) -> usize {
        match self.rate {
            None => max,
            Some(r) => {
                let due = u128::from(now.saturating_sub(self.start)) * r / self.hz;
                let due = u64::try_from(due).unwrap_or(u64::MAX);
                let backlog = due.saturating_sub(self.sent);
                if backlog > MAX_BACKLOG {
                    self.sent = due - MAX_BACKLOG;
                }
                usize::try_from(backlog.min(MAX_BACKLOG)).unwrap_or(usize::MAX).min(max)
            }
        }
    }

    /// Accounts `n` packets sent.
    #[inline]
    pub fn sent(&mut self, n: usize) {
        self.sent += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_at_the_rate() {
        // 1 GHz TSC, 1 Mpps: one packet per 1000 cycles.
        let mut p = Pacer::new(1_000_000_000, Some(1_000_000), 5000);
        assert_eq!(p.allowance(5000, 32), 0);
        assert_eq!(p.allowance(5999, 32), 0);
        assert_eq!(p.allowance(6000, 32), 1);
        assert_eq!(p.allowance(5000 + 10_000, 32), 10);
        p.sent(10);
        assert_eq!(p.allowance(5000 + 10_000, 32), 0);
        // Far behind: bounded by max per call, and the deficit beyond
        // MAX_BACKLOG is forgotten.
        let late = 5000 + 1_000_000_000;
        assert_eq!(p.allowance(late, 32), 32);
        p.sent(32);
        assert_eq!(p.allowance(late, 1000), (MAX_BACKLOG - 32) as usize);
        p.sent((MAX_BACKLOG - 32) as usize);
        assert_eq!(p.allowance(late, 32), 0);
        let mut flat = Pacer::new(1_000_000_000, None, 0);
        assert_eq!(flat.allowance(0, 32), 32);
        // Simulated loop: the count sent over 1 s matches the rate.
        let mut p = Pacer::new(2_000_000_000, Some(3_000_000), 0);
        let mut now = 0u64;
        let mut total = 0;
        while now < 2_000_000_000 {
            let n = p.allowance(now, 32);
            p.sent(n);
            total += n;
            now += 777;
        }
        assert!(total.abs_diff(3_000_000) <= 32, "{total}");
    }
}
