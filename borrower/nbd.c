/* nbd.c - the borrower's NBD server: exports from the config (or added at run
 * time through nbd-ctl.c) served on a unix socket and (optionally) TCP, from the
 * borrower's event loop.
 *
 * Fixed newstyle negotiation (NBD_OPT_GO, INFO, LIST, ABORT, EXPORT_NAME,
 * STRUCTURED_REPLY, LIST/SET_META_CONTEXT for base:allocation; no TLS), then
 * transmission: READ, WRITE, FLUSH, TRIM, WRITE_ZEROES, BLOCK_STATUS, DISC. Per
 * connection an rx buffer that grows to hold one whole request (header + payload,
 * at most NBD_MAX_PAYLOAD) and a tx buffer for replies. Requests are read without
 * blocking; every complete request in the buffer is validated and the valid ones
 * run as one nbd_export_run batch, whose replies are written into tx in request
 * order, except for commands still waiting for remote memory or backing-file I/O:
 * those (given a buffer of their own for the data, since rx and tx move) are
 * answered by pend_done when it completes (out of order, which the protocol
 * allows; each reply is written whole). A command the export cannot start yet (it
 * touches a block with I/O in flight that it conflicts with) and those after it
 * stay in rx and are parsed again after the export's kick; meanwhile the
 * connection is not read, nor while its commands in flight hold PEND_HIGH bytes.
 * With structured replies a read answers with OFFSET_DATA chunks and, for whole
 * zero blocks, OFFSET_HOLE chunks (unless the client set DF), or an ERROR chunk;
 * BLOCK_STATUS with one BLOCK_STATUS chunk; other commands keep simple replies,
 * which the protocol allows. While too much reply data is unsent the connection is
 * not read, so a client that does not read stalls itself only. A bad request gets
 * an NBD error; a broken stream (bad magic, unknown client flags, an option longer
 * than OPT_MAX) closes the connection. Closing frees the connection's buffers
 * only: the export (and its data) belongs to the server; deferred commands of a
 * closed connection are freed when their I/O completes.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "borrower/borrower-internal.h"
#include "borrower/nbd-proto.h"
#include "borrower/nbd.h"
#include "common/common.h"

#define LOG_AREA "nbd"

#define NBD_MAX_CONNS 64
#define RX_MIN (256u << 10)
#define BUF_SHRINK (4u << 20)          /* give back buffers grown past this when idle */
#define TX_HIGH (8u << 20)             /* do not take requests while this much is unsent */
#define PEND_HIGH (64u << 20)          /* ... or while commands in flight hold this much */
#define BATCH_REQS 128                 /* requests per nbd_export_run */
#define BATCH_READ_BYTES (32u << 20)   /* read data per batch */
#define OPT_MAX 65536u                 /* longest option data accepted */

enum cstate { CS_CFLAGS, CS_OPTS, CS_TRANS, CS_CLOSING };

struct req {
	uint16_t flags, type;
	uint64_t cookie, off;
	uint32_t len;
	uint32_t err;                  /* NBD error found by validation, 0 = run it */
	const uint8_t *payload;        /* WRITE: in rx */
	size_t at;                     /* rx offset of its header (to parse it again) */
	bool deferred;                 /* answered when its backing-file I/O is done */
};

/* A command answered later (nbd_export_wait_arm): its backing-file I/O is in flight. */
struct pend {
	struct nconn *c;               /* NULL once the connection is closed */
	struct pend *next, **pprev;    /* in c->pends */
	struct req r;
	uint8_t *buf;                  /* stable buffer: READ data, WRITE payload copy */
	size_t len;                    /* its size (counted in c->pend_bytes) */
};

struct nconn {
	struct nbd_server *s;
	int fd;
	unsigned idx;                  /* in s->conns */
	uint32_t id;
	char peer[24];                 /* "unix" or "tcp" */
	enum cstate st;
	bool no_zeroes;                /* client set NBD_FLAG_C_NO_ZEROES */
	bool strict_align;             /* client asked for block sizes: enforce minimum */
	bool structured;               /* NBD_OPT_STRUCTURED_REPLY acknowledged */
	struct nbd_export *meta_ex;    /* export base:allocation was set for */
	bool meta_alloc;               /* BLOCK_STATUS may be used (after GO) */
	struct nbd_export *ex;
	uint8_t *rx;                   /* unparsed bytes are rx[rx_off, rx_len) */
	size_t rx_cap, rx_off, rx_len;
	size_t rx_need;                /* bytes the next item needs from rx_off */
	uint64_t skip;                 /* payload of a refused write still to discard */
	struct req skipped;            /* that write: answered once its payload is gone */
	uint8_t *tx;                   /* unsent bytes are tx[tx_off, tx_len) */
	size_t tx_cap, tx_off, tx_len;
	uint32_t events;
	uint64_t nreq, nerr;
	bool stalled;                  /* a command waits for backing-file I/O to finish */
	bool kicked;                   /* a deferred reply was queued: send it */
	bool failed;                   /* no memory for a deferred reply: close */
	struct pend *pends;            /* deferred commands */
	size_t pend_bytes;             /* their buffers and those being set up */
	struct req reqs[BATCH_REQS];
	struct nbd_io ios[BATCH_REQS];
	struct pend *pend[BATCH_REQS]; /* ios[k]'s stable buffer, if any */
	unsigned map[BATCH_REQS];      /* ios[k] runs reqs[map[k]] */
};

struct nbd_server {
	struct borrower *b;
	struct evloop *ev;
	int ufd, tfd;
	char upath[CONFIG_PATH_LEN];
	char taddr[CONFIG_HOST_LEN + 8];
	const struct config *cfg;
	uint32_t node_id;
	struct nbd_ctl *ctl;
	unsigned nexports;
	struct nbd_export *exports[NBD_MAX_EXPORTS];
	bool runtime[NBD_MAX_EXPORTS];  /* added by rtmemctl export add */
	struct nconn *conns[NBD_MAX_CONNS];
	uint32_t next_id;
};

/* ------------------------------------------------ buffers and the socket */

