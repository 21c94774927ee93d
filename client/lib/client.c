/* The channel and the one unary call every RPC goes through. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "internal.h"

/* How often a call with a cancel flag wakes up to look at it. */
#define SC_CANCEL_POLL_MS 50

static const char *const status_names[] = {
    "OK",
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
    "UNAUTHENTICATED",
};

const char *
safeeval_version(void)
{
    return SAFEEVAL_VERSION_STRING;
}

const char *
safeeval_status_name(int code)
{
    if (code < 0 || (size_t)code >= sizeof(status_names) / sizeof(status_names[0]))
        return "UNKNOWN_STATUS";
    return status_names[code];
}

static void
sanitize(char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 0x20 || ch == 0x7f)
            *s = '?';
    }
}

int
sc_fail(safeeval_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
        sanitize(err->message);
    }
    return -1;
}

int
safeeval_client_new(safeeval_client **out, const safeeval_client_opts *opts_in, safeeval_error *err)
{
    safeeval_client_opts o;
    SC_OPTS_COPY(o, opts_in);
    if (!opts_in)
        o.default_timeout_ms = SAFEEVAL_DEFAULT_TIMEOUT_MS;
    *out = NULL;
    const char *target = o.target && *o.target ? o.target : SAFEEVAL_DEFAULT_TARGET;
    if ((o.cert_pem != NULL) != (o.key_pem != NULL))
        return sc_fail(err, SAFEEVAL_STATUS_INVALID_ARGUMENT,
                       "client: cert_pem and key_pem go together");
    if (o.cert_pem && !o.ca_pem)
        return sc_fail(err, SAFEEVAL_STATUS_INVALID_ARGUMENT,
                       "client: a client certificate needs ca_pem (TLS)");
    size_t max_recv =
        o.max_receive_bytes ? o.max_receive_bytes : SAFEEVAL_DEFAULT_MAX_RECEIVE_BYTES;
    if (max_recv > INT32_MAX)
        max_recv = INT32_MAX;

    safeeval_client *c = calloc(1, sizeof(*c));
    if (!c)
        return sc_fail(err, SAFEEVAL_STATUS_INTERNAL, "client: out of memory");
    c->default_timeout_ms = o.default_timeout_ms;
    if (o.token) {
        size_t n = strlen(o.token) + sizeof("Bearer ");
        c->auth_header = malloc(n);
        if (!c->auth_header) {
            free(c);
            return sc_fail(err, SAFEEVAL_STATUS_INTERNAL, "client: out of memory");
        }
        snprintf(c->auth_header, n, "Bearer %s", o.token);
    }

    grpc_init();
    grpc_channel_credentials *creds;
    if (o.ca_pem) {
        grpc_ssl_pem_key_cert_pair pair = {o.key_pem, o.cert_pem};
        creds = grpc_ssl_credentials_create(o.ca_pem, o.cert_pem ? &pair : NULL, NULL, NULL);
    } else {
        creds = grpc_insecure_credentials_create();
    }
    grpc_arg args[] = {
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         .value.integer = (int)max_recv},
        /* A plain client: our calls are not idempotent (a retried Create
         * could build two sandboxes). */
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ENABLE_RETRIES, .value.integer = 0},
    };
    grpc_channel_args chargs = {sizeof(args) / sizeof(args[0]), args};
    c->channel = creds ? grpc_channel_create(target, creds, &chargs) : NULL;
    if (creds)
        grpc_channel_credentials_release(creds);
    if (!c->channel) {
        free(c->auth_header);
        free(c);
        grpc_shutdown();
        return sc_fail(err, SAFEEVAL_STATUS_INVALID_ARGUMENT, "client: cannot open a channel to %s",
                       target);
    }
    *out = c;
    return 0;
}

void
safeeval_client_free(safeeval_client *c)
{
    if (!c)
        return;
    grpc_channel_destroy(c->channel);
    free(c->auth_header);
    free(c);
    grpc_shutdown();
}

static gpr_timespec
deadline_after_ms(uint32_t ms)
{
    if (ms == 0)
        return gpr_inf_future(GPR_CLOCK_MONOTONIC);
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                        gpr_time_from_millis((int64_t)ms, GPR_TIMESPAN));
}

