/* clients.c - the borrower's server for libtmemshim clients (tmemshim-proto.h).
 *
 * A non-blocking unix listen socket on the evloop; per connection an rx buffer, a
 * one-reply tx buffer (while a reply is unsent the connection is not read: a client
 * that does not read its replies stalls only itself) and a memfd of TMP_N_SLOTS
 * pages, sealed against resizing so the client cannot make our mapping fault. A
 * malformed frame closes that client only; closing detaches it from the store,
 * which frees its private pools.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "borrower/borrower-internal.h"
#include "common/common.h"
#include "tmemshim/tmemshim-proto.h"

#define LOG_AREA "clients"
#define CLIENTS_MAX 256
#define SLOTS_SIZE ((size_t)TMP_N_SLOTS * TMEM_PAGE_SIZE)

struct conn {
	struct clients *cs;
	int fd;
	unsigned idx;              /* in cs->conns */
	struct bclient *bc;        /* NULL until HELLO */
	uint32_t id;
	char name[TMP_NAME_LEN];
	uint8_t *slots;            /* SLOTS_SIZE, shared with the client */
	uint8_t rx[TMP_MAX_FRAME];
	size_t rx_len;
	uint8_t tx[TMP_MAX_FRAME];
	size_t tx_len, tx_off;
	uint32_t events;           /* what the evloop waits for: EPOLLIN or EPOLLOUT */
};

struct clients {
	struct borrower *b;
	struct evloop *ev;
	int lfd;
	char path[108];
	unsigned n;
	struct conn *conns[CLIENTS_MAX];
};

static void conn_close(struct conn *c, const char *why)
{
	struct clients *cs = c->cs;

	if (why)
		log_warn("client %u (%s): %s, closing", c->id, c->bc ? c->name : "-", why);
	else
		log_info("client %u (%s): disconnected", c->id, c->bc ? c->name : "-");
	evloop_del_fd(cs->ev, c->fd);
	close(c->fd);
	if (c->bc)
		borrower_client_detach(cs->b, c->bc);
	if (c->slots)
		munmap(c->slots, SLOTS_SIZE);
	cs->conns[c->idx] = NULL;
	cs->n--;
	free(c);
}

/* slots_new - a sealed memfd of SLOTS_SIZE mapped at c->slots. Returns the fd. */
static int slots_new(struct conn *c)
{
	char name[48];
	snprintf(name, sizeof(name), "rtmem-tmem-%u", c->id);
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	int rc;
	if (ftruncate(fd, (off_t)SLOTS_SIZE) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		rc = -errno;
		goto out_close;
	}
	void *p = mmap(NULL, SLOTS_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		rc = -errno;
		goto out_close;
	}
	c->slots = p;
	return fd;
out_close:
	close(fd);
	return rc;
}

/* handle_hello - attach the client and send HELLO_ACK with the memfd. A refused
 * client gets the ack with a status and is then closed. Returns 0 or -1 (closed). */
static int handle_hello(struct conn *c, const struct tmp_msg *m)
{
	struct tmp_msg ack = { .cmd = TMP_HELLO_ACK };
	int memfd = -1;
	const char *why = NULL;

	memcpy(c->name, m->hello.name, TMP_NAME_LEN);
	if (m->hello.version != TMP_VERSION) {
		ack.hello_ack.status = EPROTONOSUPPORT;
		why = "protocol version not supported";
	} else if (!(c->bc = borrower_client_attach(c->cs->b, c->name))) {
		ack.hello_ack.status = errno > 0 && errno <= TMP_MAX_STATUS ? (uint32_t)errno : EIO;
		why = "refused by the store";
	} else {
		c->id = borrower_client_id(c->bc);
		memfd = slots_new(c);
		if (memfd < 0) {
			ack.hello_ack.status = (uint32_t)-memfd;
			why = "cannot create the shared buffer";
		}
	}
	ack.hello_ack.client_id = c->id;
	ack.hello_ack.n_slots = TMP_N_SLOTS;
	int len = tmp_encode(&ack, c->tx, sizeof(c->tx));
	int rc = len < 0 ? len : net_send_fd(c->fd, memfd, c->tx, (size_t)len); /* -1: no fd */
	if (memfd >= 0)
		close(memfd);
	if (!why && rc < 0)
		why = "cannot send HELLO_ACK";
	if (why) {
		conn_close(c, why);
		return -1;
	}
	log_info("client %u (%s): connected", c->id, c->name);
	return 0;
}

