/* The gRPC core server.
 *
 * Threads: RPC_POLLERS pollers call grpc_completion_queue_next on one queue
 * and never block on anything else; a bounded pool of workers runs the
 * handlers. A poller that receives a call starts RECV_CLOSE_ON_SERVER at
 * once (so a cancelled call is known while its handler runs), re-arms the
 * request for that method, and either answers inline (health, unknown
 * methods, a full queue) or queues the call for a worker.
 *
 * A call's memory is counted: one reference for whoever will send the final
 * status (the holder) and one per batch in flight. The last release frees
 * it, always from a poller or from the holder that failed to start a batch. */
#include "rpc/rpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/status.h>
#include <grpc/support/time.h>

#include "util/cleanup.h"
#include "util/file.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/pbcheck.h"

#define RPC_POLLERS 2
/* Requests kept armed per method: a burst is accepted without waiting for a
 * poller to re-arm. */
#define RPC_SLOTS 2
#define RPC_PEM_MAX (1u << 20)
#define HEALTH_PATH "/grpc.health.v1.Health/Check"

enum tag_kind { TAG_REQUEST, TAG_CLOSE, TAG_SEND, TAG_STREAM, TAG_SHUTDOWN };

struct rpc_call;

struct rpc_tag {
    enum tag_kind kind;
    struct rpc_call *call;
};

enum route_kind { ROUTE_METHOD, ROUTE_HEALTH, ROUTE_UNKNOWN };

struct rpc_route {
    enum route_kind kind;
    const rpc_method *method; /* ROUTE_METHOD only */
    const char *name;         /* for logs: "Eval" */
    void *handle;             /* from grpc_server_register_method */
};

struct rpc_call {
    rpc_server *srv;
    const struct rpc_route *route;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_call_details details; /* ROUTE_UNKNOWN only */
    grpc_byte_buffer *payload;
    int cancelled;    /* written by gRPC when the close batch completes */
    atomic_bool gone; /* published copy of cancelled, read by handlers */
    atomic_int refs;
    grpc_byte_buffer *resp;
    grpc_slice status_msg;
    bool has_status_msg;
    se_cancel cancel;
    int64_t start_us;
    struct rpc_tag req_tag, close_tag, send_tag, stream_tag;
    /* Streaming calls: the one SEND_MESSAGE in flight. s_busy, s_ok and
     * s_buf are under smu; the poller clears s_busy at its completion and
     * wakes scv, as does a cancellation. md_sent belongs to the holder. */
    pthread_mutex_t smu;
    pthread_cond_t scv;
    bool s_busy, s_ok, md_sent;
    grpc_byte_buffer *s_buf;
};

struct rpc_stream {
    struct rpc_call *call;
    int failed; /* the se_code of the first failed send; 0 = none */
};

struct rpc_server {
    rpc_server_opts opts;
    void *svc;
    grpc_server *server;
    grpc_completion_queue *cq;
    struct rpc_route *routes;
    size_t n_routes;

    pthread_t pollers[RPC_POLLERS];
    unsigned n_pollers;
    pthread_t *workers;
    unsigned n_workers;

    pthread_mutex_t mu;
    pthread_cond_t work_cv;
    pthread_cond_t done_cv;  /* shutdown_done, or running back to 0 */
    struct rpc_call **queue; /* ring of opts.queue_depth */
    unsigned q_head, q_len;
    bool stop_workers;
    bool shutdown_done;
    unsigned running; /* calls queued or in a worker (under mu) */
    /* Set at SIGTERM: health answers NOT_SERVING and new calls UNAVAILABLE
     * while the calls in flight finish, before the server stops accepting. */
    atomic_bool draining;
    atomic_bool shutting_down;
    struct rpc_tag shutdown_tag;

    bool started, stopped, grpc_inited;
};

/* ---- helpers ------------------------------------------------------------------------------ */

static const char *
status_name(int code)
{
    static const char *const names[] = {"OK",
                                        "CANCELLED",
                                        "UNKNOWN",
                                        "INVALID_ARGUMENT",
                                        "DEADLINE_EXCEEDED",
                                        "NOT_FOUND",
                                        "ALREADY_EXISTS",
                                        "PERMISSION_DENIED",
                                        "RESOURCE_EXHAUSTED",
                                        "FAILED_PRECONDITION",
                                        "ABORTED",
                                        "OUT_OF_RANGE",
                                        "UNIMPLEMENTED",
                                        "INTERNAL",
                                        "UNAVAILABLE",
                                        "DATA_LOSS",
                                        "UNAUTHENTICATED"};
    if (code >= 0 && code < (int)(sizeof(names) / sizeof(names[0])))
        return names[code];
    return "?";
}

/* The client's deadline on CLOCK_MONOTONIC ms, INT64_MAX when it gave none.
 * gRPC hands an infinite deadline as tv_sec = INT64_MAX, which must not be
 * converted; anything else is turned into "time left" on its own clock and
 * added to ours, so gRPC's clock offsets never matter. */
