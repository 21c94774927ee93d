/* libsafeeval: the C client of the safeeval service.
 *
 * One safeeval_client holds one gRPC channel to a safeevald and may be used
 * from many threads at once: every call has its own completion queue.
 *
 *     safeeval_client *c;
 *     safeeval_client_opts co = SAFEEVAL_CLIENT_OPTS_INIT;
 *     safeeval_error err;
 *     co.target = "unix:/run/safeeval/safeevald.sock";
 *     if (safeeval_client_new(&c, &co, &err) != 0)
 *         fprintf(stderr, "%s: %s\n", safeeval_status_name(err.code), err.message);
 *
 * Conventions:
 * - Functions that can fail return 0 on success and -1 on failure; on failure
 *   the optional `err` out-param holds the gRPC status code (or a local code
 *   from the same table) and a message. `err` may be NULL.
 * - Results come back through `**out` params; they belong to the caller, who
 *   frees each with the matching `_free`.
 * - Options structs start with `struct_size`: always initialise them with
 *   their `_INIT` macro, so that a program built against an older header
 *   keeps working with a newer library. Pointers inside options are borrowed
 *   for the duration of the call only.
 * - A NULL options pointer means "all defaults".
 *
 * This header is C99 and includes nothing but the standard library.
 */
#ifndef SAFEEVAL_SAFEEVAL_H
#define SAFEEVAL_SAFEEVAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SAFEEVAL_VERSION_MAJOR 0
#define SAFEEVAL_VERSION_MINOR 1
#define SAFEEVAL_VERSION_PATCH 0
#define SAFEEVAL_VERSION_STRING "0.1.0"
/* One number that compares: 0x00MMmmpp. */
#define SAFEEVAL_VERSION_NUMBER                                                                    \
    ((SAFEEVAL_VERSION_MAJOR << 16) | (SAFEEVAL_VERSION_MINOR << 8) | SAFEEVAL_VERSION_PATCH)

#if defined(__GNUC__) && __GNUC__ >= 4
#define SAFEEVAL_API __attribute__((visibility("default")))
#else
#define SAFEEVAL_API
#endif

/* The version of the library actually loaded (may differ from the header's). */
SAFEEVAL_API const char *safeeval_version(void);

/* Status codes: the gRPC status codes, same numbers. Local failures (a file
 * that cannot be read, a bad argument) use INVALID_ARGUMENT or INTERNAL with
 * a message that says so. */
typedef enum safeeval_status {
    SAFEEVAL_STATUS_OK = 0,
    SAFEEVAL_STATUS_CANCELLED = 1,
    SAFEEVAL_STATUS_UNKNOWN = 2,
    SAFEEVAL_STATUS_INVALID_ARGUMENT = 3,
    SAFEEVAL_STATUS_DEADLINE_EXCEEDED = 4,
    SAFEEVAL_STATUS_NOT_FOUND = 5,
    SAFEEVAL_STATUS_ALREADY_EXISTS = 6,
    SAFEEVAL_STATUS_PERMISSION_DENIED = 7,
    SAFEEVAL_STATUS_RESOURCE_EXHAUSTED = 8,
    SAFEEVAL_STATUS_FAILED_PRECONDITION = 9,
    SAFEEVAL_STATUS_ABORTED = 10,
    SAFEEVAL_STATUS_OUT_OF_RANGE = 11,
    SAFEEVAL_STATUS_UNIMPLEMENTED = 12,
    SAFEEVAL_STATUS_INTERNAL = 13,
    SAFEEVAL_STATUS_UNAVAILABLE = 14,
    SAFEEVAL_STATUS_DATA_LOSS = 15,
    SAFEEVAL_STATUS_UNAUTHENTICATED = 16
} safeeval_status;

/* "NOT_FOUND" for 5; "UNKNOWN_STATUS" for codes outside the table. */
SAFEEVAL_API const char *safeeval_status_name(int code);

#define SAFEEVAL_ERROR_MESSAGE_MAX 512

/* Filled by every failing call. `message` is always NUL-terminated and is
 * cut to fit (the service's own text, or what went wrong locally). */
typedef struct safeeval_error {
    int code; /* a safeeval_status */
    char message[SAFEEVAL_ERROR_MESSAGE_MAX];
} safeeval_error;

/* ---- client ---- */

typedef struct safeeval_client safeeval_client;

typedef struct safeeval_client_opts {
    size_t struct_size;
    /* "unix:/run/safeeval/safeevald.sock" (unix:PATH) or "HOST:PORT". NULL =
     * the default socket above. */
    const char *target;
    /* PEM text (not paths). ca_pem set = TLS, verified against this CA;
     * cert_pem + key_pem set as well = mutual TLS. NULL = plaintext. */
    const char *ca_pem;
    const char *cert_pem;
    const char *key_pem;
    /* Sent as "authorization: Bearer <token>" on every call; NULL = none. */
    const char *token;
    /* Deadline of a call whose own timeout_ms is 0; 0 = no deadline. */
    uint32_t default_timeout_ms;
    /* Largest reply accepted; 0 = SAFEEVAL_DEFAULT_MAX_RECEIVE_BYTES. */
    size_t max_receive_bytes;
} safeeval_client_opts;

