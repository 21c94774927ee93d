/* The wire walk that refuses a NUL inside a string field (util/pbcheck.h).
 * Requests are encoded by hand here: protobuf-c packs strings with strlen,
 * so it cannot write the very bytes a hostile client sends. Where a case is
 * about framing, protobuf-c's own unpack of the same bytes is the check
 * that the walk reads the wire as it does. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "safeeval/v1/sandbox.pb-c.h"
#include "util/pbcheck.h"

/* ---- a tiny encoder ---------------------------------------------------------------------- */

#define WIRE_CAP 8192

typedef struct wire {
    uint8_t b[WIRE_CAP];
    size_t n;
} wire;

static void
w_raw(wire *w, const void *p, size_t n)
{
    assert_true(w->n + n <= WIRE_CAP);
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

static void
w_byte(wire *w, uint8_t b)
{
    w_raw(w, &b, 1);
}

static void
w_varint(wire *w, uint64_t v)
{
    do {
        uint8_t b = v & 0x7f;
        v >>= 7;
        w_byte(w, b | (v ? 0x80 : 0));
    } while (v);
}

static void
w_key(wire *w, uint32_t num, unsigned wire_type)
{
    w_varint(w, ((uint64_t)num << 3) | wire_type);
}

static void
w_bytes(wire *w, uint32_t num, const void *p, size_t n)
{
    w_key(w, num, PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED);
    w_varint(w, n);
    w_raw(w, p, n);
}

/* A string literal with its embedded NULs: sizeof - 1 bytes. */
#define W_STR(w, num, lit) w_bytes((w), (num), (lit), sizeof(lit) - 1)

static void
w_msg(wire *w, uint32_t num, const wire *sub)
{
    w_bytes(w, num, sub->b, sub->n);
}

static void
w_uint(wire *w, uint32_t num, uint64_t v)
{
    w_key(w, num, PROTOBUF_C_WIRE_TYPE_VARINT);
    w_varint(w, v);
}

static wire
entry(const void *k, size_t kl, const void *v, size_t vl)
{
    wire e = {.n = 0};
    w_bytes(&e, 1, k, kl);
    w_bytes(&e, 2, v, vl);
    return e;
}
#define ENTRY(k, v) entry((k), sizeof(k) - 1, (v), sizeof(v) - 1)

static wire
file_msg(const void *path, size_t pl, const void *content, size_t cl)
{
    wire f = {.n = 0};
    w_bytes(&f, 1, path, pl);
    w_bytes(&f, 2, content, cl);
    return f;
}
#define FILE_MSG(p, c) file_msg((p), sizeof(p) - 1, (c), sizeof(c) - 1)

/* ---- checks ------------------------------------------------------------------------------- */

/* pbcheck on an exact-size copy (a read past the end is an ASan error). */
static int
check(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n, se_err *err)
{
    se_err_clear(err);
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    memcpy(copy, p, n);
    int rc = pbcheck_message(d, n ? copy : NULL, n, err);
    free(copy);
    return rc;
}

static bool
unpacks(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, n, p);
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    return m != NULL;
}

static void
expect_ok(const ProtobufCMessageDescriptor *d, const wire *w)
{
    se_err err;
    int rc = check(d, w->b, w->n, &err);
    if (rc != 0)
        fail_msg("refused: %s", err.msg);
}

static void
expect_msg(const ProtobufCMessageDescriptor *d, const wire *w, const char *want)
{
    se_err err;
    int rc = check(d, w->b, w->n, &err);
    if (rc != -SE_INVALID || err.code != SE_INVALID || strcmp(err.msg, want) != 0)
        fail_msg("rc %d msg '%s', want '%s'", rc, err.msg, want);
}

#define EVAL (&safeeval__v1__eval_request__descriptor)
#define EXEC (&safeeval__v1__execute_file_request__descriptor)
#define CREATE (&safeeval__v1__create_sandbox_request__descriptor)
#define GET (&safeeval__v1__get_sandbox_request__descriptor)

/* ---- tests -------------------------------------------------------------------------------- */

