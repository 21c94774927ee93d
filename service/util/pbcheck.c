/* The wire walk of pbcheck.h. Every rule for reading a key, a varint or a
 * length is protobuf-c 1.4's own (parse_tag_and_wiretype,
 * scan_length_prefixed_data, the varint scan of protobuf_c_message_unpack):
 * if the walk were stricter it would refuse what clients send, if it were
 * looser it could lose its place where protobuf-c does not and then miss a
 * string that protobuf-c unpacks. One deliberate exception: field numbers
 * outside 1..2^29-1 (see field_next). */
#include "util/pbcheck.h"

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Room for a field path: at most PBCHECK_MAX_DEPTH + 1 names and indexes.
 * A longer one (only possible with long names at great depth) is cut. */
#define PATH_MAX_LEN 512
/* A map key longer than this is not quoted in a value's message. */
#define KEY_QUOTE_MAX 64
/* The largest field number protobuf allows: 2^29 - 1. */
#define FIELD_NUMBER_MAX 536870911u
#define STR_(x) #x
#define STR(x) STR_(x)

/* One field as it is on the wire. */
struct wire_field {
    const uint8_t *at; /* its key */
    uint32_t num;
    unsigned wire_type;
    const uint8_t *value; /* LENGTH_PREFIXED: the payload after the length */
    size_t value_len;
    const uint8_t *next; /* the byte after the field */
};

/* A message the walk is in, and the field of it the walk looks into. */
struct frame {
    const uint8_t *start, *end; /* the message's bytes */
    const ProtobufCFieldDescriptor *field;
    const uint8_t *field_at; /* that field's key */
};

struct walk {
    const ProtobufCMessageDescriptor *root;
    const uint8_t *base; /* the root's first byte: offsets in messages count from it */
    struct frame st[PBCHECK_MAX_DEPTH + 1];
    se_err *err;
};

/* A field key, as parse_tag_and_wiretype reads it: at most 5 bytes, and a
 * first byte with field number 0 is an error. 0 = bad key. */
static size_t
key_read(const uint8_t *p, size_t rem, uint32_t *num, unsigned *wire_type)
{
    if (rem == 0 || (p[0] & 0xf8) == 0)
        return 0;
    *wire_type = p[0] & 7;
    uint32_t v = (p[0] & 0x7f) >> 3;
    if (!(p[0] & 0x80)) {
        *num = v;
        return 1;
    }
    size_t max = rem < 5 ? rem : 5;
    unsigned shift = 4;
    for (size_t i = 1; i < max; i++) {
        /* shift <= 25 and 7 bits: fits in 32 (protobuf-c's int shift does
         * the same for every tag it accepts). */
        v |= (uint32_t)(p[i] & 0x7f) << shift;
        if (!(p[i] & 0x80)) {
            *num = v;
            return i + 1;
        }
        shift += 7;
    }
    return 0;
}

/* Bytes of a varint (at most 10), 0 if it does not end in time. */
static size_t
varint_len(const uint8_t *p, size_t rem)
{
    size_t max = rem < 10 ? rem : 10;
    for (size_t i = 0; i < max; i++)
        if (!(p[i] & 0x80))
            return i + 1;
    return 0;
}

/* A length prefix, as scan_length_prefixed_data reads it: at most 5 bytes,
 * at most INT_MAX, and the payload within rem. 0 = bad. */
static size_t
length_read(const uint8_t *p, size_t rem, size_t *len)
{
    size_t max = rem < 5 ? rem : 5;
    uint64_t v = 0;
    for (size_t i = 0; i < max; i++) {
        v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            if (v > INT_MAX || v > rem - (i + 1))
                return 0;
            *len = (size_t)v;
            return i + 1;
        }
    }
    return 0;
}

/* Reads the field at p (p < end). Returns 0, or sets *why and *where and
 * returns -1. */
