/* Image module: version and module validation (hostile inputs included), base
 * reference resolution, module normalisation, and the content-address tag. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "image/internal.h"

static void
test_versions(void **state)
{
    (void)state;
    const char *good[] = {"3.11", "3.11.4", "3.0", "3.9", "3.13", "3.99.999", "3.12.0"};
    const char *bad[] = {"",         "3",     "3.",      "3.11.",  "2.7",       "4.0",
                         "03.11",    "3.011", "3.11.04", "3.100",  "3.11.1000", "3.11.4.1",
                         "3.11a",    " 3.11", "3.11 ",   "3.11\n", "3.x",       "3..11",
                         "3.11-rc1", "３.11", "3.11;rm", "latest"};
    se_err err;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (image_validate_version(good[i], &err) != 0)
            fail_msg("\"%s\" should be valid: %s", good[i], err.msg);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&err, 0, sizeof(err));
        if (image_validate_version(bad[i], &err) != -SE_INVALID)
            fail_msg("\"%s\" should be invalid", bad[i]);
        assert_int_equal(err.code, SE_INVALID);
        assert_true(err.msg[0] != '\0');
    }
    assert_int_equal(image_validate_version(NULL, &err), -SE_INVALID);
}

static void
test_modules_valid(void **state)
{
    (void)state;
    const char *good[] = {"numpy",
                          "requests==2.31.0",
                          "Django>=4,<5",
                          "foo[bar,baz]~=1.0",
                          "zope.interface",
                          "my_pkg-name",
                          "a",
                          "x===1.0+local",
                          "pkg!=1.*",
                          "pkg==1!2.0",
                          "pkg[extra]",
                          "numpy<2",
                          "pkg>1.0rc1"};
    se_err err;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (image_validate_module(good[i], &err) != 0)
            fail_msg("\"%s\" should be valid: %s", good[i], err.msg);
    }
}

typedef struct bad_case {
    const char *in;
    const char *why; /* a word the reason must contain */
} bad_case;

static void
test_modules_hostile(void **state)
{
    (void)state;
    const bad_case bad[] = {
        {"--index-url x", "whitespace"},
        {"--index-url=http://evil", "option"},
        {"-r/etc/passwd", "option"},
        {"-r /etc/passwd", "whitespace"},
        {"-e.", "option"},
        {"numpy; os_name==\"nt\"", "whitespace"},
        {"numpy;os_name==\"nt\"", "marker"},
        {"pkg @ https://x", "whitespace"},
        {"pkg@https://x/p.whl", "URL"},
        {"git+https://github.com/x/y", "URL"},
        {"../x", "path"},
        {"./x", "path"},
        {"C:\\x", "path"},
        {"$(reboot)", "name"},
        {"`reboot`", "name"},
        {"a|b", "specifier"},
        {"a&&b", "specifier"},
        {"a>b|c", "version"},
        {"x\n-e .", "control"},
        {"x\r", "control"},
        {"x\t", "control"},
        {"nump\xd0\xb0", "ASCII"},     /* Cyrillic 'a' */
        {"\xef\xbd\x8eumpy", "ASCII"}, /* fullwidth 'n' */
        {"", "empty"},
        {"x==", "version"},
        {"x==1.0,", "specifier"},
        {"x[]", "extra"},
        {"x[a", "extras"},
        {"x[a]]", "specifier"},
        {"_x", "name"},
        {"x_", "name"},
        {"x.", "name"},
        {"x=1", "specifier"},
        {"x==${HOME}", "version"},
        {"x==1;y", "marker"},
        {"x #c", "whitespace"},
        {"x#c", "specifier"},
        {"x'y", "specifier"},
        {"x==1 --hash=sha256:x", "whitespace"},
    };
    se_err err;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&err, 0, sizeof(err));
        if (image_validate_module(bad[i].in, &err) != -SE_INVALID)
            fail_msg("case %zu should be invalid", i);
        if (!strcasestr(err.msg, bad[i].why))
            fail_msg("case %zu: reason \"%s\" does not mention \"%s\"", i, err.msg, bad[i].why);
    }
    assert_int_equal(image_validate_module(NULL, &err), -SE_INVALID);

    char longname[301];
    memset(longname, 'a', 300);
    longname[300] = '\0';
    assert_int_equal(image_validate_module(longname, &err), -SE_INVALID);
    assert_non_null(strstr(err.msg, "longer"));
    /* Exactly at the limit is fine; one more byte is not. */
    longname[SE_MAX_MODULE_LEN] = '\0';
    assert_int_equal(image_validate_module(longname, &err), 0);
    longname[SE_MAX_MODULE_LEN] = 'a';
    longname[SE_MAX_MODULE_LEN + 1] = '\0';
    assert_int_equal(image_validate_module(longname, &err), -SE_INVALID);
}

