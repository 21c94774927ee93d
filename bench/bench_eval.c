/* safeeval-bench: what a sandbox and a run cost, measured against a running
 * safeevald (see bench/README.md).
 *
 *   1. CreateSandbox with the image cold: create once, destroy, remove the
 *      sandbox image through the Engine API, create again (a full build).
 *   2. CreateSandbox with the image cached (--creates times, then destroyed).
 *   3. Eval of print(1) through the service, --runs times: min/p50/p90/p99/max.
 *   4. The same `python3 -c 'print(1)'` as a bare docker exec into the
 *      sandbox's container (no jail, no agent, no gRPC), --runs times.
 *   5. The ratio of the two: what the service and the jail add to a run.
 *
 * It talks to the service only through libsafeeval, and to the engine
 * through the service's own docker module. Not a test: it checks what it
 * needs to trust its numbers (output "1\n", exit 0) and stops otherwise. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <safeeval/safeeval.h>

#include "agent/agent.h"
#include "docker/docker.h"
#include "image/image.h"
#include "util/clock.h"
#include "util/err.h"

#define BENCH_MAX_MODULES 32
#define BENCH_MAX_RUNS 100000

typedef struct bench_opts {
    const char *target;
    const char *docker_host;
    const char *python_version;
    const char *modules[BENCH_MAX_MODULES];
    size_t n_modules;
    const char *exec_python;
    long runs;
    long creates;
    bool skip_cold;
} bench_opts;

typedef struct bench_stats {
    double min, p50, p90, p99, max, mean;
} bench_stats;

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array of n > 0 values. */
static double
percentile(const double *sorted, size_t n, double p)
{
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted[rank - 1];
}

static bench_stats
stats_of(double *v, size_t n)
{
    bench_stats s = {0};
    double sum = 0;
    qsort(v, n, sizeof(*v), cmp_double);
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    s.min = v[0];
    s.max = v[n - 1];
    s.p50 = percentile(v, n, 50);
    s.p90 = percentile(v, n, 90);
    s.p99 = percentile(v, n, 99);
    s.mean = sum / (double)n;
    return s;
}

static void
print_stats(const char *what, const bench_stats *s, size_t n)
{
    printf("%-34s n=%-5zu min %8.2f  p50 %8.2f  p90 %8.2f  p99 %8.2f  max %8.2f  mean %8.2f ms\n",
           what, n, s->min, s->p50, s->p90, s->p99, s->max, s->mean);
}

static double
ms_since(uint64_t t0_us)
{
    return (double)(clock_mono_us() - t0_us) / 1000.0;
}

static int
sandbox_create_timed(safeeval_client *c, const bench_opts *o, safeeval_sandbox **out,
                     double *out_ms)
{
    safeeval_create_opts co = SAFEEVAL_CREATE_OPTS_INIT;
    safeeval_kv label = {"purpose", "safeeval-bench"};
    safeeval_error err;

    co.python_version = o->python_version;
    co.modules = o->modules;
    co.n_modules = o->n_modules;
    co.labels = &label;
    co.n_labels = 1;
    co.timeout_ms = 1800000;
    uint64_t t0 = clock_mono_us();
    if (safeeval_sandbox_create(out, c, &co, &err) != 0) {
        fprintf(stderr, "safeeval-bench: CreateSandbox: %s: %s\n", safeeval_status_name(err.code),
                err.message);
        return -1;
    }
    *out_ms = ms_since(t0);
    return 0;
}

static int
sandbox_destroy(safeeval_client *c, const char *id)
{
    safeeval_error err;
    if (safeeval_sandbox_destroy(c, id, NULL, &err) != 0) {
        fprintf(stderr, "safeeval-bench: DestroySandbox %s: %s: %s\n", id,
                safeeval_status_name(err.code), err.message);
        return -1;
    }
    return 0;
}

/* Cold: make sure the image exists (create + destroy), remove it through the
 * engine, then time a create that has to build it again. */
