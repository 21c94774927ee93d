/* Where the engine is: settings, then the docker CLI's environment
 * (DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH, HOME), then the local
 * socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "docker/docker.h"

static void
test_default(void **state)
{
    (void)state;
    docker_endpoint given = {0}, ep;
    docker_env env = {.home = "/root"};
    se_err err = {0};
    assert_int_equal(docker_endpoint_resolve(&ep, &given, &env, &err), 0);
    assert_string_equal(ep.host, "unix:///var/run/docker.sock");
    assert_null(ep.tls_ca);
    assert_null(ep.tls_cert);
    assert_null(ep.tls_key);
    docker_endpoint_free(&ep);
    /* An empty DOCKER_HOST is unset, as for the CLI. */
    env.host = "";
    assert_int_equal(docker_endpoint_resolve(&ep, &given, &env, &err), 0);
    assert_string_equal(ep.host, "unix:///var/run/docker.sock");
    docker_endpoint_free(&ep);
}

static void
test_env_host(void **state)
{
    (void)state;
    docker_endpoint given = {0}, ep;
    docker_env env = {.host = "unix:///run/other.sock"};
    se_err err = {0};
    assert_int_equal(docker_endpoint_resolve(&ep, &given, &env, &err), 0);
    assert_string_equal(ep.host, "unix:///run/other.sock");
    docker_endpoint_free(&ep);
    /* The setting wins over the environment. */
    given.host = "tcp://10.0.0.1:2375";
    assert_int_equal(docker_endpoint_resolve(&ep, &given, &env, &err), 0);
    assert_string_equal(ep.host, "tcp://10.0.0.1:2375");
    assert_null(ep.tls_ca);
    docker_endpoint_free(&ep);
}

static void
test_env_tls(void **state)
{
    (void)state;
    docker_endpoint given = {0}, ep;
    docker_env env = {
        .host = "tcp://engine:2376", .tls_verify = "1", .cert_path = "/etc/dc", .home = "/home/op"};
    se_err err = {0};
    assert_int_equal(docker_endpoint_resolve(&ep, &given, &env, &err), 0);
    assert_string_equal(ep.host, "tcp://engine:2376");
    assert_string_equal(ep.tls_ca, "/etc/dc/ca.pem");
    assert_string_equal(ep.tls_cert, "/etc/dc/cert.pem");
    assert_string_equal(ep.tls_key, "/etc/dc/key.pem");
    docker_endpoint_free(&ep);
    /* Without DOCKER_CERT_PATH: ~/.docker. A file given explicitly wins. */
    env.cert_path = NULL;
    given.tls_key = "/secret/key.pem";
    assert_int_equal(docker_endpoint_resolve(&ep, &given, &env, &err), 0);
    assert_string_equal(ep.tls_ca, "/home/op/.docker/ca.pem");
    assert_string_equal(ep.tls_key, "/secret/key.pem");
    docker_endpoint_free(&ep);
    /* Nowhere to take them from: a clear refusal. */
    env.home = NULL;
    assert_int_equal(docker_endpoint_resolve(&ep, &given, &env, &err), -SE_INVALID);
    assert_non_null(strstr(err.msg, "DOCKER_CERT_PATH"));
    assert_null(ep.host);
    /* DOCKER_CERT_PATH without DOCKER_TLS_VERIFY: plain, as for the CLI. */
    docker_env plain = {.host = "tcp://engine:2375", .cert_path = "/etc/dc", .tls_verify = ""};
    docker_endpoint none = {0};
    assert_int_equal(docker_endpoint_resolve(&ep, &none, &plain, &err), 0);
    assert_null(ep.tls_ca);
    docker_endpoint_free(&ep);
    /* A unix socket takes no TLS. */
    docker_env unix_env = {
        .host = "unix:///var/run/docker.sock", .tls_verify = "1", .cert_path = "/etc/dc"};
    assert_int_equal(docker_endpoint_resolve(&ep, &none, &unix_env, &err), 0);
    assert_null(ep.tls_ca);
    docker_endpoint_free(&ep);
    /* The setting's host decides whether the environment's TLS applies. */
    docker_endpoint unix_given = {.host = "unix:///x.sock"};
    env.cert_path = "/etc/dc";
    assert_int_equal(docker_endpoint_resolve(&ep, &unix_given, &env, &err), 0);
    assert_null(ep.tls_ca);
    docker_endpoint_free(&ep);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default),
        cmocka_unit_test(test_env_host),
        cmocka_unit_test(test_env_tls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
