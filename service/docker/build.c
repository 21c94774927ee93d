/* Image build: POST /build with a tar context, progress parsed line by line. */
#include "docker/internal.h"
#include "docker/parse.h"

int
docker_image_build(docker_client *c, const void *context_tar, size_t context_len, const char *tag,
                   const cJSON *labels, const cJSON *buildargs, docker_progress_fn progress,
                   void *ud, const se_cancel *cancel, se_err *err)
{
    (void)c;
    (void)context_tar;
    (void)context_len;
    (void)tag;
    (void)labels;
    (void)buildargs;
    (void)progress;
    (void)ud;
    (void)cancel;
    return se_err_set(err, SE_INTERNAL, "docker_image_build: not implemented yet");
}
