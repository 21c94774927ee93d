/* Internals of the Engine API client shared by its files: the client struct,
 * the one-shot HTTP request helper (http.c) and the hijacked connection used
 * by exec (exec.c). Not part of the module interface. */
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

#endif
