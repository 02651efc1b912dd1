//! The shared mapping of a table file.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::ptr::NonNull;

use crate::layout::ShmSafe;
use crate::TableError;

/// A read-write `MAP_SHARED` mapping of a whole table file, unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; every value handed out is a `ShmSafe` type whose
// mutable fields are atomics, so sharing references across threads is as sound as sharing
// `&AtomicU64`. The raw pointer is only freed in `Drop`, which needs exclusive ownership.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    pub(crate) fn map(file: &File, len: u64, path: &Path) -> Result<Mapping, TableError> {
        let len = usize::try_from(len).map_err(|_| TableError::BadHeader {
            path: path.to_owned(),
            what: format!("size {len} does not fit in memory"),
        })?;
        // SAFETY: we ask the kernel for a fresh shared mapping of an open file; no existing
        // memory is affected. The result is checked against MAP_FAILED below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(TableError::Io {
                path: path.to_owned(),
                what: "mmap",
                source: std::io::Error::last_os_error(),
            });
        }
        let ptr = NonNull::new(p.cast::<u8>()).expect("mmap returned null without MAP_FAILED");
        Ok(Mapping { ptr, len })
    }

    /// A reference to a `T` at `offset`. Panics if out of bounds or misaligned: offsets come
    /// from a validated [`crate::layout::Layout`], so that is a bug, not bad input.
    pub(crate) fn at<T: ShmSafe>(&self, offset: u64) -> &T {
        &self.slice::<T>(offset, 1)[0]
    }

    /// A slice of `count` `T`s at `offset` (same checks as [`Mapping::at`]).
    pub(crate) fn slice<T: ShmSafe>(&self, offset: u64, count: usize) -> &[T] {
        let off = usize::try_from(offset).expect("offset fits usize");
        let bytes = count.checked_mul(std::mem::size_of::<T>()).expect("slice size overflow");
        assert!(off.checked_add(bytes).is_some_and(|end| end <= self.len), "table region out of bounds");
        assert_eq!(off % std::mem::align_of::<T>(), 0, "misaligned table region");
        // SAFETY: the range [off, off+bytes) lies inside the live mapping (asserted above), is
        // aligned for T (asserted; the mapping itself is page-aligned), and T: ShmSafe is valid
        // for any bytes with interior mutability only through atomics. The returned lifetime is
        // bounded by &self, and the mapping lives until Drop.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(off).cast::<T>(), count) }
    }

    /// A raw pointer to the byte at `offset`, for the creator's one-time initialisation.
    pub(crate) fn raw(&self, offset: usize) -> *mut u8 {
        assert!(offset < self.len);
        // SAFETY: offset is within the mapping (asserted), so the result stays in bounds.
        unsafe { self.ptr.as_ptr().add(offset) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned; no reference into the mapping can
        // outlive `self` because all of them borrow it.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}
