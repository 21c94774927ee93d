/* The daemon <-> agent protocol, the agent's side. The first input byte
 * picks:
 *   0 a stdin stream: the bytes arrive in pieces (sizes from the input) at
 *     the agent's frame_reader, idle (keeps up to FRAME_MAX) or busy (keeps
 *     4 KiB, reads past the rest and peeks its id); every kept frame goes
 *     through what serve.c does with it: the NUL walk (util/pbcheck), the
 *     unpack, the envelope and run checks (agent/validate.c);
 *   1 a bare Request payload, checked the same way;
 *   2 a bare RunRequest payload, unpacked and validated;
 *   3 events: the input is a script of Output and Done events the agent
 *     queues (agent/wire.c, compiled in here), which are then parsed back
 *     with frame_parse and unpacked as the daemon would: every byte and
 *     every field must come back as it was queued, and the queue must never
 *     take more than it has room for.
 * The agent's validate.c and frame.c are part of the daemon's library. */
#include <string.h>

#include "agent/agent.h"
#include "agent/frame.h"
#include "agent/wire.c"
#include "fuzz.h"
#include "util/pbcheck.h"

enum { A_STREAM, A_REQUEST, A_RUN_REQUEST, A_EVENTS, A_COUNT };

static void
check_run_request(const agent_request *req)
{
    /* What the agent accepts is what its jail setup relies on. */
    se_err err;
    se_err_clear(&err);
    FUZZ_CHECK(req->limits && req->limits->wall_time_ms && req->limits->memory_bytes);
    FUZZ_CHECK(req->limits->max_processes <= AGENT_MAX_PROCESSES);
    FUZZ_CHECK(req->script.len > 0);
    FUZZ_CHECK(agent_filename_validate(req->filename, &err) == 0);
    FUZZ_CHECK(req->n_files <= AGENT_MAX_FILES && req->n_args <= AGENT_MAX_ARGS);
    for (size_t i = 0; i < req->n_files; i++)
        FUZZ_CHECK(agent_path_validate(req->files[i]->path, &err) == 0);
    for (size_t i = 0; i < req->n_env; i++)
        FUZZ_CHECK(agent_env_name_validate(req->env[i]->key, &err) == 0);
}

/* serve.c's handle_frame, without acting on the request. */
static void
check_request(const uint8_t *payload, size_t len)
{
    se_err werr, verr;
    se_err_clear(&werr);
    se_err_clear(&verr);
    int walk = pbcheck_message(&safeeval__agent__v1__request__descriptor, payload, len, &werr);
    if (walk < 0)
        FUZZ_CHECK(werr.code == SE_INVALID &&
                   strnlen(werr.msg, sizeof(werr.msg)) < sizeof(werr.msg));
    agent_msg *msg = safeeval__agent__v1__request__unpack(NULL, len, payload);
    if (!msg)
        return;
    /* What protobuf-c takes, the walk refuses only for a NUL in a string or
     * a field number protobuf-c keeps as unknown (pbcheck is stricter). */
    if (walk < 0)
        FUZZ_CHECK(strstr(werr.msg, "NUL") != NULL ||
                   strstr(werr.msg, "a bad field number") != NULL);
    int rc = agent_msg_validate(msg, &verr);
    if (rc == 0) {
        FUZZ_CHECK(msg->op_case == SAFEEVAL__AGENT__V1__REQUEST__OP_SYNC || msg->id != 0);
        if (msg->op_case == SAFEEVAL__AGENT__V1__REQUEST__OP_RUN)
            check_run_request(msg->run);
    } else {
        FUZZ_CHECK(verr.code == -rc);
    }
    /* A packed Request starts with its id: peek agrees with the unpack. */
    if (msg->id) {
        uint8_t head[FRAME_HEAD];
        size_t n = safeeval__agent__v1__request__get_packed_size(msg);
        uint8_t *packed = malloc(n ? n : 1);
        if (!packed)
            abort();
        safeeval__agent__v1__request__pack(msg, packed);
        memcpy(head, packed, n < FRAME_HEAD ? n : FRAME_HEAD);
        uint64_t id = 0;
        FUZZ_CHECK(agent_msg_peek_id(&id, head, n < FRAME_HEAD ? n : FRAME_HEAD) == 1);
        FUZZ_CHECK(id == msg->id);
        free(packed);
    }
    safeeval__agent__v1__request__free_unpacked(msg, NULL);
}

