/* The daemon's side of agent.proto: what a (hostile) agent sends back over
 * a worker's attach stream. The first input byte picks the run's
 * max_output_bytes (bits 0-1: 16, 64, 1000 or 1 MiB) and how the rest is
 * read (bit 2: 0 a byte stream of frames (agent/frame.h), 1 one bare Event
 * payload). Every payload goes through sandbox_run_feed of one accumulator
 * (run id 7, as for a run in progress) and through sandbox_state_parse (as
 * after a sync).
 *
 * Beyond "no crash, no leak", each verdict is checked against an
 * independent decode of the same payload, output never passes the cap, the
 * kept bytes are exactly the accepted Output events in order, and a Done's
 * result has a valid reason and signal, output lengths equal to
 * min(total, cap) and truncation flags that follow the totals. */
#include <string.h>

#include "agent/frame.h"
#include "fuzz.h"
#include "sandbox/internal.h"

#define RUN_ID 7

static const uint64_t caps[4] = {16, 64, 1000, 1u << 20};

/* What the target itself saw accepted, to compare with the accumulator. */
typedef struct shadow {
    se_buf out, err;
    bool taken; /* the result (and with it the kept output) was handed over */
} shadow;

static bool
printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

static void
check_result(const sandbox_run_acc *a, const shadow *sh, const Safeeval__V1__ExecResult *r)
{
    FUZZ_CHECK(r->reason > SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_UNSPECIFIED &&
               r->reason <= SAFEEVAL__V1__EXIT_REASON__EXIT_REASON_FILE_SIZE_LIMIT);
    FUZZ_CHECK(r->signal >= 0 && r->signal <= 64);
    uint64_t want_out = r->stdout_bytes < a->cap ? r->stdout_bytes : a->cap;
    uint64_t want_err = r->stderr_bytes < a->cap ? r->stderr_bytes : a->cap;
    FUZZ_CHECK(r->stdout.len == want_out);
    FUZZ_CHECK(r->stderr.len == want_err);
    FUZZ_CHECK(r->stdout_truncated == (r->stdout_bytes > r->stdout.len));
    FUZZ_CHECK(r->stderr_truncated == (r->stderr_bytes > r->stderr.len));
    FUZZ_CHECK(r->stdout.len == sh->out.len && r->stderr.len == sh->err.len);
    FUZZ_CHECK(r->stdout.len == 0 || memcmp(r->stdout.data, sh->out.data, r->stdout.len) == 0);
    FUZZ_CHECK(r->stderr.len == 0 || memcmp(r->stderr.data, sh->err.data, r->stderr.len) == 0);
}

/* One payload through sandbox_state_parse, checked against ev (our own
 * decode of it, NULL when it is not an Event). */
static void
check_state(const Safeeval__Agent__V1__Event *ev, const uint8_t *p, size_t n)
{
    Safeeval__Agent__V1__State *st = (Safeeval__Agent__V1__State *)1;
    uint64_t done_id = 1234;
    se_err err;
    se_err_clear(&err);
    int rc = sandbox_state_parse(&st, &done_id, p, n, &err);
    if (rc < 0) {
        FUZZ_CHECK(rc == -SE_PROTOCOL && err.code == SE_PROTOCOL);
        FUZZ_CHECK(strnlen(err.msg, sizeof(err.msg)) < sizeof(err.msg));
        FUZZ_CHECK(st == NULL);
    }
    if (!ev) {
        FUZZ_CHECK(rc == -SE_PROTOCOL);
        return;
    }
    switch (ev->ev_case) {
    case SAFEEVAL__AGENT__V1__EVENT__EV_STATE:
        FUZZ_CHECK(rc == 0 && st != NULL && done_id == 0);
        FUZZ_CHECK(st->build_id && st->cgroup);
        safeeval__agent__v1__state__free_unpacked(st, NULL);
        break;
    case SAFEEVAL__AGENT__V1__EVENT__EV_DONE:
    case SAFEEVAL__AGENT__V1__EVENT__EV_OUTPUT:
        if (ev->id == 0) {
            FUZZ_CHECK(rc == -SE_PROTOCOL);
            break;
        }
        FUZZ_CHECK(rc == 0 && st == NULL);
        FUZZ_CHECK(done_id == (ev->ev_case == SAFEEVAL__AGENT__V1__EVENT__EV_DONE ? ev->id : 0));
        break;
    default:
        FUZZ_CHECK(rc == -SE_PROTOCOL);
    }
}