static int
bench_create_cold(safeeval_client *c, docker_client *dc, const bench_opts *o,
                  safeeval_sandbox **out, double *out_ms)
{
    safeeval_sandbox *sb = NULL;
    double first_ms = 0;
    se_err err = {0};

    if (sandbox_create_timed(c, o, &sb, &first_ms) != 0)
        return -1;
    printf("%-34s %10.1f ms  (%s, image %s; cold or cached, depending on history)\n",
           "CreateSandbox first", first_ms, sb->python_version, sb->image);
    fflush(stdout);
    char image[256];
    snprintf(image, sizeof(image), "%s", sb->image);
    int rc = sandbox_destroy(c, sb->id);
    safeeval_sandbox_free(sb);
    if (rc != 0)
        return -1;
    if (docker_image_remove(dc, image, true, &err) != 0 && err.code != SE_NOT_FOUND) {
        fprintf(stderr, "safeeval-bench: remove image %s: %s\n", image, err.msg);
        return -1;
    }
    if (sandbox_create_timed(c, o, out, out_ms) != 0)
        return -1;
    if (strcmp((*out)->image, image) != 0)
        fprintf(stderr, "safeeval-bench: note: the rebuilt image is %s, was %s\n", (*out)->image,
                image);
    return 0;
}

static int
bench_create_cached(safeeval_client *c, const bench_opts *o, double *samples)
{
    for (long i = 0; i < o->creates; i++) {
        safeeval_sandbox *sb = NULL;
        if (sandbox_create_timed(c, o, &sb, &samples[i]) != 0)
            return -1;
        int rc = sandbox_destroy(c, sb->id);
        safeeval_sandbox_free(sb);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int
bench_eval(safeeval_client *c, const char *id, long runs, double *samples)
{
    safeeval_error err;
    for (long i = 0; i < runs; i++) {
        safeeval_result *r = NULL;
        uint64_t t0 = clock_mono_us();
        if (safeeval_sandbox_eval(&r, c, id, "print(1)", NULL, &err) != 0) {
            fprintf(stderr, "safeeval-bench: Eval: %s: %s\n", safeeval_status_name(err.code),
                    err.message);
            return -1;
        }
        samples[i] = ms_since(t0);
        bool ok = r->reason == SAFEEVAL_EXIT_EXITED && r->exit_code == 0 && r->stdout_len == 2 &&
                  memcmp(r->stdout_data, "1\n", 2) == 0;
        if (!ok) {
            fprintf(stderr,
                    "safeeval-bench: Eval run %ld: reason %s exit %d stdout %zu bytes: %.*s\n", i,
                    safeeval_exit_reason_name(r->reason), r->exit_code, r->stdout_len,
                    (int)(r->stderr_len > 400 ? 400 : r->stderr_len), r->stderr_data);
            safeeval_result_free(r);
            return -1;
        }
        safeeval_result_free(r);
    }
    return 0;
}

/* The sandbox's container id, found by its label as the service labels it. */
static int
container_find(docker_client *dc, const char *sandbox_id, char *out, size_t out_size)
{
    char filter[256];
    const char *filters[] = {filter, NULL};
    cJSON *list = NULL;
    se_err err = {0};
    int rc = -1;

    snprintf(filter, sizeof(filter), SE_LABEL_SANDBOX "=%s", sandbox_id);
    if (docker_container_list(dc, filters, false, &list, &err) != 0) {
        fprintf(stderr, "safeeval-bench: list containers: %s\n", err.msg);
        return -1;
    }
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) != 1) {
        fprintf(stderr, "safeeval-bench: %d containers carry %s, want 1\n",
                cJSON_IsArray(list) ? cJSON_GetArraySize(list) : -1, filter);
        goto out;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(list, 0), "Id");
    if (!cJSON_IsString(id) || strlen(id->valuestring) >= out_size) {
        fprintf(stderr, "safeeval-bench: a container without a usable Id\n");
        goto out;
    }
    snprintf(out, out_size, "%s", id->valuestring);
    rc = 0;
out:
    cJSON_Delete(list);
    return rc;
}

