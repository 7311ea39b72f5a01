/* nbd-proto.h - constants of the NBD protocol (fixed newstyle negotiation, simple
 * and structured replies) as spoken by the borrower's NBD server (nbd.c). Every
 * field on the wire is big-endian; the numbers below are the protocol's and never
 * change meaning. Private to borrower/.
 */
#ifndef RTMEM_NBD_PROTO_H
#define RTMEM_NBD_PROTO_H

/* handshake */
#define NBD_INIT_MAGIC 0x4e42444d41474943ull    /* "NBDMAGIC" */
#define NBD_OPTS_MAGIC 0x49484156454f5054ull    /* "IHAVEOPT" */
#define NBD_REP_MAGIC 0x0003e889045565a9ull     /* option reply */
#define NBD_FLAG_FIXED_NEWSTYLE (1u << 0)       /* handshake flags (u16) */
#define NBD_FLAG_NO_ZEROES (1u << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE (1u << 0)     /* client flags (u32) */
#define NBD_FLAG_C_NO_ZEROES (1u << 1)
#define NBD_GREETING_SIZE 18                    /* magic, opts magic, u16 flags */
#define NBD_OPT_HDR_SIZE 16                     /* opts magic, u32 option, u32 length */
#define NBD_REP_HDR_SIZE 20                     /* magic, u32 option, u32 type, u32 len */

/* options */
#define NBD_OPT_EXPORT_NAME 1
#define NBD_OPT_ABORT 2
#define NBD_OPT_LIST 3
#define NBD_OPT_STARTTLS 5
#define NBD_OPT_INFO 6
#define NBD_OPT_GO 7
#define NBD_OPT_STRUCTURED_REPLY 8
#define NBD_OPT_LIST_META_CONTEXT 9
#define NBD_OPT_SET_META_CONTEXT 10

/* option replies */
#define NBD_REP_ACK 1u
#define NBD_REP_SERVER 2u
#define NBD_REP_INFO 3u
#define NBD_REP_META_CONTEXT 4u /* u32 context id, name */
#define NBD_REP_ERR (1u << 31)
#define NBD_REP_ERR_UNSUP (NBD_REP_ERR + 1)
#define NBD_REP_ERR_POLICY (NBD_REP_ERR + 2)
#define NBD_REP_ERR_INVALID (NBD_REP_ERR + 3)
#define NBD_REP_ERR_UNKNOWN (NBD_REP_ERR + 6)
#define NBD_REP_ERR_TOO_BIG (NBD_REP_ERR + 9)

/* NBD_REP_INFO types (u16) */
#define NBD_INFO_EXPORT 0      /* u64 size, u16 transmission flags */
#define NBD_INFO_NAME 1        /* string */
#define NBD_INFO_DESCRIPTION 2 /* string */
#define NBD_INFO_BLOCK_SIZE 3  /* u32 minimum, preferred, maximum */

/* transmission flags (u16) */
#define NBD_FLAG_HAS_FLAGS (1u << 0)
#define NBD_FLAG_READ_ONLY (1u << 1)
#define NBD_FLAG_SEND_FLUSH (1u << 2)
#define NBD_FLAG_SEND_FUA (1u << 3)
#define NBD_FLAG_SEND_TRIM (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1u << 6)
#define NBD_FLAG_SEND_DF (1u << 7)
#define NBD_FLAG_CAN_MULTI_CONN (1u << 8)

/* transmission: request u32 magic, u16 flags, u16 type, u64 cookie, u64 offset,
 * u32 length [, payload]; simple reply u32 magic, u32 error, u64 cookie [, data] */
#define NBD_REQUEST_MAGIC 0x25609513u
#define NBD_SIMPLE_REPLY_MAGIC 0x67446698u
#define NBD_REQ_SIZE 28
#define NBD_REPLY_SIZE 16

/* structured replies (after NBD_OPT_STRUCTURED_REPLY): chunks of u32 magic, u16
 * flags, u16 type, u64 cookie, u32 length, payload; the last one has FLAG_DONE */
#define NBD_STRUCTURED_REPLY_MAGIC 0x668e33efu
#define NBD_CHUNK_HDR_SIZE 20
#define NBD_REPLY_FLAG_DONE (1u << 0)
#define NBD_REPLY_TYPE_NONE 0
#define NBD_REPLY_TYPE_OFFSET_DATA 1    /* u64 offset, data */
#define NBD_REPLY_TYPE_OFFSET_HOLE 2    /* u64 offset, u32 hole size */
#define NBD_REPLY_TYPE_BLOCK_STATUS 5   /* u32 context id, {u32 length, u32 flags}... */
#define NBD_REPLY_TYPE_ERROR ((1u << 15) + 1)        /* u32 error, u16 msg len, msg */
#define NBD_REPLY_TYPE_ERROR_OFFSET ((1u << 15) + 2) /* ... then u64 offset */

/* commands */
#define NBD_CMD_READ 0
#define NBD_CMD_WRITE 1
#define NBD_CMD_DISC 2
#define NBD_CMD_FLUSH 3
#define NBD_CMD_TRIM 4
#define NBD_CMD_WRITE_ZEROES 6
#define NBD_CMD_BLOCK_STATUS 7

/* the "base:allocation" metadata context: extent flags */
#define NBD_META_BASE_ALLOCATION "base:allocation"
#define NBD_STATE_HOLE (1u << 0)
#define NBD_STATE_ZERO (1u << 1)

/* command flags */
#define NBD_CMD_FLAG_FUA (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE (1u << 1)
#define NBD_CMD_FLAG_DF (1u << 2)       /* READ: do not fragment the reply */
#define NBD_CMD_FLAG_REQ_ONE (1u << 3)  /* BLOCK_STATUS: one extent is enough */

/* errors in replies (the protocol's numbers, equal to Linux errno values) */
#define NBD_EPERM 1
#define NBD_EIO 5
#define NBD_ENOMEM 12
#define NBD_EINVAL 22
#define NBD_ENOSPC 28
#define NBD_EOVERFLOW 75
#define NBD_ENOTSUP 95
#define NBD_ESHUTDOWN 108

#endif
