/* nodes.c - rtmem-master's node state machine (Inactive, Active, Leaving, Recovery),
 * the slab ownership table (donor slab -> owning borrower) and the Grant-Any /
 * Grant / Return / Leave / Invalidate flows. The master never touches page data: it
 * relays slab references and keeps the table that says who owns what.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "master/master-internal.h"

#define LOG_AREA "master"

static const char *role_str(const struct mnode *n)
{
	return config_role_name(n->cfg->role);
}

static void set_state(struct mnode *n, enum node_state s, const char *why)
{
	if (n->state == s)
		return;
	log_info("node %u (%s): %s -> %s (%s)", n->cfg->id, role_str(n),
		 wire_state_name(n->state), wire_state_name(s), why);
	n->state = s;
}

static uint64_t slab_pages(const struct mnode *d)
{
	return d->slab_size / RTM_PAGE_SIZE;
}

static bool is_donor(const struct mnode *n)
{
	return n->cfg->role == ROLE_DONOR;
}

static bool is_borrower(const struct mnode *n)
{
	return n->cfg->role == ROLE_BORROWER;
}

struct mnode *master_node(struct master *m, uint32_t id)
{
	for (unsigned i = 0; i < m->cfg.n_nodes; i++)
		if (m->nodes[i].cfg->id == id)
			return &m->nodes[i];
	return NULL;
}

void master_nodes_init(struct master *m)
{
	for (unsigned i = 0; i < m->cfg.n_nodes; i++) {
		struct mnode *n = &m->nodes[i];

		memset(n, 0, sizeof(*n));
		n->cfg = &m->cfg.nodes[i];
		n->state = NODE_INACTIVE;
		n->enabled = true;
		n->mem_limit = n->cfg->mem_limit ? n->cfg->mem_limit / RTM_PAGE_SIZE
						 : UINT64_MAX;
	}
}

void master_nodes_fini(struct master *m)
{
	for (unsigned i = 0; i < m->cfg.n_nodes; i++) {
		free(m->nodes[i].slabs);
		free(m->nodes[i].stats);
		m->nodes[i].slabs = NULL;
		m->nodes[i].stats = NULL;
	}
}

static void broadcast(struct master *m, const struct wire_msg *msg, const struct mnode *skip)
{
	for (unsigned i = 0; i < m->cfg.n_nodes; i++)
		if (&m->nodes[i] != skip)
			master_node_send(&m->nodes[i], msg);
}

static void send_enable(struct mnode *to, uint32_t id, bool enable)
{
	struct wire_msg e = { .cmd = WIRE_ENABLE_NODE };

	e.enable_node.node_id = id;
	e.enable_node.enable = enable;
	master_node_send(to, &e);
}

static void broadcast_enable(struct master *m, uint32_t id, bool enable)
{
	for (unsigned i = 0; i < m->cfg.n_nodes; i++)
		send_enable(&m->nodes[i], id, enable);
}

/* A slab reference from the wire -> its table entry at donor @d, or NULL. */
static struct mslab *slab_lookup(struct mnode *d, const struct wire_slab *s)
{
	if (!d->slabs || s->donor != d->cfg->id || s->length != d->slab_size ||
	    s->offset % d->slab_size || s->offset / d->slab_size >= d->n_slabs)
		return NULL;
	return &d->slabs[s->offset / d->slab_size];
}

static void slab_set_owner(struct mnode *d, struct mslab *sl, struct mnode *b, uint64_t key)
{
	sl->owner = b->cfg->id;
	sl->key = key;
	d->slabs_lent++;
	b->slabs_owned++;
	b->pages_owned += slab_pages(d);
}

static void slab_clear_owner(struct mnode *d, struct mslab *sl, struct mnode *b)
{
	sl->owner = 0;
	d->slabs_lent--;
	if (b) {
		b->slabs_owned--;
		b->pages_owned -= slab_pages(d);
	}
}

static void ref_of(const struct mnode *d, const struct mslab *sl, struct wire_slab *out)
{
	out->donor = d->cfg->id;
	out->offset = (uint64_t)(sl - d->slabs) * d->slab_size;
	out->length = d->slab_size;
	out->key = sl->key;
}

