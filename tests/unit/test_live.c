/*
 * Unit tests of the live-block table (src/live.c) and its counting filter:
 * insert/remove round trips, "certainly not sampled" for addresses never
 * inserted (also after removals), the stale record returned by a
 * duplicate insert, filter counters that saturate and stay, iteration,
 * removal of every record without owner or tag,
 * and 8 threads inserting and removing disjoint addresses.
 *
 * Addresses are made up and never dereferenced. Each test uses its own
 * address range and checks hp_live_count() as a difference.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "buckets.h"
#include "internal.h"
#include "live.h"

static struct hp_live_rec
rec_for(uintptr_t ptr, struct hp_bucket *b, uint64_t size)
{
    struct hp_live_rec r;
    memset(&r, 0, sizeof r);
    r.ptr = ptr;
    r.bucket = b;
    r.size = size;
    r.count_fx = HP_COUNT_ONE * (size + 1);
    r.bytes = size * 3;
    r.birth_ns = 1000 + size;
    r.filtered = true;
    return r;
}

static struct hp_bucket *
bucket(uintptr_t leaf)
{
    uintptr_t pcs[2] = {leaf, 0x4242};
    return hp_bucket_get(pcs, 2);
}

/* Insert r, an address the table does not hold. */
static void
insert_new(const struct hp_live_rec *r)
{
    struct hp_live_rec stale;
    bool had_stale;
    assert_true(hp_live_insert(r, &stale, &had_stale));
    assert_false(had_stale);
}

/* The slot test_live_filter_counts_and_saturates leaves at 255. */
#define SATURATED_SLOT 777u

static uint8_t
filter_value(uintptr_t ptr)
{
    return hp_tables.filter[hp_live_filter_slot(ptr)];
}

/* The fast path's bit of every slot, fine and coarse, says exactly
 * "count != 0". */
static void
assert_bits_match_counts(void)
{
    for (uint32_t slot = 0; slot < (1u << HP_LIVE_FILTER_LG); slot++) {
        bool bit = hp_live_bit(hp_tables.bits, slot);
        if (bit != (hp_tables.filter[slot] != 0))
            fail_msg("slot %u: bit %d, count %u", slot, bit,
                     hp_tables.filter[slot]);
    }
    for (uint32_t c = 0; c < (1u << HP_LIVE_COARSE_LG); c++) {
        bool bit = hp_live_bit(hp_tables.coarse_bits, c);
        if (bit != (hp_tables.coarse[c] != 0))
            fail_msg("coarse slot %u: bit %d, count %u", c, bit,
                     hp_tables.coarse[c]);
    }
}

/* Addresses in distinct filter slots for the tests below (a multiple of
 * the 256 MiB window would share slot 0 with NULL). */
#define GRANULE ((uintptr_t)1 << HP_LIVE_GRANULE_LG)

static void
test_live_insert_remove_roundtrip(void **state)
{
    (void)state;
    uint64_t n0 = hp_live_count();
    struct hp_bucket *b = bucket(0x1111);
    struct hp_live_rec stale, out;
    bool had_stale = true;
    uintptr_t p = 0x10001040;

    assert_false(hp_live_maybe((void *)p));
    struct hp_live_rec r = rec_for(p, b, 77);
    assert_true(hp_live_insert(&r, &stale, &had_stale));
    assert_false(had_stale);
    assert_true(hp_live_maybe((void *)p));
    assert_int_equal(hp_live_count(), n0 + 1);

    memset(&out, 0xEE, sizeof out);
    assert_true(hp_live_remove(p, &out));
    assert_int_equal(out.ptr, p);
    assert_ptr_equal(out.bucket, b);
    assert_int_equal(out.size, 77);
    assert_int_equal(out.count_fx, HP_COUNT_ONE * 78);
    assert_int_equal(out.bytes, 231);
    assert_int_equal(out.birth_ns, 1077);
    assert_int_equal(hp_live_count(), n0);
    assert_false(hp_live_maybe((void *)p));

    /* A second remove finds nothing and changes nothing. */
    assert_false(hp_live_remove(p, &out));
    assert_int_equal(hp_live_count(), n0);
}

