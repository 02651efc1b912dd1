//! Small value types: ids and the Ethernet address.

use std::fmt;

use dpdk_sys as sys;

/// An ethdev port number (`uint16_t port_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortId(pub u16);

/// An rx or tx queue number within a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueId(pub u16);

/// An EAL logical core number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LcoreId(pub u32);

impl LcoreId {
    /// The calling thread's lcore, or `None` for a thread the EAL does not know
    /// (neither an EAL thread nor registered with
    /// [`register_current_thread`](crate::register_current_thread)).
    pub fn current() -> Option<LcoreId> {
        // SAFETY: reads a thread-local; valid in any thread.
        let id = unsafe { sys::shim_rte_lcore_id() };
        (id != sys::LCORE_ID_ANY).then_some(LcoreId(id))
    }
}

macro_rules! display_inner {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    )*};
}
display_inner!(PortId, QueueId, LcoreId);

/// A 48-bit Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The raw bytes.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// True for the all-zero address.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    pub(crate) fn to_rte(self) -> sys::rte_ether_addr {
        sys::rte_ether_addr { addr_bytes: self.0 }
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(b: [u8; 6]) -> Self {
        MacAddr(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_display() {
        let m = MacAddr([0x5a, 0xfe, 0xc0, 0xa8, 0x00, 0x01]);
        assert_eq!(m.to_string(), "5a:fe:c0:a8:00:01");
        assert!(!m.is_zero());
        assert!(MacAddr::default().is_zero());
        assert_eq!(m.to_rte().addr_bytes, m.octets());
    }
}
