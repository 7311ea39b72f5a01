/* master-internal.h - state shared by the files of rtmem-master: connections
 * (master.c) and the node state machine with the slab ownership table (nodes.c).
 */
#ifndef RTMEM_MASTER_INTERNAL_H
#define RTMEM_MASTER_INTERNAL_H

#include "common/common.h"
#include "policy/policy.h"

#define MASTER_MAX_CONNS 256
#define MASTER_HELLO_TIMEOUT_MS 10000
#define MASTER_PENDING_MS 10000 /* how long a Grant-Fwd's pages stay reserved */
#define MASTER_MAX_SLABS_PER_DONOR (1u << 22)

struct master;

/* One accepted control connection. */
struct mconn {
	struct master *m;
	struct msgconn *mc;
	uint32_t node_id;     /* 0 until HELLO, and for admins */
	enum node_role role;  /* ROLE_NONE until HELLO */
	uint64_t since_ms;    /* accept time (HELLO timeout) */
	bool dead;            /* closed (and its node dropped) at the next reap */
	struct mconn *next;
};

/* A donor slab as the master sees it. */
struct mslab {
	uint32_t owner;       /* borrower owning it, 0 = free */
	uint64_t key;         /* access key of the grant (relayed in RETURNs we make) */
};

/* One configured node. */
struct mnode {
	const struct config_node *cfg;
	enum node_state state;
	struct mconn *conn;   /* NULL when not connected */
	uint64_t mem_limit;   /* pages, UINT64_MAX = none */
	uint32_t lost_slabs;  /* slabs invalidated under this node (borrower) */
	bool enabled;         /* admin ENABLE_NODE: donor may serve grants */
	struct wire_msg *stats; /* last STATISTICS, NULL if none since connect */
	/* donor */
	uint64_t slab_size;   /* bytes, from REGISTER */
	uint32_t n_slabs;
	struct mslab *slabs;  /* n_slabs entries, NULL before REGISTER */
	uint32_t slabs_lent;
	uint64_t reserved;    /* pages promised in Grant-Fwds not yet granted */
	uint64_t reserved_until;
	/* borrower */
	uint32_t slabs_owned;
	uint64_t pages_owned;
	uint64_t pending;     /* pages forwarded for it, not yet granted */
	uint64_t pending_until;
};

struct master {
	struct config cfg;
	const struct policy_second_ops *policy;
	struct policy_params pp;
	struct evloop *ev;
	int listen_fd;
	struct mconn *conns;
	unsigned n_conns;
	struct mnode nodes[CONFIG_MAX_NODES]; /* parallel to cfg.nodes */
};

/* master.c */
/* master_send - send @msg on @c; on failure the connection is marked dead. */
int master_send(struct mconn *c, const struct wire_msg *msg);
/* master_node_send - send to a node if it is connected (0 if not). */
int master_node_send(struct mnode *n, const struct wire_msg *msg);

/* nodes.c - handlers for messages of a node that passed HELLO. A handler returns
 * 0, or -errno for a request the sender should be told about (admins get a WIRE_ERROR
 * and are closed; for nodes the master logs and ignores the message). */
void master_nodes_init(struct master *m);
void master_nodes_fini(struct master *m);
struct mnode *master_node(struct master *m, uint32_t id);
int master_on_register(struct master *m, struct mnode *n, const struct wire_msg *msg);
int master_on_statistics(struct master *m, struct mnode *n, const struct wire_msg *msg);
int master_on_grant_any(struct master *m, struct mnode *n, const struct wire_msg *msg);
int master_on_grant(struct master *m, struct mnode *n, const struct wire_msg *msg);
int master_on_return(struct master *m, struct mnode *n, const struct wire_msg *msg);
/* master_leave - Leave-Req for node @id (from itself or an admin). */
int master_leave(struct master *m, uint32_t id);
/* master_invalidate - pages at donor @id are gone (self, admin or failure). */
int master_invalidate(struct master *m, uint32_t id);
int master_set_mem_limit(struct master *m, uint32_t id, uint64_t pages);
int master_enable(struct master *m, uint32_t id, bool enable);
/* master_node_lost - @n's connection is gone (already detached). */
void master_node_lost(struct master *m, struct mnode *n);
/* master_status - fill a STATUS_REPLY. */
void master_status(struct master *m, struct wire_msg *out);

#endif
