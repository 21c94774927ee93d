/* Image build: POST /build with a tar context; the progress stream (JSON
 * objects, one per line) is parsed as it arrives by docker_build_log. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker/internal.h"
#include "docker/parse.h"

/* "&key=" + escaped compact JSON of obj, appended to *q. obj must be an object
 * of strings: the engine would otherwise reject it with a less clear error. */
static int
query_add_json(char **q, const char *key, const cJSON *obj, se_err *err)
{
    if (!obj)
        return 0;
    if (!cJSON_IsObject(obj))
        return se_err_set(err, SE_INVALID, "image build: %s must be an object", key);
    for (const cJSON *it = obj->child; it; it = it->next)
        if (!cJSON_IsString(it) || !it->string || !*it->string)
            return se_err_set(err, SE_INVALID, "image build: %s values must be strings", key);
    char *txt = cJSON_PrintUnformatted(obj);
    char *esc = txt ? docker_escape(txt) : NULL;
    char *nq = NULL;
    int rc = 0;
    if (!esc || asprintf(&nq, "%s&%s=%s", *q, key, esc) < 0) {
        nq = NULL;
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
    } else {
        free(*q);
        *q = nq;
    }
    free(esc);
    free(txt);
    return rc;
}

static int
build_sink(const char *data, size_t len, void *ud, se_err *err)
{
    (void)err;
    return docker_build_log_feed(ud, data, len);
}

int
docker_image_build(docker_client *c, const void *context_tar, size_t context_len, const char *tag,
                   const cJSON *labels, const cJSON *buildargs, docker_progress_fn progress,
                   void *ud, const se_cancel *cancel, se_err *err)
{
    char *query = NULL;
    char *esc = NULL;
    docker_resp resp = {0};
    docker_build_log *log = NULL;
    int rc;

    if (!tag || !*tag || strlen(tag) > 256 || !context_tar || context_len == 0)
        return se_err_set(err, SE_INVALID, "image build: need a tag and a context");
    log = malloc(sizeof(*log));
    if (!log)
        return se_err_set(err, SE_INTERNAL, "out of memory");
    docker_build_log_init(log, progress, ud);
    esc = docker_escape(tag);
    if (!esc || asprintf(&query, "t=%s&rm=1&forcerm=1&pull=0", esc) < 0) {
        query = NULL;
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto out;
    }
    rc = query_add_json(&query, "labels", labels, err);
    if (rc == 0)
        rc = query_add_json(&query, "buildargs", buildargs, err);
    if (rc < 0)
        goto out;
    docker_req req = {.method = "POST",
                      .path = "/build",
                      .query = query,
                      .body = context_tar,
                      .body_len = context_len,
                      .content_type = "application/x-tar",
                      .cap = 1 << 20, /* error bodies only; the stream goes to the sink */
                      .extra_timeout_ms = -1,
                      .cancel = cancel,
                      .sink = build_sink,
                      .sink_ud = log};
    rc = docker_http(c, &req, &resp, err);
    if (rc < 0) {
        se_err_prefix(err, "image build %s", tag);
        goto out;
    }
    if (resp.status != 200) {
        rc = docker_http_fail(&resp, err, "image build");
        /* A bad Dockerfile or context is the recipe's fault, not the client's. */
        if (resp.status == 400 || resp.status == 500) {
            if (err)
                err->code = SE_PRECONDITION;
            rc = -SE_PRECONDITION;
        }
        goto out;
    }
    rc = docker_build_log_finish(log, err);
out:
    docker_build_log_free(log);
    free(log);
    free(esc);
    free(query);
    se_buf_free(&resp.body);
    return rc;
}
