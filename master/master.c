/* master.c - rtmem-master: the cluster's memory manager (MM-M). Accepts control
 * connections, checks the HELLO handshake, decodes frames and dispatches them to
 * the node state machine in nodes.c. Single-threaded, driven by the common evloop.
 *
 * Usage: rtmem-master -c CONFIG [-v]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "master/master-internal.h"

#define LOG_AREA "master"

/* ------------------------------------------------------------ connections */

static void conn_name(const struct mconn *c, char *buf, size_t len)
{
	if (c->role == ROLE_ADMIN)
		snprintf(buf, len, "%s (admin)", msgconn_peer(c->mc));
	else if (c->node_id)
		snprintf(buf, len, "%s (node %u)", msgconn_peer(c->mc), c->node_id);
	else
		snprintf(buf, len, "%s", msgconn_peer(c->mc));
}

/* conn_fail - log "peer X: reason", tell the peer with WIRE_ERROR, close it later. */
__attribute__((format(printf, 3, 4))) static void conn_fail(struct mconn *c, int code,
							    const char *fmt, ...)
{
	char name[128], why[WIRE_MAX_TEXT + 1];
	va_list ap;

	if (c->dead)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	conn_name(c, name, sizeof(name));
	log_warn("peer %s: %s", name, why);
	msgconn_send_error(c->mc, code, "%s", why);
	c->dead = true;
}

int master_send(struct mconn *c, const struct wire_msg *msg)
{
	char name[128];
	int rc;

	if (c->dead)
		return -ENOTCONN;
	rc = msgconn_send(c->mc, msg);
	if (rc < 0) {
		conn_name(c, name, sizeof(name));
		log_warn("peer %s: send %s: %s", name, wire_cmd_name(msg->cmd), strerror(-rc));
		c->dead = true;
	}
	return rc;
}

int master_node_send(struct mnode *n, const struct wire_msg *msg)
{
	return n->conn ? master_send(n->conn, msg) : 0;
}

/* Close every connection marked dead; a lost node's clean-up may mark more. */
static void reap(struct master *m)
{
	for (;;) {
		struct mconn **pp = &m->conns, *c;
		char name[128];

		while (*pp && !(*pp)->dead)
			pp = &(*pp)->next;
		if (!(c = *pp))
			return;
		*pp = c->next;
		m->n_conns--;
		conn_name(c, name, sizeof(name));
		log_dbg("peer %s: closed", name);
		evloop_del_fd(m->ev, msgconn_fd(c->mc));
		if (c->node_id && c->role != ROLE_ADMIN) {
			struct mnode *n = master_node(m, c->node_id);

			if (n && n->conn == c) {
				n->conn = NULL;
				master_node_lost(m, n);
			}
		}
		msgconn_free(c->mc);
		free(c);
	}
}

/* ------------------------------------------------------------ messages */

