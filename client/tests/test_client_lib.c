/* libsafeeval without a service: argument checks, status mapping,
 * deadlines, cancellation, old-sized options, many threads on one client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "safeeval/safeeval.h"

static char silent_path[108];
static char silent_target[128];
static int silent_fd = -1;

/* A unix socket that listens but never answers: calls to it can only end
 * by deadline or cancellation. */
static int
setup(void **state)
{
    (void)state;
    snprintf(silent_path, sizeof(silent_path), "/tmp/safeeval-test-%d.sock", (int)getpid());
    unlink(silent_path);
    silent_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, silent_path);
    if (silent_fd < 0 || bind(silent_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(silent_fd, 64) != 0)
        return -1;
    snprintf(silent_target, sizeof(silent_target), "unix:%s", silent_path);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    close(silent_fd);
    unlink(silent_path);
    return 0;
}

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static safeeval_client *
client_for(const char *target, uint32_t timeout_ms)
{
    safeeval_client_opts o = SAFEEVAL_CLIENT_OPTS_INIT;
    o.target = target;
    o.default_timeout_ms = timeout_ms;
    safeeval_client *c = NULL;
    safeeval_error err;
    assert_int_equal(safeeval_client_new(&c, &o, &err), 0);
    return c;
}

static void
test_names(void **state)
{
    (void)state;
    assert_string_equal(safeeval_status_name(5), "NOT_FOUND");
    assert_string_equal(safeeval_status_name(16), "UNAUTHENTICATED");
    assert_string_equal(safeeval_status_name(17), "UNKNOWN_STATUS");
    assert_string_equal(safeeval_status_name(-1), "UNKNOWN_STATUS");
    assert_string_equal(safeeval_exit_reason_name(SAFEEVAL_EXIT_WALL_TIMEOUT), "WALL_TIMEOUT");
    assert_string_equal(safeeval_exit_reason_name(99), "UNSPECIFIED");
    assert_string_equal(safeeval_version(), SAFEEVAL_VERSION_STRING);
}

static void
test_bad_options(void **state)
{
    (void)state;
    safeeval_client_opts o = SAFEEVAL_CLIENT_OPTS_INIT;
    safeeval_client *c = (safeeval_client *)1;
    safeeval_error err;
    o.cert_pem = "x";
    assert_int_equal(safeeval_client_new(&c, &o, &err), -1);
    assert_null(c);
    assert_int_equal(err.code, SAFEEVAL_STATUS_INVALID_ARGUMENT);
    /* NULL opts = defaults; NULL err is allowed everywhere. */
    assert_int_equal(safeeval_client_new(&c, NULL, NULL), 0);
    safeeval_client_free(c);
    safeeval_client_free(NULL);
}

static void
test_argument_checks(void **state)
{
    (void)state;
    safeeval_client *c = client_for(silent_target, 5000);
    safeeval_error err;
    safeeval_result *r = (safeeval_result *)1;
    double t0 = now_s();
    assert_int_equal(safeeval_sandbox_eval(&r, c, NULL, "print(1)", NULL, &err), -1);
    assert_null(r);
    assert_int_equal(err.code, SAFEEVAL_STATUS_INVALID_ARGUMENT);
    assert_int_equal(safeeval_sandbox_eval(&r, c, "sb", "", NULL, &err), -1);
    assert_int_equal(err.code, SAFEEVAL_STATUS_INVALID_ARGUMENT);
    assert_int_equal(safeeval_sandbox_execute_buffer(&r, c, "sb", "a/b.py", "x", 1, NULL, &err),
                     -1);
    assert_int_equal(err.code, SAFEEVAL_STATUS_INVALID_ARGUMENT);
    assert_int_equal(safeeval_sandbox_execute_buffer(&r, c, "sb", "b.py", "", 0, NULL, &err), -1);
    assert_int_equal(safeeval_sandbox_execute_file(&r, c, "sb", "/nonexistent/job.py", NULL, &err),
                     -1);
    assert_int_equal(err.code, SAFEEVAL_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(err.message, "/nonexistent/job.py"));
    safeeval_eval_opts eo = SAFEEVAL_EVAL_OPTS_INIT;
    safeeval_file f = {NULL, "x", 1};
    eo.files = &f;
    eo.n_files = 1;
    assert_int_equal(safeeval_sandbox_eval(&r, c, "sb", "print(1)", &eo, &err), -1);
    assert_int_equal(err.code, SAFEEVAL_STATUS_INVALID_ARGUMENT);
    assert_int_equal(safeeval_sandbox_destroy(c, "", NULL, &err), -1);
    safeeval_sandbox *sb = (safeeval_sandbox *)1;
    assert_int_equal(safeeval_sandbox_get(&sb, c, NULL, NULL, &err), -1);
    assert_null(sb);
    /* None of these went to the (silent) service. */
    assert_true(now_s() - t0 < 1.0);
    safeeval_client_free(c);
}

