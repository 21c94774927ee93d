/* Warm pools: worker containers made, started and synced before anyone asks,
 * waiting for creates of their spec (a Python version and modules).
 *
 * A pool is configured (--pool SPEC=N) or automatic (--auto-pool N: N ready
 * workers for each spec created within --auto-pool-window-s). A create whose
 * spec matches takes a ready worker and answers without any engine call when
 * its limits are the pool's (the defaults), or after one container update
 * otherwise; one thread refills the pools in the background, never in a
 * create's path.
 *
 * Budget: a pool worker holds its memory limit in --max-memory-total like any
 * worker, but never at a create's expense: a create or a new worker that does
 * not fit evicts ready pool workers first (sandbox_warm_evict_locked), and
 * the filler makes a worker only when it fits.
 *
 * Durability: every pool container is labelled with a sandbox id chosen in
 * advance, which the sandbox it serves takes; its spec goes to a state file
 * (state.c) before the create answers. A restarted daemon finds the pool
 * containers by their labels: with a state file they are that sandbox's
 * worker, without one they go back to their pool or are removed.
 *
 * Everything here is under the registry lock (reg.mu), like the budget. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sandbox/internal.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/sha256.h"

/* Distinct specs with an automatic pool at most: the least recently created
 * one makes room for a new one. */
#define WARM_AUTO_SPECS_MAX 16
/* The filler looks at expiry and back-off at least this often. */
#define WARM_TICK_MS 1000
#define WARM_BACKOFF_MAX_MS 60000

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* {"python": ..., "modules": [sorted]}: the pool's identity, as JSON text. */
static char *
pool_spec_text(const char *python, char *const *modules, size_t n)
{
    char **sorted = calloc(n + 1, sizeof(*sorted));
    cJSON *o = cJSON_CreateObject();
    cJSON *mods = o ? cJSON_AddArrayToObject(o, "modules") : NULL;
    char *text = NULL;
    if (!sorted || !mods || !cJSON_AddStringToObject(o, "python", python))
        goto out;
    memcpy(sorted, modules, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), cmp_str);
    for (size_t i = 0; i < n; i++) {
        cJSON *s = cJSON_CreateString(sorted[i]);
        if (!s)
            goto out;
        cJSON_AddItemToArray(mods, s);
    }
    text = cJSON_PrintUnformatted(o);
out:
    cJSON_Delete(o);
    free(sorted);
    return text;
}

static int
pool_key(char out[SANDBOX_POOL_KEY_LEN + 1], const sandbox_spec *s)
{
    char *text = pool_spec_text(s->python, s->modules, s->n_modules);
    if (!text)
        return -1;
    uint8_t d[SHA256_DIGEST_LEN];
    char hex[2 * SHA256_DIGEST_LEN + 1];
    sha256_digest(d, text, strlen(text));
    sha256_hex(hex, d);
    free(text);
    memcpy(out, hex, SANDBOX_POOL_KEY_LEN);
    out[SANDBOX_POOL_KEY_LEN] = '\0';
    return 0;
}

/* A pool's spec: validated like a client's create of (python, modules) with
 * every other field the service's default; modules sorted. */
static int
pool_spec_make(sandbox_spec *out, const sandbox_manager *m, const char *python,
               char *const *modules, size_t n, se_err *err)
{
    Safeeval__V1__CreateSandboxRequest req = SAFEEVAL__V1__CREATE_SANDBOX_REQUEST__INIT;
    req.python_version = (char *)python;
    req.modules = (char **)modules;
    req.n_modules = n;
    int rc = sandbox_validate_create(out, &m->cfg, &req, err);
    if (rc == 0)
        qsort(out->modules, out->n_modules, sizeof(*out->modules), cmp_str);
    return rc;
}

static uint64_t
pool_charge(const warm_pool *p)
{
    return sandbox_worker_memory(p->spec.limits.memory_bytes);
}

/* Ready workers the pool should have now. */
static unsigned
pool_want(const sandbox_manager *m, const warm_pool *p, int64_t now)
{
    unsigned want = p->configured;
    if (m->cfg.auto_pool && p->seen_ms &&
        now - p->seen_ms < (int64_t)m->cfg.auto_pool_window_s * 1000 && m->cfg.auto_pool > want)
        want = m->cfg.auto_pool;
    return want;
}