#define SAFEEVAL_DEFAULT_TARGET "unix:/run/safeeval/safeevald.sock"
#define SAFEEVAL_DEFAULT_TIMEOUT_MS 600000u
#define SAFEEVAL_DEFAULT_MAX_RECEIVE_BYTES ((size_t)256 * 1024 * 1024)

#define SAFEEVAL_CLIENT_OPTS_INIT                                                                  \
    {                                                                                              \
        sizeof(safeeval_client_opts), NULL, NULL, NULL, NULL, NULL, SAFEEVAL_DEFAULT_TIMEOUT_MS, 0 \
    }

/* Creates a client. Does not connect yet: the first call does, and a
 * service that is not there shows up as UNAVAILABLE on that call. */
SAFEEVAL_API int safeeval_client_new(safeeval_client **out, const safeeval_client_opts *opts,
                                     safeeval_error *err);
/* Closes the channel. No call on `c` may be in flight. NULL is a no-op. */
SAFEEVAL_API void safeeval_client_free(safeeval_client *c);

/* ---- limits, shared by sandboxes and runs ---- */

/* Every field 0 = "the default": the service's for a sandbox, the
 * sandbox's for a run. A run may lower its sandbox's limits, never raise. */
typedef struct safeeval_limits {
    uint32_t wall_time_ms;
    uint32_t cpu_time_ms;
    uint64_t memory_bytes;
    uint32_t max_processes;
    uint64_t max_output_bytes; /* per stream */
    uint64_t max_file_bytes;
    /* Files back (collect): at most this many files and bytes together.
     * Taken from the first of the four reserved words the struct was
     * released with, so its size and the offsets of the other fields are
     * unchanged (a program that kept them zero asks for the defaults). */
    uint32_t max_collect_files;
    uint32_t reserved32_; /* keep zero */
    uint64_t max_collect_bytes;
    uint64_t reserved_[2]; /* room to grow; keep zero */
} safeeval_limits;

#define SAFEEVAL_LIMITS_INIT_                                                                      \
    {                                                                                              \
        0, 0, 0, 0, 0, 0, 0, 0, 0,                                                                 \
        {                                                                                          \
            0, 0                                                                                   \
        }                                                                                          \
    }

/* A key/value pair (labels, environment). */
typedef struct safeeval_kv {
    const char *key;
    const char *value;
} safeeval_kv;

/* A file placed in a run's working directory. */
typedef struct safeeval_file {
    const char *path; /* relative: "data/in.csv"; no "..", not absolute */
    const void *data;
    size_t len;
} safeeval_file;

/* Per-call options of calls that take nothing else. */
typedef struct safeeval_call_opts {
    size_t struct_size;
    uint32_t timeout_ms; /* 0 = the client's default_timeout_ms */
    /* If non-NULL, the call is cancelled (status CANCELLED) soon after
     * *cancel becomes non-zero; the flag may be set from another thread or
     * a signal handler. */
    const volatile int *cancel;
} safeeval_call_opts;

#define SAFEEVAL_CALL_OPTS_INIT                                                                    \
    {                                                                                              \
        sizeof(safeeval_call_opts), 0, NULL                                                        \
    }

/* ---- sandboxes ---- */

typedef struct safeeval_sandbox {
    char *id;
    char *python_version; /* as the interpreter reports it: "3.11.2" */
    char **modules;       /* the requirements as requested */
    size_t n_modules;
    safeeval_limits limits; /* effective limits, no field 0 */
    char *image;
    int64_t created_at_ms;   /* since the Unix epoch */
    int64_t last_used_at_ms; /* since the Unix epoch */
    safeeval_kv *labels;     /* owned by the sandbox struct */
    size_t n_labels;
    uint32_t idle_timeout_s;
    /* Fields are only ever added here, at the end. */
    uint32_t max_concurrent_runs; /* runs at once: worker containers at most */
    uint32_t workers;             /* worker containers it has now */
    char *owner;                  /* the tenant that created it ("" = the anonymous one) */
} safeeval_sandbox;

typedef struct safeeval_sandbox_list {
    safeeval_sandbox *items; /* oldest first */
    size_t count;
} safeeval_sandbox_list;

/* A line of a sandbox's creation: an image build step, a line of pip's
 * output (printable ASCII, no newline). Called on the creating thread. */
typedef void (*safeeval_progress_fn)(const char *line, void *ud);

