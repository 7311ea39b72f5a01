/* buddy.c - the borrower's zoned buddy allocator: page runs inside the slabs it
 * holds, one zone per donor, nearest zone first.
 *
 * Slab pages are remote memory, so all bookkeeping is local: each slab keeps, per
 * order, a bitmap of its free blocks of that order, with summary levels above it (a
 * bit per non-zero word) so that the first free block is found in a few word reads
 * (about 0.26 byte per page). The order of an allocated run is not stored: the caller
 * passes it back to buddy_free. Each zone links its slabs into one list per order (the
 * slabs having a free block of that order) and keeps a mask of the non-empty lists,
 * so an allocation costs O(zones + orders). Slab handles map to slabs through a small
 * open-addressing table.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "borrower/borrower-internal.h"

#define NORDERS (BUDDY_MAX_ORDER + 1)
#define BM_LEVELS 4 /* 64^4 bits > 2^BUDDY_MAX_ORDER blocks */

/* one order's bitmap: level 0 has a bit per block, level l+1 a bit per word of l */
struct bm {
	uint32_t off[BM_LEVELS]; /* first word of each level in slab->bits */
	uint8_t nlev;
};

struct zone;

struct slab {
	uint32_t handle;
	uint8_t order;          /* log2 of the slab's pages */
	uint32_t used;          /* allocated pages */
	struct zone *zone;
	struct slab *next[NORDERS], *prev[NORDERS]; /* zone lists per order */
	struct bm bm[NORDERS];
	uint64_t *bits;
};

struct zone {
	uint32_t id;
	int distance;
	uint32_t mask;          /* bit k: head[k] != NULL */
	uint64_t total, free;
	struct slab *head[NORDERS];
};

struct buddy {
	struct zone **zones;    /* sorted by (distance, id) */
	unsigned nzones;
	struct slab **map;      /* handle -> slab, linear probing, NULL = empty */
	uint32_t map_cap;       /* power of two */
	uint32_t nslabs;
	uint64_t total, free;
};

/* ------------------------------------------------------------ bitmaps */

static uint64_t *bm_word(struct slab *s, unsigned k, unsigned l, uint32_t i)
{
	return &s->bits[s->bm[k].off[l] + (i >> 6)];
}

/* set block @i of order @k; true if the order had no free block before */
static bool bm_set(struct slab *s, unsigned k, uint32_t i)
{
	for (unsigned l = 0; l < s->bm[k].nlev; l++, i >>= 6) {
		uint64_t *w = bm_word(s, k, l, i), was = *w;

		*w |= 1ull << (i & 63);
		if (was)
			return false;
	}
	return true;
}

/* clear block @i of order @k; true if the order has no free block left */
static bool bm_clear(struct slab *s, unsigned k, uint32_t i)
{
	for (unsigned l = 0; l < s->bm[k].nlev; l++, i >>= 6) {
		uint64_t *w = bm_word(s, k, l, i);

		*w &= ~(1ull << (i & 63));
		if (*w)
			return false;
	}
	return true;
}

static bool bm_test(struct slab *s, unsigned k, uint32_t i)
{
	return *bm_word(s, k, 0, i) >> (i & 63) & 1;
}

/* the first free block of order @k (the order must have one) */
static uint32_t bm_first(struct slab *s, unsigned k)
{
	uint32_t i = 0;

	for (unsigned l = s->bm[k].nlev; l-- > 0;) {
		uint64_t w = *bm_word(s, k, l, i << 6);

		assert(w);
		i = i << 6 | (uint32_t)__builtin_ctzll(w);
	}
	return i;
}

/* ------------------------------------------------------------ free blocks */

static void zone_link(struct zone *z, struct slab *s, unsigned k)
{
	s->prev[k] = NULL;
	s->next[k] = z->head[k];
	if (z->head[k])
		z->head[k]->prev[k] = s;
	z->head[k] = s;
	z->mask |= 1u << k;
}

static void zone_unlink(struct zone *z, struct slab *s, unsigned k)
{
	if (s->prev[k])
		s->prev[k]->next[k] = s->next[k];
	else
		z->head[k] = s->next[k];
	if (s->next[k])
		s->next[k]->prev[k] = s->prev[k];
	if (!z->head[k])
		z->mask &= ~(1u << k);
}

