/* test_policy.c - the first- and second-level policies stepped through scripted
 * statistics; every expected number is worked out by hand in the comments (thesis
 * Alg. 2, 3, 4, 8, 9, Eq. 2.2/6.2; readings in docs/policies.md).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "policy/policy.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define NT POLICY_NO_TARGET

static const struct policy_first_ops *first(const char *name)
{
	const struct policy_first_ops *ops = policy_first_find(name);

	assert_non_null(ops);
	return ops;
}

/* one interval's statistics of client i: (used, puts_total, puts_succ) */
static void stats(struct policy_client *c, uint64_t used, uint64_t total, uint64_t succ)
{
	c->used = used;
	c->puts_total = total;
	c->puts_succ = succ;
}

static void expect_targets(const struct policy_client *c, unsigned n, const uint64_t *want)
{
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(c[i].target, want[i]);
}

#define STEP(ops, p, c, total, res, ...)                                               \
	do {                                                                           \
		const uint64_t want_[] = { __VA_ARGS__ };                              \
		(ops)->step(p, c, N(c), total, res);                                   \
		expect_targets(c, N(c), want_);                                        \
	} while (0)
#define JOIN(ops, p, c, total, res, ...)                                               \
	do {                                                                           \
		const uint64_t want_[] = { __VA_ARGS__ };                              \
		(ops)->join(p, c, N(c), total, res);                                   \
		expect_targets(c, N(c), want_);                                        \
	} while (0)

static void test_find(void **state)
{
	const char *f[] = { "greedy", "static-alloc", "reconf-static", "smart-alloc", "tlp" };

	for (unsigned i = 0; i < N(f); i++)
		assert_string_equal(first(f[i])->name, f[i]);
	assert_null(policy_first_find("ttm"));
	assert_null(policy_first_find(NULL));
	assert_non_null(policy_second_find("greedy-remote"));
	assert_non_null(policy_second_find("tlp"));
	assert_null(policy_second_find("greedy"));
}

static void test_greedy(void **state)
{
	const struct policy_first_ops *g = first("greedy");
	struct policy_params p = { 0 };
	struct policy_client c[] = { { .id = 1 }, { .id = 2, .target = 500, .fixed = true },
				     { .id = 3, .target = 77 } };
	struct policy_first_result res;

	JOIN(g, &p, c, 1000, &res, NT, 500, NT); /* fixed client untouched */
	assert_true(res.changed);
	assert_int_equal(res.grant_any, 0);
	stats(&c[0], 5000, 10, 10);
	STEP(g, &p, c, 1000, &res, NT, 500, NT);
	assert_false(res.changed);
}

/* Alg. 2: target = (total - fixed) / n, floor; step only moves when total moved */
static void test_static(void **state)
{
	const struct policy_first_ops *s = first("static-alloc");
	struct policy_params p = { 0 };
	struct policy_client c[] = { { .id = 1 }, { .id = 2, .target = 1000, .fixed = true },
				     { .id = 3 } };
	struct policy_first_result res;

	JOIN(s, &p, c, 10000, &res, 4500, 1000, 4500); /* (10000 - 1000) / 2 */
	assert_true(res.changed);
	stats(&c[0], 4500, 100, 20); /* statistics do not matter */
	STEP(s, &p, c, 10000, &res, 4500, 1000, 4500);
	assert_false(res.changed);
	STEP(s, &p, c, 12001, &res, 5500, 1000, 5500); /* 11001 / 2 = 5500.5 -> 5500 */
	assert_true(res.changed);

	struct policy_client d[] = { { .id = 1 }, { .id = 2 }, { .id = 3 } };

	JOIN(s, &p, d, 10000, &res, 3333, 3333, 3333); /* one page left unshared */
	JOIN(s, &p, d, 0, &res, 0, 0, 0);
}

/* Alg. 3 (sticky reading): an equal share for each client that has failed a put
 * (and keeps holding a share or pages); 0 for the others. */
