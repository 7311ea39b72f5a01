/* test_rdma_tcp.c - the TCP data-plane transport against a real donor-side server on
 * 127.0.0.1: stamped pages written and read back in batches of 1, 32 and 256, every
 * ACL refusal (key, owner, range, revoke, re-key), the in-flight bound, a donor that
 * dies with requests in flight, and protocol violations from a fake donor.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/common.h"
#include "rdma/rdma-internal.h"

#define SLAB (1u << 20)
#define NSLABS 4
#define PG RTM_PAGE_SIZE
#define NODE_A 7
#define NODE_B 8
#define KEY0 0x1111000000000001ull
#define KEY1 0x2222000000000002ull
#define KEY2 0x3333000000000003ull
/* Waits for completions that must come: generous, so that only a real hang fails on
 * a loaded machine (no timing is asserted). */
#define WAIT_MS 30000

static uint8_t *pool;
static struct rdma_tcp_server *srv;
static struct rdma_transport *ta, *tb;
static struct rdma_conn *ca, *cb;

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* stamp - page @idx of generation @seed: index, seed, pattern, checksum. */
static void stamp(uint8_t *p, uint64_t idx, uint64_t seed)
{
	uint64_t *w = (uint64_t *)p;
	unsigned i;

	w[0] = idx;
	w[1] = seed;
	for (i = 2; i < PG / 8 - 1; i++)
		w[i] = mix(idx * 4099 + seed * 131 + i);
	w[PG / 8 - 1] = rtm_checksum(p, PG - 8);
}

static void check_stamp(const uint8_t *p, uint64_t idx, uint64_t seed)
{
	static uint8_t want[PG];

	stamp(want, idx, seed);
	assert_int_equal(((const uint64_t *)p)[0], idx);
	assert_int_equal(rtm_checksum(p, PG - 8), ((const uint64_t *)p)[PG / 8 - 1]);
	assert_memory_equal(p, want, PG);
}

static struct rdma_req mkreq(struct rdma_conn *c, enum rdma_op op, unsigned slab,
			     uint64_t key, uint64_t off, void *buf, uint32_t len)
{
	return (struct rdma_req){ .conn = c, .op = op, .slab_offset = (uint64_t)slab * SLAB,
				  .slab_length = SLAB, .key = key, .offset = off,
				  .buf = buf, .len = len };
}

/* one_io - a single synchronous request; returns its status. */
static int one_io(struct rdma_transport *t, struct rdma_req r)
{
	int st = 1;
	int ret = rdma_rw_sync(t, &r, 1, &st);

	assert_int_equal(ret, st);
	return st;
}

static int setup(void **state)
{
	uint16_t port;

	log_init("test_rdma_tcp", LOG_WARN);
	pool = aligned_alloc(PG, (size_t)NSLABS * SLAB);
	assert_non_null(pool);
	memset(pool, 0xee, (size_t)NSLABS * SLAB);
	srv = rdma_tcp_server_create("127.0.0.1", 0, pool, (uint64_t)NSLABS * SLAB, SLAB);
	assert_non_null(srv);
	port = rdma_tcp_server_port(srv);
	assert_true(port > 0);
	assert_int_equal(rdma_tcp_server_set_acl(srv, 0, NODE_A, KEY0), 0);
	assert_int_equal(rdma_tcp_server_set_acl(srv, 1, NODE_A, KEY1), 0);
	assert_int_equal(rdma_tcp_server_set_acl(srv, 2, NODE_B, KEY2), 0);
	assert_int_equal(rdma_tcp_server_set_acl(srv, NSLABS, NODE_B, KEY2), -EINVAL);
	ta = rdma_tcp_create(256);
	tb = rdma_tcp_create(64);
	assert_non_null(ta);
	assert_non_null(tb);
	ca = rdma_connect(ta, 1, "127.0.0.1", port, NODE_A);
	cb = rdma_connect(tb, 1, "127.0.0.1", port, NODE_B);
	assert_non_null(ca);
	assert_non_null(cb);
	assert_int_equal(rdma_conn_donor(ca), 1);
	(void)state;
	return 0;
}

static int teardown(void **state)
{
	rdma_destroy(ta);
	rdma_destroy(tb);
	rdma_tcp_server_destroy(srv);
	free(pool);
	(void)state;
	return 0;
}