static warm_pool *
pool_find(sandbox_manager *m, const char *key)
{
    for (warm_pool *p = m->warm.pools; p; p = p->next)
        if (strcmp(p->key, key) == 0)
            return p;
    return NULL;
}

static warm_pool *
pool_new(sandbox_spec *spec, const char *key)
{
    warm_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    memcpy(p->key, key, sizeof(p->key));
    p->spec = *spec;
    memset(spec, 0, sizeof(*spec));
    return p;
}

void
sandbox_warm_worker_free(warm_worker *ww)
{
    if (!ww)
        return;
    free(ww->image);
    free(ww);
}

/* Under reg.mu: moves a ready worker to the trash, giving its budget back. */
static void
trash_locked(sandbox_manager *m, warm_worker *ww, uint64_t charge)
{
    m->memory_used = m->memory_used > charge ? m->memory_used - charge : 0;
    ww->next = m->warm.trash;
    m->warm.trash = ww;
    pthread_cond_signal(&m->warm.cv);
}

void
sandbox_warm_discard(sandbox_manager *m, warm_worker *ww, uint64_t charge)
{
    pthread_mutex_lock(&m->reg.mu);
    trash_locked(m, ww, charge);
    pthread_mutex_unlock(&m->reg.mu);
}

/* Under reg.mu: ready workers beyond keep, or of another image than the
 * pool's (when the pool's is known), go to the trash. */
static void
pool_trim_locked(sandbox_manager *m, warm_pool *p, unsigned keep)
{
    warm_worker **pp = &p->ready;
    unsigned kept = 0;
    while (*pp) {
        warm_worker *ww = *pp;
        bool stale = p->image && strcmp(ww->image, p->image) != 0;
        if (stale || kept >= keep) {
            *pp = ww->next;
            p->n_ready--;
            trash_locked(m, ww, pool_charge(p));
        } else {
            kept++;
            pp = &ww->next;
        }
    }
}

static void
pool_free(warm_pool *p)
{
    sandbox_spec_clear(&p->spec);
    free(p->image);
    free(p);
}