static int64_t
deadline_to_mono_ms(gpr_timespec d)
{
    if (d.tv_sec == INT64_MAX || d.clock_type == GPR_TIMESPAN)
        return INT64_MAX;
    gpr_timespec now = gpr_now(d.clock_type);
    int64_t sec = d.tv_sec - now.tv_sec;
    int64_t nsec = (int64_t)d.tv_nsec - now.tv_nsec;
    if (sec > INT64_MAX / 4000)
        return INT64_MAX;
    int64_t left_ms = sec * 1000 + nsec / 1000000;
    if (left_ms < 0)
        left_ms = 0;
    return clock_mono_ms() + left_ms;
}

static bool
call_is_cancelled(void *ud)
{
    struct rpc_call *c = ud;
    return atomic_load_explicit(&c->gone, memory_order_acquire);
}

static struct rpc_call *
call_new(rpc_server *s, const struct rpc_route *rt)
{
    struct rpc_call *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->srv = s;
    c->route = rt;
    grpc_metadata_array_init(&c->md);
    grpc_call_details_init(&c->details);
    atomic_init(&c->gone, false);
    atomic_init(&c->refs, 1);
    c->req_tag = (struct rpc_tag){TAG_REQUEST, c};
    c->close_tag = (struct rpc_tag){TAG_CLOSE, c};
    c->send_tag = (struct rpc_tag){TAG_SEND, c};
    c->stream_tag = (struct rpc_tag){TAG_STREAM, c};
    pthread_mutex_init(&c->smu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->scv, &ca);
    pthread_condattr_destroy(&ca);
    c->cancel = (se_cancel){.deadline_ms = INT64_MAX, .is_cancelled = call_is_cancelled, .ud = c};
    return c;
}

static void
call_free(struct rpc_call *c)
{
    if (c->call)
        grpc_call_unref(c->call);
    grpc_metadata_array_destroy(&c->md);
    grpc_call_details_destroy(&c->details);
    if (c->payload)
        grpc_byte_buffer_destroy(c->payload);
    if (c->resp)
        grpc_byte_buffer_destroy(c->resp);
    if (c->has_status_msg)
        grpc_slice_unref(c->status_msg);
    if (c->s_buf)
        grpc_byte_buffer_destroy(c->s_buf);
    pthread_mutex_destroy(&c->smu);
    pthread_cond_destroy(&c->scv);
    free(c);
}

static void
call_release(struct rpc_call *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        call_free(c);
}

/* Sends the final status (and resp, if set) and hands the holder's reference
 * to the batch. with_close adds RECV_CLOSE_ON_SERVER for calls that answer
 * in one batch (health, unknown methods). The call must not be touched after. */
static void
call_finish(struct rpc_call *c, int status, const char *msg, bool with_close)
{
    grpc_op ops[4];
    size_t n = 0;
    memset(ops, 0, sizeof(ops));
    if (!c->md_sent) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[n].data.send_initial_metadata.count = 0;
        n++;
    }
    if (c->resp && status == GRPC_STATUS_OK) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = c->resp;
        n++;
    }
    if (msg && *msg) {
        c->status_msg = grpc_slice_from_copied_string(msg);
        c->has_status_msg = true;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.trailing_metadata_count = 0;
    ops[n].data.send_status_from_server.status = (grpc_status_code)status;
    ops[n].data.send_status_from_server.status_details = c->has_status_msg ? &c->status_msg : NULL;
    n++;
    if (with_close) {
        ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        ops[n].data.recv_close_on_server.cancelled = &c->cancelled;
        n++;
    }
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, &c->send_tag, NULL);
    if (e != GRPC_CALL_OK) {
        log_error("rpc: cannot send status: grpc_call_start_batch error %d", (int)e);
        call_release(c);
    }
}

static void
log_call(const struct rpc_call *c, int status, int64_t queued_us, const se_err *err)
{
    if (log_current_level < LOG_INFO)
        return;
    double ms = (double)(clock_mono_us() - c->start_us) / 1000.0;
    /* Error messages can quote client fields: only our own failures (engine
     * gone, bugs) are worth their text at INFO; the rest goes to DEBUG. */
    bool ours = status == GRPC_STATUS_INTERNAL || status == GRPC_STATUS_UNAVAILABLE;
    if (err && err->msg[0] && ours)
        log_info("rpc %s status=%s duration_ms=%.3f queued_us=%lld error=\"%s\"", c->route->name,
                 status_name(status), ms, (long long)queued_us, err->msg);
    else
        log_info("rpc %s status=%s duration_ms=%.3f queued_us=%lld", c->route->name,
                 status_name(status), ms, (long long)queued_us);
    if (err && err->msg[0] && !ours)
        log_debug("rpc %s error: %s", c->route->name, err->msg);
}

/* ---- requests ------------------------------------------------------------------------------ */

