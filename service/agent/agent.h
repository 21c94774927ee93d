/* safeeval-agent internals. The agent is the main process of a worker
 * container (`--serve`): it reads Request frames on stdin and writes Event
 * frames on stdout (agent.proto), one run at a time. The pieces, one file
 * each:
 *   serve.c       the poll loop and the protocol (sync, run, cancel, ack)
 *   wire.c        stdin/stdout: frames in, a bounded queue of frames out
 *   cgroup.c      the worker cgroup's counters (the run's meter and fence)
 *   jail.c        the bwrap command line and the input memfds
 *   run.c         one run: start, watch limits, end, result
 *   sweep.c       the end of a run: nothing of it left in the container
 *   collect.c     files back: the jail's walk of /work and its records
 *   jail_child.c  the jail's pid 1 (`--jail-child`)
 *   filter.c      the jail's seccomp filter
 *   validate.c    request checks (shared with the daemon's library)
 *   frame.c       the framing (shared with the daemon's library) */
#ifndef SAFEEVAL_AGENT_AGENT_H
#define SAFEEVAL_AGENT_AGENT_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent.pb-c.h"
#include "util/err.h"

typedef Safeeval__Agent__V1__RunRequest agent_request;
typedef Safeeval__Agent__V1__Request agent_msg;
typedef Safeeval__V1__ExecResult agent_result;

/* Caps the agent enforces itself; it never trusts the daemon's validation. */
#define AGENT_MAX_FILES 256
#define AGENT_MAX_ARGS 256
#define AGENT_MAX_ENV 256
#define AGENT_MAX_PATH 1024                /* bytes of one relative file path */
#define AGENT_MAX_COMPONENT 255            /* bytes of one path component / file name */
#define AGENT_MAX_DEPTH 32                 /* components of one file path */
#define AGENT_MAX_ARG 65536                /* bytes of one argument or env value */
#define AGENT_MAX_ENV_NAME 256             /* bytes of one env name */
#define AGENT_MAX_ARGV_TOTAL (1024 * 1024) /* args + env, all together */
#define AGENT_MAX_PROCESSES 4096
#define AGENT_MIN_MEMORY (1024u * 1024) /* bytes: less cannot start Python */
/* Bytes of run output in one Output event. */
#define AGENT_OUTPUT_CHUNK 65536
/* Files back (`collect`): patterns of one run, and the most any run may
 * ask for (the daemon's ceilings are lower or equal). */
#define AGENT_MAX_COLLECT 64
#define AGENT_MAX_COLLECT_FILES 4096
#define AGENT_MAX_COLLECT_BYTES (256ull * 1024 * 1024)
/* Bytes of a collected file per record on the jail's pipe (and per event). */
#define AGENT_COLLECT_CHUNK 32768
/* Directory entries the jail's walk looks at, and matches it keeps, at
 * most (then the result says files_truncated). */
#define AGENT_COLLECT_SCAN_MAX 100000
/* Bytes of an error message in a Done. */
#define AGENT_ERROR_MAX 1024

/* Where things live inside the image and the jail. */
#define AGENT_BWRAP "/usr/bin/bwrap"
#define AGENT_PYTHON "/opt/safeeval/venv/bin/python3"
#define AGENT_VENV_ROOT "/opt/safeeval"
#define AGENT_JAIL_ETC "/opt/safeeval/etc" /* the jail's /etc, made by the image */
#define AGENT_JAIL_SELF "/run/safeeval-agent"
#define AGENT_WORKDIR "/work"
#define AGENT_CGROUP_ROOT "/sys/fs/cgroup"

/* ---- validate.c (pure; also in the daemon's library) ---- */

/* A relative path under the work dir: no "/" at either end, no empty, "."
 * or ".." component, no control bytes, capped lengths. */
