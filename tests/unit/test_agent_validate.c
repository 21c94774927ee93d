/* The agent's own request validation (it trusts nothing the daemon sends).
 * validate.c is pure and compiled in here directly: unit tests link the
 * daemon's library, which does not carry the agent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/agent.h"

static void
test_paths(void **state)
{
    (void)state;
    se_err e;
    const char *good[] = {"a",   "main.py", "data/in.csv", "a/b/c/d.txt", "..a",
                          "a..", ".hidden", "a/.b",        "sp ace",      "ünï"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(agent_path_validate(good[i], &e), 0);
    const char *bad[] = {"",   "/etc/passwd", "../x", "a/../b", "a/..",
                         "..", ".",           "./a",  "a/./b",  "a//b",
                         "a/", "/",           "a\nb", "a\x7f",  "tab\there"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(agent_path_validate(bad[i], &e), -SE_INVALID);
        assert_int_equal(e.code, SE_INVALID);
    }
    assert_int_equal(agent_path_validate(NULL, &e), -SE_INVALID);

    char longc[AGENT_MAX_COMPONENT + 2];
    memset(longc, 'x', sizeof longc - 1);
    longc[sizeof longc - 1] = 0;
    assert_int_equal(agent_path_validate(longc, &e), -SE_INVALID);
    longc[AGENT_MAX_COMPONENT] = 0;
    assert_int_equal(agent_path_validate(longc, &e), 0);

    char deep[AGENT_MAX_DEPTH * 2 + 4];
    size_t o = 0;
    for (int i = 0; i < AGENT_MAX_DEPTH + 1; i++) {
        deep[o++] = 'd';
        deep[o++] = '/';
    }
    deep[o - 1] = 0;
    assert_int_equal(agent_path_validate(deep, &e), -SE_INVALID);

    char *huge = malloc(AGENT_MAX_PATH + 2);
    for (size_t i = 0; i <= AGENT_MAX_PATH; i++)
        huge[i] = (i % 100 == 99) ? '/' : 'h';
    huge[AGENT_MAX_PATH + 1] = 0;
    assert_int_equal(agent_path_validate(huge, &e), -SE_INVALID);
    free(huge);
}

static void
test_filename_and_env(void **state)
{
    (void)state;
    se_err e;
    assert_int_equal(agent_filename_validate("main.py", &e), 0);
    assert_int_equal(agent_filename_validate("job.py", &e), 0);
    assert_int_equal(agent_filename_validate("a/b.py", &e), -SE_INVALID);
    assert_int_equal(agent_filename_validate("..", &e), -SE_INVALID);
    assert_int_equal(agent_filename_validate("", &e), -SE_INVALID);
    assert_int_equal(agent_filename_validate("/main.py", &e), -SE_INVALID);

    assert_int_equal(agent_env_name_validate("FOO", &e), 0);
    assert_int_equal(agent_env_name_validate("", &e), -SE_INVALID);
    assert_int_equal(agent_env_name_validate("A=B", &e), -SE_INVALID);
    assert_int_equal(agent_env_name_validate("=", &e), -SE_INVALID);
    assert_int_equal(agent_env_name_validate("A\nB", &e), -SE_INVALID);
}

/* Preload names (issue 8): dotted identifiers only, never anything a
 * python3 command line or an import statement could take more from. */
