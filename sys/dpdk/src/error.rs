//! [`DpdkError`] and the one adapter ([`ToResult`]) that turns DPDK's C return
//! conventions into it.
//!
//! DPDK reports failure in three ways:
//! * a negative errno as the return value (most of ethdev: `-EINVAL`, `-ENODEV`);
//! * `-1` (or any negative value) with the reason in the thread-local `rte_errno`
//!   (`rte_eal_init`, `rte_thread_register`): wrap the value in [`RteErrno`];
//! * a NULL pointer with the reason in `rte_errno` (`rte_pktmbuf_pool_create`).

use std::ffi::{c_int, CStr};
use std::fmt;
use std::ptr::NonNull;

use dpdk_sys as sys;

/// A failed DPDK call: which function, and the errno it reported.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DpdkError {
    call: &'static str,
    errno: i32,
}

impl DpdkError {
    /// An error for `call` with a positive errno value.
    pub fn new(call: &'static str, errno: i32) -> Self {
        Self {
            call,
            errno: errno.abs(),
        }
    }

    /// An error for `call` with the calling thread's current `rte_errno`.
    pub fn from_rte_errno(call: &'static str) -> Self {
        Self::new(call, rte_errno())
    }

    /// The DPDK function that failed, e.g. `"rte_eth_dev_configure"`.
    pub fn call(&self) -> &'static str {
        self.call
    }

    /// The positive errno (`libc::EINVAL`, ..., or a DPDK-specific `E_RTE_*` code).
    pub fn errno(&self) -> i32 {
        self.errno
    }

    /// DPDK's description of the errno (`rte_strerror`).
    pub fn description(&self) -> String {
        // SAFETY: rte_strerror accepts any value and returns a pointer to a static
        // string or to a thread-local buffer, NUL-terminated; we copy it at once.
        let ptr = unsafe { sys::rte_strerror(self.errno) };
        if ptr.is_null() {
            return format!("errno {}", self.errno);
        }
        // SAFETY: non-null, NUL-terminated (see above), valid until the next
        // rte_strerror call on this thread.
        unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned()
    }
}

impl fmt::Display for DpdkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed: {} (errno {})",
            self.call,
            self.description(),
            self.errno
        )
    }
}

impl fmt::Debug for DpdkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpdkError")
            .field("call", &self.call)
            .field("errno", &self.errno)
            .field("description", &self.description())
            .finish()
    }
}

impl std::error::Error for DpdkError {}

/// The calling thread's `rte_errno`.
pub fn rte_errno() -> i32 {
    // SAFETY: reads a thread-local int; valid in any thread, before or after EAL init.
    unsafe { sys::shim_rte_errno() }
}

/// A return value whose failure reason is in `rte_errno` rather than in the value.
#[derive(Debug, Clone, Copy)]
pub struct RteErrno(pub c_int);

/// Converts a raw DPDK return value into a `Result`. Implemented for the three
/// conventions described in the module docs.
pub trait ToResult {
    /// What success carries.
    type Ok;
    /// `Err` naming `call` if the value means failure.
    fn to_result(self, call: &'static str) -> Result<Self::Ok, DpdkError>;
}

/// Negative return value = `-errno`; non-negative values are passed through.
impl ToResult for c_int {
    type Ok = c_int;
    fn to_result(self, call: &'static str) -> Result<c_int, DpdkError> {
        if self < 0 {
            Err(DpdkError::new(call, -self))
        } else {
            Ok(self)
        }
    }
}

/// Negative return value = failure, reason in `rte_errno`.
impl ToResult for RteErrno {
    type Ok = c_int;
    fn to_result(self, call: &'static str) -> Result<c_int, DpdkError> {
        if self.0 < 0 {
            let errno = rte_errno();
            // Fall back to the return value if the callee forgot to set rte_errno.
            Err(DpdkError::new(
                call,
                if errno != 0 { errno } else { -self.0 },
            ))
        } else {
            Ok(self.0)
        }
    }
}

/// NULL = failure, reason in `rte_errno`.
impl<T> ToResult for *mut T {
    type Ok = NonNull<T>;
    fn to_result(self, call: &'static str) -> Result<NonNull<T>, DpdkError> {
        NonNull::new(self).ok_or_else(|| DpdkError::from_rte_errno(call))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_return_is_errno() {
        let e = (-libc::EINVAL).to_result("rte_x").unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL);
        assert_eq!(e.call(), "rte_x");
        assert_eq!(7.to_result("rte_x"), Ok(7));
        assert!(e.to_string().contains("rte_x failed"), "{e}");
        assert!(e.to_string().contains("Invalid argument"), "{e}");
    }

    #[test]
    fn rte_errno_convention_reads_thread_local() {
        // SAFETY: sets a thread-local int.
        unsafe { sys::shim_rte_errno_set(libc::ENOSPC) };
        let e = RteErrno(-1).to_result("rte_y").unwrap_err();
        assert_eq!(e.errno(), libc::ENOSPC);
        assert_eq!(RteErrno(3).to_result("rte_y"), Ok(3));
        // SAFETY: as above.
        unsafe { sys::shim_rte_errno_set(0) };
        assert_eq!(
            RteErrno(-libc::ENOMEM)
                .to_result("rte_y")
                .unwrap_err()
                .errno(),
            libc::ENOMEM
        );
    }

    #[test]
    fn null_pointer_is_error() {
        // SAFETY: sets a thread-local int.
        unsafe { sys::shim_rte_errno_set(libc::ENOENT) };
        let p: *mut u8 = std::ptr::null_mut();
        assert_eq!(p.to_result("rte_z").unwrap_err().errno(), libc::ENOENT);
        let mut x = 5u8;
        assert!((&mut x as *mut u8).to_result("rte_z").is_ok());
    }
}
