/* log.c - leveled logging to stderr as "prog[pid] LEVEL area: message".
 * RTMEM_LOG_LEVEL overrides the level, RTMEM_DEBUG="area,area|all" switches debug
 * output on per area. Each line is written with one write(2), so lines from
 * threads and processes do not interleave.
 */
#include "common/common.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static char log_prog[32] = "rtmem";
static enum log_level cur_level = LOG_INFO;
static char log_debug_areas[256]; /* ",a,b," or ",all," */
static pthread_once_t log_once = PTHREAD_ONCE_INIT;

static const char *const level_names[] = { "ERROR", "WARN", "INFO", "DEBUG" };

static void log_read_env(void)
{
	const char *lvl = getenv("RTMEM_LOG_LEVEL");
	const char *dbg = getenv("RTMEM_DEBUG");

	if (lvl) {
		static const char *const names[] = { "error", "warn", "info", "debug" };

		for (int i = 0; i < 4; i++)
			if (!strcasecmp(lvl, names[i]))
				cur_level = (enum log_level)i;
	}
	if (dbg && *dbg)
		snprintf(log_debug_areas, sizeof(log_debug_areas), ",%s,", dbg);
}

static void log_default_init(void)
{
	log_read_env();
}

void log_init(const char *prog, enum log_level level)
{
	pthread_once(&log_once, log_default_init);
	if (prog) {
		const char *slash = strrchr(prog, '/');

		snprintf(log_prog, sizeof(log_prog), "%s", slash ? slash + 1 : prog);
	}
	cur_level = level;
	log_read_env();
}

bool log_enabled(enum log_level level, const char *area)
{
	char key[40];

	pthread_once(&log_once, log_default_init);
	if (level <= cur_level)
		return true;
	if (level != LOG_DEBUG || !log_debug_areas[0])
		return false;
	if (strstr(log_debug_areas, ",all,"))
		return true;
	snprintf(key, sizeof(key), ",%s,", area ? area : "");
	return strstr(log_debug_areas, key) != NULL;
}

void log_msg(enum log_level level, const char *area, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	if ((unsigned)level > LOG_DEBUG || !log_enabled(level, area))
		return;
	n = snprintf(line, sizeof(line), "%s[%d] %s %s: ", log_prog, (int)getpid(),
		     level_names[level], area ? area : "-");
	if (n < 0 || (size_t)n >= sizeof(line) - 1)
		return;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2; /* truncated */
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}
