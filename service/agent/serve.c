/* `safeeval-agent --serve`: the worker container's main process. One poll
 * loop serves the daemon's stream (Request frames on fd 0, Event frames on
 * fd 1, agent.proto) and the run in progress together, so a cancel or a
 * sync is answered while a run goes on, and the run's limits are enforced
 * while the daemon is not reading.
 *
 * The protocol's state is small: the run in progress (at most one) and the
 * Done of the last run until the daemon acks it (re-sent after every sync,
 * because output written while no one was attached is lost). A new run
 * acks the previous Done. A run request while busy is refused by a Done for
 * that request's id. A frame that cannot be a Request is logged and
 * dropped (without an id there is no one to answer); a length over
 * FRAME_MAX means the stream lost its framing, and the agent exits (the
 * daemon replaces the worker). EOF on stdin: the run is killed, exit 0.
 *
 * Between runs the agent keeps one prepared jail (agent.h) for a run like
 * the last one: it is made once that run is over and the worker is back at
 * its idle baseline (so nothing of the run can reach it), taken by the next
 * run that fits, and killed, its processes gone, before a run that does not
 * fit gets a jail made on demand. */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/wire.h"
#include "util/pbcheck.h"

/* A control request (sync, cancel, ack) is a few bytes: while a run is in
 * progress nothing bigger is kept (a run request then is refused by the id
 * at its start, its bytes read past). */
#define BUSY_KEEP 4096
/* Free memory a request must leave: the agent's own allocations while it
 * builds the jail. */
#define REQUEST_MARGIN (2u * 1024 * 1024)

typedef struct server {
    const char *build_id;
    agent_cgroup cg;
    wire w;
    agent_run *run;
    agent_run *prep;     /* the prepared jail for the next run, or NULL */
    agent_prep_key next; /* what the last run looked like */
    bool next_usable;    /* next describes a run a jail can be prepared for */
    bool prep_due;       /* prepare once the last Done is out */
    agent_run_env env;
    uint64_t mem_baseline, pids_baseline;
    uint64_t zygote_memory; /* what the zygote adds to the idle worker */
    uint64_t kept_id;       /* the Done not yet acked; 0 = none */
    uint8_t kept[WIRE_CONTROL_MAX];
    size_t kept_len;
    int sigfd;
    bool in_ready; /* poll said stdin has something (or has not been asked) */
} server;

void
agent_log(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line))
        n = sizeof(line) - 1;
    char out[sizeof(line) + 32];
    int m = snprintf(out, sizeof(out), "safeeval-agent: %.*s\n", n, line);
    if (write(2, out, (size_t)m) < 0) {
        /* nowhere else to say it */
    }
}

/* ---- events out ---- */

static bool
can_output(void *ud)
{
    server *s = ud;
    return wire_queued(&s->w) < WIRE_OUTPUT_ROOM;
}

static void
on_output(void *ud, int stream, const uint8_t *data, size_t len)
{
    server *s = ud;
    Safeeval__Agent__V1__Output o = SAFEEVAL__AGENT__V1__OUTPUT__INIT;
    o.stream = stream;
    o.data.data = (uint8_t *)data;
    o.data.len = len;
    Safeeval__Agent__V1__Event ev = SAFEEVAL__AGENT__V1__EVENT__INIT;
    ev.id = agent_run_id(s->run);
    ev.ev_case = SAFEEVAL__AGENT__V1__EVENT__EV_OUTPUT;
    ev.output = &o;
    if (wire_put_event(&s->w, &ev) < 0)
        agent_log("output event of %zu bytes does not fit the queue", len); /* a bug */
}