/* rw_batches - 512 pages over slabs 0 and 1, written and read in batches of @batch. */
static void rw_batches(unsigned batch, uint64_t seed)
{
	const unsigned n = 2 * SLAB / PG;
	uint8_t *buf = malloc((size_t)n * PG);
	struct rdma_req *r = calloc(n, sizeof(*r));
	int *st = calloc(n, sizeof(*st));
	unsigned i, j;

	assert_non_null(buf);
	for (i = 0; i < n; i++) {
		unsigned slab = i / (SLAB / PG);

		stamp(buf + (size_t)i * PG, i, seed);
		r[i] = mkreq(ca, RDMA_OP_WRITE, slab, slab ? KEY1 : KEY0,
			     (uint64_t)(i % (SLAB / PG)) * PG, buf + (size_t)i * PG, PG);
	}
	for (i = 0; i < n; i += batch) {
		assert_int_equal(rdma_rw_sync(ta, r + i, batch, st + i), 0);
		for (j = 0; j < batch; j++)
			assert_int_equal(st[i + j], 0);
	}
	for (i = 0; i < n; i++)
		check_stamp(pool + (size_t)i * PG, i, seed); /* landed where it should */
	memset(buf, 0, (size_t)n * PG);
	for (i = 0; i < n; i++)
		r[i].op = RDMA_OP_READ;
	for (i = 0; i < n; i += batch)
		assert_int_equal(rdma_rw_sync(ta, r + i, batch, st + i), 0);
	for (i = 0; i < n; i++)
		check_stamp(buf + (size_t)i * PG, i, seed);
	free(st);
	free(r);
	free(buf);
}

static void test_batch1(void **state)
{
	rw_batches(1, 1);
	(void)state;
}

static void test_batch32(void **state)
{
	rw_batches(32, 2);
	(void)state;
}

static void test_batch256(void **state)
{
	rw_batches(256, 3);
	(void)state;
}

/* big requests (64 KiB and a whole slab) and the raw post/poll interface */
static void test_large_and_async(void **state)
{
	uint8_t *buf = malloc(SLAB), *back = malloc(SLAB);
	struct rdma_req r[16];
	struct rdma_completion comp[16];
	unsigned i, got = 0, seen = 0;

	for (i = 0; i < SLAB / PG; i++)
		stamp(buf + (size_t)i * PG, i, 99);
	assert_int_equal(one_io(ta, mkreq(ca, RDMA_OP_WRITE, 1, KEY1, 0, buf, SLAB)), 0);
	memset(back, 0, SLAB);
	for (i = 0; i < 16; i++) {
		r[i] = mkreq(ca, RDMA_OP_READ, 1, KEY1, (uint64_t)i * 65536, back + i * 65536,
			     65536);
		r[i].cookie = 1000 + i;
	}
	assert_int_equal(ta->ops->post(ta, r, 16), 16);
	assert_int_equal(ta->ops->inflight(ta), 16);
	while (got < 16) {
		int n = ta->ops->poll(ta, comp, 16, WAIT_MS);

		assert_true(n > 0);
		for (i = 0; i < (unsigned)n; i++) {
			assert_int_equal(comp[i].status, 0);
			assert_true(comp[i].cookie >= 1000 && comp[i].cookie < 1016);
			assert_false(seen & (1u << (comp[i].cookie - 1000)));
			seen |= 1u << (comp[i].cookie - 1000);
		}
		got += (unsigned)n;
	}
	assert_int_equal(ta->ops->inflight(ta), 0);
	assert_int_equal(ta->ops->poll(ta, comp, 16, 0), 0);
	for (i = 0; i < SLAB / PG; i++)
		check_stamp(back + (size_t)i * PG, i, 99);
	free(back);
	free(buf);
	(void)state;
}

