/* A sandbox's workers and its run queue, and the host's memory budget.
 *
 * All state lives under the registry lock. A run takes an idle worker, or
 * makes a new one while the sandbox has fewer than max_runs and the budget
 * has room, or waits its turn in the sandbox's FIFO: only the head of the
 * queue may take a worker, so runs are served in arrival order. A waiting
 * run gives up at its caller's deadline or cancel. Workers are made and
 * removed outside the lock (engine calls take tens of milliseconds). */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "sandbox/internal.h"
#include "util/clock.h"
#include "util/log.h"

/* A waiting run looks at its cancel this often. */
#define POOL_WAIT_TICK_MS 20

int
sandbox_pool_charge(sandbox_manager *m, uint64_t bytes, se_err *err)
{
    int rc = 0;
    pthread_mutex_lock(&m->reg.mu);
    if (m->memory_used + bytes > m->cfg.max_memory_total)
        rc = se_err_set(err, SE_EXHAUSTED,
                        "max-memory-total (%" PRIu64 " bytes) reached: %" PRIu64
                        " bytes of worker memory in use, %" PRIu64 " more asked for",
                        m->cfg.max_memory_total, m->memory_used, bytes);
    else
        m->memory_used += bytes;
    pthread_mutex_unlock(&m->reg.mu);
    return rc;
}

void
sandbox_pool_uncharge(sandbox_manager *m, uint64_t bytes)
{
    pthread_mutex_lock(&m->reg.mu);
    m->memory_used = m->memory_used > bytes ? m->memory_used - bytes : 0;
    pthread_mutex_unlock(&m->reg.mu);
}

/* The budget a worker of e holds: sized for the sandbox's own memory limit,
 * whatever a run asks for (a run may only lower it). */
static uint64_t
worker_charge(const sandbox_entry *e)
{
    return sandbox_worker_charge(&e->spec);
}

static void
link_worker(sandbox_entry *e, sandbox_worker *w)
{
    w->next = e->workers;
    e->workers = w;
    e->n_workers++;
}

static void
unlink_worker(sandbox_entry *e, sandbox_worker *w)
{
    for (sandbox_worker **pp = &e->workers; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            w->next = NULL;
            e->n_workers--;
            return;
        }
}

static void
queue_remove(sandbox_entry *e, sandbox_waiter *me)
{
    for (sandbox_waiter **pp = &e->queue; *pp; pp = &(*pp)->next)
        if (*pp == me) {
            *pp = me->next;
            e->n_queued--;
            /* The next in line may be able to go now. */
            pthread_cond_broadcast(&e->cv);
            return;
        }
}

static sandbox_worker *
idle_worker(sandbox_entry *e)
{
    for (sandbox_worker *w = e->workers; w; w = w->next)
        if (!w->busy && !w->broken)
            return w;
    return NULL;
}

void
sandbox_pool_add(sandbox_manager *m, sandbox_entry *e, sandbox_worker *w)
{
    pthread_mutex_lock(&m->reg.mu);
    w->busy = false;
    w->idle_since_ms = clock_mono_ms();
    link_worker(e, w);
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&m->reg.mu);
}

