/* Files back: after the command ended, the jail's pid 1 walks the work dir
 * and writes the files `collect` names to a pipe only it holds; the agent
 * reads that pipe and forwards the files as FileChunk events.
 *
 * The walk is the jail's own view of /work (a tmpfs in the jail's mount
 * namespace that the agent cannot see): every other process of the jail is
 * killed and reaped first, so nothing changes the tree while it is read;
 * still, nothing is followed: every directory is opened relative to its
 * parent with O_NOFOLLOW, every entry is looked at with lstat semantics,
 * and only regular files are read, through an fd opened O_NOFOLLOW and
 * checked with fstat.
 *
 * The pipe's records (little-endian), hostile to the agent all the same:
 *   'F' u16 len, path, u64 size   a file starts: size bytes of 'D' follow
 *   'D' u32 len, bytes            len <= AGENT_COLLECT_CHUNK
 *   'T'                           a matching file was left out (a cap)
 *   'E'                           the walk is over
 * Files come in strictly increasing path order. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent.h"

/* ---- the jail's side ---- */

typedef struct walk {
    char *const *patterns;
    size_t n_patterns;
    char **found; /* matching regular files, relative paths */
    size_t n_found;
    size_t visited;
    bool truncated; /* the walk itself was cut (entries, depth, matches) */
} walk;

static bool
matches(const walk *w, const char *rel)
{
    for (size_t i = 0; i < w->n_patterns; i++)
        if (fnmatch(w->patterns[i], rel, FNM_PATHNAME) == 0)
            return true;
    return false;
}

static void
walk_dir(walk *w, int dfd, char *rel, size_t rel_len, int depth)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (++w->visited > AGENT_COLLECT_SCAN_MAX) {
            w->truncated = true;
            break;
        }
        size_t nl = strlen(e->d_name);
        if (rel_len + (rel_len ? 1 : 0) + nl > AGENT_MAX_PATH)
            continue; /* a path no request could name */
        size_t at = rel_len;
        if (rel_len)
            rel[at++] = '/';
        memcpy(rel + at, e->d_name, nl + 1);
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
            if (S_ISDIR(st.st_mode) && depth + 1 < AGENT_MAX_DEPTH) {
                int sub =
                    openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub >= 0)
                    walk_dir(w, sub, rel, at + nl, depth + 1);
            } else if (S_ISREG(st.st_mode) && matches(w, rel)) {
                char **g = w->n_found < AGENT_COLLECT_SCAN_MAX
                               ? realloc(w->found, (w->n_found + 1) * sizeof(*g))
                               : NULL;
                char *dup = g ? strdup(rel) : NULL;
                if (g)
                    w->found = g;
                if (dup)
                    w->found[w->n_found++] = dup;
                else
                    w->truncated = true;
            }
        }
        rel[rel_len] = '\0';
    }
    closedir(d);
}

