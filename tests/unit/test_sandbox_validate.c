/* Validation of client requests: hostile input, each rejection names the
 * field. Pure: no Docker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agent/agent.h"
#include "agent/frame.h"
#include "sandbox/internal.h"

static sandbox_config
test_cfg(void)
{
    sandbox_config c = {
        .max_sandboxes = 4,
        .default_idle_timeout_s = 600,
        .max_idle_timeout_s = 3600,
        .instance = "unit",
        .default_python = "3.11",
        .default_limits = {5000, 5000, 256u << 20, 32, 1 << 20, 16 << 20, 64, 1 << 20},
        .max_limits = {60000, 60000, 1024u << 20, 128, 16 << 20, 256 << 20, 1024, 64 << 20},
        .max_concurrent_runs = 2,
        .reap_interval_s = 0,
    };
    return c;
}

#define EXPECT_ERR(call, code, needle)                                                             \
    do {                                                                                           \
        se_err e_;                                                                                 \
        se_err_clear(&e_);                                                                         \
        int rc_ = (call);                                                                          \
        if (rc_ != -(code) || !strstr(e_.msg, (needle)))                                           \
            fail_msg("%s: rc %d msg '%s' (want %d '%s')", #call, rc_, e_.msg, -(code), needle);    \
    } while (0)
#define ERRP (&e_)

static void
test_id(void **state)
{
    (void)state;
    se_err err;
    assert_int_equal(sandbox_validate_id("abc123", &err), 0);
    EXPECT_ERR(sandbox_validate_id("", ERRP), SE_INVALID, "sandbox_id");
    EXPECT_ERR(sandbox_validate_id(NULL, ERRP), SE_INVALID, "sandbox_id");
    EXPECT_ERR(sandbox_validate_id("ABC", ERRP), SE_INVALID, "sandbox_id");
    EXPECT_ERR(sandbox_validate_id("../x", ERRP), SE_INVALID, "sandbox_id");
    EXPECT_ERR(sandbox_validate_id("a b", ERRP), SE_INVALID, "sandbox_id");
    char big[70];
    memset(big, 'a', 65);
    big[65] = 0;
    EXPECT_ERR(sandbox_validate_id(big, ERRP), SE_INVALID, "sandbox_id");
    big[64] = 0;
    assert_int_equal(sandbox_validate_id(big, &err), 0);
    char id[SANDBOX_ID_LEN + 1], id2[SANDBOX_ID_LEN + 1];
    assert_int_equal(sandbox_new_id(id, &err), 0);
    assert_int_equal(sandbox_new_id(id2, &err), 0);
    assert_int_equal(strlen(id), 24);
    assert_int_equal(sandbox_validate_id(id, &err), 0);
    assert_string_not_equal(id, id2);
}

static void
test_instance(void **state)
{
    (void)state;
    se_err err;
    assert_int_equal(sandbox_instance_check("default", &err), 0);
    assert_int_equal(sandbox_instance_check("t-0a1b", &err), 0);
    EXPECT_ERR(sandbox_instance_check("", ERRP), SE_INVALID, "instance");
    EXPECT_ERR(sandbox_instance_check(NULL, ERRP), SE_INVALID, "instance");
    EXPECT_ERR(sandbox_instance_check("a=b", ERRP), SE_INVALID, "instance");
    EXPECT_ERR(sandbox_instance_check("Prod", ERRP), SE_INVALID, "instance");
    EXPECT_ERR(sandbox_instance_check("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", ERRP), SE_INVALID,
               "instance");
}

static void
test_create_ok_and_defaults(void **state)
{
    (void)state;
    sandbox_config cfg = test_cfg();
    Safeeval__V1__CreateSandboxRequest req = SAFEEVAL__V1__CREATE_SANDBOX_REQUEST__INIT;
    char *mods[] = {"numpy", "requests==2.31.0"};
    req.modules = mods;
    req.n_modules = 2;
    Safeeval__V1__Limits lim = SAFEEVAL__V1__LIMITS__INIT;
    lim.wall_time_ms = 1000;
    req.limits = &lim;
    sandbox_spec s;
    se_err err;
    assert_int_equal(sandbox_validate_create(&s, &cfg, &req, &err), 0);
    assert_string_equal(s.python, "3.11");
    assert_int_equal(s.n_modules, 2);
    assert_int_equal(s.limits.wall_time_ms, 1000);
    assert_int_equal(s.limits.cpu_time_ms, 5000);
    assert_int_equal(s.limits.memory_bytes, 256u << 20);
    assert_int_equal(s.idle_timeout_s, 600);
    assert_true(s.created_at_ms > 0);
    sandbox_spec_clear(&s);
}

static void
test_create_bad(void **state)
{
    (void)state;
    sandbox_config cfg = test_cfg();
    sandbox_spec s;
    Safeeval__V1__CreateSandboxRequest req = SAFEEVAL__V1__CREATE_SANDBOX_REQUEST__INIT;
    req.python_version = "3.x";
    EXPECT_ERR(sandbox_validate_create(&s, &cfg, &req, ERRP), SE_INVALID, "python_version");
    req.python_version = "3.11; rm -rf /";
    EXPECT_ERR(sandbox_validate_create(&s, &cfg, &req, ERRP), SE_INVALID, "python_version");
    req.python_version = "3.13";

    char *bad[] = {"numpy", "requests", "--index-url=http://evil"};
    req.modules = bad;
    req.n_modules = 3;
    EXPECT_ERR(sandbox_validate_create(&s, &cfg, &req, ERRP), SE_INVALID, "modules[2]");
    char *bad2[] = {"numpy", "git+https://x/y"};
    req.modules = bad2;
    req.n_modules = 2;
    EXPECT_ERR(sandbox_validate_create(&s, &cfg, &req, ERRP), SE_INVALID, "modules[1]");
    char *bad3[] = {"numpy", "foo; rm -rf /"};
    req.modules = bad3;
    EXPECT_ERR(sandbox_validate_create(&s, &cfg, &req, ERRP), SE_INVALID, "modules[1]");
    char *dup[] = {"Foo_Bar", "foo-bar==1.0"};
    req.modules = dup;
    EXPECT_ERR(sandbox_validate_create(&s, &cfg, &req, ERRP), SE_INVALID, "duplicate");
    char *empty[] = {""};
    req.modules = empty;
    req.n_modules = 1;
    EXPECT_ERR(sandbox_validate_create(&s, &cfg, &req, ERRP), SE_INVALID, "modules[0]");
    char *many[SE_MAX_MODULES + 1];
    for (int i = 0; i <= SE_MAX_MODULES; i++)
        many[i] = "x";
    req.modules = many;
    req.n_modules = SE_MAX_MODULES + 1;
    EXPECT_ERR(sandbox_validate_create(&s, &cfg, &req, ERRP), SE_INVALID, "modules");
    req.n_modules = 0;

    req.idle_timeout_s = 3601;
    EXPECT_ERR(sandbox_validate_create(&s, &cfg, &req, ERRP), SE_INVALID, "idle_timeout_s");
    req.idle_timeout_s = 0;

    Safeeval__V1__Limits lim = SAFEEVAL__V1__LIMITS__INIT;
    req.limits = &lim;
    lim.memory_bytes = (1024ull << 20) + 1;
    EXPECT_ERR(sandbox_validate_create(&s, &cfg, &req, ERRP), SE_INVALID, "limits.memory_bytes");
    lim.memory_bytes = 0;
    lim.max_processes = 129;
    EXPECT_ERR(sandbox_validate_create(&s, &cfg, &req, ERRP), SE_INVALID, "limits.max_processes");
    lim.max_processes = 0;
    lim.max_output_bytes = UINT64_MAX;
    EXPECT_ERR(sandbox_validate_create(&s, &cfg, &req, ERRP), SE_INVALID,
               "limits.max_output_bytes");
    lim.max_output_bytes = 0;

    Safeeval__V1__CreateSandboxRequest__LabelsEntry l1 =
        SAFEEVAL__V1__CREATE_SANDBOX_REQUEST__LABELS_ENTRY__INIT;
    Safeeval__V1__CreateSandboxRequest__LabelsEntry *lp[] = {&l1};
    req.labels = lp;
    req.n_labels = 1;
    l1.key = "Owner";
    l1.value = "x";
    EXPECT_ERR(sandbox_validate_create(&s, &cfg, &req, ERRP), SE_INVALID, "labels[0]");
    l1.key = "owner";
    l1.value = "a\nb";
    EXPECT_ERR(sandbox_validate_create(&s, &cfg, &req, ERRP), SE_INVALID, "labels[owner]");
    l1.value = "ok";
    se_err err;
    assert_int_equal(sandbox_validate_create(&s, &cfg, &req, &err), 0);
    sandbox_spec_clear(&s);
}

static void
test_labels(void **state)
{
    (void)state;
    char key64[65], val257[258];
    memset(key64, 'k', 64);
    key64[64] = 0;
    memset(val257, 'v', 257);
    val257[257] = 0;
    char *k[] = {key64}, *v[] = {"x"};
    EXPECT_ERR(sandbox_validate_labels(k, v, 1, ERRP), SE_INVALID, "labels[0]");
    k[0] = "app";
    v[0] = val257;
    EXPECT_ERR(sandbox_validate_labels(k, v, 1, ERRP), SE_INVALID, "labels[app]");
    char *k2[] = {"a", "a"}, *v2[] = {"1", "2"};
    EXPECT_ERR(sandbox_validate_labels(k2, v2, 2, ERRP), SE_INVALID, "duplicate");
    char *k3[33], *v3[33];
    for (int i = 0; i < 33; i++)
        k3[i] = v3[i] = "x";
    EXPECT_ERR(sandbox_validate_labels(k3, v3, 33, ERRP), SE_INVALID, "labels");
    char *k4[] = {"team.example/owner-1_x"}, *v4[] = {""};
    se_err err;
    assert_int_equal(sandbox_validate_labels(k4, v4, 1, &err), 0);
}

static void
test_run_limits(void **state)
{
    (void)state;
    sandbox_limits sb = {2000, 1000, 64u << 20, 8, 4096, 1 << 20, 16, 1 << 20}, out;
    memset(&out, 0, sizeof(out));
    se_err err;
    assert_int_equal(sandbox_limits_for_run(&out, &sb, NULL, &err), 0);
    assert_int_equal(out.wall_time_ms, sb.wall_time_ms);
    assert_int_equal(out.memory_bytes, sb.memory_bytes);
    assert_int_equal(out.max_processes, sb.max_processes);
    assert_int_equal(out.max_file_bytes, sb.max_file_bytes);
    Safeeval__V1__Limits l = SAFEEVAL__V1__LIMITS__INIT;
    l.wall_time_ms = 500;
    assert_int_equal(sandbox_limits_for_run(&out, &sb, &l, &err), 0);
    assert_int_equal(out.wall_time_ms, 500);
    assert_int_equal(out.cpu_time_ms, 1000);
    l.cpu_time_ms = 1001;
    EXPECT_ERR(sandbox_limits_for_run(&out, &sb, &l, ERRP), SE_INVALID, "limits.cpu_time_ms");
    l.cpu_time_ms = 0;
    l.max_file_bytes = (1 << 20) + 1;
    EXPECT_ERR(sandbox_limits_for_run(&out, &sb, &l, ERRP), SE_INVALID, "limits.max_file_bytes");
    /* Below what Python needs to start: refused here, not by the agent. */
    l.max_file_bytes = 0;
    l.memory_bytes = 1;
    EXPECT_ERR(sandbox_limits_for_run(&out, &sb, &l, ERRP), SE_INVALID, "limits.memory_bytes");
}

