/* Exec: create the exec, start it on a hijacked connection (hijack.c),
 * stream stdin in while the multiplexed output streams out (one poll() loop
 * for both directions, so a big stdin and a big output cannot deadlock), then
 * read the exit code. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "docker/demux.h"
#include "docker/internal.h"
#include "docker/parse.h"
#include "util/log.h"

#define EXEC_POLL_MS 50 /* how often cancel is checked while the process runs */

static int
add_strings(cJSON *obj, const char *key, const char *const *v)
{
    cJSON *arr = cJSON_AddArrayToObject(obj, key);
    if (!arr)
        return -1;
    for (size_t i = 0; v && v[i]; i++) {
        cJSON *s = cJSON_CreateString(v[i]);
        if (!s || !cJSON_AddItemToArray(arr, s)) {
            cJSON_Delete(s);
            return -1;
        }
    }
    return 0;
}

static int
exec_create(docker_client *c, const char *cid, const docker_exec_opts *o, char **out_id,
            se_err *err)
{
    char *path = NULL;
    char *json = NULL;
    docker_resp resp = {0};
    cJSON *b = cJSON_CreateObject();
    int rc = docker_path(&path, "/containers/", cid, "/exec", err);
    if (rc < 0)
        goto out;
    if (!b || !cJSON_AddTrueToObject(b, "AttachStdin") ||
        !cJSON_AddTrueToObject(b, "AttachStdout") || !cJSON_AddTrueToObject(b, "AttachStderr") ||
        !cJSON_AddFalseToObject(b, "Tty") || add_strings(b, "Cmd", o->argv) < 0 ||
        (o->env && add_strings(b, "Env", o->env) < 0) ||
        (o->user && !cJSON_AddStringToObject(b, "User", o->user)) ||
        !(json = cJSON_PrintUnformatted(b))) {
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto out;
    }
    docker_req req = {
        .method = "POST", .path = path, .body = json, .body_len = strlen(json), .cap = 1 << 20};
    rc = docker_http(c, &req, &resp, err);
    if (rc < 0)
        goto out;
    if (resp.status != 201 && resp.status != 200) {
        rc = docker_http_fail(&resp, err, "exec create");
        goto out;
    }
    rc = docker_create_id_parse((const char *)resp.body.data, resp.body.len, out_id, err);
out:
    se_buf_free(&resp.body);
    cJSON_Delete(b);
    free(json);
    free(path);
    return rc;
}

typedef struct sink {
    se_buf out;
    se_buf err;
    uint64_t out_total;
    uint64_t err_total;
} sink;

static int
on_frame(int stream, const uint8_t *data, size_t len, void *ud)
{
    sink *s = ud;
    if (stream == DEMUX_STDOUT) {
        s->out_total += len;
        se_buf_append_capped(&s->out, data, len);
    } else if (stream == DEMUX_STDERR) {
        s->err_total += len;
        se_buf_append_capped(&s->err, data, len);
    }
    return 0;
}

/* Streams stdin in and output out until the engine closes the connection. */
static int
exec_pump(docker_hijack *hj, const docker_exec_opts *o, demux *d, sink *s, const se_cancel *cancel,
          se_err *err)
{
    const uint8_t *in = o->stdin_data;
    size_t in_left = o->stdin_data ? o->stdin_len : 0;
    bool wr_closed = false;
    uint8_t tmp[65536];

    for (;;) {
        bool progress = false;
        if (!wr_closed && in_left == 0) {
            /* EOF for the process's stdin: the engine closes its stdin when
             * our write side closes. */
            shutdown(hj->fd, SHUT_WR);
            wr_closed = true;
        }
        if (in_left) {
            size_t n = 0;
            size_t chunk = in_left < 65536 ? in_left : 65536;
            if (docker_hijack_send(hj, in, chunk, &n, NULL) < 0) {
                /* The process may exit without reading all of stdin; that
                 * is not an error: stop sending and collect the output. */
                in_left = 0;
            } else {
                in += n;
                in_left -= n;
                progress = n > 0;
            }
        }
        size_t n = 0;
        bool eof = false;
        int rc = docker_hijack_recv(hj, tmp, sizeof(tmp), &n, &eof, err);
        if (rc < 0)
            return rc;
        if (eof)
            return 0; /* the engine closed: the process is done */
        if (n) {
            if (demux_feed(d, tmp, n, on_frame, s) != 0)
                return se_err_set(err, SE_PROTOCOL,
                                  "the engine's output is not a multiplexed stream");
            progress = true;
        }
        rc = se_cancel_check(cancel, err);
        if (rc < 0)
            return rc;
        if (progress)
            continue;
        rc = docker_hijack_wait(hj, (short)(POLLIN | (in_left ? POLLOUT : 0)), EXEC_POLL_MS, err);
        if (rc < 0)
            return rc;
    }
}

