/*
 * A request-serving loop on top of pool.h, the way nginx uses its pools: a
 * long-lived pool for configuration, one pool per request destroyed when
 * the request ends, and a cache pool reset every so often. heapprof sees
 * every pool allocation through the hooks and forgets a whole pool at
 * once when it is destroyed, so the heap profile shows the configuration
 * and the current cache in use, and the requests only in alloc_space.
 *
 *   pool_example run heap.pb.gz     serve 22000 requests, write a profile
 *   pool_example bench [ROUNDS]     cost of pool_alloc with this build's
 *                                   hook form, in ns per call
 *
 *   go tool pprof -hide='^pool_' -top heap.pb.gz
 *
 * Built three ways from the same source (see CMakeLists.txt):
 * pool_example (linked with libheapprof), pool_example_weak
 * (<heapprof_weak.h>, not linked: run it with LD_PRELOAD=libheapprof.so to
 * profile it) and pool_example_nohooks (the baseline).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if !defined(POOL_HOOKS_WEAK) && !defined(POOL_HOOKS_NONE)
#include <heapprof.h>
#endif

#include "pool.h"

#define NOINLINE __attribute__((noinline))

struct request {
    struct pool *pool;
    char *headers;
    char *body;
};

static struct pool *config_pool;
static struct pool *cache_pool;
static char *volatile sink;

NOINLINE static void
load_config(void)
{
    for (int i = 0; i < 8000; i++) {
        char *line = pool_alloc(config_pool, 256);
        snprintf(line, 256, "setting_%d on;", i);
    }
}

NOINLINE static void
parse_headers(struct request *r, unsigned n)
{
    r->headers = pool_alloc(r->pool, 512 + n % 512);
    memset(r->headers, 'h', 64);
}

NOINLINE static void
build_response(struct request *r, unsigned n)
{
    size_t size = 1024;
    r->body = pool_alloc(r->pool, size);
    /* The body grows once: a realloc within the pool. */
    r->body = pool_realloc(r->pool, r->body, size, size + 2048 + n % 1024);
    memset(r->body, 'b', 64);
}

NOINLINE static void
cache_response(const struct request *r)
{
    char *copy = pool_alloc(cache_pool, 4096);
    memcpy(copy, r->body, 64);
    sink = copy;
}

static void
handle_request(unsigned n)
{
    struct request r = {.pool = pool_create()};
    parse_headers(&r, n);
    build_response(&r, n);
    if (n % 4 == 0)
        cache_response(&r);
    pool_destroy(r.pool);
}

static int
run(const char *path)
{
#if !defined(POOL_HOOKS_WEAK) && !defined(POOL_HOOKS_NONE)
    /* Already profiling since load at the default rate; a finer rate for
     * a small program (HEAPPROF_RATE still wins). */
    struct heapprof_config cfg;
    heapprof_config_init(&cfg);
    cfg.rate = 16 * 1024;
    int err = heapprof_start(&cfg);
    if (err != HEAPPROF_OK)
        fprintf(stderr, "heapprof_start: %s\n", heapprof_strerror(err));
#endif
    config_pool = pool_create();
    cache_pool = pool_create();
    load_config();
    for (unsigned n = 0; n < 22000; n++) {
        handle_request(n);
        /* The cache keeps the last 1000 cached responses or so. */
        if (n % 4000 == 3999)
            pool_reset(cache_pool);
    }
#if !defined(POOL_HOOKS_WEAK) && !defined(POOL_HOOKS_NONE)
    int rc = heapprof_write_path(path, HEAPPROF_PROFILE_HEAP);
    if (rc != 0) {
        fprintf(stderr, "heapprof_write_path: %s\n", heapprof_strerror(rc));
        return 1;
    }
    printf("wrote %s\n", path);
#else
    (void)path;
    printf("served 22000 requests (hooks: %s); take a profile with "
           "HEAPPROF_SNAPSHOT_DIR or HEAPPROF_HTTP\n", pool_hooks_form());
#endif
    return 0;
}

static double
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/*
 * One round: 64 requests' worth of pool_alloc calls (64-byte blocks) in
 * one pool, then a reset (a bulk free). Reported: the median over rounds
 * of ns per pool_alloc, the reset included. No threshold: the numbers are
 * for docs/custom-allocators.md, not a test.
 */
static int
bench(long rounds)
{
    enum { PER_ROUND = 4096, REPEATS = 7 };
    struct pool *p = pool_create();
    double med[REPEATS];
    for (int rep = 0; rep < REPEATS; rep++) {
        double t0 = now_ns();
        for (long r = 0; r < rounds; r++) {
            for (int i = 0; i < PER_ROUND; i++)
                sink = pool_alloc(p, 64);
            pool_reset(p);
        }
        med[rep] = (now_ns() - t0) / ((double)rounds * PER_ROUND);
    }
    qsort(med, REPEATS, sizeof med[0], cmp_double);
    const char *rate = getenv("HEAPPROF_RATE");
    printf("pool_alloc: %.1f ns/op (median of %d; hooks: %s; "
           "HEAPPROF_RATE=%s)\n",
           med[REPEATS / 2], REPEATS, pool_hooks_form(),
           rate != NULL ? rate : "default");
    pool_destroy(p);
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "run") == 0)
        return run(argc > 2 ? argv[2] : "heap.pb.gz");
    if (argc >= 2 && strcmp(argv[1], "bench") == 0)
        return bench(argc > 2 ? atol(argv[2]) : 200);
    fprintf(stderr, "usage: %s run [PROFILE] | bench [ROUNDS]\n", argv[0]);
    return 2;
}
