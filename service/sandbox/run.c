/* The daemon's side of the agent protocol (agent.proto), pure: the frames it
 * sends (a run, cancel, ack, sync) and what it makes of the events a worker
 * sends back. Everything that comes back crossed the jail boundary and is
 * hostile: ids, streams, lengths and enums are checked, output is kept under
 * the run's cap, and a violation condemns the worker. */
#include <assert.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "agent/frame.h"
#include "sandbox/internal.h"
#include "util/clock.h"

static void
limits_fill(Safeeval__V1__Limits *l, const sandbox_limits *lim)
{
    safeeval__v1__limits__init(l);
    l->wall_time_ms = lim->wall_time_ms;
    l->cpu_time_ms = lim->cpu_time_ms;
    l->memory_bytes = lim->memory_bytes;
    l->max_processes = lim->max_processes;
    l->max_output_bytes = lim->max_output_bytes;
    l->max_file_bytes = lim->max_file_bytes;
    l->max_collect_files = lim->max_collect_files;
    l->max_collect_bytes = lim->max_collect_bytes;
}

/* Packs req behind a frame header into a malloc'd buffer. */
static int
request_pack(uint8_t **out, size_t *out_len, const Safeeval__Agent__V1__Request *req, se_err *err)
{
    size_t n = safeeval__agent__v1__request__get_packed_size(req);
    if (n > FRAME_MAX)
        return se_err_set(err, SE_EXHAUSTED, "request: %zu bytes packed; at most %u", n, FRAME_MAX);
    uint8_t *buf = malloc(FRAME_HDR + n);
    if (!buf)
        return se_err_set(err, SE_INTERNAL, "out of memory");
    frame_put_header(buf, (uint32_t)n);
    size_t packed = safeeval__agent__v1__request__pack(req, buf + FRAME_HDR);
    if (packed != n) {
        free(buf);
        return se_err_set(err, SE_INTERNAL, "request: packed %zu of %zu bytes", packed, n);
    }
    *out = buf;
    *out_len = FRAME_HDR + n;
    return 0;
}

