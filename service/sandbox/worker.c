/* One worker container: made from the sandbox's image with the hardened
 * body, started, and attached once; from then on its agent serves runs over
 * that stream (agent.proto), one at a time. The thread that holds a worker
 * is the only one that touches its stream. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "agent/frame.h"
#include "sandbox/internal.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/metrics.h"

/* How long a new agent may take to answer its first sync. */
#define WORKER_SYNC_MS 10000
/* How long one read of the stream waits before cancel and deadlines are
 * looked at again: a client's cancel reaches the agent within this. */
#define WORKER_TICK_MS 20
/* A worker whose stream ended mid-run: its exit is looked for this often,
 * this many times, before the engine is taken to have nothing to say. */
#define WORKER_DEATH_POLLS 20
#define WORKER_DEATH_POLL_MS 100
/* How long sending a run's request may take (up to FRAME_MAX bytes). */
#define WORKER_SEND_MS 30000
#define EVENTS_CAP (FRAME_HDR + SANDBOX_EVENT_MAX + 65536)

uint64_t
sandbox_worker_memory(uint64_t run_memory)
{
    return run_memory + SANDBOX_WORKER_MEMORY_RESERVE;
}

uint64_t
sandbox_worker_charge(const sandbox_spec *spec)
{
    uint64_t mem = sandbox_worker_memory(spec->limits.memory_bytes);
    if (spec->runner == SAFEEVAL__V1__RUNNER__RUNNER_ZYGOTE)
        mem += SANDBOX_ZYGOTE_START_MEMORY;
    return mem;
}

static sandbox_worker *
worker_alloc(const char *cid, uint64_t memory)
{
    sandbox_worker *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->container_id = strdup(cid);
    if (!w->container_id) {
        free(w);
        return NULL;
    }
    w->memory_limit = memory;
    se_buf_init(&w->events, EVENTS_CAP);
    metrics_gauge_add(METRICS_WORKERS, 1);
    return w;
}

/* More than this many containers the engine would not remove means it is
 * gone for good: the rest are left to the next recovery's labels. */
#define GRAVEYARD_MAX 4096

void
sandbox_container_discard(sandbox_manager *m, const char *cid)
{
    se_err e;
    se_err_clear(&e);
    if (docker_container_remove(m->dc, cid, &e) == 0 || e.code == SE_NOT_FOUND)
        return;
    log_warn("remove worker %.12s: %s (tried again later)", cid, e.msg);
    char *dup = strdup(cid);
    pthread_mutex_lock(&m->reg.mu);
    char **g = dup && m->n_graveyard < GRAVEYARD_MAX
                   ? realloc(m->graveyard, (m->n_graveyard + 1) * sizeof(*g))
                   : NULL;
    if (g) {
        m->graveyard = g;
        m->graveyard[m->n_graveyard++] = dup;
        dup = NULL;
    }
    pthread_mutex_unlock(&m->reg.mu);
    if (dup) {
        log_error("worker %.12s cannot be kept for removal: left to the next recovery", cid);
        free(dup);
    }
}

void
sandbox_graveyard_retry(sandbox_manager *m)
{
    pthread_mutex_lock(&m->reg.mu);
    char **g = m->graveyard;
    size_t n = m->n_graveyard;
    m->graveyard = NULL;
    m->n_graveyard = 0;
    pthread_mutex_unlock(&m->reg.mu);
    for (size_t i = 0; i < n; i++) {
        sandbox_container_discard(m, g[i]);
        free(g[i]);
    }
    free(g);
}

void
sandbox_worker_free(sandbox_manager *m, sandbox_worker *w, bool remove)
{
    if (!w)
        return;
    if (w->stream)
        docker_stream_close(w->stream);
    if (remove)
        sandbox_container_discard(m, w->container_id);
    se_buf_free(&w->events);
    free(w->container_id);
    free(w);
    metrics_gauge_add(METRICS_WORKERS, -1);
}

/* Waits up to timeout_ms until a whole frame is at the front of w->events:
 * 1 when it is (*payload, *len), 0 when none came in time, negative when the
 * stream ended or broke its framing. */
