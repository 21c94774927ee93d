/* A persistent attach to a container's stdin/stdout/stderr (docker.h): one
 * hijacked connection (hijack.c) kept open. Memory stays bounded whatever the
 * container writes: a read takes from the socket at most the room left in
 * the caller's buffer, so every stdout byte it yields fits there and the
 * demuxer keeps nothing but a partial frame header; the rest of a large
 * frame waits in the socket (the engine, and then the container, block on
 * it). stderr keeps only a printable tail. */
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker/demux.h"
#include "docker/internal.h"
#include "docker/parse.h"
#include "util/clock.h"

/* Bytes read from the socket per step: the most a recv can yield at once
 * per loop; larger asks take several steps without waiting. */
#define STREAM_READ_STEP (64u << 10)

/* The query is fixed. stream=1 only: logs=1 would replay the log (there is
 * none, LogConfig none) and stream=0 wedges the container on engine 20.10. */
#define STREAM_ATTACH_QUERY "stream=1&stdin=1&stdout=1&stderr=1"

struct docker_stream {
    docker_hijack hj;
    demux d;
    demux_tail err_tail;
    bool ended;   /* the engine closed the stream or the transport failed */
    bool broken;  /* the stream was not a multiplexed stream */
    char cid[13]; /* short container id, for messages */
};

int
docker_stream_attach(docker_client *c, const char *container_id, docker_stream **out, se_err *err)
{
    char *path = NULL;
    *out = NULL;
    int rc = docker_path(&path, "/containers/", container_id, "/attach", err);
    if (rc < 0)
        return rc;
    docker_stream *s = calloc(1, sizeof(*s));
    if (!s) {
        free(path);
        return se_err_set(err, SE_INTERNAL, "out of memory");
    }
    demux_init(&s->d);
    demux_tail_init(&s->err_tail);
    snprintf(s->cid, sizeof(s->cid), "%s", container_id);
    rc = docker_hijack_open(&s->hj, c, path, STREAM_ATTACH_QUERY, NULL, NULL, "attach", err);
    free(path);
    if (rc < 0) {
        se_err_prefix(err, "container %s", s->cid);
        free(s);
        return rc;
    }
    /* The engine also attaches to a container that is not running, and that
     * stream stays silent (no end) until a later start. Checked after the
     * attach, so a process that dies from now on ends the stream. */
    cJSON *ins = NULL;
    rc = docker_container_inspect(c, container_id, &ins, err);
    if (rc == 0 && !docker_inspect_running(ins))
        rc = se_err_set(err, SE_UNAVAILABLE, "attach: container %s is not running", s->cid);
    cJSON_Delete(ins);
    if (rc < 0) {
        docker_stream_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

int
docker_stream_send(docker_stream *s, const void *data, size_t len, int64_t deadline_ms, se_err *err)
{
    const uint8_t *p = data;
    if (s->ended)
        return se_err_set(err, SE_UNAVAILABLE, "attach %s: the stream has ended", s->cid);
    while (len) {
        size_t n = 0;
        int rc = docker_hijack_send(&s->hj, p, len, &n, err);
        if (rc < 0) {
            se_err_prefix(err, "attach %s", s->cid);
            return rc;
        }
        p += n;
        len -= n;
        if (n || !len)
            continue;
        int64_t left = deadline_ms == INT64_MAX ? -1 : deadline_ms - clock_mono_ms();
        if (deadline_ms != INT64_MAX && left <= 0)
            return se_err_set(err, SE_DEADLINE, "attach %s: stdin did not take the data in time",
                              s->cid);
        rc = docker_hijack_wait(&s->hj, POLLOUT, left > INT_MAX ? INT_MAX : (int)left, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int
stream_ended(docker_stream *s, se_err *err)
{
    if (!demux_at_boundary(&s->d))
        return se_err_set(err, SE_UNAVAILABLE, "attach %s: the stream ended inside a frame",
                          s->cid);
    return se_err_set(err, SE_UNAVAILABLE, "attach %s: the stream has ended", s->cid);
}

int
docker_stream_recv(docker_stream *s, uint8_t *buf, size_t cap, int timeout_ms, size_t *n,
                   se_err *err)
{
    *n = 0;
    if (s->broken)
        return se_err_set(err, SE_PROTOCOL, "attach %s: not a multiplexed stream", s->cid);
    if (s->ended)
        return stream_ended(s, err);
    if (cap == 0)
        return 0;
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : clock_mono_ms() + timeout_ms;
    uint8_t raw[STREAM_READ_STEP];
    for (;;) {
        /* At most the room left: every stdout byte of it fits in buf. */
        size_t want = cap - *n < sizeof(raw) ? cap - *n : sizeof(raw);
        size_t got = 0;
        bool eof = false;
        int rc = docker_hijack_recv(&s->hj, raw, want, &got, &eof, err);
        if (rc < 0) {
            s->ended = true;
            se_err_prefix(err, "attach %s", s->cid);
            return *n ? 0 : rc; /* bytes first; the next call reports the end */
        }
        if (got) {
            if (demux_route(&s->d, raw, got, buf, cap, n, &s->err_tail) < 0) {
                s->broken = true;
                *n = 0;
                return se_err_set(err, SE_PROTOCOL,
                                  "attach %s: the engine's output is not a multiplexed stream",
                                  s->cid);
            }
            if (*n == cap)
                return 0;
            continue;
        }
        if (eof) {
            s->ended = true;
            return *n ? 0 : stream_ended(s, err);
        }
        /* Nothing more now: hand over what there is, or wait. */
        if (*n)
            return 0;
        int64_t left = deadline == INT64_MAX ? -1 : deadline - clock_mono_ms();
        if (deadline != INT64_MAX && left <= 0)
            return 0;
        rc = docker_hijack_wait(&s->hj, POLLIN, left > INT_MAX ? INT_MAX : (int)left, err);
        if (rc < 0)
            return rc;
    }
}

const char *
docker_stream_stderr(const docker_stream *s)
{
    return s->err_tail.text;
}

int
docker_stream_fd(const docker_stream *s)
{
    return s->hj.fd;
}

void
docker_stream_close(docker_stream *s)
{
    if (!s)
        return;
    docker_hijack_close(&s->hj);
    free(s);
}
