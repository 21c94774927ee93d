/* The image cache: content-addressed tags, one build per tag at a time
 * (singleflight), and cleanup of what failed builds leave behind.
 *
 * Singleflight: every caller for a tag joins one "flight" (a small list under
 * the cache mutex). The first caller owns it: it inspects the tag and builds
 * if needed; the others wait on the condvar and share its result. The owner
 * builds under its own cancel token. If the owner is cancelled or runs out of
 * time, waiters that are still wanted do not inherit that error: they start a
 * new flight (and the classic builder's layer cache makes the retry cheap). A
 * waiter whose own caller goes away leaves the flight without disturbing it. */
#include "image/internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "util/cleanup.h"
#include "util/file.h"
#include "util/log.h"
#include "util/metrics.h"

typedef struct flight {
    char tag[128];
    int refs; /* the owner + waiters; the last one out frees it */
    bool done;
    int rc;
    se_err err;
    struct flight *next;
} flight;

/* What the collector must know of a tag: this daemon's last use of it, and
 * how many creates hold it between image_ensure and their container. */
typedef struct usage {
    char tag[128];
    int64_t last_use_ms;
    int pins;
} usage;

struct image_cache {
    docker_client *dc;
    char *base_template;
    char *recipe_dir;
    char *agent_path;
    char *wheelhouse;
    char *instance;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    flight *flights;
    usage usage[IMAGE_USAGE_MAX];
    size_t n_usage;
    /* The agent's digest, kept while its path, size, mtime and inode stay. */
    bool agent_valid;
    struct stat agent_st;
    uint8_t agent_sha[SHA256_DIGEST_LEN];
};

static char *
dup_or_null(const char *s, bool *oom)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *oom = true;
    return d;
}

