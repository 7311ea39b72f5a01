/* test_verbs_book.c - the verbs back end's device-free bookkeeping (slots themselves:
 * test_rdma_slots.c): staging pages taken and freed with slots, completions per
 * connection on failure, the staging page allocator, work-request building and per-QP
 * chaining (one doorbell per QP), the mapping of every ibv_wc status to -errno (no
 * failure maps to 0), and on the donor side, that a slab's registration never repeats
 * one of its recent rkeys.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "rdma/verbs-book.h"
#include "rdma_test_req.h"

static void test_fail_conn_and_queue_error(void **state)
{
	struct vbook b;
	struct rdma_req r = req(&conn_a, RDMA_OP_WRITE, 8192, 0);
	struct rdma_completion out[16];
	int ia, ib;

	assert_int_equal(vbook_init(&b, 8, 64), 0);
	r.cookie = 1;
	ia = vbook_start(&b, &r, &conn_a);
	r.cookie = 2;
	ib = vbook_start(&b, &r, &conn_b);
	r.cookie = 3;
	assert_true(vbook_start(&b, &r, &conn_a) >= 0);
	assert_true(ia >= 0 && ib >= 0);
	assert_int_equal(b.pages_free, 64 - 6);

	assert_int_equal(rslots_queue_error(&b.rs, 4, -ENOTCONN), 0);
	assert_int_equal(vbook_fail_conn(&b, &conn_a, -ECONNRESET), 2);
	assert_int_equal(b.pages_free, 64 - 2);
	assert_int_equal(b.rs.inflight, 4);
	assert_int_equal(rslots_pop(&b.rs, out, 16), 3);
	/* every request of conn a completed, with an error; b's is still in flight */
	for (int i = 0; i < 3; i++) {
		assert_true(out[i].status != 0);
		assert_true(out[i].cookie != 2);
	}
	assert_int_equal(b.rs.inflight, 1);
	assert_non_null(rslots_match(&b.rs, rslots_tag(&b.rs, (unsigned)ib)));
	vbook_fini(&b);
}

static void test_staging_pages(void **state)
{
	struct vbook b;
	int a, c, d, e;

	assert_int_equal(vbook_init(&b, 8, 16), 0);
	a = vbook_pages_alloc(&b, 4);
	c = vbook_pages_alloc(&b, 8);
	assert_int_equal(a, 0);
	assert_int_equal(c, 4);
	assert_int_equal(vbook_pages_alloc(&b, 5), -EAGAIN); /* only 4 left */
	d = vbook_pages_alloc(&b, 4);
	assert_int_equal(d, 12);
	assert_int_equal(b.pages_free, 0);
	assert_int_equal(vbook_pages_alloc(&b, 1), -EAGAIN);
	/* free two non-adjacent runs: 8 pages free, but no run of 5 */
	vbook_pages_free(&b, (unsigned)a, 4);
	vbook_pages_free(&b, (unsigned)d, 4);
	assert_int_equal(b.pages_free, 8);
	assert_int_equal(vbook_pages_alloc(&b, 5), -EAGAIN);
	/* a run of 4 after the cursor wraps */
	e = vbook_pages_alloc(&b, 4);
	assert_true(e == 0 || e == 12);
	vbook_pages_free(&b, (unsigned)c, 8);
	/* runs never overlap: fill everything with single pages and check uniqueness */
	vbook_pages_free(&b, (unsigned)e, 4);
	bool seen[16] = { false };
	for (int i = 0; i < 16; i++) {
		int p = vbook_pages_alloc(&b, 1);
		assert_true(p >= 0 && p < 16);
		assert_false(seen[p]);
		seen[p] = true;
	}
	assert_int_equal(vbook_pages_alloc(&b, 1), -EAGAIN);
	vbook_fini(&b);
}

static void test_staging_bounds_requests(void **state)
{
	struct vbook b;
	struct rdma_req r = req(&conn_a, RDMA_OP_READ, 64 * 1024, 0);

	/* 32 staging pages: two 64 KiB requests fit, a third waits despite free slots */
	int x, y;

	assert_int_equal(vbook_init(&b, 16, 32), 0);
	x = vbook_start(&b, &r, &conn_a);
	y = vbook_start(&b, &r, &conn_a);
	assert_true(x >= 0 && y >= 0 && x != y);
	assert_int_equal(vbook_start(&b, &r, &conn_a), -EAGAIN);
	assert_int_equal(b.rs.inflight, 2);
	/* distinct, non-overlapping staging runs for the two */
	assert_int_equal(abs((int)b.rs.slot[x].aux - (int)b.rs.slot[y].aux), 16);
	vbook_fini(&b);
}

