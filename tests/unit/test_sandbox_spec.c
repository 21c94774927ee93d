/* The container a sandbox runs in (its hardened create JSON), the spec label
 * round trip (and hostile labels), the agent frames (and hostile answers),
 * and the registry's counting. Pure: no Docker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agent/frame.h"
#include "sandbox/internal.h"

static sandbox_config
test_cfg(void)
{
    sandbox_config c = {
        .instance = "unit",
        .max_sandboxes = 2,
        .default_idle_timeout_s = 600,
        .max_idle_timeout_s = 3600,
        .default_python = "3.11",
        .default_limits = {5000, 5000, 256u << 20, 32, 1 << 20, 16 << 20},
        .max_limits = {60000, 60000, 1024u << 20, 128, 16 << 20, 256 << 20},
        .max_concurrent_runs = 4,
    };
    return c;
}

static void
make_spec(sandbox_spec *s, const sandbox_config *cfg)
{
    Safeeval__V1__CreateSandboxRequest req = SAFEEVAL__V1__CREATE_SANDBOX_REQUEST__INIT;
    char *mods[] = {"numpy", "requests>=2.0"};
    req.modules = mods;
    req.n_modules = 2;
    req.python_version = "3.13";
    Safeeval__V1__Limits lim = SAFEEVAL__V1__LIMITS__INIT;
    lim.memory_bytes = 100u << 20;
    lim.max_processes = 10;
    req.limits = &lim;
    req.idle_timeout_s = 77;
    Safeeval__V1__CreateSandboxRequest__LabelsEntry l1 =
        SAFEEVAL__V1__CREATE_SANDBOX_REQUEST__LABELS_ENTRY__INIT;
    Safeeval__V1__CreateSandboxRequest__LabelsEntry *lp[] = {&l1};
    l1.key = "owner";
    l1.value = "team \"a\" {x}";
    req.labels = lp;
    req.n_labels = 1;
    se_err err;
    assert_int_equal(sandbox_validate_create(s, cfg, &req, &err), 0);
}

static const char *
str_at(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

static double
num_at(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

static void
test_container_body(void **state)
{
    (void)state;
    sandbox_config cfg = test_cfg();
    sandbox_spec s;
    make_spec(&s, &cfg);
    cJSON *b = NULL;
    se_err err;
    const char *seccomp = "{\"defaultAction\":\"SCMP_ACT_ERRNO\"}";
    assert_int_equal(
        sandbox_container_body(&b, &cfg, seccomp, &s, "0123abcd", "safeeval/sandbox:x", &err), 0);
    assert_string_equal(str_at(b, "Image"), "safeeval/sandbox:x");
    assert_string_equal(str_at(b, "User"), "10001:10001");
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(b, "Cmd");
    assert_int_equal(cJSON_GetArraySize(cmd), 2);
    assert_string_equal(cJSON_GetArrayItem(cmd, 0)->valuestring, "/usr/local/bin/safeeval-agent");
    assert_string_equal(cJSON_GetArrayItem(cmd, 1)->valuestring, "--wait");
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(b, "Labels");
    assert_string_equal(str_at(labels, "safeeval.managed"), "1");
    assert_string_equal(str_at(labels, "safeeval.sandbox"), "0123abcd");
    assert_string_equal(str_at(labels, "safeeval.instance"), "unit");
    assert_string_equal(str_at(labels, "safeeval.python"), "3.13");
    const char *spec_label = str_at(labels, "safeeval.spec");

    const cJSON *hc = cJSON_GetObjectItemCaseSensitive(b, "HostConfig");
    assert_non_null(hc);
    const cJSON *cap = cJSON_GetObjectItemCaseSensitive(hc, "CapDrop");
    assert_int_equal(cJSON_GetArraySize(cap), 1);
    assert_string_equal(cJSON_GetArrayItem(cap, 0)->valuestring, "ALL");
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(hc, "SecurityOpt");
    assert_int_equal(cJSON_GetArraySize(so), 2);
    assert_string_equal(cJSON_GetArrayItem(so, 0)->valuestring, "no-new-privileges");
    char want[128];
    snprintf(want, sizeof(want), "seccomp=%s", seccomp);
    assert_string_equal(cJSON_GetArrayItem(so, 1)->valuestring, want);
    assert_string_equal(str_at(hc, "NetworkMode"), "none");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(hc, "ReadonlyRootfs")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(hc, "Init")));
    assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(hc, "Privileged")));
    const cJSON *mp = cJSON_GetObjectItemCaseSensitive(hc, "MaskedPaths");
    assert_true(cJSON_IsArray(mp));
    assert_int_equal(cJSON_GetArraySize(mp), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(hc, "ReadonlyPaths")), 0);
    assert_string_equal(str_at(cJSON_GetObjectItemCaseSensitive(hc, "Tmpfs"), "/tmp"),
                        "rw,nosuid,nodev,size=64m");
    double mem = (100.0 * 1024 * 1024) * 4 + 64.0 * 1024 * 1024;
    assert_true(num_at(hc, "Memory") == mem);
    assert_true(num_at(hc, "MemorySwap") == mem);
    assert_true(num_at(hc, "PidsLimit") == 10 * 4 + 16);
    assert_true(num_at(hc, "NanoCpus") == 1e9);

    /* The spec label round-trips, through validation. */
    sandbox_spec back;
    assert_int_equal(sandbox_spec_from_json(&back, &cfg, spec_label, &err), 0);
    assert_string_equal(back.python, "3.13");
    assert_int_equal(back.n_modules, 2);
    assert_string_equal(back.modules[1], "requests>=2.0");
    assert_memory_equal(&back.limits, &s.limits, sizeof(s.limits));
    assert_int_equal(back.idle_timeout_s, 77);
    assert_int_equal(back.created_at_ms, s.created_at_ms);
    assert_int_equal(back.n_labels, 1);
    assert_string_equal(back.label_values[0], "team \"a\" {x}");
    sandbox_spec_clear(&back);
    sandbox_spec_clear(&s);
    cJSON_Delete(b);
}

