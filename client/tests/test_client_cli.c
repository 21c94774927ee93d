/* The pure parts of the `safeeval` command: parsing, sizes, durations,
 * exit codes, JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "args.h"
#include "json.h"

#define ARGV(...) ((char *[]){"safeeval", __VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){"safeeval", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(a, ...)                                                                              \
    cli_args_parse(a, ARGC(__VA_ARGS__), dupv(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__)), why,          \
                   sizeof(why))

static char why[256];

/* A real argv is writable (KEY=VALUE is split in place): copy the literals.
 * The copies live until the end of the program, freed by pool_free. */
static char *pool[1024];
static size_t pool_n;

static char **
dupv(int argc, char **argv)
{
    char **v = calloc((size_t)argc + 1, sizeof(char *));
    assert_non_null(v);
    assert_true(pool_n + (size_t)argc + 1 < sizeof(pool) / sizeof(pool[0]));
    pool[pool_n++] = (char *)v;
    for (int i = 0; i < argc; i++)
        pool[pool_n++] = v[i] = strdup(argv[i]);
    return v;
}

static void
pool_free(void)
{
    while (pool_n)
        free(pool[--pool_n]);
}

static void
test_sizes(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(cli_parse_size(&v, "512"), 0);
    assert_int_equal(v, 512);
    assert_int_equal(cli_parse_size(&v, "64K"), 0);
    assert_int_equal(v, 65536);
    assert_int_equal(cli_parse_size(&v, "256m"), 0);
    assert_int_equal(v, 256ull << 20);
    assert_int_equal(cli_parse_size(&v, "2G"), 0);
    assert_int_equal(v, 2ull << 30);
    assert_int_equal(cli_parse_size(&v, "1GiB"), 0);
    assert_int_equal(v, 1ull << 30);
    assert_int_equal(cli_parse_size(&v, "3MB"), 0);
    assert_int_equal(v, 3ull << 20);
    assert_int_equal(cli_parse_size(&v, "1T"), 0);
    assert_int_equal(v, 1ull << 40);
    assert_int_equal(cli_parse_size(&v, "100B"), 0);
    assert_int_equal(v, 100);
    assert_int_equal(cli_parse_size(&v, "18446744073709551615"), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(cli_parse_size(&v, "18446744073709551616"), -1);
    assert_int_equal(cli_parse_size(&v, "17179869184G"), -1); /* 2^34 G overflows */
    assert_int_equal(cli_parse_size(&v, ""), -1);
    assert_int_equal(cli_parse_size(&v, "K"), -1);
    assert_int_equal(cli_parse_size(&v, "-1"), -1);
    assert_int_equal(cli_parse_size(&v, "1.5M"), -1);
    assert_int_equal(cli_parse_size(&v, "12X"), -1);
    assert_int_equal(cli_parse_size(&v, "1Mx"), -1);
    assert_int_equal(cli_parse_size(&v, " 1"), -1);
}

static void
test_uint_duration(void **state)
{
    (void)state;
    uint64_t v;
    uint32_t ms;
    assert_int_equal(cli_parse_uint(&v, "4294967295", UINT32_MAX), 0);
    assert_int_equal(cli_parse_uint(&v, "4294967296", UINT32_MAX), -1);
    assert_int_equal(cli_parse_uint(&v, "12a", UINT32_MAX), -1);
    assert_int_equal(cli_parse_uint(&v, "", UINT32_MAX), -1);
    assert_int_equal(cli_parse_duration_ms(&ms, "30"), 0);
    assert_int_equal(ms, 30000);
    assert_int_equal(cli_parse_duration_ms(&ms, "30s"), 0);
    assert_int_equal(ms, 30000);
    assert_int_equal(cli_parse_duration_ms(&ms, "1500ms"), 0);
    assert_int_equal(ms, 1500);
    assert_int_equal(cli_parse_duration_ms(&ms, "2m"), 0);
    assert_int_equal(ms, 120000);
    assert_int_equal(cli_parse_duration_ms(&ms, "0"), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(cli_parse_duration_ms(&ms, "5000000s"), -1); /* > 2^32 ms */
    assert_int_equal(cli_parse_duration_ms(&ms, "5h"), -1);
    assert_int_equal(cli_parse_duration_ms(&ms, "s"), -1);
}

static void
test_kv_file(void **state)
{
    (void)state;
    safeeval_kv kv;
    char a[] = "A=b=c", b[] = "=x", c[] = "noeq", d[] = "E=";
    assert_int_equal(cli_parse_kv(&kv, a), 0);
    assert_string_equal(kv.key, "A");
    assert_string_equal(kv.value, "b=c");
    assert_int_equal(cli_parse_kv(&kv, b), -1);
    assert_int_equal(cli_parse_kv(&kv, c), -1);
    assert_int_equal(cli_parse_kv(&kv, d), 0);
    assert_string_equal(kv.value, "");

    cli_file_arg f;
    char f1[] = "/tmp/data/in.csv", f2[] = "x.txt:data/y.txt", f3[] = "dir/", f4[] = ":r",
         f5[] = "l:";
    assert_int_equal(cli_parse_file_arg(&f, f1), 0);
    assert_string_equal(f.local, "/tmp/data/in.csv");
    assert_string_equal(f.remote, "in.csv");
    assert_int_equal(cli_parse_file_arg(&f, f2), 0);
    assert_string_equal(f.local, "x.txt");
    assert_string_equal(f.remote, "data/y.txt");
    assert_int_equal(cli_parse_file_arg(&f, f3), -1);
    assert_int_equal(cli_parse_file_arg(&f, f4), -1);
    assert_int_equal(cli_parse_file_arg(&f, f5), -1);
}

static void
test_parse_create(void **state)
{
    (void)state;
    cli_args a;
    assert_int_equal(PARSE(&a, "--target", "unix:/x.sock", "create", "--python", "3.11", "-m",
                           "numpy", "--module=requests==2.31.0", "--wall-ms", "1500", "--memory",
                           "256M", "--max-output=1K", "--idle-timeout", "60", "--label", "team=ml",
                           "--json", "--timeout", "5s"),
                     0);
    assert_int_equal(a.cmd, CLI_CMD_CREATE);
    assert_string_equal(a.target, "unix:/x.sock");
    assert_string_equal(a.python, "3.11");
    assert_int_equal(a.n_modules, 2);
    assert_string_equal(a.modules[0], "numpy");
    assert_string_equal(a.modules[1], "requests==2.31.0");
    assert_int_equal(a.limits.wall_time_ms, 1500);
    assert_int_equal(a.limits.memory_bytes, 256u << 20);
    assert_int_equal(a.limits.max_output_bytes, 1024);
    assert_int_equal(a.idle_timeout_s, 60);
    assert_int_equal(a.n_labels, 1);
    assert_string_equal(a.labels[0].key, "team");
    assert_string_equal(a.labels[0].value, "ml");
    assert_true(a.json);
    assert_int_equal(a.timeout_ms, 5000);
    cli_args_free(&a);
}

static void
test_parse_exec_rest(void **state)
{
    (void)state;
    cli_args a;
    /* Options before FILE are ours; everything after FILE is the script's. */
    assert_int_equal(PARSE(&a, "exec", "--env", "K=V", "sb1", "-f", "in.csv", "job.py", "--json",
                           "-x", "--", "y"),
                     0);
    assert_int_equal(a.cmd, CLI_CMD_EXEC);
    assert_string_equal(a.id, "sb1");
    assert_string_equal(a.file, "job.py");
    assert_false(a.json);
    assert_int_equal(a.n_args, 4);
    assert_string_equal(a.args[0], "--json");
    assert_string_equal(a.args[1], "-x");
    assert_string_equal(a.args[2], "--");
    assert_string_equal(a.args[3], "y");
    assert_int_equal(a.n_env, 1);
    assert_int_equal(a.n_files, 1);
    assert_string_equal(a.files[0].remote, "in.csv");
    cli_args_free(&a);

    /* "--" lets a script name start with a dash. */
    assert_int_equal(PARSE(&a, "run", "-p", "3.11", "--", "-odd.py", "a"), 0);
    assert_string_equal(a.file, "-odd.py");
    assert_int_equal(a.n_args, 1);
    cli_args_free(&a);

    /* --arg values come first, then the positional ones. */
    assert_int_equal(PARSE(&a, "run", "--arg", "first", "job.py", "second"), 0);
    assert_int_equal(a.n_args, 2);
    assert_string_equal(a.args[0], "first");
    assert_string_equal(a.args[1], "second");
    cli_args_free(&a);
}

static void
test_parse_eval(void **state)
{
    (void)state;
    cli_args a;
    assert_int_equal(PARSE(&a, "eval", "sb", "-c", "print(1)", "--stdin-file", "in.txt",
                           "--cpu-ms=100", "-a", "x"),
                     0);
    assert_string_equal(a.code, "print(1)");
    assert_string_equal(a.stdin_file, "in.txt");
    assert_int_equal(a.limits.cpu_time_ms, 100);
    assert_int_equal(a.n_args, 1);
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, "eval", "sb", "-cprint(2)"), 0);
    assert_string_equal(a.code, "print(2)");
    cli_args_free(&a);
}

