/* rtmemctl.c - operator's tool for rtmem-master: connects as an admin (HELLO role
 * ADMIN, node 0) and asks for status, makes a node leave, or waits for donors.
 *
 *   rtmemctl -c CONFIG [--json] status
 *   rtmemctl -c CONFIG [--wait] leave ID
 *   rtmemctl -c CONFIG wait-ready --donors N [--timeout S]
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/common.h"

#define LOG_AREA "rtmemctl"
#define CTL_IO_TIMEOUT_MS 5000
#define CTL_POLL_MS 500

static const struct config *ctl_cfg;

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Exchange one request for one reply; a WIRE_ERROR from the master is reported. */
static int request(struct msgconn *c, const struct wire_msg *req, struct wire_msg *rep,
		   enum wire_cmd want)
{
	int rc = msgconn_send(c, req);

	if (rc == 0)
		rc = msgconn_recv(c, rep, CTL_IO_TIMEOUT_MS);
	if (rc < 0) {
		fprintf(stderr, "rtmemctl: master %s:%u: %s\n", ctl_cfg->master_host,
			ctl_cfg->master_port, strerror(-rc));
		return rc;
	}
	if (rep->cmd == WIRE_ERROR) {
		fprintf(stderr, "rtmemctl: master refused: %s\n", rep->error.text);
		return -(int)(rep->error.code ? rep->error.code : EPROTO);
	}
	if (rep->cmd != want) {
		fprintf(stderr, "rtmemctl: master answered %s, expected %s\n",
			wire_cmd_name(rep->cmd), wire_cmd_name(want));
		return -EPROTO;
	}
	return 0;
}

/* Connect and say HELLO as an admin. NULL (with a message unless @quiet) on failure. */
static struct msgconn *ctl_connect(bool quiet)
{
	static struct wire_msg hello, ack;
	struct msgconn *c;
	int fd, rc;

	fd = net_connect_tcp(ctl_cfg->master_host, ctl_cfg->master_port, 3000);
	if (fd < 0) {
		if (!quiet)
			fprintf(stderr, "rtmemctl: cannot reach master at %s:%u: %s\n",
				ctl_cfg->master_host, ctl_cfg->master_port, strerror(-fd));
		return NULL;
	}
	c = msgconn_new(fd, "master");
	if (!c)
		return NULL;
	wire_hello(&hello, 0, ROLE_ADMIN);
	rc = request(c, &hello, &ack, WIRE_HELLO_ACK);
	if (rc == 0 && ack.hello_ack.status) {
		fprintf(stderr, "rtmemctl: master rejected HELLO: %s\n",
			strerror((int)ack.hello_ack.status));
		rc = -EPROTO;
	}
	if (rc < 0) {
		msgconn_free(c);
		return NULL;
	}
	return c;
}

static int get_status(struct msgconn *c, struct wire_msg *rep)
{
	struct wire_msg req = { .cmd = WIRE_STATUS_REQ };

	return request(c, &req, rep, WIRE_STATUS_REPLY);
}

/* ------------------------------------------------------------ output */

static void print_u64(uint64_t v)
{
	if (v == UINT64_MAX)
		printf(" %10s", "-");
	else
		printf(" %10" PRIu64, v);
}

