/* libcurl plumbing: one easy handle per request (so any number of threads can
 * call at once), the unix socket or tcp/TLS transport, the response cap,
 * cancellation from the progress callback, and the HTTP status mapping. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker/internal.h"
#include "docker/parse.h"
#include "util/log.h"
#include "util/metrics.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void
curl_init_once(void)
{
    /* Not thread-safe in old libcurls, hence once. */
    curl_init_rc = curl_global_init(CURL_GLOBAL_ALL);
}

CURL *
docker_curl_new(docker_client *c)
{
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK)
        return NULL;
    CURL *h = curl_easy_init();
    if (!h)
        return NULL;
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->timeout_ms);
    if (c->unix_path)
        curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->unix_path);
    if (c->tls_ca)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->tls_ca);
    if (c->tls_cert)
        curl_easy_setopt(h, CURLOPT_SSLCERT, c->tls_cert);
    if (c->tls_key)
        curl_easy_setopt(h, CURLOPT_SSLKEY, c->tls_key);
    return h;
}

char *
docker_url(docker_client *c, const char *path, const char *query, bool unversioned)
{
    char *url = NULL;
    int n;
    if (unversioned)
        n = asprintf(&url, "%s%s%s%s", c->base_url, path, query && *query ? "?" : "",
                     query ? query : "");
    else
        n = asprintf(&url, "%s/v%s%s%s%s", c->base_url, c->api_version, path,
                     query && *query ? "?" : "", query ? query : "");
    return n < 0 ? NULL : url;
}

char *
docker_escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    if (!e)
        return NULL;
    char *r = strdup(e);
    curl_free(e);
    return r;
}

typedef struct xfer {
    CURL *h;
    const docker_req *req;
    docker_resp *resp;
    bool overflow;
    bool sink_failed;
    se_err sink_err;
    bool cancelled;
    se_err cancel_err;
} xfer;

static size_t
on_write(char *data, size_t size, size_t nmemb, void *ud)
{
    xfer *x = ud;
    size_t n = size * nmemb;
    long status = 0;
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
    if (x->req->sink && status >= 200 && status < 300) {
        if (x->req->sink(data, n, x->req->sink_ud, &x->sink_err) < 0) {
            x->sink_failed = true;
            return 0;
        }
        return n;
    }
    if (se_buf_append(&x->resp->body, data, n) < 0) {
        x->overflow = true;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    return n;
}

static int
on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    xfer *x = ud;
    if (se_cancel_check(x->req->cancel, &x->cancel_err) < 0) {
        x->cancelled = true;
        return 1;
    }
    return 0;
}

