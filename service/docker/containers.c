/* Containers: create, start, inspect, stop, kill, remove, list, the memory
 * limit of a running one (update), and files in and out of them (archive). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker/internal.h"
#include "docker/parse.h"

int
docker_container_create(docker_client *c, const char *name, const cJSON *body, char **out_id,
                        se_err *err)
{
    char *json = NULL;
    char *esc = NULL;
    char *query = NULL;
    docker_resp resp = {0};
    int rc;

    *out_id = NULL;
    if (!body) {
        rc = se_err_set(err, SE_INVALID, "container create: no body");
        goto out;
    }
    json = cJSON_PrintUnformatted(body);
    if (!json) {
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto out;
    }
    if (name) {
        esc = docker_escape(name);
        if (!esc || asprintf(&query, "name=%s", esc) < 0) {
            query = NULL;
            rc = se_err_set(err, SE_INTERNAL, "out of memory");
            goto out;
        }
    }
    docker_req req = {.method = "POST",
                      .path = "/containers/create",
                      .query = query,
                      .body = json,
                      .body_len = strlen(json),
                      .cap = 1 << 20};
    rc = docker_http(c, &req, &resp, err);
    if (rc < 0) {
        se_err_prefix(err, "container create");
        goto out;
    }
    if (resp.status != 201 && resp.status != 200) {
        rc = docker_http_fail(&resp, err, "container create");
        goto out;
    }
    rc = docker_create_id_parse((const char *)resp.body.data, resp.body.len, out_id, err);
out:
    se_buf_free(&resp.body);
    free(query);
    free(esc);
    free(json);
    return rc;
}

/* POST with no body to prefix+id+suffix; 304 (already in that state) is
 * success when ok304. */
static int
container_post(docker_client *c, const char *id, const char *suffix, const char *query,
               long extra_ms, bool ok304, const char *what, se_err *err)
{
    char *path = NULL;
    docker_resp resp = {0};
    int rc = docker_path(&path, "/containers/", id, suffix, err);
    if (rc < 0)
        return rc;
    docker_req req = {.method = "POST",
                      .path = path,
                      .query = query,
                      .cap = 1 << 20,
                      .extra_timeout_ms = extra_ms};
    rc = docker_http(c, &req, &resp, err);
    if (rc < 0) {
        se_err_prefix(err, "%s %s", what, id);
        goto out;
    }
    if ((resp.status < 200 || resp.status >= 300) && !(ok304 && resp.status == 304))
        rc = docker_http_fail(&resp, err, what);
out:
    se_buf_free(&resp.body);
    free(path);
    return rc;
}

int
docker_container_start(docker_client *c, const char *id, se_err *err)
{
    return container_post(c, id, "/start", NULL, 0, true, "container start", err);
}

int
docker_container_inspect(docker_client *c, const char *id, cJSON **out, se_err *err)
{
    char *path = NULL;
    *out = NULL;
    int rc = docker_path(&path, "/containers/", id, "/json", err);
    if (rc < 0)
        return rc;
    docker_req req = {.method = "GET", .path = path};
    rc = docker_json_call(c, &req, out, err, "container inspect");
    free(path);
    return rc;
}

int
docker_container_stop(docker_client *c, const char *id, int timeout_s, se_err *err)
{
    char query[32];
    if (timeout_s < 0)
        timeout_s = 0;
    if (timeout_s > 3600)
        timeout_s = 3600;
    snprintf(query, sizeof(query), "t=%d", timeout_s);
    return container_post(c, id, "/stop", query, (long)timeout_s * 1000, true, "container stop",
                          err);
}

int
docker_container_kill(docker_client *c, const char *id, const char *signal, se_err *err)
{
    char *query = NULL;
    int rc;
    if (signal) {
        char *esc = docker_escape(signal);
        if (!esc || asprintf(&query, "signal=%s", esc) < 0) {
            free(esc);
            return se_err_set(err, SE_INTERNAL, "out of memory");
        }
        free(esc);
    }
    rc = container_post(c, id, "/kill", query, 0, false, "container kill", err);
    free(query);
    return rc;
}

int
docker_container_remove(docker_client *c, const char *id, se_err *err)
{
    char *path = NULL;
    int rc = docker_path(&path, "/containers/", id, "", err);
    if (rc < 0)
        return rc;
    docker_req req = {.method = "DELETE", .path = path, .query = "force=1&v=1", .cap = 1 << 20};
    rc = docker_json_call(c, &req, NULL, err, "container remove");
    free(path);
    return rc;
}

