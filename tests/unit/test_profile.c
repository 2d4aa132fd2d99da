/*
 * Profile collection from the real bucket table: rounding of fixed-point
 * counts, in-use = alloc - free clamped at zero, raw sample columns, empty
 * buckets left out, the overflow bucket included, deterministic order,
 * hp_profile_write producing a readable profile with the self-report, and
 * the age filter against a fake clock (the clock seam).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cmocka.h>

#include "buckets.h"
#include "heapprof.h"
#include "profile.pb-c.h"
#include "peak.h"
#include "profile.h"
#include "sampler.h"
#include "test_sink.h"

#define ONE ((uint64_t)HP_COUNT_ONE)

__attribute__((noinline)) int
hp_prof_func_a(int x)
{
    return x + 1;
}

__attribute__((noinline)) int
hp_prof_func_b(int x)
{
    return hp_prof_func_a(x) + 1;
}

static const struct hp_profile_entry *
find_entry(const struct hp_profile_data *d, const void *key)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->e[i].key == key)
            return &d->e[i];
    return NULL;
}

static void
test_profile_values(void **state)
{
    (void)state;
    uintptr_t pcs[3] = { 0x1001, 0x2002, 0x3003 };
    struct hp_bucket *b = hp_bucket_get(pcs, 3);
    assert_non_null(b);
    assert_int_equal(b->nframes, 3);
    /* 3.5 + 1 objects allocated, 2 freed. */
    hp_bucket_add_alloc(b, 3 * ONE + ONE / 2, 3500, 1000);
    hp_bucket_add_alloc(b, ONE, 1000, 1000);
    hp_bucket_add_free(b, 2 * ONE, 2000, 1000);

    struct hp_profile_data d;
    assert_int_equal(hp_profile_collect(&d), 0);
    const struct hp_profile_entry *e = find_entry(&d, b);
    assert_non_null(e);
    assert_ptr_equal(e->pcs, b->pcs);
    assert_int_equal(e->nframes, 3);
    assert_int_equal(e->v[HP_V_ALLOC_OBJECTS], 5); /* round(4.5) */
    assert_int_equal(e->v[HP_V_ALLOC_SPACE], 4500);
    assert_int_equal(e->v[HP_V_INUSE_OBJECTS], 3); /* round(2.5) */
    assert_int_equal(e->v[HP_V_INUSE_SPACE], 2500);
    assert_int_equal(e->raw[HP_V_ALLOC_OBJECTS], 2);
    assert_int_equal(e->raw[HP_V_ALLOC_SPACE], 2000);
    assert_int_equal(e->raw[HP_V_INUSE_OBJECTS], 1);
    assert_int_equal(e->raw[HP_V_INUSE_SPACE], 1000);
    assert_int_equal(d.rate, hp_rate_get());
    assert_true(d.time_ns > 1600000000ull * 1000000000ull);
    assert_int_equal(d.duration_ns, 0);
    hp_profile_data_free(&d);
    assert_null(d.e);
}

/* The peak capture follows the running in-use total with a margin of
 * max(1/64, 2 periods): growth within the margin keeps the old capture,
 * growth past it takes a new one; frees never do; reset restarts. */
