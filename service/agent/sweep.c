/* The end of a run. The worker container holds the engine's init (pid 1),
 * the agent and, during a run, the jail: bwrap's monitor outside it and
 * everything inside it. So what is left of a run after it ended is every
 * process but those two, whatever it did to its parent-death signal or its
 * process group. They all run as the agent's uid: SIGKILL reaches them,
 * including the jail's pid 1 from outside its namespace (which takes the
 * whole namespace down with it). This is the only /proc walk the agent
 * does, and only between runs. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/agent.h"

void
agent_reap(pid_t bwrap, int *bw_status, bool *bw_reaped)
{
    for (;;) {
        int ws;
        /* __WALL: an orphan made with clone() and an odd exit signal is a
         * "clone child" that plain waitpid would leave a zombie. */
        pid_t w = waitpid(-1, &ws, WNOHANG | __WALL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        if (w == bwrap && bwrap > 0) {
            *bw_status = ws;
            *bw_reaped = true;
        }
    }
}

/* The zygote's monitor and the zygote live across runs (zygote.c). */
static pid_t spared[2] = {-1, -1};

void
agent_sweep_spare(pid_t a, pid_t b)
{
    spared[0] = a;
    spared[1] = b;
}

int
agent_sweep(void)
{
    DIR *d = opendir("/proc");
    if (!d)
        return -1;
    pid_t self = getpid();
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 1 || pid == self || pid == spared[0] || pid == spared[1])
            continue;
        kill((pid_t)pid, SIGKILL);
        n++;
    }
    closedir(d);
    return n;
}
