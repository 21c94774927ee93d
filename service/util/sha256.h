/* SHA-256 (FIPS 180-4), small and dependency-free: image tags hash their
 * inputs with it, and nothing else in our dependencies exports one. */
#ifndef SAFEEVAL_UTIL_SHA256_H
#define SAFEEVAL_UTIL_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_LEN 32

typedef struct sha256_ctx {
    uint32_t h[8];
    uint64_t total; /* bytes fed so far */
    uint8_t block[64];
    size_t fill; /* bytes waiting in block */
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t n);
void sha256_final(sha256_ctx *c, uint8_t out[SHA256_DIGEST_LEN]);
/* One-shot digest. */
void sha256_digest(uint8_t out[SHA256_DIGEST_LEN], const void *data, size_t n);
/* Lowercase hex of a digest into hex (2 * SHA256_DIGEST_LEN + 1 bytes). */
void sha256_hex(char hex[2 * SHA256_DIGEST_LEN + 1], const uint8_t digest[SHA256_DIGEST_LEN]);

#endif
