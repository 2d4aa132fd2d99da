/*
 * A pool-allocator workload with known truth for check_gc.py, linked with
 * libheapprof and reporting through the custom-allocator hooks. The pools
 * take their memory from mmap, so nothing here goes through malloc.
 *
 * Sites (each a real frame; pool_alloc is always inlined so that the
 * caller of heapprof_on_alloc_owned, the stack's leaf, is the site):
 *   site_kept         pool "main", never destroyed
 *   site_half_freed   pool "main", every other block freed one by one
 *   site_realloc      pool "main", blocks grown with pool_realloc
 *   site_destroyed    64 pools, all destroyed (bulk free)
 *   site_request      per-request pools: created, filled, destroyed
 *   site_reset        one pool reset (bulk free, memory reused) each round;
 *                     only the last round stays in use
 *   site_thread       two threads with their own pools; each destroys
 *                     half of them, the main thread destroys one more
 *
 * Usage: pool_workload OUT_DIR SCALE. Writes OUT_DIR/heap.pb.gz and prints
 * "TRUTH {json}" with, per site, the four values and the standard
 * deviation of their estimates at HEAPPROF_RATE.
 */
#include <heapprof.h>

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define NOINLINE __attribute__((noinline))
#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* ------------------------------------------------------------ the pool */

#define CHUNK_SIZE (1u << 20)

struct chunk {
    struct chunk *next;
    size_t used;
    char data[];
};

struct pool {
    struct chunk *chunks;
    pthread_mutex_t lock;
};

