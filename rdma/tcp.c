/* tcp.c - the TCP back end of the data-plane transport, borrower side.
 *
 * One TCP connection per donor, driven by one io_uring per transport. A post turns
 * the requests for a connection into one gathered sendmsg (request headers and WRITE
 * payloads as iovecs); while that send is in flight further posts gather into a
 * second batch, sent as soon as the first completes, so frames never interleave.
 * Each connection keeps one recv armed: replies are parsed as a stream from a staging
 * buffer, and a large READ payload is received straight into the caller's buffer.
 * Replies are matched by tag (slot index and generation). A connection that fails
 * completes everything it had in flight with -ECONNRESET once the kernel holds no
 * reference to the caller's buffers; later posts to it complete with -ENOTCONN.
 *
 * Not thread-safe: one thread drives a transport at a time.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
#include "rdma/rdma-internal.h"
#include "rdma/slots.h"

#define LOG_AREA "rdma-tcp"

#define TCP_MAX_DEPTH 4096
#define TCP_RING_ENTRIES 256
#define TCP_RBUF_SIZE (256u * 1024u)   /* staging buffer for replies */
#define TCP_DIRECT_MIN (16u * 1024u)   /* payload rest received straight into buf */
#define TCP_CONNECT_TIMEOUT_MS 5000
#define TCP_HELLO_TIMEOUT_S 5

enum { UD_SEND = 0, UD_RECV = 1 }; /* low bit of an SQE's user_data */

struct tcp_conn;

/* Frames gathered for one sendmsg. */
struct tcp_batch {
	struct iovec *iov;     /* 2 * depth entries */
	unsigned niov;
	unsigned iov_done;     /* iovecs fully sent */
	uint8_t *hdr;          /* depth request headers */
	unsigned nreq;
	struct msghdr msg;
};

struct tcp_conn {
	struct rdma_conn base;
	struct tcp_transport *tt;
	struct tcp_conn *next, *prev;   /* all connections of the transport */
	struct tcp_conn *post_next;     /* connections touched by the current post */
	bool in_post;
	int fd;
	int err;                        /* 0, or why the connection failed */
	bool sending, receiving;        /* an SQE of that kind is outstanding */
	struct tcp_batch batch[2];
	unsigned fill;                  /* batch being filled; the other one may be sending */
	uint8_t *rbuf;                  /* staged reply bytes [0, rlen) */
	unsigned rlen;
	struct rslot *cur;           /* READ whose payload is arriving */
	uint32_t cur_done;              /* payload bytes of @cur received */
	bool direct;                    /* outstanding recv targets cur's buffer */
};

struct tcp_transport {
	struct rdma_transport base;
	struct io_uring ring;
	unsigned depth;
	struct rslots rs;               /* slots, in-flight bound, completion ring */
	struct tcp_conn *conns;
	bool send_queued;               /* a send SQE was prepared outside post */
};

static struct tcp_transport *to_tt(struct rdma_transport *t)
{
	return (struct tcp_transport *)t;
}

static struct io_uring_sqe *get_sqe(struct tcp_transport *tt)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&tt->ring);

	if (!sqe) {
		io_uring_submit(&tt->ring);
		sqe = io_uring_get_sqe(&tt->ring);
	}
	return sqe;
}

/* conn_reap - once a failed connection has no SQE left, fail what it had in flight. */
static void conn_reap(struct tcp_conn *c)
{
	if (!c->err || c->sending || c->receiving)
		return;
	rslots_fail_conn(&c->tt->rs, c, -ECONNRESET);
	c->batch[0].nreq = c->batch[0].niov = 0;
	c->batch[1].nreq = c->batch[1].niov = 0;
	c->cur = NULL;
	c->rlen = 0;
}

/* conn_fail - mark @c dead (@why NULL: closed on purpose, no log) and wake its SQEs. */
static void conn_fail(struct tcp_conn *c, int err, const char *why)
{
	if (c->err)
		return;
	c->err = err;
	if (why)
		log_warn("donor %u fd %d: connection lost: %s (%s)", c->base.donor, c->fd,
			 why, strerror(-err));
	shutdown(c->fd, SHUT_RDWR);
	conn_reap(c);
}