int agent_path_validate(const char *path, se_err *err);
/* A plain base name ("main.py"): one component, as above. */
int agent_filename_validate(const char *name, se_err *err);
/* An environment variable name: not empty, no '=', no control bytes. */
int agent_env_name_validate(const char *name, se_err *err);
/* The whole run request: limits present and non-zero, counts and sizes
 * capped, paths unique and not colliding with the script or each other's
 * dirs. */
int agent_request_validate(const agent_request *req, se_err *err);
/* A Request envelope: exactly one op; run, cancel and ack name a run
 * (id != 0), sync names none; a run's request passes
 * agent_request_validate. */
int agent_msg_validate(const agent_msg *msg, se_err *err);
/* The id (field 1) from the first bytes of a serialised Request, when it is
 * there before anything else: how a frame too big to keep is answered.
 * Returns 1 and sets *id, or 0. */
int agent_msg_peek_id(uint64_t *id, const uint8_t *head, size_t len);

/* A dotted Python module name ("numpy.linalg", a preload): identifiers of
 * ASCII letters, digits and '_' joined by single dots, at most
 * AGENT_ZYGOTE_MODULE_MAX bytes. 0 or -1. */
int agent_module_name_validate(const char *name);

/* A collect pattern: a path as above in which '*', '?' and '[...]' match
 * (fnmatch with FNM_PATHNAME: never across a '/'). */
int agent_collect_pattern_validate(const char *pattern, se_err *err);

/* ---- collect.c ---- */

/* The whole of p[0..n) written to / read from fd (EINTR retried): 0, or -1
 * on an error or an early end. */
int agent_write_all(int fd, const void *p, size_t n);
int agent_read_all(int fd, void *p, size_t n);

/* In the jail's pid 1, once nothing else of the jail runs: writes the
 * regular files under workdir that match a pattern to fd as records (path
 * order, up to the first that would pass max_files or max_bytes), never
 * following a symlink. 0, or -1 when fd broke. */
int agent_collect_send(int fd, const char *workdir, char *const *patterns, size_t n_patterns,
                       uint64_t max_files, uint64_t max_bytes);

/* The agent's reader of those records (hostile: checked against the caps,
 * path rules and order). Bytes go into buf[len..] by the caller. */
typedef struct agent_collect_rd {
    uint8_t buf[5 + AGENT_COLLECT_CHUNK];
    size_t len;
    uint64_t max_files, max_bytes;
    uint64_t files, bytes, left; /* left: bytes the current file still owes */
    char path[AGENT_MAX_PATH + 1], last[AGENT_MAX_PATH + 1];
    bool truncated, ended, bad;
    char why[96];
} agent_collect_rd;

/* One record: a file's start (path, size), a piece of its bytes (data,
 * len), or a mark (neither). consumed: its bytes at the front of buf. */
typedef struct agent_collect_piece {
    const char *path;
    uint64_t size;
    const uint8_t *data;
    size_t len;
    size_t consumed;
} agent_collect_piece;

void agent_collect_rd_init(agent_collect_rd *rd, uint64_t max_files, uint64_t max_bytes);
/* 1 with *out (valid until agent_collect_consume), 0 when buf holds no
 * whole record yet, -1 when the records broke a rule (rd->why). */
int agent_collect_next(agent_collect_rd *rd, agent_collect_piece *out);
void agent_collect_consume(agent_collect_rd *rd, size_t n);

/* ---- cgroup.c: the worker container's own cgroup (the run's meter) ---- */

enum agent_cg_version { AGENT_CG_NONE = 0, AGENT_CG_V1 = 1, AGENT_CG_V2 = 2 };

/* Counter files, opened once and pread on every tick. */
typedef struct agent_cgroup {
    int version; /* enum agent_cg_version; NONE = unreadable, runs refused */
    int mem_stat_fd, oom_fd, cpu_fd, pids_fd;
    int limit_fd;  /* memory.limit_in_bytes / memory.max */
    char why[160]; /* why version is NONE */
} agent_cgroup;

