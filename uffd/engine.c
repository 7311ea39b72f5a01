/* engine.c - the userfaultfd paging engine of librtmem (see docs/uffd.md).
 *
 * Threads inside the process:
 *  - the handler reads the userfaultfd (faults and non-cooperative events), serves
 *    faults from the backing store (UFFDIO_COPY / UFFDIO_ZEROPAGE, prefetching
 *    sequential and strided runs), tracks dirtiness with write-protect faults and
 *    chooses victims (CLOCK); it owns all page state (under E.lock, which the API
 *    functions take too);
 *  - the dropper only calls madvise(MADV_DONTNEED[_LOCKED]) on the runs of victims
 *    the handler has already written back. It has to be another thread: with
 *    UFFD_FEATURE_EVENT_REMOVE the madvise blocks until the uffd reader has read
 *    the REMOVE event it generates, and the reader is the handler.
 *
 * Page life cycle: NONE (never written: zero) -> resident clean (installed write-
 * protected, a copy in the store or zero) -> resident dirty (after its WP fault) ->
 * evicting (write-protected again, copied to the store, waiting for the madvise) ->
 * stored (in the borrower, or in the spill file when a put was refused).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/common.h"
#include "uffd/uffd-internal.h"
#include "uffd/uffd.h"

#define LOG_AREA "uffd"
#define API __attribute__((visibility("default")))

#define PAGE UFFD_PAGE
#define MAX_EVICT 512u     /* victims per batch */
#define MAX_FETCH 64u      /* pages per fault (1 + prefetch) */
#define MIN_BUDGET 16u

enum { LOC_NONE = 0, LOC_STORE = 1, LOC_FILE = 2 };
struct page {
	uint8_t loc, fl;
	uint16_t gen; /* store generation its copy was put under */
	uint32_t slot; /* spill file slot (LOC_FILE) */
	uint32_t stamp; /* eviction clock when it was last evicted (0: never) */
};

struct region {
	struct region *next;
	uintptr_t base;
	size_t npages;
	size_t live;      /* pages still mapped */
	uint32_t key_id;  /* store keys: oid = key_id << 16 | gen, index = key_off + i */
	uint32_t ckey;    /* in a child's table: key_id of the child's own copies */
	size_t key_off;
	struct page *pg;
};

struct fault {
	uintptr_t addr;
	uint64_t flags;
};

struct victim {
	struct region *r;
	size_t idx;
};

struct run {
	uintptr_t addr;
	size_t len;
};

/* a forked child (or grandchild) served through the uffd its FORK event gave us */
struct child {
	struct child *next;
	int fd;          /* the child's userfaultfd */
	int ctl;         /* socket to the child's dropper thread; -1: none (no budget) */
	pid_t pid;       /* from the dropper's hello; 0 until then */
	unsigned n;
	struct region *regs; /* its page table: a snapshot at fork, then kept up to date */
	uint16_t gen;    /* generation of its own puts (bumped when it forks) */
	size_t resident; /* pages we installed in it and did not evict */
	unsigned hand_r; /* CLOCK hand */
	size_t hand_i;
	struct victim *ev; /* eviction in flight */
	size_t evn;
	struct run *runs;
	size_t nruns;
	bool drop_pending;
	struct fault *q; /* deferred faults */
	size_t qn, qcap;
};

static __thread int in_engine;

static struct engine {
	pthread_mutex_t lock;
	bool running, stopping;
	atomic_bool in_child;
	pid_t pid;
	int uffd, wake_fd, drop_fd;
	uint64_t features, avail;
	bool have_wp, use_mlock, prefetch, fifo;
	int madv;
	pthread_t handler, dropper;
	struct ustore *store;
	struct uspill *spill;
	struct rtmem_config cfg;
	char name[CONFIG_NAME_LEN];

	struct region *regions, *graveyard;
	atomic_uintptr_t lo, hi; /* bounds of all regions, for the shim's quick test */
	uint32_t next_key;
	uint16_t gen;
	struct child *children, *newkids;
	pthread_mutex_t fork_mu; /* one fork at a time (atfork prepare .. parent) */
	int fork_ctl, fork_peer; /* socketpair for the dropper of the child being forked */

	size_t budget, resident, batch;
	struct rtmem_stats st;

	struct fault *q;
	size_t qn, qcap;

	/* eviction in flight (one at a time) */
	struct victim *ev;
	size_t evn;
	struct run *runs;
	size_t nruns;
	pthread_mutex_t dmu;
	pthread_cond_t dcond;
	bool drop_pending, drop_stop;
	uint64_t drop_seq;  /* bumped per posted drop; the dropper remembers the last */
	int unmap_busy;      /* shim threads inside munmap/mremap of a region */

	/* CLOCK hand */
	struct region *hand_r;
	size_t hand_i;

	int busy;           /* serving or picking: regions in use (read_events may run
			     * nested through RETRY_AGAIN, freed regions wait) */
	struct trend tr;    /* prefetch detector (trend.c) */
	struct vpolicy vp;  /* victim policy (victim.c) */

	/* eviction by UFFDIO_MOVE: a scratch mapping registered with a second uffd */
	int sink_fd;
	uintptr_t sink;
	size_t sink_len, sink_off;

	/* spill slots */
	uint32_t slot_next, *slot_free;
	size_t nfree, free_cap;

	/* buffers (ordinary memory, never a region) */
	uint8_t *evbuf;  /* MAX_EVICT pages */
	uint8_t *fbuf;   /* MAX_FETCH pages */
	struct ustore_io *io;
	struct ustore_io *flushq;
	size_t nflush, flush_cap;
	uint64_t last_probe_ms;
} E = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.dmu = PTHREAD_MUTEX_INITIALIZER,
	.dcond = PTHREAD_COND_INITIALIZER,
	.fork_mu = PTHREAD_MUTEX_INITIALIZER,
	.uffd = -1,
	.wake_fd = -1,
	.drop_fd = -1,
	.fork_ctl = -1,
	.fork_peer = -1,
	.sink_fd = -1,
};

static char last_error[512];

static void set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void set_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
}

API const char *rtmem_last_error(void)
{
	return last_error;
}

/* ------------------------------------------------------------ raw syscalls */

