/* Request validation inside the agent. The daemon validates too, but the
 * agent is the last line before the jail and trusts nothing it is sent. */
#include <inttypes.h>
#include <stdbool.h>
#include <string.h>

#include "agent/agent.h"

static bool
has_control(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return true;
    return false;
}

int
agent_path_validate(const char *path, se_err *err)
{
    if (!path || !*path)
        return se_err_set(err, SE_INVALID, "file path is empty");
    size_t len = strlen(path);
    if (len > AGENT_MAX_PATH)
        return se_err_set(err, SE_INVALID, "file path longer than %d bytes", AGENT_MAX_PATH);
    if (path[0] == '/')
        return se_err_set(err, SE_INVALID, "file path is absolute");
    if (has_control(path))
        return se_err_set(err, SE_INVALID, "file path has control characters");
    int depth = 0;
    const char *p = path;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0)
            return se_err_set(err, SE_INVALID, "file path has an empty component");
        if (n > AGENT_MAX_COMPONENT)
            return se_err_set(err, SE_INVALID, "file path component longer than %d bytes",
                              AGENT_MAX_COMPONENT);
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return se_err_set(err, SE_INVALID, "file path has a '.' or '..' component");
        if (++depth > AGENT_MAX_DEPTH)
            return se_err_set(err, SE_INVALID, "file path deeper than %d", AGENT_MAX_DEPTH);
        if (!slash)
            break;
        p = slash + 1;
    }
    return 0;
}

int
agent_filename_validate(const char *name, se_err *err)
{
    if (!name || !*name)
        return se_err_set(err, SE_INVALID, "filename is empty");
    if (strchr(name, '/'))
        return se_err_set(err, SE_INVALID, "filename is not a plain base name");
    if (strlen(name) > AGENT_MAX_COMPONENT)
        return se_err_set(err, SE_INVALID, "filename longer than %d bytes", AGENT_MAX_COMPONENT);
    return agent_path_validate(name, err);
}

int
agent_env_name_validate(const char *name, se_err *err)
{
    if (!name || !*name)
        return se_err_set(err, SE_INVALID, "env name is empty");
    if (strlen(name) > AGENT_MAX_ENV_NAME)
        return se_err_set(err, SE_INVALID, "env name longer than %d bytes", AGENT_MAX_ENV_NAME);
    if (strchr(name, '=') || has_control(name))
        return se_err_set(err, SE_INVALID, "env name has '=' or control characters");
    return 0;
}

int
agent_collect_pattern_validate(const char *pattern, se_err *err)
{
    /* The same rules as a file's path: a pattern names files under the
     * work dir and nothing else ("..", "/x" and "./x" are refused, not
     * matched against). */
    return agent_path_validate(pattern, err);
}

/* a is a proper directory prefix of b ("x" of "x/y"). */
static bool
is_dir_prefix(const char *a, const char *b)
{
    size_t n = strlen(a);
    return strncmp(a, b, n) == 0 && b[n] == '/';
}

static int
validate_limits(const Safeeval__V1__Limits *l, se_err *err)
{
    if (!l)
        return se_err_set(err, SE_INVALID, "limits missing");
    if (!l->wall_time_ms || !l->cpu_time_ms || !l->memory_bytes || !l->max_processes ||
        !l->max_output_bytes || !l->max_file_bytes)
        return se_err_set(err, SE_INVALID, "limits: every field must be set");
    if (l->max_processes > AGENT_MAX_PROCESSES)
        return se_err_set(err, SE_INVALID, "limits.max_processes over %d", AGENT_MAX_PROCESSES);
    if (l->memory_bytes < AGENT_MIN_MEMORY)
        return se_err_set(err, SE_INVALID, "limits.memory_bytes under 1 MiB");
    if (l->memory_bytes > (1ull << 40) || l->max_file_bytes > (1ull << 40))
        return se_err_set(err, SE_INVALID, "limits: bytes over 1 TiB");
    return 0;
}