static void conn_close(struct nconn *c, const char *why)
{
	struct nbd_server *s = c->s;

	if (why)
		log_warn("conn %u (%s, export %s): %s, closing", c->id, c->peer,
			 c->ex ? nbd_export_name(c->ex) : "-", why);
	else
		log_info("conn %u (%s, export %s): closed after %llu requests (%llu errors)",
			 c->id, c->peer, c->ex ? nbd_export_name(c->ex) : "-",
			 (unsigned long long)c->nreq, (unsigned long long)c->nerr);
	evloop_del_fd(s->ev, c->fd);
	close(c->fd);
	s->conns[c->idx] = NULL;
	for (struct pend *p = c->pends; p; p = p->next) {
		p->c = NULL; /* freed when its I/O is done */
		p->pprev = NULL;
	}
	free(c->rx);
	free(c->tx);
	free(c);
}

/* tx_reserve - room for @n more bytes at tx + tx_len (not yet counted). NULL if
 * out of memory. */
static uint8_t *tx_reserve(struct nconn *c, size_t n)
{
	if (c->tx_off == c->tx_len) {
		c->tx_off = c->tx_len = 0;
	} else if (c->tx_off && c->tx_cap - c->tx_len < n) {
		memmove(c->tx, c->tx + c->tx_off, c->tx_len - c->tx_off);
		c->tx_len -= c->tx_off;
		c->tx_off = 0;
	}
	if (c->tx_cap - c->tx_len < n) {
		size_t cap = c->tx_cap * 2 > c->tx_len + n ? c->tx_cap * 2 : c->tx_len + n;
		uint8_t *p = realloc(c->tx, cap);

		if (!p)
			return NULL;
		c->tx = p;
		c->tx_cap = cap;
	}
	return c->tx + c->tx_len;
}

/* tx_flush - send what is pending: 0 all sent, 1 socket full, -errno on error. */
static int tx_flush(struct nconn *c)
{
	int rc = net_send_pending(c->fd, c->tx, &c->tx_off, c->tx_len);

	if (rc)
		return rc;
	c->tx_off = c->tx_len = 0;
	if (c->tx_cap > BUF_SHRINK) {
		free(c->tx);
		c->tx = NULL;
		c->tx_cap = 0;
	}
	return 0;
}

/* rx_room - make rx hold at least max(rx_need, RX_MIN) bytes from rx_off, which is
 * moved to 0. -ENOMEM. */
static int rx_room(struct nconn *c)
{
	size_t want = c->rx_need > RX_MIN ? c->rx_need : RX_MIN;

	if (c->rx_off) {
		memmove(c->rx, c->rx + c->rx_off, c->rx_len - c->rx_off);
		c->rx_len -= c->rx_off;
		c->rx_off = 0;
	}
	if (c->rx_cap > BUF_SHRINK && want <= RX_MIN && c->rx_len <= RX_MIN) {
		uint8_t *p = realloc(c->rx, RX_MIN); /* a big write has passed: shrink */

		if (p) {
			c->rx = p;
			c->rx_cap = RX_MIN;
		}
	}
	if (c->rx_cap < want) {
		uint8_t *p = realloc(c->rx, want);

		if (!p)
			return -ENOMEM;
		c->rx = p;
		c->rx_cap = want;
	}
	return 0;
}

/* ------------------------------------------------ negotiation */

static struct nbd_export *find_export(struct nbd_server *s, const uint8_t *name, size_t len)
{
	if (!len) /* the default export: the first one */
		return s->nexports ? s->exports[0] : NULL;
	for (unsigned i = 0; i < s->nexports; i++) {
		const char *n = nbd_export_name(s->exports[i]);

		if (strlen(n) == len && !memcmp(n, name, len))
			return s->exports[i];
	}
	return NULL;
}

static uint16_t trans_flags(const struct nconn *c)
{
	return NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
	       NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_CAN_MULTI_CONN |
	       (c->structured ? NBD_FLAG_SEND_DF : 0);
}

/* opt_reply - one option reply with @len bytes of @data (or a message). */
static int opt_reply(struct nconn *c, uint32_t opt, uint32_t type, const void *data,
		     size_t len)
{
	uint8_t *p = tx_reserve(c, NBD_REP_HDR_SIZE + len);

	if (!p)
		return -ENOMEM;
	wire_put64(p, NBD_REP_MAGIC);
	wire_put32(p + 8, opt);
	wire_put32(p + 12, type);
	wire_put32(p + 16, (uint32_t)len);
	if (len)
		memcpy(p + NBD_REP_HDR_SIZE, data, len);
	c->tx_len += NBD_REP_HDR_SIZE + len;
	return 0;
}

static int opt_error(struct nconn *c, uint32_t opt, uint32_t type, const char *msg)
{
	log_dbg("conn %u: option %u refused (%#x): %s", c->id, opt, type, msg);
	return opt_reply(c, opt, type, msg, strlen(msg));
}

static void enter_transmission(struct nconn *c, struct nbd_export *ex, bool strict)
{
	c->ex = ex;
	c->meta_alloc = c->meta_ex == ex; /* a context set for another export is void */
	c->strict_align = strict;
	c->st = CS_TRANS;
	log_info("conn %u (%s): export %s (%llu bytes)", c->id, c->peer, nbd_export_name(ex),
		 (unsigned long long)nbd_export_size(ex));
}

/* opt_info - NBD_OPT_INFO and NBD_OPT_GO: u32 name length, name, u16 count, u16
 * info types requested. */
