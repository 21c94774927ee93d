/* Image collection: sandbox images are a cache, rebuilt on the next create
 * that needs one, so the least recently used ones go when they take more
 * than their share of the disk or have not been used for a while.
 *
 * What may go is decided against the whole engine, not this daemon: other
 * daemons (other instances) share the engine and the images, so an image any
 * container uses stays, whoever made the container. The engine refuses to
 * remove (without force) an image a container was made from in the meantime,
 * and a create that finds its image gone builds it again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "image/internal.h"
#include "util/clock.h"
#include "util/log.h"

static int
by_last_use(const void *a, const void *b)
{
    const image_gc_item *x = *(image_gc_item *const *)a, *y = *(image_gc_item *const *)b;
    return (x->last_use_ms > y->last_use_ms) - (x->last_use_ms < y->last_use_ms);
}

void
image_gc_plan(image_gc_item *items, size_t n, uint64_t cache_bytes, int64_t max_age_s,
              int64_t now_ms)
{
    if (n == 0)
        return; /* (qsort must not see a NULL array, even empty) */
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        items[i].remove = false;
        total += items[i].bytes;
    }
    image_gc_item **order = malloc(n * sizeof(*order));
    if (!order)
        return; /* nothing removed is always safe */
    for (size_t i = 0; i < n; i++)
        order[i] = &items[i];
    qsort(order, n, sizeof(*order), by_last_use);
    for (size_t i = 0; i < n; i++) {
        image_gc_item *it = order[i];
        if (it->in_use)
            continue;
        bool too_old = max_age_s > 0 && now_ms - it->last_use_ms > max_age_s * 1000;
        bool too_big = cache_bytes > 0 && total > cache_bytes;
        if (too_old || too_big) {
            it->remove = true;
            total -= it->bytes;
        }
    }
    free(order);
}

/* The own size of a base image, found once per collection. */
typedef struct base_size {
    char id[160];
    uint64_t size;
} base_size;

#define GC_BASES_MAX 32

static uint64_t
json_u64(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) && v->valuedouble > 0 ? (uint64_t)v->valuedouble : 0;
}

