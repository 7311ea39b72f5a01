/* rdma.h - the data-plane transport: one-sided, batched, asynchronous READ/WRITE of
 * page runs in a remote slab, with completions. Back ends (TCP over io_uring now,
 * verbs later) are ops tables behind this interface; callers never see which.
 *
 * Model: a transport instance (struct rdma_transport) holds connections to donors
 * (struct rdma_conn). A request names a connection, a slab reference (offset, length
 * and key as granted), an offset inside the slab, a local buffer and a length (a
 * multiple of RTM_PAGE_SIZE, at most RDMA_MAX_IO). Requests are posted in batches and
 * complete later, in any order, each with its own status (0 or -errno). A failed
 * completion never passes as success.
 *
 * The donor side of the TCP back end lives here too (rdma_tcp_server_*): it checks
 * every request against the slab table the donor keeps (owner, key, range).
 */
#ifndef RTMEM_RDMA_H
#define RTMEM_RDMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RDMA_MAX_IO (1u << 20)     /* bytes per request */
#define RDMA_MAX_BATCH 256         /* requests per post */

enum rdma_op { RDMA_OP_READ = 1, RDMA_OP_WRITE = 2 };

struct rdma_conn;

struct rdma_req {
	struct rdma_conn *conn;  /* connection to the slab's donor */
	enum rdma_op op;
	uint64_t slab_offset;    /* slab start in the donor's pool (from the grant) */
	uint64_t slab_length;
	uint64_t key;            /* the slab's access key */
	uint64_t offset;         /* byte offset inside the slab */
	void *buf;               /* local memory: source of WRITE, destination of READ */
	uint32_t len;            /* bytes, multiple of RTM_PAGE_SIZE, <= RDMA_MAX_IO */
	uint64_t cookie;         /* caller's, returned in the completion */
};

struct rdma_completion {
	uint64_t cookie;
	int status;              /* 0, or -errno: -EACCES the donor refused (key,
				  * owner, range), -ECONNRESET the connection failed
				  * with it in flight, -ENOTCONN posted on a failed
				  * connection; verbs also -EINVAL (local length /
				  * operation error) and -EIO (local fault, e.g. a
				  * protection error, or an unknown status).
				  * docs/transport.md has the table. */
};

struct rdma_transport;

/* Back-end operations. Every back end embeds struct rdma_transport first. */
struct rdma_ops {
	const char *name;
	/* connect - open a data connection to donor @donor_id at @host:@port, presenting
	 * @self_id. Returns a connection or NULL with errno set. */
	struct rdma_conn *(*connect)(struct rdma_transport *t, uint32_t donor_id,
				     const char *host, uint16_t port, uint32_t self_id);
	/* disconnect - close; requests in flight complete with -ECONNRESET first. */
	void (*disconnect)(struct rdma_conn *c);
	/* post - queue @n requests (all on the same connection or not) and start them;
	 * returns the number accepted (may be < n when the in-flight bound is reached)
	 * or -errno if none could be. Buffers must stay valid until completion. */
	int (*post)(struct rdma_transport *t, const struct rdma_req *reqs, unsigned n);
	/* poll - reap up to @max completions, waiting up to @timeout_ms (0 = don't wait,
	 * -1 = forever) for the first. Returns the count or -errno. */
	int (*poll)(struct rdma_transport *t, struct rdma_completion *out, unsigned max,
		    int timeout_ms);
	/* inflight - number of posted, not yet reaped requests */
	unsigned (*inflight)(struct rdma_transport *t);
	/* destroy - disconnect everything and free the transport. */
	void (*destroy)(struct rdma_transport *t);
};

struct rdma_transport {
	const struct rdma_ops *ops;
};

/* rdma_tcp_create - the TCP back end (liburing). @depth bounds requests in flight. */
struct rdma_transport *rdma_tcp_create(unsigned depth);
/* rdma_verbs_create - the verbs back end (libibverbs + librdmacm, RC queue pairs,
 * one-sided READ/WRITE through a registered staging arena). NULL with errno ENODEV
 * when no device has an active port. */
struct rdma_transport *rdma_verbs_create(unsigned depth);
/* rdma_verbs_probe - 0 if verbs can be used (for @host: the device that owns that
 * address; NULL: any device with an active port), with a one-line description of
 * device, port state, GID and MTU in @why; else -errno and the reason in @why. */
int rdma_verbs_probe(const char *host, char *why, size_t len);
/* rdma_transport_create - the back end [cluster] transport names (@kind is an enum
 * config_transport): tcp, verbs (NULL + ENODEV and a logged reason without a
 * device), auto (verbs if probed usable, else TCP with one log line). */
