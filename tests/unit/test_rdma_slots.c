/* test_rdma_slots.c - request bookkeeping shared by the TCP and verbs back ends
 * (rdma/slots.c): the in-flight bound, matching by tag with generations (a stale
 * reply or completion never matches), failing a connection's requests, errors queued
 * without a slot, the completion ring wrapping, request validation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "rdma/slots.h"
#include "rdma_test_req.h"

static void test_slots_bound_and_match(void **state)
{
	struct rslots b;
	struct rdma_req r = req(&conn_a, RDMA_OP_READ, 4096, 0);
	struct rdma_completion out[8];
	uint64_t ids[4];
	int idx[4];

	assert_int_equal(rslots_init(&b, 4), 0);
	for (int i = 0; i < 4; i++) {
		r.cookie = 100 + (uint64_t)i;
		idx[i] = rslots_take(&b, &r, &conn_a);
		assert_true(idx[i] >= 0);
		ids[i] = rslots_tag(&b, (unsigned)idx[i]);
	}
	assert_int_equal(b.inflight, 4);
	/* the bound: a fifth request waits */
	assert_int_equal(rslots_take(&b, &r, &conn_a), -EAGAIN);
	assert_int_equal(rslots_queue_error(&b, 7, -ENOTCONN), -EAGAIN);

	/* complete out of order */
	struct rslot *s = rslots_match(&b, ids[2]);
	assert_non_null(s);
	assert_int_equal(s->cookie, 102);
	rslots_finish(&b, s, 0);
	s = rslots_match(&b, ids[0]);
	assert_non_null(s);
	rslots_finish(&b, s, -EACCES);
	/* a second completion for the same wr_id (stale generation) does not match */
	assert_null(rslots_match(&b, ids[2]));
	assert_null(rslots_match(&b, ids[0]));
	/* unknown index */
	assert_null(rslots_match(&b, 99));
	/* finished but not reaped: still counted in flight */
	assert_int_equal(b.inflight, 4);
	assert_int_equal(rslots_take(&b, &r, &conn_a), -EAGAIN);

	assert_int_equal(rslots_pop(&b, out, 8), 2);
	assert_int_equal(out[0].cookie, 102);
	assert_int_equal(out[0].status, 0);
	assert_int_equal(out[1].cookie, 100);
	assert_int_equal(out[1].status, -EACCES);
	assert_int_equal(b.inflight, 2);

	/* a reused slot gets a new generation: the old wr_id stays stale */
	int again = rslots_take(&b, &r, &conn_a);
	assert_true(again >= 0);
	uint64_t nid = rslots_tag(&b, (unsigned)again);
	assert_true(nid != ids[0] && nid != ids[2]);
	assert_null(rslots_match(&b, ids[0]));
	assert_null(rslots_match(&b, ids[2]));
	assert_non_null(rslots_match(&b, nid));
	rslots_fini(&b);
}


static void test_check(void **state)
{
	struct rdma_req r = req(&conn_a, RDMA_OP_READ, 4096, 0);

	assert_int_equal(rslots_check(&r), 0);
	r.len = 0;
	assert_int_equal(rslots_check(&r), -EINVAL);
	r.len = 4095;
	assert_int_equal(rslots_check(&r), -EINVAL);
	r.len = RDMA_MAX_IO + 4096;
	assert_int_equal(rslots_check(&r), -EINVAL);
	r.len = RDMA_MAX_IO;
	assert_int_equal(rslots_check(&r), 0);
	r = req(&conn_a, RDMA_OP_WRITE, 4096, 0);
	r.offset = r.slab_length - 4096;
	assert_int_equal(rslots_check(&r), 0);
	r.offset = r.slab_length;
	assert_int_equal(rslots_check(&r), -EINVAL);
	r.offset = UINT64_MAX - 100;
	assert_int_equal(rslots_check(&r), -EINVAL);
	/* a slab whose end does not fit in 64 bits */
	r = req(&conn_a, RDMA_OP_READ, 4096, 0);
	r.slab_offset = UINT64_MAX - 4096;
	assert_int_equal(rslots_check(&r), -EINVAL);
	r = req(&conn_a, RDMA_OP_READ, 4096, 0);
	r.buf = NULL;
	assert_int_equal(rslots_check(&r), -EINVAL);
	r = req(NULL, RDMA_OP_READ, 4096, 0);
	assert_int_equal(rslots_check(&r), -EINVAL);
	r = req(&conn_a, (enum rdma_op)7, 4096, 0);
	assert_int_equal(rslots_check(&r), -EINVAL);
}


static void test_fail_conn_ring_wrap(void **state)
{
	struct rslots b;
	struct rdma_req r = req(&conn_a, RDMA_OP_WRITE, 4096, 0);
	struct rdma_completion out[3];
	uint64_t next = 0, want = 0;

	assert_int_equal(rslots_init(&b, 3), 0);
	/* many rounds through a ring of 3: completions come out in queue order */
	for (int round = 0; round < 10; round++) {
		r.cookie = next++;
		assert_true(rslots_take(&b, &r, &conn_a) >= 0);
		r.cookie = next++;
		assert_true(rslots_take(&b, &r, &conn_b) >= 0);
		assert_int_equal(rslots_queue_error(&b, next++, -ENOTCONN), 0);
		assert_true(rslots_full(&b));
		assert_int_equal(rslots_take(&b, &r, &conn_a), -EAGAIN);
		assert_int_equal(rslots_fail_conn(&b, &conn_b, -ECONNRESET), 1);
		assert_int_equal(rslots_fail_conn(&b, &conn_b, -ECONNRESET), 0);
		assert_int_equal(rslots_fail_conn(&b, &conn_a, -ECONNRESET), 1);
		assert_int_equal(b.inflight, 3);
		assert_int_equal(rslots_pop(&b, out, 3), 3);
		/* queued: the error (cookie 3k+2), then b's (3k+1), then a's (3k) */
		assert_int_equal(out[0].cookie, want + 2);
		assert_int_equal(out[0].status, -ENOTCONN);
		assert_int_equal(out[1].cookie, want + 1);
		assert_int_equal(out[2].cookie, want);
		assert_int_equal(out[2].status, -ECONNRESET);
		want += 3;
		assert_int_equal(b.inflight, 0);
		assert_int_equal(b.nfree, 3);
	}
	assert_int_equal(rslots_pop(&b, out, 3), 0);
	rslots_fini(&b);
	assert_int_equal(rslots_init(&b, 0), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slots_bound_and_match),
		cmocka_unit_test(test_fail_conn_ring_wrap),
		cmocka_unit_test(test_check),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
