/* node.c - rtmem-borrower as a node of the cluster: the link to the master
 * (register, statistics, Grant-Any, grants received, Force-Return, Mem-Limit,
 * Invalidate, leave), the first-level policy run every interval, and the daemon's
 * life cycle.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

#include "borrower/borrower-core.h"

#define LOG_AREA "borrower"

#define GRANT_TIMEOUT_MS 2000
#define DENIED_BACKOFF_MS 1000

struct deferred {
	struct deferred *next;
	struct wire_msg m;
};

static void handle_msg(struct borrower *b, const struct wire_msg *m);

static int send_master(struct borrower *b, const struct wire_msg *m)
{
	int err;

	if (!b->master)
		return -ENOTCONN;
	err = msgconn_send(b->master, m);
	if (err)
		log_warn("master: sending %s: %s", wire_cmd_name(m->cmd), strerror(-err));
	return err;
}

/* ------------------------------------------------ capacity */

static uint64_t owned_pages(struct borrower *b)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < B_MAX_SLABS; i++)
		if (b->slabs[i].used && b->slabs[i].donor)
			n += b->slabs[i].ref.length / RTM_PAGE_SIZE;
	return n;
}

/* remote_free_pages - free pages in donors' slabs (local slabs do not count). */
static uint64_t remote_free_pages(struct borrower *b)
{
	return buddy_free_pages(b->alloc) - buddy_zone_free_pages(b->alloc, B_LOCAL_ZONE);
}

static void grant_any(struct borrower *b, uint64_t pages)
{
	struct wire_msg m = { .cmd = WIRE_GRANT_ANY };
	uint64_t owned = owned_pages(b);

	if (b->leaving || !b->master || b->grant_pending || !pages)
		return;
	if (b->mem_limit != POLICY_NO_TARGET) {
		if (owned >= b->mem_limit)
			return;
		if (pages > b->mem_limit - owned)
			pages = b->mem_limit - owned;
	}
	m.grant_any.node_id = b->self->id;
	m.grant_any.pages = pages;
	if (send_master(b, &m) == 0) {
		b->grant_pending = true;
		b->grant_sent_ms = evloop_now_ms();
		log_dbg("asked for %llu pages (own %llu)", (unsigned long long)pages,
			(unsigned long long)owned);
	}
}

/* A request is answered by Grant messages; no answer within the timeout means the
 * cluster had nothing to give. */
static void grant_expire(struct borrower *b)
{
	if (b->grant_pending && evloop_now_ms() - b->grant_sent_ms > GRANT_TIMEOUT_MS) {
		b->grant_pending = false;
		b->grant_denied_until_ms = evloop_now_ms() + DENIED_BACKOFF_MS;
		log_dbg("grant request unanswered: no remote capacity for now");
	}
}

static uint64_t low_watermark(struct borrower *b)
{
	uint64_t w = b->params.grant_pages;

	return w < b->slab_pages / 2 ? w : b->slab_pages / 2;
}

void node_maybe_grow(struct borrower *b)
{
	grant_expire(b);
	if (remote_free_pages(b) < low_watermark(b) &&
	    evloop_now_ms() >= b->grant_denied_until_ms)
		grant_any(b, b->params.grant_pages);
}

static void defer(struct borrower *b, const struct wire_msg *m)
{
	struct deferred *d = malloc(sizeof(*d)), **pp = &b->deferred;

	if (!d) {
		log_err("out of memory: dropping %s", wire_cmd_name(m->cmd));
		return;
	}
	d->m = *m;
	d->next = NULL;
	while (*pp)
		pp = &(*pp)->next;
	*pp = d;
}

void node_run_deferred(struct borrower *b)
{
	while (b->deferred && !b->in_tmem) {
		struct deferred *d = b->deferred;

		b->deferred = d->next;
		handle_msg(b, &d->m);
		free(d);
	}
}

/* read_master - take in what the master sent; Grants are handled at once, the rest
 * as handle_msg says (deferred while a batch runs). Returns -errno on a lost link. */
static int read_master(struct borrower *b)
{
	static struct wire_msg m;
	int err = msgconn_fill(b->master);

	while (err == 0) {
		int r = msgconn_next(b->master, &m);

		if (r <= 0) {
			err = r;
			break;
		}
		handle_msg(b, &m);
	}
	return err < 0 ? err : 0;
}

