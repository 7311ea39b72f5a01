/* store-mem.c - an in-process backing store (open-addressing hash of 4 KiB pages),
 * used by the kernel-facing tests that run without a cluster. A page limit makes
 * puts fail with -ENOSPC the way a capped borrower client does, to test spilling. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "uffd/uffd-internal.h"

struct slot {
	uint64_t oid;
	uint32_t index;
	uint8_t state; /* 0 empty, 1 used, 2 deleted */
	void *page;
};

struct store_mem {
	struct ustore base;
	uint64_t limit, used;
	size_t cap; /* power of two */
	size_t fill; /* used + deleted */
	struct slot *t;
};

static size_t hash(uint64_t oid, uint32_t index)
{
	uint64_t h = oid * 0x9e3779b97f4a7c15ull ^ ((uint64_t)index * 0xc2b2ae3d27d4eb4full);
	return (size_t)(h ^ (h >> 29));
}

static struct slot *find(struct store_mem *m, uint64_t oid, uint32_t index, bool insert)
{
	size_t mask = m->cap - 1, i = hash(oid, index) & mask;
	struct slot *tomb = NULL;
	for (;; i = (i + 1) & mask) {
		struct slot *s = &m->t[i];
		if (s->state == 0)
			return insert ? (tomb ? tomb : s) : NULL;
		if (s->state == 2) {
			if (!tomb)
				tomb = s;
			continue;
		}
		if (s->oid == oid && s->index == index)
			return s;
	}
}

static int grow(struct store_mem *m)
{
	struct slot *old = m->t;
	size_t oldcap = m->cap;
	m->cap = oldcap ? oldcap * 2 : 1024;
	m->t = calloc(m->cap, sizeof(*m->t));
	if (!m->t) {
		m->t = old;
		m->cap = oldcap;
		return -ENOMEM;
	}
	m->fill = 0;
	for (size_t i = 0; i < oldcap; i++) {
		if (old[i].state != 1)
			continue;
		*find(m, old[i].oid, old[i].index, true) = old[i];
		m->fill++;
	}
	free(old);
	return 0;
}

static int mput(struct ustore *s, struct ustore_io *io, unsigned n)
{
	struct store_mem *m = (struct store_mem *)s;
	int ok = 0;
	for (unsigned i = 0; i < n; i++) {
		if ((m->fill + 1) * 2 > m->cap && grow(m))
			return -ENOMEM;
		struct slot *sl = find(m, io[i].oid, io[i].index, true);
		if (sl->state != 1) {
			if (m->limit && m->used >= m->limit) {
				io[i].status = -ENOSPC;
				continue;
			}
			sl->page = malloc(UFFD_PAGE);
			if (!sl->page) {
				io[i].status = -ENOMEM;
				continue;
			}
			if (sl->state == 0)
				m->fill++;
			sl->state = 1;
			sl->oid = io[i].oid;
			sl->index = io[i].index;
			m->used++;
		}
		memcpy(sl->page, io[i].page, UFFD_PAGE);
		io[i].status = 0;
		ok++;
	}
	return ok;
}

static int mget(struct ustore *s, struct ustore_io *io, unsigned n)
{
	struct store_mem *m = (struct store_mem *)s;
	int ok = 0;
	for (unsigned i = 0; i < n; i++) {
		struct slot *sl = m->cap ? find(m, io[i].oid, io[i].index, false) : NULL;
		if (!sl) {
			io[i].status = -ENOENT;
			continue;
		}
		memcpy(io[i].page, sl->page, UFFD_PAGE);
		io[i].status = 0;
		ok++;
	}
	return ok;
}

static int mflush(struct ustore *s, struct ustore_io *io, unsigned n)
{
	struct store_mem *m = (struct store_mem *)s;
	for (unsigned i = 0; i < n; i++) {
		struct slot *sl = m->cap ? find(m, io[i].oid, io[i].index, false) : NULL;
		io[i].status = 0;
		if (!sl)
			continue;
		free(sl->page);
		sl->page = NULL;
		sl->state = 2;
		m->used--;
	}
	return (int)n;
}

static void mdestroy(struct ustore *s)
{
	struct store_mem *m = (struct store_mem *)s;
	for (size_t i = 0; i < m->cap; i++)
		if (m->t[i].state == 1)
			free(m->t[i].page);
	free(m->t);
	free(m);
}

static const struct ustore_ops mem_ops = {
	.name = "mem", .put = mput, .get = mget, .flush = mflush, .destroy = mdestroy,
};

int ustore_mem_new(uint64_t limit_pages, struct ustore **out)
{
	struct store_mem *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->base.ops = &mem_ops;
	m->limit = limit_pages;
	*out = &m->base;
	return 0;
}
