/* The registry of live sandboxes: a list in creation order under one mutex
 * (which also guards each sandbox's workers and queue, see pool.c).
 * Entries are refcounted so a destroy during a run is safe: the destroy
 * unlinks the entry and marks it dead, the run keeps its reference, and the
 * last unref frees it. */
#include <stdio.h>
#include <string.h>

#include "sandbox/internal.h"
#include "util/clock.h"
#include "util/metrics.h"

void
sandbox_registry_init(sandbox_registry *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
}

void
sandbox_registry_destroy(sandbox_registry *r)
{
    sandbox_entry *e = r->head;
    while (e) {
        sandbox_entry *n = e->next;
        /* Only the registry's reference should be left at this point. */
        if (--e->refs == 0)
            sandbox_entry_free(e);
        e = n;
    }
    r->head = NULL;
    r->count = 0;
    pthread_mutex_destroy(&r->mu);
}

int
sandbox_registry_reserve(sandbox_registry *r, size_t max, se_err *err)
{
    int rc = 0;
    pthread_mutex_lock(&r->mu);
    if (r->count + r->reserved >= max)
        rc = se_err_set(err, SE_EXHAUSTED, "max-sandboxes (%zu) reached", max);
    else
        r->reserved++;
    pthread_mutex_unlock(&r->mu);
    return rc;
}

void
sandbox_registry_unreserve(sandbox_registry *r)
{
    pthread_mutex_lock(&r->mu);
    if (r->reserved > 0)
        r->reserved--;
    pthread_mutex_unlock(&r->mu);
}

int
sandbox_registry_add(sandbox_registry *r, sandbox_entry *e, bool reserved, se_err *err)
{
    pthread_mutex_lock(&r->mu);
    sandbox_entry **tail = &r->head;
    for (sandbox_entry *x = r->head; x; x = x->next) {
        if (strcmp(x->id, e->id) == 0) {
            pthread_mutex_unlock(&r->mu);
            return se_err_set(err, SE_CONFLICT, "sandbox %s exists", e->id);
        }
        tail = &x->next;
    }
    e->next = NULL;
    e->refs = 1;
    *tail = e;
    r->count++;
    metrics_gauge_add(METRICS_SANDBOXES, 1);
    if (reserved && r->reserved > 0)
        r->reserved--;
    pthread_mutex_unlock(&r->mu);
    return 0;
}

sandbox_entry *
sandbox_registry_find(sandbox_registry *r, const char *id)
{
    pthread_mutex_lock(&r->mu);
    sandbox_entry *e = r->head;
    for (; e; e = e->next)
        if (strcmp(e->id, id) == 0) {
            e->refs++;
            break;
        }
    pthread_mutex_unlock(&r->mu);
    return e;
}

static bool entry_idle(const sandbox_entry *e, int64_t now_ms);

/* Unlinks the entry and marks it dead, under the lock; with only_idle, only
 * if it is still idle at now_ms. Returns the registry's reference or NULL. */
static sandbox_entry *
registry_unlink(sandbox_registry *r, const char *id, bool only_idle, int64_t now_ms)
{
    pthread_mutex_lock(&r->mu);
    sandbox_entry **pp = &r->head, *e = NULL;
    for (; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->id, id) == 0) {
            if (!only_idle || entry_idle(*pp, now_ms)) {
                e = *pp;
                *pp = e->next;
                e->next = NULL;
                e->dead = true;
                r->count--;
                metrics_gauge_add(METRICS_SANDBOXES, -1);
            }
            break;
        }
    pthread_mutex_unlock(&r->mu);
    return e;
}

sandbox_entry *
sandbox_registry_remove(sandbox_registry *r, const char *id)
{
    return registry_unlink(r, id, false, 0);
}

sandbox_entry *
sandbox_entry_new(void)
{
    sandbox_entry *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* waiters time out on it */
    pthread_cond_init(&e->cv, &ca);
    pthread_condattr_destroy(&ca);
    return e;
}

void
sandbox_entry_free(sandbox_entry *e)
{
    if (!e)
        return;
    /* Workers still listed here had their containers removed by the
     * destroy that made this the last reference. */
    while (e->workers) {
        sandbox_worker *w = e->workers;
        e->workers = w->next;
        sandbox_worker_free(NULL, w, false);
    }
    pthread_cond_destroy(&e->cv);
    free(e->image);
    sandbox_spec_clear(&e->spec);
    free(e);
}

void
sandbox_entry_unref(sandbox_registry *r, sandbox_entry *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&r->mu);
    unsigned left = --e->refs;
    pthread_mutex_unlock(&r->mu);
    if (left == 0)
        sandbox_entry_free(e);
}

