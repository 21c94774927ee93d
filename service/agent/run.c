/* One run: build the bwrap command line, start the jail, feed stdin, collect
 * stdout/stderr under caps, enforce wall/CPU/memory limits from outside the
 * jail (where the jailed code cannot see or signal us), and turn what
 * happened into an ExecResult. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/agent.h"
#include "util/buf.h"
#include "util/clock.h"

#define POLL_TICK_MS 5
#define DRAIN_MS 250
#define PROC_MAX 8192
#define JAIL_NOFILE 256
#define MIB (1024ull * 1024)

/* ---- argv builder: every string is owned ---- */

struct argv_b {
    char **v;
    size_t n, cap;
    bool oom;
};

static void
argv_push(struct argv_b *a, const char *s)
{
    if (a->oom)
        return;
    if (a->n + 2 > a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 128;
        char **nv = realloc(a->v, nc * sizeof *nv);
        if (!nv) {
            a->oom = true;
            return;
        }
        a->v = nv;
        a->cap = nc;
    }
    char *d = strdup(s);
    if (!d) {
        a->oom = true;
        return;
    }
    a->v[a->n++] = d;
    a->v[a->n] = NULL;
}

static void __attribute__((format(printf, 2, 3))) argv_pushf(struct argv_b *a, const char *fmt, ...)
{
    char tmp[AGENT_MAX_PATH + 64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        a->oom = true;
        return;
    }
    argv_push(a, tmp);
}

static void
argv_free(struct argv_b *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->v[i]);
    free(a->v);
    memset(a, 0, sizeof *a);
}

/* ---- fds the bwrap child inherits ---- */

struct fdlist {
    int fd[AGENT_MAX_FILES + 1];
    size_t n;
};

static void
fdlist_close(struct fdlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        close(l->fd[i]);
    l->n = 0;
}

/* A memfd holding data, at offset 0, inheritable (bwrap reads it with
 * --file). The agent is single-threaded, so no other exec can catch it. */
static int
memfd_with(const uint8_t *data, size_t len, se_err *err)
{
    int fd = memfd_create("safeeval-file", 0);
    if (fd < 0)
        return se_err_errno(err, SE_INTERNAL, "memfd_create");
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            se_err_errno(err, SE_INTERNAL, "write memfd");
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    if (lseek(fd, 0, SEEK_SET) < 0) {
        se_err_errno(err, SE_INTERNAL, "lseek memfd");
        close(fd);
        return -1;
    }
    return fd;
}

/* --dir for every parent of path under /work, each once while seen has room
 * (a repeated --dir is harmless to bwrap; skipping it keeps the line short). */
static void
push_parent_dirs(struct argv_b *a, const char *path, char (*seen)[AGENT_MAX_PATH + 1],
                 size_t *n_seen, size_t max_seen)
{
    char buf[AGENT_MAX_PATH + 1];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *s = strchr(buf, '/'); s; s = strchr(s + 1, '/')) {
        *s = 0;
        bool dup = false;
        for (size_t i = 0; i < *n_seen && !dup; i++)
            dup = strcmp(seen[i], buf) == 0;
        if (!dup) {
            if (*n_seen < max_seen)
                snprintf(seen[(*n_seen)++], AGENT_MAX_PATH + 1, "%s", buf);
            argv_push(a, "--dir");
            argv_pushf(a, AGENT_WORKDIR "/%s", buf);
        }
        *s = '/';
    }
}

/* The merged-usr links (/bin -> usr/bin, ...) as the image has them; real
 * directories are bound read-only instead. */
static void
push_root_links(struct argv_b *a)
{
    static const char *const tops[] = {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"};
    for (size_t i = 0; i < sizeof tops / sizeof tops[0]; i++) {
        struct stat st;
        if (lstat(tops[i], &st) < 0)
            continue;
        if (S_ISLNK(st.st_mode)) {
            char target[256];
            ssize_t n = readlink(tops[i], target, sizeof target - 1);
            if (n <= 0)
                continue;
            target[n] = 0;
            argv_push(a, "--symlink");
            argv_push(a, target);
            argv_push(a, tops[i]);
        } else if (S_ISDIR(st.st_mode)) {
            argv_push(a, "--ro-bind");
            argv_push(a, tops[i]);
            argv_push(a, tops[i]);
        }
    }
}

static void
push_ro_try(struct argv_b *a, const char *path)
{
    argv_push(a, "--ro-bind-try");
    argv_push(a, path);
    argv_push(a, path);
}

/* /etc/python3* (Debian's sitecustomize lives there). */
static void
push_etc_python(struct argv_b *a)
{
    DIR *d = opendir("/etc");
    if (!d)
        return;
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) && n < 8) {
        if (strncmp(e->d_name, "python3", 7) == 0 && strlen(e->d_name) < 32) {
            char path[64];
            snprintf(path, sizeof path, "/etc/%s", e->d_name);
            push_ro_try(a, path);
            n++;
        }
    }
    closedir(d);
}

