/* verbs-server.c - the donor side of the verbs back end.
 *
 * An rdma_cm listener bound to the donor's address (rdma_cm's TCP port space: the
 * same number as the TCP data plane does not clash). Its own thread accepts borrowers:
 * the connect private data must carry the magic, version 1 and a node id; the accept
 * private data returns the pool's base virtual address and length. Each connection
 * gets an RC QP on the donor's one PD (and a one-entry CQ: a responder of one-sided
 * READ/WRITE produces no completions). The donor's CPU does nothing per page.
 *
 * Access control is the NIC's: each lent slab is its own memory region, registered
 * with REMOTE_READ | REMOTE_WRITE at grant and deregistered at revoke, so a revoked
 * slab's rkey fails before the slab can be granted again. Verbs does not promise that
 * a deregistered rkey is never reissued, so each slab remembers its last rkeys and a
 * registration repeating one is redone (vb_reg_fresh). The rkey is not bound to a
 * borrower: any connected borrower holding the rkey of a live MR can use it (a PD per
 * borrower would be stronger; not done).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <infiniband/verbs.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/common.h"
/* rdma.h's inline rdma_connect() wrapper shares its name with librdmacm's. */
#define rdma_connect rtm_rdma_connect_wrapper
#include "rdma/rdma-internal.h"
#include "rdma/verbs-book.h"
#undef rdma_connect
#include <rdma/rdma_cma.h>

#define LOG_AREA "rdma-verbs-srv"

struct vs_conn {
	struct vs_conn *next;
	struct rdma_cm_id *id;
	struct ibv_cq *cq;
	uint32_t node;
};

struct rdma_verbs_server {
	struct rdma_event_channel *ech;
	struct rdma_cm_id *listen;
	struct ibv_pd *pd;
	uint8_t *pool;
	uint64_t pool_len, slab_size;
	unsigned nslabs;
	struct ibv_mr **mrs;
	struct vb_rkeys *rkeys;  /* per slab: its last rkeys, never reissued */
	pthread_mutex_t lock;    /* mrs, rkeys */
	struct vs_conn *conns;   /* owned by the thread */
	int stopfd;
	pthread_t thread;
	bool running;
};

static void conn_free(struct vs_conn *c)
{
	if (c->id) {
		if (c->id->qp)
			rdma_destroy_qp(c->id);
		rdma_destroy_id(c->id);
	}
	if (c->cq)
		ibv_destroy_cq(c->cq);
	free(c);
}

static void accept_data(const struct rdma_verbs_server *s, uint8_t *pd, uint32_t status)
{
	memset(pd, 0, RVB_ACCEPT_SIZE);
	wire_put32(pd, RVB_MAGIC);
	wire_put16(pd + 4, RVB_VERSION);
	wire_put32(pd + 8, status);
	wire_put64(pd + 16, (uint64_t)(uintptr_t)s->pool);
	wire_put64(pd + 24, s->pool_len);
}

static void refuse(struct rdma_verbs_server *s, struct rdma_cm_id *id, uint32_t status)
{
	uint8_t pd[RVB_ACCEPT_SIZE];

	accept_data(s, pd, status);
	rdma_reject(id, pd, sizeof(pd));
	rdma_destroy_id(id);
}

/* drop_node - tear down @node's existing connections. A borrower keeps one connection
 * per donor, so a new request from the same node means the old one is dead (a borrower
 * that crashed or lost its link sends no DISCONNECT): without this its QP, CQ and cm id
 * would stay until the donor exits. */
static void drop_node(struct rdma_verbs_server *s, uint32_t node)
{
	struct vs_conn **pp = &s->conns;

	while (*pp) {
		struct vs_conn *c = *pp;

		if (c->node != node) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		log_info("node %u: reconnects: its previous verbs connection is torn down", node);
		rdma_disconnect(c->id);
		conn_free(c);
	}
}

/* on_connect_request - @hp / @hlen: the connect private data (copied: the event is
 * acked already, since destroying an id with an unacked event would hang). */
