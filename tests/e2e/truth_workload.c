/*
 * Known-truth workload for the end-to-end accuracy tests. Each allocation
 * site is its own noinline function with a distinctive name and records
 * exactly what it allocated (bytes and objects, allocated and still in use)
 * in truth[]; at the end the program writes a heap and an allocs profile
 * with heapprof_write_path() and the truth as JSON, for check_truth.py.
 *
 * Built twice from this file: plain (run under LD_PRELOAD, the library is
 * found with dlsym as the SPEC allows) and with -DHP_TRUTH_LINKED (linked
 * against libheapprof). The workload's own RNG has a fixed seed; the
 * sampler's randomness is heapprof's.
 *
 * usage: truth_workload HEAP.pb.gz ALLOCS.pb.gz TRUTH.json [SCALE_DIV]
 *   SCALE_DIV divides every site's allocation count (default 1); the
 *   HEAPPROF_RATE=1 test uses a smaller run because it is exact anyway.
 *
 * Output on stdout only: the tests count heapprof's lines on stderr.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <heapprof.h>

/* The four values, in Go's sample type order. */
enum { V_ALLOC_OBJECTS, V_ALLOC_SPACE, V_INUSE_OBJECTS, V_INUSE_SPACE, NV };
static const char *const value_names[NV] = {"alloc_objects", "alloc_space",
                                            "inuse_objects", "inuse_space"};

/* Truth of one site, plus what the Horvitz-Thompson estimator (Go's
 * un-sampling) does with it at the rate in effect; see add_expect. */
struct site_truth {
    const char *name;
    uint64_t v[NV];
    double var[NV];  /* variance of the estimate of v[] */
    double maxw[NV]; /* largest weight one sample can carry */
};

enum {
    SITE_SMALL,
    SITE_MIXED,
    SITE_LARGE,
    SITE_FREED,
    SITE_CALLOC,
    SITE_REALLOC,
    SITE_MEMALIGN,
    SITE_DEEP,
    NSITES
};

static struct site_truth truth[NSITES] = {
    [SITE_SMALL] = {.name = "site_small_live"},
    [SITE_MIXED] = {.name = "site_mixed_live"},
    [SITE_LARGE] = {.name = "site_large_live"},
    [SITE_FREED] = {.name = "site_freed"},
    [SITE_CALLOC] = {.name = "site_calloc_live"},
    [SITE_REALLOC] = {.name = "site_realloc_live"},
    [SITE_MEMALIGN] = {.name = "site_memalign_live"},
    [SITE_DEEP] = {.name = "site_deep_live"},
};

/*
 * Allocation counts per site at scale 1. Sized so that at
 * HEAPPROF_RATE=4096 every site has >= 1000 expected samples, the +-10 %
 * (site) and +-3 % (total) bars are >= 5.5 standard deviations away, and no
 * single sample weighs more than 1 % of the value it counts in: a sampled
 * s-byte block stands for 1/p = ~4096/s objects, so the 1-byte blocks live
 * in the 2M-object site (0.2 %) and the mixed and freed sites start at
 * 16 B (256 objects, < 1 %). The exact figures are computed below; the
 * checker prints them and refuses a weaker design.
 */
#define N_SMALL (2u << 20)   /* 64 B (1 in 256: 1..64 B): 128 MiB live */
#define N_MIXED 32768u       /* 16..4096 B: ~64 MiB live */
#define N_LARGE 64u          /* 256 KiB each: 16 MiB live */
#define N_FREED 32768u       /* 16..8192 B, all freed: ~128 MiB allocated */
#define FREED_BATCH 1024u
#define N_CALLOC 32768u      /* (1..32) x 48 B: ~25 MiB live */
#define N_REALLOC 4096u      /* 4 reallocs each, final 2..6 KiB: ~16 MiB live */
#define N_MEMALIGN 8192u     /* 2 KiB, aligned: 16 MiB live */
#define N_DEEP 2048u         /* 4 KiB at recursion depth DEEP_LEVELS */
#define DEEP_LEVELS 100

static double rate; /* HEAPPROF_RATE as the workload understands it */

/* Live blocks are kept here (not leaked) so no compiler can drop them. */
static void *live_small[N_SMALL];
static void *live_mixed[N_MIXED];
static void *live_large[N_LARGE];
static void *live_calloc[N_CALLOC];
static void *live_realloc[N_REALLOC];
static void *live_memalign[N_MEMALIGN];
static void *live_deep[N_DEEP];
static void *freed_batch[FREED_BATCH];

static uint64_t rng_state = 0x2545F4914F6CDD1Dull; /* fixed seed */

