//! Running code on lcores, and the TSC clock.
//!
//! Two ways to run a data-plane loop on several cores:
//! * [`Eal::launch`]: run a closure on an EAL worker lcore (`rte_eal_remote_launch`).
//!   The EAL created and pinned the worker threads from `-l` / `--lcores`; each
//!   has an lcore id, hence a per-lcore mempool cache.
//! * Plain `std::thread`s (pinned with `core_affinity` if wanted) that call
//!   [`register_current_thread`] to obtain an lcore id (and a mempool cache).
//!   Unregistered threads work too, but every mbuf alloc/free goes to the shared
//!   ring.
//!
//! Either way, several threads may use *distinct* rx/tx queues concurrently.

use std::any::Any;
use std::ffi::{c_int, c_void};
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};

use dpdk_sys as sys;

use crate::eal::{control_lock, Eal};
use crate::error::{DpdkError, RteErrno, ToResult};
use crate::ids::LcoreId;

/// Why [`Eal::launch`] could not start the closure.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The lcore is not an enabled worker (it is the main lcore, or not in `-l`).
    #[error("lcore {0} is not an enabled EAL worker lcore")]
    NotAWorker(LcoreId),
    /// The lcore still runs (or has not been joined after) a previous launch.
    #[error("lcore {0} is busy")]
    Busy(LcoreId),
    /// Another failure from `rte_eal_remote_launch`.
    #[error(transparent)]
    Dpdk(#[from] DpdkError),
}

type Slot<T> = Arc<(Mutex<Option<std::thread::Result<T>>>, Condvar)>;

/// The running closure on a worker lcore; [`join`](Self::join) waits for it.
/// Dropping the handle also waits (the closure may use EAL resources, and the
/// lcore cannot be launched again until it is waited for).
pub struct LcoreJoinHandle<T> {
    lcore: LcoreId,
    slot: Slot<T>,
    waited: bool,
    _eal: Eal,
}

impl<T> std::fmt::Debug for LcoreJoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LcoreJoinHandle")
            .field("lcore", &self.lcore)
            .finish_non_exhaustive()
    }
}

impl<T> LcoreJoinHandle<T> {
    /// The lcore the closure runs on.
    pub fn lcore(&self) -> LcoreId {
        self.lcore
    }

    /// True once the closure has returned (or panicked).
    pub fn is_finished(&self) -> bool {
        self.slot
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some()
    }

    /// Waits for the closure; `Err` carries its panic payload, like
    /// `std::thread::JoinHandle::join`.
    pub fn join(mut self) -> Result<T, Box<dyn Any + Send + 'static>> {
        let result = self.wait();
        result.expect("closure result is stored exactly once")
    }

    fn wait(&mut self) -> Option<std::thread::Result<T>> {
        if self.waited {
            return None;
        }
        let (lock, cv) = &*self.slot;
        let mut guard = lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while guard.is_none() {
            guard = cv
                .wait(guard)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        let result = guard.take();
        drop(guard);
        // The closure has stored its result; the worker is about to switch to
        // FINISHED. rte_eal_wait_lcore spins for that and resets it to WAIT.
        // SAFETY: the lcore was launched by us and is waited for once (`waited`).
        unsafe { sys::rte_eal_wait_lcore(self.lcore.0) };
        self.waited = true;
        result
    }
}

