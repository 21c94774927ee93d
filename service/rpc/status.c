/* The one place where an se_code becomes a gRPC status. */
#include <grpc/status.h>

#include "rpc/rpc.h"

int
rpc_status_for(int se_code)
{
    switch (se_code) {
    case SE_OK:
        return GRPC_STATUS_OK;
    case SE_INVALID:
        return GRPC_STATUS_INVALID_ARGUMENT;
    case SE_NOT_FOUND:
        return GRPC_STATUS_NOT_FOUND;
    case SE_EXHAUSTED:
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case SE_UNAVAILABLE:
        return GRPC_STATUS_UNAVAILABLE;
    case SE_PRECONDITION:
        return GRPC_STATUS_FAILED_PRECONDITION;
    case SE_DEADLINE:
        return GRPC_STATUS_DEADLINE_EXCEEDED;
    case SE_CANCELLED:
        return GRPC_STATUS_CANCELLED;
    /* A conflict is a race with another call on the same sandbox (destroyed
     * or being destroyed while this call arrived). Ids are chosen by the
     * service, so a client can never make something that "already exists";
     * ABORTED is gRPC's code for "lost a concurrency race, retry at a higher
     * level" and tells the client exactly that. */
    case SE_CONFLICT:
        return GRPC_STATUS_ABORTED;
    case SE_PROTOCOL:
    case SE_INTERNAL:
        return GRPC_STATUS_INTERNAL;
    }
    /* A code this build does not know is a bug somewhere: never OK. */
    return GRPC_STATUS_INTERNAL;
}
