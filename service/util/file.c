#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "util/cleanup.h"

int
file_read_all(const char *path, size_t cap, int flags, uint8_t **out, size_t *out_len,
              struct stat *st_out, se_err *err)
{
    int oflags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | ((flags & FILE_NOFOLLOW) ? O_NOFOLLOW : 0);
    cleanup_close int fd = open(path, oflags);
    if (fd < 0)
        return se_err_errno(err, errno == ENOENT ? SE_NOT_FOUND : SE_INTERNAL, "open %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return se_err_errno(err, SE_INTERNAL, "stat %s", path);
    if (!S_ISREG(st.st_mode))
        return se_err_set(err, SE_INVALID, "%s is not a regular file", path);
    if (st.st_size < 0 || (uint64_t)st.st_size > cap)
        return se_err_set(err, SE_EXHAUSTED, "%s is larger than %zu bytes", path, cap);
    size_t want = (size_t)st.st_size;
    cleanup_free uint8_t *data = malloc(want + 1);
    if (!data)
        return se_err_set(err, SE_INTERNAL, "out of memory reading %s", path);
    size_t got = 0;
    while (got < want) {
        ssize_t r = read(fd, data + got, want - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return se_err_errno(err, SE_INTERNAL, "read %s", path);
        if (r == 0)
            return se_err_set(err, SE_INTERNAL, "%s shrank while being read", path);
        got += (size_t)r;
    }
    data[got] = '\0';
    *out = steal_pointer(&data);
    *out_len = got;
    if (st_out)
        *st_out = st;
    return 0;
}