int
image_cache_new(image_cache **out, docker_client *dc, const image_opts *opts, se_err *err)
{
    if (!opts->base_template || !opts->recipe_dir || !opts->agent_path)
        return se_err_set(err, SE_INVALID,
                          "image cache needs a base template, a recipe dir and an agent path");
    image_cache *ic = calloc(1, sizeof(*ic));
    if (!ic)
        return se_err_set(err, SE_INTERNAL, "out of memory");
    bool oom = false;
    ic->dc = dc;
    ic->base_template = dup_or_null(opts->base_template, &oom);
    ic->recipe_dir = dup_or_null(opts->recipe_dir, &oom);
    ic->agent_path = dup_or_null(opts->agent_path, &oom);
    ic->wheelhouse = dup_or_null(opts->wheelhouse, &oom);
    ic->instance = dup_or_null(opts->instance ? opts->instance : "", &oom);
    pthread_mutex_init(&ic->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ic->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (oom) {
        image_cache_free(ic);
        return se_err_set(err, SE_INTERNAL, "out of memory");
    }
    /* A template that cannot give a valid reference is a config error: say so
     * now rather than at the first request. */
    char *probe = NULL;
    int rc = image_base_ref_resolve(&probe, ic->base_template, "3.11", err);
    free(probe);
    if (rc < 0) {
        image_cache_free(ic);
        return se_err_prefix(err, "base image template \"%s\"", opts->base_template);
    }
    *out = ic;
    return 0;
}

void
image_cache_free(image_cache *ic)
{
    if (!ic)
        return;
    /* Callers stop every user first; a flight left here would be a bug. */
    pthread_mutex_destroy(&ic->mu);
    pthread_cond_destroy(&ic->cv);
    free(ic->base_template);
    free(ic->recipe_dir);
    free(ic->agent_path);
    free(ic->wheelhouse);
    free(ic->instance);
    free(ic);
}

/* The usage entry of tag, made if absent (with ic->mu held). When the table
 * is full, the least recently used unpinned entry makes room: that image
 * falls back to its Created time, which is older, so it is collected a
 * little earlier than it would have been. NULL only when every entry is
 * pinned. */
static usage *
usage_get(image_cache *ic, const char *tag)
{
    for (size_t i = 0; i < ic->n_usage; i++)
        if (strcmp(ic->usage[i].tag, tag) == 0)
            return &ic->usage[i];
    usage *u = NULL;
    if (ic->n_usage < IMAGE_USAGE_MAX) {
        u = &ic->usage[ic->n_usage++];
    } else {
        for (size_t i = 0; i < ic->n_usage; i++)
            if (ic->usage[i].pins == 0 && (!u || ic->usage[i].last_use_ms < u->last_use_ms))
                u = &ic->usage[i];
        if (!u)
            return NULL;
    }
    memset(u, 0, sizeof(*u));
    snprintf(u->tag, sizeof(u->tag), "%s", tag);
    return u;
}

static void
usage_touch(image_cache *ic, const char *tag, int pin_delta)
{
    pthread_mutex_lock(&ic->mu);
    usage *u = usage_get(ic, tag);
    if (u) {
        u->last_use_ms = clock_wall_ms();
        u->pins += pin_delta;
        if (u->pins < 0)
            u->pins = 0;
    }
    pthread_mutex_unlock(&ic->mu);
}

void
image_release(image_cache *ic, const char *tag)
{
    usage_touch(ic, tag, -1);
}

void
image_cache_seen(image_cache *ic, const char *tag)
{
    usage_touch(ic, tag, 0);
}

bool
image_cache_busy(image_cache *ic, const char *tag, int64_t *last_use_ms)
{
    bool busy = false;
    *last_use_ms = 0;
    pthread_mutex_lock(&ic->mu);
    for (size_t i = 0; i < ic->n_usage; i++) {
        if (strcmp(ic->usage[i].tag, tag) == 0) {
            busy = ic->usage[i].pins > 0;
            *last_use_ms = ic->usage[i].last_use_ms;
            break;
        }
    }
    for (flight *f = ic->flights; f && !busy; f = f->next)
        busy = strcmp(f->tag, tag) == 0;
    pthread_mutex_unlock(&ic->mu);
    return busy;
}

void
image_cache_forget(image_cache *ic, const char *tag)
{
    pthread_mutex_lock(&ic->mu);
    for (size_t i = 0; i < ic->n_usage; i++) {
        if (strcmp(ic->usage[i].tag, tag) == 0 && ic->usage[i].pins == 0) {
            ic->usage[i] = ic->usage[--ic->n_usage];
            break;
        }
    }
    pthread_mutex_unlock(&ic->mu);
}

docker_client *
image_cache_docker(image_cache *ic)
{
    return ic->dc;
}

const char *
image_cache_instance(image_cache *ic)
{
    return ic->instance;
}

/* The agent's sha256, from the cache when the file looks unchanged. */
static int
agent_digest(image_cache *ic, uint8_t out[SHA256_DIGEST_LEN], se_err *err)
{
    struct stat st;
    if (stat(ic->agent_path, &st) < 0)
        return se_err_errno(err, SE_PRECONDITION, "agent binary %s", ic->agent_path);
    pthread_mutex_lock(&ic->mu);
    bool hit = ic->agent_valid && ic->agent_st.st_size == st.st_size &&
               ic->agent_st.st_ino == st.st_ino && ic->agent_st.st_dev == st.st_dev &&
               ic->agent_st.st_mtim.tv_sec == st.st_mtim.tv_sec &&
               ic->agent_st.st_mtim.tv_nsec == st.st_mtim.tv_nsec;
    if (hit)
        memcpy(out, ic->agent_sha, SHA256_DIGEST_LEN);
    pthread_mutex_unlock(&ic->mu);
    if (hit)
        return 0;
    cleanup_free uint8_t *data = NULL;
    size_t len;
    int rc = file_read_all(ic->agent_path, IMAGE_AGENT_CAP, FILE_NOFOLLOW, &data, &len, &st, err);
    if (rc < 0)
        return se_err_prefix(err, "agent binary");
    sha256_digest(out, data, len);
    pthread_mutex_lock(&ic->mu);
    ic->agent_valid = true;
    ic->agent_st = st;
    memcpy(ic->agent_sha, out, SHA256_DIGEST_LEN);
    pthread_mutex_unlock(&ic->mu);
    return 0;
}

/* No base image: say how to get one. The local bases (docker/base/build-base,
 * for machines without a registry) are safeeval/python:<major.minor>, one
 * per Debian suite; anything else comes from a registry. */
static int
base_missing(const char *base_ref, const char *version, se_err *err)
{
    static const char *const suites[][2] = {
        {"3.9", "bullseye"}, {"3.11", "bookworm"}, {"3.13", "trixie"}};
    for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
        char local[64];
        snprintf(local, sizeof(local), "safeeval/python:%s", suites[i][0]);
        if (strcmp(base_ref, local) == 0)
            return se_err_set(err, SE_PRECONDITION,
                              "no base image %s for python %s: build it with "
                              "`docker/base/build-base %s` (as root, from the safeeval sources), "
                              "or set --base-image",
                              base_ref, version, suites[i][1]);
    }
    return se_err_set(err, SE_PRECONDITION,
                      "no base image %s for python %s: get it with `docker pull %s`, or set "
                      "--base-image",
                      base_ref, version, base_ref);
}

