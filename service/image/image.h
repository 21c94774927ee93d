/* Sandbox images: recipe -> build context tar -> content-addressed tag.
 * A tag is a hash of everything that goes into the image (base image id,
 * sorted requirements, recipe files, agent binary, wheelhouse listing), so
 * the same spec never builds twice, and concurrent requests for one spec
 * share one build. */
#ifndef SAFEEVAL_IMAGE_IMAGE_H
#define SAFEEVAL_IMAGE_IMAGE_H

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
#define SE_IMAGE_REPO "safeeval/sandbox"
#define SE_MAX_MODULES 64
#define SE_MAX_MODULE_LEN 200

typedef struct image_cache image_cache;

typedef struct image_opts {
    const char *base_template; /* "python:{version}-slim"; {version} is replaced */
    const char *recipe_dir;    /* folder with Dockerfile.in and its files (docker/sandbox) */
    const char *agent_path;    /* the static safeeval-agent binary to put in images */
    const char *wheelhouse;    /* folder of wheels for offline pip; NULL = none */
} image_opts;

int image_cache_new(image_cache **out, docker_client *dc, const image_opts *opts, se_err *err);
void image_cache_free(image_cache *ic);

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
 * build fails; SE_PRECONDITION when there is no base image for version. */
int image_ensure(image_cache *ic, const char *version, const char *const *modules, size_t n_modules,
                 image_ref *out, docker_progress_fn progress, void *ud, const se_cancel *cancel,
                 se_err *err);

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
