//! A capture on the client's side of the wire (`tcpdump` in the client namespace) and what it
//! proves about the farm:
//!
//! - no SYN answered by two nodes: every node answers from the VIP, so the node is told by the
//!   Ethernet source of the SYN-ACK (its uplink's MAC); two SYN-ACKs for one SYN (same client
//!   address, port and acknowledged sequence number) from two MACs are a duplicate;
//! - no RST from a node other than the one that answered the connection's SYN;
//! - the virtual MAC is never the source of a frame, and every ARP reply for the VIP binds it
//!   to the virtual MAC (never to a node's own MAC).
//!
//! Frames of a node that was killed may be excused (its connections die with it: the new owner
//! answers their next segments with RST, and a SYN in flight at the kill may be answered twice).
//!
//! Every SYN answered twice is also listed in [`CaptureReport::duplicates`] with the capture
//! times of both answers, excused or not, so a fault test can judge each one against the time
//! of its fault (a SYN-ACK that a node's kernel retransmits for a SYN it accepted before the
//! fault is no new acceptance).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::cmd::command;
use super::error::LabError;
use super::layout::CLIENT_IF;
use super::procs;

/// A MAC address.
pub type Mac = [u8; 6];

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_str(m: &Mac) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<Mac> {
    let v: Vec<u8> = s.split(':').map(|p| u8::from_str_radix(p, 16)).collect::<Result<_, _>>().ok()?;
    v.try_into().ok()
}

/// The virtual MAC of an IPv4 VIP: `5a:fe:` + the address.
pub fn virtual_mac(vip: Ipv4Addr) -> Mac {
    let o = vip.octets();
    [0x5a, 0xfe, o[0], o[1], o[2], o[3]]
}

/// A running `tcpdump` in a namespace, writing a pcap file.
#[derive(Debug)]
pub struct Capture {
    child: Option<Child>,
    file: PathBuf,
    stderr: mpsc::Receiver<String>,
}

/// The filter: ARP, any frame from the virtual MAC, and SYN or RST segments from the VIP.
pub fn filter(vip: Ipv4Addr) -> String {
    let vmac = mac_str(&virtual_mac(vip));
    format!("arp or ether src {vmac} or (tcp and src host {vip} and (tcp[tcpflags] & (tcp-syn|tcp-rst) != 0))")
}

impl Capture {
    /// Starts capturing on the client's interface of namespace `ns` into `file`; returns once
    /// tcpdump listens.
    pub fn start(ns: &str, vip: Ipv4Addr, file: &Path) -> Result<Capture, LabError> {
        let _ = std::fs::remove_file(file);
        let mut c = command("ip");
        c.args(["netns", "exec", ns])
            .arg(super::cmd::resolve("tcpdump".as_ref()))
            .args(["-i", CLIENT_IF, "-n", "-U", "--immediate-mode", "-B", "8192", "-w"])
            .arg(file)
            .arg(filter(vip))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = c.spawn().map_err(|source| LabError::Spawn { cmd: format!("tcpdump in {ns}"), source })?;
        let err = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut cap = Capture { child: Some(child), file: file.to_owned(), stderr: rx };
        let mut seen = Vec::new();
        loop {
            match cap.stderr.recv_timeout(Duration::from_secs(5)) {
                Ok(l) if l.contains("listening on") => return Ok(cap),
                Ok(l) => seen.push(l),
                Err(_) => {
                    cap.kill();
                    return Err(LabError::Timeout {
                        what: format!("tcpdump in {ns}"),
                        after: Duration::from_secs(5),
                        detail: seen.join("\n"),
                    });
                }
            }
        }
    }

