/* What the pieces of the gRPC server share: the health state (health.c),
 * server reflection (reflection.c) and reloadable TLS (tls.c). */
#ifndef SAFEEVAL_RPC_INTERNAL_H
#define SAFEEVAL_RPC_INTERNAL_H

#include <stdbool.h>

#include <grpc/grpc_security.h>

#include "rpc/rpc.h"

/* ---- health (health.c) ---------------------------------------------------------------------- */

typedef struct rpc_health rpc_health;

/* probe: see rpc_server_opts.health_probe (NULL = always up). The state
 * starts SERVING: the daemon talked to the engine before it serves. */
int rpc_health_new(rpc_health **out, int (*probe)(void *ud, se_err *err), void *ud,
                   unsigned interval_ms, se_err *err);
/* Starts the probe thread (none without a probe). */
int rpc_health_start(rpc_health *h, se_err *err);
/* NOT_SERVING for good: watchers get it and end. */
void rpc_health_drain(rpc_health *h);
/* Stops the probe thread (after the server stopped) and frees. */
void rpc_health_free(rpc_health *h);
/* true while serving: not draining and the engine answers. */
bool rpc_health_serving(rpc_health *h);
/* Health/Watch, with svc = the rpc_health. */
extern const rpc_method rpc_health_watch_method;
/* How many Watch streams may be open at once. */
#define RPC_HEALTH_MAX_WATCHERS 16

/* ---- reflection (reflection.c) -------------------------------------------------------------- */

typedef struct rpc_reflection rpc_reflection;

/* Indexes the descriptor set built into the daemon (every symbol of
 * sandbox.proto, health.proto and the reflection protos). */
int rpc_reflection_new(rpc_reflection **out, se_err *err);
void rpc_reflection_free(rpc_reflection *r);
/* ServerReflectionInfo of v1 and v1alpha, with svc = the rpc_reflection. */
extern const rpc_method rpc_reflection_methods[2];
#define RPC_REFLECTION_MAX_STREAMS 8

/* ---- TLS (tls.c) ---------------------------------------------------------------------------- */

typedef struct rpc_tls rpc_tls;

/* Reads and checks the files of opts (cert, key, client CA) and makes
 * server credentials whose certificates rpc_tls_reload can replace. */
int rpc_tls_new(rpc_tls **out, grpc_server_credentials **creds, const rpc_server_opts *opts,
                se_err *err);
int rpc_tls_reload(rpc_tls *t, se_err *err);
/* After the server that uses the credentials is destroyed. */
void rpc_tls_free(rpc_tls *t);

#endif
