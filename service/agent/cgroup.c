/* The worker container's cgroup: with one run per worker, its counters are
 * the run's exact meter (memory of every kind the kernel charges: anonymous,
 * tmpfs, SysV shm, memfds; CPU of every process; tasks) and the OOM killer
 * behind its memory limit is the run's fence. The files are opened once and
 * pread on every tick: no directory walk while a run is going. Inside the
 * container the counters are readable and nothing is writable. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"

/* memory.stat of cgroup v2 on 6.x is ~3 KiB; v1's with totals ~1.5 KiB. */
#define STAT_BUF 16384

static int
open_ro(const char *root, const char *rel)
{
    char path[256];
    if (snprintf(path, sizeof(path), "%s/%s", root, rel) >= (int)sizeof(path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return open(path, O_RDONLY | O_CLOEXEC);
}

/* The whole file (up to len - 1 bytes), NUL-terminated. */
static ssize_t
read_at0(int fd, char *buf, size_t len)
{
    ssize_t n;
    do
        n = pread(fd, buf, len - 1, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    buf[n] = 0;
    return n;
}

int
agent_cgroup_stat_value(uint64_t *out, const char *text, size_t len, const char *key)
{
    size_t kl = strlen(key);
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if ((size_t)(le - p) > kl && memcmp(p, key, kl) == 0 && p[kl] == ' ') {
            const char *q = p + kl + 1;
            if (q >= le || *q < '0' || *q > '9')
                return -1;
            uint64_t v = 0;
            for (; q < le && *q >= '0' && *q <= '9'; q++) {
                uint64_t d = (uint64_t)(*q - '0');
                if (v > (UINT64_MAX - d) / 10)
                    return -1;
                v = v * 10 + d;
            }
            *out = v;
            return 0;
        }
        p = le + 1;
    }
    return -1;
}

/* A file that holds one number ("123\n"). */
static int
read_number(int fd, uint64_t *out)
{
    char buf[64];
    ssize_t n = read_at0(fd, buf, sizeof(buf));
    if (n <= 0) {
        if (n == 0)
            errno = ENODATA;
        return -1;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (errno || end == buf || (*end && *end != '\n')) {
        errno = EPROTO;
        return -1;
    }
    *out = v;
    return 0;
}

static int
read_key(int fd, const char *key, uint64_t *out)
{
    static char buf[STAT_BUF];
    ssize_t n = read_at0(fd, buf, sizeof(buf));
    if (n < 0)
        return -1;
    if (agent_cgroup_stat_value(out, buf, (size_t)n, key) < 0) {
        errno = EPROTO;
        return -1;
    }
    return 0;
}

static int
read_memory(const agent_cgroup *cg, uint64_t *out)
{
    static char buf[STAT_BUF];
    ssize_t n = read_at0(cg->mem_stat_fd, buf, sizeof(buf));
    if (n < 0)
        return -1;
    uint64_t a, s;
    int ok;
    if (cg->version == AGENT_CG_V2) {
        ok = agent_cgroup_stat_value(&a, buf, (size_t)n, "anon") == 0 &&
             agent_cgroup_stat_value(&s, buf, (size_t)n, "shmem") == 0;
    } else {
        /* The hierarchical totals take in child cgroups (there are none
         * unless someone made one); older kernels may lack them. */
        ok = agent_cgroup_stat_value(&a, buf, (size_t)n, "total_rss") == 0 &&
             agent_cgroup_stat_value(&s, buf, (size_t)n, "total_shmem") == 0;
        if (!ok)
            ok = agent_cgroup_stat_value(&a, buf, (size_t)n, "rss") == 0 &&
                 agent_cgroup_stat_value(&s, buf, (size_t)n, "shmem") == 0;
    }
    if (!ok) {
        errno = EPROTO;
        return -1;
    }
    *out = a + s;
    return 0;
}

int
agent_cgroup_sample(const agent_cgroup *cg, agent_cg_sample *out)
{
    if (cg->version == AGENT_CG_NONE) {
        errno = ENOENT;
        return -1;
    }
    uint64_t cpu;
    if (read_memory(cg, &out->memory) < 0 || read_number(cg->pids_fd, &out->pids) < 0)
        return -1;
    if (cg->version == AGENT_CG_V2) {
        if (read_key(cg->cpu_fd, "usage_usec", &cpu) < 0 ||
            read_key(cg->oom_fd, "oom_kill", &out->oom_kills) < 0)
            return -1;
        out->cpu_ns = cpu * 1000;
    } else {
        if (read_number(cg->cpu_fd, &out->cpu_ns) < 0 ||
            read_key(cg->oom_fd, "oom_kill", &out->oom_kills) < 0)
            return -1;
    }
    return 0;
}

uint64_t
agent_cgroup_room(const agent_cgroup *cg)
{
    if (cg->version == AGENT_CG_NONE || cg->limit_fd < 0)
        return 0;
    char buf[64];
    ssize_t n = read_at0(cg->limit_fd, buf, sizeof(buf));
    if (n <= 0)
        return 0;
    if (strncmp(buf, "max", 3) == 0)
        return UINT64_MAX;
    char *end;
    errno = 0;
    unsigned long long limit = strtoull(buf, &end, 10);
    uint64_t used;
    if (errno || end == buf || read_memory(cg, &used) < 0)
        return 0;
    return limit > used ? limit - used : 0;
}

void
agent_cgroup_close(agent_cgroup *cg)
{
    int *fds[] = {&cg->mem_stat_fd, &cg->oom_fd, &cg->cpu_fd, &cg->pids_fd, &cg->limit_fd};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        if (*fds[i] >= 0)
            close(*fds[i]);
        *fds[i] = -1;
    }
    cg->version = AGENT_CG_NONE;
}

/* Opens rel, or else alt (may be NULL); on failure says which. */
static int
open_one(agent_cgroup *cg, int *fd, const char *root, const char *rel, const char *alt)
{
    *fd = open_ro(root, rel);
    if (*fd < 0 && alt)
        *fd = open_ro(root, alt);
    if (*fd < 0) {
        snprintf(cg->why, sizeof(cg->why), "cannot open %s/%s: %s", root, rel, strerror(errno));
        return -1;
    }
    return 0;
}

void
agent_cgroup_open(agent_cgroup *cg, const char *root)
{
    memset(cg, 0, sizeof(*cg));
    cg->mem_stat_fd = cg->oom_fd = cg->cpu_fd = cg->pids_fd = cg->limit_fd = -1;
    char probe[256];
    snprintf(probe, sizeof(probe), "%s/cgroup.controllers", root);
    int rc;
    if (access(probe, F_OK) == 0) {
        cg->version = AGENT_CG_V2;
        rc = open_one(cg, &cg->mem_stat_fd, root, "memory.stat", NULL);
        if (rc == 0)
            rc = open_one(cg, &cg->oom_fd, root, "memory.events", NULL);
        if (rc == 0)
            rc = open_one(cg, &cg->cpu_fd, root, "cpu.stat", NULL);
        if (rc == 0)
            rc = open_one(cg, &cg->pids_fd, root, "pids.current", NULL);
        if (rc == 0)
            rc = open_one(cg, &cg->limit_fd, root, "memory.max", NULL);
    } else {
        cg->version = AGENT_CG_V1;
        rc = open_one(cg, &cg->mem_stat_fd, root, "memory/memory.stat", NULL);
        if (rc == 0)
            rc = open_one(cg, &cg->oom_fd, root, "memory/memory.oom_control", NULL);
        if (rc == 0)
            rc = open_one(cg, &cg->cpu_fd, root, "cpuacct/cpuacct.usage",
                          "cpu,cpuacct/cpuacct.usage");
        if (rc == 0)
            rc = open_one(cg, &cg->pids_fd, root, "pids/pids.current", NULL);
        if (rc == 0)
            rc = open_one(cg, &cg->limit_fd, root, "memory/memory.limit_in_bytes", NULL);
    }
    /* Open is not enough: every counter must parse (memory.oom_control has
     * no oom_kill before Linux 4.13, and without it MEMORY_LIMIT cannot be
     * told apart from any other SIGKILL). */
    agent_cg_sample s;
    if (rc == 0 && agent_cgroup_sample(cg, &s) < 0) {
        snprintf(cg->why, sizeof(cg->why), "cgroup %s counters unreadable: %s",
                 cg->version == AGENT_CG_V2 ? "v2" : "v1", strerror(errno));
        rc = -1;
    }
    if (rc < 0) {
        char why[sizeof(cg->why)];
        memcpy(why, cg->why, sizeof(why));
        agent_cgroup_close(cg);
        memcpy(cg->why, why, sizeof(why));
    }
}

const char *
agent_cgroup_name(const agent_cgroup *cg)
{
    switch (cg->version) {
    case AGENT_CG_V1:
        return "v1";
    case AGENT_CG_V2:
        return "v2";
    default:
        return "";
    }
}
