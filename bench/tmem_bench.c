/* tmem_bench.c - tmem put/get of 4 KiB pages through libtmemshim against a running
 * borrower (TCP transport to the donors), at batch 1 and batch 32: throughput and
 * p50/p99 latency per call, next to a raw TCP loopback 4 KiB request/reply measured
 * in the same run (the physical limit of one page's trip on this path).
 *
 *   tmem_bench [-s SOCKET] [-n PAGES] [-j JSON_OUT]
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
#include "tmemshim/tmemshim.h"

#define PAGE TMEM_PAGE_SIZE

struct result {
	const char *name;
	unsigned batch;
	uint64_t pages;
	double secs;
	double p50_us, p99_us; /* per call (a call moves @batch pages) */
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void finish(struct result *r, double *lat, size_t n, double t0)
{
	r->secs = now_s() - t0;
	qsort(lat, n, sizeof(*lat), cmp_d);
	r->p50_us = lat[n / 2] * 1e6;
	r->p99_us = lat[n * 99 / 100] * 1e6;
}

/* tmem_pass - @pages puts or gets in calls of @batch pages. */
static int tmem_pass(struct tmem_client *c, uint32_t pool, enum tmem_cmd cmd,
		     unsigned batch, uint64_t pages, struct result *r)
{
	static uint8_t buf[TMEM_MAX_BATCH][PAGE];
	struct tmem_op ops[TMEM_MAX_BATCH];
	size_t calls = pages / batch, k = 0;
	double *lat = calloc(calls, sizeof(double)), t0;

	if (!lat)
		return -ENOMEM;
	for (unsigned i = 0; i < batch; i++)
		memset(buf[i], (int)i + 1, PAGE);
	t0 = now_s();
	for (uint64_t n = 0; k < calls; k++) {
		double t = now_s();

		for (unsigned i = 0; i < batch; i++, n++)
			ops[i] = (struct tmem_op){ .cmd = cmd, .pool = pool, .oid = n >> 10,
						   .index = (uint32_t)(n & 1023),
						   .page = buf[i] };
		if (tmem_batch(c, ops, batch) != (int)batch) {
			fprintf(stderr, "tmem_bench: %s failed: %s\n",
				cmd == TMEM_PUT ? "put" : "get", strerror(-ops[0].status));
			free(lat);
			return -EIO;
		}
		lat[k] = now_s() - t;
	}
	r->pages = calls * batch;
	r->batch = batch;
	finish(r, lat, calls, t0);
	free(lat);
	return 0;
}

/* ---------------------------------------- raw TCP loopback ping-pong */

/* echo_server - the peer of the raw ping-pong, in its own process like a donor. */
static void echo_server(int lfd)
{
	static uint8_t buf[PAGE];
	int fd = accept(lfd, NULL, NULL), one = 1;

	if (fd < 0)
		_exit(1);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* request: 4 KiB page; reply: 16-byte status */
	while (net_read_full(fd, buf, PAGE) == 0)
		if (net_write_full(fd, buf, 16))
			break;
	_exit(0);
}

static int raw_tcp(uint64_t n, struct result *r)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	static uint8_t buf[PAGE];
	int lfd, fd, one = 1, err = 0;
	double *lat = calloc(n, sizeof(double)), t0;
	pid_t pid;

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (!lat || lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(lfd, 1) || getsockname(lfd, (struct sockaddr *)&sa, &sl))
		return -errno;
	pid = fork();
	if (pid == 0)
		echo_server(lfd);
	close(lfd);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (pid < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	t0 = now_s();
	for (uint64_t i = 0; i < n && !err; i++) {
		double t = now_s();

		err = net_write_full(fd, buf, PAGE);
		if (!err)
			err = net_read_full(fd, buf, 16);
		lat[i] = now_s() - t;
	}
	close(fd);
	waitpid(pid, NULL, 0);
	if (!err) {
		r->pages = n;
		r->batch = 1;
		finish(r, lat, n, t0);
	}
	free(lat);
	return err;
}

static void report(const struct result *r, unsigned n, const char *json)
{
	FILE *f = json ? fopen(json, "w") : NULL;

	printf("%-24s %6s %10s %10s %10s %10s\n", "operation", "batch", "pages/s", "MB/s",
	       "p50 us", "p99 us");
	for (unsigned i = 0; i < n; i++) {
		double pps = r[i].pages / r[i].secs;

		printf("%-24s %6u %10.0f %10.1f %10.1f %10.1f\n", r[i].name, r[i].batch, pps,
		       pps * PAGE / 1e6, r[i].p50_us, r[i].p99_us);
	}
	printf("(latency is per call; a call of batch B moves B pages)\n");
	if (!f)
		return;
	fprintf(f, "{\n  \"bench\": \"tmem\",\n  \"results\": [\n");
	for (unsigned i = 0; i < n; i++)
		fprintf(f,
			"    {\"op\": \"%s\", \"batch\": %u, \"pages\": %llu, \"seconds\": %.6f, "
			"\"pages_per_s\": %.1f, \"p50_us\": %.2f, \"p99_us\": %.2f}%s\n",
			r[i].name, r[i].batch, (unsigned long long)r[i].pages, r[i].secs,
			r[i].pages / r[i].secs, r[i].p50_us, r[i].p99_us, i + 1 < n ? "," : "");
	fprintf(f, "  ]\n}\n");
	fclose(f);
	printf("JSON written to %s\n", json);
}

int main(int argc, char **argv)
{
	const char *sock = NULL, *json = NULL;
	uint64_t pages = 32768;
	struct result r[5] = { { .name = "raw tcp 4k ping-pong" }, { .name = "tmem put" },
			       { .name = "tmem get" }, { .name = "tmem put" },
			       { .name = "tmem get" } };
	struct tmem_client *c;
	int opt, pool, err;

	while ((opt = getopt(argc, argv, "s:n:j:")) != -1) {
		if (opt == 's')
			sock = optarg;
		else if (opt == 'n')
			pages = strtoull(optarg, NULL, 0);
		else if (opt == 'j')
			json = optarg;
		else
			return 2;
	}
	pages -= pages % 32;
	if (raw_tcp(pages, &r[0]))
		return 1;
	err = tmem_connect(sock, "bench", &c);
	if (err) {
		fprintf(stderr, "tmem_bench: connect: %s\n", strerror(-err));
		return 1;
	}
	pool = tmem_new_pool(c, TMEM_POOL_PERSISTENT, 0);
	if (pool < 0)
		return 1;
	/* a warm-up pass so that capacity is granted before timing */
	if (tmem_pass(c, (uint32_t)pool, TMEM_PUT, 32, pages, &r[1]) ||
	    tmem_pass(c, (uint32_t)pool, TMEM_PUT, 1, pages, &r[1]) ||
	    tmem_pass(c, (uint32_t)pool, TMEM_GET, 1, pages, &r[2]) ||
	    tmem_pass(c, (uint32_t)pool, TMEM_PUT, 32, pages, &r[3]) ||
	    tmem_pass(c, (uint32_t)pool, TMEM_GET, 32, pages, &r[4]))
		return 1;
	tmem_disconnect(c);
	report(r, 5, json);
	return 0;
}
