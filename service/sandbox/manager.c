/* The sandbox manager: the module's interface (sandbox.h) on top of the
 * registry, the container body, runs, the reaper and recovery. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "sandbox/internal.h"
#include "util/cleanup.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/metrics.h"

#define SECCOMP_FILE_MAX (1u << 20)
#define VERSION_FILE_MAX 64

int
sandbox_new_id(char out[SANDBOX_ID_LEN + 1], se_err *err)
{
    uint8_t raw[SANDBOX_ID_LEN / 2];
    size_t got = 0;
    while (got < sizeof(raw)) {
        ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return se_err_errno(err, SE_INTERNAL, "getrandom");
        }
        got += (size_t)n;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof(raw); i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[SANDBOX_ID_LEN] = '\0';
    return 0;
}

/* Reads the seccomp profile once; it must be a JSON object. We re-print it
 * compact so the SecurityOpt value is as small as it can be. */
static int
seccomp_load(char **out, const char *path, se_err *err)
{
    *out = NULL;
    if (!path || !*path)
        return se_err_set(err, SE_INVALID,
                          "seccomp profile: no path configured; refusing to "
                          "run containers without one");
    FILE *f = fopen(path, "rb");
    if (!f)
        return se_err_errno(err, SE_INVALID, "seccomp profile %s", path);
    char *buf = malloc(SECCOMP_FILE_MAX + 1);
    if (!buf) {
        fclose(f);
        return se_err_set(err, SE_INTERNAL, "out of memory");
    }
    size_t n = fread(buf, 1, SECCOMP_FILE_MAX + 1, f);
    int ferr = ferror(f);
    fclose(f);
    if (ferr || n > SECCOMP_FILE_MAX) {
        free(buf);
        return se_err_set(err, SE_INVALID, "seccomp profile %s: unreadable or over %u bytes", path,
                          SECCOMP_FILE_MAX);
    }
    buf[n] = '\0';
    cJSON *j = cJSON_ParseWithLength(buf, n);
    free(buf);
    if (!cJSON_IsObject(j) || !cJSON_GetObjectItemCaseSensitive(j, "defaultAction")) {
        cJSON_Delete(j);
        return se_err_set(err, SE_INVALID, "seccomp profile %s: not a seccomp JSON profile", path);
    }
    *out = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!*out)
        return se_err_set(err, SE_INTERNAL, "out of memory");
    return 0;
}

int
sandbox_seccomp_check(const char *path, se_err *err)
{
    char *json = NULL;
    int rc = seccomp_load(&json, path, err);
    free(json);
    return rc;
}

