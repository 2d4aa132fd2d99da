/*
 * Hostile host: worker threads allocate with every function of the malloc
 * family while the main thread forks (children allocate, then exit with a
 * known code; some exec /bin/true, one forks a grandchild) and dlopens and
 * dlcloses libm and a plugin that allocates in its constructor, its
 * destructor and its entry point. A constructor and a destructor of this
 * program allocate too, and a detached thread is still allocating when the
 * process exits. Every result that reaches stdout is deterministic: the
 * per-thread checksums depend only on each thread's own PRNG.
 *
 * usage: hostile_mt_fork_dlopen PLUGIN.so
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define N_WORKERS 4
#define N_SLOTS 256
#define N_ITER 15000
#define N_FORKS 24
#define N_DLOPEN 30

static int failures;

#define CHECK(cond)                                                           \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "check failed at line %d: %s\n", __LINE__, #cond); \
            __atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED);               \
        }                                                                     \
    } while (0)

static uint64_t
rng_next(uint64_t *s)
{
    /* xorshift64* */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static size_t page;
/* Volatile so the compiler does not warn about the failing requests. */
static volatile size_t huge = SIZE_MAX;

/* ---------------------------------------------------------- constructor */

static char *ctor_block;
static char *ctor_dup;

__attribute__((constructor(101))) static void
early_allocations(void)
{
    /* Runs before main and before ordinary constructors. */
    ctor_block = malloc(100);
    CHECK(ctor_block != NULL);
    memset(ctor_block, 'c', 100);
    ctor_block = realloc(ctor_block, 5000);
    CHECK(ctor_block != NULL && ctor_block[99] == 'c');
    ctor_dup = strdup("constructor");
    free(calloc(3, 7));
}

__attribute__((destructor)) static void
late_frees(void)
{
    free(ctor_block);
    free(ctor_dup);
    free(malloc(77));
}

/* -------------------------------------------------------------- workers */

struct slot {
    unsigned char *p;
    size_t size;   /* bytes whose content is known */
    unsigned char fill;
};

static void
fill(struct slot *s, unsigned char *p, size_t size, unsigned char c)
{
    s->p = p;
    s->size = size;
    s->fill = c;
    memset(p, c, size);
}

static int
intact(const struct slot *s)
{
    for (size_t i = 0; i < s->size; i++)
        if (s->p[i] != s->fill)
            return 0;
    return 1;
}

static size_t
pick_size(uint64_t *rng)
{
    uint64_t r = rng_next(rng);
    switch (r & 15) {
    case 0:
        return 0;
    case 1:
        return 4096 + (r >> 8) % 150000; /* large: sampled often */
    case 2:
    case 3:
        return 512 + (r >> 8) % 4096;
    default:
        return 1 + (r >> 8) % 256;
    }
}

static void
release(struct slot *s)
{
    if (s->p != NULL) {
        CHECK(intact(s));
        free(s->p);
    }
    s->p = NULL;
    s->size = 0;
}

struct worker {
    pthread_t tid;
    unsigned index;
    uint64_t checksum;
};

