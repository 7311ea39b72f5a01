/* rdma_test_req.h - a request fixture for the unit tests of the transport's
 * bookkeeping (test_rdma_slots.c, test_verbs_book.c). Include after cmocka.h.
 */
#ifndef RTMEM_RDMA_TEST_REQ_H
#define RTMEM_RDMA_TEST_REQ_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "rdma/rdma.h"

static int conn_a, conn_b; /* stand-ins: only their addresses matter */

/* req - a request on a 64 MiB slab at pool offset 64 MiB, offset 0 */
static inline struct rdma_req req(void *conn, enum rdma_op op, uint32_t len,
				  uint64_t cookie)
{
	static uint8_t buf[RDMA_MAX_IO];

	return (struct rdma_req){ .conn = conn, .op = op, .slab_offset = 1ull << 26,
				  .slab_length = 1ull << 26, .key = 0x1234, .offset = 0,
				  .buf = buf, .len = len, .cookie = cookie };
}

#endif
