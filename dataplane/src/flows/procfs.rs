//! The fallback source of flow knowledge: the text of `/proc/net/tcp{,6}`.
//!
//! Used when sock_diag netlink is unavailable (a kernel without `inet_diag`, a sandbox that
//! forbids netlink sockets), and by the benchmark that compares both. It reads every socket of
//! the namespace, as text, at every refresh: several times the cost of a filtered dump.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Socket;

fn parse_addr(s: &str) -> Option<(IpAddr, u16)> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    // The kernel prints each 32-bit word of the address as a native-endian integer.
    let word = |i: usize| u32::from_str_radix(a.get(8 * i..8 * i + 8)?, 16).ok().map(u32::to_ne_bytes);
    let ip = match a.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[4 * i..4 * i + 4].copy_from_slice(&word(i)?);
            }
            let v6 = Ipv6Addr::from(b);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some((ip, port))
}

/// Parses the text of `/proc/net/tcp` or `/proc/net/tcp6`; malformed lines are skipped.
pub fn parse_proc_net_tcp(text: &str) -> Vec<Socket> {
    let mut v = Vec::new();
    parse_into(text, &mut v);
    v
}

fn parse_into(text: &str, out: &mut Vec<Socket>) {
    out.extend(text.lines().skip(1).filter_map(|l| {
        let mut f = l.split_whitespace().skip(1);
        let local = parse_addr(f.next()?)?;
        let remote = parse_addr(f.next()?)?;
        let state = u8::from_str_radix(f.next()?, 16).ok()?;
        Some(Socket { local, remote, state })
    }));
}

/// Appends every TCP socket of this network namespace (all states) to `out`.
pub fn read_proc_net_tcp(out: &mut Vec<Socket>) {
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        match std::fs::read_to_string(f) {
            Ok(t) => parse_into(&t, out),
            Err(e) => tracing::debug!(file = f, error = %e, "cannot read the socket table"),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::flows::TCP_LISTEN;

    pub(crate) const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 640012C6:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 640012C6:0050 010112C6:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   2: 640012C6:0050 020112C6:9C41 06 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
   3: 010012C6:0016 030112C6:9C42 01 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 20 4 30 10 -1
   4: garbage
";
    pub(crate) const TCP6: &str = "  sl  local_address                         remote_address                        st
   0: 0000000000000000FFFF0000640012C6:0050 0000000000000000FFFF0000040112C6:9C43 03 00000000:00000000
   1: B80D0120000000000000000001000000:01BB B80D0120000000000000000002000000:D431 01 00000000:00000000
";

    #[test]
    fn parses_the_kernels_tables() {
        let s = parse_proc_net_tcp(TCP);
        assert_eq!(s.len(), 4, "the garbage line is skipped");
        assert_eq!(s[1].local, ("198.18.0.100".parse().unwrap(), 80));
        assert_eq!(s[1].remote, ("198.18.1.1".parse().unwrap(), 40000));
        assert_eq!(s[0].state, TCP_LISTEN);
        let s6 = parse_proc_net_tcp(TCP6);
        assert_eq!(s6[0].remote, ("198.18.1.4".parse().unwrap(), 40003), "v4-mapped becomes v4");
        assert_eq!(s6[1].local, ("2001:db8::1".parse().unwrap(), 443));
        assert_eq!(s6[1].remote, ("2001:db8::2".parse().unwrap(), 0xd431));
    }
}