/* "3.11" or "3.11:numpy,requests" = N */
static int
pool_parse(sandbox_manager *m, const char *text, se_err *err)
{
    const char *eq = strrchr(text, '=');
    char *end = NULL;
    unsigned long n = eq ? strtoul(eq + 1, &end, 10) : 0;
    if (!eq || eq == text || !isdigit((unsigned char)eq[1]) || *end || n < 1 ||
        n > SANDBOX_POOL_MAX_N)
        return se_err_set(err, SE_INVALID,
                          "--pool '%.80s': expected VERSION[:MODULE,MODULE...]=N with N in 1..%d",
                          text, SANDBOX_POOL_MAX_N);
    size_t len = (size_t)(eq - text);
    char *spec = strndup(text, len);
    char *mods[SE_MAX_MODULES + 1];
    size_t nm = 0;
    int rc = 0;
    if (!spec)
        return se_err_set(err, SE_INTERNAL, "out of memory");
    char *colon = strchr(spec, ':');
    if (colon) {
        *colon = '\0';
        char *save = NULL;
        for (char *tok = strtok_r(colon + 1, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (nm >= SE_MAX_MODULES) {
                rc = se_err_set(err, SE_INVALID, "--pool '%.80s': too many modules", text);
                break;
            }
            mods[nm++] = tok;
        }
    }
    sandbox_spec ps;
    memset(&ps, 0, sizeof(ps));
    char key[SANDBOX_POOL_KEY_LEN + 1];
    if (rc == 0 && !*spec)
        rc = se_err_set(err, SE_INVALID, "--pool '%.80s': no Python version", text);
    if (rc == 0 && (rc = pool_spec_make(&ps, m, spec, mods, nm, err)) < 0)
        se_err_prefix(err, "--pool '%.80s'", text);
    if (rc == 0 && pool_key(key, &ps) < 0)
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
    if (rc == 0 && pool_find(m, key))
        rc = se_err_set(err, SE_INVALID, "--pool '%.80s': that spec is given twice", text);
    warm_pool *p = rc == 0 ? pool_new(&ps, key) : NULL;
    if (rc == 0 && !p)
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
    if (p) {
        p->configured = (unsigned)n;
        p->next = m->warm.pools;
        m->warm.pools = p;
    }
    sandbox_spec_clear(&ps);
    free(spec);
    return rc;
}

int
sandbox_warm_init(sandbox_manager *m, se_err *err)
{
    sandbox_warm *w = &m->warm;
    for (size_t i = 0; i < m->cfg.n_pools; i++) {
        int rc = pool_parse(m, m->cfg.pools[i], err);
        if (rc < 0)
            return rc;
    }
    m->cfg.pools = NULL; /* not kept: the pools are */
    m->cfg.n_pools = 0;
    w->enabled = w->pools || m->cfg.auto_pool;
    const char *dir = m->cfg.state_dir;
    m->cfg.state_dir = NULL;
    if (!dir || !*dir) {
        if (w->enabled)
            return se_err_set(err, SE_INVALID, "--state-dir: needed by --pool and --auto-pool");
        return 0;
    }
    if (asprintf(&w->state_dir, "%s/%s", dir, m->cfg.instance) < 0) {
        w->state_dir = NULL;
        return se_err_set(err, SE_INTERNAL, "out of memory");
    }
    if (!w->enabled)
        return 0; /* read at recovery if it is there, never made */
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return se_err_errno(err, SE_INVALID, "--state-dir %s", dir);
    if (mkdir(w->state_dir, 0700) < 0 && errno != EEXIST)
        return se_err_errno(err, SE_INVALID, "--state-dir %s", w->state_dir);
    struct stat st;
    if (lstat(w->state_dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & 077))
        return se_err_set(err, SE_INVALID,
                          "--state-dir: %s must be a folder of this user with mode 0700",
                          w->state_dir);
    return 0;
}

bool
sandbox_warm_poolable(const Safeeval__V1__CreateSandboxRequest *req)
{
    /* A pool worker runs the fresh jail: a zygote sandbox needs another. */
    return req->n_preload == 0 && (req->runner == SAFEEVAL__V1__RUNNER__RUNNER_DEFAULT ||
                                   req->runner == SAFEEVAL__V1__RUNNER__RUNNER_FRESH);
}

warm_worker *
sandbox_warm_take(sandbox_manager *m, const sandbox_spec *spec, uint64_t *charge)
{
    char key[SANDBOX_POOL_KEY_LEN + 1];
    if (!m->warm.enabled || pool_key(key, spec) < 0)
        return NULL;
    warm_worker *ww = NULL;
    pthread_mutex_lock(&m->reg.mu);
    warm_pool *p = pool_find(m, key);
    if (p && p->image) {
        for (warm_worker **pp = &p->ready; *pp; pp = &(*pp)->next)
            if (strcmp((*pp)->image, p->image) == 0) {
                ww = *pp;
                *pp = ww->next;
                ww->next = NULL;
                p->n_ready--;
                *charge = pool_charge(p);
                pthread_cond_signal(&m->warm.cv);
                break;
            }
    }
    pthread_mutex_unlock(&m->reg.mu);
    return ww;
}

void
sandbox_warm_note(sandbox_manager *m, const sandbox_spec *spec)
{
    char key[SANDBOX_POOL_KEY_LEN + 1];
    if (!m->warm.enabled || pool_key(key, spec) < 0)
        return;
    int64_t now = clock_mono_ms();
    pthread_mutex_lock(&m->reg.mu);
    warm_pool *p = pool_find(m, key);
    if (p || !m->cfg.auto_pool) {
        if (p)
            p->seen_ms = now;
        pthread_cond_signal(&m->warm.cv);
        pthread_mutex_unlock(&m->reg.mu);
        return;
    }
    pthread_mutex_unlock(&m->reg.mu);
    /* A new automatic pool (validated again: cheap, and the pool's spec
     * must be the defaults' whatever this create asked). */
    sandbox_spec ps;
    se_err err;
    se_err_clear(&err);
    if (pool_spec_make(&ps, m, spec->python, spec->modules, spec->n_modules, &err) < 0)
        return;
    pthread_mutex_lock(&m->reg.mu);
    unsigned autos = 0;
    warm_pool *oldest = NULL;
    for (warm_pool *q = m->warm.pools; q; q = q->next)
        if (!q->configured) {
            autos++;
            if (!oldest || q->seen_ms < oldest->seen_ms)
                oldest = q;
        }
    if (autos >= WARM_AUTO_SPECS_MAX && oldest)
        oldest->seen_ms = 0; /* its workers go at the filler's next look */
    p = pool_find(m, key);   /* another create may have made it meanwhile */
    if (!p && (p = pool_new(&ps, key)) != NULL) {
        p->next = m->warm.pools;
        m->warm.pools = p;
        log_info("auto pool %s: python %s, %zu modules", key, p->spec.python, p->spec.n_modules);
    }
    if (p)
        p->seen_ms = now;
    pthread_cond_signal(&m->warm.cv);
    pthread_mutex_unlock(&m->reg.mu);
    sandbox_spec_clear(&ps);
}

bool
sandbox_warm_evict_locked(sandbox_manager *m, uint64_t bytes)
{
    for (warm_pool *p = m->warm.pools; p; p = p->next)
        while (p->ready && m->memory_used + bytes > m->cfg.max_memory_total) {
            warm_worker *ww = p->ready;
            p->ready = ww->next;
            p->n_ready--;
            log_info("pool %s: worker %.12s evicted for a sandbox's memory", p->key,
                     ww->w->container_id);
            trash_locked(m, ww, pool_charge(p));
        }
    return m->memory_used + bytes <= m->cfg.max_memory_total;
}

int
sandbox_charge_evict(sandbox_manager *m, uint64_t bytes, se_err *err)
{
    pthread_mutex_lock(&m->reg.mu);
    bool fits = sandbox_warm_evict_locked(m, bytes);
    if (fits)
        m->memory_used += bytes;
    uint64_t used = m->memory_used;
    pthread_mutex_unlock(&m->reg.mu);
    if (!fits)
        return se_err_set(err, SE_EXHAUSTED,
                          "max-memory-total (%" PRIu64 " bytes) reached: %" PRIu64
                          " bytes of worker memory in use, %" PRIu64 " more asked for",
                          m->cfg.max_memory_total, used, bytes);
    return 0;
}

/* ---- the filler ---- */

static bool
warm_stopping(void *ud)
{
    sandbox_manager *m = ud;
    return __atomic_load_n(&m->warm.stop, __ATOMIC_RELAXED);
}

/* Makes sure of the pool's image (building it if need be); a new tag sends
 * the ready workers of the old one to the trash. */
static int
warm_image(sandbox_manager *m, warm_pool *p, char **tag, se_err *err)
{
    se_cancel cancel = {.deadline_ms = INT64_MAX, .is_cancelled = warm_stopping, .ud = m};
    image_ref ref;
    memset(&ref, 0, sizeof(ref));
    int rc = image_ensure(m->ic, p->spec.python, (const char *const *)p->spec.modules,
                          p->spec.n_modules, &ref, NULL, NULL, &cancel, err);
    if (rc < 0)
        return se_err_prefix(err, "image");
    char *dup = strdup(ref.tag);
    *tag = strdup(ref.tag);
    if (!dup || !*tag) {
        free(dup);
        free(*tag);
        *tag = NULL;
        return se_err_set(err, SE_INTERNAL, "out of memory");
    }
    pthread_mutex_lock(&m->reg.mu);
    if (!p->image || strcmp(p->image, dup) != 0) {
        free(p->image);
        p->image = dup;
        dup = NULL;
        pool_trim_locked(m, p, SANDBOX_POOL_MAX_N);
    }
    pthread_mutex_unlock(&m->reg.mu);
    free(dup);
    return 0;
}

/* One new ready worker of pool p (its budget is charged by the caller). */
static int
warm_make(sandbox_manager *m, warm_pool *p, warm_worker **out, se_err *err)
{
    *out = NULL;
    int64_t t0 = clock_mono_ms();
    cJSON *body = NULL;
    char *cid = NULL, *spec_text = NULL;
    sandbox_worker *w = NULL;
    warm_worker *ww = calloc(1, sizeof(*ww));
    if (!ww)
        return se_err_set(err, SE_INTERNAL, "out of memory");
    int rc = warm_image(m, p, &ww->image, err);
    if (rc < 0)
        goto out;
    char suffix[SANDBOX_ID_LEN + 1];
    if ((rc = sandbox_new_id(ww->sandbox_id, err)) < 0 || (rc = sandbox_new_id(suffix, err)) < 0)
        goto out;
    uint64_t memory = pool_charge(p);
    rc = sandbox_container_body(&body, &m->cfg, m->seccomp_json, &p->spec, ww->sandbox_id,
                                ww->image, memory, err);
    if (rc < 0)
        goto out;
    /* The same hardened body as a sandbox's worker; only the spec label
     * differs, since no sandbox has asked yet. */
    cJSON *labels = cJSON_GetObjectItemCaseSensitive(body, "Labels");
    cJSON_DeleteItemFromObjectCaseSensitive(labels, SE_LABEL_SPEC);
    spec_text = pool_spec_text(p->spec.python, p->spec.modules, p->spec.n_modules);
    if (!spec_text || !cJSON_AddStringToObject(labels, SANDBOX_LABEL_POOL, p->key) ||
        !cJSON_AddStringToObject(labels, SANDBOX_LABEL_POOL_SPEC, spec_text)) {
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto out;
    }
    char name[SANDBOX_ID_MAX + 32];
    snprintf(name, sizeof(name), "safeeval-%s-%.8s", ww->sandbox_id, suffix);
    if ((rc = docker_container_create(m->dc, name, body, &cid, err)) < 0 ||
        (rc = docker_container_start(m->dc, cid, err)) < 0 ||
        (rc = sandbox_worker_adopt(m, cid, memory, &w, err)) < 0 ||
        (rc = sandbox_read_python_version(m, cid, ww->python_version, err)) < 0)
        goto out;
    if (!sandbox_version_matches(p->spec.python, ww->python_version)) {
        rc = se_err_set(err, SE_PRECONDITION, "asked for python %s, the image has %s",
                        p->spec.python, ww->python_version);
        goto out;
    }
    ww->w = w;
    w = NULL;
    log_debug("pool %s: worker %.12s ready in %lld ms", p->key, cid,
              (long long)(clock_mono_ms() - t0));
    *out = ww;
    ww = NULL;
out:
    if (w)
        sandbox_worker_free(m, w, true);
    else if (rc < 0 && cid)
        sandbox_container_discard(m, cid);
    sandbox_warm_worker_free(ww);
    free(spec_text);
    free(cid);
    cJSON_Delete(body);
    return rc;
}

static void
free_trash(sandbox_manager *m, warm_worker *ww)
{
    while (ww) {
        warm_worker *n = ww->next;
        log_debug("pool worker %.12s removed", ww->w->container_id);
        sandbox_worker_free(m, ww->w, true);
        sandbox_warm_worker_free(ww);
        ww = n;
    }
}

static void *
warm_main(void *arg)
{
    sandbox_manager *m = arg;
    sandbox_warm *W = &m->warm;
    pthread_mutex_lock(&m->reg.mu);
    while (!W->stop) {
        if (W->trash) {
            warm_worker *t = W->trash;
            W->trash = NULL;
            pthread_mutex_unlock(&m->reg.mu);
            free_trash(m, t);
            pthread_mutex_lock(&m->reg.mu);
            continue;
        }
        int64_t now = clock_mono_ms();
        warm_pool *fill = NULL;
        bool image_only = false;
        for (warm_pool **pp = &W->pools; *pp;) {
            warm_pool *p = *pp;
            unsigned want = pool_want(m, p, now);
            if (p->n_ready > want)
                pool_trim_locked(m, p, want);
            if (want == 0 && !p->configured && !p->ready && !p->n_starting) {
                *pp = p->next; /* an automatic pool nobody asked for lately */
                log_info("auto pool %s: no create within the window: dropped", p->key);
                pool_free(p);
                continue;
            }
            pp = &p->next;
            if (fill || now < p->retry_ms || want == 0)
                continue;
            if (!p->image) {
                fill = p; /* its image first: recovered workers wait for it */
                image_only = true;
            } else if (p->n_ready + p->n_starting < want &&
                       m->memory_used + pool_charge(p) <= m->cfg.max_memory_total) {
                fill = p;
            }
        }
        if (W->trash)
            continue;
        if (!fill) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += WARM_TICK_MS / 1000;
            pthread_cond_timedwait(&W->cv, &m->reg.mu, &ts);
            continue;
        }
        uint64_t charge = pool_charge(fill);
        if (!image_only)
            m->memory_used += charge;
        fill->n_starting++; /* also keeps the pool from being dropped */
        pthread_mutex_unlock(&m->reg.mu);
        se_err err;
        se_err_clear(&err);
        warm_worker *ww = NULL;
        char *tag = NULL;
        int rc = image_only ? warm_image(m, fill, &tag, &err) : warm_make(m, fill, &ww, &err);
        free(tag);
        pthread_mutex_lock(&m->reg.mu);
        fill->n_starting--;
        if (rc < 0) {
            if (!image_only)
                m->memory_used = m->memory_used > charge ? m->memory_used - charge : 0;
            if (!W->stop) {
                fill->failures++;
                int64_t backoff = 1000ll << (fill->failures < 7 ? fill->failures : 7);
                fill->retry_ms = clock_mono_ms() +
                                 (backoff < WARM_BACKOFF_MAX_MS ? backoff : WARM_BACKOFF_MAX_MS);
                log_warn("pool %s (python %s, %zu modules): %s; next try in %lld s", fill->key,
                         fill->spec.python, fill->spec.n_modules, err.msg,
                         (long long)(fill->retry_ms - clock_mono_ms()) / 1000);
            }
        } else if (ww) {
            fill->failures = 0;
            ww->next = fill->ready;
            fill->ready = ww;
            fill->n_ready++;
            /* Not wanted any more, or of an image replaced meanwhile: the
             * next pass trims it. */
        } else {
            fill->failures = 0;
        }
    }
    warm_worker *t = W->trash;
    W->trash = NULL;
    pthread_mutex_unlock(&m->reg.mu);
    free_trash(m, t);
    return NULL;
}

