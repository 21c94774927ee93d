/* The pure parsers of engine answers (docker/parse.h) against hostile input:
 * version negotiation, error bodies, exec inspect, create ids, the build
 * progress stream, the archive-file extractor, label filters, the head of a
 * hijacked answer, the update refusal and the running state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <archive.h>
#include <archive_entry.h>
#include <cmocka.h>
#include <curl/curl.h>

#include "docker/internal.h"
#include "docker/parse.h"

static int
negotiate(const char *body, char *out, se_err *err)
{
    return docker_api_negotiate(body, body ? strlen(body) : 0, out, 16, err);
}

static void
test_version_parse(void **state)
{
    (void)state;
    int a, b;
    assert_int_equal(docker_api_version_parse("1.41", &a, &b), 0);
    assert_int_equal(a, 1);
    assert_int_equal(b, 41);
    assert_int_equal(docker_api_version_parse("10.0", &a, &b), 0);
    const char *bad[] = {"",      "1",    "1.",    ".1",    "1.41.2",  "a.b",
                         "1.41x", "-1.2", " 1.41", "1..2",  "99999.1", "1.99999",
                         "1.4 ",  "1,41", "0x1.2", "+1.41", "1.-4"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(docker_api_version_parse(bad[i], &a, &b), -1);
    assert_int_equal(docker_api_version_parse(NULL, &a, &b), -1);
}

static void
test_negotiate(void **state)
{
    (void)state;
    char v[16];
    se_err err = {0};
    assert_int_equal(negotiate("{\"ApiVersion\":\"1.41\",\"MinAPIVersion\":\"1.12\"}", v, &err), 0);
    assert_string_equal(v, "1.41");
    assert_int_equal(negotiate("{\"ApiVersion\":\"1.40\"}", v, &err), 0);
    assert_string_equal(v, "1.40");
    /* Newer engines are capped at what we speak. */
    assert_int_equal(negotiate("{\"ApiVersion\":\"1.47\"}", v, &err), 0);
    assert_string_equal(v, "1.43");
    assert_int_equal(negotiate("{\"ApiVersion\":\"2.1\"}", v, &err), 0);
    assert_string_equal(v, "1.43");
    /* Too old. */
    assert_int_equal(negotiate("{\"ApiVersion\":\"1.39\"}", v, &err), -SE_PRECONDITION);
    assert_int_equal(negotiate("{\"ApiVersion\":\"0.99\"}", v, &err), -SE_PRECONDITION);
    /* Broken answers. */
    const char *bad[] = {"",
                         "null",
                         "[]",
                         "\"1.41\"",
                         "{}",
                         "{\"ApiVersion\":1.41}",
                         "{\"ApiVersion\":null}",
                         "{\"ApiVersion\":[\"1.41\"]}",
                         "{\"ApiVersion\":\"1.41",
                         "{\"apiversion\":\"1.41\"}",
                         "{\"ApiVersion\":\"1.41; rm -rf\"}",
                         "{\"ApiVersion\":\"../1.41\"}",
                         "not json at all"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        se_err e = {0};
        assert_int_equal(negotiate(bad[i], v, &e), -SE_PROTOCOL);
        assert_int_equal(e.code, SE_PROTOCOL);
    }
    assert_int_equal(docker_api_negotiate(NULL, 0, v, sizeof(v), &err), -SE_PROTOCOL);
    /* A NUL inside the body: only len bytes count, and they are not valid. */
    assert_int_equal(docker_api_negotiate("{\"ApiVersion\":\"1.41\"}", 8, v, sizeof(v), &err),
                     -SE_PROTOCOL);
}

static char *
repeat(const char *prefix, char ch, size_t n, const char *suffix)
{
    size_t p = strlen(prefix), s = strlen(suffix);
    char *b = malloc(p + n + s + 1);
    memcpy(b, prefix, p);
    memset(b + p, ch, n);
    memcpy(b + p + n, suffix, s + 1);
    return b;
}