/* One reading of every counter. */
typedef struct agent_cg_sample {
    uint64_t memory;    /* anon + shmem bytes (v1: rss + shmem) */
    uint64_t cpu_ns;    /* CPU used by everything in the cgroup */
    uint64_t oom_kills; /* processes the cgroup's OOM killer killed, ever */
    uint64_t pids;      /* tasks (processes and threads) alive */
} agent_cg_sample;

/* Finds and opens the counters under root ("/sys/fs/cgroup"): v2 when
 * root/cgroup.controllers exists, else v1. Never fails: when a counter
 * cannot be read, version is AGENT_CG_NONE and why says which. */
void agent_cgroup_open(agent_cgroup *cg, const char *root);
void agent_cgroup_close(agent_cgroup *cg);
/* "v1", "v2" or "" (unreadable). */
const char *agent_cgroup_name(const agent_cgroup *cg);
/* Reads every counter. 0, or -1 (errno set) when one cannot be read. */
int agent_cgroup_sample(const agent_cgroup *cg, agent_cg_sample *out);
/* Bytes the worker can still take before its memory limit: the limit
 * minus anon+shmem (page cache is reclaimed first). UINT64_MAX when there
 * is no limit; 0 when it cannot be read. */
uint64_t agent_cgroup_room(const agent_cgroup *cg);
/* The value of the line "key N" in a flat-keyed file's text (memory.stat,
 * cpu.stat, memory.events, memory.oom_control). 0, or -1 when absent. */
int agent_cgroup_stat_value(uint64_t *out, const char *text, size_t len, const char *key);

/* ---- prepared jails ----
 * While a worker is idle, the agent prepares the next run's jail: bwrap's
 * namespaces and mounts, the jail's pid 1, and python3 already started on
 * /work/<filename> (a FIFO then), blocked reading its source. A Run then
 * only delivers the inputs: stdin into the jail's (still unsealed) stdin
 * memfd, sealed before anything reads it; the files and the script over a
 * pipe to the jail's pid 1, which writes them into /work, puts the script
 * file in place of the FIFO and feeds the same bytes to python. Each
 * prepared jail serves exactly one run or is killed; it is made only once
 * the previous run's processes are gone. What the interpreter or bwrap fixed
 * at start is the key: a run whose limits or filename differ, or
 * that cannot be delivered exactly (see agent_run_deliver), gets a jail made
 * on demand instead. */

typedef struct agent_prep_key {
    uint64_t memory_bytes, max_file_bytes;
    uint32_t cpu_time_ms, max_processes;
    char *filename; /* owned */
} agent_prep_key;

/* A delivery (files and script) is one write into an empty pipe of the
 * default size (64 KiB; less when the uid is over its pipe pages), so the
 * agent never waits for the jail; the helper takes no more than this. */
#define AGENT_DELIVERY_MAX (1024 * 1024)
/* /work's tmpfs is the run's memory plus the larger of its inputs (+4 KiB
 * a file) and this, prepared or not: the same size either way for every
 * input a prepared jail takes. */
#define AGENT_WORK_SPARE (4ull * 1024 * 1024)

/* The delivery, agent -> the prepared jail's pid 1, on one pipe: this
 * header, then body_len bytes: for each file a u32 path length, a u64
 * content length, the path (relative, validated), the content; the rest is
 * the script. */
#define AGENT_DELIVERY_MAGIC 0x53454456u
struct agent_delivery_hdr {
    uint32_t magic;
    uint32_t n_files;
    uint64_t body_len;
};

/* Sets *k from req (copies); frees what *k held. 0, or -1 out of memory. */
int agent_prep_key_set(agent_prep_key *k, const agent_request *req);
void agent_prep_key_free(agent_prep_key *k);
/* True when a prepared jail can take a run like req, and so is made after
 * one: no arguments (they would be on a waiting process's command line
 * before any run exists; a prepared jail carries nothing of the run it was
 * made after but its limits and file name), no environment (Python and libc
 * read it as they start; and a client that sends one every time would pay
 * for a jail thrown away every time), not a .pyc (Python seeks in a
 * compiled file), no collect patterns (the jail's pid 1 gathers the files
 * with patterns it is started with; a run that collects gets a jail made on
 * demand, which does that, and none is prepared after it). Runs of a zygote
 * worker never use a prepared jail. */
