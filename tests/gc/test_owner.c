/*
 * Unit tests of the owner index of the live table (src/live.c) and of the
 * custom-allocator hooks built on it (src/front_hooks.c): bulk removal by
 * owner, owners kept apart, individual frees unlinking from the owner
 * list, a stale duplicate moving to its new owner, tag-guarded removal,
 * the public hooks at rate 1 accounted in the buckets, and threads
 * allocating, freeing and bulk-freeing pools at once.
 *
 * Addresses and owners are made up and never dereferenced; each test uses
 * its own range and checks the counters as differences.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <string.h>

#include "buckets.h"
#include "heapprof.h"
#include "internal.h"
#include "live.h"
#include "record.h"

static struct hp_bucket *
bucket(uintptr_t leaf)
{
    uintptr_t pcs[2] = {leaf, 0x4343};
    return hp_bucket_get(pcs, 2);
}

static void
insert(uintptr_t ptr, uintptr_t owner, uintptr_t tag)
{
    struct hp_live_rec r, stale;
    bool had;
    memset(&r, 0, sizeof r);
    r.ptr = ptr;
    r.bucket = bucket(0x1000);
    r.size = 16;
    r.count_fx = HP_COUNT_ONE;
    r.bytes = 16;
    r.owner = owner;
    r.tag = tag;
    assert_true(hp_live_insert(&r, &stale, &had));
}

static unsigned
drain(uintptr_t owner)
{
    struct hp_live_rec out;
    unsigned n = 0;
    while (hp_live_remove_owned(owner, &out)) {
        assert_int_equal(out.owner, owner);
        n++;
    }
    return n;
}

static void
test_owner_bulk_remove_only_its_records(void **state)
{
    (void)state;
    uint64_t live0 = hp_live_count(), owners0 = hp_live_owner_count();
    const uintptr_t a = 0xA0000000, b = 0xB0000000;
    for (uintptr_t i = 0; i < 1000; i++) {
        insert(0x10000000 + i * 16, a, 0);
        insert(0x20000000 + i * 16, b, 0);
        insert(0x30000000 + i * 16, 0, 0); /* no owner */
    }
    assert_int_equal(hp_live_owner_count() - owners0, 2);
    assert_int_equal(drain(a), 1000);
    assert_int_equal(hp_live_owner_count() - owners0, 1);
    /* The other owner's and the unowned records are all still there. */
    assert_int_equal(hp_live_count() - live0, 2000);
    assert_false(hp_live_remove_owned(a, &(struct hp_live_rec){0}));
    assert_int_equal(drain(b), 1000);
    struct hp_live_rec out;
    for (uintptr_t i = 0; i < 1000; i++)
        assert_true(hp_live_remove(0x30000000 + i * 16, &out));
    assert_int_equal(hp_live_count(), live0);
    assert_int_equal(hp_live_owner_count(), owners0);
}

static void
test_owner_single_free_unlinks(void **state)
{
    (void)state;
    uint64_t owned0 = hp_live_owned_count();
    const uintptr_t o = 0xC0000000;
    for (uintptr_t i = 0; i < 100; i++)
        insert(0x40000000 + i * 16, o, 0);
    struct hp_live_rec out;
    /* Free the even ones one by one: head, middle and tail of the list. */
    for (uintptr_t i = 0; i < 100; i += 2) {
        assert_true(hp_live_remove(0x40000000 + i * 16, &out));
        assert_int_equal(out.owner, o);
    }
    assert_int_equal(hp_live_owned_count() - owned0, 50);
    assert_int_equal(drain(o), 50);
    assert_int_equal(hp_live_owned_count(), owned0);
    for (uintptr_t i = 0; i < 100; i++)
        assert_false(hp_live_remove(0x40000000 + i * 16, &out));
}

static void
test_owner_stale_duplicate_moves(void **state)
{
    (void)state;
    const uintptr_t o1 = 0xD0000000, o2 = 0xD0001000, p = 0x50000000;
    insert(p, o1, 0);
    struct hp_live_rec r, stale;
    bool had;
    memset(&r, 0, sizeof r);
    r.ptr = p;
    r.bucket = bucket(0x2000);
    r.owner = o2;
    assert_true(hp_live_insert(&r, &stale, &had));
    assert_true(had);
    assert_int_equal(stale.owner, o1);
    assert_int_equal(drain(o1), 0);
    assert_int_equal(drain(o2), 1);
}

static void
test_owner_tagged_remove(void **state)
{
    (void)state;
    const uintptr_t p = 0x60000000;
    insert(p, 0, 0x77);
    struct hp_live_rec out;
    assert_false(hp_live_remove_tagged(p, 0x78, &out));
    assert_true(hp_live_remove_tagged(p, 0x77, &out));
    assert_int_equal(out.tag, 0x77);
    assert_false(hp_live_remove(p, &out));
}

static void
bucket_sums(uint64_t *alloc, uint64_t *freed)
{
    *alloc = *freed = 0;
    for (struct hp_bucket *b = hp_buckets_all(); b != NULL; b = b->all_next) {
        *alloc += __atomic_load_n(&b->alloc_bytes, __ATOMIC_RELAXED);
        *freed += __atomic_load_n(&b->free_bytes, __ATOMIC_RELAXED);
    }
}