void *uffd_sys_mmap(void *addr, size_t len, int prot, int flags, int fd, long off)
{
	return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

int uffd_sys_munmap(void *addr, size_t len)
{
	return (int)syscall(SYS_munmap, addr, len);
}

static void *sys_alloc(size_t len)
{
	void *p = uffd_sys_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				-1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static void wake_handler(void)
{
	uint64_t one = 1;
	if (E.wake_fd >= 0 && write(E.wake_fd, &one, sizeof(one)) < 0)
		log_dbg("wake: %s", strerror(errno));
}

/* ------------------------------------------------------------ uffd ioctls */

enum { OK = 0, AGAIN = 1, DEFER = 2 };

static int uffd_wake(int fd, uintptr_t addr, size_t len)
{
	struct uffdio_range r = { .start = addr, .len = len };
	return ioctl(fd, UFFDIO_WAKE, &r) ? -errno : 0;
}

static int uffd_wp(int fd, uintptr_t addr, size_t len, bool protect)
{
	struct uffdio_writeprotect w = { .range = { .start = addr, .len = len },
					 .mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0 };
	return ioctl(fd, UFFDIO_WRITEPROTECT, &w) ? -errno : 0;
}

/* fill - install @len bytes at @dst: from @src (UFFDIO_COPY, write-protected if @wp)
 * or zero pages (@src NULL: UFFDIO_ZEROPAGE). A page that is already there (EEXIST:
 * someone won the race) is woken and skipped. Returns bytes handled (>= 0) and
 * sets *err to 0, -EAGAIN (mmap changing: read events, retry) or another -errno. */
static size_t fill(int fd, uintptr_t dst, const uint8_t *src, size_t len, bool wp, int *err)
{
	size_t done = 0;
	*err = 0;
	while (done < len) {
		long r;
		int rc;
		if (src) {
			struct uffdio_copy c = { .dst = dst + done, .src = (uintptr_t)(src + done),
						 .len = len - done,
						 .mode = wp ? UFFDIO_COPY_MODE_WP : 0 };
			rc = ioctl(fd, UFFDIO_COPY, &c) ? errno : 0;
			r = c.copy;
		} else {
			struct uffdio_zeropage z = { .range = { .start = dst + done,
								.len = len - done } };
			rc = ioctl(fd, UFFDIO_ZEROPAGE, &z) ? errno : 0;
			r = z.zeropage;
		}
		if (!rc)
			return len;
		if (r > 0)
			done += (size_t)r;
		if (rc == EEXIST) {
			E.st.eexist++;
			uffd_wake(fd, dst + done, PAGE);
			done += PAGE;
			continue;
		}
		if (rc == EAGAIN && r > 0)
			continue;
		*err = -rc;
		return done;
	}
	return done;
}

/* ------------------------------------------------------------ regions */

static struct region *region_find(uintptr_t addr)
{
	for (struct region *r = E.regions; r; r = r->next)
		if (addr >= r->base && addr < r->base + r->npages * PAGE)
			return r;
	return NULL;
}

static void bounds_update(void)
{
	uintptr_t lo = UINTPTR_MAX, hi = 0;
	for (struct region *r = E.regions; r; r = r->next) {
		if (r->base < lo)
			lo = r->base;
		if (r->base + r->npages * PAGE > hi)
			hi = r->base + r->npages * PAGE;
	}
	atomic_store(&E.lo, lo);
	atomic_store(&E.hi, hi);
}

static struct region *region_new(uintptr_t base, size_t npages, uint32_t key_id,
				 size_t key_off)
{
	struct region *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->pg = sys_alloc(npages * sizeof(struct page));
	if (!r->pg) {
		free(r);
		return NULL;
	}
	r->base = base;
	r->npages = r->live = npages;
	r->key_id = key_id;
	r->key_off = key_off;
	return r;
}

static void region_free(struct region *r)
{
	uffd_sys_munmap(r->pg, r->npages * sizeof(struct page));
	free(r);
}

static uint64_t key_oid(const struct region *r, uint16_t gen)
{
	return (uint64_t)r->key_id << 16 | gen;
}

/* Move regions whose pages are all unmapped to the graveyard (freed when no
 * eviction refers to them). */
static void regions_reap(void)
{
	for (struct region **pp = &E.regions; *pp;) {
		struct region *r = *pp;
		if (r->live) {
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		if (E.hand_r == r)
			E.hand_r = NULL;
		r->next = E.graveyard;
		E.graveyard = r;
	}
	if (!E.drop_pending && !E.evn && !E.busy) {
		while (E.graveyard) {
			struct region *r = E.graveyard;
			E.graveyard = r->next;
			region_free(r);
		}
	}
	bounds_update();
}

/* ------------------------------------------------------------ backing copies */

static int slot_alloc(uint32_t *slot)
{
	if (E.nfree) {
		*slot = E.slot_free[--E.nfree];
		return 0;
	}
	if (E.slot_next == UINT32_MAX)
		return -ENOSPC;
	*slot = E.slot_next++;
	return 0;
}

static void slot_release(uint32_t slot)
{
	if (E.st.forks) /* a child's snapshot may still read it */
		return;
	if (E.nfree == E.free_cap) {
		size_t cap = E.free_cap ? E.free_cap * 2 : 1024;
		uint32_t *n = realloc(E.slot_free, cap * sizeof(*n));
		if (!n)
			return; /* leak the slot */
		E.slot_free = n;
		E.free_cap = cap;
	}
	E.slot_free[E.nfree++] = slot;
}

/* drop_copy - forget the backing copy of page @i (its data is dead). */
static void drop_copy(struct region *r, size_t i)
{
	struct page *p = &r->pg[i];
	if (p->loc == LOC_FILE) {
		slot_release(p->slot);
	} else if (p->loc == LOC_STORE && !E.st.forks) {
		if (E.nflush == E.flush_cap) {
			size_t cap = E.flush_cap ? E.flush_cap * 2 : 256;
			struct ustore_io *n = realloc(E.flushq, cap * sizeof(*n));
			if (!n)
				goto out;
			E.flushq = n;
			E.flush_cap = cap;
		}
		E.flushq[E.nflush++] = (struct ustore_io){ .oid = key_oid(r, p->gen),
							   .index = (uint32_t)(r->key_off + i) };
	}
out:
	p->loc = LOC_NONE;
}

static void flush_pending(void)
{
	if (!E.nflush)
		return;
	int rc = E.store->ops->flush(E.store, E.flushq, (unsigned)E.nflush);
	if (rc < 0)
		log_warn("%s store: flush of %zu pages: %s", E.store->ops->name, E.nflush,
			 strerror(-rc));
	E.nflush = 0;
}

/* ------------------------------------------------------------ events */

/* range_removed - pages [start, end) were discarded (DONTNEED) or unmapped. */
static void range_removed(uintptr_t start, uintptr_t end, bool unmap)
{
	for (struct region *r = E.regions; r; r = r->next) {
		uintptr_t rend = r->base + r->npages * PAGE;
		if (end <= r->base || start >= rend)
			continue;
		size_t a = (start > r->base ? start - r->base : 0) / PAGE;
		size_t b = ((end < rend ? end : rend) - r->base + PAGE - 1) / PAGE;
		for (size_t i = a; i < b; i++) {
			struct page *p = &r->pg[i];
			if (p->fl & PF_GONE)
				continue;
			if (p->fl & PF_EVICT) {
				p->fl |= PF_ZAP; /* resolved when the drop completes */
			} else {
				if (p->fl & PF_RES)
					E.resident--;
				vpolicy_gone(&E.vp, &p->fl);
				p->stamp = 0;
				p->fl &= (uint8_t)~(PF_RES | PF_DIRTY | PF_REF);
				drop_copy(r, i);
			}
			if (unmap) {
				p->fl |= PF_GONE;
				r->live--;
			}
		}
	}
	if (unmap)
		regions_reap();
}

/* is_own_drop - a REMOVE event our dropper caused (it matches a posted run). */
static bool is_own_drop(uintptr_t start, uintptr_t end)
{
	bool own = false;
	pthread_mutex_lock(&E.dmu);
	if (E.drop_pending)
		for (size_t i = 0; i < E.nruns && !own; i++)
			own = start >= E.runs[i].addr && end <= E.runs[i].addr + E.runs[i].len;
	pthread_mutex_unlock(&E.dmu);
	return own;
}

static void region_remap(uintptr_t from, uintptr_t to, size_t len)
{
	struct region *old = region_find(from);
	if (!old) {
		log_dbg("remap %#lx -> %#lx: not a region", (unsigned long)from,
			(unsigned long)to);
		return;
	}
	size_t off = (from - old->base) / PAGE;
	size_t n = len / PAGE;
	if (off + n > old->npages)
		n = old->npages - off;
	struct region *nr = region_new(to, n, old->key_id, old->key_off + off);
	if (!nr) {
		log_err("remap %#lx -> %#lx: out of memory, pages of the range are lost",
			(unsigned long)from, (unsigned long)to);
		return;
	}
	size_t live = 0;
	for (size_t i = 0; i < n; i++) {
		struct page *p = &old->pg[off + i];
		nr->pg[i] = *p;
		/* a page being evicted was written back: at the new place it is a clean
		 * resident page until the (now misdirected) drop completes */
		nr->pg[i].fl &= (uint8_t)~(PF_EVICT | PF_ZAP);
		if (p->fl & PF_GONE)
			continue;
		live++;
		if ((p->fl & PF_EVICT) && (p->fl & PF_RES))
			E.resident++; /* the old entry is released at drop completion */
		p->fl = (uint8_t)((p->fl & (PF_EVICT | PF_RES)) | PF_GONE);
		p->loc = LOC_NONE; /* the copy now belongs to the new region */
		old->live--;
	}
	nr->live = live;
	nr->next = E.regions;
	E.regions = nr;
	log_dbg("remap %#lx -> %#lx (%zu pages)", (unsigned long)from, (unsigned long)to, n);
	regions_reap();
}

static void on_fork(int fd);

static void queue_fault(uintptr_t addr, uint64_t flags)
{
	if (E.qn == E.qcap) {
		size_t cap = E.qcap ? E.qcap * 2 : 64;
		struct fault *n = realloc(E.q, cap * sizeof(*n));
		if (!n) {
			log_err("fault queue: out of memory");
			abort();
		}
		E.q = n;
		E.qcap = cap;
	}
	E.q[E.qn++] = (struct fault){ .addr = addr & ~(uintptr_t)(PAGE - 1), .flags = flags };
}

/* read_events - read everything on the parent's uffd: faults are queued, other
 * events handled now (the thread that caused them waits until they are read). */
static void read_events(void)
{
	struct uffd_msg msgs[64];
	for (;;) {
		ssize_t n = read(E.uffd, msgs, sizeof(msgs));
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_err("read uffd %d: %s", E.uffd, strerror(errno));
			return;
		}
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++) {
			struct uffd_msg *m = &msgs[i];
			switch (m->event) {
			case UFFD_EVENT_PAGEFAULT:
				queue_fault((uintptr_t)m->arg.pagefault.address,
					    m->arg.pagefault.flags);
				break;
			case UFFD_EVENT_REMOVE:
				if (!is_own_drop((uintptr_t)m->arg.remove.start,
						 (uintptr_t)m->arg.remove.end))
					range_removed((uintptr_t)m->arg.remove.start,
						      (uintptr_t)m->arg.remove.end, false);
				break;
			case UFFD_EVENT_UNMAP:
				range_removed((uintptr_t)m->arg.remove.start,
					      (uintptr_t)m->arg.remove.end, true);
				break;
			case UFFD_EVENT_REMAP:
				region_remap((uintptr_t)m->arg.remap.from,
					     (uintptr_t)m->arg.remap.to,
					     (size_t)m->arg.remap.len);
				break;
			case UFFD_EVENT_FORK:
				on_fork((int)m->arg.fork.ufd);
				break;
			default:
				log_warn("uffd %d: unknown event %u", E.uffd, m->event);
			}
		}
		if ((size_t)n < sizeof(msgs))
			return;
	}
}

/* ------------------------------------------------------------ eviction */

/* retry an ioctl-like step while the mm is changing (events pending) */
#define RETRY_AGAIN(expr)                                                        \
	({                                                                       \
		int rc_;                                                         \
		for (;;) {                                                       \
			rc_ = (expr);                                            \
			if (rc_ != -EAGAIN)                                      \
				break;                                           \
			read_events();                                           \
			sched_yield();                                           \
		}                                                                \
		rc_;                                                             \
	})

static void evict_start(void);
static void drop_done(void);

/* clock_pick - choose up to @want victims among the resident pages, in address
 * order (victims form contiguous runs); victim.c decides page by page. */
static size_t clock_pick(size_t want)
{
	size_t n = 0, total = 0;
	for (struct region *r = E.regions; r; r = r->next)
		total += r->npages;
	size_t limit = 2 * total + 1;
	static struct run re[MAX_EVICT];
	size_t nre = 0;
	struct region *r = E.hand_r;
	size_t i = E.hand_i;
	for (size_t scanned = 0; n < want && scanned < limit; scanned++, i++) {
		if (!r || i >= r->npages) {
			r = r ? r->next : NULL;
			if (!r)
				r = E.regions;
			if (!r)
				break;
			i = 0;
		}
		struct page *p = &r->pg[i];
		if ((p->fl & (PF_RES | PF_EVICT | PF_GONE)) != PF_RES)
			continue;
		int act = vpolicy_visit(&E.vp, &p->fl);
		if (act != VP_EVICT) {
			/* a referenced dirty page is writable: protect it again so that
			 * its next write shows up as a reference */
			if (E.have_wp && act == VP_REARM) {
				uintptr_t a = r->base + i * PAGE;
				if (nre && re[nre - 1].addr + re[nre - 1].len == a)
					re[nre - 1].len += PAGE;
				else if (nre < MAX_EVICT)
					re[nre++] = (struct run){ .addr = a, .len = PAGE };
				else
					p->fl |= PF_REF; /* no room: keep it referenced */
			}
			continue;
		}
		p->fl |= PF_EVICT;
		E.ev[n++] = (struct victim){ .r = r, .idx = i };
	}
	E.hand_r = r;
	E.hand_i = i;
	for (size_t k = 0; k < nre; k++) {
		int rc = RETRY_AGAIN(uffd_wp(E.uffd, re[k].addr, re[k].len, true));
		if (rc)
			log_dbg("re-arm wp %#lx+%zu: %s", (unsigned long)re[k].addr, re[k].len,
				strerror(-rc));
	}
	return n;
}

/* unpick - a victim that cannot be evicted now stays resident. */
static void unpick(struct victim *v)
{
	v->r->pg[v->idx].fl &= (uint8_t)~PF_EVICT;
	v->r = NULL;
}

/* writeback - copy the dirty victims (write-protected first, so a racing write
 * waits for the eviction) to the store; refused puts go to the spill file. */
static void writeback(void)
{
	size_t nd = 0;
	struct victim *d[MAX_EVICT];
	for (size_t k = 0; k < E.evn; k++) {
		struct victim *v = &E.ev[k];
		if (v->r && (v->r->pg[v->idx].fl & PF_DIRTY))
			d[nd++] = v;
	}
	if (!nd)
		return;
	/* write-protect and read each contiguous run of dirty victims */
	for (size_t a = 0; a < nd;) {
		size_t b = a + 1;
		while (b < nd && d[b]->r == d[a]->r && d[b]->idx == d[b - 1]->idx + 1)
			b++;
		uintptr_t addr = d[a]->r->base + d[a]->idx * PAGE;
		size_t len = (b - a) * PAGE;
		int rc = 0;
		if (E.have_wp)
			rc = RETRY_AGAIN(uffd_wp(E.uffd, addr, len, true));
		if (!rc) {
			struct iovec local = { .iov_base = E.evbuf + a * PAGE, .iov_len = len };
			struct iovec remote = { .iov_base = (void *)addr, .iov_len = len };
			ssize_t got = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
			if (got != (ssize_t)len)
				rc = got < 0 ? -errno : -EFAULT;
		}
		if (rc) { /* unmapped under us: the UNMAP event cleans up */
			log_dbg("evict run %#lx+%zu: %s, skipped", (unsigned long)addr, len,
				strerror(-rc));
			for (size_t k = a; k < b; k++)
				unpick(d[k]);
		}
		a = b;
	}
	/* one batched put */
	unsigned n = 0;
	for (size_t k = 0; k < nd; k++) {
		if (!d[k]->r)
			continue;
		struct region *r = d[k]->r;
		E.io[n] = (struct ustore_io){ .oid = key_oid(r, E.gen),
					      .index = (uint32_t)(r->key_off + d[k]->idx),
					      .page = E.evbuf + k * PAGE };
		d[n] = d[k];
		n++;
	}
	if (!n)
		return;
	int rc = E.store->ops->put(E.store, E.io, n);
	if (rc < 0)
		log_warn("%s store: put of %u pages failed (%s), spilling to the local file",
			 E.store->ops->name, n, strerror(-rc));
	uint32_t slots[MAX_EVICT];
	void *pages[MAX_EVICT];
	unsigned ns = 0;
	for (unsigned k = 0; k < n; k++) {
		struct page *p = &d[k]->r->pg[d[k]->idx];
		if (!E.io[k].status) {
			if (p->loc == LOC_FILE)
				slot_release(p->slot);
			else if (p->loc == LOC_STORE && p->gen != E.gen && !E.st.forks)
				drop_copy(d[k]->r, d[k]->idx);
			p->loc = LOC_STORE;
			p->gen = E.gen;
			p->fl &= (uint8_t)~PF_DIRTY;
			E.st.writebacks++;
			continue;
		}
		/* refused: the old copy under this key is gone; keep the page on disk */
		if (p->loc != LOC_FILE || E.st.forks) {
			if (slot_alloc(&p->slot)) {
				unpick(d[k]);
				continue;
			}
		}
		p->loc = LOC_FILE;
		slots[ns] = p->slot;
		pages[ns] = E.io[k].page;
		d[ns] = d[k];
		ns++;
	}
	if (!ns)
		return;
	rc = uspill_write(E.spill, slots, pages, ns);
	for (unsigned k = 0; k < ns; k++) {
		if (!d[k]->r)
			continue;
		struct page *p = &d[k]->r->pg[d[k]->idx];
		if (rc) { /* no place for it: keep it resident and dirty */
			p->loc = LOC_NONE;
			unpick(d[k]);
			continue;
		}
		p->fl &= (uint8_t)~PF_DIRTY;
		E.st.writebacks++;
		E.st.spilled++;
	}
	if (rc)
		log_err("spill file: write of %u pages: %s; they stay resident (budget exceeded)",
			ns, strerror(-rc));
}

/* mergeable - true if the pages [from, to) of @r can be zapped with the victims
 * around them: none is resident or being evicted (a missing pte costs nothing to
 * zap, and faults inside a posted run wait until the drop is done). */
static bool mergeable(const struct region *r, uintptr_t from, uintptr_t to)
{
	if (from < r->base || to > r->base + r->npages * PAGE || to < from ||
	    to - from > 256 * (uintptr_t)PAGE)
		return false;
	for (uintptr_t a = from; a < to; a += PAGE)
		if (r->pg[(a - r->base) / PAGE].fl & (PF_RES | PF_EVICT | PF_GONE))
			return false;
	return true;
}

/* in_drop - @addr lies in a run the dropper may still zap */
static bool in_drop(uintptr_t addr)
{
	if (!E.drop_pending)
		return false;
	size_t lo = 0, hi = E.nruns;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (addr < E.runs[mid].addr)
			hi = mid;
		else if (addr >= E.runs[mid].addr + E.runs[mid].len)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

static int run_cmp(const void *a, const void *b)
{
	const struct run *x = a, *y = b;
	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* sink_flush - free the pages moved into the sink (one madvise; the sink belongs
 * to a userfaultfd without UFFD_FEATURE_EVENT_REMOVE, so nobody waits on it). */
static void sink_flush(void)
{
	if (!E.sink_off)
		return;
	if (madvise((void *)E.sink, E.sink_off, E.madv) < 0)
		log_warn("madvise of the sink: %s", strerror(errno));
	E.st.madvise_calls++;
	E.sink_off = 0;
}

/* evict_move - release runs of victims with UFFDIO_MOVE into the sink (6.8+): the
 * pages leave the region (its ptes become none, so the next access is a missing
 * fault) without a madvise on the region, hence without a REMOVE event that the
 * dropper would wait for the handler to read. Holes in merged runs are allowed.
 * Whatever cannot be moved (a page shared with a forked child, a zero page, a run
 * crossing a vma boundary) is left in E.runs[0..returned) for the dropper. */
static size_t evict_move(size_t nr)
{
	if (E.sink_fd < 0)
		return nr;
	size_t left = 0;
	for (size_t k = 0; k < nr; k++) {
		struct run ru = E.runs[k];
		if (E.sink_off + ru.len > E.sink_len)
			sink_flush();
		struct uffdio_move m = { .dst = E.sink + E.sink_off, .src = ru.addr, .len = ru.len,
					 .mode = UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES };
		int rc = ioctl(E.sink_fd, UFFDIO_MOVE, &m) ? errno : 0;
		size_t done = rc ? (m.move > 0 ? (size_t)m.move : 0) : ru.len;
		E.sink_off += ru.len;
		if (done < ru.len) {
			log_dbg("move %#lx+%zu: %s after %zu bytes, the dropper takes the rest",
				(unsigned long)ru.addr, ru.len, strerror(rc), done);
			E.runs[left++] = (struct run){ .addr = ru.addr + done, .len = ru.len - done };
		}
	}
	sink_flush();
	return left;
}

static void evict_start(void)
{
	if (E.evn || E.drop_pending || __atomic_load_n(&E.unmap_busy, __ATOMIC_ACQUIRE))
		return;
	E.evn = clock_pick(E.batch);
	if (!E.evn)
		return;
	for (size_t k = 0; k < E.evn; k++)
		if (!(E.ev[k].r->pg[E.ev[k].idx].fl & PF_DIRTY))
			E.st.clean_drops++;
	writeback();
	/* runs of victims still picked, in address order per region */
	size_t nr = 0;
	for (size_t k = 0; k < E.evn; k++) {
		struct victim *v = &E.ev[k];
		if (!v->r)
			continue;
		uintptr_t addr = v->r->base + v->idx * PAGE;
		if (nr && mergeable(v->r, E.runs[nr - 1].addr + E.runs[nr - 1].len, addr))
			E.runs[nr - 1].len = addr + PAGE - E.runs[nr - 1].addr;
		else
			E.runs[nr++] = (struct run){ .addr = addr, .len = PAGE };
	}
	qsort(E.runs, nr, sizeof(*E.runs), run_cmp);
	size_t all = nr;
	nr = evict_move(nr);
	if (!nr && all) { /* all moved out: released here, no dropper, no REMOVE event */
		for (size_t k = 0; k < E.evn; k++)
			E.st.moved += E.ev[k].r != NULL;
		E.nruns = 0;
		drop_done();
		return;
	}
	pthread_mutex_lock(&E.dmu);
	if (!nr || E.unmap_busy) { /* an munmap is waiting: keep them (clean) resident */
		for (size_t k = 0; k < E.evn; k++)
			if (E.ev[k].r)
				unpick(&E.ev[k]);
		E.evn = 0;
		pthread_mutex_unlock(&E.dmu);
		return;
	}
	E.nruns = nr;
	E.drop_pending = true;
	E.drop_seq++;
	pthread_cond_broadcast(&E.dcond);
	pthread_mutex_unlock(&E.dmu);
}

/* drop_done - the dropper released the victims: account them. */
static void drop_done(void)
{
	for (size_t k = 0; k < E.evn; k++) {
		struct victim *v = &E.ev[k];
		if (!v->r)
			continue;
		struct page *p = &v->r->pg[v->idx];
		if (p->fl & PF_RES)
			E.resident--;
		E.st.evicted++;
		p->stamp = vpolicy_evicted(&E.vp, &p->fl);
		if (p->fl & PF_ZAP)
			drop_copy(v->r, v->idx);
		p->fl &= (uint8_t)~(PF_RES | PF_EVICT | PF_ZAP | PF_REF | PF_DIRTY);
	}
	E.st.madvise_calls += E.nruns;
	E.evn = 0;
	pthread_mutex_lock(&E.dmu);
	E.nruns = 0;
	E.drop_pending = false;
	pthread_cond_broadcast(&E.dcond);
	pthread_mutex_unlock(&E.dmu);
	regions_reap();
}

static void *dropper_main(void *arg)
{
	uint64_t done_seq = 0;
	in_engine = 1;
	prctl(PR_SET_NAME, "rtmem-drop");
	pthread_mutex_lock(&E.dmu);
	for (;;) {
		while (E.drop_seq == done_seq && !E.drop_stop)
			pthread_cond_wait(&E.dcond, &E.dmu);
		if (E.drop_stop)
			break;
		size_t n = E.nruns;
		done_seq = E.drop_seq;
		pthread_mutex_unlock(&E.dmu);
		for (size_t i = 0; i < n; i++)
			if (madvise((void *)E.runs[i].addr, E.runs[i].len, E.madv) < 0)
				log_warn("madvise %#lx+%zu: %s", (unsigned long)E.runs[i].addr,
					E.runs[i].len, strerror(errno));
		uint64_t one = 1;
		if (write(E.drop_fd, &one, sizeof(one)) < 0)
			log_err("drop eventfd: %s", strerror(errno));
		pthread_mutex_lock(&E.dmu);
	}
	pthread_mutex_unlock(&E.dmu);
	return NULL;
}

/* ------------------------------------------------------------ fault service */

/* fetch - read @n pages (region r, indices idx[]) into buf from where they live. */
static void fetch(const struct region *r, const size_t *idx, unsigned n, uint8_t *buf)
{
	unsigned ns = 0, nf = 0;
	uint32_t slots[MAX_FETCH];
	void *pages[MAX_FETCH];
	for (unsigned k = 0; k < n; k++) {
		const struct page *p = &r->pg[idx[k]];
		uint8_t *dst = buf + (size_t)k * PAGE;
		if (p->loc == LOC_STORE) {
			uint64_t oid = (p->fl & PF_CKEY) ? (uint64_t)r->ckey << 16 | p->gen :
							     key_oid(r, p->gen);
			E.io[ns++] = (struct ustore_io){ .oid = oid,
							 .index = (uint32_t)(r->key_off + idx[k]),
							 .page = dst };
		} else if (p->loc == LOC_FILE) {
			slots[nf] = p->slot;
			pages[nf++] = dst;
		} else {
			memset(dst, 0, PAGE);
		}
	}
	if (ns) {
		int rc = E.store->ops->get(E.store, E.io, ns);
		if (rc != (int)ns) {
			/* a persistent pool never misses: anything else means lost data, and
			 * serving garbage is not an option */
			for (unsigned k = 0; k < ns; k++)
				if (E.io[k].status)
					log_err("%s store: get of page %u (oid %#llx) failed: %s; "
						"the page is lost, stopping the process",
						E.store->ops->name, E.io[k].index,
						(unsigned long long)E.io[k].oid,
						strerror(-E.io[k].status));
			abort();
		}
		E.st.fetched += ns;
	}
	if (nf) {
		int rc = uspill_read(E.spill, slots, pages, nf);
		if (rc) {
			log_err("spill file: read of %u pages: %s; stopping the process", nf,
				strerror(-rc));
			abort();
		}
		E.st.spill_reads += nf;
		E.st.fetched += nf;
	}
}

/* install - map pages idx[0..n) (sorted, same region) from buf (fetch() zeroed the
 * never-written ones). With write-protect tracking every page goes in with one
 * UFFDIO_COPY in WP mode, zero pages too: a UFFDIO_ZEROPAGE followed by a separate
 * write-protect would leave a window in which a write makes the page dirty unseen.
 * Without it, read-only zero pages are UFFDIO_ZEROPAGE'd. Returns 0, -EAGAIN, or
 * another -errno. */
static int install(struct region *r, const size_t *idx, unsigned n, const uint8_t *buf,
		   bool write)
{
	for (unsigned a = 0; a < n;) {
		unsigned b = a + 1;
		bool zero = !write && !E.have_wp && r->pg[idx[a]].loc == LOC_NONE;
		while (b < n && idx[b] == idx[b - 1] + 1 &&
		       zero == (!write && !E.have_wp && r->pg[idx[b]].loc == LOC_NONE))
			b++;
		uintptr_t addr = r->base + idx[a] * PAGE;
		size_t len = (size_t)(b - a) * PAGE;
		int err;
		size_t done = fill(E.uffd, addr, zero ? NULL : buf + (size_t)a * PAGE, len,
				   E.have_wp && !write, &err);
		for (size_t k = 0; k < done / PAGE; k++) {
			struct page *p = &r->pg[idx[a + k]];
			p->fl |= PF_RES;
			if (write || !E.have_wp)
				p->fl |= PF_DIRTY;
			E.resident++;
			if (p->loc == LOC_NONE)
				E.st.zero_fills++;
		}
		if (err)
			return err;
		a = b;
	}
	return 0;
}

/* vma_bounds - the mapping (from /proc/self/maps) that contains @addr. */
static int vma_bounds(uintptr_t addr, uintptr_t *start, uintptr_t *end)
{
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f)
		return -errno;
	char line[512];
	int rc = -ENOENT;
	while (fgets(line, sizeof(line), f)) {
		unsigned long a, b;
		if (sscanf(line, "%lx-%lx", &a, &b) == 2 && addr >= a && addr < b) {
			*start = a;
			*end = b;
			rc = 0;
			break;
		}
	}
	fclose(f);
	return rc;
}

/* region_adopt - a fault in a registered mapping outside every region: the part a
 * region grew by (mremap in place, or the tail beyond the moved pages of an
 * mremap that moved and grew it). Track the untracked stretch of that mapping
 * around @addr as a region of its own (fresh store keys, all pages zero), so it is
 * paged and evicted like the rest. */
static struct region *region_adopt(uintptr_t addr)
{
	uintptr_t lo = 0, hi = 0;
	if (vma_bounds(addr, &lo, &hi))
		return NULL;
	for (struct region *r = E.regions; r; r = r->next) {
		uintptr_t rend = r->base + r->npages * PAGE;
		if (rend <= addr && rend > lo)
			lo = rend;
		if (r->base > addr && r->base < hi)
			hi = r->base;
	}
	struct region *r = region_new(lo, (hi - lo) / PAGE, E.next_key++, 0);
	if (!r)
		return NULL;
	r->next = E.regions;
	E.regions = r;
	bounds_update();
	E.st.adopted += r->npages;
	log_dbg("adopted %#lx+%#lx (grown part of a region) as key %u", (unsigned long)lo,
		(unsigned long)(hi - lo), r->key_id);
	return r;
}

static int serve_unknown(const struct fault *f)
{
	/* a page of a registered vma we cannot track (out of memory): plain anonymous
	 * semantics, never evicted */
	int err;
	if (f->flags & UFFD_PAGEFAULT_FLAG_WP)
		err = uffd_wp(E.uffd, f->addr, PAGE, false);
	else
		fill(E.uffd, f->addr, NULL, PAGE, false, &err);
	if (err == -EAGAIN)
		return AGAIN;
	return OK;
}

static int serve(const struct fault *f)
{
	struct region *r = region_find(f->addr);
	if (!r)
		r = region_adopt(f->addr);
	if (!r)
		return serve_unknown(f);
	size_t i = (f->addr - r->base) / PAGE;
	struct page *p = &r->pg[i];
	bool write = f->flags & UFFD_PAGEFAULT_FLAG_WRITE;

	if (f->flags & UFFD_PAGEFAULT_FLAG_WP) {
		if (p->fl & PF_EVICT)
			return DEFER;
		if (p->fl & PF_RES) {
			p->fl |= PF_DIRTY | PF_REF;
			int rc = uffd_wp(E.uffd, f->addr, PAGE, false);
			if (rc == -EAGAIN) {
				p->fl &= (uint8_t)~PF_DIRTY;
				return AGAIN;
			}
			E.st.wp_faults++;
		} else {
			uffd_wake(E.uffd, f->addr, PAGE);
		}
		return OK;
	}
	if ((p->fl & PF_EVICT) || in_drop(f->addr))
		return DEFER;
	if (p->fl & PF_RES) { /* a duplicate: someone else's fault installed it */
		uffd_wake(E.uffd, f->addr, PAGE);
		return OK;
	}
	if (p->fl & PF_GONE) { /* unmapped, then mapped again by an mremap growing in place */
		uintptr_t lo, hi;
		if (vma_bounds(f->addr, &lo, &hi))
			return OK; /* a stale fault: the range is gone */
		*p = (struct page){ 0 };
		r->live++;
		E.st.adopted++;
	}
	if (E.resident + 1 > E.budget)
		return DEFER;

	/* the faulting page, then prefetch along the trend */
	uint64_t vpn = f->addr / PAGE;
	unsigned win = 0;
	int64_t d = E.prefetch ? trend_next(&E.tr, vpn, MAX_FETCH - 1, &win) : 0;
	size_t idx[MAX_FETCH];
	unsigned n = 0;
	idx[n++] = i;
	if (d) {
		size_t room = E.budget - E.resident - 1;
		for (unsigned k = 1; k <= win && n - 1 < room; k++) {
			int64_t j = (int64_t)i + d * (int64_t)k;
			if (j < 0 || (size_t)j >= r->npages)
				break;
			if ((r->pg[j].fl & (PF_RES | PF_EVICT | PF_GONE)) ||
			    in_drop(r->base + (size_t)j * PAGE))
				break;
			idx[n++] = (size_t)j;
		}
	}
	trend_record(&E.tr, vpn, d, n);
	/* sort ascending (a backwards trend gives descending indices) */
	if (d < 0)
		for (unsigned a = 0, b = n - 1; a < b; a++, b--) {
			size_t t = idx[a];
			idx[a] = idx[b];
			idx[b] = t;
		}
	bool refault = p->loc != LOC_NONE;
	if (refault && vpolicy_fault(&E.vp, &p->fl, p->stamp))
		E.st.promoted++;
	fetch(r, idx, n, E.fbuf);
	int rc = install(r, idx, n, E.fbuf, write);
	/* no reference bit for a page just installed: the hand would pass every new
	 * page once, so victims end up interleaved with spared pages and each madvise
	 * run gets short (random pass: 2.5 pages per madvise with it, 6 without, the
	 * same refaults); hotness comes from refaults and WP faults (victim.c) */
	for (unsigned k = 0; k < n; k++)
		if (idx[k] != i && (r->pg[idx[k]].fl & PF_RES))
			E.st.prefetched++;
	if (rc == -EAGAIN)
		return AGAIN;
	if (rc)
		log_dbg("fault %#lx: install: %s", (unsigned long)f->addr, strerror(-rc));
	E.st.faults++;
	if (refault)
		E.st.refaults++;
	if (E.resident > E.st.resident_max)
		E.st.resident_max = E.resident;
	return OK;
}

/* ------------------------------------------------------------ children
 *
 * A forked child's registered ranges belong to a new userfaultfd that arrives here
 * with UFFD_EVENT_FORK; this handler serves its faults from a snapshot of the page
 * table taken at fork (store copies the parent never overwrites: E.gen was bumped).
 * The child gets a budget of its own, the same size as the parent's: pages this
 * handler installs in it are counted and evicted (CLOCK, dirty ones written back
 * under keys of its own, read with process_vm_readv) by a small dropper thread the
 * atfork handler starts in the child, which madvises on request over a socket
 * (only the child can zap its own pages). A grandchild is served from its parent's
 * table in the same way, without a budget (no dropper: see docs/uffd.md). */

static struct region *child_region(struct child *c, uintptr_t addr)
{
	for (unsigned k = 0; k < c->n; k++) {
		struct region *r = &c->regs[k];
		if (addr >= r->base && addr < r->base + r->npages * PAGE)
			return r;
	}
	return NULL;
}

/* child_new - a child served through @fd whose pages are those of @src[0..n) as
 * they are now (@nested: @src is a child's table, whose own copies keep its keys). */
static struct child *child_new(int fd, struct region *const *src, unsigned n, bool nested)
{
	struct child *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->regs = calloc(n ? n : 1, sizeof(*c->regs));
	c->ev = calloc(MAX_EVICT, sizeof(*c->ev));
	c->runs = calloc(MAX_EVICT, sizeof(*c->runs));
	if (!c->regs || !c->ev || !c->runs)
		goto fail;
	for (unsigned k = 0; k < n; k++) {
		struct region *s = &c->regs[c->n];
		*s = *src[k];
		s->next = NULL;
		if (!nested)
			s->ckey = E.next_key++;
		s->pg = sys_alloc(src[k]->npages * sizeof(struct page));
		if (!s->pg)
			goto fail;
		c->n++;
		for (size_t i = 0; i < s->npages; i++) {
			struct page *p = &s->pg[i];
			*p = src[k]->pg[i];
			p->fl &= PF_CKEY;
			if (src[k]->pg[i].fl & PF_GONE)
				*p = (struct page){ 0 };
		}
	}
	c->fd = fd;
	c->ctl = -1;
	return c;
fail:
	for (unsigned k = 0; k < c->n; k++)
		uffd_sys_munmap(c->regs[k].pg, c->regs[k].npages * sizeof(struct page));
	free(c->regs);
	free(c->ev);
	free(c->runs);
	free(c);
	return NULL;
}

static void child_free(struct child *c)
{
	for (unsigned i = 0; i < c->n; i++)
		uffd_sys_munmap(c->regs[i].pg, c->regs[i].npages * sizeof(struct page));
	free(c->regs);
	free(c->ev);
	free(c->runs);
	free(c->q);
	close(c->fd);
	if (c->ctl >= 0)
		close(c->ctl);
	free(c);
}

static void child_add(struct child *c, const char *what)
{
	c->next = E.newkids;
	E.newkids = c;
	E.st.forks++;
	log_dbg("fork: %s uffd %d, %u regions, %s", what, c->fd, c->n,
		c->ctl >= 0 ? "own budget" : "no budget");
}

static void on_fork(int fd)
{
	unsigned n = 0;
	for (struct region *r = E.regions; r; r = r->next)
		n++;
	struct region **src = calloc(n ? n : 1, sizeof(*src));
	struct child *c = NULL;
	if (src) {
		n = 0;
		for (struct region *r = E.regions; r; r = r->next)
			src[n++] = r;
		c = child_new(fd, src, n, false);
		free(src);
	}
	if (!c) {
		log_err("fork: out of memory for the child's page table; child fd %d closed, "
			"its non-resident pages will read as zero", fd);
		close(fd);
		return;
	}
	c->ctl = E.fork_ctl; /* the socket to the dropper the child starts */
	E.fork_ctl = -1;
	E.gen++; /* from now on the parent's puts never overwrite the child's copies */
	child_add(c, "child");
}

static void child_fork(struct child *c, int fd)
{
	struct region **src = calloc(c->n ? c->n : 1, sizeof(*src));
	struct child *g = NULL;
	if (src) {
		for (unsigned k = 0; k < c->n; k++)
			src[k] = &c->regs[k];
		g = child_new(fd, src, c->n, true);
		free(src);
	}
	if (!g) {
		log_err("fork of a child: out of memory; grandchild fd %d closed, its "
			"non-resident pages will read as zero", fd);
		close(fd);
		return;
	}
	c->gen++; /* the child's later puts never overwrite the grandchild's copies */
	child_add(g, "grandchild");
}

static bool child_in_drop(const struct child *c, uintptr_t start, uintptr_t end)
{
	if (!c->drop_pending)
		return false;
	for (size_t k = 0; k < c->nruns; k++)
		if (start < c->runs[k].addr + c->runs[k].len && end > c->runs[k].addr)
			return true;
	return false;
}

/* child_range - the child discarded or unmapped [start, end): those pages read as
 * zero from now on (its own REMOVE events, from our drops, are filtered before). */
static void child_range(struct child *c, uintptr_t start, uintptr_t end)
{
	for (uintptr_t a = start & ~(uintptr_t)(PAGE - 1); a < end; a += PAGE) {
		struct region *r = child_region(c, a);
		if (!r)
			continue;
		struct page *p = &r->pg[(a - r->base) / PAGE];
		if (p->fl & PF_RES)
			c->resident--;
		*p = (struct page){ 0 };
	}
}

enum { GONE = 3 };

static int child_ioctl_rc(int err)
{
	return err == -EAGAIN ? AGAIN : err == -ESRCH ? GONE : OK;
}

/* child_serve - one fault of a child: DEFER while its page is being evicted or its
 * budget is full (an eviction is started), GONE once it exited. */
static int child_serve(struct child *c, const struct fault *f)
{
	struct region *r = child_region(c, f->addr);
	int err = 0;
	if (!r) {
		if (f->flags & UFFD_PAGEFAULT_FLAG_WP)
			return child_ioctl_rc(uffd_wp(c->fd, f->addr, PAGE, false));
		fill(c->fd, f->addr, NULL, PAGE, false, &err);
		return child_ioctl_rc(err);
	}
	size_t i = (f->addr - r->base) / PAGE;
	struct page *p = &r->pg[i];
	if (f->flags & UFFD_PAGEFAULT_FLAG_WP) {
		if (p->fl & PF_EVICT)
			return DEFER;
		err = uffd_wp(c->fd, f->addr, PAGE, false);
		if (!err && (p->fl & PF_RES))
			p->fl |= PF_DIRTY | PF_REF;
		return child_ioctl_rc(err);
	}
	if ((p->fl & PF_EVICT) || child_in_drop(c, f->addr, f->addr + PAGE))
		return DEFER;
	if (p->fl & PF_RES)
		return child_ioctl_rc(uffd_wake(c->fd, f->addr, PAGE));
	if (c->ctl >= 0 && c->resident >= E.budget) /* (before its pid came: wait for it) */
		return DEFER;
	bool wp = E.have_wp && !(f->flags & UFFD_PAGEFAULT_FLAG_WRITE);
	fetch(r, &i, 1, E.fbuf);
	fill(c->fd, f->addr, E.fbuf, PAGE, wp, &err);
	if (!err) {
		p->fl |= PF_RES | PF_REF | (wp ? 0 : PF_DIRTY);
		c->resident++;
		E.st.child_faults++;
		if (c->resident > E.st.child_resident_max)
			E.st.child_resident_max = c->resident;
	}
	return child_ioctl_rc(err);
}

static void child_unpick(struct child *c)
{
	for (size_t k = 0; k < c->evn; k++)
		if (c->ev[k].r)
			unpick(&c->ev[k]);
	c->evn = 0;
}

/* child_writeback - copy the child's dirty victims to the store under its own keys
 * (write-protected first so that its racing writes wait). Victims that cannot be
 * read or stored stay resident (the child is then over its budget). */
static void child_writeback(struct child *c)
{
	unsigned n = 0;
	struct victim *d[MAX_EVICT];
	for (size_t a = 0; a < c->evn;) {
		size_t b = a + 1;
		struct victim *v = &c->ev[a];
		if (!(v->r->pg[v->idx].fl & PF_DIRTY)) {
			a++;
			continue;
		}
		while (b < c->evn && c->ev[b].r == v->r && c->ev[b].idx == c->ev[b - 1].idx + 1 &&
		       (v->r->pg[c->ev[b].idx].fl & PF_DIRTY))
			b++;
		uintptr_t addr = v->r->base + v->idx * PAGE;
		size_t len = (b - a) * PAGE;
		int rc = E.have_wp ? uffd_wp(c->fd, addr, len, true) : 0;
		if (!rc) {
			struct iovec local = { .iov_base = E.evbuf + (size_t)n * PAGE, .iov_len = len };
			struct iovec remote = { .iov_base = (void *)addr, .iov_len = len };
			ssize_t got = process_vm_readv(c->pid, &local, 1, &remote, 1, 0);
			if (got != (ssize_t)len)
				rc = got < 0 ? -errno : -EFAULT;
		}
		if (rc)
			log_dbg("child %d: evict run %#lx+%zu: %s, skipped", (int)c->pid,
				(unsigned long)addr, len, strerror(-rc));
		for (size_t k = a; k < b; k++) {
			if (rc) {
				unpick(&c->ev[k]);
				continue;
			}
			struct region *r = c->ev[k].r;
			E.io[n] = (struct ustore_io){ .oid = (uint64_t)r->ckey << 16 | c->gen,
						      .index = (uint32_t)(r->key_off + c->ev[k].idx),
						      .page = E.evbuf + (size_t)n * PAGE };
			d[n++] = &c->ev[k];
		}
		a = b;
	}
	if (!n)
		return;
	int rc = E.store->ops->put(E.store, E.io, n);
	if (rc < 0)
		log_warn("%s store: put of %u pages of a child: %s; they stay resident",
			 E.store->ops->name, n, strerror(-rc));
	for (unsigned k = 0; k < n; k++) {
		if (E.io[k].status) {
			unpick(d[k]);
			continue;
		}
		struct page *p = &d[k]->r->pg[d[k]->idx];
		p->loc = LOC_STORE;
		p->gen = c->gen;
		p->fl = (uint8_t)((p->fl & ~PF_DIRTY) | PF_CKEY);
		E.st.writebacks++;
	}
}

/* child_evict - pick a batch of the child's resident pages (CLOCK), write back the
 * dirty ones and ask its dropper to zap them. */
static void child_evict(struct child *c)
{
	if (c->ctl < 0 || !c->pid || c->drop_pending || !c->n)
		return;
	size_t total = 0;
	for (unsigned k = 0; k < c->n; k++)
		total += c->regs[k].npages;
	unsigned ri = c->hand_r < c->n ? c->hand_r : 0;
	size_t i = c->hand_i;
	c->evn = 0;
	for (size_t scanned = 0; c->evn < E.batch && scanned < 2 * total + 1; scanned++, i++) {
		if (i >= c->regs[ri].npages) {
			ri = (ri + 1) % c->n;
			i = 0;
		}
		struct page *p = &c->regs[ri].pg[i];
		if ((p->fl & (PF_RES | PF_EVICT)) != PF_RES)
			continue;
		if (p->fl & PF_REF) {
			p->fl &= (uint8_t)~PF_REF;
			continue;
		}
		p->fl |= PF_EVICT;
		c->ev[c->evn++] = (struct victim){ .r = &c->regs[ri], .idx = i };
	}
	c->hand_r = ri;
	c->hand_i = i;
	child_writeback(c);
	size_t nr = 0;
	for (size_t k = 0; k < c->evn; k++) {
		struct victim *v = &c->ev[k];
		if (!v->r)
			continue;
		uintptr_t addr = v->r->base + v->idx * PAGE;
		if (nr && c->runs[nr - 1].addr + c->runs[nr - 1].len == addr)
			c->runs[nr - 1].len += PAGE;
		else
			c->runs[nr++] = (struct run){ .addr = addr, .len = PAGE };
	}
	if (!nr || send(c->ctl, c->runs, nr * sizeof(*c->runs), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		child_unpick(c);
		return;
	}
	c->nruns = nr;
	c->drop_pending = true;
	E.st.madvise_calls += nr;
}

static void child_drop_done(struct child *c)
{
	for (size_t k = 0; k < c->evn; k++) {
		struct victim *v = &c->ev[k];
		if (!v->r)
			continue;
		struct page *p = &v->r->pg[v->idx];
		if (!(p->fl & PF_EVICT))
			continue; /* discarded by the child meanwhile (child_range) */
		c->resident--;
		E.st.child_evicted++;
		p->fl &= (uint8_t)~(PF_RES | PF_EVICT | PF_REF | PF_DIRTY);
	}
	c->evn = 0;
	c->nruns = 0;
	c->drop_pending = false;
}

/* child_ctl - messages of the child's dropper: its pid, then one ack per drop.
 * Returns false when the dropper is gone (the child exited or exec'd). */
static bool child_ctl(struct child *c)
{
	for (;;) {
		pid_t buf[2];
		ssize_t n = recv(c->ctl, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		if (n == 0)
			return false;
		if (n == sizeof(pid_t) && !c->pid)
			c->pid = buf[0];
		else if (c->drop_pending)
			child_drop_done(c);
	}
}

static void child_queue(struct child *c, uintptr_t addr, uint64_t flags)
{
	if (c->qn == c->qcap) {
		size_t cap = c->qcap ? c->qcap * 2 : 16;
		struct fault *n = realloc(c->q, cap * sizeof(*n));
		if (!n) {
			log_err("child fault queue: out of memory");
			abort();
		}
		c->q = n;
		c->qcap = cap;
	}
	c->q[c->qn++] = (struct fault){ .addr = addr & ~(uintptr_t)(PAGE - 1), .flags = flags };
}

/* child_read - read the child's events; returns false when the child is gone */
static bool child_read(struct child *c)
{
	struct uffd_msg msgs[32];
	for (;;) {
		ssize_t n = read(c->fd, msgs, sizeof(msgs));
		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		for (size_t k = 0; k < (size_t)n / sizeof(msgs[0]); k++) {
			struct uffd_msg *m = &msgs[k];
			uintptr_t s = (uintptr_t)m->arg.remove.start, e = (uintptr_t)m->arg.remove.end;
			switch (m->event) {
			case UFFD_EVENT_PAGEFAULT:
				child_queue(c, (uintptr_t)m->arg.pagefault.address,
					    m->arg.pagefault.flags);
				break;
			case UFFD_EVENT_REMOVE:
				if (!child_in_drop(c, s, e))
					child_range(c, s, e);
				break;
			case UFFD_EVENT_UNMAP:
				child_range(c, s, e);
				break;
			case UFFD_EVENT_FORK:
				child_fork(c, (int)m->arg.fork.ufd);
				break;
			case UFFD_EVENT_REMAP:
				log_warn("child uffd %d: mremap of a paged range in a forked child "
					 "is not followed; its moved pages read as zero", c->fd);
				break;
			default:
				break;
			}
		}
		if ((size_t)n < sizeof(msgs))
			return true;
	}
}

/* child_serve_queue - serve the child's queued faults; false when it is gone */
static bool child_serve_queue(struct child *c)
{
	size_t keep = 0;
	bool full = false;
	for (size_t k = 0; k < c->qn; k++) {
		int rc = child_serve(c, &c->q[k]);
		if (rc == GONE)
			return false;
		if (rc == AGAIN) { /* its mm is changing: read its events first */
			while (k < c->qn)
				c->q[keep++] = c->q[k++];
			break;
		}
		if (rc == DEFER) {
			c->q[keep++] = c->q[k];
			full = true;
		}
	}
	c->qn = keep;
	if (full || c->resident + E.batch / 2 >= E.budget)
		child_evict(c);
	return true;
}

/* child_alive - an ioctl that needs the child's mm fails with ESRCH once it exited
 * (used for children without a dropper, whose socket would tell) */
static bool child_alive(struct child *c)
{
	/* write-protecting a page is harmless: a write faults and is let through */
	for (unsigned k = 0; k < c->n; k++) {
		int rc = uffd_wp(c->fd, c->regs[k].base, PAGE, E.have_wp);
		if (rc != -ENOENT)
			return rc != -ESRCH;
	}
	return true;
}

static void children_adopt(void)
{
	while (E.newkids) {
		struct child *c = E.newkids;
		E.newkids = c->next;
		c->next = E.children;
		E.children = c;
	}
}

static void children_reap(bool probe)
{
	children_adopt();
	for (struct child **pp = &E.children; *pp;) {
		struct child *c = *pp;
		bool alive = child_read(c);
		if (alive && c->ctl >= 0)
			alive = child_ctl(c);
		if (alive)
			alive = child_serve_queue(c);
		if (alive && probe && c->ctl < 0)
			alive = child_alive(c);
		if (alive) {
			pp = &c->next;
			continue;
		}
		log_dbg("child uffd %d: child exited", c->fd);
		*pp = c->next;
		child_free(c);
	}
	children_adopt();
}

/* The dropper thread of a forked child: says its pid, then madvises the runs the
 * parent's handler sends and acknowledges each batch. */
static void *child_dropper(void *arg)
{
	int fd = (int)(intptr_t)arg;
	in_engine = 1;
	prctl(PR_SET_NAME, "rtmem-cdrop");
	pid_t pid = getpid();
	struct run *runs = E.runs; /* the parent's buffer: unused in the child */
	if (send(fd, &pid, sizeof(pid), MSG_NOSIGNAL) == sizeof(pid) && runs) {
		for (;;) {
			ssize_t n = recv(fd, runs, MAX_EVICT * sizeof(*runs), 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			for (size_t k = 0; k < (size_t)n / sizeof(*runs); k++)
				madvise((void *)runs[k].addr, runs[k].len, MADV_DONTNEED_LOCKED);
			char ack = 1;
			if (send(fd, &ack, 1, MSG_NOSIGNAL) != 1)
				break;
		}
	}
	close(fd);
	return NULL;
}

/* atfork: a fork is serialised with the FORK event it raises, so that the handler
 * hands the right socket to the child's entry. */
static __thread bool fork_held;

static void atfork_prepare(void)
{
	if (atomic_load(&E.in_child) || in_engine || !uffd_engine_active())
		return;
	pthread_mutex_lock(&E.fork_mu);
	fork_held = true;
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp))
		sp[0] = sp[1] = -1;
	pthread_mutex_lock(&E.lock);
	E.fork_ctl = sp[0];
	E.fork_peer = sp[1];
	pthread_mutex_unlock(&E.lock);
}

static void atfork_parent(void)
{
	if (!fork_held)
		return;
	pthread_mutex_lock(&E.lock);
	if (E.fork_ctl >= 0) /* no FORK event took it (no region was mapped) */
		close(E.fork_ctl);
	if (E.fork_peer >= 0)
		close(E.fork_peer);
	E.fork_ctl = E.fork_peer = -1;
	pthread_mutex_unlock(&E.lock);
	fork_held = false;
	pthread_mutex_unlock(&E.fork_mu);
}

static void atfork_child(void)
{
	atomic_store(&E.in_child, true);
	if (!fork_held)
		return;
	fork_held = false;
	int ctl = E.fork_ctl, peer = E.fork_peer;
	E.fork_ctl = E.fork_peer = -1;
	pthread_mutex_unlock(&E.fork_mu);
	if (ctl >= 0)
		close(ctl);
	if (peer < 0)
		return;
	pthread_t t;
	pthread_attr_t at;
	sigset_t all, old;
	sigfillset(&all);
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&t, &at, child_dropper, (void *)(intptr_t)peer)) {
		log_warn("fork: no dropper thread in the child (%s): it has no budget",
			 strerror(errno));
		close(peer);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&at);
}

/* ------------------------------------------------------------ handler loop */

static void serve_queue(void)
{
	size_t keep = 0;
	bool deferred = false;
	for (size_t k = 0; k < E.qn; k++) {
		int rc = serve(&E.q[k]);
		if (rc == OK)
			continue;
		if (rc == DEFER && !deferred) {
			E.st.deferred++;
			deferred = true;
		}
		E.q[keep++] = E.q[k];
		if (rc == AGAIN) { /* events pending: read them first */
			for (k++; k < E.qn; k++)
				E.q[keep++] = E.q[k];
			break;
		}
	}
	E.qn = keep;
}

static void *handler_main(void *arg)
{
	in_engine = 1;
	prctl(PR_SET_NAME, "rtmem-uffd");
	struct pollfd pf[3 + 128];
	for (;;) {
		unsigned np = 0, nc = 0;
		pf[np++] = (struct pollfd){ .fd = E.uffd, .events = POLLIN };
		pf[np++] = (struct pollfd){ .fd = E.wake_fd, .events = POLLIN };
		pf[np++] = (struct pollfd){ .fd = E.drop_fd, .events = POLLIN };
		pthread_mutex_lock(&E.lock);
		bool busy = E.qn && !E.drop_pending;
		for (struct child *c = E.children; c && nc < 64; c = c->next, nc++) {
			pf[np++] = (struct pollfd){ .fd = c->fd, .events = POLLIN };
			if (c->ctl >= 0)
				pf[np++] = (struct pollfd){ .fd = c->ctl, .events = POLLIN };
			busy |= c->qn > 0;
		}
		bool stop = E.stopping && !E.drop_pending; /* the dropper needs us to finish */
		pthread_mutex_unlock(&E.lock);
		if (stop)
			break;
		int rc = poll(pf, np, busy ? 1 : 1000);
		if (rc < 0 && errno != EINTR) {
			log_err("poll: %s", strerror(errno));
			break;
		}
		uint64_t v;
		if (pf[1].revents & POLLIN && read(E.wake_fd, &v, sizeof(v)) < 0)
			log_dbg("wake read: %s", strerror(errno));
		pthread_mutex_lock(&E.lock);
		read_events();
		if (pf[2].revents & POLLIN) {
			if (read(E.drop_fd, &v, sizeof(v)) == sizeof(v))
				drop_done();
		}
		uint64_t now = evloop_now_ms();
		bool probe = now - E.last_probe_ms >= 1000;
		if (probe)
			E.last_probe_ms = now;
		if (E.children || E.newkids)
			children_reap(probe);
		E.busy++;
		serve_queue();
		if (E.resident + E.batch / 2 >= E.budget || E.qn)
			evict_start();
		E.busy--;
		if (E.graveyard)
			regions_reap();
		flush_pending();
		pthread_mutex_unlock(&E.lock);
	}
	return NULL;
}

/* ------------------------------------------------------------ set-up */

static int open_uffd(int *fd_out, uint64_t *avail, uint64_t want, uint64_t *got)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && errno == EPERM) {
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
		if (fd >= 0)
			log_warn("userfaultfd: only user-mode faults allowed (sysctl "
				 "vm.unprivileged_userfaultfd=0): system calls that read or "
				 "write paged memory directly may fail with EFAULT");
	}
	if (fd < 0) {
		int e = errno;
		if (e == ENOSYS)
			set_error("userfaultfd(2) is not available: the kernel lacks "
				  "CONFIG_USERFAULTFD or a seccomp filter (container runtime) "
				  "blocks it; allow the userfaultfd syscall");
		else if (e == EPERM)
			set_error("userfaultfd(2) not permitted: set sysctl "
				  "vm.unprivileged_userfaultfd=1 or run with CAP_SYS_PTRACE "
				  "(a seccomp filter may also deny it)");
		else
			set_error("userfaultfd(2): %s", strerror(e));
		return -e;
	}
	struct uffdio_api api = { .api = UFFD_API, .features = want };
	if (ioctl(fd, UFFDIO_API, &api)) {
		int e = errno;
		close(fd);
		set_error("UFFDIO_API (features %#llx): %s", (unsigned long long)want,
			  strerror(e));
		return -e;
	}
	if (avail)
		*avail = api.features;
	if (got)
		*got = api.features;
	*fd_out = fd;
	return 0;
}

