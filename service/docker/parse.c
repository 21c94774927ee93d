/* Pure parsers of engine answers (see parse.h). Everything here treats its
 * input as hostile: lengths are explicit, JSON is parsed with cJSON's own
 * length-bounded parser, strings are type-checked and size-checked. */
#include "docker/parse.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker/internal.h"

int
docker_api_version_parse(const char *s, int *major, int *minor)
{
    int v[2] = {0, 0};
    int part = 0;
    int digits = 0;
    if (!s)
        return -1;
    for (const char *p = s;; p++) {
        if (*p >= '0' && *p <= '9') {
            if (++digits > 4)
                return -1;
            v[part] = v[part] * 10 + (*p - '0');
        } else if (*p == '.' && part == 0 && digits > 0) {
            part = 1;
            digits = 0;
        } else if (*p == '\0' && part == 1 && digits > 0) {
            break;
        } else {
            return -1;
        }
    }
    *major = v[0];
    *minor = v[1];
    return 0;
}

static cJSON *
parse_json(const char *body, size_t len)
{
    if (!body || len == 0)
        return NULL;
    return cJSON_ParseWithLength(body, len);
}

int
docker_api_negotiate(const char *body, size_t len, char *out, size_t outlen, se_err *err)
{
    cJSON *j = parse_json(body, len);
    int major, minor;
    int rc = 0;
    if (!j || !cJSON_IsObject(j)) {
        rc = se_err_set(err, SE_PROTOCOL, "GET /version: the answer is not a JSON object");
        goto out;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "ApiVersion");
    if (!cJSON_IsString(v) || docker_api_version_parse(v->valuestring, &major, &minor) < 0) {
        rc = se_err_set(err, SE_PROTOCOL, "GET /version: no valid ApiVersion");
        goto out;
    }
    if (major < DOCKER_API_MIN_MAJOR ||
        (major == DOCKER_API_MIN_MAJOR && minor < DOCKER_API_MIN_MINOR)) {
        rc = se_err_set(err, SE_PRECONDITION,
                        "docker engine API %d.%d is older than the oldest supported (%d.%d)", major,
                        minor, DOCKER_API_MIN_MAJOR, DOCKER_API_MIN_MINOR);
        goto out;
    }
    if (major > DOCKER_API_MAX_MAJOR ||
        (major == DOCKER_API_MAX_MAJOR && minor > DOCKER_API_MAX_MINOR)) {
        major = DOCKER_API_MAX_MAJOR;
        minor = DOCKER_API_MAX_MINOR;
    }
    if ((size_t)snprintf(out, outlen, "%d.%d", major, minor) >= outlen)
        rc = se_err_set(err, SE_INTERNAL, "api version buffer too small");
out:
    cJSON_Delete(j);
    return rc;
}

static void
copy_printable(const char *s, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    if (outlen == 0)
        return;
    for (size_t i = 0; i < len && o + 1 < outlen; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == 0x1b && i + 1 < len && s[i + 1] == '[') {
            /* Drop terminal colour sequences (CSI ... final byte). */
            i += 2;
            while (i < len && !((unsigned char)s[i] >= 0x40 && (unsigned char)s[i] <= 0x7e))
                i++;
            continue;
        }
        if (ch >= 0x20 && ch < 0x7f)
            out[o++] = (char)ch;
        else
            out[o++] = (ch == '\n' || ch == '\r' || ch == '\t') ? ' ' : '?';
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
}

void
docker_engine_message(const char *body, size_t len, char *out, size_t outlen)
{
    cJSON *j = parse_json(body, len);
    const cJSON *m = j ? cJSON_GetObjectItemCaseSensitive(j, "message") : NULL;
    if (cJSON_IsString(m))
        copy_printable(m->valuestring, strlen(m->valuestring), out, outlen);
    else if (body && len)
        copy_printable(body, len, out, outlen);
    else
        snprintf(out, outlen, "(no message)");
    cJSON_Delete(j);
}

int
docker_status_code(long status)
{
    switch (status) {
    case 400:
        return SE_INVALID;
    case 404:
        return SE_NOT_FOUND;
    case 409:
        return SE_CONFLICT;
    default:
        return status >= 500 ? SE_INTERNAL : SE_PROTOCOL;
    }
}