impl<T> Drop for LcoreJoinHandle<T> {
    fn drop(&mut self) {
        if !self.waited {
            if let Some(Err(_)) = self.wait() {
                tracing::error!(lcore = self.lcore.0, "closure launched on lcore panicked");
            }
        }
    }
}

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The `lcore_function_t` that runs a [`Job`] on the worker.
///
/// # Safety
/// `arg` must be a `Box<Job>` turned into a raw pointer, passed to exactly one call.
unsafe extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Box<Job>` leaked by `Eal::launch`, handed to exactly
    // one lcore function call, so we own it here.
    let job: Box<Job> = unsafe { Box::from_raw(arg.cast::<Job>()) };
    // `job` catches panics itself (see `launch`): nothing unwinds into C.
    job();
    0
}

impl Eal {
    /// Runs `f` on the worker `lcore` (`rte_eal_remote_launch`).
    ///
    /// May be called from any thread (launches are serialised internally). A panic
    /// in `f` is caught and returned by [`LcoreJoinHandle::join`] (with
    /// `panic = "abort"`, as in the workspace release profile, it aborts the
    /// process instead).
    ///
    /// # Errors
    /// [`LaunchError::NotAWorker`] if `lcore` is the main lcore or not enabled;
    /// [`LaunchError::Busy`] if a previous launch there was not joined yet.
    pub fn launch<F, T>(&self, lcore: LcoreId, f: F) -> Result<LcoreJoinHandle<T>, LaunchError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // SAFETY: valid after rte_eal_init (proved by `self`); any id is accepted.
        let enabled =
            lcore.0 < sys::RTE_MAX_LCORE && unsafe { sys::rte_lcore_is_enabled(lcore.0) } != 0;
        if !enabled || lcore == self.main_lcore() {
            return Err(LaunchError::NotAWorker(lcore));
        }
        let slot: Slot<T> = Arc::new((Mutex::new(None), Condvar::new()));
        let worker_slot = Arc::clone(&slot);
        let job: Job = Box::new(move || {
            let result = catch_unwind(AssertUnwindSafe(f));
            let (lock, cv) = &*worker_slot;
            *lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(result);
            cv.notify_all();
        });
        let arg = Box::into_raw(Box::new(job));
        let ret = {
            let _control = control_lock();
            // SAFETY: `trampoline` matches lcore_function_t and takes ownership of
            // `arg` when called; rte_eal_remote_launch is not thread-safe, hence
            // the control lock.
            unsafe { sys::rte_eal_remote_launch(Some(trampoline), arg.cast(), lcore.0) }
        };
        if let Err(e) = ret.to_result("rte_eal_remote_launch") {
            // SAFETY: the launch failed, so the worker never received `arg`.
            drop(unsafe { Box::from_raw(arg) });
            return Err(if e.errno() == libc::EBUSY {
                LaunchError::Busy(lcore)
            } else {
                e.into()
            });
        }
        Ok(LcoreJoinHandle {
            lcore,
            slot,
            waited: false,
            _eal: self.clone(),
        })
    }
}

/// A non-EAL thread registered with the EAL (`rte_thread_register`): it has an
/// lcore id, hence a mempool cache. Unregisters on drop; not `Send`.
pub struct ThreadRegistration {
    lcore: LcoreId,
    owned: bool,
    _eal: Eal,
    _not_send: PhantomData<*const ()>,
}

impl std::fmt::Debug for ThreadRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadRegistration")
            .field("lcore", &self.lcore)
            .field("owned", &self.owned)
            .finish()
    }
}

impl ThreadRegistration {
    /// The lcore id this thread now has.
    pub fn lcore(&self) -> LcoreId {
        self.lcore
    }
}

impl Drop for ThreadRegistration {
    fn drop(&mut self) {
        if self.owned {
            // SAFETY: this thread registered itself in register_current_thread
            // (the guard is !Send, so we are on that thread).
            unsafe { sys::rte_thread_unregister() };
        }
    }
}

/// Gives the calling thread an lcore id (`rte_thread_register`), so it uses a
/// per-lcore mempool cache. For an EAL thread (main or worker) this is a no-op
/// that returns its existing id.
///
/// # Errors
/// `rte_thread_register`'s error (e.g. `ENOMEM` when all `RTE_MAX_LCORE` ids are used).
pub fn register_current_thread(eal: &Eal) -> Result<ThreadRegistration, DpdkError> {
    if let Some(lcore) = LcoreId::current() {
        return Ok(ThreadRegistration {
            lcore,
            owned: false,
            _eal: eal.clone(),
            _not_send: PhantomData,
        });
    }
    // SAFETY: the EAL is initialised (`eal`); registers only the calling thread.
    RteErrno(unsafe { sys::rte_thread_register() }).to_result("rte_thread_register")?;
    let lcore = LcoreId::current().ok_or(DpdkError::new("rte_thread_register", libc::EINVAL))?;
    Ok(ThreadRegistration {
        lcore,
        owned: true,
        _eal: eal.clone(),
        _not_send: PhantomData,
    })
}

/// Reads the time-stamp counter (`rte_rdtsc`). Cheap (no call on x86-64).
#[inline]
pub fn tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC is available on every x86-64 CPU and has no side effects.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // SAFETY: rte_rdtsc has no preconditions.
        unsafe { sys::shim_rte_rdtsc() }
    }
}

/// TSC ticks per second (`rte_get_tsc_hz`); 0 before the EAL is initialised.
pub fn tsc_hz() -> u64 {
    // SAFETY: reads a value the EAL computed at init (0 before); no preconditions.
    unsafe { sys::rte_get_tsc_hz() }
}

/// CPU relax hint for idle polling (`rte_pause`).
#[inline]
pub fn pause() {
    std::hint::spin_loop();
}
