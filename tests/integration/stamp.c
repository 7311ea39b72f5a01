/* stamp.c - see stamp.h. */
#include "stamp.h"

#include <string.h>

#include "common/common.h"
#include "tmemshim/tmemshim.h"

void stamp_page(uint8_t *page, const uint64_t id[4])
{
	uint64_t *w = (uint64_t *)page;
	uint64_t x = (id[0] + 1) * 0x9e3779b97f4a7c15ull ^ (id[1] << 32) ^ id[2] ^ id[3];
	size_t nw = TMEM_PAGE_SIZE / 8;

	memcpy(w, id, 4 * sizeof(*id));
	for (size_t i = 4; i < nw - 1; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		w[i] = x;
	}
	w[nw - 1] = rtm_checksum(page, TMEM_PAGE_SIZE - 8);
}

long stamp_diff(const uint8_t *page, const uint64_t id[4], uint8_t *want)
{
	static uint8_t ref[TMEM_PAGE_SIZE];

	stamp_page(ref, id);
	if (memcmp(page, ref, TMEM_PAGE_SIZE) == 0)
		return -1;
	for (size_t i = 0; i < TMEM_PAGE_SIZE; i++)
		if (page[i] != ref[i]) {
			*want = ref[i];
			return (long)i;
		}
	return -1;
}
