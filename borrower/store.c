/* store.c - the borrower's page store: tmem operations of local clients (pools,
 * put/get/flush with enforcement at put, Algorithm 1/7), the data I/O to slabs
 * through the transport, and moving pages off a donor that leaves or fails.
 *
 * Data I/O goes through one queue of transport requests (struct store_xq) shared
 * by synchronous batches (borrower_tmem, migration: the caller polls the transport
 * until its own requests are done) and asynchronous ones (borrower_tmem_async, the
 * NBD exports: requests are posted from an event-loop tick, together with those of
 * other batches, and completions are reported from the tick). The rdma_ops
 * contract has no fd to wait on, so while anything is in flight the tick runs
 * after every round of fd events and waits up to XQ_WAIT_MS for a completion.
 * Migration first drains the queue (no request in flight on the old locations);
 * a donor's failure fails its queued requests, the transport those in flight.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "borrower/borrower-core.h"

#define LOG_AREA "store"

/* ------------------------------------------------ slabs */

int store_slab_alloc(struct borrower *b)
{
	for (unsigned i = 0; i < B_MAX_SLABS; i++) {
		if (!b->slabs[i].used) {
			memset(&b->slabs[i], 0, sizeof(b->slabs[i]));
			b->slabs[i].used = true;
			return (int)i + 1;
		}
	}
	return -ENOSPC;
}

void store_slab_release(struct borrower *b, uint32_t handle)
{
	struct bslab *s = &b->slabs[handle - 1];

	if (s->local)
		munmap(s->local, s->ref.length);
	if (s->donor)
		s->donor->slabs--;
	memset(s, 0, sizeof(*s));
}

static struct bslab *slab_of(struct borrower *b, const struct buddy_loc *loc)
{
	return &b->slabs[loc->slab - 1];
}

/* ------------------------------------------------ data I/O */

struct bio {
	struct buddy_loc loc;
	enum rdma_op op;
	void *buf;
	int status;                /* -EINPROGRESS while its transport request is out */
};

/* A set of page I/Os and the transport requests that carry them: one synchronous
 * call (bio_run) or one asynchronous batch (struct abatch). */
struct bioset {
	struct bio *v;
	struct rdma_req *req;      /* requests built from v (adjacent pages coalesced) */
	uint32_t *first, *cnt;     /* request r carries v[first[r] .. first[r] + cnt[r]) */
	unsigned nreq, posted, left; /* built, posted, not yet completed */
	uint64_t bytes;            /* posted and not completed */
	struct abatch *ab;         /* NULL: a synchronous caller polls until left == 0 */
	struct bioset *next;       /* in xq->sets while some request is not posted */
};

/* An asynchronous tmem batch (borrower_tmem_async). */
struct abatch {
	struct bclient *c;
	struct pending *pd;
	struct bioset set;
	uint32_t *comp;            /* completed requests not yet reported */
	unsigned ncomp;
	bool on_done;              /* in xq->done */
	store_done_fn *done;
	void *arg;
	struct abatch *next;
};

/* The transport queue shared by synchronous and asynchronous callers: requests wait
 * in their set until posted (sets in order; an asynchronous set has at most
 * XQ_WINDOW bytes in flight, so a large command does not hold up the small ones
 * behind it); the cookie of a posted request is a slot naming set and request. */
struct xslot {
	struct bioset *set;
	uint32_t r;
};

struct store_xq {
	struct xslot *slot;
	uint32_t *free;
	unsigned cap, nfree;
	unsigned inflight;         /* posted, not completed */
	unsigned batches;          /* asynchronous batches not fully reported */
	struct bioset *sets;       /* sets with requests to post */
	struct abatch *done;       /* batches with completions to report, in order */
	struct abatch **done_tail;
	int tick;                  /* evloop timer driving the transport, 0 = none */
};

#define XQ_WINDOW (4u << 20)   /* bytes in flight per asynchronous batch */
#define XQ_CHUNK 64u           /* requests per post */
#define XQ_WAIT_MS 1           /* tick: wait this long for a completion */

static int slot_get(struct store_xq *x, struct bioset *s, uint32_t r, uint64_t *cookie)
{
	if (!x->nfree) {
		unsigned cap = x->cap ? x->cap * 2 : 1024;
		struct xslot *ns = realloc(x->slot, cap * sizeof(*ns));
		uint32_t *nf;

		if (!ns)
			return -ENOMEM;
		x->slot = ns;
		nf = realloc(x->free, cap * sizeof(*nf));
		if (!nf)
			return -ENOMEM;
		x->free = nf;
		for (unsigned i = cap; i > x->cap; i--)
			x->free[x->nfree++] = i - 1;
		x->cap = cap;
	}
	*cookie = x->free[--x->nfree];
	x->slot[*cookie] = (struct xslot){ .set = s, .r = r };
	return 0;
}

static void xq_arm(struct borrower *b);

