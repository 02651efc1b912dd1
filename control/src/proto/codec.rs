//! Binary encoding and HMAC-SHA256 authentication of heartbeats.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use farm_table::MAX_NODES;

use super::{Ack, DrainSet, Heartbeat, NodeState, Reject, Run};

/// Protocol version carried in byte 0.
pub const VERSION: u8 = 1;
/// Fixed part, before the drain runs.
pub const HEADER_LEN: usize = 78;
/// HMAC-SHA256 tag length.
pub const MAC_LEN: usize = 32;
/// Largest datagram (fits a 1500-byte MTU with IPv6 and UDP headers and room for tunnels).
pub const MAX_DATAGRAM: usize = 1400;
/// Most drain runs in one datagram.
pub const MAX_RUNS: usize = (MAX_DATAGRAM - HEADER_LEN - MAC_LEN) / 4;

const FLAG_ACTIVE: u8 = 1;
const FLAG_ACK: u8 = 2;
const FLAG_UNSETTLED: u8 = 4;
const KNOWN_FLAGS: u8 = FLAG_ACTIVE | FLAG_ACK | FLAG_UNSETTLED;

type HmacSha256 = Hmac<Sha256>;

/// Errors of [`Codec::new`] and [`Codec::encode`].
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The shared secret is empty.
    #[error("empty heartbeat secret")]
    EmptySecret,
    /// More drain runs than fit in one datagram (coarsen the set first).
    #[error("{runs} drain runs do not fit in one datagram (max {MAX_RUNS})")]
    TooManyRuns {
        /// Runs in the set.
        runs: usize,
    },
    /// A node id at or above `MAX_NODES`.
    #[error("node id {0} out of range")]
    BadNodeId(u8),
}

/// Encodes and authenticates outgoing heartbeats, and decodes and verifies incoming ones for
/// one node of one cluster.
#[derive(Clone)]
pub struct Codec {
    mac: HmacSha256,
    cluster_id: u32,
    local: u8,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec").field("cluster_id", &self.cluster_id).field("local", &self.local).finish_non_exhaustive()
    }
}

impl Codec {
    /// A codec keyed with the cluster's shared `secret`, for node `local` of `cluster_id`.
    pub fn new(secret: &[u8], cluster_id: u32, local: u8) -> Result<Codec, EncodeError> {
        if secret.is_empty() {
            return Err(EncodeError::EmptySecret);
        }
        if usize::from(local) >= MAX_NODES {
            return Err(EncodeError::BadNodeId(local));
        }
        let mac = HmacSha256::new_from_slice(secret).map_err(|_| EncodeError::EmptySecret)?;
        Ok(Codec { mac, cluster_id, local })
    }

    /// This node's id.
    pub fn local(&self) -> u8 {
        self.local
    }

    /// The cluster id.
    pub fn cluster_id(&self) -> u32 {
        self.cluster_id
    }

    /// Encodes `hb` followed by its MAC.
    pub fn encode(&self, hb: &Heartbeat) -> Result<Vec<u8>, EncodeError> {
        let mut buf = Vec::with_capacity(HEADER_LEN + 4 * hb.drain.runs().len() + MAC_LEN);
        self.encode_into(hb, &mut buf)?;
        Ok(buf)
    }

