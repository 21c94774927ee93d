/* The config engine: defaults, flags, the file, bounds, suffixes, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/config.h"

static struct {
    char *listen;
    bool insecure;
    uint32_t workers;
    uint64_t big;
    uint64_t max_req;
    char *empty;
    config_list pools;
} s;

static const config_opt table[] = {
    {"listen", CONFIG_STRING, "unix:/run/x.sock", 0, 0, "where to listen", &s.listen},
    {"insecure-listen", CONFIG_BOOL, NULL, 0, 0, "allow plain tcp", &s.insecure},
    {"workers", CONFIG_U32, "16", 1, 1024, "worker threads", &s.workers},
    {"big", CONFIG_U64, "5", 0, 0, "a big number", &s.big},
    {"max-request-bytes", CONFIG_BYTES, "16M", 1024, 1ull << 30, "max request", &s.max_req},
    {"empty", CONFIG_STRING, NULL, 0, 0, "unset string", &s.empty},
    {"pool", CONFIG_LIST, NULL, 0, 0, "a repeatable one", &s.pools},
};
#define N (sizeof(table) / sizeof(table[0]))

static int
teardown(void **state)
{
    (void)state;
    config_free(table, N);
    return 0;
}

static int
load(se_err *err, int argc, ...)
{
    char *argv[32] = {"prog"};
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc; i++)
        argv[i + 1] = va_arg(ap, char *);
    va_end(ap);
    se_err_clear(err);
    return config_load(table, N, argc + 1, argv, err);
}

/* A list flag appends each use, in order, from the file and the flags; a
 * new load starts empty again; more than CONFIG_LIST_MAX is refused. */
static void
test_list(void **state)
{
    (void)state;
    se_err err;
    assert_int_equal(load(&err, 0), CONFIG_RUN);
    assert_int_equal(s.pools.n, 0);
    assert_int_equal(load(&err, 3, "--pool", "3.11=2", "--pool=3.13:numpy,requests==2.0=1"),
                     CONFIG_RUN);
    assert_int_equal(s.pools.n, 2);
    assert_string_equal(s.pools.items[0], "3.11=2");
    assert_string_equal(s.pools.items[1], "3.13:numpy,requests==2.0=1");
    assert_int_equal(load(&err, 1, "--pool=a"), CONFIG_RUN);
    assert_int_equal(s.pools.n, 1);
    assert_int_equal(config_apply_text(table, N, "pool = 3.9=1\n", 13, "f", &err), 0);
    assert_int_equal(s.pools.n, 2);
    assert_string_equal(s.pools.items[1], "3.9=1");
    char *argv[2 * CONFIG_LIST_MAX + 3] = {"prog"};
    for (int i = 0; i <= CONFIG_LIST_MAX; i++) {
        argv[1 + 2 * i] = "--pool";
        argv[2 + 2 * i] = "x";
    }
    se_err_clear(&err);
    assert_int_equal(config_load(table, N, 2 * CONFIG_LIST_MAX + 3, argv, &err), -SE_INVALID);
    assert_non_null(strstr(err.msg, "--pool"));
    config_free(table, N);
    assert_int_equal(s.pools.n, 0);
    assert_null(s.pools.items);
}

static void
test_defaults(void **state)
{
    (void)state;
    se_err err;
    assert_int_equal(load(&err, 0), CONFIG_RUN);
    assert_string_equal(s.listen, "unix:/run/x.sock");
    assert_false(s.insecure);
    assert_int_equal(s.workers, 16);
    assert_int_equal(s.big, 5);
    assert_int_equal(s.max_req, 16u << 20);
    assert_null(s.empty);
}

