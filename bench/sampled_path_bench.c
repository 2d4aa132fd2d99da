/*
 * Cost of heapprof's sampled path: run under LD_PRELOAD=libheapprof.so with
 * HEAPPROF_RATE=1 (every allocation sampled: stack capture, bucket update,
 * live-table insert; and the matching live-table removal on free) and with
 * HEAPPROF_RATE=0 (the interposer alone). bench/run.sh alternates the two
 * and takes the difference of the medians.
 *
 * Each malloc(64) / free pair is made from the bottom of a call stack about
 * 64 frames deep (recursion), from one of 8 distinct leaf call sites, so the
 * capture walks a full HEAPPROF_STACK_DEPTH=64 stack and the bucket table
 * sees a handful of hot stacks, as a server's hot allocation sites do.
 * malloc and free are timed one by one (clock_gettime, whose own cost is
 * the same in both runs) for the percentiles.
 *
 * Prints: pair_wall_ns pair_cpu_ns malloc_p50 malloc_p99 free_p50 free_p99
 * (means per pair over the timed loop, in wall and thread CPU time, then
 * per-call percentiles in ns; on a loaded machine the CPU mean is the
 * steadier figure and the p99 includes preemption).
 *
 * With a third argument, that many threads run the same loop at once (each
 * at the same depth) and the means are over all of them: what a sample
 * costs when the lines heapprof shares between threads move between
 * cores. The percentiles are then not taken (printed as 0).
 *
 * usage: sampled_path_bench [pairs] [depth] [threads]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HIST_MAX 200000 /* ns; larger values land in the last bin */

static int threads = 1;
static uint32_t hist_malloc[HIST_MAX + 1];
static uint32_t hist_free[HIST_MAX + 1];
static __thread volatile uintptr_t sink;

static inline uint64_t
clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t
now_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

static void
add(uint32_t *hist, uint64_t ns)
{
    hist[ns < HIST_MAX ? ns : HIST_MAX]++;
}

static uint64_t
percentile(const uint32_t *hist, uint64_t total, double q)
{
    if (threads > 1)
        return 0; /* not taken */
    uint64_t want = (uint64_t)((double)total * q);
    uint64_t seen = 0;
    for (uint64_t i = 0; i <= HIST_MAX; i++) {
        seen += hist[i];
        if (seen > want)
            return i;
    }
    return HIST_MAX;
}

static long pairs;
static __thread int measuring;

/* One timed pair. Eight copies give eight distinct leaf call sites. */
#define LEAF(n)                                                                \
    static void __attribute__((noinline)) leaf##n(void)                        \
    {                                                                          \
        uint64_t t0 = now_ns();                                                \
        char *p = malloc(64);                                                  \
        uint64_t t1 = now_ns();                                                \
        p[0] = (char)n;                                                        \
        sink += (uintptr_t)p;                                                  \
        free(p);                                                               \
        uint64_t t2 = now_ns();                                                \
        if (measuring && threads == 1) {                                       \
            add(hist_malloc, t1 - t0);                                         \
            add(hist_free, t2 - t1);                                           \
        }                                                                      \
    }
// clang-format off
LEAF(0) LEAF(1) LEAF(2) LEAF(3) LEAF(4) LEAF(5) LEAF(6) LEAF(7)

static void (*const leaves[8])(void) = {leaf0, leaf1, leaf2, leaf3,
                                        leaf4, leaf5, leaf6, leaf7};
// clang-format on

static void
loop(long n)
{
    for (long i = 0; i < n; i++)
        leaves[i & 7]();
}

static __thread double elapsed_s, cpu_s;

static void __attribute__((noinline)) descend(int depth)
{
    if (depth > 0) {
        descend(depth - 1);
        __asm__ volatile("" ::: "memory"); /* no tail call */
        return;
    }
    measuring = 0;
    loop(20000); /* warm-up: unwind tables parsed, buckets created */
    measuring = 1;
    uint64_t t0 = now_ns();
    uint64_t c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    loop(pairs);
    cpu_s = (double)(clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0) * 1e-9;
    elapsed_s = (double)(now_ns() - t0) * 1e-9;
}

static int depth;

/* A thread's run: its mean wall and CPU seconds, added to *sums under a
 * lock once it is done. */
static pthread_mutex_t sums_lock = PTHREAD_MUTEX_INITIALIZER;
static double sum_elapsed_s, sum_cpu_s;

static void *
run(void *arg)
{
    (void)arg;
    descend(depth);
    pthread_mutex_lock(&sums_lock);
    sum_elapsed_s += elapsed_s;
    sum_cpu_s += cpu_s;
    pthread_mutex_unlock(&sums_lock);
    return NULL;
}

int
main(int argc, char **argv)
{
    pairs = argc > 1 ? atol(argv[1]) : 1000000;
    /* main, __libc_start_call_main, __libc_start_main and _start sit below
     * main; descend(d) adds d + 1 frames and the leaf one more. A thread's
     * stack has start_thread and clone3 below run instead. */
    depth = argc > 2 ? atoi(argv[2]) : 64 - 6;
    threads = argc > 3 ? atoi(argv[3]) : 1;
    if (threads <= 1) {
        threads = 1;
        run(NULL);
    } else {
        pthread_t tid[64];
        if (threads > 64)
            threads = 64;
        for (int t = 0; t < threads; t++)
            pthread_create(&tid[t], NULL, run, NULL);
        for (int t = 0; t < threads; t++)
            pthread_join(tid[t], NULL);
    }
    double per = 1e9 / (double)pairs / threads;
    printf("%.1f %.1f %lu %lu %lu %lu\n", sum_elapsed_s * per, sum_cpu_s * per,
           (unsigned long)percentile(hist_malloc, (uint64_t)pairs, 0.5),
           (unsigned long)percentile(hist_malloc, (uint64_t)pairs, 0.99),
           (unsigned long)percentile(hist_free, (uint64_t)pairs, 0.5),
           (unsigned long)percentile(hist_free, (uint64_t)pairs, 0.99));
    return 0;
}
