/* safeevald: flags, signals, start and stop. Nothing else lives here: the
 * settings table below is the one description of every knob (flags, config
 * file and --help come from it). */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "docker/docker.h"
#include "image/image.h"
#include "rpc/rpc.h"
#include "sandbox/sandbox.h"
#include "util/config.h"
#include "util/err.h"
#include "util/log.h"

/* The recipe folder of the source tree this binary was built from; packages
 * override it with -DSAFEEVAL_RECIPE_DIR. */
#ifndef SAFEEVAL_RECIPE_DIR
#define SAFEEVAL_RECIPE_DIR "/usr/share/safeeval/sandbox"
#endif

#define EXIT_USAGE 2

static struct settings {
    char *listen;
    bool insecure_listen;
    char *tls_cert, *tls_key, *tls_client_ca;
    uint64_t max_request_bytes;
    uint32_t workers, queue_depth, grace_ms;
    char *log_level;
    bool log_json;
    char *docker_host, *docker_tls_ca, *docker_tls_cert, *docker_tls_key;
    uint32_t docker_timeout_ms;
    char *base_image, *recipe_dir, *agent, *wheelhouse, *default_python, *seccomp_profile;
    char *instance;
    uint32_t max_sandboxes, idle_timeout_s, max_idle_timeout_s, reap_interval_s;
    uint32_t max_concurrent_runs, max_queued_runs, worker_idle_s;
    uint64_t max_memory_total;
    uint32_t default_wall_ms, default_cpu_ms, default_max_processes;
    uint64_t default_memory_bytes, default_max_output_bytes, default_max_file_bytes;
    uint32_t max_wall_ms, max_cpu_ms, max_processes;
    uint64_t max_memory_bytes, max_output_bytes, max_file_bytes;
    uint32_t default_max_collect_files, max_collect_files;
    uint64_t default_max_collect_bytes, max_collect_bytes;
} S;

#define KIB 1024ull
#define MIB (1024ull * KIB)
#define GIB (1024ull * MIB)
#define DAY_MS 86400000ull

