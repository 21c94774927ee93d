/* GetServerInfo: the version, the Python versions a sandbox can be made for
 * (the base images present now) and the limits a request may ask for. */
#include <stdlib.h>
#include <string.h>

#include "sandbox/internal.h"
#include "util/version.h"

static Safeeval__V1__Limits *
limits_msg(const sandbox_limits *l)
{
    Safeeval__V1__Limits *m = malloc(sizeof(*m));
    if (!m)
        return NULL;
    safeeval__v1__limits__init(m);
    m->wall_time_ms = l->wall_time_ms;
    m->cpu_time_ms = l->cpu_time_ms;
    m->memory_bytes = l->memory_bytes;
    m->max_processes = l->max_processes;
    m->max_output_bytes = l->max_output_bytes;
    m->max_file_bytes = l->max_file_bytes;
    m->max_collect_files = l->max_collect_files;
    m->max_collect_bytes = l->max_collect_bytes;
    return m;
}

/* "3.11" names "3.11.2" (and "3.11" itself). */
static bool
names_version(const char *want, const char *have)
{
    size_t n = strlen(want);
    return strncmp(want, have, n) == 0 && (have[n] == '\0' || have[n] == '.');
}

/* A base without a version label: what a live sandbox of it reported. */
static void
full_from_sandboxes(sandbox_entry *const *es, size_t n, image_base *b)
{
    for (size_t i = 0; i < n && !b->full_version[0]; i++) {
        /* python_version is set before an entry is added, never changed. */
        if (strcmp(es[i]->spec.python, b->version) == 0 &&
            names_version(b->version, es[i]->python_version))
            memcpy(b->full_version, es[i]->python_version, sizeof(b->full_version));
    }
}

static char *
dup_str(const char *s, bool *oom)
{
    char *d = strdup(s ? s : "");
    if (!d)
        *oom = true;
    return d;
}

int
sandbox_server_info(sandbox_manager *m, Safeeval__V1__ServerInfo **out, se_err *err)
{
    *out = NULL;
    image_base *bases = NULL;
    size_t n_bases = 0;
    int rc = image_base_list(m->ic, &bases, &n_bases, err);
    if (rc < 0)
        return rc;
    sandbox_entry **es = NULL;
    size_t n_es = 0;
    rc = sandbox_registry_snapshot(&m->reg, &es, &n_es, err);
    if (rc < 0) {
        free(bases);
        return rc;
    }
    for (size_t i = 0; i < n_bases; i++)
        full_from_sandboxes(es, n_es, &bases[i]);
    for (size_t i = 0; i < n_es; i++)
        sandbox_entry_unref(&m->reg, es[i]);
    free(es);

    bool oom = false;
    Safeeval__V1__ServerInfo *info = calloc(1, sizeof(*info));
    if (!info) {
        free(bases);
        return se_err_set(err, SE_INTERNAL, "out of memory");
    }
    safeeval__v1__server_info__init(info);
    info->version = dup_str(se_version(), &oom);
    info->build_id = dup_str(se_build_id(), &oom);
    info->api_version = dup_str("safeeval.v1", &oom);
    info->default_python_version = dup_str(m->default_python, &oom);
    info->default_limits = limits_msg(&m->cfg.default_limits);
    info->max_limits = limits_msg(&m->cfg.max_limits);
    oom |= !info->default_limits || !info->max_limits;
    info->max_concurrent_runs = m->cfg.max_concurrent_runs;
    info->max_sandboxes = m->cfg.max_sandboxes;
    if (n_bases && !oom) {
        info->pythons = calloc(n_bases, sizeof(*info->pythons));
        oom |= !info->pythons;
    }
    for (size_t i = 0; i < n_bases && !oom; i++) {
        Safeeval__V1__PythonVersion *p = malloc(sizeof(*p));
        if (!p) {
            oom = true;
            break;
        }
        safeeval__v1__python_version__init(p);
        info->pythons[info->n_pythons++] = p;
        p->version = dup_str(bases[i].version, &oom);
        p->full_version = dup_str(bases[i].full_version, &oom);
        p->base_image = dup_str(bases[i].ref, &oom);
    }
    free(bases);
    if (oom) {
        protobuf_c_message_free_unpacked(&info->base, NULL);
        return se_err_set(err, SE_INTERNAL, "out of memory");
    }
    *out = info;
    return 0;
}
