/* slots.c - request slots, generations, free list, in-flight bound and completion
 * ring shared by the transport back ends (slots.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "rdma/slots.h"

int rslots_init(struct rslots *s, unsigned depth)
{
	memset(s, 0, sizeof(*s));
	if (!depth)
		return -EINVAL;
	s->depth = depth;
	s->slot = calloc(depth, sizeof(*s->slot));
	s->free_idx = calloc(depth, sizeof(*s->free_idx));
	s->ready = calloc(depth, sizeof(*s->ready));
	if (!s->slot || !s->free_idx || !s->ready) {
		rslots_fini(s);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < depth; i++)
		s->free_idx[i] = depth - 1 - i;
	s->nfree = depth;
	return 0;
}

void rslots_fini(struct rslots *s)
{
	free(s->slot);
	free(s->free_idx);
	free(s->ready);
	memset(s, 0, sizeof(*s));
}

int rslots_check(const struct rdma_req *r)
{
	if (!r->conn || !r->buf || !r->len || r->len % RTM_PAGE_SIZE || r->len > RDMA_MAX_IO)
		return -EINVAL;
	if (r->op != RDMA_OP_READ && r->op != RDMA_OP_WRITE)
		return -EINVAL;
	/* offset + len inside the slab, and the slab's end representable */
	if (r->offset > r->slab_length || r->len > r->slab_length - r->offset)
		return -EINVAL;
	if (r->slab_offset + r->slab_length < r->slab_offset)
		return -EINVAL;
	return 0;
}

int rslots_take(struct rslots *s, const struct rdma_req *r, void *conn)
{
	struct rslot *sl;
	uint32_t idx;

	if (!s->nfree || rslots_full(s))
		return -EAGAIN;
	idx = s->free_idx[--s->nfree];
	sl = &s->slot[idx];
	sl->conn = conn;
	sl->cookie = r->cookie;
	sl->buf = r->buf;
	sl->len = r->len;
	sl->op = r->op;
	sl->aux = 0;
	s->inflight++;
	return (int)idx;
}

struct rslot *rslots_match(struct rslots *s, uint64_t tag)
{
	uint32_t idx = (uint32_t)tag;
	struct rslot *sl;

	if (idx >= s->depth)
		return NULL;
	sl = &s->slot[idx];
	if (!sl->conn || sl->gen != (uint32_t)(tag >> 32))
		return NULL;
	return sl;
}

static void push(struct rslots *s, uint64_t cookie, int status)
{
	struct rdma_completion *c = &s->ready[(s->rhead + s->rcount) % s->depth];

	c->cookie = cookie;
	c->status = status;
	s->rcount++;
}

void rslots_finish(struct rslots *s, struct rslot *sl, int status)
{
	push(s, sl->cookie, status);
	sl->conn = NULL;
	sl->gen++;
	s->free_idx[s->nfree++] = (uint32_t)(sl - s->slot);
}

unsigned rslots_fail_conn(struct rslots *s, void *conn, int status)
{
	unsigned n = 0;

	for (unsigned i = 0; i < s->depth; i++)
		if (s->slot[i].conn == conn) {
			rslots_finish(s, &s->slot[i], status);
			n++;
		}
	return n;
}

int rslots_queue_error(struct rslots *s, uint64_t cookie, int status)
{
	if (rslots_full(s))
		return -EAGAIN;
	push(s, cookie, status);
	s->inflight++;
	return 0;
}

unsigned rslots_pop(struct rslots *s, struct rdma_completion *out, unsigned max)
{
	unsigned n = 0;

	while (n < max && s->rcount) {
		out[n++] = s->ready[s->rhead];
		s->rhead = (s->rhead + 1) % s->depth;
		s->rcount--;
		s->inflight--;
	}
	return n;
}
