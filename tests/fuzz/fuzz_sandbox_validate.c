/* The daemon's validation of client requests. The first input byte picks
 * what the rest is:
 *   0 an EvalRequest          1 an ExecuteFileRequest
 *   2 a CreateSandboxRequest  3 a safeeval.spec label (a container's JSON,
 *                               read back at recovery)
 *   4 a string for the single-field validators (image module and version,
 *     sandbox id, file name, path, label-free instance name)
 * Requests go through the wire walk first, as in the daemon (a NUL in a
 * string, or bytes it cannot walk, are refused before anything else).
 * A run request the daemon accepts is packed into the agent's frame exactly
 * as the daemon would send it, and the agent must accept it too (otherwise a
 * client error would surface as an internal one). The daemon normalises
 * file paths in place ("./a" -> "a"): what it keeps must be what the agent
 * takes unchanged, and never names the script or a directory over it. A
 * create request's spec must survive the label round trip. */
#include <string.h>

#include "agent/frame.h"
#include "agent/agent.h"
#include "fuzz.h"
#include "image/image.h"
#include "sandbox/internal.h"
#include "util/pbcheck.h"

enum { S_EVAL, S_EXEC, S_CREATE, S_SPEC, S_STRING, S_COUNT };

static sandbox_config
fuzz_cfg(void)
{
    sandbox_config c = {
        .instance = "fuzz",
        .max_sandboxes = 4,
        .default_idle_timeout_s = 600,
        .max_idle_timeout_s = 3600,
        .default_python = "3.11",
        .default_limits = {5000, 5000, 256u << 20, 32, 1 << 20, 16 << 20, 64, 1 << 20},
        .max_limits = {60000, 60000, 1024u << 20, 128, 16 << 20, 256 << 20, 1024, 64 << 20},
        .max_concurrent_runs = 2,
        .reap_interval_s = 0,
    };
    return c;
}

/* FUZZ_LENIENT=1 in the environment: report a daemon/agent disagreement
 * without stopping, to fuzz past a known one (keep such finds out of the
 * corpus: the replay is strict). */
static bool
lenient(void)
{
    static int v = -1;
    if (v < 0)
        v = getenv("FUZZ_LENIENT") != NULL;
    return v;
}

static void
disagree(const char *what, const char *msg)
{
    fprintf(stderr, "daemon accepted, agent refused %s: %s\n", what, msg);
    if (!lenient())
        abort();
}

/* The daemon's frame for an accepted run goes through the agent's checks. */
static void
roundtrip_to_agent(const sandbox_run_input *in, const sandbox_limits *lim)
{
    uint8_t *frame = NULL;
    size_t frame_len = 0;
    se_err err;
    se_err_clear(&err);
    if (sandbox_run_frame(&frame, &frame_len, 1, in, lim, &err) < 0) {
        FUZZ_CHECK(frame == NULL);
        return;
    }
    const uint8_t *payload;
    uint32_t plen;
    size_t consumed;
    FUZZ_CHECK(frame_parse(frame, frame_len, FRAME_MAX, &payload, &plen, &consumed) == 1);
    FUZZ_CHECK(consumed == frame_len);
    Safeeval__Agent__V1__Request *r = safeeval__agent__v1__request__unpack(NULL, plen, payload);
    FUZZ_CHECK(r != NULL);
    FUZZ_CHECK(r->id == 1 && r->op_case == SAFEEVAL__AGENT__V1__REQUEST__OP_RUN && r->run);
    const agent_request *req = r->run;
    if (agent_request_validate(req, &err) < 0)
        disagree("the run", err.msg);
    FUZZ_CHECK(req->script.len == in->script_len && req->n_files == in->n_files &&
               req->n_args == in->n_args && req->n_env == in->n_env);
    /* The paths the agent gets are the daemon's normalised ones. */
    for (size_t i = 0; i < req->n_files; i++)
        FUZZ_CHECK(strcmp(req->files[i]->path, in->files[i]->path) == 0);
    safeeval__agent__v1__request__free_unpacked(r, NULL);
    free(frame);
}