static int
arm(rpc_server *s, const struct rpc_route *rt)
{
    struct rpc_call *c = call_new(s, rt);
    if (!c) {
        log_error("rpc: out of memory arming %s", rt->name);
        return -1;
    }
    grpc_call_error e;
    if (rt->kind == ROUTE_UNKNOWN)
        e = grpc_server_request_call(s->server, &c->call, &c->details, &c->md, s->cq, s->cq,
                                     &c->req_tag);
    else
        e = grpc_server_request_registered_call(s->server, rt->handle, &c->call, &c->deadline,
                                                &c->md, &c->payload, s->cq, s->cq, &c->req_tag);
    if (e != GRPC_CALL_OK) {
        /* Unchecked, this would be a method that hangs forever. */
        log_error("rpc: cannot request calls for %s: grpc error %d", rt->name, (int)e);
        call_free(c);
        return -1;
    }
    return 0;
}

static int
read_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*p >= end)
            return -1;
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* HealthCheckRequest { string service = 1; }, parsed by hand: 1 = a service
 * we serve ("" or ours), 0 = unknown service, -1 = malformed. */
static int
health_service_known(const uint8_t *p, size_t n)
{
    static const char ours[] = "safeeval.v1.SandboxService";
    const uint8_t *end = p + n;
    const uint8_t *svc = (const uint8_t *)"";
    uint64_t svc_len = 0;
    while (p < end) {
        uint64_t key, v;
        if (read_varint(&p, end, &key) < 0)
            return -1;
        switch (key & 7) {
        case 0:
            if (read_varint(&p, end, &v) < 0)
                return -1;
            break;
        case 1:
            if (end - p < 8)
                return -1;
            p += 8;
            break;
        case 2:
            if (read_varint(&p, end, &v) < 0 || v > (uint64_t)(end - p))
                return -1;
            if ((key >> 3) == 1) {
                svc = p;
                svc_len = v;
            }
            p += v;
            break;
        case 5:
            if (end - p < 4)
                return -1;
            p += 4;
            break;
        default:
            return -1;
        }
    }
    if (svc_len == 0)
        return 1;
    return svc_len == sizeof(ours) - 1 && memcmp(svc, ours, svc_len) == 0 ? 1 : 0;
}

/* Answered inline by the poller, so health stays true while every worker is
 * busy. */
static void
health_answer(struct rpc_call *c)
{
    int known = 1;
    if (c->payload) {
        grpc_byte_buffer_reader rd;
        if (grpc_byte_buffer_reader_init(&rd, c->payload)) {
            grpc_slice sl = grpc_byte_buffer_reader_readall(&rd);
            grpc_byte_buffer_reader_destroy(&rd);
            known = health_service_known(GRPC_SLICE_START_PTR(sl), GRPC_SLICE_LENGTH(sl));
            grpc_slice_unref(sl);
        } else {
            known = -1;
        }
    }
    int status = GRPC_STATUS_OK;
    const char *msg = NULL;
    if (known == 1) {
        /* HealthCheckResponse { status = SERVING (1) or NOT_SERVING (2) }:
         * field 1, varint. */
        static const uint8_t serving[] = {0x08, 0x01}, not_serving[] = {0x08, 0x02};
        bool draining = atomic_load(&c->srv->draining);
        grpc_slice sl = grpc_slice_from_static_buffer(draining ? not_serving : serving, 2);
        c->resp = grpc_raw_byte_buffer_create(&sl, 1);
    } else if (known == 0) {
        status = GRPC_STATUS_NOT_FOUND;
        msg = "unknown service";
    } else {
        status = GRPC_STATUS_INVALID_ARGUMENT;
        msg = "malformed HealthCheckRequest";
    }
    if (log_current_level >= LOG_DEBUG)
        log_debug("rpc %s status=%s duration_ms=%.3f", c->route->name, status_name(status),
                  (double)(clock_mono_us() - c->start_us) / 1000.0);
    call_finish(c, status, msg, true);
}

static void
unknown_answer(struct rpc_call *c)
{
    if (log_current_level >= LOG_DEBUG) {
        /* The method name is the client's: print it defanged. */
        char name[128];
        size_t n = GRPC_SLICE_LENGTH(c->details.method);
        if (n > sizeof(name) - 1)
            n = sizeof(name) - 1;
        const uint8_t *p = GRPC_SLICE_START_PTR(c->details.method);
        for (size_t i = 0; i < n; i++)
            name[i] = p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\' ? (char)p[i] : '?';
        name[n] = '\0';
        log_debug("rpc unknown method \"%s\"", name);
    }
    log_call(c, GRPC_STATUS_UNIMPLEMENTED, 0, NULL);
    call_finish(c, GRPC_STATUS_UNIMPLEMENTED, "unknown method", true);
}

static int
queue_push(rpc_server *s, struct rpc_call *c)
{
    int r = -1;
    pthread_mutex_lock(&s->mu);
    if (s->q_len < s->opts.queue_depth) {
        s->queue[(s->q_head + s->q_len) % s->opts.queue_depth] = c;
        s->q_len++;
        s->running++;
        pthread_cond_signal(&s->work_cv);
        r = 0;
    }
    pthread_mutex_unlock(&s->mu);
    return r;
}

