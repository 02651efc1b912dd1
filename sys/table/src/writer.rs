//! The writer side (farmd): creates the file and publishes tables.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::layout::{pack, DpHeader, Header, LcoreArea, Layout, SlotHeader, ABI_VERSION, MAGIC, OFFLINE};
use crate::mmap::Mapping;
use crate::{BucketEntry, Counter, HashKey, TableError, COUNTER_SLOTS, MAX_BUCKETS, MAX_LCORES, MAX_NODES, MIN_BUCKETS, NO_NODE};

/// What a table is created with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableParams {
    /// Buckets (power of two, [`MIN_BUCKETS`]..=[`MAX_BUCKETS`]).
    pub n_buckets: u32,
    /// This node's id (< [`MAX_NODES`]).
    pub node_id: u8,
    /// Data-plane worker lcores that may read the table (1..=[`MAX_LCORES`]).
    pub n_lcores: u32,
    /// The cluster's hash key.
    pub hash_key: HashKey,
}

impl TableParams {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), TableError> {
        if !self.n_buckets.is_power_of_two() || !(MIN_BUCKETS..=MAX_BUCKETS).contains(&self.n_buckets) {
            return Err(TableError::BadParams(format!(
                "buckets = {}: expected a power of two in {MIN_BUCKETS}..={MAX_BUCKETS}",
                self.n_buckets
            )));
        }
        if usize::from(self.node_id) >= MAX_NODES {
            return Err(TableError::BadParams(format!("node id {}: expected 0..{MAX_NODES}", self.node_id)));
        }
        if self.n_lcores == 0 || self.n_lcores as usize > MAX_LCORES {
            return Err(TableError::BadParams(format!("lcores = {}: expected 1..={MAX_LCORES}", self.n_lcores)));
        }
        Ok(())
    }
}

/// Status of one data-plane lcore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LcoreStatus {
    /// False while the lcore sleeps (idle backoff) or no data plane runs.
    pub online: bool,
    /// The generation it last acknowledged.
    pub acked_generation: u64,
    /// Its liveness stamp (CLOCK_MONOTONIC ns, 0 = never).
    pub stamp_ns: u64,
    /// Its counters, indexed by [`Counter`].
    pub counters: [u64; COUNTER_SLOTS],
}

/// A snapshot of the data plane's region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataplaneStatus {
    /// Uplink link state.
    pub link_up: bool,
    /// Uplink speed.
    pub link_speed_mbps: u32,
    /// Newest liveness stamp over all lcores (CLOCK_MONOTONIC ns, 0 = never).
    pub liveness_ns: u64,
    /// The data plane's pid (0 = none attached yet).
    pub pid: u32,
    /// Per lcore.
    pub lcores: Vec<LcoreStatus>,
    /// Live flows per bucket (only with flow tracking).
    pub flows_per_bucket: Vec<u32>,
    /// The lease in force (`CLOCK_MONOTONIC` ns, 0 = none).
    pub lease_until_ns: u64,
    /// TSC ticks per second of the data plane's workers, the unit of
    /// [`Counter::BusyCycles`] (0 = not reported).
    pub tsc_hz: u64,
}

impl DataplaneStatus {
    /// A counter summed over lcores.
    pub fn total(&self, c: Counter) -> u64 {
        self.lcores.iter().map(|l| l.counters[c as usize]).sum()
    }
}

/// The sole writer of a table file (farmd).
#[derive(Debug)]
pub struct TableWriter {
    map: Mapping,
    layout: Layout,
    params: TableParams,
    path: PathBuf,
    generation: u64,
}

