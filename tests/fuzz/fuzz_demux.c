/* The Engine API stream demuxer (docker/demux.h): the input is a raw
 * exec/attach stream. Fed whole, split at a pseudo-random point and byte by
 * byte, the demuxer must give the same payload per stream, never more payload
 * than input, and the same verdict. Routed as an attach reader does (at most
 * the room left in a small buffer per step), stdout must come out the same
 * and the stderr tail must be the printable last bytes of stderr. */
#include <string.h>

#include "docker/demux.h"
#include "fuzz.h"

typedef struct sink {
    uint8_t *buf[3]; /* payload per stream, at most the input size each */
    size_t len[3];
    size_t cap;
    size_t total;
    size_t calls;
    size_t stop_after; /* 0 = never stop */
} sink;

static int
collect(int stream, const uint8_t *data, size_t len, void *ud)
{
    sink *s = ud;
    FUZZ_CHECK(stream >= 0 && stream <= 2);
    FUZZ_CHECK(len > 0);
    s->total += len;
    FUZZ_CHECK(s->total <= s->cap);
    memcpy(s->buf[stream] + s->len[stream], data, len);
    s->len[stream] += len;
    s->calls++;
    if (s->stop_after && s->calls >= s->stop_after)
        return 7;
    return 0;
}

static uint64_t
fnv1a(const uint8_t *data, size_t size)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < size; i++) {
        h ^= data[i];
        h *= 1099511628211ull;
    }
    return h;
}

static int
sink_init(sink *s, size_t cap)
{
    memset(s, 0, sizeof(*s));
    s->cap = cap;
    for (int i = 0; i < 3; i++) {
        s->buf[i] = malloc(cap ? cap : 1);
        if (!s->buf[i])
            return -1;
    }
    return 0;
}

static void
sink_free(sink *s)
{
    for (int i = 0; i < 3; i++)
        free(s->buf[i]);
}

/* Feeds data in the pieces that end at the cuts; the verdict of the first
 * piece that does not return 0 (the demuxer is sticky after a bad header). */
static int
feed_split(demux *d, const uint8_t *data, size_t size, const size_t *cuts, size_t n_cuts, sink *s)
{
    size_t pos = 0;
    int rc = 0;
    for (size_t i = 0; i <= n_cuts; i++) {
        size_t end = i < n_cuts ? cuts[i] : size;
        int r = demux_feed(d, data + pos, end - pos, collect, s);
        pos = end;
        if (r != 0) {
            rc = r;
            break;
        }
    }
    return rc;
}

