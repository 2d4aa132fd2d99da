/*
 * Blocks that outlive the code that allocated them, for check_unload.py:
 * dlopen a plugin, let it allocate N blocks kept here, dlclose it (and
 * check it is really unmapped), load another library, then write the heap
 * profile. The plugin's frames must still be named, under a mapping of
 * the plugin's file. Prints "truth plugin_alloc COUNT BYTES".
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include <heapprof.h>

#define N 4096

static void *volatile kept[N];

int
main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s DIR PLUGIN.so\n", argv[0]);
        return 2;
    }
    void *h = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    void (*run)(void **, int);
    *(void **)&run = dlsym(h, "plugin_run");
    if (run == NULL) {
        fprintf(stderr, "dlsym: %s\n", dlerror());
        return 1;
    }
    run((void **)kept, N);
    if (dlclose(h) != 0) {
        fprintf(stderr, "dlclose: %s\n", dlerror());
        return 1;
    }
    if (dlopen(argv[2], RTLD_NOW | RTLD_NOLOAD) != NULL) {
        fprintf(stderr, "the plugin is still loaded after dlclose\n");
        return 1;
    }
    /* Something else may now be mapped where the plugin was. */
    if (dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL) == NULL)
        fprintf(stderr, "note: libz.so.1: %s\n", dlerror());

    char path[4096];
    snprintf(path, sizeof path, "%s/unload.pb.gz", argv[1]);
    int rc = heapprof_write_path(path, HEAPPROF_PROFILE_HEAP);
    if (rc != 0) {
        fprintf(stderr, "heapprof_write_path: %d\n", rc);
        return 1;
    }
    long long bytes = 0;
    for (int i = 0; i < N; i++)
        bytes += 1000 + i;
    printf("truth plugin_alloc %d %lld\n", N, bytes);
    return 0;
}