    /// Stops tcpdump (SIGINT, so it writes what it has) and analyses the capture; `excused`
    /// are the MACs of nodes that were killed during it.
    pub fn finish(mut self, nodes: &[(usize, Mac)], vip: Ipv4Addr, excused: &[Mac]) -> Result<CaptureReport, LabError> {
        let mut child = self.child.take().expect("running");
        // tcpdump may lag behind the traffic, and frames still queued in the kernel when it
        // stops are lost (and not counted as dropped): wait until the file stops growing.
        let size = |f: &Path| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        let (mut last, mut stable, end) = (size(&self.file), 0, std::time::Instant::now() + Duration::from_secs(10));
        while stable < 3 && std::time::Instant::now() < end {
            std::thread::sleep(Duration::from_millis(100));
            let now = size(&self.file);
            stable = if now == last { stable + 1 } else { 0 };
            last = now;
        }
        procs::send(child.id() as i32, nix::sys::signal::Signal::SIGINT);
        let _ = child.wait();
        let mut dropped = 0;
        while let Ok(l) = self.stderr.recv_timeout(Duration::from_millis(500)) {
            if let Some(n) = l.strip_suffix(" packets dropped by kernel") {
                dropped = n.trim().parse().unwrap_or(0);
            }
        }
        let bytes = std::fs::read(&self.file).map_err(|e| LabError::io(&self.file, e))?;
        let frames = read_pcap_timed(&bytes).map_err(|e| LabError::Check(format!("{}: {e}", self.file.display())))?;
        let mut rep = analyse_timed(&frames, nodes, vip, excused);
        rep.dropped = dropped;
        Ok(rep)
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The frames of a pcap file.
pub fn read_pcap(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    Ok(read_pcap_timed(bytes)?.into_iter().map(|(_, f)| f).collect())
}

/// The frames of a pcap file with their capture times (since the Unix epoch).
pub fn read_pcap_timed(bytes: &[u8]) -> Result<Vec<(Duration, Vec<u8>)>, String> {
    let mut r = pcap_file::pcap::PcapReader::new(bytes).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.map_err(|e| e.to_string())?;
        out.push((p.timestamp, p.data.into_owned()));
    }
    Ok(out)
}

/// A capture time (pcap timestamps are wall-clock time) for an instant taken now, e.g. the
/// start of a fault.
pub fn capture_time_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// One SYN answered by two nodes: the first answer, then the first answer of another node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Duplicate {
    /// The client's address and port (the SYN's source).
    pub client: (Ipv4Addr, u16),
    /// Node of the first SYN-ACK (0: unknown MAC) and when it was captured.
    pub first: (usize, Duration),
    /// Node of the other node's first SYN-ACK and when it was captured.
    pub second: (usize, Duration),
}

impl Duplicate {
    /// Whether the first answer came before `t` (both capture times): the first node accepted
    /// the SYN before `t`, and what it sends later are its kernel's retransmissions.
    pub fn first_answer_before(&self, t: Duration) -> bool {
        self.first.1 < t
    }
}

impl fmt::Display for Duplicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_millis() % 100_000;
        write!(
            f,
            "SYN from {}:{} answered by n{} (t={} ms) and n{} (t={} ms, {} ms later)",
            self.client.0,
            self.client.1,
            self.first.0,
            ms(self.first.1),
            self.second.0,
            ms(self.second.1),
            self.second.1.saturating_sub(self.first.1).as_millis()
        )
    }
}

/// One RST from the VIP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reset {
    /// Capture time (since the Unix epoch, as [`capture_time_now`]).
    pub at: Duration,
    /// The node that sent it (by its MAC; 0: unknown MAC).
    pub node: usize,
    /// The client's address and port.
    pub client: (Ipv4Addr, u16),
}

impl fmt::Display for Reset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RST from n{} to {}:{} (t={} ms)", self.node, self.client.0, self.client.1, self.at.as_millis() % 100_000)
    }
}

/// What a capture shows.
#[derive(Clone, Debug, Default)]
pub struct CaptureReport {
    /// Frames captured.
    pub frames: usize,
    /// Frames the kernel dropped before tcpdump saw them (the capture is then incomplete).
    pub dropped: u64,
    /// SYN-ACKs from the VIP, per answering node.
    pub syn_acks: BTreeMap<usize, usize>,
    /// SYN-ACKs per (client address, VIP port).
    pub syn_acks_to: BTreeMap<(Ipv4Addr, u16), usize>,
    /// Distinct SYNs answered (client address, port and initial sequence number).
    pub syns_answered: usize,
    /// Every SYN answered by two nodes (excused or not), in capture order.
    pub duplicates: Vec<Duplicate>,
    /// RSTs from the VIP, per node.
    pub rsts: BTreeMap<usize, usize>,
    /// Every RST from the VIP, in capture order (who sent it to which client, when).
    pub resets: Vec<Reset>,
    /// ARP replies for the VIP (all carrying the virtual MAC when correct).
    pub vip_arp_replies: usize,
    /// Everything that breaks the farm's rules (empty when all is well).
    pub violations: Vec<String>,
    /// What was excused (involving a killed node).
    pub excused: Vec<String>,
}

