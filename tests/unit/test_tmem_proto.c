/* test_tmem_proto.c - unit tests of the libtmemshim client protocol codec
 * (tmemshim/proto.c): round trips of every command, and rejection of truncated,
 * oversized and malformed frames on decode and of bad fields on encode.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/common.h"
#include "tmemshim/tmemshim-proto.h"

static uint8_t buf[TMP_MAX_FRAME + 64];

static struct tmp_msg hello(const char *name)
{
	struct tmp_msg m = { .cmd = TMP_HELLO };
	m.hello.magic = TMP_MAGIC;
	m.hello.version = TMP_VERSION;
	strcpy(m.hello.name, name);
	return m;
}

static struct tmp_msg batch(unsigned n)
{
	struct tmp_msg m = { .cmd = TMP_BATCH };
	m.batch.n = n;
	for (unsigned i = 0; i < n; i++)
		m.batch.ops[i] = (struct tmp_op){ .cmd = TMEM_PUT + i % 4, .slot = (uint16_t)i,
						  .pool = 7 + i, .oid = 0x0102030405060708ull * i,
						  .index = 0xfffffff0u + i };
	return m;
}

/* encode @m, check that every proper prefix asks for more, that the whole decodes
 * and that the decoded message encodes to the same bytes. */
static struct tmp_msg roundtrip(const struct tmp_msg *m)
{
	static uint8_t again[TMP_MAX_FRAME];
	struct tmp_msg d;
	int len = tmp_encode(m, buf, sizeof(buf));
	assert_true(len >= TMP_HDR_SIZE);
	assert_int_equal(wire_get32(buf), len);
	for (int i = 0; i < len; i++)
		assert_int_equal(tmp_decode(buf, (size_t)i, &d, NULL), 0);
	memset(&d, 0xa5, sizeof(d));
	assert_int_equal(tmp_decode(buf, sizeof(buf), &d, NULL), len);
	assert_int_equal(d.cmd, m->cmd);
	assert_int_equal(tmp_encode(&d, again, sizeof(again)), len);
	assert_memory_equal(buf, again, (size_t)len);
	return d;
}

static void same_ops(const struct tmp_msg *a, const struct tmp_msg *b)
{
	assert_int_equal(a->batch.n, b->batch.n);
	for (unsigned i = 0; i < a->batch.n; i++) {
		const struct tmp_op *x = &a->batch.ops[i], *y = &b->batch.ops[i];
		assert_int_equal(x->cmd, y->cmd);
		assert_int_equal(x->slot, y->slot);
		assert_int_equal(x->pool, y->pool);
		assert_int_equal(x->oid, y->oid);
		assert_int_equal(x->index, y->index);
	}
}

static void test_roundtrip(void **state)
{
	struct tmp_msg m, d;

	m = hello("");
	d = roundtrip(&m);
	assert_int_equal(d.hello.magic, TMP_MAGIC);
	assert_int_equal(d.hello.version, TMP_VERSION);
	assert_string_equal(d.hello.name, "");
	m = hello("0123456789abcdef0123456789abcde"); /* 31 chars: the longest */
	d = roundtrip(&m);
	assert_string_equal(d.hello.name, m.hello.name);

	m = (struct tmp_msg){ .cmd = TMP_HELLO_ACK };
	m.hello_ack.client_id = 42;
	m.hello_ack.n_slots = TMP_N_SLOTS;
	d = roundtrip(&m);
	assert_int_equal(d.hello_ack.status, 0);
	assert_int_equal(d.hello_ack.client_id, 42);
	assert_int_equal(d.hello_ack.n_slots, TMP_N_SLOTS);
	m.hello_ack.status = EMFILE; /* a refusal need not offer slots */
	m.hello_ack.n_slots = 0;
	d = roundtrip(&m);
	assert_int_equal(d.hello_ack.status, EMFILE);

	m = (struct tmp_msg){ .cmd = TMP_NEW_POOL };
	m.new_pool.flags = TMEM_POOL_PERSISTENT | TMEM_POOL_SHARED;
	m.new_pool.uuid = 0xdeadbeefcafef00dull;
	d = roundtrip(&m);
	assert_int_equal(d.new_pool.flags, m.new_pool.flags);
	assert_int_equal(d.new_pool.uuid, m.new_pool.uuid);

	m = (struct tmp_msg){ .cmd = TMP_NEW_POOL_REPLY };
	m.pool_reply.pool = 12345;
	d = roundtrip(&m);
	assert_int_equal(d.pool_reply.status, 0);
	assert_int_equal(d.pool_reply.pool, 12345);

	m = (struct tmp_msg){ .cmd = TMP_DESTROY_POOL };
	m.destroy_pool.pool = UINT32_MAX;
	d = roundtrip(&m);
	assert_int_equal(d.destroy_pool.pool, UINT32_MAX);

	m = (struct tmp_msg){ .cmd = TMP_DESTROY_POOL_REPLY };
	m.pool_reply.status = ENOENT;
	d = roundtrip(&m);
	assert_int_equal(d.pool_reply.status, ENOENT);

	for (unsigned n = 1; n <= TMEM_MAX_BATCH; n += n < 8 ? 1 : 9) {
		m = batch(n);
		d = roundtrip(&m);
		same_ops(&d, &m);
	}
	m = batch(TMEM_MAX_BATCH);
	d = roundtrip(&m);
	same_ops(&d, &m);

	m = (struct tmp_msg){ .cmd = TMP_BATCH_REPLY };
	m.batch_reply.n = TMEM_MAX_BATCH;
	for (unsigned i = 0; i < TMEM_MAX_BATCH; i++)
		m.batch_reply.status[i] = i % 3 ? 0 : ENOSPC;
	d = roundtrip(&m);
	assert_int_equal(d.batch_reply.n, TMEM_MAX_BATCH);
	for (unsigned i = 0; i < TMEM_MAX_BATCH; i++)
		assert_int_equal(d.batch_reply.status[i], m.batch_reply.status[i]);
}

