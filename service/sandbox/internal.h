/* Internals of the sandbox module, shared by its files and its unit tests.
 * Not part of the module's interface (sandbox.h). */
#ifndef SAFEEVAL_SANDBOX_INTERNAL_H
#define SAFEEVAL_SANDBOX_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "agent/agent.h"
#include "agent.pb-c.h"
#include "sandbox/sandbox.h"
#include "util/buf.h"

#define SANDBOX_ID_LEN 24 /* hex chars we generate */
#define SANDBOX_ID_MAX 64 /* what we accept from outside */
#define SANDBOX_VERSION_MAX 32
#define SANDBOX_MAX_LABELS 32
#define SANDBOX_LABEL_KEY_MAX 63
#define SANDBOX_LABEL_VALUE_MAX 256
/* A run's caps are the agent's: one rule on both sides of the exec. */
#define SANDBOX_MAX_FILES AGENT_MAX_FILES
#define SANDBOX_PATH_MAX AGENT_MAX_PATH
#define SANDBOX_NAME_MAX AGENT_MAX_COMPONENT
#define SANDBOX_MAX_ARGS AGENT_MAX_ARGS
#define SANDBOX_ARG_MAX AGENT_MAX_ARG
#define SANDBOX_MAX_ENV AGENT_MAX_ENV
#define SANDBOX_MAX_COLLECT AGENT_MAX_COLLECT
#define SANDBOX_AGENT_PATH "/usr/local/bin/safeeval-agent"
#define SANDBOX_VERSION_FILE "/opt/safeeval/python-version"
#define SANDBOX_LABEL_PYTHON "safeeval.python"
/* = the owner (tenant) of the sandbox: for `docker ps --filter`; the spec
 * label holds it too and is the one recovery reads. */
#define SANDBOX_LABEL_OWNER "safeeval.owner"
#define SANDBOX_CONTAINER_USER "10001:10001"
#define SANDBOX_SPEC_VERSION 1
/* Worker containers carry this label (= the sandbox id) besides the sandbox's. */
#define SANDBOX_LABEL_WORKER "safeeval.worker"
/* A worker's memory limit is its run's memory plus this much for what is
 * not the run: docker-init, the idle agent and bwrap's monitor process
 * (measured: see the note of issue 7). */
#define SANDBOX_WORKER_MEMORY_RESERVE (4ull * 1024 * 1024)
/* Processes of a worker that are not the run's: docker-init, the agent,
 * bwrap's monitor and the jail's pid 1. */
#define SANDBOX_WORKER_PIDS_RESERVE 4
/* A zygote sandbox's worker (issue 8): what its zygote may take while it
 * starts (python3 and the preload imports), before the worker is resized
 * to the run's memory + the reserve + what the zygote measured
 * (State.zygote_memory_bytes) as soon as it is up; and its process beside
 * the fresh jail's (the zygote; the run's pid 1 takes the place of the
 * jail's). */
#define SANDBOX_ZYGOTE_START_MEMORY (256ull * 1024 * 1024)
#define SANDBOX_ZYGOTE_PIDS_RESERVE 1
/* preload: names at most, bytes of one name (the agent's own caps). */
#define SANDBOX_MAX_PRELOAD AGENT_ZYGOTE_MAX_MODULES
#define SANDBOX_PRELOAD_MAX AGENT_ZYGOTE_MODULE_MAX
/* After its wall time, a run gets this long to answer before the daemon
 * cancels it, and as long again before it replaces the worker. */
#define SANDBOX_RUN_GRACE_MS 2000
/* One Event frame from an agent: Output data is at most 64 KiB. */
#define SANDBOX_EVENT_MAX (1u << 20)

/* A sandbox's effective spec: what it was asked for, with defaults applied.
 * Everything is owned (malloc'd). */
typedef struct sandbox_spec {
    char python[SANDBOX_VERSION_MAX + 1]; /* requested version ("3.11"), default applied */
    char **modules;
    size_t n_modules;
    sandbox_limits limits; /* no field 0 */
    uint32_t idle_timeout_s;
    char **label_keys;
    char **label_values;
    size_t n_labels;
    int64_t created_at_ms;
    uint32_t max_runs; /* runs at once = worker containers at most */
    char *owner;       /* the tenant that created it ("" = anonymous); never NULL once filled */
    char **preload;    /* import names the zygote imports (validated) */
    size_t n_preload;
    int runner; /* Safeeval__V1__Runner in effect: FRESH or ZYGOTE, never DEFAULT */
} sandbox_spec;