static void
on_request(struct rpc_call *c, bool ok)
{
    rpc_server *s = c->srv;
    if (!ok) {
        /* The server is shutting down: the armed request ends unused. */
        call_free(c);
        return;
    }
    if (!atomic_load(&s->shutting_down))
        arm(s, c->route);
    c->start_us = clock_mono_us();

    if (c->route->kind == ROUTE_HEALTH) {
        health_answer(c);
        return;
    }
    if (c->route->kind == ROUTE_UNKNOWN) {
        unknown_answer(c);
        return;
    }
    if (atomic_load(&s->draining)) {
        log_call(c, GRPC_STATUS_UNAVAILABLE, 0, NULL);
        call_finish(c, GRPC_STATUS_UNAVAILABLE, "the server is shutting down", false);
        return;
    }

    c->cancel.deadline_ms = deadline_to_mono_ms(c->deadline);
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->cancelled;
    atomic_fetch_add(&c->refs, 1);
    grpc_call_error e = grpc_call_start_batch(c->call, &op, 1, &c->close_tag, NULL);
    if (e != GRPC_CALL_OK) {
        log_error("rpc %s: cannot watch for cancellation: grpc error %d", c->route->name, (int)e);
        atomic_fetch_sub(&c->refs, 1);
    }

    if (queue_push(s, c) < 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "server busy: %u calls already wait for a worker",
                 s->opts.queue_depth);
        log_call(c, GRPC_STATUS_RESOURCE_EXHAUSTED, 0, NULL);
        call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, msg, false);
    }
}

static void *
poller_main(void *arg)
{
    rpc_server *s = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        struct rpc_tag *t = ev.tag;
        switch (t->kind) {
        case TAG_REQUEST:
            on_request(t->call, ev.success != 0);
            break;
        case TAG_CLOSE:
            /* RECV_CLOSE_ON_SERVER always succeeds: `cancelled` is the news. */
            if (t->call->cancelled) {
                atomic_store_explicit(&t->call->gone, true, memory_order_release);
                /* A handler waiting for a stream's send wakes up now. */
                pthread_mutex_lock(&t->call->smu);
                pthread_cond_broadcast(&t->call->scv);
                pthread_mutex_unlock(&t->call->smu);
            }
            call_release(t->call);
            break;
        case TAG_STREAM:
            pthread_mutex_lock(&t->call->smu);
            if (t->call->s_buf)
                grpc_byte_buffer_destroy(t->call->s_buf);
            t->call->s_buf = NULL;
            t->call->s_ok = ev.success != 0;
            t->call->s_busy = false;
            pthread_cond_broadcast(&t->call->scv);
            pthread_mutex_unlock(&t->call->smu);
            call_release(t->call);
            break;
        case TAG_SEND:
            call_release(t->call);
            break;
        case TAG_SHUTDOWN:
            pthread_mutex_lock(&s->mu);
            s->shutdown_done = true;
            pthread_cond_broadcast(&s->done_cv);
            pthread_mutex_unlock(&s->mu);
            break;
        }
    }
    return NULL;
}

/* ---- workers ------------------------------------------------------------------------------- */

static int
call_decode(struct rpc_call *c, ProtobufCMessage **out, se_err *err)
{
    const rpc_method *m = c->route->method;
    if (!c->payload)
        return se_err_set(err, SE_INVALID, "request: no message");
    grpc_byte_buffer_reader rd;
    if (!grpc_byte_buffer_reader_init(&rd, c->payload))
        return se_err_set(err, SE_INVALID, "request: cannot read the message");
    grpc_slice sl = grpc_byte_buffer_reader_readall(&rd);
    grpc_byte_buffer_reader_destroy(&rd);
    grpc_byte_buffer_destroy(c->payload);
    c->payload = NULL;
    size_t len = GRPC_SLICE_LENGTH(sl);
    int r = 0;
    /* gRPC enforces the limit already; this keeps the promise if it did not. */
    if (len > c->srv->opts.max_request_bytes) {
        r = se_err_set(err, SE_EXHAUSTED, "request: %zu bytes is over the limit of %zu", len,
                       c->srv->opts.max_request_bytes);
    } else {
        const uint8_t *data = GRPC_SLICE_START_PTR(sl);
        /* protobuf-c would hand a string with a NUL in it over cut short at
         * the NUL: only the received bytes can tell, so every method's
         * request is walked once before it is unpacked. */
        r = pbcheck_message(m->request, data, len, err);
        if (r == 0) {
            *out = protobuf_c_message_unpack(m->request, NULL, len, data);
            if (!*out)
                r = se_err_set(err, SE_INVALID, "request: not a valid %s", m->request->name);
        }
    }
    grpc_slice_unref(sl);
    return r;
}

static int
call_encode(struct rpc_call *c, const ProtobufCMessage *resp, se_err *err)
{
    size_t size = protobuf_c_message_get_packed_size(resp);
    grpc_slice sl = grpc_slice_malloc(size);
    if (protobuf_c_message_pack(resp, GRPC_SLICE_START_PTR(sl)) != size) {
        grpc_slice_unref(sl);
        return se_err_set(err, SE_INTERNAL, "response: packed size mismatch");
    }
    c->resp = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    return 0;
}

