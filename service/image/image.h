/* Sandbox images: recipe -> build context tar -> content-addressed tag.
 * A tag is a hash of everything that goes into the image (base image id,
 * sorted requirements, recipe files, agent binary, wheelhouse listing), so
 * the same spec never builds twice, and concurrent requests for one spec
 * share one build. */
#ifndef SAFEEVAL_IMAGE_IMAGE_H
#define SAFEEVAL_IMAGE_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "docker/docker.h"
#include "util/cancel.h"
#include "util/err.h"

/* Labels on everything safeeval makes. */
#define SE_LABEL_MANAGED "safeeval.managed"   /* = "1" */
#define SE_LABEL_SANDBOX "safeeval.sandbox"   /* = sandbox id (containers) */
#define SE_LABEL_SPEC "safeeval.spec"         /* = spec hash (images) */
#define SE_LABEL_INSTANCE "safeeval.instance" /* = the daemon instance (containers) */
#define SE_LABEL_BUILDER "safeeval.builder"   /* = the instance that built it (images) */
#define SE_LABEL_BASE "safeeval.base"         /* = the base image's Id (images) */
#define SE_IMAGE_REPO "safeeval/sandbox"
#define SE_MAX_MODULES 64
#define SE_MAX_MODULE_LEN 200

typedef struct image_cache image_cache;

typedef struct image_opts {
    const char *base_template; /* "python:{version}-slim"; {version} is replaced */
    const char *recipe_dir;    /* folder with Dockerfile.in and its files (docker/sandbox) */
    const char *agent_path;    /* the static safeeval-agent binary to put in images */
    const char *wheelhouse;    /* folder of wheels for offline pip; NULL = none */
    const char *instance;      /* the daemon instance, labelled on what it builds */
} image_opts;

int image_cache_new(image_cache **out, docker_client *dc, const image_opts *opts, se_err *err);
void image_cache_free(image_cache *ic);

/* Start-up checks (check.c): the recipe folder loads (Dockerfile.in and its
 * files, within the caps); the agent is a static 64-bit ELF executable.
 * SE_NOT_FOUND / SE_INVALID with the path and the reason. */
int image_recipe_check(const char *dir, se_err *err);
int image_agent_check(const char *path, se_err *err);

/* The default collection budget: a tenth of the filesystem holding the
 * engine's data root (when the engine is on this host: local), at most
 * IMAGE_GC_BUDGET_MAX; IMAGE_GC_BUDGET_FALLBACK when that cannot be known. */
#define IMAGE_GC_BUDGET_MAX (20ull << 30)
#define IMAGE_GC_BUDGET_FALLBACK (10ull << 30)
uint64_t image_gc_default_budget(docker_client *dc, bool local);

/* "3.11" or "3.11.4" (major.minor[.micro], digits only, no leading zeros
 * beyond "0"). SE_INVALID otherwise. */
int image_validate_version(const char *version, se_err *err);
/* A pip requirement specifier: a PEP 508 name, optional [extras], optional
 * version specifiers (==, >=, <=, ~=, !=, <, >, ===) with version strings.
 * No URLs, paths, options, markers, whitespace tricks or shell metacharacters.
 * SE_INVALID with the reason otherwise. */
int image_validate_module(const char *module, se_err *err);

typedef struct image_ref {
    char tag[128]; /* "safeeval/sandbox:<hash>" */
    int built;     /* 1 if this call built it, 0 if it was cached */
} image_ref;

/* Makes sure the image for (version, modules) exists, building it if needed.
 * Inputs must already be valid. progress gets build output lines (may be
 * NULL). SE_PRECONDITION with pip's or the build's own last lines when the
 * build fails (pip's last "ERROR:" line first); SE_PRECONDITION when there is
 * no base image for version (naming the command that makes one).
 * On success the image is pinned: image_collect leaves it alone until the
 * caller, once a container uses it (or it gave up), calls image_release. */
int image_ensure(image_cache *ic, const char *version, const char *const *modules, size_t n_modules,
                 image_ref *out, docker_progress_fn progress, void *ud, const se_cancel *cancel,
                 se_err *err);

/* Drops the pin image_ensure took on tag and records the use. */
void image_release(image_cache *ic, const char *tag);

/* Image collection: which sandbox images may go. */
typedef struct image_gc_opts {
    uint64_t cache_bytes;    /* the sandbox images' own bytes (above their base) at most; 0 = no
                                size limit */
    int64_t max_age_s;       /* an image unused this long goes; 0 = no age limit */
    bool own_only;           /* only images this instance built (SE_LABEL_BUILDER) */
    const char *const *keep; /* tags live sandboxes use, NULL-terminated; may be NULL */
} image_gc_opts;

typedef struct image_gc_stats {
    size_t images;          /* sandbox images considered */
    size_t removed;         /* of those, removed */
    uint64_t bytes;         /* their own bytes before */
    uint64_t bytes_removed; /* of those, removed */
} image_gc_stats;

/* Removes least-recently-used sandbox images (labelled SE_LABEL_MANAGED and
 * SE_LABEL_SPEC, tagged SE_IMAGE_REPO:<spec>; never a base image or anything
 * else) until they fit cache_bytes, and every one unused for max_age_s.
 * Never removed: an image any container on the engine uses (whatever
 * instance or program made it, running or not), one in opts->keep, one
 * pinned by image_ensure, one a build of this daemon is making. Last use is
 * this daemon's memory of ensures and of containers seen using the image,
 * else the image's Created time (after a restart). A removal the engine
 * refuses (a container appeared meanwhile) is skipped. out may be NULL. */
int image_collect(image_cache *ic, const image_gc_opts *opts, image_gc_stats *out, se_err *err);

/* A base image present in the engine: what a sandbox can be made from. */
#define SE_LABEL_BASE_PYTHON "safeeval.python.version" /* base images: "3.11.2" */
#define IMAGE_BASE_VERSION_MAX 32
#define IMAGE_BASE_REF_MAX 255
#define IMAGE_BASES_MAX 64
typedef struct image_base {
    char version[IMAGE_BASE_VERSION_MAX + 1];      /* as a request names it: "3.11" */
    char full_version[IMAGE_BASE_VERSION_MAX + 1]; /* its label's "3.11.2"; "" = unknown */
    char ref[IMAGE_BASE_REF_MAX + 1];              /* "safeeval/python:3.11" */
} image_base;

/* The base images present now whose tag the base template resolves to,
 * sorted by version (at most IMAGE_BASES_MAX). *out malloc'd (free). */
int image_base_list(image_cache *ic, image_base **out, size_t *n_out, se_err *err);

/* Removes dangling (untagged, childless) images that carry our label and
 * are at least min_age_s old: leftovers of builds that died with a daemon.
 * Younger ones may be the steps of a build in progress. */
int image_prune_dangling(image_cache *ic, int64_t min_age_s, se_err *err);

#endif