/* Leave finishes once the leaving node has no slab lent (donor) or owned (borrower). */
static void check_leave_done(struct master *m, struct mnode *n)
{
	struct wire_msg msg = { .cmd = WIRE_LEAVE_NOTIFY };

	if (n->state != NODE_LEAVING || (is_donor(n) ? n->slabs_lent : n->slabs_owned))
		return;
	msg.leave_notify.node_id = n->cfg->id;
	master_node_send(n, &msg);
	set_state(n, NODE_INACTIVE, "leave complete");
	if (is_donor(n))
		broadcast_enable(m, n->cfg->id, false);
}

static void check_all_leaves(struct master *m)
{
	for (unsigned i = 0; i < m->cfg.n_nodes; i++)
		check_leave_done(m, &m->nodes[i]);
}

/* ------------------------------------------------------------ register/stats */

static int donor_geometry(struct mnode *n, uint64_t pages, uint64_t slab_size)
{
	uint64_t n_slabs;
	struct mslab *t;

	if (slab_size < RTM_PAGE_SIZE || (slab_size & (slab_size - 1)) || !pages ||
	    pages > UINT64_MAX / RTM_PAGE_SIZE || (pages * RTM_PAGE_SIZE) % slab_size) {
		log_warn("node %u: bad REGISTER geometry: %llu pages, slab size %llu",
			 n->cfg->id, (unsigned long long)pages, (unsigned long long)slab_size);
		return -EINVAL;
	}
	n_slabs = pages * RTM_PAGE_SIZE / slab_size;
	if (n_slabs > MASTER_MAX_SLABS_PER_DONOR) {
		log_warn("node %u: %llu slabs is too many", n->cfg->id,
			 (unsigned long long)n_slabs);
		return -EINVAL;
	}
	if (n->slabs && n->slab_size == slab_size && n->n_slabs == n_slabs)
		return 0; /* re-register (e.g. after a master restart): keep the table */
	if (n->slabs && n->slabs_lent) {
		log_warn("node %u: REGISTER changes the pool while %u slabs are lent; kept the old one",
			 n->cfg->id, n->slabs_lent);
		return 0;
	}
	t = calloc(n_slabs, sizeof(*t));
	if (!t)
		return -ENOMEM;
	free(n->slabs);
	n->slabs = t;
	n->n_slabs = (uint32_t)n_slabs;
	n->slab_size = slab_size;
	n->slabs_lent = 0;
	n->reserved = 0;
	return 0;
}

int master_on_register(struct master *m, struct mnode *n, const struct wire_msg *msg)
{
	uint32_t id = n->cfg->id;
	int rc;

	if (msg->reg.node_id != id || msg->reg.role != n->cfg->role) {
		log_warn("node %u: REGISTER names node %u role %u; ignored", id,
			 msg->reg.node_id, msg->reg.role);
		return -EINVAL;
	}
	if (is_donor(n)) {
		rc = donor_geometry(n, msg->reg.pages, msg->reg.slab_size);
		if (rc < 0)
			return rc;
		log_info("node %u: donor registered, %u slabs of %llu KiB", id, n->n_slabs,
			 (unsigned long long)(n->slab_size >> 10));
	} else {
		log_info("node %u: borrower registered", id);
	}
	if (n->state == NODE_ACTIVE || n->state == NODE_LEAVING)
		log_info("node %u: re-registered while %s", id, wire_state_name(n->state));
	else
		set_state(n, NODE_ACTIVE, "register");

	if (is_donor(n) && n->state == NODE_ACTIVE) {
		struct wire_msg e = { .cmd = WIRE_ENABLE_NODE };

		e.enable_node.node_id = id;
		e.enable_node.enable = 1;
		broadcast(m, &e, n);
	}
	/* tell the new node about every active donor (itself included) */
	for (unsigned i = 0; i < m->cfg.n_nodes; i++) {
		struct mnode *d = &m->nodes[i];

		if (is_donor(d) && d->state == NODE_ACTIVE && d->enabled)
			send_enable(n, d->cfg->id, true);
	}
	if (is_borrower(n) && n->mem_limit != UINT64_MAX) {
		struct wire_msg l = { .cmd = WIRE_MEM_LIMIT };

		l.mem_limit.node_id = id;
		l.mem_limit.pages = n->mem_limit;
		master_node_send(n, &l);
	}
	return 0;
}