static int
worker_event(sandbox_worker *w, const uint8_t **payload, uint32_t *len, int timeout_ms, se_err *err)
{
    int64_t until = clock_mono_ms() + timeout_ms;
    for (;;) {
        size_t used;
        int fr = frame_parse(w->events.data, w->events.len, SANDBOX_EVENT_MAX, payload, len, &used);
        if (fr < 0)
            return se_err_set(err, SE_PROTOCOL, "agent: event frame over %u bytes",
                              SANDBOX_EVENT_MAX);
        if (fr == 1)
            return 1;
        int64_t left = until - clock_mono_ms();
        if (left <= 0)
            return 0;
        uint8_t tmp[65536];
        size_t n = 0;
        int rc = docker_stream_recv(w->stream, tmp, sizeof(tmp), (int)left, &n, err);
        if (rc < 0) {
            const char *why = docker_stream_stderr(w->stream);
            if (why && *why)
                log_debug("worker %.12s: agent stderr: %s", w->container_id, why);
            return rc;
        }
        if (n && se_buf_append(&w->events, tmp, n) < 0)
            return se_err_set(err, SE_PROTOCOL, "agent: event frame over %u bytes",
                              SANDBOX_EVENT_MAX);
    }
}

/* Drops the frame at the front of w->events. */
static void
worker_consume(sandbox_worker *w, uint32_t len)
{
    size_t n = FRAME_HDR + (size_t)len;
    memmove(w->events.data, w->events.data + n, w->events.len - n);
    w->events.len -= n;
}

static int
worker_ctl(sandbox_worker *w, uint64_t id, enum sandbox_ctl op, se_err *err)
{
    uint8_t buf[64];
    size_t n = sandbox_ctl_frame(buf, id, op);
    return docker_stream_send(w->stream, buf, n, clock_mono_ms() + WORKER_SYNC_MS, err);
}

/* Waits for the Done of run id, skipping its other events, and acks it. */
static int
worker_finish(sandbox_worker *w, uint64_t id, int64_t until, se_err *err)
{
    for (;;) {
        const uint8_t *p;
        uint32_t len;
        int64_t left = until - clock_mono_ms();
        if (left <= 0)
            return se_err_set(err, SE_UNAVAILABLE, "agent: run %" PRIu64 " did not end", id);
        int r = worker_event(w, &p, &len, (int)left, err);
        if (r < 0)
            return r;
        if (r == 0)
            continue;
        Safeeval__Agent__V1__State *st = NULL;
        uint64_t done = 0;
        r = sandbox_state_parse(&st, &done, p, len, err);
        if (st)
            safeeval__agent__v1__state__free_unpacked(st, NULL);
        worker_consume(w, len);
        if (r < 0)
            return r;
        if (done == id)
            return worker_ctl(w, id, SANDBOX_CTL_ACK, err);
    }
}

/* Sync: the agent says what it is doing; whatever it is, bring it to idle.
 * A new agent answers idle at once. */
