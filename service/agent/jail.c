/* What a jail is made of: the bwrap command line and the sealed memfds that
 * carry the script, the input files and stdin into it. bwrap gives the jail
 * new user, pid, net, ipc, uts and cgroup namespaces, a read-only view of
 * the image, and three private tmpfs (/work, /tmp, /dev/shm); our helper
 * (`--jail-child`) is its pid 1 (`--as-pid-1`): there is no bwrap process
 * inside the jail that the code could write into. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent.h"

#define JAIL_NOFILE 256
#define MIB (1024ull * 1024)

/* ---- argv builder: every string is owned ---- */

struct argv_b {
    char **v;
    size_t n, cap;
    bool oom;
};

static void
argv_push(struct argv_b *a, const char *s)
{
    if (a->oom)
        return;
    if (a->n + 2 > a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 128;
        char **nv = realloc(a->v, nc * sizeof(*nv));
        if (!nv) {
            a->oom = true;
            return;
        }
        a->v = nv;
        a->cap = nc;
    }
    char *d = strdup(s);
    if (!d) {
        a->oom = true;
        return;
    }
    a->v[a->n++] = d;
    a->v[a->n] = NULL;
}

static void __attribute__((format(printf, 2, 3))) argv_pushf(struct argv_b *a, const char *fmt, ...)
{
    char tmp[AGENT_MAX_PATH + 64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        a->oom = true;
        return;
    }
    argv_push(a, tmp);
}

static void
argv_strv_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

/* A sealed memfd holding data, at offset 0, close-on-exec. The seals make
 * it read-only for good: the jail holds stdin's memfd as its fd 0, and
 * neither it nor a reopen through /proc/self/fd can change or grow it. */
static int
memfd_with(const uint8_t *data, size_t len, se_err *err)
{
    int fd = memfd_create("safeeval-in", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return se_err_errno(err, SE_INTERNAL, "memfd_create");
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            se_err_errno(err, SE_INTERNAL, "write memfd");
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    if (lseek(fd, 0, SEEK_SET) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
        se_err_errno(err, SE_INTERNAL, "seal memfd");
        close(fd);
        return -1;
    }
    return fd;
}

/* --dir for every parent of path under /work, each once while seen has room
 * (a repeated --dir is harmless to bwrap; skipping it keeps the line short). */
static void
push_parent_dirs(struct argv_b *a, const char *path, char (*seen)[AGENT_MAX_PATH + 1],
                 size_t *n_seen, size_t max_seen)
{
    char buf[AGENT_MAX_PATH + 1];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *s = strchr(buf, '/'); s; s = strchr(s + 1, '/')) {
        *s = 0;
        bool dup = false;
        for (size_t i = 0; i < *n_seen && !dup; i++)
            dup = strcmp(seen[i], buf) == 0;
        if (!dup) {
            if (*n_seen < max_seen)
                snprintf(seen[(*n_seen)++], AGENT_MAX_PATH + 1, "%s", buf);
            argv_push(a, "--dir");
            argv_pushf(a, AGENT_WORKDIR "/%s", buf);
        }
        *s = '/';
    }
}

/* The merged-usr links (/bin -> usr/bin, ...) as the image has them; real
 * directories are bound read-only instead. */
