/* pindex.c - the borrower's page index: (pool, object id, index) -> where the page's
 * copies live.
 *
 * Two chained hash tables: one of entries by full key, one of objects by (pool,
 * oid); each object keeps a list of its entries, so flushing an object costs its own
 * size, not the index's. Entries and objects are nodes carved from chunks that never
 * move (entry pointers stay valid) and are recycled through free lists. Both tables
 * double when their load passes 1. Walking one pool goes through the object table.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "borrower/borrower-internal.h"

#define CHUNK_NODES 4096
#define MIN_BUCKETS 64

struct enode {
	struct pindex_entry e; /* first: entry pointers are node pointers */
	struct enode *hnext;   /* hash chain */
	struct enode *onext, *oprev; /* the object's entries */
};

struct obj {
	uint32_t pool;
	uint64_t oid;
	struct obj *hnext;
	struct enode *head;
};

/* fixed-size node allocator: chunks are kept until the index is freed */
struct arena {
	size_t size;
	void *free;  /* free nodes, linked through their first word */
	void *chunks; /* linked through their first word */
	char *next, *end;
};

struct table {
	void **b;     /* bucket heads */
	size_t mask;  /* buckets - 1 */
	size_t n;
};

struct pindex {
	struct table e, o;
	struct arena ea, oa;
};

/* ------------------------------------------------------------ helpers */

static void *arena_get(struct arena *a)
{
	void *p = a->free;

	if (p) {
		memcpy(&a->free, p, sizeof(void *));
		return p;
	}
	if (a->next == a->end) {
		char *c = malloc(sizeof(max_align_t) + CHUNK_NODES * a->size);

		if (!c)
			return NULL;
		memcpy(c, &a->chunks, sizeof(void *));
		a->chunks = c;
		a->next = c + sizeof(max_align_t);
		a->end = a->next + CHUNK_NODES * a->size;
	}
	p = a->next;
	a->next += a->size;
	return p;
}

static void arena_put(struct arena *a, void *p)
{
	memcpy(p, &a->free, sizeof(void *));
	a->free = p;
}

static void arena_destroy(struct arena *a)
{
	for (void *c = a->chunks, *n; c; c = n) {
		memcpy(&n, c, sizeof(void *));
		free(c);
	}
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ x >> 33;
}

static uint64_t obj_hash(uint32_t pool, uint64_t oid)
{
	return mix(oid ^ mix(pool));
}

static uint64_t key_hash(const struct pindex_key *k)
{
	return mix(obj_hash(k->pool, k->oid) + k->index);
}

static bool key_eq(const struct pindex_key *a, const struct pindex_key *b)
{
	return a->pool == b->pool && a->oid == b->oid && a->index == b->index;
}

static int table_init(struct table *t)
{
	t->b = calloc(MIN_BUCKETS, sizeof(void *));
	t->mask = MIN_BUCKETS - 1;
	return t->b ? 0 : -ENOMEM;
}

/* ------------------------------------------------------------ the two tables */

static struct enode **e_slot(struct pindex *p, const struct pindex_key *k)
{
	struct enode **pp = (struct enode **)&p->e.b[key_hash(k) & p->e.mask];

	while (*pp && !key_eq(&(*pp)->e.key, k))
		pp = &(*pp)->hnext;
	return pp;
}

static struct obj **o_slot(struct pindex *p, uint32_t pool, uint64_t oid)
{
	struct obj **pp = (struct obj **)&p->o.b[obj_hash(pool, oid) & p->o.mask];

	while (*pp && ((*pp)->pool != pool || (*pp)->oid != oid))
		pp = &(*pp)->hnext;
	return pp;
}

static uint64_t e_hash(const void *n)
{
	return key_hash(&((const struct enode *)n)->e.key);
}

static uint64_t o_hash(const void *n)
{
	const struct obj *o = n;

	return obj_hash(o->pool, o->oid);
}

/* one more node in @t: double the buckets when the load passes 1 (if that fails the
 * load just grows). @link is the offset of the node's hash-chain pointer. */
static void table_added(struct table *t, size_t link, uint64_t (*hash)(const void *))
{
	size_t nb = (t->mask + 1) * 2;
	void **b;

	if (++t->n <= t->mask + 1 || !(b = calloc(nb, sizeof(void *))))
		return;
	for (size_t i = 0; i <= t->mask; i++)
		for (char *n = t->b[i], *next; n; n = next) {
			void **np = (void **)(n + link);
			size_t h = hash(n) & (nb - 1);

			next = *np;
			*np = b[h];
			b[h] = n;
		}
	free(t->b);
	t->b = b;
	t->mask = nb - 1;
}

