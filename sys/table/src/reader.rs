//! The reader side (data plane): opens the file, follows generations, writes counters.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};

use crate::layout::{DpHeader, Header, LcoreArea, Layout, SlotHeader, ABI_VERSION, MAGIC, OFFLINE};
use crate::mmap::Mapping;
use crate::{BucketEntry, Counter, HashKey, TableError, TableParams, MAX_BUCKETS, MAX_LCORES, MAX_NODES, MIN_BUCKETS};

/// A data plane's view of a table file.
#[derive(Debug)]
pub struct TableReader {
    map: Mapping,
    layout: Layout,
    params: TableParams,
    path: PathBuf,
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

impl TableReader {
    /// Opens and validates a table file created by farmd.
    ///
    /// Every header field is checked before the file is mapped: magic, ABI version, header
    /// size, bucket and lcore counts, the offsets (recomputed, never trusted) and the file's
    /// length. Any mismatch is a clear [`TableError`].
    pub fn open(path: &Path) -> Result<TableReader, TableError> {
        let p = || path.to_owned();
        let file = OpenOptions::new().read(true).write(true).open(path).map_err(|source| TableError::Io {
            path: p(),
            what: match source.kind() {
                std::io::ErrorKind::NotFound => "open (is farmd running? it creates the table)",
                std::io::ErrorKind::PermissionDenied => "open (permission denied: the table is mode 0600, run as its owner)",
                _ => "open",
            },
            source,
        })?;
        let len = file.metadata().map_err(|source| TableError::Io { path: p(), what: "stat", source })?.len();
        let hsize = std::mem::size_of::<Header>();
        if len < 8 {
            return Err(TableError::Truncated { path: p(), len, expected: hsize as u64 });
        }
        let mut hb = vec![0u8; hsize.min(len as usize)];
        file.read_exact_at(&mut hb, 0).map_err(|source| TableError::Io { path: p(), what: "read header", source })?;
        let magic = u64_at(&hb, 0);
        if magic != MAGIC {
            return Err(TableError::BadMagic { path: p(), found: magic, expected: MAGIC });
        }
        if hb.len() < 12 {
            return Err(TableError::Truncated { path: p(), len, expected: hsize as u64 });
        }
        let version = u32_at(&hb, 8);
        if version != ABI_VERSION {
            return Err(TableError::AbiVersion { path: p(), found: version, expected: ABI_VERSION });
        }
        if hb.len() < hsize {
            return Err(TableError::Truncated { path: p(), len, expected: hsize as u64 });
        }
        let bad = |what: String| TableError::BadHeader { path: p(), what };
        let header_size = u32_at(&hb, 12);
        if header_size as usize != hsize {
            return Err(bad(format!("header size {header_size}, expected {hsize}")));
        }
        let total_size = u64_at(&hb, 16);
        let n_buckets = u32_at(&hb, 24);
        let n_lcores = u32_at(&hb, 28);
        let node_id = u32_at(&hb, 32);
        if !n_buckets.is_power_of_two() || !(MIN_BUCKETS..=MAX_BUCKETS).contains(&n_buckets) {
            return Err(bad(format!("n_buckets {n_buckets} is not a power of two in {MIN_BUCKETS}..={MAX_BUCKETS}")));
        }
        if n_lcores == 0 || n_lcores as usize > MAX_LCORES {
            return Err(bad(format!("n_lcores {n_lcores} not in 1..={MAX_LCORES}")));
        }
        if node_id as usize >= MAX_NODES {
            return Err(bad(format!("node id {node_id} not below {MAX_NODES}")));
        }
        let layout = Layout::new(n_buckets, n_lcores);
        if total_size != layout.total_size || len < layout.total_size {
            return Err(TableError::Truncated { path: p(), len, expected: layout.total_size });
        }
        let s0 = u64_at(&hb, 56);
        let s1 = u64_at(&hb, 64);
        let dp = u64_at(&hb, 72);
        if [s0, s1] != layout.slot_offset || dp != layout.dp_offset {
            return Err(bad(format!("region offsets {s0}/{s1}/{dp} do not match the layout for {n_buckets} buckets")));
        }
        let params = TableParams {
            n_buckets,
            node_id: node_id as u8,
            n_lcores,
            hash_key: HashKey { k0: u64_at(&hb, 40), k1: u64_at(&hb, 48) },
        };
        let map = Mapping::map(&file, layout.total_size, path)?;
        let r = TableReader { map, layout, params, path: path.to_owned() };
        if r.header().published.load(Ordering::Acquire) == 0 {
            return Err(bad("no generation published yet".into()));
        }
        Ok(r)
    }

