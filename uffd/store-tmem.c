/* store-tmem.c - the tmem backing store: one persistent private pool of this process
 * in the borrower, through libtmemshim (pages travel through its shared slots). */
#include <errno.h>
#include <stdlib.h>

#include "tmemshim/tmemshim.h"
#include "uffd/uffd-internal.h"

struct store_tmem {
	struct ustore base;
	struct tmem_client *c;
	uint32_t pool;
	struct tmem_op ops[TMEM_MAX_BATCH];
};

static int run(struct ustore *s, enum tmem_cmd cmd, struct ustore_io *io, unsigned n)
{
	struct store_tmem *t = (struct store_tmem *)s;
	int total = 0;

	for (unsigned i = 0; i < n; i += TMEM_MAX_BATCH) {
		unsigned k = n - i < TMEM_MAX_BATCH ? n - i : TMEM_MAX_BATCH;
		for (unsigned j = 0; j < k; j++)
			t->ops[j] = (struct tmem_op){ .cmd = cmd, .pool = t->pool,
						      .oid = io[i + j].oid,
						      .index = io[i + j].index,
						      .page = io[i + j].page };
		int rc = tmem_batch(t->c, t->ops, k);
		for (unsigned j = 0; j < k; j++)
			io[i + j].status = rc < 0 ? rc : t->ops[j].status;
		if (rc < 0)
			return rc;
		total += rc;
	}
	return total;
}

static int tput(struct ustore *s, struct ustore_io *io, unsigned n)
{
	return run(s, TMEM_PUT, io, n);
}

static int tget(struct ustore *s, struct ustore_io *io, unsigned n)
{
	return run(s, TMEM_GET, io, n);
}

static int tflush(struct ustore *s, struct ustore_io *io, unsigned n)
{
	return run(s, TMEM_FLUSH_PAGE, io, n);
}

static void tdestroy(struct ustore *s)
{
	struct store_tmem *t = (struct store_tmem *)s;
	tmem_destroy_pool(t->c, t->pool);
	tmem_disconnect(t->c);
	free(t);
}

static const struct ustore_ops tmem_ops = {
	.name = "tmem", .put = tput, .get = tget, .flush = tflush, .destroy = tdestroy,
};

int ustore_tmem_new(const char *socket, const char *name, struct ustore **out)
{
	struct store_tmem *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	int rc = tmem_connect(socket, name, &t->c);
	if (rc)
		goto out_free;
	rc = tmem_new_pool(t->c, TMEM_POOL_PERSISTENT, 0);
	if (rc < 0)
		goto out_disconnect;
	t->pool = (uint32_t)rc;
	t->base.ops = &tmem_ops;
	*out = &t->base;
	return 0;

out_disconnect:
	tmem_disconnect(t->c);
out_free:
	free(t);
	return rc;
}
