/* verbs-book.c - bookkeeping of the verbs back end that needs no device: slots,
 * completions, staging pages, work-request chains, status mapping (verbs-book.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "rdma/verbs-book.h"

int vbook_init(struct vbook *b, unsigned depth, unsigned stage_pages)
{
	int r;

	memset(b, 0, sizeof(*b));
	if (!depth || !stage_pages)
		return -EINVAL;
	r = rslots_init(&b->rs, depth);
	if (r)
		return r;
	b->npages = stage_pages;
	b->used = calloc((stage_pages + 63) / 64, sizeof(uint64_t));
	if (posix_memalign((void **)&b->arena, 4096, (size_t)stage_pages * 4096u))
		b->arena = NULL;
	if (!b->used || !b->arena) {
		vbook_fini(b);
		return -ENOMEM;
	}
	b->pages_free = stage_pages;
	return 0;
}

void vbook_fini(struct vbook *b)
{
	rslots_fini(&b->rs);
	free(b->used);
	free(b->arena);
	memset(b, 0, sizeof(*b));
}

static bool page_used(const struct vbook *b, unsigned i)
{
	return b->used[i / 64] >> (i % 64) & 1;
}

static void pages_mark(struct vbook *b, unsigned first, unsigned n, bool used)
{
	for (unsigned i = first; i < first + n; i++) {
		if (used)
			b->used[i / 64] |= 1ull << (i % 64);
		else
			b->used[i / 64] &= ~(1ull << (i % 64));
	}
}

int vbook_pages_alloc(struct vbook *b, unsigned n)
{
	unsigned start, run = 0, tried = 0, i;

	if (!n || n > b->pages_free)
		return -EAGAIN;
	/* Scan at most npages + n positions from the cursor; a run may not wrap. */
	i = b->cursor % b->npages;
	start = i;
	while (tried++ < b->npages + n) {
		if (i == b->npages) {
			i = 0;
			run = 0;
			start = 0;
		}
		if (page_used(b, i)) {
			run = 0;
			start = i + 1;
		} else if (++run == n) {
			pages_mark(b, start, n, true);
			b->pages_free -= n;
			b->cursor = start + n;
			return (int)start;
		}
		i++;
	}
	return -EAGAIN;
}

void vbook_pages_free(struct vbook *b, unsigned first, unsigned n)
{
	pages_mark(b, first, n, false);
	b->pages_free += n;
}

int vbook_start(struct vbook *b, const struct rdma_req *r, void *conn)
{
	int first, idx;

	if (!b->rs.nfree || rslots_full(&b->rs))
		return -EAGAIN;
	first = vbook_pages_alloc(b, r->len / RTM_PAGE_SIZE);
	if (first < 0)
		return first;
	idx = rslots_take(&b->rs, r, conn);
	b->rs.slot[idx].aux = (uint32_t)first; /* cannot fail: room checked above */
	return idx;
}

void vbook_finish(struct vbook *b, struct rslot *s, int status)
{
	vbook_pages_free(b, s->aux, s->len / RTM_PAGE_SIZE);
	rslots_finish(&b->rs, s, status);
}

unsigned vbook_fail_conn(struct vbook *b, void *conn, int status)
{
	for (unsigned i = 0; i < b->rs.depth; i++)
		if (b->rs.slot[i].conn == conn)
			vbook_pages_free(b, b->rs.slot[i].aux, b->rs.slot[i].len / RTM_PAGE_SIZE);
	return rslots_fail_conn(&b->rs, conn, status);
}

void vbook_fill_wr(struct ibv_send_wr *wr, struct ibv_sge *sge, enum rdma_op op,
		   uint64_t wr_id, void *local, uint32_t len, uint32_t lkey, uint64_t raddr,
		   uint32_t rkey)
{
	memset(wr, 0, sizeof(*wr));
	sge->addr = (uint64_t)(uintptr_t)local;
	sge->length = len;
	sge->lkey = lkey;
	wr->wr_id = wr_id;
	wr->sg_list = sge;
	wr->num_sge = 1;
	wr->opcode = op == RDMA_OP_READ ? IBV_WR_RDMA_READ : IBV_WR_RDMA_WRITE;
	wr->send_flags = IBV_SEND_SIGNALED;
	wr->wr.rdma.remote_addr = raddr;
	wr->wr.rdma.rkey = rkey;
}

