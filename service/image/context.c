/* The build context: an uncompressed tar made in memory with libarchive.
 * Deterministic on purpose (entries sorted by name, mtime 0, uid/gid 0, fixed
 * modes, no user names), so identical inputs give byte-identical contexts. */
#include "image/internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/cleanup.h"
#include "util/file.h"

typedef struct ctx_entry {
    char name[IMAGE_NAME_MAX + sizeof(IMAGE_CTX_WHEELHOUSE) + 2];
    unsigned mode;
    bool dir;
    const uint8_t *data; /* NULL for dirs and wheels (read when written) */
    size_t len;
    const image_wheel *wheel;
} ctx_entry;

static la_ssize_t
ctx_write_cb(struct archive *a, void *ud, const void *data, size_t n)
{
    se_buf *b = ud;
    if (se_buf_append(b, data, n) < 0) {
        archive_set_error(a, ENOSPC, "build context larger than %zu bytes", b->cap);
        return -1;
    }
    return (la_ssize_t)n;
}

static int
cmp_entry(const void *a, const void *b)
{
    return strcmp(((const ctx_entry *)a)->name, ((const ctx_entry *)b)->name);
}

/* The template with every IMAGE_BASE_TOKEN replaced by base_ref. */
static int
dockerfile_render(se_buf *out, const image_file *tmpl, const char *base_ref, se_err *err)
{
    const size_t tlen = strlen(IMAGE_BASE_TOKEN);
    const char *s = (const char *)tmpl->data;
    const char *end = s + tmpl->len;
    int hits = 0;
    if (memchr(s, '\0', tmpl->len))
        return se_err_set(err, SE_PRECONDITION, "%s holds a NUL byte", IMAGE_RECIPE_TEMPLATE);
    for (;;) {
        const char *hit = memmem(s, (size_t)(end - s), IMAGE_BASE_TOKEN, tlen);
        size_t upto = hit ? (size_t)(hit - s) : (size_t)(end - s);
        if (se_buf_append(out, s, upto) < 0)
            return se_err_set(err, SE_INTERNAL, "out of memory");
        if (!hit)
            break;
        if (se_buf_append(out, base_ref, strlen(base_ref)) < 0)
            return se_err_set(err, SE_INTERNAL, "out of memory");
        hits++;
        s = hit + tlen;
    }
    if (hits == 0)
        return se_err_set(err, SE_PRECONDITION, "%s has no %s token", IMAGE_RECIPE_TEMPLATE,
                          IMAGE_BASE_TOKEN);
    return 0;
}

static int
write_entry(struct archive *a, struct archive_entry *ae, const ctx_entry *e,
            const char *wheelhouse_dir, se_err *err)
{
    cleanup_free uint8_t *wheel_data = NULL;
    const uint8_t *data = e->data;
    size_t len = e->len;
    if (e->wheel) {
        char path[4096];
        if (snprintf(path, sizeof(path), "%s/%s", wheelhouse_dir, e->wheel->name) >=
            (int)sizeof(path))
            return se_err_set(err, SE_PRECONDITION, "wheelhouse path too long");
        struct stat st;
        int rc = file_read_all(path, IMAGE_CONTEXT_CAP, FILE_NOFOLLOW, &wheel_data, &len, &st, err);
        if (rc < 0)
            return rc;
        if ((uint64_t)len != e->wheel->size)
            return se_err_set(err, SE_PRECONDITION, "wheel %s changed while the image was built",
                              e->wheel->name);
        data = wheel_data;
    }
    archive_entry_clear(ae);
    archive_entry_set_pathname(ae, e->name);
    archive_entry_set_filetype(ae, e->dir ? AE_IFDIR : AE_IFREG);
    archive_entry_set_perm(ae, e->mode);
    archive_entry_set_size(ae, e->dir ? 0 : (la_int64_t)len);
    archive_entry_set_mtime(ae, 0, 0);
    archive_entry_set_uid(ae, 0);
    archive_entry_set_gid(ae, 0);
    if (archive_write_header(a, ae) != ARCHIVE_OK)
        return se_err_set(err, SE_EXHAUSTED, "build context: %s", archive_error_string(a));
    size_t off = 0;
    while (!e->dir && off < len) {
        la_ssize_t w = archive_write_data(a, data + off, len - off);
        if (w <= 0)
            return se_err_set(err, SE_EXHAUSTED, "build context: %s",
                              archive_error_string(a) ? archive_error_string(a) : "write failed");
        off += (size_t)w;
    }
    return 0;
}

