/* spill.c - the local spill file: pages the borrower refused, written and read by
 * slot number through io_uring (one SQE per page, one submit per batch). The file is
 * unlinked from the start (O_TMPFILE), so a killed process leaves nothing behind. */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "uffd/uffd-internal.h"

#define SPILL_QD 64u

struct uspill {
	int fd;
	struct io_uring ring;
};

int uspill_new(const char *dir, struct uspill **out)
{
	struct uspill *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	int rc;
	f->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (f->fd < 0) { /* file systems without O_TMPFILE: create and unlink */
		char path[4096];
		snprintf(path, sizeof(path), "%s/rtmem-spill.XXXXXX", dir);
		f->fd = mkostemp(path, O_CLOEXEC);
		if (f->fd < 0) {
			rc = -errno;
			goto out_free;
		}
		unlink(path);
	}
	rc = io_uring_queue_init(SPILL_QD, &f->ring, 0);
	if (rc < 0)
		goto out_close;
	*out = f;
	return 0;

out_close:
	close(f->fd);
out_free:
	free(f);
	return rc;
}

void uspill_free(struct uspill *f)
{
	if (!f)
		return;
	io_uring_queue_exit(&f->ring);
	close(f->fd);
	free(f);
}

static int rw(struct uspill *f, bool wr, const uint32_t *slots, void *const *pages, unsigned n)
{
	for (unsigned i = 0; i < n;) {
		unsigned k = n - i < SPILL_QD ? n - i : SPILL_QD;
		for (unsigned j = 0; j < k; j++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&f->ring);
			off_t off = (off_t)slots[i + j] * UFFD_PAGE;
			if (wr)
				io_uring_prep_write(sqe, f->fd, pages[i + j], UFFD_PAGE, (__u64)off);
			else
				io_uring_prep_read(sqe, f->fd, pages[i + j], UFFD_PAGE, (__u64)off);
		}
		int rc = io_uring_submit_and_wait(&f->ring, k);
		if (rc < 0)
			return rc;
		int err = 0;
		for (unsigned j = 0; j < k; j++) {
			struct io_uring_cqe *cqe;
			rc = io_uring_wait_cqe(&f->ring, &cqe);
			if (rc < 0)
				return rc;
			if (cqe->res < 0)
				err = cqe->res;
			else if (cqe->res != (int)UFFD_PAGE)
				err = -EIO;
			io_uring_cqe_seen(&f->ring, cqe);
		}
		if (err)
			return err;
		i += k;
	}
	return 0;
}

int uspill_write(struct uspill *f, const uint32_t *slots, void *const *pages, unsigned n)
{
	return rw(f, true, slots, pages, n);
}

int uspill_read(struct uspill *f, const uint32_t *slots, void *const *pages, unsigned n)
{
	return rw(f, false, slots, pages, n);
}