/* Addresses never inserted: the filter says "certainly not" for every one
 * whose slot no inserted address shares, and the table says "not there"
 * for those that do share a slot. After removing everything, the filter
 * is clear again for all of them. */
#define FILTER_N 4000

static void
test_live_filter_not_sampled(void **state)
{
    (void)state;
    uint64_t n0 = hp_live_count();
    struct hp_bucket *b = bucket(0x2222);
    struct hp_live_rec out;
    uintptr_t base = 0x20400000;
    static uint8_t used[1u << HP_LIVE_FILTER_LG];
    memset(used, 0, sizeof used);

    /* Slots already counted (e.g. saturated by another test) are "used". */
    for (uintptr_t i = 0; i < FILTER_N; i++)
        used[hp_live_filter_slot(base + GRANULE * i)] =
            filter_value(base + GRANULE * i) != 0;
    /* Insert the even granules, keep the odd ones as never-inserted. */
    for (uintptr_t i = 0; i < FILTER_N; i += 2) {
        struct hp_live_rec r = rec_for(base + GRANULE * i, b, i);
        insert_new(&r);
        used[hp_live_filter_slot(base + GRANULE * i)] = 1;
    }
    assert_int_equal(hp_live_count(), n0 + FILTER_N / 2);
    unsigned clear = 0, shared = 0;
    for (uintptr_t i = 1; i < FILTER_N; i += 2) {
        uintptr_t p = base + GRANULE * i;
        if (used[hp_live_filter_slot(p)]) {
            shared++;
            assert_true(hp_live_maybe((void *)p));
        } else {
            clear++;
            assert_false(hp_live_maybe((void *)p));
        }
        assert_false(hp_live_remove(p, &out));
    }
    /* Most never-inserted addresses are rejected by the filter alone. */
    assert_true(clear > 9 * shared);
    for (uintptr_t i = 0; i < FILTER_N; i += 2)
        assert_true(hp_live_maybe((void *)(base + GRANULE * i)));

    /* Remove all: the counts go back to what they were. */
    for (uintptr_t i = 0; i < FILTER_N; i += 2) {
        assert_true(hp_live_remove(base + GRANULE * i, &out));
        assert_int_equal(out.size, i);
    }
    assert_int_equal(hp_live_count(), n0);
    for (uintptr_t i = 0; i < FILTER_N; i++)
        assert_int_equal(filter_value(base + GRANULE * i), 0);
    assert_bits_match_counts();
}

static void
test_live_duplicate_insert_returns_stale(void **state)
{
    (void)state;
    uint64_t n0 = hp_live_count();
    struct hp_bucket *b1 = bucket(0x3331), *b2 = bucket(0x3332);
    struct hp_live_rec stale, out;
    bool had_stale;
    uintptr_t p = 0x30123400;

    struct hp_live_rec r1 = rec_for(p, b1, 10);
    struct hp_live_rec r2 = rec_for(p, b2, 20);
    assert_true(hp_live_insert(&r1, &stale, &had_stale));
    assert_false(had_stale);
    uint8_t f = filter_value(p);

    /* The address comes back without a free heapprof saw. */
    memset(&stale, 0, sizeof stale);
    assert_true(hp_live_insert(&r2, &stale, &had_stale));
    assert_true(had_stale);
    assert_int_equal(stale.ptr, p);
    assert_ptr_equal(stale.bucket, b1);
    assert_int_equal(stale.size, 10);
    assert_int_equal(stale.count_fx, r1.count_fx);
    assert_int_equal(stale.bytes, r1.bytes);
    /* One live block, one filter count. */
    assert_int_equal(hp_live_count(), n0 + 1);
    assert_int_equal(filter_value(p), f);

    assert_true(hp_live_remove(p, &out));
    assert_ptr_equal(out.bucket, b2);
    assert_int_equal(out.size, 20);
    assert_false(hp_live_remove(p, &out));
    assert_int_equal(hp_live_count(), n0);
    assert_false(hp_live_maybe((void *)p));
}

