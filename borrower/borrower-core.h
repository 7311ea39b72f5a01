/* borrower-core.h - the state of rtmem-borrower shared by node.c (control plane:
 * master link, grants, leave, statistics, policy) and store.c (the page store: tmem
 * operations, data I/O, migration). Private to borrower/.
 */
#ifndef RTMEM_BORROWER_CORE_H
#define RTMEM_BORROWER_CORE_H

#include "borrower/borrower-internal.h"
#include "common/common.h"
#include "policy/policy.h"
#include "rdma/rdma.h"

#define B_MAX_SLABS 4096
#define B_MAX_POOLS 1024
#define B_MAX_CLIENTS 256
#define B_MAX_SHARERS 16
/* Zone of slabs carved from the borrower's own memory: the last resort when a donor
 * leaves and nothing remote can take its pages (never used for ordinary puts). */
#define B_LOCAL_ZONE 0xfffffffeu
#define B_LOCAL_DISTANCE 1000

struct bdonor {
	const struct config_node *cfg;
	bool enabled;              /* Enable-Node(x,1) seen, not disabled since */
	struct rdma_conn *conn;    /* data connection, opened at the first grant */
	uint32_t slabs;            /* slabs of this donor we hold */
};

struct bslab {
	bool used;
	bool lost;                 /* donor failed: data gone */
	struct wire_slab ref;      /* as granted (donor B_LOCAL_ZONE for local ones) */
	struct bdonor *donor;      /* NULL for local slabs */
	void *local;               /* memory of a local slab */
};

struct bclient {
	bool used;
	uint32_t id;
	char name[CONFIG_NAME_LEN];
	bool fixed;                /* target from the config: policy leaves it alone */
	uint64_t target;           /* pages, POLICY_NO_TARGET = unlimited */
	uint64_t pages;            /* pages held now */
	uint64_t puts_total, puts_succ, gets_total, gets_succ, flushes, lost;
	uint64_t last_puts_total, last_puts_succ; /* at the previous interval */
};

struct bpool {
	bool used;
	uint32_t flags;
	uint64_t uuid;
	struct bclient *charge;    /* client whose target the pages count against */
	unsigned nsharers;
	struct bclient *sharers[B_MAX_SHARERS];
	uint64_t pages;
};

struct borrower {
	struct config cfg;
	const struct config_node *self;
	struct evloop *ev;
	struct msgconn *master;
	int reconnect_timer;
	struct rdma_transport *tp;
	struct buddy *alloc;
	struct pindex *index;
	struct clients *clients;
	const struct policy_first_ops *policy;
	struct policy_params params;
	struct bdonor donors[CONFIG_MAX_NODES];
	unsigned n_donors;
	struct bslab slabs[B_MAX_SLABS];  /* handle = index + 1 */
	struct bpool pools[B_MAX_POOLS];
	struct bclient ctab[B_MAX_CLIENTS];
	uint32_t next_client_id;
	uint64_t slab_pages;
	uint64_t mem_limit;               /* pages; POLICY_NO_TARGET = none */
	bool grant_pending;               /* a Grant-Any is out */
	uint64_t grant_sent_ms;
	uint64_t grant_denied_until_ms;   /* do not wait for capacity before this */
	bool leaving;                     /* shutting down: no new grants */
	bool left;                        /* Leave-Notify received */
	bool in_tmem;                     /* inside borrower_tmem: defer heavy messages */
	uint32_t lost_slabs;
	struct deferred *deferred;        /* control messages held back during a batch */
	uint64_t pages_migrated, pages_lost;
	struct store_xq *xq;              /* transport queue (store.c) */
};

/* node.c */
/* node_capacity_wait - no free page: ask the master for more (unless over the
 * memory limit or recently denied) and wait up to @ms for a Grant. true if pages
 * became free. Messages other than Grant that arrive meanwhile are deferred. */
bool node_capacity_wait(struct borrower *b, int ms);
/* node_maybe_grow - ask for capacity ahead of need when free pages run low. */
void node_maybe_grow(struct borrower *b);
/* node_run_deferred - handle control messages held back during a batch. */
void node_run_deferred(struct borrower *b);
/* node_policy_join - the client set changed: recompute initial targets. */
void node_policy_join(struct borrower *b);
/* node_send_return - give slabs back to the master (and so their donors). */
int node_send_return(struct borrower *b, const uint32_t *handles, unsigned n);

/* store.c */
/* store_init - -ENOMEM. store_fini - finish every asynchronous batch, free. */
int store_init(struct borrower *b);
void store_fini(struct borrower *b);
/* store_evacuate_zone - move every page off donor @zone (Force-Return, disable):
 * to other donors, else (persistent pages) to local slabs; then give the slabs
 * back. Returns 0 or -errno. */
int store_evacuate_zone(struct borrower *b, uint32_t zone);
/* store_invalidate_zone - donor @zone failed: its copies are gone; persistent pages
 * with no other copy are marked lost (gets fail with -EIO), ephemeral ones dropped. */
void store_invalidate_zone(struct borrower *b, uint32_t zone);
/* store_slab_alloc / store_slab_release - slab table slots. */
int store_slab_alloc(struct borrower *b);
void store_slab_release(struct borrower *b, uint32_t handle);

#endif
