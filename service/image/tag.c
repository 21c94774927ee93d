/* The content address of an image. The serialisation is canonical and
 * unambiguous: every field is a label, a 64-bit big-endian length and the
 * bytes, in a fixed order, with lists sorted and counted, so no two different
 * input sets can produce the same byte stream. */
#include "image/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bump when the serialisation or the context layout changes, so old images
 * are not reused for a different recipe format. */
#define IMAGE_TAG_SCHEMA "safeeval-image-v1"

static void
put_u64(sha256_ctx *c, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (56 - 8 * i));
    sha256_update(c, b, sizeof(b));
}

static void
put_field(sha256_ctx *c, const char *label, const void *data, size_t len)
{
    sha256_update(c, label, strlen(label) + 1);
    put_u64(c, len);
    sha256_update(c, data, len);
}

static void
put_str(sha256_ctx *c, const char *label, const char *s)
{
    put_field(c, label, s, strlen(s));
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int
image_tag_compute(char out[128], const image_tag_inputs *in, se_err *err)
{
    if (in->n_modules > SE_MAX_MODULES)
        return se_err_set(err, SE_INVALID, "too many modules");
    const char *mods[SE_MAX_MODULES];
    if (in->n_modules)
        memcpy(mods, in->modules, in->n_modules * sizeof(*mods));
    qsort(mods, in->n_modules, sizeof(*mods), cmp_str);
    size_t n_unique = 0;
    for (size_t i = 0; i < in->n_modules; i++)
        if (n_unique == 0 || strcmp(mods[n_unique - 1], mods[i]) != 0)
            mods[n_unique++] = mods[i];

    sha256_ctx c;
    sha256_init(&c);
    put_str(&c, "schema", IMAGE_TAG_SCHEMA);
    put_str(&c, "base-id", in->base_id);
    put_str(&c, "version", in->version);
    put_u64(&c, n_unique);
    for (size_t i = 0; i < n_unique; i++)
        put_str(&c, "module", mods[i]);
    const image_recipe *r = in->recipe;
    put_u64(&c, r ? r->n : 0);
    for (size_t i = 0; r && i < r->n; i++) {
        put_str(&c, "recipe-name", r->files[i].name);
        put_u64(&c, r->files[i].mode);
        put_field(&c, "recipe-data", r->files[i].data, r->files[i].len);
    }
    put_field(&c, "agent-sha256", in->agent_sha256, SHA256_DIGEST_LEN);
    put_u64(&c, in->offline ? 1 : 0);
    const image_wheelhouse *w = in->wheels;
    put_u64(&c, w ? w->n : 0);
    for (size_t i = 0; w && i < w->n; i++) {
        put_str(&c, "wheel-name", w->wheels[i].name);
        put_u64(&c, w->wheels[i].size);
        put_u64(&c, (uint64_t)w->wheels[i].mtime_ns);
    }
    uint8_t digest[SHA256_DIGEST_LEN];
    char hex[2 * SHA256_DIGEST_LEN + 1];
    sha256_final(&c, digest);
    sha256_hex(hex, digest);
    snprintf(out, 128, "%s:%.*s", SE_IMAGE_REPO, IMAGE_TAG_HEX, hex);
    return 0;
}
