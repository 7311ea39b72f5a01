/* rdmabench.c - rtmem-rdmabench: page-run READ/WRITE throughput of the data-plane
 * transport (tcp or verbs) at batch 1, 16 and 64, straight through rdma.h.
 *
 *   rtmem-rdmabench self  HOST:PORT [-t tcp|verbs] [-r PAGES] [-s SECS] [-j FILE]
 *       serve a 64 MiB pool on HOST:PORT in this process, lend slab 0 to itself and
 *       measure (one process; over rxe HOST must be the rxe netdev's address)
 *   rtmem-rdmabench serve HOST:PORT [-t tcp|verbs]
 *       serve a pool, lend slab 0 to node 1 and print its grant line; run until killed
 *       (SIGHUP: revoke slab 0 - its key stops working - lend it again under a
 *       fresh key and print the new grant line)
 *   rtmem-rdmabench run   HOST:PORT -g OFFSET:LENGTH:KEY [-t ...] [-r] [-s] [-j]
 *       measure against a "serve" elsewhere (another namespace or machine)
 *   rtmem-rdmabench probe HOST:PORT -g OFFSET:LENGTH:KEY [-g ...] [-w MS] [-t ...]
 *       one 4 KiB READ of the slab's first page per -g (up to 4), in order on one
 *       connection; prints each status; exit 0 if all succeeded, 3 if one completed
 *       with an error (e.g. a stale key: -EACCES). A READ that finds the connection
 *       reconnecting (-ENOTCONN, e.g. after a stale key killed the QP) is retried
 *       every 50 ms for up to 20 s. -w: pause MS milliseconds between the READs.
 *
 * Every pass writes stamped pages first and the READ pass verifies every byte it
 * reads, so a broken transport cannot report good numbers.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
#include "rdma/rdma.h"

#define POOL (64ull << 20)
#define SLAB (16ull << 20)
#define SELF_NODE 1u

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void stamp(uint8_t *p, uint64_t page, uint64_t gen)
{
	uint64_t *w = (uint64_t *)p;

	for (unsigned i = 0; i < RTM_PAGE_SIZE / 8; i++)
		w[i] = page * 0x9e3779b97f4a7c15ull ^ gen ^ i;
}

static bool stamped(const uint8_t *p, uint64_t page, uint64_t gen)
{
	const uint64_t *w = (const uint64_t *)p;

	for (unsigned i = 0; i < RTM_PAGE_SIZE / 8; i++)
		if (w[i] != (page * 0x9e3779b97f4a7c15ull ^ gen ^ i))
			return false;
	return true;
}

static int parse_kind(const char *s)
{
	if (!strcmp(s, "tcp"))
		return CONFIG_TRANSPORT_TCP;
	if (!strcmp(s, "verbs"))
		return CONFIG_TRANSPORT_VERBS;
	if (!strcmp(s, "auto"))
		return CONFIG_TRANSPORT_AUTO;
	return -1;
}

struct grant {
	uint64_t offset, length, key;
};

/* pass - @op over the whole slab in runs of @run pages, @batch requests per post,
 * repeated for @secs seconds. Returns MB/s (10^6 bytes), or < 0 on error. */
static double pass(struct rdma_transport *t, struct rdma_conn *c, const struct grant *g,
		   enum rdma_op op, unsigned batch, unsigned run, double secs, uint8_t *buf,
		   uint64_t *reqs_out)
{
	struct rdma_req reqs[64];
	int status[64];
	uint64_t runs = g->length / ((uint64_t)run * RTM_PAGE_SIZE), next = 0, bytes = 0, n = 0;
	double t0 = now_s(), t1;

	do {
		for (unsigned i = 0; i < batch; i++, next = (next + 1) % runs) {
			reqs[i] = (struct rdma_req){
				.conn = c, .op = op, .slab_offset = g->offset,
				.slab_length = g->length, .key = g->key,
				.offset = next * run * RTM_PAGE_SIZE,
				.buf = buf + (size_t)i * run * RTM_PAGE_SIZE,
				.len = run * RTM_PAGE_SIZE,
			};
			if (op == RDMA_OP_WRITE)
				for (unsigned p = 0; p < run; p++)
					stamp((uint8_t *)reqs[i].buf + p * RTM_PAGE_SIZE,
					      next * run + p, 7);
		}
		int r = rdma_rw_sync(t, reqs, batch, status);

		if (r) {
			fprintf(stderr, "rtmem-rdmabench: %s batch failed: %s\n",
				op == RDMA_OP_READ ? "READ" : "WRITE", strerror(-r));
			return -1;
		}
		if (op == RDMA_OP_READ)
			for (unsigned i = 0; i < batch; i++)
				for (unsigned p = 0; p < run; p++) {
					uint64_t page = reqs[i].offset / RTM_PAGE_SIZE + p;

					if (!stamped((uint8_t *)reqs[i].buf + p * RTM_PAGE_SIZE,
						     page, 7)) {
						fprintf(stderr, "rtmem-rdmabench: page %" PRIu64
							" read back wrong\n", page);
						return -1;
					}
				}
		bytes += (uint64_t)batch * run * RTM_PAGE_SIZE;
		n += batch;
		t1 = now_s();
	} while (t1 - t0 < secs || (op == RDMA_OP_WRITE && n < runs));
	*reqs_out = n;
	return (double)bytes / (t1 - t0) / 1e6;
}

