/* rpc/identity.c: the --tokens and --unix-identities files (every refusal
 * names the file and line, never the token), the lookups (a token by its
 * hash, the role and quotas of a name, unix peers by uid, user name or "*"),
 * and a reload that keeps the old tables when the new file is broken. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "rpc/identity.h"
#include "util/sha256.h"

static void
hex_of(char out[65], const char *token)
{
    uint8_t d[SHA256_DIGEST_LEN];
    sha256_digest(d, token, strlen(token));
    sha256_hex(out, d);
}

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void
test_parse_refusals(void **state)
{
    (void)state;
    static const struct {
        int kind;
        const char *text, *needle;
    } bad[] = {
        {'t', "alice\n", "expected name"},
        {'t', "alice secret-token-pasted-here\n", "not 64 hex digits"},
        {'t', "alice 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg\n",
         "not hex"},
        {'t', "alice - root\n", "not admin or user"},
        {'t', "alice - admin max-cpus=3\n", "not max-sandboxes"},
        {'t', "alice - admin max-runs=x\n", "not a number"},
        {'t', "alice - max-runs=1 admin\n", "the role comes first"},
        {'t', "a\"b -\n", "bad name"},
        {'u', "* -\n* bob\n", "same user"},
        {'u', "1000 -\n1000 bob\n", "same user"},
        {'u', "99999999999 bob\n", "bad uid"},
        {'t', "a - b c d e f g h i j\n", "too many fields"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rpc_identity_table *t = NULL;
        se_err err;
        se_err_clear(&err);
        int rc =
            rpc_identity_table_parse(&t, bad[i].kind, bad[i].text, strlen(bad[i].text), "f", &err);
        if (rc != -SE_INVALID || !strstr(err.msg, bad[i].needle) || !strstr(err.msg, "f:"))
            fail_msg("case %zu: rc %d '%s'", i, rc, err.msg);
        assert_null(t);
        /* A token pasted into the file instead of its hash is never echoed. */
        assert_null(strstr(err.msg, "secret-token"));
    }
    /* Two hashes alike would make one token two tenants. */
    char h[65], text[300];
    hex_of(h, "t1");
    snprintf(text, sizeof(text), "a %s\nb %s\n", h, h);
    rpc_identity_table *t = NULL;
    se_err err;
    assert_int_equal(rpc_identity_table_parse(&t, 't', text, strlen(text), "f", &err), -SE_INVALID);
    assert_non_null(strstr(err.msg, "f:2"));
    /* Comments and blank lines only: an empty table. */
    const char *empty = "# nobody yet\n\n   \n";
    assert_int_equal(rpc_identity_table_parse(&t, 't', empty, strlen(empty), "f", &err), 0);
    assert_int_equal(rpc_identity_table_count(t), 0);
    rpc_identity_table_free(t);
}

static void
test_lookups_and_reload(void **state)
{
    (void)state;
    char dir[] = "/tmp/safeeval-ident-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char tokens[300], unixf[300];
    snprintf(tokens, sizeof(tokens), "%s/tokens", dir);
    snprintf(unixf, sizeof(unixf), "%s/unix", dir);
    char ha[65], hb[65], text[600];
    hex_of(ha, "alice-token");
    hex_of(hb, "boss-token");
    snprintf(text, sizeof(text),
             "alice %s user max-sandboxes=2\nboss %s admin max-memory=1G\n"
             "certname - admin max-runs=7\n",
             ha, hb);
    write_file(tokens, text);
    write_file(unixf, "1000 carol\nwww-data - user max-runs=1\n* -\n0 certname\n");

    rpc_server_opts o = {.tokens_file = tokens,
                         .unix_identities_file = unixf,
                         .tenant_max_sandboxes = 5,
                         .tenant_max_runs = 6};
    rpc_auth *a = NULL;
    se_err err;
    assert_int_equal(rpc_auth_new(&a, &o, &err), 0);
    assert_true(rpc_auth_required(a));

    rpc_identity id;
    assert_int_equal(rpc_auth_token(a, "alice-token", 11, &id), 0);
    assert_string_equal(id.name, "alice");
    assert_false(id.admin);
    assert_int_equal(id.max_sandboxes, 2); /* the line's */
    assert_int_equal(id.max_runs, 6);      /* the default */
    assert_int_equal(rpc_auth_token(a, "boss-token", 10, &id), 0);
    assert_true(id.admin);
    assert_int_equal(id.max_memory, 1ull << 30);
    assert_int_equal(rpc_auth_token(a, "alice-toke", 10, &id), -1);
    assert_int_equal(rpc_auth_token(a, ha, 64, &id), -1); /* the hash is not the token */
    assert_int_equal(rpc_auth_token(a, "", 0, &id), -1);

    /* A certificate's name takes the role of its "-" line. */
    assert_int_equal(rpc_auth_named(a, "certname", 8, &id), 0);
    assert_true(id.admin);
    assert_int_equal(id.max_runs, 7);
    assert_int_equal(rpc_auth_named(a, "someone else", 12, &id), 0);
    assert_false(id.admin);
    assert_int_equal(rpc_auth_named(a, "bad\"name", 8, &id), -1);

    assert_int_equal(rpc_auth_unix(a, 1000, "whoever", &id), 0);
    assert_string_equal(id.name, "carol");
    assert_int_equal(rpc_auth_unix(a, 33, "www-data", &id), 0);
    assert_string_equal(id.name, "www-data");
    assert_int_equal(id.max_runs, 1);
    assert_int_equal(rpc_auth_unix(a, 4242, "dave", &id), 0); /* "*": by user name */
    assert_string_equal(id.name, "dave");
    assert_int_equal(rpc_auth_unix(a, 4243, NULL, &id), 0);
    assert_string_equal(id.name, "uid:4243");
    assert_int_equal(rpc_auth_unix(a, 0, "root", &id), 0); /* role from the tokens line */
    assert_string_equal(id.name, "certname");
    assert_true(id.admin);

    /* A broken file keeps what was loaded; a good one replaces it. */
    write_file(tokens, "alice nothex\n");
    assert_int_equal(rpc_auth_reload(a, &err), -SE_INVALID);
    assert_int_equal(rpc_auth_token(a, "alice-token", 11, &id), 0);
    snprintf(text, sizeof(text), "bob %s\n", ha);
    write_file(tokens, text);
    write_file(unixf, "1000 carol\n");
    assert_int_equal(rpc_auth_reload(a, &err), 0);
    assert_int_equal(rpc_auth_token(a, "alice-token", 11, &id), 0);
    assert_string_equal(id.name, "bob");
    assert_int_equal(rpc_auth_token(a, "boss-token", 10, &id), -1);
    assert_int_equal(rpc_auth_unix(a, 4242, "dave", &id), -1); /* no "*" line any more */
    rpc_auth_free(a);

    /* No option: not required; the anonymous tenant has the defaults. */
    rpc_server_opts none = {.tenant_max_runs = 3};
    assert_int_equal(rpc_auth_new(&a, &none, &err), 0);
    assert_false(rpc_auth_required(a));
    rpc_auth_anonymous(a, &id);
    assert_string_equal(id.name, "");
    assert_int_equal(id.max_runs, 3);
    rpc_auth_free(a);

    /* A missing file stops the start. */
    rpc_server_opts missing = {.tokens_file = "/nonexistent/tokens"};
    assert_true(rpc_auth_new(&a, &missing, &err) < 0);
    assert_non_null(strstr(err.msg, "--tokens"));
    unlink(tokens);
    unlink(unixf);
    rmdir(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_lookups_and_reload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