int master_on_statistics(struct master *m, struct mnode *n, const struct wire_msg *msg)
{
	if (msg->stats.node_id != n->cfg->id) {
		log_warn("node %u: STATISTICS for node %u; ignored", n->cfg->id,
			 msg->stats.node_id);
		return -EINVAL;
	}
	if (!n->stats) {
		n->stats = malloc(sizeof(*n->stats));
		if (!n->stats)
			return -ENOMEM;
	}
	*n->stats = *msg;
	log_dbg("node %u: stats total %llu free %llu clients %u", n->cfg->id,
		(unsigned long long)msg->stats.total_pages,
		(unsigned long long)msg->stats.free_pages, msg->stats.n_clients);
	return 0;
}

/* ------------------------------------------------------------ grants */

static uint64_t live(uint64_t v, uint64_t until)
{
	return evloop_now_ms() < until ? v : 0;
}

static uint64_t donor_free_pages(const struct mnode *d)
{
	uint64_t free = (uint64_t)(d->n_slabs - d->slabs_lent) * slab_pages(d);
	uint64_t res = live(d->reserved, d->reserved_until);

	free = free > res ? free - res : 0;
	/* after a master restart the table may not know older grants; the donor does */
	if (d->stats && d->stats->stats.free_pages < free)
		free = d->stats->stats.free_pages;
	return free;
}

int master_on_grant_any(struct master *m, struct mnode *b, const struct wire_msg *msg)
{
	struct policy_donor donors[CONFIG_MAX_NODES];
	struct policy_forward fwd[CONFIG_MAX_NODES];
	uint64_t pages = msg->grant_any.pages, used, now = evloop_now_ms();
	unsigned nd = 0, nf;

	if (msg->grant_any.node_id != b->cfg->id || b->state != NODE_ACTIVE) {
		log_warn("node %u (%s): GRANT_ANY for node %u ignored", b->cfg->id,
			 wire_state_name(b->state), msg->grant_any.node_id);
		return -EINVAL;
	}
	if (!pages) /* "the policy's usual amount" (greedy-remote's grant_pages) */
		pages = m->pp.grant_pages;
	b->pending = live(b->pending, b->pending_until);
	used = b->pages_owned + b->pending;
	if (b->mem_limit != UINT64_MAX)
		pages = used >= b->mem_limit ? 0
		      : pages < b->mem_limit - used ? pages : b->mem_limit - used;
	if (!pages) {
		log_dbg("node %u: GRANT_ANY %llu pages: at its limit", b->cfg->id,
			(unsigned long long)msg->grant_any.pages);
		return 0;
	}
	for (unsigned i = 0; i < m->cfg.n_nodes; i++) {
		struct mnode *d = &m->nodes[i];

		if (is_donor(d) && d->state == NODE_ACTIVE && d->conn && d->enabled &&
		    d->slabs && donor_free_pages(d))
			donors[nd++] = (struct policy_donor){ d->cfg->id, donor_free_pages(d) };
	}
	nf = nd ? m->policy->place(&m->pp, donors, nd, pages, fwd, CONFIG_MAX_NODES) : 0;
	if (nf > CONFIG_MAX_NODES)
		nf = CONFIG_MAX_NODES;
	for (unsigned i = 0; i < nf; i++) {
		struct mnode *d = master_node(m, fwd[i].donor);
		struct wire_msg f = { .cmd = WIRE_GRANT_FWD };

		if (!d || !is_donor(d) || !d->conn || !fwd[i].pages)
			continue;
		f.grant_fwd.donor = d->cfg->id;
		f.grant_fwd.to = b->cfg->id;
		f.grant_fwd.pages = fwd[i].pages;
		if (master_node_send(d, &f) < 0)
			continue;
		d->reserved = live(d->reserved, d->reserved_until) + fwd[i].pages;
		d->reserved_until = now + MASTER_PENDING_MS;
		b->pending += fwd[i].pages;
		b->pending_until = now + MASTER_PENDING_MS;
		log_info("node %u: GRANT_FWD %llu pages from donor %u", b->cfg->id,
			 (unsigned long long)fwd[i].pages, d->cfg->id);
	}
	if (!nf)
		log_info("node %u: GRANT_ANY %llu pages: no donor can serve it", b->cfg->id,
			 (unsigned long long)pages);
	return 0;
}

