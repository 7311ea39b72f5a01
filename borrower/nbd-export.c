/* nbd-export.c - the data of an NBD export: its 4 KiB blocks are pages of a
 * persistent tmem pool owned by a borrower client named after the export (object
 * id = block >> 20, index = the low 20 bits), so they live in remote slabs within
 * the client's target. A put the store refuses (over target, no remote capacity,
 * transport error) sends the block to the export's sparse backing file instead; a
 * one-byte-per-block map says where each block is (never written = zeros, remote,
 * file, or bad after a failed write). A block written again tries remote memory
 * first, so blocks move back when capacity returns.
 *
 * Commands are executed with the effect of running them in order, but the pages of
 * consecutive commands go to the store in one batch, each page at most once (a
 * command touching a page already in the batch sends the batch off first).
 *
 * Both remote memory and the backing file are asynchronous. A batch whose buffers
 * stay valid (the server gives each command a stable buffer) goes to
 * borrower_tmem_async: its page ops complete in the event loop (on_remote), a
 * refused or failed put then goes to the file. The file is written (and, into
 * stable buffers, read) through io_uring, its completions arrive on the ring's
 * eventfd. A command with page ops or file I/O in flight has a struct nbd_wait and
 * is answered when the last one completes, so the commands behind it do not wait
 * for it. In the map, BLK_BUSY marks a block with a remote write or file I/O in
 * flight, a count (BLK_READ) the remote reads in flight: a command touching a busy
 * block, a write touching a block being read (or a FLUSH while remote writes, file
 * writes or syncs are in flight) is not started: nbd_export_run stops there and the
 * server gives it again after a completion. Reads may overlap reads. Written pages
 * are copied for the ring; a partial block is read-modified-written synchronously.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "borrower/borrower-core.h"
#include "borrower/nbd-proto.h"
#include "borrower/nbd.h"

#define LOG_AREA "nbd"

#define PAGE ((uint64_t)RTM_PAGE_SIZE)
#define BATCH_MAX 8192u /* pages: a 32 MiB command is one store batch */
#define SET_SLOTS 16384u /* open-addressing set of the blocks in the batch */
#define RING_QD 256u
#define INFLIGHT_MAX 4096u /* file ops in flight per export; beyond, I/O is synchronous */

enum blk_state { BLK_ZERO = 0, BLK_REMOTE = 1, BLK_FILE = 2, BLK_BAD = 3 };
#define BLK_STATE 0x03u
#define BLK_BUSY 0x80u /* map flag: a remote write or backing-file I/O in flight */
#define BLK_READ 0x04u /* map: remote reads in flight on the block, times this */
#define BLK_RMASK 0x7cu /* (at most 31: then the next read waits) */

/* The file I/O of one command still in flight. */
struct nbd_wait {
	unsigned pending;           /* ring ops not completed */
	int err;                    /* first error of those */
	nbd_done_fn *done;          /* set by nbd_export_wait_arm */
	void *arg;
};

enum fop_kind { FOP_WRITE, FOP_READ, FOP_SYNC };

/* One ring operation (its user_data). */
struct fop {
	struct nbd_wait *w;
	enum fop_kind kind;
	uint64_t blk;
	void *page;                 /* FOP_WRITE: our copy, freed on completion */
};

struct bmeta {
	struct nbd_io *io; /* command the page belongs to (errors go there) */
	uint64_t blk;
};

struct nbd_export {
	struct borrower *b;
	struct bclient *c;
	uint32_t pool;
	char name[CONFIG_NAME_LEN];
	uint64_t size, nblocks, target;
	uint8_t *map;                   /* enum blk_state per block */
	uint64_t count[4];              /* blocks in each state */
	int fd;                         /* backing file */
	char path[CONFIG_PATH_LEN + 64];
	bool dirty;                     /* file written since the last fdatasync */
	struct io_uring ring;
	int efd;                        /* eventfd of the ring's completions */
	unsigned inflight;              /* ring ops in flight */
	unsigned inflight_writes;       /* of which writes and syncs (a FLUSH waits) */
	unsigned remote;                /* remote page gets and puts in flight */
	unsigned remote_writes;         /* of which puts (a FLUSH waits) */
	bool unstable;                  /* the batch has a page the caller reuses */
	unsigned unsubmitted;           /* SQEs prepared, not yet submitted */
	void (*kick)(void *);           /* after completions: stalled commands may go */
	void *kick_arg;
	unsigned nops;                  /* the batch: */
	struct tmem_op ops[BATCH_MAX];
	struct bmeta meta[BATCH_MAX];
	uint64_t set[SET_SLOTS];        /* block + 1 of pages written, 0 = empty */
	uint32_t set_at[BATCH_MAX];     /* slots in use, to clear them */
	unsigned nset;
};

