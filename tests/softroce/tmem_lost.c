/* tmem_lost.c - the client side of the donor-kill test (donorkill.sh): fills a
 * persistent pool with stamped pages, then reads them back in passes while the test
 * kills a donor, and checks that a get either returns the right bytes or fails:
 *
 *   tmem_lost [-s SOCKET] PAGES
 *
 * stdout/stdin protocol with the script: prints "READY" once PAGES pages are in, then
 * "PASS n ok=.. err=.." after every read pass; a line on stdin ends the passes. Then
 * a final pass ("FINAL ok=.. eio=.. other=.."): every failed get must be -EIO and
 * both counts non-zero (one donor's pages lost, the other's intact); and fresh puts
 * (FRESH of them) must still work and read back ("NEW n verified"). Any get that returns 0 with a
 * wrong byte fails at once. Exit 0 = all of that held.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "tmemshim/tmemshim.h"
#include "../integration/stamp.h"

#define SPAN 1000u /* pages per object */
#define BATCH TMEM_MAX_BATCH
#define FRESH 2000u /* pages put after the loss */

#define FAIL(...)                                                                \
	do {                                                                     \
		fprintf(stderr, "tmem_lost: FAIL: " __VA_ARGS__);                \
		fprintf(stderr, "\n");                                           \
		exit(1);                                                         \
	} while (0)

struct counts {
	uint64_t ok, eio, other;
};

/* stamp - page @n of generation @gen (tests/integration/stamp.h). */
static void stamp(uint8_t *page, uint64_t n, uint32_t gen)
{
	stamp_page(page, (const uint64_t[4]){ n, gen, 0, 0 });
}

static void verify(const uint8_t *page, uint64_t n, uint32_t gen)
{
	uint8_t want;
	long i = stamp_diff(page, (const uint64_t[4]){ n, gen, 0, 0 }, &want);

	if (i >= 0)
		FAIL("page %llu gen %u: byte %ld is %#x, want %#x (garbage returned as success)",
		     (unsigned long long)n, gen, i, page[i], want);
}

/* pass - one batched sweep of @cmd over pages [from, to); gets are verified. */
static struct counts pass(struct tmem_client *c, uint32_t pool, enum tmem_cmd cmd,
			  uint64_t from, uint64_t to, uint32_t gen)
{
	static uint8_t buf[BATCH][TMEM_PAGE_SIZE];
	struct tmem_op ops[BATCH];
	struct counts k = { 0 };

	for (uint64_t n = from; n < to;) {
		unsigned m = 0;
		uint64_t first = n;

		for (; m < BATCH && n < to; m++, n++) {
			ops[m] = (struct tmem_op){ .cmd = cmd, .pool = pool, .oid = n / SPAN,
						   .index = (uint32_t)(n % SPAN), .page = buf[m] };
			if (cmd == TMEM_PUT)
				stamp(buf[m], n, gen);
		}
		if (tmem_batch(c, ops, m) < 0)
			FAIL("batch: connection to the borrower lost");
		for (unsigned i = 0; i < m; i++) {
			if (ops[i].status == 0) {
				k.ok++;
				if (cmd == TMEM_GET)
					verify(buf[i], first + i, gen);
			} else if (ops[i].status == -EIO) {
				k.eio++;
			} else {
				k.other++;
			}
		}
	}
	return k;
}

static bool line_waiting(void)
{
	struct pollfd p = { .fd = 0, .events = POLLIN };

	return poll(&p, 1, 0) > 0;
}

int main(int argc, char **argv)
{
	const char *sock = NULL;
	struct tmem_client *c;
	struct counts k;
	uint64_t pages;
	char line[64];
	int i = 1, pool, err;

	if (argc > 2 && strcmp(argv[1], "-s") == 0) {
		sock = argv[2];
		i = 3;
	}
	if (i + 1 != argc || (pages = strtoull(argv[i], NULL, 0)) == 0) {
		fprintf(stderr, "usage: tmem_lost [-s SOCKET] PAGES\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	err = tmem_connect(sock, "lost-check", &c);
	if (err)
		FAIL("connect: %s", strerror(-err));
	pool = tmem_new_pool(c, TMEM_POOL_PERSISTENT, 0);
	if (pool < 0)
		FAIL("new pool: %s", strerror(-pool));
	k = pass(c, (uint32_t)pool, TMEM_PUT, 0, pages, 1);
	if (k.ok != pages)
		FAIL("%llu of %llu puts refused", (unsigned long long)(pages - k.ok),
		     (unsigned long long)pages);
	printf("READY\n");
	for (unsigned n = 1; !line_waiting(); n++) {
		k = pass(c, (uint32_t)pool, TMEM_GET, 0, pages, 1);
		printf("PASS %u ok=%llu err=%llu\n", n, (unsigned long long)k.ok,
		       (unsigned long long)(k.eio + k.other));
	}
	if (!fgets(line, sizeof(line), stdin))
		FAIL("stdin closed");
	k = pass(c, (uint32_t)pool, TMEM_GET, 0, pages, 1);
	printf("FINAL ok=%llu eio=%llu other=%llu\n", (unsigned long long)k.ok,
	       (unsigned long long)k.eio, (unsigned long long)k.other);
	if (k.other)
		FAIL("%llu gets failed with something else than EIO", (unsigned long long)k.other);
	if (!k.ok || !k.eio)
		FAIL("want some pages intact and some lost (ok=%llu eio=%llu)",
		     (unsigned long long)k.ok, (unsigned long long)k.eio);
	/* other slabs keep working: a fresh range (FRESH pages: fits what the
	 * surviving donor has left in the test's layout) goes in and comes back */
	k = pass(c, (uint32_t)pool, TMEM_PUT, pages, pages + FRESH, 2);
	if (k.ok != FRESH)
		FAIL("%llu of %u fresh puts refused after the loss",
		     (unsigned long long)(FRESH - k.ok), FRESH);
	k = pass(c, (uint32_t)pool, TMEM_GET, pages, pages + FRESH, 2);
	if (k.ok != FRESH)
		FAIL("%llu fresh pages missing", (unsigned long long)(FRESH - k.ok));
	printf("NEW %llu verified\n", (unsigned long long)k.ok);
	tmem_disconnect(c);
	printf("OK lost\n");
	return 0;
}