static void
test_parse_collect_progress_info(void **state)
{
    (void)state;
    cli_args a;
    assert_int_equal(PARSE(&a, "eval", "sb", "-c", "1", "--collect", "out/*.csv", "--collect=a.bin",
                           "--out-dir", "res", "--max-collect-files", "3", "--max-collect-bytes",
                           "2M"),
                     0);
    assert_int_equal(a.n_collect, 2);
    assert_string_equal(a.collect[0], "out/*.csv");
    assert_string_equal(a.collect[1], "a.bin");
    assert_string_equal(a.out_dir, "res");
    assert_int_equal(a.limits.max_collect_files, 3);
    assert_int_equal(a.limits.max_collect_bytes, 2u << 20);
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, "run", "--python", "3.11", "--progress", "--collect", "x", "job.py"),
                     0);
    assert_true(a.progress);
    assert_int_equal(a.n_collect, 1);
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, "create", "--progress"), 0);
    assert_true(a.progress);
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, "info"), 0);
    assert_int_equal(a.cmd, CLI_CMD_INFO);
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, "eval", "sb", "-c", "1", "--progress"), -1);
    assert_non_null(strstr(why, "does not apply"));
    assert_int_equal(PARSE(&a, "create", "--collect", "x"), -1);
    assert_int_equal(PARSE(&a, "eval", "sb", "-c", "1", "--out-dir", ""), -1);
    assert_int_equal(PARSE(&a, "info", "extra"), -1);
}