static const uint8_t zero_page[RTM_PAGE_SIZE];

/* ------------------------------------------------ block map and backing file */

static enum blk_state state_of(const struct nbd_export *ex, uint64_t blk)
{
	return (enum blk_state)(ex->map[blk] & BLK_STATE);
}

static void set_state(struct nbd_export *ex, uint64_t blk, enum blk_state st)
{
	ex->count[state_of(ex, blk)]--;
	ex->count[st]++;
	ex->map[blk] = (uint8_t)((ex->map[blk] & ~BLK_STATE) | st);
}

static void seterr(struct nbd_io *io, int err)
{
	if (!io->err)
		io->err = err;
}

static int file_write(struct nbd_export *ex, uint64_t blk, const void *buf)
{
	size_t done = 0;

	while (done < PAGE) {
		ssize_t r = pwrite(ex->fd, (const char *)buf + done, PAGE - done,
				   (off_t)(blk * PAGE + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int err = r < 0 ? -errno : -EIO;

			log_err("export %s: writing block %llu to %s: %s", ex->name,
				(unsigned long long)blk, ex->path, strerror(-err));
			return err;
		}
		done += (size_t)r;
	}
	ex->dirty = true;
	return 0;
}

static int file_read(struct nbd_export *ex, uint64_t blk, void *buf)
{
	size_t done = 0;

	while (done < PAGE) {
		ssize_t r = pread(ex->fd, (char *)buf + done, PAGE - done,
				  (off_t)(blk * PAGE + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			log_err("export %s: reading block %llu from %s: %s", ex->name,
				(unsigned long long)blk, ex->path, strerror(errno));
			return -EIO;
		}
		if (r == 0) { /* beyond EOF cannot happen (file has the export's size) */
			memset((char *)buf + done, 0, PAGE - done);
			break;
		}
		done += (size_t)r;
	}
	return 0;
}

/* punch - free blocks [@first, @first + @n) of the file. The map no longer points
 * there, so a failure only costs disk space. */
static void punch(struct nbd_export *ex, uint64_t first, uint64_t n)
{
	if (fallocate(ex->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)(first * PAGE), (off_t)(n * PAGE)) < 0)
		log_dbg("export %s: punching blocks %llu+%llu: %s", ex->name,
			(unsigned long long)first, (unsigned long long)n, strerror(errno));
}

static int file_sync(struct nbd_export *ex)
{
	if (!ex->dirty)
		return 0;
	if (fdatasync(ex->fd) < 0) {
		log_err("export %s: fdatasync %s: %s", ex->name, ex->path, strerror(errno));
		return -EIO;
	}
	ex->dirty = false;
	return 0;
}

/* ------------------------------------------------ the ring */

static struct nbd_wait *wait_of(struct nbd_io *io)
{
	if (!io->wait)
		io->wait = calloc(1, sizeof(*io->wait));
	return io->wait;
}

static void wait_finish(struct nbd_wait *w)
{
	if (w->pending || !w->done)
		return;
	w->done(w->arg, w->err);
	free(w);
}

/* fop_start - an SQE for a new op of @io on block @blk, or NULL (the ring is full,
 * too much is in flight, out of memory): the caller does the I/O synchronously. */
static struct io_uring_sqe *fop_start(struct nbd_export *ex, struct nbd_io *io,
				      enum fop_kind kind, uint64_t blk, void *page)
{
	struct io_uring_sqe *sqe;
	struct fop *f;

	if (ex->inflight >= INFLIGHT_MAX || !wait_of(io))
		return NULL;
	sqe = io_uring_get_sqe(&ex->ring);
	if (!sqe && io_uring_submit(&ex->ring) >= 0) {
		ex->unsubmitted = 0;
		sqe = io_uring_get_sqe(&ex->ring);
	}
	f = sqe ? malloc(sizeof(*f)) : NULL;
	if (!f) {
		if (sqe) /* give the SQE back as a no-op without completion handling */
			io_uring_prep_nop(sqe), io_uring_sqe_set_data(sqe, NULL);
		return NULL;
	}
	*f = (struct fop){ .w = io->wait, .kind = kind, .blk = blk, .page = page };
	io_uring_sqe_set_data(sqe, f);
	io->wait->pending++;
	ex->inflight++;
	ex->unsubmitted++;
	if (kind != FOP_READ)
		ex->inflight_writes++;
	if (kind != FOP_SYNC)
		ex->map[blk] |= BLK_BUSY;
	return sqe;
}

/* file_write_async - block @blk (@buf, copied) to the file through the ring; the
 * map says BLK_FILE at once (BLK_BAD if the write fails). Synchronous if the ring
 * cannot take it. */
static int file_write_async(struct nbd_export *ex, struct nbd_io *io, uint64_t blk,
			    const void *buf)
{
	void *page = malloc(PAGE);
	struct io_uring_sqe *sqe = page ? fop_start(ex, io, FOP_WRITE, blk, page) : NULL;

	if (!sqe) {
		free(page);
		return file_write(ex, blk, buf);
	}
	memcpy(page, buf, PAGE);
	io_uring_prep_write(sqe, ex->fd, page, (unsigned)PAGE, blk * PAGE);
	if (io->flags & NBD_CMD_FLAG_FUA)
		sqe->rw_flags = RWF_DSYNC;
	else
		ex->dirty = true;
	return 0;
}

/* file_read_async - block @blk into @buf (kept by the caller until done). */
static int file_read_async(struct nbd_export *ex, struct nbd_io *io, uint64_t blk, void *buf)
{
	struct io_uring_sqe *sqe = fop_start(ex, io, FOP_READ, blk, NULL);

	if (!sqe)
		return file_read(ex, blk, buf);
	io_uring_prep_read(sqe, ex->fd, buf, (unsigned)PAGE, blk * PAGE);
	return 0;
}

/* file_sync_async - fdatasync through the ring if the file is dirty; @io answers
 * once it is done. */
static int file_sync_async(struct nbd_export *ex, struct nbd_io *io)
{
	struct io_uring_sqe *sqe;

	if (!ex->dirty)
		return 0;
	sqe = fop_start(ex, io, FOP_SYNC, 0, NULL);
	if (!sqe)
		return file_sync(ex);
	io_uring_prep_fsync(sqe, ex->fd, IORING_FSYNC_DATASYNC);
	ex->dirty = false; /* set again if the sync fails */
	return 0;
}

static void fop_complete(struct nbd_export *ex, struct fop *f, int res)
{
	int err = 0;

	ex->inflight--;
	if (f->kind != FOP_READ)
		ex->inflight_writes--;
	if (f->kind != FOP_SYNC)
		ex->map[f->blk] &= (uint8_t)~BLK_BUSY;
	if (res < 0 || (f->kind != FOP_SYNC && res != (int)PAGE)) {
		err = res < 0 ? res : -EIO;
		log_err("export %s: %s %s%llu of %s: %s", ex->name,
			f->kind == FOP_SYNC ? "fdatasync" : f->kind == FOP_READ ? "reading"
										  : "writing",
			f->kind == FOP_SYNC ? "" : "block ",
			(unsigned long long)(f->kind == FOP_SYNC ? 0 : f->blk), ex->path,
			res < 0 ? strerror(-res) : "short transfer");
		if (f->kind == FOP_WRITE)
			set_state(ex, f->blk, BLK_BAD);
		if (f->kind == FOP_SYNC)
			ex->dirty = true;
		err = -EIO;
	}
	if (err && !f->w->err)
		f->w->err = err;
	f->w->pending--;
	wait_finish(f->w);
	free(f->page);
	free(f);
}

/* reap - handle every completion on the ring. Returns how many. */
static unsigned reap(struct nbd_export *ex)
{
	struct io_uring_cqe *cqe;
	unsigned n = 0;

	while (io_uring_peek_cqe(&ex->ring, &cqe) == 0) {
		struct fop *f = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&ex->ring, cqe);
		if (f)
			fop_complete(ex, f, res);
		n++;
	}
	return n;
}

