/* test_config.c - the INI configuration: a full file parses into the expected
 * struct config, defaults apply, and each kind of mistake is refused with a
 * one-line message that names the file, the line (where there is one) and the
 * problem.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"

static char path[64];
static struct config cfg;
static char err[256];

/* load - write @text to a temp file and config_load it. */
static int load(const char *text)
{
	int fd, rc;

	strcpy(path, "/tmp/rtmem-test-config-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	rc = config_load(path, &cfg, err, sizeof(err));
	unlink(path);
	return rc;
}

static const char good[] =
	"; a small cluster\n"
	"[cluster]\n"
	"master = 10.0.0.1:7000\n"
	"slab_size = 16M\n"
	"stats_interval_ms = 500\n"
	"run_dir = /tmp/rtmem-run\n"
	"transport = verbs\n"
	"\n"
	"[policy]\n"
	"first = smart-alloc\n"
	"second = tlp\n"
	"p_percent = 2.5\n"
	"threshold = 512\n"
	"reserve = 1024\n"
	"grant_pages = 4096\n"
	"\n"
	"[node.1]\n"
	"role = donor\n"
	"address = 10.0.0.2:7100\n"
	"rack = r1\n"
	"pool_size = 1G\n"
	"numa_node = 1\n"
	"\n"
	"[node.2]\n"
	"role = borrower\n"
	"hostname = 10.0.0.2\n"
	"rack = r1\n"
	"mem_limit = 2G\n"
	"\n"
	"[node.300]\n"
	"role = borrower\n"
	"address = host-c.example:7200\n"
	"rack = r2\n"
	"socket = /tmp/b300.sock\n"
	"\n"
	"[node.4]\n"
	"role = donor\n"
	"address = [::1]:7300\n"
	"pool_size = 48MiB\n"
	"\n"
	"[client.vm1]\n"
	"target = 1000\n"
	"[client.db]\n"
	"target = 64M\n";

static void test_good(void **state)
{
	const struct config_node *n1, *n2, *n3, *n4;

	assert_int_equal(load(good), 0);
	assert_string_equal(err, "");
	assert_string_equal(cfg.master_host, "10.0.0.1");
	assert_int_equal(cfg.master_port, 7000);
	assert_true(cfg.slab_size == 16u << 20);
	assert_int_equal(cfg.stats_interval_ms, 500);
	assert_string_equal(cfg.run_dir, "/tmp/rtmem-run");
	assert_int_equal(cfg.transport, CONFIG_TRANSPORT_VERBS);
	assert_string_equal(cfg.policy.first, "smart-alloc");
	assert_string_equal(cfg.policy.second, "tlp");
	assert_true(cfg.policy.p_percent == 2.5);
	assert_int_equal(cfg.policy.threshold, 512);
	assert_int_equal(cfg.policy.reserve, 1024);
	assert_int_equal(cfg.policy.grant_pages, 4096);
	assert_int_equal(cfg.n_nodes, 4);

	n1 = config_node(&cfg, 1);
	assert_non_null(n1);
	assert_int_equal(n1->role, ROLE_DONOR);
	assert_string_equal(n1->host, "10.0.0.2");
	assert_int_equal(n1->port, 7100);
	assert_string_equal(n1->hostname, "10.0.0.2"); /* default: address host */
	assert_true(n1->pool_size == 1u << 30);
	assert_int_equal(n1->numa_node, 1);

	n2 = config_node(&cfg, 2);
	assert_int_equal(n2->role, ROLE_BORROWER);
	assert_string_equal(n2->socket_path, "/tmp/rtmem-run/borrower-2.sock");
	assert_true(n2->mem_limit == 2ull << 30);

	n3 = config_node(&cfg, 300);
	assert_string_equal(n3->socket_path, "/tmp/b300.sock");
	assert_string_equal(n3->hostname, "host-c.example");

	n4 = config_node(&cfg, 4);
	assert_string_equal(n4->host, "::1");
	assert_int_equal(n4->numa_node, -1);
	assert_true(n4->pool_size == 48u << 20);
	assert_null(config_node(&cfg, 5));

	assert_int_equal(config_distance(n1, n2), 0); /* same host */
	assert_int_equal(config_distance(n2, n1), 0);
	assert_int_equal(config_distance(n1, n3), 2);
	assert_int_equal(config_distance(n3, n4), 2);
	assert_int_equal(config_distance(n4, n4), 0);

	assert_int_equal(cfg.n_clients, 2);
	assert_int_equal(config_client(&cfg, "vm1")->target_pages, 1000);
	assert_int_equal(config_client(&cfg, "db")->target_pages, 16384);
	assert_null(config_client(&cfg, "vm2"));
	assert_string_equal(config_role_name(ROLE_BORROWER), "borrower");
}

static void test_defaults_and_rack(void **state)
{
	assert_int_equal(load("[cluster]\nmaster=m.example:1\n"
			      "[node.7]\nrole=donor\naddress=a:2\nrack=r\npool_size=128M\n"
			      "[node.8]\nrole=borrower\nrack=r\n"),
			 0);
	assert_true(cfg.slab_size == 64u << 20);
	assert_int_equal(cfg.stats_interval_ms, 1000);
	assert_string_equal(cfg.run_dir, "/run/rtmem");
	assert_int_equal(cfg.transport, CONFIG_TRANSPORT_TCP);
	assert_string_equal(cfg.policy.first, "greedy");
	assert_string_equal(cfg.policy.second, "greedy-remote");
	assert_true(cfg.policy.p_percent == 2);
	assert_int_equal(cfg.policy.threshold, 256);
	assert_int_equal(cfg.policy.reserve, 0);
	assert_int_equal(cfg.policy.grant_pages, 1000);
	assert_string_equal(config_node(&cfg, 8)->socket_path, "/run/rtmem/borrower-8.sock");
	/* a borrower without address gets a unique hostname: same rack, not same host */
	assert_int_equal(config_distance(config_node(&cfg, 7), config_node(&cfg, 8)), 1);
}

struct bad_case {
	const char *text;
	const char *want;   /* substring of the message */
};

#define CL "[cluster]\nmaster = 127.0.0.1:7000\n"
#define DONOR(id) "[node." #id "]\nrole = donor\naddress = 10.0.0.9:7100\npool_size = 128M\n"

static const struct bad_case bad_cases[] = {
	{ DONOR(3), ": missing section [cluster]" },
	{ "[cluster]\nslab_size = 64M\n", ": cluster: missing master" },
	{ CL "[node.3]\nrole = donor\naddress = h:1\n", ": node.3: missing pool_size" },
	{ CL "[node.3]\nrole = donor\npool_size = 64M\n", ": node.3: missing address" },
	{ CL "[node.3]\naddress = h:1\n", ": node.3: missing role" },
	{ CL "[node.3]\n", ": node.3: missing role" },
	{ CL "[client.x]\n", ": client.x: missing target" },
	{ "[cluster]\nmaster = 10.0.0.1\n", ":2: bad address '10.0.0.1'" },
	{ "[cluster]\nmaster = 10.0.0.1:70000\n", ":2: bad address" },
	{ "[cluster]\nmaster = :7000\n", ":2: bad address" },
	{ "[cluster]\nmaster = a b:7000\n", ":2: bad address" },
	{ CL DONOR(3) DONOR(3), ":7: duplicate node id 3" },
	{ CL DONOR(3) DONOR(03), ":7: duplicate node id 3" },
	{ CL "[node.0]\n", ":3: bad node id '0'" },
	{ CL "[node.x1]\n", ":3: bad node id 'x1'" },
	{ CL "[node.4294967295]\n", ":3: bad node id" },
	{ CL "[node.-1]\n", ":3: bad node id" },
	{ CL "[cluster]\n", ":3: duplicate section [cluster]" },
	{ CL "slab_size = 3M\n", ":3: slab_size 3M must be a power of two" },
	{ CL "slab_size = 512K\n", ":3: slab_size 512K must be a power of two >= 1M" },
	{ CL "slab_size = 64Q\n", ":3: bad size '64Q' for slab_size" },
	{ CL "slab_size = -64M\n", ":3: bad size" },
	{ CL "slab_size = 99999999999999999999\n", ":3: bad size" },
	{ CL "colour = blue\n", ":3: unknown key 'colour' in [cluster]" },
	{ CL "transport = rdma\n", ":3: unknown transport 'rdma' (want tcp, verbs or auto)" },
	{ CL "transport = TCP\n", ":3: unknown transport 'TCP'" },
	{ CL "transport =\n", ":3: unknown transport ''" },
	{ CL DONOR(3) "colour = blue\n", ":7: unknown key 'colour' in [node.3]" },
	{ CL "[nodes.1]\n", ":3: unknown section [nodes.1]" },
	{ "master = h:1\n", ":1: key 'master' outside of a section" },
	{ CL "[node.3]\nrole = lender\n", ":4: unknown role 'lender'" },
	{ CL "[policy]\nfirst = best\n", ":4: unknown first-level policy 'best'" },
	{ CL "[policy]\nsecond = greedy\n", ":4: unknown second-level policy 'greedy'" },
	{ CL "[policy]\np_percent = 0\n", ":4: p_percent" },
	{ CL "[policy]\nthreshold = 1x\n", ":4: bad number '1x' for threshold" },
	{ CL "[node.3]\nrole = donor\naddress = h:1\npool_size = 100M\n",
	  ": node.3: pool_size 104857600 is not a multiple of slab_size 67108864" },
	{ CL "[node.3]\nrole = borrower\npool_size = 64M\n", ": node.3: pool_size and numa" },
	{ CL "[node.3]\nrole = donor\naddress = h:1\npool_size = 64M\nsocket = /s\n",
	  ": node.3: socket and mem_limit are for borrowers" },
	{ CL "[node.3]\nnuma_node = -2\n", ":4: bad numa_node '-2'" },
	{ CL "[client.x]\ntarget = 10k1\n", ":4: bad number '10k1' for target" },
	{ CL "[client.x]\ntarget = 10q\n", ":4: bad size '10q' for target" },
	{ CL "[client.x]\ntarget = 5k\n", ":4: target 5k is not a multiple" },
	{ CL "[client.x]\ntarget = 1000\n[client.x]\n", ":5: duplicate client 'x'" },
	{ CL "[client.0123456789012345678901234567890123]\n", ":3: client name" },
	{ CL "this is not ini\n", ":3: syntax error" },
	{ CL "[node.3\n", ":3: syntax error" },
};

static void test_errors(void **state)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		int rc = load(bad_cases[i].text);

		if (rc != -EINVAL || !strstr(err, bad_cases[i].want) ||
		    strncmp(err, path, strlen(path)) || strchr(err, '\n'))
			fail_msg("case %zu: rc %d, message \"%s\", want \"%s\"", i, rc, err,
				 bad_cases[i].want);
	}
}

