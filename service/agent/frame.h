/* Length-prefixed frames for the daemon <-> agent protocol: a 4-byte
 * big-endian length, then that many bytes. Pure; shared by both sides and
 * independent of the transport (exec stdin/stdout now, a persistent stream
 * later). */
#ifndef SAFEEVAL_AGENT_FRAME_H
#define SAFEEVAL_AGENT_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_HDR 4
/* Requests carry scripts, stdin and files: at most this much. */
#define FRAME_MAX (64u * 1024 * 1024)

/* Writes the 4-byte header for a payload of len bytes into hdr. */
void frame_put_header(uint8_t hdr[FRAME_HDR], uint32_t len);

/* The payload length a 4-byte header announces (not checked against a cap). */
uint32_t frame_get_len(const uint8_t hdr[FRAME_HDR]);

/* Looks for one whole frame at the start of buf.
 * Returns 1 and sets *payload / *payload_len / *consumed when it is there,
 * 0 when more bytes are needed, -1 when the length is over max. */
int frame_parse(const uint8_t *buf, size_t len, uint32_t max, const uint8_t **payload,
                uint32_t *payload_len, size_t *consumed);

#endif
