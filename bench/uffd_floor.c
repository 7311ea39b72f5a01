/* uffd_floor - the raw userfaultfd cost floor: one thread faults the pages of a
 * registered anonymous region (sequential order, then a random permutation), one
 * handler thread resolves every fault with a single-page UFFDIO_COPY from a buffer
 * already in memory. Nothing else happens on the fault path (no store, no eviction,
 * no bookkeeping), so this is what any userfaultfd pager pays at least per fault.
 *
 *   uffd_floor [-n PAGES] [-r REPEAT] [--mlock] [--json FILE]
 *
 * Each pass first drops the region (MADV_DONTNEED: without EVENT_REMOVE no event is
 * raised) so that every page faults exactly once; an unmeasured warm-up pass
 * allocates the page tables first. Every page read is checked against its stamp.
 * Prints per-fault latency (mean, p50, p99, min; measured around the faulting load
 * in the faulting thread) and the wall time per fault of the whole pass.
 * --mlock registers the region mlock2(MLOCK_ONFAULT)ed, as the rtmem engine does.
 * --same-cpu CPU pins both threads to one CPU (a fault is then two context switches
 * on that CPU instead of a cross-CPU wake-up, which is what dominates in a VM whose
 * idle vCPUs halt); the default leaves them unpinned, as the engine's threads are.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PG 4096ul

#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 0x01
#endif
#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED 24
#endif

static int uffd;
static char *region, *src;
static size_t npages;
static volatile uint64_t copies, eexists;
static bool lock;
static int same_cpu = -1;

static void pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set)) {
		fprintf(stderr, "uffd_floor: cannot pin to CPU %d\n", cpu);
		exit(1);
	}
}

static inline uint64_t stamp(size_t pg)
{
	return (uint64_t)pg * 0x9e3779b97f4a7c15ull | 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "uffd_floor: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* The handler: a blocking read of one message, one UFFDIO_COPY. Stopped with
 * pthread_cancel (read() is a cancellation point), so its loop has no extra
 * poll or flag check on the fault path. */
static void *handler(void *arg)
{
	(void)arg;
	struct uffd_msg msg;
	if (same_cpu >= 0)
		pin(same_cpu);
	for (;;) {
		ssize_t n = read(uffd, &msg, sizeof(msg));
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			die("read(uffd)");
		}
		if (n != sizeof(msg) || msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		uint64_t addr = msg.arg.pagefault.address & ~(PG - 1);
		struct uffdio_copy cp = {
			.dst = addr,
			.src = (uint64_t)(uintptr_t)(src + (addr - (uint64_t)(uintptr_t)region)),
			.len = PG,
			.mode = 0,
		};
		if (ioctl(uffd, UFFDIO_COPY, &cp)) {
			if (errno != EEXIST)
				die("UFFDIO_COPY");
			/* already there (cannot happen with one faulter): wake and go on */
			struct uffdio_range r = { .start = addr, .len = PG };
			ioctl(uffd, UFFDIO_WAKE, &r);
			eexists++;
			continue;
		}
		copies++;
	}
	return NULL;
}

