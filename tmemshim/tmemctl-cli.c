/* tmemctl-cli.c - tmem-cli, a small debugging aid for libtmemshim and the
 * borrower's client server.
 *
 *   tmem-cli [-s SOCKET] [-n NAME] ping
 *   tmem-cli [-s SOCKET] [-n NAME] [-e] [-u UUID] roundtrip FILE
 *
 * roundtrip puts every page of FILE (object 1, index = page number) into a new pool
 * (persistent unless -e; shared under UUID with -u), gets them back into FILE.out,
 * compares, flushes the object and checks that the pages are gone.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tmemshim/tmemshim.h"

#define CHUNK 256 /* ops per tmem_batch call: several protocol batches */
#define OID 1

static int usage(void)
{
	fprintf(stderr, "usage: tmem-cli [-s SOCKET] [-n NAME] ping\n"
			"       tmem-cli [-s SOCKET] [-n NAME] [-e] [-u UUID] roundtrip FILE\n");
	return 2;
}

static int read_file(const char *path, uint8_t **buf, size_t *pages, size_t *size)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	if (!f)
		return -errno;
	int rc = 0;
	if (fstat(fileno(f), &st) < 0) {
		rc = -errno;
		goto out_close;
	}
	*size = (size_t)st.st_size;
	*pages = (*size + TMEM_PAGE_SIZE - 1) / TMEM_PAGE_SIZE;
	*buf = calloc(*pages ? *pages : 1, TMEM_PAGE_SIZE);
	if (!*buf)
		rc = -ENOMEM;
	else if (fread(*buf, 1, *size, f) != *size)
		rc = -EIO;
out_close:
	fclose(f);
	return rc;
}

/* run - @cmd on pages [0, n) of object OID, page i at buf + i * page size. Returns
 * the number of ops that succeeded (misses counted in *@miss) or -errno. */
static long run(struct tmem_client *c, enum tmem_cmd cmd, uint32_t pool, uint8_t *buf,
		size_t n, size_t *miss)
{
	struct tmem_op ops[CHUNK];
	long ok = 0;
	unsigned errors = 0; /* reported: the first few */

	for (size_t i = 0; i < n; i += CHUNK) {
		unsigned k = n - i < CHUNK ? (unsigned)(n - i) : CHUNK;
		for (unsigned j = 0; j < k; j++)
			ops[j] = (struct tmem_op){ .cmd = cmd, .pool = pool, .oid = OID,
						   .index = (uint32_t)(i + j),
						   .page = buf + (i + j) * TMEM_PAGE_SIZE };
		int rc = tmem_batch(c, ops, k);
		if (rc < 0)
			return rc;
		ok += rc;
		for (unsigned j = 0; j < k; j++) {
			int st = ops[j].status;
			if (st == -ENOENT && miss)
				(*miss)++;
			else if (st && errors++ < 3)
				fprintf(stderr, "%s page %zu: %s\n", cmd == TMEM_PUT ? "put" : "get",
					i + j, strerror(-st));
		}
	}
	return ok;
}

static int roundtrip(struct tmem_client *c, const char *path, uint32_t flags, uint64_t uuid)
{
	uint8_t *in = NULL, *out = NULL;
	size_t pages = 0, size = 0, miss = 0, gone = 0;
	int rc = read_file(path, &in, &pages, &size);
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(-rc));
		goto out_free;
	}
	out = calloc(pages ? pages : 1, TMEM_PAGE_SIZE);
	int pool = tmem_new_pool(c, flags, uuid);
	if (!out || pool < 0) {
		rc = out ? pool : -ENOMEM;
		fprintf(stderr, "new pool: %s\n", strerror(-rc));
		goto out_free;
	}
	long put = run(c, TMEM_PUT, (uint32_t)pool, in, pages, NULL);
	long got = put < 0 ? put : run(c, TMEM_GET, (uint32_t)pool, out, pages, &miss);
	if (got < 0) {
		rc = (int)got;
		fprintf(stderr, "connection: %s\n", strerror(-rc));
		goto out_free;
	}
	size_t bad = 0;
	for (size_t i = 0; i < pages; i++) {
		const uint8_t *a = in + i * TMEM_PAGE_SIZE, *b = out + i * TMEM_PAGE_SIZE;
		static const uint8_t zero[TMEM_PAGE_SIZE];
		/* a missed page reads as zeros; only a page with wrong data is bad */
		if (memcmp(a, b, TMEM_PAGE_SIZE) && memcmp(b, zero, TMEM_PAGE_SIZE))
			bad++;
	}
	char *opath = malloc(strlen(path) + 5);
	FILE *f = opath ? fopen(strcat(strcpy(opath, path), ".out"), "wb") : NULL;
	if (!f || fwrite(out, 1, size, f) != size)
		fprintf(stderr, "%s.out: cannot write\n", path);
	if (f)
		fclose(f);
	free(opath);

	rc = tmem_flush_object(c, (uint32_t)pool, OID);
	long after = rc < 0 ? 0 : run(c, TMEM_GET, (uint32_t)pool, out, pages, &gone);
	printf("client %" PRIu32 " pool %d: %zu pages, put %ld, got %ld, missed %zu, "
	       "wrong %zu, flush %s, found after flush %ld\n",
	       tmem_client_id(c), pool, pages, put, got, miss, bad, rc ? strerror(-rc) : "ok",
	       after);
	if (!rc)
		rc = tmem_destroy_pool(c, (uint32_t)pool);
	if (!rc && (bad || after || ((flags & TMEM_POOL_PERSISTENT) && (size_t)got != pages)))
		rc = -EIO;
out_free:
	free(in);
	free(out);
	return rc;
}

int main(int argc, char **argv)
{
	const char *sock = NULL, *name = "tmem-cli";
	uint32_t flags = TMEM_POOL_PERSISTENT;
	uint64_t uuid = 0;
	int opt;

	while ((opt = getopt(argc, argv, "s:n:eu:h")) != -1) {
		switch (opt) {
		case 's':
			sock = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 'e':
			flags &= ~TMEM_POOL_PERSISTENT;
			break;
		case 'u':
			uuid = strtoull(optarg, NULL, 0);
			flags |= TMEM_POOL_SHARED;
			break;
		default:
			return usage();
		}
	}
	if (optind >= argc)
		return usage();
	const char *cmd = argv[optind];
	bool is_ping = !strcmp(cmd, "ping");
	if (!is_ping && (strcmp(cmd, "roundtrip") || optind + 2 != argc))
		return usage();

	struct tmem_client *c;
	int rc = tmem_connect(sock, name, &c);
	if (rc < 0) {
		fprintf(stderr, "connect: %s\n", strerror(-rc));
		return 1;
	}
	if (is_ping)
		printf("connected as client %" PRIu32 "\n", tmem_client_id(c));
	else
		rc = roundtrip(c, argv[optind + 1], flags, uuid);
	tmem_disconnect(c);
	return rc < 0 ? 1 : 0;
}
