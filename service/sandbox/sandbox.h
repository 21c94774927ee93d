/* Sandboxes: a spec and 1..N hardened worker containers each (one run at a
 * time per worker, more runs wait in the sandbox's queue), a registry, limits, the idle
 * reaper and recovery after a restart. The rpc layer calls these; they speak
 * protobuf-c messages of the public contract and know nothing of gRPC.
 *
 * Messages returned through **out are built with malloc'd fields and belong
 * to the caller, who frees them with protobuf_c_message_free_unpacked(msg,
 * NULL). Request messages are borrowed. */
#ifndef SAFEEVAL_SANDBOX_SANDBOX_H
#define SAFEEVAL_SANDBOX_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "safeeval/v1/sandbox.pb-c.h"

#include "docker/docker.h"
#include "image/image.h"
#include "util/cancel.h"
#include "util/err.h"

typedef struct sandbox_manager sandbox_manager;

typedef struct sandbox_limits {
    uint32_t wall_time_ms;
    uint32_t cpu_time_ms;
    uint64_t memory_bytes;
    uint32_t max_processes;
    uint64_t max_output_bytes;
    uint64_t max_file_bytes;
    uint32_t max_collect_files; /* files a run's collect brings back */
    uint64_t max_collect_bytes; /* their bytes together */
} sandbox_limits;

/* A tenant name is at most this long (the rpc layer's identities too). */
#define SANDBOX_OWNER_MAX 128

/* Who asks, as the rpc layer identified it. A sandbox belongs to the owner
 * that created it; another owner's sandbox answers exactly as an unknown id
 * does, unless admin. Quotas: 0 = none. */
typedef struct sandbox_caller {
    const char *owner; /* "" = the anonymous tenant (no identities configured) */
    bool admin;        /* sees, runs in and destroys every owner's sandboxes */
    uint32_t max_sandboxes;
    uint32_t max_runs;   /* runs in flight (running or queued) over the owner's sandboxes */
    uint64_t max_memory; /* sum of memory_bytes x max_concurrent_runs of its sandboxes */
} sandbox_caller;

typedef struct sandbox_config {
    const char *instance;            /* [a-z0-9-]{1,32}: labels our containers, so daemons
                                        sharing one engine own only their own sandboxes */
    uint32_t max_sandboxes;          /* RESOURCE_EXHAUSTED beyond */
    uint32_t default_idle_timeout_s; /* for idle_timeout_s = 0 */
    uint32_t max_idle_timeout_s;
    const char *default_python;    /* for python_version = "" */
    sandbox_limits default_limits; /* for 0 fields of a sandbox's limits */
    sandbox_limits max_limits;     /* a sandbox may not ask for more */
    const char *seccomp_profile;   /* JSON file: the container's seccomp profile */
    uint32_t max_concurrent_runs;  /* per sandbox: worker containers at most (a create may
                                      ask for fewer) */
    uint32_t max_queued_runs;      /* per sandbox: runs waiting for a worker */
    uint64_t max_memory_total;     /* the sum of every worker's memory limit */
    uint32_t worker_idle_s;        /* an extra worker idle this long is removed */
    uint32_t reap_interval_s;      /* how often the idle reaper looks */
    uint64_t image_cache_bytes;    /* sandbox images' own bytes at most (0 = no limit) */
    uint32_t image_max_age_s;      /* an image unused this long goes (0 = no limit) */
    bool image_gc_own;             /* collect only the images this instance built */
    /* Warm pools (warm.c): ready workers for creates of a known spec. */
    const char *const *pools; /* "SPEC=N" of --pool: SPEC = VERSION[:MOD,MOD...] */
    size_t n_pools;
    uint32_t auto_pool;          /* ready workers per spec created within the window; 0 = off */
    uint32_t auto_pool_window_s; /* how long a created spec keeps its auto pool */
    const char *state_dir;       /* pool-served sandboxes keep their spec here */
} sandbox_config;

/* The seccomp profile at path reads as one (a start-up check). */
int sandbox_seccomp_check(const char *path, se_err *err);

/* Does not take ownership of dc or ic; they must outlive the manager. */
int sandbox_manager_new(sandbox_manager **out, const sandbox_config *cfg, docker_client *dc,
                        image_cache *ic, se_err *err);
/* Finds our containers from their labels and serves them under the same ids;
 * removes those that cannot be recovered. Pool workers go back to their pool
 * (or are removed); the pools start filling after it. */
int sandbox_manager_recover(sandbox_manager *m, se_err *err);
/* Stops the reaper and frees memory. Containers stay: a restarted daemon
 * recovers them. */
void sandbox_manager_free(sandbox_manager *m);

/* Every call below takes the caller (borrowed): see sandbox_caller. */
int sandbox_create(sandbox_manager *m, const sandbox_caller *who,
                   const Safeeval__V1__CreateSandboxRequest *req, Safeeval__V1__Sandbox **out,
                   docker_progress_fn progress, void *ud, const se_cancel *cancel, se_err *err);
/* Where a streamed run's output goes: each chunk (at most 64 KiB, within
 * max_output_bytes) as the run writes it, in order, on the thread that runs
 * it. The sink may block (a slow client): the daemon then reads nothing
 * more from the worker, so the agent's bounded queue fills and it stops
 * reading the run's pipes; the run's own limits still end it. A negative
 * return (err filled) cancels the run, and the call fails with that error. */
typedef int (*sandbox_output_fn)(void *ud, int stream, const uint8_t *data, size_t len,
                                 se_err *err);

int sandbox_eval(sandbox_manager *m, const sandbox_caller *who,
                 const Safeeval__V1__EvalRequest *req, Safeeval__V1__ExecResult **out,
                 const se_cancel *cancel, se_err *err);
int sandbox_execute_file(sandbox_manager *m, const sandbox_caller *who,
                         const Safeeval__V1__ExecuteFileRequest *req,
                         Safeeval__V1__ExecResult **out, const se_cancel *cancel, se_err *err);
/* sandbox_eval / sandbox_execute_file with the output sent to sink as it
 * comes: *out's stdout and stderr are empty, its totals and truncated
 * flags are the run's. */
int sandbox_eval_stream(sandbox_manager *m, const sandbox_caller *who,
                        const Safeeval__V1__EvalRequest *req, Safeeval__V1__ExecResult **out,
                        sandbox_output_fn sink, void *ud, const se_cancel *cancel, se_err *err);
int sandbox_execute_file_stream(sandbox_manager *m, const sandbox_caller *who,
                                const Safeeval__V1__ExecuteFileRequest *req,
                                Safeeval__V1__ExecResult **out, sandbox_output_fn sink, void *ud,
                                const se_cancel *cancel, se_err *err);
/* What this server offers (GetServerInfo): *out malloc'd like the rest. */
int sandbox_server_info(sandbox_manager *m, Safeeval__V1__ServerInfo **out, se_err *err);
int sandbox_destroy(sandbox_manager *m, const sandbox_caller *who, const char *id,
                    const se_cancel *cancel, se_err *err);
int sandbox_get(sandbox_manager *m, const sandbox_caller *who, const char *id,
                Safeeval__V1__Sandbox **out, se_err *err);
/* *out = malloc'd array of *n_out messages; free each, then the array. */
/* The caller's own sandboxes (every sandbox for an admin). */
int sandbox_list(sandbox_manager *m, const sandbox_caller *who, Safeeval__V1__Sandbox ***out,
                 size_t *n_out, se_err *err);

#endif
