/* The idle reaper: a thread that wakes every reap_interval_s, destroys
 * sandboxes unused for longer than their idle timeout (and running nothing),
 * removes extra workers idle for longer than worker_idle_s, and collects
 * sandbox images (image_collect; also right after a build).
 * It is woken early and joined by sandbox_manager_free. */
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#include "sandbox/internal.h"
#include "util/clock.h"
#include "util/log.h"

static void
reap_once(sandbox_manager *m)
{
    sandbox_graveyard_retry(m);
    char **ids = NULL;
    size_t n = 0;
    int64_t now = clock_wall_ms();
    if (sandbox_registry_idle(&m->reg, now, &ids, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        /* Checked again under the lock: a run may have started since. */
        sandbox_entry *e = sandbox_registry_remove_idle(&m->reg, ids[i], clock_wall_ms());
        if (e) {
            log_info("sandbox %s idle for over %u s: reaping", e->id, e->spec.idle_timeout_s);
            se_err err;
            se_err_clear(&err);
            if (sandbox_destroy_entry(m, e, &err) < 0)
                log_warn("reaper: %s", err.msg);
        }
        free(ids[i]);
    }
    free(ids);
    /* Extra workers nobody used for a while go; each sandbox keeps one. */
    sandbox_entry **es = NULL;
    se_err err;
    se_err_clear(&err);
    if (sandbox_registry_snapshot(&m->reg, &es, &n, &err) < 0)
        return;
    /* The live sandboxes' images stay, even while a sandbox has no
     * container (a worker being replaced). */
    const char **keep = calloc(n + 1, sizeof(*keep));
    size_t n_keep = 0;
    for (size_t i = 0; i < n; i++) {
        sandbox_pool_trim(m, es[i], (int64_t)m->cfg.worker_idle_s * 1000);
        if (keep && es[i]->image)
            keep[n_keep++] = es[i]->image;
    }
    if (keep && (m->cfg.image_cache_bytes || m->cfg.image_max_age_s)) {
        image_gc_opts go = {.cache_bytes = m->cfg.image_cache_bytes,
                            .max_age_s = m->cfg.image_max_age_s,
                            .own_only = m->cfg.image_gc_own,
                            .keep = keep};
        if (image_collect(m->ic, &go, NULL, &err) < 0)
            log_warn("reaper: %s", err.msg);
    }
    free(keep);
    for (size_t i = 0; i < n; i++)
        sandbox_entry_unref(&m->reg, es[i]);
    free(es);
}

void
sandbox_reaper_kick(sandbox_manager *m)
{
    pthread_mutex_lock(&m->stop_mu);
    m->gc_soon = true;
    pthread_cond_broadcast(&m->stop_cv);
    pthread_mutex_unlock(&m->stop_mu);
}

static void *
reaper_main(void *arg)
{
    sandbox_manager *m = arg;
    pthread_mutex_lock(&m->stop_mu);
    while (!m->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += m->cfg.reap_interval_s;
        int rc = 0;
        while (!m->stopping && !m->gc_soon && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&m->stop_cv, &m->stop_mu, &ts);
        if (m->stopping)
            break;
        m->gc_soon = false;
        pthread_mutex_unlock(&m->stop_mu);
        reap_once(m);
        pthread_mutex_lock(&m->stop_mu);
    }
    pthread_mutex_unlock(&m->stop_mu);
    return NULL;
}

int
sandbox_reaper_start(sandbox_manager *m, se_err *err)
{
    /* The wait uses the monotonic clock: a wall clock jump must not reap. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_destroy(&m->stop_cv);
    pthread_cond_init(&m->stop_cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&m->reaper, NULL, reaper_main, m);
    if (rc != 0) {
        errno = rc;
        return se_err_errno(err, SE_INTERNAL, "start the reaper thread");
    }
    m->reaper_started = true;
    return 0;
}

void
sandbox_reaper_stop(sandbox_manager *m)
{
    if (!m->reaper_started)
        return;
    pthread_mutex_lock(&m->stop_mu);
    m->stopping = true;
    pthread_cond_broadcast(&m->stop_cv);
    pthread_mutex_unlock(&m->stop_mu);
    pthread_join(m->reaper, NULL);
    m->reaper_started = false;
}