static void
test_parse_errors(void **state)
{
    (void)state;
    cli_args a;
    assert_int_equal(PARSE(&a, "eval"), -1);
    assert_non_null(strstr(why, "missing a sandbox id"));
    assert_int_equal(PARSE(&a, "exec", "sb"), -1);
    assert_non_null(strstr(why, "script"));
    assert_int_equal(PARSE(&a, "bogus"), -1);
    assert_non_null(strstr(why, "unknown command"));
    assert_int_equal(PARSE(&a, "ls", "extra"), -1);
    assert_non_null(strstr(why, "unexpected"));
    assert_int_equal(PARSE(&a, "destroy", "sb", "--module", "numpy"), -1);
    assert_non_null(strstr(why, "does not apply"));
    assert_int_equal(PARSE(&a, "--python", "3.11", "create"), -1);
    assert_int_equal(PARSE(&a, "create", "--memory", "lots"), -1);
    assert_non_null(strstr(why, "--memory"));
    assert_int_equal(PARSE(&a, "create", "--wall-ms", "4294967296"), -1);
    assert_int_equal(PARSE(&a, "create", "--label", "nokey"), -1);
    assert_int_equal(PARSE(&a, "create", "--python"), -1);
    assert_non_null(strstr(why, "needs a value"));
    assert_int_equal(PARSE(&a, "create", "--json=1"), -1);
    assert_int_equal(PARSE(&a, "create", "--nope"), -1);
    assert_int_equal(PARSE(&a, "eval", "sb", "--stdin", "-"), -1);
    assert_int_equal(PARSE(&a, "eval", "", "-c", "x"), -1);
    assert_int_equal(PARSE(&a, "ls", "--cert", "c.pem"), -1);
    assert_int_equal(cli_args_parse(&a, 1, (char *[]){"safeeval", NULL}, why, sizeof(why)), -1);
}

