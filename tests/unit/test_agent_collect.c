/* Files back, both halves of the jail's pipe: the walk (agent_collect_send)
 * over a real directory with nested files, a symlink to /etc/passwd, a
 * symlinked directory and the caps; and the agent's reader of the records,
 * fed hostile ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/collect.c"

typedef struct got {
    char paths[16][AGENT_MAX_PATH + 1];
    char data[16][4096];
    size_t len[16];
    int n;
    bool truncated, ended;
} got;

/* Sends the walk of dir through a temp file and reads it back. */
static int
walk_and_read(const char *dir, char *const *pats, size_t n, uint64_t max_files, uint64_t max_bytes,
              got *g)
{
    memset(g, 0, sizeof(*g));
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    assert_int_equal(agent_collect_send(fileno(tmp), dir, pats, n, max_files, max_bytes), 0);
    rewind(tmp);
    agent_collect_rd rd;
    agent_collect_rd_init(&rd, max_files, max_bytes);
    for (;;) {
        size_t k = fread(rd.buf + rd.len, 1, sizeof(rd.buf) - rd.len, tmp);
        rd.len += k;
        agent_collect_piece pc;
        int r;
        while ((r = agent_collect_next(&rd, &pc)) == 1) {
            if (pc.path) {
                snprintf(g->paths[g->n++], sizeof(g->paths[0]), "%s", pc.path);
            } else if (pc.data) {
                memcpy(g->data[g->n - 1] + g->len[g->n - 1], pc.data, pc.len);
                g->len[g->n - 1] += pc.len;
            }
            agent_collect_consume(&rd, pc.consumed);
        }
        if (r < 0) {
            fclose(tmp);
            return -1;
        }
        if (k == 0)
            break;
    }
    fclose(tmp);
    g->truncated = rd.truncated;
    g->ended = rd.ended;
    return 0;
}

static void
put(const char *dir, const char *rel, const char *content)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static char dir[64];

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/collect-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char p[256];
    snprintf(p, sizeof(p), "%s/out", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/out/sub", dir);
    mkdir(p, 0755);
    put(dir, "out/b.csv", "bb");
    put(dir, "out/a.csv", "a");
    put(dir, "out/sub/c.csv", "ccc");
    put(dir, "top.txt", "t");
    snprintf(p, sizeof(p), "%s/leak.txt", dir);
    assert_int_equal(symlink("/etc/passwd", p), 0);
    snprintf(p, sizeof(p), "%s/etcdir", dir);
    assert_int_equal(symlink("/etc", p), 0);
    snprintf(p, sizeof(p), "%s/linkdir", dir);
    assert_int_equal(symlink("out", p), 0);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void
test_walk_matches_in_order(void **state)
{
    (void)state;
    char *pats[] = {"out/*.csv", "out/sub/c.csv", "*.txt"};
    got g;
    assert_int_equal(walk_and_read(dir, pats, 3, 16, 1 << 20, &g), 0);
    assert_int_equal(g.n, 4);
    assert_string_equal(g.paths[0], "out/a.csv");
    assert_string_equal(g.paths[1], "out/b.csv");
    assert_string_equal(g.paths[2], "out/sub/c.csv");
    assert_string_equal(g.paths[3], "top.txt");
    assert_memory_equal(g.data[1], "bb", 2);
    assert_int_equal(g.len[2], 3);
    assert_false(g.truncated);
    assert_true(g.ended);
}

static void
test_walk_never_follows_symlinks(void **state)
{
    (void)state;
    char *pats[] = {"leak.txt", "etcdir/passwd", "etcdir/*", "linkdir/a.csv", "linkdir/*"};
    got g;
    assert_int_equal(walk_and_read(dir, pats, 5, 16, 1 << 20, &g), 0);
    assert_int_equal(g.n, 0);
    assert_false(g.truncated);
    assert_true(g.ended);
}

static void
test_walk_caps(void **state)
{
    (void)state;
    char *pats[] = {"out/*.csv", "out/sub/*"};
    got g;
    assert_int_equal(walk_and_read(dir, pats, 2, 2, 1 << 20, &g), 0);
    assert_int_equal(g.n, 2);
    assert_true(g.truncated);
    /* 1 + 2 bytes fit, the third file (3 bytes) does not. */
    assert_int_equal(walk_and_read(dir, pats, 2, 16, 4, &g), 0);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.paths[1], "out/b.csv");
    assert_true(g.truncated);
}

/* Feeds raw records; returns what agent_collect_next said last. */
static int
feed(agent_collect_rd *rd, const void *p, size_t n)
{
    memcpy(rd->buf + rd->len, p, n);
    rd->len += n;
    agent_collect_piece pc;
    int r;
    while ((r = agent_collect_next(rd, &pc)) == 1)
        agent_collect_consume(rd, pc.consumed);
    return r;
}

static void
test_reader_refuses_bad_records(void **state)
{
    (void)state;
    agent_collect_rd rd;
    static const struct {
        const char *why;
        const char *rec;
        size_t len;
    } bad[] = {
        {"unknown", "X", 1},
        {"data before a file", "D\1\0\0\0x", 6},
        {"dotdot", "F\4\0../a\0\0\0\0\0\0\0\0", 15},
        {"absolute", "F\2\0/a\0\0\0\0\0\0\0\0", 13},
        {"empty path", "F\0\0", 3},
        {"nul in path", "F\3\0a\0b\0\0\0\0\0\0\0\0", 14},
        {"over the bytes cap", "F\1\0a\0\0\0\1\0\0\0\0", 12},
        {"more data than announced", "F\1\0a\1\0\0\0\0\0\0\0D\2\0\0\0xy", 19},
        {"two files out of order", "F\1\0b\0\0\0\0\0\0\0\0F\1\0a\0\0\0\0\0\0\0\0", 24},
        {"a file before the last one's bytes", "F\1\0a\1\0\0\0\0\0\0\0F\1\0b\0\0\0\0\0\0\0\0", 24},
        {"the end inside a file", "F\1\0a\1\0\0\0\0\0\0\0E", 13},
        {"a record after the end", "EE", 2},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        agent_collect_rd_init(&rd, 4, 1 << 16);
        if (feed(&rd, bad[i].rec, bad[i].len) != -1)
            fail_msg("accepted: %s", bad[i].why);
        assert_true(rd.bad);
    }
    /* The count cap. */
    agent_collect_rd_init(&rd, 1, 1 << 16);
    assert_int_equal(feed(&rd, "F\1\0a\0\0\0\0\0\0\0\0F\1\0b\0\0\0\0\0\0\0\0", 24), -1);
    /* A record cut in two halves is waited for, not refused. */
    agent_collect_rd_init(&rd, 4, 1 << 16);
    assert_int_equal(feed(&rd, "F\1\0a\2\0\0", 7), 0);
    assert_int_equal(feed(&rd, "\0\0\0\0\0D\2\0", 8), 0);
    assert_int_equal(feed(&rd, "\0\0xyTE", 6), 0);
    assert_true(rd.ended);
    assert_true(rd.truncated);
    assert_int_equal(rd.left, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_walk_matches_in_order),
        cmocka_unit_test(test_walk_never_follows_symlinks),
        cmocka_unit_test(test_walk_caps),
        cmocka_unit_test(test_reader_refuses_bad_records),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
