//! Pre-built frames: the transmit loop only copies one into a fresh mbuf and
//! stamps it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use farm_table::{bucket_of, Affinity, HashKey};
use farm_wire::gen::FrameBuilder;
use farm_wire::{EthernetAddress, IpPayload, TcpFlags, TcpRepr, UdpRepr};

use crate::spec::{ClientRange, Kind, Mix, Owned, PortSpan};
use crate::stamp::{self, StampPlace, UDP_STAMP_PAYLOAD};

/// Smallest and largest Ethernet frame sizes accepted, FCS included.
pub const MIN_SIZE: u16 = 64;
/// See [`MIN_SIZE`].
pub const MAX_SIZE: u16 = 1518;
/// Bytes of FCS counted in a size but not built (the port adds it).
const FCS: usize = 4;

/// Why templates could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// No client range was given.
    #[error("no client address range")]
    NoClients,
    /// No size, no kind, or zero templates requested.
    #[error("nothing to build: {0}")]
    Empty(&'static str),
    /// A client family has no VIP of its family.
    #[error("client {client} is IPv{family} but no IPv{family} VIP was given")]
    NoVip {
        /// The client.
        client: IpAddr,
        /// 4 or 6.
        family: u8,
    },
    /// A size outside 64..=1518.
    #[error("frame size {0} outside {MIN_SIZE}..={MAX_SIZE}")]
    BadSize(u16),
    /// The frame builder refused the packet.
    #[error("cannot build a frame: {0}")]
    Build(#[from] farm_wire::Error),
    /// The builder made a frame without a stamp place (a bug).
    #[error("generated frame has no stamp place")]
    NoStamp,
}

/// The traffic shape.
#[derive(Debug, Clone)]
pub struct TrafficSpec {
    /// Ethernet source of every frame.
    pub src_mac: EthernetAddress,
    /// Ethernet destination; `None`: the VIP's virtual MAC (as a switch would
    /// flood it to the farm).
    pub dst_mac: Option<EthernetAddress>,
    /// IPv4 VIP (destination of IPv4 clients).
    pub vip4: Option<Ipv4Addr>,
    /// IPv6 VIP (destination of IPv6 clients).
    pub vip6: Option<Ipv6Addr>,
    /// TCP destination port.
    pub tcp_port: u16,
    /// UDP destination port.
    pub udp_port: u16,
    /// Client address ranges (both families may be mixed).
    pub clients: Vec<ClientRange>,
    /// Client source ports.
    pub sports: PortSpan,
    /// Ethernet frame sizes with FCS, used in turn (raised to the smallest
    /// frame that holds the headers and the stamp).
    pub sizes: Vec<u16>,
    /// Packet kinds.
    pub mix: Mix,
    /// How many distinct templates (capped by the number of combinations).
    pub templates: usize,
    /// Seed of the client/port choice.
    pub seed: u64,
}

/// How the device under test places clients in buckets, and which it owns.
#[derive(Debug, Clone, Copy)]
pub struct Hashing {
    /// The cluster's hash key.
    pub key: HashKey,
    /// Bucket count.
    pub n_buckets: u32,
    /// `on_addr` (source address) or `on_port` (address and port).
    pub affinity: Affinity,
    /// The buckets the device under test accepts.
    pub owned: Owned,
}

/// One pre-built frame.
#[derive(Debug, Clone)]
pub struct Template {
    /// The frame, without FCS, stamp zero.
    pub frame: Vec<u8>,
    /// Where its stamp goes.
    pub place: StampPlace,
    /// Its kind.
    pub kind: Kind,
    /// Its client (source) address.
    pub client: IpAddr,
    /// Its source port.
    pub sport: u16,
    /// The client's bucket.
    pub bucket: u32,
    /// Whether the device under test owns the bucket (so should send it back).
    pub accepted: bool,
}

/// splitmix64: a small, fast, seedable generator (no dependency).
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Header bytes before the L4 payload, and the smallest payload, per kind.
fn min_frame_len(v6: bool, kind: Kind) -> usize {
    let ip = if v6 { 40 } else { 20 };
    let l4 = match kind {
        Kind::Udp => 8 + UDP_STAMP_PAYLOAD,
        _ => 20,
    };
    (14 + ip + l4).max(farm_wire::frame::MIN_FRAME_LEN)
}

/// Builds one frame of `size` bytes (FCS included) or the smallest that fits.
fn frame(
    fb: &FrameBuilder,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    kind: Kind,
    size: u16,
) -> Result<Vec<u8>, TemplateError> {
    let v6 = src.is_ipv6();
    let len = (usize::from(size) - FCS).max(min_frame_len(v6, kind));
    let headers = 14 + if v6 { 40 } else { 20 } + if kind == Kind::Udp { 8 } else { 20 };
    let payload = vec![0u8; len.saturating_sub(headers)];
    let flags = match kind {
        Kind::Syn => TcpFlags::SYN,
        Kind::Ack => TcpFlags::ACK,
        Kind::Fin => TcpFlags::FIN | TcpFlags::ACK,
        Kind::Udp => TcpFlags(0),
    };
    let body = match kind {
        Kind::Udp => IpPayload::Udp { repr: UdpRepr { src_port: sport, dst_port: dport }, payload: &payload },
        _ => IpPayload::Tcp {
            repr: TcpRepr { src_port: sport, dst_port: dport, seq_number: 0, ack_number: 0, flags, window_len: 64240 },
            payload: &payload,
        },
    };
    Ok(fb.ip(src, dst, body)?)
}

/// Builds the templates: `spec.templates` frames (or every combination, if
/// fewer) of pseudo-random clients and source ports, the sizes in turn and the
/// kinds in the proportions of the mix.
///
/// # Errors
/// [`TemplateError`] for an empty or inconsistent spec.
pub fn build(spec: &TrafficSpec, hashing: &Hashing) -> Result<Vec<Template>, TemplateError> {
    if spec.clients.is_empty() {
        return Err(TemplateError::NoClients);
    }
    if spec.sizes.is_empty() {
        return Err(TemplateError::Empty("no frame size"));
    }
    if let Some(&s) = spec.sizes.iter().find(|s| !(MIN_SIZE..=MAX_SIZE).contains(*s)) {
        return Err(TemplateError::BadSize(s));
    }
    let kinds = spec.mix.total();
    if kinds == 0 || spec.templates == 0 {
        return Err(TemplateError::Empty("no kind or zero templates"));
    }
    for c in &spec.clients {
        match c.first {
            IpAddr::V4(_) if spec.vip4.is_none() => return Err(TemplateError::NoVip { client: c.first, family: 4 }),
            IpAddr::V6(_) if spec.vip6.is_none() => return Err(TemplateError::NoVip { client: c.first, family: 6 }),
            _ => {}
        }
    }
    let n_clients = spec.clients.iter().fold(0u128, |a, c| a.saturating_add(c.count));
    let n_ports = u128::from(spec.sports.last - spec.sports.first) + 1;
    let combos = n_clients
        .saturating_mul(n_ports)
        .saturating_mul(spec.sizes.len() as u128)
        .saturating_mul(u128::from(kinds));
    let count = usize::try_from(combos.min(spec.templates as u128)).unwrap_or(spec.templates);
    let mut rng = spec.seed;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let r = u128::from(splitmix64(&mut rng)) << 64 | u128::from(splitmix64(&mut rng));
        let mut ci = r % n_clients;
        let range = spec
            .clients
            .iter()
            .find(|c| {
                if ci < c.count {
                    true
                } else {
                    ci -= c.count;
                    false
                }
            })
            .ok_or(TemplateError::NoClients)?;
        let client = range.nth(ci);
        let span = u64::from(spec.sports.last - spec.sports.first) + 1;
        let sport = spec.sports.first + u16::try_from(splitmix64(&mut rng) % span).unwrap_or(0);
        let size = spec.sizes[i % spec.sizes.len()];
        let kind = spec.mix.pick((i / spec.sizes.len()) as u64 % kinds);
        let (vip, dport) = match client {
            IpAddr::V4(_) => (IpAddr::V4(spec.vip4.ok_or(TemplateError::NoClients)?), spec.tcp_port),
            IpAddr::V6(_) => (IpAddr::V6(spec.vip6.ok_or(TemplateError::NoClients)?), spec.tcp_port),
        };
        let dport = if kind == Kind::Udp { spec.udp_port } else { dport };
        let dst_mac = spec.dst_mac.unwrap_or_else(|| farm_pipeline::virtual_mac(vip));
        let fb = FrameBuilder::new(spec.src_mac, dst_mac);
        let frame = frame(&fb, client, vip, sport, dport, kind, size)?;
        let place = stamp::locate(&frame).ok_or(TemplateError::NoStamp)?;
        let port = (hashing.affinity == Affinity::OnPort).then_some(sport);
        let bucket = bucket_of(&hashing.key, client, port, hashing.n_buckets);
        out.push(Template { frame, place, kind, client, sport, bucket, accepted: hashing.owned.owns(bucket) });
    }
    Ok(out)
}

#[cfg(test)]
#[path = "template_tests.rs"]
mod tests;
