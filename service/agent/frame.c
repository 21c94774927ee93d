#include "agent/frame.h"

void
frame_put_header(uint8_t hdr[FRAME_HDR], uint32_t len)
{
    hdr[0] = (uint8_t)(len >> 24);
    hdr[1] = (uint8_t)(len >> 16);
    hdr[2] = (uint8_t)(len >> 8);
    hdr[3] = (uint8_t)len;
}

uint32_t
frame_get_len(const uint8_t hdr[FRAME_HDR])
{
    return ((uint32_t)hdr[0] << 24) | ((uint32_t)hdr[1] << 16) | ((uint32_t)hdr[2] << 8) |
           (uint32_t)hdr[3];
}

int
frame_parse(const uint8_t *buf, size_t len, uint32_t max, const uint8_t **payload,
            uint32_t *payload_len, size_t *consumed)
{
    if (len < FRAME_HDR)
        return 0;
    uint32_t n = frame_get_len(buf);
    if (n > max)
        return -1;
    if (len - FRAME_HDR < n)
        return 0;
    *payload = buf + FRAME_HDR;
    *payload_len = n;
    *consumed = FRAME_HDR + (size_t)n;
    return 1;
}
