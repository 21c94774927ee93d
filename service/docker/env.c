/* Where the engine is when the operator says nothing: the docker CLI's own
 * rules, so a shell set up for `docker` (DOCKER_HOST=tcp://..., with
 * DOCKER_TLS_VERIFY and DOCKER_CERT_PATH) is set up for safeevald too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker/docker.h"

static int
dup_into(char **dst, const char *s, se_err *err)
{
    *dst = strdup(s);
    if (!*dst)
        return se_err_set(err, SE_INTERNAL, "out of memory");
    return 0;
}

static int
cert_file(char **dst, const char *explicit_path, const char *dir, const char *name, se_err *err)
{
    if (explicit_path)
        return dup_into(dst, explicit_path, err);
    if (!dir)
        return 0;
    if (asprintf(dst, "%s/%s", dir, name) < 0) {
        *dst = NULL;
        return se_err_set(err, SE_INTERNAL, "out of memory");
    }
    return 0;
}

int
docker_endpoint_resolve(docker_endpoint *out, const docker_endpoint *given, const docker_env *env,
                        se_err *err)
{
    memset(out, 0, sizeof(*out));
    const char *host = given->host;
    if (!host && env->host && env->host[0])
        host = env->host;
    if (!host)
        host = DOCKER_DEFAULT_HOST;
    int rc = dup_into(&out->host, host, err);
    /* As the docker CLI: DOCKER_TLS_VERIFY (any non-empty value) turns on
     * TLS with verification, with ca.pem, cert.pem and key.pem from
     * DOCKER_CERT_PATH (default ~/.docker); DOCKER_CERT_PATH alone does not.
     * TLS is for tcp only; a unix socket ignores it. A file given
     * explicitly always wins over the environment's. */
    bool tcp = strncmp(host, "tcp://", 6) == 0;
    char *dir = NULL;
    if (rc == 0 && tcp && env->tls_verify && env->tls_verify[0]) {
        if (env->cert_path && env->cert_path[0])
            rc = dup_into(&dir, env->cert_path, err);
        else if (env->home && env->home[0] && asprintf(&dir, "%s/.docker", env->home) < 0) {
            dir = NULL;
            rc = se_err_set(err, SE_INTERNAL, "out of memory");
        }
        if (rc == 0 && !dir)
            rc = se_err_set(err, SE_INVALID,
                            "DOCKER_TLS_VERIFY is set but neither DOCKER_CERT_PATH nor HOME is: "
                            "set DOCKER_CERT_PATH or --docker-tls-ca/-cert/-key");
    }
    if (rc == 0)
        rc = cert_file(&out->tls_ca, given->tls_ca, dir, "ca.pem", err);
    if (rc == 0)
        rc = cert_file(&out->tls_cert, given->tls_cert, dir, "cert.pem", err);
    if (rc == 0)
        rc = cert_file(&out->tls_key, given->tls_key, dir, "key.pem", err);
    free(dir);
    if (rc < 0)
        docker_endpoint_free(out);
    return rc;
}

void
docker_endpoint_env(docker_env *out)
{
    out->host = getenv("DOCKER_HOST");
    out->tls_verify = getenv("DOCKER_TLS_VERIFY");
    out->cert_path = getenv("DOCKER_CERT_PATH");
    out->home = getenv("HOME");
}

void
docker_endpoint_free(docker_endpoint *e)
{
    free(e->host);
    free(e->tls_ca);
    free(e->tls_cert);
    free(e->tls_key);
    memset(e, 0, sizeof(*e));
}
