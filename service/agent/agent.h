/* safeeval-agent internals: request validation, the run core, the jail
 * helper and the seccomp filter. The I/O shell (main.c) only moves frames;
 * agent_run() is independent of the transport. */
#ifndef SAFEEVAL_AGENT_AGENT_H
#define SAFEEVAL_AGENT_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "agent.pb-c.h"
#include "util/err.h"

typedef Safeeval__Agent__V1__RunRequest agent_request;
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
/* Per stream: the response frame must fit under FRAME_MAX. */
#define AGENT_MAX_OUTPUT (24u * 1024 * 1024)

/* Where things live inside the image and the jail. */
#define AGENT_BWRAP "/usr/bin/bwrap"
#define AGENT_PYTHON "/opt/safeeval/venv/bin/python3"
#define AGENT_VENV_ROOT "/opt/safeeval"
#define AGENT_JAIL_SELF "/run/safeeval-agent"
#define AGENT_WORKDIR "/work"

/* A relative path under the work dir: no "/" at either end, no empty, "."
 * or ".." component, no control bytes, capped lengths. */
int agent_path_validate(const char *path, se_err *err);
/* A plain base name ("main.py"): one component, as above. */
int agent_filename_validate(const char *name, se_err *err);
/* An environment variable name: not empty, no '=', no control bytes. */
int agent_env_name_validate(const char *name, se_err *err);
/* The whole request: limits present and non-zero, counts and sizes capped,
 * paths unique and not colliding with the script or each other's dirs. */
int agent_request_validate(const agent_request *req, se_err *err);

/* Runs one validated request in a fresh jail and fills *out (initialised
 * here; free it with agent_result_free). Returns 0 when the run happened
 * (whatever its outcome), or a negative se_code when it could not be run
 * confined; then *out holds nothing to free. */
int agent_run(agent_result *out, const agent_request *req, se_err *err);
void agent_result_free(agent_result *res);

/* The helper bwrap runs inside the jail:
 * --jail-child STATUS_FD CPU_MS MEM_BYTES NPROC FSIZE NOFILE -- argv... */
int agent_jail_child_main(int argc, char **argv);

/* Installs the jail's seccomp filter in the calling process (fail closed:
 * an error means nothing may be exec'd). msg gets a reason on failure. */
int agent_filter_load(char *msg, size_t msg_len);

/* Records the helper writes to its status fd. Each is one write() well under
 * PIPE_BUF, so it arrives whole. */
#define AGENT_STATUS_MAGIC 0x53455354u
enum agent_status_kind {
    AGENT_STATUS_STARTED = 1, /* the helper runs inside the jail */
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

#endif
