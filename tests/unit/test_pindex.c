/* test_pindex.c - the borrower's page index: insert/lookup/remove, a million entries
 * with stable pointers, walks by pool, by object and over everything with removal.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "borrower/borrower-internal.h"

static int setup(void **state)
{
	*state = pindex_new();
	return *state ? 0 : -1;
}

static int teardown(void **state)
{
	pindex_free(*state);
	return 0;
}

#define KEY(p, o, i) (&(struct pindex_key){ .pool = (p), .oid = (o), .index = (i) })

static void test_basic(void **state)
{
	struct pindex *p = *state;
	struct pindex_entry *e, *f, out;

	assert_null(pindex_lookup(p, KEY(1, 2, 3)));
	assert_int_equal(pindex_insert(p, KEY(1, 2, 3), &e), 0);
	assert_int_equal(e->ncopies, 0);
	e->ncopies = 1;
	e->loc[0] = (struct buddy_loc){ .zone = 4, .slab = 5, .page = 6 };
	assert_int_equal(pindex_insert(p, KEY(1, 2, 3), &f), -EEXIST);
	assert_int_equal(pindex_insert(p, KEY(1, 2, 4), NULL), 0);
	assert_int_equal(pindex_insert(p, KEY(2, 2, 3), NULL), 0); /* other pool */
	assert_int_equal(pindex_insert(p, KEY(1, 3, 3), NULL), 0); /* other object */
	assert_ptr_equal(pindex_lookup(p, KEY(1, 2, 3)), e);
	assert_int_equal(pindex_count(p), 4);

	assert_int_equal(pindex_remove(p, KEY(1, 2, 3), &out), 0);
	assert_int_equal(out.key.pool, 1);
	assert_int_equal(out.key.oid, 2);
	assert_int_equal(out.key.index, 3);
	assert_int_equal(out.ncopies, 1);
	assert_int_equal(out.loc[0].page, 6);
	assert_int_equal(pindex_remove(p, KEY(1, 2, 3), NULL), -ENOENT);
	assert_null(pindex_lookup(p, KEY(1, 2, 3)));
	assert_non_null(pindex_lookup(p, KEY(1, 2, 4)));
	assert_int_equal(pindex_remove(p, KEY(1, 2, 4), NULL), 0); /* object 2 now empty */
	assert_int_equal(pindex_insert(p, KEY(1, 2, 4), NULL), 0); /* and back */
	assert_int_equal(pindex_count(p), 3);
}

/* one object of a million pages (a swap device) and many small objects: pointers
 * stay valid across the table doubling */
static void test_million(void **state)
{
	struct pindex *p = *state;
	enum { N = 1000000 };
	struct pindex_entry *first, *e;

	assert_int_equal(pindex_insert(p, KEY(0, 0, 0), &first), 0);
	first->loc[0].page = 0xabc;
	for (uint32_t i = 1; i < N; i++) {
		assert_int_equal(pindex_insert(p, KEY(0, 0, i), &e), 0);
		e->loc[0].page = i;
		e->ncopies = 1;
	}
	for (uint32_t i = 0; i < N / 4; i++)
		assert_int_equal(pindex_insert(p, KEY(1, i / 4, i % 4), NULL), 0);
	assert_int_equal(pindex_count(p), N + N / 4);
	assert_ptr_equal(pindex_lookup(p, KEY(0, 0, 0)), first);
	assert_int_equal(first->loc[0].page, 0xabc);
	for (uint32_t i = 1; i < N; i++) {
		e = pindex_lookup(p, KEY(0, 0, i));
		assert_non_null(e);
		assert_int_equal(e->loc[0].page, i);
	}
	for (uint32_t i = 0; i < N; i += 2)
		assert_int_equal(pindex_remove(p, KEY(0, 0, i), NULL), 0);
	for (uint32_t i = 0; i < N; i++)
		assert_true(!pindex_lookup(p, KEY(0, 0, i)) == !(i & 1));
	assert_int_equal(pindex_count(p), N / 2 + N / 4);
}

struct walk {
	uint32_t pool;
	uint64_t oid;
	bool by_oid;
	unsigned remove_mod; /* remove the entries whose index % remove_mod == 0 */
	size_t seen, bad;
};

static bool cb(struct pindex_entry *e, void *arg)
{
	struct walk *w = arg;

	w->seen++;
	if ((w->pool != UINT32_MAX && e->key.pool != w->pool) ||
	    (w->by_oid && e->key.oid != w->oid))
		w->bad++;
	return w->remove_mod && e->key.index % w->remove_mod == 0;
}

static size_t walk(struct pindex *p, uint32_t pool, bool by_oid, uint64_t oid,
		   unsigned remove_mod)
{
	struct walk w = { pool, oid, by_oid, remove_mod, 0, 0 };
	size_t n = pindex_walk(p, pool, by_oid, oid, cb, &w);

	assert_int_equal(n, w.seen);
	assert_int_equal(w.bad, 0);
	return n;
}

/* pools 1..3, objects 0..9, indexes 0..99: 3000 entries */
static void test_walk(void **state)
{
	struct pindex *p = *state;

	for (uint32_t pool = 1; pool <= 3; pool++)
		for (uint64_t o = 0; o < 10; o++)
			for (uint32_t i = 0; i < 100; i++)
				assert_int_equal(pindex_insert(p, KEY(pool, o, i), NULL), 0);
	assert_int_equal(walk(p, 2, true, 7, 0), 100);      /* one object */
	assert_int_equal(walk(p, 2, true, 10, 0), 0);       /* no such object */
	assert_int_equal(walk(p, 9, false, 0, 0), 0);       /* no such pool */
	assert_int_equal(walk(p, 2, false, 0, 0), 1000);    /* one pool */
	assert_int_equal(walk(p, UINT32_MAX, false, 0, 0), 3000);
	assert_int_equal(walk(p, UINT32_MAX, true, 3, 0), 300); /* oid 3, every pool */

	/* flush an object: everything of it goes, the object is forgotten */
	assert_int_equal(walk(p, 2, true, 7, 1), 100);
	assert_int_equal(walk(p, 2, true, 7, 0), 0);
	assert_int_equal(pindex_count(p), 2900);
	/* remove every other entry of pool 1 while walking it */
	assert_int_equal(walk(p, 1, false, 0, 2), 1000);
	assert_int_equal(walk(p, 1, false, 0, 0), 500);
	assert_null(pindex_lookup(p, KEY(1, 4, 50)));
	assert_non_null(pindex_lookup(p, KEY(1, 4, 51)));
	/* destroy everything */
	assert_int_equal(walk(p, UINT32_MAX, false, 0, 1), 2400);
	assert_int_equal(pindex_count(p), 0);
	assert_int_equal(walk(p, UINT32_MAX, false, 0, 0), 0);
	assert_int_equal(pindex_insert(p, KEY(2, 7, 1), NULL), 0); /* usable after */
	assert_int_equal(walk(p, 2, true, 7, 0), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_basic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_million, setup, teardown),
		cmocka_unit_test_setup_teardown(test_walk, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
