/* Internals of the Engine API client shared by its files: the client struct,
 * the one-shot HTTP request helper (http.c) and the hijacked connection used
 * by exec start and attach (hijack.c). Not part of the module interface. */
#ifndef SAFEEVAL_DOCKER_INTERNAL_H
#define SAFEEVAL_DOCKER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

#include "docker/docker.h"
#include "util/buf.h"

/* The newest API version this client speaks, and the oldest it accepts. */
#define DOCKER_API_MAX_MAJOR 1
#define DOCKER_API_MAX_MINOR 43
#define DOCKER_API_MIN_MAJOR 1
#define DOCKER_API_MIN_MINOR 40

#define DOCKER_JSON_CAP (4u << 20) /* default cap of a JSON response body */
#define DOCKER_DEFAULT_TIMEOUT_MS 30000L

struct docker_client {
    char *host;      /* as configured, for messages */
    char *unix_path; /* unix socket path, or NULL for tcp */
    char *base_url;  /* "http://docker" or "http[s]://HOST:PORT" */
    char *tls_ca;
    char *tls_cert;
    char *tls_key;
    long timeout_ms;
    char api_version[16]; /* "1.41" */
};

/* Writes streamed response bytes somewhere other than the body buffer;
 * return 0 to go on, negative se_code (with *err filled) to abort. */
typedef int (*docker_sink_fn)(const char *data, size_t len, void *ud, se_err *err);

typedef struct docker_req {
    const char *method; /* "GET", "POST", "PUT", "DELETE", "HEAD" */
    const char *path;   /* already escaped, e.g. "/containers/abc/json" */
    const char *query;  /* already escaped "a=b&c=d", or NULL */
    bool unversioned;   /* path without the "/vX.Y" prefix (GET /version) */
    const void *body;   /* may be NULL */
    size_t body_len;
    const char *content_type; /* default application/json when body != NULL */
    size_t cap;               /* response body cap; 0 = DOCKER_JSON_CAP */
    long extra_timeout_ms;    /* added to the client timeout; -1 = no total timeout */
    long max_ms;              /* > 0: the whole request's limit, when shorter */
    const se_cancel *cancel;  /* checked during the transfer, may be NULL */
    docker_sink_fn sink;      /* if set, 2xx bodies stream here instead of resp->body */
    void *sink_ud;
} docker_req;

typedef struct docker_resp {
    long status;
    se_buf body; /* error bodies always land here (capped), 2xx too unless sink */
} docker_resp;

/* Runs one request on a fresh easy handle. Returns 0 on any HTTP status
 * (the caller maps it), negative on transport failure, cap overflow or
 * cancellation. resp->body must be freed with se_buf_free by the caller even
 * on failure. */
int docker_http(docker_client *c, const docker_req *req, docker_resp *resp, se_err *err);

/* Maps a non-2xx status to an se_code and fills err with what + the engine's
 * message. Returns the negative code. */
int docker_http_fail(const docker_resp *resp, se_err *err, const char *what);

/* A configured easy handle for c (unix socket / TLS options, no URL). */
CURL *docker_curl_new(docker_client *c);
/* Builds "BASE/vX.Y" + path (+ "?" + query); malloc'd. */
char *docker_url(docker_client *c, const char *path, const char *query, bool unversioned);
/* curl_easy_escape into a malloc'd (free()-able) string; NULL on failure. */
char *docker_escape(const char *s);

/* "prefix" + escape(id) + "suffix", malloc'd into *out; SE_INVALID for an
 * empty or overlong (> 512 bytes) id. */
int docker_path(char **out, const char *prefix, const char *id, const char *suffix, se_err *err);

/* Convenience: request + status check + JSON parse of the body.
 * *out may be NULL when the caller does not want the body. */
int docker_json_call(docker_client *c, const docker_req *req, cJSON **out, se_err *err,
                     const char *what);

/* Label filter JSON {"label":["k=v",...]} (+ "dangling":["true"] when
 * dangling), URL-escaped, malloc'd; NULL filters and !dangling give "". */
int docker_filters_query(const char *const *labels, bool dangling, char **out, se_err *err);

/* A hijacked connection: the engine answers the request with 101 (or 200)
 * and then the same connection carries the multiplexed stream out and the
 * process's stdin in. The request is written by hand over a
 * CURLOPT_CONNECT_ONLY connection, so the unix socket and tcp/TLS take the
 * same path; the socket is non-blocking. */
#define DOCKER_HIJACK_HEAD_CAP (16u << 10)    /* the answer's head */
#define DOCKER_HIJACK_ERRBODY_CAP (64u << 10) /* a refusal's error body */

typedef struct docker_hijack {
    CURL *h;
    int fd;
    /* Stream bytes that arrived with the answer's head (the head is read in
     * blocks): the stream's first bytes, handed out before the socket's. */
    uint8_t *early;
    size_t early_len;
    size_t early_off;
} docker_hijack;

/* Connects, sends "POST /vX.Y" path ("?" query) with json_body (may be NULL)
 * and "Connection: Upgrade", "Upgrade: tcp", and reads the answer's head
 * (capped). path must come from docker_path and query be a constant: nothing
 * untrusted is formatted into the request. 0 once the engine answered 101 or
 * 200: the stream follows. A refusal is mapped like docker_http_fail with
 * the engine's message; what names the call in messages. The answer is
 * awaited at most the client's timeout, and cancel (may be NULL) is checked
 * meanwhile. On failure *hj is left closed. */
int docker_hijack_open(docker_hijack *hj, docker_client *c, const char *path, const char *query,
                       const char *json_body, const se_cancel *cancel, const char *what,
                       se_err *err);
/* Reads at most cap bytes without blocking, the early bytes first. 0 with
 * *n bytes (0 = nothing now) and *eof true once the engine closed the
 * stream; SE_UNAVAILABLE on a transport error. Early bytes and bytes a TLS
 * layer holds do not make the socket readable: poll only after a read gave
 * nothing. */
int docker_hijack_recv(docker_hijack *hj, void *buf, size_t cap, size_t *n, bool *eof, se_err *err);
/* Writes what the socket takes now: *n bytes, 0 when it is full.
 * SE_UNAVAILABLE when the connection is gone. */
int docker_hijack_send(docker_hijack *hj, const void *data, size_t len, size_t *n, se_err *err);
/* poll() on the connection for at most timeout_ms (< 0 = no limit): the
 * revents, 0 on timeout (or EINTR), SE_INTERNAL if poll fails. */
int docker_hijack_wait(docker_hijack *hj, short events, int timeout_ms, se_err *err);
/* Closes the connection (the engine sees the client go) and frees. Safe on
 * a zeroed or closed hijack. */
void docker_hijack_close(docker_hijack *hj);

#endif
