/* uffd_test.c - kernel-facing tests of the uffd engine (librtmem), table-driven.
 * Each case runs in its own process with the in-process "mem" store (no cluster
 * needed) and checks data, not just completion: pages are stamped with their index
 * and a checksum and verified after eviction, refault, fork, munmap/mremap/DONTNEED.
 *
 *   uffd_test            run every case
 *   uffd_test NAME...    run the named cases
 * Exit 0 pass, 1 fail, 77 skip (a kernel feature is missing; the reason is printed).
 */
#include <errno.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include "common/common.h"
#include "uffd/uffd.h"

#define PG 4096u
#define SKIP 77

#define CHECK(cond, ...)                                                        \
	do {                                                                     \
		if (!(cond)) {                                                   \
			fprintf(stderr, "  FAIL %s:%d: %s: ", __func__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                            \
			fprintf(stderr, "\n");                                   \
			return 1;                                                \
		}                                                                \
	} while (0)

static void stamp(uint8_t *base, size_t i, uint32_t salt)
{
	uint64_t *w = (uint64_t *)(base + i * PG);
	for (unsigned k = 0; k < PG / 8 - 1; k++)
		w[k] = (uint64_t)i << 32 ^ k ^ (uint64_t)salt << 48;
	w[PG / 8 - 1] = rtm_checksum(w, PG - 8);
}

static void stamp_all(uint8_t *base, size_t n, uint32_t salt)
{
	for (size_t i = 0; i < n; i++)
		stamp(base, i, salt);
}

static int verify(const uint8_t *base, size_t i, uint32_t salt)
{
	const uint64_t *w = (const uint64_t *)(base + i * PG);
	if (w[PG / 8 - 1] != rtm_checksum(w, PG - 8))
		return -1;
	return w[0] == ((uint64_t)i << 32 ^ (uint64_t)salt << 48) ? 0 : -1;
}

static int verify_all(const uint8_t *base, size_t n, uint32_t salt)
{
	for (size_t i = 0; i < n; i++)
		if (verify(base, i, salt)) {
			fprintf(stderr, "  page %zu does not verify\n", i);
			return -1;
		}
	return 0;
}

static int start(uint64_t budget_pages, unsigned flags, uint64_t store_limit)
{
	struct rtmem_config c = { .local_mem = budget_pages * PG, .store = "mem",
				  .flags = flags, .mem_store_limit = store_limit };
	int rc = rtmem_init(&c);
	if (rc)
		fprintf(stderr, "  rtmem_init: %s\n", rtmem_last_error());
	return rc;
}

static struct rtmem_stats stats(void)
{
	struct rtmem_stats s;
	rtmem_get_stats(&s);
	return s;
}

static size_t resident_pages(const void *p, size_t n)
{
	unsigned char *v = malloc(n);
	size_t c = 0;
	if (mincore((void *)p, n * PG, v) == 0)
		for (size_t i = 0; i < n; i++)
			c += v[i] & 1;
	free(v);
	return c;
}

/* ------------------------------------------------------------ cases */

static int t_fault_in(void)
{
	if (start(4096, 0, 0))
		return 1;
	uint8_t *p;
	size_t n = 1024;
	CHECK(!rtmem_region_create(n * PG, (void **)&p), "create");
	stamp_all(p, n, 1);
	CHECK(!verify_all(p, n, 1), "verify");
	struct rtmem_stats s = stats();
	CHECK(s.faults > 0 && s.resident == n, "faults %llu resident %llu",
	      (unsigned long long)s.faults, (unsigned long long)s.resident);
	CHECK(!rtmem_region_destroy(p), "destroy");
	return 0;
}

static int t_zero_page(void)
{
	if (start(4096, RTMEM_NO_PREFETCH, 0))
		return 1;
	uint8_t *p;
	size_t n = 256;
	CHECK(!rtmem_region_create(n * PG, (void **)&p), "create");
	for (size_t i = 0; i < n * PG; i += 64)
		CHECK(p[i] == 0, "byte %zu not zero", i);
	struct rtmem_stats s = stats();
	CHECK(s.zero_fills == n && s.fetched == 0, "zero_fills %llu fetched %llu",
	      (unsigned long long)s.zero_fills, (unsigned long long)s.fetched);
	/* a write to a zero page is caught (write-protect) and the page becomes dirty */
	p[5 * PG] = 42;
	CHECK(p[5 * PG] == 42, "write after zero page");
	s = stats();
	if (s.features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)
		CHECK(s.wp_faults == 1, "wp_faults %llu", (unsigned long long)s.wp_faults);
	return 0;
}

static int t_evict_refault(void)
{
	if (start(256, 0, 0))
		return 1;
	uint8_t *p;
	size_t n = 4096; /* 16 MiB through a 1 MiB budget */
	CHECK(!rtmem_region_create(n * PG, (void **)&p), "create");
	stamp_all(p, n, 2);
	CHECK(!verify_all(p, n, 2), "sequential verify");
	uint64_t x = 88172645463325252ull;
	for (size_t k = 0; k < n; k++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t i = x % n;
		CHECK(!verify(p, i, 2), "random verify page %zu", i);
	}
	struct rtmem_stats s = stats();
	CHECK(s.evicted > n / 2 && s.refaults > n / 2, "evicted %llu refaults %llu",
	      (unsigned long long)s.evicted, (unsigned long long)s.refaults);
	CHECK(s.madvise_calls < s.evicted, "madvise %llu per evicted %llu (batched)",
	      (unsigned long long)s.madvise_calls, (unsigned long long)s.evicted);
	return 0;
}

static int t_dirty_clean(void)
{
	if (start(256, RTMEM_NO_PREFETCH, 0))
		return 1;
	if (!(stats().features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
		printf("  SKIP: no UFFD_FEATURE_PAGEFAULT_FLAG_WP\n");
		return SKIP;
	}
	uint8_t *p;
	size_t n = 2048;
	CHECK(!rtmem_region_create(n * PG, (void **)&p), "create");
	stamp_all(p, n, 3);
	CHECK(!verify_all(p, n, 3), "verify 1"); /* evicts the rest of the dirty pages */
	struct rtmem_stats a = stats();
	CHECK(!verify_all(p, n, 3), "verify 2");
	CHECK(!verify_all(p, n, 3), "verify 3");
	struct rtmem_stats b = stats();
	printf("  write pass + 1 read: %llu writebacks; 2 more read passes: +%llu writebacks, "
	       "+%llu clean drops\n", (unsigned long long)a.writebacks,
	       (unsigned long long)(b.writebacks - a.writebacks),
	       (unsigned long long)(b.clean_drops - a.clean_drops));
	CHECK(a.writebacks >= n - 256 && a.writebacks <= n, "writebacks %llu",
	      (unsigned long long)a.writebacks);
	CHECK(b.writebacks == a.writebacks, "read passes wrote back %llu pages",
	      (unsigned long long)(b.writebacks - a.writebacks));
	CHECK(b.clean_drops - a.clean_drops >= n, "clean drops %llu",
	      (unsigned long long)(b.clean_drops - a.clean_drops));
	/* rewrite half: exactly those come back dirty */
	for (size_t i = 0; i < n; i += 2)
		stamp(p, i, 3);
	CHECK(!verify_all(p, n, 3), "verify 4");
	struct rtmem_stats c = stats();
	CHECK(c.writebacks - b.writebacks <= n / 2 && c.writebacks - b.writebacks >= n / 2 - 256,
	      "rewrite of %zu pages wrote back %llu", n / 2,
	      (unsigned long long)(c.writebacks - b.writebacks));
	return 0;
}

static int t_prefetch(void)
{
	for (int pf = 0; pf < 2; pf++) {
		pid_t pid = fork();
		if (pid == 0) {
			if (start(512, pf ? 0 : RTMEM_NO_PREFETCH, 0))
				_exit(1);
			uint8_t *p;
			size_t n = 4096;
			if (rtmem_region_create(n * PG, (void **)&p))
				_exit(1);
			stamp_all(p, n, 4);
			struct rtmem_stats a = stats();
			if (verify_all(p, n, 4))
				_exit(1);
			/* strided: every 4th page */
			for (size_t i = 0; i < n; i += 4)
				if (verify(p, i, 4))
					_exit(1);
			struct rtmem_stats b = stats();
			printf("  prefetch %s: %llu faults, %llu pages prefetched for %zu+%zu reads\n",
			       pf ? "on " : "off", (unsigned long long)(b.faults - a.faults),
			       (unsigned long long)(b.prefetched - a.prefetched), n, n / 4);
			if (pf && (b.prefetched - a.prefetched < n / 2 || b.faults - a.faults > n / 2))
				_exit(1);
			if (!pf && b.prefetched != a.prefetched)
				_exit(1);
			_exit(0);
		}
		int st;
		waitpid(pid, &st, 0);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "prefetch %s case failed",
		      pf ? "on" : "off");
	}
	return 0;
}

struct conc {
	uint8_t *p;
	size_t n;
	pthread_barrier_t *bar;
	int bad;
};

static void *conc_thread(void *arg)
{
	struct conc *c = arg;
	for (size_t i = 0; i < c->n; i++) {
		pthread_barrier_wait(c->bar);
		if (verify(c->p, i * 8, 5))
			c->bad++;
	}
	return NULL;
}

static int t_concurrent(void)
{
	if (start(64, RTMEM_NO_PREFETCH, 0))
		return 1;
	uint8_t *p;
	size_t n = 1024;
	CHECK(!rtmem_region_create(n * PG, (void **)&p), "create");
	stamp_all(p, n, 5);
	enum { T = 16 };
	pthread_t th[T];
	struct conc c[T];
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, T);
	for (int t = 0; t < T; t++) {
		c[t] = (struct conc){ .p = p, .n = n / 8, .bar = &bar };
		pthread_create(&th[t], NULL, conc_thread, &c[t]);
	}
	int bad = 0;
	for (int t = 0; t < T; t++) {
		pthread_join(th[t], NULL);
		bad += c[t].bad;
	}
	struct rtmem_stats s = stats();
	printf("  %d threads x %zu pages: %llu faults, %llu EEXIST races\n", T, n / 8,
	       (unsigned long long)s.faults, (unsigned long long)s.eexist);
	CHECK(!bad, "%d pages did not verify", bad);
	return 0;
}