static void test_fill_and_chain(void **state)
{
	struct ibv_send_wr wr[6], *heads[6];
	struct ibv_sge sge[6];
	void *owner[6] = { &conn_a, &conn_b, &conn_a, &conn_a, &conn_b, &conn_a };
	void *hown[6];
	uint8_t local[4096];
	unsigned nh;

	for (int i = 0; i < 6; i++)
		vbook_fill_wr(&wr[i], &sge[i], i % 2 ? RDMA_OP_WRITE : RDMA_OP_READ,
			      (uint64_t)i, local, 4096, 0x11, 0x1000u * (unsigned)i, 0x22);
	assert_int_equal(wr[0].opcode, IBV_WR_RDMA_READ);
	assert_int_equal(wr[1].opcode, IBV_WR_RDMA_WRITE);
	assert_int_equal(wr[3].send_flags, IBV_SEND_SIGNALED);
	assert_int_equal(wr[3].num_sge, 1);
	assert_ptr_equal(wr[3].sg_list, &sge[3]);
	assert_int_equal(sge[3].length, 4096);
	assert_int_equal(sge[3].lkey, 0x11);
	assert_int_equal(sge[3].addr, (uint64_t)(uintptr_t)local);
	assert_int_equal(wr[3].wr.rdma.remote_addr, 0x3000);
	assert_int_equal(wr[3].wr.rdma.rkey, 0x22);

	nh = vbook_chain(wr, owner, 6, heads, hown);
	assert_int_equal(nh, 2);
	assert_ptr_equal(hown[0], &conn_a);
	assert_ptr_equal(hown[1], &conn_b);
	/* a: 0 -> 2 -> 3 -> 5, b: 1 -> 4, in post order */
	assert_ptr_equal(heads[0], &wr[0]);
	assert_ptr_equal(wr[0].next, &wr[2]);
	assert_ptr_equal(wr[2].next, &wr[3]);
	assert_ptr_equal(wr[3].next, &wr[5]);
	assert_null(wr[5].next);
	assert_ptr_equal(heads[1], &wr[1]);
	assert_ptr_equal(wr[1].next, &wr[4]);
	assert_null(wr[4].next);
	assert_int_equal(vbook_chain(wr, owner, 0, heads, hown), 0);
}

static void test_wc_errno(void **state)
{
	assert_int_equal(vbook_wc_errno(IBV_WC_SUCCESS), 0);
	assert_int_equal(vbook_wc_errno(IBV_WC_REM_ACCESS_ERR), -EACCES);
	assert_int_equal(vbook_wc_errno(IBV_WC_REM_INV_REQ_ERR), -EACCES);
	/* local faults are not the donor refusing: -EIO, no immediate reconnect */
	assert_int_equal(vbook_wc_errno(IBV_WC_LOC_PROT_ERR), -EIO);
	assert_int_equal(vbook_wc_errno(IBV_WC_MW_BIND_ERR), -EIO);
	assert_int_equal(vbook_wc_errno(IBV_WC_WR_FLUSH_ERR), -ECONNRESET);
	assert_int_equal(vbook_wc_errno(IBV_WC_RETRY_EXC_ERR), -ECONNRESET);
	assert_int_equal(vbook_wc_errno(IBV_WC_RNR_RETRY_EXC_ERR), -ECONNRESET);
	assert_int_equal(vbook_wc_errno(IBV_WC_LOC_LEN_ERR), -EINVAL);
	assert_int_equal(vbook_wc_errno(IBV_WC_FATAL_ERR), -EIO);
	assert_int_equal(vbook_wc_errno(IBV_WC_GENERAL_ERR), -EIO);
	/* no failure ever passes as success, even an unknown one */
	for (int st = IBV_WC_SUCCESS + 1; st <= IBV_WC_GENERAL_ERR + 8; st++) {
		assert_true(vbook_wc_errno((enum ibv_wc_status)st) < 0);
		assert_true(vbook_wc_fatal((enum ibv_wc_status)st));
	}
	assert_false(vbook_wc_fatal(IBV_WC_SUCCESS));
}

