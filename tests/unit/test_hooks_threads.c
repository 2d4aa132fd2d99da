/*
 * Unit tests of the custom-allocator hooks heapprof_on_alloc() and
 * heapprof_on_free() at rate 1, with made-up block addresses (never
 * dereferenced): every allocation is recorded in the bucket of its call
 * stack, whose leaf frame is the function that called heapprof_on_alloc;
 * frees are matched (bucket free counters end equal to the alloc ones);
 * frees of addresses never reported change nothing; an address reported
 * twice accounts the first block as freed; rate 0 and heapprof_stop()
 * record nothing new but frees of recorded blocks are still seen; and the
 * same from 8 threads at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "buckets.h"
#include "heapprof.h"
#include "internal.h"
#include "live.h"
#include "stats.h"

/*
 * heapprof_set_rate() reaches a thread when that thread's current
 * countdown runs out (after sampling was off: within 4 MiB). These tests
 * need the new rate on the next call, so they also restart this thread's
 * countdown.
 */
static void
set_rate_now(uint64_t rate)
{
    assert_int_equal(heapprof_set_rate(rate), HEAPPROF_OK);
    hp_tls.bytes_until_sample = 0;
}

/* ------------------------------------------------- allocation sites */

/* Each site is its own function: the leaf frame of what it reports. The
 * empty asm keeps the call from becoming a tail call (which would make
 * the site's caller the leaf). */
#define SITE(name)                                                            \
    static __attribute__((noinline)) void name(void *p, size_t size)         \
    {                                                                         \
        heapprof_on_alloc(p, size);                                           \
        __asm__ volatile("" ::: "memory");                                    \
    }
SITE(site_basic)
SITE(site_other)
SITE(site_stale)
SITE(site_stopped)
SITE(site_thread)

/* Start address of the function containing pc, from the unwind tables
 * (the FDE of that function), or 0. */
static uintptr_t
function_start(uintptr_t pc)
{
    unw_proc_info_t pi;
    memset(&pi, 0, sizeof pi);
    if (unw_get_proc_info_by_ip(unw_local_addr_space, (unw_word_t)pc, &pi,
                                NULL) != 0)
        return 0;
    return (uintptr_t)pi.start_ip;
}

/* pcs hold return addresses: pc - 1 is inside the calling instruction. */
static bool
frame_in(uintptr_t pc, void (*fn)(void))
{
    return pc != 0 && function_start(pc - 1) == (uintptr_t)fn;
}

#define FN(f) ((void (*)(void))(f))

struct totals {
    uint64_t buckets;
    uint64_t alloc_samples, alloc_raw, alloc_fx, alloc_bytes;
    uint64_t free_samples, free_raw, free_fx, free_bytes;
};

static void
add_bucket(struct totals *t, const struct hp_bucket *b)
{
    t->buckets++;
    t->alloc_samples += b->alloc_samples;
    t->alloc_raw += b->alloc_raw_bytes;
    t->alloc_fx += b->alloc_count_fx;
    t->alloc_bytes += b->alloc_bytes;
    t->free_samples += b->free_samples;
    t->free_raw += b->free_raw_bytes;
    t->free_fx += b->free_count_fx;
    t->free_bytes += b->free_bytes;
}

/* Totals over the buckets whose leaf frame is in fn (all if fn NULL, the
 * overflow bucket included). */
static struct totals
totals_for(void (*fn)(void), struct hp_bucket **one)
{
    struct totals t;
    memset(&t, 0, sizeof t);
    for (struct hp_bucket *b = hp_buckets_all(); b != NULL; b = b->all_next) {
        if (fn != NULL && !(b->nframes > 0 && frame_in(b->pcs[0], fn)))
            continue;
        add_bucket(&t, b);
        if (one != NULL)
            *one = b;
    }
    if (fn == NULL)
        add_bucket(&t, hp_bucket_overflow());
    return t;
}

static void *
fake(uint64_t i)
{
    return (void *)(uintptr_t)(0x5A0000000000ull + 64 * i);
}

/* --------------------------------------------------------------- tests */

