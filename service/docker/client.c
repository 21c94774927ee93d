/* The client object: where the engine is, and which API version we speak. */
#include <stdlib.h>
#include <string.h>

#include "docker/internal.h"
#include "docker/parse.h"
#include "util/log.h"

static int
host_parse(docker_client *c, const docker_opts *opts, se_err *err)
{
    const char *host = opts->host && *opts->host ? opts->host : DOCKER_DEFAULT_HOST;
    c->host = strdup(host);
    if (!c->host)
        return se_err_set(err, SE_INTERNAL, "out of memory");
    if (strncmp(host, "unix://", 7) == 0) {
        const char *path = host + 7;
        if (path[0] != '/' || strlen(path) >= 108)
            return se_err_set(err, SE_INVALID, "docker host %s: need an absolute socket path",
                              host);
        c->unix_path = strdup(path);
        c->base_url = strdup("http://docker");
    } else if (strncmp(host, "tcp://", 6) == 0) {
        const char *hp = host + 6;
        size_t n = strlen(hp);
        /* HOST:PORT only: nothing that could turn into a path, userinfo,
         * query or a second URL. */
        if (n == 0 || n > 255 || strcspn(hp, "/@?#\\ \t\r\n%") != n || !strchr(hp, ':'))
            return se_err_set(err, SE_INVALID, "docker host %s: want tcp://HOST:PORT", host);
        bool tls = opts->tls_ca || opts->tls_cert || opts->tls_key;
        if (asprintf(&c->base_url, "%s://%s", tls ? "https" : "http", hp) < 0)
            c->base_url = NULL;
    } else {
        return se_err_set(err, SE_INVALID, "docker host %s: want unix:///PATH or tcp://HOST:PORT",
                          host);
    }
    if (!c->base_url || (strncmp(host, "unix://", 7) == 0 && !c->unix_path))
        return se_err_set(err, SE_INTERNAL, "out of memory");
    return 0;
}

static char *
dup_opt(const char *s, bool *oom)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *oom = true;
    return d;
}

static int
client_negotiate(docker_client *c, se_err *err)
{
    docker_req req = {.method = "GET", .path = "/version", .unversioned = true, .cap = 1 << 20};
    docker_resp resp;
    int rc = docker_http(c, &req, &resp, err);
    if (rc < 0)
        goto out;
    if (resp.status != 200) {
        rc = docker_http_fail(&resp, err, "GET /version");
        goto out;
    }
    rc = docker_api_negotiate((const char *)resp.body.data, resp.body.len, c->api_version,
                              sizeof(c->api_version), err);
out:
    se_buf_free(&resp.body);
    return rc;
}

int
docker_client_new(docker_client **out, const docker_opts *opts, se_err *err)
{
    docker_opts none = {0};
    bool oom = false;
    int rc;
    if (!opts)
        opts = &none;
    docker_client *c = calloc(1, sizeof(*c));
    if (!c)
        return se_err_set(err, SE_INTERNAL, "out of memory");
    c->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : DOCKER_DEFAULT_TIMEOUT_MS;
    c->tls_ca = dup_opt(opts->tls_ca, &oom);
    c->tls_cert = dup_opt(opts->tls_cert, &oom);
    c->tls_key = dup_opt(opts->tls_key, &oom);
    if (oom) {
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto fail;
    }
    rc = host_parse(c, opts, err);
    if (rc < 0)
        goto fail;
    rc = client_negotiate(c, err);
    if (rc < 0)
        goto fail;
    log_debug("docker engine at %s: API %s", c->host, c->api_version);
    *out = c;
    return 0;
fail:
    docker_client_free(c);
    return rc;
}

void
docker_client_free(docker_client *c)
{
    if (!c)
        return;
    free(c->host);
    free(c->unix_path);
    free(c->base_url);
    free(c->tls_ca);
    free(c->tls_cert);
    free(c->tls_key);
    free(c);
}

const char *
docker_client_api_version(const docker_client *c)
{
    return c->api_version;
}

int
docker_ping(docker_client *c, se_err *err)
{
    /* An engine that accepts but does not answer must not hold health's
     * verdict for the whole --docker-timeout-ms. */
    docker_req req = {.method = "GET", .path = "/_ping", .cap = 4096, .max_ms = DOCKER_PING_MS};
    return docker_json_call(c, &req, NULL, err, "ping docker engine");
}

int
docker_info(docker_client *c, cJSON **out, se_err *err)
{
    *out = NULL;
    docker_req req = {.method = "GET", .path = "/info"};
    int rc = docker_json_call(c, &req, out, err, "engine info");
    if (rc == 0 && !cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        rc = se_err_set(err, SE_PROTOCOL, "engine info: the answer is not an object");
    }
    return rc;
}