static void
test_negotiate_huge_and_deep(void **state)
{
    (void)state;
    char v[16];
    se_err err = {0};
    char *huge = repeat("{\"ApiVersion\":\"1.", '4', 4u << 20, "\"}");
    assert_int_equal(negotiate(huge, v, &err), -SE_PROTOCOL);
    free(huge);
    char *deep = repeat("", '[', 200000, "");
    assert_int_equal(negotiate(deep, v, &err), -SE_PROTOCOL);
    free(deep);
    char *deepobj = repeat("{\"ApiVersion\":\"1.41\",\"x\":", '[', 100000, "}");
    assert_int_equal(negotiate(deepobj, v, &err), -SE_PROTOCOL);
    free(deepobj);
}

static void
test_engine_message(void **state)
{
    (void)state;
    char m[64];
    const char *b = "{\"message\":\"No such container: abc\"}";
    docker_engine_message(b, strlen(b), m, sizeof(m));
    assert_string_equal(m, "No such container: abc");
    b = "{\"message\":\"evil\\u001b[31m\\nline\\u0000x\"}";
    docker_engine_message(b, strlen(b), m, sizeof(m));
    assert_string_equal(m, "evil line"); /* colours dropped, newline flattened, NUL ends */
    b = "plain\x01text\n";
    docker_engine_message(b, strlen(b), m, sizeof(m));
    assert_string_equal(m, "plain?text");
    /* A refused attach answers in plain text ending in CRLF. */
    b = "No such container: abc\r\n";
    docker_engine_message(b, strlen(b), m, sizeof(m));
    assert_string_equal(m, "No such container: abc");
    b = "{\"message\":42}";
    docker_engine_message(b, strlen(b), m, sizeof(m));
    assert_string_equal(m, "{\"message\":42}");
    docker_engine_message(NULL, 0, m, sizeof(m));
    assert_string_equal(m, "(no message)");
    char *huge = repeat("{\"message\":\"", 'x', 1 << 20, "\"}");
    docker_engine_message(huge, strlen(huge), m, sizeof(m));
    assert_int_equal(strlen(m), sizeof(m) - 1);
    free(huge);
}

static void
test_exec_inspect(void **state)
{
    (void)state;
    bool running;
    int code;
    se_err err = {0};
    const char *b = "{\"Running\":true,\"ExitCode\":null}";
    assert_int_equal(docker_exec_inspect_parse(b, strlen(b), &running, &code, &err), 0);
    assert_true(running);
    assert_int_equal(code, -1);
    b = "{\"Running\":false,\"ExitCode\":3}";
    assert_int_equal(docker_exec_inspect_parse(b, strlen(b), &running, &code, &err), 0);
    assert_false(running);
    assert_int_equal(code, 3);
    const char *odd[] = {"{\"Running\":\"false\",\"ExitCode\":\"3\"}", "{\"ExitCode\":1e300}",
                         "{\"ExitCode\":-5}", "{\"ExitCode\":2.5}", "{\"ExitCode\":256}"};
    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
        assert_int_equal(docker_exec_inspect_parse(odd[i], strlen(odd[i]), &running, &code, &err),
                         0);
        assert_false(running);
        assert_int_equal(code, -1);
    }
    const char *bad[] = {"", "[]", "3", "{", "null"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(docker_exec_inspect_parse(bad[i], strlen(bad[i]), &running, &code, &err),
                         -SE_PROTOCOL);
}

