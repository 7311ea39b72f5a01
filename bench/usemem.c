/* usemem - a usemem-like memory workload: sequential and random passes over SIZE
 * bytes (write, read, read-modify-write), N threads, repeats, optionally normally
 * distributed page choice (the thesis' CMS-like workload). Every word written is
 * checked when read; prints MB/s and elapsed time per pass; exit 1 on a mismatch.
 *
 *   usemem [-t THREADS] [-r REPEAT] [-p PASSES] [-d uniform|normal] [-n OPS]
 *          [--malloc] [--json FILE] SIZE
 * PASSES is a comma list of: w (sequential write), r (sequential read+verify),
 * rw (sequential verify then rewrite), ro (sequential read, no verify),
 * randw, randr, randrw (random page order, or normal with -d normal).
 * Default: w,r,randr.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "common/common.h"

#define PG 4096u
#define WPP (PG / 8u) /* words per page */

static uint64_t *mem;
static uint8_t *gen; /* per page: generation last written (0 = never) */
static size_t npages;
static unsigned nthreads = 1;
static bool normal;
static uint64_t nops; /* random passes: pages touched per thread (0 = its share) */

enum kind { K_W, K_R, K_RW, K_RO };
struct pass {
	char name[16];
	enum kind kind;
	bool rnd;
};

struct targ {
	unsigned id;
	struct pass *p;
	uint64_t errors, pages;
	uint64_t sink;
	pthread_barrier_t *bar;
};