/* Waits (under smu) until the send in flight completes, the client goes,
 * its deadline passes or it stalls. 0, or the se_code that ended the wait. */
static int
stream_wait(struct rpc_call *c, se_err *err)
{
    int64_t stall_at = clock_mono_ms() + RPC_STREAM_STALL_MS;
    while (c->s_busy) {
        if (atomic_load_explicit(&c->gone, memory_order_acquire))
            return se_err_set(err, SE_CANCELLED, "stream: the client went away");
        int64_t now = clock_mono_ms();
        if (now >= c->cancel.deadline_ms)
            return se_err_set(err, SE_DEADLINE, "stream: deadline exceeded");
        if (now >= stall_at)
            return se_err_set(err, SE_EXHAUSTED,
                              "stream: the client read nothing for %d ms; cut off",
                              RPC_STREAM_STALL_MS);
        int64_t until = stall_at < c->cancel.deadline_ms ? stall_at : c->cancel.deadline_ms;
        struct timespec ts = {.tv_sec = (time_t)(until / 1000),
                              .tv_nsec = (long)(until % 1000) * 1000000L};
        pthread_cond_timedwait(&c->scv, &c->smu, &ts);
    }
    return 0;
}

int
rpc_stream_send(rpc_stream *st, const ProtobufCMessage *msg, se_err *err)
{
    struct rpc_call *c = st->call;
    if (st->failed)
        return se_err_set(err, st->failed, "stream: an earlier message could not be sent");
    size_t size = protobuf_c_message_get_packed_size(msg);
    grpc_slice sl = grpc_slice_malloc(size);
    if (protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(sl)) != size) {
        grpc_slice_unref(sl);
        return se_err_set(err, SE_INTERNAL, "stream: packed size mismatch");
    }
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    grpc_op ops[2];
    size_t n = 0;
    memset(ops, 0, sizeof(ops));
    if (!c->md_sent) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        n++;
    }
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = bb;
    n++;
    pthread_mutex_lock(&c->smu);
    c->s_busy = true;
    c->s_buf = bb;
    pthread_mutex_unlock(&c->smu);
    atomic_fetch_add(&c->refs, 1);
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, &c->stream_tag, NULL);
    if (e != GRPC_CALL_OK) {
        atomic_fetch_sub(&c->refs, 1);
        pthread_mutex_lock(&c->smu);
        c->s_busy = false;
        c->s_buf = NULL;
        pthread_mutex_unlock(&c->smu);
        grpc_byte_buffer_destroy(bb);
        st->failed = SE_INTERNAL;
        return se_err_set(err, SE_INTERNAL, "stream: cannot send: grpc error %d", (int)e);
    }
    c->md_sent = true;
    se_err why;
    se_err_clear(&why);
    pthread_mutex_lock(&c->smu);
    int r = stream_wait(c, &why);
    bool ok = c->s_ok;
    bool busy = c->s_busy;
    pthread_mutex_unlock(&c->smu);
    if (r < 0) {
        st->failed = -r;
        /* The message may still be in flight: cancelling the call completes
         * it (the poller frees its buffer), and the status that follows
         * tells a client that is still there why. */
        if (busy)
            grpc_call_cancel_with_status(c->call, (grpc_status_code)rpc_status_for(-r), why.msg,
                                         NULL);
        if (err)
            *err = why;
        return r;
    }
    if (!ok) {
        st->failed = SE_CANCELLED;
        return se_err_set(err, SE_CANCELLED, "stream: the client went away");
    }
    return 0;
}

static void
call_run(struct rpc_call *c)
{
    rpc_server *s = c->srv;
    int64_t queued_us = clock_mono_us() - c->start_us;
    se_err err;
    se_err_clear(&err);
    ProtobufCMessage *req = NULL;
    ProtobufCMessage *resp = NULL;

    /* A call that waited in the queue past its deadline, or whose client
     * left, is not started. */
    const rpc_method *m = c->route->method;
    int r = se_cancel_check(&c->cancel, &err);
    if (r == 0)
        r = call_decode(c, &req, &err);
    if (r == 0 && m->stream) {
        rpc_stream st = {.call = c, .failed = 0};
        r = m->stream(s->svc, req, &st, &c->cancel, &err);
        if (req)
            protobuf_c_message_free_unpacked(req, NULL);
        int code = r == 0 ? SE_OK : (err.code ? err.code : -r);
        int status = rpc_status_for(code);
        log_call(c, status, queued_us, r < 0 ? &err : NULL);
        call_finish(c, status, r < 0 ? err.msg : NULL, false);
        return;
    }
    if (r == 0)
        r = m->handle(s->svc, req, &resp, &c->cancel, &err);
    if (r == 0 && !resp)
        r = se_err_set(&err, SE_INTERNAL, "%s: handler returned no response", c->route->name);
    if (r == 0)
        r = call_encode(c, resp, &err);
    if (req)
        protobuf_c_message_free_unpacked(req, NULL);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);

    int code = r == 0 ? SE_OK : (err.code ? err.code : -r);
    int status = rpc_status_for(code);
    log_call(c, status, queued_us, r < 0 ? &err : NULL);
    call_finish(c, status, r < 0 ? err.msg : NULL, false);
}