static void master_lost(struct borrower *b, int err);

bool node_capacity_wait(struct borrower *b, int ms)
{
	uint64_t deadline = evloop_now_ms() + (uint64_t)ms;
	uint64_t free0 = buddy_free_pages(b->alloc);

	grant_expire(b);
	if (!b->master || b->leaving || evloop_now_ms() < b->grant_denied_until_ms)
		return false;
	grant_any(b, b->params.grant_pages);
	if (!b->grant_pending)
		return false;
	while (b->grant_pending && evloop_now_ms() < deadline) {
		struct pollfd pfd = { .fd = msgconn_fd(b->master), .events = POLLIN };
		int err;

		if (poll(&pfd, 1, (int)(deadline - evloop_now_ms())) <= 0)
			continue;
		err = read_master(b);
		if (err) {
			master_lost(b, err);
			break;
		}
	}
	if (b->grant_pending) {
		b->grant_denied_until_ms = evloop_now_ms() + DENIED_BACKOFF_MS;
		b->grant_pending = false;
	}
	return buddy_free_pages(b->alloc) > free0;
}

/* ------------------------------------------------ slabs in and out */

static struct bdonor *donor_of(struct borrower *b, uint32_t id)
{
	for (unsigned i = 0; i < b->n_donors; i++)
		if (b->donors[i].cfg->id == id)
			return &b->donors[i];
	return NULL;
}

/* send_refs - Return slab references to the master, in as few frames as fit. */
static int send_refs(struct borrower *b, const struct wire_slab *refs, unsigned n)
{
	static struct wire_msg m;
	int err = 0;

	for (unsigned i = 0; i < n;) {
		memset(&m.ret, 0, sizeof(m.ret));
		m.cmd = WIRE_RETURN;
		m.ret.from = b->self->id;
		for (; i < n && m.ret.n_slabs < WIRE_MAX_SLABS; i++)
			m.ret.slabs[m.ret.n_slabs++] = refs[i];
		if (send_master(b, &m))
			err = -ENOTCONN;
	}
	return err;
}

int node_send_return(struct borrower *b, const uint32_t *handles, unsigned n)
{
	static struct wire_slab refs[B_MAX_SLABS];
	unsigned k = 0;

	for (unsigned i = 0; i < n; i++)
		if (b->slabs[handles[i] - 1].donor)
			refs[k++] = b->slabs[handles[i] - 1].ref;
	return send_refs(b, refs, k);
}

/* take_slab - hold a granted slab: data connection, allocator zone. */
static int take_slab(struct borrower *b, const struct wire_slab *s)
{
	struct bdonor *d = donor_of(b, s->donor);
	int h, err;

	if (!d || s->length != b->cfg.slab_size || s->offset % s->length || b->leaving)
		return -EINVAL;
	if (!d->conn) {
		d->conn = rdma_connect(b->tp, d->cfg->id, d->cfg->host, d->cfg->port,
				       b->self->id);
		if (!d->conn) {
			log_err("donor %u: data connection to %s:%u failed: %s", d->cfg->id,
				d->cfg->host, d->cfg->port, strerror(errno));
			return -ENOTCONN;
		}
	}
	h = store_slab_alloc(b);
	if (h < 0)
		return h;
	buddy_add_zone(b->alloc, d->cfg->id, config_distance(b->self, d->cfg));
	err = buddy_add_slab(b->alloc, d->cfg->id, (uint32_t)h, (uint32_t)b->slab_pages);
	if (err) {
		store_slab_release(b, (uint32_t)h);
		return err;
	}
	b->slabs[h - 1].ref = *s;
	b->slabs[h - 1].donor = d;
	d->slabs++;
	/* OFFSET:LENGTH:KEY as rtmem-rdmabench -g takes it (tests/softroce/stalekey.sh) */
	log_dbg("granted slab %llu:%llu:%llx of donor %u", (unsigned long long)s->offset,
		(unsigned long long)s->length, (unsigned long long)s->key, s->donor);
	return 0;
}

