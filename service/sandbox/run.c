/* One run: RunRequest -> frame -> one Engine API exec of the agent ->
 * RunResponse frame -> ExecResult. The agent's answer crossed the jail
 * boundary and is treated as hostile: every length and enum is checked. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "agent/frame.h"
#include "sandbox/internal.h"
#include "util/log.h"

/* Bytes of the agent's error message we pass on. */
#define AGENT_ERROR_MAX 512

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
}

int
sandbox_run_frame(uint8_t **out, size_t *out_len, const sandbox_run_input *in,
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
    rr.n_files = in->n_files;
    rr.files = (Safeeval__V1__File **)in->files;
    Safeeval__Agent__V1__RunRequest__EnvEntry *env = NULL, **envp = NULL;
    if (in->n_env) {
        env = calloc(in->n_env, sizeof(*env));
        envp = calloc(in->n_env, sizeof(*envp));
        if (!env || !envp) {
            free(env);
            free(envp);
            return se_err_set(err, SE_INTERNAL, "out of memory");
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
    int rc = 0;
    size_t n = safeeval__agent__v1__run_request__get_packed_size(&rr);
    if (n > FRAME_MAX) {
        rc = se_err_set(err, SE_EXHAUSTED, "request: %zu bytes packed; at most %u", n, FRAME_MAX);
        goto out;
    }
    uint8_t *buf = malloc(FRAME_HDR + n);
    if (!buf) {
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto out;
    }
    frame_put_header(buf, (uint32_t)n);
    size_t packed = safeeval__agent__v1__run_request__pack(&rr, buf + FRAME_HDR);
    if (packed != n) {
        free(buf);
        rc = se_err_set(err, SE_INTERNAL, "request: packed %zu of %zu bytes", packed, n);
        goto out;
    }
    *out = buf;
    *out_len = FRAME_HDR + n;
out:
    free(env);
    free(envp);
    return rc;
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

int
sandbox_run_parse(Safeeval__V1__ExecResult **out, const uint8_t *buf, size_t len,
                  const sandbox_limits *lim, se_err *err)
{
    *out = NULL;
    const uint8_t *payload;
    uint32_t plen;
    size_t consumed;
    int fr = frame_parse(buf, len, FRAME_MAX, &payload, &plen, &consumed);
    if (fr < 0)
        return se_err_set(err, SE_INTERNAL, "agent: response frame over the cap");
    if (fr == 0)
        return se_err_set(err, SE_INTERNAL, "agent: no complete response frame (%zu bytes)", len);
    if (consumed != len)
        return se_err_set(err, SE_INTERNAL, "agent: %zu stray bytes after the response",
                          len - consumed);
    Safeeval__Agent__V1__RunResponse *resp =
        safeeval__agent__v1__run_response__unpack(NULL, plen, payload);
    if (!resp)
        return se_err_set(err, SE_INTERNAL, "agent: malformed response");
    int rc = 0;
    if (resp->error && *resp->error) {
        char msg[AGENT_ERROR_MAX];
        sanitize(msg, sizeof(msg), resp->error);
        rc = se_err_set(err, SE_INTERNAL, "agent: %s", msg);
        goto out;
    }
    Safeeval__V1__ExecResult *r = resp->result;
    if (!r) {
        rc = se_err_set(err, SE_INTERNAL, "agent: response without a result");
        goto out;
    }
    if (r->reason <= SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_UNSPECIFIED ||
        r->reason > SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_FILE_SIZE_LIMIT) {
        rc = se_err_set(err, SE_INTERNAL, "agent: exit reason %d out of range", (int)r->reason);
        goto out;
    }
    if (r->stdout.len > lim->max_output_bytes || r->stderr.len > lim->max_output_bytes) {
        rc = se_err_set(err, SE_INTERNAL, "agent: output longer than max_output_bytes");
        goto out;
    }
    if (r->stdout_bytes < r->stdout.len || r->stderr_bytes < r->stderr.len) {
        rc = se_err_set(err, SE_INTERNAL, "agent: output totals below the output kept");
        goto out;
    }
    if (r->signal < 0 || r->signal > 64) {
        rc = se_err_set(err, SE_INTERNAL, "agent: signal %d out of range", r->signal);
        goto out;
    }
    /* Truncation flags follow from the totals, whatever the agent says. */
    r->stdout_truncated = r->stdout_bytes > r->stdout.len;
    r->stderr_truncated = r->stderr_bytes > r->stderr.len;
    /* protobuf-c allocates every submessage separately with the default
     * allocator, so the result can be handed over whole. */
    *out = r;
    resp->result = NULL;
out:
    safeeval__agent__v1__run_response__free_unpacked(resp, NULL);
    return rc;
}

int
sandbox_run_exec(docker_client *dc, const char *container_id, const sandbox_run_input *in,
                 const sandbox_limits *lim, Safeeval__V1__ExecResult **out, const se_cancel *cancel,
                 se_err *err)
{
    *out = NULL;
    uint8_t *frame = NULL;
    size_t frame_len = 0;
    int rc = sandbox_run_frame(&frame, &frame_len, in, lim, err);
    if (rc < 0)
        return rc;
    static const char *const argv[] = {SANDBOX_AGENT_PATH, "--run", NULL};
    docker_exec_opts eo = {
        .argv = argv,
        .env = NULL,
        .user = NULL,
        .stdin_data = frame,
        .stdin_len = frame_len,
        .stdout_cap = FRAME_HDR + (size_t)FRAME_MAX,
        .stderr_cap = SANDBOX_STDERR_CAP,
    };
    docker_exec_result xr;
    memset(&xr, 0, sizeof(xr));
    rc = docker_exec_run(dc, container_id, &eo, &xr, cancel, err);
    free(frame);
    if (rc < 0)
        goto out;
    if (xr.err_len > 0)
        log_debug("agent stderr (exit %d, %" PRIu64 " bytes): %.*s", xr.exit_code, xr.err_total,
                  (int)(xr.err_len > 4096 ? 4096 : xr.err_len), (const char *)xr.errbuf);
    if (xr.out_total > xr.out_len) {
        rc = se_err_set(err, SE_INTERNAL, "agent: response over %zu bytes", eo.stdout_cap);
        goto out;
    }
    rc = sandbox_run_parse(out, xr.out, xr.out_len, lim, err);
    if (rc < 0 && xr.exit_code != 0)
        se_err_prefix(err, "agent exited %d", xr.exit_code);
out:
    docker_exec_result_free(&xr);
    return rc;
}
