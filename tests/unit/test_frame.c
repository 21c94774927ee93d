/* Frame parsing with hostile input: short reads, lengths at and over the cap,
 * zero-length frames, trailing bytes, every split of a valid stream; and the
 * agent's incremental reader (frame_reader) fed in pieces of every size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/frame.h"

static void
test_header_roundtrip(void **state)
{
    (void)state;
    uint8_t h[FRAME_HDR];
    frame_put_header(h, 0x01020304u);
    assert_int_equal(h[0], 1);
    assert_int_equal(h[1], 2);
    assert_int_equal(h[2], 3);
    assert_int_equal(h[3], 4);
    assert_int_equal(frame_get_len(h), 0x01020304u);
    frame_put_header(h, 0xffffffffu);
    assert_memory_equal(h, "\xff\xff\xff\xff", 4);
    assert_int_equal(frame_get_len(h), 0xffffffffu);
}

static void
test_short_input(void **state)
{
    (void)state;
    const uint8_t *p = NULL;
    uint32_t n = 99;
    size_t used = 99;
    uint8_t buf[8] = {0, 0, 0, 5, 'a', 'b', 'c', 'd'};
    for (size_t len = 0; len < FRAME_HDR; len++)
        assert_int_equal(frame_parse(buf, len, FRAME_MAX, &p, &n, &used), 0);
    /* header says 5, only 4 present */
    assert_int_equal(frame_parse(buf, 8, FRAME_MAX, &p, &n, &used), 0);
    assert_null(p);
    assert_int_equal(n, 99);
    assert_int_equal(used, 99);
    /* NULL buffer with zero length must not be touched */
    assert_int_equal(frame_parse(NULL, 0, FRAME_MAX, &p, &n, &used), 0);
}

static void
test_zero_length(void **state)
{
    (void)state;
    uint8_t buf[4] = {0, 0, 0, 0};
    const uint8_t *p;
    uint32_t n;
    size_t used;
    assert_int_equal(frame_parse(buf, 4, FRAME_MAX, &p, &n, &used), 1);
    assert_int_equal(n, 0);
    assert_int_equal(used, 4);
    assert_ptr_equal(p, buf + 4);
}

static void
test_cap(void **state)
{
    (void)state;
    uint8_t h[FRAME_HDR];
    const uint8_t *p;
    uint32_t n;
    size_t used;
    /* exactly at the cap: fine, needs more bytes */
    frame_put_header(h, FRAME_MAX);
    assert_int_equal(frame_parse(h, 4, FRAME_MAX, &p, &n, &used), 0);
    /* one over, and the largest u32: refused before any allocation */
    frame_put_header(h, FRAME_MAX + 1);
    assert_int_equal(frame_parse(h, 4, FRAME_MAX, &p, &n, &used), -1);
    frame_put_header(h, 0xffffffffu);
    assert_int_equal(frame_parse(h, 4, FRAME_MAX, &p, &n, &used), -1);
    /* a small caller cap */
    frame_put_header(h, 17);
    assert_int_equal(frame_parse(h, 4, 16, &p, &n, &used), -1);
    frame_put_header(h, 16);
    assert_int_equal(frame_parse(h, 4, 16, &p, &n, &used), 0);
    /* the length bytes are big-endian, not little-endian */
    uint8_t le[4] = {0x10, 0, 0, 0};
    assert_int_equal(frame_parse(le, 4, 16, &p, &n, &used), -1);
}

static void
test_stream_every_split(void **state)
{
    (void)state;
    /* two frames back to back: "hello" and "" and "xy" */
    uint8_t s[4 + 5 + 4 + 4 + 2];
    size_t o = 0;
    frame_put_header(s + o, 5);
    memcpy(s + o + 4, "hello", 5);
    o += 9;
    frame_put_header(s + o, 0);
    o += 4;
    frame_put_header(s + o, 2);
    memcpy(s + o + 4, "xy", 2);
    o += 6;
    assert_int_equal(o, sizeof s);
    for (size_t avail = 0; avail <= sizeof s; avail++) {
        /* parse as many whole frames as the first `avail` bytes hold */
        size_t off = 0;
        int frames = 0;
        for (;;) {
            const uint8_t *p;
            uint32_t n;
            size_t used;
            int r = frame_parse(s + off, avail - off, 64, &p, &n, &used);
            assert_true(r == 0 || r == 1);
            if (r == 0)
                break;
            assert_true(used <= avail - off);
            if (frames == 0) {
                assert_int_equal(n, 5);
                assert_memory_equal(p, "hello", 5);
            } else if (frames == 1) {
                assert_int_equal(n, 0);
            } else {
                assert_int_equal(n, 2);
                assert_memory_equal(p, "xy", 2);
            }
            off += used;
            frames++;
        }
        int want = avail >= 19 ? 3 : avail >= 13 ? 2 : avail >= 9 ? 1 : 0;
        assert_int_equal(frames, want);
    }
}