static void
fuzz_stream(const uint8_t *buf, size_t size)
{
    if (size < 2)
        return;
    /* byte 0: busy or idle and a small max (so TOO_BIG is reached);
     * byte 1: the piece size the bytes arrive in */
    bool busy = buf[0] & 1;
    uint32_t max = (buf[0] & 2) ? 4096 : FRAME_MAX;
    uint32_t keep = busy ? (max < 4096 ? max : 4096) / 8 : max;
    size_t piece = 1 + buf[1];
    buf += 2;
    size -= 2;
    frame_reader r;
    frame_reader_init(&r);
    size_t off = 0;
    while (off < size) {
        size_t n = size - off < piece ? size - off : piece;
        size_t pos = 0;
        while (pos < n) {
            size_t used = 0;
            int k = frame_reader_feed(&r, buf + off + pos, n - pos, max, keep, &used);
            FUZZ_CHECK(used <= n - pos);
            pos += used;
            if (k == FRAME_MORE) {
                FUZZ_CHECK(pos == n);
                break;
            }
            if (k == FRAME_TOO_BIG) {
                FUZZ_CHECK(r.len > max);
                frame_reader_free(&r);
                return;
            }
            FUZZ_CHECK(k == FRAME_READY || k == FRAME_SKIPPED);
            if (k == FRAME_READY) {
                FUZZ_CHECK(r.len <= keep && r.payload != NULL);
                check_request(r.payload, r.len);
            } else {
                FUZZ_CHECK(r.len > keep && r.len <= max && r.payload == NULL);
                FUZZ_CHECK(r.head_len == (r.len < FRAME_HEAD ? r.len : FRAME_HEAD));
                uint64_t id;
                (void)agent_msg_peek_id(&id, r.head, r.head_len);
            }
        }
        off += n;
    }
    frame_reader_free(&r);
}

/* The events the script queued, in order, to compare with what comes back. */
struct sent {
    int kind; /* 0 output, 1 done */
    uint64_t id;
    int stream;
    const uint8_t *data;
    size_t len;
};

/* Takes the frame at the head of the queue the way the daemon reads the
 * stream (as wire_flush would have written it) and checks it is s. */
static void
pop_check(wire *w, const struct sent *s)
{
    const uint8_t *payload;
    uint32_t plen;
    size_t used;
    FUZZ_CHECK(frame_parse(out_q + w->q_head, wire_queued(w), 1u << 20, &payload, &plen, &used) ==
               1);
    Safeeval__Agent__V1__Event *ev = safeeval__agent__v1__event__unpack(NULL, plen, payload);
    FUZZ_CHECK(ev != NULL);
    FUZZ_CHECK(ev->id == s->id);
    if (s->kind == 0) {
        FUZZ_CHECK(ev->ev_case == SAFEEVAL__AGENT__V1__EVENT__EV_OUTPUT);
        FUZZ_CHECK(ev->output->stream == s->stream);
        FUZZ_CHECK(ev->output->data.len == s->len);
        FUZZ_CHECK(s->len == 0 || memcmp(ev->output->data.data, s->data, s->len) == 0);
    } else {
        FUZZ_CHECK(ev->ev_case == SAFEEVAL__AGENT__V1__EVENT__EV_DONE);
        FUZZ_CHECK((ev->done->error && *ev->done->error) || ev->done->result);
    }
    safeeval__agent__v1__event__free_unpacked(ev, NULL);
    w->q_head += used;
    if (w->q_head == w->q_len)
        w->q_head = w->q_len = 0;
}