static void
test_unavailable(void **state)
{
    (void)state;
    safeeval_client *c = client_for("unix:/nonexistent/safeeval.sock", 5000);
    safeeval_error err;
    safeeval_sandbox_list *l = NULL;
    assert_int_equal(safeeval_sandbox_list_all(&l, c, NULL, &err), -1);
    assert_null(l);
    assert_int_equal(err.code, SAFEEVAL_STATUS_UNAVAILABLE);
    assert_true(strlen(err.message) > 0);
    assert_true(strlen(err.message) < SAFEEVAL_ERROR_MESSAGE_MAX);
    safeeval_client_free(c);
}

static void
test_deadline(void **state)
{
    (void)state;
    safeeval_client *c = client_for(silent_target, 60000);
    safeeval_error err;
    safeeval_call_opts o = SAFEEVAL_CALL_OPTS_INIT;
    o.timeout_ms = 300;
    safeeval_sandbox *sb;
    double t0 = now_s();
    assert_int_equal(safeeval_sandbox_get(&sb, c, "sb", &o, &err), -1);
    double dt = now_s() - t0;
    assert_int_equal(err.code, SAFEEVAL_STATUS_DEADLINE_EXCEEDED);
    assert_true(dt >= 0.25 && dt < 3.0);
    safeeval_client_free(c);
}

/* A caller built against an older, smaller options struct: fields past its
 * struct_size are not read, so its garbage timeout is ignored and the
 * client's default (300 ms) applies. */
static void
test_old_struct_size(void **state)
{
    (void)state;
    safeeval_client *c = client_for(silent_target, 300);
    safeeval_error err;
    safeeval_call_opts o = SAFEEVAL_CALL_OPTS_INIT;
    o.struct_size = offsetof(safeeval_call_opts, timeout_ms);
    o.timeout_ms = 100000;
    o.cancel = (const volatile int *)0x1; /* never read */
    safeeval_sandbox *sb;
    double t0 = now_s();
    assert_int_equal(safeeval_sandbox_get(&sb, c, "sb", &o, &err), -1);
    assert_int_equal(err.code, SAFEEVAL_STATUS_DEADLINE_EXCEEDED);
    assert_true(now_s() - t0 < 3.0);
    safeeval_client_free(c);
}

static volatile int cancel_flag;

static void *
set_cancel(void *arg)
{
    (void)arg;
    usleep(200 * 1000);
    cancel_flag = 1;
    return NULL;
}

static void
test_cancel(void **state)
{
    (void)state;
    safeeval_client *c = client_for(silent_target, 0); /* no deadline at all */
    safeeval_error err;
    safeeval_eval_opts o = SAFEEVAL_EVAL_OPTS_INIT;
    o.cancel = &cancel_flag;
    safeeval_result *r;
    pthread_t t;
    cancel_flag = 0;
    pthread_create(&t, NULL, set_cancel, NULL);
    double t0 = now_s();
    assert_int_equal(safeeval_sandbox_eval(&r, c, "sb", "print(1)", &o, &err), -1);
    double dt = now_s() - t0;
    pthread_join(t, NULL);
    assert_int_equal(err.code, SAFEEVAL_STATUS_CANCELLED);
    assert_true(dt >= 0.15 && dt < 2.0);
    safeeval_client_free(c);
}

typedef struct worker {
    safeeval_client *c;
    int ok;
} worker;

static void *
worker_main(void *arg)
{
    worker *w = arg;
    safeeval_call_opts o = SAFEEVAL_CALL_OPTS_INIT;
    o.timeout_ms = 100;
    for (int i = 0; i < 5; i++) {
        safeeval_error err;
        safeeval_sandbox *sb = NULL;
        if (safeeval_sandbox_get(&sb, w->c, "sb", &o, &err) == -1 &&
            err.code == SAFEEVAL_STATUS_DEADLINE_EXCEEDED && sb == NULL)
            w->ok++;
    }
    return NULL;
}

static void
test_threads(void **state)
{
    (void)state;
    safeeval_client *c = client_for(silent_target, 5000);
    pthread_t t[8];
    worker w[8];
    for (int i = 0; i < 8; i++) {
        w[i].c = c;
        w[i].ok = 0;
        pthread_create(&t[i], NULL, worker_main, &w[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].ok, 5);
    }
    safeeval_client_free(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),           cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_argument_checks), cmocka_unit_test(test_unavailable),
        cmocka_unit_test(test_deadline),        cmocka_unit_test(test_old_struct_size),
        cmocka_unit_test(test_cancel),          cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
