/* libsafeeval internals: the one place that sees gRPC core and protobuf-c
 * types. Nothing here is installed. */
#ifndef SAFEEVAL_CLIENT_INTERNAL_H
#define SAFEEVAL_CLIENT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>

#include "safeeval/safeeval.h"

struct safeeval_client {
    grpc_channel *channel;
    char *auth_header; /* "Bearer <token>" or NULL */
    uint32_t default_timeout_ms;
};

/* Copies a caller's options struct (of the caller's struct_size, which may be
 * older and smaller, or newer and larger) into a zeroed current one: fields
 * the caller's header did not know stay 0, fields it knew and we do not are
 * ignored. */
#define SC_OPTS_COPY(dst, src)                                                                     \
    do {                                                                                           \
        memset(&(dst), 0, sizeof(dst));                                                            \
        if (src) {                                                                                 \
            size_t n_ = (src)->struct_size < sizeof(dst) ? (src)->struct_size : sizeof(dst);       \
            memcpy(&(dst), (src), n_);                                                             \
        }                                                                                          \
        (dst).struct_size = sizeof(dst);                                                           \
    } while (0)

/* Fills err (if non-NULL) and returns -1. Control characters in the message
 * are replaced, because it may carry text from the service. */
int sc_fail(safeeval_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One unary call: a server stream (below) that must bring exactly one
 * message. `req` is packed and sent to `method`; on status OK the reply is
 * unpacked with `resp_desc` into *out (free with
 * protobuf_c_message_free_unpacked). timeout_ms 0 = the client's default.
 * cancel: optional flag polled while waiting. */
int sc_unary(safeeval_client *c, const char *method, const ProtobufCMessage *req,
             const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **out,
             uint32_t timeout_ms, const volatile int *cancel, safeeval_error *err);

/* Called with each message of a server stream (the packed bytes, borrowed):
 * 0 to go on; non-zero cancels the call (CANCELLED), with err filled by
 * the callback when it failed itself. */
typedef int (*sc_msg_fn)(const uint8_t *data, size_t len, void *ud, safeeval_error *err);

/* One server-streaming call: `req` is sent to `method`, each reply message
 * goes to on_msg as it arrives, then the status ends it (0 on OK). */
int sc_server_stream(safeeval_client *c, const char *method, const ProtobufCMessage *req,
                     sc_msg_fn on_msg, void *ud, uint32_t timeout_ms, const volatile int *cancel,
                     safeeval_error *err);

#endif