static void
test_profile_peak_capture(void **state)
{
    (void)state;
    hp_rate_set(1000);
    uintptr_t pcs[2] = { 0x7001, 0x7002 };
    struct hp_bucket *b = hp_bucket_get(pcs, 2);
    hp_peak_reset();
    uint64_t base = hp_peak_inuse_bytes(), captured, when;

    /* 1 MB in: past the margin of anything before -> captured. */
    hp_bucket_add_alloc(b, 1000 * ONE, 1000000, 1000000);
    hp_peak_note_alloc(1000000);
    hp_peak_captured(&captured, &when);
    assert_int_equal(captured, base + 1000000);
    assert_true(when > 0);
    /* +10 kB is under 1/64 of 1 MB: no new capture, but the highest
     * point is exact. */
    hp_bucket_add_alloc(b, 10 * ONE, 10000, 10000);
    hp_peak_note_alloc(10000);
    hp_peak_captured(&captured, &when);
    assert_int_equal(captured, base + 1000000);
    assert_int_equal(hp_peak_highest_bytes(), base + 1010000);
    /* A reader of the peak profile now is served the present, which is
     * above the last capture. */
    struct hp_profile_data d;
    assert_int_equal(hp_profile_collect_peak(&d), 0);
    const struct hp_profile_entry *e = find_entry(&d, b);
    assert_non_null(e);
    assert_int_equal(e->v[HP_V_INUSE_SPACE], 1010000);
    hp_profile_data_free(&d);
    hp_peak_captured(&captured, &when);
    assert_int_equal(captured, base + 1010000);
    /* Everything freed: the peak profile still shows the 1.01 MB, and
     * the highest point stays. */
    hp_bucket_add_free(b, 1010 * ONE, 1010000, 1010000);
    hp_peak_note_free(1010000);
    assert_int_equal(hp_peak_highest_bytes(), base + 1010000);
    assert_int_equal(hp_profile_collect_peak(&d), 0);
    e = find_entry(&d, b);
    assert_non_null(e);
    assert_int_equal(e->v[HP_V_INUSE_SPACE], 1010000);
    assert_int_equal(e->v[HP_V_INUSE_OBJECTS], 1010);
    assert_int_equal(e->v[HP_V_ALLOC_SPACE], 1010000);
    assert_int_equal(e->raw[HP_V_INUSE_OBJECTS], 2);
    hp_profile_data_free(&d);
    /* The plain heap profile has nothing in use there, and still the
     * allocations made from it (Go keeps a freed stack's alloc columns). */
    assert_int_equal(hp_profile_collect(&d), 0);
    e = find_entry(&d, b);
    assert_non_null(e);
    assert_int_equal(e->v[HP_V_INUSE_SPACE], 0);
    assert_int_equal(e->v[HP_V_INUSE_OBJECTS], 0);
    assert_int_equal(e->v[HP_V_ALLOC_SPACE], 1010000);
    assert_int_equal(e->v[HP_V_ALLOC_OBJECTS], 1010);
    hp_profile_data_free(&d);
    /* A higher peak replaces it. */
    hp_bucket_add_alloc(b, 2000 * ONE, 2000000, 2000000);
    hp_peak_note_alloc(2000000);
    hp_peak_captured(&captured, &when);
    assert_int_equal(captured, base + 2000000);
    /* Reset: the peak restarts from what is in use now. */
    hp_bucket_add_free(b, 2000 * ONE, 2000000, 2000000);
    hp_peak_note_free(2000000);
    hp_peak_reset();
    assert_int_equal(hp_peak_highest_bytes(), hp_peak_inuse_bytes());
    assert_int_equal(hp_profile_collect_peak(&d), 0);
    /* Nothing of b is live now, so nothing of it was at the new peak:
     * its row is all zeros (both pairs of columns hold the peak's live
     * blocks). */
    e = find_entry(&d, b);
    assert_non_null(e);
    for (int k = 0; k < HP_NVALUES; k++)
        assert_int_equal(e->v[k], 0);
    hp_profile_data_free(&d);
}

static void
test_profile_rounding_down(void **state)
{
    (void)state;
    uintptr_t pcs[2] = { 0x1101, 0x2202 };
    struct hp_bucket *b = hp_bucket_get(pcs, 2);
    /* 1.49 objects -> 1. */
    hp_bucket_add_alloc(b, ONE + (ONE * 49) / 100, 149, 100);
    struct hp_profile_data d;
    assert_int_equal(hp_profile_collect(&d), 0);
    const struct hp_profile_entry *e = find_entry(&d, b);
    assert_non_null(e);
    assert_int_equal(e->v[HP_V_ALLOC_OBJECTS], 1);
    assert_int_equal(e->v[HP_V_INUSE_OBJECTS], 1);
    assert_int_equal(e->v[HP_V_INUSE_SPACE], 149);
    hp_profile_data_free(&d);
}

static void
test_profile_inuse_clamped(void **state)
{
    (void)state;
    uintptr_t pcs[2] = { 0x4004, 0x5005 };
    struct hp_bucket *b = hp_bucket_get(pcs, 2);
    /* More freed than allocated (weights of a rate change, or a race):
     * in-use never goes negative. */
    hp_bucket_add_alloc(b, ONE, 100, 100);
    hp_bucket_add_free(b, 2 * ONE, 300, 200);
    hp_bucket_add_free(b, ONE, 1, 1);
    struct hp_profile_data d;
    assert_int_equal(hp_profile_collect(&d), 0);
    const struct hp_profile_entry *e = find_entry(&d, b);
    assert_non_null(e);
    assert_int_equal(e->v[HP_V_ALLOC_OBJECTS], 1);
    assert_int_equal(e->v[HP_V_ALLOC_SPACE], 100);
    assert_int_equal(e->v[HP_V_INUSE_OBJECTS], 0);
    assert_int_equal(e->v[HP_V_INUSE_SPACE], 0);
    assert_int_equal(e->raw[HP_V_INUSE_OBJECTS], 0);
    assert_int_equal(e->raw[HP_V_INUSE_SPACE], 0);
    hp_profile_data_free(&d);
}