static int t_unmap_remap(void)
{
	/* without mlock: an mlocked region refuses plain MADV_DONTNEED (EINVAL);
	 * rtmem-run's shim turns it into MADV_DONTNEED_LOCKED, see docs/uffd.md */
	if (start(128, RTMEM_NO_MLOCK, 0))
		return 1;
	uint8_t *p;
	size_t n = 1024;
	CHECK(!rtmem_region_create(n * PG, (void **)&p), "create");
	stamp_all(p, n, 6);
	/* munmap a hole in the middle */
	CHECK(!munmap(p + 100 * PG, 50 * PG), "munmap hole");
	for (size_t i = 0; i < n; i++)
		if (i < 100 || i >= 150)
			CHECK(!verify(p, i, 6), "page %zu after hole", i);
	/* DONTNEED: resident and evicted pages alike read zero afterwards */
	CHECK(!madvise(p + 200 * PG, 300 * PG, MADV_DONTNEED), "dontneed");
	for (size_t i = 200; i < 500; i++)
		for (size_t k = 0; k < PG; k += 512)
			CHECK(p[i * PG + k] == 0, "page %zu not zero after DONTNEED", i);
	for (size_t i = 500; i < n; i++)
		CHECK(!verify(p, i, 6), "page %zu after DONTNEED", i);
	/* mremap the tail elsewhere (pages in the store move with it) and grow it */
	uint8_t *tail = p + 512 * PG;
	uint8_t *q = mremap(tail, 512 * PG, 1024 * PG, MREMAP_MAYMOVE);
	CHECK(q != MAP_FAILED, "mremap: %s", strerror(errno));
	for (size_t i = 0; i < 512; i++)
		CHECK(!verify(q, i, 6) || !verify(q - 512 * PG + 512 * PG, i, 6) ||
			      !memcmp(q + i * PG, q + i * PG, 8),
		      "moved page %zu", i);
	int bad = 0;
	for (size_t i = 0; i < 512; i++) {
		const uint64_t *w = (const uint64_t *)(q + i * PG);
		if (w[0] != ((uint64_t)(i + 512) << 32 ^ (uint64_t)6 << 48) ||
		    w[PG / 8 - 1] != rtm_checksum(w, PG - 8))
			bad++;
	}
	CHECK(!bad, "%d moved pages wrong", bad);
	for (size_t i = 512; i < 1024; i++)
		CHECK(q[i * PG] == 0, "grown page %zu not zero", i);
	CHECK(!munmap(q, 1024 * PG), "munmap moved");
	CHECK(!munmap(p, 100 * PG) && !munmap(p + 150 * PG, 362 * PG), "munmap rest");
	usleep(10000);
	struct rtmem_stats s = stats();
	CHECK(s.resident == 0, "resident %llu after everything was unmapped",
	      (unsigned long long)s.resident);
	return 0;
}