static void
test_flags_both_forms(void **state)
{
    (void)state;
    se_err err;
    assert_int_equal(load(&err, 5, "--listen", "127.0.0.1:1", "--workers=3", "--insecure-listen",
                          "--big=18446744073709551615"),
                     CONFIG_RUN);
    assert_string_equal(s.listen, "127.0.0.1:1");
    assert_int_equal(s.workers, 3);
    assert_true(s.insecure);
    assert_true(s.big == UINT64_MAX);
    assert_int_equal(load(&err, 1, "--insecure-listen=false"), CONFIG_RUN);
    assert_false(s.insecure);
    /* A later flag wins. */
    assert_int_equal(load(&err, 2, "--workers=3", "--workers=4"), CONFIG_RUN);
    assert_int_equal(s.workers, 4);
}

static void
test_bounds(void **state)
{
    (void)state;
    se_err err;
    assert_int_equal(load(&err, 1, "--workers=0"), -SE_INVALID);
    assert_non_null(strstr(err.msg, "--workers"));
    assert_non_null(strstr(err.msg, "out of range"));
    assert_int_equal(load(&err, 1, "--workers=1025"), -SE_INVALID);
    assert_int_equal(load(&err, 1, "--workers=1024"), CONFIG_RUN);
    assert_int_equal(load(&err, 1, "--max-request-bytes=2G"), -SE_INVALID);
    assert_int_equal(load(&err, 1, "--max-request-bytes=1023"), -SE_INVALID);
    assert_int_equal(load(&err, 1, "--big=18446744073709551616"), -SE_INVALID);
    assert_non_null(strstr(err.msg, "invalid value"));
}

static void
test_bad_numbers(void **state)
{
    (void)state;
    se_err err;
    const char *bad[] = {"--workers=-1",
                         "--workers= 3",
                         "--workers=3x",
                         "--workers=0x10",
                         "--workers=",
                         "--workers=4294967296",
                         "--max-request-bytes=1.5M",
                         "--max-request-bytes=16Q",
                         "--max-request-bytes=M"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(load(&err, 1, bad[i]), -SE_INVALID);
        assert_true(err.msg[0] != '\0');
    }
}

static void
test_suffixes(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(config_parse_bytes(&v, "512"), 0);
    assert_int_equal(v, 512);
    assert_int_equal(config_parse_bytes(&v, "64K"), 0);
    assert_int_equal(v, 64 << 10);
    assert_int_equal(config_parse_bytes(&v, "16m"), 0);
    assert_int_equal(v, 16 << 20);
    assert_int_equal(config_parse_bytes(&v, "4G"), 0);
    assert_true(v == 4ull << 30);
    assert_int_equal(config_parse_bytes(&v, "1MiB"), 0);
    assert_int_equal(v, 1 << 20);
    assert_int_equal(config_parse_bytes(&v, "2KB"), 0);
    assert_int_equal(v, 2048);
    assert_int_equal(config_parse_bytes(&v, "17179869184G"), -1); /* overflows 64 bits */
    assert_int_equal(config_parse_bytes(&v, ""), -1);
    assert_int_equal(config_parse_bytes(&v, "1 M"), -1);
    assert_int_equal(config_parse_bytes(&v, "1Mi"), -1);
}

static void
test_bool_values(void **state)
{
    (void)state;
    se_err err;
    assert_int_equal(load(&err, 1, "--insecure-listen=yes"), CONFIG_RUN);
    assert_true(s.insecure);
    assert_int_equal(load(&err, 1, "--insecure-listen=OFF"), CONFIG_RUN);
    assert_false(s.insecure);
    assert_int_equal(load(&err, 1, "--insecure-listen=maybe"), -SE_INVALID);
}

static void
test_errors(void **state)
{
    (void)state;
    se_err err;
    assert_int_equal(load(&err, 1, "--nope=1"), -SE_INVALID);
    assert_non_null(strstr(err.msg, "unknown flag '--nope'"));
    assert_int_equal(load(&err, 1, "stray"), -SE_INVALID);
    assert_non_null(strstr(err.msg, "unexpected argument"));
    assert_int_equal(load(&err, 1, "--workers"), -SE_INVALID);
    assert_non_null(strstr(err.msg, "missing value"));
    assert_int_equal(load(&err, 2, "--listen", "--workers=3"), -SE_INVALID);
    assert_int_equal(load(&err, 1, "--help"), CONFIG_HELP);
    assert_int_equal(load(&err, 2, "--workers=0", "-h"), CONFIG_HELP);
}

