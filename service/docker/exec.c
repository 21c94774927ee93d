/* Exec: create the exec, start it on a hijacked connection (the HTTP request
 * is sent by hand over a CURLOPT_CONNECT_ONLY connection, so the same code
 * works over the unix socket and tcp/TLS), stream stdin in while the
 * multiplexed output streams out (one poll() loop for both directions, so a
 * big stdin and a big output cannot deadlock), then read the exit code. */
#include <errno.h>
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

#define EXEC_HEAD_CAP (16u << 10)    /* response head of the hijack */
#define EXEC_ERRBODY_CAP (64u << 10) /* error body when the engine refuses */
#define EXEC_POLL_MS 50

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

typedef struct hijack {
    CURL *h;
    int fd;
    const se_cancel *cancel;
} hijack;

/* Waits until fd is ready for events (or EXEC_POLL_MS passes), checking the
 * cancel token. Returns poll's revents (0 on timeout) or negative on cancel. */
static int
hijack_wait(hijack *hj, short events, se_err *err)
{
    int rc = se_cancel_check(hj->cancel, err);
    if (rc < 0)
        return rc;
    struct pollfd p = {.fd = hj->fd, .events = events};
    int n = poll(&p, 1, EXEC_POLL_MS);
    if (n < 0 && errno != EINTR)
        return se_err_errno(err, SE_INTERNAL, "exec: poll");
    return n > 0 ? p.revents : 0;
}

static int
hijack_send_all(hijack *hj, const char *data, size_t len, se_err *err)
{
    while (len) {
        size_t n = 0;
        CURLcode cr = curl_easy_send(hj->h, data, len, &n);
        if (cr == CURLE_AGAIN) {
            int r = hijack_wait(hj, POLLOUT, err);
            if (r < 0)
                return r;
            continue;
        }
        if (cr != CURLE_OK)
            return se_err_set(err, SE_UNAVAILABLE, "exec start: send: %s", curl_easy_strerror(cr));
        data += n;
        len -= n;
    }
    return 0;
}

/* Reads until "\r\n\r\n" and sets *head_len to the head's length; whatever
 * follows the head (the start of the stream) stays in head after it. */
static int
hijack_read_head(hijack *hj, se_buf *head, size_t *head_len, se_err *err)
{
    for (;;) {
        char tmp[4096];
        size_t n = 0;
        CURLcode cr = curl_easy_recv(hj->h, tmp, sizeof(tmp), &n);
        if (cr == CURLE_AGAIN) {
            int r = hijack_wait(hj, POLLIN, err);
            if (r < 0)
                return r;
            continue;
        }
        if (cr != CURLE_OK)
            return se_err_set(err, SE_UNAVAILABLE, "exec start: recv: %s", curl_easy_strerror(cr));
        if (n == 0)
            return se_err_set(err, SE_PROTOCOL, "exec start: connection closed before the answer");
        if (se_buf_append(head, tmp, n) < 0)
            return se_err_set(err, SE_PROTOCOL, "exec start: answer head over %u bytes",
                              EXEC_HEAD_CAP);
        const char *end = memmem(head->data, head->len, "\r\n\r\n", 4);
        if (end) {
            *head_len = (size_t)(end - (const char *)head->data) + 4;
            return 0;
        }
    }
}

/* The engine refused the start: read the (small) error body that follows the
 * head and map the status. */