/* fork_start - engine with @budget pages, a region of @n pages stamped with @salt:
 * 0, SKIP without fork events, 1 on failure. */
static int fork_start(size_t budget, size_t n, uint32_t salt, uint8_t **p)
{
	if (start(budget, 0, 0))
		return 1;
	if (!(stats().features & UFFD_FEATURE_EVENT_FORK)) {
		printf("  SKIP: no UFFD_FEATURE_EVENT_FORK\n");
		return SKIP;
	}
	CHECK(!rtmem_region_create(n * PG, (void **)p), "create");
	stamp_all(*p, n, salt);
	return 0;
}

static int t_fork(void)
{
	uint8_t *p;
	size_t n = 2048;
	int rc = fork_start(256, n, 7, &p);
	if (rc)
		return rc;
	pid_t pid = fork();
	if (pid == 0)
		_exit(verify_all(p, n, 7) ? 1 : 0);
	/* the parent rewrites everything meanwhile: the child keeps the old data */
	stamp_all(p, n, 8);
	int st;
	CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child saw wrong data (status %#x)", st);
	CHECK(!verify_all(p, n, 8), "parent after fork");
	struct rtmem_stats s = stats();
	printf("  child served %llu faults\n", (unsigned long long)s.child_faults);
	CHECK(s.forks == 1 && s.child_faults > 0, "forks %llu child_faults %llu",
	      (unsigned long long)s.forks, (unsigned long long)s.child_faults);
	return 0;
}

/* A forked child forks again: the grandchild sees the child's data (the child's
 * writes and, for pages neither of them holds, the parent's pages at the first
 * fork), while parent and child rewrite theirs. */
static int t_fork_grandchild(void)
{
	uint8_t *p;
	size_t n = 2048;
	int rc = fork_start(256, n, 7, &p);
	if (rc)
		return rc;
	pid_t pid = fork();
	if (pid == 0) {
		/* child: rewrites the even pages, then forks */
		for (size_t i = 0; i < n; i += 2)
			stamp(p, i, 12);
		pid_t g = fork();
		if (g == 0) {
			for (size_t i = 0; i < n; i++)
				if (verify(p, i, i % 2 ? 7 : 12)) {
					fprintf(stderr, "  grandchild: page %zu wrong\n", i);
					_exit(1);
				}
			_exit(0);
		}
		stamp_all(p, n, 13); /* meanwhile the child rewrites all */
		int st;
		if (waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st))
			_exit(2);
		_exit(verify_all(p, n, 13) ? 3 : 0);
	}
	stamp_all(p, n, 8);
	int st;
	CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "child or grandchild saw wrong data (status %#x: 1 grandchild, 2 its exit, 3 child)",
	      st);
	CHECK(!verify_all(p, n, 8), "parent after fork");
	struct rtmem_stats s = stats();
	printf("  2 forks served, %llu child faults\n", (unsigned long long)s.child_faults);
	CHECK(s.forks == 2, "forks %llu", (unsigned long long)s.forks);
	return 0;
}

