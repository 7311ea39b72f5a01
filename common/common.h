/* common.h - public interface of rtmem's common module: logging, configuration,
 * the control-plane wire codec, framed message connections and the event loop.
 *
 * Every function returns 0 (or a count) on success and -errno on failure unless
 * its comment says otherwise.
 */
#ifndef RTMEM_COMMON_H
#define RTMEM_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RTM_PAGE_SIZE 4096u
#define RTM_PAGE_SHIFT 12

/* ------------------------------------------------------------------ logging */

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* log_init - name the program and pick the level. The environment variable
 * RTMEM_DEBUG="area1,area2" (or "all") switches on debug output per area at run time;
 * RTMEM_LOG_LEVEL=error|warn|info|debug overrides @level. Lines go to stderr as
 * "prog[pid] LEVEL area: message". Thread-safe. */
void log_init(const char *prog, enum log_level level);
/* log_enabled - true if a message of @level in @area would be printed. */
bool log_enabled(enum log_level level, const char *area);
void log_msg(enum log_level level, const char *area, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Each .c file defines LOG_AREA (a short string such as "master") before using these. */
#define log_err(...) log_msg(LOG_ERROR, LOG_AREA, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, LOG_AREA, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, LOG_AREA, __VA_ARGS__)
#define log_dbg(...)                                                            \
	do {                                                                     \
		if (log_enabled(LOG_DEBUG, LOG_AREA))                            \
			log_msg(LOG_DEBUG, LOG_AREA, __VA_ARGS__);               \
	} while (0)

/* ------------------------------------------------------------ configuration */

#define CONFIG_MAX_NODES 64
#define CONFIG_MAX_CLIENTS 64
#define CONFIG_NAME_LEN 32
#define CONFIG_HOST_LEN 64
#define CONFIG_PATH_LEN 108

enum node_role {
	ROLE_NONE = 0,
	ROLE_DONOR = 1,
	ROLE_BORROWER = 2,
	ROLE_ADMIN = 3, /* rtmemctl: a control connection that is not a node */
	ROLE_MASTER = 4,
};

struct config_node {
	uint32_t id;                  /* 1..UINT32_MAX-1, unique */
	enum node_role role;          /* donor or borrower */
	char host[CONFIG_HOST_LEN];   /* data-plane address (donor: listen) */
	uint16_t port;                /* data-plane TCP port (donor) */
	char hostname[CONFIG_NAME_LEN]; /* physical host, default = host */
	char rack[CONFIG_NAME_LEN];   /* locality: same rack is nearer */
	uint64_t pool_size;           /* donor: bytes lent (multiple of slab_size) */
	int numa_node;                /* donor: NUMA node of the pool, -1 = any */
	char socket_path[CONFIG_PATH_LEN]; /* borrower: unix socket for clients */
	uint64_t mem_limit;           /* borrower: max bytes it may own, 0 = no limit */
	char nbd_socket[CONFIG_PATH_LEN]; /* borrower: NBD unix socket, default
					   * run_dir/nbd-ID.sock */
	char nbd_host[CONFIG_HOST_LEN]; /* borrower: NBD TCP listen address, "" = none */
	uint16_t nbd_port;
};

/* A client named in the config gets a fixed target (static allocation) instead of
 * the first-level policy's one. */
struct config_client {
	char name[CONFIG_NAME_LEN];
	uint64_t target_pages;
};

#define CONFIG_MAX_EXPORTS 16

/* An NBD export ([export.NAME]): served by the borrowers (every one, or the one
 * named by node), backed by a client of that name with a persistent pool. */
struct config_export {
	char name[CONFIG_NAME_LEN];
	uint64_t size;                /* bytes, a multiple of 4 KiB, > 0 */
	uint64_t target_pages;        /* fixed target; POLICY's choice if 0 */
	uint32_t node;                /* borrower serving it, 0 = every borrower */
};

struct config_policy {
	char first[CONFIG_NAME_LEN];  /* greedy|static-alloc|reconf-static|smart-alloc|tlp */
	char second[CONFIG_NAME_LEN]; /* greedy-remote|tlp */
	double p_percent;             /* smart-alloc / TLP step P, percent */
	uint64_t threshold;           /* smart-alloc shrink threshold, pages */
	uint64_t reserve;             /* TLP second level: donor reserve R, pages */
	uint64_t grant_pages;         /* greedy-remote: fixed Grant-Any size, pages */
};

/* [cluster] transport: the data plane's back end (auto = verbs when a device serves
 * the node's address, else TCP). */
enum config_transport {
	CONFIG_TRANSPORT_TCP = 0,
	CONFIG_TRANSPORT_VERBS,
	CONFIG_TRANSPORT_AUTO,
};

struct config {
	char path[CONFIG_PATH_LEN];
	char master_host[CONFIG_HOST_LEN];
	uint16_t master_port;
	uint64_t slab_size;           /* bytes, power of two, >= 1 MiB, default 64 MiB */
	uint32_t stats_interval_ms;   /* default 1000 */
	char run_dir[CONFIG_PATH_LEN]; /* pid files and default sockets */
	enum config_transport transport; /* data plane, default CONFIG_TRANSPORT_TCP */
	struct config_policy policy;
	unsigned n_nodes;
	struct config_node nodes[CONFIG_MAX_NODES];
	unsigned n_clients;
	struct config_client clients[CONFIG_MAX_CLIENTS];
	unsigned n_exports;
	struct config_export exports[CONFIG_MAX_EXPORTS];
};

/* config_load - parse the INI file at @path into @cfg and validate it (required
 * fields, addresses, sizes, duplicate ids, roles). On failure returns -EINVAL (or
 * -errno of open) and writes a one-line reason "path:line: what is wrong" to @err. */
int config_load(const char *path, struct config *cfg, char *err, size_t errlen);
/* config_node - the node with @id, or NULL. */
const struct config_node *config_node(const struct config *cfg, uint32_t id);
/* config_client - the named client's fixed target section, or NULL. */
const struct config_client *config_client(const struct config *cfg, const char *name);
/* config_export - the named export, or NULL. */
const struct config_export *config_export(const struct config *cfg, const char *name);
/* config_distance - 0 same host, 1 same rack, 2 elsewhere (zone ordering). */
int config_distance(const struct config_node *a, const struct config_node *b);
/* config_parse_size - "64M", "1G", "4096", "2k" -> bytes. */
int config_parse_size(const char *s, uint64_t *out);
/* config_parse_addr - "host:port" (IPv4 or name) -> parts. */
int config_parse_addr(const char *s, char *host, size_t hostlen, uint16_t *port);
const char *config_role_name(enum node_role role);

/* ------------------------------------------------------------ wire codec */

#define WIRE_MAGIC 0x52544d4du /* "RTMM" */
#define WIRE_VERSION 1
#define WIRE_HDR_SIZE 8         /* u32 length (whole frame), u16 cmd, u16 flags (0) */
#define WIRE_MAX_FRAME (64u * 1024u)
#define WIRE_MAX_SLABS 128
#define WIRE_MAX_CLIENTS 64
#define WIRE_MAX_NODES CONFIG_MAX_NODES
#define WIRE_MAX_TEXT 200
#define WIRE_MAX_EXPORTS 64
#define WIRE_FEATURES 0u        /* feature bits this build speaks */

/* Command numbers never change meaning. */
enum wire_cmd {
	WIRE_HELLO = 1,           /* any -> M: magic, version, features, node id, role */
	WIRE_HELLO_ACK = 2,       /* M -> any: version, features, status (0 or errno) */
	WIRE_REGISTER = 3,        /* S -> M: node id, role, pages offered (donor) */
	WIRE_STATISTICS = 4,      /* S -> M: node stats + per-client stats */
	WIRE_GRANT_ANY = 5,       /* S -> M: node wants n pages */
	WIRE_GRANT_FWD = 6,       /* M -> donor x: grant n pages to node y */
	WIRE_GRANT = 7,           /* donor -> M -> y: ownership of slabs to node y */
	WIRE_FORCE_RETURN = 8,    /* M -> S: return every slab located at donor x */
	WIRE_RETURN = 9,          /* S -> M -> donor: slabs given back by node y */
	WIRE_MEM_LIMIT = 10,      /* M -> S: node may own at most n pages */
	WIRE_LEAVE_REQ = 11,      /* S -> M (or admin naming node x): x wants to leave */
	WIRE_LEAVE_NOTIFY = 12,   /* M -> S: x has left (Leaving -> Inactive) */
	WIRE_ENABLE_NODE = 13,    /* M -> S: accept (e=1) or reject (e=0) pages at x */
	WIRE_INVALIDATE = 14,     /* S -> M (x = self) or M -> S: pages at x are gone */
	WIRE_INVALIDATE_NOTIFY = 15, /* M -> S: x has been invalidated */
	WIRE_STATUS_REQ = 16,     /* admin -> M */
	WIRE_STATUS_REPLY = 17,   /* M -> admin: nodes and clients */
	WIRE_ERROR = 18,          /* either way: code + text, then the sender closes */
	/* admin -> a borrower's control socket (docs/nbd.md "Exports at run time") */
	WIRE_EXPORT_ADD = 19,     /* name, size, target pages (0 = by policy) */
	WIRE_EXPORT_DEL = 20,     /* name */
	WIRE_EXPORT_LIST = 21,    /* (no body) */
	WIRE_EXPORT_REPLY = 22,   /* borrower -> admin: every export after the change */
	WIRE_CMD_MAX = 23,
};

/* Node states of the thesis (Figure 6.1). */
enum node_state {
	NODE_INACTIVE = 0,
	NODE_ACTIVE = 1,
	NODE_LEAVING = 2,
	NODE_RECOVERY = 3,
};

/* A slab reference: (donor, offset in the donor's pool, length, access key). */
struct wire_slab {
	uint32_t donor;
	uint64_t offset;
	uint64_t length;
	uint64_t key;
};

struct wire_client_stats {
	uint32_t node;            /* borrower owning the client (filled by master in STATUS) */
	uint32_t client;          /* client id within the borrower */
	char name[CONFIG_NAME_LEN]; /* NUL-terminated */
	uint64_t used;            /* pages held now */
	uint64_t target;          /* pages allowed (UINT64_MAX = no target) */
	uint64_t puts_total;      /* cumulative counters */
	uint64_t puts_succ;
	uint64_t gets_total;
	uint64_t gets_succ;
	uint64_t flushes;
};

struct wire_node_status {
	uint32_t id;
	uint8_t role;             /* enum node_role */
	uint8_t state;            /* enum node_state */
	uint8_t connected;        /* 0/1 */
	uint64_t total_pages;     /* pages owned (borrower: granted; donor: pool) */
	uint64_t free_pages;      /* donor: unlent pages; borrower: free pages it owns */
	uint32_t slabs_owned;     /* slabs this node owns (borrower) */
	uint32_t slabs_free;      /* donor: slabs not lent; borrower: 0 */
	uint64_t mem_limit;       /* pages, UINT64_MAX = none */
	uint32_t lost_slabs;      /* slabs invalidated under this node */
};

struct wire_export_info {
	char name[CONFIG_NAME_LEN]; /* NUL-terminated */
	uint64_t size;            /* bytes */
	uint64_t target;          /* pages, 0 = by policy */
	uint64_t remote_blocks;   /* 4 KiB blocks in remote memory */
	uint64_t file_blocks;     /* blocks in the backing file */
	uint32_t conns;           /* NBD connections using it */
	uint8_t runtime;          /* 1 = added at run time, 0 = from the config */
};

struct wire_msg {
	enum wire_cmd cmd;
	union {
		struct {
			uint32_t magic, features, node_id;
			uint16_t version;
			uint8_t role;
		} hello;
		struct {
			uint16_t version;
			uint32_t features;
			uint32_t status;  /* 0 or a positive errno */
		} hello_ack;
		struct {
			uint32_t node_id;
			uint8_t role;
			uint64_t pages;   /* donor: pool pages; borrower: 0 */
			uint64_t slab_size;
		} reg;
		struct {
			uint32_t node_id;
			uint64_t total_pages, free_pages;
			uint32_t n_clients;     /* <= WIRE_MAX_CLIENTS */
			uint32_t lost_slabs;
			struct wire_client_stats clients[WIRE_MAX_CLIENTS];
		} stats;
		struct {
			uint32_t node_id;       /* requester */
			uint64_t pages;
		} grant_any;
		struct {
			uint32_t donor, to; /* forward to donor: grant @pages to node @to */
			uint64_t pages;
		} grant_fwd;
		struct {
			uint32_t to;            /* node receiving ownership */
			uint32_t n_slabs;       /* <= WIRE_MAX_SLABS */
			struct wire_slab slabs[WIRE_MAX_SLABS];
		} grant;
		struct {
			uint32_t donor;         /* return everything located at donor */
		} force_return;
		struct {
			uint32_t from;          /* node giving the slabs back */
			uint32_t n_slabs;
			struct wire_slab slabs[WIRE_MAX_SLABS];
		} ret;
		struct {
			uint32_t node_id;
			uint64_t pages;         /* UINT64_MAX = unlimited */
		} mem_limit;
		struct {
			uint32_t node_id;
		} leave_req, leave_notify, invalidate, invalidate_notify;
		struct {
			uint32_t node_id;
			uint8_t enable;
		} enable_node;
		struct {
			uint32_t n_nodes;       /* <= WIRE_MAX_NODES */
			uint32_t n_clients;     /* <= WIRE_MAX_CLIENTS */
			struct wire_node_status nodes[WIRE_MAX_NODES];
			struct wire_client_stats clients[WIRE_MAX_CLIENTS];
		} status;
		struct {
			char name[CONFIG_NAME_LEN];
			uint64_t size;          /* bytes (ADD only) */
			uint64_t target;        /* pages, 0 = by policy (ADD only) */
		} export_req;                   /* EXPORT_ADD, EXPORT_DEL (name only) */
		struct {
			uint32_t n_exports;     /* <= WIRE_MAX_EXPORTS */
			struct wire_export_info exports[WIRE_MAX_EXPORTS];
		} export_reply;
		struct {
			uint32_t code;          /* positive errno */
			char text[WIRE_MAX_TEXT + 1]; /* NUL-terminated */
		} error;
	};
};

/* wire_encode - write @m as one frame into @buf. Returns the frame length or
 * -EINVAL (field out of range) / -ENOSPC (@cap too small). */
int wire_encode(const struct wire_msg *m, uint8_t *buf, size_t cap);
/* wire_decode - decode one frame from @buf. Returns the frame length consumed,
 * 0 if @len does not yet hold a whole frame, or -EBADMSG (bad length, trailing or
 * missing bytes, count out of range, unterminated string), -EPROTO (unknown command,
 * non-zero flags). Nothing in @m is valid unless the return is > 0. */
int wire_decode(const uint8_t *buf, size_t len, struct wire_msg *m);
const char *wire_cmd_name(int cmd);
const char *wire_state_name(int state);
/* wire_hello - fill a HELLO for this build. */
void wire_hello(struct wire_msg *m, uint32_t node_id, enum node_role role);
/* wire_check_hello - validate a received HELLO: -EPROTO on bad magic,
 * -EPROTONOSUPPORT on version mismatch, -EINVAL on bad role. */
int wire_check_hello(const struct wire_msg *m);

/* Big-endian helpers shared by every codec in the tree. */
void wire_put16(uint8_t *p, uint16_t v);
void wire_put32(uint8_t *p, uint32_t v);
void wire_put64(uint8_t *p, uint64_t v);
uint16_t wire_get16(const uint8_t *p);
uint32_t wire_get32(const uint8_t *p);
uint64_t wire_get64(const uint8_t *p);

/* ---------------------------------------------- framed message connections */

/* A msgconn wraps a connected stream socket carrying wire frames: non-blocking
 * reads into a buffer, whole-frame sends. */
struct msgconn;

/* msgconn_new - take ownership of @fd (made non-blocking). @peer names the peer in logs. */
struct msgconn *msgconn_new(int fd, const char *peer);
/* msgconn_free - close the socket and free. NULL is fine. */
void msgconn_free(struct msgconn *c);
int msgconn_fd(const struct msgconn *c);
const char *msgconn_peer(const struct msgconn *c);
/* msgconn_fill - read what the socket has. 0 ok (maybe nothing), -ECONNRESET on
 * EOF, -errno on error. */
int msgconn_fill(struct msgconn *c);
/* msgconn_next - decode the next buffered message into @m: 1 got one, 0 need more,
 * -errno as wire_decode (the connection should then be closed). */
int msgconn_next(struct msgconn *c, struct wire_msg *m);
/* msgconn_send - encode and write the whole frame (waits with poll up to 5 s while
 * the socket is full). */
int msgconn_send(struct msgconn *c, const struct wire_msg *m);
/* msgconn_recv - blocking helper for clients: wait up to @timeout_ms for a whole
 * message. -ETIMEDOUT, -ECONNRESET, or decode errors. */
int msgconn_recv(struct msgconn *c, struct wire_msg *m, int timeout_ms);
/* msgconn_send_error - best-effort WIRE_ERROR with @code and printf text. */
void msgconn_send_error(struct msgconn *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Socket helpers: TCP listen/connect on host:port (IPv4/IPv6/names), unix sockets.
 * All return an fd or -errno; CLOEXEC set. */
int net_listen_tcp(const char *host, uint16_t port);
int net_connect_tcp(const char *host, uint16_t port, int timeout_ms);
int net_listen_unix(const char *path);     /* unlinks a stale socket first */
int net_connect_unix(const char *path);
/* net_send_fd / net_recv_fd - pass one fd plus @len bytes over a unix socket. */
int net_send_fd(int sock, int fd, const void *buf, size_t len);
int net_recv_fd(int sock, int *fd, void *buf, size_t len);
/* full blocking I/O loops: 0 or -errno (-ECONNRESET on EOF). */
int net_write_full(int fd, const void *buf, size_t len);
/* net_send_pending - non-blocking send of buf[*off, len), advancing *off: 0 all sent,
 * 1 the socket is full (wait for EPOLLOUT), -errno on error. */
int net_send_pending(int fd, const void *buf, size_t *off, size_t len);
int net_read_full(int fd, void *buf, size_t len);

/* ------------------------------------------------------------ event loop */

struct evloop;
typedef void (*evloop_fd_cb)(struct evloop *ev, int fd, uint32_t events, void *arg);
typedef void (*evloop_timer_cb)(struct evloop *ev, void *arg);

struct evloop *evloop_new(void);
void evloop_free(struct evloop *ev);
/* @events are EPOLLIN/EPOLLOUT/...; the callback gets what fired. */
int evloop_add_fd(struct evloop *ev, int fd, uint32_t events, evloop_fd_cb cb, void *arg);
int evloop_mod_fd(struct evloop *ev, int fd, uint32_t events);
/* evloop_del_fd - safe to call from inside any callback, also for the fd whose
 * callback is running; a removed fd gets no further callbacks in this iteration. */
int evloop_del_fd(struct evloop *ev, int fd);
/* evloop_add_timer - call @cb after @ms, and every @ms if @periodic. Returns a timer
 * id (> 0) or -errno. */
int evloop_add_timer(struct evloop *ev, unsigned ms, bool periodic, evloop_timer_cb cb,
		     void *arg);
int evloop_del_timer(struct evloop *ev, int id);
/* evloop_on_signal - SIGINT/SIGTERM/SIGHUP... delivered through signalfd to @cb
 * (the signal number is passed in place of events). */
int evloop_on_signal(struct evloop *ev, int signo, evloop_fd_cb cb, void *arg);
/* evloop_run - dispatch until evloop_stop. Returns 0 or -errno. */
int evloop_run(struct evloop *ev);
void evloop_stop(struct evloop *ev);
/* now in milliseconds, CLOCK_MONOTONIC */
uint64_t evloop_now_ms(void);

/* ------------------------------------------------------------ misc */

/* rtm_checksum - 64-bit FNV-1a of @len bytes, used to stamp test pages. */
uint64_t rtm_checksum(const void *buf, size_t len);
/* rtm_random64 - from getrandom(2). */
uint64_t rtm_random64(void);

/* Fault injection: RTMEM_FAULT="name[:count],name2" makes rtm_fault("name") return
 * true (count times, or always). Lets tests break named operations on purpose. */
bool rtm_fault(const char *name);

#endif
