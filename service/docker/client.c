/* STUB: replaced by the module owner. */
#include "docker/docker.h"

int
docker_client_new(docker_client **out, const docker_opts *opts, se_err *err)
{
    (void)out;
    (void)opts;
    (void)err;
    return se_err_set(err, SE_INTERNAL, "docker_client_new: not implemented");
}

void
docker_client_free(docker_client *c)
{
    (void)c;
}

int
docker_ping(docker_client *c, se_err *err)
{
    (void)c;
    (void)err;
    return se_err_set(err, SE_INTERNAL, "docker_ping: not implemented");
}

int
docker_image_inspect(docker_client *c, const char *ref, cJSON **out, se_err *err)
{
    (void)c;
    (void)ref;
    (void)out;
    (void)err;
    return se_err_set(err, SE_INTERNAL, "docker_image_inspect: not implemented");
}

int
docker_image_build(docker_client *c, const void *context_tar, size_t context_len, const char *tag,
                   const cJSON *labels, docker_progress_fn progress, void *ud,
                   const se_cancel *cancel, se_err *err)
{
    (void)c;
    (void)context_tar;
    (void)context_len;
    (void)tag;
    (void)labels;
    (void)progress;
    (void)ud;
    (void)cancel;
    (void)err;
    return se_err_set(err, SE_INTERNAL, "docker_image_build: not implemented");
}

int
docker_image_list(docker_client *c, const char *const *label_filters, bool dangling_only,
                  cJSON **out, se_err *err)
{
    (void)c;
    (void)label_filters;
    (void)dangling_only;
    (void)out;
    (void)err;
    return se_err_set(err, SE_INTERNAL, "docker_image_list: not implemented");
}

int
docker_image_remove(docker_client *c, const char *ref, bool force, se_err *err)
{
    (void)c;
    (void)ref;
    (void)force;
    (void)err;
    return se_err_set(err, SE_INTERNAL, "docker_image_remove: not implemented");
}

int
docker_container_create(docker_client *c, const char *name, const cJSON *body, char **out_id,
                        se_err *err)
{
    (void)c;
    (void)name;
    (void)body;
    (void)out_id;
    (void)err;
    return se_err_set(err, SE_INTERNAL, "docker_container_create: not implemented");
}

int
docker_container_start(docker_client *c, const char *id, se_err *err)
{
    (void)c;
    (void)id;
    (void)err;
    return se_err_set(err, SE_INTERNAL, "docker_container_start: not implemented");
}

int
docker_container_inspect(docker_client *c, const char *id, cJSON **out, se_err *err)
{
    (void)c;
    (void)id;
    (void)out;
    (void)err;
    return se_err_set(err, SE_INTERNAL, "docker_container_inspect: not implemented");
}

int
docker_container_stop(docker_client *c, const char *id, int timeout_s, se_err *err)
{
    (void)c;
    (void)id;
    (void)timeout_s;
    (void)err;
    return se_err_set(err, SE_INTERNAL, "docker_container_stop: not implemented");
}

int
docker_container_kill(docker_client *c, const char *id, const char *signal, se_err *err)
{
    (void)c;
    (void)id;
    (void)signal;
    (void)err;
    return se_err_set(err, SE_INTERNAL, "docker_container_kill: not implemented");
}

int
docker_container_remove(docker_client *c, const char *id, se_err *err)
{
    (void)c;
    (void)id;
    (void)err;
    return se_err_set(err, SE_INTERNAL, "docker_container_remove: not implemented");
}

int
docker_container_list(docker_client *c, const char *const *label_filters, bool all, cJSON **out,
                      se_err *err)
{
    (void)c;
    (void)label_filters;
    (void)all;
    (void)out;
    (void)err;
    return se_err_set(err, SE_INTERNAL, "docker_container_list: not implemented");
}

int
docker_archive_get_file(docker_client *c, const char *id, const char *path, size_t cap,
                        uint8_t **out, size_t *out_len, se_err *err)
{
    (void)c;
    (void)id;
    (void)path;
    (void)cap;
    (void)out;
    (void)out_len;
    (void)err;
    return se_err_set(err, SE_INTERNAL, "docker_archive_get_file: not implemented");
}

int
docker_archive_put(docker_client *c, const char *id, const char *path, const void *tar,
                   size_t tar_len, se_err *err)
{
    (void)c;
    (void)id;
    (void)path;
    (void)tar;
    (void)tar_len;
    (void)err;
    return se_err_set(err, SE_INTERNAL, "docker_archive_put: not implemented");
}

int
docker_exec_run(docker_client *c, const char *container_id, const docker_exec_opts *opts,
                docker_exec_result *out, const se_cancel *cancel, se_err *err)
{
    (void)c;
    (void)container_id;
    (void)opts;
    (void)out;
    (void)cancel;
    (void)err;
    return se_err_set(err, SE_INTERNAL, "docker_exec_run: not implemented");
}

void
docker_exec_result_free(docker_exec_result *r)
{
    (void)r;
}