/* A fake registrar: hands out rkeys from a script, records what is released. */
struct fake_reg {
	const uint32_t *keys;
	unsigned nkeys, calls;
	int fail_at;             /* call index that fails with -ENOMEM, -1 never */
	unsigned live;           /* registrations not yet released */
	uint32_t released[32];
	unsigned nreleased;
	unsigned live_at_release; /* smallest live count seen when releasing */
};

static int fake_reg(void *arg, void **mr, uint32_t *rkey)
{
	struct fake_reg *f = arg;
	unsigned i = f->calls++;

	if ((int)i == f->fail_at || i >= f->nkeys)
		return -ENOMEM;
	f->live++;
	*mr = (void *)&f->keys[i];
	*rkey = f->keys[i];
	return 0;
}

static void fake_dereg(void *arg, void *mr)
{
	struct fake_reg *f = arg;

	if (f->live < f->live_at_release)
		f->live_at_release = f->live;
	f->live--;
	f->released[f->nreleased++] = *(const uint32_t *)mr;
}

static void test_rkeys_never_repeat(void **state)
{
	static const uint32_t keys[] = { 10, 11, 10, 11, 12, 13 };
	struct vb_rkeys h = { 0 };
	struct fake_reg f = { .keys = keys, .nkeys = 6, .fail_at = -1,
			      .live_at_release = 99 };
	void *mr;
	uint32_t k;

	assert_int_equal(vb_reg_fresh(&h, fake_reg, fake_dereg, &f, &mr, &k), 0);
	assert_int_equal(k, 10);
	assert_int_equal(vb_reg_fresh(&h, fake_reg, fake_dereg, &f, &mr, &k), 0);
	assert_int_equal(k, 11);
	assert_int_equal(f.nreleased, 0);
	/* 10 and 11 are repeats: both held until 12 is registered, then released */
	assert_int_equal(vb_reg_fresh(&h, fake_reg, fake_dereg, &f, &mr, &k), 0);
	assert_int_equal(k, 12);
	assert_ptr_equal(mr, &keys[4]);
	assert_int_equal(f.calls, 5);
	assert_int_equal(f.nreleased, 2);
	assert_true(f.released[0] == 11 && f.released[1] == 10);
	assert_int_equal(f.live_at_release, 4); /* released only with the fresh one live */
	assert_true(vb_rkeys_seen(&h, 10) && vb_rkeys_seen(&h, 12) && !vb_rkeys_seen(&h, 13));
}

static void test_rkeys_history_and_errors(void **state)
{
	uint32_t keys[VB_RKEY_TRIES + 1];
	struct vb_rkeys h = { 0 };
	struct fake_reg f = { .keys = keys, .fail_at = -1, .live_at_release = 99 };
	void *mr;
	uint32_t k;

	/* the history holds the last VB_RKEY_HISTORY keys, oldest forgotten first */
	for (uint32_t i = 0; i < VB_RKEY_HISTORY + 2; i++)
		vb_rkeys_add(&h, 100 + i);
	assert_false(vb_rkeys_seen(&h, 100));
	assert_false(vb_rkeys_seen(&h, 101));
	for (uint32_t i = 2; i < VB_RKEY_HISTORY + 2; i++)
		assert_true(vb_rkeys_seen(&h, 100 + i));

	/* a provider that only repeats: -EAGAIN after VB_RKEY_TRIES, nothing left held */
	for (unsigned i = 0; i <= VB_RKEY_TRIES; i++)
		keys[i] = 105;
	f.nkeys = VB_RKEY_TRIES + 1;
	assert_int_equal(vb_reg_fresh(&h, fake_reg, fake_dereg, &f, &mr, &k), -EAGAIN);
	assert_int_equal(f.calls, VB_RKEY_TRIES);
	assert_int_equal(f.live, 0);
	assert_null(mr);

	/* a registration error after a repeat: the error, the repeat released */
	keys[0] = 105;
	f = (struct fake_reg){ .keys = keys, .nkeys = 4, .fail_at = 1, .live_at_release = 99 };
	assert_int_equal(vb_reg_fresh(&h, fake_reg, fake_dereg, &f, &mr, &k), -ENOMEM);
	assert_int_equal(f.live, 0);
	assert_int_equal(f.nreleased, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fail_conn_and_queue_error),
		cmocka_unit_test(test_staging_pages),
		cmocka_unit_test(test_staging_bounds_requests),
		cmocka_unit_test(test_fill_and_chain),
		cmocka_unit_test(test_wc_errno),
		cmocka_unit_test(test_rkeys_never_repeat),
		cmocka_unit_test(test_rkeys_history_and_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
