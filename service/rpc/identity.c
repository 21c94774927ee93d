/* The identity files.
 *
 *   --tokens FILE            name  sha256-hex-of-token|-  [admin|user]  [quota=N ...]
 *   --unix-identities FILE   user|uid|*  name|-  [admin|user]  [quota=N ...]
 *
 * quota is max-sandboxes, max-runs or max-memory (a size: 512M, 2G); a
 * quota given on a line overrides the daemon's --tenant-max-* for that name.
 * A token line whose hash is "-" holds no token: it gives the role and the
 * quotas of a name that comes from a client certificate or the socket. In
 * the unix file, name "-" is the peer's user name, and user "*" matches
 * every uid no other line names. '#' starts a comment.
 *
 * The files hold hashes, never tokens: a copy of the file does not let
 * anyone in. Tokens are compared by their SHA-256, every line in turn, in
 * constant time. */
#include "rpc/identity.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/config.h"
#include "util/file.h"
#include "util/sha256.h"

#define USER_MAX 64

struct ident_entry {
    char name[RPC_IDENTITY_MAX + 1]; /* "" in the unix file: the peer's user name */
    /* tokens */
    bool has_hash;
    uint8_t hash[SHA256_DIGEST_LEN];
    /* unix */
    enum { MATCH_UID, MATCH_USER, MATCH_ANY } match;
    uid_t uid;
    char user[USER_MAX + 1];
    /* policy */
    bool has_role, admin;
    bool has_sandboxes, has_runs, has_memory;
    uint32_t max_sandboxes, max_runs;
    uint64_t max_memory;
};

struct rpc_identity_table {
    struct ident_entry *e;
    size_t n;
};

struct rpc_auth {
    pthread_mutex_t mu;
    char *tokens_path, *unix_path;
    rpc_identity_table *tokens, *unix_ids; /* under mu */
    uint32_t def_sandboxes, def_runs;
    uint64_t def_memory;
    bool client_certs;
};

bool
rpc_identity_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > RPC_IDENTITY_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
            return false;
    }
    return true;
}

