/* rpc: the status mapping, the listen policy, and the server's start/stop
 * lifecycle on a unix socket (stale socket removal, refusals). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <grpc/status.h>

#include "rpc/rpc.h"

static void
test_status_mapping(void **state)
{
    (void)state;
    assert_int_equal(rpc_status_for(SE_OK), GRPC_STATUS_OK);
    assert_int_equal(rpc_status_for(SE_NOT_FOUND), GRPC_STATUS_NOT_FOUND);
    assert_int_equal(rpc_status_for(SE_INVALID), GRPC_STATUS_INVALID_ARGUMENT);
    assert_int_equal(rpc_status_for(SE_EXHAUSTED), GRPC_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(rpc_status_for(SE_UNAVAILABLE), GRPC_STATUS_UNAVAILABLE);
    assert_int_equal(rpc_status_for(SE_PRECONDITION), GRPC_STATUS_FAILED_PRECONDITION);
    assert_int_equal(rpc_status_for(SE_DEADLINE), GRPC_STATUS_DEADLINE_EXCEEDED);
    assert_int_equal(rpc_status_for(SE_CANCELLED), GRPC_STATUS_CANCELLED);
    assert_int_equal(rpc_status_for(SE_CONFLICT), GRPC_STATUS_ABORTED);
    assert_int_equal(rpc_status_for(SE_PROTOCOL), GRPC_STATUS_INTERNAL);
    assert_int_equal(rpc_status_for(SE_INTERNAL), GRPC_STATUS_INTERNAL);
    /* Unknown codes are never OK. */
    assert_int_equal(rpc_status_for(999), GRPC_STATUS_INTERNAL);
    assert_int_equal(rpc_status_for(-1), GRPC_STATUS_INTERNAL);
}

static void
test_listen_is_local(void **state)
{
    (void)state;
    const char *local[] = {"unix:/run/x.sock", "unix:///run/x.sock",  "127.0.0.1:50051",
                           "127.8.9.1:1",      "localhost:50051",     "[::1]:50051",
                           "ipv4:127.0.0.1:5", "[::ffff:127.0.0.1]:5"};
    const char *remote[] = {"0.0.0.0:50051",  "[::]:50051",    ":50051",
                            "10.0.0.1:50051", "example.com:1", "50051",
                            "128.0.0.1:1",    "[::2]:1",       "localhost.evil.com:1"};
    for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
        if (!rpc_listen_is_local(local[i]))
            fail_msg("%s should be local", local[i]);
    }
    for (size_t i = 0; i < sizeof(remote) / sizeof(remote[0]); i++) {
        if (rpc_listen_is_local(remote[i]))
            fail_msg("%s should not be local", remote[i]);
    }
}

static rpc_server_opts
opts_for(const char *listen)
{
    return (rpc_server_opts){.listen = listen,
                             .max_request_bytes = 1 << 20,
                             .workers = 2,
                             .queue_depth = 2,
                             .grace_ms = 100,
                             .socket_mode = 0600};
}

static void
test_opts_check(void **state)
{
    (void)state;
    se_err err;
    rpc_server_opts o = opts_for("0.0.0.0:50051");
    assert_int_equal(rpc_server_opts_check(&o, &err), -SE_INVALID);
    assert_non_null(strstr(err.msg, "without TLS"));
    o.insecure_listen = 1;
    assert_int_equal(rpc_server_opts_check(&o, &err), 0);
    o.insecure_listen = 0;
    o.tls_cert = "/c.pem";
    assert_int_equal(rpc_server_opts_check(&o, &err), -SE_INVALID); /* no key */
    o.tls_key = "/k.pem";
    assert_int_equal(rpc_server_opts_check(&o, &err), 0);
    o = opts_for("127.0.0.1:1");
    o.tls_client_ca = "/ca.pem";
    assert_int_equal(rpc_server_opts_check(&o, &err), -SE_INVALID); /* mTLS without TLS */
    o = opts_for("");
    assert_int_equal(rpc_server_opts_check(&o, &err), -SE_INVALID);
    o = opts_for("unix:/tmp/x");
    o.workers = 0;
    assert_int_equal(rpc_server_opts_check(&o, &err), -SE_INVALID);
    o = opts_for("unix:/tmp/x");
    o.socket_mode = 04660; /* only permission bits */
    assert_int_equal(rpc_server_opts_check(&o, &err), -SE_INVALID);
}

static void
test_lifecycle_and_stale_socket(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_rpc_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], listen[300];
    /* The parent folder does not exist yet: the server makes it. */
    snprintf(path, sizeof(path), "%s/sub/s.sock", dir);
    snprintf(listen, sizeof(listen), "unix:%s", path);

    se_err err;
    rpc_server_opts o = opts_for(listen);
    rpc_server *s = NULL;
    assert_int_equal(rpc_server_new(&s, &o, NULL, 0, NULL, &err), 0);
    assert_int_equal(rpc_server_start(s, &err), 0);
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    /* --socket-mode, and the folder made for it: rwx for the owner only,
     * as nobody else may use a 0600 socket. */
    assert_int_equal(st.st_mode & 07777, 0600);
    char subdir[280];
    snprintf(subdir, sizeof(subdir), "%s/sub", dir);
    assert_int_equal(stat(subdir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);

    /* A second server on a live socket is refused, the socket kept. */
    rpc_server *s2 = NULL;
    assert_true(rpc_server_new(&s2, &o, NULL, 0, NULL, &err) < 0);
    assert_non_null(strstr(err.msg, "another server"));
    assert_int_equal(lstat(path, &st), 0);

    rpc_server_shutdown(s);
    rpc_server_free(s);
    /* The daemon removes its socket when it stops. */
    assert_int_equal(lstat(path, &st), -1);

    /* A stale socket (nobody listening) is replaced. */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    unlink(path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    assert_int_equal(rpc_server_new(&s, &o, NULL, 0, NULL, &err), 0);
    rpc_server_free(s); /* never started */

    /* Something that is not a socket is never removed. */
    unlink(path);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    assert_true(rpc_server_new(&s, &o, NULL, 0, NULL, &err) < 0);
    assert_non_null(strstr(err.msg, "not a socket"));
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    unlink(path);

    char sub[280];
    snprintf(sub, sizeof(sub), "%s/sub", dir);
    rmdir(sub);
    rmdir(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_mapping),
        cmocka_unit_test(test_listen_is_local),
        cmocka_unit_test(test_opts_check),
        cmocka_unit_test(test_lifecycle_and_stale_socket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