void sandbox_spec_clear(sandbox_spec *s);

/* One run's input, normalised from EvalRequest / ExecuteFileRequest (all
 * borrowed from the request). */
typedef struct sandbox_run_input {
    const char *sandbox_id;
    const uint8_t *script;
    size_t script_len;
    const char *filename;
    const uint8_t *stdin_data;
    size_t stdin_len;
    char *const *args;
    size_t n_args;
    const char *const *env_keys; /* arrays of n_env pointers (owned by the input holder) */
    const char *const *env_values;
    size_t n_env;
    const Safeeval__V1__Limits *limits; /* may be NULL */
    Safeeval__V1__File *const *files;
    size_t n_files;
    char *const *collect; /* patterns: normalised in place by sandbox_validate_run */
    size_t n_collect;
} sandbox_run_input;

/* ---- validate.c (pure) ---- */
int sandbox_validate_id(const char *id, se_err *err);
/* The daemon's --instance name: [a-z0-9-]{1,32}. */
int sandbox_instance_check(const char *name, se_err *err);
int sandbox_validate_labels(char *const *keys, char *const *values, size_t n, se_err *err);
/* A tenant name: "" (anonymous) or 1..SANDBOX_OWNER_MAX printable ASCII
 * characters without '"' or '\\'. */
int sandbox_validate_owner(const char *owner, se_err *err);
/* Limits of a sandbox: 0 = the default, above the ceiling = SE_INVALID. */
int sandbox_limits_for_sandbox(sandbox_limits *out, const sandbox_config *cfg,
                               const Safeeval__V1__Limits *req, se_err *err);
/* Limits of a run: 0 = the sandbox's, above the sandbox's = SE_INVALID. */
int sandbox_limits_for_run(sandbox_limits *out, const sandbox_limits *sb,
                           const Safeeval__V1__Limits *req, se_err *err);
/* Validates a create request and fills *out (caller clears it). created_at
 * is set to now. */
int sandbox_validate_create(sandbox_spec *out, const sandbox_config *cfg,
                            const Safeeval__V1__CreateSandboxRequest *req, se_err *err);
int sandbox_validate_filename(const char *name, se_err *err);
/* A path as the agent takes it: relative, no empty, "." or ".." component. */
int sandbox_validate_path(const char *path, se_err *err);
/* A client's file path: drops empty and "." components in place ("./a" ->
 * "a", "a/./b" and "a//b" -> "a/b"; never longer), then
 * sandbox_validate_path. Writes only to a path that changes. */
int sandbox_normalise_path(char *path, se_err *err);
/* Everything but the sandbox id and limits. Normalises files[i]->path in
 * place (sandbox_normalise_path): the Files are the daemon's own unpacked
 * request, and the frame for the agent must be built from them after this. */
int sandbox_validate_run(const sandbox_run_input *in, bool is_eval, se_err *err);

/* ---- container.c ---- */
/* The spec as the JSON that goes into the safeeval.spec label. */
cJSON *sandbox_spec_to_json(const sandbox_spec *s);
/* Parses the label back, validating it like a client's request. */
int sandbox_spec_from_json(sandbox_spec *out, const sandbox_config *cfg, const char *json,
                           se_err *err);
/* The create body of a worker container of sandbox id, with a memory limit
 * of memory bytes. seccomp_json: the profile's content. */
int sandbox_container_body(cJSON **out, const sandbox_config *cfg, const char *seccomp_json,
                           const sandbox_spec *spec, const char *id, const char *image,
                           uint64_t memory, se_err *err);

/* ---- worker.c ---- */
/* One worker container: runs one run at a time through its agent. The
 * fields under "lock" belong to the registry lock; the rest belong to the
 * thread that holds the worker (busy) or to whoever unlinked it. */
typedef struct sandbox_worker {
    char *container_id;
    docker_stream *stream;  /* the persistent attach to the agent */
    uint64_t memory_limit;  /* the container's Memory now */
    uint64_t zygote_memory; /* what its zygote holds (0: no zygote), from its State */
    uint64_t next_run;      /* run ids on this worker */
    se_buf events;          /* Event frames read but not yet parsed */
    /* lock: */
    bool busy;
    bool broken; /* replace it: never given another run */
    int64_t idle_since_ms;
    struct sandbox_worker *next;
} sandbox_worker;

/* A run waiting for a worker, on the waiting thread's stack. */
typedef struct sandbox_waiter {
    struct sandbox_waiter *next;
} sandbox_waiter;

