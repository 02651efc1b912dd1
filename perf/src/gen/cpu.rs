//! CPU time from /proc: what a process (the device under test, or the
//! generator itself) and the whole machine spent, to turn packet rates into
//! cycles per packet.

use std::io;
use std::path::Path;

/// Nanoseconds on a CPU of every live thread of `pid` (sum of the first field
/// of `/proc/<pid>/task/*/schedstat`).
///
/// # Errors
/// The process does not exist, or /proc is not readable.
pub fn process_cpu_ns(pid: u32) -> io::Result<u64> {
    let mut total = 0u64;
    for t in std::fs::read_dir(Path::new("/proc").join(pid.to_string()).join("task"))? {
        let s = match std::fs::read_to_string(t?.path().join("schedstat")) {
            Ok(s) => s,
            // The thread exited between the listing and the read: NotFound, or ESRCH from the read.
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(nix::libc::ESRCH) => continue,
            Err(e) => return Err(e),
        };
        total += s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    Ok(total)
}

/// `CLOCK_MONOTONIC` now, in nanoseconds (0 if unreadable): the one clock
/// the generator, the harness and the data plane's liveness stamps share.
pub fn mono_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map_or(0, |t| u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec()).unwrap_or(0))
}

/// Busy and total time of every CPU together, in USER_HZ ticks (`/proc/stat`,
/// first line: busy = all but idle and iowait).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemCpu {
    /// Ticks not idle.
    pub busy: u64,
    /// All ticks.
    pub total: u64,
}

impl SystemCpu {
    /// Reads `/proc/stat` (the line `cpu` for all CPUs, or `cpuN`).
    ///
    /// # Errors
    /// /proc/stat unreadable or without that line.
    pub fn read(cpu: Option<u32>) -> io::Result<SystemCpu> {
        let stat = std::fs::read_to_string("/proc/stat")?;
        let name = cpu.map_or_else(|| "cpu".to_owned(), |c| format!("cpu{c}"));
        let line = stat
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name.as_str()))
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no {name} line in /proc/stat")))?;
        Ok(parse_stat_line(line))
    }

    /// Busy CPUs on average between `earlier` and `self` (e.g. 1.5 = one and
    /// a half CPUs busy), given the wall time elapsed.
    pub fn busy_cpus_since(&self, earlier: &SystemCpu, seconds: f64) -> f64 {
        if seconds <= 0.0 {
            return 0.0;
        }
        self.busy.saturating_sub(earlier.busy) as f64 / USER_HZ / seconds
    }
}

/// /proc/stat's tick rate: USER_HZ, 100 on every Linux ABI we run on.
pub const USER_HZ: f64 = 100.0;

fn parse_stat_line(line: &str) -> SystemCpu {
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal guest guest_nice; guest time is
    // already counted in user.
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    SystemCpu { busy: total - idle.min(total), total }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line() {
        let s = parse_stat_line("cpu  100 5 50 1000 20 3 7 2 0 0");
        assert_eq!(s, SystemCpu { busy: 167, total: 1187 });
        let later = SystemCpu { busy: 367, total: 1387 };
        assert!((later.busy_cpus_since(&s, 1.0) - 2.0).abs() < 1e-9);
    }

    #[test]
    fn own_process_and_machine() {
        // Spinning makes our CPU time grow (the machine is shared: wait for it, bounded).
        let before = process_cpu_ns(std::process::id()).unwrap();
        let t = std::time::Instant::now();
        let mut x = 0u64;
        loop {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            let now = process_cpu_ns(std::process::id()).unwrap();
            if now - before >= 30_000_000 {
                break;
            }
            assert!(t.elapsed() < std::time::Duration::from_secs(20), "CPU time stuck at +{} ns", now - before);
        }
        let all = SystemCpu::read(None).unwrap();
        assert!(all.total >= all.busy && all.busy > 0);
        assert!(SystemCpu::read(Some(0)).is_ok());
        assert!(process_cpu_ns(u32::MAX).is_err());
    }
}