static void
test_create_id(void **state)
{
    (void)state;
    char *id = NULL;
    se_err err = {0};
    const char *b = "{\"Id\":\"91ec7f3a112aca970375ae708f198347d752e35d5c79aa66ba1d99334c8c4ebe\","
                    "\"Warnings\":[]}";
    assert_int_equal(docker_create_id_parse(b, strlen(b), &id, &err), 0);
    assert_string_equal(id, "91ec7f3a112aca970375ae708f198347d752e35d5c79aa66ba1d99334c8c4ebe");
    free(id);
    const char *bad[] = {"{}",
                         "{\"Id\":42}",
                         "{\"Id\":\"\"}",
                         "{\"Id\":\"abc\"}",
                         "{\"Id\":\"../../../../etc/passwd\"}",
                         "{\"Id\":\"91EC7F3A112ACA970375\"}",
                         "{\"Id\":\"91ec7f3a112a/start\"}",
                         "[\"91ec7f3a112aca97\"]",
                         "garbage"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        id = NULL;
        assert_int_equal(docker_create_id_parse(bad[i], strlen(bad[i]), &id, &err), -SE_PROTOCOL);
        assert_null(id);
    }
    char *huge = repeat("{\"Id\":\"", 'a', 129, "\"}");
    assert_int_equal(docker_create_id_parse(huge, strlen(huge), &id, &err), -SE_PROTOCOL);
    free(huge);
}

/* --- build progress --- */

typedef struct lines {
    int n;
    char last[256];
} lines;

static void
on_line(const char *line, void *ud)
{
    lines *l = ud;
    l->n++;
    snprintf(l->last, sizeof(l->last), "%s", line);
}

static const char build_ok[] = "{\"stream\":\"Step 1/2 : FROM x\\n\"}\r\n"
                               "{\"stream\":\" ---\\u003e c4c001ed2203\\n\"}\n"
                               "{\"stream\":\"partial \"}\n{\"stream\":\"line\\n\"}\n"
                               "{\"aux\":{\"ID\":\"sha256:c89b764ef92a\"}}\n"
                               "{\"stream\":\"Successfully built c89b764ef92a\\n\"}\n";

static void
test_build_ok_every_split(void **state)
{
    (void)state;
    size_t n = strlen(build_ok);
    for (size_t i = 0; i <= n; i++) {
        docker_build_log log;
        lines l = {0};
        se_err err = {0};
        docker_build_log_init(&log, on_line, &l);
        docker_build_log_feed(&log, build_ok, i);
        docker_build_log_feed(&log, build_ok + i, n - i);
        assert_int_equal(docker_build_log_finish(&log, &err), 0);
        assert_int_equal(l.n, 4);
        assert_string_equal(l.last, "Successfully built c89b764ef92a");
        assert_string_equal(log.image_id, "sha256:c89b764ef92a");
        docker_build_log_free(&log);
    }
}

static void
test_build_error_keeps_last_lines(void **state)
{
    (void)state;
    docker_build_log log;
    lines l = {0};
    se_err err = {0};
    docker_build_log_init(&log, on_line, &l);
    for (int i = 0; i < 100; i++) {
        char b[64];
        int k = snprintf(b, sizeof(b), "{\"stream\":\"output %d\\n\"}\n", i);
        docker_build_log_feed(&log, b, (size_t)k);
    }
    const char *e = "{\"errorDetail\":{\"code\":7,\"message\":\"boom\"},\"error\":\"The command "
                    "returned a non-zero code: 7\"}\n";
    docker_build_log_feed(&log, e, strlen(e));
    assert_int_equal(docker_build_log_finish(&log, &err), -SE_PRECONDITION);
    assert_int_equal(err.code, SE_PRECONDITION);
    assert_non_null(strstr(err.msg, "non-zero code: 7"));
    assert_non_null(strstr(err.msg, "output 99"));
    assert_null(strstr(err.msg, "output 5 ")); /* older than the ring */
    assert_true(strlen(err.msg) < SE_ERR_MSG_MAX);
    assert_int_equal(l.n, 100);
    docker_build_log_free(&log);
}

/* pip's deciding line comes first in the message, ahead of the engine's
 * error and the noise after it, so that a client keeping only the head of
 * the message (the C library keeps SAFEEVAL_ERROR_MESSAGE_MAX = 512 bytes,
 * after "create sandbox: build image for python 3.11: ") still has it. */
