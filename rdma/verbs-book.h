/* verbs-book.h - the device-free bookkeeping of the verbs back end: request slots
 * matched by wr_id (index + generation), the in-flight bound, the ring of completions
 * not yet reaped, the page allocator of the registered staging arena, work-request
 * chain building (one chain per queue pair and post) and the mapping of ibv_wc
 * statuses to -errno. Everything here runs without an RDMA device (unit-tested by
 * tests/unit/test_verbs_book.c); rdma/verbs.c drives the hardware around it.
 */
#ifndef RTMEM_VERBS_BOOK_H
#define RTMEM_VERBS_BOOK_H

#include <infiniband/verbs.h>
#include <stdbool.h>
#include <stdint.h>

#include "rdma/rdma.h"

/* A request from post until its completion is queued. */
struct vb_slot {
	void *conn;          /* owner connection, NULL when free */
	uint64_t cookie;
	uint8_t *buf;        /* caller's buffer */
	uint32_t len;
	uint32_t gen;        /* bumped on release: a stale wr_id does not match */
	uint32_t stage;      /* first staging page */
	enum rdma_op op;
};

struct vbook {
	unsigned depth;                 /* in-flight bound */
	unsigned inflight;              /* posted, completion not yet reaped */
	struct vb_slot *slots;
	uint32_t *free_slots;
	unsigned nfree;
	struct rdma_completion *ready;  /* ring of depth completions not yet reaped */
	unsigned rhead, rcount;
	uint8_t *arena;                 /* staging memory, page aligned */
	unsigned npages;                /* arena pages */
	uint64_t *used;                 /* bitmap of arena pages */
	unsigned cursor;                /* first-fit search starts here */
	unsigned pages_free;
};

/* vbook_init - @depth slots, @stage_pages pages of staging (allocated here, page
 * aligned). 0 or -errno. vbook_fini frees (the caller deregisters first). */
int vbook_init(struct vbook *b, unsigned depth, unsigned stage_pages);
void vbook_fini(struct vbook *b);

/* vbook_check - validate a request as the ops contract says: 0 or -EINVAL. */
int vbook_check(const struct rdma_req *r);

/* vbook_start - take a slot and @r->len / 4096 contiguous staging pages for @r on
 * @conn; returns the slot index, or -EAGAIN when depth requests are in flight or the
 * arena has no such run. */
int vbook_start(struct vbook *b, const struct rdma_req *r, void *conn);
static inline uint8_t *vbook_stage(const struct vbook *b, const struct vb_slot *s)
{
	return b->arena + (uint64_t)s->stage * 4096u;
}
static inline uint64_t vbook_wr_id(const struct vbook *b, unsigned idx)
{
	return (uint64_t)b->slots[idx].gen << 32 | idx;
}
/* vbook_match - the busy slot a completion's wr_id names, or NULL (stale/unknown). */
struct vb_slot *vbook_match(struct vbook *b, uint64_t wr_id);
/* vbook_finish - queue the slot's completion with @status, free slot and staging. */
void vbook_finish(struct vbook *b, struct vb_slot *s, int status);
/* vbook_fail_conn - finish every slot of @conn with @status; returns how many. */
unsigned vbook_fail_conn(struct vbook *b, void *conn, int status);
/* vbook_pop - move up to @max queued completions to @out; returns the count. */
unsigned vbook_pop(struct vbook *b, struct rdma_completion *out, unsigned max);
/* vbook_queue_error - queue a completion for a request that never got a slot
 * (posted on a dead connection): counts as in flight until popped. -EAGAIN if the
 * bound is reached. */
int vbook_queue_error(struct vbook *b, uint64_t cookie, int status);

/* Staging allocator, exposed for tests: first fit from a rotating cursor. */
int vbook_pages_alloc(struct vbook *b, unsigned n);
void vbook_pages_free(struct vbook *b, unsigned first, unsigned n);

/* vbook_fill_wr - one RDMA READ/WRITE work request, signaled, one SGE. */
void vbook_fill_wr(struct ibv_send_wr *wr, struct ibv_sge *sge, enum rdma_op op,
		   uint64_t wr_id, void *local, uint32_t len, uint32_t lkey, uint64_t raddr,
		   uint32_t rkey);
/* vbook_chain - link @wr[0..n) into one chain per distinct @owner[i], keeping order;
 * heads[k] / head_owner[k] get the first WR of each chain. Returns the chain count. */
unsigned vbook_chain(struct ibv_send_wr *wr, void *const *owner, unsigned n,
		     struct ibv_send_wr **heads, void **head_owner);

/* vbook_wc_errno - a completion status as -errno (0 for IBV_WC_SUCCESS):
 * -EACCES remote access refused (the donor's key / range check), -ECONNRESET flushed,
 * retries exceeded or the peer gone, -EINVAL local length/operation errors, -EIO local
 * protection / bind faults and anything else. */
int vbook_wc_errno(enum ibv_wc_status st);
/* vbook_wc_fatal - whether the status means the QP is (or will be) in error. */
bool vbook_wc_fatal(enum ibv_wc_status st);

/* ---- donor side: rkeys that must not come back.
 * Verbs does not promise that a deregistered MR's rkey is never handed out again (the
 * mlx5 MR cache may reuse an mkey for a same-size MR), so a revoked slab's old rkey
 * could come back to life on its next grant. The donor remembers each slab's last
 * VB_RKEY_HISTORY rkeys and registers again while a new MR repeats one of them,
 * holding each repeat until a fresh rkey is found (releasing it first would let the
 * provider return the same mkey at once). */
#define VB_RKEY_HISTORY 8
#define VB_RKEY_TRIES 16 /* registrations per grant before giving up */

struct vb_rkeys {
	uint32_t key[VB_RKEY_HISTORY];
	unsigned n, next;
};

bool vb_rkeys_seen(const struct vb_rkeys *h, uint32_t rkey);
void vb_rkeys_add(struct vb_rkeys *h, uint32_t rkey);

/* Registrar callbacks: reg returns 0 and an opaque MR with its rkey, or -errno;
 * dereg releases an MR from reg. */
typedef int (*vb_reg_fn)(void *arg, void **mr, uint32_t *rkey);
typedef void (*vb_dereg_fn)(void *arg, void *mr);
/* vb_reg_fresh - call @reg until it yields an rkey not in @h (at most VB_RKEY_TRIES
 * times), then release the repeats with @dereg and record the new rkey in @h.
 * 0 (*@mr, *@rkey set), reg's -errno, or -EAGAIN when every try repeated a key. */
int vb_reg_fresh(struct vb_rkeys *h, vb_reg_fn reg, vb_dereg_fn dereg, void *arg,
		 void **mr, uint32_t *rkey);

#endif