static void
test_filename_and_paths(void **state)
{
    (void)state;
    se_err err;
    assert_int_equal(sandbox_validate_filename("job.py", &err), 0);
    assert_int_equal(sandbox_validate_filename("a-b_c.1", &err), 0);
    const char *bad[] = {"", ".", "..", "a/b", "/etc/passwd", "a b", "x\x01", "caf\xc3\xa9.py"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        EXPECT_ERR(sandbox_validate_filename(bad[i], ERRP), SE_INVALID, "filename");
    char longname[300];
    memset(longname, 'a', 256);
    longname[256] = 0;
    EXPECT_ERR(sandbox_validate_filename(longname, ERRP), SE_INVALID, "filename");

    assert_int_equal(sandbox_validate_path("data/in.csv", &err), 0);
    assert_int_equal(sandbox_validate_path("a/b/c", &err), 0);
    /* Control characters: the agent refuses them, so the daemon must too
     * (a fuzzing find: they used to reach the agent and come back INTERNAL). */
    const char *badp[] = {"",    "/abs", "a//b", "a/",   "../x",  "a/../b",
                          "./a", "a/.",  "..",   "a\tb", "a/b\n", "x\x7f"};
    for (size_t i = 0; i < sizeof(badp) / sizeof(badp[0]); i++) {
        se_err e;
        se_err_clear(&e);
        if (sandbox_validate_path(badp[i], &e) != -SE_INVALID)
            fail_msg("path '%s' accepted", badp[i]);
    }
    char comp[300];
    memset(comp, 'c', 256);
    comp[256] = 0;
    assert_int_equal(sandbox_validate_path(comp, &err), -SE_INVALID);
    char total[1100];
    for (int i = 0; i < 1030; i++)
        total[i] = (i % 10 == 9) ? '/' : 'p';
    total[1030] = 0;
    assert_int_equal(sandbox_validate_path(total, &err), -SE_INVALID);
    /* Depth: 32 components pass, 33 do not (the agent's cap). */
    char deep[80];
    for (int i = 0; i < 33; i++) {
        deep[2 * i] = 'd';
        deep[2 * i + 1] = '/';
    }
    deep[2 * 32 - 1] = 0;
    assert_int_equal(sandbox_validate_path(deep, &err), 0);
    deep[2 * 32 - 1] = '/';
    deep[2 * 33 - 1] = 0;
    assert_int_equal(sandbox_validate_path(deep, &err), -SE_INVALID);
}

static void
test_path_normalise(void **state)
{
    (void)state;
    /* "." and empty components go, in place; the rest is the agent's rule. */
    static const char *const good[][2] = {
        {"a.txt", "a.txt"},
        {"./a.txt", "a.txt"},
        {"a/./b", "a/b"},
        {"a//b", "a/b"},
        {"a/", "a"},
        {"a/.", "a"},
        {"././x/./y/.", "x/y"},
        {".//a", "a"},
        {"data/in.csv", "data/in.csv"},
        {"./.hidden", ".hidden"},
        {"a/.../b", "a/.../b"},
        {"..a/b..", "..a/b.."},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char buf[64];
        snprintf(buf, sizeof(buf), "%s", good[i][0]);
        se_err e;
        se_err_clear(&e);
        if (sandbox_normalise_path(buf, &e) != 0)
            fail_msg("'%s' refused: %s", good[i][0], e.msg);
        if (strcmp(buf, good[i][1]) != 0)
            fail_msg("'%s' -> '%s', want '%s'", good[i][0], buf, good[i][1]);
        /* What the daemon keeps, the agent takes as it is. */
        assert_int_equal(agent_path_validate(buf, &e), 0);
    }
    static const char *const bad[] = {"",     "/abs",  "//a",     ".",    "./",    "./.",
                                      "..",   "../x",  "a/../b",  "./..", "a/..",  "a/./../b",
                                      "a\tb", "./a\n", "x\x7f/.", "/./a", "./../a"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char buf[64];
        snprintf(buf, sizeof(buf), "%s", bad[i]);
        se_err e;
        se_err_clear(&e);
        if (sandbox_normalise_path(buf, &e) != -SE_INVALID)
            fail_msg("'%s' accepted as '%s'", bad[i], buf);
    }
    EXPECT_ERR(sandbox_normalise_path((char[]){"."}, ERRP), SE_INVALID, "names no file");
    EXPECT_ERR(sandbox_normalise_path((char[]){"a/../b"}, ERRP), SE_INVALID, "'..'");
    EXPECT_ERR(sandbox_normalise_path(NULL, ERRP), SE_INVALID, "empty");

    /* A path that needs nothing is not written to: a read-only one (as
     * protobuf-c's default empty string is) passes or fails intact. */
    se_err err;
    assert_int_equal(sandbox_normalise_path((char *)"data/in.csv", &err), 0);
    assert_int_equal(sandbox_normalise_path((char *)"", &err), -SE_INVALID);

    /* The caps apply to the normalised path: 32 components after any
     * number of "./", 1024 bytes after dropping 1200 of "./". */
    char deep[200] = "";
    for (int i = 0; i < 32; i++)
        strcat(deep, i ? "/./d" : "./d");
    assert_int_equal(sandbox_normalise_path(deep, &err), 0);
    assert_int_equal(strlen(deep), 63);
    char deeper[200] = "";
    for (int i = 0; i < 33; i++)
        strcat(deeper, i ? "//d" : "d");
    EXPECT_ERR(sandbox_normalise_path(deeper, ERRP), SE_INVALID, "deeper than 32");
    char *longp = malloc(3000);
    assert_non_null(longp);
    longp[0] = '\0';
    for (int i = 0; i < 600; i++)
        strcat(longp, "./");
    strcat(longp, "a");
    assert_int_equal(sandbox_normalise_path(longp, &err), 0);
    assert_string_equal(longp, "a");
    free(longp);
    char comp[300] = "./";
    memset(comp + 2, 'c', 256);
    comp[258] = 0;
    EXPECT_ERR(sandbox_normalise_path(comp, ERRP), SE_INVALID, "component longer");
}

static sandbox_run_input
run_input(const char *code)
{
    sandbox_run_input in = {
        .sandbox_id = "abc",
        .script = (const uint8_t *)code,
        .script_len = strlen(code),
        .filename = "main.py",
    };
    return in;
}

static void
test_run_input(void **state)
{
    (void)state;
    se_err err;
    sandbox_run_input in = run_input("print(1)");
    assert_int_equal(sandbox_validate_run(&in, true, &err), 0);
    in = run_input("");
    EXPECT_ERR(sandbox_validate_run(&in, true, ERRP), SE_INVALID, "code");
    EXPECT_ERR(sandbox_validate_run(&in, false, ERRP), SE_INVALID, "content");

    /* files */
    in = run_input("x");
    Safeeval__V1__File f0 = SAFEEVAL__V1__FILE__INIT, f1 = SAFEEVAL__V1__FILE__INIT;
    Safeeval__V1__File *fs[] = {&f0, &f1};
    in.files = fs;
    in.n_files = 2;
    f0.path = "data/a.csv";
    f1.path = "data/a.csv";
    EXPECT_ERR(sandbox_validate_run(&in, true, ERRP), SE_INVALID, "files[1].path: duplicate");
    f1.path = "../etc/passwd";
    EXPECT_ERR(sandbox_validate_run(&in, true, ERRP), SE_INVALID, "files[1].path");
    f1.path = "/etc/passwd";
    EXPECT_ERR(sandbox_validate_run(&in, true, ERRP), SE_INVALID, "files[1].path");
    f1.path = "main.py";
    EXPECT_ERR(sandbox_validate_run(&in, true, ERRP), SE_INVALID, "files[1].path: collides");
    f1.path = "data";
    EXPECT_ERR(sandbox_validate_run(&in, true, ERRP), SE_INVALID, "files[1].path");
    f1.path = "data/b.csv";
    assert_int_equal(sandbox_validate_run(&in, true, &err), 0);
    in.n_files = SANDBOX_MAX_FILES + 1;
    EXPECT_ERR(sandbox_validate_run(&in, true, ERRP), SE_INVALID, "files");

    /* Paths are normalised in the request itself, before every other
     * check: duplicates and collisions are found on the normalised form,
     * and the agent gets it. */
    in.n_files = 2;
    char p1[64] = "./data//b.csv";
    f1.path = p1;
    assert_int_equal(sandbox_validate_run(&in, true, &err), 0);
    assert_string_equal(f1.path, "data/b.csv");
    snprintf(p1, sizeof(p1), "data/./a.csv");
    EXPECT_ERR(sandbox_validate_run(&in, true, ERRP), SE_INVALID,
               "files[1].path: duplicate of files[0]");
    snprintf(p1, sizeof(p1), "./data/a.csv/x");
    EXPECT_ERR(sandbox_validate_run(&in, true, ERRP), SE_INVALID,
               "files[1].path: a file and a directory of files[0]");
    snprintf(p1, sizeof(p1), "./.");
    EXPECT_ERR(sandbox_validate_run(&in, true, ERRP), SE_INVALID, "files[1].path: file path names");
    snprintf(p1, sizeof(p1), "./../x");
    EXPECT_ERR(sandbox_validate_run(&in, true, ERRP), SE_INVALID, "files[1].path: file path has");

    /* The script's own name: Eval's main.py, ExecuteFile's filename. A
     * file there or under it is the client's error (the agent refused it
     * and the client got INTERNAL). */
    snprintf(p1, sizeof(p1), "./main.py");
    EXPECT_ERR(sandbox_validate_run(&in, true, ERRP), SE_INVALID,
               "files[1].path: collides with the script main.py");
    snprintf(p1, sizeof(p1), "main.py/x");
    EXPECT_ERR(sandbox_validate_run(&in, true, ERRP), SE_INVALID,
               "files[1].path: collides with the script main.py (used as a directory)");
    in.filename = "job.py";
    snprintf(p1, sizeof(p1), "job.py/x");
    EXPECT_ERR(sandbox_validate_run(&in, false, ERRP), SE_INVALID,
               "files[1].path: collides with the script job.py (used as a directory)");
    snprintf(p1, sizeof(p1), "job.py//./");
    EXPECT_ERR(sandbox_validate_run(&in, false, ERRP), SE_INVALID,
               "files[1].path: collides with the script job.py");
    const char *fine[] = {"main.py", "job.pyc", "job", "x/job.py", "job.py.d/x", "jo/b.py"};
    for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++) {
        snprintf(p1, sizeof(p1), "%s", fine[i]);
        if (sandbox_validate_run(&in, false, &err) != 0)
            fail_msg("'%s' beside job.py refused: %s", fine[i], err.msg);
    }

    /* args */
    in = run_input("x");
    char *args[SANDBOX_MAX_ARGS + 1];
    for (int i = 0; i <= SANDBOX_MAX_ARGS; i++)
        args[i] = "a";
    in.args = args;
    in.n_args = SANDBOX_MAX_ARGS + 1;
    EXPECT_ERR(sandbox_validate_run(&in, true, ERRP), SE_INVALID, "args");
    in.n_args = 2;
    char *big = malloc(SANDBOX_ARG_MAX + 2);
    memset(big, 'b', SANDBOX_ARG_MAX + 1);
    big[SANDBOX_ARG_MAX + 1] = 0;
    args[1] = big;
    EXPECT_ERR(sandbox_validate_run(&in, true, ERRP), SE_INVALID, "args[1]");
    free(big);

    /* env */
    in = run_input("x");
    const char *keys[] = {"GOOD_1", "1BAD"}, *vals[] = {"v", "v"};
    in.env_keys = keys;
    in.env_values = vals;
    in.n_env = 2;
    EXPECT_ERR(sandbox_validate_run(&in, true, ERRP), SE_INVALID, "env[1]");
    keys[1] = "SAFEEVAL_TOKEN";
    EXPECT_ERR(sandbox_validate_run(&in, true, ERRP), SE_INVALID, "SAFEEVAL_");
    keys[1] = "A=B";
    EXPECT_ERR(sandbox_validate_run(&in, true, ERRP), SE_INVALID, "env[1]");
    keys[1] = "GOOD_1";
    EXPECT_ERR(sandbox_validate_run(&in, true, ERRP), SE_INVALID, "duplicate");
    keys[1] = "_ok";
    assert_int_equal(sandbox_validate_run(&in, true, &err), 0);

    /* size: script + stdin over the frame cap is EXHAUSTED */
    in = run_input("x");
    static uint8_t dummy;
    in.script = &dummy;
    in.script_len = FRAME_MAX;
    EXPECT_ERR(sandbox_validate_run(&in, true, ERRP), SE_EXHAUSTED, "request");
    in.script_len = 1;
    in.stdin_data = &dummy;
    in.stdin_len = FRAME_MAX;
    EXPECT_ERR(sandbox_validate_run(&in, true, ERRP), SE_EXHAUSTED, "request");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id),
        cmocka_unit_test(test_instance),
        cmocka_unit_test(test_create_ok_and_defaults),
        cmocka_unit_test(test_create_bad),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_run_limits),
        cmocka_unit_test(test_filename_and_paths),
        cmocka_unit_test(test_path_normalise),
        cmocka_unit_test(test_run_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
