/* tmem_check.c - drives a running borrower through libtmemshim with stamped pages
 * and verifies every byte. One program, several scenarios (the test scripts pick
 * one); it exits non-zero with a reason on the first wrong byte or broken promise.
 *
 *   tmem_check [-s SOCKET] persistent PAGES  fill, read back, flush half, reuse
 *   tmem_check [-s SOCKET] ephemeral PAGES   may lose pages, never returns wrong ones
 *   tmem_check [-s SOCKET] capped NAME PAGES a client with a fixed target: puts
 *                                            beyond it refused, data inside intact
 *   tmem_check [-s SOCKET] hold PAGES        fill, print READY, wait for a line on
 *                                            stdin, verify everything, print OK
 *   tmem_check [-s SOCKET] garbage           the borrower survives a bad client
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "tmemshim/tmemshim.h"
#include "stamp.h"

#define OID_SPAN 1000u /* pages per object: index = page % span */
#define BATCH TMEM_MAX_BATCH

static const char *sock_path;

#define FAIL(...)                                                                \
	do {                                                                     \
		fprintf(stderr, "tmem_check: FAIL: " __VA_ARGS__);               \
		fprintf(stderr, "\n");                                           \
		exit(1);                                                         \
	} while (0)

static uint64_t oid_of(uint64_t n)
{
	return n / OID_SPAN;
}

static uint32_t index_of(uint64_t n)
{
	return (uint32_t)(n % OID_SPAN);
}

/* page_id - the identity stamped into page @n of @pool, generation @gen (stamp.h) */
static const uint64_t *page_id(uint64_t id[4], uint32_t pool, uint64_t n, uint32_t gen)
{
	id[0] = n;
	id[1] = gen;
	id[2] = pool;
	id[3] = oid_of(n) << 32 | index_of(n);
	return id;
}

static void stamp(uint8_t *page, uint32_t pool, uint64_t n, uint32_t gen)
{
	uint64_t id[4];

	stamp_page(page, page_id(id, pool, n, gen));
}

static void verify(const uint8_t *page, uint32_t pool, uint64_t n, uint32_t gen)
{
	uint64_t id[4];
	uint8_t want;
	long i = stamp_diff(page, page_id(id, pool, n, gen), &want);

	if (i >= 0)
		FAIL("pool %u page %llu (oid %llu index %u): byte %ld is %#x, want %#x", pool,
		     (unsigned long long)n, (unsigned long long)oid_of(n), index_of(n), i,
		     page[i], want);
}

static struct tmem_client *connect_as(const char *name)
{
	struct tmem_client *c;
	int err = tmem_connect(sock_path, name, &c);

	if (err)
		FAIL("connect to %s as %s: %s", sock_path ? sock_path : "(default)", name,
		     strerror(-err));
	return c;
}

/* run - one batched pass of @cmd over pages [from, to) (step @step); each op's
 * status goes to @st (indexed by page). Returns the number of successes. */
static uint64_t run(struct tmem_client *c, enum tmem_cmd cmd, uint32_t pool, uint64_t from,
		    uint64_t to, uint64_t step, uint32_t gen, int *st, bool check)
{
	static uint8_t buf[BATCH][TMEM_PAGE_SIZE];
	struct tmem_op ops[BATCH];
	uint64_t ok = 0, n = from;

	while (n < to) {
		unsigned k = 0;
		uint64_t first = n;

		for (; k < BATCH && n < to; k++, n += step) {
			ops[k] = (struct tmem_op){ .cmd = cmd, .pool = pool, .oid = oid_of(n),
						   .index = index_of(n), .page = buf[k] };
			if (cmd == TMEM_PUT)
				stamp(buf[k], pool, n, gen);
		}
		if (tmem_batch(c, ops, k) < 0)
			FAIL("batch: connection lost");
		for (unsigned i = 0; i < k; i++) {
			uint64_t pg = first + i * step;

			if (st)
				st[pg] = ops[i].status;
			if (ops[i].status == 0) {
				ok++;
				if (cmd == TMEM_GET && check)
					verify(buf[i], pool, pg, gen);
			}
		}
	}
	return ok;
}

