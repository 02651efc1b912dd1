/*
 * farm-cfwd: the minimal DPDK forwarding loop the farm data plane is
 * compared with (perf/bench). Receives on port 0, transmits on port 1, frees
 * what the transmit ring refuses; polls port 1's receive queue too (memif: a
 * client's rx posts the slots its server transmits into) and drops anything
 * found there. No parsing, no classification: the floor of what a DPDK
 * forwarder costs on a given wire.
 *
 * Usage: farm-cfwd <EAL args with two --vdev ports>
 * Runs until SIGINT/SIGTERM, then prints one JSON line of counters to stdout.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#define BURST 32
#define RING 1024

static volatile sig_atomic_t stop;

static void on_signal(int sig) { (void)sig; stop = 1; }

static void port_setup(uint16_t port, struct rte_mempool *pool)
{
	struct rte_eth_conf conf = {0};
	if (rte_eth_dev_configure(port, 1, 1, &conf) < 0 ||
	    rte_eth_rx_queue_setup(port, 0, RING, rte_eth_dev_socket_id(port), NULL, pool) < 0 ||
	    rte_eth_tx_queue_setup(port, 0, RING, rte_eth_dev_socket_id(port), NULL) < 0 ||
	    rte_eth_dev_start(port) < 0)
		rte_exit(EXIT_FAILURE, "cannot set up port %u\n", port);
	rte_eth_promiscuous_enable(port);
}

int main(int argc, char **argv)
{
	if (rte_eal_init(argc, argv) < 0)
		rte_exit(EXIT_FAILURE, "EAL init failed\n");
	if (rte_eth_dev_count_avail() < 2)
		rte_exit(EXIT_FAILURE, "need two ports (rx port 0, tx port 1)\n");
	struct rte_mempool *pool = rte_pktmbuf_pool_create("cfwd", 8191, 256, 0,
		RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
	if (pool == NULL)
		rte_exit(EXIT_FAILURE, "cannot create the mbuf pool\n");
	port_setup(0, pool);
	port_setup(1, pool);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	uint64_t rx = 0, tx = 0, dropped = 0, back = 0, polls = 0, busy = 0;
	uint64_t t0 = rte_rdtsc();
	struct rte_mbuf *bufs[BURST];
	while (!stop) {
		uint64_t t = rte_rdtsc();
		uint16_t n = rte_eth_rx_burst(0, 0, bufs, BURST);
		polls++;
		if (n > 0) {
			uint16_t sent = rte_eth_tx_burst(1, 0, bufs, n);
			if (sent < n)
				rte_pktmbuf_free_bulk(&bufs[sent], n - sent);
			rx += n;
			tx += sent;
			dropped += n - sent;
		}
		uint16_t m = rte_eth_rx_burst(1, 0, bufs, BURST);
		if (m > 0) {
			rte_pktmbuf_free_bulk(bufs, m);
			back += m;
		}
		if (n > 0)
			busy += rte_rdtsc() - t;
	}
	uint64_t cycles = rte_rdtsc() - t0;
	printf("{\"rx\":%" PRIu64 ",\"tx\":%" PRIu64 ",\"dropped\":%" PRIu64
	       ",\"rx_on_tx_port\":%" PRIu64 ",\"polls\":%" PRIu64
	       ",\"busy_cycles\":%" PRIu64 ",\"cycles\":%" PRIu64 ",\"tsc_hz\":%" PRIu64 "}\n",
	       rx, tx, dropped, back, polls, busy, cycles, rte_get_tsc_hz());
	fflush(stdout);
	rte_eth_dev_stop(0);
	rte_eth_dev_stop(1);
	rte_eth_dev_close(0);
	rte_eth_dev_close(1);
	rte_eal_cleanup();
	return 0;
}