static void on_ring(struct evloop *ev, int fd, uint32_t events, void *arg)
{
	struct nbd_export *ex = arg;
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("export %s: eventfd: %s", ex->name, strerror(errno));
	if (reap(ex) && ex->kick)
		ex->kick(ex->kick_arg);
}

static void ring_submit(struct nbd_export *ex)
{
	int rc;

	if (!ex->unsubmitted)
		return;
	rc = io_uring_submit(&ex->ring);
	if (rc < 0) /* the SQEs stay queued: the next submit retries them */
		log_warn("export %s: io_uring_submit: %s", ex->name, strerror(-rc));
	else
		ex->unsubmitted = 0;
}

void nbd_export_wait_arm(struct nbd_wait *w, nbd_done_fn *done, void *arg)
{
	w->done = done;
	w->arg = arg;
	wait_finish(w);
}

bool nbd_export_stored(const struct nbd_export *ex, uint64_t off, uint32_t len)
{
	uint64_t first = off / PAGE, end = (off + len + PAGE - 1) / PAGE;

	for (uint64_t b = first; b < end; b++)
		if (ex->map[b])
			return true;
	return false;
}

/* ------------------------------------------------ the batch */

static uint32_t slot_of(uint64_t blk)
{
	return (uint32_t)((blk * 0x9e3779b97f4a7c15ull) >> 52) & (SET_SLOTS - 1);
}