/* A name in a file: no spaces (they separate fields), same rules besides. */
static bool
file_name_ok(const char *s)
{
    return rpc_identity_name_ok(s, strlen(s)) && !strchr(s, ' ');
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int
parse_u32(uint32_t *out, const char *s)
{
    if (!*s || !isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* The fields after the first two: a role, then quotas. */
static int
parse_policy(struct ident_entry *e, char **f, size_t n, const char *where, se_err *err)
{
    for (size_t i = 0; i < n; i++) {
        char *eq = strchr(f[i], '=');
        if (!eq) {
            if (i != 0)
                return se_err_set(err, SE_INVALID, "%s: '%.32s': the role comes first", where,
                                  f[i]);
            if (strcmp(f[i], "admin") == 0)
                e->admin = true;
            else if (strcmp(f[i], "user") != 0)
                return se_err_set(err, SE_INVALID, "%s: role '%.32s' is not admin or user", where,
                                  f[i]);
            e->has_role = true;
            continue;
        }
        *eq = '\0';
        const char *k = f[i], *v = eq + 1;
        int bad = 0;
        if (strcmp(k, "max-sandboxes") == 0) {
            bad = parse_u32(&e->max_sandboxes, v);
            e->has_sandboxes = true;
        } else if (strcmp(k, "max-runs") == 0) {
            bad = parse_u32(&e->max_runs, v);
            e->has_runs = true;
        } else if (strcmp(k, "max-memory") == 0) {
            bad = config_parse_bytes(&e->max_memory, v);
            e->has_memory = true;
        } else {
            return se_err_set(err, SE_INVALID,
                              "%s: '%.32s' is not max-sandboxes, max-runs or max-memory", where, k);
        }
        if (bad)
            return se_err_set(err, SE_INVALID, "%s: %s: '%.32s' is not a number", where, k, v);
    }
    return 0;
}

static int
parse_line(struct ident_entry *e, int kind, char **f, size_t n, const char *where, se_err *err)
{
    memset(e, 0, sizeof(*e));
    if (n < 2)
        return se_err_set(err, SE_INVALID, "%s: expected %s", where,
                          kind == 't' ? "name sha256-hex|- [role] [quota=N ...]"
                                      : "user|uid|* name|- [role] [quota=N ...]");
    if (kind == 't') {
        if (!file_name_ok(f[0]))
            return se_err_set(err, SE_INVALID, "%s: bad name", where);
        snprintf(e->name, sizeof(e->name), "%s", f[0]);
        if (strcmp(f[1], "-") != 0) {
            /* Never quote the field: it may be a token pasted by mistake. */
            if (strlen(f[1]) != 2 * SHA256_DIGEST_LEN)
                return se_err_set(err, SE_INVALID,
                                  "%s: the second field is not 64 hex digits (the SHA-256 of the "
                                  "token, not the token) nor '-'",
                                  where);
            for (size_t i = 0; i < SHA256_DIGEST_LEN; i++) {
                int hi = hexval(f[1][2 * i]), lo = hexval(f[1][2 * i + 1]);
                if (hi < 0 || lo < 0)
                    return se_err_set(err, SE_INVALID, "%s: the hash is not hex", where);
                e->hash[i] = (uint8_t)(hi << 4 | lo);
            }
            e->has_hash = true;
        }
    } else {
        if (strcmp(f[0], "*") == 0) {
            e->match = MATCH_ANY;
        } else if (isdigit((unsigned char)f[0][0])) {
            uint32_t uid;
            if (parse_u32(&uid, f[0]) < 0)
                return se_err_set(err, SE_INVALID, "%s: bad uid", where);
            e->match = MATCH_UID;
            e->uid = (uid_t)uid;
        } else {
            if (strlen(f[0]) > USER_MAX || !file_name_ok(f[0]))
                return se_err_set(err, SE_INVALID, "%s: bad user name", where);
            e->match = MATCH_USER;
            snprintf(e->user, sizeof(e->user), "%s", f[0]);
        }
        if (strcmp(f[1], "-") != 0) {
            if (!file_name_ok(f[1]))
                return se_err_set(err, SE_INVALID, "%s: bad name", where);
            snprintf(e->name, sizeof(e->name), "%s", f[1]);
        }
    }
    return parse_policy(e, f + 2, n - 2, where, err);
}

void
rpc_identity_table_free(rpc_identity_table *t)
{
    if (!t)
        return;
    /* The hashes are not secrets, but there is no reason to leave them. */
    if (t->e)
        explicit_bzero(t->e, t->n * sizeof(*t->e));
    free(t->e);
    free(t);
}

size_t
rpc_identity_table_count(const rpc_identity_table *t)
{
    return t ? t->n : 0;
}

#define FIELDS_MAX 8

int
rpc_identity_table_parse(rpc_identity_table **out, int kind, const char *text, size_t len,
                         const char *fname, se_err *err)
{
    *out = NULL;
    rpc_identity_table *t = calloc(1, sizeof(*t));
    if (!t)
        return se_err_set(err, SE_INTERNAL, "out of memory");
    size_t cap = 0;
    int rc = 0;
    size_t lineno = 0;
    const char *p = text, *end = text + len;
    while (p < end && rc == 0) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
        lineno++;
        char where[300];
        snprintf(where, sizeof(where), "%.256s:%zu", fname, lineno);
        char line[1024];
        if (ll >= sizeof(line)) {
            rc = se_err_set(err, SE_INVALID, "%s: line too long", where);
            break;
        }
        memcpy(line, p, ll);
        line[ll] = '\0';
        p = nl ? nl + 1 : end;
        if (memchr(line, '\0', ll)) {
            rc = se_err_set(err, SE_INVALID, "%s: NUL byte", where);
            break;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *f[FIELDS_MAX + 1];
        size_t n = 0;
        for (char *s = line;;) {
            while (*s == ' ' || *s == '\t' || *s == '\r')
                s++;
            if (!*s)
                break;
            if (n == FIELDS_MAX + 1) {
                n++;
                break;
            }
            f[n++] = s;
            while (*s && *s != ' ' && *s != '\t' && *s != '\r')
                s++;
            if (*s)
                *s++ = '\0';
        }
        if (n == 0)
            continue;
        if (n > FIELDS_MAX) {
            rc = se_err_set(err, SE_INVALID, "%s: too many fields", where);
            break;
        }
        if (t->n == IDENTITY_ENTRIES_MAX) {
            rc = se_err_set(err, SE_INVALID, "%s: more than %d entries", where,
                            IDENTITY_ENTRIES_MAX);
            break;
        }
        if (t->n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            struct ident_entry *ne = realloc(t->e, nc * sizeof(*ne));
            if (!ne) {
                rc = se_err_set(err, SE_INTERNAL, "out of memory");
                break;
            }
            t->e = ne;
            cap = nc;
        }
        struct ident_entry *e = &t->e[t->n];
        rc = parse_line(e, kind, f, n, where, err);
        if (rc < 0)
            break;
        for (size_t i = 0; i < t->n && rc == 0; i++) {
            const struct ident_entry *o = &t->e[i];
            if (kind == 't' && e->has_hash && o->has_hash &&
                memcmp(e->hash, o->hash, SHA256_DIGEST_LEN) == 0)
                rc = se_err_set(err, SE_INVALID, "%s: the same token hash as line of '%s'", where,
                                o->name);
            if (kind == 'u' && e->match == o->match &&
                ((e->match == MATCH_UID && e->uid == o->uid) ||
                 (e->match == MATCH_USER && strcmp(e->user, o->user) == 0) ||
                 e->match == MATCH_ANY))
                rc = se_err_set(err, SE_INVALID, "%s: the same user as an earlier line", where);
        }
        if (rc == 0)
            t->n++;
    }
    if (rc < 0) {
        rpc_identity_table_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

static int
load(rpc_identity_table **out, int kind, const char *path, se_err *err)
{
    *out = NULL;
    if (!path)
        return 0;
    cleanup_free uint8_t *buf = NULL;
    size_t got = 0;
    int rc = file_read_all(path, IDENTITY_FILE_MAX, 0, &buf, &got, NULL, err);
    if (rc < 0)
        return se_err_prefix(err, "%s", kind == 't' ? "--tokens" : "--unix-identities");
    rc = rpc_identity_table_parse(out, kind, (const char *)buf, got, path, err);
    explicit_bzero(buf, got);
    return rc;
}

int
rpc_auth_new(rpc_auth **out, const rpc_server_opts *opts, se_err *err)
{
    *out = NULL;
    rpc_auth *a = calloc(1, sizeof(*a));
    if (!a)
        return se_err_set(err, SE_INTERNAL, "out of memory");
    pthread_mutex_init(&a->mu, NULL);
    a->def_sandboxes = opts->tenant_max_sandboxes;
    a->def_runs = opts->tenant_max_runs;
    a->def_memory = opts->tenant_max_memory;
    a->client_certs = opts->tls_client_ca != NULL;
    int rc = 0;
    if ((opts->tokens_file && !(a->tokens_path = strdup(opts->tokens_file))) ||
        (opts->unix_identities_file && !(a->unix_path = strdup(opts->unix_identities_file))))
        rc = se_err_set(err, SE_INTERNAL, "out of memory");
    if (rc == 0)
        rc = load(&a->tokens, 't', a->tokens_path, err);
    if (rc == 0)
        rc = load(&a->unix_ids, 'u', a->unix_path, err);
    if (rc < 0) {
        rpc_auth_free(a);
        return rc;
    }
    *out = a;
    return 0;
}

void
rpc_auth_free(rpc_auth *a)
{
    if (!a)
        return;
    rpc_identity_table_free(a->tokens);
    rpc_identity_table_free(a->unix_ids);
    free(a->tokens_path);
    free(a->unix_path);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

int
rpc_auth_reload(rpc_auth *a, se_err *err)
{
    rpc_identity_table *t = NULL, *u = NULL;
    int rc = load(&t, 't', a->tokens_path, err);
    if (rc == 0)
        rc = load(&u, 'u', a->unix_path, err);
    if (rc < 0) {
        rpc_identity_table_free(t);
        return rc;
    }
    pthread_mutex_lock(&a->mu);
    rpc_identity_table *ot = a->tokens, *ou = a->unix_ids;
    a->tokens = t;
    a->unix_ids = u;
    pthread_mutex_unlock(&a->mu);
    rpc_identity_table_free(ot);
    rpc_identity_table_free(ou);
    return 0;
}

bool
rpc_auth_required(const rpc_auth *a)
{
    return a->tokens_path || a->unix_path || a->client_certs;
}

bool
rpc_auth_has_tokens(const rpc_auth *a)
{
    return a->tokens_path != NULL;
}

bool
rpc_auth_has_unix(const rpc_auth *a)
{
    return a->unix_path != NULL;
}

void
rpc_auth_anonymous(const rpc_auth *a, rpc_identity *out)
{
    memset(out, 0, sizeof(*out));
    out->max_sandboxes = a->def_sandboxes;
    out->max_runs = a->def_runs;
    out->max_memory = a->def_memory;
}

/* name, then the policy of line (may be NULL), the defaults for the rest. */
static void
fill(const rpc_auth *a, rpc_identity *out, const char *name, size_t len,
     const struct ident_entry *line)
{
    rpc_auth_anonymous(a, out);
    memcpy(out->name, name, len);
    out->name[len] = '\0';
    if (!line)
        return;
    out->admin = line->admin;
    if (line->has_sandboxes)
        out->max_sandboxes = line->max_sandboxes;
    if (line->has_runs)
        out->max_runs = line->max_runs;
    if (line->has_memory)
        out->max_memory = line->max_memory;
}

/* The --tokens line that gives a name its role (under mu), or NULL. */
static const struct ident_entry *
policy_of(const rpc_auth *a, const char *name, size_t len)
{
    if (!a->tokens)
        return NULL;
    for (size_t i = 0; i < a->tokens->n; i++) {
        const struct ident_entry *e = &a->tokens->e[i];
        if (strlen(e->name) == len && memcmp(e->name, name, len) == 0)
            return e;
    }
    return NULL;
}

static bool
ct_equal(const uint8_t *x, const uint8_t *y, size_t n)
{
    volatile uint8_t d = 0;
    for (size_t i = 0; i < n; i++)
        d |= x[i] ^ y[i];
    return d == 0;
}

int
rpc_auth_token(rpc_auth *a, const char *token, size_t len, rpc_identity *out)
{
    if (len == 0 || len > IDENTITY_TOKEN_MAX)
        return -1;
    uint8_t h[SHA256_DIGEST_LEN];
    sha256_digest(h, token, len);
    int rc = -1;
    pthread_mutex_lock(&a->mu);
    const struct ident_entry *hit = NULL;
    for (size_t i = 0; a->tokens && i < a->tokens->n; i++) {
        const struct ident_entry *e = &a->tokens->e[i];
        /* Every line is compared, whatever matched before. */
        bool eq = ct_equal(h, e->hash, sizeof(h)) && e->has_hash;
        if (eq && !hit)
            hit = e;
    }
    if (hit) {
        fill(a, out, hit->name, strlen(hit->name), hit);
        rc = 0;
    }
    pthread_mutex_unlock(&a->mu);
    explicit_bzero(h, sizeof(h));
    return rc;
}

int
rpc_auth_named(rpc_auth *a, const char *name, size_t len, rpc_identity *out)
{
    if (!rpc_identity_name_ok(name, len))
        return -1;
    pthread_mutex_lock(&a->mu);
    fill(a, out, name, len, policy_of(a, name, len));
    pthread_mutex_unlock(&a->mu);
    return 0;
}

int
rpc_auth_unix(rpc_auth *a, uid_t uid, const char *user, rpc_identity *out)
{
    int rc = -1;
    pthread_mutex_lock(&a->mu);
    const struct ident_entry *hit = NULL, *any = NULL;
    for (size_t i = 0; a->unix_ids && i < a->unix_ids->n && !hit; i++) {
        const struct ident_entry *e = &a->unix_ids->e[i];
        if (e->match == MATCH_UID && e->uid == uid)
            hit = e;
        else if (e->match == MATCH_USER && user && strcmp(e->user, user) == 0)
            hit = e;
        else if (e->match == MATCH_ANY)
            any = e;
    }
    if (!hit)
        hit = any;
    if (hit) {
        char byuid[32];
        snprintf(byuid, sizeof(byuid), "uid:%u", (unsigned)uid);
        const char *name = hit->name[0] ? hit->name : user ? user : byuid;
        size_t len = strlen(name);
        if (rpc_identity_name_ok(name, len)) {
            /* The line's own role and quotas, else those a --tokens line of
             * the same name gives. */
            const struct ident_entry *pol =
                hit->has_role || hit->has_sandboxes || hit->has_runs || hit->has_memory
                    ? hit
                    : policy_of(a, name, len);
            fill(a, out, name, len, pol);
            rc = 0;
        }
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}
