/* rdma.c - back-end independent helpers of the data-plane transport: a synchronous
 * batch (post in chunks, wait for every completion) and thin wrappers over the ops
 * table.
 */
#include <errno.h>
#include <string.h>

#include "common/common.h"
#include "rdma/rdma-internal.h"

#define LOG_AREA "rdma"

int rdma_rw_sync(struct rdma_transport *t, const struct rdma_req *reqs, unsigned n,
		 int *status)
{
	struct rdma_req chunk[64];
	struct rdma_completion comp[64];
	unsigned posted = 0, done = 0, i;
	int first = 0;

	/* Cookies are rewritten to request indices, so no foreign completion may be
	 * pending on the transport. */
	if (t->ops->inflight(t))
		return -EBUSY;
	for (i = 0; i < n; i++)
		status[i] = -EINPROGRESS;

	while (done < n) {
		if (posted < n) {
			unsigned k = n - posted < 64 ? n - posted : 64;
			int ret;

			for (i = 0; i < k; i++) {
				chunk[i] = reqs[posted + i];
				chunk[i].cookie = posted + i;
			}
			ret = t->ops->post(t, chunk, k);
			if (ret > 0) {
				posted += (unsigned)ret;
				if (posted < n && (unsigned)ret == k)
					continue; /* room left: keep posting */
			} else if (ret < 0 && ret != -EAGAIN) {
				/* refused outright: that request is done */
				status[posted++] = ret;
				done++;
				continue;
			}
		}
		if (done == n)
			break;
		/* wait for at least one completion; don't block if nothing is in flight */
		int got = t->ops->poll(t, comp, 64, t->ops->inflight(t) ? -1 : 0);
		if (got < 0)
			return got;
		for (i = 0; i < (unsigned)got; i++) {
			uint64_t idx = comp[i].cookie;

			if (idx >= n || status[idx] != -EINPROGRESS)
				return -EIO; /* cannot happen unless a back end is broken */
			status[idx] = comp[i].status;
			done++;
		}
	}
	for (i = 0; i < n && !first; i++)
		first = status[i];
	return first;
}

uint32_t rdma_conn_donor(const struct rdma_conn *c)
{
	return c->donor;
}

void rdma_conn_close(struct rdma_transport *t, struct rdma_conn *c)
{
	if (c)
		t->ops->disconnect(c);
}

void rdma_destroy(struct rdma_transport *t)
{
	if (t)
		t->ops->destroy(t);
}

struct rdma_transport *rdma_transport_create(int kind, unsigned depth)
{
	char why[160];

	if (kind == CONFIG_TRANSPORT_VERBS)
		return rdma_verbs_create(depth);
	if (kind == CONFIG_TRANSPORT_AUTO) {
		if (rdma_verbs_probe(NULL, why, sizeof(why)) == 0)
			return rdma_verbs_create(depth);
		log_info("transport = auto: %s; using TCP", why);
	}
	return rdma_tcp_create(depth);
}