static void take_grant(struct borrower *b, const struct wire_msg *m)
{
	struct wire_slab refuse[WIRE_MAX_SLABS];
	unsigned nrefuse = 0;

	b->grant_pending = false;
	for (unsigned i = 0; i < m->grant.n_slabs; i++) {
		const struct wire_slab *s = &m->grant.slabs[i];
		int err = take_slab(b, s);

		if (err) {
			log_warn("slab %llu of donor %u refused: %s",
				 (unsigned long long)s->offset, s->donor, strerror(-err));
			refuse[nrefuse++] = *s;
		}
	}
	if (m->grant.n_slabs > nrefuse)
		log_info("granted %u slabs; own %llu pages, %llu free",
			 m->grant.n_slabs - nrefuse, (unsigned long long)owned_pages(b),
			 (unsigned long long)buddy_free_pages(b->alloc));
	send_refs(b, refuse, nrefuse);
}

/* return_free_slabs - give back whole free slabs until at most @keep pages owned. */
static void return_free_slabs(struct borrower *b, uint64_t keep)
{
	static uint32_t handles[B_MAX_SLABS];
	unsigned n = 0;
	uint64_t owned = owned_pages(b);

	for (unsigned i = 0; i < B_MAX_SLABS && owned > keep; i++) {
		struct bslab *s = &b->slabs[i];

		if (!s->used || !s->donor || buddy_slab_used_pages(b->alloc, i + 1) != 0)
			continue;
		buddy_remove_slab(b->alloc, i + 1, false);
		handles[n++] = i + 1;
		owned -= s->ref.length / RTM_PAGE_SIZE;
	}
	node_send_return(b, handles, n);
	for (unsigned i = 0; i < n; i++)
		store_slab_release(b, handles[i]);
	if (n)
		log_info("returned %u free slabs (memory limit %llu pages)", n,
			 (unsigned long long)keep);
}

/* ------------------------------------------------ policy and statistics */

static unsigned policy_clients(struct borrower *b, struct policy_client *pc,
			       struct bclient **map)
{
	unsigned n = 0;

	for (unsigned i = 0; i < B_MAX_CLIENTS; i++) {
		struct bclient *c = &b->ctab[i];

		if (!c->used)
			continue;
		pc[n] = (struct policy_client){
			.id = c->id,
			.used = c->pages,
			.target = c->target,
			.puts_total = c->puts_total - c->last_puts_total,
			.puts_succ = c->puts_succ - c->last_puts_succ,
			.fixed = c->fixed,
		};
		map[n++] = c;
	}
	return n;
}

static void policy_apply(struct borrower *b, bool join)
{
	static struct policy_client pc[B_MAX_CLIENTS];
	static struct bclient *map[B_MAX_CLIENTS];
	struct policy_first_result res = { 0 };
	unsigned n = policy_clients(b, pc, map);
	uint64_t total = owned_pages(b);

	if (join)
		b->policy->join(&b->params, pc, n, total, &res);
	else
		b->policy->step(&b->params, pc, n, total, &res);
	for (unsigned i = 0; i < n; i++) {
		if (map[i]->target != pc[i].target)
			log_dbg("client %u: target %llu -> %llu", map[i]->id,
				(unsigned long long)map[i]->target,
				(unsigned long long)pc[i].target);
		map[i]->target = pc[i].target;
		map[i]->last_puts_total = map[i]->puts_total;
		map[i]->last_puts_succ = map[i]->puts_succ;
	}
	if (res.grant_any)
		grant_any(b, res.grant_any);
}

void node_policy_join(struct borrower *b)
{
	policy_apply(b, true);
}

static void send_stats(struct borrower *b)
{
	static struct wire_msg m;
	unsigned n = 0;

	memset(&m.stats, 0, sizeof(m.stats));
	m.cmd = WIRE_STATISTICS;
	m.stats.node_id = b->self->id;
	m.stats.total_pages = owned_pages(b);
	m.stats.free_pages = remote_free_pages(b);
	m.stats.lost_slabs = b->lost_slabs;
	for (unsigned i = 0; i < B_MAX_CLIENTS && n < WIRE_MAX_CLIENTS; i++) {
		const struct bclient *c = &b->ctab[i];
		struct wire_client_stats *s = &m.stats.clients[n];

		if (!c->used)
			continue;
		*s = (struct wire_client_stats){
			.node = b->self->id, .client = c->id, .used = c->pages,
			.target = c->target, .puts_total = c->puts_total,
			.puts_succ = c->puts_succ, .gets_total = c->gets_total,
			.gets_succ = c->gets_succ, .flushes = c->flushes,
		};
		snprintf(s->name, sizeof(s->name), "%s", c->name);
		n++;
	}
	m.stats.n_clients = n;
	send_master(b, &m);
}