int
sandbox_warm_start(sandbox_manager *m, se_err *err)
{
    if (!m->warm.enabled || m->warm.started)
        return 0;
    int rc = pthread_create(&m->warm.thread, NULL, warm_main, m);
    if (rc != 0) {
        errno = rc;
        return se_err_errno(err, SE_INTERNAL, "start the pool thread");
    }
    m->warm.started = true;
    return 0;
}

void
sandbox_warm_free(sandbox_manager *m)
{
    sandbox_warm *W = &m->warm;
    if (W->started) {
        pthread_mutex_lock(&m->reg.mu);
        __atomic_store_n(&W->stop, true, __ATOMIC_RELAXED);
        pthread_cond_broadcast(&W->cv);
        pthread_mutex_unlock(&m->reg.mu);
        pthread_join(W->thread, NULL);
        W->started = false;
    }
    /* Ready workers stay in the engine: the next daemon's recovery takes
     * them back into its pools (or removes them). */
    while (W->pools) {
        warm_pool *p = W->pools;
        W->pools = p->next;
        while (p->ready) {
            warm_worker *ww = p->ready;
            p->ready = ww->next;
            sandbox_worker_free(m, ww->w, false);
            sandbox_warm_worker_free(ww);
        }
        pool_free(p);
    }
    free_trash(m, W->trash);
    W->trash = NULL;
    pthread_cond_destroy(&W->cv);
    free(W->state_dir);
    W->state_dir = NULL;
}

