/* Shared by the fuzz targets: the libFuzzer entry point and a tiny check that
 * stays on in release builds (a failed invariant must crash the fuzzer). */
#ifndef SAFEEVAL_FUZZ_H
#define SAFEEVAL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A malloc'd NUL-terminated copy of data[0..len) (exactly len bytes, so ASan
 * catches a read past the terminator). NULL only when out of memory. */
static inline char *
fuzz_strndup(const uint8_t *data, size_t len)
{
    char *s = malloc(len + 1);
    if (!s)
        return NULL;
    for (size_t i = 0; i < len; i++)
        s[i] = (char)data[i];
    s[len] = '\0';
    return s;
}

/* A malloc'd exact-size copy, so reads past len are caught. */
static inline uint8_t *
fuzz_dup(const uint8_t *data, size_t len)
{
    uint8_t *p = malloc(len ? len : 1);
    if (!p)
        return NULL;
    for (size_t i = 0; i < len; i++)
        p[i] = data[i];
    return p;
}

#endif