typedef struct safeeval_create_opts {
    size_t struct_size;
    const char *python_version; /* "3.11"; NULL or "" = the service's default */
    const char *const *modules; /* pip requirements: "numpy", "requests==2.31.0" */
    size_t n_modules;
    safeeval_limits limits;  /* defaults for every run in the sandbox */
    uint32_t idle_timeout_s; /* 0 = the service's default */
    const safeeval_kv *labels;
    size_t n_labels;
    uint32_t timeout_ms;        /* 0 = the client's default (an image build takes minutes) */
    const volatile int *cancel; /* as in safeeval_call_opts */
    /* Runs at once in the sandbox, each in its own worker container (more
     * wait in its queue); 0 = the service's default, above the service's
     * maximum = INVALID_ARGUMENT. Added after `cancel`: a program built
     * against an older header passes a smaller struct_size and gets 0. */
    uint32_t max_concurrent_runs;
    /* Set = the create streams its progress (CreateSandboxStream): each
     * line goes to on_progress(line, progress_ud) while the image builds.
     * NULL = no progress (the plain CreateSandbox). */
    safeeval_progress_fn on_progress;
    void *progress_ud;
} safeeval_create_opts;

#define SAFEEVAL_CREATE_OPTS_INIT                                                                  \
    {                                                                                              \
        sizeof(safeeval_create_opts), NULL, NULL, 0, SAFEEVAL_LIMITS_INIT_, 0, NULL, 0, 0, NULL,   \
            0, NULL, NULL                                                                          \
    }

/* Builds (or reuses) the image and starts a sandbox. *out: free with
 * safeeval_sandbox_free. */
SAFEEVAL_API int safeeval_sandbox_create(safeeval_sandbox **out, safeeval_client *c,
                                         const safeeval_create_opts *opts, safeeval_error *err);
SAFEEVAL_API int safeeval_sandbox_get(safeeval_sandbox **out, safeeval_client *c, const char *id,
                                      const safeeval_call_opts *opts, safeeval_error *err);
SAFEEVAL_API int safeeval_sandbox_list_all(safeeval_sandbox_list **out, safeeval_client *c,
                                           const safeeval_call_opts *opts, safeeval_error *err);
SAFEEVAL_API int safeeval_sandbox_destroy(safeeval_client *c, const char *id,
                                          const safeeval_call_opts *opts, safeeval_error *err);
/* NULL is a no-op. */
SAFEEVAL_API void safeeval_sandbox_free(safeeval_sandbox *sb);
SAFEEVAL_API void safeeval_sandbox_list_free(safeeval_sandbox_list *list);

/* ---- runs ---- */

typedef enum safeeval_exit_reason {
    SAFEEVAL_EXIT_UNSPECIFIED = 0,
    SAFEEVAL_EXIT_EXITED = 1,         /* ended by itself; exit_code is its status */
    SAFEEVAL_EXIT_SIGNALED = 2,       /* a signal not sent by a limit */
    SAFEEVAL_EXIT_WALL_TIMEOUT = 3,   /* wall_time_ms passed */
    SAFEEVAL_EXIT_CPU_TIMEOUT = 4,    /* cpu_time_ms used */
    SAFEEVAL_EXIT_MEMORY_LIMIT = 5,   /* memory_bytes reached */
    SAFEEVAL_EXIT_FILE_SIZE_LIMIT = 6 /* a write went past max_file_bytes */
} safeeval_exit_reason;

/* "EXITED", "WALL_TIMEOUT", ...; "UNSPECIFIED" for unknown values. */
SAFEEVAL_API const char *safeeval_exit_reason_name(int reason);

/* Output of a streamed run: `len` bytes (at most 64 KiB, any bytes) the run
 * wrote to `stream` (1 stdout, 2 stderr), in the order it wrote them per
 * stream. Called on the calling thread while the run goes on; the bytes
 * are borrowed for the call. Return 0 to go on; non-zero cancels the call
 * (and the run), which then fails with SAFEEVAL_STATUS_CANCELLED. A
 * callback that takes its time holds the run's output back (the service
 * buffers one chunk), never more than the run's own limits allow. */
typedef int (*safeeval_output_fn)(int stream, const void *data, size_t len, void *ud);

typedef struct safeeval_eval_opts {
    size_t struct_size;
    const void *stdin_data; /* the run's standard input; NULL = immediate EOF */
    size_t stdin_len;
    const char *const *args; /* sys.argv[1:] */
    size_t n_args;
    const safeeval_kv *env; /* extra environment variables */
    size_t n_env;
    const safeeval_file *files; /* files in the working directory */
    size_t n_files;
    safeeval_limits limits;     /* may lower the sandbox's limits; 0 = the sandbox's */
    uint32_t timeout_ms;        /* 0 = the client's default */
    const volatile int *cancel; /* as in safeeval_call_opts */
    /* Added after `cancel` (older programs pass a smaller struct_size):
     * paths or fnmatch(3) globs under the run's working dir ("out.png", or
     * '*' for any name within one directory) whose regular files come
     * back in the result's `files` (symlinks never followed; at most
     * limits.max_collect_files files and max_collect_bytes bytes, then
     * files_truncated). */
    const char *const *collect;
    size_t n_collect;
    /* Set = the run is streamed (EvalStream / ExecuteFileStream): output
     * goes to on_output as the run writes it, and the result's stdout and
     * stderr are empty (their totals and truncated flags are the run's). */
    safeeval_output_fn on_output;
    void *output_ud;
} safeeval_eval_opts;

