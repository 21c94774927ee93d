#include "util/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int
se_err_set(se_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        err->sys_errno = 0;
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return -code;
}

int
se_err_errno(se_err *err, int code, const char *fmt, ...)
{
    int saved = errno;
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        err->sys_errno = saved;
        int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < sizeof(err->msg))
            snprintf(err->msg + n, sizeof(err->msg) - (size_t)n, ": %s", strerror(saved));
    }
    return -code;
}

int
se_err_prefix(se_err *err, const char *fmt, ...)
{
    if (!err)
        return -SE_INTERNAL;
    char prefix[SE_ERR_MSG_MAX];
    char old[SE_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    old[sizeof(old) - 1] = '\0';
    /* Truncation is fine: the message is bounded on purpose. */
    size_t n = strnlen(prefix, sizeof(err->msg) - 3);
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, ": ", 2);
    size_t room = sizeof(err->msg) - n - 3;
    size_t m = strnlen(old, room);
    memcpy(err->msg + n + 2, old, m);
    err->msg[n + 2 + m] = '\0';
    return -err->code;
}

void
se_err_clear(se_err *err)
{
    if (err) {
        err->code = SE_OK;
        err->sys_errno = 0;
        err->msg[0] = '\0';
    }
}

const char *
se_code_name(int code)
{
    switch (code) {
    case SE_OK:
        return "ok";
    case SE_INVALID:
        return "invalid";
    case SE_NOT_FOUND:
        return "not-found";
    case SE_EXHAUSTED:
        return "exhausted";
    case SE_UNAVAILABLE:
        return "unavailable";
    case SE_PRECONDITION:
        return "precondition";
    case SE_DEADLINE:
        return "deadline";
    case SE_CANCELLED:
        return "cancelled";
    case SE_INTERNAL:
        return "internal";
    case SE_CONFLICT:
        return "conflict";
    case SE_PROTOCOL:
        return "protocol";
    }
    return "unknown";
}