static int
cmp_path(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int
agent_write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t k = write(fd, b, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

int
agent_read_all(int fd, void *p, size_t n)
{
    uint8_t *b = p;
    while (n) {
        ssize_t k = read(fd, b, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

static void
put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Opens rel under root without following anything: each directory relative
 * to its parent with O_NOFOLLOW, the file with O_NOFOLLOW. */
static int
open_beneath(int root, const char *rel)
{
    char buf[AGENT_MAX_PATH + 1];
    snprintf(buf, sizeof(buf), "%s", rel);
    int dfd = dup(root);
    char *p = buf;
    for (char *slash; dfd >= 0 && (slash = strchr(p, '/')); p = slash + 1) {
        *slash = '\0';
        int sub = openat(dfd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        close(dfd);
        dfd = sub;
    }
    if (dfd < 0)
        return -1;
    int fd = openat(dfd, p, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    close(dfd);
    return fd;
}

/* Sends one file: 'F' then its bytes in 'D' records. The size announced is
 * what fstat says; the file cannot change (nothing else runs), but a short
 * read is padded so the records stay what they announced. */
static int
send_file(int out, int fd, const char *rel, uint64_t size)
{
    size_t pl = strlen(rel);
    uint8_t hdr[1 + 2 + AGENT_MAX_PATH + 8];
    hdr[0] = 'F';
    put_le(hdr + 1, pl, 2);
    memcpy(hdr + 3, rel, pl);
    put_le(hdr + 3 + pl, size, 8);
    if (agent_write_all(out, hdr, 3 + pl + 8) < 0)
        return -1;
    static uint8_t buf[5 + AGENT_COLLECT_CHUNK];
    uint64_t left = size;
    while (left) {
        size_t want = left < AGENT_COLLECT_CHUNK ? (size_t)left : AGENT_COLLECT_CHUNK;
        ssize_t k = fd >= 0 ? read(fd, buf + 5, want) : 0;
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            memset(buf + 5, 0, want);
            k = (ssize_t)want;
            close(fd);
            fd = -1;
        }
        buf[0] = 'D';
        put_le(buf + 1, (uint64_t)k, 4);
        if (agent_write_all(out, buf, 5 + (size_t)k) < 0)
            return -1;
        left -= (uint64_t)k;
    }
    return 0;
}

int
agent_collect_send(int out, const char *workdir, char *const *patterns, size_t n_patterns,
                   uint64_t max_files, uint64_t max_bytes)
{
    int root = open(workdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (root < 0)
        return -1;
    walk w = {.patterns = patterns, .n_patterns = n_patterns};
    char rel[AGENT_MAX_PATH + 1] = "";
    int dup_root = dup(root);
    if (dup_root >= 0)
        walk_dir(&w, dup_root, rel, 0, 0);
    if (w.n_found)
        qsort(w.found, w.n_found, sizeof(*w.found), cmp_path);
    bool truncated = w.truncated;
    uint64_t files = 0, bytes = 0;
    int rc = 0;
    for (size_t i = 0; i < w.n_found && rc == 0; i++) {
        int fd = open_beneath(root, w.found[i]);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
            if (fd >= 0)
                close(fd);
            continue;
        }
        uint64_t size = (uint64_t)st.st_size;
        if (files + 1 > max_files || size > max_bytes - bytes) {
            /* Path order, up to the first file over a cap. */
            truncated = true;
            close(fd);
            break;
        }
        rc = send_file(out, fd, w.found[i], size);
        close(fd);
        files++;
        bytes += size;
    }
    for (size_t i = 0; i < w.n_found; i++)
        free(w.found[i]);
    free(w.found);
    close(root);
    if (rc == 0 && truncated)
        rc = agent_write_all(out, "T", 1);
    if (rc == 0)
        rc = agent_write_all(out, "E", 1);
    return rc;
}

/* ---- the agent's side ---- */

void
agent_collect_rd_init(agent_collect_rd *rd, uint64_t max_files, uint64_t max_bytes)
{
    memset(rd, 0, sizeof(*rd));
    rd->max_files = max_files;
    rd->max_bytes = max_bytes;
}

static uint64_t
get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int
bad(agent_collect_rd *rd, const char *why)
{
    rd->bad = true;
    snprintf(rd->why, sizeof(rd->why), "%s", why);
    return -1;
}

int
agent_collect_next(agent_collect_rd *rd, agent_collect_piece *out)
{
    memset(out, 0, sizeof(*out));
    if (rd->bad)
        return -1;
    if (rd->len == 0)
        return 0;
    if (rd->ended)
        return bad(rd, "a record after the end");
    const uint8_t *p = rd->buf;
    switch (p[0]) {
    case 'F': {
        if (rd->len < 3)
            return 0;
        size_t pl = (size_t)get_le(p + 1, 2);
        if (pl == 0 || pl > AGENT_MAX_PATH)
            return bad(rd, "a file path of a bad length");
        if (rd->len < 3 + pl + 8)
            return 0;
        if (rd->left)
            return bad(rd, "a file before the last one's bytes");
        memcpy(rd->path, p + 3, pl);
        rd->path[pl] = '\0';
        uint64_t size = get_le(p + 3 + pl, 8);
        if (strlen(rd->path) != pl || agent_path_validate(rd->path, NULL) < 0)
            return bad(rd, "a bad file path");
        if (rd->files && strcmp(rd->path, rd->last) <= 0)
            return bad(rd, "files out of path order");
        if (rd->files + 1 > rd->max_files || size > rd->max_bytes - rd->bytes)
            return bad(rd, "files over the caps");
        memcpy(rd->last, rd->path, pl + 1);
        rd->files++;
        rd->bytes += size;
        rd->left = size;
        out->path = rd->path;
        out->size = size;
        out->consumed = 3 + pl + 8;
        return 1;
    }
    case 'D': {
        if (rd->len < 5)
            return 0;
        size_t n = (size_t)get_le(p + 1, 4);
        if (n == 0 || n > AGENT_COLLECT_CHUNK || n > rd->left)
            return bad(rd, "file bytes of a bad length");
        if (rd->len < 5 + n)
            return 0;
        rd->left -= n;
        out->data = p + 5;
        out->len = n;
        out->consumed = 5 + n;
        return 1;
    }
    case 'T':
        if (rd->left)
            return bad(rd, "a mark inside a file");
        rd->truncated = true;
        out->consumed = 1;
        return 1;
    case 'E':
        if (rd->left)
            return bad(rd, "the end inside a file");
        rd->ended = true;
        out->consumed = 1;
        return 1;
    default:
        return bad(rd, "an unknown record");
    }
}

void
agent_collect_consume(agent_collect_rd *rd, size_t n)
{
    memmove(rd->buf, rd->buf + n, rd->len - n);
    rd->len -= n;
}
