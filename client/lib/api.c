/* The SandboxService calls: plain C options in, protobuf-c requests out;
 * protobuf-c replies in, plain C results out. Eval, ExecuteFile and
 * CreateSandbox use their streaming forms when the options ask for
 * output or progress callbacks. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "safeeval/v1/sandbox.pb-c.h"

#define SC_METHOD(name) "/safeeval.v1.SandboxService/" name

/* Replies are bounded as a whole by max_receive_bytes; copies of their
 * strings need no cap of their own. */
static char *
dup_str(const char *s)
{
    return strdup(s ? s : "");
}

static void
limits_to_pb(Safeeval__V1__Limits *dst, const safeeval_limits *src)
{
    dst->wall_time_ms = src->wall_time_ms;
    dst->cpu_time_ms = src->cpu_time_ms;
    dst->memory_bytes = src->memory_bytes;
    dst->max_processes = src->max_processes;
    dst->max_output_bytes = src->max_output_bytes;
    dst->max_file_bytes = src->max_file_bytes;
    dst->max_collect_files = src->max_collect_files;
    dst->max_collect_bytes = src->max_collect_bytes;
}

static int
limits_set(const safeeval_limits *l)
{
    return l->wall_time_ms || l->cpu_time_ms || l->memory_bytes || l->max_processes ||
           l->max_output_bytes || l->max_file_bytes || l->max_collect_files || l->max_collect_bytes;
}

static void
limits_from_pb(safeeval_limits *dst, const Safeeval__V1__Limits *src)
{
    memset(dst, 0, sizeof(*dst));
    if (!src)
        return;
    dst->wall_time_ms = src->wall_time_ms;
    dst->cpu_time_ms = src->cpu_time_ms;
    dst->memory_bytes = src->memory_bytes;
    dst->max_processes = src->max_processes;
    dst->max_output_bytes = src->max_output_bytes;
    dst->max_file_bytes = src->max_file_bytes;
    dst->max_collect_files = src->max_collect_files;
    dst->max_collect_bytes = src->max_collect_bytes;
}

static void
sandbox_clear(safeeval_sandbox *sb)
{
    free(sb->id);
    free(sb->python_version);
    for (size_t i = 0; i < sb->n_modules; i++)
        free(sb->modules[i]);
    free(sb->modules);
    free(sb->image);
    free(sb->owner);
    for (size_t i = 0; i < sb->n_labels; i++) {
        free((char *)sb->labels[i].key);
        free((char *)sb->labels[i].value);
    }
    free(sb->labels);
    memset(sb, 0, sizeof(*sb));
}

static int
sandbox_from_pb(safeeval_sandbox *dst, const Safeeval__V1__Sandbox *src, safeeval_error *err)
{
    memset(dst, 0, sizeof(*dst));
    if (!src)
        return sc_fail(err, SAFEEVAL_STATUS_INTERNAL, "the reply holds no sandbox");
    dst->id = dup_str(src->id);
    dst->python_version = dup_str(src->python_version);
    dst->image = dup_str(src->image);
    dst->owner = dup_str(src->owner);
    if (!dst->id || !dst->python_version || !dst->image || !dst->owner)
        goto oom;
    if (src->n_modules) {
        dst->modules = calloc(src->n_modules, sizeof(char *));
        if (!dst->modules)
            goto oom;
        for (; dst->n_modules < src->n_modules; dst->n_modules++) {
            dst->modules[dst->n_modules] = dup_str(src->modules[dst->n_modules]);
            if (!dst->modules[dst->n_modules])
                goto oom;
        }
    }
    if (src->n_labels) {
        dst->labels = calloc(src->n_labels, sizeof(safeeval_kv));
        if (!dst->labels)
            goto oom;
        for (; dst->n_labels < src->n_labels; dst->n_labels++) {
            safeeval_kv *kv = &dst->labels[dst->n_labels];
            kv->key = dup_str(src->labels[dst->n_labels]->key);
            kv->value = dup_str(src->labels[dst->n_labels]->value);
            if (!kv->key || !kv->value) {
                dst->n_labels++; /* so that clear frees the half-made pair */
                goto oom;
            }
        }
    }
    limits_from_pb(&dst->limits, src->limits);
    dst->created_at_ms = src->created_at_ms;
    dst->last_used_at_ms = src->last_used_at_ms;
    dst->idle_timeout_s = src->idle_timeout_s;
    dst->max_concurrent_runs = src->max_concurrent_runs;
    dst->workers = src->workers;
    return 0;
oom:
    sandbox_clear(dst);
    return sc_fail(err, SAFEEVAL_STATUS_INTERNAL, "out of memory");
}

