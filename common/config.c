/* config.c - the cluster configuration: an INI file parsed with libinih into
 * struct config, then validated. Errors are one line, "path:line: what is wrong"
 * (or "path: node.N: what is wrong" for checks made after parsing).
 *
 *	[cluster]  master = host:port, slab_size, stats_interval_ms, run_dir, transport
 *	[policy]   first, second, p_percent, threshold, reserve, grant_pages
 *	[node.N]   role, address, hostname, rack, pool_size, numa_node, socket, mem_limit
 *	[client.NAME] target = pages, or a size with a suffix (64M)
 *	[export.NAME] size (NBD export, docs/nbd.md), target (as for clients), node
 *	(borrower nodes also take nbd_listen = host:port and nbd_socket = path)
 *
 * The file is fed to inih through our own line reader, which counts lines (inih's
 * handler gets none) and sees section headers, so empty and duplicate sections
 * are caught too.
 */
#define LOG_AREA "config"
#include "common/common.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MiB (1024ull * 1024ull)

enum section { SEC_NONE, SEC_BAD, SEC_CLUSTER, SEC_POLICY, SEC_NODE, SEC_CLIENT, SEC_EXPORT };

/* Keys seen in a [node.N] section, for the checks made after parsing. */
enum {
	HAVE_ROLE = 1 << 0,
	HAVE_ADDRESS = 1 << 1,
	HAVE_POOL = 1 << 2,
	HAVE_NUMA = 1 << 3,
	HAVE_SOCKET = 1 << 4,
	HAVE_MEMLIMIT = 1 << 5,
	HAVE_HOSTNAME = 1 << 6,
	HAVE_NBD = 1 << 7,
	HAVE_NBD_SOCKET = 1 << 8,
};

struct parse {
	struct config *cfg;
	const char *path;
	FILE *f;
	int lineno;
	int err_line;        /* line of the first error, 0 = none yet */
	char *err;
	size_t errlen;
	enum section sec;
	char sec_name[64];
	unsigned idx;        /* node or client index of the current section */
	bool seen_cluster, seen_policy;
	unsigned have[CONFIG_MAX_NODES];
	bool have_target[CONFIG_MAX_CLIENTS];
	bool have_size[CONFIG_MAX_EXPORTS];
};

/* fail - record the first error, at the current line (@line > 0) or without one. */
static int fail(struct parse *p, bool at_line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct parse *p, bool at_line, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (p->err_line)
		return 0;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	p->err_line = at_line ? p->lineno : -1;
	if (p->err && p->errlen) {
		if (at_line)
			snprintf(p->err, p->errlen, "%s:%d: %s", p->path, p->lineno, msg);
		else
			snprintf(p->err, p->errlen, "%s: %s", p->path, msg);
	}
	return 0; /* inih: handler failed */
}

/* parse_u64 - plain decimal, no sign, no spaces. */
static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	*out = strtoull(s, &end, 10);
	if (errno)
		return -ERANGE;
	return *end ? -EINVAL : 0;
}

int config_parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "kmgt";
	uint64_t v, mul = 1;
	char num[32];
	size_t n = 0;
	int rc;

	while (isdigit((unsigned char)s[n]))
		n++;
	if (!n || n >= sizeof(num))
		return -EINVAL;
	memcpy(num, s, n);
	num[n] = '\0';
	rc = parse_u64(num, &v);
	if (rc)
		return rc;
	if (s[n]) {
		const char *u = strchr(units, tolower((unsigned char)s[n]));
		const char *rest = s + n + 1;

		if (!u || !*u)
			return -EINVAL;
		/* accept 64M, 64MB, 64MiB */
		if (*rest && strcasecmp(rest, "b") && strcasecmp(rest, "ib"))
			return -EINVAL;
		mul = 1ull << (10 * (u - units + 1));
	}
	if (v > UINT64_MAX / mul)
		return -ERANGE;
	*out = v * mul;
	return 0;
}

static bool host_char_ok(char ch, bool bracketed)
{
	return isalnum((unsigned char)ch) || ch == '-' || ch == '.' || ch == '_' ||
	       (bracketed && ch == ':');
}