/* req_done - request @r of @s completed with @status. */
static void req_done(struct borrower *b, struct bioset *s, uint32_t r, int status)
{
	struct bio *v = &s->v[s->first[r]];

	for (unsigned k = 0; k < s->cnt[r]; k++)
		v[k].status = status;
	if (status)
		log_warn("%s pages %u+%u of slab %u (donor %u): %s",
			 v->op == RDMA_OP_READ ? "read" : "write", v->loc.page, s->cnt[r],
			 v->loc.slab, v->loc.zone, strerror(-status));
	s->left--;
	if (s->ab) {
		s->ab->comp[s->ab->ncomp++] = r;
		if (!s->ab->on_done) {
			struct store_xq *x = b->xq;

			s->ab->on_done = true;
			s->ab->next = NULL;
			if (!x->done)
				x->done_tail = &x->done;
			*x->done_tail = s->ab;
			x->done_tail = &s->ab->next;
			xq_arm(b);
		}
	}
}

/* bio_plan - build the requests of @s for its @n pages: local slabs by memcpy at
 * once, lost or unconnected slabs fail at once, remote pages as requests in which
 * consecutive pages adjacent both in a slab and in memory (a 64 KiB NBD request, a
 * prefetch run) are one request. @s's arrays hold @n entries. */
static void bio_plan(struct borrower *b, struct bioset *s, unsigned n)
{
	struct bio *v = s->v;

	s->nreq = s->posted = s->left = 0;
	s->bytes = 0;
	for (unsigned i = 0; i < n; i++) {
		struct bslab *sl = slab_of(b, &v[i].loc);
		uint64_t off = (uint64_t)v[i].loc.page * RTM_PAGE_SIZE;
		struct rdma_req *last = s->nreq ? &s->req[s->nreq - 1] : NULL;

		v[i].status = 0;
		if (sl->lost || (!sl->local && !sl->donor->conn)) {
			v[i].status = -EIO;
		} else if (sl->local) {
			if (v[i].op == RDMA_OP_READ)
				memcpy(v[i].buf, (char *)sl->local + off, RTM_PAGE_SIZE);
			else
				memcpy((char *)sl->local + off, v[i].buf, RTM_PAGE_SIZE);
		} else if (last && s->first[s->nreq - 1] + s->cnt[s->nreq - 1] == i &&
			   last->op == v[i].op && last->conn == sl->donor->conn &&
			   last->key == sl->ref.key && last->slab_offset == sl->ref.offset &&
			   last->offset + last->len == off &&
			   (char *)last->buf + last->len == (char *)v[i].buf &&
			   last->len + RTM_PAGE_SIZE <= RDMA_MAX_IO) {
			/* next page of the same slab and buffer: one larger request */
			last->len += RTM_PAGE_SIZE;
			s->cnt[s->nreq - 1]++;
			v[i].status = -EINPROGRESS;
		} else {
			s->req[s->nreq] = (struct rdma_req){
				.conn = sl->donor->conn,
				.op = v[i].op,
				.slab_offset = sl->ref.offset,
				.slab_length = sl->ref.length,
				.key = sl->ref.key,
				.offset = off,
				.buf = v[i].buf,
				.len = RTM_PAGE_SIZE,
			};
			s->first[s->nreq] = i;
			s->cnt[s->nreq++] = 1;
			v[i].status = -EINPROGRESS;
		}
	}
	s->left = s->nreq;
}

/* xq_queue - @s's requests wait for xq_pump; a synchronous set goes first. */
static void xq_queue(struct borrower *b, struct bioset *s)
{
	struct store_xq *x = b->xq;
	struct bioset **pp = &x->sets;

	if (!s->nreq)
		return;
	if (s->ab)
		while (*pp)
			pp = &(*pp)->next;
	s->next = *pp;
	*pp = s;
}

/* xq_pump - post what the transport takes, gathered across sets into one post. */
static void xq_pump(struct borrower *b)
{
	struct store_xq *x = b->xq;
	struct rdma_req chunk[XQ_CHUNK];

	for (;;) {
		unsigned k = 0;
		int ret;

		for (struct bioset *s = x->sets; s && k < XQ_CHUNK; s = s->next) {
			while (s->posted < s->nreq && k < XQ_CHUNK &&
			       (!s->ab || s->bytes < XQ_WINDOW)) {
				struct rdma_req *r = &s->req[s->posted];

				/* its donor failed while it waited, or no memory to
				 * track it: it fails (once: then len = 0) */
				if (!r->conn || slot_get(x, s, s->posted, &r->cookie)) {
					int err = r->conn ? -ENOMEM : -EIO;

					s->posted++;
					if (r->len) {
						r->conn = NULL;
						r->len = 0;
						req_done(b, s, s->posted - 1, err);
					}
					continue;
				}
				chunk[k++] = *r;
				s->posted++;
				s->bytes += r->len;
			}
		}
		if (!k)
			break;
		ret = b->tp->ops->post(b->tp, chunk, k);
		if (ret < 0 && ret != -EAGAIN) { /* the first one is refused */
			struct xslot *sl = &x->slot[chunk[0].cookie];

			log_warn("transport post: %s", strerror(-ret));
			ret = 1;
			sl->set->bytes -= chunk[0].len;
			x->free[x->nfree++] = (uint32_t)chunk[0].cookie;
			sl->set->req[sl->r].conn = NULL;
			sl->set->req[sl->r].len = 0;
			req_done(b, sl->set, sl->r, -EIO);
			sl->set = NULL;
		} else if (ret > 0) {
			x->inflight += (unsigned)ret;
		} else {
			ret = 0;
		}
		/* give back the ones not taken, last first */
		for (unsigned i = k; i > (unsigned)ret; i--) {
			struct xslot *sl = &x->slot[chunk[i - 1].cookie];

			sl->set->posted = sl->r; /* (failed ones between are skipped) */
			sl->set->bytes -= chunk[i - 1].len;
			x->free[x->nfree++] = (uint32_t)chunk[i - 1].cookie;
		}
		for (struct bioset **pp = &x->sets; *pp;)
			if ((*pp)->posted == (*pp)->nreq)
				*pp = (*pp)->next;
			else
				pp = &(*pp)->next;
		if ((unsigned)ret < k)
			break; /* the transport is full */
	}
}

