/* pool.c - the donor's memory pool: one slab-aligned anonymous mapping, hugepage
 * backed where possible, bound to a NUMA node, prefaulted and locked so lent memory
 * is never swapped or allocated lazily under a borrower's request.
 */
#include <errno.h>
#include <numa.h>
#include <numaif.h>
#include <string.h>
#include <sys/mman.h>

#include "common/common.h"
#include "donor/donor.h"

#define LOG_AREA "pool"
#define HUGE_2M (2ull << 20)

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << MAP_HUGE_SHIFT)
#endif

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

/* bind_numa - MPOL_BIND the range to @node; -1 leaves the default (local) policy. */
static int bind_numa(struct donor_pool *p, int node)
{
	struct bitmask *bm;
	int r = 0;

	if (numa_available() < 0) {
		log_info("no NUMA on this machine, pool not bound");
		return 0;
	}
	if (node < 0) {
		log_info("numa_node -1: pool allocated local to the donor's CPU, not bound");
		return 0;
	}
	if (node > numa_max_node()) {
		log_err("numa_node %d does not exist (max %d)", node, numa_max_node());
		return -EINVAL;
	}
	bm = numa_allocate_nodemask();
	if (!bm)
		return -ENOMEM;
	numa_bitmask_setbit(bm, (unsigned)node);
	if (mbind(p->base, p->len, MPOL_BIND, bm->maskp, bm->size + 1, 0) < 0) {
		r = -errno;
		log_err("mbind pool to NUMA node %d: %s", node, strerror(errno));
	} else {
		log_info("pool bound to NUMA node %d", node);
	}
	numa_free_nodemask(bm);
	return r;
}

static int map_pool(struct donor_pool *p)
{
	uint64_t want = p->len + p->slab_size;
	void *m;

	p->map_len = round_up(want, HUGE_2M);
	m = mmap(NULL, p->map_len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);
	if (m != MAP_FAILED) {
		p->hugetlb = true;
		log_info("%llu MiB on 2 MiB hugetlb pages",
			 (unsigned long long)(p->len >> 20));
	} else {
		log_info("no hugetlb pages (%s), using normal pages + MADV_HUGEPAGE",
			 strerror(errno));
		p->map_len = want;
		m = mmap(NULL, p->map_len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (m == MAP_FAILED) {
			log_err("mmap %llu bytes: %s", (unsigned long long)p->map_len,
				strerror(errno));
			return -errno;
		}
	}
	p->map = m;
	p->base = (void *)(uintptr_t)round_up((uintptr_t)m, p->slab_size);
	if (!p->hugetlb && madvise(p->base, p->len, MADV_HUGEPAGE) < 0)
		log_warn("MADV_HUGEPAGE: %s (transparent hugepages off?)", strerror(errno));
	return 0;
}

int donor_pool_create(struct donor_pool *p, uint64_t len, uint64_t slab_size,
		      int numa_node)
{
	int r;

	memset(p, 0, sizeof(*p));
	if (!slab_size || (slab_size & (slab_size - 1)) || !len || len % slab_size ||
	    len / slab_size > UINT32_MAX)
		return -EINVAL;
	p->len = len;
	p->slab_size = slab_size;
	p->n_slabs = (unsigned)(len / slab_size);

	r = map_pool(p);
	if (r < 0)
		return r;
	r = bind_numa(p, numa_node);
	if (r < 0)
		goto out_unmap;

	/* mlock prefaults too; without it, prefault and hope the kernel keeps it. */
	if (mlock(p->base, p->len) == 0) {
		p->locked = true;
		log_info("pool locked in memory (%u slabs)", p->n_slabs);
	} else {
		log_warn("mlock pool: %s; the pool may be swapped (raise RLIMIT_MEMLOCK)",
			 strerror(errno));
#ifdef MADV_POPULATE_WRITE
		if (madvise(p->base, p->len, MADV_POPULATE_WRITE) < 0)
			log_warn("prefault pool: %s", strerror(errno));
#endif
	}
	return 0;

out_unmap:
	munmap(p->map, p->map_len);
	p->map = NULL;
	return r;
}

void donor_pool_scrub(struct donor_pool *p, unsigned idx)
{
	char *s = (char *)p->base + (uint64_t)idx * p->slab_size;

	/* MADV_DONTNEED is cheap on anonymous memory but not allowed on locked or
	 * hugetlb ranges (and would drop the prefault); there, write zeros. */
	if (!p->locked && !p->hugetlb && madvise(s, p->slab_size, MADV_DONTNEED) == 0)
		return;
	memset(s, 0, p->slab_size);
}

void donor_pool_destroy(struct donor_pool *p)
{
	if (p->map)
		munmap(p->map, p->map_len);
	p->map = NULL;
}