static int submit_send(struct tcp_conn *c, struct tcp_batch *b)
{
	struct io_uring_sqe *sqe = get_sqe(c->tt);
	unsigned left = b->niov - b->iov_done;

	if (!sqe)
		return -EBUSY;
	b->msg.msg_iov = b->iov + b->iov_done;
	b->msg.msg_iovlen = left < IOV_MAX ? left : IOV_MAX;
	io_uring_prep_sendmsg(sqe, c->fd, &b->msg, MSG_WAITALL | MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | UD_SEND);
	c->sending = true;
	return 0;
}

/* conn_kick_send - start sending the filled batch unless a send is in flight. */
static void conn_kick_send(struct tcp_conn *c)
{
	struct tcp_batch *b = &c->batch[c->fill];

	if (c->sending || c->err || !b->nreq)
		return;
	b->iov_done = 0;
	c->fill ^= 1;
	if (submit_send(c, b))
		conn_fail(c, -EBUSY, "submission queue full");
}

static void arm_recv(struct tcp_conn *c)
{
	struct io_uring_sqe *sqe;

	if (c->err || c->receiving)
		return;
	sqe = get_sqe(c->tt);
	if (!sqe) {
		conn_fail(c, -EBUSY, "submission queue full");
		return;
	}
	c->direct = c->cur && !c->rlen && c->cur->len - c->cur_done >= TCP_DIRECT_MIN;
	if (c->direct)
		io_uring_prep_recv(sqe, c->fd, c->cur->buf + c->cur_done,
				   c->cur->len - c->cur_done, MSG_WAITALL);
	else
		io_uring_prep_recv(sqe, c->fd, c->rbuf + c->rlen, TCP_RBUF_SIZE - c->rlen, 0);
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | UD_RECV);
	c->receiving = true;
}

static void on_send(struct tcp_conn *c, int res)
{
	struct tcp_batch *b = &c->batch[c->fill ^ 1];
	size_t n;

	c->sending = false;
	if (c->err) {
		conn_reap(c);
		return;
	}
	if (res == -EINTR || res == -EAGAIN) {
		res = 0;
	} else if (res < 0) {
		conn_fail(c, res, "send failed");
		return;
	}
	for (n = (size_t)res; n && b->iov_done < b->niov;) {
		struct iovec *v = &b->iov[b->iov_done];

		if (n >= v->iov_len) {
			n -= v->iov_len;
			b->iov_done++;
		} else {
			v->iov_base = (uint8_t *)v->iov_base + n;
			v->iov_len -= n;
			n = 0;
		}
	}
	if (b->iov_done < b->niov) {
		if (submit_send(c, b))
			conn_fail(c, -EBUSY, "submission queue full");
		c->tt->send_queued = true;
		return;
	}
	b->nreq = b->niov = 0;
	conn_kick_send(c);
	c->tt->send_queued |= c->sending;
}

/* parse_replies - consume the staged bytes: reply headers and READ payloads. */
static void parse_replies(struct tcp_conn *c)
{
	struct tcp_transport *tt = c->tt;
	unsigned pos = 0;

	while (!c->err) {
		struct rslot *sl = c->cur;
		const uint8_t *p = c->rbuf + pos;
		uint64_t tag;
		uint32_t status, len;

		if (sl) {
			uint32_t k = sl->len - c->cur_done;

			if (k > c->rlen - pos)
				k = c->rlen - pos;
			memcpy(sl->buf + c->cur_done, p, k);
			pos += k;
			c->cur_done += k;
			if (c->cur_done < sl->len)
				break;
			c->cur = NULL;
			rslots_finish(&tt->rs, sl, 0);
			continue;
		}
		if (c->rlen - pos < RTCP_REPLY_SIZE)
			break;
		tag = wire_get64(p);
		status = wire_get32(p + 8);
		len = wire_get32(p + 12);
		pos += RTCP_REPLY_SIZE;
		sl = rslots_match(&tt->rs, tag);
		if (!sl || sl->conn != c) {
			log_err("donor %u fd %d: reply for unknown tag %#llx", c->base.donor,
				c->fd, (unsigned long long)tag);
			conn_fail(c, -EPROTO, "protocol error");
			return;
		}
		if (status > 4095 ||
		    len != (status == 0 && sl->op == RDMA_OP_READ ? sl->len : 0)) {
			log_err("donor %u fd %d: bad reply tag %#llx status %u len %u",
				c->base.donor, c->fd, (unsigned long long)tag, status, len);
			conn_fail(c, -EPROTO, "protocol error");
			return;
		}
		if (len) {
			c->cur = sl;
			c->cur_done = 0;
			continue;
		}
		rslots_finish(&tt->rs, sl, -(int)status);
	}
	memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
	c->rlen -= pos;
}