/* xq_reap - take completions (waiting up to @timeout_ms for the first), then post
 * more. Returns the number taken or -errno. */
static int xq_reap(struct borrower *b, int timeout_ms)
{
	struct store_xq *x = b->xq;
	struct rdma_completion comp[XQ_CHUNK];
	int got = b->tp->ops->poll(b->tp, comp, XQ_CHUNK, timeout_ms);

	for (int i = 0; i < got; i++) {
		struct xslot sl;

		if (comp[i].cookie >= x->cap || !x->slot[comp[i].cookie].set) {
			log_err("transport: completion with unknown cookie %llu",
				(unsigned long long)comp[i].cookie);
			continue;
		}
		sl = x->slot[comp[i].cookie];
		x->slot[comp[i].cookie].set = NULL;
		x->free[x->nfree++] = (uint32_t)comp[i].cookie;
		x->inflight--;
		sl.set->bytes -= sl.set->req[sl.r].len;
		req_done(b, sl.set, sl.r, comp[i].status);
	}
	xq_pump(b);
	return got;
}

/* xq_wait - drive the transport until @s (NULL: everything queued) is complete. */
static void xq_wait(struct borrower *b, struct bioset *s)
{
	struct store_xq *x = b->xq;

	xq_pump(b);
	while (s ? s->left : (x->sets || x->inflight)) {
		int got = xq_reap(b, x->inflight ? -1 : 0);

		if (got < 0) {
			log_err("transport poll: %s", strerror(-got));
			if (got != -EINTR && got != -EAGAIN)
				break;
		}
	}
}

/* bio_run - move @n pages between local buffers and their slabs, waiting for the
 * transport (other callers' completions that arrive meanwhile are recorded). Sets
 * each status. */
static void bio_run(struct borrower *b, struct bio *v, unsigned n)
{
	struct rdma_req req[TMEM_MAX_BATCH];
	uint32_t first[TMEM_MAX_BATCH], cnt[TMEM_MAX_BATCH];

	for (unsigned i = 0; i < n; i += TMEM_MAX_BATCH) {
		struct bioset s = { .v = v + i, .req = req, .first = first, .cnt = cnt };

		bio_plan(b, &s, n - i < TMEM_MAX_BATCH ? n - i : TMEM_MAX_BATCH);
		xq_queue(b, &s);
		xq_wait(b, &s);
	}
}

/* ------------------------------------------------ pools and accounting */

static bool pool_persistent(const struct bpool *p)
{
	return p->flags & TMEM_POOL_PERSISTENT;
}

static void charge(struct bpool *p, int64_t delta)
{
	p->pages += delta;
	if (p->charge)
		p->charge->pages += delta;
}

static void entry_release(struct borrower *b, struct pindex_entry *e)
{
	for (unsigned i = 0; i < e->ncopies; i++)
		buddy_free(b->alloc, &e->loc[i], 0);
	e->ncopies = 0;
}

struct drop_ctx {
	struct borrower *b;
	struct bpool *pool;
	uint64_t n;
};

static bool drop_cb(struct pindex_entry *e, void *arg)
{
	struct drop_ctx *d = arg;

	entry_release(d->b, e);
	d->n++;
	return true;
}

/* pool_drop - free every page of @pool (or of one object). */
static uint64_t pool_drop(struct borrower *b, uint32_t pool, bool by_oid, uint64_t oid)
{
	struct drop_ctx d = { .b = b, .pool = &b->pools[pool] };

	pindex_walk(b->index, pool, by_oid, oid, drop_cb, &d);
	charge(d.pool, -(int64_t)d.n);
	return d.n;
}

static bool pool_member(const struct bpool *p, const struct bclient *c)
{
	for (unsigned i = 0; i < p->nsharers; i++)
		if (p->sharers[i] == c)
			return true;
	return false;
}

static struct bpool *pool_get(struct borrower *b, struct bclient *c, uint32_t id, int *err)
{
	if (id >= B_MAX_POOLS || !b->pools[id].used) {
		*err = -ENOENT;
		return NULL;
	}
	if (!pool_member(&b->pools[id], c)) {
		*err = -EPERM;
		return NULL;
	}
	return &b->pools[id];
}