static bool set_has(const struct nbd_export *ex, uint64_t blk)
{
	for (uint32_t i = slot_of(blk);; i = (i + 1) & (SET_SLOTS - 1)) {
		if (!ex->set[i])
			return false;
		if (ex->set[i] == blk + 1)
			return true;
	}
}

static void set_add(struct nbd_export *ex, uint64_t blk)
{
	uint32_t i = slot_of(blk);

	while (ex->set[i])
		i = (i + 1) & (SET_SLOTS - 1);
	ex->set[i] = blk + 1;
	ex->set_at[ex->nset++] = i;
}

/* op_settle - the store is done with page op @o of command @m->io: a refused or
 * failed put goes to the backing file. */
static void op_settle(struct nbd_export *ex, const struct tmem_op *o, const struct bmeta *m)
{
	switch (o->cmd) {
	case TMEM_GET:
		if (o->status) {
			log_warn("export %s: block %llu: remote read failed: %s", ex->name,
				 (unsigned long long)m->blk, strerror(-o->status));
			seterr(m->io, -EIO);
		}
		break;
	case TMEM_PUT:
		if (!o->status) {
			if (state_of(ex, m->blk) == BLK_FILE)
				punch(ex, m->blk, 1);
			set_state(ex, m->blk, BLK_REMOTE);
		} else if (!file_write_async(ex, m->io, m->blk, o->page)) {
			set_state(ex, m->blk, BLK_FILE);
		} else {
			set_state(ex, m->blk, BLK_BAD);
			seterr(m->io, -EIO);
		}
		break;
	default: /* TMEM_FLUSH_PAGE: the map already says zero */
		break;
	}
}

/* A page op in flight: its command's nbd_io is reused by the next batch, so
 * what the completion needs is kept here. */
struct rmeta {
	struct nbd_wait *w;             /* of the command */
	uint64_t blk;
	uint16_t flags;                 /* of the command (FUA for a spill) */
};

/* A batch of page ops in the store (borrower_tmem_async). */
struct rbatch {
	struct nbd_export *ex;
	unsigned left;                  /* ops in flight */
	struct tmem_op *ops;
	struct rmeta *meta;
};

/* on_remote - a page op of @arg completed (@o; NULL: the end of a round of them). */
static void on_remote(void *arg, struct tmem_op *o)
{
	struct rbatch *rb = arg;
	struct nbd_export *ex = rb->ex;
	struct rmeta *m;
	struct nbd_io io = { 0 };

	if (!o) {
		ring_submit(ex);
		if (!rb->left)
			free(rb);
		if (ex->kick)
			ex->kick(ex->kick_arg);
		return;
	}
	m = &rb->meta[o - rb->ops];
	ex->remote--;
	if (o->cmd == TMEM_PUT) {
		ex->map[m->blk] &= (uint8_t)~BLK_BUSY;
		ex->remote_writes--;
	} else {
		ex->map[m->blk] -= BLK_READ;
	}
	io.flags = m->flags;
	io.wait = m->w;
	op_settle(ex, o, &(struct bmeta){ .io = &io, .blk = m->blk });
	/* (a spill to the file joined the command's wait before this) */
	if (io.err && !m->w->err)
		m->w->err = io.err;
	m->w->pending--;
	rb->left--;
	wait_finish(m->w);
}