static void
test_clean_request_passes(void **state)
{
    (void)state;
    wire w = {.n = 0};
    W_STR(&w, 1, "abc123");
    W_STR(&w, 2, "print(1)");
    W_STR(&w, 3, "in\0put");
    W_STR(&w, 4, "a");
    W_STR(&w, 4, "");
    wire e = ENTRY("HOME", "/tmp");
    w_msg(&w, 5, &e);
    wire lim = {.n = 0};
    w_uint(&lim, 1, 1000);
    w_msg(&w, 6, &lim);
    wire f = FILE_MSG("data/in.csv", "a,b\0\0c");
    w_msg(&w, 7, &f);
    expect_ok(EVAL, &w);

    Safeeval__V1__EvalRequest *r = safeeval__v1__eval_request__unpack(NULL, w.n, w.b);
    assert_non_null(r);
    assert_string_equal(r->code, "print(1)");
    assert_int_equal(r->stdin.len, 6);
    assert_int_equal(r->n_files, 1);
    assert_int_equal(r->files[0]->content.len, 6);
    safeeval__v1__eval_request__free_unpacked(r, NULL);

    /* The empty message, as ListSandboxes sends it: no bytes at all. */
    se_err err;
    assert_int_equal(
        pbcheck_message(&safeeval__v1__list_sandboxes_request__descriptor, NULL, 0, &err), 0);
}

static void
test_nul_top_level(void **state)
{
    (void)state;
    wire w = {.n = 0};
    W_STR(&w, 1, "abc");
    W_STR(&w, 2, "print(1)\0import os; os.system('x')");
    expect_msg(EVAL, &w, "code: contains a NUL byte");

    w.n = 0;
    W_STR(&w, 1, "ab\0cd");
    expect_msg(GET, &w, "sandbox_id: contains a NUL byte");
    expect_msg(&safeeval__v1__destroy_sandbox_request__descriptor, &w,
               "sandbox_id: contains a NUL byte");

    /* A NUL as the first and as the last byte. */
    w.n = 0;
    W_STR(&w, 1, "\0");
    expect_msg(GET, &w, "sandbox_id: contains a NUL byte");
    w.n = 0;
    W_STR(&w, 1, "abc\0");
    expect_msg(GET, &w, "sandbox_id: contains a NUL byte");

    /* A string field sent twice: protobuf-c keeps the last, but the first
     * still came from the client with a NUL in it. */
    w.n = 0;
    W_STR(&w, 2, "ab\0c");
    W_STR(&w, 2, "print(1)");
    expect_msg(EVAL, &w, "code: contains a NUL byte");

    w.n = 0;
    W_STR(&w, 1, "abc");
    W_STR(&w, 2, "x.py");
    W_STR(&w, 3, "print(1)\0");
    expect_ok(EXEC, &w); /* content is bytes */
    w.n = 0;
    W_STR(&w, 2, "job.py\0x");
    expect_msg(EXEC, &w, "filename: contains a NUL byte");
}

static void
test_nul_repeated_string(void **state)
{
    (void)state;
    wire w = {.n = 0};
    W_STR(&w, 2, "print(1)");
    W_STR(&w, 4, "a");
    W_STR(&w, 1, "abc"); /* another field between: not counted */
    W_STR(&w, 4, "a\0b");
    expect_msg(EVAL, &w, "args[1]: contains a NUL byte");

    w.n = 0;
    W_STR(&w, 2, "numpy");
    W_STR(&w, 2, "numpy\0--index-url=http://evil");
    expect_msg(CREATE, &w, "modules[1]: contains a NUL byte");

    w.n = 0;
    W_STR(&w, 5, "x");
    W_STR(&w, 5, "y");
    W_STR(&w, 5, "z");
    W_STR(&w, 5, "\0");
    expect_msg(EXEC, &w, "args[3]: contains a NUL byte");
}