int borrower_pool_new(struct borrower *b, struct bclient *c, uint32_t flags, uint64_t uuid)
{
	int free_id = -1;

	if (flags & ~(TMEM_POOL_PERSISTENT | TMEM_POOL_SHARED))
		return -EINVAL;
	for (unsigned i = 0; i < B_MAX_POOLS; i++) {
		struct bpool *p = &b->pools[i];

		if (!p->used) {
			if (free_id < 0)
				free_id = (int)i;
			continue;
		}
		if ((flags & TMEM_POOL_SHARED) && (p->flags & TMEM_POOL_SHARED) &&
		    p->uuid == uuid) {
			if (p->flags != flags)
				return -EEXIST; /* same uuid, other kind */
			if (pool_member(p, c))
				return (int)i;
			if (p->nsharers == B_MAX_SHARERS)
				return -EUSERS;
			p->sharers[p->nsharers++] = c;
			return (int)i;
		}
	}
	if (free_id < 0)
		return -ENOSPC;
	b->pools[free_id] = (struct bpool){
		.used = true,
		.flags = flags,
		.uuid = (flags & TMEM_POOL_SHARED) ? uuid : 0,
		.charge = c,
		.nsharers = 1,
		.sharers = { c },
	};
	log_dbg("client %u: new %s %s pool %d", c->id,
		(flags & TMEM_POOL_SHARED) ? "shared" : "private",
		(flags & TMEM_POOL_PERSISTENT) ? "persistent" : "ephemeral", free_id);
	return free_id;
}

/* pool_leave - @c no longer uses pool @id; the last one out destroys it. */
static void pool_leave(struct borrower *b, struct bpool *p, struct bclient *c)
{
	unsigned i;

	for (i = 0; i < p->nsharers && p->sharers[i] != c; i++)
		;
	if (i == p->nsharers)
		return;
	p->sharers[i] = p->sharers[--p->nsharers];
	if (p->nsharers == 0) {
		uint64_t n = pool_drop(b, (uint32_t)(p - b->pools), false, 0);

		log_dbg("pool %u destroyed, %lu pages freed", (unsigned)(p - b->pools),
			(unsigned long)n);
		memset(p, 0, sizeof(*p));
		return;
	}
	if (p->charge == c) { /* the pages now count against another sharer */
		c->pages -= p->pages;
		p->charge = p->sharers[0];
		p->charge->pages += p->pages;
	}
}

int borrower_pool_destroy(struct borrower *b, struct bclient *c, uint32_t id)
{
	int err;
	struct bpool *p = pool_get(b, c, id, &err);

	if (!p)
		return err;
	pool_leave(b, p, c);
	return 0;
}

/* ------------------------------------------------ clients */

struct bclient *borrower_client_attach(struct borrower *b, const char *name)
{
	for (unsigned i = 0; i < B_MAX_CLIENTS; i++) {
		struct bclient *c = &b->ctab[i];
		const struct config_client *cc;

		if (c->used)
			continue;
		memset(c, 0, sizeof(*c));
		c->used = true;
		c->id = ++b->next_client_id;
		snprintf(c->name, sizeof(c->name), "%s", name);
		cc = config_client(&b->cfg, name);
		c->fixed = cc != NULL;
		c->target = cc ? cc->target_pages : 0;
		node_policy_join(b);
		log_info("client %u (%s) attached, target %s%llu pages", c->id, c->name,
			 c->fixed ? "fixed " : "",
			 (unsigned long long)(c->target == POLICY_NO_TARGET ? 0 : c->target));
		return c;
	}
	errno = EMFILE;
	return NULL;
}

void borrower_client_detach(struct borrower *b, struct bclient *c)
{
	for (unsigned i = 0; i < B_MAX_POOLS; i++)
		if (b->pools[i].used)
			pool_leave(b, &b->pools[i], c);
	log_info("client %u (%s) detached: %llu puts (%llu refused), %llu gets", c->id,
		 c->name, (unsigned long long)c->puts_total,
		 (unsigned long long)(c->puts_total - c->puts_succ),
		 (unsigned long long)c->gets_total);
	c->used = false;
	node_policy_join(b);
}

uint32_t borrower_client_id(const struct bclient *c)
{
	return c->id;
}

/* ------------------------------------------------ tmem operations */

/* The page I/O of a tmem batch, in op order: io[i] belongs to op[i]. */
struct pending {
	struct bio *io;
	struct tmem_op **op;
	struct bpool **pool;
	unsigned n, cap;
};

static bool same_key(const struct tmem_op *a, const struct tmem_op *o, bool object)
{
	return a->pool == o->pool && a->oid == o->oid && (object || a->index == o->index);
}

static bool pending_conflicts(const struct pending *pd, const struct tmem_op *o, bool object)
{
	for (unsigned i = 0; i < pd->n; i++)
		if (same_key(pd->op[i], o, object))
			return true;
	return false;
}