static void
one_op(struct slot *slots, unsigned nslots, uint64_t *rng, uint64_t *sum)
{
    uint64_t r = rng_next(rng);
    struct slot *s = &slots[r % nslots];
    unsigned op = (unsigned)((r >> 16) % 20);
    unsigned char c = (unsigned char)(r >> 40);
    size_t size = pick_size(rng);
    void *p = NULL;

    *sum = *sum * 31 + op * 1000003u + size;
    switch (op) {
    case 0:
    case 1:
    case 2: /* malloc */
        release(s);
        p = malloc(size);
        CHECK(p != NULL);
        if (p != NULL)
            fill(s, p, size, c);
        break;
    case 3: { /* calloc: must be zero */
        release(s);
        size_t n = 1 + size / 8;
        unsigned char *q = calloc(n, 8);
        CHECK(q != NULL);
        if (q != NULL) {
            for (size_t i = 0; i < n * 8; i++)
                if (q[i] != 0) {
                    CHECK(!"calloc memory not zero");
                    break;
                }
            fill(s, q, n * 8, c);
        }
        break;
    }
    case 4:
    case 5: /* realloc keeps the prefix */
        if (s->p == NULL) {
            p = realloc(NULL, size + 1);
            CHECK(p != NULL);
            if (p != NULL)
                fill(s, p, size + 1, c);
        } else {
            CHECK(intact(s));
            unsigned char *q = realloc(s->p, size + 1);
            CHECK(q != NULL);
            if (q != NULL) {
                size_t keep = s->size < size + 1 ? s->size : size + 1;
                for (size_t i = 0; i < keep; i++)
                    if (q[i] != s->fill) {
                        CHECK(!"realloc lost the prefix");
                        break;
                    }
                fill(s, q, size + 1, c);
            }
        }
        break;
    case 6: /* realloc(p, 0): glibc frees p and returns NULL */
        if (s->p != NULL) {
            CHECK(intact(s));
            p = realloc(s->p, 0);
            s->p = NULL;
            s->size = 0;
            free(p); /* whatever the allocator returned */
        }
        break;
    case 7: { /* reallocarray, and its overflow leaving the block alone */
        if (s->p != NULL)
            CHECK(intact(s));
        unsigned char *q = reallocarray(s->p, size + 1, 2);
        CHECK(q != NULL);
        if (q != NULL)
            fill(s, q, (size + 1) * 2, c);
        errno = 0;
        void *bad = reallocarray(s->p, huge / 2, 3);
        CHECK(bad == NULL && errno == ENOMEM);
        CHECK(intact(s));
        break;
    }
    case 8: { /* posix_memalign, also with a bad alignment */
        release(s);
        size_t align = (size_t)16 << ((r >> 24) % 9);
        int rc = posix_memalign(&p, align, size);
        CHECK(rc == 0 && ((uintptr_t)p & (align - 1)) == 0);
        if (rc == 0)
            fill(s, p, size, c);
        void *bad = (void *)1;
        CHECK(posix_memalign(&bad, 24, 16) == EINVAL && bad == (void *)1);
        break;
    }
    case 9: { /* aligned_alloc */
        release(s);
        size_t align = (size_t)8 << ((r >> 24) % 10);
        size_t sz = (size + align - 1) / align * align;
        p = aligned_alloc(align, sz);
        CHECK(p != NULL && ((uintptr_t)p & (align - 1)) == 0);
        if (p != NULL)
            fill(s, p, sz, c);
        break;
    }
    case 10: { /* memalign */
        release(s);
        size_t align = (size_t)32 << ((r >> 24) % 8);
        p = memalign(align, size);
        CHECK(p != NULL && ((uintptr_t)p & (align - 1)) == 0);
        if (p != NULL)
            fill(s, p, size, c);
        break;
    }
    case 11: /* valloc */
        release(s);
        p = valloc(size % 9000);
        CHECK(p != NULL && ((uintptr_t)p & (page - 1)) == 0);
        if (p != NULL)
            fill(s, p, size % 9000, c);
        break;
    case 12: { /* pvalloc rounds up to whole pages */
        release(s);
        size_t sz = size % 9000;
        p = pvalloc(sz);
        CHECK(p != NULL && ((uintptr_t)p & (page - 1)) == 0);
        if (p != NULL) {
            /* glibc serves pvalloc(0) with a minimal block. */
            size_t rounded = (sz + page - 1) / page * page;
            CHECK(malloc_usable_size(p) >= rounded);
            fill(s, p, rounded, c);
        }
        break;
    }
    case 13: /* malloc_usable_size */
        if (s->p != NULL) {
            size_t u = malloc_usable_size(s->p);
            CHECK(u >= s->size);
            memset(s->p, s->fill, u); /* the whole usable size is ours */
        }
        CHECK(malloc_usable_size(NULL) == 0);
        break;
    case 14: { /* strdup / strndup */
        release(s);
        char buf[300];
        size_t n = size % sizeof buf;
        memset(buf, 'a' + (c % 26), n);
        buf[n] = '\0';
        char *d = (r >> 30) & 1 ? strdup(buf) : strndup(buf, n / 2 + 1);
        CHECK(d != NULL);
        if (d != NULL) {
            size_t len = strlen(d);
            CHECK(len == ((r >> 30) & 1 ? n : (n < n / 2 + 1 ? n : n / 2 + 1)));
            fill(s, (unsigned char *)d, len, (unsigned char)('a' + (c % 26)));
        }
        break;
    }
    case 15: /* free(NULL), and plain free */
        free(NULL);
        release(s);
        break;
    case 16: /* failing requests set errno and return NULL */
        errno = 0;
        CHECK(malloc(huge - 4096) == NULL && errno == ENOMEM);
        errno = 0;
        CHECK(calloc(huge / 4, 8) == NULL && errno == ENOMEM);
        break;
    default: /* short-lived block of a realistic size */
        p = malloc(size);
        CHECK(p != NULL);
        if (p != NULL)
            memset(p, c, size);
        free(p);
        break;
    }
}

static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    uint64_t rng = 0x9E3779B97F4A7C15ull * (w->index + 1);
    uint64_t sum = w->index;
    struct slot *slots = calloc(N_SLOTS, sizeof *slots);
    CHECK(slots != NULL);
    if (slots == NULL)
        return NULL;
    for (int i = 0; i < N_ITER; i++)
        one_op(slots, N_SLOTS, &rng, &sum);
    for (int i = 0; i < N_SLOTS; i++) {
        sum = sum * 31 + slots[i].size;
        release(&slots[i]);
    }
    free(slots);
    w->checksum = sum;
    return NULL;
}

