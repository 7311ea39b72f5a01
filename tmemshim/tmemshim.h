/* tmemshim.h - libtmemshim, the tmem-compatible client API of rtmem.
 *
 * A program connects to its host's rtmem-borrower over a unix socket, creates pools
 * and puts/gets/flushes 4 KiB pages addressed by (pool, object id, index), with the
 * semantics of Xen tmem / frontswap / cleancache:
 *  - a get from a persistent pool never misses a page that was put and not flushed;
 *  - a page in an ephemeral pool may vanish at any time (a get then returns -ENOENT),
 *    but a get never returns data other than what was put;
 *  - a put may fail (-ENOSPC: over the client's target or no remote capacity); the
 *    caller keeps its data elsewhere, and any older copy at that index is gone.
 * Page data travels through a shared-memory buffer, never through the socket, and
 * operations can be batched (tmem_batch).
 *
 * All calls return 0 (or a non-negative value) on success and -errno on failure.
 * A struct tmem_client is not thread-safe: use one per thread, or lock around it.
 */
#ifndef RTMEM_TMEMSHIM_H
#define RTMEM_TMEMSHIM_H

#include <stddef.h>
#include <stdint.h>

#define TMEM_PAGE_SIZE 4096u
#define TMEM_MAX_BATCH 64u

/* pool flags */
#define TMEM_POOL_PERSISTENT 0x1u /* else ephemeral */
#define TMEM_POOL_SHARED 0x2u     /* joined by every client giving the same uuid */

enum tmem_cmd {
	TMEM_PUT = 1,
	TMEM_GET = 2,
	TMEM_FLUSH_PAGE = 3,
	TMEM_FLUSH_OBJECT = 4,
};

struct tmem_client;

struct tmem_op {
	enum tmem_cmd cmd;
	uint32_t pool;
	uint64_t oid;
	uint32_t index;
	void *page;     /* PUT: source, GET: destination (TMEM_PAGE_SIZE bytes) */
	int status;     /* out: 0 or -errno */
};

/* tmem_connect - connect to the borrower at @socket_path (NULL: $RTMEM_SOCKET, else
 * /run/rtmem/borrower.sock) as client @name (operator-visible; a name with a fixed
 * target in the config gets that target). */
int tmem_connect(const char *socket_path, const char *name, struct tmem_client **out);
void tmem_disconnect(struct tmem_client *c);

/* tmem_new_pool - returns the pool id (>= 0). @uuid only matters with TMEM_POOL_SHARED. */
int tmem_new_pool(struct tmem_client *c, uint32_t flags, uint64_t uuid);
int tmem_destroy_pool(struct tmem_client *c, uint32_t pool);

int tmem_put_page(struct tmem_client *c, uint32_t pool, uint64_t oid, uint32_t index,
		  const void *page);
int tmem_get_page(struct tmem_client *c, uint32_t pool, uint64_t oid, uint32_t index,
		  void *page);
int tmem_flush_page(struct tmem_client *c, uint32_t pool, uint64_t oid, uint32_t index);
int tmem_flush_object(struct tmem_client *c, uint32_t pool, uint64_t oid);

/* tmem_batch - run @n operations (any mix, any n: split into TMEM_MAX_BATCH chunks)
 * in order; each op's status is set. Returns the number of ops that succeeded, or
 * -errno if the connection failed (statuses of unexecuted ops are then -EIO). */
int tmem_batch(struct tmem_client *c, struct tmem_op *ops, unsigned n);

/* tmem_client_id - the id the borrower gave this client (as shown by rtmemctl). */
uint32_t tmem_client_id(const struct tmem_client *c);

#endif