static void give(struct slab *s, unsigned k, uint32_t i)
{
	if (bm_set(s, k, i))
		zone_link(s->zone, s, k);
}

static void take(struct slab *s, unsigned k, uint32_t i)
{
	if (bm_clear(s, k, i))
		zone_unlink(s->zone, s, k);
}

/* ------------------------------------------------------------ slab map */

static uint32_t map_hash(uint32_t h, uint32_t cap)
{
	return (h * 0x9e3779b1u) >> 7 & (cap - 1);
}

static struct slab **map_slot(const struct buddy *b, uint32_t handle)
{
	if (!b->map_cap)
		return NULL;
	for (uint32_t i = map_hash(handle, b->map_cap);; i = (i + 1) & (b->map_cap - 1))
		if (!b->map[i] || b->map[i]->handle == handle)
			return &b->map[i];
}

static struct slab *map_get(const struct buddy *b, uint32_t handle)
{
	struct slab **p = map_slot(b, handle);

	return p ? *p : NULL;
}

static int map_grow(struct buddy *b)
{
	struct buddy nb = { .map_cap = b->map_cap ? b->map_cap * 2 : 16 };

	nb.map = calloc(nb.map_cap, sizeof(*nb.map));
	if (!nb.map)
		return -ENOMEM;
	for (uint32_t i = 0; i < b->map_cap; i++)
		if (b->map[i])
			*map_slot(&nb, b->map[i]->handle) = b->map[i];
	free(b->map);
	b->map = nb.map;
	b->map_cap = nb.map_cap;
	return 0;
}

/* backward-shift deletion keeps probe chains intact without tombstones */
static void map_del(struct buddy *b, struct slab **slot)
{
	uint32_t mask = b->map_cap - 1, i = (uint32_t)(slot - b->map), j = i;

	for (;;) {
		b->map[i] = NULL;
		for (;;) {
			j = (j + 1) & mask;
			if (!b->map[j])
				return;
			uint32_t h = map_hash(b->map[j]->handle, b->map_cap);
			/* move b->map[j] to i unless its home lies cyclically in (i, j] */
			if (i <= j ? (h <= i || h > j) : (h <= i && h > j))
				break;
		}
		b->map[i] = b->map[j];
		i = j;
	}
}

/* ------------------------------------------------------------ API */

struct buddy *buddy_new(void)
{
	return calloc(1, sizeof(struct buddy));
}

static void slab_free(struct slab *s)
{
	free(s->bits);
	free(s);
}

void buddy_free_all(struct buddy *b)
{
	if (!b)
		return;
	for (uint32_t i = 0; i < b->map_cap; i++)
		if (b->map[i])
			slab_free(b->map[i]);
	for (unsigned i = 0; i < b->nzones; i++)
		free(b->zones[i]);
	free(b->map);
	free(b->zones);
	free(b);
}

static struct zone *zone_get(const struct buddy *b, uint32_t id)
{
	for (unsigned i = 0; i < b->nzones; i++)
		if (b->zones[i]->id == id)
			return b->zones[i];
	return NULL;
}

int buddy_add_zone(struct buddy *b, uint32_t zone, int distance)
{
	struct zone **zs, *z;
	unsigned i;

	if (zone_get(b, zone))
		return -EEXIST;
	zs = realloc(b->zones, (b->nzones + 1) * sizeof(*zs));
	if (!zs)
		return -ENOMEM;
	b->zones = zs;
	z = calloc(1, sizeof(*z));
	if (!z)
		return -ENOMEM;
	z->id = zone;
	z->distance = distance;
	for (i = b->nzones; i > 0; i--) {
		struct zone *y = zs[i - 1];

		if (y->distance < distance || (y->distance == distance && y->id < zone))
			break;
		zs[i] = y;
	}
	zs[i] = z;
	b->nzones++;
	return 0;
}

