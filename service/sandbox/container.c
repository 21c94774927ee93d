/* The worker containers of a sandbox: their hardened create body, and the spec label
 * that lets a restarted daemon rebuild the registry entry. All JSON is built
 * with cJSON; nothing is formatted into a string by hand. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox/internal.h"

#define SPEC_JSON_MAX (64u * 1024)

static cJSON *
limits_to_json(const sandbox_limits *l)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    /* Numbers are doubles in cJSON: exact up to 2^53, far above any limit. */
    if (!cJSON_AddNumberToObject(o, "wall_time_ms", (double)l->wall_time_ms) ||
        !cJSON_AddNumberToObject(o, "cpu_time_ms", (double)l->cpu_time_ms) ||
        !cJSON_AddNumberToObject(o, "memory_bytes", (double)l->memory_bytes) ||
        !cJSON_AddNumberToObject(o, "max_processes", (double)l->max_processes) ||
        !cJSON_AddNumberToObject(o, "max_output_bytes", (double)l->max_output_bytes) ||
        !cJSON_AddNumberToObject(o, "max_file_bytes", (double)l->max_file_bytes) ||
        !cJSON_AddNumberToObject(o, "max_collect_files", (double)l->max_collect_files) ||
        !cJSON_AddNumberToObject(o, "max_collect_bytes", (double)l->max_collect_bytes)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

cJSON *
sandbox_spec_to_json(const sandbox_spec *s)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON *mods = cJSON_AddArrayToObject(o, "modules");
    cJSON *labels = cJSON_AddObjectToObject(o, "labels");
    cJSON *lim = limits_to_json(&s->limits);
    if (lim && !cJSON_AddItemToObject(o, "limits", lim)) {
        cJSON_Delete(lim);
        lim = NULL;
    }
    if (!mods || !labels || !lim)
        goto fail;
    if (!cJSON_AddNumberToObject(o, "v", SANDBOX_SPEC_VERSION) ||
        !cJSON_AddStringToObject(o, "python", s->python) ||
        !cJSON_AddNumberToObject(o, "max_runs", (double)s->max_runs) ||
        !cJSON_AddNumberToObject(o, "idle_timeout_s", (double)s->idle_timeout_s) ||
        !cJSON_AddNumberToObject(o, "created_at_ms", (double)s->created_at_ms) ||
        !cJSON_AddStringToObject(o, "owner", s->owner ? s->owner : ""))
        goto fail;
    for (size_t i = 0; i < s->n_modules; i++) {
        cJSON *m = cJSON_CreateString(s->modules[i]);
        if (!m)
            goto fail;
        cJSON_AddItemToArray(mods, m);
    }
    for (size_t i = 0; i < s->n_labels; i++)
        if (!cJSON_AddStringToObject(labels, s->label_keys[i], s->label_values[i]))
            goto fail;
    /* Issue 8: absent in labels written before it (= no preload, FRESH). */
    cJSON *pre = cJSON_AddArrayToObject(o, "preload");
    if (!pre || !cJSON_AddNumberToObject(o, "runner", (double)s->runner))
        goto fail;
    for (size_t i = 0; i < s->n_preload; i++) {
        cJSON *m = cJSON_CreateString(s->preload[i]);
        if (!m)
            goto fail;
        cJSON_AddItemToArray(pre, m);
    }
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

/* A non-negative integer field of at most max; SE_INVALID otherwise. */
static int
json_uint(uint64_t *out, const cJSON *obj, const char *name, uint64_t max, se_err *err)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!cJSON_IsNumber(n))
        return se_err_set(err, SE_INVALID, "%s: missing or not a number", name);
    double d = n->valuedouble;
    if (!(d >= 0) || d > (double)max || d != (double)(uint64_t)d)
        return se_err_set(err, SE_INVALID, "%s: out of range", name);
    *out = (uint64_t)d;
    return 0;
}

