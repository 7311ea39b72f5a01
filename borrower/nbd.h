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

#define NBD_BLOCK_MIN 512u             /* advertised minimum block size */
#define NBD_BLOCK_PREF 4096u           /* preferred: one tmem page */
#define NBD_MAX_PAYLOAD (32u << 20)    /* advertised maximum block size */

/* One validated command for nbd_export_run: @off + @len lie inside the export,
 * @len <= NBD_MAX_PAYLOAD for reads and writes. */
struct nbd_io {
	uint16_t type;      /* NBD_CMD_READ, WRITE, FLUSH, TRIM, WRITE_ZEROES */
	uint16_t flags;     /* NBD_CMD_FLAG_FUA, NBD_CMD_FLAG_NO_HOLE */
	uint64_t off;
	uint32_t len;
	void *buf;          /* READ: destination, WRITE: source (@len bytes) */
	int err;            /* out: 0 or -errno (-EIO, -ENOSPC) */
};

/* nbd_export_new - the export of @cfg: a borrower client named after it with a
 * persistent pool, and a sparse backing file in @run_dir (created empty, removed by
 * nbd_export_free). NULL on failure (logged). */
struct nbd_export *nbd_export_new(struct borrower *b, const struct config_export *cfg,
				  const char *run_dir, uint32_t node_id);
/* nbd_export_free - detach the client (its pages are freed), drop the backing file. */
void nbd_export_free(struct nbd_export *ex);
const char *nbd_export_name(const struct nbd_export *ex);
uint64_t nbd_export_size(const struct nbd_export *ex);
/* nbd_export_run - execute @n commands with the effect of running them in order
 * (pages of several commands go to the store in one batch); each err is set. When
 * it returns, every successful write is in remote memory or in the backing file,
 * and FLUSH / FUA writes have been synced to the backing file. */
void nbd_export_run(struct nbd_export *ex, struct nbd_io *v, unsigned n);

#endif
