/* stamp.h - test pages shared by the tmem test clients: a page names itself (four
 * header words), carries a pseudo-random body derived from them and ends in a
 * checksum of everything before it, so any wrong byte or misplaced page is caught. */
#ifndef RTMEM_TEST_STAMP_H
#define RTMEM_TEST_STAMP_H

#include <stddef.h>
#include <stdint.h>

/* stamp_page - fill @page (TMEM_PAGE_SIZE bytes) for identity @id[0..3]. */
void stamp_page(uint8_t *page, const uint64_t id[4]);
/* stamp_diff - first byte of @page that differs from stamp_page(@id), -1 if none;
 * the expected byte goes to *@want. */
long stamp_diff(const uint8_t *page, const uint64_t id[4], uint8_t *want);

#endif