int
agent_request_validate(const agent_request *req, se_err *err)
{
    if (!req)
        return se_err_set(err, SE_INVALID, "no request");
    int rc = validate_limits(req->limits, err);
    if (rc < 0)
        return rc;
    if ((rc = agent_filename_validate(req->filename, err)) < 0)
        return se_err_prefix(err, "filename");
    if (req->script.len == 0)
        return se_err_set(err, SE_INVALID, "script is empty");
    if (req->n_files > AGENT_MAX_FILES)
        return se_err_set(err, SE_INVALID, "more than %d files", AGENT_MAX_FILES);
    if (req->n_args > AGENT_MAX_ARGS)
        return se_err_set(err, SE_INVALID, "more than %d args", AGENT_MAX_ARGS);
    if (req->n_env > AGENT_MAX_ENV)
        return se_err_set(err, SE_INVALID, "more than %d env entries", AGENT_MAX_ENV);

    size_t total = 0;
    for (size_t i = 0; i < req->n_args; i++) {
        if (!req->args[i])
            return se_err_set(err, SE_INVALID, "args[%zu] missing", i);
        size_t n = strlen(req->args[i]);
        if (n > AGENT_MAX_ARG)
            return se_err_set(err, SE_INVALID, "args[%zu] longer than %d bytes", i, AGENT_MAX_ARG);
        total += n + 1;
    }
    for (size_t i = 0; i < req->n_env; i++) {
        const Safeeval__Agent__V1__RunRequest__EnvEntry *e = req->env[i];
        if (!e || !e->key || !e->value)
            return se_err_set(err, SE_INVALID, "env[%zu] missing", i);
        if ((rc = agent_env_name_validate(e->key, err)) < 0)
            return se_err_prefix(err, "env[%zu]", i);
        size_t n = strlen(e->value);
        if (n > AGENT_MAX_ARG)
            return se_err_set(err, SE_INVALID, "env[%zu] value longer than %d bytes", i,
                              AGENT_MAX_ARG);
        total += strlen(e->key) + n + 2;
    }
    if (req->n_collect > AGENT_MAX_COLLECT)
        return se_err_set(err, SE_INVALID, "more than %d collect patterns", AGENT_MAX_COLLECT);
    for (size_t i = 0; i < req->n_collect; i++) {
        if ((rc = agent_collect_pattern_validate(req->collect[i], err)) < 0)
            return se_err_prefix(err, "collect[%zu]", i);
        total += strlen(req->collect[i]) + 1;
    }
    if (req->n_collect && (!req->limits->max_collect_files || !req->limits->max_collect_bytes ||
                           req->limits->max_collect_files > AGENT_MAX_COLLECT_FILES ||
                           req->limits->max_collect_bytes > AGENT_MAX_COLLECT_BYTES))
        return se_err_set(err, SE_INVALID,
                          "limits: collect caps unset or over %d files, %llu bytes",
                          AGENT_MAX_COLLECT_FILES, (unsigned long long)AGENT_MAX_COLLECT_BYTES);
    if (total > AGENT_MAX_ARGV_TOTAL)
        return se_err_set(err, SE_INVALID, "args and env over %d bytes", AGENT_MAX_ARGV_TOTAL);

    for (size_t i = 0; i < req->n_files; i++) {
        const Safeeval__V1__File *f = req->files[i];
        if (!f)
            return se_err_set(err, SE_INVALID, "files[%zu] missing", i);
        if ((rc = agent_path_validate(f->path, err)) < 0)
            return se_err_prefix(err, "files[%zu]", i);
        if (strcmp(f->path, req->filename) == 0 || is_dir_prefix(req->filename, f->path))
            return se_err_set(err, SE_INVALID, "files[%zu] collides with the script", i);
        /* Quadratic, but n <= 256: duplicates and a file used as a directory
         * would make the jail setup fail later with a less clear message. */
        for (size_t j = 0; j < i; j++) {
            const char *o = req->files[j]->path;
            if (strcmp(o, f->path) == 0)
                return se_err_set(err, SE_INVALID, "files[%zu] duplicates files[%zu]", i, j);
            if (is_dir_prefix(o, f->path) || is_dir_prefix(f->path, o))
                return se_err_set(err, SE_INVALID,
                                  "files[%zu] and files[%zu]: a file is used as a directory", i, j);
        }
    }
    return 0;
}

int
agent_msg_validate(const agent_msg *msg, se_err *err)
{
    if (!msg)
        return se_err_set(err, SE_INVALID, "no request");
    switch (msg->op_case) {
    case SAFEEVAL__AGENT__V1__REQUEST__OP_SYNC:
        return 0;
    case SAFEEVAL__AGENT__V1__REQUEST__OP_RUN:
    case SAFEEVAL__AGENT__V1__REQUEST__OP_CANCEL:
    case SAFEEVAL__AGENT__V1__REQUEST__OP_ACK:
        break;
    default:
        return se_err_set(err, SE_INVALID, "request has no known op (%d)", (int)msg->op_case);
    }
    if (msg->id == 0)
        return se_err_set(err, SE_INVALID, "request names run 0");
    if (msg->op_case == SAFEEVAL__AGENT__V1__REQUEST__OP_RUN) {
        int rc = agent_request_validate(msg->run, err);
        if (rc < 0)
            return se_err_prefix(err, "run %" PRIu64, msg->id);
    }
    return 0;
}

int
agent_msg_peek_id(uint64_t *id, const uint8_t *head, size_t len)
{
    /* Field 1, wire type 0: the key byte 0x08, then a varint of at most 10
     * bytes (protobuf-c writes the fields in number order, so it is first). */
    if (len < 2 || head[0] != 0x08)
        return 0;
    uint64_t v = 0;
    for (size_t i = 1; i < len && i <= 10; i++) {
        v |= (uint64_t)(head[i] & 0x7f) << (7 * (i - 1));
        if (!(head[i] & 0x80)) {
            *id = v;
            return 1;
        }
    }
    return 0;
}

int
agent_module_name_validate(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > AGENT_ZYGOTE_MODULE_MAX)
        return -1;
    bool start = true;
    for (const char *p = name; *p; p++) {
        char c = *p;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        bool digit = c >= '0' && c <= '9';
        if (c == '.') {
            if (start)
                return -1;
            start = true;
        } else if (alpha || (digit && !start)) {
            start = false;
        } else {
            return -1;
        }
    }
    return start ? -1 : 0;
}