static int
bench_exec(docker_client *dc, const char *container, const char *python, long runs, double *samples)
{
    const char *argv[] = {python, "-c", "print(1)", NULL};
    docker_exec_opts eo = {.argv = argv, .stdout_cap = 4096, .stderr_cap = 4096};
    se_cancel none = SE_CANCEL_NONE;

    for (long i = 0; i < runs; i++) {
        docker_exec_result r = {0};
        se_err err = {0};
        uint64_t t0 = clock_mono_us();
        if (docker_exec_run(dc, container, &eo, &r, &none, &err) != 0) {
            fprintf(stderr, "safeeval-bench: docker exec: %s\n", err.msg);
            docker_exec_result_free(&r);
            return -1;
        }
        samples[i] = ms_since(t0);
        bool ok = r.exit_code == 0 && r.out_len == 2 && memcmp(r.out, "1\n", 2) == 0;
        if (!ok) {
            fprintf(stderr, "safeeval-bench: docker exec run %ld: exit %d stdout %zu bytes: %.*s\n",
                    i, r.exit_code, r.out_len, (int)(r.err_len > 400 ? 400 : r.err_len),
                    r.errbuf ? (const char *)r.errbuf : "");
            docker_exec_result_free(&r);
            return -1;
        }
        docker_exec_result_free(&r);
    }
    return 0;
}

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: safeeval-bench [options]\n"
            "  --target T          the service: unix:PATH or HOST:PORT (default %s)\n"
            "  --runs N            Eval and docker exec runs (default 200)\n"
            "  --creates N         cached CreateSandbox samples (default 5)\n"
            "  --python V          python_version of the sandboxes (default 3.11)\n"
            "  --module M          a pip requirement; repeatable (default: numpy)\n"
            "  --no-module         no modules at all\n"
            "  --skip-cold         do not remove the image to time a cold create\n"
            "  --docker-host H     the engine (default unix:///var/run/docker.sock)\n"
            "  --exec-python P     interpreter for the bare exec (default %s)\n"
            "The cold case removes the sandbox image of this spec (force): do not run it\n"
            "while other sandboxes of the same spec are in use.\n",
            SAFEEVAL_DEFAULT_TARGET, AGENT_PYTHON);
}

