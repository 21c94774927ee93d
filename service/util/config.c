#include "util/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/cleanup.h"
#include "util/file.h"

const config_opt *
config_find(const config_opt *table, size_t n, const char *name, size_t name_len)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(table[i].name) == name_len && memcmp(table[i].name, name, name_len) == 0)
            return &table[i];
    }
    return NULL;
}

/* Digits only: no sign, no blanks, no hex; strtoull alone would take " -1". */
static int
parse_u64(uint64_t *out, const char *s, const char **end)
{
    if (!isdigit((unsigned char)s[0]))
        return -1;
    uint64_t v = 0;
    const char *p = s;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    *end = p;
    return 0;
}

int
config_parse_bytes(uint64_t *out, const char *s)
{
    uint64_t v;
    const char *p;
    if (parse_u64(&v, s, &p) < 0)
        return -1;
    unsigned shift = 0;
    switch (*p) {
    case 'k':
    case 'K':
        shift = 10;
        p++;
        break;
    case 'm':
    case 'M':
        shift = 20;
        p++;
        break;
    case 'g':
    case 'G':
        shift = 30;
        p++;
        break;
    case 't':
    case 'T':
        shift = 40;
        p++;
        break;
    default:
        break;
    }
    /* "16M", "16MB" and "16MiB" all mean 16 << 20. */
    if (shift && p[0] == 'i' && p[1] == 'B')
        p += 2;
    else if (p[0] == 'B' || p[0] == 'b')
        p++;
    if (*p != '\0')
        return -1;
    if (shift && v > (UINT64_MAX >> shift))
        return -1;
    *out = v << shift;
    return 0;
}

static int
parse_bool(bool *out, const char *s)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

static const char *
type_hint(enum config_type t)
{
    switch (t) {
    case CONFIG_STRING:
        return "a string";
    case CONFIG_BOOL:
        return "true or false";
    case CONFIG_U32:
    case CONFIG_U64:
        return "a whole number";
    case CONFIG_BYTES:
        return "a size such as 512, 64K, 16M or 4G";
    case CONFIG_LIST:
        return "a string; the setting may be given on several lines";
    }
    return "?";
}

int
config_set(const config_opt *opt, const char *value, const char *where, se_err *err)
{
    uint64_t v = 0;
    switch (opt->type) {
    case CONFIG_STRING: {
        char **dest = opt->dest;
        char *copy = strdup(value);
        if (!copy)
            return se_err_errno(err, SE_INTERNAL, "%s", where);
        free(*dest);
        *dest = copy;
        return 0;
    }
    case CONFIG_LIST: {
        config_list *l = opt->dest;
        if (l->n >= CONFIG_LIST_MAX)
            return se_err_set(err, SE_INVALID, "%s: given more than %d times", where,
                              CONFIG_LIST_MAX);
        char *copy = strdup(value);
        char **items = copy ? realloc(l->items, (l->n + 1) * sizeof(*items)) : NULL;
        if (!items) {
            free(copy);
            return se_err_errno(err, SE_INTERNAL, "%s", where);
        }
        items[l->n++] = copy;
        l->items = items;
        return 0;
    }
    case CONFIG_BOOL:
        if (parse_bool(opt->dest, value) < 0)
            goto bad;
        return 0;
    case CONFIG_U32:
    case CONFIG_U64: {
        const char *end;
        if (parse_u64(&v, value, &end) < 0 || *end != '\0')
            goto bad;
        break;
    }
    case CONFIG_BYTES:
        if (config_parse_bytes(&v, value) < 0)
            goto bad;
        break;
    }
    uint64_t max = opt->max;
    if (opt->type == CONFIG_U32 && (max == 0 || max > UINT32_MAX))
        max = UINT32_MAX;
    if (v < opt->min || (max && v > max))
        return se_err_set(err, SE_INVALID,
                          "%s: %" PRIu64 " is out of range (%" PRIu64 "..%" PRIu64 ")", where, v,
                          opt->min, max ? max : UINT64_MAX);
    if (opt->type == CONFIG_U32)
        *(uint32_t *)opt->dest = (uint32_t)v;
    else
        *(uint64_t *)opt->dest = v;
    return 0;
bad:
    return se_err_set(err, SE_INVALID, "%s: invalid value '%.64s' (expected %s)", where, value,
                      type_hint(opt->type));
}

