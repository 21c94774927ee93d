/* safeeval-bench: what a sandbox and a run cost, measured against a running
 * safeevald (see bench/README.md).
 *
 *   1. CreateSandbox with the image cold: create once, destroy, remove the
 *      sandbox image through the Engine API, create again (a full build).
 *   2. CreateSandbox with the image cached (--creates times, then destroyed).
 *   3. Eval of print(1) through the service, --runs times: min/p50/p90/p99/max;
 *      back to back, with a pause before each one (--gap-ms: a client with
 *      think time, the worker idle between runs), and with an environment
 *      variable (each run in a jail made on demand, never a prepared one), in
 *      alternating blocks on the same sandbox.
 *   4. The floor: python3 -c 'print(1)' started --runs times by a process
 *      already inside the worker container (one exec of a small driver that
 *      times each start with its own clock).
 *   5. The same `python3 -c 'print(1)'` as a bare docker exec into the
 *      worker container (no jail, no agent, no gRPC), --runs times.
 *   6. Ratios: Eval / floor and docker exec / Eval.
 *   Around 3: the memory of the idle worker (fresh, and after the runs), read
 *   from its cgroup through the Engine API's stats.
 *   7. Time to add a worker: two sleep(1) Evals at once on a fresh sandbox
 *      (one worker); the second makes a new worker (--worker-trials times).
 *   8. Queue wait: --parallel Evals of sleep(0.2) at once on one sandbox
 *      (at most --max-concurrent-runs workers), --parallel-rounds times.
 *   9. The daemon's RSS before and with --sandboxes live sandboxes, and the
 *      memory of their idle workers.
 *  Issue 8 adds:
 *   2b. CreateSandbox served from a warm pool (the daemon runs with --pool
 *       for the bench's spec): --pool-creates creates, --pool-pause-ms apart
 *       so the pool refills; a hit is a sandbox whose worker carries the
 *       safeeval.pool label.
 *   3b. Eval of `import numpy; print(numpy.__version__)`, --numpy-runs times,
 *       on the fresh jail, and print(1) and numpy again on a zygote sandbox
 *       (runner ZYGOTE, preload numpy), or "unavailable" when the service has
 *       no zygote; a summary with every figure next to the floor and the
 *       docker exec. With --gap-ms, the zygote's numpy Evals once more
 *       with that pause before each (a client that does something between
 *       runs: the zygote prepares the next run's processes after a Done, so
 *       back to back runs wait for part of that).
 *   10. Throughput: 1, 4 and 8 clients, each on its own sandbox, Evals of
 *       print(1) back to back for --tput-seconds; next to the bare jailed run
 *       rate (bubblewrap + python3, no agent, no gRPC) with as many loops in
 *       the same worker containers.
 *
 * It talks to the service only through libsafeeval, and to the engine
 * through the service's own docker module. Not a test: it checks what it
 * needs to trust its numbers (output "1\n", exit 0) and stops otherwise. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <safeeval/safeeval.h>

/* The zygote sandbox's create carries fields libsafeeval has no options for
 * (preload, runner): the bench sends that one request with the library's own
 * unary call. */
#include "../client/lib/internal.h"
#include "safeeval/v1/sandbox.pb-c.h"

#include "agent/agent.h"
#include "docker/docker.h"
/* docker.h has no stats call; the bench reads GET /containers/{id}/stats
 * through the module's own request helper rather than a second HTTP client. */
#include "docker/internal.h"
#include "image/image.h"
#include "util/clock.h"
#include "util/err.h"

#define BENCH_MAX_MODULES 32
#define BENCH_MAX_RUNS 100000
#define BENCH_MAX_PARALLEL 256
#define BENCH_MAX_SANDBOXES 1000
#define BENCH_MAX_WORKERS 64 /* worker containers of one sandbox we look at */
#define BENCH_QUEUE_SINGLES 10
#define BENCH_MIB (1024.0 * 1024.0)

/* The sleeps of sections 7 and 8: long enough that the second run of two
 * gets a new worker rather than the first one's, and that 20 runs queue. */
#define BENCH_ADD_WORKER_CODE "import time; time.sleep(1)"
#define BENCH_NUMPY_CODE "import numpy; print(numpy.__version__)"
#define BENCH_TPUT_MAX 8 /* clients (and sandboxes) of the throughput section */
#define BENCH_TPUT_ROUNDS_MAX 100
#define BENCH_QUEUE_CODE "import time; time.sleep(0.2)"

typedef struct bench_opts {
    const char *target;
    const char *docker_host;
    const char *python_version;
    const char *modules[BENCH_MAX_MODULES];
    size_t n_modules;
    const char *exec_python;
    long runs;
    long creates;
    long worker_trials;
    long parallel;
    long parallel_rounds;
    long sandboxes;
    long daemon_pid;
    bool skip_cold;
    long pool_creates;
    long pool_pause_ms;
    const char *pool_python; /* --pool-spec VERSION[:MODULE,...] */
    const char *pool_modules[BENCH_MAX_MODULES];
    size_t n_pool_modules;
    long numpy_runs;
    long tput_seconds;
    long tput_rounds;
    bool no_zygote;
    long gap_ms;
} bench_opts;

typedef struct bench_stats {
    double min, p50, p90, p99, max, mean;
} bench_stats;

/* A container id as the engine gives it (64 hex digits). */
typedef char bench_cid[80];

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
ms_since(int64_t t0_us)
{
    return (double)(clock_mono_us() - t0_us) / 1000.0;
}

/* The machine is shared: the load next to the numbers says how far to trust
 * them. */
static void
print_loadavg(const char *when)
{
    char line[128] = "";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (!fgets(line, sizeof(line), f))
            line[0] = '\0';
        fclose(f);
    }
    line[strcspn(line, "\n")] = '\0';
    printf("%-34s %s\n", when, line[0] ? line : "(unknown)");
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
    int64_t t0 = clock_mono_us();
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

/* One Eval of code that must end EXITED with status 0 (and, if want_stdout
 * is not NULL, print exactly that). msg gets what went wrong. */
static int
eval_checked_opts(safeeval_client *c, const char *id, const char *code,
                  const safeeval_eval_opts *opts, const char *want_stdout, double *out_ms,
                  char *msg, size_t msg_size)
{
    safeeval_result *r = NULL;
    safeeval_error err;
    int64_t t0 = clock_mono_us();
    if (safeeval_sandbox_eval(&r, c, id, code, opts, &err) != 0) {
        snprintf(msg, msg_size, "Eval: %s: %s", safeeval_status_name(err.code), err.message);
        return -1;
    }
    *out_ms = ms_since(t0);
    bool ok = r->reason == SAFEEVAL_EXIT_EXITED && r->exit_code == 0;
    if (ok && want_stdout)
        ok = r->stdout_len == strlen(want_stdout) &&
             memcmp(r->stdout_data, want_stdout, r->stdout_len) == 0;
    if (!ok)
        snprintf(msg, msg_size, "Eval: reason %s exit %d stdout %zu bytes, stderr: %.*s",
                 safeeval_exit_reason_name(r->reason), r->exit_code, r->stdout_len,
                 (int)(r->stderr_len > 400 ? 400 : r->stderr_len), r->stderr_data);
    safeeval_result_free(r);
    return ok ? 0 : -1;
}

static int
eval_checked(safeeval_client *c, const char *id, const char *code, const char *want_stdout,
             double *out_ms, char *msg, size_t msg_size)
{
    return eval_checked_opts(c, id, code, NULL, want_stdout, out_ms, msg, msg_size);
}

static int
bench_eval(safeeval_client *c, const char *id, long runs, double *samples)
{
    char msg[1024];
    for (long i = 0; i < runs; i++) {
        if (eval_checked(c, id, "print(1)", "1\n", &samples[i], msg, sizeof(msg)) != 0) {
            fprintf(stderr, "safeeval-bench: Eval run %ld: %s\n", i, msg);
            return -1;
        }
    }
    return 0;
}

static void sleep_ms(long ms);

/* --runs Evals of print(1) back to back into b2b; when gap_ms > 0, --runs
 * more into gap, each after a pause of gap_ms (not timed), and --runs more
 * into od with an environment variable set, back to back: a run the agent
 * cannot give a prepared jail, so each gets one made on demand (and none is
 * prepared after it: one untimed run follows that block). In alternating
 * blocks of BENCH_GAP_BLOCK on the same sandbox, so a machine whose load
 * drifts weighs on all three alike. */