/* batch_async - start the batch in the store and return: each command with a page
 * in flight gets a wait, its blocks are busy until their ops complete (on_remote).
 * false if that cannot be set up (then the batch is still queued). */
static bool batch_async(struct nbd_export *ex)
{
	size_t n = ex->nops;
	struct rbatch *rb = malloc(sizeof(*rb) + n * (sizeof(struct tmem_op) +
						      sizeof(struct rmeta)));

	if (!rb)
		return false;
	for (unsigned i = 0; i < n; i++)
		if (ex->ops[i].cmd != TMEM_FLUSH_PAGE && !wait_of(ex->meta[i].io)) {
			free(rb);
			return false;
		}
	rb->ex = ex;
	rb->left = 0;
	rb->ops = (struct tmem_op *)(rb + 1);
	rb->meta = (struct rmeta *)(rb->ops + n);
	memcpy(rb->ops, ex->ops, n * sizeof(*rb->ops));
	if (borrower_tmem_async(ex->b, ex->c, rb->ops, (unsigned)n, on_remote, rb)) {
		free(rb);
		return false;
	}
	for (unsigned i = 0; i < n; i++) {
		struct bmeta *m = &ex->meta[i];

		if (rb->ops[i].status != -EINPROGRESS) {
			op_settle(ex, &rb->ops[i], m);
			continue;
		}
		rb->meta[i] = (struct rmeta){ .w = m->io->wait, .blk = m->blk,
					      .flags = m->io->flags };
		ex->remote++;
		if (rb->ops[i].cmd == TMEM_PUT) {
			ex->map[m->blk] |= BLK_BUSY;
			ex->remote_writes++;
		} else {
			ex->map[m->blk] += BLK_READ;
		}
		m->io->wait->pending++;
		rb->left++;
	}
	if (!rb->left) /* (no callback comes) */
		free(rb);
	return true;
}

/* batch_flush - run the queued page operations: asynchronously unless @sync or a
 * page's buffer is reused after this call (then settled here). */
static void batch_flush(struct nbd_export *ex, bool sync)
{
	if (!ex->nops)
		return;
	if (sync || ex->unstable || !batch_async(ex)) {
		borrower_tmem(ex->b, ex->c, ex->ops, ex->nops);
		for (unsigned i = 0; i < ex->nops; i++)
			op_settle(ex, &ex->ops[i], &ex->meta[i]);
	}
	for (unsigned i = 0; i < ex->nset; i++)
		ex->set[ex->set_at[i]] = 0;
	ex->nset = 0;
	ex->nops = 0;
	ex->unstable = false;
}

static void batch_add(struct nbd_export *ex, struct nbd_io *io, uint64_t blk,
		      enum tmem_cmd cmd, void *buf)
{
	if (ex->nops == BATCH_MAX)
		batch_flush(ex, false);
	if (!io->stable)
		ex->unstable = true;
	ex->ops[ex->nops] = (struct tmem_op){
		.cmd = cmd, .pool = ex->pool, .oid = blk >> 20,
		.index = (uint32_t)(blk & 0xfffff), .page = buf,
	};
	ex->meta[ex->nops] = (struct bmeta){ .io = io, .blk = blk };
	ex->nops++;
	if (cmd != TMEM_FLUSH_PAGE) /* a batch has each page once */
		set_add(ex, blk);
}

/* read_page - block @blk into @buf now (zeros, file) or when the batch runs. */
static void read_page(struct nbd_export *ex, struct nbd_io *io, uint64_t blk, void *buf)
{
	if (set_has(ex, blk)) /* written earlier in this batch: settle that first */
		batch_flush(ex, true);
	switch (state_of(ex, blk)) {
	case BLK_ZERO:
		memset(buf, 0, PAGE);
		break;
	case BLK_REMOTE:
		batch_add(ex, io, blk, TMEM_GET, buf);
		break;
	case BLK_FILE:
		if (io->stable ? file_read_async(ex, io, blk, buf) : file_read(ex, blk, buf))
			seterr(io, -EIO);
		break;
	default:
		log_warn("export %s: block %llu was lost by a failed write", ex->name,
			 (unsigned long long)blk);
		seterr(io, -EIO);
	}
}

