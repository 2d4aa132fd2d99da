/*
 * Unit tests of lock.h: mutual exclusion under contention (threads that
 * outnumber the cores, so holders are preempted and waiters sleep in the
 * kernel), the word back at free afterwards, errno kept, and a lock
 * re-initialised as a fork child does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>

#include "lock.h"

enum { THREADS = 6, ROUNDS = 200000 };

static hp_lock_t lock = HP_LOCK_INITIALIZER;
/* Updated non-atomically under the lock: a lost update shows a broken
 * lock. */
static uint64_t counter;
static uint64_t inside;
static int overlaps;

static void *
hammer(void *arg)
{
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        hp_lock(&lock);
        if (__atomic_add_fetch(&inside, 1, __ATOMIC_RELAXED) != 1)
            __atomic_store_n(&overlaps, 1, __ATOMIC_RELAXED);
        uint64_t c = counter;
        if (i % 1024 == 0)
            sched_yield(); /* preempted while holding: others must wait */
        counter = c + 1;
        __atomic_sub_fetch(&inside, 1, __ATOMIC_RELAXED);
        hp_unlock(&lock);
    }
    return NULL;
}

static void
test_mutual_exclusion(void **state)
{
    (void)state;
    pthread_t t[THREADS];
    errno = 1234;
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(counter, (uint64_t)THREADS * ROUNDS);
    assert_int_equal(overlaps, 0);
    assert_int_equal(lock.word, 0);
    assert_int_equal(errno, 1234);
}

static void
test_init_releases(void **state)
{
    (void)state;
    hp_lock_t l = HP_LOCK_INITIALIZER;
    hp_lock(&l);
    assert_int_equal(l.word, 1);
    hp_lock_init(&l); /* a fork child's copy of a lock its parent held */
    hp_lock(&l);
    hp_unlock(&l);
    assert_int_equal(l.word, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mutual_exclusion),
        cmocka_unit_test(test_init_releases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
