/* The daemon's version and build, from CMake's project() version and the
 * source tree's commit at configure time. */
#ifndef SAFEEVAL_UTIL_VERSION_H
#define SAFEEVAL_UTIL_VERSION_H

/* "0.1.0": the project version. */
const char *safeeval_version(void);
/* The commit the build came from ("56750da"), "unknown" outside git. */
const char *safeeval_build_id(void);

#endif