int
sandbox_spec_from_json(sandbox_spec *out, const sandbox_config *cfg, const char *json, se_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json || strlen(json) > SPEC_JSON_MAX)
        return se_err_set(err, SE_INVALID, "spec label: missing or too long");
    cJSON *root = cJSON_Parse(json);
    int rc = 0;
    char **mods = NULL, **pre = NULL;
    Safeeval__V1__CreateSandboxRequest__LabelsEntry *lab = NULL, **labp = NULL;
    if (!cJSON_IsObject(root)) {
        rc = se_err_set(err, SE_INVALID, "spec label: not a JSON object");
        goto out;
    }
    uint64_t v, idle, created, max_runs;
    if ((rc = json_uint(&v, root, "v", 1000, err)) < 0)
        goto out;
    if (v != SANDBOX_SPEC_VERSION) {
        rc = se_err_set(err, SE_INVALID, "spec label: version %" PRIu64 " unknown", v);
        goto out;
    }
    if ((rc = json_uint(&idle, root, "idle_timeout_s", UINT32_MAX, err)) < 0 ||
        (rc = json_uint(&created, root, "created_at_ms", INT64_MAX / 2, err)) < 0 ||
        (rc = json_uint(&max_runs, root, "max_runs", UINT32_MAX, err)) < 0)
        goto out;
    const cJSON *py = cJSON_GetObjectItemCaseSensitive(root, "python");
    const cJSON *jm = cJSON_GetObjectItemCaseSensitive(root, "modules");
    const cJSON *jl = cJSON_GetObjectItemCaseSensitive(root, "labels");
    const cJSON *jlim = cJSON_GetObjectItemCaseSensitive(root, "limits");
    if (!cJSON_IsString(py) || !cJSON_IsArray(jm) || !cJSON_IsObject(jl) || !cJSON_IsObject(jlim)) {
        rc = se_err_set(err, SE_INVALID, "spec label: python/modules/labels/limits malformed");
        goto out;
    }
    /* Rebuild the request a client would have sent, and validate it the
     * same way: the label came from outside the daemon. */
    Safeeval__V1__CreateSandboxRequest req = SAFEEVAL__V1__CREATE_SANDBOX_REQUEST__INIT;
    Safeeval__V1__Limits lim = SAFEEVAL__V1__LIMITS__INIT;
    req.python_version = py->valuestring;
    int nm = cJSON_GetArraySize(jm);
    if (nm > SE_MAX_MODULES) {
        rc = se_err_set(err, SE_INVALID, "modules: too many");
        goto out;
    }
    mods = calloc((size_t)nm + 1, sizeof(char *));
    if (!mods) {
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto out;
    }
    for (int i = 0; i < nm; i++) {
        const cJSON *m = cJSON_GetArrayItem(jm, i);
        if (!cJSON_IsString(m)) {
            rc = se_err_set(err, SE_INVALID, "modules[%d]: not a string", i);
            goto out;
        }
        mods[i] = m->valuestring;
    }
    req.n_modules = (size_t)nm;
    req.modules = mods;
    int nl = cJSON_GetArraySize(jl);
    if (nl > SANDBOX_MAX_LABELS) {
        rc = se_err_set(err, SE_INVALID, "labels: too many");
        goto out;
    }
    lab = calloc((size_t)nl + 1, sizeof(*lab));
    labp = calloc((size_t)nl + 1, sizeof(*labp));
    if (!lab || !labp) {
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto out;
    }
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, jl)
    {
        if (!cJSON_IsString(it) || !it->string || i >= nl) {
            rc = se_err_set(err, SE_INVALID, "labels: malformed");
            goto out;
        }
        Safeeval__V1__CreateSandboxRequest__LabelsEntry init =
            SAFEEVAL__V1__CREATE_SANDBOX_REQUEST__LABELS_ENTRY__INIT;
        lab[i] = init;
        lab[i].key = it->string;
        lab[i].value = it->valuestring;
        labp[i] = &lab[i];
        i++;
    }
    req.n_labels = (size_t)i;
    req.labels = labp;
    uint64_t x;
