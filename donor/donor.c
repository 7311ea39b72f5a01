/* donor.c - rtmem-donor: lends a pool of memory, slab by slab, to borrowers.
 *
 * The data plane (rdma_server: TCP, plus verbs with one MR per lent slab) serves
 * borrowers' reads and writes into slabs from its own threads (TCP: each request
 * checked against the slab's owner and key; verbs: the NIC checks the MR's rkey). This
 * file is the control plane: register with the master, answer GRANT_FWD by lending
 * free slabs under fresh random keys, take RETURNs back (revoke the key, scrub),
 * report statistics, and leave cleanly on SIGTERM.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "common/common.h"
#include "donor/donor.h"
#include "rdma/rdma.h"

#define LOG_AREA "donor"

#define CONNECT_TIMEOUT_MS 1000
#define HELLO_TIMEOUT_MS 5000
#define FIRST_RETRY_MS 200       /* first connection: retry every 200 ms ... */
#define FIRST_DEADLINE_MS 30000  /* ... for up to 30 s */
#define RECONNECT_MS 1000        /* after a lost connection: every second, forever */
#define LEAVE_TIMEOUT_MS 30000

struct slab {
	uint32_t owner; /* borrower node id, 0 = free */
	uint64_t key;
};

struct donor {
	struct config cfg;
	const struct config_node *self;
	struct donor_pool pool;
	struct slab *slabs;
	unsigned n_free;
	unsigned cursor;       /* where slab_lend() looks for a free slab first */
	uint64_t slab_pages;
	struct rdma_server *srv; /* TCP, or verbs + TCP ([cluster] transport) */
	struct evloop *ev;

	struct msgconn *mc;      /* master connection, NULL while disconnected */
	bool ever_registered;
	uint64_t first_deadline; /* evloop_now_ms() limit for the first connection */
	unsigned failed_tries;

	bool leaving;            /* SIGTERM seen: LEAVE_REQ sent or pending */
	int exit_code;
};

static void try_connect(struct evloop *ev, void *arg);

static uint64_t lent_slabs(const struct donor *d)
{
	return d->pool.n_slabs - d->n_free;
}

static void schedule_connect(struct donor *d, unsigned ms)
{
	int r = evloop_add_timer(d->ev, ms, false, try_connect, d);

	if (r < 0) {
		log_err("node %u: cannot arm reconnect timer: %s", d->self->id, strerror(-r));
		d->exit_code = 1;
		evloop_stop(d->ev);
	}
}

static void conn_lost(struct donor *d, int err)
{
	if (!d->mc)
		return;
	log_warn("node %u: master connection %s lost (%s); data plane keeps serving, "
		 "reconnecting every %d ms", d->self->id, msgconn_peer(d->mc), strerror(-err),
		 RECONNECT_MS);
	evloop_del_fd(d->ev, msgconn_fd(d->mc));
	msgconn_free(d->mc);
	d->mc = NULL;
	schedule_connect(d, RECONNECT_MS);
}

static int send_leave_req(struct donor *d)
{
	struct wire_msg m = { .cmd = WIRE_LEAVE_REQ };

	m.leave_req.node_id = d->self->id;
	log_info("node %u: asking the master to leave (%llu slabs lent)", d->self->id,
		 (unsigned long long)lent_slabs(d));
	return msgconn_send(d->mc, &m);
}

/* ----------------------------------------------------------- slab lending */

static void slab_revoke(struct donor *d, unsigned idx)
{
	int r = rdma_server_revoke(d->srv, idx);

	if (r < 0) {
		/* The old key may still work: never lend this slab again. */
		log_err("slab %u: revoke from node %u failed: %s; slab retired", idx,
			d->slabs[idx].owner, strerror(-r));
		return;
	}
	donor_pool_scrub(&d->pool, idx);
	d->slabs[idx].owner = 0;
	d->slabs[idx].key = 0;
	d->n_free++;
}