static void *
worker_main(void *arg)
{
    rpc_server *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (s->q_len == 0 && !s->stop_workers)
            pthread_cond_wait(&s->work_cv, &s->mu);
        if (s->q_len == 0) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        struct rpc_call *c = s->queue[s->q_head];
        s->q_head = (s->q_head + 1) % s->opts.queue_depth;
        s->q_len--;
        pthread_mutex_unlock(&s->mu);
        call_run(c);
        pthread_mutex_lock(&s->mu);
        if (--s->running == 0)
            pthread_cond_broadcast(&s->done_cv);
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

/* ---- listening ----------------------------------------------------------------------------- */

int
rpc_listen_is_local(const char *listen)
{
    if (strncmp(listen, "unix:", 5) == 0 || strncmp(listen, "unix-abstract:", 14) == 0)
        return 1;
    const char *a = listen;
    static const char *const schemes[] = {"dns:///", "ipv4:", "ipv6:"};
    for (size_t i = 0; i < 3; i++) {
        if (strncmp(a, schemes[i], strlen(schemes[i])) == 0) {
            a += strlen(schemes[i]);
            break;
        }
    }
    const char *colon = strrchr(a, ':');
    if (!colon)
        return 0;
    char host[INET6_ADDRSTRLEN + 8];
    size_t n = (size_t)(colon - a);
    if (n >= 2 && a[0] == '[' && a[n - 1] == ']') {
        a++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof(host))
        return 0;
    memcpy(host, a, n);
    host[n] = '\0';
    if (strcmp(host, "localhost") == 0)
        return 1;
    struct in_addr v4;
    struct in6_addr v6;
    if (inet_pton(AF_INET, host, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &v6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&v6))
            return 1;
        return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
    }
    /* Any other name may resolve anywhere: not local. */
    return 0;
}

static int
mkdir_parents(char *path, se_err *err)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int r = mkdir(path, 0755);
        int e = errno;
        *p = '/';
        if (r < 0 && e != EEXIST) {
            errno = e;
            return se_err_errno(err, SE_UNAVAILABLE, "create directory for the socket");
        }
    }
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        return se_err_errno(err, SE_UNAVAILABLE, "create directory %s", path);
    return 0;
}

/* Creates the socket's folder and removes a stale socket, but never one a
 * live server answers on, nor anything that is not a socket. */
static int
unix_prepare(const char *listen, se_err *err)
{
    const char *path = listen + 5;
    if (strncmp(path, "//", 2) == 0)
        path += 2;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (path[0] == '\0' || strlen(path) >= sizeof(sa.sun_path))
        return se_err_set(err, SE_INVALID, "--listen %s: bad unix socket path", listen);
    cleanup_free char *dir = strdup(path);
    if (!dir)
        return se_err_set(err, SE_INTERNAL, "out of memory");
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        int r = mkdir_parents(dir, err);
        if (r < 0)
            return se_err_prefix(err, "--listen %s", listen);
    }
    struct stat st;
    if (lstat(path, &st) < 0)
        return 0;
    if (!S_ISSOCK(st.st_mode))
        return se_err_set(err, SE_INVALID, "--listen %s: %s exists and is not a socket", listen,
                          path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return se_err_errno(err, SE_INTERNAL, "socket");
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
        return se_err_set(err, SE_UNAVAILABLE, "--listen %s: another server answers there", listen);
    if (unlink(path) < 0 && errno != ENOENT)
        return se_err_errno(err, SE_UNAVAILABLE, "remove stale socket %s", path);
    log_info("removed stale socket %s", path);
    return 0;
}

static int
read_pem(const char *path, char **out, se_err *err)
{
    cleanup_free uint8_t *buf = NULL;
    size_t got = 0;
    if (file_read_all(path, RPC_PEM_MAX, 0, &buf, &got, NULL, err) < 0) {
        if (!err)
            return -SE_INVALID;
        err->code = SE_INVALID;
        return se_err_prefix(err, "TLS file");
    }
    if (got == 0 || memchr(buf, '\0', got))
        return se_err_set(err, SE_INVALID, "read %s: empty or not PEM text", path);
    *out = (char *)steal_pointer(&buf);
    return 0;
}

/* opts are checked already (rpc_server_opts_check): cert and key come
 * together, and a client CA only with them. */