static int
exec_start(docker_client *c, const char *exec_id, const docker_exec_opts *o, sink *s,
           const se_cancel *cancel, se_err *err)
{
    char *path = NULL;
    char *body = NULL;
    cJSON *b = NULL;
    docker_hijack hj = {.fd = -1};
    demux d;
    int rc;

    demux_init(&d);
    rc = docker_path(&path, "/exec/", exec_id, "/start", err);
    if (rc < 0)
        goto out;
    b = cJSON_CreateObject();
    if (!b || !cJSON_AddFalseToObject(b, "Detach") || !cJSON_AddFalseToObject(b, "Tty") ||
        !(body = cJSON_PrintUnformatted(b))) {
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto out;
    }
    rc = docker_hijack_open(&hj, c, path, NULL, body, cancel, "exec start", err);
    if (rc < 0)
        goto out;
    rc = exec_pump(&hj, o, &d, s, cancel, err);
    if (rc < 0) {
        se_err_prefix(err, "exec");
        goto out;
    }
    if (!demux_at_boundary(&d))
        rc = se_err_set(err, SE_PROTOCOL, "exec: the output stream ended inside a frame");
out:
    docker_hijack_close(&hj); /* closes the connection, also on cancel */
    cJSON_Delete(b);
    free(body);
    free(path);
    return rc;
}

/* The process has ended once the stream closed, but the engine may take a
 * moment to record it: poll briefly until Running is false. */
static int
exec_exit_code(docker_client *c, const char *exec_id, int *exit_code, se_err *err)
{
    char *path = NULL;
    int rc = docker_path(&path, "/exec/", exec_id, "/json", err);
    if (rc < 0)
        return rc;
    long sleep_us = 500;
    int64_t until = clock_mono_ms() + 5000;
    for (;;) {
        docker_resp resp;
        docker_req req = {.method = "GET", .path = path, .cap = 1 << 20};
        bool running = false;
        rc = docker_http(c, &req, &resp, err);
        if (rc == 0 && resp.status != 200)
            rc = docker_http_fail(&resp, err, "exec inspect");
        if (rc == 0)
            rc = docker_exec_inspect_parse((const char *)resp.body.data, resp.body.len, &running,
                                           exit_code, err);
        se_buf_free(&resp.body);
        if (rc < 0 || !running)
            break;
        if (clock_mono_ms() >= until) {
            *exit_code = -1;
            break;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = sleep_us * 1000};
        nanosleep(&ts, NULL);
        if (sleep_us < 50000)
            sleep_us *= 2;
    }
    free(path);
    return rc;
}

int
docker_exec_run(docker_client *c, const char *container_id, const docker_exec_opts *opts,
                docker_exec_result *out, const se_cancel *cancel, se_err *err)
{
    char *exec_id = NULL;
    sink s = {0};
    int rc;

    memset(out, 0, sizeof(*out));
    out->exit_code = -1;
    if (!opts || !opts->argv || !opts->argv[0])
        return se_err_set(err, SE_INVALID, "exec: empty argv");
    se_buf_init(&s.out, opts->stdout_cap);
    se_buf_init(&s.err, opts->stderr_cap);

    rc = se_cancel_check(cancel, err);
    if (rc < 0)
        goto out;
    rc = exec_create(c, container_id, opts, &exec_id, err);
    if (rc < 0) {
        se_err_prefix(err, "exec in %.12s", container_id);
        goto out;
    }
    rc = exec_start(c, exec_id, opts, &s, cancel, err);
    if (rc < 0) {
        se_err_prefix(err, "exec in %.12s", container_id);
        goto out;
    }
    rc = exec_exit_code(c, exec_id, &out->exit_code, err);
    if (rc < 0) {
        se_err_prefix(err, "exec in %.12s", container_id);
        goto out;
    }
    out->out = se_buf_steal(&s.out, &out->out_len);
    out->errbuf = se_buf_steal(&s.err, &out->err_len);
    if (!out->out || !out->errbuf) {
        docker_exec_result_free(out);
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto out;
    }
    out->out[out->out_len] = '\0';
    out->errbuf[out->err_len] = '\0';
    out->out_total = s.out_total;
    out->err_total = s.err_total;
out:
    se_buf_free(&s.out);
    se_buf_free(&s.err);
    free(exec_id);
    return rc;
}

void
docker_exec_result_free(docker_exec_result *r)
{
    if (!r)
        return;
    free(r->out);
    free(r->errbuf);
    r->out = NULL;
    r->errbuf = NULL;
    r->out_len = r->err_len = 0;
}
