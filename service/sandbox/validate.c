/* Validation of every field a client (or a container label) sends us. Pure:
 * no I/O, no locks; every failure names the field ("modules[2]: ...") so
 * the client can fix its request. */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/frame.h"
#include "sandbox/internal.h"
#include "util/clock.h"

/* Room in a frame for everything that is not script, stdin or files. */
#define FRAME_SLACK (256u * 1024)

void
sandbox_spec_clear(sandbox_spec *s)
{
    for (size_t i = 0; i < s->n_modules; i++)
        free(s->modules[i]);
    free(s->modules);
    for (size_t i = 0; i < s->n_preload; i++)
        free(s->preload[i]);
    free(s->preload);
    for (size_t i = 0; i < s->n_labels; i++) {
        free(s->label_keys[i]);
        free(s->label_values[i]);
    }
    free(s->label_keys);
    free(s->label_values);
    free(s->owner);
    memset(s, 0, sizeof(*s));
}

int
sandbox_validate_id(const char *id, se_err *err)
{
    if (!id || !*id)
        return se_err_set(err, SE_INVALID, "sandbox_id: must not be empty");
    size_t n = strlen(id);
    if (n > SANDBOX_ID_MAX)
        return se_err_set(err, SE_INVALID, "sandbox_id: longer than %d characters", SANDBOX_ID_MAX);
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            return se_err_set(err, SE_INVALID, "sandbox_id: character %zu is not [a-z0-9]", i);
    }
    return 0;
}

int
sandbox_instance_check(const char *name, se_err *err)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 32)
        return se_err_set(err, SE_INVALID, "instance: must be 1 to 32 characters");
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return se_err_set(err, SE_INVALID, "instance: character %zu is not [a-z0-9-]", i);
    }
    return 0;
}

static bool
label_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
           c == '/';
}

int
sandbox_validate_labels(char *const *keys, char *const *values, size_t n, se_err *err)
{
    if (n > SANDBOX_MAX_LABELS)
        return se_err_set(err, SE_INVALID, "labels: %zu entries, at most %d", n,
                          SANDBOX_MAX_LABELS);
    for (size_t i = 0; i < n; i++) {
        const char *k = keys[i], *v = values[i];
        size_t kl = k ? strlen(k) : 0;
        if (kl == 0)
            return se_err_set(err, SE_INVALID, "labels[%zu]: empty key", i);
        if (kl > SANDBOX_LABEL_KEY_MAX)
            return se_err_set(err, SE_INVALID, "labels[%zu]: key longer than %d", i,
                              SANDBOX_LABEL_KEY_MAX);
        for (size_t j = 0; j < kl; j++)
            if (!label_key_char(k[j]))
                return se_err_set(err, SE_INVALID,
                                  "labels[%zu]: key character %zu is not [a-z0-9._/-]", i, j);
        size_t vl = v ? strlen(v) : 0;
        if (vl > SANDBOX_LABEL_VALUE_MAX)
            return se_err_set(err, SE_INVALID, "labels[%.63s]: value longer than %d", k,
                              SANDBOX_LABEL_VALUE_MAX);
        for (size_t j = 0; j < vl; j++) {
            unsigned char c = (unsigned char)v[j];
            /* Printable ASCII only: labels travel through logs and JSON. */
            if (c < 0x20 || c > 0x7e)
                return se_err_set(err, SE_INVALID,
                                  "labels[%.63s]: value byte %zu is not printable ASCII", k, j);
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(keys[j], k) == 0)
                return se_err_set(err, SE_INVALID, "labels[%.63s]: duplicate key", k);
    }
    return 0;
}

/* One limit field: 0 = dflt; above ceil = SE_INVALID naming it. */
static int
limit_pick(uint64_t *out, uint64_t req, uint64_t dflt, uint64_t ceil, const char *name,
           const char *what, se_err *err)
{
    if (req == 0) {
        *out = dflt;
        return 0;
    }
    if (req > ceil)
        return se_err_set(err, SE_INVALID, "limits.%s: %" PRIu64 " is above the %s %" PRIu64, name,
                          req, what, ceil);
    *out = req;
    return 0;
}

