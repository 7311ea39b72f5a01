/* verbs.c - the verbs back end of the data-plane transport, borrower side.
 *
 * One RC queue pair per donor, set up with librdmacm (resolve address and route,
 * connect with the borrower's node id in the private data; the donor's accept carries
 * its pool's base address and length). Requests become one-sided RDMA READ / WRITE
 * work requests straight into the donor's slab MRs: remote address = pool base +
 * slab offset + offset, rkey = the low 32 bits of the grant's key. Local memory is a
 * registered staging arena (one allocation, one MR per device): WRITE data is copied
 * in at post, READ data copied out when the completion is reaped, so callers may pass
 * any buffer. A post links all work requests of a queue pair into one chain and rings
 * the doorbell once (one ibv_post_send per QP and post); every WR is signaled and
 * matched back to its request by wr_id (slot index + generation, verbs-book.c).
 *
 * Completions are polled; when nothing has arrived after a short spin, poll sleeps on
 * the completion channels (and the rdma_cm channels, so a disconnect wakes it) with
 * epoll. A completion in error fails its own request with the mapped -errno and moves
 * the QP to error: the QP is destroyed at once, every other request on it completes
 * with -ECONNRESET (their staging memory is freed only after the QP is gone, and late
 * CQEs no longer match a generation). The next post on that connection starts a
 * reconnect (with back-off while the donor stays unreachable), a non-blocking rdma_cm
 * state machine that post and poll advance; until it is established, requests
 * complete with -ENOTCONN at once.
 *
 * Not thread-safe: one thread drives a transport at a time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <infiniband/verbs.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
/* rdma.h's inline rdma_connect() wrapper shares its name with librdmacm's. */
#define rdma_connect rtm_rdma_connect_wrapper
#include "rdma/rdma-internal.h"
#include "rdma/verbs-book.h"
#undef rdma_connect
#include <rdma/rdma_cma.h>

#define LOG_AREA "rdma-verbs"

#define VB_MAX_DEPTH 4096
#define VB_STAGE_BYTES (16u << 20)  /* staging arena; requests wait for room */
#define VB_RESOLVE_MS 2000
#define VB_CONNECT_MS 5000
#define VB_SPIN_POLLS 64            /* empty CQ polls before sleeping */
#define VB_BACKOFF_MIN_MS 100
#define VB_BACKOFF_MAX_MS 5000

/* Per device context: PD, staging MR, one CQ shared by its QPs, comp channel. */
struct vdev {
	struct vdev *next;
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_mr *stage_mr;
	struct ibv_comp_channel *ch;
	struct ibv_cq *cq;
	bool armed;
};

/* Connection states: a reconnect is an rdma_cm state machine driven from post and
 * poll (the channel is non-blocking and in the transport's epoll set), so the caller's
 * thread never blocks on it; only the first connect (the ops contract) waits. */
enum vc_state { VC_DOWN, VC_CONNECTING, VC_UP };
enum vc_step { VS_ADDR, VS_ROUTE, VS_CONNECT };

struct vconn {
	struct rdma_conn base;
	struct vconn *next, *prev;
	char host[64];
	uint16_t port;
	uint32_t self;
	struct sockaddr_in sa;       /* the donor's address, resolved once at connect */
	struct rdma_event_channel *ech;
	struct rdma_cm_id *id;       /* NULL while down */
	struct vdev *dev;
	enum vc_state state;
	enum vc_step step;           /* while connecting: what is awaited */
	uint64_t deadline;           /* while connecting: monotonic ms the step times out */
	uint8_t initiator_depth;
	uint64_t pool_base, pool_len;
	unsigned max_wr;             /* the QP's send queue (device-capped) */
	unsigned posted;             /* WRs on the QP whose completion is not reaped */
	int err;                     /* why it is (or last went) down */
	uint64_t retry_at;           /* monotonic ms of the next reconnect attempt */
	unsigned backoff_ms;
};

struct vtransport {
	struct rdma_transport base;
	struct vbook book;
	struct vdev *devs;
	struct vconn *conns;
	int epfd;
	unsigned depth;
};