static const config_opt settings_table[] = {
    /* the gRPC server */
    {"listen", CONFIG_STRING, "unix:/run/safeeval/safeevald.sock", 0, 0,
     "unix:PATH or HOST:PORT to serve on", &S.listen},
    {"insecure-listen", CONFIG_BOOL, NULL, 0, 0,
     "allow plain text on a TCP address off the loopback", &S.insecure_listen},
    {"tls-cert", CONFIG_STRING, NULL, 0, 0, "server certificate chain (PEM)", &S.tls_cert},
    {"tls-key", CONFIG_STRING, NULL, 0, 0, "server private key (PEM)", &S.tls_key},
    {"tls-client-ca", CONFIG_STRING, NULL, 0, 0,
     "CA (PEM) client certificates must chain to (mTLS)", &S.tls_client_ca},
    {"max-request-bytes", CONFIG_BYTES, "16M", 1 * KIB, 2 * GIB - 1,
     "largest request message accepted", &S.max_request_bytes},
    /* A run waiting in its sandbox's queue holds a thread: room for many. */
    {"workers", CONFIG_U32, "64", 1, 1024, "worker threads running calls", &S.workers},
    {"queue-depth", CONFIG_U32, "64", 1, 65536,
     "calls waiting for a worker before RESOURCE_EXHAUSTED", &S.queue_depth},
    {"grace-ms", CONFIG_U32, "10000", 0, 3600000, "on SIGTERM, time in-flight calls get to finish",
     &S.grace_ms},
    {"log-level", CONFIG_STRING, "info", 0, 0, "error, warn, info or debug", &S.log_level},
    {"log-json", CONFIG_BOOL, NULL, 0, 0, "log JSON lines instead of text", &S.log_json},
    /* the Docker engine */
    {"docker-host", CONFIG_STRING, "unix:///var/run/docker.sock", 0, 0,
     "Docker engine: unix:///PATH or tcp://HOST:PORT", &S.docker_host},
    {"docker-tls-ca", CONFIG_STRING, NULL, 0, 0, "CA of a tcp engine (PEM)", &S.docker_tls_ca},
    {"docker-tls-cert", CONFIG_STRING, NULL, 0, 0, "client certificate for a tcp engine",
     &S.docker_tls_cert},
    {"docker-tls-key", CONFIG_STRING, NULL, 0, 0, "client key for a tcp engine", &S.docker_tls_key},
    {"docker-timeout-ms", CONFIG_U32, "30000", 100, 3600000,
     "connect/idle timeout of short engine requests", &S.docker_timeout_ms},
    /* images */
    {"base-image", CONFIG_STRING, "python:{version}-slim", 0, 0,
     "base image template; {version} is the Python version", &S.base_image},
    {"recipe-dir", CONFIG_STRING, SAFEEVAL_RECIPE_DIR, 0, 0,
     "folder with the sandbox Dockerfile.in and its files", &S.recipe_dir},
    {"agent", CONFIG_STRING, NULL, 0, 0, "the static safeeval-agent (default: next to this binary)",
     &S.agent},
    {"wheelhouse", CONFIG_STRING, NULL, 0, 0, "folder of wheels for offline pip (default: none)",
     &S.wheelhouse},
    {"default-python", CONFIG_STRING, "3.11", 0, 0, "Python version when a request gives none",
     &S.default_python},
    /* sandboxes */
    {"instance", CONFIG_STRING, "default", 0, 0,
     "name labelling this daemon's containers ([a-z0-9-]); daemons sharing one engine need "
     "different names",
     &S.instance},
    {"max-sandboxes", CONFIG_U32, "64", 1, 100000, "live sandboxes at most", &S.max_sandboxes},
    {"idle-timeout-s", CONFIG_U32, "1800", 1, 0, "default idle time before a sandbox is reaped",
     &S.idle_timeout_s},
    {"max-idle-timeout-s", CONFIG_U32, "86400", 1, 0, "largest idle timeout a client may ask",
     &S.max_idle_timeout_s},
    {"reap-interval-s", CONFIG_U32, "10", 1, 3600, "how often the idle reaper looks",
     &S.reap_interval_s},
    {"max-concurrent-runs", CONFIG_U32, "4", 1, 256,
     "runs at once in one sandbox (worker containers at most; a create may ask for fewer)",
     &S.max_concurrent_runs},
    {"max-queued-runs", CONFIG_U32, "256", 1, 65536,
     "runs of one sandbox waiting for a free worker before RESOURCE_EXHAUSTED", &S.max_queued_runs},
    {"max-memory-total", CONFIG_BYTES, "0", 0, 1ull << 50,
     "the sum of every worker's memory limit (0 = three quarters of this host's memory)",
     &S.max_memory_total},
    {"worker-idle-s", CONFIG_U32, "60", 1, 86400,
     "an extra worker unused this long is removed (each sandbox keeps one)", &S.worker_idle_s},
    {"seccomp-profile", CONFIG_STRING, NULL, 0, 0,
     "container seccomp profile (default: <recipe-dir>/seccomp.json)", &S.seccomp_profile},
    /* run limits: defaults for a sandbox that gives none, and ceilings */
    {"default-wall-ms", CONFIG_U32, "10000", 1, DAY_MS, "default wall time of a run",
     &S.default_wall_ms},
    {"default-cpu-ms", CONFIG_U32, "10000", 1, DAY_MS, "default CPU time of a run",
     &S.default_cpu_ms},
    {"default-memory-bytes", CONFIG_BYTES, "256M", 16 * MIB, 1024 * GIB, "default memory of a run",
     &S.default_memory_bytes},
    {"default-max-processes", CONFIG_U32, "64", 1, 65536, "default processes of a run",
     &S.default_max_processes},
    {"default-max-output-bytes", CONFIG_BYTES, "1M", 1 * KIB, 24 * MIB,
     "default bytes kept per output stream", &S.default_max_output_bytes},
    /* As large as the default memory: a /dev/shm block (multiprocessing's
     * shared memory) is a file too, and tmpfs files count as memory anyway. */
    {"default-max-file-bytes", CONFIG_BYTES, "256M", 1 * KIB, 1024 * GIB,
     "default largest file a run may write", &S.default_max_file_bytes},
    /* Collected files come back in the result message, held whole by the
     * daemon until it is sent (a default that fits gRPC's usual 4 MiB
     * receive limit with the default output). */
    {"default-max-collect-files", CONFIG_U32, "64", 1, 4096,
     "default files a run's collect brings back", &S.default_max_collect_files},
    {"default-max-collect-bytes", CONFIG_BYTES, "1M", 1 * KIB, 256 * MIB,
     "default bytes of a run's collected files, all together", &S.default_max_collect_bytes},
    {"max-wall-ms", CONFIG_U32, "300000", 1, DAY_MS, "wall time ceiling", &S.max_wall_ms},
    {"max-cpu-ms", CONFIG_U32, "300000", 1, DAY_MS, "CPU time ceiling", &S.max_cpu_ms},
    {"max-memory-bytes", CONFIG_BYTES, "4G", 16 * MIB, 1024 * GIB, "memory ceiling",
     &S.max_memory_bytes},
    {"max-processes", CONFIG_U32, "1024", 1, 65536, "processes ceiling", &S.max_processes},
    /* Both streams of a run come back in one response message, held whole
     * by the daemon until it is sent: bounded per stream. */
    {"max-output-bytes", CONFIG_BYTES, "16M", 1 * KIB, 24 * MIB, "output ceiling per stream",
     &S.max_output_bytes},
    {"max-file-bytes", CONFIG_BYTES, "1G", 1 * KIB, 1024 * GIB, "file size ceiling",
     &S.max_file_bytes},
    {"max-collect-files", CONFIG_U32, "1024", 1, 4096, "collected files ceiling",
     &S.max_collect_files},
    {"max-collect-bytes", CONFIG_BYTES, "64M", 1 * KIB, 256 * MIB,
     "collected bytes ceiling (all files of a run)", &S.max_collect_bytes},
};
#define N_SETTINGS (sizeof(settings_table) / sizeof(settings_table[0]))