static int
worker_sync(sandbox_worker *w, se_err *err)
{
    int rc = worker_ctl(w, 0, SANDBOX_CTL_SYNC, err);
    if (rc < 0)
        return rc;
    int64_t until = clock_mono_ms() + WORKER_SYNC_MS;
    Safeeval__Agent__V1__State *st = NULL;
    while (!st) {
        const uint8_t *p;
        uint32_t len;
        int64_t left = until - clock_mono_ms();
        if (left <= 0)
            return se_err_set(err, SE_UNAVAILABLE, "agent: no answer to sync within %d ms",
                              WORKER_SYNC_MS);
        int r = worker_event(w, &p, &len, (int)left, err);
        if (r < 0)
            return r;
        if (r == 0)
            continue;
        uint64_t done = 0;
        r = sandbox_state_parse(&st, &done, p, len, err);
        worker_consume(w, len);
        if (r < 0)
            return r;
        /* Events of a run from before the attach are dropped: the state
         * that follows says whether that run still needs an ack. */
    }
    rc = 0;
    if (!st->cgroup || !*st->cgroup)
        rc = se_err_set(err, SE_INTERNAL,
                        "agent: the worker's cgroup counters are unreadable, so it refuses runs");
    /* A zygote sandbox whose zygote is not up refuses every run: a preload
     * that does not import is the create's failure, named. */
    if (rc == 0 && st->zygote_error && *st->zygote_error)
        rc = se_err_set(err, SE_PRECONDITION, "preload: %.400s", st->zygote_error);
    w->zygote_memory = st->zygote_memory_bytes;
    if (rc == 0 && st->running)
        rc = worker_ctl(w, st->running, SANDBOX_CTL_CANCEL, err);
    if (rc == 0 && st->running)
        rc = worker_finish(w, st->running, until, err);
    if (rc == 0 && st->unacked && st->unacked != st->running)
        rc = worker_finish(w, st->unacked, until, err);
    if (rc == 0)
        log_debug("worker %.12s: agent %.32s, cgroup %.4s, idle baseline %" PRIu64 " bytes",
                  w->container_id, st->build_id ? st->build_id : "?", st->cgroup,
                  st->memory_baseline_bytes);
    safeeval__agent__v1__state__free_unpacked(st, NULL);
    return rc;
}

int
sandbox_worker_adopt(sandbox_manager *m, const char *cid, uint64_t memory, sandbox_worker **out,
                     se_err *err)
{
    *out = NULL;
    sandbox_worker *w = worker_alloc(cid, memory);
    if (!w)
        return se_err_set(err, SE_INTERNAL, "out of memory");
    int rc = docker_stream_attach(m->dc, cid, &w->stream, err);
    if (rc == 0)
        rc = worker_sync(w, err);
    if (rc < 0) {
        sandbox_worker_free(m, w, false);
        return se_err_prefix(err, "worker %.12s", cid);
    }
    *out = w;
    return 0;
}

int
sandbox_worker_new(sandbox_manager *m, const sandbox_entry *e, uint64_t memory,
                   sandbox_worker **out, const se_cancel *cancel, se_err *err)
{
    *out = NULL;
    cJSON *body = NULL;
    char *cid = NULL;
    sandbox_worker *w = NULL;
    int64_t t0 = clock_mono_ms();
    int rc = sandbox_container_body(&body, &m->cfg, m->seccomp_json, &e->spec, e->id, e->image,
                                    memory, err);
    if (rc < 0)
        return rc;
    char suffix[SANDBOX_ID_LEN + 1];
    rc = sandbox_new_id(suffix, err);
    if (rc < 0)
        goto out;
    char name[SANDBOX_ID_MAX + 32];
    snprintf(name, sizeof(name), "safeeval-%s-%.8s", e->id, suffix);
    rc = docker_container_create(m->dc, name, body, &cid, err);
    if (rc < 0) {
        se_err_prefix(err, "create worker container");
        goto out;
    }
    /* From here on, any failure removes the container. */
    if ((rc = se_cancel_check(cancel, err)) < 0)
        goto out;
    rc = docker_container_start(m->dc, cid, err);
    if (rc < 0) {
        se_err_prefix(err, "start worker container");
        goto out;
    }
    w = worker_alloc(cid, memory);
    if (!w) {
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto out;
    }
    rc = docker_stream_attach(m->dc, cid, &w->stream, err);
    if (rc == 0)
        rc = worker_sync(w, err);
    if (rc == 0 && e->spec.runner == SAFEEVAL__V1__RUNNER__RUNNER_ZYGOTE) {
        /* The zygote is up: the room it had to start goes, the worker is
         * the run's memory + the reserve + what the zygote holds. */
        uint64_t exact = memory + w->zygote_memory;
        rc = docker_container_update_memory(m->dc, cid, exact, err);
        if (rc == 0)
            w->memory_limit = exact;
    }
    if (rc < 0) {
        se_err_prefix(err, "worker %.12s", cid);
        goto out;
    }
    log_debug("sandbox %s: worker %.12s ready in %lld ms", e->id, cid,
              (long long)(clock_mono_ms() - t0));
    *out = w;
    w = NULL;
out:
    if (rc < 0 && w) {
        sandbox_worker_free(m, w, true);
    } else if (rc < 0 && cid) {
        sandbox_container_discard(m, cid);
    }
    free(cid);
    cJSON_Delete(body);
    return rc;
}