static void
on_file(void *ud, const char *path, uint64_t size, const uint8_t *data, size_t len)
{
    server *s = ud;
    Safeeval__Agent__V1__FileChunk f = SAFEEVAL__AGENT__V1__FILE_CHUNK__INIT;
    if (path) {
        f.path = (char *)path;
        f.size = size;
    }
    f.data.data = (uint8_t *)data;
    f.data.len = len;
    Safeeval__Agent__V1__Event ev = SAFEEVAL__AGENT__V1__EVENT__INIT;
    ev.id = agent_run_id(s->run);
    ev.ev_case = SAFEEVAL__AGENT__V1__EVENT__EV_FILE;
    ev.file = &f;
    if (wire_put_event(&s->w, &ev) < 0)
        agent_log("file event of %zu bytes does not fit the queue", len); /* a bug */
}

static void
send_state(server *s)
{
    Safeeval__Agent__V1__State st = SAFEEVAL__AGENT__V1__STATE__INIT;
    st.build_id = (char *)s->build_id;
    st.running = s->run ? agent_run_id(s->run) : 0;
    st.unacked = s->kept_id;
    st.memory_baseline_bytes = s->mem_baseline;
    st.cgroup = (char *)agent_cgroup_name(&s->cg);
    if (agent_zygote_enabled()) {
        st.zygote_error = (char *)(agent_zygote_ready() ? "" : agent_zygote_error());
        st.zygote_memory_bytes = s->zygote_memory;
    }
    Safeeval__Agent__V1__Event ev = SAFEEVAL__AGENT__V1__EVENT__INIT;
    ev.ev_case = SAFEEVAL__AGENT__V1__EVENT__EV_STATE;
    ev.state = &st;
    if (wire_put_event(&s->w, &ev) < 0)
        agent_log("state event does not fit the queue"); /* a bug */
}

/* Queues the Done of run id; keep = it is the Done to re-send until acked. */
static void
send_done(server *s, uint64_t id, const Safeeval__Agent__V1__RunResponse *resp, bool keep)
{
    Safeeval__Agent__V1__Event ev = SAFEEVAL__AGENT__V1__EVENT__INIT;
    ev.id = id;
    ev.ev_case = SAFEEVAL__AGENT__V1__EVENT__EV_DONE;
    ev.done = (Safeeval__Agent__V1__RunResponse *)resp;
    size_t n = safeeval__agent__v1__event__get_packed_size(&ev);
    uint8_t frame[WIRE_CONTROL_MAX];
    if (FRAME_HDR + n > sizeof(frame)) {
        agent_log("done event of %zu bytes over %d", n, WIRE_CONTROL_MAX); /* a bug */
        return;
    }
    frame_put_header(frame, (uint32_t)n);
    safeeval__agent__v1__event__pack(&ev, frame + FRAME_HDR);
    if (wire_put_raw(&s->w, frame, FRAME_HDR + n) < 0)
        agent_log("done event does not fit the queue"); /* a bug */
    if (keep) {
        memcpy(s->kept, frame, FRAME_HDR + n);
        s->kept_len = FRAME_HDR + n;
        s->kept_id = id;
    }
}

