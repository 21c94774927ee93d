/* Reading a whole file from disk with a cap: the one way the daemon reads
 * its inputs (config, TLS keys, the recipe, wheels, the agent binary). */
#ifndef SAFEEVAL_UTIL_FILE_H
#define SAFEEVAL_UTIL_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "util/err.h"

enum { FILE_NOFOLLOW = 1 }; /* refuse a symlink as the last component */

/* Reads a whole regular file of at most cap bytes. *out is malloc'd and
 * NUL-terminated after *out_len; st_out (may be NULL) gets its fstat. Opened
 * non-blocking, so a FIFO named by mistake is refused instead of waited on.
 * SE_NOT_FOUND if absent, SE_INVALID if not a regular file, SE_EXHAUSTED if
 * over cap, SE_INTERNAL for I/O failures. */
int file_read_all(const char *path, size_t cap, int flags, uint8_t **out, size_t *out_len,
                  struct stat *st_out, se_err *err);

#endif
