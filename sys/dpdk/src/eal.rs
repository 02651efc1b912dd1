//! The Environment Abstraction Layer: [`Eal`] and its argument builder.
//!
//! `rte_eal_init` succeeds at most once per process, and nothing DPDK-related
//! works before it. [`EalBuilder::init`] enforces that: a second call returns
//! [`EalError::AlreadyInitialized`] (also after the first [`Eal`] was dropped, since
//! DPDK cannot be re-initialised after `rte_eal_cleanup`).
//!
//! [`Eal`] is a cheap, cloneable handle (`Arc`). Every [`Mempool`](crate::Mempool),
//! [`Port`](crate::Port), queue and lcore launch holds a clone, so
//! `rte_eal_cleanup` runs only when the last of them is dropped.

use std::ffi::{c_char, c_int, CStr, CString};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use dpdk_sys as sys;

use crate::error::{DpdkError, RteErrno, ToResult};
use crate::ids::LcoreId;

/// Why [`EalBuilder::init`] failed.
#[derive(Debug, thiserror::Error)]
pub enum EalError {
    /// `rte_eal_init` already succeeded in this process (it can only once).
    #[error(
        "the DPDK EAL is already initialised in this process (rte_eal_init succeeds only once)"
    )]
    AlreadyInitialized,
    /// An earlier `rte_eal_init` call in this process failed. DPDK 22.11 keeps
    /// part of the rejected configuration (e.g. the lcore list), so a retry is not
    /// reliable: fix the arguments and restart the process.
    #[error("an earlier DPDK EAL initialisation failed in this process; restart it to retry")]
    PreviousInitFailed,
    /// An argument cannot be passed to C.
    #[error("EAL argument {0:?} contains a NUL byte")]
    NulInArgument(String),
    /// `rte_eal_init` rejected the arguments or failed to set up the EAL.
    #[error("EAL initialisation failed (args {args:?}): {source}")]
    Init {
        /// The full argument vector passed to `rte_eal_init`.
        args: Vec<String>,
        /// What DPDK reported.
        #[source]
        source: DpdkError,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Uninit,
    Initialized,
    Failed,
}

static STATE: Mutex<State> = Mutex::new(State::Uninit);

/// Serialises DPDK control-path calls (probe, configure, start/stop, close, launch)
/// made through this crate: DPDK does not make them thread-safe with each other.
static CONTROL: Mutex<()> = Mutex::new(());

/// Takes the process-wide control-path lock (poisoning is ignored: the guarded
/// data is `()`, a panic cannot leave it inconsistent).
pub(crate) fn control_lock() -> MutexGuard<'static, ()> {
    CONTROL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The EAL runtime directory (`/var/run/dpdk/<file-prefix>` for root), once an
/// `rte_eal_init` call got far enough to create it.
pub fn runtime_dir() -> Option<PathBuf> {
    // SAFETY: returns a pointer to a static NUL-terminated buffer (empty before
    // any init attempt).
    let p = unsafe { sys::rte_eal_get_runtime_dir() };
    if p.is_null() {
        return None;
    }
    // SAFETY: non-null, NUL-terminated static buffer; copied at once.
    let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    (!s.is_empty()).then(|| PathBuf::from(s))
}

/// DPDK never deletes its runtime directory; with `--no-shconf`/`--in-memory`
/// it stays empty, and one per process (file prefix) piles up. Remove it if empty.
fn remove_empty_runtime_dir(dir: Option<&PathBuf>) {
    if let Some(dir) = dir {
        if std::fs::remove_dir(dir).is_ok() {
            tracing::debug!(dir = %dir.display(), "removed empty EAL runtime dir");
        }
    }
}

/// Handle to the initialised EAL. Clone it freely; the EAL is cleaned up
/// (`rte_eal_cleanup`) when the last clone, and the last object holding one, drops.
#[derive(Clone)]
pub struct Eal {
    inner: Arc<EalInner>,
}

struct EalInner {
    args: Vec<String>,
    runtime_dir: Option<PathBuf>,
}

impl Drop for EalInner {
    fn drop(&mut self) {
        // SAFETY: every object that uses EAL resources holds an `Eal` clone, so
        // this runs after all of them were released; rte_eal_init succeeded.
        let ret = unsafe { sys::rte_eal_cleanup() };
        match ret.to_result("rte_eal_cleanup") {
            Ok(_) => tracing::debug!("EAL cleaned up"),
            Err(e) => tracing::warn!(error = %e, "EAL cleanup failed"),
        }
        remove_empty_runtime_dir(self.runtime_dir.as_ref());
    }
}

impl std::fmt::Debug for Eal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Eal")
            .field("args", &self.inner.args)
            .finish()
    }
}