static int
hijack_refused(hijack *hj, long status, const uint8_t *rest, size_t rest_len, se_err *err)
{
    docker_resp resp = {.status = status};
    se_buf_init(&resp.body, EXEC_ERRBODY_CAP);
    se_buf_append_capped(&resp.body, rest, rest_len);
    int64_t until = clock_mono_ms() + 1000;
    while (resp.body.len < resp.body.cap && clock_mono_ms() < until) {
        char tmp[4096];
        size_t n = 0;
        CURLcode cr = curl_easy_recv(hj->h, tmp, sizeof(tmp), &n);
        if (cr == CURLE_AGAIN) {
            /* A JSON error body is complete once it parses. */
            cJSON *j = cJSON_ParseWithLength((const char *)resp.body.data, resp.body.len);
            cJSON_Delete(j);
            if (j)
                break;
            if (hijack_wait(hj, POLLIN, err) < 0)
                break;
            continue;
        }
        if (cr != CURLE_OK || n == 0)
            break;
        se_buf_append_capped(&resp.body, tmp, n);
    }
    int rc = docker_http_fail(&resp, err, "exec start");
    se_buf_free(&resp.body);
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

static int
hijack_feed(demux *d, sink *s, const uint8_t *data, size_t len, se_err *err)
{
    if (demux_feed(d, data, len, on_frame, s) != 0)
        return se_err_set(err, SE_PROTOCOL,
                          "exec: the engine's output is not a multiplexed "
                          "stream");
    return 0;
}

/* Streams stdin in and output out until the engine closes the connection. */
static int
hijack_pump(hijack *hj, const docker_exec_opts *o, demux *d, sink *s, se_err *err)
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
            CURLcode cr = curl_easy_send(hj->h, in, chunk, &n);
            if (cr == CURLE_OK) {
                in += n;
                in_left -= n;
                progress = n > 0;
            } else if (cr != CURLE_AGAIN) {
                /* The process may exit without reading all of stdin; that
                 * is not an error: stop sending and collect the output. */
                in_left = 0;
            }
        }
        size_t n = 0;
        CURLcode cr = curl_easy_recv(hj->h, tmp, sizeof(tmp), &n);
        if (cr == CURLE_OK) {
            if (n == 0)
                return 0; /* the engine closed: the process is done */
            int r = hijack_feed(d, s, tmp, n, err);
            if (r < 0)
                return r;
            progress = true;
        } else if (cr != CURLE_AGAIN) {
            return se_err_set(err, SE_UNAVAILABLE, "exec: recv: %s", curl_easy_strerror(cr));
        }
        if (progress) {
            int rc = se_cancel_check(hj->cancel, err);
            if (rc < 0)
                return rc;
            continue;
        }
        int r = hijack_wait(hj, (short)(POLLIN | (in_left ? POLLOUT : 0)), err);
        if (r < 0)
            return r;
    }
}

static int
exec_start(docker_client *c, const char *exec_id, const docker_exec_opts *o, sink *s,
           const se_cancel *cancel, se_err *err)
{
    char *path = NULL;
    char *url = NULL;
    char *body = NULL;
    char *reqtxt = NULL;
    cJSON *b = NULL;
    se_buf head;
    hijack hj = {.fd = -1, .cancel = cancel};
    demux d;
    int rc;

    se_buf_init(&head, EXEC_HEAD_CAP);
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
    /* Host: whatever follows "scheme://" in the base URL. */
    const char *host = strstr(c->base_url, "://") + 3;
    if (asprintf(&reqtxt,
                 "POST /v%s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: safeevald\r\n"
                 "Content-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                 "Content-Length: %zu\r\n\r\n%s",
                 c->api_version, path, host, strlen(body), body) < 0) {
        reqtxt = NULL;
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto out;
    }
    url = docker_url(c, "/", NULL, true);
    hj.h = docker_curl_new(c);
    if (!url || !hj.h) {
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto out;
    }
    curl_easy_setopt(hj.h, CURLOPT_URL, url);
    curl_easy_setopt(hj.h, CURLOPT_CONNECT_ONLY, 1L);
    CURLcode cr = curl_easy_perform(hj.h);
    if (cr != CURLE_OK) {
        rc = se_err_set(err, SE_UNAVAILABLE, "docker engine at %s does not answer: %s", c->host,
                        curl_easy_strerror(cr));
        goto out;
    }
    curl_socket_t sock = CURL_SOCKET_BAD;
    if (curl_easy_getinfo(hj.h, CURLINFO_ACTIVESOCKET, &sock) != CURLE_OK ||
        sock == CURL_SOCKET_BAD) {
        rc = se_err_set(err, SE_INTERNAL, "exec start: no socket from libcurl");
        goto out;
    }
    hj.fd = sock;
    rc = hijack_send_all(&hj, reqtxt, strlen(reqtxt), err);
    if (rc < 0)
        goto out;
    size_t head_len = 0;
    rc = hijack_read_head(&hj, &head, &head_len, err);
    if (rc < 0)
        goto out;
    long status = 0;
    if (sscanf((const char *)head.data, "HTTP/1.%*1[01] %3ld", &status) != 1) {
        rc = se_err_set(err, SE_PROTOCOL, "exec start: not an HTTP answer");
        goto out;
    }
    if (status != 101 && status != 200) {
        rc = hijack_refused(&hj, status, head.data + head_len, head.len - head_len, err);
        goto out;
    }
    rc = hijack_feed(&d, s, head.data + head_len, head.len - head_len, err);
    if (rc < 0)
        goto out;
    rc = hijack_pump(&hj, o, &d, s, err);
    if (rc < 0)
        goto out;
    if (!demux_at_boundary(&d))
        rc = se_err_set(err, SE_PROTOCOL, "exec: the output stream ended inside a frame");
out:
    if (hj.h)
        curl_easy_cleanup(hj.h); /* closes the connection, also on cancel */
    se_buf_free(&head);
    cJSON_Delete(b);
    free(reqtxt);
    free(body);
    free(url);
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