static uint64_t env_size(const char *name, uint64_t dflt)
{
	const char *s = getenv(name);
	uint64_t v;
	if (s && *s && !config_parse_size(s, &v))
		return v;
	return dflt;
}

static unsigned env_flags(void)
{
	const char *s = getenv("RTMEM_FLAGS");
	unsigned f = 0;
	if (!s)
		return 0;
	if (strstr(s, "noprefetch"))
		f |= RTMEM_NO_PREFETCH;
	if (strstr(s, "fifo"))
		f |= RTMEM_EVICT_FIFO;
	if (strstr(s, "nomlock"))
		f |= RTMEM_NO_MLOCK;
	if (strstr(s, "nowp"))
		f |= RTMEM_NO_WP;
	if (strstr(s, "nomove"))
		f |= RTMEM_NO_MOVE;
	return f;
}

static void engine_cleanup(void);

/* sink_open - the destination of UFFDIO_MOVE evictions: a reserved range (no memory
 * until pages are moved in, and they are freed right after) registered with a
 * userfaultfd of its own that has no REMOVE events. Without it (kernel < 6.8, or
 * RTMEM_FLAGS=nomove) every eviction goes through the dropper thread. */
static void sink_open(void)
{
	size_t len = (size_t)MAX_EVICT * 257 * PAGE; /* a batch of runs merged over gaps */
	void *p = uffd_sys_mmap(NULL, len, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	int fd = -1;
	if (p == MAP_FAILED || open_uffd(&fd, NULL, UFFD_FEATURE_MOVE, NULL))
		goto fail;
	madvise(p, len, MADV_NOHUGEPAGE);
	struct uffdio_register reg = { .range = { .start = (uintptr_t)p, .len = len },
				       .mode = UFFDIO_REGISTER_MODE_MISSING };
	if (ioctl(fd, UFFDIO_REGISTER, &reg))
		goto fail;
	if (E.use_mlock && mlock2(p, len, MLOCK_ONFAULT))
		goto fail;
	E.sink_fd = fd;
	E.sink = (uintptr_t)p;
	E.sink_len = len;
	E.sink_off = 0;
	return;
fail:
	log_dbg("no UFFDIO_MOVE sink: %s", strerror(errno));
	if (fd >= 0)
		close(fd);
	if (p != MAP_FAILED)
		uffd_sys_munmap(p, len);
	last_error[0] = 0;
}

API int rtmem_init(const struct rtmem_config *cfg)
{
	struct rtmem_config c = cfg ? *cfg : (struct rtmem_config){ 0 };
	int rc;

	pthread_mutex_lock(&E.lock);
	if (E.running) {
		pthread_mutex_unlock(&E.lock);
		return -EALREADY;
	}
	if (!c.local_mem)
		c.local_mem = env_size("RTMEM_LOCAL_MEM", 256ull << 20);
	if (!c.store)
		c.store = getenv("RTMEM_STORE");
	if (!c.store || !*c.store)
		c.store = "tmem";
	if (!c.mem_store_limit)
		c.mem_store_limit = env_size("RTMEM_MEM_STORE_LIMIT", 0);
	if (!c.spill_dir)
		c.spill_dir = getenv("RTMEM_SPILL_DIR");
	if (!c.spill_dir || !*c.spill_dir)
		c.spill_dir = "/var/tmp";
	c.flags |= env_flags();
	if (!c.client_name)
		c.client_name = getenv("RTMEM_CLIENT_NAME");
	if (c.client_name && *c.client_name) {
		snprintf(E.name, sizeof(E.name), "%s", c.client_name);
	} else {
		char comm[17] = "";
		prctl(PR_GET_NAME, comm);
		snprintf(E.name, sizeof(E.name), "rtmem-%.12s-%d", comm, (int)getpid());
	}
	E.cfg = c;
	E.budget = c.local_mem / PAGE;
	if (E.budget < MIN_BUDGET)
		E.budget = MIN_BUDGET;
	E.batch = E.budget / 8;
	if (E.batch > MAX_EVICT)
		E.batch = MAX_EVICT;
	if (E.batch < 4)
		E.batch = 4;
	E.prefetch = !(c.flags & RTMEM_NO_PREFETCH);
	E.fifo = c.flags & RTMEM_EVICT_FIFO;
	vpolicy_init(&E.vp, E.budget, E.fifo);
	E.tr = (struct trend){ 0 };
	E.use_mlock = !(c.flags & RTMEM_NO_MLOCK);

	/* features: ask what the kernel has, then open the real fd with what we use */
	int probe;
	uint64_t avail = 0;
	rc = open_uffd(&probe, &avail, 0, NULL);
	if (rc)
		goto out_unlock;
	close(probe);
	E.avail = avail;
	uint64_t want = UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP |
			UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP;
	if (!(c.flags & RTMEM_NO_WP))
		want |= UFFD_FEATURE_PAGEFAULT_FLAG_WP;
	if ((avail & want) != want)
		log_warn("userfaultfd features %#llx missing (kernel has %#llx): %s%s",
			 (unsigned long long)(want & ~avail), (unsigned long long)avail,
			 (want & ~avail & UFFD_FEATURE_PAGEFAULT_FLAG_WP) ?
				 "no write-protect, every evicted page is written back; " : "",
			 (want & ~avail & UFFD_FEATURE_EVENT_FORK) ?
				 "fork children will not see non-resident pages" : "");
	want &= avail;
	rc = open_uffd(&E.uffd, NULL, want, &E.features);
	if (rc)
		goto out_unlock;
	E.features = want;
	E.st.features = want;
	E.have_wp = want & UFFD_FEATURE_PAGEFAULT_FLAG_WP;
	log_dbg("uffd %d: features %#llx (wp %d, wp-async %s, move %s)", E.uffd,
		(unsigned long long)want, E.have_wp,
		avail & UFFD_FEATURE_WP_ASYNC ? "available" : "no",
		avail & UFFD_FEATURE_MOVE ? "available" : "no");
	E.madv = E.use_mlock ? MADV_DONTNEED_LOCKED : MADV_DONTNEED;
	if ((avail & UFFD_FEATURE_MOVE) && !(c.flags & RTMEM_NO_MOVE))
		sink_open();

	if (!strcmp(c.store, "mem")) {
		rc = ustore_mem_new(c.mem_store_limit, &E.store);
	} else if (!strcmp(c.store, "tmem")) {
		rc = ustore_tmem_new(c.socket, E.name, &E.store);
		if (rc) {
			const char *s = c.socket ? c.socket : getenv("RTMEM_SOCKET");
			set_error("cannot reach the rtmem borrower at %s as client '%s': %s "
				  "(is rtmem-borrower running? set RTMEM_SOCKET or --socket)",
				  s && *s ? s : "/run/rtmem/borrower.sock", E.name, strerror(-rc));
		}
	} else {
		set_error("unknown store '%s' (tmem or mem)", c.store);
		rc = -EINVAL;
	}
	if (rc)
		goto out_close_uffd;
	rc = uspill_new(c.spill_dir, &E.spill);
	if (rc) {
		set_error("spill file in %s: %s", c.spill_dir, strerror(-rc));
		goto out_store;
	}
	E.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	E.drop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	E.evbuf = sys_alloc((size_t)MAX_EVICT * PAGE);
	E.fbuf = sys_alloc((size_t)MAX_FETCH * PAGE);
	E.io = calloc(MAX_EVICT, sizeof(*E.io));
	E.ev = calloc(MAX_EVICT, sizeof(*E.ev));
	E.runs = calloc(MAX_EVICT, sizeof(*E.runs));
	if (E.wake_fd < 0 || E.drop_fd < 0 || !E.evbuf || !E.fbuf || !E.io || !E.ev ||
	    !E.runs) {
		set_error("out of memory or file descriptors");
		rc = -ENOMEM;
		goto out_bufs;
	}
	atomic_store(&E.lo, UINTPTR_MAX);
	E.pid = getpid();
	E.stopping = false;
	E.drop_stop = false;
	E.next_key = 1;

	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(&E.handler, NULL, handler_main, NULL);
	if (!rc) {
		rc = -pthread_create(&E.dropper, NULL, dropper_main, NULL);
		if (rc) {
			E.stopping = true;
			pthread_join(E.handler, NULL);
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		set_error("pthread_create: %s", strerror(-rc));
		goto out_bufs;
	}
	static bool once;
	if (!once) {
		once = true;
		pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
		atexit(rtmem_shutdown);
	}
	E.running = true;
	E.st.budget_pages = E.budget;
	log_dbg("engine up: budget %zu pages, batch %zu, store %s, client '%s'", E.budget,
		E.batch, E.store->ops->name, E.name);
	pthread_mutex_unlock(&E.lock);
	return 0;

out_bufs:
	engine_cleanup();
	uspill_free(E.spill);
	E.spill = NULL;
out_store:
	E.store->ops->destroy(E.store);
	E.store = NULL;
out_close_uffd:
	close(E.uffd);
	E.uffd = -1;
out_unlock:
	pthread_mutex_unlock(&E.lock);
	return rc;
}

static void engine_cleanup(void)
{
	if (E.sink_fd >= 0) {
		close(E.sink_fd);
		uffd_sys_munmap((void *)E.sink, E.sink_len);
		E.sink_fd = -1;
	}
	if (E.wake_fd >= 0)
		close(E.wake_fd);
	if (E.drop_fd >= 0)
		close(E.drop_fd);
	E.wake_fd = E.drop_fd = -1;
	if (E.evbuf)
		uffd_sys_munmap(E.evbuf, (size_t)MAX_EVICT * PAGE);
	if (E.fbuf)
		uffd_sys_munmap(E.fbuf, (size_t)MAX_FETCH * PAGE);
	E.evbuf = E.fbuf = NULL;
	free(E.io);
	free(E.ev);
	free(E.runs);
	free(E.q);
	free(E.flushq);
	free(E.slot_free);
	E.io = NULL;
	E.ev = NULL;
	E.runs = NULL;
	E.q = NULL;
	E.flushq = NULL;
	E.slot_free = NULL;
	E.qn = E.qcap = E.nflush = E.flush_cap = E.nfree = E.free_cap = 0;
}

API void rtmem_shutdown(void)
{
	if (atomic_load(&E.in_child) || E.pid != getpid())
		return;
	pthread_mutex_lock(&E.lock);
	if (!E.running) {
		pthread_mutex_unlock(&E.lock);
		return;
	}
	E.running = false;
	E.stopping = true;
	pthread_mutex_unlock(&E.lock);
	if (getenv("RTMEM_STATS"))
		rtmem_print_stats("exit");
	wake_handler();
	pthread_join(E.handler, NULL);
	pthread_mutex_lock(&E.dmu);
	E.drop_stop = true;
	pthread_cond_broadcast(&E.dcond);
	pthread_mutex_unlock(&E.dmu);
	pthread_join(E.dropper, NULL);

	pthread_mutex_lock(&E.lock);
	/* unregister: anything touched after this is ordinary (zero) memory, never a
	 * thread hanging on a fault nobody serves */
	for (struct region *r = E.regions; r; r = r->next) {
		struct uffdio_range rg = { .start = r->base, .len = r->npages * PAGE };
		ioctl(E.uffd, UFFDIO_UNREGISTER, &rg);
	}
	close(E.uffd);
	E.uffd = -1;
	children_adopt();
	while (E.children) {
		struct child *c = E.children;
		E.children = c->next;
		child_free(c);
	}
	while (E.regions) {
		struct region *r = E.regions;
		E.regions = r->next;
		region_free(r);
	}
	while (E.graveyard) {
		struct region *r = E.graveyard;
		E.graveyard = r->next;
		region_free(r);
	}
	E.hand_r = NULL;
	bounds_update();
	E.store->ops->destroy(E.store);
	E.store = NULL;
	uspill_free(E.spill);
	E.spill = NULL;
	engine_cleanup();
	E.resident = 0;
	E.evn = 0;
	E.drop_pending = false;
	memset(&E.st, 0, sizeof(E.st));
	pthread_mutex_unlock(&E.lock);
}

/* ------------------------------------------------------------ regions API */

API int rtmem_region_create(size_t size, void **addr)
{
	if (!size)
		return -EINVAL;
	size = (size + PAGE - 1) & ~(size_t)(PAGE - 1);
	if (size / PAGE > UINT32_MAX)
		return -E2BIG;
	pthread_mutex_lock(&E.lock);
	int rc = -ENOTCONN;
	if (!E.running || atomic_load(&E.in_child))
		goto out_unlock;
	void *p = uffd_sys_mmap(NULL, size, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		rc = -errno;
		goto out_unlock;
	}
	madvise(p, size, MADV_NOHUGEPAGE);
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)p, .len = size },
		.mode = UFFDIO_REGISTER_MODE_MISSING |
			(E.have_wp ? UFFDIO_REGISTER_MODE_WP : 0),
	};
	if (ioctl(E.uffd, UFFDIO_REGISTER, &reg)) {
		rc = -errno;
		log_err("UFFDIO_REGISTER %p+%zu: %s", p, size, strerror(errno));
		goto out_unmap;
	}
	if (E.use_mlock && mlock2(p, size, MLOCK_ONFAULT)) {
		log_warn("mlock2(MLOCK_ONFAULT) of region %p+%zu: %s; resident pages may be "
			 "swapped by the kernel (raise RLIMIT_MEMLOCK, or run in a memory "
			 "cgroup without swap; see docs/uffd.md)", p, size, strerror(errno));
		E.use_mlock = false;
		E.madv = MADV_DONTNEED;
	}
	struct region *r = region_new((uintptr_t)p, size / PAGE, E.next_key++, 0);
	if (!r) {
		rc = -ENOMEM;
		goto out_unmap;
	}
	r->next = E.regions;
	E.regions = r;
	bounds_update();
	*addr = p;
	log_dbg("region %p+%zu registered (key %u)", p, size, r->key_id);
	pthread_mutex_unlock(&E.lock);
	return 0;