/* write_page - queue a put of @buf (which must stay valid until the batch runs). */
static void write_page(struct nbd_export *ex, struct nbd_io *io, uint64_t blk, const void *buf)
{
	if (set_has(ex, blk))
		batch_flush(ex, true);
	batch_add(ex, io, blk, TMEM_PUT, (void *)buf);
}

/* rmw_page - bytes [@from, @from + @n) of block @blk: read them into @dst (@src
 * NULL), or replace them with @src (zeros if @src is zero_page). Synchronous. */
static void rmw_page(struct nbd_export *ex, struct nbd_io *io, uint64_t blk, size_t from,
		     size_t n, void *dst, const void *src)
{
	uint8_t page[RTM_PAGE_SIZE];
	struct nbd_io tmp = { 0 };
	bool stable = io->stable;

	batch_flush(ex, false); /* the pages queued before go on their own */
	read_page(ex, &tmp, blk, page);
	batch_flush(ex, true);
	if (tmp.err) {
		seterr(io, tmp.err);
		return;
	}
	if (!src) {
		memcpy(dst, page + from, n);
		return;
	}
	memcpy(page + from, src, n);
	io->stable = false; /* @page is ours: a synchronous put */
	write_page(ex, io, blk, page); /* (a spill to the file copies the page) */
	io->stable = stable;
	batch_flush(ex, true);
}

/* ------------------------------------------------ commands */

/* do_rw - READ or WRITE (or, with @src = zero_page, zeros written for real): split
 * [off, off + len) into pages; whole pages are batched, a partial head or tail goes
 * through rmw_page. */
static void do_rw(struct nbd_export *ex, struct nbd_io *io, bool write, const void *src)
{
	uint64_t off = io->off, end = io->off + io->len;
	uint8_t *p = io->buf;

	while (off < end) {
		uint64_t blk = off / PAGE;
		size_t in = (size_t)(off % PAGE);
		size_t n = (size_t)(end - off < PAGE - in ? end - off : PAGE - in);
		const void *s = src == zero_page ? zero_page : p;

		if (n == PAGE && write)
			write_page(ex, io, blk, s);
		else if (n == PAGE)
			read_page(ex, io, blk, p);
		else if (write)
			rmw_page(ex, io, blk, in, n, NULL, s);
		else
			rmw_page(ex, io, blk, in, n, p, NULL);
		off += n;
		if (src != zero_page)
			p += n;
	}
}

/* do_discard - TRIM and WRITE_ZEROES: whole pages are freed (remote page flushed,
 * file range punched) and read back as zeros; WRITE_ZEROES also zeroes the partial
 * head and tail, TRIM leaves them (it is advisory). */
static void do_discard(struct nbd_export *ex, struct nbd_io *io)
{
	uint64_t first = (io->off + PAGE - 1) / PAGE, last = (io->off + io->len) / PAGE;
	uint64_t punch_from = UINT64_MAX, punch_to = 0;
	bool zero = io->type == NBD_CMD_WRITE_ZEROES;

	if (first > last) { /* inside one page */
		if (zero)
			rmw_page(ex, io, io->off / PAGE, (size_t)(io->off % PAGE), io->len, NULL,
				 zero_page);
		return;
	}
	if (zero && io->off % PAGE)
		rmw_page(ex, io, io->off / PAGE, (size_t)(io->off % PAGE),
			 (size_t)(PAGE - io->off % PAGE), NULL, zero_page);
	if (zero && (io->off + io->len) % PAGE)
		rmw_page(ex, io, last, 0, (size_t)((io->off + io->len) % PAGE), NULL,
			 zero_page);
	for (uint64_t blk = first; blk < last; blk++) {
		if (state_of(ex, blk) == BLK_ZERO && !set_has(ex, blk))
			continue;
		if (set_has(ex, blk))
			batch_flush(ex, true);
		switch (state_of(ex, blk)) {
		case BLK_REMOTE:
			batch_add(ex, io, blk, TMEM_FLUSH_PAGE, NULL);
			break;
		case BLK_FILE:
			if (blk < punch_from)
				punch_from = blk;
			punch_to = blk + 1;
			break;
		default:
			break;
		}
		set_state(ex, blk, BLK_ZERO);
	}
	if (punch_to)
		punch(ex, punch_from, punch_to - punch_from);
}

