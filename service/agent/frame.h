/* Length-prefixed frames for the daemon <-> agent protocol: a 4-byte
 * big-endian length, then that many bytes. Pure; shared by both sides and
 * independent of the transport (the worker container's attach stream). */
#ifndef SAFEEVAL_AGENT_FRAME_H
#define SAFEEVAL_AGENT_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_HDR 4
/* Requests carry scripts, stdin and files: at most this much. */
#define FRAME_MAX (64u * 1024 * 1024)
/* Bytes of a skipped frame's start that a frame_reader keeps (its id). */
#define FRAME_HEAD 16

/* Writes the 4-byte header for a payload of len bytes into hdr. */
void frame_put_header(uint8_t hdr[FRAME_HDR], uint32_t len);

/* The payload length a 4-byte header announces (not checked against a cap). */
uint32_t frame_get_len(const uint8_t hdr[FRAME_HDR]);

/* Looks for one whole frame at the start of buf.
 * Returns 1 and sets *payload / *payload_len / *consumed when it is there,
 * 0 when more bytes are needed, -1 when the length is over max. */
int frame_parse(const uint8_t *buf, size_t len, uint32_t max, const uint8_t **payload,
                uint32_t *payload_len, size_t *consumed);

/* An incremental reader of a frame stream that arrives in pieces of any
 * size (a non-blocking fd). A frame's payload is allocated at its exact
 * length once the header is in, never more; a frame longer than `keep`
 * (but not than `max`) is read past without being stored, keeping only its
 * first FRAME_HEAD bytes. */
typedef struct frame_reader {
    uint8_t hdr[FRAME_HDR];
    uint32_t hdr_len;
    uint32_t len;     /* the current frame's payload length */
    uint32_t got;     /* of it, received */
    bool skipping;    /* over `keep`: dropped, only head kept */
    bool complete;    /* the last feed ended a frame */
    uint8_t *payload; /* a kept frame's bytes (len, at least 1 allocated) */
    uint8_t head[FRAME_HEAD];
    uint32_t head_len;
} frame_reader;

enum frame_feed {
    FRAME_MORE = 0,     /* all of data was used, no frame ended */
    FRAME_READY = 1,    /* a frame ended: payload / len */
    FRAME_SKIPPED = 2,  /* a frame over keep ended: len, head / head_len */
    FRAME_TOO_BIG = -1, /* a header over max: the stream is corrupt */
    FRAME_NOMEM = -2,
};

void frame_reader_init(frame_reader *r);
/* Takes bytes from data[0..len) up to the end of one frame; *used says how
 * many. Returns an enum frame_feed. After READY or SKIPPED, the frame stays
 * in r until the next call (which frees it first). After TOO_BIG the
 * reader stays broken. keep <= max. */
int frame_reader_feed(frame_reader *r, const uint8_t *data, size_t len, uint32_t max, uint32_t keep,
                      size_t *used);
/* True while part of a frame has been read. */
bool frame_reader_partial(const frame_reader *r);
/* True until the next frame's header is complete: the `keep` given to the
 * feed that completes it is the one that decides. */
bool frame_reader_in_header(const frame_reader *r);
void frame_reader_free(frame_reader *r);

#endif