#define BENCH_GAP_BLOCK 10
static int
bench_eval_gap(safeeval_client *c, const char *id, long runs, long gap_ms, double *b2b, double *gap,
               double *od)
{
    char msg[1024];
    static const safeeval_kv env = {"BENCH_ON_DEMAND", "1"};
    safeeval_eval_opts eo = SAFEEVAL_EVAL_OPTS_INIT;
    eo.env = &env;
    eo.n_env = 1;
    struct {
        const char *what;
        double *samples;
        long pause_ms;
        const safeeval_eval_opts *opts;
        long done;
    } rows[] = {
        {"back to back", b2b, 0, NULL, 0},
        {"after a gap", gap, gap_ms, NULL, 0},
        {"with env", od, 0, &eo, 0},
    };
    size_t n_rows = gap_ms > 0 ? 3 : 1;
    double ignored;
    for (bool more = true; more;) {
        more = false;
        for (size_t i = 0; i < n_rows; i++) {
            for (long k = 0; k < BENCH_GAP_BLOCK && rows[i].done < runs; k++, rows[i].done++) {
                if (rows[i].pause_ms > 0)
                    sleep_ms(rows[i].pause_ms);
                if (eval_checked_opts(c, id, "print(1)", rows[i].opts, "1\n",
                                      &rows[i].samples[rows[i].done], msg, sizeof(msg)) != 0) {
                    fprintf(stderr, "safeeval-bench: Eval run %ld %s: %s\n", rows[i].done,
                            rows[i].what, msg);
                    return -1;
                }
            }
            more = more || rows[i].done < runs;
        }
        /* After the on-demand block no jail is prepared: one untimed run. */
        if (n_rows > 1 && eval_checked(c, id, "print(1)", "1\n", &ignored, msg, sizeof(msg)) != 0) {
            fprintf(stderr, "safeeval-bench: Eval: %s\n", msg);
            return -1;
        }
    }
    return 0;
}

/* The sandbox's running worker containers, found by their label as the
 * service labels them: up to cap ids in ids, their number in *n. */
static int
workers_list(docker_client *dc, const char *sandbox_id, bench_cid *ids, size_t cap, size_t *n)
{
    char filter[256];
    const char *filters[] = {filter, NULL};
    cJSON *list = NULL;
    se_err err = {0};
    int rc = -1;

    *n = 0;
    snprintf(filter, sizeof(filter), SE_LABEL_SANDBOX "=%s", sandbox_id);
    if (docker_container_list(dc, filters, false, &list, &err) != 0) {
        fprintf(stderr, "safeeval-bench: list containers: %s\n", err.msg);
        return -1;
    }
    if (!cJSON_IsArray(list)) {
        fprintf(stderr, "safeeval-bench: the container list is not an array\n");
        goto out;
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, list)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(item, "Id");
        if (!cJSON_IsString(id) || strlen(id->valuestring) >= sizeof(bench_cid)) {
            fprintf(stderr, "safeeval-bench: a container without a usable Id\n");
            goto out;
        }
        if (*n < cap)
            snprintf(ids[*n], sizeof(bench_cid), "%s", id->valuestring);
        (*n)++;
    }
    rc = 0;
out:
    cJSON_Delete(list);
    return rc;
}

/* One worker container of the sandbox (the first listed) for the execs. */
static int
container_find(docker_client *dc, const char *sandbox_id, char *out, size_t out_size)
{
    bench_cid ids[BENCH_MAX_WORKERS];
    size_t n = 0;
    if (workers_list(dc, sandbox_id, ids, BENCH_MAX_WORKERS, &n) != 0)
        return -1;
    if (n == 0) {
        fprintf(stderr, "safeeval-bench: no running container carries " SE_LABEL_SANDBOX "=%s\n",
                sandbox_id);
        return -1;
    }
    snprintf(out, out_size, "%s", ids[0]);
    return 0;
}

/* ---- memory of a worker, from its cgroup as the engine reports it ---- */

typedef struct mem_stats {
    double usage;   /* memory_stats.usage: everything charged to the cgroup */
    double anon;    /* v1 total_rss / v2 anon: the processes' own pages */
    double file;    /* v1 total_cache / v2 file: page cache charged here */
    double shmem;   /* tmpfs, /dev/shm, SysV segments (part of file) */
    double working; /* usage - inactive_file, the docker CLI's "MEM USAGE" */
} mem_stats;

/* The first of the keys present in stats (v1 names its hierarchical totals
 * total_*, v2 has only the plain names); -1 if none. */
static double
stat_first(const cJSON *stats, const char *const *keys)
{
    for (; *keys; keys++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(stats, *keys);
        if (cJSON_IsNumber(v) && v->valuedouble >= 0)
            return v->valuedouble;
    }
    return -1;
}

static int
worker_memory(docker_client *dc, const char *cid, mem_stats *out)
{
    static const char *const k_anon[] = {"total_rss", "rss", "anon", NULL};
    static const char *const k_file[] = {"total_cache", "cache", "file", NULL};
    static const char *const k_shmem[] = {"total_shmem", "shmem", NULL};
    static const char *const k_inactive[] = {"total_inactive_file", "inactive_file", NULL};
    char *path = NULL;
    cJSON *json = NULL;
    se_err err = {0};
    int rc = -1;

    if (docker_path(&path, "/containers/", cid, "/stats", &err) < 0) {
        fprintf(stderr, "safeeval-bench: stats of %.12s: %s\n", cid, err.msg);
        return -1;
    }
    /* one-shot: no second sample for CPU deltas (API 1.41+; older engines
     * ignore it and take about a second longer). */
    docker_req req = {.method = "GET", .path = path, .query = "stream=false&one-shot=true"};
    if (docker_json_call(dc, &req, &json, &err, "container stats") < 0) {
        fprintf(stderr, "safeeval-bench: stats of %.12s: %s\n", cid, err.msg);
        goto out;
    }
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(json, "memory_stats");
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(ms, "usage");
    const cJSON *stats = cJSON_GetObjectItemCaseSensitive(ms, "stats");
    if (!cJSON_IsNumber(usage) || !cJSON_IsObject(stats)) {
        fprintf(stderr,
                "safeeval-bench: stats of %.12s: no memory_stats.usage/stats (is it "
                "running?)\n",
                cid);
        goto out;
    }
    out->usage = usage->valuedouble;
    out->anon = stat_first(stats, k_anon);
    out->file = stat_first(stats, k_file);
    out->shmem = stat_first(stats, k_shmem);
    double inactive = stat_first(stats, k_inactive);
    out->working = inactive >= 0 && inactive <= out->usage ? out->usage - inactive : out->usage;
    rc = 0;
out:
    cJSON_Delete(json);
    free(path);
    return rc;
}

/* "  12.34" MiB, or "    n/a" for a figure the engine did not report (v1
 * stats carry no shmem: it is inside file/cache there). */
static const char *
mib_str(char *buf, size_t size, double bytes)
{
    if (bytes < 0)
        snprintf(buf, size, "%7s", "n/a");
    else
        snprintf(buf, size, "%7.2f", bytes / BENCH_MIB);
    return buf;
}

static void
print_memory(const char *what, const mem_stats *m)
{
    char u[32], a[32], f[32], s[32], w[32];
    printf("%-34s usage %s  anon %s  file %s  shmem %s  usage-inactive_file %s MiB\n", what,
           mib_str(u, sizeof(u), m->usage), mib_str(a, sizeof(a), m->anon),
           mib_str(f, sizeof(f), m->file), mib_str(s, sizeof(s), m->shmem),
           mib_str(w, sizeof(w), m->working));
}

/* Every running worker of the sandbox, one line each. */
static int
bench_worker_memory(docker_client *dc, const char *sandbox_id, const char *when)
{
    bench_cid ids[BENCH_MAX_WORKERS];
    size_t n = 0;
    if (workers_list(dc, sandbox_id, ids, BENCH_MAX_WORKERS, &n) != 0)
        return -1;
    if (n == 0)
        printf("%-34s no running worker\n", when);
    for (size_t i = 0; i < n && i < BENCH_MAX_WORKERS; i++) {
        mem_stats m = {0};
        char what[96];
        if (worker_memory(dc, ids[i], &m) != 0)
            return -1;
        snprintf(what, sizeof(what), "%s%s", when, n > 1 ? " (one of several)" : "");
        print_memory(what, &m);
    }
    fflush(stdout);
    return 0;
}