/* slab_lend - give one free slab to @to under a fresh key and fill its reference. */
static int slab_lend(struct donor *d, uint32_t to, struct wire_slab *ws)
{
	unsigned idx;
	uint64_t key;
	int r;

	if (!d->n_free)
		return -ENOSPC;
	for (idx = d->cursor; d->slabs[idx].owner; idx = (idx + 1) % d->pool.n_slabs)
		;
	d->cursor = (idx + 1) % d->pool.n_slabs;
	r = rdma_server_grant(d->srv, idx, to, &key);
	if (r < 0) {
		log_err("slab %u: grant to node %u: %s", idx, to, strerror(-r));
		return r;
	}
	d->slabs[idx].owner = to;
	d->slabs[idx].key = key;
	d->n_free--;
	*ws = (struct wire_slab){ .donor = d->self->id,
				  .offset = (uint64_t)idx * d->pool.slab_size,
				  .length = d->pool.slab_size,
				  .key = key };
	log_dbg("slab %u lent to node %u", idx, to);
	return 0;
}

/* handle_grant_fwd - lend ceil(pages / slab_pages) slabs (>= 1, <= free) to the
 * named node and tell the master in GRANT messages of at most WIRE_MAX_SLABS. */
static int handle_grant_fwd(struct donor *d, const struct wire_msg *in)
{
	uint32_t to = in->grant_fwd.to;
	uint64_t want = (in->grant_fwd.pages + d->slab_pages - 1) / d->slab_pages;
	uint64_t done = 0;
	struct wire_msg m;
	int r;

	if (in->grant_fwd.donor != d->self->id || !to || to == d->self->id) {
		log_warn("node %u: ignoring GRANT_FWD donor %u to %u", d->self->id,
			 in->grant_fwd.donor, to);
		return 0;
	}
	if (!want)
		want = 1;
	if (d->leaving) {
		log_info("node %u: leaving, granting nothing to node %u", d->self->id, to);
		want = 0;
	} else if (want > d->n_free) {
		log_info("node %u: node %u asked for %llu slabs, %u free", d->self->id, to,
			 (unsigned long long)want, d->n_free);
		want = d->n_free;
	}
	do {
		unsigned i, n = want - done > WIRE_MAX_SLABS ? WIRE_MAX_SLABS
							     : (unsigned)(want - done);

		memset(&m, 0, sizeof(m));
		m.cmd = WIRE_GRANT;
		m.grant.to = to;
		for (i = 0; i < n; i++)
			if (slab_lend(d, to, &m.grant.slabs[i]) < 0)
				break;
		m.grant.n_slabs = i;
		r = msgconn_send(d->mc, &m);
		if (r < 0) {
			/* The borrower will never learn these keys: take them back. */
			while (i--)
				slab_revoke(d, (unsigned)(m.grant.slabs[i].offset / d->pool.slab_size));
			return r;
		}
		done += i;
		if (i < n)
			break;
	} while (done < want);
	log_info("node %u: granted %llu slabs to node %u (%u free)", d->self->id,
		 (unsigned long long)done, to, d->n_free);
	return 0;
}

static void handle_return(struct donor *d, const struct wire_msg *in)
{
	uint32_t from = in->ret.from;
	unsigned i, n = 0;

	for (i = 0; i < in->ret.n_slabs; i++) {
		const struct wire_slab *s = &in->ret.slabs[i];
		uint64_t idx = s->offset / d->pool.slab_size;

		if (s->donor != d->self->id || s->offset % d->pool.slab_size ||
		    idx >= d->pool.n_slabs || s->length != d->pool.slab_size ||
		    d->slabs[idx].owner != from || d->slabs[idx].key != s->key) {
			log_warn("node %u: bad RETURN from node %u: slab donor %u offset %llu "
				 "length %llu not ours or not owned by it", d->self->id, from,
				 s->donor, (unsigned long long)s->offset,
				 (unsigned long long)s->length);
			continue;
		}
		slab_revoke(d, (unsigned)idx);
		n++;
	}
	log_info("node %u: node %u returned %u slabs (%u free)", d->self->id, from, n,
		 d->n_free);
}

/* ----------------------------------------------------------- master link */

