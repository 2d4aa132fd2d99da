/*
 * A Boehm GC program with known truth, run unmodified under
 * LD_PRELOAD=libheapprof.so by check_gc.py. It never calls heapprof except
 * to write a profile (found with dlsym, so it also runs without heapprof).
 *
 * Sites (each a real frame that calls a GC_* entry point):
 *   site_kept           GC_MALLOC, reachable from a static root to the end
 *   site_garbage        GC_MALLOC, dropped at once
 *   site_atomic_kept    GC_MALLOC_ATOMIC, kept
 *   site_atomic_garbage GC_MALLOC_ATOMIC, dropped
 *   site_uncollectable  GC_MALLOC_UNCOLLECTABLE, half freed with GC_FREE
 *   site_freed          GC_MALLOC then GC_FREE
 *   site_realloc        GC_REALLOC growing kept blocks (each call counts as
 *                       a free of the old size and an allocation of the new)
 *   site_strdup         GC_STRDUP, kept
 *   site_finalized      GC_MALLOC with a program finalizer, dropped; the
 *                       finalizers count themselves
 *
 * Usage: boehm_workload MODE OUT_DIR SCALE
 *   file: collect twice (running finalizers in between), write
 *         OUT_DIR/heap.pb.gz, print the truth as JSON on the last line
 *   threads: the same, the work split over four threads while a fifth
 *         calls GC_gcollect() in a loop (sweeps racing with allocation)
 *   http: allocate with the collector disabled, enable it, print
 *         "READY <truth json>", wait for a line on stdin, run pending
 *         finalizers, print "FINALIZED n" and exit
 * Both print "FINALIZED n" (how many of the program's finalizers ran).
 */
#define GC_THREADS
#include <gc.h>

#include <dlfcn.h>
#include <pthread.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NOINLINE __attribute__((noinline))

enum {
    S_KEPT, S_GARBAGE, S_ATOMIC_KEPT, S_ATOMIC_GARBAGE, S_UNCOLLECTABLE,
    S_FREED, S_REALLOC, S_STRDUP, S_FINALIZED, S_N
};
static const char *const site_names[S_N] = {
    "site_kept", "site_garbage", "site_atomic_kept", "site_atomic_garbage",
    "site_uncollectable", "site_freed", "site_realloc", "site_strdup",
    "site_finalized",
};

/* What each site allocated, what stays in use, and the variance of the
 * Horvitz-Thompson estimate at the rate in effect (for the checker). */
struct truth {
    double alloc_objects, alloc_bytes, inuse_objects, inuse_bytes;
    double var_alloc_objects, var_alloc_bytes, var_inuse_objects,
        var_inuse_bytes;
};
static struct truth truth[S_N];
static double rate = 524288;
static pthread_mutex_t truth_lock = PTHREAD_MUTEX_INITIALIZER;

static void
account(int site, size_t size, int stays)
{
    pthread_mutex_lock(&truth_lock);
    double p = rate <= 1 ? 1.0 : 1.0 - exp(-(double)size / rate);
    double vo = (1 - p) / p, vb = (double)size * size * (1 - p) / p;
    struct truth *t = &truth[site];
    t->alloc_objects += 1;
    t->alloc_bytes += (double)size;
    t->var_alloc_objects += vo;
    t->var_alloc_bytes += vb;
    if (stays) {
        t->inuse_objects += 1;
        t->inuse_bytes += (double)size;
        t->var_inuse_objects += vo;
        t->var_inuse_bytes += vb;
    }
    pthread_mutex_unlock(&truth_lock);
}

static __thread uint64_t rng = 0x9E3779B97F4A7C15ull;

static size_t
rand_size(size_t lo, size_t hi)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return lo + (size_t)(rng % (hi - lo + 1));
}

/* Roots: the collector scans the data and bss segments. Volatile, or the
 * compiler may drop stores to arrays nobody reads. */
#define MAX_KEPT (1u << 17)
static void *volatile kept[MAX_KEPT];
static size_t nkept;
static void *volatile uncollectable[MAX_KEPT];
static size_t nuncollectable;

