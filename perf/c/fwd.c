/*
 * farm-cfwd: the minimal DPDK forwarding loop the farm data plane is
 * compared with (perf/bench). Receives on port 0, transmits on port 1, frees
 * what the transmit ring refuses; polls port 1's receive queue too (memif: a
 * client's rx posts the slots its server transmits into) and drops anything
 * found there. No parsing, no classification: the floor of what a DPDK
 * forwarder costs on a given wire.
 *
 * Usage: farm-cfwd <EAL args with two --vdev ports> [-- --stats FILE]
 * Runs until SIGINT/SIGTERM, then prints one JSON line of counters to stdout.
 * With --stats, FILE (created, 64 bytes) holds the live counters as eight
 * little-endian u64 (struct cfwd_stats below), updated after every poll that
 * returned frames and every 256 polls otherwise, so that a harness can take
 * them before and after its measurement window (busy cycles per frame).
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#define BURST 32
#define RING 1024

static volatile sig_atomic_t stop;

/* The --stats file's layout (perf/bench/dpdk.rs reads it). */
struct cfwd_stats {
	volatile uint64_t rx;          /* frames received on port 0 */
	volatile uint64_t tx;          /* of those, transmitted on port 1 */
	volatile uint64_t polls;       /* loop iterations */
	volatile uint64_t busy_polls;  /* iterations whose port-0 receive returned frames */
	volatile uint64_t busy_cycles; /* TSC cycles of those iterations */
	volatile uint64_t cycles;      /* TSC cycles since the loop started */
	volatile uint64_t tsc_hz;
	volatile uint64_t rx_on_tx_port;
};

static struct cfwd_stats *map_stats(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, sizeof(struct cfwd_stats)) < 0)
		rte_exit(EXIT_FAILURE, "cannot create %s\n", path);
	void *p = mmap(NULL, sizeof(struct cfwd_stats), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		rte_exit(EXIT_FAILURE, "cannot map %s\n", path);
	return p;
}

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
	int used = rte_eal_init(argc, argv);
	if (used < 0)
		rte_exit(EXIT_FAILURE, "EAL init failed\n");
	struct cfwd_stats local = {0};
	struct cfwd_stats *st = &local;
	for (int i = used + 1; i < argc; i++) {
		if (strcmp(argv[i], "--stats") == 0 && i + 1 < argc)
			st = map_stats(argv[++i]);
		else
			rte_exit(EXIT_FAILURE, "unknown option %s (expected --stats FILE)\n", argv[i]);
	}
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

	uint64_t rx = 0, tx = 0, dropped = 0, back = 0, polls = 0, busy = 0, busy_polls = 0;
	uint64_t t0 = rte_rdtsc();
	st->tsc_hz = rte_get_tsc_hz();
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
		if (n > 0) {
			uint64_t now = rte_rdtsc();
			busy += now - t;
			busy_polls++;
			st->rx = rx;
			st->tx = tx;
			st->busy_polls = busy_polls;
			st->busy_cycles = busy;
			st->cycles = now - t0;
			st->polls = polls;
		} else if ((polls & 255) == 0) {
			st->cycles = rte_rdtsc() - t0;
			st->polls = polls;
			st->rx_on_tx_port = back;
		}
	}
	uint64_t cycles = rte_rdtsc() - t0;
	printf("{\"rx\":%" PRIu64 ",\"tx\":%" PRIu64 ",\"dropped\":%" PRIu64
	       ",\"rx_on_tx_port\":%" PRIu64 ",\"polls\":%" PRIu64
	       ",\"busy_polls\":%" PRIu64 ",\"busy_cycles\":%" PRIu64 ",\"cycles\":%" PRIu64 ",\"tsc_hz\":%" PRIu64 "}\n",
	       rx, tx, dropped, back, polls, busy_polls, busy, cycles, rte_get_tsc_hz());
	fflush(stdout);
	rte_eth_dev_stop(0);
	rte_eth_dev_stop(1);
	rte_eth_dev_close(0);
	rte_eth_dev_close(1);
	rte_eal_cleanup();
	return 0;
}