static void on_hello(struct master *m, struct mconn *c, const struct wire_msg *msg)
{
	struct wire_msg ack = { .cmd = WIRE_HELLO_ACK };
	uint32_t id = msg->hello.node_id;
	struct mnode *n = NULL;
	int err = -wire_check_hello(msg);
	char why[128] = "";

	if (err == EPROTONOSUPPORT)
		snprintf(why, sizeof(why), "protocol version %u not supported (this is %u)",
			 msg->hello.version, WIRE_VERSION);
	else if (err)
		snprintf(why, sizeof(why), "bad HELLO: %s", strerror(err));
	else if (msg->hello.role == ROLE_ADMIN) {
		if (id) {
			err = EINVAL;
			snprintf(why, sizeof(why), "admin HELLO must name node 0, not %u", id);
		}
	} else if (msg->hello.role != ROLE_DONOR && msg->hello.role != ROLE_BORROWER) {
		err = EINVAL;
		snprintf(why, sizeof(why), "role %u may not connect", msg->hello.role);
	} else if (!(n = master_node(m, id))) {
		err = ENOENT;
		snprintf(why, sizeof(why), "node %u is not configured", id);
	} else if (n->cfg->role != msg->hello.role) {
		err = EINVAL;
		snprintf(why, sizeof(why), "node %u is a %s, not a %s", id,
			 config_role_name(n->cfg->role),
			 config_role_name((enum node_role)msg->hello.role));
	} else if (n->conn) {
		err = EBUSY;
		snprintf(why, sizeof(why), "node %u is already connected", id);
	}
	ack.hello_ack.version = WIRE_VERSION;
	ack.hello_ack.features = WIRE_FEATURES & msg->hello.features;
	ack.hello_ack.status = (uint32_t)err;
	if (master_send(c, &ack) < 0)
		return;
	if (err) {
		conn_fail(c, err, "%s", why);
		return;
	}
	c->role = (enum node_role)msg->hello.role;
	c->node_id = id;
	if (n) {
		n->conn = c;
		log_info("node %u (%s): connected from %s", id, config_role_name(c->role),
			 msgconn_peer(c->mc));
	} else {
		log_dbg("admin connected from %s", msgconn_peer(c->mc));
	}
}

/* Which roles may send which command. */
#define R_D (1u << ROLE_DONOR)
#define R_B (1u << ROLE_BORROWER)
#define R_A (1u << ROLE_ADMIN)
static const unsigned allowed[WIRE_CMD_MAX] = {
	[WIRE_REGISTER] = R_D | R_B,   [WIRE_STATISTICS] = R_D | R_B,
	[WIRE_GRANT_ANY] = R_B,        [WIRE_GRANT] = R_D,
	[WIRE_RETURN] = R_B,           [WIRE_LEAVE_REQ] = R_D | R_B | R_A,
	[WIRE_INVALIDATE] = R_D | R_A, [WIRE_STATUS_REQ] = R_A,
	[WIRE_ENABLE_NODE] = R_A,      [WIRE_MEM_LIMIT] = R_A,
};

static void on_admin(struct master *m, struct mconn *c, const struct wire_msg *msg)
{
	static struct wire_msg reply;
	struct mnode *n;
	uint32_t id = 0;
	int rc;

	switch (msg->cmd) {
	case WIRE_STATUS_REQ:
		master_status(m, &reply);
		master_send(c, &reply);
		return;
	case WIRE_LEAVE_REQ:
		id = msg->leave_req.node_id;
		log_info("admin: leave request for node %u", id);
		rc = master_leave(m, id);
		break;
	case WIRE_INVALIDATE:
		id = msg->invalidate.node_id;
		log_info("admin: invalidate node %u", id);
		rc = master_invalidate(m, id);
		break;
	case WIRE_ENABLE_NODE:
		id = msg->enable_node.node_id;
		rc = master_enable(m, id, msg->enable_node.enable);
		break;
	case WIRE_MEM_LIMIT:
		id = msg->mem_limit.node_id;
		rc = master_set_mem_limit(m, id, msg->mem_limit.pages);
		break;
	default:
		rc = -EPROTO;
		break;
	}
	n = master_node(m, id);
	if (rc == -ENOENT)
		conn_fail(c, ENOENT, "%s: node %u is not configured", wire_cmd_name(msg->cmd), id);
	else if (rc < 0 && n)
		conn_fail(c, -rc, "%s: not possible for node %u (%s, %s): %s",
			  wire_cmd_name(msg->cmd), id, config_role_name(n->cfg->role),
			  wire_state_name(n->state), strerror(-rc));
	else if (rc < 0)
		conn_fail(c, -rc, "%s: %s", wire_cmd_name(msg->cmd), strerror(-rc));
}

