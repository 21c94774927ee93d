/* Command-line parsing for `safeeval`. A small table-driven parser rather
 * than getopt: options may come before or after positionals, but everything
 * after the script of `exec`/`run` belongs to the script, dashes included. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"

enum opt_id {
    O_HELP = 1,
    O_VERSION,
    O_TARGET,
    O_TIMEOUT,
    O_JSON,
    O_CA,
    O_CERT,
    O_KEY,
    O_TOKEN_FILE,
    O_PYTHON,
    O_MODULE,
    O_WALL,
    O_CPU,
    O_MEMORY,
    O_PROCS,
    O_OUTPUT,
    O_FILESIZE,
    O_IDLE,
    O_MAX_RUNS,
    O_LABEL,
    O_CODE,
    O_STDIN,
    O_ENV,
    O_FILE,
    O_ARG,
    O_COLLECT,
    O_OUT_DIR,
    O_MAX_COLLECT_FILES,
    O_MAX_COLLECT_BYTES,
    O_PROGRESS,
};

#define M(c) (1u << (c))
#define ALL_CMDS 0xffffu
#define SANDBOX_CMDS (M(CLI_CMD_CREATE) | M(CLI_CMD_RUN))
#define RUN_CMDS (M(CLI_CMD_EVAL) | M(CLI_CMD_EXEC) | M(CLI_CMD_RUN))
#define LIMIT_CMDS (SANDBOX_CMDS | RUN_CMDS)

typedef struct opt_def {
    const char *name;
    char short_name;
    int has_arg;
    enum opt_id id;
    unsigned cmds; /* where it is allowed */
} opt_def;

static const opt_def opts[] = {
    {"help", 'h', 0, O_HELP, ALL_CMDS},
    {"version", 0, 0, O_VERSION, ALL_CMDS},
    {"target", 't', 1, O_TARGET, ALL_CMDS},
    {"timeout", 0, 1, O_TIMEOUT, ALL_CMDS},
    {"json", 0, 0, O_JSON, ALL_CMDS},
    {"ca", 0, 1, O_CA, ALL_CMDS},
    {"cert", 0, 1, O_CERT, ALL_CMDS},
    {"key", 0, 1, O_KEY, ALL_CMDS},
    {"token-file", 0, 1, O_TOKEN_FILE, ALL_CMDS},
    {"python", 'p', 1, O_PYTHON, SANDBOX_CMDS},
    {"module", 'm', 1, O_MODULE, SANDBOX_CMDS},
    {"idle-timeout", 0, 1, O_IDLE, SANDBOX_CMDS},
    {"max-runs", 0, 1, O_MAX_RUNS, M(CLI_CMD_CREATE)},
    {"label", 'l', 1, O_LABEL, SANDBOX_CMDS},
    {"wall-ms", 0, 1, O_WALL, LIMIT_CMDS},
    {"cpu-ms", 0, 1, O_CPU, LIMIT_CMDS},
    {"memory", 0, 1, O_MEMORY, LIMIT_CMDS},
    {"max-processes", 0, 1, O_PROCS, LIMIT_CMDS},
    {"max-output", 0, 1, O_OUTPUT, LIMIT_CMDS},
    {"max-file", 0, 1, O_FILESIZE, LIMIT_CMDS},
    {"code", 'c', 1, O_CODE, M(CLI_CMD_EVAL)},
    {"stdin-file", 0, 1, O_STDIN, RUN_CMDS},
    {"stdin", 0, 1, O_STDIN, RUN_CMDS},
    {"env", 'e', 1, O_ENV, RUN_CMDS},
    {"file", 'f', 1, O_FILE, RUN_CMDS},
    {"arg", 'a', 1, O_ARG, RUN_CMDS},
    {"collect", 0, 1, O_COLLECT, RUN_CMDS},
    {"out-dir", 0, 1, O_OUT_DIR, RUN_CMDS},
    {"max-collect-files", 0, 1, O_MAX_COLLECT_FILES, LIMIT_CMDS},
    {"max-collect-bytes", 0, 1, O_MAX_COLLECT_BYTES, LIMIT_CMDS},
    {"progress", 0, 0, O_PROGRESS, SANDBOX_CMDS},
};

