/* JSON output of the `safeeval` command. Built with cJSON, never by string
 * formatting: outputs and labels are untrusted text. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

int
cli_utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (len - i <= n)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        /* Overlong forms, surrogates, beyond U+10FFFF. */
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            return 0;
        i += n + 1;
    }
    return 1;
}

char *
cli_base64(const unsigned char *s, size_t len)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
        return NULL;
    size_t olen = (len + 2) / 3 * 4;
    char *o = malloc(olen + 1);
    if (!o)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < len)
            v |= s[i + 2];
        o[j++] = tbl[(v >> 18) & 63];
        o[j++] = tbl[(v >> 12) & 63];
        o[j++] = i + 1 < len ? tbl[(v >> 6) & 63] : '=';
        o[j++] = i + 2 < len ? tbl[v & 63] : '=';
    }
    o[j] = '\0';
    return o;
}

static int
add_bytes(cJSON *obj, const char *name, const char *data, size_t len)
{
    char enc_name[32];
    snprintf(enc_name, sizeof(enc_name), "%s_encoding", name);
    if (cli_utf8_valid((const unsigned char *)data, len)) {
        /* data is NUL-terminated by libsafeeval and has no inner NUL. */
        if (!cJSON_AddStringToObject(obj, name, data) ||
            !cJSON_AddStringToObject(obj, enc_name, "utf-8"))
            return -1;
        return 0;
    }
    char *b64 = cli_base64((const unsigned char *)data, len);
    if (!b64)
        return -1;
    int ok =
        cJSON_AddStringToObject(obj, name, b64) && cJSON_AddStringToObject(obj, enc_name, "base64");
    free(b64);
    return ok ? 0 : -1;
}

cJSON *
cli_result_json(const safeeval_result *r)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    int ok = cJSON_AddStringToObject(o, "reason", safeeval_exit_reason_name(r->reason)) &&
             cJSON_AddNumberToObject(o, "exit_code", r->exit_code) &&
             cJSON_AddNumberToObject(o, "signal", r->signal) &&
             add_bytes(o, "stdout", r->stdout_data, r->stdout_len) == 0 &&
             add_bytes(o, "stderr", r->stderr_data, r->stderr_len) == 0 &&
             cJSON_AddBoolToObject(o, "stdout_truncated", r->stdout_truncated) &&
             cJSON_AddBoolToObject(o, "stderr_truncated", r->stderr_truncated) &&
             cJSON_AddNumberToObject(o, "stdout_bytes", (double)r->stdout_bytes) &&
             cJSON_AddNumberToObject(o, "stderr_bytes", (double)r->stderr_bytes) &&
             cJSON_AddNumberToObject(o, "wall_time_us", (double)r->wall_time_us) &&
             cJSON_AddNumberToObject(o, "cpu_time_us", (double)r->cpu_time_us) &&
             cJSON_AddNumberToObject(o, "max_rss_bytes", (double)r->max_rss_bytes) &&
             cJSON_AddBoolToObject(o, "files_truncated", r->files_truncated);
    /* The files' bytes went to --out-dir: here only what came. */
    cJSON *files = ok ? cJSON_AddArrayToObject(o, "files") : NULL;
    ok = ok && files;
    for (size_t i = 0; ok && i < r->n_files; i++) {
        cJSON *f = cJSON_CreateObject();
        ok = f && cJSON_AddItemToArray(files, f) &&
             cJSON_AddStringToObject(f, "path", r->files[i].path) &&
             cJSON_AddNumberToObject(f, "bytes", (double)r->files[i].len);
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *
limits_json(const safeeval_limits *l)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    int ok = cJSON_AddNumberToObject(o, "wall_time_ms", l->wall_time_ms) &&
             cJSON_AddNumberToObject(o, "cpu_time_ms", l->cpu_time_ms) &&
             cJSON_AddNumberToObject(o, "memory_bytes", (double)l->memory_bytes) &&
             cJSON_AddNumberToObject(o, "max_processes", l->max_processes) &&
             cJSON_AddNumberToObject(o, "max_output_bytes", (double)l->max_output_bytes) &&
             cJSON_AddNumberToObject(o, "max_file_bytes", (double)l->max_file_bytes) &&
             cJSON_AddNumberToObject(o, "max_collect_files", l->max_collect_files) &&
             cJSON_AddNumberToObject(o, "max_collect_bytes", (double)l->max_collect_bytes);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

cJSON *
cli_sandbox_json(const safeeval_sandbox *sb)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *mods = cJSON_CreateArray();
    cJSON *labels = cJSON_CreateObject();
    cJSON *limits = limits_json(&sb->limits);
    if (!o || !mods || !labels || !limits)
        goto oom;
    for (size_t i = 0; i < sb->n_modules; i++) {
        cJSON *s = cJSON_CreateString(sb->modules[i]);
        if (!s || !cJSON_AddItemToArray(mods, s)) {
            cJSON_Delete(s);
            goto oom;
        }
    }
    for (size_t i = 0; i < sb->n_labels; i++)
        if (!cJSON_AddStringToObject(labels, sb->labels[i].key, sb->labels[i].value))
            goto oom;
    if (!cJSON_AddStringToObject(o, "id", sb->id) ||
        !cJSON_AddStringToObject(o, "python_version", sb->python_version) ||
        !cJSON_AddStringToObject(o, "owner", sb->owner ? sb->owner : ""))
        goto oom;
    if (!cJSON_AddItemToObject(o, "modules", mods))
        goto oom;
    mods = NULL;
    if (!cJSON_AddItemToObject(o, "limits", limits))
        goto oom;
    limits = NULL;
    if (!cJSON_AddStringToObject(o, "image", sb->image) ||
        !cJSON_AddNumberToObject(o, "created_at_ms", (double)sb->created_at_ms) ||
        !cJSON_AddNumberToObject(o, "last_used_at_ms", (double)sb->last_used_at_ms))
        goto oom;
    if (!cJSON_AddItemToObject(o, "labels", labels))
        goto oom;
    labels = NULL;
    if (!cJSON_AddNumberToObject(o, "idle_timeout_s", sb->idle_timeout_s) ||
        !cJSON_AddNumberToObject(o, "max_concurrent_runs", sb->max_concurrent_runs) ||
        !cJSON_AddNumberToObject(o, "workers", sb->workers))
        goto oom;
    return o;
oom:
    cJSON_Delete(o);
    cJSON_Delete(mods);
    cJSON_Delete(labels);
    cJSON_Delete(limits);
    return NULL;
}

