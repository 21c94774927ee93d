/* One run, from the agent's side of the jail. The worker container holds
 * only this run, so its cgroup is the run's meter: CPU is the cgroup's CPU
 * minus the agent's own, checked on a 5 ms tick; memory is fenced by the
 * kernel (the container's limit is the run's memory, the OOM killer acts)
 * and MEMORY_LIMIT is reported exactly when the cgroup's oom_kill counter
 * rose; wall time is the agent's timer. Nothing in the jail can see or
 * signal the agent. The result comes from the jail's pid 1 (the command's
 * exact wait status) and from the counters; it is handed over only after
 * the whole jail is gone and the worker is back at its idle baseline.
 *
 * Phases: RUNNING (the command runs; limits enforced), ENDING (the command
 * ended or was killed: everything of the jail is killed and reaped, output
 * drained, the cgroup checked), DONE (the response is ready). */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"
#include "util/clock.h"

#define TICK_MS 5
/* While ending: how often the jail's remains are looked at again (often at
 * first: the Done waits for it; then less, for a worker that is slow to
 * let go), and how long the worker may take to be back at its baseline
 * before it is reported unclean (the daemon then replaces it). */
#define END_TICK_MS 1
#define END_SLOW_AFTER_MS 50
#define END_SLOW_TICK_MS 10
#define END_MAX_MS 2000
/* Anon+shmem above the idle baseline that still counts as idle: the
 * kernel's per-cpu stat batching, the agent's own small heap. */
#define MEM_SLACK (2ull * 1024 * 1024)
/* A read shorter than this waits for the next tick before the pipe is read
 * again: a run printing line by line wakes the agent 200 times a second,
 * not once per line (the agent's CPU is in the container's CPU quota too). */
#define BATCH 16384
#define BW_MSG_MAX 200

/* PH_PREPARED: a prepared jail no run has been delivered to (agent.h). */
enum phase { PH_RUNNING, PH_ENDING, PH_DONE, PH_PREPARED };

struct stream {
    int fd;
    uint64_t total, sent;
    bool wait_tick;
};

struct agent_run {
    uint64_t id;
    const agent_run_env *env;
    uint32_t wall_ms, cpu_ms;
    uint64_t max_output;
    enum phase phase;

    pid_t bw;
    int bw_status;
    bool bw_reaped;
    int st_fd;
    uint8_t stbuf[sizeof(struct agent_status) * 4];
    size_t stlen;
    bool started;
    bool have_final; /* a DONE or FAILED record */
    struct agent_status final;
    struct stream out[2];
    int col_fd;                  /* the jail's files-back pipe; -1 = none (or read to its end) */
    agent_collect_rd *col;       /* its reader, when the run collects */
    char bw_msg[BW_MSG_MAX + 1]; /* bwrap's stderr when it failed before the helper ran */
    size_t bw_msg_len;

    int64_t t0, t_end, t_ending, next_tick;
    int killed; /* the ExitReason the agent killed for; 0 = none */
    bool cancelled;
    bool oom;
    bool counters_lost;

    agent_cg_sample s0, s_last;
    int64_t self_cpu0_ns;
    uint64_t zygote_cpu0_ns;
    struct rusage ru0;
    uint64_t peak_mem, cpu_ns;

    bool verified, clean;
    uint64_t idle_memory;
    char error[AGENT_ERROR_MAX];

    Safeeval__Agent__V1__RunResponse resp;
    agent_result res;

    /* A prepared jail: what it was made for, the delivery pipe's write end,
     * the jail's stdin memfd (sealed at the delivery), and the CPU the
     * preparation used (never the run's). */
    bool prep_failed;
    agent_prep_key key;
    int dl_fd, stdin_fd;
    size_t dl_cap;
    agent_cg_sample prep_s0;
    int64_t prep_self0_ns;
    uint64_t prep_cpu_ns;
};

static int64_t
self_cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) < 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* The run's CPU so far: the cgroup's minus the agent's own. */
static uint64_t
run_cpu_ns(const agent_run *r, const agent_cg_sample *s)
{
    uint64_t cg = s->cpu_ns > r->s0.cpu_ns ? s->cpu_ns - r->s0.cpu_ns : 0;
    int64_t self = self_cpu_ns() - r->self_cpu0_ns;
    if (self > 0)
        cg = cg > (uint64_t)self ? cg - (uint64_t)self : 0;
    if (r->env->zygote) {
        /* The zygote shares the cgroup: its fork for this run is not the
         * run's CPU. */
        uint64_t z = agent_zygote_cpu_ns();
        z = z > r->zygote_cpu0_ns ? z - r->zygote_cpu0_ns : 0;
        cg = cg > z ? cg - z : 0;
    }
    return cg;
}

/* Takes one reading; false when the counters can no longer be read (the
 * run is then killed: it would run unmetered). */
static bool
sample(agent_run *r)
{
    agent_cg_sample s;
    if (agent_cgroup_sample(r->env->cg, &s) < 0) {
        if (!r->counters_lost)
            snprintf(r->error, sizeof(r->error), "cgroup counters unreadable during the run: %s",
                     strerror(errno));
        r->counters_lost = true;
        return false;
    }
    r->s_last = s;
    if (s.memory > r->env->mem_baseline && s.memory - r->env->mem_baseline > r->peak_mem)
        r->peak_mem = s.memory - r->env->mem_baseline;
    uint64_t cpu = run_cpu_ns(r, &s);
    if (cpu > r->cpu_ns)
        r->cpu_ns = cpu;
    if (s.oom_kills > r->s0.oom_kills)
        r->oom = true;
    return true;
}

