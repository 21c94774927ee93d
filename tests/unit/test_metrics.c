/* util/metrics: the text exposition (buckets at their bounds, cumulative
 * counts, label escaping, the method table's bound) and util/log's
 * structured lines (fields as JSON members; quoted text values). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "util/log.h"
#include "util/metrics.h"

static char *
render(void)
{
    se_buf b;
    se_buf_init(&b, 1 << 20);
    assert_int_equal(metrics_render(&b, "9.9.9"), 0);
    size_t n = 0;
    return (char *)se_buf_steal(&b, &n);
}

/* The value of the sample line starting with `head` ("name{labels} "), or -1. */
static double
sample(const char *text, const char *head)
{
    const char *p = text;
    size_t n = strlen(head);
    while ((p = strstr(p, head)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p += n;
    }
    return -1;
}

static void
test_histogram_buckets(void **state)
{
    (void)state;
    metrics_reset();
    metrics_observe_us(METRICS_RUN_SECONDS, 5000);         /* exactly 0.005: le="0.005" */
    metrics_observe_us(METRICS_RUN_SECONDS, 5001);         /* just above: le="0.01" */
    metrics_observe_us(METRICS_RUN_SECONDS, 7200000000LL); /* above every bound: +Inf only */
    metrics_observe_us(METRICS_RUN_SECONDS, -5);           /* a clock step: counted as 0 */
    char *t = render();
    assert_true(sample(t, "safeeval_run_duration_seconds_bucket{le=\"0.005\"}") == 2);
    assert_true(sample(t, "safeeval_run_duration_seconds_bucket{le=\"0.01\"}") == 3);
    assert_true(sample(t, "safeeval_run_duration_seconds_bucket{le=\"300\"}") == 3);
    assert_true(sample(t, "safeeval_run_duration_seconds_bucket{le=\"+Inf\"}") == 4);
    assert_true(sample(t, "safeeval_run_duration_seconds_count") == 4);
    double sum = sample(t, "safeeval_run_duration_seconds_sum");
    assert_true(sum > 7200.0100 && sum < 7200.0101);
    assert_non_null(strstr(t, "# TYPE safeeval_run_duration_seconds histogram\n"));
    assert_non_null(strstr(t, "safeeval_build_info{version=\"9.9.9\"} 1\n"));
    free(t);
}

static void
test_runs_gauges_builds(void **state)
{
    (void)state;
    metrics_reset();
    metrics_run_done(1);
    metrics_run_done(1);
    metrics_run_done(3);
    metrics_run_done(METRICS_RUN_ERROR);
    metrics_run_done(99); /* not a reason this build knows: an error */
    metrics_gauge_add(METRICS_SANDBOXES, 2);
    metrics_gauge_add(METRICS_SANDBOXES, -1);
    metrics_gauge_add(METRICS_WORKERS, 3);
    metrics_image_build(true, 2000000);
    metrics_image_build(false, 1000);
    metrics_engine_error();
    metrics_set_engine_up(false);
    char *t = render();
    assert_true(sample(t, "safeeval_runs_total{reason=\"exited\"}") == 2);
    assert_true(sample(t, "safeeval_runs_total{reason=\"wall_timeout\"}") == 1);
    assert_true(sample(t, "safeeval_runs_total{reason=\"error\"}") == 2);
    assert_true(sample(t, "safeeval_sandboxes") == 1);
    assert_true(sample(t, "safeeval_workers") == 3);
    assert_true(sample(t, "safeeval_image_builds_total{result=\"ok\"}") == 1);
    assert_true(sample(t, "safeeval_image_builds_total{result=\"error\"}") == 1);
    assert_true(sample(t, "safeeval_image_build_duration_seconds_count") == 2);
    assert_true(sample(t, "safeeval_engine_errors_total") == 1);
    assert_true(sample(t, "safeeval_engine_up") == 0);
    assert_true(sample(t, "process_resident_memory_bytes") > 0);
    free(t);
}

static int hook_calls;

static void
hook(void *ud)
{
    assert_ptr_equal(ud, &hook_calls);
    hook_calls++;
}

static void
test_engine_error_hook(void **state)
{
    (void)state;
    metrics_reset();
    metrics_set_engine_error_hook(hook, &hook_calls);
    metrics_engine_error();
    metrics_engine_error();
    assert_int_equal(hook_calls, 2);
    metrics_set_engine_error_hook(NULL, NULL);
    metrics_engine_error();
    assert_int_equal(hook_calls, 2);
}

static void
test_rpc_table(void **state)
{
    (void)state;
    metrics_reset();
    int a = metrics_rpc_method("safeeval.v1.SandboxService", "Eval");
    int b = metrics_rpc_method("x\"y\\z\n", "M");
    assert_true(a >= 0 && b >= 0 && a != b);
    /* Registering again finds the same id. */
    assert_int_equal(metrics_rpc_method("safeeval.v1.SandboxService", "Eval"), a);
    metrics_rpc_done(a, 0);
    metrics_rpc_done(a, 0);
    metrics_rpc_done(a, 5);
    metrics_rpc_done(a, 77); /* not a status: UNKNOWN */
    metrics_rpc_done(b, 14);
    metrics_rpc_done(-1, 0); /* unregistered: ignored */
    metrics_rpc_done(1000, 0);
    char *t = render();
    assert_true(sample(t, "safeeval_rpc_handled_total{service=\"safeeval.v1.SandboxService\","
                          "method=\"Eval\",code=\"OK\"}") == 2);
    assert_true(sample(t, "safeeval_rpc_handled_total{service=\"safeeval.v1.SandboxService\","
                          "method=\"Eval\",code=\"NOT_FOUND\"}") == 1);
    assert_true(sample(t, "safeeval_rpc_handled_total{service=\"safeeval.v1.SandboxService\","
                          "method=\"Eval\",code=\"UNKNOWN\"}") == 1);
    /* Escaped per the exposition format: \" \\ \n. */
    assert_true(sample(t, "safeeval_rpc_handled_total{service=\"x\\\"y\\\\z\\n\","
                          "method=\"M\",code=\"UNAVAILABLE\"}") == 1);
    /* Codes never seen are not printed. */
    assert_null(strstr(t, "code=\"DATA_LOSS\""));
    free(t);
    /* The table is bounded: registering past it fails, nothing is counted. */
    char name[16];
    int last = 0;
    for (int i = 0; i < 64; i++) {
        snprintf(name, sizeof(name), "m%d", i);
        last = metrics_rpc_method("s", name);
    }
    assert_int_equal(last, -1);
    metrics_reset();
}

/* Captures what log_write_fields writes to stderr. */
static char *
capture(int json, const char *msg, const log_field *f, size_t n)
{
    fflush(stderr);
    int saved = dup(2);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    dup2(fileno(tmp), 2);
    log_set_json(json);
    log_write_fields(LOG_INFO, msg, f, n);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    log_set_json(0);
    long len = ftell(tmp);
    assert_true(len > 0);
    char *out = calloc(1, (size_t)len + 1);
    rewind(tmp);
    assert_int_equal(fread(out, 1, (size_t)len, tmp), (size_t)len);
    fclose(tmp);
    return out;
}

static void
test_log_fields(void **state)
{
    (void)state;
    log_field f[] = {{.key = "method", .str = "/a.B/C"},
                     {.key = "duration_ms", .num = 1.5},
                     {.key = "peer", .str = "say \"hi\"\n"},
                     {.key = "sandbox", .str = ""}};
    char *line = capture(1, "rpc C", f, 4);
    cJSON *o = cJSON_Parse(line);
    assert_non_null(o);
    assert_string_equal(cJSON_GetObjectItem(o, "msg")->valuestring, "rpc C");
    assert_string_equal(cJSON_GetObjectItem(o, "method")->valuestring, "/a.B/C");
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(o, "duration_ms")));
    assert_true(cJSON_GetObjectItem(o, "duration_ms")->valuedouble == 1.5);
    assert_string_equal(cJSON_GetObjectItem(o, "peer")->valuestring, "say \"hi\"\n");
    assert_string_equal(cJSON_GetObjectItem(o, "sandbox")->valuestring, "");
    cJSON_Delete(o);
    free(line);
    /* Text: key=value; a value with a quote or a line break stays on the
     * line, quoted and escaped. */
    line = capture(0, "rpc C", f, 4);
    assert_non_null(strstr(line, " rpc C method=/a.B/C duration_ms=1.500 "
                                 "peer=\"say \\\"hi\\\"\\x0a\" sandbox=\"\"\n"));
    assert_int_equal(strchr(line, '\n') - line, (long)strlen(line) - 1);
    free(line);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_histogram_buckets), cmocka_unit_test(test_runs_gauges_builds),
        cmocka_unit_test(test_engine_error_hook), cmocka_unit_test(test_rpc_table),
        cmocka_unit_test(test_log_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
