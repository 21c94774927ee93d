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

/* The last DEMUX_TAIL_CAP bytes of a stream, kept for diagnostics and made
 * printable as they arrive: bytes outside 0x20..0x7e become '?', except
 * '\n', '\r' and '\t' which become ' ' (one line, no terminal escapes, safe
 * in a log line or an error message). */
#define DEMUX_TAIL_CAP 4096

typedef struct demux_tail {
    char text[DEMUX_TAIL_CAP + 1]; /* NUL-terminated */
    size_t len;
} demux_tail;

void demux_tail_init(demux_tail *t);
void demux_tail_append(demux_tail *t, const uint8_t *data, size_t len);

/* Feeds in[0..in_len) and routes the payload: stdout is appended to
 * out[*out_len..], stderr to err_tail, stdin frames are dropped. Payload never
 * outnumbers the bytes it came in, so when in_len <= out_cap - *out_len every
 * stdout byte fits and the demuxer keeps nothing but a partial header: this is
 * how a reader keeps its memory to what its caller asked for (it reads at most
 * the room left). Asserts that bound. Returns 0, or -1 for a malformed stream
 * (sticky, as demux_feed). */
int demux_route(demux *d, const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap,
                size_t *out_len, demux_tail *err_tail);

#endif
