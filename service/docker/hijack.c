/* The hijacked connection of exec start and attach (see internal.h): libcurl
 * connects (unix socket, or tcp with TLS) with CURLOPT_CONNECT_ONLY, the
 * request is written by hand with "Connection: Upgrade", the answer's head is
 * read with a cap, and from then on the connection is a raw byte stream. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker/internal.h"
#include "docker/parse.h"
#include "util/clock.h"
#include "util/metrics.h"

#define HIJACK_POLL_MS 50           /* how often cancel is checked while waiting */
#define HIJACK_ERRBODY_WAIT_MS 1000 /* a refusal's error body follows at once */

int
docker_hijack_wait(docker_hijack *hj, short events, int timeout_ms, se_err *err)
{
    struct pollfd p = {.fd = hj->fd, .events = events};
    int n = poll(&p, 1, timeout_ms < 0 ? -1 : timeout_ms);
    if (n < 0 && errno != EINTR)
        return se_err_errno(err, SE_INTERNAL, "docker stream: poll");
    return n > 0 ? p.revents : 0;
}

/* Waits for events until deadline, checking cancel every HIJACK_POLL_MS.
 * 0 when ready (or a slice passed), negative on deadline or cancel. */
static int
hijack_wait_until(docker_hijack *hj, short events, int64_t deadline, const se_cancel *cancel,
                  const char *what, se_err *err)
{
    int rc = se_cancel_check(cancel, err);
    if (rc < 0)
        return rc;
    int64_t left = deadline - clock_mono_ms();
    if (left <= 0)
        return se_err_set(err, SE_UNAVAILABLE, "%s: the engine did not answer in time", what);
    rc = docker_hijack_wait(hj, events, left < HIJACK_POLL_MS ? (int)left : HIJACK_POLL_MS, err);
    return rc < 0 ? rc : 0;
}

int
docker_hijack_send(docker_hijack *hj, const void *data, size_t len, size_t *n, se_err *err)
{
    *n = 0;
    CURLcode cr = curl_easy_send(hj->h, data, len, n);
    if (cr == CURLE_AGAIN) {
        *n = 0;
        return 0;
    }
    if (cr != CURLE_OK)
        return se_err_set(err, SE_UNAVAILABLE, "docker stream: send: %s", curl_easy_strerror(cr));
    return 0;
}

int
docker_hijack_recv(docker_hijack *hj, void *buf, size_t cap, size_t *n, bool *eof, se_err *err)
{
    *n = 0;
    *eof = false;
    if (cap == 0)
        return 0;
    if (hj->early_off < hj->early_len) {
        size_t take = hj->early_len - hj->early_off;
        if (take > cap)
            take = cap;
        memcpy(buf, hj->early + hj->early_off, take);
        hj->early_off += take;
        *n = take;
        if (hj->early_off == hj->early_len) {
            free(hj->early);
            hj->early = NULL;
            hj->early_len = hj->early_off = 0;
        }
        return 0;
    }
    CURLcode cr = curl_easy_recv(hj->h, buf, cap, n);
    if (cr == CURLE_AGAIN) {
        *n = 0;
        return 0;
    }
    if (cr != CURLE_OK) {
        *n = 0;
        return se_err_set(err, SE_UNAVAILABLE, "docker stream: recv: %s", curl_easy_strerror(cr));
    }
    *eof = *n == 0;
    return 0;
}

static int
hijack_send_all(docker_hijack *hj, const char *data, size_t len, int64_t deadline,
                const se_cancel *cancel, const char *what, se_err *err)
{
    while (len) {
        size_t n = 0;
        int rc = docker_hijack_send(hj, data, len, &n, err);
        if (rc < 0) {
            se_err_prefix(err, "%s", what);
            return rc;
        }
        if (n == 0) {
            rc = hijack_wait_until(hj, POLLOUT, deadline, cancel, what, err);
            if (rc < 0)
                return rc;
        }
        data += n;
        len -= n;
    }
    return 0;
}

/* Reads until the head is complete; the bytes after it stay in head. */
static int
hijack_read_head(docker_hijack *hj, se_buf *head, long *status, size_t *head_len, int64_t deadline,
                 const se_cancel *cancel, const char *what, se_err *err)
{
    for (;;) {
        char tmp[4096];
        size_t n = 0;
        bool eof = false;
        int rc = docker_hijack_recv(hj, tmp, sizeof(tmp), &n, &eof, err);
        if (rc < 0) {
            se_err_prefix(err, "%s", what);
            return rc;
        }
        if (eof)
            return se_err_set(err, SE_PROTOCOL, "%s: connection closed before the answer", what);
        if (n == 0) {
            rc = hijack_wait_until(hj, POLLIN, deadline, cancel, what, err);
            if (rc < 0)
                return rc;
            continue;
        }
        if (se_buf_append(head, tmp, n) < 0)
            return se_err_set(err, SE_PROTOCOL, "%s: answer head over %zu bytes", what, head->cap);
        rc = docker_hijack_head_parse(head->data, head->len, status, head_len, err);
        if (rc < 0) {
            se_err_prefix(err, "%s", what);
            return rc;
        }
        if (rc == 0)
            return 0;
    }
}

