/*
 * Frames of every shape the frame cache (src/frame_cache.h) meets, for
 * check_unwind_shapes.py: built -O2 without frame pointers, except where
 * a shape needs one. Each site allocates PER_SITE blocks from the same
 * call chain while something about its frame changes from call to call
 * (a variable-length array, the stack's alignment, recursion depth, a
 * second thread; a third thread's stacks are always 40 frames deep), so a cached rule that was right once but not always
 * shows up as a wrong stack. Prints "truth SITE COUNT BYTES"; the profile
 * is written to DIR/shapes.pb.gz.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <heapprof.h>

#define PER_SITE 300
#define BLOCK 256
#define NOINLINE __attribute__((noinline, noclone))
#define DEEP 40

static void *volatile kept[9 * PER_SITE];
static int nkept;
static volatile int sink;

static void
keep(void *p)
{
    kept[__atomic_fetch_add(&nkept, 1, __ATOMIC_RELAXED)] = p;
}

/* A frame that moves rsp by a different amount on every call: GCC gives
 * it a frame pointer, and the CFA must be found from rbp. */
NOINLINE static void
vla_site(int n)
{
    char buf[n];
    memset(buf, n, (size_t)n);
    sink = buf[n / 2];
    keep(malloc(BLOCK));
}

/* A local aligned beyond the ABI's 16 bytes: GCC rounds rsp down, so the
 * distance from rsp (and from rbp) to the CFA depends on the caller. */
NOINLINE static void
aligned_site(void)
{
    alignas(64) char buf[64];
    memset(buf, 1, sizeof buf);
    sink = buf[7];
    keep(malloc(BLOCK));
}

/* Calls aligned_site with rsp moved by 16 * k bytes. */
NOINLINE static void
misalign(int k)
{
    char pad[16 * k + 1];
    pad[0] = 1;
    sink = pad[0];
    aligned_site();
    sink = pad[0];
}

/* A frame of 256 KiB. */
NOINLINE static void
big_site(int i)
{
    char buf[256 * 1024];
    memset(buf, i, sizeof buf);
    sink = buf[i];
    keep(malloc(BLOCK));
}

/* Recursion to a depth that changes from call to call. */
NOINLINE static void
recurse_site(int depth)
{
    if (depth > 0) {
        recurse_site(depth - 1);
        sink = depth;
        return;
    }
    keep(malloc(BLOCK));
}

/* Recursion always 40 deep: stacks longer than HEAPPROF_STACK_DEPTH at
 * one position, cut at the same frame every time. */
NOINLINE static void
deep_site(int depth)
{
    if (depth > 0) {
        deep_site(depth - 1);
        sink = -depth; /* not recurse_site's code: no identical folding */
        return;
    }
    keep(malloc(BLOCK));
}

/* A frame-pointer frame among frames without. */
__attribute__((noinline, noclone,
               optimize("no-omit-frame-pointer"))) static void
fp_site(int i)
{
    char buf[32];
    memset(buf, i, sizeof buf);
    sink = buf[i % 32];
    keep(malloc(BLOCK));
}

NOINLINE static void
run_sites(void)
{
    for (int i = 0; i < PER_SITE; i++) {
        vla_site(16 + (i * 37) % 4000);
        misalign(i % 4);
        big_site(i % 64);
        recurse_site(1 + i % 24);
        fp_site(i);
    }
}

/* Its own thread: no shallower stack there raises what its walks may read
 * (stack.c's walk_top) above the cut. */
NOINLINE static void *
deep_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < PER_SITE; i++)
        deep_site(DEEP);
    return NULL;
}

NOINLINE static void *
thread_site(void *arg)
{
    (void)arg;
    for (int i = 0; i < PER_SITE; i++)
        recurse_site(1 + i % 5);
    return NULL;
}

int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    run_sites();
    pthread_t t, deep;
    if (pthread_create(&t, NULL, thread_site, NULL) != 0 ||
        pthread_join(t, NULL) != 0 ||
        pthread_create(&deep, NULL, deep_thread, NULL) != 0 ||
        pthread_join(deep, NULL) != 0) {
        fprintf(stderr, "pthread_create failed\n");
        return 1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/shapes.pb.gz", argv[1]);
    int rc = heapprof_write_path(path, HEAPPROF_PROFILE_HEAP);
    if (rc != 0) {
        fprintf(stderr, "heapprof_write_path: %d\n", rc);
        return 1;
    }
    const char *sites[] = {"vla_site", "aligned_site", "big_site", "fp_site",
                           "deep_site"};
    for (int s = 0; s < 5; s++)
        printf("truth %s %d %d\n", sites[s], PER_SITE, PER_SITE * BLOCK);
    printf("truth recurse_site %d %d\n", 2 * PER_SITE, 2 * PER_SITE * BLOCK);
    return 0;
}