static int
config_set_defaults(const config_opt *table, size_t n, se_err *err)
{
    for (size_t i = 0; i < n; i++) {
        const config_opt *o = &table[i];
        if (o->type == CONFIG_LIST)
            config_free(o, 1);
        if (o->def) {
            char where[128];
            snprintf(where, sizeof(where), "default of --%s", o->name);
            int r = config_set(o, o->def, where, err);
            if (r < 0)
                return r;
            continue;
        }
        switch (o->type) {
        case CONFIG_STRING: {
            char **dest = o->dest;
            free(*dest);
            *dest = NULL;
            break;
        }
        case CONFIG_BOOL:
            *(bool *)o->dest = false;
            break;
        case CONFIG_U32:
            *(uint32_t *)o->dest = 0;
            break;
        case CONFIG_U64:
        case CONFIG_BYTES:
            *(uint64_t *)o->dest = 0;
            break;
        case CONFIG_LIST:
            break; /* emptied above */
        }
    }
    return 0;
}

static int
is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

int
config_apply_text(const config_opt *table, size_t n, const char *text, size_t len,
                  const char *fname, se_err *err)
{
    size_t pos = 0;
    unsigned lineno = 0;
    char line[CONFIG_LINE_MAX + 1];
    while (pos < len) {
        lineno++;
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t llen = nl ? (size_t)(nl - (text + pos)) : len - pos;
        if (llen > CONFIG_LINE_MAX)
            return se_err_set(err, SE_INVALID, "%s:%u: line longer than %u bytes", fname, lineno,
                              CONFIG_LINE_MAX);
        memcpy(line, text + pos, llen);
        line[llen] = '\0';
        pos += llen + (nl ? 1 : 0);
        if (memchr(line, '\0', llen))
            return se_err_set(err, SE_INVALID, "%s:%u: NUL byte in line", fname, lineno);

        /* A # starts a comment only at the start of a line (after blanks), so
         * values such as paths may hold one. */
        char *p = line;
        while (is_blank(*p))
            p++;
        if (*p == '\0' || *p == '#')
            continue;
        char *eq = strchr(p, '=');
        if (!eq)
            return se_err_set(err, SE_INVALID, "%s:%u: expected 'name = value'", fname, lineno);
        char *kend = eq;
        while (kend > p && is_blank(kend[-1]))
            kend--;
        char *v = eq + 1;
        while (is_blank(*v))
            v++;
        char *vend = v + strlen(v);
        while (vend > v && is_blank(vend[-1]))
            vend--;
        *vend = '\0';
        const config_opt *o = config_find(table, n, p, (size_t)(kend - p));
        if (!o)
            return se_err_set(err, SE_INVALID, "%s:%u: unknown setting '%.*s'", fname, lineno,
                              (int)((kend - p) > 64 ? 64 : kend - p), p);
        char where[300];
        snprintf(where, sizeof(where), "%s:%u: %s", fname, lineno, o->name);
        int r = config_set(o, v, where, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int
config_apply_file(const config_opt *table, size_t n, const char *path, se_err *err)
{
    cleanup_free uint8_t *text = NULL;
    size_t len = 0;
    if (file_read_all(path, CONFIG_FILE_MAX, 0, &text, &len, NULL, err) < 0) {
        /* Any failure to read it is a bad setting of the operator's. */
        if (!err)
            return -SE_INVALID;
        err->code = SE_INVALID;
        return se_err_prefix(err, "config file");
    }
    return config_apply_text(table, n, (const char *)text, len, path, err);
}

/* "--name=value" or "--name"; sets *name, *name_len and *value (NULL when the
 * flag has no "="). Returns -1 for anything not starting with "--". */
static int
split_flag(const char *arg, const char **name, size_t *name_len, const char **value)
{
    if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
        return -1;
    *name = arg + 2;
    const char *eq = strchr(*name, '=');
    *name_len = eq ? (size_t)(eq - *name) : strlen(*name);
    *value = eq ? eq + 1 : NULL;
    return 0;
}

static int
is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

/* Flags that are not settings: the table never names them. */
static const char FLAG_VERSION[] = "--version";
static const char FLAG_PRINT[] = "--print-config";

int
config_load(const config_opt *table, size_t n, int argc, char *const *argv, se_err *err)
{
    int r = config_set_defaults(table, n, err);
    if (r < 0)
        return r;

    /* Pass 1: --help, --version and --config, so the file applies before
     * every flag. */
    const char *file = NULL;
    bool print = false;
    for (int i = 1; i < argc; i++) {
        if (is_help(argv[i]))
            return CONFIG_HELP;
        if (strcmp(argv[i], FLAG_VERSION) == 0)
            return CONFIG_VERSION;
        if (strcmp(argv[i], FLAG_PRINT) == 0)
            print = true;
        const char *name, *value;
        size_t nl;
        if (split_flag(argv[i], &name, &nl, &value) < 0 || nl != 6 || memcmp(name, "config", 6))
            continue;
        if (!value) {
            if (i + 1 >= argc)
                return se_err_set(err, SE_INVALID, "--config: missing value");
            value = argv[++i];
        }
        file = value;
    }
    if (file) {
        r = config_apply_file(table, n, file, err);
        if (r < 0)
            return r;
    }

    /* Pass 2: every flag, in order; a later one wins. */
    for (int i = 1; i < argc; i++) {
        const char *name, *value;
        size_t nl;
        if (strcmp(argv[i], FLAG_PRINT) == 0)
            continue;
        if (split_flag(argv[i], &name, &nl, &value) < 0)
            return se_err_set(err, SE_INVALID, "unexpected argument '%.64s' (see --help)", argv[i]);
        if (nl == 6 && memcmp(name, "config", 6) == 0) {
            if (!value)
                i++;
            continue;
        }
        const config_opt *o = config_find(table, n, name, nl);
        if (!o)
            return se_err_set(err, SE_INVALID, "unknown flag '--%.*s' (see --help)",
                              (int)(nl > 64 ? 64 : nl), name);
        if (!value) {
            /* A bare boolean flag means true; everything else takes the next
             * argument, which may not itself look like a flag. */
            if (o->type == CONFIG_BOOL) {
                *(bool *)o->dest = true;
                continue;
            }
            if (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0)
                return se_err_set(err, SE_INVALID, "--%s: missing value", o->name);
            value = argv[++i];
        }
        char where[128];
        snprintf(where, sizeof(where), "--%s", o->name);
        r = config_set(o, value, where, err);
        if (r < 0)
            return r;
    }
    return print ? CONFIG_PRINT : CONFIG_RUN;
}

void
config_print_help(FILE *f, const char *prog, const char *summary, const config_opt *table, size_t n)
{
    fprintf(f, "Usage: %s [--config FILE] [--name value | --name=value]...\n", prog);
    if (summary)
        fprintf(f, "%s\n", summary);
    fprintf(f, "\nA config file holds 'name = value' lines (# comments); flags override it.\n"
               "Sizes take K, M, G suffixes (powers of 1024). Booleans are true/false,\n"
               "yes/no, on/off or 1/0; a bare --flag means true.\n\n");
    fprintf(f, "  --%-24s %s\n", "config FILE", "read settings from FILE first");
    fprintf(f, "  --%-24s %s\n", "print-config",
            "print every setting as a config file (with --config and flags applied) and exit");
    fprintf(f, "  --%-24s %s\n", "version", "print the version and build id and exit");
    fprintf(f, "  --%-24s %s\n", "help", "print this help and exit");
    for (size_t i = 0; i < n; i++) {
        const config_opt *o = &table[i];
        char left[64];
        const char *arg = o->type == CONFIG_BOOL     ? ""
                          : o->type == CONFIG_BYTES  ? " SIZE"
                          : o->type == CONFIG_STRING ? " STR"
                          : o->type == CONFIG_LIST   ? " STR"
                                                     : " N";
        snprintf(left, sizeof(left), "%s%s", o->name, arg);
        fprintf(f, "  --%-24s %s", left, o->help);
        if (o->def && o->type != CONFIG_BOOL)
            fprintf(f, " (default: %s)", o->def);
        if (o->type == CONFIG_LIST)
            fprintf(f, " (repeatable)");
        if (o->type != CONFIG_STRING && o->type != CONFIG_BOOL && o->type != CONFIG_LIST &&
            (o->min || o->max)) {
            if (o->max)
                fprintf(f, " [%" PRIu64 "..%" PRIu64 "]", o->min, o->max);
            else
                fprintf(f, " [>= %" PRIu64 "]", o->min);
        }
        fputc('\n', f);
    }
}

int
config_format_value(char *buf, size_t cap, const config_opt *opt)
{
    switch (opt->type) {
    case CONFIG_STRING: {
        const char *v = *(char *const *)opt->dest;
        return snprintf(buf, cap, "%s", v ? v : "");
    }
    case CONFIG_BOOL:
        return snprintf(buf, cap, "%s", *(const bool *)opt->dest ? "true" : "false");
    case CONFIG_U32:
        return snprintf(buf, cap, "%" PRIu32, *(const uint32_t *)opt->dest);
    case CONFIG_U64:
        return snprintf(buf, cap, "%" PRIu64, *(const uint64_t *)opt->dest);
    case CONFIG_BYTES: {
        /* The largest suffix that says it exactly, as a user would write it. */
        static const char suffix[] = "KMGT";
        uint64_t v = *(const uint64_t *)opt->dest;
        int k = -1;
        while (v && k < 3 && (v & 1023) == 0) {
            v >>= 10;
            k++;
        }
        if (k < 0)
            return snprintf(buf, cap, "%" PRIu64, v);
        return snprintf(buf, cap, "%" PRIu64 "%c", v, suffix[k]);
    }
    case CONFIG_LIST: {
        /* One line per item in a sample (config_print_sample); here, the
         * first, for a single value's display. */
        const config_list *l = opt->dest;
        return snprintf(buf, cap, "%s", l->n ? l->items[0] : "");
    }
    }
    return snprintf(buf, cap, "?");
}

/* The default of o, formatted like its value (so "16M" and "16777216"
 * compare equal): parsed into a scratch destination of o's type. */
static void
format_default(char *buf, size_t cap, const config_opt *o)
{
    union {
        char *s;
        bool b;
        uint32_t u32;
        uint64_t u64;
    } scratch;
    memset(&scratch, 0, sizeof(scratch));
    config_opt t = *o;
    t.dest = &scratch;
    if (o->def && config_set(&t, o->def, "default", NULL) < 0)
        snprintf(buf, cap, "%s", o->def);
    else
        config_format_value(buf, cap, &t);
    if (o->type == CONFIG_STRING)
        free(scratch.s);
}

void
config_print_sample(FILE *f, const char *prog, const config_opt *table, size_t n)
{
    fprintf(f,
            "# %s.conf: every setting of %s, each with its help, its default and its\n"
            "# bounds. Written by `%s --print-config`: a setting still at its default is\n"
            "# commented out; uncomment and change what you need.\n"
            "#\n"
            "# Syntax: one `name = value` per line (the name is the flag without --);\n"
            "# blanks around both are ignored; a line whose first non-blank character\n"
            "# is # is a comment (a # inside a value is part of it); no quotes, no\n"
            "# continuation lines. Flags given to %s override this file.\n"
            "# Booleans: true/false, yes/no, on/off or 1/0 (any case).\n"
            "# Sizes: a number of bytes with an optional K, M, G or T suffix (powers of\n"
            "# 1024; \"16M\", \"16MB\" and \"16MiB\" are the same).\n"
            "# A string setting with nothing after = is the empty string, not unset:\n"
            "# leave an unset one commented out.\n",
            prog, prog, prog, prog);
    for (size_t i = 0; i < n; i++) {
        const config_opt *o = &table[i];
        if (o->type == CONFIG_LIST) {
            /* Repeatable: one line per value, none (commented) by default. */
            const config_list *l = o->dest;
            fprintf(f, "\n# %s\n# (%s; none by default)\n", o->help, type_hint(o->type));
            if (!l->n)
                fprintf(f, "#%s =\n", o->name);
            for (size_t k = 0; k < l->n; k++)
                fprintf(f, "%s = %s\n", o->name, l->items[k]);
            continue;
        }
        char cur[CONFIG_LINE_MAX], def[CONFIG_LINE_MAX];
        config_format_value(cur, sizeof(cur), o);
        format_default(def, sizeof(def), o);
        fprintf(f, "\n# %s\n# (%s", o->help, type_hint(o->type));
        if (o->type == CONFIG_STRING && !o->def)
            fprintf(f, "; unset by default");
        else
            fprintf(f, "; default: %s", def);
        if (o->type != CONFIG_STRING && o->type != CONFIG_BOOL && (o->min || o->max)) {
            if (o->max)
                fprintf(f, "; %" PRIu64 "..%" PRIu64, o->min, o->max);
            else
                fprintf(f, "; at least %" PRIu64, o->min);
        }
        fprintf(f, ")\n");
        bool is_default = o->type == CONFIG_STRING && !o->def ? *(char *const *)o->dest == NULL
                                                              : strcmp(cur, def) == 0;
        fprintf(f, "%s%s =%s%s\n", is_default ? "#" : "", o->name, cur[0] ? " " : "", cur);
    }
}

void
config_free(const config_opt *table, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (table[i].type == CONFIG_STRING) {
            char **dest = table[i].dest;
            free(*dest);
            *dest = NULL;
        } else if (table[i].type == CONFIG_LIST) {
            config_list *l = table[i].dest;
            for (size_t k = 0; k < l->n; k++)
                free(l->items[k]);
            free(l->items);
            l->items = NULL;
            l->n = 0;
        }
    }
}
