/* The identity files (rpc/identity.c): an operator's --tokens and
 * --unix-identities text, read again at every SIGHUP. The first input byte
 * picks the kind (even: tokens, odd: unix identities), the rest is the file.
 * Invariants: a refusal names the file and leaves no table; a table never
 * holds more entries than the text has lines or than IDENTITY_ENTRIES_MAX;
 * the tenant-name check agrees with its own definition. */
#include <string.h>

#include "fuzz.h"
#include "rpc/identity.h"

static size_t
lines_of(const char *s, size_t len)
{
    size_t n = 1;
    for (size_t i = 0; i < len; i++)
        n += s[i] == '\n';
    return n;
}

static bool
name_ok_by_definition(const uint8_t *p, size_t len)
{
    if (len == 0 || len > RPC_IDENTITY_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (p[i] < 0x20 || p[i] > 0x7e || p[i] == '"' || p[i] == '\\')
            return false;
    return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int kind = data[0] & 1 ? 'u' : 't';
    size_t len = size - 1;
    char *text = fuzz_strndup(data + 1, len);
    if (!text)
        return 0;
    rpc_identity_table *t = NULL;
    se_err err;
    memset(&err, 0, sizeof(err));
    int rc = rpc_identity_table_parse(&t, kind, text, len, "fuzz.conf", &err);
    if (rc < 0) {
        FUZZ_CHECK(t == NULL);
        FUZZ_CHECK(strstr(err.msg, "fuzz.conf") != NULL);
    } else {
        FUZZ_CHECK(t != NULL);
        size_t n = rpc_identity_table_count(t);
        FUZZ_CHECK(n <= lines_of(text, len));
        FUZZ_CHECK(n <= IDENTITY_ENTRIES_MAX);
        rpc_identity_table_free(t);
    }
    FUZZ_CHECK(rpc_identity_name_ok(text, len) == name_ok_by_definition(data + 1, len));
    free(text);
    return 0;
}
