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
 * it, always from a poller or from the holder that failed to start a batch.
 *
 * Streaming calls (rpc_call_send / rpc_call_recv) start one batch at a time
 * with the call's op tag and wait on the call's condition variable until a
 * poller reports it done. The long-lived streams of the server itself
 * (Health/Watch, reflection) run on a thread of their own each, bounded per
 * method, so they never hold a worker; the application's streaming methods
 * run on the workers like unary ones. */
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
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/status.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "rpc/audit.h"
#include "rpc/identity.h"
#include "rpc/peer.h"
#include "rpc/internal.h"
#include "util/cleanup.h"
#include "util/clock.h"
#include "util/file.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/pbcheck.h"
#include "util/version.h"

#define RPC_POLLERS 2
/* Requests kept armed per method: a burst is accepted without waiting for a
 * poller to re-arm. */
#define RPC_SLOTS 2
#define RPC_PEM_MAX (1u << 20)
#define HEALTH_PATH "/grpc.health.v1.Health/Check"
/* A streaming call waiting for its batch looks at the server's state this
 * often (shutdown cancels a stream that waits for its client). */
#define RPC_STREAM_POLL_MS 500
/* A streamed message the client has not taken after this long cancels the
 * call (RESOURCE_EXHAUSTED): a client that stops reading must not hold a
 * worker thread and a sandbox's worker for ever. */
#define RPC_STREAM_STALL_MS 60000

enum tag_kind { TAG_REQUEST, TAG_CLOSE, TAG_SEND, TAG_SHUTDOWN, TAG_OP };

struct rpc_call;

struct rpc_tag {
    enum tag_kind kind;
    struct rpc_call *call;
};

enum route_kind { ROUTE_METHOD, ROUTE_HEALTH, ROUTE_UNKNOWN };

struct rpc_route {
    enum route_kind kind;
    const rpc_method *method; /* ROUTE_METHOD only */
    const char *name;         /* for text logs: "Eval" */
    const char *path;         /* "/safeeval.v1.SandboxService/Eval" */
    void *handle;             /* from grpc_server_register_method */
    void *svc;                /* the handler's first argument */
    /* > 0: every call runs on a thread of its own, at most this many at
     * once (more: RESOURCE_EXHAUSTED); 0: the worker pool. */
    unsigned max_live;
    unsigned live; /* under the server's mu */
    int metrics_id;
};

struct rpc_call {
    rpc_server *srv;
    /* Streaming: the one batch in flight (op_tag) and its outcome. */
    pthread_mutex_t op_mu;
    pthread_cond_t op_cv;
    bool op_done, op_ok;
    bool sent_initial_md;
    bool stalled; /* a send gave up on the client (RPC_STREAM_STALL_MS) */
    grpc_byte_buffer *recv_buf;
    struct rpc_tag op_tag;
    grpc_metadata trailing[2];
    bool has_trailing_id; /* trailing[0].value is ours to unref */
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
    struct rpc_tag req_tag, close_tag, send_tag;
    /* who and what, for the handler and the audit line */
    rpc_identity who;
    bool has_who;
    char peer[96];
    char request_id[RPC_REQUEST_ID_MAX + 1];
    char sandbox[RPC_AUDIT_SANDBOX_MAX + 1];
};

struct rpc_server {
    rpc_server_opts opts;
    void *svc;
    rpc_auth *auth;
    rpc_peers *peers; /* the unix socket when we accept it ourselves */
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
    unsigned running; /* calls queued, in a worker or on a stream thread (mu) */
    /* Set at SIGTERM: health answers NOT_SERVING and new calls UNAVAILABLE
     * while the calls in flight finish, before the server stops accepting. */
    atomic_bool draining;
    atomic_bool shutting_down;
    struct rpc_tag shutdown_tag;
    pthread_attr_t detached;

    rpc_health *health;
    rpc_reflection *reflection;
    rpc_tls *tls;

    bool started, stopped, grpc_inited;
};