static void
test_random_garbage(void **state)
{
    (void)state;
    /* Whatever the bytes, the parser never claims more than it was given. */
    uint8_t buf[64];
    unsigned seed = 12345;
    for (int iter = 0; iter < 100000; iter++) {
        size_t len = (size_t)(iter % 65);
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            buf[i] = (uint8_t)(seed >> 16);
            if (i < 3 && (seed & 0x100))
                buf[i] = 0; /* make small lengths common */
        }
        const uint8_t *p;
        uint32_t n;
        size_t used;
        int r = frame_parse(buf, len, 60, &p, &n, &used);
        if (r == 1) {
            assert_true(used <= len);
            assert_int_equal(used, FRAME_HDR + (size_t)n);
            assert_ptr_equal(p, buf + FRAME_HDR);
        } else {
            assert_true(r == 0 || r == -1);
        }
    }
}

/* A stream of frames with payloads of the given lengths ('a' + i filled). */
static size_t
make_stream(uint8_t *buf, const uint32_t *lens, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        frame_put_header(buf + o, lens[i]);
        memset(buf + o + FRAME_HDR, 'a' + (int)i, lens[i]);
        o += FRAME_HDR + lens[i];
    }
    return o;
}

/* Feeds the stream in pieces of `piece` bytes; records what came out. */
static int
reader_run(const uint8_t *buf, size_t len, size_t piece, uint32_t max, uint32_t keep, int *kinds,
           uint32_t *lens, int cap)
{
    frame_reader r;
    frame_reader_init(&r);
    int n = 0;
    size_t off = 0;
    while (off < len) {
        size_t chunk = len - off < piece ? len - off : piece;
        size_t pos = 0;
        while (pos < chunk) {
            size_t used = 0;
            int k = frame_reader_feed(&r, buf + off + pos, chunk - pos, max, keep, &used);
            assert_true(used <= chunk - pos);
            pos += used;
            if (k == FRAME_MORE) {
                assert_int_equal(pos, chunk);
                break;
            }
            assert_true(n < cap);
            kinds[n] = k;
            lens[n] = r.len;
            if (k == FRAME_READY) {
                /* The payload is exactly the frame's bytes. */
                for (uint32_t i = 0; i < r.len; i++)
                    assert_int_equal(r.payload[i], 'a' + n);
            } else if (k == FRAME_SKIPPED) {
                assert_int_equal(r.head_len, r.len < FRAME_HEAD ? r.len : FRAME_HEAD);
                for (uint32_t i = 0; i < r.head_len; i++)
                    assert_int_equal(r.head[i], 'a' + n);
            } else {
                frame_reader_free(&r);
                return n + 1;
            }
            n++;
        }
        off += chunk;
    }
    frame_reader_free(&r);
    return n;
}

static void
test_reader_every_piece_size(void **state)
{
    (void)state;
    const uint32_t lens[] = {5, 0, 40, 1, 17, 0};
    uint8_t buf[256];
    size_t len = make_stream(buf, lens, 6);
    for (size_t piece = 1; piece <= len; piece++) {
        int kinds[8];
        uint32_t got[8];
        /* keep 16: the 40- and 17-byte frames are read past, heads kept */
        int n = reader_run(buf, len, piece, 64, 16, kinds, got, 8);
        assert_int_equal(n, 6);
        for (int i = 0; i < 6; i++) {
            assert_int_equal(got[i], lens[i]);
            assert_int_equal(kinds[i], lens[i] > 16 ? FRAME_SKIPPED : FRAME_READY);
        }
    }
}