/* The base image's Id ("sha256:..."), checked to be a plain token. */
static int
base_image_id(image_cache *ic, const char *base_ref, const char *version, char *out, size_t cap,
              se_err *err)
{
    cJSON *j = NULL;
    int rc = docker_image_inspect(ic->dc, base_ref, &j, err);
    if (rc == -SE_NOT_FOUND)
        return base_missing(base_ref, version, err);
    if (rc < 0)
        return se_err_prefix(err, "inspect base image %s", base_ref);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "Id");
    rc = 0;
    if (!cJSON_IsString(id) || !id->valuestring[0] || strlen(id->valuestring) >= cap ||
        strspn(id->valuestring, "abcdefghijklmnopqrstuvwxyz0123456789:") != strlen(id->valuestring))
        rc = se_err_set(err, SE_PROTOCOL, "base image %s: bad Id in inspect answer", base_ref);
    else
        snprintf(out, cap, "%s", id->valuestring);
    cJSON_Delete(j);
    return rc;
}

/* A build reports each committed step as " ---> <12 hex>": those are the
 * images this build made (or reused from the cache). */
#define BUILD_MAX_STEPS 64

typedef struct build_progress {
    docker_progress_fn fn;
    void *ud;
    char steps[BUILD_MAX_STEPS][13];
    size_t n_steps;
} build_progress;

static void
note_step_image(build_progress *bp, const char *line)
{
    while (*line == ' ')
        line++;
    if (strncmp(line, "---> ", 5) != 0)
        return;
    line += 5;
    size_t n = strspn(line, "0123456789abcdef");
    if (n != 12 || (line[n] != '\0' && line[n] != '\n') || bp->n_steps == BUILD_MAX_STEPS)
        return;
    memcpy(bp->steps[bp->n_steps], line, 12);
    bp->steps[bp->n_steps][12] = '\0';
    bp->n_steps++;
}

static void
on_build_line(const char *line, void *ud)
{
    build_progress *bp = ud;
    log_debug("image build: %s", line);
    note_step_image(bp, line);
    if (bp->fn)
        bp->fn(line, bp->ud);
}

/* A failed classic build leaves its committed steps behind as untagged
 * images. Remove exactly those, newest first, without force: a step that is
 * also the parent of another image (a layer cache another build shares)
 * answers "conflict" and stays. Other builds' steps are never touched, so
 * daemons sharing one engine cannot break each other's builds. */
static void
remove_step_images(image_cache *ic, const build_progress *bp)
{
    for (size_t i = bp->n_steps; i-- > 0;) {
        se_err rerr = {0};
        int r = docker_image_remove(ic->dc, bp->steps[i], false, &rerr);
        if (r == 0)
            log_info("removed step image %s of a failed build", bp->steps[i]);
        else if (r != -SE_NOT_FOUND && r != -SE_CONFLICT)
            log_warn("remove step image %s: %s", bp->steps[i], rerr.msg);
    }
}

/* Everything one ensure needs, read once. */
typedef struct ensure_plan {
    char *base_ref;
    char base_id[160];
    char **modules;
    size_t n_modules;
    image_recipe recipe;
    image_wheelhouse wheels;
    uint8_t agent_sha[SHA256_DIGEST_LEN];
    char tag[128];
} ensure_plan;

static void
plan_free(ensure_plan *p)
{
    free(p->base_ref);
    image_modules_free(p->modules, p->n_modules);
    image_recipe_free(&p->recipe);
    image_wheelhouse_free(&p->wheels);
}

static int
plan_make(image_cache *ic, ensure_plan *p, const char *version, const char *const *modules,
          size_t n_modules, se_err *err)
{
    int rc = image_validate_version(version, err);
    if (rc < 0)
        return rc;
    rc = image_modules_normalize(&p->modules, &p->n_modules, modules, n_modules, err);
    if (rc < 0)
        return rc;
    rc = image_base_ref_resolve(&p->base_ref, ic->base_template, version, err);
    if (rc < 0)
        return rc;
    rc = base_image_id(ic, p->base_ref, version, p->base_id, sizeof(p->base_id), err);
    if (rc < 0)
        return rc;
    rc = image_recipe_load(&p->recipe, ic->recipe_dir, err);
    if (rc < 0)
        return rc;
    rc = image_wheelhouse_list(&p->wheels, ic->wheelhouse, err);
    if (rc < 0)
        return rc;
    rc = agent_digest(ic, p->agent_sha, err);
    if (rc < 0)
        return rc;
    image_tag_inputs ti = {
        .base_id = p->base_id,
        .version = version,
        .modules = (const char *const *)p->modules,
        .n_modules = p->n_modules,
        .recipe = &p->recipe,
        .agent_sha256 = p->agent_sha,
        .offline = ic->wheelhouse != NULL,
        .wheels = &p->wheels,
    };
    return image_tag_compute(p->tag, &ti, err);
}