static void on_recv(struct tcp_conn *c, int res)
{
	c->receiving = false;
	if (c->err) {
		conn_reap(c);
		return;
	}
	if (res == 0) {
		conn_fail(c, -ECONNRESET, "closed by donor");
		return;
	}
	if (res < 0 && res != -EINTR && res != -EAGAIN) {
		conn_fail(c, res, "recv failed");
		return;
	}
	if (res > 0 && c->direct) {
		c->cur_done += (uint32_t)res;
		if (c->cur_done == c->cur->len) {
			rslots_finish(&c->tt->rs, c->cur, 0);
			c->cur = NULL;
		}
	} else if (res > 0) {
		c->rlen += (unsigned)res;
		parse_replies(c);
	}
	arm_recv(c);
}

/* process_cqes - handle every completion the ring holds, without waiting. */
static void process_cqes(struct tcp_transport *tt)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	/* completions waiting as task work (IORING_SETUP_TASKRUN_FLAG): fetch them */
	if (IO_URING_READ_ONCE(*tt->ring.sq.kflags) & IORING_SQ_TASKRUN)
		io_uring_get_events(&tt->ring);
	io_uring_for_each_cqe(&tt->ring, head, cqe) {
		uint64_t ud = io_uring_cqe_get_data64(cqe);
		struct tcp_conn *c = (struct tcp_conn *)(uintptr_t)(ud & ~(uint64_t)1);

		n++;
		if (ud == LIBURING_UDATA_TIMEOUT || !c)
			continue;
		if (ud & UD_RECV)
			on_recv(c, cqe->res);
		else
			on_send(c, cqe->res);
	}
	io_uring_cq_advance(&tt->ring, n);
}

static void batch_add(struct tcp_conn *c, struct rslot *sl, const struct rdma_req *r)
{
	struct tcp_batch *b = &c->batch[c->fill];
	uint8_t *h = b->hdr + (size_t)b->nreq * RTCP_REQ_SIZE;
	struct iovec *last = b->niov ? &b->iov[b->niov - 1] : NULL;

	wire_put16(h, (uint16_t)r->op);
	wire_put16(h + 2, 0);
	wire_put32(h + 4, r->len);
	wire_put64(h + 8, r->slab_offset + r->offset);
	wire_put64(h + 16, r->key);
	wire_put64(h + 24, rslots_tag(&c->tt->rs, (unsigned)(sl - c->tt->rs.slot)));
	if (last && (uint8_t *)last->iov_base + last->iov_len == h)
		last->iov_len += RTCP_REQ_SIZE; /* headers of consecutive READs: one iovec */
	else
		b->iov[b->niov++] = (struct iovec){ h, RTCP_REQ_SIZE };
	if (r->op == RDMA_OP_WRITE)
		b->iov[b->niov++] = (struct iovec){ r->buf, r->len };
	b->nreq++;
}

static int tcp_post(struct rdma_transport *t, const struct rdma_req *reqs, unsigned n)
{
	struct tcp_transport *tt = to_tt(t);
	struct tcp_conn *touched = NULL, *c;
	unsigned i;
	int ret = 0;

	for (i = 0; i < n; i++) {
		const struct rdma_req *r = &reqs[i];
		int idx;

		if (rslots_full(&tt->rs)) {
			ret = -EAGAIN;
			break;
		}
		ret = rslots_check(r);
		if (!ret && r->conn->t != &tt->base)
			ret = -EINVAL;
		if (ret)
			break;
		c = (struct tcp_conn *)r->conn;
		if (c->err) {
			rslots_queue_error(&tt->rs, r->cookie, -ENOTCONN);
			continue;
		}
		idx = rslots_take(&tt->rs, r, c); /* cannot fail: room checked above */
		batch_add(c, &tt->rs.slot[idx], r);
		if (!c->in_post) {
			c->in_post = true;
			c->post_next = touched;
			touched = c;
		}
	}
	for (c = touched; c; c = c->post_next) {
		c->in_post = false;
		conn_kick_send(c);
	}
	if (io_uring_sq_ready(&tt->ring))
		io_uring_submit(&tt->ring);
	tt->send_queued = false;
	return i ? (int)i : ret;
}