    /// Encodes `hb` followed by its MAC into `buf` (cleared first).
    pub fn encode_into(&self, hb: &Heartbeat, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
        let runs = hb.drain.runs();
        if runs.len() > MAX_RUNS {
            return Err(EncodeError::TooManyRuns { runs: runs.len() });
        }
        for id in [hb.sender, hb.dest] {
            if usize::from(id) >= MAX_NODES {
                return Err(EncodeError::BadNodeId(id));
            }
        }
        buf.clear();
        let mut flags = 0;
        if hb.active {
            flags |= FLAG_ACTIVE;
        }
        if hb.ack.is_some() {
            flags |= FLAG_ACK;
        }
        if !hb.settled {
            flags |= FLAG_UNSETTLED;
        }
        buf.extend_from_slice(&[VERSION, hb.state.to_wire(), flags, hb.sender, hb.dest, 0]);
        buf.extend_from_slice(&hb.weight.to_be_bytes());
        buf.extend_from_slice(&hb.cluster_id.to_be_bytes());
        let ack = hb.ack.unwrap_or(Ack { incarnation: 0, sequence: 0 });
        for v in [
            hb.incarnation,
            hb.sequence,
            hb.timestamp_ns,
            hb.view,
            hb.view_digest,
            hb.generation,
            ack.incarnation,
            ack.sequence,
        ] {
            buf.extend_from_slice(&v.to_be_bytes());
        }
        buf.extend_from_slice(&(runs.len() as u16).to_be_bytes());
        debug_assert_eq!(buf.len(), HEADER_LEN);
        for r in runs {
            // Invariants of DrainSet: start < 65536, 1 <= len <= 65536.
            buf.extend_from_slice(&(r.start as u16).to_be_bytes());
            buf.extend_from_slice(&((r.len - 1) as u16).to_be_bytes());
        }
        let mut mac = self.mac.clone();
        mac.update(buf);
        let tag = mac.finalize().into_bytes();
        buf.extend_from_slice(&tag);
        Ok(())
    }

    /// Decodes and verifies a received datagram: length, version, cluster id, MAC (constant
    /// time), destination, structure. Does not check freshness (see [`super::ReplayGuard`]).
    pub fn decode(&self, bytes: &[u8]) -> Result<Heartbeat, Reject> {
        let len = bytes.len();
        if len < HEADER_LEN + MAC_LEN {
            return Err(Reject::Truncated { len });
        }
        if len > MAX_DATAGRAM {
            return Err(Reject::BadLength { len, expected: MAX_DATAGRAM });
        }
        if bytes[0] != VERSION {
            return Err(Reject::BadVersion(bytes[0]));
        }
        let n_runs = usize::from(u16::from_be_bytes([bytes[76], bytes[77]]));
        let expected = HEADER_LEN + 4 * n_runs + MAC_LEN;
        if len != expected {
            return Err(Reject::BadLength { len, expected });
        }
        // Unauthenticated, but only used to tell "another farm" from "forgery" in counters.
        let cluster_id = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if cluster_id != self.cluster_id {
            return Err(Reject::ForeignCluster(cluster_id));
        }
        let (body, tag) = bytes.split_at(len - MAC_LEN);
        let mut mac = self.mac.clone();
        mac.update(body);
        mac.verify_slice(tag).map_err(|_| Reject::BadMac)?;

        let state = NodeState::from_wire(bytes[1]).ok_or(Reject::Malformed("unknown state"))?;
        let flags = bytes[2];
        if flags & !KNOWN_FLAGS != 0 {
            return Err(Reject::Malformed("unknown flags"));
        }
        let (sender, dest) = (bytes[3], bytes[4]);
        if usize::from(sender) >= MAX_NODES {
            return Err(Reject::Malformed("sender id out of range"));
        }
        if bytes[5] != 0 {
            return Err(Reject::Malformed("reserved byte set"));
        }
        if dest != self.local {
            return Err(Reject::WrongDest(dest));
        }
        if sender == self.local {
            return Err(Reject::FromSelf);
        }
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[o..o + 8]);
            u64::from_be_bytes(b)
        };
        let u16_at = |o: usize| u16::from_be_bytes([bytes[o], bytes[o + 1]]);
        let runs: Vec<Run> = (0..n_runs)
            .map(|i| {
                let o = HEADER_LEN + 4 * i;
                Run { start: u32::from(u16_at(o)), len: u32::from(u16_at(o + 2)) + 1 }
            })
            .collect();
        let drain = DrainSet::from_runs(runs).ok_or(Reject::Malformed("drain runs not sorted and disjoint"))?;
        let ack = (flags & FLAG_ACK != 0).then(|| Ack { incarnation: u64_at(60), sequence: u64_at(68) });
        Ok(Heartbeat {
            cluster_id,
            sender,
            dest,
            incarnation: u64_at(12),
            sequence: u64_at(20),
            state,
            weight: u16_at(6),
            active: flags & FLAG_ACTIVE != 0,
            settled: flags & FLAG_UNSETTLED == 0,
            view: u64_at(36),
            view_digest: u64_at(44),
            generation: u64_at(52),
            timestamp_ns: u64_at(28),
            ack,
            drain,
        })
    }
}