static void
test_build_error_pip_cause_first(void **state)
{
    (void)state;
    docker_build_log log;
    se_err err = {0};
    docker_build_log_init(&log, NULL, NULL);
    char b[400];
    for (int i = 0; i < 40; i++) {
        int k = snprintf(b, sizeof(b), "{\"stream\":\"Collecting something-long-%d %0200d\\n\"}\n",
                         i, 0);
        docker_build_log_feed(&log, b, (size_t)k);
    }
    const char *pip =
        "{\"stream\":\"ERROR: Could not find a version that satisfies the "
        "requirement nosuch==1.0 (from versions: none)\\n\"}\n"
        "{\"stream\":\"  ERROR: No matching distribution found for nosuch==1.0\\n\"}\n"
        "{\"stream\":\"[notice] A new release of pip is available\\n\"}\n"
        "{\"stream\":\"Removing intermediate container 0123456789ab\\n\"}\n"
        "{\"error\":\"The command '/bin/sh -c sh /opt/safeeval/lib/pip-install.sh' "
        "returned a non-zero code: 1\"}\n";
    docker_build_log_feed(&log, pip, strlen(pip));
    assert_int_equal(docker_build_log_finish(&log, &err), -SE_PRECONDITION);
    const char *want =
        "image build failed: ERROR: No matching distribution found for nosuch==1.0 | "
        "The command '/bin/sh -c sh /opt/safeeval/lib/pip-install.sh' returned a "
        "non-zero code: 1";
    assert_memory_equal(err.msg, want, strlen(want));
    assert_true(strlen("create sandbox: build image for python 3.11: ") + strlen(want) < 512);
    docker_build_log_free(&log);

    /* Without an ERROR: line, the engine's error leads as before. */
    docker_build_log_init(&log, NULL, NULL);
    const char *plain = "{\"stream\":\"ERRORS: not pip's\\n\"}\n{\"error\":\"boom\"}\n";
    docker_build_log_feed(&log, plain, strlen(plain));
    assert_int_equal(docker_build_log_finish(&log, &err), -SE_PRECONDITION);
    assert_memory_equal(err.msg, "image build failed: boom |", 26);
    docker_build_log_free(&log);
}

static void
test_build_hostile_lines(void **state)
{
    (void)state;
    docker_build_log log;
    lines l = {0};
    se_err err = {0};
    docker_build_log_init(&log, on_line, &l);
    /* An overlong line (no newline for 3 MiB) is skipped, then all goes on. */
    char *big = repeat("{\"stream\":\"", 'x', 3u << 20, "\"}\n");
    docker_build_log_feed(&log, big, strlen(big));
    free(big);
    assert_int_equal(l.n, 0);
    assert_int_equal(log.lines_skipped, 1);
    const char *junk = "garbage\n[1,2]\n{\"stream\":17}\n\n   \n{\"stream\":\"after\\n\"}\n";
    docker_build_log_feed(&log, junk, strlen(junk));
    assert_int_equal(l.n, 1);
    assert_string_equal(l.last, "after");
    /* Colour sequences and control bytes from the build's container never
     * reach a progress line (pip colours its errors). */
    const char *ansi = "{\"stream\":\"\\u001b[91mERROR: no\\u001b[0m\\u0007 bell\\r\\n\"}\n";
    docker_build_log_feed(&log, ansi, strlen(ansi));
    assert_int_equal(l.n, 2);
    assert_string_equal(l.last, "ERROR: no? bell");
    /* A huge "stream" text without newlines is cut into bounded lines. */
    char *wide = repeat("{\"stream\":\"", 'y', 100000, "\"}\n");
    docker_build_log_feed(&log, wide, strlen(wide));
    free(wide);
    assert_true(l.n > 1 + 20);
    /* error that is not a string still fails the build. */
    const char *e = "{\"error\":{\"x\":1}}";
    docker_build_log_feed(&log, e, strlen(e)); /* no trailing newline: finish handles it */
    assert_int_equal(docker_build_log_finish(&log, &err), -SE_PRECONDITION);
    assert_non_null(strstr(err.msg, "error without text"));
    docker_build_log_free(&log);

    /* A giant error text is truncated into err, not overflowing it. */
    docker_build_log_init(&log, NULL, NULL);
    char *ge = repeat("{\"error\":\"", 'E', 100000, "\"}\n");
    docker_build_log_feed(&log, ge, strlen(ge));
    free(ge);
    assert_int_equal(docker_build_log_finish(&log, &err), -SE_PRECONDITION);
    assert_true(strlen(err.msg) < SE_ERR_MSG_MAX);
    docker_build_log_free(&log);
}