static int
build_image(image_cache *ic, const ensure_plan *p, const char *version, docker_progress_fn progress,
            void *ud, const se_cancel *cancel, se_err *err)
{
    int rc = 0;
    uint8_t *agent = NULL;
    size_t agent_len = 0;
    se_buf ctx;
    cJSON *labels = NULL, *args = NULL;
    se_buf_init(&ctx, IMAGE_CONTEXT_CAP);

    rc = file_read_all(ic->agent_path, IMAGE_AGENT_CAP, FILE_NOFOLLOW, &agent, &agent_len, NULL,
                       err);
    if (rc < 0) {
        se_err_prefix(err, "agent binary");
        goto out;
    }
    uint8_t sha[SHA256_DIGEST_LEN];
    sha256_digest(sha, agent, agent_len);
    if (memcmp(sha, p->agent_sha, sizeof(sha)) != 0) {
        rc = se_err_set(err, SE_UNAVAILABLE, "agent binary %s changed during the build; retry",
                        ic->agent_path);
        goto out;
    }
    image_context_in ci = {
        .base_ref = p->base_ref,
        .recipe = &p->recipe,
        .modules = (const char *const *)p->modules,
        .n_modules = p->n_modules,
        .wheelhouse_dir = ic->wheelhouse,
        .wheels = &p->wheels,
        .agent = agent,
        .agent_len = agent_len,
    };
    rc = image_context_make(&ctx, &ci, err);
    if (rc < 0) {
        se_err_prefix(err, "build context");
        goto out;
    }
    const char *spec = strchr(p->tag, ':') + 1;
    labels = cJSON_CreateObject();
    args = cJSON_CreateObject();
    if (!labels || !args || !cJSON_AddStringToObject(labels, SE_LABEL_MANAGED, "1") ||
        !cJSON_AddStringToObject(labels, SE_LABEL_SPEC, spec) ||
        !cJSON_AddStringToObject(labels, "safeeval.python", version) ||
        !cJSON_AddStringToObject(labels, SE_LABEL_BASE, p->base_id) ||
        (ic->instance[0] && !cJSON_AddStringToObject(labels, SE_LABEL_BUILDER, ic->instance)) ||
        !cJSON_AddStringToObject(args, "SAFEEVAL_PYTHON_VERSION", version)) {
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto out;
    }
    log_info("building image %s (python %s, %zu modules, context %zu bytes)", p->tag, version,
             p->n_modules, ctx.len);
    int64_t t0 = clock_mono_ms();
    build_progress bp = {.fn = progress, .ud = ud};
    rc = docker_image_build(ic->dc, ctx.data, ctx.len, p->tag, labels, args, on_build_line, &bp,
                            cancel, err);
    metrics_image_build(rc == 0, (clock_mono_ms() - t0) * 1000);
    if (rc < 0) {
        log_warn("image %s: build failed after %lld ms: %s", p->tag,
                 (long long)(clock_mono_ms() - t0), err->msg);
        se_err_prefix(err, "build image for python %s", version);
        /* Cancelled or engine trouble: the build may still run in the
         * engine, and its steps are not ours to take away yet. */
        if (rc == -SE_PRECONDITION)
            remove_step_images(ic, &bp);
        goto out;
    }
    log_info("built image %s in %lld ms", p->tag, (long long)(clock_mono_ms() - t0));
out:
    free(agent);
    se_buf_free(&ctx);
    cJSON_Delete(labels);
    cJSON_Delete(args);
    return rc;
}

