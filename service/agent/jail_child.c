/* The helper bwrap starts inside the jail. It is the run command's parent:
 * it sets the rlimits and the seccomp filter in a child, execs the program,
 * waits for it and reports the exact wait status and rusage to the agent on
 * a pipe the jailed program never holds. Being non-dumpable, its /proc
 * entries (and so the status fd) are out of the jailed program's reach. */
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
    memset(&st, 0, sizeof st);
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
        snprintf(st.msg, sizeof st.msg, "%s", msg);
    ssize_t n;
    do
        n = write(fd, &st, sizeof st);
    while (n < 0 && errno == EINTR);
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
    memset(&se, 0, sizeof se);
    se.sys_errno = e;
    snprintf(se.msg, sizeof se.msg, "%s", msg);
    if (write(fd, &se, sizeof se) < 0) {
        /* nothing left to tell */
    }
    _exit(127);
}

static void __attribute__((noreturn)) child_exec(int errfd, unsigned long long lim[5], char **cmd)
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

    unsigned long long cpu_ms = lim[0], mem = lim[1], nproc = lim[2], fsize = lim[3],
                       nofile = lim[4];
    rlim_t cpu_s = (rlim_t)((cpu_ms + 999) / 1000 + 1);
    rlim_t as = mem * 2 > mem + (512ull << 20) ? mem * 2 : mem + (512ull << 20);
    struct {
        int res;
        rlim_t soft, hard;
        const char *name;
    } rl[] = {
        {RLIMIT_CPU, cpu_s, cpu_s + 1, "RLIMIT_CPU"},
        {RLIMIT_AS, as, as, "RLIMIT_AS"},
        {RLIMIT_NPROC, nproc + 2, nproc + 2, "RLIMIT_NPROC"},
        {RLIMIT_FSIZE, fsize, fsize, "RLIMIT_FSIZE"},
        {RLIMIT_NOFILE, nofile, nofile, "RLIMIT_NOFILE"},
        {RLIMIT_CORE, 0, 0, "RLIMIT_CORE"},
        {RLIMIT_MEMLOCK, 0, 0, "RLIMIT_MEMLOCK"},
        {RLIMIT_MSGQUEUE, 0, 0, "RLIMIT_MSGQUEUE"},
    };
    for (size_t i = 0; i < sizeof rl / sizeof rl[0]; i++) {
        struct rlimit r = {rl[i].soft, rl[i].hard};
        if (setrlimit(rl[i].res, &r) < 0)
            child_fail(errfd, errno, rl[i].name);
    }
    char msg[96];
    if (agent_filter_load(msg, sizeof msg) < 0)
        child_fail(errfd, 0, msg);
    execve(cmd[0], cmd, environ);
    child_fail(errfd, errno, "execve");
}

int
agent_jail_child_main(int argc, char **argv)
{
    /* argv: prog --jail-child FD CPU_MS MEM NPROC FSIZE NOFILE -- cmd... */
    if (argc < 10 || strcmp(argv[8], "--") != 0)
        return 2;
    unsigned long long fd_u, lim[5];
    if (parse_u64(argv[2], &fd_u) < 0 || fd_u < 3 || fd_u > INT_MAX)
        return 2;
    for (int i = 0; i < 5; i++)
        if (parse_u64(argv[3 + i], &lim[i]) < 0 || lim[i] == 0)
            return 2;
    int sfd = (int)fd_u;
    if (fcntl(sfd, F_SETFD, FD_CLOEXEC) < 0)
        return 2;
    /* The jailed program runs as the same uid: keep it out of our /proc. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
        status_send(sfd, AGENT_STATUS_FAILED, 0, errno, NULL, "PR_SET_DUMPABLE");
        return 1;
    }
    if (close_from_except(3, sfd) < 0) {
        status_send(sfd, AGENT_STATUS_FAILED, 0, errno, NULL, "close_range");
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
        child_exec(ep[1], lim, &argv[9]);
    }
    close(ep[1]);
    struct setup_err se;
    ssize_t n;
    do
        n = read(ep[0], &se, sizeof se);
    while (n < 0 && errno == EINTR);
    close(ep[0]);

    int ws = 0;
    pid_t w;
    do
        w = waitpid(pid, &ws, 0);
    while (w < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof se) {
        se.msg[sizeof se.msg - 1] = 0;
        status_send(sfd, AGENT_STATUS_FAILED, ws, se.sys_errno, NULL, se.msg);
        return 1;
    }
    if (w < 0) {
        status_send(sfd, AGENT_STATUS_FAILED, 0, errno, NULL, "waitpid");
        return 1;
    }
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    getrusage(RUSAGE_CHILDREN, &ru);
    status_send(sfd, AGENT_STATUS_DONE, ws, 0, &ru, NULL);
    return 0;
}
