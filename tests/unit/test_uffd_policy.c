/* test_uffd_policy.c - the pure logic of the uffd engine: the majority-trend prefetch
 * detector (uffd/trend.c) and the victim policy (uffd/victim.c), including a small
 * deterministic cache simulation where the policy must beat FIFO on a hot set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "uffd/uffd-internal.h"

static void feed(struct trend *t, const uint64_t *v, unsigned n)
{
	for (unsigned k = 0; k < n; k++)
		trend_record(t, v[k], 0, 1);
}

static void test_trend_needs_history(void **state)
{
	(void)state;
	struct trend t = { 0 };
	assert_int_equal(trend_detect(&t, 5), 0);
	feed(&t, (uint64_t[]){ 1, 2 }, 2);
	assert_int_equal(trend_detect(&t, 3), 0); /* 2 faults of history: not yet */
	feed(&t, (uint64_t[]){ 3 }, 1);
	assert_int_equal(trend_detect(&t, 4), 1);
}

static void test_trend_strides(void **state)
{
	(void)state;
	struct trend t = { 0 };
	feed(&t, (uint64_t[]){ 100, 104, 108, 112, 116 }, 5);
	assert_int_equal(trend_detect(&t, 120), 4);
	t = (struct trend){ 0 };
	feed(&t, (uint64_t[]){ 50, 49, 48, 47 }, 4);
	assert_int_equal(trend_detect(&t, 46), -1);
	t = (struct trend){ 0 };
	feed(&t, (uint64_t[]){ 0, 64, 128, 192 }, 4);
	assert_int_equal(trend_detect(&t, 256), 64); /* the largest stride followed */
	t = (struct trend){ 0 };
	feed(&t, (uint64_t[]){ 0, 65, 130, 195 }, 4);
	assert_int_equal(trend_detect(&t, 260), 0); /* beyond TREND_MAX_STRIDE */
	t = (struct trend){ 0 };
	feed(&t, (uint64_t[]){ 7, 7, 7 }, 3);
	assert_int_equal(trend_detect(&t, 7), 0); /* a zero delta is no trend */
}

static void test_trend_majority(void **state)
{
	(void)state;
	struct trend t = { 0 };
	/* deltas (newest first) 1, 1, 9, 1, 1, 1, -20: 1 has 5 of 7 */
	feed(&t, (uint64_t[]){ 50, 30, 31, 32, 33, 42, 43 }, 7);
	assert_int_equal(trend_detect(&t, 44), 1);
	/* a majority the fault itself does not continue: deltas 7, 1, 1, 1 */
	t = (struct trend){ 0 };
	feed(&t, (uint64_t[]){ 20, 21, 22, 23 }, 4);
	assert_int_equal(trend_detect(&t, 30), 0);
	/* after a prefetched run the next random fault is no trend (the run's
	 * entries alone would be a majority) */
	t = (struct trend){ 0 };
	trend_record(&t, 100, 1, 64);
	trend_record(&t, 164, 1, 64);
	assert_int_equal(trend_detect(&t, 228), 1);
	assert_int_equal(trend_detect(&t, 9000), 0);
	/* no strict majority: 3, 3, 5, 5 */
	t = (struct trend){ 0 };
	feed(&t, (uint64_t[]){ 0, 5, 10, 13 }, 4);
	assert_int_equal(trend_detect(&t, 16), 0);
	/* the ring keeps the last TREND_HIST faults: old noise falls out */
	t = (struct trend){ 0 };
	feed(&t, (uint64_t[]){ 900, 3, 700, 5, 300 }, 5);
	for (uint64_t v = 1000; v < 1000 + 2 * TREND_HIST; v += 2)
		trend_record(&t, v, 0, 1);
	assert_int_equal(trend_detect(&t, 1000 + 2 * TREND_HIST), 2);
}

static void test_trend_window(void **state)
{
	(void)state;
	struct trend t = { 0 };
	unsigned win = 99;
	assert_int_equal(trend_next(&t, 10, 63, &win), 0);
	assert_int_equal(win, 0);
	feed(&t, (uint64_t[]){ 10, 11, 12 }, 3);
	uint64_t v = 13;
	const unsigned want[] = { 4, 8, 16, 32, 63, 63 };
	for (unsigned k = 0; k < 6; k++) {
		assert_int_equal(trend_next(&t, v, 63, &win), 1);
		assert_int_equal(win, want[k]);
		/* the fault brought win pages along: the next fault is after them */
		trend_record(&t, v, 1, win + 1);
		v += win + 1;
	}
	/* a jump breaks the trend and resets the window */
	t.n = 0;
	feed(&t, (uint64_t[]){ 5000, 17, 4000 }, 3);
	assert_int_equal(trend_next(&t, 90, 63, &win), 0);
	assert_int_equal(win, 0);
}

static void test_victim_fifo(void **state)
{
	(void)state;
	struct vpolicy v;
	vpolicy_init(&v, 64, true);
	uint8_t fl = PF_RES | PF_REF | PF_DIRTY;
	assert_int_equal(vpolicy_visit(&v, &fl), VP_EVICT);
	assert_int_equal(fl, PF_RES | PF_REF | PF_DIRTY);
	assert_false(vpolicy_fault(&v, &fl, 1));
}