static void test_too_many_nodes(void **state)
{
	size_t cap = 64 * 100 + 64;
	char *text = malloc(cap);
	size_t off = (size_t)snprintf(text, cap, "%s", CL);

	for (int id = 1; id <= CONFIG_MAX_NODES + 1; id++)
		off += (size_t)snprintf(text + off, cap - off, "[node.%d]\nrole = borrower\n", id);
	assert_int_equal(load(text), -EINVAL);
	assert_non_null(strstr(err, ":131: too many nodes"));
	free(text);
}

static void test_missing_file(void **state)
{
	assert_int_equal(config_load("/nonexistent/rtmem.ini", &cfg, err, sizeof(err)),
			 -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/rtmem.ini: cannot open"));
}

static void test_parse_size_addr(void **state)
{
	static const struct {
		const char *s;
		uint64_t v;
	} sizes[] = { { "4096", 4096 }, { "2k", 2048 }, { "64M", 64ull << 20 },
		      { "1G", 1ull << 30 }, { "3T", 3ull << 40 }, { "8MB", 8ull << 20 },
		      { "8mib", 8ull << 20 }, { "0", 0 } };
	static const char *const bad_sizes[] = { "", "M", "1.5G", "12 M", "1P", "+1",
						 "-1", "1Mx", "17179869184G" };
	uint64_t v;
	char host[CONFIG_HOST_LEN];
	uint16_t port;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		assert_int_equal(config_parse_size(sizes[i].s, &v), 0);
		assert_true(v == sizes[i].v);
	}
	for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++)
		assert_true(config_parse_size(bad_sizes[i], &v) < 0);

	assert_int_equal(config_parse_addr("node-1.lan:65535", host, sizeof(host), &port), 0);
	assert_string_equal(host, "node-1.lan");
	assert_int_equal(port, 65535);
	assert_int_equal(config_parse_addr("[fe80::1]:80", host, sizeof(host), &port), 0);
	assert_string_equal(host, "fe80::1");
	assert_int_equal(config_parse_addr("::1:80", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(config_parse_addr("h:0", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(config_parse_addr("h:", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(config_parse_addr("h:8x", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(config_parse_addr("[]:8", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(config_parse_addr("longhost:8", host, 8, &port), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_defaults_and_rack),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_too_many_nodes),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_parse_size_addr),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
