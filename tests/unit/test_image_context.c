/* Image module: reading the recipe dir and the wheelhouse from disk, and the
 * build context tar (read back with libarchive). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <cmocka.h>

#include "util/file.h"
#include "image/internal.h"

typedef struct fx {
    char root[64];
    char recipe[128];
    char wheels[128];
} fx;

static void
write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static int
setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    snprintf(f->root, sizeof(f->root), "/tmp/test_image_ctx.XXXXXX");
    if (!mkdtemp(f->root))
        return -1;
    snprintf(f->recipe, sizeof(f->recipe), "%s/recipe", f->root);
    snprintf(f->wheels, sizeof(f->wheels), "%s/wheels", f->root);
    mkdir(f->recipe, 0755);
    mkdir(f->wheels, 0755);
    write_file(f->recipe, "Dockerfile.in",
               "FROM {{BASE_IMAGE}}\nARG SAFEEVAL_PYTHON_VERSION\nCOPY . /ctx\n", 0644);
    write_file(f->recipe, "seccomp.json", "{\"x\":1}\n", 0644);
    write_file(f->recipe, "run.sh", "#!/bin/sh\necho hi\n", 0755);
    write_file(f->recipe, "README.md", "docs, not recipe\n", 0644);
    write_file(f->recipe, ".swp", "editor junk\n", 0644);
    char sub[256];
    snprintf(sub, sizeof(sub), "%s/subdir", f->recipe);
    mkdir(sub, 0755);
    char link[256];
    snprintf(link, sizeof(link), "%s/link.txt", f->recipe);
    symlink("/etc/passwd", link);
    write_file(f->wheels, "b_pkg-1.0-py3-none-any.whl", "BBBB", 0644);
    write_file(f->wheels, "a_pkg-2.0-py3-none-any.whl", "AAAAAA", 0644);
    write_file(f->wheels, "notes.txt", "not a wheel", 0644);
    write_file(f->wheels, "bad name.whl", "space", 0644);
    snprintf(link, sizeof(link), "%s/c_link-1.0-py3-none-any.whl", f->wheels);
    symlink("/etc/passwd", link);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fx *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static void
test_recipe_load(void **state)
{
    fx *f = *state;
    image_recipe r = {0};
    se_err err;
    assert_int_equal(image_recipe_load(&r, f->recipe, &err), 0);
    assert_int_equal(r.n, 3);
    assert_string_equal(r.files[0].name, "Dockerfile.in");
    assert_string_equal(r.files[1].name, "run.sh");
    assert_int_equal(r.files[1].mode, 0755);
    assert_string_equal(r.files[2].name, "seccomp.json");
    assert_int_equal(r.files[2].mode, 0644);
    assert_int_equal(r.files[2].len, 8);
    image_recipe_free(&r);

    /* No template: refused. A reserved name: refused. */
    se_err e2;
    assert_int_equal(image_recipe_load(&r, f->wheels, &e2), -SE_PRECONDITION);
    write_file(f->recipe, "Dockerfile", "FROM x\n", 0644);
    assert_int_equal(image_recipe_load(&r, f->recipe, &e2), -SE_PRECONDITION);
    assert_non_null(strstr(e2.msg, "reserves"));
    char p[256];
    snprintf(p, sizeof(p), "%s/Dockerfile", f->recipe);
    unlink(p);
    assert_int_equal(image_recipe_load(&r, "/nonexistent/recipe", &e2), -SE_PRECONDITION);
}

static void
test_wheelhouse_list(void **state)
{
    fx *f = *state;
    image_wheelhouse w;
    se_err err;
    assert_int_equal(image_wheelhouse_list(&w, f->wheels, &err), 0);
    assert_int_equal(w.n, 2);
    assert_string_equal(w.wheels[0].name, "a_pkg-2.0-py3-none-any.whl");
    assert_int_equal(w.wheels[0].size, 6);
    assert_string_equal(w.wheels[1].name, "b_pkg-1.0-py3-none-any.whl");
    image_wheelhouse_free(&w);
    assert_int_equal(image_wheelhouse_list(&w, NULL, &err), 0);
    assert_int_equal(w.n, 0);
}

typedef struct want_entry {
    const char *name;
    int type;
    unsigned perm;
    const char *content; /* NULL = do not compare */
} want_entry;

static void
check_tar(const se_buf *tar, const want_entry *want, size_t n_want)
{
    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    assert_int_equal(archive_read_open_memory(a, tar->data, tar->len), ARCHIVE_OK);
    struct archive_entry *ae;
    size_t i = 0;
    while (archive_read_next_header(a, &ae) == ARCHIVE_OK) {
        assert_true(i < n_want);
        assert_string_equal(archive_entry_pathname(ae), want[i].name);
        assert_int_equal(archive_entry_filetype(ae), want[i].type);
        assert_int_equal(archive_entry_perm(ae), want[i].perm);
        assert_int_equal(archive_entry_mtime(ae), 0);
        assert_int_equal(archive_entry_uid(ae), 0);
        assert_int_equal(archive_entry_gid(ae), 0);
        if (want[i].content) {
            char buf[4096];
            la_ssize_t got = archive_read_data(a, buf, sizeof(buf) - 1);
            assert_true(got >= 0);
            buf[got] = '\0';
            assert_int_equal((size_t)got, archive_entry_size(ae));
            assert_string_equal(buf, want[i].content);
        }
        i++;
    }
    assert_int_equal(i, n_want);
    archive_read_free(a);
}

