/*
 * Export benchmark: 100 000 buckets with distinct depth-32 stacks, written
 * with heapprof_write_buffer (encode, symbolize, gzip). The first call is
 * cold (symbol tables loaded); the following ones use the warm symbol cache
 * and are the figure compared with the 200 ms bar.
 *
 * Stacks are real: each sample is reported through heapprof_on_alloc from
 * the bottom of a call chain of 22 plain recursive frames and 10 frames of
 * a recursive chooser whose 9 upper frames each return to one of 4 call
 * sites, so path k (written in base 4) gives its own stack; 4^9 > 100 000.
 * Linked with the core objects (not the interposer) and started at rate 1,
 * so every report is sampled.
 *
 * Prints the bucket count, the profile size, the cold time and the warm
 * times in ms (wall; the median warm time also in process CPU time).
 *
 * usage: export_bench [buckets] [warm_runs]
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buckets.h"
#include "heapprof.h"

#define CHOICE_LEVELS 9
#define PLAIN_LEVELS 22

static volatile unsigned sink;

static double
clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static double
now_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

static double
cpu_ms(void)
{
    return clock_ms(CLOCK_PROCESS_CPUTIME_ID);
}

static void __attribute__((noinline))
choose(unsigned path, int level, uintptr_t addr)
{
    if (level == 0) {
        heapprof_on_alloc((void *)addr, 64 + path % 4000);
        __asm__ volatile("" ::: "memory");
        return;
    }
    /* Distinct code after each call keeps four distinct return addresses. */
    switch (path & 3) {
    case 0:
        choose(path >> 2, level - 1, addr);
        sink += 1;
        break;
    case 1:
        choose(path >> 2, level - 1, addr);
        sink ^= 2;
        break;
    case 2:
        choose(path >> 2, level - 1, addr);
        sink *= 3;
        break;
    default:
        choose(path >> 2, level - 1, addr);
        sink -= 5;
        break;
    }
    __asm__ volatile("" ::: "memory");
}

static void __attribute__((noinline))
plain(unsigned path, int level, uintptr_t addr)
{
    if (level == 0)
        choose(path, CHOICE_LEVELS, addr);
    else
        plain(path, level - 1, addr);
    __asm__ volatile("" ::: "memory"); /* no tail call */
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
    unsigned n = argc > 1 ? (unsigned)atoi(argv[1]) : 100000;
    int warm_runs = argc > 2 ? atoi(argv[2]) : 5;
    if (warm_runs < 1 || warm_runs > 100)
        warm_runs = 5;

    struct heapprof_config cfg;
    heapprof_config_init(&cfg);
    cfg.flags = HEAPPROF_CONFIG_NO_ENV;
    cfg.rate = 1;
    cfg.stack_depth = 32;
    cfg.max_memory = (uint64_t)1 << 30;
    int rc = heapprof_start(&cfg);
    if (rc != HEAPPROF_OK) {
        fprintf(stderr, "heapprof_start: %s\n", heapprof_strerror(rc));
        return 1;
    }

    uint64_t before = hp_buckets_count();
    double t0 = now_ms();
    for (unsigned k = 0; k < n; k++)
        plain(k, PLAIN_LEVELS - 1, (uintptr_t)0x100000000ull + (uintptr_t)k * 64);
    double t_fill = now_ms() - t0;
    uint64_t buckets = hp_buckets_count() - before;

    size_t cap = (size_t)256 << 20;
    void *buf = malloc(cap);
    if (buf == NULL)
        return 1;
    size_t needed = 0;
    t0 = now_ms();
    rc = heapprof_write_buffer(buf, cap, &needed, HEAPPROF_PROFILE_HEAP);
    double cold = now_ms() - t0;
    if (rc != HEAPPROF_OK) {
        fprintf(stderr, "heapprof_write_buffer: %s\n", heapprof_strerror(rc));
        return 1;
    }
    double warm[100], warm_cpu[100];
    for (int i = 0; i < warm_runs; i++) {
        t0 = now_ms();
        double c0 = cpu_ms();
        rc = heapprof_write_buffer(buf, cap, &needed, HEAPPROF_PROFILE_HEAP);
        warm_cpu[i] = cpu_ms() - c0;
        warm[i] = now_ms() - t0;
        if (rc != HEAPPROF_OK) {
            fprintf(stderr, "heapprof_write_buffer: %s\n", heapprof_strerror(rc));
            return 1;
        }
    }
    qsort(warm, (size_t)warm_runs, sizeof warm[0], cmp_double);
    qsort(warm_cpu, (size_t)warm_runs, sizeof warm_cpu[0], cmp_double);
    printf("buckets %llu (dropped %llu)\n", (unsigned long long)buckets,
           (unsigned long long)hp_buckets_dropped());
    printf("fill_ms %.1f\n", t_fill);
    printf("profile_bytes %zu\n", needed);
    printf("cold_ms %.1f\n", cold);
    printf("warm_ms_median %.1f\n", warm[warm_runs / 2]);
    printf("warm_ms_min %.1f\n", warm[0]);
    printf("warm_ms_max %.1f\n", warm[warm_runs - 1]);
    printf("warm_cpu_ms_median %.1f\n", warm_cpu[warm_runs / 2]);
    free(buf);
    return 0;
}
