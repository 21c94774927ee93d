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

#include <systemd/sd-daemon.h>

#include "docker/docker.h"
#include "image/image.h"
#include "rpc/rpc.h"
#include "sandbox/sandbox.h"
#include "util/config.h"
#include "util/err.h"
#include "util/log.h"
#include "util/version.h"

/* Where the agent and the recipe are, relative to the folder of this binary:
 * the install layout (GNUInstallDirs: bin/ -> libexec/safeeval/ and
 * share/safeeval/sandbox/), which the build tree mirrors, so one rule finds
 * them in a build tree, an installed prefix or a moved copy of either, and
 * no build machine path is ever baked in. Set by service/CMakeLists.txt. */
#ifndef SAFEEVAL_AGENT_REL
#define SAFEEVAL_AGENT_REL "../libexec/safeeval/safeeval-agent"
#endif
#ifndef SAFEEVAL_RECIPE_REL
#define SAFEEVAL_RECIPE_REL "../share/safeeval/sandbox"
#endif

#define EXIT_USAGE 2

static struct settings {
    char *listen;
    bool insecure_listen;
    char *tls_cert, *tls_key, *tls_client_ca;
    char *tokens, *unix_identities, *socket_mode, *socket_group;
    uint32_t tenant_max_sandboxes, tenant_max_runs;
    uint64_t tenant_max_memory;
    unsigned socket_mode_bits;
    uint64_t max_request_bytes;
    uint32_t workers, queue_depth, grace_ms;
    char *log_level;
    bool log_json;
    char *metrics_listen;
    bool metrics_allow_remote;
    uint32_t health_interval_ms;
    char *docker_host, *docker_tls_ca, *docker_tls_cert, *docker_tls_key;
    uint64_t image_cache_bytes;
    uint32_t image_max_age;
    bool image_gc_own;
    uint32_t docker_timeout_ms;
    char *base_image, *recipe_dir, *agent, *wheelhouse, *default_python, *seccomp_profile;
    char *instance;
    uint32_t max_sandboxes, idle_timeout_s, max_idle_timeout_s, reap_interval_s;
    uint32_t max_concurrent_runs, max_queued_runs, worker_idle_s;
    uint64_t max_memory_total;
    config_list pools;
    uint32_t auto_pool, auto_pool_window_s;
    char *state_dir;
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
    /* who may call (README "Security") */
    {"tokens", CONFIG_STRING, NULL, 0, 0,
     "bearer tokens: 'name sha256-hex [admin|user] [max-sandboxes=N max-runs=N max-memory=SIZE]' "
     "lines; re-read on SIGHUP",
     &S.tokens},
    {"unix-identities", CONFIG_STRING, NULL, 0, 0,
     "unix socket peers: 'user|uid|* name|- [admin|user] [quotas]' lines; re-read on SIGHUP",
     &S.unix_identities},
    {"tenant-max-sandboxes", CONFIG_U32, "0", 0, 100000,
     "live sandboxes per tenant (0 = no quota; a tokens line may override)",
     &S.tenant_max_sandboxes},
    {"tenant-max-runs", CONFIG_U32, "0", 0, 1000000,
     "runs in flight per tenant (0 = no quota; a tokens line may override)", &S.tenant_max_runs},
    {"tenant-max-memory", CONFIG_BYTES, "0", 0, 1ull << 50,
     "memory_bytes x max_concurrent_runs summed over a tenant's sandboxes (0 = no quota)",
     &S.tenant_max_memory},
    {"socket-mode", CONFIG_STRING, "0660", 0, 0, "permission bits of the unix socket (octal)",
     &S.socket_mode},
    {"socket-group", CONFIG_STRING, NULL, 0, 0,
     "group (name or gid) given the unix socket and the folder created for it", &S.socket_group},
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
    {"metrics-listen", CONFIG_STRING, NULL, 0, 0,
     "HOST:PORT to serve Prometheus metrics on (GET /metrics; default: off)", &S.metrics_listen},
    {"metrics-allow-remote", CONFIG_BOOL, NULL, 0, 0,
     "allow --metrics-listen off the loopback (metrics are not authenticated)",
     &S.metrics_allow_remote},
    {"health-interval-ms", CONFIG_U32, "5000", 100, 600000,
     "how often health checks that the Docker engine answers", &S.health_interval_ms},
    /* the Docker engine */
    /* Unset by default: then the environment decides, as for the docker CLI. */
    {"docker-host", CONFIG_STRING, NULL, 0, 0,
     "Docker engine: unix:///PATH or tcp://HOST:PORT (default: $DOCKER_HOST, else "
     "unix:///var/run/docker.sock)",
     &S.docker_host},
    {"docker-tls-ca", CONFIG_STRING, NULL, 0, 0,
     "CA of a tcp engine (PEM; default with $DOCKER_TLS_VERIFY: $DOCKER_CERT_PATH/ca.pem)",
     &S.docker_tls_ca},
    {"docker-tls-cert", CONFIG_STRING, NULL, 0, 0,
     "client certificate for a tcp engine (default with $DOCKER_TLS_VERIFY: "
     "$DOCKER_CERT_PATH/cert.pem)",
     &S.docker_tls_cert},
    {"docker-tls-key", CONFIG_STRING, NULL, 0, 0,
     "client key for a tcp engine (default with $DOCKER_TLS_VERIFY: $DOCKER_CERT_PATH/key.pem)",
     &S.docker_tls_key},
    {"docker-timeout-ms", CONFIG_U32, "30000", 100, 3600000,
     "connect/idle timeout of short engine requests", &S.docker_timeout_ms},
    /* images */
    {"base-image", CONFIG_STRING, "python:{version}-slim", 0, 0,
     "base image template; {version} is the Python version", &S.base_image},
    {"recipe-dir", CONFIG_STRING, NULL, 0, 0,
     "folder with the sandbox Dockerfile.in and its files (default: "
     "<this binary's folder>/" SAFEEVAL_RECIPE_REL ")",
     &S.recipe_dir},
    {"agent", CONFIG_STRING, NULL, 0, 0,
     "the static safeeval-agent (default: <this binary's folder>/" SAFEEVAL_AGENT_REL ")",
     &S.agent},
    {"wheelhouse", CONFIG_STRING, NULL, 0, 0, "folder of wheels for offline pip (default: none)",
     &S.wheelhouse},
    {"default-python", CONFIG_STRING, "3.11", 0, 0, "Python version when a request gives none",
     &S.default_python},
    {"image-cache-bytes", CONFIG_BYTES, "0", 0, 1ull << 50,
     "sandbox images' own bytes (above their base) kept at most; the least recently used "
     "unused ones beyond go (0 = a tenth of the disk holding the engine's data root, at most 20G)",
     &S.image_cache_bytes},
    {"image-max-age", CONFIG_U32, "0", 0, 0,
     "seconds a sandbox image may stay unused before it is removed (0 = no age limit)",
     &S.image_max_age},
    {"image-gc-own", CONFIG_BOOL, NULL, 0, 0,
     "collect only the images this instance built (default: every sandbox image on the engine)",
     &S.image_gc_own},
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
    /* warm pools (README "Warm pools") */
    {"pool", CONFIG_LIST, NULL, 0, 0,
     "SPEC=N: N ready workers for creates of SPEC = VERSION[:MODULE,MODULE...] (3.11:numpy)",
     &S.pools},
    {"auto-pool", CONFIG_U32, "0", 0, 64,
     "ready workers for each spec created within --auto-pool-window-s (0 = off)", &S.auto_pool},
    {"auto-pool-window-s", CONFIG_U32, "600", 1, 604800,
     "how long a created spec keeps its automatic pool", &S.auto_pool_window_s},
    {"state-dir", CONFIG_STRING, "/var/lib/safeeval", 0, 0,
     "folder of the specs of pool-served sandboxes (a 0700 subfolder per --instance)",
     &S.state_dir},
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
    char *end = NULL;
    unsigned long mode = strtoul(S.socket_mode, &end, 8);
    if (!*S.socket_mode || *end || mode > 0777)
        return se_err_set(err, SE_INVALID, "--socket-mode: '%.16s' is not an octal mode like 0660",
                          S.socket_mode);
    S.socket_mode_bits = (unsigned)mode;
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

/* path (malloc'd) = the folder of this binary + "/" + rel. */
static int
beside_self(char **path, const char *rel, const char *flag, se_err *err)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n < 0)
        return se_err_errno(err, SE_INVALID, "--%s: cannot find this binary; set it", flag);
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    if (asprintf(path, "%s/%s", self, rel) < 0) {
        *path = NULL;
        return se_err_set(err, SE_INTERNAL, "out of memory");
    }
    /* Tidier in messages; a path that does not exist stays as it is and is
     * named by the check below. */
    char *real = realpath(*path, NULL);
    if (real) {
        free(*path);
        *path = real;
    }
    return 0;
}