/* Inspect, then build if absent: the work one flight does. */
static int
flight_run(image_cache *ic, const ensure_plan *p, const char *version, int *built,
           docker_progress_fn progress, void *ud, const se_cancel *cancel, se_err *err)
{
    *built = 0;
    cJSON *j = NULL;
    int rc = docker_image_inspect(ic->dc, p->tag, &j, err);
    cJSON_Delete(j);
    if (rc == 0)
        return 0;
    if (rc != -SE_NOT_FOUND)
        return se_err_prefix(err, "inspect image %s", p->tag);
    rc = se_cancel_check(cancel, err);
    if (rc < 0)
        return rc;
    rc = build_image(ic, p, version, progress, ud, cancel, err);
    if (rc == 0)
        *built = 1;
    return rc;
}

static void
flight_release(image_cache *ic, flight *f)
{
    /* Called with ic->mu held. */
    if (--f->refs > 0)
        return;
    for (flight **pp = &ic->flights; *pp; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    }
    free(f);
}

static bool
is_cancel_code(int rc)
{
    return rc == -SE_CANCELLED || rc == -SE_DEADLINE;
}

int
image_ensure(image_cache *ic, const char *version, const char *const *modules, size_t n_modules,
             image_ref *out, docker_progress_fn progress, void *ud, const se_cancel *cancel,
             se_err *err)
{
    ensure_plan p = {0};
    int rc = plan_make(ic, &p, version, modules, n_modules, err);
    if (rc < 0)
        goto out;
    snprintf(out->tag, sizeof(out->tag), "%s", p.tag);
    out->built = 0;

    for (;;) {
        pthread_mutex_lock(&ic->mu);
        flight *f = ic->flights;
        while (f && (f->done || strcmp(f->tag, p.tag) != 0))
            f = f->next;
        if (!f) {
            /* Own a new flight. */
            f = calloc(1, sizeof(*f));
            if (!f) {
                pthread_mutex_unlock(&ic->mu);
                rc = se_err_set(err, SE_INTERNAL, "out of memory");
                goto out;
            }
            snprintf(f->tag, sizeof(f->tag), "%s", p.tag);
            f->refs = 1;
            f->next = ic->flights;
            ic->flights = f;
            pthread_mutex_unlock(&ic->mu);

            int built = 0;
            se_err ferr = {0};
            int frc = flight_run(ic, &p, version, &built, progress, ud, cancel, &ferr);

            pthread_mutex_lock(&ic->mu);
            f->done = true;
            f->rc = frc;
            f->err = ferr;
            pthread_cond_broadcast(&ic->cv);
            flight_release(ic, f);
            pthread_mutex_unlock(&ic->mu);
            if (frc < 0 && err)
                *err = ferr;
            out->built = built;
            rc = frc;
            goto out;
        }
        /* Join the flight in the air. */
        f->refs++;
        log_debug("image %s: waiting for the build in progress", p.tag);
        int wrc = 0;
        while (!f->done) {
            wrc = se_cancel_check(cancel, err);
            if (wrc < 0)
                break;
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_nsec += 100 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&ic->cv, &ic->mu, &ts);
        }
        int frc = f->done ? f->rc : 0;
        se_err ferr = f->done ? f->err : (se_err){0};
        bool done = f->done;
        flight_release(ic, f);
        pthread_mutex_unlock(&ic->mu);
        if (!done) {
            rc = wrc;
            goto out;
        }
        /* The owner's cancellation is not ours: try again with a new flight. */
        if (is_cancel_code(frc) && se_cancel_check(cancel, NULL) == 0)
            continue;
        if (frc < 0 && err)
            *err = ferr;
        rc = frc;
        goto out;
    }
out:
    if (rc == 0)
        usage_touch(ic, out->tag, +1);
    plan_free(&p);
    return rc;
}

int
image_prune_dangling(image_cache *ic, int64_t min_age_s, se_err *err)
{
    int64_t now_s = clock_wall_ms() / 1000;
    static const char *const filters[] = {SE_LABEL_MANAGED "=1", NULL};
    cJSON *list = NULL;
    int rc = docker_image_list(ic->dc, filters, true, &list, err);
    if (rc < 0)
        return se_err_prefix(err, "list dangling images");
    int first_rc = 0;
    const cJSON *img;
    cJSON_ArrayForEach(img, list)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(img, "Id");
        if (!cJSON_IsString(id) || !id->valuestring[0])
            continue;
        /* A build in progress (ours or another daemon's) has young dangling
         * steps; only old ones are leftovers. */
        const cJSON *created = cJSON_GetObjectItemCaseSensitive(img, "Created");
        if (!cJSON_IsNumber(created) || now_s - (int64_t)created->valuedouble < min_age_s)
            continue;
        se_err rerr = {0};
        int r = docker_image_remove(ic->dc, id->valuestring, true, &rerr);
        if (r < 0 && r != -SE_NOT_FOUND) {
            log_warn("remove dangling image %s: %s", id->valuestring, rerr.msg);
            if (first_rc == 0) {
                first_rc = r;
                if (err)
                    *err = rerr;
            }
        } else if (r == 0) {
            log_info("removed dangling image %s", id->valuestring);
        }
    }
    cJSON_Delete(list);
    return first_rc;
}