static void
begin_end(agent_run *r, int64_t now)
{
    if (r->phase != PH_RUNNING)
        return;
    r->phase = PH_ENDING;
    if (!r->killed && !r->cancelled)
        r->t_end = now;
    r->t_ending = now;
    r->out[0].wait_tick = r->out[1].wait_tick = false;
    if (r->bw > 0 && !r->bw_reaped)
        kill(r->bw, SIGKILL);
    agent_sweep();
}

static void
kill_for(agent_run *r, int reason, int64_t now)
{
    if (r->phase != PH_RUNNING)
        return;
    if (!r->killed && !r->cancelled) {
        r->killed = reason;
        r->t_end = now;
    }
    begin_end(r, now);
}

/* ---- the helper's status records ---- */

static void
status_read(agent_run *r)
{
    while (r->st_fd >= 0) {
        if (r->stlen == sizeof(r->stbuf)) {
            close_fd(&r->st_fd); /* more records than the helper ever sends */
            break;
        }
        ssize_t n = read(r->st_fd, r->stbuf + r->stlen, sizeof(r->stbuf) - r->stlen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            close_fd(&r->st_fd);
            break;
        }
        r->stlen += (size_t)n;
    }
    for (size_t off = 0; off + sizeof(struct agent_status) <= r->stlen;
         off += sizeof(struct agent_status)) {
        struct agent_status st;
        memcpy(&st, r->stbuf + off, sizeof(st));
        if (st.magic != AGENT_STATUS_MAGIC)
            break;
        if (st.kind == AGENT_STATUS_STARTED) {
            r->started = true;
        } else if (!r->have_final) {
            st.msg[sizeof(st.msg) - 1] = 0;
            r->final = st;
            r->have_final = true;
        }
    }
}

/* ---- output ---- */

/* Pipes are read once the helper said it started (before that only bwrap
 * writes there), or once the status pipe is closed without that (bwrap
 * failed: what it wrote is the reason). */
static bool
pipes_readable(const agent_run *r)
{
    return r->started || r->st_fd < 0;
}

static void
stream_read(agent_run *r, int i)
{
    static uint8_t buf[AGENT_OUTPUT_CHUNK];
    struct stream *s = &r->out[i];
    if (s->fd < 0 || !r->env->can_output(r->env->ud))
        return;
    ssize_t n;
    do
        n = read(s->fd, buf, sizeof(buf));
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN) {
        s->wait_tick = r->phase == PH_RUNNING;
        return;
    }
    if (n <= 0) {
        close_fd(&s->fd);
        return;
    }
    if (!r->started) {
        size_t room = BW_MSG_MAX - r->bw_msg_len;
        size_t m = (size_t)n < room ? (size_t)n : room;
        memcpy(r->bw_msg + r->bw_msg_len, buf, m);
        r->bw_msg_len += m;
        return;
    }
    s->total += (uint64_t)n;
    uint64_t room = r->max_output > s->sent ? r->max_output - s->sent : 0;
    size_t fwd = (uint64_t)n < room ? (size_t)n : (size_t)room;
    if (fwd) {
        r->env->output(r->env->ud, i + 1, buf, fwd);
        s->sent += fwd;
    }
    if (n < BATCH && r->phase == PH_RUNNING)
        s->wait_tick = true;
}

/* ---- files back ---- */

/* Reads the jail's files-back records and forwards them while the queue
 * has room (else they wait in the pipe, and the jail's pid 1 in write()). */
static void
collect_read(agent_run *r)
{
    agent_collect_rd *rd = r->col;
    while (r->col_fd >= 0 || rd->len) {
        agent_collect_piece pc;
        int k = 0;
        while (r->env->can_output(r->env->ud) && (k = agent_collect_next(rd, &pc)) == 1) {
            if (pc.path || pc.data)
                r->env->file(r->env->ud, pc.path, pc.size, pc.data, pc.len);
            agent_collect_consume(rd, pc.consumed);
        }
        if (k < 0) {
            if (!r->error[0])
                snprintf(r->error, sizeof(r->error),
                         "collect: the jail's records broke a rule (%s)", rd->why);
            close_fd(&r->col_fd);
            rd->len = 0;
            return;
        }
        if (!r->env->can_output(r->env->ud) || r->col_fd < 0)
            return;
        if (rd->len == sizeof(rd->buf))
            return; /* cannot happen: a whole record always fits */
        ssize_t n;
        do
            n = read(r->col_fd, rd->buf + rd->len, sizeof(rd->buf) - rd->len);
        while (n < 0 && errno == EINTR);
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            close_fd(&r->col_fd);
            /* A record cut by the end (the jail was killed) is dropped. */
            rd->len = 0;
            return;
        }
        rd->len += (size_t)n;
    }
}

/* ---- start ---- */

static int
pipe_cloexec(int p[2], bool nonblock_read)
{
    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    return nonblock_read ? fcntl(p[0], F_SETFL, O_NONBLOCK) : 0;
}

/* What the child that becomes bwrap needs (clone's argument). */
struct bwrap_args {
    const agent_jail *j;
    int out_w, err_w, st_w, extra_fd, bpf_fd, ex_w;
    pid_t parent;
};

