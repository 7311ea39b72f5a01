/* slots.h - request bookkeeping shared by the transport back ends (tcp.c, verbs.c):
 * the table of request slots with generations (a tag / wr_id = generation << 32 |
 * index, so a late reply or completion for a released slot never matches), the free
 * list, the in-flight bound, the ring of completions not yet reaped, and request
 * validation as the ops contract says. No I/O: unit-tested by
 * tests/unit/test_rdma_slots.c.
 */
#ifndef RTMEM_RDMA_SLOTS_H
#define RTMEM_RDMA_SLOTS_H

#include <stdbool.h>
#include <stdint.h>

#include "rdma/rdma.h"

/* A request from post until its completion is queued. */
struct rslot {
	void *conn;          /* owner connection, NULL when free */
	uint64_t cookie;
	uint8_t *buf;        /* caller's buffer */
	uint32_t len;
	uint32_t gen;        /* bumped on release: a stale tag does not match */
	uint32_t aux;        /* the back end's (verbs: first staging page) */
	enum rdma_op op;
};

struct rslots {
	unsigned depth;                 /* in-flight bound */
	unsigned inflight;              /* posted, completion not yet reaped */
	struct rslot *slot;
	uint32_t *free_idx;
	unsigned nfree;
	struct rdma_completion *ready;  /* ring of depth completions not yet reaped */
	unsigned rhead, rcount;
};

/* rslots_init - @depth slots, all free. 0 or -EINVAL / -ENOMEM. */
int rslots_init(struct rslots *s, unsigned depth);
void rslots_fini(struct rslots *s);

/* rslots_check - validate a request's fields (not which transport its connection
 * belongs to): 0 or -EINVAL. */
int rslots_check(const struct rdma_req *r);

static inline bool rslots_full(const struct rslots *s)
{
	return s->inflight >= s->depth;
}
/* rslots_take - a slot for @r on @conn; its index, or -EAGAIN at the bound. */
int rslots_take(struct rslots *s, const struct rdma_req *r, void *conn);
static inline uint64_t rslots_tag(const struct rslots *s, unsigned idx)
{
	return (uint64_t)s->slot[idx].gen << 32 | idx;
}
/* rslots_match - the busy slot @tag names, or NULL (stale or unknown). */
struct rslot *rslots_match(struct rslots *s, uint64_t tag);
/* rslots_finish - queue the slot's completion with @status and free the slot. */
void rslots_finish(struct rslots *s, struct rslot *sl, int status);
/* rslots_fail_conn - finish every slot of @conn with @status; returns how many. */
unsigned rslots_fail_conn(struct rslots *s, void *conn, int status);
/* rslots_queue_error - queue a completion for a request that never got a slot
 * (posted on a dead connection); it counts as in flight until popped. -EAGAIN at the
 * bound. */
int rslots_queue_error(struct rslots *s, uint64_t cookie, int status);
/* rslots_pop - move up to @max queued completions to @out; returns the count. */
unsigned rslots_pop(struct rslots *s, struct rdma_completion *out, unsigned max);

#endif