static void
test_nul_map(void **state)
{
    (void)state;
    wire w = {.n = 0};
    wire e0 = ENTRY("A", "1"), e1 = ENTRY("K\0X", "v");
    w_msg(&w, 5, &e0);
    w_msg(&w, 5, &e1);
    expect_msg(EVAL, &w, "env[1].key: contains a NUL byte");

    /* A value: the key is named when it can be printed. */
    w.n = 0;
    wire e2 = ENTRY("HOME", "/tmp\0/x");
    w_msg(&w, 6, &e2);
    expect_msg(EXEC, &w, "env[0].value: contains a NUL byte (key \"HOME\")");

    /* The key after the value (any order is valid) and sent twice: the
     * last one is the key, as protobuf-c unpacks it. */
    w.n = 0;
    wire e3 = {.n = 0};
    W_STR(&e3, 1, "FIRST");
    W_STR(&e3, 2, "a\0b");
    W_STR(&e3, 1, "LAST");
    w_msg(&w, 5, &e0);
    w_msg(&w, 5, &e0);
    w_msg(&w, 5, &e3);
    expect_msg(EVAL, &w, "env[2].value: contains a NUL byte (key \"LAST\")");

    /* A key that is not printable, or has a quote, or is missing: no note. */
    w.n = 0;
    wire e4 = ENTRY("K\x01", "v\0");
    w_msg(&w, 5, &e4);
    expect_msg(EVAL, &w, "env[0].value: contains a NUL byte");
    w.n = 0;
    wire e5 = ENTRY("a\"b", "v\0");
    w_msg(&w, 5, &e5);
    expect_msg(EVAL, &w, "env[0].value: contains a NUL byte");
    w.n = 0;
    wire e6 = {.n = 0};
    W_STR(&e6, 2, "\0");
    w_msg(&w, 5, &e6);
    expect_msg(EVAL, &w, "env[0].value: contains a NUL byte");

    /* Labels of a create. */
    w.n = 0;
    W_STR(&w, 1, "3.11");
    wire l0 = ENTRY("k\0x", "v");
    w_msg(&w, 5, &l0);
    expect_msg(CREATE, &w, "labels[0].key: contains a NUL byte");
    w.n = 0;
    wire l1 = ENTRY("owner", "me\0you");
    w_msg(&w, 5, &l1);
    expect_msg(CREATE, &w, "labels[0].value: contains a NUL byte (key \"owner\")");
}

static void
test_nul_nested_message(void **state)
{
    (void)state;
    wire w = {.n = 0};
    W_STR(&w, 2, "print(1)");
    wire f0 = FILE_MSG("etc/passwd\0x", "root");
    w_msg(&w, 7, &f0);
    expect_msg(EVAL, &w, "files[0].path: contains a NUL byte");

    w.n = 0;
    wire ok = FILE_MSG("a", "\0\0"), bad = FILE_MSG("c\0", "");
    w_msg(&w, 8, &ok);
    W_STR(&w, 5, "arg"); /* fields between the files */
    w_msg(&w, 8, &ok);
    w_msg(&w, 8, &bad);
    expect_msg(EXEC, &w, "files[2].path: contains a NUL byte");
}

static void
test_nested_without_strings(void **state)
{
    (void)state;
    /* Limits has no string: zero bytes in it are numbers (an explicit 0, a
     * varint's last byte), and an unknown length-delimited field in it is
     * not looked into. */
    wire lim = {.n = 0};
    w_uint(&lim, 1, 0);
    w_uint(&lim, 3, 1ull << 35);
    W_STR(&lim, 15, "\0\0\0");
    w_key(&lim, 16, PROTOBUF_C_WIRE_TYPE_64BIT);
    w_raw(&lim, "\0\0\0\0\0\0\0\0", 8);
    wire w = {.n = 0};
    w_msg(&w, 6, &lim);
    expect_ok(EVAL, &w);
    assert_true(unpacks(EVAL, w.b, w.n));
    w.n = 0;
    w_msg(&w, 3, &lim);
    expect_ok(CREATE, &w);
    assert_true(unpacks(CREATE, w.b, w.n));
}

static void
test_unknown_fields_skipped(void **state)
{
    (void)state;
    wire w = {.n = 0};
    W_STR(&w, 1, "abc");
    w_uint(&w, 100, UINT64_MAX); /* a 10-byte varint */
    w_key(&w, 101, PROTOBUF_C_WIRE_TYPE_64BIT);
    w_raw(&w, "\0\1\2\3\4\5\6\7", 8);
    w_key(&w, 102, PROTOBUF_C_WIRE_TYPE_32BIT);
    w_raw(&w, "\0\0\0\0", 4);
    W_STR(&w, 103, "not a string of ours\0");
    W_STR(&w, (1u << 29) - 1, "\0");  /* the largest field number: a 5-byte key */
    wire deep = FILE_MSG("x\0", "y"); /* an unknown field that looks like a File */
    w_msg(&w, 104, &deep);
    W_STR(&w, 2, "print(1)");
    expect_ok(EVAL, &w);
    assert_true(unpacks(EVAL, w.b, w.n));

    /* The walk keeps its place across them: a NUL after them is found. */
    W_STR(&w, 4, "a\0");
    expect_msg(EVAL, &w, "args[0]: contains a NUL byte");

    /* A known field with the wrong wire type is skipped here; protobuf-c
     * refuses it at unpack. */
    w.n = 0;
    w_uint(&w, 2, 5);
    expect_ok(EVAL, &w);
    assert_false(unpacks(EVAL, w.b, w.n));

    /* A message with no fields at all takes any well-formed bytes. */
    w.n = 0;
    W_STR(&w, 1, "\0");
    expect_ok(&safeeval__v1__list_sandboxes_request__descriptor, &w);
}

