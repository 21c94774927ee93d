#include "util/log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

int log_current_level = LOG_INFO;
static int log_json;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

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

static void
timestamp(char when[40])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(when, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, 40 - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

void
log_write(int level, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char when[40];
    timestamp(when);
    const char *lvl = level >= 0 && level < 4 ? level_names[level] : "info";

    if (log_json) {
        /* Built with cJSON so that a message holding quotes stays one valid line. */
        cJSON *o = cJSON_CreateObject();
        char *line = NULL;
        if (o && cJSON_AddStringToObject(o, "ts", when) &&
            cJSON_AddStringToObject(o, "level", lvl) && cJSON_AddStringToObject(o, "msg", msg))
            line = cJSON_PrintUnformatted(o);
        if (line)
            fprintf(stderr, "%s\n", line);
        cJSON_free(line);
        cJSON_Delete(o);
    } else {
        fprintf(stderr, "%s %-5s %s\n", when, lvl, msg);
    }
}

/* Appends s to the text line, quoted and escaped when it must be. */
static void
text_value(char *line, size_t cap, size_t *len, const char *s)
{
    bool quote = !*s || strpbrk(s, " \"\\=") != NULL;
    size_t n = *len;
    if (quote && n + 1 < cap)
        line[n++] = '"';
    for (const char *p = s; *p && n + 3 < cap; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            line[n++] = '\\';
            line[n++] = (char)c;
        } else {
            line[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
        }
    }
    if (quote && n + 1 < cap)
        line[n++] = '"';
    line[n] = '\0';
    *len = n;
}

void
log_write_fields(int level, const char *msg, const cJSON *fields)
{
    char when[40];
    timestamp(when);
    const char *lvl = level >= 0 && level < 4 ? level_names[level] : "info";
    if (log_json) {
        /* ts, level and msg first, as in every other line. */
        cJSON *o = cJSON_CreateObject();
        char *line = NULL;
        bool ok = o && cJSON_AddStringToObject(o, "ts", when) &&
                  cJSON_AddStringToObject(o, "level", lvl) &&
                  cJSON_AddStringToObject(o, "msg", msg);
        const cJSON *it;
        cJSON_ArrayForEach(it, fields)
        {
            cJSON *d = ok && it->string ? cJSON_Duplicate(it, 1) : NULL;
            if (!d || !cJSON_AddItemToObject(o, it->string, d)) {
                cJSON_Delete(d);
                ok = false;
            }
        }
        if (ok)
            line = cJSON_PrintUnformatted(o);
        if (line)
            fprintf(stderr, "%s\n", line);
        cJSON_free(line);
        cJSON_Delete(o);
        return;
    }
    char line[4096];
    size_t n = (size_t)snprintf(line, sizeof(line), "%s %-5s %s", when, lvl, msg);
    if (n >= sizeof(line))
        n = sizeof(line) - 1;
    const cJSON *it;
    cJSON_ArrayForEach(it, fields)
    {
        if (!it->string || n + 4 >= sizeof(line))
            break;
        n += (size_t)snprintf(line + n, sizeof(line) - n, " %s=", it->string);
        if (n >= sizeof(line)) {
            n = sizeof(line) - 1;
            break;
        }
        if (cJSON_IsString(it)) {
            text_value(line, sizeof(line), &n, it->valuestring);
        } else if (cJSON_IsNumber(it)) {
            int k = snprintf(line + n, sizeof(line) - n, "%.15g", it->valuedouble);
            if (k > 0)
                n = n + (size_t)k >= sizeof(line) ? sizeof(line) - 1 : n + (size_t)k;
        }
    }
    fprintf(stderr, "%s\n", line);
}
