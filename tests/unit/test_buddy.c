/* test_buddy.c - the borrower's zoned buddy allocator: splitting, merging back to a
 * whole slab, exhaustion, zone order by distance, exclusion, slab removal, counters.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "borrower/borrower-internal.h"

static int setup(void **state)
{
	*state = buddy_new();
	return *state ? 0 : -1;
}

static int teardown(void **state)
{
	buddy_free_all(*state);
	return 0;
}

static void test_args(void **state)
{
	struct buddy *b = *state;
	struct buddy_loc l;

	assert_int_equal(buddy_add_zone(b, 1, 0), 0);
	assert_int_equal(buddy_add_zone(b, 1, 3), -EEXIST);
	assert_int_equal(buddy_add_slab(b, 2, 10, 16), -ENOENT);
	assert_int_equal(buddy_add_slab(b, 1, 10, 12), -EINVAL);
	assert_int_equal(buddy_add_slab(b, 1, 10, 0), -EINVAL);
	assert_int_equal(buddy_add_slab(b, 1, 10, 2u << BUDDY_MAX_ORDER), -EINVAL);
	assert_int_equal(buddy_alloc(b, 0, 0, &l), -ENOSPC);
	assert_int_equal(buddy_add_slab(b, 1, 10, 16), 0);
	assert_int_equal(buddy_add_slab(b, 1, 10, 16), -EEXIST);
	assert_int_equal(buddy_alloc(b, BUDDY_MAX_ORDER + 1, 0, &l), -EINVAL);
	assert_int_equal(buddy_alloc(b, 5, 0, &l), -ENOSPC); /* 32 > 16 */
	assert_int_equal(buddy_remove_slab(b, 11, false), -ENOENT);
	assert_int_equal(buddy_slab_used_pages(b, 11), -ENOENT);
	assert_int_equal(buddy_zone_free_pages(b, 7), 0);
}

/* a 16-page slab: order-0 takes page 0 and leaves free runs 1, 2-3, 4-7, 8-15 */
static void test_split_merge(void **state)
{
	struct buddy *b = *state;
	struct buddy_loc a, c, d, e;

	assert_int_equal(buddy_add_zone(b, 1, 0), 0);
	assert_int_equal(buddy_add_slab(b, 1, 7, 16), 0);
	assert_int_equal(buddy_alloc(b, 0, 0, &a), 0);
	assert_int_equal(a.zone, 1);
	assert_int_equal(a.slab, 7);
	assert_int_equal(a.page, 0);
	assert_int_equal(buddy_alloc(b, 2, 0, &c), 0); /* the free 4-7 run */
	assert_int_equal(c.page, 4);
	assert_int_equal(buddy_alloc(b, 0, 0, &d), 0); /* page 1 */
	assert_int_equal(d.page, 1);
	assert_int_equal(buddy_alloc(b, 1, 0, &e), 0); /* 2-3 */
	assert_int_equal(e.page, 2);
	assert_int_equal(buddy_slab_used_pages(b, 7), 8);
	assert_int_equal(buddy_free_pages(b), 8);
	assert_int_equal(buddy_alloc(b, 4, 0, &(struct buddy_loc){ 0 }), -ENOSPC);

	/* free everything in a mixed order: the slab must merge back into one run */
	buddy_free(b, &d, 0);
	buddy_free(b, &c, 2);
	buddy_free(b, &a, 0);
	buddy_free(b, &e, 1);
	assert_int_equal(buddy_slab_used_pages(b, 7), 0);
	assert_int_equal(buddy_free_pages(b), 16);
	assert_int_equal(buddy_alloc(b, 4, 0, &a), 0);
	assert_int_equal(a.page, 0);
	buddy_free(b, &a, 4);
}

