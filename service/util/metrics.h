/* The daemon's counters, gauges and histograms. Lock-free (C11 atomics): the
 * sandbox, image and docker layers bump them from any thread through the
 * small API below, which knows nothing of gRPC or HTTP. rpc/metrics.c serves
 * metrics_render()'s text on --metrics-listen. */
#ifndef SAFEEVAL_UTIL_METRICS_H
#define SAFEEVAL_UTIL_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "util/buf.h"

enum metrics_gauge {
    METRICS_SANDBOXES, /* live sandboxes */
    METRICS_WORKERS,   /* worker containers of live sandboxes */
    METRICS_N_GAUGES
};

enum metrics_hist {
    METRICS_RUN_SECONDS,      /* a run on its worker, from send to result */
    METRICS_RUN_WAIT_SECONDS, /* a run waiting for a free worker */
    METRICS_BUILD_SECONDS,    /* an image build */
    METRICS_N_HISTS
};

/* Exit reasons are the values of safeeval.v1.ExitReason (0..6); a run that
 * ended in an error (no result) is counted as METRICS_RUN_ERROR. */
#define METRICS_RUN_ERROR (-1)

void metrics_gauge_add(enum metrics_gauge g, int64_t delta);
void metrics_observe_us(enum metrics_hist h, int64_t us);
/* A run ended with `reason` (an ExitReason value, or METRICS_RUN_ERROR). */
void metrics_run_done(int reason);
/* An image build ended (ok or not) after `us` microseconds. */
void metrics_image_build(bool ok, int64_t us);
/* A request to the engine failed without an answer (unreachable, timed out,
 * cut). Also wakes the health check at once, if one is registered. */
void metrics_engine_error(void);
/* 1 while the engine answers the health check, 0 while it does not. */
void metrics_set_engine_up(bool up);
/* Called (from the failing thread) by metrics_engine_error; one hook. */
void metrics_set_engine_error_hook(void (*fn)(void *ud), void *ud);

/* RPC counters by method and status. Methods are registered at start up
 * from the server's own table (never from a client's string: the label
 * values stay few); ids are small integers. service "safeeval.v1.SandboxService",
 * method "Eval" (copied). Returns -1 when the table is full (then nothing counts). */
int metrics_rpc_method(const char *service, const char *method);
/* code: a gRPC status code 0..16. */
void metrics_rpc_done(int method_id, int code);
/* The name of gRPC status code 0..16 ("RESOURCE_EXHAUSTED"), "?" otherwise:
 * the one table of them, for the metrics' labels and the call lines. */
const char *metrics_code_name(int code);

/* Appends the Prometheus text exposition format (version 0.0.4) of every
 * metric, plus process_resident_memory_bytes and safeeval_build_info with
 * `version`. Returns 0, or -1 if out is full or out of memory. */
int metrics_render(se_buf *out, const char *version);

/* Forgets every value and registered method (unit tests). */
void metrics_reset(void);

#endif