out_unmap:
	uffd_sys_munmap(p, size);
out_unlock:
	pthread_mutex_unlock(&E.lock);
	return rc;
}

API int64_t rtmem_region_size(const void *addr)
{
	pthread_mutex_lock(&E.lock);
	int64_t rc = -ENOENT;
	for (struct region *r = E.regions; r; r = r->next)
		if (r->base == (uintptr_t)addr)
			rc = (int64_t)(r->npages * PAGE);
	pthread_mutex_unlock(&E.lock);
	return rc;
}

API int rtmem_region_destroy(void *addr)
{
	int64_t size = rtmem_region_size(addr);
	if (size < 0)
		return (int)size;
	uffd_prepare_unmap(addr, (size_t)size);
	int rc = uffd_sys_munmap(addr, (size_t)size) ? -errno : 0;
	uffd_finish_unmap();
	return rc;
}

/* ------------------------------------------------------------ shim hooks */

bool uffd_engine_active(void)
{
	return E.running && !in_engine && !atomic_load(&E.in_child);
}

bool uffd_overlaps(const void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr;
	return a < atomic_load(&E.hi) && a + len > atomic_load(&E.lo);
}

void uffd_prepare_unmap(const void *addr, size_t len)
{
	pthread_mutex_lock(&E.dmu);
	E.unmap_busy++;
	while (E.drop_pending && !E.drop_stop)
		pthread_cond_wait(&E.dcond, &E.dmu);
	pthread_mutex_unlock(&E.dmu);
}

