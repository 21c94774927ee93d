/* Metrics state: fixed arrays of atomics, so that bumping one from a run or
 * a build costs a relaxed atomic add and never a lock. Rendering reads them
 * without stopping the writers: a scrape may see a histogram's count one
 * ahead of its sum, which Prometheus tolerates. */
#include "util/metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define RPC_METHODS_MAX 32
#define RPC_CODES 17
#define NAME_MAX_LEN 64
#define N_REASONS 7 /* safeeval.v1.ExitReason 0..6 */
#define MAX_BUCKETS 16

static const char *const reason_names[N_REASONS] = {"unspecified",    "exited",      "signaled",
                                                    "wall_timeout",   "cpu_timeout", "memory_limit",
                                                    "file_size_limit"};

static const char *const code_names[RPC_CODES] = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};

const char *
metrics_code_name(int code)
{
    return code >= 0 && code < RPC_CODES ? code_names[code] : "?";
}

struct hist_def {
    const char *name;
    const char *help;
    double bounds[MAX_BUCKETS]; /* seconds, ascending; 0 ends the list */
};

static const struct hist_def hist_defs[METRICS_N_HISTS] = {
    [METRICS_RUN_SECONDS] = {"safeeval_run_duration_seconds",
                             "Time of a run on its worker, from request to result.",
                             {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
                              300}},
    [METRICS_RUN_WAIT_SECONDS] = {"safeeval_run_queue_wait_seconds",
                                  "Time a run waited for a free worker of its sandbox.",
                                  {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300}},
    [METRICS_BUILD_SECONDS] = {"safeeval_image_build_duration_seconds",
                               "Time of a sandbox image build.",
                               {1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}},
};

struct hist {
    atomic_uint_fast64_t buckets[MAX_BUCKETS + 1]; /* last: above every bound */
    atomic_uint_fast64_t count;
    atomic_uint_fast64_t sum_us;
};

static struct {
    atomic_int_fast64_t gauges[METRICS_N_GAUGES];
    struct hist hists[METRICS_N_HISTS];
    atomic_uint_fast64_t runs[N_REASONS];
    atomic_uint_fast64_t run_errors;
    atomic_uint_fast64_t builds_ok, builds_failed;
    atomic_uint_fast64_t engine_errors;
    atomic_int engine_up;
    /* Methods are registered before the server starts; n_methods is
     * published with release so a scrape sees only whole names. */
    char services[RPC_METHODS_MAX][NAME_MAX_LEN];
    char methods[RPC_METHODS_MAX][NAME_MAX_LEN];
    atomic_int n_methods;
    atomic_uint_fast64_t rpcs[RPC_METHODS_MAX][RPC_CODES];
    _Atomic(void (*)(void *)) hook;
    _Atomic(void *) hook_ud;
} M = {.engine_up = 1};

void
metrics_gauge_add(enum metrics_gauge g, int64_t delta)
{
    if ((unsigned)g < METRICS_N_GAUGES)
        atomic_fetch_add_explicit(&M.gauges[g], delta, memory_order_relaxed);
}

void
metrics_observe_us(enum metrics_hist h, int64_t us)
{
    if ((unsigned)h >= METRICS_N_HISTS)
        return;
    if (us < 0)
        us = 0;
    const struct hist_def *d = &hist_defs[h];
    struct hist *x = &M.hists[h];
    double s = (double)us / 1e6;
    size_t i = 0;
    while (i < MAX_BUCKETS && d->bounds[i] > 0 && s > d->bounds[i])
        i++;
    if (i < MAX_BUCKETS && d->bounds[i] == 0)
        i = MAX_BUCKETS; /* past the last bound: only +Inf */
    atomic_fetch_add_explicit(&x->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&x->sum_us, (uint64_t)us, memory_order_relaxed);
    atomic_fetch_add_explicit(&x->count, 1, memory_order_relaxed);
}

void
metrics_run_done(int reason)
{
    if (reason >= 0 && reason < N_REASONS)
        atomic_fetch_add_explicit(&M.runs[reason], 1, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&M.run_errors, 1, memory_order_relaxed);
}

