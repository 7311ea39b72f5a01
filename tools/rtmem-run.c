/* rtmem-run - run an unmodified program with a local memory budget; its large
 * anonymous allocations are paged to rtmem through userfaultfd (librtmem-preload.so).
 *
 *   rtmem-run [--local-mem SIZE] [--socket PATH] [--name CLIENT] [--store tmem|mem]
 *             [--threshold SIZE] [--spill-dir DIR] [--stats] [--] CMD [ARGS...]
 *
 * Checks up front that userfaultfd can be used and that the borrower answers, so a
 * missing feature is reported here in one clear line instead of deep in the program.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/common.h"
#include "tmemshim/tmemshim.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: rtmem-run [--local-mem SIZE] [--socket PATH] [--name CLIENT]\n"
		   "                 [--store tmem|mem] [--threshold SIZE] [--spill-dir DIR]\n"
		   "                 [--flags noprefetch,fifo,nomlock,nowp] [--stats] -- CMD "
		   "[ARGS...]\n");
}

static int check_uffd(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && errno == EPERM)
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | 1 /* USER_MODE_ONLY */);
	if (fd < 0) {
		int e = errno;
		if (e == ENOSYS)
			fprintf(stderr, "rtmem-run: userfaultfd(2) is not available: the kernel "
					"lacks CONFIG_USERFAULTFD or a seccomp filter (container "
					"runtime) blocks it\n");
		else if (e == EPERM)
			fprintf(stderr, "rtmem-run: userfaultfd(2) not permitted: run "
					"'sysctl vm.unprivileged_userfaultfd=1' or grant "
					"CAP_SYS_PTRACE (or a seccomp filter denies it)\n");
		else
			fprintf(stderr, "rtmem-run: userfaultfd(2): %s\n", strerror(e));
		return -e;
	}
	struct uffdio_api api = { .api = UFFD_API };
	int rc = ioctl(fd, UFFDIO_API, &api) ? -errno : 0;
	close(fd);
	if (rc)
		fprintf(stderr, "rtmem-run: UFFDIO_API: %s\n", strerror(-rc));
	return rc;
}

static int find_preload(const char *argv0, char *out, size_t len)
{
	const char *env = getenv("RTMEM_PRELOAD");
	if (env && *env) {
		snprintf(out, len, "%s", env);
		return access(out, R_OK) ? -errno : 0;
	}
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return -errno;
	exe[n] = 0;
	char *slash = strrchr(exe, '/');
	if (slash)
		*slash = 0;
	const char *cands[] = { "/../lib/librtmem-preload.so", "/librtmem-preload.so",
				"/../lib/rtmem/librtmem-preload.so" };
	for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++) {
		snprintf(out, len, "%s%s", exe, cands[i]);
		if (!access(out, R_OK))
			return 0;
	}
	(void)argv0;
	return -ENOENT;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "local-mem", required_argument, NULL, 'm' },
		{ "socket", required_argument, NULL, 's' },
		{ "name", required_argument, NULL, 'n' },
		{ "store", required_argument, NULL, 'S' },
		{ "threshold", required_argument, NULL, 't' },
		{ "spill-dir", required_argument, NULL, 'd' },
		{ "flags", required_argument, NULL, 'f' },
		{ "stats", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *store = getenv("RTMEM_STORE");
	int c;
	uint64_t v;
	while ((c = getopt_long(argc, argv, "+m:s:n:S:t:d:f:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
		case 't':
			if (config_parse_size(optarg, &v) || !v) {
				fprintf(stderr, "rtmem-run: bad size '%s'\n", optarg);
				return 2;
			}
			setenv(c == 'm' ? "RTMEM_LOCAL_MEM" : "RTMEM_THRESHOLD", optarg, 1);
			break;
		case 's':
			setenv("RTMEM_SOCKET", optarg, 1);
			break;
		case 'n':
			if (strlen(optarg) >= CONFIG_NAME_LEN) {
				fprintf(stderr, "rtmem-run: client name too long (max %d)\n",
					CONFIG_NAME_LEN - 1);
				return 2;
			}
			setenv("RTMEM_CLIENT_NAME", optarg, 1);
			break;
		case 'S':
			store = optarg;
			setenv("RTMEM_STORE", optarg, 1);
			break;
		case 'd':
			setenv("RTMEM_SPILL_DIR", optarg, 1);
			break;
		case 'f':
			setenv("RTMEM_FLAGS", optarg, 1);
			break;
		case 'v':
			setenv("RTMEM_STATS", "1", 1);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	if (check_uffd())
		return 111;
	if (!store || strcmp(store, "mem")) {
		struct tmem_client *tc;
		int rc = tmem_connect(NULL, "rtmem-run-probe", &tc);
		if (rc) {
			const char *s = getenv("RTMEM_SOCKET");
			fprintf(stderr, "rtmem-run: the rtmem borrower at %s does not answer: %s "
					"(is rtmem-borrower running? pass --socket or set "
					"RTMEM_SOCKET)\n",
				s && *s ? s : "/run/rtmem/borrower.sock", strerror(-rc));
			return 111;
		}
		tmem_disconnect(tc);
	}
	char lib[PATH_MAX];
	if (find_preload(argv[0], lib, sizeof(lib))) {
		fprintf(stderr, "rtmem-run: librtmem-preload.so not found next to rtmem-run "
				"(set RTMEM_PRELOAD)\n");
		return 111;
	}
	const char *old = getenv("LD_PRELOAD");
	char pre[2 * PATH_MAX];
	/* after what is preloaded already (a sanitizer runtime must stay first) */
	snprintf(pre, sizeof(pre), "%s%s%s", old ? old : "", old && *old ? ":" : "", lib);
	setenv("LD_PRELOAD", pre, 1);
	setenv("RTMEM_REQUIRED", "1", 1);
	execvp(argv[optind], argv + optind);
	fprintf(stderr, "rtmem-run: %s: %s\n", argv[optind], strerror(errno));
	return 127;
}
