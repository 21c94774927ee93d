/* The unix socket accepted by the daemon itself, so that each call's peer
 * uid is known (peer.c says why gRPC cannot tell), and the socket's rights. */
#ifndef SAFEEVAL_RPC_PEER_H
#define SAFEEVAL_RPC_PEER_H

#include <stdbool.h>
#include <sys/types.h>

#include <grpc/grpc.h>

#include "util/err.h"

typedef struct rpc_peer {
    uid_t uid;
    gid_t gid;
    pid_t pid;
    char user[64]; /* "" when the uid has no passwd entry */
} rpc_peer;

typedef struct rpc_peers rpc_peers;

/* A group name or number: SE_INVALID if unknown. */
int rpc_socket_group(gid_t *out, const char *group, se_err *err);
/* chown to gid (when set_gid) and chmod to mode. */
int rpc_socket_apply(const char *path, unsigned mode, bool set_gid, gid_t gid, se_err *err);

/* Binds and listens on path (which must not exist) with these rights. */
int rpc_peers_listen(rpc_peers **out, const char *path, unsigned mode, bool set_gid, gid_t gid,
                     se_err *err);
/* Accepts in a thread, handing each connection to server (started). */
int rpc_peers_start(rpc_peers *p, grpc_server *server, se_err *err);
/* Stops accepting and removes the socket; connections already handed over
 * stay gRPC's. */
void rpc_peers_stop(rpc_peers *p);
void rpc_peers_free(rpc_peers *p);
/* The peer of a call whose grpc_call_get_peer is `peer` ("fd:N"): 0, or -1
 * when it is not one of ours. */
int rpc_peers_lookup(rpc_peers *p, const char *peer, rpc_peer *out);

#endif