/* every page one by one until -ENOSPC, then back; whole slab again */
static void test_exhaust(void **state)
{
	struct buddy *b = *state;
	enum { PAGES = 16384 }; /* a 64 MiB slab */
	struct buddy_loc *l = calloc(PAGES, sizeof(*l)), x;
	char *seen = calloc(PAGES, 1);

	assert_non_null(l);
	assert_non_null(seen);
	assert_int_equal(buddy_add_zone(b, 3, 1), 0);
	assert_int_equal(buddy_add_slab(b, 3, 1, PAGES), 0);
	for (unsigned i = 0; i < PAGES; i++) {
		assert_int_equal(buddy_alloc(b, 0, 0, &l[i]), 0);
		assert_true(l[i].page < PAGES);
		assert_false(seen[l[i].page]); /* never the same page twice */
		seen[l[i].page] = 1;
	}
	assert_int_equal(buddy_alloc(b, 0, 0, &x), -ENOSPC);
	assert_int_equal(buddy_free_pages(b), 0);
	assert_int_equal(buddy_zone_free_pages(b, 3), 0);
	for (unsigned i = 0; i < PAGES; i += 2) /* evens first: no merges possible */
		buddy_free(b, &l[i], 0);
	assert_int_equal(buddy_free_pages(b), PAGES / 2);
	assert_int_equal(buddy_alloc(b, 1, 0, &x), -ENOSPC); /* fragmented */
	for (unsigned i = 1; i < PAGES; i += 2)
		buddy_free(b, &l[i], 0);
	assert_int_equal(buddy_alloc(b, 14, 0, &x), 0);
	assert_int_equal(buddy_free_pages(b), 0);
	buddy_free(b, &x, 14);
	assert_int_equal(buddy_free_pages(b), PAGES);
	free(l);
	free(seen);
}

/* a 4 GiB slab (four bitmap levels): pages come out in order across word and
 * summary boundaries, and go back into one run */
static void test_big(void **state)
{
	struct buddy *b = *state;
	enum { N = 300000 };
	struct buddy_loc *l = calloc(N, sizeof(*l));

	assert_non_null(l);
	assert_int_equal(buddy_add_zone(b, 1, 0), 0);
	assert_int_equal(buddy_add_slab(b, 1, 1, 1u << BUDDY_MAX_ORDER), 0);
	for (unsigned i = 0; i < N; i++) {
		assert_int_equal(buddy_alloc(b, 0, 0, &l[i]), 0);
		assert_int_equal(l[i].page, i);
	}
	for (unsigned i = N; i-- > 0;)
		buddy_free(b, &l[i], 0);
	assert_int_equal(buddy_alloc(b, BUDDY_MAX_ORDER, 0, &l[0]), 0);
	assert_int_equal(buddy_slab_used_pages(b, 1), 1u << BUDDY_MAX_ORDER);
	free(l);
}

/* zones by (distance, id): 5 (d 0), then 2 and 4 (d 1), then 1 (d 2) */
static void test_zones(void **state)
{
	struct buddy *b = *state;
	struct buddy_loc l[8];

	assert_int_equal(buddy_add_zone(b, 1, 2), 0);
	assert_int_equal(buddy_add_zone(b, 4, 1), 0);
	assert_int_equal(buddy_add_zone(b, 5, 0), 0);
	assert_int_equal(buddy_add_zone(b, 2, 1), 0);
	for (uint32_t z = 1; z <= 5; z++)
		if (z != 3)
			assert_int_equal(buddy_add_slab(b, z, 100 + z, 2), 0);
	assert_int_equal(buddy_total_pages(b), 8);

	assert_int_equal(buddy_alloc(b, 0, 5, &l[0]), 0); /* 5 excluded: 2 */
	assert_int_equal(l[0].zone, 2);
	assert_int_equal(l[0].slab, 102);
	const uint32_t order[] = { 5, 5, 2, 4, 4, 1, 1 };
	for (unsigned i = 0; i < 7; i++) {
		assert_int_equal(buddy_alloc(b, 0, 0, &l[i + 1]), 0);
		assert_int_equal(l[i + 1].zone, order[i]);
	}
	assert_int_equal(buddy_alloc(b, 0, 0, &l[0]), -ENOSPC);
	buddy_free(b, &l[5], 0); /* a page of zone 4 and one of zone 1 come back */
	buddy_free(b, &l[7], 0);
	assert_int_equal(buddy_zone_free_pages(b, 4), 1);
	assert_int_equal(buddy_zone_free_pages(b, 1), 1);
	assert_int_equal(buddy_alloc(b, 0, 4, &l[5]), 0); /* 4 excluded: 1 */
	assert_int_equal(l[5].zone, 1);
	assert_int_equal(buddy_alloc(b, 0, 0, &l[7]), 0);
	assert_int_equal(l[7].zone, 4);
}