static int
field_next(struct wire_field *f, const uint8_t *p, const uint8_t *end, const char **why,
           const uint8_t **where)
{
    size_t rem = (size_t)(end - p);
    f->at = p;
    size_t n = key_read(p, rem, &f->num, &f->wire_type);
    if (n == 0) {
        *why = "a bad field key";
        *where = p;
        return -1;
    }
    /* Stricter than protobuf-c, which keeps such a field as an unknown
     * one: 0 in a key of more than one byte, or a number past the largest
     * protobuf allows. No client writes them, and 0 cannot be packed again
     * (the daemon passes a File's unknown fields on to the agent, which
     * then refuses the whole frame). */
    if (f->num == 0 || f->num > FIELD_NUMBER_MAX) {
        *why = "a bad field number";
        *where = p;
        return -1;
    }
    p += n;
    rem -= n;
    f->value = p;
    f->value_len = 0;
    switch (f->wire_type) {
    case PROTOBUF_C_WIRE_TYPE_VARINT:
        n = varint_len(p, rem);
        if (n == 0) {
            *why = "an unterminated varint";
            *where = p;
            return -1;
        }
        break;
    case PROTOBUF_C_WIRE_TYPE_64BIT:
        if (rem < 8) {
            *why = "a truncated 64-bit value";
            *where = p;
            return -1;
        }
        n = 8;
        break;
    case PROTOBUF_C_WIRE_TYPE_32BIT:
        if (rem < 4) {
            *why = "a truncated 32-bit value";
            *where = p;
            return -1;
        }
        n = 4;
        break;
    case PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED:
        n = length_read(p, rem, &f->value_len);
        if (n == 0) {
            *why = "a length past the end";
            *where = p;
            return -1;
        }
        f->value = p + n;
        n += f->value_len;
        break;
    default:
        /* 3 and 4 are groups, which protobuf-c does not read; 6 and 7 do
         * not exist. */
        *why = "an unsupported wire type";
        *where = f->at;
        return -1;
    }
    f->next = p + n;
    return 0;
}

/* Occurrences of field num before stop in a message starting at p: the
 * bytes were walked already, so they parse. */
static size_t
occurrence(const uint8_t *p, const uint8_t *stop, uint32_t num)
{
    size_t count = 0;
    struct wire_field f;
    const char *why;
    const uint8_t *where;
    while (p < stop && field_next(&f, p, stop, &why, &where) == 0) {
        if (f.num == num && f.wire_type == PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED)
            count++;
        p = f.next;
    }
    return count;
}

