/* test_verbs_select.c - back-end selection by [cluster] transport: tcp gives the TCP
 * back end, verbs without a usable device fails with ENODEV (never silently TCP),
 * auto falls back to TCP; the donor-side server likewise. Where an RDMA device is
 * present the verbs cases are skipped (they are covered in the guest).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/common.h"
#include "rdma/rdma.h"

static bool have_device(void)
{
	char why[160];

	return rdma_verbs_probe(NULL, why, sizeof(why)) == 0;
}

static void test_transport_select(void **state)
{
	struct rdma_transport *t = rdma_transport_create(CONFIG_TRANSPORT_TCP, 16);

	assert_non_null(t);
	assert_string_equal(t->ops->name, "tcp");
	rdma_destroy(t);
	if (have_device())
		skip();
	errno = 0;
	assert_null(rdma_transport_create(CONFIG_TRANSPORT_VERBS, 16));
	assert_int_equal(errno, ENODEV);
	t = rdma_transport_create(CONFIG_TRANSPORT_AUTO, 16);
	assert_non_null(t);
	assert_string_equal(t->ops->name, "tcp");
	rdma_destroy(t);
}

static void test_server_select(void **state)
{
	size_t len = 4u << 20;
	void *pool = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct rdma_server *s;
	uint64_t k1 = 0, k2 = 0;

	assert_true(pool != MAP_FAILED);
	s = rdma_server_create(CONFIG_TRANSPORT_TCP, "127.0.0.1", 0, pool, len, 1u << 20);
	assert_non_null(s);
	assert_string_equal(rdma_server_name(s), "tcp");
	assert_int_equal(rdma_server_grant(s, 1, 7, &k1), 0);
	assert_true(k1 != 0);
	assert_int_equal(rdma_server_revoke(s, 1), 0);
	assert_int_equal(rdma_server_grant(s, 1, 7, &k2), 0);
	assert_true(k2 != 0 && k2 != k1);
	rdma_server_destroy(s);
	if (!have_device()) {
		errno = 0;
		assert_null(rdma_server_create(CONFIG_TRANSPORT_VERBS, "127.0.0.1", 0, pool, len,
					       1u << 20));
		assert_int_equal(errno, ENODEV);
		s = rdma_server_create(CONFIG_TRANSPORT_AUTO, "127.0.0.1", 0, pool, len, 1u << 20);
		assert_non_null(s);
		assert_string_equal(rdma_server_name(s), "tcp");
		rdma_server_destroy(s);
	}
	munmap(pool, len);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transport_select),
		cmocka_unit_test(test_server_select),
	};

	log_init("test_verbs_select", LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
