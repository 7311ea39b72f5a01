/* trend.c - the prefetch detector of the uffd engine (pure logic, unit-tested): a
 * Leap-style majority vote over the deltas between the last TREND_HIST fault
 * addresses; with a trend d the engine fetches a window of pages along it, and the
 * window doubles while the trend holds. The newest delta must agree with the
 * majority. */
#include "uffd/uffd-internal.h"

int64_t trend_detect(const struct trend *t, uint64_t vpn)
{
	if (t->n < 3)
		return 0;
	unsigned n = t->n < TREND_HIST ? t->n : TREND_HIST;
	int64_t cand = 0, d[TREND_HIST];
	unsigned cnt = 0;
	uint64_t prev = vpn;
	for (unsigned k = 0; k < n; k++) {
		uint64_t h = t->hist[(t->n - 1 - k) % TREND_HIST];
		d[k] = (int64_t)(prev - h);
		prev = h;
	}
	/* Boyer-Moore majority candidate, then a count to confirm it */
	for (unsigned k = 0; k < n; k++) {
		if (!cnt)
			cand = d[k], cnt = 1;
		else
			cnt += d[k] == cand ? 1u : (unsigned)-1;
	}
	cnt = 0;
	for (unsigned k = 0; k < n; k++)
		cnt += d[k] == cand;
	if (cnt * 2 <= n || !cand || cand > TREND_MAX_STRIDE || cand < -TREND_MAX_STRIDE)
		return 0;
	/* the fault itself must continue it: a prefetched run leaves several entries
	 * along the trend in the history, which alone would outvote a random fault */
	return d[0] == cand ? cand : 0;
}

int64_t trend_next(struct trend *t, uint64_t vpn, unsigned max, unsigned *win)
{
	int64_t d = trend_detect(t, vpn);
	if (d) {
		t->win = t->win ? t->win * 2 : TREND_MIN_WIN;
		if (t->win > max)
			t->win = max;
	} else {
		t->win = 0;
	}
	*win = t->win;
	return d;
}

static void push(struct trend *t, uint64_t vpn)
{
	t->hist[t->n % TREND_HIST] = vpn;
	t->n++;
}

/* A run of @fetched pages along @d is recorded as its last TREND_HIST/2 pages, as
 * if they had faulted one by one: their deltas are all d, so the jump from the
 * previous run's end stays a minority and a long trend keeps its doubling window
 * (recording the first and last page only would give every other delta the
 * run's length, and the vote would fail after a few windows). */
void trend_record(struct trend *t, uint64_t vpn, int64_t d, unsigned fetched)
{
	if (fetched <= 1 || !d) {
		push(t, vpn);
		return;
	}
	unsigned m = fetched < TREND_HIST / 2 ? fetched : TREND_HIST / 2;
	for (unsigned k = fetched - m; k < fetched; k++)
		push(t, (uint64_t)((int64_t)vpn + d * (int64_t)k));
}