static int opt_info(struct nconn *c, uint32_t opt, const uint8_t *d, uint32_t len)
{
	uint8_t buf[2 + 8 + 2 + 3 * 4];
	struct nbd_export *ex;
	bool want_name = false, want_bs = false;
	uint32_t nlen;
	uint16_t n;
	int rc;

	if (len < 6 || (nlen = wire_get32(d)) > len - 6)
		return opt_error(c, opt, NBD_REP_ERR_INVALID, "malformed request");
	n = wire_get16(d + 4 + nlen);
	if ((uint64_t)4 + nlen + 2 + 2ull * n != len)
		return opt_error(c, opt, NBD_REP_ERR_INVALID, "length does not match");
	for (uint16_t i = 0; i < n; i++) {
		uint16_t t = wire_get16(d + 4 + nlen + 2 + 2 * i);

		want_name |= t == NBD_INFO_NAME;
		want_bs |= t == NBD_INFO_BLOCK_SIZE;
	}
	ex = find_export(c->s, d + 4, nlen);
	if (!ex)
		return opt_error(c, opt, NBD_REP_ERR_UNKNOWN, "no such export");
	wire_put16(buf, NBD_INFO_EXPORT);
	wire_put64(buf + 2, nbd_export_size(ex));
	wire_put16(buf + 10, trans_flags(c));
	rc = opt_reply(c, opt, NBD_REP_INFO, buf, 12);
	if (!rc && want_name) {
		const char *name = nbd_export_name(ex);
		uint8_t nb[2 + CONFIG_NAME_LEN];

		wire_put16(nb, NBD_INFO_NAME);
		memcpy(nb + 2, name, strlen(name));
		rc = opt_reply(c, opt, NBD_REP_INFO, nb, 2 + strlen(name));
	}
	if (!rc) { /* sent whether asked or not; enforced only if asked */
		wire_put16(buf, NBD_INFO_BLOCK_SIZE);
		wire_put32(buf + 2, NBD_BLOCK_MIN);
		wire_put32(buf + 6, NBD_BLOCK_PREF);
		wire_put32(buf + 10, NBD_MAX_PAYLOAD);
		rc = opt_reply(c, opt, NBD_REP_INFO, buf, 14);
	}
	if (!rc)
		rc = opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
	if (!rc && opt == NBD_OPT_GO)
		enter_transmission(c, ex, want_bs);
	return rc;
}

/* opt_meta - NBD_OPT_LIST_META_CONTEXT and SET_META_CONTEXT: u32 name length, name,
 * u32 query count, queries (u32 length, string). The one context is
 * base:allocation; LIST with no query or the query "base:" lists it. */
static int opt_meta(struct nconn *c, uint32_t opt, const uint8_t *d, uint32_t len)
{
	static const char ctx[] = NBD_META_BASE_ALLOCATION;
	uint32_t nlen, nq, at;
	struct nbd_export *ex;
	bool match = false;
	int rc = 0;

	if (opt == NBD_OPT_SET_META_CONTEXT && !c->structured)
		return opt_error(c, opt, NBD_REP_ERR_INVALID, "structured replies first");
	if (len < 8 || (nlen = wire_get32(d)) > len - 8)
		return opt_error(c, opt, NBD_REP_ERR_INVALID, "malformed request");
	nq = wire_get32(d + 4 + nlen);
	at = 8 + nlen;
	for (uint32_t i = 0; i < nq; i++) {
		uint32_t ql;

		if (len - at < 4 || (ql = wire_get32(d + at)) > len - at - 4)
			return opt_error(c, opt, NBD_REP_ERR_INVALID, "malformed query");
		if ((ql == sizeof(ctx) - 1 && !memcmp(d + at + 4, ctx, ql)) ||
		    (opt == NBD_OPT_LIST_META_CONTEXT && ql == 5 && !memcmp(d + at + 4, "base:", 5)))
			match = true;
		at += 4 + ql;
	}
	if (at != len)
		return opt_error(c, opt, NBD_REP_ERR_INVALID, "length does not match");
	ex = find_export(c->s, d + 4, nlen);
	if (!ex)
		return opt_error(c, opt, NBD_REP_ERR_UNKNOWN, "no such export");
	if (opt == NBD_OPT_LIST_META_CONTEXT && !nq)
		match = true;
	if (opt == NBD_OPT_SET_META_CONTEXT) {
		c->meta_ex = match ? ex : NULL;
		c->meta_alloc = false;
	}
	if (match) {
		uint8_t b[4 + sizeof(ctx)];

		wire_put32(b, 1); /* context id */
		memcpy(b + 4, ctx, sizeof(ctx) - 1);
		rc = opt_reply(c, opt, NBD_REP_META_CONTEXT, b, 4 + sizeof(ctx) - 1);
	}
	return rc ? rc : opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
}

static int opt_list(struct nconn *c, uint32_t opt, uint32_t len)
{
	int rc = 0;

	if (len)
		return opt_error(c, opt, NBD_REP_ERR_INVALID, "LIST takes no data");
	for (unsigned i = 0; i < c->s->nexports && !rc; i++) {
		const char *name = nbd_export_name(c->s->exports[i]);
		uint8_t b[4 + CONFIG_NAME_LEN];

		wire_put32(b, (uint32_t)strlen(name));
		memcpy(b + 4, name, strlen(name));
		rc = opt_reply(c, opt, NBD_REP_SERVER, b, 4 + strlen(name));
	}
	return rc ? rc : opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
}

/* opt_export_name - the old way in: no reply on failure but a closed connection. */
static int opt_export_name(struct nconn *c, const uint8_t *d, uint32_t len)
{
	struct nbd_export *ex = find_export(c->s, d, len);
	size_t n = 10 + (c->no_zeroes ? 0 : 124);
	uint8_t *p;

	if (!ex) {
		conn_close(c, "NBD_OPT_EXPORT_NAME of an unknown export");
		return -1;
	}
	p = tx_reserve(c, n);
	if (!p)
		return -ENOMEM;
	memset(p, 0, n);
	wire_put64(p, nbd_export_size(ex));
	wire_put16(p + 8, trans_flags(c));
	c->tx_len += n;
	enter_transmission(c, ex, false);
	return 0;
}

/* nego_step - handle one item of the negotiation: 1 handled, 0 need more bytes,
 * -1 connection closed. */
