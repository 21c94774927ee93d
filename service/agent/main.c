/* safeeval-agent: the static binary in every sandbox image.
 *   --wait        the container's main command: sleep until SIGTERM/SIGINT
 *   --run         one frame in (RunRequest) on stdin, one frame out
 *                 (RunResponse) on stdout
 *   --jail-child  the helper bwrap runs inside the jail (internal)
 *   --version     the build id
 * This file is only the I/O shell; agent_run() is the transport-free core. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/frame.h"
#include "util/buf.h"

#ifndef SAFEEVAL_AGENT_BUILD_ID
#define SAFEEVAL_AGENT_BUILD_ID "dev"
#endif
#ifndef SAFEEVAL_AGENT_VERSION
#define SAFEEVAL_AGENT_VERSION "0"
#endif

static int
wait_for_stop(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sig;
    while (sigwait(&set, &sig) != 0) {
    }
    return 0;
}

/* Reads exactly one frame from fd into b (initialised by the caller, who
 * frees it); *payload points into b. Reads no further than the frame. */
static int
frame_read_fd(const uint8_t **payload, uint32_t *payload_len, se_buf *b, int fd, se_err *err)
{
    uint8_t tmp[65536];
    for (;;) {
        size_t consumed;
        int r = frame_parse(b->data, b->len, FRAME_MAX, payload, payload_len, &consumed);
        if (r < 0)
            return se_err_set(err, SE_PROTOCOL, "request frame over %u bytes", FRAME_MAX);
        if (r == 1)
            return 0;
        size_t want = b->len < FRAME_HDR ? FRAME_HDR - b->len
                                         : FRAME_HDR + (size_t)frame_get_len(b->data) - b->len;
        if (want > sizeof tmp)
            want = sizeof tmp;
        ssize_t n = read(fd, tmp, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return se_err_errno(err, SE_PROTOCOL, "read request");
        if (n == 0)
            return se_err_set(err, SE_PROTOCOL, "request frame cut short");
        if (se_buf_append(b, tmp, (size_t)n) < 0)
            return se_err_set(err, SE_INTERNAL, "out of memory");
    }
}

static int
write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int
respond(const Safeeval__Agent__V1__RunResponse *resp)
{
    size_t n = safeeval__agent__v1__run_response__get_packed_size(resp);
    if (n > FRAME_MAX)
        return -1;
    uint8_t *buf = malloc(FRAME_HDR + n);
    if (!buf)
        return -1;
    frame_put_header(buf, (uint32_t)n);
    safeeval__agent__v1__run_response__pack(resp, buf + FRAME_HDR);
    int rc = write_all(1, buf, FRAME_HDR + n);
    free(buf);
    return rc;
}

static int
respond_error(const char *msg)
{
    Safeeval__Agent__V1__RunResponse resp = SAFEEVAL__AGENT__V1__RUN_RESPONSE__INIT;
    resp.error = (char *)msg;
    return respond(&resp);
}

static int
run_once(void)
{
    se_err err = {0};
    se_buf in;
    se_buf_init(&in, (size_t)FRAME_MAX + FRAME_HDR);
    const uint8_t *payload = NULL;
    uint32_t plen = 0;
    if (frame_read_fd(&payload, &plen, &in, 0, &err) < 0) {
        se_buf_free(&in);
        return respond_error(err.msg) < 0 ? 1 : 0;
    }
    agent_request *req = safeeval__agent__v1__run_request__unpack(NULL, plen, payload);
    se_buf_free(&in);
    if (!req)
        return respond_error("malformed RunRequest") < 0 ? 1 : 0;
    int rc = agent_request_validate(req, &err);
    if (rc < 0) {
        se_err_prefix(&err, "invalid request");
        safeeval__agent__v1__run_request__free_unpacked(req, NULL);
        return respond_error(err.msg) < 0 ? 1 : 0;
    }
    agent_result res;
    rc = agent_run(&res, req, &err);
    safeeval__agent__v1__run_request__free_unpacked(req, NULL);
    if (rc < 0)
        return respond_error(err.msg) < 0 ? 1 : 0;
    Safeeval__Agent__V1__RunResponse resp = SAFEEVAL__AGENT__V1__RUN_RESPONSE__INIT;
    resp.result = &res;
    rc = respond(&resp);
    agent_result_free(&res);
    return rc < 0 ? 1 : 0;
}

int
main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--jail-child") == 0)
        return agent_jail_child_main(argc, argv);
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("safeeval-agent %s %s\n", SAFEEVAL_AGENT_VERSION, SAFEEVAL_AGENT_BUILD_ID);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--wait") == 0)
        return wait_for_stop();
    if (argc == 2 && strcmp(argv[1], "--run") == 0) {
        /* A reader that went away must not kill us mid-run: write() says so. */
        signal(SIGPIPE, SIG_IGN);
        return run_once();
    }
    fprintf(stderr, "usage: safeeval-agent --wait | --run | --version\n");
    return 2;
}
