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
#define SANDBOX_STDERR_CAP (64u * 1024)
#define SANDBOX_AGENT_PATH "/usr/local/bin/safeeval-agent"
#define SANDBOX_VERSION_FILE "/opt/safeeval/python-version"
#define SANDBOX_LABEL_PYTHON "safeeval.python"
#define SANDBOX_CONTAINER_USER "10001:10001"
#define SANDBOX_SPEC_VERSION 1

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
} sandbox_run_input;

/* ---- validate.c (pure) ---- */
int sandbox_validate_id(const char *id, se_err *err);
/* The daemon's --instance name: [a-z0-9-]{1,32}. */
int sandbox_instance_check(const char *name, se_err *err);
int sandbox_validate_labels(char *const *keys, char *const *values, size_t n, se_err *err);
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
int sandbox_validate_path(const char *path, se_err *err);
/* Everything but the sandbox id and limits. */
int sandbox_validate_run(const sandbox_run_input *in, bool is_eval, se_err *err);

/* ---- container.c ---- */
/* The spec as the JSON that goes into the safeeval.spec label. */
cJSON *sandbox_spec_to_json(const sandbox_spec *s);
/* Parses the label back, validating it like a client's request. */
int sandbox_spec_from_json(sandbox_spec *out, const sandbox_config *cfg, const char *json,
                           se_err *err);
/* The full container create body. seccomp_json: the profile's content. */
int sandbox_container_body(cJSON **out, const sandbox_config *cfg, const char *seccomp_json,
                           const sandbox_spec *spec, const char *id, const char *image,
                           se_err *err);

/* ---- registry.c ---- */
typedef struct sandbox_entry {
    char id[SANDBOX_ID_MAX + 1];
    char *container_id;
    char *image;
    char python_version[SANDBOX_VERSION_MAX + 1]; /* as the interpreter reports it */
    sandbox_spec spec;
    /* under the registry lock: */
    int64_t last_used_ms;
    unsigned refs;
    unsigned running;
    bool dead;
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
/* Puts a removed entry back (a destroy that failed); takes the reference. */
void sandbox_registry_readd(sandbox_registry *r, sandbox_entry *e);
void sandbox_entry_unref(sandbox_registry *r, sandbox_entry *e);
void sandbox_entry_free(sandbox_entry *e);
/* Starts a run: SE_EXHAUSTED beyond max_running, SE_NOT_FOUND if dead. */
int sandbox_entry_run_begin(sandbox_registry *r, sandbox_entry *e, unsigned max_running,
                            se_err *err);
void sandbox_entry_run_end(sandbox_registry *r, sandbox_entry *e);
/* New references to every entry, in insertion order. *out malloc'd. */
int sandbox_registry_snapshot(sandbox_registry *r, sandbox_entry ***out, size_t *n, se_err *err);
/* Ids of idle entries (running == 0, idle past their timeout at now_ms). */
int sandbox_registry_idle(sandbox_registry *r, int64_t now_ms, char ***out, size_t *n);
/* The entry as a Sandbox message (malloc'd fields). Takes the lock. */
Safeeval__V1__Sandbox *sandbox_entry_to_msg(sandbox_registry *r, const sandbox_entry *e);

/* ---- run.c ---- */
/* Packs the RunRequest frame (4-byte header + payload); SE_EXHAUSTED over
 * FRAME_MAX. */
int sandbox_run_frame(uint8_t **out, size_t *out_len, const sandbox_run_input *in,
                      const sandbox_limits *lim, se_err *err);
/* Parses the agent's answer (hostile). *out malloc'd ExecResult. */
int sandbox_run_parse(Safeeval__V1__ExecResult **out, const uint8_t *buf, size_t len,
                      const sandbox_limits *lim, se_err *err);
int sandbox_run_exec(docker_client *dc, const char *container_id, const sandbox_run_input *in,
                     const sandbox_limits *lim, Safeeval__V1__ExecResult **out,
                     const se_cancel *cancel, se_err *err);

/* ---- manager ---- */
struct sandbox_manager {
    sandbox_config cfg;
    char *default_python;
    char *instance;
    char *seccomp_json;
    docker_client *dc;
    image_cache *ic;
    sandbox_registry reg;
    /* reaper */
    pthread_t reaper;
    bool reaper_started;
    bool stopping;
    pthread_mutex_t stop_mu;
    pthread_cond_t stop_cv;
};

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
