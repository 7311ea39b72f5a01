/* wire.c - the control-plane codec. A frame is
 *	u32 length (whole frame, big-endian) | u16 cmd | u16 flags (0) | body
 * and each body is a fixed sequence of big-endian fields: counts before the
 * arrays they size, names as 32-byte NUL-padded fields, error text as u16 length
 * plus bytes. Each message's layout is written once (the *_fields functions) and
 * serves both directions, so encoder and decoder cannot drift apart.
 */
#include "common/common.h"

#include <errno.h>
#include <string.h>

void wire_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

void wire_put32(uint8_t *p, uint32_t v)
{
	wire_put16(p, (uint16_t)(v >> 16));
	wire_put16(p + 2, (uint16_t)v);
}

void wire_put64(uint8_t *p, uint64_t v)
{
	wire_put32(p, (uint32_t)(v >> 32));
	wire_put32(p + 4, (uint32_t)v);
}

uint16_t wire_get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

uint32_t wire_get32(const uint8_t *p)
{
	return ((uint32_t)wire_get16(p) << 16) | wire_get16(p + 2);
}

uint64_t wire_get64(const uint8_t *p)
{
	return ((uint64_t)wire_get32(p) << 32) | wire_get32(p + 4);
}

/* A cursor over a body that either writes fields (encode) or reads them. */
struct cur {
	uint8_t *p;  /* encode: output; decode: input (never written) */
	size_t len;  /* bytes available */
	size_t off;
	bool enc;
	int err;     /* first error */
};

static void cur_fail(struct cur *c, int err)
{
	if (!c->err)
		c->err = err;
}

/* check - a field out of range: -EINVAL when encoding, -EBADMSG when decoding. */
static bool check(struct cur *c, bool ok)
{
	if (!ok)
		cur_fail(c, c->enc ? -EINVAL : -EBADMSG);
	return ok && !c->err;
}

/* room - reserve @n bytes; returns the field's address or NULL. */
static uint8_t *room(struct cur *c, size_t n)
{
	uint8_t *at;

	if (c->err)
		return NULL;
	if (c->len - c->off < n) {
		cur_fail(c, c->enc ? -ENOSPC : -EBADMSG);
		return NULL;
	}
	at = c->p + c->off;
	c->off += n;
	return at;
}

static void f8(struct cur *c, uint8_t *v)
{
	uint8_t *at = room(c, 1);

	if (at && c->enc)
		*at = *v;
	else if (at)
		*v = *at;
}

static void f16(struct cur *c, uint16_t *v)
{
	uint8_t *at = room(c, 2);

	if (at && c->enc)
		wire_put16(at, *v);
	else if (at)
		*v = wire_get16(at);
}

static void f32(struct cur *c, uint32_t *v)
{
	uint8_t *at = room(c, 4);

	if (at && c->enc)
		wire_put32(at, *v);
	else if (at)
		*v = wire_get32(at);
}

static void f64(struct cur *c, uint64_t *v)
{
	uint8_t *at = room(c, 8);

	if (at && c->enc)
		wire_put64(at, *v);
	else if (at)
		*v = wire_get64(at);
}

/* f8max - a u8 enumeration or flag that must be <= @max. */
static void f8max(struct cur *c, uint8_t *v, uint8_t max)
{
	if (c->enc && !check(c, *v <= max))
		return;
	f8(c, v);
	if (!c->enc)
		check(c, *v <= max);
}

/* fcount - a u32 count that must be <= @max. */
static void fcount(struct cur *c, uint32_t *v, uint32_t max)
{
	if (c->enc && !check(c, *v <= max))
		return;
	f32(c, v);
	if (!c->enc)
		check(c, *v <= max);
}

