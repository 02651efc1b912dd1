//! Start-up, the workers, and the main thread's housekeeping.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dpdk::{Eal, Mempool, MempoolConfig, Port, PortConfig, QueueId};
use farm_config::Config;
use farm_pipeline::{poll_loop, Backoff, BackoffConfig, Pipeline, PipelineConfig};
use farm_table::TableReader;

use crate::cli::Args;
use crate::flows::{handover_involves, Cadence, LcoreFlows, Refresher};
use crate::idle::IdleWait;
use crate::lease::{process_alive, LeaseState, LeaseWatch};
use crate::port::{Pkt, QueuePair};
use crate::setup;
use crate::veth::Veth;

/// CLOCK_MONOTONIC in nanoseconds: the clock of the liveness stamps farmd compares.
pub fn now_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// Housekeeping period of the main thread.
const TICK: Duration = Duration::from_millis(20);

fn open_uplink(eal: &Eal, name: Option<&str>) -> Result<Port> {
    let ports = dpdk::available_ports(eal);
    if let Some(n) = name {
        if let Ok(p) = Port::open(eal, n) {
            return Ok(p);
        }
    }
    match ports.as_slice() {
        [(id, _)] => Port::open_id(eal, *id).context("open the uplink port"),
        [] => bail!("no DPDK port found for the uplink {:?} (is the device bound to a DPDK driver, or the vdev string right?)", name.unwrap_or("")),
        more => bail!(
            "uplink {:?} not found among DPDK ports {:?}",
            name.unwrap_or(""),
            more.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>()
        ),
    }
}

fn configure(port: &mut Port, what: &str, queues: u16, pool: &Mempool) -> Result<()> {
    let info = port.info().with_context(|| format!("{what} {}: device info", port.name()))?;
    if queues > info.max_rx_queues || queues > info.max_tx_queues {
        bail!(
            "{what} {} supports {} rx / {} tx queues, {queues} workers need one each (for af_packet add qpairs={queues} to the device string)",
            port.name(),
            info.max_rx_queues,
            info.max_tx_queues
        );
    }
    // Rx interrupts for the idle sleep (idle.rs) where the PMD has them; a PMD that refuses
    // the configuration with them gets it without.
    let pc = PortConfig { rx_queues: queues, tx_queues: queues, rx_intr: true, ..PortConfig::default() };
    if let Err(e) = port.configure(&pc, pool) {
        tracing::debug!(port = port.name(), error = %e, "configure with rx interrupts failed: without");
        let pc = PortConfig { rx_intr: false, ..pc };
        port.configure(&pc, pool).with_context(|| format!("configure {what} {}", port.name()))?;
    }
    port.start().with_context(|| format!("start {what} {}", port.name()))?;
    Ok(())
}

