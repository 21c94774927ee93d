/* Validation of everything a client names: the python version and the pip
 * requirement specifiers. These strings end up in a requirements file that pip
 * reads as root inside the build, so the grammar is a strict allow-list, not a
 * block-list: a name, optional extras, optional version specifiers, nothing
 * else. Whitespace is refused entirely (pip does not need it, and refusing it
 * removes every "option after a space" trick). */
#include "image/internal.h"

#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool
is_alnum(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Parses one decimal part of a version at *p: 1..max_digits digits, no
 * leading zero unless the part is "0". */
static bool
version_part(const char **p, int max_digits, int *value)
{
    const char *s = *p;
    int n = 0, v = 0;
    while (is_digit(s[n])) {
        if (n == max_digits)
            return false;
        v = v * 10 + (s[n] - '0');
        n++;
    }
    if (n == 0 || (n > 1 && s[0] == '0'))
        return false;
    *p = s + n;
    *value = v;
    return true;
}

int
image_validate_version(const char *version, se_err *err)
{
    if (!version || !*version)
        return se_err_set(err, SE_INVALID, "python version is empty");
    if (strnlen(version, 16) >= 16)
        return se_err_set(err, SE_INVALID, "python version is too long");
    const char *p = version;
    int major, minor, micro;
    if (!version_part(&p, 1, &major) || major != 3)
        return se_err_set(err, SE_INVALID, "python version \"%s\": major version must be 3",
                          version);
    if (*p != '.')
        return se_err_set(err, SE_INVALID,
                          "python version \"%s\": want major.minor or major.minor.micro", version);
    p++;
    if (!version_part(&p, 2, &minor))
        return se_err_set(err, SE_INVALID,
                          "python version \"%s\": minor must be 0-99 without leading zeros",
                          version);
    if (*p == '.') {
        p++;
        if (!version_part(&p, 3, &micro))
            return se_err_set(err, SE_INVALID,
                              "python version \"%s\": micro must be 0-999 without leading zeros",
                              version);
    }
    if (*p)
        return se_err_set(err, SE_INVALID, "python version \"%s\": unexpected characters", version);
    return 0;
}

/* A PEP 508 name: [A-Za-z0-9] at both ends, [A-Za-z0-9._-] inside. Returns
 * the length consumed, 0 if there is no name at s. */
static size_t
pep508_name(const char *s)
{
    size_t n = 0;
    if (!is_alnum(s[0]))
        return 0;
    while (is_alnum(s[n]) || s[n] == '.' || s[n] == '_' || s[n] == '-')
        n++;
    while (n > 0 && !is_alnum(s[n - 1]))
        n--;
    return n;
}

static bool
is_version_char(char c)
{
    return is_alnum(c) || c == '.' || c == '*' || c == '+' || c == '!' || c == '_' || c == '-';
}

static const char *const spec_ops[] = {"===", "~=", "==", "!=", "<=", ">=", "<", ">"};

int
image_validate_module(const char *module, se_err *err)
{
    if (!module || !*module)
        return se_err_set(err, SE_INVALID, "module name is empty");
    size_t len = strnlen(module, SE_MAX_MODULE_LEN + 1);
    if (len > SE_MAX_MODULE_LEN)
        return se_err_set(err, SE_INVALID, "module \"%.40s...\" is longer than %d bytes", module,
                          SE_MAX_MODULE_LEN);
    /* Coarse checks first so the reason names the real problem. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)module[i];
        if (c >= 0x80)
            return se_err_set(err, SE_INVALID,
                              "module at byte %zu: non-ASCII characters are "
                              "not allowed",
                              i);
        if (c < 0x20 || c == 0x7f)
            return se_err_set(err, SE_INVALID,
                              "module at byte %zu: control characters are not "
                              "allowed",
                              i);
        if (c == ' ')
            return se_err_set(err, SE_INVALID, "module \"%s\": whitespace is not allowed", module);
    }
    if (module[0] == '-')
        return se_err_set(err, SE_INVALID, "module \"%s\": pip options are not allowed", module);
    if (strchr(module, '@') || strstr(module, "://"))
        return se_err_set(err, SE_INVALID, "module \"%s\": URLs are not allowed", module);
    if (strchr(module, '/') || strchr(module, '\\'))
        return se_err_set(err, SE_INVALID, "module \"%s\": paths are not allowed", module);
    if (strchr(module, ';'))
        return se_err_set(err, SE_INVALID, "module \"%s\": environment markers are not allowed",
                          module);

    const char *p = module;
    size_t n = pep508_name(p);
    if (n == 0 || (p[n] && (is_alnum(p[n]) || strchr("._-", p[n]))))
        return se_err_set(err, SE_INVALID,
                          "module \"%s\": a name must start and end with a letter or digit and "
                          "hold only letters, digits, '.', '_' and '-'",
                          module);
    p += n;
    if (*p == '[') {
        p++;
        for (;;) {
            n = pep508_name(p);
            if (n == 0)
                return se_err_set(err, SE_INVALID, "module \"%s\": bad extra name", module);
            p += n;
            if (*p == ',') {
                p++;
                continue;
            }
            if (*p == ']') {
                p++;
                break;
            }
            return se_err_set(err, SE_INVALID, "module \"%s\": bad extras list", module);
        }
    }
    if (!*p)
        return 0;
    for (;;) {
        size_t oplen = 0;
        for (size_t i = 0; i < sizeof(spec_ops) / sizeof(spec_ops[0]); i++) {
            size_t l = strlen(spec_ops[i]);
            if (strncmp(p, spec_ops[i], l) == 0) {
                oplen = l;
                break;
            }
        }
        if (oplen == 0)
            return se_err_set(err, SE_INVALID,
                              "module \"%s\": expected a version specifier (==, !=, <=, >=, <, "
                              ">, ~=, ===) at \"%s\"",
                              module, p);
        p += oplen;
        if (!is_alnum(*p))
            return se_err_set(err, SE_INVALID,
                              "module \"%s\": a version must start with a "
                              "letter or digit",
                              module);
        while (is_version_char(*p))
            p++;
        if (*p == ',') {
            p++;
            continue;
        }
        if (!*p)
            return 0;
        return se_err_set(err, SE_INVALID, "module \"%s\": unexpected character '%c' in a version",
                          module, *p);
    }
}

int
image_validate_base_ref(const char *ref, se_err *err)
{
    if (!ref || !*ref)
        return se_err_set(err, SE_INVALID, "base image reference is empty");
    size_t len = strnlen(ref, IMAGE_BASE_REF_MAX + 1);
    if (len > IMAGE_BASE_REF_MAX)
        return se_err_set(err, SE_INVALID, "base image reference is longer than %d bytes",
                          IMAGE_BASE_REF_MAX);
    for (size_t i = 0; i < len; i++) {
        char c = ref[i];
        if (!(is_digit(c) || (c >= 'a' && c <= 'z') || strchr("./:_@-", c)))
            return se_err_set(err, SE_INVALID,
                              "base image reference \"%s\": only [a-z0-9./:_@-] are allowed", ref);
    }
    if (ref[0] == '-' || ref[0] == '.' || ref[0] == ':' || ref[0] == '@')
        return se_err_set(err, SE_INVALID, "base image reference \"%s\": bad first character", ref);
    return 0;
}

int
image_base_ref_resolve(char **out, const char *base_template, const char *version, se_err *err)
{
    static const char token[] = "{version}";
    const size_t tlen = sizeof(token) - 1;
    if (!base_template)
        return se_err_set(err, SE_INVALID, "no base image template configured");
    size_t vlen = strlen(version);
    size_t cap = strlen(base_template) + 1;
    for (const char *s = strstr(base_template, token); s; s = strstr(s + tlen, token))
        cap += vlen;
    cleanup_free char *r = malloc(cap);
    if (!r)
        return se_err_set(err, SE_INTERNAL, "out of memory");
    char *w = r;
    const char *s = base_template;
    for (const char *hit; (hit = strstr(s, token)); s = hit + tlen) {
        memcpy(w, s, (size_t)(hit - s));
        w += hit - s;
        memcpy(w, version, vlen);
        w += vlen;
    }
    strcpy(w, s);
    int rc = image_validate_base_ref(r, err);
    if (rc < 0)
        return rc;
    *out = steal_pointer(&r);
    return 0;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void
image_modules_free(char **m, size_t n)
{
    if (!m)
        return;
    for (size_t i = 0; i < n; i++)
        free(m[i]);
    free(m);
}

int
image_modules_normalize(char ***out, size_t *out_n, const char *const *modules, size_t n,
                        se_err *err)
{
    if (n > SE_MAX_MODULES)
        return se_err_set(err, SE_INVALID, "%zu modules requested, at most %d are allowed", n,
                          SE_MAX_MODULES);
    for (size_t i = 0; i < n; i++) {
        int rc = image_validate_module(modules[i], err);
        if (rc < 0)
            return rc;
    }
    char **m = calloc(n ? n : 1, sizeof(*m));
    if (!m)
        return se_err_set(err, SE_INTERNAL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        m[i] = strdup(modules[i]);
        if (!m[i]) {
            image_modules_free(m, i);
            return se_err_set(err, SE_INTERNAL, "out of memory");
        }
    }
    qsort(m, n, sizeof(*m), cmp_str);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k > 0 && strcmp(m[k - 1], m[i]) == 0)
            free(m[i]);
        else
            m[k++] = m[i];
    }
    *out = m;
    *out_n = k;
    return 0;
}
