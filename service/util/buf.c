#include "util/buf.h"

#include <stdlib.h>
#include <string.h>

void
se_buf_init(se_buf *b, size_t cap)
{
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    b->cap = cap;
}

static int
buf_reserve(se_buf *b, size_t need)
{
    if (need + 1 <= b->alloc)
        return 0;
    size_t n = b->alloc ? b->alloc : 256;
    while (n < need + 1) {
        if (n > SIZE_MAX / 2)
            return -1;
        n *= 2;
    }
    uint8_t *p = realloc(b->data, n);
    if (!p)
        return -1;
    b->data = p;
    b->alloc = n;
    return 0;
}

int
se_buf_append(se_buf *b, const void *data, size_t n)
{
    if (n > b->cap - b->len)
        return -1;
    if (buf_reserve(b, b->len + n) < 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

size_t
se_buf_append_capped(se_buf *b, const void *data, size_t n)
{
    size_t room = b->cap - b->len;
    size_t take = n < room ? n : room;
    if (take && se_buf_append(b, data, take) < 0)
        return n;
    return n - take;
}

void
se_buf_reset(se_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void
se_buf_free(se_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->alloc = 0;
}

uint8_t *
se_buf_steal(se_buf *b, size_t *len_out)
{
    if (buf_reserve(b, b->len) < 0)
        return NULL;
    uint8_t *p = b->data;
    if (len_out)
        *len_out = b->len;
    b->data = NULL;
    b->len = b->alloc = 0;
    return p;
}