static int nego_step(struct nconn *c)
{
	const uint8_t *p = c->rx + c->rx_off;
	size_t avail = c->rx_len - c->rx_off;
	uint32_t opt, len;
	int rc;

	if (c->st == CS_CFLAGS) {
		uint32_t fl;

		if (avail < 4) {
			c->rx_need = 4;
			return 0;
		}
		fl = wire_get32(p);
		c->rx_off += 4;
		if (fl & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
			conn_close(c, "unknown client flags");
			return -1;
		}
		c->no_zeroes = fl & NBD_FLAG_C_NO_ZEROES;
		c->st = CS_OPTS;
		return 1;
	}
	if (avail < NBD_OPT_HDR_SIZE) {
		c->rx_need = NBD_OPT_HDR_SIZE;
		return 0;
	}
	if (wire_get64(p) != NBD_OPTS_MAGIC) {
		conn_close(c, "bad option magic");
		return -1;
	}
	opt = wire_get32(p + 8);
	len = wire_get32(p + 12);
	if (len > OPT_MAX) {
		conn_close(c, "option data too long");
		return -1;
	}
	if (avail < NBD_OPT_HDR_SIZE + len) {
		c->rx_need = NBD_OPT_HDR_SIZE + len;
		return 0;
	}
	p += NBD_OPT_HDR_SIZE;
	c->rx_off += NBD_OPT_HDR_SIZE + len;
	switch (opt) {
	case NBD_OPT_EXPORT_NAME:
		rc = opt_export_name(c, p, len);
		break;
	case NBD_OPT_ABORT:
		rc = opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
		c->st = CS_CLOSING;
		break;
	case NBD_OPT_LIST:
		rc = opt_list(c, opt, len);
		break;
	case NBD_OPT_INFO:
	case NBD_OPT_GO:
		rc = opt_info(c, opt, p, len);
		break;
	case NBD_OPT_LIST_META_CONTEXT:
	case NBD_OPT_SET_META_CONTEXT:
		rc = opt_meta(c, opt, p, len);
		break;
	case NBD_OPT_STRUCTURED_REPLY:
		if (len) {
			rc = opt_error(c, opt, NBD_REP_ERR_INVALID, "takes no data");
			break;
		}
		c->structured = true;
		rc = opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
		break;
	default:
		rc = opt_error(c, opt, NBD_REP_ERR_UNSUP, "option not supported");
	}
	if (rc == -1)
		return -1; /* closed */
	if (rc < 0) {
		conn_close(c, "out of memory for a reply");
		return -1;
	}
	return 1;
}

/* ------------------------------------------------ transmission */

/* validate - the NBD error for request @r, or 0 if it may run. */
static uint32_t validate(const struct nconn *c, const struct req *r)
{
	uint64_t size = nbd_export_size(c->ex);
	uint16_t allowed = NBD_CMD_FLAG_FUA;
	bool write = r->type == NBD_CMD_WRITE || r->type == NBD_CMD_WRITE_ZEROES;

	switch (r->type) {
	case NBD_CMD_WRITE_ZEROES:
		allowed |= NBD_CMD_FLAG_NO_HOLE;
		break;
	case NBD_CMD_READ:
		if (c->structured)
			allowed |= NBD_CMD_FLAG_DF;
		break;
	case NBD_CMD_WRITE:
	case NBD_CMD_TRIM:
		break;
	case NBD_CMD_FLUSH:
		return r->flags & ~allowed ? NBD_EINVAL : 0;
	case NBD_CMD_BLOCK_STATUS:
		if (!c->meta_alloc || !r->len)
			return NBD_EINVAL;
		allowed = NBD_CMD_FLAG_REQ_ONE;
		break;
	default:
		return NBD_EINVAL; /* unknown command */
	}
	if (r->flags & ~allowed)
		return NBD_EINVAL;
	if ((r->type == NBD_CMD_READ || r->type == NBD_CMD_WRITE) && r->len > NBD_MAX_PAYLOAD)
		return NBD_EINVAL;
	if (c->strict_align && ((r->off | r->len) & (NBD_BLOCK_MIN - 1)))
		return NBD_EINVAL;
	if (r->off > size || r->len > size - r->off)
		return write ? NBD_ENOSPC : NBD_EINVAL;
	return 0;
}

static uint32_t nbd_errno(int err)
{
	switch (err) {
	case 0:
		return 0;
	case -ENOSPC:
		return NBD_ENOSPC;
	case -EINVAL:
		return NBD_EINVAL;
	case -ENOMEM:
		return NBD_ENOMEM;
	default:
		return NBD_EIO;
	}
}

/* hdr_size - bytes reserved in tx ahead of request @r's data: a simple reply
 * header, or for a structured read the OFFSET_DATA chunk header (an error chunk
 * without message fits in it too). */
#define BS_MAX_EXTENTS 64u /* extents in one BLOCK_STATUS reply */

static size_t hdr_size(const struct nconn *c, const struct req *r)
{
	if (r->type == NBD_CMD_BLOCK_STATUS && c->structured)
		return NBD_CHUNK_HDR_SIZE + 4 + 8 * BS_MAX_EXTENTS;
	return c->structured && r->type == NBD_CMD_READ ? NBD_CHUNK_HDR_SIZE + 8
							: NBD_REPLY_SIZE;
}

static void put_chunk(uint8_t *p, uint16_t flags, uint16_t type, uint64_t cookie,
		      uint32_t len)
{
	wire_put32(p, NBD_STRUCTURED_REPLY_MAGIC);
	wire_put16(p + 4, flags);
	wire_put16(p + 6, type);
	wire_put64(p + 8, cookie);
	wire_put32(p + 16, len);
}

/* hole_at - the export block that starts at @off is all of [@off, @end) or more and
 * its bytes at @p are zeros: a hole (never written, trimmed, or written as zeros). */
static bool hole_at(uint64_t off, uint64_t end, const uint8_t *p)
{
	return !(off % NBD_BLOCK_PREF) && end - off >= NBD_BLOCK_PREF && !p[0] &&
	       !memcmp(p, p + 1, NBD_BLOCK_PREF - 1);
}

/* put_read_chunks - the structured reply of read @r: its data lies at @data, the
 * chunks are written from @dst (at most @data - 28, so headers never overtake the
 * data still to move). Whole zero blocks become OFFSET_HOLE chunks unless the
 * client set DF. Returns the bytes written. */