static void on_connect_request(struct rdma_verbs_server *s, struct rdma_cm_id *id,
			       const uint8_t *hp, size_t hlen, uint8_t initiator_depth)
{
	struct ibv_qp_init_attr qa = { 0 };
	struct rdma_conn_param cp = { 0 };
	struct ibv_device_attr da;
	uint8_t pd[RVB_ACCEPT_SIZE];
	struct vs_conn *c;
	uint32_t node;

	if (hlen < RVB_CONNECT_SIZE || wire_get32(hp) != RVB_MAGIC || hp[6] || hp[7]) {
		log_warn("connect request without a valid hello: refused");
		refuse(s, id, EPROTO);
		return;
	}
	if (wire_get16(hp + 4) != RVB_VERSION) {
		refuse(s, id, EPROTONOSUPPORT);
		return;
	}
	node = wire_get32(hp + 8);
	if (!node || node == UINT32_MAX || id->verbs != s->pd->context) {
		log_warn("connect request from node %u: refused (%s)", node,
			 node && node != UINT32_MAX ? "other device" : "bad node id");
		refuse(s, id, EINVAL);
		return;
	}
	drop_node(s, node);
	c = calloc(1, sizeof(*c));
	if (!c) {
		refuse(s, id, ENOMEM);
		return;
	}
	c->id = id;
	c->node = node;
	id->context = c;
	c->cq = ibv_create_cq(id->verbs, 1, NULL, NULL, 0);
	qa.send_cq = qa.recv_cq = c->cq;
	qa.qp_type = IBV_QPT_RC;
	qa.cap.max_send_wr = qa.cap.max_recv_wr = 1;
	qa.cap.max_send_sge = qa.cap.max_recv_sge = 1;
	if (!c->cq || ibv_query_device(id->verbs, &da) || rdma_create_qp(id, s->pd, &qa)) {
		log_err("node %u: queue pair: %s", node, strerror(errno));
		c->id = NULL;
		conn_free(c);
		refuse(s, id, ENOMEM);
		return;
	}
	accept_data(s, pd, 0);
	cp.private_data = pd;
	cp.private_data_len = sizeof(pd);
	cp.responder_resources = initiator_depth < da.max_qp_rd_atom
					 ? initiator_depth
					 : (uint8_t)da.max_qp_rd_atom;
	cp.initiator_depth = 0;
	cp.rnr_retry_count = 7;
	if (rdma_accept(id, &cp)) {
		log_err("node %u: rdma_accept: %s", node, strerror(errno));
		/* reject, so the borrower learns at once instead of timing out */
		rdma_destroy_qp(id);
		c->id = NULL;
		conn_free(c);
		refuse(s, id, EIO);
		return;
	}
	c->next = s->conns;
	s->conns = c;
	log_info("node %u: verbs connection accepted (%u RDMA READs outstanding)", node,
		 cp.responder_resources);
}

static void conn_gone(struct rdma_verbs_server *s, struct rdma_cm_id *id, const char *why)
{
	struct vs_conn **pp;

	for (pp = &s->conns; *pp; pp = &(*pp)->next)
		if ((*pp)->id == id) {
			struct vs_conn *c = *pp;

			*pp = c->next;
			log_info("node %u: verbs connection %s", c->node, why);
			conn_free(c);
			return;
		}
}

