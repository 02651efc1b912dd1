//! The bindings agree with the C compiler, and the shim links and runs.
//! None of these need an initialised EAL.

use std::ffi::CStr;
use std::mem::{offset_of, size_of};

use dpdk_sys as sys;

#[test]
fn struct_sizes_match_c() {
    // SAFETY: the shim_sizeof_* functions take no arguments and only return sizeof().
    unsafe {
        assert_eq!(size_of::<sys::rte_mbuf>(), sys::shim_sizeof_rte_mbuf());
        assert_eq!(
            size_of::<sys::rte_eth_conf>(),
            sys::shim_sizeof_rte_eth_conf()
        );
        assert_eq!(
            size_of::<sys::rte_eth_dev_info>(),
            sys::shim_sizeof_rte_eth_dev_info()
        );
        assert_eq!(
            size_of::<sys::rte_eth_stats>(),
            sys::shim_sizeof_rte_eth_stats()
        );
        assert_eq!(
            size_of::<sys::rte_eth_link>(),
            sys::shim_sizeof_rte_eth_link()
        );
    }
    // Two cache lines, as DPDK documents.
    assert_eq!(size_of::<sys::rte_mbuf>(), 128);
}

#[test]
fn mbuf_field_offsets_match_c() {
    // SAFETY: the shim_offsetof_* functions take no arguments and only return offsetof().
    unsafe {
        assert_eq!(
            offset_of!(sys::rte_mbuf, data_off),
            sys::shim_offsetof_rte_mbuf_data_off()
        );
        assert_eq!(
            offset_of!(sys::rte_mbuf, pkt_len),
            sys::shim_offsetof_rte_mbuf_pkt_len()
        );
        assert_eq!(
            offset_of!(sys::rte_mbuf, data_len),
            sys::shim_offsetof_rte_mbuf_data_len()
        );
        assert_eq!(
            offset_of!(sys::rte_mbuf, pool),
            sys::shim_offsetof_rte_mbuf_pool()
        );
        // hash.rss sits at the start of the second anonymous union.
        assert_eq!(
            offset_of!(sys::rte_mbuf, __bindgen_anon_2),
            sys::shim_offsetof_rte_mbuf_hash_rss()
        );
    }
}

#[test]
fn version_is_22_11() {
    // SAFETY: rte_version() returns a pointer to a static NUL-terminated string.
    let v = unsafe { CStr::from_ptr(sys::shim_rte_version()) }
        .to_string_lossy()
        .into_owned();
    assert!(v.starts_with("DPDK 22.11"), "unexpected DPDK version {v:?}");
}

#[test]
fn rte_errno_is_thread_local_and_settable() {
    // SAFETY: rte_errno is a plain thread-local int; get/set have no preconditions.
    unsafe {
        sys::shim_rte_errno_set(EINVAL);
        assert_eq!(sys::shim_rte_errno(), EINVAL);
        let other = std::thread::spawn(|| sys::shim_rte_errno()).join().unwrap();
        assert_eq!(other, 0, "another thread has its own rte_errno");
        sys::shim_rte_errno_set(0);
        assert_eq!(sys::shim_rte_errno(), 0);
    }
}

#[test]
fn non_eal_thread_has_no_lcore_id() {
    // SAFETY: rte_lcore_id() reads a thread-local, valid before rte_eal_init.
    let id = unsafe { sys::shim_rte_lcore_id() };
    assert_eq!(id, sys::LCORE_ID_ANY);
}

#[test]
fn rdtsc_advances() {
    // SAFETY: rdtsc has no preconditions.
    let a = unsafe { sys::shim_rte_rdtsc() };
    std::thread::sleep(std::time::Duration::from_millis(1));
    // SAFETY: as above.
    let b = unsafe { sys::shim_rte_rdtsc() };
    assert!(b > a, "tsc did not advance: {a} -> {b}");
}

#[test]
fn function_like_macro_constants_are_exported() {
    assert_eq!(sys::SHIM_RTE_ETH_RX_OFFLOAD_RSS_HASH, 1 << 19);
    assert_eq!(sys::SHIM_RTE_ETH_RSS_IP & sys::SHIM_RTE_ETH_RSS_TCP, 0);
    assert_ne!(sys::SHIM_RTE_ETH_RSS_IP, 0);
    assert_eq!(
        sys::RTE_MBUF_DEFAULT_BUF_SIZE,
        2048 + sys::RTE_PKTMBUF_HEADROOM
    );
}

/// Linux `EINVAL`.
const EINVAL: i32 = 22;