int config_parse_addr(const char *s, char *host, size_t hostlen, uint16_t *port)
{
	const char *colon = strrchr(s, ':'), *h = s;
	size_t n;
	uint64_t p;
	bool bracketed = s[0] == '[';

	if (!colon || parse_u64(colon + 1, &p) || p == 0 || p > 65535)
		return -EINVAL;
	n = (size_t)(colon - s);
	if (bracketed) { /* [v6addr]:port */
		if (n < 3 || s[n - 1] != ']')
			return -EINVAL;
		h = s + 1;
		n -= 2;
	}
	if (!n || n >= hostlen)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!host_char_ok(h[i], bracketed))
			return -EINVAL;
	memcpy(host, h, n);
	host[n] = '\0';
	*port = (uint16_t)p;
	return 0;
}

const char *config_role_name(enum node_role role)
{
	static const char *const names[] = { "none", "donor", "borrower", "admin", "master" };

	return (unsigned)role <= ROLE_MASTER ? names[role] : "unknown";
}

const struct config_node *config_node(const struct config *cfg, uint32_t id)
{
	for (unsigned i = 0; i < cfg->n_nodes; i++)
		if (cfg->nodes[i].id == id)
			return &cfg->nodes[i];
	return NULL;
}

const struct config_client *config_client(const struct config *cfg, const char *name)
{
	for (unsigned i = 0; i < cfg->n_clients; i++)
		if (!strcmp(cfg->clients[i].name, name))
			return &cfg->clients[i];
	return NULL;
}

const struct config_export *config_export(const struct config *cfg, const char *name)
{
	for (unsigned i = 0; i < cfg->n_exports; i++)
		if (!strcmp(cfg->exports[i].name, name))
			return &cfg->exports[i];
	return NULL;
}

int config_distance(const struct config_node *a, const struct config_node *b)
{
	if (a->hostname[0] && !strcmp(a->hostname, b->hostname))
		return 0;
	if (a->rack[0] && !strcmp(a->rack, b->rack))
		return 1;
	return 2;
}

static bool name_in(const char *v, const char *const *list)
{
	for (; *list; list++)
		if (!strcmp(v, *list))
			return true;
	return false;
}

/* set_str - copy a string value that must fit @len (with its NUL). */
static int set_str(struct parse *p, const char *key, const char *v, char *dst, size_t len)
{
	if (!*v || strlen(v) >= len)
		return fail(p, true, "%s must be 1..%zu characters", key, len - 1);
	strcpy(dst, v);
	return 1;
}

static int set_size(struct parse *p, const char *key, const char *v, uint64_t *dst)
{
	if (config_parse_size(v, dst))
		return fail(p, true, "bad size '%s' for %s", v, key);
	return 1;
}

static int set_u64(struct parse *p, const char *key, const char *v, uint64_t *dst)
{
	if (parse_u64(v, dst))
		return fail(p, true, "bad number '%s' for %s", v, key);
	return 1;
}

static int set_addr(struct parse *p, const char *key, const char *v, char *host,
		    uint16_t *port)
{
	if (config_parse_addr(v, host, CONFIG_HOST_LEN, port))
		return fail(p, true, "bad address '%s' for %s (want host:port)", v, key);
	return 1;
}

static int unknown_key(struct parse *p, const char *key)
{
	return fail(p, true, "unknown key '%s' in [%s]", key, p->sec_name);
}

static int cluster_key(struct parse *p, const char *k, const char *v)
{
	struct config *cfg = p->cfg;
	uint64_t n;

	if (!strcmp(k, "master"))
		return set_addr(p, k, v, cfg->master_host, &cfg->master_port);
	if (!strcmp(k, "slab_size")) {
		if (!set_size(p, k, v, &cfg->slab_size))
			return 0;
		if (cfg->slab_size < MiB || (cfg->slab_size & (cfg->slab_size - 1)))
			return fail(p, true, "slab_size %s must be a power of two >= 1M", v);
		return 1;
	}
	if (!strcmp(k, "stats_interval_ms")) {
		if (!set_u64(p, k, v, &n))
			return 0;
		if (n < 10 || n > 3600000)
			return fail(p, true, "stats_interval_ms %s out of range 10..3600000", v);
		cfg->stats_interval_ms = (uint32_t)n;
		return 1;
	}
	if (!strcmp(k, "run_dir"))
		return set_str(p, k, v, cfg->run_dir, sizeof(cfg->run_dir));
	if (!strcmp(k, "transport")) {
		static const char *const names[] = { "tcp", "verbs", "auto", NULL };

		for (unsigned i = 0; names[i]; i++)
			if (!strcmp(v, names[i])) {
				cfg->transport = (enum config_transport)i;
				return 1;
			}
		return fail(p, true, "unknown transport '%s' (want tcp, verbs or auto)", v);
	}
	return unknown_key(p, k);
}