    fn header(&self) -> &Header {
        self.map.at::<Header>(0)
    }

    fn dp(&self) -> &DpHeader {
        self.map.at::<DpHeader>(self.layout.dp_offset)
    }

    /// The table's parameters, as read from its header.
    pub fn params(&self) -> TableParams {
        self.params
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The generation currently published (for diagnostics; lcores use [`LcoreHandle::begin`]).
    pub fn published(&self) -> u64 {
        self.header().published.load(Ordering::Acquire)
    }

    /// The lease deadline farmd last wrote (`CLOCK_MONOTONIC` ns, 0 = none yet).
    pub fn lease_until_ns(&self) -> u64 {
        self.header().lease_until_ns.load(Ordering::Acquire)
    }

    /// The pid of the farmd that created the table.
    pub fn writer_pid(&self) -> u32 {
        self.header().writer_pid
    }

    /// The handle of worker lcore `idx`; marks it offline until its first `begin`.
    /// Exactly one thread should use a given index.
    pub fn lcore(&self, idx: usize) -> Result<LcoreHandle<'_>, TableError> {
        let n = self.layout.n_lcores as usize;
        if idx >= n {
            return Err(TableError::LcoreOutOfRange { idx, n });
        }
        let area = self.map.at::<LcoreArea>(self.layout.lcores_offset + (idx * std::mem::size_of::<LcoreArea>()) as u64);
        area.ack.store(OFFLINE, Ordering::SeqCst);
        let slot = |i: usize| {
            let off = self.layout.slot_offset[i];
            (
                self.map.at::<SlotHeader>(off),
                self.map.slice::<AtomicU16>(off + std::mem::size_of::<SlotHeader>() as u64, self.layout.n_buckets as usize),
            )
        };
        Ok(LcoreHandle {
            header: self.header(),
            dp: self.dp(),
            lease: &self.header().lease_until_ns,
            area,
            slots: [slot(0), slot(1)],
            acked: OFFLINE,
            node_id: self.params.node_id,
            mask: self.layout.n_buckets - 1,
        })
    }

    /// Publishes the uplink's link state.
    pub fn set_link(&self, up: bool, speed_mbps: u32) {
        self.dp().link_up.store(u32::from(up), Ordering::Relaxed);
        self.dp().link_speed_mbps.store(speed_mbps, Ordering::Relaxed);
    }

    /// Publishes the data plane's pid.
    pub fn set_pid(&self, pid: u32) {
        self.dp().pid.store(pid, Ordering::Relaxed);
    }

    /// Publishes the workers' TSC frequency (ticks per second), which turns the
    /// `busy_cycles` counter into time.
    pub fn set_tsc_hz(&self, hz: u64) {
        self.dp().tsc_hz.store(hz, Ordering::Relaxed);
    }

    /// The TSC frequency the data plane published (0 = not reported).
    pub fn tsc_hz(&self) -> u64 {
        self.dp().tsc_hz.load(Ordering::Relaxed)
    }

    /// The published generation, its live bitmap and a copy of its entries, read without
    /// taking part in the quiescent-state protocol. If the writer publishes twice during the
    /// copy, the copy may mix two generations: use it for diagnostics and heuristics (tools,
    /// "is a handover in progress"), never for forwarding decisions.
    pub fn peek(&self) -> (u64, u64, Vec<BucketEntry>) {
        let g = self.header().published.load(Ordering::Acquire);
        let off = self.layout.slot_offset[(g & 1) as usize];
        let slot = self.map.at::<SlotHeader>(off);
        let cells =
            self.map.slice::<AtomicU16>(off + std::mem::size_of::<SlotHeader>() as u64, self.layout.n_buckets as usize);
        let entries = cells
            .iter()
            .map(|c| {
                let v = c.load(Ordering::Relaxed);
                BucketEntry { owner: v as u8, prev_owner: (v >> 8) as u8 }
            })
            .collect();
        (g, slot.live.load(Ordering::Relaxed), entries)
    }