static void
test_reader_too_big(void **state)
{
    (void)state;
    uint8_t buf[64];
    const uint32_t lens[] = {3};
    size_t len = make_stream(buf, lens, 1);
    frame_put_header(buf + len, 65); /* over max 64: corrupt */
    len += FRAME_HDR;
    for (size_t piece = 1; piece <= len; piece++) {
        int kinds[4];
        uint32_t got[4];
        int n = reader_run(buf, len, piece, 64, 64, kinds, got, 4);
        assert_int_equal(n, 2);
        assert_int_equal(kinds[0], FRAME_READY);
        assert_int_equal(kinds[1], FRAME_TOO_BIG);
    }
    /* The reader stays broken: later bytes never make a frame. */
    frame_reader r;
    frame_reader_init(&r);
    size_t used;
    uint8_t hdr[FRAME_HDR];
    frame_put_header(hdr, 0xffffffffu);
    assert_int_equal(frame_reader_feed(&r, hdr, 4, FRAME_MAX, FRAME_MAX, &used), FRAME_TOO_BIG);
    uint8_t zero[8] = {0};
    assert_int_equal(frame_reader_feed(&r, zero, 8, FRAME_MAX, FRAME_MAX, &used), FRAME_TOO_BIG);
    assert_int_equal(used, 0);
    frame_reader_free(&r);
}

static void
test_reader_partial_and_empty(void **state)
{
    (void)state;
    frame_reader r;
    frame_reader_init(&r);
    size_t used = 99;
    assert_false(frame_reader_partial(&r));
    assert_true(frame_reader_in_header(&r));
    assert_int_equal(frame_reader_feed(&r, NULL, 0, 64, 64, &used), FRAME_MORE);
    assert_int_equal(used, 0);
    uint8_t b[6] = {0, 0, 0, 2, 'x', 'y'};
    assert_int_equal(frame_reader_feed(&r, b, 3, 64, 64, &used), FRAME_MORE);
    assert_int_equal(used, 3);
    assert_true(frame_reader_partial(&r));
    assert_true(frame_reader_in_header(&r));
    assert_int_equal(frame_reader_feed(&r, b + 3, 2, 64, 64, &used), FRAME_MORE);
    assert_false(frame_reader_in_header(&r));
    /* keep no longer matters once the header is in */
    assert_int_equal(frame_reader_feed(&r, b + 5, 1, 64, 0, &used), FRAME_READY);
    assert_int_equal(used, 1);
    assert_false(frame_reader_partial(&r));
    assert_true(frame_reader_in_header(&r));
    assert_memory_equal(r.payload, "xy", 2);
    /* A header alone ends a zero-length frame. */
    uint8_t z[4] = {0, 0, 0, 0};
    assert_int_equal(frame_reader_feed(&r, z, 4, 64, 64, &used), FRAME_READY);
    assert_int_equal(r.len, 0);
    assert_non_null(r.payload);
    frame_reader_free(&r);
}

static void
test_reader_random(void **state)
{
    (void)state;
    /* Random bytes in random pieces: never a payload bigger than keep or a
     * length over max, never more bytes used than given. */
    unsigned seed = 777;
    uint8_t buf[512];
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = (size_t)(iter % 512);
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            buf[i] = (seed & 0x300) ? (uint8_t)(seed >> 16) & 0x1f : 0;
        }
        frame_reader r;
        frame_reader_init(&r);
        size_t off = 0;
        while (off < len) {
            seed = seed * 1103515245u + 12345u;
            size_t piece = 1 + (seed >> 16) % 40;
            if (piece > len - off)
                piece = len - off;
            size_t used;
            int k = frame_reader_feed(&r, buf + off, piece, 24, 8, &used);
            assert_true(used <= piece);
            if (k == FRAME_TOO_BIG) {
                assert_true(r.len > 24);
                break;
            }
            if (k == FRAME_READY)
                assert_true(r.len <= 8);
            if (k == FRAME_SKIPPED)
                assert_true(r.len > 8 && r.len <= 24);
            if (k == FRAME_MORE)
                assert_int_equal(used, piece);
            off += used;
        }
        frame_reader_free(&r);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_roundtrip),
        cmocka_unit_test(test_short_input),
        cmocka_unit_test(test_zero_length),
        cmocka_unit_test(test_cap),
        cmocka_unit_test(test_stream_every_split),
        cmocka_unit_test(test_random_garbage),
        cmocka_unit_test(test_reader_every_piece_size),
        cmocka_unit_test(test_reader_too_big),
        cmocka_unit_test(test_reader_partial_and_empty),
        cmocka_unit_test(test_reader_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