static int policy_key(struct parse *p, const char *k, const char *v)
{
	static const char *const firsts[] = { "greedy", "static-alloc", "reconf-static",
					      "smart-alloc", "tlp", NULL };
	static const char *const seconds[] = { "greedy-remote", "tlp", NULL };
	struct config_policy *pol = &p->cfg->policy;

	if (!strcmp(k, "first") || !strcmp(k, "second")) {
		bool first = k[0] == 'f';

		if (!name_in(v, first ? firsts : seconds))
			return fail(p, true, "unknown %s-level policy '%s'", k, v);
		return set_str(p, k, v, first ? pol->first : pol->second, CONFIG_NAME_LEN);
	}
	if (!strcmp(k, "p_percent")) {
		char *end;

		errno = 0;
		pol->p_percent = strtod(v, &end);
		if (errno || end == v || *end || !(pol->p_percent > 0 && pol->p_percent <= 100))
			return fail(p, true, "p_percent '%s' must be in (0, 100]", v);
		return 1;
	}
	if (!strcmp(k, "threshold"))
		return set_u64(p, k, v, &pol->threshold);
	if (!strcmp(k, "reserve"))
		return set_u64(p, k, v, &pol->reserve);
	if (!strcmp(k, "grant_pages")) {
		if (!set_u64(p, k, v, &pol->grant_pages))
			return 0;
		return pol->grant_pages ? 1 : fail(p, true, "grant_pages must be > 0");
	}
	return unknown_key(p, k);
}

static int node_key(struct parse *p, const char *k, const char *v)
{
	struct config_node *nd = &p->cfg->nodes[p->idx];
	unsigned *have = &p->have[p->idx];

	if (!strcmp(k, "role")) {
		if (!strcmp(v, "donor"))
			nd->role = ROLE_DONOR;
		else if (!strcmp(v, "borrower"))
			nd->role = ROLE_BORROWER;
		else
			return fail(p, true, "unknown role '%s' (want donor or borrower)", v);
		*have |= HAVE_ROLE;
		return 1;
	}
	if (!strcmp(k, "address")) {
		*have |= HAVE_ADDRESS;
		return set_addr(p, k, v, nd->host, &nd->port);
	}
	if (!strcmp(k, "hostname")) {
		*have |= HAVE_HOSTNAME;
		return set_str(p, k, v, nd->hostname, sizeof(nd->hostname));
	}
	if (!strcmp(k, "rack"))
		return set_str(p, k, v, nd->rack, sizeof(nd->rack));
	if (!strcmp(k, "pool_size")) {
		*have |= HAVE_POOL;
		if (!set_size(p, k, v, &nd->pool_size))
			return 0;
		return nd->pool_size ? 1 : fail(p, true, "pool_size must be > 0");
	}
	if (!strcmp(k, "numa_node")) {
		char *end;
		long n;

		*have |= HAVE_NUMA;
		errno = 0;
		n = strtol(v, &end, 10);
		if (errno || end == v || *end || n < -1 || n > 1023)
			return fail(p, true, "bad numa_node '%s' (want -1..1023)", v);
		nd->numa_node = (int)n;
		return 1;
	}
	if (!strcmp(k, "socket")) {
		*have |= HAVE_SOCKET;
		return set_str(p, k, v, nd->socket_path, sizeof(nd->socket_path));
	}
	if (!strcmp(k, "mem_limit")) {
		*have |= HAVE_MEMLIMIT;
		return set_size(p, k, v, &nd->mem_limit);
	}
	if (!strcmp(k, "nbd_listen")) {
		*have |= HAVE_NBD;
		return set_addr(p, k, v, nd->nbd_host, &nd->nbd_port);
	}
	if (!strcmp(k, "nbd_socket")) {
		*have |= HAVE_NBD_SOCKET;
		return set_str(p, k, v, nd->nbd_socket, sizeof(nd->nbd_socket));
	}
	return unknown_key(p, k);
}