/* Fills the defaults that depend on where we run or on another setting. */
static int
settings_derive(se_err *err)
{
    if (!S.agent && beside_self(&S.agent, SAFEEVAL_AGENT_REL, "agent", err) < 0)
        return -SE_INVALID;
    if (!S.recipe_dir && beside_self(&S.recipe_dir, SAFEEVAL_RECIPE_REL, "recipe-dir", err) < 0)
        return -SE_INVALID;
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
    /* The engine: flags and file first, then DOCKER_HOST and its TLS
     * variables, then the local socket. */
    docker_env env;
    docker_endpoint_env(&env);
    docker_endpoint given = {.host = S.docker_host,
                             .tls_ca = S.docker_tls_ca,
                             .tls_cert = S.docker_tls_cert,
                             .tls_key = S.docker_tls_key};
    docker_endpoint ep;
    if (docker_endpoint_resolve(&ep, &given, &env, err) < 0)
        return se_err_prefix(err, "--docker-host");
    free(S.docker_host);
    free(S.docker_tls_ca);
    free(S.docker_tls_cert);
    free(S.docker_tls_key);
    S.docker_host = ep.host;
    S.docker_tls_ca = ep.tls_ca;
    S.docker_tls_cert = ep.tls_cert;
    S.docker_tls_key = ep.tls_key;
    return 0;
}

