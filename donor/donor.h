/* donor.h - private interface between the donor's pool allocator (pool.c) and the
 * daemon (donor.c). Not used outside donor/.
 */
#ifndef RTMEM_DONOR_H
#define RTMEM_DONOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The memory a donor lends: one mapping, slab-aligned, carved into slabs. */
struct donor_pool {
	void *base;          /* slab-aligned start of the pool */
	uint64_t len;        /* pool bytes, a multiple of slab_size */
	uint64_t slab_size;  /* power of two */
	unsigned n_slabs;
	void *map;           /* the whole mapping (for munmap) */
	size_t map_len;
	bool hugetlb;        /* backed by MAP_HUGETLB 2 MiB pages */
	bool locked;         /* mlock succeeded */
};

/* donor_pool_create - map @len bytes aligned to @slab_size (hugetlb first, then
 * normal pages + MADV_HUGEPAGE), bind to @numa_node (-1 = local allocation), prefault
 * and mlock where possible. Returns 0 or -errno (with a logged reason). */
int donor_pool_create(struct donor_pool *p, uint64_t len, uint64_t slab_size,
		      int numa_node);
/* donor_pool_scrub - zero slab @idx so its next owner never sees old data. */
void donor_pool_scrub(struct donor_pool *p, unsigned idx);
void donor_pool_destroy(struct donor_pool *p);

#endif