/* One payload through the run's accumulator, checked against ev. */
static void
check_feed(sandbox_run_acc *a, shadow *sh, const Safeeval__Agent__V1__Event *ev, const uint8_t *p,
           size_t n)
{
    bool was_done = a->done;
    uint64_t out_before = a->out_got, err_before = a->err_got;
    se_err err;
    se_err_clear(&err);
    int rc = sandbox_run_feed(a, p, n, &err);
    FUZZ_CHECK(rc == 0 || rc == 1 || rc == -SE_PROTOCOL);
    if (rc < 0) {
        FUZZ_CHECK(err.code == SE_PROTOCOL);
        FUZZ_CHECK(strnlen(err.msg, sizeof(err.msg)) < sizeof(err.msg));
    }
    /* The cap holds whatever came, and what is kept is what was counted
     * (until sandbox_run_take hands it over). */
    FUZZ_CHECK(a->out_got <= a->cap && a->err_got <= a->cap);
    FUZZ_CHECK(sh->taken || (a->out.len == a->out_got && a->err.len == a->err_got));
    if (was_done || !ev || ev->id != RUN_ID) {
        /* After the Done, garbage and other runs' events: all violations,
         * and none of them changes what was kept. */
        FUZZ_CHECK(rc == -SE_PROTOCOL);
        FUZZ_CHECK(a->out_got == out_before && a->err_got == err_before);
        FUZZ_CHECK(a->done == was_done);
        return;
    }
    switch (ev->ev_case) {
    case SAFEEVAL__AGENT__V1__EVENT__EV_OUTPUT: {
        FUZZ_CHECK(rc <= 0 && !a->done);
        const Safeeval__Agent__V1__Output *o = ev->output;
        if (rc < 0) {
            FUZZ_CHECK(a->out_got == out_before && a->err_got == err_before);
            break;
        }
        FUZZ_CHECK(o->stream == 1 || o->stream == 2);
        se_buf *b = o->stream == 1 ? &sh->out : &sh->err;
        FUZZ_CHECK(se_buf_append(b, o->data.data, o->data.len) == 0);
        FUZZ_CHECK(a->out_got == sh->out.len && a->err_got == sh->err.len);
        break;
    }
    case SAFEEVAL__AGENT__V1__EVENT__EV_DONE: {
        /* A Done ends the run whatever it holds. */
        FUZZ_CHECK(a->done);
        FUZZ_CHECK(a->cancelled == ev->done->cancelled && a->clean == ev->done->clean);
        if (rc < 0) {
            FUZZ_CHECK(a->result == NULL);
            break;
        }
        FUZZ_CHECK(rc == 1);
        if (a->result) {
            FUZZ_CHECK(a->agent_error[0] == '\0');
            Safeeval__V1__ExecResult *r = sandbox_run_take(a);
            FUZZ_CHECK(r != NULL && a->result == NULL);
            sh->taken = true;
            check_result(a, sh, r);
            /* Handed over whole: it must free as one message. */
            safeeval__v1__exec_result__free_unpacked(r, NULL);
        } else {
            /* The agent's own error: non-empty, fit for a log line. */
            FUZZ_CHECK(ev->done->error && ev->done->error[0]);
            FUZZ_CHECK(strnlen(a->agent_error, sizeof(a->agent_error)) < sizeof(a->agent_error));
            FUZZ_CHECK(a->agent_error[0] != '\0' && printable(a->agent_error));
        }
        FUZZ_CHECK(sandbox_run_take(a) == NULL);
        break;
    }
    default:
        FUZZ_CHECK(rc == -SE_PROTOCOL && !a->done);
    }
}

static void
check_payload(sandbox_run_acc *a, shadow *sh, const uint8_t *p, size_t n)
{
    Safeeval__Agent__V1__Event *ev = safeeval__agent__v1__event__unpack(NULL, n, p);
    check_state(ev, p, n);
    check_feed(a, sh, ev, p, n);
    if (ev)
        safeeval__agent__v1__event__free_unpacked(ev, NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    uint8_t *buf = fuzz_dup(data + 1, size - 1);
    if (!buf)
        abort();
    size--;
    sandbox_limits lim = {1000, 1000, 64u << 20, 16, caps[mode & 3], 1u << 20, 4, 1u << 16};
    sandbox_run_acc a;
    sandbox_run_acc_init(&a, RUN_ID, &lim);
    FUZZ_CHECK(a.id == RUN_ID && a.cap == lim.max_output_bytes && !a.done);
    shadow sh;
    se_buf_init(&sh.out, (size_t)lim.max_output_bytes);
    se_buf_init(&sh.err, (size_t)lim.max_output_bytes);
    sh.taken = false;
    if (mode & 4) {
        check_payload(&a, &sh, buf, size);
    } else {
        size_t pos = 0;
        for (;;) {
            const uint8_t *payload = NULL;
            uint32_t plen = 0;
            size_t consumed = 0;
            int r =
                frame_parse(buf + pos, size - pos, SANDBOX_EVENT_MAX, &payload, &plen, &consumed);
            FUZZ_CHECK(r >= -1 && r <= 1);
            if (r != 1)
                break;
            FUZZ_CHECK(consumed == FRAME_HDR + (size_t)plen && consumed <= size - pos);
            /* An exact-size copy, so a read past the payload is caught. */
            uint8_t *p = fuzz_dup(payload, plen);
            if (!p)
                abort();
            check_payload(&a, &sh, p, plen);
            free(p);
            pos += consumed;
        }
    }
    sandbox_run_acc_clear(&a);
    se_buf_free(&sh.out);
    se_buf_free(&sh.err);
    free(buf);
    return 0;
}