static int
limits_merge(sandbox_limits *out, const sandbox_limits *dflt, const sandbox_limits *ceil,
             const Safeeval__V1__Limits *req, const char *what, se_err *err)
{
    Safeeval__V1__Limits zero = SAFEEVAL__V1__LIMITS__INIT;
    if (!req)
        req = &zero;
    uint64_t v = 0;
    int rc;
#define PICK(f)                                                                                    \
    do {                                                                                           \
        rc = limit_pick(&v, req->f, dflt->f, ceil->f, #f, what, err);                              \
        if (rc < 0)                                                                                \
            return rc;                                                                             \
        out->f = (__typeof__(out->f))v;                                                            \
    } while (0)
    PICK(wall_time_ms);
    PICK(cpu_time_ms);
    PICK(memory_bytes);
    if (out->memory_bytes < AGENT_MIN_MEMORY)
        return se_err_set(err, SE_INVALID, "limits.memory_bytes: %" PRIu64 " is below %u",
                          out->memory_bytes, AGENT_MIN_MEMORY);
    PICK(max_processes);
    PICK(max_output_bytes);
    PICK(max_file_bytes);
    PICK(max_collect_files);
    PICK(max_collect_bytes);
#undef PICK
    return 0;
}

int
sandbox_limits_for_sandbox(sandbox_limits *out, const sandbox_config *cfg,
                           const Safeeval__V1__Limits *req, se_err *err)
{
    int rc = limits_merge(out, &cfg->default_limits, &cfg->max_limits, req, "maximum", err);
    if (rc < 0)
        return rc;
        /* A default above a lowered ceiling (config mistake) is clamped. */
#define CLAMP(f)                                                                                   \
    if (out->f > cfg->max_limits.f && cfg->max_limits.f)                                           \
        out->f = cfg->max_limits.f;
    CLAMP(wall_time_ms);
    CLAMP(cpu_time_ms);
    CLAMP(memory_bytes);
    CLAMP(max_processes);
    CLAMP(max_output_bytes);
    CLAMP(max_file_bytes);
    CLAMP(max_collect_files);
    CLAMP(max_collect_bytes);
#undef CLAMP
    if (!out->wall_time_ms || !out->cpu_time_ms || !out->memory_bytes || !out->max_processes ||
        !out->max_output_bytes || !out->max_file_bytes || !out->max_collect_files ||
        !out->max_collect_bytes)
        return se_err_set(err, SE_INTERNAL, "limits: a default limit is 0 (configuration)");
    return 0;
}

int
sandbox_limits_for_run(sandbox_limits *out, const sandbox_limits *sb,
                       const Safeeval__V1__Limits *req, se_err *err)
{
    return limits_merge(out, sb, sb, req, "sandbox's", err);
}

/* PEP 503 normalised project name of a requirement, for duplicate checks. */
static void
module_name(char *out, size_t cap, const char *req)
{
    size_t o = 0;
    bool sep = false;
    for (const char *p = req; *p && o + 1 < cap; p++) {
        char c = *p;
        if (c == '-' || c == '_' || c == '.') {
            sep = true;
            continue;
        }
        if (!isalnum((unsigned char)c))
            break;
        if (sep && o > 0 && o + 2 < cap)
            out[o++] = '-';
        sep = false;
        out[o++] = (char)tolower((unsigned char)c);
    }
    out[o] = '\0';
}

static char *
xstrdup(const char *s)
{
    char *d = strdup(s ? s : "");
    return d;
}

/* preload: import names the zygote imports before its first fork. The
 * agent checks them again (agent_module_name_validate); here every failure
 * names the field. */
static int
validate_preload(const Safeeval__V1__CreateSandboxRequest *req, se_err *err)
{
    if (req->n_preload > SANDBOX_MAX_PRELOAD)
        return se_err_set(err, SE_INVALID, "preload: %zu entries, at most %d", req->n_preload,
                          SANDBOX_MAX_PRELOAD);
    for (size_t i = 0; i < req->n_preload; i++) {
        const char *m = req->preload[i];
        if (!m || !*m)
            return se_err_set(err, SE_INVALID, "preload[%zu]: empty", i);
        if (strlen(m) > SANDBOX_PRELOAD_MAX)
            return se_err_set(err, SE_INVALID, "preload[%zu]: longer than %d bytes", i,
                              SANDBOX_PRELOAD_MAX);
        if (agent_module_name_validate(m) < 0)
            return se_err_set(err, SE_INVALID,
                              "preload[%zu]: not a dotted Python module name (\"numpy.linalg\")",
                              i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(req->preload[j], m) == 0)
                return se_err_set(err, SE_INVALID, "preload[%zu]: duplicate of preload[%zu]", i, j);
    }
    return 0;
}

int
sandbox_validate_owner(const char *owner, se_err *err)
{
    if (!owner)
        return se_err_set(err, SE_INVALID, "owner: missing");
    size_t n = strlen(owner);
    if (n > SANDBOX_OWNER_MAX)
        return se_err_set(err, SE_INVALID, "owner: longer than %d", SANDBOX_OWNER_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)owner[i];
        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
            return se_err_set(err, SE_INVALID, "owner: character %zu is not allowed", i);
    }
    return 0;
}

