/* safeeval-agent: the static binary in every sandbox image.
 *   --serve       the worker container's main process: serves runs over
 *                 stdin/stdout (agent.proto), one at a time
 *   --jail-child  the jail's pid 1, run by bwrap (internal)
 *   --version     the build id
 * Nothing else lives here: serve.c is the loop, run.c one run. */
#include <stdio.h>
#include <string.h>

#include "agent/agent.h"

#ifndef SAFEEVAL_AGENT_BUILD_ID
#define SAFEEVAL_AGENT_BUILD_ID "dev"
#endif
#ifndef SAFEEVAL_AGENT_VERSION
#define SAFEEVAL_AGENT_VERSION "0"
#endif

int
main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--jail-child") == 0)
        return agent_jail_child_main(argc, argv);
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("safeeval-agent %s %s\n", SAFEEVAL_AGENT_VERSION, SAFEEVAL_AGENT_BUILD_ID);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--serve") == 0)
        return agent_serve(SAFEEVAL_AGENT_BUILD_ID);
    fprintf(stderr, "usage: safeeval-agent --serve | --version\n");
    return 2;
}
