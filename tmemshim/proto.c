/* proto.c - encoder and decoder of the libtmemshim <-> borrower client protocol
 * (tmemshim-proto.h). Used by both sides; every field is checked by the same rules
 * when encoding (-EINVAL) and decoding (-EBADMSG).
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "common/common.h"
#include "tmemshim/tmemshim-proto.h"

_Static_assert(TMEM_MAX_BATCH <= 64, "slot sets are 64-bit masks");

/* Body size of each command: fixed part, plus n elements of @elem bytes when the
 * body starts with a count n. */
static const struct {
	const char *name;
	uint16_t fixed;
	uint16_t elem;
} cmds[TMP_CMD_MAX] = {
	[TMP_HELLO] = { "HELLO", 8 + TMP_NAME_LEN, 0 },
	[TMP_HELLO_ACK] = { "HELLO_ACK", 12, 0 },
	[TMP_NEW_POOL] = { "NEW_POOL", 12, 0 },
	[TMP_NEW_POOL_REPLY] = { "NEW_POOL_REPLY", 8, 0 },
	[TMP_DESTROY_POOL] = { "DESTROY_POOL", 4, 0 },
	[TMP_DESTROY_POOL_REPLY] = { "DESTROY_POOL_REPLY", 4, 0 },
	[TMP_BATCH] = { "BATCH", 4, TMP_OP_SIZE },
	[TMP_BATCH_REPLY] = { "BATCH_REPLY", 4, 4 },
};

const char *tmp_cmd_name(int cmd)
{
	if (cmd <= 0 || cmd >= TMP_CMD_MAX)
		return "UNKNOWN";
	return cmds[cmd].name;
}

static bool known_cmd(int cmd)
{
	return cmd > 0 && cmd < TMP_CMD_MAX;
}

static const char *check_ops(const struct tmp_op *ops, uint32_t n)
{
	uint64_t used = 0;

	for (uint32_t i = 0; i < n; i++) {
		if (ops[i].cmd < TMEM_PUT || ops[i].cmd > TMEM_FLUSH_OBJECT)
			return "unknown operation in batch";
		if (ops[i].slot >= TMP_N_SLOTS)
			return "slot out of range";
		if (ops[i].cmd != TMEM_PUT && ops[i].cmd != TMEM_GET)
			continue;
		if (used & (1ull << ops[i].slot))
			return "slot used twice in one batch";
		used |= 1ull << ops[i].slot;
	}
	return NULL;
}

/* check - the value rules of every field; NULL if @m is valid. */
static const char *check(const struct tmp_msg *m)
{
	switch (m->cmd) {
	case TMP_HELLO:
		if (m->hello.magic != TMP_MAGIC)
			return "bad magic";
		if (!memchr(m->hello.name, 0, TMP_NAME_LEN))
			return "name not terminated";
		return NULL;
	case TMP_HELLO_ACK:
		if (m->hello_ack.status > TMP_MAX_STATUS)
			return "status out of range";
		if (!m->hello_ack.status && m->hello_ack.n_slots != TMP_N_SLOTS)
			return "bad slot count";
		return NULL;
	case TMP_NEW_POOL_REPLY:
	case TMP_DESTROY_POOL_REPLY:
		return m->pool_reply.status > TMP_MAX_STATUS ? "status out of range" : NULL;
	case TMP_NEW_POOL:
	case TMP_DESTROY_POOL:
		return NULL;
	case TMP_BATCH:
		if (m->batch.n < 1 || m->batch.n > TMEM_MAX_BATCH)
			return "bad operation count";
		return check_ops(m->batch.ops, m->batch.n);
	case TMP_BATCH_REPLY:
		if (m->batch_reply.n < 1 || m->batch_reply.n > TMEM_MAX_BATCH)
			return "bad status count";
		for (uint32_t i = 0; i < m->batch_reply.n; i++)
			if (m->batch_reply.status[i] > TMP_MAX_STATUS)
				return "status out of range";
		return NULL;
	default:
		return "unknown command";
	}
}

static uint32_t count_of(const struct tmp_msg *m)
{
	if (m->cmd == TMP_BATCH)
		return m->batch.n;
	if (m->cmd == TMP_BATCH_REPLY)
		return m->batch_reply.n;
	return 0;
}

