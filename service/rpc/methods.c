/* SandboxService: each handler unpacks nothing (the server did), calls the
 * sandbox layer, which validates every field, and wraps what it returns in
 * the response message. Responses are malloc'd so that the server frees them
 * with protobuf_c_message_free_unpacked(msg, NULL) like everything else. */
#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "rpc/rpc.h"
#include "sandbox/sandbox.h"
#include "util/clock.h"

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

/* ---- streaming ---- */

/* A RunEvent with one chunk of output, sent and waited for: the sink of a
 * streamed run (sandbox_output_fn). */
static int
run_chunk(void *ud, int stream, const uint8_t *data, size_t len, se_err *err)
{
    Safeeval__V1__RunEvent ev = SAFEEVAL__V1__RUN_EVENT__INIT;
    ProtobufCBinaryData bytes = {.len = len, .data = (uint8_t *)data};
    if (stream == 1) {
        ev.event_case = SAFEEVAL__V1__RUN_EVENT__EVENT_STDOUT;
        ev.stdout = bytes;
    } else {
        ev.event_case = SAFEEVAL__V1__RUN_EVENT__EVENT_STDERR;
        ev.stderr = bytes;
    }
    return rpc_call_send(ud, &ev.base, err);
}

static int
run_result(rpc_call *st, Safeeval__V1__ExecResult *res, se_err *err)
{
    Safeeval__V1__RunEvent ev = SAFEEVAL__V1__RUN_EVENT__INIT;
    ev.event_case = SAFEEVAL__V1__RUN_EVENT__EVENT_RESULT;
    ev.result = res;
    int r = rpc_call_send(st, &ev.base, err);
    protobuf_c_message_free_unpacked(&res->base, NULL);
    return r;
}

static int
method_eval_stream(void *svc, const ProtobufCMessage *req, rpc_call *st, const se_cancel *cancel,
                   se_err *err)
{
    Safeeval__V1__ExecResult *res = NULL;
    sandbox_caller me = caller_of(rpc_call_who(st));
    int r = sandbox_eval_stream(svc, &me, (const Safeeval__V1__EvalRequest *)req, &res, run_chunk,
                                st, cancel, err);
    return r < 0 ? r : run_result(st, res, err);
}

static int
method_execute_file_stream(void *svc, const ProtobufCMessage *req, rpc_call *st,
                           const se_cancel *cancel, se_err *err)
{
    Safeeval__V1__ExecResult *res = NULL;
    sandbox_caller me = caller_of(rpc_call_who(st));
    int r = sandbox_execute_file_stream(svc, &me, (const Safeeval__V1__ExecuteFileRequest *)req,
                                        &res, run_chunk, st, cancel, err);
    return r < 0 ? r : run_result(st, res, err);
}

/* Build lines become CreateEvent progress lines: printable ASCII only (a
 * proto string must be UTF-8, and a terminal shows them), at most
 * PROGRESS_LINE_MAX bytes, at most PROGRESS_PER_S a second (the lines over
 * the rate are counted and said in the next line that goes). A line that
 * cannot be sent stops the progress; the build notices the cancellation
 * itself. */
#define PROGRESS_LINE_MAX 400
#define PROGRESS_PER_S 50

typedef struct progress_ctx {
    rpc_call *st;
    bool failed;
    int64_t window_ms;
    unsigned in_window;
    unsigned skipped;
} progress_ctx;

static void
create_progress(const char *line, void *ud)
{
    progress_ctx *p = ud;
    if (p->failed || !line)
        return;
    int64_t now = clock_mono_ms();
    if (now - p->window_ms >= 1000) {
        p->window_ms = now;
        p->in_window = 0;
    }
    if (p->in_window >= PROGRESS_PER_S) {
        p->skipped++;
        return;
    }
    p->in_window++;
    char buf[PROGRESS_LINE_MAX + 64];
    size_t o = 0;
    if (p->skipped) {
        o = (size_t)snprintf(buf, sizeof(buf), "(%u lines skipped) ", p->skipped);
        p->skipped = 0;
    }
    for (const char *s = line; *s && o < sizeof(buf) - 1; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\r' || c == '\n')
            continue;
        buf[o++] = (c >= 0x20 && c < 0x7f) || c == '\t' ? (char)c : '?';
    }
    buf[o] = '\0';
    if (o == 0)
        return;
    Safeeval__V1__CreateEvent ev = SAFEEVAL__V1__CREATE_EVENT__INIT;
    ev.event_case = SAFEEVAL__V1__CREATE_EVENT__EVENT_PROGRESS;
    ev.progress = buf;
    if (rpc_call_send(p->st, &ev.base, NULL) < 0)
        p->failed = true;
}

static int
method_create_stream(void *svc, const ProtobufCMessage *req, rpc_call *st, const se_cancel *cancel,
                     se_err *err)
{
    Safeeval__V1__Sandbox *sb = NULL;
    progress_ctx p = {.st = st, .window_ms = clock_mono_ms()};
    sandbox_caller me = caller_of(rpc_call_who(st));
    int r = sandbox_create(svc, &me, (const Safeeval__V1__CreateSandboxRequest *)req, &sb,
                           create_progress, &p, cancel, err);
    if (r < 0)
        return r;
    Safeeval__V1__CreateEvent ev = SAFEEVAL__V1__CREATE_EVENT__INIT;
    ev.event_case = SAFEEVAL__V1__CREATE_EVENT__EVENT_SANDBOX;
    ev.sandbox = sb;
    r = rpc_call_send(st, &ev.base, err);
    protobuf_c_message_free_unpacked(&sb->base, NULL);
    /* The sandbox exists, whether or not the client got to hear of it: its
     * idle timeout reaps it (the unary CreateSandbox has the same window). */
    return r;
}

static int
method_server_info(void *svc, const rpc_identity *who, const ProtobufCMessage *req,
                   ProtobufCMessage **out, const se_cancel *cancel, se_err *err)
{
    (void)who;
    (void)req;
    (void)cancel;
    Safeeval__V1__ServerInfo *info = NULL;
    int r = sandbox_server_info(svc, &info, err);
    if (r < 0)
        return r;
    return respond(out, &safeeval__v1__get_server_info_response__descriptor, &info->base, err);
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
    {SVC "EvalStream", &safeeval__v1__eval_request__descriptor, NULL, method_eval_stream},
    {SVC "ExecuteFileStream", &safeeval__v1__execute_file_request__descriptor, NULL,
     method_execute_file_stream},
    {SVC "CreateSandboxStream", &safeeval__v1__create_sandbox_request__descriptor, NULL,
     method_create_stream},
    {SVC "GetServerInfo", &safeeval__v1__get_server_info_request__descriptor, method_server_info,
     NULL},
};
const size_t rpc_sandbox_methods_count =
    sizeof(rpc_sandbox_methods) / sizeof(rpc_sandbox_methods[0]);