static void test_refusals(void **state)
{
	uint8_t *page = aligned_alloc(PG, 2 * PG);
	struct rdma_req r;

	/* wrong key */
	assert_int_equal(one_io(ta, mkreq(ca, RDMA_OP_READ, 0, KEY0 ^ 1, 0, page, PG)), -EACCES);
	assert_int_equal(one_io(ta, mkreq(ca, RDMA_OP_WRITE, 0, KEY1, 0, page, PG)), -EACCES);
	/* wrong owner: B presents A's key; A touches B's slab; nobody owns slab 3 */
	assert_int_equal(one_io(tb, mkreq(cb, RDMA_OP_READ, 0, KEY0, 0, page, PG)), -EACCES);
	assert_int_equal(one_io(ta, mkreq(ca, RDMA_OP_WRITE, 2, KEY2, 0, page, PG)), -EACCES);
	assert_int_equal(one_io(ta, mkreq(ca, RDMA_OP_READ, 3, 0, 0, page, PG)), -EACCES);
	/* a range crossing into the next slab (the client is lied to about the length) */
	r = mkreq(ca, RDMA_OP_READ, 0, KEY0, SLAB - PG, page, 2 * PG);
	r.slab_length = 2 * SLAB;
	assert_int_equal(one_io(ta, r), -EACCES);
	/* beyond the pool, unaligned offset */
	r = mkreq(ca, RDMA_OP_READ, NSLABS, KEY0, 0, page, PG);
	assert_int_equal(one_io(ta, r), -EACCES);
	assert_int_equal(one_io(ta, mkreq(ca, RDMA_OP_READ, 0, KEY0, 512, page, PG)), -EACCES);
	/* the connection survives refusals */
	assert_int_equal(one_io(ta, mkreq(ca, RDMA_OP_READ, 0, KEY0, 0, page, PG)), 0);
	/* malformed requests are refused by the client before sending */
	r = mkreq(ca, RDMA_OP_READ, 0, KEY0, 0, page, 100);
	assert_int_equal(ta->ops->post(ta, &r, 1), -EINVAL);
	r.len = 0;
	assert_int_equal(ta->ops->post(ta, &r, 1), -EINVAL);
	r = mkreq(ca, RDMA_OP_READ, 0, KEY0, SLAB - PG, page, 2 * PG);
	assert_int_equal(ta->ops->post(ta, &r, 1), -EINVAL);
	r = mkreq(cb, RDMA_OP_READ, 0, KEY0, 0, page, PG); /* another transport's conn */
	assert_int_equal(ta->ops->post(ta, &r, 1), -EINVAL);
	free(page);
	(void)state;
}

static void test_revoke_and_rekey(void **state)
{
	uint8_t *page = aligned_alloc(PG, PG), *back = aligned_alloc(PG, PG);
	const uint64_t newkey = 0x4444000000000004ull;
	unsigned i;

	stamp(page, 5, 5);
	assert_int_equal(one_io(ta, mkreq(ca, RDMA_OP_WRITE, 1, KEY1, 5 * PG, page, PG)), 0);
	/* revoked: nobody gets in */
	assert_int_equal(rdma_tcp_server_set_acl(srv, 1, 0, KEY1), 0);
	assert_int_equal(one_io(ta, mkreq(ca, RDMA_OP_READ, 1, KEY1, 5 * PG, back, PG)), -EACCES);
	assert_int_equal(one_io(ta, mkreq(ca, RDMA_OP_WRITE, 1, KEY1, 0, page, PG)), -EACCES);
	/* handed to B with a new key */
	assert_int_equal(rdma_tcp_server_set_acl(srv, 1, NODE_B, newkey), 0);
	stamp(page, 6, 6);
	assert_int_equal(one_io(tb, mkreq(cb, RDMA_OP_WRITE, 1, newkey, 5 * PG, page, PG)), 0);
	assert_int_equal(one_io(tb, mkreq(cb, RDMA_OP_READ, 1, KEY1, 5 * PG, back, PG)), -EACCES);
	/* A, old key or new, cannot touch B's data */
	memset(page, 0x5a, PG);
	for (i = 0; i < 2; i++)
		assert_int_equal(one_io(ta, mkreq(ca, RDMA_OP_WRITE, 1, i ? newkey : KEY1,
						  5 * PG, page, PG)), -EACCES);
	assert_int_equal(one_io(tb, mkreq(cb, RDMA_OP_READ, 1, newkey, 5 * PG, back, PG)), 0);
	check_stamp(back, 6, 6);
	/* give it back to A for the other tests */
	assert_int_equal(rdma_tcp_server_set_acl(srv, 1, NODE_A, KEY1), 0);
	free(back);
	free(page);
	(void)state;
}