void
metrics_image_build(bool ok, int64_t us)
{
    atomic_fetch_add_explicit(ok ? &M.builds_ok : &M.builds_failed, 1, memory_order_relaxed);
    metrics_observe_us(METRICS_BUILD_SECONDS, us);
}

void
metrics_engine_error(void)
{
    atomic_fetch_add_explicit(&M.engine_errors, 1, memory_order_relaxed);
    void (*fn)(void *) = atomic_load_explicit(&M.hook, memory_order_acquire);
    if (fn)
        fn(atomic_load_explicit(&M.hook_ud, memory_order_acquire));
}

void
metrics_set_engine_up(bool up)
{
    atomic_store_explicit(&M.engine_up, up ? 1 : 0, memory_order_relaxed);
}

void
metrics_set_engine_error_hook(void (*fn)(void *ud), void *ud)
{
    atomic_store_explicit(&M.hook_ud, ud, memory_order_release);
    atomic_store_explicit(&M.hook, fn, memory_order_release);
}

int
metrics_rpc_method(const char *service, const char *method)
{
    int n = atomic_load_explicit(&M.n_methods, memory_order_acquire);
    for (int i = 0; i < n; i++) {
        if (strcmp(M.services[i], service) == 0 && strcmp(M.methods[i], method) == 0)
            return i;
    }
    if (n >= RPC_METHODS_MAX)
        return -1;
    snprintf(M.services[n], NAME_MAX_LEN, "%s", service);
    snprintf(M.methods[n], NAME_MAX_LEN, "%s", method);
    atomic_store_explicit(&M.n_methods, n + 1, memory_order_release);
    return n;
}

void
metrics_rpc_done(int method_id, int code)
{
    if (method_id < 0 || method_id >= RPC_METHODS_MAX)
        return;
    if (code < 0 || code >= RPC_CODES)
        code = 2; /* UNKNOWN */
    atomic_fetch_add_explicit(&M.rpcs[method_id][code], 1, memory_order_relaxed);
}

void
metrics_reset(void)
{
    memset(&M, 0, sizeof(M));
    M.engine_up = 1;
}

/* ---- rendering ----------------------------------------------------------------------------- */

static int __attribute__((format(printf, 2, 3))) put(se_buf *b, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line))
        return -1;
    return se_buf_append(b, line, (size_t)n);
}

/* A label value in the exposition format: backslash, quote and newline
 * escaped, anything else non-printable dropped. */
static void
label_escape(char *dst, size_t cap, const char *src)
{
    size_t j = 0;
    for (; *src && j + 3 < cap; src++) {
        unsigned char ch = (unsigned char)*src;
        if (ch == '\\' || ch == '"') {
            dst[j++] = '\\';
            dst[j++] = (char)ch;
        } else if (ch == '\n') {
            dst[j++] = '\\';
            dst[j++] = 'n';
        } else if (ch >= 0x20 && ch < 0x7f) {
            dst[j++] = (char)ch;
        }
    }
    dst[j] = '\0';
}

static uint64_t
ld(atomic_uint_fast64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

static int
render_hist(se_buf *b, enum metrics_hist h)
{
    const struct hist_def *d = &hist_defs[h];
    struct hist *x = &M.hists[h];
    int r = put(b, "# HELP %s %s\n# TYPE %s histogram\n", d->name, d->help, d->name);
    uint64_t cum = 0;
    for (size_t i = 0; r == 0 && i < MAX_BUCKETS && d->bounds[i] > 0; i++) {
        cum += ld(&x->buckets[i]);
        r = put(b, "%s_bucket{le=\"%g\"} %llu\n", d->name, d->bounds[i], (unsigned long long)cum);
    }
    /* Read count after the buckets: +Inf is never below a finite bucket. */
    uint64_t count = ld(&x->count);
    if (count < cum + ld(&x->buckets[MAX_BUCKETS]))
        count = cum + ld(&x->buckets[MAX_BUCKETS]);
    if (r == 0)
        r = put(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", d->name,
                (unsigned long long)count, d->name, (double)ld(&x->sum_us) / 1e6, d->name,
                (unsigned long long)count);
    return r;
}

static long long
rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f)
        return -1;
    long long size = 0, resident = 0;
    int n = fscanf(f, "%lld %lld", &size, &resident);
    fclose(f);
    if (n != 2)
        return -1;
    return resident * sysconf(_SC_PAGESIZE);
}