bool agent_prep_usable(const agent_request *req);

/* ---- jail.c: what the jail is made of ---- */

typedef struct agent_jail {
    char **argv;                     /* bwrap's command line, owned */
    int in_fds[AGENT_MAX_FILES + 1]; /* sealed memfds bwrap copies from */
    size_t n_in;
    int stdin_fd; /* sealed memfd: the jail's fd 0 */
} agent_jail;

/* Builds the bwrap command line for req (validated) with status_fd as the
 * helper's status pipe (and collect_fd as its files-back pipe when req has
 * collect patterns), and the memfds that carry the script, the files
 * and stdin. All fds are close-on-exec: the caller's child clears that on
 * in_fds, status_fd, collect_fd and bpf_fd (the run's seccomp program, env's)
 * before it execs bwrap. */
int agent_jail_build(agent_jail *j, const agent_request *req, const char *self, int status_fd,
                     int collect_fd, int bpf_fd, se_err *err);
/* The bwrap command line of a prepared jail for k: no input files, stdin
 * left to the caller, the helper in prepared mode reading its delivery from
 * delivery_fd. */
int agent_jail_build_prepared(agent_jail *j, const agent_prep_key *k, const char *self,
                              int status_fd, int delivery_fd, int bpf_fd, se_err *err);
void agent_jail_close_fds(agent_jail *j);
void agent_jail_free(agent_jail *j);

/* ---- run.c: one run ---- */

typedef struct agent_run agent_run;

/* What a run needs from the serve loop. */
typedef struct agent_run_env {
    const agent_cgroup *cg;
    /* The idle worker: anon+shmem bytes and tasks with no run. */
    uint64_t mem_baseline, pids_baseline;
    /* False while the outgoing queue is full: the run's pipes are left
     * unread then (backpressure; the run's limits still run). */
    bool (*can_output)(void *ud);
    /* The run wrote data (at most AGENT_OUTPUT_CHUNK bytes, within its
     * max_output_bytes) to stream 1 (stdout) or 2 (stderr). */
    void (*output)(void *ud, int stream, const uint8_t *data, size_t len);
    /* A collected file starts (path set: its size) or goes on (data, at
     * most AGENT_COLLECT_CHUNK bytes); only while can_output. */
    void (*file)(void *ud, const char *path, uint64_t size, const uint8_t *data, size_t len);
    void *ud;
    /* Runs are forks of the zygote (zygote.c), not fresh jails. */
    bool zygote;
    /* agent_filter_export_sealed's memfd, which every jail's helper loads;
     * -1 when it could not be made (fresh jails are refused then). */
    int bpf_fd;
} agent_run_env;

/* Starts run msg->id (msg validated, op run). msg is freed here, whatever
 * happens, so the request's bytes never stay with the agent during the run.
 * Returns 0 with *out set, or a negative se_code when nothing could be
 * started (nothing is left running then). env must outlive the run. */
int agent_run_start(agent_run **out, agent_msg *msg, const agent_run_env *env, se_err *err);
/* The fds the run waits on now (at most 4). Returns the count. */
int agent_run_pollfds(agent_run *r, struct pollfd *pf, int max);
/* Milliseconds until the run must be looked at again, or -1. */
int agent_run_timeout(const agent_run *r);
/* Does what is due: reads the status pipe and the output pipes, samples
 * the cgroup on its tick, enforces the limits, and once the command ended
 * kills what is left of the jail and checks the worker is back at its
 * baseline. Call after every poll (any fd, any timeout). */
void agent_run_step(agent_run *r);
/* Prepares a jail for the next run with key k (copied). Returns 0 with *out
 * set (not a run until agent_run_deliver), or a negative se_code. */