/* A detached thread that is still allocating when the process exits;
 * forever_rounds says it is under way. */
static unsigned long forever_rounds;

static void *
forever_main(void *arg)
{
    (void)arg;
    uint64_t rng = 42;
    for (;;) {
        void *p = malloc(1 + rng_next(&rng) % 100000);
        free(p);
        __atomic_add_fetch(&forever_rounds, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

/* -------------------------------------------------------------- forking */

/* Child work: allocate with several functions, verify, exit with code. */
static int
child_work(int i)
{
    uint64_t rng = (uint64_t)i + 1;
    struct slot slots[32] = {{0}};
    uint64_t sum = 0;
    for (int k = 0; k < 400; k++)
        one_op(slots, 32, &rng, &sum);
    for (int k = 0; k < 32; k++)
        release(&slots[k]);
    char *d = strdup("child");
    int ok = d != NULL && strcmp(d, "child") == 0;
    free(d);
    return (ok && failures == 0) ? 10 + i % 50 : 1;
}

static int
fork_round(int i)
{
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return -1;
    }
    if (pid == 0) {
        if (i % 12 == 5) {
            execl("/bin/true", "true", (char *)NULL);
            _exit(127);
        }
        if (i % 12 == 7) {
            /* A grandchild: fork again from the child. */
            pid_t g = fork();
            if (g == 0)
                _exit(child_work(i + 1));
            int st = 0;
            if (g < 0 || waitpid(g, &st, 0) != g || !WIFEXITED(st))
                _exit(2);
            _exit(WEXITSTATUS(st) + 1);
        }
        int code = child_work(i);
        if (i % 2 == 0)
            exit(code); /* atexit handlers and destructors run */
        _exit(code);
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

/* ------------------------------------------------------------ dlopening */

static double
dl_round(const char *plugin, int i, unsigned long *plugin_sum)
{
    double v = 0;
    void *m = dlopen("libm.so.6", RTLD_NOW | RTLD_LOCAL);
    if (m == NULL) {
        fprintf(stderr, "dlopen libm: %s\n", dlerror());
        __atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED);
    } else {
        double (*cosp)(double) = (double (*)(double))dlsym(m, "cos");
        CHECK(cosp != NULL);
        if (cosp != NULL)
            v = cosp((double)i / 8);
        dlclose(m);
    }
    void *h = dlopen(plugin, (i & 1 ? RTLD_LAZY : RTLD_NOW) | RTLD_LOCAL);
    if (h == NULL) {
        fprintf(stderr, "dlopen plugin: %s\n", dlerror());
        __atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED);
        return v;
    }
    unsigned long (*work)(int) = (unsigned long (*)(int))dlsym(h, "hostile_plugin_work");
    CHECK(work != NULL);
    if (work != NULL)
        *plugin_sum += work(i);
    CHECK(dlclose(h) == 0);
    return v;
}

int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PLUGIN.so\n", argv[0]);
        return 2;
    }
    page = (size_t)sysconf(_SC_PAGESIZE);
    setvbuf(stdout, NULL, _IOFBF, 0); /* a fully buffered, allocated buffer */

    struct worker w[N_WORKERS];
    for (unsigned i = 0; i < N_WORKERS; i++) {
        w[i].index = i;
        w[i].checksum = 0;
        if (pthread_create(&w[i].tid, NULL, worker_main, &w[i]) != 0) {
            perror("pthread_create");
            return 3;
        }
    }

    /* Forks and dlopens interleaved, while the workers allocate. */
    unsigned long codes = 0, plugin_sum = 0;
    double cos_sum = 0;
    for (int i = 0; i < N_FORKS || i < N_DLOPEN; i++) {
        if (i < N_FORKS) {
            int code = fork_round(i);
            if (code < 0)
                __atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED);
            else
                codes = codes * 7 + (unsigned long)code;
        }
        if (i < N_DLOPEN)
            cos_sum += dl_round(argv[1], i, &plugin_sum);
    }

    for (unsigned i = 0; i < N_WORKERS; i++)
        pthread_join(w[i].tid, NULL);

    printf("child exit codes checksum %lu\n", codes);
    printf("plugin checksum %lu\n", plugin_sum);
    printf("cos sum %.9f\n", cos_sum);
    for (unsigned i = 0; i < N_WORKERS; i++)
        printf("worker %u checksum %016llx\n", i,
               (unsigned long long)w[i].checksum);
    printf("ctor block %c%c %s\n", ctor_block[0], ctor_block[99], ctor_dup);
    printf("failures %d\n", failures);

    pthread_t forever;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_create(&forever, &attr, forever_main, NULL);
    pthread_attr_destroy(&attr);
    /* Exit once it is allocating (in the middle of malloc, most likely). */
    while (__atomic_load_n(&forever_rounds, __ATOMIC_RELAXED) < 100)
        sched_yield();
    return failures == 0 ? 0 : 1;
}