static void
test_parse_help(void **state)
{
    (void)state;
    cli_args a;
    assert_int_equal(PARSE(&a, "--help"), 0);
    assert_int_equal(a.cmd, CLI_CMD_HELP);
    cli_args_free(&a);
    /* --help on a subcommand does not need its positionals. */
    assert_int_equal(PARSE(&a, "exec", "--help"), 0);
    assert_int_equal(a.cmd, CLI_CMD_EXEC);
    assert_true(a.help);
    cli_args_free(&a);
    assert_non_null(strstr(cli_usage(CLI_CMD_NONE), "124"));
    assert_non_null(strstr(cli_usage(CLI_CMD_RUN), "--python"));
    assert_non_null(strstr(cli_usage(CLI_CMD_EVAL), "--stdin-file"));
}

static void
test_exit_codes(void **state)
{
    (void)state;
    safeeval_result r;
    memset(&r, 0, sizeof(r));
    r.reason = SAFEEVAL_EXIT_EXITED;
    r.exit_code = 0;
    assert_int_equal(cli_exit_code(&r), 0);
    r.exit_code = 3;
    assert_int_equal(cli_exit_code(&r), 3);
    r.exit_code = 255;
    assert_int_equal(cli_exit_code(&r), 255);
    r.reason = SAFEEVAL_EXIT_SIGNALED;
    r.exit_code = -SIGSEGV;
    r.signal = SIGSEGV;
    assert_int_equal(cli_exit_code(&r), 128 + SIGSEGV);
    r.signal = 0; /* only the returncode says it */
    assert_int_equal(cli_exit_code(&r), 128 + SIGSEGV);
    r.reason = SAFEEVAL_EXIT_WALL_TIMEOUT;
    r.signal = SIGKILL;
    assert_int_equal(cli_exit_code(&r), 124);
    r.reason = SAFEEVAL_EXIT_CPU_TIMEOUT;
    assert_int_equal(cli_exit_code(&r), 152);
    r.reason = SAFEEVAL_EXIT_MEMORY_LIMIT;
    assert_int_equal(cli_exit_code(&r), 125);
    assert_int_not_equal(cli_exit_code(&r), 128 + SIGKILL);
    r.reason = SAFEEVAL_EXIT_FILE_SIZE_LIMIT;
    assert_int_equal(cli_exit_code(&r), 153);
    /* Distinct from each other and from the command's own codes. */
    int codes[] = {CLI_EXIT_USAGE,           CLI_EXIT_SERVICE,     CLI_EXIT_LOCAL,
                   CLI_EXIT_WALL_TIMEOUT,    CLI_EXIT_CPU_TIMEOUT, CLI_EXIT_MEMORY_LIMIT,
                   CLI_EXIT_FILE_SIZE_LIMIT, CLI_EXIT_INTERRUPTED};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        for (size_t k = i + 1; k < sizeof(codes) / sizeof(codes[0]); k++)
            assert_int_not_equal(codes[i], codes[k]);
}