static void test_victim_second_chance(void **state)
{
	(void)state;
	struct vpolicy v;
	vpolicy_init(&v, 64, false);
	uint8_t fl = PF_RES;
	assert_int_equal(vpolicy_visit(&v, &fl), VP_EVICT);
	fl = PF_RES | PF_REF;
	assert_int_equal(vpolicy_visit(&v, &fl), VP_SKIP);
	assert_int_equal(fl, PF_RES);
	assert_int_equal(vpolicy_visit(&v, &fl), VP_EVICT);
	fl = PF_RES | PF_REF | PF_DIRTY; /* writable again: protect it to see the next write */
	assert_int_equal(vpolicy_visit(&v, &fl), VP_REARM);
	assert_int_equal(fl, PF_RES | PF_DIRTY);
}

static void test_victim_hot_segment(void **state)
{
	(void)state;
	struct vpolicy v;
	vpolicy_init(&v, 8, false); /* hot_cap 6, window 8 */
	assert_int_equal(v.hot_cap, 6);
	uint8_t fl[10] = { 0 };
	uint32_t st[10];
	for (int k = 0; k < 10; k++)
		st[k] = vpolicy_evicted(&v, &fl[k]);
	assert_int_equal(st[0], 1);
	assert_int_equal(st[9], 10);
	/* refault distance: clock 10; page 0 evicted at 1 (9 > 8: cold), page 2 at 3 (7: hot) */
	assert_false(vpolicy_fault(&v, &fl[0], st[0]));
	assert_true(vpolicy_fault(&v, &fl[2], st[2]));
	assert_true(fl[2] & PF_HOT);
	assert_int_equal(v.nhot, 1);
	assert_false(vpolicy_fault(&v, &fl[2], st[2])); /* already hot */
	assert_false(vpolicy_fault(&v, &fl[1], 0));     /* never evicted */
	/* the hand passes hot pages while the segment is within its cap */
	fl[2] |= PF_RES;
	assert_int_equal(vpolicy_visit(&v, &fl[2]), VP_SKIP);
	fl[2] |= PF_REF | PF_DIRTY;
	assert_int_equal(vpolicy_visit(&v, &fl[2]), VP_REARM);
	assert_true(fl[2] & PF_HOT);
	/* over the cap: demoted to probation as the hand passes, then evictable */
	for (int k = 3; k < 10; k++) {
		fl[k] |= PF_RES;
		assert_true(vpolicy_fault(&v, &fl[k], st[k]));
	}
	assert_int_equal(v.nhot, 8);
	assert_int_equal(vpolicy_visit(&v, &fl[2]), VP_EVICT); /* demoted, unreferenced */
	assert_false(fl[2] & PF_HOT);
	assert_int_equal(v.nhot, 7);
	fl[3] |= PF_REF;
	assert_int_equal(vpolicy_visit(&v, &fl[3]), VP_SKIP); /* demoted, second chance */
	assert_int_equal(v.nhot, 6);
	assert_int_equal(vpolicy_visit(&v, &fl[4]), VP_SKIP); /* at the cap: stays hot */
	assert_int_equal(v.nhot, 6);
	/* eviction and removal leave the segment */
	vpolicy_evicted(&v, &fl[4]);
	vpolicy_gone(&v, &fl[5]);
	assert_int_equal(v.nhot, 4);
	assert_false(fl[4] & PF_HOT);
	v.clock = UINT32_MAX; /* the clock skips 0 (never evicted) */
	assert_int_equal(vpolicy_evicted(&v, &fl[6]), 1);
}

/* A page cache of @budget pages over @n pages driven by the policy the way the engine
 * does (a hand in address order; a missing page evicts one page when full; reads
 * are invisible); returns the faults on the hot pages. */
static unsigned simulate(bool fifo, size_t budget, size_t n, size_t hot, int rounds)
{
	struct vpolicy v;
	uint8_t fl[1024] = { 0 };
	uint32_t stamp[1024] = { 0 };
	size_t resident = 0, hand = 0;
	unsigned hot_faults = 0;
	vpolicy_init(&v, budget, fifo);
	for (int round = 0; round < rounds; round++)
		for (size_t c = hot; c < n; c++) {
			size_t acc[2] = { c, (c / 2) % hot };
			for (int k = 0; k < (c % 2 ? 1 : 2); k++) {
				size_t i = acc[k];
				if (fl[i] & PF_RES)
					continue;
				if (i < hot)
					hot_faults++;
				while (resident >= budget) {
					size_t j = hand++ % n;
					if ((fl[j] & PF_RES) && vpolicy_visit(&v, &fl[j]) == VP_EVICT) {
						stamp[j] = vpolicy_evicted(&v, &fl[j]);
						fl[j] &= (uint8_t)~PF_RES;
						resident--;
					}
				}
				vpolicy_fault(&v, &fl[i], stamp[i]);
				fl[i] |= PF_RES | PF_REF;
				resident++;
			}
		}
	return hot_faults;
}

static void test_victim_simulation(void **state)
{
	(void)state;
	unsigned f = simulate(true, 64, 1024, 16, 8);
	unsigned q = simulate(false, 64, 1024, 16, 8);
	print_message("hot-set faults over 8 scans: FIFO %u, 2Q-CLOCK %u\n", f, q);
	assert_true(q <= 2 * 16 + 1); /* its first fault, the refault that promotes it */
	assert_true(q * 3 < f);
	/* a working set that fits: both fault each page once */
	assert_int_equal(simulate(true, 64, 48, 16, 4), 16);
	assert_int_equal(simulate(false, 64, 48, 16, 4), 16);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trend_needs_history),
		cmocka_unit_test(test_trend_strides),
		cmocka_unit_test(test_trend_majority),
		cmocka_unit_test(test_trend_window),
		cmocka_unit_test(test_victim_fifo),
		cmocka_unit_test(test_victim_second_chance),
		cmocka_unit_test(test_victim_hot_segment),
		cmocka_unit_test(test_victim_simulation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
