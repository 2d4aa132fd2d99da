/*
 * Sampled blocks live in heapprof's sample range (src/range.h). Run under
 * LD_PRELOAD=libheapprof.so (optionally over jemalloc) at HEAPPROF_RATE=1,
 * where every block is sampled, this checks what a program sees of every
 * entry point: contents kept across realloc into, within and out of the
 * range, alignment, zeroed calloc, malloc_usable_size, frees after
 * heapprof_stop(), frees and reallocs in a fork child of blocks its parent
 * sampled; and that the blocks were in the range at all (one anonymous
 * mapping of at least 256 MiB, not the next allocator's). With
 * "--expect-outside" (HEAPPROF_RATE=0) the blocks must be the next
 * allocator's; with "--anywhere" (the default rate) either. Prints "ok" and exits 0, or names the first failure.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            printf("FAIL line %d: ", __LINE__);                                \
            printf(__VA_ARGS__);                                               \
            printf("\n");                                                      \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

/* Size of the mapping holding p (0 if none), from /proc/self/maps. */
static unsigned long
mapping_size(const void *p)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    unsigned long a, b, found = 0;
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "%lx-%lx", &a, &b) == 2 && (uintptr_t)p >= a &&
            (uintptr_t)p < b)
            found = b - a;
    if (f != NULL)
        fclose(f);
    return found;
}

/* The range is reserved as one mapping, whose first part is read-write
 * and the rest not yet: the two together, as maps lists them apart. */
static int
in_big_mapping(const void *p)
{
    unsigned long s = mapping_size(p);
    unsigned long next = mapping_size((const char *)p + s);
    return s + next >= (256ul << 20) || s >= (256ul << 20);
}

static void
fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i * 7);
}

static void
expect_fill(const unsigned char *p, size_t n, unsigned seed, const char *what)
{
    for (size_t i = 0; i < n; i++)
        CHECK(p[i] == (unsigned char)(seed + i * 7), "%s: byte %zu changed",
              what, i);
}

static void
check_realloc_moves(void)
{
    size_t sizes[] = {24, 700, 5000, 70000, 3 << 20, 100, 1};
    unsigned char *p = malloc(10);
    fill(p, 10, 1);
    size_t have = 10;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *q = realloc(p, sizes[i]);
        CHECK(q != NULL, "realloc to %zu", sizes[i]);
        size_t kept = have < sizes[i] ? have : sizes[i];
        expect_fill(q, kept, 1, "realloc");
        fill(q, sizes[i], 1);
        p = q;
        have = sizes[i];
    }
    free(realloc(p, 0)); /* NULL from glibc and jemalloc 5.3; freed */
}

static void
check_forms(int expect_inside)
{
    void *m = malloc(1000);
    CHECK(expect_inside < 0 || in_big_mapping(m) == expect_inside,
          "malloc block %p is %s", m,
          expect_inside ? "not in the range" : "in the range");
    CHECK(malloc_usable_size(m) >= 1000, "usable %zu", malloc_usable_size(m));
    unsigned char *c = calloc(3000, 7);
    for (size_t i = 0; i < 21000; i++)
        CHECK(c[i] == 0, "calloc byte %zu", i);
    void *a = NULL;
    CHECK(posix_memalign(&a, 4096, 12345) == 0 && (uintptr_t)a % 4096 == 0,
          "posix_memalign");
    void *bad = NULL;
    CHECK(posix_memalign(&bad, 3, 8) == 22 && bad == NULL,
          "posix_memalign(3) must be EINVAL");
    void *b = aligned_alloc(256, 1024);
    CHECK(b != NULL && (uintptr_t)b % 256 == 0, "aligned_alloc");
    void *d = memalign(65536, 100);
    CHECK(d != NULL && (uintptr_t)d % 65536 == 0, "memalign 64K");
    void *e = memalign(1 << 20, 100); /* above the range's alignment */
    CHECK(e != NULL && (uintptr_t)e % (1 << 20) == 0, "memalign 1M");
    void *v = valloc(5000);
    long page = sysconf(_SC_PAGESIZE);
    CHECK(v != NULL && (uintptr_t)v % (uintptr_t)page == 0, "valloc");
    void *pv = pvalloc(1);
    CHECK(pv != NULL && malloc_usable_size(pv) >= (size_t)page, "pvalloc");
    void *big = malloc(64 << 20);
    memset(big, 1, 64 << 20);
    CHECK(malloc_usable_size(big) >= (64u << 20), "big usable");
    free(m);
    free(c);
    free(a);
    free(b);
    free(d);
    free(e);
    free(v);
    free(pv);
    free(big);
    free(NULL);
}

/* A fork child frees and reallocs blocks its parent sampled. */
static void
check_fork(void)
{
    enum { N = 64 };
    unsigned char *held[N];
    for (int i = 0; i < N; i++) {
        held[i] = malloc((size_t)(i + 1) * 900);
        fill(held[i], (size_t)(i + 1) * 900, (unsigned)i);
    }
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        for (int i = 0; i < N; i++) {
            expect_fill(held[i], (size_t)(i + 1) * 900, (unsigned)i, "child");
            held[i] = i % 2 ? realloc(held[i], 100000) : (free(held[i]), NULL);
        }
        for (int i = 0; i < N; i++)
            free(held[i]);
        _exit(0);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
              WEXITSTATUS(status) == 0,
          "fork child status %d", status);
    for (int i = 0; i < N; i++) {
        expect_fill(held[i], (size_t)(i + 1) * 900, (unsigned)i, "parent");
        free(held[i]);
    }
}

/* Blocks sampled before heapprof_stop() are realloc'ed and freed after
 * it; a range block such a realloc shrinks stays in its slot (not sampled,
 * it would otherwise be copied out) while the range's bound allows. */
static void
check_free_after_stop(int expect_inside)
{
    int (*stop)(void);
    *(void **)&stop = dlsym(RTLD_DEFAULT, "heapprof_stop");
    CHECK(stop != NULL, "heapprof_stop not found");
    enum { N = 32 };
    unsigned char *held[N];
    for (int i = 0; i < N; i++) {
        held[i] = malloc((size_t)i * 5000 + 1);
        fill(held[i], (size_t)i * 5000 + 1, (unsigned)i);
    }
    CHECK(stop() == 0, "heapprof_stop");
    for (int i = 1; i < N; i++) {
        if (i % 3 == 0)
            continue;
        unsigned char *q = realloc(held[i], 200);
        CHECK(q != NULL, "realloc after heapprof_stop");
        expect_fill(q, 200, (unsigned)i, "realloc after heapprof_stop");
        /* The first few slots (8 to 32 KiB) are within the bound. */
        CHECK(i > 5 || expect_inside != 1 || q == held[i],
              "a %d-byte range block shrunk to 200 moved", i * 5000 + 1);
        held[i] = q;
    }
    for (int i = 0; i < N; i++)
        free(held[i]);
    void *after = malloc(300); /* not sampled any more: the next allocator's */
    CHECK(!in_big_mapping(after), "a block allocated after heapprof_stop "
                                  "is in the range");
    free(after);
}

int
main(int argc, char **argv)
{
    int expect_inside = 1;
    if (argc > 1 && strcmp(argv[1], "--expect-outside") == 0)
        expect_inside = 0;
    else if (argc > 1 && strcmp(argv[1], "--anywhere") == 0)
        expect_inside = -1;
    for (int round = 0; round < 20; round++) {
        check_forms(expect_inside);
        check_realloc_moves();
    }
    check_fork();
    check_free_after_stop(expect_inside);
    printf("ok\n");
    return 0;
}