int
sandbox_validate_create(sandbox_spec *out, const sandbox_config *cfg,
                        const Safeeval__V1__CreateSandboxRequest *req, se_err *err)
{
    memset(out, 0, sizeof(*out));
    const char *ver =
        req->python_version && *req->python_version ? req->python_version : cfg->default_python;
    if (!ver || !*ver)
        return se_err_set(err, SE_INVALID, "python_version: empty and no default configured");
    if (strlen(ver) > SANDBOX_VERSION_MAX)
        return se_err_set(err, SE_INVALID, "python_version: too long");
    int rc = image_validate_version(ver, err);
    if (rc < 0)
        return se_err_prefix(err, "python_version");
    snprintf(out->python, sizeof(out->python), "%s", ver);

    if (req->n_modules > SE_MAX_MODULES)
        return se_err_set(err, SE_INVALID, "modules: %zu entries, at most %d", req->n_modules,
                          SE_MAX_MODULES);
    char names[SE_MAX_MODULES][SE_MAX_MODULE_LEN + 1];
    for (size_t i = 0; i < req->n_modules; i++) {
        const char *m = req->modules[i];
        if (!m || !*m)
            return se_err_set(err, SE_INVALID, "modules[%zu]: empty", i);
        if (strlen(m) > SE_MAX_MODULE_LEN)
            return se_err_set(err, SE_INVALID, "modules[%zu]: longer than %d", i,
                              SE_MAX_MODULE_LEN);
        rc = image_validate_module(m, err);
        if (rc < 0)
            return se_err_prefix(err, "modules[%zu]", i);
        module_name(names[i], sizeof(names[i]), m);
        for (size_t j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0)
                return se_err_set(err, SE_INVALID, "modules[%zu]: duplicate of modules[%zu]", i, j);
    }

    rc = validate_preload(req, err);
    if (rc < 0)
        return rc;
    switch (req->runner) {
    case SAFEEVAL__V1__RUNNER__RUNNER_FRESH:
    case SAFEEVAL__V1__RUNNER__RUNNER_ZYGOTE:
        out->runner = req->runner;
        break;
    case SAFEEVAL__V1__RUNNER__RUNNER_DEFAULT:
        /* The zygote when there is something to preload (every hostile test
         * of the jail runs against it too: tests/hostile), else the fresh
         * jail, which gains nothing from a warm interpreter. */
        out->runner = req->n_preload ? SAFEEVAL__V1__RUNNER__RUNNER_ZYGOTE
                                     : SAFEEVAL__V1__RUNNER__RUNNER_FRESH;
        break;
    default:
        return se_err_set(err, SE_INVALID, "runner: %d is not a Runner", (int)req->runner);
    }

    if (req->idle_timeout_s > cfg->max_idle_timeout_s)
        return se_err_set(err, SE_INVALID, "idle_timeout_s: %u is above the maximum %u",
                          req->idle_timeout_s, cfg->max_idle_timeout_s);
    out->idle_timeout_s = req->idle_timeout_s ? req->idle_timeout_s : cfg->default_idle_timeout_s;
    if (out->idle_timeout_s == 0)
        out->idle_timeout_s = 1;

    rc = sandbox_limits_for_sandbox(&out->limits, cfg, req->limits, err);
    if (rc < 0)
        return rc;

    uint32_t max_runs = cfg->max_concurrent_runs ? cfg->max_concurrent_runs : 1;
    if (req->max_concurrent_runs > max_runs)
        return se_err_set(err, SE_INVALID, "max_concurrent_runs: %u is above the maximum %u",
                          req->max_concurrent_runs, max_runs);
    out->max_runs = req->max_concurrent_runs ? req->max_concurrent_runs : max_runs;

    char *keys[SANDBOX_MAX_LABELS], *vals[SANDBOX_MAX_LABELS];
    if (req->n_labels > SANDBOX_MAX_LABELS)
        return se_err_set(err, SE_INVALID, "labels: %zu entries, at most %d", req->n_labels,
                          SANDBOX_MAX_LABELS);
    for (size_t i = 0; i < req->n_labels; i++) {
        keys[i] = req->labels[i]->key;
        vals[i] = req->labels[i]->value;
    }
    rc = sandbox_validate_labels(keys, vals, req->n_labels, err);
    if (rc < 0)
        return rc;

    /* Copies. */
    out->modules = calloc(req->n_modules ? req->n_modules : 1, sizeof(char *));
    out->label_keys = calloc(req->n_labels ? req->n_labels : 1, sizeof(char *));
    out->label_values = calloc(req->n_labels ? req->n_labels : 1, sizeof(char *));
    out->owner = xstrdup(""); /* the creator sets it */
    if (!out->modules || !out->label_keys || !out->label_values || !out->owner)
        goto oom;
    for (size_t i = 0; i < req->n_modules; i++) {
        if (!(out->modules[i] = xstrdup(req->modules[i])))
            goto oom;
        out->n_modules++;
    }
    if (req->n_preload) {
        if (!(out->preload = calloc(req->n_preload, sizeof(char *))))
            goto oom;
        for (size_t i = 0; i < req->n_preload; i++) {
            if (!(out->preload[i] = xstrdup(req->preload[i])))
                goto oom;
            out->n_preload++;
        }
    }
    for (size_t i = 0; i < req->n_labels; i++) {
        out->label_keys[i] = xstrdup(keys[i]);
        out->label_values[i] = xstrdup(vals[i]);
        out->n_labels++;
        if (!out->label_keys[i] || !out->label_values[i])
            goto oom;
    }
    out->created_at_ms = clock_wall_ms();
    return 0;
oom:
    sandbox_spec_clear(out);
    return se_err_set(err, SE_INTERNAL, "out of memory");
}

