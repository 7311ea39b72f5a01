/* nbd-ctl.c - the borrower's control socket for NBD exports: `rtmemctl export
 * add|del|list` connects here directly (unix socket <nbd_socket>.ctl, mode 0600)
 * instead of going through the master, because an export is local state of one
 * borrower and the master keeps none of it.
 *
 * Protocol: wire frames (common/wire.c). The admin says HELLO (role ADMIN, node 0)
 * and gets HELLO_ACK, then sends EXPORT_ADD, EXPORT_DEL or EXPORT_LIST and gets
 * EXPORT_REPLY (every export after the change) or ERROR (code + text, then the
 * connection closes). Served from the borrower's event loop; a reply is a few KiB
 * and is sent with msgconn_send (which waits up to 5 s for a slow reader).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "borrower/nbd.h"
#include "common/common.h"

#define LOG_AREA "nbd-ctl"
#define CTL_MAX_CONNS 8

struct ctlconn {
	struct nbd_ctl *k;
	struct msgconn *m;
	unsigned idx;
	bool hello;                /* HELLO accepted */
};

struct nbd_ctl {
	struct nbd_server *s;
	struct evloop *ev;
	int lfd;
	char path[CONFIG_PATH_LEN + 8];
	struct ctlconn *conns[CTL_MAX_CONNS];
};

static struct wire_msg msg, rep; /* large; the event loop is single-threaded */

static void ctl_close(struct ctlconn *c)
{
	evloop_del_fd(c->k->ev, msgconn_fd(c->m));
	c->k->conns[c->idx] = NULL;
	msgconn_free(c->m);
	free(c);
}

/* refuse - an ERROR with @code and @why; the connection is closed after it. */
static int refuse(struct ctlconn *c, int code, const char *why)
{
	log_warn("%s refused: %s", wire_cmd_name(msg.cmd), why);
	msgconn_send_error(c->m, code, "%s", why);
	return -1;
}

/* handle - one message: 0 answered, -1 the connection must close. */
static int handle(struct ctlconn *c)
{
	char why[WIRE_MAX_TEXT + 1] = "";
	int rc;

	if (!c->hello) {
		if (msg.cmd != WIRE_HELLO)
			return refuse(c, EPROTO, "HELLO expected first");
		rc = wire_check_hello(&msg);
		if (rc || msg.hello.role != ROLE_ADMIN || msg.hello.node_id)
			return refuse(c, rc ? -rc : EPERM, "only an admin (node 0) may connect");
		memset(&rep, 0, sizeof(rep));
		rep.cmd = WIRE_HELLO_ACK;
		rep.hello_ack.version = WIRE_VERSION;
		rep.hello_ack.features = WIRE_FEATURES & msg.hello.features;
		c->hello = true;
		return msgconn_send(c->m, &rep) ? -1 : 0;
	}
	switch (msg.cmd) {
	case WIRE_EXPORT_ADD: {
		struct config_export e = { .size = msg.export_req.size,
					   .target_pages = msg.export_req.target };

		memcpy(e.name, msg.export_req.name, sizeof(e.name));
		rc = nbd_add_export(c->k->s, &e, why, sizeof(why));
		break;
	}
	case WIRE_EXPORT_DEL:
		rc = nbd_del_export(c->k->s, msg.export_req.name, why, sizeof(why));
		break;
	case WIRE_EXPORT_LIST:
		rc = 0;
		break;
	default:
		snprintf(why, sizeof(why), "%s is not a control request", wire_cmd_name(msg.cmd));
		rc = -EPROTO;
	}
	if (rc < 0)
		return refuse(c, -rc, why);
	memset(&rep, 0, sizeof(rep));
	rep.cmd = WIRE_EXPORT_REPLY;
	nbd_list_exports(c->k->s, &rep);
	return msgconn_send(c->m, &rep) ? -1 : 0;
}

static void on_conn(struct evloop *ev, int fd, uint32_t events, void *arg)
{
	struct ctlconn *c = arg;
	int rc = msgconn_fill(c->m);

	while (rc == 0 && (rc = msgconn_next(c->m, &msg)) == 1)
		rc = handle(c) ? -1 : 0;
	if (rc < 0)
		ctl_close(c); /* EOF, a bad frame, or an error sent */
}

static void on_listen(struct evloop *ev, int lfd, uint32_t events, void *arg)
{
	struct nbd_ctl *k = arg;
	int fd;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		struct ctlconn *c = NULL;
		unsigned i = 0;

		while (i < CTL_MAX_CONNS && k->conns[i])
			i++;
		if (i < CTL_MAX_CONNS)
			c = calloc(1, sizeof(*c));
		if (c)
			c->m = msgconn_new(fd, "rtmemctl");
		if (!c || !c->m || evloop_add_fd(ev, fd, EPOLLIN, on_conn, c) < 0) {
			log_warn("control connection refused: %s",
				 i < CTL_MAX_CONNS ? "out of resources" : "too many");
			if (c && c->m)
				msgconn_free(c->m); /* closes fd */
			else
				close(fd);
			free(c);
			continue;
		}
		c->k = k;
		c->idx = i;
		k->conns[i] = c;
	}
}

int nbd_ctl_start(struct nbd_server *s, struct evloop *ev, const char *nbd_socket,
		  struct nbd_ctl **out)
{
	struct nbd_ctl *k = calloc(1, sizeof(*k));
	int rc;

	*out = NULL;
	if (!k)
		return -ENOMEM;
	k->s = s;
	k->ev = ev;
	if (snprintf(k->path, sizeof(k->path), "%s.ctl", nbd_socket) >= (int)sizeof(k->path)) {
		free(k);
		return -ENAMETOOLONG;
	}
	k->lfd = net_listen_unix(k->path);
	if (k->lfd < 0) {
		rc = k->lfd;
		log_err("control socket %s: %s", k->path, strerror(-rc));
		free(k);
		return rc;
	}
	chmod(k->path, 0600); /* exports cost memory: root's (the owner's) decision */
	rc = fcntl(k->lfd, F_SETFL, O_NONBLOCK) < 0 ? -errno : 0;
	if (!rc)
		rc = evloop_add_fd(ev, k->lfd, EPOLLIN, on_listen, k);
	if (rc < 0) {
		log_err("control socket %s: %s", k->path, strerror(-rc));
		close(k->lfd);
		unlink(k->path);
		free(k);
		return rc;
	}
	*out = k;
	return 0;
}

void nbd_ctl_stop(struct nbd_ctl *k)
{
	if (!k)
		return;
	for (unsigned i = 0; i < CTL_MAX_CONNS; i++)
		if (k->conns[i])
			ctl_close(k->conns[i]);
	evloop_del_fd(k->ev, k->lfd);
	close(k->lfd);
	unlink(k->path);
	free(k);
}
