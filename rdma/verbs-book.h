/* verbs-book.h - the device-free bookkeeping of the verbs back end: request slots
 * (slots.h, shared with TCP; wr_id = tag = generation << 32 | index) joined with the
 * page allocator of the registered staging arena, work-request
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
#include "rdma/slots.h"

struct vbook {
	struct rslots rs;               /* slots, in-flight bound, completion ring */
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

/* vbook_start - take a slot and @r->len / 4096 contiguous staging pages (slot->aux is
 * the first) for @r on @conn; returns the slot index, or -EAGAIN when depth requests
 * are in flight or the arena has no such run. */
int vbook_start(struct vbook *b, const struct rdma_req *r, void *conn);
static inline uint8_t *vbook_stage(const struct vbook *b, const struct rslot *s)
{
	return b->arena + (uint64_t)s->aux * 4096u;
}
/* vbook_finish - free the slot's staging, queue its completion with @status. */
void vbook_finish(struct vbook *b, struct rslot *s, int status);
/* vbook_fail_conn - finish every slot of @conn with @status; returns how many. */
unsigned vbook_fail_conn(struct vbook *b, void *conn, int status);
/* Matching (rslots_match / rslots_tag = wr_id), popping and queueing errors work on
 * b->rs directly. */

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
