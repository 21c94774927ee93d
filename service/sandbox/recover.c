/* Recovery after a restart: our containers carry labels (managed, sandbox
 * id, spec JSON). Running ones come back under the same id; anything that
 * cannot be recovered is removed, so nothing of ours leaks. The labels came
 * from outside this process and are validated like a client's request. */
#include <stdio.h>
#include <string.h>

#include "sandbox/internal.h"
#include "util/clock.h"
#include "util/log.h"

static const char *
label_of(const cJSON *labels, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(labels, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Re-registers one container; SE_* < 0 means "remove it". */
static int
recover_one(sandbox_manager *m, const cJSON *c, const char *cid, se_err *err)
{
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(c, "Labels");
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(c, "State");
    const cJSON *image = cJSON_GetObjectItemCaseSensitive(c, "Image");
    const char *id = label_of(labels, SE_LABEL_SANDBOX);
    const char *spec_json = label_of(labels, SE_LABEL_SPEC);
    const char *py = label_of(labels, SANDBOX_LABEL_PYTHON);
    if (!cJSON_IsString(state) || strcmp(state->valuestring, "running") != 0)
        return se_err_set(err, SE_CONFLICT, "not running");
    if (!id || sandbox_validate_id(id, err) < 0)
        return se_err_set(err, SE_INVALID, "bad sandbox label");
    if (!cJSON_IsString(image) || strlen(image->valuestring) > 256)
        return se_err_set(err, SE_INVALID, "bad image");
    sandbox_entry *e = calloc(1, sizeof(*e));
    if (!e)
        return se_err_set(err, SE_INTERNAL, "out of memory");
    snprintf(e->id, sizeof(e->id), "%s", id);
    int rc = sandbox_spec_from_json(&e->spec, &m->cfg, spec_json, err);
    if (rc < 0)
        goto fail;
    if (!py || strcmp(py, e->spec.python) != 0) {
        rc = se_err_set(err, SE_INVALID, "python label does not match the spec");
        goto fail;
    }
    rc = sandbox_read_python_version(m, cid, e->python_version, err);
    if (rc < 0)
        goto fail;
    e->container_id = strdup(cid);
    e->image = strdup(image->valuestring);
    if (!e->container_id || !e->image) {
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
        goto fail;
    }
    e->last_used_ms = clock_wall_ms();
    rc = sandbox_registry_add(&m->reg, e, false, err);
    if (rc < 0)
        goto fail;
    log_info("sandbox %s recovered (container %.12s, python %s)", e->id, cid, e->python_version);
    return 0;
fail:
    sandbox_entry_free(e);
    return rc;
}

int
sandbox_manager_recover(sandbox_manager *m, se_err *err)
{
    /* Only this instance's sandboxes: other daemons on the same engine
     * keep theirs. */
    char instance_filter[64];
    snprintf(instance_filter, sizeof(instance_filter), SE_LABEL_INSTANCE "=%s", m->cfg.instance);
    const char *const filters[] = {SE_LABEL_MANAGED "=1", SE_LABEL_SANDBOX, instance_filter, NULL};
    cJSON *list = NULL;
    int rc = docker_container_list(m->dc, filters, true, &list, err);
    if (rc < 0)
        return se_err_prefix(err, "recover: list containers");
    size_t ok = 0, removed = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, list)
    {
        const cJSON *jid = cJSON_GetObjectItemCaseSensitive(c, "Id");
        if (!cJSON_IsString(jid) || strlen(jid->valuestring) > 128)
            continue;
        const char *cid = jid->valuestring;
        /* Only sandbox containers carry the sandbox label. Image build
         * containers inherit safeeval.managed from the recipe's LABEL and
         * must be left alone: removing one breaks a build in progress. */
        const cJSON *labels = cJSON_GetObjectItemCaseSensitive(c, "Labels");
        if (!label_of(labels, SE_LABEL_SANDBOX)) {
            log_debug("recover: container %.12s is not a sandbox: left alone", cid);
            continue;
        }
        se_err e2;
        se_err_clear(&e2);
        if (recover_one(m, c, cid, &e2) == 0) {
            ok++;
            continue;
        }
        log_warn("recover: container %.12s cannot be recovered (%s): removing", cid, e2.msg);
        se_err_clear(&e2);
        if (docker_container_remove(m->dc, cid, &e2) < 0 && e2.code != SE_NOT_FOUND)
            log_warn("recover: remove %.12s: %s", cid, e2.msg);
        else
            removed++;
    }
    cJSON_Delete(list);
    log_info("recover: %zu sandboxes recovered, %zu containers removed", ok, removed);
    se_err e3;
    se_err_clear(&e3);
    if (image_prune_dangling(m->ic, 3600, &e3) < 0)
        log_warn("recover: prune dangling images: %s", e3.msg);
    return 0;
}