cJSON *
cli_error_json(const safeeval_error *err)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *e = cJSON_CreateObject();
    if (!o || !e || !cJSON_AddNumberToObject(e, "code", err->code) ||
        !cJSON_AddStringToObject(e, "status", safeeval_status_name(err->code)) ||
        !cJSON_AddStringToObject(e, "message", err->message)) {
        cJSON_Delete(o);
        cJSON_Delete(e);
        return NULL;
    }
    if (!cJSON_AddItemToObject(o, "error", e)) {
        cJSON_Delete(o);
        cJSON_Delete(e);
        return NULL;
    }
    return o;
}

cJSON *
cli_server_info_json(const safeeval_server_info *info)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON *pys = NULL;
    int ok = cJSON_AddStringToObject(o, "version", info->version) &&
             cJSON_AddStringToObject(o, "build_id", info->build_id) &&
             cJSON_AddStringToObject(o, "api_version", info->api_version) &&
             cJSON_AddStringToObject(o, "default_python_version", info->default_python_version) &&
             cJSON_AddNumberToObject(o, "max_concurrent_runs", info->max_concurrent_runs) &&
             cJSON_AddNumberToObject(o, "max_sandboxes", info->max_sandboxes) &&
             (pys = cJSON_AddArrayToObject(o, "pythons"));
    for (size_t i = 0; ok && i < info->n_pythons; i++) {
        cJSON *p = cJSON_CreateObject();
        ok = p && cJSON_AddItemToArray(pys, p) &&
             cJSON_AddStringToObject(p, "version", info->pythons[i].version) &&
             cJSON_AddStringToObject(p, "full_version", info->pythons[i].full_version) &&
             cJSON_AddStringToObject(p, "base_image", info->pythons[i].base_image);
    }
    cJSON *dl = ok ? limits_json(&info->default_limits) : NULL;
    ok = ok && dl && cJSON_AddItemToObject(o, "default_limits", dl);
    if (!ok && dl)
        cJSON_Delete(dl);
    cJSON *ml = ok ? limits_json(&info->max_limits) : NULL;
    ok = ok && ml && cJSON_AddItemToObject(o, "max_limits", ml);
    if (!ok && ml)
        cJSON_Delete(ml);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}