/* --- archive --- */

typedef struct tentry {
    const char *name;
    int type; /* AE_IFREG, AE_IFDIR, AE_IFLNK, or 0 = hardlink */
    const char *data;
    size_t len;
} tentry;

static uint8_t *
mktar(const tentry *e, size_t n, size_t *len)
{
    size_t cap = 1 << 20;
    uint8_t *buf = malloc(cap);
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    assert_int_equal(archive_write_open_memory(a, buf, cap, len), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *ae = archive_entry_new();
        archive_entry_set_pathname(ae, e[i].name);
        if (e[i].type == 0) {
            archive_entry_set_filetype(ae, AE_IFREG);
            archive_entry_set_hardlink(ae, "other");
        } else {
            archive_entry_set_filetype(ae, (unsigned)e[i].type);
        }
        archive_entry_set_perm(ae, 0644);
        if (e[i].type == AE_IFLNK)
            archive_entry_set_symlink(ae, "/etc/shadow");
        if (e[i].type == AE_IFREG)
            archive_entry_set_size(ae, (la_int64_t)e[i].len);
        assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
        if (e[i].type == AE_IFREG && e[i].len)
            assert_int_equal(archive_write_data(a, e[i].data, e[i].len), (la_ssize_t)e[i].len);
        archive_entry_free(ae);
    }
    archive_write_close(a);
    archive_write_free(a);
    return buf;
}

static void
test_tar_one_file(void **state)
{
    (void)state;
    size_t len, out_len;
    uint8_t *out = NULL;
    se_err err = {0};
    tentry e[] = {{"result.json", AE_IFREG, "{\"ok\":true}", 11}};
    uint8_t *t = mktar(e, 1, &len);
    assert_int_equal(docker_tar_extract_file(t, len, 1024, &out, &out_len, &err), 0);
    assert_int_equal(out_len, 11);
    assert_string_equal((char *)out, "{\"ok\":true}");
    free(out);
    /* Exactly at the cap is fine, one byte under is not. */
    assert_int_equal(docker_tar_extract_file(t, len, 11, &out, &out_len, &err), 0);
    free(out);
    out = NULL;
    assert_int_equal(docker_tar_extract_file(t, len, 10, &out, &out_len, &err), -SE_EXHAUSTED);
    assert_null(out);
    /* Truncated in the middle of the data, or of the header. */
    assert_int_equal(docker_tar_extract_file(t, 512 + 5, 1024, &out, &out_len, &err), -SE_PROTOCOL);
    assert_true(docker_tar_extract_file(t, 100, 1024, &out, &out_len, &err) < 0);
    assert_null(out);
    free(t);

    tentry empty[] = {{"empty", AE_IFREG, "", 0}};
    t = mktar(empty, 1, &len);
    assert_int_equal(docker_tar_extract_file(t, len, 1024, &out, &out_len, &err), 0);
    assert_int_equal(out_len, 0);
    assert_int_equal(out[0], 0);
    free(out);
    free(t);
}