/* A record of the sample range (filtered = false) is found by address
 * and never counted in the filter; one that replaces a counted record at
 * the same address (a free heapprof did not see) takes that count away,
 * and the other way round. */
static void
test_live_unfiltered_records(void **state)
{
    (void)state;
    uint64_t n0 = hp_live_count();
    struct hp_bucket *b = bucket(0x5551);
    struct hp_live_rec stale, out;
    bool had_stale;
    uintptr_t p = 0x50123400, q = p + 64; /* one filter slot */

    struct hp_live_rec ranged = rec_for(p, b, 30);
    ranged.filtered = false;
    assert_true(hp_live_insert(&ranged, &stale, &had_stale));
    assert_int_equal(filter_value(p), 0);
    assert_false(hp_live_maybe((void *)p));
    assert_int_equal(hp_live_count(), n0 + 1);

    /* A counted neighbour, then the ranged record goes: the count stays. */
    struct hp_live_rec counted = rec_for(q, b, 31);
    assert_true(hp_live_insert(&counted, &stale, &had_stale));
    assert_int_equal(filter_value(p), 1);
    assert_true(hp_live_remove(p, &out));
    assert_false(out.filtered);
    assert_int_equal(out.size, 30);
    assert_int_equal(filter_value(p), 1);

    /* Counted replaced by ranged at q: the count goes; and back. */
    struct hp_live_rec at_q = rec_for(q, b, 32);
    at_q.filtered = false;
    assert_true(hp_live_insert(&at_q, &stale, &had_stale));
    assert_true(had_stale);
    assert_true(stale.filtered);
    assert_int_equal(filter_value(q), 0);
    assert_false(hp_live_maybe((void *)q));
    counted.size = 33;
    assert_true(hp_live_insert(&counted, &stale, &had_stale));
    assert_true(had_stale);
    assert_false(stale.filtered);
    assert_int_equal(filter_value(q), 1);
    assert_true(hp_live_remove(q, &out));
    assert_int_equal(out.size, 33);
    assert_int_equal(filter_value(q), 0);
    assert_int_equal(hp_live_count(), n0);
    assert_bits_match_counts();
}

/* ----------------------------------------------- filter saturation */

/* n distinct addresses that all fall into filter slot `slot`: one per
 * window w (see hp_live_filter_slot), at 16-byte steps within the
 * granule so that neighbours share it too. */
static void
same_slot_addresses(uint32_t slot, uintptr_t *out, int n)
{
    for (int i = 0; i < n; i++) {
        uint64_t w = 1 + (uint64_t)i / 4;
        uint64_t granule = (w << HP_LIVE_FILTER_LG) | slot;
        out[i] = (uintptr_t)(granule << HP_LIVE_GRANULE_LG) +
                 16 * (uintptr_t)(i % 4);
        assert_int_equal(hp_live_filter_slot(out[i]), slot);
    }
}

static void
fill_slot(const uintptr_t *ps, int n, struct hp_bucket *b)
{
    for (int i = 0; i < n; i++) {
        struct hp_live_rec r = rec_for(ps[i], b, (uint64_t)i);
        insert_new(&r);
    }
}