static uint64_t
rng_next(void)
{
    /* xorshift64* (Vigna 2016). */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static size_t
rng_range(size_t lo, size_t hi)
{
    return lo + (size_t)(rng_next() % (uint64_t)(hi - lo + 1));
}

static _Noreturn void
die(const char *what)
{
    printf("truth_workload: %s: %s\n", what, strerror(errno));
    fflush(stdout);
    exit(2);
}

/*
 * Variance of the Horvitz-Thompson estimate of one allocation of s bytes
 * sampled with p = 1 - exp(-s/rate) and weighted 1/p: the count estimate
 * 1{sampled}/p has variance (1-p)/p, the byte estimate s^2 (1-p)/p. Samples
 * of different allocations are independent (disjoint stretches of a Poisson
 * process), so variances add. A sampled block weighs 1/p objects and s/p
 * bytes; maxw keeps the largest, which bounds how far one unlucky sample
 * moves an estimate. rate <= 1 means every allocation: p = 1, no variance.
 */
static void
add_expect(struct site_truth *t, int value, double weight, double var)
{
    t->var[value] += var;
    if (weight > t->maxw[value])
        t->maxw[value] = weight;
}

static void
account(int site, size_t s, int live)
{
    struct site_truth *t = &truth[site];
    double p = rate <= 1.0 ? 1.0 : -expm1(-(double)s / rate);
    double vc = (1.0 - p) / p;
    double vb = (double)s * (double)s * vc;
    t->v[V_ALLOC_OBJECTS]++;
    t->v[V_ALLOC_SPACE] += s;
    add_expect(t, V_ALLOC_OBJECTS, 1.0 / p, vc);
    add_expect(t, V_ALLOC_SPACE, (double)s / p, vb);
    if (live) {
        t->v[V_INUSE_OBJECTS]++;
        t->v[V_INUSE_SPACE] += s;
        add_expect(t, V_INUSE_OBJECTS, 1.0 / p, vc);
        add_expect(t, V_INUSE_SPACE, (double)s / p, vb);
    }
}

/* A barrier the optimiser cannot see through, so no call is a tail call
 * and no recursion becomes a loop. */
#define OPAQUE() __asm__ __volatile__("" ::: "memory")

__attribute__((noinline)) void site_small_live(unsigned n);
__attribute__((noinline)) void site_mixed_live(unsigned n);
__attribute__((noinline)) void site_large_live(unsigned n);
__attribute__((noinline)) void site_freed(unsigned n);
__attribute__((noinline)) void site_calloc_live(unsigned n);
__attribute__((noinline)) void site_realloc_live(unsigned n);
__attribute__((noinline)) void site_memalign_live(unsigned n);
__attribute__((noinline)) void site_deep_live(unsigned n);
__attribute__((noinline)) void deep_recurse(int level, unsigned n);

__attribute__((noinline)) void
site_small_live(unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        size_t s = i % 256 == 255 ? 1 + (i / 256) % 64 : 64;
        void *p = malloc(s);
        if (p == NULL)
            die("malloc");
        live_small[i] = p;
        account(SITE_SMALL, s, 1);
    }
    OPAQUE();
}

__attribute__((noinline)) void
site_mixed_live(unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        size_t s = rng_range(16, 4096);
        void *p = malloc(s);
        if (p == NULL)
            die("malloc");
        live_mixed[i] = p;
        account(SITE_MIXED, s, 1);
    }
    OPAQUE();
}

__attribute__((noinline)) void
site_large_live(unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        void *p = malloc(256 * 1024);
        if (p == NULL)
            die("malloc");
        live_large[i] = p;
        account(SITE_LARGE, 256 * 1024, 1);
    }
    OPAQUE();
}

/* Allocates in batches and frees every block: absent from in-use. */
__attribute__((noinline)) void
site_freed(unsigned n)
{
    for (unsigned done = 0; done < n; done += FREED_BATCH) {
        unsigned k = n - done < FREED_BATCH ? n - done : FREED_BATCH;
        for (unsigned i = 0; i < k; i++) {
            size_t s = rng_range(16, 8192);
            freed_batch[i] = malloc(s);
            if (freed_batch[i] == NULL)
                die("malloc");
            account(SITE_FREED, s, 0);
        }
        OPAQUE();
        for (unsigned i = 0; i < k; i++)
            free(freed_batch[i]);
    }
    OPAQUE();
}

__attribute__((noinline)) void
site_calloc_live(unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        size_t nmemb = rng_range(1, 32);
        void *p = calloc(nmemb, 48);
        if (p == NULL)
            die("calloc");
        live_calloc[i] = p;
        account(SITE_CALLOC, nmemb * 48, 1);
    }
    OPAQUE();
}

/*
 * Each block is created with realloc(NULL, s0) and grown three times (x2,
 * x4, x8). Every realloc is an allocation of its new size (and a free of the
 * old block), so alloc_space counts s0 + 2 s0 + 4 s0 + 8 s0 and alloc_objects
 * 4; only the final 8 s0 stays in use.
 */
__attribute__((noinline)) void
site_realloc_live(unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        size_t s0 = rng_range(256, 767);
        void *p = NULL;
        for (size_t m = 1; m <= 8; m *= 2) {
            void *q = realloc(p, s0 * m);
            if (q == NULL)
                die("realloc");
            ((char *)q)[s0 * m - 1] = 1;
            p = q;
            account(SITE_REALLOC, s0 * m, m == 8);
        }
        live_realloc[i] = p;
    }
    OPAQUE();
}