static void on_tick(struct evloop *ev, void *arg)
{
	struct borrower *b = arg;

	policy_apply(b, false);
	node_maybe_grow(b);
	if (b->master)
		send_stats(b);
}

/* ------------------------------------------------ messages from the master */

static void set_mem_limit(struct borrower *b, uint64_t pages)
{
	b->mem_limit = pages;
	log_info("memory limit %llu pages",
		 (unsigned long long)(pages == POLICY_NO_TARGET ? 0 : pages));
	if (pages != POLICY_NO_TARGET)
		return_free_slabs(b, pages);
}

static void handle_msg(struct borrower *b, const struct wire_msg *m)
{
	uint32_t x;

	switch (m->cmd) {
	case WIRE_GRANT:
		if (m->grant.to == b->self->id)
			take_grant(b, m);
		return;
	case WIRE_HELLO_ACK:
	case WIRE_STATUS_REPLY:
		return;
	case WIRE_ERROR:
		log_err("master says: %s (%s)", m->error.text, strerror((int)m->error.code));
		return;
	default:
		break;
	}
	if (b->in_tmem) { /* migration and invalidation wait for the batch to end */
		defer(b, m);
		return;
	}
	switch (m->cmd) {
	case WIRE_ENABLE_NODE:
		x = m->enable_node.node_id;
		if (donor_of(b, x)) {
			donor_of(b, x)->enabled = m->enable_node.enable;
			if (!m->enable_node.enable && donor_of(b, x)->slabs)
				store_evacuate_zone(b, x);
		}
		break;
	case WIRE_FORCE_RETURN:
		x = m->force_return.donor;
		log_info("master: force-return of donor %u", x);
		if (donor_of(b, x))
			store_evacuate_zone(b, x);
		break;
	case WIRE_MEM_LIMIT:
		set_mem_limit(b, m->mem_limit.pages);
		break;
	case WIRE_INVALIDATE:
		x = m->invalidate.node_id;
		if (donor_of(b, x)) {
			store_invalidate_zone(b, x);
			if (donor_of(b, x)->conn) {
				rdma_conn_close(b->tp, donor_of(b, x)->conn);
				donor_of(b, x)->conn = NULL;
			}
		}
		break;
	case WIRE_LEAVE_NOTIFY:
		if (m->leave_notify.node_id == b->self->id) {
			log_info("master: left the cluster");
			b->left = true;
			evloop_stop(b->ev);
		}
		break;
	case WIRE_INVALIDATE_NOTIFY:
		break;
	default:
		log_warn("master: unexpected %s ignored", wire_cmd_name(m->cmd));
	}
}

/* ------------------------------------------------ master link */

static void on_master(struct evloop *ev, int fd, uint32_t events, void *arg)
{
	struct borrower *b = arg;
	int err = read_master(b);

	if (err)
		master_lost(b, err);
}

static int master_connect(struct borrower *b)
{
	struct wire_msg m;
	int fd, err;

	fd = net_connect_tcp(b->cfg.master_host, b->cfg.master_port, 2000);
	if (fd < 0)
		return fd;
	b->master = msgconn_new(fd, "master");
	if (!b->master)
		return -ENOMEM;
	wire_hello(&m, b->self->id, ROLE_BORROWER);
	err = msgconn_send(b->master, &m);
	if (!err)
		err = msgconn_recv(b->master, &m, 5000);
	if (!err && (m.cmd != WIRE_HELLO_ACK || m.hello_ack.status)) {
		log_err("master refused us: %s",
			m.cmd == WIRE_HELLO_ACK ? strerror((int)m.hello_ack.status)
						: wire_cmd_name(m.cmd));
		err = -EPROTO;
	}
	if (!err) {
		memset(&m, 0, sizeof(m));
		m.cmd = WIRE_REGISTER;
		m.reg.node_id = b->self->id;
		m.reg.role = ROLE_BORROWER;
		m.reg.slab_size = b->cfg.slab_size;
		err = msgconn_send(b->master, &m);
	}
	if (!err)
		err = evloop_add_fd(b->ev, fd, EPOLLIN, on_master, b);
	if (err) {
		msgconn_free(b->master);
		b->master = NULL;
		return err;
	}
	log_info("registered with master %s:%u", b->cfg.master_host, b->cfg.master_port);
	return 0;
}