impl fmt::Display for CaptureReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} frames ({} dropped), {} SYNs answered ({} by two nodes), SYN-ACKs per node {:?}, RSTs per node {:?}, {} VIP ARP replies, {} violations, {} excused",
            self.frames,
            self.dropped,
            self.syns_answered,
            self.duplicates.len(),
            self.syn_acks,
            self.rsts,
            self.vip_arp_replies,
            self.violations.len(),
            self.excused.len()
        )
    }
}

struct Tcp {
    src_mac: Mac,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    ack: u32,
    flags: u8,
}

fn be16(b: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([b[o], b[o + 1]])
}

fn mac_at(b: &[u8], o: usize) -> Mac {
    b[o..o + 6].try_into().expect("6 bytes")
}

fn ip_at(b: &[u8], o: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[o], b[o + 1], b[o + 2], b[o + 3])
}

/// Ethernet (optionally one VLAN tag) → (ethertype, payload offset).
fn ether(f: &[u8]) -> Option<(u16, usize)> {
    if f.len() < 14 {
        return None;
    }
    let t = be16(f, 12);
    if t == 0x8100 && f.len() >= 18 {
        return Some((be16(f, 16), 18));
    }
    Some((t, 14))
}

fn parse_tcp(f: &[u8]) -> Option<Tcp> {
    let (t, o) = ether(f)?;
    if t != 0x0800 || f.len() < o + 20 || f[o] >> 4 != 4 || f[o + 9] != 6 {
        return None;
    }
    let ihl = usize::from(f[o] & 0x0f) * 4;
    let t = o + ihl;
    if f.len() < t + 14 {
        return None;
    }
    Some(Tcp {
        src_mac: mac_at(f, 6),
        src: ip_at(f, o + 12),
        dst: ip_at(f, o + 16),
        sport: be16(f, t),
        dport: be16(f, t + 2),
        ack: u32::from_be_bytes(f[t + 8..t + 12].try_into().ok()?),
        flags: f[t + 13],
    })
}

const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// Checks the frames (see the module documentation).
pub fn analyse(frames: &[Vec<u8>], nodes: &[(usize, Mac)], vip: Ipv4Addr, excused: &[Mac]) -> CaptureReport {
    let timed: Vec<(Duration, Vec<u8>)> = frames.iter().map(|f| (Duration::ZERO, f.clone())).collect();
    analyse_timed(&timed, nodes, vip, excused)
}