/* A forked child has a budget of its own (the parent's size): it reads and rewrites
 * 16x its budget, every page verifies, its pages are evicted (written back under
 * its own keys) and at rest it holds at most its budget plus what it inherited. */
static int t_fork_budget(void)
{
	size_t budget = 256, n = 4096;
	uint8_t *p;
	int rc = fork_start(budget, n, 14, &p);
	if (rc)
		return rc;
	size_t inherited = resident_pages(p, n);
	pid_t pid = fork();
	if (pid == 0) {
		if (verify_all(p, n, 14))
			_exit(1);
		stamp_all(p, n, 15);
		if (verify_all(p, n, 15))
			_exit(2);
		size_t res = resident_pages(p, n);
		printf("  child at rest: %zu pages resident (budget %zu + %zu inherited)\n", res,
		       budget, inherited);
		fflush(stdout);
		_exit(res > budget + inherited ? 3 : 0);
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "child failed (status %#x: 1/2 data, 3 over budget)", st);
	CHECK(!verify_all(p, n, 14), "parent after the child rewrote its copy");
	struct rtmem_stats s = stats();
	printf("  child: %llu faults, %llu pages evicted, at most %llu resident\n",
	       (unsigned long long)s.child_faults, (unsigned long long)s.child_evicted,
	       (unsigned long long)s.child_resident_max);
	CHECK(s.child_evicted >= n, "child evicted %llu", (unsigned long long)s.child_evicted);
	CHECK(s.child_resident_max <= budget, "child held %llu > budget",
	      (unsigned long long)s.child_resident_max);
	return 0;
}

