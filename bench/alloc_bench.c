/*
 * Allocation-bound benchmark, run bare and under LD_PRELOAD'ed profilers
 * and allocators by bench/run.sh. Three workloads, selected by argv[1]:
 *
 *   small   malloc/free of 16-128 B through a ring of 64 live blocks (the
 *           unsampled fast paths, nothing else);
 *   mixed   a server-like mix: sizes 16 B - 64 KiB skewed small, malloc,
 *           calloc, realloc and free over a working set of 8192 live
 *           blocks, each request made at the bottom of a 10-20 frame call
 *           stack through a recursive helper;
 *   mixed2  the same total work as mixed, split between 2 threads.
 *
 * Prints "<workload> <elapsed seconds> <CPU seconds> <minor faults>" for the
 * workload only (start-up and tear-down excluded); CPU seconds are the
 * process's user + system time (all threads), the steadier figure on a
 * shared machine; minor faults are the pages the process touched for the
 * first time meanwhile (each costs the kernel a few µs, which counts of
 * instructions do not show). The
 * operation sequence is a fixed function of the seed, so every
 * configuration does exactly the same work.
 *
 * usage: alloc_bench small|mixed|mixed2 [operations]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define RING 64
#define WORKING_SET 8192

static long
minor_faults(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_minflt : 0;
}

static double
clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline uint64_t
rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Defeats the compiler's removal of malloc/free pairs. */
static volatile uintptr_t sink;

/* ---------------------------------------------------------------- small */

static void
run_small(uint64_t ops)
{
    void *ring[RING] = {0};
    uint64_t rng = 1;
    for (uint64_t i = 0; i < ops; i++) {
        unsigned slot = (unsigned)(i & (RING - 1));
        free(ring[slot]);
        size_t size = 16 + (size_t)(rng_next(&rng) >> 32) % 113; /* 16..128 */
        char *p = malloc(size);
        p[0] = (char)i;
        ring[slot] = p;
    }
    uintptr_t acc = 0;
    for (unsigned i = 0; i < RING; i++) {
        acc += (uintptr_t)ring[i];
        free(ring[i]);
    }
    sink = acc;
}

/* ---------------------------------------------------------------- mixed */

struct block {
    char *p;
    size_t size;
};

struct mixed_state {
    struct block *set;
    uint64_t rng;
    uint64_t ops;
};

static size_t
mixed_size(uint64_t r)
{
    /* 70 % 16-256 B, 20 % 256 B-4 KiB, 9 % 4-32 KiB, 1 % 32-64 KiB. */
    unsigned bucket = (unsigned)(r % 100);
    uint64_t v = r >> 8;
    if (bucket < 70)
        return 16 + v % 241;
    if (bucket < 90)
        return 256 + v % 3841;
    if (bucket < 99)
        return 4096 + v % 28673;
    return 32768 + v % 32769;
}

static void
touch(char *p, size_t size)
{
    /* Servers write what they allocate; write the head of the block. */
    memset(p, 0x11, size < 256 ? size : 256);
}

/* One request at the bottom of the call stack. */
static void __attribute__((noinline))
mixed_op(struct mixed_state *st)
{
    uint64_t r = rng_next(&st->rng);
    struct block *b = &st->set[r % WORKING_SET];
    unsigned op = (unsigned)((r >> 20) % 100);
    size_t size = mixed_size(rng_next(&st->rng));
    if (op < 55) { /* replace with a new block */
        free(b->p);
        b->p = malloc(size);
        b->size = size;
        touch(b->p, size);
    } else if (op < 70) { /* calloc */
        free(b->p);
        b->p = calloc(1, size);
        b->size = size;
        b->p[size - 1] = 1;
    } else if (op < 85) { /* realloc: grow or shrink */
        char *q = realloc(b->p, size);
        if (q != NULL) {
            b->p = q;
            if (size > b->size)
                touch(q, size);
            b->size = size;
        }
    } else { /* free, leaving a hole */
        free(b->p);
        b->p = NULL;
        b->size = 0;
    }
}

/* Recursive helper: depth frames of distinct return addresses above the
 * request, like a server's dispatch -> handler -> parser -> ... chain. */
static void __attribute__((noinline))
descend(struct mixed_state *st, int depth)
{
    if (depth <= 0) {
        mixed_op(st);
        return;
    }
    if (depth & 1)
        descend(st, depth - 1);
    else
        descend(st, depth - 1);
    __asm__ volatile("" ::: "memory"); /* no tail call */
}

static void *
mixed_thread(void *arg)
{
    struct mixed_state *st = arg;
    st->set = calloc(WORKING_SET, sizeof *st->set);
    for (uint64_t i = 0; i < st->ops; i++)
        descend(st, 10 + (int)(rng_next(&st->rng) % 11));
    uintptr_t acc = 0;
    for (unsigned i = 0; i < WORKING_SET; i++) {
        acc += st->set[i].size;
        free(st->set[i].p);
    }
    free(st->set);
    sink = acc;
    return NULL;
}

static void
run_mixed(uint64_t ops, unsigned nthreads)
{
    struct mixed_state st[8];
    pthread_t tid[8];
    for (unsigned t = 0; t < nthreads; t++) {
        st[t].rng = 0x9E3779B97F4A7C15ull * (t + 1);
        st[t].ops = ops / nthreads;
    }
    if (nthreads == 1) {
        mixed_thread(&st[0]);
        return;
    }
    for (unsigned t = 0; t < nthreads; t++)
        pthread_create(&tid[t], NULL, mixed_thread, &st[t]);
    for (unsigned t = 0; t < nthreads; t++)
        pthread_join(tid[t], NULL);
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s small|mixed|mixed2 [operations]\n", argv[0]);
        return 2;
    }
    const char *w = argv[1];
    uint64_t ops = argc > 2 ? strtoull(argv[2], NULL, 10) : 0;
    double t0 = clock_s(CLOCK_MONOTONIC);
    double c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    long f0 = minor_faults();
    if (strcmp(w, "small") == 0) {
        run_small(ops ? ops : 20000000);
    } else if (strcmp(w, "mixed") == 0) {
        run_mixed(ops ? ops : 1500000, 1);
    } else if (strcmp(w, "mixed2") == 0) {
        run_mixed(ops ? ops : 1500000, 2);
    } else {
        fprintf(stderr, "unknown workload %s\n", w);
        return 2;
    }
    double t1 = clock_s(CLOCK_MONOTONIC);
    double c1 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    long f1 = minor_faults();
    printf("%s %.6f %.6f %ld\n", w, t1 - t0, c1 - c0, f1 - f0);
    return 0;
}