/* ---- recovery ---- */

static const char *
label_str(const cJSON *labels, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(labels, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The pool spec label back into a validated spec; its key must match. */
static int
recover_spec(sandbox_manager *m, const cJSON *labels, sandbox_spec *out, char key[], se_err *err)
{
    const char *want = label_str(labels, SANDBOX_LABEL_POOL);
    const char *text = label_str(labels, SANDBOX_LABEL_POOL_SPEC);
    if (!want || !text || strlen(text) > 64 * 1024)
        return se_err_set(err, SE_INVALID, "pool labels missing");
    cJSON *j = cJSON_Parse(text);
    const cJSON *py = cJSON_GetObjectItemCaseSensitive(j, "python");
    const cJSON *jm = cJSON_GetObjectItemCaseSensitive(j, "modules");
    char *mods[SE_MAX_MODULES + 1];
    size_t n = 0;
    int rc = 0;
    if (!cJSON_IsString(py) || !cJSON_IsArray(jm) || cJSON_GetArraySize(jm) > SE_MAX_MODULES)
        rc = se_err_set(err, SE_INVALID, "pool spec label malformed");
    const cJSON *it;
    cJSON_ArrayForEach(it, jm)
    {
        if (rc < 0 || n >= SE_MAX_MODULES || !cJSON_IsString(it)) {
            rc = rc < 0 ? rc : se_err_set(err, SE_INVALID, "pool spec label malformed");
            break;
        }
        mods[n++] = it->valuestring;
    }
    if (rc == 0)
        rc = pool_spec_make(out, m, py->valuestring, mods, n, err);
    cJSON_Delete(j);
    if (rc == 0 && (pool_key(key, out) < 0 || strcmp(key, want) != 0)) {
        sandbox_spec_clear(out);
        rc = se_err_set(err, SE_INVALID, "pool label does not match its spec");
    }
    return rc;
}

int
sandbox_warm_recover(sandbox_manager *m, const cJSON *c)
{
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(c, "Labels");
    const cJSON *jid = cJSON_GetObjectItemCaseSensitive(c, "Id");
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(c, "State");
    const cJSON *image = cJSON_GetObjectItemCaseSensitive(c, "Image");
    const char *sid = label_str(labels, SE_LABEL_SANDBOX);
    const char *cid = jid->valuestring;
    se_err err;
    se_err_clear(&err);
    sandbox_spec ps;
    memset(&ps, 0, sizeof(ps));
    char key[SANDBOX_POOL_KEY_LEN + 1];
    warm_worker *ww = NULL;
    warm_pool *p = NULL;
    bool charged = false;
    int rc = -1;
    if (!cJSON_IsString(state) || strcmp(state->valuestring, "running") != 0) {
        se_err_set(&err, SE_INVALID, "not running");
        goto out;
    }
    if (!sid || sandbox_validate_id(sid, &err) < 0 || !cJSON_IsString(image) ||
        strlen(image->valuestring) > 256) {
        se_err_set(&err, SE_INVALID, "bad sandbox or image");
        goto out;
    }
    if (recover_spec(m, labels, &ps, key, &err) < 0)
        goto out;
    pthread_mutex_lock(&m->reg.mu);
    int64_t now = clock_mono_ms();
    p = pool_find(m, key);
    if (!p && m->cfg.auto_pool && (p = pool_new(&ps, key)) != NULL) {
        p->next = m->warm.pools;
        m->warm.pools = p;
    }
    if (p && !p->configured)
        p->seen_ms = now; /* an automatic pool lives one window after a restart */
    if (p && p->n_ready + p->n_starting < pool_want(m, p, now) &&
        m->memory_used + pool_charge(p) <= m->cfg.max_memory_total) {
        m->memory_used += pool_charge(p);
        p->n_starting++;
        charged = true;
    }
    pthread_mutex_unlock(&m->reg.mu);
    if (!charged) {
        se_err_set(&err, SE_INVALID, "its pool wants no more workers");
        goto out;
    }
    ww = calloc(1, sizeof(*ww));
    if (!ww || !(ww->image = strdup(image->valuestring))) {
        se_err_set(&err, SE_INTERNAL, "out of memory");
        goto out;
    }
    snprintf(ww->sandbox_id, sizeof(ww->sandbox_id), "%s", sid);
    if (sandbox_worker_adopt(m, cid, pool_charge(p), &ww->w, &err) < 0)
        goto out;
    if (sandbox_read_python_version(m, cid, ww->python_version, &err) < 0 ||
        !sandbox_version_matches(p->spec.python, ww->python_version)) {
        sandbox_worker_free(m, ww->w, false);
        ww->w = NULL;
        goto out;
    }
    rc = 0;
out:
    if (charged) {
        pthread_mutex_lock(&m->reg.mu);
        p->n_starting--;
        if (rc == 0) {
            ww->next = p->ready;
            p->ready = ww;
            p->n_ready++;
            ww = NULL;
        } else {
            m->memory_used -= pool_charge(p);
        }
        pthread_mutex_unlock(&m->reg.mu);
    }
    sandbox_warm_worker_free(ww);
    sandbox_spec_clear(&ps);
    if (rc == 0) {
        log_info("recover: pool %s: worker %.12s back in its pool", key, cid);
        return 1;
    }
    log_info("recover: pool worker %.12s (%s): removing", cid, err.msg);
    sandbox_container_discard(m, cid);
    return 0;
}
