//! IP protocol numbers shared by IPv4 and IPv6.

use crate::enum_with_unknown;

enum_with_unknown! {
    /// IP protocol / IPv6 next-header numbers (IANA "Protocol Numbers").
    pub enum IpProtocol(u8) {
        /// IPv6 hop-by-hop options (RFC 8200).
        HopByHop = 0x00,
        Icmp = 0x01,
        Igmp = 0x02,
        Tcp = 0x06,
        Udp = 0x11,
        /// IPv6 routing header.
        Ipv6Route = 0x2b,
        /// IPv6 fragment header.
        Ipv6Frag = 0x2c,
        Esp = 0x32,
        Ah = 0x33,
        Icmpv6 = 0x3a,
        /// IPv6 "no next header".
        Ipv6NoNxt = 0x3b,
        /// IPv6 destination options.
        Ipv6Opts = 0x3c,
        Sctp = 0x84,
    }
}

impl IpProtocol {
    /// True for the IPv6 extension headers that [`crate::ipv6ext`] walks.
    #[inline]
    pub fn is_ipv6_ext(self) -> bool {
        matches!(
            self,
            IpProtocol::HopByHop
                | IpProtocol::Ipv6Route
                | IpProtocol::Ipv6Frag
                | IpProtocol::Ipv6Opts
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_value() {
        for n in 0..=255u8 {
            let p = IpProtocol::from(n);
            assert_eq!(u8::from(p), n);
            if let IpProtocol::Unknown(u) = p {
                assert_eq!(u, n);
            }
        }
        assert_eq!(IpProtocol::from(6), IpProtocol::Tcp);
        assert_eq!(IpProtocol::from(58), IpProtocol::Icmpv6);
        assert!(IpProtocol::Ipv6Frag.is_ipv6_ext() && !IpProtocol::Tcp.is_ipv6_ext());
    }
}
