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
 * consecutive commands go to the store in one borrower_tmem batch: a page written
 * earlier in the batch must be settled (its put may fall back to the file) before
 * the same page is read or written again, so such a conflict ends the batch.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "borrower/borrower-core.h"
#include "borrower/nbd-proto.h"
#include "borrower/nbd.h"

#define LOG_AREA "nbd"

#define PAGE ((uint64_t)RTM_PAGE_SIZE)
#define BATCH_MAX 1024u
#define SET_SLOTS 4096u /* open-addressing set of blocks written in the batch */

enum blk_state { BLK_ZERO = 0, BLK_REMOTE = 1, BLK_FILE = 2, BLK_BAD = 3 };

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
	unsigned nops;                  /* the batch: */
	struct tmem_op ops[BATCH_MAX];
	struct bmeta meta[BATCH_MAX];
	uint64_t set[SET_SLOTS];        /* block + 1 of pages written, 0 = empty */
	uint32_t set_at[BATCH_MAX];     /* slots in use, to clear them */
	unsigned nset;
};

static const uint8_t zero_page[RTM_PAGE_SIZE];

/* ------------------------------------------------ block map and backing file */

static void set_state(struct nbd_export *ex, uint64_t blk, enum blk_state st)
{
	ex->count[ex->map[blk]]--;
	ex->count[st]++;
	ex->map[blk] = (uint8_t)st;
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

/* batch_flush - run the queued page operations and settle them: a refused put
 * goes to the backing file. */
static void batch_flush(struct nbd_export *ex)
{
	if (!ex->nops)
		return;
	borrower_tmem(ex->b, ex->c, ex->ops, ex->nops);
	for (unsigned i = 0; i < ex->nops; i++) {
		struct tmem_op *o = &ex->ops[i];
		struct bmeta *m = &ex->meta[i];

		switch (o->cmd) {
		case TMEM_GET:
			if (o->status) {
				log_warn("export %s: block %llu: remote read failed: %s",
					 ex->name, (unsigned long long)m->blk,
					 strerror(-o->status));
				seterr(m->io, -EIO);
			}
			break;
		case TMEM_PUT:
			if (!o->status) {
				if (ex->map[m->blk] == BLK_FILE)
					punch(ex, m->blk, 1);
				set_state(ex, m->blk, BLK_REMOTE);
			} else if (!file_write(ex, m->blk, o->page)) {
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
	for (unsigned i = 0; i < ex->nset; i++)
		ex->set[ex->set_at[i]] = 0;
	ex->nset = 0;
	ex->nops = 0;
}

static void batch_add(struct nbd_export *ex, struct nbd_io *io, uint64_t blk,
		      enum tmem_cmd cmd, void *buf)
{
	if (ex->nops == BATCH_MAX)
		batch_flush(ex);
	ex->ops[ex->nops] = (struct tmem_op){
		.cmd = cmd, .pool = ex->pool, .oid = blk >> 20,
		.index = (uint32_t)(blk & 0xfffff), .page = buf,
	};
	ex->meta[ex->nops] = (struct bmeta){ .io = io, .blk = blk };
	ex->nops++;
	if (cmd == TMEM_PUT)
		set_add(ex, blk);
}

/* read_page - block @blk into @buf now (zeros, file) or when the batch runs. */
static void read_page(struct nbd_export *ex, struct nbd_io *io, uint64_t blk, void *buf)
{
	if (set_has(ex, blk)) /* written earlier in this batch: settle that first */
		batch_flush(ex);
	switch (ex->map[blk]) {
	case BLK_ZERO:
		memset(buf, 0, PAGE);
		break;
	case BLK_REMOTE:
		batch_add(ex, io, blk, TMEM_GET, buf);
		break;
	case BLK_FILE:
		if (file_read(ex, blk, buf))
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
		batch_flush(ex);
	batch_add(ex, io, blk, TMEM_PUT, (void *)buf);
}

/* rmw_page - bytes [@from, @from + @n) of block @blk: read them into @dst (@src
 * NULL), or replace them with @src (zeros if @src is zero_page). Synchronous. */
static void rmw_page(struct nbd_export *ex, struct nbd_io *io, uint64_t blk, size_t from,
		     size_t n, void *dst, const void *src)
{
	uint8_t page[RTM_PAGE_SIZE];
	struct nbd_io tmp = { 0 };

	read_page(ex, &tmp, blk, page);
	batch_flush(ex);
	if (tmp.err) {
		seterr(io, tmp.err);
		return;
	}
	if (!src) {
		memcpy(dst, page + from, n);
		return;
	}
	memcpy(page + from, src, n);
	write_page(ex, &tmp, blk, page);
	batch_flush(ex);
	if (tmp.err)
		seterr(io, tmp.err);
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
		if (ex->map[blk] == BLK_ZERO && !set_has(ex, blk))
			continue;
		if (set_has(ex, blk))
			batch_flush(ex);
		switch (ex->map[blk]) {
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

void nbd_export_run(struct nbd_export *ex, struct nbd_io *v, unsigned n)
{
	bool sync = false;

	for (unsigned i = 0; i < n; i++) {
		struct nbd_io *io = &v[i];

		io->err = 0;
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
			batch_flush(ex);
			if (file_sync(ex))
				io->err = -EIO;
			break;
		default:
			io->err = -EINVAL;
		}
		if (io->flags & NBD_CMD_FLAG_FUA)
			sync = true;
	}
	batch_flush(ex);
	if (sync && file_sync(ex)) {
		for (unsigned i = 0; i < n; i++)
			if (v[i].flags & NBD_CMD_FLAG_FUA)
				seterr(&v[i], -EIO);
	}
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
	ex->fd = -1;
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
	ex->c = borrower_client_attach(b, ex->name);
	if (!ex->c) {
		log_err("export %s: cannot attach a client: %s", ex->name, strerror(errno));
		goto out_close;
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
out_close:
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
	borrower_client_detach(ex->b, ex->c);
	close(ex->fd);
	unlink(ex->path);
	free(ex->map);
	free(ex);
}
