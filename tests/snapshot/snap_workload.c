/*
 * Workload for the snapshot tests, run under LD_PRELOAD (the API is found
 * with dlsym, as the SPEC allows). Every allocation site is a noinline
 * function with a distinctive name so the tests can find it in profiles.
 *
 * usage: snap_workload MODE [SECONDS] [ARG]
 *   churn S      site_snap_live keeps 1000 x 10000 B (then says so on
 *                stderr), site_snap_churn
 *                allocates and frees for S seconds; prints a checksum
 *                that does not depend on heapprof (the unwritable test
 *                compares it with a run without heapprof)
 *   burst S      keeps site_snap_live, then calls heapprof_snapshot_now()
 *                in a loop for S seconds; prints "ok=N fail=M"
 *   spin S       builds ~20000 distinct stacks, then heapprof_snapshot_now()
 *                in a loop for S seconds (the kill -9 test kills it)
 *   fork S API   site_snap_before_fork keeps 2,000,000 B, then fork();
 *                the parent adds 3,000,000 B at site_snap_parent_after,
 *                the child 3,000,000 B at site_snap_child_after, both
 *                then idle until S seconds passed. API=1: the child calls
 *                heapprof_snapshot_now() once right after fork. Prints
 *                "parent=P child=C"
 *   reset        exact (HEAPPROF_RATE=1) check of heapprof_reset(); writes
 *                snapshots with heapprof_snapshot_now(); prints sizes
 *   soak S T     T threads churn allocations over many distinct stacks
 *                (8^6 possible) for S seconds, a bounded working set
 *
 * Output on stdout only: the tests count heapprof's lines on stderr.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Sites (global, so the names survive into the symbol table). */
void *site_snap_live(size_t n);
void *site_snap_churn(size_t n);
void *site_snap_freed(size_t n);
void *site_snap_before_fork(size_t n);
void *site_snap_parent_after(size_t n);
void *site_snap_child_after(size_t n);
void *site_snap_deep(size_t n);

/* Blocks kept live; global so the stores are not optimised away. */
void *snap_keep[1000];

typedef int (*int_fn)(void);

static int_fn api_snapshot_now;
static int_fn api_reset;

static void
find_api(void)
{
    api_snapshot_now = (int_fn)dlsym(RTLD_DEFAULT, "heapprof_snapshot_now");
    api_reset = (int_fn)dlsym(RTLD_DEFAULT, "heapprof_reset");
}

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t
xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Touch every byte so the checksum depends on the allocation having
 * happened, not on heapprof. */
static void *
fill(void *p, size_t n, unsigned char v)
{
    if (p == NULL) {
        fprintf(stderr, "snap_workload: out of memory\n");
        exit(3);
    }
    memset(p, v, n);
    return p;
}

__attribute__((noinline)) void *
site_snap_live(size_t n)
{
    return fill(malloc(n), n, 1);
}

__attribute__((noinline)) void *
site_snap_churn(size_t n)
{
    return fill(malloc(n), n, 2);
}

__attribute__((noinline)) void *
site_snap_freed(size_t n)
{
    return fill(malloc(n), n, 3);
}

__attribute__((noinline)) void *
site_snap_before_fork(size_t n)
{
    return fill(malloc(n), n, 4);
}

__attribute__((noinline)) void *
site_snap_parent_after(size_t n)
{
    return fill(malloc(n), n, 5);
}

__attribute__((noinline)) void *
site_snap_child_after(size_t n)
{
    return fill(malloc(n), n, 6);
}

/* ------------------------------------------------- many distinct stacks */

/* Eight functions that pick the next one from three bits of path: depth
 * levels give 8^depth distinct call stacks ending in site_snap_deep. */
__attribute__((noinline)) void *
site_snap_deep(size_t n)
{
    return fill(malloc(n), n, 7);
}

typedef void *(*hop_fn)(int depth, uint64_t path, size_t n);
static hop_fn hops[8];

#define HOP(k)                                                                \
    __attribute__((noinline)) static void *hop##k(int depth, uint64_t path,  \
                                                  size_t n)                   \
    {                                                                         \
        void *p = depth == 0 ? site_snap_deep(n)                              \
                             : hops[path & 7](depth - 1, path >> 3, n);       \
        __asm__ volatile("" ::: "memory"); /* not a tail call */              \
        return p;                                                             \
    }
HOP(0)
HOP(1)
HOP(2)
HOP(3)
HOP(4)
HOP(5)
HOP(6)
HOP(7)

static hop_fn hops[8] = {hop0, hop1, hop2, hop3, hop4, hop5, hop6, hop7};

static void *
deep_alloc(int depth, uint64_t path, size_t n)
{
    return hops[path & 7](depth, path >> 3, n);
}

/* ------------------------------------------------------------------ modes */

static int
mode_churn(double secs)
{
    uint64_t sum = 0;
    for (int i = 0; i < 1000; i++) {
        snap_keep[i] = site_snap_live(10000);
        sum += ((unsigned char *)snap_keep[i])[i % 10000];
    }
    /* For tests that act once the live set is there (not a heapprof
     * line: those start with "heapprof["). */
    fprintf(stderr, "snap_workload: live set kept\n");
    uint64_t rng = 88172645463325252ull;
    double end = now_s() + secs;
    unsigned rounds = 0, bad = 0;
    while (now_s() < end) {
        for (int i = 0; i < 100; i++) {
            size_t n = 64 + xorshift(&rng) % 4000;
            unsigned char *p = site_snap_churn(n);
            bad += p[n / 2] != 2;
            free(p);
        }
        rounds++;
        usleep(2000);
    }
    /* Independent of timing and of heapprof: the tests compare it with a
     * run without heapprof. */
    printf("checksum %llu bad %u rounds>0 %d\n", (unsigned long long)sum,
           bad, rounds > 0);
    return 0;
}

