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
} sandbox_config;

/* Does not take ownership of dc or ic; they must outlive the manager. */
int sandbox_manager_new(sandbox_manager **out, const sandbox_config *cfg, docker_client *dc,
                        image_cache *ic, se_err *err);
/* Finds our containers from their labels and serves them under the same ids;
 * removes those that cannot be recovered. */
int sandbox_manager_recover(sandbox_manager *m, se_err *err);
/* Stops the reaper and frees memory. Containers stay: a restarted daemon
 * recovers them. */
void sandbox_manager_free(sandbox_manager *m);

int sandbox_create(sandbox_manager *m, const Safeeval__V1__CreateSandboxRequest *req,
                   Safeeval__V1__Sandbox **out, docker_progress_fn progress, void *ud,
                   const se_cancel *cancel, se_err *err);
/* Where a streamed run's output goes: each chunk (at most 64 KiB, within
 * max_output_bytes) as the run writes it, in order, on the thread that runs
 * it. The sink may block (a slow client): the daemon then reads nothing
 * more from the worker, so the agent's bounded queue fills and it stops
 * reading the run's pipes; the run's own limits still end it. A negative
 * return (err filled) cancels the run, and the call fails with that error. */
typedef int (*sandbox_output_fn)(void *ud, int stream, const uint8_t *data, size_t len,
                                 se_err *err);

int sandbox_eval(sandbox_manager *m, const Safeeval__V1__EvalRequest *req,
                 Safeeval__V1__ExecResult **out, const se_cancel *cancel, se_err *err);
int sandbox_execute_file(sandbox_manager *m, const Safeeval__V1__ExecuteFileRequest *req,
                         Safeeval__V1__ExecResult **out, const se_cancel *cancel, se_err *err);
/* sandbox_eval / sandbox_execute_file with the output sent to sink as it
 * comes: *out's stdout and stderr are empty, its totals and truncated
 * flags are the run's. */
int sandbox_eval_stream(sandbox_manager *m, const Safeeval__V1__EvalRequest *req,
                        Safeeval__V1__ExecResult **out, sandbox_output_fn sink, void *ud,
                        const se_cancel *cancel, se_err *err);
int sandbox_execute_file_stream(sandbox_manager *m, const Safeeval__V1__ExecuteFileRequest *req,
                                Safeeval__V1__ExecResult **out, sandbox_output_fn sink, void *ud,
                                const se_cancel *cancel, se_err *err);
/* What this server offers (GetServerInfo): *out malloc'd like the rest. */
int sandbox_server_info(sandbox_manager *m, Safeeval__V1__ServerInfo **out, se_err *err);
int sandbox_destroy(sandbox_manager *m, const char *id, const se_cancel *cancel, se_err *err);
int sandbox_get(sandbox_manager *m, const char *id, Safeeval__V1__Sandbox **out, se_err *err);
/* *out = malloc'd array of *n_out messages; free each, then the array. */
int sandbox_list(sandbox_manager *m, Safeeval__V1__Sandbox ***out, size_t *n_out, se_err *err);

#endif