#define LIM(f, max)                                                                                \
    do {                                                                                           \
        if ((rc = json_uint(&x, jlim, #f, max, err)) < 0) {                                        \
            se_err_prefix(err, "limits");                                                          \
            goto out;                                                                              \
        }                                                                                          \
        lim.f = (__typeof__(lim.f))x;                                                              \
    } while (0)
    LIM(wall_time_ms, UINT32_MAX);
    LIM(cpu_time_ms, UINT32_MAX);
    LIM(memory_bytes, (1ull << 52));
    LIM(max_processes, UINT32_MAX);
    LIM(max_output_bytes, (1ull << 52));
    LIM(max_file_bytes, (1ull << 52));
    /* Added later: a sandbox made before them has none (0 = the default). */
    if (cJSON_GetObjectItemCaseSensitive(jlim, "max_collect_files"))
        LIM(max_collect_files, UINT32_MAX);
    if (cJSON_GetObjectItemCaseSensitive(jlim, "max_collect_bytes"))
        LIM(max_collect_bytes, (1ull << 52));
#undef LIM
    req.limits = &lim;
    req.idle_timeout_s = (uint32_t)idle;
    req.max_concurrent_runs = (uint32_t)max_runs;
    /* The tenant it belongs to; a label written before tenants existed has
     * none: the anonymous tenant's, as it was then. */
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(root, "owner");
    if (jo && !cJSON_IsString(jo)) {
        rc = se_err_set(err, SE_INVALID, "owner: not a string");
        goto out;
    }
    const char *owner = jo ? jo->valuestring : "";
    if ((rc = sandbox_validate_owner(owner, err)) < 0)
        goto out;
    const cJSON *jp = cJSON_GetObjectItemCaseSensitive(root, "preload");
    if (jp) {
        int np = cJSON_GetArraySize(jp);
        if (!cJSON_IsArray(jp) || np > SANDBOX_MAX_PRELOAD) {
            rc = se_err_set(err, SE_INVALID, "preload: malformed");
            goto out;
        }
        if (!(pre = calloc((size_t)np + 1, sizeof(char *)))) {
            rc = se_err_set(err, SE_INTERNAL, "out of memory");
            goto out;
        }
        for (int k = 0; k < np; k++) {
            const cJSON *m = cJSON_GetArrayItem(jp, k);
            if (!cJSON_IsString(m)) {
                rc = se_err_set(err, SE_INVALID, "preload[%d]: not a string", k);
                goto out;
            }
            pre[k] = m->valuestring;
        }
        req.n_preload = (size_t)np;
        req.preload = pre;
    }
    req.runner = SAFEEVAL__V1__RUNNER__RUNNER_FRESH;
    if (cJSON_GetObjectItemCaseSensitive(root, "runner")) {
        uint64_t runner;
        if ((rc = json_uint(&runner, root, "runner", SAFEEVAL__V1__RUNNER__RUNNER_ZYGOTE, err)) < 0)
            goto out;
        if (runner == SAFEEVAL__V1__RUNNER__RUNNER_DEFAULT) {
            rc = se_err_set(err, SE_INVALID, "runner: the effective runner is never DEFAULT");
            goto out;
        }
        req.runner = (Safeeval__V1__Runner)runner;
    }
    rc = sandbox_validate_create(out, cfg, &req, err);
    if (rc < 0)
        goto out;
    out->created_at_ms = (int64_t)created;
    free(out->owner);
    if (!(out->owner = strdup(owner))) {
        sandbox_spec_clear(out);
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto out;
    }
out:
    if (rc < 0)
        se_err_prefix(err, "spec label");
    free(mods);
    free(pre);
    free(lab);
    free(labp);
    cJSON_Delete(root);
    return rc;
}

static int
add_strings(cJSON *arr, const char *const *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cJSON *x = cJSON_CreateString(s[i]);
        if (!x)
            return -1;
        cJSON_AddItemToArray(arr, x);
    }
    return 0;
}

