/* One error type for the whole service: a code, errno where it matters, and a
 * message that callers extend with context on the way up. */
#ifndef SAFEEVAL_UTIL_ERR_H
#define SAFEEVAL_UTIL_ERR_H

#include <stddef.h>

/* Error codes. Explicit numbers; never renumber, only append. The rpc layer
 * maps each to exactly one gRPC status (rpc/status.c). */
enum se_code {
    SE_OK = 0,
    SE_INVALID = 1,      /* a field from outside is malformed */
    SE_NOT_FOUND = 2,    /* unknown sandbox / image / container */
    SE_EXHAUSTED = 3,    /* a size limit, a full queue, too many sandboxes */
    SE_UNAVAILABLE = 4,  /* the Docker engine (or another peer) does not answer */
    SE_PRECONDITION = 5, /* an image cannot be built, a version cannot be had */
    SE_DEADLINE = 6,     /* the caller's deadline passed */
    SE_CANCELLED = 7,    /* the caller went away */
    SE_INTERNAL = 8,     /* a bug or an unexpected answer from a peer */
    SE_CONFLICT = 9,     /* the thing exists already / is in the wrong state */
    SE_PROTOCOL = 10,    /* a peer broke its protocol (bad JSON, bad frame) */
};

#define SE_ERR_MSG_MAX 1024

typedef struct se_err {
    int code;      /* enum se_code */
    int sys_errno; /* errno at the failure, 0 if none */
    char msg[SE_ERR_MSG_MAX];
} se_err;

/* Fills err (may be NULL) and returns -code, so `return se_err_set(...)`
 * reads naturally. */
int se_err_set(se_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Like se_err_set, with sys_errno = errno and ": strerror" appended. */
int se_err_errno(se_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prefixes context: "create sandbox x: <old message>". Returns -err->code. */
int se_err_prefix(se_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void se_err_clear(se_err *err);
/* A short stable name for a code ("invalid", "not-found", ...). */
const char *se_code_name(int code);

#endif
