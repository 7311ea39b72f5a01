/* test_wire.c - the control-plane codec: every message type round-trips with
 * non-trivial values (up to the maximum counts), and every malformed frame is
 * rejected with the documented error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"

static uint8_t buf[WIRE_MAX_FRAME + 64];
static struct wire_msg in, out;

static void fill_slabs(struct wire_slab *s, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		s[i] = (struct wire_slab){ .donor = 7 + i, .offset = (uint64_t)i << 26,
					   .length = 64ull << 20,
					   .key = 0xdeadbeef00000000ull | i };
}

static void fill_clients(struct wire_client_stats *c, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		c[i].node = 3;
		c[i].client = 1000 + i;
		char full[64] = { 0 };

		/* names longer than the field are cut to 31 bytes + NUL */
		snprintf(full, sizeof(full), "vm-%u-%s", i,
			 i % 2 ? "swap" : "a-name-of-exactly-31-chars!!");
		memcpy(c[i].name, full, sizeof(c[i].name) - 1);
		c[i].name[sizeof(c[i].name) - 1] = '\0';
		c[i].used = 12345 + i;
		c[i].target = i ? 100000 * i : UINT64_MAX;
		c[i].puts_total = 1ull << 40 | i;
		c[i].puts_succ = 1ull << 39;
		c[i].gets_total = 77;
		c[i].gets_succ = 76;
		c[i].flushes = UINT64_MAX - i;
	}
}

/* make - a message of @cmd with values in every field; @n sizes the arrays. */
static void make(struct wire_msg *m, enum wire_cmd cmd, uint32_t n)
{
	memset(m, 0, sizeof(*m));
	m->cmd = cmd;
	switch (cmd) {
	case WIRE_HELLO:
		wire_hello(m, 0xfffffffeu, ROLE_BORROWER);
		break;
	case WIRE_HELLO_ACK:
		m->hello_ack.version = WIRE_VERSION;
		m->hello_ack.features = 0x80000001u;
		m->hello_ack.status = EPROTONOSUPPORT;
		break;
	case WIRE_REGISTER:
		m->reg = (typeof(m->reg)){ .node_id = 42, .role = ROLE_DONOR,
					   .pages = 1ull << 33, .slab_size = 1ull << 26 };
		break;
	case WIRE_STATISTICS:
		m->stats.node_id = 9;
		m->stats.total_pages = 0x0102030405060708ull;
		m->stats.free_pages = 0x1112131415161718ull;
		m->stats.lost_slabs = 3;
		m->stats.n_clients = n > WIRE_MAX_CLIENTS ? WIRE_MAX_CLIENTS : n;
		fill_clients(m->stats.clients, m->stats.n_clients);
		break;
	case WIRE_GRANT_ANY:
		m->grant_any.node_id = 5;
		m->grant_any.pages = 16384;
		break;
	case WIRE_GRANT_FWD:
		m->grant_fwd = (typeof(m->grant_fwd)){ .donor = 2, .to = 5, .pages = 99999 };
		break;
	case WIRE_GRANT:
		m->grant.to = 5;
		m->grant.n_slabs = n;
		fill_slabs(m->grant.slabs, n);
		break;
	case WIRE_FORCE_RETURN:
		m->force_return.donor = 0xabcdef01u;
		break;
	case WIRE_RETURN:
		m->ret.from = 6;
		m->ret.n_slabs = n;
		fill_slabs(m->ret.slabs, n);
		break;
	case WIRE_MEM_LIMIT:
		m->mem_limit.node_id = 4;
		m->mem_limit.pages = UINT64_MAX;
		break;
	case WIRE_LEAVE_REQ:
		m->leave_req.node_id = 11;
		break;
	case WIRE_LEAVE_NOTIFY:
		m->leave_notify.node_id = 12;
		break;
	case WIRE_ENABLE_NODE:
		m->enable_node.node_id = 13;
		m->enable_node.enable = 1;
		break;
	case WIRE_INVALIDATE:
		m->invalidate.node_id = 14;
		break;
	case WIRE_INVALIDATE_NOTIFY:
		m->invalidate_notify.node_id = 15;
		break;
	case WIRE_STATUS_REQ:
		break;
	case WIRE_STATUS_REPLY:
		m->status.n_nodes = n > WIRE_MAX_NODES ? WIRE_MAX_NODES : n;
		m->status.n_clients = n > WIRE_MAX_CLIENTS ? WIRE_MAX_CLIENTS : n;
		for (uint32_t i = 0; i < m->status.n_nodes; i++)
			m->status.nodes[i] = (struct wire_node_status){
				.id = i + 1, .role = (uint8_t)(i % 5), .state = (uint8_t)(i % 4),
				.connected = (uint8_t)(i & 1), .total_pages = 1ull << 34,
				.free_pages = i * 1000ull, .slabs_owned = i, .slabs_free = 64 - i,
				.mem_limit = UINT64_MAX, .lost_slabs = i / 3
			};
		fill_clients(m->status.clients, m->status.n_clients);
		break;
	case WIRE_ERROR:
		m->error.code = ENOSPC;
		memset(m->error.text, 'x', WIRE_MAX_TEXT);
		memcpy(m->error.text, "no slabs left on donor 3: ", 26);
		break;
	case WIRE_EXPORT_ADD:
		strcpy(m->export_req.name, "swap-vm1");
		m->export_req.size = 1ull << 40;
		m->export_req.target = 0x0102030405060708ull;
		break;
	case WIRE_EXPORT_DEL:
		memset(m->export_req.name, 'e', CONFIG_NAME_LEN - 1); /* longest name */
		break;
	case WIRE_EXPORT_LIST:
		break;
	case WIRE_EXPORT_REPLY:
		m->export_reply.n_exports = n > WIRE_MAX_EXPORTS ? WIRE_MAX_EXPORTS : n;
		for (uint32_t i = 0; i < m->export_reply.n_exports; i++) {
			struct wire_export_info *e = &m->export_reply.exports[i];

			snprintf(e->name, sizeof(e->name), "export-%u", i);
			e->size = (i + 1ull) << 30;
			e->target = i * 7ull;
			e->remote_blocks = UINT64_MAX - i;
			e->file_blocks = 1ull << (i % 64);
			e->conns = i * 3;
			e->runtime = (uint8_t)(i & 1);
		}
		break;
	default:
		fail();
	}
}

