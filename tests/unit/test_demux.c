/* The multiplexed-stream demuxer against hostile and oddly split input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "docker/demux.h"
#include "util/buf.h"

typedef struct collect {
    se_buf s[3];
    int calls;
    int stop_after; /* return 7 from this call on, 0 = never */
} collect;

static void
collect_init(collect *c)
{
    memset(c, 0, sizeof(*c));
    for (int i = 0; i < 3; i++)
        se_buf_init(&c->s[i], 1 << 24);
}

static void
collect_free(collect *c)
{
    for (int i = 0; i < 3; i++)
        se_buf_free(&c->s[i]);
}

static int
on_data(int stream, const uint8_t *data, size_t len, void *ud)
{
    collect *c = ud;
    assert_true(stream >= 0 && stream <= 2);
    assert_true(len > 0);
    assert_int_equal(se_buf_append(&c->s[stream], data, len), 0);
    c->calls++;
    if (c->stop_after && c->calls >= c->stop_after)
        return 7;
    return 0;
}

static size_t
frame(uint8_t *out, int stream, const void *payload, uint32_t len)
{
    out[0] = (uint8_t)stream;
    out[1] = out[2] = out[3] = 0;
    out[4] = (uint8_t)(len >> 24);
    out[5] = (uint8_t)(len >> 16);
    out[6] = (uint8_t)(len >> 8);
    out[7] = (uint8_t)len;
    memcpy(out + 8, payload, len);
    return 8 + len;
}

/* stdout "hello ", an empty frame, stderr "oops", stdin "x", stdout a
 * patterned block of 3000 bytes. */
static uint8_t *
sample(size_t *len, uint8_t **big_out)
{
    uint8_t *big = malloc(3000);
    for (size_t i = 0; i < 3000; i++)
        big[i] = (uint8_t)(i * 7 + 3);
    uint8_t *s = malloc(8 * 5 + 6 + 4 + 1 + 3000);
    size_t n = 0;
    n += frame(s + n, 1, "hello ", 6);
    n += frame(s + n, 2, "", 0);
    n += frame(s + n, 2, "oops", 4);
    n += frame(s + n, 0, "x", 1);
    n += frame(s + n, 1, big, 3000);
    *len = n;
    *big_out = big;
    return s;
}

static void
check_sample(collect *c, const uint8_t *big)
{
    assert_int_equal(c->s[1].len, 3006);
    assert_memory_equal(c->s[1].data, "hello ", 6);
    assert_memory_equal(c->s[1].data + 6, big, 3000);
    assert_int_equal(c->s[2].len, 4);
    assert_memory_equal(c->s[2].data, "oops", 4);
    assert_int_equal(c->s[0].len, 1);
}

static void
test_whole(void **state)
{
    (void)state;
    size_t n;
    uint8_t *big;
    uint8_t *s = sample(&n, &big);
    collect c;
    collect_init(&c);
    demux d;
    demux_init(&d);
    assert_int_equal(demux_at_boundary(&d), 1);
    assert_int_equal(demux_feed(&d, s, n, on_data, &c), 0);
    assert_int_equal(demux_at_boundary(&d), 1);
    check_sample(&c, big);
    collect_free(&c);
    free(s);
    free(big);
}

static void
test_split_every_byte(void **state)
{
    (void)state;
    size_t n;
    uint8_t *big;
    uint8_t *s = sample(&n, &big);
    /* Two pieces at every split point. */
    for (size_t i = 0; i <= n; i++) {
        collect c;
        collect_init(&c);
        demux d;
        demux_init(&d);
        assert_int_equal(demux_feed(&d, s, i, on_data, &c), 0);
        assert_int_equal(demux_feed(&d, s + i, n - i, on_data, &c), 0);
        assert_int_equal(demux_at_boundary(&d), 1);
        check_sample(&c, big);
        collect_free(&c);
    }
    /* One byte at a time, with the boundary reported correctly. */
    collect c;
    collect_init(&c);
    demux d;
    demux_init(&d);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(demux_feed(&d, s + i, 1, on_data, &c), 0);
        bool boundary =
            (i + 1 == 14) || (i + 1 == 22) || (i + 1 == 34) || (i + 1 == 43) || (i + 1 == n);
        assert_int_equal(demux_at_boundary(&d), boundary ? 1 : 0);
    }
    check_sample(&c, big);
    collect_free(&c);
    free(s);
    free(big);
}