static void *server_thread(void *arg)
{
	struct rdma_verbs_server *s = arg;
	struct pollfd pfd[2] = { { .fd = s->ech->fd, .events = POLLIN },
				 { .fd = s->stopfd, .events = POLLIN } };

	for (;;) {
		struct rdma_cm_event *ev;
		struct rdma_cm_id *id;
		enum rdma_cm_event_type type;

		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents)
			break;
		if (!(pfd[0].revents & POLLIN))
			continue;
		if (rdma_get_cm_event(s->ech, &ev))
			continue;
		type = ev->event;
		id = ev->id;
		if (type == RDMA_CM_EVENT_CONNECT_REQUEST) {
			uint8_t hello[RVB_CONNECT_SIZE] = { 0 };
			size_t hlen = ev->param.conn.private_data_len;
			/* on the passive side the fields are swapped: this is the
			 * borrower's initiator depth (RDMA READs it keeps outstanding) */
			uint8_t depth = ev->param.conn.responder_resources;

			if (ev->param.conn.private_data)
				memcpy(hello, ev->param.conn.private_data,
				       hlen < sizeof(hello) ? hlen : sizeof(hello));
			rdma_ack_cm_event(ev);
			on_connect_request(s, id, hello, hlen, depth);
			continue;
		}
		rdma_ack_cm_event(ev);
		switch (type) {
		case RDMA_CM_EVENT_ESTABLISHED:
			break;
		case RDMA_CM_EVENT_DISCONNECTED:
			rdma_disconnect(id);
			conn_gone(s, id, "closed");
			break;
		case RDMA_CM_EVENT_CONNECT_ERROR:
		case RDMA_CM_EVENT_UNREACHABLE:
		case RDMA_CM_EVENT_REJECTED:
			conn_gone(s, id, rdma_event_str(type));
			break;
		case RDMA_CM_EVENT_DEVICE_REMOVAL:
			log_err("RDMA device removed: verbs data plane stopped");
			return NULL;
		default:
			break;
		}
	}
	return NULL;
}

/* has_ipc_lock - whether the effective capabilities include CAP_IPC_LOCK (14), which
 * lifts RLIMIT_MEMLOCK for memory registration. */
static bool has_ipc_lock(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	unsigned long long cap = 0;
	char line[128];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = sscanf(line, "CapEff: %llx", &cap) == 1;
	fclose(f);
	return found && (cap >> 14 & 1);
}

/* check_memlock - each lent slab's MR pins its pages, counted against RLIMIT_MEMLOCK
 * (separately from the pool's mlock) unless the process has CAP_IPC_LOCK: say at
 * start-up when lending the whole pool would hit the limit. */
static void check_memlock(uint64_t pool_len)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_MEMLOCK, &rl) || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= pool_len || has_ipc_lock())
		return;
	log_warn("RLIMIT_MEMLOCK is %llu KiB, below the pool's %llu MiB, and no "
		 "CAP_IPC_LOCK: every lent slab is pinned as an MR, so grants will fail "
		 "once that much is lent; raise it (ulimit -l, systemd LimitMEMLOCK=) or "
		 "run as root", (unsigned long long)(rl.rlim_cur >> 10),
		 (unsigned long long)(pool_len >> 20));
}

