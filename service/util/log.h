/* Structured log lines to stderr, text or JSON. The level is tested before
 * anything is formatted. Never log untrusted code or run output above DEBUG. */
#ifndef SAFEEVAL_UTIL_LOG_H
#define SAFEEVAL_UTIL_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

extern int log_current_level;

/* name: "error", "warn", "info", "debug". Returns 0, or -1 if unknown. */
int log_set_level_name(const char *name);
void log_set_level(int level);
/* JSON lines instead of "ts level msg" text. */
void log_set_json(int on);

void log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct cJSON;
/* One line of msg plus fields (a cJSON object of strings and numbers,
 * borrowed): in JSON mode the fields are members of the line's object next
 * to ts, level and msg; in text mode they follow msg as key=value, a string
 * quoted when it holds a space, a quote or a backslash. The caller tests the
 * level first. */
void log_write_fields(int level, const char *msg, const struct cJSON *fields);

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