static int scenario_persistent(uint64_t pages)
{
	struct tmem_client *c = connect_as("check-persistent");
	int pool = tmem_new_pool(c, TMEM_POOL_PERSISTENT, 0);
	int *st = calloc(pages, sizeof(int));
	uint64_t ok;

	if (pool < 0 || !st)
		FAIL("new persistent pool: %s", strerror(-pool));
	ok = run(c, TMEM_PUT, (uint32_t)pool, 0, pages, 1, 1, st, false);
	if (ok != pages)
		FAIL("%llu of %llu puts refused", (unsigned long long)(pages - ok),
		     (unsigned long long)pages);
	printf("put %llu stamped pages\n", (unsigned long long)pages);
	ok = run(c, TMEM_GET, (uint32_t)pool, 0, pages, 1, 1, st, true);
	if (ok != pages)
		FAIL("persistent pool missed %llu gets", (unsigned long long)(pages - ok));
	printf("read back and verified %llu pages\n", (unsigned long long)pages);

	/* flush the even pages (half), one object by flush_object, the rest by page */
	if (tmem_flush_object(c, (uint32_t)pool, 0))
		FAIL("flush_object 0");
	run(c, TMEM_FLUSH_PAGE, (uint32_t)pool, OID_SPAN, pages, 2, 0, NULL, false);
	for (uint64_t n = 0; n < pages; n++) {
		bool gone = n < OID_SPAN || n % 2 == 0;
		static uint8_t page[TMEM_PAGE_SIZE];
		int r = tmem_get_page(c, (uint32_t)pool, oid_of(n), index_of(n), page);

		if (gone && r != -ENOENT)
			FAIL("flushed page %llu: get gave %d, want -ENOENT",
			     (unsigned long long)n, r);
		if (!gone) {
			if (r)
				FAIL("kept page %llu: get gave %s", (unsigned long long)n,
				     strerror(-r));
			verify(page, (uint32_t)pool, n, 1);
		}
	}
	printf("flushed half: flushed pages gone, the others verified\n");
	/* the freed capacity is reusable: put the flushed pages again (generation 2) */
	for (uint64_t n = 0; n < pages; n++) {
		static uint8_t page[TMEM_PAGE_SIZE];
		bool gone = n < OID_SPAN || n % 2 == 0;

		if (!gone)
			continue;
		stamp(page, (uint32_t)pool, n, 2);
		if (tmem_put_page(c, (uint32_t)pool, oid_of(n), index_of(n), page))
			FAIL("re-put of flushed page %llu refused", (unsigned long long)n);
	}
	for (uint64_t n = 0; n < pages; n++) {
		static uint8_t page[TMEM_PAGE_SIZE];
		bool gone = n < OID_SPAN || n % 2 == 0;

		if (tmem_get_page(c, (uint32_t)pool, oid_of(n), index_of(n), page))
			FAIL("get %llu after reuse", (unsigned long long)n);
		verify(page, (uint32_t)pool, n, gone ? 2 : 1);
	}
	printf("capacity reused: %llu pages verified\n", (unsigned long long)pages);
	if (tmem_destroy_pool(c, (uint32_t)pool))
		FAIL("destroy pool");
	free(st);
	tmem_disconnect(c);
	printf("OK persistent\n");
	return 0;
}

static int scenario_ephemeral(uint64_t pages)
{
	struct tmem_client *c = connect_as("check-ephemeral");
	int pool = tmem_new_pool(c, 0, 0);
	int *st = calloc(pages, sizeof(int));
	uint64_t put, got;

	if (pool < 0 || !st)
		FAIL("new ephemeral pool: %s", strerror(-pool));
	put = run(c, TMEM_PUT, (uint32_t)pool, 0, pages, 1, 7, st, false);
	got = run(c, TMEM_GET, (uint32_t)pool, 0, pages, 1, 7, st, true);
	for (uint64_t n = 0; n < pages; n++)
		if (st[n] && st[n] != -ENOENT)
			FAIL("ephemeral get %llu: %s", (unsigned long long)n, strerror(-st[n]));
	printf("ephemeral: %llu put, %llu found, every found page verified\n",
	       (unsigned long long)put, (unsigned long long)got);
	free(st);
	tmem_disconnect(c);
	printf("OK ephemeral\n");
	return 0;
}

/* A big client and a capped one side by side: the capped one's puts beyond its
 * fixed target fail, the big one's data is intact. */