static void test_reconf(void **state)
{
	const struct policy_first_ops *r = first("reconf-static");
	struct policy_params p = { 0 };
	struct policy_client c[] = { { .id = 1 }, { .id = 2 }, { .id = 3 },
				     { .id = 4, .target = 1000, .fixed = true } };
	struct policy_first_result res;

	/* zero active clients: nobody gets anything yet */
	JOIN(r, &p, c, 10000, &res, 0, 0, 0, 1000);
	assert_false(res.changed);
	STEP(r, &p, c, 10000, &res, 0, 0, 0, 1000);
	assert_false(res.changed);

	stats(&c[0], 0, 10, 0); /* client 1 failed 10 puts: 9000 / 1 */
	STEP(r, &p, c, 10000, &res, 9000, 0, 0, 1000);
	assert_true(res.changed);

	stats(&c[0], 3000, 50, 50); /* 1 stays active (holds a share), 2 fails one */
	stats(&c[1], 0, 1, 0);
	STEP(r, &p, c, 10000, &res, 4500, 4500, 0, 1000);
	assert_true(res.changed);

	stats(&c[0], 3000, 0, 0); /* quiet interval: shares stay */
	stats(&c[1], 10, 0, 0);
	STEP(r, &p, c, 10000, &res, 4500, 4500, 0, 1000);
	assert_false(res.changed);

	stats(&c[2], 0, 3, 1); /* 3 joins the active set: 9000 / 3 */
	STEP(r, &p, c, 10000, &res, 3000, 3000, 3000, 1000);
}

/* Alg. 4 with P = 2 %, threshold = 100 pages, a fixed client of 1000 and total 11000:
 * avail = 10000, so a failing client grows by 2 % x 10000 = 200. */
static void test_smart(void **state)
{
	const struct policy_first_ops *s = first("smart-alloc");
	struct policy_params p = { .p_percent = 2.0, .threshold = 100 };
	struct policy_client c[] = { { .id = 1, .target = 3000 }, { .id = 2, .target = 3000 },
				     { .id = 3, .target = 3000 },
				     { .id = 4, .target = 1000, .fixed = true } };
	struct policy_first_result res;

	stats(&c[0], 3000, 10, 7);   /* 3 failed: 3000 + 200 */
	stats(&c[1], 1000, 5, 5);    /* 3000 - 1000 > 100: 98 % of 3000 = 2940 */
	stats(&c[2], 2950, 5, 5);    /* 3000 - 2950 = 50 <= 100: unchanged */
	STEP(s, &p, c, 11000, &res, 3200, 2940, 3000, 1000); /* sum 9140 <= 10000 */
	assert_true(res.changed);
	assert_int_equal(res.grant_any, 0);

	stats(&c[0], 3200, 10, 7);   /* all fail: 3400, 3140, 3200 (sum 9740) */
	stats(&c[1], 2940, 1, 0);
	stats(&c[2], 3000, 9, 8);
	STEP(s, &p, c, 11000, &res, 3400, 3140, 3200, 1000);

	/* all fail again: 3600 + 3340 + 3400 = 10340 > 10000, Eq. 2.2 rescale (floor):
	 * 3600 * 10000 / 10340 = 3481.6, 3340 * .. = 3230.1, 3400 * .. = 3288.2 */
	STEP(s, &p, c, 11000, &res, 3481, 3230, 3288, 1000);
	assert_int_equal(res.grant_any, 0); /* only TLP asks */

	/* quiet interval, every target within threshold of its use: nothing moves */
	stats(&c[0], 3481, 4, 4);
	stats(&c[1], 3200, 0, 0);
	stats(&c[2], 3288, 0, 0);
	STEP(s, &p, c, 11000, &res, 3481, 3230, 3288, 1000);
	assert_false(res.changed);

	/* P = 0.75 %: 3481 + 75 = 3556; floor(99.25 % x 3230 = 3205.8) = 3205; 3288;
	 * sum 10049: x 10000 / 10049 -> 3538.7, 3189.4, 3272.0 (3271.96) */
	p.p_percent = 0.75;
	stats(&c[0], 3481, 1, 0);
	stats(&c[1], 100, 0, 0);
	STEP(s, &p, c, 11000, &res, 3538, 3189, 3271, 1000);
}

