/* Exercises libsafeeval's streamed runs against a real service and prints
 * one JSON line of what it saw (tests/integration/test_client_stream.py
 * runs it; not a ctest by itself).
 *
 *   stream_probe TARGET SANDBOX_ID latency N
 *       N streamed evals of print(1): the time from the call to the first
 *       chunk, p50 and max, in ms
 *   stream_probe TARGET SANDBOX_ID ticker
 *       a run printing for 3 s: chunks, bytes, first chunk and end (ms
 *       after the call), the result's fields
 *   stream_probe TARGET SANDBOX_ID stop K
 *       a run printing forever; the callback stops it after K chunks: the
 *       call's status and how long it took */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "safeeval/safeeval.h"

static double
now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

typedef struct seen {
    double t0, first;
    long chunks, out_bytes, err_bytes;
    long stop_after;
    int order_ok; /* stdout lines arrive as "out NN" in order */
    long next_line;
    char line[64];
    size_t line_len;
} seen;

static int
on_output(int stream, const void *data, size_t len, void *ud)
{
    seen *s = ud;
    if (!s->chunks)
        s->first = now_ms() - s->t0;
    s->chunks++;
    if (stream == 1) {
        s->out_bytes += (long)len;
        const char *p = data;
        for (size_t i = 0; i < len; i++) {
            if (p[i] != '\n') {
                if (s->line_len < sizeof(s->line) - 1)
                    s->line[s->line_len++] = p[i];
                continue;
            }
            s->line[s->line_len] = '\0';
            char want[32];
            snprintf(want, sizeof(want), "out %02ld", s->next_line++);
            if (strcmp(s->line, want) != 0)
                s->order_ok = 0;
            s->line_len = 0;
        }
    } else {
        s->err_bytes += (long)len;
    }
    return s->stop_after && s->chunks >= s->stop_after;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int
main(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    safeeval_client_opts co = SAFEEVAL_CLIENT_OPTS_INIT;
    co.target = argv[1];
    safeeval_client *c;
    safeeval_error err;
    if (safeeval_client_new(&c, &co, &err) != 0)
        return 3;
    const char *id = argv[2], *mode = argv[3];
    int rc = 0;
    if (strcmp(mode, "latency") == 0 && argc > 4) {
        int n = atoi(argv[4]);
        if (n < 1 || n > 10000)
            return 2;
        double *ms = calloc((size_t)n, sizeof(double));
        for (int i = 0; i < n && ms; i++) {
            seen s = {.t0 = now_ms(), .order_ok = 1};
            safeeval_eval_opts o = SAFEEVAL_EVAL_OPTS_INIT;
            o.on_output = on_output;
            o.output_ud = &s;
            safeeval_result *r;
            if (safeeval_sandbox_eval(&r, c, id, "print(1)", &o, &err) != 0) {
                fprintf(stderr, "latency run %d failed: %s\n", i, err.message);
                return 1;
            }
            /* Unbuffered print writes "1" and "\n" apart: one chunk or two. */
            if (s.chunks < 1 || s.chunks > 2 || s.out_bytes != 2 || r->stdout_len != 0 ||
                r->stdout_bytes != 2) {
                fprintf(stderr,
                        "latency run %d: %ld chunks, %ld bytes streamed, %zu in the "
                        "result of %llu\n",
                        i, s.chunks, s.out_bytes, r->stdout_len,
                        (unsigned long long)r->stdout_bytes);
                return 1;
            }
            safeeval_result_free(r);
            ms[i] = s.first;
        }
        qsort(ms, (size_t)n, sizeof(double), cmp_double);
        printf("{\"first_chunk_ms_p50\": %.2f, \"first_chunk_ms_max\": %.2f, \"n\": %d}\n",
               ms[n / 2], ms[n - 1], n);
        free(ms);
    } else if (strcmp(mode, "ticker") == 0) {
        static const char code[] = "import sys, time\n"
                                   "for i in range(30):\n"
                                   "    print('out %02d' % i, flush=True)\n"
                                   "    if i % 10 == 0:\n"
                                   "        print('e', file=sys.stderr, flush=True)\n"
                                   "    time.sleep(0.1)\n";
        seen s = {.t0 = now_ms(), .order_ok = 1};
        safeeval_eval_opts o = SAFEEVAL_EVAL_OPTS_INIT;
        o.on_output = on_output;
        o.output_ud = &s;
        safeeval_result *r;
        if (safeeval_sandbox_eval(&r, c, id, code, &o, &err) != 0) {
            printf("{\"status\": \"%s\"}\n", safeeval_status_name(err.code));
            return 1;
        }
        double end = now_ms() - s.t0;
        printf("{\"chunks\": %ld, \"out_bytes\": %ld, \"err_bytes\": %ld, \"lines\": %ld, "
               "\"order_ok\": %d, \"first_ms\": %.1f, \"end_ms\": %.1f, \"reason\": \"%s\", "
               "\"exit_code\": %d, \"stdout_len\": %zu, \"stderr_len\": %zu, "
               "\"stdout_bytes\": %llu, \"stderr_bytes\": %llu, \"wall_time_us\": %llu}\n",
               s.chunks, s.out_bytes, s.err_bytes, s.next_line, s.order_ok, s.first, end,
               safeeval_exit_reason_name(r->reason), r->exit_code, r->stdout_len, r->stderr_len,
               (unsigned long long)r->stdout_bytes, (unsigned long long)r->stderr_bytes,
               (unsigned long long)r->wall_time_us);
        safeeval_result_free(r);
    } else if (strcmp(mode, "stop") == 0 && argc > 4) {
        seen s = {.t0 = now_ms(), .order_ok = 1, .stop_after = atol(argv[4])};
        safeeval_eval_opts o = SAFEEVAL_EVAL_OPTS_INIT;
        o.on_output = on_output;
        o.output_ud = &s;
        safeeval_result *r = NULL;
        int e = safeeval_sandbox_eval(
            &r, c, id,
            "import time\nwhile True:\n    print('t', flush=True)\n    time.sleep(0.02)\n", &o,
            &err);
        printf("{\"rc\": %d, \"status\": \"%s\", \"chunks\": %ld, \"ms\": %.1f}\n", e,
               e ? safeeval_status_name(err.code) : "OK", s.chunks, now_ms() - s.t0);
        safeeval_result_free(r);
    } else {
        rc = 2;
    }
    safeeval_client_free(c);
    return rc;
}