static bool
name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

int
sandbox_validate_filename(const char *name, se_err *err)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0)
        return se_err_set(err, SE_INVALID, "filename: must not be empty");
    if (n > SANDBOX_NAME_MAX)
        return se_err_set(err, SE_INVALID, "filename: longer than %d", SANDBOX_NAME_MAX);
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return se_err_set(err, SE_INVALID, "filename: must not be \".\" or \"..\"");
    for (size_t i = 0; i < n; i++)
        if (!name_char(name[i]))
            return se_err_set(err, SE_INVALID,
                              "filename: character %zu is not [A-Za-z0-9._-] (a plain base name)",
                              i);
    return 0;
}

int
sandbox_validate_path(const char *path, se_err *err)
{
    /* The agent's own rule, so that the daemon refuses as INVALID_ARGUMENT
     * every path the agent would refuse (found by fuzzing: control
     * characters and depth once slipped through to the agent). */
    return agent_path_validate(path, err);
}

/* An empty or "." component: what sandbox_normalise_path drops. */
static bool
path_has_noop_component(const char *p)
{
    for (;;) {
        size_t n = strcspn(p, "/");
        if (n == 0 || (n == 1 && p[0] == '.'))
            return true;
        if (!p[n])
            return false;
        p += n + 1;
    }
}