/* join: a new client (target 0) gets the equal share, then Eq. 2.2 */
static void test_smart_join(void **state)
{
	const struct policy_first_ops *s = first("smart-alloc");
	struct policy_params p = { .p_percent = 2.0, .threshold = 100 };
	struct policy_client c[] = { { .id = 1, .target = 3481 }, { .id = 2, .target = 3230 },
				     { .id = 3, .target = 3288 }, { .id = 5 } };
	struct policy_first_result res;

	/* share 10000 / 4 = 2500; sum 12499: x 10000 / 12499 -> 2785, 2584, 2630, 2000 */
	JOIN(s, &p, c, 10000, &res, 2785, 2584, 2630, 2000);
	assert_true(res.changed);
	assert_int_equal(res.grant_any, 0);

	struct policy_client d[] = { { .id = 1 }, { .id = 2 }, { .id = 3 } };

	JOIN(s, &p, d, 10000, &res, 3333, 3333, 3333); /* all new: equal shares */
	/* switched from greedy: an unlimited target restarts at the equal share */
	p.threshold = 10000; /* the others keep theirs */
	d[1].target = NT;
	STEP(s, &p, d, 10000, &res, 3333, 3333, 3333);
	assert_true(res.changed);
}

/* Alg. 8: smart-alloc on rates; over-commit asks Grant-Any(sum - total), Eq. 6.2 */
static void test_tlp_first(void **state)
{
	const struct policy_first_ops *t = first("tlp");
	struct policy_params p = { .p_percent = 2.0, .threshold = 100 };
	struct policy_client c[] = { { .id = 1, .target = 6000 }, { .id = 2, .target = 4000 } };
	struct policy_first_result res;

	/* 1 fails: 6000 + 200 = 6200; 2 within threshold: 4000; sum 10200 > 10000:
	 * Grant-Any(200); 6200 * 10000 / 10200 = 6078.4, 4000 * .. = 3921.6 */
	stats(&c[0], 6000, 100, 60);
	stats(&c[1], 3950, 20, 20);
	STEP(t, &p, c, 10000, &res, 6078, 3921);
	assert_int_equal(res.grant_any, 200);
	assert_true(res.changed);

	/* 200 pages were granted: total 10200, 2 % of it = 204; 6078 + 204 = 6282;
	 * 3921 - 3900 <= 100 keeps 3921; sum 10203: Grant-Any(3);
	 * 6282 * 10200 / 10203 = 6280.2, 3921 * .. = 3919.8 */
	stats(&c[1], 3900, 20, 20);
	STEP(t, &p, c, 10200, &res, 6280, 3919);
	assert_int_equal(res.grant_any, 3);

	/* no pressure: 1 quiet and within threshold, 2 too; no request */
	stats(&c[0], 6200, 0, 0);
	STEP(t, &p, c, 10200, &res, 6280, 3919);
	assert_int_equal(res.grant_any, 0);
	assert_false(res.changed);

	/* the node lost a slab (10200 -> 8000): rescale and ask for the difference:
	 * sum 10199 - 8000 = 2199; 6280 * 8000 / 10199 = 4925.9, 3919 * .. = 3074.0 */
	STEP(t, &p, c, 8000, &res, 4925, 3074);
	assert_int_equal(res.grant_any, 2199);

	/* join never asks */
	struct policy_client d[] = { { .id = 1, .target = 9000 }, { .id = 2 } };

	/* share 5000; 9000 + 5000 = 14000: x 10000 / 14000 -> 6428.6, 3571.4 */
	JOIN(t, &p, d, 10000, &res, 6428, 3571);
	assert_int_equal(res.grant_any, 0);
}

/* no overflow with huge numbers: P = 50 %, total 2^63, two clients at 2^63 failing:
 * each proposes 2^63 + 2^62; the excess 2^64 saturates; each scales to 2^62 */
static void test_overflow(void **state)
{
	const struct policy_first_ops *t = first("tlp");
	struct policy_params p = { .p_percent = 50.0 };
	const uint64_t h = 1ull << 63;
	struct policy_client c[] = { { .id = 1, .target = h }, { .id = 2, .target = h } };
	struct policy_first_result res;

	stats(&c[0], h, 2, 1);
	stats(&c[1], h, 2, 1);
	STEP(t, &p, c, h, &res, h / 2, h / 2);
	assert_true(res.grant_any == UINT64_MAX);
}

static void test_rescale(void **state)
{
	struct policy_client c[] = { { .target = 5000, .fixed = true }, { .target = 3000 },
				     { .target = 1000 }, { .target = NT } };

	policy_rescale(c, N(c), 4000); /* sum 4000: nothing to do */
	expect_targets(c, N(c), (const uint64_t[]){ 5000, 3000, 1000, NT });
	policy_rescale(c, N(c), 2000); /* x 2000 / 4000 */
	expect_targets(c, N(c), (const uint64_t[]){ 5000, 1500, 500, NT });
	policy_rescale(c, N(c), 3);    /* 1500 * 3 / 2000 = 2.25, 500 * 3 / 2000 = 0.75 */
	expect_targets(c, N(c), (const uint64_t[]){ 5000, 2, 0, NT });
}

