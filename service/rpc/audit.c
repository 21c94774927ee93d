/* The audit line. Its fields are what the daemon knows for sure (the
 * identity it established, the peer gRPC or the kernel reported, the
 * method, the status it sent); the client-chosen ones (sandbox id, request
 * id) are checked or cut down to safe characters before they are written. */
#include "rpc/audit.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include <cjson/cJSON.h>

#include "util/log.h"

static const char *
status_name(int code)
{
    static const char *const names[] = {"OK",
                                        "CANCELLED",
                                        "UNKNOWN",
                                        "INVALID_ARGUMENT",
                                        "DEADLINE_EXCEEDED",
                                        "NOT_FOUND",
                                        "ALREADY_EXISTS",
                                        "PERMISSION_DENIED",
                                        "RESOURCE_EXHAUSTED",
                                        "FAILED_PRECONDITION",
                                        "ABORTED",
                                        "OUT_OF_RANGE",
                                        "UNIMPLEMENTED",
                                        "INTERNAL",
                                        "UNAVAILABLE",
                                        "DATA_LOSS",
                                        "UNAUTHENTICATED"};
    if (code >= 0 && code < (int)(sizeof(names) / sizeof(names[0])))
        return names[code];
    return "?";
}

static bool
id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("._:/+=-", c);
}

void
rpc_request_id(char out[RPC_REQUEST_ID_MAX + 1], const char *given, size_t len)
{
    if (given && len > 0 && len <= RPC_REQUEST_ID_MAX) {
        size_t i = 0;
        while (i < len && given[i] && id_char(given[i]))
            i++;
        if (i == len) {
            memcpy(out, given, len);
            out[len] = '\0';
            return;
        }
    }
    uint8_t raw[16];
    size_t got = 0;
    while (got < sizeof(raw)) {
        ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof(raw); i++) {
        /* getrandom cannot fail here short of a broken kernel; a zero id
         * is still an id. */
        uint8_t b = i < got ? raw[i] : 0;
        out[2 * i] = hex[b >> 4];
        out[2 * i + 1] = hex[b & 15];
    }
    out[2 * sizeof(raw)] = '\0';
}

/* The string field `name` of m, or NULL. */
static const char *
string_field(const ProtobufCMessage *m, const char *name)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    if (!f || f->type != PROTOBUF_C_TYPE_STRING || f->label == PROTOBUF_C_LABEL_REPEATED)
        return NULL;
    return *(const char *const *)((const char *)m + f->offset);
}

static const ProtobufCMessage *
message_field(const ProtobufCMessage *m, const char *name)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED)
        return NULL;
    return *(const ProtobufCMessage *const *)((const char *)m + f->offset);
}

void
rpc_audit_sandbox(char out[RPC_AUDIT_SANDBOX_MAX + 1], const ProtobufCMessage *req,
                  const ProtobufCMessage *resp)
{
    const char *id = req ? string_field(req, "sandbox_id") : NULL;
    if ((!id || !*id) && resp) {
        const ProtobufCMessage *sb = message_field(resp, "sandbox");
        if (sb)
            id = string_field(sb, "id");
    }
    size_t n = 0;
    for (; id && id[n] && n < RPC_AUDIT_SANDBOX_MAX; n++) {
        char c = id[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        out[n] = ok ? c : '?';
    }
    out[n] = '\0';
}

void
rpc_audit_log(const rpc_audit *a)
{
    if (log_current_level < LOG_INFO)
        return;
    cJSON *f = cJSON_CreateObject();
    if (!f)
        return;
    /* Field order is the text line's: "rpc Eval status=OK duration_ms=..." */
    cJSON_AddStringToObject(f, "status", status_name(a->status));
    cJSON_AddNumberToObject(f, "duration_ms", (double)(int64_t)(a->duration_ms * 1000) / 1000.0);
    cJSON_AddNumberToObject(f, "queued_us", (double)a->queued_us);
    cJSON_AddStringToObject(f, "identity", a->identity ? a->identity : "-");
    if (a->admin)
        cJSON_AddStringToObject(f, "role", "admin");
    cJSON_AddStringToObject(f, "peer", a->peer ? a->peer : "");
    cJSON_AddStringToObject(f, "sandbox", a->sandbox ? a->sandbox : "");
    cJSON_AddStringToObject(f, "request_id", a->request_id ? a->request_id : "");
    cJSON_AddStringToObject(f, "method", a->method);
    if (a->error && *a->error)
        cJSON_AddStringToObject(f, "error", a->error);
    char msg[160];
    snprintf(msg, sizeof(msg), "rpc %s", a->method);
    log_write_fields(LOG_INFO, msg, f);
    cJSON_Delete(f);
}