/* Drops empty and "." components, writing over path (never longer). */
static void
path_drop_noop_components(char *path)
{
    char *w = path;
    const char *r = path;
    while (*r) {
        size_t n = strcspn(r, "/");
        if (n > 0 && !(n == 1 && r[0] == '.')) {
            if (w != path)
                *w++ = '/';
            memmove(w, r, n);
            w += n;
        }
        r += n;
        if (*r)
            r++;
    }
    *w = '\0';
}

int
sandbox_normalise_path(char *path, se_err *err)
{
    if (!path || !*path)
        return se_err_set(err, SE_INVALID, "file path is empty");
    if (path[0] == '/')
        return se_err_set(err, SE_INVALID, "file path is absolute");
    /* The contract forbids only "..": "./a" and "a/./b" name a file of the
     * working dir, so they are taken as "a" and "a/b". Empty components go
     * the same way ("a//b" -> "a/b", a trailing "/" dropped), as POSIX
     * resolves them and os.path.normpath writes them, so a client that
     * joins paths carelessly still gets the file it meant. The agent's rule
     * (no empty, "." or ".." component) then holds for what is sent. A
     * path that needs no change is never written to (it may be read-only:
     * a literal, protobuf-c's shared default). */
    if (path_has_noop_component(path)) {
        path_drop_noop_components(path);
        if (!*path)
            return se_err_set(err, SE_INVALID, "file path names no file (only \".\" components)");
    }
    return sandbox_validate_path(path, err);
}

/* a is a directory of b: b starts with a + "/". */
static bool
is_parent(const char *a, const char *b)
{
    size_t al = strlen(a);
    return strncmp(a, b, al) == 0 && b[al] == '/';
}