void
safeeval_sandbox_free(safeeval_sandbox *sb)
{
    if (!sb)
        return;
    sandbox_clear(sb);
    free(sb);
}

void
safeeval_sandbox_list_free(safeeval_sandbox_list *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->count; i++)
        sandbox_clear(&list->items[i]);
    free(list->items);
    free(list);
}

static int
sandbox_out(safeeval_sandbox **out, const Safeeval__V1__Sandbox *src, safeeval_error *err)
{
    safeeval_sandbox *sb = calloc(1, sizeof(*sb));
    if (!sb)
        return sc_fail(err, SAFEEVAL_STATUS_INTERNAL, "out of memory");
    if (sandbox_from_pb(sb, src, err) != 0) {
        free(sb);
        return -1;
    }
    *out = sb;
    return 0;
}

static int
check_id(const char *what, const char *id, safeeval_error *err)
{
    if (!id || !*id)
        return sc_fail(err, SAFEEVAL_STATUS_INVALID_ARGUMENT, "%s: no sandbox id", what);
    return 0;
}

typedef struct create_stream {
    const safeeval_create_opts *o;
    Safeeval__V1__Sandbox *sandbox; /* the last message */
} create_stream;

static int
create_event(const uint8_t *data, size_t len, void *ud, safeeval_error *err)
{
    create_stream *cs = ud;
    Safeeval__V1__CreateEvent *ev = safeeval__v1__create_event__unpack(NULL, len, data);
    if (!ev)
        return sc_fail(err, SAFEEVAL_STATUS_INTERNAL,
                       "stream: a message that is not a CreateEvent");
    int rc = 0;
    if (cs->sandbox) {
        rc = sc_fail(err, SAFEEVAL_STATUS_INTERNAL, "stream: a message after the sandbox");
    } else if (ev->event_case == SAFEEVAL__V1__CREATE_EVENT__EVENT_SANDBOX && ev->sandbox) {
        cs->sandbox = ev->sandbox;
        ev->sandbox = NULL;
    } else if (ev->event_case == SAFEEVAL__V1__CREATE_EVENT__EVENT_PROGRESS && ev->progress) {
        /* The service sends printable lines; a terminal gets nothing else
         * from here whatever it sent. */
        for (char *p = ev->progress; *p; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                *p = '?';
        cs->o->on_progress(ev->progress, cs->o->progress_ud);
    }
    safeeval__v1__create_event__free_unpacked(ev, NULL);
    return rc;
}

int
safeeval_sandbox_create(safeeval_sandbox **out, safeeval_client *c,
                        const safeeval_create_opts *opts_in, safeeval_error *err)
{
    safeeval_create_opts o;
    SC_OPTS_COPY(o, opts_in);
    *out = NULL;
    int rc = -1;
    Safeeval__V1__CreateSandboxRequest req = SAFEEVAL__V1__CREATE_SANDBOX_REQUEST__INIT;
    Safeeval__V1__Limits limits = SAFEEVAL__V1__LIMITS__INIT;
    Safeeval__V1__CreateSandboxRequest__LabelsEntry *entries = NULL, **entry_ptrs = NULL;
    ProtobufCMessage *resp = NULL;

    req.python_version = (char *)(o.python_version ? o.python_version : "");
    req.n_modules = o.n_modules;
    req.modules = (char **)o.modules;
    if (limits_set(&o.limits)) {
        limits_to_pb(&limits, &o.limits);
        req.limits = &limits;
    }
    req.idle_timeout_s = o.idle_timeout_s;
    req.max_concurrent_runs = o.max_concurrent_runs;
    if (o.n_labels) {
        entries = calloc(o.n_labels, sizeof(*entries));
        entry_ptrs = calloc(o.n_labels, sizeof(*entry_ptrs));
        if (!entries || !entry_ptrs) {
            sc_fail(err, SAFEEVAL_STATUS_INTERNAL, "create: out of memory");
            goto out;
        }
        for (size_t i = 0; i < o.n_labels; i++) {
            Safeeval__V1__CreateSandboxRequest__LabelsEntry init =
                SAFEEVAL__V1__CREATE_SANDBOX_REQUEST__LABELS_ENTRY__INIT;
            entries[i] = init;
            entries[i].key = (char *)(o.labels[i].key ? o.labels[i].key : "");
            entries[i].value = (char *)(o.labels[i].value ? o.labels[i].value : "");
            entry_ptrs[i] = &entries[i];
        }
        req.n_labels = o.n_labels;
        req.labels = entry_ptrs;
    }
    if (o.on_progress) {
        create_stream cs = {.o = &o, .sandbox = NULL};
        if (sc_server_stream(c, SC_METHOD("CreateSandboxStream"), &req.base, create_event, &cs,
                             o.timeout_ms, o.cancel, err) == 0) {
            rc = cs.sandbox ? sandbox_out(out, cs.sandbox, err)
                            : sc_fail(err, SAFEEVAL_STATUS_INTERNAL,
                                      "stream: it ended without the sandbox");
        }
        if (cs.sandbox)
            safeeval__v1__sandbox__free_unpacked(cs.sandbox, NULL);
        goto out;
    }
    if (sc_unary(c, SC_METHOD("CreateSandbox"), &req.base,
                 &safeeval__v1__create_sandbox_response__descriptor, &resp, o.timeout_ms, o.cancel,
                 err) != 0)
        goto out;
    rc = sandbox_out(out, ((Safeeval__V1__CreateSandboxResponse *)resp)->sandbox, err);
out:
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    free(entries);
    free(entry_ptrs);
    return rc;
}

int
safeeval_sandbox_get(safeeval_sandbox **out, safeeval_client *c, const char *id,
                     const safeeval_call_opts *opts_in, safeeval_error *err)
{
    safeeval_call_opts o;
    SC_OPTS_COPY(o, opts_in);
    *out = NULL;
    if (check_id("get", id, err) != 0)
        return -1;
    Safeeval__V1__GetSandboxRequest req = SAFEEVAL__V1__GET_SANDBOX_REQUEST__INIT;
    req.sandbox_id = (char *)id;
    ProtobufCMessage *resp = NULL;
    if (sc_unary(c, SC_METHOD("GetSandbox"), &req.base,
                 &safeeval__v1__get_sandbox_response__descriptor, &resp, o.timeout_ms, o.cancel,
                 err) != 0)
        return -1;
    int rc = sandbox_out(out, ((Safeeval__V1__GetSandboxResponse *)resp)->sandbox, err);
    protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

int
safeeval_sandbox_list_all(safeeval_sandbox_list **out, safeeval_client *c,
                          const safeeval_call_opts *opts_in, safeeval_error *err)
{
    safeeval_call_opts o;
    SC_OPTS_COPY(o, opts_in);
    *out = NULL;
    Safeeval__V1__ListSandboxesRequest req = SAFEEVAL__V1__LIST_SANDBOXES_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    if (sc_unary(c, SC_METHOD("ListSandboxes"), &req.base,
                 &safeeval__v1__list_sandboxes_response__descriptor, &resp, o.timeout_ms, o.cancel,
                 err) != 0)
        return -1;
    Safeeval__V1__ListSandboxesResponse *r = (Safeeval__V1__ListSandboxesResponse *)resp;
    int rc = -1;
    safeeval_sandbox_list *list = calloc(1, sizeof(*list));
    if (!list ||
        (r->n_sandboxes && !(list->items = calloc(r->n_sandboxes, sizeof(*list->items))))) {
        sc_fail(err, SAFEEVAL_STATUS_INTERNAL, "list: out of memory");
        goto out;
    }
    for (; list->count < r->n_sandboxes; list->count++)
        if (sandbox_from_pb(&list->items[list->count], r->sandboxes[list->count], err) != 0)
            goto out;
    *out = list;
    list = NULL;
    rc = 0;
out:
    safeeval_sandbox_list_free(list);
    protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

int
safeeval_sandbox_destroy(safeeval_client *c, const char *id, const safeeval_call_opts *opts_in,
                         safeeval_error *err)
{
    safeeval_call_opts o;
    SC_OPTS_COPY(o, opts_in);
    if (check_id("destroy", id, err) != 0)
        return -1;
    Safeeval__V1__DestroySandboxRequest req = SAFEEVAL__V1__DESTROY_SANDBOX_REQUEST__INIT;
    req.sandbox_id = (char *)id;
    ProtobufCMessage *resp = NULL;
    if (sc_unary(c, SC_METHOD("DestroySandbox"), &req.base,
                 &safeeval__v1__destroy_sandbox_response__descriptor, &resp, o.timeout_ms, o.cancel,
                 err) != 0)
        return -1;
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

/* ---- runs ---- */

void
safeeval_result_free(safeeval_result *r)
{
    if (!r)
        return;
    free(r->stdout_data);
    free(r->stderr_data);
    for (size_t i = 0; i < r->n_files; i++) {
        free((char *)r->files[i].path);
        free((void *)r->files[i].data);
    }
    free(r->files);
    free(r);
}

const char *
safeeval_exit_reason_name(int reason)
{
    switch (reason) {
    case SAFEEVAL_EXIT_EXITED:
        return "EXITED";
    case SAFEEVAL_EXIT_SIGNALED:
        return "SIGNALED";
    case SAFEEVAL_EXIT_WALL_TIMEOUT:
        return "WALL_TIMEOUT";
    case SAFEEVAL_EXIT_CPU_TIMEOUT:
        return "CPU_TIMEOUT";
    case SAFEEVAL_EXIT_MEMORY_LIMIT:
        return "MEMORY_LIMIT";
    case SAFEEVAL_EXIT_FILE_SIZE_LIMIT:
        return "FILE_SIZE_LIMIT";
    default:
        return "UNSPECIFIED";
    }
}

static char *
dup_bytes(const ProtobufCBinaryData *b)
{
    char *p = malloc(b->len + 1);
    if (!p)
        return NULL;
    if (b->len)
        memcpy(p, b->data, b->len);
    p[b->len] = '\0';
    return p;
}

static int
result_out(safeeval_result **out, const Safeeval__V1__ExecResult *src, safeeval_error *err)
{
    if (!src)
        return sc_fail(err, SAFEEVAL_STATUS_INTERNAL, "the reply holds no result");
    safeeval_result *r = calloc(1, sizeof(*r));
    if (!r)
        return sc_fail(err, SAFEEVAL_STATUS_INTERNAL, "out of memory");
    r->stdout_data = dup_bytes(&src->stdout);
    r->stderr_data = dup_bytes(&src->stderr);
    if (!r->stdout_data || !r->stderr_data) {
        safeeval_result_free(r);
        return sc_fail(err, SAFEEVAL_STATUS_INTERNAL, "out of memory");
    }
    r->stdout_len = src->stdout.len;
    r->stderr_len = src->stderr.len;
    r->reason = (safeeval_exit_reason)src->reason;
    r->exit_code = src->exit_code;
    r->signal = src->signal;
    r->stdout_truncated = src->stdout_truncated ? 1 : 0;
    r->stderr_truncated = src->stderr_truncated ? 1 : 0;
    r->stdout_bytes = src->stdout_bytes;
    r->stderr_bytes = src->stderr_bytes;
    r->wall_time_us = src->wall_time_us;
    r->cpu_time_us = src->cpu_time_us;
    r->max_rss_bytes = src->max_rss_bytes;
    r->files_truncated = src->files_truncated ? 1 : 0;
    if (src->n_files) {
        r->files = calloc(src->n_files, sizeof(*r->files));
        if (!r->files) {
            safeeval_result_free(r);
            return sc_fail(err, SAFEEVAL_STATUS_INTERNAL, "out of memory");
        }
        for (size_t i = 0; i < src->n_files; i++, r->n_files++) {
            const Safeeval__V1__File *f = src->files[i];
            r->files[i].path = dup_str(f ? f->path : "");
            r->files[i].data = f ? dup_bytes(&f->content) : NULL;
            r->files[i].len = f ? f->content.len : 0;
            if (!r->files[i].path || !r->files[i].data) {
                r->n_files++;
                safeeval_result_free(r);
                return sc_fail(err, SAFEEVAL_STATUS_INTERNAL, "out of memory");
            }
        }
    }
    *out = r;
    return 0;
}

/* ---- streamed runs ---- */

typedef struct run_stream {
    const safeeval_eval_opts *o;
    Safeeval__V1__ExecResult *result; /* the last message */
} run_stream;

static int
run_event(const uint8_t *data, size_t len, void *ud, safeeval_error *err)
{
    run_stream *rs = ud;
    Safeeval__V1__RunEvent *ev = safeeval__v1__run_event__unpack(NULL, len, data);
    if (!ev)
        return sc_fail(err, SAFEEVAL_STATUS_INTERNAL, "stream: a message that is not a RunEvent");
    int rc = 0;
    if (rs->result) {
        rc = sc_fail(err, SAFEEVAL_STATUS_INTERNAL, "stream: a message after the result");
    } else if (ev->event_case == SAFEEVAL__V1__RUN_EVENT__EVENT_RESULT && ev->result) {
        rs->result = ev->result;
        ev->result = NULL;
    } else if (ev->event_case == SAFEEVAL__V1__RUN_EVENT__EVENT_STDOUT ||
               ev->event_case == SAFEEVAL__V1__RUN_EVENT__EVENT_STDERR) {
        int stream = ev->event_case == SAFEEVAL__V1__RUN_EVENT__EVENT_STDOUT ? 1 : 2;
        ProtobufCBinaryData b = stream == 1 ? ev->stdout : ev->stderr;
        if (b.len && rs->o->on_output(stream, b.data, b.len, rs->o->output_ud) != 0)
            rc = sc_fail(err, SAFEEVAL_STATUS_CANCELLED, "stopped by the output callback");
    }
    /* An event this library does not know (a newer server) is skipped. */
    safeeval__v1__run_event__free_unpacked(ev, NULL);
    return rc;
}

/* Sends req to the streaming `method` and builds the result from the
 * stream's last message. */
static int
run_streamed(safeeval_result **out, safeeval_client *c, const char *method,
             const ProtobufCMessage *req, const safeeval_eval_opts *o, safeeval_error *err)
{
    run_stream rs = {.o = o, .result = NULL};
    int rc = sc_server_stream(c, method, req, run_event, &rs, o->timeout_ms, o->cancel, err);
    if (rc == 0 && !rs.result)
        rc = sc_fail(err, SAFEEVAL_STATUS_INTERNAL, "stream: it ended without a result");
    if (rc == 0)
        rc = result_out(out, rs.result, err);
    if (rs.result)
        safeeval__v1__exec_result__free_unpacked(rs.result, NULL);
    return rc;
}

/* The parts EvalRequest and ExecuteFileRequest share, built once. The map
 * entry types of the two messages are distinct protobuf-c types with the
 * same layout, so each request gets its own entries. */
typedef struct run_parts {
    Safeeval__V1__Limits limits;
    int has_limits;
    Safeeval__V1__File *files;
    Safeeval__V1__File **file_ptrs;
    Safeeval__V1__EvalRequest__EnvEntry *eval_env;
    Safeeval__V1__EvalRequest__EnvEntry **eval_env_ptrs;
    Safeeval__V1__ExecuteFileRequest__EnvEntry *exec_env;
    Safeeval__V1__ExecuteFileRequest__EnvEntry **exec_env_ptrs;
} run_parts;

static void
run_parts_clear(run_parts *p)
{
    free(p->files);
    free(p->file_ptrs);
    free(p->eval_env);
    free(p->eval_env_ptrs);
    free(p->exec_env);
    free(p->exec_env_ptrs);
}

static int
run_parts_build(run_parts *p, const safeeval_eval_opts *o, int for_exec, safeeval_error *err)
{
    memset(p, 0, sizeof(*p));
    Safeeval__V1__Limits li = SAFEEVAL__V1__LIMITS__INIT;
    p->limits = li;
    if (limits_set(&o->limits)) {
        limits_to_pb(&p->limits, &o->limits);
        p->has_limits = 1;
    }
    if (o->n_files) {
        p->files = calloc(o->n_files, sizeof(*p->files));
        p->file_ptrs = calloc(o->n_files, sizeof(*p->file_ptrs));
        if (!p->files || !p->file_ptrs)
            goto oom;
        for (size_t i = 0; i < o->n_files; i++) {
            Safeeval__V1__File init = SAFEEVAL__V1__FILE__INIT;
            if (!o->files[i].path || (o->files[i].len && !o->files[i].data))
                return sc_fail(err, SAFEEVAL_STATUS_INVALID_ARGUMENT,
                               "files[%zu]: no path or no data", i);
            p->files[i] = init;
            p->files[i].path = (char *)o->files[i].path;
            p->files[i].content.data = (uint8_t *)o->files[i].data;
            p->files[i].content.len = o->files[i].len;
            p->file_ptrs[i] = &p->files[i];
        }
    }
    for (size_t i = 0; i < o->n_env; i++)
        if (!o->env[i].key || !o->env[i].value)
            return sc_fail(err, SAFEEVAL_STATUS_INVALID_ARGUMENT, "env[%zu]: no key or value", i);
    if (o->n_env && !for_exec) {
        p->eval_env = calloc(o->n_env, sizeof(*p->eval_env));
        p->eval_env_ptrs = calloc(o->n_env, sizeof(*p->eval_env_ptrs));
        if (!p->eval_env || !p->eval_env_ptrs)
            goto oom;
        for (size_t i = 0; i < o->n_env; i++) {
            Safeeval__V1__EvalRequest__EnvEntry init = SAFEEVAL__V1__EVAL_REQUEST__ENV_ENTRY__INIT;
            p->eval_env[i] = init;
            p->eval_env[i].key = (char *)o->env[i].key;
            p->eval_env[i].value = (char *)o->env[i].value;
            p->eval_env_ptrs[i] = &p->eval_env[i];
        }
    } else if (o->n_env) {
        p->exec_env = calloc(o->n_env, sizeof(*p->exec_env));
        p->exec_env_ptrs = calloc(o->n_env, sizeof(*p->exec_env_ptrs));
        if (!p->exec_env || !p->exec_env_ptrs)
            goto oom;
        for (size_t i = 0; i < o->n_env; i++) {
            Safeeval__V1__ExecuteFileRequest__EnvEntry init =
                SAFEEVAL__V1__EXECUTE_FILE_REQUEST__ENV_ENTRY__INIT;
            p->exec_env[i] = init;
            p->exec_env[i].key = (char *)o->env[i].key;
            p->exec_env[i].value = (char *)o->env[i].value;
            p->exec_env_ptrs[i] = &p->exec_env[i];
        }
    }
    for (size_t i = 0; i < o->n_args; i++)
        if (!o->args[i])
            return sc_fail(err, SAFEEVAL_STATUS_INVALID_ARGUMENT, "args[%zu] is NULL", i);
    if (o->stdin_len && !o->stdin_data)
        return sc_fail(err, SAFEEVAL_STATUS_INVALID_ARGUMENT, "stdin_len without stdin_data");
    return 0;
oom:
    return sc_fail(err, SAFEEVAL_STATUS_INTERNAL, "out of memory");
}

int
safeeval_sandbox_eval(safeeval_result **out, safeeval_client *c, const char *id, const char *code,
                      const safeeval_eval_opts *opts_in, safeeval_error *err)
{
    safeeval_eval_opts o;
    SC_OPTS_COPY(o, opts_in);
    *out = NULL;
    if (check_id("eval", id, err) != 0)
        return -1;
    if (!code || !*code)
        return sc_fail(err, SAFEEVAL_STATUS_INVALID_ARGUMENT, "eval: no code");
    int rc = -1;
    run_parts p;
    ProtobufCMessage *resp = NULL;
    if (run_parts_build(&p, &o, 0, err) != 0)
        goto out;
    Safeeval__V1__EvalRequest req = SAFEEVAL__V1__EVAL_REQUEST__INIT;
    req.sandbox_id = (char *)id;
    req.code = (char *)code;
    req.stdin.data = (uint8_t *)o.stdin_data;
    req.stdin.len = o.stdin_len;
    req.n_args = o.n_args;
    req.args = (char **)o.args;
    req.n_env = o.n_env;
    req.env = p.eval_env_ptrs;
    req.limits = p.has_limits ? &p.limits : NULL;
    req.n_files = o.n_files;
    req.files = p.file_ptrs;
    req.n_collect = o.n_collect;
    req.collect = (char **)o.collect;
    if (o.on_output) {
        rc = run_streamed(out, c, SC_METHOD("EvalStream"), &req.base, &o, err);
        goto out;
    }
    if (sc_unary(c, SC_METHOD("Eval"), &req.base, &safeeval__v1__eval_response__descriptor, &resp,
                 o.timeout_ms, o.cancel, err) != 0)
        goto out;
    rc = result_out(out, ((Safeeval__V1__EvalResponse *)resp)->result, err);
out:
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    run_parts_clear(&p);
    return rc;
}

int
safeeval_sandbox_execute_buffer(safeeval_result **out, safeeval_client *c, const char *id,
                                const char *filename, const void *data, size_t len,
                                const safeeval_eval_opts *opts_in, safeeval_error *err)
{
    safeeval_eval_opts o;
    SC_OPTS_COPY(o, opts_in);
    *out = NULL;
    if (check_id("execute", id, err) != 0)
        return -1;
    if (!filename || !*filename || strchr(filename, '/'))
        return sc_fail(err, SAFEEVAL_STATUS_INVALID_ARGUMENT,
                       "execute: the file name must be a plain base name");
    if (!data || !len)
        return sc_fail(err, SAFEEVAL_STATUS_INVALID_ARGUMENT, "execute: %s is empty", filename);
    int rc = -1;
    run_parts p;
    ProtobufCMessage *resp = NULL;
    if (run_parts_build(&p, &o, 1, err) != 0)
        goto out;
    Safeeval__V1__ExecuteFileRequest req = SAFEEVAL__V1__EXECUTE_FILE_REQUEST__INIT;
    req.sandbox_id = (char *)id;
    req.filename = (char *)filename;
    req.content.data = (uint8_t *)data;
    req.content.len = len;
    req.stdin.data = (uint8_t *)o.stdin_data;
    req.stdin.len = o.stdin_len;
    req.n_args = o.n_args;
    req.args = (char **)o.args;
    req.n_env = o.n_env;
    req.env = p.exec_env_ptrs;
    req.limits = p.has_limits ? &p.limits : NULL;
    req.n_files = o.n_files;
    req.files = p.file_ptrs;
    req.n_collect = o.n_collect;
    req.collect = (char **)o.collect;
    if (o.on_output) {
        rc = run_streamed(out, c, SC_METHOD("ExecuteFileStream"), &req.base, &o, err);
        goto out;
    }
    if (sc_unary(c, SC_METHOD("ExecuteFile"), &req.base,
                 &safeeval__v1__execute_file_response__descriptor, &resp, o.timeout_ms, o.cancel,
                 err) != 0)
        goto out;
    rc = result_out(out, ((Safeeval__V1__ExecuteFileResponse *)resp)->result, err);
out:
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    run_parts_clear(&p);
    return rc;
}

/* Reads a whole regular file, at most `cap` bytes. */
static int
read_file(char **out, size_t *len_out, const char *path, size_t cap, safeeval_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sc_fail(err, SAFEEVAL_STATUS_INVALID_ARGUMENT, "read %s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, size = 0;
    for (;;) {
        if (len == size) {
            if (size >= cap) {
                free(buf);
                close(fd);
                return sc_fail(err, SAFEEVAL_STATUS_INVALID_ARGUMENT,
                               "read %s: larger than %zu bytes", path, cap);
            }
            size_t nsize = size ? size * 2 : 65536;
            if (nsize > cap)
                nsize = cap;
            char *nbuf = realloc(buf, nsize);
            if (!nbuf) {
                free(buf);
                close(fd);
                return sc_fail(err, SAFEEVAL_STATUS_INTERNAL, "read %s: out of memory", path);
            }
            buf = nbuf;
            size = nsize;
        }
        ssize_t n = read(fd, buf + len, size - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return sc_fail(err, SAFEEVAL_STATUS_INVALID_ARGUMENT, "read %s: %s", path, strerror(e));
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    *out = buf;
    *len_out = len;
    return 0;
}

int
safeeval_sandbox_execute_file(safeeval_result **out, safeeval_client *c, const char *id,
                              const char *path, const safeeval_eval_opts *opts, safeeval_error *err)
{
    *out = NULL;
    if (!path || !*path)
        return sc_fail(err, SAFEEVAL_STATUS_INVALID_ARGUMENT, "execute: no path");
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (!*base)
        return sc_fail(err, SAFEEVAL_STATUS_INVALID_ARGUMENT, "execute: %s names no file", path);
    char *data = NULL;
    size_t len = 0;
    if (read_file(&data, &len, path, SAFEEVAL_MAX_LOCAL_FILE_BYTES, err) != 0)
        return -1;
    int rc = safeeval_sandbox_execute_buffer(out, c, id, base, data, len, opts, err);
    free(data);
    return rc;
}

/* ---- the server ---- */

void
safeeval_server_info_free(safeeval_server_info *info)
{
    if (!info)
        return;
    free(info->version);
    free(info->build_id);
    free(info->api_version);
    free(info->default_python_version);
    for (size_t i = 0; i < info->n_pythons; i++) {
        free(info->pythons[i].version);
        free(info->pythons[i].full_version);
        free(info->pythons[i].base_image);
    }
    free(info->pythons);
    free(info);
}

int
safeeval_server_info_get(safeeval_server_info **out, safeeval_client *c,
                         const safeeval_call_opts *opts_in, safeeval_error *err)
{
    safeeval_call_opts o;
    SC_OPTS_COPY(o, opts_in);
    *out = NULL;
    Safeeval__V1__GetServerInfoRequest req = SAFEEVAL__V1__GET_SERVER_INFO_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    if (sc_unary(c, SC_METHOD("GetServerInfo"), &req.base,
                 &safeeval__v1__get_server_info_response__descriptor, &resp, o.timeout_ms, o.cancel,
                 err) != 0)
        return -1;
    const Safeeval__V1__ServerInfo *src = ((Safeeval__V1__GetServerInfoResponse *)resp)->info;
    safeeval_server_info *info = calloc(1, sizeof(*info));
    int oom = !info;
    if (info && !src) {
        free(info);
        protobuf_c_message_free_unpacked(resp, NULL);
        return sc_fail(err, SAFEEVAL_STATUS_INTERNAL, "the reply holds no server info");
    }
    if (info) {
        info->version = dup_str(src->version);
        info->build_id = dup_str(src->build_id);
        info->api_version = dup_str(src->api_version);
        info->default_python_version = dup_str(src->default_python_version);
        oom = !info->version || !info->build_id || !info->api_version ||
              !info->default_python_version;
        limits_from_pb(&info->default_limits, src->default_limits);
        limits_from_pb(&info->max_limits, src->max_limits);
        info->max_concurrent_runs = src->max_concurrent_runs;
        info->max_sandboxes = src->max_sandboxes;
        if (!oom && src->n_pythons) {
            info->pythons = calloc(src->n_pythons, sizeof(*info->pythons));
            oom = !info->pythons;
        }
        for (size_t i = 0; !oom && i < src->n_pythons; i++) {
            const Safeeval__V1__PythonVersion *p = src->pythons[i];
            safeeval_python *d = &info->pythons[info->n_pythons++];
            d->version = dup_str(p ? p->version : "");
            d->full_version = dup_str(p ? p->full_version : "");
            d->base_image = dup_str(p ? p->base_image : "");
            oom = !d->version || !d->full_version || !d->base_image;
        }
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    if (oom) {
        safeeval_server_info_free(info);
        return sc_fail(err, SAFEEVAL_STATUS_INTERNAL, "out of memory");
    }
    *out = info;
    return 0;
}