/* fname - a NUL-terminated name in a fixed CONFIG_NAME_LEN field, NUL-padded. */
static void fname(struct cur *c, char name[CONFIG_NAME_LEN])
{
	size_t n = c->enc ? strnlen(name, CONFIG_NAME_LEN) : 0;
	uint8_t *at;

	if (c->enc && !check(c, n < CONFIG_NAME_LEN))
		return;
	at = room(c, CONFIG_NAME_LEN);
	if (!at)
		return;
	if (c->enc) {
		memcpy(at, name, n);
		memset(at + n, 0, CONFIG_NAME_LEN - n);
	} else if (check(c, memchr(at, 0, CONFIG_NAME_LEN) != NULL)) {
		memcpy(name, at, CONFIG_NAME_LEN);
	}
}

/* ftext - u16 length + bytes (no NUL on the wire, none inside), <= WIRE_MAX_TEXT. */
static void ftext(struct cur *c, char text[WIRE_MAX_TEXT + 1])
{
	uint16_t n = 0;
	uint8_t *at;

	if (c->enc) {
		size_t len = strnlen(text, WIRE_MAX_TEXT + 1);

		if (!check(c, len <= WIRE_MAX_TEXT))
			return;
		n = (uint16_t)len;
	}
	f16(c, &n);
	if (!check(c, n <= WIRE_MAX_TEXT) || !(at = room(c, n)))
		return;
	if (c->enc) {
		memcpy(at, text, n);
	} else if (check(c, memchr(at, 0, n) == NULL)) {
		memcpy(text, at, n);
		text[n] = '\0';
	}
}

static void slab_fields(struct cur *c, struct wire_slab *s)
{
	f32(c, &s->donor);
	f64(c, &s->offset);
	f64(c, &s->length);
	f64(c, &s->key);
}

static void slabs_fields(struct cur *c, uint32_t *n, struct wire_slab *slabs)
{
	fcount(c, n, WIRE_MAX_SLABS);
	for (uint32_t i = 0; i < *n && !c->err; i++)
		slab_fields(c, &slabs[i]);
}

static void client_fields(struct cur *c, struct wire_client_stats *s)
{
	f32(c, &s->node);
	f32(c, &s->client);
	fname(c, s->name);
	f64(c, &s->used);
	f64(c, &s->target);
	f64(c, &s->puts_total);
	f64(c, &s->puts_succ);
	f64(c, &s->gets_total);
	f64(c, &s->gets_succ);
	f64(c, &s->flushes);
}

static void node_fields(struct cur *c, struct wire_node_status *s)
{
	f32(c, &s->id);
	f8max(c, &s->role, ROLE_MASTER);
	f8max(c, &s->state, NODE_RECOVERY);
	f8max(c, &s->connected, 1);
	f64(c, &s->total_pages);
	f64(c, &s->free_pages);
	f32(c, &s->slabs_owned);
	f32(c, &s->slabs_free);
	f64(c, &s->mem_limit);
	f32(c, &s->lost_slabs);
}

static void export_fields(struct cur *c, struct wire_export_info *e)
{
	fname(c, e->name);
	f64(c, &e->size);
	f64(c, &e->target);
	f64(c, &e->remote_blocks);
	f64(c, &e->file_blocks);
	f32(c, &e->conns);
	f8max(c, &e->runtime, 1);
}

