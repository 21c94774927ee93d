/* STUB: replaced by the module owner. */
#include "image/image.h"

int
image_cache_new(image_cache **out, docker_client *dc, const image_opts *opts, se_err *err)
{
    (void)out;
    (void)dc;
    (void)opts;
    (void)err;
    return se_err_set(err, SE_INTERNAL, "image_cache_new: not implemented");
}

void
image_cache_free(image_cache *ic)
{
    (void)ic;
}

int
image_validate_version(const char *version, se_err *err)
{
    (void)version;
    (void)err;
    return se_err_set(err, SE_INTERNAL, "image_validate_version: not implemented");
}

int
image_validate_module(const char *module, se_err *err)
{
    (void)module;
    (void)err;
    return se_err_set(err, SE_INTERNAL, "image_validate_module: not implemented");
}

int
image_ensure(image_cache *ic, const char *version, const char *const *modules, size_t n_modules,
             image_ref *out, docker_progress_fn progress, void *ud, const se_cancel *cancel,
             se_err *err)
{
    (void)ic;
    (void)version;
    (void)modules;
    (void)n_modules;
    (void)out;
    (void)progress;
    (void)ud;
    (void)cancel;
    (void)err;
    return se_err_set(err, SE_INTERNAL, "image_ensure: not implemented");
}

int
image_prune_dangling(image_cache *ic, se_err *err)
{
    (void)ic;
    (void)err;
    return se_err_set(err, SE_INTERNAL, "image_prune_dangling: not implemented");
}
