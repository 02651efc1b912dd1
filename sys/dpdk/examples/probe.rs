//! Smoke binary: initialise the EAL, hotplug, configure and start each device
//! given on the command line, print what DPDK reports. Exit status 1 if any device fails.
//!
//! `cargo run -p dpdk --example probe -- net_null0 'net_ring0' 'net_tap0,iface=ptest0'`
//! (`PROBE_EAL_ARGS="..."` replaces the default EAL options).

use std::process::ExitCode;

fn main() -> ExitCode {
    let devs: Vec<String> = std::env::args().skip(1).collect();
    // PROBE_EAL_ARGS replaces the default EAL options (whitespace-separated).
    let builder = dpdk::Eal::builder().program("probe");
    let builder = match std::env::var("PROBE_EAL_ARGS") {
        Ok(args) => builder.args(args.split_whitespace()),
        Err(_) => builder
            .no_huge()
            .no_shconf()
            .no_pci()
            .no_telemetry()
            .memory_mb(256)
            .file_prefix(&format!("probe-{}", std::process::id()))
            .lcores("0"),
    };
    let eal = match builder.init() {
        Ok(eal) => eal,
        Err(e) => {
            eprintln!("EAL: {e}");
            return ExitCode::FAILURE;
        }
    };
    let pool = match dpdk::Mempool::with_size(&eal, "probe", 4095) {
        Ok(pool) => pool,
        Err(e) => {
            eprintln!("mempool: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut ok = true;
    // Keep every port open until the end: later devices may connect to earlier
    // ones (virtio_user to a vhost socket, memif client to server).
    let mut ports = Vec::new();
    for dev in &devs {
        match attach_and_start(&eal, dev, &pool) {
            Ok(port) => {
                let info = port.info().map(|i| i.driver_name).unwrap_or_default();
                let mac = port.mac_addr().map(|m| m.to_string()).unwrap_or_default();
                println!(
                    "ok   {dev}: port {} driver {info} mac {mac} started",
                    port.id()
                );
                ports.push(port);
            }
            Err(e) => {
                println!("FAIL {dev}: {e}");
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Hotplugs `dev`, configures one rx and one tx queue, starts it.
fn attach_and_start(
    eal: &dpdk::Eal,
    dev: &str,
    pool: &dpdk::Mempool,
) -> Result<dpdk::Port, dpdk::PortError> {
    let mut port = dpdk::Port::attach(eal, dev)?;
    let config = dpdk::PortConfig {
        rx_desc: 256,
        tx_desc: 256,
        ..dpdk::PortConfig::default()
    };
    port.configure(&config, pool)?;
    port.start()?;
    Ok(port)
}