static struct pindex_key key_of(const struct tmem_op *o)
{
	return (struct pindex_key){ .pool = o->pool, .oid = o->oid, .index = o->index };
}

/* pending_settle - the data I/O of op @i is done: account it, set its status. */
static void pending_settle(struct borrower *b, struct pending *pd, struct bclient *c,
			   unsigned i)
{
	struct tmem_op *o = pd->op[i];
	struct pindex_key k = key_of(o);
	struct pindex_entry e;
	int st = pd->io[i].status;

	if (o->cmd == TMEM_PUT) {
		if (!st) {
			c->puts_succ++;
		} else if (pindex_remove(b->index, &k, &e) == 0) {
			/* a failed write leaves no copy behind, old or new */
			entry_release(b, &e);
			charge(pd->pool[i], -1);
		}
	} else if (!st) {
		c->gets_succ++;
	}
	o->status = st;
}

/* pending_finish - run the queued data I/O and settle each op. */
static void pending_finish(struct borrower *b, struct pending *pd, struct bclient *c)
{
	bio_run(b, pd->io, pd->n);
	for (unsigned i = 0; i < pd->n; i++)
		pending_settle(b, pd, c, i);
	pd->n = 0;
}

/* put_alloc - a new page for a put, within target and capacity. */
static int put_alloc(struct borrower *b, struct bpool *p, struct buddy_loc *loc)
{
	struct bclient *c = p->charge;

	if (c && c->target != POLICY_NO_TARGET && c->pages >= c->target)
		return -ENOSPC;
	if (buddy_alloc(b->alloc, 0, B_LOCAL_ZONE, loc) == 0)
		return 0;
	if (node_capacity_wait(b, 300) && buddy_alloc(b->alloc, 0, B_LOCAL_ZONE, loc) == 0)
		return 0;
	return -ENOSPC;
}

static int op_put(struct borrower *b, struct pending *pd, struct bpool *p, struct tmem_op *o)
{
	struct pindex_key k = key_of(o);
	struct pindex_entry *e = pindex_lookup(b->index, &k);
	struct buddy_loc loc;
	unsigned i = pd->n;
	int err;

	if (e && e->ncopies) {
		loc = e->loc[0]; /* overwrite in place */
	} else {
		err = put_alloc(b, p, &loc);
		if (err) {
			/* tmem: a failed put invalidates the old copy */
			if (e && pindex_remove(b->index, &k, NULL) == 0)
				charge(p, -1);
			return err;
		}
		if (!e) { /* (an entry whose copy was lost is still charged) */
			err = pindex_insert(b->index, &k, &e);
			if (err < 0) {
				buddy_free(b->alloc, &loc, 0);
				return err;
			}
			charge(p, 1);
		}
		e->ncopies = 1;
		e->loc[0] = loc;
	}
	pd->io[i] = (struct bio){ .loc = loc, .op = RDMA_OP_WRITE, .buf = o->page };
	return 0;
}

static int op_get(struct borrower *b, struct pending *pd, struct bpool *p, struct tmem_op *o)
{
	struct pindex_key k = key_of(o);
	struct pindex_entry *e = pindex_lookup(b->index, &k);

	if (!e)
		return -ENOENT;
	if (!e->ncopies) { /* its donor failed */
		if (pool_persistent(p))
			return -EIO;
		pindex_remove(b->index, &k, NULL);
		charge(p, -1);
		return -ENOENT;
	}
	pd->io[pd->n] = (struct bio){ .loc = e->loc[0], .op = RDMA_OP_READ, .buf = o->page };
	return 0;
}

static int op_flush_page(struct borrower *b, struct bpool *p, struct tmem_op *o)
{
	struct pindex_key k = key_of(o);
	struct pindex_entry e;

	if (pindex_remove(b->index, &k, &e) < 0)
		return -ENOENT;
	entry_release(b, &e);
	charge(p, -1);
	return 0;
}

/* tmem_run - the ops of @ops: flushes at once, puts and gets queued in @pd. A
 * synchronous run (!@async) settles a full @pd, or one holding a page an op touches
 * again, before going on; an asynchronous one leaves every page I/O in @pd (the
 * caller guarantees no page twice). */
static void tmem_run(struct borrower *b, struct bclient *c, struct tmem_op *ops, unsigned n,
		     struct pending *pd, bool async)
{
	b->in_tmem = true;
	for (unsigned i = 0; i < n; i++) {
		struct tmem_op *o = &ops[i];
		bool object = o->cmd == TMEM_FLUSH_OBJECT;
		struct bpool *p;
		int err = 0;

		if (!async && (pd->n == pd->cap || pending_conflicts(pd, o, object)))
			pending_finish(b, pd, c);
		p = pool_get(b, c, o->pool, &err);
		if (o->cmd == TMEM_PUT)
			c->puts_total++;
		else if (o->cmd == TMEM_GET)
			c->gets_total++;
		if (!p) {
			o->status = err;
			continue;
		}
		switch (o->cmd) {
		case TMEM_PUT:
			err = op_put(b, pd, p, o);
			break;
		case TMEM_GET:
			err = op_get(b, pd, p, o);
			break;
		case TMEM_FLUSH_PAGE:
			c->flushes++;
			o->status = op_flush_page(b, p, o);
			continue;
		case TMEM_FLUSH_OBJECT:
			c->flushes++;
			pool_drop(b, o->pool, true, o->oid);
			o->status = 0;
			continue;
		default:
			err = -EINVAL;
		}
		if (err) {
			o->status = err;
			continue;
		}
		pd->op[pd->n] = o;
		pd->pool[pd->n] = p;
		pd->n++;
	}
	if (!async && pd->n)
		pending_finish(b, pd, c);
	b->in_tmem = false;
}