static void handle_batch(struct conn *c, const struct tmp_msg *m, struct tmp_msg *rep)
{
	struct tmem_op ops[TMEM_MAX_BATCH];
	uint32_t n = m->batch.n;

	for (uint32_t i = 0; i < n; i++) {
		const struct tmp_op *o = &m->batch.ops[i];
		ops[i] = (struct tmem_op){ .cmd = (enum tmem_cmd)o->cmd, .pool = o->pool,
					   .oid = o->oid, .index = o->index,
					   .page = c->slots + (size_t)o->slot * TMEM_PAGE_SIZE };
	}
	borrower_tmem(c->cs->b, c->bc, ops, n);
	rep->cmd = TMP_BATCH_REPLY;
	rep->batch_reply.n = n;
	for (uint32_t i = 0; i < n; i++) {
		int st = ops[i].status;
		rep->batch_reply.status[i] = st <= 0 && st >= -TMP_MAX_STATUS ? (uint32_t)-st : EIO;
	}
}

static uint32_t status_of(int rc)
{
	return rc >= 0 ? 0 : rc >= -TMP_MAX_STATUS ? (uint32_t)-rc : EIO;
}

/* handle - run one decoded request and encode its reply into c->tx. Returns 0, or
 * -1 if the connection was closed. */
static int handle(struct conn *c, const struct tmp_msg *m)
{
	struct tmp_msg rep = { 0 };
	int rc;

	if (!c->bc) {
		if (m->cmd != TMP_HELLO) {
			conn_close(c, "first frame is not HELLO");
			return -1;
		}
		return handle_hello(c, m);
	}
	switch (m->cmd) {
	case TMP_NEW_POOL:
		rc = m->new_pool.flags & ~TMP_POOL_FLAGS
			     ? -EINVAL
			     : borrower_pool_new(c->cs->b, c->bc, m->new_pool.flags, m->new_pool.uuid);
		rep.cmd = TMP_NEW_POOL_REPLY;
		rep.pool_reply.status = status_of(rc);
		rep.pool_reply.pool = rc >= 0 ? (uint32_t)rc : 0;
		break;
	case TMP_DESTROY_POOL:
		rc = borrower_pool_destroy(c->cs->b, c->bc, m->destroy_pool.pool);
		rep.cmd = TMP_DESTROY_POOL_REPLY;
		rep.pool_reply.status = status_of(rc);
		break;
	case TMP_BATCH:
		handle_batch(c, m, &rep);
		break;
	default:
		conn_close(c, m->cmd == TMP_HELLO ? "second HELLO" : "not a request");
		return -1;
	}
	rc = tmp_encode(&rep, c->tx, sizeof(c->tx));
	if (rc < 0) {
		log_err("client %u (%s): cannot encode %s: %s", c->id, c->name,
			tmp_cmd_name(rep.cmd), strerror(-rc));
		conn_close(c, "internal error");
		return -1;
	}
	c->tx_len = (size_t)rc;
	c->tx_off = 0;
	return 0;
}

/* flush_tx - send what is pending. 0 all sent, 1 socket full, -1 closed. */
static int flush_tx(struct conn *c)
{
	int rc = net_send_pending(c->fd, c->tx, &c->tx_off, c->tx_len);
	if (rc < 0) {
		conn_close(c, strerror(-rc));
		return -1;
	}
	if (rc == 0)
		c->tx_len = c->tx_off = 0;
	return rc;
}

/* serve - handle buffered frames while replies go out; then wait for whichever of
 * EPOLLIN / EPOLLOUT is needed. Returns -1 if the connection was closed. */