/* As sandbox_eval / sandbox_execute_file build it (sandbox/manager.c). */
static void
check_run(const char *id, const uint8_t *script, size_t script_len, const char *filename,
          ProtobufCBinaryData stdin_data, size_t n_args, char **args, size_t n_env,
          char *const *env_k, char *const *env_v, const Safeeval__V1__Limits *limits,
          size_t n_files, Safeeval__V1__File **files, bool is_eval)
{
    if (n_env > SANDBOX_MAX_ENV)
        return;
    sandbox_run_input in = {
        .sandbox_id = id,
        .script = script,
        .script_len = script_len,
        .filename = filename,
        .stdin_data = stdin_data.data,
        .stdin_len = stdin_data.len,
        .args = args,
        .n_args = n_args,
        .env_keys = (const char *const *)env_k,
        .env_values = (const char *const *)env_v,
        .n_env = n_env,
        .limits = limits,
        .files = files,
        .n_files = n_files,
    };
    se_err err;
    se_err_clear(&err);
    (void)sandbox_validate_id(id, &err);
    int rc = sandbox_validate_run(&in, is_eval, &err);
    if (rc < 0) {
        FUZZ_CHECK(err.code == -rc);
        return;
    }
    /* Normalised already: the strict rule holds, normalising again changes
     * nothing, and no file is the script or under it. */
    size_t flen = strlen(filename);
    for (size_t i = 0; i < n_files; i++) {
        const char *p = files[i]->path;
        FUZZ_CHECK(sandbox_validate_path(p, &err) == 0);
        FUZZ_CHECK(strcmp(p, filename) != 0);
        FUZZ_CHECK(!(strncmp(p, filename, flen) == 0 && p[flen] == '/'));
    }
    /* A sandbox with the configured defaults, as a create without limits
     * would get. */
    sandbox_config cfg = fuzz_cfg();
    sandbox_limits sb, lim;
    FUZZ_CHECK(sandbox_limits_for_sandbox(&sb, &cfg, NULL, &err) == 0);
    rc = sandbox_limits_for_run(&lim, &sb, limits, &err);
    if (rc < 0) {
        FUZZ_CHECK(rc == -SE_INVALID);
        return;
    }
    FUZZ_CHECK(lim.wall_time_ms <= sb.wall_time_ms && lim.memory_bytes <= sb.memory_bytes &&
               lim.max_output_bytes <= sb.max_output_bytes);
    roundtrip_to_agent(&in, &lim);
}

#define MAX_ENV_SPLIT (SANDBOX_MAX_ENV + 1)

/* The daemon walks every request's bytes before it unpacks them
 * (rpc/server.c, util/pbcheck.h): what the walk refuses never reaches the
 * validators. */
static bool
decodes(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t size)
{
    se_err err;
    se_err_clear(&err);
    int rc = pbcheck_message(d, size ? data : NULL, size, &err);
    FUZZ_CHECK(rc == 0 || rc == -SE_INVALID);
    return rc == 0;
}

static void
fuzz_eval(const uint8_t *data, size_t size)
{
    if (!decodes(&safeeval__v1__eval_request__descriptor, data, size))
        return;
    Safeeval__V1__EvalRequest *r = safeeval__v1__eval_request__unpack(NULL, size, data);
    if (!r)
        return;
    char *k[MAX_ENV_SPLIT], *v[MAX_ENV_SPLIT];
    for (size_t i = 0; i < r->n_env && i < MAX_ENV_SPLIT; i++) {
        k[i] = r->env[i]->key;
        v[i] = r->env[i]->value;
    }
    check_run(r->sandbox_id, (const uint8_t *)r->code, r->code ? strlen(r->code) : 0, "main.py",
              r->stdin, r->n_args, r->args, r->n_env, k, v, r->limits, r->n_files, r->files, true);
    safeeval__v1__eval_request__free_unpacked(r, NULL);
}