static void
cq_drain_destroy(grpc_completion_queue *cq)
{
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
}

static int
status_fail(safeeval_error *err, grpc_status_code status, grpc_slice details)
{
    size_t n = GRPC_SLICE_LENGTH(details);
    if (n > SAFEEVAL_ERROR_MESSAGE_MAX - 1)
        n = SAFEEVAL_ERROR_MESSAGE_MAX - 1;
    if (n == 0)
        return sc_fail(err, (int)status, "%s", safeeval_status_name((int)status));
    return sc_fail(err, (int)status, "%.*s", (int)n, (const char *)GRPC_SLICE_START_PTR(details));
}

/* Waits for the batch `want` on a stream's queue, noting others that
 * complete meanwhile in *done (bit per tag 1..3) and cancelling the call
 * once *cancel is set. Returns the batch's success, or -1 if the queue
 * broke. */
static int
stream_wait(grpc_completion_queue *cq, grpc_call *call, uintptr_t want, unsigned *done,
            const volatile int *cancel, int *cancelled)
{
    while (!(*done & (1u << want))) {
        gpr_timespec wait = gpr_inf_future(GPR_CLOCK_MONOTONIC);
        if (cancel && !*cancelled)
            wait = deadline_after_ms(SC_CANCEL_POLL_MS);
        grpc_event ev = grpc_completion_queue_next(cq, wait, NULL);
        if (ev.type == GRPC_OP_COMPLETE) {
            *done |= 1u << (uintptr_t)ev.tag;
            if ((uintptr_t)ev.tag == want)
                return ev.success;
            continue;
        }
        if (ev.type == GRPC_QUEUE_TIMEOUT) {
            if (cancel && *cancel && !*cancelled) {
                grpc_call_cancel_with_status(call, GRPC_STATUS_CANCELLED, "cancelled by the caller",
                                             NULL);
                *cancelled = 1;
            }
            continue;
        }
        return -1;
    }
    return 1;
}

