#include "peak.h"

#include <pthread.h>

#include "buckets.h"
#include "sampler.h"
#include "stats.h"

/* The running totals (inuse, highest, captured) are on hp_stats's line
 * (stats.h). */
static uint64_t captured_wall; /* wall clock of the last capture */
static pthread_mutex_t capture_lock = PTHREAD_MUTEX_INITIALIZER;
static void (*peak_hook)(void); /* atomic; snapshot.c's */

static uint64_t
margin(uint64_t last)
{
    uint64_t m = last / 64, floor = 2 * hp_rate_get();
    return m > floor ? m : floor;
}

static uint64_t
load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void
store(uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}

static uint64_t
sub0(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

/* One bucket's in-use values into its peak fields. */
static void
capture_bucket(struct hp_bucket *b)
{
    struct hp_bucket_counts c;
    hp_bucket_read(b, &c);
    store(&b->peak_count_fx, sub0(c.alloc_fx, c.free_fx));
    store(&b->peak_bytes, sub0(c.alloc_bytes, c.free_bytes));
    store(&b->peak_samples, sub0(c.alloc_samples, c.free_samples));
    store(&b->peak_raw_bytes, sub0(c.alloc_raw_bytes, c.free_raw_bytes));
}

/* With capture_lock held. */
static void
capture_locked(uint64_t total)
{
    /* Buckets made after this pass start with zero peak fields (their
     * memory is fresh), which is what they held at this capture. */
    for (struct hp_bucket *b = hp_buckets_all(); b != NULL;
         b = __atomic_load_n(&b->all_next, __ATOMIC_ACQUIRE))
        capture_bucket(b);
    struct hp_bucket *ov = hp_bucket_overflow();
    if (ov != NULL)
        capture_bucket(ov);
    store(&captured_wall, hp_now_wall_ns());
    __atomic_store_n(&hp_stats.captured, total, __ATOMIC_RELEASE);
}

void
hp_peak_set_hook(void (*hook)(void))
{
    __atomic_store_n(&peak_hook, hook, __ATOMIC_RELEASE);
}

void
hp_peak_arm(uint64_t bytes)
{
    store(&hp_stats.peak_trigger, bytes);
}

/* In-use reached the trigger: the first thread to see it disarms it and
 * tells the snapshot writer (a flag and a wake-up, never a write here). */
static void
fire_trigger(uint64_t trigger)
{
    if (!__atomic_compare_exchange_n(&hp_stats.peak_trigger, &trigger,
                                     UINT64_MAX, false, __ATOMIC_RELAXED,
                                     __ATOMIC_RELAXED))
        return;
    void (*hook)(void) = __atomic_load_n(&peak_hook, __ATOMIC_ACQUIRE);
    if (hook != NULL)
        hook();
}

void
hp_peak_note_alloc(uint64_t bytes)
{
    uint64_t now = __atomic_add_fetch(&hp_stats.inuse, bytes, __ATOMIC_RELAXED);
    uint64_t trigger = load(&hp_stats.peak_trigger);
    if (HP_UNLIKELY(now >= trigger))
        fire_trigger(trigger);
    uint64_t high = load(&hp_stats.highest);
    while (now > high &&
           !__atomic_compare_exchange_n(&hp_stats.highest, &high, now, true,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    uint64_t last = load(&hp_stats.captured);
    if (HP_LIKELY(now < last + margin(last)))
        return;
    if (pthread_mutex_trylock(&capture_lock) != 0)
        return;
    last = load(&hp_stats.captured);
    now = load(&hp_stats.inuse);
    if (now >= last + margin(last))
        capture_locked(now);
    pthread_mutex_unlock(&capture_lock);
}

void
hp_peak_note_free(uint64_t bytes)
{
    /* Never below zero: a free's bytes are those its allocation added. */
    uint64_t v = load(&hp_stats.inuse);
    while (!__atomic_compare_exchange_n(&hp_stats.inuse, &v, sub0(v, bytes),
                                        true, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED)) {
    }
}

void
hp_peak_reset(void)
{
    pthread_mutex_lock(&capture_lock);
    uint64_t now = load(&hp_stats.inuse);
    store(&hp_stats.highest, now);
    capture_locked(now);
    pthread_mutex_unlock(&capture_lock);
}

void
hp_peak_refresh_locked(void)
{
    /* The present is a candidate too: a reader must never be served a
     * peak below what is in use as it asks (growth within the margin since
     * the last capture would otherwise be missing). */
    uint64_t now = load(&hp_stats.inuse);
    if (now > load(&hp_stats.captured))
        capture_locked(now);
}

uint64_t
hp_peak_highest_bytes(void)
{
    return load(&hp_stats.highest);
}

uint64_t
hp_peak_inuse_bytes(void)
{
    return load(&hp_stats.inuse);
}

void
hp_peak_captured_locked(uint64_t *bytes, uint64_t *wall_ns)
{
    *bytes = load(&hp_stats.captured);
    *wall_ns = load(&captured_wall);
}

void
hp_peak_refreshed(uint64_t *bytes, uint64_t *wall_ns)
{
    pthread_mutex_lock(&capture_lock);
    hp_peak_refresh_locked();
    hp_peak_captured_locked(bytes, wall_ns);
    pthread_mutex_unlock(&capture_lock);
}

void
hp_peak_captured(uint64_t *bytes, uint64_t *wall_ns)
{
    pthread_mutex_lock(&capture_lock);
    hp_peak_captured_locked(bytes, wall_ns);
    pthread_mutex_unlock(&capture_lock);
}

void
hp_peak_lock(void)
{
    pthread_mutex_lock(&capture_lock);
}

void
hp_peak_unlock(void)
{
    pthread_mutex_unlock(&capture_lock);
}

void
hp_peak_postfork_child(void)
{
    pthread_mutex_init(&capture_lock, NULL);
}