static int measure(int kind, const char *host, uint16_t port, const struct grant *g,
		   unsigned run, double secs, const char *json)
{
	static const unsigned batches[] = { 1, 16, 64 };
	struct rdma_transport *t = rdma_transport_create(kind, 256);
	struct rdma_conn *c;
	uint8_t *buf;
	FILE *jf = NULL;
	int rc = 0;

	if (!t) {
		fprintf(stderr, "rtmem-rdmabench: transport: %s\n", strerror(errno));
		return 1;
	}
	c = rdma_connect(t, 1, host, port, SELF_NODE);
	buf = aligned_alloc(RTM_PAGE_SIZE, (size_t)64 * run * RTM_PAGE_SIZE);
	if (!c || !buf) {
		fprintf(stderr, "rtmem-rdmabench: connect %s:%u: %s\n", host, port,
			strerror(errno));
		rdma_destroy(t);
		free(buf);
		return 1;
	}
	if (json && !(jf = fopen(json, "w")))
		fprintf(stderr, "rtmem-rdmabench: %s: %s\n", json, strerror(errno));
	if (jf)
		fprintf(jf, "{\"transport\": \"%s\", \"run_pages\": %u, \"results\": [",
			t->ops->name, run);
	printf("transport %s, runs of %u pages (%u KiB), %.1f s per point\n", t->ops->name,
	       run, run * 4, secs);
	printf("%-6s %6s %12s %12s %10s\n", "op", "batch", "MB/s", "requests/s", "requests");
	for (unsigned op = 0; op < 2 && !rc; op++)
		for (unsigned b = 0; b < 3 && !rc; b++) {
			enum rdma_op o = op ? RDMA_OP_READ : RDMA_OP_WRITE;
			uint64_t n = 0;
			double t0 = now_s();
			double mbs = pass(t, c, g, o, batches[b], run, secs, buf, &n);
			double el = now_s() - t0;

			if (mbs < 0) {
				rc = 1;
				break;
			}
			printf("%-6s %6u %12.1f %12.0f %10" PRIu64 "\n", op ? "READ" : "WRITE",
			       batches[b], mbs, (double)n / el, n);
			if (jf)
				fprintf(jf, "%s{\"op\": \"%s\", \"batch\": %u, \"mb_s\": %.1f, "
					"\"req_s\": %.0f}", op || b ? ", " : "",
					op ? "read" : "write", batches[b], mbs, (double)n / el);
		}
	if (jf) {
		fprintf(jf, "]}\n");
		fclose(jf);
	}
	rdma_conn_close(t, c);
	rdma_destroy(t);
	free(buf);
	return rc;
}

/* probe - one READ per grant of @g[0..n) on one connection: 0 all ok, 3 one failed,
 * 1 could not run. */
static int probe(int kind, const char *host, uint16_t port, const struct grant *g,
		 unsigned n, unsigned pause_ms)
{
	static uint8_t page[RTM_PAGE_SIZE] __attribute__((aligned(4096)));
	struct rdma_transport *t = rdma_transport_create(kind, 16);
	struct rdma_conn *c = t ? rdma_connect(t, 1, host, port, SELF_NODE) : NULL;
	int rc = 0;

	if (!c) {
		fprintf(stderr, "rtmem-rdmabench: connect %s:%u: %s\n", host, port,
			strerror(errno));
		rdma_destroy(t);
		return 1;
	}
	for (unsigned i = 0; i < n; i++) {
		struct rdma_req q = { .conn = c, .op = RDMA_OP_READ, .slab_offset = g[i].offset,
				      .slab_length = g[i].length, .key = g[i].key, .buf = page,
				      .len = RTM_PAGE_SIZE };
		unsigned waits = 0;
		int st = 0, r;

		if (i && pause_ms)
			usleep(pause_ms * 1000u);
		/* -ENOTCONN: the connection is reconnecting (never blocks): try again */
		while ((r = rdma_rw_sync(t, &q, 1, &st)) == -ENOTCONN && waits < 400) {
			usleep(50 * 1000);
			waits++;
		}
		printf("probe READ key %" PRIx64 ": %s", g[i].key, r ? strerror(-r) : "ok");
		if (waits)
			printf(" (after %u ms reconnecting)", waits * 50);
		printf("\n");
		if (r)
			rc = 3;
	}
	rdma_conn_close(t, c);
	rdma_destroy(t);
	return rc;
}