int
docker_http(docker_client *c, const docker_req *req, docker_resp *resp, se_err *err)
{
    CURL *h = NULL;
    struct curl_slist *hdrs = NULL;
    char *url = NULL;
    char ctype[128];
    int rc = 0;
    xfer x = {.req = req, .resp = resp};

    resp->status = 0;
    se_buf_init(&resp->body, req->cap ? req->cap : DOCKER_JSON_CAP);
    rc = se_cancel_check(req->cancel, err);
    if (rc < 0)
        return rc;

    h = docker_curl_new(c);
    url = docker_url(c, req->path, req->query, req->unversioned);
    if (!h || !url) {
        rc = se_err_set(err, SE_INTERNAL, "docker: cannot set up a request (out of memory)");
        goto out;
    }
    x.h = h;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
    if (req->cancel) {
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, &x);
    }
    long total = req->extra_timeout_ms >= 0 ? c->timeout_ms + req->extra_timeout_ms : 0;
    if (req->max_ms > 0 && (total == 0 || req->max_ms < total))
        total = req->max_ms;
    if (total > 0) {
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, total);
        if (total < c->timeout_ms)
            curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, total);
    }

    /* No 100-continue round trip for big bodies: the engine does not need it. */
    hdrs = curl_slist_append(hdrs, "Expect:");
    if (strcmp(req->method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else {
        /* POSTFIELDS with a custom method sends the body for PUT and DELETE too. */
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? req->body : "");
        if (strcmp(req->method, "POST") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
        if (req->body) {
            snprintf(ctype, sizeof(ctype), "Content-Type: %s",
                     req->content_type ? req->content_type : "application/json");
            hdrs = curl_slist_append(hdrs, ctype);
        } else {
            hdrs = curl_slist_append(hdrs, "Content-Type:");
        }
    }
    if (!hdrs) {
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto out;
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);

    CURLcode cr = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    if (cr == CURLE_OK)
        goto out;
    if (x.cancelled) {
        rc = se_err_set(err, x.cancel_err.code, "%s", x.cancel_err.msg);
    } else if (x.sink_failed) {
        rc = se_err_set(err, x.sink_err.code, "%s", x.sink_err.msg);
    } else if (x.overflow) {
        rc = se_err_set(err, SE_EXHAUSTED, "%s %s: the engine's answer is larger than %zu bytes",
                        req->method, req->path, resp->body.cap);
    } else if (cr == CURLE_COULDNT_CONNECT || cr == CURLE_COULDNT_RESOLVE_HOST) {
        metrics_engine_error();
        rc = se_err_set(err, SE_UNAVAILABLE, "docker engine at %s does not answer: %s", c->host,
                        curl_easy_strerror(cr));
    } else if (cr == CURLE_OPERATION_TIMEDOUT) {
        metrics_engine_error();
        rc = se_err_set(err, SE_UNAVAILABLE, "docker engine at %s: %s %s timed out", c->host,
                        req->method, req->path);
    } else {
        metrics_engine_error();
        rc = se_err_set(err, SE_UNAVAILABLE, "docker engine at %s: %s %s: %s", c->host, req->method,
                        req->path, curl_easy_strerror(cr));
    }
out:
    curl_slist_free_all(hdrs);
    free(url);
    if (h)
        curl_easy_cleanup(h);
    return rc;
}

int
docker_http_fail(const docker_resp *resp, se_err *err, const char *what)
{
    char msg[512];
    docker_engine_message((const char *)resp->body.data, resp->body.len, msg, sizeof(msg));
    return se_err_set(err, docker_status_code(resp->status), "%s: engine answered %ld: %s", what,
                      resp->status, msg);
}

int
docker_json_call(docker_client *c, const docker_req *req, cJSON **out, se_err *err,
                 const char *what)
{
    docker_resp resp;
    int rc = docker_http(c, req, &resp, err);
    if (rc < 0) {
        se_err_prefix(err, "%s", what);
        goto out;
    }
    if (resp.status < 200 || resp.status >= 300) {
        rc = docker_http_fail(&resp, err, what);
        goto out;
    }
    if (out) {
        *out = resp.body.len ? cJSON_ParseWithLength((const char *)resp.body.data, resp.body.len)
                             : NULL;
        if (!*out)
            rc = se_err_set(err, SE_PROTOCOL, "%s: the engine's answer is not JSON", what);
    }
out:
    se_buf_free(&resp.body);
    return rc;
}

int
docker_filters_query(const char *const *labels, bool dangling, char **out, se_err *err)
{
    *out = NULL;
    if ((!labels || !labels[0]) && !dangling) {
        *out = strdup("");
        return *out ? 0 : se_err_set(err, SE_INTERNAL, "out of memory");
    }
    int rc = 0;
    char *txt = NULL;
    char *esc = NULL;
    cJSON *f = cJSON_CreateObject();
    if (!f)
        goto oom;
    if (labels && labels[0]) {
        cJSON *arr = cJSON_AddArrayToObject(f, "label");
        if (!arr)
            goto oom;
        for (size_t i = 0; labels[i]; i++) {
            cJSON *s = cJSON_CreateString(labels[i]);
            if (!s || !cJSON_AddItemToArray(arr, s)) {
                cJSON_Delete(s);
                goto oom;
            }
        }
    }
    if (dangling) {
        cJSON *arr = cJSON_AddArrayToObject(f, "dangling");
        cJSON *s = cJSON_CreateString("true");
        if (!arr || !s || !cJSON_AddItemToArray(arr, s)) {
            cJSON_Delete(s);
            goto oom;
        }
    }
    txt = cJSON_PrintUnformatted(f);
    if (!txt)
        goto oom;
    esc = docker_escape(txt);
    if (!esc)
        goto oom;
    if (asprintf(out, "filters=%s", esc) < 0) {
        *out = NULL;
        goto oom;
    }
    goto out;
oom:
    rc = se_err_set(err, SE_INTERNAL, "out of memory");
out:
    free(esc);
    free(txt);
    cJSON_Delete(f);
    return rc;
}

int
docker_path(char **out, const char *prefix, const char *id, const char *suffix, se_err *err)
{
    *out = NULL;
    if (!id || !*id || strlen(id) > 512)
        return se_err_set(err, SE_INVALID, "docker: empty or overlong name or id");
    /* Container and exec ids/names are [a-zA-Z0-9][a-zA-Z0-9_.-]*: anything
     * else (a '/', "..") could make the engine's router resolve another
     * resource. Image references keep their '/', ':' and '@' (escaped). */
    if (strcmp(prefix, "/images/") != 0 &&
        (strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") !=
             strlen(id) ||
         id[0] == '.' || id[0] == '-' || id[0] == '_'))
        return se_err_set(err, SE_INVALID, "docker: malformed container or exec id");
    char *esc = docker_escape(id);
    if (!esc)
        return se_err_set(err, SE_INTERNAL, "out of memory");
    int n = asprintf(out, "%s%s%s", prefix, esc, suffix);
    free(esc);
    if (n < 0) {
        *out = NULL;
        return se_err_set(err, SE_INTERNAL, "out of memory");
    }
    return 0;
}