/* set_target - pages (plain number) or a size with a suffix (a whole number of pages). */
static int set_target(struct parse *p, const char *k, const char *v, uint64_t *pages)
{
	size_t n = strlen(v);
	uint64_t bytes;

	if (n && isdigit((unsigned char)v[n - 1]))
		return set_u64(p, k, v, pages); /* plain number: pages */
	if (!set_size(p, k, v, &bytes))
		return 0;
	if (bytes % RTM_PAGE_SIZE)
		return fail(p, true, "target %s is not a multiple of the page size", v);
	*pages = bytes / RTM_PAGE_SIZE;
	return 1;
}

static int client_key(struct parse *p, const char *k, const char *v)
{
	struct config_client *cl = &p->cfg->clients[p->idx];

	if (strcmp(k, "target"))
		return unknown_key(p, k);
	p->have_target[p->idx] = true;
	return set_target(p, k, v, &cl->target_pages);
}

static int export_key(struct parse *p, const char *k, const char *v)
{
	struct config_export *ex = &p->cfg->exports[p->idx];
	uint64_t n;

	if (!strcmp(k, "size")) {
		p->have_size[p->idx] = true;
		if (!set_size(p, k, v, &ex->size))
			return 0;
		if (!ex->size || ex->size % RTM_PAGE_SIZE)
			return fail(p, true, "export size %s must be a positive multiple of 4k", v);
		return 1;
	}
	if (!strcmp(k, "target"))
		return set_target(p, k, v, &ex->target_pages);
	if (!strcmp(k, "node")) {
		if (!set_u64(p, k, v, &n))
			return 0;
		if (!n || n >= UINT32_MAX)
			return fail(p, true, "bad node id '%s' for export", v);
		ex->node = (uint32_t)n;
		return 1;
	}
	return unknown_key(p, k);
}

/* handler - inih's callback for each key; the section was opened by the reader. */
static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse *p = user;

	if (p->sec == SEC_NONE)
		return fail(p, true, "key '%s' outside of a section", name);
	if (strcmp(section, p->sec_name))
		return fail(p, true, "cannot follow section [%s]", section);
	switch (p->sec) {
	case SEC_CLUSTER:
		return cluster_key(p, name, value);
	case SEC_POLICY:
		return policy_key(p, name, value);
	case SEC_NODE:
		return node_key(p, name, value);
	case SEC_CLIENT:
		return client_key(p, name, value);
	case SEC_EXPORT:
		return export_key(p, name, value);
	default:
		return 0; /* in a section already reported */
	}
}

static void open_node(struct parse *p, const char *idstr)
{
	struct config *cfg = p->cfg;
	uint64_t id;

	if (parse_u64(idstr, &id) || id == 0 || id >= UINT32_MAX) {
		fail(p, true, "bad node id '%s' (want 1..%u)", idstr, UINT32_MAX - 1);
		return;
	}
	if (config_node(cfg, (uint32_t)id)) {
		fail(p, true, "duplicate node id %llu", (unsigned long long)id);
		return;
	}
	if (cfg->n_nodes == CONFIG_MAX_NODES) {
		fail(p, true, "too many nodes (at most %d)", CONFIG_MAX_NODES);
		return;
	}
	p->idx = cfg->n_nodes++;
	cfg->nodes[p->idx] = (struct config_node){ .id = (uint32_t)id, .numa_node = -1 };
	p->sec = SEC_NODE;
}

