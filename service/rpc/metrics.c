/* --metrics-listen: GET /metrics in Prometheus' text format, served by
 * libmicrohttpd on one internal thread. The values come from util/metrics
 * (atomics bumped by every layer); nothing here touches gRPC. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "rpc/rpc.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/metrics.h"

#define METRICS_BODY_MAX (1u << 20)
#define METRICS_CONNECTIONS 16
#define METRICS_TIMEOUT_S 10

struct rpc_metrics_server {
    struct MHD_Daemon *mhd;
    int fd;
};

static enum MHD_Result
reply(struct MHD_Connection *conn, unsigned status, const char *type, void *body, size_t len,
      enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    (void)cls;
    (void)version;
    (void)upload_data;
    (void)con_cls;
    static const char text[] = "text/plain; charset=utf-8";
    /* A request with a body is not ours: answer without reading it. */
    if (*upload_data_size != 0)
        *upload_data_size = 0;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, text, (void *)"GET /metrics only\n", 18,
                     MHD_RESPMEM_PERSISTENT);
    if (strcmp(url, "/metrics") != 0)
        return reply(conn, MHD_HTTP_NOT_FOUND, text, (void *)"not found: GET /metrics\n", 24,
                     MHD_RESPMEM_PERSISTENT);
    se_buf b;
    se_buf_init(&b, METRICS_BODY_MAX);
    if (metrics_render(&b, rpc_version()) < 0) {
        se_buf_free(&b);
        return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, text, (void *)"out of memory\n", 14,
                     MHD_RESPMEM_PERSISTENT);
    }
    size_t len = 0;
    uint8_t *body = se_buf_steal(&b, &len);
    return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len,
                 MHD_RESPMEM_MUST_FREE);
}

/* "HOST:PORT", "[V6]:PORT": a bound, listening socket. */
static int
listen_on(const char *addr, int *out, se_err *err)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || !colon[1])
        return se_err_set(err, SE_INVALID, "--metrics-listen %s: not HOST:PORT", addr);
    size_t n = (size_t)(colon - addr);
    const char *h = addr;
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof(host))
        return se_err_set(err, SE_INVALID, "--metrics-listen %s: bad host", addr);
    memcpy(host, h, n);
    host[n] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int g = getaddrinfo(host, colon + 1, &hints, &res);
    if (g != 0)
        return se_err_set(err, SE_INVALID, "--metrics-listen %s: %s", addr, gai_strerror(g));
    int fd = -1, r = 0;
    fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
    int one = 1;
    if (fd < 0)
        r = se_err_errno(err, SE_UNAVAILABLE, "--metrics-listen %s: socket", addr);
    else if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
             bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 16) < 0)
        r = se_err_errno(err, SE_UNAVAILABLE, "--metrics-listen %s", addr);
    freeaddrinfo(res);
    if (r < 0) {
        if (fd >= 0)
            close(fd);
        return r;
    }
    *out = fd;
    return 0;
}

int
rpc_metrics_check(const char *addr, bool allow_remote, se_err *err)
{
    if (strncmp(addr, "unix:", 5) == 0 || !strrchr(addr, ':'))
        return se_err_set(err, SE_INVALID, "--metrics-listen %s: give HOST:PORT", addr);
    if (!rpc_listen_is_local(addr) && !allow_remote)
        return se_err_set(err, SE_INVALID,
                          "refusing to serve metrics on %s: it is not a loopback address; give "
                          "--metrics-allow-remote to allow it",
                          addr);
    return 0;
}

int
rpc_metrics_start(rpc_metrics_server **out, const char *addr, bool allow_remote, se_err *err)
{
    int c = rpc_metrics_check(addr, allow_remote, err);
    if (c < 0)
        return c;
    rpc_metrics_server *m = calloc(1, sizeof(*m));
    if (!m)
        return se_err_set(err, SE_INTERNAL, "out of memory");
    int r = listen_on(addr, &m->fd, err);
    if (r < 0) {
        free(m);
        return r;
    }
    m->mhd = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD, 0, NULL, NULL, on_request, NULL,
                              MHD_OPTION_LISTEN_SOCKET, m->fd, MHD_OPTION_CONNECTION_LIMIT,
                              (unsigned)METRICS_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
                              (unsigned)METRICS_TIMEOUT_S, MHD_OPTION_END);
    if (!m->mhd) {
        close(m->fd);
        free(m);
        return se_err_set(err, SE_INTERNAL, "--metrics-listen %s: libmicrohttpd did not start",
                          addr);
    }
    *out = m;
    return 0;
}

void
rpc_metrics_stop(rpc_metrics_server *m)
{
    if (!m)
        return;
    /* MHD closes the listening socket it was given. */
    MHD_stop_daemon(m->mhd);
    free(m);
}
