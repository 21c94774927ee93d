/* The unix socket, accepted by us: who is at the other end.
 *
 * gRPC core 1.51 does not say who a unix socket peer is: grpc_call_get_peer
 * answers just "unix:" (measured here), and the auth context of local
 * credentials (grpc_local_server_credentials_create(UDS)) holds only
 * transport_security_type "local" (its source: local_auth_context_create),
 * no uid; the endpoint's fd is not reachable from a call. So the
 * daemon listens on the socket itself, reads each connection's SO_PEERCRED
 * at accept (the kernel's word: uid, gid and pid at connect time) and hands
 * the connected fd to gRPC with grpc_server_add_channel_from_fd. gRPC then
 * names that connection's calls "fd:N" (grpc_call_get_peer), which maps back
 * to what we read at accept. The mapping cannot go stale: a call holds its
 * transport, and the transport holds the fd open, so fd N is not reused
 * while any call on it lives. grpc_server_add_channel_from_fd takes only
 * insecure credentials: a unix socket with TLS stays gRPC's own listener
 * (and its callers have no peer identity). */
#include "rpc/peer.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>

#include "util/cleanup.h"
#include "util/log.h"

/* fds at or above this are refused (the table is indexed by fd). */
#define PEER_FD_MAX (1 << 20)
#define PEER_BACKLOG 128

struct rpc_peers {
    int lfd;
    int stop_pipe[2];
    char *path;
    dev_t dev;
    ino_t ino;
    grpc_server *server;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    rpc_peer *table; /* indexed by fd; uid == (uid_t)-1: none */
    size_t cap;
};

int
rpc_socket_group(gid_t *out, const char *group, se_err *err)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(group, &end, 10);
    if (*group && !*end && !errno && v < (unsigned long)(gid_t)-1) {
        *out = (gid_t)v;
        return 0;
    }
    struct group gr, *res = NULL;
    char buf[16384];
    int e = getgrnam_r(group, &gr, buf, sizeof(buf), &res);
    if (e || !res)
        return se_err_set(err, SE_INVALID, "--socket-group: no group '%.64s'", group);
    *out = gr.gr_gid;
    return 0;
}

int
rpc_socket_apply(const char *path, unsigned mode, bool set_gid, gid_t gid, se_err *err)
{
    if (set_gid && chown(path, (uid_t)-1, gid) < 0)
        return se_err_errno(err, SE_UNAVAILABLE, "give the socket %s to group %u", path,
                            (unsigned)gid);
    if (chmod(path, (mode_t)mode) < 0)
        return se_err_errno(err, SE_UNAVAILABLE, "chmod %o %s", mode, path);
    return 0;
}

int
rpc_peers_listen(rpc_peers **out, const char *path, unsigned mode, bool set_gid, gid_t gid,
                 se_err *err)
{
    *out = NULL;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return se_err_set(err, SE_INVALID, "unix socket path too long");
    memcpy(sa.sun_path, path, strlen(path) + 1);
    rpc_peers *p = calloc(1, sizeof(*p));
    if (!p || !(p->path = strdup(path))) {
        free(p);
        return se_err_set(err, SE_INTERNAL, "out of memory");
    }
    p->lfd = -1;
    p->stop_pipe[0] = p->stop_pipe[1] = -1;
    pthread_mutex_init(&p->mu, NULL);
    int rc = 0;
    p->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (p->lfd < 0) {
        rc = se_err_errno(err, SE_INTERNAL, "socket");
        goto fail;
    }
    /* Nobody but us may connect before the rights are set: bind under a
     * umask that leaves the socket 0600, then widen it. */
    mode_t old = umask(0177);
    int b = bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa));
    int be = errno;
    umask(old);
    if (b < 0) {
        errno = be;
        rc = se_err_errno(err, SE_UNAVAILABLE, "bind %s", path);
        goto fail;
    }
    struct stat st;
    if (stat(path, &st) == 0) {
        p->dev = st.st_dev;
        p->ino = st.st_ino;
    }
    rc = rpc_socket_apply(path, mode, set_gid, gid, err);
    if (rc < 0)
        goto fail_unlink;
    if (listen(p->lfd, PEER_BACKLOG) < 0) {
        rc = se_err_errno(err, SE_UNAVAILABLE, "listen %s", path);
        goto fail_unlink;
    }
    if (pipe2(p->stop_pipe, O_CLOEXEC) < 0) {
        rc = se_err_errno(err, SE_INTERNAL, "pipe");
        goto fail_unlink;
    }
    *out = p;
    return 0;
fail_unlink:
    unlink(path);