/* ---- registry.c ---- */
typedef struct sandbox_entry {
    char id[SANDBOX_ID_MAX + 1];
    char *image;
    char python_version[SANDBOX_VERSION_MAX + 1]; /* as the interpreter reports it */
    sandbox_spec spec;
    /* under the registry lock: */
    int64_t last_used_ms;
    unsigned refs;
    unsigned running;
    bool dead;
    sandbox_worker *workers;
    unsigned n_workers;    /* in the list */
    unsigned n_starting;   /* being made, not in the list yet */
    sandbox_waiter *queue; /* FIFO: the head takes the next free worker */
    unsigned n_queued;
    pthread_cond_t cv; /* a worker became free, a waiter left, or the sandbox died */
    struct sandbox_entry *next;
} sandbox_entry;

typedef struct sandbox_registry {
    pthread_mutex_t mu;
    sandbox_entry *head; /* insertion order */
    size_t count;
    size_t reserved; /* creates in flight */
} sandbox_registry;

void sandbox_registry_init(sandbox_registry *r);
void sandbox_registry_destroy(sandbox_registry *r);
/* Takes a slot for a create: SE_EXHAUSTED when count + reserved >= max. */
int sandbox_registry_reserve(sandbox_registry *r, size_t max, se_err *err);
void sandbox_registry_unreserve(sandbox_registry *r);
/* Adds e (the registry holds one reference); consumes a reservation if
 * reserved. SE_CONFLICT if the id exists. */
int sandbox_registry_add(sandbox_registry *r, sandbox_entry *e, bool reserved, se_err *err);
/* A new reference, or NULL. */
sandbox_entry *sandbox_registry_find(sandbox_registry *r, const char *id);
/* Unlinks it, marks it dead and returns the registry's reference, or NULL. */
sandbox_entry *sandbox_registry_remove(sandbox_registry *r, const char *id);
/* Like remove, only if it is still idle (nothing running, unused since
 * before idle_before_ms + its timeout) at the time of the lock. */
sandbox_entry *sandbox_registry_remove_idle(sandbox_registry *r, const char *id, int64_t now_ms);
void sandbox_entry_unref(sandbox_registry *r, sandbox_entry *e);
/* A zeroed entry with its condition variable ready; NULL when out of memory. */
sandbox_entry *sandbox_entry_new(void);
/* Frees e and the workers still listed (their containers are not touched). */
void sandbox_entry_free(sandbox_entry *e);
/* Counts a run in (for the idle clock): SE_NOT_FOUND if e is dead;
 * SE_EXHAUSTED (tenant-max-runs) when max_owner_runs (0 = no limit) runs of
 * sandboxes of e's owner are in flight already. */
int sandbox_entry_run_begin(sandbox_registry *r, sandbox_entry *e, uint32_t max_owner_runs,
                            se_err *err);
void sandbox_entry_run_end(sandbox_registry *r, sandbox_entry *e);
/* New references to every entry, in insertion order. *out malloc'd. */
int sandbox_registry_snapshot(sandbox_registry *r, sandbox_entry ***out, size_t *n, se_err *err);
/* Ids of idle entries (running == 0, idle past their timeout at now_ms). */
int sandbox_registry_idle(sandbox_registry *r, int64_t now_ms, char ***out, size_t *n);
/* The entry as a Sandbox message (malloc'd fields). Takes the lock. */
Safeeval__V1__Sandbox *sandbox_entry_to_msg(sandbox_registry *r, const sandbox_entry *e);

/* ---- run.c (pure: the daemon's side of agent.proto) ---- */
/* Request{id, run} as one frame (4-byte header + payload); SE_EXHAUSTED
 * over FRAME_MAX. *out malloc'd. */
int sandbox_run_frame(uint8_t **out, size_t *out_len, uint64_t id, const sandbox_run_input *in,
                      const sandbox_limits *lim, se_err *err);
enum sandbox_ctl { SANDBOX_CTL_CANCEL = 1, SANDBOX_CTL_ACK = 2, SANDBOX_CTL_SYNC = 3 };
/* A control request (cancel/ack of run id, or sync) as one frame in buf
 * (64 bytes are always enough); returns its length. */
size_t sandbox_ctl_frame(uint8_t buf[64], uint64_t id, enum sandbox_ctl op);

