/* Images: inspect, list, remove. (Build is in build.c.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker/internal.h"

int
docker_image_inspect(docker_client *c, const char *ref, cJSON **out, se_err *err)
{
    char *path = NULL;
    *out = NULL;
    int rc = docker_path(&path, "/images/", ref, "/json", err);
    if (rc < 0)
        return rc;
    docker_req req = {.method = "GET", .path = path};
    rc = docker_json_call(c, &req, out, err, "image inspect");
    if (rc == 0 && !cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        rc = se_err_set(err, SE_PROTOCOL, "image inspect: the answer is not an object");
    }
    free(path);
    return rc;
}

int
docker_image_list(docker_client *c, const char *const *label_filters, bool dangling_only,
                  cJSON **out, se_err *err)
{
    char *filters = NULL;
    *out = NULL;
    int rc = docker_filters_query(label_filters, dangling_only, &filters, err);
    if (rc < 0)
        return rc;
    docker_req req = {.method = "GET", .path = "/images/json", .query = filters};
    rc = docker_json_call(c, &req, out, err, "image list");
    if (rc == 0 && !cJSON_IsArray(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        rc = se_err_set(err, SE_PROTOCOL, "image list: the answer is not an array");
    }
    free(filters);
    return rc;
}

int
docker_image_remove(docker_client *c, const char *ref, bool force, se_err *err)
{
    char *path = NULL;
    int rc = docker_path(&path, "/images/", ref, "", err);
    if (rc < 0)
        return rc;
    docker_req req = {
        .method = "DELETE", .path = path, .query = force ? "force=1" : NULL, .cap = 1 << 20};
    rc = docker_json_call(c, &req, NULL, err, "image remove");
    free(path);
    return rc;
}
