/* DPDK constants defined with function-like macros (RTE_BIT64(n)), which
 * bindgen cannot evaluate. Each is re-exported as a `static const` that
 * bindgen turns into a Rust `pub const` named `SHIM_<original name>`. */
#ifndef FARM_DPDK_CONSTS_H
#define FARM_DPDK_CONSTS_H

#include <stdint.h>
#include <rte_ethdev.h>

static const uint64_t SHIM_RTE_ETH_RSS_IP = RTE_ETH_RSS_IP;
static const uint64_t SHIM_RTE_ETH_RSS_TCP = RTE_ETH_RSS_TCP;
static const uint64_t SHIM_RTE_ETH_RSS_UDP = RTE_ETH_RSS_UDP;
static const uint64_t SHIM_RTE_ETH_RSS_SCTP = RTE_ETH_RSS_SCTP;
static const uint64_t SHIM_RTE_ETH_RX_OFFLOAD_RSS_HASH = RTE_ETH_RX_OFFLOAD_RSS_HASH;
static const uint64_t SHIM_RTE_ETH_RX_OFFLOAD_VLAN_STRIP = RTE_ETH_RX_OFFLOAD_VLAN_STRIP;
static const uint64_t SHIM_RTE_ETH_RX_OFFLOAD_IPV4_CKSUM = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
static const uint64_t SHIM_RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE = RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
static const uint64_t SHIM_RTE_ETH_TX_OFFLOAD_MULTI_SEGS = RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
static const uint64_t SHIM_RTE_ETH_TX_OFFLOAD_IPV4_CKSUM = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
static const uint64_t SHIM_RTE_ETH_TX_OFFLOAD_TCP_CKSUM = RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
static const uint64_t SHIM_RTE_ETH_TX_OFFLOAD_UDP_CKSUM = RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
static const uint32_t SHIM_RTE_ETH_LINK_SPEED_AUTONEG = RTE_ETH_LINK_SPEED_AUTONEG;

#endif
