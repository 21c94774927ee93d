/* Identities inside the rpc folder: the --tokens and --unix-identities
 * files, loaded at start and on SIGHUP, and the lookups the server makes for
 * each call. Nothing here touches gRPC types, so the unit tests and the fuzz
 * target reach it directly. */
#ifndef SAFEEVAL_RPC_IDENTITY_H
#define SAFEEVAL_RPC_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "rpc/rpc.h"
#include "util/err.h"

/* Caps on what the files may hold. */
#define IDENTITY_FILE_MAX (1u << 20)
#define IDENTITY_ENTRIES_MAX 10000
/* A bearer token longer than this is refused unread. */
#define IDENTITY_TOKEN_MAX 4096

typedef struct rpc_auth rpc_auth;

/* Loads the files named in opts (either may be NULL) and keeps the default
 * quotas. A file that does not parse is SE_INVALID naming file:line. */
int rpc_auth_new(rpc_auth **out, const rpc_server_opts *opts, se_err *err);
void rpc_auth_free(rpc_auth *a);
/* Re-reads both files; on any failure the old tables stay and err says why. */
int rpc_auth_reload(rpc_auth *a, se_err *err);

/* 1 if any identity option is set: then a call needs an identity. */
bool rpc_auth_required(const rpc_auth *a);
bool rpc_auth_has_tokens(const rpc_auth *a);
bool rpc_auth_has_unix(const rpc_auth *a);

/* The anonymous tenant ("" with the default quotas). */
void rpc_auth_anonymous(const rpc_auth *a, rpc_identity *out);
/* The identity of a bearer token (the secret after "Bearer "): 0, or -1
 * when no line's hash matches. Every line is compared, in constant time. */
int rpc_auth_token(rpc_auth *a, const char *token, size_t len, rpc_identity *out);
/* The identity of a name proven elsewhere (a client certificate): role and
 * quotas from a --tokens line of that name, if any. -1 if the name is not
 * usable as a tenant name. */
int rpc_auth_named(rpc_auth *a, const char *name, size_t len, rpc_identity *out);
/* The identity of a socket peer: its uid (and user name, NULL if it has
 * none) mapped through --unix-identities. -1 when no line matches it. */
int rpc_auth_unix(rpc_auth *a, uid_t uid, const char *user, rpc_identity *out);

/* Parses one file's text (exposed for the unit tests and fuzzing): kind 't'
 * for --tokens, 'u' for --unix-identities. The table is freed with
 * rpc_identity_table_free. */
typedef struct rpc_identity_table rpc_identity_table;
int rpc_identity_table_parse(rpc_identity_table **out, int kind, const char *text, size_t len,
                             const char *fname, se_err *err);
void rpc_identity_table_free(rpc_identity_table *t);
size_t rpc_identity_table_count(const rpc_identity_table *t);

/* A tenant name from outside (a certificate): 1..RPC_IDENTITY_MAX printable
 * ASCII without '"' or '\\'. */
bool rpc_identity_name_ok(const char *name, size_t len);

#endif
