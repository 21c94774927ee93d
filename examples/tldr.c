/* The old PythonSafeEval tl;dr, in C with libsafeeval:
 *
 *     sandbox = SafeEval(version="3.11", modules=["numpy"])
 *     sandbox.eval("print('Hello World')")
 *     sandbox.execute_file("numpy_job.py")
 *
 * usage: tldr [TARGET [SCRIPT]]   (TARGET default: $SAFEEVAL_TARGET or the
 * service's default socket; SCRIPT default: numpy_job.py next to this file)
 */
#include <stdio.h>
#include <stdlib.h>

#include <safeeval/safeeval.h>

#ifndef SAFEEVAL_EXAMPLE_SCRIPT
#define SAFEEVAL_EXAMPLE_SCRIPT "numpy_job.py"
#endif

static int
report(const char *what, const safeeval_error *err)
{
    fprintf(stderr, "tldr: %s: %s: %s\n", what, safeeval_status_name(err->code), err->message);
    return 1;
}

static void
show(const safeeval_result *r)
{
    fwrite(r->stdout_data, 1, r->stdout_len, stdout);
    fwrite(r->stderr_data, 1, r->stderr_len, stderr);
    printf("[%s, exit code %d, %.1f ms]\n", safeeval_exit_reason_name(r->reason), r->exit_code,
           (double)r->wall_time_us / 1000.0);
}

int
main(int argc, char **argv)
{
    const char *target = argc > 1 ? argv[1] : getenv("SAFEEVAL_TARGET");
    const char *script = argc > 2 ? argv[2] : SAFEEVAL_EXAMPLE_SCRIPT;
    safeeval_error err;
    int rc = 1;

    safeeval_client_opts co = SAFEEVAL_CLIENT_OPTS_INIT;
    co.target = target;
    safeeval_client *c;
    if (safeeval_client_new(&c, &co, &err) != 0)
        return report("connect", &err);

    /* A Python 3.11 sandbox with numpy (the first one builds the image). */
    const char *modules[] = {"numpy"};
    safeeval_create_opts cr = SAFEEVAL_CREATE_OPTS_INIT;
    cr.python_version = "3.11";
    cr.modules = modules;
    cr.n_modules = 1;
    cr.limits.wall_time_ms = 10000;
    safeeval_sandbox *sb;
    if (safeeval_sandbox_create(&sb, c, &cr, &err) != 0) {
        report("create", &err);
        goto out;
    }
    printf("sandbox %s: Python %s\n", sb->id, sb->python_version);

    safeeval_result *r;
    if (safeeval_sandbox_eval(&r, c, sb->id, "print('Hello World')", NULL, &err) != 0) {
        report("eval", &err);
        goto destroy;
    }
    show(r);
    safeeval_result_free(r);

    const char *args[] = {"4"};
    safeeval_eval_opts eo = SAFEEVAL_EVAL_OPTS_INIT;
    eo.args = args;
    eo.n_args = 1;
    if (safeeval_sandbox_execute_file(&r, c, sb->id, script, &eo, &err) != 0) {
        report("execute_file", &err);
        goto destroy;
    }
    show(r);
    rc = r->reason == SAFEEVAL_EXIT_EXITED && r->exit_code == 0 ? 0 : 1;
    safeeval_result_free(r);

destroy:
    if (safeeval_sandbox_destroy(c, sb->id, NULL, &err) != 0) {
        report("destroy", &err);
        rc = 1;
    }
    safeeval_sandbox_free(sb);
out:
    safeeval_client_free(c);
    return rc;
}