static void
test_live_filter_counts_and_saturates(void **state)
{
    (void)state;
    uint64_t n0 = hp_live_count();
    struct hp_bucket *b = bucket(0x4444);
    struct hp_live_rec out;
    static uintptr_t ps[301];

    /* 200 blocks in one slot: the counter is exact and clears again. */
    same_slot_addresses(12345, ps, 201);
    fill_slot(ps, 200, b);
    assert_int_equal(filter_value(ps[0]), 200);
    assert_false(hp_live_remove(ps[200], &out)); /* same slot, not there */
    for (int i = 0; i < 200; i++) {
        assert_true(hp_live_remove(ps[i], &out));
        assert_int_equal(out.ptr, ps[i]);
        assert_int_equal(out.size, (uint64_t)i);
        assert_int_equal(filter_value(ps[0]), 199 - i);
    }
    assert_false(hp_live_maybe((void *)ps[0]));
    assert_int_equal(hp_live_count(), n0);
    assert_bits_match_counts();

    /* 300 blocks: the counter saturates at 255 and then stays "maybe"
     * forever; no block is lost either way. */
    same_slot_addresses(SATURATED_SLOT, ps, 301);
    fill_slot(ps, 300, b);
    assert_int_equal(filter_value(ps[0]), 255);
    assert_int_equal(hp_live_count(), n0 + 300);
    for (int i = 299; i >= 0; i--) {
        assert_true(hp_live_remove(ps[i], &out));
        assert_int_equal(out.size, (uint64_t)i);
    }
    assert_int_equal(hp_live_count(), n0);
    assert_int_equal(filter_value(ps[0]), 255);
    /* The coarse counts stay exact: with nothing left in those coarse
     * slots the filter says "certainly not" again despite the sticky fine
     * slot. */
    assert_int_equal(hp_tables.coarse[hp_live_coarse_slot(ps[300])], 0);
    assert_false(hp_live_maybe((void *)ps[300]));
    assert_false(hp_live_remove(ps[300], &out));
    assert_bits_match_counts();
}

/* The coarse level: blocks of one 4 KiB granule share a coarse count that
 * is exact; a neighbour in another fine slot of the same coarse granule
 * passes the coarse test and is stopped by the fine one; a pinned address
 * stays "maybe" for good at both levels. */
static void
test_live_coarse_filter(void **state)
{
    (void)state;
    struct hp_bucket *b = bucket(0x4545);
    struct hp_live_rec out;
    uintptr_t page = 0x61234000; /* a 4 KiB granule */
    uint32_t c = hp_live_coarse_slot(page);
    uint16_t c0 = hp_tables.coarse[c];
    for (uintptr_t i = 0; i < 4; i++) {
        struct hp_live_rec r = rec_for(page + 512 * i, b, i);
        insert_new(&r);
    }
    assert_int_equal(hp_tables.coarse[c], c0 + 4);
    assert_true(hp_live_maybe((void *)(page + 512)));
    /* Same coarse granule, a fine slot nobody uses: rejected. */
    assert_int_equal(hp_live_coarse_slot(page + 256 + 512), c);
    assert_false(hp_live_maybe((void *)(page + 256 + 512)));
    /* Another coarse granule: rejected by the coarse bit alone. */
    assert_false(hp_live_maybe((void *)(page + 4096)));
    for (uintptr_t i = 0; i < 4; i++)
        assert_true(hp_live_remove(page + 512 * i, &out));
    assert_int_equal(hp_tables.coarse[c], c0);
    assert_false(hp_live_maybe((void *)page));
    assert_bits_match_counts();

    uintptr_t pinned = 0x6a000100;
    hp_live_filter_pin(pinned);
    assert_true(hp_live_maybe((void *)pinned));
    struct hp_live_rec r = rec_for(pinned, b, 1);
    insert_new(&r);
    assert_true(hp_live_remove(pinned, &out));
    assert_true(hp_live_maybe((void *)pinned));
    assert_int_equal(hp_tables.coarse[hp_live_coarse_slot(pinned)], UINT16_MAX);
}

/* ----------------------------------------------------------- foreach */

struct visit {
    uintptr_t lo, hi;
    uint64_t n, size_sum;
};

