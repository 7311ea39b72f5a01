/* tcp-server.c - the donor side of the TCP back end: serves READ/WRITE requests
 * into the donor's pool, checking each against the slab ACL (owner, key, range).
 *
 * An acceptor thread hands every connection to a thread of its own. A connection
 * thread reads requests through a buffer and gathers the replies of everything
 * already buffered into one sendmsg; READ data is sent straight from the pool. The
 * ACL read lock is held from the first pool access of such a group until its replies
 * have been handed to the socket (never across a blocking wait: what the socket
 * cannot take at once is copied aside first), so set_acl, which takes the write lock,
 * returns only when no request admitted under the old ACL is still copying.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "common/common.h"
#include "rdma/rdma-internal.h"

#define LOG_AREA "rdma-tcpd"

#define SRV_IN_SIZE (256u * 1024u)    /* request input buffer */
#define SRV_MAX_REPLIES 64            /* replies gathered per sendmsg */
#define SRV_OBUF_SIZE (RDMA_MAX_IO + SRV_MAX_REPLIES * RTCP_REPLY_SIZE)
#define SRV_HELLO_TIMEOUT_S 10

struct slab_acl {
	uint32_t owner; /* node allowed, 0 = nobody */
	uint64_t key;
};

struct srv_conn {
	struct rdma_tcp_server *s;
	struct srv_conn *next;
	pthread_t thread;
	int fd;
	bool done;                  /* thread finished: join and free */
	uint32_t node;              /* from the hello */
	char peer[64];
	uint8_t *in;                /* buffered input [pos, in_len) */
	size_t in_len, pos;
	uint8_t *wbuf;              /* WRITE payload not yet buffered in @in */
	uint8_t *obuf;              /* replies the socket could not take at once */
	uint8_t hdr[SRV_MAX_REPLIES][RTCP_REPLY_SIZE];
	struct iovec iov[2 * SRV_MAX_REPLIES];
	unsigned niov, nrep;
	size_t out_bytes;
	bool locked;                /* holds the ACL read lock */
};

struct rdma_tcp_server {
	uint8_t *pool;
	uint64_t pool_len, slab_size;
	unsigned n_slabs;
	struct slab_acl *acl;
	pthread_rwlock_t lock;      /* guards @acl; read-held while copying */
	int lfd, stopfd;
	uint16_t port;
	pthread_t acceptor;
	pthread_mutex_t mu;         /* guards @conns */
	struct srv_conn *conns;
};

