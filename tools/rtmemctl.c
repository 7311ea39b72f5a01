/* rtmemctl.c - operator's tool for rtmem-master: connects as an admin (HELLO role
 * ADMIN, node 0) and asks for status, makes a node leave, or waits for donors.
 * The export commands go straight to a borrower's control socket instead
 * (<nbd_socket>.ctl, docs/nbd.md): exports are the borrower's own state.
 *
 *   rtmemctl -c CONFIG [--json] status
 *   rtmemctl -c CONFIG [--wait] leave ID
 *   rtmemctl -c CONFIG wait-ready --donors N [--timeout S]
 *   rtmemctl -c CONFIG [--node ID] [--target SIZE] export add NAME SIZE
 *   rtmemctl -c CONFIG [--node ID] export del NAME
 *   rtmemctl -c CONFIG [--node ID] [--json] export list
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
static char ctl_peer[CONFIG_PATH_LEN + 32] = "master"; /* for messages */

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
		fprintf(stderr, "rtmemctl: %s: %s\n", ctl_peer, strerror(-rc));
		return rc;
	}
	if (rep->cmd == WIRE_ERROR) {
		fprintf(stderr, "rtmemctl: %s refused: %s\n", ctl_peer, rep->error.text);
		return -(int)(rep->error.code ? rep->error.code : EPROTO);
	}
	if (rep->cmd != want) {
		fprintf(stderr, "rtmemctl: %s answered %s, expected %s\n", ctl_peer,
			wire_cmd_name(rep->cmd), wire_cmd_name(want));
		return -EPROTO;
	}
	return 0;
}

/* ctl_hello - wrap @fd and say HELLO as an admin. NULL (with a message) on failure. */
static struct msgconn *ctl_hello(int fd)
{
	static struct wire_msg hello, ack;
	struct msgconn *c = msgconn_new(fd, ctl_peer);
	int rc;

	if (!c)
		return NULL;
	wire_hello(&hello, 0, ROLE_ADMIN);
	rc = request(c, &hello, &ack, WIRE_HELLO_ACK);
	if (rc == 0 && ack.hello_ack.status) {
		fprintf(stderr, "rtmemctl: %s rejected HELLO: %s\n", ctl_peer,
			strerror((int)ack.hello_ack.status));
		rc = -EPROTO;
	}
	if (rc < 0) {
		msgconn_free(c);
		return NULL;
	}
	return c;
}

/* Connect to the master and say HELLO as an admin. NULL (with a message unless
 * @quiet) on failure. */
static struct msgconn *ctl_connect(bool quiet)
{
	int fd = net_connect_tcp(ctl_cfg->master_host, ctl_cfg->master_port, 3000);

	if (fd < 0) {
		if (!quiet)
			fprintf(stderr, "rtmemctl: cannot reach master at %s:%u: %s\n",
				ctl_cfg->master_host, ctl_cfg->master_port, strerror(-fd));
		return NULL;
	}
	snprintf(ctl_peer, sizeof(ctl_peer), "master %s:%u", ctl_cfg->master_host,
		 ctl_cfg->master_port);
	return ctl_hello(fd);
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

/* ------------------------------------------------------------ exports */

/* export_connect - the control socket of borrower @node (0: the only borrower in
 * the config), HELLO done. NULL with a message on failure. */
static struct msgconn *export_connect(uint32_t node)
{
	const struct config_node *b = NULL;
	int fd;