static struct pool *
pool_create(void)
{
    struct pool *p = mmap(NULL, sizeof *p, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        abort();
    p->chunks = NULL;
    pthread_mutex_init(&p->lock, NULL);
    return p;
}

static void *
pool_carve(struct pool *p, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    struct chunk *c = p->chunks;
    if (c == NULL || c->used + size > CHUNK_SIZE - sizeof *c) {
        size_t want = size + sizeof *c > CHUNK_SIZE ? size + sizeof *c
                                                    : CHUNK_SIZE;
        c = mmap(NULL, want, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (c == MAP_FAILED)
            abort();
        c->next = p->chunks;
        c->used = 0;
        p->chunks = c;
    }
    void *r = c->data + c->used;
    c->used += size;
    return r;
}

/* The hook runs under the pool's own lock, as a real allocator would. */
ALWAYS_INLINE void *
pool_alloc(struct pool *p, size_t size)
{
    pthread_mutex_lock(&p->lock);
    void *r = pool_carve(p, size);
    heapprof_on_alloc_owned(r, size, p);
    pthread_mutex_unlock(&p->lock);
    return r;
}

ALWAYS_INLINE void *
pool_realloc(struct pool *p, void *old, size_t old_size, size_t size)
{
    pthread_mutex_lock(&p->lock);
    void *r = pool_carve(p, size);
    if (old != NULL)
        memcpy(r, old, old_size < size ? old_size : size);
    heapprof_on_realloc_owned(old, r, size, p);
    pthread_mutex_unlock(&p->lock);
    return r;
}

static void
pool_free(struct pool *p, void *ptr)
{
    pthread_mutex_lock(&p->lock);
    heapprof_on_free(ptr); /* the memory goes back with the pool */
    pthread_mutex_unlock(&p->lock);
}

/* Free every block at once and keep the first chunk for reuse. */
static void
pool_reset(struct pool *p)
{
    pthread_mutex_lock(&p->lock);
    heapprof_on_free_bulk(p);
    struct chunk *c = p->chunks;
    while (c != NULL && c->next != NULL) {
        struct chunk *n = c->next;
        c->next = n->next;
        munmap(n, CHUNK_SIZE);
    }
    if (c != NULL)
        c->used = 0;
    pthread_mutex_unlock(&p->lock);
}

static void
pool_destroy(struct pool *p)
{
    pthread_mutex_lock(&p->lock);
    heapprof_on_free_bulk(p);
    pthread_mutex_unlock(&p->lock);
    /* A chunk bigger than CHUNK_SIZE is never made here (sizes < 4 KiB). */
    for (struct chunk *c = p->chunks, *n; c != NULL; c = n) {
        n = c->next;
        munmap(c, CHUNK_SIZE);
    }
    pthread_mutex_destroy(&p->lock);
    munmap(p, sizeof *p);
}

/* ------------------------------------------------------------ the truth */

enum {
    S_KEPT, S_HALF_FREED, S_REALLOC, S_DESTROYED, S_REQUEST, S_RESET,
    S_THREAD, S_N
};
static const char *const site_names[S_N] = {
    "site_kept", "site_half_freed", "site_realloc", "site_destroyed",
    "site_request", "site_reset", "site_thread",
};

struct truth {
    double v[4];   /* alloc_objects, alloc_space, inuse_objects, inuse_space */
    double var[4];
};
static struct truth truth[S_N];
static pthread_mutex_t truth_lock = PTHREAD_MUTEX_INITIALIZER;
static double rate = HEAPPROF_DEFAULT_RATE;

static void
weights(size_t size, double *vo, double *vb)
{
    double p = rate <= 1 ? 1.0 : 1.0 - exp(-(double)size / rate);
    *vo = (1 - p) / p;
    *vb = (double)size * size * (1 - p) / p;
}

static void
alloced(int site, size_t size)
{
    double vo, vb;
    weights(size, &vo, &vb);
    pthread_mutex_lock(&truth_lock);
    struct truth *t = &truth[site];
    t->v[0] += 1;
    t->v[1] += (double)size;
    t->v[2] += 1;
    t->v[3] += (double)size;
    t->var[0] += vo;
    t->var[1] += vb;
    t->var[2] += vo;
    t->var[3] += vb;
    pthread_mutex_unlock(&truth_lock);
}

static void
freed(int site, size_t size)
{
    double vo, vb;
    weights(size, &vo, &vb);
    pthread_mutex_lock(&truth_lock);
    struct truth *t = &truth[site];
    t->v[2] -= 1;
    t->v[3] -= (double)size;
    t->var[2] -= vo;
    t->var[3] -= vb;
    pthread_mutex_unlock(&truth_lock);
}

static __thread uint64_t rng;

static size_t
rand_size(size_t lo, size_t hi)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return lo + (size_t)(rng % (hi - lo + 1));
}

/* ------------------------------------------------------------ the sites */

NOINLINE static void *
site_kept(struct pool *p, size_t size)
{
    return pool_alloc(p, size);
}

NOINLINE static void *
site_half_freed(struct pool *p, size_t size)
{
    return pool_alloc(p, size);
}

NOINLINE static void *
site_realloc(struct pool *p, void *old, size_t old_size, size_t size)
{
    return pool_realloc(p, old, old_size, size);
}

NOINLINE static void *
site_destroyed(struct pool *p, size_t size)
{
    return pool_alloc(p, size);
}

NOINLINE static void *
site_request(struct pool *p, size_t size)
{
    return pool_alloc(p, size);
}

NOINLINE static void *
site_reset(struct pool *p, size_t size)
{
    return pool_alloc(p, size);
}

NOINLINE static void *
site_thread(struct pool *p, size_t size)
{
    return pool_alloc(p, size);
}

/* Sizes are multiples of 16 so that the truth is the carved size too. */
#define SIZE16(lo, hi) (rand_size((lo) / 16, (hi) / 16) * 16)

static double scale = 1;

/* What one pool holds, to take it out of the in-use truth when the pool
 * is destroyed. */
struct pool_truth {
    double objects, bytes, var_objects, var_bytes;
};

static void
destroyed(int site, const struct pool_truth *pt)
{
    pthread_mutex_lock(&truth_lock);
    struct truth *t = &truth[site];
    t->v[2] -= pt->objects;
    t->v[3] -= pt->bytes;
    t->var[2] -= pt->var_objects;
    t->var[3] -= pt->var_bytes;
    pthread_mutex_unlock(&truth_lock);
}

static void
fill(int site, void *(*fn)(struct pool *, size_t), struct pool *p,
     size_t count, struct pool_truth *pt)
{
    memset(pt, 0, sizeof *pt);
    for (size_t k = 0; k < count; k++) {
        size_t s = SIZE16(512, 2048);
        fn(p, s);
        alloced(site, s);
        double vo, vb;
        weights(s, &vo, &vb);
        pt->objects += 1;
        pt->bytes += (double)s;
        pt->var_objects += vo;
        pt->var_bytes += vb;
    }
}

#define THREAD_POOLS 16

struct thread_arg {
    uint64_t seed;
    struct pool *last;          /* left for the main thread to destroy */
    struct pool_truth last_truth;
};

static void *
thread_main(void *argp)
{
    struct thread_arg *arg = argp;
    rng = arg->seed;
    size_t per_pool = (size_t)(1536 * scale);
    for (int i = 0; i < THREAD_POOLS; i++) {
        struct pool *p = pool_create();
        struct pool_truth pt;
        fill(S_THREAD, site_thread, p, per_pool, &pt);
        if (i == THREAD_POOLS - 1) {
            arg->last = p;
            arg->last_truth = pt;
        } else if (i % 2 == 0) {
            pool_destroy(p);
            destroyed(S_THREAD, &pt);
        }
        /* Odd pools stay alive (and in use) to the end. */
    }
    return NULL;
}

int
main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s OUT_DIR SCALE\n", argv[0]);
        return 2;
    }
    scale = atof(argv[2]);
    rate = (double)heapprof_get_rate();
    rng = 0x9E3779B97F4A7C15ull;

    struct pool *main_pool = pool_create();
    size_t n = (size_t)(32768 * scale);
    for (size_t i = 0; i < n; i++) {
        size_t s = SIZE16(512, 2048);
        site_kept(main_pool, s);
        alloced(S_KEPT, s);
        s = SIZE16(512, 2048);
        void *b = site_half_freed(main_pool, s);
        alloced(S_HALF_FREED, s);
        if (i % 2 == 1) {
            pool_free(main_pool, b);
            freed(S_HALF_FREED, s);
        }
    }
    n = (size_t)(16384 * scale);
    for (size_t i = 0; i < n; i++) {
        size_t s = SIZE16(256, 1024);
        void *b = site_realloc(main_pool, NULL, 0, s);
        alloced(S_REALLOC, s);
        for (int k = 0; k < 3; k++) {
            size_t ns = s + SIZE16(256, 1024);
            b = site_realloc(main_pool, b, s, ns);
            freed(S_REALLOC, s);
            alloced(S_REALLOC, ns);
            s = ns;
        }
    }

    struct pool *many[64];
    for (int i = 0; i < 64; i++)
        many[i] = pool_create();
    n = (size_t)(16384 * scale);
    for (size_t i = 0; i < n; i++) {
        size_t s = SIZE16(512, 2048);
        site_destroyed(many[i % 64], s);
        alloced(S_DESTROYED, s);
    }
    for (int i = 0; i < 64; i++)
        pool_destroy(many[i]);
    truth[S_DESTROYED].v[2] = truth[S_DESTROYED].v[3] = 0;
    truth[S_DESTROYED].var[2] = truth[S_DESTROYED].var[3] = 0;

    n = (size_t)(256 * scale);
    for (size_t r = 0; r < n; r++) {
        struct pool *p = pool_create();
        for (int k = 0; k < 64; k++) {
            size_t s = SIZE16(512, 2048);
            site_request(p, s);
            alloced(S_REQUEST, s);
        }
        pool_destroy(p);
    }
    truth[S_REQUEST].v[2] = truth[S_REQUEST].v[3] = 0;
    truth[S_REQUEST].var[2] = truth[S_REQUEST].var[3] = 0;

    struct pool *rp = pool_create();
    for (int round = 0; round < 8; round++) {
        if (round > 0) {
            pool_reset(rp);
            truth[S_RESET].v[2] = truth[S_RESET].v[3] = 0;
            truth[S_RESET].var[2] = truth[S_RESET].var[3] = 0;
        }
        size_t m = (size_t)(16384 * scale);
        for (size_t k = 0; k < m; k++) {
            size_t s = SIZE16(512, 2048);
            site_reset(rp, s);
            alloced(S_RESET, s);
        }
    }

    /* Two threads at once; the last pool of each is destroyed from here,
     * another thread than the one that filled it. */
    pthread_t th[2];
    struct thread_arg targ[2] = {{.seed = 0x1234567887654321ull},
                                 {.seed = 0x0F0F0F0FF0F0F0F0ull}};
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, thread_main, &targ[i]);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        pool_destroy(targ[i].last);
        destroyed(S_THREAD, &targ[i].last_truth);
    }

    const char *dir = argv[1];
    char path[4096];
    snprintf(path, sizeof path, "%s/heap.pb.gz", dir);
    int rc = heapprof_write_path(path, HEAPPROF_PROFILE_HEAP);
    printf("heapprof_write_path = %d\n", rc);
    printf("TRUTH {\"rate\": %.0f, \"sites\": {", rate);
    for (int i = 0; i < S_N; i++) {
        const struct truth *t = &truth[i];
        printf("%s\"%s\": {\"alloc_objects\": %.0f, \"alloc_space\": %.0f, "
               "\"inuse_objects\": %.0f, \"inuse_space\": %.0f, "
               "\"sd\": [%.3f, %.3f, %.3f, %.3f]}",
               i ? ", " : "", site_names[i], t->v[0], t->v[1], t->v[2],
               t->v[3], sqrt(fmax(t->var[0], 0)), sqrt(fmax(t->var[1], 0)),
               sqrt(fmax(t->var[2], 0)), sqrt(fmax(t->var[3], 0)));
    }
    printf("}}\n");
    return rc == 0 ? 0 : 1;
}