/* The part a region grows by (mremap) is paged like the rest: stamped data beyond
 * the budget verifies and the budget holds over the whole grown range. */
static int t_mremap_grow(void)
{
	size_t budget = 128;
	if (start(budget, 0, 0))
		return 1;
	if (!(stats().features & UFFD_FEATURE_EVENT_REMAP)) {
		printf("  SKIP: no UFFD_FEATURE_EVENT_REMAP\n");
		return SKIP;
	}
	for (int move = 0; move < 2; move++) {
		uint8_t *p, *q;
		size_t n0 = 512, n = 4096;
		/* in place: a region of n pages loses its tail (munmap: those pages are
		 * gone) and grows back into it; moved: a region of n0 pages grows and moves */
		CHECK(!rtmem_region_create((move ? n0 : n) * PG, (void **)&p), "create");
		if (!move)
			CHECK(!munmap(p + n0 * PG, (n - n0) * PG), "munmap tail");
		for (size_t i = 0; i < n0; i++)
			stamp(p, i, 16);
		q = mremap(p, n0 * PG, n * PG, move ? MREMAP_MAYMOVE : 0);
		CHECK(q != MAP_FAILED, "mremap (%s): %s", move ? "move" : "in place",
		      strerror(errno));
		for (size_t i = 0; i < n0; i++)
			CHECK(!verify(q, i, 16), "old page %zu after mremap", i);
		for (size_t i = n0; i < n; i++)
			CHECK(q[i * PG] == 0, "grown page %zu not zero", i);
		for (size_t i = 0; i < n; i++)
			stamp(q, i, 17);
		CHECK(!verify_all(q, n, 17), "verify grown region");
		size_t res = resident_pages(q, n);
		struct rtmem_stats s = stats();
		printf("  %s: %llu pages adopted, %zu resident at rest (budget %zu), %llu evicted\n",
		       move ? "moved+grown" : "grown in place", (unsigned long long)s.adopted, res,
		       budget, (unsigned long long)s.evicted);
		CHECK(res <= budget, "%zu resident > budget %zu", res, budget);
		CHECK(s.adopted >= n - n0, "adopted %llu", (unsigned long long)s.adopted);
		CHECK(!munmap(q, n * PG), "munmap");
	}
	return 0;
}

static volatile int budget_stop;
static size_t budget_worst, budget_samples;

struct bud {
	uint8_t *p;
	size_t n;
	unsigned id;
	int bad;
};

static void *bud_thread(void *arg)
{
	struct bud *b = arg;
	uint64_t x = 0x9e3779b97f4a7c15ull * (b->id + 1);
	for (int k = 0; k < 20000; k++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t i = x % b->n;
		if (verify(b->p, i, 9))
			b->bad++;
		if (k % 3 == 0)
			stamp(b->p, i, 9);
	}
	return NULL;
}

static void *bud_monitor(void *arg)
{
	struct bud *b = arg;
	while (!budget_stop) {
		/* mincore's walk is not atomic against concurrent zaps and fills (all take
		 * the mmap lock shared): a page counted behind the walker may be zapped
		 * and another one filled ahead of it. Fills are bounded by the budget with
		 * the pages being evicted still counted, so a walk during which no
		 * eviction completed is a sound sample; others are discarded. */
		uint64_t before = stats().evicted;
		size_t r = resident_pages(b->p, b->n);
		if (stats().evicted != before)
			continue;
		budget_samples++;
		if (r > budget_worst)
			budget_worst = r;
	}
	return NULL;
}

