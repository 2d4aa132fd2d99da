/*
 * Memory cost of the profiler (the spec's bar: metadata <= 2 % of the
 * profiled heap + 8 MiB). Builds a live heap of HEAP_MIB MiB (sizes 16 B -
 * 64 KiB skewed small, every byte touched) from STACKS distinct call
 * stacks, then, when heapprof is loaded (found with dlsym, so the same
 * binary runs bare), writes the heap profile twice to PROFILE (the first
 * write loads the symbolizer and fills its caches, which is memory
 * heapprof holds from then on). Prints the process's resident set at that
 * point; bench/run.sh sets it against the same run without heapprof and
 * reads heapprof's own metadata figure from the profile's comments.
 *
 * With BLOCK (bytes), every block has that size instead: a heap of big
 * blocks, most of which heapprof samples and keeps in its sample range.
 *
 * usage: memory_bench HEAP_MIB STACKS [PROFILE [BLOCK]]
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEAVES 16

static uint64_t rng = 88172645463325252ull;

static uint64_t
rng_next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static size_t fixed_size; /* BLOCK, 0 = the mix */

static size_t
pick_size(void)
{
    if (fixed_size != 0)
        return fixed_size;
    uint64_t r = rng_next();
    if (r % 10 < 7)
        return 16 + (size_t)(r >> 8) % 241; /* 16..256 B */
    return 257 + (size_t)(r >> 8) % (65536 - 257);
}

/* Distinct leaves and depths make distinct stacks. */
typedef void *(*leaf_fn)(size_t);
#define LEAF(n)                                                               \
    static __attribute__((noinline)) void *leaf##n(size_t size)             \
    {                                                                         \
        void *p = malloc(size);                                               \
        if (p != NULL)                                                        \
            memset(p, (int)n, size);                                          \
        __asm__ volatile("" ::: "memory");                                    \
        return p;                                                             \
    }
LEAF(0) LEAF(1) LEAF(2) LEAF(3) LEAF(4) LEAF(5) LEAF(6) LEAF(7)
LEAF(8) LEAF(9) LEAF(10) LEAF(11) LEAF(12) LEAF(13) LEAF(14) LEAF(15)
static const leaf_fn leaves[LEAVES] = {
    leaf0, leaf1, leaf2,  leaf3,  leaf4,  leaf5,  leaf6,  leaf7,
    leaf8, leaf9, leaf10, leaf11, leaf12, leaf13, leaf14, leaf15};

static __attribute__((noinline)) void *
descend(unsigned depth, unsigned leaf, size_t size)
{
    void *p = depth == 0 ? leaves[leaf](size) : descend(depth - 1, leaf, size);
    __asm__ volatile("" ::: "memory"); /* no tail call: one frame per level */
    return p;
}

static long
rss_kb(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = -1;
    fclose(f);
    return rss * 4;
}

int
main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr,
                "usage: memory_bench HEAP_MIB STACKS [PROFILE [BLOCK]]\n");
        return 2;
    }
    size_t heap = (size_t)strtoull(argv[1], NULL, 10) << 20;
    unsigned stacks = (unsigned)strtoul(argv[2], NULL, 10);
    if (stacks == 0)
        stacks = 1;
    if (argc > 4)
        fixed_size = (size_t)strtoull(argv[4], NULL, 10);
    size_t cap = 1 << 16, n = 0, total = 0;
    void **blocks = malloc(cap * sizeof *blocks);
    while (blocks != NULL && total < heap) {
        if (n == cap) {
            void **nb = realloc(blocks, 2 * cap * sizeof *blocks);
            if (nb == NULL)
                break;
            blocks = nb;
            cap *= 2;
        }
        size_t size = pick_size();
        unsigned s = (unsigned)(rng_next() % stacks);
        void *p = descend(s / LEAVES, s % LEAVES, size);
        if (p == NULL)
            break;
        blocks[n++] = p;
        total += size;
    }
    int (*write_path)(const char *, int) =
        (int (*)(const char *, int))dlsym(RTLD_DEFAULT, "heapprof_write_path");
    long rss_before = rss_kb();
    int rc = 0;
    if (write_path != NULL && argc > 3 && argv[3][0] != '\0') {
        rc = write_path(argv[3], 0);
        if (rc == 0)
            rc = write_path(argv[3], 0);
    }
    printf("memory heap_bytes=%zu blocks=%zu rss_kb=%ld rss_before_write_kb=%ld "
           "heapprof=%s rc=%d\n",
           total, n, rss_kb(), rss_before, write_path != NULL ? "yes" : "no", rc);
    for (size_t i = 0; i < n; i++)
        free(blocks[i]);
    free(blocks);
    return rc == 0 ? 0 : 1;
}