impl Eal {
    /// Starts an argument builder (program name `farm`, log level `*:error`).
    pub fn builder() -> EalBuilder {
        EalBuilder::default()
    }

    /// The argument vector that was passed to `rte_eal_init` (argv\[0\] included).
    pub fn args(&self) -> &[String] {
        &self.inner.args
    }

    /// The main lcore (the thread that called [`EalBuilder::init`] runs on it).
    pub fn main_lcore(&self) -> LcoreId {
        // SAFETY: valid after a successful rte_eal_init, which `self` proves.
        LcoreId(unsafe { sys::rte_get_main_lcore() })
    }

    /// Number of enabled lcores (main included).
    pub fn lcore_count(&self) -> u32 {
        // SAFETY: valid after a successful rte_eal_init.
        unsafe { sys::rte_lcore_count() }
    }

    /// Enabled worker lcores (main excluded), ascending.
    pub fn worker_lcores(&self) -> Vec<LcoreId> {
        let mut out = Vec::new();
        let mut i: u32 = u32::MAX; // rte_get_next_lcore(-1, ...) starts at 0
        loop {
            // SAFETY: valid after rte_eal_init; any `i` is accepted.
            i = unsafe { sys::rte_get_next_lcore(i, 1, 0) };
            if i >= sys::RTE_MAX_LCORE {
                break;
            }
            out.push(LcoreId(i));
        }
        out
    }

    /// TSC ticks per second as measured by the EAL.
    pub fn tsc_hz(&self) -> u64 {
        crate::lcore::tsc_hz()
    }
}

/// Builds the EAL argument vector; [`init`](Self::init) calls `rte_eal_init`.
///
/// Options are emitted in the order they are added, after the program name.
/// ```no_run
/// let eal = dpdk::Eal::builder()
///     .no_huge().no_shconf().no_pci().memory_mb(256)
///     .file_prefix("farm-n1")
///     .lcores("0")
///     .vdev("net_af_packet0,iface=veth1")
///     .init()?;
/// # Ok::<(), dpdk::EalError>(())
/// ```
#[derive(Debug, Clone)]
pub struct EalBuilder {
    program: String,
    args: Vec<String>,
    log_level: Option<String>,
}

impl Default for EalBuilder {
    fn default() -> Self {
        Self {
            program: "farm".to_owned(),
            args: Vec::new(),
            log_level: Some("*:error".to_owned()),
        }
    }
}

impl EalBuilder {
    /// argv\[0\] (shows up in DPDK log lines).
    pub fn program(mut self, name: &str) -> Self {
        name.clone_into(&mut self.program);
        self
    }

    /// `--no-huge`: anonymous memory instead of hugepages (pair it with
    /// [`memory_mb`](Self::memory_mb)).
    pub fn no_huge(self) -> Self {
        self.arg("--no-huge")
    }

    /// `--in-memory`: no shared files, no secondary processes; lets several DPDK
    /// processes run side by side. Hugepages only: DPDK 22.11 rejects it together
    /// with `--no-huge` (use [`no_shconf`](Self::no_shconf) there).
    pub fn in_memory(self) -> Self {
        self.arg("--in-memory")
    }

    /// `--no-shconf`: no shared config files (no secondary processes). With
    /// [`no_huge`](Self::no_huge) this is the way to run several independent DPDK
    /// processes side by side: DPDK 22.11 rejects `--no-huge` with `--in-memory`
    /// (`--no-huge` implies legacy memory, which `--in-memory` does not support).
    pub fn no_shconf(self) -> Self {
        self.arg("--no-shconf")
    }

    /// `--no-pci`: do not scan or probe PCI devices.
    pub fn no_pci(self) -> Self {
        self.arg("--no-pci")
    }

    /// `--no-telemetry`: no telemetry socket and thread.
    pub fn no_telemetry(self) -> Self {
        self.arg("--no-telemetry")
    }

    /// `--file-prefix=<prefix>`: distinct per DPDK process on one machine.
    pub fn file_prefix(self, prefix: &str) -> Self {
        self.arg(format!("--file-prefix={prefix}"))
    }

    /// `-l <list>`: lcores to use, e.g. `"0"` or `"0-1"` (lcore i on CPU i).
    pub fn lcores(self, list: &str) -> Self {
        self.arg("-l").arg(list)
    }

    /// `--lcores=<map>`: lcore to CPU-set mapping, e.g. `"0@(0-1),1@(0-1)"`.
    pub fn lcore_map(self, map: &str) -> Self {
        self.arg(format!("--lcores={map}"))
    }

    /// `--main-lcore=<id>`.
    pub fn main_lcore(self, id: LcoreId) -> Self {
        self.arg(format!("--main-lcore={}", id.0))
    }

