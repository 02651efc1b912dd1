/* Out-of-line wrappers for DPDK `static inline` functions, macros and
 * thread-local variables, which Rust cannot call directly.
 * Implemented in shim.c, compiled with the same cflags as DPDK itself. */
#ifndef FARM_DPDK_SHIM_H
#define FARM_DPDK_SHIM_H

#include <stddef.h>
#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;

/* ethdev fast path */
uint16_t shim_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                               struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t shim_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                               struct rte_mbuf **tx_pkts, uint16_t nb_pkts);

/* mbuf allocation / release */
struct rte_mbuf *shim_rte_pktmbuf_alloc(struct rte_mempool *mp);
int shim_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                                unsigned int count);
void shim_rte_pktmbuf_free(struct rte_mbuf *m);
void shim_rte_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int count);

/* mbuf data access */
void *shim_rte_pktmbuf_mtod(struct rte_mbuf *m);
uint16_t shim_rte_pktmbuf_data_len(const struct rte_mbuf *m);
void shim_rte_pktmbuf_set_data_len(struct rte_mbuf *m, uint16_t len);
uint32_t shim_rte_pktmbuf_pkt_len(const struct rte_mbuf *m);
void shim_rte_pktmbuf_set_pkt_len(struct rte_mbuf *m, uint32_t len);
char *shim_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *shim_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *shim_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int shim_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
uint16_t shim_rte_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t shim_rte_pktmbuf_tailroom(const struct rte_mbuf *m);
int shim_rte_pktmbuf_is_contiguous(const struct rte_mbuf *m);
void shim_rte_pktmbuf_reset(struct rte_mbuf *m);

/* mbuf metadata */
uint16_t shim_rte_mbuf_refcnt_read(const struct rte_mbuf *m);
void shim_rte_mbuf_refcnt_set(struct rte_mbuf *m, uint16_t v);
uint16_t shim_rte_mbuf_refcnt_update(struct rte_mbuf *m, int16_t v);
uint32_t shim_rte_mbuf_rss_hash(const struct rte_mbuf *m);
int shim_rte_mbuf_has_rss_hash(const struct rte_mbuf *m);
uint16_t shim_rte_mbuf_port(const struct rte_mbuf *m);
struct rte_mempool *shim_rte_mbuf_pool(const struct rte_mbuf *m);


/* per-lcore / thread-local state */
int shim_rte_errno(void);
void shim_rte_errno_set(int value);
unsigned int shim_rte_lcore_id(void);

/* rte_version() is static inline too */
const char *shim_rte_version(void);

/* timing */
uint64_t shim_rte_rdtsc(void);
uint64_t shim_rte_get_tsc_hz(void);
void shim_rte_pause(void);

/* layout checks: what the C compiler (same cflags as DPDK) thinks, for tests
 * comparing against the Rust definitions bindgen produced with clang */
size_t shim_sizeof_rte_mbuf(void);
size_t shim_sizeof_rte_eth_conf(void);
size_t shim_sizeof_rte_eth_dev_info(void);
size_t shim_sizeof_rte_eth_stats(void);
size_t shim_sizeof_rte_eth_link(void);
size_t shim_offsetof_rte_mbuf_data_off(void);
size_t shim_offsetof_rte_mbuf_pkt_len(void);
size_t shim_offsetof_rte_mbuf_data_len(void);
size_t shim_offsetof_rte_mbuf_hash_rss(void);
size_t shim_offsetof_rte_mbuf_pool(void);

#endif