static void on_reconnect(struct evloop *ev, void *arg)
{
	struct borrower *b = arg;

	if (b->master || master_connect(b) < 0)
		return;
	evloop_del_timer(ev, b->reconnect_timer);
	b->reconnect_timer = 0;
}

static void master_lost(struct borrower *b, int err)
{
	log_warn("master link lost (%s): clients keep being served, reconnecting",
		 strerror(-err));
	evloop_del_fd(b->ev, msgconn_fd(b->master));
	msgconn_free(b->master);
	b->master = NULL;
	b->grant_pending = false;
	if (!b->reconnect_timer && !b->leaving)
		b->reconnect_timer = evloop_add_timer(b->ev, 1000, true, on_reconnect, b);
}

/* ------------------------------------------------ life cycle */

/* leave - clean shutdown: clients are gone, give every slab back, Leave-Req, wait
 * for Leave-Notify. */
static void leave(struct borrower *b)
{
	static uint32_t handles[B_MAX_SLABS];
	struct wire_msg m = { .cmd = WIRE_LEAVE_REQ };
	unsigned n = 0;
	uint64_t deadline;

	b->leaving = true;
	for (unsigned i = 0; i < B_MAX_SLABS; i++) {
		if (!b->slabs[i].used)
			continue;
		buddy_remove_slab(b->alloc, i + 1, true);
		handles[n++] = i + 1;
	}
	node_send_return(b, handles, n);
	for (unsigned i = 0; i < n; i++)
		store_slab_release(b, handles[i]);
	m.leave_req.node_id = b->self->id;
	if (!b->master || send_master(b, &m)) {
		log_warn("leaving without the master: %u slabs could not be returned", n);
		return;
	}
	log_info("returned %u slabs, waiting for leave-notify", n);
	deadline = evloop_now_ms() + 10000;
	while (!b->left && b->master && evloop_now_ms() < deadline) {
		struct pollfd pfd = { .fd = msgconn_fd(b->master), .events = POLLIN };

		if (poll(&pfd, 1, 200) > 0 && read_master(b))
			break;
	}
	if (!b->left)
		log_warn("no leave-notify from the master; exiting anyway");
}

static void on_signal(struct evloop *ev, int signo, uint32_t events, void *arg)
{
	log_info("signal %d: shutting down", signo);
	evloop_stop(ev);
}

static int borrower_init(struct borrower *b, const char *cfgpath, uint32_t id)
{
	char err[256];
	int r;

	r = config_load(cfgpath, &b->cfg, err, sizeof(err));
	if (r) {
		fprintf(stderr, "rtmem-borrower: %s\n", err);
		return r;
	}
	b->self = config_node(&b->cfg, id);
	if (!b->self || b->self->role != ROLE_BORROWER) {
		fprintf(stderr, "rtmem-borrower: %s: node %u is not a borrower\n", cfgpath, id);
		return -EINVAL;
	}
	b->policy = policy_first_find(b->cfg.policy.first);
	if (!b->policy) {
		fprintf(stderr, "rtmem-borrower: unknown first-level policy '%s'\n",
			b->cfg.policy.first);
		return -EINVAL;
	}
	b->params = (struct policy_params){
		.p_percent = b->cfg.policy.p_percent,
		.threshold = b->cfg.policy.threshold,
		.reserve = b->cfg.policy.reserve,
		.grant_pages = b->cfg.policy.grant_pages,
	};
	b->slab_pages = b->cfg.slab_size / RTM_PAGE_SIZE;
	if (b->slab_pages > (1u << BUDDY_MAX_ORDER)) {
		fprintf(stderr, "rtmem-borrower: %s: slab_size above %u MiB is not supported\n",
			cfgpath, (1u << BUDDY_MAX_ORDER) / 256);
		return -EINVAL;
	}
	b->mem_limit = b->self->mem_limit ? b->self->mem_limit / RTM_PAGE_SIZE
					  : POLICY_NO_TARGET;
	for (unsigned i = 0; i < b->cfg.n_nodes; i++)
		if (b->cfg.nodes[i].role == ROLE_DONOR)
			b->donors[b->n_donors++].cfg = &b->cfg.nodes[i];
	b->alloc = buddy_new();
	b->index = pindex_new();
	b->ev = evloop_new();
	b->tp = rdma_transport_create(b->cfg.transport, 256);
	if (!b->tp && errno == ENODEV) {
		fprintf(stderr, "rtmem-borrower: %s: transport = verbs but no usable RDMA "
			"device (see the log line above)\n", cfgpath);
		return -ENODEV;
	}
	if (!b->alloc || !b->index || !b->ev || !b->tp)
		return -ENOMEM;
	return store_init(b);
}

