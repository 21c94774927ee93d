/* The gRPC server. This folder is the only code that touches gRPC core
 * types; everything it serves is described by a table of methods whose
 * handlers see protobuf-c messages, an se_cancel and an se_err. */
#ifndef SAFEEVAL_RPC_RPC_H
#define SAFEEVAL_RPC_RPC_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "util/cancel.h"
#include "util/err.h"

/* A unary method. The handler gets the unpacked request (borrowed) and sets
 * *out to a response it built with malloc'd fields (freed by the rpc layer
 * with protobuf_c_message_free_unpacked). Returns 0 or a negative se_code
 * with err filled; the rpc layer maps it to a status. */
typedef int (*rpc_handler_fn)(void *svc, const ProtobufCMessage *req, ProtobufCMessage **out,
                              const se_cancel *cancel, se_err *err);

/* One server-streaming call, handed to a streaming handler (borrowed for
 * the handler's duration). */
typedef struct rpc_stream rpc_stream;

/* A server-streaming method: the handler sends any number of messages with
 * rpc_stream_send, then returns 0 (status OK) or a negative se_code with err
 * filled (that status ends the stream). */
typedef int (*rpc_stream_handler_fn)(void *svc, const ProtobufCMessage *req, rpc_stream *st,
                                     const se_cancel *cancel, se_err *err);

/* A client that takes no message of a stream for this long is cut off
 * (RESOURCE_EXHAUSTED): it would otherwise hold a worker thread, and the
 * sandbox worker behind it, for as long as it likes. */
#define RPC_STREAM_STALL_MS 60000

typedef struct rpc_method {
    const char *path; /* "/safeeval.v1.SandboxService/Eval" */
    const ProtobufCMessageDescriptor *request;
    rpc_handler_fn handle;        /* unary: set exactly one of handle and stream */
    rpc_stream_handler_fn stream; /* server streaming */
} rpc_method;

/* Sends msg (borrowed; packed here) as the stream's next message and waits
 * until gRPC has taken it: one message in flight per stream, so a client
 * that reads slowly holds the handler here (HTTP/2 flow control) instead of
 * making the server queue messages. Returns 0; SE_CANCELLED when the client
 * went away, SE_DEADLINE at its deadline, SE_EXHAUSTED when it took nothing
 * for RPC_STREAM_STALL_MS (the call is cancelled then). After a failure
 * every later send fails the same way. */
int rpc_stream_send(rpc_stream *st, const ProtobufCMessage *msg, se_err *err);

typedef struct rpc_server_opts {
    const char *listen;   /* "unix:PATH" or "HOST:PORT" */
    int insecure_listen;  /* allow a non-loopback TCP address without TLS */
    const char *tls_cert; /* PEM paths; NULL = no TLS */
    const char *tls_key;
    const char *tls_client_ca; /* set = require client certificates (mTLS) */
    size_t max_request_bytes;
    unsigned workers;     /* worker threads */
    unsigned queue_depth; /* calls waiting for a worker before RESOURCE_EXHAUSTED */
    unsigned grace_ms;    /* shutdown grace for in-flight calls */
} rpc_server_opts;

typedef struct rpc_server rpc_server;

/* Checks opts without touching the network (rpc_server_new does it too), so
 * the daemon can refuse a bad --listen before it starts anything else:
 * SE_INVALID for a non-loopback TCP address without TLS or insecure_listen,
 * a cert without its key, and so on. */
int rpc_server_opts_check(const rpc_server_opts *opts, se_err *err);

int rpc_server_new(rpc_server **out, const rpc_server_opts *opts, const rpc_method *methods,
                   size_t n_methods, void *svc, se_err *err);
/* Starts serving in background threads. */
int rpc_server_start(rpc_server *s, se_err *err);
/* Stops accepting, lets in-flight calls finish within grace_ms, cancels the
 * rest, joins every thread. */
void rpc_server_shutdown(rpc_server *s);
void rpc_server_free(rpc_server *s);

/* The SandboxService method table, bound to a sandbox_manager (methods.c). */
extern const rpc_method rpc_sandbox_methods[];
extern const size_t rpc_sandbox_methods_count;

/* The gRPC status code for an se_code (status.c: the one mapping). */
int rpc_status_for(int se_code);

/* 1 if a --listen address can only be reached from this host (unix socket,
 * 127.0.0.0/8, ::1, localhost), else 0. A non-local address needs TLS or
 * insecure_listen. */
int rpc_listen_is_local(const char *listen);

#endif