/* A result for a run whose agent did not answer after its wall time and a
 * cancel: what the daemon saw of it, ended by the wall limit. */
static Safeeval__V1__ExecResult *
overdue_result(sandbox_run_acc *a, int64_t elapsed_us)
{
    Safeeval__V1__ExecResult *r = malloc(sizeof(*r));
    if (!r)
        return NULL;
    safeeval__v1__exec_result__init(r);
    r->reason = SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_WALL_TIMEOUT;
    r->signal = 9;
    r->exit_code = -9;
    r->wall_time_us = (uint64_t)elapsed_us;
    r->stdout_bytes = a->out_got;
    r->stderr_bytes = a->err_got;
    a->result = r;
    return sandbox_run_take(a);
}

/* The worker's stream ended in the middle of a run. The worker's cgroup is
 * the run's fence: once the run's tmpfs files hold its last pages, the
 * kernel's OOM killer may take the agent itself (nothing of the run is left
 * to kill, the files stay charged until the jail's mounts are gone). If the
 * engine saw an OOM kill in the container, which has ended, the run did
 * reach its memory limit: MEMORY_LIMIT with the output had so far, its peak
 * the worker's limit. NULL otherwise (the agent died of something else:
 * the caller answers UNAVAILABLE). */
static Safeeval__V1__ExecResult *
died_of_memory(docker_client *dc, sandbox_worker *w, sandbox_run_acc *a, int64_t t0)
{
    /* The stream can end a moment before the engine records the exit. */
    bool oom = false;
    for (int i = 0; i < WORKER_DEATH_POLLS && !oom; i++) {
        if (i) {
            struct timespec ts = {0, WORKER_DEATH_POLL_MS * 1000000L};
            nanosleep(&ts, NULL);
        }
        cJSON *ins = NULL;
        se_err e;
        se_err_clear(&e);
        if (docker_container_inspect(dc, w->container_id, &ins, &e) < 0)
            return NULL;
        oom = docker_inspect_oom_ended(ins);
        cJSON_Delete(ins);
    }
    if (!oom)
        return NULL;
    Safeeval__V1__ExecResult *r = malloc(sizeof(*r));
    if (!r)
        return NULL;
    safeeval__v1__exec_result__init(r);
    r->reason = SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_MEMORY_LIMIT;
    r->signal = 9;
    r->exit_code = -9;
    r->wall_time_us = (uint64_t)(clock_mono_ms() - t0) * 1000;
    r->max_rss_bytes = w->memory_limit;
    r->stdout_bytes = a->out_got;
    r->stderr_bytes = a->err_got;
    a->result = r;
    log_warn("worker %.12s: its agent was killed by the OOM killer during a run: MEMORY_LIMIT, "
             "replacing the worker",
             w->container_id);
    return sandbox_run_take(a);
}

