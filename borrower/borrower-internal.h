/* borrower-internal.h - declarations shared by the files of rtmem-borrower:
 * the zoned buddy allocator (buddy.c), the page index (pindex.c), the page store
 * core (borrower.c) and the client server (clients.c).
 */
#ifndef RTMEM_BORROWER_INTERNAL_H
#define RTMEM_BORROWER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------ zoned buddy allocator */

/* A location of a page run: zone (= donor id), slab handle (borrower-wide, stable
 * while the slab is held) and page number inside the slab. */
struct buddy_loc {
	uint32_t zone;
	uint32_t slab;
	uint32_t page;
};

#define BUDDY_MAX_ORDER 20 /* 2^20 pages = 4 GiB slab */

struct buddy;

struct buddy *buddy_new(void);
void buddy_free_all(struct buddy *b);
/* buddy_add_zone - zone @zone (donor id) at @distance (0 nearest). -EEXIST if known. */
int buddy_add_zone(struct buddy *b, uint32_t zone, int distance);
/* buddy_add_slab - give zone @zone a slab of @pages pages (a power of two,
 * <= 2^BUDDY_MAX_ORDER) under handle @slab (unique). */
int buddy_add_slab(struct buddy *b, uint32_t zone, uint32_t slab, uint32_t pages);
/* buddy_remove_slab - drop slab @slab: -EBUSY if any page of it is allocated and
 * !@force. */
int buddy_remove_slab(struct buddy *b, uint32_t slab, bool force);
/* buddy_alloc - 2^@order pages from the nearest zone (lowest distance, then zone id)
 * that has them, skipping zone @exclude (0 = none). -ENOSPC when none has. */
int buddy_alloc(struct buddy *b, unsigned order, uint32_t exclude, struct buddy_loc *out);
/* buddy_free - give back a run from buddy_alloc (merges buddies). */
void buddy_free(struct buddy *b, const struct buddy_loc *loc, unsigned order);
uint64_t buddy_total_pages(const struct buddy *b);
uint64_t buddy_free_pages(const struct buddy *b);
/* buddy_zone_free_pages - free pages in @zone (0 if unknown). */
uint64_t buddy_zone_free_pages(const struct buddy *b, uint32_t zone);
/* buddy_slab_used_pages - allocated pages in slab @slab, -ENOENT if unknown. */
int64_t buddy_slab_used_pages(const struct buddy *b, uint32_t slab);

/* ------------------------------------------------ page index */

/* (pool, object, index) -> up to two locations on different donors. */
struct pindex_key {
	uint32_t pool;
	uint64_t oid;
	uint32_t index;
};

#define PINDEX_MAX_COPIES 2

struct pindex_entry {
	struct pindex_key key;
	uint8_t ncopies;                       /* 0..PINDEX_MAX_COPIES */
	struct buddy_loc loc[PINDEX_MAX_COPIES];
};

struct pindex;

struct pindex *pindex_new(void);
void pindex_free(struct pindex *p);
/* pindex_lookup - the entry for @k or NULL. The pointer stays valid until the entry
 * is removed or the index is freed. */
struct pindex_entry *pindex_lookup(struct pindex *p, const struct pindex_key *k);
/* pindex_insert - a new entry for @k with no copies; -EEXIST if present. */
int pindex_insert(struct pindex *p, const struct pindex_key *k, struct pindex_entry **out);
/* pindex_remove - remove @k, copying the entry to @out (may be NULL). -ENOENT. */
int pindex_remove(struct pindex *p, const struct pindex_key *k, struct pindex_entry *out);
/* pindex_walk - call @cb on every entry matching the filter (pool; oid if @by_oid;
 * every pool if @pool == UINT32_MAX). If @cb returns true the entry is removed after
 * the call (the callback must release what the entry holds first). Returns the
 * number of entries visited. */
size_t pindex_walk(struct pindex *p, uint32_t pool, bool by_oid, uint64_t oid,
		   bool (*cb)(struct pindex_entry *e, void *arg), void *arg);
size_t pindex_count(const struct pindex *p);


/* ------------------------------------------------ page store (borrower.c) */

#include "tmemshim/tmemshim.h" /* struct tmem_op, enum tmem_cmd, pool flags */

struct borrower;
struct bclient;
struct evloop;

/* borrower_client_attach - a new local client called @name. NULL + errno on failure
 * (-EMFILE style limits). */
struct bclient *borrower_client_attach(struct borrower *b, const char *name);
/* borrower_client_detach - the client went away: destroy its private pools (every
 * page freed), drop its references to shared pools, forget it. */
void borrower_client_detach(struct borrower *b, struct bclient *c);
uint32_t borrower_client_id(const struct bclient *c);
/* borrower_pool_new - returns the pool id (>= 0) or -errno. */
int borrower_pool_new(struct borrower *b, struct bclient *c, uint32_t flags, uint64_t uuid);
int borrower_pool_destroy(struct borrower *b, struct bclient *c, uint32_t pool);
/* borrower_tmem - run @n operations for client @c in order; each op's status is set
 * (0, -ENOENT miss / unknown pool, -ENOSPC put refused, -EIO data lost, -EINVAL).
 * ops[i].page points into the client's shared buffer. */
void borrower_tmem(struct borrower *b, struct bclient *c, struct tmem_op *ops, unsigned n);
/* borrower_tmem_async - like borrower_tmem, but returns once the page I/O is
 * posted: an op whose status is -EINPROGRESS on return completes later, and @done
 * is called with it (its status final) from the event loop; after each round of
 * such calls comes @done(@arg, NULL), the last one once no op of the batch is left.
 * Every other op's status is final on return (flushes, misses, refused puts, pages
 * in local slabs). @ops and the pages stay valid until their @done; no page may
 * appear twice in @ops, nor in two batches in flight at once (the caller orders
 * them). Several batches are in flight together; their transport requests go out
 * together from the event loop. -ENOMEM: nothing was done. */
typedef void store_done_fn(void *arg, struct tmem_op *op);
int borrower_tmem_async(struct borrower *b, struct bclient *c, struct tmem_op *ops,
			unsigned n, store_done_fn *done, void *arg);
/* borrower_tmem_drain - wait for every asynchronous batch and report it. */
void borrower_tmem_drain(struct borrower *b);

/* ------------------------------------------------ client server (clients.c) */

struct clients;

/* clients_start - listen on the unix socket @path and serve libtmemshim clients from
 * @ev. Malformed requests close that client's connection with a logged reason. */
struct clients *clients_start(struct borrower *b, struct evloop *ev, const char *path);
/* clients_stop - close every client connection (detaching them) and the socket. */
void clients_stop(struct clients *cs);

/* ------------------------------------------------ NBD server (nbd.c) */

struct nbd_server;
struct config;
struct config_node;

/* nbd_start - create the exports of the config served by node @self (each a client
 * with a persistent pool) and listen for NBD clients on self->nbd_socket and, if
 * set, TCP self->nbd_host:nbd_port, and for `rtmemctl export` on <nbd_socket>.ctl
 * (served even with no export configured: exports can be added at run time; if
 * its sockets cannot be made then, the borrower runs without NBD, with a warning). */
int nbd_start(struct borrower *b, struct evloop *ev, const struct config *cfg,
	      const struct config_node *self, struct nbd_server **out);
/* nbd_stop - close every NBD connection and the sockets, free the exports. */
void nbd_stop(struct nbd_server *s);

#endif
