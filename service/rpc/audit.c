/* The audit line. Its fields are what the daemon knows for sure (the
 * identity it established, the peer gRPC or the kernel reported, the
 * method, the status it sent); the client-chosen ones (sandbox id, request
 * id) are checked or cut down to safe characters before they are written. */
#include "rpc/audit.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "util/log.h"
#include "util/metrics.h"

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
rpc_audit_log(int level, const rpc_audit *a)
{
    if (log_current_level < level)
        return;
    char msg[160];
    bool json = log_json_enabled();
    /* Text keeps its "rpc Eval status=OK duration_ms=1.234" head; JSON has
     * the same values as fields. */
    if (json)
        snprintf(msg, sizeof(msg), "rpc %s", a->method);
    else
        snprintf(msg, sizeof(msg), "rpc %s status=%s duration_ms=%.3f", a->method,
                 metrics_code_name(a->status), a->duration_ms);
    log_field f[12];
    size_t n = 0;
    if (json) {
        f[n++] = (log_field){.key = "method", .str = a->path ? a->path : a->method};
        f[n++] = (log_field){.key = "code", .str = metrics_code_name(a->status)};
        f[n++] = (log_field){.key = "duration_ms",
                             .num = (double)(int64_t)(a->duration_ms * 1000) / 1000.0};
    }
    f[n++] = (log_field){.key = "queued_us", .num = (double)a->queued_us};
    f[n++] = (log_field){.key = "identity", .str = a->identity ? a->identity : "-"};
    if (a->admin)
        f[n++] = (log_field){.key = "role", .str = "admin"};
    f[n++] = (log_field){.key = "peer", .str = a->peer ? a->peer : ""};
    f[n++] = (log_field){.key = "sandbox", .str = a->sandbox ? a->sandbox : ""};
    f[n++] = (log_field){.key = "request_id", .str = a->request_id ? a->request_id : ""};
    if (a->error && *a->error)
        f[n++] = (log_field){.key = "error", .str = a->error};
    log_write_fields(level, msg, f, n);
}