static const struct {
    const char *name;
    cli_cmd cmd;
    int n_pos; /* positionals before the script's own arguments */
    int takes_rest;
} cmds[] = {
    {"create", CLI_CMD_CREATE, 0, 0},   {"eval", CLI_CMD_EVAL, 1, 0},
    {"exec", CLI_CMD_EXEC, 2, 1},       {"destroy", CLI_CMD_DESTROY, 1, 0},
    {"rm", CLI_CMD_DESTROY, 1, 0},      {"ls", CLI_CMD_LS, 0, 0},
    {"list", CLI_CMD_LS, 0, 0},         {"get", CLI_CMD_GET, 1, 0},
    {"run", CLI_CMD_RUN, 1, 1},         {"help", CLI_CMD_HELP, 0, 0},
    {"version", CLI_CMD_VERSION, 0, 0}, {"info", CLI_CMD_INFO, 0, 0},
};

const char *
cli_cmd_name(cli_cmd cmd)
{
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (cmds[i].cmd == cmd)
            return cmds[i].name;
    return "safeeval";
}

static int fail(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(char *errbuf, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

int
cli_parse_uint(uint64_t *out, const char *s, uint64_t max)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        unsigned d = (unsigned)(*s - '0');
        if (v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int
cli_parse_size(uint64_t *out, const char *s)
{
    if (!s)
        return -1;
    size_t n = strspn(s, "0123456789");
    if (n == 0 || n > 20)
        return -1;
    char digits[21];
    memcpy(digits, s, n);
    digits[n] = '\0';
    uint64_t v;
    if (cli_parse_uint(&v, digits, UINT64_MAX) != 0)
        return -1;
    const char *suf = s + n;
    unsigned shift = 0;
    switch (*suf) {
    case '\0':
        break;
    case 'k':
    case 'K':
        shift = 10;
        break;
    case 'm':
    case 'M':
        shift = 20;
        break;
    case 'g':
    case 'G':
        shift = 30;
        break;
    case 't':
    case 'T':
        shift = 40;
        break;
    case 'b':
    case 'B':
        if (suf[1])
            return -1;
        *out = v;
        return 0;
    default:
        return -1;
    }
    if (shift) {
        suf++;
        if (strcmp(suf, "") != 0 && strcmp(suf, "B") != 0 && strcmp(suf, "iB") != 0 &&
            strcmp(suf, "i") != 0)
            return -1;
        if (v > (UINT64_MAX >> shift))
            return -1;
        v <<= shift;
    }
    *out = v;
    return 0;
}

int
cli_parse_duration_ms(uint32_t *out, const char *s)
{
    if (!s)
        return -1;
    size_t n = strspn(s, "0123456789");
    if (n == 0 || n > 10)
        return -1;
    char digits[11];
    memcpy(digits, s, n);
    digits[n] = '\0';
    uint64_t v;
    if (cli_parse_uint(&v, digits, UINT32_MAX) != 0)
        return -1;
    const char *suf = s + n;
    uint64_t mult;
    if (strcmp(suf, "ms") == 0)
        mult = 1;
    else if (strcmp(suf, "") == 0 || strcmp(suf, "s") == 0)
        mult = 1000;
    else if (strcmp(suf, "m") == 0)
        mult = 60000;
    else
        return -1;
    if (v > UINT32_MAX / mult)
        return -1;
    *out = (uint32_t)(v * mult);
    return 0;
}

int
cli_parse_kv(safeeval_kv *out, char *s)
{
    char *eq = s ? strchr(s, '=') : NULL;
    if (!eq || eq == s)
        return -1;
    *eq = '\0';
    out->key = s;
    out->value = eq + 1;
    return 0;
}

int
cli_parse_file_arg(cli_file_arg *out, char *s)
{
    if (!s || !*s)
        return -1;
    char *colon = strchr(s, ':');
    if (colon) {
        *colon = '\0';
        if (!*s || !colon[1])
            return -1;
        out->local = s;
        out->remote = colon + 1;
        return 0;
    }
    const char *base = strrchr(s, '/');
    base = base ? base + 1 : s;
    if (!*base)
        return -1;
    out->local = s;
    out->remote = base;
    return 0;
}

int
cli_exit_code(const safeeval_result *r)
{
    switch (r->reason) {
    case SAFEEVAL_EXIT_WALL_TIMEOUT:
        return CLI_EXIT_WALL_TIMEOUT;
    case SAFEEVAL_EXIT_CPU_TIMEOUT:
        return CLI_EXIT_CPU_TIMEOUT;
    case SAFEEVAL_EXIT_MEMORY_LIMIT:
        return CLI_EXIT_MEMORY_LIMIT;
    case SAFEEVAL_EXIT_FILE_SIZE_LIMIT:
        return CLI_EXIT_FILE_SIZE_LIMIT;
    case SAFEEVAL_EXIT_SIGNALED:
        if (r->signal > 0 && r->signal < 128)
            return 128 + r->signal;
        if (r->exit_code < 0 && r->exit_code > -128)
            return 128 - r->exit_code;
        return 128 + SIGKILL;
    default:
        /* EXITED, or a service that does not say: trust exit_code. */
        if (r->exit_code < 0 && r->exit_code > -128)
            return 128 - r->exit_code;
        if (r->signal > 0 && r->signal < 128)
            return 128 + r->signal;
        return r->exit_code & 0xff;
    }
}

/* Grows an array by one element; returns the new slot or NULL. */
static void *
push(void *arrp, size_t *n, size_t elem)
{
    void **arr = arrp;
    char *p = realloc(*arr, (*n + 1) * elem);
    if (!p)
        return NULL;
    *arr = p;
    memset(p + *n * elem, 0, elem);
    return p + (*n)++ * elem;
}

void
cli_args_free(cli_args *a)
{
    free(a->modules);
    free(a->labels);
    free(a->env);
    free(a->files);
    free(a->args);
    free(a->collect);
    memset(a, 0, sizeof(*a));
}

static int
set_u32(uint32_t *dst, const char *name, const char *v, char *errbuf, size_t errlen)
{
    uint64_t x;
    if (cli_parse_uint(&x, v, UINT32_MAX) != 0)
        return fail(errbuf, errlen, "--%s: '%s' is not a number up to %u", name, v, UINT32_MAX);
    *dst = (uint32_t)x;
    return 0;
}

static int
set_size(uint64_t *dst, const char *name, const char *v, char *errbuf, size_t errlen)
{
    if (cli_parse_size(dst, v) != 0)
        return fail(errbuf, errlen, "--%s: '%s' is not a size (bytes, or with K, M, G, T)", name,
                    v);
    return 0;
}

static int
apply(cli_args *a, const opt_def *o, char *v, char *errbuf, size_t errlen)
{
    switch (o->id) {
    case O_HELP:
        a->help = 1;
        return 0;
    case O_VERSION:
        a->cmd = CLI_CMD_VERSION;
        return 0;
    case O_TARGET:
        a->target = v;
        return 0;
    case O_TIMEOUT:
        if (cli_parse_duration_ms(&a->timeout_ms, v) != 0)
            return fail(errbuf, errlen, "--timeout: '%s' is not a duration (30, 30s, 500ms, 2m)",
                        v);
        a->timeout_set = 1;
        return 0;
    case O_JSON:
        a->json = 1;
        return 0;
    case O_CA:
        a->ca_file = v;
        return 0;
    case O_CERT:
        a->cert_file = v;
        return 0;
    case O_KEY:
        a->key_file = v;
        return 0;
    case O_TOKEN_FILE:
        a->token_file = v;
        return 0;
    case O_PYTHON:
        a->python = v;
        return 0;
    case O_MODULE: {
        const char **slot = push(&a->modules, &a->n_modules, sizeof(*slot));
        if (!slot)
            return fail(errbuf, errlen, "out of memory");
        *slot = v;
        return 0;
    }
    case O_WALL:
        return set_u32(&a->limits.wall_time_ms, o->name, v, errbuf, errlen);
    case O_CPU:
        return set_u32(&a->limits.cpu_time_ms, o->name, v, errbuf, errlen);
    case O_PROCS:
        return set_u32(&a->limits.max_processes, o->name, v, errbuf, errlen);
    case O_IDLE:
        return set_u32(&a->idle_timeout_s, o->name, v, errbuf, errlen);
    case O_MAX_RUNS:
        return set_u32(&a->max_runs, o->name, v, errbuf, errlen);
    case O_MEMORY:
        return set_size(&a->limits.memory_bytes, o->name, v, errbuf, errlen);
    case O_OUTPUT:
        return set_size(&a->limits.max_output_bytes, o->name, v, errbuf, errlen);
    case O_FILESIZE:
        return set_size(&a->limits.max_file_bytes, o->name, v, errbuf, errlen);
    case O_MAX_COLLECT_FILES:
        return set_u32(&a->limits.max_collect_files, o->name, v, errbuf, errlen);
    case O_MAX_COLLECT_BYTES:
        return set_size(&a->limits.max_collect_bytes, o->name, v, errbuf, errlen);
    case O_COLLECT: {
        const char **slot = push(&a->collect, &a->n_collect, sizeof(*slot));
        if (!slot)
            return fail(errbuf, errlen, "out of memory");
        *slot = v;
        return 0;
    }
    case O_OUT_DIR:
        if (!*v)
            return fail(errbuf, errlen, "--out-dir: empty");
        a->out_dir = v;
        return 0;
    case O_PROGRESS:
        a->progress = 1;
        return 0;
    case O_LABEL:
    case O_ENV: {
        int label = o->id == O_LABEL;
        safeeval_kv *slot = label ? push(&a->labels, &a->n_labels, sizeof(*slot))
                                  : push(&a->env, &a->n_env, sizeof(*slot));
        if (!slot)
            return fail(errbuf, errlen, "out of memory");
        if (cli_parse_kv(slot, v) != 0)
            return fail(errbuf, errlen, "--%s: '%s' is not KEY=VALUE", o->name, v);
        return 0;
    }
    case O_CODE:
        a->code = v;
        return 0;
    case O_STDIN:
        a->stdin_file = v;
        return 0;
    case O_FILE: {
        cli_file_arg *slot = push(&a->files, &a->n_files, sizeof(*slot));
        if (!slot)
            return fail(errbuf, errlen, "out of memory");
        if (cli_parse_file_arg(slot, v) != 0)
            return fail(errbuf, errlen, "--file: '%s' is not LOCAL[:REMOTE]", v);
        return 0;
    }
    case O_ARG: {
        const char **slot = push(&a->args, &a->n_args, sizeof(*slot));
        if (!slot)
            return fail(errbuf, errlen, "out of memory");
        *slot = v;
        return 0;
    }
    }
    return fail(errbuf, errlen, "internal: unknown option");
}

/* Parses argv[*i] (an option) and maybe its value in argv[*i + 1]. */
static int
parse_option(cli_args *a, int argc, char **argv, int *i, char *errbuf, size_t errlen)
{
    char *arg = argv[*i];
    const opt_def *o = NULL;
    char *value = NULL;
    if (arg[1] == '-') {
        const char *name = arg + 2;
        char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++)
            if (strlen(opts[k].name) == len && strncmp(opts[k].name, name, len) == 0)
                o = &opts[k];
        if (!o)
            return fail(errbuf, errlen, "unknown option '%.*s'", (int)(len + 2), arg);
        if (eq) {
            if (!o->has_arg)
                return fail(errbuf, errlen, "--%s takes no value", o->name);
            value = eq + 1;
        }
    } else {
        for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++)
            if (opts[k].short_name && opts[k].short_name == arg[1])
                o = &opts[k];
        if (!o)
            return fail(errbuf, errlen, "unknown option '-%c'", arg[1]);
        if (arg[2]) {
            if (!o->has_arg)
                return fail(errbuf, errlen, "-%c takes no value", arg[1]);
            value = arg + 2;
        }
    }
    if (a->cmd != CLI_CMD_NONE && !(o->cmds & M(a->cmd)))
        return fail(errbuf, errlen, "--%s does not apply to '%s'", o->name, cli_cmd_name(a->cmd));
    if (a->cmd == CLI_CMD_NONE && o->cmds != ALL_CMDS)
        return fail(errbuf, errlen, "--%s goes after the command", o->name);
    if (o->has_arg && !value) {
        if (*i + 1 >= argc)
            return fail(errbuf, errlen, "--%s needs a value", o->name);
        value = argv[++*i];
    }
    return apply(a, o, value, errbuf, errlen);
}

static int
is_option(const char *s)
{
    return s[0] == '-' && s[1] != '\0';
}

int
cli_args_parse(cli_args *a, int argc, char **argv, char *errbuf, size_t errlen)
{
    memset(a, 0, sizeof(*a));
    errbuf[0] = '\0';
    int i = 1;
    /* Global options before the command. */
    for (; i < argc && is_option(argv[i]) && strcmp(argv[i], "--") != 0; i++)
        if (parse_option(a, argc, argv, &i, errbuf, errlen) != 0)
            goto bad;
    if (a->cmd == CLI_CMD_VERSION)
        return 0;
    if (i >= argc) {
        if (a->help) {
            a->cmd = CLI_CMD_HELP;
            return 0;
        }
        fail(errbuf, errlen, "no command (try --help)");
        goto bad;
    }
    int n_pos = 0, takes_rest = 0;
    for (size_t k = 0; k < sizeof(cmds) / sizeof(cmds[0]); k++)
        if (strcmp(cmds[k].name, argv[i]) == 0) {
            a->cmd = cmds[k].cmd;
            n_pos = cmds[k].n_pos;
            takes_rest = cmds[k].takes_rest;
        }
    if (a->cmd == CLI_CMD_NONE) {
        fail(errbuf, errlen, "unknown command '%s' (try --help)", argv[i]);
        goto bad;
    }
    i++;

    const char *pos[2] = {NULL, NULL};
    int have = 0, options_done = 0;
    for (; i < argc; i++) {
        char *arg = argv[i];
        if (!options_done && strcmp(arg, "--") == 0) {
            options_done = 1;
            continue;
        }
        if (!options_done && is_option(arg)) {
            if (parse_option(a, argc, argv, &i, errbuf, errlen) != 0)
                goto bad;
            continue;
        }
        if (have < n_pos) {
            pos[have++] = arg;
            if (takes_rest && have == n_pos) {
                /* The script's own arguments: everything that follows. */
                for (i++; i < argc; i++) {
                    const char **slot = push(&a->args, &a->n_args, sizeof(*slot));
                    if (!slot) {
                        fail(errbuf, errlen, "out of memory");
                        goto bad;
                    }
                    *slot = argv[i];
                }
                break;
            }
            continue;
        }
        fail(errbuf, errlen, "%s: unexpected argument '%s'", cli_cmd_name(a->cmd), arg);
        goto bad;
    }
    if (a->help || a->cmd == CLI_CMD_HELP || a->cmd == CLI_CMD_VERSION)
        return 0;
    if (have < n_pos) {
        static const char *const what[][2] = {
            [CLI_CMD_EVAL] = {"a sandbox id", NULL},
            [CLI_CMD_EXEC] = {"a sandbox id", "a script file"},
            [CLI_CMD_DESTROY] = {"a sandbox id", NULL},
            [CLI_CMD_GET] = {"a sandbox id", NULL},
            [CLI_CMD_RUN] = {"a script file", NULL},
        };
        fail(errbuf, errlen, "%s: missing %s", cli_cmd_name(a->cmd), what[a->cmd][have]);
        goto bad;
    }
    switch (a->cmd) {
    case CLI_CMD_EVAL:
    case CLI_CMD_DESTROY:
    case CLI_CMD_GET:
        a->id = pos[0];
        break;
    case CLI_CMD_EXEC:
        a->id = pos[0];
        a->file = pos[1];
        break;
    case CLI_CMD_RUN:
        a->file = pos[0];
        break;
    default:
        break;
    }
    if (a->id && !*a->id) {
        fail(errbuf, errlen, "%s: the sandbox id is empty", cli_cmd_name(a->cmd));
        goto bad;
    }
    if (a->cmd == CLI_CMD_EVAL && a->code && !*a->code) {
        fail(errbuf, errlen, "eval: -c: the code is empty");
        goto bad;
    }
    if (a->cmd == CLI_CMD_EVAL && !a->code && a->stdin_file && strcmp(a->stdin_file, "-") == 0) {
        fail(errbuf, errlen,
             "eval: the code comes from stdin unless -c is given, so --stdin - "
             "needs -c");
        goto bad;
    }
    if ((a->cert_file != NULL) != (a->key_file != NULL)) {
        fail(errbuf, errlen, "--cert and --key go together");
        goto bad;
    }
    return 0;
bad:
    cli_args_free(a);
    return -1;
}

static const char usage_main[] =
    "usage: safeeval [--target T] [--timeout D] [--json] COMMAND [OPTIONS] ...\n"
    "\n"
    "Runs Python in sandboxes of a safeeval service.\n"
    "\n"
    "commands:\n"
    "  create  --python V [--module M]... [limits] [--idle-timeout S] [--max-runs N]\n"
    "          [--label K=V]...\n"
    "          create a sandbox and print its id\n"
    "  eval    ID [-c CODE] [run options]   run code (from -c, else from stdin)\n"
    "  exec    ID FILE [ARGS...]            run a local script file in a sandbox\n"
    "  run     --python V [--module M]... FILE [ARGS...]\n"
    "          create a sandbox, run FILE, destroy the sandbox (also on failure/Ctrl-C)\n"
    "  get     ID                           show a sandbox\n"
    "  ls                                   list the sandboxes\n"
    "  info                                 what the service offers: its version, Python\n"
    "                                       versions, default and largest limits\n"
    "  destroy ID                           destroy a sandbox (alias: rm)\n"
    "  version                              print the version and build id\n"
    "\n"
    "global options (anywhere):\n"
    "  -t, --target T     the service: unix:PATH or HOST:PORT (default: $SAFEEVAL_TARGET,\n"
    "                     else unix:/run/safeeval/safeevald.sock)\n"
    "  --timeout D        deadline of each call: 30 (s), 500ms, 2m (default 10m)\n"
    "  --json             print results as JSON\n"
    "  --ca FILE          TLS: verify the service against this CA (PEM)\n"
    "  --cert F --key F   TLS: client certificate (mutual TLS)\n"
    "  --token-file FILE  send the token in FILE as \"authorization: Bearer ...\"\n"
    "                     (default: $SAFEEVAL_TOKEN if set)\n"
    "  -h, --help         help; COMMAND --help for a command's options\n"
    "\n"
    "A run's stdout and stderr are written raw to safeeval's own stdout and\n"
    "stderr, and safeeval exits as the script did:\n"
    "  0-255  the script's exit status\n"
    "  128+N  the script was killed by signal N\n"
    "  124    the wall-time limit ended the run (like timeout(1))\n"
    "  152    the CPU-time limit ended the run (128 + SIGXCPU)\n"
    "  125    the memory limit ended the run\n"
    "  153    the file-size limit ended the run (128 + SIGXFSZ)\n"
    "  130    safeeval was interrupted (SIGINT/SIGTERM); `run` destroyed its sandbox\n"
    "safeeval's own failures (one line on stderr, \"safeeval: CMD: STATUS: message\"):\n"
    "  2      usage error\n"
    "  3      the service answered with an error (NOT_FOUND, UNAVAILABLE, ...)\n"
    "  4      a local file or stdin could not be read\n"
    "With --json the exit status is the same; the JSON says which of these it was.\n";

static const char limits_help[] =
    "limits (0 or unset = the default; a run may lower, never raise, its sandbox's):\n"
    "  --wall-ms N        wall-clock time of a run, in milliseconds\n"
    "  --cpu-ms N         CPU time of a run, in milliseconds\n"
    "  --memory SIZE      memory of a run (bytes; K, M, G, T suffixes = powers of 1024)\n"
    "  --max-processes N  processes and threads alive at once\n"
    "  --max-output SIZE  bytes kept of stdout and of stderr\n"
    "  --max-file SIZE    largest file a run may write\n"
    "  --max-collect-files N   files --collect may bring back\n"
    "  --max-collect-bytes SIZE  bytes of those files together\n";

static const char run_opts_help[] =
    "run options:\n"
    "  --stdin-file F     the run's stdin from file F; '-' = safeeval's own stdin\n"
    "                     (alias --stdin). Without it the run's stdin is empty\n"
    "                     (for eval without -c, safeeval's stdin is the code).\n"
    "  -e, --env K=V      an environment variable (repeatable)\n"
    "  -f, --file L[:R]   put local file L in the run's working dir as R\n"
    "                     (default: L's base name; repeatable)\n"
    "  -a, --arg A        an argument of the script, sys.argv[1:] (repeatable)\n"
    "  --collect GLOB     bring back the run's files matching GLOB (a path under its\n"
    "                     working dir; '*' stays within a directory; repeatable);\n"
    "                     they are written under --out-dir, never outside it\n"
    "  --out-dir DIR      where collected files go (default: the current directory)\n"
    "The run's output is printed as it comes (with --json: at its end).\n";

static char usage_buf[4096];

const char *
cli_usage(cli_cmd cmd)
{
    switch (cmd) {
    case CLI_CMD_CREATE:
        snprintf(usage_buf, sizeof(usage_buf),
                 "usage: safeeval create --python V [--module M]... [limits] [--idle-timeout S]\n"
                 "                       [--max-runs N] [--label K=V]...\n"
                 "Builds (or reuses) the image and starts a sandbox; prints its id\n"
                 "(with --json, the whole sandbox). While an image builds, its steps and\n"
                 "pip's lines are shown on stderr if it is a terminal (or with --progress).\n"
                 "  --progress           show the build's lines on stderr even off a terminal\n"
                 "  -p, --python V       Python version: 3.11, 3.13, ... (default: the service's)\n"
                 "  -m, --module M       a pip requirement: numpy, requests==2.31.0 (repeatable)\n"
                 "  --idle-timeout S     seconds unused before the service reaps the sandbox\n"
                 "  --max-runs N         runs at once, each in its own worker container (more\n"
                 "                       wait in the sandbox's queue); 0 = the service's default\n"
                 "  -l, --label K=V      a label kept with the sandbox (repeatable)\n"
                 "%s",
                 limits_help);
        return usage_buf;
    case CLI_CMD_EVAL:
        snprintf(usage_buf, sizeof(usage_buf),
                 "usage: safeeval eval ID [-c CODE] [run options] [limits]\n"
                 "Runs CODE (or, without -c, the code read from stdin) as a script.\n"
                 "  -c, --code CODE      the Python code\n%s%s",
                 run_opts_help, limits_help);
        return usage_buf;
    case CLI_CMD_EXEC:
        snprintf(usage_buf, sizeof(usage_buf),
                 "usage: safeeval exec ID FILE [ARGS...] [run options] [limits]\n"
                 "Sends local FILE and runs it under its base name; ARGS (everything after\n"
                 "FILE) become sys.argv[1:]. Options go before FILE.\n%s%s",
                 run_opts_help, limits_help);
        return usage_buf;
    case CLI_CMD_RUN:
        snprintf(usage_buf, sizeof(usage_buf),
                 "usage: safeeval run --python V [--module M]... [options] FILE [ARGS...]\n"
                 "Creates a sandbox, runs FILE in it, and destroys it, even when the run\n"
                 "fails or safeeval is interrupted. Limits apply to the sandbox.\n"
                 "  -p, --python V       Python version\n"
                 "  -m, --module M       a pip requirement (repeatable)\n"
                 "  -l, --label K=V      a label (repeatable)\n"
                 "  --progress           show the image build's lines on stderr even off a\n"
                 "                       terminal\n%s%s",
                 run_opts_help, limits_help);
        return usage_buf;
    case CLI_CMD_GET:
        return "usage: safeeval get ID [--json]\nShows one sandbox.\n";
    case CLI_CMD_LS:
        return "usage: safeeval ls [--json]\nLists the sandboxes, oldest first.\n";
    case CLI_CMD_DESTROY:
        return "usage: safeeval destroy ID\nDestroys a sandbox and everything it made.\n";
    case CLI_CMD_INFO:
        return "usage: safeeval info [--json]\nShows the service's version, the Python versions "
               "it can create\n(with their exact versions when known), and its default and "
               "largest limits.\n";
    default:
        return usage_main;
    }
}
