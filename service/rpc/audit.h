/* The audit line: one per RPC, who did what to which sandbox, and how it
 * ended. Never a request's code, stdin, env values, files or output. */
#ifndef SAFEEVAL_RPC_AUDIT_H
#define SAFEEVAL_RPC_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#define RPC_REQUEST_ID_MAX 64
#define RPC_AUDIT_SANDBOX_MAX 64

typedef struct rpc_audit {
    const char *identity; /* NULL: none established (UNAUTHENTICATED) */
    bool admin;
    const char *peer;
    const char *method;  /* "Eval" */
    const char *path;    /* "/safeeval.v1.SandboxService/Eval" */
    const char *sandbox; /* "" when the call names none */
    int status;          /* gRPC status code */
    double duration_ms;
    int64_t queued_us;
    const char *request_id;
    const char *error; /* our own failure's text (INTERNAL/UNAVAILABLE), or NULL */
} rpc_audit;

/* The client's x-request-id when it is 1..RPC_REQUEST_ID_MAX characters of
 * [A-Za-z0-9._:/+=-], else a new random one (32 hex). */
void rpc_request_id(char out[RPC_REQUEST_ID_MAX + 1], const char *given, size_t len);
/* The sandbox a call is about: the request's sandbox_id, else the id of the
 * response's sandbox (CreateSandbox); "" if none; only [0-9a-zA-Z] kept. */
void rpc_audit_sandbox(char out[RPC_AUDIT_SANDBOX_MAX + 1], const ProtobufCMessage *req,
                       const ProtobufCMessage *resp);
/* Writes the line at `level` (text key=value, or JSON fields with
 * --log-json: method is the path, code the status name). */
void rpc_audit_log(int level, const rpc_audit *a);

#endif