static bool
env_name_ok(const char *k)
{
    if (!k || !*k)
        return false;
    if (!(isalpha((unsigned char)k[0]) || k[0] == '_'))
        return false;
    for (const char *p = k; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_') || (unsigned char)*p > 0x7e)
            return false;
    return true;
}

int
sandbox_validate_run(const sandbox_run_input *in, bool is_eval, se_err *err)
{
    if (in->script_len == 0 || !in->script)
        return se_err_set(err, SE_INVALID,
                          is_eval ? "code: must not be empty" : "content: must not be empty");
    int rc = sandbox_validate_filename(in->filename, err);
    if (rc < 0)
        return rc;

    if (in->n_files > SANDBOX_MAX_FILES)
        return se_err_set(err, SE_INVALID, "files: %zu entries, at most %d", in->n_files,
                          SANDBOX_MAX_FILES);
    if (in->n_args > SANDBOX_MAX_ARGS)
        return se_err_set(err, SE_INVALID, "args: %zu entries, at most %d", in->n_args,
                          SANDBOX_MAX_ARGS);
    if (in->n_env > SANDBOX_MAX_ENV)
        return se_err_set(err, SE_INVALID, "env: %zu entries, at most %d", in->n_env,
                          SANDBOX_MAX_ENV);
    if (in->n_collect > SANDBOX_MAX_COLLECT)
        return se_err_set(err, SE_INVALID, "collect: %zu entries, at most %d", in->n_collect,
                          SANDBOX_MAX_COLLECT);
    for (size_t i = 0; i < in->n_collect; i++) {
        /* Like a file's path, normalised in place (the daemon's own copy):
         * relative, no "..", under the working dir. */
        if (!in->collect[i])
            return se_err_set(err, SE_INVALID, "collect[%zu]: missing", i);
        rc = sandbox_normalise_path(in->collect[i], err);
        if (rc < 0)
            return se_err_prefix(err, "collect[%zu]", i);
    }

    /* Sizes next: a huge request is EXHAUSTED, whatever else is wrong in it. */
    uint64_t total = (uint64_t)in->script_len + in->stdin_len;
    for (size_t i = 0; i < in->n_files; i++)
        total += in->files[i] ? in->files[i]->content.len + SANDBOX_PATH_MAX : 0;
    for (size_t i = 0; i < in->n_args; i++)
        total += in->args[i] ? strlen(in->args[i]) : 0;
    for (size_t i = 0; i < in->n_env; i++)
        total += in->env_values[i] ? strlen(in->env_values[i]) : 0;
    if (total > FRAME_MAX - FRAME_SLACK)
        return se_err_set(err, SE_EXHAUSTED,
                          "request: %" PRIu64 " bytes of script, stdin and files; at most %u",
                          total, FRAME_MAX - FRAME_SLACK);

    for (size_t i = 0; i < in->n_files; i++) {
        Safeeval__V1__File *f = in->files[i];
        if (!f)
            return se_err_set(err, SE_INVALID, "files[%zu]: missing", i);
        /* In place: the File is the daemon's own unpacked copy (see
         * internal.h), and every check below and the agent see the
         * normalised path. */
        rc = sandbox_normalise_path(f->path, err);
        if (rc < 0)
            return se_err_prefix(err, "files[%zu].path", i);
        /* The script is written at its name in the working dir: a file
         * there, or under it as if it were a directory, cannot be. */
        if (strcmp(f->path, in->filename) == 0)
            return se_err_set(err, SE_INVALID, "files[%zu].path: collides with the script %s", i,
                              in->filename);
        if (is_parent(in->filename, f->path))
            return se_err_set(err, SE_INVALID,
                              "files[%zu].path: collides with the script %s (used as a directory)",
                              i, in->filename);
        for (size_t j = 0; j < i; j++) {
            const char *o = in->files[j]->path;
            if (strcmp(o, f->path) == 0)
                return se_err_set(err, SE_INVALID, "files[%zu].path: duplicate of files[%zu]", i,
                                  j);
            if (is_parent(o, f->path) || is_parent(f->path, o))
                return se_err_set(err, SE_INVALID,
                                  "files[%zu].path: a file and a directory of files[%zu]", i, j);
        }
    }

    for (size_t i = 0; i < in->n_args; i++) {
        /* No NUL hides in it: the daemon refuses a string field with one
         * from the received bytes, before unpacking (util/pbcheck.h). */
        if (!in->args[i])
            return se_err_set(err, SE_INVALID, "args[%zu]: missing", i);
        if (strlen(in->args[i]) > SANDBOX_ARG_MAX)
            return se_err_set(err, SE_INVALID, "args[%zu]: longer than %u bytes", i,
                              SANDBOX_ARG_MAX);
    }

    for (size_t i = 0; i < in->n_env; i++) {
        const char *k = in->env_keys[i], *v = in->env_values[i];
        if (!env_name_ok(k))
            return se_err_set(err, SE_INVALID, "env[%zu]: name must match [A-Za-z_][A-Za-z0-9_]*",
                              i);
        if (strncmp(k, "SAFEEVAL_", 9) == 0)
            return se_err_set(err, SE_INVALID, "env[%.64s]: the SAFEEVAL_ prefix is reserved", k);
        if (!v)
            return se_err_set(err, SE_INVALID, "env[%.64s]: missing value", k);
        if (strlen(v) > SANDBOX_ARG_MAX)
            return se_err_set(err, SE_INVALID, "env[%.64s]: value longer than %u bytes", k,
                              SANDBOX_ARG_MAX);
        for (size_t j = 0; j < i; j++)
            if (strcmp(in->env_keys[j], k) == 0)
                return se_err_set(err, SE_INVALID, "env[%.64s]: duplicate name", k);
    }
    return 0;
}
