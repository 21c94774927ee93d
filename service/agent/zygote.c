/* The worker's zygote (`--serve --zygote MODULE...`): a python3 that has
 * imported the sandbox's preload modules, in a bubblewrap jail of its own,
 * forked once per run (docker/sandbox/zygote.py does the per-run fences).
 *
 * What the agent does here, and why:
 *  - starts the zygote's jail with the same outer fences as a run's
 *    (agent_jail_build_zygote) and `--zygote-init` as its pid 1, which
 *    loads the zygote's seccomp filter (the run's minus clone into new
 *    namespaces, mount and setting RLIMIT_FSIZE) and execs python3 zygote.py;
 *  - hands it, once, the run's seccomp program: the sealed copy the agent
 *    exported at its start, the one every fresh jail's helper loads too;
 *    every run loads it on itself before its code;
 *  - prepares the next run's processes before the run: after a run's Done
 *    (never while a run runs: their set-up is not the run's CPU), it makes
 *    a SOCK_SEQPACKET socket pair and sends one end to the zygote with one
 *    constant byte; the zygote clones the run's pid 1 into new namespaces
 *    with it and closes its copy. That child does every step that does not
 *    depend on the run (id maps, mounts, its /proc, the fork of the run's
 *    process) and says "r" (ready) on it, or "E" and why it failed;
 *  - per run, waits for that ready (before the run's CPU baseline), then
 *    sends one constant byte and the run's fds straight to the prepared
 *    child over the agent's end (SCM_RIGHTS): a sealed memfd with the run's
 *    input (limits, script, argv, env, files), stdin's sealed memfd, the
 *    stdout and stderr pipes and the status pipe, and closes its end. The
 *    zygote never holds them and nothing ever comes back from a run through
 *    the zygote: a run's bytes never enter the zygote's memory;
 *  - a prepared child serves one run: its socket is closed after that run's
 *    fds went over it, or when it is dropped unused (a new zygote, a set-up
 *    failure), which ends it (it exits at the end of its stream, and it
 *    dies with its zygote's pid namespace);
 *  - replaces it every AGENT_ZYGOTE_MAX_RUNS runs or AGENT_ZYGOTE_MAX_AGE_S
 *    seconds (its children share its hash seed and address layout), and
 *    whenever it died or a run did not end clean;
 *  - fails closed: no zygote or no prepared child, no run (the run is
 *    refused with the reason); a run whose fences could not all be put up
 *    after its arrival reports FAILED before any user code, like the fresh
 *    jail's helper. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/agent.h"
#include "util/clock.h"

#define ZYGOTE_NOFILE 256
#define INPUT_MAGIC "SEZ1"

static struct {
    bool enabled;
    char **modules; /* borrowed from main's argv */
    size_t n_modules;
    pid_t bw;  /* bwrap's monitor: the agent's child */
    pid_t pid; /* the zygote (its jail's pid 1) as the agent sees it */
    int sock;  /* the agent's end; -1 = no zygote */
    uint64_t runs;
    int64_t started_us;
    char error[AGENT_ERROR_MAX]; /* why there is no zygote (runs are refused) */
} Z = {.bw = -1, .pid = -1, .sock = -1};

/* The next run's processes, prepared (at most one). */
static struct {
    int sock;   /* the agent's end of its socket pair; -1 = none */
    bool ready; /* it said "r" */
} P = {.sock = -1};

static void
prepared_drop(void)
{
    if (P.sock >= 0)
        close(P.sock);
    P.sock = -1;
    P.ready = false;
}

/* One constant byte and n fds (SCM_RIGHTS) on a SOCK_SEQPACKET socket. */
static int
send_fds(int sock, char byte, const int *fds, size_t n)
{
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * 5)];
    } c;
    if (n > 5)
        return -1;
    memset(&c, 0, sizeof(c));
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = c.buf,
                        .msg_controllen = CMSG_SPACE(sizeof(int) * n)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
    ssize_t r;
    do
        r = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    return r == 1 ? 0 : -1;
}

int
agent_zygote_configure(char **modules, size_t n)
{
    if (n > AGENT_ZYGOTE_MAX_MODULES)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (agent_module_name_validate(modules[i]) < 0)
            return -1;
    Z.enabled = true;
    Z.modules = modules;
    Z.n_modules = n;
    return 0;
}

bool
agent_zygote_enabled(void)
{
    return Z.enabled;
}

bool
agent_zygote_ready(void)
{
    return Z.sock >= 0;
}

