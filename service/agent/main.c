/* safeeval-agent: the static binary in every sandbox image.
 *   --serve       the worker container's main process: serves runs over
 *                 stdin/stdout (agent.proto), one at a time
 *   --serve --zygote MODULE...
 *                 the same, with runs forked from a zygote (zygote.c)
 *   --jail-child  the jail's pid 1, run by bwrap (internal)
 *   --zygote-init the zygote jail's pid 1, run by bwrap (internal)
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
    if (argc >= 2 && strcmp(argv[1], "--zygote-init") == 0)
        return agent_zygote_init_main(argc, argv);
    if (argc >= 3 && strcmp(argv[1], "--serve") == 0 && strcmp(argv[2], "--zygote") == 0) {
        if (agent_zygote_configure(argv + 3, (size_t)(argc - 3)) < 0) {
            fprintf(stderr, "safeeval-agent: --zygote: invalid module names\n");
            return 2;
        }
        return agent_serve(SAFEEVAL_AGENT_BUILD_ID);
    }
    if (argc == 2 && strcmp(argv[1], "--serve") == 0)
        return agent_serve(SAFEEVAL_AGENT_BUILD_ID);
    fprintf(stderr, "usage: safeeval-agent --serve [--zygote MODULE...] | --version\n");
    return 2;
}