static int tcp_poll(struct rdma_transport *t, struct rdma_completion *out, unsigned max,
		    int timeout_ms)
{
	struct tcp_transport *tt = to_tt(t);
	struct timespec now, end = { 0, 0 };

	if (timeout_ms > 0) {
		clock_gettime(CLOCK_MONOTONIC, &end);
		end.tv_sec += timeout_ms / 1000;
		end.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (end.tv_nsec >= 1000000000L) {
			end.tv_sec++;
			end.tv_nsec -= 1000000000L;
		}
	}
	for (;;) {
		struct __kernel_timespec ts, *tsp = NULL;
		struct io_uring_cqe *cqe;
		int ret;

		process_cqes(tt);
		if (tt->rs.rcount || !timeout_ms || tt->rs.inflight == 0)
			break;
		if (timeout_ms > 0) {
			long long ns;

			clock_gettime(CLOCK_MONOTONIC, &now);
			ns = (long long)(end.tv_sec - now.tv_sec) * 1000000000LL +
			     (end.tv_nsec - now.tv_nsec);
			if (ns <= 0)
				break;
			ts.tv_sec = ns / 1000000000LL;
			ts.tv_nsec = ns % 1000000000LL;
			tsp = &ts;
		}
		if (io_uring_sq_ready(&tt->ring))
			ret = io_uring_submit_and_wait_timeout(&tt->ring, &cqe, 1, tsp, NULL);
		else if (tsp)
			ret = io_uring_wait_cqe_timeout(&tt->ring, &cqe, tsp);
		else
			ret = io_uring_wait_cqe(&tt->ring, &cqe);
		tt->send_queued = false;
		if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN)
			return ret;
	}
	if (tt->send_queued) {
		io_uring_submit(&tt->ring);
		tt->send_queued = false;
	}
	return (int)rslots_pop(&tt->rs, out, max);
}

static unsigned tcp_inflight(struct rdma_transport *t)
{
	return to_tt(t)->rs.inflight;
}

/* handshake - blocking hello exchange on a fresh socket. */
static int handshake(int fd, uint32_t donor, uint32_t self)
{
	struct timeval tv = { TCP_HELLO_TIMEOUT_S, 0 }, zero = { 0, 0 };
	uint8_t h[RTCP_HELLO_SIZE], r[RTCP_HELLO_REPLY_SIZE];
	uint32_t status;
	int ret;

	errno = 0;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	wire_put32(h, RTCP_MAGIC);
	wire_put16(h + 4, RTCP_VERSION);
	wire_put16(h + 6, 0);
	wire_put32(h + 8, self);
	/* blocking socket with timeouts: a short count means timeout, EOF or error */
	if (send(fd, h, sizeof(h), MSG_NOSIGNAL) != (ssize_t)sizeof(h))
		ret = errno == EAGAIN ? -ETIMEDOUT : errno ? -errno : -EIO;
	else if (recv(fd, r, sizeof(r), MSG_WAITALL) != (ssize_t)sizeof(r))
		ret = errno == EAGAIN ? -ETIMEDOUT : -ECONNRESET;
	else
		ret = 0;
	if (ret) {
		log_err("donor %u fd %d: hello: %s", donor, fd, strerror(-ret));
		return ret;
	}
	status = wire_get32(r + 8);
	if (wire_get32(r) != RTCP_MAGIC || wire_get16(r + 4) != RTCP_VERSION ||
	    wire_get16(r + 6) != 0 || status > 4095) {
		log_err("donor %u fd %d: bad hello reply", donor, fd);
		return -EPROTO;
	}
	if (status) {
		log_err("donor %u fd %d: hello refused: %s", donor, fd, strerror((int)status));
		return -(int)status;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &zero, sizeof(zero));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &zero, sizeof(zero));
	return 0;
}

static void conn_free(struct tcp_conn *c)
{
	unsigned i;

	for (i = 0; i < 2; i++) {
		free(c->batch[i].iov);
		free(c->batch[i].hdr);
	}
	free(c->rbuf);
	free(c);
}

