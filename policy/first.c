/* first.c - first-level policies: per-client targets inside one borrower
 * (greedy, static-alloc, reconf-static, smart-alloc, TLP first level; thesis Alg. 2,
 * 3, 4, 8 and Eq. 2.2/6.2). Pure functions; docs/policies.md gives the readings
 * chosen where the thesis is ambiguous, and the rounding.
 *
 * Every policy is a "proposal" function giving one client's new target before the
 * over-commit check; run() sums the proposals, rescales them when they exceed what
 * the node can share (and, for TLP, asks for the difference), and writes back only
 * what changed.
 */
#include <string.h>

#include "policy/policy.h"

/* P is used in integer millionths of a percent: 1 percent = PPM_PER_PERCENT. */
#define PPM_PER_PERCENT 1000000u
#define PPM_ALL (100u * PPM_PER_PERCENT)

typedef unsigned __int128 u128;

struct ctx {
	const struct policy_params *p;
	uint64_t avail;   /* total minus the fixed clients' targets */
	uint64_t share;   /* avail / non-fixed clients */
	uint64_t ashare;  /* avail / active clients (reconf-static) */
	uint64_t p_ppm;   /* P in millionths of a percent, clamped to [0, 100 %] */
	bool join;
};

typedef uint64_t (*propose_fn)(const struct ctx *x, const struct policy_client *c);

static uint64_t failed_puts(const struct policy_client *c)
{
	return c->puts_total > c->puts_succ ? c->puts_total - c->puts_succ : 0;
}

/* reconf-static: a client is active once it failed a put, and stays so while it
 * holds a share or pages (the thesis' cumul_puts_failed). */
static bool active(const struct policy_client *c)
{
	return failed_puts(c) > 0 || c->used > 0 ||
	       (c->target > 0 && c->target != POLICY_NO_TARGET);
}

/* t * num / den, rounding down, without overflow (den > 0). */
static uint64_t muldiv(uint64_t t, uint64_t num, u128 den)
{
	u128 r = (u128)t * num / den;

	return r > UINT64_MAX ? UINT64_MAX : (uint64_t)r;
}

/* a + b (both limited targets), saturating below POLICY_NO_TARGET */
static uint64_t sat_add(uint64_t a, uint64_t b)
{
	const uint64_t max = POLICY_NO_TARGET - 1;

	return a > max - b ? max : a + b;
}

static uint64_t propose_greedy(const struct ctx *x, const struct policy_client *c)
{
	return POLICY_NO_TARGET;
}

static uint64_t propose_static(const struct ctx *x, const struct policy_client *c)
{
	return x->share;
}

static uint64_t propose_reconf(const struct ctx *x, const struct policy_client *c)
{
	return active(c) ? x->ashare : 0;
}

/* Alg. 4 lines 9-21 (Alg. 8 lines 9-20 are the same on rates). On join, and for a
 * client coming from an unlimited policy, the initial target is the equal share. */
static uint64_t propose_smart(const struct ctx *x, const struct policy_client *c)
{
	uint64_t t = c->target;

	if (t == POLICY_NO_TARGET || (x->join && t == 0))
		return x->share;
	if (x->join)
		return t;
	if (failed_puts(c) > 0)
		return sat_add(t, muldiv(x->avail, x->p_ppm, PPM_ALL));
	if (t > c->used && t - c->used > x->p->threshold)
		return muldiv(t, PPM_ALL - x->p_ppm, PPM_ALL);
	return t;
}

static void run(const struct policy_params *p, struct policy_client *c, unsigned n,
		uint64_t total, struct policy_first_result *res, propose_fn fn, bool join,
		bool tlp)
{
	struct ctx x = { .p = p, .avail = total, .join = join };
	unsigned nfree = 0, nactive = 0;
	u128 sum = 0;

	res->grant_any = 0;
	res->changed = false;
	if (x.avail == POLICY_NO_TARGET) /* a limited target never reaches it */
		x.avail--;
	for (unsigned i = 0; i < n; i++) {
		if (c[i].fixed) {
			/* an unlimited fixed client is taken out as what it holds */
			uint64_t t = c[i].target == POLICY_NO_TARGET ? c[i].used : c[i].target;

			x.avail -= t < x.avail ? t : x.avail;
			continue;
		}
		nfree++;
		nactive += active(&c[i]);
	}
	if (!nfree)
		return;
	x.share = x.avail / nfree;
	x.ashare = nactive ? x.avail / nactive : 0;
	if (p->p_percent > 0)
		x.p_ppm = p->p_percent >= 100 ? PPM_ALL
					      : (uint64_t)(p->p_percent * PPM_PER_PERCENT + 0.5);

	for (unsigned i = 0; i < n; i++) {
		uint64_t t = c[i].fixed ? POLICY_NO_TARGET : fn(&x, &c[i]);

		if (t != POLICY_NO_TARGET)
			sum += t;
	}
	if (sum > x.avail && tlp && !join)
		res->grant_any = sum - x.avail > UINT64_MAX ? UINT64_MAX
							    : (uint64_t)(sum - x.avail);
	for (unsigned i = 0; i < n; i++) {
		uint64_t t;

		if (c[i].fixed)
			continue;
		t = fn(&x, &c[i]);
		if (t != POLICY_NO_TARGET && sum > x.avail)
			t = muldiv(t, x.avail, sum);
		if (t != c[i].target) {
			c[i].target = t;
			res->changed = true;
		}
	}
}

void policy_rescale(struct policy_client *c, unsigned n, uint64_t total)
{
	u128 sum = 0;

	for (unsigned i = 0; i < n; i++)
		if (!c[i].fixed && c[i].target != POLICY_NO_TARGET)
			sum += c[i].target;
	if (sum <= total)
		return;
	for (unsigned i = 0; i < n; i++)
		if (!c[i].fixed && c[i].target != POLICY_NO_TARGET)
			c[i].target = muldiv(c[i].target, total, sum);
}

#define FIRST_POLICY(ident, fn, tlp)                                                   \
	static void ident##_join(const struct policy_params *p, struct policy_client *c, \
				 unsigned n, uint64_t total,                            \
				 struct policy_first_result *res)                       \
	{                                                                              \
		run(p, c, n, total, res, fn, true, tlp);                               \
	}                                                                              \
	static void ident##_step(const struct policy_params *p, struct policy_client *c, \
				 unsigned n, uint64_t total,                            \
				 struct policy_first_result *res)                       \
	{                                                                              \
		run(p, c, n, total, res, fn, false, tlp);                              \
	}

FIRST_POLICY(greedy, propose_greedy, false)
FIRST_POLICY(static_alloc, propose_static, false)
FIRST_POLICY(reconf, propose_reconf, false)
FIRST_POLICY(smart, propose_smart, false)
FIRST_POLICY(tlp, propose_smart, true)

static const struct policy_first_ops first_policies[] = {
	{ "greedy", greedy_join, greedy_step },
	{ "static-alloc", static_alloc_join, static_alloc_step },
	{ "reconf-static", reconf_join, reconf_step },
	{ "smart-alloc", smart_join, smart_step },
	{ "tlp", tlp_join, tlp_step },
};

const struct policy_first_ops *policy_first_find(const char *name)
{
	for (size_t i = 0; name && i < sizeof(first_policies) / sizeof(first_policies[0]); i++)
		if (!strcmp(first_policies[i].name, name))
			return &first_policies[i];
	return NULL;
}