/* ---- execs into the worker ---- */

static int
bench_exec(docker_client *dc, const char *container, const char *python, long runs, double *samples)
{
    const char *argv[] = {python, "-c", "print(1)", NULL};
    docker_exec_opts eo = {.argv = argv, .stdout_cap = 4096, .stderr_cap = 4096};
    se_cancel none = SE_CANCEL_NONE;

    for (long i = 0; i < runs; i++) {
        docker_exec_result r = {0};
        se_err err = {0};
        int64_t t0 = clock_mono_us();
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

/* The floor's driver, run once inside the worker: starts argv[1] -c
 * 'print(1)' argv[2] + 1 times (the first is a warm-up, not printed), each
 * with posix_spawn and the jail's Python environment, checks "1\n" and
 * status 0, and prints each start-to-reaped time in microseconds, one a line. */
static const char floor_driver[] =
    "import os, sys, time\n"
    "py, n = sys.argv[1], int(sys.argv[2])\n"
    "env = {'PATH': '/opt/safeeval/venv/bin:/usr/local/bin:/usr/bin:/bin', 'HOME': '/tmp',\n"
    "       'TMPDIR': '/tmp', 'LANG': 'C.UTF-8', 'PYTHONDONTWRITEBYTECODE': '1',\n"
    "       'PYTHONUNBUFFERED': '1', 'PYTHONIOENCODING': 'utf-8:strict',\n"
    "       'OPENBLAS_NUM_THREADS': '1'}\n"
    "for i in range(n + 1):\n"
    "    r, w = os.pipe()\n"
    "    t0 = time.monotonic_ns()\n"
    "    pid = os.posix_spawn(py, [py, '-c', 'print(1)'], env,\n"
    "                         file_actions=[(os.POSIX_SPAWN_DUP2, w, 1)])\n"
    "    os.close(w)\n"
    "    out = b''\n"
    "    while True:\n"
    "        b = os.read(r, 256)\n"
    "        if not b:\n"
    "            break\n"
    "        out += b\n"
    "    _, st = os.waitpid(pid, 0)\n"
    "    dt = time.monotonic_ns() - t0\n"
    "    os.close(r)\n"
    "    if st != 0 or out != b'1\\n':\n"
    "        sys.exit('run %d: wait status %d, stdout %r' % (i, st, out[:100]))\n"
    "    if i:\n"
    "        print(dt // 1000)\n";

static int
bench_floor(docker_client *dc, const char *container, const char *python, long runs,
            double *samples)
{
    char n_str[32];
    snprintf(n_str, sizeof(n_str), "%ld", runs);
    const char *argv[] = {python, "-c", floor_driver, python, n_str, NULL};
    docker_exec_opts eo = {
        .argv = argv, .stdout_cap = (size_t)runs * 24 + 4096, .stderr_cap = 4096};
    se_cancel none = SE_CANCEL_NONE;
    docker_exec_result r = {0};
    se_err err = {0};
    int rc = -1;

    if (docker_exec_run(dc, container, &eo, &r, &none, &err) != 0) {
        fprintf(stderr, "safeeval-bench: floor exec: %s\n", err.msg);
        goto out;
    }
    if (r.exit_code != 0 || r.out_total != r.out_len) {
        fprintf(stderr,
                "safeeval-bench: floor driver: exit %d, stdout %zu of %" PRIu64 " bytes: %.*s\n",
                r.exit_code, r.out_len, r.out_total, (int)(r.err_len > 400 ? 400 : r.err_len),
                r.errbuf ? (const char *)r.errbuf : "");
        goto out;
    }
    /* Exactly runs lines of decimal microseconds. */
    const char *p = (const char *)r.out, *end = p + r.out_len;
    long i = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        uint64_t us = 0;
        if (!nl || nl == p || nl - p > 12 || i >= runs)
            break;
        for (const char *q = p; q < nl && us != UINT64_MAX; q++)
            us = isdigit((unsigned char)*q) ? us * 10 + (uint64_t)(*q - '0') : UINT64_MAX;
        if (us == UINT64_MAX)
            break;
        samples[i++] = (double)us / 1000.0;
        p = nl + 1;
    }
    if (p != end || i != runs) {
        fprintf(stderr, "safeeval-bench: floor driver: %ld of %ld samples parsed\n", i, runs);
        goto out;
    }
    rc = 0;
out:
    docker_exec_result_free(&r);
    return rc;
}

/* ---- bursts of Evals at once, one thread and one call each ---- */

typedef struct burst_gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool go;
    bool abort;
} burst_gate;

typedef struct burst_slot {
    burst_gate *gate;
    safeeval_client *c;
    const char *id;
    const char *code;
    double ms;
    bool failed;
    char msg[640];
} burst_slot;

static void *
burst_main(void *ud)
{
    burst_slot *s = ud;
    pthread_mutex_lock(&s->gate->mu);
    while (!s->gate->go)
        pthread_cond_wait(&s->gate->cv, &s->gate->mu);
    bool abort = s->gate->abort;
    pthread_mutex_unlock(&s->gate->mu);
    if (abort)
        return NULL;
    s->failed = eval_checked(s->c, s->id, s->code, NULL, &s->ms, s->msg, sizeof(s->msg)) != 0;
    return NULL;
}

/* n Evals of code at once on sandbox id: every thread is started and waits
 * at the gate, which opens for all together. out_ms[i]: each call's own
 * latency, sorted ascending. */
static int
burst_run(safeeval_client *c, const char *id, const char *code, size_t n, double *out_ms)
{
    burst_gate gate = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    burst_slot *slots = calloc(n, sizeof(*slots));
    pthread_t *th = calloc(n, sizeof(*th));
    size_t started = 0;
    int rc = -1;

    if (!slots || !th) {
        fprintf(stderr, "safeeval-bench: out of memory\n");
        goto out;
    }
    for (; started < n; started++) {
        slots[started] = (burst_slot){.gate = &gate, .c = c, .id = id, .code = code};
        int e = pthread_create(&th[started], NULL, burst_main, &slots[started]);
        if (e != 0) {
            fprintf(stderr, "safeeval-bench: pthread_create: %s\n", strerror(e));
            gate.abort = true;
            break;
        }
    }
    pthread_mutex_lock(&gate.mu);
    gate.go = true;
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
    for (size_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    if (gate.abort)
        goto out;
    rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (slots[i].failed) {
            fprintf(stderr, "safeeval-bench: run %zu of %zu at once: %s\n", i + 1, n, slots[i].msg);
            rc = -1;
        }
        out_ms[i] = slots[i].ms;
    }
    if (rc == 0)
        qsort(out_ms, n, sizeof(*out_ms), cmp_double);
out:
    free(th);
    free(slots);
    return rc;
}

/* 7. Two sleep(1) runs at once on a fresh sandbox (one worker, warmed by one
 * print(1)): the first takes the worker, the second waits for a new one. */
static int
bench_add_worker(safeeval_client *c, docker_client *dc, const bench_opts *o)
{
    double *extra = calloc((size_t)o->worker_trials, sizeof(*extra));
    char msg[1024];
    int rc = -1;
    if (!extra) {
        fprintf(stderr, "safeeval-bench: out of memory\n");
        return -1;
    }
    for (long t = 0; t < o->worker_trials; t++) {
        safeeval_sandbox *sb = NULL;
        double create_ms = 0, warm_ms = 0, lat[2];
        size_t before = 0, after = 0;
        bench_cid ids[BENCH_MAX_WORKERS];
        if (sandbox_create_timed(c, o, &sb, &create_ms) != 0)
            goto out;
        int step = eval_checked(c, sb->id, "print(1)", "1\n", &warm_ms, msg, sizeof(msg));
        if (step != 0)
            fprintf(stderr, "safeeval-bench: add-worker warm-up: %s\n", msg);
        if (step == 0)
            step = workers_list(dc, sb->id, ids, BENCH_MAX_WORKERS, &before);
        if (step == 0)
            step = burst_run(c, sb->id, BENCH_ADD_WORKER_CODE, 2, lat);
        if (step == 0)
            step = workers_list(dc, sb->id, ids, BENCH_MAX_WORKERS, &after);
        int drc = sandbox_destroy(c, sb->id);
        safeeval_sandbox_free(sb);
        if (step != 0 || drc != 0)
            goto out;
        extra[t] = lat[1] - lat[0];
        printf("  add-worker trial %ld: first %8.2f  second %8.2f  extra %8.2f ms  workers %zu -> "
               "%zu%s\n",
               t + 1, lat[0], lat[1], extra[t], before, after,
               after > before ? "" : "  (no new worker: the second waited for the first)");
        fflush(stdout);
    }
    bench_stats s = stats_of(extra, (size_t)o->worker_trials);
    printf("%-34s n=%-5ld min %8.2f  p50 %8.2f  max %8.2f ms  (extra latency of the 2nd of 2 "
           "sleep(1) runs)\n",
           "time to add a worker", o->worker_trials, s.min, s.p50, s.max);
    rc = 0;
out:
    fflush(stdout);
    free(extra);
    return rc;
}

