//! [`Mempool`]: a packet-buffer (pktmbuf) pool.

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

use dpdk_sys as sys;

use crate::burst::MbufBurst;
use crate::eal::Eal;
use crate::error::{DpdkError, ToResult};
use crate::mbuf::Mbuf;

/// Longest pool name DPDK accepts (`RTE_MEMPOOL_NAMESIZE - 1`).
pub const MEMPOOL_NAME_MAX: usize = 25;

/// Why a pool could not be created or could not serve a request.
#[derive(Debug, thiserror::Error)]
pub enum MempoolError {
    /// Empty, too long (> [`MEMPOOL_NAME_MAX`]) or containing NUL.
    #[error("invalid mempool name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// `rte_pktmbuf_pool_create` failed (e.g. `EEXIST`: name taken; `ENOMEM`:
    /// not enough EAL memory, see `-m`).
    #[error("cannot create mempool {name:?}: {source}")]
    Create {
        /// The pool name.
        name: String,
        /// What DPDK reported.
        #[source]
        source: DpdkError,
    },
    /// Not enough free mbufs for a bulk allocation (nothing was allocated).
    #[error("mempool exhausted: {requested} mbufs requested")]
    Exhausted {
        /// How many were asked for.
        requested: usize,
    },
}

/// Parameters of [`Mempool::new`]; `Default` suits a small data plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MempoolConfig {
    /// Number of mbufs (best as 2^n - 1).
    pub size: u32,
    /// Per-lcore cache (0 disables; at most 512 and at most `size / 1.5`).
    pub cache_size: u32,
    /// Private area after each `rte_mbuf` header, in bytes (multiple of 8).
    pub priv_size: u16,
    /// Buffer size including the 128-byte headroom (default 2048 + 128).
    pub data_room: u16,
    /// NUMA socket, `None` = any.
    pub socket: Option<i32>,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        Self {
            size: 8191,
            cache_size: 256,
            priv_size: 0,
            data_room: u16::try_from(sys::RTE_MBUF_DEFAULT_BUF_SIZE).expect("2176 fits u16"),
            socket: None,
        }
    }
}

/// A pktmbuf pool. Cheap to clone (`Arc`); freed (`rte_mempool_free`) when the
/// last clone drops, **unless** mbufs from it are still out (then it is leaked,
/// with a warning, so those mbufs stay valid).
#[derive(Clone)]
pub struct Mempool {
    inner: Arc<MempoolInner>,
}

struct MempoolInner {
    ptr: NonNull<sys::rte_mempool>,
    name: String,
    size: u32,
    eal: Eal,
}

// SAFETY: the pool is created with the default "ring_mp_mc" ops, whose get/put are
// multi-producer/multi-consumer safe; the pointer itself is only freed on drop.
unsafe impl Send for MempoolInner {}
// SAFETY: as above; &MempoolInner only allows thread-safe get/put/count calls.
unsafe impl Sync for MempoolInner {}

impl Drop for MempoolInner {
    fn drop(&mut self) {
        // SAFETY: the pool is alive (we own it).
        let in_use = unsafe { sys::rte_mempool_in_use_count(self.ptr.as_ptr()) };
        if in_use != 0 {
            tracing::warn!(pool = %self.name, in_use, "mempool dropped with mbufs outstanding: leaking it");
            // Outstanding mbufs point into the pool: keep it and the EAL alive.
            std::mem::forget(self.eal.clone());
            return;
        }
        // SAFETY: no mbuf is outstanding and no other handle exists (last Arc);
        // ports that used the pool hold a clone, so they are closed already.
        unsafe { sys::rte_mempool_free(self.ptr.as_ptr()) };
    }
}

impl std::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mempool")
            .field("name", &self.inner.name)
            .field("size", &self.inner.size)
            .field("available", &self.available())
            .finish()
    }
}

