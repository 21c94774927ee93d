/* Internals of the image module shared by its files (validate.c, recipe.c,
 * tag.c, context.c, cache.c) and reached by the unit tests. Not part of the
 * module interface. */
#ifndef SAFEEVAL_IMAGE_INTERNAL_H
#define SAFEEVAL_IMAGE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image/image.h"
#include "util/buf.h"
#include "util/sha256.h"

/* Caps on what we read from disk: the recipe is a handful of small text
 * files; the agent is one static binary; the whole context must fit a sane
 * amount of memory because it is sent as one request body. */
#define IMAGE_RECIPE_MAX_FILES 64
#define IMAGE_RECIPE_FILE_CAP (1u << 20)
#define IMAGE_AGENT_CAP (64u << 20)
#define IMAGE_WHEELS_MAX 4096
#define IMAGE_CONTEXT_CAP ((size_t)512 << 20)
#define IMAGE_BASE_REF_MAX 255
#define IMAGE_NAME_MAX 255

/* Names the build context reserves for itself; a recipe file may not use them. */
#define IMAGE_CTX_DOCKERFILE "Dockerfile"
#define IMAGE_CTX_REQUIREMENTS "requirements.txt"
#define IMAGE_CTX_PIP_OFFLINE "pip-offline"
#define IMAGE_CTX_WHEELHOUSE "wheelhouse"
#define IMAGE_CTX_AGENT "safeeval-agent"
#define IMAGE_RECIPE_TEMPLATE "Dockerfile.in"
#define IMAGE_BASE_TOKEN "{{BASE_IMAGE}}"

/* validate.c */

/* A resolved base image reference: [a-z0-9./:_@-] only, 1..255 bytes. */
int image_validate_base_ref(const char *ref, se_err *err);
/* base_template with every "{version}" replaced by version; the result is
 * validated with image_validate_base_ref. *out is malloc'd. */
int image_base_ref_resolve(char **out, const char *base_template, const char *version, se_err *err);
/* Copies, sorts (strcmp) and deduplicates modules, validating each one and
 * the count (<= SE_MAX_MODULES). *out is a malloc'd array of malloc'd
 * strings; free with image_modules_free. */
int image_modules_normalize(char ***out, size_t *out_n, const char *const *modules, size_t n,
                            se_err *err);
void image_modules_free(char **m, size_t n);

/* recipe.c: what goes into an image, read from disk with caps. */

typedef struct image_file {
    char *name;    /* a plain file name, no '/' */
    unsigned mode; /* 0644 or 0755 (executable bit kept from the source) */
    uint8_t *data;
    size_t len;
} image_file;

/* The recipe dir's regular files, sorted by name: Dockerfile.in and every
 * other regular file except README.md and dot files. Dockerfile.in must be
 * there; reserved context names are refused. */
typedef struct image_recipe {
    image_file *files;
    size_t n;
} image_recipe;

int image_recipe_load(image_recipe *out, const char *dir, se_err *err);
void image_recipe_free(image_recipe *r);
/* Borrowed pointer to the named file, or NULL. */
const image_file *image_recipe_find(const image_recipe *r, const char *name);

typedef struct image_wheel {
    char *name; /* "pkg-1.0-py3-none-any.whl" */
    uint64_t size;
    int64_t mtime_ns;
} image_wheel;

/* The *.whl regular files of a wheelhouse dir, sorted by name; dir NULL gives
 * an empty list. Other entries are skipped. */
typedef struct image_wheelhouse {
    image_wheel *wheels;
    size_t n;
} image_wheelhouse;

int image_wheelhouse_list(image_wheelhouse *out, const char *dir, se_err *err);
void image_wheelhouse_free(image_wheelhouse *w);

/* tag.c: the content address. Pure: the same inputs always give the same tag,
 * module order and duplicates do not matter, any other change gives a new one. */

typedef struct image_tag_inputs {
    const char *base_id; /* the base image's "Id" */
    const char *version; /* the requested python version */
    const char *const *modules;
    size_t n_modules; /* <= SE_MAX_MODULES; any order */
    const image_recipe *recipe;
    const uint8_t *agent_sha256; /* SHA256_DIGEST_LEN bytes */
    bool offline;                /* a wheelhouse is configured */
    const image_wheelhouse *wheels;
} image_tag_inputs;

#define IMAGE_TAG_HEX 32

/* out = SE_IMAGE_REPO ":" + the first IMAGE_TAG_HEX hex chars of the digest. */
int image_tag_compute(char out[128], const image_tag_inputs *in, se_err *err);

/* context.c: the deterministic build context tar. */

typedef struct image_context_in {
    const char *base_ref;       /* validated, replaces IMAGE_BASE_TOKEN */
    const image_recipe *recipe; /* must hold IMAGE_RECIPE_TEMPLATE */
    const char *const *modules; /* normalized: sorted, unique, valid */
    size_t n_modules;
    const char *wheelhouse_dir; /* NULL = none (pip-offline "0") */
    const image_wheelhouse *wheels;
    const uint8_t *agent; /* the agent binary's bytes */
    size_t agent_len;
} image_context_in;

/* Fills out (a fresh se_buf; caller se_buf_free) with an uncompressed tar:
 * entries sorted by name, mtime 0, uid/gid 0, modes 0644/0755. */
int image_context_make(se_buf *out, const image_context_in *in, se_err *err);

/* gc.c: which images a collection removes. Pure. */
typedef struct image_gc_item {
    uint64_t bytes;      /* the image's own bytes */
    int64_t last_use_ms; /* wall clock */
    bool in_use;         /* never removed, but counts toward the budget */
    bool remove;         /* out */
} image_gc_item;

/* Marks for removal every item not in use that is unused for over max_age_s
 * (0 = no age limit), then the least recently used of the rest, oldest first,
 * until the items' bytes fit cache_bytes (0 = no size limit). Items may be
 * in any order. */
void image_gc_plan(image_gc_item *items, size_t n, uint64_t cache_bytes, int64_t max_age_s,
                   int64_t now_ms);

/* The tags image_ensure handed out and when: the LRU's memory. */
#define IMAGE_USAGE_MAX 1024

/* cache.c, for gc.c. */
/* True when tag is pinned or being built by this daemon; *last_use_ms = this
 * daemon's last use of it (0 = none known). */
bool image_cache_busy(image_cache *ic, const char *tag, int64_t *last_use_ms);
/* Records a use of tag now (a container was seen using it). */
void image_cache_seen(image_cache *ic, const char *tag);
/* Forgets an unpinned tag (its image was removed). */
void image_cache_forget(image_cache *ic, const char *tag);
docker_client *image_cache_docker(image_cache *ic);
const char *image_cache_instance(image_cache *ic); /* "" when none */

#endif
