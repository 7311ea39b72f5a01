/* msgconn.c - a connected stream socket carrying wire frames: non-blocking reads
 * into a receive buffer that always has room for one whole frame, decoding of
 * buffered frames, and whole-frame sends that wait (bounded) while the socket
 * is full.
 */
#define LOG_AREA "msgconn"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MSGCONN_RBUF (2 * WIRE_MAX_FRAME)
#define MSGCONN_SEND_TIMEOUT_MS 5000

struct msgconn {
	int fd;
	char peer[64];
	size_t start, end;          /* unread bytes are rbuf[start, end) */
	uint8_t rbuf[MSGCONN_RBUF];
	uint8_t wbuf[WIRE_MAX_FRAME];
};

struct msgconn *msgconn_new(int fd, const char *peer)
{
	struct msgconn *c;
	int fl = fd < 0 ? -1 : fcntl(fd, F_GETFL);

	/* the fd is ours from here on, also when we fail */
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || !(c = calloc(1, sizeof(*c)))) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	c->fd = fd;
	snprintf(c->peer, sizeof(c->peer), "%s", peer ? peer : "?");
	return c;
}

void msgconn_free(struct msgconn *c)
{
	if (!c)
		return;
	close(c->fd);
	free(c);
}

int msgconn_fd(const struct msgconn *c)
{
	return c->fd;
}

const char *msgconn_peer(const struct msgconn *c)
{
	return c->peer;
}

int msgconn_fill(struct msgconn *c)
{
	if (c->start == c->end) {
		c->start = c->end = 0;
	} else if (c->end == MSGCONN_RBUF || MSGCONN_RBUF - c->start < WIRE_MAX_FRAME) {
		memmove(c->rbuf, c->rbuf + c->start, c->end - c->start);
		c->end -= c->start;
		c->start = 0;
	}
	size_t before = c->end;

	while (c->end < MSGCONN_RBUF) {
		ssize_t n = read(c->fd, c->rbuf + c->end, MSGCONN_RBUF - c->end);

		/* EOF right after data: report the data now, the EOF on the next call */
		if (n == 0)
			return c->end > before ? 0 : -ECONNRESET;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -errno;
		}
		c->end += (size_t)n;
	}
	return 0; /* buffer full: the caller decodes, then fills again */
}

int msgconn_next(struct msgconn *c, struct wire_msg *m)
{
	int n = wire_decode(c->rbuf + c->start, c->end - c->start, m);

	if (n < 0) {
		log_warn("%s: bad frame: %s", c->peer, strerror(-n));
		return n;
	}
	if (n == 0)
		return 0;
	c->start += (size_t)n;
	log_dbg("%s: got %s", c->peer, wire_cmd_name(m->cmd));
	return 1;
}

int msgconn_send(struct msgconn *c, const struct wire_msg *m)
{
	uint64_t deadline = evloop_now_ms() + MSGCONN_SEND_TIMEOUT_MS;
	int len = wire_encode(m, c->wbuf, sizeof(c->wbuf));
	size_t off = 0;

	if (len < 0) {
		log_err("%s: cannot encode %s: %s", c->peer, wire_cmd_name(m->cmd),
			strerror(-len));
		return len;
	}
	if (rtm_fault("msgconn_send"))
		return -EIO;
	while (off < (size_t)len) {
		ssize_t n = send(c->fd, c->wbuf + off, (size_t)len - off, MSG_NOSIGNAL);

		if (n >= 0) {
			off += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		uint64_t now = evloop_now_ms();
		struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };
		if (now >= deadline || poll(&pfd, 1, (int)(deadline - now)) == 0) {
			log_warn("%s: send of %s timed out", c->peer, wire_cmd_name(m->cmd));
			return -ETIMEDOUT;
		}
	}
	log_dbg("%s: sent %s", c->peer, wire_cmd_name(m->cmd));
	return 0;
}

int msgconn_recv(struct msgconn *c, struct wire_msg *m, int timeout_ms)
{
	/* timeout_ms < 0: wait forever */
	uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : evloop_now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		int rc = msgconn_next(c, m);

		if (rc)
			return rc < 0 ? rc : 0;
		uint64_t now = evloop_now_ms();
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		if (now >= deadline)
			return -ETIMEDOUT;
		rc = poll(&pfd, 1, timeout_ms < 0 ? -1 : (int)(deadline - now));
		if (rc < 0 && errno != EINTR)
			return -errno;
		if (rc > 0 && (rc = msgconn_fill(c)) < 0)
			return rc;
	}
}

void msgconn_send_error(struct msgconn *c, int code, const char *fmt, ...)
{
	struct wire_msg m = { .cmd = WIRE_ERROR };
	va_list ap;

	m.error.code = (uint32_t)(code < 0 ? -code : code);
	va_start(ap, fmt);
	vsnprintf(m.error.text, sizeof(m.error.text), fmt, ap);
	va_end(ap);
	(void)msgconn_send(c, &m);
}