static int on_node(struct master *m, struct mnode *n, const struct wire_msg *msg)
{
	uint32_t id = n->cfg->id;

	switch (msg->cmd) {
	case WIRE_REGISTER:
		return master_on_register(m, n, msg);
	case WIRE_STATISTICS:
		return master_on_statistics(m, n, msg);
	case WIRE_GRANT_ANY:
		return master_on_grant_any(m, n, msg);
	case WIRE_GRANT:
		return master_on_grant(m, n, msg);
	case WIRE_RETURN:
		return master_on_return(m, n, msg);
	case WIRE_LEAVE_REQ:
		if (msg->leave_req.node_id != id)
			return -EPERM;
		return master_leave(m, id);
	case WIRE_INVALIDATE:
		if (msg->invalidate.node_id != id)
			return -EPERM;
		return master_invalidate(m, id);
	default:
		return -EPROTO;
	}
}

static void dispatch(struct master *m, struct mconn *c, const struct wire_msg *msg)
{
	const char *cmd = wire_cmd_name(msg->cmd);
	int rc;

	if (c->role == ROLE_NONE) {
		if (msg->cmd != WIRE_HELLO)
			conn_fail(c, EPROTO, "%s before HELLO", cmd);
		else
			on_hello(m, c, msg);
		return;
	}
	if (msg->cmd == WIRE_ERROR) {
		char name[128];

		conn_name(c, name, sizeof(name));
		log_warn("peer %s: sent ERROR %u: %s", name, msg->error.code, msg->error.text);
		c->dead = true;
		return;
	}
	if ((unsigned)msg->cmd >= WIRE_CMD_MAX || !(allowed[msg->cmd] & (1u << c->role))) {
		conn_fail(c, EPROTO, "%s not accepted from a %s", cmd, config_role_name(c->role));
		return;
	}
	if (c->role == ROLE_ADMIN) {
		on_admin(m, c, msg);
		return;
	}
	rc = on_node(m, master_node(m, c->node_id), msg);
	if (rc < 0)
		log_warn("node %u: %s ignored: %s", c->node_id, cmd, strerror(-rc));
}

static void on_conn_io(struct evloop *ev, int fd, uint32_t events, void *arg)
{
	struct mconn *c = arg;
	struct master *m = c->m;
	static struct wire_msg msg;
	int rc = msgconn_fill(c->mc), got;

	/* messages buffered before an EOF are still handled */
	while (!c->dead && (got = msgconn_next(c->mc, &msg)) != 0) {
		if (got < 0) {
			conn_fail(c, -got, "malformed frame: %s", strerror(-got));
			break;
		}
		dispatch(m, c, &msg);
	}
	if (rc < 0 && !c->dead) {
		char name[128];

		conn_name(c, name, sizeof(name));
		if (rc == -ECONNRESET)
			log_dbg("peer %s: closed the connection", name);
		else
			log_warn("peer %s: %s", name, strerror(-rc));
		c->dead = true;
	}
	reap(m);
}

static void on_accept(struct evloop *ev, int lfd, uint32_t events, void *arg)
{
	struct master *m = arg;
	struct sockaddr_storage sa;
	socklen_t slen = sizeof(sa);
	char host[INET6_ADDRSTRLEN], peer[INET6_ADDRSTRLEN + 8];
	struct mconn *c;
	int fd;

	fd = accept4(lfd, (struct sockaddr *)&sa, &slen, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR)
			log_warn("accept: %s", strerror(errno));
		return;
	}
	if (m->n_conns >= MASTER_MAX_CONNS) {
		log_warn("too many connections (%u): refused one", m->n_conns);
		close(fd);
		return;
	}
	if (sa.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)&sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(peer, sizeof(peer), "[%s]:%u", host, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const void *)&sa;

		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(peer, sizeof(peer), "%s:%u", host, ntohs(s4->sin_port));
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->mc = msgconn_new(fd, peer);
	if (!c->mc) {
		close(fd);
		free(c);
		return;
	}
	c->m = m;
	c->since_ms = evloop_now_ms();
	if (evloop_add_fd(m->ev, fd, EPOLLIN, on_conn_io, c) < 0) {
		msgconn_free(c->mc);
		free(c);
		return;
	}
	c->next = m->conns;
	m->conns = c;
	m->n_conns++;
	log_dbg("peer %s: accepted", peer);
}