int
sandbox_entry_run_begin(sandbox_registry *r, sandbox_entry *e, uint32_t max_owner_runs, se_err *err)
{
    int rc = 0;
    pthread_mutex_lock(&r->mu);
    uint64_t n = 0;
    if (max_owner_runs && !e->dead)
        for (sandbox_entry *x = r->head; x; x = x->next)
            if (strcmp(x->spec.owner ? x->spec.owner : "", e->spec.owner ? e->spec.owner : "") == 0)
                n += x->running;
    if (e->dead) {
        rc = se_err_set(err, SE_NOT_FOUND, "sandbox %s is being destroyed", e->id);
    } else if (max_owner_runs && n + 1 > max_owner_runs) {
        rc = se_err_set(err, SE_EXHAUSTED,
                        "tenant-max-runs: tenant '%s' has %llu runs in flight (at most %u)",
                        e->spec.owner ? e->spec.owner : "", (unsigned long long)n, max_owner_runs);
    } else {
        e->running++;
        e->last_used_ms = clock_wall_ms();
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

void
sandbox_entry_run_end(sandbox_registry *r, sandbox_entry *e)
{
    pthread_mutex_lock(&r->mu);
    if (e->running > 0)
        e->running--;
    e->last_used_ms = clock_wall_ms();
    pthread_mutex_unlock(&r->mu);
}

int
sandbox_registry_snapshot(sandbox_registry *r, sandbox_entry ***out, size_t *n, se_err *err)
{
    pthread_mutex_lock(&r->mu);
    sandbox_entry **arr = calloc(r->count + 1, sizeof(*arr));
    if (!arr) {
        pthread_mutex_unlock(&r->mu);
        return se_err_set(err, SE_INTERNAL, "out of memory");
    }
    size_t i = 0;
    for (sandbox_entry *e = r->head; e; e = e->next) {
        e->refs++;
        arr[i++] = e;
    }
    pthread_mutex_unlock(&r->mu);
    *out = arr;
    *n = i;
    return 0;
}

int
sandbox_registry_idle(sandbox_registry *r, int64_t now_ms, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&r->mu);
    char **ids = calloc(r->count + 1, sizeof(*ids));
    if (!ids) {
        pthread_mutex_unlock(&r->mu);
        return -1;
    }
    size_t k = 0;
    for (sandbox_entry *e = r->head; e; e = e->next) {
        if (entry_idle(e, now_ms)) {
            ids[k] = strdup(e->id);
            if (ids[k])
                k++;
        }
    }
    pthread_mutex_unlock(&r->mu);
    *out = ids;
    *n = k;
    return 0;
}

static char *
dup_or_null(const char *s)
{
    return strdup(s ? s : "");
}

Safeeval__V1__Sandbox *
sandbox_entry_to_msg(sandbox_registry *r, const sandbox_entry *e)
{
    Safeeval__V1__Sandbox *s = malloc(sizeof(*s));
    if (!s)
        return NULL;
    safeeval__v1__sandbox__init(s);
    const sandbox_spec *sp = &e->spec;
    s->id = dup_or_null(e->id);
    s->python_version = dup_or_null(e->python_version);
    s->image = dup_or_null(e->image);
    s->owner = dup_or_null(sp->owner);
    if (!s->id || !s->python_version || !s->image || !s->owner)
        goto fail;
    s->created_at_ms = sp->created_at_ms;
    s->max_concurrent_runs = sp->max_runs;
    pthread_mutex_lock(&r->mu);
    s->last_used_at_ms = e->last_used_ms;
    s->workers = e->n_workers;
    pthread_mutex_unlock(&r->mu);
    s->idle_timeout_s = sp->idle_timeout_s;
    s->limits = malloc(sizeof(*s->limits));
    if (!s->limits)
        goto fail;
    safeeval__v1__limits__init(s->limits);
    s->limits->wall_time_ms = sp->limits.wall_time_ms;
    s->limits->cpu_time_ms = sp->limits.cpu_time_ms;
    s->limits->memory_bytes = sp->limits.memory_bytes;
    s->limits->max_processes = sp->limits.max_processes;
    s->limits->max_output_bytes = sp->limits.max_output_bytes;
    s->limits->max_file_bytes = sp->limits.max_file_bytes;
    s->limits->max_collect_files = sp->limits.max_collect_files;
    s->limits->max_collect_bytes = sp->limits.max_collect_bytes;
    if (sp->n_modules) {
        s->modules = calloc(sp->n_modules, sizeof(char *));
        if (!s->modules)
            goto fail;
        for (size_t i = 0; i < sp->n_modules; i++) {
            if (!(s->modules[i] = strdup(sp->modules[i])))
                goto fail;
            s->n_modules++;
        }
    }
    s->runner = (Safeeval__V1__Runner)sp->runner;
    if (sp->n_preload) {
        s->preload = calloc(sp->n_preload, sizeof(char *));
        if (!s->preload)
            goto fail;
        for (size_t i = 0; i < sp->n_preload; i++) {
            if (!(s->preload[i] = strdup(sp->preload[i])))
                goto fail;
            s->n_preload++;
        }
    }
    if (sp->n_labels) {
        s->labels = calloc(sp->n_labels, sizeof(*s->labels));
        if (!s->labels)
            goto fail;
        for (size_t i = 0; i < sp->n_labels; i++) {
            Safeeval__V1__Sandbox__LabelsEntry *le = malloc(sizeof(*le));
            if (!le)
                goto fail;
            safeeval__v1__sandbox__labels_entry__init(le);
            s->labels[s->n_labels++] = le;
            if (!(le->key = strdup(sp->label_keys[i])) ||
                !(le->value = strdup(sp->label_values[i])))
                goto fail;
        }
    }
    return s;
fail:
    protobuf_c_message_free_unpacked(&s->base, NULL);
    return NULL;
}

static bool
entry_idle(const sandbox_entry *e, int64_t now_ms)
{
    return e->running == 0 && now_ms - e->last_used_ms > (int64_t)e->spec.idle_timeout_s * 1000;
}

sandbox_entry *
sandbox_registry_remove_idle(sandbox_registry *r, const char *id, int64_t now_ms)
{
    return registry_unlink(r, id, true, now_ms);
}