/* The k-th of n equal runs of length single on w workers (FIFO, no cost to
 * queue) waits (ceil(k / w) - 1) * single: the best any queue can do. */
static void
ideal_waits(double *out, size_t n, size_t w, double single)
{
    for (size_t k = 1; k <= n; k++)
        out[k - 1] = (double)((k + w - 1) / w - 1) * single;
}

/* 8. --parallel sleep(0.2) runs at once, --parallel-rounds times, on one
 * sandbox whose workers were made by an uncounted burst first. */
static int
bench_queue(safeeval_client *c, docker_client *dc, const bench_opts *o)
{
    size_t per = (size_t)o->parallel, total = per * (size_t)o->parallel_rounds;
    double *lat = calloc(total, sizeof(*lat));
    double *wait = calloc(total, sizeof(*wait));
    double *ideal = calloc(per, sizeof(*ideal));
    double singles[BENCH_QUEUE_SINGLES];
    safeeval_sandbox *sb = NULL;
    bench_cid ids[BENCH_MAX_WORKERS];
    size_t workers = 0;
    double create_ms = 0, warm_ms = 0;
    char msg[1024];
    int rc = -1;

    if (!lat || !wait || !ideal) {
        fprintf(stderr, "safeeval-bench: out of memory\n");
        goto out;
    }
    if (sandbox_create_timed(c, o, &sb, &create_ms) != 0)
        goto out;
    if (eval_checked(c, sb->id, "print(1)", "1\n", &warm_ms, msg, sizeof(msg)) != 0) {
        fprintf(stderr, "safeeval-bench: queue warm-up: %s\n", msg);
        goto out;
    }
    for (size_t i = 0; i < BENCH_QUEUE_SINGLES; i++) {
        if (eval_checked(c, sb->id, BENCH_QUEUE_CODE, NULL, &singles[i], msg, sizeof(msg)) != 0) {
            fprintf(stderr, "safeeval-bench: queue single run: %s\n", msg);
            goto out;
        }
    }
    bench_stats single = stats_of(singles, BENCH_QUEUE_SINGLES);
    print_stats("Eval sleep(0.2), one at a time", &single, BENCH_QUEUE_SINGLES);

    /* The uncounted burst makes the workers (up to the sandbox's
     * concurrency); the counted ones then measure the queue alone. */
    if (burst_run(c, sb->id, BENCH_QUEUE_CODE, per, lat) != 0)
        goto out;
    if (workers_list(dc, sb->id, ids, BENCH_MAX_WORKERS, &workers) != 0)
        goto out;
    printf("  first burst of %zu (uncounted)    max %8.2f ms, workers after it: %zu\n", per,
           lat[per - 1], workers);
    for (long r = 0; r < o->parallel_rounds; r++)
        if (burst_run(c, sb->id, BENCH_QUEUE_CODE, per, lat + (size_t)r * per) != 0)
            goto out;
    for (size_t i = 0; i < total; i++)
        wait[i] = lat[i] - single.p50 > 0 ? lat[i] - single.p50 : 0;

    char what[64];
    snprintf(what, sizeof(what), "Eval sleep(0.2), %zu at once", per);
    bench_stats ls = stats_of(lat, total);
    print_stats(what, &ls, total);
    bench_stats ws = stats_of(wait, total);
    print_stats("  queue wait (lat. - single p50)", &ws, total);
    if (workers > 0) {
        ideal_waits(ideal, per, workers, single.p50);
        bench_stats is = stats_of(ideal, per);
        snprintf(what, sizeof(what), "  ideal FIFO wait on %zu workers", workers);
        printf("%-34s n=%-5zu p50 %8.2f  p99 %8.2f ms  (measured/ideal at p50 %.2fx)\n", what, per,
               is.p50, is.p99, is.p50 > 0 ? ws.p50 / is.p50 : 0.0);
    }
    rc = 0;
out:
    fflush(stdout);
    if (sb) {
        if (sandbox_destroy(c, sb->id) != 0)
            rc = -1;
        safeeval_sandbox_free(sb);
    }
    free(ideal);
    free(wait);
    free(lat);
    return rc;
}

/* ---- 2b. CreateSandbox served from a warm pool ---- */

/* Whether the sandbox's (first) worker was a pool container: the daemon
 * labels pool workers safeeval.pool, and a sandbox served from the pool
 * keeps that container. */
static int
worker_pooled(docker_client *dc, const char *sandbox_id, bool *out)
{
    char filter[256];
    const char *filters[] = {filter, NULL};
    cJSON *list = NULL;
    se_err err = {0};
    snprintf(filter, sizeof(filter), SE_LABEL_SANDBOX "=%s", sandbox_id);
    if (docker_container_list(dc, filters, false, &list, &err) != 0) {
        fprintf(stderr, "safeeval-bench: list containers: %s\n", err.msg);
        return -1;
    }
    *out = false;
    const cJSON *item;
    cJSON_ArrayForEach(item, list)
    {
        const cJSON *labels = cJSON_GetObjectItemCaseSensitive(item, "Labels");
        if (cJSON_GetObjectItemCaseSensitive(labels, "safeeval.pool"))
            *out = true;
    }
    cJSON_Delete(list);
    return 0;
}

static void
sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int
bench_create_pool(safeeval_client *c, docker_client *dc, const bench_opts *o_in)
{
    /* Another spec than the other sections': theirs must not be pooled, or
     * "cached" would be a pool hit too. */
    bench_opts po = *o_in;
    const bench_opts *o = &po;
    po.python_version = o_in->pool_python;
    memcpy(po.modules, o_in->pool_modules, sizeof(po.modules));
    po.n_modules = o_in->n_pool_modules;
    double *hits = calloc((size_t)o->pool_creates, sizeof(*hits));
    size_t nh = 0, misses = 0;
    int rc = -1;
    if (!hits) {
        fprintf(stderr, "safeeval-bench: out of memory\n");
        return -1;
    }
    for (long i = 0; i < o->pool_creates; i++) {
        safeeval_sandbox *sb = NULL;
        double ms = 0;
        bool pooled = false;
        sleep_ms(o->pool_pause_ms); /* the pool refills in the background */
        if (sandbox_create_timed(c, o, &sb, &ms) != 0)
            goto out;
        int step = worker_pooled(dc, sb->id, &pooled);
        int drc = sandbox_destroy(c, sb->id);
        safeeval_sandbox_free(sb);
        if (step != 0 || drc != 0)
            goto out;
        if (pooled)
            hits[nh++] = ms;
        else
            misses++;
    }
    if (nh > 0) {
        bench_stats s = stats_of(hits, nh);
        print_stats("CreateSandbox pool hit", &s, nh);
    }
    printf("  %zu pool hits, %zu misses of %ld, spec python %s with %zu modules%s\n", nh, misses,
           o->pool_creates, o->python_version, o->n_modules,
           nh == 0 ? " (is the daemon run with --pool for this spec?)" : "");
    rc = 0;
out:
    fflush(stdout);
    free(hits);
    return rc;
}

/* ---- 3b. Evals of some code, and the zygote sandbox ---- */

static int
bench_eval_code(safeeval_client *c, const char *id, const char *code, const char *want, long runs,
                long pause_ms, double *samples)
{
    char msg[1024];
    for (long i = 0; i < runs; i++) {
        if (pause_ms > 0)
            sleep_ms(pause_ms);
        if (eval_checked(c, id, code, want, &samples[i], msg, sizeof(msg)) != 0) {
            fprintf(stderr, "safeeval-bench: Eval run %ld of %s: %s\n", i, code, msg);
            return -1;
        }
    }
    return 0;
}