static int scenario_capped(const char *name, uint64_t pages)
{
	struct tmem_client *big = connect_as("check-big");
	struct tmem_client *cap = connect_as(name);
	int pb = tmem_new_pool(big, TMEM_POOL_PERSISTENT, 0);
	int pc = tmem_new_pool(cap, TMEM_POOL_PERSISTENT, 0);
	uint64_t okb, okc, target;
	int *st = calloc(pages * 2, sizeof(int));

	if (pb < 0 || pc < 0 || !st)
		FAIL("pools");
	okb = run(big, TMEM_PUT, (uint32_t)pb, 0, pages, 1, 3, NULL, false);
	okc = run(cap, TMEM_PUT, (uint32_t)pc, 0, pages * 2, 1, 4, st, false);
	target = okc;
	if (okc >= pages * 2)
		FAIL("capped client: all %llu puts accepted", (unsigned long long)okc);
	for (uint64_t n = okc; n < pages * 2; n++)
		if (st[n] != -ENOSPC)
			FAIL("capped put %llu: %d, want -ENOSPC", (unsigned long long)n, st[n]);
	printf("capped client: %llu puts accepted, the rest refused with ENOSPC\n",
	       (unsigned long long)target);
	if (run(cap, TMEM_GET, (uint32_t)pc, 0, okc, 1, 4, NULL, true) != okc)
		FAIL("capped client lost accepted pages");
	if (okb != pages || run(big, TMEM_GET, (uint32_t)pb, 0, pages, 1, 3, NULL, true) != pages)
		FAIL("big client: %llu of %llu pages", (unsigned long long)okb,
		     (unsigned long long)pages);
	printf("big client: %llu pages intact\n", (unsigned long long)pages);
	printf("TARGET %llu\n", (unsigned long long)target);
	free(st);
	tmem_disconnect(cap);
	tmem_disconnect(big);
	printf("OK capped\n");
	return 0;
}

static int scenario_hold(uint64_t pages)
{
	struct tmem_client *c = connect_as("check-hold");
	int pool = tmem_new_pool(c, TMEM_POOL_PERSISTENT, 0);
	char line[64];

	if (pool < 0)
		FAIL("pool: %s", strerror(-pool));
	if (run(c, TMEM_PUT, (uint32_t)pool, 0, pages, 1, 5, NULL, false) != pages)
		FAIL("puts refused");
	printf("READY\n");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		FAIL("no go-ahead on stdin");
	if (run(c, TMEM_GET, (uint32_t)pool, 0, pages, 1, 5, NULL, true) != pages)
		FAIL("pages missing after the event");
	tmem_disconnect(c);
	printf("OK hold %llu pages verified\n", (unsigned long long)pages);
	return 0;
}

/* garbage - speak nonsense on the client socket; then a real client must work. */
static int scenario_garbage(void)
{
	static const char junk[] = "\xff\xff\xff\x7fGET / HTTP/1.0\r\n\r\n";
	int fd = net_connect_unix(sock_path ? sock_path : getenv("RTMEM_SOCKET"));
	char b;

	if (fd < 0)
		FAIL("connect: %s", strerror(-fd));
	if (net_write_full(fd, junk, sizeof(junk)) < 0)
		FAIL("write");
	if (read(fd, &b, 1) > 0)
		FAIL("borrower answered garbage instead of closing");
	close(fd);
	printf("garbage: connection closed by the borrower\n");
	return scenario_ephemeral(1000);
}

int main(int argc, char **argv)
{
	int i = 1;

	if (argc > 2 && strcmp(argv[1], "-s") == 0) {
		sock_path = argv[2];
		i = 3;
	}
	if (i < argc && strcmp(argv[i], "persistent") == 0 && i + 1 < argc)
		return scenario_persistent(strtoull(argv[i + 1], NULL, 0));
	if (i < argc && strcmp(argv[i], "ephemeral") == 0 && i + 1 < argc)
		return scenario_ephemeral(strtoull(argv[i + 1], NULL, 0));
	if (i < argc && strcmp(argv[i], "capped") == 0 && i + 2 < argc)
		return scenario_capped(argv[i + 1], strtoull(argv[i + 2], NULL, 0));
	if (i < argc && strcmp(argv[i], "hold") == 0 && i + 1 < argc)
		return scenario_hold(strtoull(argv[i + 1], NULL, 0));
	if (i < argc && strcmp(argv[i], "garbage") == 0)
		return scenario_garbage();
	fprintf(stderr, "usage: tmem_check [-s SOCKET] persistent|ephemeral|hold N | "
			"capped NAME N | garbage\n");
	return 2;
}