int buddy_add_slab(struct buddy *b, uint32_t zone, uint32_t slab, uint32_t pages)
{
	struct zone *z = zone_get(b, zone);
	struct slab *s;
	uint32_t words = 0;
	int err;

	if (!pages || pages & (pages - 1) || pages > 1u << BUDDY_MAX_ORDER)
		return -EINVAL;
	if (!z)
		return -ENOENT;
	if (map_get(b, slab))
		return -EEXIST;
	if ((b->nslabs + 1) * 2 > b->map_cap && (err = map_grow(b)))
		return err;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->handle = slab;
	s->zone = z;
	s->order = (uint8_t)__builtin_ctz(pages);
	for (unsigned k = 0; k <= s->order; k++) {
		uint32_t n = pages >> k; /* bits at this level */

		do {
			n = (n + 63) / 64;
			s->bm[k].off[s->bm[k].nlev++] = words;
			words += n;
		} while (n > 1);
	}
	s->bits = calloc(words, sizeof(uint64_t));
	if (!s->bits) {
		free(s);
		return -ENOMEM;
	}
	*map_slot(b, slab) = s;
	b->nslabs++;
	give(s, s->order, 0);
	z->total += pages;
	z->free += pages;
	b->total += pages;
	b->free += pages;
	return 0;
}

int buddy_remove_slab(struct buddy *b, uint32_t slab, bool force)
{
	struct slab **slot = map_slot(b, slab), *s = slot ? *slot : NULL;
	uint32_t pages;

	if (!s)
		return -ENOENT;
	if (s->used && !force)
		return -EBUSY;
	for (unsigned k = 0; k <= s->order; k++)
		if (*bm_word(s, k, s->bm[k].nlev - 1, 0))
			zone_unlink(s->zone, s, k);
	pages = 1u << s->order;
	s->zone->total -= pages;
	s->zone->free -= pages - s->used;
	b->total -= pages;
	b->free -= pages - s->used;
	map_del(b, slot);
	b->nslabs--;
	slab_free(s);
	return 0;
}

int buddy_alloc(struct buddy *b, unsigned order, uint32_t exclude, struct buddy_loc *out)
{
	if (order > BUDDY_MAX_ORDER)
		return -EINVAL;
	for (unsigned zi = 0; zi < b->nzones; zi++) {
		struct zone *z = b->zones[zi];
		uint32_t m = z->mask >> order << order;
		struct slab *s;
		unsigned k;
		uint32_t i;

		if (!m || (exclude && z->id == exclude))
			continue;
		k = (unsigned)__builtin_ctz(m);
		s = z->head[k];
		i = bm_first(s, k);
		take(s, k, i);
		while (k > order) { /* split: keep the lower half, free the upper */
			k--;
			i <<= 1;
			give(s, k, i + 1);
		}
		s->used += 1u << order;
		z->free -= 1u << order;
		b->free -= 1u << order;
		*out = (struct buddy_loc){ .zone = z->id, .slab = s->handle, .page = i << order };
		return 0;
	}
	return -ENOSPC;
}

void buddy_free(struct buddy *b, const struct buddy_loc *loc, unsigned order)
{
	struct slab *s = map_get(b, loc->slab);
	uint32_t i;
	unsigned k;

	/* an unknown slab was force-removed: its pages are gone already */
	if (!s || order > s->order || loc->page & ((1u << order) - 1) ||
	    loc->page >> s->order)
		return;
	assert(s->zone->id == loc->zone && s->used >= 1u << order);
	for (i = loc->page >> order, k = order; k < s->order && bm_test(s, k, i ^ 1); k++) {
		take(s, k, i ^ 1); /* merge with the free buddy */
		i >>= 1;
	}
	assert(!bm_test(s, k, i)); /* double free */
	give(s, k, i);
	s->used -= 1u << order;
	s->zone->free += 1u << order;
	b->free += 1u << order;
}

uint64_t buddy_total_pages(const struct buddy *b)
{
	return b->total;
}

uint64_t buddy_free_pages(const struct buddy *b)
{
	return b->free;
}

uint64_t buddy_zone_free_pages(const struct buddy *b, uint32_t zone)
{
	const struct zone *z = zone_get(b, zone);

	return z ? z->free : 0;
}

int64_t buddy_slab_used_pages(const struct buddy *b, uint32_t slab)
{
	const struct slab *s = map_get(b, slab);

	return s ? (int64_t)s->used : -ENOENT;
}
