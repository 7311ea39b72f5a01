/* verbs-dev.c - device helpers shared by both sides of the verbs back end: is a
 * device usable (for transport = auto / verbs), a one-line description of the device,
 * port state, GID and MTU in use, and waiting for one rdma_cm event with a timeout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <infiniband/verbs.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"
/* rdma.h's inline rdma_connect() wrapper shares its name with librdmacm's. */
#define rdma_connect rtm_rdma_connect_wrapper
#include "rdma/rdma-internal.h"
#undef rdma_connect
#include <rdma/rdma_cma.h>

#define LOG_AREA "rdma-verbs"

static const char *mtu_str(enum ibv_mtu m)
{
	switch (m) {
	case IBV_MTU_256: return "256";
	case IBV_MTU_512: return "512";
	case IBV_MTU_1024: return "1024";
	case IBV_MTU_2048: return "2048";
	case IBV_MTU_4096: return "4096";
	default: return "?";
	}
}

static bool gid_ipv4(const union ibv_gid *g, uint32_t *ip)
{
	static const uint8_t prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (memcmp(g->raw, prefix, sizeof(prefix)))
		return false;
	memcpy(ip, g->raw + 12, 4);
	return true;
}

void rvb_describe(struct ibv_context *ctx, uint8_t port, uint32_t ip4, char *out,
		  size_t len)
{
	struct ibv_port_attr pa;
	struct ibv_gid_entry gids[64];
	char gid_txt[64] = "no RoCE v2 IPv4 GID";
	ssize_t n;

	if (ibv_query_port(ctx, port, &pa)) {
		snprintf(out, len, "dev %s port %u: query failed: %s",
			 ibv_get_device_name(ctx->device), port, strerror(errno));
		return;
	}
	n = ibv_query_gid_table(ctx, gids, 64, 0);
	for (ssize_t i = 0; i < n; i++) {
		uint32_t ip;
		char a[INET_ADDRSTRLEN];

		if (gids[i].port_num != port || gids[i].gid_type != IBV_GID_TYPE_ROCE_V2 ||
		    !gid_ipv4(&gids[i].gid, &ip) || (ip4 && ip != ip4))
			continue;
		inet_ntop(AF_INET, &ip, a, sizeof(a));
		snprintf(gid_txt, sizeof(gid_txt), "gid index %u (RoCE v2, %s)",
			 gids[i].gid_index, a);
		break;
	}
	snprintf(out, len, "dev %s port %u %s, %s, active MTU %s",
		 ibv_get_device_name(ctx->device), port, ibv_port_state_str(pa.state),
		 gid_txt, mtu_str(pa.active_mtu));
}

int rvb_event_errno(int type)
{
	switch (type) {
	case RDMA_CM_EVENT_REJECTED:
		return -ECONNREFUSED;
	case RDMA_CM_EVENT_UNREACHABLE:
		return -EHOSTUNREACH;
	case RDMA_CM_EVENT_ADDR_ERROR:
		return -EADDRNOTAVAIL;
	case RDMA_CM_EVENT_ROUTE_ERROR:
		return -ENETUNREACH;
	case RDMA_CM_EVENT_DEVICE_REMOVAL:
		return -ENODEV;
	default:
		log_dbg("unexpected cm event %s", rdma_event_str(type));
		return -ECONNRESET;
	}
}

/* probe_host - the device and port that serve @host's address (bind, no traffic). */
static int probe_host(const char *host, char *why, size_t len)
{
	struct rdma_event_channel *ech = rdma_create_event_channel();
	struct rdma_cm_id *id = NULL;
	struct addrinfo hints = { .ai_family = AF_INET }, *ai = NULL;
	struct ibv_port_attr pa;
	int r = 0;

	if (!ech) {
		snprintf(why, len, "rdma_cm unavailable: %s", strerror(errno));
		return -ENODEV;
	}
	if (rdma_create_id(ech, &id, NULL, RDMA_PS_TCP)) {
		snprintf(why, len, "rdma_create_id: %s", strerror(errno));
		r = -ENODEV;
		goto out;
	}
	if (getaddrinfo(host, NULL, &hints, &ai) || !ai) {
		snprintf(why, len, "cannot resolve %s", host);
		r = -EINVAL;
		goto out;
	}
	if (rdma_bind_addr(id, ai->ai_addr) || !id->verbs) {
		snprintf(why, len, "no RDMA device serves %s", host);
		r = -ENODEV;
		goto out;
	}
	if (ibv_query_port(id->verbs, id->port_num, &pa) || pa.state != IBV_PORT_ACTIVE) {
		snprintf(why, len, "dev %s port %u is not active",
			 ibv_get_device_name(id->verbs->device), id->port_num);
		r = -ENETDOWN;
		goto out;
	}
	rvb_describe(id->verbs, id->port_num,
		     ((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr, why, len);
out:
	if (ai)
		freeaddrinfo(ai);
	if (id)
		rdma_destroy_id(id);
	rdma_destroy_event_channel(ech);
	return r;
}

/* probe_any - the first device with an active port (the borrower has no address). */
static int probe_any(char *why, size_t len)
{
	int n = 0, r = -ENODEV;
	struct ibv_device **list = ibv_get_device_list(&n);

	snprintf(why, len, "no RDMA device");
	for (int i = 0; list && i < n && r; i++) {
		struct ibv_context *ctx = ibv_open_device(list[i]);
		struct ibv_device_attr da;

		if (!ctx)
			continue;
		if (!ibv_query_device(ctx, &da))
			for (uint8_t p = 1; p <= da.phys_port_cnt && r; p++) {
				struct ibv_port_attr pa;

				if (!ibv_query_port(ctx, p, &pa) && pa.state == IBV_PORT_ACTIVE) {
					rvb_describe(ctx, p, 0, why, len);
					r = 0;
				}
			}
		if (r)
			snprintf(why, len, "dev %s has no active port",
				 ibv_get_device_name(list[i]));
		ibv_close_device(ctx);
	}
	if (list)
		ibv_free_device_list(list);
	return r;
}

int rdma_verbs_probe(const char *host, char *why, size_t len)
{
	return host && *host ? probe_host(host, why, len) : probe_any(why, len);
}
