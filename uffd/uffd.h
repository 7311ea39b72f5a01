/* uffd.h - librtmem: userfaultfd paging of a process' memory to rtmem.
 *
 * Memory obtained from rtmem_region_create() behaves like anonymous private memory,
 * but at most a local budget of its pages is resident in the process at any time;
 * the rest lives in the borrower's remote slabs (through libtmemshim, one persistent
 * pool per process) or, when the borrower refuses a put, in a local spill file.
 * Fault handling runs in threads inside the process. See docs/uffd.md.
 *
 * All calls return 0 (or a non-negative value) on success and -errno on failure.
 * Programs that are not built against this API run under `rtmem-run`, whose
 * LD_PRELOAD shim routes large anonymous mmaps and mallocs into regions.
 */
#ifndef RTMEM_UFFD_H
#define RTMEM_UFFD_H

#include <stddef.h>
#include <stdint.h>

/* rtmem_config.flags */
#define RTMEM_NO_PREFETCH 0x1u  /* fetch only the faulting page */
#define RTMEM_EVICT_FIFO 0x2u   /* FIFO victims instead of 2Q-CLOCK (for measurements) */
#define RTMEM_NO_MLOCK 0x4u     /* do not mlock resident pages (see docs/uffd.md) */
#define RTMEM_NO_WP 0x8u        /* no write-protect tracking: write back every page */
#define RTMEM_NO_MOVE 0x10u     /* evict through the madvise thread, not UFFDIO_MOVE */

struct rtmem_config {
	uint64_t local_mem;      /* bytes resident at most; 0: $RTMEM_LOCAL_MEM or 256M */
	const char *socket;      /* borrower socket; NULL: $RTMEM_SOCKET or the default */
	const char *client_name; /* NULL: $RTMEM_CLIENT_NAME or "rtmem-<comm>-<pid>" */
	const char *store;       /* "tmem" (default, $RTMEM_STORE) or "mem" (in-process) */
	uint64_t mem_store_limit; /* "mem" store: pages it accepts (0: any) */
	const char *spill_dir;   /* spill file directory; NULL: $RTMEM_SPILL_DIR or /var/tmp */
	unsigned flags;          /* RTMEM_*; also $RTMEM_FLAGS=noprefetch,fifo,nomlock,nowp,nomove */
};

struct rtmem_stats {
	uint64_t budget_pages;   /* local budget */
	uint64_t resident;       /* pages resident now (incl. zero pages) */
	uint64_t resident_max;   /* high-water mark */
	uint64_t faults;         /* missing faults served */
	uint64_t wp_faults;      /* write-protect faults (first write after a fetch) */
	uint64_t zero_fills;     /* pages never written, filled with zeros */
	uint64_t fetched;        /* pages read from a store */
	uint64_t prefetched;     /* pages filled ahead of a fault */
	uint64_t refaults;       /* faults on a page that was evicted before */
	uint64_t evicted;        /* pages released */
	uint64_t writebacks;     /* dirty pages written to a store */
	uint64_t clean_drops;    /* evicted without a write (remote copy still valid) */
	uint64_t spilled;        /* pages written to the spill file (put refused) */
	uint64_t spill_reads;    /* pages read back from the spill file */
	uint64_t madvise_calls;  /* one per contiguous run of victims */
	uint64_t eexist;         /* lost races on UFFDIO_COPY/ZEROPAGE (woken) */
	uint64_t deferred;       /* faults that waited for an eviction */
	uint64_t forks;          /* children served through UFFD_EVENT_FORK */
	uint64_t child_faults;   /* faults of children served */
	uint64_t features;       /* UFFDIO_API features in use */
	uint64_t adopted;        /* pages of grown regions (mremap) taken into paging */
	uint64_t child_evicted;  /* pages evicted from forked children */
	uint64_t child_resident_max; /* most pages we held resident in one child */
	uint64_t promoted;       /* refaults that put a page in the hot segment */
	uint64_t moved;          /* evicted pages released by UFFDIO_MOVE in the handler
				  * (no madvise thread, no REMOVE event) */
};

/* rtmem_init - start the engine (NULL: all settings from the environment). Fails with
 * -EPERM/-ENOSYS when userfaultfd is unavailable, -ECONNREFUSED/-ENOENT when the
 * borrower is not reachable; rtmem_last_error() then says what to do. Calling it
 * again while running returns -EALREADY. */
int rtmem_init(const struct rtmem_config *cfg);
/* rtmem_shutdown - stop the engine, destroy the pool, remove the spill file. Regions
 * still mapped lose their non-resident pages. Also run at exit. */
void rtmem_shutdown(void);

/* rtmem_region_create - map @size bytes (rounded up to pages) of paged memory. */
int rtmem_region_create(size_t size, void **addr);
/* rtmem_region_destroy - unmap a region returned by rtmem_region_create(). */
int rtmem_region_destroy(void *addr);
/* rtmem_region_size - size of the region starting at @addr, or -ENOENT. */
int64_t rtmem_region_size(const void *addr);

int rtmem_get_stats(struct rtmem_stats *st);
/* rtmem_print_stats - one line "rtmem: faults=... " to stderr (also at exit when
 * $RTMEM_STATS is set). */
void rtmem_print_stats(const char *tag);
/* rtmem_last_error - a human-readable reason for the last failed rtmem_init. */
const char *rtmem_last_error(void);

#endif
