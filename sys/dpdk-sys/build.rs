//! Build script for `dpdk-sys`.
//!
//! 1. Finds DPDK (`libdpdk`, Debian's libdpdk-dev 22.11) with pkg-config and links it
//!    **dynamically**: with a shared `librte_eal` the EAL auto-loads every PMD found in
//!    `RTE_EAL_PMD_PATH` (`/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0` on Debian), so
//!    `net_null`, `net_ring`, `net_pcap`, ... vdevs work without `-d`.
//! 2. Runs bindgen over `src/wrapper.h` (allowlist `rte_*` / `RTE_*` / `shim_*`).
//! 3. Compiles `src/shim.c` (out-of-line copies of DPDK `static inline` functions)
//!    with the exact cflags pkg-config reports (`-include rte_config.h -march=...`).

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// Oldest DPDK whose API these bindings were written against.
const MIN_VERSION: &str = "22.11";

fn main() {
    println!("cargo:rerun-if-changed=src/wrapper.h");
    println!("cargo:rerun-if-changed=src/shim.h");
    println!("cargo:rerun-if-changed=src/shim.c");
    println!("cargo:rerun-if-changed=src/consts.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let lib = pkg_config::Config::new()
        .atleast_version(MIN_VERSION)
        .statik(false)
        .probe("libdpdk")
        .unwrap_or_else(|e| panic!("libdpdk >= {MIN_VERSION} not found by pkg-config: {e}"));

    let cflags = pkg_config_cflags();
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let src = crate_dir.join("src");

    // Dependents (links = "dpdk") see these as DEP_DPDK_INCLUDE / DEP_DPDK_CFLAGS.
    let includes: Vec<String> = lib
        .include_paths
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    println!("cargo:include={}", includes.join(":"));
    println!("cargo:cflags={}", cflags.join(" "));
    println!("cargo:rustc-check-cfg=cfg(dpdk_sys_docs)");

    // --- C shim -------------------------------------------------------------------
    let mut build = cc::Build::new();
    build
        .file(src.join("shim.c"))
        .include(&src)
        .opt_level(3)
        .warnings(true);
    for flag in &cflags {
        build.flag(flag);
    }
    build.define("ALLOW_EXPERIMENTAL_API", None);
    build.compile("dpdk_shim");

    // --- bindgen ----------------------------------------------------------------
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("bindings.rs");
    let bindings = bindgen::Builder::default()
        .header(src.join("wrapper.h").display().to_string())
        .clang_args(cflags.iter().cloned())
        .clang_arg(format!("-I{}", src.display()))
        .clang_arg("-DALLOW_EXPERIMENTAL_API")
        .allowlist_function("rte_.*")
        .allowlist_function("shim_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("rte_.*")
        .allowlist_var("RTE_.*")
        .allowlist_var("SHIM_.*")
        .allowlist_var("LCORE_ID_ANY")
        .allowlist_var("SOCKET_ID_ANY")
        // Thread-local (`RTE_DEFINE_PER_LCORE`) variables cannot be declared as
        // `extern static` in Rust; the shim exposes getters for the ones we need.
        .blocklist_item("per_lcore_.*")
        // Types bindgen cannot represent (rte_flow headers pulled in by ethdev):
        // a packed struct holding an aligned union, and a packed bitfield struct
        // without Debug. Kept opaque (right size, no fields); nobody reads them.
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .opaque_type("rte_gtp_psc_generic_hdr")
        .prepend_enum_name(false)
        .derive_default(true)
        .generate_comments(false)
        .layout_tests(true)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect("bindgen failed on src/wrapper.h");
    bindings.write_to_file(&out).expect("write bindings.rs");
}

/// `pkg-config --cflags libdpdk`, split on whitespace (keeps `-include rte_config.h`
/// and `-march=...`, which the `pkg_config` crate does not expose).
fn pkg_config_cflags() -> Vec<String> {
    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_owned());
    let output = Command::new(&pkg_config)
        .args(["--cflags", "libdpdk"])
        .output()
        .unwrap_or_else(|e| panic!("running {pkg_config} --cflags libdpdk: {e}"));
    assert!(
        output.status.success(),
        "{pkg_config} --cflags libdpdk failed"
    );
    String::from_utf8(output.stdout)
        .expect("pkg-config output is UTF-8")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}