static void
visit_fn(const struct hp_live_rec *r, void *arg)
{
    struct visit *v = arg;
    if (r->ptr >= v->lo && r->ptr < v->hi) {
        v->n++;
        v->size_sum += r->size;
    }
}

static void
test_live_foreach_visits_each_once(void **state)
{
    (void)state;
    struct hp_bucket *b = bucket(0x5555);
    struct hp_live_rec out;
    uintptr_t base = 0x50000000;
    for (uint64_t i = 0; i < 3000; i++) {
        struct hp_live_rec r = rec_for(base + 48 * i, b, i);
        insert_new(&r);
    }
    struct visit v = {base, base + 48 * 3000, 0, 0};
    hp_live_foreach(visit_fn, &v);
    assert_int_equal(v.n, 3000);
    assert_int_equal(v.size_sum, 2999ull * 3000 / 2);
    for (uint64_t i = 0; i < 3000; i += 3)
        assert_true(hp_live_remove(base + 48 * i, &out));
    v.n = v.size_sum = 0;
    hp_live_foreach(visit_fn, &v);
    assert_int_equal(v.n, 2000);
    for (uint64_t i = 0; i < 3000; i++)
        if (i % 3 != 0)
            assert_true(hp_live_remove(base + 48 * i, &out));
    v.n = 0;
    hp_live_foreach(visit_fn, &v);
    assert_int_equal(v.n, 0);
}

/* hp_live_remove_plain: every record without owner or tag goes (filtered
 * or not), through the callback; owned and tagged ones stay. */
static void
test_live_remove_plain(void **state)
{
    (void)state;
    struct hp_bucket *b = bucket(0x6666);
    struct hp_live_rec out;
    uintptr_t base = 0x60000000;
    for (uint64_t i = 0; i < 1200; i++) {
        struct hp_live_rec r = rec_for(base + 64 * i, b, i);
        r.filtered = i % 2 == 0;
        if (i % 12 == 1)
            r.owner = 0x1234;
        else if (i % 12 == 5)
            r.tag = 7;
        insert_new(&r);
    }
    uint64_t before = hp_live_count();
    struct visit v = {base, base + 64 * 1200, 0, 0};
    uint64_t removed = hp_live_remove_plain(visit_fn, &v);
    assert_int_equal(v.n, 1000);
    assert_true(removed >= 1000);
    assert_int_equal(hp_live_count(), before - removed);
    assert_bits_match_counts();
    v.n = 0;
    hp_live_foreach(visit_fn, &v);
    assert_int_equal(v.n, 200);
    for (uint64_t i = 0; i < 1200; i++) {
        bool kept = i % 12 == 1 || i % 12 == 5;
        assert_int_equal(hp_live_remove(base + 64 * i, &out), kept);
    }
    assert_int_equal(hp_live_remove_plain(visit_fn, &v), 0);
    assert_bits_match_counts();
}

/* ------------------------------------------------------------ threads */

#define NTHREADS 8
#define PER_THREAD 20000

struct worker {
    pthread_barrier_t *start;
    uintptr_t base;
    struct hp_bucket *b;
    uint64_t errors;
    uint64_t kept; /* blocks left live at the end */
};

static void *
live_worker(void *arg)
{
    struct worker *w = arg;
    struct hp_live_rec stale, out;
    bool had_stale;
    pthread_barrier_wait(w->start);
    for (int round = 0; round < 4; round++) {
        for (uint64_t i = 0; i < PER_THREAD; i++) {
            struct hp_live_rec r = rec_for(w->base + 32 * i, w->b, i);
            if (!hp_live_insert(&r, &stale, &had_stale) || had_stale)
                w->errors++;
        }
        /* Remove the odd ones, then the even ones but every 8th. */
        for (uint64_t i = 1; i < PER_THREAD; i += 2)
            if (!hp_live_remove(w->base + 32 * i, &out) || out.size != i ||
                out.bucket != w->b)
                w->errors++;
        for (uint64_t i = 0; i < PER_THREAD; i += 2) {
            if (round == 3 && i % 8 == 0)
                continue;
            if (!hp_live_remove(w->base + 32 * i, &out) || out.size != i)
                w->errors++;
        }
        /* Never-inserted neighbours are not found. */
        for (uint64_t i = 0; i < 64; i++)
            if (hp_live_remove(w->base + 32 * i + 16, &out))
                w->errors++;
    }
    w->kept = PER_THREAD / 8;
    return NULL;
}

