/* Docker Engine API client: libcurl over the unix socket (or tcp + TLS),
 * cJSON bodies, API version negotiated from GET /version. Every response body
 * has a hard cap. Thread-safe: each call uses its own curl handle (a shared
 * connection cache is fine). */
#ifndef SAFEEVAL_DOCKER_DOCKER_H
#define SAFEEVAL_DOCKER_DOCKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "util/cancel.h"
#include "util/err.h"

typedef struct docker_client docker_client;

typedef struct docker_opts {
    const char *host;   /* "unix:///var/run/docker.sock" or "tcp://HOST:PORT" */
    const char *tls_ca; /* tcp only: CA, client cert and key (PEM paths); NULL = plain */
    const char *tls_cert;
    const char *tls_key;
    long timeout_ms; /* per request connect+idle timeout for short calls */
} docker_opts;

/* The built-in engine address, when neither a setting nor DOCKER_HOST names one. */
#define DOCKER_DEFAULT_HOST "unix:///var/run/docker.sock"

/* An engine address and its TLS files (tcp only); NULL = not given. */
typedef struct docker_endpoint {
    char *host;
    char *tls_ca;
    char *tls_cert;
    char *tls_key;
} docker_endpoint;

/* The environment the docker CLI reads (borrowed strings; NULL = unset). */
typedef struct docker_env {
    const char *host;       /* DOCKER_HOST */
    const char *tls_verify; /* DOCKER_TLS_VERIFY: non-empty = TLS with verification */
    const char *cert_path;  /* DOCKER_CERT_PATH: ca.pem, cert.pem, key.pem */
    const char *home;       /* HOME: DOCKER_CERT_PATH's default is ~/.docker */
} docker_env;

/* Reads DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH and HOME. */
void docker_endpoint_env(docker_env *out);
/* What the docker CLI would use: each field of `given` (the operator's
 * settings) wins; then the environment (DOCKER_HOST; with DOCKER_TLS_VERIFY
 * set and a tcp host, DOCKER_CERT_PATH/{ca,cert,key}.pem); then
 * DOCKER_DEFAULT_HOST. *out's strings are malloc'd: docker_endpoint_free.
 * SE_INVALID when DOCKER_TLS_VERIFY is set with no folder to take the files
 * from. */
int docker_endpoint_resolve(docker_endpoint *out, const docker_endpoint *given,
                            const docker_env *env, se_err *err);
void docker_endpoint_free(docker_endpoint *e);

/* Creates the client and negotiates the API version (GET /version): the
 * engine's ApiVersion, capped at the newest this client speaks.
 * SE_UNAVAILABLE when the engine does not answer. */
int docker_client_new(docker_client **out, const docker_opts *opts, se_err *err);
void docker_client_free(docker_client *c);
/* "1.41": the negotiated version (borrowed). */
const char *docker_client_api_version(const docker_client *c);
/* GET /_ping, given at most DOCKER_PING_MS (or the client's timeout when
 * shorter). */
#define DOCKER_PING_MS 3000
int docker_ping(docker_client *c, se_err *err);
/* *out = GET /info (caller cJSON_Delete): DockerRootDir and the rest. */
int docker_info(docker_client *c, cJSON **out, se_err *err);

/* Labels: a NULL-terminated array of "key=value" strings used as filters. */

/* Images */
/* *out = the inspect JSON (caller cJSON_Delete). SE_NOT_FOUND if absent. */
int docker_image_inspect(docker_client *c, const char *ref, cJSON **out, se_err *err);
/* Builds from a tar context (POST /build, rm=1, forcerm=1, pull=0).
 * labels: cJSON object of string labels (borrowed, may be NULL).
 * buildargs: cJSON object of string build args (borrowed, may be NULL).
 * progress (may be NULL) gets each "stream" line of the build output, without
 * its trailing newline. On failure err holds the last lines of the output
 * (SE_PRECONDITION for a failed step, SE_UNAVAILABLE when the engine is gone,
 * SE_DEADLINE/SE_CANCELLED from cancel). */
typedef void (*docker_progress_fn)(const char *line, void *ud);
int docker_image_build(docker_client *c, const void *context_tar, size_t context_len,
                       const char *tag, const cJSON *labels, const cJSON *buildargs,
                       docker_progress_fn progress, void *ud, const se_cancel *cancel, se_err *err);
/* *out = JSON array of image summaries matching every label filter. */
int docker_image_list(docker_client *c, const char *const *label_filters, bool dangling_only,
                      cJSON **out, se_err *err);
int docker_image_remove(docker_client *c, const char *ref, bool force, se_err *err);

/* Containers */
/* body: the full create JSON (borrowed). *out_id = malloc'd container id. */
int docker_container_create(docker_client *c, const char *name, const cJSON *body, char **out_id,
                            se_err *err);
int docker_container_start(docker_client *c, const char *id, se_err *err);
int docker_container_inspect(docker_client *c, const char *id, cJSON **out, se_err *err);
/* 1 if an inspect (of docker_container_inspect) says the container is not
 * running and the engine saw an OOM kill in it (State.OOMKilled); else 0. */
bool docker_inspect_oom_ended(const cJSON *inspect);
int docker_container_stop(docker_client *c, const char *id, int timeout_s, se_err *err);
int docker_container_kill(docker_client *c, const char *id, const char *signal, se_err *err);
/* force + remove anonymous volumes. SE_NOT_FOUND if already gone. */
int docker_container_remove(docker_client *c, const char *id, se_err *err);
/* all=true includes stopped ones. */
int docker_container_list(docker_client *c, const char *const *label_filters, bool all, cJSON **out,
                          se_err *err);
