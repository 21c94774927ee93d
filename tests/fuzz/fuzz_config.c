/* The config engine (util/config.h). The first input byte picks:
 *   0 a config file's text (config_apply_text), then the same text with
 *     every line also given as a flag to config_load;
 *   1 argv: the rest split at newlines, through config_load;
 *   2 one value for each type (config_set, config_parse_bytes).
 * The table has one option of every type, with and without bounds. Inputs
 * that name --config are skipped: the fuzzer must not read files. */
#include <string.h>

#include "fuzz.h"
#include "util/config.h"

enum { C_TEXT, C_ARGV, C_VALUE, C_COUNT };

static char *s_str, *s_str2;
static bool s_bool;
static uint32_t s_u32, s_u32b;
static uint64_t s_u64, s_bytes, s_bytesb;

static const config_opt table[] = {
    {"name", CONFIG_STRING, "default", 0, 0, "a string", &s_str},
    {"path", CONFIG_STRING, NULL, 0, 0, "an unset string", &s_str2},
    {"flag", CONFIG_BOOL, "false", 0, 0, "a bool", &s_bool},
    {"workers", CONFIG_U32, "4", 1, 64, "a bounded u32", &s_u32},
    {"any-u32", CONFIG_U32, NULL, 0, 0, "an unbounded u32", &s_u32b},
    {"count", CONFIG_U64, "0", 0, 0, "a u64", &s_u64},
    {"max-request-bytes", CONFIG_BYTES, "16M", 1024, 1ull << 30, "bounded bytes", &s_bytes},
    {"any-bytes", CONFIG_BYTES, NULL, 0, 0, "unbounded bytes", &s_bytesb},
};
#define N_OPTS (sizeof(table) / sizeof(table[0]))

static void
check_values(void)
{
    FUZZ_CHECK(s_u32 >= 1 && s_u32 <= 64);
    FUZZ_CHECK(s_bytes >= 1024 && s_bytes <= (1ull << 30));
    if (s_str)
        (void)strlen(s_str);
    if (s_str2)
        (void)strlen(s_str2);
}

/* Splits text at newlines into a malloc'd argv (argv[0] = "fuzz"). */
static char **
split_argv(char *text, int *argc_out)
{
    size_t n = 2;
    for (char *p = text; *p; p++)
        n += *p == '\n';
    char **argv = calloc(n + 1, sizeof(*argv));
    if (!argv)
        abort();
    int argc = 0;
    argv[argc++] = "fuzz";
    char *save = NULL;
    for (char *tok = strtok_r(text, "\n", &save); tok; tok = strtok_r(NULL, "\n", &save))
        argv[argc++] = tok;
    argv[argc] = NULL;
    *argc_out = argc;
    return argv;
}

static void
run_load(char *text)
{
    int argc;
    char **argv = split_argv(text, &argc);
    se_err err;
    se_err_clear(&err);
    int rc = config_load(table, N_OPTS, argc, argv, &err);
    FUZZ_CHECK(rc == CONFIG_RUN || rc == CONFIG_HELP || rc == CONFIG_VERSION ||
               rc == CONFIG_PRINT || rc == -SE_INVALID);
    if (rc == CONFIG_RUN)
        check_values();
    else if (rc < 0)
        FUZZ_CHECK(err.code == SE_INVALID && strnlen(err.msg, sizeof(err.msg)) < sizeof(err.msg));
    config_free(table, N_OPTS);
    FUZZ_CHECK(s_str == NULL && s_str2 == NULL);
    free(argv);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int which = data[0] % C_COUNT;
    data++;
    size--;
    char *text = fuzz_strndup(data, size);
    if (!text)
        abort();
    se_err err;
    se_err_clear(&err);
    switch (which) {
    case C_TEXT: {
        /* The text is not NUL-terminated for the engine: an exact copy. */
        uint8_t *raw = fuzz_dup(data, size);
        if (!raw)
            abort();
        int rc = config_load(table, N_OPTS, 1, (char *const[]){"fuzz", NULL}, &err);
        FUZZ_CHECK(rc == CONFIG_RUN);
        rc = config_apply_text(table, N_OPTS, (const char *)raw, size, "fuzz.conf", &err);
        FUZZ_CHECK(rc == 0 || (rc == -SE_INVALID && err.code == SE_INVALID));
        if (rc == 0)
            check_values();
        config_free(table, N_OPTS);
        free(raw);
        if (!memmem(data, size, "config", 6))
            run_load(text);
        break;
    }
    case C_ARGV:
        if (!memmem(data, size, "config", 6))
            run_load(text);
        break;
    case C_VALUE: {
        uint64_t v = 0;
        if (config_parse_bytes(&v, text) == 0)
            FUZZ_CHECK(strlen(text) > 0);
        for (size_t i = 0; i < N_OPTS; i++) {
            int rc = config_set(&table[i], text, "--fuzz", &err);
            FUZZ_CHECK(rc == 0 || (rc == -SE_INVALID && err.code == SE_INVALID));
        }
        config_free(table, N_OPTS);
        break;
    }
    }
    free(text);
    return 0;
}