/* A writable tmpfs: what goes in, plus room for writing. tmpfs pages are
 * memory charged to the container, outside the jail's RSS sum, so the room
 * is bounded by the run's memory limit as well as by 1 GiB. */
static uint64_t
tmpfs_size(uint64_t base, uint64_t max_file, uint64_t memory)
{
    uint64_t extra = max_file < 16 * MIB ? 16 * MIB : max_file;
    uint64_t mem_room = memory < 16 * MIB ? 16 * MIB : memory;
    if (extra > mem_room)
        extra = mem_room;
    if (extra > 1024 * MIB)
        extra = 1024 * MIB;
    return (base + extra + 4095) & ~4095ull;
}

static int
build_argv(struct argv_b *a, struct fdlist *fds, const agent_request *req, const char *self,
           int status_fd, se_err *err)
{
    const Safeeval__V1__Limits *l = req->limits;
    argv_push(a, AGENT_BWRAP);
    argv_push(a, "--unshare-user");
    argv_push(a, "--unshare-pid");
    argv_push(a, "--unshare-net");
    argv_push(a, "--unshare-ipc");
    argv_push(a, "--unshare-uts");
    argv_push(a, "--unshare-cgroup-try");
    argv_push(a, "--die-with-parent");
    argv_push(a, "--new-session");
    argv_push(a, "--ro-bind");
    argv_push(a, "/usr");
    argv_push(a, "/usr");
    push_root_links(a);
    push_ro_try(a, "/etc/alternatives");
    push_ro_try(a, "/etc/ld.so.cache");
    push_ro_try(a, "/etc/ssl");
    push_ro_try(a, "/etc/localtime");
    push_ro_try(a, "/etc/passwd");
    push_ro_try(a, "/etc/group");
    push_ro_try(a, "/etc/nsswitch.conf");
    push_ro_try(a, "/etc/mime.types");
    push_etc_python(a);
    argv_push(a, "--ro-bind");
    argv_push(a, AGENT_VENV_ROOT);
    argv_push(a, AGENT_VENV_ROOT);
    argv_push(a, "--ro-bind");
    argv_push(a, self);
    argv_push(a, AGENT_JAIL_SELF);
    argv_push(a, "--proc");
    argv_push(a, "/proc");
    argv_push(a, "--dev");
    argv_push(a, "/dev");
    argv_push(a, "--size");
    argv_pushf(a, "%llu", (unsigned long long)tmpfs_size(0, 64 * MIB, l->memory_bytes));
    argv_push(a, "--tmpfs");
    argv_push(a, "/dev/shm");
    argv_push(a, "--size");
    argv_pushf(a, "%llu", (unsigned long long)tmpfs_size(0, l->max_file_bytes, l->memory_bytes));
    argv_push(a, "--tmpfs");
    argv_push(a, "/tmp");

    uint64_t input = req->script.len + 4096;
    for (size_t i = 0; i < req->n_files; i++)
        input += req->files[i]->content.len + 4096;
    argv_push(a, "--size");
    argv_pushf(a, "%llu",
               (unsigned long long)tmpfs_size(input, l->max_file_bytes, l->memory_bytes));
    argv_push(a, "--tmpfs");
    argv_push(a, AGENT_WORKDIR);

    int fd = memfd_with(req->script.data, req->script.len, err);
    if (fd < 0)
        return -SE_INTERNAL;
    fds->fd[fds->n++] = fd;
    argv_push(a, "--file");
    argv_pushf(a, "%d", fd);
    argv_pushf(a, AGENT_WORKDIR "/%s", req->filename);

    static char seen[64][AGENT_MAX_PATH + 1];
    size_t n_seen = 0;
    for (size_t i = 0; i < req->n_files; i++) {
        const Safeeval__V1__File *f = req->files[i];
        push_parent_dirs(a, f->path, seen, &n_seen, 64);
        fd = memfd_with(f->content.data, f->content.len, err);
        if (fd < 0)
            return -SE_INTERNAL;
        fds->fd[fds->n++] = fd;
        argv_push(a, "--file");
        argv_pushf(a, "%d", fd);
        argv_pushf(a, AGENT_WORKDIR "/%s", f->path);
    }
    /* Nothing outside /work, /tmp and /dev/shm is writable. */
    argv_push(a, "--remount-ro");
    argv_push(a, "/dev");
    argv_push(a, "--remount-ro");
    argv_push(a, "/");
    argv_push(a, "--chdir");
    argv_push(a, AGENT_WORKDIR);
    argv_push(a, "--clearenv");
    static const char *const base_env[][2] = {
        {"PATH", "/opt/safeeval/venv/bin:/usr/local/bin:/usr/bin:/bin"},
        {"HOME", AGENT_WORKDIR},
        {"TMPDIR", "/tmp"},
        {"LANG", "C.UTF-8"},
        {"PYTHONDONTWRITEBYTECODE", "1"},
        {"OPENBLAS_NUM_THREADS", "1"},
    };
    for (size_t i = 0; i < sizeof base_env / sizeof base_env[0]; i++) {
        argv_push(a, "--setenv");
        argv_push(a, base_env[i][0]);
        argv_push(a, base_env[i][1]);
    }
    for (size_t i = 0; i < req->n_env; i++) {
        argv_push(a, "--setenv");
        argv_push(a, req->env[i]->key);
        argv_push(a, req->env[i]->value);
    }
    argv_push(a, "--");
    argv_push(a, AGENT_JAIL_SELF);
    argv_push(a, "--jail-child");
    argv_pushf(a, "%d", status_fd);
    argv_pushf(a, "%u", l->cpu_time_ms);
    argv_pushf(a, "%llu", (unsigned long long)l->memory_bytes);
    argv_pushf(a, "%u", l->max_processes);
    argv_pushf(a, "%llu", (unsigned long long)l->max_file_bytes);
    argv_pushf(a, "%d", JAIL_NOFILE);
    argv_push(a, "--");
    argv_push(a, AGENT_PYTHON);
    argv_pushf(a, AGENT_WORKDIR "/%s", req->filename);
    for (size_t i = 0; i < req->n_args; i++)
        argv_push(a, req->args[i]);
    if (a->oom)
        return se_err_set(err, SE_INTERNAL, "building the jail command line failed");
    return 0;
}

