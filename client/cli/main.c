/* safeeval: the command-line client. Parsing is in args.c, JSON in json.c;
 * this file does the I/O, the signals and the calls. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "json.h"
#include "util/version.h"

/* Largest local input (script, --file, stdin) read into memory; the
 * service's own request cap is normally far lower and says so. */
#define CLI_MAX_INPUT SAFEEVAL_MAX_LOCAL_FILE_BYTES
/* Deadline of the destroy that cleans up after `run`, interrupted or not. */
#define CLI_CLEANUP_TIMEOUT_MS 60000u
#define CLI_DEFAULT_TIMEOUT_MS 600000u
#define CLI_RUN_LABEL "safeeval-cli-run"

/* Set by the signal thread to the signal that asked us to stop. Calls poll
 * it (safeeval_*_opts.cancel). */
static volatile int g_cancel;
static const char *g_cmd = "safeeval";

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
say(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "safeeval: %s: ", g_cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void *
signal_thread(void *arg)
{
    sigset_t *set = arg;
    for (;;) {
        int sig;
        if (sigwait(set, &sig) != 0)
            continue;
        if (!g_cancel)
            g_cancel = sig;
    }
    return NULL;
}

/* Blocks the stop signals and turns them into g_cancel, so that `run` can
 * always clean up. Must run before the client exists: gRPC's threads
 * inherit the mask, and one thread that does not block SIGINT would take
 * the default action for the whole process. Other commands keep the default
 * actions: dying cancels their call. */
static void
signals_setup(void)
{
    static sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, signal_thread, &set) != 0) {
        /* Without the thread, fall back to the default actions. */
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    }
    pthread_attr_destroy(&attr);
}

/* ---- progress while a sandbox is created ----
 * On a terminal, a ticking line; with the build's own lines (create
 * streams them to a terminal, or anywhere with --progress) printed above
 * it. The mutex keeps the two writers of stderr apart. */

typedef struct progress {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int running;
    int tty;
} progress;

/* safeeval_create_opts.on_progress: one build line. */
static void
progress_line(const char *line, void *ud)
{
    progress *p = ud;
    pthread_mutex_lock(&p->mu);
    fprintf(stderr, "%ssafeeval: %s\n", p->tty ? "\r\033[K" : "", line);
    fflush(stderr);
    pthread_mutex_unlock(&p->mu);
}

static void *
progress_main(void *arg)
{
    progress *p = arg;
    struct timespec start, now, until;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int shown = 0;
    pthread_mutex_lock(&p->mu);
    while (!p->done) {
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&p->cv, &p->mu, &until);
        if (p->done)
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long secs = (long)(now.tv_sec - start.tv_sec);
        fprintf(stderr, "\rsafeeval: creating the sandbox (building the image if needed)... %ld s",
                secs);
        fflush(stderr);
        shown = 1;
    }
    pthread_mutex_unlock(&p->mu);
    if (shown) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    return NULL;
}

static void
progress_start(progress *p)
{
    memset(p, 0, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    p->tty = isatty(STDERR_FILENO);
    if (!p->tty)
        return;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    p->running = pthread_create(&p->thread, NULL, progress_main, p) == 0;
}

static void
progress_stop(progress *p)
{
    if (p->running) {
        pthread_mutex_lock(&p->mu);
        p->done = 1;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->thread, NULL);
        pthread_cond_destroy(&p->cv);
    }
    pthread_mutex_destroy(&p->mu);
}

/* ---- local input ---- */