static inline uint64_t val(size_t pg, unsigned w, uint8_t g)
{
	return ((uint64_t)pg * WPP + w) * 0x9e3779b97f4a7c15ull ^ ((uint64_t)g << 56 | g);
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static size_t pick(uint64_t *s, size_t lo, size_t n)
{
	if (!normal)
		return lo + rng_next(s) % n;
	for (;;) { /* Box-Muller, mean at the middle, sigma n/8 */
		double u1 = ((double)(rng_next(s) >> 11) + 1) / 9007199254740993.0;
		double u2 = (double)(rng_next(s) >> 11) / 9007199254740992.0;
		double z = sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
		double x = (double)n / 2 + z * (double)n / 8;
		if (x >= 0 && x < (double)n)
			return lo + (size_t)x;
	}
}

static void touch(struct targ *t, size_t pg)
{
	uint64_t *w = mem + pg * WPP;
	enum kind k = t->p->kind;
	if (k == K_RO) {
		uint64_t s = 0;
		for (unsigned i = 0; i < WPP; i++)
			s += w[i];
		t->sink += s;
		return;
	}
	if (k == K_R || k == K_RW) {
		uint8_t g = gen[pg];
		for (unsigned i = 0; i < WPP; i++) {
			uint64_t want = g ? val(pg, i, g) : 0;
			if (w[i] != want) {
				if (t->errors < 5)
					fprintf(stderr, "usemem: page %zu word %u: %#llx, want %#llx\n",
						pg, i, (unsigned long long)w[i],
						(unsigned long long)want);
				t->errors++;
			}
		}
	}
	if (k == K_W || k == K_RW) {
		uint8_t g = (uint8_t)(gen[pg] % 255 + 1);
		for (unsigned i = 0; i < WPP; i++)
			w[i] = val(pg, i, g);
		gen[pg] = g;
	}
}

static void *worker(void *arg)
{
	struct targ *t = arg;
	size_t per = (npages + nthreads - 1) / nthreads;
	size_t lo = t->id * per, hi = lo + per > npages ? npages : lo + per;
	if (lo >= hi)
		return NULL;
	pthread_barrier_wait(t->bar);
	if (!t->p->rnd) {
		for (size_t pg = lo; pg < hi; pg++)
			touch(t, pg);
		t->pages = hi - lo;
	} else {
		uint64_t s = 0x243f6a8885a308d3ull ^ ((uint64_t)t->id << 32 | 1);
		uint64_t n = nops ? nops : hi - lo;
		for (uint64_t k = 0; k < n; k++)
			touch(t, pick(&s, lo, hi - lo));
		t->pages = n;
	}
	return NULL;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_passes(const char *s, struct pass *out, int max)
{
	int n = 0;
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", s);
	for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (n == max)
			return -1;
		struct pass *p = &out[n++];
		snprintf(p->name, sizeof(p->name), "%s", tok);
		p->rnd = !strncmp(tok, "rand", 4);
		const char *k = p->rnd ? tok + 4 : tok;
		if (!strcmp(k, "w"))
			p->kind = K_W;
		else if (!strcmp(k, "r"))
			p->kind = K_R;
		else if (!strcmp(k, "rw"))
			p->kind = K_RW;
		else if (!strcmp(k, "ro"))
			p->kind = K_RO;
		else
			return -1;
	}
	return n;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "threads", required_argument, NULL, 't' },
		{ "repeat", required_argument, NULL, 'r' },
		{ "passes", required_argument, NULL, 'p' },
		{ "dist", required_argument, NULL, 'd' },
		{ "ops", required_argument, NULL, 'n' },
		{ "malloc", no_argument, NULL, 'M' },
		{ "json", required_argument, NULL, 'j' },
		{ 0 },
	};
	const char *passes = "w,r,randr", *json = NULL;
	unsigned repeat = 1;
	bool use_malloc = false;
	int c;
	while ((c = getopt_long(argc, argv, "t:r:p:d:n:Mj:", opts, NULL)) != -1) {
		switch (c) {
		case 't': nthreads = (unsigned)atoi(optarg); break;
		case 'r': repeat = (unsigned)atoi(optarg); break;
		case 'p': passes = optarg; break;
		case 'd': normal = !strcmp(optarg, "normal"); break;
		case 'n': nops = strtoull(optarg, NULL, 0); break;
		case 'M': use_malloc = true; break;
		case 'j': json = optarg; break;
		default:
			fprintf(stderr, "usage: usemem [-t N] [-r R] [-p PASSES] [-d uniform|normal] "
					"[-n OPS] [--malloc] [--json FILE] SIZE\n");
			return 2;
		}
	}
	uint64_t size;
	if (optind >= argc || config_parse_size(argv[optind], &size) || size < PG ||
	    !nthreads || nthreads > 256 || !repeat) {
		fprintf(stderr, "usemem: need a SIZE (e.g. 512M) and sane options\n");
		return 2;
	}
	struct pass ps[32];
	int np = parse_passes(passes, ps, 32);
	if (np <= 0) {
		fprintf(stderr, "usemem: bad pass list '%s'\n", passes);
		return 2;
	}
	npages = size / PG;
	size = npages * PG;
	if (use_malloc)
		mem = malloc(size);
	else
		mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!mem || mem == MAP_FAILED) {
		fprintf(stderr, "usemem: cannot allocate %llu bytes\n", (unsigned long long)size);
		return 1;
	}
	/* bookkeeping stays out of paged memory: a shared mapping is never routed */
	gen = mmap(NULL, npages, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (gen == MAP_FAILED)
		return 1;
	FILE *jf = json ? fopen(json, "w") : NULL;
	if (jf)
		fprintf(jf, "{\"size\": %llu, \"threads\": %u, \"dist\": \"%s\", \"passes\": [",
			(unsigned long long)size, nthreads, normal ? "normal" : "uniform");
	uint64_t errors = 0;
	double total = 0;
	bool first = true;
	for (unsigned r = 0; r < repeat; r++) {
		for (int i = 0; i < np; i++) {
			pthread_t th[256];
			struct targ ta[256];
			pthread_barrier_t bar;
			unsigned active = 0;
			size_t per = (npages + nthreads - 1) / nthreads;
			for (unsigned k = 0; k < nthreads; k++)
				active += k * per < npages;
			pthread_barrier_init(&bar, NULL, active + 1);
			for (unsigned k = 0; k < active; k++) {
				ta[k] = (struct targ){ .id = k, .p = &ps[i], .bar = &bar };
				pthread_create(&th[k], NULL, worker, &ta[k]);
			}
			pthread_barrier_wait(&bar);
			double t0 = now();
			uint64_t pages = 0, errs = 0;
			for (unsigned k = 0; k < active; k++) {
				pthread_join(th[k], NULL);
				pages += ta[k].pages;
				errs += ta[k].errors;
			}
			double dt = now() - t0;
			pthread_barrier_destroy(&bar);
			total += dt;
			errors += errs;
			double mbs = (double)pages * PG / 1048576.0 / dt;
			printf("pass %-7s rep %u: %8.1f MB/s %8.3f s %s\n", ps[i].name, r, mbs, dt,
			       errs ? "MISMATCH" : (ps[i].kind == K_W || ps[i].kind == K_RO)
							  ? "" : "verified");
			fflush(stdout);
			if (jf)
				fprintf(jf, "%s{\"pass\": \"%s\", \"rep\": %u, \"mbs\": %.1f, "
					    "\"seconds\": %.4f, \"errors\": %llu}",
					first ? "" : ", ", ps[i].name, r, mbs, dt,
					(unsigned long long)errs);
			first = false;
		}
	}
	printf("total %.3f s, %llu mismatched words\n", total, (unsigned long long)errors);
	if (jf) {
		fprintf(jf, "], \"total_seconds\": %.4f, \"errors\": %llu}\n", total,
			(unsigned long long)errors);
		fclose(jf);
	}
	return errors ? 1 : 0;
}