/* In the child: becomes bwrap. Never returns. It shares the agent's memory
 * (CLONE_VM | CLONE_VFORK: the agent waits until the exec), so it writes
 * nothing but its own stack and errno; its fds, signal handlers and mask
 * are its own, as after a fork. */
static int
exec_bwrap(void *p)
{
    const struct bwrap_args *b = p;
    const agent_jail *j = b->j;
    int out_w = b->out_w, err_w = b->err_w, st_w = b->st_w, extra_fd = b->extra_fd,
        bpf_fd = b->bpf_fd, ex_w = b->ex_w;
    pid_t parent = b->parent;
    /* If the agent dies, so does bwrap, and with it the whole jail. */
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid() != parent)
        _exit(127);
    if (dup2(j->stdin_fd, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0)
        goto fail;
    for (size_t i = 0; i < j->n_in; i++)
        if (fcntl(j->in_fds[i], F_SETFD, 0) < 0)
            goto fail;
    if (fcntl(st_w, F_SETFD, 0) < 0 || fcntl(bpf_fd, F_SETFD, 0) < 0 ||
        (extra_fd >= 0 && fcntl(extra_fd, F_SETFD, 0) < 0))
        goto fail;
    /* The whole jail, bwrap's monitor included, goes before the agent or
     * the engine's init when the container runs out of memory. The jail's
     * pid 1 sets it again for itself. */
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "1000", 4) != 4)
        goto fail;
    close(fd);
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* bwrap gets none of the container's environment; the run's comes
     * from --setenv. */
    static char *const bwrap_env[] = {NULL};
    execve(AGENT_BWRAP, j->argv, bwrap_env);
fail:;
    int e = errno;
    if (write(ex_w, &e, sizeof(e)) < 0) {
        /* the parent sees EOF without data and still reports failure */
    }
    _exit(127);
}

static agent_run *
run_alloc(const agent_run_env *env)
{
    agent_run *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->env = env;
    r->bw = -1;
    r->st_fd = r->out[0].fd = r->out[1].fd = r->col_fd = r->dl_fd = r->stdin_fd = -1;
    return r;
}

static int
self_path(char *buf, size_t cap, se_err *err)
{
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    if (n <= 0)
        return se_err_errno(err, SE_INTERNAL, "readlink /proc/self/exe");
    buf[n] = 0;
    return 0;
}

/* The stack of the child that becomes bwrap: one serves, the agent is
 * stopped while the child runs on it. */
static char bwrap_stack[64 * 1024] __attribute__((aligned(16)));

/* Starts bwrap with the jail j, built for the status pipe st_p (and extra_fd
 * when >= 0, also left open for bwrap): sets r's pid and pipes. */
static int
launch(agent_run *r, const agent_jail *j, int st_p[2], int extra_fd, se_err *err)
{
    int out_p[2] = {-1, -1}, err_p[2] = {-1, -1}, ex_p[2] = {-1, -1};
    int rc = 0;
    if (pipe_cloexec(out_p, true) < 0 || pipe_cloexec(err_p, true) < 0 ||
        pipe_cloexec(ex_p, false) < 0) {
        rc = se_err_errno(err, SE_INTERNAL, "pipe");
        goto out;
    }
    /* Not a fork: copying the agent's page tables costs milliseconds on a
     * VM, for a child that only execs. */
    struct bwrap_args ba = {j,        out_p[1],       err_p[1], st_p[1],
                            extra_fd, r->env->bpf_fd, ex_p[1],  getpid()};
    r->bw =
        clone(exec_bwrap, bwrap_stack + sizeof(bwrap_stack), CLONE_VM | CLONE_VFORK | SIGCHLD, &ba);
    if (r->bw < 0) {
        rc = se_err_errno(err, SE_INTERNAL, "clone");
        goto out;
    }
    close_fd(&out_p[1]);
    close_fd(&err_p[1]);
    close_fd(&st_p[1]);
    close_fd(&ex_p[1]);

    int exec_errno = 0;
    ssize_t en;
    do
        en = read(ex_p[0], &exec_errno, sizeof(exec_errno));
    while (en < 0 && errno == EINTR);
    if (en > 0) {
        int ws;
        while (waitpid(r->bw, &ws, 0) < 0 && errno == EINTR) {
        }
        r->bw = -1;
        errno = exec_errno;
        rc = se_err_errno(err, SE_UNAVAILABLE, "cannot start %s", AGENT_BWRAP);
        goto out;
    }
    r->out[0].fd = out_p[0];
    r->out[1].fd = err_p[0];
    r->st_fd = st_p[0];
    out_p[0] = err_p[0] = st_p[0] = -1;
out:;
    int *all[] = {&out_p[0], &out_p[1], &err_p[0], &err_p[1], &ex_p[0], &ex_p[1]};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        close_fd(all[i]);
    return rc;
}

/* A fork of the worker's zygote (zygote.c) instead of a new jail: the same
 * pipes, the same status records, the same end. *msg is freed once the
 * zygote has the run's input. */