const char *
agent_zygote_error(void)
{
    return Z.error;
}

/* The zygote's CPU so far (ns), from its schedstat: what it spends forking
 * is not the run's. 0 when unreadable. */
uint64_t
agent_zygote_cpu_ns(void)
{
    if (Z.pid <= 0)
        return 0;
    char path[64], buf[128];
    snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)Z.pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    return strtoull(buf, NULL, 10);
}

void
agent_zygote_stop(void)
{
    prepared_drop();
    agent_sweep_spare(-1, -1);
    if (Z.sock >= 0)
        close(Z.sock);
    Z.sock = -1;
    if (Z.pid > 0)
        kill(Z.pid, SIGKILL);
    if (Z.bw > 0) {
        kill(Z.bw, SIGKILL);
        int ws;
        while (waitpid(Z.bw, &ws, 0) < 0 && errno == EINTR) {
        }
    }
    Z.bw = Z.pid = -1;
}

/* The zygote is the only child of bwrap's monitor (`--as-pid-1`). */
static pid_t
find_child_of(pid_t parent)
{
    DIR *d = opendir("/proc");
    if (!d)
        return -1;
    pid_t found = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 1)
            continue;
        char path[64], buf[512];
        snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
            continue;
        buf[n] = 0;
        /* pid (comm) state ppid ...: comm may hold anything, so from the
         * last ')'. */
        char *rp = strrchr(buf, ')');
        int ppid;
        char state;
        if (rp && sscanf(rp + 1, " %c %d", &state, &ppid) == 2 && ppid == parent) {
            found = (pid_t)pid;
            break;
        }
    }
    closedir(d);
    return found;
}

static void set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
set_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(Z.error, sizeof(Z.error), fmt, ap);
    va_end(ap);
    for (char *p = Z.error; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
            *p = ' ';
}

