/* The agent's cgroup counters (service/agent/cgroup.c), on fake v1 and v2
 * trees in a temp dir: detection, every counter, and failing closed when
 * one is missing or does not parse. cgroup.c is part of the agent binary,
 * not of the daemon's library, so it is compiled in here. */
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

#include "agent/cgroup.c"

static char root[64];

static void
put(const char *rel, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    char dir[256];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    *slash = 0;
    mkdir(dir, 0755);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int
setup_dir(void **state)
{
    (void)state;
    snprintf(root, sizeof(root), "/tmp/test_agent_cgroup.XXXXXX");
    return mkdtemp(root) ? 0 : -1;
}

static int
teardown_dir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

static void
test_stat_value(void **state)
{
    (void)state;
    const char *t = "cache 5\nrss 100\nrss_huge 7\nshmem 3\ntotal_rss 200\ntotal_shmem 9\n";
    uint64_t v = 0;
    assert_int_equal(agent_cgroup_stat_value(&v, t, strlen(t), "rss"), 0);
    assert_int_equal(v, 100); /* not rss_huge, not total_rss */
    assert_int_equal(agent_cgroup_stat_value(&v, t, strlen(t), "total_shmem"), 0);
    assert_int_equal(v, 9);
    assert_int_equal(agent_cgroup_stat_value(&v, t, strlen(t), "rs"), -1);
    assert_int_equal(agent_cgroup_stat_value(&v, t, strlen(t), "swap"), -1);
    /* the last line needs no newline; the length bounds the scan */
    const char *u = "a 1\nb 22";
    assert_int_equal(agent_cgroup_stat_value(&v, u, strlen(u), "b"), 0);
    assert_int_equal(v, 22);
    assert_int_equal(agent_cgroup_stat_value(&v, u, 3, "b"), -1);
    const char *bad = "a x\nb \nc 99999999999999999999999\n";
    assert_int_equal(agent_cgroup_stat_value(&v, bad, strlen(bad), "a"), -1);
    assert_int_equal(agent_cgroup_stat_value(&v, bad, strlen(bad), "b"), -1);
    assert_int_equal(agent_cgroup_stat_value(&v, bad, strlen(bad), "c"), -1);
    const char *max = "m 18446744073709551615\n";
    assert_int_equal(agent_cgroup_stat_value(&v, max, strlen(max), "m"), 0);
    assert_true(v == UINT64_MAX);
}

static void
test_v1(void **state)
{
    (void)state;
    put("memory/memory.stat", "cache 4096\nrss 1000\nshmem 24\nmapped_file 0\n"
                              "total_cache 4096\ntotal_rss 2000\ntotal_shmem 48\n");
    put("memory/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n");
    put("cpu,cpuacct/cpuacct.usage", "123456789\n");
    put("pids/pids.current", "2\n");
    put("memory/memory.limit_in_bytes", "10000\n");
    agent_cgroup cg;
    agent_cgroup_open(&cg, root);
    assert_int_equal(cg.version, AGENT_CG_V1);
    /* the limit minus anon+shmem */
    assert_int_equal(agent_cgroup_room(&cg), 10000 - 2048);
    put("memory/memory.limit_in_bytes", "1000\n");
    assert_int_equal(agent_cgroup_room(&cg), 0);
    put("memory/memory.limit_in_bytes", "9223372036854771712\n"); /* v1: no limit */
    assert_true(agent_cgroup_room(&cg) == 9223372036854771712ull - 2048);
    assert_string_equal(agent_cgroup_name(&cg), "v1");
    agent_cg_sample s;
    assert_int_equal(agent_cgroup_sample(&cg, &s), 0);
    assert_int_equal(s.memory, 2048); /* the hierarchical totals */
    assert_int_equal(s.oom_kills, 3);
    assert_int_equal(s.cpu_ns, 123456789);
    assert_int_equal(s.pids, 2);
    /* read again on every tick, from the same fds */
    put("pids/pids.current", "7\n");
    put("memory/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 4\n");
    assert_int_equal(agent_cgroup_sample(&cg, &s), 0);
    assert_int_equal(s.pids, 7);
    assert_int_equal(s.oom_kills, 4);
    agent_cgroup_close(&cg);
    assert_int_equal(cg.version, AGENT_CG_NONE);

    /* without totals: rss + shmem; cpuacct on its own mount */
    put("memory/memory.stat", "rss 1000\nshmem 24\n");
    put("cpuacct/cpuacct.usage", "5\n");
    agent_cgroup_open(&cg, root);
    assert_int_equal(cg.version, AGENT_CG_V1);
    assert_int_equal(agent_cgroup_sample(&cg, &s), 0);
    assert_int_equal(s.memory, 1024);
    assert_int_equal(s.cpu_ns, 5);
    agent_cgroup_close(&cg);

    /* no oom_kill counter (Linux < 4.13): unreadable, runs refused */
    put("memory/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n");
    agent_cgroup_open(&cg, root);
    assert_int_equal(cg.version, AGENT_CG_NONE);
    assert_string_equal(agent_cgroup_name(&cg), "");
    assert_non_null(strstr(cg.why, "unreadable"));
    assert_int_equal(agent_cgroup_sample(&cg, &s), -1);
    agent_cgroup_close(&cg);

    /* a missing pids controller */
    put("memory/memory.oom_control", "oom_kill 0\n");
    char p[256];
    snprintf(p, sizeof(p), "%s/pids/pids.current", root);
    unlink(p);
    agent_cgroup_open(&cg, root);
    assert_int_equal(cg.version, AGENT_CG_NONE);
    assert_non_null(strstr(cg.why, "pids.current"));
    agent_cgroup_close(&cg);

    /* a counter that is not a number */
    put("pids/pids.current", "max\n");
    agent_cgroup_open(&cg, root);
    assert_int_equal(cg.version, AGENT_CG_NONE);
    agent_cgroup_close(&cg);
}

static void
test_v2(void **state)
{
    (void)state;
    put("cgroup.controllers", "cpu memory pids\n");
    put("memory.stat", "anon 4096\nfile 8192\nkernel 100\nshmem 4096\nanon_thp 0\n");
    put("memory.events", "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n");
    put("cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n");
    put("pids.current", "3\n");
    put("memory.max", "max\n");
    agent_cgroup cg;
    agent_cgroup_open(&cg, root);
    assert_int_equal(cg.version, AGENT_CG_V2);
    assert_true(agent_cgroup_room(&cg) == UINT64_MAX);
    put("memory.max", "1000000\n");
    assert_int_equal(agent_cgroup_room(&cg), 1000000 - 8192);
    put("memory.max", "junk\n");
    assert_int_equal(agent_cgroup_room(&cg), 0);
    assert_string_equal(agent_cgroup_name(&cg), "v2");
    agent_cg_sample s;
    assert_int_equal(agent_cgroup_sample(&cg, &s), 0);
    assert_int_equal(s.memory, 8192);
    assert_int_equal(s.oom_kills, 1);
    assert_int_equal(s.cpu_ns, 1500000);
    assert_int_equal(s.pids, 3);
    agent_cgroup_close(&cg);

    put("memory.events", "low 0\nhigh 0\nmax 0\noom 0\n");
    agent_cgroup_open(&cg, root);
    assert_int_equal(cg.version, AGENT_CG_NONE);
    agent_cgroup_close(&cg);
}

static void
test_nothing_there(void **state)
{
    (void)state;
    agent_cgroup cg;
    agent_cgroup_open(&cg, "/nonexistent/cgroup/root");
    assert_int_equal(cg.version, AGENT_CG_NONE);
    assert_true(cg.why[0] != 0);
    agent_cgroup_close(&cg);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stat_value),
        cmocka_unit_test_setup_teardown(test_v1, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_v2, setup_dir, teardown_dir),
        cmocka_unit_test(test_nothing_there),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
