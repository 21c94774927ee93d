#include "util/log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

int log_current_level = LOG_INFO;
static int log_json;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

static size_t field_text(char *dst, size_t cap, const log_field *f);

int
log_set_level_name(const char *name)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            log_current_level = i;
            return 0;
        }
    }
    return -1;
}

void
log_set_level(int level)
{
    log_current_level = level;
}

void
log_set_json(int on)
{
    log_json = on;
}

int
log_json_enabled(void)
{
    return log_json;
}

static void
write_line(int level, const char *msg, const log_field *fields, size_t n_fields)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof(when) - n, ".%03ldZ", ts.tv_nsec / 1000000);
    const char *lvl = level >= 0 && level < 4 ? level_names[level] : "info";

    if (log_json) {
        /* Built with cJSON so that a message holding quotes stays one valid line. */
        cJSON *o = cJSON_CreateObject();
        char *line = NULL;
        bool ok = o && cJSON_AddStringToObject(o, "ts", when) &&
                  cJSON_AddStringToObject(o, "level", lvl) &&
                  cJSON_AddStringToObject(o, "msg", msg);
        for (size_t i = 0; ok && i < n_fields; i++) {
            const log_field *f = &fields[i];
            ok = f->str ? cJSON_AddStringToObject(o, f->key, f->str) != NULL
                        : cJSON_AddNumberToObject(o, f->key, f->num) != NULL;
        }
        if (ok)
            line = cJSON_PrintUnformatted(o);
        if (line)
            fprintf(stderr, "%s\n", line);
        cJSON_free(line);
        cJSON_Delete(o);
    } else if (n_fields == 0) {
        fprintf(stderr, "%s %-5s %s\n", when, lvl, msg);
    } else {
        char text[4096];
        size_t len = 0;
        for (size_t i = 0; i < n_fields && len < sizeof(text) - 1; i++)
            len += field_text(text + len, sizeof(text) - len, &fields[i]);
        fprintf(stderr, "%s %-5s %s%s\n", when, lvl, msg, text);
    }
}

/* " key=value" into dst (NUL-terminated); returns the bytes written. A
 * string that is not a plain word is quoted, with \" \\ and \xNN escapes. */
static size_t
field_text(char *dst, size_t cap, const log_field *f)
{
    if (cap < 2)
        return 0;
    int n;
    if (!f->str) {
        n = snprintf(dst, cap, " %s=%.3f", f->key, f->num);
        if (f->num == (double)(long long)f->num)
            n = snprintf(dst, cap, " %s=%lld", f->key, (long long)f->num);
        return n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;
    }
    bool plain = f->str[0] != '\0';
    for (const char *p = f->str; *p && plain; p++)
        plain = *p > 0x20 && *p < 0x7f && *p != '"' && *p != '\\' && *p != '=';
    n = snprintf(dst, cap, " %s=%s", f->key, plain ? f->str : "\"");
    if (n < 0)
        return 0;
    size_t j = (size_t)n >= cap ? cap - 1 : (size_t)n;
    if (plain)
        return j;
    for (const unsigned char *p = (const unsigned char *)f->str; *p && j + 5 < cap; p++) {
        if (*p == '"' || *p == '\\') {
            dst[j++] = '\\';
            dst[j++] = (char)*p;
        } else if (*p < 0x20 || *p >= 0x7f) {
            j += (size_t)snprintf(dst + j, cap - j, "\\x%02x", *p);
        } else {
            dst[j++] = (char)*p;
        }
    }
    if (j + 1 < cap)
        dst[j++] = '"';
    dst[j] = '\0';
    return j;
}

void
log_write(int level, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    write_line(level, msg, NULL, 0);
}

void
log_write_fields(int level, const char *msg, const log_field *fields, size_t n)
{
    write_line(level, msg, fields, n);
}