static void
test_context(void **state)
{
    fx *f = *state;
    image_recipe r = {0};
    image_wheelhouse w = {0};
    se_err err;
    assert_int_equal(image_recipe_load(&r, f->recipe, &err), 0);
    assert_int_equal(image_wheelhouse_list(&w, f->wheels, &err), 0);
    const char *mods[] = {"numpy", "requests==2.31.0"};
    const uint8_t agent[] = "\x7f"
                            "ELF-agent";
    image_context_in in = {.base_ref = "safeeval/python:3.11",
                           .recipe = &r,
                           .modules = mods,
                           .n_modules = 2,
                           .wheelhouse_dir = f->wheels,
                           .wheels = &w,
                           .agent = agent,
                           .agent_len = sizeof(agent) - 1};
    se_buf tar;
    assert_int_equal(image_context_make(&tar, &in, &err), 0);
    const want_entry want[] = {
        {"Dockerfile", AE_IFREG, 0644,
         "FROM safeeval/python:3.11\nARG SAFEEVAL_PYTHON_VERSION\nCOPY . /ctx\n"},
        {"pip-offline", AE_IFREG, 0644, "1\n"},
        {"requirements.txt", AE_IFREG, 0644, "numpy\nrequests==2.31.0\n"},
        {"run.sh", AE_IFREG, 0755, "#!/bin/sh\necho hi\n"},
        {"safeeval-agent", AE_IFREG, 0755,
         "\x7f"
         "ELF-agent"},
        {"seccomp.json", AE_IFREG, 0644, "{\"x\":1}\n"},
        {"wheelhouse/", AE_IFDIR, 0755, NULL},
        {"wheelhouse/a_pkg-2.0-py3-none-any.whl", AE_IFREG, 0644, "AAAAAA"},
        {"wheelhouse/b_pkg-1.0-py3-none-any.whl", AE_IFREG, 0644, "BBBB"},
    };
    check_tar(&tar, want, sizeof(want) / sizeof(want[0]));

    /* Deterministic: the same inputs give the same bytes. */
    se_buf again;
    assert_int_equal(image_context_make(&again, &in, &err), 0);
    assert_int_equal(tar.len, again.len);
    assert_memory_equal(tar.data, again.data, tar.len);
    se_buf_free(&again);
    se_buf_free(&tar);

    /* No wheelhouse: "0" and an empty wheelhouse dir; no modules: empty file. */
    in.wheelhouse_dir = NULL;
    in.n_modules = 0;
    assert_int_equal(image_context_make(&tar, &in, &err), 0);
    const want_entry want2[] = {
        {"Dockerfile", AE_IFREG, 0644, NULL},     {"pip-offline", AE_IFREG, 0644, "0\n"},
        {"requirements.txt", AE_IFREG, 0644, ""}, {"run.sh", AE_IFREG, 0755, NULL},
        {"safeeval-agent", AE_IFREG, 0755, NULL}, {"seccomp.json", AE_IFREG, 0644, NULL},
        {"wheelhouse/", AE_IFDIR, 0755, NULL},
    };
    check_tar(&tar, want2, sizeof(want2) / sizeof(want2[0]));
    se_buf_free(&tar);

    /* Hostile or broken inputs are refused, and nothing is left allocated. */
    in.base_ref = "x\nRUN rm -rf /";
    assert_int_equal(image_context_make(&tar, &in, &err), -SE_INVALID);
    assert_null(tar.data);
    in.base_ref = "safeeval/python:3.11";
    const char *evil[] = {"-r/etc/passwd"};
    in.modules = evil;
    in.n_modules = 1;
    assert_int_equal(image_context_make(&tar, &in, &err), -SE_INVALID);
    const char *unsorted[] = {"b", "a"};
    in.modules = unsorted;
    in.n_modules = 2;
    assert_int_equal(image_context_make(&tar, &in, &err), -SE_INTERNAL);
    in.n_modules = 0;
    /* A template without the token. */
    image_file *tmpl = (image_file *)image_recipe_find(&r, "Dockerfile.in");
    size_t keep = tmpl->len;
    tmpl->len = 4; /* "FROM" */
    assert_int_equal(image_context_make(&tar, &in, &err), -SE_PRECONDITION);
    tmpl->len = keep;
    /* A wheel that changed size after listing. */
    in.wheelhouse_dir = f->wheels;
    w.wheels[0].size = 7;
    assert_int_equal(image_context_make(&tar, &in, &err), -SE_PRECONDITION);
    assert_non_null(strstr(err.msg, "changed"));

    image_recipe_free(&r);
    image_wheelhouse_free(&w);
}

static void
test_read_file(void **state)
{
    fx *f = *state;
    char p[256];
    uint8_t *d = NULL;
    size_t n;
    se_err err;
    snprintf(p, sizeof(p), "%s/seccomp.json", f->recipe);
    assert_int_equal(file_read_all(p, 100, FILE_NOFOLLOW, &d, &n, NULL, &err), 0);
    assert_int_equal(n, 8);
    free(d);
    assert_int_equal(file_read_all(p, 7, FILE_NOFOLLOW, &d, &n, NULL, &err), -SE_EXHAUSTED);
    snprintf(p, sizeof(p), "%s/link.txt", f->recipe);
    assert_true(file_read_all(p, 100, FILE_NOFOLLOW, &d, &n, NULL, &err) < 0); /* no symlinks */
    assert_int_equal(file_read_all(f->recipe, 100, FILE_NOFOLLOW, &d, &n, NULL, &err), -SE_INVALID);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recipe_load),
        cmocka_unit_test(test_wheelhouse_list),
        cmocka_unit_test(test_context),
        cmocka_unit_test(test_read_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
