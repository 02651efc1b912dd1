//! [`Mbuf`]: an owned packet buffer.

use std::ptr::NonNull;

use dpdk_sys as sys;

use crate::ids::PortId;

/// Why an mbuf edit was refused (the mbuf is unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MbufError {
    /// Not enough tailroom (append) or headroom (prepend) in the buffer.
    #[error("not enough room in the mbuf for {0} more bytes")]
    NoRoom(usize),
    /// The packet (or its segment) is shorter than the bytes to remove.
    #[error("packet shorter than {0} bytes")]
    TooShort(usize),
}

/// An owned `rte_mbuf` (possibly a chain of segments). Freed
/// (`rte_pktmbuf_free`, the whole chain) on drop.
///
/// `#[repr(transparent)]` over the pointer, so `&[Mbuf]` is a C `rte_mbuf **`.
///
/// Byte accessors ([`data`](Self::data), [`data_mut`](Self::data_mut), ...) cover the
/// **first segment** only; `pkt_len` is the whole chain. The rx paths of the
/// ports we use (no scatter) deliver single-segment mbufs.
///
/// Buffer bytes beyond what was written (fresh `append` space) hold whatever the
/// previous user left there; DPDK memory is ordinary initialised memory.
#[repr(transparent)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: an Mbuf is the unique owner of its buffer (refcnt 1, see from_raw);
// freeing from another thread is safe (mempool ops are MP/MC).
unsafe impl Send for Mbuf {}
// SAFETY: &Mbuf only reads the buffer and header.
unsafe impl Sync for Mbuf {}

