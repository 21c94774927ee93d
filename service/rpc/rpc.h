/* The gRPC server. This folder is the only code that touches gRPC core
 * types; everything it serves is described by a table of methods whose
 * handlers see protobuf-c messages, an se_cancel and an se_err. */
#ifndef SAFEEVAL_RPC_RPC_H
#define SAFEEVAL_RPC_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "util/cancel.h"
#include "util/err.h"

/* A tenant name is at most this long. */
#define RPC_IDENTITY_MAX 128

/* Who calls (identity.c): a bearer token of --tokens, the mTLS client
 * certificate, or the unix socket peer's uid. name "" is the one anonymous
 * tenant of a daemon without identity options. Quotas: 0 = none. */
typedef struct rpc_identity {
    char name[RPC_IDENTITY_MAX + 1];
    bool admin;
    uint32_t max_sandboxes;
    uint32_t max_runs;
    uint64_t max_memory;
} rpc_identity;

/* A unary method. The handler gets the caller and the unpacked request (both borrowed) and sets
 * *out to a response it built with malloc'd fields (freed by the rpc layer
 * with protobuf_c_message_free_unpacked). Returns 0 or a negative se_code
 * with err filled; the rpc layer maps it to a status. */
typedef int (*rpc_handler_fn)(void *svc, const rpc_identity *who, const ProtobufCMessage *req,
                              ProtobufCMessage **out, const se_cancel *cancel, se_err *err);

/* A call in progress, as a streaming handler sees it (borrowed for the
 * handler's run). */
typedef struct rpc_call rpc_call;

/* A streaming method: server-streaming when the method has a request
 * descriptor (req is the client's one message, borrowed), bidirectional or
 * client-streaming when it has none (req is NULL; read with rpc_call_recv).
 * The handler sends any number of messages with rpc_call_send and returns 0
 * (status OK) or a negative se_code with err filled, as a unary handler. */
typedef int (*rpc_stream_fn)(void *svc, const ProtobufCMessage *req, rpc_call *call,
                             const se_cancel *cancel, se_err *err);

typedef struct rpc_method {
    const char *path; /* "/safeeval.v1.SandboxService/Eval" */
    const ProtobufCMessageDescriptor *request;
    rpc_handler_fn handle; /* unary; or */
    rpc_stream_fn stream;  /* streaming: exactly one of the two is set */
} rpc_method;

/* Sends one message of a streaming call (borrowed; the initial metadata
 * with the first) and waits until gRPC took it: one message in flight per
 * call, so a client that reads slowly holds the handler here (HTTP/2 flow
 * control) instead of making the server queue messages. SE_CANCELLED when
 * the client is gone, SE_DEADLINE at its deadline, SE_EXHAUSTED when a
 * SandboxService stream's client took nothing for 60 s (the call is then
 * cancelled), SE_INTERNAL if the message cannot be packed. After a failure
 * every later send fails the same way. */
int rpc_call_send(rpc_call *call, const ProtobufCMessage *msg, se_err *err);
/* Receives the next message of the client's stream, unpacked with desc and
 * checked like a unary request (*out freed by the caller with
 * protobuf_c_message_free_unpacked(*out, NULL)). Returns 1 with a message,
 * 0 at the end of the client's stream, or a negative se_code: SE_CANCELLED
 * (client gone), SE_UNAVAILABLE (the server is shutting down: the call is
 * cancelled rather than held open through the grace period), SE_INVALID /
 * SE_EXHAUSTED for a bad message. */
int rpc_call_recv(rpc_call *call, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out,
                  se_err *err);
/* The call's request id: the client's x-request-id metadata when it sent a
 * plain token of at most 64 bytes, else 32 random hex digits. Returned to
 * the client in the trailing metadata, written in the call's log line.
 * Borrowed for the handler's run. */
const char *rpc_call_request_id(const rpc_call *call);
/* The client's address as gRPC names it ("ipv4:127.0.0.1:5000"), or
 * "unix:uid=U,pid=P" through our unix socket; borrowed for the handler's run. */
const char *rpc_call_peer(const rpc_call *call);
/* Who the call is from (the identity unary handlers get as `who`); borrowed
 * for the handler's run. */
const rpc_identity *rpc_call_who(const rpc_call *call);

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
    /* identities (identity.c); none of the three = one anonymous tenant */
    const char *tokens_file;          /* "name sha256-hex|- [role] [quota=N ...]" lines */
    const char *unix_identities_file; /* "user|uid|* name|- [role] [quota=N ...]" lines */
    uint32_t tenant_max_sandboxes;    /* default quotas of every tenant; 0 = none */
    uint32_t tenant_max_runs;
    uint64_t tenant_max_memory;
    /* the unix socket */
    unsigned socket_mode;     /* permission bits of the socket (0660) */
    const char *socket_group; /* group name or gid owning the socket and its new folder */
    /* Health: probe(ud, err) returns 0 while the backend (the Docker
     * engine) answers; called every health_interval_ms from a thread of the
     * server, and at once after metrics_engine_error(). NULL = always
     * SERVING (until shutdown). */
    int (*health_probe)(void *ud, se_err *err);
    void *health_probe_ud;
    unsigned health_interval_ms;
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
/* SIGHUP: re-reads the --tokens and --unix-identities files, and the TLS
 * certificate, key and client CA. Each part reloads on its own: a file that
 * does not load keeps what is in force, and the reason is logged. New
 * handshakes use new TLS files; open connections and calls go on. */
void rpc_server_reload(rpc_server *s);
/* Stops accepting, lets in-flight calls finish within grace_ms, cancels the
 * rest, joins every thread. */
void rpc_server_shutdown(rpc_server *s);
void rpc_server_free(rpc_server *s);

/* The version in every call's safeeval-version trailing metadata entry. */
const char *rpc_version(void);

/* --metrics-listen: serves GET /metrics (Prometheus text, util/metrics.h)
 * on HOST:PORT from a thread of libmicrohttpd. A non-loopback address is
 * refused (SE_INVALID) unless allow_remote. */
typedef struct rpc_metrics_server rpc_metrics_server;
/* The address checks of rpc_metrics_start, without the network. */
int rpc_metrics_check(const char *listen, bool allow_remote, se_err *err);
int rpc_metrics_start(rpc_metrics_server **out, const char *listen, bool allow_remote, se_err *err);
/* NULL is fine. */
void rpc_metrics_stop(rpc_metrics_server *m);

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