static void test_inflight_bound(void **state)
{
	struct rdma_transport *t = rdma_tcp_create(8);
	struct rdma_conn *c = rdma_connect(t, 1, "127.0.0.1", rdma_tcp_server_port(srv), NODE_A);
	uint8_t *buf = malloc(32 * PG);
	struct rdma_req r[32];
	struct rdma_completion comp[32];
	unsigned i, got = 0;
	int n;

	assert_non_null(c);
	for (i = 0; i < 32; i++)
		r[i] = mkreq(c, RDMA_OP_READ, 0, KEY0, (uint64_t)i * PG, buf + i * PG, PG);
	assert_int_equal(t->ops->post(t, r, 32), 8);
	assert_int_equal(t->ops->inflight(t), 8);
	assert_int_equal(t->ops->post(t, r + 8, 24), -EAGAIN);
	while (got < 8) {
		n = t->ops->poll(t, comp, 3, WAIT_MS); /* fewer than are ready */
		assert_true(n > 0 && n <= 3);
		got += (unsigned)n;
		assert_int_equal(t->ops->inflight(t), 8 - got);
	}
	assert_int_equal(t->ops->post(t, r + 8, 24), 8);
	/* rw_sync refuses to run over foreign requests */
	assert_int_equal(rdma_rw_sync(t, r, 1, (int[1]){ 0 }), -EBUSY);
	for (got = 0; got < 8; got += (unsigned)n)
		assert_true((n = t->ops->poll(t, comp, 32, WAIT_MS)) > 0);
	/* rw_sync over more requests than the depth */
	int st[32];
	assert_int_equal(rdma_rw_sync(t, r, 32, st), 0);
	assert_memory_equal(buf, pool, 32 * PG);
	rdma_conn_close(t, c);
	rdma_destroy(t);
	free(buf);
	(void)state;
}

/* A donor that dies with requests in flight: everything completes, nothing that was
 * not served passes as success, and later requests fail. */
static void test_server_dies(void **state)
{
	const unsigned n = 64, len = 64 * 1024;
	uint8_t *p2 = aligned_alloc(PG, NSLABS * (size_t)SLAB), *buf = malloc((size_t)n * len);
	struct rdma_tcp_server *s2 = rdma_tcp_server_create("127.0.0.1", 0, p2,
							    NSLABS * (uint64_t)SLAB, SLAB);
	struct rdma_transport *t = rdma_tcp_create(128);
	struct rdma_conn *c;
	struct rdma_req r[64];
	struct rdma_completion comp[64];
	unsigned i, got = 0, ok = 0;
	int m;

	assert_non_null(s2);
	for (i = 0; i < NSLABS * SLAB / PG; i++)
		stamp(p2 + (size_t)i * PG, i, 42);
	for (i = 0; i < NSLABS; i++)
		rdma_tcp_server_set_acl(s2, i, NODE_A, KEY0 + i);
	c = rdma_connect(t, 2, "127.0.0.1", rdma_tcp_server_port(s2), NODE_A);
	assert_non_null(c);
	memset(buf, 0, (size_t)n * len);
	for (i = 0; i < n; i++) {
		r[i] = mkreq(c, RDMA_OP_READ, i / 16, KEY0 + i / 16, (uint64_t)(i % 16) * len,
			     buf + (size_t)i * len, len);
		r[i].cookie = i;
	}
	assert_int_equal(t->ops->post(t, r, n), (int)n);
	rdma_tcp_server_destroy(s2);
	while (got < n) {
		m = t->ops->poll(t, comp, 64, WAIT_MS);
		assert_true(m > 0);
		for (i = 0; i < (unsigned)m; i++) {
			uint64_t k = comp[i].cookie;
			unsigned pg;

			if (comp[i].status) {
				assert_true(comp[i].status == -ECONNRESET);
				continue;
			}
			ok++;
			for (pg = 0; pg < len / PG; pg++)
				check_stamp(buf + k * len + (size_t)pg * PG,
					    (k * len) / PG + pg, 42);
		}
		got += (unsigned)m;
	}
	print_message("# %u of %u served before the donor went away\n", ok, n);
	/* later requests: refused, never success (-ENOTCONN once the client has seen the
	 * close; -ECONNRESET if all 64 were served before the donor went away and the
	 * close is noticed only now) */
	assert_int_equal(t->ops->post(t, r, 4), 4);
	for (got = 0; got < 4; got += (unsigned)m) {
		m = t->ops->poll(t, comp, 4, WAIT_MS);
		assert_true(m > 0);
		for (i = 0; i < (unsigned)m; i++)
			assert_true(comp[i].status == -ENOTCONN ||
				    comp[i].status == -ECONNRESET);
	}
	rdma_destroy(t);
	free(buf);
	free(p2);
	(void)state;
}

