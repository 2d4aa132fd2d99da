/*
 * The smallest link-in use of heapprof: start it with a config, allocate
 * from two call sites, write a heap profile, read it with go tool pprof.
 * Uses only the public header, as every example must.
 *
 *   cc basic.c $(pkg-config --cflags --libs heapprof) -o basic
 *   ./basic heap.pb.gz && go tool pprof -top heap.pb.gz
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <heapprof.h>

#define NBLOCKS 4096

static void *requests[NBLOCKS];
static void *scratch;

/* Keeps its 4 KiB blocks: they show up in inuse_space. */
__attribute__((noinline)) static void
cache_requests(void)
{
    for (int i = 0; i < NBLOCKS; i++) {
        requests[i] = malloc(4096);
        if (requests[i] != NULL)
            memset(requests[i], 'r', 64);
    }
}

/* Allocates and frees: only in alloc_space (the allocs profile). */
__attribute__((noinline)) static void
churn_scratch(void)
{
    for (int i = 0; i < NBLOCKS; i++) {
        scratch = malloc(1024 + (size_t)i % 1024);
        free(scratch);
    }
}

int
main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "heap.pb.gz";

    /* Already profiling since load at the default rate; this explicit start
     * sets a finer rate for a small program (HEAPPROF_RATE still wins). */
    struct heapprof_config cfg;
    heapprof_config_init(&cfg);
    cfg.rate = 16 * 1024;
    int rc = heapprof_start(&cfg);
    if (rc != HEAPPROF_OK) {
        fprintf(stderr, "basic: heapprof_start: %s\n", heapprof_strerror(rc));
        return 1;
    }

    cache_requests();
    churn_scratch();

    rc = heapprof_write_path(path, HEAPPROF_PROFILE_HEAP);
    if (rc != HEAPPROF_OK) {
        fprintf(stderr, "basic: heapprof_write_path(%s): %s (%s)\n", path,
                heapprof_strerror(rc), heapprof_err_name(rc));
        return 1;
    }
    printf("heapprof %s, rate %llu: wrote %s\n"
           "view it with: go tool pprof -top %s\n",
           heapprof_version_string(),
           (unsigned long long)heapprof_get_rate(), path, path);

    for (int i = 0; i < NBLOCKS; i++)
        free(requests[i]);
    return 0;
}
