/*
 * The growable buffer (src/buf.c): appends, formatting, the sink adapter,
 * array growth and the sticky out-of-memory flag.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"

static void
test_buf_appends(void **state)
{
    (void)state;
    struct hp_buf b = {0};
    hp_buf_puts(&b, "rate=");
    hp_buf_printf(&b, "%d %s", 524288, "bytes");
    hp_buf_put(&b, "", 0);
    assert_false(b.oom);
    assert_int_equal(b.len, strlen("rate=524288 bytes"));
    assert_memory_equal(b.p, "rate=524288 bytes", b.len);
    hp_buf_free(&b);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
}

static void
test_buf_grows_past_many_doublings(void **state)
{
    (void)state;
    struct hp_buf b = {0};
    char chunk[1000];
    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < 300; i++)
        hp_buf_put(&b, chunk, sizeof chunk);
    assert_false(b.oom);
    assert_int_equal(b.len, 300000);
    assert_true(b.cap >= b.len);
    assert_int_equal(b.p[299999], 'x');
    hp_buf_free(&b);
}

static void
test_buf_sink(void **state)
{
    (void)state;
    struct hp_buf b = {0};
    struct heapprof_sink s = hp_buf_sink(&b);
    assert_int_equal(s.write(s.ctx, "abc", 3), 0);
    assert_int_equal(s.write(s.ctx, "de", 2), 0);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.p, "abcde", 5);
    hp_buf_free(&b);
}

static void
test_buf_oom_is_sticky(void **state)
{
    (void)state;
    struct hp_buf b = {0};
    hp_buf_puts(&b, "ok");
    /* A reservation that cannot be met sets oom and keeps the data. */
    assert_false(hp_buf_reserve(&b, SIZE_MAX - 1));
    assert_true(b.oom);
    hp_buf_puts(&b, "lost");
    assert_int_equal(b.len, 2);
    struct heapprof_sink s = hp_buf_sink(&b);
    assert_int_equal(s.write(s.ctx, "x", 1), -1);
    hp_buf_free(&b);
    assert_false(b.oom);
}

static void
test_buf_grow_array(void **state)
{
    (void)state;
    uint64_t *a = NULL;
    size_t cap = 0;
    assert_true(hp_grow((void **)&a, &cap, 1, sizeof *a));
    assert_int_equal(cap, 64);
    assert_true(hp_grow((void **)&a, &cap, 65, sizeof *a));
    assert_int_equal(cap, 128);
    a[127] = 7;
    /* Overflowing sizes fail and leave the array as it was. */
    assert_false(hp_grow((void **)&a, &cap, SIZE_MAX / 4, sizeof *a));
    assert_int_equal(cap, 128);
    assert_int_equal(a[127], 7);
    free(a);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_appends),
        cmocka_unit_test(test_buf_grows_past_many_doublings),
        cmocka_unit_test(test_buf_sink),
        cmocka_unit_test(test_buf_oom_is_sticky),
        cmocka_unit_test(test_buf_grow_array),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