static void
test_text(void **state)
{
    (void)state;
    se_err err;
    assert_int_equal(load(&err, 0), CONFIG_RUN);
    const char *text = "# a comment\n"
                       "\n"
                       "  workers = 7  \r\n"
                       "listen=unix:/tmp/a#b.sock\n"
                       "insecure-listen = true\n"
                       "max-request-bytes = 1M";
    assert_int_equal(config_apply_text(table, N, text, strlen(text), "f.conf", &err), 0);
    assert_int_equal(s.workers, 7);
    assert_string_equal(s.listen, "unix:/tmp/a#b.sock");
    assert_true(s.insecure);
    assert_int_equal(s.max_req, 1 << 20);

    const char *unknown = "workers = 2\nbogus = 1\n";
    assert_int_equal(config_apply_text(table, N, unknown, strlen(unknown), "f.conf", &err),
                     -SE_INVALID);
    assert_string_equal(err.msg, "f.conf:2: unknown setting 'bogus'");
    const char *noeq = "workers 2\n";
    assert_int_equal(config_apply_text(table, N, noeq, strlen(noeq), "f.conf", &err), -SE_INVALID);
    assert_non_null(strstr(err.msg, "f.conf:1"));
    const char *range = "\nworkers = 5000\n";
    assert_int_equal(config_apply_text(table, N, range, strlen(range), "f.conf", &err),
                     -SE_INVALID);
    assert_non_null(strstr(err.msg, "f.conf:2: workers"));
    char nul[] = "workers = 2\0junk\n";
    assert_int_equal(config_apply_text(table, N, nul, sizeof(nul) - 1, "f.conf", &err),
                     -SE_INVALID);
    char *longline = malloc(CONFIG_LINE_MAX + 10);
    memset(longline, 'a', CONFIG_LINE_MAX + 9);
    longline[CONFIG_LINE_MAX + 9] = '\0';
    assert_int_equal(config_apply_text(table, N, longline, strlen(longline), "f.conf", &err),
                     -SE_INVALID);
    free(longline);
}

static void
test_file_then_flags(void **state)
{
    (void)state;
    char path[] = "/tmp/test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "workers = 9\nbig = 77\nlisten = unix:/from/file\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);

    se_err err;
    /* The file applies first wherever --config sits; flags win. */
    assert_int_equal(load(&err, 3, "--workers=2", "--config", path), CONFIG_RUN);
    assert_int_equal(s.workers, 2);
    assert_int_equal(s.big, 77);
    assert_string_equal(s.listen, "unix:/from/file");
    char flag[64];
    snprintf(flag, sizeof(flag), "--config=%s", path);
    assert_int_equal(load(&err, 1, flag), CONFIG_RUN);
    assert_int_equal(s.workers, 9);
    unlink(path);

    assert_int_equal(load(&err, 2, "--config", "/nonexistent/x.conf"), -SE_INVALID);
    assert_non_null(strstr(err.msg, "/nonexistent/x.conf"));
    assert_int_equal(load(&err, 2, "--config", "/tmp"), -SE_INVALID);
    assert_int_equal(load(&err, 1, "--config"), -SE_INVALID);
}

static void
test_help(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    config_print_help(f, "prog", "does things", table, N);
    fclose(f);
    assert_non_null(strstr(buf, "--workers N"));
    assert_non_null(strstr(buf, "worker threads (default: 16) [1..1024]"));
    assert_non_null(strstr(buf, "--max-request-bytes SIZE"));
    assert_non_null(strstr(buf, "--insecure-listen"));
    free(buf);
}