static int send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int recv_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = recv(fd, p, len, MSG_WAITALL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ECONNRESET;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* flush - hand the gathered replies to the socket, then drop the read lock. */
static int flush(struct srv_conn *c)
{
	struct msghdr msg = { .msg_iov = c->iov, .msg_iovlen = c->niov };
	size_t rest = c->out_bytes, off = 0;
	ssize_t n;
	unsigned i;
	int ret = 0;

	if (!c->niov)
		goto out_unlock;
	do
		n = sendmsg(c->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
		ret = -errno;
		goto out_unlock;
	}
	if (n > 0)
		rest -= (size_t)n;
	if (rest) { /* copy what is left aside, so the lock is not held while waiting */
		size_t skip = n > 0 ? (size_t)n : 0;

		for (i = 0; i < c->niov; i++) {
			size_t l = c->iov[i].iov_len;

			if (skip >= l) {
				skip -= l;
				continue;
			}
			memcpy(c->obuf + off, (uint8_t *)c->iov[i].iov_base + skip, l - skip);
			off += l - skip;
			skip = 0;
		}
	}
out_unlock:
	if (c->locked) {
		pthread_rwlock_unlock(&c->s->lock);
		c->locked = false;
	}
	c->niov = c->nrep = 0;
	c->out_bytes = 0;
	if (!ret && off)
		ret = send_all(c->fd, c->obuf, off);
	return ret;
}

static int acl_check(struct rdma_tcp_server *s, uint32_t node, uint64_t off, uint32_t len,
		     uint64_t key)
{
	uint64_t idx;

	if (off % RTM_PAGE_SIZE || off >= s->pool_len || len > s->pool_len - off)
		return -EACCES;
	idx = off / s->slab_size;
	if ((off + len - 1) / s->slab_size != idx)
		return -EACCES;
	if (!s->acl[idx].owner || s->acl[idx].owner != node || s->acl[idx].key != key)
		return -EACCES;
	return 0;
}

static void add_reply(struct srv_conn *c, uint64_t tag, int status, const void *data,
		      uint32_t len)
{
	uint8_t *h = c->hdr[c->nrep++];

	wire_put64(h, tag);
	wire_put32(h + 8, (uint32_t)-status);
	wire_put32(h + 12, len);
	c->iov[c->niov++] = (struct iovec){ h, RTCP_REPLY_SIZE };
	if (len)
		c->iov[c->niov++] = (struct iovec){ (void *)data, len };
	c->out_bytes += RTCP_REPLY_SIZE + len;
}

/* serve_one - handle the request whose header is at c->in + c->pos. Returns 0, or
 * -errno to close the connection. */
static int serve_one(struct srv_conn *c)
{
	struct rdma_tcp_server *s = c->s;
	const uint8_t *h = c->in + c->pos;
	uint16_t op = wire_get16(h), flags = wire_get16(h + 2);
	uint32_t len = wire_get32(h + 4);
	uint64_t off = wire_get64(h + 8), key = wire_get64(h + 16), tag = wire_get64(h + 24);
	const uint8_t *src = NULL;
	int ret, status;

	if ((op != RDMA_OP_READ && op != RDMA_OP_WRITE) || flags || !len ||
	    len % RTM_PAGE_SIZE || len > RDMA_MAX_IO) {
		log_warn("%s node %u: malformed request op %u flags %#x len %u, closing",
			 c->peer, c->node, op, flags, len);
		return -EPROTO;
	}
	c->pos += RTCP_REQ_SIZE;
	/* room for this reply in the gather list and the aside buffer */
	if (c->nrep == SRV_MAX_REPLIES ||
	    (op == RDMA_OP_READ && c->out_bytes + RTCP_REPLY_SIZE + len > SRV_OBUF_SIZE)) {
		ret = flush(c);
		if (ret)
			return ret;
	}
	if (op == RDMA_OP_WRITE) {
		size_t avail = c->in_len - c->pos;

		if (avail >= len) {
			src = c->in + c->pos;
			c->pos += len;
		} else {
			memcpy(c->wbuf, c->in + c->pos, avail);
			c->pos = c->in_len;
			ret = flush(c); /* about to block: drop the lock */
			if (!ret)
				ret = recv_all(c->fd, c->wbuf + avail, len - avail);
			if (ret)
				return ret;
			src = c->wbuf;
		}
	}
	if (!c->locked) {
		pthread_rwlock_rdlock(&s->lock);
		c->locked = true;
	}
	status = acl_check(s, c->node, off, len, key);
	if (status) {
		log_dbg("%s node %u: %s off %#llx len %u refused", c->peer, c->node,
			op == RDMA_OP_READ ? "READ" : "WRITE", (unsigned long long)off, len);
		add_reply(c, tag, status, NULL, 0);
	} else if (op == RDMA_OP_WRITE) {
		memcpy(s->pool + off, src, len);
		add_reply(c, tag, 0, NULL, 0);
	} else {
		add_reply(c, tag, 0, s->pool + off, len);
	}
	return 0;
}

static void serve(struct srv_conn *c)
{
	int ret = 0;

	for (;;) {
		ssize_t n;

		if (c->in_len - c->pos >= RTCP_REQ_SIZE) {
			ret = serve_one(c);
			if (ret)
				break;
			continue;
		}
		ret = flush(c); /* nothing complete left: send replies before waiting */
		if (ret)
			break;
		memmove(c->in, c->in + c->pos, c->in_len - c->pos);
		c->in_len -= c->pos;
		c->pos = 0;
		do
			n = recv(c->fd, c->in + c->in_len, SRV_IN_SIZE - c->in_len, 0);
		while (n < 0 && errno == EINTR);
		if (n <= 0) {
			ret = n < 0 ? -errno : 0;
			break;
		}
		c->in_len += (size_t)n;
	}
	flush(c);
	if (ret && ret != -ECONNRESET && ret != -EPIPE && ret != -EPROTO)
		log_warn("%s node %u: connection closed: %s", c->peer, c->node, strerror(-ret));
	else
		log_dbg("%s node %u: connection closed", c->peer, c->node);
}

/* hello - read the borrower's hello and answer it. */
static int hello(struct srv_conn *c)
{
	struct timeval tv = { SRV_HELLO_TIMEOUT_S, 0 }, zero = { 0, 0 };
	uint8_t h[RTCP_HELLO_SIZE], r[RTCP_HELLO_REPLY_SIZE];
	int ret, status = 0;

	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	ret = recv_all(c->fd, h, sizeof(h));
	if (ret) {
		log_warn("%s: no hello: %s", c->peer, strerror(-ret));
		return ret;
	}
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &zero, sizeof(zero));
	c->node = wire_get32(h + 8);
	if (wire_get32(h) != RTCP_MAGIC || wire_get16(h + 6) != 0)
		status = EPROTO;
	else if (wire_get16(h + 4) != RTCP_VERSION)
		status = EPROTONOSUPPORT;
	else if (!c->node || c->node == UINT32_MAX)
		status = EINVAL;
	wire_put32(r, RTCP_MAGIC);
	wire_put16(r + 4, RTCP_VERSION);
	wire_put16(r + 6, 0);
	wire_put32(r + 8, (uint32_t)status);
	ret = send_all(c->fd, r, sizeof(r));
	if (status) {
		log_warn("%s node %u: hello refused: %s", c->peer, c->node, strerror(status));
		return -status;
	}
	if (!ret)
		log_dbg("%s node %u: connected", c->peer, c->node);
	return ret;
}