/* Two frames back to back decode one at a time. */
static void test_stream(void **state)
{
	struct tmp_msg a = batch(3), b = hello("x"), d;
	int la = tmp_encode(&a, buf, sizeof(buf));
	int lb = tmp_encode(&b, buf + la, sizeof(buf) - (size_t)la);
	assert_true(la > 0 && lb > 0);
	assert_int_equal(tmp_decode(buf, (size_t)(la + lb), &d, NULL), la);
	assert_int_equal(d.cmd, TMP_BATCH);
	assert_int_equal(tmp_decode(buf + la, (size_t)lb, &d, NULL), lb);
	assert_string_equal(d.hello.name, "x");
}

/* decode @len bytes of buf: expect @err and a reason. */
static void expect_bad(size_t len, int err)
{
	struct tmp_msg d;
	const char *why = NULL;
	assert_int_equal(tmp_decode(buf, len, &d, &why), err);
	assert_non_null(why);
}

static int encode(const struct tmp_msg *m)
{
	int len = tmp_encode(m, buf, sizeof(buf));
	assert_true(len > 0);
	return len;
}

static void test_bad_length(void **state)
{
	struct tmp_msg m = hello("abc");
	int len = encode(&m);

	wire_put32(buf, (uint32_t)len - 1); /* truncated body */
	expect_bad((size_t)len, -EBADMSG);
	wire_put32(buf, (uint32_t)len + 1); /* trailing byte */
	expect_bad((size_t)len + 1, -EBADMSG);
	wire_put32(buf, TMP_HDR_SIZE - 1);
	expect_bad((size_t)len, -EBADMSG);
	wire_put32(buf, TMP_MAX_FRAME + 1); /* rejected before it is all there */
	expect_bad(TMP_HDR_SIZE, -EBADMSG);

	m = batch(4);
	len = encode(&m);
	wire_put32(buf, (uint32_t)len - TMP_OP_SIZE); /* count says 4, room for 3 */
	expect_bad((size_t)len, -EBADMSG);
	wire_put32(buf, TMP_HDR_SIZE + 2); /* not even the count */
	expect_bad((size_t)len, -EBADMSG);
}

static void test_bad_count(void **state)
{
	struct tmp_msg m = batch(2);
	int len = encode(&m);

	wire_put32(buf + TMP_HDR_SIZE, 0);
	expect_bad((size_t)len, -EBADMSG);
	wire_put32(buf + TMP_HDR_SIZE, TMEM_MAX_BATCH + 1);
	expect_bad((size_t)len, -EBADMSG);
	wire_put32(buf + TMP_HDR_SIZE, UINT32_MAX); /* would overflow n * size */
	expect_bad((size_t)len, -EBADMSG);

	m.batch.n = 0;
	assert_int_equal(tmp_encode(&m, buf, sizeof(buf)), -EINVAL);
	m.batch.n = TMEM_MAX_BATCH + 1;
	assert_int_equal(tmp_encode(&m, buf, sizeof(buf)), -EINVAL);
	m = (struct tmp_msg){ .cmd = TMP_BATCH_REPLY };
	m.batch_reply.n = 1;
	len = encode(&m);
	wire_put32(buf + TMP_HDR_SIZE, 0);
	expect_bad((size_t)len, -EBADMSG);
}

