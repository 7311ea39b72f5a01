/* nbd.h - the NBD exports of the borrower, shared by the protocol server (nbd.c)
 * and the export store (nbd-export.c). Private to borrower/; docs/nbd.md has the
 * design.
 */
#ifndef RTMEM_NBD_H
#define RTMEM_NBD_H

#include <stdbool.h>
#include <stdint.h>

#include "common/common.h"

struct borrower;
struct nbd_export;
struct nbd_server;
struct nbd_ctl;
struct wire_export_info;
struct wire_msg;

#define NBD_BLOCK_MIN 512u             /* advertised minimum block size */
#define NBD_BLOCK_PREF 4096u           /* preferred: one tmem page */
#define NBD_MAX_PAYLOAD (32u << 20)    /* advertised maximum block size */
#define NBD_MAX_EXPORTS 64u            /* per borrower, config + run time */
#define NBD_EXPORT_MAX_SIZE (1ull << 40) /* run-time exports: 1 TiB (map of 256 MiB) */

/* One validated command for nbd_export_run: @off + @len lie inside the export,
 * @len <= NBD_MAX_PAYLOAD for reads and writes. */
struct nbd_io {
	uint16_t type;      /* NBD_CMD_READ, WRITE, FLUSH, TRIM, WRITE_ZEROES */
	uint16_t flags;     /* NBD_CMD_FLAG_FUA, NBD_CMD_FLAG_NO_HOLE */
	uint64_t off;
	uint32_t len;
	void *buf;          /* READ: destination, WRITE: source (@len bytes) */
	bool stable;        /* @buf stays valid until the command is done, so its
			     * pages go to the store and the file asynchronously */
	int err;            /* out: 0 or -errno (-EIO, -ENOSPC) of the part done */
	struct nbd_wait *wait; /* out: backing-file I/O still in flight (then arm it) */
};

struct nbd_wait;
/* called once the remote and file I/O of a command is done, @err 0 or -EIO */
typedef void nbd_done_fn(void *arg, int err);

/* nbd_export_new - the export of @cfg: a borrower client named after it with a
 * persistent pool, and a sparse backing file in @run_dir (created empty, removed by
 * nbd_export_free). NULL on failure (logged). */
struct nbd_export *nbd_export_new(struct borrower *b, const struct config_export *cfg,
				  const char *run_dir, uint32_t node_id);
/* nbd_export_free - detach the client (its pages are freed), drop the backing file. */
void nbd_export_free(struct nbd_export *ex);
const char *nbd_export_name(const struct nbd_export *ex);
uint64_t nbd_export_size(const struct nbd_export *ex);
/* nbd_export_info - name, size, target and where the blocks are, for EXPORT_REPLY
 * (conns and runtime are the server's to fill). */
void nbd_export_info(const struct nbd_export *ex, struct wire_export_info *out);
/* nbd_export_run - start @n commands with the effect of running them in order
 * (pages of several commands go to the store in one batch). Returns how many were
 * started: the first one not started touches blocks with conflicting I/O in
 * flight (or is a FLUSH while writes are in flight) and must be given again, with
 * those after it, after the export's kick. For each started command err says how
 * the part done so far went; if wait is set, remote or file I/O is still in flight
 * and the caller must nbd_export_wait_arm it (its buffers stay as they are until
 * then; only commands with stable buffers go asynchronously to remote memory).
 * A command without wait is complete: its writes are in remote memory or in the
 * backing file, a FLUSH or FUA command's data has been synced to the file. */
unsigned nbd_export_run(struct nbd_export *ex, struct nbd_io *v, unsigned n);
/* nbd_export_wait_arm - call @done(@arg, err) when the file I/O of @w is done (at
 * once if it already is); @w is freed after. Done in the event loop. */
void nbd_export_wait_arm(struct nbd_wait *w, nbd_done_fn *done, void *arg);
/* nbd_export_stored - some block of [@off, @off + @len) holds data (remote, in
 * the file, bad) or has I/O in flight: a READ there wants a stable buffer. */
bool nbd_export_stored(const struct nbd_export *ex, uint64_t off, uint32_t len);
/* nbd_export_zero_run - the length (<= @len) of the run from @off whose blocks all
 * read as zeros because nothing is stored (never written, trimmed), *@zero = true,
 * or all hold data, *@zero = false. For NBD_CMD_BLOCK_STATUS. */
uint64_t nbd_export_zero_run(const struct nbd_export *ex, uint64_t off, uint64_t len,
			     bool *zero);
/* nbd_export_set_kick - @kick(@arg) runs after completions were handled (commands
 * that were not started may go now). */
void nbd_export_set_kick(struct nbd_export *ex, void (*kick)(void *), void *arg);

/* nbd.c: exports at run time (called by nbd-ctl.c). Each returns 0 or -errno
 * with a one-line reason in @why. */
/* nbd_add_export - a new export @e (name, size, target_pages), served at once. */
int nbd_add_export(struct nbd_server *s, const struct config_export *e, char *why,
		   size_t len);
/* nbd_del_export - remove an export no connection uses; its data is dropped. */
int nbd_del_export(struct nbd_server *s, const char *name, char *why, size_t len);
/* nbd_list_exports - fill @rep->export_reply with every export. */
void nbd_list_exports(const struct nbd_server *s, struct wire_msg *rep);

/* nbd-ctl.c: the control socket <@nbd_socket>.ctl (docs/nbd.md). */
int nbd_ctl_start(struct nbd_server *s, struct evloop *ev, const char *nbd_socket,
		  struct nbd_ctl **out);
void nbd_ctl_stop(struct nbd_ctl *k);

#endif