int
sandbox_manager_new(sandbox_manager **out, const sandbox_config *cfg, docker_client *dc,
                    image_cache *ic, se_err *err)
{
    *out = NULL;
    sandbox_manager *m = calloc(1, sizeof(*m));
    if (!m)
        return se_err_set(err, SE_INTERNAL, "out of memory");
    m->cfg = *cfg;
    if (m->cfg.max_concurrent_runs == 0)
        m->cfg.max_concurrent_runs = 1;
    if (m->cfg.max_queued_runs == 0)
        m->cfg.max_queued_runs = 1;
    m->dc = dc;
    m->ic = ic;
    sandbox_registry_init(&m->reg);
    pthread_mutex_init(&m->stop_mu, NULL);
    pthread_cond_init(&m->stop_cv, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the pool filler's ticks */
    pthread_cond_init(&m->warm.cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = seccomp_load(&m->seccomp_json, cfg->seccomp_profile, err);
    if (rc < 0)
        goto fail;
    m->default_python = strdup(cfg->default_python ? cfg->default_python : "");
    if (!m->default_python) {
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto fail;
    }
    m->cfg.default_python = m->default_python;
    rc = sandbox_instance_check(cfg->instance, err);
    if (rc < 0)
        goto fail;
    m->instance = strdup(cfg->instance);
    if (!m->instance) {
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto fail;
    }
    m->cfg.instance = m->instance;
    m->cfg.seccomp_profile = NULL; /* not kept: the content is */
    rc = sandbox_warm_init(m, err);
    if (rc < 0)
        goto fail;
    if (m->cfg.reap_interval_s > 0) {
        rc = sandbox_reaper_start(m, err);
        if (rc < 0)
            goto fail;
    }
    *out = m;
    return 0;
fail:
    sandbox_manager_free(m);
    return rc;
}

void
sandbox_manager_free(sandbox_manager *m)
{
    if (!m)
        return;
    sandbox_reaper_stop(m);
    sandbox_warm_free(m);
    /* Containers of destroyed sandboxes must not come back at the next
     * recovery: one last try. */
    sandbox_graveyard_retry(m);
    for (size_t i = 0; i < m->n_graveyard; i++)
        free(m->graveyard[i]);
    free(m->graveyard);
    sandbox_registry_destroy(&m->reg);
    pthread_mutex_destroy(&m->stop_mu);
    pthread_cond_destroy(&m->stop_cv);
    free(m->seccomp_json);
    free(m->default_python);
    free(m->instance);
    free(m);
}

/* The interpreter's version as the image wrote it: "3.11.2". Hostile: only
 * digits and dots, trimmed. */
int
sandbox_read_python_version(sandbox_manager *m, const char *cid, char out[SANDBOX_VERSION_MAX + 1],
                            se_err *err)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = docker_archive_get_file(m->dc, cid, SANDBOX_VERSION_FILE, VERSION_FILE_MAX, &buf, &len,
                                     err);
    if (rc < 0)
        return se_err_prefix(err, "read %s", SANDBOX_VERSION_FILE);
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
        len--;
    rc = 0;
    if (len == 0 || len > SANDBOX_VERSION_MAX) {
        rc = se_err_set(err, SE_PRECONDITION, "%s: empty or too long", SANDBOX_VERSION_FILE);
    } else {
        for (size_t i = 0; i < len; i++)
            if (!((buf[i] >= '0' && buf[i] <= '9') || buf[i] == '.')) {
                rc = se_err_set(err, SE_PRECONDITION, "%s: not a version", SANDBOX_VERSION_FILE);
                break;
            }
    }
    if (rc == 0) {
        memcpy(out, buf, len);
        out[len] = '\0';
    }
    free(buf);
    return rc;
}

bool
sandbox_version_matches(const char *want, const char *have)
{
    size_t n = strlen(want);
    return strncmp(want, have, n) == 0 && (have[n] == '\0' || have[n] == '.');
}

/* A pool hit: the ready worker ww becomes e's (e->spec is set). Its budget
 * is made the sandbox's (*charged in and out), its limits the sandbox's, and
 * the spec goes to the state file before the create can answer. On failure
 * the caller gives the worker back (sandbox_warm_discard) and goes the slow
 * way. */
static int
create_from_pool(sandbox_manager *m, sandbox_entry *e, warm_worker *ww, uint64_t wmem,
                 uint64_t *charged, se_err *err)
{
    int rc = 0;
    if (wmem > *charged) {
        if ((rc = sandbox_charge_evict(m, wmem - *charged, err)) < 0)
            return rc;
    } else if (wmem < *charged) {
        sandbox_pool_uncharge(m, *charged - wmem);
    }
    *charged = wmem;
    sandbox_worker *w = ww->w;
    /* A pool worker has the default limits: anything else is one update. */
    if (w->memory_limit != wmem ||
        e->spec.limits.max_processes != m->cfg.default_limits.max_processes) {
        uint32_t pids = e->spec.limits.max_processes + SANDBOX_WORKER_PIDS_RESERVE;
        rc = docker_container_update_limits(m->dc, w->container_id, wmem, pids, err);
        if (rc < 0)
            return se_err_prefix(err, "set the limits of pool worker %.12s", w->container_id);
        w->memory_limit = wmem;
    }
    snprintf(e->id, sizeof(e->id), "%s", ww->sandbox_id);
    snprintf(e->python_version, sizeof(e->python_version), "%s", ww->python_version);
    if (!(e->image = strdup(ww->image)))
        return se_err_set(err, SE_INTERNAL, "out of memory");
    return sandbox_state_write(m, e, err);
}

int
sandbox_create(sandbox_manager *m, const sandbox_caller *who,
               const Safeeval__V1__CreateSandboxRequest *req, Safeeval__V1__Sandbox **out,
               docker_progress_fn progress, void *ud, const se_cancel *cancel, se_err *err)
{
    *out = NULL;
    sandbox_spec spec;
    int rc = sandbox_validate_owner(who->owner, err);
    if (rc < 0)
        return rc;
    rc = sandbox_validate_create(&spec, &m->cfg, req, err);
    if (rc < 0)
        return rc;
    free(spec.owner);
    if (!(spec.owner = strdup(who->owner))) {
        sandbox_spec_clear(&spec);
        return se_err_set(err, SE_INTERNAL, "out of memory");
    }
    sandbox_tenant_hold hold;
    /* The tenant's quotas first: a tenant at its ceiling costs nothing. */
    rc = sandbox_tenant_reserve(m, who, &spec, &hold, err);
    if (rc < 0) {
        sandbox_spec_clear(&spec);
        return rc;
    }
    bool reserved = false, pinned = false, state = false;
    bool poolable = sandbox_warm_poolable(req);
    uint64_t charged = 0;
    sandbox_entry *e = NULL;
    sandbox_worker *w = NULL;
    warm_worker *ww = NULL;
    image_ref ref;
    memset(&ref, 0, sizeof(ref));
    int64_t t0 = clock_mono_ms(), t_image = t0;
    rc = sandbox_registry_reserve(&m->reg, m->cfg.max_sandboxes, err);
    if (rc < 0)
        goto out;
    reserved = true;
    e = sandbox_entry_new();
    if (!e) {
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto out;
    }
    e->spec = spec;
    memset(&spec, 0, sizeof(spec));
    uint64_t wmem = sandbox_worker_memory(e->spec.limits.memory_bytes);
    if (poolable && (ww = sandbox_warm_take(m, &e->spec, &charged)) != NULL) {
        se_err perr;
        se_err_clear(&perr);
        if (create_from_pool(m, e, ww, wmem, &charged, &perr) == 0) {
            w = ww->w;
            state = true;
            sandbox_warm_worker_free(ww);
            ww = NULL;
        } else {
            log_warn("create sandbox: pool worker %.12s not used: %s", ww->w->container_id,
                     perr.msg);
            sandbox_warm_discard(m, ww, charged);
            ww = NULL;
            charged = 0;
            free(e->image);
            e->image = NULL;
        }
    }
    if (!w) {
        /* The first worker's memory, before any build: a full host answers
         * at once. */
        uint64_t charge = sandbox_worker_charge(&e->spec);
        rc = sandbox_charge_evict(m, charge, err);
        if (rc < 0)
            goto out;
        charged = charge;
        /* The image module logs every build line at debug. */
        rc = image_ensure(m->ic, e->spec.python, (const char *const *)e->spec.modules,
                          e->spec.n_modules, &ref, progress, ud, cancel, err);
        if (rc < 0)
            goto out;
        pinned = true;
        if (ref.built)
            sandbox_reaper_kick(m);
        t_image = clock_mono_ms();
        if ((rc = se_cancel_check(cancel, err)) < 0)
            goto out;
        if (!(e->image = strdup(ref.tag))) {
            rc = se_err_set(err, SE_INTERNAL, "out of memory");
            goto out;
        }
        if ((rc = sandbox_new_id(e->id, err)) < 0)
            goto out;
        rc = sandbox_worker_new(m, e, wmem, &w, cancel, err);
        if (rc == -SE_NOT_FOUND) {
            /* The image went between the ensure and the container: another
             * daemon on this engine collected it. Built again, once. */
            log_info("image %s vanished before its container was made: ensuring it again",
                     e->image);
            image_release(m->ic, ref.tag);
            pinned = false;
            rc = image_ensure(m->ic, e->spec.python, (const char *const *)e->spec.modules,
                              e->spec.n_modules, &ref, progress, ud, cancel, err);
            if (rc < 0)
                goto out;
            pinned = true;
            rc = sandbox_worker_new(m, e, wmem, &w, cancel, err);
        }
        if (rc < 0)
            goto out;
        /* From here on, any failure removes the worker's container. */
        rc = sandbox_read_python_version(m, w->container_id, e->python_version, err);
        if (rc < 0)
            goto out;
        if (!sandbox_version_matches(e->spec.python, e->python_version)) {
            rc = se_err_set(err, SE_PRECONDITION, "python_version: asked for %s, the image has %s",
                            e->spec.python, e->python_version);
            goto out;
        }
    }
    e->last_used_ms = e->spec.created_at_ms;
    w->idle_since_ms = clock_mono_ms();
    e->workers = w;
    e->n_workers = 1;
    /* The answer is built before the entry is visible: once added, a
     * destroy from another call may free it. */
    Safeeval__V1__Sandbox *msg = sandbox_entry_to_msg(&m->reg, e);
    if (!msg) {
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto out_unlink;
    }
    if (state)
        log_info("sandbox %s created: python %s, %zu modules, image %s (pool), %lld ms", e->id,
                 e->python_version, e->spec.n_modules, e->image, (long long)(clock_mono_ms() - t0));
    else
        log_info("sandbox %s created: python %s, %zu modules, image %s (%s), %lld ms (image %lld "
                 "ms)",
                 e->id, e->python_version, e->spec.n_modules, e->image,
                 ref.built ? "built" : "cached", (long long)(clock_mono_ms() - t0),
                 (long long)(t_image - t0));
    if (poolable)
        sandbox_warm_note(m, &e->spec);
    rc = sandbox_registry_add(&m->reg, e, true, err);
    if (rc < 0) {
        protobuf_c_message_free_unpacked(&msg->base, NULL);
        goto out_unlink;
    }
    /* Counted by the registry from now on. */
    sandbox_tenant_release(m, &hold);
    *out = msg;
    /* Registered: the reaper's keep list holds the image from now on. */
    if (pinned)
        image_release(m->ic, ref.tag);
    return 0;
out_unlink:
    e->workers = NULL;
    e->n_workers = 0;
out:
    if (pinned)
        image_release(m->ic, ref.tag);
    if (state)
        sandbox_state_remove(m, e->id);
    if (w)
        sandbox_worker_free(m, w, true);
    if (charged)
        sandbox_pool_uncharge(m, charged);
    if (reserved)
        sandbox_registry_unreserve(&m->reg);
    sandbox_tenant_release(m, &hold);
    sandbox_entry_free(e);
    sandbox_spec_clear(&spec);
    return rc < 0 ? se_err_prefix(err, "create sandbox") : rc;
}

/* Bytes of a run's input: they live in the worker's memory (tmpfs, memfd)
 * and pass through the agent once before the jail starts. */
static uint64_t
input_bytes(const sandbox_run_input *in)
{
    uint64_t n = in->script_len + in->stdin_len;
    for (size_t i = 0; i < in->n_files; i++)
        n += in->files[i] ? in->files[i]->content.len : 0;
    return n;
}

/* The entry of id if who may see it, else SE_NOT_FOUND with the very message
 * an unknown id gets: another tenant's ids cannot be told from unknown ones. */
static int
find_for(sandbox_manager *m, const sandbox_caller *who, const char *id, sandbox_entry **out,
         se_err *err)
{
    *out = NULL;
    int rc = sandbox_validate_id(id, err);
    if (rc < 0)
        return rc;
    sandbox_entry *e = sandbox_registry_find(&m->reg, id);
    if (e && !sandbox_caller_sees(who, e)) {
        sandbox_entry_unref(&m->reg, e);
        e = NULL;
    }
    if (!e)
        return se_err_set(err, SE_NOT_FOUND, "sandbox %s not found", id);
    *out = e;
    return 0;
}

static int
run_common(sandbox_manager *m, const sandbox_caller *who, const sandbox_run_input *in, bool is_eval,
           Safeeval__V1__ExecResult **out, sandbox_output_fn sink, void *ud,
           const se_cancel *cancel, se_err *err)
{
    *out = NULL;
    sandbox_entry *e = NULL;
    int rc = find_for(m, who, in->sandbox_id, &e, err);
    if (rc < 0)
        return rc;
    sandbox_worker *w = NULL;
    bool counted = false;
    rc = sandbox_validate_run(in, is_eval, err);
    if (rc < 0)
        goto out;
    if (in->n_collect && e->spec.runner == SAFEEVAL__V1__RUNNER__RUNNER_ZYGOTE) {
        /* The fresh jail's pid 1 gathers the files; a zygote run has none. */
        rc = se_err_set(err, SE_INVALID, "collect: not available in a RUNNER_ZYGOTE sandbox");
        goto out;
    }
    sandbox_limits lim;
    rc = sandbox_limits_for_run(&lim, &e->spec.limits, in->limits, err);
    if (rc < 0)
        goto out;
    /* While the jail is set up the input is held up to three times (the
     * agent's copy, a memfd, the tmpfs file) inside the run's memory. */
    if (input_bytes(in) > lim.memory_bytes / 4) {
        rc = se_err_set(err, SE_INVALID,
                        "script, stdin and files: %llu bytes; at most a quarter of the run's "
                        "memory_bytes (%llu)",
                        (unsigned long long)input_bytes(in),
                        (unsigned long long)(lim.memory_bytes / 4));
        goto out;
    }
    /* The runs of the sandbox's owner: an admin's run in another tenant's
     * sandbox counts there, under the admin's own ceiling. */
    rc = sandbox_entry_run_begin(&m->reg, e, who->max_runs, err);
    if (rc < 0)
        goto out;
    counted = true;
    int64_t t0 = clock_mono_us();
    rc = sandbox_pool_acquire(m, e, lim.memory_bytes, &w, cancel, err);
    if (rc < 0)
        goto out;
    int64_t t_got = clock_mono_us();
    metrics_observe_us(METRICS_RUN_WAIT_SECONDS, t_got - t0);
    /* A zygote's memory is the worker's, not the run's (0 without one). */
    uint64_t want = sandbox_worker_memory(lim.memory_bytes) + w->zygote_memory;
    if (w->memory_limit != want) {
        /* The worker's cgroup is the run's fence: resize it to this run. */
        rc = docker_container_update_memory(m->dc, w->container_id, want, err);
        if (rc < 0) {
            w->broken = true;
            se_err_prefix(err, "sandbox %s: resize worker %.12s", e->id, w->container_id);
            goto out;
        }
        w->memory_limit = want;
    }
    pthread_mutex_lock(&m->reg.mu);
    uint64_t id = ++m->run_ids;
    pthread_mutex_unlock(&m->reg.mu);
    rc = sandbox_worker_run(w, m->dc, id, in, &lim, out, sink, ud, cancel, err);
    metrics_observe_us(METRICS_RUN_SECONDS, clock_mono_us() - t_got);
    metrics_run_done(rc == 0 ? (int)(*out)->reason : METRICS_RUN_ERROR);
    pthread_mutex_lock(&m->reg.mu);
    bool dead = e->dead;
    pthread_mutex_unlock(&m->reg.mu);
    if (rc < 0 && dead) {
        /* Destroyed under us: the worker and its run are gone. */
        rc = se_err_set(err, SE_NOT_FOUND, "sandbox %s was destroyed during the run", e->id);
        goto out;
    }
    if (rc == 0)
        log_debug("sandbox %s: run %" PRIu64 " on %.12s -> reason %d exit %d; waited %lld us, ran "
                  "%lld us",
                  e->id, id, w->container_id, (int)(*out)->reason, (*out)->exit_code,
                  (long long)(t_got - t0), (long long)(clock_mono_us() - t_got));
out:
    if (w)
        sandbox_pool_release(m, e, w);
    if (counted)
        sandbox_entry_run_end(&m->reg, e);
    sandbox_entry_unref(&m->reg, e);
    return rc;
}

/* Maps entries of the three env map types (same layout) into two arrays. */
#define ENV_SPLIT(entries, n, keys, vals)                                                          \
    do {                                                                                           \
        for (size_t i_ = 0; i_ < (n); i_++) {                                                      \
            (keys)[i_] = (entries)[i_] ? (entries)[i_]->key : NULL;                                \
            (vals)[i_] = (entries)[i_] ? (entries)[i_]->value : NULL;                              \
        }                                                                                          \
    } while (0)

int
sandbox_eval(sandbox_manager *m, const sandbox_caller *who, const Safeeval__V1__EvalRequest *req,
             Safeeval__V1__ExecResult **out, const se_cancel *cancel, se_err *err)
{
    return sandbox_eval_stream(m, who, req, out, NULL, NULL, cancel, err);
}

int
sandbox_eval_stream(sandbox_manager *m, const sandbox_caller *who,
                    const Safeeval__V1__EvalRequest *req, Safeeval__V1__ExecResult **out,
                    sandbox_output_fn sink, void *ud, const se_cancel *cancel, se_err *err)
{
    *out = NULL;
    if (req->n_env > SANDBOX_MAX_ENV)
        return se_err_set(err, SE_INVALID, "env: %zu entries, at most %d", req->n_env,
                          SANDBOX_MAX_ENV);
    const char *keys[SANDBOX_MAX_ENV + 1], *vals[SANDBOX_MAX_ENV + 1];
    ENV_SPLIT(req->env, req->n_env, keys, vals);
    sandbox_run_input in = {
        .sandbox_id = req->sandbox_id,
        .script = (const uint8_t *)req->code,
        .script_len = req->code ? strlen(req->code) : 0,
        .filename = "main.py",
        .stdin_data = req->stdin.data,
        .stdin_len = req->stdin.len,
        .args = req->args,
        .n_args = req->n_args,
        .env_keys = keys,
        .env_values = vals,
        .n_env = req->n_env,
        .limits = req->limits,
        .files = req->files,
        .n_files = req->n_files,
        .collect = req->collect,
        .n_collect = req->n_collect,
    };
    return run_common(m, who, &in, true, out, sink, ud, cancel, err);
}

int
sandbox_execute_file(sandbox_manager *m, const sandbox_caller *who,
                     const Safeeval__V1__ExecuteFileRequest *req, Safeeval__V1__ExecResult **out,
                     const se_cancel *cancel, se_err *err)
{
    return sandbox_execute_file_stream(m, who, req, out, NULL, NULL, cancel, err);
}

int
sandbox_execute_file_stream(sandbox_manager *m, const sandbox_caller *who,
                            const Safeeval__V1__ExecuteFileRequest *req,
                            Safeeval__V1__ExecResult **out, sandbox_output_fn sink, void *ud,
                            const se_cancel *cancel, se_err *err)
{
    *out = NULL;
    if (req->n_env > SANDBOX_MAX_ENV)
        return se_err_set(err, SE_INVALID, "env: %zu entries, at most %d", req->n_env,
                          SANDBOX_MAX_ENV);
    const char *keys[SANDBOX_MAX_ENV + 1], *vals[SANDBOX_MAX_ENV + 1];
    ENV_SPLIT(req->env, req->n_env, keys, vals);
    sandbox_run_input in = {
        .sandbox_id = req->sandbox_id,
        .script = req->content.data,
        .script_len = req->content.len,
        .filename = req->filename,
        .stdin_data = req->stdin.data,
        .stdin_len = req->stdin.len,
        .args = req->args,
        .n_args = req->n_args,
        .env_keys = keys,
        .env_values = vals,
        .n_env = req->n_env,
        .limits = req->limits,
        .files = req->files,
        .n_files = req->n_files,
        .collect = req->collect,
        .n_collect = req->n_collect,
    };
    return run_common(m, who, &in, false, out, sink, ud, cancel, err);
}

int
sandbox_destroy_entry(sandbox_manager *m, sandbox_entry *e, se_err *err)
{
    (void)err;
    /* e is unlinked and dead: no new run can start, waiting runs answer
     * NOT_FOUND. Removing the workers with force kills the runs still in
     * them; they answer NOT_FOUND too. A container the engine fails to
     * remove now is found by the next recovery (its labels) and removed. */
    pthread_mutex_lock(&m->reg.mu);
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&m->reg.mu);
    sandbox_pool_remove_all(m, e);
    /* A pool-served sandbox's spec file (none for the others). */
    sandbox_state_remove(m, e->id);
    sandbox_graveyard_retry(m);
    log_info("sandbox %s destroyed", e->id);
    sandbox_entry_unref(&m->reg, e);
    return 0;
}