    /// `--vdev=<devargs>`, e.g. `"net_null0"` or `"net_pcap0,rx_pcap=in.pcap"`.
    /// Can be repeated.
    pub fn vdev(self, devargs: &str) -> Self {
        self.arg(format!("--vdev={devargs}"))
    }

    /// `-a <pci>`: allow only these PCI devices. Can be repeated.
    pub fn allow(self, pci: &str) -> Self {
        self.arg("-a").arg(pci)
    }

    /// `-m <MB>`: memory to preallocate (required with `--no-huge`).
    pub fn memory_mb(self, mb: u32) -> Self {
        self.arg("-m").arg(mb.to_string())
    }

    /// `--log-level=<spec>` (e.g. `"*:error"`, `"pmd.net.*:debug"`, `"info"`).
    /// Replaces the default `*:error`; `None` passes no `--log-level` at all.
    pub fn log_level(mut self, spec: Option<&str>) -> Self {
        self.log_level = spec.map(str::to_owned);
        self
    }

    /// `-d <path>`: load a PMD shared object, or every one in a directory. Not
    /// needed for Debian's PMDs: with the shared `librte_eal` the EAL loads
    /// `RTE_EAL_PMD_PATH` by itself.
    pub fn plugin(self, path: &str) -> Self {
        self.arg("-d").arg(path)
    }

    /// Any other EAL argument, passed verbatim.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Several verbatim arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The argument vector [`init`](Self::init) would pass, argv\[0\] included.
    pub fn to_args(&self) -> Vec<String> {
        let mut v = Vec::with_capacity(self.args.len() + 2);
        v.push(self.program.clone());
        if let Some(level) = &self.log_level {
            v.push(format!("--log-level={level}"));
        }
        v.extend(self.args.iter().cloned());
        v
    }

    /// Calls `rte_eal_init`. The calling thread becomes the main lcore.
    ///
    /// # Errors
    /// [`EalError::AlreadyInitialized`] if the EAL was initialised before in this
    /// process (by this crate or anyone else); [`EalError::Init`] if DPDK rejects
    /// the arguments or fails; [`EalError::PreviousInitFailed`] for any call after
    /// an `Init` failure (one attempt per process; `NulInArgument` does not count,
    /// DPDK was not called).
    pub fn init(self) -> Result<Eal, EalError> {
        let mut state = STATE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match *state {
            State::Uninit => {}
            State::Initialized => return Err(EalError::AlreadyInitialized),
            State::Failed => return Err(EalError::PreviousInitFailed),
        }
        let args = self.to_args();
        let cargs = args
            .iter()
            .map(|a| CString::new(a.as_str()).map_err(|_| EalError::NulInArgument(a.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        let argc = c_int::try_from(cargs.len()).expect("fewer than 2^31 EAL arguments");
        // DPDK permutes argv and may keep pointers into it: leak it (once per process).
        let argv: &'static mut [*mut c_char] = Box::leak(
            cargs
                .into_iter()
                .map(CString::into_raw)
                .collect::<Box<[_]>>(),
        );
        tracing::debug!(?args, "rte_eal_init");
        let _control = control_lock();
        // SAFETY: argv holds argc valid, NUL-terminated, leaked (never freed)
        // strings; STATE's lock makes this the only rte_eal_init call in flight.
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        match RteErrno(ret).to_result("rte_eal_init") {
            Ok(_) => {
                *state = State::Initialized;
                Ok(Eal {
                    inner: Arc::new(EalInner {
                        args,
                        runtime_dir: runtime_dir(),
                    }),
                })
            }
            Err(e) if e.errno() == libc::EALREADY => {
                *state = State::Initialized;
                Err(EalError::AlreadyInitialized)
            }
            Err(source) => {
                *state = State::Failed;
                remove_empty_runtime_dir(runtime_dir().as_ref());
                Err(EalError::Init { args, source })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_emits_args_in_order() {
        let b = Eal::builder()
            .no_huge()
            .in_memory()
            .no_pci()
            .memory_mb(256)
            .file_prefix("p1")
            .lcores("0-1")
            .vdev("net_null0")
            .vdev("net_ring0")
            .allow("0000:00:04.0")
            .plugin("/x")
            .arg("--foo");
        assert_eq!(
            b.to_args(),
            [
                "farm",
                "--log-level=*:error",
                "--no-huge",
                "--in-memory",
                "--no-pci",
                "-m",
                "256",
                "--file-prefix=p1",
                "-l",
                "0-1",
                "--vdev=net_null0",
                "--vdev=net_ring0",
                "-a",
                "0000:00:04.0",
                "-d",
                "/x",
                "--foo",
            ]
        );
        let quiet_off = Eal::builder().program("x").log_level(None).to_args();
        assert_eq!(quiet_off, ["x"]);
    }
}