int
sc_server_stream(safeeval_client *c, const char *method, const ProtobufCMessage *req,
                 sc_msg_fn on_msg, void *ud, uint32_t timeout_ms, const volatile int *cancel,
                 safeeval_error *err)
{
    enum { T_START = 1, T_MSG = 2, T_STATUS = 3 };
    int rc = -1;
    size_t len = protobuf_c_message_get_packed_size(req);
    grpc_slice body = grpc_slice_malloc(len);
    protobuf_c_message_pack(req, GRPC_SLICE_START_PTR(body));
    grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&body, 1);
    grpc_slice_unref(body);

    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    gpr_timespec deadline = deadline_after_ms(timeout_ms ? timeout_ms : c->default_timeout_ms);
    grpc_call *call =
        grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                 grpc_slice_from_static_string(method), NULL, deadline, NULL);
    grpc_metadata md[1];
    size_t n_md = 0;
    if (c->auth_header) {
        md[0].key = grpc_slice_from_static_string("authorization");
        md[0].value = grpc_slice_from_copied_string(c->auth_header);
        n_md = 1;
    }
    grpc_metadata_array initial_md, trailing_md;
    grpc_metadata_array_init(&initial_md);
    grpc_metadata_array_init(&trailing_md);
    grpc_status_code status = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    unsigned done = 0;
    unsigned started = 0;
    int cancelled = 0;
    int local_fail = 0; /* the callback stopped it: err is already filled */

    grpc_op ops[4];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = n_md;
    ops[0].data.send_initial_metadata.metadata = n_md ? md : NULL;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
    grpc_op st;
    memset(&st, 0, sizeof(st));
    st.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    st.data.recv_status_on_client.trailing_metadata = &trailing_md;
    st.data.recv_status_on_client.status = &status;
    st.data.recv_status_on_client.status_details = &details;
    if (grpc_call_start_batch(call, ops, 4, (void *)(uintptr_t)T_START, NULL) != GRPC_CALL_OK) {
        sc_fail(err, SAFEEVAL_STATUS_INTERNAL, "%s: grpc_call_start_batch failed", method);
        goto out;
    }
    started |= 1u << T_START;
    if (grpc_call_start_batch(call, &st, 1, (void *)(uintptr_t)T_STATUS, NULL) != GRPC_CALL_OK) {
        grpc_call_cancel(call, NULL);
        sc_fail(err, SAFEEVAL_STATUS_INTERNAL, "%s: grpc_call_start_batch failed", method);
        goto out;
    }
    started |= 1u << T_STATUS;
    for (;;) {
        grpc_byte_buffer *recv = NULL;
        grpc_op rm;
        memset(&rm, 0, sizeof(rm));
        rm.op = GRPC_OP_RECV_MESSAGE;
        rm.data.recv_message.recv_message = &recv;
        done &= ~(1u << T_MSG);
        started &= ~(1u << T_MSG);
        if (grpc_call_start_batch(call, &rm, 1, (void *)(uintptr_t)T_MSG, NULL) != GRPC_CALL_OK)
            break;
        started |= 1u << T_MSG;
        if (stream_wait(cq, call, T_MSG, &done, cancel, &cancelled) < 0 || !recv)
            break;
        grpc_byte_buffer_reader reader;
        int stop = 0;
        if (!grpc_byte_buffer_reader_init(&reader, recv)) {
            stop = sc_fail(err, SAFEEVAL_STATUS_INTERNAL, "%s: cannot read a reply", method);
        } else {
            grpc_slice whole = grpc_byte_buffer_reader_readall(&reader);
            grpc_byte_buffer_reader_destroy(&reader);
            stop = on_msg(GRPC_SLICE_START_PTR(whole), GRPC_SLICE_LENGTH(whole), ud, err);
            grpc_slice_unref(whole);
        }
        grpc_byte_buffer_destroy(recv);
        if (stop) {
            local_fail = 1;
            grpc_call_cancel_with_status(call, GRPC_STATUS_CANCELLED, "stopped by the caller",
                                         NULL);
            break;
        }
    }
    /* Every batch started must complete before the queue goes. */
    for (uintptr_t t = T_START; t <= T_STATUS; t++)
        if ((started & (1u << t)) && stream_wait(cq, call, t, &done, cancel, &cancelled) < 0) {
            sc_fail(err, SAFEEVAL_STATUS_INTERNAL, "%s: completion queue shut down", method);
            local_fail = 1;
        }
    if (local_fail)
        goto out;
    if (status != GRPC_STATUS_OK) {
        status_fail(err, status, details);
        goto out;
    }
    rc = 0;
out:
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&initial_md);
    grpc_metadata_array_destroy(&trailing_md);
    if (n_md)
        grpc_slice_unref(md[0].value);
    grpc_call_unref(call);
    grpc_byte_buffer_destroy(send);
    cq_drain_destroy(cq);
    return rc;
}

/* A unary call is a server stream that must bring exactly one message. */
typedef struct unary_reply {
    const char *method;
    const ProtobufCMessageDescriptor *desc;
    ProtobufCMessage *msg;
} unary_reply;

static int
unary_msg(const uint8_t *data, size_t len, void *ud, safeeval_error *err)
{
    unary_reply *u = ud;
    if (u->msg)
        return sc_fail(err, SAFEEVAL_STATUS_INTERNAL, "%s: more than one reply", u->method);
    u->msg = protobuf_c_message_unpack(u->desc, NULL, len, data);
    if (!u->msg)
        return sc_fail(err, SAFEEVAL_STATUS_INTERNAL, "%s: the reply is not a valid %s", u->method,
                       u->desc->name);
    return 0;
}

int
sc_unary(safeeval_client *c, const char *method, const ProtobufCMessage *req,
         const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **out, uint32_t timeout_ms,
         const volatile int *cancel, safeeval_error *err)
{
    unary_reply u = {method, resp_desc, NULL};
    *out = NULL;
    if (sc_server_stream(c, method, req, unary_msg, &u, timeout_ms, cancel, err) != 0) {
        if (u.msg)
            protobuf_c_message_free_unpacked(u.msg, NULL);
        return -1;
    }
    if (!u.msg)
        return sc_fail(err, SAFEEVAL_STATUS_INTERNAL, "%s: the service sent no reply", method);
    *out = u.msg;
    return 0;
}