void borrower_tmem(struct borrower *b, struct bclient *c, struct tmem_op *ops, unsigned n)
{
	struct bio io[TMEM_MAX_BATCH];
	struct tmem_op *op[TMEM_MAX_BATCH];
	struct bpool *pool[TMEM_MAX_BATCH];
	struct pending pd = { .io = io, .op = op, .pool = pool, .cap = TMEM_MAX_BATCH };

	tmem_run(b, c, ops, n, &pd, false);
	node_run_deferred(b);
	node_maybe_grow(b);
}

int borrower_tmem_async(struct borrower *b, struct bclient *c, struct tmem_op *ops,
			unsigned n, store_done_fn *done, void *arg)
{
	struct abatch *ab;
	struct pending *pd;
	struct bioset *s;
	char *m;

	if (!b->xq)
		return -ENOMEM;
	m = calloc(1, sizeof(*ab) + sizeof(*pd) +
			      n * (sizeof(struct bio) + sizeof(struct tmem_op *) +
				   sizeof(struct bpool *) + sizeof(struct rdma_req) +
				   3 * sizeof(uint32_t)));
	if (!m)
		return -ENOMEM;
	ab = (struct abatch *)m;
	pd = (struct pending *)(ab + 1);
	s = &ab->set;
	s->req = (struct rdma_req *)(pd + 1);
	s->v = pd->io = (struct bio *)(s->req + n);
	pd->op = (struct tmem_op **)(pd->io + n);
	pd->pool = (struct bpool **)(pd->op + n);
	s->first = (uint32_t *)(pd->pool + n);
	s->cnt = s->first + n;
	ab->comp = s->cnt + n;
	pd->cap = n;
	ab->pd = pd;
	ab->c = c;
	ab->done = done;
	ab->arg = arg;
	s->ab = ab;
	tmem_run(b, c, ops, n, pd, true);
	bio_plan(b, s, pd->n);
	for (unsigned i = 0; i < pd->n; i++) {
		if (pd->io[i].status == -EINPROGRESS)
			pd->op[i]->status = -EINPROGRESS;
		else /* local slab or lost: done already */
			pending_settle(b, pd, c, i);
	}
	if (s->nreq) {
		b->xq->batches++;
		xq_queue(b, s);
		xq_arm(b);
	} else {
		free(m);
	}
	node_run_deferred(b);
	node_maybe_grow(b);
	return 0;
}

/* xq_report - settle the completed ops of asynchronous batches and tell their
 * callers (from the event loop only: never inside another store call). */
static void xq_report(struct borrower *b)
{
	struct store_xq *x = b->xq;
	struct abatch *ab;

	while ((ab = x->done)) {
		x->done = ab->next;
		for (;;) {
			/* in completion order (more may be added meanwhile) */
			for (unsigned j = 0; j < ab->ncomp; j++) {
				uint32_t r = ab->comp[j];

				for (unsigned k = 0; k < ab->set.cnt[r]; k++) {
					unsigned i = ab->set.first[r] + k;

					pending_settle(b, ab->pd, ab->c, i);
					ab->done(ab->arg, ab->pd->op[i]);
				}
			}
			ab->ncomp = 0;
			ab->done(ab->arg, NULL); /* (may complete more of it) */
			if (!ab->ncomp)
				break;
		}
		ab->on_done = false;
		if (!ab->set.left) {
			x->batches--;
			free(ab);
		}
	}
}

static void xq_tick(struct evloop *ev, void *arg)
{
	struct borrower *b = arg;
	struct store_xq *x = b->xq;

	x->tick = 0;
	xq_pump(b);
	if (x->inflight)
		xq_reap(b, x->done ? 0 : XQ_WAIT_MS);
	xq_report(b);
	xq_arm(b);
}

/* xq_arm - while anything is in flight or to report, the event loop runs xq_tick
 * after each round of fd events (the transport has no fd of its own to wait on). */
static void xq_arm(struct borrower *b)
{
	struct store_xq *x = b->xq;
	int id;

	if (x->tick || !b->ev || !(x->sets || x->inflight || x->done))
		return;
	id = evloop_add_timer(b->ev, 0, false, xq_tick, b);
	if (id > 0)
		x->tick = id;
}

void borrower_tmem_drain(struct borrower *b)
{
	if (!b->xq)
		return;
	xq_wait(b, NULL);
	xq_report(b);
}

/* ------------------------------------------------ evacuation and failure */