static size_t put_read_chunks(const struct req *r, uint8_t *dst, const uint8_t *data)
{
	uint64_t off = r->off, end = r->off + r->len;
	bool holes = !(r->flags & NBD_CMD_FLAG_DF);
	size_t w = 0;

	if (!r->len) {
		put_chunk(dst, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, r->cookie, 0);
		return NBD_CHUNK_HDR_SIZE;
	}
	while (off < end) {
		const uint8_t *p = data + (off - r->off);
		bool hole = holes && hole_at(off, end, p);
		uint64_t run = off;

		do { /* extend the run over blocks of the same kind */
			uint64_t next = (run / NBD_BLOCK_PREF + 1) * NBD_BLOCK_PREF;

			run = next < end ? next : end;
		} while (holes && run < end &&
			 hole_at(run, end, data + (run - r->off)) == hole);
		if (!holes)
			run = end;
		if (hole) {
			put_chunk(dst + w, run == end ? NBD_REPLY_FLAG_DONE : 0,
				  NBD_REPLY_TYPE_OFFSET_HOLE, r->cookie, 12);
			wire_put64(dst + w + NBD_CHUNK_HDR_SIZE, off);
			wire_put32(dst + w + NBD_CHUNK_HDR_SIZE + 8, (uint32_t)(run - off));
			w += NBD_CHUNK_HDR_SIZE + 12;
		} else {
			size_t n = (size_t)(run - off);

			put_chunk(dst + w, run == end ? NBD_REPLY_FLAG_DONE : 0,
				  NBD_REPLY_TYPE_OFFSET_DATA, r->cookie, (uint32_t)(8 + n));
			wire_put64(dst + w + NBD_CHUNK_HDR_SIZE, off);
			w += NBD_CHUNK_HDR_SIZE + 8;
			if (dst + w != p)
				memmove(dst + w, p, n);
			w += n;
		}
		off = run;
	}
	return w;
}

/* put_block_status - the base:allocation extents of [off, off + len) of request
 * @r (at most BS_MAX_EXTENTS, one with REQ_ONE; they may cover less than len). */
static size_t put_block_status(const struct nconn *c, const struct req *r, uint8_t *dst)
{
	uint64_t off = r->off, end = r->off + r->len;
	unsigned n = 0, max = r->flags & NBD_CMD_FLAG_REQ_ONE ? 1 : BS_MAX_EXTENTS;
	uint8_t *e = dst + NBD_CHUNK_HDR_SIZE + 4;

	while (off < end && n < max) {
		bool zero;
		uint64_t run = nbd_export_zero_run(c->ex, off, end - off, &zero);

		if (run > UINT32_MAX - NBD_BLOCK_PREF + 1) /* lengths are u32 */
			run = UINT32_MAX - NBD_BLOCK_PREF + 1;
		wire_put32(e + 8 * n, (uint32_t)run);
		wire_put32(e + 8 * n + 4, zero ? NBD_STATE_HOLE | NBD_STATE_ZERO : 0);
		off += run;
		n++;
	}
	put_chunk(dst, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS, r->cookie, 4 + 8 * n);
	wire_put32(dst + NBD_CHUNK_HDR_SIZE, 1); /* the context id of base:allocation */
	return NBD_CHUNK_HDR_SIZE + 4 + 8 * n;
}

/* put_reply - the reply of request @r at @dst; a read's data (if it ran and
 * succeeded) is at @data. Returns the bytes written. */
static size_t put_reply(const struct nconn *c, const struct req *r, uint8_t *dst,
			const uint8_t *data, bool has_data)
{
	size_t n = 0;

	if (c->structured && r->type == NBD_CMD_BLOCK_STATUS && !r->err)
		return put_block_status(c, r, dst);
	if (c->structured && (r->type == NBD_CMD_READ || r->type == NBD_CMD_BLOCK_STATUS)) {
		if (!r->err)
			return put_read_chunks(r, dst, data);
		put_chunk(dst, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, r->cookie, 6);
		wire_put32(dst + NBD_CHUNK_HDR_SIZE, r->err);
		wire_put16(dst + NBD_CHUNK_HDR_SIZE + 4, 0); /* no message */
		return NBD_CHUNK_HDR_SIZE + 6;
	}
	if (has_data && !r->err) {
		n = r->len;
		if (dst + NBD_REPLY_SIZE != data)
			memmove(dst + NBD_REPLY_SIZE, data, n);
	}
	wire_put32(dst, NBD_SIMPLE_REPLY_MAGIC);
	wire_put32(dst + 4, r->err);
	wire_put64(dst + 8, r->cookie);
	return NBD_REPLY_SIZE + n;
}

static struct pend *pend_new(struct nconn *c, const struct req *r, size_t buflen)
{
	struct pend *p = calloc(1, sizeof(*p));

	if (p && buflen && !(p->buf = malloc(buflen))) {
		free(p);
		return NULL;
	}
	if (p) {
		p->c = c;
		p->r = *r;
		p->len = buflen;
		c->pend_bytes += buflen;
	}
	return p;
}

static void pend_free(struct pend *p)
{
	if (!p)
		return;
	if (p->c)
		p->c->pend_bytes -= p->len;
	if (p->pprev) { /* in its connection's list */
		*p->pprev = p->next;
		if (p->next)
			p->next->pprev = p->pprev;
	}
	free(p->buf);
	free(p);
}

/* pend_done - the backing-file I/O of a deferred command is done: queue its reply
 * (the kick that follows sends it). */
static void pend_done(void *arg, int err)
{
	struct pend *p = arg;
	struct nconn *c = p ? p->c : NULL;

	if (c) {
		struct req *r = &p->r;
		uint8_t *dst;

		if (!r->err)
			r->err = nbd_errno(err);
		dst = tx_reserve(c, hdr_size(c, r) +
					    (r->type == NBD_CMD_READ && !r->err ? r->len : 0));
		if (dst)
			c->tx_len += put_reply(c, r, dst, p->buf, r->type == NBD_CMD_READ);
		else
			c->failed = true;
		if (r->err)
			c->nerr++;
		c->kicked = true;
	}
	pend_free(p);
}

/* defer - the command of ios[j] (request @r) is answered by pend_done. -ENOMEM. */
static int defer(struct nconn *c, unsigned j, struct req *r)
{
	struct pend *p = c->pend[j] ? c->pend[j] : pend_new(c, r, 0);

	c->pend[j] = NULL;
	if (p) {
		p->r = *r;
		p->next = c->pends;
		p->pprev = &c->pends;
		if (c->pends)
			c->pends->pprev = &p->next;
		c->pends = p;
	}
	nbd_export_wait_arm(c->ios[j].wait, pend_done, p);
	return p ? 0 : -ENOMEM;
}

/* stall - ios[from..m) were not started: parse their requests again once the
 * export's file I/O has moved on. Returns the number of requests to answer now. */