/* set_acl racing with requests: every request completes, 0 or -EACCES, no hang */
static atomic_bool flip_stop;

static void *acl_flipper(void *arg)
{
	unsigned i;

	for (i = 0; !atomic_load(&flip_stop); i++) {
		rdma_tcp_server_set_acl(srv, 3, i % 2 ? NODE_A : NODE_B, KEY2);
		usleep(50);
	}
	rdma_tcp_server_set_acl(srv, 3, 0, 0);
	(void)arg;
	return NULL;
}

static void test_acl_race(void **state)
{
	uint8_t *buf = malloc(32 * PG);
	struct rdma_req r[32];
	int st[32];
	unsigned i, round, ok = 0, refused = 0;
	pthread_t th;

	for (i = 0; i < 32; i++)
		r[i] = mkreq(ca, RDMA_OP_READ, 3, KEY2, (uint64_t)i * PG, buf + i * PG, PG);
	assert_int_equal(pthread_create(&th, NULL, acl_flipper, NULL), 0);
	for (round = 0; round < 50; round++) {
		rdma_rw_sync(ta, r, 32, st);
		for (i = 0; i < 32; i++) {
			assert_true(st[i] == 0 || st[i] == -EACCES);
			ok += !st[i];
			refused += !!st[i];
		}
	}
	atomic_store(&flip_stop, true);
	pthread_join(th, NULL);
	/* how many fall on each side depends on scheduling: only the final state is
	 * certain (timing must not decide a test) */
	assert_int_equal(ok + refused, 50 * 32);
	assert_int_equal(one_io(ta, r[0]), -EACCES);
	print_message("# %u admitted, %u refused while the ACL changed\n", ok, refused);
	free(buf);
	(void)state;
}

/* ---------------------------------------------------------------- fake donor */

enum fake_mode { FAKE_SILENT_CLOSE, FAKE_BAD_TAG, FAKE_BAD_LEN, FAKE_REFUSE_HELLO };

struct fake {
	int lfd;
	uint16_t port;
	enum fake_mode mode;
	unsigned nreq;      /* requests to read before misbehaving */
	pthread_t th;
};

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	uint8_t h[RTCP_HELLO_SIZE], r[RTCP_HELLO_REPLY_SIZE], q[RTCP_REQ_SIZE],
		rep[RTCP_REPLY_SIZE];
	int fd = accept(f->lfd, NULL, NULL);
	unsigned i;

	if (fd < 0)
		return NULL;
	if (net_read_full(fd, h, sizeof(h)))
		goto out;
	wire_put32(r, RTCP_MAGIC);
	wire_put16(r + 4, RTCP_VERSION);
	wire_put16(r + 6, 0);
	wire_put32(r + 8, f->mode == FAKE_REFUSE_HELLO ? EPERM : 0);
	net_write_full(fd, r, sizeof(r));
	for (i = 0; i < f->nreq; i++)
		if (net_read_full(fd, q, sizeof(q)))
			goto out;
	if (f->mode == FAKE_BAD_TAG || f->mode == FAKE_BAD_LEN) {
		/* FAKE_BAD_TAG: a tag never issued; FAKE_BAD_LEN: a real tag, wrong len */
		wire_put64(rep, f->mode == FAKE_BAD_TAG ? 0xdead00000123ull : wire_get64(q + 24));
		wire_put32(rep + 8, 0);
		wire_put32(rep + 12, f->mode == FAKE_BAD_TAG ? 0 : 3 * PG);
		net_write_full(fd, rep, sizeof(rep));
		while (read(fd, q, sizeof(q)) > 0) /* until the client gives up on us */
			;
	}
out:
	close(fd);
	return NULL;
}

static void fake_start(struct fake *f, enum fake_mode mode, unsigned nreq)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	f->mode = mode;
	f->nreq = nreq;
	f->lfd = net_listen_tcp("127.0.0.1", 0);
	assert_true(f->lfd >= 0);
	assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&ss, &sl), 0);
	f->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake *f)
{
	pthread_join(f->th, NULL);
	close(f->lfd);
}