static struct rdma_conn *tcp_connect(struct rdma_transport *t, uint32_t donor_id,
				     const char *host, uint16_t port, uint32_t self_id)
{
	struct tcp_transport *tt = to_tt(t);
	struct tcp_conn *c;
	int one = 1, fd, ret, i;

	fd = net_connect_tcp(host, port, TCP_CONNECT_TIMEOUT_MS);
	if (fd < 0) {
		log_err("donor %u: connect %s:%u: %s", donor_id, host, port, strerror(-fd));
		errno = -fd;
		return NULL;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ret = handshake(fd, donor_id, self_id);
	if (ret)
		goto out_close;
	ret = -ENOMEM;
	c = calloc(1, sizeof(*c));
	if (!c)
		goto out_close;
	for (i = 0; i < 2; i++) {
		c->batch[i].iov = calloc(2 * (size_t)tt->depth, sizeof(struct iovec));
		c->batch[i].hdr = malloc((size_t)tt->depth * RTCP_REQ_SIZE);
		if (!c->batch[i].iov || !c->batch[i].hdr)
			goto out_free;
	}
	c->rbuf = malloc(TCP_RBUF_SIZE);
	if (!c->rbuf)
		goto out_free;
	c->base.t = t;
	c->base.donor = donor_id;
	c->tt = tt;
	c->fd = fd;
	c->next = tt->conns;
	if (tt->conns)
		tt->conns->prev = c;
	tt->conns = c;
	arm_recv(c);
	io_uring_submit(&tt->ring);
	log_dbg("donor %u fd %d: connected to %s:%u", donor_id, fd, host, port);
	return &c->base;

out_free:
	conn_free(c);
out_close:
	close(fd);
	errno = -ret;
	return NULL;
}

static void tcp_disconnect(struct rdma_conn *rc)
{
	struct tcp_conn *c = (struct tcp_conn *)rc;
	struct tcp_transport *tt = c->tt;

	conn_fail(c, -ECONNRESET, NULL);
	while (c->sending || c->receiving) {
		struct io_uring_cqe *cqe;
		int ret = io_uring_submit_and_wait(&tt->ring, 1);

		if (ret < 0 && ret != -EINTR && ret != -EAGAIN)
			ret = io_uring_wait_cqe(&tt->ring, &cqe);
		process_cqes(tt);
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		tt->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	close(c->fd);
	log_dbg("donor %u fd %d: disconnected", c->base.donor, c->fd);
	conn_free(c);
}

static void tcp_destroy(struct rdma_transport *t)
{
	struct tcp_transport *tt = to_tt(t);

	while (tt->conns)
		tcp_disconnect(&tt->conns->base);
	io_uring_queue_exit(&tt->ring);
	rslots_fini(&tt->rs);
	free(tt);
}

static const struct rdma_ops tcp_ops = {
	.name = "tcp",
	.connect = tcp_connect,
	.disconnect = tcp_disconnect,
	.post = tcp_post,
	.poll = tcp_poll,
	.inflight = tcp_inflight,
	.destroy = tcp_destroy,
};

/* probe_ops - the kernel must know the io_uring operations this back end uses. */
static int probe_ops(struct io_uring *ring)
{
	struct io_uring_probe *p = io_uring_get_probe_ring(ring);
	int ret = 0;

	if (!p)
		return -ENOMEM;
	if (!io_uring_opcode_supported(p, IORING_OP_SENDMSG) ||
	    !io_uring_opcode_supported(p, IORING_OP_RECV)) {
		log_err("io_uring lacks IORING_OP_SENDMSG/IORING_OP_RECV (kernel too old)");
		ret = -EOPNOTSUPP;
	}
	io_uring_free_probe(p);
	return ret;
}

struct rdma_transport *rdma_tcp_create(unsigned depth)
{
	struct tcp_transport *tt;
	int ret;

	if (!depth || depth > TCP_MAX_DEPTH) {
		errno = EINVAL;
		return NULL;
	}
	tt = calloc(1, sizeof(*tt));
	if (!tt) {
		errno = ENOMEM;
		return NULL;
	}
	tt->base.ops = &tcp_ops;
	tt->depth = depth;
	ret = rslots_init(&tt->rs, depth);
	if (ret)
		goto out_free;
	/* task work runs when we enter the kernel anyway (no IPIs); older kernels: plain */
	ret = io_uring_queue_init(TCP_RING_ENTRIES, &tt->ring,
				  IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG);
	if (ret == -EINVAL)
		ret = io_uring_queue_init(TCP_RING_ENTRIES, &tt->ring, 0);
	if (ret) {
		log_err("io_uring_queue_init: %s", strerror(-ret));
		goto out_free;
	}
	ret = probe_ops(&tt->ring);
	if (ret)
		goto out_exit;
	return &tt->base;

out_exit:
	io_uring_queue_exit(&tt->ring);
out_free:
	rslots_fini(&tt->rs);
	free(tt);
	errno = -ret;
	return NULL;
}