static unsigned stall(struct nconn *c, unsigned from, unsigned m)
{
	unsigned k = c->map[from];

	for (unsigned j = from; j < m; j++) {
		pend_free(c->pend[j]);
		c->pend[j] = NULL;
	}
	c->rx_off = c->reqs[k].at;
	c->skip = 0; /* an oversized write after it is parsed again too */
	c->stalled = true;
	return k;
}

/* run_batch - run the valid requests of reqs[0..n) and append their replies (read
 * data read straight into tx) in request order, except those deferred for file
 * I/O, which are answered when it is done, and those not started (stall). Returns
 * the number of requests handled, or -ENOMEM. */
static int run_batch(struct nconn *c, unsigned n)
{
	size_t need = 0, w = 0, rd = 0;
	unsigned m = 0, nrun, k = 0;
	int rc = 0;
	uint8_t *base;

	for (unsigned i = 0; i < n; i++)
		need += hdr_size(c, &c->reqs[i]) +
			(c->reqs[i].type == NBD_CMD_READ && !c->reqs[i].err ? c->reqs[i].len : 0);
	base = tx_reserve(c, need);
	if (!base)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		struct req *r = &c->reqs[i];
		size_t data = r->type == NBD_CMD_READ && !r->err ? r->len : 0;

		if (!r->err && r->type != NBD_CMD_BLOCK_STATUS) {
			struct nbd_io *io = &c->ios[m];

			*io = (struct nbd_io){
				.type = r->type, .flags = r->flags & ~NBD_CMD_FLAG_DF,
				.off = r->off, .len = r->len,
				.buf = r->type == NBD_CMD_READ ? base + rd + hdr_size(c, r)
							       : (void *)r->payload,
			};
			c->pend[m] = NULL;
			if ((data && nbd_export_stored(c->ex, r->off, r->len)) ||
			    (r->type == NBD_CMD_WRITE && r->len)) {
				/* may complete later: a buffer that stays (rx moves) */
				c->pend[m] = pend_new(c, r, r->len);
				if (!c->pend[m]) {
					for (unsigned j = 0; j < m; j++)
						pend_free(c->pend[j]);
					return -ENOMEM;
				}
				if (!data)
					memcpy(c->pend[m]->buf, r->payload, r->len);
				io->buf = c->pend[m]->buf;
				io->stable = true;
			}
			c->map[m++] = i;
		}
		rd += hdr_size(c, r) + data;
	}
	nrun = m ? nbd_export_run(c->ex, c->ios, m) : 0;
	if (nrun < m)
		n = stall(c, nrun, m);
	for (unsigned j = 0; j < nrun; j++) {
		c->reqs[c->map[j]].err = nbd_errno(c->ios[j].err);
		c->reqs[c->map[j]].deferred = c->ios[j].wait != NULL;
	}
	/* the replies, moved down over the room of failed and deferred reads' data */
	rd = 0;
	for (unsigned i = 0; i < n; i++) {
		struct req *r = &c->reqs[i];
		bool ran = k < nrun && c->map[k] == i;
		size_t data = r->type == NBD_CMD_READ && ran ? r->len : 0;
		struct pend *p = ran ? c->pend[k] : NULL;

		if (ran && r->deferred) {
			rd += hdr_size(c, r) + data;
			k++;
			continue;
		}
		w += put_reply(c, r, base + w, p ? p->buf : base + rd + hdr_size(c, r), data);
		if (p) { /* a stable buffer it did not need after all */
			pend_free(p);
			c->pend[k] = NULL;
		}
		k += ran;
		if (r->err) {
			c->nerr++;
			log_dbg("conn %u: cmd %u off %llu len %u: error %u", c->id, r->type,
				(unsigned long long)r->off, r->len, r->err);
		}
		rd += hdr_size(c, r) + data;
	}
	c->tx_len += w;
	c->nreq += n;
	/* now that tx is settled, the deferred ones (done may run at once) */
	for (unsigned j = 0; j < nrun; j++)
		if (c->ios[j].wait && defer(c, j, &c->reqs[c->map[j]]) && !rc)
			rc = -ENOMEM;
	return rc ? rc : (int)n;
}

/* trans_step - parse the requests buffered (up to a batch) and run them: 1 some
 * handled, 0 need more bytes, -1 closed. */
static int trans_step(struct nconn *c)
{
	size_t read_bytes = 0;
	unsigned n = 0;
	bool disc = false;

	while (n < BATCH_REQS && read_bytes < BATCH_READ_BYTES) {
		size_t avail = c->rx_len - c->rx_off;
		const uint8_t *p = c->rx + c->rx_off;
		struct req *r = &c->reqs[n];

		if (c->skip) {
			size_t k = avail < c->skip ? avail : (size_t)c->skip;

			c->rx_off += k;
			c->skip -= k;
			if (c->skip) {
				c->rx_need = RX_MIN;
				break;
			}
			*r = c->skipped; /* a reply before the whole payload confuses clients */
			n++;
			continue;
		}
		if (avail < NBD_REQ_SIZE) {
			c->rx_need = NBD_REQ_SIZE;
			break;
		}
		if (wire_get32(p) != NBD_REQUEST_MAGIC) {
			conn_close(c, "bad request magic");
			return -1;
		}
		*r = (struct req){
			.flags = wire_get16(p + 4), .type = wire_get16(p + 6),
			.cookie = wire_get64(p + 8), .off = wire_get64(p + 16),
			.len = wire_get32(p + 24), .at = c->rx_off,
		};
		if (r->type == NBD_CMD_WRITE && r->len > NBD_MAX_PAYLOAD) {
			/* refuse it, but stay in step: discard its payload */
			r->err = NBD_EINVAL;
			c->skipped = *r;
			c->skip = r->len;
			c->rx_off += NBD_REQ_SIZE;
			continue;
		}
		if (r->type == NBD_CMD_WRITE) {
			if (avail < NBD_REQ_SIZE + (size_t)r->len) {
				c->rx_need = NBD_REQ_SIZE + (size_t)r->len;
				break;
			}
			r->payload = p + NBD_REQ_SIZE;
			c->rx_off += r->len;
		}
		c->rx_off += NBD_REQ_SIZE;
		if (r->type == NBD_CMD_DISC) {
			disc = true;
			break;
		}
		r->err = validate(c, r);
		if (r->type == NBD_CMD_READ && !r->err)
			read_bytes += r->len;
		n++;
	}
	if (n) {
		int rc = run_batch(c, n);

		if (rc < 0) {
			conn_close(c, "out of memory for replies");
			return -1;
		}
		if ((unsigned)rc < n) /* stalled: the rest (and a DISC) is parsed again */
			disc = false;
		n = (unsigned)rc;
	}
	if (disc) {
		log_dbg("conn %u: NBD_CMD_DISC", c->id);
		c->st = CS_CLOSING;
		return 1;
	}
	return n ? 1 : 0;
}