#define N 1000

static void
test_hooks_every_alloc_recorded_and_freed(void **state)
{
    (void)state;
    set_rate_now(1);
    uint64_t live0 = hp_live_count();
    uint64_t samples0 = hp_stat_get(&hp_stats.samples);
    uint64_t matched0 = hp_stat_get(&hp_stats.frees_matched);
    assert_int_equal(totals_for(FN(site_basic), NULL).buckets, 0);

    uint64_t bytes = 0;
    for (uint64_t i = 0; i < N; i++) {
        site_basic(fake(i), (size_t)(i + 1));
        bytes += i + 1;
    }
    assert_int_equal(hp_live_count(), live0 + N);
    assert_int_equal(hp_stat_get(&hp_stats.samples), samples0 + N);

    /* One call site, one stack, one bucket; rate 1 weights are exact. */
    struct hp_bucket *b = NULL;
    struct totals t = totals_for(FN(site_basic), &b);
    assert_int_equal(t.buckets, 1);
    assert_int_equal(t.alloc_samples, N);
    assert_int_equal(t.alloc_raw, bytes);
    assert_int_equal(t.alloc_bytes, bytes);
    assert_int_equal(t.alloc_fx, (uint64_t)N * HP_COUNT_ONE);
    assert_int_equal(t.free_samples, 0);

    /* Leaf: the function that called heapprof_on_alloc; next: its caller
     * (this test); no heapprof frame anywhere in the stack. */
    assert_true(b->nframes >= 2);
    assert_true(frame_in(b->pcs[0], FN(site_basic)));
    assert_true(frame_in(b->pcs[1], FN(test_hooks_every_alloc_recorded_and_freed)));
    for (uint32_t i = 0; i < b->nframes; i++) {
        assert_false(frame_in(b->pcs[i], FN(heapprof_on_alloc)));
        assert_false(frame_in(b->pcs[i], FN(heapprof_on_free)));
    }
    assert_true(b->nframes <= HEAPPROF_DEFAULT_STACK_DEPTH);

    /* Another site: another bucket, its own leaf. */
    site_other(fake(N), 5);
    struct hp_bucket *bo = NULL;
    assert_int_equal(totals_for(FN(site_other), &bo).alloc_samples, 1);
    assert_ptr_not_equal(bo, b);
    assert_true(frame_in(bo->pcs[0], FN(site_other)));

    /* Free everything: frees match allocations exactly. */
    for (uint64_t i = 0; i <= N; i++)
        heapprof_on_free(fake(i));
    t = totals_for(FN(site_basic), NULL);
    assert_int_equal(t.free_samples, t.alloc_samples);
    assert_int_equal(t.free_raw, t.alloc_raw);
    assert_int_equal(t.free_bytes, t.alloc_bytes);
    assert_int_equal(t.free_fx, t.alloc_fx);
    assert_int_equal(totals_for(FN(site_other), NULL).free_samples, 1);
    assert_int_equal(hp_live_count(), live0);
    assert_int_equal(hp_stat_get(&hp_stats.frees_matched), matched0 + N + 1);
}

static void
assert_totals_equal(const struct totals *a, const struct totals *b)
{
    assert_int_equal(a->buckets, b->buckets);
    assert_int_equal(a->alloc_samples, b->alloc_samples);
    assert_int_equal(a->alloc_raw, b->alloc_raw);
    assert_int_equal(a->alloc_fx, b->alloc_fx);
    assert_int_equal(a->alloc_bytes, b->alloc_bytes);
    assert_int_equal(a->free_samples, b->free_samples);
    assert_int_equal(a->free_raw, b->free_raw);
    assert_int_equal(a->free_fx, b->free_fx);
    assert_int_equal(a->free_bytes, b->free_bytes);
}