/* unlink @n (of object @o) from both tables and free it; frees @o when empty */
static void e_drop(struct pindex *p, struct obj *o, struct enode *n)
{
	struct enode **pp = e_slot(p, &n->e.key);

	*pp = n->hnext;
	if (n->oprev)
		n->oprev->onext = n->onext;
	else
		o->head = n->onext;
	if (n->onext)
		n->onext->oprev = n->oprev;
	arena_put(&p->ea, n);
	p->e.n--;
	if (!o->head) {
		struct obj **op = o_slot(p, o->pool, o->oid);

		*op = o->hnext;
		arena_put(&p->oa, o);
		p->o.n--;
	}
}

/* ------------------------------------------------------------ API */

struct pindex *pindex_new(void)
{
	struct pindex *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->ea.size = sizeof(struct enode);
	p->oa.size = sizeof(struct obj);
	if (table_init(&p->e) || table_init(&p->o)) {
		pindex_free(p);
		return NULL;
	}
	return p;
}

void pindex_free(struct pindex *p)
{
	if (!p)
		return;
	arena_destroy(&p->ea);
	arena_destroy(&p->oa);
	free(p->e.b);
	free(p->o.b);
	free(p);
}

struct pindex_entry *pindex_lookup(struct pindex *p, const struct pindex_key *k)
{
	struct enode *n = *e_slot(p, k);

	return n ? &n->e : NULL;
}

int pindex_insert(struct pindex *p, const struct pindex_key *k, struct pindex_entry **out)
{
	struct enode **pp = e_slot(p, k), *n;
	struct obj **op, *o;

	if (*pp)
		return -EEXIST;
	n = arena_get(&p->ea);
	if (!n)
		return -ENOMEM;
	op = o_slot(p, k->pool, k->oid);
	o = *op;
	if (!o) {
		o = arena_get(&p->oa);
		if (!o) {
			arena_put(&p->ea, n);
			return -ENOMEM;
		}
		*o = (struct obj){ .pool = k->pool, .oid = k->oid };
		*op = o;
		table_added(&p->o, offsetof(struct obj, hnext), o_hash);
	}
	*n = (struct enode){ .e.key = *k, .onext = o->head };
	if (o->head)
		o->head->oprev = n;
	o->head = n;
	*pp = n;
	table_added(&p->e, offsetof(struct enode, hnext), e_hash);
	if (out)
		*out = &n->e;
	return 0;
}

int pindex_remove(struct pindex *p, const struct pindex_key *k, struct pindex_entry *out)
{
	struct enode *n = *e_slot(p, k);

	if (!n)
		return -ENOENT;
	if (out)
		*out = n->e;
	e_drop(p, *o_slot(p, k->pool, k->oid), n);
	return 0;
}

/* walk one object's entries; returns the number visited */
static size_t walk_obj(struct pindex *p, struct obj *o,
		       bool (*cb)(struct pindex_entry *e, void *arg), void *arg)
{
	size_t visited = 0;

	for (struct enode *n = o->head, *next; n; n = next) {
		next = n->onext;
		visited++;
		if (cb(&n->e, arg))
			e_drop(p, o, n); /* frees o with its last entry: then next == NULL */
	}
	return visited;
}

size_t pindex_walk(struct pindex *p, uint32_t pool, bool by_oid, uint64_t oid,
		   bool (*cb)(struct pindex_entry *e, void *arg), void *arg)
{
	size_t visited = 0;

	if (by_oid && pool != UINT32_MAX) {
		struct obj *o = *o_slot(p, pool, oid);

		return o ? walk_obj(p, o, cb, arg) : 0;
	}
	for (size_t i = 0; i <= p->o.mask; i++)
		for (struct obj *o = p->o.b[i], *next; o; o = next) {
			next = o->hnext;
			if ((pool == UINT32_MAX || o->pool == pool) && (!by_oid || o->oid == oid))
				visited += walk_obj(p, o, cb, arg);
		}
	return visited;
}

size_t pindex_count(const struct pindex *p)
{
	return p->e.n;
}