int
docker_update_fail_code(long status, const char *msg)
{
    /* The engine passes the runtime's error on as a 500; only its text says
     * that the limit was refused because the memory is in use. */
    if (status >= 400 && msg && strstr(msg, "memory") &&
        (strstr(msg, "current usage") || strstr(msg, "device or resource busy")))
        return SE_CONFLICT;
    return docker_status_code(status);
}

int
docker_hijack_head_parse(const uint8_t *data, size_t len, long *status, size_t *head_len,
                         se_err *err)
{
    /* "HTTP/1.x NNN" then a reason phrase or the line's end. Checked as far
     * as it has arrived. */
    static const char prefix[] = "HTTP/1.";
    size_t n = len < 13 ? len : 13;
    for (size_t i = 0; i < n; i++) {
        uint8_t ch = data[i];
        bool ok;
        if (i < 7)
            ok = ch == (uint8_t)prefix[i];
        else if (i == 7)
            ok = ch == '0' || ch == '1';
        else if (i == 8)
            ok = ch == ' ';
        else if (i == 9)
            ok = ch >= '1' && ch <= '5';
        else if (i < 12)
            ok = ch >= '0' && ch <= '9';
        else
            ok = ch == ' ' || ch == '\r';
        if (!ok)
            return se_err_set(err, SE_PROTOCOL,
                              "the engine's answer is not an HTTP/1.x status line");
    }
    const uint8_t *end = memmem(data, len, "\r\n\r\n", 4);
    if (!end)
        return 1;
    /* The blank line cannot come before byte 12: one of the checks above
     * would have failed on its '\r'. */
    *status = (data[9] - '0') * 100 + (data[10] - '0') * 10 + (data[11] - '0');
    *head_len = (size_t)(end - data) + 4;
    return 0;
}

bool
docker_inspect_running(const cJSON *inspect)
{
    const cJSON *st =
        cJSON_IsObject(inspect) ? cJSON_GetObjectItemCaseSensitive(inspect, "State") : NULL;
    if (!cJSON_IsObject(st))
        return false;
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "Running")) &&
           !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "Paused")) &&
           !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "Restarting"));
}

bool
docker_inspect_oom_ended(const cJSON *inspect)
{
    const cJSON *st =
        cJSON_IsObject(inspect) ? cJSON_GetObjectItemCaseSensitive(inspect, "State") : NULL;
    return cJSON_IsObject(st) && !docker_inspect_running(inspect) &&
           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "OOMKilled"));
}

int
docker_exec_inspect_parse(const char *body, size_t len, bool *running, int *exit_code, se_err *err)
{
    cJSON *j = parse_json(body, len);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return se_err_set(err, SE_PROTOCOL, "exec inspect: the answer is not a JSON object");
    }
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "Running");
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, "ExitCode");
    *running = cJSON_IsTrue(r);
    *exit_code = -1;
    /* ExitCode is null while running; a number that is not a small integer
     * is not an exit code. */
    if (cJSON_IsNumber(x) && x->valuedouble >= -1 && x->valuedouble <= 255 &&
        x->valuedouble == (double)(int)x->valuedouble)
        *exit_code = (int)x->valuedouble;
    cJSON_Delete(j);
    return 0;
}

int
docker_create_id_parse(const char *body, size_t len, char **out_id, se_err *err)
{
    cJSON *j = parse_json(body, len);
    const cJSON *id = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "Id") : NULL;
    if (!cJSON_IsString(id)) {
        cJSON_Delete(j);
        return se_err_set(err, SE_PROTOCOL, "no Id in the answer");
    }
    size_t n = strlen(id->valuestring);
    bool ok = n >= 12 && n <= 128 && strspn(id->valuestring, "0123456789abcdef") == n;
    if (!ok) {
        cJSON_Delete(j);
        return se_err_set(err, SE_PROTOCOL, "malformed Id in the answer");
    }
    *out_id = strdup(id->valuestring);
    cJSON_Delete(j);
    if (!*out_id)
        return se_err_set(err, SE_INTERNAL, "out of memory");
    return 0;
}

/* --- build progress stream --- */

void
docker_build_log_init(docker_build_log *l, docker_progress_fn progress, void *ud)
{
    memset(l, 0, sizeof(*l));
    se_buf_init(&l->line, DOCKER_BUILD_LINE_CAP);
    se_buf_init(&l->out, 4096);
    l->progress = progress;
    l->ud = ud;
}

void
docker_build_log_free(docker_build_log *l)
{
    se_buf_free(&l->line);
    se_buf_free(&l->out);
}