static void
test_module_names(void **state)
{
    (void)state;
    static const char *const good[] = {"numpy", "numpy.linalg", "_x", "a1.b_2.C", "xml.dom"};
    static const char *const bad[] = {"",    "1numpy", "numpy.", ".numpy", "numpy..linalg",
                                      "a b", "os;x",   "-c",     "a/b",    "n\xc3\xa9",
                                      "a.1"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_int_equal(agent_module_name_validate(good[i]), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(agent_module_name_validate(bad[i]), -1);
    char longest[AGENT_ZYGOTE_MODULE_MAX + 2];
    memset(longest, 'a', sizeof(longest));
    longest[AGENT_ZYGOTE_MODULE_MAX] = 0;
    assert_int_equal(agent_module_name_validate(longest), 0);
    longest[AGENT_ZYGOTE_MODULE_MAX] = 'a';
    longest[AGENT_ZYGOTE_MODULE_MAX + 1] = 0;
    assert_int_equal(agent_module_name_validate(longest), -1);
}

/* A request built on the stack, like protobuf-c's unpack would give. */
struct req_fixture {
    agent_request req;
    Safeeval__V1__Limits lim;
    Safeeval__V1__File f[3];
    Safeeval__V1__File *fp[3];
    Safeeval__Agent__V1__RunRequest__EnvEntry env[2];
    Safeeval__Agent__V1__RunRequest__EnvEntry *envp[2];
    char *args[2];
};

static void
fixture_init(struct req_fixture *x)
{
    memset(x, 0, sizeof *x);
    safeeval__agent__v1__run_request__init(&x->req);
    safeeval__v1__limits__init(&x->lim);
    x->lim.wall_time_ms = 1000;
    x->lim.cpu_time_ms = 1000;
    x->lim.memory_bytes = 64u << 20;
    x->lim.max_processes = 16;
    x->lim.max_output_bytes = 1 << 20;
    x->lim.max_file_bytes = 1 << 20;
    x->req.limits = &x->lim;
    x->req.filename = "main.py";
    x->req.script.data = (uint8_t *)"print(1)";
    x->req.script.len = 8;
    for (int i = 0; i < 3; i++) {
        safeeval__v1__file__init(&x->f[i]);
        x->fp[i] = &x->f[i];
    }
    x->f[0].path = "data/a.csv";
    x->f[1].path = "data/b.csv";
    x->f[2].path = "c.txt";
    x->req.files = x->fp;
    x->req.n_files = 3;
    for (int i = 0; i < 2; i++) {
        safeeval__agent__v1__run_request__env_entry__init(&x->env[i]);
        x->envp[i] = &x->env[i];
    }
    x->env[0].key = "A";
    x->env[0].value = "1";
    x->env[1].key = "B";
    x->env[1].value = "";
    x->req.env = x->envp;
    x->req.n_env = 2;
    x->args[0] = "x";
    x->args[1] = "";
    x->req.args = x->args;
    x->req.n_args = 2;
}

static void
test_request(void **state)
{
    (void)state;
    se_err e;
    struct req_fixture x;
    fixture_init(&x);
    assert_int_equal(agent_request_validate(&x.req, &e), 0);

    fixture_init(&x);
    x.req.limits = NULL;
    assert_int_equal(agent_request_validate(&x.req, &e), -SE_INVALID);
    fixture_init(&x);
    x.lim.max_processes = 0;
    assert_int_equal(agent_request_validate(&x.req, &e), -SE_INVALID);
    fixture_init(&x);
    x.lim.max_processes = AGENT_MAX_PROCESSES + 1;
    assert_int_equal(agent_request_validate(&x.req, &e), -SE_INVALID);
    fixture_init(&x);
    x.req.script.len = 0;
    assert_int_equal(agent_request_validate(&x.req, &e), -SE_INVALID);
    fixture_init(&x);
    x.req.filename = "dir/main.py";
    assert_int_equal(agent_request_validate(&x.req, &e), -SE_INVALID);
    assert_non_null(strstr(e.msg, "filename"));

    /* file collisions: the script itself, duplicates, file used as dir */
    fixture_init(&x);
    x.f[2].path = "main.py";
    assert_int_equal(agent_request_validate(&x.req, &e), -SE_INVALID);
    fixture_init(&x);
    x.f[1].path = "data/a.csv";
    assert_int_equal(agent_request_validate(&x.req, &e), -SE_INVALID);
    assert_non_null(strstr(e.msg, "duplicates"));
    fixture_init(&x);
    x.f[2].path = "data/a.csv/inner";
    assert_int_equal(agent_request_validate(&x.req, &e), -SE_INVALID);
    fixture_init(&x);
    x.f[2].path = "data";
    assert_int_equal(agent_request_validate(&x.req, &e), -SE_INVALID);
    fixture_init(&x);
    x.f[2].path = "main.py/x";
    assert_int_equal(agent_request_validate(&x.req, &e), -SE_INVALID);
    fixture_init(&x);
    x.f[1].path = "../escape";
    assert_int_equal(agent_request_validate(&x.req, &e), -SE_INVALID);
    assert_non_null(strstr(e.msg, "files[1]"));
    fixture_init(&x);
    x.fp[1] = NULL;
    assert_int_equal(agent_request_validate(&x.req, &e), -SE_INVALID);

    /* env and args */
    fixture_init(&x);
    x.env[1].key = "PATH=evil";
    assert_int_equal(agent_request_validate(&x.req, &e), -SE_INVALID);
    fixture_init(&x);
    x.env[0].value = NULL;
    assert_int_equal(agent_request_validate(&x.req, &e), -SE_INVALID);
    fixture_init(&x);
    char *big = malloc(AGENT_MAX_ARG + 2);
    memset(big, 'a', AGENT_MAX_ARG + 1);
    big[AGENT_MAX_ARG + 1] = 0;
    x.args[0] = big;
    assert_int_equal(agent_request_validate(&x.req, &e), -SE_INVALID);
    big[AGENT_MAX_ARG] = 0;
    assert_int_equal(agent_request_validate(&x.req, &e), 0);
    free(big);

    /* counts */
    fixture_init(&x);
    x.req.n_files = AGENT_MAX_FILES + 1;
    assert_int_equal(agent_request_validate(&x.req, &e), -SE_INVALID);
    fixture_init(&x);
    x.req.n_args = AGENT_MAX_ARGS + 1;
    assert_int_equal(agent_request_validate(&x.req, &e), -SE_INVALID);
    fixture_init(&x);
    x.req.n_env = AGENT_MAX_ENV + 1;
    assert_int_equal(agent_request_validate(&x.req, &e), -SE_INVALID);
}

static void
test_total_argv_cap(void **state)
{
    (void)state;
    /* 256 args of 64 KiB each pass one by one but not together. */
    se_err e;
    struct req_fixture x;
    fixture_init(&x);
    char *big = malloc(AGENT_MAX_ARG + 1);
    memset(big, 'b', AGENT_MAX_ARG);
    big[AGENT_MAX_ARG] = 0;
    char *many[AGENT_MAX_ARGS];
    for (int i = 0; i < AGENT_MAX_ARGS; i++)
        many[i] = big;
    x.req.args = many;
    x.req.n_args = AGENT_MAX_ARGS;
    assert_int_equal(agent_request_validate(&x.req, &e), -SE_INVALID);
    assert_non_null(strstr(e.msg, "args and env"));
    free(big);
}

static void
test_msg(void **state)
{
    (void)state;
    se_err e;
    struct req_fixture x;
    fixture_init(&x);
    agent_msg m;
    safeeval__agent__v1__request__init(&m);
    /* no op */
    assert_int_equal(agent_msg_validate(&m, &e), -SE_INVALID);
    assert_int_equal(agent_msg_validate(NULL, &e), -SE_INVALID);
    /* sync needs no id */
    m.op_case = SAFEEVAL__AGENT__V1__REQUEST__OP_SYNC;
    m.sync = 1;
    assert_int_equal(agent_msg_validate(&m, &e), 0);
    /* cancel, ack and run name a run */
    m.op_case = SAFEEVAL__AGENT__V1__REQUEST__OP_CANCEL;
    assert_int_equal(agent_msg_validate(&m, &e), -SE_INVALID);
    m.id = 7;
    assert_int_equal(agent_msg_validate(&m, &e), 0);
    m.op_case = SAFEEVAL__AGENT__V1__REQUEST__OP_ACK;
    assert_int_equal(agent_msg_validate(&m, &e), 0);
    m.op_case = SAFEEVAL__AGENT__V1__REQUEST__OP_RUN;
    m.run = &x.req;
    assert_int_equal(agent_msg_validate(&m, &e), 0);
    m.id = 0;
    assert_int_equal(agent_msg_validate(&m, &e), -SE_INVALID);
    /* a run's request is validated, and the error names the run */
    m.id = 9;
    x.req.filename = "../x.py";
    assert_int_equal(agent_msg_validate(&m, &e), -SE_INVALID);
    assert_non_null(strstr(e.msg, "run 9"));
    assert_non_null(strstr(e.msg, "filename"));
    m.run = NULL;
    assert_int_equal(agent_msg_validate(&m, &e), -SE_INVALID);
    /* an op number protobuf-c does not know */
    m.op_case = (Safeeval__Agent__V1__Request__OpCase)42;
    assert_int_equal(agent_msg_validate(&m, &e), -SE_INVALID);
}

static void
test_msg_wire(void **state)
{
    (void)state;
    /* What protobuf-c packs is what peek reads: the id comes first. */
    struct req_fixture x;
    fixture_init(&x);
    agent_msg m;
    safeeval__agent__v1__request__init(&m);
    m.op_case = SAFEEVAL__AGENT__V1__REQUEST__OP_RUN;
    m.run = &x.req;
    const uint64_t ids[] = {1, 127, 128, 300, 1ull << 35, UINT64_MAX};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        m.id = ids[i];
        uint8_t buf[512];
        size_t n = safeeval__agent__v1__request__get_packed_size(&m);
        assert_true(n <= sizeof(buf));
        safeeval__agent__v1__request__pack(&m, buf);
        uint64_t id = 0;
        assert_int_equal(agent_msg_peek_id(&id, buf, n < 16 ? n : 16), 1);
        assert_true(id == ids[i]);
        agent_msg *u = safeeval__agent__v1__request__unpack(NULL, n, buf);
        assert_non_null(u);
        se_err e;
        assert_int_equal(agent_msg_validate(u, &e), 0);
        safeeval__agent__v1__request__free_unpacked(u, NULL);
    }
    uint64_t id = 5;
    /* not field 1 first, a cut varint, an overlong varint, nothing */
    const uint8_t other[] = {0x12, 0x01, 0x00};
    assert_int_equal(agent_msg_peek_id(&id, other, sizeof(other)), 0);
    const uint8_t cut[] = {0x08, 0x80, 0x80};
    assert_int_equal(agent_msg_peek_id(&id, cut, sizeof(cut)), 0);
    const uint8_t longv[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                             0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    assert_int_equal(agent_msg_peek_id(&id, longv, sizeof(longv)), 0);
    assert_int_equal(agent_msg_peek_id(&id, NULL, 0), 0);
    assert_int_equal(id, 5);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),          cmocka_unit_test(test_filename_and_env),
        cmocka_unit_test(test_module_names),   cmocka_unit_test(test_request),
        cmocka_unit_test(test_total_argv_cap), cmocka_unit_test(test_msg),
        cmocka_unit_test(test_msg_wire),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
