/* Which images a collection removes: never one in use, the ones unused for
 * too long, then the least recently used until the rest fit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "image/internal.h"

#define MIB (1ull << 20)
#define NOW 1000000000000ll
#define S_AGO(s) (NOW - (int64_t)(s)*1000)

static void
test_age(void **state)
{
    (void)state;
    image_gc_item it[] = {
        {.bytes = 10 * MIB, .last_use_ms = S_AGO(7200)},
        {.bytes = 10 * MIB, .last_use_ms = S_AGO(10)},
        {.bytes = 10 * MIB, .last_use_ms = S_AGO(9000), .in_use = true},
    };
    image_gc_plan(it, 3, 0, 3600, NOW);
    assert_true(it[0].remove);
    assert_false(it[1].remove);
    assert_false(it[2].remove); /* old, but a container uses it */
    /* No age limit, no size limit: nothing goes. */
    image_gc_plan(it, 3, 0, 0, NOW);
    assert_false(it[0].remove || it[1].remove || it[2].remove);
}

static void
test_size_lru(void **state)
{
    (void)state;
    image_gc_item it[] = {
        {.bytes = 30 * MIB, .last_use_ms = S_AGO(50)}, /* newest */
        {.bytes = 30 * MIB, .last_use_ms = S_AGO(300)},
        {.bytes = 30 * MIB, .last_use_ms = S_AGO(500), .in_use = true}, /* oldest, in use */
        {.bytes = 30 * MIB, .last_use_ms = S_AGO(400)},
    };
    /* 120 MiB, budget 70: the in-use one counts but stays; the two least
     * recently used of the others go (400 s, then 300 s) -> 60 MiB. */
    image_gc_plan(it, 4, 70 * MIB, 0, NOW);
    assert_false(it[0].remove);
    assert_true(it[1].remove);
    assert_false(it[2].remove);
    assert_true(it[3].remove);
    /* Everything in use: over budget, and nothing may go. */
    for (int i = 0; i < 4; i++)
        it[i].in_use = true;
    image_gc_plan(it, 4, 1, 0, NOW);
    for (int i = 0; i < 4; i++)
        assert_false(it[i].remove);
    /* Fits: nothing goes. */
    for (int i = 0; i < 4; i++)
        it[i].in_use = false;
    image_gc_plan(it, 4, 120 * MIB, 0, NOW);
    for (int i = 0; i < 4; i++)
        assert_false(it[i].remove);
    image_gc_plan(NULL, 0, 1, 1, NOW);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_age),
        cmocka_unit_test(test_size_lru),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