int
image_context_make(se_buf *out, const image_context_in *in, se_err *err)
{
    int rc = 0;
    struct archive *a = NULL;
    struct archive_entry *ae = NULL;
    ctx_entry *ents = NULL;
    se_buf dockerfile, reqs;
    se_buf_init(&dockerfile, IMAGE_RECIPE_FILE_CAP + 64 * 1024);
    se_buf_init(&reqs, (SE_MAX_MODULE_LEN + 1) * SE_MAX_MODULES);
    se_buf_init(out, IMAGE_CONTEXT_CAP);

    const image_file *tmpl = image_recipe_find(in->recipe, IMAGE_RECIPE_TEMPLATE);
    if (!tmpl) {
        rc = se_err_set(err, SE_PRECONDITION, "recipe has no %s", IMAGE_RECIPE_TEMPLATE);
        goto out;
    }
    rc = image_validate_base_ref(in->base_ref, err);
    if (rc < 0)
        goto out;
    rc = dockerfile_render(&dockerfile, tmpl, in->base_ref, err);
    if (rc < 0)
        goto out;
    /* Validated again here: this file is what pip reads. */
    for (size_t i = 0; i < in->n_modules; i++) {
        rc = image_validate_module(in->modules[i], err);
        if (rc < 0)
            goto out;
        if (i > 0 && strcmp(in->modules[i - 1], in->modules[i]) >= 0) {
            rc = se_err_set(err, SE_INTERNAL, "modules are not sorted and unique");
            goto out;
        }
        if (se_buf_append(&reqs, in->modules[i], strlen(in->modules[i])) < 0 ||
            se_buf_append(&reqs, "\n", 1) < 0) {
            rc = se_err_set(err, SE_INTERNAL, "out of memory");
            goto out;
        }
    }

    size_t n_wheels = in->wheelhouse_dir && in->wheels ? in->wheels->n : 0;
    size_t max = in->recipe->n + 5 + n_wheels;
    ents = calloc(max, sizeof(*ents));
    if (!ents) {
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto out;
    }
    size_t n = 0;
#define ADD(nm, md, dt, ln)                                                                        \
    do {                                                                                           \
        snprintf(ents[n].name, sizeof(ents[n].name), "%s", (nm));                                  \
        ents[n].mode = (md);                                                                       \
        ents[n].data = (const uint8_t *)(dt);                                                      \
        ents[n].len = (ln);                                                                        \
        n++;                                                                                       \
    } while (0)
    ADD(IMAGE_CTX_DOCKERFILE, 0644, dockerfile.data ? dockerfile.data : (uint8_t *)"",
        dockerfile.len);
    ADD(IMAGE_CTX_REQUIREMENTS, 0644, reqs.data ? reqs.data : (uint8_t *)"", reqs.len);
    ADD(IMAGE_CTX_PIP_OFFLINE, 0644, in->wheelhouse_dir ? "1\n" : "0\n", 2);
    ADD(IMAGE_CTX_AGENT, 0755, in->agent, in->agent_len);
    for (size_t i = 0; i < in->recipe->n; i++) {
        const image_file *f = &in->recipe->files[i];
        if (strcmp(f->name, IMAGE_RECIPE_TEMPLATE) == 0)
            continue;
        ADD(f->name, f->mode, f->data, f->len);
    }
    ADD(IMAGE_CTX_WHEELHOUSE "/", 0755, NULL, 0);
    ents[n - 1].dir = true;
    for (size_t i = 0; i < n_wheels; i++) {
        snprintf(ents[n].name, sizeof(ents[n].name), "%s/%s", IMAGE_CTX_WHEELHOUSE,
                 in->wheels->wheels[i].name);
        ents[n].mode = 0644;
        ents[n].wheel = &in->wheels->wheels[i];
        n++;
    }
#undef ADD
    qsort(ents, n, sizeof(*ents), cmp_entry);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(ents[i - 1].name, ents[i].name) == 0) {
            rc = se_err_set(err, SE_PRECONDITION, "build context has %s twice", ents[i].name);
            goto out;
        }
    }

    a = archive_write_new();
    ae = archive_entry_new();
    if (!a || !ae) {
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto out;
    }
    if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_add_filter_none(a) != ARCHIVE_OK ||
        archive_write_open(a, out, NULL, ctx_write_cb, NULL) != ARCHIVE_OK) {
        rc = se_err_set(err, SE_INTERNAL, "build context: %s", archive_error_string(a));
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        rc = write_entry(a, ae, &ents[i], in->wheelhouse_dir, err);
        if (rc < 0)
            goto out;
    }
    if (archive_write_close(a) != ARCHIVE_OK) {
        rc = se_err_set(err, SE_EXHAUSTED, "build context: %s", archive_error_string(a));
        goto out;
    }
out:
    if (ae)
        archive_entry_free(ae);
    if (a)
        archive_write_free(a);
    free(ents);
    se_buf_free(&dockerfile);
    se_buf_free(&reqs);
    if (rc < 0)
        se_buf_free(out);
    return rc;
}