static void
test_tar_hostile(void **state)
{
    (void)state;
    size_t len, out_len;
    uint8_t *out = NULL;
    se_err err = {0};
    tentry dir[] = {{"etc/", AE_IFDIR, NULL, 0}, {"etc/passwd", AE_IFREG, "root", 4}};
    uint8_t *t = mktar(dir, 2, &len);
    assert_int_equal(docker_tar_extract_file(t, len, 1024, &out, &out_len, &err), -SE_INVALID);
    free(t);
    tentry link[] = {{"out.txt", AE_IFLNK, NULL, 0}};
    t = mktar(link, 1, &len);
    assert_int_equal(docker_tar_extract_file(t, len, 1024, &out, &out_len, &err), -SE_INVALID);
    free(t);
    tentry hard[] = {{"out.txt", 0, NULL, 0}};
    t = mktar(hard, 1, &len);
    assert_int_equal(docker_tar_extract_file(t, len, 1024, &out, &out_len, &err), -SE_INVALID);
    free(t);
    tentry two[] = {{"a", AE_IFREG, "aaa", 3}, {"b", AE_IFREG, "bbb", 3}};
    t = mktar(two, 2, &len);
    assert_int_equal(docker_tar_extract_file(t, len, 1024, &out, &out_len, &err), -SE_INVALID);
    free(t);
    static char bigdata[200000];
    memset(bigdata, 'z', sizeof(bigdata));
    tentry big[] = {{"big", AE_IFREG, bigdata, sizeof(bigdata)}};
    t = mktar(big, 1, &len);
    assert_int_equal(docker_tar_extract_file(t, len, 65536, &out, &out_len, &err), -SE_EXHAUSTED);
    assert_int_equal(docker_tar_extract_file(t, len, sizeof(bigdata), &out, &out_len, &err), 0);
    assert_int_equal(out_len, sizeof(bigdata));
    free(out);
    out = NULL;
    free(t);
    /* Not a tar at all / nothing. */
    uint8_t junk[2048];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(i * 31 + 7);
    assert_true(docker_tar_extract_file(junk, sizeof(junk), 1024, &out, &out_len, &err) < 0);
    assert_true(docker_tar_extract_file(junk, 0, 1024, &out, &out_len, &err) < 0);
    memset(junk, 0, sizeof(junk)); /* an empty tar: two zero blocks */
    assert_int_equal(docker_tar_extract_file(junk, 1024, 1024, &out, &out_len, &err),
                     -SE_NOT_FOUND);
    assert_null(out);
}

/* --- label filters --- */

static void
test_filters(void **state)
{
    (void)state;
    char *q = NULL;
    se_err err = {0};
    assert_int_equal(docker_filters_query(NULL, false, &q, &err), 0);
    assert_string_equal(q, "");
    free(q);
    const char *labels[] = {"safeeval.sandbox=a\"b&c=d", "k=v", NULL};
    assert_int_equal(docker_filters_query(labels, true, &q, &err), 0);
    assert_true(strncmp(q, "filters=", 8) == 0);
    assert_null(strchr(q + 8, '&')); /* fully escaped */
    assert_null(strchr(q + 8, '"'));
    int n = 0;
    char *raw = curl_easy_unescape(NULL, q + 8, 0, &n);
    cJSON *j = cJSON_Parse(raw);
    assert_non_null(j);
    cJSON *l = cJSON_GetObjectItemCaseSensitive(j, "label");
    assert_int_equal(cJSON_GetArraySize(l), 2);
    assert_string_equal(cJSON_GetArrayItem(l, 0)->valuestring, "safeeval.sandbox=a\"b&c=d");
    cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "dangling");
    assert_string_equal(cJSON_GetArrayItem(d, 0)->valuestring, "true");
    cJSON_Delete(j);
    curl_free(raw);
    free(q);
}