/* body_fields - the layout of every message body, in wire order. */
static void body_fields(struct cur *c, struct wire_msg *m)
{
	switch (m->cmd) {
	case WIRE_HELLO:
		f32(c, &m->hello.magic);
		f16(c, &m->hello.version);
		f32(c, &m->hello.features);
		f32(c, &m->hello.node_id);
		f8max(c, &m->hello.role, ROLE_MASTER);
		break;
	case WIRE_HELLO_ACK:
		f16(c, &m->hello_ack.version);
		f32(c, &m->hello_ack.features);
		f32(c, &m->hello_ack.status);
		break;
	case WIRE_REGISTER:
		f32(c, &m->reg.node_id);
		f8max(c, &m->reg.role, ROLE_MASTER);
		f64(c, &m->reg.pages);
		f64(c, &m->reg.slab_size);
		break;
	case WIRE_STATISTICS:
		f32(c, &m->stats.node_id);
		f64(c, &m->stats.total_pages);
		f64(c, &m->stats.free_pages);
		f32(c, &m->stats.lost_slabs);
		fcount(c, &m->stats.n_clients, WIRE_MAX_CLIENTS);
		for (uint32_t i = 0; i < m->stats.n_clients && !c->err; i++)
			client_fields(c, &m->stats.clients[i]);
		break;
	case WIRE_GRANT_ANY:
		f32(c, &m->grant_any.node_id);
		f64(c, &m->grant_any.pages);
		break;
	case WIRE_GRANT_FWD:
		f32(c, &m->grant_fwd.donor);
		f32(c, &m->grant_fwd.to);
		f64(c, &m->grant_fwd.pages);
		break;
	case WIRE_GRANT:
		f32(c, &m->grant.to);
		slabs_fields(c, &m->grant.n_slabs, m->grant.slabs);
		break;
	case WIRE_FORCE_RETURN:
		f32(c, &m->force_return.donor);
		break;
	case WIRE_RETURN:
		f32(c, &m->ret.from);
		slabs_fields(c, &m->ret.n_slabs, m->ret.slabs);
		break;
	case WIRE_MEM_LIMIT:
		f32(c, &m->mem_limit.node_id);
		f64(c, &m->mem_limit.pages);
		break;
	case WIRE_LEAVE_REQ:
		f32(c, &m->leave_req.node_id);
		break;
	case WIRE_LEAVE_NOTIFY:
		f32(c, &m->leave_notify.node_id);
		break;
	case WIRE_ENABLE_NODE:
		f32(c, &m->enable_node.node_id);
		f8max(c, &m->enable_node.enable, 1);
		break;
	case WIRE_INVALIDATE:
		f32(c, &m->invalidate.node_id);
		break;
	case WIRE_INVALIDATE_NOTIFY:
		f32(c, &m->invalidate_notify.node_id);
		break;
	case WIRE_STATUS_REQ:
		break;
	case WIRE_STATUS_REPLY:
		fcount(c, &m->status.n_nodes, WIRE_MAX_NODES);
		fcount(c, &m->status.n_clients, WIRE_MAX_CLIENTS);
		for (uint32_t i = 0; i < m->status.n_nodes && !c->err; i++)
			node_fields(c, &m->status.nodes[i]);
		for (uint32_t i = 0; i < m->status.n_clients && !c->err; i++)
			client_fields(c, &m->status.clients[i]);
		break;
	case WIRE_ERROR:
		f32(c, &m->error.code);
		ftext(c, m->error.text);
		break;
	case WIRE_EXPORT_ADD:
		fname(c, m->export_req.name);
		f64(c, &m->export_req.size);
		f64(c, &m->export_req.target);
		break;
	case WIRE_EXPORT_DEL:
		fname(c, m->export_req.name);
		break;
	case WIRE_EXPORT_LIST:
		break;
	case WIRE_EXPORT_REPLY:
		fcount(c, &m->export_reply.n_exports, WIRE_MAX_EXPORTS);
		for (uint32_t i = 0; i < m->export_reply.n_exports && !c->err; i++)
			export_fields(c, &m->export_reply.exports[i]);
		break;
	default:
		cur_fail(c, c->enc ? -EINVAL : -EPROTO);
		break;
	}
}

static bool cmd_valid(int cmd)
{
	return cmd > 0 && cmd < WIRE_CMD_MAX;
}

int wire_encode(const struct wire_msg *m, uint8_t *buf, size_t cap)
{
	/* The cursor never writes through the message when encoding. */
	struct cur c = { .p = buf + WIRE_HDR_SIZE, .enc = true };

	if (!cmd_valid((int)m->cmd))
		return -EINVAL;
	if (cap < WIRE_HDR_SIZE)
		return -ENOSPC;
	c.len = (cap > WIRE_MAX_FRAME ? WIRE_MAX_FRAME : cap) - WIRE_HDR_SIZE;
	body_fields(&c, (struct wire_msg *)m);
	if (c.err)
		return c.err;
	wire_put32(buf, (uint32_t)(c.off + WIRE_HDR_SIZE));
	wire_put16(buf + 4, (uint16_t)m->cmd);
	wire_put16(buf + 6, 0);
	return (int)(c.off + WIRE_HDR_SIZE);
}