static void
ring_push(docker_build_log *l, const char *s, size_t len)
{
    /* Lines come here printable already (out_line_done, or our own text). */
    if (len >= DOCKER_BUILD_RING_LINE)
        len = DOCKER_BUILD_RING_LINE - 1;
    memcpy(l->ring[l->ring_next], s, len);
    l->ring[l->ring_next][len] = '\0';
    l->ring_next = (l->ring_next + 1) % DOCKER_BUILD_RING;
    if (l->ring_count < DOCKER_BUILD_RING)
        l->ring_count++;
}

static void
out_line_done(docker_build_log *l)
{
    if (!l->out.data) {
        ring_push(l, "", 0);
        if (l->progress)
            l->progress("", l->ud);
        return;
    }
    /* The build's output is the container's: strip colour sequences and
     * control bytes in place (the result is never longer, and the buffer
     * has room for the NUL) before it reaches a log line or an error. */
    char *s = (char *)l->out.data;
    size_t n = l->out.len;
    if (n && s[n - 1] == '\r')
        n--;
    copy_printable(s, n, s, n + 1);
    ring_push(l, s, strlen(s));
    if (l->progress)
        l->progress(s, l->ud);
    se_buf_reset(&l->out);
}

/* "stream" text: split into output lines; an overlong line is cut into
 * pieces of the out buffer's cap. */
static void
stream_text(docker_build_log *l, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\n') {
            out_line_done(l);
            continue;
        }
        if (l->out.len >= l->out.cap)
            out_line_done(l);
        se_buf_append(&l->out, &s[i], 1);
    }
}

static void
json_line(docker_build_log *l, const char *s, size_t len)
{
    while (len && (s[len - 1] == '\r' || s[len - 1] == ' '))
        len--;
    if (len == 0)
        return;
    cJSON *j = cJSON_ParseWithLength(s, len);
    if (!cJSON_IsObject(j)) {
        ring_push(l, "[unparsable progress line]", 26);
        cJSON_Delete(j);
        return;
    }
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "stream");
    const cJSON *aux = cJSON_GetObjectItemCaseSensitive(j, "aux");
    if (cJSON_IsString(st))
        stream_text(l, st->valuestring, strlen(st->valuestring));
    if (e) {
        l->failed = true;
        if (cJSON_IsString(e))
            copy_printable(e->valuestring, strlen(e->valuestring), l->error, sizeof(l->error));
        else
            snprintf(l->error, sizeof(l->error), "(error without text)");
    }
    if (cJSON_IsObject(aux)) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(aux, "ID");
        if (cJSON_IsString(id) && strlen(id->valuestring) < sizeof(l->image_id))
            copy_printable(id->valuestring, strlen(id->valuestring), l->image_id,
                           sizeof(l->image_id));
    }
    cJSON_Delete(j);
}

int
docker_build_log_feed(docker_build_log *l, const char *data, size_t len)
{
    while (len) {
        const char *nl = memchr(data, '\n', len);
        size_t take = nl ? (size_t)(nl - data) : len;
        if (!l->skipping && se_buf_append(&l->line, data, take) < 0) {
            l->skipping = true;
            l->lines_skipped++;
            ring_push(l, "[overlong progress line skipped]", 32);
            se_buf_reset(&l->line);
        }
        if (!nl)
            break;
        if (!l->skipping)
            json_line(l, (const char *)l->line.data, l->line.len);
        l->skipping = false;
        se_buf_reset(&l->line);
        data = nl + 1;
        len -= take + 1;
    }
    return 0;
}