static void fake_case(enum fake_mode mode)
{
	struct rdma_transport *t = rdma_tcp_create(16);
	uint8_t *buf = malloc(4 * PG);
	struct rdma_completion comp[4];
	struct rdma_req r[4];
	struct rdma_conn *c;
	struct fake f;
	unsigned i, got;
	int m;

	fake_start(&f, mode, 4);
	c = rdma_connect(t, 3, "127.0.0.1", f.port, NODE_A);
	assert_non_null(c);
	for (i = 0; i < 4; i++)
		r[i] = mkreq(c, RDMA_OP_READ, 0, KEY0, (uint64_t)i * PG, buf + i * PG, PG);
	assert_int_equal(t->ops->post(t, r, 4), 4);
	for (got = 0; got < 4; got += (unsigned)m) {
		m = t->ops->poll(t, comp, 4, WAIT_MS);
		assert_true(m > 0);
		for (i = 0; i < (unsigned)m; i++)
			assert_int_equal(comp[i].status, -ECONNRESET);
	}
	assert_int_equal(t->ops->post(t, r, 1), 1);
	assert_int_equal(t->ops->poll(t, comp, 4, WAIT_MS), 1);
	assert_int_equal(comp[0].status, -ENOTCONN);
	rdma_conn_close(t, c);
	fake_stop(&f);
	rdma_destroy(t);
	free(buf);
}

static void test_fake_close(void **state)
{
	fake_case(FAKE_SILENT_CLOSE);
	(void)state;
}

static void test_fake_bad_tag(void **state)
{
	fake_case(FAKE_BAD_TAG);
	(void)state;
}

static void test_fake_bad_len(void **state)
{
	fake_case(FAKE_BAD_LEN);
	(void)state;
}

static void test_hello_refused(void **state)
{
	struct rdma_transport *t = rdma_tcp_create(4);
	struct fake f;

	fake_start(&f, FAKE_REFUSE_HELLO, 0);
	errno = 0;
	assert_null(rdma_connect(t, 3, "127.0.0.1", f.port, NODE_A));
	assert_int_equal(errno, EPERM);
	fake_stop(&f);
	/* the real server refuses node id 0 */
	assert_null(rdma_connect(t, 1, "127.0.0.1", rdma_tcp_server_port(srv), 0));
	assert_int_equal(errno, EINVAL);
	rdma_destroy(t);
	(void)state;
}

/* malformed frame: the server closes, the client sees its requests fail */
static void test_server_closes_on_garbage(void **state)
{
	int fd = net_connect_tcp("127.0.0.1", rdma_tcp_server_port(srv), WAIT_MS);
	uint8_t h[RTCP_HELLO_SIZE], r[RTCP_HELLO_REPLY_SIZE], q[RTCP_REQ_SIZE] = { 0 };

	assert_true(fd >= 0);
	wire_put32(h, RTCP_MAGIC);
	wire_put16(h + 4, RTCP_VERSION);
	wire_put16(h + 6, 0);
	wire_put32(h + 8, NODE_A);
	assert_int_equal(net_write_full(fd, h, sizeof(h)), 0);
	assert_int_equal(net_read_full(fd, r, sizeof(r)), 0);
	assert_int_equal(wire_get32(r + 8), 0);
	wire_put16(q, 9); /* unknown op */
	wire_put32(q + 4, PG);
	assert_int_equal(net_write_full(fd, q, sizeof(q)), 0);
	assert_int_equal(net_read_full(fd, r, 1), -ECONNRESET);
	close(fd);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batch1),
		cmocka_unit_test(test_batch32),
		cmocka_unit_test(test_batch256),
		cmocka_unit_test(test_large_and_async),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_revoke_and_rekey),
		cmocka_unit_test(test_inflight_bound),
		cmocka_unit_test(test_acl_race),
		cmocka_unit_test(test_server_dies),
		cmocka_unit_test(test_fake_close),
		cmocka_unit_test(test_fake_bad_tag),
		cmocka_unit_test(test_fake_bad_len),
		cmocka_unit_test(test_hello_refused),
		cmocka_unit_test(test_server_closes_on_garbage),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