/* Alternates posix_memalign and aligned_alloc. */
__attribute__((noinline)) void
site_memalign_live(unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        void *p = NULL;
        if (i % 2 == 0) {
            int rc = posix_memalign(&p, 64, 2048);
            if (rc != 0) {
                errno = rc;
                die("posix_memalign");
            }
        } else {
            p = aligned_alloc(256, 2048);
            if (p == NULL)
                die("aligned_alloc");
        }
        live_memalign[i] = p;
        account(SITE_MEMALIGN, 2048, 1);
    }
    OPAQUE();
}

/* Reached through DEEP_LEVELS frames of deep_recurse: its samples are
 * deeper than HEAPPROF_STACK_DEPTH and show the depth cap. */
__attribute__((noinline)) void
site_deep_live(unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        void *p = malloc(4096);
        if (p == NULL)
            die("malloc");
        live_deep[i] = p;
        account(SITE_DEEP, 4096, 1);
    }
    OPAQUE();
}

__attribute__((noinline)) void
deep_recurse(int level, unsigned n)
{
    if (level == 0)
        site_deep_live(n);
    else
        deep_recurse(level - 1, n);
    OPAQUE();
}

typedef int (*write_path_fn)(const char *, enum heapprof_profile);

static write_path_fn
find_write_path(void)
{
#ifdef HP_TRUTH_LINKED
    return heapprof_write_path;
#else
    /* Preloaded: the SPEC exports the API from libheapprof.so for this. */
    void *sym = dlsym(RTLD_DEFAULT, "heapprof_write_path");
    write_path_fn fn;
    memcpy(&fn, &sym, sizeof fn);
    return fn;
#endif
}

/* The rate the estimator variances are computed for: HEAPPROF_RATE when it
 * is a plain number, else heapprof's default. */
static double
rate_from_env(void)
{
    const char *s = getenv("HEAPPROF_RATE");
    if (s != NULL && *s != '\0') {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno == 0 && *end == '\0' && s[0] != '-')
            return (double)v;
    }
    return (double)HEAPPROF_DEFAULT_RATE;
}

static int
write_truth(const char *path, unsigned scale)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "{\n  \"rate\": %.0f,\n  \"scale\": %u,\n", rate, scale);
    fprintf(f, "  \"deep_levels\": %d,\n  \"sites\": {\n", DEEP_LEVELS);
    for (int i = 0; i < NSITES; i++) {
        const struct site_truth *t = &truth[i];
        fprintf(f, "    \"%s\": {", t->name);
        for (int k = 0; k < NV; k++)
            fprintf(f, "\"%s\": %llu, ", value_names[k],
                    (unsigned long long)t->v[k]);
        const char *what[2] = {"var", "maxw"};
        for (int w = 0; w < 2; w++) {
            fprintf(f, "\n      \"%s\": {", what[w]);
            for (int k = 0; k < NV; k++)
                fprintf(f, "\"%s\": %.6g%s", value_names[k],
                        w == 0 ? t->var[k] : t->maxw[k],
                        k + 1 < NV ? ", " : "}");
            fputs(w == 0 ? "," : "", f);
        }
        fprintf(f, "}%s\n", i + 1 < NSITES ? "," : "");
    }
    fprintf(f, "  }\n}\n");
    return fclose(f) == 0 ? 0 : -1;
}

int
main(int argc, char **argv)
{
    if (argc < 4 || argc > 5) {
        printf("usage: %s HEAP.pb.gz ALLOCS.pb.gz TRUTH.json [SCALE_DIV]\n",
               argv[0]);
        return 64;
    }
    unsigned scale = argc == 5 ? (unsigned)strtoul(argv[4], NULL, 10) : 1;
    if (scale == 0)
        scale = 1;
    rate = rate_from_env();

    write_path_fn write_path = find_write_path();
    if (write_path == NULL) {
        printf("truth_workload: heapprof_write_path not found "
               "(run with LD_PRELOAD=libheapprof.so)\n");
        return 3;
    }

    site_small_live(N_SMALL / scale);
    site_mixed_live(N_MIXED / scale);
    site_large_live(N_LARGE / scale);
    site_freed(N_FREED / scale);
    site_calloc_live(N_CALLOC / scale);
    site_realloc_live(N_REALLOC / scale);
    site_memalign_live(N_MEMALIGN / scale);
    deep_recurse(DEEP_LEVELS, N_DEEP / scale);

    int rc = write_path(argv[1], HEAPPROF_PROFILE_HEAP);
    if (rc != 0) {
        printf("truth_workload: heapprof_write_path(%s, HEAP) = %d\n",
               argv[1], rc);
        return 4;
    }
    rc = write_path(argv[2], HEAPPROF_PROFILE_ALLOCS);
    if (rc != 0) {
        printf("truth_workload: heapprof_write_path(%s, ALLOCS) = %d\n",
               argv[2], rc);
        return 4;
    }
    if (write_truth(argv[3], scale) != 0)
        die(argv[3]);
    printf("truth_workload: wrote %s %s %s\n", argv[1], argv[2], argv[3]);
    return 0;
}
