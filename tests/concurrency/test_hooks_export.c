/*
 * Concurrency test of the recording and export paths: 8 threads report
 * allocations and frees of made-up blocks through heapprof_on_alloc /
 * heapprof_on_free from 16 different call stacks each (so bucket inserts
 * race), and now and then change the rate; another thread flips the rate
 * between 1 and 4096; another writes the heap profile to a buffer again
 * and again (plain, peak and age-filtered in turn). The workers switch
 * their labels as they go, so label sets are interned concurrently, and
 * the in-use total crosses the peak margin again and again, so peak
 * captures race with the recording and the peak profile's readers. At the end the live-block table, the bucket counters and the
 * self-report counters must agree exactly, and once every block is freed
 * every bucket's frees must equal its allocations.
 *
 * Built and run in the TSan configuration as well (label concurrency);
 * there any data race fails the test (TSAN_OPTIONS=halt_on_error=1).
 */
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buckets.h"
#include "heapprof.h"
#include "internal.h"
#include "live.h"
#include "stats.h"

#define NTHREADS 8
#define ROUNDS 1000
#define BLOCKS 64   /* blocks per round and thread */
#define NSTACKS 16  /* distinct call stacks per thread */

static int failures;

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                  \
            failures++;                                                      \
        }                                                                    \
    } while (0)

