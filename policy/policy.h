/* policy.h - memory-capacity policies, pure functions of the statistics they are
 * given (no I/O, no clocks), so that unit tests can step them through scripted
 * intervals. First level: per-client targets inside one borrower (thesis Alg. 2, 3,
 * 4, 8). Second level: which donors serve a Grant-Any in the master (Alg. 9).
 */
#ifndef RTMEM_POLICY_H
#define RTMEM_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#define POLICY_NO_TARGET UINT64_MAX

struct policy_params {
	double p_percent;     /* P of smart-alloc / TLP, percent (e.g. 2.0) */
	uint64_t threshold;   /* smart-alloc: shrink when target - used > threshold (pages) */
	uint64_t reserve;     /* TLP second level: pages a donor keeps back (R) */
	uint64_t grant_pages; /* greedy-remote: fixed request size (pages) */
};

/* One client as the first level sees it. The caller fills every field but
 * target (in: current target, out: new target). */
struct policy_client {
	uint32_t id;
	uint64_t used;        /* pages held now */
	uint64_t target;      /* in/out; POLICY_NO_TARGET = unlimited */
	uint64_t puts_total;  /* puts in the last interval */
	uint64_t puts_succ;   /* successful puts in the last interval */
	bool fixed;           /* target set by the operator: the policy leaves it alone and
			       * its target is taken out of total before sharing */
};

struct policy_first_result {
	uint64_t grant_any;   /* TLP: pages to ask the master for (0 = none) */
	bool changed;         /* some target changed (targets are only re-sent then) */
};

/* First-level policy. */
struct policy_first_ops {
	const char *name;
	/* join - the client set changed (clients[] is the new set, new clients come in
	 * with target 0 and must leave with their initial target). @total is the pages
	 * the node owns now. */
	void (*join)(const struct policy_params *p, struct policy_client *c, unsigned n,
		     uint64_t total, struct policy_first_result *res);
	/* step - one statistics interval passed: recompute targets. */
	void (*step)(const struct policy_params *p, struct policy_client *c, unsigned n,
		     uint64_t total, struct policy_first_result *res);
};

/* policy_first_find - "greedy", "static-alloc", "reconf-static", "smart-alloc",
 * "tlp"; NULL if unknown. */
const struct policy_first_ops *policy_first_find(const char *name);

/* Eq. 2.2 / 6.2: if the sum of the non-fixed targets exceeds @total, scale each by
 * total/sum (integer arithmetic, rounding down). Exposed for tests. */
void policy_rescale(struct policy_client *c, unsigned n, uint64_t total);

/* Second level (master). */
struct policy_donor {
	uint32_t id;
	uint64_t free_pages;  /* unlent pages (whole slabs) */
};

struct policy_forward {
	uint32_t donor;
	uint64_t pages;
};

struct policy_second_ops {
	const char *name;
	/* place - decide which donors serve a request of @pages. Fills at most @max
	 * forwards and returns how many; the request may stay (partly) unsatisfied.
	 * @d may be reordered. */
	unsigned (*place)(const struct policy_params *p, struct policy_donor *d, unsigned n,
			  uint64_t pages, struct policy_forward *out, unsigned max);
};

/* policy_second_find - "greedy-remote", "tlp"; NULL if unknown. */
const struct policy_second_ops *policy_second_find(const char *name);

#endif