impl Mempool {
    /// Creates a pktmbuf pool (`rte_pktmbuf_pool_create`). Names are global to the
    /// process and at most [`MEMPOOL_NAME_MAX`] bytes.
    ///
    /// # Errors
    /// [`MempoolError::InvalidName`], or [`MempoolError::Create`] from DPDK.
    pub fn new(eal: &Eal, name: &str, config: &MempoolConfig) -> Result<Self, MempoolError> {
        let invalid = |reason| MempoolError::InvalidName {
            name: name.to_owned(),
            reason,
        };
        if name.is_empty() {
            return Err(invalid("empty"));
        }
        if name.len() > MEMPOOL_NAME_MAX {
            return Err(invalid("longer than 25 bytes"));
        }
        let cname = CString::new(name).map_err(|_| invalid("contains NUL"))?;
        // SAFETY: EAL initialised (`eal`); cname is NUL-terminated and outlives the
        // call (DPDK copies the name).
        let ptr = unsafe {
            sys::rte_pktmbuf_pool_create(
                cname.as_ptr(),
                config.size,
                config.cache_size,
                config.priv_size,
                config.data_room,
                config.socket.unwrap_or(sys::SOCKET_ID_ANY),
            )
        }
        .to_result("rte_pktmbuf_pool_create")
        .map_err(|source| MempoolError::Create {
            name: name.to_owned(),
            source,
        })?;
        tracing::debug!(pool = name, size = config.size, "mempool created");
        Ok(Self {
            inner: Arc::new(MempoolInner {
                ptr,
                name: name.to_owned(),
                size: config.size,
                eal: eal.clone(),
            }),
        })
    }

    /// Creates a pool of `size` mbufs with the other parameters defaulted.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_size(eal: &Eal, name: &str, size: u32) -> Result<Self, MempoolError> {
        let cache_size = (size * 2 / 3).min(256);
        Self::new(
            eal,
            name,
            &MempoolConfig {
                size,
                cache_size,
                ..MempoolConfig::default()
            },
        )
    }

    /// The pool name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Total number of mbufs.
    pub fn capacity(&self) -> u32 {
        self.inner.size
    }

    /// Free mbufs, per-lcore caches included (`rte_mempool_avail_count`).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is alive while `self` is.
        unsafe { sys::rte_mempool_avail_count(self.inner.ptr.as_ptr()) }
    }

    /// Mbufs currently allocated (`rte_mempool_in_use_count`).
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool is alive while `self` is.
        unsafe { sys::rte_mempool_in_use_count(self.inner.ptr.as_ptr()) }
    }

    /// Allocates one mbuf (reset, empty), or `None` if the pool is exhausted.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is alive and is a pktmbuf pool (created by `new`).
        let m = unsafe { sys::shim_rte_pktmbuf_alloc(self.inner.ptr.as_ptr()) };
        // SAFETY: a freshly allocated mbuf is exclusively ours.
        NonNull::new(m).map(|m| unsafe { Mbuf::from_raw(m) })
    }

    /// Appends `n` fresh mbufs to `burst` (`rte_pktmbuf_alloc_bulk`): all or none.
    ///
    /// # Errors
    /// [`MempoolError::Exhausted`] if the pool cannot supply `n`, or `n` exceeds
    /// the burst's spare capacity.
    pub fn alloc_bulk<const N: usize>(
        &self,
        burst: &mut MbufBurst<N>,
        n: usize,
    ) -> Result<(), MempoolError> {
        if n > burst.spare() {
            return Err(MempoolError::Exhausted { requested: n });
        }
        let count = u32::try_from(n).map_err(|_| MempoolError::Exhausted { requested: n })?;
        // SAFETY: the spare area has room for `n` pointers (checked above); the
        // pool is alive; on success every written pointer is a fresh mbuf we own.
        let ret = unsafe {
            sys::shim_rte_pktmbuf_alloc_bulk(self.inner.ptr.as_ptr(), burst.spare_ptr(), count)
        };
        if ret != 0 {
            return Err(MempoolError::Exhausted { requested: n });
        }
        // SAFETY: the next `n` slots were just initialised with owned mbufs.
        unsafe { burst.assume_pushed(n) };
        Ok(())
    }

    /// The raw pool pointer, valid while any clone of `self` lives.
    pub fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.inner.ptr.as_ptr()
    }
}
