/* Recovery after a restart: our worker containers carry labels (managed,
 * instance, sandbox id, spec JSON). Each sandbox comes back under the same
 * id with the workers that still run (re-attached, their agents brought back
 * to idle); a sandbox whose workers all died while the daemon was down gets
 * a fresh one from its image. Anything that cannot be recovered is removed,
 * so nothing of ours leaks. The labels came from outside this process and
 * are validated like a client's request.
 *
 * Pool containers (warm.c) carry a sandbox id chosen in advance but no spec:
 * with a state file for that id (state.c) they are that pool-served
 * sandbox's worker and come back exactly like any other; without one they go
 * back to their pool, or are removed when no pool wants them. */
#include <stdio.h>
#include <string.h>

#include "sandbox/internal.h"
#include "util/clock.h"
#include "util/log.h"

static const char *
label_of(const cJSON *labels, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(labels, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void
remove_quiet(sandbox_manager *m, const char *cid, size_t *removed)
{
    se_err e2;
    se_err_clear(&e2);
    if (docker_container_remove(m->dc, cid, &e2) < 0 && e2.code != SE_NOT_FOUND)
        log_warn("recover: remove %.12s: %s", cid, e2.msg);
    else
        (*removed)++;
}

/* The entry for a sandbox's first container seen: spec from its labels. */
static int
entry_from(sandbox_manager *m, const cJSON *c, sandbox_entry **out, se_err *err)
{
    *out = NULL;
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(c, "Labels");
    const cJSON *image = cJSON_GetObjectItemCaseSensitive(c, "Image");
    const char *id = label_of(labels, SE_LABEL_SANDBOX);
    const char *py = label_of(labels, SANDBOX_LABEL_PYTHON);
    if (!id || sandbox_validate_id(id, err) < 0)
        return se_err_set(err, SE_INVALID, "bad sandbox label");
    if (!cJSON_IsString(image) || strlen(image->valuestring) > 256)
        return se_err_set(err, SE_INVALID, "bad image");
    sandbox_entry *e = sandbox_entry_new();
    if (!e || !(e->image = strdup(image->valuestring))) {
        sandbox_entry_free(e);
        return se_err_set(err, SE_INTERNAL, "out of memory");
    }
    snprintf(e->id, sizeof(e->id), "%s", id);
    int rc = sandbox_spec_from_json(&e->spec, &m->cfg, label_of(labels, SE_LABEL_SPEC), err);
    if (rc == 0 && (!py || strcmp(py, e->spec.python) != 0))
        rc = se_err_set(err, SE_INVALID, "python label does not match the spec");
    if (rc < 0) {
        sandbox_entry_free(e);
        return rc;
    }
    e->last_used_ms = clock_wall_ms();
    *out = e;
    return 0;
}

static sandbox_entry *
find_pending(sandbox_entry *list, const char *id)
{
    for (; list; list = list->next)
        if (strcmp(list->id, id) == 0)
            return list;
    return NULL;
}

/* The entry of a sandbox served from a warm pool: its spec from the state
 * file (state.c), its id from the pool container's label. SE_NOT_FOUND: no
 * state file, so the container is still a pool's. */
static int
entry_from_state(sandbox_manager *m, const cJSON *c, sandbox_entry **out, se_err *err)
{
    *out = NULL;
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(c, "Labels");
    const char *id = label_of(labels, SE_LABEL_SANDBOX);
    const char *py = label_of(labels, SANDBOX_LABEL_PYTHON);
    if (!id || sandbox_validate_id(id, err) < 0)
        return se_err_set(err, SE_INVALID, "bad sandbox label");
    sandbox_entry *e = sandbox_entry_new();
    if (!e)
        return se_err_set(err, SE_INTERNAL, "out of memory");
    snprintf(e->id, sizeof(e->id), "%s", id);
    int rc = sandbox_state_read(m, id, &e->spec, &e->image, err);
    if (rc == 0 && (!py || strcmp(py, e->spec.python) != 0))
        rc = se_err_set(err, SE_INVALID, "python label does not match the state file");
    if (rc < 0) {
        sandbox_entry_free(e);
        return rc;
    }
    e->last_used_ms = clock_wall_ms();
    *out = e;
    return 0;
}

/* Adopts one running worker container into e (budget charged). */
static int
adopt(sandbox_manager *m, sandbox_entry *e, const char *cid, se_err *err)
{
    uint64_t wmem = sandbox_worker_memory(e->spec.limits.memory_bytes);
    uint64_t charge = sandbox_worker_charge(&e->spec);
    int rc = sandbox_charge_evict(m, charge, err);
    if (rc < 0)
        return rc;
    sandbox_worker *w = NULL;
    rc = sandbox_worker_adopt(m, cid, wmem, &w, err);
    if (rc < 0) {
        sandbox_pool_uncharge(m, charge);
        return rc;
    }
    /* Sized for the sandbox's own limit: a run asking less resizes it. */
    w->idle_since_ms = clock_mono_ms();
    w->next = e->workers;
    e->workers = w;
    e->n_workers++;
    if (!e->python_version[0] && sandbox_read_python_version(m, cid, e->python_version, err) < 0) {
        e->workers = w->next;
        e->n_workers--;
        sandbox_worker_free(m, w, false);
        sandbox_pool_uncharge(m, charge);
        return -err->code;
    }
    return 0;
}

static int
recover_all(sandbox_manager *m, se_err *err)
{
    /* Only this instance's sandboxes: other daemons on the same engine
     * keep theirs. */
    char instance_filter[64];
    snprintf(instance_filter, sizeof(instance_filter), SE_LABEL_INSTANCE "=%s", m->cfg.instance);
    const char *const filters[] = {SE_LABEL_MANAGED "=1", SE_LABEL_SANDBOX, instance_filter, NULL};
    cJSON *list = NULL;
    int rc = docker_container_list(m->dc, filters, true, &list, err);
    if (rc < 0)
        return se_err_prefix(err, "recover: list containers");
    size_t workers = 0, removed = 0, pooled = 0;
    sandbox_entry *pending = NULL; /* a list through ->next until registered */
    const cJSON *c;
    cJSON_ArrayForEach(c, list)
    {
        const cJSON *jid = cJSON_GetObjectItemCaseSensitive(c, "Id");
        if (!cJSON_IsString(jid) || strlen(jid->valuestring) > 128)
            continue;
        const char *cid = jid->valuestring;
        /* Only worker containers carry the worker label. Image build
         * containers inherit safeeval.managed from the recipe's LABEL and
         * must be left alone: removing one breaks a build in progress. */
        const cJSON *labels = cJSON_GetObjectItemCaseSensitive(c, "Labels");
        const char *sid = label_of(labels, SE_LABEL_SANDBOX);
        if (!sid || !label_of(labels, SANDBOX_LABEL_WORKER)) {
            log_debug("recover: container %.12s is not a worker: left alone", cid);
            continue;
        }
        se_err e2;
        se_err_clear(&e2);
        const cJSON *state = cJSON_GetObjectItemCaseSensitive(c, "State");
        sandbox_entry *e = find_pending(pending, sid);
        bool pool = label_of(labels, SANDBOX_LABEL_POOL) != NULL;
        if (!e && pool) {
            /* A pool container: a pool-served sandbox's worker when its
             * state file is there, else still its pool's. */
            int r = entry_from_state(m, c, &e, &e2);
            if (r == -SE_NOT_FOUND) {
                if (sandbox_warm_recover(m, c) > 0)
                    pooled++;
                else
                    removed++;
                continue;
            }
            if (r < 0) {
                log_warn("recover: container %.12s: %s: removing", cid, e2.msg);
                remove_quiet(m, cid, &removed);
                continue;
            }
            e->next = pending;
            pending = e;
        }
        if (!e) {
            if (entry_from(m, c, &e, &e2) < 0) {
                log_warn("recover: container %.12s: %s: removing", cid, e2.msg);
                remove_quiet(m, cid, &removed);
                continue;
            }
            e->next = pending;
            pending = e;
        }
        if (!cJSON_IsString(state) || strcmp(state->valuestring, "running") != 0) {
            log_info("recover: sandbox %s: worker %.12s is not running: removing", e->id, cid);
            remove_quiet(m, cid, &removed);
            continue;
        }
        if (adopt(m, e, cid, &e2) < 0) {
            log_warn("recover: sandbox %s: worker %.12s cannot be adopted (%s): removing", e->id,
                     cid, e2.msg);
            remove_quiet(m, cid, &removed);
            continue;
        }
        workers++;
    }
    cJSON_Delete(list);
    size_t ok = 0;
    while (pending) {
        sandbox_entry *e = pending;
        pending = e->next;
        e->next = NULL;
        se_err e2;
        se_err_clear(&e2);
        if (e->n_workers == 0) {
            /* Every worker died while we were away: the sandbox lives on
             * in a fresh one from the same image. */
            uint64_t wmem = sandbox_worker_memory(e->spec.limits.memory_bytes);
            uint64_t charge = sandbox_worker_charge(&e->spec);
            sandbox_worker *w = NULL;
            if (sandbox_charge_evict(m, charge, &e2) == 0) {
                if (sandbox_worker_new(m, e, wmem, &w, NULL, &e2) == 0 &&
                    sandbox_read_python_version(m, w->container_id, e->python_version, &e2) == 0) {
                    w->idle_since_ms = clock_mono_ms();
                    e->workers = w;
                    e->n_workers = 1;
                    workers++;
                } else {
                    sandbox_worker_free(m, w, true);
                    sandbox_pool_uncharge(m, charge);
                }
            }
            if (e->n_workers == 0) {
                log_warn("recover: sandbox %s has no live worker and none can be made (%s): "
                         "dropped",
                         e->id, e2.msg);
                sandbox_entry_free(e);
                continue;
            }
        }
        if (sandbox_registry_add(&m->reg, e, false, &e2) < 0) {
            log_warn("recover: sandbox %s: %s", e->id, e2.msg);
            for (sandbox_worker *w = e->workers; w; w = w->next)
                sandbox_pool_uncharge(m, sandbox_worker_charge(&e->spec));
            while (e->workers) {
                sandbox_worker *w = e->workers;
                e->workers = w->next;
                sandbox_worker_free(m, w, true);
            }
            sandbox_entry_free(e);
            continue;
        }
        log_info("sandbox %s recovered (%u workers, python %s)", e->id, e->n_workers,
                 e->python_version);
        ok++;
    }
    log_info("recover: %zu sandboxes with %zu workers recovered, %zu pool workers kept, %zu "
             "containers removed",
             ok, workers, pooled, removed);
    /* State files of sandboxes that did not come back. */
    sandbox_state_sweep(m);
    se_err e3;
    se_err_clear(&e3);
    if (image_prune_dangling(m->ic, 3600, &e3) < 0)
        log_warn("recover: prune dangling images: %s", e3.msg);
    return 0;
}

int
sandbox_manager_recover(sandbox_manager *m, se_err *err)
{
    int rc = recover_all(m, err);
    /* The pools fill only now: a pool container made during the listing
     * above would have been taken for a leftover. */
    se_err e2;
    se_err_clear(&e2);
    if (sandbox_warm_start(m, &e2) < 0)
        log_error("warm pools: %s", e2.msg);
    return rc;
}