/// Runs the data plane until SIGTERM/SIGINT (or `--exit-when-idle`).
pub fn run(args: Args) -> Result<()> {
    let (cfg, node) = Config::load_local(&args.config, args.node.as_deref())?;
    if !cfg.dataplane.enabled && args.uplink.is_none() {
        bail!("{}: dataplane.enabled = false (control-only mode): nothing to run", cfg.origin);
    }
    let table_path = args.table.clone().unwrap_or_else(|| cfg.module.table_file.clone());
    let table = TableReader::open(&table_path)?;
    let tp = table.params();
    let workers = setup::workers(&cfg, &args);
    if tp.node_id != node.id.get() {
        bail!("table {}: node id {} but this node ({}) has id {}", table_path.display(), tp.node_id, node.name, node.id.get());
    }
    if tp.n_lcores < workers {
        bail!("table {}: room for {} workers, {} configured", table_path.display(), tp.n_lcores, workers);
    }

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("install signal handlers")?;
    }

    let eal_args = setup::eal_args(&cfg, &node, &args)?;
    tracing::debug!(?eal_args, "EAL");
    let eal = Eal::builder()
        .program("farm-dataplane")
        .log_level(Some(&args.dpdk_log_level))
        .args(eal_args)
        .init()
        .context("DPDK EAL initialisation")?;
    let lcores = eal.worker_lcores();
    if lcores.len() < workers as usize {
        bail!("EAL gave {} worker lcores, {} needed", lcores.len(), workers);
    }
    let dp = &cfg.dataplane;
    // net_af_xdp fills each rx queue's ring from the pool: on top of mempool_size.
    let pool_extra = setup::af_xdp_pool_extra(&cfg, &args, workers);
    let pool = Mempool::new(
        &eal,
        "farm_pkts",
        &MempoolConfig { size: dp.mempool_size + pool_extra, cache_size: dp.mbuf_cache, ..MempoolConfig::default() },
    )
    .context("create the packet pool (dataplane.mempool_size; with --no-huge, raise -m)")?;

    let mut uplink = open_uplink(&eal, setup::uplink_name(&cfg, &args).as_deref())?;
    let mac = match dp.node_mac {
        Some(m) => {
            // The uplink runs promiscuous, so a device that cannot change its MAC (net_pcap,
            // some virtual NICs) still receives the node's frames: the MAC is then applied in
            // software only (classification, the TAP's MAC).
            if let Err(e) = uplink.set_mac_addr(dpdk::MacAddr(m.0)) {
                tracing::warn!(error = %e, "the uplink cannot take dataplane.node_mac; using it in software only");
            }
            m.0
        }
        None => uplink.mac_addr().context("read the uplink's MAC")?.octets(),
    };
    let pcfg: PipelineConfig = setup::pipeline_config(&cfg, mac)?;
    pcfg.check_table(&tp).with_context(|| format!("table {} does not match {}", table_path.display(), cfg.origin))?;
    let queues = u16::try_from(workers).context("workers")?;
    configure(&mut uplink, "uplink", queues, &pool)?;
    uplink.set_promiscuous(true).context("uplink promiscuous mode (needed for the VIP's virtual MAC)")?;
    let setup::LocalSetup { devargs: local_args, veth } = setup::local_port(&cfg, &args, mac, workers)?;
    // Removed after the port is closed (dropped in reverse order).
    let _veth = veth.map(Veth::create).transpose().context("local_port = \"af_xdp\": the veth pair")?;
    let mut local = Port::attach(&eal, &local_args).with_context(|| format!("create the local port {local_args}"))?;
    configure(&mut local, "local port", queues, &pool)?;

    // The table lives as long as the process: the workers borrow it.
    let table: &'static TableReader = Box::leak(Box::new(table));
    table.set_pid(std::process::id());
    let (mut refresher, shared) = Refresher::new();
    tracing::info!(source = ?refresher.source(), "flow knowledge");
    let mut cadence = Cadence::default();
    cadence.after(refresher.refresh(&pcfg, table, cadence.bound()));

    let backoff = BackoffConfig {
        busy_poll: args.busy_poll || dp.busy_poll,
        spin_polls: dp.idle_polls_before_sleep,
        max_sleep: dp.max_sleep,
        ..BackoffConfig::default()
    };
    let liveness_timeout = dp.liveness_timeout;
    let mut handles = Vec::new();
    for (i, &lc) in lcores.iter().take(workers as usize).enumerate() {
        let q = QueueId(i as u16);
        let mut up = QueuePair::new(uplink.rx_queue(q)?, uplink.tx_queue(q)?);
        let mut kernel = QueuePair::new(local.rx_queue(q)?, local.tx_queue(q)?);
        let mut handle = table.lcore(i)?;
        let mut flows = LcoreFlows::new(shared.clone());
        let pcfg = pcfg.clone();
        let stop = Arc::clone(&stop);
        let burst = usize::from(dp.burst);
        handles.push(eal.launch(lc, move || {
            let mut pipeline: Pipeline<Pkt> = Pipeline::new(pcfg, burst);
            // Idle sleeps end on the rx queues' interrupts where the PMDs have them.
            let mut idle = IdleWait::new(&[("uplink", up.rx()), ("local", kernel.rx())]);
            let max_sleep = idle.armed().max_sleep(backoff.max_sleep, liveness_timeout);
            let mut backoff = Backoff::new(BackoffConfig { max_sleep, ..backoff });
            let sleep = |d| idle.sleep(d);
            let clocks = farm_pipeline::Clocks { now_ns, cycles: dpdk::tsc, cycles_hz: dpdk::tsc_hz(), sleep };
            poll_loop(&mut pipeline, &mut up, &mut kernel, &mut handle, &mut flows, &mut backoff, &stop, clocks)
        })?);
    }
    tracing::info!(
        node = %node.name, id = node.id.get(), uplink = uplink.name(), mac = %farm_wire::EthernetAddress(mac),
        local = local.name(), workers, table = %table_path.display(), "data plane running"
    );

    let mut last_gen = 0;
    let mut last_refresh = Instant::now();
    let mut last_rx = (0u64, Instant::now());
    let mut lease = LeaseWatch::new(table.writer_pid());
    let mut orphaned = false;
    while !stop.load(Ordering::Relaxed) {
        // Flow knowledge is refreshed every cadence period (flows::Cadence: 25 ms, longer where a
        // refresh costs much, more so outside a handover), and at once when a handover begins.
        std::thread::sleep(TICK.min(cadence.period().saturating_sub(last_refresh.elapsed())));
        if lease.check(table.lease_until_ns(), now_ns(), process_alive) == LeaseState::Orphaned {
            orphaned = true;
            break;
        }
        if let Ok(l) = uplink.link() {
            table.set_link(l.up, l.speed_mbps.unwrap_or(0));
        }
        let g = table.published();
        let mut now = false;
        if g != last_gen {
            last_gen = g;
            let (_, _, entries) = table.peek();
            now = cadence.set_handover(handover_involves(&entries, tp.node_id));
        }
        if now || last_refresh.elapsed() >= cadence.period() {
            last_refresh = Instant::now();
            cadence.after(refresher.refresh(&pcfg, table, cadence.bound()));
        }
        if let Some(idle) = args.exit_when_idle {
            let rx = uplink.stats().map(|s| s.ipackets).unwrap_or(0) + local.stats().map(|s| s.ipackets).unwrap_or(0);
            if rx != last_rx.0 {
                last_rx = (rx, Instant::now());
            } else if last_rx.1.elapsed() >= idle {
                tracing::info!(frames = rx, "idle: exiting");
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for h in handles {
        total += h.join().map_err(|_| anyhow::anyhow!("a worker panicked"))?;
    }
    table.set_link(false, 0);
    let _ = uplink.stop();
    let _ = local.stop();
    tracing::info!(frames = total, "data plane stopped");
    if orphaned {
        bail!("farmd (pid {}, the writer of {}) is gone and its lease expired", table.writer_pid(), table_path.display());
    }
    Ok(())
}
