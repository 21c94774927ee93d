#include "agent/frame.h"

#include <stdlib.h>
#include <string.h>

void
frame_put_header(uint8_t hdr[FRAME_HDR], uint32_t len)
{
    hdr[0] = (uint8_t)(len >> 24);
    hdr[1] = (uint8_t)(len >> 16);
    hdr[2] = (uint8_t)(len >> 8);
    hdr[3] = (uint8_t)len;
}

uint32_t
frame_get_len(const uint8_t hdr[FRAME_HDR])
{
    return ((uint32_t)hdr[0] << 24) | ((uint32_t)hdr[1] << 16) | ((uint32_t)hdr[2] << 8) |
           (uint32_t)hdr[3];
}

int
frame_parse(const uint8_t *buf, size_t len, uint32_t max, const uint8_t **payload,
            uint32_t *payload_len, size_t *consumed)
{
    if (len < FRAME_HDR)
        return 0;
    uint32_t n = frame_get_len(buf);
    if (n > max)
        return -1;
    if (len - FRAME_HDR < n)
        return 0;
    *payload = buf + FRAME_HDR;
    *payload_len = n;
    *consumed = FRAME_HDR + (size_t)n;
    return 1;
}

void
frame_reader_init(frame_reader *r)
{
    memset(r, 0, sizeof(*r));
}

static void
reader_reset(frame_reader *r)
{
    free(r->payload);
    memset(r, 0, sizeof(*r));
}

int
frame_reader_feed(frame_reader *r, const uint8_t *data, size_t len, uint32_t max, uint32_t keep,
                  size_t *used)
{
    *used = 0;
    if (r->complete)
        reader_reset(r);
    size_t off = 0;
    if (r->hdr_len < FRAME_HDR) {
        size_t take = FRAME_HDR - r->hdr_len;
        if (take > len)
            take = len;
        if (take) /* data may be NULL with len 0 */
            memcpy(r->hdr + r->hdr_len, data, take);
        r->hdr_len += (uint32_t)take;
        off = take;
        *used = off;
        if (r->hdr_len < FRAME_HDR)
            return FRAME_MORE;
        r->len = frame_get_len(r->hdr);
        if (r->len > max) {
            /* Stays broken: hdr_len is full, len over max, nothing else. */
            return FRAME_TOO_BIG;
        }
        r->skipping = r->len > keep;
        if (!r->skipping) {
            r->payload = malloc(r->len ? r->len : 1);
            if (!r->payload)
                return FRAME_NOMEM;
        }
    } else if (r->len > max) {
        return FRAME_TOO_BIG;
    }
    size_t take = r->len - r->got;
    if (take > len - off)
        take = len - off;
    if (take && r->skipping) {
        if (r->head_len < FRAME_HEAD) {
            size_t h = FRAME_HEAD - r->head_len;
            if (h > take)
                h = take;
            memcpy(r->head + r->head_len, data + off, h);
            r->head_len += (uint32_t)h;
        }
    } else if (take) {
        memcpy(r->payload + r->got, data + off, take);
    }
    r->got += (uint32_t)take;
    *used = off + take;
    if (r->got < r->len)
        return FRAME_MORE;
    r->complete = true;
    return r->skipping ? FRAME_SKIPPED : FRAME_READY;
}

bool
frame_reader_partial(const frame_reader *r)
{
    return !r->complete && r->hdr_len > 0;
}

bool
frame_reader_in_header(const frame_reader *r)
{
    return r->complete || r->hdr_len < FRAME_HDR;
}

void
frame_reader_free(frame_reader *r)
{
    reader_reset(r);
}