/// [`analyse`] over frames with their capture times (which [`CaptureReport::duplicates`] gives).
pub fn analyse_timed(frames: &[(Duration, Vec<u8>)], nodes: &[(usize, Mac)], vip: Ipv4Addr, excused: &[Mac]) -> CaptureReport {
    let vmac = virtual_mac(vip);
    let name = |m: &Mac| nodes.iter().find(|(_, x)| x == m).map(|(i, _)| *i);
    let label = |m: &Mac| name(m).map_or_else(|| mac_str(m), |i| format!("n{i}"));
    let mut rep = CaptureReport { frames: frames.len(), ..Default::default() };
    let flag = |rep: &mut CaptureReport, killed: bool, msg: String| {
        if killed {
            rep.excused.push(msg);
        } else {
            rep.violations.push(msg);
        }
    };
    // (client, client port) -> (acknowledged ISN + 1, MAC of the SYN-ACK, capture time).
    type Answer = (u32, Mac, Duration);
    let mut answered: BTreeMap<(Ipv4Addr, u16), Vec<Answer>> = BTreeMap::new();
    for (k, (ts, f)) in frames.iter().enumerate() {
        if f.len() >= 12 && mac_at(f, 6) == vmac {
            rep.violations.push(format!("frame {k}: the virtual MAC {} is a source", mac_str(&vmac)));
        }
        if let Some((0x0806, o)) = ether(f) {
            // ARP: op at +6, sender MAC +8, sender IP +14.
            if f.len() >= o + 28 && be16(f, o + 6) == 2 && ip_at(f, o + 14) == vip {
                rep.vip_arp_replies += 1;
                let sha = mac_at(f, o + 8);
                if sha != vmac {
                    rep.violations.push(format!(
                        "frame {k}: ARP reply binds the VIP to {} (from {})",
                        mac_str(&sha),
                        label(&mac_at(f, 6))
                    ));
                }
            }
            continue;
        }
        let Some(t) = parse_tcp(f) else { continue };
        if t.src != vip {
            continue;
        }
        let node = name(&t.src_mac);
        let killed = excused.contains(&t.src_mac);
        let key = (t.dst, t.dport);
        if t.flags & (SYN | ACK) == SYN | ACK {
            *rep.syn_acks.entry(node.unwrap_or(0)).or_default() += 1;
            *rep.syn_acks_to.entry((t.dst, t.sport)).or_default() += 1;
            let seen = answered.entry(key).or_default();
            if !seen.iter().any(|(ack, _, _)| *ack == t.ack) {
                rep.syns_answered += 1;
            }
            // Only the first answer of each other node counts (retransmissions repeat it).
            let by_me = seen.iter().any(|(ack, m, _)| *ack == t.ack && *m == t.src_mac);
            if let Some((_, other, other_ts)) = seen.iter().find(|(ack, m, _)| *ack == t.ack && *m != t.src_mac) {
                if !by_me {
                    let msg = format!(
                        "frame {k}: SYN from {}:{} answered by {} and {}",
                        t.dst,
                        t.dport,
                        label(other),
                        label(&t.src_mac)
                    );
                    rep.duplicates.push(Duplicate {
                        client: key,
                        first: (name(other).unwrap_or(0), *other_ts),
                        second: (node.unwrap_or(0), *ts),
                    });
                    let other_killed = excused.contains(other);
                    flag(&mut rep, killed || other_killed, msg);
                }
            }
            seen.push((t.ack, t.src_mac, *ts));
        } else if t.flags & RST != 0 {
            *rep.rsts.entry(node.unwrap_or(0)).or_default() += 1;
            rep.resets.push(Reset { at: *ts, node: node.unwrap_or(0), client: key });
            let owner = answered.get(&key).and_then(|v| v.last()).map(|(_, m, _)| *m);
            match owner {
                Some(m) if m == t.src_mac => {}
                Some(m) => {
                    let msg = format!(
                        "frame {k}: RST to {}:{} from {}, whose SYN {} answered",
                        t.dst,
                        t.dport,
                        label(&t.src_mac),
                        label(&m)
                    );
                    flag(&mut rep, killed || excused.contains(&m), msg);
                }
                None => {
                    let msg = format!(
                        "frame {k}: RST to {}:{} from {} for a connection not seen opening",
                        t.dst,
                        t.dport,
                        label(&t.src_mac)
                    );
                    flag(&mut rep, killed || !excused.is_empty(), msg);
                }
            }
        }
        if node.is_none() {
            rep.violations.push(format!("frame {k}: VIP segment from unknown MAC {}", mac_str(&t.src_mac)));
        }
    }
    rep
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
    const N1: Mac = [2, 0xfa, 0, 0, 0, 1];
    const N2: Mac = [2, 0xfa, 0, 0, 0, 2];
    const CL: Mac = [2, 0xfa, 0, 0, 1, 1];

    fn tcp(src_mac: Mac, dport: u16, ack: u32, flags: u8) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&CL);
        f.extend_from_slice(&src_mac);
        f.extend_from_slice(&[0x08, 0x00]);
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[9] = 6;
        ip[12..16].copy_from_slice(&VIP.octets());
        ip[16..20].copy_from_slice(&[198, 18, 1, 7]);
        f.extend_from_slice(&ip);
        let mut t = [0u8; 20];
        t[0..2].copy_from_slice(&80u16.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        t[8..12].copy_from_slice(&ack.to_be_bytes());
        t[12] = 0x50;
        t[13] = flags;
        f.extend_from_slice(&t);
        f
    }

    fn arp_reply(src_mac: Mac, sha: Mac) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&CL);
        f.extend_from_slice(&src_mac);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2]);
        f.extend_from_slice(&sha);
        f.extend_from_slice(&VIP.octets());
        f.extend_from_slice(&CL);
        f.extend_from_slice(&[198, 18, 1, 1]);
        f
    }

    const NODES: &[(usize, Mac)] = &[(1, N1), (2, N2)];

    #[test]
    fn clean_traffic_has_no_violation() {
        let vmac = virtual_mac(VIP);
        let frames = vec![
            tcp(N1, 40000, 11, SYN | ACK),
            tcp(N1, 40000, 11, SYN | ACK), // retransmitted by the same node
            tcp(N2, 40001, 12, SYN | ACK),
            tcp(N2, 40001, 13, RST | ACK),
            arp_reply(N1, vmac),
        ];
        let r = analyse(&frames, NODES, VIP, &[]);
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        assert_eq!(r.syn_acks.get(&1), Some(&2));
        assert_eq!(r.rsts.get(&2), Some(&1));
        assert_eq!(r.resets, vec![Reset { at: Duration::ZERO, node: 2, client: (Ipv4Addr::new(198, 18, 1, 7), 40001) }]);
        assert_eq!(r.vip_arp_replies, 1);
    }

    #[test]
    fn duplicates_foreign_resets_and_bad_arp_are_violations() {
        let frames = vec![
            tcp(N1, 40000, 11, SYN | ACK),
            tcp(N2, 40000, 11, SYN | ACK),
            tcp(N1, 40001, 21, SYN | ACK),
            tcp(N2, 40001, 22, RST),
            tcp(N2, 40002, 5, RST),
            arp_reply(N1, N1),
            arp_reply(virtual_mac(VIP), virtual_mac(VIP)),
        ];
        let r = analyse(&frames, NODES, VIP, &[]);
        let v = r.violations.join("\n");
        assert!(v.contains("answered by n1 and n2"), "{v}");
        assert!(v.contains("RST to 198.18.1.7:40001 from n2, whose SYN n1 answered"), "{v}");
        assert!(v.contains("not seen opening"), "{v}");
        assert!(v.contains("binds the VIP to 02:fa:00:00:00:01"), "{v}");
        assert!(v.contains("virtual MAC 5a:fe:c6:12:00:64 is a source"), "{v}");
        // With n1 killed, what involves it is excused; the rest stays.
        let r = analyse(&frames, NODES, VIP, &[N1]);
        assert!(r.excused.iter().any(|e| e.contains("answered by n1 and n2")), "{:?}", r.excused);
        assert!(!r.violations.iter().any(|e| e.contains("answered by")), "{:?}", r.violations);
        assert!(r.violations.iter().any(|e| e.contains("binds the VIP")));
    }

    #[test]
    fn duplicates_carry_both_answers_with_their_times() {
        let at = |ms: u64, f: Vec<u8>| (Duration::from_millis(ms), f);
        let frames = vec![
            at(100, tcp(N1, 40000, 11, SYN | ACK)),
            at(150, tcp(N1, 40000, 11, SYN | ACK)), // n1's kernel retransmits
            at(1200, tcp(N2, 40000, 11, SYN | ACK)),
            at(2200, tcp(N2, 40000, 11, SYN | ACK)), // n2 retransmits: the same duplicate
            at(3000, tcp(N1, 40001, 12, SYN | ACK)),
            at(3000, tcp(N1, 40000, 99, SYN | ACK)), // a new SYN from a reused port
        ];
        let r = analyse_timed(&frames, NODES, VIP, &[]);
        assert_eq!(r.syns_answered, 3);
        assert_eq!(r.duplicates.len(), 1, "{:?}", r.duplicates);
        let d = &r.duplicates[0];
        assert_eq!(d.client, (Ipv4Addr::new(198, 18, 1, 7), 40000));
        assert_eq!(d.first, (1, Duration::from_millis(100)));
        assert_eq!(d.second, (2, Duration::from_millis(1200)));
        assert!(d.first_answer_before(Duration::from_millis(500)));
        assert!(!d.first_answer_before(Duration::from_millis(50)));
        assert!(d.to_string().contains("answered by n1 (t=100 ms) and n2 (t=1200 ms, 1100 ms later)"), "{d}");
        assert_eq!(r.violations.len(), 1, "{:?}", r.violations);
    }

    #[test]
    fn macs_and_filter() {
        assert_eq!(mac_str(&virtual_mac(VIP)), "5a:fe:c6:12:00:64");
        assert_eq!(parse_mac("02:fa:00:00:00:0a"), Some([2, 0xfa, 0, 0, 0, 10]));
        assert_eq!(parse_mac("02:fa:00"), None);
        assert!(filter(VIP).contains("ether src 5a:fe:c6:12:00:64"));
    }
}
