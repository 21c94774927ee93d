/* The agent's two ends of the worker's attach stream: Request frames in on
 * fd 0, Event frames out on fd 1, both non-blocking so one poll loop serves
 * them and the run together.
 *
 * Outgoing frames go through one fixed queue, allocated and touched once so
 * the agent's memory does not move with the traffic. Run output may fill it
 * only up to WIRE_OUTPUT_ROOM: past that the run's pipes are left unread
 * (the run blocks on its own writes, its limits still run). The room above
 * is for the small control events (State, Done), which therefore always
 * fit as long as requests are only taken in while WIRE_CONTROL_ROOM is
 * free. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/frame.h"
#include "agent/wire.h"

static uint8_t out_q[WIRE_QUEUE];

void
wire_init(wire *w)
{
    memset(w, 0, sizeof(*w));
    frame_reader_init(&w->rd);
    /* Touched now: the idle baseline already holds these pages. */
    memset(out_q, 0, sizeof(out_q));
    memset(w->in, 0, sizeof(w->in));
}

void
wire_free(wire *w)
{
    frame_reader_free(&w->rd);
}

int
wire_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -1;
    return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

size_t
wire_queued(const wire *w)
{
    return w->q_len - w->q_head;
}

bool
wire_room(const wire *w, size_t n)
{
    return WIRE_QUEUE - wire_queued(w) >= n;
}

/* Makes n bytes free at the tail; the caller checked wire_room. */
static uint8_t *
queue_tail(wire *w, size_t n)
{
    if (WIRE_QUEUE - w->q_len < n) {
        size_t q = wire_queued(w);
        memmove(out_q, out_q + w->q_head, q);
        w->q_head = 0;
        w->q_len = q;
    }
    return out_q + w->q_len;
}

int
wire_put_event(wire *w, const Safeeval__Agent__V1__Event *ev)
{
    size_t n = safeeval__agent__v1__event__get_packed_size(ev);
    if (!wire_room(w, FRAME_HDR + n))
        return -1;
    uint8_t *p = queue_tail(w, FRAME_HDR + n);
    frame_put_header(p, (uint32_t)n);
    safeeval__agent__v1__event__pack(ev, p + FRAME_HDR);
    w->q_len += FRAME_HDR + n;
    return 0;
}

int
wire_put_raw(wire *w, const uint8_t *frame, size_t n)
{
    if (!wire_room(w, n))
        return -1;
    uint8_t *p = queue_tail(w, n);
    memcpy(p, frame, n);
    w->q_len += n;
    return 0;
}

int
wire_flush(wire *w, int fd)
{
    while (wire_queued(w)) {
        ssize_t n = write(fd, out_q + w->q_head, wire_queued(w));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return 0;
        if (n <= 0)
            return -1;
        w->q_head += (size_t)n;
    }
    w->q_head = w->q_len = 0;
    return 0;
}

int
wire_fill(wire *w, int fd)
{
    if (w->in_off < w->in_len)
        return 1;
    w->in_off = w->in_len = 0;
    ssize_t n;
    do
        n = read(fd, w->in, sizeof(w->in));
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN)
        return 0;
    if (n < 0)
        return -1;
    if (n == 0) {
        w->eof = true;
        return 0;
    }
    w->in_len = (size_t)n;
    return 1;
}

int
wire_next(wire *w, uint32_t keep)
{
    while (w->in_off < w->in_len) {
        size_t used = 0;
        int r = frame_reader_feed(&w->rd, w->in + w->in_off, w->in_len - w->in_off, FRAME_MAX, keep,
                                  &used);
        w->in_off += used;
        if (r != FRAME_MORE)
            return r;
    }
    return FRAME_MORE;
}