static void roundtrip(enum wire_cmd cmd, uint32_t n)
{
	int len, got;

	make(&in, cmd, n);
	len = wire_encode(&in, buf, sizeof(buf));
	assert_true(len >= WIRE_HDR_SIZE);
	assert_int_equal(wire_get32(buf), len);
	assert_int_equal(wire_get16(buf + 4), cmd);
	memset(&out, 0xa5, sizeof(out));
	got = wire_decode(buf, (size_t)len, &out);
	assert_int_equal(got, len);
	assert_memory_equal(&in, &out, sizeof(in));
	/* a following frame in the buffer is left alone */
	memcpy(buf + len, buf, (size_t)len);
	assert_int_equal(wire_decode(buf, 2 * (size_t)len, &out), len);
}

static void test_roundtrip_every_type(void **state)
{
	for (int cmd = 1; cmd < WIRE_CMD_MAX; cmd++) {
		roundtrip((enum wire_cmd)cmd, 3);
		roundtrip((enum wire_cmd)cmd, 0);
	}
}

static void test_roundtrip_max_counts(void **state)
{
	roundtrip(WIRE_GRANT, WIRE_MAX_SLABS);
	roundtrip(WIRE_RETURN, WIRE_MAX_SLABS);
	roundtrip(WIRE_STATISTICS, WIRE_MAX_CLIENTS);
	roundtrip(WIRE_STATUS_REPLY, WIRE_MAX_NODES);
	assert_string_equal(out.status.clients[63].name, "vm-63-swap");
	assert_int_equal(out.status.nodes[63].slabs_free, 1);
	roundtrip(WIRE_EXPORT_REPLY, WIRE_MAX_EXPORTS);
	assert_string_equal(out.export_reply.exports[63].name, "export-63");
}

