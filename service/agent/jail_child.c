/* The jail's pid 1 (bwrap --as-pid-1 runs it in place of its own init).
 * The jailed code runs as the same uid, so everything that would let the
 * code reach into this process is shut before the code exists:
 *  - not dumpable before the first fork: its /proc entries (mem, environ,
 *    fd, oom_score_adj, ...) belong to a root the jail's user namespace
 *    does not map, so the code cannot open them;
 *  - under the run's seccomp filter itself (no ptrace, no unshare, no
 *    io_uring, no faked SIGXCPU/SIGXFSZ), loaded before the fork from the
 *    program the agent exported once (BPF_FD, read before the other fds
 *    are closed; nothing of the run ever holds it);
 *  - as a namespace's init it gets no signal from inside the namespace
 *    that it has no handler for, and it installs none.
 * oom_score_adj 1000 (inherited by the code) makes a jail process, never
 * the agent or the engine's init, the OOM killer's choice; the code may
 * lower its own back to 0, never this process's.
 * It then forks the command, reaps every process of the namespace (orphans
 * come to it) and, when the command ends, reports its exact wait status and
 * the namespace's rusage on a pipe only it holds, and exits: its exit takes
 * the namespace and whatever is still in it down. With --collect, between
 * the command's end and that report, it kills and reaps whatever else of
 * the namespace is left and sends the files the run asked back on a second
 * pipe only it holds (collect.c): /work exists only in this namespace.
 *
 * Prepared (`--prepared FD`, agent.h; never with --collect): before the
 * fork it makes the script's path a FIFO it holds open (so python's open of
 * it returns at once and its read blocks), and after the fork it waits for
 * the delivery on FD: it writes the files into /work as bwrap's --dir/--file
 * would (dirs 0755 under the umask, files 0666), writes the script to a
 * temporary name and renames it over the FIFO (so tracebacks and linecache
 * find a regular file), then feeds the same bytes into the FIFO and closes
 * it: python reads its source and EOF. No code of the run exists before the
 * delivery is complete; EOF on FD before that (the agent threw the jail
 * away) ends the jail. The CPU python used before the delivery is not
 * reported as the run's. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"

extern char **environ;

static int
parse_u64(const char *s, unsigned long long *out)
{
    if (!s || !*s || *s == '-')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

/* CPU the command used before the delivery (prepared mode), in us: taken
 * off the reported rusage. */
static int64_t cpu_before_us;

static void
status_send(int fd, uint32_t kind, int wait_status, int sys_errno, const struct rusage *ru,
            const char *msg)
{
    struct agent_status st;
    memset(&st, 0, sizeof(st));
    st.magic = AGENT_STATUS_MAGIC;
    st.kind = kind;
    st.wait_status = wait_status;
    st.sys_errno = sys_errno;
    if (ru) {
        st.maxrss_kb = ru->ru_maxrss;
        st.cpu_us = (int64_t)ru->ru_utime.tv_sec * 1000000 + ru->ru_utime.tv_usec +
                    (int64_t)ru->ru_stime.tv_sec * 1000000 + ru->ru_stime.tv_usec;
        st.cpu_us = st.cpu_us > cpu_before_us ? st.cpu_us - cpu_before_us : 0;
    }
    if (msg)
        snprintf(st.msg, sizeof(st.msg), "%s", msg);
    ssize_t n;
    do
        n = write(fd, &st, sizeof(st));
    while (n < 0 && errno == EINTR);
}

/* Closes every fd from `from` up but keep and keep2 (-1: none). */
static int
close_from_except2(int from, int keep, int keep2)
{
    int lo = keep < keep2 ? keep : keep2, hi = keep < keep2 ? keep2 : keep;
    if (lo < 0)
        lo = hi;
    if (lo == hi)
        hi = -1;
    int prev = from;
    int ks[2] = {lo, hi};
    for (int i = 0; i < 2; i++) {
        if (ks[i] < prev)
            continue;
        if (ks[i] > prev && syscall(SYS_close_range, prev, ks[i] - 1, 0) < 0)
            return -1;
        prev = ks[i] + 1;
    }
    return (int)syscall(SYS_close_range, prev, ~0u, 0);
}

static int
close_from_except(int from, int keep)
{
    if (keep >= from) {
        if (keep > from && syscall(SYS_close_range, from, keep - 1, 0) < 0)
            return -1;
        return (int)syscall(SYS_close_range, keep + 1, ~0u, 0);
    }
    return (int)syscall(SYS_close_range, from, ~0u, 0);
}

