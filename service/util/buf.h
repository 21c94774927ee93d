/* A growable byte buffer with a hard cap: filling it from outside can never
 * take more than `cap` bytes, and overflow is reported, not truncated silently. */
#ifndef SAFEEVAL_UTIL_BUF_H
#define SAFEEVAL_UTIL_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct se_buf {
    uint8_t *data; /* NUL-terminated after len for convenience (not counted) */
    size_t len;
    size_t alloc;
    size_t cap; /* hard cap on len */
} se_buf;

void se_buf_init(se_buf *b, size_t cap);
/* Appends; returns 0, or -1 when len would pass cap (nothing appended) or on
 * out of memory. */
int se_buf_append(se_buf *b, const void *data, size_t n);
/* Appends what fits under cap; returns the number of bytes dropped. */
size_t se_buf_append_capped(se_buf *b, const void *data, size_t n);
void se_buf_reset(se_buf *b);
void se_buf_free(se_buf *b);
/* Hands the bytes over (caller frees); the buffer is left empty. */
uint8_t *se_buf_steal(se_buf *b, size_t *len_out);

#endif