/* The engine refused: read the (small) error body that follows the head and
 * map the status. */
static int
hijack_refused(docker_hijack *hj, long status, const uint8_t *rest, size_t rest_len,
               const char *what, se_err *err)
{
    docker_resp resp = {.status = status};
    se_buf_init(&resp.body, DOCKER_HIJACK_ERRBODY_CAP);
    se_buf_append_capped(&resp.body, rest, rest_len);
    int64_t until = clock_mono_ms() + HIJACK_ERRBODY_WAIT_MS;
    while (resp.body.len < resp.body.cap) {
        /* A JSON error body is complete once it parses. */
        cJSON *j = cJSON_ParseWithLength((const char *)resp.body.data, resp.body.len);
        cJSON_Delete(j);
        if (j)
            break;
        char tmp[4096];
        size_t n = 0;
        bool eof = false;
        if (docker_hijack_recv(hj, tmp, sizeof(tmp), &n, &eof, NULL) < 0 || eof)
            break;
        if (n == 0) {
            int64_t left = until - clock_mono_ms();
            if (left <= 0 || docker_hijack_wait(hj, POLLIN, (int)left, NULL) < 0)
                break;
            continue;
        }
        se_buf_append_capped(&resp.body, tmp, n);
    }
    int rc = docker_http_fail(&resp, err, what);
    se_buf_free(&resp.body);
    return rc;
}

int
docker_hijack_open(docker_hijack *hj, docker_client *c, const char *path, const char *query,
                   const char *json_body, const se_cancel *cancel, const char *what, se_err *err)
{
    char *url = NULL;
    char *reqtxt = NULL;
    se_buf head;
    int rc;

    memset(hj, 0, sizeof(*hj));
    hj->fd = -1;
    se_buf_init(&head, DOCKER_HIJACK_HEAD_CAP);
    int64_t deadline = clock_mono_ms() + c->timeout_ms;

    /* Host: whatever follows "scheme://" in the base URL (our own config). */
    const char *host = strstr(c->base_url, "://") + 3;
    size_t body_len = json_body ? strlen(json_body) : 0;
    if (asprintf(&reqtxt,
                 "POST /v%s%s%s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: safeevald\r\n"
                 "%sConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: %zu\r\n\r\n%s",
                 c->api_version, path, query ? "?" : "", query ? query : "", host,
                 json_body ? "Content-Type: application/json\r\n" : "", body_len,
                 json_body ? json_body : "") < 0) {
        reqtxt = NULL;
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto out;
    }
    url = docker_url(c, "/", NULL, true);
    hj->h = docker_curl_new(c);
    if (!url || !hj->h) {
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto out;
    }
    curl_easy_setopt(hj->h, CURLOPT_URL, url);
    curl_easy_setopt(hj->h, CURLOPT_CONNECT_ONLY, 1L);
    CURLcode cr = curl_easy_perform(hj->h);
    if (cr != CURLE_OK) {
        metrics_engine_error();
        rc = se_err_set(err, SE_UNAVAILABLE, "%s: docker engine at %s does not answer: %s", what,
                        c->host, curl_easy_strerror(cr));
        goto out;
    }
    curl_socket_t sock = CURL_SOCKET_BAD;
    if (curl_easy_getinfo(hj->h, CURLINFO_ACTIVESOCKET, &sock) != CURLE_OK ||
        sock == CURL_SOCKET_BAD) {
        rc = se_err_set(err, SE_INTERNAL, "%s: no socket from libcurl", what);
        goto out;
    }
    hj->fd = sock;
    rc = hijack_send_all(hj, reqtxt, strlen(reqtxt), deadline, cancel, what, err);
    if (rc < 0)
        goto out;
    long status = 0;
    size_t head_len = 0;
    rc = hijack_read_head(hj, &head, &status, &head_len, deadline, cancel, what, err);
    if (rc < 0)
        goto out;
    if (status != 101 && status != 200) {
        rc = hijack_refused(hj, status, head.data + head_len, head.len - head_len, what, err);
        goto out;
    }
    /* The head was read in blocks: what came after it is the stream's start. */
    if (head.len > head_len) {
        hj->early_len = head.len - head_len;
        hj->early = malloc(hj->early_len);
        if (!hj->early) {
            hj->early_len = 0;
            rc = se_err_set(err, SE_INTERNAL, "out of memory");
            goto out;
        }
        memcpy(hj->early, head.data + head_len, hj->early_len);
    }
out:
    if (rc < 0)
        docker_hijack_close(hj);
    se_buf_free(&head);
    free(reqtxt);
    free(url);
    return rc;
}

void
docker_hijack_close(docker_hijack *hj)
{
    if (hj->h)
        curl_easy_cleanup(hj->h); /* closes the socket */
    free(hj->early);
    memset(hj, 0, sizeof(*hj));
    hj->fd = -1;
}