static void
keep(void *p)
{
    size_t i = __atomic_fetch_add(&nkept, 1, __ATOMIC_RELAXED);
    if (i < MAX_KEPT)
        kept[i] = p;
}

static long finalized;

static void
count_finalizer(void *obj, void *cd)
{
    (void)obj;
    (void)cd;
    __atomic_fetch_add(&finalized, 1, __ATOMIC_RELAXED);
}

NOINLINE static void
site_kept(size_t size)
{
    keep(GC_MALLOC(size));
}

NOINLINE static void
site_garbage(size_t size)
{
    void *volatile p = GC_MALLOC(size);
    (void)p;
}

NOINLINE static void
site_atomic_kept(size_t size)
{
    keep(GC_MALLOC_ATOMIC(size));
}

NOINLINE static void
site_atomic_garbage(size_t size)
{
    void *volatile p = GC_MALLOC_ATOMIC(size);
    (void)p;
}

NOINLINE static void *
site_uncollectable(size_t size)
{
    return GC_MALLOC_UNCOLLECTABLE(size);
}

NOINLINE static void
site_freed(size_t size)
{
    void *p = GC_MALLOC(size);
    GC_FREE(p);
}

NOINLINE static void *
site_realloc(void *p, size_t size)
{
    return GC_REALLOC(p, size);
}

NOINLINE static void
site_strdup(const char *s)
{
    keep(GC_STRDUP(s));
}

NOINLINE static void
site_finalized(size_t size)
{
    void *p = GC_MALLOC(size);
    GC_REGISTER_FINALIZER(p, count_finalizer, NULL, NULL, NULL);
}

/* Overwrite the stack below us so that no stale copy of a dropped pointer
 * keeps a garbage block alive (the collector is conservative). */
NOINLINE static void
clear_stack(void)
{
    volatile char buf[64 * 1024];
    memset((char *)buf, 0, sizeof buf);
}

static void
workload(double scale)
{
    size_t n;
    n = (size_t)(32768 * scale);
    for (size_t i = 0; i < n; i++) {
        size_t s = rand_size(128, 1024);
        site_kept(s);
        account(S_KEPT, s, 1);
        s = rand_size(128, 1024);
        site_garbage(s);
        account(S_GARBAGE, s, 0);
        s = rand_size(128, 1024);
        site_garbage(s);
        account(S_GARBAGE, s, 0);
    }
    n = (size_t)(16384 * scale);
    for (size_t i = 0; i < n; i++) {
        size_t s = rand_size(256, 1792);
        site_atomic_kept(s);
        account(S_ATOMIC_KEPT, s, 1);
        s = rand_size(256, 1792);
        site_atomic_garbage(s);
        account(S_ATOMIC_GARBAGE, s, 0);
    }
    n = (size_t)(32768 * scale);
    for (size_t i = 0; i < n; i++) {
        size_t s = rand_size(256, 1792);
        void *p = site_uncollectable(s);
        size_t slot = i % 2 == 0 ? __atomic_fetch_add(&nuncollectable, 1,
                                                      __ATOMIC_RELAXED)
                                 : MAX_KEPT;
        if (slot < MAX_KEPT) {
            uncollectable[slot] = p;
            account(S_UNCOLLECTABLE, s, 1);
        } else {
            GC_FREE(p);
            account(S_UNCOLLECTABLE, s, 0);
        }
    }
    n = (size_t)(16384 * scale);
    for (size_t i = 0; i < n; i++) {
        size_t s = rand_size(256, 1792);
        site_freed(s);
        account(S_FREED, s, 0);
    }
    n = (size_t)(6144 * scale);
    for (size_t i = 0; i < n; i++) {
        size_t s = rand_size(64, 512);
        void *p = site_realloc(NULL, s);
        account(S_REALLOC, s, 0);
        for (int k = 0; k < 3; k++) {
            s += rand_size(256, 1024);
            p = site_realloc(p, s);
            account(S_REALLOC, s, k == 2);
        }
        keep(p);
    }
    n = (size_t)(24576 * scale);
    char buf[1300];
    for (size_t i = 0; i < n; i++) {
        size_t len = rand_size(300, 1200);
        memset(buf, 'a' + (int)(i % 26), len);
        buf[len] = '\0';
        site_strdup(buf);
        account(S_STRDUP, len + 1, 1);
    }
    n = (size_t)(24576 * scale);
    for (size_t i = 0; i < n; i++) {
        size_t s = rand_size(256, 1024);
        site_finalized(s);
        account(S_FINALIZED, s, 0);
    }
    clear_stack();
}