static void test_bad_slot(void **state)
{
	struct tmp_msg m = batch(3);
	const size_t slot0 = TMP_HDR_SIZE + 4 + 2, slot1 = slot0 + TMP_OP_SIZE;
	int len = encode(&m);

	wire_put16(buf + slot1, TMP_N_SLOTS);
	expect_bad((size_t)len, -EBADMSG);
	wire_put16(buf + slot1, 0); /* op 1 (GET) reuses op 0's (PUT) slot */
	expect_bad((size_t)len, -EBADMSG);

	m.batch.ops[2].slot = 0; /* op 2 is a flush: its slot is not used */
	encode(&m);
	m.batch.ops[1].slot = 0;
	assert_int_equal(tmp_encode(&m, buf, sizeof(buf)), -EINVAL);
	m.batch.ops[1].slot = TMP_N_SLOTS;
	assert_int_equal(tmp_encode(&m, buf, sizeof(buf)), -EINVAL);
}

static void test_bad_cmd(void **state)
{
	struct tmp_msg m = batch(2);
	int len = encode(&m);

	wire_put16(buf + TMP_HDR_SIZE + 4, 0); /* operation 0 */
	expect_bad((size_t)len, -EBADMSG);
	wire_put16(buf + TMP_HDR_SIZE + 4, TMEM_FLUSH_OBJECT + 1);
	expect_bad((size_t)len, -EBADMSG);
	wire_put16(buf + TMP_HDR_SIZE + 4, TMEM_PUT);
	wire_put16(buf + 4, TMP_CMD_MAX); /* frame command */
	expect_bad(TMP_HDR_SIZE, -EPROTO);
	wire_put16(buf + 4, 0);
	expect_bad(TMP_HDR_SIZE, -EPROTO);
	wire_put16(buf + 4, TMP_BATCH);
	wire_put16(buf + 6, 1); /* flags */
	expect_bad(TMP_HDR_SIZE, -EPROTO);

	m.batch.ops[0].cmd = 9;
	assert_int_equal(tmp_encode(&m, buf, sizeof(buf)), -EINVAL);
	m = (struct tmp_msg){ .cmd = 77 };
	assert_int_equal(tmp_encode(&m, buf, sizeof(buf)), -EINVAL);
	assert_string_equal(tmp_cmd_name(77), "UNKNOWN");
	assert_string_equal(tmp_cmd_name(TMP_BATCH), "BATCH");
}

static void test_bad_hello(void **state)
{
	struct tmp_msg m = hello("client");
	int len = encode(&m);

	memset(buf + TMP_HDR_SIZE + 8, 'a', TMP_NAME_LEN); /* name not terminated */
	expect_bad((size_t)len, -EBADMSG);
	len = encode(&m);
	wire_put32(buf + TMP_HDR_SIZE, WIRE_MAGIC); /* the control plane's magic */
	expect_bad((size_t)len, -EBADMSG);

	memset(m.hello.name, 'a', TMP_NAME_LEN);
	assert_int_equal(tmp_encode(&m, buf, sizeof(buf)), -EINVAL);
	m = hello("c");
	m.hello.magic = 1;
	assert_int_equal(tmp_encode(&m, buf, sizeof(buf)), -EINVAL);
}

static void test_bad_status(void **state)
{
	struct tmp_msg m = { .cmd = TMP_BATCH_REPLY };
	m.batch_reply.n = 2;
	int len = encode(&m);

	wire_put32(buf + TMP_HDR_SIZE + 8, TMP_MAX_STATUS + 1);
	expect_bad((size_t)len, -EBADMSG);
	m = (struct tmp_msg){ .cmd = TMP_HELLO_ACK };
	m.hello_ack.n_slots = TMP_N_SLOTS;
	len = encode(&m);
	wire_put32(buf + TMP_HDR_SIZE + 8, TMP_N_SLOTS + 1); /* a buffer we did not agree on */
	expect_bad((size_t)len, -EBADMSG);
	m.hello_ack.status = (uint32_t)-EIO; /* a negative errno is a bug */
	assert_int_equal(tmp_encode(&m, buf, sizeof(buf)), -EINVAL);
}

static void test_small_buffer(void **state)
{
	struct tmp_msg m = batch(TMEM_MAX_BATCH);
	assert_int_equal(tmp_encode(&m, buf, TMP_MAX_FRAME), TMP_MAX_FRAME);
	assert_int_equal(tmp_encode(&m, buf, TMP_MAX_FRAME - 1), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),  cmocka_unit_test(test_stream),
		cmocka_unit_test(test_bad_length), cmocka_unit_test(test_bad_count),
		cmocka_unit_test(test_bad_slot),   cmocka_unit_test(test_bad_cmd),
		cmocka_unit_test(test_bad_hello),  cmocka_unit_test(test_bad_status),
		cmocka_unit_test(test_small_buffer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