static void test_wire_layout(void **state)
{
	/* fixed byte layout: length, cmd, flags, then big-endian fields */
	static const uint8_t want[] = { 0, 0, 0, 20, 0, 10, 0, 0, 0, 0, 0, 4,
					0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

	make(&in, WIRE_MEM_LIMIT, 0);
	assert_int_equal(wire_encode(&in, buf, sizeof(buf)), sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));

	wire_put64(buf, 0x0102030405060708ull);
	assert_int_equal(buf[0], 1);
	assert_int_equal(buf[7], 8);
	assert_true(wire_get64(buf) == 0x0102030405060708ull);
	assert_int_equal(wire_get32(buf + 4), 0x05060708);
	assert_int_equal(wire_get16(buf + 6), 0x0708);
}

static void test_every_prefix_incomplete(void **state)
{
	for (int cmd = 1; cmd < WIRE_CMD_MAX; cmd++) {
		make(&in, (enum wire_cmd)cmd, 5);
		int len = wire_encode(&in, buf, sizeof(buf));

		assert_true(len > 0);
		for (int i = 0; i < len; i++)
			assert_int_equal(wire_decode(buf, (size_t)i, &out), 0);
	}
}

static void test_declared_length_mismatch(void **state)
{
	for (int cmd = 1; cmd < WIRE_CMD_MAX; cmd++) {
		make(&in, (enum wire_cmd)cmd, 2);
		int len = wire_encode(&in, buf, sizeof(buf));

		/* declared shorter than the body: body runs out */
		if (len > WIRE_HDR_SIZE) {
			wire_put32(buf, (uint32_t)len - 1);
			assert_int_equal(wire_decode(buf, (size_t)len, &out), -EBADMSG);
		}
		/* declared longer: trailing byte */
		wire_put32(buf, (uint32_t)len + 1);
		buf[len] = 0;
		assert_int_equal(wire_decode(buf, (size_t)len + 1, &out), -EBADMSG);
	}
}

static void test_bad_frame_length(void **state)
{
	static const uint32_t bad[] = { 0, 1, WIRE_HDR_SIZE - 1, WIRE_MAX_FRAME + 1,
					UINT32_MAX };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(buf, 0, 16);
		wire_put32(buf, bad[i]);
		wire_put16(buf + 4, WIRE_STATUS_REQ);
		/* known bad as soon as the length field is there */
		assert_int_equal(wire_decode(buf, 4, &out), -EBADMSG);
		assert_int_equal(wire_decode(buf, 16, &out), -EBADMSG);
	}
}

static void test_bad_cmd_and_flags(void **state)
{
	static const uint16_t cmds[] = { 0, WIRE_CMD_MAX, 0x100, 0xffff };

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		wire_put32(buf, WIRE_HDR_SIZE);
		wire_put16(buf + 4, cmds[i]);
		wire_put16(buf + 6, 0);
		assert_int_equal(wire_decode(buf, WIRE_HDR_SIZE, &out), -EPROTO);
	}
	make(&in, WIRE_LEAVE_REQ, 0);
	int len = wire_encode(&in, buf, sizeof(buf));
	for (uint16_t flags = 1; flags; flags <<= 1) {
		wire_put16(buf + 6, flags);
		assert_int_equal(wire_decode(buf, (size_t)len, &out), -EPROTO);
	}
	in.cmd = WIRE_CMD_MAX;
	assert_int_equal(wire_encode(&in, buf, sizeof(buf)), -EINVAL);
	in.cmd = 0;
	assert_int_equal(wire_encode(&in, buf, sizeof(buf)), -EINVAL);
}