static void
test_profile_empty_bucket_left_out(void **state)
{
    (void)state;
    uintptr_t pcs[1] = { 0x6006 };
    struct hp_bucket *b = hp_bucket_get(pcs, 1);
    assert_non_null(b);
    struct hp_profile_data d;
    assert_int_equal(hp_profile_collect(&d), 0);
    assert_null(find_entry(&d, b));
    hp_profile_data_free(&d);
}

static void
test_profile_overflow_included(void **state)
{
    (void)state;
    struct hp_bucket *ov = hp_bucket_overflow();
    assert_non_null(ov);
    assert_int_equal(ov->nframes, 0);
    hp_bucket_add_alloc(ov, 7 * ONE, 7000, 7000);
    struct hp_profile_data d;
    assert_int_equal(hp_profile_collect(&d), 0);
    const struct hp_profile_entry *e = find_entry(&d, ov);
    assert_non_null(e);
    assert_int_equal(e->nframes, 0);
    assert_int_equal(e->v[HP_V_ALLOC_OBJECTS], 7);
    assert_int_equal(e->v[HP_V_INUSE_SPACE], 7000);
    /* Exactly once. */
    size_t seen = 0;
    for (size_t i = 0; i < d.n; i++)
        seen += d.e[i].key == ov;
    assert_int_equal(seen, 1);
    hp_profile_data_free(&d);
}

static void
test_profile_sorted(void **state)
{
    (void)state;
    for (uintptr_t i = 0; i < 20; i++) {
        uintptr_t pcs[2] = { 0x7000 + i, 0x8008 };
        struct hp_bucket *b = hp_bucket_get(pcs, 2);
        hp_bucket_add_alloc(b, ONE, 100 * ((i * 7) % 20 + 1), 64);
        if (i % 3 == 0)
            hp_bucket_add_free(b, ONE, 100 * ((i * 7) % 20 + 1), 64);
    }
    struct hp_profile_data d;
    assert_int_equal(hp_profile_collect(&d), 0);
    assert_true(d.n >= 20);
    for (size_t i = 1; i < d.n; i++) {
        const struct hp_profile_entry *a = &d.e[i - 1], *b = &d.e[i];
        assert_true(a->v[HP_V_INUSE_SPACE] >= b->v[HP_V_INUSE_SPACE]);
        if (a->v[HP_V_INUSE_SPACE] == b->v[HP_V_INUSE_SPACE])
            assert_true(a->v[HP_V_ALLOC_SPACE] >= b->v[HP_V_ALLOC_SPACE]);
    }
    /* Same order on a second collection. */
    struct hp_profile_data d2;
    assert_int_equal(hp_profile_collect(&d2), 0);
    assert_int_equal(d2.n, d.n);
    for (size_t i = 0; i < d.n; i++)
        assert_ptr_equal(d.e[i].key, d2.e[i].key);
    hp_profile_data_free(&d);
    hp_profile_data_free(&d2);
}

static Perftools__Profiles__Profile *
write_and_unpack(enum heapprof_profile which)
{
    struct hp_test_sink m = {0};
    struct heapprof_sink sink = hp_test_sink(&m);
    assert_int_equal(hp_profile_write(which, &sink), 0);
    size_t rawlen;
    unsigned char *raw = hp_test_gunzip(m.p, m.n, &rawlen);
    assert_non_null(raw);
    Perftools__Profiles__Profile *p =
        perftools__profiles__profile__unpack(NULL, rawlen, raw);
    free(raw);
    hp_test_sink_free(&m);
    assert_non_null(p);
    return p;
}

static void
test_profile_write_self_report(void **state)
{
    (void)state;
    uintptr_t pcs[2] = { (uintptr_t)&hp_prof_func_a + 1,
                         (uintptr_t)&hp_prof_func_b + 1 };
    struct hp_bucket *b = hp_bucket_get(pcs, 2);
    hp_bucket_add_alloc(b, 2 * ONE, 4096, 4096);

    struct hp_profile_data d;
    assert_int_equal(hp_profile_collect(&d), 0);
    size_t n = d.n;
    hp_profile_data_free(&d);

    Perftools__Profiles__Profile *p = write_and_unpack(HEAPPROF_PROFILE_HEAP);
    assert_int_equal(p->n_sample, n);
    assert_int_equal(p->default_sample_type, 0);
    assert_int_equal(p->period, (int64_t)hp_rate_get());
    assert_true(p->n_comment >= 4);
    assert_string_equal(p->string_table[0], "");
    const char *c0 = p->string_table[p->comment[0]];
    assert_true(strncmp(c0, "heapprof 0.1.0 rate=", 20) == 0);
    int found_budget = 0, found_buckets = 0, found_samples = 0;
    for (size_t i = 0; i < p->n_comment; i++) {
        const char *c = p->string_table[p->comment[i]];
        found_budget += strstr(c, "budget") != NULL;
        found_buckets += strstr(c, "overflow") != NULL;
        found_samples += strstr(c, "dropped=") != NULL;
    }
    assert_true(found_budget && found_buckets && found_samples);

    /* The sample of our bucket has our two functions, leaf first. */
    int found = 0;
    for (size_t i = 0; i < p->n_sample; i++) {
        const Perftools__Profiles__Sample *s = p->sample[i];
        if (s->n_location_id != 2)
            continue;
        const Perftools__Profiles__Location *l =
            p->location[s->location_id[0] - 1];
        if (l->address != (uintptr_t)&hp_prof_func_a)
            continue;
        assert_true(l->n_line >= 1);
        const Perftools__Profiles__Function *f =
            p->function[l->line[l->n_line - 1]->function_id - 1];
        assert_string_equal(p->string_table[f->name], "hp_prof_func_a");
        assert_int_equal(s->value[HP_V_ALLOC_OBJECTS], 2);
        assert_int_equal(s->value[HP_V_INUSE_SPACE], 4096);
        found = 1;
    }
    assert_true(found);
    perftools__profiles__profile__free_unpacked(p, NULL);

    p = write_and_unpack(HEAPPROF_PROFILE_ALLOCS);
    assert_string_equal(p->string_table[p->default_sample_type],
                        "alloc_space");
    perftools__profiles__profile__free_unpacked(p, NULL);
}