/* taking - more requests may be taken: not closing or stalled, replies and
 * commands in flight below their bounds (a client cannot make us hold more). */
static bool taking(const struct nconn *c)
{
	return c->st != CS_CLOSING && !c->stalled && c->tx_len - c->tx_off <= TX_HIGH &&
	       c->pend_bytes <= PEND_HIGH;
}

/* serve - handle what is buffered while replies can go out; then wait for input
 * and/or output room as needed. */
static void serve(struct nconn *c)
{
	uint32_t want;
	int rc = 1;

	while (taking(c)) {
		rc = c->st == CS_TRANS ? trans_step(c) : nego_step(c);
		if (rc < 0)
			return; /* closed */
		if (rc == 0)
			break;
	}
	rc = tx_flush(c);
	if (rc < 0) { /* the client went away: not worth a warning */
		conn_close(c, rc == -EPIPE || rc == -ECONNRESET ? NULL : strerror(-rc));
		return;
	}
	if (c->st == CS_CLOSING && rc == 0 && !c->pends) { /* DISC: after every reply */
		conn_close(c, NULL);
		return;
	}
	want = rc ? EPOLLOUT : 0;
	if (taking(c))
		want |= EPOLLIN;
	if (want != c->events) {
		if (evloop_mod_fd(c->s->ev, c->fd, want) < 0) {
			conn_close(c, "cannot change evloop events");
			return;
		}
		c->events = want;
	}
}

/* kick - an export's file I/O completed: send the deferred replies queued, retry
 * the stalled commands. */
static void kick(void *arg)
{
	struct nbd_server *s = arg;

	for (unsigned i = 0; i < NBD_MAX_CONNS; i++) {
		struct nconn *c = s->conns[i];

		if (!c || !(c->stalled || c->kicked || c->failed))
			continue;
		if (c->failed) {
			conn_close(c, "out of memory for a reply");
			continue;
		}
		c->stalled = c->kicked = false;
		serve(c);
	}
}

static void on_conn(struct evloop *ev, int fd, uint32_t events, void *arg)
{
	struct nconn *c = arg;

	if (events & EPOLLIN) {
		ssize_t r;

		if (rx_room(c)) {
			conn_close(c, "out of memory for a request");
			return;
		}
		r = recv(fd, c->rx + c->rx_len, c->rx_cap - c->rx_len, MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
			/* a request cut short is dropped: it was never acknowledged */
			conn_close(c, r == 0 || errno == ECONNRESET ? NULL : strerror(errno));
			return;
		}
		if (r > 0)
			c->rx_len += (size_t)r;
	} else if ((events & (EPOLLERR | EPOLLHUP)) && !(events & EPOLLOUT)) {
		conn_close(c, NULL);
		return;
	}
	serve(c);
}

static void on_listen(struct evloop *ev, int lfd, uint32_t events, void *arg)
{
	struct nbd_server *s = arg;
	bool tcp = lfd == s->tfd;

	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;
		struct nconn *c = NULL;
		uint8_t *g;
		unsigned i = 0;
		int rc;

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warn("accept on %s: %s", tcp ? s->taddr : s->upath,
					 strerror(errno));
			if (errno != EINTR && errno != ECONNABORTED)
				return;
			continue;
		}
		if (tcp)
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		while (i < NBD_MAX_CONNS && s->conns[i])
			i++;
		if (i < NBD_MAX_CONNS)
			c = calloc(1, sizeof(*c));
		if (!c) {
			log_warn("NBD connection refused: %s",
				 i < NBD_MAX_CONNS ? "out of memory" : "too many connections");
			close(fd);
			continue;
		}
		c->s = s;
		c->fd = fd;
		c->idx = i;
		c->id = ++s->next_id;
		c->st = CS_CFLAGS;
		c->events = EPOLLIN;
		snprintf(c->peer, sizeof(c->peer), "%s", tcp ? "tcp" : "unix");
		g = tx_reserve(c, NBD_GREETING_SIZE);
		rc = g ? evloop_add_fd(ev, fd, EPOLLIN, on_conn, c) : -ENOMEM;
		if (rc < 0) {
			log_warn("NBD connection refused: %s", strerror(-rc));
			free(c->tx);
			free(c);
			close(fd);
			continue;
		}
		wire_put64(g, NBD_INIT_MAGIC);
		wire_put64(g + 8, NBD_OPTS_MAGIC);
		wire_put16(g + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
		c->tx_len = NBD_GREETING_SIZE;
		s->conns[i] = c;
		log_dbg("conn %u: accepted on %s", c->id, c->peer);
		serve(c);
	}
}

/* ------------------------------------------------ exports at run time */

static int find_index(const struct nbd_server *s, const char *name)
{
	for (unsigned i = 0; i < s->nexports; i++)
		if (!strcmp(nbd_export_name(s->exports[i]), name))
			return (int)i;
	return -1;
}

static bool name_ok(const char *name)
{
	if (!name[0])
		return false;
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("._:-", *p))
			return false;
	return true;
}