/* What the daemon has of one run while its events arrive. */
typedef struct sandbox_run_acc {
    uint64_t id;
    uint64_t cap; /* max_output_bytes: kept per stream */
    se_buf out, err;
    uint64_t out_got, err_got;        /* bytes the Output events carried */
    Safeeval__V1__ExecResult *result; /* at Done, when the agent ran it */
    char agent_error[512];            /* at Done, when it did not (printable) */
    bool done, cancelled, clean;
    /* Streaming: output goes to sink instead of out/err. After the sink
     * fails (sink_failed, sink_err) or is dropped (NULL) the output is
     * counted and discarded. sink_ms: time spent inside it. */
    sandbox_output_fn sink;
    void *sink_ud;
    bool sink_failed;
    se_err sink_err;
    int64_t sink_ms;
    /* Files back: the run's patterns (borrowed), what came so far (every
     * file whole but the last, which owes file_left bytes), within the
     * caps max_files and max_bytes. */
    char *const *collect;
    size_t n_collect;
    uint32_t max_files;
    uint64_t max_bytes;
    Safeeval__V1__File **files;
    size_t n_files;
    uint64_t files_bytes, file_left;
} sandbox_run_acc;
void sandbox_run_acc_init(sandbox_run_acc *a, uint64_t id, const sandbox_limits *lim);
void sandbox_run_acc_clear(sandbox_run_acc *a);
/* Feeds one Event payload of run a->id (hostile bytes). Returns 0 while the
 * run goes on, 1 at its Done, negative (SE_PROTOCOL) when the agent broke the
 * protocol: then the worker must not be trusted again. */
int sandbox_run_feed(sandbox_run_acc *a, const uint8_t *p, size_t n, se_err *err);
/* The run's ExecResult with the output and the files kept; a->result and
 * the files are handed over. */
Safeeval__V1__ExecResult *sandbox_run_take(sandbox_run_acc *a);
/* An Event payload that answers a sync: *out = the State (caller frees
 * with safeeval__agent__v1__state__free_unpacked), *done_id = the id of a
 * Done event instead (0 when it is not one). SE_PROTOCOL for anything else. */
int sandbox_state_parse(Safeeval__Agent__V1__State **out, uint64_t *done_id, const uint8_t *p,
                        size_t n, se_err *err);

/* ---- tenant.c ---- */
/* A create in flight, counted against its owner's quotas until its sandbox
 * is in the registry (or the create failed). Lives on the creator's stack. */
typedef struct sandbox_tenant_hold {
    const char *owner; /* borrowed from the caller */
    uint64_t memory;
    bool linked;
    struct sandbox_tenant_hold *next;
} sandbox_tenant_hold;

/* 1 if who may see e: its owner, or an admin. */
bool sandbox_caller_sees(const sandbox_caller *who, const sandbox_entry *e);
/* Checks who's tenant-max-sandboxes and tenant-max-memory for one more
 * sandbox of spec and holds its place: SE_EXHAUSTED naming the quota. */
int sandbox_tenant_reserve(sandbox_manager *m, const sandbox_caller *who, const sandbox_spec *spec,
                           sandbox_tenant_hold *hold, se_err *err);
/* Drops the hold (no-op when it was not taken). */
void sandbox_tenant_release(sandbox_manager *m, sandbox_tenant_hold *hold);

/* ---- warm.c: pools of ready workers ---- */
/* Pool containers carry the managed/instance/worker/python labels, a
 * sandbox id chosen in advance (the sandbox it will serve gets that id, so
 * the container is labelled right from birth), and these two instead of the
 * spec: the pool's key and its spec (python, sorted modules) as JSON. */
#define SANDBOX_LABEL_POOL "safeeval.pool"
#define SANDBOX_LABEL_POOL_SPEC "safeeval.pool.spec"
#define SANDBOX_POOL_KEY_LEN 16
#define SANDBOX_POOL_MAX_N 64 /* ready workers of one pool at most */

typedef struct warm_worker {
    sandbox_worker *w;
    char sandbox_id[SANDBOX_ID_MAX + 1]; /* the id of the sandbox it will serve */
    char *image;
    char python_version[SANDBOX_VERSION_MAX + 1];
    struct warm_worker *next;
} warm_worker;

typedef struct warm_pool {
    char key[SANDBOX_POOL_KEY_LEN + 1];
    sandbox_spec spec;   /* python, sorted modules and the default limits: its workers' */
    char *image;         /* the spec's image as last ensured; NULL until then */
    unsigned configured; /* --pool N */
    int64_t seen_ms;     /* monotonic ms of the last create of this spec; 0 = none */
    warm_worker *ready;
    unsigned n_ready, n_starting;
    unsigned failures; /* in a row: the next try waits retry_ms */
    int64_t retry_ms;
    struct warm_pool *next;
} warm_pool;