struct zone_walk {
	uint32_t zone;
	struct pindex_key *keys;
	size_t n, cap;
	int err;
};

static bool collect_cb(struct pindex_entry *e, void *arg)
{
	struct zone_walk *w = arg;

	for (unsigned i = 0; i < e->ncopies; i++) {
		if (e->loc[i].zone != w->zone)
			continue;
		if (w->n == w->cap) {
			size_t cap = w->cap ? w->cap * 2 : 1024;
			struct pindex_key *k = realloc(w->keys, cap * sizeof(*k));

			if (!k) {
				w->err = -ENOMEM;
				return false;
			}
			w->keys = k;
			w->cap = cap;
		}
		w->keys[w->n++] = e->key;
		break;
	}
	return false;
}

static int collect_zone(struct borrower *b, uint32_t zone, struct zone_walk *w)
{
	memset(w, 0, sizeof(*w));
	w->zone = zone;
	pindex_walk(b->index, UINT32_MAX, false, 0, collect_cb, w);
	return w->err;
}

/* local_slab_add - a slab of the borrower's own memory for evacuated pages. */
static int local_slab_add(struct borrower *b)
{
	int h = store_slab_alloc(b);
	void *mem;

	if (h < 0)
		return h;
	mem = mmap(NULL, b->cfg.slab_size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		store_slab_release(b, (uint32_t)h);
		return -ENOMEM;
	}
	b->slabs[h - 1].local = mem;
	b->slabs[h - 1].ref = (struct wire_slab){ .donor = B_LOCAL_ZONE,
						  .length = b->cfg.slab_size };
	buddy_add_zone(b->alloc, B_LOCAL_ZONE, B_LOCAL_DISTANCE);
	buddy_add_slab(b->alloc, B_LOCAL_ZONE, (uint32_t)h, (uint32_t)b->slab_pages);
	log_warn("no remote capacity left: keeping evacuated pages in local slab %d", h);
	return 0;
}

/* evac_target - where a page leaving @zone goes. */
static int evac_target(struct borrower *b, uint32_t zone, bool persistent,
		       struct buddy_loc *loc)
{
	if (buddy_alloc(b->alloc, 0, zone, loc) == 0)
		return 0;
	if (node_capacity_wait(b, 500) && buddy_alloc(b->alloc, 0, zone, loc) == 0)
		return 0;
	if (!persistent || local_slab_add(b) < 0)
		return -ENOSPC;
	return buddy_alloc(b->alloc, 0, zone, loc);
}

/* evac_chunk - move up to TMEM_MAX_BATCH pages: read all, write all. */
static void evac_chunk(struct borrower *b, uint32_t zone, const struct pindex_key *keys,
		       unsigned n, char *buf)
{
	struct bio rd[TMEM_MAX_BATCH], wr[TMEM_MAX_BATCH];
	struct pindex_entry *ent[TMEM_MAX_BATCH];
	unsigned m = 0;

	for (unsigned i = 0; i < n; i++) {
		struct pindex_entry *e = pindex_lookup(b->index, &keys[i]);

		if (!e || !e->ncopies || e->loc[0].zone != zone)
			continue;
		ent[m] = e;
		rd[m] = (struct bio){ .loc = e->loc[0], .op = RDMA_OP_READ,
				      .buf = buf + (size_t)m * RTM_PAGE_SIZE };
		m++;
	}
	bio_run(b, rd, m);
	for (unsigned i = 0; i < m; i++) {
		struct bpool *p = &b->pools[ent[i]->key.pool];

		wr[i] = rd[i];
		wr[i].op = RDMA_OP_WRITE;
		if (rd[i].status == 0 &&
		    evac_target(b, zone, pool_persistent(p), &wr[i].loc) == 0)
			continue;
		wr[i].status = rd[i].status ? rd[i].status : -ENOSPC;
		wr[i].buf = NULL;
	}
	/* write only the pages that have a new home */
	{
		struct bio go[TMEM_MAX_BATCH];
		unsigned idx[TMEM_MAX_BATCH], k = 0;

		for (unsigned i = 0; i < m; i++)
			if (wr[i].buf) {
				go[k] = wr[i];
				idx[k++] = i;
			}
		bio_run(b, go, k);
		for (unsigned j = 0; j < k; j++)
			wr[idx[j]].status = go[j].status;
	}
	for (unsigned i = 0; i < m; i++) {
		struct pindex_entry *e = ent[i];
		struct bpool *p = &b->pools[e->key.pool];

		if (wr[i].status == 0) {
			buddy_free(b->alloc, &e->loc[0], 0);
			e->loc[0] = wr[i].loc;
			b->pages_migrated++;
			continue;
		}
		if (wr[i].buf) /* allocated but the write failed */
			buddy_free(b->alloc, &wr[i].loc, 0);
		buddy_free(b->alloc, &e->loc[0], 0);
		e->ncopies = 0;
		if (!pool_persistent(p)) { /* ephemeral pages may vanish */
			struct pindex_key k = e->key;

			pindex_remove(b->index, &k, NULL);
			charge(p, -1);
		} else {
			b->pages_lost++;
			if (p->charge)
				p->charge->lost++;
			log_err("pool %u object %llu index %u: page lost leaving donor %u (%s)",
				e->key.pool, (unsigned long long)e->key.oid, e->key.index, zone,
				strerror(-wr[i].status));
		}
	}
}

