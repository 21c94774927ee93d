/* The spec of a sandbox served from a warm pool, kept on the daemon's disk.
 *
 * A pool worker is made before anyone asks for it, so its labels cannot
 * carry the spec (limits, labels, idle timeout, max runs, created_at, owner)
 * of the sandbox it will serve, and labels never change after a create. The
 * spec therefore lives in one small file per such sandbox, written before
 * the create answers and removed at its destroy: <state-dir>/<instance>/<id>.json
 * = {"v":1, "sandbox": id, "image": tag, "spec": <the spec label's JSON text>}.
 * Why a file and not the container: whatever is inside the worker is in
 * reach of the code it runs, and a run must never be able to raise its own
 * limits after a restart; the engine's other mutable fields (the name) are
 * too small and writable by anyone who can rename. The file is written
 * atomically (a temp file, fsync, rename, fsync of the folder), mode 0600 in
 * a 0700 folder, and read back with the same validation as a client's
 * create request. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sandbox/internal.h"
#include "util/cleanup.h"
#include "util/file.h"
#include "util/log.h"

#define STATE_FILE_MAX (128u * 1024)
#define STATE_VERSION 1
#define STATE_SUFFIX ".json"

static int
state_path(char *out, size_t size, const sandbox_manager *m, const char *id, const char *prefix,
           const char *suffix)
{
    int n = snprintf(out, size, "%s/%s%s%s", m->warm.state_dir, prefix, id, suffix);
    return n > 0 && (size_t)n < size ? 0 : -1;
}

static int
write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int
sandbox_state_write(sandbox_manager *m, const sandbox_entry *e, se_err *err)
{
    if (!m->warm.state_dir)
        return se_err_set(err, SE_INTERNAL, "no state dir");
    char path[PATH_MAX], tmp[PATH_MAX];
    if (state_path(path, sizeof(path), m, e->id, "", STATE_SUFFIX) < 0 ||
        state_path(tmp, sizeof(tmp), m, e->id, ".", ".tmp") < 0)
        return se_err_set(err, SE_INVALID, "state dir path too long");
    cJSON *spec = sandbox_spec_to_json(&e->spec);
    cleanup_free char *spec_str = spec ? cJSON_PrintUnformatted(spec) : NULL;
    cJSON_Delete(spec);
    cJSON *root = cJSON_CreateObject();
    cleanup_free char *text = NULL;
    if (spec_str && root && cJSON_AddNumberToObject(root, "v", STATE_VERSION) &&
        cJSON_AddStringToObject(root, "sandbox", e->id) &&
        cJSON_AddStringToObject(root, "image", e->image) &&
        cJSON_AddStringToObject(root, "spec", spec_str))
        text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text)
        return se_err_set(err, SE_INTERNAL, "out of memory");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return se_err_errno(err, SE_INTERNAL, "state file %s", tmp);
    int rc = 0;
    if (write_all(fd, text, strlen(text)) < 0 || fsync(fd) < 0)
        rc = se_err_errno(err, SE_INTERNAL, "write %s", tmp);
    if (close(fd) < 0 && rc == 0)
        rc = se_err_errno(err, SE_INTERNAL, "close %s", tmp);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = se_err_errno(err, SE_INTERNAL, "rename %s", tmp);
    if (rc < 0) {
        unlink(tmp);
        return rc;
    }
    /* The rename is durable once the folder is. */
    int dfd = open(m->warm.state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) < 0)
        rc = se_err_errno(err, SE_INTERNAL, "fsync %s", m->warm.state_dir);
    if (dfd >= 0)
        close(dfd);
    if (rc < 0)
        unlink(path);
    return rc;
}

int
sandbox_state_read(sandbox_manager *m, const char *id, sandbox_spec *spec, char **image,
                   se_err *err)
{
    memset(spec, 0, sizeof(*spec));
    *image = NULL;
    if (!m->warm.state_dir)
        return se_err_set(err, SE_NOT_FOUND, "no state dir");
    int rc = sandbox_validate_id(id, err);
    if (rc < 0)
        return rc;
    char path[PATH_MAX];
    if (state_path(path, sizeof(path), m, id, "", STATE_SUFFIX) < 0)
        return se_err_set(err, SE_INVALID, "state dir path too long");
    cleanup_free uint8_t *text = NULL;
    size_t len = 0;
    rc = file_read_all(path, STATE_FILE_MAX, FILE_NOFOLLOW, &text, &len, NULL, err);
    if (rc < 0)
        return rc;
    cJSON *root = cJSON_ParseWithLength((const char *)text, len);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "v");
    const cJSON *sid = cJSON_GetObjectItemCaseSensitive(root, "sandbox");
    const cJSON *img = cJSON_GetObjectItemCaseSensitive(root, "image");
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(root, "spec");
    if (!cJSON_IsNumber(v) || v->valuedouble != STATE_VERSION || !cJSON_IsString(sid) ||
        strcmp(sid->valuestring, id) != 0 || !cJSON_IsString(img) || !*img->valuestring ||
        strlen(img->valuestring) > 256 || !cJSON_IsString(sp)) {
        rc = se_err_set(err, SE_INVALID, "state file %s: malformed", path);
    } else {
        rc = sandbox_spec_from_json(spec, &m->cfg, sp->valuestring, err);
        if (rc == 0 && !(*image = strdup(img->valuestring))) {
            sandbox_spec_clear(spec);
            rc = se_err_set(err, SE_INTERNAL, "out of memory");
        }
    }
    cJSON_Delete(root);
    return rc;
}

void
sandbox_state_remove(sandbox_manager *m, const char *id)
{
    char path[PATH_MAX];
    if (!m->warm.state_dir || state_path(path, sizeof(path), m, id, "", STATE_SUFFIX) < 0)
        return;
    if (unlink(path) < 0 && errno != ENOENT)
        log_warn("remove state file %s: %s", path, strerror(errno));
}

void
sandbox_state_sweep(sandbox_manager *m)
{
    if (!m->warm.state_dir)
        return;
    DIR *d = opendir(m->warm.state_dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        size_t n = strlen(name);
        char id[SANDBOX_ID_MAX + 1];
        bool tmp = name[0] == '.' && n > 5 && strcmp(name + n - 4, ".tmp") == 0;
        bool json = n > 5 && strcmp(name + n - 5, STATE_SUFFIX) == 0;
        if (!tmp && !json)
            continue;
        size_t idlen = n - 5; /* ".<id>.tmp" and "<id>.json" alike */
        if (idlen > SANDBOX_ID_MAX)
            continue;
        memcpy(id, tmp ? name + 1 : name, idlen);
        id[idlen] = '\0';
        se_err e2;
        se_err_clear(&e2);
        if (sandbox_validate_id(id, &e2) < 0)
            continue;
        sandbox_entry *e = tmp ? NULL : sandbox_registry_find(&m->reg, id);
        if (e) {
            sandbox_entry_unref(&m->reg, e);
            continue;
        }
        /* Its sandbox was not recovered (or a write never finished). */
        if (unlinkat(dirfd(d), name, 0) < 0)
            log_warn("remove state file %s/%s: %s", m->warm.state_dir, name, strerror(errno));
        else
            log_info("state file %s: no such sandbox any more: removed", name);
    }
    closedir(d);
}
