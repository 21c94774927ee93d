/* The daemon <-> agent protocol from both ends. The first input byte picks:
 *   0 the agent's side: a byte stream of frames (agent/frame.h); every whole
 *     frame is unpacked as a RunRequest and validated the way the agent
 *     does before it runs anything (agent/validate.c);
 *   1 the daemon's side: the agent's answer as sandbox_run_parse sees it
 *     (one frame holding a RunResponse);
 *   2 a bare RunRequest payload (no frame), unpacked and validated;
 *   3 a bare RunResponse payload, framed here and parsed by the daemon.
 * The agent's validate.c is part of the daemon's library too. */
#include <string.h>

#include "agent/frame.h"
#include "agent/agent.h"
#include "fuzz.h"
#include "sandbox/internal.h"

enum { A_STREAM, A_RESPONSE, A_REQUEST, A_RESPONSE_BARE, A_COUNT };

static void
check_request(const uint8_t *payload, size_t len)
{
    agent_request *req = safeeval__agent__v1__run_request__unpack(NULL, len, payload);
    if (!req)
        return;
    se_err err;
    se_err_clear(&err);
    int rc = agent_request_validate(req, &err);
    if (rc == 0) {
        /* What the agent accepts is what its jail setup relies on. */
        FUZZ_CHECK(req->limits && req->limits->wall_time_ms && req->limits->memory_bytes);
        FUZZ_CHECK(req->script.len > 0);
        FUZZ_CHECK(agent_filename_validate(req->filename, &err) == 0);
        for (size_t i = 0; i < req->n_files; i++)
            FUZZ_CHECK(agent_path_validate(req->files[i]->path, &err) == 0);
        for (size_t i = 0; i < req->n_env; i++)
            FUZZ_CHECK(agent_env_name_validate(req->env[i]->key, &err) == 0);
    } else {
        FUZZ_CHECK(err.code == -rc);
    }
    safeeval__agent__v1__run_request__free_unpacked(req, NULL);
}

static void
check_response(const uint8_t *buf, size_t len)
{
    /* Small limits, so the output checks can trip on fuzzed input. */
    static const sandbox_limits lim = {1000, 1000, 64u << 20, 16, 64, 1u << 20};
    Safeeval__V1__ExecResult *res = NULL;
    se_err err;
    se_err_clear(&err);
    int rc = sandbox_run_parse(&res, buf, len, &lim, &err);
    if (rc == 0) {
        FUZZ_CHECK(res != NULL);
        FUZZ_CHECK(res->reason > SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_UNSPECIFIED &&
                   res->reason <= SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_FILE_SIZE_LIMIT);
        FUZZ_CHECK(res->stdout.len <= lim.max_output_bytes);
        FUZZ_CHECK(res->stderr.len <= lim.max_output_bytes);
        FUZZ_CHECK(res->stdout_truncated == (res->stdout_bytes > res->stdout.len));
        FUZZ_CHECK(res->stderr_truncated == (res->stderr_bytes > res->stderr.len));
        /* Handed over whole: it must free as one message. */
        protobuf_c_message_free_unpacked(&res->base, NULL);
    } else {
        FUZZ_CHECK(res == NULL);
        FUZZ_CHECK(err.code == -rc);
        FUZZ_CHECK(strnlen(err.msg, sizeof(err.msg)) < sizeof(err.msg));
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int which = data[0] % A_COUNT;
    uint8_t *buf = fuzz_dup(data + 1, size - 1);
    if (!buf)
        abort();
    size--;
    switch (which) {
    case A_STREAM: {
        /* A small cap as well as the real one, so both verdicts get reached. */
        uint32_t max = (size && (buf[0] & 1)) ? 4096 : FRAME_MAX;
        size_t pos = 0;
        for (;;) {
            const uint8_t *payload = NULL;
            uint32_t plen = 0;
            size_t consumed = 0;
            int r = frame_parse(buf + pos, size - pos, max, &payload, &plen, &consumed);
            FUZZ_CHECK(r >= -1 && r <= 1);
            if (r != 1)
                break;
            FUZZ_CHECK(plen <= max);
            FUZZ_CHECK(consumed == FRAME_HDR + (size_t)plen);
            FUZZ_CHECK(consumed <= size - pos);
            FUZZ_CHECK(payload == buf + pos + FRAME_HDR);
            uint8_t hdr[FRAME_HDR];
            frame_put_header(hdr, plen);
            FUZZ_CHECK(memcmp(hdr, buf + pos, FRAME_HDR) == 0);
            check_request(payload, plen);
            pos += consumed;
        }
        break;
    }
    case A_RESPONSE:
        check_response(buf, size);
        break;
    case A_REQUEST:
        check_request(buf, size);
        break;
    case A_RESPONSE_BARE: {
        uint8_t *framed = malloc(FRAME_HDR + size);
        if (!framed)
            abort();
        frame_put_header(framed, (uint32_t)size);
        memcpy(framed + FRAME_HDR, buf, size);
        check_response(framed, FRAME_HDR + size);
        free(framed);
        break;
    }
    }
    free(buf);
    return 0;
}