/* A zygote sandbox: runner ZYGOTE, preload numpy. 0 = *id_out made; 1 =
 * the service has no zygote (why says so); -1 = another failure. */
static int
zygote_create(safeeval_client *c, const bench_opts *o, char **id_out, char *why, size_t why_size)
{
    Safeeval__V1__CreateSandboxRequest req = SAFEEVAL__V1__CREATE_SANDBOX_REQUEST__INIT;
    char *preload[] = {"numpy"};
    ProtobufCMessage *resp = NULL;
    safeeval_error err;
    *id_out = NULL;
    req.python_version = (char *)o->python_version;
    req.modules = (char **)o->modules;
    req.n_modules = o->n_modules;
    req.preload = preload;
    req.n_preload = 1;
    req.runner = SAFEEVAL__V1__RUNNER__RUNNER_ZYGOTE;
    if (sc_unary(c, "/safeeval.v1.SandboxService/CreateSandbox", &req.base,
                 &safeeval__v1__create_sandbox_response__descriptor, &resp, 1800000, NULL,
                 &err) != 0) {
        snprintf(why, why_size, "CreateSandbox: %s: %.200s", safeeval_status_name(err.code),
                 err.message);
        if (err.code == SAFEEVAL_STATUS_UNIMPLEMENTED ||
            err.code == SAFEEVAL_STATUS_INVALID_ARGUMENT)
            return 1;
        fprintf(stderr, "safeeval-bench: zygote %s\n", why);
        return -1;
    }
    Safeeval__V1__CreateSandboxResponse *r = (Safeeval__V1__CreateSandboxResponse *)resp;
    int rc = 0;
    if (!r->sandbox || !r->sandbox->id) {
        fprintf(stderr, "safeeval-bench: zygote CreateSandbox: no sandbox in the answer\n");
        rc = -1;
    } else if (r->sandbox->runner != SAFEEVAL__V1__RUNNER__RUNNER_ZYGOTE) {
        /* A service that predates the zygote ignores the field. */
        snprintf(why, why_size, "the service made a sandbox with runner %d, not ZYGOTE",
                 (int)r->sandbox->runner);
        rc = sandbox_destroy(c, r->sandbox->id) == 0 ? 1 : -1;
    } else if (!(*id_out = strdup(r->sandbox->id))) {
        rc = -1;
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

/* One summary line: p50/p99 and the ratios to the floor and the exec. */
static void
print_vs(const char *what, const bench_stats *s, const bench_stats *floor, const bench_stats *ex)
{
    printf("  %-32s p50 %8.2f  p99 %8.2f ms   %6.2fx floor   docker exec %6.2fx slower\n", what,
           s->p50, s->p99, s->p50 / floor->p50, ex->p50 / s->p50);
}

/* ---- 10. throughput ---- */

typedef struct tput_slot {
    safeeval_client *c;
    const char *id;
    int64_t until_us;
    long runs;
    bool failed;
    char msg[640];
} tput_slot;

static void *
tput_main(void *ud)
{
    tput_slot *s = ud;
    while (clock_mono_us() < s->until_us) {
        double ms;
        if (eval_checked(s->c, s->id, "print(1)", "1\n", &ms, s->msg, sizeof(s->msg)) != 0) {
            s->failed = true;
            break;
        }
        s->runs++;
    }
    return NULL;
}

/* k clients, one sandbox each, Evals back to back for seconds: runs/s. */
static int
tput_service(safeeval_client *c, char **ids, size_t k, long seconds, double *rate)
{
    tput_slot slots[BENCH_TPUT_MAX];
    pthread_t th[BENCH_TPUT_MAX];
    size_t started = 0;
    int64_t t0 = clock_mono_us();
    int rc = 0;
    for (; started < k; started++) {
        slots[started] =
            (tput_slot){.c = c, .id = ids[started], .until_us = t0 + seconds * 1000000};
        if (pthread_create(&th[started], NULL, tput_main, &slots[started]) != 0) {
            fprintf(stderr, "safeeval-bench: pthread_create failed\n");
            rc = -1;
            break;
        }
    }
    long total = 0;
    for (size_t i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        total += slots[i].runs;
        if (slots[i].failed) {
            fprintf(stderr, "safeeval-bench: throughput client %zu: %s\n", i, slots[i].msg);
            rc = -1;
        }
    }
    *rate = (double)total / ((double)(clock_mono_us() - t0) / 1e6);
    return rc;
}

/* The bare jailed run, looped inside a worker for argv[2] seconds: bubblewrap
 * with the jail's namespaces (user, pid, net, ipc, uts), the system read-only,
 * a fresh /proc, /dev, /tmp and /dev/shm, then python3 -c 'print(1)'. No
 * agent, no seccomp filter of ours, no gRPC. Prints the runs and the
 * microseconds they took. */
static const char bare_driver[] =
    "import os, sys, time\n"
    "py, secs = sys.argv[1], float(sys.argv[2])\n"
    "argv = ['bwrap', '--unshare-user', '--unshare-pid', '--unshare-net', '--unshare-ipc',\n"
    "        '--unshare-uts', '--die-with-parent', '--new-session', '--ro-bind', '/', '/',\n"
    "        '--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp', '--tmpfs', '/dev/shm',\n"
    "        '--chdir', '/tmp', '--clearenv', '--setenv', 'PATH', '/usr/bin:/bin',\n"
    "        '--setenv', 'LANG', 'C.UTF-8', '--setenv', 'PYTHONUNBUFFERED', '1',\n"
    "        '--setenv', 'PYTHONDONTWRITEBYTECODE', '1', py, '-c', 'print(1)']\n"
    "env = {'PATH': '/usr/bin:/bin'}\n"
    "n, t0 = 0, time.monotonic()\n"
    "while time.monotonic() - t0 < secs:\n"
    "    r, w = os.pipe()\n"
    "    pid = os.posix_spawnp('bwrap', argv, env, file_actions=[(os.POSIX_SPAWN_DUP2, w, 1)])\n"
    "    os.close(w)\n"
    "    out = b''\n"
    "    while True:\n"
    "        b = os.read(r, 256)\n"
    "        if not b:\n"
    "            break\n"
    "        out += b\n"
    "    os.close(r)\n"
    "    _, st = os.waitpid(pid, 0)\n"
    "    if st != 0 or out != b'1\\n':\n"
    "        sys.exit('jailed run: wait status %d, stdout %r' % (st, out[:100]))\n"
    "    n += 1\n"
    "print(n, int((time.monotonic() - t0) * 1e6))\n";

typedef struct bare_slot {
    docker_client *dc;
    const char *container;
    const char *python;
    long seconds;
    long runs;
    double secs;
    bool failed;
} bare_slot;

static void *
bare_main(void *ud)
{
    bare_slot *s = ud;
    char secs[32];
    snprintf(secs, sizeof(secs), "%ld", s->seconds);
    const char *argv[] = {s->python, "-c", bare_driver, s->python, secs, NULL};
    docker_exec_opts eo = {.argv = argv, .stdout_cap = 4096, .stderr_cap = 4096};
    se_cancel none = SE_CANCEL_NONE;
    docker_exec_result r = {0};
    se_err err = {0};
    long long us = 0;
    s->failed = true;
    if (docker_exec_run(s->dc, s->container, &eo, &r, &none, &err) != 0)
        fprintf(stderr, "safeeval-bench: bare jailed exec: %s\n", err.msg);
    else if (r.exit_code != 0 || !r.out ||
             sscanf((const char *)r.out, "%ld %lld", &s->runs, &us) != 2)
        fprintf(stderr, "safeeval-bench: bare jailed driver: exit %d: %.*s\n", r.exit_code,
                (int)(r.err_len > 400 ? 400 : r.err_len), r.errbuf ? (const char *)r.errbuf : "");
    else
        s->failed = false;
    s->secs = (double)us / 1e6;
    docker_exec_result_free(&r);
    return NULL;
}

/* k loops at once, one in each of the first k containers: runs/s. */
static int
tput_bare(docker_client *dc, bench_cid *containers, size_t k, const bench_opts *o, double *rate)
{
    bare_slot slots[BENCH_TPUT_MAX];
    pthread_t th[BENCH_TPUT_MAX];
    size_t started = 0;
    int rc = 0;
    for (; started < k; started++) {
        slots[started] = (bare_slot){.dc = dc,
                                     .container = containers[started],
                                     .python = o->exec_python,
                                     .seconds = o->tput_seconds};
        if (pthread_create(&th[started], NULL, bare_main, &slots[started]) != 0) {
            rc = -1;
            break;
        }
    }
    double total = 0, longest = 0;
    for (size_t i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        if (slots[i].failed)
            rc = -1;
        total += (double)slots[i].runs;
        if (slots[i].secs > longest)
            longest = slots[i].secs;
    }
    *rate = longest > 0 ? total / longest : 0;
    return rc;
}

static int
bench_throughput(safeeval_client *c, docker_client *dc, const bench_opts *o)
{
    static const size_t clients[] = {1, 4, BENCH_TPUT_MAX};
    char *ids[BENCH_TPUT_MAX] = {0};
    bench_cid containers[BENCH_TPUT_MAX];
    char msg[1024] = "";
    int rc = -1;
    size_t made = 0;
    while (made < BENCH_TPUT_MAX) {
        safeeval_create_opts co = SAFEEVAL_CREATE_OPTS_INIT;
        safeeval_sandbox *sb = NULL;
        safeeval_error err;
        double ms;
        co.python_version = o->python_version;
        co.modules = o->modules;
        co.n_modules = o->n_modules;
        co.max_concurrent_runs = 1; /* one client, one worker: no queue, no extra worker */
        co.timeout_ms = 1800000;
        if (safeeval_sandbox_create(&sb, c, &co, &err) != 0) {
            fprintf(stderr, "safeeval-bench: CreateSandbox: %s: %s\n",
                    safeeval_status_name(err.code), err.message);
            goto out;
        }
        ids[made] = strdup(sb->id);
        safeeval_sandbox_free(sb);
        if (!ids[made])
            goto out;
        made++;
        if (container_find(dc, ids[made - 1], containers[made - 1], sizeof(bench_cid)) != 0 ||
            eval_checked(c, ids[made - 1], "print(1)", "1\n", &ms, msg, sizeof(msg)) != 0) {
            fprintf(stderr, "safeeval-bench: throughput warm-up: %s\n", msg);
            goto out;
        }
    }
    printf(
        "throughput, print(1) back to back; one sandbox (one worker) per client; %ld rounds of "
        "%ld s via safeevald then %ld s bare, alternated (the load of a shared machine drifts):\n",
        o->tput_rounds, o->tput_seconds, o->tput_seconds);
    for (size_t i = 0; i < sizeof(clients) / sizeof(clients[0]); i++) {
        double svc[BENCH_TPUT_ROUNDS_MAX], bare[BENCH_TPUT_ROUNDS_MAX],
            ratio[BENCH_TPUT_ROUNDS_MAX];
        for (long r = 0; r < o->tput_rounds; r++) {
            if (tput_service(c, ids, clients[i], o->tput_seconds, &svc[r]) != 0 ||
                tput_bare(dc, containers, clients[i], o, &bare[r]) != 0)
                goto out;
            ratio[r] = bare[r] > 0 ? 100 * svc[r] / bare[r] : 0;
        }
        size_t n = (size_t)o->tput_rounds;
        bench_stats sv = stats_of(svc, n), bs = stats_of(bare, n), rs = stats_of(ratio, n);
        printf("  %zu client%s  %8.2f runs/s via safeevald   bare jailed runs %8.2f runs/s   "
               "%5.1f %%  (medians; ratio per round %.1f..%.1f %%)\n",
               clients[i], clients[i] > 1 ? "s" : " ", sv.p50, bs.p50, rs.p50, rs.min, rs.max);
        fflush(stdout);
    }
    rc = 0;
out:
    for (size_t i = 0; i < made; i++) {
        if (sandbox_destroy(c, ids[i]) != 0)
            rc = -1;
        free(ids[i]);
    }
    fflush(stdout);
    return rc;
}

/* ---- the daemon's memory ---- */

/* The safeevald whose command line names the target (as --listen's value,
 * or inside --listen=...): 0 if none, -1 if more than one. */
static long
daemon_find(const char *target)
{
    const char *needle = target;
    DIR *d = opendir("/proc");
    struct dirent *de;
    long found = 0;
    if (!d)
        return 0;
    while ((de = readdir(d)) != NULL) {
        char path[300], cmd[16384];
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(cmd, 1, sizeof(cmd) - 1, f);
        fclose(f);
        if (len == 0)
            continue;
        cmd[len] = '\0';
        const char *arg0 = strrchr(cmd, '/') ? strrchr(cmd, '/') + 1 : cmd;
        if (strcmp(arg0, "safeevald") != 0)
            continue;
        bool names_target = false;
        for (const char *a = cmd + strlen(cmd) + 1; a < cmd + len; a += strlen(a) + 1)
            if (strcmp(a, needle) == 0 ||
                (strncmp(a, "--listen=", 9) == 0 && strcmp(a + 9, needle) == 0))
                names_target = true;
        if (!names_target)
            continue;
        if (found) {
            found = -1;
            break;
        }
        found = strtol(de->d_name, NULL, 10);
    }
    closedir(d);
    return found;
}

/* VmRSS of pid in KiB, -1 if unreadable. */
static long
proc_rss_kib(long pid)
{
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

/* 9. --sandboxes sandboxes of the same spec at once: the daemon's RSS before,
 * with them and after they are gone, and the memory of their idle workers. */
static int
bench_many(safeeval_client *c, docker_client *dc, const bench_opts *o)
{
    size_t n = (size_t)o->sandboxes, made = 0, measured = 0;
    char **ids = calloc(n, sizeof(*ids));
    double *create_ms = calloc(n, sizeof(*create_ms));
    mem_stats *mem = calloc(n, sizeof(*mem));
    double *v = calloc(n, sizeof(*v));
    long rss1 = -1;
    int rc = -1;

    long pid = o->daemon_pid ? o->daemon_pid : daemon_find(o->target);
    if (pid < 0)
        printf("  several safeevald name %s: pass --daemon-pid; RSS not read\n", o->target);
    else if (pid == 0)
        printf("  no local safeevald names %s: pass --daemon-pid; RSS not read\n", o->target);
    long rss0 = pid > 0 ? proc_rss_kib(pid) : -1;
    if (pid > 0 && rss0 < 0)
        printf("  /proc/%ld/status unreadable: RSS not read\n", pid);

    if (!ids || !create_ms || !mem || !v) {
        fprintf(stderr, "safeeval-bench: out of memory\n");
        goto out;
    }
    for (; made < n; made++) {
        safeeval_sandbox *sb = NULL;
        if (sandbox_create_timed(c, o, &sb, &create_ms[made]) != 0)
            goto out;
        ids[made] = strdup(sb->id);
        safeeval_sandbox_free(sb);
        if (!ids[made]) {
            fprintf(stderr, "safeeval-bench: out of memory\n");
            goto out;
        }
    }
    rss1 = rss0 >= 0 ? proc_rss_kib(pid) : -1;
    char what[64];
    snprintf(what, sizeof(what), "CreateSandbox cached, %zu kept", n);
    bench_stats cs = stats_of(create_ms, n);
    print_stats(what, &cs, n);

    for (size_t i = 0; i < n; i++) {
        bench_cid wid[BENCH_MAX_WORKERS];
        size_t nw = 0;
        if (workers_list(dc, ids[i], wid, BENCH_MAX_WORKERS, &nw) != 0)
            goto out;
        if (nw == 0)
            continue;
        if (worker_memory(dc, wid[0], &mem[measured]) != 0)
            goto out;
        measured++;
    }
    if (measured > 0) {
        /* Medians of each figure separately (nearest rank). */
        mem_stats med = {0};
        double *fields[] = {&med.usage, &med.anon, &med.file, &med.shmem, &med.working};
        for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
            for (size_t i = 0; i < measured; i++) {
                double *src[] = {&mem[i].usage, &mem[i].anon, &mem[i].file, &mem[i].shmem,
                                 &mem[i].working};
                v[i] = *src[f];
            }
            *fields[f] = stats_of(v, measured).p50;
        }
        snprintf(what, sizeof(what), "fresh idle worker, median of %zu", measured);
        print_memory(what, &med);
    }
    fflush(stdout);

    rc = 0;
out:
    for (size_t i = 0; i < made; i++) {
        if (ids[i] && sandbox_destroy(c, ids[i]) != 0)
            rc = -1;
        free(ids[i]);
    }
    if (rc == 0 && rss0 >= 0) {
        long rss2 = proc_rss_kib(pid);
        printf("%-34s before %8.1f  with %zu sandboxes %8.1f  after destroy %8.1f MiB  (+%.1f KiB "
               "per sandbox)\n",
               "safeevald VmRSS", (double)rss0 / 1024.0, n, (double)rss1 / 1024.0,
               (double)rss2 / 1024.0, (double)(rss1 - rss0) / (double)n);
        printf("  (pid %ld)\n", pid);
    }
    fflush(stdout);
    free(v);
    free(mem);
    free(create_ms);
    free(ids);
    return rc;
}

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: safeeval-bench [options]\n"
            "  --target T            the service: unix:PATH or HOST:PORT (default %s)\n"
            "  --runs N              Eval, floor and docker exec runs (default 200)\n"
            "  --creates N           cached CreateSandbox samples (default 5; 0 skips)\n"
            "  --python V            python_version of the sandboxes (default 3.11)\n"
            "  --module M            a pip requirement; repeatable (default: numpy)\n"
            "  --no-module           no modules at all\n"
            "  --skip-cold           do not remove the image to time a cold create\n"
            "  --docker-host H       the engine (default unix:///var/run/docker.sock)\n"
            "  --exec-python P       interpreter of the floor and the bare exec (default %s)\n"
            "  --worker-trials N     fresh sandboxes timing a second worker (default 5; 0 skips)\n"
            "  --parallel N          Evals at once for the queue wait (default 20; 0 skips)\n"
            "  --parallel-rounds N   counted bursts of --parallel (default 5)\n"
            "  --sandboxes N         sandboxes kept at once for the daemon's RSS (default 50;\n"
            "                        0 skips; the daemon's --max-sandboxes must allow N)\n"
            "  --daemon-pid PID      the safeevald to read VmRSS of (default: the local\n"
            "                        safeevald whose command line names --target)\n"
            "  --pool-creates N      creates timed on a warm pool hit (default 10; 0 skips)\n"
            "  --pool-spec SPEC      their spec, VERSION[:MODULE,...] (default 3.11): the daemon\n"
            "                        runs with --pool SPEC=N, and SPEC is not the spec of\n"
            "                        --python/--module (those creates must not be pooled)\n"
            "  --pool-pause-ms MS    pause before each of them, for the refill (default 1500)\n"
            "  --numpy-runs N        numpy Evals per runner (default 50)\n"
            "  --no-zygote           do not try a zygote sandbox\n"
            "  --gap-ms MS           pause before each Eval of the second print(1) row and\n"
            "                        of the zygote's second numpy row, a client with think\n"
            "                        time; a third print(1) row sets an env var (a jail\n"
            "                        made on demand) (default 100; 0 skips them)\n"
            "  --tput-seconds S      each throughput measurement (default 5; 0 skips)\n"
            "  --tput-rounds N       service/bare pairs per client count (default 3)\n"
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
        {"worker-trials", required_argument, NULL, 'w'},
        {"parallel", required_argument, NULL, 'P'},
        {"parallel-rounds", required_argument, NULL, 'R'},
        {"sandboxes", required_argument, NULL, 'S'},
        {"daemon-pid", required_argument, NULL, 'D'},
        {"pool-creates", required_argument, NULL, 'K'},
        {"pool-pause-ms", required_argument, NULL, 'Q'},
        {"pool-spec", required_argument, NULL, 'X'},
        {"numpy-runs", required_argument, NULL, 'N'},
        {"no-zygote", no_argument, NULL, 'Z'},
        {"gap-ms", required_argument, NULL, 'G'},
        {"tput-seconds", required_argument, NULL, 'T'},
        {"tput-rounds", required_argument, NULL, 'U'},
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
        case 'w':
            if (parse_long(optarg, 0, 1000, &o->worker_trials) != 0) {
                fprintf(stderr, "safeeval-bench: --worker-trials wants 0..1000\n");
                return -1;
            }
            break;
        case 'P':
            if (parse_long(optarg, 0, BENCH_MAX_PARALLEL, &o->parallel) != 0) {
                fprintf(stderr, "safeeval-bench: --parallel wants 0..%d\n", BENCH_MAX_PARALLEL);
                return -1;
            }
            break;
        case 'R':
            if (parse_long(optarg, 1, 1000, &o->parallel_rounds) != 0) {
                fprintf(stderr, "safeeval-bench: --parallel-rounds wants 1..1000\n");
                return -1;
            }
            break;
        case 'S':
            if (parse_long(optarg, 0, BENCH_MAX_SANDBOXES, &o->sandboxes) != 0) {
                fprintf(stderr, "safeeval-bench: --sandboxes wants 0..%d\n", BENCH_MAX_SANDBOXES);
                return -1;
            }
            break;
        case 'D':
            if (parse_long(optarg, 1, 0x7fffffffL, &o->daemon_pid) != 0) {
                fprintf(stderr, "safeeval-bench: --daemon-pid wants a pid\n");
                return -1;
            }
            break;
        case 'K':
            if (parse_long(optarg, 0, 1000, &o->pool_creates) != 0) {
                fprintf(stderr, "safeeval-bench: --pool-creates wants 0..1000\n");
                return -1;
            }
            break;
        case 'Q':
            if (parse_long(optarg, 0, 600000, &o->pool_pause_ms) != 0) {
                fprintf(stderr, "safeeval-bench: --pool-pause-ms wants 0..600000\n");
                return -1;
            }
            break;
        case 'N':
            if (parse_long(optarg, 1, BENCH_MAX_RUNS, &o->numpy_runs) != 0) {
                fprintf(stderr, "safeeval-bench: --numpy-runs wants 1..%d\n", BENCH_MAX_RUNS);
                return -1;
            }
            break;
        case 'Z':
            o->no_zygote = true;
            break;
        case 'G':
            if (parse_long(optarg, 0, 60000, &o->gap_ms) != 0) {
                fprintf(stderr, "safeeval-bench: --gap-ms wants 0..60000\n");
                return -1;
            }
            break;
        case 'X': {
            /* VERSION[:MODULE,MODULE...], split in place */
            char *colon = strchr(optarg, ':');
            o->pool_python = optarg;
            o->n_pool_modules = 0;
            if (colon) {
                *colon = '\0';
                char *save = NULL;
                for (char *t = strtok_r(colon + 1, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                    if (o->n_pool_modules >= BENCH_MAX_MODULES) {
                        fprintf(stderr, "safeeval-bench: --pool-spec: too many modules\n");
                        return -1;
                    }
                    o->pool_modules[o->n_pool_modules++] = t;
                }
            }
            break;
        }
        case 'T':
            if (parse_long(optarg, 0, 3600, &o->tput_seconds) != 0) {
                fprintf(stderr, "safeeval-bench: --tput-seconds wants 0..3600\n");
                return -1;
            }
            break;
        case 'U':
            if (parse_long(optarg, 1, BENCH_TPUT_ROUNDS_MAX, &o->tput_rounds) != 0) {
                fprintf(stderr, "safeeval-bench: --tput-rounds wants 1..%d\n",
                        BENCH_TPUT_ROUNDS_MAX);
                return -1;
            }
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
        .worker_trials = 5,
        .parallel = 20,
        .parallel_rounds = 5,
        .sandboxes = 50,
        .pool_creates = 10,
        .pool_pause_ms = 1500,
        .pool_python = "3.11",
        .numpy_runs = 50,
        .tput_seconds = 5,
        .tput_rounds = 3,
        .gap_ms = 100,
    };
    safeeval_client *c = NULL;
    docker_client *dc = NULL;
    safeeval_sandbox *sb = NULL;
    double *samples = NULL, *gap_samples = NULL, *od_samples = NULL;
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
    if ((size_t)o.numpy_runs > n)
        n = (size_t)o.numpy_runs;
    samples = calloc(n ? n : 1, sizeof(*samples));
    gap_samples = calloc((size_t)o.runs, sizeof(*gap_samples));
    od_samples = calloc((size_t)o.runs, sizeof(*od_samples));
    if (!samples || !gap_samples || !od_samples) {
        fprintf(stderr, "safeeval-bench: out of memory\n");
        goto out;
    }

    printf("safeeval-bench: target %s, python %s, modules:", o.target, o.python_version);
    for (size_t i = 0; i < o.n_modules; i++)
        printf(" %s", o.modules[i]);
    printf("%s, runs %ld\n", o.n_modules ? "" : " none", o.runs);
    print_loadavg("load average at start");
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

    /* 2b. served from a warm pool */
    if (o.pool_creates > 0 && bench_create_pool(c, dc, &o) != 0)
        goto out;

    /* 3. Eval through the service, between two looks at the idle worker's
     * memory: fresh, and after the runs (before any exec adds to it). */
    double create_ms = 0;
    if (sandbox_create_timed(c, &o, &sb, &create_ms) != 0)
        goto out;
    if (bench_worker_memory(dc, sb->id, "worker memory, fresh (no run yet)") != 0)
        goto out;
    /* One warm-up run each, not counted: the first run pays page-cache misses. */
    if (bench_eval(c, sb->id, 1, samples) != 0)
        goto out;
    if (bench_eval_gap(c, sb->id, o.runs, o.gap_ms, samples, gap_samples, od_samples) != 0)
        goto out;
    bench_stats ev = stats_of(samples, (size_t)o.runs);
    bench_stats eg = {0}, eo = {0};
    if (o.gap_ms > 0) {
        eg = stats_of(gap_samples, (size_t)o.runs);
        eo = stats_of(od_samples, (size_t)o.runs);
    }
    if (bench_worker_memory(dc, sb->id, "worker memory, idle after the runs") != 0)
        goto out;
    print_stats("Eval print(1) via safeevald", &ev, (size_t)o.runs);
    char gap_what[64];
    snprintf(gap_what, sizeof(gap_what), "Eval print(1), %ld ms apart", o.gap_ms);
    if (o.gap_ms > 0) {
        print_stats(gap_what, &eg, (size_t)o.runs);
        print_stats("Eval print(1), jail on demand", &eo, (size_t)o.runs);
    }
    fflush(stdout);
    /* 3b. the numpy eval on the fresh jail */
    if (bench_eval_code(c, sb->id, BENCH_NUMPY_CODE, NULL, 1, 0, samples) != 0 ||
        bench_eval_code(c, sb->id, BENCH_NUMPY_CODE, NULL, o.numpy_runs, 0, samples) != 0)
        goto out;
    bench_stats nf = stats_of(samples, (size_t)o.numpy_runs);
    print_stats("Eval numpy, fresh jail", &nf, (size_t)o.numpy_runs);
    fflush(stdout);

    /* 4. the floor: python3 started from inside the worker */
    char container[sizeof(bench_cid)];
    if (container_find(dc, sb->id, container, sizeof(container)) != 0)
        goto out;
    if (bench_floor(dc, container, o.exec_python, o.runs, samples) != 0)
        goto out;
    bench_stats fl = stats_of(samples, (size_t)o.runs);
    print_stats("floor: python3 -c in the worker", &fl, (size_t)o.runs);
    fflush(stdout);

    /* 5. bare docker exec into the same container */
    if (bench_exec(dc, container, o.exec_python, 1, samples) != 0)
        goto out;
    if (bench_exec(dc, container, o.exec_python, o.runs, samples) != 0)
        goto out;
    bench_stats ex = stats_of(samples, (size_t)o.runs);
    print_stats("bare docker exec python3 -c", &ex, (size_t)o.runs);

    /* 6. ratios */
    printf("%-34s p50 %.2fx  p99 %.2fx  (+%.2f ms at p50)\n", "ratio Eval / floor", ev.p50 / fl.p50,
           ev.p99 / fl.p99, ev.p50 - fl.p50);
    if (o.gap_ms > 0)
        printf("%-34s p50 %.2fx  p99 %.2fx  (%+.2f ms at p50)\n", "ratio Eval apart / floor",
               eg.p50 / fl.p50, eg.p99 / fl.p99, eg.p50 - fl.p50);
    printf("%-34s p50 %.2fx  p99 %.2fx  (%+.2f ms at p50)\n", "ratio docker exec / Eval",
           ex.p50 / ev.p50, ex.p99 / ev.p99, ex.p50 - ev.p50);
    fflush(stdout);
    if (sandbox_destroy(c, sb->id) != 0)
        goto out;
    safeeval_sandbox_free(sb);
    sb = NULL;

    /* 3b. the zygote: print(1) and numpy again, then every figure side by side */
    bench_stats zp = {0}, zn = {0}, zq = {0};
    char why[512] = "skipped (--no-zygote)";
    int zr = 1;
    if (!o.no_zygote) {
        char *zid = NULL;
        zr = zygote_create(c, &o, &zid, why, sizeof(why));
        if (zr < 0)
            goto out;
        if (zr == 0) {
            int step = bench_eval_code(c, zid, "print(1)", "1\n", 1, 0, samples);
            if (step == 0)
                step = bench_eval_code(c, zid, "print(1)", "1\n", o.runs, 0, samples);
            if (step == 0)
                zp = stats_of(samples, (size_t)o.runs);
            if (step == 0)
                step = bench_eval_code(c, zid, BENCH_NUMPY_CODE, NULL, o.numpy_runs, 0, samples);
            if (step == 0)
                zn = stats_of(samples, (size_t)o.numpy_runs);
            if (step == 0 && o.gap_ms > 0)
                step = bench_eval_code(c, zid, BENCH_NUMPY_CODE, NULL, o.numpy_runs, o.gap_ms,
                                       samples);
            if (step == 0 && o.gap_ms > 0)
                zq = stats_of(samples, (size_t)o.numpy_runs);
            int drc = sandbox_destroy(c, zid);
            free(zid);
            if (step != 0 || drc != 0)
                goto out;
            print_stats("Eval print(1), zygote", &zp, (size_t)o.runs);
            print_stats("Eval numpy, zygote", &zn, (size_t)o.numpy_runs);
            if (o.gap_ms > 0) {
                char what[64];
                snprintf(what, sizeof(what), "Eval numpy, zygote, %ld ms apart", o.gap_ms);
                print_stats(what, &zq, (size_t)o.numpy_runs);
            }
        }
    }
    printf("summary (ratios at p50; the floor is python3 -c 'print(1)' started in the worker):\n");
    print_vs("floor", &fl, &fl, &ex);
    print_vs("docker exec python3 -c", &ex, &fl, &ex);
    print_vs("Eval print(1), fresh jail", &ev, &fl, &ex);
    if (o.gap_ms > 0) {
        char what[64];
        snprintf(what, sizeof(what), "  same, %ld ms apart", o.gap_ms);
        print_vs(what, &eg, &fl, &ex);
        print_vs("  same, jail on demand (env)", &eo, &fl, &ex);
    }
    if (zr == 0)
        print_vs("Eval print(1), zygote", &zp, &fl, &ex);
    else
        printf("  %-32s unavailable: %s\n", "Eval print(1), zygote", why);
    print_vs("Eval numpy, fresh jail", &nf, &fl, &ex);
    if (zr == 0)
        print_vs("Eval numpy, zygote", &zn, &fl, &ex);
    if (zr == 0 && o.gap_ms > 0) {
        char what[64];
        snprintf(what, sizeof(what), "  same, %ld ms apart", o.gap_ms);
        print_vs(what, &zq, &fl, &ex);
    }
    if (zr != 0)
        printf("  %-32s unavailable\n", "Eval numpy, zygote");
    fflush(stdout);

    /* 7. time to add a worker */
    if (o.worker_trials > 0 && bench_add_worker(c, dc, &o) != 0)
        goto out;

    /* 8. queue wait */
    if (o.parallel > 0 && bench_queue(c, dc, &o) != 0)
        goto out;

    /* 10. throughput */
    if (o.tput_seconds > 0 && bench_throughput(c, dc, &o) != 0)
        goto out;

    /* 9. the daemon with many sandboxes */
    if (o.sandboxes > 0 && bench_many(c, dc, &o) != 0)
        goto out;

    print_loadavg("load average at end");
    rc = 0;
out:
    if (sb) {
        if (sandbox_destroy(c, sb->id) != 0)
            rc = 1;
        safeeval_sandbox_free(sb);
    }
    fflush(stdout);
    free(samples);
    free(gap_samples);
    free(od_samples);
    docker_client_free(dc);
    safeeval_client_free(c);
    return rc;
}