int
docker_container_list(docker_client *c, const char *const *label_filters, bool all, cJSON **out,
                      se_err *err)
{
    char *filters = NULL;
    char *query = NULL;
    *out = NULL;
    int rc = docker_filters_query(label_filters, false, &filters, err);
    if (rc < 0)
        return rc;
    if (asprintf(&query, "all=%d%s%s", all ? 1 : 0, *filters ? "&" : "", filters) < 0) {
        free(filters);
        return se_err_set(err, SE_INTERNAL, "out of memory");
    }
    docker_req req = {.method = "GET", .path = "/containers/json", .query = query};
    rc = docker_json_call(c, &req, out, err, "container list");
    if (rc == 0 && !cJSON_IsArray(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        rc = se_err_set(err, SE_PROTOCOL, "container list: the answer is not an array");
    }
    free(query);
    free(filters);
    return rc;
}

/* Tar overhead around one file: headers, pax records, padding, trailer. */
#define ARCHIVE_SLACK (256u << 10)

int
docker_archive_get_file(docker_client *c, const char *id, const char *path, size_t cap,
                        uint8_t **out, size_t *out_len, se_err *err)
{
    char *upath = NULL;
    char *query = NULL;
    char *esc = NULL;
    docker_resp resp = {0};
    int rc;

    *out = NULL;
    *out_len = 0;
    if (!path || path[0] != '/') {
        rc = se_err_set(err, SE_INVALID, "archive get: need an absolute path");
        goto out;
    }
    rc = docker_path(&upath, "/containers/", id, "/archive", err);
    if (rc < 0)
        goto out;
    esc = docker_escape(path);
    if (!esc || asprintf(&query, "path=%s", esc) < 0) {
        query = NULL;
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto out;
    }
    size_t body_cap = cap > SIZE_MAX - ARCHIVE_SLACK ? SIZE_MAX : cap + ARCHIVE_SLACK;
    docker_req req = {
        .method = "GET", .path = upath, .query = query, .cap = body_cap, .extra_timeout_ms = 0};
    rc = docker_http(c, &req, &resp, err);
    if (rc < 0) {
        se_err_prefix(err, "archive get %s", path);
        goto out;
    }
    if (resp.status != 200) {
        rc = docker_http_fail(&resp, err, "archive get");
        goto out;
    }
    rc = docker_tar_extract_file(resp.body.data, resp.body.len, cap, out, out_len, err);
    if (rc < 0)
        se_err_prefix(err, "archive get %s", path);
out:
    se_buf_free(&resp.body);
    free(esc);
    free(query);
    free(upath);
    return rc;
}

int
docker_archive_put(docker_client *c, const char *id, const char *path, const void *tar,
                   size_t tar_len, se_err *err)
{
    char *upath = NULL;
    char *query = NULL;
    char *esc = NULL;
    int rc;
    if (!path || path[0] != '/')
        return se_err_set(err, SE_INVALID, "archive put: need an absolute path");
    rc = docker_path(&upath, "/containers/", id, "/archive", err);
    if (rc < 0)
        return rc;
    esc = docker_escape(path);
    if (!esc || asprintf(&query, "path=%s", esc) < 0) {
        query = NULL;
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto out;
    }
    docker_req req = {.method = "PUT",
                      .path = upath,
                      .query = query,
                      .body = tar,
                      .body_len = tar_len,
                      .content_type = "application/x-tar",
                      .cap = 1 << 20,
                      .extra_timeout_ms = 60000};
    rc = docker_json_call(c, &req, NULL, err, "archive put");
out:
    free(esc);
    free(query);
    free(upath);
    return rc;
}

/* cJSON numbers are doubles: past 2^53 the engine would get another value. */
#define UPDATE_MEMORY_MAX (1ull << 53)

int
docker_container_update_memory(docker_client *c, const char *id, uint64_t bytes, se_err *err)
{
    return docker_container_update_limits(c, id, bytes, 0, err);
}

int
docker_container_update_limits(docker_client *c, const char *id, uint64_t bytes, uint32_t pids,
                               se_err *err)
{
    char *path = NULL;
    char *json = NULL;
    docker_resp resp = {0};
    cJSON *b = NULL;
    int rc;

    rc = docker_path(&path, "/containers/", id, "/update", err);
    if (rc < 0)
        return rc;
    if (bytes == 0 || bytes > UPDATE_MEMORY_MAX) {
        rc = se_err_set(err, SE_INVALID, "container update %.12s: memory %llu out of range", id,
                        (unsigned long long)bytes);
        goto out;
    }
    b = cJSON_CreateObject();
    if (!b || !cJSON_AddNumberToObject(b, "Memory", (double)bytes) ||
        !cJSON_AddNumberToObject(b, "MemorySwap", (double)bytes) ||
        (pids && !cJSON_AddNumberToObject(b, "PidsLimit", (double)pids)) ||
        !(json = cJSON_PrintUnformatted(b))) {
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto out;
    }
    docker_req req = {
        .method = "POST", .path = path, .body = json, .body_len = strlen(json), .cap = 1 << 20};
    rc = docker_http(c, &req, &resp, err);
    if (rc < 0) {
        se_err_prefix(err, "container update %.12s", id);
        goto out;
    }
    if (resp.status < 200 || resp.status >= 300) {
        char msg[512];
        docker_engine_message((const char *)resp.body.data, resp.body.len, msg, sizeof(msg));
        rc = se_err_set(err, docker_update_fail_code(resp.status, msg),
                        "container update %.12s: memory %llu: engine answered %ld: %s", id,
                        (unsigned long long)bytes, resp.status, msg);
    }
out:
    se_buf_free(&resp.body);
    cJSON_Delete(b);
    free(json);
    free(path);
    return rc;
}