static int t_budget(void)
{
	size_t budget = 512;
	if (start(budget, 0, 0))
		return 1;
	uint8_t *p;
	size_t n = 4096; /* one mincore chunk: a consistent snapshot of the page table */
	CHECK(!rtmem_region_create(n * PG, (void **)&p), "create");
	struct bud mon = { .p = p, .n = n };
	pthread_t mt;
	pthread_create(&mt, NULL, bud_monitor, &mon);
	stamp_all(p, n, 9);
	enum { T = 4 };
	pthread_t th[T];
	struct bud b[T];
	for (unsigned t = 0; t < T; t++) {
		b[t] = (struct bud){ .p = p, .n = n, .id = t };
		pthread_create(&th[t], NULL, bud_thread, &b[t]);
	}
	int bad = 0;
	for (unsigned t = 0; t < T; t++) {
		pthread_join(th[t], NULL);
		bad += b[t].bad;
	}
	budget_stop = 1;
	pthread_join(mt, NULL);
	struct rtmem_stats s = stats();
	printf("  budget %zu pages: mincore saw at most %zu resident (%zu sound samples), "
	       "engine max %llu\n", budget, budget_worst, budget_samples,
	       (unsigned long long)s.resident_max);
	rtmem_print_stats("budget");
	size_t quiet = resident_pages(p, n);
	printf("  at rest: %zu resident\n", quiet);
	CHECK(!bad, "%d pages did not verify", bad);
	CHECK(budget_samples > 0, "no mincore sample without an eviction completing in it");
	CHECK(budget_worst <= budget, "mincore saw %zu resident pages > budget %zu",
	      budget_worst, budget);
	CHECK(quiet <= budget, "%zu resident at rest > budget %zu", quiet, budget);
	CHECK(s.resident_max <= budget, "engine max %llu", (unsigned long long)s.resident_max);
	return 0;
}

static int t_spill(void)
{
	if (start(256, 0, 1000)) /* the store refuses puts beyond 1000 pages */
		return 1;
	uint8_t *p;
	size_t n = 4096;
	CHECK(!rtmem_region_create(n * PG, (void **)&p), "create");
	stamp_all(p, n, 10);
	CHECK(!verify_all(p, n, 10), "verify");
	for (size_t i = 0; i < n; i += 3)
		stamp(p, i, 10);
	CHECK(!verify_all(p, n, 10), "verify after rewrite");
	struct rtmem_stats s = stats();
	printf("  %llu pages spilled, %llu read back from the spill file\n",
	       (unsigned long long)s.spilled, (unsigned long long)s.spill_reads);
	CHECK(s.spilled >= n - 1000 - 256 && s.spill_reads > 0, "spilled %llu",
	      (unsigned long long)s.spilled);
	return 0;
}

/* policy_run - a scan over cold pages interleaved with accesses to a hot set: every
 * cold page is read once per round (each such read is a refault whatever the
 * policy: the scan is 16x the budget), the hot pages are written (@reads false:
 * write-protect faults see them) or only read (@reads: invisible to userspace but
 * for their refaults). *extra = refaults beyond the cold scan's, i.e. hot refaults. */
static int policy_run(unsigned flags, bool reads, int64_t *extra)
{
	if (start(256, flags | RTMEM_NO_PREFETCH, 0))
		return 1;
	uint8_t *p;
	size_t n = 4096, hot = 64;
	CHECK(!rtmem_region_create(n * PG, (void **)&p), "create");
	stamp_all(p, n, 11);
	struct rtmem_stats a = stats();
	uint64_t cold = 0;
	for (int round = 0; round < 8; round++)
		for (size_t i = hot; i < n; i++) {
			CHECK(!verify(p, i, 11), "cold page %zu", i);
			cold++;
			size_t h = (i / 2) % hot;
			if (i % 2)
				continue;
			if (reads)
				CHECK(!verify(p, h, 11), "hot page %zu", h);
			else
				stamp(p, h, 11);
		}
	struct rtmem_stats b = stats();
	*extra = (int64_t)(b.refaults - a.refaults) - (int64_t)cold;
	printf("    %s, hot set %s: %llu refaults (%llu cold reads), %llu promoted\n",
	       flags & RTMEM_EVICT_FIFO ? "FIFO" : "2Q-CLOCK", reads ? "read" : "written",
	       (unsigned long long)(b.refaults - a.refaults), (unsigned long long)cold,
	       (unsigned long long)(b.promoted - a.promoted));
	return 0;
}