static void
test_live_threads_disjoint(void **state)
{
    (void)state;
    uint64_t n0 = hp_live_count();
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, NTHREADS);
    pthread_t tid[NTHREADS];
    struct worker w[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        w[t] = (struct worker){&start, 0x6000000000 + (uintptr_t)t * 0x10000000,
                               bucket(0x6000 + (uintptr_t)t), 0, 0};
        assert_int_equal(pthread_create(&tid[t], NULL, live_worker, &w[t]), 0);
    }
    uint64_t kept = 0;
    for (int t = 0; t < NTHREADS; t++) {
        pthread_join(tid[t], NULL);
        assert_int_equal(w[t].errors, 0);
        kept += w[t].kept;
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(hp_live_count(), n0 + kept);
    struct visit v = {0x6000000000, 0x6000000000 + NTHREADS * 0x10000000ull, 0,
                      0};
    hp_live_foreach(visit_fn, &v);
    assert_int_equal(v.n, kept);

    struct hp_live_rec out;
    for (int t = 0; t < NTHREADS; t++)
        for (uint64_t i = 0; i < PER_THREAD; i += 8) {
            assert_true(hp_live_remove(w[t].base + 32 * i, &out));
            assert_ptr_equal(out.bucket, w[t].b);
        }
    assert_int_equal(hp_live_count(), n0);
    /* Every counter these blocks raised is back down (except a slot left
     * saturated on purpose by an earlier test). */
    for (int t = 0; t < NTHREADS; t++)
        for (uint64_t i = 0; i < PER_THREAD; i++) {
            uintptr_t p = w[t].base + 32 * i;
            if (hp_live_filter_slot(p) != SATURATED_SLOT)
                assert_false(hp_live_maybe((void *)p));
        }
    /* The threads' blocks shared slots (their bases are whole windows
     * apart), so slots went 0 -> n -> 0 from several threads at once. */
    assert_bits_match_counts();
}

/* A pinned slot (the bootstrap pool's) answers "maybe" for good, whatever
 * is inserted and removed there. */
static void
test_live_pin_is_permanent(void **state)
{
    (void)state;
    uintptr_t p = 0x7001234500;
    struct hp_live_rec stale, out;
    bool had_stale;
    assert_false(hp_live_maybe((void *)p));
    hp_live_filter_pin(p);
    assert_true(hp_live_maybe((void *)p));
    assert_true(hp_live_maybe((void *)(p + 16))); /* same granule */
    struct hp_live_rec r = rec_for(p + 32, bucket(0x7777), 5);
    assert_true(hp_live_insert(&r, &stale, &had_stale));
    assert_true(hp_live_remove(p + 32, &out));
    assert_true(hp_live_maybe((void *)p));
    assert_false(hp_live_remove(p, &out));
    assert_bits_match_counts();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_live_insert_remove_roundtrip),
        cmocka_unit_test(test_live_filter_not_sampled),
        cmocka_unit_test(test_live_duplicate_insert_returns_stale),
        cmocka_unit_test(test_live_unfiltered_records),
        cmocka_unit_test(test_live_filter_counts_and_saturates),
        cmocka_unit_test(test_live_coarse_filter),
        cmocka_unit_test(test_live_foreach_visits_each_once),
        cmocka_unit_test(test_live_remove_plain),
        cmocka_unit_test(test_live_threads_disjoint),
        cmocka_unit_test(test_live_pin_is_permanent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
