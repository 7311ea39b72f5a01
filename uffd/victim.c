/* victim.c - the eviction policy of the uffd engine (pure logic, unit-tested).
 *
 * CLOCK with two segments, 2Q-style, fed by the only access information userspace
 * has without accessed bits:
 *  - write references: a write-protect fault sets PF_REF (second chance);
 *  - fault history: a page that faults back within `window` evictions after it was
 *    evicted (a short refault distance: it would have stayed resident in a
 *    slightly larger memory) is hot. That catches pages that are only read, which
 *    the WP faults never see.
 * The hand passes hot pages by while the hot segment holds at most hot_cap pages
 * (so at least budget - hot_cap are probationary); beyond that it demotes the hot
 * pages it passes. Probationary pages get one second chance if referenced and are
 * evicted otherwise. FIFO mode ignores all of it (for measurements). */
#include "uffd/uffd-internal.h"

void vpolicy_init(struct vpolicy *v, size_t budget, bool fifo)
{
	*v = (struct vpolicy){ .fifo = fifo, .hot_cap = budget - budget / 4,
			       .window = (uint32_t)budget };
}

int vpolicy_visit(struct vpolicy *v, uint8_t *fl)
{
	if (v->fifo)
		return VP_EVICT;
	if (*fl & PF_HOT) {
		if (v->nhot <= v->hot_cap) {
			bool rearm = (*fl & (PF_REF | PF_DIRTY)) == (PF_REF | PF_DIRTY);
			*fl &= (uint8_t)~PF_REF;
			return rearm ? VP_REARM : VP_SKIP;
		}
		*fl &= (uint8_t)~PF_HOT; /* over the cap: back to probation */
		v->nhot--;
	}
	if (*fl & PF_REF) {
		*fl &= (uint8_t)~PF_REF;
		return (*fl & PF_DIRTY) ? VP_REARM : VP_SKIP;
	}
	return VP_EVICT;
}

bool vpolicy_fault(struct vpolicy *v, uint8_t *fl, uint32_t stamp)
{
	if (v->fifo || !stamp || (*fl & PF_HOT) || (uint32_t)(v->clock - stamp) > v->window)
		return false;
	*fl |= PF_HOT;
	v->nhot++;
	return true;
}

void vpolicy_gone(struct vpolicy *v, uint8_t *fl)
{
	if (*fl & PF_HOT) {
		*fl &= (uint8_t)~PF_HOT;
		v->nhot--;
	}
}

uint32_t vpolicy_evicted(struct vpolicy *v, uint8_t *fl)
{
	vpolicy_gone(v, fl);
	if (!++v->clock)
		v->clock = 1; /* 0 means "never evicted" */
	return v->clock;
}