static void
push_root_links(struct argv_b *a)
{
    static const char *const tops[] = {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"};
    for (size_t i = 0; i < sizeof(tops) / sizeof(tops[0]); i++) {
        struct stat st;
        if (lstat(tops[i], &st) < 0)
            continue;
        if (S_ISLNK(st.st_mode)) {
            char target[256];
            ssize_t n = readlink(tops[i], target, sizeof(target) - 1);
            if (n <= 0)
                continue;
            target[n] = 0;
            argv_push(a, "--symlink");
            argv_push(a, target);
            argv_push(a, tops[i]);
        } else if (S_ISDIR(st.st_mode)) {
            argv_push(a, "--ro-bind");
            argv_push(a, tops[i]);
            argv_push(a, tops[i]);
        }
    }
}

/* A private tmpfs of `bytes`. The sizes are not the fence: all three
 * together live in the worker's memory cgroup, whose limit is the run's
 * memory. Each may hold all of it (a shared-memory block as big as the run
 * may use is fine). */
static void
push_tmpfs(struct argv_b *a, const char *dest, uint64_t bytes)
{
    argv_push(a, "--size");
    argv_pushf(a, "%llu", (unsigned long long)((bytes + 4095) & ~4095ull));
    argv_push(a, "--tmpfs");
    argv_push(a, dest);
}

/* The fences every jail has, a run's or the zygote's: new user, pid, net,
 * ipc, uts and cgroup namespaces, bwrap gone with the agent, a new session
 * (no TIOCSTI into the agent's terminal), the helper as pid 1 (no bwrap
 * inside), the image's system read-only, the agent's binary as the helper,
 * a /proc of the new pid namespace and a minimal /dev. */
static void
push_outer(struct argv_b *a, const char *self)
{
    static const char *const flags[] = {
        "--unshare-user",    "--unshare-pid", "--unshare-net",
        "--unshare-ipc",     "--unshare-uts", "--unshare-cgroup-try",
        "--die-with-parent", "--new-session", "--as-pid-1",
    };
    argv_push(a, AGENT_BWRAP);
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        argv_push(a, flags[i]);
    argv_push(a, "--ro-bind");
    argv_push(a, "/usr");
    argv_push(a, "/usr");
    push_root_links(a);
    /* The image's copy of what a run needs of /etc (alternatives,
     * ld.so.cache, ssl, localtime, passwd, group, nsswitch.conf,
     * mime.types, python3*: docker/sandbox/Dockerfile.in), one mount. */
    argv_push(a, "--ro-bind");
    argv_push(a, AGENT_JAIL_ETC);
    argv_push(a, "/etc");
    argv_push(a, "--ro-bind");
    argv_push(a, AGENT_VENV_ROOT);
    argv_push(a, AGENT_VENV_ROOT);
    argv_push(a, "--ro-bind");
    argv_push(a, self);
    argv_push(a, AGENT_JAIL_SELF);
    argv_push(a, "--proc");
    argv_push(a, "/proc");
    argv_push(a, "--dev");
    argv_push(a, "/dev");
}

/* After the jail's own mounts: / and /dev read-only again (what was mounted
 * writable before stays so), cwd, and the environment of a run and nothing
 * else: unbuffered, strict UTF-8 output (what the run printed before a kill
 * is in the pipe, and its text is what a local python3 in a UTF-8 terminal
 * would write). */
static void
push_seal(struct argv_b *a, const char *cwd)
{
    argv_push(a, "--remount-ro");
    argv_push(a, "/dev");
    argv_push(a, "--remount-ro");
    argv_push(a, "/");
    argv_push(a, "--chdir");
    argv_push(a, cwd);
    argv_push(a, "--clearenv");
    static const char *const base_env[][2] = {
        {"PATH", "/opt/safeeval/venv/bin:/usr/local/bin:/usr/bin:/bin"},
        {"HOME", AGENT_WORKDIR},
        {"TMPDIR", "/tmp"},
        {"LANG", "C.UTF-8"},
        {"PYTHONDONTWRITEBYTECODE", "1"},
        {"PYTHONUNBUFFERED", "1"},
        {"PYTHONIOENCODING", "utf-8:strict"},
        {"OPENBLAS_NUM_THREADS", "1"},
    };
    for (size_t i = 0; i < sizeof(base_env) / sizeof(base_env[0]); i++) {
        argv_push(a, "--setenv");
        argv_push(a, base_env[i][0]);
        argv_push(a, base_env[i][1]);
    }
}

/* --file from a new sealed memfd holding data, to path under the work dir. */
static int
push_file(agent_jail *j, struct argv_b *a, const ProtobufCBinaryData *data, const char *path,
          se_err *err)
{
    int fd = memfd_with(data->data, data->len, err);
    if (fd < 0)
        return -SE_INTERNAL;
    j->in_fds[j->n_in++] = fd;
    argv_push(a, "--file");
    argv_pushf(a, "%d", fd);
    argv_pushf(a, AGENT_WORKDIR "/%s", path);
    return 0;
}

/* What one bwrap command line is built from. */
struct jail_spec {
    agent_prep_key key;       /* the limits bwrap and the helper fix, the file
                               * name (borrowed) */
    const agent_request *req; /* the inputs, args, env; NULL for a prepared jail */
    int delivery_fd;          /* a prepared jail's delivery pipe; -1 */
    int collect_fd;           /* the files-back pipe when req collects; -1 */
    int bpf_fd;               /* the run's seccomp program (agent_run_env) */
};

static int
jail_argv(agent_jail *j, const struct jail_spec *sp, const char *self, int status_fd, se_err *err)
{
    memset(j, 0, sizeof(*j));
    j->stdin_fd = -1;
    const agent_request *req = sp->req;
    struct argv_b a = {0};
    int rc = 0;

    push_outer(&a, self);
    push_tmpfs(&a, "/dev/shm", sp->key.memory_bytes);
    push_tmpfs(&a, "/tmp", sp->key.memory_bytes);
    /* A prepared jail's inputs come later, within AGENT_WORK_SPARE. */
    uint64_t input = 0;
    if (req) {
        input = req->script.len + 4096;
        for (size_t i = 0; i < req->n_files; i++)
            input += req->files[i]->content.len + 4096;
    }
    push_tmpfs(&a, AGENT_WORKDIR,
               sp->key.memory_bytes + (input > AGENT_WORK_SPARE ? input : AGENT_WORK_SPARE));

    if (req) {
        if ((rc = push_file(j, &a, &req->script, req->filename, err)) < 0)
            goto out;
        static char seen[64][AGENT_MAX_PATH + 1];
        size_t n_seen = 0;
        for (size_t i = 0; i < req->n_files; i++) {
            const Safeeval__V1__File *f = req->files[i];
            push_parent_dirs(&a, f->path, seen, &n_seen, 64);
            if ((rc = push_file(j, &a, &f->content, f->path, err)) < 0)
                goto out;
        }
        j->stdin_fd = memfd_with(req->stdin.data, req->stdin.len, err);
        if (j->stdin_fd < 0) {
            rc = -SE_INTERNAL;
            goto out;
        }
    }
    /* Nothing outside /work, /tmp and /dev/shm is writable. */
    push_seal(&a, AGENT_WORKDIR);
    for (size_t i = 0; req && i < req->n_env; i++) {
        argv_push(&a, "--setenv");
        argv_push(&a, req->env[i]->key);
        argv_push(&a, req->env[i]->value);
    }
    argv_push(&a, "--");
    argv_push(&a, AGENT_JAIL_SELF);
    argv_push(&a, "--jail-child");
    argv_pushf(&a, "%d", status_fd);
    argv_pushf(&a, "%u", sp->key.cpu_time_ms);
    argv_pushf(&a, "%u", sp->key.max_processes);
    argv_pushf(&a, "%llu", (unsigned long long)sp->key.max_file_bytes);
    argv_pushf(&a, "%d", JAIL_NOFILE);
    argv_pushf(&a, "%d", sp->bpf_fd);
    if (req && req->n_collect) {
        argv_push(&a, "--collect");
        argv_pushf(&a, "%d", sp->collect_fd);
        argv_pushf(&a, "%u", req->limits->max_collect_files);
        argv_pushf(&a, "%llu", (unsigned long long)req->limits->max_collect_bytes);
        argv_pushf(&a, "%zu", req->n_collect);
        for (size_t i = 0; i < req->n_collect; i++)
            argv_push(&a, req->collect[i]);
    } else if (sp->delivery_fd >= 0) {
        argv_push(&a, "--prepared");
        argv_pushf(&a, "%d", sp->delivery_fd);
    }
    argv_push(&a, "--");
    argv_push(&a, AGENT_PYTHON);
    argv_pushf(&a, AGENT_WORKDIR "/%s", sp->key.filename);
    for (size_t i = 0; req && i < req->n_args; i++)
        argv_push(&a, req->args[i]);
    if (a.oom)
        rc = se_err_set(err, SE_INTERNAL, "jail command line: out of memory");
out:
    j->argv = a.v;
    if (rc < 0)
        agent_jail_free(j);
    return rc;
}

int
agent_jail_build(agent_jail *j, const agent_request *req, const char *self, int status_fd,
                 int collect_fd, int bpf_fd, se_err *err)
{
    const Safeeval__V1__Limits *l = req->limits;
    struct jail_spec sp = {
        .key =
            {
                .memory_bytes = l->memory_bytes,
                .max_file_bytes = l->max_file_bytes,
                .cpu_time_ms = l->cpu_time_ms,
                .max_processes = l->max_processes,
                .filename = req->filename,
            },
        .req = req,
        .delivery_fd = -1,
        .collect_fd = collect_fd,
        .bpf_fd = bpf_fd,
    };
    return jail_argv(j, &sp, self, status_fd, err);
}

int
agent_jail_build_prepared(agent_jail *j, const agent_prep_key *k, const char *self, int status_fd,
                          int delivery_fd, int bpf_fd, se_err *err)
{
    struct jail_spec sp = {
        .key = *k,
        .req = NULL,
        .delivery_fd = delivery_fd,
        .collect_fd = -1,
        .bpf_fd = bpf_fd,
    };
    return jail_argv(j, &sp, self, status_fd, err);
}

void
agent_jail_close_fds(agent_jail *j)
{
    for (size_t i = 0; i < j->n_in; i++)
        close(j->in_fds[i]);
    j->n_in = 0;
    if (j->stdin_fd >= 0)
        close(j->stdin_fd);
    j->stdin_fd = -1;
}

void
agent_jail_free(agent_jail *j)
{
    agent_jail_close_fds(j);
    argv_strv_free(j->argv);
    j->argv = NULL;
}

/* ---- the zygote's jail (zygote.c) ---- */

int
agent_jail_memfd(const uint8_t *data, size_t len, se_err *err)
{
    return memfd_with(data, len, err);
}

/* The same outer fences as a run's jail (namespaces, read-only system, no
 * writable path at all: the zygote keeps nothing on disk), with
 * `--zygote-init` as its pid 1, which loads the zygote's filter and becomes
 * python3 running zygote.py. /work, /tmp and /dev/shm are only mount
 * points here: each run mounts its own fresh tmpfs on them. */
int
agent_jail_build_zygote(char ***out, const char *self, int sock_fd, int bpf_fd,
                        char *const *modules, size_t n_modules, se_err *err)
{
    struct argv_b a = {0};
    *out = NULL;
    push_outer(&a, self);
    argv_push(&a, "--dir");
    argv_push(&a, "/dev/shm");
    argv_push(&a, "--dir");
    argv_push(&a, "/tmp");
    argv_push(&a, "--dir");
    argv_push(&a, AGENT_WORKDIR);
    /* Nothing at all is writable. */
    push_seal(&a, "/");
    /* Beside the run's environment, every thread pool size a numeric
     * library reads at import: the zygote must still be single-threaded
     * when it forks. */
    static const char *const threads[] = {
        "OMP_NUM_THREADS",     "MKL_NUM_THREADS",        "BLIS_NUM_THREADS",
        "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "GOTO_NUM_THREADS",
    };
    for (size_t i = 0; i < sizeof(threads) / sizeof(threads[0]); i++) {
        argv_push(&a, "--setenv");
        argv_push(&a, threads[i]);
        argv_push(&a, "1");
    }
    argv_push(&a, "--");
    argv_push(&a, AGENT_JAIL_SELF);
    argv_push(&a, "--zygote-init");
    argv_pushf(&a, "%d", sock_fd);
    argv_pushf(&a, "%d", bpf_fd);
    argv_push(&a, "--");
    argv_push(&a, AGENT_PYTHON);
    argv_push(&a, AGENT_ZYGOTE_PY);
    argv_pushf(&a, "%d", sock_fd);
    argv_pushf(&a, "%d", bpf_fd);
    for (size_t i = 0; i < n_modules; i++)
        argv_push(&a, modules[i]);
    if (a.oom) {
        argv_strv_free(a.v);
        return se_err_set(err, SE_INTERNAL, "zygote command line: out of memory");
    }
    *out = a.v;
    return 0;
}

void
agent_jail_argv_free(char **argv)
{
    argv_strv_free(argv);
}