static int
parse_long(const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || !end || *end || end == s || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int
parse_args(int argc, char **argv, bench_opts *o)
{
    static const struct option longs[] = {
        {"target", required_argument, NULL, 't'},
        {"runs", required_argument, NULL, 'n'},
        {"creates", required_argument, NULL, 'c'},
        {"python", required_argument, NULL, 'p'},
        {"module", required_argument, NULL, 'm'},
        {"no-module", no_argument, NULL, 'M'},
        {"skip-cold", no_argument, NULL, 's'},
        {"docker-host", required_argument, NULL, 'd'},
        {"exec-python", required_argument, NULL, 'x'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool modules_given = false;
    int ch;

    while ((ch = getopt_long(argc, argv, "t:n:c:p:m:Msd:x:h", longs, NULL)) != -1) {
        switch (ch) {
        case 't':
            o->target = optarg;
            break;
        case 'n':
            if (parse_long(optarg, 1, BENCH_MAX_RUNS, &o->runs) != 0) {
                fprintf(stderr, "safeeval-bench: --runs wants 1..%d\n", BENCH_MAX_RUNS);
                return -1;
            }
            break;
        case 'c':
            if (parse_long(optarg, 0, 1000, &o->creates) != 0) {
                fprintf(stderr, "safeeval-bench: --creates wants 0..1000\n");
                return -1;
            }
            break;
        case 'p':
            o->python_version = optarg;
            break;
        case 'm':
            if (!modules_given)
                o->n_modules = 0;
            modules_given = true;
            if (o->n_modules >= BENCH_MAX_MODULES) {
                fprintf(stderr, "safeeval-bench: at most %d --module\n", BENCH_MAX_MODULES);
                return -1;
            }
            o->modules[o->n_modules++] = optarg;
            break;
        case 'M':
            modules_given = true;
            o->n_modules = 0;
            break;
        case 's':
            o->skip_cold = true;
            break;
        case 'd':
            o->docker_host = optarg;
            break;
        case 'x':
            o->exec_python = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return -1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    bench_opts o = {
        .target = SAFEEVAL_DEFAULT_TARGET,
        .docker_host = "unix:///var/run/docker.sock",
        .python_version = "3.11",
        .modules = {"numpy"},
        .n_modules = 1,
        .exec_python = AGENT_PYTHON, /* the interpreter a run gets */
        .runs = 200,
        .creates = 5,
    };
    safeeval_client *c = NULL;
    docker_client *dc = NULL;
    safeeval_sandbox *sb = NULL;
    double *samples = NULL;
    double cold_ms = 0;
    int rc = 1;

    if (parse_args(argc, argv, &o) != 0)
        return 2;

    safeeval_client_opts copts = SAFEEVAL_CLIENT_OPTS_INIT;
    safeeval_error cerr;
    copts.target = o.target;
    if (safeeval_client_new(&c, &copts, &cerr) != 0) {
        fprintf(stderr, "safeeval-bench: client: %s\n", cerr.message);
        return 1;
    }
    docker_opts dopts = {.host = o.docker_host, .timeout_ms = 30000};
    se_err derr = {0};
    if (docker_client_new(&dc, &dopts, &derr) != 0) {
        fprintf(stderr, "safeeval-bench: docker engine %s: %s\n", o.docker_host, derr.msg);
        goto out;
    }
    size_t n = (size_t)(o.runs > o.creates ? o.runs : o.creates);
    samples = calloc(n ? n : 1, sizeof(*samples));
    if (!samples) {
        fprintf(stderr, "safeeval-bench: out of memory\n");
        goto out;
    }

    printf("safeeval-bench: target %s, python %s, modules:", o.target, o.python_version);
    for (size_t i = 0; i < o.n_modules; i++)
        printf(" %s", o.modules[i]);
    printf("%s, runs %ld\n", o.n_modules ? "" : " none", o.runs);
    fflush(stdout);

    /* 1. cold */
    if (!o.skip_cold) {
        if (bench_create_cold(c, dc, &o, &sb, &cold_ms) != 0)
            goto out;
        printf("%-34s %10.1f ms  (image %s rebuilt)\n", "CreateSandbox cold (image removed)",
               cold_ms, sb->image);
        fflush(stdout);
        if (sandbox_destroy(c, sb->id) != 0)
            goto out;
        safeeval_sandbox_free(sb);
        sb = NULL;
    }

    /* 2. cached */
    if (o.creates > 0) {
        if (bench_create_cached(c, &o, samples) != 0)
            goto out;
        bench_stats s = stats_of(samples, (size_t)o.creates);
        print_stats("CreateSandbox cached", &s, (size_t)o.creates);
        fflush(stdout);
    }

    /* 3. Eval through the service */
    double create_ms = 0;
    if (sandbox_create_timed(c, &o, &sb, &create_ms) != 0)
        goto out;
    /* One warm-up run each, not counted: the first run pays page-cache misses. */
    if (bench_eval(c, sb->id, 1, samples) != 0)
        goto out;
    if (bench_eval(c, sb->id, o.runs, samples) != 0)
        goto out;
    bench_stats ev = stats_of(samples, (size_t)o.runs);
    print_stats("Eval print(1) via safeevald", &ev, (size_t)o.runs);
    fflush(stdout);

    /* 4. bare docker exec into the same container */
    char container[128];
    if (container_find(dc, sb->id, container, sizeof(container)) != 0)
        goto out;
    if (bench_exec(dc, container, o.exec_python, 1, samples) != 0)
        goto out;
    if (bench_exec(dc, container, o.exec_python, o.runs, samples) != 0)
        goto out;
    bench_stats ex = stats_of(samples, (size_t)o.runs);
    print_stats("bare docker exec python3 -c", &ex, (size_t)o.runs);

    /* 5. ratio */
    printf("%-34s p50 %.2fx  p99 %.2fx  (+%.2f ms at p50)\n", "ratio Eval / docker exec",
           ev.p50 / ex.p50, ev.p99 / ex.p99, ev.p50 - ex.p50);
    rc = 0;
out:
    if (sb) {
        if (sandbox_destroy(c, sb->id) != 0)
            rc = 1;
        safeeval_sandbox_free(sb);
    }
    free(samples);
    docker_client_free(dc);
    safeeval_client_free(c);
    return rc;
}
