/* Reading the image's inputs from disk: the recipe dir, the wheelhouse
 * listing and whole files, each with a cap and without following symlinks. */
#include "image/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/file.h"

static int
cmp_file(const void *a, const void *b)
{
    return strcmp(((const image_file *)a)->name, ((const image_file *)b)->name);
}

static int
cmp_wheel(const void *a, const void *b)
{
    return strcmp(((const image_wheel *)a)->name, ((const image_wheel *)b)->name);
}

static bool
is_reserved(const char *name)
{
    return strcmp(name, IMAGE_CTX_DOCKERFILE) == 0 || strcmp(name, IMAGE_CTX_REQUIREMENTS) == 0 ||
           strcmp(name, IMAGE_CTX_PIP_OFFLINE) == 0 || strcmp(name, IMAGE_CTX_WHEELHOUSE) == 0 ||
           strcmp(name, IMAGE_CTX_AGENT) == 0;
}

void
image_recipe_free(image_recipe *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->files[i].name);
        free(r->files[i].data);
    }
    free(r->files);
    r->files = NULL;
    r->n = 0;
}

const image_file *
image_recipe_find(const image_recipe *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->files[i].name, name) == 0)
            return &r->files[i];
    return NULL;
}

int
image_recipe_load(image_recipe *out, const char *dir, se_err *err)
{
    int rc = 0;
    image_recipe r = {0};
    char *path = NULL;
    if (!dir)
        return se_err_set(err, SE_PRECONDITION, "no recipe dir configured");
    DIR *d = opendir(dir);
    if (!d)
        return se_err_errno(err, SE_PRECONDITION, "open recipe dir %s", dir);
    r.files = calloc(IMAGE_RECIPE_MAX_FILES, sizeof(*r.files));
    if (!r.files) {
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto out;
    }
    struct dirent *de;
    while ((errno = 0, de = readdir(d))) {
        const char *name = de->d_name;
        /* Dot files (editor swaps, ".", "..") and the docs are not recipe. */
        if (name[0] == '.' || strcmp(name, "README.md") == 0)
            continue;
        free(path);
        if (asprintf(&path, "%s/%s", dir, name) < 0) {
            path = NULL;
            rc = se_err_set(err, SE_INTERNAL, "out of memory");
            goto out;
        }
        struct stat st;
        if (lstat(path, &st) < 0) {
            rc = se_err_errno(err, SE_INTERNAL, "stat %s", path);
            goto out;
        }
        if (!S_ISREG(st.st_mode))
            continue;
        if (is_reserved(name)) {
            rc = se_err_set(err, SE_PRECONDITION,
                            "recipe file %s uses a name the build context reserves", path);
            goto out;
        }
        if (strlen(name) > IMAGE_NAME_MAX) {
            rc = se_err_set(err, SE_PRECONDITION, "recipe file name too long in %s", dir);
            goto out;
        }
        if (r.n == IMAGE_RECIPE_MAX_FILES) {
            rc = se_err_set(err, SE_PRECONDITION, "recipe dir %s has more than %d files", dir,
                            IMAGE_RECIPE_MAX_FILES);
            goto out;
        }
        image_file *f = &r.files[r.n];
        struct stat fst;
        rc =
            file_read_all(path, IMAGE_RECIPE_FILE_CAP, FILE_NOFOLLOW, &f->data, &f->len, &fst, err);
        if (rc < 0)
            goto out;
        f->name = strdup(name);
        r.n++;
        if (!f->name) {
            rc = se_err_set(err, SE_INTERNAL, "out of memory");
            goto out;
        }
        f->mode = (fst.st_mode & S_IXUSR) ? 0755 : 0644;
    }
    if (errno) {
        rc = se_err_errno(err, SE_INTERNAL, "read recipe dir %s", dir);
        goto out;
    }
    qsort(r.files, r.n, sizeof(*r.files), cmp_file);
    if (!image_recipe_find(&r, IMAGE_RECIPE_TEMPLATE)) {
        rc =
            se_err_set(err, SE_PRECONDITION, "recipe dir %s has no %s", dir, IMAGE_RECIPE_TEMPLATE);
        goto out;
    }
    *out = r;
    r = (image_recipe){0};
out:
    free(path);
    closedir(d);
    image_recipe_free(&r);
    return rc;
}

void
image_wheelhouse_free(image_wheelhouse *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++)
        free(w->wheels[i].name);
    free(w->wheels);
    w->wheels = NULL;
    w->n = 0;
}

/* Wheel file names are [A-Za-z0-9._+-] and end in ".whl"; anything else in
 * the dir is not ours to copy. */
static bool
is_wheel_name(const char *name)
{
    size_t len = strlen(name);
    if (len < 5 || len > IMAGE_NAME_MAX || name[0] == '.' || strcmp(name + len - 4, ".whl") != 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '.' || c == '_' || c == '+' || c == '-'))
            return false;
    }
    return true;
}

int
image_wheelhouse_list(image_wheelhouse *out, const char *dir, se_err *err)
{
    *out = (image_wheelhouse){0};
    if (!dir)
        return 0;
    int rc = 0;
    image_wheelhouse w = {0};
    size_t alloc = 0;
    char *path = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return se_err_errno(err, SE_PRECONDITION, "open wheelhouse %s", dir);
    struct dirent *de;
    while ((errno = 0, de = readdir(d))) {
        if (!is_wheel_name(de->d_name))
            continue;
        free(path);
        if (asprintf(&path, "%s/%s", dir, de->d_name) < 0) {
            path = NULL;
            rc = se_err_set(err, SE_INTERNAL, "out of memory");
            goto out;
        }
        struct stat st;
        if (lstat(path, &st) < 0) {
            rc = se_err_errno(err, SE_INTERNAL, "stat %s", path);
            goto out;
        }
        if (!S_ISREG(st.st_mode))
            continue;
        if (w.n == IMAGE_WHEELS_MAX) {
            rc = se_err_set(err, SE_PRECONDITION, "wheelhouse %s has more than %d wheels", dir,
                            IMAGE_WHEELS_MAX);
            goto out;
        }
        if (w.n == alloc) {
            size_t na = alloc ? alloc * 2 : 16;
            image_wheel *nw = realloc(w.wheels, na * sizeof(*nw));
            if (!nw) {
                rc = se_err_set(err, SE_INTERNAL, "out of memory");
                goto out;
            }
            w.wheels = nw;
            alloc = na;
        }
        image_wheel *wh = &w.wheels[w.n];
        wh->name = strdup(de->d_name);
        if (!wh->name) {
            rc = se_err_set(err, SE_INTERNAL, "out of memory");
            goto out;
        }
        wh->size = (uint64_t)st.st_size;
        wh->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        w.n++;
    }
    if (errno) {
        rc = se_err_errno(err, SE_INTERNAL, "read wheelhouse %s", dir);
        goto out;
    }
    if (w.wheels)
        qsort(w.wheels, w.n, sizeof(*w.wheels), cmp_wheel);
    *out = w;
    w = (image_wheelhouse){0};
out:
    free(path);
    closedir(d);
    image_wheelhouse_free(&w);
    return rc;
}