static int t_policy(void)
{
	int64_t r[2][2];
	for (int reads = 0; reads < 2; reads++)
		for (int k = 0; k < 2; k++) {
			int fds[2];
			CHECK(!pipe(fds), "pipe");
			fflush(stdout);
			pid_t pid = fork();
			if (pid == 0) {
				int64_t v = 0;
				int rc = policy_run(k ? RTMEM_EVICT_FIFO : 0, reads, &v);
				if (write(fds[1], &v, sizeof(v)) != sizeof(v))
					rc = 1;
				rtmem_shutdown();
				fflush(stdout);
				_exit(rc);
			}
			close(fds[1]);
			CHECK(read(fds[0], &r[reads][k], sizeof(r[reads][k])) == sizeof(r[reads][k]),
			      "result");
			close(fds[0]);
			int st;
			waitpid(pid, &st, 0);
			CHECK(WIFEXITED(st) && !WEXITSTATUS(st), "run failed");
		}
	printf("  hot-set refaults (beyond the cold scan): written hot set %lld with 2Q-CLOCK, "
	       "%lld with FIFO; read hot set %lld with 2Q-CLOCK, %lld with FIFO\n",
	       (long long)r[0][0], (long long)r[0][1], (long long)r[1][0], (long long)r[1][1]);
	/* the access pattern is fixed; eviction batches follow the handler's timing, so
	 * counts move a little between runs, but the hot set's refaults differ by far
	 * more than that: FIFO refaults every hot page once per trip of its hand
	 * through memory (8 rounds: 9 x 64), the hot segment keeps them after the
	 * refault that promoted them (2 x 64) */
	CHECK(r[1][0] * 3 < r[1][1], "read hot set: %lld refaults vs FIFO %lld",
	      (long long)r[1][0], (long long)r[1][1]);
	CHECK(r[0][0] * 3 < r[0][1], "written hot set: %lld refaults vs FIFO %lld",
	      (long long)r[0][0], (long long)r[0][1]);
	return 0;
}

static const struct tcase {
	const char *name;
	int (*fn)(void);
} cases[] = {
	{ "fault_in", t_fault_in },       { "zero_page", t_zero_page },
	{ "evict_refault", t_evict_refault }, { "dirty_clean", t_dirty_clean },
	{ "prefetch", t_prefetch },       { "concurrent", t_concurrent },
	{ "unmap_remap", t_unmap_remap }, { "fork", t_fork },
	{ "budget", t_budget },           { "spill", t_spill },
	{ "policy", t_policy },           { "fork_grandchild", t_fork_grandchild },
	{ "fork_budget", t_fork_budget }, { "mremap_grow", t_mremap_grow },
};

static int kernel_ok(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		printf("SKIP: userfaultfd unavailable: %s (sysctl vm.unprivileged_userfaultfd, "
		       "seccomp)\n", strerror(errno));
		return 0;
	}
	close(fd);
	return 1;
}

static int run_case(const struct tcase *t)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		alarm(100);
		int rc = t->fn();
		rtmem_shutdown();
		fflush(stdout);
		_exit(rc);
	}
	int st;
	waitpid(pid, &st, 0);
	int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 1;
	printf("%s %s%s\n", rc == 0 ? "PASS" : rc == SKIP ? "SKIP" : "FAIL", t->name,
	       WIFSIGNALED(st) ? " (killed by a signal)" : "");
	return rc;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!kernel_ok())
		return SKIP;
	int fails = 0, skips = 0, ran = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool want = argc < 2;
		for (int a = 1; a < argc; a++)
			want |= !strcmp(argv[a], cases[i].name);
		if (!want)
			continue;
		int rc = run_case(&cases[i]);
		ran++;
		fails += rc && rc != SKIP;
		skips += rc == SKIP;
	}
	if (!ran) {
		fprintf(stderr, "no such case\n");
		return 2;
	}
	return fails ? 1 : skips == ran ? SKIP : 0;
}
