/* Pure parsers of what the Docker engine sends back: version negotiation,
 * error bodies, the build progress stream, exec inspect, archive tars. No I/O,
 * so the unit tests can feed them hostile bytes directly. */
#ifndef SAFEEVAL_DOCKER_PARSE_H
#define SAFEEVAL_DOCKER_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "docker/docker.h"
#include "util/buf.h"
#include "util/err.h"

/* Parses "MAJOR.MINOR" (digits only, each at most 4 digits). 0 or -1. */
int docker_api_version_parse(const char *s, int *major, int *minor);

/* Given the body of GET /version, writes the version to use into out
 * ("1.41"): the engine's ApiVersion capped at the newest this client speaks.
 * SE_PROTOCOL for a malformed body, SE_PRECONDITION for an engine older than
 * the oldest version this client accepts. */
int docker_api_negotiate(const char *body, size_t len, char *out, size_t outlen, se_err *err);

/* The engine's error message from an error body: its JSON "message" if any,
 * else the body as text; non-printable bytes replaced, truncated to outlen. */
void docker_engine_message(const char *body, size_t len, char *out, size_t outlen);

/* The se_code for a non-2xx engine status: 400 SE_INVALID, 404
 * SE_NOT_FOUND, 409 SE_CONFLICT, 5xx SE_INTERNAL, anything else
 * SE_PROTOCOL. */
int docker_status_code(long status);

/* From a container inspect: State.Running and neither Paused nor
 * Restarting (false for anything malformed). */
bool docker_inspect_running(const cJSON *inspect);

/* From the body of GET /exec/{id}/json: *running and *exit_code (-1 when
 * absent). SE_PROTOCOL when the body is not a JSON object. */
int docker_exec_inspect_parse(const char *body, size_t len, bool *running, int *exit_code,
                              se_err *err);

/* From the body of POST /containers/create: the malloc'd "Id" (hex only). */
int docker_create_id_parse(const char *body, size_t len, char **out_id, se_err *err);

/* The head of the engine's answer to a hijacked request (exec start,
 * attach), as read so far (data[0..len), any split). Returns 1 while the
 * blank line that ends the head has not arrived, 0 once it has, with *status
 * (100..599) and *head_len (the bytes up to and including "\r\n\r\n"; what
 * follows is the stream). SE_PROTOCOL as soon as the bytes cannot start an
 * "HTTP/1.0" or "HTTP/1.1" status line, so a peer that speaks something
 * else is refused without waiting for the head's cap. */
int docker_hijack_head_parse(const uint8_t *data, size_t len, long *status, size_t *head_len,
                             se_err *err);

/* The code for a refused POST /containers/{id}/update, from the status and
 * the engine's message: SE_CONFLICT when the kernel refused a memory limit
 * below the container's current usage (runc: "unable to set memory limit to
 * N (current usage: ...)", older runc: "device or resource busy"; the engine
 * answers 500 for those), else what docker_http_fail maps the status to. */
int docker_update_fail_code(long status, const char *msg);

/* The build progress stream: JSON objects, one per line. */
#define DOCKER_BUILD_LINE_CAP (1u << 20) /* a longer JSON line is skipped */
#define DOCKER_BUILD_RING 30             /* output lines kept for the error */
#define DOCKER_BUILD_RING_LINE 240       /* bytes kept of each of those lines */

typedef struct docker_build_log {
    se_buf line;   /* the JSON line being collected (capped) */
    bool skipping; /* the current JSON line passed the cap: drop to '\n' */
    se_buf out;    /* the "stream" text line being collected (capped) */
    char ring[DOCKER_BUILD_RING][DOCKER_BUILD_RING_LINE];
    size_t ring_next; /* next slot to write */
    size_t ring_count;
    bool failed;
    char error[512];   /* the engine's "error" text, if failed */
    char image_id[80]; /* from {"aux":{"ID":"sha256:..."}}, if seen */
    uint64_t lines_skipped;
    docker_progress_fn progress;
    void *ud;
} docker_build_log;

void docker_build_log_init(docker_build_log *l, docker_progress_fn progress, void *ud);
void docker_build_log_free(docker_build_log *l);
/* Feeds stream bytes in any split. Always 0 (bad lines are skipped and
 * recorded in the ring); kept int for future limits. */
int docker_build_log_feed(docker_build_log *l, const char *data, size_t len);
/* At the end of the stream: 0 if the build succeeded, else SE_PRECONDITION
 * with the error and the last output lines (newest last) in err. */
int docker_build_log_finish(docker_build_log *l, se_err *err);

/* Extracts the one entry of a tar (as GET /containers/{id}/archive returns
 * for a file path): it must be a regular file of at most cap bytes.
 * *out is malloc'd and NUL-terminated after *out_len. SE_INVALID when the
 * entry is not a regular file (a directory, a symlink) or the tar holds more
 * than one entry, SE_EXHAUSTED past cap, SE_PROTOCOL for a broken tar. */
int docker_tar_extract_file(const void *tar, size_t len, size_t cap, uint8_t **out, size_t *out_len,
                            se_err *err);

#endif