/* ------------------------------------------------------------ second level */

static unsigned place(const char *name, const struct policy_params *p, uint64_t pages,
		      struct policy_forward *out, unsigned max)
{
	/* donors given out of order; sorted: 1 (5000), 2 (3000), 3 (1500), 4 (800) */
	struct policy_donor d[] = { { 3, 1500 }, { 4, 800 }, { 1, 5000 }, { 2, 3000 } };

	return policy_second_find(name)->place(p, d, N(d), pages, out, max);
}

static void expect_fwd(const struct policy_forward *f, unsigned n, unsigned want_n, ...)
{
	va_list ap;

	assert_int_equal(n, want_n);
	va_start(ap, want_n);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(f[i].donor, va_arg(ap, unsigned));
		assert_int_equal(f[i].pages, va_arg(ap, unsigned));
	}
	va_end(ap);
}

/* Alg. 9 with R = 1000 */
static void test_tlp_second(void **state)
{
	struct policy_params p = { .reserve = 1000 };
	struct policy_forward f[8];
	unsigned n;

	n = place("tlp", &p, 3000, f, 8); /* 5000 - 3000 = 2000 > R: all from 1 */
	expect_fwd(f, n, 1, 1, 3000);
	/* 5000 - 4500 = 500 <= R, 5000 >= R: 1 gives 4000; rest 500: 3000 - 500 > R */
	n = place("tlp", &p, 4500, f, 8);
	expect_fwd(f, n, 2, 1, 4000, 2, 500);
	/* partial: 1 gives 4000, 2 gives 2000, 3 gives 500, 4 (800 < R) nothing;
	 * 3500 of 10000 stay unsatisfied */
	n = place("tlp", &p, 10000, f, 8);
	expect_fwd(f, n, 3, 1, 4000, 2, 2000, 3, 500);
	n = place("tlp", &p, 10000, f, 2); /* at most 2 forwards */
	expect_fwd(f, n, 2, 1, 4000, 2, 2000);
	/* free - n == R: not "> R", but free >= R gives free - R = n: satisfied */
	p.reserve = 2000;
	n = place("tlp", &p, 3000, f, 8);
	expect_fwd(f, n, 1, 1, 3000);
	/* none: every donor at or below R (5000 - R = 0 is not forwarded) */
	p.reserve = 5000;
	n = place("tlp", &p, 100, f, 8);
	expect_fwd(f, n, 0);
	n = place("tlp", &p, 0, f, 8);
	expect_fwd(f, n, 0);
}

/* greedy-remote: most free first, each min(free, rest); 0 pages = grant_pages */
static void test_greedy_remote(void **state)
{
	struct policy_params p = { .grant_pages = 1000, .reserve = 4000 /* ignored */ };
	struct policy_forward f[8];
	unsigned n;

	n = place("greedy-remote", &p, 0, f, 8);
	expect_fwd(f, n, 1, 1, 1000);
	n = place("greedy-remote", &p, 9000, f, 8);
	expect_fwd(f, n, 3, 1, 5000, 2, 3000, 3, 1000);
	n = place("greedy-remote", &p, 20000, f, 8); /* partial: 10300 */
	expect_fwd(f, n, 4, 1, 5000, 2, 3000, 3, 1500, 4, 800);

	struct policy_donor tie[] = { { 9, 100 }, { 2, 100 }, { 5, 0 } };

	n = policy_second_find("greedy-remote")->place(&p, tie, N(tie), 150, f, 8);
	expect_fwd(f, n, 2, 2, 100, 9, 50); /* equal free: lower id first */
	n = policy_second_find("greedy-remote")->place(&p, tie, 0, 150, f, 8);
	expect_fwd(f, n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_find),        cmocka_unit_test(test_greedy),
		cmocka_unit_test(test_static),      cmocka_unit_test(test_reconf),
		cmocka_unit_test(test_smart),       cmocka_unit_test(test_smart_join),
		cmocka_unit_test(test_tlp_first),   cmocka_unit_test(test_overflow),
		cmocka_unit_test(test_rescale),     cmocka_unit_test(test_tlp_second),
		cmocka_unit_test(test_greedy_remote),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