/* ---- the jail's processes, seen from outside ---- */

struct proc_ent {
    pid_t pid, ppid;
    uint64_t own_ticks, child_ticks, rss_pages;
    int depth; /* below the outer bwrap; DEPTH_NOT_OURS, or DEPTH_UNKNOWN while scanning */
};

#define DEPTH_NOT_OURS -1
#define DEPTH_UNKNOWN -2
/* pid -> index + 1 (0 = empty); a power of two, at most half full. */
#define PROC_HASH (2 * PROC_MAX)
_Static_assert((PROC_HASH & (PROC_HASH - 1)) == 0, "PROC_HASH must be a power of two");

static struct proc_ent procs[PROC_MAX];
static int proc_hash[PROC_HASH];

static int
proc_find(pid_t pid)
{
    for (size_t h = (size_t)pid & (PROC_HASH - 1);; h = (h + 1) & (PROC_HASH - 1)) {
        if (!proc_hash[h])
            return -1;
        if (procs[proc_hash[h] - 1].pid == pid)
            return proc_hash[h] - 1;
    }
}

/* Follows i's parents up to a process of known depth and sets the depth of
 * every one on the way: each process is walked once per scan, however deep
 * the tree (a depth cap would let a long chain of processes hide below it). */
static void
proc_resolve(int i, size_t n)
{
    static int chain[PROC_MAX];
    size_t len = 0;
    int j = i;
    bool cycle = false;
    while (j >= 0 && procs[j].depth == DEPTH_UNKNOWN) {
        if (len == n) {
            cycle = true; /* only with pids reused during the scan: not ours */
            break;
        }
        chain[len++] = j;
        j = proc_find(procs[j].ppid);
    }
    int d = cycle || j < 0 ? DEPTH_NOT_OURS : procs[j].depth;
    while (len) {
        if (d != DEPTH_NOT_OURS)
            d++;
        procs[chain[--len]].depth = d;
    }
}

