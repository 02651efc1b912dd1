//! [`MbufBurst`]: a fixed-capacity, allocation-free array of owned mbufs.

use std::mem::MaybeUninit;
use std::ops::{Deref, DerefMut};

use dpdk_sys as sys;

use crate::mbuf::Mbuf;

/// Default burst capacity (DPDK's customary 32).
pub const BURST_SIZE: usize = 32;

/// Up to `N` owned mbufs in a stack array: what rx fills and tx drains.
///
/// Dereferences to `[Mbuf]` (the first `len()` slots). Dropping the burst, or
/// [`clear`](Self::clear), frees every mbuf still in it with one
/// `rte_pktmbuf_free_bulk` call, so a burst never leaks.
pub struct MbufBurst<const N: usize = BURST_SIZE> {
    len: usize,
    bufs: [MaybeUninit<Mbuf>; N],
}

impl<const N: usize> Default for MbufBurst<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> std::fmt::Debug for MbufBurst<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MbufBurst")
            .field("len", &self.len)
            .field("capacity", &N)
            .finish()
    }
}

impl<const N: usize> MbufBurst<N> {
    /// An empty burst.
    #[inline]
    pub const fn new() -> Self {
        assert!(N <= u16::MAX as usize, "burst capacity must fit u16");
        Self {
            len: 0,
            bufs: [const { MaybeUninit::uninit() }; N],
        }
    }

    /// Capacity `N`.
    #[inline]
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Number of mbufs held.
    #[inline]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// True if no mbuf is held.
    #[inline]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True if `len() == N`.
    #[inline]
    pub const fn is_full(&self) -> bool {
        self.len == N
    }

    /// Free slots (`N - len()`).
    #[inline]
    pub const fn spare(&self) -> usize {
        N - self.len
    }

    /// Adds an mbuf at the end; gives it back if the burst is full.
    ///
    /// # Errors
    /// The mbuf itself, when full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == N {
            return Err(m);
        }
        self.bufs[self.len].write(m);
        self.len += 1;
        Ok(())
    }

    /// Removes the last mbuf.
    #[inline]
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: slot `len` was initialised and is now outside the live range.
        Some(unsafe { self.bufs[self.len].assume_init_read() })
    }

    /// Removes the mbuf at `i`, replacing it with the last one (O(1), order not kept).
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn swap_remove(&mut self, i: usize) -> Mbuf {
        assert!(
            i < self.len,
            "swap_remove index {i} out of range (len {})",
            self.len
        );
        let last = self.len - 1;
        self.as_mut_slice().swap(i, last);
        self.pop().expect("non-empty")
    }

    /// Frees every mbuf (one `rte_pktmbuf_free_bulk` call) and empties the burst.
    #[inline]
    pub fn clear(&mut self) {
        self.truncate(0);
    }

    /// Keeps the first `len` mbufs and frees the rest.
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        let n = self.len - len;
        self.len = len;
        let count = u32::try_from(n).expect("N fits u16");
        // SAFETY: slots len..len+n are initialised owned mbufs, now outside the
        // live range, so they are freed exactly once.
        unsafe { sys::rte_pktmbuf_free_bulk(self.bufs.as_mut_ptr().add(len).cast(), count) };
    }

    /// Keeps the mbufs for which `keep` returns true (order kept) and frees the
    /// others.
    pub fn retain(&mut self, mut keep: impl FnMut(&mut Mbuf) -> bool) {
        let mut kept = 0;
        let len = self.len;
        // While moving, shrink the live range so a panic in `keep` leaks at
        // worst, never double-frees.
        self.len = 0;
        for i in 0..len {
            // SAFETY: slot i (>= kept) is initialised and not yet moved.
            let mut m = unsafe { self.bufs[i].assume_init_read() };
            if keep(&mut m) {
                self.bufs[kept].write(m);
                kept += 1;
                self.len = kept;
            } else {
                drop(m);
            }
        }
    }

    /// Removes and yields every mbuf, front to back. Mbufs the iterator did not
    /// yield are freed when it is dropped.
    pub fn drain(&mut self) -> Drain<'_, N> {
        let end = self.len;
        self.len = 0;
        Drain {
            burst: self,
            next: 0,
            end,
        }
    }

    /// The held mbufs.
    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: the first `len` slots are initialised; MaybeUninit<Mbuf> has
        // Mbuf's layout.
        unsafe { std::slice::from_raw_parts(self.bufs.as_ptr().cast::<Mbuf>(), self.len) }
    }

    /// The held mbufs, mutable.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in as_slice, plus exclusive borrow.
        unsafe { std::slice::from_raw_parts_mut(self.bufs.as_mut_ptr().cast::<Mbuf>(), self.len) }
    }

    /// Pointer to the held mbufs as a C `struct rte_mbuf **` (still owned by the burst).
    #[inline]
    pub fn as_mut_ptr(&mut self) -> *mut *mut sys::rte_mbuf {
        self.bufs.as_mut_ptr().cast()
    }

    /// Pointer to the first free slot, for C functions that fill a burst.
    #[inline]
    pub(crate) fn spare_ptr(&mut self) -> *mut *mut sys::rte_mbuf {
        // SAFETY: len <= N, so the offset stays within (or one past) the array.
        unsafe { self.bufs.as_mut_ptr().add(self.len).cast() }
    }

    /// Marks `n` more slots as holding owned mbufs.
    ///
    /// # Safety
    /// `n <= spare()` and slots `len()..len()+n` were written with pointers to
    /// valid mbufs this burst now exclusively owns.
    #[inline]
    pub(crate) unsafe fn assume_pushed(&mut self, n: usize) {
        debug_assert!(n <= self.spare());
        self.len += n;
    }

    /// Forgets the first `n` mbufs (they were handed to C, e.g. transmitted) and
    /// moves the rest to the front.
    ///
    /// # Safety
    /// `n <= len()`, and ownership of the first `n` mbufs has passed elsewhere.
    #[inline]
    pub(crate) unsafe fn consume_front(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        if n == 0 {
            return;
        }
        let rest = self.len - n;
        if rest > 0 {
            // SAFETY: both ranges lie within the initialised first `len` slots;
            // copy handles overlap; after it the moved-from tail is outside `len`.
            unsafe { std::ptr::copy(self.bufs.as_ptr().add(n), self.bufs.as_mut_ptr(), rest) };
        }
        self.len = rest;
    }
}

