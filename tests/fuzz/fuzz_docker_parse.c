/* The parsers of Engine API answers (docker/parse.h). The first input byte
 * picks the parser, the rest is the engine's body:
 *   0 GET /version (negotiation)      1 an error body
 *   2 GET /exec/{id}/json             3 POST /containers/create
 *   4 the build progress stream (fed in pieces; 2nd byte sizes them)
 *   5 GET /containers/{id}/archive (the tar; 2nd byte picks the cap)
 *   6 the head of a hijacked answer (exec start, attach), fed whole and
 *     grown a piece at a time as it is read (2nd byte sizes the pieces) */
#include <string.h>

#include "docker/parse.h"
#include "fuzz.h"

enum { P_VERSION, P_MESSAGE, P_INSPECT, P_CREATE, P_BUILD, P_TAR, P_HEAD, P_COUNT };

/* Engine text that reaches a log line or an error: terminated within its
 * buffer, printable ASCII only (no terminal escapes, no control bytes). */
static void
check_printable(const char *s, size_t cap)
{
    FUZZ_CHECK(strnlen(s, cap) < cap);
    for (const char *p = s; *p; p++)
        FUZZ_CHECK((unsigned char)*p >= 0x20 && (unsigned char)*p != 0x7f);
}

static void
on_progress(const char *line, void *ud)
{
    size_t *n = ud;
    FUZZ_CHECK(line != NULL);
    size_t len = strlen(line); /* reads the whole line: ASan checks its end */
    check_printable(line, len + 1);
    (*n) += len + 1;
}

static void
fuzz_build(const uint8_t *data, size_t size)
{
    if (size < 1)
        return;
    size_t piece = 1 + data[0] % 64;
    data++;
    size--;
    size_t progressed = 0;
    docker_build_log l;
    docker_build_log_init(&l, (piece & 1) ? on_progress : NULL, &progressed);
    for (size_t pos = 0; pos < size; pos += piece) {
        size_t n = size - pos < piece ? size - pos : piece;
        /* Each piece in its own allocation: a read past it is caught. */
        uint8_t *chunk = fuzz_dup(data + pos, n);
        if (!chunk)
            abort();
        FUZZ_CHECK(docker_build_log_feed(&l, (const char *)chunk, n) == 0);
        free(chunk);
    }
    se_err err;
    se_err_clear(&err);
    int rc = docker_build_log_finish(&l, &err);
    FUZZ_CHECK(rc == 0 || rc == -SE_PRECONDITION);
    FUZZ_CHECK(rc == 0 || err.code == SE_PRECONDITION);
    FUZZ_CHECK(l.ring_count <= DOCKER_BUILD_RING);
    for (size_t i = 0; i < l.ring_count; i++)
        check_printable(l.ring[i], DOCKER_BUILD_RING_LINE);
    check_printable(l.error, sizeof(l.error));
    check_printable(l.image_id, sizeof(l.image_id));
    check_printable(err.msg, sizeof(err.msg));
    docker_build_log_free(&l);
}

static void
fuzz_tar(const uint8_t *data, size_t size)
{
    if (size < 1)
        return;
    static const size_t caps[] = {0, 1, 16, 512, 4096, 1u << 20};
    size_t cap = caps[data[0] % (sizeof(caps) / sizeof(caps[0]))];
    uint8_t *out = NULL;
    size_t out_len = 0;
    se_err err;
    se_err_clear(&err);
    int rc = docker_tar_extract_file(data + 1, size - 1, cap, &out, &out_len, &err);
    if (rc == 0) {
        FUZZ_CHECK(out != NULL);
        FUZZ_CHECK(out_len <= cap);
        FUZZ_CHECK(out[out_len] == '\0');
        /* Every byte of the file came from the tar. */
        FUZZ_CHECK(out_len <= size - 1);
    } else {
        FUZZ_CHECK(rc < 0 && err.code == -rc);
    }
    free(out);
}