static void
fuzz_exec(const uint8_t *data, size_t size)
{
    if (!decodes(&safeeval__v1__execute_file_request__descriptor, data, size))
        return;
    Safeeval__V1__ExecuteFileRequest *r =
        safeeval__v1__execute_file_request__unpack(NULL, size, data);
    if (!r)
        return;
    char *k[MAX_ENV_SPLIT], *v[MAX_ENV_SPLIT];
    for (size_t i = 0; i < r->n_env && i < MAX_ENV_SPLIT; i++) {
        k[i] = r->env[i]->key;
        v[i] = r->env[i]->value;
    }
    check_run(r->sandbox_id, r->content.data, r->content.len, r->filename, r->stdin, r->n_args,
              r->args, r->n_env, k, v, r->limits, r->n_files, r->files, false);
    safeeval__v1__execute_file_request__free_unpacked(r, NULL);
}

static void
spec_equal(const sandbox_spec *a, const sandbox_spec *b)
{
    FUZZ_CHECK(strcmp(a->python, b->python) == 0);
    FUZZ_CHECK(a->n_modules == b->n_modules && a->n_labels == b->n_labels);
    for (size_t i = 0; i < a->n_modules; i++)
        FUZZ_CHECK(strcmp(a->modules[i], b->modules[i]) == 0);
    for (size_t i = 0; i < a->n_labels; i++) {
        FUZZ_CHECK(strcmp(a->label_keys[i], b->label_keys[i]) == 0);
        FUZZ_CHECK(strcmp(a->label_values[i], b->label_values[i]) == 0);
    }
    FUZZ_CHECK(memcmp(&a->limits, &b->limits, sizeof(a->limits)) == 0);
    FUZZ_CHECK(a->idle_timeout_s == b->idle_timeout_s);
    FUZZ_CHECK(a->created_at_ms == b->created_at_ms);
}

/* A spec the daemon accepts (from a client or from a label at recovery) is
 * one a client could have asked for, and the label the daemon writes for it
 * reads back as the same spec. */
static void
check_valid_spec(const sandbox_spec *s, const sandbox_config *cfg)
{
    se_err err;
    se_err_clear(&err);
    FUZZ_CHECK(image_validate_version(s->python, &err) == 0);
    for (size_t i = 0; i < s->n_modules; i++)
        FUZZ_CHECK(image_validate_module(s->modules[i], &err) == 0);

    cJSON *j = sandbox_spec_to_json(s);
    FUZZ_CHECK(j != NULL);
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    FUZZ_CHECK(text != NULL);
    sandbox_spec back;
    int rc = sandbox_spec_from_json(&back, cfg, text, &err);
    if (rc < 0)
        fprintf(stderr, "spec label did not read back: %s\nlabel: %s\n", err.msg, text);
    FUZZ_CHECK(rc == 0);
    spec_equal(s, &back);
    sandbox_spec_clear(&back);
    free(text);
}

static void
fuzz_create(const uint8_t *data, size_t size)
{
    if (!decodes(&safeeval__v1__create_sandbox_request__descriptor, data, size))
        return;
    Safeeval__V1__CreateSandboxRequest *r =
        safeeval__v1__create_sandbox_request__unpack(NULL, size, data);
    if (!r)
        return;
    sandbox_config cfg = fuzz_cfg();
    sandbox_spec spec;
    se_err err;
    se_err_clear(&err);
    int rc = sandbox_validate_create(&spec, &cfg, r, &err);
    if (rc == 0) {
        FUZZ_CHECK(spec.idle_timeout_s > 0 && spec.idle_timeout_s <= cfg.max_idle_timeout_s);
        check_valid_spec(&spec, &cfg);
    } else {
        FUZZ_CHECK(err.code == -rc);
    }
    sandbox_spec_clear(&spec);
    safeeval__v1__create_sandbox_request__free_unpacked(r, NULL);
}

static void
fuzz_spec(const uint8_t *data, size_t size)
{
    char *json = fuzz_strndup(data, size);
    if (!json)
        abort();
    sandbox_config cfg = fuzz_cfg();
    sandbox_spec spec;
    se_err err;
    se_err_clear(&err);
    int rc = sandbox_spec_from_json(&spec, &cfg, json, &err);
    if (rc == 0)
        check_valid_spec(&spec, &cfg);
    sandbox_spec_clear(&spec);
    free(json);
}

/* The path with its empty and "." components dropped, by the plainest
 * means (a second opinion on sandbox_normalise_path). */
