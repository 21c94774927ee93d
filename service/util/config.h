/* One config table drives the flags, the config file and --help (redis
 * style). A table is an array of config_opt; each names a typed destination
 * the engine fills, in this order: the default, then the file given with
 * --config, then the flags (`--name value` or `--name=value`), so flags
 * override the file. Every value is parsed and bounds-checked the same way
 * wherever it comes from; the first bad one is reported as one clear line. */
#ifndef SAFEEVAL_UTIL_CONFIG_H
#define SAFEEVAL_UTIL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util/err.h"

enum config_type {
    CONFIG_STRING, /* dest: char ** (malloc'd; NULL = unset; freed by config_free) */
    CONFIG_BOOL,   /* dest: bool *; a bare --name means true */
    CONFIG_U32,    /* dest: uint32_t * */
    CONFIG_U64,    /* dest: uint64_t * */
    CONFIG_BYTES,  /* dest: uint64_t *; "512", "64K", "16M", "4G" (powers of 1024) */
    CONFIG_LIST,   /* dest: config_list *; repeatable, each use appends one string
                      (at most CONFIG_LIST_MAX; freed by config_free) */
};

#define CONFIG_LIST_MAX 64

typedef struct config_list {
    char **items; /* malloc'd strings */
    size_t n;
} config_list;

typedef struct config_opt {
    const char *name; /* "max-request-bytes": the flag without "--", the file key */
    enum config_type type;
    const char *def; /* the default, written as a user would; NULL = unset / 0 / false */
    uint64_t min;    /* numeric bounds, inclusive; max = 0 means no upper bound */
    uint64_t max;
    const char *help; /* one line */
    void *dest;
} config_opt;

/* Sizes the engine refuses to read past. */
#define CONFIG_FILE_MAX (1u << 20)
#define CONFIG_LINE_MAX 4096

/* What config_load found. */
enum config_result {
    CONFIG_RUN = 0,     /* values filled; go on */
    CONFIG_HELP = 1,    /* --help / -h was given: print the help and exit 0 */
    CONFIG_VERSION = 2, /* --version was given: print the version and exit 0 */
    CONFIG_PRINT = 3,   /* --print-config was given: values filled (file and flags
                           applied); print them with config_print_sample and exit 0 */
};

/* Fills every dest from defaults, the --config file and argv[1..argc-1].
 * Returns a config_result (--help and --version win over everything else and
 * return at once), or -SE_INVALID with err holding one line
 * naming the flag or file:line and the reason (unknown name, bad value, out of
 * bounds, missing value, stray argument). */
int config_load(const config_opt *table, size_t n, int argc, char *const *argv, se_err *err);

/* Parses one value into opt->dest. `where` names the source for the message
 * ("--workers", "safeevald.conf:3"). */
int config_set(const config_opt *opt, const char *value, const char *where, se_err *err);
/* Applies `name = value` lines (# comments, blank lines) from text. */
int config_apply_text(const config_opt *table, size_t n, const char *text, size_t len,
                      const char *fname, se_err *err);
int config_apply_file(const config_opt *table, size_t n, const char *path, se_err *err);
/* Parses "16M"-style sizes. */
int config_parse_bytes(uint64_t *out, const char *s);

const config_opt *config_find(const config_opt *table, size_t n, const char *name, size_t name_len);
void config_print_help(FILE *f, const char *prog, const char *summary, const config_opt *table,
                       size_t n);
/* Writes a config file that documents every setting of the table: each one's
 * help, default and bounds as comments, then `name = value`, commented out
 * when the value is the default. Read back with config_apply_text (comments
 * removed or not), it sets every value as it is now: the sample that ships
 * with the daemon is this output, so it cannot drift from the table. */
void config_print_sample(FILE *f, const char *prog, const config_opt *table, size_t n);
/* The value of opt->dest written as the config file takes it ("16M", "true",
 * a string as is); NULL strings give "". Returns the length snprintf would. */
int config_format_value(char *buf, size_t cap, const config_opt *opt);
/* Frees the strings the engine allocated (CONFIG_STRING dests), leaving NULL. */
void config_free(const config_opt *table, size_t n);

#endif