/* send RETURN(from) of @s[0..n) to donor @d */
static void send_return(struct mnode *d, uint32_t from, const struct wire_slab *s, unsigned n)
{
	struct wire_msg r = { .cmd = WIRE_RETURN };

	if (!n)
		return;
	r.ret.from = from;
	r.ret.n_slabs = n;
	memcpy(r.ret.slabs, s, n * sizeof(*s));
	master_node_send(d, &r);
}

int master_on_grant(struct master *m, struct mnode *d, const struct wire_msg *msg)
{
	static struct wire_msg out, back;
	uint32_t id = d->cfg->id, n = msg->grant.n_slabs;
	struct mnode *b = master_node(m, msg->grant.to);
	uint64_t granted = 0;
	bool refuse = !b || !is_borrower(b) || !b->conn || b->state != NODE_ACTIVE ||
		      d->state != NODE_ACTIVE;

	if (!b || !is_borrower(b))
		log_warn("node %u: GRANT to %u, which is no borrower: slabs sent back", id,
			 msg->grant.to);
	else if (refuse)
		log_info("node %u: GRANT to node %u (%s, %s): slabs sent back", id,
			 b->cfg->id, b->conn ? "connected" : "gone", wire_state_name(b->state));
	memset(&out.grant, 0, sizeof(out.grant));
	out.cmd = WIRE_GRANT;
	out.grant.to = msg->grant.to;
	back.ret.n_slabs = 0;
	for (uint32_t i = 0; i < n && i < WIRE_MAX_SLABS; i++) {
		const struct wire_slab *s = &msg->grant.slabs[i];
		struct mslab *sl = slab_lookup(d, s);

		if (!sl) {
			log_warn("node %u: GRANT of slab %u@%llu+%llu outside its pool; dropped",
				 id, s->donor, (unsigned long long)s->offset,
				 (unsigned long long)s->length);
			continue;
		}
		if (sl->owner) {
			log_err("node %u: GRANT of slab @%llu already owned by node %u; dropped",
				id, (unsigned long long)s->offset, sl->owner);
			continue;
		}
		if (refuse || (b->mem_limit != UINT64_MAX &&
			       b->pages_owned + slab_pages(d) > b->mem_limit)) {
			back.ret.slabs[back.ret.n_slabs++] = *s;
			continue;
		}
		slab_set_owner(d, sl, b, s->key);
		out.grant.slabs[out.grant.n_slabs++] = *s;
		granted += slab_pages(d);
	}
	d->reserved = d->reserved > granted ? d->reserved - granted : 0;
	if (b) {
		b->pending = b->pending > granted ? b->pending - granted : 0;
		if (out.grant.n_slabs) {
			log_info("node %u: %u slabs of donor %u granted (owns %u slabs, %llu pages)",
				 b->cfg->id, out.grant.n_slabs, id, b->slabs_owned,
				 (unsigned long long)b->pages_owned);
			master_node_send(b, &out);
		}
	}
	if (back.ret.n_slabs && !refuse)
		log_info("node %u: %u slabs over its mem limit sent back to donor %u",
			 msg->grant.to, back.ret.n_slabs, id);
	send_return(d, msg->grant.to, back.ret.slabs, back.ret.n_slabs);
	return 0;
}