/* What every image needs is there and sound: a daemon without them would
 * start and fail its first create. Each message names the flag to fix. */
static int
settings_check_files(se_err *err)
{
    if (image_agent_check(S.agent, err) < 0)
        return se_err_prefix(err, "--agent (the static safeeval-agent)");
    if (image_recipe_check(S.recipe_dir, err) < 0)
        return se_err_prefix(err, "--recipe-dir (the sandbox recipe folder)");
    if (sandbox_seccomp_check(S.seccomp_profile, err) < 0)
        return se_err_prefix(err, "--seccomp-profile");
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

/* Health's probe: the engine answers GET /_ping. */
static int
engine_probe(void *ud, se_err *err)
{
    return docker_ping(ud, err);
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
    if (r == CONFIG_HELP || r == CONFIG_VERSION || r == CONFIG_PRINT) {
        if (r == CONFIG_HELP)
            config_print_help(stdout, "safeevald",
                              "Runs untrusted Python in hardened sandboxes, "
                              "served over gRPC.",
                              settings_table, N_SETTINGS);
        else if (r == CONFIG_VERSION)
            printf("safeevald %s (build %s, agent %s)\n", se_version(), se_build_id(),
                   se_agent_build_id());
        else
            config_print_sample(stdout, "safeevald", settings_table, N_SETTINGS);
        config_free(settings_table, N_SETTINGS);
        return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
    }
    if (r == 0)
        r = settings_check(&err);
    if (r == 0)
        r = settings_derive(&err);
    if (r == 0)
        r = settings_check_files(&err);
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
        .tokens_file = S.tokens,
        .unix_identities_file = S.unix_identities,
        .tenant_max_sandboxes = S.tenant_max_sandboxes,
        .tenant_max_runs = S.tenant_max_runs,
        .tenant_max_memory = S.tenant_max_memory,
        .socket_group = S.socket_group,
        .health_interval_ms = S.health_interval_ms,
    };
    ro.socket_mode = S.socket_mode_bits; /* parsed by settings_check */
    if (r == 0)
        r = rpc_server_opts_check(&ro, &err);
    if (r == 0 && S.metrics_listen)
        r = rpc_metrics_check(S.metrics_listen, S.metrics_allow_remote, &err);
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
    rpc_metrics_server *metrics = NULL;

    docker_opts dopts = {.host = S.docker_host,
                         .tls_ca = S.docker_tls_ca,
                         .tls_cert = S.docker_tls_cert,
                         .tls_key = S.docker_tls_key,
                         .timeout_ms = S.docker_timeout_ms};
    if (docker_client_new(&dc, &dopts, &err) < 0) {
        log_error("cannot use the Docker engine at %s: %s", S.docker_host, err.msg);
        goto out;
    }
    log_info("safeevald %s (build %s, agent %s)", se_version(), se_build_id(), se_agent_build_id());
    log_info("docker engine %s, API %s", S.docker_host, docker_client_api_version(dc));
    log_info("agent %s, recipe %s, seccomp profile %s", S.agent, S.recipe_dir, S.seccomp_profile);
    if (S.image_cache_bytes == 0)
        S.image_cache_bytes =
            image_gc_default_budget(dc, strncmp(S.docker_host, "unix://", 7) == 0);
    if (S.image_max_age)
        log_info("image collection: sandbox images keep %llu bytes at most, unused %u s at most",
                 (unsigned long long)S.image_cache_bytes, S.image_max_age);
    else
        log_info("image collection: sandbox images keep %llu bytes at most, no age limit",
                 (unsigned long long)S.image_cache_bytes);

    image_opts iopts = {.base_template = S.base_image,
                        .recipe_dir = S.recipe_dir,
                        .agent_path = S.agent,
                        .wheelhouse = S.wheelhouse,
                        .instance = S.instance};
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
        .image_cache_bytes = S.image_cache_bytes,
        .image_max_age_s = S.image_max_age,
        .image_gc_own = S.image_gc_own,
        .pools = (const char *const *)S.pools.items,
        .n_pools = S.pools.n,
        .auto_pool = S.auto_pool,
        .auto_pool_window_s = S.auto_pool_window_s,
        .state_dir = S.state_dir,
    };
    if (sandbox_manager_new(&mgr, &scfg, dc, ic, &err) < 0) {
        log_error("sandbox manager: %s", err.msg);
        goto out;
    }
    /* Sandboxes that cannot be recovered leave containers behind, but new
     * ones still work: serve, and say so. */
    if (sandbox_manager_recover(mgr, &err) < 0)
        log_warn("recovering sandboxes of an earlier run: %s", err.msg);

    if (S.metrics_listen) {
        if (rpc_metrics_start(&metrics, S.metrics_listen, S.metrics_allow_remote, &err) < 0) {
            log_error("%s", err.msg);
            goto out;
        }
        log_info("metrics on http://%s/metrics", S.metrics_listen);
    }

    ro.health_probe = engine_probe;
    ro.health_probe_ud = dc;
    if (rpc_server_new(&srv, &ro, rpc_sandbox_methods, rpc_sandbox_methods_count, mgr, &err) < 0 ||
        rpc_server_start(srv, &err) < 0) {
        log_error("gRPC server: %s", err.msg);
        goto out;
    }
    log_info("listening on %s (%u workers, queue %u, max request %llu bytes)", S.listen, S.workers,
             S.queue_depth, (unsigned long long)S.max_request_bytes);
    /* Under systemd (Type=notify): serving now. Without NOTIFY_SOCKET this
     * does nothing. */
    sd_notifyf(0, "READY=1\nSTATUS=serving on %s", S.listen);

    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGTERM || sig == SIGINT) {
            log_info("%s: shutting down (grace %u ms)", strsignal(sig), S.grace_ms);
            sd_notify(0, "STOPPING=1\nSTATUS=draining calls");
            break;
        }
        if (sig == SIGHUP) {
            /* Each reloadable part re-reads its own files and keeps the old
             * ones when the new do not load. */
            rpc_server_reload(srv);
            continue;
        }
        log_debug("ignoring %s", strsignal(sig));
    }
    rpc_server_shutdown(srv);
    log_info("stopped");
    rc = 0;
out:
    rpc_server_free(srv);
    rpc_metrics_stop(metrics);
    if (mgr)
        sandbox_manager_free(mgr);
    if (ic)
        image_cache_free(ic);
    if (dc)
        docker_client_free(dc);
    config_free(settings_table, N_SETTINGS);
    return rc;
}