int
sandbox_container_body(cJSON **out, const sandbox_config *cfg, const char *seccomp_json,
                       const sandbox_spec *spec, const char *id, const char *image, uint64_t memory,
                       se_err *err)
{
    *out = NULL;
    cJSON *b = cJSON_CreateObject();
    char *spec_str = NULL;
    char *secopt = NULL;
    int rc = -SE_INTERNAL;
    if (!b)
        goto oom;
    cJSON *spec_json = sandbox_spec_to_json(spec);
    if (!spec_json)
        goto oom;
    spec_str = cJSON_PrintUnformatted(spec_json);
    cJSON_Delete(spec_json);
    if (!spec_str)
        goto oom;

    /* The agent serves runs over the attached stdin/stdout: stdin stays open
     * across attaches (OpenStdin, not StdinOnce) and no TTY mangles frames. */
    static const char *const cmd[] = {SANDBOX_AGENT_PATH, "--serve", "--zygote"};
    bool zygote = spec->runner == SAFEEVAL__V1__RUNNER__RUNNER_ZYGOTE;
    cJSON *jcmd = cJSON_AddArrayToObject(b, "Cmd");
    cJSON *labels = cJSON_AddObjectToObject(b, "Labels");
    if (!jcmd || add_strings(jcmd, cmd, zygote ? 3 : 2) < 0 ||
        (zygote && add_strings(jcmd, (const char *const *)spec->preload, spec->n_preload) < 0) ||
        !labels || !cJSON_AddBoolToObject(b, "OpenStdin", 1) ||
        !cJSON_AddBoolToObject(b, "StdinOnce", 0) || !cJSON_AddBoolToObject(b, "AttachStdin", 1) ||
        !cJSON_AddBoolToObject(b, "AttachStdout", 1) ||
        !cJSON_AddBoolToObject(b, "AttachStderr", 1) || !cJSON_AddBoolToObject(b, "Tty", 0) ||
        !cJSON_AddStringToObject(b, "Image", image) ||
        !cJSON_AddStringToObject(b, "User", SANDBOX_CONTAINER_USER) ||
        !cJSON_AddBoolToObject(b, "NetworkDisabled", 1) ||
        !cJSON_AddStringToObject(b, "WorkingDir", "/tmp") ||
        !cJSON_AddStringToObject(labels, SE_LABEL_MANAGED, "1") ||
        !cJSON_AddStringToObject(labels, SE_LABEL_SANDBOX, id) ||
        !cJSON_AddStringToObject(labels, SANDBOX_LABEL_WORKER, "1") ||
        !cJSON_AddStringToObject(labels, SE_LABEL_INSTANCE, cfg->instance) ||
        !cJSON_AddStringToObject(labels, SANDBOX_LABEL_PYTHON, spec->python) ||
        !cJSON_AddStringToObject(labels, SANDBOX_LABEL_OWNER, spec->owner ? spec->owner : "") ||
        !cJSON_AddStringToObject(labels, SE_LABEL_SPEC, spec_str))
        goto oom;

    cJSON *hc = cJSON_AddObjectToObject(b, "HostConfig");
    if (!hc)
        goto oom;
    static const char *const caps[] = {"ALL"};
    cJSON *capdrop = cJSON_AddArrayToObject(hc, "CapDrop");
    size_t sl = strlen("seccomp=") + strlen(seccomp_json) + 1;
    secopt = malloc(sl);
    if (!secopt)
        goto oom;
    snprintf(secopt, sl, "seccomp=%s", seccomp_json);
    const char *const secopts[] = {"no-new-privileges", secopt};
    cJSON *jsec = cJSON_AddArrayToObject(hc, "SecurityOpt");
    cJSON *tmpfs = cJSON_AddObjectToObject(hc, "Tmpfs");
    /* One run at a time: the container's limits are the run's (memory is
     * given by the caller: a run may ask for less than its sandbox). */
    uint64_t pids = (uint64_t)spec->limits.max_processes + SANDBOX_WORKER_PIDS_RESERVE;
    if (zygote) {
        /* Room for the zygote's start; once it is up the worker is resized
         * to exactly the run + the reserve + the zygote (worker.c). */
        memory += SANDBOX_ZYGOTE_START_MEMORY;
        pids += SANDBOX_ZYGOTE_PIDS_RESERVE;
    }
    if (!capdrop || add_strings(capdrop, caps, 1) < 0 || !jsec ||
        add_strings(jsec, secopts, 2) < 0 || !tmpfs ||
        !cJSON_AddStringToObject(tmpfs, "/tmp", "rw,nosuid,nodev,size=64m") ||
        !cJSON_AddStringToObject(hc, "NetworkMode", "none") ||
        !cJSON_AddBoolToObject(hc, "ReadonlyRootfs", 1) ||
        /* Empty, not absent: the jail mounts a fresh /proc, which the kernel
         * refuses while parts of the container's /proc are over-mounted.
         * Safe only because the container user is not root. */
        !cJSON_AddArrayToObject(hc, "MaskedPaths") ||
        !cJSON_AddArrayToObject(hc, "ReadonlyPaths") || !cJSON_AddBoolToObject(hc, "Init", 1) ||
        !cJSON_AddBoolToObject(hc, "Privileged", 0) ||
        !cJSON_AddNumberToObject(hc, "Memory", (double)memory) ||
        !cJSON_AddNumberToObject(hc, "MemorySwap", (double)memory) ||
        !cJSON_AddNumberToObject(hc, "PidsLimit", (double)pids) ||
        !cJSON_AddNumberToObject(hc, "NanoCpus", 1e9))
        goto oom;
    cJSON *restart = cJSON_AddObjectToObject(hc, "RestartPolicy");
    if (!restart || !cJSON_AddStringToObject(restart, "Name", "no"))
        goto oom;
    /* The agent's frames travel on stdout: none of it may reach the
     * engine's log store. */
    cJSON *logcfg = cJSON_AddObjectToObject(hc, "LogConfig");
    if (!logcfg || !cJSON_AddStringToObject(logcfg, "Type", "none"))
        goto oom;
    *out = b;
    b = NULL;
    rc = 0;
    goto out;
oom:
    rc = se_err_set(err, SE_INTERNAL, "container body: out of memory");
out:
    cJSON_Delete(b);
    free(spec_str);
    free(secopt);
    return rc;
}
