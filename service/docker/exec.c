/* Exec: create, start hijacked with stdin, demux, inspect. */
#include <stdlib.h>

#include "docker/internal.h"

int
docker_exec_run(docker_client *c, const char *container_id, const docker_exec_opts *opts,
                docker_exec_result *out, const se_cancel *cancel, se_err *err)
{
    (void)c;
    (void)container_id;
    (void)opts;
    (void)out;
    (void)cancel;
    return se_err_set(err, SE_INTERNAL, "docker_exec_run: not implemented yet");
}

void
docker_exec_result_free(docker_exec_result *r)
{
    if (!r)
        return;
    free(r->out);
    free(r->errbuf);
    r->out = NULL;
    r->errbuf = NULL;
}
