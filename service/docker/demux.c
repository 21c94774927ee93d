/* Incremental demuxer of the Engine API's multiplexed stream (see demux.h). */
#include "docker/demux.h"

#include <assert.h>
#include <string.h>

void
demux_init(demux *d)
{
    memset(d, 0, sizeof(*d));
}

int
demux_feed(demux *d, const uint8_t *data, size_t len, demux_fn fn, void *ud)
{
    if (d->failed)
        return -1;
    while (len) {
        if (d->left == 0) {
            size_t take = sizeof(d->hdr) - d->hdr_len;
            if (take > len)
                take = len;
            memcpy(d->hdr + d->hdr_len, data, take);
            d->hdr_len += take;
            data += take;
            len -= take;
            if (d->hdr_len < sizeof(d->hdr))
                return 0;
            /* A stream byte past stderr or non-zero padding means this is not
             * a multiplexed stream (a TTY stream, or garbage): refuse it. */
            if (d->hdr[0] > DEMUX_STDERR || d->hdr[1] || d->hdr[2] || d->hdr[3]) {
                d->failed = 1;
                return -1;
            }
            d->stream = d->hdr[0];
            d->left = (uint64_t)d->hdr[4] << 24 | (uint64_t)d->hdr[5] << 16 |
                      (uint64_t)d->hdr[6] << 8 | (uint64_t)d->hdr[7];
            d->hdr_len = 0;
            continue; /* an empty frame leaves left == 0: next header */
        }
        size_t take = d->left < len ? (size_t)d->left : len;
        d->left -= take;
        int r = fn ? fn(d->stream, data, take, ud) : 0;
        data += take;
        len -= take;
        if (r)
            return r;
    }
    return 0;
}

int
demux_at_boundary(const demux *d)
{
    return !d->failed && d->hdr_len == 0 && d->left == 0;
}

void
demux_tail_init(demux_tail *t)
{
    t->len = 0;
    t->text[0] = '\0';
}

static char
tail_char(uint8_t ch)
{
    if (ch >= 0x20 && ch < 0x7f)
        return (char)ch;
    return (ch == '\n' || ch == '\r' || ch == '\t') ? ' ' : '?';
}

void
demux_tail_append(demux_tail *t, const uint8_t *data, size_t len)
{
    if (len >= DEMUX_TAIL_CAP) {
        data += len - DEMUX_TAIL_CAP;
        len = DEMUX_TAIL_CAP;
        t->len = 0;
    } else if (t->len + len > DEMUX_TAIL_CAP) {
        size_t drop = t->len + len - DEMUX_TAIL_CAP;
        memmove(t->text, t->text + drop, t->len - drop);
        t->len -= drop;
    }
    for (size_t i = 0; i < len; i++)
        t->text[t->len++] = tail_char(data[i]);
    t->text[t->len] = '\0';
}

typedef struct route {
    uint8_t *out;
    size_t out_cap;
    size_t *out_len;
    demux_tail *tail;
} route;

static int
on_route(int stream, const uint8_t *data, size_t len, void *ud)
{
    route *r = ud;
    if (stream == DEMUX_STDOUT) {
        /* demux_route's bound: payload <= input <= room. */
        assert(len <= r->out_cap - *r->out_len);
        memcpy(r->out + *r->out_len, data, len);
        *r->out_len += len;
    } else if (stream == DEMUX_STDERR) {
        demux_tail_append(r->tail, data, len);
    }
    return 0;
}

int
demux_route(demux *d, const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap,
            size_t *out_len, demux_tail *err_tail)
{
    assert(*out_len <= out_cap && in_len <= out_cap - *out_len);
    route r = {.out = out, .out_cap = out_cap, .out_len = out_len, .tail = err_tail};
    return demux_feed(d, in, in_len, on_route, &r) ? -1 : 0;
}