    /// Live flows per bucket, maintained by the data plane with relaxed `fetch_add`/`fetch_sub`.
    pub fn flows(&self) -> &[AtomicU32] {
        self.map.slice::<AtomicU32>(self.layout.flows_offset, self.layout.n_buckets as usize)
    }
}

type Slot<'a> = (&'a SlotHeader, &'a [AtomicU16]);

/// One worker lcore's access to the table: the quiescent-state protocol and its counters.
#[derive(Debug)]
pub struct LcoreHandle<'a> {
    header: &'a Header,
    dp: &'a DpHeader,
    lease: &'a AtomicU64,
    area: &'a LcoreArea,
    slots: [Slot<'a>; 2],
    acked: u64,
    node_id: u8,
    mask: u32,
}

impl<'a> LcoreHandle<'a> {
    /// Acknowledges the newest generation and returns a view of its slot, fenced if the lease
    /// has passed at `now_ns` (`CLOCK_MONOTONIC`; a recent cached reading is enough: the
    /// caller refreshes it every few polls and after every sleep).
    ///
    /// Call at the start of every burst. The hot path (no new generation) is the generation's
    /// load, the lease's load and a compare. When the generation changed, the new one is
    /// stored in the lcore's `ack` and the published value re-checked, so the writer either sees this lcore on the old generation (and waits before
    /// reusing its slot) or this lcore sees the new one. The view stays coherent until the next
    /// `begin` or `go_offline`; holding it longer may show a slot being rewritten.
    #[inline]
    pub fn begin(&mut self, now_ns: u64) -> SlotView<'a> {
        let mut v = self.begin_unleased();
        // Acquire pairs with the writer's release in `set_lease`; on x86 a plain load.
        v.fenced = self.lease.load(Ordering::Acquire) <= now_ns;
        v
    }

    /// [`LcoreHandle::begin`] without the lease check: the view is never fenced. Only for
    /// measuring what the check costs (`bench-dataplane lease`); a forwarding path must use
    /// `begin`.
    #[inline]
    pub fn begin_unleased(&mut self) -> SlotView<'a> {
        let mut g = self.header.published.load(Ordering::SeqCst);
        if g != self.acked {
            loop {
                self.area.ack.store(g, Ordering::SeqCst);
                let again = self.header.published.load(Ordering::SeqCst);
                if again == g {
                    break;
                }
                g = again;
            }
            self.acked = g;
        }
        let (hdr, entries) = self.slots[(g & 1) as usize];
        SlotView {
            generation: g,
            live: hdr.live.load(Ordering::Relaxed),
            entries,
            mask: self.mask,
            node_id: self.node_id,
            fenced: false,
        }
    }

    /// Declares this lcore quiescent (before sleeping in idle backoff).
    /// The last generation stays visible (for status) under the offline bit.
    pub fn go_offline(&mut self) {
        let last = if self.acked & OFFLINE == 0 { self.acked } else { self.area.ack.load(Ordering::Relaxed) & !OFFLINE };
        self.acked = OFFLINE;
        self.area.ack.store(OFFLINE | last, Ordering::SeqCst);
    }

    /// Adds to a counter (single writer per lcore: no atomic read-modify-write needed).
    #[inline(always)]
    pub fn add(&self, c: Counter, n: u64) {
        let cell = &self.area.counters[c as usize];
        cell.store(cell.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    /// The current value of a counter.
    pub fn get(&self, c: Counter) -> u64 {
        self.area.counters[c as usize].load(Ordering::Relaxed)
    }

    /// Publishes the TSC frequency of the clock this lcore's `busy_cycles` counts in, in the
    /// data plane's region ([`TableReader::set_tsc_hz`]; every worker writes the same value).
    pub fn set_tsc_hz(&self, hz: u64) {
        self.dp.tsc_hz.store(hz, Ordering::Relaxed);
    }

    /// Records that this lcore is alive (CLOCK_MONOTONIC ns).
    #[inline]
    pub fn stamp(&self, now_ns: u64) {
        self.area.stamp.store(now_ns, Ordering::Relaxed);
    }
}

/// The table as one lcore sees it for one burst.
#[derive(Clone, Copy, Debug)]
pub struct SlotView<'a> {
    generation: u64,
    live: u64,
    entries: &'a [AtomicU16],
    mask: u32,
    node_id: u8,
    fenced: bool,
}

impl SlotView<'_> {
    /// True when the lease had passed at `begin`: accept no new flow (DESIGN.md I1).
    #[inline(always)]
    pub fn fenced(&self) -> bool {
        self.fenced
    }
    /// The generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }
    /// Live-member bitmap.
    pub fn live(&self) -> u64 {
        self.live
    }
    /// This node's id.
    pub fn node_id(&self) -> u8 {
        self.node_id
    }
    /// Number of buckets.
    pub fn n_buckets(&self) -> u32 {
        self.mask + 1
    }
    /// The entry of `bucket` (masked to the table size; never panics).
    #[inline(always)]
    pub fn entry(&self, bucket: u32) -> BucketEntry {
        let v = self.entries[(bucket & self.mask) as usize].load(Ordering::Relaxed);
        BucketEntry { owner: v as u8, prev_owner: (v >> 8) as u8 }
    }
}