static void
fuzz_head(const uint8_t *data, size_t size)
{
    if (size < 1)
        return;
    size_t piece = 1 + data[0] % 64;
    data++;
    size--;
    long status = 0;
    size_t head_len = 0;
    se_err err;
    se_err_clear(&err);
    int rc = docker_hijack_head_parse(data, size, &status, &head_len, &err);
    FUZZ_CHECK(rc == 0 || rc == 1 || rc == -SE_PROTOCOL);
    if (rc == 0) {
        FUZZ_CHECK(status >= 100 && status <= 599);
        FUZZ_CHECK(head_len >= 16 && head_len <= size);
        FUZZ_CHECK(memcmp(data + head_len - 4, "\r\n\r\n", 4) == 0);
        /* The first blank line: none ends earlier. */
        for (size_t i = 0; i + 4 < head_len; i++)
            FUZZ_CHECK(memcmp(data + i, "\r\n\r\n", 4) != 0);
    } else if (rc < 0) {
        FUZZ_CHECK(err.code == SE_PROTOCOL);
        check_printable(err.msg, sizeof(err.msg));
    }
    /* Read a piece at a time, as the reader does: incomplete until the same
     * verdict, never a different one on the way. */
    for (size_t len = 0;; len += piece) {
        if (len > size)
            len = size;
        uint8_t *copy = fuzz_dup(data, len);
        if (!copy)
            abort();
        long st = 0;
        size_t hl = 0;
        int r = docker_hijack_head_parse(copy, len, &st, &hl, NULL);
        free(copy);
        if (r != 1) {
            FUZZ_CHECK(r == rc);
            if (r == 0)
                FUZZ_CHECK(st == status && hl == head_len);
            break;
        }
        FUZZ_CHECK(len < size || rc == 1);
        if (len == size)
            break;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int which = data[0] % P_COUNT;
    data++;
    size--;
    /* The body in an exact-size allocation, not NUL-terminated: the parsers
     * take lengths and must not read past them. */
    uint8_t *body = fuzz_dup(data, size);
    if (!body)
        abort();
    se_err err;
    se_err_clear(&err);
    switch (which) {
    case P_VERSION: {
        char out[16];
        memset(out, 'x', sizeof(out));
        int rc = docker_api_negotiate((const char *)body, size, out, sizeof(out), &err);
        if (rc == 0) {
            int major, minor;
            FUZZ_CHECK(docker_api_version_parse(out, &major, &minor) == 0);
            FUZZ_CHECK(major == 1 && minor >= 40 && minor <= 43);
        } else {
            FUZZ_CHECK(rc == -SE_PROTOCOL || rc == -SE_PRECONDITION);
        }
        /* The version string parser on the body as a C string. */
        char *s = fuzz_strndup(data, size);
        if (!s)
            abort();
        int major = -1, minor = -1;
        if (docker_api_version_parse(s, &major, &minor) == 0)
            FUZZ_CHECK(major >= 0 && major <= 9999 && minor >= 0 && minor <= 9999);
        free(s);
        break;
    }
    case P_MESSAGE: {
        size_t outlen = 1 + (size ? data[0] % 200 : 0);
        char *out = malloc(outlen);
        if (!out)
            abort();
        docker_engine_message((const char *)body, size, out, outlen);
        check_printable(out, outlen);
        free(out);
        break;
    }
    case P_INSPECT: {
        bool running = true;
        int code = 12345;
        int rc = docker_exec_inspect_parse((const char *)body, size, &running, &code, &err);
        FUZZ_CHECK(rc == 0 || rc == -SE_PROTOCOL);
        if (rc == 0)
            FUZZ_CHECK(code >= -1 && code <= 255);
        break;
    }
    case P_CREATE: {
        char *id = NULL;
        int rc = docker_create_id_parse((const char *)body, size, &id, &err);
        if (rc == 0) {
            FUZZ_CHECK(id && *id);
            for (const char *p = id; *p; p++)
                FUZZ_CHECK((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
                           (*p >= 'A' && *p <= 'F'));
        } else {
            FUZZ_CHECK(id == NULL);
        }
        free(id);
        break;
    }
    case P_BUILD:
        fuzz_build(body, size);
        break;
    case P_TAR:
        fuzz_tar(body, size);
        break;
    case P_HEAD:
        fuzz_head(body, size);
        break;
    }
    free(body);
    return 0;
}
