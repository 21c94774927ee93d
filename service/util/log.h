/* Structured log lines to stderr, text or JSON. The level is tested before
 * anything is formatted. Never log untrusted code or run output above DEBUG. */
#ifndef SAFEEVAL_UTIL_LOG_H
#define SAFEEVAL_UTIL_LOG_H

#include <stddef.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

extern int log_current_level;

/* name: "error", "warn", "info", "debug". Returns 0, or -1 if unknown. */
int log_set_level_name(const char *name);
void log_set_level(int level);
/* JSON lines instead of "ts level msg" text. */
void log_set_json(int on);
/* 1 when lines are JSON. */
int log_json_enabled(void);

void log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One named value of a structured line: a string (str set) or a number. */
typedef struct log_field {
    const char *key;
    const char *str; /* NULL: num is the value */
    double num;
} log_field;

/* A line whose values are fields: in JSON each field is a member of the
 * line's object (strings as JSON strings, numbers as numbers) next to ts,
 * level and msg; in text they follow msg as key=value (strings with a space,
 * quote or control byte quoted and escaped). Check the level first, as the
 * log_* macros do. */
void log_write_fields(int level, const char *msg, const log_field *fields, size_t n);

#define LOG_AT(lvl, ...)                                                                           \
    do {                                                                                           \
        if ((lvl) <= log_current_level)                                                            \
            log_write((lvl), __VA_ARGS__);                                                         \
    } while (0)
#define log_error(...) LOG_AT(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) LOG_AT(LOG_WARN, __VA_ARGS__)
#define log_info(...) LOG_AT(LOG_INFO, __VA_ARGS__)
#define log_debug(...) LOG_AT(LOG_DEBUG, __VA_ARGS__)

#endif