static void open_client(struct parse *p, const char *name)
{
	struct config *cfg = p->cfg;

	if (!*name || strlen(name) >= CONFIG_NAME_LEN) {
		fail(p, true, "client name '%s' must be 1..%d characters", name,
		     CONFIG_NAME_LEN - 1);
		return;
	}
	if (config_client(cfg, name)) {
		fail(p, true, "duplicate client '%s'", name);
		return;
	}
	if (cfg->n_clients == CONFIG_MAX_CLIENTS) {
		fail(p, true, "too many clients (at most %d)", CONFIG_MAX_CLIENTS);
		return;
	}
	p->idx = cfg->n_clients++;
	snprintf(cfg->clients[p->idx].name, CONFIG_NAME_LEN, "%s", name);
	p->sec = SEC_CLIENT;
}

static void open_export(struct parse *p, const char *name)
{
	struct config *cfg = p->cfg;

	if (!*name || strlen(name) >= CONFIG_NAME_LEN) {
		fail(p, true, "export name '%s' must be 1..%d characters", name,
		     CONFIG_NAME_LEN - 1);
		return;
	}
	if (config_export(cfg, name)) {
		fail(p, true, "duplicate export '%s'", name);
		return;
	}
	if (cfg->n_exports == CONFIG_MAX_EXPORTS) {
		fail(p, true, "too many exports (at most %d)", CONFIG_MAX_EXPORTS);
		return;
	}
	p->idx = cfg->n_exports++;
	snprintf(cfg->exports[p->idx].name, CONFIG_NAME_LEN, "%s", name);
	p->sec = SEC_EXPORT;
}

static void open_once(struct parse *p, bool *seen, enum section sec)
{
	if (*seen) {
		fail(p, true, "duplicate section [%s]", p->sec_name);
		return;
	}
	*seen = true;
	p->sec = sec;
}

/* open_section - a "[name]" line: check it and make it current. */
static void open_section(struct parse *p, const char *line)
{
	const char *end = strchr(line, ']');
	size_t n = end ? (size_t)(end - line - 1) : 0;

	p->sec = SEC_BAD;
	if (!end)
		return; /* inih reports the syntax error */
	if (n >= sizeof(p->sec_name)) {
		fail(p, true, "section name too long");
		return;
	}
	memcpy(p->sec_name, line + 1, n);
	p->sec_name[n] = '\0';
	if (!strcmp(p->sec_name, "cluster"))
		open_once(p, &p->seen_cluster, SEC_CLUSTER);
	else if (!strcmp(p->sec_name, "policy"))
		open_once(p, &p->seen_policy, SEC_POLICY);
	else if (!strncmp(p->sec_name, "node.", 5))
		open_node(p, p->sec_name + 5);
	else if (!strncmp(p->sec_name, "client.", 7))
		open_client(p, p->sec_name + 7);
	else if (!strncmp(p->sec_name, "export.", 7))
		open_export(p, p->sec_name + 7);
	else
		fail(p, true, "unknown section [%s]", p->sec_name);
}

/* reader - fgets for inih that counts lines and opens sections as they appear. */
static char *reader(char *str, int num, void *stream)
{
	struct parse *p = stream;
	char *s = fgets(str, num, p->f);

	if (!s)
		return NULL;
	p->lineno++;
	if (p->lineno == 1 && !strncmp(s, "\xEF\xBB\xBF", 3))
		s += 3;
	while (isspace((unsigned char)*s))
		s++;
	if (*s == '[')
		open_section(p, s);
	return str;
}

