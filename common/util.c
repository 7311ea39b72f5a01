/* util.c - small helpers: page checksums, random numbers and run-time fault
 * injection (RTMEM_FAULT="name[:count],name2,...").
 */
#define LOG_AREA "fault"
#include "common/common.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

uint64_t rtm_checksum(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

uint64_t rtm_random64(void)
{
	uint64_t v;
	ssize_t n;

	do
		n = getrandom(&v, sizeof(v), 0);
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(v))
		return v;
	/* getrandom unavailable: splitmix64 of the clock and pid, never fails */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	v = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)getpid();
	v += 0x9e3779b97f4a7c15ull;
	v = (v ^ (v >> 30)) * 0xbf58476d1ce4e5b9ull;
	v = (v ^ (v >> 27)) * 0x94d049bb133111ebull;
	return v ^ (v >> 31);
}

#define FAULT_MAX 16

struct fault {
	char name[32];
	long remaining; /* -1 = always */
};

static struct fault faults[FAULT_MAX];
static unsigned n_faults;
static pthread_once_t fault_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;

static void fault_parse(void)
{
	const char *env = getenv("RTMEM_FAULT");
	char *copy, *tok, *save = NULL;

	if (!env || !*env || !(copy = strdup(env)))
		return;
	for (tok = strtok_r(copy, ",", &save); tok && n_faults < FAULT_MAX;
	     tok = strtok_r(NULL, ",", &save)) {
		struct fault *f = &faults[n_faults];
		char *colon = strchr(tok, ':'), *end;

		f->remaining = -1;
		if (colon) {
			*colon = '\0';
			f->remaining = strtol(colon + 1, &end, 10);
			if (*end || f->remaining <= 0) {
				log_warn("RTMEM_FAULT: bad count in '%s:%s', ignored", tok,
					 colon + 1);
				continue;
			}
		}
		if (!*tok || strlen(tok) >= sizeof(f->name)) {
			log_warn("RTMEM_FAULT: bad name '%s', ignored", tok);
			continue;
		}
		strcpy(f->name, tok);
		n_faults++;
	}
	free(copy);
}

bool rtm_fault(const char *name)
{
	bool hit = false;

	pthread_once(&fault_once, fault_parse);
	if (!n_faults)
		return false;
	pthread_mutex_lock(&fault_lock);
	for (unsigned i = 0; i < n_faults; i++) {
		struct fault *f = &faults[i];

		if (strcmp(f->name, name) || f->remaining == 0)
			continue;
		if (f->remaining > 0)
			f->remaining--;
		hit = true;
		break;
	}
	pthread_mutex_unlock(&fault_lock);
	if (hit)
		log_warn("injected fault '%s'", name);
	return hit;
}