/* Reads one regular file at path from a container (created or running) via
 * GET /containers/{id}/archive; *out = malloc'd bytes (NUL-terminated after
 * *out_len). SE_NOT_FOUND if absent, SE_EXHAUSTED if larger than cap. */
int docker_archive_get_file(docker_client *c, const char *id, const char *path, size_t cap,
                            uint8_t **out, size_t *out_len, se_err *err);
/* Uploads a tar archive into path inside the container. */
int docker_archive_put(docker_client *c, const char *id, const char *path, const void *tar,
                       size_t tar_len, se_err *err);

/* Memory limit of a running container (POST /containers/{id}/update):
 * Memory = MemorySwap = bytes (1 .. 2^53, else SE_INVALID). Applies to
 * running processes at once. Refusals: SE_CONFLICT when the kernel refuses a
 * limit below the current usage (cgroup v1; the engine answers 500 with
 * runc's "unable to set memory limit ... (current usage: ...)"; on cgroup v2
 * the kernel reclaims and OOM-kills instead of refusing), SE_INVALID for a
 * limit under the engine's minimum (6 MiB on 20.10), SE_NOT_FOUND for an
 * unknown container. */
int docker_container_update_memory(docker_client *c, const char *id, uint64_t bytes, se_err *err);
/* The same, and the pids limit too when pids > 0 (one request). */
int docker_container_update_limits(docker_client *c, const char *id, uint64_t bytes, uint32_t pids,
                                   se_err *err);

/* A persistent attach to a running container's stdin/stdout/stderr
 * (POST /containers/{id}/attach?stream=1&stdin=1&stdout=1&stderr=1, hijacked
 * like exec; never logs=1 or stream=0). The container must be created with
 * OpenStdin=true, StdinOnce=false, Tty=false: closing the stream then leaves
 * the container and its stdin open, and a later attach reaches the same
 * process (and the same stdin byte stream). What the container writes while
 * no stream is attached is lost (there is no log with LogConfig none), and
 * so may be what it writes while the engine is still wiring a new attach up:
 * speak first (a request on stdin), then read the answer. stdout and stderr
 * are separate pipes, not ordered with respect to each other. Not
 * thread-safe: one user at a time. *out is freed with docker_stream_close.
 * SE_NOT_FOUND for an unknown container, SE_UNAVAILABLE for one that is not
 * running (checked after the attach: the engine would attach to a stopped
 * one and stay silent). */
typedef struct docker_stream docker_stream;
int docker_stream_attach(docker_client *c, const char *container_id, docker_stream **out,
                         se_err *err);
/* Sends all of data to the container's stdin; gives up at deadline_ms
 * (CLOCK_MONOTONIC ms, INT64_MAX = none) with SE_DEADLINE. SE_UNAVAILABLE
 * when the stream is gone. After SE_DEADLINE a prefix of data may have been
 * sent: the stdin byte stream is cut mid-message, also for later attaches. */
int docker_stream_send(docker_stream *s, const void *data, size_t len, int64_t deadline_ms,
                       se_err *err);
/* Waits at most timeout_ms (0 = not at all, < 0 = no limit) for the
 * container's stdout and returns what is there (at most cap bytes, as soon as
 * there are any) in *n (0 = nothing yet). It reads at most cap bytes from the
 * socket per call, so memory stays bounded: the rest of a large frame waits
 * in the socket (and the container, once the pipes are full, on its
 * stdout). Bytes the container writes to stderr are kept (the last 4 KiB)
 * for docker_stream_stderr. SE_UNAVAILABLE once the stream has ended (the
 * process or container is gone; bytes that came before the end are returned
 * first), SE_PROTOCOL if the engine's multiplexed stream is malformed; both
 * are sticky. */
int docker_stream_recv(docker_stream *s, uint8_t *buf, size_t cap, int timeout_ms, size_t *n,
                       se_err *err);
/* The container's recent stderr (borrowed until docker_stream_close,
 * NUL-terminated, printable: control bytes become '?', line breaks and tabs
 * ' '). */
const char *docker_stream_stderr(const docker_stream *s);
/* The stream's socket, to poll on for POLLIN (readable = docker_stream_recv
 * has something, or the end). Bytes can also wait inside the stream without
 * the socket being readable (the stream's first bytes, which came with the
 * engine's answer; the rest of a TLS record): poll only after
 * docker_stream_recv returned *n == 0. */
int docker_stream_fd(const docker_stream *s);
/* Closes the connection: the engine detaches, the container runs on. NULL is
 * fine. */
void docker_stream_close(docker_stream *s);

/* Exec: create + start (hijacked, stdin attached) + demux + inspect. */
typedef struct docker_exec_opts {
    const char *const *argv; /* NULL-terminated */
    const char *const *env;  /* NULL-terminated "K=V", may be NULL */
    const char *user;        /* may be NULL = the container's user */
    const void *stdin_data;  /* sent whole, then the write side is closed */
    size_t stdin_len;
    size_t stdout_cap; /* bytes kept; more is counted and discarded */
    size_t stderr_cap;
} docker_exec_opts;

typedef struct docker_exec_result {
    uint8_t *out; /* malloc'd, NUL-terminated after out_len */
    size_t out_len;
    uint64_t out_total; /* bytes the process wrote */
    uint8_t *errbuf;
    size_t err_len;
    uint64_t err_total;
    int exit_code; /* from exec inspect; -1 if unknown */
} docker_exec_result;

int docker_exec_run(docker_client *c, const char *container_id, const docker_exec_opts *opts,
                    docker_exec_result *out, const se_cancel *cancel, se_err *err);
void docker_exec_result_free(docker_exec_result *r);

#endif