static void *conn_main(void *arg)
{
	struct srv_conn *c = arg;

	if (!hello(c))
		serve(c);
	shutdown(c->fd, SHUT_RDWR); /* the peer sees the end now; close waits for the join */
	pthread_mutex_lock(&c->s->mu);
	c->done = true;
	pthread_mutex_unlock(&c->s->mu);
	return NULL;
}

static void conn_free(struct srv_conn *c)
{
	close(c->fd);
	free(c->in);
	free(c->wbuf);
	free(c->obuf);
	free(c);
}

/* reap_done - join and free connections whose thread has finished. */
static void reap_done(struct rdma_tcp_server *s)
{
	struct srv_conn **pp, *c, *dead = NULL;

	pthread_mutex_lock(&s->mu);
	for (pp = &s->conns; (c = *pp);) {
		if (c->done) {
			*pp = c->next;
			c->next = dead;
			dead = c;
		} else {
			pp = &c->next;
		}
	}
	pthread_mutex_unlock(&s->mu);
	while ((c = dead)) {
		dead = c->next;
		pthread_join(c->thread, NULL);
		conn_free(c);
	}
}

static void start_conn(struct rdma_tcp_server *s, int fd, const struct sockaddr_in *sa)
{
	struct srv_conn *c = calloc(1, sizeof(*c));
	int one = 1, ret;

	if (!c)
		goto out_close;
	c->s = s;
	c->fd = fd;
	snprintf(c->peer, sizeof(c->peer), "fd %d %s:%u", fd,
		 sa->sin_family == AF_INET ? inet_ntoa(sa->sin_addr) : "?", ntohs(sa->sin_port));
	c->in = malloc(SRV_IN_SIZE);
	c->wbuf = malloc(RDMA_MAX_IO);
	c->obuf = malloc(SRV_OBUF_SIZE);
	if (!c->in || !c->wbuf || !c->obuf)
		goto out_free;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	pthread_mutex_lock(&s->mu);
	ret = pthread_create(&c->thread, NULL, conn_main, c);
	if (!ret) {
		c->next = s->conns;
		s->conns = c;
	}
	pthread_mutex_unlock(&s->mu);
	if (!ret)
		return;
	log_err("%s: pthread_create: %s", c->peer, strerror(ret));
out_free:
	conn_free(c);
	return;
out_close:
	close(fd);
}