static int
start_in_zygote(agent_run *r, agent_msg **msg, int st_p[2], se_err *err)
{
    int out_p[2] = {-1, -1}, err_p[2] = {-1, -1};
    int rc = 0;
    if (pipe_cloexec(out_p, true) < 0 || pipe_cloexec(err_p, true) < 0) {
        rc = se_err_errno(err, SE_INTERNAL, "pipe");
        goto out;
    }
    /* The run's processes finish their set-up before its baselines. */
    if (agent_zygote_await(err) < 0) {
        rc = -SE_UNAVAILABLE;
        goto out;
    }
    if (agent_cgroup_sample(r->env->cg, &r->s0) < 0) {
        rc = se_err_errno(err, SE_UNAVAILABLE, "cgroup counters unreadable");
        goto out;
    }
    r->s_last = r->s0;
    r->self_cpu0_ns = self_cpu_ns();
    r->zygote_cpu0_ns = agent_zygote_cpu_ns();
    getrusage(RUSAGE_CHILDREN, &r->ru0);
    r->t0 = clock_mono_us();
    rc = agent_zygote_spawn((*msg)->run, out_p[1], err_p[1], st_p[1], err);
    if (rc < 0)
        goto out;
    safeeval__agent__v1__request__free_unpacked(*msg, NULL);
    *msg = NULL;
    malloc_trim(0);
    r->out[0].fd = out_p[0];
    r->out[1].fd = err_p[0];
    r->st_fd = st_p[0];
    out_p[0] = err_p[0] = st_p[0] = -1;
out:;
    int *all[] = {&out_p[0], &out_p[1], &err_p[0], &err_p[1], &st_p[1]};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        close_fd(all[i]);
    return rc;
}

int
agent_run_start(agent_run **out, agent_msg *msg, const agent_run_env *env, se_err *err)
{
    *out = NULL;
    agent_jail j = {.stdin_fd = -1};
    int st_p[2] = {-1, -1}, col_p[2] = {-1, -1};
    int rc = 0;
    agent_run *r = run_alloc(env);
    if (!r) {
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto out;
    }
    const agent_request *req = msg->run;
    r->id = msg->id;
    r->wall_ms = req->limits->wall_time_ms;
    r->cpu_ms = req->limits->cpu_time_ms;
    r->max_output = req->limits->max_output_bytes;
    if (env->cg->version == AGENT_CG_NONE) {
        rc = se_err_set(err, SE_UNAVAILABLE, "the worker's cgroup counters are unreadable (%s)",
                        env->cg->why);
        goto out;
    }

    char self[512];
    if ((rc = self_path(self, sizeof(self), err)) < 0)
        goto out;
    if (pipe_cloexec(st_p, true) < 0 || (req->n_collect && pipe_cloexec(col_p, true) < 0)) {
        rc = se_err_errno(err, SE_INTERNAL, "pipe");
        goto out;
    }
    if (env->zygote) {
        /* Files are gathered by the fresh jail's pid 1; a zygote run has no
         * such process (the daemon refuses collect for it first). */
        if (req->n_collect) {
            rc = se_err_set(err, SE_INVALID, "collect: not available with the zygote runner");
            goto out;
        }
        rc = start_in_zygote(r, &msg, st_p, err);
        if (rc < 0)
            goto out;
        goto ready;
    }
    if (env->bpf_fd < 0) {
        rc = se_err_set(err, SE_UNAVAILABLE,
                        "no seccomp program for the jail (see the agent's log)");
        goto out;
    }
    if (req->n_collect) {
        r->col = malloc(sizeof(*r->col));
        if (!r->col) {
            rc = se_err_set(err, SE_INTERNAL, "out of memory");
            goto out;
        }
        agent_collect_rd_init(r->col, req->limits->max_collect_files,
                              req->limits->max_collect_bytes);
    }
    rc = agent_jail_build(&j, req, self, st_p[1], col_p[1], env->bpf_fd, err);
    if (rc < 0)
        goto out;
    /* The request's bytes now live in the memfds: give them back. */
    safeeval__agent__v1__request__free_unpacked(msg, NULL);
    msg = NULL;
    malloc_trim(0);

    if (agent_cgroup_sample(env->cg, &r->s0) < 0) {
        rc = se_err_errno(err, SE_UNAVAILABLE, "cgroup counters unreadable");
        goto out;
    }
    r->s_last = r->s0;
    r->self_cpu0_ns = self_cpu_ns();
    getrusage(RUSAGE_CHILDREN, &r->ru0);
    r->t0 = clock_mono_us();
    rc = launch(r, &j, st_p, col_p[1], err);
    if (rc < 0)
        goto out;
    r->col_fd = col_p[0];
    col_p[0] = -1;
ready:
    r->phase = PH_RUNNING;
    r->next_tick = r->t0 + TICK_MS * 1000;
    *out = r;
    r = NULL;
out:
    if (msg)
        safeeval__agent__v1__request__free_unpacked(msg, NULL);
    /* bwrap holds its own copies of the memfds until it has copied them
     * into the jail; the agent's go now. */
    agent_jail_free(&j);
    int *all[] = {&st_p[0], &st_p[1], &col_p[0], &col_p[1]};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        close_fd(all[i]);
    if (r)
        agent_run_free(r);
    malloc_trim(0);
    return rc;
}

/* ---- prepared jails ---- */

void
agent_prep_key_free(agent_prep_key *k)
{
    free(k->filename);
    memset(k, 0, sizeof(*k));
}

int
agent_prep_key_set(agent_prep_key *k, const agent_request *req)
{
    char *name = strdup(req->filename);
    if (!name)
        return -1;
    agent_prep_key_free(k);
    const Safeeval__V1__Limits *l = req->limits;
    *k = (agent_prep_key){
        .memory_bytes = l->memory_bytes,
        .max_file_bytes = l->max_file_bytes,
        .cpu_time_ms = l->cpu_time_ms,
        .max_processes = l->max_processes,
        .filename = name,
    };
    return 0;
}