int wire_decode(const uint8_t *buf, size_t len, struct wire_msg *m)
{
	uint32_t total;
	uint16_t cmd;
	struct cur c = { .p = (uint8_t *)buf + WIRE_HDR_SIZE, .enc = false };

	if (len < 4)
		return 0;
	total = wire_get32(buf);
	if (total < WIRE_HDR_SIZE || total > WIRE_MAX_FRAME)
		return -EBADMSG;
	if (len < total)
		return 0;
	cmd = wire_get16(buf + 4);
	if (!cmd_valid(cmd) || wire_get16(buf + 6) != 0)
		return -EPROTO;
	memset(m, 0, sizeof(*m));
	m->cmd = (enum wire_cmd)cmd;
	c.len = total - WIRE_HDR_SIZE;
	body_fields(&c, m);
	if (c.err)
		return c.err;
	if (c.off != c.len)
		return -EBADMSG; /* trailing bytes */
	return (int)total;
}

static const char *const cmd_names[WIRE_CMD_MAX] = {
	[WIRE_HELLO] = "HELLO",
	[WIRE_HELLO_ACK] = "HELLO_ACK",
	[WIRE_REGISTER] = "REGISTER",
	[WIRE_STATISTICS] = "STATISTICS",
	[WIRE_GRANT_ANY] = "GRANT_ANY",
	[WIRE_GRANT_FWD] = "GRANT_FWD",
	[WIRE_GRANT] = "GRANT",
	[WIRE_FORCE_RETURN] = "FORCE_RETURN",
	[WIRE_RETURN] = "RETURN",
	[WIRE_MEM_LIMIT] = "MEM_LIMIT",
	[WIRE_LEAVE_REQ] = "LEAVE_REQ",
	[WIRE_LEAVE_NOTIFY] = "LEAVE_NOTIFY",
	[WIRE_ENABLE_NODE] = "ENABLE_NODE",
	[WIRE_INVALIDATE] = "INVALIDATE",
	[WIRE_INVALIDATE_NOTIFY] = "INVALIDATE_NOTIFY",
	[WIRE_STATUS_REQ] = "STATUS_REQ",
	[WIRE_STATUS_REPLY] = "STATUS_REPLY",
	[WIRE_ERROR] = "ERROR",
	[WIRE_EXPORT_ADD] = "EXPORT_ADD",
	[WIRE_EXPORT_DEL] = "EXPORT_DEL",
	[WIRE_EXPORT_LIST] = "EXPORT_LIST",
	[WIRE_EXPORT_REPLY] = "EXPORT_REPLY",
};

const char *wire_cmd_name(int cmd)
{
	return cmd_valid(cmd) ? cmd_names[cmd] : "UNKNOWN";
}

const char *wire_state_name(int state)
{
	static const char *const names[] = { "inactive", "active", "leaving", "recovery" };

	return state >= 0 && state <= NODE_RECOVERY ? names[state] : "unknown";
}

void wire_hello(struct wire_msg *m, uint32_t node_id, enum node_role role)
{
	memset(m, 0, sizeof(*m));
	m->cmd = WIRE_HELLO;
	m->hello.magic = WIRE_MAGIC;
	m->hello.version = WIRE_VERSION;
	m->hello.features = WIRE_FEATURES;
	m->hello.node_id = node_id;
	m->hello.role = (uint8_t)role;
}

int wire_check_hello(const struct wire_msg *m)
{
	if (m->cmd != WIRE_HELLO || m->hello.magic != WIRE_MAGIC)
		return -EPROTO;
	if (m->hello.version != WIRE_VERSION)
		return -EPROTONOSUPPORT;
	switch (m->hello.role) {
	case ROLE_DONOR:
	case ROLE_BORROWER:
	case ROLE_ADMIN:
		return 0;
	default:
		return -EINVAL;
	}
}
