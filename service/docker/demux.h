/* The Engine API's multiplexed stream (exec/attach without a TTY): frames of
 * [stream u8][0 0 0][length u32 big-endian][payload]. Pure and incremental:
 * bytes go in in any split, payload comes out per stream. */
#ifndef SAFEEVAL_DOCKER_DEMUX_H
#define SAFEEVAL_DOCKER_DEMUX_H

#include <stddef.h>
#include <stdint.h>

enum { DEMUX_STDIN = 0, DEMUX_STDOUT = 1, DEMUX_STDERR = 2 };

/* Called for each piece of payload; return 0 to go on, non-zero to stop. */
typedef int (*demux_fn)(int stream, const uint8_t *data, size_t len, void *ud);

typedef struct demux {
    uint8_t hdr[8];
    size_t hdr_len; /* header bytes collected so far */
    uint64_t left;  /* payload bytes left in the current frame */
    int stream;
    int failed; /* a bad header was seen: the stream is not a docker stream */
} demux;

void demux_init(demux *d);
/* Feeds bytes. Returns 0, -1 on a malformed header (stream byte > 2 or
 * non-zero padding; sticky), or the callback's non-zero value. */
int demux_feed(demux *d, const uint8_t *data, size_t len, demux_fn fn, void *ud);
/* 1 if the stream ended between frames (no partial header or payload). */
int demux_at_boundary(const demux *d);

#endif