/* dispatch - one message from the master; < 0 means the connection is unusable. */
static int dispatch(struct donor *d, const struct wire_msg *m)
{
	uint32_t self = d->self->id;

	switch (m->cmd) {
	case WIRE_GRANT_FWD:
		return handle_grant_fwd(d, m);
	case WIRE_RETURN:
		handle_return(d, m);
		return 0;
	case WIRE_LEAVE_NOTIFY:
		if (m->leave_notify.node_id != self) {
			log_info("node %u: node %u has left", self, m->leave_notify.node_id);
			return 0;
		}
		if (lent_slabs(d))
			log_warn("node %u: leaving with %llu slabs still lent", self,
				 (unsigned long long)lent_slabs(d));
		log_info("node %u: left the cluster", self);
		evloop_stop(d->ev);
		return 0;
	case WIRE_INVALIDATE:
	case WIRE_INVALIDATE_NOTIFY:
		log_info("node %u: %s for node %u", self, wire_cmd_name(m->cmd),
			 m->invalidate.node_id);
		return 0;
	case WIRE_ENABLE_NODE:
		log_info("node %u: master %s pages at node %u", self,
			 m->enable_node.enable ? "enables" : "disables", m->enable_node.node_id);
		return 0;
	case WIRE_ERROR:
		log_err("node %u: master reports error %u: %s", self, m->error.code,
			m->error.text);
		return -ECONNRESET;
	default:
		log_dbg("node %u: ignoring %s from master", self, wire_cmd_name(m->cmd));
		return 0;
	}
}

static void on_master(struct evloop *ev, int fd, uint32_t events, void *arg)
{
	struct donor *d = arg;
	struct wire_msg m;
	int r = msgconn_fill(d->mc);

	while (r >= 0 && d->mc && (r = msgconn_next(d->mc, &m)) > 0)
		r = dispatch(d, &m);
	if (r < 0)
		conn_lost(d, r);
}

/* handshake - HELLO / HELLO_ACK / REGISTER on a fresh connection. Returns 0, or
 * -errno; a positive master refusal is returned as -status. */
static int handshake(struct donor *d)
{
	struct wire_msg m;
	int r;

	wire_hello(&m, d->self->id, ROLE_DONOR);
	r = msgconn_send(d->mc, &m);
	if (r < 0)
		return r;
	r = msgconn_recv(d->mc, &m, HELLO_TIMEOUT_MS);
	if (r < 0)
		return r;
	if (m.cmd == WIRE_ERROR) {
		log_err("node %u: master refused: %s", d->self->id, m.error.text);
		return m.error.code ? -(int)m.error.code : -EPROTO;
	}
	if (m.cmd != WIRE_HELLO_ACK) {
		log_err("node %u: expected HELLO_ACK, got %s", d->self->id,
			wire_cmd_name(m.cmd));
		return -EPROTO;
	}
	if (m.hello_ack.status) {
		log_err("node %u: master refused HELLO: %s", d->self->id,
			strerror((int)m.hello_ack.status));
		return -(int)m.hello_ack.status;
	}
	memset(&m, 0, sizeof(m));
	m.cmd = WIRE_REGISTER;
	m.reg.node_id = d->self->id;
	m.reg.role = ROLE_DONOR;
	m.reg.pages = d->pool.len / RTM_PAGE_SIZE;
	m.reg.slab_size = d->pool.slab_size;
	return msgconn_send(d->mc, &m);
}

