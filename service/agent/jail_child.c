/* The jail's pid 1 (bwrap --as-pid-1 runs it in place of its own init).
 * The jailed code runs as the same uid, so everything that would let the
 * code reach into this process is shut before the code exists:
 *  - not dumpable before the first fork: its /proc entries (mem, environ,
 *    fd, oom_score_adj, ...) belong to a root the jail's user namespace
 *    does not map, so the code cannot open them;
 *  - under the run's seccomp filter itself (no ptrace, no unshare, no
 *    io_uring, no faked SIGXCPU/SIGXFSZ), loaded before the fork;
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
 * pipe only it holds (collect.c): /work exists only in this namespace. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
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
    /* argv: prog --jail-child FD CPU_MS NPROC FSIZE NOFILE
     *       [--collect FD MAX_FILES MAX_BYTES N PATTERN...] -- cmd... */
    if (argc < 9)
        return 2;
    unsigned long long fd_u, lim[4];
    if (parse_u64(argv[2], &fd_u) < 0 || fd_u < 3 || fd_u > INT_MAX)
        return 2;
    for (int i = 0; i < 4; i++)
        if (parse_u64(argv[3 + i], &lim[i]) < 0 || lim[i] == 0)
            return 2;
    unsigned long long cpu_ms = lim[0], nproc = lim[1], fsize = lim[2], nofile = lim[3];
    int sfd = (int)fd_u;
    int at = 7;
    int cfd = -1;
    unsigned long long cmax[3] = {0, 0, 0}; /* files, bytes, patterns */
    char **patterns = NULL;
    if (strcmp(argv[at], "--collect") == 0) {
        unsigned long long cfd_u;
        if (argc < at + 6 || parse_u64(argv[at + 1], &cfd_u) < 0 || cfd_u < 3 || cfd_u > INT_MAX ||
            cfd_u == fd_u)
            return 2;
        for (int i = 0; i < 3; i++)
            if (parse_u64(argv[at + 2 + i], &cmax[i]) < 0 || cmax[i] == 0)
                return 2;
        if (cmax[2] > AGENT_MAX_COLLECT || argc < at + 5 + (int)cmax[2] + 2)
            return 2;
        cfd = (int)cfd_u;
        patterns = &argv[at + 5];
        at += 5 + (int)cmax[2];
    }
    if (strcmp(argv[at], "--") != 0 || at + 1 >= argc)
        return 2;
    char **cmd = &argv[at + 1];
    if (fcntl(sfd, F_SETFD, FD_CLOEXEC) < 0)
        return 2;
    if (cfd >= 0 && fcntl(cfd, F_SETFD, FD_CLOEXEC) < 0)
        return 2;
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
    if (close_from_except2(3, sfd, cfd) < 0) {
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
    char msg[96];
    if (agent_filter_load(msg, sizeof(msg)) < 0) {
        status_send(sfd, AGENT_STATUS_FAILED, 0, 0, NULL, msg);
        return 1;
    }
    status_send(sfd, AGENT_STATUS_STARTED, 0, 0, NULL, NULL);

    int ep[2];
    if (pipe2(ep, O_CLOEXEC) < 0) {
        status_send(sfd, AGENT_STATUS_FAILED, 0, errno, NULL, "pipe");
        return 1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        status_send(sfd, AGENT_STATUS_FAILED, 0, errno, NULL, "fork");
        return 1;
    }
    if (pid == 0) {
        close(ep[0]);
        child_exec(ep[1], cpu_ms, nproc, nofile, cmd);
    }
    close(ep[1]);
    struct setup_err se;
    ssize_t n;
    do
        n = read(ep[0], &se, sizeof(se));
    while (n < 0 && errno == EINTR);
    close(ep[0]);

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