typedef struct sandbox_warm {
    bool enabled;       /* --pool or --auto-pool given */
    char *state_dir;    /* <state-dir>/<instance>: read at recovery even when pools are off */
    warm_pool *pools;   /* under reg.mu, as is the rest */
    warm_worker *trash; /* evicted or unwanted: the thread removes them */
    pthread_cond_t cv;  /* wakes the thread (monotonic clock) */
    pthread_t thread;
    bool started, stop;
} sandbox_warm;

/* ---- manager ---- */
struct sandbox_manager {
    sandbox_config cfg;
    char *default_python;
    char *instance;
    char *seccomp_json;
    docker_client *dc;
    image_cache *ic;
    sandbox_registry reg;
    /* under reg.mu: the sum of every worker's memory limit */
    uint64_t memory_used;
    uint64_t run_ids;           /* under reg.mu: ids of runs, unique in this process */
    sandbox_tenant_hold *holds; /* under reg.mu: creates in flight (tenant.c) */
    /* under reg.mu: containers whose removal failed (the engine was away),
     * removed again by the reaper, the next destroy and at shutdown */
    char **graveyard;
    size_t n_graveyard;
    /* reaper */
    pthread_t reaper;
    bool reaper_started;
    bool stopping;
    bool gc_soon; /* under stop_mu: a build just finished, collect images now */
    pthread_mutex_t stop_mu;
    pthread_cond_t stop_cv;
    sandbox_warm warm;
};

/* ---- reaper.c ---- */
/* Asks the reaper to collect images at once (after a build). */
void sandbox_reaper_kick(sandbox_manager *m);

/* ---- worker.c: one worker container and its agent ---- */
/* Makes, starts and attaches a worker for e (its spec, id and image) sized
 * for memory bytes of run; *out is idle and synced. */
int sandbox_worker_new(sandbox_manager *m, const sandbox_entry *e, uint64_t memory,
                       sandbox_worker **out, const se_cancel *cancel, se_err *err);
/* Attaches to a running worker container found after a restart and brings
 * its agent back to idle (cancels and acknowledges what it was doing). */
int sandbox_worker_adopt(sandbox_manager *m, const char *cid, uint64_t memory, sandbox_worker **out,
                         se_err *err);
/* Runs one run on a worker this thread holds. A transport or protocol
 * failure, or a run that could not be cleaned up, sets w->broken. */
int sandbox_worker_run(sandbox_worker *w, docker_client *dc, uint64_t id,
                       const sandbox_run_input *in, const sandbox_limits *lim,
                       Safeeval__V1__ExecResult **out, sandbox_output_fn sink, void *sink_ud,
                       const se_cancel *cancel, se_err *err);
/* Closes the stream and frees; removes the container when remove is set. */
void sandbox_worker_free(sandbox_manager *m, sandbox_worker *w, bool remove);
/* Removes a worker container; one the engine does not remove now is kept
 * in the graveyard, never forgotten. */
void sandbox_container_discard(sandbox_manager *m, const char *cid);
/* Tries the graveyard's removals again. */
void sandbox_graveyard_retry(sandbox_manager *m);

/* ---- pool.c: a sandbox's workers, its run queue, the memory budget ---- */
/* A worker for one run: an idle one, a new one (up to the sandbox's
 * max_runs and the budget), or the first one freed while this run waits its
 * turn (FIFO) until the caller's deadline. */
int sandbox_pool_acquire(sandbox_manager *m, sandbox_entry *e, uint64_t memory,
                         sandbox_worker **out, const se_cancel *cancel, se_err *err);
/* Gives a worker back; a broken one (or any worker of a dead sandbox) is
 * removed. */
void sandbox_pool_release(sandbox_manager *m, sandbox_entry *e, sandbox_worker *w);
/* Adds a worker made outside acquire (create, recovery) as idle; it must
 * have been charged to the budget with sandbox_pool_charge. */
void sandbox_pool_add(sandbox_manager *m, sandbox_entry *e, sandbox_worker *w);
/* Takes bytes from the --max-memory-total budget: SE_EXHAUSTED when they do
 * not fit. sandbox_pool_uncharge gives them back. */