int master_on_return(struct master *m, struct mnode *b, const struct wire_msg *msg)
{
	static struct wire_slab per[WIRE_MAX_SLABS];
	uint32_t id = b->cfg->id, n = msg->ret.n_slabs;

	if (msg->ret.from != id) {
		log_warn("node %u: RETURN on behalf of node %u; ignored", id, msg->ret.from);
		return -EINVAL;
	}
	for (uint32_t i = 0; i < n && i < WIRE_MAX_SLABS; i++) {
		const struct wire_slab *s = &msg->ret.slabs[i];
		struct mnode *d = master_node(m, s->donor);
		struct mslab *sl = d && is_donor(d) ? slab_lookup(d, s) : NULL;

		if (!sl)
			log_warn("node %u: RETURN of unknown slab %u@%llu; dropped", id, s->donor,
				 (unsigned long long)s->offset);
		else if (sl->owner == id)
			slab_clear_owner(d, sl, b);
		else if (sl->owner)
			log_err("node %u: RETURN of slab %u@%llu owned by node %u; dropped", id,
				s->donor, (unsigned long long)s->offset, sl->owner);
		else /* not in the table (master restart): the donor checks it */
			log_warn("node %u: RETURN of slab %u@%llu not recorded as its; relayed",
				 id, s->donor, (unsigned long long)s->offset);
	}
	/* relay, grouped by donor */
	for (unsigned k = 0; k < m->cfg.n_nodes; k++) {
		struct mnode *d = &m->nodes[k];
		unsigned np = 0;

		if (!is_donor(d))
			continue;
		for (uint32_t i = 0; i < n && i < WIRE_MAX_SLABS; i++) {
			struct mslab *sl = slab_lookup(d, &msg->ret.slabs[i]);

			if (sl && !sl->owner)
				per[np++] = msg->ret.slabs[i];
		}
		if (np)
			log_info("node %u: returned %u slabs to donor %u (owns %u slabs)", id, np,
				 d->cfg->id, b->slabs_owned);
		send_return(d, id, per, np);
	}
	check_all_leaves(m);
	return 0;
}

/* ------------------------------------------------------------ leave / failure */

int master_leave(struct master *m, uint32_t id)
{
	struct mnode *x = master_node(m, id);

	if (!x)
		return -ENOENT;
	if (x->state == NODE_LEAVING)
		return -EALREADY;
	if (x->state != NODE_ACTIVE)
		return -EINVAL;
	set_state(x, NODE_LEAVING, "leave request");
	if (is_donor(x)) {
		bool told[CONFIG_MAX_NODES] = { false };

		for (uint32_t i = 0; i < x->n_slabs; i++) {
			struct mnode *b = x->slabs[i].owner ? master_node(m, x->slabs[i].owner)
							    : NULL;
			struct wire_msg f = { .cmd = WIRE_FORCE_RETURN };

			if (!b || told[b - m->nodes])
				continue;
			told[b - m->nodes] = true;
			f.force_return.donor = id;
			log_info("node %u: FORCE_RETURN of donor %u's slabs (owns %u)",
				 b->cfg->id, id, b->slabs_owned);
			master_node_send(b, &f);
		}
	}
	check_leave_done(m, x);
	return 0;
}

/* Drop every slab of donor @d: the owners are told with INVALIDATE(d). */
static void invalidate_donor(struct master *m, struct mnode *d)
{
	struct wire_msg inv = { .cmd = WIRE_INVALIDATE };
	uint32_t lost = 0;

	set_state(d, NODE_RECOVERY, d->conn ? "invalidate" : "connection lost");
	for (uint32_t i = 0; d->slabs && i < d->n_slabs; i++) {
		struct mnode *b;

		if (!d->slabs[i].owner)
			continue;
		b = master_node(m, d->slabs[i].owner);
		if (b)
			b->lost_slabs++;
		slab_clear_owner(d, &d->slabs[i], b);
		lost++;
	}
	d->reserved = 0;
	inv.invalidate.node_id = d->cfg->id;
	for (unsigned i = 0; i < m->cfg.n_nodes; i++)
		if (is_borrower(&m->nodes[i]))
			master_node_send(&m->nodes[i], &inv);
	log_info("node %u: invalidated, %u lent slabs lost", d->cfg->id, lost);
	set_state(d, NODE_INACTIVE, "invalidated");
	broadcast_enable(m, d->cfg->id, false);
	check_all_leaves(m);
}

int master_invalidate(struct master *m, uint32_t id)
{
	struct mnode *d = master_node(m, id);
	struct wire_msg inv = { .cmd = WIRE_INVALIDATE };

	if (!d)
		return -ENOENT;
	if (!is_donor(d))
		return -EINVAL;
	if (d->state != NODE_ACTIVE && d->state != NODE_LEAVING)
		return -EALREADY;
	inv.invalidate.node_id = id;
	master_node_send(d, &inv); /* the donor revokes its keys too */
	invalidate_donor(m, d);
	return 0;
}