static int
mode_burst(double secs)
{
    for (int i = 0; i < 100; i++)
        snap_keep[i] = site_snap_live(10000);
    if (api_snapshot_now == NULL) {
        fprintf(stderr, "snap_workload: heapprof_snapshot_now not found\n");
        return 2;
    }
    unsigned ok = 0, fail = 0;
    double end = now_s() + secs;
    while (now_s() < end) {
        if (api_snapshot_now() == 0)
            ok++;
        else
            fail++;
    }
    printf("ok=%u fail=%u\n", ok, fail);
    return 0;
}

static int
mode_spin(double secs)
{
    /* 8^5 = 32768 possible paths; 20000 draws give ~15000 stacks. */
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 20000; i++)
        deep_alloc(5, xorshift(&rng), 32);
    if (api_snapshot_now == NULL)
        return 2;
    double end = now_s() + secs;
    unsigned ok = 0;
    while (now_s() < end)
        ok += api_snapshot_now() == 0;
    printf("ok=%u\n", ok);
    return 0;
}

static void
idle_until(double end)
{
    while (now_s() < end)
        usleep(20000);
}

static int
mode_fork(double secs, int api)
{
    double end = now_s() + secs;
    void **keep = snap_keep;
    for (int i = 0; i < 200; i++)
        keep[i] = site_snap_before_fork(10000);
    fflush(stdout);
    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 2;
    }
    if (child == 0) {
        if (api) {
            if (api_snapshot_now == NULL || api_snapshot_now() != 0) {
                fprintf(stderr, "snap_workload: child snapshot_now failed\n");
                _exit(4);
            }
        }
        for (int i = 0; i < 300; i++) {
            keep[200 + i] = site_snap_child_after(10000);
            usleep(1000);
        }
        idle_until(end);
        exit(0);
    }
    for (int i = 0; i < 300; i++) {
        keep[200 + i] = site_snap_parent_after(10000);
        usleep(1000);
    }
    printf("parent=%d child=%d\n", (int)getpid(), (int)child);
    fflush(stdout);
    idle_until(end);
    int st;
    if (waitpid(child, &st, 0) != child || !WIFEXITED(st) ||
        WEXITSTATUS(st) != 0) {
        fprintf(stderr, "snap_workload: child failed (status %d)\n", st);
        return 5;
    }
    return 0;
}

static int
mode_reset(void)
{
    if (api_snapshot_now == NULL || api_reset == NULL)
        return 2;
    void **live = snap_keep;
    for (int i = 0; i < 100; i++)
        live[i] = site_snap_live(10000);
    for (int i = 0; i < 100; i++)
        free(site_snap_freed(5000));
    if (api_snapshot_now() != 0)
        return 3;
    printf("before: live alloc=1000000 freed alloc=500000\n");
    if (api_reset() != 0)
        return 4;
    for (int i = 0; i < 50; i++)
        free(site_snap_freed(5000));
    for (int i = 0; i < 10; i++)
        free(live[i]);
    if (api_snapshot_now() != 0)
        return 5;
    printf("after: live alloc=1000000 inuse=900000 freed alloc=250000\n");
    return 0;
}

struct soak_arg {
    double end;
    uint64_t seed;
};

#define SOAK_RING 512

static void *
soak_thread(void *argp)
{
    struct soak_arg *a = argp;
    void *ring[SOAK_RING] = {0};
    uint64_t rng = a->seed;
    unsigned pos = 0;
    while (now_s() < a->end) {
        for (int i = 0; i < 200; i++) {
            size_t n = 16 + xorshift(&rng) % 2048;
            free(ring[pos]);
            ring[pos] = deep_alloc(6, xorshift(&rng), n);
            pos = (pos + 1) % SOAK_RING;
        }
        usleep(1000);
    }
    for (unsigned i = 0; i < SOAK_RING; i++)
        free(ring[i]);
    return NULL;
}

static int
mode_soak(double secs, int nthreads)
{
    if (nthreads < 1 || nthreads > 64)
        nthreads = 8;
    pthread_t t[64];
    struct soak_arg args[64];
    double end = now_s() + secs;
    for (int i = 0; i < nthreads; i++) {
        args[i].end = end;
        args[i].seed = 0x1234567ull * (uint64_t)(i + 1) + 1;
        pthread_create(&t[i], NULL, soak_thread, &args[i]);
    }
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    printf("soak done\n");
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: snap_workload MODE [SECONDS] [ARG]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    find_api();
    double secs = argc > 2 ? atof(argv[2]) : 3;
    int arg = argc > 3 ? atoi(argv[3]) : 0;
    if (strcmp(argv[1], "churn") == 0)
        return mode_churn(secs);
    if (strcmp(argv[1], "burst") == 0)
        return mode_burst(secs);
    if (strcmp(argv[1], "spin") == 0)
        return mode_spin(secs);
    if (strcmp(argv[1], "fork") == 0)
        return mode_fork(secs, arg);
    if (strcmp(argv[1], "reset") == 0)
        return mode_reset();
    if (strcmp(argv[1], "soak") == 0)
        return mode_soak(secs, arg);
    fprintf(stderr, "snap_workload: unknown mode %s\n", argv[1]);
    return 2;
}