static volatile sig_atomic_t regrant;

static void on_hup(int sig)
{
	(void)sig;
	regrant = 1;
}

static struct rdma_server *serve(int kind, const char *host, uint16_t port, void **pool,
				 struct grant *g)
{
	struct rdma_server *s;
	int r;

	*pool = mmap(NULL, POOL, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (*pool == MAP_FAILED)
		return NULL;
	s = rdma_server_create(kind, host, port, *pool, POOL, SLAB);
	if (!s) {
		fprintf(stderr, "rtmem-rdmabench: server on %s:%u: %s\n", host, port,
			strerror(errno));
		return NULL;
	}
	r = rdma_server_grant(s, 0, SELF_NODE, &g->key);
	if (r) {
		fprintf(stderr, "rtmem-rdmabench: grant: %s\n", strerror(-r));
		rdma_server_destroy(s);
		return NULL;
	}
	g->offset = 0;
	g->length = SLAB;
	return s;
}

/* parse_hostport - "host:port", port 0..65535 (0: any free port, self/serve only). */
static bool parse_hostport(const char *s, char *host, size_t len, uint16_t *port)
{
	const char *colon = strrchr(s, ':');
	char *end;
	unsigned long p;

	if (!colon || colon == s || (size_t)(colon - s) >= len)
		return false;
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || p > 65535)
		return false;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	*port = (uint16_t)p;
	return true;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: rtmem-rdmabench self|serve|run|probe HOST:PORT [-t tcp|verbs|auto] "
		   "[-g OFFSET:LENGTH:KEY]... [-r RUN_PAGES] [-s SECONDS] [-j JSON] [-w PAUSE_MS]\n");
}

int main(int argc, char **argv)
{
	char host[64];
	uint16_t port;
	int kind = CONFIG_TRANSPORT_TCP, opt;
	unsigned run = 1;
	double secs = 2;
	unsigned pause_ms = 0;
	const char *json = NULL, *mode;
	struct grant g = { 0 }, pg[4];
	unsigned npg = 0;
	bool have_grant = false;

	log_init("rtmem-rdmabench", LOG_INFO);
	while ((opt = getopt(argc, argv, "t:g:r:s:j:w:h")) != -1) {
		switch (opt) {
		case 't':
			kind = parse_kind(optarg);
			if (kind < 0) {
				usage(stderr);
				return 2;
			}
			break;
		case 'g':
			if (sscanf(optarg, "%" SCNu64 ":%" SCNu64 ":%" SCNx64, &g.offset, &g.length,
				   &g.key) != 3) {
				usage(stderr);
				return 2;
			}
			have_grant = true;
			if (npg < 4)
				pg[npg++] = g;
			break;
		case 'r':
			run = (unsigned)atoi(optarg);
			if (!run || run * RTM_PAGE_SIZE > RDMA_MAX_IO) {
				fprintf(stderr, "rtmem-rdmabench: -r 1..%u\n",
					RDMA_MAX_IO / RTM_PAGE_SIZE);
				return 2;
			}
			break;
		case 's':
			secs = atof(optarg);
			break;
		case 'j':
			json = optarg;
			break;
		case 'w':
			pause_ms = (unsigned)atoi(optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 2 || !parse_hostport(argv[optind + 1], host, sizeof(host), &port)) {
		usage(stderr);
		return 2;
	}
	mode = argv[optind];
	signal(SIGPIPE, SIG_IGN);
	if (!strcmp(mode, "run")) {
		if (!have_grant) {
			usage(stderr);
			return 2;
		}
		return measure(kind, host, port, &g, run, secs, json);
	}
	if (!strcmp(mode, "probe")) {
		if (!have_grant) {
			usage(stderr);
			return 2;
		}
		return probe(kind, host, port, pg, npg, pause_ms);
	}
	if (!strcmp(mode, "self") || !strcmp(mode, "serve")) {
		void *pool;
		struct rdma_server *s = serve(kind, host, port, &pool, &g);
		int rc = 0;

		if (!s)
			return 1;
		if (mode[1] == 'e' && mode[2] == 'l') {
			rc = measure(kind, host, rdma_server_port(s), &g, run, secs, json);
		} else {
			signal(SIGHUP, on_hup);
			for (;;) {
				printf("grant %" PRIu64 ":%" PRIu64 ":%" PRIx64 " port %u\n",
				       g.offset, g.length, g.key, rdma_server_port(s));
				fflush(stdout);
				while (!regrant)
					pause();
				regrant = 0;
				if (rdma_server_revoke(s, 0) ||
				    rdma_server_grant(s, 0, SELF_NODE, &g.key)) {
					fprintf(stderr, "rtmem-rdmabench: regrant failed\n");
					rc = 1;
					break;
				}
			}
		}
		rdma_server_destroy(s);
		munmap(pool, POOL);
		return rc;
	}
	usage(stderr);
	return 2;
}