static void
test_huge_declared_length(void **state)
{
    (void)state;
    uint8_t s[8 + 10] = {1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
    memset(s + 8, 'a', 10);
    collect c;
    collect_init(&c);
    demux d;
    demux_init(&d);
    assert_int_equal(demux_feed(&d, s, sizeof(s), on_data, &c), 0);
    /* Only what arrived is passed on; the frame is still open. */
    assert_int_equal(c.s[1].len, 10);
    assert_int_equal(demux_at_boundary(&d), 0);
    assert_true(d.left == 0xffffffffULL - 10);
    collect_free(&c);
}

static void
test_bad_stream_byte(void **state)
{
    (void)state;
    uint8_t good[8 + 2];
    size_t n = frame(good, 1, "ok", 2);
    for (int b = 3; b < 256; b += 17) {
        uint8_t s[8 + 2 + 8];
        memcpy(s, good, n);
        memcpy(s + n, (uint8_t[]){(uint8_t)b, 0, 0, 0, 0, 0, 0, 1}, 8);
        collect c;
        collect_init(&c);
        demux d;
        demux_init(&d);
        assert_int_equal(demux_feed(&d, s, sizeof(s), on_data, &c), -1);
        assert_int_equal(c.s[1].len, 2); /* the good frame before still counted */
        /* Sticky: nothing more is accepted. */
        assert_int_equal(demux_feed(&d, good, n, on_data, &c), -1);
        assert_int_equal(demux_at_boundary(&d), 0);
        collect_free(&c);
    }
}

static void
test_nonzero_padding(void **state)
{
    (void)state;
    for (int pos = 1; pos <= 3; pos++) {
        uint8_t s[8] = {1, 0, 0, 0, 0, 0, 0, 0};
        s[pos] = 1;
        demux d;
        demux_init(&d);
        collect c;
        collect_init(&c);
        assert_int_equal(demux_feed(&d, s, sizeof(s), on_data, &c), -1);
        assert_int_equal(c.calls, 0);
        collect_free(&c);
    }
    /* A TTY stream (plain text) is refused at once. */
    demux d;
    demux_init(&d);
    assert_int_equal(demux_feed(&d, (const uint8_t *)"hello world\n", 12, on_data, NULL), -1);
}

static void
test_empty_frames_and_truncation(void **state)
{
    (void)state;
    uint8_t s[8 * 100];
    for (int i = 0; i < 100; i++)
        frame(s + 8 * i, i % 3, "", 0);
    collect c;
    collect_init(&c);
    demux d;
    demux_init(&d);
    assert_int_equal(demux_feed(&d, s, sizeof(s), on_data, &c), 0);
    assert_int_equal(c.calls, 0);
    assert_int_equal(demux_at_boundary(&d), 1);
    /* Truncated header, then truncated payload. */
    assert_int_equal(demux_feed(&d, s, 5, on_data, &c), 0);
    assert_int_equal(demux_at_boundary(&d), 0);
    demux_init(&d);
    uint8_t t[8 + 4];
    frame(t, 1, "abcd", 4);
    assert_int_equal(demux_feed(&d, t, 10, on_data, &c), 0);
    assert_int_equal(demux_at_boundary(&d), 0);
    assert_int_equal(c.s[1].len, 2);
    /* Zero-length feed changes nothing. */
    assert_int_equal(demux_feed(&d, t, 0, on_data, &c), 0);
    assert_int_equal(c.s[1].len, 2);
    collect_free(&c);
}

static void
test_callback_stops(void **state)
{
    (void)state;
    size_t n;
    uint8_t *big;
    uint8_t *s = sample(&n, &big);
    collect c;
    collect_init(&c);
    c.stop_after = 2;
    demux d;
    demux_init(&d);
    assert_int_equal(demux_feed(&d, s, n, on_data, &c), 7);
    assert_int_equal(c.calls, 2);
    collect_free(&c);
    free(s);
    free(big);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole),
        cmocka_unit_test(test_split_every_byte),
        cmocka_unit_test(test_huge_declared_length),
        cmocka_unit_test(test_bad_stream_byte),
        cmocka_unit_test(test_nonzero_padding),
        cmocka_unit_test(test_empty_frames_and_truncation),
        cmocka_unit_test(test_callback_stops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
