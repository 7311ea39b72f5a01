/* tmemshim.c - libtmemshim: the tmem API (tmemshim.h) as a client of rtmem-borrower.
 *
 * One request at a time over a blocking unix socket; page data goes through the
 * shared slot buffer the borrower passed at HELLO. Any transport or protocol error
 * breaks the connection for good: later calls return -ENOTCONN.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/common.h"
#include "tmemshim/tmemshim-proto.h"

#define TMEM_API __attribute__((visibility("default")))
#define DEFAULT_SOCKET "/run/rtmem/borrower.sock"
#define REPLY_TIMEOUT_S 30

struct tmem_client {
	int fd;          /* -1 once broken */
	uint32_t id;
	uint8_t *slots;  /* TMP_N_SLOTS pages shared with the borrower */
	uint8_t buf[TMP_MAX_FRAME];
};

static void client_break(struct tmem_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static int send_all(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t r = send(fd, p, len, MSG_NOSIGNAL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

static int recv_all(int fd, uint8_t *p, size_t len)
{
	while (len) {
		ssize_t r = recv(fd, p, len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		if (r == 0)
			return -ECONNRESET;
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

/* call - send request @req and receive its reply (command @want) into @rep. */
static int call(struct tmem_client *c, const struct tmp_msg *req, enum tmp_cmd want,
		struct tmp_msg *rep)
{
	if (c->fd < 0)
		return -ENOTCONN;
	int len = tmp_encode(req, c->buf, sizeof(c->buf));
	if (len < 0)
		return len;
	int rc = send_all(c->fd, c->buf, (size_t)len);
	if (!rc)
		rc = recv_all(c->fd, c->buf, TMP_HDR_SIZE);
	if (!rc) {
		uint32_t flen = wire_get32(c->buf);
		if (flen < TMP_HDR_SIZE || flen > sizeof(c->buf))
			rc = -EPROTO;
		else
			rc = recv_all(c->fd, c->buf + TMP_HDR_SIZE, flen - TMP_HDR_SIZE);
	}
	if (!rc && (tmp_decode(c->buf, sizeof(c->buf), rep, NULL) <= 0 || rep->cmd != want))
		rc = -EPROTO;
	if (rc)
		client_break(c);
	return rc;
}

static int hello(struct tmem_client *c, const char *name)
{
	struct tmp_msg m = { .cmd = TMP_HELLO };
	m.hello.magic = TMP_MAGIC;
	m.hello.version = TMP_VERSION;
	strcpy(m.hello.name, name);
	int len = tmp_encode(&m, c->buf, sizeof(c->buf));
	if (len < 0)
		return len;
	int rc = send_all(c->fd, c->buf, (size_t)len);
	if (rc)
		return rc;

	/* HELLO_ACK is a fixed-size frame; on success the memfd comes with it. */
	int memfd = -1;
	size_t ack_len = TMP_HDR_SIZE + 12;
	rc = net_recv_fd(c->fd, &memfd, c->buf, ack_len);
	if (rc < 0)
		return rc == -EAGAIN ? -ETIMEDOUT : rc;
	if (tmp_decode(c->buf, ack_len, &m, NULL) != (int)ack_len || m.cmd != TMP_HELLO_ACK)
		rc = -EPROTO;
	else if (m.hello_ack.status)
		rc = -(int)m.hello_ack.status;
	else if (memfd < 0)
		rc = -EPROTO;
	if (rc)
		goto out_close_memfd;

	size_t size = (size_t)TMP_N_SLOTS * TMEM_PAGE_SIZE;
	struct stat st;
	if (fstat(memfd, &st) < 0) {
		rc = -errno;
		goto out_close_memfd;
	}
	if ((uint64_t)st.st_size < size) {
		rc = -EPROTO;
		goto out_close_memfd;
	}
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (p == MAP_FAILED) {
		rc = -errno;
		goto out_close_memfd;
	}
	c->slots = p;
	c->id = m.hello_ack.client_id;
out_close_memfd:
	if (memfd >= 0)
		close(memfd);
	return rc;
}

TMEM_API int tmem_connect(const char *socket_path, const char *name, struct tmem_client **out)
{
	if (!socket_path)
		socket_path = getenv("RTMEM_SOCKET");
	if (!socket_path || !*socket_path)
		socket_path = DEFAULT_SOCKET;
	if (!name)
		name = "";
	if (strlen(name) >= TMP_NAME_LEN)
		return -ENAMETOOLONG;

	struct tmem_client *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	int rc = net_connect_unix(socket_path);
	if (rc < 0)
		goto out_free;
	c->fd = rc;
	struct timeval tv = { .tv_sec = REPLY_TIMEOUT_S };
	if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		rc = -errno;
		goto out_close;
	}
	rc = hello(c, name);
	if (rc)
		goto out_close;
	*out = c;
	return 0;

out_close:
	close(c->fd);
out_free:
	free(c);
	return rc;
}

TMEM_API void tmem_disconnect(struct tmem_client *c)
{
	if (!c)
		return;
	client_break(c);
	munmap(c->slots, (size_t)TMP_N_SLOTS * TMEM_PAGE_SIZE);
	free(c);
}

TMEM_API uint32_t tmem_client_id(const struct tmem_client *c)
{
	return c->id;
}

TMEM_API int tmem_new_pool(struct tmem_client *c, uint32_t flags, uint64_t uuid)
{
	struct tmp_msg rep, req = { .cmd = TMP_NEW_POOL };
	req.new_pool.flags = flags;
	req.new_pool.uuid = uuid;
	int rc = call(c, &req, TMP_NEW_POOL_REPLY, &rep);
	if (rc)
		return rc;
	if (rep.pool_reply.status)
		return -(int)rep.pool_reply.status;
	if (rep.pool_reply.pool > INT32_MAX) {
		client_break(c);
		return -EPROTO;
	}
	return (int)rep.pool_reply.pool;
}

TMEM_API int tmem_destroy_pool(struct tmem_client *c, uint32_t pool)
{
	struct tmp_msg rep, req = { .cmd = TMP_DESTROY_POOL };
	req.destroy_pool.pool = pool;
	int rc = call(c, &req, TMP_DESTROY_POOL_REPLY, &rep);
	return rc ? rc : -(int)rep.pool_reply.status;
}

static bool op_valid(const struct tmem_op *op)
{
	switch (op->cmd) {
	case TMEM_PUT:
	case TMEM_GET:
		return op->page != NULL;
	case TMEM_FLUSH_PAGE:
	case TMEM_FLUSH_OBJECT:
		return true;
	}
	return false;
}

/* run_chunk - send the @n ops ops[idx[i]] (n <= TMP_N_SLOTS) as one BATCH; op i
 * uses slot i. Returns the number that succeeded or -errno. */
static int run_chunk(struct tmem_client *c, struct tmem_op *ops, const unsigned *idx,
		     unsigned n)
{
	struct tmp_msg rep, req = { .cmd = TMP_BATCH };
	req.batch.n = n;
	for (unsigned i = 0; i < n; i++) {
		const struct tmem_op *op = &ops[idx[i]];
		req.batch.ops[i] = (struct tmp_op){ .cmd = (uint16_t)op->cmd, .slot = (uint16_t)i,
						    .pool = op->pool, .oid = op->oid,
						    .index = op->index };
		if (op->cmd == TMEM_PUT)
			memcpy(c->slots + (size_t)i * TMEM_PAGE_SIZE, op->page, TMEM_PAGE_SIZE);
	}
	int rc = call(c, &req, TMP_BATCH_REPLY, &rep);
	if (!rc && rep.batch_reply.n != n) {
		client_break(c);
		rc = -EPROTO;
	}
	if (rc)
		return rc;
	int ok = 0;
	for (unsigned i = 0; i < n; i++) {
		struct tmem_op *op = &ops[idx[i]];
		op->status = -(int)rep.batch_reply.status[i];
		if (op->status)
			continue;
		ok++;
		if (op->cmd == TMEM_GET)
			memcpy(op->page, c->slots + (size_t)i * TMEM_PAGE_SIZE, TMEM_PAGE_SIZE);
	}
	return ok;
}

TMEM_API int tmem_batch(struct tmem_client *c, struct tmem_op *ops, unsigned n)
{
	unsigned idx[TMP_N_SLOTS], k = 0, i = 0;
	int ok = 0;

	for (unsigned j = 0; j < n; j++)
		ops[j].status = -EIO;
	while (i < n || k) {
		if (i < n && k < TMP_N_SLOTS) {
			if (op_valid(&ops[i]))
				idx[k++] = i;
			else
				ops[i].status = -EINVAL;
			i++;
			continue;
		}
		int rc = run_chunk(c, ops, idx, k);
		if (rc < 0)
			return rc;
		ok += rc;
		k = 0;
	}
	return ok;
}

static int one(struct tmem_client *c, enum tmem_cmd cmd, uint32_t pool, uint64_t oid,
	       uint32_t index, void *page)
{
	struct tmem_op op = { .cmd = cmd, .pool = pool, .oid = oid, .index = index, .page = page };
	int rc = tmem_batch(c, &op, 1);
	return rc < 0 ? rc : op.status;
}

TMEM_API int tmem_put_page(struct tmem_client *c, uint32_t pool, uint64_t oid,
			   uint32_t index, const void *page)
{
	return one(c, TMEM_PUT, pool, oid, index, (void *)page);
}

TMEM_API int tmem_get_page(struct tmem_client *c, uint32_t pool, uint64_t oid,
			   uint32_t index, void *page)
{
	return one(c, TMEM_GET, pool, oid, index, page);
}

TMEM_API int tmem_flush_page(struct tmem_client *c, uint32_t pool, uint64_t oid,
			     uint32_t index)
{
	return one(c, TMEM_FLUSH_PAGE, pool, oid, index, NULL);
}

TMEM_API int tmem_flush_object(struct tmem_client *c, uint32_t pool, uint64_t oid)
{
	return one(c, TMEM_FLUSH_OBJECT, pool, oid, 0, NULL);
}