static int
make_creds(const rpc_server_opts *o, grpc_server_credentials **out, se_err *err)
{
    if (!o->tls_cert) {
        *out = grpc_insecure_server_credentials_create();
        return 0;
    }
    cleanup_free char *cert = NULL;
    cleanup_free char *key = NULL;
    cleanup_free char *ca = NULL;
    int r = read_pem(o->tls_cert, &cert, err);
    if (r == 0)
        r = read_pem(o->tls_key, &key, err);
    if (r == 0 && o->tls_client_ca)
        r = read_pem(o->tls_client_ca, &ca, err);
    if (r < 0)
        return r;
    grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
    *out = grpc_ssl_server_credentials_create_ex(
        ca, &pair, 1,
        ca ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
           : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
        NULL);
    /* The key's bytes do not linger in our heap. */
    explicit_bzero(key, strlen(key));
    if (!*out)
        return se_err_set(err, SE_INVALID, "TLS: gRPC refused the certificate or key");
    return 0;
}

/* ---- lifecycle ----------------------------------------------------------------------------- */

int
rpc_server_opts_check(const rpc_server_opts *opts, se_err *err)
{
    if (!opts->listen || !*opts->listen)
        return se_err_set(err, SE_INVALID, "--listen: empty address");
    if (opts->workers == 0 || opts->queue_depth == 0 || opts->max_request_bytes == 0)
        return se_err_set(err, SE_INVALID,
                          "rpc: workers, queue depth and request size must be > 0");
    if (!opts->tls_cert != !opts->tls_key)
        return se_err_set(err, SE_INVALID, "--tls-cert and --tls-key go together");
    if (opts->tls_client_ca && !opts->tls_cert)
        return se_err_set(err, SE_INVALID, "--tls-client-ca needs --tls-cert and --tls-key");
    if (!rpc_listen_is_local(opts->listen) && !opts->tls_cert && !opts->insecure_listen)
        return se_err_set(err, SE_INVALID,
                          "refusing to listen on %s without TLS: it is not a loopback address; "
                          "give --tls-cert and --tls-key, or --insecure-listen to allow "
                          "plain text",
                          opts->listen);
    return 0;
}

int
rpc_server_new(rpc_server **out, const rpc_server_opts *opts, const rpc_method *methods,
               size_t n_methods, void *svc, se_err *err)
{
    int r = rpc_server_opts_check(opts, err);
    if (r < 0)
        return r;
    if (!rpc_listen_is_local(opts->listen) && !opts->tls_cert)
        log_warn("listening on %s WITHOUT TLS (--insecure-listen): anyone who reaches it can "
                 "run code",
                 opts->listen);
    if (strncmp(opts->listen, "unix:", 5) == 0) {
        int r = unix_prepare(opts->listen, err);
        if (r < 0)
            return r;
    }

    rpc_server *s = calloc(1, sizeof(*s));
    if (!s)
        return se_err_set(err, SE_INTERNAL, "out of memory");
    s->opts = *opts;
    s->svc = svc;
    atomic_init(&s->shutting_down, false);
    atomic_init(&s->draining, false);
    s->shutdown_tag = (struct rpc_tag){TAG_SHUTDOWN, NULL};
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work_cv, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->done_cv, &ca);
    pthread_condattr_destroy(&ca);

    grpc_server_credentials *creds = NULL;
    s->queue = calloc(opts->queue_depth, sizeof(*s->queue));
    s->workers = calloc(opts->workers, sizeof(*s->workers));
    s->n_routes = n_methods + 2;
    s->routes = calloc(s->n_routes, sizeof(*s->routes));
    if (!s->queue || !s->workers || !s->routes) {
        r = se_err_set(err, SE_INTERNAL, "out of memory");
        goto fail;
    }
    r = make_creds(opts, &creds, err);
    if (r < 0)
        goto fail;

    grpc_init();
    s->grpc_inited = true;
    int max_recv = opts->max_request_bytes > INT_MAX ? INT_MAX : (int)opts->max_request_bytes;
    grpc_arg args[] = {
        {.type = GRPC_ARG_INTEGER,
         .key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         .value.integer = max_recv},
        /* Linux would otherwise let a second daemon bind the same port. */
        {.type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_ALLOW_REUSEPORT, .value.integer = 0},
    };
    grpc_channel_args chargs = {.num_args = sizeof(args) / sizeof(args[0]), .args = args};
    s->server = grpc_server_create(&chargs, NULL);
    s->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(s->server, s->cq, NULL);

    for (size_t i = 0; i < n_methods + 1; i++) {
        struct rpc_route *rt = &s->routes[i];
        const char *path = i < n_methods ? methods[i].path : HEALTH_PATH;
        rt->kind = i < n_methods ? ROUTE_METHOD : ROUTE_HEALTH;
        rt->method = i < n_methods ? &methods[i] : NULL;
        const char *slash = strrchr(path, '/');
        rt->name = i < n_methods ? (slash ? slash + 1 : path) : "Health/Check";
        rt->handle = grpc_server_register_method(s->server, path, NULL,
                                                 GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
        if (!rt->handle) {
            r = se_err_set(err, SE_INTERNAL, "rpc: cannot register %s", path);
            goto fail;
        }
    }
    s->routes[n_methods + 1] = (struct rpc_route){ROUTE_UNKNOWN, NULL, "unknown", NULL};

    if (grpc_server_add_http2_port(s->server, opts->listen, creds) == 0) {
        r = se_err_set(err, SE_UNAVAILABLE,
                       "cannot listen on %s (address in use, bad "
                       "address or no permission)",
                       opts->listen);
        goto fail;
    }
    grpc_server_credentials_release(creds);
    *out = s;
    return 0;
fail:
    if (creds)
        grpc_server_credentials_release(creds);
    rpc_server_free(s);
    return r;
}