	for (unsigned i = 0; i < ctl_cfg->n_nodes; i++) {
		const struct config_node *n = &ctl_cfg->nodes[i];

		if (n->role != ROLE_BORROWER || (node && n->id != node))
			continue;
		if (b) {
			fprintf(stderr, "rtmemctl: several borrowers in %s: say which with "
					"--node ID\n", ctl_cfg->path);
			return NULL;
		}
		b = n;
	}
	if (!b) {
		if (node)
			fprintf(stderr, "rtmemctl: node %u is not a borrower in %s\n", node,
				ctl_cfg->path);
		else
			fprintf(stderr, "rtmemctl: no borrower in %s\n", ctl_cfg->path);
		return NULL;
	}
	snprintf(ctl_peer, sizeof(ctl_peer), "borrower %u (%s.ctl)", b->id, b->nbd_socket);
	fd = -ENAMETOOLONG;
	if (strlen(b->nbd_socket) + 4 < CONFIG_PATH_LEN) {
		char path[CONFIG_PATH_LEN + 8];

		snprintf(path, sizeof(path), "%s.ctl", b->nbd_socket);
		fd = net_connect_unix(path);
	}
	if (fd < 0) {
		fprintf(stderr, "rtmemctl: cannot reach %s: %s (is it running?)\n", ctl_peer,
			strerror(-fd));
		return NULL;
	}
	return ctl_hello(fd);
}

static void print_exports(const struct wire_msg *r, bool json)
{
	if (json) {
		printf("{\"exports\": [");
		for (uint32_t i = 0; i < r->export_reply.n_exports; i++) {
			const struct wire_export_info *e = &r->export_reply.exports[i];

			printf("%s{\"name\": ", i ? ", " : "");
			json_str(e->name);
			printf(", ");
			json_u64("size", e->size, ", ");
			json_u64("target", e->target, ", ");
			json_u64("remote_blocks", e->remote_blocks, ", ");
			json_u64("file_blocks", e->file_blocks, ", ");
			json_u64("conns", e->conns, ", ");
			printf("\"origin\": \"%s\"}", e->runtime ? "runtime" : "config");
		}
		printf("]}\n");
		return;
	}
	printf("%-20s %14s %10s %10s %10s %5s %s\n", "name", "size", "target", "remote",
	       "file", "conns", "origin");
	for (uint32_t i = 0; i < r->export_reply.n_exports; i++) {
		const struct wire_export_info *e = &r->export_reply.exports[i];

		printf("%-20s %14" PRIu64 " %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %5u %s\n",
		       e->name, e->size, e->target, e->remote_blocks, e->file_blocks, e->conns,
		       e->runtime ? "runtime" : "config");
	}
}

/* cmd_export - add (@size > 0), del or list exports of borrower @node. */
static int cmd_export(uint32_t node, const char *sub, const char *name, uint64_t size,
		      uint64_t target, bool json)
{
	static struct wire_msg req, rep;
	struct msgconn *c;
	int rc;

	memset(&req, 0, sizeof(req));
	if (name && strlen(name) >= CONFIG_NAME_LEN) {
		fprintf(stderr, "rtmemctl: export name '%s' is longer than %d characters\n",
			name, CONFIG_NAME_LEN - 1);
		return 1;
	}
	if (name)
		snprintf(req.export_req.name, sizeof(req.export_req.name), "%s", name);
	req.export_req.size = size;
	req.export_req.target = target;
	req.cmd = !strcmp(sub, "add") ? WIRE_EXPORT_ADD
		  : !strcmp(sub, "del")	? WIRE_EXPORT_DEL
					: WIRE_EXPORT_LIST;
	c = export_connect(node);
	if (!c)
		return 1;
	rc = request(c, &req, &rep, WIRE_EXPORT_REPLY);
	msgconn_free(c);
	if (rc < 0)
		return 1;
	if (req.cmd == WIRE_EXPORT_LIST)
		print_exports(&rep, json);
	else
		printf("export %s %s\n", name, req.cmd == WIRE_EXPORT_ADD ? "added" : "deleted");
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: rtmemctl -c CONFIG [--json] status\n"
		   "       rtmemctl -c CONFIG [--wait] leave ID\n"
		   "       rtmemctl -c CONFIG wait-ready --donors N [--timeout S]\n"
		   "       rtmemctl -c CONFIG [--node ID] [--target SIZE] export add NAME SIZE\n"
		   "       rtmemctl -c CONFIG [--node ID] export del NAME\n"
		   "       rtmemctl -c CONFIG [--node ID] [--json] export list\n");
}

/* parse_size - "64M", "1G", "4096" (config_parse_size) with a clear error. */
static int parse_size(const char *what, const char *s, uint64_t *out)
{
	if (config_parse_size(s, out) < 0) {
		fprintf(stderr, "rtmemctl: bad %s '%s' (a number of bytes, or with k/M/G/T)\n",
			what, s);
		return -EINVAL;
	}
	return 0;
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
		{ "node", required_argument, NULL, 'n' },
		{ "target", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct config cfg;
	unsigned long donors = 1, timeout = 60, id, node = 0;
	uint64_t size, target = 0;
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
		case 'n':
			if (parse_uint(optarg, UINT32_MAX - 1, &node) < 0)
				return 1;
			break;
		case 'T':
			if (parse_size("target", optarg, &target) < 0)
				return 1;
			target /= RTM_PAGE_SIZE; /* pages */
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
	if (!strcmp(cmd, "export") && optind < argc) {
		const char *sub = argv[optind++];
		int left = argc - optind;

		if (!strcmp(sub, "add") && left == 2) {
			if (parse_size("export size", argv[optind + 1], &size) < 0)
				return 1;
			if (!size) {
				fprintf(stderr, "rtmemctl: export size must not be 0\n");
				return 1;
			}
			return cmd_export((uint32_t)node, sub, argv[optind], size, target, json);
		}
		if (!strcmp(sub, "del") && left == 1)
			return cmd_export((uint32_t)node, sub, argv[optind], 0, 0, json);
		if (!strcmp(sub, "list") && left == 0)
			return cmd_export((uint32_t)node, sub, NULL, 0, 0, json);
	}
	usage(stderr);
	return 1;
}