/* ---- helpers ------------------------------------------------------------------------------ */

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
    c->op_tag = (struct rpc_tag){TAG_OP, c};
    c->cancel = (se_cancel){.deadline_ms = INT64_MAX, .is_cancelled = call_is_cancelled, .ud = c};
    pthread_mutex_init(&c->op_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->op_cv, &ca);
    pthread_condattr_destroy(&ca);
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
    if (c->recv_buf)
        grpc_byte_buffer_destroy(c->recv_buf);
    if (c->has_trailing_id)
        grpc_slice_unref(c->trailing[0].value);
    pthread_mutex_destroy(&c->op_mu);
    pthread_cond_destroy(&c->op_cv);
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
    if (!c->sent_initial_md) {
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
    /* Keys and the version are static strings; the request id is copied
     * (gRPC may hold a value past the call, in its header tables). */
    c->trailing[0].key = grpc_slice_from_static_string("x-request-id");
    c->trailing[0].value = grpc_slice_from_copied_string(c->request_id);
    c->has_trailing_id = true;
    c->trailing[1].key = grpc_slice_from_static_string("safeeval-version");
    c->trailing[1].value = grpc_slice_from_static_string(rpc_version());
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.trailing_metadata_count = 2;
    ops[n].data.send_status_from_server.trailing_metadata = c->trailing;
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

const char *
rpc_version(void)
{
    return se_version();
}

/* Counts the call and writes its line: fields method, code, duration_ms,
 * sandbox, peer, request_id (and queued_us, error) at `level` (INFO, or
 * DEBUG for the chatty health checks). */
static void
log_call_at(int level, const struct rpc_call *c, int status, int64_t queued_us, const se_err *err)
{
    metrics_rpc_done(c->route->metrics_id, status);
    if (log_current_level < level)
        return;
    /* Error messages can quote client fields: only our own failures (engine
     * gone, bugs) are worth their text at INFO; the rest goes to DEBUG. */
    bool ours = status == GRPC_STATUS_INTERNAL || status == GRPC_STATUS_UNAVAILABLE;
    rpc_audit a = {
        .identity = c->has_who ? (c->who.name[0] ? c->who.name : "anonymous") : NULL,
        .admin = c->has_who && c->who.admin,
        .peer = c->peer,
        .method = c->route->name,
        .path = c->route->path,
        .sandbox = c->sandbox,
        .status = status,
        .duration_ms = (double)(clock_mono_us() - c->start_us) / 1000.0,
        .queued_us = queued_us,
        .request_id = c->request_id,
        .error = err && ours ? err->msg : NULL,
    };
    rpc_audit_log(level, &a);
    if (err && err->msg[0] && !ours)
        log_debug("rpc %s error: %s", c->route->name, err->msg);
}

/* ---- identities ---------------------------------------------------------------------------- */

static bool
slice_eq(grpc_slice sl, const char *s)
{
    size_t n = strlen(s);
    return GRPC_SLICE_LENGTH(sl) == n && memcmp(GRPC_SLICE_START_PTR(sl), s, n) == 0;
}

/* The call's peer for the audit line, and ours if it came through our unix
 * socket (*pe filled, returns 1). */
static int
call_peer(struct rpc_call *c, rpc_peer *pe)
{
    int ours = 0;
    char *p = grpc_call_get_peer(c->call);
    if (p && rpc_peers_lookup(c->srv->peers, p, pe) == 0) {
        snprintf(c->peer, sizeof(c->peer), "unix:uid=%u,pid=%d", (unsigned)pe->uid, (int)pe->pid);
        ours = 1;
    } else {
        snprintf(c->peer, sizeof(c->peer), "%s", p ? p : "");
    }
    gpr_free(p);
    return ours;
}

/* The first value of property `name` in the call's auth context. */
static int
auth_property(grpc_call *call, const char *name, char *out, size_t cap, size_t *len)
{
    grpc_auth_context *ctx = grpc_call_auth_context(call);
    if (!ctx)
        return -1;
    grpc_auth_property_iterator it = grpc_auth_context_find_properties_by_name(ctx, name);
    const grpc_auth_property *p = grpc_auth_property_iterator_next(&it);
    int rc = -1;
    if (p && p->value_length > 0 && p->value_length < cap) {
        memcpy(out, p->value, p->value_length);
        out[p->value_length] = '\0';
        *len = p->value_length;
        rc = 0;
    }
    grpc_auth_context_release(ctx);
    return rc;
}

/* Who the call is from: the request id, the peer, then the identity, in
 * this order: a bearer token of --tokens, the client certificate (mTLS),
 * the unix peer through --unix-identities; with none of those options, the
 * anonymous tenant. Returns 0, or -1 with *why for UNAUTHENTICATED (never
 * quoting what the client sent). */
static int
call_identify(struct rpc_call *c, const char **why)
{
    rpc_server *s = c->srv;
    const grpc_slice *auth = NULL;
    size_t n_auth = 0;
    for (size_t i = 0; i < c->md.count; i++) {
        if (slice_eq(c->md.metadata[i].key, "authorization")) {
            auth = &c->md.metadata[i].value;
            n_auth++;
        }
    }
    rpc_peer pe;
    bool unix_peer = call_peer(c, &pe) == 1;

    if (auth && rpc_auth_has_tokens(s->auth)) {
        static const char bearer[] = "bearer ";
        size_t len = GRPC_SLICE_LENGTH(*auth);
        const char *v = (const char *)GRPC_SLICE_START_PTR(*auth);
        if (n_auth > 1) {
            *why = "more than one authorization header";
            return -1;
        }
        if (len <= sizeof(bearer) - 1 || strncasecmp(v, bearer, sizeof(bearer) - 1) != 0) {
            *why = "the authorization header is not 'Bearer <token>'";
            return -1;
        }
        if (rpc_auth_token(s->auth, v + sizeof(bearer) - 1, len - (sizeof(bearer) - 1), &c->who) <
            0) {
            *why = "invalid bearer token";
            return -1;
        }
        c->has_who = true;
        return 0;
    }
    if (s->opts.tls_client_ca) {
        /* gRPC verified the chain already (REQUIRE_AND_VERIFY): the name is
         * the certificate's subject CN, else its first SAN. */
        char name[RPC_IDENTITY_MAX + 1];
        size_t len = 0;
        if ((auth_property(c->call, GRPC_X509_CN_PROPERTY_NAME, name, sizeof(name), &len) == 0 ||
             auth_property(c->call, GRPC_X509_SAN_PROPERTY_NAME, name, sizeof(name), &len) == 0) &&
            rpc_auth_named(s->auth, name, len, &c->who) == 0) {
            c->has_who = true;
            return 0;
        }
    }
    if (unix_peer && rpc_auth_has_unix(s->auth) &&
        rpc_auth_unix(s->auth, pe.uid, pe.user[0] ? pe.user : NULL, &c->who) == 0) {
        c->has_who = true;
        return 0;
    }
    if (!rpc_auth_required(s->auth)) {
        rpc_auth_anonymous(s->auth, &c->who);
        c->has_who = true;
        return 0;
    }
    *why = rpc_auth_has_tokens(s->auth) ? "no valid bearer token" : "no identity";
    return -1;
}

static void
log_call(const struct rpc_call *c, int status, int64_t queued_us, const se_err *err)
{
    log_call_at(LOG_INFO, c, status, queued_us, err);
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
        e = grpc_server_request_registered_call(
            s->server, rt->handle, &c->call, &c->deadline, &c->md,
            !rt->method || rt->method->request ? &c->payload : NULL, s->cq, s->cq, &c->req_tag);
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
        bool up = rpc_health_serving(c->srv->health);
        grpc_slice sl = grpc_slice_from_static_buffer(up ? serving : not_serving, 2);
        c->resp = grpc_raw_byte_buffer_create(&sl, 1);
    } else if (known == 0) {
        status = GRPC_STATUS_NOT_FOUND;
        msg = "unknown service";
    } else {
        status = GRPC_STATUS_INVALID_ARGUMENT;
        msg = "malformed HealthCheckRequest";
    }
    log_call_at(LOG_DEBUG, c, status, 0, NULL);
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

/* x-request-id from the client if it is a plain token (it is echoed in logs
 * and metadata), else a fresh random one (audit.c). */
static void
call_set_request_id(struct rpc_call *c)
{
    for (size_t i = 0; i < c->md.count; i++) {
        const grpc_metadata *m = &c->md.metadata[i];
        if (!grpc_slice_str_cmp(m->key, "x-request-id")) {
            rpc_request_id(c->request_id, (const char *)GRPC_SLICE_START_PTR(m->value),
                           GRPC_SLICE_LENGTH(m->value));
            return;
        }
    }
    rpc_request_id(c->request_id, NULL, 0);
}

static void call_run(struct rpc_call *c);

static void *
stream_thread_main(void *arg)
{
    struct rpc_call *c = arg;
    rpc_server *s = c->srv;
    const struct rpc_route *rt = c->route;
    call_run(c);
    pthread_mutex_lock(&s->mu);
    ((struct rpc_route *)rt)->live--;
    if (--s->running == 0)
        pthread_cond_broadcast(&s->done_cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Starts a thread of its own for a long-lived stream of the server's; -1
 * when the method has max_live streams already or no thread can start. */
static int
stream_thread_start(rpc_server *s, struct rpc_call *c)
{
    struct rpc_route *rt = (struct rpc_route *)c->route;
    pthread_mutex_lock(&s->mu);
    if (rt->live >= rt->max_live) {
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    rt->live++;
    s->running++;
    pthread_mutex_unlock(&s->mu);
    pthread_t th;
    if (pthread_create(&th, &s->detached, stream_thread_main, c) != 0) {
        pthread_mutex_lock(&s->mu);
        rt->live--;
        if (--s->running == 0)
            pthread_cond_broadcast(&s->done_cv);
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    return 0;
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
    call_set_request_id(c);

    if (c->route->kind == ROUTE_HEALTH) {
        health_answer(c);
        return;
    }
    const char *why = NULL;
    int who = call_identify(c, &why);
    if (c->route->kind == ROUTE_UNKNOWN) {
        unknown_answer(c);
        return;
    }
    if (who < 0) {
        char msg[160];
        snprintf(msg, sizeof(msg), "unauthenticated: %s", why);
        log_call(c, GRPC_STATUS_UNAUTHENTICATED, 0, NULL);
        call_finish(c, GRPC_STATUS_UNAUTHENTICATED, msg, true);
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

    if (c->route->max_live > 0) {
        if (stream_thread_start(s, c) < 0) {
            char msg[128];
            snprintf(msg, sizeof(msg), "server busy: %u %s streams are open already",
                     c->route->max_live, c->route->name);
            log_call(c, GRPC_STATUS_RESOURCE_EXHAUSTED, 0, NULL);
            call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, msg, false);
        }
        return;
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
            if (t->call->cancelled)
                atomic_store_explicit(&t->call->gone, true, memory_order_release);
            call_release(t->call);
            break;
        case TAG_SEND:
            call_release(t->call);
            break;
        case TAG_OP: {
            struct rpc_call *c = t->call;
            pthread_mutex_lock(&c->op_mu);
            c->op_done = true;
            c->op_ok = ev.success != 0;
            pthread_cond_signal(&c->op_cv);
            pthread_mutex_unlock(&c->op_mu);
            /* The waiting handler holds the holder's reference: this one
             * (the batch's) is never the last. */
            call_release(c);
            break;
        }
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

/* Unpacks *bufp (destroyed and set to NULL) as a `desc`. */
static int
call_decode(struct rpc_call *c, const ProtobufCMessageDescriptor *desc, grpc_byte_buffer **bufp,
            ProtobufCMessage **out, se_err *err)
{
    if (!*bufp)
        return se_err_set(err, SE_INVALID, "request: no message");
    grpc_byte_buffer_reader rd;
    if (!grpc_byte_buffer_reader_init(&rd, *bufp))
        return se_err_set(err, SE_INVALID, "request: cannot read the message");
    grpc_slice sl = grpc_byte_buffer_reader_readall(&rd);
    grpc_byte_buffer_reader_destroy(&rd);
    grpc_byte_buffer_destroy(*bufp);
    *bufp = NULL;
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
        r = pbcheck_message(desc, data, len, err);
        if (r == 0) {
            *out = protobuf_c_message_unpack(desc, NULL, len, data);
            if (!*out)
                r = se_err_set(err, SE_INVALID, "request: not a valid %s", desc->name);
        }
    }
    grpc_slice_unref(sl);
    return r;
}

static int
encode(grpc_byte_buffer **out, const ProtobufCMessage *resp, se_err *err)
{
    size_t size = protobuf_c_message_get_packed_size(resp);
    grpc_slice sl = grpc_slice_malloc(size);
    if (protobuf_c_message_pack(resp, GRPC_SLICE_START_PTR(sl)) != size) {
        grpc_slice_unref(sl);
        return se_err_set(err, SE_INTERNAL, "response: packed size mismatch");
    }
    *out = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    return 0;
}

/* Copies a string field named `name` of msg (if it has one) into the call's
 * sandbox id for the log line, printable bytes only. */
const char *
rpc_call_request_id(const rpc_call *c)
{
    return c->request_id;
}

const char *
rpc_call_peer(const rpc_call *c)
{
    return c->peer;
}

const rpc_identity *
rpc_call_who(const rpc_call *c)
{
    return &c->who;
}

/* Starts ops with the op tag and waits for them. While waiting, a server
 * that shuts down cancels a call that waits for its client (cancel_on_drain:
 * a receive), so an idle stream never holds the shutdown's grace. Returns
 * -1 if the batch could not start, else the batch's success (0/1). */
static int
call_op(struct rpc_call *c, const grpc_op *ops, size_t n, bool cancel_on_drain, int64_t stall_ms)
{
    int64_t give_up = stall_ms > 0 ? clock_mono_ms() + stall_ms : INT64_MAX;
    pthread_mutex_lock(&c->op_mu);
    c->op_done = false;
    pthread_mutex_unlock(&c->op_mu);
    atomic_fetch_add(&c->refs, 1);
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, &c->op_tag, NULL);
    if (e != GRPC_CALL_OK) {
        log_error("rpc %s: grpc_call_start_batch error %d", c->route->name, (int)e);
        atomic_fetch_sub(&c->refs, 1);
        return -1;
    }
    bool cancelled = false;
    pthread_mutex_lock(&c->op_mu);
    while (!c->op_done) {
        if (cancel_on_drain && !cancelled && atomic_load(&c->srv->draining)) {
            pthread_mutex_unlock(&c->op_mu);
            grpc_call_cancel_with_status(c->call, GRPC_STATUS_UNAVAILABLE,
                                         "the server is shutting down", NULL);
            cancelled = true;
            pthread_mutex_lock(&c->op_mu);
            continue;
        }
        if (!cancelled && clock_mono_ms() >= give_up) {
            /* A client that takes nothing holds a worker and a run: cut. */
            pthread_mutex_unlock(&c->op_mu);
            grpc_call_cancel_with_status(c->call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                                         "the client took no message for too long", NULL);
            cancelled = true;
            c->stalled = true;
            pthread_mutex_lock(&c->op_mu);
            continue;
        }
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += RPC_STREAM_POLL_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&c->op_cv, &c->op_mu, &until);
    }
    bool ok = c->op_ok;
    pthread_mutex_unlock(&c->op_mu);
    return ok ? 1 : 0;
}

/* Why a send failed, the same for every later one. */
static int
send_failed(struct rpc_call *c, se_err *err)
{
    if (c->stalled)
        return se_err_set(err, SE_EXHAUSTED, "send: the client took no message for %d s",
                          RPC_STREAM_STALL_MS / 1000);
    if (c->cancel.deadline_ms != INT64_MAX && clock_mono_ms() >= c->cancel.deadline_ms)
        return se_err_set(err, SE_DEADLINE, "send: the client's deadline passed");
    return se_err_set(err, SE_CANCELLED, "send: the client is gone");
}

int
rpc_call_send(rpc_call *c, const ProtobufCMessage *msg, se_err *err)
{
    if (c->stalled || call_is_cancelled(c))
        return send_failed(c, err);
    grpc_byte_buffer *bb = NULL;
    int r = encode(&bb, msg, err);
    if (r < 0)
        return r;
    grpc_op ops[2];
    size_t n = 0;
    memset(ops, 0, sizeof(ops));
    if (!c->sent_initial_md) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        n++;
    }
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = bb;
    n++;
    /* Health/Watch and reflection send rarely and wait on their own
     * threads; a run's stream must not wait on a client forever. */
    int ok = call_op(c, ops, n, false, c->route->max_live ? 0 : RPC_STREAM_STALL_MS);
    grpc_byte_buffer_destroy(bb);
    if (ok < 0)
        return se_err_set(err, SE_INTERNAL, "send: gRPC refused the batch");
    c->sent_initial_md = true;
    if (!ok)
        return send_failed(c, err);
    return 0;
}

int
rpc_call_recv(rpc_call *c, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out,
              se_err *err)
{
    *out = NULL;
    if (atomic_load(&c->srv->draining))
        return se_err_set(err, SE_UNAVAILABLE, "the server is shutting down");
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->recv_buf;
    int ok = call_op(c, &op, 1, true, 0);
    if (ok < 0)
        return se_err_set(err, SE_INTERNAL, "receive: gRPC refused the batch");
    if (!ok) {
        if (c->recv_buf) {
            grpc_byte_buffer_destroy(c->recv_buf);
            c->recv_buf = NULL;
        }
        if (atomic_load(&c->srv->draining))
            return se_err_set(err, SE_UNAVAILABLE, "the server is shutting down");
        return se_err_set(err, SE_CANCELLED, "receive: the client is gone");
    }
    if (!c->recv_buf)
        return 0; /* the client closed its side */
    int r = call_decode(c, desc, &c->recv_buf, out, err);
    return r < 0 ? r : 1;
}

static void
call_run(struct rpc_call *c)
{
    int64_t queued_us = clock_mono_us() - c->start_us;
    se_err err;
    se_err_clear(&err);
    ProtobufCMessage *req = NULL;
    ProtobufCMessage *resp = NULL;

    /* A call that waited in the queue past its deadline, or whose client
     * left, is not started. */
    const rpc_method *m = c->route->method;
    int r = se_cancel_check(&c->cancel, &err);
    if (r == 0 && m->request)
        r = call_decode(c, m->request, &c->payload, &req, &err);
    if (r == 0 && m->stream) {
        r = m->stream(c->route->svc, req, c, &c->cancel, &err);
    } else if (r == 0) {
        r = m->handle(c->route->svc, &c->who, req, &resp, &c->cancel, &err);
        if (r == 0 && !resp)
            r = se_err_set(&err, SE_INTERNAL, "%s: handler returned no response", c->route->name);
        if (r == 0)
            r = encode(&c->resp, resp, &err);
    }
    rpc_audit_sandbox(c->sandbox, req, r == 0 ? resp : NULL);
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

/* The rights of a socket's folder we create: whoever may use the socket
 * may enter the folder (r-x), the owner may write it. */
static mode_t
dir_mode_for(unsigned sock_mode)
{
    mode_t m = 0700;
    if (sock_mode & 0070)
        m |= 0050;
    if (sock_mode & 0007)
        m |= 0005;
    return m;
}

/* Creates the socket's folder (the last one with rights matching the
 * socket's, given to --socket-group; see below for one that exists) and removes a stale socket, but
 * never one a live server answers on, nor anything that is not a socket. */
static int
unix_prepare(const char *listen, unsigned sock_mode, bool set_gid, gid_t gid, se_err *err)
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
        struct stat dst;
        bool existed = stat(dir, &dst) == 0;
        int r = mkdir_parents(dir, err);
        if (r < 0)
            return se_err_prefix(err, "--listen %s", listen);
        /* A folder that was there is left as it is, unless a --socket-group
         * is given and it is the daemon's own (not a shared one like /tmp):
         * a folder an earlier start made without the group would lock the
         * group out. */
        bool ours = existed && set_gid && dst.st_uid == geteuid() && S_ISDIR(dst.st_mode) &&
                    !(dst.st_mode & (S_IWOTH | S_ISVTX));
        if (!existed || ours) {
            if (set_gid && chown(dir, (uid_t)-1, gid) < 0)
                return se_err_errno(err, SE_UNAVAILABLE, "give %s to group %u", dir, (unsigned)gid);
            if (chmod(dir, dir_mode_for(sock_mode)) < 0)
                return se_err_errno(err, SE_UNAVAILABLE, "chmod %s", dir);
        }
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

/* ---- lifecycle ----------------------------------------------------------------------------- */

/* Registers "/pkg.Service/Method" with the metrics as (pkg.Service, Method). */
static int
route_metrics_id(const char *path)
{
    char service[128];
    const char *p = path[0] == '/' ? path + 1 : path;
    const char *slash = strchr(p, '/');
    if (!slash || (size_t)(slash - p) >= sizeof(service))
        return metrics_rpc_method("", p);
    memcpy(service, p, (size_t)(slash - p));
    service[slash - p] = '\0';
    return metrics_rpc_method(service, slash + 1);
}

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
    if (opts->socket_mode > 0777)
        return se_err_set(err, SE_INVALID, "--socket-mode: %o is not a permission mode",
                          opts->socket_mode);
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
    bool set_gid = opts->socket_group != NULL;
    gid_t gid = 0;
    if (set_gid && (r = rpc_socket_group(&gid, opts->socket_group, err)) < 0)
        return r;
    bool is_unix = strncmp(opts->listen, "unix:", 5) == 0;
    const char *unix_path = NULL;
    if (is_unix) {
        r = unix_prepare(opts->listen, opts->socket_mode, set_gid, gid, err);
        if (r < 0)
            return r;
        unix_path = opts->listen + 5;
        if (strncmp(unix_path, "//", 2) == 0)
            unix_path += 2;
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

    pthread_attr_init(&s->detached);
    pthread_attr_setdetachstate(&s->detached, PTHREAD_CREATE_DETACHED);

    grpc_server_credentials *creds = NULL;
    s->queue = calloc(opts->queue_depth, sizeof(*s->queue));
    s->workers = calloc(opts->workers, sizeof(*s->workers));
    /* the application's, Health/Watch, reflection v1 and v1alpha, Health/Check, unknown */
    size_t n_internal = 3;
    s->n_routes = n_methods + n_internal + 2;
    s->routes = calloc(s->n_routes, sizeof(*s->routes));
    if (!s->queue || !s->workers || !s->routes) {
        r = se_err_set(err, SE_INTERNAL, "out of memory");
        goto fail;
    }
    r = rpc_health_new(&s->health, opts->health_probe, opts->health_probe_ud,
                       opts->health_interval_ms, err);
    if (r == 0)
        r = rpc_reflection_new(&s->reflection, err);
    if (r == 0) {
        if (opts->tls_cert)
            r = rpc_tls_new(&s->tls, &creds, opts, err);
        else
            creds = grpc_insecure_server_credentials_create();
    }
    if (r < 0)
        goto fail;
    r = rpc_auth_new(&s->auth, opts, err);
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

    const struct {
        const rpc_method *m;
        void *svc;
        unsigned max_live;
        const char *name;
    } internal[] = {
        {&rpc_health_watch_method, s->health, RPC_HEALTH_MAX_WATCHERS, "Health/Watch"},
        {&rpc_reflection_methods[0], s->reflection, RPC_REFLECTION_MAX_STREAMS,
         "ServerReflectionInfo"},
        {&rpc_reflection_methods[1], s->reflection, RPC_REFLECTION_MAX_STREAMS,
         "v1alpha.ServerReflectionInfo"},
    };
    for (size_t i = 0; i < n_methods + n_internal + 1; i++) {
        struct rpc_route *rt = &s->routes[i];
        if (i < n_methods) {
            const char *slash = strrchr(methods[i].path, '/');
            *rt = (struct rpc_route){.kind = ROUTE_METHOD,
                                     .method = &methods[i],
                                     .name = slash ? slash + 1 : methods[i].path,
                                     .svc = svc};
        } else if (i < n_methods + n_internal) {
            size_t k = i - n_methods;
            *rt = (struct rpc_route){.kind = ROUTE_METHOD,
                                     .method = internal[k].m,
                                     .name = internal[k].name,
                                     .svc = internal[k].svc,
                                     .max_live = internal[k].max_live};
        } else {
            *rt = (struct rpc_route){.kind = ROUTE_HEALTH, .name = "Health/Check"};
        }
        rt->path = rt->method ? rt->method->path : HEALTH_PATH;
        /* Methods without a request message read the client's stream. */
        bool payload = !rt->method || rt->method->request;
        rt->handle = grpc_server_register_method(
            s->server, rt->path, NULL,
            payload ? GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER : GRPC_SRM_PAYLOAD_NONE, 0);
        if (!rt->handle) {
            r = se_err_set(err, SE_INTERNAL, "rpc: cannot register %s", rt->path);
            goto fail;
        }
        rt->metrics_id = route_metrics_id(rt->path);
    }
    s->routes[s->n_routes - 1] = (struct rpc_route){
        .kind = ROUTE_UNKNOWN, .name = "unknown", .path = "unknown", .metrics_id = -1};
    s->routes[s->n_routes - 1].metrics_id = metrics_rpc_method("unknown", "unknown");

    if (is_unix && !opts->tls_cert) {
        /* Accepted by us, so each call's peer uid is known (peer.c). */
        r = rpc_peers_listen(&s->peers, unix_path, opts->socket_mode, set_gid, gid, err);
        if (r < 0) {
            se_err_prefix(err, "cannot listen on %s", opts->listen);
            goto fail;
        }
    } else if (grpc_server_add_http2_port(s->server, opts->listen, creds) == 0) {
        r = se_err_set(err, SE_UNAVAILABLE,
                       "cannot listen on %s (address in use, bad "
                       "address or no permission)",
                       opts->listen);
        goto fail;
    } else if (is_unix &&
               (r = rpc_socket_apply(unix_path, opts->socket_mode, set_gid, gid, err)) < 0) {
        goto fail;
    }
    grpc_server_credentials_release(creds);
    if (!rpc_auth_required(s->auth))
        log_info("no identity options (--tokens, --tls-client-ca, --unix-identities): every "
                 "caller is the one anonymous tenant and sees every sandbox");
    else
        log_info("identities:%s%s%s; a call without one answers UNAUTHENTICATED",
                 opts->tokens_file ? " bearer tokens" : "",
                 opts->tls_client_ca ? " client certificates" : "",
                 opts->unix_identities_file ? " unix socket peers" : "");
    if (opts->unix_identities_file && !s->peers)
        log_warn("--unix-identities: no caller gets a socket identity: the daemon does not "
                 "accept a unix socket itself here (%s)",
                 is_unix ? "TLS on a unix socket is gRPC's own listener" : "not a unix socket");
    if (is_unix)
        log_info("socket %s: mode %04o%s%s", unix_path, opts->socket_mode,
                 set_gid ? ", group " : "", set_gid ? opts->socket_group : "");
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
    int r = rpc_health_start(s->health, err);
    if (r < 0)
        return r;
    grpc_server_start(s->server);
    s->started = true;
    if (s->peers) {
        int r = rpc_peers_start(s->peers, s->server, err);
        if (r < 0)
            return r;
    }
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
    rpc_health_drain(s->health);
    pthread_mutex_lock(&s->mu);
    while (s->running > 0) {
        if (pthread_cond_timedwait(&s->done_cv, &s->mu, &until) == ETIMEDOUT)
            break;
    }
    bool drained = s->running == 0;
    pthread_mutex_unlock(&s->mu);

    atomic_store(&s->shutting_down, true);
    rpc_peers_stop(s->peers);
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
    /* The streams on threads of their own are detached: every call is
     * cancelled by now, so they end at once; none may outlive the server. */
    pthread_mutex_lock(&s->mu);
    while (s->running > 0)
        pthread_cond_wait(&s->done_cv, &s->mu);
    pthread_mutex_unlock(&s->mu);

    grpc_completion_queue_shutdown(s->cq);
    if (s->n_pollers == 0)
        poller_main(s); /* no poller ever started: drain the queue here */
    for (unsigned i = 0; i < s->n_pollers; i++)
        pthread_join(s->pollers[i], NULL);
    s->n_pollers = 0;
}

void
rpc_server_reload(rpc_server *s)
{
    if (!s)
        return;
    se_err err;
    se_err_clear(&err);
    if (!s->tls)
        log_info("SIGHUP: no TLS files to reload");
    else if (rpc_tls_reload(s->tls, &err) < 0)
        log_error("SIGHUP: kept the TLS certificate in use: %s", err.msg);
    else
        log_info("SIGHUP: reloaded the TLS certificate, key and client CA");
    if (!s->auth || (!s->opts.tokens_file && !s->opts.unix_identities_file))
        return;
    se_err_clear(&err);
    if (rpc_auth_reload(s->auth, &err) < 0)
        log_warn("SIGHUP: identities NOT reloaded, the earlier ones stay in force: %s", err.msg);
    else
        log_info("SIGHUP: identities reloaded (%s%s%s)",
                 s->opts.tokens_file ? s->opts.tokens_file : "",
                 s->opts.tokens_file && s->opts.unix_identities_file ? ", " : "",
                 s->opts.unix_identities_file ? s->opts.unix_identities_file : "");
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
    /* Before grpc_shutdown: the accept thread uses gRPC until it stops, and
     * the credentials' certificate fetcher is ours until the server is gone. */
    rpc_peers_free(s->peers);
    rpc_tls_free(s->tls);
    rpc_health_free(s->health);
    rpc_reflection_free(s->reflection);
    if (s->grpc_inited)
        grpc_shutdown();
    rpc_auth_free(s->auth);
    pthread_attr_destroy(&s->detached);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->work_cv);
    pthread_cond_destroy(&s->done_cv);
    free(s->queue);
    free(s->workers);
    free(s->routes);
    free(s);
}