static void
block_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static void *
poller_start(void *arg)
{
    block_signals();
    return poller_main(arg);
}

static void *
worker_start(void *arg)
{
    block_signals();
    return worker_main(arg);
}

int
rpc_server_start(rpc_server *s, se_err *err)
{
    grpc_server_start(s->server);
    s->started = true;
    for (unsigned i = 0; i < RPC_POLLERS; i++) {
        int e = pthread_create(&s->pollers[i], NULL, poller_start, s);
        if (e) {
            errno = e;
            return se_err_errno(err, SE_INTERNAL, "rpc: start poller thread");
        }
        s->n_pollers++;
    }
    for (unsigned i = 0; i < s->opts.workers; i++) {
        int e = pthread_create(&s->workers[i], NULL, worker_start, s);
        if (e) {
            errno = e;
            return se_err_errno(err, SE_INTERNAL, "rpc: start worker thread");
        }
        s->n_workers++;
    }
    for (size_t i = 0; i < s->n_routes; i++) {
        for (unsigned k = 0; k < RPC_SLOTS; k++) {
            if (arm(s, &s->routes[i]) < 0)
                return se_err_set(err, SE_INTERNAL, "rpc: cannot request calls for %s",
                                  s->routes[i].name);
        }
    }
    return 0;
}

void
rpc_server_shutdown(rpc_server *s)
{
    if (!s || !s->started || s->stopped)
        return;
    s->stopped = true;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += s->opts.grace_ms / 1000;
    until.tv_nsec += (long)(s->opts.grace_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    /* Drain first: health says NOT_SERVING (a load balancer or probe moves
     * away) and new calls are refused while the running ones finish. */
    atomic_store(&s->draining, true);
    pthread_mutex_lock(&s->mu);
    while (s->running > 0) {
        if (pthread_cond_timedwait(&s->done_cv, &s->mu, &until) == ETIMEDOUT)
            break;
    }
    bool drained = s->running == 0;
    pthread_mutex_unlock(&s->mu);

    atomic_store(&s->shutting_down, true);
    grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
    /* Nothing of ours runs any more: only idle connections and health calls
     * are left, and gRPC would wait seconds for clients to close them. */
    if (drained)
        grpc_server_cancel_all_calls(s->server);
    pthread_mutex_lock(&s->mu);
    while (!s->shutdown_done && s->n_pollers > 0) {
        if (pthread_cond_timedwait(&s->done_cv, &s->mu, &until) == ETIMEDOUT)
            break;
    }
    bool done = s->shutdown_done;
    pthread_mutex_unlock(&s->mu);
    if (!done) {
        log_warn("shutdown: grace of %u ms is over, cancelling the calls still running",
                 s->opts.grace_ms);
        grpc_server_cancel_all_calls(s->server);
        pthread_mutex_lock(&s->mu);
        while (!s->shutdown_done && s->n_pollers > 0)
            pthread_cond_wait(&s->done_cv, &s->mu);
        pthread_mutex_unlock(&s->mu);
    }

    pthread_mutex_lock(&s->mu);
    s->stop_workers = true;
    pthread_cond_broadcast(&s->work_cv);
    pthread_mutex_unlock(&s->mu);
    for (unsigned i = 0; i < s->n_workers; i++)
        pthread_join(s->workers[i], NULL);
    s->n_workers = 0;

    grpc_completion_queue_shutdown(s->cq);
    if (s->n_pollers == 0)
        poller_main(s); /* no poller ever started: drain the queue here */
    for (unsigned i = 0; i < s->n_pollers; i++)
        pthread_join(s->pollers[i], NULL);
    s->n_pollers = 0;
}

void
rpc_server_free(rpc_server *s)
{
    if (!s)
        return;
    if (s->started && !s->stopped)
        rpc_server_shutdown(s);
    if (s->server) {
        if (!s->started) {
            /* Never started: there is nothing in flight, but gRPC still wants
             * a shutdown before destroy. */
            grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
            grpc_server_cancel_all_calls(s->server);
        }
        grpc_server_destroy(s->server);
    }
    if (s->cq) {
        if (!s->started) {
            grpc_completion_queue_shutdown(s->cq);
            for (;;) {
                grpc_event ev =
                    grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
                if (ev.type == GRPC_QUEUE_SHUTDOWN)
                    break;
            }
        }
        grpc_completion_queue_destroy(s->cq);
    }
    if (s->grpc_inited)
        grpc_shutdown();
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->work_cv);
    pthread_cond_destroy(&s->done_cv);
    free(s->queue);
    free(s->workers);
    free(s->routes);
    free(s);
}