static void
print_truth(const char *prefix)
{
    printf("%s{\"rate\": %.0f, \"finalizable\": %.0f, \"sites\": {", prefix,
           rate, truth[S_FINALIZED].alloc_objects);
    for (int i = 0; i < S_N; i++) {
        const struct truth *t = &truth[i];
        printf("%s\"%s\": {\"alloc_objects\": %.0f, \"alloc_space\": %.0f, "
               "\"inuse_objects\": %.0f, \"inuse_space\": %.0f, "
               "\"sd\": [%.3f, %.3f, %.3f, %.3f]}",
               i ? ", " : "", site_names[i], t->alloc_objects, t->alloc_bytes,
               t->inuse_objects, t->inuse_bytes, sqrt(t->var_alloc_objects),
               sqrt(t->var_alloc_bytes), sqrt(t->var_inuse_objects),
               sqrt(t->var_inuse_bytes));
    }
    printf("}}\n");
    fflush(stdout);
}

static double thread_scale;
static int stop_collecting;

static void *
worker(void *arg)
{
    rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)(uintptr_t)arg * 0x2545F4914F6CDD1Dull);
    workload(thread_scale);
    return NULL;
}

static void *
collector(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&stop_collecting, __ATOMIC_RELAXED)) {
        GC_gcollect();
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void
run_threads(double scale)
{
    enum { WORKERS = 4 };
    pthread_t w[WORKERS], c;
    thread_scale = scale / WORKERS;
    pthread_create(&c, NULL, collector, NULL);
    for (uintptr_t i = 0; i < WORKERS; i++)
        pthread_create(&w[i], NULL, worker, (void *)(i + 1));
    for (int i = 0; i < WORKERS; i++)
        pthread_join(w[i], NULL);
    __atomic_store_n(&stop_collecting, 1, __ATOMIC_RELAXED);
    pthread_join(c, NULL);
}

int
main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s file|threads|http OUT_DIR SCALE\n",
                argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    double scale = atof(argv[3]);
    const char *r = getenv("HEAPPROF_RATE");
    if (r != NULL && *r != '\0')
        rate = atof(r);
    GC_INIT();
    if (strcmp(mode, "http") == 0) {
        /* Nothing is collected before gc=1 asks, so the test can see the
         * garbage in use first and gone after. */
        GC_disable();
        workload(scale);
        GC_enable();
        print_truth("READY ");
        char line[16];
        if (fgets(line, sizeof line, stdin) == NULL)
            return 3;
        GC_invoke_finalizers();
        printf("FINALIZED %ld\n", finalized);
        return 0;
    }
    if (strcmp(mode, "threads") == 0)
        run_threads(scale);
    else
        workload(scale);
    /* The first collection finds the finalizable blocks unreachable and
     * queues their finalizers; once those ran, the second reclaims them. */
    GC_gcollect();
    GC_invoke_finalizers();
    clear_stack();
    GC_gcollect();
    GC_invoke_finalizers();
    printf("FINALIZED %ld\n", finalized);
    int (*write_path)(const char *, int) =
        (int (*)(const char *, int))dlsym(RTLD_DEFAULT, "heapprof_write_path");
    if (write_path != NULL) {
        char path[4096];
        snprintf(path, sizeof path, "%s/heap.pb.gz", argv[2]);
        int rc = write_path(path, 0);
        printf("heapprof_write_path = %d\n", rc);
    } else {
        printf("heapprof not loaded\n");
    }
    print_truth("TRUTH ");
    return 0;
}