/* demux_route in the steps of an attach reader with a cap-byte buffer. */
static void
check_route(const uint8_t *data, size_t size, uint64_t h, int r1, const sink *whole)
{
    static const size_t caps[] = {1, 2, 3, 7, 8, 9, 64, 4096};
    size_t cap = caps[(h >> 8) % (sizeof(caps) / sizeof(caps[0]))];
    uint8_t *buf = malloc(cap);
    uint8_t *out = malloc(size ? size : 1);
    if (!buf || !out)
        abort();
    size_t out_len = 0;
    demux d;
    demux_init(&d);
    demux_tail t;
    demux_tail_init(&t);
    int r = 0;
    size_t pos = 0;
    while (pos < size && r == 0) {
        size_t got = 0;
        while (got < cap && pos < size) {
            size_t step = cap - got < size - pos ? cap - got : size - pos;
            /* Each step in its own allocation: a read past it is caught. */
            uint8_t *piece = fuzz_dup(data + pos, step);
            if (!piece)
                abort();
            r = demux_route(&d, piece, step, buf, cap, &got, &t);
            free(piece);
            FUZZ_CHECK(got <= cap);
            pos += step;
            if (r)
                break;
        }
        memcpy(out + out_len, buf, got);
        out_len += got;
    }
    FUZZ_CHECK(r == (r1 == 0 ? 0 : -1));
    FUZZ_CHECK(t.len <= DEMUX_TAIL_CAP && t.text[t.len] == '\0' && strlen(t.text) == t.len);
    for (size_t i = 0; i < t.len; i++)
        FUZZ_CHECK((unsigned char)t.text[i] >= 0x20 && (unsigned char)t.text[i] < 0x7f);
    if (r1 == 0) {
        FUZZ_CHECK(out_len == whole->len[1] && memcmp(out, whole->buf[1], out_len) == 0);
        size_t want = whole->len[2] < DEMUX_TAIL_CAP ? whole->len[2] : DEMUX_TAIL_CAP;
        FUZZ_CHECK(t.len == want);
        const uint8_t *e = whole->buf[2] + whole->len[2] - want;
        for (size_t i = 0; i < want; i++)
            FUZZ_CHECK(e[i] < 0x20 || e[i] >= 0x7f || (uint8_t)t.text[i] == e[i]);
    }
    free(out);
    free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sink whole, split, bytes;
    if (sink_init(&whole, size) < 0 || sink_init(&split, size) < 0 || sink_init(&bytes, size) < 0)
        abort();

    demux d1, d2, d3;
    demux_init(&d1);
    int r1 = demux_feed(&d1, data, size, collect, &whole);
    FUZZ_CHECK(r1 == 0 || r1 == -1);
    /* Every byte of payload came with at least one 8-byte header. */
    FUZZ_CHECK(whole.total <= size);
    if (whole.total > 0)
        FUZZ_CHECK(whole.total + 8 <= size);

    uint64_t h = fnv1a(data, size);
    size_t cut = size ? (size_t)(h % (size + 1)) : 0;
    demux_init(&d2);
    int r2 = feed_split(&d2, data, size, &cut, 1, &split);
    FUZZ_CHECK(r2 == r1);

    demux_init(&d3);
    int r3 = 0;
    for (size_t i = 0; i < size && r3 == 0; i++)
        r3 = demux_feed(&d3, data + i, 1, collect, &bytes);
    FUZZ_CHECK(r3 == r1);

    if (r1 == 0) {
        /* Same payload whatever the split, and the same end state. */
        for (int s = 0; s < 3; s++) {
            FUZZ_CHECK(whole.len[s] == split.len[s] && whole.len[s] == bytes.len[s]);
            FUZZ_CHECK(memcmp(whole.buf[s], split.buf[s], whole.len[s]) == 0);
            FUZZ_CHECK(memcmp(whole.buf[s], bytes.buf[s], whole.len[s]) == 0);
        }
        FUZZ_CHECK(demux_at_boundary(&d1) == demux_at_boundary(&d2));
        FUZZ_CHECK(demux_at_boundary(&d1) == demux_at_boundary(&d3));
        FUZZ_CHECK(d1.hdr_len == d3.hdr_len && d1.left == d3.left);
    } else {
        /* A bad header is sticky and never a boundary. */
        FUZZ_CHECK(demux_feed(&d1, data, size, collect, &whole) == -1);
        FUZZ_CHECK(!demux_at_boundary(&d1));
    }

    check_route(data, size, h, r1, &whole);

    /* A callback that stops: its value comes back, and nothing is fed after. */
    sink stop;
    if (sink_init(&stop, size) < 0)
        abort();
    stop.stop_after = 1 + (size_t)(h >> 32) % 3;
    demux d4;
    demux_init(&d4);
    int r4 = demux_feed(&d4, data, size, collect, &stop);
    FUZZ_CHECK(r4 == 0 || r4 == -1 || r4 == 7);
    if (r4 == 7)
        FUZZ_CHECK(stop.calls == stop.stop_after);
    FUZZ_CHECK(stop.total <= whole.total || r1 != 0);
    /* A NULL callback only skips. */
    demux d5;
    demux_init(&d5);
    FUZZ_CHECK(demux_feed(&d5, data, size, NULL, NULL) == r1);

    sink_free(&stop);
    sink_free(&whole);
    sink_free(&split);
    sink_free(&bytes);
    return 0;
}