static struct vtransport *to_vt(struct rdma_transport *t)
{
	return (struct vtransport *)t;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ devices */

static void dev_free(struct vdev *d)
{
	if (d->cq)
		ibv_destroy_cq(d->cq);
	if (d->ch)
		ibv_destroy_comp_channel(d->ch);
	if (d->stage_mr)
		ibv_dereg_mr(d->stage_mr);
	if (d->pd)
		ibv_dealloc_pd(d->pd);
	free(d);
}

/* dev_get - the per-device resources for @ctx, created on first use. */
static struct vdev *dev_get(struct vtransport *vt, struct ibv_context *ctx)
{
	struct epoll_event ee = { .events = EPOLLIN };
	struct vdev *d;

	for (d = vt->devs; d; d = d->next)
		if (d->ctx == ctx)
			return d;
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->ctx = ctx;
	d->pd = ibv_alloc_pd(ctx);
	if (d->pd)
		d->stage_mr = ibv_reg_mr(d->pd, vt->book.arena,
					 (size_t)vt->book.npages * RTM_PAGE_SIZE,
					 IBV_ACCESS_LOCAL_WRITE);
	if (d->stage_mr)
		d->ch = ibv_create_comp_channel(ctx);
	if (d->ch)
		d->cq = ibv_create_cq(ctx, (int)(2 * vt->depth + 16), NULL, d->ch, 0);
	if (!d->cq || fcntl(d->ch->fd, F_SETFL, O_NONBLOCK)) {
		log_err("dev %s: verbs resources: %s", ibv_get_device_name(ctx->device),
			strerror(errno));
		dev_free(d);
		return NULL;
	}
	ee.data.ptr = d;
	if (epoll_ctl(vt->epfd, EPOLL_CTL_ADD, d->ch->fd, &ee)) {
		dev_free(d);
		return NULL;
	}
	d->next = vt->devs;
	vt->devs = d;
	return d;
}

/* ------------------------------------------------------------ connections */

/* conn_down - destroy the QP and cm id, fail what was in flight with -ECONNRESET.
 * @quick: a completion error that one request caused on a healthy peer (only reap()
 * passes true): the next post may start reconnecting at once. Everything else, above
 * all a failed connect, backs off (doubling). */
static void conn_down(struct vconn *c, int err, bool quick)
{
	struct vtransport *vt = to_vt(c->base.t);

	if (c->state != VC_DOWN)
		c->err = err;
	c->state = VC_DOWN;
	if (c->id) {
		rdma_disconnect(c->id);
		if (c->id->qp)
			rdma_destroy_qp(c->id);
		rdma_destroy_id(c->id);
		c->id = NULL;
	}
	if (c->ech) {
		epoll_ctl(vt->epfd, EPOLL_CTL_DEL, c->ech->fd, NULL);
		rdma_destroy_event_channel(c->ech);
		c->ech = NULL;
	}
	/* The QP is gone: no DMA into staging can happen any more. */
	vbook_fail_conn(&vt->book, c, -ECONNRESET);
	c->posted = 0;
	if (quick) {
		/* one bad request killed a healthy QP: reconnect on the next post */
		c->retry_at = 0;
		return;
	}
	c->retry_at = now_ms() + c->backoff_ms;
	c->backoff_ms = c->backoff_ms * 2 > VB_BACKOFF_MAX_MS ? VB_BACKOFF_MAX_MS
							   : c->backoff_ms * 2;
}

static int resolve(const char *host, uint16_t port, struct sockaddr_in *sa)
{
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *ai;

	if (getaddrinfo(host, NULL, &hints, &ai) || !ai)
		return -EHOSTUNREACH;
	memcpy(sa, ai->ai_addr, sizeof(*sa));
	sa->sin_port = htons(port);
	freeaddrinfo(ai);
	return 0;
}

/* reject_reason - the -errno a donor's reject private data gives (an untrusted value:
 * only a version-1 reject with a status in 1..4095 counts), else -ECONNREFUSED. */
static int reject_reason(const uint8_t *pd)
{
	uint32_t st = wire_get32(pd + 8);

	if (wire_get32(pd) != RVB_MAGIC || wire_get16(pd + 4) != RVB_VERSION || !st ||
	    st > 4095)
		return -ECONNREFUSED;
	return -(int)st;
}

static const char *const step_name[] = { "resolve", "route", "connect" };

/* attempt_fail - a connection attempt failed: log it, take @c down with back-off. */
static int attempt_fail(struct vconn *c, int r)
{
	log_warn("donor %u %s:%u: verbs connection failed at %s: %s", c->base.donor,
		 c->host, c->port, step_name[c->step], strerror(-r));
	conn_down(c, r, false);
	return r;
}

/* conn_start - begin (re)connecting @c: a cm id on a non-blocking channel in the
 * transport's epoll set, address resolution started. 0, or -errno with @c down. */
static int conn_start(struct vconn *c)
{
	struct vtransport *vt = to_vt(c->base.t);
	struct epoll_event ee = { .events = EPOLLIN, .data.ptr = c };

	c->state = VC_CONNECTING;
	c->step = VS_ADDR;
	c->deadline = now_ms() + VB_RESOLVE_MS + 500;
	c->ech = rdma_create_event_channel();
	if (!c->ech)
		return attempt_fail(c, errno ? -errno : -ENOMEM);
	if (fcntl(c->ech->fd, F_SETFL, O_NONBLOCK) ||
	    epoll_ctl(vt->epfd, EPOLL_CTL_ADD, c->ech->fd, &ee) ||
	    rdma_create_id(c->ech, &c->id, c, RDMA_PS_TCP) ||
	    rdma_resolve_addr(c->id, NULL, (struct sockaddr *)&c->sa, VB_RESOLVE_MS))
		return attempt_fail(c, -errno);
	return 0;
}

/* on_route - the route is known: QP on the device's CQ, connect with the hello. */
static int on_route(struct vconn *c)
{
	struct vtransport *vt = to_vt(c->base.t);
	struct ibv_qp_init_attr qa = { 0 };
	struct rdma_conn_param cp = { 0 };
	struct ibv_device_attr da;
	uint8_t hello[RVB_CONNECT_SIZE];

	c->dev = dev_get(vt, c->id->verbs);
	if (!c->dev || ibv_query_device(c->id->verbs, &da))
		return -ENOMEM;
	qa.send_cq = qa.recv_cq = c->dev->cq;
	qa.qp_type = IBV_QPT_RC;
	qa.cap.max_send_wr = vt->depth < (unsigned)da.max_qp_wr ? vt->depth
								  : (unsigned)da.max_qp_wr;
	qa.cap.max_recv_wr = 1;
	qa.cap.max_send_sge = qa.cap.max_recv_sge = 1;
	if (rdma_create_qp(c->id, c->dev->pd, &qa))
		return -errno;
	/* the send queue the device gave (>= asked): never more WRs in flight on it */
	c->max_wr = qa.cap.max_send_wr;
	wire_put32(hello, RVB_MAGIC);
	wire_put16(hello + 4, RVB_VERSION);
	wire_put16(hello + 6, 0);
	wire_put32(hello + 8, c->self);
	cp.private_data = hello;
	cp.private_data_len = sizeof(hello);
	c->initiator_depth = (uint8_t)(da.max_qp_init_rd_atom < 16 ? da.max_qp_init_rd_atom
								   : 16);
	cp.initiator_depth = c->initiator_depth;
	cp.responder_resources = 0;
	cp.retry_count = 5;
	cp.rnr_retry_count = 7;
	return rdma_connect(c->id, &cp) ? -errno : 0;
}

/* on_established - the donor accepted: check its private data, the connection is up. */
static int on_established(struct vconn *c, const uint8_t *acc)
{
	char desc[160];

	if (wire_get32(acc) != RVB_MAGIC || wire_get16(acc + 4) != RVB_VERSION ||
	    wire_get16(acc + 6) || wire_get32(acc + 8))
		return -EPROTO;
	c->pool_base = wire_get64(acc + 16);
	c->pool_len = wire_get64(acc + 24);
	c->state = VC_UP;
	c->err = 0;
	c->backoff_ms = VB_BACKOFF_MIN_MS;
	rvb_describe(c->id->verbs, c->id->port_num, c->sa.sin_addr.s_addr, desc, sizeof(desc));
	log_info("donor %u %s:%u: connected over verbs, %s, pool %llu MiB, %u WRs in "
		 "flight, %u RDMA READs outstanding", c->base.donor, c->host, c->port, desc,
		 (unsigned long long)(c->pool_len >> 20), c->max_wr, c->initiator_depth);
	return 0;
}

/* connect_step - one cm event while connecting; advances or fails the attempt. */
static void connect_step(struct vconn *c, enum rdma_cm_event_type type, const uint8_t *pd)
{
	int r;

	switch (c->step) {
	case VS_ADDR:
		if (type != RDMA_CM_EVENT_ADDR_RESOLVED)
			break;
		c->step = VS_ROUTE;
		c->deadline = now_ms() + VB_RESOLVE_MS + 500;
		if (rdma_resolve_route(c->id, VB_RESOLVE_MS))
			attempt_fail(c, -errno);
		return;
	case VS_ROUTE:
		if (type != RDMA_CM_EVENT_ROUTE_RESOLVED)
			break;
		c->step = VS_CONNECT;
		c->deadline = now_ms() + VB_CONNECT_MS;
		r = on_route(c);
		if (r)
			attempt_fail(c, r);
		return;
	case VS_CONNECT:
		if (type == RDMA_CM_EVENT_REJECTED) {
			attempt_fail(c, reject_reason(pd)); /* the donor's reason */
			return;
		}
		if (type != RDMA_CM_EVENT_ESTABLISHED)
			break;
		r = on_established(c, pd);
		if (r)
			attempt_fail(c, r);
		return;
	}
	attempt_fail(c, rvb_event_errno(type));
}

/* conn_events - drain @c's rdma_cm channel (never blocks): advance a connection
 * attempt, or take an established connection down on a disconnect. */
static void conn_events(struct vconn *c)
{
	struct rdma_cm_event *ev;

	while (c->ech && !rdma_get_cm_event(c->ech, &ev)) {
		enum rdma_cm_event_type type = ev->event;
		uint8_t pd[RVB_ACCEPT_SIZE] = { 0 };

		if ((type == RDMA_CM_EVENT_ESTABLISHED || type == RDMA_CM_EVENT_REJECTED) &&
		    ev->param.conn.private_data) {
			size_t n = ev->param.conn.private_data_len;

			memcpy(pd, ev->param.conn.private_data, n < sizeof(pd) ? n : sizeof(pd));
		}
		rdma_ack_cm_event(ev);
		if (c->state == VC_CONNECTING) {
			connect_step(c, type, pd);
		} else if (type == RDMA_CM_EVENT_DISCONNECTED ||
			   type == RDMA_CM_EVENT_DEVICE_REMOVAL) {
			log_warn("donor %u %s:%u: %s", c->base.donor, c->host, c->port,
				 rdma_event_str(type));
			conn_down(c, -ECONNRESET, false);
		}
	}
	if (c->state == VC_CONNECTING && now_ms() >= c->deadline)
		attempt_fail(c, -ETIMEDOUT);
}

static struct rdma_conn *vt_connect(struct rdma_transport *t, uint32_t donor_id,
				    const char *host, uint16_t port, uint32_t self_id)
{
	struct vtransport *vt = to_vt(t);
	struct vconn *c;
	int r;

	if (!host || strlen(host) >= sizeof(c->host) || !self_id || self_id == UINT32_MAX) {
		errno = EINVAL;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		errno = ENOMEM;
		return NULL;
	}
	c->base.t = t;
	c->base.donor = donor_id;
	strcpy(c->host, host);
	c->port = port;
	c->self = self_id;
	c->backoff_ms = VB_BACKOFF_MIN_MS;
	r = resolve(host, port, &c->sa);
	if (r) {
		log_warn("donor %u %s:%u: %s", donor_id, host, port, strerror(-r));
		free(c);
		errno = -r;
		return NULL;
	}
	/* the first connect waits (ops contract); reconnects later never do */
	conn_start(c);
	while (c->state == VC_CONNECTING) {
		struct pollfd pfd = { .fd = c->ech->fd, .events = POLLIN };
		uint64_t now = now_ms();

		if (poll(&pfd, 1, c->deadline > now ? (int)(c->deadline - now) : 0) < 0 &&
		    errno != EINTR) {
			attempt_fail(c, -errno);
			break;
		}
		conn_events(c);
	}
	if (c->state != VC_UP) {
		r = c->err ? c->err : -ECONNREFUSED;
		free(c);
		errno = -r;
		return NULL;
	}
	c->next = vt->conns;
	if (vt->conns)
		vt->conns->prev = c;
	vt->conns = c;
	return &c->base;
}

static void vt_disconnect(struct rdma_conn *rc)
{
	struct vconn *c = (struct vconn *)rc;
	struct vtransport *vt = to_vt(rc->t);

	conn_down(c, -ECONNRESET, false);
	if (c->prev)
		c->prev->next = c->next;
	else
		vt->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
}

/* ------------------------------------------------------------ data path */

/* admit - may @c take requests now? Starts reconnecting a down connection when due
 * and advances one in progress; never blocks. */
static bool admit(struct vconn *c)
{
	if (c->state == VC_DOWN && now_ms() >= c->retry_at)
		conn_start(c);
	if (c->state == VC_CONNECTING)
		conn_events(c);
	return c->state == VC_UP;
}

static int vt_post(struct rdma_transport *t, const struct rdma_req *reqs, unsigned n)
{
	struct vtransport *vt = to_vt(t);
	struct ibv_send_wr wr[RDMA_MAX_BATCH], *heads[RDMA_MAX_BATCH], *bad;
	struct ibv_sge sge[RDMA_MAX_BATCH];
	void *owner[RDMA_MAX_BATCH] = { 0 }, *hown[RDMA_MAX_BATCH];
	unsigned i, nw = 0, nh;
	int r = 0;

	if (n > RDMA_MAX_BATCH)
		n = RDMA_MAX_BATCH;
	for (i = 0; i < n; i++) {
		const struct rdma_req *q = &reqs[i];
		struct vconn *c = (struct vconn *)q->conn;
		struct rslot *s;
		bool up;
		int idx;

		r = rslots_check(q);
		if (!r && c->base.t != t)
			r = -EINVAL;
		if (r)
			break;
		up = admit(c);
		if (!up || q->slab_offset + q->slab_length > c->pool_len ||
		    c->pool_base + q->slab_offset + q->offset < c->pool_base) {
			/* down or connecting, or a range the donor's pool cannot hold: fail
			 * this request without touching the QP (a bad remote access would
			 * kill it). */
			r = rslots_queue_error(&vt->book.rs, q->cookie,
					       up ? -EACCES : -ENOTCONN);
			if (r)
				break;
			continue;
		}
		if (c->posted >= c->max_wr) {
			r = -EAGAIN; /* this QP's send queue is full */
			break;
		}
		idx = vbook_start(&vt->book, q, c);
		if (idx < 0) {
			r = idx;
			break;
		}
		c->posted++;
		s = &vt->book.rs.slot[idx];
		if (q->op == RDMA_OP_WRITE)
			memcpy(vbook_stage(&vt->book, s), q->buf, q->len);
		vbook_fill_wr(&wr[nw], &sge[nw], q->op, rslots_tag(&vt->book.rs, (unsigned)idx),
			      vbook_stage(&vt->book, s), q->len, c->dev->stage_mr->lkey,
			      c->pool_base + q->slab_offset + q->offset, (uint32_t)q->key);
		owner[nw++] = c;
	}
	/* One doorbell per queue pair. */
	nh = vbook_chain(wr, owner, nw, heads, hown);
	for (unsigned k = 0; k < nh; k++) {
		struct vconn *c = hown[k];
		int e = ibv_post_send(c->id->qp, heads[k], &bad);

		if (e) {
			log_warn("donor %u: ibv_post_send: %s", c->base.donor, strerror(e));
			conn_down(c, -e, false); /* fails the whole chain, posted or not */
		}
	}
	if (i == 0 && r)
		return r;
	return (int)i;
}

/* reap - poll every CQ once; returns the number of CQEs seen. */
static int reap(struct vtransport *vt)
{
	struct ibv_wc wc[32];
	int total = 0;

	for (struct vdev *d = vt->devs; d; d = d->next) {
		int n;

		do {
			n = ibv_poll_cq(d->cq, 32, wc);
			if (n < 0)
				return -EIO;
			for (int i = 0; i < n; i++) {
				struct rslot *s = rslots_match(&vt->book.rs, wc[i].wr_id);
				struct vconn *c;
				int st;

				if (!s)
					continue; /* from a QP already torn down */
				c = s->conn;
				c->posted--;
				st = vbook_wc_errno(wc[i].status);
				if (!st && s->op == RDMA_OP_READ)
					memcpy(s->buf, vbook_stage(&vt->book, s), s->len);
				vbook_finish(&vt->book, s, st);
				if (st) {
					if (wc[i].status != IBV_WC_WR_FLUSH_ERR)
						log_warn("donor %u: RDMA %s failed: %s",
							 c->base.donor,
							 s->op == RDMA_OP_READ ? "READ" : "WRITE",
							 ibv_wc_status_str(wc[i].status));
					conn_down(c, st,
						  st == -EACCES || st == -EINVAL);
				}
			}
			total += n;
		} while (n == 32);
	}
	return total;
}

static void cm_check(struct vtransport *vt, bool connecting_only)
{
	for (struct vconn *c = vt->conns; c; c = c->next)
		if (c->ech && (!connecting_only || c->state == VC_CONNECTING))
			conn_events(c);
}

/* sleep_once - arm every CQ, re-check, then wait for a channel up to @ms. */
static int sleep_once(struct vtransport *vt, int ms)
{
	struct epoll_event ev[8];
	int n;

	for (struct vdev *d = vt->devs; d; d = d->next)
		if (!d->armed) {
			if (ibv_req_notify_cq(d->cq, 0))
				return -EIO;
			d->armed = true;
		}
	n = reap(vt); /* completions that raced with arming */
	if (n)
		return n < 0 ? n : 0;
	n = epoll_wait(vt->epfd, ev, 8, ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (struct vdev *d = vt->devs; d; d = d->next) {
		struct ibv_cq *cq;
		void *ctx;

		while (!ibv_get_cq_event(d->ch, &cq, &ctx)) {
			ibv_ack_cq_events(cq, 1);
			d->armed = false;
		}
	}
	cm_check(vt, false);
	return 0;
}

static int vt_poll(struct rdma_transport *t, struct rdma_completion *out, unsigned max,
		   int timeout_ms)
{
	struct vtransport *vt = to_vt(t);
	uint64_t deadline = timeout_ms > 0 ? now_ms() + (uint64_t)timeout_ms : 0;
	unsigned got, spins = 0;
	int r;

	cm_check(vt, true); /* a reconnect in progress moves on even with nothing in flight */
	for (;;) {
		r = reap(vt);
		if (r < 0)
			return r;
		got = rslots_pop(&vt->book.rs, out, max);
		if (got || !max || timeout_ms == 0 || !vt->book.rs.inflight)
			return (int)got;
		if (r == 0 && ++spins > VB_SPIN_POLLS) {
			int ms = -1;

			if (timeout_ms > 0) {
				uint64_t now = now_ms();

				if (now >= deadline)
					return 0;
				ms = (int)(deadline - now);
			}
			r = sleep_once(vt, ms);
			if (r < 0)
				return r;
			spins = 0;
		}
		if (!(spins & 15))
			cm_check(vt, false);
	}
}

static unsigned vt_inflight(struct rdma_transport *t)
{
	return to_vt(t)->book.rs.inflight;
}

static void vt_destroy(struct rdma_transport *t)
{
	struct vtransport *vt = to_vt(t);

	while (vt->conns)
		vt_disconnect(&vt->conns->base);
	while (vt->devs) {
		struct vdev *d = vt->devs;

		vt->devs = d->next;
		dev_free(d); /* every CQ event got was acked in sleep_once */
	}
	if (vt->epfd >= 0)
		close(vt->epfd);
	vbook_fini(&vt->book);
	free(vt);
}

static const struct rdma_ops verbs_ops = {
	.name = "verbs",
	.connect = vt_connect,
	.disconnect = vt_disconnect,
	.post = vt_post,
	.poll = vt_poll,
	.inflight = vt_inflight,
	.destroy = vt_destroy,
};

struct rdma_transport *rdma_verbs_create(unsigned depth)
{
	struct vtransport *vt;
	char why[160];
	int r;

	if (!depth || depth > VB_MAX_DEPTH) {
		errno = EINVAL;
		return NULL;
	}
	r = rdma_verbs_probe(NULL, why, sizeof(why));
	if (r) {
		log_err("verbs transport: %s", why);
		errno = -r;
		return NULL;
	}
	log_info("verbs transport: %s", why);
	vt = calloc(1, sizeof(*vt));
	if (!vt) {
		errno = ENOMEM;
		return NULL;
	}
	vt->base.ops = &verbs_ops;
	vt->depth = depth;
	vt->epfd = epoll_create1(EPOLL_CLOEXEC);
	r = vt->epfd < 0 ? -errno : vbook_init(&vt->book, depth, VB_STAGE_BYTES / RTM_PAGE_SIZE);
	if (r) {
		if (vt->epfd >= 0)
			close(vt->epfd);
		free(vt);
		errno = -r;
		return NULL;
	}
	return &vt->base;
}
