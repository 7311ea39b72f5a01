/* second.c - second-level policies: which donors serve a Grant-Any in the master
 * (greedy-remote, TLP second level = thesis Alg. 9). Pure functions; see
 * docs/policies.md.
 */
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

/* most free pages first, then lowest id (deterministic) */
static int by_free_desc(const void *a, const void *b)
{
	const struct policy_donor *x = a, *y = b;

	if (x->free_pages != y->free_pages)
		return x->free_pages < y->free_pages ? 1 : -1;
	return (x->id > y->id) - (x->id < y->id);
}

/* What donor @d gives towards @want under reserve @r (0 = nothing). The greedy
 * policy is the same walk with r = 0. Alg. 9 lines 8-17: the whole request if the
 * donor keeps more than R afterwards, else what it has above R. */
static uint64_t give(const struct policy_donor *d, uint64_t want, uint64_t r, bool tlp)
{
	if (!tlp)
		return d->free_pages < want ? d->free_pages : want;
	if (d->free_pages > want && d->free_pages - want > r)
		return want;
	if (d->free_pages >= r)
		return d->free_pages - r; /* <= want here */
	return 0;
}

static unsigned place(struct policy_donor *d, unsigned n, uint64_t pages, uint64_t r,
		      bool tlp, struct policy_forward *out, unsigned max)
{
	unsigned k = 0;

	qsort(d, n, sizeof(*d), by_free_desc);
	for (unsigned i = 0; i < n && pages > 0 && k < max; i++) {
		uint64_t g = give(&d[i], pages, r, tlp);

		if (!g)
			continue;
		out[k++] = (struct policy_forward){ .donor = d[i].id, .pages = g };
		pages -= g;
	}
	return k;
}

static unsigned greedy_place(const struct policy_params *p, struct policy_donor *d,
			     unsigned n, uint64_t pages, struct policy_forward *out,
			     unsigned max)
{
	return place(d, n, pages ? pages : p->grant_pages, 0, false, out, max);
}

static unsigned tlp_place(const struct policy_params *p, struct policy_donor *d, unsigned n,
			  uint64_t pages, struct policy_forward *out, unsigned max)
{
	return place(d, n, pages, p->reserve, true, out, max);
}

static const struct policy_second_ops second_policies[] = {
	{ "greedy-remote", greedy_place },
	{ "tlp", tlp_place },
};

const struct policy_second_ops *policy_second_find(const char *name)
{
	for (size_t i = 0; name && i < sizeof(second_policies) / sizeof(second_policies[0]); i++)
		if (!strcmp(second_policies[i].name, name))
			return &second_policies[i];
	return NULL;
}
