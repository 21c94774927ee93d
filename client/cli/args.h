/* The pure parts of the `safeeval` command: argument parsing, sizes and
 * durations, exit-code mapping. No I/O, no gRPC: unit-tested on their own. */
#ifndef SAFEEVAL_CLI_ARGS_H
#define SAFEEVAL_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>

#include "safeeval/safeeval.h"

/* Exit codes of the command itself (documented in --help and the README). */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_USAGE = 2,   /* bad command line */
    CLI_EXIT_SERVICE = 3, /* the service answered with an error status */
    CLI_EXIT_LOCAL = 4,   /* a local file or stdin could not be read */
    /* A run that a limit ended (what the same limit gives a local shell). */
    CLI_EXIT_WALL_TIMEOUT = 124, /* like timeout(1) */
    /* Not 137 (128 + SIGKILL): a script killed by a plain SIGKILL must stay
     * distinguishable from one the memory limit ended. */
    CLI_EXIT_MEMORY_LIMIT = 125,
    CLI_EXIT_CPU_TIMEOUT = 152,     /* 128 + SIGXCPU */
    CLI_EXIT_FILE_SIZE_LIMIT = 153, /* 128 + SIGXFSZ */
    CLI_EXIT_INTERRUPTED = 130,     /* 128 + SIGINT: the command was interrupted */
};

typedef enum cli_cmd {
    CLI_CMD_NONE = 0,
    CLI_CMD_CREATE,
    CLI_CMD_EVAL,
    CLI_CMD_EXEC,
    CLI_CMD_DESTROY,
    CLI_CMD_LS,
    CLI_CMD_GET,
    CLI_CMD_RUN,
    CLI_CMD_HELP,
    CLI_CMD_VERSION,
    CLI_CMD_INFO,
} cli_cmd;

typedef struct cli_file_arg {
    const char *local;  /* path on this machine */
    const char *remote; /* path in the run's working dir (points into argv or local) */
} cli_file_arg;

/* Everything the command line says. Arrays are allocated (cli_args_free);
 * strings point into argv. */
typedef struct cli_args {
    cli_cmd cmd;
    int help; /* --help on a subcommand */
    const char *target;
    uint32_t timeout_ms; /* 0 = no deadline */
    int timeout_set;
    int json;
    const char *ca_file, *cert_file, *key_file, *token_file;

    const char *id;         /* eval, exec, destroy, get */
    const char *file;       /* exec, run: the script */
    const char *code;       /* eval -c */
    const char *stdin_file; /* --stdin-file / --stdin; "-" = our own stdin */

    const char *python;
    const char **modules;
    size_t n_modules;
    safeeval_limits limits;
    uint32_t idle_timeout_s;
    uint32_t max_runs; /* create --max-runs: 0 = the service's default */
    safeeval_kv *labels;
    size_t n_labels;

    safeeval_kv *env;
    size_t n_env;
    cli_file_arg *files;
    size_t n_files;
    const char **args; /* --arg values, then the script's own arguments */
    size_t n_args;
    const char **collect; /* --collect GLOB: files to bring back */
    size_t n_collect;
    const char *out_dir; /* --out-dir: where collected files go (default ".") */
    int progress;        /* --progress: create progress lines even off a terminal */
} cli_args;

/* Parses argv (argv[0] is the program). Returns 0, or -1 with a one-line
 * reason in errbuf (usage error). */
int cli_args_parse(cli_args *out, int argc, char **argv, char *errbuf, size_t errlen);
void cli_args_free(cli_args *a);

/* "512", "64K", "1.5M"? no: integers only, with an optional K, M, G or T
 * suffix (powers of 1024, "KiB"/"KB"/"k" accepted). 0 or -1 on overflow or
 * junk. */
int cli_parse_size(uint64_t *out, const char *s);
/* A plain unsigned decimal that fits in max. */
int cli_parse_uint(uint64_t *out, const char *s, uint64_t max);
/* "30" (seconds), "1500ms", "30s", "2m". */
int cli_parse_duration_ms(uint32_t *out, const char *s);
/* "KEY=VALUE" -> kv pointing into s (s is modified: '=' becomes NUL). The
 * key must be non-empty. */
int cli_parse_kv(safeeval_kv *out, char *s);
/* "LOCAL[:REMOTE]"; REMOTE defaults to LOCAL's base name. s is modified. */
int cli_parse_file_arg(cli_file_arg *out, char *s);

/* The command's exit status for a run's result. */
int cli_exit_code(const safeeval_result *r);

/* Text of `safeeval --help` / `safeeval CMD --help`. */
const char *cli_usage(cli_cmd cmd);
const char *cli_cmd_name(cli_cmd cmd);

#endif
