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

typedef struct rpc_method {
    const char *path; /* "/safeeval.v1.SandboxService/Eval" */
    const ProtobufCMessageDescriptor *request;
    rpc_handler_fn handle;
} rpc_method;

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
/* Re-reads the --tokens and --unix-identities files (SIGHUP). A file that
 * does not load keeps the identities in force and the reason is logged. */
void rpc_server_reload(rpc_server *s);
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