static void test_hello_check(void **state)
{
	make(&in, WIRE_HELLO, 0);
	int len = wire_encode(&in, buf, sizeof(buf));
	assert_int_equal(wire_decode(buf, (size_t)len, &out), len);
	assert_int_equal(wire_check_hello(&out), 0);
	assert_int_equal(out.hello.magic, WIRE_MAGIC);

	out.hello.magic = 0x52544d4e;
	assert_int_equal(wire_check_hello(&out), -EPROTO);
	out.hello.magic = WIRE_MAGIC;
	out.hello.version = WIRE_VERSION + 1;
	assert_int_equal(wire_check_hello(&out), -EPROTONOSUPPORT);
	out.hello.version = WIRE_VERSION;
	out.hello.role = ROLE_NONE;
	assert_int_equal(wire_check_hello(&out), -EINVAL);
	out.hello.role = ROLE_MASTER;
	assert_int_equal(wire_check_hello(&out), -EINVAL);
	out.hello.role = ROLE_ADMIN;
	assert_int_equal(wire_check_hello(&out), 0);
	out.cmd = WIRE_HELLO_ACK;
	assert_int_equal(wire_check_hello(&out), -EPROTO);

	/* magic and version on the wire: patched frame still decodes, check fails */
	wire_put32(buf + 8, 0x4d4d5452);
	assert_int_equal(wire_decode(buf, (size_t)len, &out), len);
	assert_int_equal(wire_check_hello(&out), -EPROTO);
}

/* over_max - a frame whose count field is @max + 1, with a body of that size, so
 * the count check (not the length) is what rejects it. */
static void over_max(enum wire_cmd cmd, uint32_t max, size_t count_off, size_t elem,
		     size_t extra_off)
{
	make(&in, cmd, max);
	int len = wire_encode(&in, buf, sizeof(buf));

	assert_true(len > 0);
	memmove(buf + extra_off + elem, buf + extra_off, (size_t)len - extra_off);
	memset(buf + extra_off, 0, elem);
	wire_put32(buf, (uint32_t)(len + (int)elem));
	wire_put32(buf + count_off, max + 1);
	assert_int_equal(wire_decode(buf, (size_t)len + elem, &out), -EBADMSG);
}

static void test_counts_out_of_range(void **state)
{
	const size_t slab = 28, client = 96, node = 43;
	int len;

	over_max(WIRE_GRANT, WIRE_MAX_SLABS, 12, slab, 16);
	over_max(WIRE_RETURN, WIRE_MAX_SLABS, 12, slab, 16);
	over_max(WIRE_STATISTICS, WIRE_MAX_CLIENTS, 32, client, 36);
	/* status: n_nodes at 8, n_clients at 12, nodes from 16 */
	make(&in, WIRE_STATUS_REPLY, WIRE_MAX_NODES);
	over_max(WIRE_STATUS_REPLY, WIRE_MAX_NODES, 8, node, 16);
	over_max(WIRE_STATUS_REPLY, WIRE_MAX_CLIENTS, 12, client,
		 16 + WIRE_MAX_NODES * node);
	over_max(WIRE_EXPORT_REPLY, WIRE_MAX_EXPORTS, 8, 69, 12);
	make(&in, WIRE_EXPORT_REPLY, 1);
	in.export_reply.n_exports = WIRE_MAX_EXPORTS + 1;
	assert_int_equal(wire_encode(&in, buf, sizeof(buf)), -EINVAL);

	/* the encoder refuses them too */
	make(&in, WIRE_GRANT, 1);
	in.grant.n_slabs = WIRE_MAX_SLABS + 1;
	assert_int_equal(wire_encode(&in, buf, sizeof(buf)), -EINVAL);
	make(&in, WIRE_STATISTICS, 1);
	in.stats.n_clients = UINT32_MAX;
	assert_int_equal(wire_encode(&in, buf, sizeof(buf)), -EINVAL);
	make(&in, WIRE_STATUS_REPLY, 1);
	in.status.n_nodes = WIRE_MAX_NODES + 1;
	assert_int_equal(wire_encode(&in, buf, sizeof(buf)), -EINVAL);

	/* a huge count with a short body must not read past the frame */
	make(&in, WIRE_GRANT, 1);
	len = wire_encode(&in, buf, sizeof(buf));
	wire_put32(buf + 12, 2);
	assert_int_equal(wire_decode(buf, (size_t)len, &out), -EBADMSG);
}

