/* See shim.h. Every function is a one-line forward to the DPDK inline. */
#include <stddef.h>
#include <rte_config.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_pause.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>
#include <rte_version.h>

#include "shim.h"

uint16_t shim_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                               struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{
    return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t shim_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                               struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{
    return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *shim_rte_pktmbuf_alloc(struct rte_mempool *mp)
{
    return rte_pktmbuf_alloc(mp);
}

int shim_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                                unsigned int count)
{
    return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void shim_rte_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

void shim_rte_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int count)
{
    rte_pktmbuf_free_bulk(mbufs, count);
}

void *shim_rte_pktmbuf_mtod(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, void *); }
uint16_t shim_rte_pktmbuf_data_len(const struct rte_mbuf *m) { return rte_pktmbuf_data_len(m); }
void shim_rte_pktmbuf_set_data_len(struct rte_mbuf *m, uint16_t len) { m->data_len = len; }
uint32_t shim_rte_pktmbuf_pkt_len(const struct rte_mbuf *m) { return rte_pktmbuf_pkt_len(m); }
void shim_rte_pktmbuf_set_pkt_len(struct rte_mbuf *m, uint32_t len) { m->pkt_len = len; }
char *shim_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_append(m, len); }
char *shim_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_prepend(m, len); }
char *shim_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_adj(m, len); }
int shim_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_trim(m, len); }
uint16_t shim_rte_pktmbuf_headroom(const struct rte_mbuf *m) { return rte_pktmbuf_headroom(m); }
uint16_t shim_rte_pktmbuf_tailroom(const struct rte_mbuf *m) { return rte_pktmbuf_tailroom(m); }
int shim_rte_pktmbuf_is_contiguous(const struct rte_mbuf *m) { return rte_pktmbuf_is_contiguous(m); }
void shim_rte_pktmbuf_reset(struct rte_mbuf *m) { rte_pktmbuf_reset(m); }

uint16_t shim_rte_mbuf_refcnt_read(const struct rte_mbuf *m) { return rte_mbuf_refcnt_read(m); }
void shim_rte_mbuf_refcnt_set(struct rte_mbuf *m, uint16_t v) { rte_mbuf_refcnt_set(m, v); }
uint16_t shim_rte_mbuf_refcnt_update(struct rte_mbuf *m, int16_t v) { return rte_mbuf_refcnt_update(m, v); }
uint32_t shim_rte_mbuf_rss_hash(const struct rte_mbuf *m) { return m->hash.rss; }
int shim_rte_mbuf_has_rss_hash(const struct rte_mbuf *m) { return (m->ol_flags & RTE_MBUF_F_RX_RSS_HASH) != 0; }
uint16_t shim_rte_mbuf_port(const struct rte_mbuf *m) { return m->port; }
struct rte_mempool *shim_rte_mbuf_pool(const struct rte_mbuf *m) { return m->pool; }

int shim_rte_errno(void) { return rte_errno; }
void shim_rte_errno_set(int value) { rte_errno = value; }
unsigned int shim_rte_lcore_id(void) { return rte_lcore_id(); }

const char *shim_rte_version(void) { return rte_version(); }

uint64_t shim_rte_rdtsc(void) { return rte_rdtsc(); }
uint64_t shim_rte_get_tsc_hz(void) { return rte_get_tsc_hz(); }
void shim_rte_pause(void) { rte_pause(); }

size_t shim_sizeof_rte_mbuf(void) { return sizeof(struct rte_mbuf); }
size_t shim_sizeof_rte_eth_conf(void) { return sizeof(struct rte_eth_conf); }
size_t shim_sizeof_rte_eth_dev_info(void) { return sizeof(struct rte_eth_dev_info); }
size_t shim_sizeof_rte_eth_stats(void) { return sizeof(struct rte_eth_stats); }
size_t shim_sizeof_rte_eth_link(void) { return sizeof(struct rte_eth_link); }
size_t shim_offsetof_rte_mbuf_data_off(void) { return offsetof(struct rte_mbuf, data_off); }
size_t shim_offsetof_rte_mbuf_pkt_len(void) { return offsetof(struct rte_mbuf, pkt_len); }
size_t shim_offsetof_rte_mbuf_data_len(void) { return offsetof(struct rte_mbuf, data_len); }
size_t shim_offsetof_rte_mbuf_hash_rss(void) { return offsetof(struct rte_mbuf, hash.rss); }
size_t shim_offsetof_rte_mbuf_pool(void) { return offsetof(struct rte_mbuf, pool); }