static void
fuzz_events(const uint8_t *buf, size_t size)
{
    static wire w;
    static struct sent sent[4096];
    wire_init(&w);
    size_t n_sent = 0, n_read = 0, pos = 0;
    /* Each step: op byte, length byte (x 256 + op >> 4 for output), then
     * the data. op bit 0: a Done (else output); for output bits 1-3 = 7:
     * the daemon reads what is queued up to here, except the last event. */
    while (pos + 2 <= size && n_sent < sizeof(sent) / sizeof(sent[0])) {
        uint8_t op = buf[pos], lb = buf[pos + 1];
        pos += 2;
        size_t len = (op & 1) ? lb : (size_t)lb * 256 + (op >> 4);
        if (len > size - pos)
            len = size - pos;
        if (len > AGENT_OUTPUT_CHUNK)
            len = AGENT_OUTPUT_CHUNK;
        Safeeval__Agent__V1__Event ev = SAFEEVAL__AGENT__V1__EVENT__INIT;
        Safeeval__Agent__V1__Output o = SAFEEVAL__AGENT__V1__OUTPUT__INIT;
        Safeeval__Agent__V1__RunResponse d = SAFEEVAL__AGENT__V1__RUN_RESPONSE__INIT;
        Safeeval__V1__ExecResult res = SAFEEVAL__V1__EXEC_RESULT__INIT;
        char msg[AGENT_ERROR_MAX];
        ev.id = 1 + (op >> 1);
        size_t before = wire_queued(&w);
        if (!(op & 1)) {
            /* serve.c queues output only below WIRE_OUTPUT_ROOM */
            if (before >= WIRE_OUTPUT_ROOM)
                break;
            o.stream = 1 + ((op >> 2) & 1);
            o.data.data = (uint8_t *)buf + pos;
            o.data.len = len;
            ev.ev_case = SAFEEVAL__AGENT__V1__EVENT__EV_OUTPUT;
            ev.output = &o;
        } else {
            /* The agent's errors always say something. */
            size_t m = len < sizeof(msg) - 2 ? len : sizeof(msg) - 2;
            msg[0] = 'e';
            for (size_t i = 0; i < m; i++)
                msg[1 + i] = (char)(buf[pos + i] ? buf[pos + i] : ' ');
            msg[1 + m] = 0;
            if (op & 2) {
                d.error = msg;
            } else {
                res.reason = SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_EXITED;
                res.stdout_bytes = len;
                res.wall_time_us = UINT64_MAX;
                d.result = &res;
                d.clean = op & 4;
            }
            ev.ev_case = SAFEEVAL__AGENT__V1__EVENT__EV_DONE;
            ev.done = &d;
            FUZZ_CHECK(safeeval__agent__v1__event__get_packed_size(&ev) + FRAME_HDR <=
                       WIRE_CONTROL_MAX);
        }
        bool room = wire_room(&w, FRAME_HDR + safeeval__agent__v1__event__get_packed_size(&ev));
        int rc = wire_put_event(&w, &ev);
        FUZZ_CHECK((rc == 0) == room);
        FUZZ_CHECK(w.q_head <= w.q_len && w.q_len <= WIRE_QUEUE);
        if (rc < 0) {
            FUZZ_CHECK(wire_queued(&w) == before);
            break;
        }
        /* Output below the threshold always leaves room for a Done. */
        if (!(op & 1))
            FUZZ_CHECK(wire_room(&w, WIRE_CONTROL_MAX));
        sent[n_sent++] = (struct sent){
            .kind = op & 1, .id = ev.id, .stream = o.stream, .data = buf + pos, .len = len};
        pos += len;
        if (!(op & 1) && (op & 0x0e) == 0x0e)
            while (n_read + 1 < n_sent)
                pop_check(&w, &sent[n_read++]);
    }
    while (n_read < n_sent)
        pop_check(&w, &sent[n_read++]);
    FUZZ_CHECK(wire_queued(&w) == 0);
    wire_free(&w);
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
    case A_STREAM:
        fuzz_stream(buf, size);
        break;
    case A_REQUEST:
        check_request(buf, size);
        break;
    case A_RUN_REQUEST: {
        agent_request *req = safeeval__agent__v1__run_request__unpack(NULL, size, buf);
        if (req) {
            se_err err;
            se_err_clear(&err);
            int rc = agent_request_validate(req, &err);
            if (rc == 0)
                check_run_request(req);
            else
                FUZZ_CHECK(err.code == -rc);
            safeeval__agent__v1__run_request__free_unpacked(req, NULL);
        }
        break;
    }
    case A_EVENTS:
        fuzz_events(buf, size);
        break;
    }
    free(buf);
    return 0;
}
