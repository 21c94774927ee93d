/* The multiplexed-stream demuxer against hostile and oddly split input, and
 * what an attach stream builds on it: the stderr tail and the router that
 * keeps a reader's memory to its caller's buffer. */
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

static void
test_tail_sanitises(void **state)
{
    (void)state;
    demux_tail t;
    demux_tail_init(&t);
    assert_string_equal(t.text, "");
    const char in[] = "Traceback\r\n\tline \x1b[31mred\x00\x7f\xc3\xa9!";
    demux_tail_append(&t, (const uint8_t *)in, sizeof(in) - 1);
    assert_string_equal(t.text, "Traceback   line ?[31mred????"
                                "!");
    assert_int_equal(t.len, strlen(t.text));
    demux_tail_append(&t, NULL, 0);
    assert_string_equal(t.text, "Traceback   line ?[31mred????"
                                "!");
}

/* Whatever the pieces, the tail is the last DEMUX_TAIL_CAP bytes. */
static void
test_tail_keeps_last(void **state)
{
    (void)state;
    size_t total = 3 * DEMUX_TAIL_CAP + 123;
    uint8_t *all = malloc(total);
    for (size_t i = 0; i < total; i++)
        all[i] = (uint8_t)('a' + i % 26);
    const size_t pieces[] = {1,    7, 100, DEMUX_TAIL_CAP - 1, DEMUX_TAIL_CAP, DEMUX_TAIL_CAP + 1,
                             total};
    for (size_t p = 0; p < sizeof(pieces) / sizeof(pieces[0]); p++) {
        demux_tail t;
        demux_tail_init(&t);
        size_t fed = 0;
        while (fed < total) {
            size_t n = total - fed < pieces[p] ? total - fed : pieces[p];
            demux_tail_append(&t, all + fed, n);
            fed += n;
            size_t want = fed < DEMUX_TAIL_CAP ? fed : DEMUX_TAIL_CAP;
            assert_int_equal(t.len, want);
            assert_memory_equal(t.text, all + fed - want, want);
            assert_int_equal(t.text[want], '\0');
        }
    }
    free(all);
}

/* Reads the sample the way an attach reader does: at most the room left in
 * a buffer of cap bytes per step; stdout comes out whole, stderr in the tail,
 * stdin nowhere. */
static void
test_route_bounded(void **state)
{
    (void)state;
    size_t n;
    uint8_t *big;
    uint8_t *s = sample(&n, &big);
    const size_t caps[] = {1, 2, 5, 8, 9, 100, 3006, 3007, 65536};
    for (size_t k = 0; k < sizeof(caps) / sizeof(caps[0]); k++) {
        size_t cap = caps[k];
        uint8_t *buf = malloc(cap);
        se_buf out;
        se_buf_init(&out, 1 << 20);
        demux d;
        demux_init(&d);
        demux_tail t;
        demux_tail_init(&t);
        size_t pos = 0;
        while (pos < n) {
            size_t got = 0;
            /* Refill until the buffer is full or the input is gone, as a
             * reader does within one call. */
            while (got < cap && pos < n) {
                size_t step = cap - got < n - pos ? cap - got : n - pos;
                assert_int_equal(demux_route(&d, s + pos, step, buf, cap, &got, &t), 0);
                assert_true(got <= cap);
                pos += step;
            }
            assert_int_equal(se_buf_append(&out, buf, got), 0);
        }
        assert_int_equal(demux_at_boundary(&d), 1);
        assert_int_equal(out.len, 3006);
        assert_memory_equal(out.data, "hello ", 6);
        assert_memory_equal(out.data + 6, big, 3000);
        assert_string_equal(t.text, "oops");
        se_buf_free(&out);
        free(buf);
    }
    free(s);
    free(big);
}

static void
test_route_malformed(void **state)
{
    (void)state;
    uint8_t s[8 + 2 + 8];
    size_t n = frame(s, 1, "ok", 2);
    memcpy(s + n, (uint8_t[]){9, 0, 0, 0, 0, 0, 0, 1}, 8);
    uint8_t buf[sizeof(s)];
    size_t got = 0;
    demux d;
    demux_init(&d);
    demux_tail t;
    demux_tail_init(&t);
    assert_int_equal(demux_route(&d, s, sizeof(s), buf, sizeof(buf), &got, &t), -1);
    assert_int_equal(got, 2); /* what came before the bad header */
    got = 0;
    assert_int_equal(demux_route(&d, s, n, buf, sizeof(buf), &got, &t), -1); /* sticky */
    assert_int_equal(got, 0);
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
        cmocka_unit_test(test_tail_sanitises),
        cmocka_unit_test(test_tail_keeps_last),
        cmocka_unit_test(test_route_bounded),
        cmocka_unit_test(test_route_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