static void
test_spec_hostile(void **state)
{
    (void)state;
    sandbox_config cfg = test_cfg();
    const char *lim = "\"limits\":{\"wall_time_ms\":1,\"cpu_time_ms\":1,\"memory_bytes\":1048576,"
                      "\"max_processes\":1,\"max_output_bytes\":1,\"max_file_bytes\":1}";
    char buf[2048];
    struct {
        const char *body;
        const char *needle;
    } cases[] = {
        {"", "spec label"},
        {"[]", "not a JSON object"},
        {"{\"v\":2}", "version"},
        {"{\"v\":1,\"python\":\"3.11\",\"modules\":[\"--index-url=x\"],\"labels\":{},"
         "\"idle_timeout_s\":1,\"created_at_ms\":1,%s}",
         "modules[0]"},
        {"{\"v\":1,\"python\":\"3.x\",\"modules\":[],\"labels\":{},"
         "\"idle_timeout_s\":1,\"created_at_ms\":1,%s}",
         "python_version"},
        {"{\"v\":1,\"python\":\"3.11\",\"modules\":[1],\"labels\":{},"
         "\"idle_timeout_s\":1,\"created_at_ms\":1,%s}",
         "modules[0]"},
        {"{\"v\":1,\"python\":\"3.11\",\"modules\":[],\"labels\":{\"BAD\":\"x\"},"
         "\"idle_timeout_s\":1,\"created_at_ms\":1,%s}",
         "labels[0]"},
        {"{\"v\":1,\"python\":\"3.11\",\"modules\":[],\"labels\":{},"
         "\"idle_timeout_s\":-1,\"created_at_ms\":1,%s}",
         "idle_timeout_s"},
        {"{\"v\":1,\"python\":\"3.11\",\"modules\":[],\"labels\":{},"
         "\"idle_timeout_s\":99999,\"created_at_ms\":1,%s}",
         "idle_timeout_s"},
        {"{\"v\":1,\"python\":\"3.11\",\"modules\":[],\"labels\":{},"
         "\"idle_timeout_s\":1,\"created_at_ms\":1.5,%s}",
         "created_at_ms"},
        {"{\"v\":1,\"python\":\"3.11\",\"modules\":[],\"labels\":{},"
         "\"idle_timeout_s\":1,\"created_at_ms\":1,\"limits\":{\"wall_time_ms\":1e300}}",
         "limits"},
        {"{\"v\":1,\"python\":\"3.11\",\"modules\":[],\"labels\":{},"
         "\"idle_timeout_s\":1,\"created_at_ms\":1,\"limits\":{\"wall_time_ms\":1,"
         "\"cpu_time_ms\":1,\"memory_bytes\":99999999999,\"max_processes\":1,"
         "\"max_output_bytes\":1,\"max_file_bytes\":1}}",
         "limits.memory_bytes"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(buf, sizeof(buf), cases[i].body, lim);
        sandbox_spec s;
        se_err err;
        se_err_clear(&err);
        int rc = sandbox_spec_from_json(&s, &cfg, buf, &err);
        if (rc != -SE_INVALID || !strstr(err.msg, cases[i].needle))
            fail_msg("case %zu: rc %d '%s'", i, rc, err.msg);
    }
    /* The good one. */
    snprintf(buf, sizeof(buf),
             "{\"v\":1,\"python\":\"3.11\",\"modules\":[],\"labels\":{},"
             "\"idle_timeout_s\":1,\"created_at_ms\":1,%s}",
             lim);
    sandbox_spec s;
    se_err err;
    assert_int_equal(sandbox_spec_from_json(&s, &cfg, buf, &err), 0);
    sandbox_spec_clear(&s);
    assert_int_equal(sandbox_spec_from_json(&s, &cfg, NULL, &err), -SE_INVALID);
}

static const sandbox_limits LIM = {1000, 1000, 1 << 20, 4, 16, 1 << 20};

static void
test_run_frame(void **state)
{
    (void)state;
    const char *keys[] = {"A"}, *vals[] = {"b"};
    char *args[] = {"x", "y"};
    Safeeval__V1__File f = SAFEEVAL__V1__FILE__INIT;
    f.path = "d/f.txt";
    f.content.data = (uint8_t *)"hi";
    f.content.len = 2;
    Safeeval__V1__File *fs[] = {&f};
    sandbox_run_input in = {
        .script = (const uint8_t *)"print(1)",
        .script_len = 8,
        .filename = "main.py",
        .stdin_data = (const uint8_t *)"in",
        .stdin_len = 2,
        .args = args,
        .n_args = 2,
        .env_keys = keys,
        .env_values = vals,
        .n_env = 1,
        .files = fs,
        .n_files = 1,
    };
    uint8_t *fr;
    size_t n;
    se_err err;
    assert_int_equal(sandbox_run_frame(&fr, &n, &in, &LIM, &err), 0);
    const uint8_t *payload;
    uint32_t plen;
    size_t consumed;
    assert_int_equal(frame_parse(fr, n, FRAME_MAX, &payload, &plen, &consumed), 1);
    assert_int_equal(consumed, n);
    Safeeval__Agent__V1__RunRequest *rr =
        safeeval__agent__v1__run_request__unpack(NULL, plen, payload);
    assert_non_null(rr);
    assert_int_equal(rr->script.len, 8);
    assert_string_equal(rr->filename, "main.py");
    assert_int_equal(rr->n_args, 2);
    assert_int_equal(rr->n_env, 1);
    assert_string_equal(rr->env[0]->key, "A");
    assert_int_equal(rr->n_files, 1);
    assert_string_equal(rr->files[0]->path, "d/f.txt");
    assert_non_null(rr->limits);
    assert_int_equal(rr->limits->wall_time_ms, 1000);
    assert_int_equal(rr->limits->max_output_bytes, 16);
    safeeval__agent__v1__run_request__free_unpacked(rr, NULL);
    free(fr);
}

/* Packs a response into a frame; extra bytes appended after it. */
static uint8_t *
resp_frame(const Safeeval__Agent__V1__RunResponse *r, size_t *n, size_t extra)
{
    size_t pl = safeeval__agent__v1__run_response__get_packed_size(r);
    uint8_t *b = calloc(1, FRAME_HDR + pl + extra);
    frame_put_header(b, (uint32_t)pl);
    safeeval__agent__v1__run_response__pack(r, b + FRAME_HDR);
    *n = FRAME_HDR + pl + extra;
    return b;
}

static void
test_run_parse(void **state)
{
    (void)state;
    Safeeval__Agent__V1__RunResponse resp = SAFEEVAL__AGENT__V1__RUN_RESPONSE__INIT;
    Safeeval__V1__ExecResult r = SAFEEVAL__V1__EXEC_RESULT__INIT;
    r.reason = SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_EXITED;
    r.stdout.data = (uint8_t *)"Hello World\n";
    r.stdout.len = 12;
    r.stdout_bytes = 12;
    resp.result = &r;
    size_t n;
    uint8_t *b = resp_frame(&resp, &n, 0);
    Safeeval__V1__ExecResult *out;
    se_err err;
    assert_int_equal(sandbox_run_parse(&out, b, n, &LIM, &err), 0);
    assert_int_equal(out->stdout.len, 12);
    assert_memory_equal(out->stdout.data, "Hello World\n", 12);
    assert_false(out->stdout_truncated);
    protobuf_c_message_free_unpacked(&out->base, NULL);

    /* Every prefix is incomplete, never a crash. */
    for (size_t i = 0; i < n; i++) {
        se_err_clear(&err);
        assert_int_equal(sandbox_run_parse(&out, b, i, &LIM, &err), -SE_INTERNAL);
    }
    free(b);
    /* Trailing garbage. */
    b = resp_frame(&resp, &n, 3);
    assert_int_equal(sandbox_run_parse(&out, b, n, &LIM, &err), -SE_INTERNAL);
    free(b);
    /* Over the cap. */
    uint8_t huge[8] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
    assert_int_equal(sandbox_run_parse(&out, huge, 8, &LIM, &err), -SE_INTERNAL);
    /* Garbage payload. */
    uint8_t junk[9] = {0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(sandbox_run_parse(&out, junk, 9, &LIM, &err), -SE_INTERNAL);
    /* Reason out of range. */
    r.reason = 99;
    b = resp_frame(&resp, &n, 0);
    assert_int_equal(sandbox_run_parse(&out, b, n, &LIM, &err), -SE_INTERNAL);
    assert_non_null(strstr(err.msg, "reason"));
    free(b);
    r.reason = SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_UNSPECIFIED;
    b = resp_frame(&resp, &n, 0);
    assert_int_equal(sandbox_run_parse(&out, b, n, &LIM, &err), -SE_INTERNAL);
    free(b);
    r.reason = SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_EXITED;
    /* stdout longer than the limit (16). */
    r.stdout.data = (uint8_t *)"0123456789abcdefX";
    r.stdout.len = 17;
    r.stdout_bytes = 17;
    b = resp_frame(&resp, &n, 0);
    assert_int_equal(sandbox_run_parse(&out, b, n, &LIM, &err), -SE_INTERNAL);
    free(b);
    /* Totals below what was kept. */
    r.stdout.len = 10;
    r.stdout_bytes = 3;
    b = resp_frame(&resp, &n, 0);
    assert_int_equal(sandbox_run_parse(&out, b, n, &LIM, &err), -SE_INTERNAL);
    free(b);
    /* Truncation computed from totals. */
    r.stdout_bytes = 1000;
    r.stdout_truncated = 0;
    b = resp_frame(&resp, &n, 0);
    assert_int_equal(sandbox_run_parse(&out, b, n, &LIM, &err), 0);
    assert_true(out->stdout_truncated);
    protobuf_c_message_free_unpacked(&out->base, NULL);
    free(b);
    /* No result. */
    resp.result = NULL;
    b = resp_frame(&resp, &n, 0);
    assert_int_equal(sandbox_run_parse(&out, b, n, &LIM, &err), -SE_INTERNAL);
    free(b);
    /* Agent error: passed on, sanitised. */
    resp.error = "bwrap failed\n\x1b[31m";
    b = resp_frame(&resp, &n, 0);
    assert_int_equal(sandbox_run_parse(&out, b, n, &LIM, &err), -SE_INTERNAL);
    assert_non_null(strstr(err.msg, "agent: bwrap failed"));
    assert_null(strchr(err.msg, '\n'));
    assert_null(strchr(err.msg, '\x1b'));
    free(b);
}

static sandbox_entry *
new_entry(const char *id, int64_t created)
{
    sandbox_entry *e = calloc(1, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%s", id);
    e->spec.created_at_ms = created;
    e->spec.idle_timeout_s = 10;
    e->last_used_ms = created;
    return e;
}

static void
test_registry(void **state)
{
    (void)state;
    sandbox_registry r;
    sandbox_registry_init(&r);
    se_err err;
    assert_int_equal(sandbox_registry_reserve(&r, 2, &err), 0);
    assert_int_equal(sandbox_registry_reserve(&r, 2, &err), 0);
    /* In-flight creates count. */
    assert_int_equal(sandbox_registry_reserve(&r, 2, &err), -SE_EXHAUSTED);
    sandbox_registry_unreserve(&r);
    sandbox_entry *a = new_entry("aaa", 1000), *b = new_entry("bbb", 2000);
    assert_int_equal(sandbox_registry_add(&r, a, true, &err), 0);
    assert_int_equal(sandbox_registry_add(&r, b, false, &err), 0);
    assert_int_equal(sandbox_registry_reserve(&r, 2, &err), -SE_EXHAUSTED);
    sandbox_entry *dup = new_entry("aaa", 1);
    assert_int_equal(sandbox_registry_add(&r, dup, false, &err), -SE_CONFLICT);
    sandbox_entry_free(dup);

    /* A run holds a reference across a destroy. */
    sandbox_entry *f = sandbox_registry_find(&r, "aaa");
    assert_ptr_equal(f, a);
    assert_int_equal(sandbox_entry_run_begin(&r, f, 1, &err), 0);
    assert_int_equal(sandbox_entry_run_begin(&r, f, 1, &err), -SE_EXHAUSTED);
    char **ids;
    size_t n;
    assert_int_equal(sandbox_registry_idle(&r, 1000000, &ids, &n), 0);
    assert_int_equal(n, 1); /* only bbb: aaa is running */
    assert_string_equal(ids[0], "bbb");
    free(ids[0]);
    free(ids);
    assert_null(sandbox_registry_remove_idle(&r, "aaa", 1000000));
    sandbox_entry *rm = sandbox_registry_remove(&r, "aaa");
    assert_ptr_equal(rm, a);
    assert_null(sandbox_registry_find(&r, "aaa"));
    sandbox_entry_unref(&r, rm); /* the registry's reference */
    assert_true(f->dead);
    sandbox_entry_run_end(&r, f);
    assert_int_equal(sandbox_entry_run_begin(&r, f, 1, &err), -SE_NOT_FOUND);
    sandbox_entry_unref(&r, f); /* the last: frees (ASan/valgrind check) */

    sandbox_entry **snap;
    assert_int_equal(sandbox_registry_snapshot(&r, &snap, &n, &err), 0);
    assert_int_equal(n, 1);
    Safeeval__V1__Sandbox *msg = sandbox_entry_to_msg(&r, snap[0]);
    assert_string_equal(msg->id, "bbb");
    assert_int_equal(msg->created_at_ms, 2000);
    protobuf_c_message_free_unpacked(&msg->base, NULL);
    sandbox_entry_unref(&r, snap[0]);
    free(snap);
    sandbox_entry *idle = sandbox_registry_remove_idle(&r, "bbb", 1000000);
    assert_ptr_equal(idle, b);
    sandbox_entry_unref(&r, idle);
    sandbox_registry_destroy(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_container_body), cmocka_unit_test(test_spec_hostile),
        cmocka_unit_test(test_run_frame),      cmocka_unit_test(test_run_parse),
        cmocka_unit_test(test_registry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