int
sandbox_worker_run(sandbox_worker *w, docker_client *dc, uint64_t id, const sandbox_run_input *in,
                   const sandbox_limits *lim, Safeeval__V1__ExecResult **out,
                   sandbox_output_fn sink, void *sink_ud, const se_cancel *cancel, se_err *err)
{
    *out = NULL;
    uint8_t *frame = NULL;
    size_t frame_len = 0;
    int rc = sandbox_run_frame(&frame, &frame_len, id, in, lim, err);
    if (rc < 0)
        return rc;
    int64_t t0 = clock_mono_ms();
    rc = docker_stream_send(w->stream, frame, frame_len, t0 + WORKER_SEND_MS, err);
    free(frame);
    if (rc < 0) {
        w->broken = true;
        return se_err_prefix(err, "send the run to worker %.12s", w->container_id);
    }
    sandbox_run_acc acc;
    sandbox_run_acc_init(&acc, id, lim);
    acc.sink = sink;
    acc.sink_ud = sink_ud;
    acc.collect = in->collect;
    acc.n_collect = in->n_collect;
    /* The server's own deadline: the agent's wall timer should end the run
     * first; past this it is told to, and past the grace it is replaced. */
    int64_t deadline = t0 + (int64_t)lim->wall_time_ms + SANDBOX_RUN_GRACE_MS;
    int64_t cancel_sent = 0;
    int gone = 0; /* the caller's cancel or deadline: its se_code */
    se_err gone_err;
    se_err_clear(&gone_err);
    bool overdue = false;
    for (;;) {
        const uint8_t *p;
        uint32_t len;
        int r = worker_event(w, &p, &len, WORKER_TICK_MS, err);
        if (r < 0) {
            w->broken = true;
            if (err->code == SE_UNAVAILABLE && !gone &&
                (*out = died_of_memory(dc, w, &acc, t0)) != NULL) {
                rc = 0;
                goto out;
            }
            rc = se_err_prefix(err, "worker %.12s", w->container_id);
            goto out;
        }
        if (r == 1) {
            r = sandbox_run_feed(&acc, p, len, err);
            worker_consume(w, len);
            if (r < 0) {
                w->broken = true;
                rc = se_err_prefix(err, "worker %.12s", w->container_id);
                goto out;
            }
            if (r == 1)
                break;
        }
        int64_t now = clock_mono_ms();
        if (!cancel_sent) {
            int c = se_cancel_check(cancel, &gone_err);
            if (c < 0) {
                gone = -c;
            } else if (acc.sink_failed) {
                /* The stream's client went away, ran out of time or stalled. */
                gone_err = acc.sink_err;
                gone = gone_err.code ? gone_err.code : SE_CANCELLED;
            } else if (now >= deadline + acc.sink_ms) {
                /* Time the sink held this thread is not the agent's: it
                 * could not send while nobody read. */
                overdue = true;
            }
            if (gone)
                acc.sink_failed = true; /* the rest of the output is dropped */
            if (gone || overdue) {
                cancel_sent = now;
                if (worker_ctl(w, id, SANDBOX_CTL_CANCEL, err) < 0) {
                    w->broken = true;
                    rc = se_err_prefix(err, "cancel on worker %.12s", w->container_id);
                    goto out;
                }
            }
        } else if (now - cancel_sent >= SANDBOX_RUN_GRACE_MS) {
            /* The agent does not answer: the worker goes, the run with it. */
            w->broken = true;
            log_warn("worker %.12s: run %" PRIu64 " not ended %d ms after a cancel: replacing it",
                     w->container_id, id, SANDBOX_RUN_GRACE_MS);
            if (gone) {
                *err = gone_err;
                rc = -gone;
            } else if (!(*out = overdue_result(&acc, (now - t0) * 1000))) {
                rc = se_err_set(err, SE_INTERNAL, "out of memory");
            }
            goto out;
        }
    }
    if (!gone && acc.sink_failed) {
        /* The sink failed on the run's last output: the run is over, the
         * call still fails. */
        gone_err = acc.sink_err;
        gone = gone_err.code ? gone_err.code : SE_CANCELLED;
    }
    if (worker_ctl(w, id, SANDBOX_CTL_ACK, err) < 0)
        w->broken = true; /* the result is had; the next run finds out */
    if (!acc.clean) {
        w->broken = true;
        log_warn("worker %.12s: run %" PRIu64 " left something behind: replacing the worker",
                 w->container_id, id);
    }
    if (gone) {
        *err = gone_err;
        rc = -gone;
    } else if (acc.agent_error[0]) {
        rc = se_err_set(err, SE_INTERNAL, "agent: %s", acc.agent_error);
    } else {
        *out = sandbox_run_take(&acc);
        if (overdue && *out) {
            /* Past its wall time and the grace: the cancel ended it. */
            (*out)->reason = SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_WALL_TIMEOUT;
        }
        rc = *out ? 0 : se_err_set(err, SE_INTERNAL, "out of memory");
    }
out:
    sandbox_run_acc_clear(&acc);
    return rc;
}