static void borrower_fini(struct borrower *b)
{
	store_fini(b);
	for (unsigned i = 0; i < b->n_donors; i++)
		if (b->donors[i].conn)
			rdma_conn_close(b->tp, b->donors[i].conn);
	if (b->tp)
		rdma_destroy(b->tp);
	if (b->master)
		msgconn_free(b->master);
	while (b->deferred) {
		struct deferred *d = b->deferred;

		b->deferred = d->next;
		free(d);
	}
	pindex_free(b->index);
	buddy_free_all(b->alloc);
	evloop_free(b->ev);
}

static void usage(void)
{
	fprintf(stderr, "usage: rtmem-borrower -c CONFIG -n NODE_ID [-v]\n");
}

int main(int argc, char **argv)
{
	static struct borrower bw;
	struct borrower *b = &bw;
	struct nbd_server *nbd = NULL;
	const char *cfgpath = NULL;
	long id = -1;
	int opt, err;

	log_init("rtmem-borrower", LOG_INFO);
	while ((opt = getopt(argc, argv, "c:n:vh")) != -1) {
		switch (opt) {
		case 'c':
			cfgpath = optarg;
			break;
		case 'n':
			id = strtol(optarg, NULL, 10);
			break;
		case 'v':
			log_init("rtmem-borrower", LOG_DEBUG);
			break;
		default:
			usage();
			return opt == 'h' ? 0 : 2;
		}
	}
	if (!cfgpath || id <= 0) {
		usage();
		return 2;
	}
	err = borrower_init(b, cfgpath, (uint32_t)id);
	if (err)
		goto out;
	/* The borrower serves swap-like traffic: it must never wait on swap itself. */
	if (mlockall(MCL_CURRENT | MCL_FUTURE))
		log_warn("mlockall: %s: the borrower's memory may be swapped", strerror(errno));
	evloop_on_signal(b->ev, SIGINT, on_signal, b);
	evloop_on_signal(b->ev, SIGTERM, on_signal, b);
	signal(SIGPIPE, SIG_IGN);
	for (int tries = 0; (err = master_connect(b)) < 0; tries++) {
		if (tries == 150) {
			log_err("master %s:%u unreachable: %s", b->cfg.master_host,
				b->cfg.master_port, strerror(-err));
			goto out;
		}
		usleep(200 * 1000);
	}
	b->clients = clients_start(b, b->ev, b->self->socket_path);
	if (!b->clients) {
		err = -errno;
		log_err("client socket %s: %s", b->self->socket_path, strerror(errno));
		goto out;
	}
	err = nbd_start(b, b->ev, &b->cfg, b->self, &nbd);
	if (err) {
		clients_stop(b->clients);
		goto out;
	}
	evloop_add_timer(b->ev, b->cfg.stats_interval_ms, true, on_tick, b);
	log_info("node %u serving clients on %s (policy %s)", b->self->id,
		 b->self->socket_path, b->policy->name);
	err = evloop_run(b->ev);
	nbd_stop(nbd);
	clients_stop(b->clients);
	leave(b);
out:
	borrower_fini(b);
	return err ? 1 : 0;
}