fail:
    rpc_peers_free(p);
    return rc;
}

static void
record(rpc_peers *p, int fd, const struct ucred *cr)
{
    rpc_peer pe = {.uid = cr->uid, .gid = cr->gid, .pid = cr->pid};
    struct passwd pw, *res = NULL;
    char buf[16384];
    if (getpwuid_r(cr->uid, &pw, buf, sizeof(buf), &res) == 0 && res &&
        strlen(pw.pw_name) < sizeof(pe.user))
        snprintf(pe.user, sizeof(pe.user), "%s", pw.pw_name);
    pthread_mutex_lock(&p->mu);
    if ((size_t)fd >= p->cap) {
        size_t nc = p->cap ? p->cap : 256;
        while (nc <= (size_t)fd)
            nc *= 2;
        rpc_peer *nt = realloc(p->table, nc * sizeof(*nt));
        if (nt) {
            for (size_t i = p->cap; i < nc; i++)
                nt[i].uid = (uid_t)-1;
            p->table = nt;
            p->cap = nc;
        }
    }
    if ((size_t)fd < p->cap)
        p->table[fd] = pe;
    pthread_mutex_unlock(&p->mu);
}

static void *
accept_main(void *arg)
{
    rpc_peers *p = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    grpc_server_credentials *insecure = grpc_insecure_server_credentials_create();
    for (;;) {
        struct pollfd pf[2] = {{.fd = p->lfd, .events = POLLIN},
                               {.fd = p->stop_pipe[0], .events = POLLIN}};
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_error("unix socket: poll: %s", strerror(errno));
            break;
        }
        if (pf[1].revents)
            break;
        if (!(pf[0].revents & POLLIN))
            continue;
        int fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED)
                continue;
            /* Out of fds: wait a little rather than spin. */
            log_warn("unix socket: accept: %s", strerror(errno));
            poll(NULL, 0, 100);
            continue;
        }
        struct ucred cr;
        socklen_t cl = sizeof(cr);
        if (fd >= PEER_FD_MAX || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0 ||
            cl != sizeof(cr)) {
            log_warn("unix socket: connection without peer credentials refused");
            close(fd);
            continue;
        }
        record(p, fd, &cr);
        log_debug("unix socket: connection fd %d from uid %u pid %d", fd, (unsigned)cr.uid,
                  (int)cr.pid);
        /* gRPC owns fd from here on (and closes it). */
        grpc_server_add_channel_from_fd(p->server, fd, insecure);
    }
    grpc_server_credentials_release(insecure);
    return NULL;
}

int
rpc_peers_start(rpc_peers *p, grpc_server *server, se_err *err)
{
    p->server = server;
    int e = pthread_create(&p->thread, NULL, accept_main, p);
    if (e) {
        errno = e;
        return se_err_errno(err, SE_INTERNAL, "start the unix socket's accept thread");
    }
    p->started = true;
    return 0;
}

void
rpc_peers_stop(rpc_peers *p)
{
    if (!p)
        return;
    if (p->started) {
        char x = 1;
        if (write(p->stop_pipe[1], &x, 1) < 0)
            log_error("unix socket: cannot stop the accept thread: %s", strerror(errno));
        pthread_join(p->thread, NULL);
        p->started = false;
    }
    if (p->lfd >= 0) {
        close(p->lfd);
        p->lfd = -1;
        /* Remove the socket, unless another daemon replaced it since. */
        struct stat st;
        if (stat(p->path, &st) == 0 && st.st_dev == p->dev && st.st_ino == p->ino)
            unlink(p->path);
    }
}

void
rpc_peers_free(rpc_peers *p)
{
    if (!p)
        return;
    rpc_peers_stop(p);
    if (p->stop_pipe[0] >= 0)
        close(p->stop_pipe[0]);
    if (p->stop_pipe[1] >= 0)
        close(p->stop_pipe[1]);
    pthread_mutex_destroy(&p->mu);
    free(p->table);
    free(p->path);
    free(p);
}

int
rpc_peers_lookup(rpc_peers *p, const char *peer, rpc_peer *out)
{
    if (!p || strncmp(peer, "fd:", 3) != 0)
        return -1;
    char *end;
    errno = 0;
    long fd = strtol(peer + 3, &end, 10);
    if (errno || *end || fd < 0 || fd >= PEER_FD_MAX)
        return -1;
    int rc = -1;
    pthread_mutex_lock(&p->mu);
    if ((size_t)fd < p->cap && p->table[fd].uid != (uid_t)-1) {
        *out = p->table[fd];
        rc = 0;
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}