int tmp_encode(const struct tmp_msg *m, uint8_t *buf, size_t cap)
{
	if (!known_cmd(m->cmd) || check(m))
		return -EINVAL;
	size_t len = TMP_HDR_SIZE + cmds[m->cmd].fixed + (size_t)count_of(m) * cmds[m->cmd].elem;
	if (len > cap)
		return -ENOSPC;

	uint8_t *p = buf + TMP_HDR_SIZE;
	wire_put32(buf, (uint32_t)len);
	wire_put16(buf + 4, (uint16_t)m->cmd);
	wire_put16(buf + 6, 0);
	switch (m->cmd) {
	case TMP_HELLO:
		wire_put32(p, m->hello.magic);
		wire_put16(p + 4, m->hello.version);
		wire_put16(p + 6, 0);
		memset(p + 8, 0, TMP_NAME_LEN);
		strcpy((char *)p + 8, m->hello.name); /* terminated: checked */
		break;
	case TMP_HELLO_ACK:
		wire_put32(p, m->hello_ack.status);
		wire_put32(p + 4, m->hello_ack.client_id);
		wire_put32(p + 8, m->hello_ack.n_slots);
		break;
	case TMP_NEW_POOL:
		wire_put32(p, m->new_pool.flags);
		wire_put64(p + 4, m->new_pool.uuid);
		break;
	case TMP_NEW_POOL_REPLY:
		wire_put32(p, m->pool_reply.status);
		wire_put32(p + 4, m->pool_reply.pool);
		break;
	case TMP_DESTROY_POOL:
		wire_put32(p, m->destroy_pool.pool);
		break;
	case TMP_DESTROY_POOL_REPLY:
		wire_put32(p, m->pool_reply.status);
		break;
	case TMP_BATCH:
		wire_put32(p, m->batch.n);
		for (uint32_t i = 0; i < m->batch.n; i++) {
			const struct tmp_op *op = &m->batch.ops[i];
			uint8_t *q = p + 4 + i * TMP_OP_SIZE;
			wire_put16(q, op->cmd);
			wire_put16(q + 2, op->slot);
			wire_put32(q + 4, op->pool);
			wire_put64(q + 8, op->oid);
			wire_put32(q + 16, op->index);
		}
		break;
	case TMP_BATCH_REPLY:
		wire_put32(p, m->batch_reply.n);
		for (uint32_t i = 0; i < m->batch_reply.n; i++)
			wire_put32(p + 4 + i * 4, m->batch_reply.status[i]);
		break;
	default:
		return -EINVAL;
	}
	return (int)len;
}

static int fail(const char **why, const char *reason, int err)
{
	if (why)
		*why = reason;
	return err;
}

int tmp_decode(const uint8_t *buf, size_t len, struct tmp_msg *m, const char **why)
{
	if (len < TMP_HDR_SIZE)
		return 0;
	uint32_t flen = wire_get32(buf);
	uint16_t cmd = wire_get16(buf + 4);
	if (flen < TMP_HDR_SIZE || flen > TMP_MAX_FRAME)
		return fail(why, "bad frame length", -EBADMSG);
	if (!known_cmd(cmd))
		return fail(why, "unknown command", -EPROTO);
	if (wire_get16(buf + 6))
		return fail(why, "non-zero header flags", -EPROTO);
	if (len < flen)
		return 0;

	const uint8_t *p = buf + TMP_HDR_SIZE;
	uint64_t want = TMP_HDR_SIZE + cmds[cmd].fixed;
	uint32_t n = 0;
	if (cmds[cmd].elem) {
		if (flen < want)
			return fail(why, "frame too short", -EBADMSG);
		n = wire_get32(p);
		if (n < 1 || n > TMEM_MAX_BATCH)
			return fail(why, "bad count", -EBADMSG);
		want += (uint64_t)n * cmds[cmd].elem;
	}
	if (flen != want)
		return fail(why, "frame length does not match command", -EBADMSG);

	memset(m, 0, sizeof(*m));
	m->cmd = cmd;
	switch (cmd) {
	case TMP_HELLO:
		m->hello.magic = wire_get32(p);
		m->hello.version = wire_get16(p + 4);
		memcpy(m->hello.name, p + 8, TMP_NAME_LEN);
		break;
	case TMP_HELLO_ACK:
		m->hello_ack.status = wire_get32(p);
		m->hello_ack.client_id = wire_get32(p + 4);
		m->hello_ack.n_slots = wire_get32(p + 8);
		break;
	case TMP_NEW_POOL:
		m->new_pool.flags = wire_get32(p);
		m->new_pool.uuid = wire_get64(p + 4);
		break;
	case TMP_NEW_POOL_REPLY:
		m->pool_reply.status = wire_get32(p);
		m->pool_reply.pool = wire_get32(p + 4);
		break;
	case TMP_DESTROY_POOL:
		m->destroy_pool.pool = wire_get32(p);
		break;
	case TMP_DESTROY_POOL_REPLY:
		m->pool_reply.status = wire_get32(p);
		break;
	case TMP_BATCH:
		m->batch.n = n;
		for (uint32_t i = 0; i < n; i++) {
			const uint8_t *q = p + 4 + i * TMP_OP_SIZE;
			struct tmp_op *op = &m->batch.ops[i];
			op->cmd = wire_get16(q);
			op->slot = wire_get16(q + 2);
			op->pool = wire_get32(q + 4);
			op->oid = wire_get64(q + 8);
			op->index = wire_get32(q + 16);
		}
		break;
	case TMP_BATCH_REPLY:
		m->batch_reply.n = n;
		for (uint32_t i = 0; i < n; i++)
			m->batch_reply.status[i] = wire_get32(p + 4 + i * 4);
		break;
	}
	const char *bad = check(m);
	if (bad)
		return fail(why, bad, -EBADMSG);
	return (int)flen;
}
