/* Compiled alone with -std=c99 -pedantic -Werror: the public header must
 * need nothing else and use nothing beyond C99. */
#include <safeeval/safeeval.h>

int
main(void)
{
    safeeval_client_opts co = SAFEEVAL_CLIENT_OPTS_INIT;
    safeeval_create_opts cr = SAFEEVAL_CREATE_OPTS_INIT;
    safeeval_eval_opts ev = SAFEEVAL_EVAL_OPTS_INIT;
    safeeval_call_opts ca = SAFEEVAL_CALL_OPTS_INIT;
    (void)co;
    (void)cr;
    (void)ev;
    (void)ca;
    return SAFEEVAL_VERSION_MAJOR + SAFEEVAL_STATUS_OK;
}
