//! Test harness: one EAL per test process, unique names for per-test devices.
//!
//! Enabled by the `test-support` feature (and in this crate's unit tests). The
//! EAL is initialised on first use with
//! `--no-huge --no-shconf --no-pci --no-telemetry -m 256
//! --file-prefix=farm-test-<pid> --lcores=0@(cpus),1@(cpus) --log-level=*:error`
//! (lcore 1 is a worker for [`Eal::launch`](crate::Eal::launch) tests; both float
//! over the CPUs the process may use). Set `FARM_DPDK_LOG` (e.g. `*:debug`) to
//! change the log level. (`--no-shconf` stands in for `--in-memory`, which DPDK
//! 22.11 refuses together with `--no-huge`.)
//!
//! Tests create their own devices with [`Port::attach`](crate::Port::attach) and
//! [`unique`] names, so they can run in parallel; dropping the port removes the
//! device again. A process has at most 32 ports (`RTE_MAX_ETHPORTS`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use crate::{Eal, Mempool, Port, PortConfig, PortError};

static EAL: OnceLock<Eal> = OnceLock::new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The process's shared test EAL (initialised on first call).
///
/// # Panics
/// If `rte_eal_init` fails.
pub fn eal() -> &'static Eal {
    EAL.get_or_init(|| {
        let cpus = allowed_cpus();
        let level = std::env::var("FARM_DPDK_LOG").ok();
        let eal = Eal::builder()
            .program("farm-test")
            .log_level(Some(level.as_deref().unwrap_or("*:error")))
            .no_huge()
            .no_shconf()
            .no_pci()
            .no_telemetry()
            .memory_mb(256)
            .file_prefix(&format!("farm-test-{}", std::process::id()))
            .lcore_map(&format!("0@({cpus}),1@({cpus})"))
            .init()
            .expect("test EAL init");
        // The static EAL is never dropped: remove its (empty) runtime dir at exit.
        if let Some(dir) = crate::eal::runtime_dir() {
            let _ = RUNTIME_DIR.set(dir);
            // SAFETY: registers a plain extern "C" fn without arguments.
            unsafe { libc::atexit(remove_runtime_dir) };
        }
        eal
    })
}

static RUNTIME_DIR: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_runtime_dir() {
    if let Some(dir) = RUNTIME_DIR.get() {
        // Only succeeds if empty, which it is with --no-shconf.
        let _ = std::fs::remove_dir(dir);
    }
}

/// `prefix` plus a process-unique suffix, e.g. `net_null` → `net_null_t3`.
/// Vdev names must start with the driver name.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_t{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A fresh pktmbuf pool of `size` mbufs with a unique name.
///
/// # Panics
/// If the pool cannot be created.
pub fn pool(size: u32) -> Mempool {
    Mempool::with_size(eal(), &unique("tp"), size).expect("test mempool")
}

/// Attaches `devargs`, configures `rxq`/`txq` queues on `pool` and starts it.
///
/// # Errors
/// Any step's [`PortError`].
pub fn started_port(devargs: &str, rxq: u16, txq: u16, pool: &Mempool) -> Result<Port, PortError> {
    let mut port = Port::attach(eal(), devargs)?;
    let config = PortConfig {
        rx_queues: rxq,
        tx_queues: txq,
        rx_desc: 256,
        tx_desc: 256,
        ..PortConfig::default()
    };
    port.configure(&config, pool)?;
    port.start()?;
    Ok(port)
}

/// The CPUs this process may run on, as an EAL cpu list (`"0,1"`).
fn allowed_cpus() -> String {
    // SAFETY: zeroed cpu_set_t is a valid empty set; sched_getaffinity writes at
    // most size_of::<cpu_set_t>() bytes into it.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return "0".to_owned();
        }
        set
    };
    let cpus: Vec<String> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: i < CPU_SETSIZE; CPU_ISSET only reads the set.
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .map(|i| i.to_string())
        .collect();
    if cpus.is_empty() {
        "0".to_owned()
    } else {
        cpus.join(",")
    }
}