static void
test_paths(void **state)
{
    (void)state;
    char *p = NULL;
    se_err err = {0};
    assert_int_equal(docker_path(&p, "/containers/", "abc_1.x-y", "/json", &err), 0);
    assert_string_equal(p, "/containers/abc_1.x-y/json");
    free(p);
    const char *bad[] = {"", "../x", "a/b", ".", "..", "-x", "a b", "a?b", "a%2Fb", "a#b", "\\x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(docker_path(&p, "/containers/", bad[i], "/json", &err), -SE_INVALID);
        assert_null(p);
    }
    char *longid = repeat("", 'a', 513, "");
    assert_int_equal(docker_path(&p, "/exec/", longid, "/json", &err), -SE_INVALID);
    free(longid);
    /* Image references keep their syntax, escaped. */
    assert_int_equal(docker_path(&p, "/images/", "safeeval/python:3.11", "/json", &err), 0);
    assert_string_equal(p, "/images/safeeval%2Fpython%3A3.11/json");
    free(p);
}

static int
head_parse(const char *s, size_t len, long *status, size_t *head_len)
{
    se_err err = {0};
    /* An exact-size copy: the parser must not read past len. */
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, s, len);
    int rc = docker_hijack_head_parse(copy, len, status, head_len, &err);
    free(copy);
    if (rc < 0)
        assert_int_equal(err.code, SE_PROTOCOL);
    return rc;
}

static void
test_hijack_head(void **state)
{
    (void)state;
    long st = 0;
    size_t hl = 0;
    const char up[] = "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream"
                      "\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
                      "\x01\0\0\0\0\0\0\x02hi";
    size_t uplen = sizeof(up) - 1;
    size_t head = strstr(up, "\r\n\r\n") - up + 4;
    /* Incomplete at every prefix before the blank line, complete after. */
    for (size_t i = 0; i <= uplen; i++) {
        int rc = head_parse(up, i, &st, &hl);
        if (i < head) {
            assert_int_equal(rc, 1);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(st, 101);
            assert_int_equal(hl, head);
        }
    }
    assert_int_equal(head_parse("HTTP/1.0 200 OK\r\n\r\n", 19, &st, &hl), 0);
    assert_int_equal(st, 200);
    assert_int_equal(hl, 19);
    /* No reason phrase. */
    assert_int_equal(head_parse("HTTP/1.1 404\r\n\r\nNo such container", 33, &st, &hl), 0);
    assert_int_equal(st, 404);
    assert_int_equal(hl, 16);
    /* Not HTTP/1.x: refused as soon as a byte shows it. */
    const char *bad[] = {"H",
                         "http/1.1 101 x\r\n\r\n",
                         "HTTP/2 101 x\r\n\r\n",
                         "HTTP/1.2 101 x\r\n\r\n",
                         "HTTP/1.1  101 x\r\n\r\n",
                         "HTTP/1.1 099 x\r\n\r\n",
                         "HTTP/1.1 601 x\r\n\r\n",
                         "HTTP/1.1 1x1 x\r\n\r\n",
                         "HTTP/1.1 1011 x\r\n\r\n",
                         "HTTP/1.1 101\n\r\n",
                         "\r\n\r\n",
                         "SSH-2.0-OpenSSH\r\n\r\n",
                         "\x01\0\0\0\0\0\0\x02hi"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t len = i == sizeof(bad) / sizeof(bad[0]) - 1 ? 10 : strlen(bad[i]);
        if (i == 0) {
            assert_int_equal(head_parse(bad[i], len, &st, &hl), 1); /* "H" may still be */
            assert_int_equal(head_parse("X", 1, &st, &hl), -SE_PROTOCOL);
            continue;
        }
        assert_int_equal(head_parse(bad[i], len, &st, &hl), -SE_PROTOCOL);
    }
    assert_int_equal(head_parse("", 0, &st, &hl), 1);
}