static void test_remove(void **state)
{
	struct buddy *b = *state;
	struct buddy_loc l, m;

	assert_int_equal(buddy_add_zone(b, 1, 0), 0);
	assert_int_equal(buddy_add_zone(b, 2, 1), 0);
	assert_int_equal(buddy_add_slab(b, 1, 1, 8), 0);
	assert_int_equal(buddy_add_slab(b, 1, 2, 8), 0);
	assert_int_equal(buddy_add_slab(b, 2, 3, 8), 0);
	assert_int_equal(buddy_alloc(b, 3, 0, &l), 0); /* a whole slab of zone 1 */
	assert_int_equal(buddy_alloc(b, 1, 0, &m), 0); /* 2 pages of the other */
	assert_int_equal(m.zone, 1);
	assert_int_not_equal(m.slab, l.slab);
	assert_int_equal(buddy_free_pages(b), 14);
	assert_int_equal(buddy_zone_free_pages(b, 1), 6);

	assert_int_equal(buddy_remove_slab(b, m.slab, false), -EBUSY);
	buddy_free(b, &m, 1);
	assert_int_equal(buddy_remove_slab(b, m.slab, false), 0); /* idle: goes */
	assert_int_equal(buddy_total_pages(b), 16);
	assert_int_equal(buddy_free_pages(b), 8);
	assert_int_equal(buddy_zone_free_pages(b, 1), 0);

	assert_int_equal(buddy_remove_slab(b, l.slab, true), 0); /* busy, forced */
	assert_int_equal(buddy_total_pages(b), 8);
	assert_int_equal(buddy_free_pages(b), 8);
	buddy_free(b, &l, 3); /* a late free into a removed slab is ignored */
	assert_int_equal(buddy_free_pages(b), 8);
	assert_int_equal(buddy_alloc(b, 0, 0, &l), 0); /* zone 1 empty: zone 2 */
	assert_int_equal(l.zone, 2);
	assert_int_equal(buddy_alloc(b, 0, 2, &m), -ENOSPC);

	/* many slabs: the handle table grows and shrinks through removal */
	for (uint32_t s = 1000; s < 1500; s++)
		assert_int_equal(buddy_add_slab(b, 1 + s % 2, s, 4), 0);
	for (uint32_t s = 1000; s < 1500; s += 3)
		assert_int_equal(buddy_remove_slab(b, s, false), 0);
	for (uint32_t s = 1000; s < 1500; s++)
		assert_int_equal(buddy_slab_used_pages(b, s), s % 3 == 1000 % 3 ? -ENOENT : 0);
	assert_int_equal(buddy_total_pages(b), 8 + 4 * (500 - 167));
}

/* random allocations and frees of random orders, checked against a page map */
static void test_random(void **state)
{
	struct buddy *b = *state;
	enum { SLABS = 4, PAGES = 1024, LIVE = 512 };
	struct { struct buddy_loc l; unsigned order; bool on; } live[LIVE] = { 0 };
	static unsigned char owner[SLABS][PAGES];
	uint64_t used = 0;

	memset(owner, 0, sizeof(owner));
	srand(42);
	assert_int_equal(buddy_add_zone(b, 9, 0), 0);
	for (uint32_t s = 0; s < SLABS; s++)
		assert_int_equal(buddy_add_slab(b, 9, s, PAGES), 0);
	for (unsigned it = 0; it < 200000; it++) {
		unsigned i = (unsigned)rand() % LIVE;

		if (live[i].on) {
			buddy_free(b, &live[i].l, live[i].order);
			for (unsigned p = 0; p < 1u << live[i].order; p++)
				owner[live[i].l.slab][live[i].l.page + p] = 0;
			used -= 1u << live[i].order;
			live[i].on = false;
			continue;
		}
		live[i].order = (unsigned)rand() % 6;
		if (buddy_alloc(b, live[i].order, 0, &live[i].l))
			continue;
		assert_int_equal(live[i].l.page % (1u << live[i].order), 0);
		for (unsigned p = 0; p < 1u << live[i].order; p++) {
			assert_int_equal(owner[live[i].l.slab][live[i].l.page + p], 0);
			owner[live[i].l.slab][live[i].l.page + p] = 1;
		}
		used += 1u << live[i].order;
		live[i].on = true;
		assert_int_equal(buddy_free_pages(b), SLABS * PAGES - used);
	}
	for (unsigned i = 0; i < LIVE; i++)
		if (live[i].on)
			buddy_free(b, &live[i].l, live[i].order);
	for (uint32_t s = 0; s < SLABS; s++) /* all merged back: each slab whole */
		assert_int_equal(buddy_alloc(b, 10, 0, &live[0].l), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_args, setup, teardown),
		cmocka_unit_test_setup_teardown(test_split_merge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exhaust, setup, teardown),
		cmocka_unit_test_setup_teardown(test_big, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zones, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
