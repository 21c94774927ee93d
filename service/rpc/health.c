/* grpc.health.v1: the serving state and Health/Watch (Check is answered
 * inline by server.c from rpc_health_serving).
 *
 * SERVING means the server takes calls and its backend, the Docker engine,
 * answers. A thread probes the engine every interval_ms (GET /_ping: one
 * small request); an engine request that fails anywhere in the daemon
 * (metrics_engine_error) makes it probe at once, so the state follows real
 * calls too. Draining (SIGTERM) is NOT_SERVING for good. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grpc/health/v1/health.pb-c.h"
#include "rpc/internal.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/metrics.h"

/* A failed engine call probes at once, but not more often than this. */
#define HEALTH_KICK_MIN_MS 500
/* How often a watcher looks at its client (gone, deadline). */
#define HEALTH_WATCH_POLL_MS 500

struct rpc_health {
    int (*probe)(void *ud, se_err *err);
    void *ud;
    unsigned interval_ms;

    pthread_mutex_t mu;
    pthread_cond_t probe_cv; /* the prober: kick or stop */
    pthread_cond_t watch_cv; /* watchers: gen moved or draining */
    bool engine_up, draining, stop, kick;
    uint64_t gen;
    atomic_bool serving; /* engine_up && !draining, for the inline Check */
    pthread_t thread;
    bool thread_started;
};

/* metrics_engine_error's hook must never reach a freed rpc_health, even
 * from a thread of another layer that fails while the server is freed. */
static pthread_mutex_t hook_mu = PTHREAD_MUTEX_INITIALIZER;
static rpc_health *hooked;

static void
publish(rpc_health *h)
{
    bool up = h->engine_up && !h->draining;
    atomic_store(&h->serving, up);
    metrics_set_engine_up(h->engine_up);
    h->gen++;
    pthread_cond_broadcast(&h->watch_cv);
}

static void
engine_failed(void *ud)
{
    (void)ud;
    pthread_mutex_lock(&hook_mu);
    rpc_health *h = hooked;
    if (h) {
        pthread_mutex_lock(&h->mu);
        h->kick = true;
        pthread_cond_signal(&h->probe_cv);
        pthread_mutex_unlock(&h->mu);
    }
    pthread_mutex_unlock(&hook_mu);
}

static void
timespec_after_ms(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void *
prober_main(void *arg)
{
    rpc_health *h = arg;
    int64_t last = clock_mono_ms();
    pthread_mutex_lock(&h->mu);
    while (!h->stop) {
        int64_t now = clock_mono_ms();
        int64_t due = last + h->interval_ms;
        if (h->kick && now - last >= HEALTH_KICK_MIN_MS)
            due = now;
        if (now < due) {
            struct timespec until;
            timespec_after_ms(&until, due - now);
            pthread_cond_timedwait(&h->probe_cv, &h->mu, &until);
            continue;
        }
        h->kick = false;
        pthread_mutex_unlock(&h->mu);
        se_err err;
        se_err_clear(&err);
        bool up = h->probe(h->ud, &err) == 0;
        last = clock_mono_ms();
        pthread_mutex_lock(&h->mu);
        if (up != h->engine_up) {
            if (up)
                log_info("health: the Docker engine answers again: SERVING");
            else
                log_warn("health: NOT_SERVING: %s", err.msg);
            h->engine_up = up;
            publish(h);
        }
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

int
rpc_health_new(rpc_health **out, int (*probe)(void *ud, se_err *err), void *ud,
               unsigned interval_ms, se_err *err)
{
    rpc_health *h = calloc(1, sizeof(*h));
    if (!h)
        return se_err_set(err, SE_INTERNAL, "out of memory");
    h->probe = probe;
    h->ud = ud;
    h->interval_ms = interval_ms ? interval_ms : 5000;
    h->engine_up = true;
    atomic_init(&h->serving, true);
    pthread_mutex_init(&h->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->probe_cv, &ca);
    pthread_cond_init(&h->watch_cv, &ca);
    pthread_condattr_destroy(&ca);
    *out = h;
    return 0;
}

int
rpc_health_start(rpc_health *h, se_err *err)
{
    if (!h->probe)
        return 0;
    int e = pthread_create(&h->thread, NULL, prober_main, h);
    if (e)
        return se_err_set(err, SE_INTERNAL, "health: cannot start the probe thread (%d)", e);
    h->thread_started = true;
    pthread_mutex_lock(&hook_mu);
    hooked = h;
    pthread_mutex_unlock(&hook_mu);
    metrics_set_engine_error_hook(engine_failed, NULL);
    return 0;
}

void
rpc_health_drain(rpc_health *h)
{
    pthread_mutex_lock(&h->mu);
    if (!h->draining) {
        h->draining = true;
        publish(h);
    }
    pthread_mutex_unlock(&h->mu);
}

void
rpc_health_free(rpc_health *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&hook_mu);
    if (hooked == h)
        hooked = NULL;
    pthread_mutex_unlock(&hook_mu);
    if (h->thread_started) {
        pthread_mutex_lock(&h->mu);
        h->stop = true;
        pthread_cond_signal(&h->probe_cv);
        pthread_mutex_unlock(&h->mu);
        pthread_join(h->thread, NULL);
    }
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->probe_cv);
    pthread_cond_destroy(&h->watch_cv);
    free(h);
}

bool
rpc_health_serving(rpc_health *h)
{
    return atomic_load(&h->serving);
}

/* Watch: the current state first, then every change, until the client
 * leaves or the server drains (then NOT_SERVING, and the call ends
 * UNAVAILABLE). An unknown service gets SERVICE_UNKNOWN and the call stays
 * open, as the protocol asks (our services never change, so nothing
 * follows). */
static int
watch(void *svc, const ProtobufCMessage *req, rpc_call *call, const se_cancel *cancel, se_err *err)
{
    rpc_health *h = svc;
    const Grpc__Health__V1__HealthCheckRequest *r = (const void *)req;
    bool known =
        !r->service || !r->service[0] || strcmp(r->service, "safeeval.v1.SandboxService") == 0;
    int last = -1;
    for (;;) {
        pthread_mutex_lock(&h->mu);
        uint64_t gen = h->gen;
        bool draining = h->draining;
        bool up = h->engine_up && !h->draining;
        pthread_mutex_unlock(&h->mu);
        int st = !known ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN
                 : up   ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                        : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
        if (st != last) {
            Grpc__Health__V1__HealthCheckResponse resp =
                GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
            resp.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)st;
            int rc = rpc_call_send(call, &resp.base, err);
            if (rc < 0)
                return rc;
            last = st;
        }
        if (draining)
            return se_err_set(err, SE_UNAVAILABLE, "the server is shutting down");
        int rc = se_cancel_check(cancel, err);
        if (rc < 0)
            return rc;
        struct timespec until;
        timespec_after_ms(&until, HEALTH_WATCH_POLL_MS);
        pthread_mutex_lock(&h->mu);
        if (h->gen == gen)
            pthread_cond_timedwait(&h->watch_cv, &h->mu, &until);
        pthread_mutex_unlock(&h->mu);
    }
}

const rpc_method rpc_health_watch_method = {
    .path = "/grpc.health.v1.Health/Watch",
    .request = &grpc__health__v1__health_check_request__descriptor,
    .stream = watch,
};
