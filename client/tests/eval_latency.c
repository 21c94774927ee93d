/* Measures libsafeeval's Eval round trip for print(1): N sequential calls
 * on one client, prints p50/p90/max in ms and checks every output.
 * usage: eval_latency TARGET SANDBOX_ID [N]   (not a ctest by itself;
 * tests/integration/test_client_cli.py runs it against the real service) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "safeeval/safeeval.h"

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int
main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s TARGET SANDBOX_ID [N]\n", argv[0]);
        return 2;
    }
    int n = argc > 3 ? atoi(argv[3]) : 50;
    if (n < 1 || n > 100000)
        return 2;
    safeeval_client_opts co = SAFEEVAL_CLIENT_OPTS_INIT;
    co.target = argv[1];
    safeeval_client *c;
    safeeval_error err;
    if (safeeval_client_new(&c, &co, &err) != 0)
        return 3;
    double *ms = calloc((size_t)n, sizeof(double));
    int bad = 0;
    for (int i = 0; i < n && ms; i++) {
        struct timespec t0, t1;
        safeeval_result *r;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int rc = safeeval_sandbox_eval(&r, c, argv[2], "print(1)", NULL, &err);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ms[i] = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        if (rc != 0) {
            fprintf(stderr, "eval: %s: %s\n", safeeval_status_name(err.code), err.message);
            bad++;
            continue;
        }
        if (r->exit_code != 0 || strcmp(r->stdout_data, "1\n") != 0)
            bad++;
        safeeval_result_free(r);
    }
    if (ms) {
        qsort(ms, (size_t)n, sizeof(double), cmp_double);
        printf("eval print(1): n=%d p50=%.1f ms p90=%.1f ms max=%.1f ms failures=%d\n", n,
               ms[n / 2], ms[(n * 9) / 10 < n ? (n * 9) / 10 : n - 1], ms[n - 1], bad);
    }
    free(ms);
    safeeval_client_free(c);
    return bad || !ms ? 1 : 0;
}