int
docker_build_log_finish(docker_build_log *l, se_err *err)
{
    if (!l->skipping && l->line.len)
        json_line(l, (const char *)l->line.data, l->line.len);
    se_buf_reset(&l->line);
    if (l->out.len)
        out_line_done(l);
    if (!l->failed)
        return 0;
    /* The cause first: a client may keep only the message's head (the C
     * library keeps 512 bytes), and the engine's error ("The command ...
     * returned a non-zero code: 1") says only that a step failed. pip says
     * why on its last "ERROR:" line. Then the engine's error, then as many
     * of the newest lines as fit, oldest of those first. */
    const char *cause = NULL;
    for (size_t k = 0; k < l->ring_count && !cause; k++) {
        const char *line = l->ring[(l->ring_next + DOCKER_BUILD_RING - 1 - k) % DOCKER_BUILD_RING];
        line += strspn(line, " ");
        if (strncmp(line, "ERROR:", 6) == 0)
            cause = line;
    }
    char msg[SE_ERR_MSG_MAX];
    int n = cause ? snprintf(msg, sizeof(msg), "image build failed: %s | %s", cause, l->error)
                  : snprintf(msg, sizeof(msg), "image build failed: %s", l->error);
    size_t used = n < 0 ? 0 : ((size_t)n >= sizeof(msg) ? sizeof(msg) - 1 : (size_t)n);
    size_t room = sizeof(msg) - used - 1;
    const char *sep = " | last output: ";
    size_t first = l->ring_count;
    size_t total = strlen(sep);
    /* Walk back from the newest line while it fits. */
    while (first > 0) {
        size_t idx =
            (l->ring_next + DOCKER_BUILD_RING - (l->ring_count - first) - 1) % DOCKER_BUILD_RING;
        size_t add = strlen(l->ring[idx]) + 3;
        if (total + add > room)
            break;
        total += add;
        first--;
    }
    if (first < l->ring_count) {
        memcpy(msg + used, sep, strlen(sep));
        used += strlen(sep);
        for (size_t k = first; k < l->ring_count; k++) {
            size_t idx = (l->ring_next + DOCKER_BUILD_RING - l->ring_count + k) % DOCKER_BUILD_RING;
            size_t m = strlen(l->ring[idx]);
            memcpy(msg + used, l->ring[idx], m);
            used += m;
            if (k + 1 < l->ring_count) {
                memcpy(msg + used, " / ", 3);
                used += 3;
            }
        }
    }
    msg[used] = '\0';
    return se_err_set(err, SE_PRECONDITION, "%s", msg);
}

/* --- archive --- */

int
docker_tar_extract_file(const void *tar, size_t len, size_t cap, uint8_t **out, size_t *out_len,
                        se_err *err)
{
    struct archive *a = archive_read_new();
    struct archive_entry *e;
    se_buf b;
    int rc = 0;
    se_buf_init(&b, cap);
    if (!a)
        return se_err_set(err, SE_INTERNAL, "out of memory");
    archive_read_support_format_tar(a);
    if (archive_read_open_memory(a, tar, len) != ARCHIVE_OK) {
        rc = se_err_set(err, SE_PROTOCOL, "archive: not a tar: %s", archive_error_string(a));
        goto out;
    }
    int r = archive_read_next_header(a, &e);
    if (r == ARCHIVE_EOF) {
        rc = se_err_set(err, SE_NOT_FOUND, "archive: empty");
        goto out;
    }
    if (r != ARCHIVE_OK) {
        rc = se_err_set(err, SE_PROTOCOL, "archive: bad tar header: %s", archive_error_string(a));
        goto out;
    }
    if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e)) {
        rc = se_err_set(err, SE_INVALID, "archive: not a regular file");
        goto out;
    }
    if (!archive_entry_size_is_set(e) || archive_entry_size(e) < 0 ||
        (uint64_t)archive_entry_size(e) > cap) {
        rc = se_err_set(err, SE_EXHAUSTED, "archive: file larger than %zu bytes", cap);
        goto out;
    }
    for (;;) {
        char chunk[16384];
        la_ssize_t n = archive_read_data(a, chunk, sizeof(chunk));
        if (n == 0)
            break;
        if (n < 0) {
            rc = se_err_set(err, SE_PROTOCOL, "archive: truncated: %s", archive_error_string(a));
            goto out;
        }
        if (se_buf_append(&b, chunk, (size_t)n) < 0) {
            rc = se_err_set(err, SE_EXHAUSTED, "archive: file larger than %zu bytes", cap);
            goto out;
        }
    }
    r = archive_read_next_header(a, &e);
    if (r == ARCHIVE_OK) {
        rc = se_err_set(err, SE_INVALID, "archive: more than one entry (not a single file)");
        goto out;
    }
    if (r != ARCHIVE_EOF) {
        rc = se_err_set(err, SE_PROTOCOL, "archive: broken trailer: %s", archive_error_string(a));
        goto out;
    }
    *out = se_buf_steal(&b, out_len);
    if (!*out)
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
    else
        (*out)[*out_len] = '\0'; /* steal leaves room for it, even when empty */
out:
    se_buf_free(&b);
    archive_read_free(a);
    return rc;
}