/* blocked - @io touches a block with file I/O in flight (after settling the pages
 * of the batch it touches, whose puts may still go to the file), or is a FLUSH
 * while file writes are in flight: it must not start yet. */
static bool blocked(struct nbd_export *ex, const struct nbd_io *io)
{
	uint64_t first = io->off / PAGE, end = (io->off + io->len + PAGE - 1) / PAGE;

	if (io->type == NBD_CMD_FLUSH) {
		batch_flush(ex, false);
		return ex->inflight_writes + ex->remote_writes > 0;
	}
	if (!ex->inflight && !ex->remote && !ex->nset)
		return false;
	for (uint64_t b = first; b < end && ex->nset; b++)
		if (set_has(ex, b))
			batch_flush(ex, false);
	if (!ex->inflight && !ex->remote)
		return false;
	for (uint64_t b = first; b < end; b++) {
		uint8_t m = ex->map[b];

		/* reads may overlap reads; anything else waits for them */
		if ((m & BLK_BUSY) || (m & BLK_RMASK) == BLK_RMASK ||
		    (io->type != NBD_CMD_READ && (m & BLK_RMASK)))
			return true;
	}
	return false;
}

unsigned nbd_export_run(struct nbd_export *ex, struct nbd_io *v, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		struct nbd_io *io = &v[i];

		io->err = 0;
		io->wait = NULL;
		if (io->type <= NBD_CMD_WRITE_ZEROES && blocked(ex, io))
			break;
		if (!io->len && io->type != NBD_CMD_FLUSH)
			continue;
		switch (io->type) {
		case NBD_CMD_READ:
			do_rw(ex, io, false, NULL);
			break;
		case NBD_CMD_WRITE:
			do_rw(ex, io, true, NULL);
			break;
		case NBD_CMD_WRITE_ZEROES:
			if (io->flags & NBD_CMD_FLAG_NO_HOLE)
				do_rw(ex, io, true, zero_page); /* allocate: write real zeros */
			else
				do_discard(ex, io);
			break;
		case NBD_CMD_TRIM:
			do_discard(ex, io);
			break;
		case NBD_CMD_FLUSH:
			if (file_sync_async(ex, io))
				io->err = -EIO;
			break;
		default:
			io->err = -EINVAL;
		}
		if ((io->flags & NBD_CMD_FLAG_FUA) && io->type != NBD_CMD_WRITE &&
		    io->type != NBD_CMD_READ) { /* TRIM / WRITE_ZEROES: punched holes */
			batch_flush(ex, true);
			if (file_sync_async(ex, io))
				seterr(io, -EIO);
		}
	}
	batch_flush(ex, false);
	ring_submit(ex);
	return i;
}

/* ------------------------------------------------ life cycle */

const char *nbd_export_name(const struct nbd_export *ex)
{
	return ex->name;
}

uint64_t nbd_export_size(const struct nbd_export *ex)
{
	return ex->size;
}

uint64_t nbd_export_zero_run(const struct nbd_export *ex, uint64_t off, uint64_t len,
			     bool *zero)
{
	uint64_t b = off / PAGE, end = off + len, at;

	*zero = state_of(ex, b) == BLK_ZERO;
	for (at = (b + 1) * PAGE; at < end; at += PAGE)
		if ((state_of(ex, at / PAGE) == BLK_ZERO) != *zero)
			break;
	return (at < end ? at : end) - off;
}

void nbd_export_set_kick(struct nbd_export *ex, void (*kick)(void *), void *arg)
{
	ex->kick = kick;
	ex->kick_arg = arg;
}

void nbd_export_info(const struct nbd_export *ex, struct wire_export_info *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", ex->name);
	out->size = ex->size;
	out->target = ex->target;
	out->remote_blocks = ex->count[BLK_REMOTE];
	out->file_blocks = ex->count[BLK_FILE];
}