impl<const N: usize> Drop for MbufBurst<N> {
    fn drop(&mut self) {
        self.clear();
    }
}

impl<const N: usize> Deref for MbufBurst<N> {
    type Target = [Mbuf];
    #[inline]
    fn deref(&self) -> &[Mbuf] {
        self.as_slice()
    }
}

impl<const N: usize> DerefMut for MbufBurst<N> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [Mbuf] {
        self.as_mut_slice()
    }
}

impl<const N: usize> Extend<Mbuf> for MbufBurst<N> {
    /// # Panics
    /// If the burst overflows (the excess mbuf is freed first).
    fn extend<I: IntoIterator<Item = Mbuf>>(&mut self, iter: I) {
        for m in iter {
            if self.push(m).is_err() {
                panic!("MbufBurst<{N}> overflow");
            }
        }
    }
}

/// Iterator returned by [`MbufBurst::drain`].
pub struct Drain<'a, const N: usize> {
    burst: &'a mut MbufBurst<N>,
    next: usize,
    end: usize,
}

impl<const N: usize> std::fmt::Debug for Drain<'_, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drain")
            .field("remaining", &(self.end - self.next))
            .finish()
    }
}

impl<const N: usize> Iterator for Drain<'_, N> {
    type Item = Mbuf;

    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        if self.next == self.end {
            return None;
        }
        let i = self.next;
        self.next += 1;
        // SAFETY: slots next..end are initialised and yielded at most once; the
        // burst's len is 0, so it will not touch them.
        Some(unsafe { self.burst.bufs[i].assume_init_read() })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.next;
        (n, Some(n))
    }
}

impl<const N: usize> ExactSizeIterator for Drain<'_, N> {}

impl<const N: usize> Drop for Drain<'_, N> {
    fn drop(&mut self) {
        let n = self.end - self.next;
        if n > 0 {
            let count = u32::try_from(n).expect("N fits u16");
            // SAFETY: slots next..end are initialised, not yielded, and outside
            // the burst's live range: freed exactly once here.
            unsafe {
                sys::rte_pktmbuf_free_bulk(
                    self.burst.bufs.as_mut_ptr().add(self.next).cast(),
                    count,
                )
            };
        }
    }
}