#define SAFEEVAL_EVAL_OPTS_INIT                                                                    \
    {                                                                                              \
        sizeof(safeeval_eval_opts), NULL, 0, NULL, 0, NULL, 0, NULL, 0, SAFEEVAL_LIMITS_INIT_, 0,  \
            NULL, NULL, 0, NULL, NULL                                                              \
    }

/* What one run did. stdout_data/stderr_data hold stdout_len/stderr_len
 * bytes (any bytes, not only text) followed by a NUL that is not counted,
 * so text output can be printed directly. */
typedef struct safeeval_result {
    safeeval_exit_reason reason;
    int exit_code; /* like subprocess returncode: -N = killed by signal N */
    int signal;    /* the signal that ended the run; 0 = none */
    char *stdout_data;
    size_t stdout_len;
    char *stderr_data;
    size_t stderr_len;
    int stdout_truncated; /* 1 if the run wrote more than was kept */
    int stderr_truncated;
    uint64_t stdout_bytes; /* total written, kept or not */
    uint64_t stderr_bytes;
    uint64_t wall_time_us;
    uint64_t cpu_time_us;
    uint64_t max_rss_bytes;
    /* Fields are only ever added here, at the end (the library allocates
     * the struct). The files `collect` named, in path order, owned by the
     * result: path is a relative path ("out/a.csv"; never absolute, never
     * ".."; still check it before you write it anywhere), data holds len
     * bytes. */
    safeeval_file *files;
    size_t n_files;
    int files_truncated; /* 1 if a matching file was left out (a cap, or the run was killed) */
} safeeval_result;

/* Runs `code` as the script __main__ in a fresh jail in sandbox `id`. */
SAFEEVAL_API int safeeval_sandbox_eval(safeeval_result **out, safeeval_client *c, const char *id,
                                       const char *code, const safeeval_eval_opts *opts,
                                       safeeval_error *err);
/* Reads `path` on this machine and runs its content under its base name. */
SAFEEVAL_API int safeeval_sandbox_execute_file(safeeval_result **out, safeeval_client *c,
                                               const char *id, const char *path,
                                               const safeeval_eval_opts *opts, safeeval_error *err);
/* Runs `len` bytes of `data` as the script named `filename` (a base name). */
SAFEEVAL_API int safeeval_sandbox_execute_buffer(safeeval_result **out, safeeval_client *c,
                                                 const char *id, const char *filename,
                                                 const void *data, size_t len,
                                                 const safeeval_eval_opts *opts,
                                                 safeeval_error *err);
/* NULL is a no-op. */
SAFEEVAL_API void safeeval_result_free(safeeval_result *r);

/* ---- the server ---- */

/* A Python version the server can create sandboxes for. */
typedef struct safeeval_python {
    char *version;      /* what python_version may say: "3.11" */
    char *full_version; /* "3.11.2"; "" when the server does not know it yet */
    char *base_image;   /* the base image it is built on */
} safeeval_python;

typedef struct safeeval_server_info {
    char *version;     /* the server's version: "0.1.0" */
    char *build_id;    /* the build it runs */
    char *api_version; /* "safeeval.v1" */
    safeeval_python *pythons;
    size_t n_pythons;
    char *default_python_version;
    safeeval_limits default_limits; /* a sandbox's limits when it names none */
    safeeval_limits max_limits;     /* the most a sandbox or run may ask */
    uint32_t max_concurrent_runs;   /* the most a sandbox may ask */
    uint32_t max_sandboxes;         /* live sandboxes at once */
} safeeval_server_info;

/* What the server offers (GetServerInfo). *out: free with
 * safeeval_server_info_free. */
SAFEEVAL_API int safeeval_server_info_get(safeeval_server_info **out, safeeval_client *c,
                                          const safeeval_call_opts *opts, safeeval_error *err);
/* NULL is a no-op. */
SAFEEVAL_API void safeeval_server_info_free(safeeval_server_info *info);

/* Largest local file execute_file reads (the service's own request cap is
 * usually far lower). */
#define SAFEEVAL_MAX_LOCAL_FILE_BYTES ((size_t)256 * 1024 * 1024)

#ifdef __cplusplus
}
#endif

#endif