/* ---- bases ----
 * The base images present now: which Python versions a sandbox can be made
 * for (GetServerInfo). A base is an image whose tag the base template
 * resolves to for some version; its exact Python version is the
 * SE_LABEL_BASE_PYTHON label that docker/base/build-base sets, when there. */

/* The version in tag, when the template resolves to tag for it: the
 * version-shaped text where the template's first {version} stands. */
static bool
tag_version(const char *template, const char *tag, char out[IMAGE_BASE_VERSION_MAX + 1])
{
    const char *tok = strstr(template, "{version}");
    if (!tok)
        return false;
    size_t pre = (size_t)(tok - template);
    if (strncmp(tag, template, pre) != 0)
        return false;
    const char *v = tag + pre;
    size_t n = strspn(v, "0123456789.");
    if (n == 0 || n > IMAGE_BASE_VERSION_MAX)
        return false;
    memcpy(out, v, n);
    out[n] = '\0';
    if (image_validate_version(out, NULL) < 0)
        return false;
    cleanup_free char *ref = NULL;
    if (image_base_ref_resolve(&ref, template, out, NULL) < 0)
        return false;
    /* The engine names Docker Hub's official images without "docker.io/library/". */
    return strcmp(ref, tag) == 0;
}

/* Version order ("3.9" before "3.12"): the versions are validated digits
 * and dots. */
static int
cmp_base(const void *a, const void *b)
{
    const char *x = ((const image_base *)a)->version, *y = ((const image_base *)b)->version;
    while (*x || *y) {
        unsigned long u = strtoul(x, (char **)&x, 10), v = strtoul(y, (char **)&y, 10);
        if (u != v)
            return u < v ? -1 : 1;
        if (*x == '.')
            x++;
        if (*y == '.')
            y++;
        if (!*x != !*y)
            return *x ? 1 : -1;
    }
    return 0;
}

int
image_base_list(image_cache *ic, image_base **out, size_t *n_out, se_err *err)
{
    *out = NULL;
    *n_out = 0;
    cJSON *list = NULL;
    int rc = docker_image_list(ic->dc, NULL, false, &list, err);
    if (rc < 0)
        return se_err_prefix(err, "list base images");
    image_base *v = NULL;
    size_t n = 0;
    const cJSON *img;
    cJSON_ArrayForEach(img, list)
    {
        const cJSON *tags = cJSON_GetObjectItemCaseSensitive(img, "RepoTags");
        const cJSON *labels = cJSON_GetObjectItemCaseSensitive(img, "Labels");
        const cJSON *py = cJSON_GetObjectItemCaseSensitive(labels, SE_LABEL_BASE_PYTHON);
        const cJSON *tag;
        cJSON_ArrayForEach(tag, tags)
        {
            char ver[IMAGE_BASE_VERSION_MAX + 1];
            if (!cJSON_IsString(tag) || strlen(tag->valuestring) > IMAGE_BASE_REF_MAX ||
                !tag_version(ic->base_template, tag->valuestring, ver))
                continue;
            if (n == IMAGE_BASES_MAX)
                break;
            image_base *g = realloc(v, (n + 1) * sizeof(*v));
            if (!g) {
                free(v);
                cJSON_Delete(list);
                return se_err_set(err, SE_INTERNAL, "out of memory");
            }
            v = g;
            memset(&v[n], 0, sizeof(v[n]));
            strcpy(v[n].version, ver);
            strcpy(v[n].ref, tag->valuestring);
            /* The label is the engine's copy of what the image says: checked
             * like any outside text. */
            if (cJSON_IsString(py) && strlen(py->valuestring) <= IMAGE_BASE_VERSION_MAX &&
                image_validate_version(py->valuestring, NULL) == 0)
                strcpy(v[n].full_version, py->valuestring);
            n++;
        }
    }
    cJSON_Delete(list);
    if (n)
        qsort(v, n, sizeof(*v), cmp_base);
    *out = v;
    *n_out = n;
    return 0;
}