#define CHECK_EQ(a, b)                                                       \
    do {                                                                     \
        unsigned long long a_ = (unsigned long long)(a);                    \
        unsigned long long b_ = (unsigned long long)(b);                    \
        if (a_ != b_) {                                                      \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%llu != %llu)\n", \
                    __FILE__, __LINE__, #a, #b, a_, b_);                     \
            failures++;                                                      \
        }                                                                    \
    } while (0)

static atomic_int stop_helpers;
static atomic_uint_fast64_t writes_ok, rate_flips;

/* Distinct stacks: the recursion depth decides the stack. */
static __attribute__((noinline)) void
nest(int depth, void *p, size_t size)
{
    if (depth > 0)
        nest(depth - 1, p, size);
    else
        heapprof_on_alloc(p, size);
    __asm__ volatile("" ::: "memory"); /* no tail calls: keep the frames */
}

/*
 * Workers never exit: they report "done" and block until the process
 * ends. A thread that unwound with libunwind 1.6 frees its trace cache
 * from a pthread key destructor at exit, and under GCC 12's TSan that
 * destructor runs after TSan has torn the thread down and crashes in the
 * pthread_mutex_lock interceptor (a toolchain problem, not heapprof's).
 */
static pthread_mutex_t park_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t park_cond = PTHREAD_COND_INITIALIZER;
static unsigned workers_done;

static void
park(void)
{
    pthread_mutex_lock(&park_lock);
    workers_done++;
    pthread_cond_broadcast(&park_cond);
    for (;;)
        pthread_cond_wait(&park_cond, &park_lock);
}

static void
wait_workers(void)
{
    pthread_mutex_lock(&park_lock);
    while (workers_done < NTHREADS)
        pthread_cond_wait(&park_cond, &park_lock);
    pthread_mutex_unlock(&park_lock);
}

static void *
block(unsigned thread, unsigned i)
{
    return (void *)(uintptr_t)(0x3C0000000000ull + (uint64_t)thread * 0x10000000 +
                               (uint64_t)i * 48);
}

static void *
worker(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    for (unsigned r = 0; r < ROUNDS; r++) {
        if (r % 10 == 0) {
            static const char *const routes[4] = {"/a", "/b", "/c", "/d"};
            CHECK(heapprof_labels_set("route", routes[(r / 10 + id) % 4]) ==
                  HEAPPROF_OK);
            if (r % 20 == 0)
                CHECK(heapprof_labels_set("half", r % 40 ? "x" : NULL) ==
                      HEAPPROF_OK);
        }
        for (unsigned i = 0; i < BLOCKS; i++)
            nest((int)((i + id) % NSTACKS), block(id, i),
                 (size_t)(1 + (i * 37 + r) % 9000));
        if (r % 50 == 25)
            heapprof_set_rate(r % 100 < 50 ? 4096 : 1);
        for (unsigned i = 0; i < BLOCKS; i++)
            heapprof_on_free(block(id, i));
    }
    /* Leave the last round's blocks live (those that were sampled). */
    for (unsigned i = 0; i < BLOCKS; i++)
        nest((int)(i % NSTACKS), block(id, i), 100 + i);
    park();
    return NULL;
}

struct membuf {
    unsigned char *p;
    size_t cap, len;
};

static int
membuf_write(void *ctx, const void *data, size_t len)
{
    struct membuf *m = ctx;
    if (len > m->cap - m->len)
        return -1;
    memcpy(m->p + m->len, data, len);
    m->len += len;
    return 0;
}

static void *
rate_flipper(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 200000};
    while (!atomic_load(&stop_helpers)) {
        uint64_t f = atomic_fetch_add(&rate_flips, 1);
        heapprof_set_rate(f % 2 ? 4096 : 1);
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void *
writer(void *arg)
{
    (void)arg;
    size_t cap = 1 << 22;
    unsigned char *buf = malloc(cap);
    if (buf == NULL)
        return NULL;
    unsigned turn = 0;
    do {
        size_t n = 0;
        int rc;
        if (turn++ % 3 == 2) {
            struct membuf m = {buf, cap, 0};
            struct heapprof_sink sink = {membuf_write, &m};
            rc = heapprof_write_aged(1, &sink);
            n = m.len;
        } else {
            rc = heapprof_write_buffer(buf, cap, &n,
                                       turn % 3 == 1 ? HEAPPROF_PROFILE_HEAP
                                                     : HEAPPROF_PROFILE_PEAK);
        }
        if (rc == HEAPPROF_OK && n > 2 && buf[0] == 0x1f && buf[1] == 0x8b)
            atomic_fetch_add(&writes_ok, 1);
        else
            fprintf(stderr, "write_buffer: %s (%d), %zu bytes\n",
                    heapprof_strerror(rc), rc, n);
    } while (!atomic_load(&stop_helpers));
    free(buf);
    return NULL;
}

struct totals {
    uint64_t alloc_samples, free_samples;
};

static struct totals
all_totals(void)
{
    struct totals t = {0, 0};
    for (struct hp_bucket *b = hp_buckets_all(); b != NULL; b = b->all_next) {
        t.alloc_samples += b->alloc_samples;
        t.free_samples += b->free_samples;
    }
    t.alloc_samples += hp_bucket_overflow()->alloc_samples;
    t.free_samples += hp_bucket_overflow()->free_samples;
    return t;
}

struct live_check {
    uint64_t n, outside;
};

static void
live_fn(const struct hp_live_rec *r, void *arg)
{
    struct live_check *c = arg;
    c->n++;
    /* Only the blocks left live at the end may still be recorded. */
    uintptr_t lo = (uintptr_t)block(0, 0);
    uintptr_t off = r->ptr - lo;
    if (r->ptr < lo || off / 0x10000000 >= NTHREADS ||
        (off % 0x10000000) / 48 >= BLOCKS || (off % 0x10000000) % 48 != 0)
        c->outside++;
}

int
main(void)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    heapprof_set_rate(1);
    uint64_t live0 = hp_live_count();
    uint64_t samples0 = hp_stat_get(&hp_stats.samples);
    uint64_t matched0 = hp_stat_get(&hp_stats.frees_matched);
    uint64_t dropped0 = hp_stat_get(&hp_stats.samples_dropped);
    struct totals tot0 = all_totals();

    pthread_t w[NTHREADS], flip, wr;
    CHECK(pthread_create(&wr, NULL, writer, NULL) == 0);
    CHECK(pthread_create(&flip, NULL, rate_flipper, NULL) == 0);
    for (unsigned i = 0; i < NTHREADS; i++)
        CHECK(pthread_create(&w[i], NULL, worker, (void *)(uintptr_t)i) == 0);
    wait_workers();
    /* At least two complete profiles (the first one started with the
     * workers; under TSan one write takes a good part of a second). */
    while (atomic_load(&writes_ok) < 2) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&stop_helpers, 1);
    pthread_join(flip, NULL);
    pthread_join(wr, NULL);
    heapprof_set_rate(1);

    /* Live table, buckets and self-report agree. */
    struct totals tot = all_totals();
    uint64_t sampled = tot.alloc_samples - tot0.alloc_samples;
    uint64_t freed = tot.free_samples - tot0.free_samples;
    uint64_t live = hp_live_count() - live0;
    printf("sampled %llu, freed %llu, live %llu, profiles written %llu, "
           "rate flips %llu\n",
           (unsigned long long)sampled, (unsigned long long)freed,
           (unsigned long long)live, (unsigned long long)atomic_load(&writes_ok),
           (unsigned long long)atomic_load(&rate_flips));
    CHECK(sampled > (uint64_t)NTHREADS * BLOCKS);
    CHECK(live <= (uint64_t)NTHREADS * BLOCKS);
    CHECK_EQ(sampled - freed, live);
    CHECK_EQ(hp_stat_get(&hp_stats.samples) - samples0, sampled);
    CHECK_EQ(hp_stat_get(&hp_stats.frees_matched) - matched0, freed);
    CHECK_EQ(hp_stat_get(&hp_stats.samples_dropped), dropped0);
    struct live_check lc = {0, 0};
    hp_live_foreach(live_fn, &lc);
    CHECK_EQ(lc.n, hp_live_count());
    CHECK_EQ(lc.outside, 0);

    /* Free what is left: every bucket balances exactly. */
    for (unsigned t = 0; t < NTHREADS; t++)
        for (unsigned i = 0; i < BLOCKS; i++)
            heapprof_on_free(block(t, i));
    CHECK_EQ(hp_live_count(), live0);
    for (struct hp_bucket *b = hp_buckets_all(); b != NULL; b = b->all_next) {
        CHECK_EQ(b->alloc_samples, b->free_samples);
        CHECK_EQ(b->alloc_count_fx, b->free_count_fx);
        CHECK_EQ(b->alloc_bytes, b->free_bytes);
        CHECK_EQ(b->alloc_raw_bytes, b->free_raw_bytes);
    }
    struct hp_bucket *ov = hp_bucket_overflow();
    CHECK_EQ(ov->alloc_samples, ov->free_samples);

    /* Still exportable. */
    size_t needed = 0;
    CHECK(heapprof_write_buffer(NULL, 0, &needed, HEAPPROF_PROFILE_ALLOCS) ==
          HEAPPROF_ERANGE);
    CHECK(needed > 0);

    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%s in %.2f s\n", failures ? "FAILED" : "passed",
           (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    fflush(stdout);
    /* The parked workers end with the process. */
    exit(failures ? 1 : 0);
}