/* Rules that span two settings. */
static int
settings_check(se_err *err)
{
    if (log_set_level_name(S.log_level) < 0)
        return se_err_set(err, SE_INVALID, "--log-level: '%.32s' is not error, warn, info or debug",
                          S.log_level);
#define CEIL(d, m)                                                                                 \
    if (S.d > S.m)                                                                                 \
        return se_err_set(err, SE_INVALID, "--%s is above --%s", #d, #m);
    CEIL(default_wall_ms, max_wall_ms)
    CEIL(default_cpu_ms, max_cpu_ms)
    CEIL(default_memory_bytes, max_memory_bytes)
    CEIL(default_max_processes, max_processes)
    CEIL(default_max_output_bytes, max_output_bytes)
    CEIL(default_max_file_bytes, max_file_bytes)
    CEIL(default_max_collect_files, max_collect_files)
    CEIL(default_max_collect_bytes, max_collect_bytes)
    CEIL(idle_timeout_s, max_idle_timeout_s)
#undef CEIL
    return 0;
}

/* Fills the defaults that depend on where we run or on another setting. */
static int
settings_derive(se_err *err)
{
    if (!S.agent) {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n < 0)
            return se_err_errno(err, SE_INVALID, "--agent: cannot find this binary");
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash)
            *slash = '\0';
        if (asprintf(&S.agent, "%s/safeeval-agent", self) < 0)
            return se_err_set(err, SE_INTERNAL, "out of memory");
    }
    if (S.max_memory_total == 0) {
        long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        if (pages <= 0 || page <= 0)
            return se_err_set(err, SE_INVALID, "--max-memory-total: host memory unknown; set it");
        S.max_memory_total = (uint64_t)pages * (uint64_t)page / 4 * 3;
    }
    if (!S.seccomp_profile && asprintf(&S.seccomp_profile, "%s/seccomp.json", S.recipe_dir) < 0) {
        S.seccomp_profile = NULL;
        return se_err_set(err, SE_INTERNAL, "out of memory");
    }
    return 0;
}

static sandbox_limits
limits_of(uint32_t wall, uint32_t cpu, uint64_t mem, uint32_t procs, uint64_t out, uint64_t file,
          uint32_t collect_files, uint64_t collect_bytes)
{
    return (sandbox_limits){.wall_time_ms = wall,
                            .cpu_time_ms = cpu,
                            .memory_bytes = mem,
                            .max_processes = procs,
                            .max_output_bytes = out,
                            .max_file_bytes = file,
                            .max_collect_files = collect_files,
                            .max_collect_bytes = collect_bytes};
}

