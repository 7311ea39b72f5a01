/* net.c - socket helpers: TCP listen/connect by host:port through getaddrinfo,
 * unix-domain sockets, SCM_RIGHTS fd passing and full-length blocking I/O loops.
 */
#define LOG_AREA "net"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* resolve - getaddrinfo for a TCP endpoint; @host NULL, "" or "*" = any (passive). */
static int resolve(const char *host, uint16_t port, bool passive, struct addrinfo **res)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	char service[8];
	int rc;

	if (passive)
		hints.ai_flags = AI_PASSIVE;
	if (host && (!*host || !strcmp(host, "*")))
		host = NULL;
	snprintf(service, sizeof(service), "%u", port);
	hints.ai_flags |= AI_NUMERICSERV;
	rc = getaddrinfo(host, service, &hints, res);
	if (rc == EAI_SYSTEM)
		return -errno;
	if (rc == EAI_NONAME || rc == EAI_FAIL || rc == EAI_NODATA)
		return -EHOSTUNREACH;
	return rc ? -EAGAIN : 0; /* EAI_AGAIN, EAI_MEMORY, ...: try again later */
}

int net_listen_tcp(const char *host, uint16_t port)
{
	struct addrinfo *res, *ai;
	int fd = -EADDRNOTAVAIL, one = 1;
	int rc = resolve(host, port, true, &res);

	if (rc)
		return rc;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			fd = -errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (!bind(fd, ai->ai_addr, ai->ai_addrlen) && !listen(fd, 128))
			break;
		rc = -errno;
		close(fd);
		fd = rc;
	}
	freeaddrinfo(res);
	if (fd < 0)
		log_err("cannot listen on %s:%u: %s", host ? host : "*", port, strerror(-fd));
	return fd;
}

/* connect_one - non-blocking connect bounded by @timeout_ms; returns a blocking fd. */
static int connect_one(const struct addrinfo *ai, int timeout_ms)
{
	struct pollfd pfd;
	int fd, err = 0, one = 1;
	socklen_t elen = sizeof(err);

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
		    ai->ai_protocol);
	if (fd < 0)
		return -errno;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS) {
			err = errno;
			goto out_close;
		}
		pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
		int n = poll(&pfd, 1, timeout_ms);
		if (n <= 0) {
			err = n ? errno : ETIMEDOUT;
			goto out_close;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
			err = errno;
		if (err)
			goto out_close;
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		err = errno;
		goto out_close;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
out_close:
	close(fd);
	return -err;
}

int net_connect_tcp(const char *host, uint16_t port, int timeout_ms)
{
	struct addrinfo *res, *ai;
	int fd = -EHOSTUNREACH;
	int rc = resolve(host, port, false, &res);

	if (rc)
		return rc;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = connect_one(ai, timeout_ms);
		if (fd >= 0)
			break;
	}
	freeaddrinfo(res);
	if (fd < 0)
		log_dbg("connect to %s:%u: %s", host, port, strerror(-fd));
	return fd;
}

static int unix_addr(const char *path, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (!path || !*path || strlen(path) >= sizeof(sun->sun_path))
		return -ENAMETOOLONG;
	strcpy(sun->sun_path, path);
	return 0;
}

int net_connect_unix(const char *path)
{
	struct sockaddr_un sun;
	int fd, rc = unix_addr(path, &sun);

	if (rc)
		return rc;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

int net_listen_unix(const char *path)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd, rc = unix_addr(path, &sun);

	if (rc)
		return rc;
	if (!lstat(path, &st) && S_ISSOCK(st.st_mode)) {
		/* a live server still answers: do not steal its socket */
		fd = net_connect_unix(path);
		if (fd >= 0) {
			close(fd);
			log_err("%s: another server is listening", path);
			return -EADDRINUSE;
		}
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 128) < 0) {
		rc = -errno;
		log_err("cannot listen on %s: %s", path, strerror(-rc));
		close(fd);
		return rc;
	}
	return fd;
}

/* wait_fd - wait for @events on a non-blocking fd after EAGAIN. */
static int wait_fd(int fd, short events)
{
	struct pollfd pfd = { .fd = fd, .events = events };

	if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
		return -errno;
	return 0;
}

/* io_once - one send (or write, for a non-socket) or read; -1 + errno on failure,
 * 0 on EOF when reading. */
static ssize_t io_once(int fd, uint8_t *p, size_t len, bool out)
{
	ssize_t n;

	if (!out)
		return read(fd, p, len);
	n = send(fd, p, len, MSG_NOSIGNAL);
	if (n < 0 && errno == ENOTSOCK)
		n = write(fd, p, len);
	return n;
}

/* io_full - move all @len bytes in direction @out, waiting out EAGAIN and EINTR. */
static int io_full(int fd, uint8_t *p, size_t len, bool out)
{
	while (len) {
		ssize_t n = io_once(fd, p, len, out);

		if (n == 0 && !out)
			return -ECONNRESET;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				int rc = wait_fd(fd, out ? POLLOUT : POLLIN);

				if (rc)
					return rc;
				continue;
			}
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int net_write_full(int fd, const void *buf, size_t len)
{
	return io_full(fd, (uint8_t *)buf, len, true);
}

int net_send_pending(int fd, const void *buf, size_t *off, size_t len)
{
	while (*off < len) {
		ssize_t r = send(fd, (const uint8_t *)buf + *off, len - *off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 1;
		if (r < 0)
			return -errno;
		*off += (size_t)r;
	}
	return 0;
}

int net_read_full(int fd, void *buf, size_t len)
{
	return io_full(fd, buf, len, false);
}

/* net_send_fd - @len (>= 1) bytes with @fd attached (fd < 0: none). 0 or -errno. */
int net_send_fd(int sock, int fd, const void *buf, size_t len)
{
	union {
		struct cmsghdr hdr;
		char space[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (!len)
		return -EINVAL;
	if (fd >= 0) {
		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.space;
		msg.msg_controllen = sizeof(ctl.space);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	/* the fd went with the first byte; the rest is plain data */
	return net_write_full(sock, (const uint8_t *)buf + n, len - (size_t)n);
}

/* net_recv_fd - @len (>= 1) bytes and the fd sent with them (*fd = -1 if none).
 * 0 or -errno; -ECONNRESET on EOF, -EPROTO if more than one fd or truncated. */
int net_recv_fd(int sock, int *fd, void *buf, size_t len)
{
	union {
		struct cmsghdr hdr;
		char space[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = ctl.space, .msg_controllen = sizeof(ctl.space) };
	struct cmsghdr *cm;
	ssize_t n;
	int rc;

	*fd = -1;
	if (!len)
		return -EINVAL;
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ECONNRESET;
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t nfds = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfds; i++) {
			int got;

			memcpy(&got, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (*fd < 0)
				*fd = got;
			else
				close(got);
		}
	}
	if (msg.msg_flags & MSG_CTRUNC) {
		rc = -EPROTO;
		goto out_close_fd;
	}
	rc = net_read_full(sock, (uint8_t *)buf + n, len - (size_t)n);
	if (rc)
		goto out_close_fd;
	return 0;
out_close_fd:
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
	return rc;
}