int
agent_zygote_start(int bpf)
{
    agent_zygote_stop();
    Z.error[0] = 0;
    Z.runs = 0;
    int sv[2] = {-1, -1}, devnull = -1;
    char **argv = NULL;
    se_err err;
    se_err_clear(&err);
    char self[512];
    ssize_t sn = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (sn <= 0) {
        set_error("readlink /proc/self/exe: %s", strerror(errno));
        goto fail;
    }
    self[sn] = 0;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        set_error("socketpair: %s", strerror(errno));
        goto fail;
    }
    if (bpf < 0) {
        set_error("no seccomp program for the runs (see the agent's log)");
        goto fail;
    }
    devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0) {
        set_error("/dev/null: %s", strerror(errno));
        goto fail;
    }
    if (agent_jail_build_zygote(&argv, self, sv[1], bpf, Z.modules, Z.n_modules, &err) < 0) {
        set_error("%s", err.msg);
        goto fail;
    }
    pid_t parent = getpid();
    Z.bw = fork();
    if (Z.bw < 0) {
        set_error("fork: %s", strerror(errno));
        goto fail;
    }
    if (Z.bw == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (getppid() != parent)
            _exit(127);
        /* Never the agent's stdout (the frame stream) nor its stdin. */
        if (dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 || fcntl(sv[1], F_SETFD, 0) < 0 ||
            fcntl(bpf, F_SETFD, 0) < 0)
            _exit(127);
        for (int sig = 1; sig < NSIG; sig++)
            signal(sig, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        static char *const bwrap_env[] = {NULL};
        execve(AGENT_BWRAP, argv, bwrap_env);
        _exit(127);
    }
    close(sv[1]);
    sv[1] = -1;
    close(devnull);
    devnull = -1;
    agent_jail_argv_free(argv);
    argv = NULL;

    /* Ready ("R") or the import's error ("E" + its last line). */
    char buf[512];
    int64_t until = clock_mono_us() + (int64_t)AGENT_ZYGOTE_START_MS * 1000;
    ssize_t n = -1;
    for (;;) {
        int64_t left = (until - clock_mono_us()) / 1000;
        if (left <= 0) {
            set_error("the zygote was not ready within %d ms", AGENT_ZYGOTE_START_MS);
            goto fail;
        }
        struct pollfd pf = {.fd = sv[0], .events = POLLIN};
        int pr = poll(&pf, 1, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;
        n = recv(sv[0], buf, sizeof(buf) - 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        break;
    }
    if (n <= 0) {
        int ws = 0;
        while (waitpid(Z.bw, &ws, 0) < 0 && errno == EINTR) {
        }
        Z.bw = -1;
        set_error("the zygote exited before it was ready (status %d)", ws);
        goto fail;
    }
    buf[n] = 0;
    if (buf[0] != 'R' || n != 1) {
        set_error("%s", buf[0] == 'E' ? buf + 1 : "the zygote broke its protocol");
        goto fail;
    }
    Z.pid = find_child_of(Z.bw);
    if (Z.pid <= 0) {
        set_error("the zygote's process is not found");
        goto fail;
    }
    Z.sock = sv[0];
    Z.started_us = clock_mono_us();
    /* The end of every run kills every process of the worker but these. */
    agent_sweep_spare(Z.bw, Z.pid);
    return 0;
fail:
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    if (devnull >= 0)
        close(devnull);
    agent_jail_argv_free(argv);
    agent_zygote_stop();
    agent_log("zygote: %s", Z.error);
    return -1;
}

bool
agent_zygote_due(bool clean)
{
    if (!Z.enabled)
        return false;
    if (!clean || Z.sock < 0 || Z.runs >= AGENT_ZYGOTE_MAX_RUNS ||
        clock_mono_us() - Z.started_us >= (int64_t)AGENT_ZYGOTE_MAX_AGE_S * 1000000)
        return true;
    /* Dead (its socket hung up, or its monitor is gone)? */
    struct pollfd pf = {.fd = Z.sock, .events = 0};
    if (poll(&pf, 1, 0) > 0 && (pf.revents & (POLLHUP | POLLERR)))
        return true;
    return kill(Z.pid, 0) < 0;
}

/* ---- one run's input, as zygote.py's Input reads it ---- */

struct wbuf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
};

static void
put(struct wbuf *b, const void *data, size_t len)
{
    if (b->oom)
        return;
    if (b->len + len > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < b->len + len)
            nc *= 2;
        uint8_t *np = realloc(b->p, nc);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
}

static void
put_u32(struct wbuf *b, uint32_t v)
{
    put(b, &v, sizeof(v));
}

static void
put_blob(struct wbuf *b, const void *data, size_t len)
{
    put_u32(b, (uint32_t)len);
    put(b, data, len);
}

static void
put_str(struct wbuf *b, const char *s)
{
    put_blob(b, s, strlen(s));
}

static int
input_memfd(const agent_request *req, se_err *err)
{
    struct wbuf b = {0};
    const Safeeval__V1__Limits *l = req->limits;
    put(&b, INPUT_MAGIC, 4);
    uint64_t lim[7] = {l->wall_time_ms,     l->cpu_time_ms,    l->memory_bytes, l->max_processes,
                       l->max_output_bytes, l->max_file_bytes, ZYGOTE_NOFILE};
    put(&b, lim, sizeof(lim));
    put_str(&b, req->filename);
    put_blob(&b, req->script.data, req->script.len);
    put_u32(&b, (uint32_t)req->n_args);
    for (size_t i = 0; i < req->n_args; i++)
        put_str(&b, req->args[i]);
    put_u32(&b, (uint32_t)req->n_env);
    for (size_t i = 0; i < req->n_env; i++) {
        put_str(&b, req->env[i]->key);
        put_str(&b, req->env[i]->value);
    }
    put_u32(&b, (uint32_t)req->n_files);
    for (size_t i = 0; i < req->n_files; i++) {
        put_str(&b, req->files[i]->path);
        put_blob(&b, req->files[i]->content.data, req->files[i]->content.len);
    }
    if (b.oom) {
        free(b.p);
        return se_err_set(err, SE_INTERNAL, "zygote input: out of memory");
    }
    int fd = agent_jail_memfd(b.p, b.len, err);
    free(b.p);
    return fd;
}

void
agent_zygote_prepare(void)
{
    if (Z.sock < 0 || P.sock >= 0)
        return;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        agent_log("zygote: socketpair: %s", strerror(errno));
        return;
    }
    if (send_fds(Z.sock, 'P', &sv[1], 1) < 0) {
        int e = errno;
        close(sv[0]);
        close(sv[1]);
        set_error("the zygote does not take runs: %s", strerror(e));
        close(Z.sock);
        Z.sock = -1;
        return;
    }
    close(sv[1]);
    P.sock = sv[0];
    P.ready = false;
}

/* Whether the prepared child is ready (1) or failed or is gone (0, why in
 * msg). Its words are read as hostile bytes, though no code of a run ever
 * held its socket. */