static void
expect_malformed(const uint8_t *p, size_t n, const char *why)
{
    se_err err;
    int rc = check(EVAL, p, n, &err);
    if (rc != -SE_INVALID || !strstr(err.msg, "not a valid safeeval.v1.EvalRequest: ") ||
        !strstr(err.msg, why))
        fail_msg("rc %d msg '%s', want '%s'", rc, err.msg, why);
    /* protobuf-c refuses the same bytes: the walk is not stricter. */
    assert_false(unpacks(EVAL, p, n));
}

static void
test_malformed_refused(void **state)
{
    (void)state;
    expect_malformed((const uint8_t *)"\x12", 1, "a length past the end at byte 1");
    expect_malformed((const uint8_t *)"\x12\x05"
                                      "abc",
                     5, "a length past the end at byte 1");
    expect_malformed((const uint8_t *)"\x00\x01", 2, "a bad field key at byte 0");
    expect_malformed((const uint8_t *)"\x07\x01", 2, "a bad field key at byte 0");
    expect_malformed((const uint8_t *)"\x80", 1, "a bad field key at byte 0");
    expect_malformed((const uint8_t *)"\x80\x80\x80\x80\x80\x01", 6, "a bad field key");
    expect_malformed((const uint8_t *)"\x08\x80\x80", 3, "an unterminated varint at byte 1");
    expect_malformed((const uint8_t *)"\x08\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 12,
                     "an unterminated varint at byte 1");
    expect_malformed((const uint8_t *)"\x09\x01\x02\x03", 4, "a truncated 64-bit value at byte 1");
    expect_malformed((const uint8_t *)"\x0d\x01\x02", 3, "a truncated 32-bit value at byte 1");
    for (unsigned wt = 3; wt <= 7; wt++) {
        if (wt == 5)
            continue;
        uint8_t b[3] = {(uint8_t)(0x08 | wt), 0, 0};
        expect_malformed(b, sizeof(b), "an unsupported wire type at byte 0");
    }
    /* A length over 5 bytes, or over INT_MAX (protobuf-c's own bounds). */
    expect_malformed((const uint8_t *)"\x12\x81\x80\x80\x80\x80\x00", 7, "a length past the end");
    expect_malformed((const uint8_t *)"\x12\xff\xff\xff\xff\x0f", 6, "a length past the end");
    expect_malformed((const uint8_t *)"\x12\x80\x80\x80\x80\x08", 6, "a length past the end");

    /* Field numbers protobuf does not have: refused here, though protobuf-c
     * keeps them as unknown fields (and could not pack a 0 again). */
    static const struct {
        const char *bytes;
        size_t n;
    } bad_numbers[] = {
        {"\x80\x00\x01", 3},              /* 0 in two bytes, a varint */
        {"\x12\x01x\x82\x80\x00\x00", 7}, /* 0 in three bytes, a string, after code */
        {"\x80\x80\x80\x80\x10\x01", 6},  /* 2^29 */
        {"\xfa\xff\xff\xff\x1f\x00", 6},  /* 2^32 - 1, length-delimited */
    };
    for (size_t i = 0; i < sizeof(bad_numbers) / sizeof(bad_numbers[0]); i++) {
        se_err err;
        const uint8_t *b = (const uint8_t *)bad_numbers[i].bytes;
        int rc = check(EVAL, b, bad_numbers[i].n, &err);
        if (rc != -SE_INVALID || !strstr(err.msg, "a bad field number at byte"))
            fail_msg("case %zu: rc %d msg '%s'", i, rc, err.msg);
        assert_true(unpacks(EVAL, b, bad_numbers[i].n));
    }
    /* A File with such a field, as a fuzzer found it: the daemon would pass
     * it on to the agent, whose unpack refuses the repacked 0. */
    wire nf = {.n = 0};
    W_STR(&nf, 1, "a");
    w_raw(&nf, "\x80\x80\x00\x01", 4);
    wire wf = {.n = 0};
    w_msg(&wf, 7, &nf);
    se_err nerr;
    assert_int_equal(check(EVAL, wf.b, wf.n, &nerr), -SE_INVALID);
    assert_string_equal(
        nerr.msg,
        "not a valid safeeval.v1.EvalRequest: a bad field number at byte 5 (in files[0])");

    /* Inside a nested message: the offset counts from the request's first
     * byte, and the enclosing field is named. */
    wire w = {.n = 0};
    W_STR(&w, 2, "print(1)");
    wire f = {.n = 0};
    W_STR(&f, 1, "a");
    w_byte(&f, 0x12);
    w_byte(&f, 0x09); /* content: 9 bytes that are not there */
    w_msg(&w, 7, &f);
    expect_malformed(w.b, w.n, "a length past the end at byte 16 (in files[0])");
}

