/* The agent's stdin/stdout: frames in, a bounded queue of frames out. */
#ifndef SAFEEVAL_AGENT_WIRE_H
#define SAFEEVAL_AGENT_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent.pb-c.h"
#include "agent/frame.h"

/* The outgoing queue: run output up to WIRE_OUTPUT_ROOM, one output event
 * on top of that, and the control events. */
#define WIRE_OUTPUT_ROOM (256u * 1024)
#define WIRE_CONTROL_ROOM (16u * 1024)
#define WIRE_QUEUE (WIRE_OUTPUT_ROOM + 65536 + 4096 + WIRE_CONTROL_ROOM)
/* A State or a Done, packed and framed, is at most this. */
#define WIRE_CONTROL_MAX 2048

typedef struct wire {
    frame_reader rd;
    uint8_t in[65536]; /* bytes read from stdin, not yet fed */
    size_t in_off, in_len;
    bool eof;
    size_t q_head, q_len; /* the outgoing queue's used part */
} wire;

void wire_init(wire *w);
void wire_free(wire *w);
int wire_nonblock(int fd);

/* Bytes waiting to go out. */
size_t wire_queued(const wire *w);
/* True when n more bytes fit in the queue. */
bool wire_room(const wire *w, size_t n);
/* Queues one Event frame; -1 when it does not fit (nothing queued). */
int wire_put_event(wire *w, const Safeeval__Agent__V1__Event *ev);
/* Queues bytes that are already a frame (a kept Done). */
int wire_put_raw(wire *w, const uint8_t *frame, size_t n);
/* Writes what fd takes now. 0, or -1 when the stream is gone. */
int wire_flush(wire *w, int fd);

/* Reads more from fd when everything read was fed: 1 when there are bytes
 * to feed, 0 when none (EAGAIN, or EOF: then w->eof), -1 on error. */
int wire_fill(wire *w, int fd);
/* Feeds read bytes to the frame reader until a frame ends: an enum
 * frame_feed (FRAME_MORE when the bytes ran out first). */
int wire_next(wire *w, uint32_t keep);

#endif