impl TableWriter {
    /// Creates the file (mode 0600; an existing file is replaced atomically) and publishes
    /// generation 1 with every bucket unowned and every lcore offline.
    pub fn create(path: &Path, params: &TableParams) -> Result<TableWriter, TableError> {
        params.validate()?;
        let layout = Layout::new(params.n_buckets, params.n_lcores);
        let io = |what: &'static str| {
            let p = path.to_owned();
            move |source| TableError::Io { path: p, what, source }
        };
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let file: File = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io("create"))?;
        // The mode given to open() is filtered by the umask; force 0600.
        file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io("chmod"))?;
        file.set_len(layout.total_size).map_err(io("resize"))?;
        let map = Mapping::map(&file, layout.total_size, path)?;
        let header = Header {
            magic: MAGIC,
            abi_version: ABI_VERSION,
            header_size: std::mem::size_of::<Header>() as u32,
            total_size: layout.total_size,
            n_buckets: params.n_buckets,
            n_lcores: params.n_lcores,
            node_id: u32::from(params.node_id),
            writer_pid: std::process::id(),
            hash_k0: params.hash_key.k0,
            hash_k1: params.hash_key.k1,
            slot_offset: layout.slot_offset,
            dp_offset: layout.dp_offset,
            published: Default::default(),
            lease_until_ns: Default::default(),
            reserved: [0; 20],
        };
        // SAFETY: the file is new, not yet renamed into place, so no other process maps it and
        // nothing else in this process references the mapping; offset 0 is aligned for Header
        // (page-aligned mapping) and the mapping is at least size_of::<Header>() long.
        unsafe { std::ptr::write(map.raw(0).cast::<Header>(), header) };
        let mut w = TableWriter { map, layout, params: *params, path: path.to_owned(), generation: 0 };
        w.reset_readers();
        let empty = vec![BucketEntry { owner: NO_NODE, prev_owner: NO_NODE }; params.n_buckets as usize];
        w.publish(&empty, 0, Duration::ZERO)?;
        std::fs::rename(&tmp, path).map_err(io("rename into place"))?;
        Ok(w)
    }

    fn header(&self) -> &Header {
        self.map.at::<Header>(0)
    }

    fn lcore_area(&self, i: usize) -> &LcoreArea {
        self.map.at::<LcoreArea>(self.layout.lcores_offset + (i * std::mem::size_of::<LcoreArea>()) as u64)
    }

    /// Marks every lcore offline, e.g. after the data plane died holding a generation.
    pub fn reset_readers(&self) {
        for i in 0..self.layout.n_lcores as usize {
            self.lcore_area(i).ack.store(OFFLINE, Ordering::SeqCst);
        }
    }

    /// The first online lcore still running on a generation older than `needed`.
    fn blocking_reader(&self, needed: u64) -> Option<(usize, u64)> {
        (0..self.layout.n_lcores as usize).find_map(|i| {
            let a = self.lcore_area(i).ack.load(Ordering::SeqCst);
            (a & OFFLINE == 0 && a < needed).then_some((i, a))
        })
    }

    /// Publishes a new table and returns its generation.
    ///
    /// The idle slot is last used by generation `g - 1` (g = current generation); it is
    /// rewritten only once every online lcore acknowledged `g` or later, so no reader can see it
    /// change under its feet. Waits for that up to `timeout`, then fails with
    /// [`TableError::ReaderStuck`] and publishes nothing.
    pub fn publish(&mut self, entries: &[BucketEntry], live: u64, timeout: Duration) -> Result<u64, TableError> {
        if entries.len() != self.layout.n_buckets as usize {
            return Err(TableError::WrongLength { got: entries.len(), expected: self.layout.n_buckets as usize });
        }
        let cur = self.generation;
        let next = cur + 1;
        let deadline = Instant::now() + timeout;
        let mut spins = 0u32;
        while let Some((lcore, acked)) = self.blocking_reader(cur) {
            if Instant::now() >= deadline {
                return Err(TableError::ReaderStuck { lcore, acked, needed: cur });
            }
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::sleep(Duration::from_micros(20));
            }
        }
        let off = self.layout.slot_offset[(next & 1) as usize];
        let slot = self.map.at::<SlotHeader>(off);
        let cells =
            self.map.slice::<AtomicU16>(off + std::mem::size_of::<SlotHeader>() as u64, entries.len());
        for (cell, e) in cells.iter().zip(entries) {
            cell.store(pack(e.owner, e.prev_owner), Ordering::Relaxed);
        }
        slot.live.store(live, Ordering::Relaxed);
        slot.generation.store(next, Ordering::Relaxed);
        self.header().published.store(next, Ordering::SeqCst);
        self.generation = next;
        Ok(next)
    }

    /// Sets the lease: the data plane accepts new flows until `CLOCK_MONOTONIC` reaches
    /// `until_ns` (0 fences it at once). Stored with release ordering after any publication
    /// that precedes the call, so a data plane that sees the new lease also sees that table.
    pub fn set_lease(&self, until_ns: u64) {
        self.header().lease_until_ns.store(until_ns, Ordering::Release);
    }

    /// The lease last set (`CLOCK_MONOTONIC` ns, 0 = none).
    pub fn lease(&self) -> u64 {
        self.header().lease_until_ns.load(Ordering::Relaxed)
    }

    /// The generation last published.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The parameters the table was created with.
    pub fn params(&self) -> &TableParams {
        &self.params
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A snapshot of what the data plane published.
    pub fn dataplane(&self) -> DataplaneStatus {
        let dp = self.map.at::<DpHeader>(self.layout.dp_offset);
        let lcores: Vec<LcoreStatus> = (0..self.layout.n_lcores as usize)
            .map(|i| {
                let a = self.lcore_area(i);
                let ack = a.ack.load(Ordering::Acquire);
                LcoreStatus {
                    online: ack & OFFLINE == 0,
                    acked_generation: ack & !OFFLINE,
                    stamp_ns: a.stamp.load(Ordering::Relaxed),
                    counters: std::array::from_fn(|c| a.counters[c].load(Ordering::Relaxed)),
                }
            })
            .collect();
        let flows = self.map.slice::<AtomicU32>(self.layout.flows_offset, self.layout.n_buckets as usize);
        DataplaneStatus {
            link_up: dp.link_up.load(Ordering::Relaxed) != 0,
            link_speed_mbps: dp.link_speed_mbps.load(Ordering::Relaxed),
            liveness_ns: lcores.iter().map(|l| l.stamp_ns).max().unwrap_or(0),
            pid: dp.pid.load(Ordering::Relaxed),
            lcores,
            flows_per_bucket: flows.iter().map(|f| f.load(Ordering::Relaxed)).collect(),
            lease_until_ns: self.lease(),
            tsc_hz: dp.tsc_hz.load(Ordering::Relaxed),
        }
    }
}