/* ------------------------------------------------ the age filter */

/* The clock seam (internal.h): the test sets the time. */
static uint64_t fake_now;

static uint64_t
fake_clock(void)
{
    return fake_now;
}

static char aged_blocks[3][512];

__attribute__((noinline)) static void
aged_old_site(void)
{
    heapprof_on_alloc(aged_blocks[0], sizeof(aged_blocks[0]));
    heapprof_on_alloc(aged_blocks[1], sizeof(aged_blocks[1]));
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void
aged_young_site(void)
{
    heapprof_on_alloc(aged_blocks[2], sizeof(aged_blocks[2]));
    __asm__ volatile("" ::: "memory");
}

/* In-use bytes of the blocks at least min_age_s old (plus ns) at now_s. */
static int64_t
aged_inuse(uint64_t now_s, uint64_t min_age_s, uint64_t plus_ns)
{
    fake_now = now_s * 1000000000u;
    struct hp_profile_data d;
    assert_int_equal(
        hp_profile_collect_aged(&d, min_age_s * 1000000000u + plus_ns), 0);
    int64_t bytes = 0;
    for (size_t i = 0; i < d.n; i++) {
        /* Both pairs of columns describe the live blocks. */
        assert_int_equal(d.e[i].v[HP_V_ALLOC_SPACE],
                         d.e[i].v[HP_V_INUSE_SPACE]);
        bytes += d.e[i].v[HP_V_INUSE_SPACE];
    }
    hp_profile_data_free(&d);
    return bytes;
}

/* min_age keeps the blocks born at or before now - min_age, whatever the
 * real time: two blocks born at 100 s, one at 200 s. */
static void
test_profile_age_filter(void **state)
{
    (void)state;
    uint64_t rate = heapprof_get_rate();
    assert_int_equal(heapprof_set_rate(1), HEAPPROF_OK);
    hp_now_mono = fake_clock;
    fake_now = 100 * 1000000000ull;
    aged_old_site();
    fake_now = 200 * 1000000000ull;
    aged_young_site();

    assert_int_equal(aged_inuse(250, 100, 0), 1024);
    assert_int_equal(aged_inuse(250, 50, 0), 1536);  /* born exactly then */
    assert_int_equal(aged_inuse(250, 50, 1), 1024);  /* 1 ns too young */
    assert_int_equal(aged_inuse(250, 150, 0), 1024);
    assert_int_equal(aged_inuse(250, 150, 1), 0);
    assert_int_equal(aged_inuse(250, 300, 0), 0);    /* older than the run */
    assert_int_equal(aged_inuse(250, 0, 0), 1536);

    for (size_t i = 0; i < 3; i++)
        heapprof_on_free(aged_blocks[i]);
    assert_int_equal(aged_inuse(250, 0, 0), 0);
    hp_now_mono = hp_clock_mono_ns;
    heapprof_set_rate(rate);
}

int
main(void)
{
    if (hp_prof_func_b(0) != 2)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_profile_values),
        cmocka_unit_test(test_profile_peak_capture),
        cmocka_unit_test(test_profile_rounding_down),
        cmocka_unit_test(test_profile_inuse_clamped),
        cmocka_unit_test(test_profile_empty_bucket_left_out),
        cmocka_unit_test(test_profile_overflow_included),
        cmocka_unit_test(test_profile_sorted),
        cmocka_unit_test(test_profile_write_self_report),
        cmocka_unit_test(test_profile_age_filter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