static void
test_update_fail_code(void **state)
{
    (void)state;
    /* What engine 20.10 with runc on cgroup v1 answers below usage. */
    assert_int_equal(
        docker_update_fail_code(500, "Cannot update container 2b51: runc did not terminate "
                                     "successfully: exit status 1: unable to set memory limit "
                                     "to 16777216 (current usage: 57040896, peak usage: "
                                     "58228736) : unknown"),
        SE_CONFLICT);
    assert_int_equal(docker_update_fail_code(500, "failed to write \"1048576\" to "
                                                  "\"/sys/fs/cgroup/memory/x/memory.limit_in_"
                                                  "bytes\": device or resource busy"),
                     SE_CONFLICT);
    assert_int_equal(docker_update_fail_code(400, "Minimum memory limit allowed is 6MB"),
                     SE_INVALID);
    assert_int_equal(docker_update_fail_code(404, "No such container: x"), SE_NOT_FOUND);
    assert_int_equal(docker_update_fail_code(500, "cpuset: device or resource busy"), SE_INTERNAL);
    assert_int_equal(docker_update_fail_code(500, NULL), SE_INTERNAL);
    /* A success status is never a refusal's code, whatever the text. */
    assert_int_equal(docker_update_fail_code(200, "memory current usage"), SE_PROTOCOL);
    assert_int_equal(docker_status_code(409), SE_CONFLICT);
    assert_int_equal(docker_status_code(503), SE_INTERNAL);
    assert_int_equal(docker_status_code(418), SE_PROTOCOL);
}

static void
test_inspect_running(void **state)
{
    (void)state;
    const struct {
        const char *json;
        bool running;
    } cases[] = {
        {"{\"State\":{\"Running\":true,\"Paused\":false,\"Restarting\":false}}", true},
        {"{\"State\":{\"Running\":true}}", true},
        {"{\"State\":{\"Running\":false}}", false},
        {"{\"State\":{\"Running\":true,\"Paused\":true}}", false},
        {"{\"State\":{\"Running\":true,\"Restarting\":true}}", false},
        {"{\"State\":{\"Running\":1}}", false},
        {"{\"State\":{\"Running\":\"true\"}}", false},
        {"{\"State\":true}", false},
        {"{\"Running\":true}", false},
        {"[{\"State\":{\"Running\":true}}]", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cJSON *j = cJSON_Parse(cases[i].json);
        assert_non_null(j);
        assert_int_equal(docker_inspect_running(j), cases[i].running);
        cJSON_Delete(j);
    }
    assert_false(docker_inspect_running(NULL));
}

static void
test_inspect_oom_ended(void **state)
{
    (void)state;
    const struct {
        const char *json;
        bool oom_ended;
    } cases[] = {
        {"{\"State\":{\"Running\":false,\"OOMKilled\":true}}", true},
        {"{\"State\":{\"Running\":true,\"OOMKilled\":true}}", false}, /* not ended yet */
        {"{\"State\":{\"Running\":false,\"OOMKilled\":false}}", false},
        {"{\"State\":{\"Running\":false}}", false},
        {"{\"State\":{\"Running\":false,\"OOMKilled\":\"true\"}}", false},
        {"{\"OOMKilled\":true}", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cJSON *j = cJSON_Parse(cases[i].json);
        assert_non_null(j);
        assert_int_equal(docker_inspect_oom_ended(j), cases[i].oom_ended);
        cJSON_Delete(j);
    }
    assert_false(docker_inspect_oom_ended(NULL));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_parse),
        cmocka_unit_test(test_negotiate),
        cmocka_unit_test(test_negotiate_huge_and_deep),
        cmocka_unit_test(test_engine_message),
        cmocka_unit_test(test_exec_inspect),
        cmocka_unit_test(test_create_id),
        cmocka_unit_test(test_build_ok_every_split),
        cmocka_unit_test(test_build_error_keeps_last_lines),
        cmocka_unit_test(test_build_error_pip_cause_first),
        cmocka_unit_test(test_build_hostile_lines),
        cmocka_unit_test(test_tar_one_file),
        cmocka_unit_test(test_tar_hostile),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_hijack_head),
        cmocka_unit_test(test_update_fail_code),
        cmocka_unit_test(test_inspect_running),
        cmocka_unit_test(test_inspect_oom_ended),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