int
sandbox_run_frame(uint8_t **out, size_t *out_len, uint64_t id, const sandbox_run_input *in,
                  const sandbox_limits *lim, se_err *err)
{
    *out = NULL;
    *out_len = 0;
    Safeeval__Agent__V1__RunRequest rr = SAFEEVAL__AGENT__V1__RUN_REQUEST__INIT;
    Safeeval__V1__Limits l;
    limits_fill(&l, lim);
    rr.script.data = (uint8_t *)in->script;
    rr.script.len = in->script_len;
    rr.filename = (char *)in->filename;
    rr.stdin.data = (uint8_t *)in->stdin_data;
    rr.stdin.len = in->stdin_len;
    rr.n_args = in->n_args;
    rr.args = (char **)in->args;
    rr.limits = &l;
    rr.n_collect = in->n_collect;
    rr.collect = (char **)in->collect;
    /* Fresh File messages: what the client sent beyond path and content
     * (unknown fields protobuf-c keeps and would pack again) stays here. */
    Safeeval__V1__File *files = NULL, **filesp = NULL;
    Safeeval__Agent__V1__RunRequest__EnvEntry *env = NULL, **envp = NULL;
    int rc = 0;
    if (in->n_files) {
        files = calloc(in->n_files, sizeof(*files));
        filesp = calloc(in->n_files, sizeof(*filesp));
        if (!files || !filesp) {
            rc = se_err_set(err, SE_INTERNAL, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < in->n_files; i++) {
            safeeval__v1__file__init(&files[i]);
            files[i].path = in->files[i]->path;
            files[i].content = in->files[i]->content;
            filesp[i] = &files[i];
        }
    }
    rr.n_files = in->n_files;
    rr.files = filesp;
    if (in->n_env) {
        env = calloc(in->n_env, sizeof(*env));
        envp = calloc(in->n_env, sizeof(*envp));
        if (!env || !envp) {
            rc = se_err_set(err, SE_INTERNAL, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < in->n_env; i++) {
            safeeval__agent__v1__run_request__env_entry__init(&env[i]);
            env[i].key = (char *)in->env_keys[i];
            env[i].value = (char *)in->env_values[i];
            envp[i] = &env[i];
        }
    }
    rr.n_env = in->n_env;
    rr.env = envp;
    Safeeval__Agent__V1__Request req = SAFEEVAL__AGENT__V1__REQUEST__INIT;
    req.id = id;
    req.op_case = SAFEEVAL__AGENT__V1__REQUEST__OP_RUN;
    req.run = &rr;
    rc = request_pack(out, out_len, &req, err);
out:
    free(files);
    free(filesp);
    free(env);
    free(envp);
    return rc;
}

size_t
sandbox_ctl_frame(uint8_t buf[64], uint64_t id, enum sandbox_ctl op)
{
    Safeeval__Agent__V1__Request req = SAFEEVAL__AGENT__V1__REQUEST__INIT;
    req.id = id;
    switch (op) {
    case SANDBOX_CTL_CANCEL:
        req.op_case = SAFEEVAL__AGENT__V1__REQUEST__OP_CANCEL;
        req.cancel = 1;
        break;
    case SANDBOX_CTL_ACK:
        req.op_case = SAFEEVAL__AGENT__V1__REQUEST__OP_ACK;
        req.ack = 1;
        break;
    case SANDBOX_CTL_SYNC:
        req.op_case = SAFEEVAL__AGENT__V1__REQUEST__OP_SYNC;
        req.sync = 1;
        break;
    default:
        assert(!"sandbox_ctl_frame: unknown op");
    }
    /* Two varints and a bool: far under 64 bytes. */
    size_t n = safeeval__agent__v1__request__pack(&req, buf + FRAME_HDR);
    frame_put_header(buf, (uint32_t)n);
    return FRAME_HDR + n;
}

void
sandbox_run_acc_init(sandbox_run_acc *a, uint64_t id, const sandbox_limits *lim)
{
    memset(a, 0, sizeof(*a));
    a->id = id;
    a->cap = lim->max_output_bytes;
    a->max_files = lim->max_collect_files;
    a->max_bytes = lim->max_collect_bytes;
    se_buf_init(&a->out, (size_t)lim->max_output_bytes);
    se_buf_init(&a->err, (size_t)lim->max_output_bytes);
}

void
sandbox_run_acc_clear(sandbox_run_acc *a)
{
    se_buf_free(&a->out);
    se_buf_free(&a->err);
    for (size_t i = 0; i < a->n_files; i++)
        safeeval__v1__file__free_unpacked(a->files[i], NULL);
    free(a->files);
    if (a->result)
        safeeval__v1__exec_result__free_unpacked(a->result, NULL);
    memset(a, 0, sizeof(*a));
}

/* Copies an untrusted message into something fit for a log line. */
static void
sanitize(char *dst, size_t cap, const char *src)
{
    size_t o = 0;
    for (const char *p = src; p && *p && o + 1 < cap; p++) {
        unsigned char c = (unsigned char)*p;
        dst[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    dst[o] = '\0';
}

static bool
collect_matches(const sandbox_run_acc *a, const char *path)
{
    for (size_t i = 0; i < a->n_collect; i++)
        if (fnmatch(a->collect[i], path, FNM_PATHNAME) == 0)
            return true;
    return false;
}

/* A FileChunk: a file's start, or more of its bytes. Everything is checked
 * against what the run asked for: a path one of its patterns names, in
 * strictly increasing order, within its caps; the bytes a file announced
 * and no more. */
static int
file_feed(sandbox_run_acc *a, const Safeeval__Agent__V1__FileChunk *f, se_err *err)
{
    if (f->path && *f->path) {
        if (a->file_left)
            return se_err_set(err, SE_PROTOCOL, "agent: a file before the last one's bytes");
        if (agent_path_validate(f->path, NULL) < 0 || !collect_matches(a, f->path))
            return se_err_set(err, SE_PROTOCOL, "agent: a file collect did not ask for");
        if (a->n_files && strcmp(f->path, a->files[a->n_files - 1]->path) <= 0)
            return se_err_set(err, SE_PROTOCOL, "agent: files out of path order");
        if (a->n_files + 1 > a->max_files || f->size > a->max_bytes - a->files_bytes)
            return se_err_set(err, SE_PROTOCOL, "agent: files over the collect caps");
        Safeeval__V1__File **g = realloc(a->files, (a->n_files + 1) * sizeof(*g));
        if (!g)
            return se_err_set(err, SE_INTERNAL, "out of memory");
        a->files = g;
        Safeeval__V1__File *nf = malloc(sizeof(*nf));
        if (!nf)
            return se_err_set(err, SE_INTERNAL, "out of memory");
        safeeval__v1__file__init(nf);
        nf->path = strdup(f->path);
        /* The whole file at once: its size is within the run's cap. */
        nf->content.data = f->size ? malloc((size_t)f->size) : NULL;
        if (!nf->path || (f->size && !nf->content.data)) {
            free(nf->path);
            free(nf->content.data);
            free(nf);
            return se_err_set(err, SE_INTERNAL, "out of memory");
        }
        a->files[a->n_files++] = nf;
        a->files_bytes += f->size;
        a->file_left = f->size;
    } else if (!a->n_files) {
        return se_err_set(err, SE_PROTOCOL, "agent: file bytes before a file");
    }
    if (f->data.len > a->file_left)
        return se_err_set(err, SE_PROTOCOL, "agent: more bytes than the file announced");
    Safeeval__V1__File *cur = a->files[a->n_files - 1];
    if (f->data.len)
        memcpy(cur->content.data + cur->content.len, f->data.data, f->data.len);
    cur->content.len += f->data.len;
    a->file_left -= f->data.len;
    return 0;
}

/* The Done's result, checked against what the run's events carried. */
static int
result_check(const sandbox_run_acc *a, const Safeeval__V1__ExecResult *r, se_err *err)
{
    if (r->reason <= SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_UNSPECIFIED ||
        r->reason > SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_FILE_SIZE_LIMIT)
        return se_err_set(err, SE_PROTOCOL, "agent: exit reason %d out of range", (int)r->reason);
    if (r->stdout.len || r->stderr.len)
        return se_err_set(err, SE_PROTOCOL, "agent: output inside the result");
    if (r->stdout_bytes < a->out_got || r->stderr_bytes < a->err_got)
        return se_err_set(err, SE_PROTOCOL, "agent: output totals below the output sent");
    /* Everything under the cap is sent, so a total the events do not match
     * means output was lost or invented. */
    uint64_t want_out = r->stdout_bytes < a->cap ? r->stdout_bytes : a->cap;
    uint64_t want_err = r->stderr_bytes < a->cap ? r->stderr_bytes : a->cap;
    if (a->out_got != want_out || a->err_got != want_err)
        return se_err_set(err, SE_PROTOCOL,
                          "agent: output sent (%" PRIu64 "/%" PRIu64
                          " bytes) does not match the totals (%" PRIu64 "/%" PRIu64 ")",
                          a->out_got, a->err_got, r->stdout_bytes, r->stderr_bytes);
    if (r->n_files)
        return se_err_set(err, SE_PROTOCOL, "agent: files inside the result");
    if (r->signal < 0 || r->signal > 64)
        return se_err_set(err, SE_PROTOCOL, "agent: signal %d out of range", r->signal);
    return 0;
}

int
sandbox_run_feed(sandbox_run_acc *a, const uint8_t *p, size_t n, se_err *err)
{
    if (a->done)
        return se_err_set(err, SE_PROTOCOL, "agent: an event after the run's end");
    Safeeval__Agent__V1__Event *ev = safeeval__agent__v1__event__unpack(NULL, n, p);
    if (!ev)
        return se_err_set(err, SE_PROTOCOL, "agent: malformed event");
    int rc = 0;
    if (ev->id != a->id) {
        rc = se_err_set(err, SE_PROTOCOL, "agent: event of run %" PRIu64 " during run %" PRIu64,
                        ev->id, a->id);
        goto out;
    }
    switch (ev->ev_case) {
    case SAFEEVAL__AGENT__V1__EVENT__EV_OUTPUT: {
        const Safeeval__Agent__V1__Output *o = ev->output;
        uint64_t *got = o->stream == 1 ? &a->out_got : o->stream == 2 ? &a->err_got : NULL;
        if (!got) {
            rc = se_err_set(err, SE_PROTOCOL, "agent: output on stream %d", o->stream);
            goto out;
        }
        if (o->data.len > a->cap - *got) {
            rc = se_err_set(err, SE_PROTOCOL, "agent: output past max_output_bytes");
            goto out;
        }
        *got += o->data.len;
        if (a->sink) {
            if (a->sink_failed || o->data.len == 0)
                break;
            int64_t t0 = clock_mono_ms();
            if (a->sink(a->sink_ud, o->stream, o->data.data, o->data.len, &a->sink_err) < 0)
                a->sink_failed = true;
            a->sink_ms += clock_mono_ms() - t0;
            break;
        }
        se_buf *b = o->stream == 1 ? &a->out : &a->err;
        if (se_buf_append(b, o->data.data, o->data.len) < 0) {
            *got -= o->data.len;
            rc = se_err_set(err, SE_INTERNAL, "out of memory");
            goto out;
        }
        break;
    }
    case SAFEEVAL__AGENT__V1__EVENT__EV_FILE:
        rc = file_feed(a, ev->file, err);
        if (rc < 0)
            goto out;
        break;
    case SAFEEVAL__AGENT__V1__EVENT__EV_DONE: {
        Safeeval__Agent__V1__RunResponse *d = ev->done;
        a->done = true;
        a->cancelled = d->cancelled;
        a->clean = d->clean;
        rc = 1;
        if (d->error && *d->error) {
            sanitize(a->agent_error, sizeof(a->agent_error), d->error);
            break;
        }
        if (!d->result) {
            rc = se_err_set(err, SE_PROTOCOL, "agent: a Done without result or error");
            goto out;
        }
        int c = result_check(a, d->result, err);
        if (c < 0) {
            rc = c;
            goto out;
        }
        /* protobuf-c allocates every submessage separately with the default
         * allocator, so the result can be handed over whole. */
        a->result = d->result;
        d->result = NULL;
        if (a->file_left) {
            /* The last file was cut (the run was killed while its files
             * were sent): it is left out, and the result says so. */
            safeeval__v1__file__free_unpacked(a->files[--a->n_files], NULL);
            a->file_left = 0;
            a->result->files_truncated = true;
        }
        break;
    }
    default:
        rc = se_err_set(err, SE_PROTOCOL, "agent: unexpected event %d during a run",
                        (int)ev->ev_case);
    }
out:
    safeeval__agent__v1__event__free_unpacked(ev, NULL);
    return rc;
}

Safeeval__V1__ExecResult *
sandbox_run_take(sandbox_run_acc *a)
{
    Safeeval__V1__ExecResult *r = a->result;
    if (!r)
        return NULL;
    size_t len = 0;
    if (a->out.len) {
        r->stdout.data = se_buf_steal(&a->out, &len);
        r->stdout.len = r->stdout.data ? len : 0;
    }
    if (a->err.len) {
        r->stderr.data = se_buf_steal(&a->err, &len);
        r->stderr.len = r->stderr.data ? len : 0;
    }
    r->files = a->files;
    r->n_files = a->n_files;
    a->files = NULL;
    a->n_files = 0;
    /* Truncation follows from the totals, whatever the agent says: kept is
     * what the events carried (here, or to a stream's sink). */
    r->stdout_truncated = r->stdout_bytes > a->out_got;
    r->stderr_truncated = r->stderr_bytes > a->err_got;
    a->result = NULL;
    return r;
}

int
sandbox_state_parse(Safeeval__Agent__V1__State **out, uint64_t *done_id, const uint8_t *p, size_t n,
                    se_err *err)
{
    *out = NULL;
    *done_id = 0;
    Safeeval__Agent__V1__Event *ev = safeeval__agent__v1__event__unpack(NULL, n, p);
    if (!ev)
        return se_err_set(err, SE_PROTOCOL, "agent: malformed event");
    int rc = 0;
    if (ev->ev_case == SAFEEVAL__AGENT__V1__EVENT__EV_STATE) {
        *out = ev->state;
        ev->state = NULL;
    } else if (ev->ev_case == SAFEEVAL__AGENT__V1__EVENT__EV_DONE ||
               ev->ev_case == SAFEEVAL__AGENT__V1__EVENT__EV_OUTPUT) {
        /* What a run that was going on when the daemon attached still says. */
        *done_id = ev->ev_case == SAFEEVAL__AGENT__V1__EVENT__EV_DONE ? ev->id : 0;
        if (ev->id == 0)
            rc = se_err_set(err, SE_PROTOCOL, "agent: a run event without an id");
    } else {
        rc = se_err_set(err, SE_PROTOCOL, "agent: unexpected event %d", (int)ev->ev_case);
    }
    safeeval__agent__v1__event__free_unpacked(ev, NULL);
    return rc;
}