int sandbox_pool_charge(sandbox_manager *m, uint64_t bytes, se_err *err);
void sandbox_pool_uncharge(sandbox_manager *m, uint64_t bytes);
/* e is dead: removes its idle workers now; busy ones go at their release. */
void sandbox_pool_remove_all(sandbox_manager *m, sandbox_entry *e);
/* Removes e's workers idle for longer than idle_ms, keeping one. */
void sandbox_pool_trim(sandbox_manager *m, sandbox_entry *e, int64_t idle_ms);
/* The worker memory limit for a run of memory bytes. */
uint64_t sandbox_worker_memory(uint64_t run_memory);
/* What one worker of spec holds of --max-memory-total: its memory limit for
 * the sandbox's own limit, plus, for the zygote runner, the room its zygote
 * starts with (SANDBOX_ZYGOTE_START_MEMORY: the cgroup may hold that much). */
uint64_t sandbox_worker_charge(const sandbox_spec *spec);

/* ---- warm.c ---- */
/* Parses the pools of cfg and makes the state dir when pools are on. */
int sandbox_warm_init(sandbox_manager *m, se_err *err);
/* Starts the thread that fills the pools (after recovery). */
int sandbox_warm_start(sandbox_manager *m, se_err *err);
/* Stops the thread and frees the pools; their containers stay for the next
 * daemon's recovery. */
void sandbox_warm_free(sandbox_manager *m);
/* Can a create with this request and spec be served by a pool? (the fresh
 * runner only, nothing to preload). */
bool sandbox_warm_poolable(const Safeeval__V1__CreateSandboxRequest *req);
/* A ready worker of the spec's pool, or NULL. Its budget (the pool's
 * charge) becomes the sandbox's: *charge is what it holds now. */
warm_worker *sandbox_warm_take(sandbox_manager *m, const sandbox_spec *spec, uint64_t *charge);
/* A create of this spec happened (the auto pool's clock); wakes the filler. */
void sandbox_warm_note(sandbox_manager *m, const sandbox_spec *spec);
/* A taken warm worker not used after all: removed (in the background) and
 * its charge given back. */
void sandbox_warm_discard(sandbox_manager *m, warm_worker *ww, uint64_t charge);
/* Frees a taken warm worker's wrapper (not its sandbox_worker). */
void sandbox_warm_worker_free(warm_worker *ww);
/* Under reg.mu: makes room for bytes more by evicting ready pool workers
 * (they go to the trash); true when bytes now fit. */
bool sandbox_warm_evict_locked(sandbox_manager *m, uint64_t bytes);
/* sandbox_pool_charge that may evict pool workers to make room. */
int sandbox_charge_evict(sandbox_manager *m, uint64_t bytes, se_err *err);
/* Recovery: a running pool container (its list summary c) goes back to its
 * pool when the pool is wanted, else it is removed. 1 = kept, 0 = removed. */
int sandbox_warm_recover(sandbox_manager *m, const cJSON *c);

/* ---- state.c: the spec of pool-served sandboxes, one file each ---- */
/* <state_dir>/<id>.json, written atomically (temp file, fsync, rename, fsync
 * of the dir), mode 0600. */
int sandbox_state_write(sandbox_manager *m, const sandbox_entry *e, se_err *err);
/* Reads and validates it: *spec filled (caller clears), *image malloc'd.
 * SE_NOT_FOUND when there is none. */
int sandbox_state_read(sandbox_manager *m, const char *id, sandbox_spec *spec, char **image,
                       se_err *err);
void sandbox_state_remove(sandbox_manager *m, const char *id);
/* Removes the state files whose sandbox is not in the registry (after
 * recovery: their sandboxes are gone). */
void sandbox_state_sweep(sandbox_manager *m);

/* "3.11" matches "3.11.2"; "3.11.2" matches only itself. */
bool sandbox_version_matches(const char *want, const char *have);

/* The id generator: 24 lowercase hex chars from getrandom. */
int sandbox_new_id(char out[SANDBOX_ID_LEN + 1], se_err *err);
/* Reads /opt/safeeval/python-version from the container (hostile). */
int sandbox_read_python_version(sandbox_manager *m, const char *cid,
                                char out[SANDBOX_VERSION_MAX + 1], se_err *err);
/* Destroys a sandbox: registry first, then the container. */
int sandbox_destroy_entry(sandbox_manager *m, sandbox_entry *e, se_err *err);
int sandbox_reaper_start(sandbox_manager *m, se_err *err);
void sandbox_reaper_stop(sandbox_manager *m);

#endif