static void
test_hooks_unknown_free_changes_nothing(void **state)
{
    (void)state;
    set_rate_now(1);
    /* Some live blocks, so the filter and the table are not empty. */
    for (uint64_t i = 0; i < 64; i++)
        site_basic(fake(10000 + i), 32);
    uint64_t live0 = hp_live_count();
    uint64_t matched0 = hp_stat_get(&hp_stats.frees_matched);
    struct totals before = totals_for(NULL, NULL);

    heapprof_on_free(NULL);
    for (uint64_t i = 0; i < 64; i++) {
        /* Never reported; the +8 ones share filter slot and hash chain
         * with a live block, so they reach the table and must miss. */
        heapprof_on_free(fake(20000 + i));
        heapprof_on_free((char *)fake(10000 + i) + 8);
        heapprof_on_free((char *)fake(10000 + i) + 16);
    }
    struct totals after = totals_for(NULL, NULL);
    assert_totals_equal(&before, &after);
    assert_int_equal(hp_live_count(), live0);
    assert_int_equal(hp_stat_get(&hp_stats.frees_matched), matched0);

    /* NULL is not an allocation. */
    heapprof_on_alloc(NULL, 100);
    after = totals_for(NULL, NULL);
    assert_totals_equal(&before, &after);

    /* Free once: counted. Free again (a double free): nothing more. */
    for (uint64_t i = 0; i < 64; i++)
        heapprof_on_free(fake(10000 + i));
    struct totals freed = totals_for(NULL, NULL);
    assert_int_equal(freed.free_samples, before.free_samples + 64);
    assert_int_equal(hp_live_count(), live0 - 64);
    for (uint64_t i = 0; i < 64; i++)
        heapprof_on_free(fake(10000 + i));
    after = totals_for(NULL, NULL);
    assert_totals_equal(&freed, &after);
    assert_int_equal(hp_live_count(), live0 - 64);
}

/* An address reported again without a free in between (the allocator
 * reused it behind heapprof's back): the old block is accounted as freed
 * in its own bucket, and one block stays live. */
static void
test_hooks_reported_twice_accounts_stale(void **state)
{
    (void)state;
    set_rate_now(1);
    uint64_t live0 = hp_live_count();
    void *p = fake(30000);
    site_stale(p, 100);
    struct hp_bucket *first = NULL;
    struct totals t = totals_for(FN(site_stale), &first);
    assert_int_equal(t.alloc_samples, 1);
    assert_int_equal(t.free_samples, 0);

    site_other(p, 200);
    t = totals_for(FN(site_stale), NULL);
    assert_int_equal(t.free_samples, 1);
    assert_int_equal(t.free_raw, 100);
    assert_int_equal(hp_live_count(), live0 + 1);

    struct totals o0 = totals_for(FN(site_other), NULL);
    heapprof_on_free(p);
    struct totals o1 = totals_for(FN(site_other), NULL);
    assert_int_equal(o1.free_samples, o0.free_samples + 1);
    assert_int_equal(o1.free_raw, o0.free_raw + 200);
    assert_int_equal(hp_live_count(), live0);
    /* The first bucket was not charged twice. */
    assert_int_equal(totals_for(FN(site_stale), NULL).free_samples, 1);
}

static void
test_hooks_off_and_stopped(void **state)
{
    (void)state;
    set_rate_now(1);
    void *p = fake(40000), *q = fake(40001);
    site_stopped(p, 64);
    assert_int_equal(totals_for(FN(site_stopped), NULL).alloc_samples, 1);
    uint64_t live0 = hp_live_count();
    uint64_t samples0 = hp_stat_get(&hp_stats.samples);

    /* Rate 0: nothing recorded, at any size. */
    set_rate_now(0);
    for (uint64_t i = 0; i < 100; i++)
        site_stopped(fake(41000 + i), (size_t)1 << 20);
    assert_int_equal(hp_stat_get(&hp_stats.samples), samples0);
    assert_int_equal(hp_live_count(), live0);

    /* Stopped: nothing recorded, but the free of a recorded block is. */
    set_rate_now(1);
    assert_int_equal(heapprof_stop(), HEAPPROF_OK);
    for (uint64_t i = 0; i < 100; i++)
        site_stopped(fake(42000 + i), 64);
    site_stopped(q, 64);
    assert_int_equal(hp_stat_get(&hp_stats.samples), samples0);
    heapprof_on_free(p);
    heapprof_on_free(q);
    struct totals t = totals_for(FN(site_stopped), NULL);
    assert_int_equal(t.alloc_samples, 1);
    assert_int_equal(t.free_samples, 1);
    assert_int_equal(hp_live_count(), live0 - 1);

    /* Started again: recorded again. */
    struct heapprof_config cfg;
    heapprof_config_init(&cfg);
    cfg.flags = HEAPPROF_CONFIG_NO_ENV;
    cfg.rate = 1;
    assert_int_equal(heapprof_start(&cfg), HEAPPROF_OK);
    hp_tls.bytes_until_sample = 0;
    site_stopped(q, 64);
    assert_int_equal(totals_for(FN(site_stopped), NULL).alloc_samples, 2);
    heapprof_on_free(q);
    assert_int_equal(hp_live_count(), live0 - 1);
}