static int
read_fd(char **out, size_t *len_out, int fd, const char *what)
{
    char *buf = NULL;
    size_t len = 0, size = 0;
    for (;;) {
        if (len == size) {
            if (size >= CLI_MAX_INPUT) {
                free(buf);
                say("%s: larger than %zu bytes", what, (size_t)CLI_MAX_INPUT);
                return -1;
            }
            size_t nsize = size ? size * 2 : 65536;
            if (nsize > CLI_MAX_INPUT)
                nsize = CLI_MAX_INPUT;
            char *n = realloc(buf, nsize + 1);
            if (!n) {
                free(buf);
                say("%s: out of memory", what);
                return -1;
            }
            buf = n;
            size = nsize;
        }
        ssize_t n = read(fd, buf + len, size - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            say("read %s: %s", what, strerror(errno));
            free(buf);
            return -1;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (!buf && !(buf = malloc(1))) {
        say("%s: out of memory", what);
        return -1;
    }
    buf[len] = '\0';
    *out = buf;
    *len_out = len;
    return 0;
}

/* "-" = our stdin. */
static int
read_path(char **out, size_t *len_out, const char *path)
{
    if (strcmp(path, "-") == 0)
        return read_fd(out, len_out, STDIN_FILENO, "stdin");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        say("%s: %s", path, strerror(errno));
        return -1;
    }
    int rc = read_fd(out, len_out, fd, path);
    close(fd);
    return rc;
}

/* Everything a run sends besides the code, read from local files. */
typedef struct run_input {
    char *stdin_data;
    size_t stdin_len;
    safeeval_file *files;
    char **file_data;
    size_t n_files;
} run_input;

static void
run_input_free(run_input *in)
{
    free(in->stdin_data);
    for (size_t i = 0; i < in->n_files; i++)
        free(in->file_data[i]);
    free(in->file_data);
    free(in->files);
    memset(in, 0, sizeof(*in));
}

static int
run_input_read(run_input *in, const cli_args *a)
{
    memset(in, 0, sizeof(*in));
    if (a->stdin_file && read_path(&in->stdin_data, &in->stdin_len, a->stdin_file) != 0)
        return -1;
    if (a->n_files) {
        in->files = calloc(a->n_files, sizeof(*in->files));
        in->file_data = calloc(a->n_files, sizeof(*in->file_data));
        if (!in->files || !in->file_data) {
            say("out of memory");
            return -1;
        }
        for (; in->n_files < a->n_files; in->n_files++) {
            size_t i = in->n_files, len;
            if (read_path(&in->file_data[i], &len, a->files[i].local) != 0)
                return -1;
            in->files[i].path = a->files[i].remote;
            in->files[i].data = in->file_data[i];
            in->files[i].len = len;
        }
    }
    return 0;
}

/* ---- a streamed run's output, printed as it comes ---- */

typedef struct live {
    uint64_t out, err; /* bytes printed */
} live;

/* safeeval_eval_opts.on_output. A stdout that cannot take the bytes (a
 * closed pipe) stops the run. */
static int
live_output(int stream, const void *data, size_t len, void *ud)
{
    live *lv = ud;
    FILE *f = stream == 1 ? stdout : stderr;
    if (fwrite(data, 1, len, f) != len || fflush(f) != 0)
        return 1;
    if (stream == 1)
        lv->out += len;
    else
        lv->err += len;
    return 0;
}

/* With --json the output belongs in the JSON: no live printing then. */
static void
eval_opts_fill(safeeval_eval_opts *o, const cli_args *a, const run_input *in, int with_limits,
               live *lv)
{
    o->collect = a->collect;
    o->n_collect = a->n_collect;
    if (!a->json) {
        o->on_output = live_output;
        o->output_ud = lv;
    }
    o->stdin_data = in->stdin_data;
    o->stdin_len = in->stdin_len;
    o->args = a->args;
    o->n_args = a->n_args;
    o->env = a->env;
    o->n_env = a->n_env;
    o->files = in->files;
    o->n_files = in->n_files;
    if (with_limits)
        o->limits = a->limits;
    o->timeout_ms = a->timeout_ms;
    o->cancel = &g_cancel;
}

/* ---- output ---- */

static int
write_all(FILE *f, const char *data, size_t len)
{
    if (len && fwrite(data, 1, len, f) != len)
        return -1;
    return fflush(f);
}

static int
print_json(cJSON *j)
{
    if (!j) {
        say("out of memory");
        return -1;
    }
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s) {
        say("out of memory");
        return -1;
    }
    puts(s);
    free(s);
    return fflush(stdout);
}