static void
test_base_ref(void **state)
{
    (void)state;
    se_err err;
    char *r = NULL;
    assert_int_equal(image_base_ref_resolve(&r, "python:{version}-slim", "3.11", &err), 0);
    assert_string_equal(r, "python:3.11-slim");
    free(r);
    assert_int_equal(image_base_ref_resolve(&r, "safeeval/python:{version}", "3.13", &err), 0);
    assert_string_equal(r, "safeeval/python:3.13");
    free(r);
    assert_int_equal(image_base_ref_resolve(&r, "r/{version}:{version}", "3.9", &err), 0);
    assert_string_equal(r, "r/3.9:3.9");
    free(r);
    r = NULL;
    assert_int_equal(image_base_ref_resolve(&r, "Python:{version}", "3.11", &err), -SE_INVALID);
    assert_null(r);
    assert_int_equal(image_base_ref_resolve(&r, "python:{version}\nRUN x", "3.11", &err),
                     -SE_INVALID);
    assert_int_equal(image_base_ref_resolve(&r, "python {version}", "3.11", &err), -SE_INVALID);
    assert_int_equal(image_validate_base_ref("x@sha256:0123abcd", &err), 0);
    assert_int_equal(image_validate_base_ref("", &err), -SE_INVALID);
    assert_int_equal(image_validate_base_ref("-x", &err), -SE_INVALID);
    assert_int_equal(image_validate_base_ref("x$y", &err), -SE_INVALID);
}