int agent_run_prepare(agent_run **out, const agent_prep_key *k, const agent_run_env *env,
                      se_err *err);
/* Hands run msg->id (validated, op run) to the prepared jail r: 1 when it
 * is now that run (msg freed; its wall time and CPU count from now), 0 when
 * r cannot take it exactly as a jail made on demand would (msg untouched;
 * the caller frees r, which kills it, and starts the run on demand). */
int agent_run_deliver(agent_run *r, agent_msg *msg);
/* True while r is a prepared jail that no run has been delivered to. */
bool agent_run_is_prepared(const agent_run *r);
/* True when a prepared jail died or failed before any delivery. */
bool agent_run_prep_failed(const agent_run *r);
/* Kills the run now (a cancel request); its Done says cancelled. */
void agent_run_cancel(agent_run *r);
uint64_t agent_run_id(const agent_run *r);
/* True once the jail is gone, the worker checked, all output handed over. */
bool agent_run_finished(const agent_run *r);
/* A finished run's Done (borrowed, valid until agent_run_free). */
const Safeeval__Agent__V1__RunResponse *agent_run_response(agent_run *r);
/* A finished, clean run's idle reading of the worker's anon+shmem. */
uint64_t agent_run_idle_memory(const agent_run *r);
void agent_run_free(agent_run *r);

/* ---- sweep.c: the end of a run ---- */

/* Reaps every child of the agent that has ended (the agent is the
 * container's subreaper). When bwrap is one of them, its status goes to
 * *bw_status and *bw_reaped is set. */
void agent_reap(pid_t bwrap, int *bw_status, bool *bw_reaped);
/* SIGKILLs every process in the container but pid 1 (the engine's init)
 * and the agent: the container holds nothing else, so these are what is
 * left of a run. Returns how many there were (zombies included), or -1
 * when /proc cannot be read. */
int agent_sweep(void);

/* ---- jail_child.c, filter.c ---- */

/* The helper bwrap runs as the jail's pid 1:
 * --jail-child STATUS_FD CPU_MS NPROC FSIZE NOFILE BPF_FD
 *     [--collect FD MAX_FILES MAX_BYTES N PATTERN... | --prepared DELIVERY_FD] -- argv...
 * (prepared: argv[1] is the script path, made a FIFO until the delivery; a
 * prepared jail never collects). */
int agent_jail_child_main(int argc, char **argv);

/* The run's seccomp program as libseccomp exports it: the agent
 * exports it once (libseccomp takes milliseconds to build it, more than the
 * kernel takes to load it) into a sealed memfd every jail's helper reads. */
#define AGENT_BPF_MAX_INSNS 4096 /* BPF_MAXINSNS */
typedef struct agent_bpf {
    uint64_t insn[AGENT_BPF_MAX_INSNS]; /* struct sock_filter, 8 bytes each */
    size_t n;
} agent_bpf;
/* A sealed memfd holding the run's program (close-on-exec), or -1 with msg. */
int agent_filter_export_sealed(char *msg, size_t msg_len);
/* Reads the program in fd (from offset 0) into *out; -1 with msg when it is
 * empty, too long or not whole instructions. */
int agent_filter_read(int fd, agent_bpf *out, char *msg, size_t msg_len);
/* Installs it in the calling process with no_new_privs, as libseccomp's
 * seccomp_load does (fail closed: an error means nothing may be exec'd). */
int agent_filter_install(const agent_bpf *prog, char *msg, size_t msg_len);

/* Records the helper writes to its status fd. Each is one write() well under
 * PIPE_BUF, so it arrives whole. */
#define AGENT_STATUS_MAGIC 0x53455354u
enum agent_status_kind {
    AGENT_STATUS_STARTED = 1, /* the helper runs inside the jail, filtered */
    AGENT_STATUS_DONE = 2,    /* the command ended: wait_status, rusage */
    AGENT_STATUS_FAILED = 3,  /* setup failed before exec: msg, sys_errno */
};
struct agent_status {
    uint32_t magic;
    uint32_t kind;
    int32_t wait_status;
    int32_t sys_errno;
    int64_t maxrss_kb;
    int64_t cpu_us;
    char msg[96];
};