static void
test_owner_public_hooks_rate1(void **state)
{
    (void)state;
    /* The new rate reaches this thread when its countdown runs out:
     * restart it so that every call below is sampled. */
    assert_int_equal(heapprof_set_rate(1), HEAPPROF_OK);
    hp_tls.bytes_until_sample = 0;
    uint64_t a0, f0, a1, f1;
    bucket_sums(&a0, &f0);
    static char pool[2][4096];
    /* Pool 0: 64 blocks of 32 bytes, 8 freed singly, one resized. */
    for (int i = 0; i < 64; i++)
        heapprof_on_alloc_owned(&pool[0][i * 32], 32, pool[0]);
    for (int i = 0; i < 8; i++)
        heapprof_on_free(&pool[0][i * 32]);
    heapprof_on_realloc_owned(&pool[0][40 * 32], &pool[0][40 * 32], 48,
                              pool[0]);
    /* Pool 1: 10 blocks of 100 bytes. */
    for (int i = 0; i < 10; i++)
        heapprof_on_alloc_owned(&pool[1][i * 128], 100, pool[1]);
    bucket_sums(&a1, &f1);
    assert_int_equal(a1 - a0, 64 * 32 + 48 + 10 * 100);
    assert_int_equal(f1 - f0, 8 * 32 + 32);
    heapprof_on_free_bulk(pool[0]);
    bucket_sums(&a1, &f1);
    assert_int_equal(f1 - f0, 64 * 32 + 48);
    heapprof_on_free_bulk(pool[1]);
    heapprof_on_free_bulk(pool[1]); /* nothing left: no-op */
    heapprof_on_free_bulk(NULL);
    bucket_sums(&a1, &f1);
    assert_int_equal(a1 - f1, a0 - f0);
    /* realloc forms: NULL old is an alloc, size 0 and NULL new a free. */
    heapprof_on_realloc(NULL, &pool[1][0], 64);
    heapprof_on_realloc(&pool[1][0], NULL, 100); /* failed: nothing */
    bucket_sums(&a1, &f1);
    assert_int_equal(a1 - f1, a0 - f0 + 64);
    heapprof_on_realloc(&pool[1][0], NULL, 0);
    bucket_sums(&a1, &f1);
    assert_int_equal(a1 - f1, a0 - f0);
}

/* Threads: each fills its own pools, frees some blocks singly and
 * destroys its pools; one more thread bulk-frees a shared set of owners
 * while they are being filled (a pool reset racing with allocation). */
#define T_THREADS 4
#define T_POOLS 32
#define T_BLOCKS 200

static void *
pool_thread(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    for (uintptr_t p = 0; p < T_POOLS; p++) {
        uintptr_t owner = 0xE0000000 + (id * T_POOLS + p) * 64;
        uintptr_t base = 0x70000000 + (id * T_POOLS + p) * T_BLOCKS * 16;
        for (uintptr_t i = 0; i < T_BLOCKS; i++)
            insert(base + i * 16, owner, 0);
        struct hp_live_rec out;
        for (uintptr_t i = 0; i < T_BLOCKS; i += 3)
            assert_true(hp_live_remove(base + i * 16, &out));
        assert_int_equal(drain(owner), T_BLOCKS - (T_BLOCKS + 2) / 3);
    }
    return NULL;
}

static int racing_done;

static void *
racing_filler(void *arg)
{
    (void)arg;
    for (uintptr_t i = 0; i < 20000; i++)
        insert(0x90000000 + i * 16, 0xF0000000 + (i % 8) * 64, 0);
    __atomic_store_n(&racing_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void *
racing_bulk(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&racing_done, __ATOMIC_ACQUIRE))
        for (uintptr_t o = 0; o < 8; o++)
            drain(0xF0000000 + o * 64);
    return NULL;
}

static void
test_owner_threads(void **state)
{
    (void)state;
    uint64_t live0 = hp_live_count(), owners0 = hp_live_owner_count();
    uint64_t owned0 = hp_live_owned_count();
    pthread_t th[T_THREADS + 2];
    for (uintptr_t i = 0; i < T_THREADS; i++)
        pthread_create(&th[i], NULL, pool_thread, (void *)i);
    pthread_create(&th[T_THREADS], NULL, racing_filler, NULL);
    pthread_create(&th[T_THREADS + 1], NULL, racing_bulk, NULL);
    for (int i = 0; i < T_THREADS + 2; i++)
        pthread_join(th[i], NULL);
    for (uintptr_t o = 0; o < 8; o++)
        drain(0xF0000000 + o * 64);
    assert_int_equal(hp_live_count(), live0);
    assert_int_equal(hp_live_owner_count(), owners0);
    assert_int_equal(hp_live_owned_count(), owned0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_owner_bulk_remove_only_its_records),
        cmocka_unit_test(test_owner_single_free_unlinks),
        cmocka_unit_test(test_owner_stale_duplicate_moves),
        cmocka_unit_test(test_owner_tagged_remove),
        cmocka_unit_test(test_owner_public_hooks_rate1),
        cmocka_unit_test(test_owner_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
