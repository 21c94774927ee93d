/* gRPC server reflection (grpc.reflection.v1 and v1alpha, the same wire
 * format): a generic client (grpcurl, evans, Postman, a reflection-based
 * SDK) lists the services and fetches the FileDescriptorProtos it needs to
 * call them without our .proto.
 *
 * The descriptors are the FileDescriptorSet protoc-c built at build time
 * (rpc/CMakeLists.txt) and linked in as rpc_descriptor_set. At start it is
 * walked once to index every file by name and every symbol (services,
 * methods, messages, enums, nested ones too) by its full name; the answers
 * are the files' serialized bytes as they are in the set, plus the files
 * they import. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/reflection/v1/reflection.pb-c.h"
#include "rpc/internal.h"
#include "util/log.h"

extern const unsigned char rpc_descriptor_set[];
extern const size_t rpc_descriptor_set_len;

/* gRPC status codes in ErrorResponse.error_code. */
#define CODE_INVALID_ARGUMENT 3
#define CODE_NOT_FOUND 5
#define CODE_UNIMPLEMENTED 12

#define MAX_FILES 64
#define MAX_DEPS 32
#define MAX_SYMBOLS 1024
#define MAX_NAME 256

struct refl_file {
    ProtobufCBinaryData bytes; /* the serialized FileDescriptorProto, in the set */
    char name[MAX_NAME];
    char package[MAX_NAME];
    size_t deps[MAX_DEPS]; /* indices into files */
    size_t n_deps;
    char dep_names[MAX_DEPS][MAX_NAME];
};

struct refl_symbol {
    char name[MAX_NAME];
    size_t file;
    bool service;
};

struct rpc_reflection {
    struct refl_file files[MAX_FILES];
    size_t n_files;
    struct refl_symbol symbols[MAX_SYMBOLS];
    size_t n_symbols;
};

/* ---- reading the descriptor set ------------------------------------------------------------- */

struct pb {
    const uint8_t *p, *end;
};

