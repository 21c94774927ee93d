/* STUB: replaced by the module owner. */
#include "sandbox/sandbox.h"

int
sandbox_manager_new(sandbox_manager **out, const sandbox_config *cfg, docker_client *dc,
                    image_cache *ic, se_err *err)
{
    (void)out;
    (void)cfg;
    (void)dc;
    (void)ic;
    (void)err;
    return se_err_set(err, SE_INTERNAL, "sandbox_manager_new: not implemented");
}

int
sandbox_manager_recover(sandbox_manager *m, se_err *err)
{
    (void)m;
    (void)err;
    return se_err_set(err, SE_INTERNAL, "sandbox_manager_recover: not implemented");
}

void
sandbox_manager_free(sandbox_manager *m)
{
    (void)m;
}

int
sandbox_create(sandbox_manager *m, const Safeeval__V1__CreateSandboxRequest *req,
               Safeeval__V1__Sandbox **out, docker_progress_fn progress, void *ud,
               const se_cancel *cancel, se_err *err)
{
    (void)m;
    (void)req;
    (void)out;
    (void)progress;
    (void)ud;
    (void)cancel;
    (void)err;
    return se_err_set(err, SE_INTERNAL, "sandbox_create: not implemented");
}

int
sandbox_eval(sandbox_manager *m, const Safeeval__V1__EvalRequest *req,
             Safeeval__V1__ExecResult **out, const se_cancel *cancel, se_err *err)
{
    (void)m;
    (void)req;
    (void)out;
    (void)cancel;
    (void)err;
    return se_err_set(err, SE_INTERNAL, "sandbox_eval: not implemented");
}

int
sandbox_execute_file(sandbox_manager *m, const Safeeval__V1__ExecuteFileRequest *req,
                     Safeeval__V1__ExecResult **out, const se_cancel *cancel, se_err *err)
{
    (void)m;
    (void)req;
    (void)out;
    (void)cancel;
    (void)err;
    return se_err_set(err, SE_INTERNAL, "sandbox_execute_file: not implemented");
}

int
sandbox_destroy(sandbox_manager *m, const char *id, const se_cancel *cancel, se_err *err)
{
    (void)m;
    (void)id;
    (void)cancel;
    (void)err;
    return se_err_set(err, SE_INTERNAL, "sandbox_destroy: not implemented");
}

int
sandbox_get(sandbox_manager *m, const char *id, Safeeval__V1__Sandbox **out, se_err *err)
{
    (void)m;
    (void)id;
    (void)out;
    (void)err;
    return se_err_set(err, SE_INTERNAL, "sandbox_get: not implemented");
}

int
sandbox_list(sandbox_manager *m, Safeeval__V1__Sandbox ***out, size_t *n_out, se_err *err)
{
    (void)m;
    (void)out;
    (void)n_out;
    (void)err;
    return se_err_set(err, SE_INTERNAL, "sandbox_list: not implemented");
}
