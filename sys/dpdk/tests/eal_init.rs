//! EAL initialisation errors. Each scenario needs a fresh, uninitialised EAL,
//! so `scenarios` re-runs this test binary once per scenario (child processes
//! run only `child`, selected by `FARM_EAL_SCENARIO`).

use std::process::Command;

use dpdk::{Eal, EalBuilder, EalError, Port, PortError};

const ENV: &str = "FARM_EAL_SCENARIO";

fn base() -> EalBuilder {
    Eal::builder()
        .no_huge()
        .no_shconf()
        .no_pci()
        .no_telemetry()
        .memory_mb(128)
        .file_prefix(&format!("farm-eal-init-{}", std::process::id()))
        .lcores("0")
}

fn expect_init_errno(r: Result<Eal, EalError>, errno: i32) {
    match r {
        Err(EalError::Init { source, .. }) => assert_eq!(source.errno(), errno, "{source}"),
        other => panic!("expected Init error with errno {errno}, got {other:?}"),
    }
}

fn run(scenario: &str) {
    match scenario {
        "nul_then_ok" => {
            match base().arg("--bad\0arg").init() {
                Err(EalError::NulInArgument(a)) => assert_eq!(a, "--bad\0arg"),
                other => panic!("expected NulInArgument, got {other:?}"),
            }
            // DPDK was not called: a real attempt still works.
            base().init().expect("init after NulInArgument");
        }
        "no_huge_with_in_memory" => {
            // DPDK 22.11: --no-huge implies legacy memory, which --in-memory refuses.
            expect_init_errno(base().in_memory().init(), libc::EINVAL);
            // One attempt per process.
            assert!(matches!(base().init(), Err(EalError::PreviousInitFailed)));
        }
        "unknown_option" => expect_init_errno(base().arg("--no-such-option").init(), libc::EINVAL),
        "unknown_vdev_driver" => {
            expect_init_errno(base().vdev("net_bogus0").init(), libc::ENODEV);
            let dir = dpdk::runtime_dir().expect("runtime dir created before device parsing");
            assert!(
                !dir.exists(),
                "empty runtime dir {} removed after failure",
                dir.display()
            );
        }
        "bad_vdev_args_then_once_only" => {
            // A known driver with bad arguments does not fail the EAL: the device
            // is just missing.
            let eal = base()
                .vdev("net_ring0,nodeaction=garbage")
                .vdev("net_null0")
                .init()
                .expect("init");
            assert!(matches!(
                Port::open(&eal, "net_ring0"),
                Err(PortError::NotFound(_))
            ));
            let null = Port::open(&eal, "net_null0").expect("--vdev port");
            assert_eq!(null.info().unwrap().driver_name, "net_null");
            assert_eq!(eal.main_lcore().0, 0);
            assert!(eal.worker_lcores().is_empty());
            assert!(eal.args().contains(&"--vdev=net_null0".to_owned()));
            let dir = dpdk::runtime_dir().expect("runtime dir");
            assert!(
                dir.ends_with(format!("farm-eal-init-{}", std::process::id())),
                "{}",
                dir.display()
            );
            assert!(dir.is_dir());
            assert!(matches!(base().init(), Err(EalError::AlreadyInitialized)));
            // Not even after the EAL was cleaned up (last handle dropped).
            drop(null);
            drop(eal);
            assert!(!dir.exists(), "runtime dir removed by cleanup");
            assert!(matches!(base().init(), Err(EalError::AlreadyInitialized)));
        }
        other => panic!("unknown scenario {other}"),
    }
}

const SCENARIOS: [&str; 5] = [
    "nul_then_ok",
    "no_huge_with_in_memory",
    "unknown_option",
    "unknown_vdev_driver",
    "bad_vdev_args_then_once_only",
];

/// Runs one scenario when started by `scenarios`; does nothing otherwise.
#[test]
fn child() {
    if let Ok(scenario) = std::env::var(ENV) {
        run(&scenario);
    }
}

#[test]
fn scenarios() {
    if std::env::var(ENV).is_ok() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    for scenario in SCENARIOS {
        let out = Command::new(&exe)
            .args(["--exact", "child", "--nocapture", "--test-threads=1"])
            .env(ENV, scenario)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "scenario {scenario} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("1 passed"),
            "scenario {scenario} did not run:\n{stdout}"
        );
    }
}