static void test_unterminated_name(void **state)
{
	make(&in, WIRE_STATISTICS, 1);
	int len = wire_encode(&in, buf, sizeof(buf));
	/* clients[0].name starts at 36 + 8 */
	memset(buf + 44, 'A', CONFIG_NAME_LEN);
	assert_int_equal(wire_decode(buf, (size_t)len, &out), -EBADMSG);
	memset(buf + 44, 0, CONFIG_NAME_LEN); /* empty name is fine */
	assert_int_equal(wire_decode(buf, (size_t)len, &out), len);

	memset(in.stats.clients[0].name, 'B', CONFIG_NAME_LEN);
	assert_int_equal(wire_encode(&in, buf, sizeof(buf)), -EINVAL);
}

static void patch_expect(enum wire_cmd cmd, size_t off, uint8_t v, int want)
{
	make(&in, cmd, 1);
	int len = wire_encode(&in, buf, sizeof(buf));
	buf[off] = v;
	assert_int_equal(wire_decode(buf, (size_t)len, &out), want ? want : len);
}

static void test_enums_out_of_range(void **state)
{
	patch_expect(WIRE_REGISTER, 12, ROLE_MASTER, 0);
	patch_expect(WIRE_REGISTER, 12, ROLE_MASTER + 1, -EBADMSG);
	patch_expect(WIRE_HELLO, 22, 0xff, -EBADMSG);
	patch_expect(WIRE_ENABLE_NODE, 12, 0, 0);
	patch_expect(WIRE_ENABLE_NODE, 12, 2, -EBADMSG);
	patch_expect(WIRE_STATUS_REPLY, 16 + 4, 5, -EBADMSG);  /* role */
	patch_expect(WIRE_STATUS_REPLY, 16 + 5, NODE_RECOVERY + 1, -EBADMSG);
	patch_expect(WIRE_STATUS_REPLY, 16 + 6, 2, -EBADMSG);  /* connected */
	patch_expect(WIRE_EXPORT_REPLY, 12 + 68, 2, -EBADMSG); /* runtime */
	patch_expect(WIRE_EXPORT_REPLY, 12 + 68, 1, 0);

	make(&in, WIRE_REGISTER, 0);
	in.reg.role = 9;
	assert_int_equal(wire_encode(&in, buf, sizeof(buf)), -EINVAL);
	make(&in, WIRE_ENABLE_NODE, 0);
	in.enable_node.enable = 2;
	assert_int_equal(wire_encode(&in, buf, sizeof(buf)), -EINVAL);
	make(&in, WIRE_STATUS_REPLY, 1);
	in.status.nodes[0].state = 4;
	assert_int_equal(wire_encode(&in, buf, sizeof(buf)), -EINVAL);
}

static void test_error_text(void **state)
{
	make(&in, WIRE_ERROR, 0);
	int len = wire_encode(&in, buf, sizeof(buf));
	assert_int_equal(len, 8 + 4 + 2 + WIRE_MAX_TEXT);

	wire_put16(buf + 12, WIRE_MAX_TEXT + 1); /* over the limit (and the body) */
	assert_int_equal(wire_decode(buf, (size_t)len, &out), -EBADMSG);
	wire_put16(buf + 12, WIRE_MAX_TEXT);
	buf[20] = '\0'; /* NUL inside the text */
	assert_int_equal(wire_decode(buf, (size_t)len, &out), -EBADMSG);

	in.error.text[WIRE_MAX_TEXT] = 'y'; /* not terminated within the limit */
	assert_int_equal(wire_encode(&in, buf, sizeof(buf)), -EINVAL);
	strcpy(in.error.text, "short");
	assert_int_equal(wire_encode(&in, buf, sizeof(buf)), 8 + 4 + 2 + 5);
	assert_int_equal(wire_decode(buf, 19, &out), 19);
	assert_string_equal(out.error.text, "short");
}