static void try_connect(struct evloop *ev, void *arg)
{
	struct donor *d = arg;
	const char *host = d->cfg.master_host;
	uint16_t port = d->cfg.master_port;
	char peer[CONFIG_HOST_LEN + 8];
	int fd, r;

	snprintf(peer, sizeof(peer), "%s:%u", host, port);
	fd = net_connect_tcp(host, port, CONNECT_TIMEOUT_MS);
	if (fd < 0) {
		r = fd;
		goto retry;
	}
	d->mc = msgconn_new(fd, peer);
	if (!d->mc) {
		r = -ENOMEM;
		goto retry;
	}
	r = handshake(d);
	if (r < 0)
		goto out_free;
	r = evloop_add_fd(ev, msgconn_fd(d->mc), EPOLLIN, on_master, d);
	if (r < 0)
		goto out_free;
	log_info("node %u: registered with master %s (%u slabs of %llu MiB, %u free)",
		 d->self->id, peer, d->pool.n_slabs,
		 (unsigned long long)(d->pool.slab_size >> 20), d->n_free);
	d->ever_registered = true;
	d->failed_tries = 0;
	if (d->leaving && send_leave_req(d) < 0)
		conn_lost(d, -ECONNRESET);
	return;

out_free:
	msgconn_free(d->mc);
	d->mc = NULL;
	/* A refusal that is not transient is a configuration error. */
	if (r != -ECONNRESET && r != -ETIMEDOUT && r != -EAGAIN && r != -EBUSY &&
	    r != -EEXIST && r != -EPIPE && r != -ECONNREFUSED) {
		log_err("node %u: master %s refused this donor: %s", d->self->id, peer,
			strerror(-r));
		d->exit_code = 1;
		evloop_stop(ev);
		return;
	}
retry:
	if (!d->ever_registered) {
		if (evloop_now_ms() >= d->first_deadline) {
			log_err("node %u: master %s unreachable for %d s: %s", d->self->id, peer,
				FIRST_DEADLINE_MS / 1000, strerror(-r));
			d->exit_code = 1;
			evloop_stop(ev);
			return;
		}
		if (d->failed_tries++ % 25 == 0)
			log_info("node %u: master %s not reachable (%s), retrying every %d ms "
				 "for up to %d s", d->self->id, peer, strerror(-r),
				 FIRST_RETRY_MS, FIRST_DEADLINE_MS / 1000);
		schedule_connect(d, FIRST_RETRY_MS);
	} else {
		if (d->failed_tries++ % 30 == 0)
			log_info("node %u: master %s not reachable (%s), retrying every %d ms",
				 d->self->id, peer, strerror(-r), RECONNECT_MS);
		schedule_connect(d, RECONNECT_MS);
	}
}

static void on_stats(struct evloop *ev, void *arg)
{
	struct donor *d = arg;
	struct wire_msg m;
	int r;

	if (!d->mc)
		return;
	memset(&m, 0, sizeof(m));
	m.cmd = WIRE_STATISTICS;
	m.stats.node_id = d->self->id;
	m.stats.total_pages = d->pool.len / RTM_PAGE_SIZE;
	m.stats.free_pages = (uint64_t)d->n_free * d->slab_pages;
	r = msgconn_send(d->mc, &m);
	if (r < 0)
		conn_lost(d, r);
}

static void on_leave_timeout(struct evloop *ev, void *arg)
{
	struct donor *d = arg;

	log_err("node %u: no LEAVE_NOTIFY within %d s, exiting with %llu slabs lent",
		d->self->id, LEAVE_TIMEOUT_MS / 1000, (unsigned long long)lent_slabs(d));
	d->exit_code = 1;
	evloop_stop(ev);
}

static void on_signal(struct evloop *ev, int fd, uint32_t signo, void *arg)
{
	struct donor *d = arg;

	if (d->leaving) {
		log_warn("node %u: second signal %u, exiting now", d->self->id, signo);
		d->exit_code = 1;
		evloop_stop(ev);
		return;
	}
	d->leaving = true;
	if (!lent_slabs(d) && !d->mc) {
		log_info("node %u: signal %u, nothing lent, exiting", d->self->id, signo);
		evloop_stop(ev);
		return;
	}
	log_info("node %u: signal %u, leaving the cluster (up to %d s; again to force)",
		 d->self->id, signo, LEAVE_TIMEOUT_MS / 1000);
	if (evloop_add_timer(ev, LEAVE_TIMEOUT_MS, false, on_leave_timeout, d) < 0) {
		evloop_stop(ev);
		return;
	}
	if (!d->mc)
		log_warn("node %u: master not connected; LEAVE_REQ goes out on reconnect",
			 d->self->id);
	else if (send_leave_req(d) < 0)
		conn_lost(d, -ECONNRESET);
}

/* ----------------------------------------------------------- start-up */

static void usage(FILE *f)
{
	fprintf(f, "usage: rtmem-donor -c CONFIG -n NODE_ID [-v]\n"
		   "  -c CONFIG   cluster configuration (INI)\n"
		   "  -n NODE_ID  this donor's [node.N] section\n"
		   "  -v          debug logging\n");
}