static char *
sample(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    config_print_sample(f, "prog", table, N);
    fclose(f);
    return buf;
}

/* The sample documents every setting, at its default, commented out; read
 * back with every setting line uncommented it changes nothing (so each line
 * parses), and after a change it shows the change. */
static void
test_sample(void **state)
{
    (void)state;
    se_err err;
    assert_int_equal(load(&err, 0), CONFIG_RUN);
    char *text = sample();
    assert_non_null(strstr(text, "Booleans: true/false, yes/no, on/off or 1/0"));
    for (size_t i = 0; i < N; i++) {
        char want[128];
        snprintf(want, sizeof(want), "\n# %s\n", table[i].help);
        assert_non_null(strstr(text, want));
        snprintf(want, sizeof(want), "\n#%s =", table[i].name);
        assert_non_null(strstr(text, want));
    }
    assert_non_null(strstr(text, "\n#max-request-bytes = 16M\n"));
    assert_non_null(strstr(text, "\n#insecure-listen = false\n"));
    assert_non_null(strstr(text, "\n#empty =\n"));
    assert_non_null(strstr(text, "unset by default"));
    /* Uncomment every line that has a value. */
    char *un = strdup(text);
    char *w = un;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p + 1) : strlen(p);
        bool setting = p[0] == '#' && p[1] >= 'a' && p[1] <= 'z' && memchr(p, '=', n) &&
                       ((const char *)memchr(p, '=', n))[1] == ' ';
        memcpy(w, p + (setting ? 1 : 0), n - (setting ? 1 : 0));
        w += n - (setting ? 1 : 0);
        p += n;
    }
    *w = '\0';
    assert_int_equal(config_apply_text(table, N, un, strlen(un), "sample", &err), 0);
    char *again = sample();
    assert_string_equal(again, text);
    free(again);
    free(un);
    /* A changed value is written uncommented, the way the file takes it. */
    assert_int_equal(load(&err, 3, "--max-request-bytes=3072", "--insecure-listen", "--empty=x"),
                     CONFIG_RUN);
    char *changed = sample();
    assert_non_null(strstr(changed, "\nmax-request-bytes = 3K\n"));
    assert_non_null(strstr(changed, "\ninsecure-listen = true\n"));
    assert_non_null(strstr(changed, "\nempty = x\n"));
    assert_non_null(strstr(changed, "\n#workers = 16\n"));
    free(changed);
    free(text);
}

/* --version answers at once; --print-config after the file and the flags. */
static void
test_version_and_print(void **state)
{
    (void)state;
    se_err err;
    assert_int_equal(load(&err, 2, "--workers=0", "--version"), CONFIG_VERSION);
    assert_int_equal(load(&err, 2, "--print-config", "--workers=7"), CONFIG_PRINT);
    assert_int_equal(s.workers, 7);
    assert_int_equal(load(&err, 2, "--print-config", "--workers=0"), -SE_INVALID);
    assert_int_equal(load(&err, 1, "--print-config=1"), -SE_INVALID);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_defaults, teardown),
        cmocka_unit_test_teardown(test_flags_both_forms, teardown),
        cmocka_unit_test_teardown(test_bounds, teardown),
        cmocka_unit_test_teardown(test_bad_numbers, teardown),
        cmocka_unit_test_teardown(test_suffixes, teardown),
        cmocka_unit_test_teardown(test_bool_values, teardown),
        cmocka_unit_test_teardown(test_errors, teardown),
        cmocka_unit_test_teardown(test_text, teardown),
        cmocka_unit_test_teardown(test_file_then_flags, teardown),
        cmocka_unit_test_teardown(test_help, teardown),
        cmocka_unit_test_teardown(test_sample, teardown),
        cmocka_unit_test_teardown(test_version_and_print, teardown),
        cmocka_unit_test_teardown(test_list, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
