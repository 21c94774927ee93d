/* How long-running work learns that its caller went away or ran out of time,
 * without knowing anything about gRPC. The rpc layer fills one per call. */
#ifndef SAFEEVAL_UTIL_CANCEL_H
#define SAFEEVAL_UTIL_CANCEL_H

#include <stdbool.h>
#include <stdint.h>

#include "util/clock.h"
#include "util/err.h"

typedef struct se_cancel {
    int64_t deadline_ms;            /* CLOCK_MONOTONIC ms; INT64_MAX = none */
    bool (*is_cancelled)(void *ud); /* may be NULL; must be cheap and thread-safe */
    void *ud;
} se_cancel;

#define SE_CANCEL_NONE ((se_cancel){.deadline_ms = INT64_MAX, .is_cancelled = NULL, .ud = NULL})

/* 0 while work may go on; otherwise fills err with SE_DEADLINE or
 * SE_CANCELLED and returns its negative code. c may be NULL. */
static inline int
se_cancel_check(const se_cancel *c, se_err *err)
{
    if (!c)
        return 0;
    if (c->deadline_ms != INT64_MAX && clock_mono_ms() >= c->deadline_ms)
        return se_err_set(err, SE_DEADLINE, "deadline exceeded");
    if (c->is_cancelled && c->is_cancelled(c->ud))
        return se_err_set(err, SE_CANCELLED, "cancelled by the client");
    return 0;
}

/* Milliseconds left before the deadline (INT64_MAX if none, 0 if passed). */
static inline int64_t
se_cancel_remaining_ms(const se_cancel *c)
{
    if (!c || c->deadline_ms == INT64_MAX)
        return INT64_MAX;
    int64_t left = c->deadline_ms - clock_mono_ms();
    return left > 0 ? left : 0;
}

#endif
