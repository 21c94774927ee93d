#include "util/version.h"

#ifndef SAFEEVAL_VERSION
#error "SAFEEVAL_VERSION must come from CMake (service/CMakeLists.txt)"
#endif
#ifndef SAFEEVAL_BUILD_ID
#define SAFEEVAL_BUILD_ID "unknown"
#endif

const char *
safeeval_version(void)
{
    return SAFEEVAL_VERSION;
}

const char *
safeeval_build_id(void)
{
    return SAFEEVAL_BUILD_ID;
}