static void *acceptor_main(void *arg)
{
	struct rdma_tcp_server *s = arg;

	for (;;) {
		struct pollfd pfd[2] = { { s->lfd, POLLIN, 0 }, { s->stopfd, POLLIN, 0 } };
		struct sockaddr_in sa;
		socklen_t sl = sizeof(sa);
		int fd;

		if (poll(pfd, 2, -1) < 0 && errno != EINTR) {
			log_err("port %u: poll: %s", s->port, strerror(errno));
			break;
		}
		if (pfd[1].revents)
			break;
		if (!(pfd[0].revents & POLLIN))
			continue;
		memset(&sa, 0, sizeof(sa));
		fd = accept4(s->lfd, (struct sockaddr *)&sa, &sl, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOMEM) {
				log_err("port %u: accept: %s", s->port, strerror(errno));
				usleep(100000);
			}
			continue;
		}
		reap_done(s);
		start_conn(s, fd, &sa);
	}
	return NULL;
}

struct rdma_tcp_server *rdma_tcp_server_create(const char *host, uint16_t port, void *pool,
					       uint64_t pool_len, uint64_t slab_size)
{
	struct rdma_tcp_server *s;
	pthread_rwlockattr_t ra;
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int ret;

	if (!pool || slab_size < RTM_PAGE_SIZE || slab_size % RTM_PAGE_SIZE || !pool_len ||
	    pool_len % slab_size || pool_len / slab_size > UINT32_MAX) {
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		errno = ENOMEM;
		return NULL;
	}
	s->pool = pool;
	s->pool_len = pool_len;
	s->slab_size = slab_size;
	s->n_slabs = (unsigned)(pool_len / slab_size);
	ret = -ENOMEM;
	s->acl = calloc(s->n_slabs, sizeof(*s->acl));
	if (!s->acl)
		goto out_free;
	/* writers first: set_acl must not starve behind a stream of requests */
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&s->lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&s->mu, NULL);

	s->lfd = net_listen_tcp(host, port);
	if (s->lfd < 0) {
		ret = s->lfd;
		log_err("listen %s:%u: %s", host, port, strerror(-ret));
		goto out_locks;
	}
	fcntl(s->lfd, F_SETFL, fcntl(s->lfd, F_GETFL) | O_NONBLOCK);
	if (getsockname(s->lfd, (struct sockaddr *)&sa, &sl) == 0)
		s->port = ntohs(sa.sin_port); /* sin_port sits at the same place for IPv6 */
	s->stopfd = eventfd(0, EFD_CLOEXEC);
	if (s->stopfd < 0) {
		ret = -errno;
		goto out_close_listen;
	}
	ret = -pthread_create(&s->acceptor, NULL, acceptor_main, s);
	if (ret)
		goto out_close_stop;
	log_info("serving %u slabs of %llu bytes on %s:%u", s->n_slabs,
		 (unsigned long long)slab_size, host, s->port);
	return s;

out_close_stop:
	close(s->stopfd);
out_close_listen:
	close(s->lfd);
out_locks:
	pthread_mutex_destroy(&s->mu);
	pthread_rwlock_destroy(&s->lock);
out_free:
	free(s->acl);
	free(s);
	errno = -ret;
	return NULL;
}

int rdma_tcp_server_set_acl(struct rdma_tcp_server *s, unsigned idx, uint32_t owner,
			    uint64_t key)
{
	if (idx >= s->n_slabs)
		return -EINVAL;
	pthread_rwlock_wrlock(&s->lock);
	s->acl[idx].owner = owner;
	s->acl[idx].key = key;
	pthread_rwlock_unlock(&s->lock);
	log_dbg("slab %u: owner %u", idx, owner);
	return 0;
}

uint16_t rdma_tcp_server_port(const struct rdma_tcp_server *s)
{
	return s->port;
}

void rdma_tcp_server_destroy(struct rdma_tcp_server *s)
{
	struct srv_conn *c;
	uint64_t one = 1;

	if (!s)
		return;
	if (write(s->stopfd, &one, sizeof(one)) != sizeof(one))
		log_err("port %u: cannot stop the acceptor: %s", s->port, strerror(errno));
	pthread_join(s->acceptor, NULL);
	pthread_mutex_lock(&s->mu);
	for (c = s->conns; c; c = c->next)
		shutdown(c->fd, SHUT_RDWR);
	pthread_mutex_unlock(&s->mu);
	while ((c = s->conns)) {
		s->conns = c->next;
		pthread_join(c->thread, NULL);
		conn_free(c);
	}
	close(s->stopfd);
	close(s->lfd);
	pthread_mutex_destroy(&s->mu);
	pthread_rwlock_destroy(&s->lock);
	free(s->acl);
	free(s);
}