int
main(int argc, char **argv)
{
    /* Before any thread exists (gRPC, curl and ours inherit the mask): the
     * signals are taken with sigwait below and nowhere else. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    se_err err;
    se_err_clear(&err);
    int r = config_load(settings_table, N_SETTINGS, argc, argv, &err);
    if (r == CONFIG_HELP) {
        config_print_help(stdout, "safeevald",
                          "Runs untrusted Python in hardened sandboxes, "
                          "served over gRPC.",
                          settings_table, N_SETTINGS);
        config_free(settings_table, N_SETTINGS);
        return 0;
    }
    if (r == 0)
        r = settings_check(&err);
    if (r == 0)
        r = settings_derive(&err);
    rpc_server_opts ro = {
        .listen = S.listen,
        .insecure_listen = S.insecure_listen,
        .tls_cert = S.tls_cert,
        .tls_key = S.tls_key,
        .tls_client_ca = S.tls_client_ca,
        .max_request_bytes = (size_t)S.max_request_bytes,
        .workers = S.workers,
        .queue_depth = S.queue_depth,
        .grace_ms = S.grace_ms,
    };
    if (r == 0)
        r = rpc_server_opts_check(&ro, &err);
    if (r < 0) {
        fprintf(stderr, "safeevald: %s\n", err.msg);
        config_free(settings_table, N_SETTINGS);
        return EXIT_USAGE;
    }
    log_set_json(S.log_json);

    int rc = 1;
    docker_client *dc = NULL;
    image_cache *ic = NULL;
    sandbox_manager *mgr = NULL;
    rpc_server *srv = NULL;

    docker_opts dopts = {.host = S.docker_host,
                         .tls_ca = S.docker_tls_ca,
                         .tls_cert = S.docker_tls_cert,
                         .tls_key = S.docker_tls_key,
                         .timeout_ms = S.docker_timeout_ms};
    if (docker_client_new(&dc, &dopts, &err) < 0) {
        log_error("cannot use the Docker engine at %s: %s", S.docker_host, err.msg);
        goto out;
    }
    log_info("docker engine %s, API %s", S.docker_host, docker_client_api_version(dc));

    image_opts iopts = {.base_template = S.base_image,
                        .recipe_dir = S.recipe_dir,
                        .agent_path = S.agent,
                        .wheelhouse = S.wheelhouse};
    if (image_cache_new(&ic, dc, &iopts, &err) < 0) {
        log_error("image cache: %s", err.msg);
        goto out;
    }

    sandbox_config scfg = {
        .instance = S.instance,
        .max_sandboxes = S.max_sandboxes,
        .default_idle_timeout_s = S.idle_timeout_s,
        .max_idle_timeout_s = S.max_idle_timeout_s,
        .default_python = S.default_python,
        .default_limits =
            limits_of(S.default_wall_ms, S.default_cpu_ms, S.default_memory_bytes,
                      S.default_max_processes, S.default_max_output_bytes, S.default_max_file_bytes,
                      S.default_max_collect_files, S.default_max_collect_bytes),
        .max_limits = limits_of(S.max_wall_ms, S.max_cpu_ms, S.max_memory_bytes, S.max_processes,
                                S.max_output_bytes, S.max_file_bytes, S.max_collect_files,
                                S.max_collect_bytes),
        .seccomp_profile = S.seccomp_profile,
        .max_concurrent_runs = S.max_concurrent_runs,
        .max_queued_runs = S.max_queued_runs,
        .max_memory_total = S.max_memory_total,
        .worker_idle_s = S.worker_idle_s,
        .reap_interval_s = S.reap_interval_s,
    };
    if (sandbox_manager_new(&mgr, &scfg, dc, ic, &err) < 0) {
        log_error("sandbox manager: %s", err.msg);
        goto out;
    }
    /* Sandboxes that cannot be recovered leave containers behind, but new
     * ones still work: serve, and say so. */
    if (sandbox_manager_recover(mgr, &err) < 0)
        log_warn("recovering sandboxes of an earlier run: %s", err.msg);

    if (rpc_server_new(&srv, &ro, rpc_sandbox_methods, rpc_sandbox_methods_count, mgr, &err) < 0 ||
        rpc_server_start(srv, &err) < 0) {
        log_error("gRPC server: %s", err.msg);
        goto out;
    }
    log_info("listening on %s (%u workers, queue %u, max request %llu bytes)", S.listen, S.workers,
             S.queue_depth, (unsigned long long)S.max_request_bytes);

    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGTERM || sig == SIGINT) {
            log_info("%s: shutting down (grace %u ms)", strsignal(sig), S.grace_ms);
            break;
        }
        log_debug("ignoring %s", strsignal(sig));
    }
    rpc_server_shutdown(srv);
    log_info("stopped");
    rc = 0;
out:
    rpc_server_free(srv);
    if (mgr)
        sandbox_manager_free(mgr);
    if (ic)
        image_cache_free(ic);
    if (dc)
        docker_client_free(dc);
    config_free(settings_table, N_SETTINGS);
    return rc;
}