struct rdma_verbs_server *rdma_verbs_server_create(const char *host, uint16_t port,
						   void *pool, uint64_t pool_len,
						   uint64_t slab_size)
{
	struct addrinfo hints = { .ai_family = AF_INET }, *ai = NULL;
	struct rdma_verbs_server *s;
	char desc[160];
	int r = 0;

	if (!slab_size || pool_len % slab_size) {
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->pool = pool;
	s->pool_len = pool_len;
	s->slab_size = slab_size;
	s->nslabs = (unsigned)(pool_len / slab_size);
	s->stopfd = -1;
	pthread_mutex_init(&s->lock, NULL);
	s->mrs = calloc(s->nslabs, sizeof(*s->mrs));
	s->rkeys = calloc(s->nslabs, sizeof(*s->rkeys));
	s->ech = rdma_create_event_channel();
	if (!s->mrs || !s->rkeys || !s->ech || rdma_create_id(s->ech, &s->listen, s, RDMA_PS_TCP)) {
		r = errno ? -errno : -ENOMEM;
		goto fail;
	}
	if (getaddrinfo(host, NULL, &hints, &ai) || !ai) {
		r = -EADDRNOTAVAIL;
		goto fail;
	}
	((struct sockaddr_in *)ai->ai_addr)->sin_port = htons(port);
	if (rdma_bind_addr(s->listen, ai->ai_addr) || !s->listen->verbs) {
		r = s->listen->verbs ? -errno : -ENODEV;
		log_err("verbs listener on %s:%u: %s", host, port,
			s->listen->verbs ? strerror(-r) : "no RDMA device serves this address");
		goto fail;
	}
	s->pd = ibv_alloc_pd(s->listen->verbs);
	if (!s->pd || rdma_listen(s->listen, 64)) {
		r = -errno;
		goto fail;
	}
	s->stopfd = eventfd(0, EFD_CLOEXEC);
	if (s->stopfd < 0) {
		r = -errno;
		goto fail;
	}
	r = -pthread_create(&s->thread, NULL, server_thread, s);
	if (r)
		goto fail;
	s->running = true;
	check_memlock(pool_len);
	rvb_describe(s->listen->verbs, s->listen->port_num,
		     ((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr, desc, sizeof(desc));
	log_info("verbs listener on %s:%u: %s", host, port, desc);
	freeaddrinfo(ai);
	return s;
fail:
	if (ai)
		freeaddrinfo(ai);
	rdma_verbs_server_destroy(s);
	errno = -r;
	return NULL;
}

struct slab_reg {
	struct rdma_verbs_server *s;
	unsigned idx;
};

static int slab_mr_reg(void *arg, void **mr, uint32_t *rkey)
{
	struct slab_reg *a = arg;
	struct ibv_mr *m;

	errno = 0;
	m = ibv_reg_mr(a->s->pd, a->s->pool + (uint64_t)a->idx * a->s->slab_size,
		       a->s->slab_size,
		       IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE);
	if (!m)
		return errno ? -errno : -ENOMEM;
	*mr = m;
	*rkey = m->rkey;
	return 0;
}

static void slab_mr_dereg(void *arg, void *mr)
{
	struct slab_reg *a = arg;
	int e = ibv_dereg_mr(mr);

	log_info("slab %u: registration repeated a recent rkey; registered again", a->idx);
	if (e)
		log_err("slab %u: deregistering the repeated MR: %s", a->idx, strerror(e));
}

int rdma_verbs_server_reg(struct rdma_verbs_server *s, unsigned idx, uint32_t *rkey)
{
	struct slab_reg a = { s, idx };
	void *mr;
	int r;

	if (idx >= s->nslabs)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	if (s->mrs[idx]) {
		pthread_mutex_unlock(&s->lock);
		return -EBUSY;
	}
	/* a revoked rkey of this slab must stay dead: never lend it again */
	r = vb_reg_fresh(&s->rkeys[idx], slab_mr_reg, slab_mr_dereg, &a, &mr, rkey);
	if (!r)
		s->mrs[idx] = mr;
	pthread_mutex_unlock(&s->lock);
	return r;
}

int rdma_verbs_server_dereg(struct rdma_verbs_server *s, unsigned idx)
{
	int r = 0;

	if (idx >= s->nslabs)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	if (s->mrs[idx]) {
		r = -ibv_dereg_mr(s->mrs[idx]);
		if (!r)
			s->mrs[idx] = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

void rdma_verbs_server_destroy(struct rdma_verbs_server *s)
{
	if (!s)
		return;
	if (s->running) {
		uint64_t one = 1;

		if (write(s->stopfd, &one, sizeof(one)) != sizeof(one))
			log_warn("stop signal: %s", strerror(errno));
		pthread_join(s->thread, NULL);
	}
	while (s->conns) {
		struct vs_conn *c = s->conns;

		s->conns = c->next;
		rdma_disconnect(c->id);
		conn_free(c);
	}
	for (unsigned i = 0; s->mrs && i < s->nslabs; i++)
		if (s->mrs[i])
			ibv_dereg_mr(s->mrs[i]);
	free(s->mrs);
	free(s->rkeys);
	if (s->pd)
		ibv_dealloc_pd(s->pd);
	if (s->listen)
		rdma_destroy_id(s->listen);
	if (s->ech)
		rdma_destroy_event_channel(s->ech);
	if (s->stopfd >= 0)
		close(s->stopfd);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