static void print_table(const struct wire_msg *s)
{
	printf("%-6s %-9s %-9s %-4s %10s %10s %6s %6s %10s %5s\n", "id", "role", "state",
	       "conn", "pages", "free", "owned", "slabs", "limit", "lost");
	for (uint32_t i = 0; i < s->status.n_nodes; i++) {
		const struct wire_node_status *n = &s->status.nodes[i];

		printf("%-6u %-9s %-9s %-4s %10" PRIu64 " %10" PRIu64 " %6u %6u", n->id,
		       config_role_name((enum node_role)n->role), wire_state_name(n->state),
		       n->connected ? "yes" : "no", n->total_pages, n->free_pages,
		       n->slabs_owned, n->slabs_free);
		print_u64(n->mem_limit);
		printf(" %5u\n", n->lost_slabs);
	}
	if (!s->status.n_clients)
		return;
	printf("\n%-6s %-6s %-20s %10s %10s %10s %10s %10s\n", "node", "client", "name",
	       "used", "target", "puts", "failed", "gets");
	for (uint32_t i = 0; i < s->status.n_clients; i++) {
		const struct wire_client_stats *c = &s->status.clients[i];

		printf("%-6u %-6u %-20s %10" PRIu64, c->node, c->client, c->name, c->used);
		print_u64(c->target);
		printf(" %10" PRIu64 " %10" PRIu64 " %10" PRIu64 "\n", c->puts_total,
		       c->puts_total - c->puts_succ, c->gets_total);
	}
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

/* UINT64_MAX ("none") becomes null */
static void json_u64(const char *key, uint64_t v, const char *sep)
{
	if (v == UINT64_MAX)
		printf("\"%s\": null%s", key, sep);
	else
		printf("\"%s\": %" PRIu64 "%s", key, v, sep);
}

static void print_json(const struct wire_msg *s)
{
	printf("{\n  \"nodes\": [");
	for (uint32_t i = 0; i < s->status.n_nodes; i++) {
		const struct wire_node_status *n = &s->status.nodes[i];

		printf("%s\n    {\"id\": %u, \"role\": \"%s\", \"state\": \"%s\", "
		       "\"connected\": %s, ",
		       i ? "," : "", n->id, config_role_name((enum node_role)n->role),
		       wire_state_name(n->state), n->connected ? "true" : "false");
		json_u64("total_pages", n->total_pages, ", ");
		json_u64("free_pages", n->free_pages, ", ");
		printf("\"slabs_owned\": %u, \"slabs_free\": %u, ", n->slabs_owned,
		       n->slabs_free);
		json_u64("mem_limit", n->mem_limit, ", ");
		printf("\"lost_slabs\": %u}", n->lost_slabs);
	}
	printf("%s],\n  \"clients\": [", s->status.n_nodes ? "\n  " : "");
	for (uint32_t i = 0; i < s->status.n_clients; i++) {
		const struct wire_client_stats *c = &s->status.clients[i];

		printf("%s\n    {\"node\": %u, \"client\": %u, \"name\": ", i ? "," : "",
		       c->node, c->client);
		json_str(c->name);
		printf(", ");
		json_u64("used", c->used, ", ");
		json_u64("target", c->target, ", ");
		json_u64("puts", c->puts_total, ", ");
		json_u64("failed_puts", c->puts_total - c->puts_succ, ", ");
		json_u64("gets", c->gets_total, ", ");
		json_u64("gets_succ", c->gets_succ, ", ");
		json_u64("flushes", c->flushes, "}");
	}
	printf("%s]\n}\n", s->status.n_clients ? "\n  " : "");
}

/* ------------------------------------------------------------ commands */

static const struct wire_node_status *find_node(const struct wire_msg *s, uint32_t id)
{
	for (uint32_t i = 0; i < s->status.n_nodes; i++)
		if (s->status.nodes[i].id == id)
			return &s->status.nodes[i];
	return NULL;
}

static int cmd_status(bool json)
{
	static struct wire_msg rep;
	struct msgconn *c = ctl_connect(false);
	int rc;

	if (!c)
		return 1;
	rc = get_status(c, &rep);
	msgconn_free(c);
	if (rc < 0)
		return 1;
	if (json)
		print_json(&rep);
	else
		print_table(&rep);
	return 0;
}

static int cmd_leave(uint32_t id, bool wait)
{
	static struct wire_msg rep;
	struct wire_msg req = { .cmd = WIRE_LEAVE_REQ };
	const struct wire_node_status *n;
	uint64_t deadline = evloop_now_ms() + 60000;
	struct msgconn *c = ctl_connect(false);
	int rc;

	if (!c)
		return 1;
	req.leave_req.node_id = id;
	/* LEAVE_REQ has no reply; the STATUS that follows shows it was taken (or the
	 * master's ERROR says why not) */
	rc = msgconn_send(c, &req);
	if (rc < 0) {
		fprintf(stderr, "rtmemctl: master: %s\n", strerror(-rc));
		goto out;
	}
	for (;;) {
		rc = get_status(c, &rep);
		if (rc < 0)
			goto out;
		n = find_node(&rep, id);
		if (!n) {
			fprintf(stderr, "rtmemctl: node %u is not configured\n", id);
			rc = -ENOENT;
			goto out;
		}
		if (!wait || n->state == NODE_INACTIVE)
			break;
		if (evloop_now_ms() > deadline) {
			fprintf(stderr, "rtmemctl: node %u still %s after 60 s\n", id,
				wire_state_name(n->state));
			rc = -ETIMEDOUT;
			goto out;
		}
		sleep_ms(CTL_POLL_MS);
	}
	printf("node %u: %s\n", id, wire_state_name(n->state));
out:
	msgconn_free(c);
	return rc < 0;
}

static int cmd_wait_ready(unsigned want, unsigned timeout_s)
{
	static struct wire_msg rep;
	uint64_t deadline = evloop_now_ms() + (uint64_t)timeout_s * 1000;
	struct msgconn *c = NULL;
	unsigned ready = 0;

	for (;;) {
		if (!c)
			c = ctl_connect(true); /* the master may be starting */
		if (c) {
			if (get_status(c, &rep) < 0) {
				msgconn_free(c);
				return 1;
			}
			ready = 0;
			for (uint32_t i = 0; i < rep.status.n_nodes; i++) {
				const struct wire_node_status *n = &rep.status.nodes[i];

				ready += n->role == ROLE_DONOR && n->state == NODE_ACTIVE &&
					 n->connected;
			}
			if (ready >= want) {
				printf("%u donors active\n", ready);
				msgconn_free(c);
				return 0;
			}
		}
		if (evloop_now_ms() >= deadline)
			break;
		sleep_ms(CTL_POLL_MS);
	}
	if (c)
		fprintf(stderr, "rtmemctl: only %u of %u donors active after %u s\n", ready,
			want, timeout_s);
	else
		fprintf(stderr, "rtmemctl: master at %s:%u not reachable within %u s\n",
			ctl_cfg->master_host, ctl_cfg->master_port, timeout_s);
	msgconn_free(c);
	return 1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: rtmemctl -c CONFIG [--json] status\n"
		   "       rtmemctl -c CONFIG [--wait] leave ID\n"
		   "       rtmemctl -c CONFIG wait-ready --donors N [--timeout S]\n");
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || *out > max) {
		fprintf(stderr, "rtmemctl: bad number '%s'\n", s);
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "wait", no_argument, NULL, 'w' },
		{ "donors", required_argument, NULL, 'd' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct config cfg;
	unsigned long donors = 1, timeout = 60, id;
	const char *path = NULL, *cmd;
	bool json = false, wait = false;
	char err[256];
	int opt;

	while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'w':
			wait = true;
			break;
		case 'd':
			if (parse_uint(optarg, CONFIG_MAX_NODES, &donors) < 0)
				return 1;
			break;
		case 't':
			if (parse_uint(optarg, 86400, &timeout) < 0)
				return 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (!path || optind >= argc) {
		usage(stderr);
		return 1;
	}
	log_init("rtmemctl", LOG_WARN);
	if (config_load(path, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "rtmemctl: %s\n", err);
		return 1;
	}
	ctl_cfg = &cfg;
	cmd = argv[optind++];
	if (!strcmp(cmd, "status") && optind == argc)
		return cmd_status(json);
	if (!strcmp(cmd, "leave") && optind + 1 == argc) {
		if (parse_uint(argv[optind], UINT32_MAX - 1, &id) < 0 || !id)
			return 1;
		return cmd_leave((uint32_t)id, wait);
	}
	if (!strcmp(cmd, "wait-ready") && optind == argc)
		return cmd_wait_ready((unsigned)donors, (unsigned)timeout);
	usage(stderr);
	return 1;
}