static int
pb_varint(struct pb *b, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (b->p >= b->end)
            return -1;
        uint8_t c = *b->p++;
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* The next field: its number, and for a length-delimited one its bytes in
 * *sub (other wire types are skipped and give sub->p == NULL). 0 at the end,
 * 1 with a field, -1 if malformed. */
static int
pb_next(struct pb *b, uint32_t *field, struct pb *sub)
{
    if (b->p >= b->end)
        return 0;
    uint64_t key, v;
    if (pb_varint(b, &key) < 0)
        return -1;
    *field = (uint32_t)(key >> 3);
    sub->p = sub->end = NULL;
    switch (key & 7) {
    case 0:
        return pb_varint(b, &v) < 0 ? -1 : 1;
    case 1:
        if (b->end - b->p < 8)
            return -1;
        b->p += 8;
        return 1;
    case 2:
        if (pb_varint(b, &v) < 0 || v > (uint64_t)(b->end - b->p))
            return -1;
        sub->p = b->p;
        sub->end = b->p + v;
        b->p += v;
        return 1;
    case 5:
        if (b->end - b->p < 4)
            return -1;
        b->p += 4;
        return 1;
    default:
        return -1;
    }
}

static int
pb_string(const struct pb *s, char *out, size_t cap)
{
    size_t n = (size_t)(s->end - s->p);
    if (!s->p || n >= cap || memchr(s->p, '\0', n))
        return -1;
    memcpy(out, s->p, n);
    out[n] = '\0';
    return 0;
}

/* The `name` (field 1) of a DescriptorProto-like message. */
static int
pb_name(struct pb m, char *out, size_t cap)
{
    uint32_t f;
    struct pb sub;
    int r;
    out[0] = '\0';
    while ((r = pb_next(&m, &f, &sub)) == 1) {
        if (f == 1 && sub.p)
            return pb_string(&sub, out, cap);
    }
    return -1;
}

static int
add_symbol(rpc_reflection *rf, const char *scope, const char *name, size_t file, bool service)
{
    if (rf->n_symbols >= MAX_SYMBOLS)
        return -1;
    struct refl_symbol *s = &rf->symbols[rf->n_symbols];
    /* Built aside: scope may be a name inside rf itself. */
    char full[MAX_NAME];
    int n = snprintf(full, sizeof(full), "%s%s%s", scope, scope[0] ? "." : "", name);
    if (n < 0 || (size_t)n >= sizeof(full))
        return -1;
    memcpy(s->name, full, (size_t)n + 1);
    s->file = file;
    s->service = service;
    rf->n_symbols++;
    return 0;
}

/* A DescriptorProto: the message, its nested messages and enums. */
static int
index_message(rpc_reflection *rf, const char *scope, struct pb m, size_t file, int depth)
{
    char name[MAX_NAME], full[MAX_NAME];
    if (depth > 16 || pb_name(m, name, sizeof(name)) < 0 ||
        add_symbol(rf, scope, name, file, false))
        return -1;
    snprintf(full, sizeof(full), "%s", rf->symbols[rf->n_symbols - 1].name);
    uint32_t f;
    struct pb sub;
    int r;
    while ((r = pb_next(&m, &f, &sub)) == 1) {
        if (!sub.p)
            continue;
        if (f == 3 && index_message(rf, full, sub, file, depth + 1) < 0)
            return -1;
        if (f == 4 &&
            (pb_name(sub, name, sizeof(name)) < 0 || add_symbol(rf, full, name, file, false) < 0))
            return -1;
    }
    return r;
}

static int
index_service(rpc_reflection *rf, const char *scope, struct pb m, size_t file)
{
    char name[MAX_NAME], full[MAX_NAME];
    if (pb_name(m, name, sizeof(name)) < 0 || add_symbol(rf, scope, name, file, true) < 0)
        return -1;
    snprintf(full, sizeof(full), "%s", rf->symbols[rf->n_symbols - 1].name);
    uint32_t f;
    struct pb sub;
    int r;
    while ((r = pb_next(&m, &f, &sub)) == 1) {
        if (f == 2 && sub.p &&
            (pb_name(sub, name, sizeof(name)) < 0 || add_symbol(rf, full, name, file, false) < 0))
            return -1;
    }
    return r;
}

static int
index_file(rpc_reflection *rf, struct pb fd)
{
    if (rf->n_files >= MAX_FILES)
        return -1;
    size_t idx = rf->n_files;
    struct refl_file *file = &rf->files[idx];
    file->bytes.data = (uint8_t *)fd.p;
    file->bytes.len = (size_t)(fd.end - fd.p);
    /* Name, package and imports first: symbols need the package. */
    struct pb m = fd;
    uint32_t f;
    struct pb sub;
    int r;
    while ((r = pb_next(&m, &f, &sub)) == 1) {
        if (!sub.p)
            continue;
        if (f == 1 && pb_string(&sub, file->name, sizeof(file->name)) < 0)
            return -1;
        if (f == 2 && pb_string(&sub, file->package, sizeof(file->package)) < 0)
            return -1;
        if (f == 3) {
            if (file->n_deps >= MAX_DEPS ||
                pb_string(&sub, file->dep_names[file->n_deps], MAX_NAME) < 0)
                return -1;
            file->n_deps++;
        }
    }
    if (r < 0 || !file->name[0])
        return -1;
    m = fd;
    while ((r = pb_next(&m, &f, &sub)) == 1) {
        if (!sub.p)
            continue;
        char name[MAX_NAME];
        if (f == 4 && index_message(rf, file->package, sub, idx, 0) < 0)
            return -1;
        if (f == 5 && (pb_name(sub, name, sizeof(name)) < 0 ||
                       add_symbol(rf, file->package, name, idx, false) < 0))
            return -1;
        if (f == 6 && index_service(rf, file->package, sub, idx) < 0)
            return -1;
    }
    if (r < 0)
        return -1;
    rf->n_files++;
    return 0;
}

static long
find_file(const rpc_reflection *rf, const char *name)
{
    for (size_t i = 0; i < rf->n_files; i++) {
        if (strcmp(rf->files[i].name, name) == 0)
            return (long)i;
    }
    return -1;
}

int
rpc_reflection_new(rpc_reflection **out, se_err *err)
{
    rpc_reflection *rf = calloc(1, sizeof(*rf));
    if (!rf)
        return se_err_set(err, SE_INTERNAL, "out of memory");
    struct pb set = {rpc_descriptor_set, rpc_descriptor_set + rpc_descriptor_set_len};
    uint32_t f;
    struct pb sub;
    int r;
    while ((r = pb_next(&set, &f, &sub)) == 1) {
        if (f == 1 && sub.p && index_file(rf, sub) < 0) {
            r = -1;
            break;
        }
    }
    /* --include_imports puts every import in the set: resolve them. */
    for (size_t i = 0; r == 0 && i < rf->n_files; i++) {
        for (size_t k = 0; k < rf->files[i].n_deps; k++) {
            long d = find_file(rf, rf->files[i].dep_names[k]);
            if (d < 0) {
                r = -1;
                break;
            }
            rf->files[i].deps[k] = (size_t)d;
        }
    }
    if (r < 0) {
        free(rf);
        return se_err_set(err, SE_INTERNAL, "reflection: the built-in descriptor set is malformed");
    }
    *out = rf;
    return 0;
}

void
rpc_reflection_free(rpc_reflection *rf)
{
    free(rf);
}

/* ---- answering ------------------------------------------------------------------------------ */

/* The file and everything it imports, each once, the file first. */
static size_t
closure(const rpc_reflection *rf, size_t file, size_t *out, bool *seen)
{
    size_t n = 0;
    size_t stack[MAX_FILES];
    size_t top = 0;
    stack[top++] = file;
    seen[file] = true;
    while (top > 0) {
        size_t f = stack[--top];
        out[n++] = f;
        for (size_t k = 0; k < rf->files[f].n_deps; k++) {
            size_t d = rf->files[f].deps[k];
            if (!seen[d] && top < MAX_FILES) {
                seen[d] = true;
                stack[top++] = d;
            }
        }
    }
    return n;
}

static const struct refl_symbol *
find_symbol(const rpc_reflection *rf, const char *name)
{
    for (size_t i = 0; i < rf->n_symbols; i++) {
        if (strcmp(rf->symbols[i].name, name) == 0)
            return &rf->symbols[i];
    }
    return NULL;
}

/* Everything a response points at lives on the answering function's stack
 * or in rf: nothing here is malloc'd. */
struct answer {
    Grpc__Reflection__V1__ServerReflectionResponse resp;
    Grpc__Reflection__V1__FileDescriptorResponse files;
    ProtobufCBinaryData file_bytes[MAX_FILES];
    Grpc__Reflection__V1__ListServiceResponse list;
    Grpc__Reflection__V1__ServiceResponse services[MAX_FILES];
    Grpc__Reflection__V1__ServiceResponse *service_ptrs[MAX_FILES];
    Grpc__Reflection__V1__ExtensionNumberResponse ext;
    Grpc__Reflection__V1__ErrorResponse error;
    char error_msg[MAX_NAME + 64];
};

static void
answer_error(struct answer *a, int code, const char *what, const char *name)
{
    a->error = (Grpc__Reflection__V1__ErrorResponse)GRPC__REFLECTION__V1__ERROR_RESPONSE__INIT;
    a->error.error_code = code;
    snprintf(a->error_msg, sizeof(a->error_msg), "%s %.*s", what, MAX_NAME, name ? name : "");
    a->error.error_message = a->error_msg;
    a->resp.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
    a->resp.error_response = &a->error;
}

static void
answer_file(struct answer *a, const rpc_reflection *rf, size_t file)
{
    bool seen[MAX_FILES] = {false};
    size_t idx[MAX_FILES];
    size_t n = closure(rf, file, idx, seen);
    a->files = (Grpc__Reflection__V1__FileDescriptorResponse)
        GRPC__REFLECTION__V1__FILE_DESCRIPTOR_RESPONSE__INIT;
    for (size_t i = 0; i < n; i++)
        a->file_bytes[i] = rf->files[idx[i]].bytes;
    a->files.n_file_descriptor_proto = n;
    a->files.file_descriptor_proto = a->file_bytes;
    a->resp.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
    a->resp.file_descriptor_response = &a->files;
}

static void
answer(struct answer *a, const rpc_reflection *rf,
       Grpc__Reflection__V1__ServerReflectionRequest *req)
{
    a->resp = (Grpc__Reflection__V1__ServerReflectionResponse)
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT;
    a->resp.valid_host = req->host;
    a->resp.original_request = req;
    switch (req->message_request_case) {
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES: {
        size_t n = 0;
        for (size_t i = 0; i < rf->n_symbols && n < MAX_FILES; i++) {
            if (!rf->symbols[i].service)
                continue;
            a->services[n] =
                (Grpc__Reflection__V1__ServiceResponse)GRPC__REFLECTION__V1__SERVICE_RESPONSE__INIT;
            a->services[n].name = (char *)rf->symbols[i].name;
            a->service_ptrs[n] = &a->services[n];
            n++;
        }
        a->list = (Grpc__Reflection__V1__ListServiceResponse)
            GRPC__REFLECTION__V1__LIST_SERVICE_RESPONSE__INIT;
        a->list.n_service = n;
        a->list.service = a->service_ptrs;
        a->resp.message_response_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
        a->resp.list_services_response = &a->list;
        return;
    }
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME: {
        long f = find_file(rf, req->file_by_filename);
        if (f < 0)
            answer_error(a, CODE_NOT_FOUND, "unknown file", req->file_by_filename);
        else
            answer_file(a, rf, (size_t)f);
        return;
    }
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL: {
        const struct refl_symbol *s = find_symbol(rf, req->file_containing_symbol);
        if (!s)
            answer_error(a, CODE_NOT_FOUND, "unknown symbol", req->file_containing_symbol);
        else
            answer_file(a, rf, s->file);
        return;
    }
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
        /* None of our files declares an extension. */
        answer_error(
            a, CODE_NOT_FOUND, "no extension of",
            req->file_containing_extension ? req->file_containing_extension->containing_type : "");
        return;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
        if (!find_symbol(rf, req->all_extension_numbers_of_type)) {
            answer_error(a, CODE_NOT_FOUND, "unknown type", req->all_extension_numbers_of_type);
            return;
        }
        a->ext = (Grpc__Reflection__V1__ExtensionNumberResponse)
            GRPC__REFLECTION__V1__EXTENSION_NUMBER_RESPONSE__INIT;
        a->ext.base_type_name = req->all_extension_numbers_of_type;
        a->resp.message_response_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
        a->resp.all_extension_numbers_response = &a->ext;
        return;
    default:
        answer_error(a, CODE_INVALID_ARGUMENT, "no request in the ServerReflectionRequest", NULL);
        return;
    }
}

/* ServerReflectionInfo: one answer per request, until the client closes its
 * side (status OK), leaves, or the server shuts down. */
static int
info(void *svc, const ProtobufCMessage *unused, rpc_call *call, const se_cancel *cancel,
     se_err *err)
{
    (void)unused;
    (void)cancel;
    const rpc_reflection *rf = svc;
    struct answer *a = malloc(sizeof(*a));
    if (!a)
        return se_err_set(err, SE_INTERNAL, "out of memory");
    int r;
    for (;;) {
        ProtobufCMessage *m = NULL;
        r = rpc_call_recv(call, &grpc__reflection__v1__server_reflection_request__descriptor, &m,
                          err);
        if (r <= 0)
            break;
        answer(a, rf, (Grpc__Reflection__V1__ServerReflectionRequest *)m);
        r = rpc_call_send(call, &a->resp.base, err);
        protobuf_c_message_free_unpacked(m, NULL);
        if (r < 0)
            break;
    }
    free(a);
    return r < 0 ? r : 0;
}

const rpc_method rpc_reflection_methods[2] = {
    {.path = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", .stream = info},
    {.path = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", .stream = info},
};