unsigned vbook_chain(struct ibv_send_wr *wr, void *const *owner, unsigned n,
		     struct ibv_send_wr **heads, void **head_owner)
{
	struct ibv_send_wr *tail[RDMA_MAX_BATCH];
	unsigned nh = 0, k;

	for (unsigned i = 0; i < n; i++) {
		wr[i].next = NULL;
		for (k = 0; k < nh && head_owner[k] != owner[i]; k++)
			;
		if (k == nh) {
			heads[nh] = &wr[i];
			head_owner[nh++] = owner[i];
		} else {
			tail[k]->next = &wr[i];
		}
		tail[k] = &wr[i];
	}
	return nh;
}

int vbook_wc_errno(enum ibv_wc_status st)
{
	switch (st) {
	case IBV_WC_SUCCESS:
		return 0;
	case IBV_WC_REM_ACCESS_ERR:
	case IBV_WC_REM_INV_REQ_ERR:
		return -EACCES; /* the donor's NIC refused: key, range */
	case IBV_WC_WR_FLUSH_ERR:
	case IBV_WC_RETRY_EXC_ERR:
	case IBV_WC_RNR_RETRY_EXC_ERR:
	case IBV_WC_REM_ABORT_ERR:
	case IBV_WC_RESP_TIMEOUT_ERR:
		return -ECONNRESET;
	case IBV_WC_LOC_LEN_ERR:
	case IBV_WC_LOC_QP_OP_ERR:
	case IBV_WC_BAD_RESP_ERR:
		return -EINVAL;
	case IBV_WC_LOC_PROT_ERR: /* local faults: the borrower's, not the donor's */
	case IBV_WC_MW_BIND_ERR:
	case IBV_WC_REM_OP_ERR:
	case IBV_WC_FATAL_ERR:
	case IBV_WC_LOC_EEC_OP_ERR:
	case IBV_WC_LOC_RDD_VIOL_ERR:
	case IBV_WC_REM_INV_RD_REQ_ERR:
	case IBV_WC_INV_EECN_ERR:
	case IBV_WC_INV_EEC_STATE_ERR:
	case IBV_WC_LOC_ACCESS_ERR:
	case IBV_WC_GENERAL_ERR:
	default:
		return -EIO;
	}
}

bool vbook_wc_fatal(enum ibv_wc_status st)
{
	/* On an RC QP every completion in error moves the QP to the error state. */
	return st != IBV_WC_SUCCESS;
}

bool vb_rkeys_seen(const struct vb_rkeys *h, uint32_t rkey)
{
	for (unsigned i = 0; i < h->n; i++)
		if (h->key[i] == rkey)
			return true;
	return false;
}

void vb_rkeys_add(struct vb_rkeys *h, uint32_t rkey)
{
	h->key[h->next] = rkey;
	h->next = (h->next + 1) % VB_RKEY_HISTORY;
	if (h->n < VB_RKEY_HISTORY)
		h->n++;
}

int vb_reg_fresh(struct vb_rkeys *h, vb_reg_fn reg, vb_dereg_fn dereg, void *arg,
		 void **mr, uint32_t *rkey)
{
	void *held[VB_RKEY_TRIES];
	unsigned nheld = 0;
	int r = -EAGAIN;

	*mr = NULL;
	while (nheld < VB_RKEY_TRIES) {
		void *m;
		uint32_t k;

		r = reg(arg, &m, &k);
		if (r)
			break;
		if (!vb_rkeys_seen(h, k)) {
			vb_rkeys_add(h, k);
			*mr = m;
			*rkey = k;
			break;
		}
		held[nheld++] = m; /* keep it: releasing it could bring the same key back */
		r = -EAGAIN;
	}
	while (nheld)
		dereg(arg, held[--nheld]);
	return r;
}