static int setup(struct donor *d, const char *path, uint32_t id)
{
	char err[256];
	int r;

	r = config_load(path, &d->cfg, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "rtmem-donor: %s\n", err[0] ? err : strerror(-r));
		return r;
	}
	d->self = config_node(&d->cfg, id);
	if (!d->self) {
		fprintf(stderr, "rtmem-donor: %s: no [node.%u] section\n", path, id);
		return -ENOENT;
	}
	if (d->self->role != ROLE_DONOR) {
		fprintf(stderr, "rtmem-donor: %s: node %u is a %s, not a donor\n", path, id,
			config_role_name(d->self->role));
		return -EINVAL;
	}
	if (!d->self->pool_size || d->self->pool_size % d->cfg.slab_size) {
		fprintf(stderr, "rtmem-donor: %s: node %u: pool_size %llu is not a non-zero "
			"multiple of slab_size %llu\n", path, id,
			(unsigned long long)d->self->pool_size,
			(unsigned long long)d->cfg.slab_size);
		return -EINVAL;
	}
	d->slab_pages = d->cfg.slab_size / RTM_PAGE_SIZE;

	/* Signals go to the signalfd; block them before the data-plane thread exists
	 * so it inherits the mask. */
	d->ev = evloop_new();
	if (!d->ev)
		return -ENOMEM;
	if ((r = evloop_on_signal(d->ev, SIGTERM, on_signal, d)) < 0 ||
	    (r = evloop_on_signal(d->ev, SIGINT, on_signal, d)) < 0) {
		log_err("signal handling: %s", strerror(-r));
		return r;
	}
	signal(SIGPIPE, SIG_IGN);

	r = donor_pool_create(&d->pool, d->self->pool_size, d->cfg.slab_size,
			      d->self->numa_node);
	if (r < 0) {
		log_err("node %u: cannot allocate a %llu MiB pool: %s", id,
			(unsigned long long)(d->self->pool_size >> 20), strerror(-r));
		return r;
	}
	d->n_free = d->pool.n_slabs;
	d->slabs = calloc(d->pool.n_slabs, sizeof(*d->slabs));
	if (!d->slabs)
		return -ENOMEM;

	errno = 0;
	d->srv = rdma_server_create(d->cfg.transport, d->self->host, d->self->port,
				    d->pool.base, d->pool.len, d->pool.slab_size);
	if (!d->srv) {
		r = errno ? -errno : -EIO;
		log_err("node %u: data plane on %s:%u: %s", id, d->self->host, d->self->port,
			strerror(-r));
		return r;
	}
	log_info("node %u: serving %u slabs of %llu MiB on %s:%u (%s)", id, d->pool.n_slabs,
		 (unsigned long long)(d->pool.slab_size >> 20), d->self->host,
		 rdma_server_port(d->srv), rdma_server_name(d->srv));

	r = evloop_add_timer(d->ev, d->cfg.stats_interval_ms ? d->cfg.stats_interval_ms : 1000,
			     true, on_stats, d);
	if (r < 0)
		return r;
	d->first_deadline = evloop_now_ms() + FIRST_DEADLINE_MS;
	try_connect(d->ev, d);
	return 0;
}

static void teardown(struct donor *d)
{
	if (d->mc)
		msgconn_free(d->mc);
	if (d->srv)
		rdma_server_destroy(d->srv);
	free(d->slabs);
	donor_pool_destroy(&d->pool);
	if (d->ev)
		evloop_free(d->ev);
}

int main(int argc, char **argv)
{
	static struct donor d;
	const char *path = NULL;
	unsigned long id = 0;
	bool verbose = false;
	char *end;
	int c, r;

	while ((c = getopt(argc, argv, "c:n:vh")) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'n':
			errno = 0;
			id = strtoul(optarg, &end, 10);
			if (errno || *end || !id || id >= UINT32_MAX) {
				fprintf(stderr, "rtmem-donor: bad node id '%s'\n", optarg);
				return 2;
			}
			break;
		case 'v':
			verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!path || !id || optind != argc) {
		usage(stderr);
		return 2;
	}
	log_init("rtmem-donor", verbose ? LOG_DEBUG : LOG_INFO);

	r = setup(&d, path, (uint32_t)id);
	if (r == 0 && !d.exit_code) {
		r = evloop_run(d.ev);
		if (r < 0) {
			log_err("event loop: %s", strerror(-r));
			d.exit_code = 1;
		}
	}
	teardown(&d);
	return r < 0 || d.exit_code ? 1 : 0;
}