/* Every prefix of a valid request, and pseudo-random bytes: never a read
 * past the end (ASan), and never "not valid" for bytes protobuf-c unpacks. */
static void
test_truncated_and_garbage(void **state)
{
    (void)state;
    wire w = {.n = 0};
    W_STR(&w, 1, "abc123");
    W_STR(&w, 2, "print(1)");
    W_STR(&w, 4, "arg");
    wire e = ENTRY("HOME", "/tmp");
    w_msg(&w, 5, &e);
    wire lim = {.n = 0};
    w_uint(&lim, 1, 1000);
    w_uint(&lim, 3, 1ull << 30);
    w_msg(&w, 6, &lim);
    wire f = FILE_MSG("d/in.csv", "1,2");
    w_msg(&w, 7, &f);
    for (size_t n = 0; n <= w.n; n++) {
        se_err err;
        int rc = check(EVAL, w.b, n, &err);
        bool ok = unpacks(EVAL, w.b, n);
        if (ok && rc != 0)
            fail_msg("prefix %zu: protobuf-c unpacks it, the walk says %s", n, err.msg);
        if (rc == 0 && !ok)
            fail_msg("prefix %zu: walk accepts what protobuf-c refuses", n);
    }

    uint32_t x = 12345;
    uint8_t buf[64];
    const ProtobufCMessageDescriptor *ds[] = {EVAL, EXEC, CREATE, GET};
    for (int i = 0; i < 20000; i++) {
        size_t n = 0;
        x = x * 1103515245u + 12345u;
        size_t len = (x >> 16) % sizeof(buf);
        for (; n < len; n++) {
            x = x * 1103515245u + 12345u;
            /* Mostly small keys and lengths, so that some of it parses. */
            uint8_t b = (uint8_t)(x >> 16);
            buf[n] = (x >> 28) & 1 ? (uint8_t)(b & 0x3f) : b;
        }
        const ProtobufCMessageDescriptor *d = ds[i % 4];
        se_err err;
        int rc = check(d, buf, len, &err);
        assert_true(rc == 0 || rc == -SE_INVALID);
        if (rc < 0 && strstr(err.msg, "not a valid") && !strstr(err.msg, "a bad field number") &&
            unpacks(d, buf, len))
            fail_msg("protobuf-c unpacks what the walk calls %s", err.msg);
    }
}

/* A recursive message, by hand: Node { Node child = 1; string name = 2; }. */
static const ProtobufCMessageDescriptor node_descriptor;
static const ProtobufCFieldDescriptor node_fields[] = {
    {.name = "child",
     .id = 1,
     .label = PROTOBUF_C_LABEL_NONE,
     .type = PROTOBUF_C_TYPE_MESSAGE,
     .descriptor = &node_descriptor},
    {.name = "name", .id = 2, .label = PROTOBUF_C_LABEL_NONE, .type = PROTOBUF_C_TYPE_STRING},
};
static const ProtobufCIntRange node_ranges[] = {{1, 0}, {0, 2}};
static const ProtobufCMessageDescriptor node_descriptor = {
    .magic = PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
    .name = "test.Node",
    .short_name = "Node",
    .n_fields = 2,
    .fields = node_fields,
    .n_field_ranges = 1,
    .field_ranges = node_ranges,
};