static int serve(struct conn *c)
{
	struct tmp_msg m;
	const char *why = "?";
	int rc;

	while ((rc = flush_tx(c)) == 0) {
		int len = tmp_decode(c->rx, c->rx_len, &m, &why);
		if (len < 0) {
			conn_close(c, why);
			return -1;
		}
		if (len == 0)
			break;
		if (handle(c, &m) < 0)
			return -1;
		memmove(c->rx, c->rx + len, c->rx_len - (size_t)len);
		c->rx_len -= (size_t)len;
	}
	if (rc < 0)
		return -1;
	uint32_t want = rc ? EPOLLOUT : EPOLLIN;
	if (want != c->events) {
		if (evloop_mod_fd(c->cs->ev, c->fd, want) < 0) {
			conn_close(c, "cannot change evloop events");
			return -1;
		}
		c->events = want;
	}
	return 0;
}

static void on_conn(struct evloop *ev, int fd, uint32_t events, void *arg)
{
	struct conn *c = arg;

	if (events & EPOLLIN) {
		/* rx never fills: a whole frame fits and is consumed before reading more */
		ssize_t r = recv(fd, c->rx + c->rx_len, sizeof(c->rx) - c->rx_len, MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
			conn_close(c, r == 0 || errno == ECONNRESET ? NULL : strerror(errno));
			return;
		}
		if (r > 0)
			c->rx_len += (size_t)r;
	} else if (events & (EPOLLERR | EPOLLHUP)) {
		conn_close(c, NULL);
		return;
	}
	serve(c);
}

static void on_listen(struct evloop *ev, int lfd, uint32_t events, void *arg)
{
	struct clients *cs = arg;

	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warn("accept on %s: %s", cs->path, strerror(errno));
			if (errno != EINTR && errno != ECONNABORTED)
				return;
			continue;
		}
		unsigned i = 0;
		while (i < CLIENTS_MAX && cs->conns[i])
			i++;
		struct conn *c = i < CLIENTS_MAX ? calloc(1, sizeof(*c)) : NULL;
		if (!c) {
			log_warn("client on fd %d refused: %s", fd,
				 i < CLIENTS_MAX ? "out of memory" : "too many clients");
			close(fd);
			continue;
		}
		*c = (struct conn){ .cs = cs, .fd = fd, .idx = i, .events = EPOLLIN };
		int rc = evloop_add_fd(ev, fd, EPOLLIN, on_conn, c);
		if (rc < 0) {
			log_warn("client on fd %d refused: evloop: %s", fd, strerror(-rc));
			close(fd);
			free(c);
			continue;
		}
		cs->conns[i] = c;
		cs->n++;
	}
}

struct clients *clients_start(struct borrower *b, struct evloop *ev, const char *path)
{
	struct clients *cs = calloc(1, sizeof(*cs));
	if (!cs)
		return NULL;
	if (strlen(path) >= sizeof(cs->path)) {
		log_err("client socket %s: path too long", path);
		goto out_free;
	}
	strcpy(cs->path, path);
	cs->b = b;
	cs->ev = ev;
	cs->lfd = net_listen_unix(path);
	if (cs->lfd < 0) {
		log_err("client socket %s: %s", path, strerror(-cs->lfd));
		goto out_free;
	}
	int fl = fcntl(cs->lfd, F_GETFL);
	if (fl < 0 || fcntl(cs->lfd, F_SETFL, fl | O_NONBLOCK) < 0) {
		log_err("client socket %s: O_NONBLOCK: %s", path, strerror(errno));
		goto out_close;
	}
	int rc = evloop_add_fd(ev, cs->lfd, EPOLLIN, on_listen, cs);
	if (rc < 0) {
		log_err("client socket %s: evloop: %s", path, strerror(-rc));
		goto out_close;
	}
	log_info("serving tmem clients on %s", path);
	return cs;

out_close:
	close(cs->lfd);
	unlink(path);
out_free:
	free(cs);
	return NULL;
}

void clients_stop(struct clients *cs)
{
	if (!cs)
		return;
	for (unsigned i = 0; i < CLIENTS_MAX; i++)
		if (cs->conns[i])
			conn_close(cs->conns[i], NULL);
	evloop_del_fd(cs->ev, cs->lfd);
	close(cs->lfd);
	unlink(cs->path);
	free(cs);
}