static int
prepared_wait(char *msg, size_t msg_len)
{
    struct pollfd pf = {.fd = P.sock, .events = POLLIN};
    if (P.ready) {
        /* Nothing more is ever said after "r": data or a hang-up is a
         * dead (or broken) prepared child. */
        if (poll(&pf, 1, 0) == 0)
            return 1;
        snprintf(msg, msg_len, "the prepared run process is gone");
        return 0;
    }
    int64_t until = clock_mono_us() + (int64_t)AGENT_ZYGOTE_START_MS * 1000;
    for (;;) {
        int64_t left = (until - clock_mono_us()) / 1000;
        if (left <= 0) {
            snprintf(msg, msg_len, "the run's processes were not ready within %d ms",
                     AGENT_ZYGOTE_START_MS);
            return 0;
        }
        int pr = poll(&pf, 1, (int)left);
        if (pr < 0 && errno != EINTR) {
            snprintf(msg, msg_len, "poll: %s", strerror(errno));
            return 0;
        }
        if (pr > 0)
            break;
    }
    char buf[128];
    ssize_t n;
    do
        n = recv(P.sock, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n == 1 && buf[0] == 'r') {
        P.ready = true;
        return 1;
    }
    if (n > 1 && buf[0] == 'E') {
        buf[n] = 0;
        for (char *p = buf + 1; *p; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                *p = ' ';
        snprintf(msg, msg_len, "%s", buf + 1);
    } else {
        snprintf(msg, msg_len, "the run's processes ended before they were ready");
    }
    return 0;
}

int
agent_zygote_await(se_err *err)
{
    if (Z.sock < 0)
        return se_err_set(err, SE_UNAVAILABLE, "no zygote: %s",
                          Z.error[0] ? Z.error : "it is not running");
    char msg[128] = "";
    /* The one waiting, else one now; a waiting one found dead is replaced
     * once (a set-up that fails twice fails the run). */
    for (int attempt = 0; attempt < 2; attempt++) {
        agent_zygote_prepare();
        if (P.sock < 0)
            return se_err_set(err, SE_UNAVAILABLE, "no zygote: %s", Z.error);
        if (prepared_wait(msg, sizeof(msg)))
            return 0;
        prepared_drop();
    }
    return se_err_set(err, SE_UNAVAILABLE, "zygote: the run's processes could not be set up: %s",
                      msg);
}

int
agent_zygote_spawn(const agent_request *req, int out_w, int err_w, int st_w, se_err *err)
{
    if (P.sock < 0 || !P.ready)
        return se_err_set(err, SE_INTERNAL, "zygote: no prepared run process");
    int in = input_memfd(req, err);
    if (in < 0)
        return -SE_INTERNAL;
    int stdin_fd = agent_jail_memfd(req->stdin.data, req->stdin.len, err);
    if (stdin_fd < 0) {
        close(in);
        return -SE_INTERNAL;
    }
    int fds[5] = {in, stdin_fd, out_w, err_w, st_w};
    int rc = send_fds(P.sock, 'R', fds, 5);
    int e = errno;
    close(in);
    close(stdin_fd);
    /* One run per prepared child, whatever happened. */
    prepared_drop();
    if (rc < 0) {
        errno = e;
        return se_err_errno(err, SE_UNAVAILABLE, "zygote: the prepared run process");
    }
    Z.runs++;
    return 0;
}

/* ---- the zygote jail's pid 1, until it becomes python3 ---- */

int
agent_zygote_init_main(int argc, char **argv)
{
    /* argv: prog --zygote-init SOCK_FD BPF_FD -- python3 zygote.py ... */
    if (argc < 6 || strcmp(argv[4], "--") != 0)
        return 2;
    char *end;
    long sock = strtol(argv[2], &end, 10);
    if (*end || sock < 3 || sock > INT_MAX)
        return 2;
    long bpf = strtol(argv[3], &end, 10);
    if (*end || bpf < 3 || bpf > INT_MAX || bpf == sock)
        return 2;
    /* Nothing but the two fds it was given (and 0-2) goes on. */
    for (int fd = 3; fd < 1024; fd++)
        if (fd != sock && fd != bpf)
            close(fd);
    struct rlimit core = {0, 0};
    if (setrlimit(RLIMIT_CORE, &core) < 0)
        return 1;
    char msg[96];
    if (agent_filter_load_zygote(msg, sizeof(msg)) < 0) {
        agent_log("zygote filter: %s", msg);
        return 1;
    }
    extern char **environ;
    execve(argv[5], &argv[5], environ);
    agent_log("zygote: execve %s: %s", argv[5], strerror(errno));
    return 127;
}