struct rdma_transport *rdma_transport_create(int kind, unsigned depth);

/* Convenience wrappers over the ops table. */
static inline struct rdma_conn *rdma_connect(struct rdma_transport *t, uint32_t donor_id,
					     const char *host, uint16_t port, uint32_t self)
{
	return t->ops->connect(t, donor_id, host, port, self);
}

/* rdma_rw_sync - post @n requests, wait for all their completions and store each
 * request's status in @status[i] (indexed like @reqs). Returns 0 if all succeeded,
 * else the first error. */
int rdma_rw_sync(struct rdma_transport *t, const struct rdma_req *reqs, unsigned n,
		 int *status);
/* rdma_conn_donor - donor id of a connection. rdma_conn_close - disconnect. */
uint32_t rdma_conn_donor(const struct rdma_conn *c);
void rdma_conn_close(struct rdma_transport *t, struct rdma_conn *c);
void rdma_destroy(struct rdma_transport *t);

/* ------------------------------------------------ donor side (TCP back end) */

struct rdma_tcp_server;

/* rdma_tcp_server_create - serve READ/WRITE requests into @pool (@pool_len bytes,
 * carved into slabs of @slab_size) on @host:@port, from its own thread. Every slab
 * starts unlent (owner 0): any access is refused until rdma_tcp_server_set_acl. */
struct rdma_tcp_server *rdma_tcp_server_create(const char *host, uint16_t port, void *pool,
					       uint64_t pool_len, uint64_t slab_size);
/* rdma_tcp_server_set_acl - slab @idx may now be touched by node @owner (0 = nobody)
 * with @key only. Returns once no request admitted under the old ACL is still copying,
 * so a revoked slab can be handed on safely. A request is admitted only if its
 * [offset, offset+len) lies inside one slab, the connection's node is the owner and
 * the key matches; otherwise it completes with -EACCES. */
int rdma_tcp_server_set_acl(struct rdma_tcp_server *s, unsigned idx, uint32_t owner,
			    uint64_t key);
/* rdma_tcp_server_port - the bound port (useful when created with port 0). */
uint16_t rdma_tcp_server_port(const struct rdma_tcp_server *s);
void rdma_tcp_server_destroy(struct rdma_tcp_server *s);

/* ------------------------------------------ donor side, either back end */

/* A donor's data-plane server: always the TCP server; with verbs also an rdma_cm
 * listener on the same port number (rdma_cm's own port space) and one memory region
 * per lent slab. Keys: TCP only, a random non-zero u64; with verbs, the slab MR's
 * rkey in the low 32 bits and random high 32 bits (the TCP server checks all 64, the
 * NIC the rkey). */
struct rdma_server;

/* rdma_server_create - @kind as rdma_transport_create; NULL with errno on failure
 * (ENODEV: verbs asked for and no device serves @host; reason logged). */
struct rdma_server *rdma_server_create(int kind, const char *host, uint16_t port,
				       void *pool, uint64_t pool_len, uint64_t slab_size);
/* rdma_server_grant - lend slab @idx to @owner under a fresh key (*@key). With verbs
 * the slab's MR is registered here. */
int rdma_server_grant(struct rdma_server *s, unsigned idx, uint32_t owner, uint64_t *key);
/* rdma_server_revoke - the slab's key stops working (TCP ACL cleared, MR
 * deregistered) before this returns 0; on error the old key may still work. */
int rdma_server_revoke(struct rdma_server *s, unsigned idx);
uint16_t rdma_server_port(const struct rdma_server *s);
/* rdma_server_name - "tcp" or "verbs+tcp". */
const char *rdma_server_name(const struct rdma_server *s);
void rdma_server_destroy(struct rdma_server *s);

/* The verbs listener alone (rdma/verbs-server.c), used by rdma_server. */
struct rdma_verbs_server;
struct rdma_verbs_server *rdma_verbs_server_create(const char *host, uint16_t port,
						   void *pool, uint64_t pool_len,
						   uint64_t slab_size);
/* rdma_verbs_server_reg - register slab @idx as an MR, its rkey in *@rkey; never one
 * of the slab's last 8 rkeys (-EAGAIN if the provider keeps repeating them). */
int rdma_verbs_server_reg(struct rdma_verbs_server *s, unsigned idx, uint32_t *rkey);
/* rdma_verbs_server_dereg - deregister slab @idx's MR (no-op if none). */
int rdma_verbs_server_dereg(struct rdma_verbs_server *s, unsigned idx);
void rdma_verbs_server_destroy(struct rdma_verbs_server *s);

#endif