/* ------------------------------------------------------------ threads */

#define NTHREADS 8
#define PER_THREAD 5000

struct worker {
    pthread_barrier_t *start;
    uint64_t base;
};

static void *
hook_worker(void *arg)
{
    struct worker *w = arg;
    pthread_barrier_wait(w->start);
    /* A new thread's first report draws its countdown at the current
     * rate (1): no restart needed. */
    for (int round = 0; round < 2; round++) {
        for (uint64_t i = 0; i < PER_THREAD; i++)
            site_thread(fake(w->base + i), (size_t)(16 + i % 100));
        for (uint64_t i = 0; i < PER_THREAD; i++)
            heapprof_on_free(fake(w->base + i));
    }
    /* Leave every 10th block live. */
    for (uint64_t i = 0; i < PER_THREAD; i += 10)
        site_thread(fake(w->base + i), 8);
    return NULL;
}

static void
test_hooks_threads_consistent(void **state)
{
    (void)state;
    set_rate_now(1);
    uint64_t live0 = hp_live_count();
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, NTHREADS);
    pthread_t tid[NTHREADS];
    struct worker w[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        w[t] = (struct worker){&start, 1000000 + (uint64_t)t * 100000};
        assert_int_equal(pthread_create(&tid[t], NULL, hook_worker, &w[t]), 0);
    }
    for (int t = 0; t < NTHREADS; t++)
        pthread_join(tid[t], NULL);
    pthread_barrier_destroy(&start);

    uint64_t kept = NTHREADS * (PER_THREAD / 10);
    uint64_t allocs = NTHREADS * (2 * PER_THREAD + PER_THREAD / 10);
    struct hp_bucket *b = NULL;
    struct totals t = totals_for(FN(site_thread), &b);
    assert_true(t.buckets >= 1);
    assert_true(frame_in(b->pcs[0], FN(site_thread)));
    assert_true(frame_in(b->pcs[1], FN(hook_worker)));
    assert_int_equal(t.alloc_samples, allocs);
    assert_int_equal(t.free_samples, allocs - kept);
    assert_int_equal(t.alloc_fx, allocs * HP_COUNT_ONE);
    assert_int_equal(t.alloc_raw - t.free_raw, kept * 8);
    assert_int_equal(hp_live_count(), live0 + kept);

    for (int k = 0; k < NTHREADS; k++)
        for (uint64_t i = 0; i < PER_THREAD; i += 10)
            heapprof_on_free(fake(w[k].base + i));
    t = totals_for(FN(site_thread), NULL);
    assert_int_equal(t.free_samples, t.alloc_samples);
    assert_int_equal(t.free_fx, t.alloc_fx);
    assert_int_equal(t.free_bytes, t.alloc_bytes);
    assert_int_equal(t.free_raw, t.alloc_raw);
    assert_int_equal(hp_live_count(), live0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hooks_every_alloc_recorded_and_freed),
        cmocka_unit_test(test_hooks_unknown_free_changes_nothing),
        cmocka_unit_test(test_hooks_reported_twice_accounts_stale),
        cmocka_unit_test(test_hooks_off_and_stopped),
        cmocka_unit_test(test_hooks_threads_consistent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
