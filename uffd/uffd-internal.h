/* uffd-internal.h - private declarations shared by the files of the uffd module:
 * kernel interface definitions newer than Debian 12's 6.1 headers, the backing-store
 * ops table (tmem, in-process memory, local spill file) and the engine hooks used by
 * the LD_PRELOAD shim.
 */
#ifndef RTMEM_UFFD_INTERNAL_H
#define RTMEM_UFFD_INTERNAL_H

#include <linux/userfaultfd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>

/* ---- userfaultfd bits added after 6.1 (checked at run time with UFFDIO_API) ---- */
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13) /* 6.4 */
#endif
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14) /* 6.6 */
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15) /* 6.7 */
#endif
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16) /* 6.8 */
#endif
#ifndef _UFFDIO_MOVE
#define _UFFDIO_MOVE (0x05)
struct uffdio_move {
	__u64 dst;
	__u64 src;
	__u64 len;
	__u64 mode;
	__s64 move;
};
#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#define UFFDIO_MOVE_MODE_DONTWAKE ((__u64)1 << 0)
#define UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES ((__u64)1 << 1)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

/* ---- PAGEMAP_SCAN (6.7, linux/fs.h) ---- */
#ifndef PAGEMAP_SCAN
#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_WRITTEN (1 << 1)
#define PAGE_IS_FILE (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)
#define PAGE_IS_HUGE (1 << 6)
#define PAGE_IS_SOFT_DIRTY (1 << 7)
struct page_region {
	__u64 start;
	__u64 end;
	__u64 categories;
};
#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
struct pm_scan_arg {
	__u64 size;
	__u64 flags;
	__u64 start;
	__u64 end;
	__u64 walk_end;
	__u64 vec;
	__u64 vec_len;
	__u64 max_pages;
	__u64 category_inverted;
	__u64 category_mask;
	__u64 category_anyof_mask;
	__u64 return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif

#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED 24
#endif

#define UFFD_PAGE 4096u

/* ------------------------------------------------------------ backing stores */

/* One page moving to or from a store. The key is (oid, index); @page is 4 KiB. */
struct ustore_io {
	uint64_t oid;
	uint32_t index;
	void *page;
	int status; /* out: 0 or -errno */
};

struct ustore;

/* A backing store: tmem through the borrower, an in-process map (tests, no cluster),
 * or the local spill file. Every member returns 0 (or a count) or -errno. */
struct ustore_ops {
	const char *name;
	/* put - store @n pages; per-page status in io[i].status (-ENOSPC: refused, the
	 * caller keeps the page elsewhere; an older copy under that key is then gone).
	 * Returns the number stored, or -errno if the store itself failed. */
	int (*put)(struct ustore *s, struct ustore_io *io, unsigned n);
	/* get - fetch @n pages (per-page status; -ENOENT: no such page). Returns the
	 * number fetched or -errno. */
	int (*get)(struct ustore *s, struct ustore_io *io, unsigned n);
	/* flush - drop @n keys (page == NULL); missing keys are not an error. */
	int (*flush)(struct ustore *s, struct ustore_io *io, unsigned n);
	/* destroy - release everything the store holds (pool destroyed), free @s. */
	void (*destroy)(struct ustore *s);
};

/* Base struct, embedded first in each implementation. */
struct ustore {
	const struct ustore_ops *ops;
};

/* ustore_tmem_new - connect to the borrower (@socket NULL: $RTMEM_SOCKET/default) as
 * client @name and create a persistent private pool. */
int ustore_tmem_new(const char *socket, const char *name, struct ustore **out);
/* ustore_mem_new - an in-process store of at most @limit_pages pages (0: no limit;
 * puts beyond it fail with -ENOSPC like a capped borrower client). */
int ustore_mem_new(uint64_t limit_pages, struct ustore **out);

/* The spill file: pages addressed by slot number, written and read through io_uring.
 * An unlinked file (O_TMPFILE) in @dir, so nothing is left behind on a crash. */
struct uspill;
int uspill_new(const char *dir, struct uspill **out);
void uspill_free(struct uspill *f);
/* uspill_write/read - @n pages, page i at slot slots[i]; returns 0 or -errno. */
int uspill_write(struct uspill *f, const uint32_t *slots, void *const *pages, unsigned n);
int uspill_read(struct uspill *f, const uint32_t *slots, void *const *pages, unsigned n);

/* ------------------------------------------------------------ engine policies */

/* Page flags of the engine's page table (struct page in engine.c). */
#define PF_RES 0x01   /* mapped in the process (incl. zero page) */
#define PF_DIRTY 0x02 /* written since its store copy was made */
#define PF_REF 0x04   /* referenced (a write-protect fault) since the hand passed */
#define PF_EVICT 0x08 /* written back, madvise pending */
#define PF_GONE 0x10  /* unmapped */
#define PF_ZAP 0x20   /* removed (DONTNEED/munmap) while evicting */
#define PF_CKEY 0x40  /* (child tables) the copy is under the child's key (ckey) */
#define PF_HOT 0x80   /* (parent table) in the hot segment (victim.c) */

/* Prefetch trend detector (trend.c). */
#define TREND_HIST 8u
#define TREND_MAX_STRIDE 64
#define TREND_MIN_WIN 4u
struct trend {
	uint64_t hist[TREND_HIST]; /* recent fault page numbers (ring) */
	unsigned n;                /* faults recorded */
	unsigned win;              /* current prefetch window */
};
/* trend_detect - the majority delta (pages) between the recent faults and @vpn, or
 * 0 when no delta has a strict majority, it is beyond TREND_MAX_STRIDE, or @vpn
 * itself does not continue it (its delta to the newest entry differs). */
int64_t trend_detect(const struct trend *t, uint64_t vpn);
/* trend_next - for a fault at @vpn: the trend (0: none) and in *win how many pages
 * to fetch along it (4, 8, 16 ... at most @max while it holds; 0 without one). */
int64_t trend_next(struct trend *t, uint64_t vpn, unsigned max, unsigned *win);
/* trend_record - the fault at @vpn was served with @fetched pages along @d (the
 * faulting page first). */
void trend_record(struct trend *t, uint64_t vpn, int64_t d, unsigned fetched);

/* Victim policy (victim.c): two-segment CLOCK fed by WP faults and refault distance. */
struct vpolicy {
	bool fifo;       /* plain FIFO (no second chance, no hot segment) */
	size_t hot_cap;  /* most pages in the hot segment */
	size_t nhot;     /* pages in it now */
	uint32_t window; /* refault distance (evictions) that makes a page hot */
	uint32_t clock;  /* evictions so far (stamps; never 0) */
};
enum { VP_SKIP = 0, VP_EVICT = 1, VP_REARM = 2 };
void vpolicy_init(struct vpolicy *v, size_t budget, bool fifo);
/* vpolicy_visit - the hand reaches a resident page (not evicting): VP_EVICT, or
 * VP_SKIP, or VP_REARM (skip, and write-protect it again: a referenced dirty page,
 * so that its next write counts as a reference). Updates *fl. */
int vpolicy_visit(struct vpolicy *v, uint8_t *fl);
/* vpolicy_fault - a page evicted at @stamp (0: never) faults back: true if it
 * joins the hot segment (PF_HOT set). */
bool vpolicy_fault(struct vpolicy *v, uint8_t *fl, uint32_t stamp);
/* vpolicy_evicted - the page is released: returns its eviction stamp. */
uint32_t vpolicy_evicted(struct vpolicy *v, uint8_t *fl);
/* vpolicy_gone - the page left without an eviction (unmapped, discarded). */
void vpolicy_gone(struct vpolicy *v, uint8_t *fl);

/* ------------------------------------------------------------ engine hooks */

/* Raw mmap/munmap that bypass the LD_PRELOAD shim. */
void *uffd_sys_mmap(void *addr, size_t len, int prot, int flags, int fd, long off);
int uffd_sys_munmap(void *addr, size_t len);

/* uffd_engine_active - true once the engine runs in this process (false in a forked
 * child and in the engine's own threads, whose allocations must stay ordinary). */
bool uffd_engine_active(void);
/* uffd_overlaps - true if [addr, addr+len) touches a registered region. */
bool uffd_overlaps(const void *addr, size_t len);
/* uffd_prepare_unmap - called before munmap/mremap of a range inside a region:
 * waits until no eviction touches it, so the engine never drops pages of a mapping
 * that replaced it. */
void uffd_prepare_unmap(const void *addr, size_t len);
/* uffd_finish_unmap - after the munmap/mremap that uffd_prepare_unmap announced. */
void uffd_finish_unmap(void);

#endif