static char *
path_components_kept(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(n + 1);
    if (!out)
        abort();
    size_t o = 0;
    for (size_t i = 0; i <= n;) {
        size_t j = i;
        while (j < n && s[j] != '/')
            j++;
        size_t len = j - i;
        if (len && !(len == 1 && s[i] == '.')) {
            if (o)
                out[o++] = '/';
            memcpy(out + o, s + i, len);
            o += len;
        }
        i = j + 1;
    }
    out[o] = '\0';
    return out;
}

/* A path the daemon keeps after normalising is what the agent takes, has
 * the same components but the empty and "." ones, and normalises to
 * itself; a path that was valid as it was is unchanged. */
static void
normalise_check(const char *s, bool strict_ok)
{
    char *p = fuzz_strndup((const uint8_t *)s, strlen(s));
    if (!p)
        abort();
    se_err err;
    se_err_clear(&err);
    if (sandbox_normalise_path(p, &err) == 0) {
        if (agent_path_validate(p, &err) < 0)
            disagree("the normalised path", err.msg);
        FUZZ_CHECK(strlen(p) <= strlen(s));
        char *kept = path_components_kept(s);
        FUZZ_CHECK(strcmp(p, kept) == 0);
        free(kept);
        FUZZ_CHECK(s[0] != '/');
        char *again = fuzz_strndup((const uint8_t *)p, strlen(p));
        if (!again)
            abort();
        FUZZ_CHECK(sandbox_normalise_path(again, &err) == 0 && strcmp(again, p) == 0);
        free(again);
    } else {
        FUZZ_CHECK(err.code == SE_INVALID);
        FUZZ_CHECK(!strict_ok);
    }
    if (strict_ok)
        FUZZ_CHECK(strcmp(p, s) == 0);
    free(p);
}

static void
fuzz_string(const uint8_t *data, size_t size)
{
    char *s = fuzz_strndup(data, size);
    if (!s)
        abort();
    se_err err;
    se_err_clear(&err);
    if (image_validate_module(s, &err) == 0) {
        /* Never anything pip or a shell would read as more than a name. */
        FUZZ_CHECK(*s && strlen(s) <= SE_MAX_MODULE_LEN);
        FUZZ_CHECK(s[0] != '-');
        FUZZ_CHECK(strpbrk(s, " \t\n\r;|&$`'\"\\/:@#()") == NULL);
    } else {
        FUZZ_CHECK(err.code == SE_INVALID);
    }
    if (image_validate_version(s, &err) == 0) {
        FUZZ_CHECK(strspn(s, "0123456789.") == strlen(s));
        FUZZ_CHECK(s[0] != '.' && s[strlen(s) - 1] != '.');
    }
    if (sandbox_validate_id(s, &err) == 0)
        FUZZ_CHECK(strlen(s) <= SANDBOX_ID_MAX && strstr(s, "..") == NULL && !strchr(s, '/'));
    if (sandbox_validate_filename(s, &err) == 0) {
        FUZZ_CHECK(!strchr(s, '/') && strcmp(s, "..") != 0 && strcmp(s, ".") != 0);
        if (agent_filename_validate(s, &err) < 0)
            disagree("the filename", err.msg);
    }
    bool strict_ok = sandbox_validate_path(s, &err) == 0;
    if (strict_ok) {
        if (agent_path_validate(s, &err) < 0)
            disagree("the path", err.msg);
    }
    normalise_check(s, strict_ok);
    (void)sandbox_instance_check(s, &err);
    free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int which = data[0] % S_COUNT;
    uint8_t *buf = fuzz_dup(data + 1, size - 1);
    if (!buf)
        abort();
    size--;
    switch (which) {
    case S_EVAL:
        fuzz_eval(buf, size);
        break;
    case S_EXEC:
        fuzz_exec(buf, size);
        break;
    case S_CREATE:
        fuzz_create(buf, size);
        break;
    case S_SPEC:
        fuzz_spec(buf, size);
        break;
    case S_STRING:
        fuzz_string(buf, size);
        break;
    }
    free(buf);
    return 0;
}