static void __attribute__((format(printf, 4, 5)))
refuse(server *s, uint64_t id, bool keep, const char *fmt, ...)
{
    char msg[AGENT_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    Safeeval__Agent__V1__RunResponse resp = SAFEEVAL__AGENT__V1__RUN_RESPONSE__INIT;
    resp.error = msg;
    resp.clean = true; /* nothing ran */
    send_done(s, id, &resp, keep);
}

/* (Re)starts the zygote and takes the idle worker's baselines with it: the
 * zygote is part of the idle worker, never of a run. */
static void
zygote_up(server *s)
{
    agent_cg_sample before, after;
    agent_zygote_stop();
    agent_sweep();
    bool reaped;
    int st;
    agent_reap(-1, &st, &reaped);
    if (agent_cgroup_sample(&s->cg, &before) < 0)
        before.memory = 0;
    if (agent_zygote_start(s->env.bpf_fd) == 0 && agent_cgroup_sample(&s->cg, &after) == 0) {
        s->mem_baseline = after.memory;
        s->pids_baseline = after.pids;
        s->zygote_memory = after.memory > before.memory ? after.memory - before.memory : 0;
    }
    /* After the baselines: the prepared run is not part of the idle worker. */
    agent_zygote_prepare();
}

/* ---- the prepared jail ---- */

/* Kills the prepared jail and waits until none of its processes is left,
 * so that a jail made on demand after it starts from the idle worker. */
static void
prep_discard(server *s)
{
    if (!s->prep)
        return;
    agent_run_free(s->prep);
    s->prep = NULL;
    for (int i = 0; i < 2000; i++) {
        bool reaped;
        int st;
        agent_reap(-1, &st, &reaped);
        if (agent_sweep() <= 0)
            break;
        usleep(100);
    }
}

/* Prepares the jail for a run like the last one, once that run is over
 * and its worker clean. */
static void
prep_start(server *s)
{
    if (s->prep || s->run || !s->next_usable || s->w.eof || s->cg.version == AGENT_CG_NONE ||
        s->env.zygote)
        return;
    se_err err;
    se_err_clear(&err);
    if (agent_run_prepare(&s->prep, &s->next, &s->env, &err) < 0) {
        s->prep = NULL;
        agent_log("no prepared jail: %s", err.msg);
    }
}

/* ---- requests in ---- */

static void
start_run(server *s, agent_msg *msg)
{
    uint64_t id = msg->id;
    /* A new run acks the previous Done. */
    s->kept_id = 0;
    s->kept_len = 0;
    /* The next prepared jail is made for a run like this one. */
    s->prep_due = false;
    s->next_usable = agent_prep_usable(msg->run) && agent_prep_key_set(&s->next, msg->run) == 0;
    if (s->prep) {
        if (agent_run_deliver(s->prep, msg) == 1) {
            s->run = s->prep;
            s->prep = NULL;
            return;
        }
        prep_discard(s);
    }
    if (s->cg.version == AGENT_CG_NONE) {
        safeeval__agent__v1__request__free_unpacked(msg, NULL);
        refuse(s, id, true, "the worker's cgroup counters are unreadable (%s): runs are refused",
               s->cg.why);
        return;
    }
    if (agent_zygote_enabled() && (!agent_zygote_ready() || agent_zygote_due(true)))
        zygote_up(s); /* its last start failed, or it is too old: a new one, now */
    if (agent_zygote_enabled() && !agent_zygote_ready()) {
        /* Fail closed: a zygote sandbox never falls back to anything else. */
        safeeval__agent__v1__request__free_unpacked(msg, NULL);
        refuse(s, id, true, "no zygote: %s", agent_zygote_error());
        return;
    }
    se_err err;
    se_err_clear(&err);
    if (agent_run_start(&s->run, msg, &s->env, &err) < 0) {
        s->run = NULL;
        refuse(s, id, true, "%s", err.msg);
    }
}

/* Handles the frame the reader holds. */
static void
handle_frame(server *s)
{
    const uint8_t *payload = s->w.rd.payload;
    uint32_t len = s->w.rd.len;
    se_err err;
    se_err_clear(&err);
    int bad = pbcheck_message(&safeeval__agent__v1__request__descriptor, payload, len, &err);
    agent_msg *msg = safeeval__agent__v1__request__unpack(NULL, len, payload);
    if (len > 65536) {
        /* A run's bytes are in msg now: the frame's copy goes before the
         * jail is made, so the worker never holds three copies. */
        frame_reader_free(&s->w.rd);
        malloc_trim(0);
    }
    if (!msg) {
        agent_log("dropped a frame of %" PRIu32 " bytes that is not a Request", len);
        return;
    }
    if (bad == 0 && agent_msg_validate(msg, &err) < 0)
        bad = -1;
    if (bad < 0) {
        /* Only a run can be refused in its own Done; anything else is
         * dropped (the daemon never sends it). */
        if (msg->op_case == SAFEEVAL__AGENT__V1__REQUEST__OP_RUN && msg->id && !s->run &&
            msg->id != s->kept_id)
            refuse(s, msg->id, true, "invalid request: %s", err.msg);
        else
            agent_log("dropped a request: %s", err.msg);
        safeeval__agent__v1__request__free_unpacked(msg, NULL);
        return;
    }
    uint64_t running = s->run ? agent_run_id(s->run) : 0;
    switch (msg->op_case) {
    case SAFEEVAL__AGENT__V1__REQUEST__OP_SYNC:
        send_state(s);
        if (s->kept_id)
            wire_put_raw(&s->w, s->kept, s->kept_len);
        break;
    case SAFEEVAL__AGENT__V1__REQUEST__OP_RUN:
        if (msg->id == running) {
            agent_log("run %" PRIu64 " is already running", msg->id);
        } else if (s->run) {
            refuse(s, msg->id, false, "busy: run %" PRIu64 " is in progress", running);
        } else if (msg->id == s->kept_id) {
            /* Sent again after a lost answer: that run is over. */
            wire_put_raw(&s->w, s->kept, s->kept_len);
        } else {
            start_run(s, msg);
            return; /* msg is the run's now (freed) */
        }
        break;
    case SAFEEVAL__AGENT__V1__REQUEST__OP_CANCEL:
        if (msg->id == running)
            agent_run_cancel(s->run);
        break;
    case SAFEEVAL__AGENT__V1__REQUEST__OP_ACK:
        if (msg->id == s->kept_id) {
            s->kept_id = 0;
            s->kept_len = 0;
        }
        break;
    default:
        break;
    }
    safeeval__agent__v1__request__free_unpacked(msg, NULL);
}

/* The biggest request the agent takes in while idle. A run's bytes are
 * held twice while its jail is made (the frame and its unpacked copy, then
 * that copy and the memfds), all in the worker's memory: a request that
 * cannot fit is read past and refused, so the agent never becomes the OOM
 * killer's choice while no jail exists. */
static uint32_t
idle_keep(const server *s)
{
    uint64_t room = agent_cgroup_room(&s->cg);
    if (s->cg.version == AGENT_CG_NONE)
        return FRAME_MAX; /* the run is refused anyway, after the unpack */
    /* A request too big for the prepared jail has it killed first: what it
     * holds is room too. */
    agent_cg_sample cs;
    if (s->prep && room != UINT64_MAX && agent_cgroup_sample(&s->cg, &cs) == 0 &&
        cs.memory > s->mem_baseline)
        room += cs.memory - s->mem_baseline;
    if (room <= REQUEST_MARGIN)
        return BUSY_KEEP;
    uint64_t keep = (room - REQUEST_MARGIN) / 2;
    if (keep < BUSY_KEEP)
        keep = BUSY_KEEP;
    return keep < FRAME_MAX ? (uint32_t)keep : FRAME_MAX;
}

/* Takes in requests while their answers have room. Returns 0, or an exit
 * code when the stream is over. */
static int
read_requests(server *s)
{
    while (wire_room(&s->w, 3 * WIRE_CONTROL_MAX)) {
        uint32_t keep = BUSY_KEEP;
        if (!s->run && frame_reader_in_header(&s->w.rd))
            keep = idle_keep(s);
        int r = wire_next(&s->w, keep);
        if (r == FRAME_MORE) {
            if (!s->in_ready)
                return 0;
            int f = wire_fill(&s->w, 0);
            if (f < 0) {
                agent_log("read stdin: %s", strerror(errno));
                return 1;
            }
            if (f == 0) {
                s->in_ready = false;
                return 0;
            }
            continue;
        }
        if (r == FRAME_READY) {
            handle_frame(s);
        } else if (r == FRAME_SKIPPED) {
            uint64_t id = 0;
            uint64_t running = s->run ? agent_run_id(s->run) : 0;
            bool has_id = agent_msg_peek_id(&id, s->w.rd.head, s->w.rd.head_len) && id;
            if (has_id && running && id != running)
                refuse(s, id, false, "busy: run %" PRIu64 " is in progress", running);
            else if (has_id && !running)
                refuse(s, id, true,
                       "a request of %" PRIu32 " bytes needs about twice that in free memory "
                       "while its jail is made; the worker has %" PRIu64 " bytes free",
                       s->w.rd.len, agent_cgroup_room(&s->cg));
            else
                agent_log("dropped a request of %" PRIu32 " bytes (no id before its body)",
                          s->w.rd.len);
        } else if (r == FRAME_TOO_BIG) {
            agent_log("request frame of %" PRIu32 " bytes is over %u: the stream is corrupt",
                      s->w.rd.len, FRAME_MAX);
            return 3;
        } else {
            agent_log("out of memory for a request of %" PRIu32 " bytes", s->w.rd.len);
            return 4;
        }
    }
    return 0;
}

/* ---- the loop ---- */

static void
finish_run(server *s)
{
    const Safeeval__Agent__V1__RunResponse *resp = agent_run_response(s->run);
    send_done(s, agent_run_id(s->run), resp, true);
    if (resp->clean) {
        /* The idle reading can only move the baseline down: a leak would
         * otherwise become the next run's allowance. */
        uint64_t idle = agent_run_idle_memory(s->run);
        if (idle && idle < s->mem_baseline)
            s->mem_baseline = idle;
    } else {
        agent_log("run %" PRIu64 ": the worker is not clean", agent_run_id(s->run));
    }
    bool clean = resp->clean;
    agent_run_free(s->run);
    s->run = NULL;
    malloc_trim(0);
    if (agent_zygote_enabled()) {
        /* The Done goes out first: the run is over; a new zygote or the
         * next run's prepared processes are made after it. */
        if (wire_flush(&s->w, 1) < 0)
            agent_log("write stdout: %s", strerror(errno));
        if (agent_zygote_due(clean))
            zygote_up(s);
        else
            agent_zygote_prepare();
    }
    /* A worker that is not clean is replaced: nothing is prepared in it.
     * The preparation waits for the Done to be written: the run's answer
     * never waits for the next run's jail. A zygote worker prepares
     * nothing (its runs are forks of the zygote). */
    s->prep_due = clean && !s->env.zygote;
}

static int
setup(server *s, const char *build_id)
{
    memset(s, 0, sizeof(*s));
    s->build_id = build_id;
    s->sigfd = -1;
    s->env.bpf_fd = -1;
    /* The end of every run kills every process it can see but init and
     * itself: that is only right as the unprivileged main process of a
     * worker container (the engine's init its parent, or itself pid 1),
     * never as root or from a shell on a host. */
    if (geteuid() == 0 || getuid() == 0) {
        agent_log("--serve refuses to run as root");
        return -1;
    }
    if (getpid() != 1 && getppid() != 1) {
        agent_log("--serve runs only as a worker container's main process");
        return -1;
    }
    signal(SIGPIPE, SIG_IGN);
    /* Orphans of a run come to the agent, not the engine's init: it reaps
     * them and knows when the last one is gone. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
        agent_log("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
        return -1;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0 ||
        (s->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
        agent_log("signalfd: %s", strerror(errno));
        return -1;
    }
    /* Big allocations (a request's bytes) always come from mmap and go
     * back on free; the heap never keeps a request's worth. */
    mallopt(M_MMAP_THRESHOLD, 64 * 1024);
    mallopt(M_TRIM_THRESHOLD, 128 * 1024);
    wire_init(&s->w);
    if (wire_nonblock(0) < 0 || wire_nonblock(1) < 0) {
        agent_log("stdin/stdout: %s", strerror(errno));
        return -1;
    }
    /* Before the baseline: the program's page is the idle worker's. */
    char msg[96];
    s->env.bpf_fd = agent_filter_export_sealed(msg, sizeof(msg));
    if (s->env.bpf_fd < 0)
        agent_log("the jail's seccomp program: %s: runs in a fresh jail will be refused", msg);
    agent_cgroup_open(&s->cg, AGENT_CGROUP_ROOT);
    if (s->cg.version == AGENT_CG_NONE) {
        agent_log("%s: runs will be refused", s->cg.why);
    } else {
        agent_cg_sample cs;
        if (agent_cgroup_sample(&s->cg, &cs) == 0) {
            s->mem_baseline = cs.memory;
            s->pids_baseline = cs.pids;
        }
    }
    if (agent_zygote_enabled() && s->cg.version != AGENT_CG_NONE)
        zygote_up(s);
    s->env.zygote = agent_zygote_enabled();
    s->in_ready = true;
    s->env.cg = &s->cg;
    s->env.can_output = can_output;
    s->env.output = on_output;
    s->env.file = on_file;
    s->env.ud = s;
    return 0;
}

int
agent_serve(const char *build_id)
{
    static server srv;
    server *s = &srv;
    if (setup(s, build_id) < 0)
        return 1;
    int code = 0;
    for (;;) {
        int rc = read_requests(s);
        if (rc) {
            code = rc;
            break;
        }
        if (s->run && agent_run_finished(s->run) && wire_room(&s->w, WIRE_CONTROL_MAX))
            finish_run(s);
        if (wire_flush(&s->w, 1) < 0) {
            agent_log("write stdout: %s", strerror(errno));
            code = 1;
            break;
        }
        if (s->prep_due && !s->run && wire_queued(&s->w) == 0) {
            s->prep_due = false;
            prep_start(s);
        }
        if (s->w.eof)
            break;
        /* The baselines move with the worker's idle state: the run reads
         * them when it starts and ends. */
        s->env.mem_baseline = s->mem_baseline;
        s->env.pids_baseline = s->pids_baseline;

        struct pollfd pf[8];
        int n = 0;
        int i_in = -1, i_out = -1;
        if (!s->w.eof && wire_room(&s->w, 3 * WIRE_CONTROL_MAX)) {
            pf[n] = (struct pollfd){.fd = 0, .events = POLLIN};
            i_in = n++;
        }
        if (wire_queued(&s->w)) {
            pf[n] = (struct pollfd){.fd = 1, .events = POLLOUT};
            i_out = n++;
        }
        pf[n++] = (struct pollfd){.fd = s->sigfd, .events = POLLIN};
        int timeout = -1;
        if (s->run) {
            n += agent_run_pollfds(s->run, pf + n, (int)(sizeof(pf) / sizeof(pf[0])) - n);
            timeout = agent_run_timeout(s->run);
        } else if (s->prep) {
            n += agent_run_pollfds(s->prep, pf + n, (int)(sizeof(pf) / sizeof(pf[0])) - n);
        }
        int pr = poll(pf, (nfds_t)n, timeout);
        if (pr < 0 && errno != EINTR) {
            agent_log("poll: %s", strerror(errno));
            code = 1;
            break;
        }
        if (i_in >= 0 && pf[i_in].revents)
            s->in_ready = true;
        if (i_out >= 0 && (pf[i_out].revents & (POLLERR | POLLHUP)) &&
            !(pf[i_out].revents & POLLOUT)) {
            agent_log("stdout is gone");
            code = 1;
            break;
        }
        struct signalfd_siginfo si;
        while (read(s->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        }
        if (s->run) {
            agent_run_step(s->run);
        } else if (s->prep) {
            /* Its step reaps for it (it must see its own bwrap go). */
            agent_run_step(s->prep);
            if (agent_run_prep_failed(s->prep)) {
                agent_log("the prepared jail failed: the next run gets one made on demand");
                prep_discard(s);
            }
        } else {
            bool reaped;
            int st;
            agent_reap(-1, &st, &reaped);
        }
    }
    /* EOF or a broken stream: never leave a run behind. */
    if (s->run)
        agent_run_free(s->run);
    s->run = NULL;
    prep_discard(s);
    agent_prep_key_free(&s->next);
    agent_zygote_stop();
    wire_flush(&s->w, 1);
    wire_free(&s->w);
    agent_cgroup_close(&s->cg);
    return code;
}