/* Sums CPU and RSS over the jail: every process under the outer bwrap
 * except bwrap itself and its namespace init (depth 0 and 1); the init's
 * reaped orphans count through its cutime/cstime. */
static void
proc_scan(pid_t root, uint64_t *cpu_ticks, uint64_t *rss_pages)
{
    *cpu_ticks = 0;
    *rss_pages = 0;
    DIR *d = opendir("/proc");
    if (!d)
        return;
    size_t n = 0;
    struct dirent *e;
    memset(proc_hash, 0, sizeof proc_hash);
    while ((e = readdir(d)) && n < PROC_MAX) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        char path[64], buf[1024];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t r = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (r <= 0)
            continue;
        buf[r] = 0;
        char *p = strrchr(buf, ')');
        if (!p)
            continue;
        /* fields from 3: state ppid pgrp session tty tpgid flags minflt cminflt
         * majflt cmajflt utime stime cutime cstime prio nice threads itreal
         * start vsize rss */
        unsigned long long f[22];
        char state;
        int got = sscanf(p + 2,
                         "%c %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu "
                         "%llu %llu %llu %llu %llu %llu %llu %llu",
                         &state, &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7], &f[8],
                         &f[9], &f[10], &f[11], &f[12], &f[13], &f[14], &f[15], &f[16], &f[17],
                         &f[18], &f[19], &f[20]);
        if (got < 22)
            continue;
        procs[n].pid = (pid_t)pid;
        procs[n].ppid = (pid_t)f[0];
        procs[n].own_ticks = f[10] + f[11];
        procs[n].child_ticks = f[12] + f[13];
        procs[n].rss_pages = f[20];
        procs[n].depth = pid == root ? 0 : DEPTH_UNKNOWN;
        size_t h = (size_t)pid & (PROC_HASH - 1);
        while (proc_hash[h])
            h = (h + 1) & (PROC_HASH - 1);
        proc_hash[h] = (int)n + 1;
        n++;
    }
    closedir(d);
    for (size_t i = 0; i < n; i++)
        proc_resolve((int)i, n);
    for (size_t i = 0; i < n; i++) {
        if (procs[i].depth == 1)
            *cpu_ticks += procs[i].child_ticks;
        if (procs[i].depth >= 2) {
            *cpu_ticks += procs[i].own_ticks + procs[i].child_ticks;
            *rss_pages += procs[i].rss_pages;
        }
    }
}

/* ---- the run ---- */

struct stream {
    int fd;
    se_buf buf;
    uint64_t total;
};

static void
stream_read(struct stream *s)
{
    uint8_t tmp[65536];
    for (int i = 0; i < 16; i++) {
        ssize_t n = read(s->fd, tmp, sizeof tmp);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            close(s->fd);
            s->fd = -1;
            return;
        }
        s->total += (uint64_t)n;
        se_buf_append_capped(&s->buf, tmp, (size_t)n);
    }
}

static void
close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static int
pipe_nb(int p[2], bool parent_reads)
{
    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    int mine = parent_reads ? p[0] : p[1];
    return fcntl(mine, F_SETFL, O_NONBLOCK);
}

void
agent_result_free(agent_result *res)
{
    if (!res)
        return;
    free(res->stdout.data);
    free(res->stderr.data);
    res->stdout.data = NULL;
    res->stderr.data = NULL;
}

static void
set_signal(agent_result *out, int sig)
{
    out->signal = sig;
    out->exit_code = -sig;
}