impl std::fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mbuf")
            .field("ptr", &self.0)
            .field("data_len", &self.data_len())
            .field("pkt_len", &self.pkt_len())
            .field("nb_segs", &self.nb_segs())
            .finish()
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own the mbuf; it is not used after this.
        unsafe { sys::shim_rte_pktmbuf_free(self.0.as_ptr()) };
    }
}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `ptr` must point to a valid mbuf from a pktmbuf pool that is not owned or
    /// referenced by anything else (in particular its refcnt must be 1 if
    /// [`data_mut`](Self::data_mut) is used), and its pool must outlive it.
    #[inline]
    pub unsafe fn from_raw(ptr: NonNull<sys::rte_mbuf>) -> Self {
        Mbuf(ptr)
    }

    /// Gives up ownership without freeing; undo with [`from_raw`](Self::from_raw).
    #[inline]
    pub fn into_raw(self) -> NonNull<sys::rte_mbuf> {
        let p = self.0;
        std::mem::forget(self);
        p
    }

    /// The raw pointer (still owned by `self`).
    #[inline]
    pub fn as_ptr(&self) -> *mut sys::rte_mbuf {
        self.0.as_ptr()
    }

    #[inline]
    fn raw(&self) -> &sys::rte_mbuf {
        // SAFETY: valid mbuf for our lifetime (type invariant).
        unsafe { self.0.as_ref() }
    }

    /// Bytes in the first segment (`data_len`).
    #[inline]
    pub fn data_len(&self) -> usize {
        usize::from(self.raw().data_len)
    }

    /// Bytes in the whole packet, all segments (`pkt_len`).
    #[inline]
    pub fn pkt_len(&self) -> usize {
        self.raw().pkt_len as usize
    }

    /// Number of segments.
    #[inline]
    pub fn nb_segs(&self) -> u16 {
        self.raw().nb_segs
    }

    /// True if the packet is in one segment.
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        self.raw().nb_segs == 1
    }

    /// The first segment's data (`rte_pktmbuf_mtod`, `data_len` bytes).
    #[inline]
    pub fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: buf_addr + data_off .. + data_len lies inside the mbuf's buffer
        // (DPDK invariant); borrowed from &self.
        unsafe {
            std::slice::from_raw_parts(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        }
    }

    /// The first segment's data, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let m = self.raw();
        let (addr, off, len) = (
            m.buf_addr.cast::<u8>(),
            usize::from(m.data_off),
            usize::from(m.data_len),
        );
        // SAFETY: as in data(); exclusive because we own the mbuf (refcnt 1,
        // from_raw contract) and hold &mut self.
        unsafe { std::slice::from_raw_parts_mut(addr.add(off), len) }
    }

    /// Free bytes before the data (`rte_pktmbuf_headroom`).
    #[inline]
    pub fn headroom(&self) -> usize {
        usize::from(self.raw().data_off)
    }

    /// Free bytes after the data in the last segment (`rte_pktmbuf_tailroom`).
    #[inline]
    pub fn tailroom(&self) -> usize {
        // SAFETY: valid mbuf; the function only reads header fields.
        usize::from(unsafe { sys::shim_rte_pktmbuf_tailroom(self.0.as_ptr()) })
    }

    /// Grows the packet at the end by `n` bytes (`rte_pktmbuf_append`) and
    /// returns the new bytes (their previous contents are unspecified).
    ///
    /// # Errors
    /// [`MbufError::NoRoom`] if the last segment has less than `n` bytes tailroom.
    #[inline]
    pub fn append(&mut self, n: usize) -> Result<&mut [u8], MbufError> {
        let len = u16::try_from(n).map_err(|_| MbufError::NoRoom(n))?;
        // SAFETY: we own the mbuf; append checks tailroom and returns NULL on failure.
        let p = unsafe { sys::shim_rte_pktmbuf_append(self.0.as_ptr(), len) };
        if p.is_null() {
            return Err(MbufError::NoRoom(n));
        }
        // SAFETY: `p` points at `n` bytes just added to the (owned) last segment.
        Ok(unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), n) })
    }

    /// Appends a copy of `bytes`.
    ///
    /// # Errors
    /// [`MbufError::NoRoom`] (nothing is appended).
    #[inline]
    pub fn extend_from_slice(&mut self, bytes: &[u8]) -> Result<(), MbufError> {
        self.append(bytes.len())?.copy_from_slice(bytes);
        Ok(())
    }

    /// Grows the packet at the front by `n` bytes (`rte_pktmbuf_prepend`) and
    /// returns the new bytes.
    ///
    /// # Errors
    /// [`MbufError::NoRoom`] if the headroom is less than `n`.
    #[inline]
    pub fn prepend(&mut self, n: usize) -> Result<&mut [u8], MbufError> {
        let len = u16::try_from(n).map_err(|_| MbufError::NoRoom(n))?;
        // SAFETY: we own the mbuf; prepend checks headroom and returns NULL on failure.
        let p = unsafe { sys::shim_rte_pktmbuf_prepend(self.0.as_ptr(), len) };
        if p.is_null() {
            return Err(MbufError::NoRoom(n));
        }
        // SAFETY: `p` points at the `n` bytes now at the front of the first segment.
        Ok(unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), n) })
    }

    /// Removes `n` bytes from the front (`rte_pktmbuf_adj`).
    ///
    /// # Errors
    /// [`MbufError::TooShort`] if the first segment has fewer than `n` bytes.
    #[inline]
    pub fn adj(&mut self, n: usize) -> Result<(), MbufError> {
        let len = u16::try_from(n).map_err(|_| MbufError::TooShort(n))?;
        // SAFETY: we own the mbuf; adj checks the length and returns NULL on failure.
        let p = unsafe { sys::shim_rte_pktmbuf_adj(self.0.as_ptr(), len) };
        if p.is_null() {
            Err(MbufError::TooShort(n))
        } else {
            Ok(())
        }
    }

    /// Removes `n` bytes from the end (`rte_pktmbuf_trim`).
    ///
    /// # Errors
    /// [`MbufError::TooShort`] if the last segment has fewer than `n` bytes.
    #[inline]
    pub fn trim(&mut self, n: usize) -> Result<(), MbufError> {
        let len = u16::try_from(n).map_err(|_| MbufError::TooShort(n))?;
        // SAFETY: we own the mbuf; trim checks the length and returns -1 on failure.
        let ret = unsafe { sys::shim_rte_pktmbuf_trim(self.0.as_ptr(), len) };
        if ret != 0 {
            Err(MbufError::TooShort(n))
        } else {
            Ok(())
        }
    }

    /// Shortens a single-segment packet to `len` bytes (no-op if already shorter).
    ///
    /// # Errors
    /// [`MbufError::TooShort`] is never returned for contiguous mbufs; a chained
    /// mbuf is trimmed only within its last segment.
    pub fn truncate(&mut self, len: usize) -> Result<(), MbufError> {
        let cur = self.pkt_len();
        if len >= cur {
            return Ok(());
        }
        self.trim(cur - len)
    }

    /// Resets the header to a fresh empty packet (`rte_pktmbuf_reset`); a chain
    /// keeps its extra segments linked, so use it on contiguous mbufs.
    pub fn reset(&mut self) {
        // SAFETY: we own the mbuf.
        unsafe { sys::shim_rte_pktmbuf_reset(self.0.as_ptr()) };
    }

    /// The port the mbuf was received on.
    #[inline]
    pub fn port(&self) -> PortId {
        PortId(self.raw().port)
    }

    /// The NIC's RSS hash, if the driver set one (`RTE_MBUF_F_RX_RSS_HASH`).
    #[inline]
    pub fn rss_hash(&self) -> Option<u32> {
        let m = self.raw();
        if m.ol_flags & u64::from(sys::RTE_MBUF_F_RX_RSS_HASH) == 0 {
            return None;
        }
        // SAFETY: with RX_RSS_HASH set, the `hash` union holds the rss member (a
        // u32; every bit pattern is valid anyway).
        Some(unsafe { m.__bindgen_anon_2.hash.rss })
    }

    /// The reference count (1 for an mbuf only we hold).
    #[inline]
    pub fn refcnt(&self) -> u16 {
        // SAFETY: valid mbuf; atomic read.
        unsafe { sys::shim_rte_mbuf_refcnt_read(self.0.as_ptr()) }
    }

    /// Offload flags (`ol_flags`, `RTE_MBUF_F_*`).
    #[inline]
    pub fn ol_flags(&self) -> u64 {
        self.raw().ol_flags
    }

    /// The VLAN TCI stripped by the NIC (valid if `RTE_MBUF_F_RX_VLAN_STRIPPED`).
    #[inline]
    pub fn vlan_tci(&self) -> u16 {
        self.raw().vlan_tci
    }
}