static void
test_normalize(void **state)
{
    (void)state;
    const char *in[] = {"numpy", "Django>=4,<5", "numpy", "attrs", "Django>=4,<5"};
    char **m = NULL;
    size_t n = 0;
    se_err err;
    assert_int_equal(image_modules_normalize(&m, &n, in, 5, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(m[0], "Django>=4,<5");
    assert_string_equal(m[1], "attrs");
    assert_string_equal(m[2], "numpy");
    image_modules_free(m, n);

    const char *bad[] = {"numpy", "-r x"};
    m = NULL;
    assert_int_equal(image_modules_normalize(&m, &n, bad, 2, &err), -SE_INVALID);
    assert_null(m);

    const char *many[SE_MAX_MODULES + 1];
    for (size_t i = 0; i < SE_MAX_MODULES + 1; i++)
        many[i] = "x";
    assert_int_equal(image_modules_normalize(&m, &n, many, SE_MAX_MODULES + 1, &err), -SE_INVALID);
    assert_int_equal(image_modules_normalize(&m, &n, NULL, 0, &err), 0);
    assert_int_equal(n, 0);
    image_modules_free(m, n);
}

/* A fixed set of tag inputs that each check varies one field of. */
typedef struct tag_fixture {
    image_file files[2];
    image_recipe recipe;
    image_wheel wheel_arr[1];
    image_wheelhouse wheels;
    uint8_t agent[SHA256_DIGEST_LEN];
    const char *mods[3];
    image_tag_inputs in;
} tag_fixture;

static void
fixture_init(tag_fixture *f)
{
    memset(f, 0, sizeof(*f));
    f->files[0] = (image_file){.name = "Dockerfile.in",
                               .mode = 0644,
                               .data = (uint8_t *)"FROM {{BASE_IMAGE}}\n",
                               .len = 20};
    f->files[1] =
        (image_file){.name = "seccomp.json", .mode = 0644, .data = (uint8_t *)"{}", .len = 2};
    f->recipe = (image_recipe){.files = f->files, .n = 2};
    f->wheel_arr[0] = (image_wheel){.name = "a-1-py3-none-any.whl", .size = 100, .mtime_ns = 5};
    f->wheels = (image_wheelhouse){.wheels = f->wheel_arr, .n = 1};
    memset(f->agent, 0xab, sizeof(f->agent));
    f->mods[0] = "numpy";
    f->mods[1] = "requests==2.31.0";
    f->mods[2] = "attrs";
    f->in = (image_tag_inputs){.base_id = "sha256:1111",
                               .version = "3.11",
                               .modules = f->mods,
                               .n_modules = 3,
                               .recipe = &f->recipe,
                               .agent_sha256 = f->agent,
                               .offline = true,
                               .wheels = &f->wheels};
}

static void
tag_of(char out[128], const tag_fixture *f)
{
    se_err err;
    assert_int_equal(image_tag_compute(out, &f->in, &err), 0);
}

static void
test_tag(void **state)
{
    (void)state;
    tag_fixture f;
    char base[128], t[128];
    fixture_init(&f);
    tag_of(base, &f);
    assert_int_equal(strncmp(base, SE_IMAGE_REPO ":", strlen(SE_IMAGE_REPO) + 1), 0);
    assert_int_equal(strlen(base), strlen(SE_IMAGE_REPO) + 1 + IMAGE_TAG_HEX);

    /* Same inputs: same tag. */
    tag_of(t, &f);
    assert_string_equal(base, t);
    /* Module order and duplicates do not matter. */
    const char *reordered[] = {"attrs", "requests==2.31.0", "numpy", "numpy"};
    f.in.modules = reordered;
    f.in.n_modules = 4;
    tag_of(t, &f);
    assert_string_equal(base, t);

    /* Every other change gives a new tag. */
#define CHANGED(stmt)                                                                              \
    do {                                                                                           \
        fixture_init(&f);                                                                          \
        stmt;                                                                                      \
        tag_of(t, &f);                                                                             \
        if (strcmp(base, t) == 0)                                                                  \
            fail_msg("tag did not change for: %s", #stmt);                                         \
    } while (0)
    CHANGED(f.in.base_id = "sha256:2222");
    CHANGED(f.in.version = "3.11.2");
    CHANGED(f.in.n_modules = 2);
    CHANGED(f.mods[1] = "requests==2.31.1");
    CHANGED(f.files[1].data = (uint8_t *)"[]");
    CHANGED(f.files[1].mode = 0755);
    CHANGED(f.files[1].name = "seccomp2.json");
    CHANGED(f.recipe.n = 1);
    CHANGED(f.agent[31] ^= 1);
    CHANGED(f.in.offline = false);
    CHANGED(f.wheel_arr[0].size = 101);
    CHANGED(f.wheel_arr[0].mtime_ns = 6);
    CHANGED(f.wheel_arr[0].name = "b-1-py3-none-any.whl");
    CHANGED(f.wheels.n = 0);
    /* Field boundaries are unambiguous: moving bytes between modules matters. */
    CHANGED((f.mods[0] = "numpyattrs", f.mods[2] = "x"));
#undef CHANGED
}

/* Concatenation collisions (issue 12, blind spot 10): a tag that hashed the
 * modules (or the version and the modules) joined without lengths or
 * separators would give {"ab","c"} and {"a","bc"} the same tag. Each pair
 * below has the same bytes when concatenated, so only an unambiguous
 * serialisation tells them apart. */
static void
test_tag_no_concatenation_collision(void **state)
{
    (void)state;
    tag_fixture f;
    char t1[128], t2[128];

    const char *abc1[] = {"ab", "c"};
    const char *abc2[] = {"a", "bc"};
    fixture_init(&f);
    f.in.modules = abc1;
    f.in.n_modules = 2;
    tag_of(t1, &f);
    f.in.modules = abc2;
    tag_of(t2, &f);
    if (strcmp(t1, t2) == 0)
        fail_msg("{\"ab\",\"c\"} and {\"a\",\"bc\"} share the tag %s", t1);

    /* One module against two that concatenate to it. */
    const char *abc3[] = {"abc"};
    f.in.modules = abc3;
    f.in.n_modules = 1;
    tag_of(t2, &f);
    if (strcmp(t1, t2) == 0)
        fail_msg("{\"ab\",\"c\"} and {\"abc\"} share the tag %s", t1);

    /* Bytes moved across the version/modules boundary. */
    const char *m1[] = {"1numpy"};
    const char *m2[] = {"numpy"};
    fixture_init(&f);
    f.in.version = "3.1";
    f.in.modules = m1;
    f.in.n_modules = 1;
    tag_of(t1, &f);
    f.in.version = "3.11";
    f.in.modules = m2;
    tag_of(t2, &f);
    if (strcmp(t1, t2) == 0)
        fail_msg("version 3.1 + {\"1numpy\"} and 3.11 + {\"numpy\"} share the tag %s", t1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_modules_valid),
        cmocka_unit_test(test_modules_hostile),
        cmocka_unit_test(test_base_ref),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_tag),
        cmocka_unit_test(test_tag_no_concatenation_collision),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