static int
service_error(const cli_args *a, const safeeval_error *err)
{
    if (err->code == SAFEEVAL_STATUS_CANCELLED && g_cancel) {
        say("interrupted");
        return CLI_EXIT_INTERRUPTED;
    }
    say("%s: %s", safeeval_status_name(err->code), err->message);
    if (a->json)
        print_json(cli_error_json(err));
    return CLI_EXIT_SERVICE;
}

/* ---- collected files, written under --out-dir ---- */

/* A path the service sent: relative, no empty, "." or ".." component, no
 * control byte. Anything else is refused, never "fixed". */
static int
collected_path_ok(const char *p)
{
    if (!*p || *p == '/' || strlen(p) > 4096)
        return 0;
    for (const char *s = p; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 0;
    for (const char *c = p; c;) {
        const char *slash = strchr(c, '/');
        size_t n = slash ? (size_t)(slash - c) : strlen(c);
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return 0;
        c = slash ? slash + 1 : NULL;
    }
    return 1;
}

/* Writes one file under dfd: every directory on the way is made or opened
 * relative to its parent without following a symlink, and the file itself
 * is opened O_NOFOLLOW, so nothing lands outside the directory whatever
 * the names or what is already there. */
static int
collected_write(int root, const safeeval_file *f)
{
    char buf[4097];
    snprintf(buf, sizeof(buf), "%s", f->path);
    int dfd = dup(root);
    char *p = buf;
    for (char *slash; dfd >= 0 && (slash = strchr(p, '/')); p = slash + 1) {
        *slash = '\0';
        if (mkdirat(dfd, p, 0755) < 0 && errno != EEXIST) {
            close(dfd);
            return -1;
        }
        int sub = openat(dfd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        close(dfd);
        dfd = sub;
    }
    if (dfd < 0)
        return -1;
    int fd = openat(dfd, p, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    int e = errno;
    close(dfd);
    if (fd < 0) {
        errno = e;
        return -1;
    }
    const char *d = f->data;
    size_t left = f->len;
    while (left) {
        ssize_t n = write(fd, d, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            e = n < 0 ? errno : EIO;
            close(fd);
            errno = e;
            return -1;
        }
        d += n;
        left -= (size_t)n;
    }
    return close(fd);
}

/* 0, or -1 after saying which file could not be written. */
static int
collected_save(const cli_args *a, const safeeval_result *r)
{
    if (!r->n_files)
        return 0;
    const char *dir = a->out_dir ? a->out_dir : ".";
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        say("--out-dir %s: %s", dir, strerror(errno));
        return -1;
    }
    int root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) {
        say("--out-dir %s: %s", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < r->n_files; i++) {
        const safeeval_file *f = &r->files[i];
        if (!collected_path_ok(f->path)) {
            say("collected file: refusing the path the service sent");
            rc = -1;
            continue;
        }
        if (collected_write(root, f) < 0) {
            say("write %s/%s: %s", dir, f->path, strerror(errno));
            rc = -1;
        }
    }
    close(root);
    return rc;
}

/* Prints a run's result as the command's own output (lv: what a streamed
 * run printed already; NULL for one that was not) and saves its files;
 * returns the exit code. */
static int
emit_result(const cli_args *a, const safeeval_result *r, const live *lv)
{
    int code = cli_exit_code(r);
    int saved = collected_save(a, r);
    if (a->json) {
        print_json(cli_result_json(r));
        return saved < 0 ? CLI_EXIT_LOCAL : code;
    }
    uint64_t kept_out = r->stdout_len, kept_err = r->stderr_len;
    if (lv) {
        kept_out = lv->out;
        kept_err = lv->err;
    } else {
        write_all(stdout, r->stdout_data, r->stdout_len);
        write_all(stderr, r->stderr_data, r->stderr_len);
    }
    /* Notes that a local run would not need: what ended the run, and what
     * was cut. */
    switch (r->reason) {
    case SAFEEVAL_EXIT_WALL_TIMEOUT:
        say("the run reached its wall-time limit");
        break;
    case SAFEEVAL_EXIT_CPU_TIMEOUT:
        say("the run reached its CPU-time limit");
        break;
    case SAFEEVAL_EXIT_MEMORY_LIMIT:
        say("the run reached its memory limit");
        break;
    case SAFEEVAL_EXIT_FILE_SIZE_LIMIT:
        say("the run reached its file-size limit");
        break;
    default:
        break;
    }
    if (r->stdout_truncated)
        say("stdout truncated: %llu of %llu bytes kept", (unsigned long long)kept_out,
            (unsigned long long)r->stdout_bytes);
    if (r->stderr_truncated)
        say("stderr truncated: %llu of %llu bytes kept", (unsigned long long)kept_err,
            (unsigned long long)r->stderr_bytes);
    if (r->files_truncated)
        say("collected files truncated: %zu brought back (a cap, or the run did not end by "
            "itself)",
            r->n_files);
    return saved < 0 ? CLI_EXIT_LOCAL : code;
}

static void
print_sandbox(const safeeval_sandbox *sb)
{
    printf("id:              %s\n", sb->id);
    printf("python:          %s\n", sb->python_version);
    if (sb->owner && *sb->owner)
        printf("owner:           %s\n", sb->owner);
    printf("modules:        ");
    for (size_t i = 0; i < sb->n_modules; i++)
        printf(" %s", sb->modules[i]);
    printf("%s\n", sb->n_modules ? "" : " (none)");
    printf("image:           %s\n", sb->image);
    printf("created_at_ms:   %lld\n", (long long)sb->created_at_ms);
    printf("last_used_at_ms: %lld\n", (long long)sb->last_used_at_ms);
    printf("idle_timeout_s:  %u\n", sb->idle_timeout_s);
    printf("max_runs:        %u\n", sb->max_concurrent_runs);
    printf("workers:         %u\n", sb->workers);
    printf("limits:          wall %u ms, cpu %u ms, memory %llu B, processes %u, output %llu B, "
           "file %llu B\n",
           sb->limits.wall_time_ms, sb->limits.cpu_time_ms,
           (unsigned long long)sb->limits.memory_bytes, sb->limits.max_processes,
           (unsigned long long)sb->limits.max_output_bytes,
           (unsigned long long)sb->limits.max_file_bytes);
    printf("collect:         %u files, %llu B\n", sb->limits.max_collect_files,
           (unsigned long long)sb->limits.max_collect_bytes);
    for (size_t i = 0; i < sb->n_labels; i++)
        printf("label:           %s=%s\n", sb->labels[i].key, sb->labels[i].value);
}

/* ---- commands ---- */

static void
create_opts_fill(safeeval_create_opts *o, const cli_args *a, const safeeval_kv *labels,
                 size_t n_labels)
{
    o->python_version = a->python;
    o->modules = a->modules;
    o->n_modules = a->n_modules;
    o->limits = a->limits;
    o->idle_timeout_s = a->idle_timeout_s;
    o->max_concurrent_runs = a->max_runs;
    o->labels = labels;
    o->n_labels = n_labels;
    o->timeout_ms = a->timeout_ms;
    o->cancel = &g_cancel;
}

/* Build lines go to a terminal, or anywhere with --progress. */
static void
create_progress(safeeval_create_opts *o, const cli_args *a, progress *p)
{
    progress_start(p);
    if (p->tty || a->progress) {
        o->on_progress = progress_line;
        o->progress_ud = p;
    }
}

static int
cmd_create(safeeval_client *c, const cli_args *a)
{
    safeeval_create_opts o = SAFEEVAL_CREATE_OPTS_INIT;
    safeeval_error err;
    safeeval_sandbox *sb;
    create_opts_fill(&o, a, a->labels, a->n_labels);
    progress p;
    create_progress(&o, a, &p);
    int rc = safeeval_sandbox_create(&sb, c, &o, &err);
    progress_stop(&p);
    if (rc != 0)
        return service_error(a, &err);
    if (a->json)
        print_json(cli_sandbox_json(sb));
    else
        printf("%s\n", sb->id);
    safeeval_sandbox_free(sb);
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_LOCAL;
}

static int
cmd_eval(safeeval_client *c, const cli_args *a)
{
    char *code = NULL;
    size_t code_len = 0;
    run_input in;
    int ret = CLI_EXIT_LOCAL;
    if (!a->code) {
        if (read_fd(&code, &code_len, STDIN_FILENO, "stdin") != 0)
            return CLI_EXIT_LOCAL;
        if (memchr(code, '\0', code_len)) {
            say("the code on stdin contains a NUL byte");
            free(code);
            return CLI_EXIT_LOCAL;
        }
    }
    if (run_input_read(&in, a) != 0)
        goto out;
    safeeval_eval_opts o = SAFEEVAL_EVAL_OPTS_INIT;
    live lv = {0, 0};
    eval_opts_fill(&o, a, &in, 1, &lv);
    safeeval_error err;
    safeeval_result *r;
    if (safeeval_sandbox_eval(&r, c, a->id, a->code ? a->code : code, &o, &err) != 0) {
        ret = service_error(a, &err);
        goto out;
    }
    ret = emit_result(a, r, o.on_output ? &lv : NULL);
    safeeval_result_free(r);
out:
    run_input_free(&in);
    free(code);
    return ret;
}

static const char *
base_name(const char *path)
{
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

/* A script and its inputs, read before anything is created remotely (so
 * that a slow stdin never holds a sandbox). */
typedef struct script_input {
    char *script;
    size_t script_len;
    run_input in;
} script_input;

static void
script_input_free(script_input *si)
{
    free(si->script);
    run_input_free(&si->in);
    si->script = NULL;
}

static int
script_input_read(script_input *si, const cli_args *a)
{
    memset(si, 0, sizeof(*si));
    if (!*base_name(a->file)) {
        say("%s names no file", a->file);
        return -1;
    }
    if (read_path(&si->script, &si->script_len, a->file) != 0 || run_input_read(&si->in, a) != 0)
        return -1;
    if (si->script_len == 0) {
        say("%s is empty", a->file);
        return -1;
    }
    return 0;
}

/* Runs the script in sandbox `id`; returns the command's exit code. */
static int
exec_in(safeeval_client *c, const cli_args *a, const char *id, const script_input *si,
        int with_limits)
{
    safeeval_eval_opts o = SAFEEVAL_EVAL_OPTS_INIT;
    live lv = {0, 0};
    eval_opts_fill(&o, a, &si->in, with_limits, &lv);
    safeeval_error err;
    safeeval_result *r;
    const char *name = strcmp(a->file, "-") == 0 ? "stdin.py" : base_name(a->file);
    if (safeeval_sandbox_execute_buffer(&r, c, id, name, si->script, si->script_len, &o, &err) != 0)
        return service_error(a, &err);
    int ret = emit_result(a, r, o.on_output ? &lv : NULL);
    safeeval_result_free(r);
    return ret;
}

static int
cmd_exec(safeeval_client *c, const cli_args *a)
{
    script_input si;
    int ret = CLI_EXIT_LOCAL;
    if (script_input_read(&si, a) == 0)
        ret = exec_in(c, a, a->id, &si, 1);
    script_input_free(&si);
    return ret;
}

static int
destroy_quietly(safeeval_client *c, const char *id)
{
    safeeval_call_opts o = SAFEEVAL_CALL_OPTS_INIT;
    o.timeout_ms = CLI_CLEANUP_TIMEOUT_MS;
    safeeval_error err;
    if (safeeval_sandbox_destroy(c, id, &o, &err) != 0 && err.code != SAFEEVAL_STATUS_NOT_FOUND) {
        say("destroy %s: %s: %s", id, safeeval_status_name(err.code), err.message);
        return -1;
    }
    return 0;
}

/* After an interrupted create: the service may have made the sandbox
 * anyway, so find it by our run label and destroy it. */
static void
sweep_run_label(safeeval_client *c, const char *run_id)
{
    safeeval_call_opts o = SAFEEVAL_CALL_OPTS_INIT;
    o.timeout_ms = CLI_CLEANUP_TIMEOUT_MS;
    safeeval_error err;
    safeeval_sandbox_list *list;
    if (safeeval_sandbox_list_all(&list, c, &o, &err) != 0)
        return;
    for (size_t i = 0; i < list->count; i++)
        for (size_t k = 0; k < list->items[i].n_labels; k++)
            if (strcmp(list->items[i].labels[k].key, CLI_RUN_LABEL) == 0 &&
                strcmp(list->items[i].labels[k].value, run_id) == 0)
                destroy_quietly(c, list->items[i].id);
    safeeval_sandbox_list_free(list);
}

static int
cmd_run(safeeval_client *c, const cli_args *a, script_input *si_in)
{
    unsigned char rnd[8];
    char run_id[sizeof(rnd) * 2 + 1];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        say("getrandom: %s", strerror(errno));
        return CLI_EXIT_LOCAL;
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(run_id + 2 * i, 3, "%02x", rnd[i]);

    script_input si = *si_in;
    memset(si_in, 0, sizeof(*si_in));
    safeeval_kv *labels = calloc(a->n_labels + 1, sizeof(*labels));
    if (!labels) {
        say("out of memory");
        script_input_free(&si);
        return CLI_EXIT_LOCAL;
    }
    if (a->n_labels)
        memcpy(labels, a->labels, a->n_labels * sizeof(*labels));
    labels[a->n_labels].key = CLI_RUN_LABEL;
    labels[a->n_labels].value = run_id;

    safeeval_create_opts o = SAFEEVAL_CREATE_OPTS_INIT;
    create_opts_fill(&o, a, labels, a->n_labels + 1);
    safeeval_error err;
    safeeval_sandbox *sb = NULL;
    progress p;
    create_progress(&o, a, &p);
    int rc = safeeval_sandbox_create(&sb, c, &o, &err);
    progress_stop(&p);
    free(labels);
    if (rc != 0) {
        if (err.code == SAFEEVAL_STATUS_CANCELLED || err.code == SAFEEVAL_STATUS_DEADLINE_EXCEEDED)
            sweep_run_label(c, run_id);
        script_input_free(&si);
        return service_error(a, &err);
    }
    int ret;
    if (g_cancel) {
        say("interrupted");
        ret = CLI_EXIT_INTERRUPTED;
    } else {
        /* The limits went to the sandbox; the run takes them from there. */
        ret = exec_in(c, a, sb->id, &si, 0);
    }
    script_input_free(&si);
    if (destroy_quietly(c, sb->id) != 0 && ret == CLI_EXIT_OK)
        ret = CLI_EXIT_SERVICE;
    safeeval_sandbox_free(sb);
    return ret;
}

static int
cmd_destroy(safeeval_client *c, const cli_args *a)
{
    safeeval_call_opts o = SAFEEVAL_CALL_OPTS_INIT;
    o.timeout_ms = a->timeout_ms;
    o.cancel = &g_cancel;
    safeeval_error err;
    if (safeeval_sandbox_destroy(c, a->id, &o, &err) != 0)
        return service_error(a, &err);
    if (a->json) {
        cJSON *j = cJSON_CreateObject();
        if (j && (!cJSON_AddStringToObject(j, "id", a->id) ||
                  !cJSON_AddBoolToObject(j, "destroyed", 1))) {
            cJSON_Delete(j);
            j = NULL;
        }
        print_json(j);
    }
    return CLI_EXIT_OK;
}

static int
cmd_get(safeeval_client *c, const cli_args *a)
{
    safeeval_call_opts o = SAFEEVAL_CALL_OPTS_INIT;
    o.timeout_ms = a->timeout_ms;
    o.cancel = &g_cancel;
    safeeval_error err;
    safeeval_sandbox *sb;
    if (safeeval_sandbox_get(&sb, c, a->id, &o, &err) != 0)
        return service_error(a, &err);
    if (a->json)
        print_json(cli_sandbox_json(sb));
    else
        print_sandbox(sb);
    safeeval_sandbox_free(sb);
    return CLI_EXIT_OK;
}

static void
print_limits_row(const char *name, uint64_t dflt, uint64_t max)
{
    printf("  %-18s %-14llu %llu\n", name, (unsigned long long)dflt, (unsigned long long)max);
}

static int
cmd_info(safeeval_client *c, const cli_args *a)
{
    safeeval_call_opts o = SAFEEVAL_CALL_OPTS_INIT;
    o.timeout_ms = a->timeout_ms;
    o.cancel = &g_cancel;
    safeeval_error err;
    safeeval_server_info *info;
    if (safeeval_server_info_get(&info, c, &o, &err) != 0)
        return service_error(a, &err);
    if (a->json) {
        print_json(cli_server_info_json(info));
        safeeval_server_info_free(info);
        return CLI_EXIT_OK;
    }
    printf("server:              safeeval %s (build %s)\n", info->version, info->build_id);
    printf("api:                 %s\n", info->api_version);
    printf("client:              libsafeeval %s\n", safeeval_version());
    printf("python versions:    %s\n", info->n_pythons ? "" : " (no base image present)");
    for (size_t i = 0; i < info->n_pythons; i++)
        printf("  %-8s %-10s %s\n", info->pythons[i].version,
               *info->pythons[i].full_version ? info->pythons[i].full_version : "(unknown)",
               info->pythons[i].base_image);
    printf("default python:      %s\n", info->default_python_version);
    printf("max sandboxes:       %u\n", info->max_sandboxes);
    printf("max runs at once:    %u per sandbox\n", info->max_concurrent_runs);
    printf("limits:              default        max\n");
    const safeeval_limits *d = &info->default_limits, *m = &info->max_limits;
    print_limits_row("wall_time_ms", d->wall_time_ms, m->wall_time_ms);
    print_limits_row("cpu_time_ms", d->cpu_time_ms, m->cpu_time_ms);
    print_limits_row("memory_bytes", d->memory_bytes, m->memory_bytes);
    print_limits_row("max_processes", d->max_processes, m->max_processes);
    print_limits_row("max_output_bytes", d->max_output_bytes, m->max_output_bytes);
    print_limits_row("max_file_bytes", d->max_file_bytes, m->max_file_bytes);
    print_limits_row("max_collect_files", d->max_collect_files, m->max_collect_files);
    print_limits_row("max_collect_bytes", d->max_collect_bytes, m->max_collect_bytes);
    safeeval_server_info_free(info);
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_LOCAL;
}

static int
cmd_ls(safeeval_client *c, const cli_args *a)
{
    safeeval_call_opts o = SAFEEVAL_CALL_OPTS_INIT;
    o.timeout_ms = a->timeout_ms;
    o.cancel = &g_cancel;
    safeeval_error err;
    safeeval_sandbox_list *list;
    if (safeeval_sandbox_list_all(&list, c, &o, &err) != 0)
        return service_error(a, &err);
    if (a->json) {
        cJSON *arr = cJSON_CreateArray();
        for (size_t i = 0; arr && i < list->count; i++) {
            cJSON *j = cli_sandbox_json(&list->items[i]);
            if (!j || !cJSON_AddItemToArray(arr, j)) {
                cJSON_Delete(j);
                cJSON_Delete(arr);
                arr = NULL;
            }
        }
        print_json(arr);
    } else {
        time_t now = time(NULL);
        printf("%-24s %-8s %-8s %-8s %s\n", "ID", "PYTHON", "AGE", "WORKERS", "MODULES");
        for (size_t i = 0; i < list->count; i++) {
            const safeeval_sandbox *sb = &list->items[i];
            long long age = (long long)now - sb->created_at_ms / 1000;
            char agebuf[32];
            if (age < 120)
                snprintf(agebuf, sizeof(agebuf), "%llds", age < 0 ? 0 : age);
            else if (age < 7200)
                snprintf(agebuf, sizeof(agebuf), "%lldm", age / 60);
            else
                snprintf(agebuf, sizeof(agebuf), "%lldh", age / 3600);
            char workbuf[32]; /* workers now / at most */
            snprintf(workbuf, sizeof(workbuf), "%u/%u", sb->workers, sb->max_concurrent_runs);
            printf("%-24s %-8s %-8s %-8s", sb->id, sb->python_version, agebuf, workbuf);
            for (size_t k = 0; k < sb->n_modules; k++)
                printf("%s%s", k ? "," : " ", sb->modules[k]);
            printf("\n");
        }
    }
    safeeval_sandbox_list_free(list);
    return CLI_EXIT_OK;
}

/* ---- main ---- */

static int
read_small_file(char **out, const char *path)
{
    size_t len;
    if (read_path(out, &len, path) != 0)
        return -1;
    if (memchr(*out, '\0', len)) {
        say("%s: contains a NUL byte", path);
        free(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

static void
trim_newline(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
}

int
main(int argc, char **argv)
{
    cli_args a;
    char why[512];
    if (cli_args_parse(&a, argc, argv, why, sizeof(why)) != 0) {
        fprintf(stderr, "safeeval: %s\n", why);
        return CLI_EXIT_USAGE;
    }
    if (a.cmd == CLI_CMD_VERSION) {
        printf("safeeval %s (libsafeeval %s, build %s)\n", SAFEEVAL_VERSION_STRING,
               safeeval_version(), se_build_id());
        cli_args_free(&a);
        return 0;
    }
    if (a.cmd == CLI_CMD_HELP || a.help) {
        fputs(cli_usage(a.cmd == CLI_CMD_HELP ? CLI_CMD_NONE : a.cmd), stdout);
        cli_args_free(&a);
        return 0;
    }
    g_cmd = cli_cmd_name(a.cmd);
    if (!a.timeout_set)
        a.timeout_ms = CLI_DEFAULT_TIMEOUT_MS;

    int ret = CLI_EXIT_LOCAL;
    char *ca = NULL, *cert = NULL, *key = NULL, *token = NULL;
    safeeval_client *c = NULL;
    script_input run_si;
    memset(&run_si, 0, sizeof(run_si));
    if ((a.ca_file && read_small_file(&ca, a.ca_file) != 0) ||
        (a.cert_file && read_small_file(&cert, a.cert_file) != 0) ||
        (a.key_file && read_small_file(&key, a.key_file) != 0) ||
        (a.token_file && read_small_file(&token, a.token_file) != 0))
        goto out;
    if (!token && getenv("SAFEEVAL_TOKEN") && *getenv("SAFEEVAL_TOKEN"))
        token = strdup(getenv("SAFEEVAL_TOKEN"));
    if (token)
        trim_newline(token);
    if (a.cert_file && !a.ca_file) {
        say("--cert needs --ca");
        ret = CLI_EXIT_USAGE;
        goto out;
    }

    signal(SIGPIPE, SIG_IGN);
    if (a.cmd == CLI_CMD_RUN) {
        /* Inputs first (a slow stdin must not hold a sandbox), then no stop
         * signal may kill us before the sandbox is destroyed. */
        if (script_input_read(&run_si, &a) != 0)
            goto out;
        signals_setup();
    }
    safeeval_client_opts co = SAFEEVAL_CLIENT_OPTS_INIT;
    co.target = a.target ? a.target : getenv("SAFEEVAL_TARGET");
    co.ca_pem = ca;
    co.cert_pem = cert;
    co.key_pem = key;
    co.token = token;
    co.default_timeout_ms = a.timeout_ms;
    safeeval_error err;
    if (safeeval_client_new(&c, &co, &err) != 0) {
        ret = service_error(&a, &err);
        goto out;
    }
    switch (a.cmd) {
    case CLI_CMD_CREATE:
        ret = cmd_create(c, &a);
        break;
    case CLI_CMD_EVAL:
        ret = cmd_eval(c, &a);
        break;
    case CLI_CMD_EXEC:
        ret = cmd_exec(c, &a);
        break;
    case CLI_CMD_RUN:
        ret = cmd_run(c, &a, &run_si);
        break;
    case CLI_CMD_DESTROY:
        ret = cmd_destroy(c, &a);
        break;
    case CLI_CMD_GET:
        ret = cmd_get(c, &a);
        break;
    case CLI_CMD_LS:
        ret = cmd_ls(c, &a);
        break;
    case CLI_CMD_INFO:
        ret = cmd_info(c, &a);
        break;
    default:
        ret = CLI_EXIT_USAGE;
        break;
    }
out:
    script_input_free(&run_si);
    safeeval_client_free(c);
    free(ca);
    free(cert);
    free(key);
    free(token);
    cli_args_free(&a);
    return ret;
}