int
agent_run(agent_result *out, const agent_request *req, se_err *err)
{
    safeeval__v1__exec_result__init(out);
    const Safeeval__V1__Limits *l = req->limits;
    int rc = 0;
    struct argv_b a = {0};
    struct fdlist fds = {.n = 0};
    int in_p[2] = {-1, -1}, out_p[2] = {-1, -1}, err_p[2] = {-1, -1}, st_p[2] = {-1, -1};
    int ex_p[2] = {-1, -1};
    size_t cap = l->max_output_bytes < AGENT_MAX_OUTPUT ? l->max_output_bytes : AGENT_MAX_OUTPUT;
    struct stream so = {.fd = -1}, se = {.fd = -1};
    se_buf_init(&so.buf, cap);
    se_buf_init(&se.buf, cap);
    pid_t bw = -1;

    char self[512];
    ssize_t sn = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sn <= 0) {
        rc = se_err_errno(err, SE_INTERNAL, "readlink /proc/self/exe");
        goto out;
    }
    self[sn] = 0;

    if (pipe_nb(in_p, false) < 0 || pipe_nb(out_p, true) < 0 || pipe_nb(err_p, true) < 0 ||
        pipe_nb(st_p, true) < 0 || pipe2(ex_p, O_CLOEXEC) < 0) {
        rc = se_err_errno(err, SE_INTERNAL, "pipe");
        goto out;
    }
    /* The status pipe's write end goes through bwrap to the helper. */
    if (fcntl(st_p[1], F_SETFD, 0) < 0) {
        rc = se_err_errno(err, SE_INTERNAL, "fcntl");
        goto out;
    }
    rc = build_argv(&a, &fds, req, self, st_p[1], err);
    if (rc < 0)
        goto out;

    int64_t t0 = clock_mono_us();
    pid_t parent = getpid();
    bw = fork();
    if (bw < 0) {
        rc = se_err_errno(err, SE_INTERNAL, "fork");
        goto out;
    }
    if (bw == 0) {
        /* If the agent dies, so does bwrap (and with it the whole jail). */
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (getppid() != parent)
            _exit(127);
        if (dup2(in_p[0], 0) < 0 || dup2(out_p[1], 1) < 0 || dup2(err_p[1], 2) < 0)
            _exit(127);
        signal(SIGPIPE, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        /* bwrap stays the jail's pid 1 with the environment it was started
         * with, readable by the run as /proc/1/environ: give it nothing of
         * the container's (the run's own comes from --setenv). */
        static char *const bwrap_env[] = {NULL};
        execve(AGENT_BWRAP, a.v, bwrap_env);
        int e = errno;
        if (write(ex_p[1], &e, sizeof e) < 0) {
            /* the parent sees EOF without data and still reports failure */
        }
        _exit(127);
    }
    close_fd(&in_p[0]);
    close_fd(&out_p[1]);
    close_fd(&err_p[1]);
    close_fd(&st_p[1]);
    close_fd(&ex_p[1]);
    fdlist_close(&fds);

    int exec_errno = 0;
    ssize_t en;
    do
        en = read(ex_p[0], &exec_errno, sizeof exec_errno);
    while (en < 0 && errno == EINTR);
    close_fd(&ex_p[0]);
    if (en > 0) {
        waitpid(bw, NULL, 0);
        bw = -1;
        errno = exec_errno;
        rc = se_err_errno(err, SE_UNAVAILABLE, "cannot start %s", AGENT_BWRAP);
        goto out;
    }

    int in_fd = in_p[1];
    in_p[1] = -1;
    size_t in_off = 0;
    if (req->stdin.len == 0)
        close_fd(&in_fd);
    so.fd = out_p[0];
    out_p[0] = -1;
    se.fd = err_p[0];
    err_p[0] = -1;
    int st_fd = st_p[0];
    st_p[0] = -1;
    uint8_t stbuf[sizeof(struct agent_status) * 4];
    size_t stlen = 0;

    int killed = 0; /* the ExitReason we killed for */
    bool reaped = false;
    int bw_status = 0;
    int64_t t_end = 0, t_kill = 0, next_scan = 0;
    uint64_t peak_rss = 0, cpu_ticks_max = 0;
    long tck = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    if (tck <= 0)
        tck = 100;
    int64_t wall_deadline = t0 + (int64_t)l->wall_time_ms * 1000;
    bool final = false;

    for (;;) {
        struct pollfd pf[4];
        int np = 0;
        int i_in = -1, i_out = -1, i_err = -1, i_st = -1;
        if (in_fd >= 0) {
            pf[np] = (struct pollfd){.fd = in_fd, .events = POLLOUT};
            i_in = np++;
        }
        if (so.fd >= 0) {
            pf[np] = (struct pollfd){.fd = so.fd, .events = POLLIN};
            i_out = np++;
        }
        if (se.fd >= 0) {
            pf[np] = (struct pollfd){.fd = se.fd, .events = POLLIN};
            i_err = np++;
        }
        if (st_fd >= 0) {
            pf[np] = (struct pollfd){.fd = st_fd, .events = POLLIN};
            i_st = np++;
        }
        int64_t now = clock_mono_us();
        int timeout = POLL_TICK_MS;
        if (!killed && !reaped && wall_deadline - now < timeout * 1000)
            timeout = (int)((wall_deadline - now + 999) / 1000);
        if (timeout < 0)
            timeout = 0;
        if (np == 0 && reaped)
            break;
        int pr = poll(pf, (nfds_t)np, timeout);
        if (pr < 0 && errno != EINTR) {
            rc = se_err_errno(err, SE_INTERNAL, "poll");
            break;
        }
        if (pr > 0) {
            if (i_in >= 0 && pf[i_in].revents) {
                ssize_t w = write(in_fd, req->stdin.data + in_off, req->stdin.len - in_off);
                if (w > 0)
                    in_off += (size_t)w;
                if ((w < 0 && errno != EAGAIN && errno != EINTR) || in_off >= req->stdin.len)
                    close_fd(&in_fd);
            }
            if (i_out >= 0 && pf[i_out].revents)
                stream_read(&so);
            if (i_err >= 0 && pf[i_err].revents)
                stream_read(&se);
            if (i_st >= 0 && pf[i_st].revents) {
                ssize_t n = read(st_fd, stbuf + stlen, sizeof stbuf - stlen);
                if (n > 0)
                    stlen += (size_t)n;
                else if (n == 0 || (errno != EAGAIN && errno != EINTR))
                    close_fd(&st_fd);
                if (stlen == sizeof stbuf)
                    close_fd(&st_fd); /* more records than the helper ever sends */
            }
        }
        /* The final record means the command is over: stop enforcing. */
        for (size_t off = 0; off + sizeof(struct agent_status) <= stlen;
             off += sizeof(struct agent_status)) {
            struct agent_status st;
            memcpy(&st, stbuf + off, sizeof st);
            if (st.magic == AGENT_STATUS_MAGIC && st.kind != AGENT_STATUS_STARTED)
                final = true;
        }
        now = clock_mono_us();
        if (!reaped) {
            int ws;
            pid_t w = waitpid(bw, &ws, WNOHANG);
            if (w == bw) {
                reaped = true;
                bw_status = ws;
                t_end = now;
            }
        }
        if (!reaped && !killed && !final) {
            bool wall = now >= wall_deadline;
            /* A wall kill scans once more first: the CPU and memory used
             * since the last tick would be lost with the processes. */
            if (wall || now >= next_scan) {
                next_scan = now + POLL_TICK_MS * 1000;
                uint64_t ticks, pages;
                proc_scan(bw, &ticks, &pages);
                if (ticks > cpu_ticks_max)
                    cpu_ticks_max = ticks;
                uint64_t rss = pages * (uint64_t)page;
                if (rss > peak_rss)
                    peak_rss = rss;
                if (wall)
                    killed = SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_WALL_TIMEOUT;
                else if (cpu_ticks_max * 1000 / (uint64_t)tck >= l->cpu_time_ms)
                    killed = SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_CPU_TIMEOUT;
                else if (rss > l->memory_bytes)
                    killed = SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_MEMORY_LIMIT;
            }
            if (killed) {
                t_kill = now;
                kill(bw, SIGKILL);
            } /* --die-with-parent takes the pid namespace down */
        }
        if (reaped) {
            if (so.fd < 0 && se.fd < 0 && st_fd < 0)
                break;
            if (now - t_end > DRAIN_MS * 1000)
                break;
        }
    }
    close_fd(&in_fd);
    close_fd(&st_fd);
    if (!reaped && bw > 0) {
        /* only after an internal error: never leave a jail behind */
        kill(bw, SIGKILL);
        waitpid(bw, &bw_status, 0);
        t_end = clock_mono_us();
        reaped = true;
    }
    bw = -1;
    if (rc < 0)
        goto out;

    struct agent_status done = {0};
    bool got_started = false, got_done = false;
    for (size_t off = 0; off + sizeof(struct agent_status) <= stlen;
         off += sizeof(struct agent_status)) {
        struct agent_status st;
        memcpy(&st, stbuf + off, sizeof st);
        if (st.magic != AGENT_STATUS_MAGIC)
            break;
        st.msg[sizeof st.msg - 1] = 0;
        if (st.kind == AGENT_STATUS_STARTED) {
            got_started = true;
        } else if (!got_done) {
            done = st;
            got_done = true;
        }
    }
    if (got_done && done.kind == AGENT_STATUS_FAILED) {
        errno = done.sys_errno;
        if (done.sys_errno)
            rc = se_err_errno(err, SE_INTERNAL, "jail setup failed: %s", done.msg);
        else
            rc = se_err_set(err, SE_INTERNAL, "jail setup failed: %s", done.msg);
        goto out;
    }
    if (!got_started && !killed) {
        /* bwrap itself failed before our helper ran: say why, fail closed. */
        char why[200];
        size_t m = se.buf.len < sizeof why - 1 ? se.buf.len : sizeof why - 1;
        memcpy(why, se.buf.data ? (const char *)se.buf.data : "", m);
        why[m] = 0;
        for (char *p = why; *p; p++)
            if (*p == '\n' || (unsigned char)*p < 0x20)
                *p = ' ';
        rc = se_err_set(err, SE_UNAVAILABLE, "bwrap failed (status %d): %s", bw_status, why);
        goto out;
    }

    if (killed) {
        out->reason = (Safeeval__V1__ExitReason)killed;
        set_signal(out, SIGKILL);
    } else if (got_done) {
        int ws = done.wait_status;
        if (WIFEXITED(ws)) {
            out->reason = SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_EXITED;
            out->exit_code = WEXITSTATUS(ws);
        } else if (WIFSIGNALED(ws)) {
            int sig = WTERMSIG(ws);
            out->reason = sig == SIGXCPU   ? SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_CPU_TIMEOUT
                          : sig == SIGXFSZ ? SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_FILE_SIZE_LIMIT
                                           : SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_SIGNALED;
            set_signal(out, sig);
        } else {
            out->reason = SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_SIGNALED;
        }
        if ((uint64_t)done.cpu_us > 0)
            out->cpu_time_us = (uint64_t)done.cpu_us;
        if ((uint64_t)done.maxrss_kb * 1024 > peak_rss)
            peak_rss = (uint64_t)done.maxrss_kb * 1024;
    } else {
        /* The helper never reported (the run killed it): report what bwrap
         * saw, honestly, without guessing. */
        out->reason = SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_SIGNALED;
        if (WIFEXITED(bw_status) && WEXITSTATUS(bw_status) > 128)
            set_signal(out, WEXITSTATUS(bw_status) - 128);
        else if (WIFSIGNALED(bw_status))
            set_signal(out, WTERMSIG(bw_status));
        else {
            out->reason = SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_EXITED;
            out->exit_code = WIFEXITED(bw_status) ? WEXITSTATUS(bw_status) : 0;
        }
    }
    uint64_t polled_cpu_us = cpu_ticks_max * 1000000 / (uint64_t)tck;
    if (polled_cpu_us > out->cpu_time_us)
        out->cpu_time_us = polled_cpu_us;
    /* A killed run ended when we killed it; the namespace teardown after
     * that is ours, not the run's. */
    out->wall_time_us = (uint64_t)((killed ? t_kill : t_end) - t0);
    out->max_rss_bytes = peak_rss;
    out->stdout_bytes = so.total;
    out->stderr_bytes = se.total;
    out->stdout_truncated = so.total > so.buf.len;
    out->stderr_truncated = se.total > se.buf.len;
    size_t len = 0;
    out->stdout.data = se_buf_steal(&so.buf, &len);
    out->stdout.len = out->stdout.data ? len : 0;
    len = 0;
    out->stderr.data = se_buf_steal(&se.buf, &len);
    out->stderr.len = out->stderr.data ? len : 0;
    rc = 0;

out:
    if (bw > 0) {
        kill(bw, SIGKILL);
        waitpid(bw, NULL, 0);
    }
    int *all[] = {&in_p[0],  &in_p[1], &out_p[0], &out_p[1], &err_p[0],
                  &err_p[1], &st_p[0], &st_p[1],  &ex_p[0],  &ex_p[1]};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        close_fd(all[i]);
    close_fd(&so.fd);
    close_fd(&se.fd);
    fdlist_close(&fds);
    argv_free(&a);
    se_buf_free(&so.buf);
    se_buf_free(&se.buf);
    if (rc < 0)
        safeeval__v1__exec_result__init(out);
    return rc;
}
