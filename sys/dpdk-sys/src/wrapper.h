/* Headers bindgen reads for dpdk-sys. Keep this list short: every header
 * added here costs build time. rte_config.h is force-included by build.rs
 * (like pkg-config's `-include rte_config.h`). */
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ether.h>
#include <rte_ethdev.h>
#include <rte_dev.h>
#include <rte_bus.h>
#include <rte_bus_vdev.h>
#include "shim.h"
#include "consts.h"
