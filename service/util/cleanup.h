/* Scope-bound cleanup, crun style: declare with a cleanup_ type and the
 * resource is released on every return; steal_pointer() hands it over. */
#ifndef SAFEEVAL_UTIL_CLEANUP_H
#define SAFEEVAL_UTIL_CLEANUP_H

#include <stdlib.h>
#include <unistd.h>

static inline void
cleanup_freep(void *p)
{
    free(*(void **)p);
}

static inline void
cleanup_closep(int *fd)
{
    if (*fd >= 0)
        close(*fd);
}

#define cleanup_free __attribute__((cleanup(cleanup_freep)))
#define cleanup_close __attribute__((cleanup(cleanup_closep)))

static inline void *
steal_pointer_impl(void *pp)
{
    void **p = (void **)pp;
    void *v = *p;
    *p = NULL;
    return v;
}
#define steal_pointer(pp) ((__typeof__(*(pp)))steal_pointer_impl(pp))

static inline int
steal_fd(int *fd)
{
    int v = *fd;
    *fd = -1;
    return v;
}

#endif
