/* tmemshim-proto.h - the client protocol between libtmemshim and rtmem-borrower.
 *
 * A unix stream socket carries length-prefixed frames with big-endian fixed-width
 * fields; page data never goes through it but through a memfd of TMP_N_SLOTS pages
 * ("slots") that the borrower passes with HELLO_ACK and both sides map MAP_SHARED.
 * One request is outstanding at a time; every request gets exactly one reply.
 *
 *   header (8 bytes): u32 length of the whole frame, u16 cmd, u16 flags (0)
 *
 *   cmd                  dir  body
 *   1 HELLO              C>B  u32 magic "RTMT", u16 version, u16 0, char name[32] (NUL)
 *   2 HELLO_ACK          B>C  u32 status, u32 client id, u32 n_slots   (+ memfd)
 *   3 NEW_POOL           C>B  u32 flags, u64 uuid
 *   4 NEW_POOL_REPLY     B>C  u32 status, u32 pool
 *   5 DESTROY_POOL       C>B  u32 pool
 *   6 DESTROY_POOL_REPLY B>C  u32 status
 *   7 BATCH              C>B  u32 n (1..64), n x {u16 cmd, u16 slot, u32 pool,
 *                                                 u64 oid, u32 index}
 *   8 BATCH_REPLY        B>C  u32 n, n x u32 status
 *
 * A status is 0 or a positive errno. Command numbers never change meaning.
 * See docs/tmem-api.md.
 */
#ifndef RTMEM_TMEMSHIM_PROTO_H
#define RTMEM_TMEMSHIM_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "tmemshim/tmemshim.h"

#define TMP_MAGIC 0x52544d54u /* "RTMT" */
#define TMP_VERSION 1
#define TMP_NAME_LEN 32
#define TMP_HDR_SIZE 8
#define TMP_N_SLOTS TMEM_MAX_BATCH /* pages in the shared buffer */
#define TMP_OP_SIZE 20
#define TMP_MAX_FRAME (TMP_HDR_SIZE + 4 + TMEM_MAX_BATCH * TMP_OP_SIZE)
#define TMP_MAX_STATUS 4095 /* largest errno accepted in a status */
#define TMP_POOL_FLAGS (TMEM_POOL_PERSISTENT | TMEM_POOL_SHARED)

enum tmp_cmd {
	TMP_HELLO = 1,
	TMP_HELLO_ACK = 2,
	TMP_NEW_POOL = 3,
	TMP_NEW_POOL_REPLY = 4,
	TMP_DESTROY_POOL = 5,
	TMP_DESTROY_POOL_REPLY = 6,
	TMP_BATCH = 7,
	TMP_BATCH_REPLY = 8,
	TMP_CMD_MAX = 9,
};

struct tmp_op {
	uint16_t cmd;   /* enum tmem_cmd */
	uint16_t slot;  /* < TMP_N_SLOTS; distinct among the PUT/GET ops of a batch */
	uint32_t pool;
	uint64_t oid;
	uint32_t index;
};

struct tmp_msg {
	enum tmp_cmd cmd;
	union {
		struct {
			uint32_t magic;
			uint16_t version;
			char name[TMP_NAME_LEN]; /* NUL-terminated */
		} hello;
		struct {
			uint32_t status, client_id, n_slots;
		} hello_ack;
		struct {
			uint32_t flags;
			uint64_t uuid;
		} new_pool;
		struct {
			uint32_t pool;
		} destroy_pool;
		struct {
			uint32_t status;
			uint32_t pool; /* NEW_POOL_REPLY only */
		} pool_reply;
		struct {
			uint32_t n;
			struct tmp_op ops[TMEM_MAX_BATCH];
		} batch;
		struct {
			uint32_t n;
			uint32_t status[TMEM_MAX_BATCH];
		} batch_reply;
	};
};

/* tmp_encode - write @m as one frame into @buf. Returns the frame length, -EINVAL if
 * a field is out of range (count, slot, op, status, unterminated name, unknown cmd)
 * or -ENOSPC if @cap is too small. */
int tmp_encode(const struct tmp_msg *m, uint8_t *buf, size_t cap);
/* tmp_decode - decode one frame from @buf. Returns the frame length consumed, 0 if
 * @len does not yet hold a whole frame, -EBADMSG (bad length, field out of range,
 * unterminated name, bad magic) or -EPROTO (unknown command, non-zero flags). On
 * failure *@why (if @why) points to a static text saying what was wrong. */
int tmp_decode(const uint8_t *buf, size_t len, struct tmp_msg *m, const char **why);
const char *tmp_cmd_name(int cmd);

#endif
