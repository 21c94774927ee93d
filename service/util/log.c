#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
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

void
log_write(int level, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

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