bool
agent_prep_usable(const agent_request *req)
{
    size_t n = strlen(req->filename);
    return req->n_args == 0 && req->n_env == 0 && req->n_collect == 0 &&
           !(n >= 4 && strcmp(req->filename + n - 4, ".pyc") == 0);
}

int
agent_run_prepare(agent_run **out, const agent_prep_key *k, const agent_run_env *env, se_err *err)
{
    *out = NULL;
    agent_jail j = {.stdin_fd = -1};
    int st_p[2] = {-1, -1}, dl_p[2] = {-1, -1};
    int rc = 0;
    agent_run *r = run_alloc(env);
    if (r) {
        r->key = *k;
        r->key.filename = strdup(k->filename);
    }
    if (!r || !r->key.filename) {
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto out;
    }
    if (env->cg->version == AGENT_CG_NONE) {
        rc = se_err_set(err, SE_UNAVAILABLE, "the worker's cgroup counters are unreadable");
        goto out;
    }
    if (env->zygote) {
        rc = se_err_set(err, SE_INTERNAL, "a zygote worker's runs are forks of the zygote");
        goto out;
    }
    if (env->bpf_fd < 0) {
        rc = se_err_set(err, SE_UNAVAILABLE, "no seccomp program for the jail");
        goto out;
    }
    char self[512];
    if ((rc = self_path(self, sizeof(self), err)) < 0)
        goto out;
    /* A delivery is one write that fits the delivery pipe (agent.h): the
     * agent never waits for the jail. */
    if (pipe_cloexec(st_p, true) < 0 || pipe_cloexec(dl_p, false) < 0) {
        rc = se_err_errno(err, SE_INTERNAL, "pipe");
        goto out;
    }
    int cap = fcntl(dl_p[1], F_GETPIPE_SZ);
    if (cap < 0 || fcntl(dl_p[1], F_SETFL, O_NONBLOCK) < 0) {
        rc = se_err_errno(err, SE_UNAVAILABLE, "delivery pipe");
        goto out;
    }
    r->dl_cap = (size_t)cap;
    rc = agent_jail_build_prepared(&j, &r->key, self, st_p[1], dl_p[0], env->bpf_fd, err);
    if (rc < 0)
        goto out;
    /* The jail's stdin: empty and unsealed until the delivery, when the
     * agent writes and seals it before any code of the run exists. */
    j.stdin_fd = memfd_create("safeeval-in", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (j.stdin_fd < 0) {
        rc = se_err_errno(err, SE_INTERNAL, "memfd_create");
        goto out;
    }
    if (agent_cgroup_sample(env->cg, &r->prep_s0) < 0) {
        rc = se_err_errno(err, SE_UNAVAILABLE, "cgroup counters unreadable");
        goto out;
    }
    r->prep_self0_ns = self_cpu_ns();
    rc = launch(r, &j, st_p, dl_p[0], err);
    if (rc < 0)
        goto out;
    r->stdin_fd = j.stdin_fd;
    j.stdin_fd = -1;
    r->dl_fd = dl_p[1];
    dl_p[1] = -1;
    r->phase = PH_PREPARED;
    *out = r;
    r = NULL;
out:
    agent_jail_free(&j);
    int *all[] = {&st_p[0], &st_p[1], &dl_p[0], &dl_p[1]};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        close_fd(all[i]);
    if (r)
        agent_run_free(r);
    return rc;
}

/* Python reads a script with a coding declaration other than UTF-8 through
 * a seek, which a FIFO cannot do: such a script (the declaration is in its
 * first two lines) goes to a jail made on demand. */
static bool
maybe_coding_line(const ProtobufCBinaryData *script)
{
    size_t end = 0;
    for (int line = 0; line < 2 && end < script->len; line++) {
        const uint8_t *nl = memchr(script->data + end, '\n', script->len - end);
        end = nl ? (size_t)(nl - script->data) + 1 : script->len;
    }
    static const char word[] = "coding";
    return memmem(script->data, end, word, sizeof(word) - 1) != NULL;
}

/* True when r can take req exactly as a jail made on demand would run it;
 * *out is then the delivery's body length. */
static bool
deliverable(const agent_run *r, const agent_request *req, size_t *out)
{
    const agent_prep_key *k = &r->key;
    const Safeeval__V1__Limits *l = req->limits;
    if (l->memory_bytes != k->memory_bytes || l->max_file_bytes != k->max_file_bytes ||
        l->cpu_time_ms != k->cpu_time_ms || l->max_processes != k->max_processes ||
        strcmp(req->filename, k->filename) != 0 || !agent_prep_usable(req))
        return false;
    if (maybe_coding_line(&req->script))
        return false;
    /* The helper writes the files under its RLIMIT_FSIZE (bwrap does not). */
    uint64_t input = req->script.len + 4096, body = req->script.len;
    if (req->script.len > l->max_file_bytes)
        return false;
    for (size_t i = 0; i < req->n_files; i++) {
        const Safeeval__V1__File *f = req->files[i];
        if (f->content.len > l->max_file_bytes)
            return false;
        input += f->content.len + 4096;
        body += sizeof(uint32_t) + sizeof(uint64_t) + strlen(f->path) + f->content.len;
    }
    if (input > AGENT_WORK_SPARE || sizeof(struct agent_delivery_hdr) + body > r->dl_cap ||
        body > AGENT_DELIVERY_MAX)
        return false;
    *out = (size_t)body;
    return true;
}

static void
put(uint8_t **p, const void *data, size_t len)
{
    if (len)
        memcpy(*p, data, len);
    *p += len;
}

int
agent_run_deliver(agent_run *r, agent_msg *msg)
{
    if (r->phase != PH_PREPARED || r->prep_failed)
        return 0;
    const agent_request *req = msg->run;
    size_t body;
    if (!deliverable(r, req, &body))
        return 0;
    uint8_t *buf = malloc(sizeof(struct agent_delivery_hdr) + body);
    if (!buf)
        return 0;
    struct agent_delivery_hdr h = {
        .magic = AGENT_DELIVERY_MAGIC,
        .n_files = (uint32_t)req->n_files,
        .body_len = body,
    };
    uint8_t *p = buf;
    put(&p, &h, sizeof(h));
    for (size_t i = 0; i < req->n_files; i++) {
        const Safeeval__V1__File *f = req->files[i];
        uint32_t plen = (uint32_t)strlen(f->path);
        uint64_t clen = f->content.len;
        put(&p, &plen, sizeof(plen));
        put(&p, &clen, sizeof(clen));
        put(&p, f->path, plen);
        put(&p, f->content.data, f->content.len);
    }
    put(&p, req->script.data, req->script.len);
    size_t wlen = (size_t)(p - buf);
    int rc = 0;

    /* stdin first, sealed as a jail made on demand has it: nothing of the
     * run exists before the delivery below. */
    size_t off = 0;
    while (off < req->stdin.len) {
        ssize_t w = pwrite(r->stdin_fd, req->stdin.data + off, req->stdin.len - off, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            goto out;
        off += (size_t)w;
    }
    if (fcntl(r->stdin_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) <
        0)
        goto out;
    agent_cg_sample s;
    if (agent_cgroup_sample(r->env->cg, &s) < 0)
        goto out;
    int64_t self = self_cpu_ns();
    /* One write of at most the pipe's capacity into an empty pipe: whole, or
     * nothing the helper would act on (it waits for all of it). */
    ssize_t w;
    do
        w = write(r->dl_fd, buf, wlen);
    while (w < 0 && errno == EINTR);
    if (w != (ssize_t)wlen)
        goto out;
    rc = 1;
    close_fd(&r->dl_fd);
    close_fd(&r->stdin_fd);

    /* The run starts now: what the preparation used is not its own. */
    uint64_t cg = s.cpu_ns > r->prep_s0.cpu_ns ? s.cpu_ns - r->prep_s0.cpu_ns : 0;
    uint64_t own = self > r->prep_self0_ns ? (uint64_t)(self - r->prep_self0_ns) : 0;
    r->prep_cpu_ns = cg > own ? cg - own : 0;
    r->id = msg->id;
    r->wall_ms = req->limits->wall_time_ms;
    r->cpu_ms = req->limits->cpu_time_ms;
    r->max_output = req->limits->max_output_bytes;
    r->s0 = s;
    r->s_last = s;
    r->self_cpu0_ns = self;
    getrusage(RUSAGE_CHILDREN, &r->ru0);
    r->t0 = clock_mono_us();
    r->phase = PH_RUNNING;
    r->next_tick = r->t0 + TICK_MS * 1000;
    safeeval__agent__v1__request__free_unpacked(msg, NULL);
out:
    free(buf);
    if (rc)
        malloc_trim(0);
    return rc;
}

bool
agent_run_is_prepared(const agent_run *r)
{
    return r->phase == PH_PREPARED;
}

bool
agent_run_prep_failed(const agent_run *r)
{
    return r->phase == PH_PREPARED && r->prep_failed;
}

/* ---- the loop's side ---- */

int
agent_run_pollfds(agent_run *r, struct pollfd *pf, int max)
{
    int n = 0;
    if (r->phase == PH_DONE || (r->phase == PH_PREPARED && r->prep_failed))
        return 0;
    if (r->st_fd >= 0 && n < max)
        pf[n++] = (struct pollfd){.fd = r->st_fd, .events = POLLIN};
    /* A prepared jail's output is the run's: it waits for the delivery. */
    if (r->phase != PH_PREPARED && pipes_readable(r) && r->env->can_output(r->env->ud)) {
        for (int i = 0; i < 2 && n < max; i++)
            if (r->out[i].fd >= 0 && !r->out[i].wait_tick)
                pf[n++] = (struct pollfd){.fd = r->out[i].fd, .events = POLLIN};
        if (r->col_fd >= 0 && n < max)
            pf[n++] = (struct pollfd){.fd = r->col_fd, .events = POLLIN};
    }
    return n;
}

int
agent_run_timeout(const agent_run *r)
{
    if (r->phase == PH_DONE || r->phase == PH_PREPARED)
        return -1;
    int64_t now = clock_mono_us();
    if (r->phase == PH_ENDING)
        return now - r->t_ending < END_SLOW_AFTER_MS * 1000 ? END_TICK_MS : END_SLOW_TICK_MS;
    int64_t until = r->next_tick;
    int64_t wall = r->t0 + (int64_t)r->wall_ms * 1000;
    if (wall < until)
        until = wall;
    int64_t ms = (until - now + 999) / 1000;
    return ms < 0 ? 0 : (int)ms;
}

/* The jail is gone (no process but init and the agent), its tasks are
 * released and its memory is back near the idle baseline. */
static bool
worker_idle(agent_run *r)
{
    if (r->bw > 0 && !r->bw_reaped) /* a zygote's run has no bwrap of its own */
        return false;
    if (agent_sweep() != 0)
        return false;
    agent_cg_sample s;
    if (agent_cgroup_sample(r->env->cg, &s) < 0)
        return false;
    r->s_last = s;
    if (s.pids > r->env->pids_baseline)
        return false;
    if (s.memory > r->env->mem_baseline + MEM_SLACK)
        return false;
    r->idle_memory = s.memory;
    return true;
}

static void finish(agent_run *r);

void
agent_run_step(agent_run *r)
{
    if (r->phase == PH_DONE)
        return;
    status_read(r);
    if (r->phase == PH_PREPARED) {
        /* Before a delivery only a failure can come: the jail is useless. */
        agent_reap(r->bw, &r->bw_status, &r->bw_reaped);
        if (r->have_final || r->st_fd < 0 || r->bw_reaped)
            r->prep_failed = true;
        return;
    }
    int64_t now = clock_mono_us();
    bool tick = now >= r->next_tick;
    if (tick) {
        r->next_tick = now + TICK_MS * 1000;
        r->out[0].wait_tick = r->out[1].wait_tick = false;
    }
    if (pipes_readable(r)) {
        for (int i = 0; i < 2; i++)
            if (!r->out[i].wait_tick)
                stream_read(r, i);
        if (r->col)
            collect_read(r);
    }
    agent_reap(r->bw, &r->bw_status, &r->bw_reaped);

    if (r->phase == PH_RUNNING) {
        /* The command's end (or the helper's, or bwrap's) ends the run at
         * once: nothing it left behind gets more time. */
        if (r->have_final || r->st_fd < 0 || r->bw_reaped) {
            sample(r);
            begin_end(r, now);
        } else if (tick || now >= r->t0 + (int64_t)r->wall_ms * 1000) {
            if (!sample(r))
                kill_for(r, SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_SIGNALED, now);
            else if (r->oom)
                kill_for(r, SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_MEMORY_LIMIT, now);
            else if (r->cpu_ns >= (uint64_t)r->cpu_ms * 1000000)
                kill_for(r, SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_CPU_TIMEOUT, now);
            else if (now >= r->t0 + (int64_t)r->wall_ms * 1000)
                kill_for(r, SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_WALL_TIMEOUT, now);
        }
    }
    if (r->phase != PH_ENDING)
        return;
    if (!r->bw_reaped && r->bw > 0)
        kill(r->bw, SIGKILL);
    if (!r->verified && worker_idle(r))
        r->verified = r->clean = true;
    bool late = now - r->t_ending > (int64_t)END_MAX_MS * 1000;
    if (!r->verified && late) {
        r->verified = true;
        r->clean = false;
        agent_log("run %llu: the worker is not back at its baseline after %d ms",
                  (unsigned long long)r->id, END_MAX_MS);
    }
    if (!r->verified)
        return;
    /* Every writer is gone once the worker is idle: the pipes end. A
     * worker that is not clean gets no more waiting for them. */
    if (!r->clean) {
        close_fd(&r->out[0].fd);
        close_fd(&r->out[1].fd);
        close_fd(&r->st_fd);
        close_fd(&r->col_fd);
        if (r->col)
            r->col->len = 0;
    }
    if (r->out[0].fd >= 0 || r->out[1].fd >= 0 || r->col_fd >= 0 || (r->col && r->col->len))
        return;
    status_read(r);
    finish(r);
}

void
agent_run_cancel(agent_run *r)
{
    if (r->phase != PH_RUNNING)
        return;
    r->cancelled = true;
    r->t_end = clock_mono_us();
    begin_end(r, r->t_end);
}

/* ---- the result ---- */

static void
set_signal(agent_result *res, int sig)
{
    res->signal = sig;
    res->exit_code = -sig;
}

static uint64_t
tv_us(const struct timeval *tv)
{
    return (uint64_t)tv->tv_sec * 1000000 + (uint64_t)tv->tv_usec;
}

static void
finish(agent_run *r)
{
    safeeval__agent__v1__run_response__init(&r->resp);
    safeeval__v1__exec_result__init(&r->res);
    agent_result *res = &r->res;
    r->phase = PH_DONE;
    r->resp.clean = r->clean;
    r->resp.cancelled = r->cancelled;

    /* The final reading: the jail is gone, so this is all it used. */
    agent_cg_sample s;
    if (agent_cgroup_sample(r->env->cg, &s) == 0) {
        uint64_t cpu = run_cpu_ns(r, &s);
        if (cpu > r->cpu_ns)
            r->cpu_ns = cpu;
        if (s.oom_kills > r->s0.oom_kills)
            r->oom = true;
    }
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    uint64_t ru_us = tv_us(&ru.ru_utime) + tv_us(&ru.ru_stime);
    /* The bwrap it reaped includes a prepared jail's preparation. */
    uint64_t ru0_us = tv_us(&r->ru0.ru_utime) + tv_us(&r->ru0.ru_stime) + r->prep_cpu_ns / 1000;
    uint64_t cpu_us = r->cpu_ns / 1000;
    if (ru_us > ru0_us && ru_us - ru0_us > cpu_us)
        cpu_us = ru_us - ru0_us;

    if (r->counters_lost || (r->col && r->col->bad)) {
        r->resp.error = r->error;
        return;
    }
    if (r->have_final && r->final.kind == AGENT_STATUS_FAILED && !r->killed && !r->cancelled) {
        errno = r->final.sys_errno;
        snprintf(r->error, sizeof(r->error), "jail setup failed: %s%s%s", r->final.msg,
                 r->final.sys_errno ? ": " : "", r->final.sys_errno ? strerror(errno) : "");
        r->resp.error = r->error;
        return;
    }
    if (!r->started && !r->killed && !r->cancelled && !r->oom) {
        /* bwrap failed before the helper ran: say why, fail closed. */
        r->bw_msg[r->bw_msg_len] = 0;
        for (char *p = r->bw_msg; *p; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
                *p = ' ';
        snprintf(r->error, sizeof(r->error), "bwrap failed (status %d): %s", r->bw_status,
                 r->bw_msg);
        r->resp.error = r->error;
        return;
    }

    r->resp.result = res;
    int ws = r->have_final && r->final.kind == AGENT_STATUS_DONE ? r->final.wait_status : -1;
    if (r->killed && r->killed != SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_SIGNALED) {
        res->reason = (Safeeval__V1__ExitReason)r->killed;
        set_signal(res, SIGKILL);
    } else if (r->oom) {
        /* The kernel's OOM killer acted in the run's cgroup: whatever the
         * command's own status, its memory limit was reached. */
        res->reason = SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_MEMORY_LIMIT;
        if (ws >= 0 && WIFEXITED(ws))
            res->exit_code = WEXITSTATUS(ws);
        else if (ws >= 0 && WIFSIGNALED(ws))
            set_signal(res, WTERMSIG(ws));
        else
            set_signal(res, SIGKILL);
    } else if (r->cancelled) {
        res->reason = SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_SIGNALED;
        set_signal(res, SIGKILL);
    } else if (ws >= 0) {
        if (WIFEXITED(ws)) {
            res->reason = SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_EXITED;
            res->exit_code = WEXITSTATUS(ws);
        } else {
            int sig = WIFSIGNALED(ws) ? WTERMSIG(ws) : SIGKILL;
            res->reason = SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_SIGNALED;
            /* Only the kernel can send these two (the jail's filter stops
             * the code): SIGXFSZ for a write past max_file_bytes, SIGXCPU
             * for RLIMIT_CPU, which is a limit only when the CPU measured
             * reached cpu_time_ms (a lowered RLIMIT_CPU is the code's own
             * doing). */
            if (sig == SIGXFSZ)
                res->reason = SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_FILE_SIZE_LIMIT;
            else if (sig == SIGXCPU && cpu_us >= (uint64_t)r->cpu_ms * 1000)
                res->reason = SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_CPU_TIMEOUT;
            set_signal(res, sig);
        }
    } else {
        /* The helper never reported (it was killed, not by us): the
         * command ended with it. */
        res->reason = SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_SIGNALED;
        set_signal(res, SIGKILL);
    }
    if (r->have_final && r->final.kind == AGENT_STATUS_DONE) {
        if ((uint64_t)r->final.cpu_us > cpu_us)
            cpu_us = (uint64_t)r->final.cpu_us;
        if ((uint64_t)r->final.maxrss_kb * 1024 > r->peak_mem)
            r->peak_mem = (uint64_t)r->final.maxrss_kb * 1024;
    }
    int64_t t_end = r->t_end ? r->t_end : r->t_ending;
    res->wall_time_us = t_end > r->t0 ? (uint64_t)(t_end - r->t0) : 0;
    res->cpu_time_us = cpu_us;
    res->max_rss_bytes = r->peak_mem;
    res->stdout_bytes = r->out[0].total;
    res->stderr_bytes = r->out[1].total;
    res->stdout_truncated = r->out[0].total > r->out[0].sent;
    res->stderr_truncated = r->out[1].total > r->out[1].sent;
    /* A walk that did not reach its end (the run was killed, or ended
     * before it could collect) left matching files out, or may have. */
    if (r->col)
        res->files_truncated = r->col->truncated || !r->col->ended;
}

uint64_t
agent_run_id(const agent_run *r)
{
    return r->id;
}

bool
agent_run_finished(const agent_run *r)
{
    return r->phase == PH_DONE;
}

const Safeeval__Agent__V1__RunResponse *
agent_run_response(agent_run *r)
{
    return r->phase == PH_DONE ? &r->resp : NULL;
}

uint64_t
agent_run_idle_memory(const agent_run *r)
{
    return r->clean ? r->idle_memory : 0;
}

void
agent_run_free(agent_run *r)
{
    if (!r)
        return;
    if (r->bw > 0 && !r->bw_reaped) {
        /* Only when the agent goes away mid-run: never leave a jail. */
        kill(r->bw, SIGKILL);
        agent_sweep();
        int ws;
        while (waitpid(r->bw, &ws, 0) < 0 && errno == EINTR) {
        }
    }
    close_fd(&r->st_fd);
    close_fd(&r->out[0].fd);
    close_fd(&r->out[1].fd);
    close_fd(&r->col_fd);
    free(r->col);
    close_fd(&r->dl_fd);
    close_fd(&r->stdin_fd);
    agent_prep_key_free(&r->key);
    free(r);
}