static void __attribute__((format(printf, 3, 4)))
path_add(char *buf, size_t *len, const char *fmt, ...)
{
    if (*len >= PATH_MAX_LEN - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, PATH_MAX_LEN - *len, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len += (size_t)n < PATH_MAX_LEN - *len ? (size_t)n : PATH_MAX_LEN - 1 - *len;
}

/* "files[2].path": the fields of frames 0..n-1. */
static void
path_of(char buf[PATH_MAX_LEN], const struct walk *w, unsigned n)
{
    size_t len = 0;
    buf[0] = '\0';
    for (unsigned d = 0; d < n; d++) {
        const struct frame *fr = &w->st[d];
        path_add(buf, &len, "%s%s", d ? "." : "", fr->field->name);
        if (fr->field->label == PROTOBUF_C_LABEL_REPEATED)
            path_add(buf, &len, "[%zu]", occurrence(fr->start, fr->field_at, fr->field->id));
    }
}

/* protoc makes map<K, V> a repeated message "<Name>Entry" with key = 1 and
 * value = 2; protobuf-c's descriptors do not mark it otherwise. */
static bool
is_map_entry(const ProtobufCMessageDescriptor *d)
{
    const ProtobufCFieldDescriptor *k = protobuf_c_message_descriptor_get_field(d, 1);
    const ProtobufCFieldDescriptor *v = protobuf_c_message_descriptor_get_field(d, 2);
    size_t sn = d->short_name ? strlen(d->short_name) : 0;
    return d->n_fields == 2 && k && v && strcmp(k->name, "key") == 0 &&
           strcmp(v->name, "value") == 0 && sn > 5 && strcmp(d->short_name + sn - 5, "Entry") == 0;
}

/* ` (key "HOME")` for a map value, when the entry's key is short printable
 * ASCII that needs no escaping; else "". The last key wins, as in
 * protobuf-c. */
static void
key_note(char *buf, size_t cap, const struct frame *entry)
{
    buf[0] = '\0';
    const uint8_t *key = NULL;
    size_t key_len = 0;
    struct wire_field f;
    const char *why;
    const uint8_t *where;
    for (const uint8_t *p = entry->start;
         p < entry->end && field_next(&f, p, entry->end, &why, &where) == 0; p = f.next) {
        if (f.num == 1 && f.wire_type == PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED) {
            key = f.value;
            key_len = f.value_len;
        }
    }
    if (!key || key_len == 0 || key_len > KEY_QUOTE_MAX)
        return;
    for (size_t i = 0; i < key_len; i++)
        if (key[i] < 0x20 || key[i] > 0x7e || key[i] == '"' || key[i] == '\\')
            return;
    snprintf(buf, cap, " (key \"%.*s\")", (int)key_len, (const char *)key);
}

static int
refuse_nul(struct walk *w, unsigned depth)
{
    char path[PATH_MAX_LEN];
    path_of(path, w, depth + 1);
    char note[KEY_QUOTE_MAX + 16] = "";
    const struct frame *fr = &w->st[depth];
    if (depth > 0 && fr->field->id == 2 &&
        w->st[depth - 1].field->type == PROTOBUF_C_TYPE_MESSAGE &&
        is_map_entry(w->st[depth - 1].field->descriptor))
        key_note(note, sizeof(note), fr);
    return se_err_set(w->err, SE_INVALID, "%s: contains a NUL byte%s", path, note);
}

static int
refuse_malformed(struct walk *w, unsigned depth, const char *why, const uint8_t *where)
{
    char path[PATH_MAX_LEN];
    path_of(path, w, depth);
    return se_err_set(w->err, SE_INVALID, "not a valid %s: %s at byte %zu%s%s%s", w->root->name,
                      why, (size_t)(where - w->base), depth ? " (in " : "", path, depth ? ")" : "");
}

static int
walk_message(struct walk *w, unsigned depth, const ProtobufCMessageDescriptor *desc,
             const uint8_t *p, const uint8_t *end)
{
    struct frame *fr = &w->st[depth];
    fr->start = p;
    fr->end = end;
    while (p < end) {
        struct wire_field f;
        const char *why;
        const uint8_t *where;
        if (field_next(&f, p, end, &why, &where) < 0)
            return refuse_malformed(w, depth, why, where);
        p = f.next;
        if (f.wire_type != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED)
            continue;
        /* Unknown fields are kept by protobuf-c as bytes, never as strings. */
        const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(desc, f.num);
        if (!fd)
            continue;
        fr->field = fd;
        fr->field_at = f.at;
        if (fd->type == PROTOBUF_C_TYPE_STRING) {
            if (f.value_len && memchr(f.value, 0, f.value_len))
                return refuse_nul(w, depth);
        } else if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
            if (depth == PBCHECK_MAX_DEPTH)
                return refuse_malformed(
                    w, depth + 1, "messages nested deeper than " STR(PBCHECK_MAX_DEPTH), f.at);
            int rc = walk_message(w, depth + 1, fd->descriptor, f.value, f.value + f.value_len);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

int
pbcheck_message(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                se_err *err)
{
    if (len == 0)
        return 0; /* the empty message: data may be NULL */
    struct walk w = {.root = desc, .base = data, .err = err};
    return walk_message(&w, 0, desc, data, data + len);
}