void uffd_finish_unmap(void)
{
	pthread_mutex_lock(&E.dmu);
	E.unmap_busy--;
	pthread_mutex_unlock(&E.dmu);
	wake_handler();
}

/* ------------------------------------------------------------ statistics */

API int rtmem_get_stats(struct rtmem_stats *st)
{
	pthread_mutex_lock(&E.lock);
	*st = E.st;
	st->budget_pages = E.budget;
	st->resident = E.resident;
	pthread_mutex_unlock(&E.lock);
	return 0;
}

API void rtmem_print_stats(const char *tag)
{
	struct rtmem_stats s;
	rtmem_get_stats(&s);
	char line[700];
	snprintf(line, sizeof(line),
		 "rtmem[%d] %s: budget=%llu resident=%llu max=%llu faults=%llu wp=%llu "
		 "zero=%llu fetched=%llu prefetched=%llu refaults=%llu evicted=%llu "
		 "writebacks=%llu clean=%llu spilled=%llu spill_reads=%llu madvise=%llu "
		 "eexist=%llu deferred=%llu forks=%llu child_faults=%llu child_evicted=%llu "
		 "adopted=%llu moved=%llu promoted=%llu\n",
		 (int)getpid(), tag ? tag : "stats", (unsigned long long)s.budget_pages,
		 (unsigned long long)s.resident, (unsigned long long)s.resident_max,
		 (unsigned long long)s.faults, (unsigned long long)s.wp_faults,
		 (unsigned long long)s.zero_fills, (unsigned long long)s.fetched,
		 (unsigned long long)s.prefetched, (unsigned long long)s.refaults,
		 (unsigned long long)s.evicted, (unsigned long long)s.writebacks,
		 (unsigned long long)s.clean_drops, (unsigned long long)s.spilled,
		 (unsigned long long)s.spill_reads, (unsigned long long)s.madvise_calls,
		 (unsigned long long)s.eexist, (unsigned long long)s.deferred,
		 (unsigned long long)s.forks, (unsigned long long)s.child_faults,
		 (unsigned long long)s.child_evicted, (unsigned long long)s.adopted,
		 (unsigned long long)s.moved, (unsigned long long)s.promoted);
	if (write(2, line, strlen(line)) < 0)
		return;
}