static const char *
json_label(const cJSON *img, const char *key)
{
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(img, "Labels");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(labels, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* An image's own bytes: its size less its base's (both count the base's
 * layers). Without a known base, all of it: collecting a little early is
 * better than never. */
static uint64_t
own_bytes(image_cache *ic, const cJSON *img, base_size *bases, size_t *n_bases)
{
    uint64_t size = json_u64(img, "Size");
    const char *base = json_label(img, SE_LABEL_BASE);
    if (!base || strlen(base) >= sizeof(bases[0].id))
        return size;
    size_t i = 0;
    while (i < *n_bases && strcmp(bases[i].id, base) != 0)
        i++;
    if (i == *n_bases) {
        if (*n_bases == GC_BASES_MAX)
            return size;
        cJSON *j = NULL;
        se_err e = {0};
        uint64_t bsize = 0;
        if (docker_image_inspect(image_cache_docker(ic), base, &j, &e) == 0)
            bsize = json_u64(j, "Size");
        cJSON_Delete(j);
        snprintf(bases[i].id, sizeof(bases[i].id), "%s", base);
        bases[i].size = bsize;
        (*n_bases)++;
    }
    return size > bases[i].size ? size - bases[i].size : 0;
}

/* "safeeval/sandbox:<spec>" when img is one of our sandbox images: our
 * labels and exactly our tag for its spec. Borrowed from img. */
static const char *
sandbox_tag_of(const cJSON *img)
{
    const char *managed = json_label(img, SE_LABEL_MANAGED);
    const char *spec = json_label(img, SE_LABEL_SPEC);
    if (!managed || strcmp(managed, "1") != 0 || !spec || !spec[0])
        return NULL;
    const cJSON *tags = cJSON_GetObjectItemCaseSensitive(img, "RepoTags");
    const cJSON *t;
    size_t repo_len = strlen(SE_IMAGE_REPO);
    cJSON_ArrayForEach(t, tags)
    {
        const char *s = cJSON_IsString(t) ? t->valuestring : "";
        if (strncmp(s, SE_IMAGE_REPO, repo_len) == 0 && s[repo_len] == ':' &&
            strcmp(s + repo_len + 1, spec) == 0)
            return s;
    }
    return NULL;
}

/* True when a container (any, on the whole engine) was made from img. */
static bool
used_by_container(const cJSON *containers, const char *id, const char *tag)
{
    const cJSON *c;
    cJSON_ArrayForEach(c, containers)
    {
        const cJSON *iid = cJSON_GetObjectItemCaseSensitive(c, "ImageID");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(c, "Image");
        if ((cJSON_IsString(iid) && strcmp(iid->valuestring, id) == 0) ||
            (cJSON_IsString(name) && strcmp(name->valuestring, tag) == 0))
            return true;
    }
    return false;
}

static bool
in_list(const char *const *list, const char *s)
{
    for (size_t i = 0; list && list[i]; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

int
image_collect(image_cache *ic, const image_gc_opts *opts, image_gc_stats *out, se_err *err)
{
    image_gc_stats st = {0};
    docker_client *dc = image_cache_docker(ic);
    cJSON *images = NULL, *containers = NULL;
    image_gc_item *items = NULL;
    const cJSON **imgs = NULL;
    char own_filter[200];
    const char *filters[3] = {SE_LABEL_MANAGED "=1", NULL, NULL};
    if (opts->own_only) {
        snprintf(own_filter, sizeof(own_filter), "%s=%s", SE_LABEL_BUILDER,
                 image_cache_instance(ic));
        filters[1] = own_filter;
    }
    int rc = docker_image_list(dc, filters, false, &images, err);
    if (rc < 0) {
        se_err_prefix(err, "collect images");
        goto out;
    }
    /* Listed after the images: a container made in between uses an image
     * listed already, and is seen. */
    rc = docker_container_list(dc, NULL, true, &containers, err);
    if (rc < 0) {
        se_err_prefix(err, "collect images");
        goto out;
    }
    size_t n = (size_t)cJSON_GetArraySize(images);
    items = calloc(n ? n : 1, sizeof(*items));
    imgs = calloc(n ? n : 1, sizeof(*imgs));
    if (!items || !imgs) {
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto out;
    }
    base_size bases[GC_BASES_MAX];
    size_t n_bases = 0, k = 0;
    const cJSON *img;
    int64_t now = clock_wall_ms();
    cJSON_ArrayForEach(img, images)
    {
        const char *tag = sandbox_tag_of(img);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(img, "Id");
        if (!tag || !cJSON_IsString(id) || !id->valuestring[0])
            continue;
        image_gc_item *it = &items[k];
        int64_t mine = 0;
        bool busy = image_cache_busy(ic, tag, &mine);
        bool used = used_by_container(containers, id->valuestring, tag);
        if (used) {
            /* Its age counts from the last time it was seen in use. */
            image_cache_seen(ic, tag);
            mine = now;
        }
        it->in_use = busy || used || in_list(opts->keep, tag);
        int64_t created_ms = (int64_t)json_u64(img, "Created") * 1000;
        it->last_use_ms = mine > created_ms ? mine : created_ms;
        it->bytes = own_bytes(ic, img, bases, &n_bases);
        imgs[k++] = img;
        st.bytes += it->bytes;
    }
    st.images = k;
    image_gc_plan(items, k, opts->cache_bytes, opts->max_age_s, now);
    for (size_t i = 0; i < k; i++) {
        if (!items[i].remove)
            continue;
        const char *id = cJSON_GetObjectItemCaseSensitive(imgs[i], "Id")->valuestring;
        const char *tag = sandbox_tag_of(imgs[i]);
        /* Checked again just before: a create may have pinned it since. */
        int64_t mine = 0;
        if (image_cache_busy(ic, tag, &mine))
            continue;
        se_err rerr = {0};
        int r = docker_image_remove(dc, id, false, &rerr);
        if (r == 0 || r == -SE_NOT_FOUND) {
            image_cache_forget(ic, tag);
            st.removed++;
            st.bytes_removed += items[i].bytes;
            log_info("image %s: removed (%llu bytes of its own, unused for %lld s)", tag,
                     (unsigned long long)items[i].bytes,
                     (long long)((now - items[i].last_use_ms) / 1000));
        } else if (r == -SE_CONFLICT) {
            log_debug("image %s: in use again, kept (%s)", tag, rerr.msg);
        } else {
            log_warn("image %s: remove: %s", tag, rerr.msg);
        }
    }
    log_debug("image collection: %zu sandbox images, %llu bytes of their own; removed %zu "
              "(%llu bytes)",
              st.images, (unsigned long long)st.bytes, st.removed,
              (unsigned long long)st.bytes_removed);
out:
    if (out)
        *out = st;
    free(items);
    free(imgs);
    cJSON_Delete(images);
    cJSON_Delete(containers);
    return rc;
}

uint64_t
image_gc_default_budget(docker_client *dc, bool local)
{
    if (!local)
        return IMAGE_GC_BUDGET_FALLBACK;
    cJSON *info = NULL;
    se_err e = {0};
    if (docker_info(dc, &info, &e) < 0) {
        log_warn("image collection budget: %s", e.msg);
        return IMAGE_GC_BUDGET_FALLBACK;
    }
    const cJSON *root = cJSON_GetObjectItemCaseSensitive(info, "DockerRootDir");
    struct statvfs sv;
    uint64_t budget = IMAGE_GC_BUDGET_FALLBACK;
    if (cJSON_IsString(root) && root->valuestring[0] == '/' && statvfs(root->valuestring, &sv) == 0)
        budget = (uint64_t)sv.f_blocks * sv.f_frsize / 10;
    else
        log_warn("image collection budget: the engine's data root is not visible here");
    cJSON_Delete(info);
    if (budget > IMAGE_GC_BUDGET_MAX)
        budget = IMAGE_GC_BUDGET_MAX;
    return budget;
}