/* A dead borrower's slabs go back to their donors, on its behalf. */
static void release_borrower(struct master *m, struct mnode *b)
{
	static struct wire_slab per[WIRE_MAX_SLABS];

	for (unsigned k = 0; k < m->cfg.n_nodes; k++) {
		struct mnode *d = &m->nodes[k];
		unsigned np = 0;

		for (uint32_t i = 0; d->slabs && i < d->n_slabs; i++) {
			if (d->slabs[i].owner != b->cfg->id)
				continue;
			ref_of(d, &d->slabs[i], &per[np++]);
			slab_clear_owner(d, &d->slabs[i], b);
			if (np == WIRE_MAX_SLABS) {
				send_return(d, b->cfg->id, per, np);
				np = 0;
			}
		}
		send_return(d, b->cfg->id, per, np);
	}
	b->pending = 0;
}

void master_node_lost(struct master *m, struct mnode *n)
{
	log_info("node %u (%s): disconnected while %s", n->cfg->id, role_str(n),
		 wire_state_name(n->state));
	free(n->stats);
	n->stats = NULL;
	if (n->state == NODE_INACTIVE)
		return;
	if (is_donor(n)) {
		invalidate_donor(m, n);
	} else {
		if (n->slabs_owned)
			log_info("node %u: returning its %u slabs to their donors", n->cfg->id,
				 n->slabs_owned);
		release_borrower(m, n);
		set_state(n, NODE_INACTIVE, "connection lost");
		check_all_leaves(m);
	}
}

/* ------------------------------------------------------------ admin */

int master_set_mem_limit(struct master *m, uint32_t id, uint64_t pages)
{
	struct mnode *b = master_node(m, id);
	struct wire_msg l = { .cmd = WIRE_MEM_LIMIT };

	if (!b)
		return -ENOENT;
	if (!is_borrower(b))
		return -EINVAL;
	b->mem_limit = pages;
	log_info("node %u: mem limit %llu pages", id, (unsigned long long)pages);
	l.mem_limit.node_id = id;
	l.mem_limit.pages = pages;
	master_node_send(b, &l);
	return 0;
}

int master_enable(struct master *m, uint32_t id, bool enable)
{
	struct mnode *d = master_node(m, id);

	if (!d)
		return -ENOENT;
	if (!is_donor(d))
		return -EINVAL;
	d->enabled = enable;
	log_info("node %u: %s by admin", id, enable ? "enabled" : "disabled");
	if (d->state == NODE_ACTIVE)
		broadcast_enable(m, id, enable);
	return 0;
}

void master_status(struct master *m, struct wire_msg *out)
{
	memset(out, 0, sizeof(*out));
	out->cmd = WIRE_STATUS_REPLY;
	for (unsigned i = 0; i < m->cfg.n_nodes && i < WIRE_MAX_NODES; i++) {
		struct mnode *n = &m->nodes[i];
		struct wire_node_status *s = &out->status.nodes[out->status.n_nodes++];

		s->id = n->cfg->id;
		s->role = (uint8_t)n->cfg->role;
		s->state = (uint8_t)n->state;
		s->connected = n->conn != NULL;
		s->mem_limit = n->mem_limit;
		s->lost_slabs = n->lost_slabs;
		if (n->stats && n->stats->stats.lost_slabs > s->lost_slabs)
			s->lost_slabs = n->stats->stats.lost_slabs;
		if (is_donor(n)) {
			s->total_pages = (uint64_t)n->n_slabs * slab_pages(n);
			s->free_pages = (uint64_t)(n->n_slabs - n->slabs_lent) * slab_pages(n);
			s->slabs_free = n->n_slabs - n->slabs_lent;
		} else {
			s->total_pages = n->pages_owned;
			s->free_pages = n->stats ? n->stats->stats.free_pages : 0;
			s->slabs_owned = n->slabs_owned;
		}
		if (!n->stats || !is_borrower(n))
			continue;
		for (uint32_t k = 0; k < n->stats->stats.n_clients && k < WIRE_MAX_CLIENTS; k++) {
			struct wire_client_stats *c;

			if (out->status.n_clients == WIRE_MAX_CLIENTS) {
				log_warn("status: more than %u clients, list truncated",
					 WIRE_MAX_CLIENTS);
				break;
			}
			c = &out->status.clients[out->status.n_clients++];
			*c = n->stats->stats.clients[k];
			c->node = n->cfg->id;
		}
	}
}