int nbd_add_export(struct nbd_server *s, const struct config_export *e, char *why,
		   size_t len)
{
	struct nbd_export *ex;

	if (!name_ok(e->name)) {
		snprintf(why, len, "bad export name '%s': use letters, digits and ._:-", e->name);
		return -EINVAL;
	}
	if (find_index(s, e->name) >= 0) {
		snprintf(why, len, "export %s exists", e->name);
		return -EEXIST;
	}
	if (!e->size || e->size % NBD_BLOCK_PREF) {
		snprintf(why, len, "export size %llu is not a positive multiple of 4096",
			 (unsigned long long)e->size);
		return -EINVAL;
	}
	if (e->size > NBD_EXPORT_MAX_SIZE) {
		snprintf(why, len, "export size %llu is over the limit of 1 TiB",
			 (unsigned long long)e->size);
		return -EFBIG;
	}
	if (s->nexports == NBD_MAX_EXPORTS) {
		snprintf(why, len, "this borrower serves %u exports already", NBD_MAX_EXPORTS);
		return -ENOSPC;
	}
	ex = nbd_export_new(s->b, e, s->cfg->run_dir, s->node_id);
	if (ex)
		nbd_export_set_kick(ex, kick, s);
	if (!ex) {
		snprintf(why, len, "cannot create export %s (see the borrower's log)", e->name);
		return -EIO;
	}
	s->runtime[s->nexports] = true;
	s->exports[s->nexports++] = ex;
	log_info("export %s added at run time (%llu bytes)", e->name,
		 (unsigned long long)e->size);
	return 0;
}

static unsigned conns_using(const struct nbd_server *s, const struct nbd_export *ex)
{
	unsigned n = 0;

	for (unsigned i = 0; i < NBD_MAX_CONNS; i++)
		n += s->conns[i] && s->conns[i]->ex == ex;
	return n;
}

int nbd_del_export(struct nbd_server *s, const char *name, char *why, size_t len)
{
	int i = find_index(s, name);
	unsigned n;

	if (i < 0) {
		snprintf(why, len, "no export named '%s'", name);
		return -ENOENT;
	}
	n = conns_using(s, s->exports[i]);
	if (n) {
		snprintf(why, len, "export %s is in use by %u connection%s", name, n,
			 n > 1 ? "s" : "");
		return -EBUSY;
	}
	nbd_export_free(s->exports[i]);
	s->nexports--;
	memmove(&s->exports[i], &s->exports[i + 1],
		(s->nexports - (unsigned)i) * sizeof(s->exports[0]));
	memmove(&s->runtime[i], &s->runtime[i + 1],
		(s->nexports - (unsigned)i) * sizeof(s->runtime[0]));
	log_info("export %s deleted", name);
	return 0;
}

void nbd_list_exports(const struct nbd_server *s, struct wire_msg *rep)
{
	rep->export_reply.n_exports = s->nexports;
	for (unsigned i = 0; i < s->nexports; i++) {
		struct wire_export_info *e = &rep->export_reply.exports[i];

		nbd_export_info(s->exports[i], e);
		e->conns = conns_using(s, s->exports[i]);
		e->runtime = s->runtime[i];
	}
}

/* ------------------------------------------------ life cycle */

static int listen_on(struct nbd_server *s, int fd, const char *what)
{
	int fl = fcntl(fd, F_GETFL), rc;

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		log_err("%s: O_NONBLOCK: %s", what, strerror(errno));
		return -errno;
	}
	rc = evloop_add_fd(s->ev, fd, EPOLLIN, on_listen, s);
	if (rc < 0)
		log_err("%s: evloop: %s", what, strerror(-rc));
	return rc;
}

int nbd_start(struct borrower *b, struct evloop *ev, const struct config *cfg,
	      const struct config_node *self, struct nbd_server **out)
{
	struct nbd_server *s;
	int rc = -ENOMEM;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->b = b;
	s->ev = ev;
	s->cfg = cfg;
	s->node_id = self->id;
	s->ufd = s->tfd = -1;
	for (unsigned i = 0; i < cfg->n_exports; i++) {
		const struct config_export *e = &cfg->exports[i];

		if (e->node && e->node != self->id)
			continue;
		s->exports[s->nexports] = nbd_export_new(b, e, cfg->run_dir, self->id);
		if (!s->exports[s->nexports]) {
			rc = -EIO;
			goto out_exports;
		}
		nbd_export_set_kick(s->exports[s->nexports++], kick, s);
	}
	snprintf(s->upath, sizeof(s->upath), "%s", self->nbd_socket);
	s->ufd = net_listen_unix(s->upath);
	if (s->ufd < 0) {
		rc = s->ufd;
		log_err("NBD socket %s: %s", s->upath, strerror(-rc));
		goto out_exports;
	}
	rc = listen_on(s, s->ufd, s->upath);
	if (rc)
		goto out_unix;
	if (self->nbd_host[0]) {
		snprintf(s->taddr, sizeof(s->taddr), "%s:%u", self->nbd_host, self->nbd_port);
		s->tfd = net_listen_tcp(self->nbd_host, self->nbd_port);
		if (s->tfd < 0) {
			rc = s->tfd;
			goto out_unix; /* logged */
		}
		rc = listen_on(s, s->tfd, s->taddr);
		if (rc)
			goto out_tcp;
	}
	rc = nbd_ctl_start(s, ev, s->upath, &s->ctl);
	if (rc)
		goto out_tcp_ev;
	log_info("serving %u NBD export%s on %s%s%s", s->nexports, s->nexports == 1 ? "" : "s",
		 s->upath, s->taddr[0] ? " and tcp " : "", s->taddr);
	*out = s;
	return 0;

out_tcp_ev:
	if (s->tfd >= 0)
		evloop_del_fd(ev, s->tfd);
out_tcp:
	if (s->tfd >= 0)
		close(s->tfd);
out_unix:
	evloop_del_fd(ev, s->ufd);
	close(s->ufd);
	unlink(s->upath);
out_exports:
	for (unsigned i = 0; i < s->nexports; i++)
		nbd_export_free(s->exports[i]);
	if (!s->nexports && rc != -EIO) { /* nothing configured: run without NBD */
		log_warn("no NBD server (and no rtmemctl export): %s", strerror(-rc));
		rc = 0;
	}
	free(s);
	return rc;
}

void nbd_stop(struct nbd_server *s)
{
	if (!s)
		return;
	nbd_ctl_stop(s->ctl);
	for (unsigned i = 0; i < NBD_MAX_CONNS; i++)
		if (s->conns[i])
			conn_close(s->conns[i], NULL);
	evloop_del_fd(s->ev, s->ufd);
	close(s->ufd);
	unlink(s->upath);
	if (s->tfd >= 0) {
		evloop_del_fd(s->ev, s->tfd);
		close(s->tfd);
	}
	for (unsigned i = 0; i < s->nexports; i++)
		nbd_export_free(s->exports[i]);
	free(s);
}
