/* SandboxService: each handler unpacks nothing (the server did), calls the
 * sandbox layer, which validates every field, and wraps what it returns in
 * the response message. Responses are malloc'd so that the server frees them
 * with protobuf_c_message_free_unpacked(msg, NULL) like everything else. */
#include <assert.h>
#include <stdlib.h>

#include "rpc/rpc.h"
#include "sandbox/sandbox.h"

/* Makes the response `desc` and puts `child` (may be NULL) into its first
 * field, which must be a singular message field: every response of this
 * service but ListSandboxes is that one field. Takes ownership of child. */
static int
respond(ProtobufCMessage **out, const ProtobufCMessageDescriptor *desc, ProtobufCMessage *child,
        se_err *err)
{
    ProtobufCMessage *resp = malloc(desc->sizeof_message);
    if (!resp) {
        if (child)
            protobuf_c_message_free_unpacked(child, NULL);
        return se_err_set(err, SE_INTERNAL, "out of memory");
    }
    protobuf_c_message_init(desc, resp);
    if (child) {
        const ProtobufCFieldDescriptor *f = &desc->fields[0];
        assert(desc->n_fields >= 1 && f->type == PROTOBUF_C_TYPE_MESSAGE &&
               f->label != PROTOBUF_C_LABEL_REPEATED);
        *(ProtobufCMessage **)((char *)resp + f->offset) = child;
    }
    *out = resp;
    return 0;
}

/* The sandbox layer's view of the caller (borrowing who's name). */
static sandbox_caller
caller_of(const rpc_identity *who)
{
    return (sandbox_caller){.owner = who->name,
                            .admin = who->admin,
                            .max_sandboxes = who->max_sandboxes,
                            .max_runs = who->max_runs,
                            .max_memory = who->max_memory};
}

static int
method_create(void *svc, const rpc_identity *who, const ProtobufCMessage *req,
              ProtobufCMessage **out, const se_cancel *cancel, se_err *err)
{
    sandbox_caller me = caller_of(who);
    Safeeval__V1__Sandbox *sb = NULL;
    int r = sandbox_create(svc, &me, (const Safeeval__V1__CreateSandboxRequest *)req, &sb, NULL,
                           NULL, cancel, err);
    if (r < 0)
        return r;
    return respond(out, &safeeval__v1__create_sandbox_response__descriptor, &sb->base, err);
}

static int
method_eval(void *svc, const rpc_identity *who, const ProtobufCMessage *req, ProtobufCMessage **out,
            const se_cancel *cancel, se_err *err)
{
    sandbox_caller me = caller_of(who);
    Safeeval__V1__ExecResult *res = NULL;
    int r = sandbox_eval(svc, &me, (const Safeeval__V1__EvalRequest *)req, &res, cancel, err);
    if (r < 0)
        return r;
    return respond(out, &safeeval__v1__eval_response__descriptor, &res->base, err);
}

static int
method_execute_file(void *svc, const rpc_identity *who, const ProtobufCMessage *req,
                    ProtobufCMessage **out, const se_cancel *cancel, se_err *err)
{
    sandbox_caller me = caller_of(who);
    Safeeval__V1__ExecResult *res = NULL;
    int r = sandbox_execute_file(svc, &me, (const Safeeval__V1__ExecuteFileRequest *)req, &res,
                                 cancel, err);
    if (r < 0)
        return r;
    return respond(out, &safeeval__v1__execute_file_response__descriptor, &res->base, err);
}

static int
method_destroy(void *svc, const rpc_identity *who, const ProtobufCMessage *req,
               ProtobufCMessage **out, const se_cancel *cancel, se_err *err)
{
    sandbox_caller me = caller_of(who);
    const Safeeval__V1__DestroySandboxRequest *r = (const void *)req;
    int rc = sandbox_destroy(svc, &me, r->sandbox_id, cancel, err);
    if (rc < 0)
        return rc;
    return respond(out, &safeeval__v1__destroy_sandbox_response__descriptor, NULL, err);
}

static int
method_get(void *svc, const rpc_identity *who, const ProtobufCMessage *req, ProtobufCMessage **out,
           const se_cancel *cancel, se_err *err)
{
    sandbox_caller me = caller_of(who);
    (void)cancel;
    const Safeeval__V1__GetSandboxRequest *r = (const void *)req;
    Safeeval__V1__Sandbox *sb = NULL;
    int rc = sandbox_get(svc, &me, r->sandbox_id, &sb, err);
    if (rc < 0)
        return rc;
    return respond(out, &safeeval__v1__get_sandbox_response__descriptor, &sb->base, err);
}

static int
method_list(void *svc, const rpc_identity *who, const ProtobufCMessage *req, ProtobufCMessage **out,
            const se_cancel *cancel, se_err *err)
{
    sandbox_caller me = caller_of(who);
    (void)req;
    (void)cancel;
    Safeeval__V1__Sandbox **list = NULL;
    size_t n = 0;
    int rc = sandbox_list(svc, &me, &list, &n, err);
    if (rc < 0)
        return rc;
    Safeeval__V1__ListSandboxesResponse *resp = malloc(sizeof(*resp));
    if (!resp) {
        for (size_t i = 0; i < n; i++)
            protobuf_c_message_free_unpacked(&list[i]->base, NULL);
        free(list);
        return se_err_set(err, SE_INTERNAL, "out of memory");
    }
    *resp = (Safeeval__V1__ListSandboxesResponse)SAFEEVAL__V1__LIST_SANDBOXES_RESPONSE__INIT;
    resp->sandboxes = list;
    resp->n_sandboxes = n;
    *out = &resp->base;
    return 0;
}

#define SVC "/safeeval.v1.SandboxService/"

const rpc_method rpc_sandbox_methods[] = {
    {SVC "CreateSandbox", &safeeval__v1__create_sandbox_request__descriptor, method_create, NULL},
    {SVC "Eval", &safeeval__v1__eval_request__descriptor, method_eval, NULL},
    {SVC "ExecuteFile", &safeeval__v1__execute_file_request__descriptor, method_execute_file, NULL},
    {SVC "DestroySandbox", &safeeval__v1__destroy_sandbox_request__descriptor, method_destroy,
     NULL},
    {SVC "GetSandbox", &safeeval__v1__get_sandbox_request__descriptor, method_get, NULL},
    {SVC "ListSandboxes", &safeeval__v1__list_sandboxes_request__descriptor, method_list, NULL},
};
const size_t rpc_sandbox_methods_count =
    sizeof(rpc_sandbox_methods) / sizeof(rpc_sandbox_methods[0]);