/* The export messages: exact layout, names checked both ways, short bodies. */
static void test_export_msgs(void **state)
{
	int len;

	make(&in, WIRE_EXPORT_ADD, 0);
	len = wire_encode(&in, buf, sizeof(buf));
	assert_int_equal(len, 8 + CONFIG_NAME_LEN + 8 + 8);
	assert_memory_equal(buf + 8, "swap-vm1\0", 9);
	assert_true(wire_get64(buf + 40) == 1ull << 40);
	assert_true(wire_get64(buf + 48) == 0x0102030405060708ull);
	assert_int_equal(wire_decode(buf, (size_t)len - 1, &out), 0);
	wire_put32(buf, (uint32_t)len - 8); /* frame without the target */
	assert_int_equal(wire_decode(buf, (size_t)len - 8, &out), -EBADMSG);
	wire_put32(buf, (uint32_t)len);
	memset(buf + 8, 'N', CONFIG_NAME_LEN); /* unterminated name */
	assert_int_equal(wire_decode(buf, (size_t)len, &out), -EBADMSG);
	memset(in.export_req.name, 'N', CONFIG_NAME_LEN);
	assert_int_equal(wire_encode(&in, buf, sizeof(buf)), -EINVAL);

	make(&in, WIRE_EXPORT_DEL, 0);
	len = wire_encode(&in, buf, sizeof(buf));
	assert_int_equal(len, 8 + CONFIG_NAME_LEN);
	buf[len] = 0; /* a trailing byte */
	wire_put32(buf, (uint32_t)len + 1);
	assert_int_equal(wire_decode(buf, (size_t)len + 1, &out), -EBADMSG);

	make(&in, WIRE_EXPORT_LIST, 0);
	assert_int_equal(wire_encode(&in, buf, sizeof(buf)), 8);

	make(&in, WIRE_EXPORT_REPLY, 2);
	len = wire_encode(&in, buf, sizeof(buf));
	assert_int_equal(len, 8 + 4 + 2 * 69);
	assert_int_equal(wire_decode(buf, (size_t)len, &out), len);
	assert_string_equal(out.export_reply.exports[1].name, "export-1");
	wire_put32(buf + 8, 3); /* more entries than the body holds */
	assert_int_equal(wire_decode(buf, (size_t)len, &out), -EBADMSG);
}

static void test_encode_nospace(void **state)
{
	make(&in, WIRE_GRANT, WIRE_MAX_SLABS);
	int len = wire_encode(&in, buf, sizeof(buf));

	assert_true(len > 0);
	assert_int_equal(wire_encode(&in, buf, (size_t)len - 1), -ENOSPC);
	assert_int_equal(wire_encode(&in, buf, 3), -ENOSPC);
	assert_int_equal(wire_encode(&in, buf, (size_t)len), len);
}

static void test_names(void **state)
{
	assert_string_equal(wire_cmd_name(WIRE_GRANT_FWD), "GRANT_FWD");
	assert_string_equal(wire_cmd_name(WIRE_ERROR), "ERROR");
	assert_string_equal(wire_cmd_name(0), "UNKNOWN");
	assert_string_equal(wire_cmd_name(WIRE_CMD_MAX), "UNKNOWN");
	assert_string_equal(wire_state_name(NODE_LEAVING), "leaving");
	assert_string_equal(wire_state_name(-1), "unknown");
	assert_string_equal(wire_state_name(4), "unknown");
	for (int cmd = 1; cmd < WIRE_CMD_MAX; cmd++)
		assert_string_not_equal(wire_cmd_name(cmd), "UNKNOWN");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_every_type),
		cmocka_unit_test(test_roundtrip_max_counts),
		cmocka_unit_test(test_wire_layout),
		cmocka_unit_test(test_every_prefix_incomplete),
		cmocka_unit_test(test_declared_length_mismatch),
		cmocka_unit_test(test_bad_frame_length),
		cmocka_unit_test(test_bad_cmd_and_flags),
		cmocka_unit_test(test_hello_check),
		cmocka_unit_test(test_counts_out_of_range),
		cmocka_unit_test(test_unterminated_name),
		cmocka_unit_test(test_enums_out_of_range),
		cmocka_unit_test(test_error_text),
		cmocka_unit_test(test_export_msgs),
		cmocka_unit_test(test_encode_nospace),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