int
metrics_render(se_buf *b, const char *version)
{
    char esc[2 * NAME_MAX_LEN + 4], esc2[2 * NAME_MAX_LEN + 4];
    int r = 0;
    label_escape(esc, sizeof(esc), version ? version : "");
    r |= put(b,
             "# HELP safeeval_build_info The running safeevald's version.\n"
             "# TYPE safeeval_build_info gauge\n"
             "safeeval_build_info{version=\"%s\"} 1\n",
             esc);

    r |= put(b, "# HELP safeeval_rpc_handled_total RPCs completed, by method and status code.\n"
                "# TYPE safeeval_rpc_handled_total counter\n");
    int n = atomic_load_explicit(&M.n_methods, memory_order_acquire);
    for (int i = 0; r == 0 && i < n; i++) {
        label_escape(esc, sizeof(esc), M.services[i]);
        label_escape(esc2, sizeof(esc2), M.methods[i]);
        for (int c = 0; r == 0 && c < RPC_CODES; c++) {
            uint64_t v = ld(&M.rpcs[i][c]);
            if (v)
                r = put(b,
                        "safeeval_rpc_handled_total{service=\"%s\",method=\"%s\",code=\"%s\"} "
                        "%llu\n",
                        esc, esc2, code_names[c], (unsigned long long)v);
        }
    }

    r |= put(b, "# HELP safeeval_runs_total Runs ended, by exit reason (error: no result).\n"
                "# TYPE safeeval_runs_total counter\n");
    for (int i = 0; r == 0 && i < N_REASONS; i++)
        r = put(b, "safeeval_runs_total{reason=\"%s\"} %llu\n", reason_names[i],
                (unsigned long long)ld(&M.runs[i]));
    r |= put(b, "safeeval_runs_total{reason=\"error\"} %llu\n",
             (unsigned long long)ld(&M.run_errors));

    for (int h = 0; r == 0 && h < METRICS_N_HISTS; h++)
        r = render_hist(b, (enum metrics_hist)h);

    r |= put(b,
             "# HELP safeeval_image_builds_total Sandbox image builds, by result.\n"
             "# TYPE safeeval_image_builds_total counter\n"
             "safeeval_image_builds_total{result=\"ok\"} %llu\n"
             "safeeval_image_builds_total{result=\"error\"} %llu\n",
             (unsigned long long)ld(&M.builds_ok), (unsigned long long)ld(&M.builds_failed));
    r |= put(b,
             "# HELP safeeval_sandboxes Live sandboxes.\n"
             "# TYPE safeeval_sandboxes gauge\n"
             "safeeval_sandboxes %lld\n"
             "# HELP safeeval_workers Worker containers of live sandboxes.\n"
             "# TYPE safeeval_workers gauge\n"
             "safeeval_workers %lld\n",
             (long long)atomic_load(&M.gauges[METRICS_SANDBOXES]),
             (long long)atomic_load(&M.gauges[METRICS_WORKERS]));
    r |= put(b,
             "# HELP safeeval_engine_errors_total Docker engine requests that got no answer.\n"
             "# TYPE safeeval_engine_errors_total counter\n"
             "safeeval_engine_errors_total %llu\n"
             "# HELP safeeval_engine_up 1 while the Docker engine answers the health check.\n"
             "# TYPE safeeval_engine_up gauge\n"
             "safeeval_engine_up %d\n",
             (unsigned long long)ld(&M.engine_errors), atomic_load(&M.engine_up));
    long long rss = rss_bytes();
    if (rss >= 0)
        r |= put(b,
                 "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                 "# TYPE process_resident_memory_bytes gauge\n"
                 "process_resident_memory_bytes %lld\n",
                 rss);
    return r ? -1 : 0;
}