int
sandbox_pool_acquire(sandbox_manager *m, sandbox_entry *e, uint64_t memory, sandbox_worker **out,
                     const se_cancel *cancel, se_err *err)
{
    *out = NULL;
    sandbox_waiter me = {.next = NULL};
    bool queued = false;
    int64_t t0 = clock_mono_ms();
    pthread_mutex_lock(&m->reg.mu);
    for (;;) {
        if (e->dead) {
            if (queued)
                queue_remove(e, &me);
            pthread_mutex_unlock(&m->reg.mu);
            return se_err_set(err, SE_NOT_FOUND, "sandbox %s was destroyed", e->id);
        }
        if (!queued || e->queue == &me) {
            sandbox_worker *w = idle_worker(e);
            if (w) {
                w->busy = true;
                if (queued)
                    queue_remove(e, &me);
                pthread_mutex_unlock(&m->reg.mu);
                *out = w;
                return 0;
            }
            uint64_t charge = worker_charge(e);
            /* Ready pool workers give way to a sandbox's run. */
            if (e->n_workers + e->n_starting < e->spec.max_runs &&
                sandbox_warm_evict_locked(m, charge)) {
                m->memory_used += charge;
                e->n_starting++;
                if (queued)
                    queue_remove(e, &me);
                pthread_mutex_unlock(&m->reg.mu);
                sandbox_worker *nw = NULL;
                int rc = sandbox_worker_new(m, e, sandbox_worker_memory(memory), &nw, cancel, err);
                pthread_mutex_lock(&m->reg.mu);
                e->n_starting--;
                if (rc < 0) {
                    m->memory_used -= charge;
                    pthread_cond_broadcast(&e->cv);
                    pthread_mutex_unlock(&m->reg.mu);
                    return se_err_prefix(err, "sandbox %s: new worker", e->id);
                }
                nw->busy = true;
                link_worker(e, nw);
                pthread_mutex_unlock(&m->reg.mu);
                log_info("sandbox %s: worker %.12s added (%u of at most %u)", e->id,
                         nw->container_id, e->n_workers, e->spec.max_runs);
                *out = nw;
                return 0;
            }
            if (e->n_workers + e->n_starting == 0) {
                /* Nothing to wait for: the budget has no room for even one. */
                if (queued)
                    queue_remove(e, &me);
                uint64_t used = m->memory_used;
                pthread_mutex_unlock(&m->reg.mu);
                return se_err_set(err, SE_EXHAUSTED,
                                  "sandbox %s: max-memory-total (%" PRIu64 " bytes) has no room "
                                  "for a worker of %" PRIu64 " bytes (%" PRIu64 " in use)",
                                  e->id, m->cfg.max_memory_total, charge, used);
            }
        }
        if (!queued) {
            if (e->n_queued >= m->cfg.max_queued_runs) {
                pthread_mutex_unlock(&m->reg.mu);
                return se_err_set(err, SE_EXHAUSTED,
                                  "sandbox %s: %u runs wait already (max-queued-runs)", e->id,
                                  e->n_queued);
            }
            sandbox_waiter **pp = &e->queue;
            while (*pp)
                pp = &(*pp)->next;
            *pp = &me;
            e->n_queued++;
            queued = true;
        }
        int rc = se_cancel_check(cancel, err);
        if (rc < 0) {
            queue_remove(e, &me);
            pthread_mutex_unlock(&m->reg.mu);
            if (rc == -SE_DEADLINE)
                se_err_set(
                    err, SE_DEADLINE,
                    "deadline exceeded after %lld ms waiting for a free worker of sandbox %s",
                    (long long)(clock_mono_ms() - t0), e->id);
            return rc;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += POOL_WAIT_TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&e->cv, &m->reg.mu, &ts);
    }
}

void
sandbox_pool_release(sandbox_manager *m, sandbox_entry *e, sandbox_worker *w)
{
    pthread_mutex_lock(&m->reg.mu);
    bool drop = w->broken || e->dead;
    if (drop) {
        unlink_worker(e, w);
        m->memory_used -= m->memory_used >= worker_charge(e) ? worker_charge(e) : m->memory_used;
    } else {
        w->busy = false;
        w->idle_since_ms = clock_mono_ms();
    }
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&m->reg.mu);
    if (drop) {
        log_info("sandbox %s: worker %.12s removed (%s)", e->id, w->container_id,
                 e->dead ? "sandbox destroyed" : "broken");
        sandbox_worker_free(m, w, true);
    }
}

/* Unlinks the idle workers beyond keep that were idle for idle_ms; returns
 * them as a list. */
static sandbox_worker *
take_idle(sandbox_manager *m, sandbox_entry *e, int64_t idle_ms, unsigned keep)
{
    sandbox_worker *out = NULL;
    int64_t now = clock_mono_ms();
    pthread_mutex_lock(&m->reg.mu);
    sandbox_worker **pp = &e->workers;
    while (*pp) {
        sandbox_worker *w = *pp;
        if (!w->busy && e->n_workers > keep && now - w->idle_since_ms >= idle_ms) {
            *pp = w->next;
            e->n_workers--;
            m->memory_used -=
                m->memory_used >= worker_charge(e) ? worker_charge(e) : m->memory_used;
            w->next = out;
            out = w;
        } else {
            pp = &w->next;
        }
    }
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&m->reg.mu);
    return out;
}

static void
free_list(sandbox_manager *m, sandbox_entry *e, sandbox_worker *w, const char *why)
{
    while (w) {
        sandbox_worker *n = w->next;
        log_debug("sandbox %s: worker %.12s removed (%s)", e->id, w->container_id, why);
        sandbox_worker_free(m, w, true);
        w = n;
    }
}

void
sandbox_pool_remove_all(sandbox_manager *m, sandbox_entry *e)
{
    free_list(m, e, take_idle(m, e, 0, 0), "sandbox destroyed");
    /* Busy workers: their containers go now, so the runs in them end (and
     * answer NOT_FOUND); their threads free them at release. */
    pthread_mutex_lock(&m->reg.mu);
    size_t n = e->n_workers;
    char **busy = calloc(n + 1, sizeof(*busy));
    size_t k = 0;
    for (sandbox_worker *w = e->workers; busy && w && k < n; w = w->next)
        busy[k++] = strdup(w->container_id);
    pthread_mutex_unlock(&m->reg.mu);
    for (size_t i = 0; i < k; i++) {
        if (busy[i])
            sandbox_container_discard(m, busy[i]);
        free(busy[i]);
    }
    free(busy);
}

void
sandbox_pool_trim(sandbox_manager *m, sandbox_entry *e, int64_t idle_ms)
{
    free_list(m, e, take_idle(m, e, idle_ms, 1), "idle");
}