/* ---- zygote.c: the warm interpreter runs are forked from (opt-in) ---- */

/* The zygote's python program, shipped in the image. */
#define AGENT_ZYGOTE_PY "/opt/safeeval/lib/zygote.py"
/* Preload modules: how many, and bytes of one dotted name. */
#define AGENT_ZYGOTE_MAX_MODULES 32
#define AGENT_ZYGOTE_MODULE_MAX 128
/* Its children share its hash seed and address layout: it is replaced
 * after this many runs or this many seconds, whichever comes first. */
#define AGENT_ZYGOTE_MAX_RUNS 32
#define AGENT_ZYGOTE_MAX_AGE_S 600
/* How long its start (python3 + the preload imports) may take. */
#define AGENT_ZYGOTE_START_MS 8000

/* `--serve --zygote MODULE...`: runs are forked from a zygote that imported
 * modules (borrowed: main's argv). -1 when a name is invalid. */
int agent_zygote_configure(char **modules, size_t n);
bool agent_zygote_enabled(void);
/* True while a zygote is up and takes runs. */
bool agent_zygote_ready(void);
/* Why there is no zygote ("" when there is one): a failed import's last
 * line, a start that failed. */
const char *agent_zygote_error(void);
/* (Re)starts it with the run's seccomp program (agent_run_env's bpf_fd,
 * which it reads from offset 0; -1: no zygote); waits until it is ready.
 * 0, or -1 with the error kept. */
int agent_zygote_start(int bpf_fd);
/* Kills it (and its jail). */
void agent_zygote_stop(void);
/* It must be replaced before the next run: too many runs, too old, gone,
 * or the last run did not end clean. */
bool agent_zygote_due(bool clean);
/* The zygote's own CPU time so far (ns); 0 when unreadable. */
uint64_t agent_zygote_cpu_ns(void);
/* Has the zygote prepare the next run's processes (nothing when some wait
 * already or there is no zygote). Only between runs, after a Done. */
void agent_zygote_prepare(void);
/* Before a run's baselines: until the prepared processes are ready (made
 * now when none wait). 0 or negative se_code (the run is refused). */
int agent_zygote_await(se_err *err);
/* Hands one run to the prepared processes (after agent_zygote_await): its
 * input (req, validated), its stdin, and the write ends of its stdout,
 * stderr and status pipes (the caller keeps and closes its own copies). */
int agent_zygote_spawn(const agent_request *req, int out_w, int err_w, int st_w, se_err *err);
/* The zygote jail's pid 1: --zygote-init SOCK_FD BPF_FD -- python3 ... */
int agent_zygote_init_main(int argc, char **argv);

/* jail.c, for the zygote: its bwrap command line (*out freed with
 * agent_jail_argv_free), and a sealed memfd holding data. */
int agent_jail_build_zygote(char ***out, const char *self, int sock_fd, int bpf_fd,
                            char *const *modules, size_t n_modules, se_err *err);
void agent_jail_argv_free(char **argv);
int agent_jail_memfd(const uint8_t *data, size_t len, se_err *err);
/* filter.c, for the zygote: its own filter. */
int agent_filter_load_zygote(char *msg, size_t msg_len);
/* sweep.c: agent_sweep spares these two pids (the zygote's monitor and the
 * zygote); -1, -1 = none. */
void agent_sweep_spare(pid_t a, pid_t b);

/* ---- serve.c ---- */

/* The worker's main loop. Returns the process exit code: 0 at EOF on
 * stdin, non-zero when the stream broke (the daemon replaces the worker). */
int agent_serve(const char *build_id);

/* Diagnostics on stderr (never the run's code or output). */
void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