static void
test_utf8_base64(void **state)
{
    (void)state;
    assert_true(cli_utf8_valid((const unsigned char *)"hello\n", 6));
    assert_true(cli_utf8_valid((const unsigned char *)"h\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10));
    assert_false(cli_utf8_valid((const unsigned char *)"\xff", 1));
    assert_false(cli_utf8_valid((const unsigned char *)"a\0b", 3));
    assert_false(cli_utf8_valid((const unsigned char *)"\xc3", 1));         /* cut */
    assert_false(cli_utf8_valid((const unsigned char *)"\xc0\xaf", 2));     /* overlong */
    assert_false(cli_utf8_valid((const unsigned char *)"\xed\xa0\x80", 3)); /* surrogate */
    assert_false(cli_utf8_valid((const unsigned char *)"\xf4\x90\x80\x80", 4));
    const char *cases[][2] = {{"", ""},        {"f", "Zg=="},        {"fo", "Zm8="},
                              {"foo", "Zm9v"}, {"foob", "Zm9vYg=="}, {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *b = cli_base64((const unsigned char *)cases[i][0], strlen(cases[i][0]));
        assert_string_equal(b, cases[i][1]);
        free(b);
    }
}

static void
test_result_json(void **state)
{
    (void)state;
    char out[] = "hi\n", err[] = "\xff\x00z";
    safeeval_result r;
    memset(&r, 0, sizeof(r));
    r.reason = SAFEEVAL_EXIT_SIGNALED;
    r.exit_code = -9;
    r.signal = 9;
    r.stdout_data = out;
    r.stdout_len = 3;
    r.stderr_data = err;
    r.stderr_len = 3;
    r.stderr_truncated = 1;
    r.stderr_bytes = 1000;
    r.wall_time_us = 1234;
    cJSON *j = cli_result_json(&r);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "reason")->valuestring, "SIGNALED");
    assert_int_equal(cJSON_GetObjectItem(j, "exit_code")->valueint, -9);
    assert_int_equal(cJSON_GetObjectItem(j, "signal")->valueint, 9);
    assert_string_equal(cJSON_GetObjectItem(j, "stdout")->valuestring, "hi\n");
    assert_string_equal(cJSON_GetObjectItem(j, "stdout_encoding")->valuestring, "utf-8");
    assert_string_equal(cJSON_GetObjectItem(j, "stderr")->valuestring, "/wB6");
    assert_string_equal(cJSON_GetObjectItem(j, "stderr_encoding")->valuestring, "base64");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "stderr_truncated")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "stdout_truncated")));
    assert_int_equal(cJSON_GetObjectItem(j, "stderr_bytes")->valueint, 1000);
    assert_int_equal(cJSON_GetObjectItem(j, "wall_time_us")->valueint, 1234);
    assert_non_null(cJSON_GetObjectItem(j, "cpu_time_us"));
    assert_non_null(cJSON_GetObjectItem(j, "max_rss_bytes"));
    cJSON_Delete(j);
}

static void
test_sandbox_json(void **state)
{
    (void)state;
    char *mods[] = {"numpy"};
    safeeval_kv labels[] = {{"team", "a\"b"}};
    safeeval_sandbox sb;
    memset(&sb, 0, sizeof(sb));
    sb.id = "sb1";
    sb.python_version = "3.11.2";
    sb.modules = mods;
    sb.n_modules = 1;
    sb.image = "safeeval/sandbox:abc";
    sb.labels = labels;
    sb.n_labels = 1;
    sb.limits.wall_time_ms = 5000;
    sb.idle_timeout_s = 600;
    cJSON *j = cli_sandbox_json(&sb);
    assert_non_null(j);
    char *s = cJSON_PrintUnformatted(j);
    cJSON *back = cJSON_Parse(s);
    assert_string_equal(cJSON_GetObjectItem(back, "id")->valuestring, "sb1");
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(back, "modules"), 0)->valuestring,
                        "numpy");
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(back, "labels"), "team")->valuestring, "a\"b");
    assert_int_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(back, "limits"), "wall_time_ms")->valueint, 5000);
    assert_int_equal(cJSON_GetObjectItem(back, "idle_timeout_s")->valueint, 600);
    cJSON_Delete(back);
    free(s);
    cJSON_Delete(j);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_uint_duration),
        cmocka_unit_test(test_kv_file),
        cmocka_unit_test(test_parse_create),
        cmocka_unit_test(test_parse_exec_rest),
        cmocka_unit_test(test_parse_eval),
        cmocka_unit_test(test_parse_collect_progress_info),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_help),
        cmocka_unit_test(test_exit_codes),
        cmocka_unit_test(test_utf8_base64),
        cmocka_unit_test(test_result_json),
        cmocka_unit_test(test_sandbox_json),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    pool_free();
    return rc;
}