static uint64_t rng(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

struct result {
	const char *name;
	double mean_us, p50_us, p99_us, min_us, max_us, wall_us;
};

/* One pass: drop the region, then fault every page once in @order. */
static void run_pass(const size_t *order, uint32_t *lat, struct result *res)
{
	if (madvise(region, npages * PG, lock ? MADV_DONTNEED_LOCKED : MADV_DONTNEED))
		die("madvise(DONTNEED)");
	uint64_t bad = 0;
	uint64_t t0 = now_ns();
	for (size_t i = 0; i < npages; i++) {
		size_t pg = order[i];
		uint64_t a = now_ns();
		uint64_t v = *(volatile uint64_t *)(region + pg * PG);
		uint64_t b = now_ns();
		lat[i] = (uint32_t)(b - a > UINT32_MAX ? UINT32_MAX : b - a);
		bad += v != stamp(pg);
	}
	uint64_t wall = now_ns() - t0;
	if (bad) {
		fprintf(stderr, "uffd_floor: %llu pages read back wrong\n",
			(unsigned long long)bad);
		exit(1);
	}
	if (!res)
		return;
	double sum = 0;
	for (size_t i = 0; i < npages; i++)
		sum += lat[i];
	qsort(lat, npages, sizeof(*lat), cmp_u32);
	res->mean_us = sum / (double)npages / 1e3;
	res->p50_us = lat[npages / 2] / 1e3;
	res->p99_us = lat[npages * 99 / 100] / 1e3;
	res->min_us = lat[0] / 1e3;
	res->max_us = lat[npages - 1] / 1e3;
	res->wall_us = (double)wall / (double)npages / 1e3;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pages", required_argument, NULL, 'n' },
		{ "repeat", required_argument, NULL, 'r' },
		{ "mlock", no_argument, NULL, 'l' },
		{ "same-cpu", required_argument, NULL, 'c' },
		{ "json", required_argument, NULL, 'j' },
		{ 0 },
	};
	const char *json = NULL;
	unsigned repeat = 1;
	int c;
	npages = 65536;
	while ((c = getopt_long(argc, argv, "n:r:lc:j:", opts, NULL)) != -1) {
		switch (c) {
		case 'n': npages = strtoull(optarg, NULL, 0); break;
		case 'r': repeat = (unsigned)atoi(optarg); break;
		case 'l': lock = true; break;
		case 'c': same_cpu = atoi(optarg); break;
		case 'j': json = optarg; break;
		default:
			fprintf(stderr, "usage: uffd_floor [-n PAGES] [-r REPEAT] [--mlock] "
					"[--same-cpu CPU] [--json FILE]\n");
			return 2;
		}
	}
	if (npages < 2 || !repeat) {
		fprintf(stderr, "uffd_floor: need at least 2 pages and 1 repeat\n");
		return 2;
	}
	size_t size = npages * PG;

	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	if (uffd < 0 && errno == EPERM)
		uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | 1 /* UFFD_USER_MODE_ONLY */);
	if (uffd < 0) {
		fprintf(stderr, "uffd_floor: userfaultfd: %s (vm.unprivileged_userfaultfd?)\n",
			strerror(errno));
		return 77;
	}
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	if (ioctl(uffd, UFFDIO_API, &api))
		die("UFFDIO_API");

	src = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	region = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (src == MAP_FAILED || region == MAP_FAILED)
		die("mmap");
	madvise(region, size, MADV_NOHUGEPAGE); /* 4 KiB faults, as the engine */
	for (size_t pg = 0; pg < npages; pg++) { /* the "store": resident, stamped */
		uint64_t *w = (uint64_t *)(src + pg * PG);
		for (size_t i = 0; i < PG / 8; i++)
			w[i] = stamp(pg) + i;
	}
	if (lock && syscall(SYS_mlock2, region, size, MLOCK_ONFAULT))
		die("mlock2(MLOCK_ONFAULT)");
	struct uffdio_register reg = {
		.range = { .start = (uint64_t)(uintptr_t)region, .len = size },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		die("UFFDIO_REGISTER");

	size_t *seq = malloc(npages * sizeof(*seq)), *rnd = malloc(npages * sizeof(*rnd));
	uint32_t *lat = malloc(npages * sizeof(*lat));
	if (!seq || !rnd || !lat)
		die("malloc");
	uint64_t s = 0x243f6a8885a308d3ull;
	for (size_t i = 0; i < npages; i++)
		seq[i] = rnd[i] = i;
	for (size_t i = npages - 1; i > 0; i--) { /* Fisher-Yates */
		size_t j = (size_t)(rng(&s) % (i + 1)), t = rnd[i];
		rnd[i] = rnd[j];
		rnd[j] = t;
	}

	if (same_cpu >= 0)
		pin(same_cpu);
	pthread_t th;
	if (pthread_create(&th, NULL, handler, NULL))
		die("pthread_create");

	run_pass(seq, lat, NULL); /* warm-up: page tables, caches */
	struct result res[64];
	unsigned nres = 0;
	for (unsigned r = 0; r < repeat && nres + 2 <= 64; r++) {
		res[nres] = (struct result){ .name = "seq" };
		run_pass(seq, lat, &res[nres++]);
		res[nres] = (struct result){ .name = "random" };
		run_pass(rnd, lat, &res[nres++]);
	}
	pthread_cancel(th);
	pthread_join(th, NULL);

	printf("uffd_floor: %zu pages (%zu MiB), 1 faulting thread, 1 handler "
	       "(UFFDIO_COPY 4 KiB from memory)%s%s\n",
	       npages, size >> 20, lock ? ", mlocked" : "",
	       same_cpu >= 0 ? ", both on one CPU" : ", threads not pinned");
	printf("%-7s %9s %9s %9s %9s %9s %12s\n", "pass", "mean us", "p50 us", "p99 us",
	       "min us", "max us", "wall us/flt");
	for (unsigned i = 0; i < nres; i++)
		printf("%-7s %9.2f %9.2f %9.2f %9.2f %9.1f %12.2f\n", res[i].name,
		       res[i].mean_us, res[i].p50_us, res[i].p99_us, res[i].min_us,
		       res[i].max_us, res[i].wall_us);
	printf("copies %llu, eexist %llu\n", (unsigned long long)copies,
	       (unsigned long long)eexists);
	if (json) {
		FILE *f = fopen(json, "w");
		if (!f)
			die(json);
		fprintf(f, "{\"pages\": %zu, \"page_size\": %lu, \"mlock\": %s, \"same_cpu\": %d, "
			   "\"passes\": [",
			npages, PG, lock ? "true" : "false", same_cpu);
		for (unsigned i = 0; i < nres; i++)
			fprintf(f, "%s{\"pass\": \"%s\", \"mean_us\": %.3f, \"p50_us\": %.3f, "
				   "\"p99_us\": %.3f, \"min_us\": %.3f, \"max_us\": %.3f, "
				   "\"wall_us_per_fault\": %.3f}",
				i ? ", " : "", res[i].name, res[i].mean_us, res[i].p50_us,
				res[i].p99_us, res[i].min_us, res[i].max_us, res[i].wall_us);
		fprintf(f, "]}\n");
		fclose(f);
	}
	return 0;
}
