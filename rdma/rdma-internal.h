/* rdma-internal.h - declarations shared by the files of the rdma module: the base
 * connection struct every back end embeds first, and the TCP data-plane wire format
 * (shared by the borrower side in tcp.c and the donor side in tcp-server.c).
 * docs/transport.md describes the format with tables.
 */
#ifndef RTMEM_RDMA_INTERNAL_H
#define RTMEM_RDMA_INTERNAL_H

#include "rdma/rdma.h"

/* Base of every back end's connection; embedded first so that a back end can cast
 * between the two. */
struct rdma_conn {
	struct rdma_transport *t; /* transport the connection belongs to */
	uint32_t donor;           /* donor node id given to connect */
};

/* ---------------------------------------------------- TCP wire format */

#define RTCP_MAGIC 0x52544d44u /* "RTMD" */
#define RTCP_VERSION 1

/* Hello, borrower -> donor: u32 magic, u16 version, u16 flags (0), u32 node id. */
#define RTCP_HELLO_SIZE 12
/* Hello reply, donor -> borrower: u32 magic, u16 version, u16 flags (0),
 * u32 status (0 or a positive errno; the donor closes after a non-zero status). */
#define RTCP_HELLO_REPLY_SIZE 12

/* Request: u16 op, u16 flags (0), u32 len, u64 offset in pool, u64 key, u64 tag;
 * a WRITE is followed by len bytes of data. */
#define RTCP_REQ_SIZE 32
/* Reply: u64 tag, u32 status (0 or a positive errno), u32 len; a successful READ is
 * followed by len (= the request's len) bytes of data, anything else has len 0. */
#define RTCP_REPLY_SIZE 16

/* ---------------------------------------------------- verbs back end */

#define RVB_MAGIC 0x5254564du /* "RTVM" */
#define RVB_VERSION 1
/* Connect private data, borrower -> donor (12 bytes, big-endian): u32 magic,
 * u16 version, u16 flags (0), u32 node id of the borrower. */
#define RVB_CONNECT_SIZE 12
/* Accept (or reject) private data, donor -> borrower (32 bytes, big-endian): u32 magic,
 * u16 version, u16 flags (0), u32 status (0 or a positive errno), u32 reserved (0),
 * u64 pool base virtual address, u64 pool length. */
#define RVB_ACCEPT_SIZE 32

struct ibv_context;
struct rdma_cm_id;

/* rvb_describe - "dev rxe0 port 1 ACTIVE, gid index 1 (RoCE v2, 198.51.100.1),
 * active MTU 1024" for @ctx / @port (the GID matching @ip4 if non-zero, in network
 * order, else the first RoCE v2 IPv4 one). */
void rvb_describe(struct ibv_context *ctx, uint8_t port, uint32_t ip4, char *out,
		  size_t len);
/* rvb_event_errno - the -errno for an rdma_cm event that ends a connection attempt:
 * -ECONNREFUSED reject, -EHOSTUNREACH, -EADDRNOTAVAIL, -ENETUNREACH, -ENODEV, else
 * -ECONNRESET. */
int rvb_event_errno(int type);

#endif
