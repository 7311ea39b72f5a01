/* server.c - the donor's data-plane server behind one small interface, whichever
 * back end the config picks: the TCP server always, plus with verbs an rdma_cm
 * listener on the same port number and one MR per lent slab (rdma.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "rdma/rdma-internal.h"

#define LOG_AREA "rdma-server"

struct rdma_server {
	struct rdma_tcp_server *tcp;
	struct rdma_verbs_server *verbs; /* NULL: TCP only */
};

struct rdma_server *rdma_server_create(int kind, const char *host, uint16_t port,
				       void *pool, uint64_t pool_len, uint64_t slab_size)
{
	struct rdma_server *s = calloc(1, sizeof(*s));
	char why[160];
	int r;

	if (!s)
		return NULL;
	if (kind != CONFIG_TRANSPORT_TCP) {
		r = rdma_verbs_probe(host, why, sizeof(why));
		if (r && kind == CONFIG_TRANSPORT_VERBS) {
			log_err("transport = verbs: %s", why);
			free(s);
			errno = -r;
			return NULL;
		}
		if (r)
			log_info("transport = auto: %s; serving TCP only", why);
	}
	s->tcp = rdma_tcp_server_create(host, port, pool, pool_len, slab_size);
	if (!s->tcp) {
		free(s);
		return NULL;
	}
	if (kind == CONFIG_TRANSPORT_VERBS || (kind == CONFIG_TRANSPORT_AUTO && !r)) {
		s->verbs = rdma_verbs_server_create(host, rdma_tcp_server_port(s->tcp), pool,
						    pool_len, slab_size);
		if (!s->verbs && kind == CONFIG_TRANSPORT_AUTO) {
			log_warn("transport = auto: verbs server on %s: %s; serving TCP only",
				 host, strerror(errno));
		} else if (!s->verbs) {
			r = errno;
			rdma_tcp_server_destroy(s->tcp);
			free(s);
			errno = r;
			return NULL;
		}
	}
	return s;
}

int rdma_server_grant(struct rdma_server *s, unsigned idx, uint32_t owner, uint64_t *key)
{
	uint64_t k;
	uint32_t rkey = 0;
	int r;

	if (s->verbs) {
		r = rdma_verbs_server_reg(s->verbs, idx, &rkey);
		if (r)
			return r;
		k = (rtm_random64() << 32) | rkey;
	} else {
		do
			k = rtm_random64();
		while (!k);
	}
	r = rdma_tcp_server_set_acl(s->tcp, idx, owner, k);
	if (r) {
		if (s->verbs)
			rdma_verbs_server_dereg(s->verbs, idx);
		return r;
	}
	*key = k;
	return 0;
}

int rdma_server_revoke(struct rdma_server *s, unsigned idx)
{
	int r = rdma_tcp_server_set_acl(s->tcp, idx, 0, 0);

	if (!r && s->verbs)
		r = rdma_verbs_server_dereg(s->verbs, idx);
	return r;
}

uint16_t rdma_server_port(const struct rdma_server *s)
{
	return rdma_tcp_server_port(s->tcp);
}

const char *rdma_server_name(const struct rdma_server *s)
{
	return s->verbs ? "verbs+tcp" : "tcp";
}

void rdma_server_destroy(struct rdma_server *s)
{
	if (!s)
		return;
	rdma_verbs_server_destroy(s->verbs);
	rdma_tcp_server_destroy(s->tcp);
	free(s);
}