/* Periodic: close connections that never said HELLO. */
static void on_tick(struct evloop *ev, void *arg)
{
	struct master *m = arg;
	uint64_t now = evloop_now_ms();

	for (struct mconn *c = m->conns; c; c = c->next)
		if (c->role == ROLE_NONE && now - c->since_ms > MASTER_HELLO_TIMEOUT_MS)
			conn_fail(c, ETIMEDOUT, "no HELLO within %u ms",
				  MASTER_HELLO_TIMEOUT_MS);
	reap(m);
}

static void on_signal(struct evloop *ev, int fd, uint32_t signo, void *arg)
{
	log_info("signal %u: shutting down", signo);
	evloop_stop(ev);
}

/* ------------------------------------------------------------ main */

static void usage(FILE *f)
{
	fprintf(f, "usage: rtmem-master -c CONFIG [-v]\n");
}

int main(int argc, char **argv)
{
	static struct master m;
	const char *path = NULL;
	char err[256];
	bool verbose = false;
	int opt, rc = 1;

	while ((opt = getopt(argc, argv, "c:vh")) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'v':
			verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (!path || optind != argc) {
		usage(stderr);
		return 1;
	}
	log_init("rtmem-master", verbose ? LOG_DEBUG : LOG_INFO);
	if (config_load(path, &m.cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "rtmem-master: %s\n", err);
		return 1;
	}
	m.policy = policy_second_find(m.cfg.policy.second[0] ? m.cfg.policy.second
							      : "greedy-remote");
	if (!m.policy) {
		fprintf(stderr, "rtmem-master: %s: unknown second-level policy '%s'\n", path,
			m.cfg.policy.second);
		return 1;
	}
	m.pp = (struct policy_params){ .p_percent = m.cfg.policy.p_percent,
				       .threshold = m.cfg.policy.threshold,
				       .reserve = m.cfg.policy.reserve,
				       .grant_pages = m.cfg.policy.grant_pages };
	master_nodes_init(&m);
	signal(SIGPIPE, SIG_IGN);

	m.ev = evloop_new();
	if (!m.ev) {
		log_err("cannot create the event loop");
		goto out_nodes;
	}
	m.listen_fd = net_listen_tcp(m.cfg.master_host, m.cfg.master_port);
	if (m.listen_fd < 0) {
		log_err("listen on %s:%u: %s", m.cfg.master_host, m.cfg.master_port,
			strerror(-m.listen_fd));
		goto out_ev;
	}
	if (evloop_add_fd(m.ev, m.listen_fd, EPOLLIN, on_accept, &m) < 0 ||
	    evloop_add_timer(m.ev, 1000, true, on_tick, &m) < 0 ||
	    evloop_on_signal(m.ev, SIGINT, on_signal, &m) < 0 ||
	    evloop_on_signal(m.ev, SIGTERM, on_signal, &m) < 0) {
		log_err("cannot set up the event loop");
		goto out_listen;
	}
	log_info("listening on %s:%u, %u nodes configured, policy %s, slab size %llu KiB",
		 m.cfg.master_host, m.cfg.master_port, m.cfg.n_nodes, m.policy->name,
		 (unsigned long long)(m.cfg.slab_size >> 10));
	rc = evloop_run(m.ev) < 0;

	while (m.conns) {
		struct mconn *c = m.conns;

		m.conns = c->next;
		msgconn_free(c->mc);
		free(c);
	}
out_listen:
	close(m.listen_fd);
out_ev:
	evloop_free(m.ev);
out_nodes:
	master_nodes_fini(&m);
	return rc;
}