/* finish_node - defaults and the checks that need the whole file. */
static void finish_node(struct parse *p, unsigned i)
{
	struct config *cfg = p->cfg;
	struct config_node *nd = &cfg->nodes[i];
	unsigned have = p->have[i];
	char sec[24];

	snprintf(sec, sizeof(sec), "node.%u", nd->id);
	if (!(have & HAVE_ROLE)) {
		fail(p, false, "%s: missing role", sec);
		return;
	}
	if (nd->role == ROLE_DONOR) {
		if (!(have & HAVE_ADDRESS))
			fail(p, false, "%s: missing address", sec);
		else if (!(have & HAVE_POOL))
			fail(p, false, "%s: missing pool_size", sec);
		else if (nd->pool_size % cfg->slab_size)
			fail(p, false, "%s: pool_size %llu is not a multiple of slab_size %llu",
			     sec, (unsigned long long)nd->pool_size,
			     (unsigned long long)cfg->slab_size);
		else if (have & (HAVE_SOCKET | HAVE_MEMLIMIT))
			fail(p, false, "%s: socket and mem_limit are for borrowers", sec);
		else if (have & (HAVE_NBD | HAVE_NBD_SOCKET))
			fail(p, false, "%s: nbd_listen and nbd_socket are for borrowers", sec);
	} else {
		if (have & (HAVE_POOL | HAVE_NUMA))
			fail(p, false, "%s: pool_size and numa_node are for donors", sec);
		else if (!(have & HAVE_SOCKET) &&
			 snprintf(nd->socket_path, sizeof(nd->socket_path), "%s/borrower-%u.sock",
				  cfg->run_dir, nd->id) >= (int)sizeof(nd->socket_path))
			fail(p, false, "%s: default socket path too long, set socket", sec);
		else if (!(have & HAVE_NBD_SOCKET) &&
			 snprintf(nd->nbd_socket, sizeof(nd->nbd_socket), "%s/nbd-%u.sock",
				  cfg->run_dir, nd->id) >= (int)sizeof(nd->nbd_socket))
			fail(p, false, "%s: default nbd socket path too long, set nbd_socket",
			     sec);
	}
	/* default hostname = address host; unique when unknown, so that it is never
	 * "same host" by accident */
	const char *def = nd->host[0] ? nd->host : sec;

	if (have & HAVE_HOSTNAME)
		return;
	if (strlen(def) >= sizeof(nd->hostname))
		fail(p, false, "%s: address host too long for a hostname, set hostname", sec);
	else
		strcpy(nd->hostname, def);
}

static void config_defaults(struct config *cfg, const char *path)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->path, sizeof(cfg->path), "%s", path);
	cfg->slab_size = 64 * MiB;
	cfg->stats_interval_ms = 1000;
	strcpy(cfg->run_dir, "/run/rtmem");
	strcpy(cfg->policy.first, "greedy");
	strcpy(cfg->policy.second, "greedy-remote");
	cfg->policy.p_percent = 2;
	cfg->policy.threshold = 256;
	cfg->policy.reserve = 0;
	cfg->policy.grant_pages = 1000;
}

int config_load(const char *path, struct config *cfg, char *err, size_t errlen)
{
	struct parse *p;
	int rc, line;

	if (err && errlen)
		err[0] = '\0';
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	*p = (struct parse){ .cfg = cfg, .path = path, .err = err, .errlen = errlen };
	config_defaults(cfg, path);
	p->f = fopen(path, "re");
	if (!p->f) {
		rc = -errno;
		if (err && errlen)
			snprintf(err, errlen, "%s: cannot open: %s", path, strerror(-rc));
		goto out_free;
	}
	line = ini_parse_stream(reader, p, handler, p);
	fclose(p->f);
	if (line < 0) {
		rc = -ENOMEM;
		goto out_free;
	}
	/* inih's first error is a syntax error if we recorded nothing at that line */
	if (line > 0 && (p->err_line <= 0 || line < p->err_line)) {
		p->err_line = 0;
		p->lineno = line;
		fail(p, true, "syntax error");
	}
	if (!p->err_line && !p->seen_cluster)
		fail(p, false, "missing section [cluster]");
	if (!p->err_line && !cfg->master_host[0])
		fail(p, false, "cluster: missing master");
	for (unsigned i = 0; i < cfg->n_nodes && !p->err_line; i++)
		finish_node(p, i);
	for (unsigned i = 0; i < cfg->n_clients && !p->err_line; i++)
		if (!p->have_target[i])
			fail(p, false, "client.%s: missing target", cfg->clients[i].name);
	for (unsigned i = 0; i < cfg->n_exports && !p->err_line; i++) {
		const struct config_export *ex = &cfg->exports[i];
		const struct config_node *nd = ex->node ? config_node(cfg, ex->node) : NULL;

		if (!p->have_size[i])
			fail(p, false, "export.%s: missing size", ex->name);
		else if (ex->node && (!nd || nd->role != ROLE_BORROWER))
			fail(p, false, "export.%s: node %u is not a borrower", ex->name, ex->node);
	}
	rc = p->err_line ? -EINVAL : 0;
out_free:
	free(p);
	return rc;
}
