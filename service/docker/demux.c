/* Incremental demuxer of the Engine API's multiplexed stream (see demux.h). */
#include "docker/demux.h"

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