static unsigned zone_slabs(struct borrower *b, uint32_t zone, uint32_t *handles)
{
	unsigned n = 0;

	for (unsigned i = 0; i < B_MAX_SLABS; i++)
		if (b->slabs[i].used && b->slabs[i].ref.donor == zone)
			handles[n++] = i + 1;
	return n;
}

int store_evacuate_zone(struct borrower *b, uint32_t zone)
{
	static uint32_t handles[B_MAX_SLABS];
	struct zone_walk w;
	char *buf;
	unsigned n;
	int err;

	/* asynchronous batches in flight finish first (on the old locations) */
	if (b->xq)
		xq_wait(b, NULL);
	buf = aligned_alloc(RTM_PAGE_SIZE, (size_t)TMEM_MAX_BATCH * RTM_PAGE_SIZE);
	if (!buf)
		return -ENOMEM;
	err = collect_zone(b, zone, &w);
	if (err)
		goto out_free;
	log_info("donor %u: moving %zu pages to other slabs", zone, w.n);
	for (size_t i = 0; i < w.n; i += TMEM_MAX_BATCH) {
		unsigned chunk = (unsigned)(w.n - i < TMEM_MAX_BATCH ? w.n - i : TMEM_MAX_BATCH);

		evac_chunk(b, zone, &w.keys[i], chunk, buf);
	}
	n = zone_slabs(b, zone, handles);
	for (unsigned i = 0; i < n; i++)
		buddy_remove_slab(b->alloc, handles[i], true);
	err = node_send_return(b, handles, n);
	for (unsigned i = 0; i < n; i++)
		store_slab_release(b, handles[i]);
	log_info("donor %u: %u slabs returned, %llu pages moved so far, %llu lost", zone, n,
		 (unsigned long long)b->pages_migrated, (unsigned long long)b->pages_lost);
out_free:
	free(w.keys);
	free(buf);
	return err;
}

/* xq_forget_zone - requests to donor @zone that were not posted yet fail (its
 * connection is about to close); those in flight complete with an error. */
static void xq_forget_zone(struct borrower *b, uint32_t zone)
{
	struct rdma_conn *conn = NULL;

	for (unsigned i = 0; i < b->n_donors; i++)
		if (b->donors[i].cfg->id == zone)
			conn = b->donors[i].conn;
	if (!conn || !b->xq)
		return;
	for (struct bioset *s = b->xq->sets; s; s = s->next)
		for (unsigned r = s->posted; r < s->nreq; r++)
			if (s->req[r].conn == conn)
				s->req[r].conn = NULL;
}

struct inval_ctx {
	struct borrower *b;
	uint32_t zone;
};

static bool inval_cb(struct pindex_entry *e, void *arg)
{
	struct inval_ctx *x = arg;
	struct bpool *p = &x->b->pools[e->key.pool];
	unsigned j = 0;

	for (unsigned i = 0; i < e->ncopies; i++)
		if (e->loc[i].zone != x->zone)
			e->loc[j++] = e->loc[i];
	if (j == e->ncopies)
		return false;
	e->ncopies = (uint8_t)j;
	if (j)
		return false;
	if (!pool_persistent(p)) {
		charge(p, -1);
		return true;
	}
	x->b->pages_lost++;
	if (p->charge)
		p->charge->lost++;
	return false;
}

void store_invalidate_zone(struct borrower *b, uint32_t zone)
{
	static uint32_t handles[B_MAX_SLABS];
	struct inval_ctx x = { .b = b, .zone = zone };
	uint64_t before = b->pages_lost;
	unsigned n = zone_slabs(b, zone, handles);

	xq_forget_zone(b, zone);
	for (unsigned i = 0; i < n; i++) {
		b->slabs[handles[i] - 1].lost = true;
		buddy_remove_slab(b->alloc, handles[i], true);
	}
	pindex_walk(b->index, UINT32_MAX, false, 0, inval_cb, &x);
	for (unsigned i = 0; i < n; i++)
		store_slab_release(b, handles[i]);
	b->lost_slabs += n;
	log_err("donor %u failed: %u slabs invalidated, %llu persistent pages lost "
		"(their gets now fail with EIO)",
		zone, n, (unsigned long long)(b->pages_lost - before));
}

int store_init(struct borrower *b)
{
	b->next_client_id = 0;
	b->xq = calloc(1, sizeof(*b->xq));
	return b->xq ? 0 : -ENOMEM;
}

void store_fini(struct borrower *b)
{
	struct store_xq *x = b->xq;

	if (!x)
		return;
	borrower_tmem_drain(b);
	if (x->tick)
		evloop_del_timer(b->ev, x->tick);
	free(x->slot);
	free(x->free);
	free(x);
	b->xq = NULL;
}