/* ---- prepared mode ---- */

/* A new file under the work dir (wfd) holding data, 0666 as bwrap's --file
 * makes it. */
static int
file_create(int wfd, const char *path, const uint8_t *data, size_t len)
{
    int fd = openat(wfd, path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0)
        return -1;
    int rc = agent_write_all(fd, data, len) < 0 || fchmod(fd, 0666) < 0 ? -1 : 0;
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

/* The parent directories of path, as bwrap's --dir makes them. */
static int
make_parents(int wfd, const char *path)
{
    char buf[AGENT_MAX_PATH + 1];
    if (strlen(path) >= sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(buf, path);
    for (char *sl = strchr(buf, '/'); sl; sl = strchr(sl + 1, '/')) {
        *sl = 0;
        if (mkdirat(wfd, buf, 0755) < 0 && errno != EEXIST)
            return -1;
        *sl = '/';
    }
    return 0;
}

/* Before the command starts: its script path (wfd/name) becomes a FIFO this
 * process holds open for reading and writing (so python's open returns at
 * once), at the default size: a bigger pipe would count against the uid's
 * pipe pages, which every worker on the host shares. Returns the fd, or -1
 * with msg set. */
static int
fifo_make(int wfd, const char *name, const char **msg)
{
    *msg = "mkfifo";
    if (mkfifoat(wfd, name, 0600) < 0)
        return -1;
    *msg = "open fifo";
    int fd = openat(wfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    *msg = "fifo flags";
    if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Feeds the script into the FIFO as python reads it; stops early when the
 * command ended without reading it all (it stays waitable: WNOWAIT). */
static int
fifo_feed(int fifo, const uint8_t *p, size_t len, pid_t cmd)
{
    while (len) {
        ssize_t n = write(fifo, p, len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -1;
        struct pollfd pf = {.fd = fifo, .events = POLLOUT};
        if (poll(&pf, 1, 10) < 0 && errno != EINTR)
            return -1;
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        if (waitid(P_PID, (id_t)cmd, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == cmd)
            return 0;
    }
    return 0;
}

/* Waits for the delivery on dfd and puts it in place (see the top). 0 when
 * done, 1 when dfd ended first (nothing to run), -1 with *msg set. */
static int
deliver(int dfd, int wfd, int fifo, const char *name, pid_t cmd, const char **msg)
{
    struct agent_delivery_hdr h;
    if (agent_read_all(dfd, &h, sizeof(h)) < 0)
        return 1;
    /* From here on, the run's: its CPU counts. */
    clockid_t cid;
    struct timespec ts;
    if (clock_getcpuclockid(cmd, &cid) == 0 && clock_gettime(cid, &ts) == 0)
        cpu_before_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    *msg = "delivery header";
    if (h.magic != AGENT_DELIVERY_MAGIC || h.body_len > AGENT_DELIVERY_MAX ||
        h.n_files > AGENT_MAX_FILES) {
        errno = EINVAL;
        return -1;
    }
    uint8_t *body = malloc(h.body_len ? h.body_len : 1);
    *msg = "delivery";
    if (!body)
        return -1;
    if (agent_read_all(dfd, body, h.body_len) < 0) {
        free(body);
        return 1;
    }
    close(dfd);
    int rc = -1;
    size_t off = 0, len = h.body_len;
    char path[AGENT_MAX_PATH + 1];
    se_err err;
    for (uint32_t i = 0; i < h.n_files; i++) {
        uint32_t plen;
        uint64_t clen;
        *msg = "delivery: a file";
        errno = EINVAL;
        if (len - off < sizeof(plen) + sizeof(clen))
            goto out;
        memcpy(&plen, body + off, sizeof(plen));
        memcpy(&clen, body + off + sizeof(plen), sizeof(clen));
        off += sizeof(plen) + sizeof(clen);
        if (plen > AGENT_MAX_PATH || plen > len - off || clen > len - off - plen)
            goto out;
        memcpy(path, body + off, plen);
        path[plen] = 0;
        off += plen;
        se_err_clear(&err);
        if (strlen(path) != plen || agent_path_validate(path, &err) < 0)
            goto out;
        *msg = "write a file";
        if (make_parents(wfd, path) < 0 || file_create(wfd, path, body + off, clen) < 0)
            goto out;
        off += clen;
    }
    /* The rest is the script: a regular file at its name before python can
     * run a line of it. */
    const uint8_t *script = body + off;
    size_t slen = len - off;
    char tmp[AGENT_MAX_COMPONENT + 32];
    *msg = "write the script";
    for (unsigned n = 0;; n++) {
        snprintf(tmp, sizeof(tmp), ".%.*s.%u~", AGENT_MAX_COMPONENT - 16, name, n);
        if (file_create(wfd, tmp, script, slen) == 0)
            break;
        if (errno != EEXIST || n > 1000)
            goto out;
    }
    if (renameat(wfd, tmp, wfd, name) < 0)
        goto out;
    *msg = "feed the script";
    if (fifo_feed(fifo, script, slen, cmd) < 0)
        goto out;
    rc = 0;
out:;
    int e = errno;
    close(fifo);
    free(body);
    errno = e;
    return rc;
}

struct setup_err {
    int sys_errno;
    char msg[96];
};

static void __attribute__((noreturn)) child_fail(int fd, int e, const char *msg)
{
    struct setup_err se;
    memset(&se, 0, sizeof(se));
    se.sys_errno = e;
    snprintf(se.msg, sizeof(se.msg), "%s", msg);
    if (write(fd, &se, sizeof(se)) < 0) {
        /* nothing left to tell */
    }
    _exit(127);
}

/* In the forked child, already under the filter: the per-process limits,
 * then the command. RLIMIT_FSIZE was set before the filter (which forbids
 * changing it) and is inherited. */
static void __attribute__((noreturn))
child_exec(int errfd, unsigned long long cpu_ms, unsigned long long nproc,
           unsigned long long nofile, char **cmd)
{
    /* Only stdin/stdout/stderr (and the CLOEXEC error pipe) survive. */
    if (close_from_except(3, errfd) < 0)
        child_fail(errfd, errno, "close_range");
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGXFSZ, SIG_DFL);
    signal(SIGXCPU, SIG_DFL);

    /* RLIMIT_CPU is a backstop behind the agent's own check of the cgroup's
     * CPU (which kills at cpu_time_ms): a second over, per process. */
    rlim_t cpu_s = (rlim_t)((cpu_ms + 999) / 1000 + 1);
    struct {
        int res;
        rlim_t soft, hard;
        const char *name;
    } rl[] = {
        {RLIMIT_CPU, cpu_s, cpu_s + 1, "RLIMIT_CPU"},
        /* The helper is a task of the namespace's uid too. */
        {RLIMIT_NPROC, nproc + 1, nproc + 1, "RLIMIT_NPROC"},
        {RLIMIT_NOFILE, nofile, nofile, "RLIMIT_NOFILE"},
        {RLIMIT_MEMLOCK, 0, 0, "RLIMIT_MEMLOCK"},
        {RLIMIT_MSGQUEUE, 0, 0, "RLIMIT_MSGQUEUE"},
        {RLIMIT_RTPRIO, 0, 0, "RLIMIT_RTPRIO"},
    };
    for (size_t i = 0; i < sizeof(rl) / sizeof(rl[0]); i++) {
        struct rlimit r = {rl[i].soft, rl[i].hard};
        if (setrlimit(rl[i].res, &r) < 0)
            child_fail(errfd, errno, rl[i].name);
    }
    execve(cmd[0], cmd, environ);
    child_fail(errfd, errno, "execve");
}

/* The command's process: made with CLONE_VM | CLONE_VFORK, the helper's
 * memory shared and the helper stopped until the child execs or exits. A
 * fork would copy the helper's page tables and take copy-on-write faults
 * for nothing (milliseconds on a VM); the child has its own fds, signal
 * handlers and limits as after a fork, and touches no memory of the helper
 * but its own stack below and errno. */
struct child_args {
    int errfd, errfd_r;
    unsigned long long cpu_ms, nproc, nofile;
    char **cmd;
};

static int
child_main(void *p)
{
    const struct child_args *a = p;
    close(a->errfd_r);
    child_exec(a->errfd, a->cpu_ms, a->nproc, a->nofile, a->cmd);
}

/* One stack serves: the helper waits while the child uses it. */
static char child_stack[64 * 1024] __attribute__((aligned(16)));

static int
set_oom_score_adj(void)
{
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, "1000", 4);
    int e = errno;
    close(fd);
    errno = e;
    return n == 4 ? 0 : -1;
}

int
agent_jail_child_main(int argc, char **argv)
{
    /* argv: prog --jail-child FD CPU_MS NPROC FSIZE NOFILE BPF_FD
     *       [--collect FD MAX_FILES MAX_BYTES N PATTERN... | --prepared DFD] -- cmd... */
    if (argc < 10)
        return 2;
    unsigned long long fd_u, lim[4], bfd_u;
    if (parse_u64(argv[2], &fd_u) < 0 || fd_u < 3 || fd_u > INT_MAX)
        return 2;
    for (int i = 0; i < 4; i++)
        if (parse_u64(argv[3 + i], &lim[i]) < 0 || lim[i] == 0)
            return 2;
    if (parse_u64(argv[7], &bfd_u) < 0 || bfd_u < 3 || bfd_u > INT_MAX || bfd_u == fd_u)
        return 2;
    unsigned long long cpu_ms = lim[0], nproc = lim[1], fsize = lim[2], nofile = lim[3];
    int sfd = (int)fd_u, bfd = (int)bfd_u;
    int at = 8;
    int cfd = -1, dfd = -1;
    unsigned long long cmax[3] = {0, 0, 0}; /* files, bytes, patterns */
    char **patterns = NULL;
    if (strcmp(argv[at], "--collect") == 0) {
        unsigned long long cfd_u;
        if (argc < at + 6 || parse_u64(argv[at + 1], &cfd_u) < 0 || cfd_u < 3 || cfd_u > INT_MAX ||
            cfd_u == fd_u || cfd_u == bfd_u)
            return 2;
        for (int i = 0; i < 3; i++)
            if (parse_u64(argv[at + 2 + i], &cmax[i]) < 0 || cmax[i] == 0)
                return 2;
        if (cmax[2] > AGENT_MAX_COLLECT || argc < at + 5 + (int)cmax[2] + 2)
            return 2;
        cfd = (int)cfd_u;
        patterns = &argv[at + 5];
        at += 5 + (int)cmax[2];
    } else if (strcmp(argv[at], "--prepared") == 0) {
        unsigned long long dfd_u;
        if (argc < at + 3 || parse_u64(argv[at + 1], &dfd_u) < 0 || dfd_u < 3 || dfd_u > INT_MAX ||
            dfd_u == fd_u || dfd_u == bfd_u)
            return 2;
        dfd = (int)dfd_u;
        at += 2;
    }
    if (strcmp(argv[at], "--") != 0 || at + 1 >= argc)
        return 2;
    char **cmd = &argv[at + 1];
    if (fcntl(sfd, F_SETFD, FD_CLOEXEC) < 0 || fcntl(bfd, F_SETFD, FD_CLOEXEC) < 0)
        return 2;
    if (cfd >= 0 && fcntl(cfd, F_SETFD, FD_CLOEXEC) < 0)
        return 2;
    if (dfd >= 0 && fcntl(dfd, F_SETFD, FD_CLOEXEC) < 0)
        return 2;
    /* A prepared jail's script: a plain name under the work dir. */
    const char *script = NULL;
    if (dfd >= 0) {
        if (at + 2 >= argc)
            return 2;
        const char *p = cmd[1];
        size_t wl = strlen(AGENT_WORKDIR);
        se_err e;
        se_err_clear(&e);
        if (strncmp(p, AGENT_WORKDIR "/", wl + 1) != 0 ||
            agent_filename_validate(p + wl + 1, &e) < 0)
            return 2;
        script = p + wl + 1;
    }
    /* Before dumpable goes: after it, this process's /proc files are no
     * longer its own to write. */
    if (set_oom_score_adj() < 0) {
        status_send(sfd, AGENT_STATUS_FAILED, 0, errno, NULL, "oom_score_adj");
        return 1;
    }
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
        status_send(sfd, AGENT_STATUS_FAILED, 0, errno, NULL, "PR_SET_DUMPABLE");
        return 1;
    }
    static agent_bpf prog;
    char msg[96];
    if (agent_filter_read(bfd, &prog, msg, sizeof(msg)) < 0) {
        status_send(sfd, AGENT_STATUS_FAILED, 0, 0, NULL, msg);
        return 1;
    }
    /* --collect and --prepared never come together: one extra fd at most. */
    if (close_from_except2(3, sfd, cfd >= 0 ? cfd : dfd) < 0) {
        status_send(sfd, AGENT_STATUS_FAILED, 0, errno, NULL, "close_range");
        return 1;
    }
    /* The filter forbids changing RLIMIT_FSIZE, so it is set first; a pipe
     * (the status fd) is not subject to it. */
    struct rlimit rf = {(rlim_t)fsize, (rlim_t)fsize}, rc0 = {0, 0};
    if (setrlimit(RLIMIT_FSIZE, &rf) < 0 || setrlimit(RLIMIT_CORE, &rc0) < 0) {
        status_send(sfd, AGENT_STATUS_FAILED, 0, errno, NULL, "RLIMIT_FSIZE");
        return 1;
    }
    if (agent_filter_install(&prog, msg, sizeof(msg)) < 0) {
        status_send(sfd, AGENT_STATUS_FAILED, 0, 0, NULL, msg);
        return 1;
    }
    status_send(sfd, AGENT_STATUS_STARTED, 0, 0, NULL, NULL);

    int wfd = -1, fifo = -1;
    if (dfd >= 0) {
        const char *what = "open " AGENT_WORKDIR;
        wfd = open(AGENT_WORKDIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (wfd < 0 || (fifo = fifo_make(wfd, script, &what)) < 0) {
            status_send(sfd, AGENT_STATUS_FAILED, 0, errno, NULL, what);
            return 1;
        }
        /* Its own writes into /work are bounded by the agent's checks;
         * the signal must not end the jail's init. */
        signal(SIGXFSZ, SIG_IGN);
    }

    int ep[2];
    if (pipe2(ep, O_CLOEXEC) < 0) {
        status_send(sfd, AGENT_STATUS_FAILED, 0, errno, NULL, "pipe");
        return 1;
    }
    struct child_args ca = {ep[1], ep[0], cpu_ms, nproc, nofile, cmd};
    pid_t pid =
        clone(child_main, child_stack + sizeof(child_stack), CLONE_VM | CLONE_VFORK | SIGCHLD, &ca);
    if (pid < 0) {
        status_send(sfd, AGENT_STATUS_FAILED, 0, errno, NULL, "clone");
        return 1;
    }
    close(ep[1]);
    struct setup_err se;
    ssize_t n;
    do
        n = read(ep[0], &se, sizeof(se));
    while (n < 0 && errno == EINTR);
    close(ep[0]);
    if (dfd >= 0 && n != (ssize_t)sizeof(se)) {
        const char *what = NULL;
        int d = deliver(dfd, wfd, fifo, script, pid, &what);
        if (d == 1)
            return 0; /* thrown away: the namespace goes with this process */
        if (d < 0) {
            status_send(sfd, AGENT_STATUS_FAILED, 0, errno, NULL, what);
            return 1;
        }
        close(wfd);
    }

    /* The namespace's init: reap everything, until the command itself. */
    int ws = 0;
    for (;;) {
        int s;
        pid_t w = waitpid(-1, &s, __WALL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            status_send(sfd, AGENT_STATUS_FAILED, 0, errno, NULL, "waitpid");
            return 1;
        }
        if (w == pid) {
            ws = s;
            break;
        }
    }
    if (n == (ssize_t)sizeof(se)) {
        se.msg[sizeof(se.msg) - 1] = 0;
        status_send(sfd, AGENT_STATUS_FAILED, ws, se.sys_errno, NULL, se.msg);
        return 1;
    }
    if (cfd >= 0) {
        /* Nothing of the run may change /work while it is read: the rest
         * of the namespace goes (pid 1 is spared by kill(-1)), reaped. */
        kill(-1, SIGKILL);
        while (waitpid(-1, NULL, __WALL) >= 0 || errno == EINTR) {
        }
        /* A broken pipe (the agent gave up on it) ends the walk early; the
         * agent reads a missing end as files left out. */
        signal(SIGPIPE, SIG_IGN);
        agent_collect_send(cfd, AGENT_WORKDIR, patterns, (size_t)cmax[2], cmax[0], cmax[1]);
        close(cfd);
    }
    struct rusage ru;
    memset(&ru, 0, sizeof(ru));
    getrusage(RUSAGE_CHILDREN, &ru);
    status_send(sfd, AGENT_STATUS_DONE, ws, 0, &ru, NULL);
    return 0;
}
