/* Frame parsing with hostile input: short reads, lengths at and over the cap,
 * zero-length frames, trailing bytes, every split of a valid stream. */
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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_roundtrip),   cmocka_unit_test(test_short_input),
        cmocka_unit_test(test_zero_length),        cmocka_unit_test(test_cap),
        cmocka_unit_test(test_stream_every_split), cmocka_unit_test(test_random_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
