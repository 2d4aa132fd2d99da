/*
 * A host that exports profiles while its allocator fails now and then
 * (failing_malloc.c preloaded after heapprof): 20 rounds of allocating
 * from 13 call depths, loading and unloading a plugin (so the symbolizer's
 * cache is dropped and every profile opens the modules again), and writing
 * a profile through heapprof_write_fd. It tolerates failed allocations
 * itself, so run bare it always survives; heapprof must not take it down.
 * The last profile written whole is left at DIR/last.pb.gz. After the
 * first profile it starts the failing allocator's failures, if it has
 * such a switch (HP_FAIL_LATE=1).
 *
 * usage: export_under_failures PLUGIN DIR
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void *keep[4096];

__attribute__((noinline)) static void
alloc_at(int depth, int i)
{
    if (depth > 0) {
        alloc_at(depth - 1, i);
        __asm__ volatile("" ::: "memory");
        return;
    }
    free(keep[i]);
    keep[i] = malloc(256 + (size_t)i * 16);
}

int
main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    int (*write_fd)(int, int) =
        (int (*)(int, int))dlsym(RTLD_DEFAULT, "heapprof_write_fd");
    void (*start)(void) =
        (void (*)(void))dlsym(RTLD_DEFAULT, "hostile_failing_malloc_start");
    char tmp[4096], last[4096];
    snprintf(tmp, sizeof(tmp), "%s/tmp.pb.gz", argv[2]);
    snprintf(last, sizeof(last), "%s/last.pb.gz", argv[2]);
    int ok = 0, failed = 0;
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 4096; i++)
            alloc_at(i % 13, i);
        void *h = dlopen(argv[1], RTLD_NOW);
        if (h != NULL)
            dlclose(h);
        if (write_fd == NULL)
            continue;
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
            return 1;
        int rc = write_fd(fd, 0);
        close(fd);
        if (rc == 0 && rename(tmp, last) == 0)
            ok++;
        else
            failed++;
        if (round == 0 && start != NULL)
            start();
    }
    for (int i = 0; i < 4096; i++)
        free(keep[i]);
    fprintf(stderr, "profiles written: %d, failed: %d\n", ok, failed);
    printf("survived\n");
    return 0;
}
