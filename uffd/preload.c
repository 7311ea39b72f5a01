/* preload.c - librtmem-preload.so, the LD_PRELOAD shim of rtmem-run: starts the
 * engine when the program loads and routes large private anonymous mmaps and large
 * malloc/calloc/realloc/posix_memalign/aligned_alloc blocks into registered regions.
 * munmap/mremap of a region first wait for an eviction touching it to finish.
 *
 * Environment: RTMEM_LOCAL_MEM, RTMEM_SOCKET, RTMEM_CLIENT_NAME, RTMEM_THRESHOLD
 * (smallest routed size, default 1M), RTMEM_REQUIRED=1 (exit if the engine cannot
 * start; set by rtmem-run), plus the engine's own (docs/uffd.md).
 */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/common.h"
#include "uffd/uffd-internal.h"
#include "uffd/uffd.h"

#define EXPORT __attribute__((visibility("default")))
#define HDR UFFD_PAGE /* a routed malloc block starts one page into its region */
#define HDR_MAGIC 0x72746d656d626c6bull

struct hdr {
	uint64_t magic;
	size_t size; /* requested bytes */
};

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static size_t threshold = 1u << 20;
static int ready;

__attribute__((constructor)) static void preload_init(void)
{
	uint64_t v;
	const char *t = getenv("RTMEM_THRESHOLD");
	if (t && !config_parse_size(t, &v) && v >= UFFD_PAGE)
		threshold = (size_t)v;
	int rc = rtmem_init(NULL);
	if (rc) {
		const char *req = getenv("RTMEM_REQUIRED");
		fprintf(stderr, "rtmem: cannot start paging: %s\n", rtmem_last_error());
		if (req && *req == '1')
			_exit(111);
		return;
	}
	ready = 1;
}

static bool route(size_t len)
{
	return ready && len >= threshold && uffd_engine_active();
}

/* ------------------------------------------------------------ mmap family */

EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	int bad = MAP_FIXED | MAP_FIXED_NOREPLACE | MAP_HUGETLB | MAP_GROWSDOWN | MAP_STACK;
	if ((flags & MAP_ANONYMOUS) && (flags & MAP_TYPE) == MAP_PRIVATE && !(flags & bad) &&
	    prot == (PROT_READ | PROT_WRITE) && route(len)) {
		void *p;
		int rc = rtmem_region_create(len, &p);
		if (!rc)
			return p;
		/* fall back to ordinary memory */
	}
	void *p = uffd_sys_mmap(addr, len, prot, flags, fd, off);
	if ((unsigned long)p > -4096ul) {
		errno = -(int)(long)p;
		return MAP_FAILED;
	}
	return p;
}

EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return mmap(addr, len, prot, flags, fd, off);
}

EXPORT int munmap(void *addr, size_t len)
{
	bool ours = ready && uffd_engine_active() && uffd_overlaps(addr, len);
	if (ours)
		uffd_prepare_unmap(addr, len);
	int rc = (int)syscall(SYS_munmap, addr, len);
	int e = errno;
	if (ours)
		uffd_finish_unmap();
	errno = e;
	return rc;
}

EXPORT void *mremap(void *old, size_t oldlen, size_t newlen, int flags, ...)
{
	void *newaddr = NULL;
	if (flags & MREMAP_FIXED) {
		va_list ap;
		va_start(ap, flags);
		newaddr = va_arg(ap, void *);
		va_end(ap);
	}
	bool ours = ready && uffd_engine_active() && uffd_overlaps(old, oldlen);
	if (ours)
		uffd_prepare_unmap(old, oldlen);
	long r = syscall(SYS_mremap, old, oldlen, newlen, flags, newaddr);
	int e = errno;
	if (ours)
		uffd_finish_unmap();
	errno = e;
	return r == -1 ? MAP_FAILED : (void *)r;
}

/* regions are mlocked, where plain DONTNEED/FREE fail with EINVAL: drop them the
 * locked way (same semantics; MADV_FREE may always discard at once) */
EXPORT int madvise(void *addr, size_t len, int advice)
{
	if ((advice == MADV_DONTNEED || advice == MADV_FREE) && ready &&
	    uffd_engine_active() && uffd_overlaps(addr, len))
		advice = MADV_DONTNEED_LOCKED;
	return (int)syscall(SYS_madvise, addr, len, advice);
}

/* ------------------------------------------------------------ malloc family */

static void *big_alloc(size_t size)
{
	void *base;
	if (size > SIZE_MAX - HDR || rtmem_region_create(size + HDR, &base))
		return NULL;
	struct hdr *h = base;
	h->magic = HDR_MAGIC;
	h->size = size;
	return (uint8_t *)base + HDR;
}

/* ours - the header of a routed block, or NULL for libc's */
static struct hdr *ours(void *p)
{
	if (!p || !ready || ((uintptr_t)p & (HDR - 1)) || !uffd_overlaps(p, 1))
		return NULL;
	void *base = (uint8_t *)p - HDR;
	if (rtmem_region_size(base) < 0)
		return NULL;
	struct hdr *h = base;
	return h->magic == HDR_MAGIC ? h : NULL;
}

EXPORT void *malloc(size_t size)
{
	if (route(size)) {
		void *p = big_alloc(size);
		if (p)
			return p;
	}
	return __libc_malloc(size);
}

EXPORT void free(void *p)
{
	struct hdr *h = ours(p);
	if (h) {
		h->magic = 0;
		rtmem_region_destroy(h);
		return;
	}
	__libc_free(p);
}

EXPORT void *calloc(size_t n, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	if (route(total)) {
		void *p = big_alloc(total); /* regions start zeroed */
		if (p)
			return p;
	}
	return __libc_calloc(n, size);
}

EXPORT void *realloc(void *p, size_t size)
{
	struct hdr *h = ours(p);
	if (!h && !route(size))
		return __libc_realloc(p, size);
	if (!p)
		return malloc(size);
	size_t old = h ? h->size : malloc_usable_size(p);
	if (h && size <= (size_t)rtmem_region_size(h) - HDR && size >= threshold) {
		h->size = size;
		return p;
	}
	void *n = malloc(size);
	if (!n)
		return NULL;
	memcpy(n, p, old < size ? old : size);
	free(p);
	return n;
}

EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
	if (align <= HDR && route(size)) {
		void *p = big_alloc(size);
		if (p) {
			*out = p;
			return 0;
		}
	}
	void *p = __libc_memalign(align, size);
	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

EXPORT void *aligned_alloc(size_t align, size_t size)
{
	if (align <= HDR && route(size)) {
		void *p = big_alloc(size);
		if (p)
			return p;
	}
	return __libc_memalign(align, size);
}

EXPORT void *memalign(size_t align, size_t size)
{
	return aligned_alloc(align, size);
}

EXPORT size_t malloc_usable_size(void *p)
{
	struct hdr *h = ours(p);
	if (h)
		return (size_t)rtmem_region_size(h) - HDR;
	static size_t (*real)(void *);
	if (!real)
		real = (size_t(*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
	return p && real ? real(p) : 0;
}