struct nbd_export *nbd_export_new(struct borrower *b, const struct config_export *cfg,
				  const char *run_dir, uint32_t node_id)
{
	struct nbd_export *ex = calloc(1, sizeof(*ex));
	char safe[CONFIG_NAME_LEN];
	int rc;

	if (!ex) {
		log_err("export %s: out of memory", cfg->name);
		return NULL;
	}
	ex->b = b;
	ex->fd = ex->efd = -1;
	ex->size = cfg->size;
	ex->target = cfg->target_pages;
	ex->nblocks = cfg->size / PAGE;
	snprintf(ex->name, sizeof(ex->name), "%s", cfg->name);
	ex->map = calloc(ex->nblocks, 1);
	if (!ex->map) {
		log_err("export %s: no memory for a map of %llu blocks", ex->name,
			(unsigned long long)ex->nblocks);
		goto out_free;
	}
	ex->count[BLK_ZERO] = ex->nblocks;
	for (size_t i = 0; i <= strlen(ex->name); i++) /* a file name, whatever the export's */
		safe[i] = isalnum((unsigned char)ex->name[i]) || ex->name[i] == '-' ||
					  !ex->name[i]
				  ? ex->name[i]
				  : '_';
	snprintf(ex->path, sizeof(ex->path), "%s/nbd-%u-%s.data", run_dir, node_id, safe);
	ex->fd = open(ex->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (ex->fd < 0) {
		log_err("export %s: backing file %s: %s", ex->name, ex->path, strerror(errno));
		goto out_free_map;
	}
	if (ftruncate(ex->fd, (off_t)ex->size) < 0) {
		log_err("export %s: sizing %s: %s", ex->name, ex->path, strerror(errno));
		goto out_close;
	}
	ex->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	rc = ex->efd < 0 ? -errno : io_uring_queue_init(RING_QD, &ex->ring, 0);
	if (!rc) {
		rc = io_uring_register_eventfd(&ex->ring, ex->efd);
		if (!rc)
			rc = evloop_add_fd(b->ev, ex->efd, EPOLLIN, on_ring, ex);
		if (rc)
			io_uring_queue_exit(&ex->ring);
	}
	if (rc) {
		log_err("export %s: io_uring for the backing file: %s", ex->name, strerror(-rc));
		goto out_close;
	}
	ex->c = borrower_client_attach(b, ex->name);
	if (!ex->c) {
		log_err("export %s: cannot attach a client: %s", ex->name, strerror(errno));
		goto out_ring;
	}
	if (cfg->target_pages) {
		ex->c->fixed = true;
		ex->c->target = cfg->target_pages;
		node_policy_join(b);
	}
	rc = borrower_pool_new(b, ex->c, TMEM_POOL_PERSISTENT, 0);
	if (rc < 0) {
		log_err("export %s: cannot create its pool: %s", ex->name, strerror(-rc));
		goto out_detach;
	}
	ex->pool = (uint32_t)rc;
	log_info("export %s: %llu bytes, client %u, target %s, backing file %s", ex->name,
		 (unsigned long long)ex->size, borrower_client_id(ex->c),
		 cfg->target_pages ? "fixed" : "by policy", ex->path);
	return ex;

out_detach:
	borrower_client_detach(b, ex->c);
out_ring:
	evloop_del_fd(b->ev, ex->efd);
	io_uring_queue_exit(&ex->ring);
out_close:
	if (ex->efd >= 0)
		close(ex->efd);
	close(ex->fd);
	unlink(ex->path);
out_free_map:
	free(ex->map);
out_free:
	free(ex);
	return NULL;
}

void nbd_export_free(struct nbd_export *ex)
{
	if (!ex)
		return;
	log_info("export %s: closing with %llu blocks remote, %llu in the backing file",
		 ex->name, (unsigned long long)ex->count[BLK_REMOTE],
		 (unsigned long long)ex->count[BLK_FILE]);
	borrower_tmem_drain(ex->b); /* page ops in flight finish (maybe into the file) */
	while (ex->inflight) { /* their commands' connections are gone */
		int rc = io_uring_submit_and_wait(&ex->ring, 1);

		if (rc < 0 && rc != -EINTR) {
			log_err("export %s: %u backing-file ops lost: %s", ex->name, ex->inflight,
				strerror(-rc));
			break;
		}
		reap(ex);
	}
	evloop_del_fd(ex->b->ev, ex->efd);
	io_uring_queue_exit(&ex->ring);
	close(ex->efd);
	borrower_client_detach(ex->b, ex->c);
	close(ex->fd);
	unlink(ex->path);
	free(ex->map);
	free(ex);
}