int
sandbox_destroy(sandbox_manager *m, const sandbox_caller *who, const char *id,
                const se_cancel *cancel, se_err *err)
{
    (void)cancel;
    sandbox_entry *e = NULL;
    int rc = find_for(m, who, id, &e, err);
    if (rc < 0)
        return rc;
    /* Its owner never changes: seen once, removable by this caller. */
    sandbox_entry_unref(&m->reg, e);
    e = sandbox_registry_remove(&m->reg, id);
    if (!e)
        return se_err_set(err, SE_NOT_FOUND, "sandbox %s not found", id);
    return sandbox_destroy_entry(m, e, err);
}

int
sandbox_get(sandbox_manager *m, const sandbox_caller *who, const char *id,
            Safeeval__V1__Sandbox **out, se_err *err)
{
    *out = NULL;
    sandbox_entry *e = NULL;
    int rc = find_for(m, who, id, &e, err);
    if (rc < 0)
        return rc;
    *out = sandbox_entry_to_msg(&m->reg, e);
    sandbox_entry_unref(&m->reg, e);
    if (!*out)
        return se_err_set(err, SE_INTERNAL, "out of memory");
    return 0;
}

int
sandbox_list(sandbox_manager *m, const sandbox_caller *who, Safeeval__V1__Sandbox ***out,
             size_t *n_out, se_err *err)
{
    *out = NULL;
    *n_out = 0;
    sandbox_entry **es;
    size_t n;
    int rc = sandbox_registry_snapshot(&m->reg, &es, &n, err);
    if (rc < 0)
        return rc;
    /* Only the caller's own (an admin's: all). */
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (sandbox_caller_sees(who, es[i]))
            es[kept++] = es[i];
        else
            sandbox_entry_unref(&m->reg, es[i]);
    }
    n = kept;
    /* Oldest first; insertion sort keeps registry order among equals. */
    for (size_t i = 1; i < n; i++) {
        sandbox_entry *x = es[i];
        size_t j = i;
        while (j > 0 && es[j - 1]->spec.created_at_ms > x->spec.created_at_ms) {
            es[j] = es[j - 1];
            j--;
        }
        es[j] = x;
    }
    Safeeval__V1__Sandbox **arr = calloc(n + 1, sizeof(*arr));
    if (!arr)
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (arr && rc == 0) {
            arr[i] = sandbox_entry_to_msg(&m->reg, es[i]);
            if (!arr[i])
                rc = se_err_set(err, SE_INTERNAL, "out of memory");
        }
        sandbox_entry_unref(&m->reg, es[i]);
    }
    free(es);
    if (rc < 0) {
        for (size_t i = 0; arr && i < n; i++)
            if (arr[i])
                protobuf_c_message_free_unpacked(&arr[i]->base, NULL);
        free(arr);
        return rc;
    }
    *out = arr;
    *n_out = n;
    return 0;
}