/* depth Nodes nested in each other, the innermost with name. */
static void
nest(wire *out, unsigned depth, const void *name, size_t name_len)
{
    wire cur = {.n = 0}, next;
    w_bytes(&cur, 2, name, name_len);
    for (unsigned i = 0; i < depth; i++) {
        next.n = 0;
        w_msg(&next, 1, &cur);
        cur = next;
    }
    *out = cur;
}

static void
test_depth_bounded(void **state)
{
    (void)state;
    wire w;
    nest(&w, 3, "a\0", 2);
    expect_msg(&node_descriptor, &w, "child.child.child.name: contains a NUL byte");
    nest(&w, PBCHECK_MAX_DEPTH, "ok", 2);
    expect_ok(&node_descriptor, &w);
    nest(&w, PBCHECK_MAX_DEPTH + 1, "ok", 2);
    se_err err;
    assert_int_equal(check(&node_descriptor, w.b, w.n, &err), -SE_INVALID);
    assert_non_null(strstr(err.msg, "not a valid test.Node: messages nested deeper than 32"));
    assert_non_null(strstr(err.msg, "(in child.child."));
    /* Far deeper than that (100000 levels, the lengths right): refused the
     * same way, with the stack bounded. */
    size_t cap = 8u << 20, start = cap;
    uint8_t *deep = malloc(cap);
    assert_non_null(deep);
    deep[--start] = 'x';
    deep[--start] = 1;
    deep[--start] = 0x12; /* name = "x" */
    for (int i = 0; i < 100000; i++) {
        size_t len = cap - start;
        uint8_t v[10];
        size_t vn = 0;
        do {
            v[vn] = len & 0x7f;
            len >>= 7;
            if (len)
                v[vn] |= 0x80;
            vn++;
        } while (len);
        start -= vn;
        memcpy(deep + start, v, vn);
        deep[--start] = 0x0a; /* child */
    }
    assert_int_equal(check(&node_descriptor, deep + start, cap - start, &err), -SE_INVALID);
    assert_non_null(strstr(err.msg, "nested deeper than 32"));
    free(deep);
}

/* The same shape with a 100-byte field name: a path of 33 of them is cut to
 * fit the message, never written past it. */
#define LONG_NAME                                                                                  \
    "cccccccccccccccccccccccccccccccccccccccccccccccccc"                                           \
    "cccccccccccccccccccccccccccccccccccccccccccccccccc"
static const ProtobufCMessageDescriptor long_descriptor;
static const ProtobufCFieldDescriptor long_fields[] = {
    {.name = LONG_NAME,
     .id = 1,
     .label = PROTOBUF_C_LABEL_REPEATED,
     .type = PROTOBUF_C_TYPE_MESSAGE,
     .descriptor = &long_descriptor},
    {.name = "name", .id = 2, .label = PROTOBUF_C_LABEL_NONE, .type = PROTOBUF_C_TYPE_STRING},
};
static const ProtobufCMessageDescriptor long_descriptor = {
    .magic = PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
    .name = "test.Long",
    .short_name = "Long",
    .n_fields = 2,
    .fields = long_fields,
    .n_field_ranges = 1,
    .field_ranges = node_ranges,
};

static void
test_path_cut(void **state)
{
    (void)state;
    wire w;
    nest(&w, PBCHECK_MAX_DEPTH, "\0", 1);
    se_err err;
    assert_int_equal(check(&long_descriptor, w.b, w.n, &err), -SE_INVALID);
    assert_non_null(strstr(err.msg, LONG_NAME "[0]." LONG_NAME "[0]."));
    assert_non_null(strstr(err.msg, ": contains a NUL byte"));
    assert_true(strlen(err.msg) < 600);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_request_passes),
        cmocka_unit_test(test_nul_top_level),
        cmocka_unit_test(test_nul_repeated_string),
        cmocka_unit_test(test_nul_map),
        cmocka_unit_test(test_nul_nested_message),
        cmocka_unit_test(test_nested_without_strings),
        cmocka_unit_test(test_unknown_fields_skipped),
        cmocka_unit_test(test_malformed_refused),
        cmocka_unit_test(test_truncated_and_garbage),
        cmocka_unit_test(test_depth_bounded),
        cmocka_unit_test(test_path_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
